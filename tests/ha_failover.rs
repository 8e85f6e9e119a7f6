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
//!    synchronous one it moves the primary with no acknowledged row lost,
//!    and no Juju leader (a primary change moves no leader; the
//!    application bag follows Patroni's primary); a `database` consumer
//!    (the data_interfaces v0 library, on a machine of its own) is told the
//!    new primary in `endpoints` and the others in `read-only-endpoints`,
//!    and its library raises `endpoints_changed`;
//!
//!    Between 2 and 3, or after 3 (whenever the Juju leader is a standby),
//!    the leader is cut off until Juju elects another: the primary stays
//!    where it was, never two writable, and the new leader's application
//!    bag names it (a leader change moves no primary);
//! 4. `remove-unit` of the primary: it hands over first, then leaves etcd
//!    and Patroni; the two left serve, with the warning that they cannot
//!    fail over safely;
//! 5. `remove-application`: both members leave, every hook succeeding at
//!    its first run and none taking two minutes.
//!
//! The times (crash → first acknowledged write on the new primary, →
//! relation naming it) are printed; the test asserts the targets
//! for the default profile (45 s to writable, 60 s more for the relation),
//! which the fast profile must meet with room to spare on a loaded host.
//! The benchmark measures them properly.

use std::time::{Duration, Instant};

use juju_emulator::World;
use scenarios::ha::{
    self, address, primary_via, status, unit_is_writable, wait_for_relation, Fault, Watched, Writer,
};
use scenarios::netns::Netns;

/// Every acknowledged row is on `unit`'s server.
fn assert_no_acknowledged_row_lost(world: &World, unit: &str, writer: &Writer, phase: &str) {
    let (acked, missing) = ha::acknowledged_rows_missing(world, unit, writer)
        .unwrap_or_else(|e| panic!("{phase}: {e}"));
    assert!(acked > 0, "{phase}: the writer wrote nothing");
    assert!(
        missing.is_empty(),
        "{phase}: {} acknowledged rows are not on {unit}: {missing:?}",
        missing.len()
    );
    eprintln!("{phase}: {acked} acknowledged rows, all on {unit}");
}

