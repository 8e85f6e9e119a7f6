//! The consumer fixture (`tests/consumer-charm`: a real ops charm using
//! ops-lib-pgsql, as Kubernetes applications do) against a fake `pgsql`
//! provider, across models under the Juju emulator. This checks the fixture
//! and, through the real ops library, the emulator's hook tools; the tests
//! that relate the fixture to the real PostgreSQL charm build on it.
//!
//! How a test uses the consumer:
//! * [`consumer_charm`] fills its `venv/` (`scripts/consumer-venv`, quick
//!   once done) and gives the directory to pass to `World::deploy`;
//! * config `database`, `roles`, `extensions` (comma lists) are what it asks for;
//! * [`consumer_state`] reads what ops-lib-pgsql reported (`master`,
//!   `standbys`, `ready`, `database`, `requested`, `events`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::consumer::{consumer_charm, consumer_state};
use juju_emulator::{DeployOptions, World};
use scenarios::Scratch;
use serde_json::Value;

/// A password nobody would print by accident, so finding it anywhere in the
/// logs or hook output is a leak.
const PASSWORD: &str = "pw-5e1d0c9a7b";

/// A shell provider converging every `db` relation on each hook: it echoes
/// the first remote unit's request, grants every remote unit's
/// egress-subnets and publishes a master. Config `mode` leaves one readiness condition unmet on purpose.
const FAKE_PROVIDER: &str = r#"#!/bin/sh
set -e
mode=$(config-get mode)
for rid in $(relation-ids db); do
  remote=$(relation-list -r "$rid" | head -n 1)
  [ -n "$remote" ] || continue
  database=$(relation-get -r "$rid" database "$remote")
  roles=$(relation-get -r "$rid" roles "$remote")
  extensions=$(relation-get -r "$rid" extensions "$remote")
  egress=""
  for unit in $(relation-list -r "$rid"); do
    egress="$egress${egress:+,}$(relation-get -r "$rid" egress-subnets "$unit")"
  done
  [ "$mode" != no-grant ] || egress=203.0.113.0/24
  [ "$mode" != no-echo ] || roles="$roles,surprise"
  relation-set -r "$rid" "database=$database" "roles=$roles" "extensions=$extensions" \
    "allowed-subnets=$egress" \
    "master=dbname=${database:-x} host=10.0.0.1 password=@PASSWORD@ port=5432 user=u"
done
status-set active "mode $mode"
"#;

fn fake_provider(dir: &Path) -> PathBuf {
    let charm = dir.join("fake-pgsql-provider");
    std::fs::create_dir_all(&charm).unwrap();
    std::fs::write(
        charm.join("metadata.yaml"),
        "name: fake-pgsql-provider\nsummary: s\ndescription: d\nprovides:\n  db:\n    interface: pgsql\n",
    )
    .unwrap();
    std::fs::write(
        charm.join("config.yaml"),
        "options:\n  mode:\n    type: string\n    default: good\n    description: m\n",
    )
    .unwrap();
    let dispatch = charm.join("dispatch");
    std::fs::write(&dispatch, FAKE_PROVIDER.replace("@PASSWORD@", PASSWORD)).unwrap();
    std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    charm
}

