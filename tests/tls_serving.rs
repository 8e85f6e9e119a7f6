//! TLS served by the real charm (issue 14, items 1 to 4), under the Juju
//! emulator with real PostgreSQL: a `database` consumer (the v0
//! data_interfaces fixture) runs on an emulated machine of its own, so
//! every connection it makes comes from its own network namespace across
//! the machine network, and `pg_hba.conf` and TLS are exercised for real.
//!
//! * Without a `certificates` relation the unit serves a certificate it
//!   made itself; the consumer is given `tls: True` and that certificate as
//!   `tls-ca` in the relation's TLS secret, and connects with
//!   `sslmode=verify-full` to the address it was given.
//! * `client-tls=require` refuses clear text from the consumer's address,
//!   PostgreSQL naming `pg_hba.conf`; TLS still connects; the local socket
//!   (the charm's peer authentication) is untouched.
//! * With the real provider fixture (`tests/tls-provider-charm`, on the v4
//!   library) the unit installs the provider's certificate without a
//!   restart (postmaster start time unchanged), and the consumer verifies
//!   it with the provider's CA; a re-signed certificate (renewal) is
//!   applied the same way; one that lacks a SAN is not installed, the
//!   status says why and the unit keeps serving; removing the relation
//!   falls back to the unit's own certificate and keeps serving.
//! * The private key appears in no relation bag, juju-log, hook output or
//!   status.
//!
//! What the server really serves is read with `openssl s_client
//! -starttls postgres`, not from the files.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::consumer::database_consumer_charm;
use common::Harness;
use juju_emulator::{DeployOptions, MachineSpec};
use scenarios::tls_provider_charm;

const CONSUMER: &str = "shop";
const DATABASE: &str = "shop";

struct Site {
    h: Harness,
    relation: u64,
    /// The address consumers are given (the unit's public address).
    address: String,
}

/// The database unit on the test host, its public address the machine
/// network's gateway (what cross-model consumers are given) and its private
/// address one consumers never use; a v0 consumer on a machine of its own,
/// related across models.
fn site(name: &str, config: &[(&str, &str)]) -> Site {
    let mut h = Harness::new(name);
    let address = h.world.machine_network().unwrap().gateway.to_string();
    h.deploy_at(
        None,
        config,
        vec![("192.0.2.71".to_string(), address.clone())],
    );
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    h.world.add_model("k8s");
    let offer = h.world.offer("postgresql", &["database"], "pg").unwrap();
    h.world
        .deploy(
            "k8s",
            CONSUMER,
            &database_consumer_charm("v0"),
            DeployOptions {
                units: 1,
                config: [("database".to_string(), DATABASE.to_string())].into(),
                machine: Some(MachineSpec::default()),
                ..Default::default()
            },
        )
        .unwrap();
    let relation = h
        .world
        .integrate_offer(&offer, CONSUMER, "pg", &[])
        .unwrap();
    h.world.settle().unwrap();
    Site {
        h,
        relation,
        address,
    }
}

impl Site {
    fn unit_status(&self) -> (String, String) {
        self.h.status()
    }

    /// The provider's application bag on the database relation.
    fn published(&self) -> BTreeMap<String, String> {
        self.h
            .world
            .bag(self.relation, "postgresql")
            .cloned()
            .unwrap_or_default()
    }

    fn secret(&self, field: &str) -> BTreeMap<String, String> {
        let published = self.published();
        let uri = published
            .get(field)
            .unwrap_or_else(|| panic!("no {field} in {:?}", published.keys()));
        self.h.world.secret_latest(uri).unwrap().1.clone()
    }

    /// `tls` and `tls-ca` as the consumer is given them.
    fn given_tls(&self) -> (String, String) {
        let tls = self.secret("secret-tls");
        (
            tls["tls"].clone(),
            tls.get("tls-ca").cloned().unwrap_or_default(),
        )
    }

