//! Secrets across models as Juju 3.6 has them (world/secrets.rs): the
//! offering side shares over the cross-model relation; consumer units read
//! by URI, pin a revision, get `secret-changed` for a newer one and name it
//! with labels of their own; the consuming side cannot share; grants go
//! with the relation; obsolete revisions reach the owner as `secret-remove`.

use std::path::{Path, PathBuf};

mod common;

use common::Scratch;
use juju_emulator::{DeployOptions, World};

/// The offering side: on `-joined` its leader creates a secret for the
/// relation, grants it (to one unit with mode=unit-grant), and publishes
/// the URI; mode=rotate sets a new revision; `secret-remove` prunes.
const PROVIDER: &str = r#"#!/bin/sh
hook="${JUJU_DISPATCH_PATH#hooks/}"; state="$CHARM_DIR/.."; mode=$(config-get mode)
case "$hook" in
  db-relation-joined)
    if [ "$(is-leader)" = True ] && [ ! -e "$state/uri" ]; then
      uri=$(secret-add --label "pw-$JUJU_RELATION_ID" --rotate daily --expire 720h password=first) || exit 1
      if [ "$mode" = unit-grant ]; then
        secret-grant "$uri" -r "$JUJU_RELATION_ID" --unit "$JUJU_REMOTE_UNIT" || exit 1
      else
        secret-grant "$uri" -r "$JUJU_RELATION_ID" || exit 1
      fi
      relation-set --app "secret-uri=$uri" && echo "$uri" > "$state/uri"
    fi ;;
  config-changed)
    [ "$mode" = rotate ] && secret-set "$(cat "$state/uri")" password=second
    if [ "$mode" = rotate-then-remove ]; then
      secret-set "$(cat "$state/uri")" password=third || exit 1
      secret-remove "$(cat "$state/uri")" || exit 1
    fi ;;
  secret-rotate|secret-expired)
    echo "$hook $JUJU_SECRET_ID $JUJU_SECRET_LABEL ${JUJU_SECRET_REVISION:-none}" >> "$state/owner-hooks"
    secret-info-get "$JUJU_SECRET_ID" --format=json >> "$state/owner-hooks" ;;
  secret-remove)
    echo "$JUJU_SECRET_ID $JUJU_SECRET_LABEL $JUJU_SECRET_REVISION" >> "$state/removed"
    secret-remove "$JUJU_SECRET_ID" --revision "$JUJU_SECRET_REVISION" ;;
esac
exit 0
"#;

/// The consuming side: reads the secret when the URI arrives (labelling it
/// `creds`), follows `secret-changed`, tries to share a secret of its own
/// with mode=share, and with mode=read reads by both URI forms.
const CONSUMER: &str = r#"#!/bin/sh
hook="${JUJU_DISPATCH_PATH#hooks/}"; state="$CHARM_DIR/.."; mode=$(config-get mode)
case "$hook" in
  db-relation-changed)
    relation-model-get --format=json > "$state/remote-model" || exit 1
    uri=$(relation-get --app secret-uri) || exit 1
    [ -n "$uri" ] || exit 0
    echo "$uri" > "$state/uri"
    secret-get "$uri" --label creds password > "$state/first-read" || exit 1 ;;
  secret-changed)
    echo "$JUJU_SECRET_ID $JUJU_SECRET_LABEL" >> "$state/changed"
    { secret-get "$JUJU_SECRET_ID" password
      secret-get "$JUJU_SECRET_ID" password --peek
      secret-get "$JUJU_SECRET_ID" password
      secret-get --label creds --refresh --format=json
      secret-get "$JUJU_SECRET_ID" password; } > "$state/reads" ;;
  config-changed)
    if [ "$mode" = share ] && [ "$(is-leader)" = True ]; then
      own=$(secret-add token=from-consumer) || exit 1
      secret-grant "$own" -r "$(relation-ids db)" || exit 1
    fi
    if [ "$mode" = read ]; then
      uri=$(cat "$state/uri")
      { secret-get "$uri" password; echo "rc=$?"
        secret-get "secret:${uri##*/}" password; echo "rc=$?"; } > "$state/read-now" 2>&1
    fi ;;
