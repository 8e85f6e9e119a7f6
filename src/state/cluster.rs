//! `cluster.json`: that the charm created (or adopted) the unit's cluster,
//! and `creating.json`: a creation or adoption under way.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::StateDir;

const CLUSTER: &str = "cluster.json";
const CREATING: &str = "creating.json";

/// That the charm created (or adopted) the unit's cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub major: u32,
    /// The unit that created or adopted it.
    pub unit: String,
    /// `locale` and `encoding` at creation: they cannot change later.
    pub locale: Option<String>,
    pub encoding: Option<String>,
}

impl OwnerRecord {
    pub fn load(state: &StateDir) -> Option<Self> {
        state.read_json(CLUSTER)
    }

    pub fn save(&self, state: &StateDir) -> Result<()> {
        state
            .write_json(CLUSTER, self)
            .map(drop)
            .context("recording that the charm owns the cluster")
    }
}

/// Recorded before `pg_createcluster` runs, so a retry after a kill can
/// finish or redo the creation or adoption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creating {
    pub major: u32,
    /// Adopting an existing data directory rather than running initdb.
    pub adopting: bool,
}

impl Creating {
    pub fn load(state: &StateDir) -> Option<Self> {
        state.read_json(CREATING)
    }

    pub fn save(&self, state: &StateDir) -> Result<()> {
        state.write_json(CREATING, self).map(drop)
    }

    /// The creation or adoption is finished (or redone).
    pub fn clear(state: &StateDir) -> Result<()> {
        state.remove(CREATING)
    }
}
