//! `pending-move.json`: a storage move that could not go ahead, and its
//! destination as it was then, so that `update-status` retries the move
//! once the destination changes.

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::StateDir;

const PENDING_MOVE: &str = "pending-move.json";

/// The destination's file system and directory when the move was blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingMove {
    pub target: PathBuf,
    pub free_bytes: u64,
    pub free_inodes: u64,
    pub read_only: bool,
    /// The nearest existing directory and its change time in nanoseconds:
    /// a move aside changes them.
    pub nearest: PathBuf,
    pub changed_at_ns: i128,
}

impl PendingMove {
    pub fn load(state: &StateDir) -> Option<Self> {
        state.read_json(PENDING_MOVE)
    }

    pub fn save(&self, state: &StateDir) -> Result<()> {
        state.write_json(PENDING_MOVE, self).map(drop)
    }

    /// The move is done, or no longer needed.
    pub fn clear(state: &StateDir) -> Result<()> {
        if state.exists(PENDING_MOVE) {
            state.remove(PENDING_MOVE)?;
        }
        Ok(())
    }
}
