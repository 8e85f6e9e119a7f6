//! Whether the running server has read the configuration files the charm
//! writes, and making it do so: reload when a file changed after the
//! server last loaded its configuration, restart once for settings that
//! wait for one.
//!
//! The decision follows the files and the server, not the hook: a hook
//! killed between writing `pg_hba.conf` and reloading leaves a file newer
//! than `pg_conf_load_time()`, and the retry reloads although it finds the
//! file already as it wants it. A hook killed between the reload and the
//! restart leaves `pending_restart` settings, and the retry restarts.
//!
//! A file's change time is its inode's (`ctime`), which writing, renaming
//! into place, `chmod` and `chown` all move forward. If the clock jumps
//! backwards, files may look newer than every load for a while, which costs
//! a needless reload per hook and nothing else.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{conf, control, db, Cluster};

/// What to do so that the server runs with what its files say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sync {
    /// Nothing: it already does.
    Current,
    Reload,
    /// Restart once, for these settings.
    Restart(Vec<String>),
}

/// The decision, from when the server last loaded its configuration, when
/// the newest of the charm's files changed (both in microseconds since the
/// epoch) and the settings waiting for a restart.
pub fn plan_sync(loaded_at: i64, files_changed_at: i64, pending_restart: &[String]) -> Sync {
    if files_changed_at >= loaded_at {
        Sync::Reload
    } else if !pending_restart.is_empty() {
        Sync::Restart(pending_restart.to_vec())
    } else {
        Sync::Current
    }
}

/// The files the charm writes that the server reads on reload.
fn charm_files(cluster: &Cluster) -> Vec<PathBuf> {
    let dir = cluster.conf_dir();
    vec![
        cluster.conf_file(),
        dir.join(conf::CHARM_CONF),
        dir.join("pg_hba.conf"),
        dir.join("pg_ident.conf"),
        // The TLS files (crate::tls::files): PostgreSQL reloads them on
        // SIGHUP too.
        dir.join("tls/cert.pem"),
        dir.join("tls/key.pem"),
        dir.join("tls/ca.pem"),
    ]
}

/// The newest change time of `cluster`'s files, in microseconds.
fn files_changed_at(cluster: &Cluster) -> Result<i64> {
    let mut newest = i64::MIN;
    for path in charm_files(cluster) {
        match std::fs::metadata(&path) {
            Ok(meta) => newest = newest.max(meta.ctime() * 1_000_000 + meta.ctime_nsec() / 1000),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(newest)
}

/// Brings the running server in line with its files (see the module docs).
/// Returns problems to show: lines of `pg_hba.conf` the server refuses, in
/// which case it keeps using its previous rules.
pub fn sync_with_files(cluster: &Cluster) -> Result<Vec<String>> {
    let state = db::loaded_state(cluster)?;
    let mut pending = state.pending_restart.clone();
    match plan_sync(state.loaded_at_micros, files_changed_at(cluster)?, &pending) {
        Sync::Current => {}
        Sync::Reload => pending = db::reload(cluster)?,
        Sync::Restart(_) => {}
    }
    if !pending.is_empty() {
        log::info!("restarting once for {}", pending.join(", "));
        control::restart(cluster)?;
    }
    // pg_hba_file_rules reads the file on disk, so this is the file as now.
    Ok(state
        .hba_errors
        .into_iter()
        .map(|error| format!("pg_hba.conf {error}; the server keeps its previous rules"))
        .collect())
}

/// What [`sync_without_restart`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    /// As [`sync_with_files`] returns them.
    pub hba_problems: Vec<String>,
    /// Settings waiting for a restart, which someone else (Patroni) does.
    pub pending_restart: Vec<String>,
}

/// [`sync_with_files`] for a server the charm must not restart (Patroni
/// runs it): reloads when a file changed, and reports what waits for a
/// restart.
pub fn sync_without_restart(cluster: &Cluster) -> Result<Synced> {
    let state = db::loaded_state(cluster)?;
    let mut pending = state.pending_restart.clone();
    if let Sync::Reload = plan_sync(state.loaded_at_micros, files_changed_at(cluster)?, &pending) {
        pending = db::reload(cluster)?;
    }
    Ok(Synced {
        hba_problems: state
            .hba_errors
            .into_iter()
            .map(|error| format!("pg_hba.conf {error}; the server keeps its previous rules"))
            .collect(),
        pending_restart: pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_follows_its_files() {
        let none: &[String] = &[];
        let pending = ["shared_buffers".to_string()];
        let cases = [
            // Read after the last change: nothing to do.
            (2_000, 1_000, none, Sync::Current),
            // Changed after the last load (a hook killed before reloading).
            (1_000, 2_000, none, Sync::Reload),
            // Same microsecond: reload, to be sure.
            (1_000, 1_000, none, Sync::Reload),
            // Reloaded, but killed before the restart.
            (2_000, 1_000, &pending[..], Sync::Restart(pending.to_vec())),
            // A reload comes first; its pending settings then restart.
            (1_000, 2_000, &pending[..], Sync::Reload),
        ];
        for (loaded, changed, pending, want) in cases {
            assert_eq!(
                plan_sync(loaded, changed, pending),
                want,
                "{loaded} {changed} {pending:?}"
            );
        }
    }
}
