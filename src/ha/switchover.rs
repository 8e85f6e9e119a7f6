//! Moving the primary on purpose: the `switchover` action, and a primary
//! leaving (`remove-unit`) handing over before its Patroni stops.
//!
//! [`choose`] (pure) decides whom to hand over to, or why not; the shell
//! asks Patroni (`POST /switchover`) and waits until `/cluster` shows the
//! new primary running.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::member_name;
use super::patroni_api::PatroniApi;
use super::topology::{ClusterMember, Role};

/// Whom to hand over to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// From `leader` (Patroni's member name) to `candidate` (`None`:
    /// Patroni picks a synchronous standby, or the healthiest standby in
    /// asynchronous mode).
    To {
        leader: String,
        candidate: Option<String>,
    },
    /// Nothing to do: `unit` is not the primary.
    NotPrimary,
    /// Refused, with the operator's message.
    Refused(String),
}

/// `candidate`: a unit name (`postgresql/2`) or none. `require_primary`:
/// the handover must start from that member (a departing unit), else from
/// whoever leads.
pub fn choose(
    members: &[ClusterMember],
    from: Option<&str>,
    candidate: Option<&str>,
    synchronous: bool,
) -> Handover {
    let Some(leader) = members
        .iter()
        .find(|m| m.role == Role::Leader && m.state == "running")
    else {
        return Handover::Refused("the cluster has no running primary to switch over from".into());
    };
    if let Some(from) = from {
        if leader.name != member_name(from) {
            return Handover::NotPrimary;
        }
    }
    let standbys: Vec<&ClusterMember> = members.iter().filter(|m| m.role.is_standby()).collect();
    if standbys.is_empty() {
        return Handover::Refused("there is no standby to switch over to".into());
    }
    let eligible = |m: &&ClusterMember| !synchronous || m.role == Role::SyncStandby;
    match candidate {
        None if !standbys.iter().any(eligible) => Handover::Refused(
            "no synchronous standby is available: a switchover now could lose commits".into(),
        ),
        None => Handover::To {
            leader: leader.name.clone(),
            candidate: None,
        },
        Some(unit) => {
            let name = member_name(unit);
            match members.iter().find(|m| m.name == name) {
                None => Handover::Refused(format!("{unit} is not a member of the cluster")),
                Some(m) if m.name == leader.name => {
                    Handover::Refused(format!("{unit} is already the primary"))
                }
                Some(m) if synchronous && m.role != Role::SyncStandby => {
                    Handover::Refused(format!(
                        "{unit} is not a synchronous standby (it is {}): only a synchronous \
                     standby has every acknowledged commit",
                        match &m.role {
                            Role::Replica => "an asynchronous standby".to_string(),
                            Role::Other(r) => r.clone(),
                            _ => "not streaming".to_string(),
                        }
                    ))
                }
                Some(m) if !m.role.is_standby() => {
                    Handover::Refused(format!("{unit} is not a streaming standby"))
                }
                Some(_) => Handover::To {
                    leader: leader.name.clone(),
                    candidate: Some(name),
                },
            }
        }
    }
}

/// Runs the handover and waits (up to `limit`) until another member leads
/// and runs. Returns the new primary's member name.
pub fn hand_over(api: &PatroniApi, handover: &Handover, limit: Duration) -> Result<String> {
    let Handover::To { leader, candidate } = handover else {
        bail!("nothing to hand over: {handover:?}");
    };
    let message = api
        .switchover(leader, candidate.as_deref())
        .context("asking Patroni to switch over")?;
    log::info!("Patroni: {}", message.trim());
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(members) = api.cluster() {
            if let Some(new) = members
                .iter()
                .find(|m| m.role == Role::Leader && m.state == "running" && &m.name != leader)
            {
                return Ok(new.name.clone());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no new primary within {} s of the switchover",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, role: Role, state: &str) -> ClusterMember {
        ClusterMember {
            name: name.into(),
            role,
            state: state.into(),
            host: None,
            port: None,
            timeline: Some(1),
            lag: Some(0),
        }
    }

    #[test]
    fn whom_to_hand_over_to() {
        let cluster = [
            m("postgresql-0", Role::Leader, "running"),
            m("postgresql-1", Role::SyncStandby, "streaming"),
            m("postgresql-2", Role::Replica, "streaming"),
        ];
        let to = |candidate: Option<&str>| Handover::To {
            leader: "postgresql-0".into(),
            candidate: candidate.map(str::to_string),
        };
        let refused = |h: Handover, want: &str| match h {
            Handover::Refused(why) => assert!(why.contains(want), "{why}"),
            other => panic!("{other:?}"),
        };
        assert_eq!(choose(&cluster, None, None, true), to(None));
        assert_eq!(
            choose(&cluster, None, Some("postgresql/1"), true),
            to(Some("postgresql-1"))
        );
        refused(
            choose(&cluster, None, Some("postgresql/2"), true),
            "not a synchronous standby (it is an asynchronous standby)",
        );
        // Asynchronous: any streaming standby.
        assert_eq!(
            choose(&cluster, None, Some("postgresql/2"), false),
            to(Some("postgresql-2"))
        );
        refused(
            choose(&cluster, None, Some("postgresql/0"), true),
            "already the primary",
        );
        refused(
            choose(&cluster, None, Some("postgresql/7"), true),
            "not a member",
        );
        // A departing unit hands over only if it leads.
        assert_eq!(
            choose(&cluster, Some("postgresql/1"), None, true),
            Handover::NotPrimary
        );
        assert_eq!(choose(&cluster, Some("postgresql/0"), None, true), to(None));
        // No synchronous standby, no primary, no standby.
        let no_sync = [
            m("postgresql-0", Role::Leader, "running"),
            m("postgresql-2", Role::Replica, "streaming"),
        ];
        refused(choose(&no_sync, None, None, true), "no synchronous standby");
        assert_eq!(choose(&no_sync, None, None, false), to(None));
        refused(
            choose(
                &[m("postgresql-0", Role::Leader, "stopped")],
                None,
                None,
                true,
            ),
            "no running primary",
        );
        refused(
            choose(
                &[m("postgresql-0", Role::Leader, "running")],
                None,
                None,
                true,
            ),
            "no standby",
        );
    }
}
