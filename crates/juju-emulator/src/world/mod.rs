//! The emulated controller.
//!
//! * `model`: what it knows (models, applications, units, relations,
//!   storage) and the values the operator's commands take;
//! * `operator`: the commands an operator runs (`deploy`, `config`,
//!   `integrate`, `add-unit`, `remove-unit`, ...), each queueing hooks in the
//!   order the contract's section 6 gives;
//! * `sequencer`: the queue, run one hook at a time (the machine lock,
//!   §1.4), with retries;
//! * `snapshot`: the hook context and environment a hook gets (§2, §4);
//! * `commit`: what a hook's tools did, applied at once or on exit 0 (§5),
//!   and the `-changed` hooks relation writes cause on the other side;
//! * `secrets`: stored secrets, who may read them, and their changes;
//! * `machines`: units on emulated machines, and the operator's crash,
//!   restart, partition and heal of them;
//! * `agent`: the agent loop a test waits in: `juju-exec` requests from
//!   the machines, periodic `update-status`, [`World::run_until`];
//! * `naming`: made-up UUIDs, tokens and CIDRs.
//!
//! [`World`]'s state is private: tests act through the operator's commands
//! and read through the accessors below.

mod agent;
mod commit;
mod machines;
pub mod model;
mod naming;
mod operator;
mod secrets;
mod sequencer;
mod snapshot;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::context::Bag;
pub use agent::ExecRecord;
pub use machines::LEADERSHIP_LEASE;
pub use model::{
    ActionOutcome, Application, DeployOptions, EndpointRef, HookPaths, HookRecord, Invocation,
    LogRecord, Model, Offer, Relation, StorageInstance, StorageRequest, Unit, UnitOptions,
};
use naming::app_of;
use secrets::StoredSecret;

pub struct World {
    /// The agent loop's listeners go first: no request arrives while the
    /// rest is torn down.
    agent: agent::Agent,
    /// Emulated machines by id. Before `network`, so that they (their
    /// processes, links and namespaces) go before the bridge.
    machines: BTreeMap<String, crate::machine::Machine>,
    network: Option<crate::machine::net::Bridge>,
    root: PathBuf,
    tool_binary: PathBuf,
    juju_version: String,
    models: BTreeMap<String, Model>,
    apps: BTreeMap<String, Application>,
    relations: BTreeMap<u64, Relation>,
    /// `juju offer`s by URL.
    offers: BTreeMap<String, Offer>,
    secrets: BTreeMap<String, StoredSecret>,
    queue: VecDeque<Invocation>,
    trace: Vec<HookRecord>,
    execs: Vec<ExecRecord>,
    logs: Vec<LogRecord>,
    /// How many times `settle` retries a failed hook before giving up
    /// (Juju retries forever with back-off; tests want a bound).
    hook_retries: u32,
    /// Test-only additions to every hook's environment (Juju sets none of
    /// these); e.g. to point a charm at a fixture tree. Empty by default.
    test_env: BTreeMap<String, String>,
    next_relation: u64,
    next_storage: BTreeMap<String, u32>,
    next_machine: u32,
    next_context: u64,
}

/// Finds the multi-call hook-tool binary: `$JUJU_EMULATOR_BIN`, or
/// `juju-emulator` beside (or one level above) the running executable.
pub fn locate_tool_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("JUJU_EMULATOR_BIN") {
        return std::fs::canonicalize(&path)
            .with_context(|| format!("JUJU_EMULATOR_BIN={}", PathBuf::from(&path).display()));
    }
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join("juju-emulator");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("cannot find the juju-emulator binary: run `cargo build -p juju-emulator` or set JUJU_EMULATOR_BIN")
}

