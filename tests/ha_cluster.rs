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

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use juju_emulator::machine::MachineSpec;
use juju_emulator::{DeployOptions, World};

const TEST: &str = "three_units_form_a_replicated_cluster_from_the_charms_standalone_one";
const APP: &str = "postgresql";
const ROUND_MARK: &str = "HA-ROUND ";

fn cluster_name() -> String {
    format!("hac{}", std::process::id() % 100_000)
}

#[test]
fn three_units_form_a_replicated_cluster_from_the_charms_standalone_one() {
    if std::env::var_os("HA_CLUSTER_ROUND").is_some() {
        inner::round();
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
    let major = installed_major();
    let sql = |world: &World, unit: &str, sql: &str| psql(world, unit, major, &name, sql);
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
    let converged = passes(&mut world, &units, &name, None, &mut outputs, |states| {
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
    let left = passes(
        &mut world,
        &units,
        &name,
        Some(leaving),
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

/// Runs HA rounds over `units` (with `departing` leaving) until a pass
/// where nothing was done and `done` holds for the summary lines; whether it
/// got there.
fn passes(
    world: &mut World,
    units: &[String],
    name: &str,
    departing: Option<&String>,
    outputs: &mut String,
    done: impl Fn(&[String]) -> bool,
) -> bool {
    for pass in 0..25 {
        let mut busy = false;
        let mut states = Vec::new();
        for unit in units {
            let (code, stdout, stderr) = exec_round(world, unit, name, departing == Some(unit));
            outputs.push_str(&stdout);
            outputs.push_str(&stderr);
            let line = stdout
                .lines()
                .find_map(|l| l.split_once(ROUND_MARK).map(|(_, rest)| rest))
                .map(str::to_string);
            let Some(line) = line.filter(|_| code == 0) else {
                let logs = service_logs(world, unit);
                panic!("{unit}: round {pass} failed ({code}):\n{stdout}\n{stderr}\n{logs}")
            };
            eprintln!("pass {pass} {unit}: {line}");
            busy |= !line.contains("did=[]");
            states.push(line);
        }
        if !busy && done(&states) {
            return true;
        }
        world.run_for(Duration::from_secs(2)).unwrap();
    }
    false
}

fn role_of(state: &str) -> Option<&str> {
    state
        .split_whitespace()
        .find_map(|w| w.strip_prefix("role="))
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

/// The last lines of every service log on `unit`'s machine.
fn service_logs(world: &World, unit: &str) -> String {
    let out = world
        .machine_of(unit)
        .unwrap()
        .run(
            "sh",
            &[
                "-c",
                "for f in /var/log/juju-pg-charm/*; do echo \"--- $f\"; tail -n 25 \"$f\"; done",
            ],
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed_major() -> u32 {
    *postgresql_charm::cluster::packages::installed_majors()
        .last()
        .expect("a PostgreSQL server is installed")
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

/// `psql` as postgres on `unit`'s machine, over its socket.
fn psql(world: &World, unit: &str, major: u32, name: &str, sql: &str) -> Result<String, String> {
    let _ = (major, name);
    let out = world
        .machine_of(unit)
        .unwrap()
        .run(
            "runuser",
            &[
                "-u",
                "postgres",
                "--",
                "psql",
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "/var/run/postgresql",
                "-p",
                "5432",
                "-d",
                "postgres",
                "-c",
                sql,
            ],
        )
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The wheel from the packed charm, and a charm that only records hooks,
/// with the same metadata and config.
fn quiet_charm(dir: &Path, packed: &Path) -> PathBuf {
    let charm = dir.join("quiet-charm");
    std::fs::create_dir_all(charm.join("wheels")).unwrap();
    let root = scenarios::repo_root();
    for file in ["metadata.yaml", "config.yaml", "actions.yaml"] {
        std::fs::copy(root.join(file), charm.join(file)).unwrap();
    }
    let wheel = postgresql_charm::ha::version::BundledWheel::charm();
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])",
        ])
        .arg(packed)
        .arg(format!("wheels/{}", wheel.file_name()))
        .arg(&charm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dispatch = charm.join("dispatch");
    std::fs::write(
        &dispatch,
        "#!/bin/sh\necho \"${JUJU_DISPATCH_PATH#hooks/}\" >> \"$JUJU_CHARM_DIR/../hooks-seen\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    charm
}

fn spawn_exec(world: &World, unit: &str, commands: &str) -> Child {
    world
        .machine_of(unit)
        .unwrap()
        .command("/usr/bin/juju-exec")
        .unwrap()
        .args(["-u", unit, commands])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(world: &mut World, child: Child, limit: Duration) -> (i32, String, String) {
    let child = RefCell::new(child);
    let served = world.run_until(limit, |_| child.borrow_mut().try_wait().unwrap().is_some());
    if served.is_err() {
        let _ = child.borrow_mut().kill();
    }
    let out = child.into_inner().wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One `ha::converge` in `unit`'s hook context.
fn exec_round(world: &mut World, unit: &str, name: &str, departing: bool) -> (i32, String, String) {
    let exe = std::env::current_exe().unwrap();
    let commands = format!(
        "HA_CLUSTER_ROUND=1 HA_CLUSTER_NAME={name} HA_CLUSTER_DEPARTING={} {} --exact {TEST} \
         --nocapture --test-threads=1",
        if departing { "1" } else { "" },
        exe.display()
    );
    let child = spawn_exec(world, unit, &commands);
    finish(world, child, Duration::from_secs(300))
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

/// What runs inside the machines.
mod inner {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use postgresql_charm::cluster::Cluster;
    use postgresql_charm::ha::converge::{converge, HaUnit, Session};
    use postgresql_charm::ha::dcs::DynamicConfig;
    use postgresql_charm::ha::etcd_config::cluster_token;
    use postgresql_charm::ha::http::{self, BasicAuth};
    use postgresql_charm::ha::options::{HaOptions, TimingProfile};
    use postgresql_charm::ha::patroni_config::{PatroniConfig, WatchdogMode, ETCD_PATRONI_USER};
    use postgresql_charm::ha::plan::Inputs;
    use postgresql_charm::ha::version::BundledWheel;
    use postgresql_charm::ha::{install, HaPaths, REST_API_PORT};
    use postgresql_charm::secret::Password;
    use postgresql_charm::state::StateDir;

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} unset"))
    }

    fn paths(major: u32, name: &str) -> HaPaths {
        let mut paths = HaPaths::for_cluster(major, name);
        // On an emulated machine /usr/lib is the test host's.
        paths.bundled_root = PathBuf::from("/var/lib/juju-pg-ha-test-bundled");
        paths
    }

    /// One `ha::converge`, in a unit's hook context; prints a summary line.
    pub fn round() {
        let name = env("HA_CLUSTER_NAME");
        let unit_name = env("JUJU_UNIT_NAME");
        let major = super::installed_major();
        let address: std::net::IpAddr = postgresql_charm::juju::unit_private_address()
            .unwrap()
            .parse()
            .unwrap();
        let leader = postgresql_charm::juju::is_leader().unwrap();
        let paths = paths(major, &name);
        let wheel = BundledWheel::charm();
        let charm_dir = PathBuf::from(env("JUJU_CHARM_DIR"));
        let patroni = install::install_bundled(
            &charm_dir.join("wheels").join(wheel.file_name()),
            &wheel,
            &paths.bundled_root,
        )
        .unwrap();
        let me = postgresql_charm::ha::Member::new(&unit_name, address);
        let data_dir = PathBuf::from(format!("/var/lib/postgresql/{major}/{name}"));
        let options = HaOptions {
            timing: TimingProfile::FAST,
            ..Default::default()
        };
        let inputs = Inputs {
            patroni: PatroniConfig {
                scope: super::APP.into(),
                me: me.clone(),
                etcd_members: vec![],
                listen_host: address.to_string(),
                port: 5432,
                data_dir: data_dir.clone(),
                config_dir: PathBuf::from(format!("/etc/postgresql/{major}/{name}")),
                bin_dir: PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
                pgpass: paths.patroni_pgpass.clone(),
                socket_dir: "/var/run/postgresql".into(),
                wal_dir: None,
                strict: false,
                watchdog: WatchdogMode::Off,
                local_parameters: Default::default(),
                dynamic: DynamicConfig {
                    timing: options.timing,
                    replication: options.replication_for(1),
                    parameters: [("max_connections".to_string(), "120".to_string())].into(),
                },
            },
            options,
            cluster_token: cluster_token(&env("JUJU_MODEL_UUID"), super::APP),
            etcd_data: paths.etcd_data.clone(),
            patroni_version: wheel.version,
        };
        let unit = HaUnit {
            unit: unit_name,
            address,
            leader,
            departing: std::env::var("HA_CLUSTER_DEPARTING").is_ok_and(|v| v == "1"),
            cluster: Cluster {
                major,
                name: name.clone(),
                port: 5432,
            },
            data_dir,
            state: StateDir::at(&Path::new(postgresql_charm::state::ROOT).join(&name)),
            paths,
            inputs,
            patroni_program: patroni,
        };
        let mut session = Session::default();
        let plan = converge(&unit, &mut session).unwrap_or_else(|e| {
            panic!("converge failed after {:?}: {e:#}", session.done);
        });
        println!(
            "\n{}role={:?} did={:?} problems={:?} warnings={:?} published={:?}",
            super::ROUND_MARK,
            plan.role,
            session.done,
            plan.problems,
            plan.warnings,
            plan.published
                .map(|p| (p.primary.map(|m| m.unit), p.standbys.len()))
        );
    }

    /// Authentication, checked inside a machine (no hook context).
    pub fn check() {
        let name = env("HA_CLUSTER_NAME");
        let major = super::installed_major();
        let paths = paths(major, &name);
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
