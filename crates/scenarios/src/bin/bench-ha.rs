//! Benchmark (issue 11): pgbench TPC-B on a standalone server vs the primary
//! of three units replicating asynchronously vs synchronously (one
//! synchronous standby), in the same run, alternated within each round;
//! replication lag during the runs (bytes and seconds, p50/p99); and the time
//! a new unit takes to join a cluster holding data, against the copy rate of
//! the disk it lands on.
//!
//! Usage: `bench-ha [rounds] [seconds]` (default 3 rounds of 30 s per
//! configuration), as root, with the packed charm (`PG_CHARM_FILE` or
//! `build/postgresql.charm`). `SCALE` (default 20) is the pgbench scale of
//! the measured runs, `JOIN_SCALES` (default `70`, ≈ 1 GB; `70,340` adds
//! ≈ 5 GB) the data the joiner clones.
//!
//! The cluster is formed by the charm's own hooks, as an operator gets it:
//! `postgresql` is deployed alone, then `add-unit` twice (the leader founds
//! etcd and hands its server to Patroni, the new units clone it). The
//! standalone server is a second application, `pgsolo`, of the same charm
//! with one unit on its own machine. Asynchronous vs synchronous is the
//! `synchronous-node-count` config ("0" / "1"). Everything runs inside
//! the emulated machines and goes with the World when the benchmark ends.
//!
//! stdout: a Markdown report. stderr: progress.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use juju_emulator::World;
use scenarios::ha::{self, APP};

/// The standalone application.
const SOLO: &str = "pgsolo";
/// How long the hooks get to form the cluster, switch modes, join a unit.
const FORM_LIMIT: Duration = Duration::from_secs(600);
const MODE_LIMIT: Duration = Duration::from_secs(180);
const JOIN_LIMIT: Duration = Duration::from_secs(1800);

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse()).context("rounds")?;
    let seconds: u64 = args
        .next()
        .map_or(Ok(30), |a| a.parse())
        .context("seconds")?;
    let scale: u32 = env_or("SCALE", 20)?;
    let join_scales: Vec<u32> = std::env::var("JOIN_SCALES")
        .unwrap_or_else(|_| "70".into())
        .split(',')
        .map(|s| s.trim().parse().context("JOIN_SCALES"))
        .collect::<Result<_>>()?;
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) != 0 {
        bail!("run as root (emulated machines)");
    }
    let scratch = scenarios::Scratch::new("bench-ha")?;
    let mut world = ha::world(&scratch.0.join("world"), "bha")?;
    let charm = scenarios::packed_charm()?;
    let profile = [("failover-profile", "fast")];

    eprintln!("deploying {SOLO} (standalone) and {APP}, one unit each");
    let standalone = ha::deploy_one(&mut world, SOLO, &charm, &profile);
    let primary = ha::deploy_standalone(&mut world, &charm, &profile);
    eprintln!("add-unit {APP} twice: the hooks form the cluster");
    let mut members = vec![primary.clone()];
    members.extend(ha::add_units(&mut world, 2));
    ha::wait_for_cluster(&mut world, &members, &primary, FORM_LIMIT);
    for unit in [&primary, &standalone] {
        pgbench(
            &world,
            unit,
            &["-i", "-q", "-s", &scale.to_string(), "postgres"],
        )?;
    }

    // Configurations, alternated: ABC, BCA, CAB, ...
    let configs = ["standalone", "async", "sync"];
    let mut tps: Vec<(String, f64)> = Vec::new();
    let mut lag: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for round in 0..rounds {
        for i in 0..configs.len() {
            let config = configs[(round + i) % configs.len()];
            let unit = match config {
                "standalone" => &standalone,
                mode => {
                    set_mode(&mut world, &primary, members.len() - 1, mode == "sync")?;
                    &primary
                }
            };
            eprintln!("round {round}: {config}, {seconds} s");
            psql(&world, unit, "VACUUM")?;
            psql(&world, unit, "CHECKPOINT")?;
            let (result, samples) =
                run_sampling(&world, unit, &primary, config != "standalone", seconds)?;
            tps.push((config.into(), result));
            if config != "standalone" {
                lag.push((config.into(), samples));
            }
        }
    }

    // Joins: a new unit (new machine) clones a cluster holding more data,
    // replicating as configured by default (one synchronous standby).
    let mut joins = Vec::new();
    for join_scale in join_scales {
        set_mode(&mut world, &primary, members.len() - 1, true)?;
        pgbench(
            &world,
            &primary,
            &["-i", "-q", "-s", &join_scale.to_string(), "postgres"],
        )?;
        psql(&world, &primary, "CHECKPOINT")?;
        let size = psql(&world, &primary, "SELECT pg_database_size('postgres')")?;
        let size: u64 = size.parse().context("database size")?;
        eprintln!("add-unit {APP}: joining a cluster holding {size} bytes");
        let started = Instant::now();
        let unit = ha::add_units(&mut world, 1).remove(0);
        wait_for_join(&mut world, &primary, &unit)?;
        let seconds = started.elapsed().as_secs_f64();
        members.push(unit.clone());
        let copy_rate = copy_rate(&world, &unit, size)?;
        joins.push((size, seconds, copy_rate));
    }

    report(rounds, seconds, scale, &tps, &lag, &joins);
    Ok(())
}

