//! The `database` relation (interface `postgresql_client`) end to end, as
//! issue 13 asks: the real PostgreSQL charm offers `db` and `database`
//! together (`juju offer postgresql:db,database`); Kubernetes-side
//! consumers, the real ops charms in `tests/consumer-database-v0`
//! (data_interfaces v0) and `tests/consumer-database-v1`
//! (dpcharmlibs-interfaces), and the `db` consumer in `tests/consumer-charm`,
//! consume it, each unit on an emulated machine of its own, so every
//! connection a consumer makes comes from its own network namespace and
//! address, and `pg_hba.conf` is exercised for real.
//!
//! Passwords are read from the secrets as Juju holds them (the test is the
//! controller) and handed to `psql` through `PGPASSWORD`, never on a command
//! line; failures print psql's message without them.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::consumer::{consumer_charm, consumer_state, database_consumer_charm};
use common::netns::Netns;
use common::Harness;
use juju_emulator::{DeployOptions, MachineSpec};
use serde_json::Value;

/// The database unit on the test host, reached at the machine network's
/// gateway, and the offer of both client endpoints.
struct Site {
    h: Harness,
    offer: String,
    /// The address consumers reach PostgreSQL at.
    address: String,
}

fn site(name: &str, config: &[(&str, &str)]) -> Site {
    site_on(name, config, None)
}

/// `juju_version`: what hooks see as `JUJU_VERSION`, when not the default.
fn site_on(name: &str, config: &[(&str, &str)], juju_version: Option<&str>) -> Site {
    let mut h = Harness::new(name);
    if let Some(version) = juju_version {
        h.world.set_juju_version(version);
    }
    let address = h.world.machine_network().unwrap().gateway.to_string();
    h.deploy_at(None, config, vec![(address.clone(), address.clone())]);
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    h.world.add_model("k8s");
    let offer = h
        .world
        .offer("postgresql", &["db", "database"], "pg")
        .unwrap();
    Site { h, offer, address }
}

impl Site {
    /// Deploys `app` from `charm` in the k8s model, each unit on a machine
    /// of its own, and relates it to the offer (matched by interface).
    fn consume(
        &mut self,
        charm: &std::path::Path,
        app: &str,
        units: u32,
        config: &[(&str, &str)],
    ) -> u64 {
        self.h
            .world
            .deploy(
                "k8s",
                app,
                charm,
                DeployOptions {
                    units,
                    config: config
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    machine: Some(MachineSpec::default()),
                    ..Default::default()
                },
            )
            .unwrap();
        self.h.world.settle().unwrap();
        self.relate(app)
    }

    fn relate(&mut self, app: &str) -> u64 {
        let id = self
            .h
            .world
            .integrate_offer(&self.offer.clone(), app, "pg", &[])
            .unwrap();
        self.h.world.settle().unwrap();
        id
    }

    /// A v0 (`version` "v0", option `database`) or v1 (option `databases`)
    /// consumer.
    fn database_consumer(
        &mut self,
        version: &str,
        app: &str,
        units: u32,
        config: &[(&str, &str)],
    ) -> u64 {
        self.consume(&database_consumer_charm(version), app, units, config)
    }

    fn units(&self, app: &str) -> Vec<String> {
        self.h
            .world
            .app(app)
            .unwrap()
            .units
            .keys()
            .cloned()
            .collect()
    }

    /// The consumer application as the charm sees it (`remote-<hex>`).
    fn remote_app(&self, relation: u64, app: &str) -> String {
        self.h.world.name_seen_by(relation, "postgresql", app)
    }

    /// The relation's own login, as names::database_login names it.
    fn user(&self, relation: u64, app: &str) -> String {
        format!("{}_{relation}", self.owner(relation, app))
    }

    /// The application's owner role (no login), as plan::relation_user
    /// names it.
    fn owner(&self, relation: u64, app: &str) -> String {
        format!("jujuclient_{}", self.remote_app(relation, app))
    }

    /// The provider's application bag on `relation`.
    fn published(&self, relation: u64) -> BTreeMap<String, String> {
        self.h
            .world
            .bag(relation, "postgresql")
            .cloned()
            .unwrap_or_default()
    }

    /// The answers on `relation` by database: the flat v0 bag, or each
    /// entry of v1's `requests`.
    fn answers(&self, relation: u64) -> BTreeMap<String, BTreeMap<String, String>> {
        let bag = self.published(relation);
        match bag.get("version").map(String::as_str) {
            Some("v1") => {
                let requests: Vec<BTreeMap<String, Value>> =
                    serde_json::from_str(&bag["requests"]).expect("v1 requests are JSON");
                requests
                    .into_iter()
                    .map(|r| {
                        let fields: BTreeMap<String, String> = r
                            .into_iter()
                            .map(|(k, v)| {
                                let text = match v {
                                    Value::String(s) => s,
                                    other => other.to_string(),
                                };
                                (k, text)
                            })
                            .collect();
                        (fields["resource"].clone(), fields)
                    })
                    .collect()
            }
            _ => bag
                .get("database")
                .map(|database| (database.clone(), bag.clone()))
                .into_iter()
                .collect(),
        }
    }

