//! `juju-exec` (crate::exec) and the agent loop (World::run_until): commands
//! run in a unit's hook context, on its machine, serialised with its hooks,
//! committed like a hook unless killed; and `update-status` on an interval.
//! Units run on emulated machines (root needed) unless a test says so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::Scratch;
use juju_emulator::machine::MachineSpec;
use juju_emulator::{DeployOptions, World};

/// With `mode=busy`, config-changed starts a detached watcher (with the
/// hook context stripped from its environment, as a service has none) that
/// calls juju-exec three times while the hook is still running; each call
/// records whether it overlapped the hook.
const DISPATCH: &str = r#"#!/bin/sh
hook="${JUJU_DISPATCH_PATH#hooks/}"
state="$CHARM_DIR/.."
case "$hook" in
  config-changed)
    if [ "$(config-get mode)" = busy ]; then
      touch "$state/in-hook"
      setsid env -u JUJU_CONTEXT_ID sh -c '
        for n in 1 2 3; do
          juju-exec -u "$0" "if [ -e $1/in-hook ]; then relation-set -r cluster:0 overlap=yes; fi; relation-set -r cluster:0 run-$n=\$(date +%s%N)"
        done > "$1/watcher.out" 2>&1' "$JUJU_UNIT_NAME" "$state" </dev/null >/dev/null 2>&1 &
      sleep 1
      date +%s%N > "$state/hook-ended"
      rm "$state/in-hook"
    fi
    if [ "$(config-get mode)" = nested ]; then
      juju-exec -u "$JUJU_UNIT_NAME" true > "$state/nested.out" 2>&1; echo "rc=$?" >> "$state/nested.out"
    fi ;;
esac
status-set active "ran $hook"
"#;

fn write_charm(dir: &Path) -> PathBuf {
    let peers = "peers:\n  cluster:\n    interface: svc-peer\n";
    common::write_charm(dir, "charm", "svc", peers, DISPATCH)
}

