//! The PostgreSQL cluster this unit runs: its identity and paths in Debian's
//! postgresql-common layout, whether it runs, and the tools that control it
//! (`control`), the SQL connection (`db`), its configuration files (`conf`),
//! whether the server has read them (`reload`), the charm's records inside
//! PostgreSQL (`records`) and the packages it needs (`packages`).
//!
//! One unit runs one cluster, `<major>/main`. Tests on a shared machine give
//! each emulated unit its own cluster name and port through
//! `PG_CHARM_CLUSTER` and `PG_CHARM_PORT` (Juju never sets them).

pub mod conf;
pub mod control;
pub mod db;
pub mod packages;
pub mod records;
pub mod reload;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Where the server's unix socket lives (Debian's default).
pub const SOCKET_DIR: &str = "/var/run/postgresql";
/// Marks a cluster configuration directory as created (or adopted) by this charm.
pub const OWNER_MARKER: &str = "juju-pg-charm.owner";
pub const DEFAULT_PORT: u16 = 5432;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub major: u32,
    pub name: String,
    pub port: u16,
}

impl Cluster {
    /// The unit's cluster for `major`: `main` on 5432 unless a test says otherwise.
    pub fn for_unit(major: u32) -> Self {
        let name = std::env::var("PG_CHARM_CLUSTER")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "main".into());
        let port = std::env::var("PG_CHARM_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(DEFAULT_PORT);
        Self { major, name, port }
    }

    pub fn conf_dir(&self) -> PathBuf {
        PathBuf::from(format!("/etc/postgresql/{}/{}", self.major, self.name))
    }

    pub fn conf_file(&self) -> PathBuf {
        self.conf_dir().join("postgresql.conf")
    }

    pub fn bin(&self, program: &str) -> PathBuf {
        PathBuf::from(format!("/usr/lib/postgresql/{}/bin/{program}", self.major))
    }

    /// Debian's default data directory on the root disk.
    pub fn root_disk_data_dir(&self) -> PathBuf {
        PathBuf::from(format!("/var/lib/postgresql/{}/{}", self.major, self.name))
    }

    /// PGDATA on a storage mount: a subdirectory, since the mount root
    /// holds `lost+found` and initdb refuses a non-empty directory.
    pub fn data_dir_on(&self, mount: &Path) -> PathBuf {
        mount.join(self.major.to_string()).join(&self.name)
    }

    pub fn log_file(&self) -> PathBuf {
        PathBuf::from(format!(
            "/var/log/postgresql/postgresql-{}-{}.log",
            self.major, self.name
        ))
    }

    /// `<major>-<name>`, as in `postgresql@15-main`.
    pub fn id(&self) -> String {
        format!("{}-{}", self.major, self.name)
    }

    /// Whether postgresql-common knows this cluster (its config exists).
    pub fn exists(&self) -> bool {
        self.conf_file().is_file()
    }

    /// Whether this charm created or adopted the cluster.
    pub fn is_ours(&self) -> bool {
        self.conf_dir().join(OWNER_MARKER).is_file()
    }

    pub fn mark_ours(&self, unit: &str) -> Result<()> {
        std::fs::write(self.conf_dir().join(OWNER_MARKER), format!("{unit}\n"))
            .context("marking the cluster as the charm's")
    }

    /// The `data_directory` postgresql.conf names.
    pub fn data_directory(&self) -> Result<PathBuf> {
        let text = std::fs::read_to_string(self.conf_file())
            .with_context(|| format!("reading {}", self.conf_file().display()))?;
        conf::setting_in(&text, "data_directory")
            .map(PathBuf::from)
            .with_context(|| format!("no data_directory in {}", self.conf_file().display()))
    }

    /// The postmaster's pid if the server runs from `data_dir`.
    pub fn running_pid(data_dir: &Path) -> Option<i32> {
        let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        alive.then_some(pid)
    }

    pub fn is_running(&self) -> bool {
        self.data_directory()
            .ok()
            .and_then(|dir| Self::running_pid(&dir))
            .is_some()
    }
}

/// The major version of the cluster in `data_dir` (its `PG_VERSION`).
pub fn data_dir_version(data_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("PG_VERSION"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `pg_controldata`'s "Database system identifier": equal for a cluster and
/// any byte-for-byte copy of it, different for any other cluster.
pub fn system_identifier(cluster: &Cluster, data_dir: &Path) -> Result<String> {
    let out = run(Command::new(cluster.bin("pg_controldata")).arg(data_dir))?;
    out.lines()
        .find_map(|l| l.strip_prefix("Database system identifier:"))
        .map(|v| v.trim().to_string())
        .context("pg_controldata printed no system identifier")
}

/// Runs a command, returning stdout; an error carries the command and stderr.
pub fn run(command: &mut Command) -> Result<String> {
    let shown = format!("{command:?}");
    let out = command
        .output()
        .with_context(|| format!("could not start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program args...` as the `postgres` system user.
pub fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}
