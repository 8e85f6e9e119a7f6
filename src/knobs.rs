//! The charm's own environment variables, read once in `main`.
//!
//! Juju never sets these. Tests on a shared machine do (through the
//! emulator's test environment), so that concurrent tests keep their
//! clusters, state and host changes apart; a developer may set the log
//! filter.
//!
//! | variable | effect | default |
//! |---|---|---|
//! | `PG_CHARM_CLUSTER` | the cluster's name, and so its state directory | `main` |
//! | `PG_CHARM_PORT` | the cluster's port | 5432 |
//! | `PG_CHARM_HOST_ETC` | where host tuning writes its `/etc` files | `/etc` |
//! | `PG_CHARM_HOST_GLOBAL=off` | no global kernel setting changes (sysctl, THP, systemd) | on |
//! | `PG_CHARM_HOST_DEVICES` | the only devices (comma-separated kernel names) whose live settings may change | all planned |
//! | `PG_CHARM_LOG` | the log filter, in `RUST_LOG` syntax | `info` |
//! | `PG_CHARM_HA=off` | every unit stays a standalone server (tests that put several units' clusters on one machine, where peers cannot replicate) | on |

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::cluster::DEFAULT_PORT;

/// The values of the charm's own environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestKnobs {
    pub cluster_name: String,
    pub port: u16,
    pub host_etc: Option<PathBuf>,
    /// `false` with `PG_CHARM_HOST_GLOBAL=off`.
    pub host_global: bool,
    pub host_devices: Option<BTreeSet<String>>,
    pub log_filter: String,
    /// `false` with `PG_CHARM_HA=off`.
    pub ha: bool,
}

impl Default for TestKnobs {
    /// Production: what Juju runs the charm with.
    fn default() -> Self {
        TestKnobs {
            cluster_name: "main".into(),
            port: DEFAULT_PORT,
            host_etc: None,
            host_global: true,
            host_devices: None,
            log_filter: String::new(),
            ha: true,
        }
    }
}

impl TestKnobs {
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The knobs from `var` (an environment lookup).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = TestKnobs::default();
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        TestKnobs {
            cluster_name: var("PG_CHARM_CLUSTER")
                .filter(|n| !n.is_empty())
                .unwrap_or(defaults.cluster_name),
            port: var("PG_CHARM_PORT")
                .and_then(|p| p.parse().ok())
                .unwrap_or(defaults.port),
            host_etc: set("PG_CHARM_HOST_ETC").map(PathBuf::from),
            host_global: set("PG_CHARM_HOST_GLOBAL").is_none_or(|v| v.trim() != "off"),
            host_devices: set("PG_CHARM_HOST_DEVICES").map(|list| {
                list.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|name| !name.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
            log_filter: var("PG_CHARM_LOG").unwrap_or_default(),
            ha: set("PG_CHARM_HA").is_none_or(|v| v.trim() != "off"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_is_production_and_set_values_are_read() {
        assert_eq!(TestKnobs::from_vars(|_| None), TestKnobs::default());
        let knobs = TestKnobs::from_vars(|name| {
            Some(
                match name {
                    "PG_CHARM_CLUSTER" => "t1",
                    "PG_CHARM_PORT" => "5999",
                    "PG_CHARM_HOST_ETC" => "/tmp/etc",
                    "PG_CHARM_HOST_GLOBAL" => " off ",
                    "PG_CHARM_HOST_DEVICES" => "loop7, loop8,,",
                    "PG_CHARM_LOG" => "debug",
                    "PG_CHARM_HA" => "off",
                    _ => return None,
                }
                .to_string(),
            )
        });
        assert_eq!(
            knobs,
            TestKnobs {
                cluster_name: "t1".into(),
                port: 5999,
                host_etc: Some("/tmp/etc".into()),
                host_global: false,
                host_devices: Some(["loop7".to_string(), "loop8".to_string()].into()),
                log_filter: "debug".into(),
                ha: false,
            }
        );
        // Blank or unparsable values are the defaults.
        let blank = TestKnobs::from_vars(|name| {
            Some(if name == "PG_CHARM_PORT" { "x" } else { " " }.to_string())
        });
        assert_eq!(blank.port, DEFAULT_PORT);
        assert!(blank.host_etc.is_none() && blank.host_devices.is_none() && blank.host_global);
        assert!(blank.ha);
        assert_eq!(blank.cluster_name, " ");
    }
}
