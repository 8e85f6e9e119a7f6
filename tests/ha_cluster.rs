//! Root tier: the packed charm, as Juju runs it, turns one standalone unit
//! into a replicated cluster of three on three emulated machines (etcd 3.4,
//! the bundled Patroni 3.2.2) when two units are added, with no command
//! beyond `add-unit`.
//!
//! Unit 0 is deployed alone (a standalone server, as before HA) and gets
//! rows; `add-unit` twice; the hooks (and `update-status`, every few seconds
//! here, every five minutes in Juju) converge until unit 0 is the primary of
//! two streaming standbys cloned from it. Then, from outside: the rows on
//! both standbys, one synchronous standby, one system identifier, the same
//! cluster-wide settings everywhere, a `db` consumer told the primary in
//! `master` and the standbys in `standbys` by every unit, the REST API and
//! etcd refusing anonymous writes, three voting etcd members; removing a
//! standby leaves two members serving; no password in any argv or log;
//! in strict mode (before the scale down), the primary acknowledges
//! nothing while both standbys are frozen and the waiting commit returns
//! once they are thawed.
//! Every process runs inside the machines, which the World kills and
//! removes when it drops (also when the test fails).

use std::process::Stdio;
use std::time::{Duration, Instant};

use juju_emulator::machine::MachineSpec;
use juju_emulator::{DeployOptions, UnitOptions, World};
use scenarios::ha::{self, finish, spawn_exec, APP};

const TEST: &str = "three_units_form_a_replicated_cluster_from_the_charms_standalone_one";

fn cluster_name() -> String {
    format!("hac{}", std::process::id() % 100_000)
}

fn machine() -> MachineSpec {
    MachineSpec {
        memory_mib: 2048,
        ..Default::default()
    }
}

fn status(world: &World, unit: &str) -> (String, String) {
    let s = &world.unit(unit).unwrap().status;
    (s.status.clone(), s.message.clone())
}

