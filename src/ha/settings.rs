//! Which PostgreSQL settings go where once Patroni runs the server (pure).
//!
//! Patroni starts the postmaster with some settings on its command line
//! (measured, 3.0.2 and 3.2.2): their values come **only** from the DCS
//! (`bootstrap.dcs.postgresql.parameters`, later `PATCH /config`); the same
//! names in the local patroni.yml are silently dropped and in conf.d they
//! are overridden. Those are the cluster-wide settings: equal on every
//! member, set by the Juju leader. Everything else is per member: the local
//! `postgresql.parameters` of the unit's own patroni.yml, which beat the DCS
//! and conf.d (memory and I/O follow each machine). A few names Patroni sets
//! itself (addresses, recovery, `synchronous_standby_names`, the file
//! locations): the charm never passes them on.
//!
//! The input is the tuning plan's and `extra-pg-conf`'s settings as plain
//! `(name, value)` pairs ([`Setting`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One PostgreSQL setting as the charm wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

impl Setting {
    pub fn new(name: &str, value: &str) -> Self {
        Self {
            name: name.to_string(),
            value: value.to_string(),
        }
    }
}

/// Settings Patroni passes on the postmaster's command line, from the DCS
/// (Patroni's `CMDLINE_OPTIONS` less the ones it sets itself), with the
/// smallest value Patroni accepts (it silently replaces a smaller one by
/// its default).
pub const CLUSTER_WIDE: &[(&str, Option<i64>)] = &[
    ("max_connections", Some(25)),
    ("max_wal_senders", Some(3)),
    ("max_prepared_transactions", Some(0)),
    ("max_locks_per_transaction", Some(32)),
    ("max_replication_slots", Some(4)),
    ("max_worker_processes", Some(2)),
    ("wal_level", None),
    ("track_commit_timestamp", None),
    ("wal_keep_size", None),
    ("wal_keep_segments", None),
];

/// Settings Patroni owns: the charm never sets them once Patroni runs.
pub const SET_BY_PATRONI: &[&str] = &[
    "listen_addresses",
    "port",
    "cluster_name",
    "hot_standby",
    "wal_log_hints",
    "hba_file",
    "ident_file",
    "config_file",
    "data_directory",
    "synchronous_standby_names",
    "primary_conninfo",
    "primary_slot_name",
    "recovery_target_timeline",
    "promote_trigger_file",
    "restore_command",
];

/// The settings, split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitSettings {
    /// To the DCS (`postgresql.parameters` of the dynamic configuration).
    pub cluster_wide: BTreeMap<String, String>,
    /// To this member's patroni.yml (`postgresql.parameters`).
    pub member: BTreeMap<String, String>,
    /// Left out, each with the reason (for the log, or a status when the
    /// operator set it in `extra-pg-conf`).
    pub left_out: Vec<(Setting, String)>,
    /// Cluster-wide values Patroni would silently replace.
    pub errors: Vec<String>,
}

/// Splits `settings` (later ones win over earlier ones of the same name,
/// names compared case-insensitively as PostgreSQL does).
pub fn split(settings: &[Setting]) -> SplitSettings {
    let mut out = SplitSettings::default();
    for setting in settings {
        let name = setting.name.trim().to_ascii_lowercase();
        if SET_BY_PATRONI.contains(&name.as_str()) {
            out.left_out.push((
                setting.clone(),
                format!("{name} is set by Patroni in a replicated cluster"),
            ));
            continue;
        }
        match CLUSTER_WIDE.iter().find(|(n, _)| *n == name) {
            Some((_, minimum)) => {
                out.member.remove(&name);
                out.errors.retain(|e| !e.starts_with(&format!("{name} ")));
                if let Some(error) = check_cluster_wide(&name, &setting.value, *minimum) {
                    out.errors.push(error);
                }
                out.cluster_wide.insert(name, setting.value.clone());
            }
            None => {
                out.member.insert(name, setting.value.clone());
            }
        }
    }
    out
}

