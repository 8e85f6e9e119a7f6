//! Root tier: three units on three emulated machines turn the charm's
//! standalone clusters into one replicated cluster (etcd 3.4, the bundled
//! Patroni 3.2.2), driven by `ha::converge` from inside each unit's hook
//! context.
//!
//! Today's converge does not call the HA step yet (issue 10 restructures
//! it), so the test deploys the packed charm (each unit creates its
//! standalone cluster; unit 0's gets rows), then refreshes the application to
//! a charm that only records its hooks, so that the old converge does not
//! fight Patroni, and runs `ha::converge` in each unit through `juju-exec`:
//! this same test binary, with `HA_CLUSTER_ROUND` set, in the unit's hook
//! context (relation data, secrets, leadership), committed like a hook. It
//! repeats rounds over the units until none has anything left to do, then
//! checks the cluster from outside: rows on both standbys, one synchronous
//! standby, the same system identifier, three voting etcd members, the REST
//! API and etcd refusing anonymous writes, no password in any argv or log.
//! Every process runs inside the machines, which the World kills and
//! removes when it drops (also when the test fails).

use std::process::Stdio;
use std::time::{Duration, Instant};

use juju_emulator::machine::MachineSpec;
use juju_emulator::{DeployOptions, World};
use scenarios::ha::{self, finish, quiet_charm, role_of, spawn_exec, Driver, APP};

const TEST: &str = "three_units_form_a_replicated_cluster_from_the_charms_standalone_one";

fn cluster_name() -> String {
    format!("hac{}", std::process::id() % 100_000)
}

