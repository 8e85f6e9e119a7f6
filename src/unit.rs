//! This unit's own names and places, from the hook context and the test
//! knobs: what Juju calls it, its cluster's name and port, its state
//! directory, and where the host's files and kernel knobs are.

use anyhow::{Context, Result};

use crate::cluster::Cluster;
use crate::juju::HookContext;
use crate::juju::{self, WorkloadStatus};
use crate::knobs::TestKnobs;
use crate::state::cluster::OwnerRecord;
use crate::state::{self, StateDir};
use crate::tuning::HostRoots;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Juju's name for it (`postgresql/0`).
    pub name: String,
    pub cluster_name: String,
    pub port: u16,
    pub state: StateDir,
    pub host: HostRoots,
    /// Whether this unit may join a replicated cluster ([`TestKnobs::ha`]).
    pub ha: bool,
}

impl Unit {
    pub fn new(context: &HookContext, knobs: &TestKnobs) -> Self {
        let state = StateDir::of_cluster(&knobs.cluster_name);
        Unit {
            name: context.unit.clone(),
            cluster_name: knobs.cluster_name.clone(),
            port: knobs.port,
            host: HostRoots::for_unit(knobs, state.clone()),
            ha: knobs.ha,
            state,
        }
    }

    /// The cluster this charm created on this machine, whatever its
    /// version (adopting the records of an earlier revision on the way).
    pub fn existing_cluster(&self) -> Option<Cluster> {
        let record = OwnerRecord::load(&self.state).or_else(|| {
            state::legacy::adopt(&self.state, &|major| self.cluster(major).conf_dir())
        })?;
        Some(self.cluster(record.major)).filter(Cluster::exists)
    }

    /// Sets the unit's status (only when it changed).
    pub fn set_status(&self, status: WorkloadStatus, message: &str) -> Result<()> {
        juju::status_set_if_changed(&self.state, status, message).with_context(|| {
            format!(
                "could not set the unit status to {} \"{message}\" (Juju retries the hook)",
                status.as_str()
            )
        })
    }

    /// Says what the charm is doing: logged, and a maintenance status.
    pub fn progress(&self, message: &str) {
        log::info!("{message}");
        if let Err(e) = self.set_status(WorkloadStatus::Maintenance, message) {
            log::warn!("{e:#}");
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
