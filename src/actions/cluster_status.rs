//! `get-primary` and `cluster-status`: what Patroni says about the
//! replicated cluster (`GET /cluster` on this unit's REST API, which needs
//! no password), or this unit alone when it is a standalone server.
//!
//! Results (`action-set` values are strings):
//! * `get-primary`: `primary` (the unit, e.g. `postgresql/0`), `address`.
//! * `cluster-status`: `primary`, `members` (one line per member: unit,
//!   role, state, timeline, lag behind the primary), `summary`.
//!
//! Rendering is pure ([`render`]); [`run`] gathers the members.

use std::net::IpAddr;

use anyhow::{Context, Result};

use crate::charm::Hook;
use crate::converge::ha_step;
use crate::ha::converge::PEER_ENDPOINT;
use crate::ha::patroni_api::PatroniApi;
use crate::ha::topology::{ClusterMember, Role};
use crate::ha::{host_port, REST_API_PORT};
use crate::juju;

/// `postgresql-12` (Patroni's member name) → `postgresql/12`.
pub fn unit_of(member: &str) -> String {
    match member.rsplit_once('-') {
        Some((app, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => {
            format!("{app}/{n}")
        }
        _ => member.to_string(),
    }
}

fn role_name(role: &Role) -> &str {
    match role {
        Role::Leader => "primary",
        Role::SyncStandby => "synchronous standby",
        Role::Replica => "standby",
        Role::Other(other) => other,
    }
}

/// The action results for `members` (`GET /cluster`).
pub fn render(members: &[ClusterMember]) -> Vec<(&'static str, String)> {
    let primary = members
        .iter()
        .find(|m| m.role == Role::Leader && m.state == "running");
    let lines: Vec<String> = members
        .iter()
        .map(|m| {
            let mut line = format!("{}: {}, {}", unit_of(&m.name), role_name(&m.role), m.state);
            if let Some(timeline) = m.timeline {
                line.push_str(&format!(", timeline {timeline}"));
            }
            if m.role != Role::Leader {
                match m.lag {
                    Some(lag) => line.push_str(&format!(", {lag} bytes behind")),
                    None => line.push_str(", lag unknown"),
                }
            }
            line
        })
        .collect();
    let standbys = members.iter().filter(|m| m.role.is_standby()).count();
    let summary = match primary {
        Some(p) => format!(
            "{} is primary; {standbys} standby{} of {} members",
            unit_of(&p.name),
            if standbys == 1 { "" } else { "s" },
            members.len()
        ),
        None => format!("no running primary among {} members", members.len()),
    };
    vec![
        (
            "primary",
            primary.map(|p| unit_of(&p.name)).unwrap_or_default(),
        ),
        ("members", lines.join("\n")),
        ("summary", summary),
    ]
}

/// Runs `get-primary` (`full` false) or `cluster-status` (`full` true).
pub fn run(hook: &Hook, full: bool) -> Result<()> {
    let Some(cluster) = hook.unit.existing_cluster() else {
        return super::fail("this unit has no PostgreSQL cluster yet");
    };
    if !ha_step::member_before(hook, &cluster) {
        // A standalone server: it is the primary of a cluster of one.
        let results = [
            ("primary", hook.unit.name.clone()),
            (
                "summary",
                format!(
                    "{} is a standalone server (no replicated cluster){}",
                    hook.unit.name,
                    if cluster.is_running() {
                        ""
                    } else {
                        "; it is not running"
                    }
                ),
            ),
        ];
        return set(&results);
    }
    let address: IpAddr = juju::network_get_ingress_address(PEER_ENDPOINT, None)
        .context("asking Juju for this unit's address")?
        .parse()
        .context("the peer relation's ingress address is not an IP address")?;
    let ca = crate::tls::files::peer_ca_of(&cluster);
    let api = PatroniApi::new(&host_port(address, REST_API_PORT), None)
        .trusting(crate::ha::converge::peer_trust(ca.as_deref()));
    let members = match api.cluster() {
        Ok(members) => members,
        Err(e) => {
            return super::fail(&format!(
                "Patroni on this unit does not answer ({e:#}); run the action on another unit"
            ))
        }
    };
    let mut results = render(&members);
    if !full {
        let primary = results[0].1.clone();
        let address = members
            .iter()
            .find(|m| unit_of(&m.name) == primary)
            .and_then(|m| m.host.clone())
            .unwrap_or_default();
        results = vec![("primary", primary), ("address", address)];
    }
    set(&results)
}

fn set(results: &[(&str, String)]) -> Result<()> {
    let pairs: Vec<(&str, &str)> = results.iter().map(|(k, v)| (*k, v.as_str())).collect();
    juju::action_set(&pairs).context("setting the action's results")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: Role, state: &str, lag: Option<u64>) -> ClusterMember {
        ClusterMember {
            name: name.into(),
            role,
            state: state.into(),
            host: Some("10.0.0.1".into()),
            port: Some(5432),
            timeline: Some(2),
            lag,
        }
    }

    #[test]
    fn unit_names_from_member_names() {
        assert_eq!(unit_of("postgresql-12"), "postgresql/12");
        assert_eq!(unit_of("my-db-0"), "my-db/0");
        assert_eq!(unit_of("odd"), "odd");
        assert_eq!(unit_of("trailing-"), "trailing-");
    }

    #[test]
    fn the_status_names_the_primary_and_each_members_lag() {
        let members = [
            member("postgresql-0", Role::Leader, "running", None),
            member("postgresql-1", Role::SyncStandby, "streaming", Some(0)),
            member("postgresql-2", Role::Replica, "streaming", None),
        ];
        let results = render(&members);
        assert_eq!(results[0], ("primary", "postgresql/0".to_string()));
        assert_eq!(
            results[1].1,
            "postgresql/0: primary, running, timeline 2\n\
             postgresql/1: synchronous standby, streaming, timeline 2, 0 bytes behind\n\
             postgresql/2: standby, streaming, timeline 2, lag unknown"
        );
        assert_eq!(
            results[2].1,
            "postgresql/0 is primary; 2 standbys of 3 members"
        );
        // A stopped leader is no primary.
        let down = [member("postgresql-0", Role::Leader, "stopped", None)];
        let results = render(&down);
        assert_eq!(results[0].1, "");
        assert_eq!(results[2].1, "no running primary among 1 members");
    }
}