#[test]
fn failover_loses_no_acknowledged_commit_and_the_consumer_follows() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "needs root (emulated machines)"
    );
    let scratch = scenarios::Scratch::new("ha-failover").unwrap();
    let mut world = ha::world(&scratch.0.join("world"), "haf").unwrap();
    let consumer_host = Netns::on_machine_network(&mut world, "failover");
    let charm = scenarios::packed_charm().unwrap();
    let (units, relation) = ha::three_units_with_consumer(
        &mut world,
        &charm,
        &[("failover-profile", "fast")],
        &consumer_host,
    );
    let first = units[0].clone();
    let modern = relate_database_consumer(&mut world);
    let sysid = ha::psql(
        &world,
        &first,
        "SELECT system_identifier FROM pg_control_system()",
    )
    .unwrap();
    let dir = scratch.0.join("writer");
    let watched = Watched::start(&world, (&consumer_host, &dir), &units, relation);
    let prober = &watched.prober;

    // 1. The primary's machine crashes mid-write.
    let mut writer = Writer::start(&consumer_host, &dir);
    let crashed = first.clone();
    let crashed_machine = world.machine_of(&crashed).unwrap().id.clone();
    let hooks_before_crash = world.trace().len();
    let crash = ha::fail_primary(&mut world, &watched, &writer, &crashed, Fault::Crash);
    let new_primary = &crash.to.clone();
    eprintln!("crash of {crashed}: {crash:?}");
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
        crash.first_write < 45.0,
        "writable again after {:.1} s",
        crash.first_write
    );
    assert!(
        crash.units_named - crash.first_write < 60.0,
        "the units named the new primary {:.1} s after it took writes",
        crash.units_named - crash.first_write
    );
    assert!(
        crash.app_named < 60.0 + 60.0,
        "the application bag named it {:.1} s after the crash (lease 60 s)",
        crash.app_named
    );
    std::thread::sleep(Duration::from_secs(2));
    writer.stop();
    assert_no_acknowledged_row_lost(&world, new_primary, &writer, "crash");

    // The crashed machine comes back: a standby of the same cluster.
    world.restart_machine(&crashed_machine).unwrap();
    ha::wait_for_cluster(
        &mut world,
        &ha::primary_first(&units, new_primary),
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
    let partition = ha::fail_primary(&mut world, &watched, &writer, &cut, Fault::Partition);
    eprintln!("partition of {cut}: {partition:?}");
    let after_cut = partition.to.clone();
    assert!(
        !unit_is_writable(&world, &cut),
        "the cut-off primary still takes writes"
    );
    std::thread::sleep(Duration::from_secs(3));
    writer.stop();
    assert_no_acknowledged_row_lost(&world, &after_cut, &writer, "partition");
    world.heal_machine(&cut_machine).unwrap();
    ha::wait_for_cluster(
        &mut world,
        &ha::primary_first(&units, &after_cut),
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

    // 3b, when the leader is a standby now (else after the switchover).
    let mut leader_step_done =
        leader_change_moves_no_primary(&mut world, (&units, relation), new_primary);

    // 3. Switchover: refused to the asynchronous standby, done to the
    // synchronous one; the Juju leader stays where it was.
    let sync_standby = ha::agreed_sync_standby(&mut world, new_primary, &units);
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
    let leader_before = leader(&world);
    let endpoint_changes = endpoints_changed(&world);
    let mut writer = Writer::start(&consumer_host, &dir);
    let switchover = ha::switch_over(&mut world, &watched, &writer, (new_primary, &sync_standby));
    eprintln!("switchover to {sync_standby}: {switchover:?}");
    std::thread::sleep(Duration::from_secs(3));
    writer.stop();
    assert_eq!(primary_via(&mut world, &async_standby), sync_standby);
    assert_no_acknowledged_row_lost(&world, &sync_standby, &writer, "switchover");
    assert_eq!(
        leader(&world),
        leader_before,
        "the switchover moved the Juju leader"
    );
    database_consumer_follows(
        &mut world,
        modern,
        (&sync_standby, &units),
        endpoint_changes,
    );
    if !leader_step_done {
        leader_step_done =
            leader_change_moves_no_primary(&mut world, (&units, relation), &sync_standby);
    }
    assert!(
        leader_step_done,
        "the leader was the primary both before and after the switchover"
    );

    // 4. remove-unit of the primary: it hands over, then leaves.
    let leaving = sync_standby.clone();
    let remaining: Vec<String> = units.iter().filter(|u| **u != leaving).cloned().collect();
    let user_secret = world.bag(modern, "postgresql").unwrap()["secret-user"].clone();
    let mut writer = Writer::start(&consumer_host, &dir);
    eprintln!("removing {leaving} (leader: {})", leader(&world));
    world.remove_unit(&leaving).unwrap();
    world.settle().unwrap();
    // Its -broken hooks mean that it goes, not the relation: the
    // `database` consumer's credentials stay (even when it led).
    assert!(
        world.secret_latest(&user_secret).is_ok(),
        "the leaving unit removed the database relation's user secret"
    );
    assert!(
        world
            .secret_tracked_by(&user_secret, "modern/0")
            .unwrap()
            .is_some(),
        "the consumer no longer reads its credentials"
    );
    assert_eq!(
        world.bag(modern, "postgresql").unwrap()["secret-user"],
        user_secret
    );
    prober.set_targets(&world, &remaining);
    let after_removal = primary_via(&mut world, &remaining[0]);
    assert!(remaining.contains(&after_removal), "{after_removal}");
    let want = address(&world, &after_removal);
    wait_for_relation(
        &mut world,
        relation,
        (&remaining, &remaining),
        &want,
        &writer.host_file(),
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

    let rounds = prober.rounds();
    let violations = prober.violations();
    assert!(rounds > 20, "the prober ran ({rounds} rounds)");
    assert!(
        violations.is_empty(),
        "two writable servers at once: {violations:?}"
    );

    // 5. remove-application: every member leaves (etcd loses its quorum
    // on the way), and no hook fails, retries or hangs.
    prober.set_targets(&world, &[]);
    let before = world.trace().len();
    let started = Instant::now();
    world.remove_application("postgresql").unwrap();
    let removal: Vec<_> = world.trace()[before..]
        .iter()
        .filter(|r| r.invocation.unit.starts_with("postgresql/"))
        .collect();
    for record in &removal {
        assert!(
            record.result.succeeded(),
            "{} {} failed during remove-application: {}",
            record.invocation.unit,
            record.invocation.hook,
            record.result.output()
        );
        assert!(
            record.result.wall < Duration::from_secs(120),
            "{} {} took {:?}",
            record.invocation.unit,
            record.invocation.hook,
            record.result.wall
        );
    }
    let removed: Vec<&str> = removal
        .iter()
        .filter(|r| r.invocation.hook == "remove")
        .map(|r| r.invocation.unit.as_str())
        .collect();
    assert_eq!(removed.len(), remaining.len(), "{removed:?}");
    for unit in &remaining {
        assert!(world.machine_of(unit).is_err(), "{unit}'s machine is left");
    }
    eprintln!(
        "remove-application: {} hooks in {:.1} s",
        removal.len(),
        started.elapsed().as_secs_f64()
    );
    drop(watched);
    drop(consumer_host);
}

/// A `database` consumer (tests/consumer-database-v0, the data_interfaces
/// v0 library) on a machine of its own, related to `postgresql:database`
/// once the cluster formed; waits until its library handed it the
/// database; the relation's id.
fn relate_database_consumer(world: &mut World) -> u64 {
    world
        .deploy(
            "db",
            "modern",
            &scenarios::repo_root().join("tests/consumer-database-v0"),
            juju_emulator::DeployOptions {
                units: 1,
                config: [("database".to_string(), "inventory".to_string())].into(),
                machine: Some(juju_emulator::MachineSpec::default()),
                ..Default::default()
            },
        )
        .unwrap();
    let relation = world
        .integrate("postgresql:database", "modern:database")
        .unwrap();
    world.settle().unwrap();
    let events = database_consumer_events(world);
    assert!(
        events.iter().any(|e| e == "database_created"),
        "the database consumer got no database: {events:?} ({:?})",
        status(world, "modern/0")
    );
    relation
}

/// The events the `database` consumer's library raised, in order.
fn database_consumer_events(world: &World) -> Vec<String> {
    let path = world
        .unit("modern/0")
        .unwrap()
        .agent_dir
        .join("consumer-state.json");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    state["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// After a switchover to `primary`: the `database` relation's application
/// bag names it in `endpoints` and every other unit in
/// `read-only-endpoints`, and the consumer's library noticed.
fn database_consumer_follows(
    world: &mut World,
    relation: u64,
    (primary, units): (&str, &[String]),
    changes_before: usize,
) {
    let want = format!("{}:5432", address(world, primary));
    let mut standbys: Vec<String> = units
        .iter()
        .filter(|u| *u != primary)
        .map(|u| format!("{}:5432", address(world, u)))
        .collect();
    standbys.sort();
    let published = |w: &World| {
        let bag = w.bag(relation, "postgresql")?;
        let mut read_only: Vec<String> = bag
            .get("read-only-endpoints")?
            .split(',')
            .map(str::to_string)
            .collect();
        read_only.sort();
        Some((bag.get("endpoints")?.clone(), read_only))
    };
    world
        .run_until(Duration::from_secs(120), |w| {
            published(w) == Some((want.clone(), standbys.clone()))
        })
        .unwrap_or_else(|e| {
            panic!(
                "the database relation did not name {want} (read-only {standbys:?}): {:?}: {e:#}",
                published(world)
            )
        });
    world.settle().unwrap();
    let changes_after = endpoints_changed(world);
    assert!(
        changes_after > changes_before,
        "the consumer's library raised no endpoints_changed ({changes_before} before)"
    );
}

/// How many times the consumer's library raised `endpoints_changed`.
fn endpoints_changed(world: &World) -> usize {
    database_consumer_events(world)
        .iter()
        .filter(|e| *e == "endpoints_changed")
        .count()
}

fn leader(world: &World) -> String {
    world.app("postgresql").unwrap().leader.clone().unwrap()
}

/// When the Juju leader is a standby of `primary`: cuts its machine off
/// until Juju elects another leader (a short lease), and checks that the
/// primary did not move, that no two servers were writable, and that the
/// new leader's application bag names the primary; then heals the old
/// leader's machine and waits for it to follow again. Returns false (and
/// does nothing) when the leader is the primary.
fn leader_change_moves_no_primary(
    world: &mut World,
    (units, relation): (&[String], u64),
    primary: &str,
) -> bool {
    let old_leader = leader(world);
    if old_leader == primary {
        return false;
    }
    let machine = world.machine_of(&old_leader).unwrap().id.clone();
    let others: Vec<String> = units
        .iter()
        .filter(|u| **u != old_leader)
        .cloned()
        .collect();
    world.set_leadership_lease(Duration::from_secs(15));
    world.partition_machine(&machine).unwrap();
    world
        .run_until(Duration::from_secs(120), |w| leader(w) != old_leader)
        .unwrap_or_else(|e| panic!("no new leader after {old_leader} was cut off: {e:#}"));
    let new_leader = leader(world);
    eprintln!("leader {old_leader} cut off: {new_leader} leads, {primary} still primary");
    // The new leader's hooks (leader-elected, the peers' departure of
    // nothing) have run; Patroni is asked from a unit still connected.
    world.settle().unwrap();
    for unit in &others {
        assert_eq!(
            primary_via(world, unit),
            primary,
            "the leader change moved the primary (asked {unit})"
        );
    }
    assert!(
        unit_is_writable(world, primary),
        "{primary} stopped taking writes"
    );
    let want = address(world, primary);
    assert_eq!(
        ha::master_in(world, relation, ha::APP).unwrap_or_default(),
        want,
        "the new leader's application bag does not name the primary"
    );
    world.heal_machine(&machine).unwrap();
    world.set_leadership_lease(juju_emulator::LEADERSHIP_LEASE);
    ha::wait_for_cluster(
        world,
        &ha::primary_first(units, primary),
        primary,
        Duration::from_secs(300),
    );
    assert_eq!(leader(world), new_leader, "leadership moved back on heal");
    true
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
