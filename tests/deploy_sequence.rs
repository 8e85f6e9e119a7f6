//! The packed `.charm` goes through Juju's whole life cycle under the
//! emulator: deploy with storage (storage-attached before install), config
//! change, update-status, upgrade-charm and unit removal. Every hook must
//! exit 0 and leave an operator-meaningful status.

use juju_emulator::{DeployOptions, StorageRequest, World};
use scenarios::{packed_charm, Scratch};

#[test]
fn packed_charm_survives_the_full_deploy_sequence() {
    let charm = packed_charm().expect("packed charm");
    let scratch = Scratch::new("deploy-sequence").unwrap();
    let mut world = World::new(&scratch.0.join("world")).unwrap();
    world.add_model("db");
    let pgdata = scratch.0.join("pgdata");
    std::fs::create_dir_all(&pgdata).unwrap();
    world
        .deploy(
            "db",
            "postgresql",
            &charm,
            DeployOptions {
                units: 1,
                storage: vec![StorageRequest {
                    name: "pgdata".into(),
                    location: Some(pgdata.display().to_string()),
                }],
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    assert_eq!(
        world.hook_names("postgresql/0"),
        [
            "pgdata-storage-attached",
            "install",
            "replication-relation-created",
            "leader-elected",
            "config-changed",
            "start",
        ]
    );

    let update = world.run_hook("postgresql/0", "update-status").unwrap();
    assert!(update.succeeded(), "{}", update.output());
    world
        .set_config("postgresql", &[("profile", "oltp")])
        .unwrap();
    world.settle().unwrap();
    assert_eq!(world.unit("postgresql/0").unwrap().status.status, "active");

    world.upgrade_charm("postgresql", &charm).unwrap();
    world.settle().unwrap();

    world.remove_unit("postgresql/0").unwrap();
    let hooks = world.hook_names("postgresql/0");
    assert_eq!(
        hooks[hooks.len() - 3..],
        ["stop", "pgdata-storage-detaching", "remove"]
    );
    for record in &world.trace {
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
}