#[test]
fn three_units_form_a_replicated_cluster_from_the_charms_standalone_one() {
    if std::env::var_os(ha::ROUND_ENV).is_some() {
        ha::round();
        return;
    }
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
                units: 3,
                config: [("memory-limit".to_string(), "512M".to_string())].into(),
                machine: Some(MachineSpec {
                    memory_mib: 2048,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    let units: Vec<String> = (0..3).map(|n| format!("{APP}/{n}")).collect();
    for unit in &units {
        let s = &world.unit(unit).unwrap().status;
        assert_eq!(s.status, "active", "{unit}: {}", s.message);
    }
    let sql = |world: &World, unit: &str, sql: &str| ha::psql(world, unit, sql);
    sql(
        &world,
        &units[0],
        "CREATE TABLE kept (n int PRIMARY KEY); INSERT INTO kept SELECT generate_series(1, 1000);",
    )
    .unwrap();
    let standalone_sysid = sql(
        &world,
        &units[0],
        "SELECT system_identifier FROM pg_control_system()",
    )
    .unwrap();

    // The old converge steps aside; the HA step runs through juju-exec.
    let quiet = quiet_charm(&scratch.0, &charm);
    world.upgrade_charm(APP, &quiet).unwrap();
    world.settle().unwrap();
    let leader = world.app(APP).unwrap().leader.clone().unwrap();
    let mut outputs = String::new();
    let driver = Driver::new(
        std::env::current_exe().unwrap(),
        ["--exact", TEST, "--nocapture", "--test-threads=1"]
            .map(String::from)
            .to_vec(),
        &name,
    );
    let converged = driver.passes(&mut world, &units, None, "", &mut outputs, |states| {
        let roles: Vec<&str> = states.iter().filter_map(|s| role_of(s)).collect();
        states.iter().all(|s| s.contains("problems=[]"))
            && roles.iter().filter(|r| **r == "Primary").count() == 1
            && roles.iter().filter(|r| **r == "Standby").count() == 2
    });
    assert!(converged, "the three units did not converge");

    // Patroni, not Juju, says who is primary: it is the founder, unit 0's
    // machine, holding the charm's standalone data.
    let primary = leader.clone();
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
    let replication = wait_for(
        "one synchronous and one asynchronous standby",
        Duration::from_secs(60),
        || {
            sql(
                &world,
                &primary,
                "SELECT string_agg(application_name || ':' || state || ':' || sync_state, ',' \
                   ORDER BY application_name) FROM pg_stat_replication",
            )
            .ok()
            .filter(|r| {
                r.matches(":streaming:sync").count() == 1
                    && r.matches(":streaming:async").count() == 1
            })
        },
    );
    eprintln!("pg_stat_replication: {replication}");
    // Cluster-wide settings come from the DCS, the same everywhere.
    for unit in &units {
        assert_eq!(
            sql(&world, unit, "SHOW max_connections").unwrap(),
            "120",
            "{unit}"
        );
    }

    // Authentication, inside each machine.
    for unit in &units {
        let out = run_inner(&world, unit, "HA_CLUSTER_CHECK", &name);
        assert!(out.0, "{unit}: the check failed:\n{}", out.1);
    }

    // Scale down: the standby that is not synchronous leaves; etcd and
    // Patroni keep the other two, the synchronous standby stays.
    let leaving = &units[2];
    assert!(
        replication.contains("postgresql-1:streaming:sync"),
        "{replication}"
    );
    let left = driver.passes(
        &mut world,
        &units,
        Some(leaving),
        "",
        &mut outputs,
        |states| {
            states[2].contains("did=[]")
                && states[0].contains("problems=[]")
                && states[0].contains("published=Some((Some(\"postgresql/0\"), 1))")
        },
    );
    assert!(left, "{leaving} did not leave cleanly");
    let members = run_etcdctl_member_list(&world, &primary);
    assert_eq!(members.matches("\"name\"").count(), 2, "{members}");
    assert!(!members.contains("postgresql-2"), "{members}");
    let processes = world
        .machine_of(leaving)
        .unwrap()
        .run("ps", &["-eo", "args"])
        .unwrap();
    let processes = String::from_utf8_lossy(&processes.stdout).into_owned();
    let left_running: Vec<&str> = processes
        .lines()
        .filter(|l| {
            l.starts_with("/usr/bin/etcd") || l.contains("bin/patroni") || l.contains("postgres -D")
        })
        .collect();
    assert!(
        left_running.is_empty(),
        "still running on {leaving}: {left_running:?}"
    );
    sql(&world, &primary, "INSERT INTO kept VALUES (1002)").unwrap();
    assert_eq!(
        sql(&world, &units[1], "SELECT max(n) FROM kept").unwrap(),
        "1002",
        "the synchronous standby has every commit"
    );

    // No password in any argv or log, on any machine, nor in what the hooks
    // and juju-exec printed or logged (collected before the test reads the
    // passwords through juju-exec itself).
    let mut seen: Vec<(String, String)> = vec![("juju-exec rounds".into(), outputs)];
    for record in world.logs() {
        seen.push((
            format!("juju-log of {}", record.unit),
            record.message.clone(),
        ));
    }
    for exec in world.execs() {
        seen.push(("juju-exec results".into(), format!("{:?}", exec.result)));
    }
    for unit in &units {
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

fn run_etcdctl_member_list(world: &World, unit: &str) -> String {
    let machine = world.machine_of(unit).unwrap();
    let endpoint = format!("http://{}:2379", machine.address());
    let out = machine
        .run(
            "env",
            &[
                "ETCDCTL_API=3",
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

/// What runs inside the machines besides the rounds.
mod inner {
    use std::process::Command;

    use postgresql_charm::ha::http::{self, BasicAuth};
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
        // The REST API refuses unsafe calls without (or with wrong) credentials.
        let timeout = std::time::Duration::from_secs(5);
        let anonymous =
            http::request(&rest, "POST", "/restart", Some(b"{}"), None, timeout).unwrap();
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
        )
        .unwrap();
        assert_eq!(refused.status, 401, "{}", refused.body);
        // etcd: anonymous writes and writes outside Patroni's namespace fail.
        let put = |user: Option<(&str, &Password)>, key: &str| {
            let mut c = Command::new("etcdctl");
            c.env("ETCDCTL_API", "3")
                .env("ETCDCTL_ENDPOINTS", format!("http://{host}:2379"))
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
            postgresql_charm::ha::etcdctl::Etcdctl::new(vec![format!("http://{host}:2379")], None)
                .member_list()
                .unwrap();
        assert_eq!(members.len(), 3, "{members:?}");
        assert!(members.iter().all(|m| !m.is_learner), "{members:?}");
    }
}
