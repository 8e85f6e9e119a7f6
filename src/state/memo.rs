//! `memo-<key>`: the value the charm last told Juju under `key`, through an
//! immediate hook tool (its status, its workload version; see
//! [`crate::juju::memo`]).

use anyhow::Result;

use super::StateDir;

fn file(key: &str) -> String {
    format!("memo-{key}")
}

/// Whether `value` is what was last told under `key`.
pub fn holds(state: &StateDir, key: &str, value: &str) -> bool {
    state
        .read(&file(key))
        .is_some_and(|last| last == value.as_bytes())
}

pub fn remember(state: &StateDir, key: &str, value: &str) -> Result<()> {
    state.write(&file(key), value.as_bytes()).map(drop)
}
