//! The converge's plan (pure): from what the converge observed about the
//! unit ([`UnitFacts`]), the settings of the charm's conf.d file, what
//! `pg_hba.conf` says before the server starts, and where the status says
//! the server runs; or why the unit is blocked. Nothing here reads a file,
//! spawns a process or asks Juju: the table tests below cover the hook
//! orders that otherwise only the integration tests reach.

use std::path::PathBuf;

use crate::cluster::conf::{self, Setting};
use crate::options::ClusterOptions;
use crate::outcome::Step;
use crate::relations::access::hba::HbaInput;
use crate::relations::access::RelationAccess;
use crate::replication::Role;
use crate::state::cluster::OwnerRecord;
use crate::tuning::{self, DiskClass, MachineFacts};

/// What the converge observed, once, after the cluster was put in place.
#[derive(Debug, Clone)]
pub struct UnitFacts {
    pub options: ClusterOptions,
    /// The cluster's data directory, where it now is.
    pub data_dir: PathBuf,
    /// The `pgdata` storage's mount, when attached.
    pub pgdata_mount: Option<PathBuf>,
    /// Memory, CPUs and the disks under the data and the WAL.
    pub machine: MachineFacts,
    /// What the charm recorded when it created or adopted the cluster.
    pub owner: Option<OwnerRecord>,
    /// Whether the server is running now.
    pub running: bool,
    /// The access of the relations served by earlier hooks
    /// ([`crate::clients::cached_access`]); read only while the server is
    /// down, since only a start needs them.
    pub cached_access: Vec<RelationAccess>,
    /// The unit's TLS, in place before the configuration names its files
    /// ([`crate::tls::serve_unit`]); `None` serves no TLS.
    pub tls: Option<crate::tls::Served>,
}

/// What the converge does with the server, before the host is tuned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPlan {
    /// The charm's conf.d settings; host tuning then makes the
    /// `huge_pages` choice ([`crate::tuning::host_tuning::HugePagesChoice`]).
    pub settings: Vec<Setting>,
    /// `pg_hba.conf` from the relations served so far, written before the
    /// server starts; `None` when it runs, and then `pg_hba.conf` is
    /// rendered once, after the relations are served.
    pub hba_before_start: Option<HbaInput>,
    /// Where the status says the server runs: `on /srv/pgdata (ssd)`.
    pub place: String,
}

/// Plans the unit's server, or says why it is blocked.
pub fn plan(facts: &UnitFacts) -> Step<UnitPlan> {
    if let Some(problem) = immutable_option_changed(facts.owner.as_ref(), &facts.options) {
        return Step::Blocked(problem);
    }
    Step::Done(UnitPlan {
        settings: desired_settings(
            &facts.options,
            &facts.machine,
            facts.tls.as_ref().map(|tls| &tls.files),
        ),
        hba_before_start: (!facts.running)
            .then(|| hba_input(&facts.options, facts.cached_access.clone())),
        place: place(facts),
    })
}

/// Whether `pg_hba.conf` must be written (again) once the relations are
/// served: always when the server was running (it was not written before),
/// else only when serving changed what the relations may reach.
pub fn hba_after_serving(plan: &UnitPlan, served: &[RelationAccess]) -> bool {
    plan.hba_before_start
        .as_ref()
        .is_none_or(|before| before.relations != served)
}

/// What `pg_hba.conf` is rendered from.
pub fn hba_input(options: &ClusterOptions, relations: Vec<RelationAccess>) -> HbaInput {
    HbaInput {
        relations,
        admin_addresses: options.admin_addresses.clone(),
        require_tls: options.client_tls.required(),
    }
}

/// The charm's settings: its own (TLS included when `tls` is in place),
/// then the tuning plan, then `extra-pg-conf` (which wins over all).
pub fn desired_settings(
    options: &ClusterOptions,
    facts: &MachineFacts,
    tls: Option<&crate::tls::ServedFiles>,
) -> Vec<Setting> {
    let mut settings = vec![
        Setting::new(
            "listen_addresses",
            "'*'",
            "consumers connect over the network; pg_hba.conf decides who may",
        ),
        Setting::new(
            "password_encryption",
            "'scram-sha-256'",
            "relation passwords are stored as SCRAM verifiers",
        ),
    ];
    settings.extend(tls.map(crate::tls::serve::settings).unwrap_or_default());
    for tuned in tuning::plan(facts, &options.tuning) {
        settings.push(Setting::new(tuned.name, &tuned.value, &tuned.reason));
    }
    for (name, value) in &options.extra_pg_conf {
        settings.retain(|s| s.name != *name);
        settings.push(Setting::new(
            name,
            value,
            "from the charm's extra-pg-conf option",
        ));
    }
    settings
}

