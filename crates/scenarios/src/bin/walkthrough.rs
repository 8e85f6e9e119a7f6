//! The local walkthrough: the README's real Juju walkthrough, played under
//! the emulator with the packed charm, on real parts: the database's
//! dedicated disk is an ext4 file system on a loop device, and the
//! Kubernetes consumer runs on a host of its own (a network namespace) with
//! its own address. Everything it creates is removed at the end.
//!
//! 1. `juju add-model db`; `juju deploy ./postgresql.charm --storage pgdata=...`
//! 2. `juju offer postgresql:db`
//! 3. `juju add-model k8s`; `juju deploy k8s-consumer`; `juju consume`; `juju integrate`
//! 4. the consumer runs a query with the connection data it received.

use anyhow::{bail, Context, Result};
use juju_emulator::{DeployOptions, StorageRequest, World};
use scenarios::netns::{redact_conninfo, Netns};
use scenarios::{consumer_charm, packed_charm, LoopDisk, PrivateCluster, Scratch};

fn main() -> Result<()> {
    let charm = packed_charm()?;
    let consumer = consumer_charm()?;
    let scratch = Scratch::new("walkthrough")?;
    // Dropped in reverse order: the server stops before its disk goes.
    let disk = LoopDisk::new(&scratch.0, "nvme0n1", 512);
    let k8s_node = Netns::with_free_subnet("k8s-node");
    let cluster = PrivateCluster::new("walkthrough", 5442);
    let mut world = World::new(&scratch.0.join("world"))?;
    world.extend_test_env(cluster.env());
    let db_address = k8s_node.host_addr.to_string();
    let pod_address = k8s_node.ns_addr.to_string();

    step("juju add-model db");
    world.add_model("db");
    step(&format!(
        "juju deploy ./postgresql.charm postgresql --storage pgdata=<{} mounted at {}>",
        disk.device,
        disk.mount.display()
    ));
    world.deploy(
        "db",
        "postgresql",
        &charm,
        DeployOptions {
            units: 1,
            storage: vec![StorageRequest::at("pgdata", &disk.mount)],
            addresses: vec![(db_address.clone(), db_address.clone())],
            ..Default::default()
        },
    )?;
    world.settle().context("deploying postgresql")?;
    for record in world.trace() {
        println!(
            "    {:<28} exit {:?} in {:>6.1} ms",
            record.invocation.hook,
            record.code,
            record.wall.as_secs_f64() * 1000.0
        );
    }
    step("juju offer postgresql:db");
    println!("    offer URL: admin/db.postgresql");

    step("juju add-model k8s");
    world.add_model("k8s");
    step(&format!(
        "juju deploy k8s-consumer --config database=shop   # pod address {pod_address}"
    ));
    world.deploy(
        "k8s",
        "k8s-consumer",
        &consumer,
        DeployOptions {
            units: 1,
            config: [("database".to_string(), "shop".to_string())].into(),
            addresses: vec![(pod_address.clone(), pod_address.clone())],
            ..Default::default()
        },
    )?;
    world.settle().context("deploying the consumer")?;
    step("juju consume admin/db.postgresql pg");
    step("juju integrate k8s-consumer:db pg");
    world.integrate_cross_model("postgresql:db", "k8s-consumer:db", "pg", &[])?;
    world.settle().context("relating across models")?;

    step("juju status -m db; juju status -m k8s");
    print!("{}", world.status_text());

    let state_file = world
        .unit("k8s-consumer/0")?
        .agent_dir
        .join("consumer-state.json");
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_file)?)?;
    let Some(master) = state["master"].as_str() else {
        bail!("the consumer received no master connection string: {state}");
    };
    step(&format!(
        "(on the k8s node {pod_address}) psql '{}'",
        redact_conninfo(master)
    ));
    let answer = k8s_node
        .psql(
            master,
            "SELECT 'connected to ' || current_database() || ' as ' || current_user || ' from ' || inet_client_addr() || ', PostgreSQL ' || current_setting('server_version')",
        )
        .map_err(|e| anyhow::anyhow!("the consumer's query failed: {e}"))?;
    println!("    {answer}");
    drop(world);
    drop(cluster);
    drop(k8s_node);
    drop(disk);
    Ok(())
}

fn step(command: &str) {
    println!("\n$ {command}");
}
