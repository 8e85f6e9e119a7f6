//! Benchmark (issue 12): how long a consumer waits when the primary goes,
//! with each `failover-profile`. On one three-unit cluster formed by the
//! packed charm's own hooks, with a `db` consumer writing from a host of
//! its own (`scenarios::ha::Writer`: numbered rows in autocommit, one
//! connection each, to whatever master the relation names) and a prober
//! inside every machine (`scenarios::ha::Prober`), each round, for each
//! profile (the order alternates between rounds):
//!
//! * **crash**: every process of the primary's machine killed at once; the
//!   synchronous standby takes over; then the machine restarts and its
//!   member rejoins (pg_rewind) before the next run;
//! * **switchover**: the `switchover` action to the synchronous standby.
//!
//! Measured from the crash (or the action's start): when the prober first
//! saw the new primary's server take writes, the writer's first
//! acknowledged row there, when every live unit's bag and the application
//! bag named it; the rows refused in between; acknowledged rows missing on
//! the new primary (must be 0); whether two servers were ever writable.
//!
//! Usage: `bench-failover [runs]` (default 5 per profile and event), as
//! root, with the packed charm (`PG_CHARM_FILE` or `build/postgresql.charm`).
//! stdout: a Markdown report. stderr: progress.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use juju_emulator::World;
use scenarios::ha::{self, Failover, Fault, Watched, Writer, APP};
use scenarios::netns::Netns;

const PROFILES: [&str; 2] = ["default", "fast"];

/// Patroni's `ttl` in each profile (`src/ha/options.rs`).
fn ttl_of(profile: &str) -> u64 {
    let timing = match profile {
        "fast" => postgresql_charm::ha::options::TimingProfile::FAST,
        _ => postgresql_charm::ha::options::TimingProfile::DEFAULT,
    };
    timing.ttl.into()
}

/// One measured run.
struct Run {
    profile: &'static str,
    event: &'static str,
    failover: Failover,
    /// Acknowledged rows (so far, all runs) missing on the new primary.
    missing: usize,
}

fn main() -> Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(Ok(5), |a| a.parse())
        .context("runs")?;
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) != 0 {
        bail!("run as root (emulated machines)");
    }
    let started = Instant::now();
    let mut loads = vec![load_average()];
    let scratch = scenarios::Scratch::new("bench-failover")?;
    let mut world = ha::world(&scratch.0.join("world"), "bfo")?;
    let consumer_host = Netns::on_machine_network(&mut world, "bench-failover");
    let charm = scenarios::packed_charm()?;
    eprintln!("forming the cluster: {APP} alone, the consumer, add-unit twice");
    let (units, relation) = ha::three_units_with_consumer(
        &mut world,
        &charm,
        &[("failover-profile", PROFILES[0])],
        &consumer_host,
    );
    let dir = scratch.0.join("writer");
    let watched = Watched::start(&world, (&consumer_host, &dir), &units, relation);
    let prober = &watched.prober;
    let mut primary = units[0].clone();
    let mut results: Vec<Run> = Vec::new();
    for round in 0..runs {
        for i in 0..PROFILES.len() {
            let profile = PROFILES[(round + i) % PROFILES.len()];
            set_profile(&mut world, &primary, profile)?;
            loads.push(load_average());

            eprintln!("round {round}, {profile}: crash of {primary}");
            let mut writer = Writer::start(&consumer_host, &dir);
            let crashed_machine = world.machine_of(&primary)?.id.clone();
            let failover = ha::fail_primary(&mut world, &watched, &writer, &primary, Fault::Crash);
            std::thread::sleep(Duration::from_secs(1));
            writer.stop();
            let missing = missing_on(&world, &failover.to, &writer)?;
            eprintln!("  {}", line(&failover, missing));
            primary = failover.to.clone();
            results.push(Run {
                profile,
                event: "crash",
                failover,
                missing,
            });
            world.restart_machine(&crashed_machine)?;
            ha::wait_for_cluster(
                &mut world,
                &ha::primary_first(&units, &primary),
                &primary,
                Duration::from_secs(600),
            );
            prober.set_targets(&world, &units);

            let candidate = wait_for_sync_standby(&mut world, &primary, &units)?;
            eprintln!("round {round}, {profile}: switchover {primary} → {candidate}");
            let mut writer = Writer::start(&consumer_host, &dir);
            let failover = ha::switch_over(&mut world, &watched, &writer, (&primary, &candidate));
            std::thread::sleep(Duration::from_secs(1));
            writer.stop();
            let missing = missing_on(&world, &candidate, &writer)?;
            eprintln!("  {}", line(&failover, missing));
            primary = candidate;
            results.push(Run {
                profile,
                event: "switchover",
                failover,
                missing,
            });
            ha::wait_for_cluster(
                &mut world,
                &ha::primary_first(&units, &primary),
                &primary,
                Duration::from_secs(300),
            );
        }
    }
    loads.push(load_average());
    let violations = prober.violations();
    report(runs, &results, &violations, &loads, started.elapsed());
    Ok(())
}

