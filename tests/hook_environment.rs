//! The processes the charm starts (`postgres -C`, `pg_ctlcluster`,
//! `pg_createcluster`, ...) must not depend on where Juju starts the hook:
//! Juju runs it in the charm directory, which the `postgres` user may not be
//! allowed to read. And when the server refuses a configuration, the status
//! names the option that produced the refused setting only when it did.
//!
//! Needs root (loop devices, mounts, PostgreSQL); `scripts/test` runs it.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Harness;

#[test]
fn hooks_work_when_postgres_cannot_read_the_charm_directory() {
    let mut h = Harness::new("charm-dir");
    let disk = h.disk("pgdata", 400);
    // The emulated agents (and so every charm directory) below a directory
    // only root may enter, as on a machine where /var/lib/juju is 0700.
    let world = h.scratch.0.join("world");
    std::fs::set_permissions(&world, std::fs::Permissions::from_mode(0o700)).unwrap();
    h.deploy(Some(&disk), &[]);
    let (status, message) = h.status();
    assert_eq!(status, "active", "{message}");
    // A change the server must validate first.
    h.world
        .set_config("postgresql", &[("extra-pg-conf", "work_mem = 12MB")])
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    assert_eq!(h.cluster.psql("SHOW work_mem").unwrap(), "12MB");
    // Nothing the charm started ran in a directory it could not read (the
    // server logs it when its working directory is unreachable).
    let log = std::fs::read_to_string(h.cluster.log_file()).unwrap();
    for complaint in [
        "could not change directory",
        "could not identify current directory",
    ] {
        assert!(!log.contains(complaint), "{complaint}:\n{log}");
    }
}

#[test]
fn a_refused_setting_is_blamed_on_extra_pg_conf_only_when_it_came_from_there() {
    let mut h = Harness::new("blame");
    h.deploy(None, &[]);
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    // The operator's own file, with a value the server refuses.
    let local = h.cluster.conf_dir().join("conf.d/50-local.conf");
    std::fs::write(&local, "lock_timeout = lots\n").unwrap();
    h.world
        .set_config("postgresql", &[("max-connections", "120")])
        .unwrap();
    h.world.settle().unwrap();
    let (status, message) = h.status();
    assert_eq!(status, "blocked", "{message}");
    assert!(
        message.contains(&format!("lock_timeout in {}", local.display())),
        "{message}"
    );
    assert!(!message.contains("extra-pg-conf"), "{message}");
    assert!(message.contains("still serving"), "{message}");
    assert_eq!(h.cluster.psql("SELECT 1").unwrap(), "1");

    // The same setting from extra-pg-conf is blamed on the option.
    std::fs::remove_file(&local).unwrap();
    h.world
        .set_config("postgresql", &[("extra-pg-conf", "work_mem = lots")])
        .unwrap();
    h.world.settle().unwrap();
    let (status, message) = h.status();
    assert_eq!(status, "blocked", "{message}");
    assert!(
        message.starts_with("config extra-pg-conf: the server rejects work_mem"),
        "{message}"
    );
    h.world
        .reset_config("postgresql", &["extra-pg-conf"])
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    assert_eq!(h.cluster.psql("SHOW max_connections").unwrap(), "120");
}
