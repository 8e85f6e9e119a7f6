//! The emulator's hook sequencing (contract §6), environment (§1.2, §2),
//! commit semantics (§1.3, §5) and cross-model behaviour (§7), checked with
//! small shell charms that record what they see.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod common;

use common::Scratch;
use juju_emulator::{DeployOptions, StorageRequest, World};

const DISPATCH: &str = r#"#!/bin/sh
# Records the environment of every hook, then acts on config `mode`.
env | sort > "$CHARM_DIR/../env.$JUJU_HOOK_NAME"
pwd > "$CHARM_DIR/../cwd"
echo "$#" > "$CHARM_DIR/../argc"
mode=$(config-get mode)
case "$JUJU_DISPATCH_PATH" in
  hooks/*-relation-joined)
    relation-set "seen-by-$JUJU_UNIT_NAME=$JUJU_REMOTE_UNIT" || exit 1
    if [ "$(is-leader)" = True ]; then relation-set --app leader-said=hi || exit 1; fi ;;
  hooks/start) open-port 5432/tcp ;;
esac
if [ "$mode" = fail ] && [ "$JUJU_HOOK_NAME" = config-changed ]; then
  relation-set -r "$(relation-ids db | head -n1)" doomed=yes
  open-port 9999/tcp
  status-set blocked "about to fail"
  juju-log -l ERROR "failing on purpose"
  exit 3
fi
status-set active "ran $JUJU_HOOK_NAME"
"#;

fn write_charm(dir: &Path, name: &str, metadata_extra: &str) -> PathBuf {
    common::write_charm(
        dir,
        &format!("charm-{name}"),
        name,
        metadata_extra,
        DISPATCH,
    )
}

const PROVIDER: &str = "provides:\n  db:\n    interface: pgsql\npeers:\n  replication:\n    interface: pgpeer\nstorage:\n  pgdata:\n    type: filesystem\n    location: /srv/pgdata\n    multiple:\n      range: 0-1\n";
const CONSUMER: &str = "requires:\n  db:\n    interface: pgsql\n";

/// `postgresql` with `units` units, each with a `pgdata` storage.
fn deploy_with_pgdata(world: &mut World, charm: &Path, units: u32) {
    world
        .deploy(
            "db",
            "postgresql",
            charm,
            DeployOptions {
                units,
                storage: vec![StorageRequest {
                    name: "pgdata".into(),
                    location: None,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .unwrap();
}

fn hooks(world: &World, unit: &str) -> Vec<String> {
    world.hook_names(unit)
}

#[test]
fn deploy_with_storage_runs_storage_attached_before_install() {
    let s = Scratch::new("world", "deploy");
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    let charm = write_charm(&s.0, "postgresql", PROVIDER);
    deploy_with_pgdata(&mut world, &charm, 2);
    world.settle().unwrap();
    assert_eq!(
        hooks(&world, "postgresql/0"),
        [
            "pgdata-storage-attached",
            "install",
            "replication-relation-created",
            "leader-elected",
            "config-changed",
            "start",
            "replication-relation-joined",
            // postgresql/1's write coalesces with the queued -changed.
            "replication-relation-changed",
        ]
    );
    assert_eq!(
        hooks(&world, "postgresql/1")[..6],
        [
            "pgdata-storage-attached",
            "install",
            "replication-relation-created",
            "leader-settings-changed",
            "config-changed",
            "start",
        ]
    );
    let unit = world.unit("postgresql/0").unwrap();
    assert_eq!(unit.storage["pgdata/0"].location, "/srv/pgdata");
    assert_eq!(
        world
            .unit("postgresql/1")
            .unwrap()
            .storage
            .keys()
            .next()
            .unwrap(),
        "pgdata/1"
    );
    assert!(unit.ports.contains("5432/tcp"));
    assert_eq!(unit.status.message, "ran replication-relation-changed");
}

#[test]
fn hook_environment_is_exactly_what_juju_builds() {
    let s = Scratch::new("world", "env");
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    let charm = write_charm(&s.0, "postgresql", PROVIDER);
    world
        .deploy(
            "db",
            "postgresql",
            &charm,
            DeployOptions {
                units: 1,
                storage: vec![StorageRequest {
                    name: "pgdata".into(),
                    location: Some("/mnt/disk1".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    let agent = world.unit("postgresql/0").unwrap().agent_dir.clone();
    let read_env = |hook: &str| -> BTreeMap<String, String> {
        std::fs::read_to_string(agent.join(format!("env.{hook}")))
            .unwrap()
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    };
    let env = read_env("pgdata-storage-attached");
    for absent in [
        "HOME",
        "USER",
        "LOGNAME",
        "JUJU_RELATION",
        "JUJU_REMOTE_UNIT",
    ] {
        assert!(!env.contains_key(absent), "{absent} must not be set");
    }
    assert_eq!(env["JUJU_DISPATCH_PATH"], "hooks/pgdata-storage-attached");
    assert_eq!(env["JUJU_HOOK_NAME"], "pgdata-storage-attached");
    assert_eq!(env["JUJU_STORAGE_ID"], "pgdata/0");
    assert_eq!(env["JUJU_STORAGE_LOCATION"], "/mnt/disk1");
    assert_eq!(env["JUJU_STORAGE_KIND"], "filesystem");
    assert_eq!(env["JUJU_UNIT_NAME"], "postgresql/0");
    assert_eq!(env["JUJU_MODEL_NAME"], "db");
    assert_eq!(env["JUJU_VERSION"], "3.6.4");
    assert_eq!(env["JUJU_PRINCIPAL_UNIT"], "");
    assert_eq!(env["LANG"], "C.UTF-8");
    assert!(env["JUJU_CONTEXT_ID"].starts_with("postgresql/0-pgdata-storage-attached-"));
    assert_eq!(env["CHARM_DIR"], env["JUJU_CHARM_DIR"]);
    assert!(env["PATH"].starts_with(
        &world
            .unit("postgresql/0")
            .unwrap()
            .tools_dir
            .display()
            .to_string()
    ));
    assert!(env["JUJU_AGENT_SOCKET_ADDRESS"].ends_with("/agent.socket"));
    let cwd = std::fs::read_to_string(agent.join("cwd")).unwrap();
    assert_eq!(cwd.trim(), agent.join("charm").display().to_string());
    assert_eq!(
        std::fs::read_to_string(agent.join("argc")).unwrap().trim(),
        "0"
    );
    let env = read_env("replication-relation-created");
    assert_eq!(env["JUJU_RELATION"], "replication");
    assert_eq!(env["JUJU_RELATION_ID"], "replication:0");
    assert_eq!(env["JUJU_REMOTE_UNIT"], "", "present but empty in -created");
}

#[test]
fn failed_hook_discards_buffered_writes_but_keeps_status_and_logs() {
    let s = Scratch::new("world", "commit");
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    world.add_model("app");
    let provider = write_charm(&s.0, "postgresql", PROVIDER);
    let consumer = write_charm(&s.0, "myapp", CONSUMER);
    world
        .deploy("db", "postgresql", &provider, DeployOptions::default())
        .unwrap();
    world
        .deploy("db", "myapp", &consumer, DeployOptions::default())
        .unwrap();
    let rel = world.integrate("postgresql:db", "myapp:db").unwrap();
    world.settle().unwrap();
    let bag_before = world.bag(rel, "postgresql/0").unwrap().clone();
    assert_eq!(bag_before["seen-by-postgresql/0"], "myapp/0");
    assert_eq!(world.bag(rel, "postgresql").unwrap()["leader-said"], "hi");

    world.set_config("postgresql", &[("mode", "fail")]).unwrap();
    let err = world.settle().unwrap_err().to_string();
    assert!(err.contains("config-changed"), "{err}");
    assert_eq!(
        world.bag(rel, "postgresql/0").unwrap(),
        &bag_before,
        "relation-set discarded"
    );
    let unit = world.unit("postgresql/0").unwrap();
    assert!(!unit.ports.contains("9999/tcp"), "open-port discarded");
    assert_eq!(unit.status.status, "blocked", "status-set is immediate");
    assert_eq!(unit.failed_hook.as_deref(), Some("config-changed"));
    assert!(world
        .logs()
        .iter()
        .any(|l| l.level == "ERROR" && l.message == "failing on purpose"));
    // The failed hook stays queued until resolved; fixing config and
    // retrying converges.
    world
        .set_config("postgresql", &[("mode", "normal")])
        .unwrap();
    world.settle().unwrap();
    assert!(world.unit("postgresql/0").unwrap().failed_hook.is_none());
}

#[test]
fn relation_writes_reach_the_other_side_as_changed_hooks() {
    let s = Scratch::new("world", "changed");
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    let provider = write_charm(&s.0, "postgresql", PROVIDER);
    let consumer = write_charm(&s.0, "myapp", CONSUMER);
    world
        .deploy("db", "postgresql", &provider, DeployOptions::default())
        .unwrap();
    world
        .deploy(
            "db",
            "myapp",
            &consumer,
            DeployOptions {
                units: 2,
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    let rel = world.integrate("postgresql:db", "myapp:db").unwrap();
    world.settle().unwrap();
    let provider_hooks: Vec<String> = world
        .trace()
        .iter()
        .filter(|r| r.invocation.unit == "postgresql/0" && r.invocation.relation == Some(rel))
        .map(|r| {
            format!(
                "{} {}",
                r.invocation.hook,
                r.invocation.remote_unit.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        provider_hooks[..5],
        [
            "db-relation-created ",
            "db-relation-joined myapp/0",
            "db-relation-changed myapp/0",
            "db-relation-joined myapp/1",
            "db-relation-changed myapp/1",
        ]
    );
    // myapp/0 wrote its unit bag and the myapp leader its app bag: both
    // reach the provider as -changed (the app one with no remote unit).
    assert!(
        provider_hooks.contains(&"db-relation-changed ".to_string()),
        "{provider_hooks:?}"
    );
    // Remove a consumer unit: the provider sees it depart.
    world.remove_unit("myapp/1").unwrap();
    let last: Vec<String> = hooks(&world, "myapp/1").into_iter().rev().take(4).collect();
    assert_eq!(
        last,
        [
            "remove",
            "db-relation-broken",
            "stop",
            "db-relation-departed"
        ]
    );
    assert!(hooks(&world, "postgresql/0").ends_with(&["db-relation-departed".to_string()]));
    world.remove_relation(rel).unwrap();
    world.settle().unwrap();
    assert!(hooks(&world, "postgresql/0")
        .ends_with(&["db-relation-departed".into(), "db-relation-broken".into()]));
}

#[test]
fn cross_model_consumer_is_anonymised_with_its_own_addresses() {
    let s = Scratch::new("world", "cmr");
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    world.add_model("k8s");
    world
        .set_model_egress_subnets("k8s", &["10.77.0.0/16"])
        .unwrap();
    let provider = write_charm(&s.0, "postgresql", PROVIDER);
    let consumer = write_charm(&s.0, "myapp", CONSUMER);
    world
        .deploy("db", "postgresql", &provider, DeployOptions::default())
        .unwrap();
    world
        .deploy(
            "k8s",
            "myapp",
            &consumer,
            DeployOptions {
                addresses: vec![("10.77.1.5".into(), "203.0.113.5".into())],
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    let rel = world
        .integrate_cross_model("postgresql:db", "myapp:db", "pg", &[])
        .unwrap();
    world.settle().unwrap();
    let seen = world.name_seen_by(rel, "postgresql", "myapp/0");
    assert!(
        seen.starts_with("remote-") && seen.ends_with("/0"),
        "{seen}"
    );
    let hex = &seen["remote-".len()..seen.len() - 2];
    assert_eq!(hex.len(), 32);
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    // The provider recorded the anonymised name it was given.
    assert_eq!(
        world.bag(rel, "postgresql/0").unwrap()["seen-by-postgresql/0"],
        seen
    );
    // The consumer sees the offer under its SAAS name.
    assert_eq!(
        world.bag(rel, "myapp/0").unwrap()["seen-by-myapp/0"],
        "pg/0"
    );
    let consumer_bag = world.bag(rel, "myapp/0").unwrap();
    assert_eq!(
        consumer_bag["ingress-address"], "203.0.113.5",
        "public address across models"
    );
    assert_eq!(
        consumer_bag["egress-subnets"], "10.77.0.0/16",
        "the consumer model's egress-subnets"
    );
    // --via wins over model config.
    world
        .deploy(
            "k8s",
            "other",
            &write_charm(&s.0, "other", CONSUMER),
            DeployOptions::default(),
        )
        .unwrap();
    let via = world
        .integrate_cross_model("postgresql:db", "other:db", "pg2", &["198.51.100.0/24"])
        .unwrap();
    world.settle().unwrap();
    assert_eq!(
        world.bag(via, "other/0").unwrap()["egress-subnets"],
        "198.51.100.0/24"
    );
}

#[test]
fn an_offer_of_several_endpoints_relates_each_consumer_by_interface() {
    let s = Scratch::new("world", "offer");
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    world.add_model("k8s");
    // PROVIDER with two more endpoints: one the offer names, one it does not.
    let two_endpoints = PROVIDER.replacen(
        "provides:\n  db:\n    interface: pgsql\n",
        "provides:\n  db:\n    interface: pgsql\n  database:\n    interface: postgresql_client\n  \
         admin:\n    interface: pgsql\n",
        1,
    );
    assert!(two_endpoints.contains("admin:"));
    let provider = write_charm(&s.0, "postgresql", &two_endpoints);
    world
        .deploy("db", "postgresql", &provider, DeployOptions::default())
        .unwrap();
    for (app, metadata) in [
        ("legacy", CONSUMER.to_string()),
        (
            "modern",
            "requires:\n  database:\n    interface: postgresql_client\n".to_string(),
        ),
        (
            "both",
            format!("{CONSUMER}  database:\n    interface: postgresql_client\n"),
        ),
    ] {
        world
            .deploy(
                "k8s",
                app,
                &write_charm(&s.0, app, &metadata),
                DeployOptions::default(),
            )
            .unwrap();
    }
    world.settle().unwrap();

    assert!(world.offer("postgresql", &["replication"], "peer").is_err());
    assert!(world.offer("postgresql", &["nope"], "nope").is_err());
    let url = world
        .offer("postgresql", &["db", "database"], "pg")
        .unwrap();
    assert_eq!(url, "admin/db.pg");
    // Each consumer's endpoint finds the offered one of its interface.
    let legacy = world.integrate_offer(&url, "legacy", "pg", &[]).unwrap();
    let modern = world.integrate_offer(&url, "modern", "pg", &[]).unwrap();
    world.settle().unwrap();
    for (rel, app, endpoint) in [(legacy, "legacy", "db"), (modern, "modern", "database")] {
        let relation = world.relation(rel).unwrap();
        assert_eq!(relation.side_of("postgresql").unwrap().endpoint, endpoint);
        assert_eq!(relation.offering_app.as_deref(), Some("postgresql"));
        assert!(
            hooks(&world, "postgresql/0").contains(&format!("{endpoint}-relation-joined")),
            "{app}"
        );
    }
    // Two matching endpoints need the consumer to say which; one the offer
    // leaves out (admin, pgsql too) is never used.
    let ambiguous = world
        .integrate_offer(&url, "both", "pg", &[])
        .unwrap_err()
        .to_string();
    assert!(ambiguous.contains("ambiguous relation"), "{ambiguous}");
    let chosen = world
        .integrate_offer(&url, "both:database", "pg", &[])
        .unwrap();
    assert_eq!(
        world
            .relation(chosen)
            .unwrap()
            .side_of("postgresql")
            .unwrap()
            .endpoint,
        "database"
    );
    let db_only = world.offer("postgresql", &["db"], "legacy-only").unwrap();
    let refused = world
        .integrate_offer(&db_only, "modern", "pg-old", &[])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("no relations found"), "{refused}");
    assert!(world
        .integrate_offer("admin/db.nope", "modern", "x", &[])
        .is_err());
    // Within a model too, interfaces must match.
    let mismatch = world
        .integrate_cross_model("postgresql:database", "legacy:db", "pg3", &[])
        .unwrap_err()
        .to_string();
    assert!(mismatch.contains("no relations found"), "{mismatch}");
}

#[test]
fn an_action_commits_what_it_buffered_when_it_exits_0() {
    let s = Scratch::new("world", "action-commit");
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    let dispatch = r#"#!/bin/sh
case "$JUJU_DISPATCH_PATH" in
  actions/publish)
    relation-set -r "$(relation-ids db | head -n1)" "said=$(action-get word)"
    [ "$(action-get word)" = fail ] && exit 1
    action-set done=yes ;;
esac
exit 0
"#;
    let provider = common::write_charm(&s.0, "charm-p", "postgresql", PROVIDER, dispatch);
    std::fs::write(
        provider.join("actions.yaml"),
        "publish:\n  params:\n    word:\n      type: string\n",
    )
    .unwrap();
    world
        .deploy("db", "postgresql", &provider, DeployOptions::default())
        .unwrap();
    world
        .deploy(
            "db",
            "myapp",
            &write_charm(&s.0, "myapp", CONSUMER),
            DeployOptions::default(),
        )
        .unwrap();
    world.settle().unwrap();
    let rel = world.integrate("postgresql:db", "myapp:db").unwrap();
    world.settle().unwrap();
    let run = |world: &mut World, word: &str| {
        let mut params = serde_json::Map::new();
        params.insert("word".into(), word.into());
        world.run_action("postgresql/0", "publish", params).unwrap()
    };
    let failed = run(&mut world, "fail");
    assert!(failed.failed.is_some());
    assert_eq!(
        world.bag(rel, "postgresql/0").unwrap().get("said"),
        None,
        "a failed action commits nothing"
    );
    let ok = run(&mut world, "hello");
    assert_eq!(ok.failed, None);
    assert_eq!(world.bag(rel, "postgresql/0").unwrap()["said"], "hello");
    let before = hooks(&world, "myapp/0").len();
    world.settle().unwrap();
    assert_eq!(
        hooks(&world, "myapp/0")[before..],
        ["db-relation-changed"],
        "the other side hears of it"
    );
}

#[test]
fn upgrade_charm_and_remove_unit_follow_the_contract_order() {
    let s = Scratch::new("world", "upgrade");
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    let charm = write_charm(&s.0, "postgresql", PROVIDER);
    deploy_with_pgdata(&mut world, &charm, 2);
    world.settle().unwrap();
    world.upgrade_charm("postgresql", &charm).unwrap();
    world.settle().unwrap();
    assert!(hooks(&world, "postgresql/0").ends_with(&[
        "upgrade-charm".into(),
        "config-changed".into(),
        "start".into()
    ]));
    assert!(hooks(&world, "postgresql/1").ends_with(&[
        "upgrade-charm".into(),
        "config-changed".into(),
        "leader-settings-changed".into(),
        "start".into()
    ]));
    world.remove_unit("postgresql/0").unwrap();
    let tail: Vec<String> = hooks(&world, "postgresql/0")
        .into_iter()
        .rev()
        .take(4)
        .collect();
    assert_eq!(
        tail,
        [
            "remove",
            "pgdata-storage-detaching",
            "stop",
            "replication-relation-departed"
        ]
    );
    world.settle().unwrap();
    assert_eq!(
        world.app("postgresql").unwrap().leader.as_deref(),
        Some("postgresql/1")
    );
    assert!(hooks(&world, "postgresql/1").ends_with(&["leader-elected".into()]));
}

#[test]
fn remove_application_takes_every_unit_and_relation_in_the_contract_order() {
    let s = Scratch::new("world", "remove-app");
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    let provider = write_charm(&s.0, "postgresql", PROVIDER);
    let consumer = write_charm(&s.0, "myapp", CONSUMER);
    deploy_with_pgdata(&mut world, &provider, 2);
    world
        .deploy("db", "myapp", &consumer, DeployOptions::default())
        .unwrap();
    let rel = world.integrate("postgresql:db", "myapp:db").unwrap();
    world.settle().unwrap();
    let before = world.trace().len();
    world.remove_application("postgresql").unwrap();
    let ran = |unit: &str| -> Vec<String> {
        world.trace()[before..]
            .iter()
            .filter(|r| r.invocation.unit == unit)
            .map(|r| {
                format!(
                    "{} {}",
                    r.invocation.hook,
                    r.invocation.departing_unit.clone().unwrap_or_default()
                )
            })
            .collect()
    };
    // Each leaving unit: its peer and the consumer depart (itself the
    // departing unit), then stop, -broken (not for the peer relation),
    // storage-detaching, remove.
    for (unit, peer) in [
        ("postgresql/0", "postgresql/1"),
        ("postgresql/1", "postgresql/0"),
    ] {
        let mut hooks = ran(unit);
        let (departed, rest) = hooks.split_at_mut(2);
        departed.sort();
        assert_eq!(
            departed,
            [
                format!("db-relation-departed {unit}"),
                format!("replication-relation-departed {unit}"),
            ],
            "{unit} (peer {peer})"
        );
        assert_eq!(
            rest,
            [
                "stop ",
                "db-relation-broken ",
                "pgdata-storage-detaching ",
                "remove "
            ],
            "{unit}"
        );
    }
    // The consumer sees both units depart, then the relation broken.
    assert_eq!(
        ran("myapp/0"),
        [
            "db-relation-departed postgresql/0",
            "db-relation-departed postgresql/1",
            "db-relation-broken ",
        ]
    );
    assert!(world.app("postgresql").is_err(), "the application is gone");
    assert!(world.unit("postgresql/0").is_err());
    world.settle().unwrap();
    // Nothing more runs for the relation.
    let after = world.trace().len();
    world.set_config("myapp", &[]).unwrap();
    world.settle().unwrap();
    assert!(world.trace()[after..]
        .iter()
        .all(|r| r.invocation.relation != Some(rel)));
}
