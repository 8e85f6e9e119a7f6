//! A real PostgreSQL on a real dedicated disk (ext4 on a loop device),
//! driven by the packed charm under the Juju emulator through every deploy
//! order the contract allows, crashes, bad config and teardown.
//!
//! Needs root (loop devices, mounts, PostgreSQL); `scripts/test` runs it.

mod common;

use std::time::Duration;

use common::{Harness, PrivateCluster};
use juju_emulator::Invocation;

#[test]
fn storage_before_install_puts_the_cluster_on_the_disk_with_one_start() {
    let mut h = Harness::new("storage-first");
    let disk = h.disk("pgdata", 600);
    h.deploy(Some(&disk), &[]);
    assert_eq!(
        h.world.hook_names("postgresql/0")[..2],
        ["pgdata-storage-attached", "install"]
    );
    let (status, message) = h.status();
    assert_eq!(status, "active", "{message}");
    assert!(message.starts_with("PostgreSQL "), "{message}");
    assert!(message.contains(&disk.display().to_string()), "{message}");
    let expected = disk.join(h.cluster.major.to_string()).join(&h.cluster.name);
    assert_eq!(h.cluster.data_directory(), expected.display().to_string());
    assert!(
        disk.join("lost+found").is_dir(),
        "the mount root is not PGDATA"
    );
    assert_eq!(h.cluster.starts(), 1, "one start over the whole deploy");
    assert_eq!(h.cluster.psql("SHOW data_checksums").unwrap(), "on");
    let unit = h.world.unit("postgresql/0").unwrap();
    assert!(unit.ports.contains(&format!("{}/tcp", h.cluster.port)));
    assert!(unit
        .workload_version
        .starts_with(&h.cluster.major.to_string()));
    assert!(
        std::path::Path::new("/etc/postgresql-common/createcluster.d/50-juju-pg-charm.conf")
            .is_file()
    );
}

#[test]
fn without_storage_the_cluster_lives_on_the_root_disk_and_says_so() {
    let mut h = Harness::new("no-storage");
    h.deploy(None, &[]);
    let (status, message) = h.status();
    assert_eq!(status, "active");
    assert!(message.contains("root disk"), "{message}");
    assert_eq!(
        h.cluster.data_directory(),
        format!("/var/lib/postgresql/{}/{}", h.cluster.major, h.cluster.name)
    );
}

#[test]
fn storage_added_later_moves_the_data_without_loss() {
    let mut h = Harness::new("move");
    h.deploy(None, &[]);
    let before = h.cluster.fill(20_000);
    let old_dir = h.cluster.data_directory();
    let disk = h.disk("pgdata", 600);
    h.world
        .add_storage("postgresql/0", "pgdata", Some(disk.display().to_string()))
        .unwrap();
    h.world.settle().unwrap();
    let expected = disk.join(h.cluster.major.to_string()).join(&h.cluster.name);
    assert_eq!(h.cluster.data_directory(), expected.display().to_string());
    assert_eq!(
        h.cluster.checksum(),
        before,
        "rows identical after the move"
    );
    assert!(!std::path::Path::new(&old_dir).exists(), "old copy retired");
    assert_eq!(h.status().0, "active");
}

#[test]
fn a_kill_at_any_point_of_the_move_converges_on_retry_without_loss() {
    let mut h = Harness::new("kill");
    h.deploy(None, &[]);
    let before = h.cluster.fill(60_000);
    let disk = h.disk("pgdata", 800);
    let id = h
        .world
        .add_storage("postgresql/0", "pgdata", Some(disk.display().to_string()))
        .unwrap();
    h.world.clear_queue();
    let hook = Invocation {
        unit: "postgresql/0".into(),
        hook: "pgdata-storage-attached".into(),
        storage: Some(id),
        ..Default::default()
    };
    // Kill the hook at increasing points of the move, each time retrying
    // from whatever state the last kill left.
    let mut killed = 0;
    for delay_ms in [30, 120, 250, 400, 600, 900, 1300, 2000] {
        let result = h
            .world
            .run_hook_killed_after(hook.clone(), Duration::from_millis(delay_ms))
            .unwrap();
        if result.signal == Some(9) {
            killed += 1;
        } else {
            break; // It finished before the kill: the move is done.
        }
    }
    let recent = |h: &Harness| -> String {
        let logs: Vec<String> = h
            .world
            .logs()
            .iter()
            .rev()
            .take(15)
            .map(|l| format!("{} {}", l.level, l.message))
            .collect();
        logs.join("\n")
    };
    assert!(
        killed >= 2,
        "the kills landed mid-hook ({killed}):\n{}",
        recent(&h)
    );
    let retry = h
        .world
        .run_hook_killed_after(hook.clone(), Duration::from_secs(120))
        .unwrap();
    assert!(
        retry.succeeded(),
        "{:?} {}\n{}",
        retry.code,
        retry.output(),
        recent(&h)
    );
    h.world.settle().unwrap();
    let expected = disk.join(h.cluster.major.to_string()).join(&h.cluster.name);
    assert_eq!(h.cluster.data_directory(), expected.display().to_string());
    assert_eq!(h.cluster.checksum(), before, "no row lost");
    assert_eq!(h.status().0, "active", "{:?}", h.status());
}

