//! patroni.yml (pure), rendered as JSON: valid YAML that PyYAML (YAML 1.1)
//! reads without `off`/`on`/`no` surprises (`watchdog.mode: off` unquoted
//! is `false`, which Patroni refuses).
//!
//! What the prototype measured to work with postgresql-common (notes §4):
//! * `config_dir` is the cluster's `/etc/postgresql/<major>/<name>`: Patroni
//!   renames its `postgresql.conf` once to `postgresql.base.conf` and writes
//!   its own, which includes it, so the charm's conf.d keeps working.
//! * no `pg_hba`/`pg_ident` anywhere: Patroni then leaves the charm's files
//!   alone (it only points `hba_file`/`ident_file` at them).
//! * the superuser `postgres` without password over the socket (peer);
//!   replication and rewind roles with passwords, created by the charm.
//! * `basebackup`: `checkpoint: fast`, `waldir` on the pgwal storage, and
//!   `no-slot` when strict mode may be on (else the clone's WAL stream can
//!   acknowledge commits as a synchronous standby while it is still copying).
//! * `remove_data_directory_on_*: false` (Debian's template says true).
//!
//! The file holds four passwords: [`render`] returns it as a [`Secret`];
//! write it 0600, owned by postgres.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::dcs::DynamicConfig;
use super::{host_port, Member, DCS_NAMESPACE, ETCD_CLIENT_PORT, REST_API_PORT};
use crate::secret::{Password, Secret};

/// The REST API's basic-auth user.
pub const REST_API_USER: &str = "patroni";
/// Patroni's etcd user (read-write on [`DCS_NAMESPACE`] only).
pub const ETCD_PATRONI_USER: &str = "patroni";
/// The replication role.
pub const REPLICATION_USER: &str = "juju_replication";
/// The role pg_rewind connects as.
pub const REWIND_USER: &str = "juju_rewind";

/// Patroni's hardware watchdog use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogMode {
    /// Emulated machines: `/dev/watchdog` is the whole host's.
    Off,
    /// Real machines: used when `/dev/watchdog` is there (softdog loaded).
    Automatic,
}

impl WatchdogMode {
    fn as_str(self) -> &'static str {
        match self {
            WatchdogMode::Off => "off",
            WatchdogMode::Automatic => "automatic",
        }
    }
}

/// The passwords Patroni needs.
#[derive(Debug, Clone)]
pub struct PatroniSecrets {
    pub rest_api: Password,
    pub etcd: Password,
    pub replication: Password,
    pub rewind: Password,
}

/// TLS between the units (issue 14 item 5): what a unit trusts in the
/// others ([`crate::tls::files::PEER_CA`]: replication and rewind connect
/// with `sslmode=verify-ca` against it, Patroni's calls to the other
/// members' REST APIs verify with it), and the certificate and key it
/// serves (PostgreSQL's, which Patroni's REST API serves too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTls {
    pub ca: PathBuf,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// Everything patroni.yml says, as data.
#[derive(Debug, Clone)]
pub struct PatroniConfig {
    /// The cluster's name in the DCS (the Juju application).
    pub scope: String,
    pub me: Member,
    /// The etcd members Patroni may talk to (the admitted members).
    pub etcd_members: Vec<Member>,
    /// `listen_addresses` (`*` or the unit's address).
    pub listen_host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub config_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub pgpass: PathBuf,
    pub socket_dir: PathBuf,
    /// `pg_wal` on the pgwal storage, when the unit has one.
    pub wal_dir: Option<PathBuf>,
    /// `synchronous-mode-strict` is set (the joiner's clone uses no slot).
    pub strict: bool,
    pub watchdog: WatchdogMode,
    /// TLS between the units ([`PeerTls`]); `None` (no internal CA)
    /// leaves libpq's `prefer` and the REST API on HTTP.
    pub peer_tls: Option<PeerTls>,
    /// etcd speaks TLS ([`crate::ha::membership::HaAppState::etcd_tls_for`]):
    /// Patroni verifies it with `peer_tls`'s CA (which holds the internal
    /// CA); filled in by the plan.
    pub etcd_tls: bool,
    /// This machine's settings (`settings::split`'s `member`).
    pub local_parameters: BTreeMap<String, String>,
    /// Written to the DCS by whoever initialises the cluster.
    pub dynamic: DynamicConfig,
}

