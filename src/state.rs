//! The charm's private state: every file it keeps from one hook to the
//! next, in one directory only root can enter.
//!
//! The directory is `/var/lib/juju-pg-charm/<cluster name>` (`main` in
//! production, so `/var/lib/juju-pg-charm/main`), root-owned, mode `0700`,
//! and never inside a directory the `postgres` user owns: nothing postgres
//! can plant reaches it. Tests on a shared machine give each unit its own
//! cluster name (`PG_CHARM_CLUSTER`), which keeps their state apart too.
//!
//! Files are written through [`crate::fsx::write_atomic`] (exclusive
//! temporary file, `fsync`, rename, `fsync` of the directory) and read with
//! [`crate::fsx::read`]. ARCHITECTURE.md has the table of the files: who
//! writes and reads each, its format, and when it is deleted. Unit removal
//! deletes the whole directory ([`StateDir::remove_all`]).

use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fsx::{self, Owner};

/// Parent of every unit's state directory.
pub const ROOT: &str = "/var/lib/juju-pg-charm";

/// That the charm created (or adopted) the cluster, and with which
/// `locale`/`encoding` (`cluster::OwnerRecord`).
pub const CLUSTER: &str = "cluster.json";
/// A creation or adoption under way (`lifecycle`), so a retry after a kill
/// can finish or redo it.
pub const CREATING: &str = "creating.json";
/// What the charm concluded about each client relation (`clients`).
pub const RELATIONS: &str = "relations.json";
/// The machine the last converge tuned for (`tuning::apply`).
pub const MACHINE: &str = "machine.json";
/// The server's `shared_memory_size_in_huge_pages` for a configuration.
pub const HUGE_PAGES: &str = "huge-pages.json";
/// Every host setting's value before the charm changed it.
pub const HOST_ORIGINALS: &str = "host-originals.json";
/// The host plan in force, for the `tuning-report` action.
pub const HOST_APPLIED: &str = "host-applied.json";
/// A storage move that could not go ahead, so `update-status` retries it.
pub const PENDING_MOVE: &str = "pending-move.json";

/// The file remembering what the charm last told Juju under `key`.
pub fn memo(key: &str) -> String {
    format!("memo-{key}")
}

/// One unit's state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// The unit's, whose cluster is `cluster_name`:
    /// `/var/lib/juju-pg-charm/<cluster name>`.
    pub fn of_cluster(cluster_name: &str) -> Self {
        StateDir(Path::new(ROOT).join(cluster_name))
    }

    /// A directory of the caller's choosing (unit tests).
    pub fn at(path: &Path) -> Self {
        StateDir(path.to_path_buf())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The file's bytes; `None` when it is missing (or unreadable: state is
    /// always rebuilt or re-decided when a file is gone).
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        match fsx::read(&self.file(name)) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                log::warn!("ignoring {}: {e}", self.file(name).display());
                None
            }
        }
    }

    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let bytes = self.read(name)?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Some(value),
            Err(e) => {
                log::warn!("ignoring {}: {e}", self.file(name).display());
                None
            }
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        fsx::is_file(&self.file(name))
    }

    /// Writes the file (and the directory, when missing) unless it already
    /// holds `bytes`; returns whether it wrote.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        self.ensure()?;
        fsx::write_atomic(&self.file(name), bytes, Owner::current(), 0o600)
    }

    pub fn write_json<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<bool> {
        let mut bytes = serde_json::to_vec_pretty(value)
            .with_context(|| format!("encoding {}", self.file(name).display()))?;
        bytes.push(b'\n');
        self.write(name, &bytes)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        fsx::remove_file(&self.file(name)).map(drop)
    }

    /// Deletes the whole directory (unit removal), and its parent when no
    /// other unit's state is left in it.
    pub fn remove_all(&self) -> Result<()> {
        match std::fs::symlink_metadata(&self.0) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            _ => std::fs::remove_dir_all(&self.0)
                .with_context(|| format!("deleting {}", self.0.display()))?,
        }
        if let Some(parent) = self.0.parent() {
            fsx::remove_dir_if_empty(parent);
        }
        Ok(())
    }

    /// The directory, root's alone (and [`ROOT`] too).
    fn ensure(&self) -> Result<()> {
        let owner = Owner::current();
        // A concurrent removal of another unit may take the parent away.
        let mut last = None;
        for _ in 0..3 {
            let root = Path::new(ROOT);
            let made = if self.0.parent() == Some(root) {
                fsx::ensure_dir(root, owner, 0o700)
            } else {
                Ok(Vec::new())
            }
            .and_then(|_| fsx::ensure_dir(&self.0, owner, 0o700));
            match made {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried")).context("creating the charm's state directory")
    }
}
