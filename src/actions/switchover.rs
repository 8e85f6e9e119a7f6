//! `switchover` (optional `candidate`, a unit): Patroni moves the primary
//! to a synchronous standby (in synchronous mode only a synchronous
//! standby has every acknowledged commit; another candidate is refused),
//! and the action returns once the new primary runs. The relations follow
//! through the watcher's topology hook.
//!
//! Results: `primary` (the new primary's unit), `previous`.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::actions::cluster_status::unit_of;
use crate::charm::Hook;
use crate::converge::ha_step;
use crate::ha::converge::{read_secrets, rest_api, PEER_ENDPOINT};
use crate::ha::switchover::{choose, hand_over, Handover};
use crate::juju;

pub fn run(hook: &Hook) -> Result<()> {
    let params = juju::action_get().context("reading the action's parameters")?;
    let candidate = params
        .get("candidate")
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let Some(cluster) = hook.unit.existing_cluster() else {
        return super::fail("this unit has no PostgreSQL cluster yet");
    };
    if !ha_step::member_before(hook, &cluster) {
        return super::fail(
            "this unit is a standalone server: a switchover needs a replicated cluster \
             (juju add-unit)",
        );
    }
    let address: IpAddr = juju::network_get_ingress_address(PEER_ENDPOINT, None)
        .context("asking Juju for this unit's address")?
        .parse()
        .context("the peer relation's ingress address is not an IP address")?;
    let secrets = match read_secrets(hook.context.application()) {
        Ok(s) => s,
        Err(e) => return super::fail(&format!("cannot read the cluster's passwords: {e:#}")),
    };
    let ca = crate::tls::files::peer_ca_of(&cluster);
    let api = rest_api(address, &secrets, ca.as_deref());
    let (members, dcs) = match (api.cluster(), api.config()) {
        (Ok(m), Ok(c)) => (m, c),
        (Err(e), _) | (_, Err(e)) => {
            return super::fail(&format!(
                "Patroni on this unit does not answer ({e:#}); run the action on another unit"
            ))
        }
    };
    let synchronous = dcs["synchronous_mode"].as_bool().unwrap_or(false);
    let handover = choose(&members, None, candidate.as_deref(), synchronous);
    let Handover::To { leader, .. } = &handover else {
        let why = match handover {
            Handover::Refused(why) => why,
            _ => "nothing to switch over".into(),
        };
        return super::fail(&format!("switchover refused: {why}"));
    };
    let previous = unit_of(leader);
    match hand_over(&api, &handover, Duration::from_secs(90)) {
        Ok(new) => juju::action_set(&[("primary", &unit_of(&new)), ("previous", &previous)])
            .context("setting the action's results"),
        Err(e) => super::fail(&format!("switchover failed: {e:#}")),
    }
}