    /// The answer for `database` on `relation`, with a message saying what
    /// was published instead.
    fn answer(&self, relation: u64, database: &str) -> BTreeMap<String, String> {
        let answers = self.answers(relation);
        answers.get(database).cloned().unwrap_or_else(|| {
            let published = self.published(relation);
            let keys: Vec<&String> = published.keys().collect();
            panic!(
                "no answer for {database} on relation {relation} (status {:?}; provider bag keys {keys:?})",
                self.h.status()
            )
        })
    }

    /// The latest content of the secret `uri` names.
    fn secret(&self, uri: &str) -> BTreeMap<String, String> {
        self.h
            .world
            .secret_latest(uri)
            .unwrap_or_else(|e| panic!("secret {uri}: {e:#}"))
            .1
            .clone()
    }

    /// The connection URI the user secret of `database` holds.
    fn uri(&self, relation: u64, database: &str) -> String {
        let answer = self.answer(relation, database);
        self.secret(&answer["secret-user"])["uris"].clone()
    }

    /// Runs `sql` with psql on `unit`'s machine, as `uri` says.
    fn psql_from(&self, unit: &str, uri: &str, sql: &str) -> Result<String, String> {
        let machine = self.h.world.machine_of(unit).unwrap();
        let out = psql_command(machine.command("psql").unwrap(), uri, sql)
            .output()
            .unwrap();
        psql_result(out, uri)
    }