fn world(s: &Scratch, units: u32, machines: bool) -> World {
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("m");
    world
        .deploy(
            "m",
            "svc",
            &write_charm(&s.0),
            DeployOptions {
                units,
                machine: machines.then(MachineSpec::default),
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    world
}

/// Starts `juju-exec args` on `unit`'s machine as a process of that machine.
fn spawn_exec(world: &World, unit: &str, args: &[&str]) -> Child {
    world
        .machine_of(unit)
        .unwrap()
        .command("/usr/bin/juju-exec")
        .unwrap()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `juju-exec args` on `unit`'s machine while serving the agent.
fn exec_on(world: &mut World, unit: &str, args: &[&str]) -> (i32, String, String) {
    let child = spawn_exec(world, unit, args);
    finish(world, child)
}

/// Serves the agent until `child` exits; its (code, stdout, stderr).
fn finish(world: &mut World, mut child: Child) -> (i32, String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "juju-exec did not finish");
        world.run_for(Duration::from_millis(50)).unwrap();
    };
    let out = child.wait_with_output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn juju_exec_runs_in_the_units_hook_context_and_commits_on_success() {
    let s = Scratch::new("exec", "context");
    let mut w = world(&s, 2, true);
    let child = spawn_exec(
        &w,
        "svc/0",
        &[
            "-u",
            "svc/0",
            "relation-set -r cluster:0 from-exec=yes; status-set maintenance via-exec; echo \"$JUJU_UNIT_NAME $JUJU_CONTEXT_ID $(pwd) $(hostname) ${JUJU_DISPATCH_PATH-unset}\"",
        ],
    );
    let (code, stdout, stderr) = finish(&mut w, child);
    assert_eq!(code, 0, "{stderr}");
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(fields[0], "svc/0");
    assert!(fields[1].starts_with("svc/0-run-commands-"), "{stdout}");
    assert_eq!(fields[2], "/var/lib/juju/agents/unit-svc-0/charm");
    assert_eq!(fields[3], "juju-machine-0", "it ran on the unit's machine");
    assert_eq!(fields[4], "unset", "no hook is dispatched");
    // Committed like a hook: the bag, and the -changed it causes.
    assert_eq!(w.bag(0, "svc/0").unwrap()["from-exec"], "yes");
    assert_eq!(w.unit("svc/0").unwrap().status.message, "via-exec");
    w.settle().unwrap();
    assert_eq!(
        w.hook_names("svc/1").last().unwrap(),
        "cluster-relation-changed"
    );
    let record = w.execs().last().unwrap();
    assert!(record.committed && record.unit.as_deref() == Some("svc/0"));

    // The unit may be inferred on a machine with one unit, and named by tag.
    let (code, stdout, _) = exec_on(&mut w, "svc/1", &["unit-svc-1", "echo", "$JUJU_UNIT_NAME"]);
    assert_eq!((code, stdout.trim()), (0, "svc/1"));
    let (code, stdout, _) = exec_on(&mut w, "svc/1", &["echo", "inferred", "$JUJU_UNIT_NAME"]);
    assert_eq!((code, stdout.trim()), (0, "inferred svc/1"));
}

#[test]
fn juju_exec_commits_on_any_exit_code_but_not_when_killed() {
    let s = Scratch::new("exec", "exit");
    let mut w = world(&s, 1, true);
    // Juju's RunCommands flushes whatever the exit code (a non-zero code is
    // the result, not an error); the code comes back to the caller.
    let (code, _, _) = exec_on(
        &mut w,
        "svc/0",
        &[
            "-u",
            "svc/0",
            "relation-set -r cluster:0 failing=kept; exit 3",
        ],
    );
    assert_eq!(code, 3);
    assert_eq!(w.bag(0, "svc/0").unwrap()["failing"], "kept");
    // A process killed by a signal is not a result: nothing is committed.
    let (code, _, stderr) = exec_on(
        &mut w,
        "svc/0",
        &[
            "-u",
            "svc/0",
            "relation-set -r cluster:0 killed=yes; status-set blocked now; kill -9 $$",
        ],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("ERROR signal"), "{stderr}");
    assert!(!w.bag(0, "svc/0").unwrap().contains_key("killed"));
    assert_eq!(
        w.unit("svc/0").unwrap().status.status,
        "blocked",
        "status-set is immediate"
    );
    assert!(!w.execs().last().unwrap().committed);
}

#[test]
fn juju_exec_waits_for_the_running_hook() {
    let s = Scratch::new("exec", "lock");
    let mut w = world(&s, 1, true);
    w.set_config("svc", &[("mode", "busy")]).unwrap();
    w.settle().unwrap();
    // The watcher's three calls were waiting for the hook; they run now.
    w.run_until(Duration::from_secs(30), |w| {
        w.bag(0, "svc/0").is_some_and(|b| b.contains_key("run-3"))
    })
    .unwrap();
    let bag = w.bag(0, "svc/0").unwrap();
    assert!(
        !bag.contains_key("overlap"),
        "no juju-exec ran during the hook"
    );
    let agent = &w.unit("svc/0").unwrap().agent_dir;
    let ended: u128 = std::fs::read_to_string(agent.join("hook-ended"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let first: u128 = bag["run-1"].parse().unwrap();
    assert!(first > ended, "the first call ran after the hook ended");
}

#[test]
fn juju_exec_refuses_hook_contexts_and_other_machines_units() {
    let s = Scratch::new("exec", "refuse");
    let mut w = world(&s, 2, true);
    w.set_config("svc", &[("mode", "nested")]).unwrap();
    w.settle().unwrap();
    let nested =
        std::fs::read_to_string(w.unit("svc/0").unwrap().agent_dir.join("nested.out")).unwrap();
    assert!(
        nested.starts_with("ERROR juju-exec cannot be called from within a hook, have context \"svc/0-config-changed-"),
        "{nested}"
    );
    assert!(nested.ends_with("rc=2\n"), "{nested}");
    let (code, _, stderr) = exec_on(&mut w, "svc/0", &["-u", "svc/1", "true"]);
    assert_eq!(code, 1);
    assert_eq!(stderr, "ERROR unit \"svc/1\" not found on this machine\n");
    let (code, _, stderr) = exec_on(&mut w, "svc/0", &["svc/0"]);
    assert_eq!((code, stderr.as_str()), (2, "ERROR missing commands\n"));
}

#[test]
fn juju_exec_works_for_units_on_the_test_host() {
    let s = Scratch::new("exec", "host");
    let mut w = world(&s, 1, false);
    let tools = w.unit("svc/0").unwrap().tools_dir.clone();
    let child = Command::new(tools.join("juju-exec"))
        .args(["svc/0", "relation-set -r cluster:0 host=yes; echo ok"])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, stdout, stderr) = finish(&mut w, child);
    assert_eq!((code, stdout.as_str()), (0, "ok\n"), "{stderr}");
    assert_eq!(w.bag(0, "svc/0").unwrap()["host"], "yes");
}

#[test]
fn update_status_fires_on_its_interval_while_a_test_waits() {
    let s = Scratch::new("exec", "tick");
    let mut w = world(&s, 2, false);
    let count = |w: &World, unit: &str| {
        w.hook_names(unit)
            .iter()
            .filter(|h| *h == "update-status")
            .count()
    };
    w.run_for(Duration::from_millis(300)).unwrap();
    assert_eq!(count(&w, "svc/0"), 0, "off by default");
    w.set_update_status_interval(Some(Duration::from_millis(200)));
    w.run_until(Duration::from_secs(10), |w| {
        count(w, "svc/0") >= 2 && count(w, "svc/1") >= 2
    })
    .unwrap();
    let err = w
        .run_until(Duration::from_millis(300), |_| false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not done after 300ms"), "{err}");
}

#[test]
fn juju_exec_from_a_partitioned_machine_waits_for_the_heal() {
    let s = Scratch::new("exec", "partition");
    let mut w = world(&s, 1, true);
    w.partition_machine("0").unwrap();
    let mut child = spawn_exec(
        &w,
        "svc/0",
        &["-u", "svc/0", "relation-set -r cluster:0 after-heal=yes"],
    );
    w.run_for(Duration::from_millis(500)).unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "still waiting for its agent"
    );
    assert!(!w.bag(0, "svc/0").unwrap().contains_key("after-heal"));
    w.heal_machine("0").unwrap();
    let (code, _, stderr) = finish(&mut w, child);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(w.bag(0, "svc/0").unwrap()["after-heal"], "yes");
}
