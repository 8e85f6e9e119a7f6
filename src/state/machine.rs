//! `machine.json`: the machine the last converge tuned for, which
//! `update-status` compares with the machine as it is now.

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::StateDir;

const MACHINE: &str = "machine.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRecord {
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    /// [`crate::tuning::machine::machine_digest`] then.
    pub digest: String,
}

impl MachineRecord {
    pub fn load(state: &StateDir) -> Option<Self> {
        state.read_json(MACHINE)
    }

    pub fn save(&self, state: &StateDir) -> Result<()> {
        state.write_json(MACHINE, self).map(drop)
    }
}