/// `version` cannot change once a cluster exists.
pub fn version_change(existing_major: Option<u32>, wanted: Option<u32>) -> Option<String> {
    match (existing_major, wanted) {
        (Some(major), Some(wanted)) if major != wanted => Some(format!(
            "config version: cannot change from {major} to {wanted} after install; set it back to {major} or \"\""
        )),
        _ => None,
    }
}

/// `locale` and `encoding` only apply when the cluster is created.
pub fn immutable_option_changed(
    record: Option<&OwnerRecord>,
    options: &ClusterOptions,
) -> Option<String> {
    let record = record?;
    for (option, recorded, wanted) in [
        ("locale", &record.locale, &options.locale),
        ("encoding", &record.encoding, &options.encoding),
    ] {
        if let Some(recorded) = recorded {
            if recorded != wanted {
                return Some(format!(
                    "config {option}: cannot change from {recorded} to {wanted} after the cluster was created; set it back"
                ));
            }
        }
    }
    None
}

/// A blocked message, which says so when the server still serves.
pub fn still_serving(problem: &str, serving: bool) -> String {
    if serving {
        format!("{problem} (still serving with the last good configuration)")
    } else {
        problem.to_string()
    }
}

/// Where the server runs, for the status: its storage and the disk's class.
fn place(facts: &UnitFacts) -> String {
    match &facts.pgdata_mount {
        Some(mount) => {
            let class = facts
                .machine
                .data
                .as_ref()
                .map_or(DiskClass::Unknown, |volume| {
                    tuning::volume_class(volume, facts.options.tuning.storage_type)
                });
            match class {
                DiskClass::Unknown => format!("on {}", mount.display()),
                class => format!("on {} ({})", mount.display(), class.as_str()),
            }
        }
        None => "on the root disk (no pgdata storage)".to_string(),
    }
}

/// The active status: where the server runs, and the host settings left
/// to the host's own files (the live value and the one after a reboot
/// would differ otherwise).
pub fn active_message(version: &str, plan: &UnitPlan, host_notes: &[String]) -> String {
    let mut message = format!("PostgreSQL {version} {}", plan.place);
    if !host_notes.is_empty() {
        message.push_str(&format!("; host: {}", host_notes.join("; ")));
    }
    message
}

/// The unit's place in a replicated cluster, for the active message
/// (nothing for a standalone server).
pub fn role_note(role: &Role) -> String {
    match role {
        Role::Standalone => String::new(),
        Role::Primary { standbys } if standbys.is_empty() => "; primary, no standby".into(),
        Role::Primary { standbys } => format!(
            "; primary, {} standby{}",
            standbys.len(),
            if standbys.len() == 1 { "" } else { "s" }
        ),
        Role::Standby { primary, .. } => format!("; standby of {}", primary.name),
    }
}

