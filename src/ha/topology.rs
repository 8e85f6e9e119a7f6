//! Who is primary, who streams, and what the operator should be told (pure),
//! from Patroni's REST API: `GET /cluster` (every member, from the DCS) and
//! `GET /patroni` (this member).
//!
//! Version differences handled here:
//! * `/cluster` names the leader `leader` (every version), a synchronous
//!   standby `sync_standby`, others `replica` (4.x: also `quorum_standby`).
//! * A replica's `state` is `streaming` from 3.0.4 on; before, `running`
//!   whether it streams or not (measured: replicas stuck on a diverged
//!   timeline showed `running` for ever). From 3.0.4, `running` for a
//!   replica means "up but not streaming".
//! * `/patroni` says `master` (3.x) or `primary` (4.x) for the primary.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

use super::options::Replication;
use super::version::PatroniVersion;

/// A member's role in `/cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Leader,
    SyncStandby,
    Replica,
    /// `standby_leader` (a standby cluster: never ours) or anything new.
    Other(String),
}

impl Role {
    fn parse(raw: &str) -> Self {
        match raw {
            "leader" | "master" | "primary" => Role::Leader,
            "sync_standby" => Role::SyncStandby,
            "replica" | "quorum_standby" => Role::Replica,
            other => Role::Other(other.to_string()),
        }
    }

    pub fn is_standby(&self) -> bool {
        matches!(self, Role::SyncStandby | Role::Replica)
    }
}

/// One member as `/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMember {
    pub name: String,
    pub role: Role,
    pub state: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub timeline: Option<u64>,
    /// Bytes behind the leader; `None` when unknown (or the leader).
    pub lag: Option<u64>,
}

#[derive(Deserialize)]
struct ClusterJson {
    #[serde(default)]
    members: Vec<MemberJson>,
}

#[derive(Deserialize)]
struct MemberJson {
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    state: String,
    host: Option<String>,
    port: Option<u16>,
    timeline: Option<u64>,
    lag: Option<Value>,
}

/// `GET /cluster`'s members.
pub fn parse_cluster(body: &str) -> Result<Vec<ClusterMember>> {
    let parsed: ClusterJson =
        serde_json::from_str(body).context("Patroni's /cluster is not the expected JSON")?;
    Ok(parsed
        .members
        .into_iter()
        .map(|m| ClusterMember {
            role: Role::parse(&m.role),
            lag: m.lag.as_ref().and_then(Value::as_u64),
            name: m.name,
            state: m.state,
            host: m.host,
            port: m.port,
            timeline: m.timeline,
        })
        .collect())
}

impl ClusterMember {
    /// Whether it is a standby receiving WAL from the primary now.
    pub fn is_streaming(&self, patroni: PatroniVersion) -> bool {
        self.role.is_standby()
            && (self.state == "streaming"
                || (!patroni.reports_streaming() && self.state == "running"))
    }
}

/// The cluster as clients and the operator should see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    /// The member holding the leader key with its server running.
    pub primary: Option<String>,
    /// Streaming standbys Patroni counts as synchronous.
    pub sync_standbys: Vec<String>,
    /// Every streaming standby (synchronous ones included): what the
    /// relations publish as `standbys`.
    pub standbys: Vec<String>,
    /// Members neither primary nor streaming, with their state.
    pub unhealthy: Vec<(String, String)>,
}

pub fn topology(members: &[ClusterMember], patroni: PatroniVersion) -> Topology {
    let mut t = Topology::default();
    for m in members {
        if m.role == Role::Leader && m.state == "running" && t.primary.is_none() {
            t.primary = Some(m.name.clone());
        } else if m.is_streaming(patroni) {
            if m.role == Role::SyncStandby {
                t.sync_standbys.push(m.name.clone());
            }
            t.standbys.push(m.name.clone());
        } else {
            t.unhealthy
                .push((m.name.clone(), format!("{:?} {}", m.role, m.state)));
        }
    }
    t.sync_standbys.sort();
    t.standbys.sort();
    t
}

/// This member's role (`GET /patroni`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRole {
    Primary,
    Replica,
    Other(String),
}

