//! Root tier (issue 12): failover that loses no acknowledged commit and
//! tells the consumer, on three emulated machines running the packed charm
//! (etcd 3.4, the bundled Patroni 3.2.2, the `fast` failover profile,
//! one synchronous standby).
//!
//! A `db` consumer's unit has its own network namespace on the machines'
//! network; from there a writer inserts numbered rows in autocommit, one
//! connection per row, into whatever primary the relation's application bag
//! names (re-read every second), and records each acknowledgement. A prober
//! asks every running server, from inside its machine, every 0.5 s whether
//! it is in recovery, and records any moment two are writable. Then, in turn:
//!
//! 1. the primary's machine crashes (every process killed at once): a
//!    synchronous standby takes over, the relation names it, every
//!    acknowledged row is on it; the crashed machine restarts and rejoins as
//!    a standby of the same cluster (system identifier unchanged);
//! 2. the new primary's network goes down, its processes alive: it stops
//!    taking writes, a survivor promotes, the relation follows (after the
//!    Juju leader's lease runs out, when the leader was cut off too), no
//!    acknowledged row is lost, and after the heal it rejoins as a standby;
//! 3. `switchover` to an asynchronous standby is refused; to the
//!    synchronous one it moves the primary with no acknowledged row lost;
//! 4. `remove-unit` of the primary: it hands over first, then leaves etcd
//!    and Patroni; the two left serve, with the warning that they cannot
//!    fail over safely.
//!
//! The times (crash → first acknowledged write on the new primary, →
//! relation naming it) are printed; the test asserts the issue's targets
//! for the default profile (45 s to writable, 60 s more for the relation),
//! which the fast profile must meet with room to spare on a loaded host.
//! The benchmark measures them properly.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use juju_emulator::{DeployOptions, World};
use scenarios::ha::{self, status, APP};
use scenarios::netns::Netns;

/// Writes numbered rows, one connection each, to the host in `$dir/host`.
const WRITER: &str = r#"#!/bin/bash
dir=$1
n=0
export PGPASSFILE="$dir/pgpass" PGCONNECT_TIMEOUT=2
user=$(cat "$dir/user")
while [ ! -e "$dir/stop" ]; do
  n=$((n + 1))
  host=$(cat "$dir/host")
  if timeout 3 psql -X -w -q -At -h "$host" -p 5432 -U "$user" -d shop \
       -c "INSERT INTO acked VALUES ($n)" >/dev/null 2>>"$dir/errors"; then
    echo "$n $(date +%s.%N) $host" >> "$dir/acked"
  else
    echo "$n $(date +%s.%N) $host" >> "$dir/refused"
    sleep 0.2
  fi
done
"#;

fn cluster_name() -> String {
    format!("haf{}", std::process::id() % 100_000)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The writer: a bash loop in the consumer's namespace.
struct Writer {
    dir: PathBuf,
    child: Option<Child>,
}

impl Writer {
    fn start(ns: &Netns, dir: &Path) -> Writer {
        let _ = std::fs::remove_file(dir.join("stop"));
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "bash"])
            .arg(dir.join("writer.sh"))
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Writer {
            dir: dir.to_path_buf(),
            child: Some(child),
        }
    }

    /// Acknowledged rows: (number, unix time, host).
    fn acked(&self) -> Vec<(u64, f64, String)> {
        read_rows(&self.dir.join("acked"))
    }

    fn stop(&mut self) {
        std::fs::write(self.dir.join("stop"), "").unwrap();
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_rows(path: &Path) -> Vec<(u64, f64, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
                w.next()?.to_string(),
            ))
        })
        .collect()
}

/// When the set of writable servers changed: (unix time, their units).
type WritableSet = (f64, Vec<String>);

