//! This unit's own names and places, from the hook context and the test
//! knobs: what Juju calls it, its cluster's name and port, its state
//! directory, and where the host's files and kernel knobs are.

use crate::cluster::Cluster;
use crate::juju::HookContext;
use crate::knobs::TestKnobs;
use crate::state::StateDir;
use crate::tuning::apply::HostRoots;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Juju's name for it (`postgresql/0`).
    pub name: String,
    pub cluster_name: String,
    pub port: u16,
    pub state: StateDir,
    pub host: HostRoots,
}

impl Unit {
    pub fn new(context: &HookContext, knobs: &TestKnobs) -> Self {
        let state = StateDir::of_cluster(&knobs.cluster_name);
        Unit {
            name: context.unit.clone(),
            cluster_name: knobs.cluster_name.clone(),
            port: knobs.port,
            host: HostRoots::for_unit(knobs, state.clone()),
            state,
        }
    }

    /// The unit's cluster for `major`.
    pub fn cluster(&self, major: u32) -> Cluster {
        Cluster {
            major,
            name: self.cluster_name.clone(),
            port: self.port,
        }
    }
}
