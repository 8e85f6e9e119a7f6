//! The traffic of the failover test and benchmark (issue 12;
//! `tests/ha_failover.rs`, `bench-failover`): a `db` consumer with a host
//! of its own on the machines' network ([`deploy_consumer`]); from there a
//! [`Writer`] inserts numbered rows in autocommit, one connection per row,
//! into whatever primary the relation names ([`follow_master`], re-read
//! every time the World's loop looks), and records every acknowledgement
//! and every refusal; a [`Prober`] asks every running server, from inside
//! its machine, every 0.5 s whether it takes writes, and records each
//! change of the writable set and any moment two were writable.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use juju_emulator::{DeployOptions, World};

use super::APP;
use crate::netns::Netns;

/// The consumer application, and the database it asks for.
pub const CONSUMER: &str = "shop";

/// Writes numbered rows, one connection each, to the host in `$dir/host`;
/// appends `n time host` to `$dir/acked` or `$dir/refused`.
const WRITER: &str = r#"#!/bin/bash
dir=$1
# Numbers go on from every earlier writer's (the table's key).
n=$(cat "$dir/acked" "$dir/refused" 2>/dev/null | awk '$1 > m { m = $1 } END { print m + 0 }')
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

/// Unix time now, in seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The consumer charm deployed as [`CONSUMER`] with its one unit at
/// `host`'s address (so `egress-subnets` admit that host), related to
/// `postgresql:db`, hooks settled: the relation's id.
pub fn deploy_consumer(world: &mut World, host: &Netns) -> u64 {
    let address = host.ns_addr.to_string();
    world
        .deploy(
            "db",
            CONSUMER,
            &crate::consumer_charm().unwrap(),
            DeployOptions {
                units: 1,
                config: [("database".to_string(), CONSUMER.to_string())].into(),
                addresses: vec![(address.clone(), address)],
                ..Default::default()
            },
        )
        .unwrap();
    let relation = world
        .integrate(&format!("{APP}:db"), &format!("{CONSUMER}:db"))
        .unwrap();
    world.settle().unwrap();
    relation
}

/// One row the writer tried: its number, when (unix time), which host.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub n: u64,
    pub at: f64,
    pub host: String,
}

/// The writer: a bash loop in the consumer's namespace.
pub struct Writer {
    dir: PathBuf,
    child: Option<Child>,
}