fn env_or(name: &str, default: u32) -> Result<u32> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| name.to_string()),
        Err(_) => Ok(default),
    }
}

fn psql(world: &World, unit: &str, sql: &str) -> Result<String> {
    ha::psql(world, unit, sql).map_err(|e| anyhow::anyhow!("{unit}: {e}"))
}

fn pgbench(world: &World, unit: &str, args: &[&str]) -> Result<String> {
    let major = ha::installed_major().to_string();
    let program = format!("/usr/lib/postgresql/{major}/bin/pgbench");
    let mut full = vec![
        "-u",
        "postgres",
        "--",
        program.as_str(),
        "-h",
        "/var/run/postgresql",
        "-p",
        "5432",
    ];
    full.extend(args);
    let out = world.machine_of(unit)?.run("runuser", &full)?;
    if !out.status.success() {
        bail!(
            "pgbench on {unit}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `synchronous-node-count` "1" (one synchronous standby) or "0"
/// (asynchronous), as an operator sets it; serves the hooks (the leader
/// writes it to the DCS) until the primary's `pg_stat_replication` shows
/// `standbys` streaming standbys in that mode.
fn set_mode(world: &mut World, primary: &str, standbys: usize, sync: bool) -> Result<()> {
    let count = if sync { "1" } else { "0" };
    world.set_config(APP, &[("synchronous-node-count", count)])?;
    world.settle()?;
    let query = "SELECT coalesce(string_agg(sync_state, ',' ORDER BY sync_state), '') \
                 FROM pg_stat_replication WHERE state = 'streaming'";
    let mut last = String::new();
    let shown = world.run_until(MODE_LIMIT, |w| {
        let Ok(states) = ha::psql(w, primary, query) else {
            return false;
        };
        let states: Vec<String> = states.split(',').map(str::to_string).collect();
        let shows = states.len() == standbys
            && if sync {
                states.iter().any(|s| s == "sync")
            } else {
                states.iter().all(|s| s == "async")
            };
        last = states.join(",");
        shows
    });
    if shown.is_err() {
        bail!(
            "synchronous-node-count={count}: {primary}'s pg_stat_replication still shows \
             [{last}] after {MODE_LIMIT:?}"
        );
    }
    Ok(())
}

/// Serves the hooks (with `update-status` every 5 s) until `unit` says it
/// is a standby of `primary` and `primary` streams to it.
fn wait_for_join(world: &mut World, primary: &str, unit: &str) -> Result<()> {
    let follows = format!("standby of {primary}");
    let query = format!(
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' \
         AND application_name = '{}'",
        postgresql_charm::ha::member_name(unit)
    );
    world.set_update_status_interval(Some(Duration::from_secs(5)));
    let joined = world.run_until(JOIN_LIMIT, |w| {
        let (state, message) = ha::status(w, unit);
        state == "active"
            && message.contains(&follows)
            && ha::psql(w, primary, &query).is_ok_and(|n| n == "1")
    });
    world.set_update_status_interval(None);
    if let Err(e) = joined {
        let (state, message) = ha::status(world, unit);
        bail!(
            "{unit} did not join as a streaming standby of {primary} ({state}: {message}): \
             {e:#}\n{}",
            ha::service_logs(world, unit)
        );
    }
    Ok(())
}

/// pgbench TPC-B (prepared, 8 clients) on `unit` for `seconds`, sampling
/// the standbys' lag on `primary` every 0.5 s meanwhile.
fn run_sampling(
    world: &World,
    unit: &str,
    primary: &str,
    sample: bool,
    seconds: u64,
) -> Result<(f64, Vec<(f64, f64)>)> {
    let major = ha::installed_major();
    let program = format!("/usr/lib/postgresql/{major}/bin/pgbench");
    let child = world
        .machine_of(unit)?
        .command("runuser")?
        .args([
            "-u",
            "postgres",
            "--",
            &program,
            "-h",
            "/var/run/postgresql",
            "-p",
            "5432",
        ])
        .args([
            "-M",
            "prepared",
            "-c",
            "8",
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "postgres",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut child = child;
    let mut samples = Vec::new();
    while child.try_wait()?.is_none() {
        if sample {
            let row = psql(
                world,
                primary,
                "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0) || ' ' || \
                        coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication",
            )?;
            if let Some((bytes, secs)) = row.split_once(' ') {
                samples.push((bytes.parse().unwrap_or(0.0), secs.parse().unwrap_or(0.0)));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {text}"))?;
    Ok((tps, samples))
}

/// Bytes per second `cp` copies on the joiner's data file system (a file of
/// `size` bytes, written and read through the page cache as a clone does).
fn copy_rate(world: &World, unit: &str, size: u64) -> Result<f64> {
    let mib = size.div_ceil(1 << 20).max(1);
    let script = format!(
        "set -e; d=/var/lib/postgresql/bench-copy; mkdir -p $d; \
         dd if=/dev/urandom of=$d/a bs=1M count={mib} status=none; sync; \
         s=$(date +%s.%N); cp $d/a $d/b; sync; e=$(date +%s.%N); rm -rf $d; echo \"$s $e\""
    );
    let out = world.machine_of(unit)?.run("sh", &["-c", &script])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (s, e) = text.trim().split_once(' ').context("copy timing")?;
    let elapsed: f64 = e.parse::<f64>()? - s.parse::<f64>()?;
    Ok((mib << 20) as f64 / elapsed)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((values.len() - 1) as f64 * p).round() as usize;
    values[i]
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    percentile(&mut v, 0.5)
}

fn report(
    rounds: usize,
    seconds: u64,
    scale: u32,
    tps: &[(String, f64)],
    lag: &[(String, Vec<(f64, f64)>)],
    joins: &[(u64, f64, f64)],
) {
    let joins_scales = std::env::var("JOIN_SCALES").unwrap_or_else(|_| "70".into());
    println!(
        "pgbench TPC-B, -M prepared -c 8 -j 2, scale {scale}, {rounds} rounds of {seconds} s per \
         configuration, alternated (`SCALE={scale} JOIN_SCALES={joins_scales} bench/ha {rounds} \
         {seconds}`)\n"
    );
    println!("| configuration | median TPS | runs | lag p50 / p99 (bytes) | lag p50 / p99 (s) |");
    println!("|---|---|---|---|---|");
    for (config, label) in [
        ("standalone", "standalone (`pgsolo`)"),
        ("async", "three units, asynchronous"),
        ("sync", "three units, synchronous"),
    ] {
        let runs: Vec<f64> = tps
            .iter()
            .filter(|(c, _)| c == config)
            .map(|(_, t)| *t)
            .collect();
        let samples: Vec<(f64, f64)> = lag
            .iter()
            .filter(|(c, _)| c == config)
            .flat_map(|(_, s)| s.clone())
            .collect();
        let mut bytes: Vec<f64> = samples.iter().map(|s| s.0).collect();
        let mut secs: Vec<f64> = samples.iter().map(|s| s.1).collect();
        let lag_cells = if samples.is_empty() {
            "– | –".to_string()
        } else {
            format!(
                "{:.0} / {:.0} | {:.3} / {:.3}",
                percentile(&mut bytes, 0.5),
                percentile(&mut bytes, 0.99),
                percentile(&mut secs, 0.5),
                percentile(&mut secs, 0.99)
            )
        };
        println!(
            "| {label} | {:.0} | {} | {lag_cells} |",
            median(&runs),
            runs.iter()
                .map(|t| format!("{t:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("\n| data cloned | join time (add-unit to streaming) | disk copy rate | time at copy rate |");
    println!("|---|---|---|---|");
    for (size, seconds, rate) in joins {
        println!(
            "| {:.2} GB | {seconds:.1} s | {:.0} MB/s | {:.1} s |",
            *size as f64 / 1e9,
            rate / 1e6,
            *size as f64 / rate
        );
    }
}