#[test]
fn a_reattached_disk_is_adopted_never_reinitialised() {
    let mut h = Harness::new("adopt");
    let disk = h.disk("pgdata", 600);
    h.deploy(Some(&disk), &[]);
    let before = h.cluster.fill(5_000);
    h.world.remove_unit("postgresql/0").unwrap();
    assert!(!h.cluster.is_running());
    // The machine is gone: only the disk survives. A new deployment gets it.
    let _ = std::fs::remove_dir_all(h.cluster.conf_dir());
    let mut second = Harness::new("adopt-again");
    second.cluster.name = h.cluster.name.clone();
    second.cluster.port = h.cluster.port;
    second.world.extend_test_env(h.world.test_env().clone());
    second.deploy(Some(&disk), &[]);
    assert_eq!(second.status().0, "active", "{:?}", second.status());
    assert_eq!(second.cluster.checksum(), before, "the old data is served");
}

#[test]
fn every_hook_twice_in_a_row_changes_nothing_and_restarts_nothing() {
    let mut h = Harness::new("twice");
    let disk = h.disk("pgdata", 600);
    h.deploy(Some(&disk), &[]);
    let started_at = h.cluster.psql("SELECT pg_postmaster_start_time()").unwrap();
    let conf = h.cluster.conf_dir().join("conf.d/90-juju-charm.conf");
    let modified = std::fs::metadata(&conf).unwrap().modified().unwrap();
    for hook in [
        "config-changed",
        "start",
        "upgrade-charm",
        "leader-elected",
        "update-status",
    ] {
        for _ in 0..2 {
            let r = h.world.run_hook("postgresql/0", hook).unwrap();
            assert!(r.succeeded(), "{hook}: {}", r.output());
        }
    }
    assert_eq!(
        h.cluster.psql("SELECT pg_postmaster_start_time()").unwrap(),
        started_at
    );
    assert_eq!(h.cluster.starts(), 1);
    assert_eq!(
        std::fs::metadata(&conf).unwrap().modified().unwrap(),
        modified
    );
    assert_eq!(h.status().0, "active");
}

#[test]
fn bad_config_blocks_naming_the_option_while_the_server_keeps_serving() {
    let mut h = Harness::new("bad-config");
    h.deploy(None, &[]);
    let cases: &[(&str, &str, &str)] = &[
        (
            "extra-pg-conf",
            "work_mem = lots",
            "config extra-pg-conf: the server rejects work_mem",
        ),
        ("extra-pg-conf", "no_such_setting = 1", "no_such_setting"),
        (
            "extra-pg-conf",
            "port = 6000",
            "config extra-pg-conf: line 1: port is managed by the charm",
        ),
        ("admin-addresses", "10.0.0.0/33", "config admin-addresses"),
        ("version", "11", "config version: cannot change"),
        ("locale", "de_DE.UTF-8", "config locale: cannot change"),
    ];
    for (option, value, needle) in cases {
        h.world
            .set_config("postgresql", &[(option, value)])
            .unwrap();
        h.world.settle().unwrap();
        let (status, message) = h.status();
        assert_eq!(status, "blocked", "{option}={value}: {message}");
        assert!(message.contains(needle), "{option}={value}: {message}");
        assert!(message.contains("still serving"), "{message}");
        assert_eq!(
            h.cluster.psql("SELECT 40 + 2").unwrap(),
            "42",
            "serving after {option}={value}"
        );
        h.world.reset_config("postgresql", &[option]).unwrap();
        h.world.settle().unwrap();
        assert_eq!(h.status().0, "active", "recovers after resetting {option}");
    }
    // A good value that needs only a reload is applied without a restart;
    // one that needs a restart restarts exactly once.
    let starts = h.cluster.starts();
    h.world
        .set_config("postgresql", &[("extra-pg-conf", "work_mem = 12MB")])
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.cluster.psql("SHOW work_mem").unwrap(), "12MB");
    assert_eq!(h.cluster.starts(), starts, "reload only");
    h.world
        .set_config(
            "postgresql",
            &[("extra-pg-conf", "work_mem = 12MB\nmax_connections = 123")],
        )
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.cluster.psql("SHOW max_connections").unwrap(), "123");
    assert_eq!(h.cluster.starts(), starts + 1, "exactly one restart");
}

