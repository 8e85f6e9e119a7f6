//! Consumers are tenants (issue 8): one consumer's relation data or SQL
//! cannot reach another's data, wedge the charm's hooks, or keep access
//! after it was taken back.
//!
//! Real PostgreSQL, the packed charm under the emulator, and real consumers
//! (the ops charm using ops-lib-pgsql), each on a host of its own: every
//! consumer unit gets a network namespace, and connects from its own
//! address to its own end of the link, with the credentials the charm
//! published to it.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::consumer::{consumer_charm, consumer_state};
use common::netns::Netns;
use common::Harness;
use juju_emulator::DeployOptions;
use serde_json::Value;

/// The database unit and its consumers.
struct Site {
    h: Harness,
    /// The database unit's own address is the host end of this link.
    db_host: Netns,
    consumers: Vec<Consumer>,
    /// Every password the charm published during the test.
    passwords: BTreeSet<String>,
}

/// One consumer application: a real ops charm, each unit on its own host.
struct Consumer {
    app: String,
    hosts: Vec<Netns>,
    relation: u64,
}

fn site(name: &str) -> Site {
    site_with(name, &[])
}

fn site_with(name: &str, config: &[(&str, &str)]) -> Site {
    let mut h = Harness::new(name);
    let db_host = Netns::with_free_subnet("db");
    let address = db_host.host_addr.to_string();
    h.deploy_at(None, config, vec![(address.clone(), address)]);
    h.world.add_model("k8s");
    Site {
        h,
        db_host,
        consumers: Vec::new(),
        passwords: BTreeSet::new(),
    }
}

impl Site {
    /// Deploys `app` (the consumer charm with `config`) with `units` units,
    /// each on a host of its own, in `model`, and relates it to
    /// `postgresql:<endpoint>`: across models from "k8s", within the model
    /// from "db". Returns the consumer's index.
    fn consumer(
        &mut self,
        model: &str,
        app: &str,
        endpoint: &str,
        units: u32,
        config: &[(&str, &str)],
    ) -> usize {
        let hosts: Vec<Netns> = (0..units).map(|_| Netns::with_free_subnet(app)).collect();
        let addresses = hosts
            .iter()
            .map(|host| (host.ns_addr.to_string(), host.ns_addr.to_string()))
            .collect();
        self.h
            .world
            .deploy(
                model,
                app,
                &consumer_charm(),
                DeployOptions {
                    units,
                    config: config
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    addresses,
                    ..Default::default()
                },
            )
            .unwrap();
        self.h.world.settle().unwrap();
        let relation = self.relate(app, endpoint, model);
        self.consumers.push(Consumer {
            app: app.to_string(),
            hosts,
            relation,
        });
        self.consumers.len() - 1
    }

    fn relate(&mut self, app: &str, endpoint: &str, model: &str) -> u64 {
        let ours = format!("postgresql:{endpoint}");
        let theirs = format!("{app}:db");
        let relation = if model == "db" {
            self.h.world.integrate(&ours, &theirs).unwrap()
        } else {
            self.h
                .world
                .integrate_cross_model(&ours, &theirs, &format!("pg-{app}"), &[])
                .unwrap()
        };
        self.h.world.settle().unwrap();
        self.remember_password(relation);
        relation
    }

    fn remember_password(&mut self, relation: u64) {
        if let Some(password) = self
            .h
            .world
            .bag(relation, "postgresql/0")
            .and_then(|bag| bag.get("password"))
        {
            self.passwords.insert(password.clone());
        }
    }

    /// The name this charm sees for consumer `c` (`remote-<hex>` across
    /// models), and its `db` user.
    fn seen_name(&self, c: usize) -> String {
        let consumer = &self.consumers[c];
        self.h
            .world
            .name_seen_by(consumer.relation, "postgresql", &consumer.app)
    }

    fn user(&self, c: usize) -> String {
        format!("juju_{}", self.seen_name(c))
    }

    /// Whether unit `n` of consumer `c` was told to connect.
    fn ready(&self, c: usize, n: usize) -> bool {
        let unit = format!("{}/{n}", self.consumers[c].app);
        consumer_state(&self.h.world, &unit)["ready"] == Value::Bool(true)
    }

