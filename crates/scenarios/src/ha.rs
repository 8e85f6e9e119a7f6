//! Driving the HA step on emulated machines before the converge calls it
//! (issue 10 wires it in): `tests/ha_cluster.rs` and `bench-ha`.
//!
//! The packed charm makes a standalone cluster on each machine; then the
//! application is refreshed to [`quiet_charm`] (the same metadata, a
//! dispatch that only records hooks, the bundled Patroni wheel), so that
//! today's converge does not fight Patroni, and [`Driver::passes`] runs
//! `ha::converge` in each unit's hook context through `juju-exec`: the
//! driver's own executable, which calls [`round`] when it finds
//! [`ROUND_ENV`] set.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use juju_emulator::World;
use postgresql_charm::cluster::Cluster;
use postgresql_charm::ha::converge::{converge, HaUnit, Session};
use postgresql_charm::ha::dcs::DynamicConfig;
use postgresql_charm::ha::etcd_config::cluster_token;
use postgresql_charm::ha::install;
use postgresql_charm::ha::options::{HaOptions, SyncNodeCount, TimingProfile};
use postgresql_charm::ha::patroni_config::{PatroniConfig, WatchdogMode};
use postgresql_charm::ha::plan::Inputs;
use postgresql_charm::ha::version::BundledWheel;
use postgresql_charm::state::StateDir;

/// The application the drivers deploy.
pub const APP: &str = "postgresql";
/// Set (to 1) in the environment of a round.
pub const ROUND_ENV: &str = "HA_CLUSTER_ROUND";
/// What a round prints before its summary.
pub const ROUND_MARK: &str = "HA-ROUND ";

/// How to run a round: `exe args...` inside the unit's machine.
#[derive(Debug, Clone)]
pub struct Driver {
    pub exe: PathBuf,
    pub args: Vec<String>,
    /// The cluster name (`PG_CHARM_CLUSTER`).
    pub name: String,
}

impl Driver {
    pub fn new(exe: PathBuf, args: Vec<String>, name: &str) -> Self {
        Driver {
            exe,
            args,
            name: name.to_string(),
        }
    }

    /// One `ha::converge` in `unit`'s hook context; `env` is extra
    /// `NAME=value` words for the round (e.g. `HA_CLUSTER_ASYNC=1`).
    pub fn round(
        &self,
        world: &mut World,
        unit: &str,
        departing: bool,
        env: &str,
    ) -> (i32, String, String) {
        let commands = format!(
            "{ROUND_ENV}=1 HA_CLUSTER_NAME={} HA_CLUSTER_DEPARTING={} {env} {} {}",
            self.name,
            if departing { "1" } else { "" },
            self.exe.display(),
            self.args.join(" ")
        );
        let child = spawn_exec(world, unit, &commands);
        finish(world, child, Duration::from_secs(300))
    }

