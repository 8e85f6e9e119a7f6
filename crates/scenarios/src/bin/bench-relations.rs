//! Relation benchmark.
//!
//! 1. `db-relation-changed` wall time on the PostgreSQL unit with 1, 10,
//!    100 and 500 consumer relations of 3 units each, and how many reloads
//!    and restarts the server went through while they were added.
//! 2. pgbench on one consumer's database while 50 other relations join and
//!    depart: the number of failed transactions.
//!
//! The consumers are charms without hooks (Juju runs nothing for them):
//! their units' bags hold only what Juju fills in, so every relation gets
//! the default database, and the cost measured is the provider's alone.
//!
//! Usage: bench-relations <packed .charm> [max relations] [pgbench seconds]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use juju_emulator::{DeployOptions, Invocation, World};
use scenarios::{PrivateCluster, Scratch};

fn hookless_consumer(dir: &Path) -> Result<PathBuf> {
    let charm = dir.join("hookless-consumer");
    std::fs::create_dir_all(&charm)?;
    std::fs::write(
        charm.join("metadata.yaml"),
        "name: hookless-consumer\nsummary: s\ndescription: d\nrequires:\n  db:\n    interface: pgsql\n",
    )?;
    Ok(charm)
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(charm) = args.get(1).map(PathBuf::from) else {
        bail!("usage: bench-relations <packed .charm> [max relations] [pgbench seconds]");
    };
    let max: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(500);
    let pgbench_seconds: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(30);

    let scratch = Scratch::new("bench-relations")?;
    let cluster = PrivateCluster::new("benchrel", 5461);
    let consumer = hookless_consumer(&scratch.0)?;
    let mut world = World::new(&scratch.0.join("world"))?;
    world.extend_test_env(cluster.env());
    world.add_model("db");
    world.add_model("k8s");
    world.deploy(
        "db",
        "postgresql",
        &charm,
        DeployOptions {
            units: 1,
            config: [("admin-addresses".to_string(), "127.0.0.1".to_string())].into(),
            ..Default::default()
        },
    )?;
    world.settle()?;

    println!("| consumer relations (3 units each) | db-relation-changed median | p90 | reloads while adding | restarts |");
    println!("|---|---|---|---|---|");
    let mut relations = Vec::new();
    let mut host = 0u32;
    for checkpoint in [1usize, 10, 100, 500].into_iter().filter(|c| *c <= max) {
        let log_before = cluster.log();
        while relations.len() < checkpoint {
            let app = format!("app{}", relations.len());
            let addresses = (0..3)
                .map(|_| {
                    host += 1;
                    let a = format!(
                        "10.{}.{}.{}",
                        100 + host / 65536,
                        (host / 256) % 256,
                        host % 256
                    );
                    (a.clone(), a)
                })
                .collect();
            world.deploy(
                "k8s",
                &app,
                &consumer,
                DeployOptions {
                    units: 3,
                    addresses,
                    ..Default::default()
                },
            )?;
            let id =
                world.integrate_cross_model("postgresql:db", &format!("{app}:db"), &app, &[])?;
            world.settle()?;
            relations.push((id, app));
        }
        let log_after = cluster.log();
        let reloads = count(&log_after, "received SIGHUP") - count(&log_before, "received SIGHUP");
        let restarts = count(&log_after, "fast shutdown request")
            - count(&log_before, "fast shutdown request");
        let (id, app) = relations[relations.len() / 2].clone();
        let mut walls: Vec<Duration> = Vec::new();
        for _ in 0..7 {
            let result = world.run_hook_killed_after(
                Invocation {
                    unit: "postgresql/0".into(),
                    hook: "db-relation-changed".into(),
                    relation: Some(id),
                    remote_unit: Some(format!("{app}/1")),
                    ..Default::default()
                },
                Duration::from_secs(600),
            )?;
            if !result.succeeded() {
                bail!("db-relation-changed failed: {}", result.output());
            }
            walls.push(result.wall);
        }
        walls.sort();
        println!(
            "| {checkpoint} | {:.0} ms | {:.0} ms | {reloads} | {restarts} |",
            walls[walls.len() / 2].as_secs_f64() * 1000.0,
            walls[walls.len() * 9 / 10].as_secs_f64() * 1000.0
        );
    }
    let status = &world.unit("postgresql/0")?.status;
    println!("\nunit status: {} {}", status.status, status.message);

    // pgbench on the first consumer's database while 50 relations come and go.
    let (first, _) = relations[0].clone();
    let bag = world
        .bag(first, "postgresql/0")
        .context("published data")?
        .clone();
    let (user, database, password) = (&bag["user"], &bag["database"], &bag["password"]);
    // The consumer's own credentials, over TCP (admin-addresses lets
    // 127.0.0.1 in); the password goes by environment, never argv.
    let pgbench = |args: &[&str]| {
        let mut command =
            Command::new(format!("/usr/lib/postgresql/{}/bin/pgbench", cluster.major));
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &cluster.port.to_string(),
                "-U",
                user,
            ])
            .args(args)
            .arg(database)
            .env("PGPASSWORD", password)
            .stdin(Stdio::null());
        command
    };
    let init = pgbench(&["-i", "-q", "-s", "5"]).output()?;
    if !init.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    let seconds = pgbench_seconds.to_string();
    let child = pgbench(&["-c", "4", "-j", "2", "-T", &seconds, "-P", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let log_before = cluster.log();
    let mut churned = 0;
    let churn_start = std::time::Instant::now();
    for round in 0..50 {
        let app = format!("churn{round}");
        world.deploy(
            "k8s",
            &app,
            &consumer,
            DeployOptions {
                units: 3,
                ..Default::default()
            },
        )?;
        let id = world.integrate_cross_model("postgresql:db", &format!("{app}:db"), &app, &[])?;
        world.settle()?;
        world.remove_relation(id)?;
        world.settle()?;
        churned += 1;
    }
    let churn_seconds = churn_start.elapsed().as_secs_f64();
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let log_after = cluster.log();
    let failed = text
        .lines()
        .find(|l| l.starts_with("number of failed transactions"))
        .unwrap_or("number of failed transactions: (not reported)");
    let processed = text
        .lines()
        .find(|l| l.starts_with("number of transactions actually processed"))
        .unwrap_or("");
    println!("\npgbench -c 4 -j 2 -T {seconds} on {database} while {churned} relations joined and departed:");
    println!("    the churn took {churn_seconds:.0} s of pgbench's {seconds} s");
    if churn_seconds > pgbench_seconds as f64 {
        println!("    WARNING: pgbench ended before the churn did; give it more seconds");
    }
    println!("    {processed}");
    println!("    {failed}");
    println!(
        "    reloads meanwhile: {}, restarts: {}, pgbench exit: {}",
        count(&log_after, "received SIGHUP") - count(&log_before, "received SIGHUP"),
        count(&log_after, "fast shutdown request") - count(&log_before, "fast shutdown request"),
        out.status
    );
    if !out.status.success() {
        bail!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
