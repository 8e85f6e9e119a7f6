//! The charm's private state: every file it keeps from one hook to the
//! next, in one directory only root can enter.
//!
//! The directory is `/var/lib/juju-pg-charm/<cluster name>` (`main` in
//! production, so `/var/lib/juju-pg-charm/main`), root-owned, mode `0700`,
//! and never inside a directory the `postgres` user owns: nothing postgres
//! can plant reaches it. Tests on a shared machine give each unit its own
//! cluster name (`PG_CHARM_CLUSTER`), which keeps their state apart too.
//!
//! Each file has one submodule here, which owns its name and its format
//! and is the only code that reads or writes it (the raw reads and writes
//! of [`StateDir`] are private to this module):
//!
//! * [`cluster`]: `cluster.json` (the charm created or adopted the
//!   cluster) and `creating.json` (a creation under way);
//! * [`relations`]: `relations.json` (what was concluded about each client
//!   relation);
//! * [`machine`]: `machine.json` (the machine the last converge tuned for);
//! * [`huge_pages`]: `huge-pages.json` (the server's huge page count for a
//!   configuration);
//! * [`host`]: `host-originals.json` (each host setting before the charm
//!   changed it) and `host-applied.json` (the host plan in force);
//! * [`pending_move`]: `pending-move.json` (a storage move that was blocked);
//! * [`stopped`]: `stopped.json` (`stop` ran: the unit is being removed);
//! * [`memo`]: `memo-<key>` (what an immediate hook tool was last told);
//! * [`tls`]: `tls-*.pem` (the unit's TLS key, its own certificate, the
//!   provider's last accepted one; `crate::tls::files` serves them);
//! * [`ha`]: the HA files (etcd member record, roles digest, detached
//!   services, the watcher's configuration, the archive Patroni's version);
//! * [`legacy`]: adopting the records of revisions before this directory.
//!
//! Files are written through [`crate::fsx::write_atomic`] (exclusive
//! temporary file, `fsync`, rename, `fsync` of the directory) and read with
//! [`crate::fsx::read`]. ARCHITECTURE.md has the table of the files: who
//! writes and reads each, its format, and when it is deleted. Unit removal
//! deletes the whole directory ([`StateDir::remove_all`]).

pub(crate) mod cluster;
pub mod ha;
pub(crate) mod host;
pub(crate) mod huge_pages;
pub(crate) mod legacy;
pub(crate) mod machine;
pub(crate) mod memo;
pub(crate) mod pending_move;
pub(crate) mod relations;
pub(crate) mod stopped;
pub(crate) mod tls;

use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fsx::{self, Owner};

/// Parent of every unit's state directory.
pub const ROOT: &str = "/var/lib/juju-pg-charm";

/// One unit's state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// The unit's, whose cluster is `cluster_name`:
    /// `/var/lib/juju-pg-charm/<cluster name>`.
    pub(crate) fn of_cluster(cluster_name: &str) -> Self {
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
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        match fsx::read(&self.file(name)) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                log::warn!("ignoring {}: {e}", self.file(name).display());
                None
            }
        }
    }

    fn read_json<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let bytes = self.read(name)?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Some(value),
            Err(e) => {
                log::warn!("ignoring {}: {e}", self.file(name).display());
                None
            }
        }
    }

    fn exists(&self, name: &str) -> bool {
        fsx::is_file(&self.file(name))
    }

    /// Writes the file (and the directory, when missing) unless it already
    /// holds `bytes`; returns whether it wrote.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        self.ensure()?;
        fsx::write_atomic(&self.file(name), bytes, Owner::current(), 0o600)
    }

    fn write_json<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<bool> {
        let mut bytes = serde_json::to_vec_pretty(value)
            .with_context(|| format!("encoding {}", self.file(name).display()))?;
        bytes.push(b'\n');
        self.write(name, &bytes)
    }

    fn remove(&self, name: &str) -> Result<()> {
        fsx::remove_file(&self.file(name)).map(drop)
    }

    /// Deletes the whole directory (unit removal), and its parent when no
    /// other unit's state is left in it.
    pub(crate) fn remove_all(&self) -> Result<()> {
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