/// The prober: every 0.5 s, every running server, from inside its machine.
struct Prober {
    /// (unit, machine init pid) of the servers to ask.
    targets: Arc<Mutex<Vec<(String, i32)>>>,
    /// Moments two or more servers said they were writable.
    violations: Arc<Mutex<Vec<String>>>,
    /// Every change of the writable set: (unix time, units).
    changes: Arc<Mutex<Vec<WritableSet>>>,
    rounds: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(targets: Vec<(String, i32)>) -> Prober {
        let targets = Arc::new(Mutex::new(targets));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let rounds = Arc::new(Mutex::new(0));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (targets, violations, rounds, stop, changes) = (
                targets.clone(),
                violations.clone(),
                rounds.clone(),
                stop.clone(),
                changes.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let list = targets.lock().unwrap().clone();
                    let writable: Vec<String> = list
                        .iter()
                        .filter(|(_, pid)| is_writable(*pid))
                        .map(|(u, _)| u.clone())
                        .collect();
                    {
                        let mut changes = changes.lock().unwrap();
                        if changes.last().map(|(_, w)| w) != Some(&writable) {
                            changes.push((now(), writable.clone()));
                        }
                    }
                    if writable.len() > 1 {
                        violations
                            .lock()
                            .unwrap()
                            .push(format!("{:.1}: {writable:?}", now()));
                    }
                    *rounds.lock().unwrap() += 1;
                    if let Some(rest) = Duration::from_millis(500).checked_sub(started.elapsed()) {
                        std::thread::sleep(rest);
                    }
                }
            })
        };
        Prober {
            targets,
            violations,
            changes,
            rounds,
            stop,
            thread: Some(thread),
        }
    }

    fn set_targets(&self, world: &World, units: &[String]) {
        *self.targets.lock().unwrap() = targets(world, units);
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn targets(world: &World, units: &[String]) -> Vec<(String, i32)> {
    units
        .iter()
        .filter_map(|u| {
            let pid = world.machine_of(u).ok()?.init_pid()?;
            Some((u.clone(), pid))
        })
        .collect()
}

/// Whether the server in the machine of init `pid` takes writes now.
fn is_writable(pid: i32) -> bool {
    Command::new("timeout")
        .args(["2", "nsenter", "--target", &pid.to_string()])
        .args([
            "--mount", "--net", "--pid", "--", "runuser", "-u", "postgres", "--",
        ])
        .args([
            "psql",
            "-X",
            "-A",
            "-t",
            "-h",
            "/var/run/postgresql",
            "-p",
            "5432",
        ])
        .args(["-d", "postgres", "-c", "SELECT pg_is_in_recovery()"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "f")
}

/// The `host=` of a libpq key=value string.
fn host_of(conninfo: &str) -> Option<String> {
    conninfo
        .split_whitespace()
        .find_map(|w| w.strip_prefix("host="))
        .map(str::to_string)
}

fn field<'a>(conninfo: &'a str, key: &str) -> &'a str {
    conninfo
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
}

/// When the relation named the new primary (unix times).
#[derive(Debug, Clone, Copy)]
struct Named {
    /// Every live unit's bag.
    units: f64,
    /// The leader's application bag (a new leader's, when the old one was
    /// cut off: after Juju's lease runs out).
    app: f64,
}

/// Serves the World until the application bag and every bag of `live`
/// units name `want` as the master, keeping the writer's host file on the
/// master most unit bags name (as a consumer that trusts the majority of
/// the units it sees; a dead unit's bag still names itself).
fn wait_for_relation(
    world: &mut World,
    relation: u64,
    all: &[String],
    live: &[String],
    want: &str,
    host_file: &Path,
    limit: Duration,
) -> Named {
    let master_in = |w: &World, owner: &str| {
        w.bag(relation, owner)
            .and_then(|b| b.get("master").cloned())
            .and_then(|m| host_of(&m))
    };
    let (mut units_at, mut app_at) = (None, None);
    // No update-status: the watcher's topology hook (and leader-elected)
    // must tell the relation.
    world.set_update_status_interval(None);
    let named = world.run_until(limit, |w| {
        let mut votes: std::collections::BTreeMap<String, usize> = Default::default();
        for u in all {
            if let Some(host) = master_in(w, u) {
                *votes.entry(host).or_default() += 1;
            }
        }
        if let Some((host, _)) = votes.iter().max_by_key(|(_, n)| **n) {
            if std::fs::read_to_string(host_file).ok().as_deref() != Some(host.as_str()) {
                std::fs::write(host_file, host).unwrap();
            }
        }
        if units_at.is_none()
            && live
                .iter()
                .all(|u| master_in(w, u).as_deref() == Some(want))
        {
            units_at = Some(now());
        }
        if app_at.is_none() && master_in(w, APP).as_deref() == Some(want) {
            app_at = Some(now());
        }
        units_at.is_some() && app_at.is_some()
    });
    named.unwrap_or_else(|e| panic!("the relation did not name {want}: {e:#}"));
    Named {
        units: units_at.unwrap(),
        app: app_at.unwrap(),
    }
}