#[test]
fn three_units_form_a_replicated_cluster_from_the_charms_standalone_one() {
    if std::env::var_os("HA_CLUSTER_CHECK").is_some() {
        inner::check();
        return;
    }
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "needs root (emulated machines)"
    );
    let scratch = scenarios::Scratch::new("ha-cluster").unwrap();
    let world_dir = scratch.0.join("world");
    let mut world = World::new(&world_dir).unwrap();
    let name = cluster_name();
    world.set_test_env("PG_CHARM_CLUSTER", &name);
    world.set_test_env("PG_CHARM_HOST_GLOBAL", "off");
    world.set_update_status_interval(None);
    world.add_model("db");
    let charm = scenarios::packed_charm().unwrap();
    world
        .deploy(
            "db",
            APP,
            &charm,
            DeployOptions {
                units: 1,
                config: [
                    ("memory-limit".to_string(), "512M".to_string()),
                    ("failover-profile".to_string(), "fast".to_string()),
                ]
                .into(),
                machine: Some(machine()),
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    let first = format!("{APP}/0");
    let (state, message) = status(&world, &first);
    assert_eq!(state, "active", "{message}");
    assert!(
        !message.contains("primary"),
        "alone, a standalone server: {message}"
    );
    let sql = |world: &World, unit: &str, sql: &str| ha::psql(world, unit, sql);
    sql(
        &world,
        &first,
        "CREATE TABLE kept (n int PRIMARY KEY); INSERT INTO kept SELECT generate_series(1, 1000);",
    )
    .unwrap();
    let standalone_sysid = sql(
        &world,
        &first,
        "SELECT system_identifier FROM pg_control_system()",
    )
    .unwrap();
    let consumer = scenarios::consumer_charm().unwrap();
    world
        .deploy(
            "db",
            "shop",
            &consumer,
            DeployOptions {
                units: 1,
                config: [("database".to_string(), "shop".to_string())].into(),
                ..Default::default()
            },
        )
        .unwrap();
    let relation = world.integrate(&format!("{APP}:db"), "shop:db").unwrap();
    world.settle().unwrap();

    // Two more units: nothing else is asked of the operator.
    let mut units = vec![first.clone()];
    for _ in 0..2 {
        let unit = world
            .add_unit_with(
                APP,
                UnitOptions {
                    machine: Some(machine()),
                    ..Default::default()
                },
            )
            .unwrap();
        units.push(unit);
    }
    world.set_update_status_interval(Some(Duration::from_secs(5)));
    let formed = world.run_until(Duration::from_secs(420), |w| {
        let messages: Vec<(String, String)> = units.iter().map(|u| status(w, u)).collect();
        messages.iter().all(|(s, _)| s == "active")
            && messages[0].1.contains("primary, 2 standbys")
            && messages[1..]
                .iter()
                .all(|(_, m)| m.contains(&format!("standby of {first}")))
    });
    if let Err(e) = formed {
        let logs: String = units.iter().map(|u| ha::service_logs(&world, u)).collect();
        panic!("the three units did not form one cluster: {e:#}\n{logs}");
    }
    world.set_update_status_interval(None);
    world.settle().unwrap();

    // Patroni, not Juju, says who is primary: the founder, holding the
    // standalone data.
    let primary = first.clone();
    let standbys: Vec<&String> = units.iter().filter(|u| **u != primary).collect();
    let sysids: Vec<String> = units
        .iter()
        .map(|u| {
            sql(
                &world,
                u,
                "SELECT system_identifier FROM pg_control_system()",
            )
            .unwrap()
        })
        .collect();
    assert!(
        sysids.iter().all(|s| *s == standalone_sysid),
        "one cluster, the standalone one adopted: {sysids:?} vs {standalone_sysid}"
    );
    assert_eq!(
        sql(&world, &primary, "SELECT pg_is_in_recovery()").unwrap(),
        "f"
    );
    sql(&world, &primary, "INSERT INTO kept VALUES (1001)").unwrap();
    for standby in &standbys {
        assert_eq!(
            sql(&world, standby, "SELECT pg_is_in_recovery()").unwrap(),
            "t"
        );
        let rows = wait_for("the new row on a standby", Duration::from_secs(60), || {
            sql(&world, standby, "SELECT count(*), max(n) FROM kept")
                .ok()
                .filter(|r| r == "1001|1001")
        });
        assert_eq!(rows, "1001|1001");
    }
    let replication = one_synchronous_one_asynchronous(&world, &primary);
    eprintln!("pg_stat_replication: {replication}");
    // Issue 14 item 5: replication runs over TLS, each standby verifying
    // its primary with the internal CA, which signs every unit's
    // certificate (one CA for all: what clients are given verifies any).
    assert_eq!(
        sql(
            &world,
            &primary,
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)"
        )
        .unwrap(),
        "2|t",
        "both walsenders encrypted"
    );
    for standby in &standbys {
        let conninfo = sql(&world, standby, "SELECT conninfo FROM pg_stat_wal_receiver").unwrap();
        assert!(
            conninfo.contains("sslmode=verify-ca") && conninfo.contains("peers-ca.pem"),
            "{standby}: {conninfo}"
        );
    }
    // ca.pem sits beside the served certificate (not ssl_ca_file, which
    // would ask clients for certificates).
    let served_ca = "WITH f AS (SELECT pg_read_file(current_setting('ssl_cert_file')) AS cert, \
           pg_read_file(regexp_replace(current_setting('ssl_cert_file'), 'cert\\.pem$', 'ca.pem')) AS ca) \
         SELECT md5(ca), ca <> cert FROM f";
    let cas: Vec<String> = units
        .iter()
        .map(|u| sql(&world, u, served_ca).unwrap())
        .collect();
    assert!(
        cas.iter().all(|c| *c == cas[0] && c.ends_with("|t")),
        "one CA, not self-signed: {cas:?}"
    );
    let hba = sql(
        &world,
        &primary,
        "SELECT string_agg(type, ',') FROM pg_hba_file_rules WHERE 'replication' = ANY(database)",
    )
    .unwrap();
    assert!(
        !hba.is_empty() && hba.split(',').all(|t| t == "hostssl"),
        "replication only over TLS: {hba}"
    );
    // Cluster-wide settings come from the DCS, the same everywhere; the
    // memory settings follow each machine.
    let cluster_wide: Vec<String> = units
        .iter()
        .map(|u| sql(&world, u, "SHOW max_connections").unwrap())
        .collect();
    assert!(
        cluster_wide.iter().all(|v| *v == cluster_wide[0]),
        "{cluster_wide:?}"
    );

    // The consumer is told the primary and the standbys, by every unit,
    // and the leader's application bag says the same.
    let addresses: std::collections::BTreeMap<String, String> = units
        .iter()
        .map(|u| {
            (
                u.clone(),
                world.machine_of(u).unwrap().address().to_string(),
            )
        })
        .collect();
    let address = |unit: &str| addresses[unit].clone();
    let want_standbys: Vec<String> = {
        let mut v: Vec<String> = standbys.iter().map(|u| address(u)).collect();
        v.sort();
        v
    };
    for unit in &units {
        let bag = world.bag(relation, unit).unwrap();
        // Only the hosts are compared and shown: the strings hold passwords.
        let master = hosts(bag.get("master").map(String::as_str).unwrap_or_default());
        assert_eq!(master, [address(&primary)], "{unit}'s master");
        let mut listed = hosts(bag.get("standbys").map(String::as_str).unwrap_or_default());
        listed.sort();
        assert_eq!(listed, want_standbys, "{unit}'s standbys");
        let state = bag.get("state").map(String::as_str).unwrap_or_default();
        let want = if *unit == primary {
            "master"
        } else {
            "hot standby"
        };
        assert_eq!(state, want, "{unit}");
    }
    let app_bag = world.bag(relation, APP).unwrap();
    assert_eq!(
        hosts(
            app_bag
                .get("master")
                .map(String::as_str)
                .unwrap_or_default()
        ),
        [address(&primary)],
        "the leader's application bag"
    );
    // The consumer's database exists once, on the primary, and streams.
    assert_eq!(
        sql(
            &world,
            standbys[0],
            "SELECT count(*) FROM pg_database WHERE datname = 'shop'"
        )
        .unwrap(),
        "1"
    );

    // The operator asks Patroni, through any unit, who is primary.
    let asked = world
        .run_action(&units[2], "get-primary", Default::default())
        .unwrap();
    assert!(asked.failed.is_none(), "{:?}", asked.failed);
    let result = |outcome: &juju_emulator::world::ActionOutcome, key: &str| {
        outcome
            .results
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(result(&asked, "primary"), primary);
    assert_eq!(result(&asked, "address"), address(&primary));
    let status_of = world
        .run_action(&units[1], "cluster-status", Default::default())
        .unwrap();
    assert!(status_of.failed.is_none(), "{:?}", status_of.failed);
    let members = result(&status_of, "members");
    assert_eq!(members.lines().count(), 3, "{members}");
    assert!(
        members.contains(&format!("{primary}: primary, running, timeline")),
        "{members}"
    );
    assert_eq!(
        members.matches("synchronous standby, streaming").count(),
        1,
        "{members}"
    );

    // A bad synchronous-node-count blocks every unit, naming the option,
    // and every member keeps serving; the good value brings them back.
    world
        .set_config(APP, &[("synchronous-node-count", "two")])
        .unwrap();
    world.settle().unwrap();
    every_unit_blocked_and_serving(
        &world,
        &units,
        &["synchronous-node-count", "still serving"],
        ("SELECT count(*) FROM kept", "1001"),
    );
    world
        .set_config(APP, &[("synchronous-node-count", "1")])
        .unwrap();
    world.settle().unwrap();
    for unit in &units {
        assert_eq!(status(&world, unit).0, "active", "{unit}");
    }

    // extra-pg-conf keeps working on the cluster: a good value reaches every
    // member without a restart, a bad one blocks naming the option while
    // every member keeps serving with the last good configuration.
    let start_times = |world: &World| -> Vec<String> {
        units
            .iter()
            .map(|u| sql(world, u, "SELECT pg_postmaster_start_time()").unwrap())
            .collect()
    };
    let started = start_times(&world);
    world
        .set_config(APP, &[("extra-pg-conf", "work_mem = 7MB")])
        .unwrap();
    world.settle().unwrap();
    for unit in &units {
        let work_mem = wait_for(
            "work_mem from extra-pg-conf",
            Duration::from_secs(60),
            || {
                sql(&world, unit, "SHOW work_mem")
                    .ok()
                    .filter(|v| v == "7MB")
            },
        );
        assert_eq!(work_mem, "7MB", "{unit}");
        assert_eq!(status(&world, unit).0, "active", "{unit}");
    }
    world
        .set_config(APP, &[("extra-pg-conf", "work_mem = lots")])
        .unwrap();
    world.settle().unwrap();
    every_unit_blocked_and_serving(
        &world,
        &units,
        &["extra-pg-conf", "work_mem"],
        ("SHOW work_mem", "7MB"),
    );
    world.set_config(APP, &[("extra-pg-conf", "")]).unwrap();
    world.settle().unwrap();
    let restarted = start_times(&world);
    assert_eq!(started, restarted, "extra-pg-conf restarted no member");
    for unit in &units {
        assert_eq!(status(&world, unit).0, "active", "{unit}");
    }

    // Every hook again, twice, on every member (Juju retries hooks, and an
    // agent restart reruns the last one): nothing restarts, no service is
    // replaced, no role moves, nothing published changes.
    every_hook_twice_changes_nothing(&mut world, &units, &primary, relation);

    // Authentication, inside each machine.
    for unit in &units {
        let out = run_inner(&world, unit, "HA_CLUSTER_CHECK", &name);
        assert!(out.0, "{unit}: the check failed:\n{}", out.1);
    }

    let standbys: Vec<String> = units.iter().filter(|u| **u != primary).cloned().collect();
    strict_mode_waits_for_a_synchronous_standby(&mut world, &primary, &standbys);
    let replication = one_synchronous_one_asynchronous(&world, &primary);

    // Scale down: the standby that is not synchronous leaves; etcd and
    // Patroni keep the other two, the synchronous standby stays.
    let (sync_standby, leaving) = if replication.contains("postgresql-1:streaming:sync") {
        (units[1].clone(), units[2].clone())
    } else {
        (units[2].clone(), units[1].clone())
    };
    world.remove_unit(&leaving).unwrap();
    world.set_update_status_interval(Some(Duration::from_secs(5)));
    let left = world.run_until(Duration::from_secs(180), |w| {
        let message = status(w, &primary).1;
        message.contains("primary, 1 standby") && message.contains("cannot fail over safely")
    });
    if let Err(e) = left {
        panic!("{leaving} did not leave cleanly: {e:#}");
    }
    world.set_update_status_interval(None);
    world.settle().unwrap();
    let members = run_etcdctl_member_list(&world, &primary, &name);
    assert_eq!(members.matches("\"name\"").count(), 2, "{members}");
    assert!(!members.contains(&ha_member_name(&leaving)), "{members}");
    sql(&world, &primary, "INSERT INTO kept VALUES (1002)").unwrap();
    assert_eq!(
        sql(&world, &sync_standby, "SELECT max(n) FROM kept").unwrap(),
        "1002",
        "the synchronous standby has every commit"
    );
    let remaining = [primary.clone(), sync_standby.clone()];

    // No password in any argv or log, on any machine, nor in what the hooks
    // logged (collected before the test reads the passwords through
    // juju-exec itself).
    let mut seen: Vec<(String, String)> = Vec::new();
    for record in world.logs() {
        seen.push((
            format!("juju-log of {}", record.unit),
            record.message.clone(),
        ));
    }
    for unit in &remaining {
        let machine = world.machine_of(unit).unwrap();
        let argv = machine
            .run(
                "sh",
                &[
                    "-c",
                    "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done",
                ],
            )
            .unwrap();
        let argv = String::from_utf8_lossy(&argv.stdout).into_owned();
        assert!(argv.contains("machine-init"), "{unit}: the argv were read");
        seen.push((format!("argv on {unit}"), argv));
        let logs = machine
            .run(
                "sh",
                &[
                    "-c",
                    "cat /var/log/juju-pg-charm/* /var/log/postgresql/* 2>/dev/null",
                ],
            )
            .unwrap();
        let logs = String::from_utf8_lossy(&logs.stdout).into_owned();
        assert!(
            logs.contains("Lock owner"),
            "{unit}: Patroni's log was read"
        );
        seen.push((format!("service logs on {unit}"), logs));
    }
    let leader = world.app(APP).unwrap().leader.clone().unwrap();
    let passwords = read_passwords(&mut world, &leader);
    assert_eq!(passwords.len(), 5, "the five passwords of the cluster");
    for (key, password) in &passwords {
        assert!(password.len() >= 20, "{key}");
        for (source, text) in &seen {
            assert!(
                !text.contains(password.as_str()),
                "the {key} password is in the {source}"
            );
        }
    }
}

/// `synchronous-mode-strict=true` on the three-member cluster: with both
/// standbys frozen (their PostgreSQL, Patroni and watcher stopped with
/// SIGSTOP, etcd still running, so the DCS keeps its quorum and the
/// primary its leader key), the primary acknowledges nothing once its
/// walsenders give up (`wal_sender_timeout`): Patroni 3.2.2 sets
/// `synchronous_standby_names` to `*`, a waiting commit is invisible to
/// other sessions. Thawed, the standbys reconnect, the commit returns and
/// the row is on them; strict mode is switched off again.
fn strict_mode_waits_for_a_synchronous_standby(
    world: &mut World,
    primary: &str,
    standbys: &[String],
) {
    world
        .set_config(APP, &[("synchronous-mode-strict", "true")])
        .unwrap();
    world.settle().unwrap();
    let signal_standbys = |world: &World, signal: &str| {
        for unit in standbys {
            let out = world
                .machine_of(unit)
                .unwrap()
                .run(
                    "sh",
                    &[
                        "-c",
                        &format!(
                            "pkill -{signal} -x pg-ha-watcher; pkill -{signal} -x patroni; \
                             pkill -{signal} -x postgres; true"
                        ),
                    ],
                )
                .unwrap();
            assert!(out.status.success(), "{unit}: pkill -{signal}");
        }
    };
    signal_standbys(world, "STOP");
    let deadline = Instant::now() + Duration::from_secs(240);
    let names = loop {
        let names = ha::psql(world, primary, "SHOW synchronous_standby_names");
        if names.as_deref() == Ok("*") {
            break names.unwrap();
        }
        if Instant::now() > deadline {
            signal_standbys(world, "CONT");
            panic!(
                "strict mode, standbys frozen for 240 s: synchronous_standby_names {names:?}, \
                 replication {:?}\n{}",
                ha::psql(
                    world,
                    primary,
                    "SELECT application_name, state, sync_state FROM pg_stat_replication"
                ),
                ha::service_logs(world, primary)
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    eprintln!("strict, no standby: synchronous_standby_names = {names:?}");
    let mut write = world
        .machine_of(primary)
        .unwrap()
        .command("runuser")
        .unwrap()
        .args(scenarios::superuser_psql_args(5432, "postgres"))
        .args(["-c", "INSERT INTO kept VALUES (-1)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let waiting = write.try_wait().unwrap().is_none();
    let visible = ha::psql(world, primary, "SELECT count(*) FROM kept WHERE n = -1");
    let in_recovery = ha::psql(world, primary, "SELECT pg_is_in_recovery()");
    signal_standbys(world, "CONT");
    assert!(waiting, "strict mode acknowledged a commit with no standby");
    assert_eq!(
        visible.as_deref(),
        Ok("0"),
        "the waiting commit is visible on the primary"
    );
    assert_eq!(
        in_recovery.as_deref(),
        Ok("f"),
        "the primary stays primary (it waits, it does not step down)"
    );
    // Thawed: the standbys reconnect and confirm, and the commit returns.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = write.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the waiting commit never returned after the standbys were thawed"
        );
        world.run_for(Duration::from_secs(1)).unwrap();
    };
    let out = write.wait_with_output().unwrap();
    assert!(
        status.success(),
        "the waiting commit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for standby in standbys {
        let on_standby = wait_for("the row on the standby", Duration::from_secs(30), || {
            ha::psql(world, standby, "SELECT count(*) FROM kept WHERE n = -1")
                .ok()
                .filter(|n| n == "1")
        });
        assert_eq!(on_standby, "1", "{standby}");
    }
    world
        .set_config(APP, &[("synchronous-mode-strict", "false")])
        .unwrap();
    world.settle().unwrap();
    ha::wait_for_cluster(
        world,
        &ha::primary_first(&[primary.to_string()], primary)
            .into_iter()
            .chain(standbys.iter().cloned())
            .collect::<Vec<_>>(),
        primary,
        Duration::from_secs(180),
    );
}

/// Every unit is blocked with a message naming each of `needles`, and
/// still answers `query` with `expected` (serving the last good
/// configuration).
fn every_unit_blocked_and_serving(
    world: &World,
    units: &[String],
    needles: &[&str],
    (query, expected): (&str, &str),
) {
    for unit in units {
        let (state, message) = status(world, unit);
        assert_eq!(state, "blocked", "{unit}: {message}");
        assert!(
            needles.iter().all(|n| message.contains(n)),
            "{unit}: {message}"
        );
        assert_eq!(ha::psql(world, unit, query).unwrap(), expected, "{unit}");
    }
}

/// What a rerun of a hook must leave as it was on `unit`: the postmaster's
/// start time, the pid and start time of every service the charm runs
/// (etcd, Patroni, the watcher), whether the server is in recovery, and the
/// unit's status.
fn unchanged_state(world: &World, unit: &str) -> String {
    let started = ha::psql(
        world,
        unit,
        "SELECT pg_postmaster_start_time(), pg_is_in_recovery()",
    )
    .unwrap();
    let machine = world.machine_of(unit).unwrap();
    let services = machine
        .run(
            "sh",
            &[
                "-c",
                "for f in /var/lib/juju-pg-charm/*/service-*.json; do echo \"$f $(cat \"$f\")\"; done",
            ],
        )
        .unwrap();
    let services = String::from_utf8_lossy(&services.stdout).into_owned();
    assert_eq!(
        services.matches("service-").count(),
        3,
        "{unit}: etcd, Patroni and the watcher are recorded:\n{services}"
    );
    let (state, message) = status(world, unit);
    format!("{started}\n{services}{state}: {message}")
}

fn every_hook_twice_changes_nothing(world: &mut World, units: &[String], primary: &str, db: u64) {
    // The last run of each hook each unit has had, as Juju would run it
    // again (with its relation and remote unit). `-departed`/`-broken`
    // and teardown hooks are left out: nothing has departed.
    let mut reruns: Vec<juju_emulator::world::Invocation> = Vec::new();
    for record in world.trace().iter().rev() {
        let inv = &record.invocation;
        let repeatable = !inv.hook.ends_with("-departed")
            && !inv.hook.ends_with("-broken")
            && !matches!(inv.hook.as_str(), "stop" | "remove")
            && !inv.hook.contains("storage-detaching")
            && units.contains(&inv.unit);
        if repeatable
            && !reruns
                .iter()
                .any(|r| r.unit == inv.unit && r.hook == inv.hook)
        {
            reruns.push(inv.clone());
        }
    }
    reruns.reverse();
    for unit in units {
        let hooks: Vec<&str> = reruns
            .iter()
            .filter(|r| r.unit == *unit)
            .map(|r| r.hook.as_str())
            .collect();
        for needed in [
            "install",
            "config-changed",
            "start",
            "replication-relation-changed",
        ] {
            assert!(hooks.contains(&needed), "{unit} ran {needed}: {hooks:?}");
        }
    }
    let bags = |world: &World| -> Vec<Option<juju_emulator::context::Bag>> {
        let mut owners: Vec<String> = units.to_vec();
        owners.push(APP.to_string());
        owners.iter().map(|o| world.bag(db, o).cloned()).collect()
    };
    let before: Vec<String> = units.iter().map(|u| unchanged_state(world, u)).collect();
    let published = bags(world);
    for inv in &reruns {
        for round in 1..=2 {
            let result = world.run_again(inv).unwrap();
            assert!(
                result.succeeded(),
                "{} on {} (run {round} again) failed:\n{}",
                inv.hook,
                inv.unit,
                result.output()
            );
        }
    }
    world.settle().unwrap();
    let after: Vec<String> = units.iter().map(|u| unchanged_state(world, u)).collect();
    for ((unit, before), after) in units.iter().zip(&before).zip(&after) {
        assert_eq!(before, after, "{unit} after every hook ran twice more");
    }
    assert!(
        published == bags(world),
        "the db relation's bags changed when hooks ran again"
    );
    assert_eq!(
        ha::psql(world, primary, "SELECT pg_is_in_recovery()").unwrap(),
        "f",
        "{primary} is still the primary"
    );
    eprintln!("{} hooks ran twice more, nothing changed", reruns.len());
}

/// The `host=` of each connection string (one per line) in `text`.
fn hosts(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix("host="))
                .map(str::to_string)
        })
        .collect()
}

/// `postgresql/2` → `postgresql-2` (Patroni's and etcd's name for it).
fn ha_member_name(unit: &str) -> String {
    postgresql_charm::ha::member_name(unit)
}

/// `etcdctl member list` on `unit`'s machine, over HTTPS with the internal
/// CA (etcd's copy of it).
fn run_etcdctl_member_list(world: &World, unit: &str, name: &str) -> String {
    let machine = world.machine_of(unit).unwrap();
    let endpoint = format!("https://{}:2379", machine.address());
    let ca = scenarios::ha::paths(scenarios::ha::installed_major(), name)
        .etcd_tls
        .join("ca.pem");
    let out = machine
        .run(
            "env",
            &[
                "ETCDCTL_API=3",
                &format!("ETCDCTL_CACERT={}", ca.display()),
                "etcdctl",
                "--endpoints",
                &endpoint,
                "member",
                "list",
                "-w",
                "json",
            ],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `primary` streams to one synchronous and one asynchronous
/// standby; `pg_stat_replication` as `name:state:sync_state,...`.
fn one_synchronous_one_asynchronous(world: &World, primary: &str) -> String {
    wait_for(
        "one synchronous and one asynchronous standby",
        Duration::from_secs(60),
        || {
            ha::psql(
                world,
                primary,
                "SELECT string_agg(application_name || ':' || state || ':' || sync_state, ',' \
                   ORDER BY application_name) FROM pg_stat_replication",
            )
            .ok()
            .filter(|r| {
                r.matches(":streaming:sync").count() == 1
                    && r.matches(":streaming:async").count() == 1
            })
        },
    )
}

fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// This test binary in `mode` inside `unit`'s machine (no hook context).
fn run_inner(world: &World, unit: &str, mode: &str, name: &str) -> (bool, String) {
    let out = world
        .machine_of(unit)
        .unwrap()
        .command(std::env::current_exe().unwrap())
        .unwrap()
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(mode, "1")
        .env("HA_CLUSTER_NAME", name)
        .env("HA_CLUSTER_UNIT", unit)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains(&format!("test {TEST} ... ok")),
        text,
    )
}

/// The cluster's passwords, read through juju-exec on the leader (never
/// printed).
fn read_passwords(world: &mut World, leader: &str) -> Vec<(String, String)> {
    let child = spawn_exec(
        world,
        leader,
        "secret-get --format=json \"$(relation-get -r $(relation-ids replication) --app ha-secrets {APP})\"".replace("{APP}", APP).as_str(),
    );
    let (code, stdout, _) = finish(world, child, Duration::from_secs(60));
    assert_eq!(code, 0, "secret-get failed");
    let content: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&stdout).expect("secret-get's JSON");
    content.into_iter().collect()
}

/// What runs inside the machines (no hook context): the authentication checks.
mod inner {
    use std::process::Command;

    use postgresql_charm::ha::http::{self, BasicAuth, Trust};
    use postgresql_charm::ha::patroni_config::ETCD_PATRONI_USER;
    use postgresql_charm::ha::REST_API_PORT;
    use postgresql_charm::secret::Password;

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} unset"))
    }

    /// Authentication, checked inside a machine (no hook context).
    pub fn check() {
        let name = env("HA_CLUSTER_NAME");
        let major = scenarios::ha::installed_major();
        let paths = scenarios::ha::paths(major, &name);
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&paths.patroni_config).unwrap()).unwrap();
        let etcd_password = Password::new(config["etcd3"]["password"].as_str().unwrap().into());
        let rest = config["restapi"]["listen"].as_str().unwrap().to_string();
        let host = rest.rsplit_once(':').unwrap().0.to_string();
        assert!(rest.ends_with(&format!(":{REST_API_PORT}")));
        // The REST API speaks HTTPS only (issue 14 item 5), with the
        // certificate the internal CA signed.
        let timeout = std::time::Duration::from_secs(5);
        let ca = config["ctl"]["cacert"].as_str().expect("ctl.cacert");
        let trust = Trust::from_file(std::path::Path::new(ca)).unwrap();
        let trust = Some(&trust);
        let status = http::request(&rest, "GET", "/patroni", None, None, timeout, trust).unwrap();
        assert_eq!(status.status, 200, "{}", status.body);
        assert!(
            http::request(&rest, "GET", "/patroni", None, None, timeout, None).is_err(),
            "plain HTTP answered"
        );
        // The REST API refuses unsafe calls without (or with wrong) credentials.
        let anonymous =
            http::request(&rest, "POST", "/restart", Some(b"{}"), None, timeout, trust).unwrap();
        assert_eq!(anonymous.status, 401, "{}", anonymous.body);
        let wrong = BasicAuth {
            user: "patroni".into(),
            password: Password::new("not-the-password".into()),
        };
        let refused = http::request(
            &rest,
            "POST",
            "/restart",
            Some(b"{}"),
            Some(&wrong),
            timeout,
            trust,
        )
        .unwrap();
        assert_eq!(refused.status, 401, "{}", refused.body);
        // etcd speaks TLS to its clients (issue 14 item 5): Patroni
        // verifies it with the units' CA; plain HTTP gets no answer.
        assert_eq!(config["etcd3"]["protocol"], "https");
        let etcd_ca = config["etcd3"]["cacert"].as_str().expect("etcd3.cacert");
        let plain = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .env("ETCDCTL_DIAL_TIMEOUT", "3s")
            .env("ETCDCTL_COMMAND_TIMEOUT", "5s")
            .env("ETCDCTL_ENDPOINTS", format!("http://{host}:2379"))
            .args(["endpoint", "health"])
            .output()
            .unwrap();
        assert!(!plain.status.success(), "etcd answered plain HTTP");
        // Its peers must show a certificate of the internal CA: a client
        // that trusts the server but has none gets nothing from the peer
        // port.
        let peer = format!("{host}:2380");
        assert!(
            http::request(&peer, "GET", "/members", None, None, timeout, trust).is_err(),
            "etcd's peer port answered a client without a certificate"
        );
        // etcd: anonymous writes and writes outside Patroni's namespace fail.
        let put = |user: Option<(&str, &Password)>, key: &str| {
            let mut c = Command::new("etcdctl");
            c.env("ETCDCTL_API", "3")
                .env("ETCDCTL_ENDPOINTS", format!("https://{host}:2379"))
                .env("ETCDCTL_CACERT", etcd_ca)
                .args(["put", key, "x"]);
            if let Some((u, p)) = user {
                c.env("ETCDCTL_USER", u).env("ETCDCTL_PASSWORD", p.expose());
            }
            c.output().unwrap().status.success()
        };
        assert!(!put(None, "/juju-pg/probe"), "anonymous write accepted");
        assert!(!put(
            Some((ETCD_PATRONI_USER, &etcd_password)),
            "/elsewhere"
        ));
        assert!(put(
            Some((ETCD_PATRONI_USER, &etcd_password)),
            "/juju-pg/probe"
        ));
        // Three voting members.
        let members =
            postgresql_charm::ha::etcdctl::Etcdctl::new(vec![format!("https://{host}:2379")], None)
                .trusting(Some(std::path::Path::new(etcd_ca)))
                .member_list()
                .unwrap();
        assert_eq!(members.len(), 3, "{members:?}");
        assert!(members.iter().all(|m| !m.is_learner), "{members:?}");
        assert!(
            members
                .iter()
                .all(|m| m.peer_urls.iter().all(|u| u.starts_with("https://"))),
            "{members:?}"
        );
    }
}
