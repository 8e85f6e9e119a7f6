//! The local walkthrough: the README's real Juju walkthrough, played under
//! the emulator with the packed charm, on real parts: the database's
//! dedicated disk is an ext4 file system on a loop device, and the
//! Kubernetes consumers run on hosts of their own (network namespaces on
//! the machines' network) with their own addresses. Everything it creates
//! is removed at the end.
//!
//! 1. `juju add-model db`; `juju deploy ./postgresql.charm --storage pgdata=...`
//! 2. `juju offer postgresql:db,database`
//! 3. `juju add-model k8s`; `juju deploy k8s-consumer` (legacy `pgsql`) and
//!    `juju deploy k8s-app` (`postgresql_client`, the data_interfaces v0
//!    library, credentials in a Juju secret); `juju consume`; `juju integrate`
//! 4. each consumer runs a query with the connection data it received.

use anyhow::{bail, Context, Result};
use juju_emulator::{DeployOptions, MachineSpec, StorageRequest, World};
use scenarios::netns::{redact_conninfo, Netns};
use scenarios::{consumer_charm, packed_charm, repo_root, LoopDisk, PrivateCluster, Scratch};

fn main() -> Result<()> {
    let charm = packed_charm()?;
    let consumer = consumer_charm()?;
    let scratch = Scratch::new("walkthrough")?;
    // Dropped in reverse order: the server stops before its disk goes.
    let disk = LoopDisk::new(&scratch.0, "nvme0n1", 512);
    let cluster = PrivateCluster::new("walkthrough", 5442);
    let mut world = World::new(&scratch.0.join("world"))?;
    world.extend_test_env(cluster.env());
    let k8s_node = Netns::on_machine_network(&mut world, "k8s-node");
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
    step("juju offer postgresql:db,database");
    let offer = world.offer("postgresql", &["db", "database"], "postgresql")?;
    println!("    offer URL: {offer}");

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
    step(
        "juju deploy k8s-app --config database=inventory   # data_interfaces v0, a pod of its own",
    );
    world.deploy(
        "k8s",
        "k8s-app",
        &repo_root().join("tests/consumer-database-v0"),
        DeployOptions {
            units: 1,
            config: [("database".to_string(), "inventory".to_string())].into(),
            machine: Some(MachineSpec::default()),
            ..Default::default()
        },
    )?;
    world.settle().context("deploying the database consumer")?;
    step(&format!("juju consume {offer} pg"));
    step("juju integrate k8s-consumer pg   # matched to postgresql:db (pgsql)");
    world.integrate_offer(&offer, "k8s-consumer", "pg", &[])?;
    world.settle().context("relating across models")?;
    step("juju integrate k8s-app pg   # matched to postgresql:database (postgresql_client)");
    let modern = world.integrate_offer(&offer, "k8s-app", "pg", &[])?;
    world.settle().context("relating the database consumer")?;

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

    // The modern consumer: its library read the credentials from the
    // secret the charm granted to its relation, and connected.
    let app_state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        world
            .unit("k8s-app/0")?
            .agent_dir
            .join("consumer-state.json"),
    )?)?;
    let connected = &app_state["databases"]["inventory"]["connected"];
    if !connected.is_string() {
        bail!("the database consumer did not connect: {app_state}");
    }
    let published = world.bag(modern, "postgresql").cloned().unwrap_or_default();
    let Some(secret_uri) = published.get("secret-user") else {
        bail!("no secret-user published to the database consumer: {published:?}");
    };
    println!("    k8s-app's library: {connected}; its credentials: {secret_uri}");
    let uri = world.secret_latest(secret_uri)?.1["uris"].clone();
    step(&format!(
        "(in k8s-app's pod {}) psql '{}'",
        world.machine_of("k8s-app/0")?.address(),
        redact_uri(&uri)
    ));
    let answer = psql_on_machine(&world, "k8s-app/0", &uri,
        "SELECT 'connected to ' || current_database() || ' as ' || current_user || ' from ' || inet_client_addr() || ', PostgreSQL ' || current_setting('server_version')",
    )?;
    println!("    {answer}");
    drop(k8s_node);
    drop(world);
    drop(cluster);
    drop(disk);
    Ok(())
}

/// `postgresql://user:password@host:port/db` with the password shown as `***`.
fn redact_uri(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme), Some(at)) => match uri[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &uri[..scheme + 3], &uri[at..]),
            None => uri.to_string(),
        },
        _ => uri.to_string(),
    }
}

/// Runs `sql` with psql on `unit`'s machine, the password in `PGPASSWORD`
/// (never on a command line).
fn psql_on_machine(world: &World, unit: &str, uri: &str, sql: &str) -> Result<String> {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let (userinfo, location) = rest.rsplit_once('@').context("a user in the URI")?;
    let (user, password) = userinfo.split_once(':').context("a password in the URI")?;
    let (hostport, database) = location.split_once('/').unwrap_or((location, "postgres"));
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    let conninfo =
        format!("host={host} port={port} user={user} dbname={database} connect_timeout=5");
    let out = world
        .machine_of(unit)?
        .command("psql")?
        .args(["-X", "-w", "-q", "-At", "-d", &conninfo, "-c", sql])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("PGPASSFILE", "/dev/null")
        .env("PGPASSWORD", password)
        .output()?;
    if !out.status.success() {
        bail!(
            "the database consumer's query failed: {}",
            String::from_utf8_lossy(&out.stderr).replace(password, "***")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn step(command: &str) {
    println!("\n$ {command}");
}
