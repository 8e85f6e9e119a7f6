//! Helpers for the replicated cluster on emulated machines, as the packed
//! charm forms it by its own hooks (`tests/ha_cluster.rs`,
//! `tests/ha_failover.rs`, `bench-ha`): a unit deployed alone is a
//! standalone server ([`deploy_standalone`], [`deploy_one`]); `add-unit`
//! ([`add_units`]) makes the leader found etcd and hand its server to
//! Patroni, and new units clone it ([`wait_for_cluster`]). The failover
//! scenarios' consumer, writer and prober are in [`traffic`] (re-exported
//! here).

pub mod traffic;
pub use traffic::*;

use std::cell::RefCell;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use juju_emulator::World;

/// The application the helpers deploy.
pub const APP: &str = "postgresql";

/// A World in `dir` for the HA scenarios: model `db`, the charm's cluster
/// named `<prefix><pid>` (concurrent runs apart), host-wide tuning off
/// (machines share the host's kernel), no `update-status` until asked.
pub fn world(dir: &Path, prefix: &str) -> anyhow::Result<World> {
    let mut world = World::new(dir)?;
    world.set_test_env(
        "PG_CHARM_CLUSTER",
        &format!("{prefix}{}", std::process::id() % 100_000),
    );
    world.set_test_env("PG_CHARM_HOST_GLOBAL", "off");
    world.set_update_status_interval(None);
    world.add_model("db");
    Ok(world)
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

pub use crate::installed_major;

/// `psql` as postgres on `unit`'s machine, over its socket (port 5432).
pub fn psql(world: &World, unit: &str, sql: &str) -> Result<String, String> {
    psql_in(world, unit, "postgres", sql)
}

/// [`psql`] in `database`.
pub fn psql_in(world: &World, unit: &str, database: &str, sql: &str) -> Result<String, String> {
    let out = world
        .machine_of(unit)
        .map_err(|e| e.to_string())?
        .command("runuser")
        .map_err(|e| e.to_string())?
        .args(crate::superuser_psql_args(5432, database))
        .args(["-c", sql])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
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

/// Where the HA files of cluster `name` are on a machine, as the charm
/// lays them out.
pub fn paths(major: u32, name: &str) -> postgresql_charm::ha::HaPaths {
    postgresql_charm::ha::HaPaths::for_cluster(major, name)
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
    deploy_one(world, APP, charm, config)
}

/// `charm` deployed as application `app` with one unit on its own emulated
/// machine, `config` on top of a 512M memory limit, hooks settled; its unit.
pub fn deploy_one(world: &mut World, app: &str, charm: &Path, config: &[(&str, &str)]) -> String {
    let mut options: std::collections::BTreeMap<String, String> =
        [("memory-limit".to_string(), "512M".to_string())].into();
    options.extend(config.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    world
        .deploy(
            "db",
            app,
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
    format!("{app}/0")
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
