//! The local walkthrough: the README's real Juju walkthrough, played under
//! the emulator with the packed charm.
//!
//! 1. `juju add-model db` and `juju deploy ./postgresql.charm --storage pgdata=...`
//! 2. `juju offer postgresql:db`
//! 3. a "k8s" model whose consumer `juju consume`s and `juju integrate`s the offer
//! 4. `juju status` of both models.

use anyhow::{Context, Result};
use juju_emulator::{DeployOptions, StorageRequest, World};
use scenarios::{packed_charm, Scratch};

fn main() -> Result<()> {
    let charm = packed_charm()?;
    let scratch = Scratch::new("walkthrough")?;
    let mut world = World::new(&scratch.0.join("world"))?;

    step("juju add-model db");
    world.add_model("db");
    let pgdata = scratch.0.join("pgdata");
    std::fs::create_dir_all(&pgdata)?;
    step(&format!(
        "juju deploy {} postgresql --storage pgdata={}",
        charm.display(),
        pgdata.display()
    ));
    world.deploy(
        "db",
        "postgresql",
        &charm,
        DeployOptions {
            units: 1,
            storage: vec![StorageRequest {
                name: "pgdata".into(),
                location: Some(pgdata.display().to_string()),
            }],
            ..Default::default()
        },
    )?;
    world.settle().context("deploying postgresql")?;
    for hook in world.hook_names("postgresql/0") {
        println!("    ran {hook}");
    }
    step("juju offer postgresql:db");
    println!("    offer URL: admin/db.postgresql");
    print!("{}", world.status_text());
    println!(
        "\nNext: consumers in a k8s model (`juju consume admin/db.postgresql`, \
         `juju integrate <app> postgresql`) arrive with the db relation."
    );
    Ok(())
}

fn step(command: &str) {
    println!("\n$ {command}");
}