/// Why the server refuses the candidate configuration. `extra-pg-conf` is
/// named only when the server names a setting that option produced, in the
/// charm's own file; anything else says what failed instead.
pub fn rejection_message(rejected: &conf::Rejected, extra_pg_conf: &[(String, String)]) -> String {
    let message = &rejected.message;
    let from_extra = |setting: &str| extra_pg_conf.iter().any(|(name, _)| name == setting);
    match (&rejected.setting, &rejected.file) {
        (setting, Some(file)) if !rejected.in_charm_conf() => format!(
            "PostgreSQL rejects {} in {file}, which the charm does not manage: {message}",
            setting.as_deref().unwrap_or("a line")
        ),
        (Some(setting), _) if from_extra(setting) => {
            format!("config extra-pg-conf: the server rejects {setting}: {message}")
        }
        (Some(setting), _) => format!(
            "PostgreSQL rejects the charm's own setting {setting} (please report this): {message}"
        ),
        (None, _) => format!("PostgreSQL could not check the configuration: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::conf::parse_rejection;

    #[test]
    fn a_rejection_names_extra_pg_conf_only_for_its_own_settings() {
        let charm_file = "/etc/postgresql/15/main/conf.d/90-juju-charm.conf";
        let bad_value = |name: &str, file: &str| {
            parse_rejection(&format!(
                "LOG:  invalid value for parameter \"{name}\": \"lots\"\n\
                 FATAL:  configuration file \"{file}\" contains errors\n"
            ))
        };
        let extra = vec![("work_mem".to_string(), "lots".to_string())];
        let cases = [
            (
                bad_value("work_mem", charm_file),
                "config extra-pg-conf: the server rejects work_mem: invalid value",
            ),
            (
                bad_value("shared_buffers", charm_file),
                "PostgreSQL rejects the charm's own setting shared_buffers",
            ),
            (
                bad_value("work_mem", "/etc/postgresql/15/main/conf.d/50-local.conf"),
                "PostgreSQL rejects work_mem in /etc/postgresql/15/main/conf.d/50-local.conf, \
                 which the charm does not manage",
            ),
            (
                parse_rejection(
                    "postgres: could not identify current directory: Permission denied\n",
                ),
                "PostgreSQL could not check the configuration: postgres: could not identify \
                 current directory",
            ),
        ];
        for (rejected, wanted) in cases {
            let message = rejection_message(&rejected, &extra);
            assert!(message.starts_with(wanted), "{message}");
        }
    }

    fn options(pairs: &[(&str, &str)]) -> ClusterOptions {
        let mut config: std::collections::BTreeMap<String, serde_json::Value> = [
            ("locale", "C.UTF-8"),
            ("encoding", "UTF8"),
            ("profile", "mixed"),
            ("storage-type", "auto"),
        ]
        .iter()
        .chain(pairs)
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
        config.retain(|_, v| v != "");
        ClusterOptions::from_config(&crate::juju::Config::from_map(config)).unwrap()
    }

    fn facts(options: ClusterOptions) -> UnitFacts {
        UnitFacts {
            options,
            data_dir: "/var/lib/postgresql/16/main".into(),
            pgdata_mount: None,
            machine: MachineFacts {
                memory_bytes: 8 << 30,
                cpus: 4,
                data: None,
                wal: None,
                pg_major: 16,
                has_lz4: true,
            },
            owner: Some(OwnerRecord {
                major: 16,
                unit: "postgresql/0".into(),
                locale: Some("C.UTF-8".into()),
                encoding: Some("UTF8".into()),
            }),
            running: true,
            cached_access: Vec::new(),
            tls: None,
        }
    }

    fn access(relation: &str, cidr: &str) -> RelationAccess {
        use crate::relations::access::HbaScope;
        use crate::relations::sql::{Name, NameKind};
        RelationAccess {
            relation: relation.parse().unwrap(),
            remote_app: "app".into(),
            user: Name::parse(NameKind::User, "juju_app").unwrap(),
            scope: HbaScope::AllDatabases,
            cidrs: [cidr.parse().unwrap()].into(),
        }
    }

    #[test]
    fn only_locale_and_encoding_changed_after_creation_block_the_plan() {
        // (option changed, recorded locale, blocked with)
        let cases = [
            (None, Some("C.UTF-8"), None),
            (
                Some(("locale", "en_US.UTF-8")),
                Some("C.UTF-8"),
                Some("config locale: cannot change from C.UTF-8 to en_US.UTF-8"),
            ),
            (
                Some(("encoding", "LATIN1")),
                Some("C.UTF-8"),
                Some("config encoding: cannot change from UTF8 to LATIN1"),
            ),
            // A cluster adopted by an older revision recorded no locale.
            (Some(("locale", "en_US.UTF-8")), None, None),
            (Some(("profile", "oltp")), Some("C.UTF-8"), None),
        ];
        for (changed, recorded, wanted) in cases {
            let mut facts = facts(options(changed.as_slice()));
            facts.owner.as_mut().unwrap().locale = recorded.map(str::to_string);
            match (plan(&facts), wanted) {
                (Step::Done(_), None) => {}
                (Step::Blocked(message), Some(wanted)) => {
                    assert!(message.starts_with(wanted), "{message}")
                }
                (other, _) => panic!("{changed:?}: {other:?}"),
            }
        }
        // No record (the cluster was just placed, or never recorded): no check.
        let mut facts = facts(options(&[("locale", "en_US.UTF-8")]));
        facts.owner = None;
        assert!(matches!(plan(&facts), Step::Done(_)));
    }

    #[test]
    fn the_version_cannot_change_once_a_cluster_exists() {
        let cases = [
            (None, None, false),
            (None, Some(16), false),
            (Some(16), None, false),
            (Some(16), Some(16), false),
            (Some(15), Some(16), true),
        ];
        for (existing, wanted, blocked) in cases {
            let problem = version_change(existing, wanted);
            assert_eq!(problem.is_some(), blocked, "{existing:?} {wanted:?}");
        }
        assert_eq!(
            version_change(Some(15), Some(16)).unwrap(),
            "config version: cannot change from 15 to 16 after install; set it back to 15 or \"\""
        );
        assert_eq!(still_serving("x", false), "x");
        assert_eq!(
            still_serving("x", true),
            "x (still serving with the last good configuration)"
        );
    }

    #[test]
    fn pg_hba_is_written_before_start_only_when_the_server_is_down_and_once_otherwise() {
        let cached = vec![access("db:1", "10.0.0.1/32")];
        let changed = vec![access("db:1", "10.0.0.2/32")];
        // (running, what serving concluded, written before start, written after)
        let cases = [
            (true, &cached, false, true),
            (true, &changed, false, true),
            (false, &cached, true, false),
            (false, &changed, true, true),
        ];
        for (running, served, before, after) in cases {
            let mut facts = facts(options(&[]));
            facts.running = running;
            facts.cached_access = cached.clone();
            let Step::Done(plan) = plan(&facts) else {
                panic!("blocked")
            };
            assert_eq!(plan.hba_before_start.is_some(), before, "{running}");
            if let Some(hba) = &plan.hba_before_start {
                assert_eq!(hba.relations, cached);
            }
            assert_eq!(hba_after_serving(&plan, served), after, "{running}");
        }
    }

    #[test]
    fn extra_pg_conf_wins_over_the_charms_settings_and_the_tuning() {
        let settings = desired_settings(
            &options(&[(
                "extra-pg-conf",
                "listen_addresses = 'localhost'\nwork_mem = 64MB",
            )]),
            &facts(options(&[])).machine,
            None,
        );
        let names: Vec<&str> = settings.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names[0], "password_encryption");
        assert_eq!(names.iter().filter(|n| **n == "work_mem").count(), 1);
        assert_eq!(&names[names.len() - 2..], ["listen_addresses", "work_mem"]);
        assert_eq!(settings.last().unwrap().value, "64MB");
        let plain = desired_settings(&options(&[]), &facts(options(&[])).machine, None);
        assert_eq!(plain[0].name, "listen_addresses");
        assert!(plain.iter().any(|s| s.name == "shared_buffers"));
    }

    #[test]
    fn tls_settings_come_with_the_files_and_extra_pg_conf_still_wins() {
        let files = crate::tls::ServedFiles {
            certificate: "/etc/postgresql/16/main/tls/cert.pem".into(),
            key: "/etc/postgresql/16/main/tls/key.pem".into(),
        };
        let value = |settings: &[Setting], name: &str| {
            settings
                .iter()
                .filter(|s| s.name == name)
                .map(|s| s.value.clone())
                .collect::<Vec<_>>()
        };
        let machine = facts(options(&[])).machine;
        let without = desired_settings(&options(&[]), &machine, None);
        assert!(value(&without, "ssl").is_empty());
        let with = desired_settings(&options(&[]), &machine, Some(&files));
        assert_eq!(value(&with, "ssl"), ["on"]);
        assert_eq!(
            value(&with, "ssl_key_file"),
            ["'/etc/postgresql/16/main/tls/key.pem'"]
        );
        let overridden = desired_settings(
            &options(&[("extra-pg-conf", "ssl_min_protocol_version = 'TLSv1.3'")]),
            &machine,
            Some(&files),
        );
        assert_eq!(
            value(&overridden, "ssl_min_protocol_version"),
            ["'TLSv1.3'"]
        );
        assert_eq!(value(&overridden, "ssl"), ["on"]);
    }

    #[test]
    fn client_tls_require_makes_the_client_rules_hostssl() {
        for (raw, required) in [("prefer", false), ("require", true), ("", false)] {
            let input = hba_input(&options(&[("client-tls", raw)]), Vec::new());
            assert_eq!(input.require_tls, required, "{raw}");
        }
    }

    #[test]
    fn the_status_says_where_the_server_runs() {
        let volume = crate::tuning::VolumeFacts::default();
        // (storage-type, pgdata mount, disk known, place)
        let cases = [
            ("auto", None, true, "on the root disk (no pgdata storage)"),
            ("auto", Some("/srv/pgdata"), false, "on /srv/pgdata"),
            ("auto", Some("/srv/pgdata"), true, "on /srv/pgdata"),
            ("ssd", Some("/srv/pgdata"), true, "on /srv/pgdata (ssd)"),
            ("ssd", Some("/srv/pgdata"), false, "on /srv/pgdata"),
        ];
        for (storage_type, mount, known, wanted) in cases {
            let mut facts = facts(options(&[("storage-type", storage_type)]));
            facts.pgdata_mount = mount.map(PathBuf::from);
            facts.machine.data = known.then(|| volume.clone());
            let Step::Done(plan) = plan(&facts) else {
                panic!("blocked")
            };
            assert_eq!(plan.place, wanted);
            assert_eq!(
                active_message("16.4", &plan, &[]),
                format!("PostgreSQL 16.4 {wanted}")
            );
        }
        let Step::Done(plan) = plan(&facts(options(&[]))) else {
            panic!("blocked")
        };
        assert_eq!(
            active_message("16.4", &plan, &["a".into(), "b".into()]),
            "PostgreSQL 16.4 on the root disk (no pgdata storage); host: a; b"
        );
    }
}
