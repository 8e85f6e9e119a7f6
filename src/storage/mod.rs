//! Where the data lives: the `pgdata` and `pgwal` storage mounts and the
//! pure placement decision (this file), the moves of an existing cluster's
//! data and WAL onto them ([`moves`]: checked before the server stops,
//! crash-safe, never leaving it down), and the tree walks they need
//! ([`trees`]).

pub(crate) mod moves;
pub(crate) mod trees;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cluster;
use crate::juju;

pub use moves::{
    blocked_move_may_go_ahead, create_parents, forget_blocked_move, move_cluster, place_wal,
    retire_leftovers,
};

/// The storage mounts attached to this unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    pub pgdata: Option<PathBuf>,
    pub pgwal: Option<PathBuf>,
}

impl Mounts {
    /// Asks Juju (`storage-list`, `storage-get`), leaving out `detaching`.
    pub fn attached(detaching: Option<&str>) -> Result<Self> {
        let mut mounts = Self::default();
        for id in juju::storage_list(None)? {
            if Some(id.as_str()) == detaching {
                continue;
            }
            let slot = match id.split('/').next() {
                Some("pgdata") => &mut mounts.pgdata,
                Some("pgwal") => &mut mounts.pgwal,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(juju::storage_get(&id)?.location);
            }
        }
        Ok(mounts)
    }
}

/// What is at a directory where a cluster might live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirState {
    Missing,
    Empty,
    Cluster { major: u32 },
    Other,
}

pub fn dir_state(dir: &Path) -> DirState {
    match std::fs::read_dir(dir) {
        Err(_) => DirState::Missing,
        Ok(mut entries) => {
            if entries.next().is_none() {
                DirState::Empty
            } else {
                match cluster::data_dir_version(dir) {
                    Some(major) => DirState::Cluster { major },
                    None => DirState::Other,
                }
            }
        }
    }
}

/// What to do to put the cluster where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// No cluster yet: initialise one at `data_dir`.
    Create { data_dir: PathBuf },
    /// The disk already holds a cluster of this major version: use it.
    Adopt { data_dir: PathBuf },
    /// The cluster is where it belongs.
    InPlace { data_dir: PathBuf },
    /// The cluster is on the root disk and `pgdata` storage has arrived.
    Move { from: PathBuf, to: PathBuf },
    /// No cluster yet on a standby: its data is cloned from the primary
    /// (unit `from`) into the empty `data_dir`, never initialised.
    Clone { data_dir: PathBuf, from: String },
    /// Something the charm did not create is in the way, or data is missing.
    Blocked(String),
}

/// Facts about the cluster and the disks, gathered by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementFacts {
    pub major: u32,
    pub config_exists: bool,
    pub ours: bool,
    pub conf_dir: PathBuf,
    /// `data_directory` from the cluster's postgresql.conf.
    pub configured: Option<PathBuf>,
    pub configured_state: DirState,
    /// Where the data should be: on `pgdata`, or on the root disk without it.
    pub desired: PathBuf,
    pub desired_state: DirState,
    pub on_storage: bool,
    /// The primary's unit, when this unit is a standby
    /// ([`crate::replication::Role::clone_from`]).
    pub clone_from: Option<String>,
}

