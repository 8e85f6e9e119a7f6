//! The packed `.charm` goes through Juju's whole life cycle under the
//! emulator: deploy with storage (storage-attached before install), config
//! change, update-status, upgrade-charm and unit removal. Every hook must
//! exit 0 and leave an operator-meaningful status.

mod common;

use common::Harness;
use scenarios::packed_charm;

#[test]
fn packed_charm_survives_the_full_deploy_sequence() {
    let mut h = Harness::new("deploy-sequence");
    let disk = h.disk("pgdata", 400);
    h.deploy(Some(&disk), &[]);
    assert_eq!(
        h.world.hook_names("postgresql/0"),
        [
            "pgdata-storage-attached",
            "install",
            "replication-relation-created",
            "leader-elected",
            "config-changed",
            "start",
        ]
    );
    assert_eq!(h.status().0, "active", "{:?}", h.status());

    let update = h.world.run_hook("postgresql/0", "update-status").unwrap();
    assert!(update.succeeded(), "{}", update.output());
    h.world
        .set_config("postgresql", &[("profile", "oltp")])
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.status().0, "active", "{:?}", h.status());

    h.world
        .upgrade_charm("postgresql", &packed_charm().unwrap())
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.status().0, "active", "{:?}", h.status());

    h.world.remove_unit("postgresql/0").unwrap();
    let hooks = h.world.hook_names("postgresql/0");
    assert_eq!(
        hooks[hooks.len() - 3..],
        ["stop", "pgdata-storage-detaching", "remove"]
    );
    for record in h.world.trace() {
        assert!(
            record.succeeded(),
            "{:?}: {}",
            record.invocation,
            record.output()
        );
        assert!(
            !record.result.missing_handler,
            "{:?} found no handler",
            record.invocation
        );
    }
    assert!(!h.cluster.is_running(), "no server left after remove");
}

#[test]
fn update_status_brings_a_dead_server_back() {
    let mut h = Harness::new("dead-server");
    h.deploy(None, &[]);
    common::sh(
        "pg_ctlcluster",
        &[
            &h.cluster.major.to_string(),
            &h.cluster.name,
            "stop",
            "-m",
            "immediate",
        ],
    );
    assert!(!h.cluster.is_running());
    let r = h.world.run_hook("postgresql/0", "update-status").unwrap();
    assert!(r.succeeded(), "{}", r.output());
    assert!(h.cluster.is_running(), "restarted by update-status");
    assert_eq!(h.status().0, "active");
    assert!(h
        .world
        .logs()
        .iter()
        .any(|l| l.hook == "update-status" && l.message.contains("not running")));
}