    /// Runs `sql` with psql on `unit`'s machine with a libpq conninfo (as
    /// `db` publishes it), its password passed in `PGPASSWORD`.
    fn conninfo_psql_from(&self, unit: &str, conninfo: &str, sql: &str) -> Result<String, String> {
        let (mut rest, mut password) = (Vec::new(), String::new());
        for pair in conninfo.split_whitespace() {
            match pair.strip_prefix("password=") {
                Some(p) => password = p.to_string(),
                None => rest.push(pair),
            }
        }
        let machine = self.h.world.machine_of(unit).unwrap();
        let out = machine
            .command("psql")
            .unwrap()
            .args(["-X", "-w", "-q", "-At", "-d", &rest.join(" "), "-c", sql])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("PGPASSFILE", "/dev/null")
            .env("PGCONNECT_TIMEOUT", "5")
            .env("PGPASSWORD", &password)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).replace(&password, "***"))
        }
    }

    /// Starts a session of `uri` on `unit`'s machine that sleeps for two
    /// minutes; the child exits when the server ends the session.
    fn session_from(&self, unit: &str, uri: &str) -> Child {
        let machine = self.h.world.machine_of(unit).unwrap();
        psql_command(
            machine.command("psql").unwrap(),
            uri,
            "SELECT pg_sleep(120)",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
    }

    /// `sql` as postgres in `database`, over the unit's socket.
    fn sql_in(&self, database: &str, sql: &str) -> String {
        let out = Command::new("runuser")
            .args(scenarios::superuser_psql_args(
                self.h.cluster.port,
                database,
            ))
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn sql(&self, sql: &str) -> String {
        self.sql_in("postgres", sql)
    }

    fn hba(&self) -> String {
        std::fs::read_to_string(self.h.cluster.conf_dir().join("pg_hba.conf")).unwrap()
    }

    /// Runs `rotate-credentials` on `target` on the leader; it succeeds.
    /// Its hooks (the consumers' secret-changed, ...) stay queued.
    fn rotate(&mut self, target: &str) {
        let mut params = serde_json::Map::new();
        params.insert("target".into(), Value::String(target.into()));
        let outcome = self
            .h
            .world
            .run_action("postgresql/0", "rotate-credentials", params)
            .unwrap();
        assert_eq!(outcome.failed, None, "{:?}", outcome.results);
    }

    fn unit_status(&self, unit: &str) -> String {
        self.h.world.unit(unit).unwrap().status.message.clone()
    }

    /// `unit` connected with what its library handed over for `database`
    /// (dbprobe.py's record).
    fn assert_connected(&self, unit: &str, database: &str) {
        let state = consumer_state(&self.h.world, unit);
        let entry = &state["databases"][database];
        assert_eq!(
            entry["connected"],
            format!("wrote and read 'hello from {unit}'"),
            "{unit} {database}: {entry}"
        );
    }

    /// No password in any juju-log, hook output, status or (`bags`) bag.
    fn assert_no_leak(&self, passwords: &[String], bags: bool) {
        for password in passwords {
            assert!(password.len() >= 32, "a full-strength password");
            for record in self.h.world.logs() {
                assert!(
                    !record.message.contains(password.as_str()),
                    "password in juju-log from {} during {}",
                    record.unit,
                    record.hook
                );
            }
            for hook in self.h.world.trace() {
                assert!(
                    !hook.output().contains(password.as_str()),
                    "password in the output of {} on {}",
                    hook.invocation.hook,
                    hook.invocation.unit
                );
            }
            assert!(!self.h.world.status_text().contains(password.as_str()));
            if !bags {
                continue;
            }
            for app in self.h.world.apps() {
                for unit in app.units.keys() {
                    for (owner_kind, owner) in [("app", app.name.as_str()), ("unit", unit.as_str())]
                    {
                        for id in relation_ids(&self.h.world) {
                            if let Some(bag) = self.h.world.bag(id, owner) {
                                for (key, value) in bag {
                                    assert!(
                                        !value.contains(password.as_str()),
                                        "password in {owner_kind} bag {owner} key {key} of relation {id}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every relation id the world has made so far (they count up from 0).
fn relation_ids(world: &juju_emulator::World) -> Vec<u64> {
    (0..1000)
        .filter(|id| world.relation(*id).is_some())
        .collect()
}

/// `postgresql://user:password@host:port/database` taken apart.
struct Uri {
    user: String,
    password: String,
    host: String,
    port: String,
    database: String,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn parse_uri(uri: &str) -> Uri {
    let rest = uri
        .strip_prefix("postgresql://")
        .or_else(|| uri.strip_prefix("postgres://"))
        .expect("a postgresql:// URI");
    let (userinfo, location) = rest.rsplit_once('@').expect("user info in the URI");
    let (user, password) = userinfo.split_once(':').expect("a password in the URI");
    let (hostport, database) = location.split_once('/').unwrap_or((location, ""));
    let database = database.split('?').next().unwrap_or_default();
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    Uri {
        user: percent_decode(user),
        password: percent_decode(password),
        host: host.to_string(),
        port: port.to_string(),
        database: percent_decode(database),
    }
}

fn with_database(uri: &str, database: &str) -> String {
    let (base, _) = uri.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

fn psql_command(mut command: Command, uri: &str, sql: &str) -> Command {
    let u = parse_uri(uri);
    let conninfo = format!(
        "host={} port={} user={} dbname={} connect_timeout=5",
        u.host, u.port, u.user, u.database
    );
    command
        .args([
            "-X",
            "-w",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &conninfo,
            "-c",
            sql,
        ])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .env("PGPASSFILE", "/dev/null")
        .env("PGPASSWORD", &u.password);
    command
}

fn psql_result(out: std::process::Output, uri: &str) -> Result<String, String> {
    let password = parse_uri(uri).password;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).replace(&password, "***"))
    }
}

/// psql from a host that is not a consumer.
fn psql_from_netns(ns: &Netns, uri: &str, sql: &str) -> Result<String, String> {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &ns.name, "psql"]);
    let out = psql_command(command, uri, sql).output().unwrap();
    psql_result(out, uri)
}

fn refused_by_hba(result: Result<String, String>, what: &str) {
    match result {
        Ok(out) => panic!("{what}: connected ({out})"),
        Err(e) => assert!(
            e.contains("pg_hba.conf rejects connection") || e.contains("no pg_hba.conf entry"),
            "{what}: {e}"
        ),
    }
}

fn wait_for_exit(child: &mut Child, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Items 1 to 5 of issue 13: one offer of `db` and `database`; a v0 and a
/// v1 consumer beside a `db` one, each with its own user and databases,
/// credentials in application secrets granted to its relation, endpoints
/// the consumers reach across models, access from their own addresses only.
#[test]
fn v0_and_v1_consumers_beside_db_get_their_own_databases_through_secrets() {
    let mut s = site("dbrel-both", &[]);
    // The legacy interface through the same offer: served today.
    let shop = s.consume(&consumer_charm(), "shop", 1, &[("database", "shop")]);
    assert_eq!(
        s.h.world
            .relation(shop)
            .unwrap()
            .side_of("postgresql")
            .unwrap()
            .endpoint,
        "db"
    );
    let shop_state = consumer_state(&s.h.world, "shop/0");
    assert_eq!(shop_state["ready"], Value::Bool(true), "{shop_state}");

    let v0 = s.database_consumer("v0", "app0", 2, &[("database", "appdb0")]);
    let v1 = s.database_consumer("v1", "app1", 1, &[("databases", "v1a,v1b")]);
    for rel in [v0, v1] {
        assert_eq!(
            s.h.world
                .relation(rel)
                .unwrap()
                .side_of("postgresql")
                .unwrap()
                .endpoint,
            "database",
            "matched by interface"
        );
    }
    assert_eq!(s.h.status().0, "active", "{:?}", s.h.status());
    let version = s.sql("SHOW server_version");
    let version = version.split_whitespace().next().unwrap().to_string();
    let endpoint = format!("{}:{}", s.address, s.h.cluster.port);

    // v0: flat keys, no credential among them.
    let bag = s.published(v0);
    assert_eq!(
        bag.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "database",
            "endpoints",
            "read-only-endpoints",
            "secret-tls",
            "secret-user",
            "version"
        ],
        "{bag:?}"
    );
    assert_eq!(bag["database"], "appdb0");
    assert_eq!(bag["endpoints"], endpoint, "the address consumers reach");
    assert_eq!(
        bag["read-only-endpoints"], endpoint,
        "no standbys: the primary"
    );
    assert_eq!(bag["version"], version);
    // v1: one answer per request, in kind.
    let v1_bag = s.published(v1);
    assert_eq!(
        v1_bag.get("version").map(String::as_str),
        Some("v1"),
        "{v1_bag:?}"
    );
    let answers = s.answers(v1);
    assert_eq!(
        answers.keys().map(String::as_str).collect::<Vec<_>>(),
        ["v1a", "v1b"]
    );
    for answer in answers.values() {
        assert_eq!(answer["endpoints"], endpoint);
        assert_eq!(answer["read-only-endpoints"], endpoint);
        assert_eq!(answer["request-id"].len(), 16, "{answer:?}");
        assert!(!answer.contains_key("password") && !answer.contains_key("uris"));
    }

    // The secrets: the application's, one user and one tls per answer,
    // labelled as the libraries label them, granted to the relation.
    let owned = s.h.world.secret_ids_owned_by("postgresql");
    let mut passwords = Vec::new();
    for (rel, app, database) in [
        (v0, "app0", "appdb0"),
        (v1, "app1", "v1a"),
        (v1, "app1", "v1b"),
    ] {
        let answer = s.answer(rel, database);
        let user_uri = &answer["secret-user"];
        let tls_uri = &answer["secret-tls"];
        for uri in [user_uri, tls_uri] {
            let id = &uri[uri.len() - 20..];
            assert!(
                owned.iter().any(|o| o.ends_with(id)),
                "{uri} is postgresql's: {owned:?}"
            );
        }
        let user = s.secret(user_uri);
        assert_eq!(
            user.keys().map(String::as_str).collect::<Vec<_>>(),
            ["password", "read-only-uris", "uris", "username"]
        );
        assert_eq!(user["username"], s.user(rel, app));
        let uri = parse_uri(&user["uris"]);
        assert_eq!(uri.user, user["username"]);
        assert_eq!(uri.password, user["password"]);
        assert_eq!(format!("{}:{}", uri.host, uri.port), endpoint);
        assert_eq!(uri.database, database);
        passwords.push(user["password"].clone());
        let tls = s.secret(tls_uri);
        // As each library reads it: v0 Python's str(bool), v1 JSON. The
        // unit serves TLS from the start (issue 14), and the CA is the
        // certificate it serves (its own, without a certificates relation).
        let tls_on = if rel == v0 { "True" } else { "true" };
        assert_eq!(tls.get("tls").map(String::as_str), Some(tls_on), "{tls:?}");
        let served_ca = std::fs::read_to_string(s.h.cluster.conf_dir().join("tls/ca.pem")).unwrap();
        assert_eq!(tls.get("tls-ca"), Some(&served_ca), "{tls:?}");
        for unit in s.units(app) {
            assert!(
                s.h.world
                    .secret_tracked_by(user_uri, &unit)
                    .unwrap()
                    .is_some(),
                "{unit} read {database}'s user secret"
            );
        }
    }
    let label = format!("database.{v0}.user.secret");
    assert_eq!(
        s.h.world.secret_uri("postgresql", &label).as_deref(),
        Some(bag["secret-user"].as_str()),
        "labelled as the v0 library labels it"
    );
    // One user per relation; the v1 relation's two databases share it.
    assert_eq!(passwords[1], passwords[2]);
    assert_ne!(passwords[0], passwords[1]);

    // Each consumer unit connected, from its own machine, with what its
    // library handed it.
    for unit in s.units("app0") {
        s.assert_connected(&unit, "appdb0");
        assert_eq!(
            s.unit_status(&unit),
            "got credentials for appdb0; connected"
        );
    }
    for database in ["v1a", "v1b"] {
        s.assert_connected("app1/0", database);
    }

    // pg_hba.conf: each database for its user from its units' addresses.
    let hba = s.hba();
    for (rel, app, database) in [(v0, "app0", "appdb0"), (v1, "app1", "v1a")] {
        for unit in s.units(app) {
            let address = s.h.world.machine_of(&unit).unwrap().address();
            let user = s.user(rel, app);
            assert!(
                hba.lines().any(|l| l.starts_with("host ")
                    && l.contains(&format!("\"{database}\""))
                    && l.contains(&format!("\"{user}\""))
                    && l.contains(&format!(" {address}/32 "))
                    && l.contains("scram-sha-256")),
                "{unit}: {hba}"
            );
        }
    }
    assert!(
        hba.trim_end()
            .ends_with("reject # everything else over IPv6"),
        "{hba}"
    );

    // Isolation, as for db: v0's credentials reach neither v1's database
    // nor anything from v1's machine or an outsider's address.
    let v0_uri = s.uri(v0, "appdb0");
    let v1_uri = s.uri(v1, "v1a");
    assert_eq!(
        s.psql_from("app0/1", &v0_uri, "SELECT current_database()")
            .unwrap(),
        "appdb0"
    );
    refused_by_hba(
        s.psql_from("app0/0", &with_database(&v0_uri, "v1a"), "SELECT 1"),
        "v0 into v1a",
    );
    refused_by_hba(
        s.psql_from("app1/0", &v0_uri, "SELECT 1"),
        "v0's password from v1's machine",
    );
    refused_by_hba(
        s.psql_from("app0/0", &with_database(&v1_uri, "appdb0"), "SELECT 1"),
        "v1 into appdb0",
    );
    let outsider = Netns::on_machine_network(&mut s.h.world, "outsider");
    refused_by_hba(
        psql_from_netns(&outsider, &v0_uri, "SELECT 1"),
        "an outsider",
    );
    // Each owns its own databases, as for db: through the application's
    // owner role, which cannot log in and which the relation's login acts
    // as, so the consumer's own table is the owner's too.
    let (owner, login) = (s.owner(v0, "app0"), s.user(v0, "app0"));
    assert_eq!(
        s.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'appdb0'"),
        owner
    );
    assert_eq!(
        s.sql(&format!(
            "SELECT rolcanlogin::text || ',' || pg_has_role('{login}', '{owner}', 'member')::text \
             FROM pg_roles WHERE rolname = '{owner}'"
        )),
        "false,true"
    );
    assert_eq!(
        s.psql_from(
            "app0/0",
            &v0_uri,
            "CREATE TABLE mine (n int); \
             SELECT tableowner || ',' || session_user FROM pg_tables WHERE tablename = 'mine'"
        )
        .unwrap(),
        format!("{owner},{login}")
    );

    s.assert_no_leak(&passwords, true);
}

/// Item 3 and item 5's `-broken`: the relation's secrets are revoked and
/// removed, its user loses LOGIN, its sessions end; its data stays.
#[test]
fn removing_a_database_relation_revokes_secrets_and_login_and_keeps_the_data() {
    let mut s = site("dbrel-broken", &[]);
    let keep = s.database_consumer("v1", "stays", 1, &[("databases", "staydb")]);
    let rel = s.database_consumer("v0", "leaves", 1, &[("database", "leftdb")]);
    s.assert_connected("leaves/0", "leftdb");
    let answer = s.answer(rel, "leftdb");
    let (user_uri, tls_uri) = (answer["secret-user"].clone(), answer["secret-tls"].clone());
    let uri = s.uri(rel, "leftdb");
    let user = s.user(rel, "leaves");
    let mut session = s.session_from("leaves/0", &uri);
    // The session is in (it connected before the relation goes).
    let start = Instant::now();
    while s.sql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'"
    )) == "0"
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the session never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    s.h.world.remove_relation(rel).unwrap();
    s.h.world.settle().unwrap();
    assert!(s
        .h
        .world
        .hook_names("postgresql/0")
        .contains(&"database-relation-broken".to_string()));
    for uri in [&user_uri, &tls_uri] {
        assert!(s.h.world.secret_latest(uri).is_err(), "{uri} removed");
        let id = &uri[uri.len() - 20..];
        assert!(
            !s.h.world
                .secret_ids_owned_by("postgresql")
                .iter()
                .any(|o| o.ends_with(id)),
            "{uri} no longer postgresql's"
        );
    }
    assert_eq!(
        s.sql(&format!(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{user}'"
        )),
        "f",
        "login revoked, role kept"
    );
    assert!(
        wait_for_exit(&mut session, Duration::from_secs(10)),
        "its session was ended"
    );
    assert!(s.psql_from("leaves/0", &uri, "SELECT 1").is_err());
    assert!(!s.hba().contains(&format!("\"{user}\"")), "{}", s.hba());
    // The data stays.
    assert_eq!(
        s.sql_in("leftdb", "SELECT count(*) > 0 FROM consumer_check"),
        "t"
    );
    // The other relation is untouched.
    s.psql_from("stays/0", &s.uri(keep, "staydb"), "SELECT 1")
        .unwrap();
    assert_eq!(s.h.status().0, "active", "{:?}", s.h.status());
}

/// Item 5: hostile or unsupported fields refuse that relation alone, with a
/// status naming it; what it had been given is taken back.
#[test]
fn hostile_fields_refuse_their_relation_alone() {
    let mut s = site("dbrel-hostile", &[]);
    let good = s.database_consumer("v0", "good", 1, &[("database", "gooddb")]);
    s.assert_connected("good/0", "gooddb");
    let good_uri = s.uri(good, "gooddb");
    s.sql("CREATE ROLE loginrole LOGIN");
    s.h.world
        .deploy(
            "k8s",
            "bad",
            &database_consumer_charm("v0"),
            DeployOptions {
                config: [("database".to_string(), "bad".to_string())].into(),
                machine: Some(MachineSpec::default()),
                ..Default::default()
            },
        )
        .unwrap();
    s.h.world.settle().unwrap();
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let long = "a".repeat(64);
    let cases: &[Case] = &[
        (
            "quotes",
            &[("database", "x\"; DROP DATABASE gooddb; --")],
            "database",
        ),
        ("long", &[("database", &long)], "database"),
        (
            "newline",
            &[("database", "x\nhost all all 0.0.0.0/0 trust")],
            "database",
        ),
        ("unicode", &[("database", "bäckerei")], "database"),
        ("prefix", &[("database", "good*")], "not supported"),
        ("entity", &[("entity-type", "USER")], "not supported"),
        (
            "superuser",
            &[("extra-user-roles", "SUPERUSER")],
            "SUPERUSER",
        ),
        ("login", &[("extra-user-roles", "LOGIN")], "LOGIN"),
        (
            "loginrole",
            &[("extra-user-roles", "loginrole")],
            "loginrole",
        ),
        (
            "predefined",
            &[("extra-user-roles", "pg_execute_server_program")],
            "pg_execute_server_program",
        ),
        (
            "no-role",
            &[("extra-user-roles", "no_such_role")],
            "no_such_role",
        ),
        (
            "secrets",
            &[("requested-secrets", "not json")],
            "requested-secrets",
        ),
        (
            "v1-json",
            &[("version", "v1"), ("requests", "[{")],
            "requests",
        ),
        ("tenant", &[("database", "gooddb")], "gooddb"),
    ];
    for (n, (case, fields, needle)) in cases.iter().enumerate() {
        // Across models each new relation shows the consumer under a new
        // name, which owns nothing yet: a database of its own each time.
        let own = format!("bad{n}");
        s.h.world.set_config("bad", &[("database", &own)]).unwrap();
        s.h.world.settle().unwrap();
        let rel = s.relate("bad");
        // The library's own request first: served.
        s.assert_connected("bad/0", &own);
        // Then what a hostile leader writes over it.
        s.h.world.write_bag(rel, "bad", fields).unwrap();
        s.h.world.settle().unwrap();
        let (status, message) = s.h.status();
        assert_eq!(status, "blocked", "{case}: {message}");
        assert!(
            message.contains(&format!("database:{rel}")),
            "{case}: names the relation: {message}"
        );
        assert!(message.contains(needle), "{case}: {message}");
        let taken_back = s.published(rel);
        for key in [
            "secret-user",
            "secret-tls",
            "endpoints",
            "requests",
            "username",
            "password",
        ] {
            assert!(
                !taken_back.contains_key(key),
                "{case}: {key} taken back: {taken_back:?}"
            );
        }
        // The good relation keeps working meanwhile.
        assert_eq!(
            s.psql_from("good/0", &good_uri, "SELECT 1").unwrap(),
            "1",
            "{case}"
        );
        s.h.world.remove_relation(rel).unwrap();
        s.h.world.settle().unwrap();
    }
    assert_eq!(s.h.status().0, "active", "{:?}", s.h.status());
    let hba = s.hba();
    assert!(!hba.contains("trust"), "{hba}");
    assert_eq!(
        s.sql("SELECT count(*) FROM pg_database WHERE datname = 'gooddb'"),
        "1"
    );
    assert_eq!(s.psql_from("good/0", &good_uri, "SELECT 1").unwrap(), "1");
}

/// Item 6: CREATEDB for anyone; SUPERUSER only once the operator names the
/// application in consumer-privileges; a NOLOGIN group role by membership.
#[test]
fn extra_user_roles_follow_the_operator() {
    let mut s = site("dbrel-roles", &[]);
    s.sql("CREATE ROLE reporting NOLOGIN");
    let rel = s.database_consumer(
        "v0",
        "reports",
        1,
        &[
            ("database", "reportsdb"),
            ("extra-user-roles", "CREATEDB,reporting"),
        ],
    );
    s.assert_connected("reports/0", "reportsdb");
    // The privileges are the owner role's; the login has them by acting as it.
    let (owner, user) = (s.owner(rel, "reports"), s.user(rel, "reports"));
    assert_eq!(
        s.sql(&format!(
            "SELECT rolcreatedb::text || rolsuper::text || rolcreaterole::text || \
             pg_has_role('{user}', 'reporting', 'member')::text FROM pg_roles WHERE rolname = '{owner}'"
        )),
        "truefalsefalsetrue"
    );
    let reports_uri = s.uri(rel, "reportsdb");
    assert_eq!(
        s.psql_from("reports/0", &reports_uri, "CREATE DATABASE reports_scratch")
            .map(drop),
        Ok(()),
        "CREATEDB works"
    );
    assert_eq!(
        s.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'reports_scratch'"),
        owner,
        "what it makes is the owner's"
    );

    let admin = s.database_consumer(
        "v1",
        "admin",
        1,
        &[("databases", "admindb"), ("extra-user-roles", "SUPERUSER")],
    );
    let remote = s.remote_app(admin, "admin");
    let (status, message) = s.h.status();
    assert_eq!(status, "blocked", "{message}");
    assert!(
        message.contains(&format!("database:{admin}"))
            && message.contains("SUPERUSER")
            && message.contains(&format!("superuser = {remote}")),
        "says what to allow: {message}"
    );
    assert!(
        !s.published(admin).contains_key("requests"),
        "{:?}",
        s.published(admin)
    );
    s.h.world
        .set_config(
            "postgresql",
            &[("consumer-privileges", &format!("superuser = {remote}"))],
        )
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.h.status().0, "active", "{:?}", s.h.status());
    s.assert_connected("admin/0", "admindb");
    let admin_user = s.owner(admin, "admin");
    assert_eq!(
        s.sql(&format!(
            "SELECT rolsuper FROM pg_roles WHERE rolname = '{admin_user}'"
        )),
        "t"
    );
    // Taking the permission back takes the privilege back.
    s.h.world
        .set_config("postgresql", &[("consumer-privileges", "")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.h.status().0, "blocked", "{:?}", s.h.status());
    assert_eq!(
        s.sql(&format!(
            "SELECT rolsuper FROM pg_roles WHERE rolname = '{admin_user}'"
        )),
        "f"
    );
    // The bad option value names the option.
    s.h.world
        .set_config("postgresql", &[("consumer-privileges", "login = x")])
        .unwrap();
    s.h.world.settle().unwrap();
    let (status, message) = s.h.status();
    assert_eq!(status, "blocked");
    assert!(message.contains("consumer-privileges"), "{message}");
}

/// Item 7: rotate-credentials gives a `database` consumer a new secret
/// revision and a `db` consumer new published data; each old password stops
/// working once its consumer has the new one, and the libraries follow.
#[test]
fn rotate_credentials_reaches_database_and_db_consumers() {
    let mut s = site("dbrel-rotate", &[]);
    let v0 = s.database_consumer("v0", "app0", 1, &[("database", "rotdb")]);
    let shop = s.consume(&consumer_charm(), "shop", 1, &[("database", "shop")]);
    s.assert_connected("app0/0", "rotdb");
    let answer = s.answer(v0, "rotdb");
    let user_uri = answer["secret-user"].clone();
    let old_uri = s.uri(v0, "rotdb");
    let old_conninfo = consumer_state(&s.h.world, "shop/0")["master"]
        .as_str()
        .expect("the db consumer's connection string")
        .to_string();
    let old_db_password = s.h.world.bag(shop, "postgresql/0").unwrap()["password"].clone();

    let params = |target: &str| {
        let mut p = serde_json::Map::new();
        p.insert("target".into(), Value::String(target.into()));
        p
    };
    let outcome =
        s.h.world
            .run_action("postgresql/0", "rotate-credentials", params("all"))
            .unwrap();
    assert_eq!(outcome.failed, None, "{:?}", outcome.results);
    s.h.world.settle().unwrap();

    // database: a new revision, read by the consumer on secret-changed.
    let revisions = s.h.world.secret_revisions(&user_uri).unwrap();
    let action_log: Vec<&str> =
        s.h.world
            .logs()
            .iter()
            .filter(|l| l.hook == "rotate-credentials")
            .map(|l| l.message.as_str())
            .collect();
    assert!(
        revisions.last() > Some(&1),
        "a new revision: {revisions:?}; the action logged {action_log:?}; results {:?}",
        outcome.results
    );
    let new_uri = s.uri(v0, "rotdb");
    assert_ne!(parse_uri(&new_uri).password, parse_uri(&old_uri).password);
    let state = consumer_state(&s.h.world, "app0/0");
    assert_eq!(state["databases"]["rotdb"]["rotations"], 1, "{state}");
    s.assert_connected("app0/0", "rotdb");
    let (latest, _) = s.h.world.secret_latest(&user_uri).unwrap();
    assert_eq!(
        s.h.world.secret_tracked_by(&user_uri, "app0/0").unwrap(),
        Some(latest)
    );
    // Read by the consumer, the old revision obsolete: the old login retired.
    let old = s.psql_from("app0/0", &old_uri, "SELECT 1").unwrap_err();
    assert!(old.contains("is not permitted to log in"), "{old}");
    s.psql_from("app0/0", &new_uri, "SELECT 1").unwrap();

    // db: new published data at once; the old password fails.
    let new_db_password = s.h.world.bag(shop, "postgresql/0").unwrap()["password"].clone();
    assert_ne!(new_db_password, old_db_password);
    let shop_state = consumer_state(&s.h.world, "shop/0");
    let new_conninfo = shop_state["master"].as_str().unwrap().to_string();
    assert_ne!(
        new_conninfo, old_conninfo,
        "the consumer library saw the change"
    );
    assert!(
        s.conninfo_psql_from("shop/0", &old_conninfo, "SELECT 1")
            .is_err(),
        "the old db password stops at once"
    );
    s.conninfo_psql_from("shop/0", &new_conninfo, "SELECT 1")
        .unwrap();

    // Rotating one relation leaves the others' passwords alone.
    let before = s.h.world.bag(shop, "postgresql/0").unwrap()["password"].clone();
    let outcome =
        s.h.world
            .run_action(
                "postgresql/0",
                "rotate-credentials",
                params(&format!("database:{v0}")),
            )
            .unwrap();
    assert_eq!(outcome.failed, None, "{:?}", outcome.results);
    s.h.world.settle().unwrap();
    assert_eq!(
        s.h.world.bag(shop, "postgresql/0").unwrap()["password"],
        before
    );
    let third = parse_uri(&s.uri(v0, "rotdb")).password;
    assert_ne!(third, parse_uri(&new_uri).password);
    let unknown =
        s.h.world
            .run_action("postgresql/0", "rotate-credentials", params("no-such-app"))
            .unwrap();
    assert!(
        unknown.failed.is_some(),
        "an unknown target fails the action"
    );

    let results = serde_json::to_string(&outcome.results).unwrap();
    for password in [&old_db_password, &new_db_password, &third] {
        assert!(
            !results.contains(password.as_str()),
            "password in action results"
        );
    }
    s.assert_no_leak(
        &[
            parse_uri(&old_uri).password,
            parse_uri(&new_uri).password,
            third,
        ],
        true,
    );
    s.assert_no_leak(&[old_db_password, new_db_password], false);
}

/// Item 7 for `database` consumers, step by step: after rotate-credentials
/// the old password keeps working until the consumer has read the new
/// revision (its library sees `secret-changed` and refreshes); once Juju
/// calls the old revision obsolete (`secret-remove`), the old login is
/// refused and its sessions end; the new login reaches the data created
/// before, and what it creates belongs to the same owner role. A second
/// rotation flips back. Both v0 and v1 consumers; removal revokes both logins.
#[test]
fn a_rotated_database_login_works_until_the_consumer_read_the_new_revision() {
    let mut s = site("dbrel-twologins", &[]);
    let v0 = s.database_consumer("v0", "app0", 1, &[("database", "rot0")]);
    let v1 = s.database_consumer("v1", "app1", 1, &[("databases", "rot1")]);
    s.assert_connected("app0/0", "rot0");
    s.assert_connected("app1/0", "rot1");
    let mut passwords = Vec::new();
    for (relation, app, database) in [(v0, "app0", "rot0"), (v1, "app1", "rot1")] {
        let unit = format!("{app}/0");
        let main = s.user(relation, app);
        let alternate = format!("{main}_b");
        let user_uri = s.answer(relation, database)["secret-user"].clone();
        let old_uri = s.uri(relation, database);
        assert_eq!(
            parse_uri(&old_uri).user,
            main,
            "relations start on their main login"
        );
        let hba = s.hba();
        for login in [&main, &alternate] {
            assert!(
                hba.contains(&format!("\"{database}\" \"{login}\"")),
                "{hba}"
            );
        }
        let mut old_session = s.session_from(&unit, &old_uri);

        s.rotate(&format!("database:{relation}"));
        // The action ran; the consumer's secret-changed is still queued.
        assert!(
            s.h.world
                .queue()
                .any(|inv| inv.unit == unit && inv.hook == "secret-changed"),
            "secret-changed queued for {unit}"
        );
        let new_uri = s.uri(relation, database);
        assert_eq!(
            parse_uri(&new_uri).user,
            alternate,
            "the new revision names the other login"
        );
        assert_ne!(parse_uri(&new_uri).password, parse_uri(&old_uri).password);
        s.psql_from(&unit, &old_uri, "SELECT 1")
            .expect("the old password works until the consumer read the new one");
        s.psql_from(&unit, &new_uri, "SELECT 1")
            .expect("the new one works at once");
        assert!(
            !wait_for_exit(&mut old_session, Duration::from_secs(1)),
            "the old login's session lives on meanwhile"
        );

        s.h.world.settle().unwrap();
        let state = consumer_state(&s.h.world, &unit);
        assert_eq!(state["databases"][database]["rotations"], 1, "{state}");
        assert_eq!(
            state["databases"][database]["credentials"]["username"], alternate,
            "the library handed over the new login: {state}"
        );
        s.assert_connected(&unit, database);
        let (latest, _) = s.h.world.secret_latest(&user_uri).unwrap();
        assert_eq!(
            s.h.world.secret_tracked_by(&user_uri, &unit).unwrap(),
            Some(latest)
        );
        assert_eq!(
            s.h.world.secret_revisions(&user_uri).unwrap(),
            [latest],
            "the charm removed the revisions Juju called obsolete"
        );
        let old = s.psql_from(&unit, &old_uri, "SELECT 1").unwrap_err();
        assert!(old.contains("is not permitted to log in"), "{old}");
        assert!(
            wait_for_exit(&mut old_session, Duration::from_secs(10)),
            "the old login's session was ended"
        );
        // The data created before, through the new login; what it creates
        // belongs to the application's owner role.
        assert_eq!(
            s.psql_from(&unit, &new_uri, "SELECT count(*) >= 2 FROM consumer_check"),
            Ok("t".to_string())
        );
        s.psql_from(&unit, &new_uri, "CREATE TABLE after_rotation (x int)")
            .unwrap();
        assert_eq!(
            s.sql_in(
                database,
                "SELECT tableowner FROM pg_tables WHERE tablename = 'after_rotation'"
            ),
            s.owner(relation, app)
        );

        // Rotating again flips back to the main login; the alternate retires.
        s.rotate(&format!("database:{relation}"));
        let third_uri = s.uri(relation, database);
        assert_eq!(parse_uri(&third_uri).user, main);
        s.psql_from(&unit, &new_uri, "SELECT 1")
            .expect("the alternate works until the consumer read the newest revision");
        s.h.world.settle().unwrap();
        let refused = s.psql_from(&unit, &new_uri, "SELECT 1").unwrap_err();
        assert!(refused.contains("is not permitted to log in"), "{refused}");
        assert!(
            s.psql_from(&unit, &old_uri, "SELECT 1").is_err(),
            "the first password is long gone"
        );
        assert_eq!(
            s.psql_from(&unit, &third_uri, "SELECT count(*) FROM after_rotation"),
            Ok("0".to_string())
        );
        passwords.extend([&old_uri, &new_uri, &third_uri].map(|u| parse_uri(u).password));
    }
    assert_eq!(s.h.status().0, "active", "{:?}", s.h.status());

    // Removal revokes both logins of the relation.
    let main = s.user(v0, "app0");
    s.h.world.remove_relation(v0).unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(
        s.sql(&format!(
            "SELECT string_agg(rolname || '=' || rolcanlogin, ',' ORDER BY rolname) \
             FROM pg_roles WHERE rolname IN ('{main}', '{main}_b')"
        )),
        format!("{main}=false,{main}_b=false")
    );
    // The owner role keeps the data, not the privileges (none were asked).
    let owner = s.owner(v0, "app0");
    assert_eq!(
        s.sql(&format!(
            "SELECT rolcanlogin::text || (SELECT count(*) FROM pg_database \
               WHERE datdba = r.oid AND datname = 'rot0')::text \
             FROM pg_roles r WHERE rolname = '{owner}'"
        )),
        "false1"
    );
    s.assert_no_leak(&passwords, true);
}

/// Item 3: a requirer without Juju secrets (data_interfaces v0 under Juju
/// 3.0.2, as ops tells it) writes no `requested-secrets`, and then gets
/// its credentials plainly in the bag, where that library looks.
#[test]
fn without_requested_secrets_credentials_go_plainly_in_the_bag() {
    let mut s = site_on("dbrel-plain", &[], Some("3.0.2"));
    let rel = s.database_consumer("v0", "plain", 1, &[("database", "plaindb")]);
    let requirer = s.h.world.bag(rel, "plain").unwrap().clone();
    assert!(!requirer.contains_key("requested-secrets"), "{requirer:?}");
    let bag = s.published(rel);
    for key in [
        "username",
        "password",
        "uris",
        "endpoints",
        "database",
        "version",
    ] {
        assert!(bag.contains_key(key), "{key} in {bag:?}");
    }
    assert!(!bag.contains_key("secret-user"), "{bag:?}");
    s.assert_connected("plain/0", "plaindb");
    // In relation data by necessity; still in no log, output or status.
    s.assert_no_leak(&[bag["password"].clone()], false);
}
