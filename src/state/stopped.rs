//! `stopped.json`: the `stop` hook ran. Juju runs `stop` only on a unit it
//! is removing, so the hooks that follow it (`-relation-broken`, a late
//! `update-status`) must not start again what `stop` stopped: with every
//! unit of an application leaving at once, a restarted etcd cannot even
//! find a quorum. `install` and `start` clear it (a unit that starts is
//! not leaving).

use anyhow::Result;

use super::StateDir;

const STOPPED: &str = "stopped.json";

/// Records that `stop` ran.
pub fn mark(state: &StateDir) -> Result<()> {
    state.write_json(STOPPED, &true).map(drop)
}

pub fn is_marked(state: &StateDir) -> bool {
    state.exists(STOPPED)
}

/// The unit starts again.
pub fn clear(state: &StateDir) -> Result<()> {
    if state.exists(STOPPED) {
        state.remove(STOPPED)?;
    }
    Ok(())
}
