//! Deploy benchmark: time from `pgdata-storage-attached` to `active` on a
//! fresh ext4 loop-device disk (packages already installed, so no download),
//! and how many times PostgreSQL started and restarted over the whole deploy
//! sequence, counted from the server's own log.
//!
//! Usage: bench-deploy <packed .charm> [runs]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use juju_emulator::{DeployOptions, StorageRequest, World};
use scenarios::{LoopDisk, PrivateCluster, Scratch};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(charm) = args.get(1).map(PathBuf::from) else {
        bail!("usage: bench-deploy <packed .charm> [runs]");
    };
    let runs: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5);
    println!("| run | storage-attached → active | PostgreSQL starts | restarts | status |");
    println!("|---|---|---|---|---|");
    let mut seconds = Vec::new();
    for run in 1..=runs {
        let scratch = Scratch::new(&format!("bench-deploy-{run}"))?;
        let disk = LoopDisk::new(&scratch.0, "pgdata", 512);
        let cluster = PrivateCluster::new(&format!("bench{run}"), 5450 + run as u16);
        let mut world = World::new(&scratch.0.join("world"))?;
        world.extend_test_env(cluster.env());
        world.add_model("db");
        world.deploy(
            "db",
            "postgresql",
            &charm,
            DeployOptions {
                units: 1,
                storage: vec![StorageRequest::at("pgdata", &disk.mount)],
                ..Default::default()
            },
        )?;
        let start = Instant::now();
        world.settle()?;
        let elapsed = start.elapsed().as_secs_f64();
        let status = world.unit("postgresql/0")?.status.clone();
        let log = cluster.log();
        let starts = log
            .matches("database system is ready to accept connections")
            .count();
        let restarts = log.matches("received fast shutdown request").count();
        println!(
            "| {run} | {elapsed:.2} s | {starts} | {restarts} | {} |",
            status.status
        );
        seconds.push(elapsed);
        drop(world);
        drop(cluster);
        drop(disk);
    }
    seconds.sort_by(f64::total_cmp);
    println!(
        "\nmedian {:.2} s over {runs} runs",
        seconds[seconds.len() / 2]
    );
    Ok(())
}