fn address(world: &World, unit: &str) -> String {
    world.machine_of(unit).unwrap().address().to_string()
}

/// The primary according to Patroni, asked through `unit`.
fn primary_via(world: &mut World, unit: &str) -> String {
    let asked = world
        .run_action(unit, "get-primary", Default::default())
        .unwrap();
    assert!(asked.failed.is_none(), "{:?}", asked.failed);
    asked.results["primary"].as_str().unwrap().to_string()
}

/// Every acknowledged row is on `unit`'s server.
fn assert_no_acknowledged_row_lost(world: &World, unit: &str, writer: &Writer, phase: &str) {
    let acked: BTreeSet<u64> = writer.acked().iter().map(|r| r.0).collect();
    assert!(!acked.is_empty(), "{phase}: the writer wrote nothing");
    let present = ha::psql_in(
        world,
        unit,
        "shop",
        "SELECT string_agg(n::text, ',') FROM acked",
    )
    .map(|out| out.replace("\n", ""))
    .unwrap_or_else(|e| panic!("{phase}: reading the rows on {unit}: {e}"));
    let present: BTreeSet<u64> = present
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let lost: Vec<&u64> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{phase}: {} acknowledged rows are not on {unit}: {lost:?}",
        lost.len()
    );
    eprintln!("{phase}: {} acknowledged rows, all on {unit}", acked.len());
}