/// The pure placement decision.
pub fn plan_placement(f: &PlacementFacts) -> Placement {
    let major = f.major;
    if f.config_exists && !f.ours {
        return Placement::Blocked(format!(
            "found a PostgreSQL cluster the charm did not create at {}; move it aside (pg_dropcluster) or remove it",
            f.conf_dir.display()
        ));
    }
    if let (false, Some(primary)) = (f.config_exists, &f.clone_from) {
        return match &f.desired_state {
            DirState::Missing | DirState::Empty => Placement::Clone {
                data_dir: f.desired.clone(),
                from: primary.clone(),
            },
            _ => Placement::Blocked(format!(
                "{} is not empty: a standby clones {primary}'s data into an empty directory, never over what is there; move it aside",
                f.desired.display()
            )),
        };
    }
    if !f.config_exists {
        return match &f.desired_state {
            DirState::Missing | DirState::Empty => Placement::Create {
                data_dir: f.desired.clone(),
            },
            DirState::Cluster { major: found } if *found == major => Placement::Adopt {
                data_dir: f.desired.clone(),
            },
            DirState::Cluster { major: found } => Placement::Blocked(format!(
                "{} holds a PostgreSQL {found} cluster, not {major}; set config version={found} or move it aside",
                f.desired.display()
            )),
            DirState::Other => Placement::Blocked(format!(
                "{} is not empty and holds no PostgreSQL cluster; the charm will not overwrite it",
                f.desired.display()
            )),
        };
    }
    let configured = f.configured.clone().unwrap_or_default();
    if configured == f.desired {
        return match f.configured_state {
            DirState::Cluster { .. } => Placement::InPlace { data_dir: configured },
            _ => Placement::Blocked(format!(
                "the cluster's data directory {} is missing (storage detached?); the charm never re-initialises it",
                configured.display()
            )),
        };
    }
    match (&f.configured_state, f.on_storage) {
        (DirState::Cluster { .. }, true) => match f.desired_state {
            DirState::Missing | DirState::Empty | DirState::Cluster { .. } => Placement::Move {
                from: configured,
                to: f.desired.clone(),
            },
            DirState::Other => Placement::Blocked(format!(
                "{} is not empty and holds no PostgreSQL cluster; the charm will not overwrite it",
                f.desired.display()
            )),
        },
        (DirState::Cluster { .. }, false) => Placement::Blocked(format!(
            "the cluster lives on {} but no pgdata storage is attached (storage detached?); reattach it",
            configured.display()
        )),
        _ => Placement::Blocked(format!(
            "the cluster's data directory {} is missing (storage detached?); reattach the storage",
            configured.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> PlacementFacts {
        PlacementFacts {
            major: 15,
            config_exists: false,
            ours: false,
            conf_dir: "/etc/postgresql/15/main".into(),
            configured: None,
            configured_state: DirState::Missing,
            desired: "/srv/pgdata/15/main".into(),
            desired_state: DirState::Missing,
            on_storage: true,
            clone_from: None,
        }
    }

    #[test]
    fn placement_decisions() {
        let root = PathBuf::from("/var/lib/postgresql/15/main");
        let desired = PathBuf::from("/srv/pgdata/15/main");
        let ours = |configured: &Path, state: DirState| PlacementFacts {
            config_exists: true,
            ours: true,
            configured: Some(configured.to_path_buf()),
            configured_state: state,
            ..facts()
        };
        let cases: Vec<(&str, PlacementFacts, Placement)> = vec![
            (
                "fresh disk",
                facts(),
                Placement::Create {
                    data_dir: desired.clone(),
                },
            ),
            (
                "empty disk",
                PlacementFacts {
                    desired_state: DirState::Empty,
                    ..facts()
                },
                Placement::Create {
                    data_dir: desired.clone(),
                },
            ),
            (
                "re-attached disk",
                PlacementFacts {
                    desired_state: DirState::Cluster { major: 15 },
                    ..facts()
                },
                Placement::Adopt {
                    data_dir: desired.clone(),
                },
            ),
            (
                "in place",
                ours(&desired, DirState::Cluster { major: 15 }),
                Placement::InPlace {
                    data_dir: desired.clone(),
                },
            ),
            (
                "storage added later",
                PlacementFacts {
                    desired_state: DirState::Missing,
                    ..ours(&root, DirState::Cluster { major: 15 })
                },
                Placement::Move {
                    from: root.clone(),
                    to: desired.clone(),
                },
            ),
            (
                "interrupted move resumes",
                PlacementFacts {
                    desired_state: DirState::Cluster { major: 15 },
                    ..ours(&root, DirState::Cluster { major: 15 })
                },
                Placement::Move {
                    from: root.clone(),
                    to: desired.clone(),
                },
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(plan_placement(&f), want, "{name}");
        }
    }

    #[test]
    fn a_standby_clones_into_an_empty_directory_and_keeps_a_cluster_it_has() {
        let standby = |desired_state: DirState| PlacementFacts {
            desired_state,
            clone_from: Some("postgresql/0".into()),
            ..facts()
        };
        for state in [DirState::Missing, DirState::Empty] {
            assert_eq!(
                plan_placement(&standby(state)),
                Placement::Clone {
                    data_dir: "/srv/pgdata/15/main".into(),
                    from: "postgresql/0".into(),
                }
            );
        }
        for state in [DirState::Cluster { major: 15 }, DirState::Other] {
            match plan_placement(&standby(state)) {
                Placement::Blocked(message) => {
                    assert!(message.contains("clones postgresql/0's data"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
        // A standby whose cloned cluster exists is placed like any other.
        let cloned = PlacementFacts {
            config_exists: true,
            ours: true,
            configured: Some("/srv/pgdata/15/main".into()),
            configured_state: DirState::Cluster { major: 15 },
            ..standby(DirState::Cluster { major: 15 })
        };
        assert_eq!(
            plan_placement(&cloned),
            Placement::InPlace {
                data_dir: "/srv/pgdata/15/main".into()
            }
        );
    }

    #[test]
    fn placement_never_overwrites_foreign_or_missing_data() {
        let blocked = |f: PlacementFacts, needle: &str| match plan_placement(&f) {
            Placement::Blocked(msg) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("expected blocked with {needle:?}, got {other:?}"),
        };
        blocked(
            PlacementFacts {
                config_exists: true,
                ..facts()
            },
            "/etc/postgresql/15/main",
        );
        blocked(
            PlacementFacts {
                desired_state: DirState::Other,
                ..facts()
            },
            "/srv/pgdata/15/main is not empty",
        );
        blocked(
            PlacementFacts {
                desired_state: DirState::Cluster { major: 14 },
                ..facts()
            },
            "PostgreSQL 14 cluster",
        );
        let detached = PlacementFacts {
            config_exists: true,
            ours: true,
            configured: Some("/srv/pgdata/15/main".into()),
            configured_state: DirState::Missing,
            desired: "/var/lib/postgresql/15/main".into(),
            on_storage: false,
            ..facts()
        };
        blocked(detached, "storage detached");
        let data_missing = PlacementFacts {
            config_exists: true,
            ours: true,
            configured: Some("/srv/pgdata/15/main".into()),
            configured_state: DirState::Missing,
            ..facts()
        };
        blocked(data_missing, "never re-initialises");
    }
}