#[test]
fn detaching_stop_and_remove_leave_no_server_and_keep_the_data() {
    let mut h = Harness::new("teardown");
    let disk = h.disk("pgdata", 600);
    h.deploy(Some(&disk), &[]);
    let before = h.cluster.fill(2_000);
    let data_dir = h.cluster.data_directory();
    h.world.detach_storage("postgresql/0", "pgdata/0").unwrap();
    assert!(!h.cluster.is_running(), "stopped on detach");
    let (status, message) = h.status();
    assert_eq!(status, "blocked");
    assert!(message.contains("storage detached"), "{message}");
    assert!(
        std::path::Path::new(&data_dir).join("PG_VERSION").is_file(),
        "data kept"
    );
    // Later hooks never re-initialise anything while the data is away.
    h.disks[0].unmount();
    let r = h.world.run_hook("postgresql/0", "config-changed").unwrap();
    assert!(r.succeeded(), "{}", r.output());
    assert_eq!(h.status().0, "blocked");
    assert!(
        !std::path::Path::new(&data_dir).exists(),
        "nothing recreated on the root disk"
    );
    // The disk comes back: the unit serves the same data again.
    h.disks[0].mount_it();
    h.world
        .add_storage("postgresql/0", "pgdata", Some(disk.display().to_string()))
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    assert_eq!(h.cluster.checksum(), before);
    h.world.remove_unit("postgresql/0").unwrap();
    assert!(!h.cluster.is_running(), "no server after remove");
    assert!(
        std::path::Path::new(&data_dir).join("PG_VERSION").is_file(),
        "data kept after remove"
    );
}

#[test]
fn a_cluster_the_charm_did_not_create_is_never_touched() {
    let foreign = PrivateCluster::unique();
    common::sh(
        "pg_createcluster",
        &[
            &foreign.major.to_string(),
            &foreign.name,
            "-p",
            &foreign.port.to_string(),
        ],
    );
    let mut h = Harness::new("foreign");
    h.world.set_test_env("PG_CHARM_CLUSTER", &foreign.name);
    h.world
        .set_test_env("PG_CHARM_PORT", &foreign.port.to_string());
    h.cluster.name = format!("{}-unused", h.cluster.name);
    h.deploy(None, &[]);
    let (status, message) = h.status();
    assert_eq!(status, "blocked");
    assert!(
        message.contains(&foreign.conf_dir().display().to_string()),
        "{message}"
    );
    assert!(
        !foreign.state_dir().join("cluster.json").exists(),
        "the charm does not claim the foreign cluster"
    );
    let leftovers: Vec<_> = std::fs::read_dir(foreign.conf_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("juju"))
        .collect();
    assert!(leftovers.is_empty(), "the charm wrote {leftovers:?}");
}

#[test]
fn pgwal_storage_holds_the_write_ahead_log_from_the_start_or_later() {
    // From the start: both disks before install.
    let mut h = Harness::new("wal-first");
    let data = h.disk("pgdata", 400);
    let wal = h.disk("pgwal", 300);
    h.deploy_storage(&[("pgdata", &data), ("pgwal", &wal)], &[]);
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    let pg_wal = std::path::Path::new(&h.cluster.data_directory()).join("pg_wal");
    let target = std::fs::read_link(&pg_wal).expect("pg_wal is a link");
    assert!(target.starts_with(&wal), "{}", target.display());
    assert_eq!(h.cluster.starts(), 1);

    // Later: a running cluster gets a WAL disk; nothing is lost.
    let mut h = Harness::new("wal-later");
    let data = h.disk("pgdata", 400);
    h.deploy(Some(&data), &[]);
    let before = h.cluster.fill(3_000);
    let wal = h.disk("pgwal", 300);
    h.world
        .add_storage("postgresql/0", "pgwal", Some(wal.display().to_string()))
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    let pg_wal = std::path::Path::new(&h.cluster.data_directory()).join("pg_wal");
    let target = std::fs::read_link(&pg_wal).expect("pg_wal is a link");
    assert!(target.starts_with(&wal), "{}", target.display());
    h.cluster.fill(6_000);
    assert_ne!(h.cluster.checksum(), before, "writes go on after the move");
    assert!(
        target.read_dir().unwrap().count() > 0,
        "WAL segments on the WAL disk"
    );
}

#[test]
fn an_upgrade_from_before_the_state_directory_keeps_the_cluster_the_charms() {
    let mut h = Harness::new("legacy-state");
    h.deploy(None, &[]);
    let state = h.cluster.state_dir();
    let record = std::fs::read_to_string(state.join("cluster.json")).unwrap();
    // What the revision before the state directory left: its owner marker
    // and relation cache next to the cluster, nothing in the state directory.
    let conf_dir = h.cluster.conf_dir();
    std::fs::write(
        conf_dir.join("juju-pg-charm.owner"),
        "postgresql/0\nlocale=C.UTF-8\nencoding=UTF8\n",
    )
    .unwrap();
    std::fs::write(conf_dir.join("juju-pg-charm.relations.json"), "{}").unwrap();
    std::fs::remove_dir_all(&state).unwrap();
    h.world
        .upgrade_charm("postgresql", &scenarios::packed_charm().unwrap())
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    assert_eq!(
        std::fs::read_to_string(state.join("cluster.json")).unwrap(),
        record,
        "the same owner record, moved into the state directory"
    );
    for old in ["juju-pg-charm.owner", "juju-pg-charm.relations.json"] {
        assert!(
            !conf_dir.join(old).exists(),
            "{old} left next to the cluster"
        );
    }
}