    /// The connection string consumer `c`'s leader got, pointed at unit
    /// `n`'s end of its link (the charm publishes the database unit's
    /// address; each test host reaches it over its own link).
    fn conninfo(&self, c: usize, n: usize) -> String {
        let unit = format!("{}/0", self.consumers[c].app);
        let state = consumer_state(&self.h.world, &unit);
        let master = state["master"]
            .as_str()
            .unwrap_or_else(|| panic!("{unit} has no master: {state}"))
            .to_string();
        self.aimed(c, n, &master)
    }

    fn aimed(&self, c: usize, n: usize, conninfo: &str) -> String {
        conninfo.replace(
            &format!("host={}", self.db_host.host_addr),
            &format!("host={}", self.consumers[c].hosts[n].host_addr),
        )
    }

    /// Runs `sql` from unit `n` of consumer `c`, with `conninfo`.
    fn psql_as(&self, c: usize, n: usize, conninfo: &str, sql: &str) -> Result<String, String> {
        self.consumers[c].hosts[n].psql(conninfo, sql)
    }

    /// Runs `sql` from consumer `c`'s first unit with its own credentials.
    fn psql(&self, c: usize, sql: &str) -> Result<String, String> {
        self.psql_as(c, 0, &self.conninfo(c, 0), sql)
    }

    fn status(&self) -> (String, String) {
        self.h.status()
    }

    fn admin(&self, sql: &str) -> String {
        self.h
            .cluster
            .psql(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every hook of every unit succeeded, passwords appear in no log, no
    /// hook output, no status and not in the server's log.
    fn check_hooks_and_secrets(&self) {
        let failed: Vec<String> = self
            .h
            .world
            .trace()
            .iter()
            .filter(|record| !record.succeeded())
            .map(|record| format!("{} on {}", record.invocation.hook, record.invocation.unit))
            .collect();
        assert!(failed.is_empty(), "hooks failed: {failed:?}");
        self.check_secrets();
    }

    fn check_secrets(&self) {
        let server_log = std::fs::read_to_string(self.h.cluster.log_file()).unwrap_or_default();
        for password in &self.passwords {
            for log in self.h.world.logs() {
                assert!(
                    !log.message.contains(password.as_str()),
                    "password in juju-log of {}",
                    log.hook
                );
            }
            for record in self.h.world.trace() {
                assert!(
                    !record.output().contains(password.as_str()),
                    "password in the output of {}",
                    record.invocation.hook
                );
            }
            for app in self.h.world.apps() {
                for unit in app.units.values() {
                    assert!(
                        !unit.status.message.contains(password.as_str()),
                        "password in the status of {}",
                        unit.name
                    );
                }
            }
            assert!(
                !server_log.contains(password.as_str()),
                "password in the server log"
            );
        }
    }

    /// Runs a hook on the database unit, outside the queue.
    fn run(&mut self, hook: &str) {
        let result = self.h.world.run_hook("postgresql/0", hook).unwrap();
        assert!(result.succeeded(), "{hook}: {}", result.output());
        self.h.world.settle().unwrap();
    }
}

/// A consumer's session left running in the background (a transaction it
/// keeps open). Dropping it ends it: the client by pid, and its server
/// session (a backend in `pg_sleep` does not notice its client is gone).
struct Background {
    child: Child,
    port: u16,
    user: String,
}

impl Background {
    /// Starts `sql` from `host` as `conninfo` (whose user is `user`), and
    /// waits until the server runs its `pg_sleep` (by then it holds
    /// whatever it locked).
    fn start(site: &Site, host: &Netns, conninfo: &str, user: &str, sql: &str) -> Background {
        let child = Command::new("ip")
            .args(["netns", "exec", &host.name])
            .args(["psql", "-X", "-w", "-q", "-At", "-v", "ON_ERROR_STOP=1"])
            .args(["-d", conninfo, "-c", sql])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("PGPASSFILE", "/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let background = Background {
            child,
            port: site.h.cluster.port,
            user: user.to_string(),
        };
        let sleeping = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND usename = '{user}'"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while site.admin(&sleeping) == "0" {
            assert!(
                Instant::now() < deadline,
                "the background session never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        background
    }

    /// Whether it ended, and how, within `wait`: `Some(true)` if it
    /// succeeded.
    fn ended_within(&mut self, wait: Duration) -> Option<bool> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.success());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("runuser")
            .args(scenarios::superuser_psql_args(self.port, "postgres"))
            .arg("-c")
            .arg(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}'",
                self.user
            ))
            .output();
    }
}

