//! TLS benchmark (issue 14): what encryption costs a consumer, in TPS and
//! in connection time. The packed charm is deployed under the emulator (so
//! the server runs with the charm's own TLS settings and its own ECDSA
//! P-256 certificate); a consumer in a network namespace of its own, let in
//! by `admin-addresses`, runs pgbench over TCP with `sslmode=require`
//! (TLS) and `sslmode=disable` (clear text), alternated within each round
//! (TLS first in odd rounds, clear text first in even ones) so that drift
//! hits both alike:
//!
//! * select-only (`-S -M prepared`) and TPC-B (`-M prepared`), `-c 8 -j 2`;
//! * connection time: select-only with a new connection per transaction
//!   (`-C`), pgbench's "average connection time".
//!
//! Usage: bench-tls <packed .charm> [rounds] [seconds]   (default 3 15)
//! As root; the cluster, namespace and world are named after this process
//! and removed on exit.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use juju_emulator::{DeployOptions, World};
use scenarios::netns::Netns;
use scenarios::{PrivateCluster, Scratch};

const SCALE: &str = "10";

fn free_port() -> u16 {
    (5490..5590)
        .find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok())
        .expect("a free port in 5490-5589")
}

fn password() -> Result<String> {
    let mut bytes = [0u8; 16];
    postgresql_charm::secret::fill_random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `sql` as postgres over the cluster's socket, on psql's stdin (never in
/// argv: it may hold the bench role's password).
fn local_sql(cluster: &PrivateCluster, sql: &str) -> Result<String> {
    let mut child = Command::new("runuser")
        .args(scenarios::superuser_psql_args(cluster.port, "postgres"))
        .args(["-f", "-"])
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("psql's stdin")?
        .write_all(sql.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

struct Consumer<'a> {
    ns: &'a Netns,
    host: String,
    port: u16,
    password: String,
}

impl Consumer<'_> {
    /// pgbench from the namespace with `sslmode`; its report.
    fn pgbench(&self, sslmode: &str, args: &[&str]) -> Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns.name, "pgbench"])
            .args([
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-U",
                "bench",
            ])
            .args(args)
            .arg("bench")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("PGPASSWORD", &self.password)
            .env("PGSSLMODE", sslmode)
            .current_dir("/")
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!(
                "pgbench {args:?} ({sslmode}): {}",
                text.replace(&self.password, "***")
            );
        }
        Ok(text)
    }
}

/// The number after `key` in pgbench's report.
fn figure(report: &str, key: &str) -> Result<f64> {
    let line = report
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key:?} in pgbench's report:\n{report}"))?;
    line[key.len()..]
        .split_whitespace()
        .next()
        .context("no figure")?
        .parse()
        .context("a number")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(charm) = args.get(1).map(PathBuf::from) else {
        bail!("usage: bench-tls <packed .charm> [rounds] [seconds]");
    };
    let rounds: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let seconds = args.get(3).cloned().unwrap_or_else(|| "15".into());

    let pid = std::process::id();
    let scratch = Scratch::new(&format!("bench-tls-{pid}"))?;
    let cluster = PrivateCluster::new(&format!("benchtls{pid}"), free_port());
    let ns = Netns::with_free_subnet("benchtls");
    let mut world = World::new(&scratch.0.join("world"))?;
    world.extend_test_env(cluster.env());
    world.add_model("db");
    world.deploy(
        "db",
        "postgresql",
        &charm,
        DeployOptions {
            units: 1,
            config: [
                ("admin-addresses".to_string(), format!("{}/32", ns.ns_addr)),
                ("memory-limit".to_string(), "2G".to_string()),
            ]
            .into(),
            ..Default::default()
        },
    )?;
    world.settle()?;
    let status = world.unit("postgresql/0")?.status.clone();
    if status.status != "active" {
        bail!("postgresql/0 is {}: {}", status.status, status.message);
    }
    eprintln!("deployed: {}", status.message);
    let consumer = Consumer {
        ns: &ns,
        host: ns.host_addr.to_string(),
        port: cluster.port,
        password: password()?,
    };
    local_sql(
        &cluster,
        &format!("CREATE ROLE bench LOGIN PASSWORD '{}'", consumer.password),
    )?;
    local_sql(&cluster, "CREATE DATABASE bench OWNER bench")?;
    consumer.pgbench("disable", &["-i", "-q", "-s", SCALE])?;

    let workloads: [(&str, Vec<&str>, &str); 3] = [
        ("select-only", vec!["-S", "-M", "prepared"], "tps = "),
        ("TPC-B", vec!["-M", "prepared"], "tps = "),
        (
            "connect per transaction (-C -S)",
            vec!["-C", "-S"],
            "average connection time = ",
        ),
    ];
    // (workload, mode) -> per-round figures
    let mut figures: BTreeMap<(usize, &str), Vec<f64>> = BTreeMap::new();
    for round in 1..=rounds {
        let modes = if round % 2 == 1 {
            ["require", "disable"]
        } else {
            ["disable", "require"]
        };
        for (w, (name, flags, key)) in workloads.iter().enumerate() {
            for mode in modes {
                let mut args = vec!["-c", "8", "-j", "2", "-T", &seconds];
                args.extend(flags.iter().copied());
                let report = consumer.pgbench(mode, &args)?;
                let value = figure(&report, key)?;
                eprintln!("round {round} {name} sslmode={mode}: {value}");
                figures.entry((w, mode)).or_default().push(value);
            }
        }
    }
    let ssl_used = local_sql(&cluster, "SHOW ssl")?;
    println!(
        "`bench-tls {} {rounds} {seconds}` (scale {SCALE}, -c 8 -j 2, {seconds} s per run, ssl = {ssl_used}, \
         from a network namespace over a veth pair; medians over {rounds} rounds, ratio = TLS / clear text \
         per round, median and min–max):\n",
        charm.display()
    );
    println!("| workload | clear text | TLS | TLS / clear |");
    println!("|---|---|---|---|");
    for (w, (name, _, key)) in workloads.iter().enumerate() {
        let clear = figures[&(w, "disable")].clone();
        let tls = figures[&(w, "require")].clone();
        let mut ratios: Vec<f64> = tls.iter().zip(&clear).map(|(t, c)| t / c).collect();
        let (lo, hi) = (
            ratios.iter().cloned().fold(f64::INFINITY, f64::min),
            ratios.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        );
        let unit = if key.starts_with("tps") { "TPS" } else { "ms" };
        println!(
            "| {name} | {:.1} {unit} | {:.1} {unit} | {:.2} ({lo:.2}–{hi:.2}) |",
            median(&mut clear.clone()),
            median(&mut tls.clone()),
            median(&mut ratios)
        );
    }
    drop(world);
    drop(ns);
    drop(cluster);
    Ok(())
}