/// Both charms deployed in their models and related across them.
fn related(
    scratch: &Scratch,
    units: u32,
    consumer_config: &[(&str, &str)],
    mode: &str,
) -> (World, u64) {
    let mut world = World::new(&scratch.0.join("world")).unwrap();
    world.add_model("db");
    world.add_model("k8s");
    let provider = fake_provider(&scratch.0);
    let config = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    world
        .deploy(
            "db",
            "provider",
            &provider,
            DeployOptions {
                config: config(&[("mode", mode)]),
                ..Default::default()
            },
        )
        .unwrap();
    world
        .deploy(
            "k8s",
            "k8s-consumer",
            &consumer_charm(),
            DeployOptions {
                units,
                config: config(consumer_config),
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    let id = world
        .integrate_cross_model("provider:db", "k8s-consumer:db", "pg", &[])
        .unwrap();
    world.settle().unwrap();
    (world, id)
}

fn status(world: &World, unit: &str) -> (String, String) {
    let s = &world.unit(unit).unwrap().status;
    (s.status.clone(), s.message.clone())
}

fn events(state: &Value) -> Vec<&str> {
    state["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect()
}

/// Nothing the hooks logged or printed holds the password.
fn assert_no_leak(world: &World) {
    for record in world.logs() {
        assert!(
            !record.message.contains(PASSWORD),
            "password in juju-log from {} during {}",
            record.unit,
            record.hook
        );
    }
    for hook in world.trace() {
        assert!(
            !hook.output().contains(PASSWORD),
            "password in the output of {} on {}",
            hook.invocation.hook,
            hook.invocation.unit
        );
    }
}

#[test]
fn consumer_sees_the_master_once_the_provider_echoes_and_grants() {
    let scratch = Scratch::new("consumer-smoke").unwrap();
    // Two units: the non-leader learns the request through leader settings.
    let (mut world, id) = related(
        &scratch,
        2,
        &[
            ("database", "appdb"),
            ("roles", "reader,audit"),
            ("extensions", "citext"),
        ],
        "good",
    );

    // The request, as the offering side sees it: unit bag (v1) and app bag (v2).
    let remote = world.name_seen_by(id, "provider", "k8s-consumer/0");
    assert!(remote.starts_with("remote-"), "{remote}");
    let bag = world.bag(id, "k8s-consumer/0").unwrap();
    assert_eq!(bag.get("database").map(String::as_str), Some("appdb"));
    assert_eq!(bag.get("roles").map(String::as_str), Some("audit,reader"));
    assert_eq!(bag.get("extensions").map(String::as_str), Some("citext"));
    let app_bag = world.bag(id, "k8s-consumer").unwrap();
    assert_eq!(app_bag.get("database").map(String::as_str), Some("appdb"));
    // The library's mirror for non-leaders went through leader-set.
    let leader = &world.app("k8s-consumer").unwrap().leader_settings;
    assert!(leader.contains_key("interface.pgsql"), "{leader:?}");

    for unit in ["k8s-consumer/0", "k8s-consumer/1"] {
        // The non-leader mirrors the leader's request into its own unit bag.
        let bag = world.bag(id, unit).unwrap();
        assert_eq!(bag.get("roles").map(String::as_str), Some("audit,reader"));
        let state = consumer_state(&world, unit);
        assert_eq!(state["ready"], true, "{unit}: {}", redacted(&state));
        assert_eq!(
            state["master"],
            format!("dbname=appdb host=10.0.0.1 password={PASSWORD} port=5432 user=u")
        );
        assert_eq!(state["database"], "appdb");
        assert_eq!(state["standbys"], serde_json::json!([]));
        let seen = events(&state);
        for want in ["master_available", "master_changed"] {
            assert!(seen.contains(&want), "{unit}: {want} missing from {seen:?}");
        }
        assert_eq!(
            status(&world, unit),
            ("active".into(), "master ready".into())
        );
    }
    let seen = events(&consumer_state(&world, "k8s-consumer/0"))
        .first()
        .map(|e| e.to_string());
    assert_eq!(seen.as_deref(), Some("database_relation_joined"));

    // Relation removal: the library reports the master gone, then broken.
    world.remove_relation(id).unwrap();
    world.settle().unwrap();
    let state = consumer_state(&world, "k8s-consumer/0");
    assert_eq!(state["ready"], false);
    assert_eq!(state["master"], Value::Null);
    let seen = events(&state);
    assert!(
        seen.ends_with(&[
            "master_changed",
            "master_gone",
            "database_changed",
            "database_gone",
            "database_relation_broken"
        ]),
        "{seen:?}"
    );
    assert_eq!(status(&world, "k8s-consumer/0").0, "waiting");
    assert_no_leak(&world);
}

#[test]
fn consumer_waits_while_its_egress_is_not_granted_or_its_request_not_echoed() {
    let scratch = Scratch::new("consumer-unready").unwrap();
    let (mut world, _) = related(&scratch, 1, &[("roles", "reader")], "no-grant");
    let state = consumer_state(&world, "k8s-consumer/0");
    assert_eq!(state["ready"], false, "{}", redacted(&state));
    assert_eq!(
        status(&world, "k8s-consumer/0"),
        ("waiting".into(), "waiting for master".into())
    );

    world
        .set_config("provider", &[("mode", "no-echo")])
        .unwrap();
    world.settle().unwrap();
    assert_eq!(consumer_state(&world, "k8s-consumer/0")["ready"], false);

    world.set_config("provider", &[("mode", "good")]).unwrap();
    world.settle().unwrap();
    let state = consumer_state(&world, "k8s-consumer/0");
    assert_eq!(state["ready"], true, "{}", redacted(&state));
    // The default database request ("") lets the provider choose.
    assert_eq!(state["database"], "x");
    assert_eq!(status(&world, "k8s-consumer/0").0, "active");
    assert_no_leak(&world);
}

/// The state with the master's password replaced, for assertion messages.
fn redacted(state: &Value) -> String {
    state.to_string().replace(PASSWORD, "***")
}