/// `failover-profile=profile`, as an operator sets it; serves the hooks
/// until Patroni's dynamic configuration (read from the primary's REST
/// API) has that profile's `ttl`.
fn set_profile(world: &mut World, primary: &str, profile: &str) -> Result<()> {
    world.set_config(APP, &[("failover-profile", profile)])?;
    world.settle()?;
    let api = ha::rest_api(world, primary);
    let want = ttl_of(profile);
    let mut seen = None;
    let applied = world.run_until(Duration::from_secs(60), |_| {
        seen = api.config().ok().and_then(|c| c["ttl"].as_u64());
        seen == Some(want)
    });
    if applied.is_err() {
        bail!("failover-profile={profile}: Patroni's ttl is {seen:?}, not {want}");
    }
    Ok(())
}

/// The primary's synchronous standby, once it has one again (after a
/// rejoin or a switchover, Patroni picks it within a loop or two).
fn wait_for_sync_standby(world: &mut World, primary: &str, units: &[String]) -> Result<String> {
    let mut found = None;
    let mut last = String::new();
    let shown = world.run_until(Duration::from_secs(120), |w| {
        match ha::sync_standby(w, primary, units) {
            Ok(unit) => found = Some(unit),
            Err(e) => last = e,
        }
        found.is_some()
    });
    if shown.is_err() {
        bail!("{last}");
    }
    // The one Patroni names too, as the switchover action checks.
    Ok(ha::agreed_sync_standby(world, primary, units))
}

fn missing_on(world: &World, unit: &str, writer: &Writer) -> Result<usize> {
    let (_, missing) =
        ha::acknowledged_rows_missing(world, unit, writer).map_err(|e| anyhow::anyhow!(e))?;
    Ok(missing.len())
}

fn line(f: &Failover, missing: usize) -> String {
    format!(
        "{} → {}: server writable {}, first write {:.1} s, unit bags {:.1} s, app bag {:.1} s{}, \
         {} refused, {missing} acknowledged rows missing",
        f.from,
        f.to,
        f.server_writable
            .map_or("?".to_string(), |t| format!("{t:.1} s")),
        f.first_write,
        f.units_named,
        f.app_named,
        if f.leader_lost {
            " (the leader crashed)"
        } else {
            ""
        },
        f.refused
    )
}

/// The 1-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn cell(values: &[f64]) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    format!("{:.1} / {max:.1}", median(&mut values.to_vec()))
}

fn report(runs: usize, results: &[Run], violations: &[String], loads: &[f64], took: Duration) {
    let (low, high) = loads
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
    println!(
        "`bench/failover {runs}`: one three-unit cluster (etcd 3.4, Patroni 3.2.2, one \
         synchronous standby), {runs} runs of each event per profile, profiles alternated \
         within each round; took {:.0} min; host 1-minute load average {low:.1}–{high:.1}.\n",
        took.as_secs_f64() / 60.0
    );
    println!(
        "| profile | event | server writable (s) | first acknowledged write (s) | unit bags name it (s) \
         | app bag names it (s) | writes refused | acknowledged rows lost |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for profile in PROFILES {
        for event in ["crash", "switchover"] {
            let of: Vec<&Run> = results
                .iter()
                .filter(|r| r.profile == profile && r.event == event)
                .collect();
            let pick = |f: fn(&Failover) -> Option<f64>| -> Vec<f64> {
                of.iter().filter_map(|r| f(&r.failover)).collect()
            };
            let refused: Vec<f64> = of.iter().map(|r| r.failover.refused as f64).collect();
            let lost: usize = of.iter().map(|r| r.missing).max().unwrap_or(0);
            println!(
                "| {profile} | {event} | {} | {} | {} | {} | {} | {lost} |",
                cell(&pick(|f| f.server_writable)),
                cell(&pick(|f| Some(f.first_write))),
                cell(&pick(|f| Some(f.units_named))),
                cell(&pick(|f| Some(f.app_named))),
                cell(&refused),
            );
        }
    }
    println!("\nCells are median / max. Every run:\n");
    println!("| profile | event | from → to | writable | first write | unit bags | app bag | refused | lost |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let f = &r.failover;
        println!(
            "| {} | {} | {} → {} | {} | {:.1} | {:.1} | {:.1}{} | {} | {} |",
            r.profile,
            r.event,
            f.from,
            f.to,
            f.server_writable.map_or("?".into(), |t| format!("{t:.1}")),
            f.first_write,
            f.units_named,
            f.app_named,
            if f.leader_lost {
                " (leader crashed)"
            } else {
                ""
            },
            f.refused,
            r.missing
        );
    }
    println!(
        "\nTwo servers writable at once: {}.",
        if violations.is_empty() {
            "never".to_string()
        } else {
            format!("{violations:?}")
        }
    );
}
