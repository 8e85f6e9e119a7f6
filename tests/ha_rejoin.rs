//! Root tier (issue 12, item 4): a crashed primary that cannot be rewound
//! is re-cloned, and its diverged data is kept aside, never deleted.
//!
//! Three emulated machines run the packed charm (the `fast` profile). The
//! primary's machine crashes; a synchronous standby takes over and takes
//! more writes. Before the crashed machine's hooks run again, someone
//! starts its server by hand, outside Patroni, as a primary: it writes a
//! table the cluster never sees (its data forks off the new primary's
//! timeline) and, with no slot, no `wal_keep_size` and no archive keeping
//! it, its checkpoints recycle the WAL from before the fork that `pg_rewind`
//! needs. Then the machine's hooks run: Patroni's rewind fails, the charm
//! says so in the status, waits its grace, renames the data directory aside
//! and lets Patroni clone. The unit ends a streaming standby of the same
//! cluster with the primary's rows and without the diverged table, the
//! diverged directory (with that table's data) is still on its disk, the
//! status and the log say where, and every hook exits 0.

use std::time::{Duration, Instant};

use juju_emulator::World;
use scenarios::ha::{self, status};

/// Runs `script` as postgres inside `unit`'s machine; its stdout.
fn as_postgres(world: &World, unit: &str, script: &str) -> String {
    let out = world
        .machine_of(unit)
        .unwrap()
        .run("runuser", &["-u", "postgres", "--", "sh", "-ec", script])
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn primary_among(world: &World, units: &[String]) -> Option<String> {
    units
        .iter()
        .find(|u| ha::psql(world, u, "SELECT pg_is_in_recovery()").as_deref() == Ok("f"))
        .cloned()
}

#[test]
fn a_primary_that_cannot_be_rewound_is_recloned_and_its_data_kept_aside() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "needs root (emulated machines)"
    );
    let scratch = scenarios::Scratch::new("ha-rejoin").unwrap();
    let mut world = ha::world(&scratch.0.join("world"), "har").unwrap();
    let cluster = format!("har{}", std::process::id() % 100_000);
    let major = ha::installed_major();
    let charm = scenarios::packed_charm().unwrap();
    let first = ha::deploy_standalone(&mut world, &charm, &[("failover-profile", "fast")]);
    let mut units = vec![first.clone()];
    units.extend(ha::add_units(&mut world, 2));
    ha::wait_for_cluster(&mut world, &units, &first, Duration::from_secs(420));
    world.settle().unwrap();
    let sysid_sql = "SELECT system_identifier FROM pg_control_system()";
    let sysid = ha::psql(&world, &first, sysid_sql).unwrap();
    ha::psql(
        &world,
        &first,
        "CREATE TABLE kept (n int PRIMARY KEY); INSERT INTO kept SELECT generate_series(1, 100)",
    )
    .unwrap();

    // The primary's machine crashes; a survivor takes over and writes on.
    let crashed_machine = world.machine_of(&first).unwrap().id.clone();
    world.crash_machine(&crashed_machine).unwrap();
    let survivors: Vec<String> = units[1..].to_vec();
    let mut promoted = None;
    world
        .run_until(Duration::from_secs(120), |w| {
            promoted = primary_among(w, &survivors);
            promoted.is_some()
        })
        .expect("a survivor takes over");
    let primary = promoted.unwrap();
    ha::psql(
        &world,
        &primary,
        "INSERT INTO kept SELECT generate_series(101, 200)",
    )
    .unwrap();

    // The machine boots; before its hooks run, its server is started by
    // hand as a primary and writes past the fork, recycling the WAL
    // pg_rewind would need.
    world.restart_machine(&crashed_machine).unwrap();
    let hooks_from = world.trace().len();
    let data_dir = format!("/var/lib/postgresql/{major}/{cluster}");
    let conf = format!("/etc/postgresql/{major}/{cluster}/postgresql.conf");
    let bin = format!("/usr/lib/postgresql/{major}/bin");
    let by_hand = format!(
        "{bin}/pg_ctl -D {data_dir} -w -t 120 -l /tmp/by-hand.log -o \"-c config_file={conf} \
           -c port=5999 -c listen_addresses='' -c unix_socket_directories=/tmp \
           -c archive_mode=off -c wal_keep_size=0 -c synchronous_standby_names=''\" start
         sql() {{ psql -X -q -A -t -v ON_ERROR_STOP=1 -h /tmp -p 5999 -d postgres -c \"$1\"; }}
         sql \"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots\"
         sql \"CREATE TABLE written_after_the_fork AS SELECT generate_series(1, 50000) AS n\"
         for i in 1 2 3 4; do
           sql \"INSERT INTO written_after_the_fork SELECT generate_series(1, 20000)\"
           sql \"SELECT pg_switch_wal()\"
           sql CHECKPOINT
         done
         {bin}/pg_ctl -D {data_dir} -w -m fast stop"
    );
    as_postgres(&world, &first, &by_hand);
    let oldest_segment = as_postgres(&world, &first, &format!("ls {data_dir}/pg_wal | head -n 1"));
    eprintln!("written past the fork by hand; oldest WAL segment left: {oldest_segment}");

    // Its hooks run: the status says it cannot follow and will be re-cloned.
    world.set_update_status_interval(Some(Duration::from_secs(5)));
    let mut said_waiting = None;
    world
        .run_until(Duration::from_secs(300), |w| {
            let (state, message) = status(w, &first);
            if state == "waiting" && message.contains("pg_rewind did not rewind it") {
                said_waiting.get_or_insert(message.clone());
            }
            message.contains("diverged data is kept at")
        })
        .unwrap_or_else(|e| {
            panic!(
                "not re-cloned: {e:#}; status {:?}\n{}",
                status(&world, &first),
                ha::service_logs(&world, &first)
            )
        });
    let said_waiting = said_waiting.expect("the status said it waits for pg_rewind first");
    eprintln!("status before the re-clone: {said_waiting}");
    assert!(said_waiting.contains(" on timeline "), "{said_waiting}");
    ha::wait_for_cluster(
        &mut world,
        &ha::primary_first(&units, &primary),
        &primary,
        Duration::from_secs(300),
    );

    // A standby of the same cluster, with the primary's rows only.
    assert_eq!(
        ha::psql(&world, &first, "SELECT pg_is_in_recovery()").unwrap(),
        "t"
    );
    assert_eq!(ha::psql(&world, &first, sysid_sql).unwrap(), sysid);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ha::psql(&world, &first, "SELECT count(*) FROM kept").as_deref() != Ok("200") {
        assert!(
            Instant::now() < deadline,
            "the re-cloned standby lacks rows"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        ha::psql(
            &world,
            &first,
            "SELECT to_regclass('written_after_the_fork') IS NULL"
        )
        .unwrap(),
        "t",
        "the clone has the diverged table"
    );

    // The diverged directory is kept, with the diverged table's files.
    let (_, message) = status(&world, &first);
    let aside = message
        .split("diverged data is kept at ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .expect("the status names the kept directory")
        .to_string();
    assert!(
        aside.starts_with(&format!("{data_dir}.diverged-")),
        "{message}"
    );
    let listed = as_postgres(
        &world,
        &first,
        &format!("test -f {aside}/PG_VERSION && du -sm {aside}/base | cut -f1"),
    );
    let megabytes: u64 = listed.parse().unwrap();
    assert!(megabytes >= 8, "{aside}/base holds {megabytes} MB");
    // It was re-cloned because pg_rewind failed, not for want of trying.
    let rewind_log = world
        .machine_of(&first)
        .unwrap()
        .run(
            "sh",
            &["-c", "grep -h -i 'rewind' /var/log/juju-pg-charm/* || true"],
        )
        .unwrap();
    let rewind_log = String::from_utf8_lossy(&rewind_log.stdout);
    assert!(
        rewind_log.contains("running pg_rewind from") && rewind_log.contains("Failed to rewind"),
        "Patroni's log says nothing of a failed pg_rewind:\n{rewind_log}"
    );
    let logged = world
        .logs()
        .iter()
        .any(|l| l.unit == first && l.message.contains("Patroni clones this unit"));
    assert!(logged, "juju-log says the unit is re-cloned");

    // Every hook since the restart exited 0.
    let failed: Vec<String> = world.trace()[hooks_from..]
        .iter()
        .filter(|r| !r.succeeded())
        .map(|r| format!("{} {}", r.invocation.unit, r.invocation.hook))
        .collect();
    assert!(failed.is_empty(), "hooks failed: {failed:?}");
}
