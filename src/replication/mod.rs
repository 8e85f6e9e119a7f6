//! This unit's role in the cluster (pure): a standalone server, a primary
//! with standbys, or a standby of a primary. The role decides where the
//! data comes from ([`crate::storage::plan_placement`]: a standby's is
//! cloned from its primary into an empty directory, never initialised),
//! what the client relations are told ([`Role::server_facts`]: `master`,
//! `standbys`, `state`), and whether the charm may create database objects
//! ([`Role::writes`]: a standby is read-only, yet still gets every client's
//! `pg_hba.conf` rules so it can serve reads).
//!
//! A lone unit is [`Role::Standalone`]; with peers, Patroni decides who is
//! primary and the converge's HA step
//! ([`crate::converge::ha_step::decide`]) turns its plan into a role.

use crate::relations::{ServerFacts, ServerState};

/// Another unit of the application, as the clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUnit {
    /// Juju's name for it (`postgresql/1`).
    pub name: String,
    /// The address clients connect to it on.
    pub address: String,
}

/// This unit's role in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The only server: reads and writes, nobody replicates from it.
    Standalone,
    /// Reads and writes; `standbys` replicate from it.
    Primary { standbys: Vec<PeerUnit> },
    /// A read-only copy of `primary`; `standbys`: every standby of the
    /// cluster (this one included once it streams), as clients are told.
    Standby {
        primary: PeerUnit,
        standbys: Vec<PeerUnit>,
    },
}

impl Role {
    /// Whether the server takes writes, so the charm may create the
    /// relations' databases and roles on it.
    pub fn writes(&self) -> bool {
        !matches!(self, Role::Standby { .. })
    }

    /// The primary this unit's data is cloned from, on a standby.
    pub fn clone_from(&self) -> Option<&PeerUnit> {
        match self {
            Role::Standby { primary, .. } => Some(primary),
            Role::Standalone | Role::Primary { .. } => None,
        }
    }

    /// What a client relation is told about the server, `host` being this
    /// unit's address for that relation.
    pub fn server_facts(
        &self,
        host: &str,
        port: u16,
        major_version: u32,
        version: &str,
    ) -> ServerFacts {
        let (primary_host, standby_hosts, state) = match self {
            Role::Standalone => (host.to_string(), Vec::new(), ServerState::Standalone),
            Role::Primary { standbys } => (
                host.to_string(),
                standbys.iter().map(|s| s.address.clone()).collect(),
                ServerState::Master,
            ),
            Role::Standby { primary, standbys } => (
                primary.address.clone(),
                if standbys.is_empty() {
                    vec![host.to_string()]
                } else {
                    standbys.iter().map(|s| s.address.clone()).collect()
                },
                ServerState::HotStandby,
            ),
        };
        ServerFacts {
            host: host.to_string(),
            primary_host,
            standby_hosts,
            port,
            major_version,
            version: version.to_string(),
            state,
            tls: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, address: &str) -> PeerUnit {
        PeerUnit {
            name: name.into(),
            address: address.into(),
        }
    }

    #[test]
    fn the_role_decides_what_clients_are_told_and_whether_objects_are_created() {
        let primary = Role::Primary {
            standbys: vec![
                peer("postgresql/1", "10.0.0.2"),
                peer("postgresql/2", "10.0.0.3"),
            ],
        };
        let standby = Role::Standby {
            primary: peer("postgresql/0", "10.0.0.1"),
            standbys: vec![
                peer("postgresql/3", "10.0.0.9"),
                peer("postgresql/4", "10.0.0.4"),
            ],
        };
        // Not streaming yet: Patroni lists no standby, the unit names itself.
        let joining = Role::Standby {
            primary: peer("postgresql/0", "10.0.0.1"),
            standbys: vec![],
        };
        // (role, primary_host, standby_hosts, state, writes, cloned from)
        let cases = [
            (
                Role::Standalone,
                "10.0.0.9",
                vec![],
                "standalone",
                true,
                None,
            ),
            (
                primary,
                "10.0.0.9",
                vec!["10.0.0.2", "10.0.0.3"],
                "master",
                true,
                None,
            ),
            (
                standby,
                "10.0.0.1",
                vec!["10.0.0.9", "10.0.0.4"],
                "hot standby",
                false,
                Some("postgresql/0"),
            ),
            (
                joining,
                "10.0.0.1",
                vec!["10.0.0.9"],
                "hot standby",
                false,
                Some("postgresql/0"),
            ),
        ];
        for (role, primary_host, standbys, state, writes, from) in cases {
            let facts = role.server_facts("10.0.0.9", 5432, 16, "16.4");
            assert_eq!(facts.host, "10.0.0.9");
            assert_eq!(facts.primary_host, primary_host, "{role:?}");
            assert_eq!(facts.standby_hosts, standbys, "{role:?}");
            assert_eq!(facts.state.as_str(), state);
            assert_eq!((facts.port, facts.major_version), (5432, 16));
            assert_eq!(role.writes(), writes);
            assert_eq!(role.clone_from().map(|p| p.name.as_str()), from);
        }
    }
}
