//! etcd's environment file (pure): `ETCD_*` variables, one per line, read
//! by the charm's systemd unit (`EnvironmentFile=`) and by the detached
//! start alike ([`parse_env_file`]). It holds no secret.
//!
//! `INITIAL_*` matter only on the member's first start (an empty data
//! directory): the first member starts `new` with only itself; every later
//! one `existing` with every voting member and itself, after the Juju leader
//! added it as a learner. Once the data directory exists they are ignored,
//! so a restart after a crash just works.

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::{Member, Scheme};

/// etcd's TLS files, readable by the etcd user
/// ([`crate::tls::files::EtcdTlsDir`]): the unit's key and its certificate
/// from the application's internal CA, and that CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// How a member's first start joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    /// The first member: a new one-member cluster.
    New,
    /// A member the leader added to the running cluster.
    Existing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    pub me: Member,
    /// Every member at the time of this member's first start (it included).
    pub initial_cluster: Vec<Member>,
    pub initial_state: InitialState,
    /// Unique per cluster, so that two clusters' members never talk.
    pub cluster_token: String,
    pub data_dir: PathBuf,
    /// TLS for peers and clients; `None` speaks HTTP (a cluster founded
    /// without the internal CA).
    pub tls: Option<EtcdTls>,
}

/// `juju-pg-<model uuid>-<application>`.
pub fn cluster_token(model_uuid: &str, application: &str) -> String {
    format!("juju-pg-{model_uuid}-{application}")
}

impl EtcdConfig {
    /// Every member of a cluster speaks the same scheme. With TLS:
    /// clients (Patroni, etcdctl) verify the server's certificate and log
    /// in with their passwords, as over HTTP; peers must show a
    /// certificate of the internal CA too (`PEER_CLIENT_CERT_AUTH`), so
    /// nothing else can take part in etcd's consensus. The client port
    /// does not ask for certificates: etcd 3.4 would demand one of every
    /// client once `ETCD_TRUSTED_CA_FILE` is set, which is why it is not.
    pub fn render(&self) -> String {
        let me = &self.me;
        let scheme = Scheme::of(self.tls.is_some());
        let mut initial: Vec<&Member> = self.initial_cluster.iter().collect();
        if !initial.iter().any(|m| m.unit == me.unit) {
            initial.push(me);
        }
        initial.sort();
        let initial_cluster = initial
            .iter()
            .map(|m| format!("{}={}", m.name(), m.etcd_peer_url(scheme)))
            .collect::<Vec<_>>()
            .join(",");
        let state = match self.initial_state {
            InitialState::New => "new",
            InitialState::Existing => "existing",
        };
        let mut lines = vec![
            ("ETCD_NAME", me.name()),
            (
                "ETCD_DATA_DIR",
                self.data_dir.to_string_lossy().into_owned(),
            ),
            ("ETCD_LISTEN_CLIENT_URLS", me.etcd_client_url(scheme)),
            ("ETCD_ADVERTISE_CLIENT_URLS", me.etcd_client_url(scheme)),
            ("ETCD_LISTEN_PEER_URLS", me.etcd_peer_url(scheme)),
            ("ETCD_INITIAL_ADVERTISE_PEER_URLS", me.etcd_peer_url(scheme)),
            ("ETCD_INITIAL_CLUSTER", initial_cluster),
            ("ETCD_INITIAL_CLUSTER_STATE", state.to_string()),
            ("ETCD_INITIAL_CLUSTER_TOKEN", self.cluster_token.clone()),
            ("ETCD_LOGGER", "zap".into()),
            ("ETCD_LOG_OUTPUTS", "stderr".into()),
            ("ETCD_AUTH_TOKEN", "simple".into()),
            // Refuse to reconfigure into a cluster that loses quorum.
            ("ETCD_STRICT_RECONFIG_CHECK", "true".into()),
        ];
        if let Some(tls) = &self.tls {
            let path = |p: &PathBuf| p.to_string_lossy().into_owned();
            lines.extend([
                ("ETCD_CERT_FILE", path(&tls.certificate)),
                ("ETCD_KEY_FILE", path(&tls.key)),
                ("ETCD_PEER_CERT_FILE", path(&tls.certificate)),
                ("ETCD_PEER_KEY_FILE", path(&tls.key)),
                ("ETCD_PEER_TRUSTED_CA_FILE", path(&tls.ca)),
                ("ETCD_PEER_CLIENT_CERT_AUTH", "true".into()),
            ]);
        }
        let mut text = String::from(
            "# Written by the PostgreSQL charm: etcd for Patroni. Read by its\n\
             # systemd unit and by its detached start alike.\n",
        );
        for (key, value) in lines {
            text.push_str(&format!("{key}={value}\n"));
        }
        text
    }
}