    /// Runs rounds over `units` (with `departing` leaving) until a pass
    /// where nothing was done and `done` holds for the summary lines;
    /// whether it got there. Panics when a round fails.
    pub fn passes(
        &self,
        world: &mut World,
        units: &[String],
        departing: Option<&String>,
        env: &str,
        outputs: &mut String,
        done: impl Fn(&[String]) -> bool,
    ) -> bool {
        for pass in 0..25 {
            let mut busy = false;
            let mut states = Vec::new();
            for unit in units {
                let (code, stdout, stderr) = self.round(world, unit, departing == Some(unit), env);
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
}

/// `role=` of a round's summary line.
pub fn role_of(state: &str) -> Option<&str> {
    state
        .split_whitespace()
        .find_map(|w| w.strip_prefix("role="))
}

/// The last lines of every service log on `unit`'s machine.
pub fn service_logs(world: &World, unit: &str) -> String {
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

pub fn installed_major() -> u32 {
    *postgresql_charm::cluster::packages::installed_majors()
        .last()
        .expect("a PostgreSQL server is installed")
}

/// `psql` as postgres on `unit`'s machine, over its socket (port 5432).
pub fn psql(world: &World, unit: &str, sql: &str) -> Result<String, String> {
    psql_in(world, unit, "postgres", sql)
}

/// [`psql`] in `database`.
pub fn psql_in(world: &World, unit: &str, database: &str, sql: &str) -> Result<String, String> {
    let out = world
        .machine_of(unit)
        .map_err(|e| e.to_string())?
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
                database,
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
pub fn quiet_charm(dir: &Path, packed: &Path) -> PathBuf {
    let charm = dir.join("quiet-charm");
    std::fs::create_dir_all(charm.join("wheels")).unwrap();
    let root = crate::repo_root();
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

/// `juju-exec -u <unit> <commands>` from inside the unit's machine.
pub fn spawn_exec(world: &World, unit: &str, commands: &str) -> Child {
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

/// Serves the World until `child` exits (or `limit`): its code and output.
pub fn finish(world: &mut World, child: Child, limit: Duration) -> (i32, String, String) {
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

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} unset"))
}

/// Where the HA files of cluster `name` are on a machine.
pub fn paths(major: u32, name: &str) -> postgresql_charm::ha::HaPaths {
    let mut paths = postgresql_charm::ha::HaPaths::for_cluster(major, name);
    // On an emulated machine /usr/lib is the test host's.
    paths.bundled_root = PathBuf::from("/var/lib/juju-pg-ha-test-bundled");
    paths
}

/// One `ha::converge` in a unit's hook context (run through juju-exec by
/// [`Driver::round`]); prints a summary line after [`ROUND_MARK`].
pub fn round() {
    let name = env("HA_CLUSTER_NAME");
    let unit_name = env("JUJU_UNIT_NAME");
    let major = installed_major();
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
    // The fast failover profile (the cluster forms sooner); asynchronous
    // replication when the driver asks.
    let options = HaOptions {
        timing: TimingProfile::FAST,
        sync_node_count: if std::env::var("HA_CLUSTER_ASYNC").is_ok_and(|v| v == "1") {
            SyncNodeCount::Asynchronous
        } else {
            SyncNodeCount::DEFAULT
        },
        ..Default::default()
    };
    let inputs = Inputs {
        patroni: PatroniConfig {
            scope: APP.into(),
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
        cluster_token: cluster_token(&env("JUJU_MODEL_UUID"), APP),
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
        ROUND_MARK,
        plan.role,
        session.done,
        plan.problems,
        plan.warnings,
        plan.published
            .map(|p| (p.primary.map(|m| m.unit), p.standbys.len()))
    );
}

/// An emulated machine for a database unit (2 GiB, as the HA tests size
/// PostgreSQL with `memory-limit`).
pub fn db_machine() -> juju_emulator::MachineSpec {
    juju_emulator::MachineSpec {
        memory_mib: 2048,
        ..Default::default()
    }
}

/// `unit`'s workload status and message.
pub fn status(world: &World, unit: &str) -> (String, String) {
    let s = &world.unit(unit).unwrap().status;
    (s.status.clone(), s.message.clone())
}

/// `postgresql` deployed alone on an emulated machine (a standalone server),
/// with `config` on top of a 512M memory limit; its unit.
pub fn deploy_standalone(world: &mut World, charm: &Path, config: &[(&str, &str)]) -> String {
    let mut options: std::collections::BTreeMap<String, String> =
        [("memory-limit".to_string(), "512M".to_string())].into();
    options.extend(config.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    world
        .deploy(
            "db",
            APP,
            charm,
            juju_emulator::DeployOptions {
                units: 1,
                config: options,
                machine: Some(db_machine()),
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    format!("{APP}/0")
}

/// `juju add-unit -n <n>` onto new machines; the new units.
pub fn add_units(world: &mut World, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            world
                .add_unit_with(
                    APP,
                    juju_emulator::UnitOptions {
                        machine: Some(db_machine()),
                        ..Default::default()
                    },
                )
                .unwrap()
        })
        .collect()
}

/// Lets the hooks (and `update-status` every 5 s, the fallback Juju runs
/// every 5 minutes) run until every unit is active, `primary` says it has
/// the others as standbys and they say they follow it. Panics with the
/// services' logs otherwise.
pub fn wait_for_cluster(world: &mut World, units: &[String], primary: &str, limit: Duration) {
    let standbys = units.len() - 1;
    let primary_says = format!(
        "primary, {standbys} standby{}",
        if standbys == 1 { "" } else { "s" }
    );
    let follows = format!("standby of {primary}");
    world.set_update_status_interval(Some(Duration::from_secs(5)));
    let formed = world.run_until(limit, |w| {
        units.iter().all(|u| {
            let (state, message) = status(w, u);
            state == "active"
                && if u == primary {
                    message.contains(&primary_says)
                } else {
                    message.contains(&follows)
                }
        })
    });
    world.set_update_status_interval(None);
    if let Err(e) = formed {
        let logs: String = units
            .iter()
            .filter(|u| world.machine_of(u).is_ok_and(|m| m.is_up()))
            .map(|u| service_logs(world, u))
            .collect();
        panic!("{units:?} did not become one cluster led by {primary}: {e:#}\n{logs}");
    }
}
