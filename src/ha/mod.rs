//! High availability: every unit runs etcd and Patroni, and Patroni runs
//! PostgreSQL (issues 11 and 12). These modules are the parts that do not
//! depend on how the converge is structured; the converge calls them.
//!
//! Pure (table-tested):
//! * [`version`]: which Patroni to run (the archive's from 3.0.3, else the
//!   wheel bundled into the charm).
//! * [`options`]: `synchronous-node-count`, `synchronous-mode-strict`, the
//!   timing profiles.
//! * [`settings`]: PostgreSQL settings split into cluster-wide (Patroni's
//!   DCS) and per-member (the local patroni.yml).
//! * [`patroni_config`]: patroni.yml (as JSON) and [`dcs`]: the dynamic
//!   configuration (`bootstrap.dcs`, then `PATCH /config` diffs).
//! * [`etcd_config`]: the etcd environment file; [`units`]: systemd units.
//! * [`membership`]: what the Juju leader and each unit do next (etcd
//!   learners, Patroni start, disk checks); [`topology`]: who is primary,
//!   from Patroni's REST API, and the warnings; [`divergence`]: a standby
//!   that forked off the primary's timeline and could not be rewound, when
//!   and how it is re-cloned with its data kept aside.
//! * [`watcher`] (decision part): when to restart a service, when to
//!   dispatch the topology hook.
//!
//! Shells (thin): [`http`] + [`patroni_api`] (Patroni's REST API),
//! [`etcdctl`], [`services`] (systemd or detached processes with recorded
//! pids), [`install`] (packages, the bundled Patroni), and the watcher's loop
//! (`src/bin/pg-ha-watcher.rs`).
//!
//! Names shared by everything: [`Member`] and [`HaPaths`].

pub mod converge;
pub mod dcs;
pub mod divergence;
pub mod etcd_config;
pub mod etcdctl;
pub mod http;
pub mod install;
pub mod membership;
pub mod options;
pub mod patroni_api;
pub mod patroni_config;
pub mod plan;
pub mod services;
pub mod settings;
pub mod switchover;
pub mod topology;
pub mod units;
pub mod version;
pub mod watcher;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Patroni's REST API port.
pub const REST_API_PORT: u16 = 8008;
/// etcd's client port.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// etcd's peer port.
pub const ETCD_PEER_PORT: u16 = 2380;
/// The prefix of every key Patroni writes in etcd (`<namespace><scope>/...`).
pub const DCS_NAMESPACE: &str = "/juju-pg/";
/// The hook the watcher dispatches when the primary or the standbys change.
pub const TOPOLOGY_HOOK: &str = "ha-topology-changed";

/// One unit as a cluster member: its Juju unit, its member name in Patroni
/// and etcd, and its address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    pub unit: String,
    pub address: IpAddr,
}

impl Member {
    pub fn new(unit: &str, address: IpAddr) -> Self {
        Self {
            unit: unit.to_string(),
            address,
        }
    }

    /// `postgresql/3` → `postgresql-3`: Patroni's and etcd's name for it
    /// (also the `application_name` in `synchronous_standby_names`, and,
    /// with `-` as `_`, its replication slot).
    pub fn name(&self) -> String {
        member_name(&self.unit)
    }

    pub fn etcd_peer_url(&self, scheme: Scheme) -> String {
        format!(
            "{}://{}",
            scheme.as_str(),
            host_port(self.address, ETCD_PEER_PORT)
        )
    }

    pub fn etcd_client_url(&self, scheme: Scheme) -> String {
        format!(
            "{}://{}",
            scheme.as_str(),
            host_port(self.address, ETCD_CLIENT_PORT)
        )
    }

    /// Whether one of etcd's `peer_urls` for a member is this unit's peer
    /// address, whatever its scheme: a member registered over HTTP (a
    /// cluster founded before etcd spoke TLS) is still this unit, never a
    /// stranger to remove.
    pub fn is_at(&self, peer_urls: &[String]) -> bool {
        let address = host_port(self.address, ETCD_PEER_PORT);
        peer_urls.iter().any(|url| {
            url.strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .is_some_and(|rest| rest.trim_end_matches('/') == address)
        })
    }
}

/// How etcd's members and clients talk: TLS for clusters founded with the
/// internal CA ([`membership::HaAppState::etcd_tls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn of(tls: bool) -> Self {
        if tls {
            Scheme::Https
        } else {
            Scheme::Http
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.unit, self.address)
    }
}

/// The member name of a Juju unit: `app/N` → `app-N`.
pub fn member_name(unit: &str) -> String {
    unit.replace('/', "-")
}

