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

    // 3. Switchover: refused to the asynchronous standby, done to the
    // synchronous one.
    let sync_standby = ha::sync_standby(&world, new_primary, &units).unwrap();
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
    let switchover = ha::switch_over(&mut world, &watched, &writer, (new_primary, &sync_standby));
    eprintln!("switchover to {sync_standby}: {switchover:?}");
    std::thread::sleep(Duration::from_secs(3));
    writer.stop();
    assert_eq!(primary_via(&mut world, &async_standby), sync_standby);
    assert_no_acknowledged_row_lost(&world, &sync_standby, &writer, "switchover");

    // 4. remove-unit of the primary: it hands over, then leaves.
    let leaving = sync_standby.clone();
    let remaining: Vec<String> = units.iter().filter(|u| **u != leaving).cloned().collect();
    let mut writer = Writer::start(&consumer_host, &dir);
    world.remove_unit(&leaving).unwrap();
    world.settle().unwrap();
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
    drop(watched);
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