esac
exit 0
"#;

fn charm(dir: &Path, name: &str, metadata: &str, dispatch: &str) -> PathBuf {
    common::write_charm(dir, name, name, metadata, dispatch)
}

fn site(s: &Scratch, provider_config: &[(&str, &str)]) -> (World, Result<u64, String>) {
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    world.add_model("k8s");
    let provider = charm(
        &s.0,
        "pg",
        "provides:\n  db:\n    interface: pgsql\n",
        PROVIDER,
    );
    let consumer = charm(
        &s.0,
        "app",
        "requires:\n  db:\n    interface: pgsql\n",
        CONSUMER,
    );
    let config = provider_config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    world
        .deploy(
            "db",
            "pg",
            &provider,
            DeployOptions {
                config,
                ..Default::default()
            },
        )
        .unwrap();
    world
        .deploy(
            "k8s",
            "app",
            &consumer,
            DeployOptions {
                units: 2,
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    let rel = world
        .integrate_cross_model("pg:db", "app:db", "pg", &[])
        .unwrap();
    let settled = world.settle().map(|_| rel).map_err(|e| format!("{e:#}"));
    (world, settled)
}

fn state(world: &World, unit: &str, file: &str) -> String {
    std::fs::read_to_string(world.unit(unit).unwrap().agent_dir.join(file)).unwrap_or_default()
}

#[test]
fn the_offering_side_shares_and_consumers_follow_its_revisions() {
    let s = Scratch::new("secrets", "cmr");
    let (mut world, rel) = site(&s, &[]);
    let rel = rel.unwrap();
    let uri = world.secret_uri("pg", &format!("pw-db:{rel}")).unwrap();
    let pg_model = world.model("db").unwrap().uuid.clone();
    assert!(uri.starts_with(&format!("secret://{pg_model}/")), "{uri}");
    assert_eq!(world.bag(rel, "pg").unwrap()["secret-uri"], uri);
    assert_eq!(
        state(&world, "app/0", "remote-model"),
        format!("{{\"uuid\":\"{pg_model}\"}}\n"),
        "relation-model-get names the offering model"
    );
    for unit in ["app/0", "app/1"] {
        assert_eq!(
            state(&world, unit, "first-read"),
            "first\n",
            "{unit} read it by URI"
        );
        assert_eq!(world.secret_tracked_by(&uri, unit).unwrap(), Some(1));
    }
    // In another model the short form names nothing: it is not local there.
    world.set_config("app", &[("mode", "read")]).unwrap();
    world.settle().unwrap();
    let read = state(&world, "app/0", "read-now");
    assert!(read.starts_with("first\nrc=0\n"), "{read}");
    assert!(read.contains("not found\nrc=1"), "{read}");

    // A new revision: every consumer tracking the old one hears of it.
    world.set_config("pg", &[("mode", "rotate")]).unwrap();
    world.settle().unwrap();
    for unit in ["app/0", "app/1"] {
        assert_eq!(
            state(&world, unit, "changed"),
            format!("{uri} creds\n"),
            "{unit}"
        );
        assert_eq!(
            state(&world, unit, "reads"),
            "first\nsecond\nfirst\n{\"password\":\"second\"}\nsecond\n",
            "pinned, peeked, refreshed by its own label"
        );
        assert_eq!(world.secret_tracked_by(&uri, unit).unwrap(), Some(2));
    }
    // Nobody tracks revision 1 now: its owner is told, and prunes it.
    assert_eq!(
        state(&world, "pg/0", "removed"),
        format!("{uri} pw-db:{rel} 1\n")
    );
    assert_eq!(world.secret_revisions(&uri).unwrap(), [2]);

    // The grant goes with the relation.
    world.remove_relation(rel).unwrap();
    world.settle().unwrap();
    world.set_config("app", &[("mode", "normal")]).unwrap();
    world.set_config("app", &[("mode", "read")]).unwrap();
    world.settle().unwrap();
    let read = state(&world, "app/0", "read-now");
    assert!(
        read.contains("permission denied") && read.contains("rc=1"),
        "{read}"
    );
}

#[test]
fn no_secret_changed_for_a_secret_removed_before_the_consumer_heard_of_it() {
    let s = Scratch::new("secrets", "removed");
    let (mut world, rel) = site(&s, &[]);
    let rel = rel.unwrap();
    let uri = world.secret_uri("pg", &format!("pw-db:{rel}")).unwrap();
    assert_eq!(world.secret_tracked_by(&uri, "app/0").unwrap(), Some(1));
    let before = world.trace().len();
    world
        .set_config("pg", &[("mode", "rotate-then-remove")])
        .unwrap();
    world.settle().unwrap();
    assert!(world.secret_latest(&uri).is_err(), "the secret is gone");
    let consumer_hooks: Vec<&str> = world.trace()[before..]
        .iter()
        .filter(|r| r.invocation.unit.starts_with("app/"))
        .map(|r| r.invocation.hook.as_str())
        .collect();
    assert!(
        !consumer_hooks.contains(&"secret-changed"),
        "{consumer_hooks:?}"
    );
    assert_eq!(state(&world, "app/0", "changed"), "");
}

#[test]
fn the_consuming_side_cannot_share_across_models() {
    let s = Scratch::new("secrets", "share");
    let (mut world, rel) = site(&s, &[]);
    rel.unwrap();
    world.set_config("app", &[("mode", "share")]).unwrap();
    let err = format!("{:#}", world.settle().unwrap_err());
    assert!(
        err.contains("sharing consumer secrets across a cross model relation not supported"),
        "{err}"
    );
    assert_eq!(
        world.unit("app/0").unwrap().failed_hook.as_deref(),
        Some("config-changed")
    );
    assert!(
        world.secret_ids_owned_by("app").is_empty(),
        "nothing of the hook was committed"
    );
    world.set_config("app", &[("mode", "normal")]).unwrap();
    world.settle().unwrap();
}

#[test]
fn a_grant_to_one_unit_is_refused_across_models() {
    let s = Scratch::new("secrets", "unit-grant");
    let (world, rel) = site(&s, &[("mode", "unit-grant")]);
    let err = rel.unwrap_err();
    assert!(
        err.contains("sharing secrets with a unit across a cross model relation not supported"),
        "{err}"
    );
    assert!(world.secret_ids_owned_by("pg").is_empty());
}

#[test]
fn rotation_and_expiry_reach_the_owner() {
    let s = Scratch::new("secrets", "rotate");
    let (mut world, rel) = site(&s, &[]);
    let rel = rel.unwrap();
    let uri = world.secret_uri("pg", &format!("pw-db:{rel}")).unwrap();
    world.rotate_secret(&uri).unwrap();
    world.expire_secret(&uri, 1).unwrap();
    world.settle().unwrap();
    let hooks = state(&world, "pg/0", "owner-hooks");
    let lines: Vec<&str> = hooks.lines().collect();
    let label = format!("pw-db:{rel}");
    assert_eq!(lines[0], format!("secret-rotate {uri} {label} none"));
    assert_eq!(lines[2], format!("secret-expired {uri} {label} 1"));
    let info: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    let id = uri.rsplit('/').next().unwrap();
    assert_eq!(info[id]["rotation"], "daily");
    assert_eq!(info[id]["expiry"], "720h");
    assert_eq!(
        info[id]["access"][0]["target"],
        format!("application-{}", world.name_seen_by(rel, "pg", "app"))
    );
    // Consumers never get owner hooks.
    assert!(!world
        .hook_names("app/0")
        .iter()
        .any(|h| h == "secret-rotate"));
}
