//! `database` relation benchmark: `database-relation-changed` wall time on
//! the PostgreSQL leader with 1, 10, 100 and 500 `postgresql_client`
//! relations (one consumer unit each, across models), the reloads and
//! restarts while they were added, and the hook tools that one such hook
//! calls, by name.
//!
//! The consumers are charms without hooks; the benchmark writes each one's
//! request (the data_interfaces v0 keys: `database`, `requested-secrets`)
//! into its application bag, as its leader would, so the cost measured is
//! the provider's alone: for the relation of the hook, its secrets looked
//! up, its objects checked, its bag compared; the others are served from
//! the cached results.
//!
//! Tool calls are counted by a wrapper put in front of each of the unit's
//! hook tools (appending the tool's name to a file, then running the real
//! one), so the counts are exactly what the charm asked of Juju.
//!
//! Usage: bench-database <packed .charm> [max relations]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use juju_emulator::{DeployOptions, Invocation, World};
use scenarios::{PrivateCluster, Scratch};

fn hookless_consumer(dir: &Path) -> Result<PathBuf> {
    let charm = dir.join("hookless-database-consumer");
    std::fs::create_dir_all(&charm)?;
    std::fs::write(
        charm.join("metadata.yaml"),
        "name: hookless-database-consumer\nsummary: s\ndescription: d\n\
         requires:\n  database:\n    interface: postgresql_client\n",
    )?;
    Ok(charm)
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

/// Puts a counting wrapper in front of every hook tool of `unit`: each
/// call appends the tool's name to `calls`.
fn count_tool_calls(world: &World, unit: &str, calls: &Path) -> Result<()> {
    let tools = world.unit(unit)?.tools_dir.clone();
    for entry in std::fs::read_dir(&tools)? {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let Ok(target) = std::fs::read_link(&path) else {
            continue;
        };
        // The emulator picks the tool by argv[0]'s name: `exec -a` keeps it.
        let real = tools.join(format!(".real-{name}"));
        std::os::unix::fs::symlink(&target, &real)?;
        std::fs::remove_file(&path)?;
        std::fs::write(
            &path,
            format!(
                "#!/bin/bash\necho {name} >> '{}'\nexec -a {name} '{}' \"$@\"\n",
                calls.display(),
                real.display()
            ),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// With `BENCH_PROFILE=<dir>`: one more hook per checkpoint, with each hook
/// tool timed by its wrapper and (`BENCH_STRACE` set) the charm's process
/// traced by `strace` (its SQL connections, files and children, with
/// timestamps), written to
/// `<dir>/<relations>-tools.txt` and `<dir>/<relations>-strace.txt`. Only
/// for finding where the time goes; the table above is measured without.
fn profile_one_hook(world: &mut World, hook: Invocation, dir: &Path, label: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let unit = world.unit("postgresql/0")?.clone();
    let tools = unit.tools_dir.clone();
    let timings = dir.join(format!("{label}-tools.txt"));
    let trace = dir.join(format!("{label}-strace.txt"));
    let _ = std::fs::remove_file(&timings);
    let mut wrapped = Vec::new();
    for entry in std::fs::read_dir(&tools)? {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let real = tools.join(format!(".real-{name}"));
        if name.starts_with('.') || !real.exists() {
            continue;
        }
        let counting = std::fs::read_to_string(&path)?;
        std::fs::write(
            &path,
            format!(
                "#!/bin/bash\ns=$EPOCHREALTIME\n(exec -a {name} '{}' \"$@\")\nrc=$?\n\
                 echo \"{name} $s $EPOCHREALTIME\" >> '{}'\nexit $rc\n",
                real.display(),
                timings.display()
            ),
        )?;
        wrapped.push((path, counting));
    }
    let dispatch = unit.agent_dir.join("charm/dispatch");
    let original = std::fs::read_to_string(&dispatch)?;
    // strace slows every system call down: the tool times are taken
    // without it unless BENCH_STRACE is set.
    let strace = std::env::var_os("BENCH_STRACE").is_some();
    // BENCH_PERF_BIN: a build of the charm with symbols and frame pointers,
    // run under `perf record` in place of the packed (stripped) one.
    let perf_bin = std::env::var_os("BENCH_PERF_BIN").map(PathBuf::from);
    let charm_bin = unit.agent_dir.join("charm/bin/pg-charm");
    let packed_bin = std::fs::read(&charm_bin)?;
    if let Some(bin) = &perf_bin {
        std::fs::copy(bin, &charm_bin)?;
    }
    std::fs::write(
        &dispatch,
        if perf_bin.is_some() {
            format!(
                "#!/bin/sh\nJUJU_DISPATCH_PATH=\"${{JUJU_DISPATCH_PATH:-$0}}\" exec perf record -q -F 20000 -g \
             -o '{}' ./bin/pg-charm\n",
                dir.join(format!("{label}-perf.data")).display()
            )
        } else if !strace {
            original.clone()
        } else {
            format!(
                "#!/bin/sh\nJUJU_DISPATCH_PATH=\"${{JUJU_DISPATCH_PATH:-$0}}\" exec strace -f -tt \
             -e trace=execve,connect,openat,renameat,renameat2,sendto,recvfrom,exit_group \
             -s 0 -o '{}' ./bin/pg-charm\n",
                trace.display()
            )
        },
    )?;
    let result = world.run_hook_killed_after(hook, Duration::from_secs(600));
    std::fs::write(&dispatch, original)?;
    std::fs::write(&charm_bin, packed_bin)?;
    for (path, counting) in wrapped {
        std::fs::write(path, counting)?;
    }
    let result = result?;
    std::fs::write(dir.join(format!("{label}-output.txt")), result.output())?;
    let mut by_tool: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for line in std::fs::read_to_string(&timings)
        .unwrap_or_default()
        .lines()
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [name, start, end] = parts[..] {
            let took = end.parse::<f64>().unwrap_or(0.0) - start.parse::<f64>().unwrap_or(0.0);
            let entry = by_tool.entry(name.to_string()).or_default();
            entry.0 += 1;
            entry.1 += took;
        }
    }
    let total: f64 = by_tool.values().map(|(_, t)| t).sum();
    let listed: Vec<String> = by_tool
        .iter()
        .map(|(tool, (n, t))| format!("{tool} {n}x {:.1} ms", t * 1000.0))
        .collect();
    eprintln!(
        "profile {label}: hook {:.0} ms; hook tools {:.0} ms: {}",
        result.wall.as_secs_f64() * 1000.0,
        total * 1000.0,
        listed.join(", ")
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(charm) = args.get(1).map(PathBuf::from) else {
        bail!("usage: bench-database <packed .charm> [max relations]");
    };
    let max: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(500);

    let scratch = Scratch::new("bench-database")?;
    // BENCH_CLUSTER: bench/database names the cluster after its process,
    // so a run cannot meet what another (or an interrupted one) left;
    // BENCH_PORT lets two runs (two charms compared) go side by side.
    let name = std::env::var("BENCH_CLUSTER").unwrap_or_else(|_| "benchdb".to_string());
    let port = match std::env::var("BENCH_PORT") {
        Ok(port) => port.parse()?,
        Err(_) => 5463,
    };
    let cluster = PrivateCluster::new(&name, port);
    let consumer = hookless_consumer(&scratch.0)?;
    let mut world = World::new(&scratch.0.join("world"))?;
    world.extend_test_env(cluster.env());
    world.add_model("db");
    world.add_model("k8s");
    world.deploy("db", "postgresql", &charm, DeployOptions::default())?;
    world.settle()?;
    let offer = world.offer("postgresql", &["db", "database"], "postgresql")?;
    let calls = scratch.0.join("tool-calls");
    count_tool_calls(&world, "postgresql/0", &calls)?;

    println!(
        "| database relations | database-relation-changed median | p90 | reloads while adding | restarts |"
    );
    println!("|---|---|---|---|---|");
    let mut relations = Vec::new();
    let mut host = 0u32;
    let mut last_calls = BTreeMap::new();
    for checkpoint in [1usize, 10, 100, 500].into_iter().filter(|c| *c <= max) {
        let log_before = cluster.log();
        while relations.len() < checkpoint {
            let app = format!("app{}", relations.len());
            host += 1;
            let address = format!(
                "10.{}.{}.{}",
                100 + host / 65536,
                (host / 256) % 256,
                host % 256
            );
            world.deploy(
                "k8s",
                &app,
                &consumer,
                DeployOptions {
                    units: 1,
                    addresses: vec![(address.clone(), address)],
                    ..Default::default()
                },
            )?;
            let id = world.integrate_offer(&offer, &app, "pg", &[])?;
            world.settle()?;
            let database = format!("db{}", relations.len());
            world.write_bag(
                id,
                &app,
                &[
                    ("database", database.as_str()),
                    (
                        "requested-secrets",
                        r#"["username", "password", "tls", "tls-ca", "uris", "read-only-uris"]"#,
                    ),
                ],
            )?;
            world.settle()?;
            let published = world.bag(id, "postgresql").cloned().unwrap_or_default();
            if !published.contains_key("secret-user") {
                let status = &world.unit("postgresql/0")?.status;
                bail!(
                    "relation {id} was not served: {published:?} (unit status: {} {})",
                    status.status,
                    status.message
                );
            }
            relations.push((id, app));
        }
        let log_after = cluster.log();
        let reloads = count(&log_after, "received SIGHUP") - count(&log_before, "received SIGHUP");
        let restarts = count(&log_after, "fast shutdown request")
            - count(&log_before, "fast shutdown request");
        let (id, app) = relations[relations.len() / 2].clone();
        let mut walls: Vec<Duration> = Vec::new();
        for _ in 0..7 {
            let _ = std::fs::remove_file(&calls);
            let result = world.run_hook_killed_after(
                Invocation {
                    unit: "postgresql/0".into(),
                    hook: "database-relation-changed".into(),
                    relation: Some(id),
                    remote_unit: Some(format!("{app}/0")),
                    ..Default::default()
                },
                Duration::from_secs(600),
            )?;
            if !result.succeeded() {
                bail!("database-relation-changed failed: {}", result.output());
            }
            walls.push(result.wall);
        }
        if let Some(dir) = std::env::var_os("BENCH_PROFILE") {
            let hook = Invocation {
                unit: "postgresql/0".into(),
                hook: "database-relation-changed".into(),
                relation: Some(id),
                remote_unit: Some(format!("{app}/0")),
                ..Default::default()
            };
            profile_one_hook(&mut world, hook, Path::new(&dir), checkpoint)?;
        }
        let mut by_tool: BTreeMap<String, usize> = BTreeMap::new();
        for line in std::fs::read_to_string(&calls).unwrap_or_default().lines() {
            *by_tool.entry(line.to_string()).or_default() += 1;
        }
        last_calls = by_tool;
        walls.sort();
        println!(
            "| {checkpoint} | {:.0} ms | {:.0} ms | {reloads} | {restarts} |",
            walls[walls.len() / 2].as_secs_f64() * 1000.0,
            walls[walls.len() * 9 / 10].as_secs_f64() * 1000.0
        );
    }
    let total: usize = last_calls.values().sum();
    let listed: Vec<String> = last_calls
        .iter()
        .map(|(tool, n)| format!("{tool} {n}"))
        .collect();
    println!(
        "\nhook tools one database-relation-changed calls ({} relations): {total}: {}",
        relations.len(),
        listed.join(", ")
    );
    let status = &world.unit("postgresql/0")?.status;
    println!("unit status: {} {}", status.status, status.message);
    Ok(())
}
