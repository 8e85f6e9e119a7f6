//! The PostgreSQL cluster this unit runs: its identity and paths in Debian's
//! postgresql-common layout, whether it runs, and the tools that control it
//! (`control`), the SQL connection (`db`), its configuration files (`conf`),
//! whether the server has read them (`reload`), the charm's records inside
//! PostgreSQL (`records`) and the packages it needs (`packages`).
//!
//! One unit runs one cluster, `<major>/main`. Tests on a shared machine give
//! each emulated unit its own cluster name and port through
//! `PG_CHARM_CLUSTER` and `PG_CHARM_PORT` (Juju never sets them; see
//! [`crate::knobs`]).
//!
//! Everything here reads the cluster's files (owned by `postgres`) through
//! [`crate::fsx`], never following a link postgres could plant; that the
//! charm owns the cluster is recorded in its own state ([`OwnerRecord`]).

pub(crate) mod conf;
pub(crate) mod control;
pub(crate) mod db;
pub mod packages;
pub(crate) mod records;
pub(crate) mod reload;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::fsx;
use crate::state::cluster::OwnerRecord;
use crate::state::StateDir;

/// Where the server's unix socket lives (Debian's default).
pub(crate) const SOCKET_DIR: &str = "/var/run/postgresql";
pub(crate) const DEFAULT_PORT: u16 = 5432;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub major: u32,
    pub name: String,
    pub port: u16,
}

impl Cluster {
    /// The charm's state directory for this cluster (and so for this unit).
    pub fn state(&self) -> StateDir {
        StateDir::of_cluster(&self.name)
    }

    pub fn conf_dir(&self) -> PathBuf {
        PathBuf::from(format!("/etc/postgresql/{}/{}", self.major, self.name))
    }

    pub(crate) fn conf_file(&self) -> PathBuf {
        self.conf_dir().join("postgresql.conf")
    }

    /// Debian's postgresql.conf once Patroni runs the server: Patroni
    /// renames it and writes its own postgresql.conf, which includes this
    /// one by its relative name (so conf.d still applies).
    pub fn base_conf_file(&self) -> PathBuf {
        self.conf_dir().join("postgresql.base.conf")
    }

    pub fn bin(&self, program: &str) -> PathBuf {
        PathBuf::from(format!("/usr/lib/postgresql/{}/bin/{program}", self.major))
    }

    /// Debian's default data directory on the root disk.
    pub(crate) fn root_disk_data_dir(&self) -> PathBuf {
        PathBuf::from(format!("/var/lib/postgresql/{}/{}", self.major, self.name))
    }

    /// PGDATA on a storage mount: a subdirectory, since the mount root
    /// holds `lost+found` and initdb refuses a non-empty directory.
    pub(crate) fn data_dir_on(&self, mount: &Path) -> PathBuf {
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
        fsx::is_file(&self.conf_file())
    }

    /// Whether this charm created or adopted the cluster.
    pub(crate) fn is_ours(&self) -> bool {
        OwnerRecord::load(&self.state()).is_some_and(|record| record.major == self.major)
    }

    /// The `data_directory` postgresql.conf names.
    pub fn data_directory(&self) -> Result<PathBuf> {
        let text = fsx::read_to_string(&self.conf_file())
            .with_context(|| format!("reading {}", self.conf_file().display()))?;
        if let Some(dir) = conf::setting_in(&text, "data_directory") {
            return Ok(PathBuf::from(dir));
        }
        // Under Patroni, postgresql.conf is Patroni's, and Debian's file
        // (with data_directory) is renamed postgresql.base.conf.
        fsx::read_to_string(&self.base_conf_file())
            .ok()
            .and_then(|text| conf::setting_in(&text, "data_directory"))
            .map(PathBuf::from)
            .with_context(|| format!("no data_directory in {}", self.conf_file().display()))
    }

    /// The postmaster's pid if the server runs from `data_dir`.
    pub fn running_pid(data_dir: &Path) -> Option<i32> {
        let text = fsx::read_to_string(&data_dir.join("postmaster.pid")).ok()?;
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
pub(crate) fn data_dir_version(data_dir: &Path) -> Option<u32> {
    fsx::read_to_string(&data_dir.join("PG_VERSION"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The "Database system identifier" (what `pg_controldata` prints): equal
/// for a cluster and any copy of it, different for any other cluster. It is
/// the first field of `global/pg_control` in every PostgreSQL version,
/// written in the machine's byte order.
pub fn system_identifier(data_dir: &Path) -> Result<u64> {
    let path = data_dir.join("global/pg_control");
    let bytes = fsx::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let first: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{} is too short to be a control file", path.display()))?;
    Ok(u64::from_ne_bytes(first))
}

/// Whether two identity reads show the same cluster. A failed read is never
/// equal to anything, not even to another failed read.
pub(crate) fn same_cluster(a: &Result<u64>, b: &Result<u64>) -> bool {
    matches!((a, b), (Ok(a), Ok(b)) if a == b)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_identity_reads_are_never_the_same_cluster() {
        let failed = || -> Result<u64> { bail!("unreadable") };
        assert!(same_cluster(&Ok(7), &Ok(7)));
        assert!(!same_cluster(&Ok(7), &Ok(8)));
        assert!(!same_cluster(&Ok(7), &failed()));
        assert!(!same_cluster(&failed(), &Ok(7)));
        assert!(!same_cluster(&failed(), &failed()));
    }
}