    /// The consumer's user and password, from its user secret.
    fn credentials(&self) -> (String, String) {
        let user = self.secret("secret-user");
        (user["username"].clone(), user["password"].clone())
    }

    /// psql on the consumer's machine to the address it was given, with
    /// `sslmode` and (when given) `ca` as `sslrootcert`.
    fn psql_from_consumer(&self, sslmode: &str, ca: Option<&str>) -> Result<String, String> {
        let machine = self.h.world.machine_of(&format!("{CONSUMER}/0")).unwrap();
        let endpoints = self.published()["endpoints"].clone();
        let (host, port) = endpoints.rsplit_once(':').unwrap();
        assert_eq!(
            host, self.address,
            "the consumer is given the public address"
        );
        let (user, password) = self.credentials();
        let mut conninfo = format!(
            "host={host} port={port} user={user} dbname={DATABASE} connect_timeout=5 sslmode={sslmode}"
        );
        if let Some(ca) = ca {
            // /tmp is the machine's own tmpfs.
            let mut write = machine
                .command("sh")
                .unwrap()
                .args(["-c", "cat > /tmp/tls-test-ca.pem"])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            write
                .stdin
                .take()
                .unwrap()
                .write_all(ca.as_bytes())
                .unwrap();
            assert!(write.wait().unwrap().success());
            conninfo.push_str(" sslrootcert=/tmp/tls-test-ca.pem");
        }
        let out = machine
            .command("psql")
            .unwrap()
            .args(["-X", "-w", "-q", "-At", "-d", &conninfo, "-c"])
            // The session acts as the application's owner role; PostgreSQL
            // shows a session's details to its session user.
            .arg("SET ROLE NONE; SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("PGPASSFILE", "/dev/null")
            .env("PGPASSWORD", &password)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).replace(&password, "***"))
        }
    }

    /// Connects with verify-full and `ca`; the session is encrypted.
    fn assert_verified(&self, ca: &str, what: &str) {
        match self.psql_from_consumer("verify-full", Some(ca)) {
            Ok(ssl) => assert_eq!(ssl, "t", "{what}"),
            Err(e) => panic!("{what}: verify-full failed: {e}"),
        }
    }

    fn sql(&self, sql: &str) -> String {
        self.h.cluster.psql(sql).unwrap()
    }

    fn postmaster_started(&self) -> String {
        self.sql("SELECT pg_postmaster_start_time()")
    }

    /// The certificate the running server presents (PEM), as a client sees it.
    fn presented_certificate(&self) -> String {
        let out = Command::new("openssl")
            .args(["s_client", "-starttls", "postgres", "-connect"])
            .arg(format!("127.0.0.1:{}", self.h.cluster.port))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let begin = text
            .find("-----BEGIN CERTIFICATE-----")
            .unwrap_or_else(|| panic!("no certificate presented: {text}"));
        let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
        format!("{}\n", &text[begin..end])
    }

    fn served_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.h.cluster.conf_dir().join("tls").join(name)).unwrap()
    }

    /// The private key never leaves the unit: in no bag, log, hook output
    /// or status.
    fn assert_key_kept(&self) {
        let key = std::fs::read_to_string(self.h.cluster.state_dir().join("tls-key.pem")).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let body: String = key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        // Any 40 characters of the key would be a leak; check lines too.
        let needles: Vec<&str> = key
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 40)
            .collect();
        assert!(!needles.is_empty() && body.len() > 100);
        let leaked = |text: &str| needles.iter().any(|n| text.contains(n)) || text.contains(&body);
        for record in self.h.world.logs() {
            assert!(
                !leaked(&record.message),
                "key in juju-log of {}",
                record.unit
            );
        }
        for hook in self.h.world.trace() {
            assert!(
                !leaked(&hook.output()),
                "key in output of {}",
                hook.invocation.hook
            );
        }
        assert!(!leaked(&self.h.world.status_text()));
        for id in 0..50 {
            if self.h.world.relation(id).is_none() {
                continue;
            }
            for app in self.h.world.apps() {
                let owners = std::iter::once(app.name.clone()).chain(app.units.keys().cloned());
                for owner in owners {
                    if let Some(bag) = self.h.world.bag(id, &owner) {
                        for (k, v) in bag {
                            assert!(!leaked(v), "key in bag {owner} {k} of relation {id}");
                        }
                    }
                }
            }
        }
        // PostgreSQL's copy: postgres's alone.
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(self.h.cluster.conf_dir().join("tls/key.pem")).unwrap();
        let postgres = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        assert_eq!(
            (meta.uid(), meta.mode() & 0o777),
            (postgres.uid.as_raw(), 0o600)
        );
    }
}