/// `GET /patroni`, the parts the charm uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStatus {
    pub role: LocalRole,
    /// PostgreSQL's state: `running`, `starting`, `stopped`, ...
    pub state: String,
    pub timeline: Option<u64>,
    pub pending_restart: bool,
    pub system_identifier: Option<u64>,
    pub version: Option<PatroniVersion>,
}

impl LocalStatus {
    /// A writable primary.
    pub fn is_running_primary(&self) -> bool {
        self.role == LocalRole::Primary && self.state == "running"
    }
}

pub fn parse_patroni(body: &str) -> Result<LocalStatus> {
    let v: Value =
        serde_json::from_str(body).context("Patroni's /patroni is not the expected JSON")?;
    let text = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let role = match text("role").as_str() {
        "master" | "primary" => LocalRole::Primary,
        "replica" => LocalRole::Replica,
        other => LocalRole::Other(other.to_string()),
    };
    Ok(LocalStatus {
        role,
        state: text("state"),
        timeline: v.get("timeline").and_then(Value::as_u64),
        pending_restart: v
            .get("pending_restart")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        system_identifier: v
            .get("database_system_identifier")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
        version: v
            .pointer("/patroni/version")
            .and_then(Value::as_str)
            .and_then(|s| PatroniVersion::parse(s).ok()),
    })
}