/// `1.2.3.4:5432`, or `[fd00::1]:5432` for IPv6.
pub fn host_port(address: IpAddr, port: u16) -> String {
    match address {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Where everything HA lives on a unit whose cluster is `<major>/<name>`
/// (`main` in production; tests vary the name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaPaths {
    /// Patroni's configuration (JSON, which is YAML): 0600, postgres.
    pub patroni_config: PathBuf,
    /// The pgpass file Patroni writes for replication and rewind.
    pub patroni_pgpass: PathBuf,
    /// etcd's environment file, for both the systemd unit and the detached start.
    pub etcd_env: PathBuf,
    /// etcd's data: never the package's `/var/lib/etcd/default`.
    pub etcd_data: PathBuf,
    /// etcd's TLS files (the unit's key, its certificate from the internal
    /// CA, that CA): root with group etcd, `0750`
    /// ([`crate::tls::files::EtcdTlsDir`]).
    pub etcd_tls: PathBuf,
    /// Output of the detached processes (root's).
    pub log_dir: PathBuf,
    /// Where the bundled Patroni is installed (root's, readable by all;
    /// not under the charm's state directory, which only root may enter).
    /// Under `/var`, which each emulated machine has its own copy of,
    /// unlike `/usr/lib`.
    pub bundled_root: PathBuf,
    /// The systemd unit directory.
    pub systemd_dir: PathBuf,
    /// The suffix of every name: the cluster name.
    pub name: String,
}

impl HaPaths {
    pub fn for_cluster(major: u32, name: &str) -> Self {
        Self {
            patroni_config: PathBuf::from(format!("/etc/patroni/juju-pg-{major}-{name}.json")),
            patroni_pgpass: PathBuf::from(format!(
                "/var/lib/postgresql/.juju-pg-{major}-{name}.pgpass"
            )),
            etcd_env: PathBuf::from(format!("/etc/default/juju-pg-etcd-{name}")),
            etcd_data: PathBuf::from(format!("/var/lib/etcd/juju-pg-{name}")),
            etcd_tls: PathBuf::from(format!("/var/lib/etcd/juju-pg-{name}.tls")),
            log_dir: PathBuf::from("/var/log/juju-pg-charm"),
            bundled_root: PathBuf::from("/var/lib/juju-pg-patroni"),
            systemd_dir: PathBuf::from("/etc/systemd/system"),
            name: name.to_string(),
        }
    }

    /// `juju-pg-<what>-<name>`: the systemd unit (without `.service`) and
    /// the base of the detached process's files.
    pub fn service_name(&self, what: ServiceKind) -> String {
        format!("juju-pg-{}-{}", what.as_str(), self.name)
    }

    pub fn log_file(&self, what: ServiceKind) -> PathBuf {
        self.log_dir
            .join(format!("{}.log", self.service_name(what)))
    }

    pub fn unit_file(&self, what: ServiceKind) -> PathBuf {
        self.systemd_dir
            .join(format!("{}.service", self.service_name(what)))
    }
}

/// The long-running processes the charm owns on every unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    Etcd,
    Patroni,
    HaWatcher,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 3] = [
        ServiceKind::Etcd,
        ServiceKind::Patroni,
        ServiceKind::HaWatcher,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Etcd => "etcd",
            ServiceKind::Patroni => "patroni",
            ServiceKind::HaWatcher => "ha-watcher",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_and_urls() {
        let m = Member::new("postgresql/12", "198.18.0.7".parse().unwrap());
        assert_eq!(m.name(), "postgresql-12");
        assert_eq!(m.etcd_peer_url(Scheme::Http), "http://198.18.0.7:2380");
        assert_eq!(m.etcd_peer_url(Scheme::Https), "https://198.18.0.7:2380");
        assert_eq!(m.etcd_client_url(Scheme::Https), "https://198.18.0.7:2379");
        let v6 = Member::new("pg/0", "fd00::5".parse().unwrap());
        assert_eq!(v6.etcd_peer_url(Scheme::Http), "http://[fd00::5]:2380");
    }

    #[test]
    fn a_member_is_found_by_its_peer_address_whatever_the_scheme() {
        let m = Member::new("postgresql/1", "198.18.0.7".parse().unwrap());
        let urls = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(m.is_at(&urls(&["http://198.18.0.7:2380"])));
        assert!(m.is_at(&urls(&["https://198.18.0.7:2380"])));
        assert!(m.is_at(&urls(&[
            "https://10.0.0.1:2380",
            "https://198.18.0.7:2380/"
        ])));
        for other in [
            "https://198.18.0.70:2380",
            "https://198.18.0.7:2379",
            "198.18.0.7:2380",
            "unix://198.18.0.7:2380",
        ] {
            assert!(!m.is_at(&urls(&[other])), "{other}");
        }
        let v6 = Member::new("pg/0", "fd00::5".parse().unwrap());
        assert!(v6.is_at(&urls(&["https://[fd00::5]:2380"])));
    }

    #[test]
    fn paths_carry_the_cluster_name() {
        let p = HaPaths::for_cluster(15, "main");
        assert_eq!(
            p.patroni_config,
            PathBuf::from("/etc/patroni/juju-pg-15-main.json")
        );
        assert_eq!(p.etcd_data, PathBuf::from("/var/lib/etcd/juju-pg-main"));
        assert_eq!(
            p.service_name(ServiceKind::HaWatcher),
            "juju-pg-ha-watcher-main"
        );
        assert_eq!(
            p.unit_file(ServiceKind::Patroni),
            PathBuf::from("/etc/systemd/system/juju-pg-patroni-main.service")
        );
        assert_eq!(
            p.log_file(ServiceKind::Etcd),
            PathBuf::from("/var/log/juju-pg-charm/juju-pg-etcd-main.log")
        );
    }
}