impl Writer {
    /// Gets `dir` ready for writers from `host`: the consumer's credentials
    /// from the relation's application bag (in a pgpass file, never on a
    /// command line), the master it names, and the table `acked` created
    /// there.
    pub fn prepare(world: &World, host: &Netns, dir: &Path, relation: u64) {
        std::fs::create_dir_all(dir).unwrap();
        let master = world.bag(relation, APP).unwrap()["master"].clone();
        let user = field(&master, "user").to_string();
        let password = field(&master, "password").to_string();
        assert!(
            !user.is_empty() && password.len() >= 20,
            "the relation's credentials"
        );
        let pgpass = dir.join("pgpass");
        std::fs::write(&pgpass, format!("*:*:*:{user}:{password}\n")).unwrap();
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join("user"), &user).unwrap();
        let primary = host_of(&master).unwrap();
        std::fs::write(dir.join("host"), &primary).unwrap();
        std::fs::write(dir.join("writer.sh"), WRITER).unwrap();
        let created = Command::new("ip")
            .args(["netns", "exec", &host.name, "psql", "-X", "-w", "-q"])
            .args(["-h", &primary, "-U", &user, "-d", CONSUMER])
            .args([
                "-c",
                "CREATE TABLE acked (n bigint PRIMARY KEY, at timestamptz DEFAULT now())",
            ])
            .env("PGPASSFILE", &pgpass)
            .output()
            .unwrap();
        if !created.status.success() {
            let why = String::from_utf8_lossy(&created.stderr);
            panic!("creating the writer's table on {primary}: {why}");
        }
    }

    /// Starts writing from `host` with what [`Writer::prepare`] put in
    /// `dir`, numbering on from the earlier writers' rows; returns once it
    /// had a row acknowledged (panics after 30 s without one).
    pub fn start(host: &Netns, dir: &Path) -> Writer {
        let acked_before = read_attempts(&dir.join("acked")).len();
        let _ = std::fs::remove_file(dir.join("stop"));
        let child = Command::new("ip")
            .args(["netns", "exec", &host.name, "bash"])
            .arg(dir.join("writer.sh"))
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let writer = Writer {
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while writer.acked().len() == acked_before {
            assert!(
                Instant::now() < deadline,
                "the writer wrote nothing in 30 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        writer
    }

    /// The file the writer reads its host from ([`follow_master`] writes it).
    pub fn host_file(&self) -> PathBuf {
        self.dir.join("host")
    }

    /// Every acknowledged row, by every writer of this directory.
    pub fn acked(&self) -> Vec<Attempt> {
        read_attempts(&self.dir.join("acked"))
    }

    /// Every refused row (error or no answer within 3 s).
    pub fn refused(&self) -> Vec<Attempt> {
        read_attempts(&self.dir.join("refused"))
    }

    /// Asks the loop to stop after its current row, and waits for it.
    pub fn stop(&mut self) {
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

fn read_attempts(path: &Path) -> Vec<Attempt> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(Attempt {
                n: w.next()?.parse().ok()?,
                at: w.next()?.parse().ok()?,
                host: w.next()?.to_string(),
            })
        })
        .collect()
}

/// The acknowledged rows and, of them, those missing on `unit`'s server.
pub fn acknowledged_rows_missing(
    world: &World,
    unit: &str,
    writer: &Writer,
) -> Result<(usize, Vec<u64>), String> {
    let acked: BTreeSet<u64> = writer.acked().iter().map(|r| r.n).collect();
    let present = super::psql_in(
        world,
        unit,
        CONSUMER,
        "SELECT string_agg(n::text, ',') FROM acked",
    )
    .map_err(|e| format!("reading the rows on {unit}: {e}"))?;
    let present: BTreeSet<u64> = present
        .replace('\n', "")
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    Ok((acked.len(), acked.difference(&present).copied().collect()))
}

/// When the set of writable servers changed: (unix time, their units).
pub type WritableSet = (f64, Vec<String>);

/// The prober: every 0.5 s, every running server, from inside its machine.
pub struct Prober {
    /// (unit, machine init pid) of the servers to ask.
    targets: Arc<Mutex<Vec<(String, i32)>>>,
    /// Moments two or more servers said they were writable.
    violations: Arc<Mutex<Vec<String>>>,
    /// Every change of the writable set.
    changes: Arc<Mutex<Vec<WritableSet>>>,
    rounds: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    /// Starts probing `units`' servers.
    pub fn start(world: &World, units: &[String]) -> Prober {
        let targets = Arc::new(Mutex::new(targets(world, units)));
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

    /// Probes `units`' servers from now on (those whose machine is up).
    pub fn set_targets(&self, world: &World, units: &[String]) {
        *self.targets.lock().unwrap() = targets(world, units);
    }

    /// The first moment after `since` the prober saw `unit` writable.
    pub fn writable_after(&self, since: f64, unit: &str) -> Option<f64> {
        self.changes
            .lock()
            .unwrap()
            .iter()
            .find(|(t, w)| *t > since && w.iter().any(|u| u == unit))
            .map(|(t, _)| *t)
    }

    /// Rounds so far.
    pub fn rounds(&self) -> u64 {
        *self.rounds.lock().unwrap()
    }

    /// Every moment two or more servers were writable.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
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
pub fn is_writable(pid: i32) -> bool {
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

/// Whether `unit`'s server takes writes now (false when its machine is down).
pub fn unit_is_writable(world: &World, unit: &str) -> bool {
    world
        .machine_of(unit)
        .ok()
        .and_then(|m| m.init_pid())
        .is_some_and(is_writable)
}

/// The `host=` of a libpq key=value string.
pub fn host_of(conninfo: &str) -> Option<String> {
    conninfo
        .split_whitespace()
        .find_map(|w| w.strip_prefix("host="))
        .map(str::to_string)
}

/// The value of `key` in a libpq key=value string ("" when absent).
pub fn field<'a>(conninfo: &'a str, key: &str) -> &'a str {
    conninfo
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
}

/// The host `owner`'s bag (a unit, or [`APP`] for the application bag)
/// names as the master.
pub fn master_in(world: &World, relation: u64, owner: &str) -> Option<String> {
    world
        .bag(relation, owner)
        .and_then(|b| b.get("master").cloned())
        .and_then(|m| host_of(&m))
}

/// Points the writer's host file at the master most of `units`' bags name,
/// as a consumer that trusts the majority of the units it sees (a dead
/// unit's bag still names itself).
pub fn follow_master(world: &World, relation: u64, units: &[String], host_file: &Path) {
    let mut votes: BTreeMap<String, usize> = BTreeMap::new();
    for u in units {
        if let Some(host) = master_in(world, relation, u) {
            *votes.entry(host).or_default() += 1;
        }
    }
    if let Some((host, _)) = votes.iter().max_by_key(|(_, n)| **n) {
        if std::fs::read_to_string(host_file).ok().as_deref() != Some(host.as_str()) {
            std::fs::write(host_file, host).unwrap();
        }
    }
}

/// When the relation named the new primary (unix times).
#[derive(Debug, Clone, Copy)]
pub struct Named {
    /// Every live unit's bag.
    pub units: f64,
    /// The leader's application bag (a new leader's, when the old one was
    /// cut off: after Juju's lease runs out).
    pub app: f64,
}

/// Serves the World until the application bag and every bag of `live`
/// units name `want` as the master, keeping the writer's host file on what
/// `all` units' bags name ([`follow_master`]). No `update-status`: the
/// watcher's topology hook (and `leader-elected`) must tell the relation.
pub fn wait_for_relation(
    world: &mut World,
    relation: u64,
    (all, live): (&[String], &[String]),
    want: &str,
    host_file: &Path,
    limit: Duration,
) -> Named {
    let (mut units_at, mut app_at) = (None, None);
    world.set_update_status_interval(None);
    let named = world.run_until(limit, |w| {
        follow_master(w, relation, all, host_file);
        if units_at.is_none()
            && live
                .iter()
                .all(|u| master_in(w, relation, u).as_deref() == Some(want))
        {
            units_at = Some(now());
        }
        if app_at.is_none() && master_in(w, relation, APP).as_deref() == Some(want) {
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

/// `unit`'s machine's address.
pub fn address(world: &World, unit: &str) -> String {
    world.machine_of(unit).unwrap().address().to_string()
}

/// `unit`'s Patroni REST API, without credentials: over HTTPS, trusting
/// the units' CA file the charm keeps beside PostgreSQL's certificate
/// (read through the server), when there is one.
pub fn rest_api(world: &World, unit: &str) -> postgresql_charm::ha::patroni_api::PatroniApi {
    let ca = super::psql(
        world,
        unit,
        "SELECT pg_read_file(regexp_replace(current_setting('ssl_cert_file'), \
         'cert\\.pem$', 'peers-ca.pem'), 0, 1000000, true)",
    )
    .ok()
    .filter(|pem| pem.contains("BEGIN CERTIFICATE"));
    let trust = ca.map(|pem| postgresql_charm::ha::http::Trust::from_pem(&pem).unwrap());
    postgresql_charm::ha::patroni_api::PatroniApi::new(
        &format!("{}:8008", address(world, unit)),
        None,
    )
    .trusting(trust)
}

/// The primary according to Patroni, asked through `unit`'s `get-primary`.
pub fn primary_via(world: &mut World, unit: &str) -> String {
    let asked = world
        .run_action(unit, "get-primary", Default::default())
        .unwrap();
    assert!(asked.failed.is_none(), "{:?}", asked.failed);
    asked.results["primary"].as_str().unwrap().to_string()
}

/// The unit of `units` the primary's `pg_stat_replication` shows as its
/// synchronous standby.
pub fn sync_standby(world: &World, primary: &str, units: &[String]) -> Result<String, String> {
    let replication = super::psql(
        world,
        primary,
        "SELECT string_agg(application_name || ':' || sync_state, ',') FROM pg_stat_replication",
    )?;
    units
        .iter()
        .find(|u| {
            let member = postgresql_charm::ha::member_name(u);
            replication
                .split(',')
                .any(|s| s == format!("{member}:sync"))
        })
        .cloned()
        .ok_or_else(|| format!("no synchronous standby on {primary}: {replication}"))
}

/// The synchronous standby as PostgreSQL (`pg_stat_replication` on
/// `primary`) and Patroni (`cluster-status`, whose roles the `switchover`
/// action checks) both name it. They disagree for a moment while Patroni
/// moves the role: it changes `synchronous_standby_names` first and its
/// `/sync` key once the new standby is synchronous. Serves the World for
/// up to 60 s until they agree.
pub fn agreed_sync_standby(world: &mut World, primary: &str, units: &[String]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let postgres = sync_standby(world, primary, units);
        let status = world
            .run_action(primary, "cluster-status", Default::default())
            .unwrap();
        let members = status.results["members"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Ok(unit) = &postgres {
            if members.contains(&format!("{unit}: synchronous standby")) {
                return unit.clone();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "PostgreSQL and Patroni disagree on the synchronous standby for 60 s: \
             {postgres:?} / {members}"
        );
        world.run_for(Duration::from_secs(1)).unwrap();
    }
}

/// The failover scenarios' cluster: `postgresql` deployed alone with
/// `config` (a standalone server), the [`CONSUMER`] related at `host`, then
/// `add-unit` twice, until unit 0 is the primary of two standbys; the
/// three units (unit 0 first) and the `db` relation's id.
pub fn three_units_with_consumer(
    world: &mut World,
    charm: &Path,
    config: &[(&str, &str)],
    host: &Netns,
) -> (Vec<String>, u64) {
    let first = super::deploy_standalone(world, charm, config);
    let relation = deploy_consumer(world, host);
    let mut units = vec![first.clone()];
    units.extend(super::add_units(world, 2));
    super::wait_for_cluster(world, &units, &first, Duration::from_secs(420));
    world.settle().unwrap();
    (units, relation)
}

/// How the primary is taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every process of its machine killed at once ([`World::crash_machine`]).
    Crash,
    /// Its machine's link down, its processes alive ([`World::partition_machine`]).
    Partition,
}

/// One change of primary as the consumer saw it; times in seconds after
/// the fault or the switchover began.
#[derive(Debug, Clone)]
pub struct Failover {
    pub from: String,
    pub to: String,
    /// When the prober first saw the new primary's server take writes.
    pub server_writable: Option<f64>,
    /// The writer's first acknowledged row on the new primary.
    pub first_write: f64,
    /// Every live unit's bag named the new primary.
    pub units_named: f64,
    /// The application bag named it.
    pub app_named: f64,
    /// Rows the writer saw refused (or unanswered) between the event and
    /// its first acknowledgement on the new primary.
    pub refused: usize,
    /// Whether the old primary was the Juju leader, so that the app bag
    /// waited for a new leader (Juju's lease).
    pub leader_lost: bool,
}

/// What the failover helpers watch: the `db` relation, the cluster's
/// units and the prober asking their servers.
pub struct Watched {
    pub relation: u64,
    pub units: Vec<String>,
    pub prober: Prober,
}

impl Watched {
    /// Gets the writer's directory ready ([`Writer::prepare`]) and starts
    /// probing `units`.
    pub fn start(
        world: &World,
        (host, dir): (&Netns, &Path),
        units: &[String],
        relation: u64,
    ) -> Self {
        Writer::prepare(world, host, dir, relation);
        Watched {
            relation,
            units: units.to_vec(),
            prober: Prober::start(world, units),
        }
    }
}

/// Takes `primary` away by `fault` while `writer` writes, and serves the
/// World until a survivor's server takes writes, every survivor's bag and
/// the application bag name it, and the writer had a row acknowledged
/// there. Panics when any of that does not happen in time.
pub fn fail_primary(
    world: &mut World,
    watched: &Watched,
    writer: &Writer,
    primary: &str,
    fault: Fault,
) -> Failover {
    let leader_lost = world.app(APP).unwrap().leader.as_deref() == Some(primary);
    let machine = world.machine_of(primary).unwrap().id.clone();
    let survivors: Vec<String> = watched
        .units
        .iter()
        .filter(|u| **u != primary)
        .cloned()
        .collect();
    let at = now();
    match fault {
        Fault::Crash => {
            world.crash_machine(&machine).unwrap();
            watched.prober.set_targets(world, &survivors);
        }
        Fault::Partition => world.partition_machine(&machine).unwrap(),
    }
    let host_file = writer.host_file();
    let mut promoted = None;
    world
        .run_until(Duration::from_secs(120), |w| {
            follow_master(w, watched.relation, &watched.units, &host_file);
            promoted = survivors
                .iter()
                .find(|u| watched.prober.writable_after(at, u).is_some())
                .cloned();
            promoted.is_some()
        })
        .unwrap_or_else(|e| panic!("{fault:?} of {primary}: no survivor took writes: {e:#}"));
    let to = promoted.unwrap();
    Failover {
        leader_lost,
        ..followed(world, watched, writer, (at, primary, &to), &survivors)
    }
}

/// `switchover` to `candidate` (a synchronous standby) while `writer`
/// writes, then serves the World until every bag names it and the writer
/// had a row acknowledged there.
pub fn switch_over(
    world: &mut World,
    watched: &Watched,
    writer: &Writer,
    (from, candidate): (&str, &str),
) -> Failover {
    let at = now();
    let params = serde_json::Map::from_iter([("candidate".to_string(), candidate.into())]);
    let switched = world.run_action(candidate, "switchover", params).unwrap();
    assert!(switched.failed.is_none(), "{:?}", switched.failed);
    assert_eq!(switched.results["primary"].as_str(), Some(candidate));
    followed(
        world,
        watched,
        writer,
        (at, from, candidate),
        &watched.units,
    )
}

/// Serves the World until the relation names `to` (the application bag
/// and every bag of `live` units) and the writer had a row acknowledged
/// there: the times since `at`.
fn followed(
    world: &mut World,
    watched: &Watched,
    writer: &Writer,
    (at, from, to): (f64, &str, &str),
    live: &[String],
) -> Failover {
    let want = address(world, to);
    let named = wait_for_relation(
        world,
        watched.relation,
        (&watched.units, live),
        &want,
        &writer.host_file(),
        Duration::from_secs(180),
    );
    let first_write = wait_for_first_write(world, writer, at, &want);
    Failover {
        from: from.to_string(),
        to: to.to_string(),
        server_writable: watched.prober.writable_after(at, to).map(|t| t - at),
        first_write: first_write - at,
        units_named: named.units - at,
        app_named: named.app - at,
        refused: refused_between(writer, at, first_write),
        leader_lost: false,
    }
}

/// The unix time of the writer's first acknowledged row on `host` after
/// `since`, serving the World meanwhile (at most 60 s).
fn wait_for_first_write(world: &mut World, writer: &Writer, since: f64, host: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(row) = writer
            .acked()
            .into_iter()
            .find(|r| r.at > since && r.host == host)
        {
            return row.at;
        }
        assert!(
            Instant::now() < deadline,
            "no write acknowledged on {host} within 60 s"
        );
        world.run_for(Duration::from_millis(500)).unwrap();
    }
}

fn refused_between(writer: &Writer, from: f64, to: f64) -> usize {
    writer
        .refused()
        .iter()
        .filter(|r| r.at > from && r.at < to)
        .count()
}

/// `units` with `primary` first, as [`super::wait_for_cluster`] wants them.
pub fn primary_first(units: &[String], primary: &str) -> Vec<String> {
    let mut v = vec![primary.to_string()];
    v.extend(units.iter().filter(|u| *u != primary).cloned());
    v
}