/// What the unit's status should warn about.
pub fn warnings(admitted: usize, replication: &Replication, topology: &Topology) -> Vec<String> {
    let mut out = Vec::new();
    if admitted == 2 {
        out.push(
            "two units cannot fail over safely: etcd needs three members for a majority, and \
             losing either unit makes the database read-only; add a third unit"
                .to_string(),
        );
    }
    let wanted = replication.synchronous_node_count as usize;
    let synchronous = BTreeSet::from_iter(topology.sync_standbys.iter());
    if replication.synchronous_mode && admitted > 1 && topology.primary.is_some() {
        if synchronous.is_empty() && replication.synchronous_mode_strict {
            out.push(
                "writes wait: synchronous-mode-strict is on and no synchronous standby streams"
                    .to_string(),
            );
        } else if synchronous.is_empty() {
            out.push(
                "no synchronous standby streams: commits are on the primary alone until one \
                 catches up"
                    .to_string(),
            );
        } else if synchronous.len() < wanted {
            out.push(format!(
                "{} of {wanted} synchronous standbys stream",
                synchronous.len()
            ));
        }
    }
    if admitted > 0 && topology.primary.is_none() {
        out.push("no primary: Patroni is electing one or the cluster lost its majority".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V302: PatroniVersion = PatroniVersion::new(3, 0, 2);
    const V322: PatroniVersion = PatroniVersion::new(3, 2, 2);

    /// Measured on 3.2.2 (shape) with 3 members, one not streaming.
    const CLUSTER_322: &str = r#"{"members": [
      {"name": "postgresql-0", "role": "leader", "state": "running", "api_url": "http://198.18.0.10:8008/patroni", "host": "198.18.0.10", "port": 5432, "timeline": 2},
      {"name": "postgresql-1", "role": "sync_standby", "state": "streaming", "api_url": "http://198.18.0.11:8008/patroni", "host": "198.18.0.11", "port": 5432, "timeline": 2, "lag": 0},
      {"name": "postgresql-2", "role": "replica", "state": "running", "host": "198.18.0.12", "port": 5432, "timeline": 1, "lag": "unknown"}
    ]}"#;

    #[test]
    fn cluster_json_is_parsed_with_unknown_lag() {
        let m = parse_cluster(CLUSTER_322).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].role, Role::Leader);
        assert_eq!(m[1].lag, Some(0));
        assert_eq!(m[2].lag, None);
        assert_eq!(m[2].timeline, Some(1));
        assert_eq!(m[0].host.as_deref(), Some("198.18.0.10"));
        assert!(parse_cluster("not json").is_err());
        assert!(parse_cluster("{}").unwrap().is_empty());
    }

    #[test]
    fn running_replicas_stream_only_before_3_0_4() {
        let m = parse_cluster(CLUSTER_322).unwrap();
        let t = topology(&m, V322);
        assert_eq!(t.primary.as_deref(), Some("postgresql-0"));
        assert_eq!(t.sync_standbys, ["postgresql-1"]);
        assert_eq!(t.standbys, ["postgresql-1"]);
        assert_eq!(t.unhealthy.len(), 1);
        assert_eq!(t.unhealthy[0].0, "postgresql-2");
        let old = topology(&m, V302);
        assert_eq!(old.standbys, ["postgresql-1", "postgresql-2"]);
    }

    #[test]
    fn a_leader_that_is_not_running_is_no_primary() {
        let body = r#"{"members": [
          {"name": "a", "role": "leader", "state": "stopped"},
          {"name": "b", "role": "replica", "state": "streaming"},
          {"name": "c", "role": "standby_leader", "state": "running"},
          {"name": "d", "role": "quorum_standby", "state": "streaming"}
        ]}"#;
        let t = topology(&parse_cluster(body).unwrap(), V322);
        assert_eq!(t.primary, None);
        assert_eq!(t.standbys, ["b", "d"]);
        assert_eq!(t.unhealthy.len(), 2);
    }

    #[test]
    fn patroni_status_of_3_x_and_4_x() {
        let s = parse_patroni(
            r#"{"state": "running", "role": "master", "timeline": 3, "pending_restart": true,
                "database_system_identifier": "7714461687771472169",
                "patroni": {"version": "3.2.2", "scope": "postgresql"}}"#,
        )
        .unwrap();
        assert!(s.is_running_primary());
        assert_eq!(s.timeline, Some(3));
        assert!(s.pending_restart);
        assert_eq!(s.system_identifier, Some(7714461687771472169));
        assert_eq!(s.version, Some(V322));
        let p = parse_patroni(r#"{"state": "running", "role": "primary"}"#).unwrap();
        assert!(p.is_running_primary());
        let r = parse_patroni(r#"{"state": "running", "role": "replica"}"#).unwrap();
        assert_eq!(r.role, LocalRole::Replica);
        assert!(!r.pending_restart && r.version.is_none());
        let starting = parse_patroni(r#"{"state": "starting", "role": "master"}"#).unwrap();
        assert!(!starting.is_running_primary());
    }

    fn repl(count: u32, strict: bool) -> Replication {
        Replication {
            synchronous_mode: true,
            synchronous_node_count: count,
            synchronous_mode_strict: strict,
        }
    }

    fn t(primary: Option<&str>, sync: &[&str]) -> Topology {
        Topology {
            primary: primary.map(str::to_string),
            sync_standbys: sync.iter().map(|s| s.to_string()).collect(),
            standbys: sync.iter().map(|s| s.to_string()).collect(),
            unhealthy: vec![],
        }
    }

    #[test]
    fn warnings_for_two_units_missing_sync_standbys_and_no_primary() {
        assert!(warnings(1, &repl(1, false), &t(Some("a"), &[])).is_empty());
        assert!(warnings(3, &repl(1, false), &t(Some("a"), &["b"])).is_empty());
        let two = warnings(2, &repl(1, false), &t(Some("a"), &["b"]));
        assert_eq!(two.len(), 1);
        assert!(
            two[0].starts_with("two units cannot fail over safely"),
            "{two:?}"
        );
        let strict = warnings(3, &repl(1, true), &t(Some("a"), &[]));
        assert!(strict[0].contains("writes wait"), "{strict:?}");
        let alone = warnings(3, &repl(1, false), &t(Some("a"), &[]));
        assert!(alone[0].contains("primary alone"), "{alone:?}");
        let short = warnings(3, &repl(2, false), &t(Some("a"), &["b"]));
        assert_eq!(short, ["1 of 2 synchronous standbys stream"]);
        let none = warnings(3, &repl(1, false), &t(None, &["b"]));
        assert!(none[0].starts_with("no primary"), "{none:?}");
        let asynchronous = Replication {
            synchronous_mode: false,
            ..repl(1, false)
        };
        assert!(warnings(3, &asynchronous, &t(Some("a"), &[])).is_empty());
    }
}