fn check_cluster_wide(name: &str, value: &str, minimum: Option<i64>) -> Option<String> {
    let value = value.trim();
    match (name, minimum) {
        (_, Some(min)) => match value.parse::<i64>() {
            Ok(v) if v >= min => None,
            _ => Some(format!(
                "{name} {value:?} must be a whole number of at least {min} in a replicated cluster"
            )),
        },
        ("wal_level", _) => (!["replica", "logical", "hot_standby"]
            .contains(&value.to_ascii_lowercase().as_str()))
        .then(|| format!("{name} {value:?} must be replica or logical in a replicated cluster")),
        ("track_commit_timestamp", _) => {
            (!is_postgres_bool(value)).then(|| format!("{name} {value:?} is not a boolean"))
        }
        _ => None,
    }
}

fn is_postgres_bool(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    ["on", "off", "true", "false", "yes", "no", "1", "0"].contains(&v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, value: &str) -> Setting {
        Setting::new(name, value)
    }

    #[test]
    fn cmdline_settings_go_to_the_dcs_and_the_rest_stays_local() {
        let out = split(&[
            s("shared_buffers", "2GB"),
            s("max_connections", "200"),
            s("effective_io_concurrency", "200"),
            s("Max_Worker_Processes", "8"),
            s("wal_level", "logical"),
            s("work_mem", "8MB"),
        ]);
        assert_eq!(
            out.cluster_wide.into_iter().collect::<Vec<_>>(),
            [
                ("max_connections".to_string(), "200".to_string()),
                ("max_worker_processes".into(), "8".into()),
                ("wal_level".into(), "logical".into()),
            ]
        );
        assert_eq!(
            out.member.keys().map(String::as_str).collect::<Vec<_>>(),
            ["effective_io_concurrency", "shared_buffers", "work_mem"]
        );
        assert!(out.left_out.is_empty() && out.errors.is_empty());
    }

    #[test]
    fn names_patroni_owns_are_left_out_with_a_reason() {
        let out = split(&[
            s("port", "5433"),
            s("hba_file", "/tmp/x"),
            s("work_mem", "4MB"),
        ]);
        assert_eq!(out.left_out.len(), 2);
        assert!(out.left_out[0].1.contains("set by Patroni"));
        assert_eq!(out.member.len(), 1);
    }

    #[test]
    fn later_settings_win_and_errors_follow_the_last_value() {
        let out = split(&[s("max_connections", "10"), s("MAX_CONNECTIONS", "100")]);
        assert_eq!(out.cluster_wide["max_connections"], "100");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let out = split(&[s("max_connections", "100"), s("max_connections", "10")]);
        assert_eq!(out.errors.len(), 1);
        assert!(out.errors[0].contains("at least 25"), "{:?}", out.errors);
    }

    #[test]
    fn values_patroni_would_silently_replace_are_errors() {
        let bad = [
            ("max_connections", "24"),
            ("max_connections", "lots"),
            ("max_wal_senders", "2"),
            ("max_locks_per_transaction", "31"),
            ("max_replication_slots", "3"),
            ("max_worker_processes", "1"),
            ("max_prepared_transactions", "-1"),
            ("wal_level", "minimal"),
            ("track_commit_timestamp", "maybe"),
        ];
        for (name, value) in bad {
            let out = split(&[s(name, value)]);
            assert_eq!(out.errors.len(), 1, "{name}={value}");
            assert!(out.errors[0].starts_with(name), "{:?}", out.errors);
        }
        let good = [
            ("max_connections", "25"),
            ("wal_level", "replica"),
            ("track_commit_timestamp", "on"),
            ("wal_keep_size", "1GB"),
        ];
        for (name, value) in good {
            assert!(split(&[s(name, value)]).errors.is_empty(), "{name}={value}");
        }
    }
}