/// Items 1, 3 and 4: the unit's own certificate, verifiable by the
/// consumer; `client-tls=require` refuses clear text from it.
#[test]
fn without_a_relation_the_own_certificate_is_verifiable_and_require_refuses_clear_text() {
    let s = site("tls-own", &[]);
    assert_eq!(s.unit_status().0, "active", "{:?}", s.unit_status());
    let (tls, ca) = s.given_tls();
    assert_eq!(tls, "True");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    // Signed by the application's internal CA (item 5), which the
    // consumer is given: not the certificate served, but what it chains to.
    assert_eq!(s.presented_certificate(), s.served_file("cert.pem"));
    assert_eq!(ca, s.served_file("ca.pem"));
    assert_ne!(ca, s.served_file("cert.pem"), "not self-signed");
    let ca_subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(ca.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let ca_subject = String::from_utf8_lossy(&ca_subject.stdout).to_string();
    assert!(ca_subject.contains("internal CA"), "{ca_subject}");
    s.assert_verified(&ca, "own certificate");
    // libpq's default (prefer) is encrypted from the first connection.
    assert_eq!(s.psql_from_consumer("prefer", None).unwrap(), "t");
    // Clear text is still accepted under prefer.
    assert_eq!(s.psql_from_consumer("disable", None).unwrap(), "f");
    // The certificate carries the public address consumers use, the
    // private one and the host name.
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            let served = s.served_file("cert.pem");
            c.stdin.take().unwrap().write_all(served.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let sans = String::from_utf8_lossy(&text.stdout).to_string();
    let hostname = nix::unistd::gethostname().unwrap();
    for wanted in [
        format!("IP Address:{}", s.address),
        "IP Address:192.0.2.71".to_string(),
        format!("DNS:{}", hostname.to_string_lossy().to_ascii_lowercase()),
    ] {
        assert!(sans.contains(&wanted), "{wanted} not in {sans}");
    }

    let started = s.postmaster_started();
    let mut s = s;
    s.h.world
        .set_config("postgresql", &[("client-tls", "require")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.unit_status().0, "active", "{:?}", s.unit_status());
    let refused = s.psql_from_consumer("disable", None).unwrap_err();
    assert!(
        refused.contains("pg_hba.conf rejects connection") && refused.contains("no encryption"),
        "{refused}"
    );
    s.assert_verified(&ca, "under require");
    // The charm's own local peer-authenticated access is untouched.
    assert_eq!(s.sql("SELECT 1"), "1");
    let hba = std::fs::read_to_string(s.h.cluster.conf_dir().join("pg_hba.conf")).unwrap();
    assert!(hba.lines().any(|l| l.starts_with("hostssl ")), "{hba}");
    assert!(hba.contains("local all postgres peer map=juju_charm"));
    assert_eq!(s.postmaster_started(), started, "require needs no restart");
    s.assert_key_kept();
}

/// Item 2: the provider's certificate installed without a restart, renewed
/// the same way, a bad one refused while the unit keeps serving, and the
/// fallback when the relation goes.
#[test]
fn the_providers_certificate_is_installed_renewed_refused_and_fallen_back_from() {
    let mut s = site("tls-provider", &[]);
    let (_, own_ca) = s.given_tls();
    let own_certificate = s.presented_certificate();
    s.h.world
        .deploy(
            "db",
            "tls-provider",
            &tls_provider_charm().unwrap(),
            DeployOptions::default(),
        )
        .unwrap();
    s.h.world.settle().unwrap();
    let started = s.postmaster_started();
    let certificates =
        s.h.world
            .integrate("postgresql:certificates", "tls-provider:certificates")
            .unwrap();
    s.h.world.settle().unwrap();
    // The request is answered in the provider's hooks after the unit's;
    // the unit installs it in the hook that follows.
    let provider_ca = || -> String {
        let bag =
            s.h.world
                .bag(certificates, "tls-provider")
                .cloned()
                .unwrap_or_default();
        let entries: Vec<serde_json::Value> =
            serde_json::from_str(bag.get("certificates").map_or("[]", String::as_str)).unwrap();
        entries
            .first()
            .and_then(|e| e["ca"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let ca = provider_ca();
    assert!(ca.contains("BEGIN CERTIFICATE"), "the provider answered");
    assert_eq!(s.unit_status().0, "active", "{:?}", s.unit_status());
    let (tls, given) = s.given_tls();
    assert_eq!(tls, "True");
    assert_eq!(
        given.trim(),
        ca.trim(),
        "consumers are given the provider's CA"
    );
    let presented = s.presented_certificate();
    assert_eq!(presented, first_certificate(&s.served_file("cert.pem")));
    assert_ne!(given, own_ca);
    s.assert_verified(&given, "provider's certificate");
    assert!(
        s.psql_from_consumer("verify-full", Some(&own_ca)).is_err(),
        "the own certificate is no longer served"
    );
    assert_eq!(s.postmaster_started(), started, "installed with a reload");

    // Renewal: the provider re-signs the same request (new lifetime).
    s.h.world
        .set_config("tls-provider", &[("certificate-validity", "30d")])
        .unwrap();
    s.h.world.settle().unwrap();
    s.h.world.run_hook("postgresql/0", "update-status").unwrap();
    s.h.world.settle().unwrap();
    let renewed = s.presented_certificate();
    assert_ne!(renewed, presented, "the renewed certificate is served");
    s.assert_verified(&given, "renewed certificate");
    assert_eq!(s.postmaster_started(), started, "renewed with a reload");

    // A certificate that lacks a SAN is not installed; the unit keeps
    // serving the one it had, and says why.
    s.h.world
        .set_config("tls-provider", &[("mode", "wrong-sans")])
        .unwrap();
    s.h.world.settle().unwrap();
    s.h.world.run_hook("postgresql/0", "update-status").unwrap();
    s.h.world.settle().unwrap();
    let (status, message) = s.unit_status();
    assert_eq!(status, "blocked", "{message}");
    assert!(
        message.contains("certificates: provider certificate not installed")
            && message.contains("lacks the subject alternative names"),
        "{message}"
    );
    assert_eq!(s.presented_certificate(), renewed, "kept serving");
    s.assert_verified(&given, "while refusing");

    // The relation goes: back to the unit's own certificate, still serving.
    s.h.world.remove_relation(certificates).unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.unit_status().0, "active", "{:?}", s.unit_status());
    let (_, fallback) = s.given_tls();
    assert_eq!(fallback, own_ca, "the unit's own certificate again");
    assert_eq!(s.presented_certificate(), own_certificate);
    s.assert_verified(&fallback, "after the relation went");
    assert_eq!(s.postmaster_started(), started, "fell back with a reload");
    s.assert_key_kept();
}

/// The first PEM block of `chain`.
fn first_certificate(chain: &str) -> String {
    let end = chain.find("-----END CERTIFICATE-----").unwrap() + 25;
    format!("{}\n", &chain[..end])
}