/// The variables of an environment file the charm wrote: `KEY=value`
/// lines, `#` comments, no quoting. Anything else is an error (the file is
/// root's; a strange line means someone else wrote it).
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {}: not KEY=value", n + 1);
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            bail!("line {}: {key:?} is not a variable name", n + 1);
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(n: u32) -> Member {
        Member::new(
            &format!("postgresql/{n}"),
            format!("198.18.0.{}", 10 + n).parse().unwrap(),
        )
    }

    fn config(me: u32, initial: &[u32], state: InitialState) -> EtcdConfig {
        EtcdConfig {
            me: m(me),
            initial_cluster: initial.iter().map(|&n| m(n)).collect(),
            initial_state: state,
            cluster_token: cluster_token("uuid-1", "postgresql"),
            data_dir: "/var/lib/etcd/juju-pg-main".into(),
            tls: None,
        }
    }

    fn vars(c: &EtcdConfig) -> std::collections::BTreeMap<String, String> {
        parse_env_file(&c.render()).unwrap().into_iter().collect()
    }

    #[test]
    fn the_first_member_starts_a_new_cluster_of_itself() {
        let v = vars(&config(0, &[], InitialState::New));
        assert_eq!(v["ETCD_NAME"], "postgresql-0");
        assert_eq!(v["ETCD_DATA_DIR"], "/var/lib/etcd/juju-pg-main");
        assert_eq!(v["ETCD_LISTEN_CLIENT_URLS"], "http://198.18.0.10:2379");
        assert_eq!(v["ETCD_ADVERTISE_CLIENT_URLS"], "http://198.18.0.10:2379");
        assert_eq!(v["ETCD_LISTEN_PEER_URLS"], "http://198.18.0.10:2380");
        assert_eq!(
            v["ETCD_INITIAL_ADVERTISE_PEER_URLS"],
            "http://198.18.0.10:2380"
        );
        assert_eq!(
            v["ETCD_INITIAL_CLUSTER"],
            "postgresql-0=http://198.18.0.10:2380"
        );
        assert_eq!(v["ETCD_INITIAL_CLUSTER_STATE"], "new");
        assert_eq!(v["ETCD_INITIAL_CLUSTER_TOKEN"], "juju-pg-uuid-1-postgresql");
        assert_eq!(v["ETCD_AUTH_TOKEN"], "simple");
    }

    #[test]
    fn a_joiner_lists_every_member_and_itself_sorted() {
        let v = vars(&config(2, &[1, 0], InitialState::Existing));
        assert_eq!(
            v["ETCD_INITIAL_CLUSTER"],
            "postgresql-0=http://198.18.0.10:2380,postgresql-1=http://198.18.0.11:2380,\
             postgresql-2=http://198.18.0.12:2380"
        );
        assert_eq!(v["ETCD_INITIAL_CLUSTER_STATE"], "existing");
        // Listing itself too does not repeat it.
        let again = vars(&config(2, &[0, 1, 2], InitialState::Existing));
        assert_eq!(again["ETCD_INITIAL_CLUSTER"], v["ETCD_INITIAL_CLUSTER"]);
    }

    #[test]
    fn with_tls_every_url_is_https_and_peers_must_show_a_certificate() {
        let tls = EtcdTls {
            certificate: "/t/cert.pem".into(),
            key: "/t/key.pem".into(),
            ca: "/t/ca.pem".into(),
        };
        let v = vars(&EtcdConfig {
            tls: Some(tls),
            ..config(2, &[1, 0], InitialState::Existing)
        });
        assert_eq!(v["ETCD_LISTEN_CLIENT_URLS"], "https://198.18.0.12:2379");
        assert_eq!(v["ETCD_ADVERTISE_CLIENT_URLS"], "https://198.18.0.12:2379");
        assert_eq!(v["ETCD_LISTEN_PEER_URLS"], "https://198.18.0.12:2380");
        assert_eq!(
            v["ETCD_INITIAL_ADVERTISE_PEER_URLS"],
            "https://198.18.0.12:2380"
        );
        assert_eq!(
            v["ETCD_INITIAL_CLUSTER"],
            "postgresql-0=https://198.18.0.10:2380,postgresql-1=https://198.18.0.11:2380,\
             postgresql-2=https://198.18.0.12:2380"
        );
        for (key, want) in [
            ("ETCD_CERT_FILE", "/t/cert.pem"),
            ("ETCD_KEY_FILE", "/t/key.pem"),
            ("ETCD_PEER_CERT_FILE", "/t/cert.pem"),
            ("ETCD_PEER_KEY_FILE", "/t/key.pem"),
            ("ETCD_PEER_TRUSTED_CA_FILE", "/t/ca.pem"),
            ("ETCD_PEER_CLIENT_CERT_AUTH", "true"),
        ] {
            assert_eq!(v[key], want, "{key}");
        }
        // Clients log in with passwords; a client CA would make etcd 3.4
        // demand client certificates.
        assert!(!v.contains_key("ETCD_TRUSTED_CA_FILE"));
        assert!(!v.contains_key("ETCD_CLIENT_CERT_AUTH"));
        // Without TLS, none of it.
        let plain = vars(&config(0, &[], InitialState::New));
        assert!(plain
            .keys()
            .all(|k| !k.contains("CERT") && !k.contains("KEY_FILE")));
    }

    #[test]
    fn env_files_with_strange_lines_are_refused() {
        assert!(parse_env_file("# c\n\nA_1=x=y\n").unwrap() == [("A_1".into(), "x=y".into())]);
        for bad in ["just words", "=x", "lower=x", "A B=x"] {
            assert!(parse_env_file(bad).is_err(), "{bad}");
        }
    }
}
