//! What the emulated controller knows: models, applications, units,
//! relations and storage, plus the values the operator's commands take and
//! return. Plain data; the behaviour lives in the sibling modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::charm::Charm;
use crate::context::{Bag, Status};
use crate::machine::MachineSpec;
use crate::runner::ProcessResult;

/// One record the charm sent through `juju-log`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub unit: String,
    pub hook: String,
    pub level: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct StorageInstance {
    pub id: String,
    pub kind: String,
    pub location: String,
}

/// A unit's agent and tools directories as its hooks see them: the same
/// paths as on the test host, or `/var/lib/juju/...` on an emulated machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookPaths {
    pub agent_dir: PathBuf,
    pub tools_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    /// The machine id (`JUJU_MACHINE_ID`); an emulated machine of that id
    /// when the unit was deployed to one ([`crate::World::machine`]).
    pub machine: String,
    pub private_address: String,
    pub public_address: String,
    /// The unit's agent directory on the test host (`charm/` is inside).
    pub agent_dir: PathBuf,
    /// Its hook tools directory on the test host.
    pub tools_dir: PathBuf,
    /// The same two directories as its hooks see them.
    pub hook_paths: HookPaths,
    pub status: Status,
    pub workload_version: String,
    pub storage: BTreeMap<String, StorageInstance>,
    pub ports: BTreeSet<String>,
    /// `Some(hook)` while the unit is in error after that hook failed.
    pub failed_hook: Option<String>,
    /// Its `start` hook has succeeded: after a reboot Juju runs `start` again.
    pub started: bool,
    /// A hook of it was running when its machine crashed: Juju runs that
    /// hook again first after the reboot.
    pub interrupted: bool,
    pub departing: bool,
    /// Test-only additions to the hook environment (Juju sets none of these).
    pub extra_env: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Application {
    pub name: String,
    pub model: String,
    pub charm: Option<Charm>,
    /// Options the operator set (defaults come from the charm).
    pub config: BTreeMap<String, Value>,
    pub units: BTreeMap<String, Unit>,
    pub leader: Option<String>,
    pub leader_settings: Bag,
    pub status: Option<Status>,
    pub(super) next_unit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub name: String,
    pub uuid: String,
    /// Model config `egress-subnets`.
    pub egress_subnets: Vec<String>,
}

/// `juju offer`: endpoints of one application that other models may
/// relate to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// `<user>/<model>.<name>`, e.g. `admin/db.pg`.
    pub url: String,
    pub app: String,
    pub endpoints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointRef {
    pub app: String,
    pub endpoint: String,
}

#[derive(Debug, Clone)]
pub struct Relation {
    pub id: u64,
    /// One side for a peer relation, two otherwise.
    pub sides: Vec<EndpointRef>,
    /// Set for a cross-model relation: the application that made the offer.
    pub offering_app: Option<String>,
    /// 32 hex digits: the consumer appears as `remote-<token>` to the offerer.
    pub token: String,
    /// The name the consumer model gives the offer (`juju consume ... <alias>`).
    pub saas_name: String,
    /// `juju integrate --via` CIDRs.
    pub via: Vec<String>,
    pub unit_bags: BTreeMap<String, Bag>,
    pub app_bags: BTreeMap<String, Bag>,
    /// Per local unit: the remote units it has seen join (its `relation-list`).
    pub members: BTreeMap<String, BTreeSet<String>>,
    pub broken: bool,
}

impl Relation {
    pub fn is_peer(&self) -> bool {
        self.sides.len() == 1
    }

    pub fn side_of(&self, app: &str) -> Option<&EndpointRef> {
        self.sides.iter().find(|s| s.app == app)
    }

    pub fn remote_app_of(&self, app: &str) -> Option<&str> {
        if self.is_peer() {
            return Some(&self.sides[0].app);
        }
        self.sides
            .iter()
            .find(|s| s.app != app)
            .map(|s| s.app.as_str())
    }