fn path(p: &Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

fn address(host: IpAddr, port: u16) -> Value {
    Value::String(host_port(host, port))
}

impl PatroniConfig {
    /// The configuration with passwords replaced by `***` (for tests and
    /// for showing the operator).
    pub fn to_json_redacted(&self) -> Value {
        self.to_json(None)
    }

    fn to_json(&self, secrets: Option<&PatroniSecrets>) -> Value {
        let hidden = || "***".to_string();
        let pw = |f: fn(&PatroniSecrets) -> &Password| {
            secrets.map_or_else(hidden, |s| f(s).expose().clone())
        };
        let mut parameters: Map<String, Value> = self
            .local_parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        parameters.insert("unix_socket_directories".into(), path(&self.socket_dir));
        let mut basebackup = vec![json!({"checkpoint": "fast"})];
        if let Some(wal_dir) = &self.wal_dir {
            basebackup.push(json!({ "waldir": path(wal_dir) }));
        }
        if self.strict {
            basebackup.push(json!("no-slot"));
        }
        let hosts: Vec<Value> = self
            .etcd_members
            .iter()
            .map(|m| address(m.address, ETCD_CLIENT_PORT))
            .collect();
        let listen = if self.listen_host.contains(':') && !self.listen_host.starts_with('[') {
            format!("[{}]:{}", self.listen_host, self.port)
        } else {
            format!("{}:{}", self.listen_host, self.port)
        };
        let mut replication =
            json!({"username": REPLICATION_USER, "password": pw(|s| &s.replication)});
        let mut rewind = json!({"username": REWIND_USER, "password": pw(|s| &s.rewind)});
        let mut restapi = json!({
            "listen": address(self.me.address, REST_API_PORT),
            "connect_address": address(self.me.address, REST_API_PORT),
            "authentication": {"username": REST_API_USER, "password": pw(|s| &s.rest_api)},
        });
        // Patroni's own client (member to member, patronictl) reads `ctl`.
        let mut ctl = json!({});
        let mut etcd3 = json!({
            "hosts": hosts,
            "protocol": "http",
            "username": ETCD_PATRONI_USER,
            "password": pw(|s| &s.etcd),
        });
        if let Some(tls) = &self.peer_tls {
            for auth in [&mut replication, &mut rewind] {
                auth["sslmode"] = json!("verify-ca");
                auth["sslrootcert"] = path(&tls.ca);
            }
            restapi["certfile"] = path(&tls.certificate);
            restapi["keyfile"] = path(&tls.key);
            ctl["cacert"] = path(&tls.ca);
            if self.etcd_tls {
                etcd3["protocol"] = json!("https");
                etcd3["cacert"] = path(&tls.ca);
            }
        }
        json!({
            "scope": self.scope,
            "namespace": DCS_NAMESPACE,
            "name": self.me.name(),
            "restapi": restapi,
            "ctl": ctl,
            "etcd3": etcd3,
            "bootstrap": {
                "dcs": self.dynamic.to_json(),
                // Never used (the charm makes the cluster with
                // pg_createcluster and Patroni adopts it); checksums if ever.
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            },
            "postgresql": {
                "listen": listen,
                "connect_address": address(self.me.address, self.port),
                "data_dir": path(&self.data_dir),
                "config_dir": path(&self.config_dir),
                "bin_dir": path(&self.bin_dir),
                "pgpass": path(&self.pgpass),
                "use_unix_socket": true,
                "authentication": {
                    "superuser": {"username": "postgres"},
                    "replication": replication,
                    "rewind": rewind,
                },
                "basebackup": basebackup,
                "remove_data_directory_on_rewind_failure": false,
                "remove_data_directory_on_diverged_timelines": false,
                "parameters": Value::Object(parameters),
            },
            "watchdog": {"mode": self.watchdog.as_str()},
        })
    }
}

/// The file's content, passwords included.
pub fn render(config: &PatroniConfig, secrets: &PatroniSecrets) -> Secret<String> {
    let mut text =
        serde_json::to_string_pretty(&config.to_json(Some(secrets))).expect("JSON values");
    text.push('\n');
    Secret::new(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::options::{HaOptions, TimingProfile};

    fn member(n: u32) -> Member {
        Member::new(
            &format!("postgresql/{n}"),
            format!("198.18.0.{}", n + 10).parse().unwrap(),
        )
    }

    fn secrets() -> PatroniSecrets {
        PatroniSecrets {
            rest_api: Secret::new("rest-pw".into()),
            etcd: Secret::new("etcd-pw".into()),
            replication: Secret::new("repl-pw".into()),
            rewind: Secret::new("rewind-pw".into()),
        }
    }

    fn config() -> PatroniConfig {
        let options = HaOptions::default();
        PatroniConfig {
            scope: "postgresql".into(),
            me: member(1),
            etcd_members: vec![member(0), member(1), member(2)],
            listen_host: "*".into(),
            port: 5432,
            data_dir: "/srv/pgdata/15/main".into(),
            config_dir: "/etc/postgresql/15/main".into(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            pgpass: "/var/lib/postgresql/.juju-pg-15-main.pgpass".into(),
            socket_dir: "/var/run/postgresql".into(),
            wal_dir: Some("/srv/pgwal/15/main/pg_wal".into()),
            strict: false,
            watchdog: WatchdogMode::Off,
            peer_tls: None,
            etcd_tls: false,
            local_parameters: [("shared_buffers".to_string(), "2GB".to_string())].into(),
            dynamic: DynamicConfig {
                timing: TimingProfile::FAST,
                replication: options.replication_for(3),
                parameters: [("max_connections".to_string(), "150".to_string())].into(),
            },
        }
    }

    fn rendered(config: &PatroniConfig) -> Value {
        serde_json::from_str(render(config, &secrets()).expose()).unwrap()
    }

    #[test]
    fn the_local_part_names_this_member_and_every_etcd_member() {
        let v = rendered(&config());
        assert_eq!(v["scope"], "postgresql");
        assert_eq!(v["namespace"], "/juju-pg/");
        assert_eq!(v["name"], "postgresql-1");
        assert_eq!(v["restapi"]["listen"], "198.18.0.11:8008");
        assert_eq!(v["restapi"]["authentication"]["username"], "patroni");
        assert_eq!(v["restapi"]["authentication"]["password"], "rest-pw");
        assert_eq!(
            v["etcd3"]["hosts"],
            json!(["198.18.0.10:2379", "198.18.0.11:2379", "198.18.0.12:2379"])
        );
        assert_eq!(v["etcd3"]["password"], "etcd-pw");
        let pg = &v["postgresql"];
        assert_eq!(pg["listen"], "*:5432");
        assert_eq!(pg["connect_address"], "198.18.0.11:5432");
        assert_eq!(pg["data_dir"], "/srv/pgdata/15/main");
        assert_eq!(pg["config_dir"], "/etc/postgresql/15/main");
        assert_eq!(pg["use_unix_socket"], true);
        assert_eq!(
            pg["authentication"]["superuser"],
            json!({"username": "postgres"})
        );
        assert_eq!(pg["authentication"]["replication"]["password"], "repl-pw");
        assert_eq!(pg["authentication"]["rewind"]["username"], "juju_rewind");
        assert_eq!(pg["parameters"]["shared_buffers"], "2GB");
        assert_eq!(
            pg["parameters"]["unix_socket_directories"],
            "/var/run/postgresql"
        );
        assert_eq!(pg["remove_data_directory_on_rewind_failure"], false);
        assert_eq!(pg["remove_data_directory_on_diverged_timelines"], false);
        assert_eq!(v["watchdog"]["mode"], "off");
        // No internal CA: libpq's default (prefer), nothing verified.
        assert!(pg["authentication"]["replication"].get("sslmode").is_none());
    }

    #[test]
    fn with_the_internal_ca_replication_and_rewind_verify_the_primary() {
        let mut config = config();
        config.peer_tls = Some(PeerTls {
            ca: "/etc/postgresql/15/main/tls/peers-ca.pem".into(),
            certificate: "/etc/postgresql/15/main/tls/cert.pem".into(),
            key: "/etc/postgresql/15/main/tls/key.pem".into(),
        });
        let text = render(&config, &secrets()).into_exposed();
        let v: Value = serde_json::from_str(&text).unwrap();
        for role in ["replication", "rewind"] {
            let auth = &v["postgresql"]["authentication"][role];
            assert_eq!(auth["sslmode"], "verify-ca", "{role}");
            assert_eq!(
                auth["sslrootcert"], "/etc/postgresql/15/main/tls/peers-ca.pem",
                "{role}"
            );
            assert!(
                auth["password"].as_str().unwrap().ends_with("-pw"),
                "{role}"
            );
        }
        // The REST API serves the unit's certificate; Patroni's client
        // verifies the other members with the same CA.
        assert_eq!(
            v["restapi"]["certfile"],
            "/etc/postgresql/15/main/tls/cert.pem"
        );
        assert_eq!(
            v["restapi"]["keyfile"],
            "/etc/postgresql/15/main/tls/key.pem"
        );
        assert_eq!(
            v["ctl"]["cacert"],
            "/etc/postgresql/15/main/tls/peers-ca.pem"
        );
        assert!(
            v["restapi"].get("cafile").is_none(),
            "no client certificates asked"
        );
        // A cluster whose etcd speaks HTTP (founded before it spoke TLS).
        assert_eq!(v["etcd3"]["protocol"], "http");
        assert!(v["etcd3"].get("cacert").is_none());

        config.etcd_tls = true;
        let v: Value = serde_json::from_str(&render(&config, &secrets()).into_exposed()).unwrap();
        assert_eq!(v["etcd3"]["protocol"], "https");
        assert_eq!(
            v["etcd3"]["cacert"],
            "/etc/postgresql/15/main/tls/peers-ca.pem"
        );
        assert!(
            v["etcd3"].get("cert").is_none(),
            "etcd's clients log in with passwords, not certificates"
        );
    }

    #[test]
    fn no_pg_hba_or_pg_ident_anywhere() {
        let text = render(&config(), &secrets()).into_exposed();
        assert!(
            !text.contains("pg_hba") && !text.contains("pg_ident"),
            "{text}"
        );
    }

    #[test]
    fn bootstrap_dcs_is_the_dynamic_configuration() {
        let v = rendered(&config());
        assert_eq!(v["bootstrap"]["dcs"], config().dynamic.to_json());
        assert_eq!(v["bootstrap"]["dcs"]["ttl"], 20);
        assert_eq!(v["bootstrap"]["dcs"]["loop_wait"], 2);
        assert_eq!(v["bootstrap"]["dcs"]["retry_timeout"], 3);
        assert_eq!(v["bootstrap"]["initdb"][1], "data-checksums");
    }

    #[test]
    fn basebackup_options_follow_storage_and_strict_mode() {
        let bb = |wal: Option<&str>, strict| {
            let mut c = config();
            c.wal_dir = wal.map(PathBuf::from);
            c.strict = strict;
            rendered(&c)["postgresql"]["basebackup"].clone()
        };
        assert_eq!(bb(None, false), json!([{"checkpoint": "fast"}]));
        assert_eq!(
            bb(Some("/w/15/main/pg_wal"), false),
            json!([{"checkpoint": "fast"}, {"waldir": "/w/15/main/pg_wal"}])
        );
        assert_eq!(bb(None, true), json!([{"checkpoint": "fast"}, "no-slot"]));
    }

    #[test]
    fn watchdog_and_ipv6_addresses() {
        let mut c = config();
        c.watchdog = WatchdogMode::Automatic;
        c.me = Member::new("postgresql/1", "fd00::11".parse().unwrap());
        c.listen_host = "fd00::11".into();
        let v = rendered(&c);
        assert_eq!(v["watchdog"]["mode"], "automatic");
        assert_eq!(v["restapi"]["listen"], "[fd00::11]:8008");
        assert_eq!(v["postgresql"]["listen"], "[fd00::11]:5432");
        assert_eq!(v["postgresql"]["connect_address"], "[fd00::11]:5432");
    }

    #[test]
    fn passwords_appear_only_in_the_rendered_secret() {
        let c = config();
        let redacted = c.to_json_redacted().to_string();
        for pw in ["rest-pw", "etcd-pw", "repl-pw", "rewind-pw"] {
            assert!(!redacted.contains(pw));
        }
        assert_eq!(format!("{:?}", render(&c, &secrets())), "***");
        assert!(!format!("{c:?} {:?}", secrets()).contains("-pw"));
    }
}
