//! Per-hook overhead of the packed Rust charm against a minimal Python ops
//! charm doing the same no-op, side by side in one run under the emulator.
//!
//! Usage: bench-hooks <packed .charm> <ops charm dir> [iterations]
//! (bench/hook-overhead prepares both and runs this.)

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use juju_emulator::runner::ProcessResult;
use juju_emulator::{DeployOptions, World};
use scenarios::{PrivateCluster, Scratch};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        bail!("usage: bench-hooks <packed .charm> <ops charm dir> [iterations]");
    }
    let rust_charm = PathBuf::from(&args[1]);
    let ops_charm = PathBuf::from(&args[2]);
    let iterations: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(30);

    let scratch = Scratch::new("bench-hooks")?;
    let cluster = PrivateCluster::new("benchhooks", 5449);
    let mut world = World::new(&scratch.0)?;
    world.extend_test_env(cluster.env());
    world.add_model("bench");
    world.deploy("bench", "postgresql", &rust_charm, DeployOptions::default())?;
    world.deploy("bench", "ops-noop", &ops_charm, DeployOptions::default())?;
    world.settle().context("deploying both charms")?;
    let status = &world.unit("postgresql/0")?.status;
    if status.status != "active" {
        bail!(
            "postgresql/0 is {} ({}), not active",
            status.status,
            status.message
        );
    }

    let mut samples: Vec<(&str, &str, Vec<ProcessResult>)> = Vec::new();
    for hook in ["update-status", "config-changed"] {
        for unit in ["postgresql/0", "ops-noop/0"] {
            samples.push((unit, hook, Vec::new()));
        }
    }
    // Interleave the four series so drift in machine load hits all alike.
    for _ in 0..iterations {
        for (unit, hook, runs) in samples.iter_mut() {
            let result = world.run_hook(unit, hook)?;
            if !result.succeeded() {
                bail!("{hook} failed on {unit}: {}", result.output());
            }
            runs.push(result);
        }
    }
    println!("| charm | hook | median wall | p90 wall | peak RSS |");
    println!("|---|---|---|---|---|");
    for (unit, hook, runs) in &samples {
        let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
        walls.sort();
        let rss = runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0);
        println!(
            "| {} | {hook} | {:.2} ms | {:.2} ms | {:.1} MiB |",
            if unit.starts_with("ops") {
                "Python ops (ops-noop)"
            } else {
                "Rust (pg-charm)"
            },
            ms(walls[walls.len() / 2]),
            ms(walls[walls.len() * 9 / 10]),
            rss as f64 / 1024.0
        );
    }
    for hook in ["update-status", "config-changed"] {
        let median = |unit: &str| {
            let runs = &samples
                .iter()
                .find(|s| s.0 == unit && s.1 == hook)
                .unwrap()
                .2;
            let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
            walls.sort();
            walls[walls.len() / 2]
        };
        let ratio = ms(median("ops-noop/0")) / ms(median("postgresql/0"));
        println!("\n{hook}: the Rust charm is {ratio:.0}x faster than the ops charm (median, {iterations} runs each)");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