    /// The name `viewer_app` sees for `real` (a unit or application): across
    /// models the offerer sees `remote-<token>[/n]`, the consumer the SAAS name.
    pub fn view_name(&self, viewer_app: &str, real: &str) -> String {
        let Some(offering) = &self.offering_app else {
            return real.to_string();
        };
        let (app, rest) = match real.split_once('/') {
            Some((app, n)) => (app, format!("/{n}")),
            None => (real, String::new()),
        };
        if app == viewer_app {
            return real.to_string();
        }
        if viewer_app == offering {
            format!("remote-{}{rest}", self.token)
        } else {
            format!("{}{rest}", self.saas_name)
        }
    }

    /// The inverse of [`Relation::view_name`]: the real name behind what
    /// `viewer_app` called `seen`.
    pub fn real_name(&self, viewer_app: &str, seen: &str) -> String {
        let remote = self
            .remote_app_of(viewer_app)
            .unwrap_or(viewer_app)
            .to_string();
        let alias = self.view_name(viewer_app, &remote);
        match seen.split_once('/') {
            Some((app, n)) if app == alias => format!("{remote}/{n}"),
            None if seen == alias => remote,
            _ => seen.to_string(),
        }
    }
}

/// One hook to run on one unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    pub unit: String,
    pub hook: String,
    pub relation: Option<u64>,
    pub remote_unit: Option<String>,
    pub departing_unit: Option<String>,
    pub storage: Option<String>,
    /// Secret hooks: the secret's id, and the revision for
    /// `secret-remove`/`secret-expired`.
    pub secret: Option<String>,
    pub secret_revision: Option<u32>,
}

/// What one hook run did, kept in [`crate::World::trace`].
#[derive(Debug, Clone)]
pub struct HookRecord {
    pub invocation: Invocation,
    pub result: ProcessResult,
}

impl HookRecord {
    pub fn succeeded(&self) -> bool {
        self.result.succeeded()
    }
}

impl std::ops::Deref for HookRecord {
    type Target = ProcessResult;
    fn deref(&self) -> &ProcessResult {
        &self.result
    }
}

/// Result of `juju run <unit> <action>`.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    pub results: BTreeMap<String, Value>,
    pub failed: Option<String>,
    pub process: ProcessResult,
}

/// Where a deployed unit's storage goes.
#[derive(Debug, Clone, Default)]
pub struct StorageRequest {
    pub name: String,
    /// Mount point; `None` uses the charm's declared location.
    pub location: Option<String>,
    /// For a unit on an emulated machine: the block device (mounted) or
    /// host directory (bound) that the machine gets at `location`, as Juju
    /// mounts a provisioned volume. Without it the location is a directory
    /// of the machine's own root disk.
    pub source: Option<PathBuf>,
}

impl StorageRequest {
    /// `--storage <name>=...` mounted at `location` (on the test host).
    pub fn at(name: &str, location: &Path) -> Self {
        Self {
            name: name.to_string(),
            location: Some(location.display().to_string()),
            source: None,
        }
    }

    /// For a unit on a machine: `source` (a block device or a directory of
    /// the test host) mounted at the charm's declared location.
    pub fn from_source(name: &str, source: &Path) -> Self {
        Self {
            name: name.to_string(),
            location: None,
            source: Some(source.to_path_buf()),
        }
    }
}

/// Options of `deploy`, like the CLI's.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub units: u32,
    pub config: BTreeMap<String, String>,
    pub storage: Vec<StorageRequest>,
    /// Addresses given to units in order (private, public); defaults are made up.
    /// Ignored for units on emulated machines, which have their own.
    pub addresses: Vec<(String, String)>,
    /// Put each unit on a new emulated machine like this one (its own
    /// network, mounts and processes). `None`: the units run on the test
    /// host itself, as before machines existed.
    pub machine: Option<MachineSpec>,
}

/// Options of `add-unit`.
#[derive(Debug, Clone, Default)]
pub struct UnitOptions {
    /// (private, public) address; ignored on an emulated machine.
    pub addresses: Option<(String, String)>,
    pub storage: Vec<StorageRequest>,
    /// A new emulated machine for the unit; `None`: the test host.
    pub machine: Option<MachineSpec>,
}