/// The blocked status names the relation and `needle`.
fn assert_blocked_naming(s: &Site, relation: u64, needle: &str) {
    let (status, message) = s.status();
    assert_eq!(status, "blocked", "{message}");
    assert!(
        message.contains(&format!("db:{relation}"))
            || message.contains(&format!("db-admin:{relation}")),
        "names the relation: {message}"
    );
    assert!(message.contains(needle), "mentions {needle:?}: {message}");
}

// ----------------------------------------------------------------- item 1

#[test]
fn a_database_belongs_to_the_relation_that_created_it() {
    let mut s = site("owner");
    let shop = s.consumer("k8s", "shop", "db", 1, &[("database", "shop")]);
    s.psql(
        shop,
        "CREATE TABLE orders (card text); INSERT INTO orders VALUES ('4111-secret')",
    )
    .unwrap();
    // Another tenant asks for the shop's database by name.
    let rival = s.consumer("k8s", "rival", "db", 1, &[("database", "shop")]);
    let rival_relation = s.consumers[rival].relation;
    assert_blocked_naming(&s, rival_relation, "database shop");
    assert!(!s.ready(rival, 0), "the rival is not told to connect");
    // Nothing granted on it. (The rival's user may exist: before its request
    // arrived it was served a database of its own; now it cannot log in.)
    let rival_user = s.user(rival);
    assert_eq!(
        s.admin(&format!(
            "SELECT coalesce(bool_or(has_database_privilege(r.oid, 'shop', 'CONNECT') OR r.rolcanlogin), false) \
             FROM pg_roles r WHERE r.rolname = '{rival_user}'"
        )),
        "f",
        "no access to shop"
    );
    let hba = std::fs::read_to_string(s.h.cluster.conf_dir().join("pg_hba.conf")).unwrap();
    assert!(!hba.contains(&rival_user), "{hba}");
    // The owner keeps working meanwhile.
    assert_eq!(s.psql(shop, "SELECT count(*) FROM orders").unwrap(), "1");
    // The record says whose it is; only superusers may write it.
    let recorded = s.admin(
        "SELECT remote_app || ' ' || endpoint FROM juju_charm.owners WHERE kind = 'database' AND name = 'shop'",
    );
    assert_eq!(recorded, format!("{} db", s.seen_name(shop)));
    assert_eq!(
        s.admin("SELECT has_table_privilege('public', 'juju_charm.owners', 'INSERT')"),
        "f"
    );

    // An application named like a database the operator made by hand gets
    // no access to it by default.
    s.admin("CREATE DATABASE handmade");
    let squatter = s.consumer("db", "handmade", "db", 1, &[]);
    let squatter_relation = s.consumers[squatter].relation;
    assert_blocked_naming(&s, squatter_relation, "database handmade exists");
    assert!(!s.ready(squatter, 0));

    // The operator shares both on purpose: now they are served.
    let rival_name = s.seen_name(rival);
    s.h.world
        .set_config(
            "postgresql",
            &[(
                "shared-databases",
                &format!("shop = {rival_name}; handmade = handmade"),
            )],
        )
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    assert!(s.ready(rival, 0) && s.ready(squatter, 0));
    s.remember_password(rival_relation);
    let rival_conninfo = s.conninfo(rival, 0);
    assert_eq!(
        s.psql_as(rival, 0, &rival_conninfo, "SELECT current_database()")
            .unwrap(),
        "shop"
    );
    // Sharing the database is not sharing the owner's tables.
    let denied = s
        .psql_as(rival, 0, &rival_conninfo, "SELECT * FROM orders")
        .unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");
    assert_eq!(
        s.psql(squatter, "SELECT current_database()").unwrap(),
        "handmade"
    );

    // Sharing withdrawn: refused again, and its access is taken back.
    s.h.world
        .set_config("postgresql", &[("shared-databases", "handmade = handmade")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_blocked_naming(&s, rival_relation, "database shop");
    assert!(s.psql_as(rival, 0, &rival_conninfo, "SELECT 1").is_err());
    assert_eq!(
        s.admin(&format!(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{rival_user}'"
        )),
        "f"
    );
    assert_eq!(s.psql(shop, "SELECT count(*) FROM orders").unwrap(), "1");
    s.check_hooks_and_secrets();
}

// ----------------------------------------------------------------- item 2

#[test]
fn one_consumer_cannot_stop_the_charm_from_serving_the_others() {
    let mut s = site("isolation");
    let good = s.consumer("k8s", "good", "db", 1, &[("database", "gooddb")]);
    let evil = s.consumer(
        "k8s",
        "evil",
        "db",
        1,
        &[("database", "evildb"), ("extensions", "pg_trgm")],
    );
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    let evil_conninfo = s.conninfo(evil, 0);
    let as_evil = |s: &Site, sql: &str| s.psql_as(evil, 0, &evil_conninfo, sql);
    // The extension went into the charm's schema, which the consumer
    // cannot write, and which is on its search_path.
    assert_eq!(
        as_evil(
            &s,
            "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_trgm'"
        )
        .unwrap(),
        "juju_extensions"
    );
    assert_eq!(
        as_evil(&s, "SELECT similarity('abc', 'abd') > 0").unwrap(),
        "t"
    );
    let denied = as_evil(&s, "CREATE TABLE juju_extensions.t (x int)").unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");

    // The consumer, with its own credentials, sets its database up to trip
    // every session the charm opens there, and drops its public schema.
    let evil_user = s.user(evil);
    as_evil(
        &s,
        &format!(
            "CREATE SCHEMA trap; DROP SCHEMA public CASCADE; \
             ALTER DATABASE evildb SET search_path = trap; \
             ALTER DATABASE evildb SET statement_timeout = 1; \
             ALTER DATABASE evildb SET role = '{evil_user}'; \
             ALTER DATABASE evildb SET default_transaction_read_only = on; \
             ALTER DATABASE evildb SET local_preload_libraries = 'no_such_library'"
        ),
    )
    .unwrap();
    // ... and asks for one more extension, which the charm must not put
    // into the consumer's schema on the search_path.
    change_request(&mut s, evil, "extensions", "pg_trgm,citext");
    s.h.world
        .set_config("postgresql", &[("relation-ipv6-breadth", "64")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    assert_eq!(
        in_database(
            &s,
            "evildb",
            "SELECT string_agg(extname || ':' || extnamespace::regnamespace, ',' ORDER BY extname) \
             FROM pg_extension WHERE extname IN ('citext', 'pg_trgm')"
        ),
        "citext:juju_extensions,pg_trgm:juju_extensions"
    );
    assert_eq!(s.psql(good, "SELECT 1").unwrap(), "1");

    // A consumer may change its own password: the charm's stands.
    s.admin("ALTER DATABASE evildb RESET ALL");
    as_evil(
        &s,
        &format!("ALTER ROLE \"{evil_user}\" PASSWORD 'chosen-by-me'"),
    )
    .unwrap();
    s.h.world
        .set_config("postgresql", &[("relation-ipv6-breadth", "56")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(as_evil(&s, "SELECT 1").unwrap(), "1");

    // An extension with a dependency that is not installed: CASCADE, once
    // the operator allows the untrusted one.
    let geo = s.consumer("k8s", "geo", "db", 1, &[("extensions", "earthdistance")]);
    let geo_relation = s.consumers[geo].relation;
    assert_blocked_naming(&s, geo_relation, "allowed-extensions");
    assert!(!s.ready(geo, 0));
    s.h.world
        .set_config("postgresql", &[("allowed-extensions", "earthdistance")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    s.remember_password(geo_relation);
    assert_eq!(
        s.psql(geo, "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql'")
            .unwrap(),
        "cube,earthdistance"
    );

    // A consumer holding a lock the charm needs (its database's catalog
    // row, in a transaction it keeps open): the charm gives up on that
    // relation after lock_timeout, says so, and serves the others. The
    // charm writes that row only when something differs, so something
    // does: PUBLIC was given CONNECT behind its back, which it takes away.
    let locker = s.consumer("k8s", "locker", "db", 1, &[("database", "lockerdb")]);
    let locker_relation = s.consumers[locker].relation;
    let locker_user = s.user(locker);
    s.admin("GRANT CONNECT ON DATABASE lockerdb TO PUBLIC");
    let holding = Background::start(
        &s,
        &s.consumers[locker].hosts[0],
        &s.conninfo(locker, 0),
        &locker_user,
        "BEGIN; ALTER DATABASE lockerdb CONNECTION LIMIT 50; SELECT pg_sleep(120); COMMIT",
    );
    s.h.world
        .set_config("postgresql", &[("relation-ipv6-breadth", "48")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_blocked_naming(&s, locker_relation, "lock timeout");
    assert_eq!(s.psql(good, "SELECT 1").unwrap(), "1");
    // A relation joining meanwhile is served.
    let late = s.consumer("k8s", "late", "db", 1, &[]);
    assert!(s.ready(late, 0));
    assert_eq!(s.psql(late, "SELECT 1").unwrap(), "1");
    // The lock goes away; the next hook (update-status) finishes the work.
    drop(holding);
    s.run("update-status");
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    assert_eq!(s.psql(locker, "SELECT 1").unwrap(), "1");
    assert_eq!(
        s.admin("SELECT has_database_privilege('public', 'lockerdb', 'CONNECT')"),
        "f",
        "PUBLIC's CONNECT taken away once the lock went"
    );

    // A consumer that made a schema named like the charm's own before
    // asking for an extension is refused: the charm will not run an
    // extension script where the consumer can write.
    let squatter = s.consumer("k8s", "squat", "db", 1, &[("database", "squatdb")]);
    s.psql(squatter, "CREATE SCHEMA juju_extensions").unwrap();
    let squat_relation = s.consumers[squatter].relation;
    change_request(&mut s, squatter, "extensions", "citext");
    s.h.world.settle().unwrap();
    assert_blocked_naming(&s, squat_relation, "juju_extensions");
    assert_eq!(
        in_database(
            &s,
            "squatdb",
            "SELECT count(*) FROM pg_extension WHERE extname = 'citext'"
        ),
        "0"
    );
    assert_eq!(s.psql(good, "SELECT 1").unwrap(), "1");
    for c in 0..s.consumers.len() {
        let relation = s.consumers[c].relation;
        s.remember_password(relation);
    }
    s.check_hooks_and_secrets();
}

/// The consumer's application data changes `key` to `value` (as a hostile
/// or buggy consumer would write it), and Juju tells the database unit.
fn change_request(s: &mut Site, c: usize, key: &str, value: &str) {
    let relation = s.consumers[c].relation;
    let app = s.consumers[c].app.clone();
    s.h.world
        .write_bag(relation, &app, &[(key, value)])
        .unwrap();
    s.h.world.settle().unwrap();
}

/// `sql` as the superuser in `database`, whatever defaults it was given.
fn in_database(s: &Site, database: &str, sql: &str) -> String {
    let out = Command::new("runuser")
        .args(scenarios::superuser_psql_args(s.h.cluster.port, database))
        .args(["-c", sql])
        .env(
            "PGOPTIONS",
            "-c role=none -c default_transaction_read_only=off -c statement_timeout=0 -c local_preload_libraries=",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ----------------------------------------------------------------- item 3

#[test]
fn removed_and_refused_relations_lose_their_access() {
    let mut s = site("revoke");
    // Removed while the unit is blocked for an unrelated reason.
    let quiet = s.consumer("k8s", "quiet", "db", 1, &[]);
    let quiet_conninfo = s.conninfo(quiet, 0);
    s.psql(quiet, "SELECT 1").unwrap();
    s.h.world
        .set_config("postgresql", &[("extra-pg-conf", "work_mem = lots")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.status().0, "blocked", "{:?}", s.status());
    s.h.world
        .remove_relation(s.consumers[quiet].relation)
        .unwrap();
    s.h.world.settle().unwrap();
    assert!(s.status().1.contains("extra-pg-conf"), "{:?}", s.status());
    let denied = s
        .psql_as(quiet, 0, &quiet_conninfo, "SELECT 1")
        .unwrap_err();
    assert!(
        denied.contains("not permitted to log in") || denied.contains("rejects"),
        "{denied}"
    );
    let quiet_user = s.user(quiet);
    assert_eq!(
        s.admin(&format!(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{quiet_user}'"
        )),
        "f"
    );
    s.h.world
        .reset_config("postgresql", &["extra-pg-conf"])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.status().0, "active", "{:?}", s.status());

    // Served, then its data turns hostile: refused, and its live session
    // ends; removed later, still no login.
    let turned = s.consumer("k8s", "turned", "db", 1, &[]);
    let turned_conninfo = s.conninfo(turned, 0);
    let relation = s.consumers[turned].relation;
    let turned_user = s.user(turned);
    let mut session = Background::start(
        &s,
        &s.consumers[turned].hosts[0],
        &turned_conninfo,
        &turned_user,
        "SELECT pg_sleep(120)",
    );
    change_request(&mut s, turned, "roles", "pg_execute_server_program");
    assert_blocked_naming(&s, relation, "pg_execute_server_program");
    assert_eq!(
        session.ended_within(Duration::from_secs(10)),
        Some(false),
        "its session was terminated"
    );
    assert_eq!(
        s.admin(&format!(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{turned_user}'"
        )),
        "f"
    );
    assert!(s.psql_as(turned, 0, &turned_conninfo, "SELECT 1").is_err());
    let bag =
        s.h.world
            .bag(relation, "postgresql/0")
            .cloned()
            .unwrap_or_default();
    assert!(
        !bag.contains_key("password") && !bag.contains_key("master"),
        "data taken back: {:?}",
        bag.keys()
    );
    s.h.world.remove_relation(relation).unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    assert_eq!(
        s.admin(&format!(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{turned_user}'"
        )),
        "f"
    );

    // A removed db-admin user is no superuser any more.
    let admin = s.consumer("k8s", "admin", "db-admin", 1, &[]);
    let admin_user = format!("jujuadmin_{}", s.seen_name(admin));
    assert_eq!(
        s.admin(&format!(
            "SELECT rolsuper FROM pg_roles WHERE rolname = '{admin_user}'"
        )),
        "t"
    );
    s.h.world
        .remove_relation(s.consumers[admin].relation)
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(
        s.admin(&format!(
            "SELECT rolsuper || ' ' || rolcanlogin FROM pg_roles WHERE rolname = '{admin_user}'"
        )),
        "false false"
    );

    // A consumer holding its own role's row locked (it changes its
    // password in a transaction it keeps open) cannot keep its login.
    let clinger = s.consumer("k8s", "clinger", "db", 1, &[]);
    let clinger_user = s.user(clinger);
    let mut holding = Background::start(
        &s,
        &s.consumers[clinger].hosts[0],
        &s.conninfo(clinger, 0),
        &clinger_user,
        &format!("BEGIN; ALTER ROLE \"{clinger_user}\" PASSWORD 'mine-forever'; SELECT pg_sleep(120); COMMIT"),
    );
    s.h.world
        .remove_relation(s.consumers[clinger].relation)
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(
        holding.ended_within(Duration::from_secs(10)),
        Some(false),
        "its session was terminated"
    );
    assert_eq!(
        s.admin(&format!(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = '{clinger_user}'"
        )),
        "f"
    );
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    for c in 0..s.consumers.len() {
        let relation = s.consumers[c].relation;
        s.remember_password(relation);
    }
    s.check_hooks_and_secrets();
}

#[test]
fn a_re_related_application_gets_a_new_password() {
    let mut s = site("rerelate");
    // Within the model the application keeps its name, hence its user.
    let app = s.consumer("db", "again", "db", 1, &[]);
    let first = s.conninfo(app, 0);
    s.psql(app, "CREATE TABLE kept (x int)").unwrap();
    s.h.world
        .remove_relation(s.consumers[app].relation)
        .unwrap();
    s.h.world.settle().unwrap();
    assert!(s.psql_as(app, 0, &first, "SELECT 1").is_err());

    let relation = s.relate("again", "db", "db");
    s.consumers[app].relation = relation;
    let second = s.conninfo(app, 0);
    assert_ne!(first, second, "a new password");
    assert_eq!(
        second.matches("user=juju_again").count(),
        1,
        "the same user, so it keeps its tables"
    );
    assert_eq!(s.psql(app, "SELECT count(*) FROM kept").unwrap(), "0");
    let old = s.psql_as(app, 0, &first, "SELECT 1").unwrap_err();
    assert!(old.contains("password authentication failed"), "{old}");
    s.check_hooks_and_secrets();
}

// ----------------------------------------------------------------- item 4

#[test]
fn requested_roles_are_judged_by_all_they_are_a_member_of() {
    let mut s = site("roles");
    let first = s.consumer("k8s", "first", "db", 1, &[("roles", "reporting")]);
    let first_user = s.user(first);
    s.admin(&format!(
        "CREATE ROLE files NOLOGIN; GRANT pg_read_server_files TO files; \
         CREATE ROLE middle NOLOGIN; GRANT pg_write_server_files TO middle; \
         CREATE ROLE outer_role NOLOGIN; GRANT middle TO outer_role; \
         CREATE ROLE everything NOLOGIN; GRANT pg_read_all_data TO everything; \
         CREATE ROLE boss NOLOGIN SUPERUSER; CREATE ROLE via_boss NOLOGIN; GRANT boss TO via_boss; \
         CREATE ROLE first_side NOLOGIN; GRANT \"{first_user}\" TO first_side; \
         CREATE ROLE readers NOLOGIN"
    ));
    let cases = [
        ("files", "pg_read_server_files"),
        ("outer_role", "pg_write_server_files"),
        ("everything", "pg_read_all_data"),
        ("via_boss", "SUPERUSER"),
        ("first_side", "another relation's user"),
        ("reporting", "was created for"),
    ];
    for (i, (role, needle)) in cases.iter().enumerate() {
        let c = s.consumer("k8s", &format!("asker{i}"), "db", 1, &[("roles", role)]);
        let relation = s.consumers[c].relation;
        assert_blocked_naming(&s, relation, needle);
        assert!(!s.ready(c, 0), "{role}");
        let user = s.user(c);
        assert_eq!(
            s.admin(&format!(
                "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '{user}'"
            )),
            "0",
            "{role} granted to nobody"
        );
        s.h.world.remove_relation(relation).unwrap();
        s.h.world.settle().unwrap();
    }
    // A harmless role the operator made is shared with whoever asks.
    let fine = s.consumer("k8s", "fine", "db", 1, &[("roles", "readers")]);
    assert!(s.ready(fine, 0));
    assert_eq!(
        s.psql(fine, "SELECT pg_has_role('readers', 'member')")
            .unwrap(),
        "t"
    );
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    for c in 0..s.consumers.len() {
        let relation = s.consumers[c].relation;
        s.remember_password(relation);
    }
    s.check_hooks_and_secrets();
}

// ----------------------------------------------------------------- item 5

/// Makes a file immutable (even for root) until dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(path: std::path::PathBuf) -> Self {
        let out = Command::new("chattr")
            .arg("+i")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Immutable(path)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).output();
    }
}

#[test]
fn what_is_published_survives_a_hook_that_fails_later() {
    let mut s = site("publish");
    let hosts = vec![Netns::with_free_subnet("late")];
    let address = hosts[0].ns_addr.to_string();
    s.h.world
        .deploy(
            "k8s",
            "late",
            &consumer_charm(),
            DeployOptions {
                units: 1,
                addresses: vec![(address.clone(), address)],
                ..Default::default()
            },
        )
        .unwrap();
    s.h.world.settle().unwrap();
    // pg_hba.conf cannot be replaced: the hook that adds the consumer's
    // address publishes, then fails writing the file.
    let locked = Immutable::new(s.h.cluster.conf_dir().join("pg_hba.conf"));
    let relation =
        s.h.world
            .integrate_cross_model("postgresql:db", "late:db", "pg", &[])
            .unwrap();
    let failed = s.h.world.settle().unwrap_err().to_string();
    assert!(failed.contains("postgresql/0"), "{failed}");
    s.consumers.push(Consumer {
        app: "late".into(),
        hosts,
        relation,
    });
    // The file becomes writable again; Juju retries the hook.
    drop(locked);
    s.h.world.settle().unwrap();
    assert!(
        s.ready(0, 0),
        "the consumer got its credentials after the retry"
    );
    s.remember_password(relation);
    assert_eq!(s.psql(0, "SELECT 1").unwrap(), "1");
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    s.check_secrets();
}

// ----------------------------------------------------------------- item 6

#[test]
fn the_server_follows_its_files_after_a_killed_hook() {
    let mut s = site("reload");
    let shop = s.consumer("k8s", "shop", "db", 2, &[]);
    let departing = s.conninfo(shop, 1);
    assert_eq!(s.psql_as(shop, 1, &departing, "SELECT 1").unwrap(), "1");
    let hba_path = s.h.cluster.conf_dir().join("pg_hba.conf");
    let with_both = std::fs::read_to_string(&hba_path).unwrap();

    // The unit leaves; the charm writes pg_hba.conf without it, and reloads.
    s.h.world.remove_unit("shop/1").unwrap();
    s.h.world.settle().unwrap();
    let without = std::fs::read_to_string(&hba_path).unwrap();
    let leaving = format!(" {}/32 ", s.consumers[shop].hosts[1].ns_addr);
    assert!(
        with_both.contains(&leaving) && !without.contains(&leaving),
        "{without}"
    );
    assert!(s.psql_as(shop, 1, &departing, "SELECT 1").is_err());

    // Now the state a hook killed between writing the file and reloading
    // leaves behind: the file (and everything the charm remembers) without
    // the unit, the server still running with the rules that admit it.
    std::fs::write(&hba_path, &with_both).unwrap();
    reload_and_wait(&s);
    std::fs::write(&hba_path, &without).unwrap();
    assert_eq!(
        s.psql_as(shop, 1, &departing, "SELECT 1").unwrap(),
        "1",
        "admitted again"
    );

    // The retry finds the file as it wants it, and reloads all the same.
    s.run("config-changed");
    assert_eq!(std::fs::read_to_string(&hba_path).unwrap(), without);
    let refused = s.psql_as(shop, 1, &departing, "SELECT 1").unwrap_err();
    assert!(
        refused.contains("pg_hba.conf rejects connection"),
        "{refused}"
    );
    assert_eq!(s.psql(shop, "SELECT 1").unwrap(), "1");

    // A hook killed between the reload and the restart a setting needs:
    // the file and the loaded configuration say 124, the server runs 123.
    s.h.world
        .set_config("postgresql", &[("extra-pg-conf", "max_connections = 123")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.admin("SHOW max_connections"), "123");
    let conf_path = s.h.cluster.conf_dir().join("conf.d/90-juju-charm.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    assert_eq!(conf.matches("max_connections = 123\n").count(), 1, "{conf}");
    let wanted = conf.replace("max_connections = 123\n", "max_connections = 124\n");
    std::fs::write(&conf_path, &wanted).unwrap();
    reload_and_wait(&s);
    assert_eq!(
        s.admin("SELECT pending_restart FROM pg_settings WHERE name = 'max_connections'"),
        "t"
    );
    let starts = s.h.cluster.starts();
    s.h.world
        .set_config("postgresql", &[("extra-pg-conf", "max_connections = 124")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(std::fs::read_to_string(&conf_path).unwrap(), wanted);
    assert_eq!(s.admin("SHOW max_connections"), "124");
    assert_eq!(s.h.cluster.starts(), starts + 1, "exactly one restart");
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    let relation = s.consumers[shop].relation;
    s.remember_password(relation);
    s.check_hooks_and_secrets();
}

/// `pg_reload_conf()`, and waits until the server has read the files.
fn reload_and_wait(s: &Site) {
    let before = s.admin("SELECT pg_conf_load_time()");
    s.admin("SELECT pg_reload_conf()");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.admin("SELECT pg_conf_load_time()") == before {
        assert!(Instant::now() < deadline, "the server did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ----------------------------------------------------------------- item 7

#[test]
fn the_address_space_of_a_relation_is_bounded() {
    let mut s = site("breadth");
    let host = Netns::with_free_subnet("wide");
    let own = format!("{}/32", host.ns_addr);
    let address = host.ns_addr.to_string();
    s.h.world
        .deploy(
            "k8s",
            "wide",
            &consumer_charm(),
            DeployOptions {
                units: 1,
                addresses: vec![(address.clone(), address)],
                ..Default::default()
            },
        )
        .unwrap();
    s.h.world.settle().unwrap();
    // Its own address plus a /16: fine one by one, more than a /16 together.
    let relation =
        s.h.world
            .integrate_cross_model("postgresql:db", "wide:db", "pg", &[&own, "10.20.0.0/16"])
            .unwrap();
    s.h.world.settle().unwrap();
    s.consumers.push(Consumer {
        app: "wide".into(),
        hosts: vec![host],
        relation,
    });
    assert_blocked_naming(&s, relation, "relation-ipv4-breadth");
    assert!(!s.ready(0, 0));
    let hba = std::fs::read_to_string(s.h.cluster.conf_dir().join("pg_hba.conf")).unwrap();
    assert!(
        !hba.contains("10.20.0.0/16") && !hba.contains(&own),
        "{hba}"
    );
    // The operator allows twice as much.
    s.h.world
        .set_config("postgresql", &[("relation-ipv4-breadth", "15")])
        .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.status().0, "active", "{:?}", s.status());
    assert!(s.ready(0, 0));
    s.remember_password(relation);
    assert_eq!(s.psql(0, "SELECT 1").unwrap(), "1");
    // An out-of-range limit blocks on the option and changes nothing.
    s.h.world
        .set_config("postgresql", &[("relation-ipv4-breadth", "4")])
        .unwrap();
    s.h.world.settle().unwrap();
    let (status, message) = s.status();
    assert!(
        status == "blocked" && message.contains("relation-ipv4-breadth"),
        "{message}"
    );
    assert_eq!(s.psql(0, "SELECT 1").unwrap(), "1");
    s.check_hooks_and_secrets();
}
