//! The local walkthrough: the README's real Juju walkthrough, played under
//! the emulator with the packed charm on a real dedicated disk (an ext4
//! file system on a loop device that the walkthrough creates and removes).
//!
//! 1. `juju add-model db` and `juju deploy ./postgresql.charm --storage pgdata=...`
//! 2. `juju offer postgresql:db`
//! 3. `juju status`

use anyhow::{Context, Result};
use juju_emulator::{DeployOptions, StorageRequest, World};
use scenarios::{packed_charm, LoopDisk, PrivateCluster, Scratch};

fn main() -> Result<()> {
    let charm = packed_charm()?;
    let scratch = Scratch::new("walkthrough")?;
    // Declared after the disk so it is dropped (and the server stopped) first.
    let disk = LoopDisk::new(&scratch.0, "nvme0n1", 512);
    let cluster = PrivateCluster::new("walkthrough", 5442);
    let mut world = World::new(&scratch.0.join("world"))?;
    world.test_env.extend(cluster.env());

    step("juju add-model db");
    world.add_model("db");
    step(&format!(
        "juju deploy {} postgresql --storage pgdata=<{} mounted at {}>",
        charm.display(),
        disk.device,
        disk.mount.display()
    ));
    world.deploy(
        "db",
        "postgresql",
        &charm,
        DeployOptions {
            units: 1,
            storage: vec![StorageRequest {
                name: "pgdata".into(),
                location: Some(disk.mount.display().to_string()),
            }],
            ..Default::default()
        },
    )?;
    world.settle().context("deploying postgresql")?;
    for record in &world.trace {
        println!(
            "    {:<28} exit {:?} in {:>6.1} ms",
            record.invocation.hook,
            record.code,
            record.wall.as_secs_f64() * 1000.0
        );
    }
    step("juju offer postgresql:db");
    println!("    offer URL: admin/db.postgresql");
    step("juju status");
    print!("{}", world.status_text());
    drop(world);
    drop(cluster);
    drop(disk);
    Ok(())
}

fn step(command: &str) {
    println!("\n$ {command}");
}
