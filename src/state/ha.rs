//! The HA files (issue 11; not used by the converge yet): their names live
//! here, their formats with the `ha` code that writes them (generic `T`).
//!
//! * `ha-etcd.json`: the etcd member this unit was given (`ha::converge`);
//! * `ha-roles.json`: a digest of the roles last made in PostgreSQL;
//! * `service-<kind>.json`, `pid-<kind>.json`, `services.lock`: the
//!   detached services (`ha::services::Detached`, no systemd);
//! * `watcher.json`: what `pg-ha-watcher` watches and supervises;
//! * `ha-diverged.json`: when this standby was first seen diverged;
//! * `ha-set-aside.json`: the last re-clone's set-aside of diverged data.

use std::path::PathBuf;

use anyhow::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StateDir;

const ETCD_RECORD: &str = "ha-etcd.json";
const ROLES_DIGEST: &str = "ha-roles.json";
const SERVICES_LOCK: &str = "services.lock";
const ARCHIVE_PATRONI: &str = "ha-archive-patroni.json";
const WATCHER_CONFIG: &str = "watcher.json";
const DIVERGED: &str = "ha-diverged.json";
const SET_ASIDE: &str = "ha-set-aside.json";

/// The name of the watcher's configuration file, for messages.
pub const WATCHER_CONFIG_FILE: &str = WATCHER_CONFIG;

pub fn etcd_record<T: DeserializeOwned>(state: &StateDir) -> Option<T> {
    state.read_json(ETCD_RECORD)
}

/// What `/usr/bin/patroni --version` said, and the program file it was
/// asked of (`<size>:<mtime>`): asking again costs a Python start-up.
pub fn archive_patroni_memo(state: &StateDir) -> Option<(String, String)> {
    state.read_json(ARCHIVE_PATRONI)
}

pub fn save_archive_patroni_memo(state: &StateDir, program: &str, version: &str) -> Result<()> {
    state
        .write_json(ARCHIVE_PATRONI, &(program.to_string(), version.to_string()))
        .map(drop)
}

/// Whether an earlier hook gave this unit an etcd member.
pub fn has_etcd_record(state: &StateDir) -> bool {
    state.path().join(ETCD_RECORD).exists()
}

pub fn save_etcd_record<T: Serialize>(state: &StateDir, record: &T) -> Result<()> {
    state.write_json(ETCD_RECORD, record).map(drop)
}

pub fn clear_etcd_record(state: &StateDir) -> Result<()> {
    state.remove(ETCD_RECORD)
}

pub fn roles_digest(state: &StateDir) -> Option<String> {
    state.read_json(ROLES_DIGEST)
}

pub fn save_roles_digest(state: &StateDir, digest: &str) -> Result<()> {
    state.write_json(ROLES_DIGEST, digest).map(drop)
}

/// The lock file the charm and the watcher hold around service changes,
/// created when missing.
pub fn services_lock(state: &StateDir) -> Result<PathBuf> {
    if !state.exists(SERVICES_LOCK) {
        state.write(SERVICES_LOCK, b"")?;
    }
    Ok(state.file(SERVICES_LOCK))
}

/// The two files of a detached service: what to run (`service-<kind>.json`)
/// and the process running it (`pid-<kind>.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceFile {
    Spec,
    Pid,
}

impl ServiceFile {
    fn name(self, kind: &str) -> String {
        match self {
            ServiceFile::Spec => format!("service-{kind}.json"),
            ServiceFile::Pid => format!("pid-{kind}.json"),
        }
    }
}

pub fn service_record<T: DeserializeOwned>(
    state: &StateDir,
    file: ServiceFile,
    kind: &str,
) -> Option<T> {
    state.read_json(&file.name(kind))
}

pub fn save_service_record<T: Serialize>(
    state: &StateDir,
    file: ServiceFile,
    kind: &str,
    record: &T,
) -> Result<()> {
    state.write_json(&file.name(kind), record).map(drop)
}

pub fn remove_service_record(state: &StateDir, file: ServiceFile, kind: &str) -> Result<()> {
    state.remove(&file.name(kind))
}

pub fn watcher_config<T: DeserializeOwned>(state: &StateDir) -> Option<T> {
    state.read_json(WATCHER_CONFIG)
}

pub fn save_watcher_config<T: Serialize>(state: &StateDir, config: &T) -> Result<()> {
    state.write_json(WATCHER_CONFIG, config).map(drop)
}

pub fn diverged<T: DeserializeOwned>(state: &StateDir) -> Option<T> {
    state.read_json(DIVERGED)
}

pub fn save_diverged<T: Serialize>(state: &StateDir, noticed: &T) -> Result<()> {
    state.write_json(DIVERGED, noticed).map(drop)
}

pub fn clear_diverged(state: &StateDir) -> Result<()> {
    state.remove(DIVERGED)
}

pub fn set_aside<T: DeserializeOwned>(state: &StateDir) -> Option<T> {
    state.read_json(SET_ASIDE)
}

pub fn save_set_aside<T: Serialize>(state: &StateDir, record: &T) -> Result<()> {
    state.write_json(SET_ASIDE, record).map(drop)
}
