//! Patroni's dynamic configuration (pure): what goes to the DCS, once as
//! `bootstrap.dcs` in patroni.yml (written by whoever initialises the
//! cluster), afterwards only through `PATCH /config` by the Juju leader,
//! as the difference ([`patch_for`]) between `GET /config` and what the
//! charm wants.
//!
//! Never in it: `postgresql.pg_hba` / `pg_ident` (Patroni would rewrite the
//! charm's files on every change; a patch removes them if someone set them).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::options::{Replication, TimingProfile};

/// How far behind (bytes) a replica may be and still be promoted
/// automatically (Patroni's default). In synchronous mode Patroni promotes
/// only a synchronous standby anyway.
pub const MAXIMUM_LAG_ON_FAILOVER: u64 = 1024 * 1024;

/// The dynamic configuration the charm wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicConfig {
    pub timing: TimingProfile,
    pub replication: Replication,
    /// The cluster-wide settings (`settings::split`).
    pub parameters: BTreeMap<String, String>,
}

impl DynamicConfig {
    pub fn to_json(&self) -> Value {
        let parameters: Map<String, Value> = self
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "ttl": self.timing.ttl,
            "loop_wait": self.timing.loop_wait,
            "retry_timeout": self.timing.retry_timeout,
            "maximum_lag_on_failover": MAXIMUM_LAG_ON_FAILOVER,
            "synchronous_mode": self.replication.synchronous_mode,
            "synchronous_mode_strict": self.replication.synchronous_mode_strict,
            "synchronous_node_count": self.replication.synchronous_node_count,
            "postgresql": {
                "use_pg_rewind": true,
                "use_slots": true,
                // Debian's template says true: Patroni would delete a data
                // directory that may hold the only copy of something.
                "remove_data_directory_on_rewind_failure": false,
                "remove_data_directory_on_diverged_timelines": false,
                "parameters": Value::Object(parameters),
            },
        })
    }
}

/// The JSON merge patch turning `current` (`GET /config`) into what
/// `desired` says, or `None` when nothing differs. Keys the charm does not
/// manage are left alone, except: `postgresql.parameters` is entirely the
/// charm's (others are removed), and `postgresql.pg_hba`/`pg_ident` are
/// removed.
pub fn patch_for(current: &Value, desired: &DynamicConfig) -> Option<Value> {
    let desired = desired.to_json();
    let mut patch = diff(current, &desired, false).unwrap_or_else(|| json!({}));
    let current_pg = current.get("postgresql");
    for key in ["pg_hba", "pg_ident"] {
        if current_pg.and_then(|pg| pg.get(key)).is_some() {
            let pg = patch
                .as_object_mut()
                .expect("object")
                .entry("postgresql")
                .or_insert_with(|| json!({}));
            pg.as_object_mut()
                .expect("object")
                .insert(key.into(), Value::Null);
        }
    }
    (patch.as_object().is_some_and(|o| !o.is_empty())).then_some(patch)
}

/// `desired`'s differences from `current`; with `prune`, keys only in
/// `current` become `null` (removed).
fn diff(current: &Value, desired: &Value, prune: bool) -> Option<Value> {
    match (current, desired) {
        (Value::Object(cur), Value::Object(want)) => {
            let mut out = Map::new();
            for (key, want_value) in want {
                let prune_below = prune || key == "parameters";
                match cur.get(key) {
                    Some(cur_value) => {
                        if let Some(d) = diff(cur_value, want_value, prune_below) {
                            out.insert(key.clone(), d);
                        }
                    }
                    None => {
                        out.insert(key.clone(), want_value.clone());
                    }
                }
            }
            if prune {
                for key in cur.keys().filter(|k| !want.contains_key(*k)) {
                    out.insert(key.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (cur, want) if cur == want => None,
        (_, want) => Some(want.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> DynamicConfig {
        DynamicConfig {
            timing: TimingProfile::DEFAULT,
            replication: Replication {
                synchronous_mode: true,
                synchronous_node_count: 1,
                synchronous_mode_strict: false,
            },
            parameters: [("max_connections", "150"), ("wal_level", "replica")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_dynamic_configuration_is_safe_by_default() {
        let v = desired().to_json();
        assert_eq!(v["ttl"], 30);
        assert_eq!(v["loop_wait"], 10);
        assert_eq!(v["retry_timeout"], 10);
        assert_eq!(v["synchronous_mode"], true);
        assert_eq!(v["synchronous_node_count"], 1);
        assert_eq!(v["postgresql"]["use_pg_rewind"], true);
        assert_eq!(
            v["postgresql"]["remove_data_directory_on_rewind_failure"],
            false
        );
        assert_eq!(
            v["postgresql"]["remove_data_directory_on_diverged_timelines"],
            false
        );
        assert_eq!(v["postgresql"]["parameters"]["max_connections"], "150");
        assert!(v["postgresql"].get("pg_hba").is_none());
    }

    #[test]
    fn no_patch_when_the_dcs_already_says_it() {
        let current = desired().to_json();
        assert_eq!(patch_for(&current, &desired()), None);
        // Keys the charm does not manage are left alone.
        let mut with_extra = current.clone();
        with_extra["check_timeline"] = json!(true);
        assert_eq!(patch_for(&with_extra, &desired()), None);
    }

    #[test]
    fn the_patch_carries_only_differences_and_removes_foreign_parameters() {
        let mut current = desired().to_json();
        current["ttl"] = json!(12);
        current["postgresql"]["parameters"]["max_connections"] = json!(100);
        current["postgresql"]["parameters"]["max_wal_senders"] = json!("20");
        current["postgresql"]["pg_hba"] = json!(["host all all 0.0.0.0/0 trust"]);
        let patch = patch_for(&current, &desired()).unwrap();
        assert_eq!(
            patch,
            json!({
                "ttl": 30,
                "postgresql": {
                    "parameters": {"max_connections": "150", "max_wal_senders": null},
                    "pg_hba": null,
                }
            })
        );
    }

    #[test]
    fn an_empty_dcs_gets_everything() {
        let patch = patch_for(&json!({}), &desired()).unwrap();
        assert_eq!(patch, desired().to_json());
    }
}