#[test]
fn failover_loses_no_acknowledged_commit_and_the_consumer_follows() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "needs root (emulated machines)"
    );
    let scratch = scenarios::Scratch::new("ha-failover").unwrap();
    let mut world = World::new(&scratch.0.join("world")).unwrap();
    world.set_test_env("PG_CHARM_CLUSTER", &cluster_name());
    world.set_test_env("PG_CHARM_HOST_GLOBAL", "off");
    world.set_update_status_interval(None);
    world.add_model("db");
    let consumer_host = Netns::on_machine_network(&mut world, "failover");
    let charm = scenarios::packed_charm().unwrap();
    let first = ha::deploy_standalone(&mut world, &charm, &[("failover-profile", "fast")]);
    let consumer_address = consumer_host.ns_addr.to_string();
    world
        .deploy(
            "db",
            "shop",
            &scenarios::consumer_charm().unwrap(),
            DeployOptions {
                units: 1,
                config: [("database".to_string(), "shop".to_string())].into(),
                addresses: vec![(consumer_address.clone(), consumer_address)],
                ..Default::default()
            },
        )
        .unwrap();
    let relation = world.integrate(&format!("{APP}:db"), "shop:db").unwrap();
    world.settle().unwrap();
    let mut units = vec![first.clone()];
    units.extend(ha::add_units(&mut world, 2));
    ha::wait_for_cluster(&mut world, &units, &first, Duration::from_secs(420));
    world.settle().unwrap();
    let sysid = ha::psql(
        &world,
        &first,
        "SELECT system_identifier FROM pg_control_system()",
    )
    .unwrap();

    // The writer's credentials: the consumer's, from the relation (kept in
    // a pgpass file, never on a command line).
    let dir = scratch.0.join("writer");
    std::fs::create_dir_all(&dir).unwrap();
    let master = world.bag(relation, APP).unwrap()["master"].clone();
    let user = field(&master, "user").to_string();
    let password = field(&master, "password").to_string();
    assert!(
        !user.is_empty() && password.len() >= 20,
        "the relation's credentials"
    );
    std::fs::write(dir.join("pgpass"), format!("*:*:*:{user}:{password}\n")).unwrap();
    std::fs::set_permissions(dir.join("pgpass"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.join("user"), &user).unwrap();
    std::fs::write(dir.join("host"), host_of(&master).unwrap()).unwrap();
    std::fs::write(dir.join("writer.sh"), WRITER).unwrap();
    let created = Command::new("ip")
        .args([
            "netns",
            "exec",
            &consumer_host.name,
            "psql",
            "-X",
            "-w",
            "-q",
        ])
        .args(["-h", &address(&world, &first), "-U", &user, "-d", "shop"])
        .args([
            "-c",
            "CREATE TABLE acked (n bigint PRIMARY KEY, at timestamptz DEFAULT now())",
        ])
        .env("PGPASSFILE", dir.join("pgpass"))
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let prober = Prober::start(targets(&world, &units));

    // 1. The primary's machine crashes mid-write.
    let mut writer = Writer::start(&consumer_host, &dir);
    std::thread::sleep(Duration::from_secs(5));
    let before = writer.acked().len();
    assert!(before > 0, "the writer is writing");
    let crashed = first.clone();
    let crashed_machine = world.machine_of(&crashed).unwrap().id.clone();
    let crash_at = now();
    let hooks_before_crash = world.trace().len();
    world.crash_machine(&crashed_machine).unwrap();
    let survivors: Vec<String> = units.iter().filter(|u| **u != crashed).cloned().collect();
    prober.set_targets(&world, &survivors);
    // Patroni promotes; the watcher's topology hook (or update-status)
    // tells the relation.
    let promoted = world.run_until(Duration::from_secs(120), |w| {
        survivors
            .iter()
            .any(|u| status(w, u).1.contains("primary,"))
    });
    promoted.unwrap_or_else(|e| panic!("no survivor became primary: {e:#}"));
    let new_primary = &survivors
        .iter()
        .find(|u| status(&world, u).1.contains("primary,"))
        .unwrap()
        .clone();
    let new_address = address(&world, new_primary);
    let named = wait_for_relation(
        &mut world,
        relation,
        &units,
        &survivors,
        &new_address,
        &dir.join("host"),
        Duration::from_secs(180),
    );
    // Writes resume on the new primary.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first_write = loop {
        if let Some(row) = writer
            .acked()
            .into_iter()
            .find(|r| r.1 > crash_at && r.2 == new_address)
        {
            break row.1;
        }
        assert!(
            Instant::now() < deadline,
            "no write acknowledged on {new_primary}"
        );
        world.run_for(Duration::from_millis(500)).unwrap();
    };
    let writable_after = first_write - crash_at;
    let server_writable = prober
        .changes
        .lock()
        .unwrap()
        .iter()
        .find(|(t, w)| *t > crash_at && w.contains(new_primary))
        .map(|(t, _)| t - crash_at);
    eprintln!(
        "crash of {crashed}: {new_primary}'s server took writes after {} s",
        server_writable.map_or("?".to_string(), |t| format!("{t:.1}"))
    );
    eprintln!(
        "crash of {crashed}: first write acknowledged by {new_primary} after {writable_after:.1} s; \
         the units' bags named it after {:.1} s, the application bag after {:.1} s",
        named.units - crash_at,
        named.app - crash_at
    );
    // What ran meanwhile (for the log: where the seconds went).
    for record in &world.trace()[hooks_before_crash..] {
        eprintln!(
            "  {} {}: {:.1} s",
            record.invocation.unit,
            record.invocation.hook,
            record.result.wall.as_secs_f64()
        );
    }
    assert!(
        writable_after < 45.0,
        "writable again after {writable_after:.1} s"
    );
    assert!(
        named.units - first_write < 60.0,
        "the units named the new primary {:.1} s after it took writes",
        named.units - first_write
    );
    assert!(
        named.app - crash_at < 60.0 + 60.0,
        "the application bag named it {:.1} s after the crash (lease 60 s)",
        named.app - crash_at
    );
    std::thread::sleep(Duration::from_secs(2));
    writer.stop();
    assert_no_acknowledged_row_lost(&world, new_primary, &writer, "crash");

    // The crashed machine comes back: a standby of the same cluster.
    world.restart_machine(&crashed_machine).unwrap();
    let rejoin_units = {
        let mut v = vec![new_primary.clone()];
        v.extend(units.iter().filter(|u| *u != new_primary).cloned());
        v
    };
    ha::wait_for_cluster(
        &mut world,
        &rejoin_units,
        new_primary,
        Duration::from_secs(300),
    );
    prober.set_targets(&world, &units);
    assert_eq!(
        ha::psql(&world, &crashed, "SELECT pg_is_in_recovery()").unwrap(),
        "t"
    );
    assert_eq!(
        ha::psql(
            &world,
            &crashed,
            "SELECT system_identifier FROM pg_control_system()"
        )
        .unwrap(),
        sysid,
        "the crashed member rejoined the same cluster, not a new one"
    );
    let rows_on_rejoined = wait_until(Duration::from_secs(60), || {
        let on_primary =
            ha::psql_in(&world, new_primary, "shop", "SELECT count(*) FROM acked").ok()?;
        let on_rejoined =
            ha::psql_in(&world, &crashed, "shop", "SELECT count(*) FROM acked").ok()?;
        (on_primary == on_rejoined).then_some(on_rejoined)
    });
    eprintln!("the rejoined member has the {rows_on_rejoined} rows");

    // 2. The primary loses its network, its processes alive: it stops
    // taking writes (Patroni cannot renew its leader key) before a survivor
    // promotes (the prober, inside every machine, sees no two writable),
    // and rejoins as a standby when the network is back.
    let cut = new_primary.clone();
    let cut_machine = world.machine_of(&cut).unwrap().id.clone();
    let mut writer = Writer::start(&consumer_host, &dir);
    std::thread::sleep(Duration::from_secs(3));
    let cut_at = now();
    world.partition_machine(&cut_machine).unwrap();
    let others: Vec<String> = units.iter().filter(|u| **u != cut).cloned().collect();
    world
        .run_until(Duration::from_secs(120), |w| {
            others.iter().any(|u| status(w, u).1.contains("primary,"))
        })
        .unwrap_or_else(|e| panic!("no survivor became primary after the partition: {e:#}"));
    let after_cut = others
        .iter()
        .find(|u| status(&world, u).1.contains("primary,"))
        .unwrap()
        .clone();
    let want = address(&world, &after_cut);
    let named = wait_for_relation(
        &mut world,
        relation,
        &units,
        &others,
        &want,
        &dir.join("host"),
        Duration::from_secs(180),
    );
    eprintln!(
        "partition of {cut}: {after_cut} primary; the units' bags named it after {:.1} s, \
         the application bag after {:.1} s",
        named.units - cut_at,
        named.app - cut_at
    );
    assert!(
        !is_writable(world.machine_of(&cut).unwrap().init_pid().unwrap()),
        "the cut-off primary still takes writes"
    );
    std::thread::sleep(Duration::from_secs(3));
    writer.stop();
    assert_no_acknowledged_row_lost(&world, &after_cut, &writer, "partition");
    world.heal_machine(&cut_machine).unwrap();
    let healed_units = {
        let mut v = vec![after_cut.clone()];
        v.extend(units.iter().filter(|u| **u != after_cut).cloned());
        v
    };
    ha::wait_for_cluster(
        &mut world,
        &healed_units,
        &after_cut,
        Duration::from_secs(300),
    );
    assert_eq!(
        ha::psql(
            &world,
            &cut,
            "SELECT system_identifier FROM pg_control_system()"
        )
        .unwrap(),
        sysid,
        "the cut-off member rejoined the same cluster"
    );
    let new_primary = &after_cut;

    // 3. Switchover: refused to the asynchronous standby, done to the
    // synchronous one.
    let replication = ha::psql(
        &world,
        new_primary,
        "SELECT string_agg(application_name || ':' || sync_state, ',') FROM pg_stat_replication",
    )
    .unwrap();
    let member_of = |unit: &String| postgresql_charm::ha::member_name(unit);
    let sync_standby = units
        .iter()
        .find(|u| replication.contains(&format!("{}:sync", member_of(u))))
        .unwrap_or_else(|| panic!("no synchronous standby: {replication}"))
        .clone();
    let async_standby = units
        .iter()
        .find(|u| **u != sync_standby && *u != new_primary)
        .unwrap()
        .clone();
    let params =
        |candidate: &str| serde_json::Map::from_iter([("candidate".to_string(), candidate.into())]);
    let refused = world
        .run_action(&async_standby, "switchover", params(&async_standby))
        .unwrap();
    assert!(
        refused
            .failed
            .as_deref()
            .is_some_and(|f| f.contains("not a synchronous standby")),
        "{:?}",
        refused.failed
    );
    let mut writer = Writer::start(&consumer_host, &dir);
    std::thread::sleep(Duration::from_secs(3));
    let switched = world
        .run_action(&sync_standby, "switchover", params(&sync_standby))
        .unwrap();
    assert!(switched.failed.is_none(), "{:?}", switched.failed);
    assert_eq!(
        switched.results["primary"].as_str(),
        Some(sync_standby.as_str())
    );
    let want = address(&world, &sync_standby);
    let switched_at = now();
    let named = wait_for_relation(
        &mut world,
        relation,
        &units,
        &units,
        &want,
        &dir.join("host"),
        Duration::from_secs(90),
    );
    eprintln!(
        "switchover to {sync_standby}: every bag named it within {:.1} s",
        named.units.max(named.app) - switched_at
    );
    std::thread::sleep(Duration::from_secs(3));
    writer.stop();
    assert_eq!(primary_via(&mut world, &async_standby), sync_standby);
    assert_no_acknowledged_row_lost(&world, &sync_standby, &writer, "switchover");

    // 4. remove-unit of the primary: it hands over, then leaves.
    let leaving = sync_standby.clone();
    let remaining: Vec<String> = units.iter().filter(|u| **u != leaving).cloned().collect();
    let mut writer = Writer::start(&consumer_host, &dir);
    std::thread::sleep(Duration::from_secs(3));
    world.remove_unit(&leaving).unwrap();
    world.settle().unwrap();
    prober.set_targets(&world, &remaining);
    let after_removal = primary_via(&mut world, &remaining[0]);
    assert!(remaining.contains(&after_removal), "{after_removal}");
    let want = address(&world, &after_removal);
    wait_for_relation(
        &mut world,
        relation,
        &remaining,
        &remaining,
        &want,
        &dir.join("host"),
        Duration::from_secs(90),
    );
    world.set_update_status_interval(Some(Duration::from_secs(5)));
    world
        .run_until(Duration::from_secs(120), |w| {
            status(w, &after_removal)
                .1
                .contains("cannot fail over safely")
        })
        .unwrap_or_else(|e| panic!("two units and no warning: {e:#}"));
    world.set_update_status_interval(None);
    std::thread::sleep(Duration::from_secs(3));
    writer.stop();
    assert_no_acknowledged_row_lost(&world, &after_removal, &writer, "removal of the primary");
    let hooks_failed: Vec<String> = world
        .logs()
        .iter()
        .filter(|l| l.message.contains("failed:") && l.unit != crashed)
        .map(|l| format!("{}: {}", l.unit, l.message))
        .collect();
    assert!(hooks_failed.is_empty(), "{hooks_failed:#?}");

    let rounds = *prober.rounds.lock().unwrap();
    let violations = prober.violations.lock().unwrap().clone();
    assert!(rounds > 20, "the prober ran ({rounds} rounds)");
    assert!(
        violations.is_empty(),
        "two writable servers at once: {violations:?}"
    );
    drop(prober);
    drop(consumer_host);
}

fn wait_until<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