impl World {
    pub fn new(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("tools"))?;
        let tool_binary = locate_tool_binary()?;
        // The hook tools (and juju-exec) of units on the test host link to
        // this copy; juju-exec finds the agent's socket next to its parent.
        crate::machine::place_binary(
            &tool_binary,
            &root.join("tools").join(crate::machine::TOOLS_BINARY),
        )?;
        let mut agent = agent::Agent::new();
        agent.listen(None, &root.join(crate::exec::SOCKET))?;
        Ok(Self {
            agent,
            machines: BTreeMap::new(),
            network: None,
            root: root.to_path_buf(),
            tool_binary,
            juju_version: "3.6.4".into(),
            models: BTreeMap::new(),
            apps: BTreeMap::new(),
            relations: BTreeMap::new(),
            offers: BTreeMap::new(),
            secrets: BTreeMap::new(),
            queue: VecDeque::new(),
            trace: Vec::new(),
            execs: Vec::new(),
            logs: Vec::new(),
            hook_retries: 0,
            test_env: BTreeMap::new(),
            next_relation: 0,
            next_storage: BTreeMap::new(),
            next_machine: 0,
            next_context: 5577006791947779410,
        })
    }

    /// Where the world keeps charms, agent and tools directories.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `JUJU_VERSION` as hooks see it (default 3.6.4).
    pub fn juju_version(&self) -> &str {
        &self.juju_version
    }

    pub fn set_juju_version(&mut self, version: &str) {
        self.juju_version = version.to_string();
    }

    /// How many times [`World::settle`] retries a failed hook before it
    /// gives up (0 by default; Juju retries forever with back-off).
    pub fn set_hook_retries(&mut self, retries: u32) {
        self.hook_retries = retries;
    }

    /// Test-only variables added to every hook's environment.
    pub fn test_env(&self) -> &BTreeMap<String, String> {
        &self.test_env
    }

    /// Adds a test-only variable to every hook's environment (Juju sets none
    /// of these), e.g. to point a charm at a fixture tree.
    pub fn set_test_env(&mut self, key: &str, value: &str) {
        self.test_env.insert(key.to_string(), value.to_string());
    }

    pub fn extend_test_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        self.test_env.extend(vars);
    }

    pub fn model(&self, name: &str) -> Result<&Model> {
        self.models
            .get(name)
            .ok_or_else(|| anyhow!("model {name:?} not found"))
    }

    pub fn apps(&self) -> impl Iterator<Item = &Application> {
        self.apps.values()
    }

    pub fn app(&self, name: &str) -> Result<&Application> {
        self.apps
            .get(name)
            .ok_or_else(|| anyhow!("application {name:?} not found"))
    }

    pub fn unit(&self, name: &str) -> Result<&Unit> {
        self.app(app_of(name))?
            .units
            .get(name)
            .ok_or_else(|| anyhow!("unit {name:?} not found"))
    }

    fn unit_mut(&mut self, name: &str) -> Result<&mut Unit> {
        self.apps
            .get_mut(app_of(name))
            .and_then(|a| a.units.get_mut(name))
            .ok_or_else(|| anyhow!("unit {name:?} not found"))
    }

    pub fn relation(&self, id: u64) -> Option<&Relation> {
        self.relations.get(&id)
    }

    /// Hooks waiting to run, in order.
    pub fn queue(&self) -> impl Iterator<Item = &Invocation> {
        self.queue.iter()
    }

    /// Drops every queued hook (a test that runs them by hand).
    pub fn clear_queue(&mut self) {
        self.queue.clear();
    }

    /// Every hook and action run so far, in order.
    pub fn trace(&self) -> &[HookRecord] {
        &self.trace
    }

    /// Every `juju-log` and `action-log` record, in order.
    pub fn logs(&self) -> &[LogRecord] {
        &self.logs
    }

    /// Hooks run so far on `unit`, in order.
    pub fn hook_names(&self, unit: &str) -> Vec<String> {
        self.trace
            .iter()
            .filter(|r| r.invocation.unit == unit)
            .map(|r| r.invocation.hook.clone())
            .collect()
    }

    /// The bag `owner` (a unit or application) published in relation `id`.
    pub fn bag(&self, id: u64, owner: &str) -> Option<&Bag> {
        let rel = self.relations.get(&id)?;
        rel.unit_bags.get(owner).or_else(|| rel.app_bags.get(owner))
    }

    /// The name `viewer_app` sees for `real` in relation `id` (across
    /// models the offerer sees `remote-<token>/<n>`).
    pub fn name_seen_by(&self, id: u64, viewer_app: &str, real: &str) -> String {
        self.relations[&id].view_name(viewer_app, real)
    }

    /// A `juju status`-like summary: one line per unit.
    pub fn status_text(&self) -> String {
        let mut out = String::new();
        for model in self.models.values() {
            out.push_str(&format!("Model {}\n", model.name));
            for app in self.apps.values().filter(|a| a.model == model.name) {
                for unit in app.units.values() {
                    let leader = if app.leader.as_deref() == Some(unit.name.as_str()) {
                        "*"
                    } else {
                        ""
                    };
                    let state = match &unit.failed_hook {
                        Some(hook) => format!("error     hook failed: {hook:?}"),
                        None => format!("{:<9} {}", unit.status.status, unit.status.message),
                    };
                    let ports: Vec<&str> = unit.ports.iter().map(String::as_str).collect();
                    out.push_str(&format!(
                        "  {:<28} {state}  [{}] {}\n",
                        format!("{}{leader}", unit.name),
                        unit.public_address,
                        ports.join(",")
                    ));
                }
            }
        }
        out
    }
}
