//! The emulated controller: models, applications, units, relations, storage,
//! secrets and the queue of hooks, plus the operations an operator runs
//! (`deploy`, `config`, `integrate`, `add-unit`, `remove-unit`, ...), each of
//! which queues hooks in the order the contract's section 6 gives. `settle`
//! runs the queue one hook at a time (the machine lock, §1.4), commits what a
//! successful hook buffered (§5), and queues the `-changed` hooks that its
//! relation writes cause on the other side.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

use crate::charm::{unpack, Charm};
use crate::context::{
    ActionContext, Bag, HookContext, Immediate, NetworkInfo, RelationContext, SecretContext,
    SecretOp, Status, StorageContext,
};
use crate::runner::{run_process, ProcessResult, AGENT_PATH};
use crate::tools::TOOL_NAMES;

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

#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    pub machine: String,
    pub private_address: String,
    pub public_address: String,
    pub agent_dir: PathBuf,
    pub tools_dir: PathBuf,
    pub status: Status,
    pub workload_version: String,
    pub storage: BTreeMap<String, StorageInstance>,
    pub ports: BTreeSet<String>,
    /// `Some(hook)` while the unit is in error after that hook failed.
    pub failed_hook: Option<String>,
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
    next_unit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub name: String,
    pub uuid: String,
    /// Model config `egress-subnets`.
    pub egress_subnets: Vec<String>,
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
}

#[derive(Debug, Clone)]
struct StoredSecret {
    secret: SecretContext,
    grants: Vec<(u64, Option<String>)>,
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
}

/// What one hook run did, kept in [`World::trace`].
#[derive(Debug, Clone)]
pub struct HookRecord {
    pub invocation: Invocation,
    pub result: ProcessResult,
}

/// Result of `juju run <unit> <action>`.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    pub results: BTreeMap<String, Value>,
    pub failed: Option<String>,
    pub process: ProcessResult,
}

/// Where a deployed unit's storage goes.
#[derive(Debug, Clone)]
pub struct StorageRequest {
    pub name: String,
    /// Mount point; `None` uses the charm's declared location.
    pub location: Option<String>,
}

impl StorageRequest {
    /// `--storage <name>=...` mounted at `location`.
    pub fn at(name: &str, location: &Path) -> Self {
        Self {
            name: name.to_string(),
            location: Some(location.display().to_string()),
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
    pub addresses: Vec<(String, String)>,
}

pub struct World {
    pub root: PathBuf,
    pub tool_binary: PathBuf,
    pub juju_version: String,
    pub models: BTreeMap<String, Model>,
    pub apps: BTreeMap<String, Application>,
    pub relations: BTreeMap<u64, Relation>,
    secrets: BTreeMap<String, StoredSecret>,
    pub queue: VecDeque<Invocation>,
    pub trace: Vec<HookRecord>,
    pub logs: Vec<LogRecord>,
    /// How many times `settle` retries a failed hook before giving up
    /// (Juju retries forever with back-off; tests want a bound).
    pub hook_retries: u32,
    /// Kill the next hook that matches after this long (crash testing).
    pub kill_next: Option<(String, Duration)>,
    /// Test-only additions to every hook's environment (Juju sets none of
    /// these); e.g. to point a charm at a fixture tree. Empty by default.
    pub test_env: BTreeMap<String, String>,
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

fn model_uuid(name: &str) -> String {
    let h = fnv(name);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h as u32,
        (h >> 32) as u16,
        (h >> 48) as u16 & 0xfff,
        (h >> 20) as u16 & 0xfff,
        h & 0xffff_ffff_ffff
    )
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn app_of(unit: &str) -> &str {
    unit.split('/').next().unwrap_or(unit)
}

impl World {
    pub fn new(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: root.to_path_buf(),
            tool_binary: locate_tool_binary()?,
            juju_version: "3.6.4".into(),
            models: BTreeMap::new(),
            apps: BTreeMap::new(),
            relations: BTreeMap::new(),
            secrets: BTreeMap::new(),
            queue: VecDeque::new(),
            trace: Vec::new(),
            logs: Vec::new(),
            hook_retries: 0,
            kill_next: None,
            test_env: BTreeMap::new(),
            next_relation: 0,
            next_storage: BTreeMap::new(),
            next_machine: 0,
            next_context: 5577006791947779410,
        })
    }

    pub fn add_model(&mut self, name: &str) -> &mut Model {
        self.models
            .entry(name.to_string())
            .or_insert_with(|| Model {
                name: name.to_string(),
                uuid: model_uuid(name),
                egress_subnets: Vec::new(),
            })
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

    /// `juju deploy <charm> <app> -m <model>`: queues the install phase of
    /// every unit (§6.1). Call [`World::settle`] to run it.
    pub fn deploy(
        &mut self,
        model: &str,
        app: &str,
        charm_source: &Path,
        opts: DeployOptions,
    ) -> Result<()> {
        if !self.models.contains_key(model) {
            bail!("model {model:?} not found");
        }
        if self.apps.contains_key(app) {
            bail!("application {app:?} already exists");
        }
        let staging = self.root.join("charms").join(app);
        unpack(charm_source, &staging)?;
        let charm = Charm::load(&staging)?;
        let mut config = BTreeMap::new();
        for (key, raw) in &opts.config {
            config.insert(key.clone(), charm.typed_config_value(key, raw)?);
        }
        self.apps.insert(
            app.to_string(),
            Application {
                name: app.to_string(),
                model: model.to_string(),
                charm: Some(charm),
                config,
                units: BTreeMap::new(),
                leader: None,
                leader_settings: Bag::new(),
                status: None,
                next_unit: 0,
            },
        );
        for i in 0..opts.units.max(1) {
            let addresses = opts.addresses.get(i as usize).cloned();
            self.add_unit_with(app, &opts.storage, addresses)?;
        }
        Ok(())
    }

    /// `juju add-unit <app>`.
    pub fn add_unit(&mut self, app: &str, addresses: Option<(String, String)>) -> Result<String> {
        self.add_unit_with(app, &[], addresses)
    }

    fn add_unit_with(
        &mut self,
        app_name: &str,
        storage: &[StorageRequest],
        addresses: Option<(String, String)>,
    ) -> Result<String> {
        let machine = self.next_machine;
        self.next_machine += 1;
        let app = self.apps.get_mut(app_name).expect("app exists");
        let n = app.next_unit;
        app.next_unit += 1;
        let name = format!("{app_name}/{n}");
        let tag = format!("unit-{app_name}-{n}");
        let agent_dir = self.root.join("agents").join(&tag);
        let tools_dir = self.root.join("tools").join(&tag);
        let (private_address, public_address) = addresses.unwrap_or_else(|| {
            // Made-up addresses that stay valid for any number of machines;
            // nothing is ever sent to them.
            let host = 10 + machine;
            (
                format!("10.1.{}.{}", host / 256, host % 256),
                format!("100.64.{}.{}", host / 256, host % 256),
            )
        });
        let charm = app.charm.clone().expect("deployed app has a charm");
        unpack(&charm.dir, &agent_dir.join("charm"))?;
        std::fs::create_dir_all(&tools_dir)?;
        for tool in TOOL_NAMES {
            let link = tools_dir.join(tool);
            let _ = std::fs::remove_file(&link);
            symlink(&self.tool_binary, &link)
                .with_context(|| format!("linking {}", link.display()))?;
        }
        let unit = Unit {
            name: name.clone(),
            machine: machine.to_string(),
            private_address,
            public_address,
            agent_dir,
            tools_dir,
            status: Status {
                status: "waiting".into(),
                message: "agent initialising".into(),
            },
            workload_version: String::new(),
            storage: BTreeMap::new(),
            ports: BTreeSet::new(),
            failed_hook: None,
            departing: false,
            extra_env: BTreeMap::new(),
        };
        let leader_needed = app.leader.is_none();
        if leader_needed {
            app.leader = Some(name.clone());
        }
        app.units.insert(name.clone(), unit);

        // §6.1: storage-attached (all of it) before install on machines.
        for request in storage {
            let id = self.attach_storage(&name, &request.name, request.location.clone())?;
            self.enqueue(Invocation {
                unit: name.clone(),
                hook: format!("{}-storage-attached", request.name),
                storage: Some(id),
                ..Default::default()
            });
        }
        self.enqueue_hook(&name, "install");
        // Peer relations exist from the first unit on.
        let peers: Vec<String> = charm.metadata.peers.keys().cloned().collect();
        for endpoint in peers {
            let existing = self.relations.values().find(|r| {
                r.is_peer() && r.sides[0].app == app_name && r.sides[0].endpoint == endpoint
            });
            let id = match existing {
                Some(r) => r.id,
                None => self.new_relation(
                    vec![EndpointRef {
                        app: app_name.to_string(),
                        endpoint: endpoint.clone(),
                    }],
                    None,
                    String::new(),
                    Vec::new(),
                ),
            };
            self.enter_scope(id, &name);
            self.enqueue_relation(&name, id, "created", None);
        }
        let others: Vec<u64> = self
            .relations
            .values()
            .filter(|r| !r.is_peer() && !r.broken && r.side_of(app_name).is_some())
            .map(|r| r.id)
            .collect();
        for id in &others {
            self.enter_scope(*id, &name);
            self.enqueue_relation(&name, *id, "created", None);
        }
        let hook = if leader_needed {
            "leader-elected"
        } else {
            "leader-settings-changed"
        };
        self.enqueue_hook(&name, hook);
        self.enqueue_hook(&name, "config-changed");
        self.enqueue_hook(&name, "start");
        // Joins with everyone already there, on both sides.
        let relation_ids: Vec<u64> = self
            .relations
            .values()
            .filter(|r| !r.broken && r.side_of(app_name).is_some())
            .map(|r| r.id)
            .collect();
        for id in relation_ids {
            self.join_unit_everywhere(id, &name);
        }
        Ok(name)
    }

    fn attach_storage(
        &mut self,
        unit: &str,
        name: &str,
        location: Option<String>,
    ) -> Result<String> {
        let charm = self.app(app_of(unit))?.charm.clone().expect("charm");
        let meta = charm
            .metadata
            .storage
            .get(name)
            .ok_or_else(|| anyhow!("charm has no storage {name:?}"))?
            .clone();
        let n = self.next_storage.entry(name.to_string()).or_insert(0);
        let id = format!("{name}/{n}");
        *n += 1;
        let location = location.unwrap_or_else(|| meta.location_for(name, &id));
        self.unit_mut(unit)?.storage.insert(
            id.clone(),
            StorageInstance {
                id: id.clone(),
                kind: meta.kind.clone(),
                location,
            },
        );
        Ok(id)
    }

    /// Test-only: adds a variable to one unit's hook environment (Juju sets
    /// none of these), e.g. to give each unit on the test machine its own
    /// resources.
    pub fn set_unit_env(&mut self, unit: &str, key: &str, value: &str) -> Result<()> {
        self.unit_mut(unit)?
            .extra_env
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// `juju add-storage <unit> <name>`: attaches a new instance to a running unit.
    pub fn add_storage(
        &mut self,
        unit: &str,
        name: &str,
        location: Option<String>,
    ) -> Result<String> {
        let id = self.attach_storage(unit, name, location)?;
        self.enqueue(Invocation {
            unit: unit.to_string(),
            hook: format!("{name}-storage-attached"),
            storage: Some(id.clone()),
            ..Default::default()
        });
        Ok(id)
    }

    /// `juju detach-storage <id>`: `<name>-storage-detaching`, then the instance is gone.
    pub fn detach_storage(&mut self, unit: &str, id: &str) -> Result<()> {
        let name = id.split('/').next().unwrap_or(id).to_string();
        self.run_now(Invocation {
            unit: unit.to_string(),
            hook: format!("{name}-storage-detaching"),
            storage: Some(id.to_string()),
            ..Default::default()
        })?;
        self.unit_mut(unit)?.storage.remove(id);
        Ok(())
    }

    /// `juju config <app> key=value ...`.
    pub fn set_config(&mut self, app: &str, settings: &[(&str, &str)]) -> Result<()> {
        let charm = self.app(app)?.charm.clone().expect("charm");
        let mut typed = Vec::new();
        for (key, raw) in settings {
            typed.push((key.to_string(), charm.typed_config_value(key, raw)?));
        }
        let application = self.apps.get_mut(app).expect("app");
        for (key, value) in typed {
            application.config.insert(key, value);
        }
        self.enqueue_all(app, "config-changed");
        Ok(())
    }

    /// `juju config <app> --reset key`.
    pub fn reset_config(&mut self, app: &str, keys: &[&str]) -> Result<()> {
        let application = self
            .apps
            .get_mut(app)
            .ok_or_else(|| anyhow!("application {app:?} not found"))?;
        for key in keys {
            application.config.remove(*key);
        }
        self.enqueue_all(app, "config-changed");
        Ok(())
    }

    /// `juju model-config egress-subnets=...` for `model`.
    pub fn set_model_egress_subnets(&mut self, model: &str, subnets: &[&str]) -> Result<()> {
        let m = self
            .models
            .get_mut(model)
            .ok_or_else(|| anyhow!("model {model:?} not found"))?;
        m.egress_subnets = subnets.iter().map(|s| s.to_string()).collect();
        Ok(())
    }

    fn enqueue_all(&mut self, app: &str, hook: &str) {
        let units: Vec<String> = self.apps[app].units.keys().cloned().collect();
        for unit in units {
            self.enqueue_hook(&unit, hook);
        }
    }

    fn enqueue_hook(&mut self, unit: &str, hook: &str) {
        self.enqueue(Invocation {
            unit: unit.to_string(),
            hook: hook.to_string(),
            ..Default::default()
        });
    }

    fn enqueue_relation(&mut self, unit: &str, id: u64, kind: &str, remote: Option<&str>) {
        let endpoint = self.relations[&id]
            .side_of(app_of(unit))
            .map(|s| s.endpoint.clone())
            .unwrap_or_default();
        self.enqueue(Invocation {
            unit: unit.to_string(),
            hook: format!("{endpoint}-relation-{kind}"),
            relation: Some(id),
            remote_unit: remote.map(str::to_string),
            ..Default::default()
        });
    }

    /// Queues `inv` unless the same hook is already waiting (Juju coalesces).
    pub fn enqueue(&mut self, inv: Invocation) {
        if inv.hook.ends_with("-relation-changed") && self.queue.contains(&inv) {
            return;
        }
        self.queue.push_back(inv);
    }

    fn new_relation(
        &mut self,
        sides: Vec<EndpointRef>,
        offering_app: Option<String>,
        saas_name: String,
        via: Vec<String>,
    ) -> u64 {
        let id = self.next_relation;
        self.next_relation += 1;
        let token = format!(
            "{:016x}{:016x}",
            fnv(&format!("token-{id}")),
            fnv(&format!("salt-{id}"))
        );
        let mut app_bags = BTreeMap::new();
        for side in &sides {
            app_bags.insert(side.app.clone(), Bag::new());
        }
        self.relations.insert(
            id,
            Relation {
                id,
                sides,
                offering_app,
                token,
                saas_name,
                via,
                unit_bags: BTreeMap::new(),
                app_bags,
                members: BTreeMap::new(),
                broken: false,
            },
        );
        id
    }

    /// `EnterScope`: the unit's bag gets the address keys Juju fills in (§5).
    fn enter_scope(&mut self, id: u64, unit: &str) {
        let network = self.relation_network(id, unit);
        let rel = self.relations.get_mut(&id).expect("relation");
        let bag = rel.unit_bags.entry(unit.to_string()).or_default();
        let ingress = network
            .ingress_addresses
            .first()
            .cloned()
            .unwrap_or_default();
        bag.insert("private-address".into(), ingress.clone());
        bag.insert("ingress-address".into(), ingress);
        bag.insert("egress-subnets".into(), network.egress_subnets.join(","));
        rel.members.entry(unit.to_string()).or_default();
    }

    /// `juju integrate <a>:<ep> <b>:<ep>` inside one model.
    pub fn integrate(&mut self, a: &str, b: &str) -> Result<u64> {
        self.integrate_with(a, b, None, String::new(), Vec::new())
    }

    /// `juju offer <offerer>:<ep>`, `juju consume ... <saas_name>` and
    /// `juju integrate <consumer>:<ep> <saas_name> [--via cidrs]` across models.
    pub fn integrate_cross_model(
        &mut self,
        offerer: &str,
        consumer: &str,
        saas_name: &str,
        via: &[&str],
    ) -> Result<u64> {
        let offering_app = offerer.split(':').next().unwrap_or(offerer).to_string();
        let consumer_app = consumer.split(':').next().unwrap_or(consumer);
        if self.app(&offering_app)?.model == self.app(consumer_app)?.model {
            bail!("a cross-model relation needs the two applications in different models");
        }
        self.integrate_with(
            offerer,
            consumer,
            Some(offering_app),
            saas_name.to_string(),
            via.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn integrate_with(
        &mut self,
        a: &str,
        b: &str,
        offering_app: Option<String>,
        saas_name: String,
        via: Vec<String>,
    ) -> Result<u64> {
        let parse = |spec: &str| -> Result<EndpointRef> {
            let (app, endpoint) = spec
                .split_once(':')
                .ok_or_else(|| anyhow!("expected <application>:<endpoint>, got {spec:?}"))?;
            Ok(EndpointRef {
                app: app.to_string(),
                endpoint: endpoint.to_string(),
            })
        };
        let (left, right) = (parse(a)?, parse(b)?);
        for side in [&left, &right] {
            let charm = self.app(&side.app)?.charm.clone().expect("charm");
            if !charm.endpoints().contains(&side.endpoint) {
                bail!(
                    "application {:?} has no endpoint {:?}",
                    side.app,
                    side.endpoint
                );
            }
        }
        let id = self.new_relation(
            vec![left.clone(), right.clone()],
            offering_app,
            saas_name,
            via,
        );
        let mut units = Vec::new();
        for side in [&left, &right] {
            units.extend(self.apps[&side.app].units.keys().cloned());
        }
        for unit in &units {
            self.enter_scope(id, unit);
            self.enqueue_relation(unit, id, "created", None);
        }
        for unit in &units {
            self.join_remote_units(id, unit);
        }
        Ok(id)
    }

    /// The units on the other side of relation `id` from `unit` (its peers
    /// in a peer relation).
    fn remote_units(&self, id: u64, unit: &str) -> Vec<String> {
        let Some(remote_app) = self.relations[&id].remote_app_of(app_of(unit)) else {
            return Vec::new();
        };
        self.apps[remote_app]
            .units
            .keys()
            .filter(|u| *u != unit)
            .cloned()
            .collect()
    }

    /// Queues `-joined` then `-changed` on `unit` for each remote unit.
    fn join_remote_units(&mut self, id: u64, unit: &str) {
        for remote in self.remote_units(id, unit) {
            self.enqueue_relation(unit, id, "joined", Some(&remote));
            self.enqueue_relation(unit, id, "changed", Some(&remote));
        }
    }

    /// A new unit joins relation `id`: it sees the remote units join, and they see it.
    fn join_unit_everywhere(&mut self, id: u64, unit: &str) {
        self.join_remote_units(id, unit);
        for remote in self.remote_units(id, unit) {
            self.enqueue_relation(&remote, id, "joined", Some(unit));
            self.enqueue_relation(&remote, id, "changed", Some(unit));
        }
    }

    /// `juju remove-relation`: `-departed` per remote unit, then `-broken` (§6.3).
    pub fn remove_relation(&mut self, id: u64) -> Result<()> {
        let rel = self
            .relations
            .get(&id)
            .ok_or_else(|| anyhow!("relation {id} not found"))?
            .clone();
        for side in &rel.sides {
            let units: Vec<String> = self.apps[&side.app].units.keys().cloned().collect();
            for unit in units {
                let members: Vec<String> = rel
                    .members
                    .get(&unit)
                    .map(|m| m.iter().cloned().collect())
                    .unwrap_or_default();
                for remote in members {
                    self.enqueue(Invocation {
                        unit: unit.clone(),
                        hook: format!("{}-relation-departed", side.endpoint),
                        relation: Some(id),
                        remote_unit: Some(remote.clone()),
                        departing_unit: Some(remote.clone()),
                        storage: None,
                    });
                }
                self.enqueue_relation(&unit, id, "broken", None);
            }
        }
        self.relations.get_mut(&id).expect("relation").broken = true;
        Ok(())
    }

    /// `juju remove-unit`: the others see it depart; it runs `-departed`,
    /// `stop`, `-broken`, `storage-detaching` and `remove` (§6.3). Runs at once.
    pub fn remove_unit(&mut self, unit: &str) -> Result<()> {
        self.settle()?;
        self.unit_mut(unit)?.departing = true;
        let app = app_of(unit).to_string();
        let relation_ids: Vec<u64> = self
            .relations
            .values()
            .filter(|r| !r.broken && r.side_of(&app).is_some())
            .map(|r| r.id)
            .collect();
        for id in &relation_ids {
            let rel = self.relations[id].clone();
            // Remote (and peer) units that had seen it join.
            for (other, seen) in &rel.members {
                if other != unit && seen.contains(unit) {
                    let endpoint = rel.side_of(app_of(other)).expect("side").endpoint.clone();
                    self.enqueue(Invocation {
                        unit: other.clone(),
                        hook: format!("{endpoint}-relation-departed"),
                        relation: Some(*id),
                        remote_unit: Some(unit.to_string()),
                        departing_unit: Some(unit.to_string()),
                        storage: None,
                    });
                }
            }
            let endpoint = rel.side_of(&app).expect("side").endpoint.clone();
            for remote in rel.members.get(unit).cloned().unwrap_or_default() {
                self.enqueue(Invocation {
                    unit: unit.to_string(),
                    hook: format!("{endpoint}-relation-departed"),
                    relation: Some(*id),
                    remote_unit: Some(remote),
                    departing_unit: Some(unit.to_string()),
                    storage: None,
                });
            }
        }
        self.enqueue_hook(unit, "stop");
        for id in &relation_ids {
            if !self.relations[id].is_peer() {
                self.enqueue_relation(unit, *id, "broken", None);
            }
        }
        let storage: Vec<String> = self.unit(unit)?.storage.keys().cloned().collect();
        for id in storage {
            self.enqueue(Invocation {
                unit: unit.to_string(),
                hook: format!("{}-storage-detaching", id.split('/').next().unwrap_or(&id)),
                storage: Some(id),
                ..Default::default()
            });
        }
        self.enqueue_hook(unit, "remove");
        self.settle()?;
        let application = self.apps.get_mut(&app).expect("app");
        application.units.remove(unit);
        for rel in self.relations.values_mut() {
            rel.members.remove(unit);
        }
        if application.leader.as_deref() == Some(unit) {
            application.leader = application.units.keys().next().cloned();
            if let Some(new_leader) = application.leader.clone() {
                self.enqueue_hook(&new_leader, "leader-elected");
            }
        }
        Ok(())
    }

    /// `juju refresh <app> --path <charm>`: §6.2 order on every unit.
    pub fn upgrade_charm(&mut self, app: &str, charm_source: &Path) -> Result<()> {
        let staging = self.root.join("charms").join(app);
        unpack(charm_source, &staging)?;
        let charm = Charm::load(&staging)?;
        let units: Vec<(String, PathBuf)> = self
            .app(app)?
            .units
            .values()
            .map(|u| (u.name.clone(), u.agent_dir.join("charm")))
            .collect();
        let leader = self.app(app)?.leader.clone();
        self.apps.get_mut(app).expect("app").charm = Some(charm);
        for (unit, dir) in units {
            unpack(&staging, &dir)?;
            self.enqueue_hook(&unit, "upgrade-charm");
            self.enqueue_hook(&unit, "config-changed");
            if leader.as_deref() != Some(unit.as_str()) {
                self.enqueue_hook(&unit, "leader-settings-changed");
            }
            self.enqueue_hook(&unit, "start");
        }
        Ok(())
    }

    /// Runs every queued hook, one at a time. A failed hook is retried up to
    /// `hook_retries` times; then `settle` stops with an error and the unit
    /// stays in error with its hook at the head of the queue.
    pub fn settle(&mut self) -> Result<()> {
        let mut budget = 100_000;
        while let Some(inv) = self.queue.pop_front() {
            budget -= 1;
            if budget == 0 {
                bail!("hooks did not settle: the charms keep changing relation data");
            }
            if self.unit(&inv.unit).is_err() {
                continue;
            }
            let mut attempts = 0;
            loop {
                let record = self.run_invocation(&inv, None)?;
                if record.succeeded() {
                    break;
                }
                attempts += 1;
                if attempts > self.hook_retries {
                    self.queue.push_front(inv.clone());
                    let logs: Vec<String> = self
                        .logs
                        .iter()
                        .filter(|l| l.unit == inv.unit && l.hook == inv.hook)
                        .rev()
                        .take(20)
                        .map(|l| format!("{} {}", l.level, l.message))
                        .collect();
                    bail!(
                        "hook failed: {:?} on {} (exit {:?}, signal {:?})\noutput:\n{}\nlast juju-log records:\n{}",
                        inv.hook,
                        inv.unit,
                        record.code,
                        record.signal,
                        record.output(),
                        logs.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
        Ok(())
    }

    /// Runs one hook now, outside the queue (e.g. `update-status`), and queues what it causes.
    pub fn run_hook(&mut self, unit: &str, hook: &str) -> Result<ProcessResult> {
        self.run_now(Invocation {
            unit: unit.to_string(),
            hook: hook.to_string(),
            ..Default::default()
        })
    }

    fn run_now(&mut self, inv: Invocation) -> Result<ProcessResult> {
        let result = self.run_invocation(&inv, None)?;
        Ok(result)
    }

    /// Runs `inv` and kills it after `after` (SIGKILL), as a dying agent would.
    pub fn run_hook_killed_after(
        &mut self,
        inv: Invocation,
        after: Duration,
    ) -> Result<ProcessResult> {
        self.run_invocation(&inv, Some(after))
    }

    /// `juju run <unit> <action> key=value ...`.
    pub fn run_action(
        &mut self,
        unit: &str,
        action: &str,
        params: serde_json::Map<String, Value>,
    ) -> Result<ActionOutcome> {
        let charm = self.app(app_of(unit))?.charm.clone().expect("charm");
        if !charm.actions.contains_key(action) {
            bail!("action {action:?} not defined");
        }
        let inv = Invocation {
            unit: unit.to_string(),
            hook: action.to_string(),
            ..Default::default()
        };
        let (ctx, process) = self.execute(&inv, Some(params), None)?;
        let action_ctx = ctx.action.unwrap_or_default();
        Ok(ActionOutcome {
            results: action_ctx.results,
            failed: action_ctx.failed.or_else(|| {
                (!process.succeeded()).then(|| format!("exit status {:?}", process.code))
            }),
            process,
        })
    }

    fn run_invocation(
        &mut self,
        inv: &Invocation,
        kill_after: Option<Duration>,
    ) -> Result<ProcessResult> {
        let kill_after = kill_after.or_else(|| match &self.kill_next {
            Some((hook, after)) if *hook == inv.hook => {
                let after = *after;
                self.kill_next = None;
                Some(after)
            }
            _ => None,
        });
        // Membership changes take effect before the hook runs (§4.4).
        if let Some(id) = inv.relation {
            let remote = inv.remote_unit.clone();
            let rel = self.relations.get_mut(&id).expect("relation");
            let seen = rel.members.entry(inv.unit.clone()).or_default();
            if inv.hook.ends_with("-relation-joined") {
                seen.extend(remote);
            } else if inv.hook.ends_with("-relation-departed") {
                if let Some(r) = &remote {
                    seen.remove(r);
                }
            } else if inv.hook.ends_with("-relation-broken") {
                seen.clear();
            }
        }
        let (_, result) = self.execute(inv, None, kill_after)?;
        Ok(result)
    }

    /// Builds the context, runs the process, then commits or discards.
    fn execute(
        &mut self,
        inv: &Invocation,
        action_params: Option<serde_json::Map<String, Value>>,
        kill_after: Option<Duration>,
    ) -> Result<(HookContext, ProcessResult)> {
        let is_action = action_params.is_some();
        let context = self.build_context(inv, action_params)?;
        let unit = self.unit(&inv.unit)?.clone();
        let context_path = HookContext::path_in(&unit.agent_dir);
        context.save(&context_path)?;
        let env = self.hook_env(&unit, inv, &context, is_action);
        let result = run_process(&unit.agent_dir.join("charm"), &env, kill_after)?;
        let after = HookContext::load(&context_path)?;
        std::fs::remove_file(&context_path).ok();
        self.apply_immediate(&inv.unit, &inv.hook, &after)?;
        let ok = result.succeeded();
        if ok && !is_action {
            self.commit(inv, &after)?;
        }
        if !is_action {
            self.unit_mut(&inv.unit)?.failed_hook = (!ok).then(|| inv.hook.clone());
        }
        self.trace.push(HookRecord {
            invocation: inv.clone(),
            result: result.clone(),
        });
        Ok((after, result))
    }

    /// The unit's network as seen on relation `id` (§4.11, §7).
    fn relation_network(&self, id: u64, unit: &str) -> NetworkInfo {
        let rel = &self.relations[&id];
        let u = self.unit(unit).expect("unit");
        let cross_model = rel.offering_app.is_some();
        let ingress = if cross_model {
            &u.public_address
        } else {
            &u.private_address
        };
        let model = &self.models[&self.apps[app_of(unit)].model];
        let egress = if cross_model && !rel.via.is_empty() {
            rel.via.clone()
        } else if !model.egress_subnets.is_empty() {
            model.egress_subnets.clone()
        } else {
            vec![host_cidr(ingress)]
        };
        NetworkInfo {
            ingress_addresses: vec![ingress.clone()],
            egress_subnets: egress,
            ..self.unit_network(u)
        }
    }

    fn unit_network(&self, u: &Unit) -> NetworkInfo {
        let model = &self.models[&self.apps[app_of(&u.name)].model];
        NetworkInfo {
            interface: "eth0".into(),
            mac_address: format!(
                "00:16:3e:00:00:{:02x}",
                u.machine.parse::<u8>().unwrap_or(0)
            ),
            bind_address: u.private_address.clone(),
            cidr: subnet_of(&u.private_address),
            ingress_addresses: vec![u.private_address.clone()],
            egress_subnets: if model.egress_subnets.is_empty() {
                vec![host_cidr(&u.private_address)]
            } else {
                model.egress_subnets.clone()
            },
        }
    }

    /// The name `viewer_app` sees for `real` (a unit or app) in relation `rel`.
    fn view_name(rel: &Relation, viewer_app: &str, real: &str) -> String {
        let Some(offering) = &rel.offering_app else {
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
            format!("remote-{}{rest}", rel.token)
        } else {
            format!("{}{rest}", rel.saas_name)
        }
    }

    fn real_name(rel: &Relation, viewer_app: &str, seen: &str) -> String {
        let remote = rel
            .remote_app_of(viewer_app)
            .unwrap_or(viewer_app)
            .to_string();
        let alias = Self::view_name(rel, viewer_app, &remote);
        match seen.split_once('/') {
            Some((app, n)) if app == alias => format!("{remote}/{n}"),
            None if seen == alias => remote,
            _ => seen.to_string(),
        }
    }

    fn build_context(
        &mut self,
        inv: &Invocation,
        action_params: Option<serde_json::Map<String, Value>>,
    ) -> Result<HookContext> {
        let unit = self.unit(&inv.unit)?.clone();
        let app = self.app(app_of(&inv.unit))?.clone();
        let charm = app.charm.clone().expect("charm");
        let model = self.models[&app.model].clone();
        let mut config = charm.config_defaults();
        config.extend(app.config.clone());
        let mut relations = BTreeMap::new();
        for rel in self.relations.values() {
            let Some(side) = rel.side_of(&app.name) else {
                continue;
            };
            let in_this_hook = inv.relation == Some(rel.id);
            if rel.broken && !in_this_hook {
                continue;
            }
            if !rel.unit_bags.contains_key(&unit.name) {
                continue;
            }
            let view = |real: &str| Self::view_name(rel, &app.name, real);
            let members: Vec<String> = rel
                .members
                .get(&unit.name)
                .map(|m| m.iter().map(|u| view(u)).collect())
                .unwrap_or_default();
            let remote_app = rel.remote_app_of(&app.name).map(view).unwrap_or_default();
            relations.insert(
                rel.id,
                RelationContext {
                    endpoint: side.endpoint.clone(),
                    peer: rel.is_peer(),
                    remote_app,
                    members,
                    unit_bags: rel
                        .unit_bags
                        .iter()
                        .map(|(k, v)| (view(k), v.clone()))
                        .collect(),
                    app_bags: rel
                        .app_bags
                        .iter()
                        .map(|(k, v)| (view(k), v.clone()))
                        .collect(),
                    network: self.relation_network(rel.id, &unit.name),
                },
            );
        }
        let (remote_unit, remote_app) = match inv.relation.and_then(|id| self.relations.get(&id)) {
            Some(rel) => (
                inv.remote_unit
                    .as_ref()
                    .map(|u| Self::view_name(rel, &app.name, u)),
                rel.remote_app_of(&app.name)
                    .map(|a| Self::view_name(rel, &app.name, a)),
            ),
            None => (None, None),
        };
        let storage = unit
            .storage
            .values()
            .map(|s| {
                (
                    s.id.clone(),
                    StorageContext {
                        kind: s.kind.clone(),
                        location: s.location.clone(),
                    },
                )
            })
            .collect();
        let secrets = self
            .secrets
            .values()
            .filter(|s| self.secret_visible(s, &unit.name))
            .map(|s| (s.secret.id.clone(), s.secret.clone()))
            .collect();
        self.next_context += 1;
        Ok(HookContext {
            id: format!("{}-{}-{}", unit.name, inv.hook, self.next_context),
            unit: unit.name.clone(),
            app: app.name.clone(),
            model_name: model.name.clone(),
            model_uuid: model.uuid.clone(),
            hook: inv.hook.clone(),
            action: action_params.map(|params| ActionContext {
                name: inv.hook.clone(),
                params,
                ..Default::default()
            }),
            leader: app.leader.as_deref() == Some(unit.name.as_str()),
            leader_settings: app.leader_settings.clone(),
            config,
            config_types: charm
                .config
                .options
                .iter()
                .map(|(k, o)| (k.clone(), o.kind.clone()))
                .collect(),
            relations,
            current_relation: inv.relation,
            remote_unit,
            remote_app,
            storage,
            current_storage: inv.storage.clone(),
            storage_names: charm.metadata.storage.keys().cloned().collect(),
            endpoints: charm.endpoints(),
            network: self.unit_network(&unit),
            public_address: unit.public_address.clone(),
            committed_ports: unit.ports.iter().cloned().collect(),
            secrets,
            status: unit.status.clone(),
            app_status: app.status.clone(),
            immediate: Vec::new(),
            pending: Default::default(),
            juju_version: self.juju_version.clone(),
        })
    }

    fn secret_visible(&self, s: &StoredSecret, unit: &str) -> bool {
        let app = app_of(unit);
        if s.secret.owner == app || s.secret.owner == unit {
            return true;
        }
        s.grants.iter().any(|(id, grantee)| {
            let Some(rel) = self.relations.get(id) else {
                return false;
            };
            if rel.broken {
                return false;
            }
            match grantee {
                Some(u) => u == unit,
                None => rel.side_of(app).is_some() && app != app_of(&s.secret.owner),
            }
        })
    }

    /// The environment of §2, exactly.
    fn hook_env(
        &self,
        unit: &Unit,
        inv: &Invocation,
        ctx: &HookContext,
        is_action: bool,
    ) -> BTreeMap<String, String> {
        let charm_dir = unit.agent_dir.join("charm").display().to_string();
        let mut env: BTreeMap<String, String> = [
            ("CHARM_DIR", charm_dir.clone()),
            ("JUJU_CHARM_DIR", charm_dir),
            ("JUJU_CONTEXT_ID", ctx.id.clone()),
            (
                "JUJU_HOOK_NAME",
                if is_action {
                    String::new()
                } else {
                    inv.hook.clone()
                },
            ),
            (
                "JUJU_AGENT_SOCKET_ADDRESS",
                unit.agent_dir.join("agent.socket").display().to_string(),
            ),
            ("JUJU_AGENT_SOCKET_NETWORK", "unix".into()),
            ("JUJU_UNIT_NAME", unit.name.clone()),
            ("JUJU_MODEL_UUID", ctx.model_uuid.clone()),
            ("JUJU_MODEL_NAME", ctx.model_name.clone()),
            ("JUJU_API_ADDRESSES", "10.0.0.2:17070".into()),
            ("JUJU_SLA", "unsupported".into()),
            ("JUJU_MACHINE_ID", unit.machine.clone()),
            ("JUJU_PRINCIPAL_UNIT", String::new()),
            ("JUJU_AVAILABILITY_ZONE", String::new()),
            ("JUJU_VERSION", self.juju_version.clone()),
            ("CLOUD_API_VERSION", String::new()),
            ("JUJU_CHARM_HTTP_PROXY", String::new()),
            ("JUJU_CHARM_HTTPS_PROXY", String::new()),
            ("JUJU_CHARM_FTP_PROXY", String::new()),
            ("JUJU_CHARM_NO_PROXY", String::new()),
            ("APT_LISTCHANGES_FRONTEND", "none".into()),
            ("DEBIAN_FRONTEND", "noninteractive".into()),
            ("LANG", "C.UTF-8".into()),
            ("TERM", "tmux-256color".into()),
            ("PATH", format!("{}:{AGENT_PATH}", unit.tools_dir.display())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(id) = inv.relation {
            let rel = &ctx.relations[&id];
            env.insert("JUJU_RELATION".into(), rel.endpoint.clone());
            env.insert("JUJU_RELATION_ID".into(), format!("{}:{id}", rel.endpoint));
            env.insert(
                "JUJU_REMOTE_UNIT".into(),
                ctx.remote_unit.clone().unwrap_or_default(),
            );
            env.insert(
                "JUJU_REMOTE_APP".into(),
                ctx.remote_app.clone().unwrap_or_default(),
            );
            if let Some(departing) = &inv.departing_unit {
                let real = self.relations.get(&id).expect("relation");
                env.insert(
                    "JUJU_DEPARTING_UNIT".into(),
                    Self::view_name(real, app_of(&unit.name), departing),
                );
            }
        }
        if let Some(id) = &inv.storage {
            if let Some(s) = unit.storage.get(id) {
                env.insert("JUJU_STORAGE_ID".into(), id.clone());
                env.insert("JUJU_STORAGE_LOCATION".into(), s.location.clone());
                env.insert("JUJU_STORAGE_KIND".into(), s.kind.clone());
            }
        }
        if is_action {
            env.insert("JUJU_ACTION_NAME".into(), inv.hook.clone());
            env.insert("JUJU_ACTION_UUID".into(), self.trace.len().to_string());
            env.insert(
                "JUJU_ACTION_TAG".into(),
                format!("action-{}", self.trace.len()),
            );
        }
        env.extend(self.test_env.clone());
        env.extend(unit.extra_env.clone());
        let dispatch = if is_action {
            format!("actions/{}", inv.hook)
        } else {
            format!("hooks/{}", inv.hook)
        };
        env.insert("JUJU_DISPATCH_PATH".into(), dispatch);
        env
    }

    /// status-set, application-version-set, leader-set and juju-log stick
    /// whatever the exit code (§1.3).
    fn apply_immediate(&mut self, unit: &str, hook: &str, ctx: &HookContext) -> Result<()> {
        let app_name = app_of(unit).to_string();
        let mut leader_changed = false;
        for effect in &ctx.immediate {
            match effect {
                Immediate::Status {
                    application: false,
                    status,
                } => self.unit_mut(unit)?.status = status.clone(),
                Immediate::Status {
                    application: true,
                    status,
                } => self.apps.get_mut(&app_name).expect("app").status = Some(status.clone()),
                Immediate::WorkloadVersion(v) => self.unit_mut(unit)?.workload_version = v.clone(),
                Immediate::LeaderSet(change) => {
                    let settings = &mut self.apps.get_mut(&app_name).expect("app").leader_settings;
                    for (k, v) in change {
                        match v {
                            Some(v) => settings.insert(k.clone(), v.clone()),
                            None => settings.remove(k),
                        };
                    }
                    leader_changed = true;
                }
                Immediate::Log { level, message } => self.logs.push(LogRecord {
                    unit: unit.to_string(),
                    hook: hook.to_string(),
                    level: level.clone(),
                    message: message.clone(),
                }),
                Immediate::ActionLog(message) => self.logs.push(LogRecord {
                    unit: unit.to_string(),
                    hook: hook.to_string(),
                    level: "ACTION".into(),
                    message: message.clone(),
                }),
            }
        }
        if leader_changed {
            let others: Vec<String> = self.apps[&app_name]
                .units
                .keys()
                .filter(|u| *u != unit)
                .cloned()
                .collect();
            for other in others {
                self.enqueue_hook(&other, "leader-settings-changed");
            }
        }
        Ok(())
    }

    /// Applies what the hook buffered, and queues the hooks it causes (§5).
    fn commit(&mut self, inv: &Invocation, ctx: &HookContext) -> Result<()> {
        let unit = inv.unit.clone();
        let app = app_of(&unit).to_string();
        let departing_self = inv.hook.ends_with("-relation-departed")
            && inv.departing_unit.as_deref() == Some(unit.as_str());
        let mut changed: BTreeSet<(u64, String)> = BTreeSet::new();
        for write in &ctx.pending.relation_writes {
            if departing_self {
                break; // A departing unit's writes are not published.
            }
            let Some(rel) = self.relations.get_mut(&write.relation) else {
                continue;
            };
            let owner = Self::real_name(rel, &app, &write.owner);
            let bag = if owner.contains('/') {
                rel.unit_bags.entry(owner.clone()).or_default()
            } else {
                rel.app_bags.entry(owner.clone()).or_default()
            };
            let before = bag.get(&write.key).cloned();
            match &write.value {
                Some(v) => bag.insert(write.key.clone(), v.clone()),
                None => bag.remove(&write.key),
            };
            if before != write.value {
                changed.insert((write.relation, owner));
            }
        }
        for (id, owner) in changed {
            self.queue_changed(id, &unit, &owner);
        }
        {
            let u = self.unit_mut(&unit)?;
            for port in &ctx.pending.open_ports {
                u.ports.insert(port.clone());
            }
            for port in &ctx.pending.close_ports {
                u.ports.remove(port);
            }
        }
        for (name, count) in &ctx.pending.storage_add {
            for _ in 0..*count {
                self.add_storage(&unit, name, None)?;
            }
        }
        for op in &ctx.pending.secret_ops {
            self.apply_secret_op(op);
        }
        Ok(())
    }

    /// Queues `-changed` for everyone who can see `owner`'s bag in relation `id`.
    fn queue_changed(&mut self, id: u64, writer: &str, owner: &str) {
        let rel = self.relations[&id].clone();
        if rel.broken {
            return;
        }
        let writer_app = app_of(writer);
        let app_bag = !owner.contains('/');
        let mut targets = Vec::new();
        for (unit, seen) in &rel.members {
            if unit == writer {
                continue;
            }
            let same_app = app_of(unit) == writer_app;
            if same_app && !rel.is_peer() {
                continue;
            }
            if app_bag || seen.contains(writer) {
                targets.push(unit.clone());
            }
        }
        for target in targets {
            let endpoint = rel.side_of(app_of(&target)).expect("side").endpoint.clone();
            self.enqueue(Invocation {
                unit: target,
                hook: format!("{endpoint}-relation-changed"),
                relation: Some(id),
                remote_unit: (!app_bag).then(|| writer.to_string()),
                departing_unit: None,
                storage: None,
            });
        }
    }

    fn apply_secret_op(&mut self, op: &SecretOp) {
        match op {
            SecretOp::Add(secret) => {
                self.secrets.insert(
                    secret.id.clone(),
                    StoredSecret {
                        secret: secret.clone(),
                        grants: Vec::new(),
                    },
                );
            }
            SecretOp::Set {
                id,
                content,
                label,
                description,
            } => {
                if let Some(s) = self.secrets.get_mut(id) {
                    if let Some(c) = content {
                        s.secret.content = c.clone();
                        s.secret.revision += 1;
                    }
                    if label.is_some() {
                        s.secret.label = label.clone();
                    }
                    if description.is_some() {
                        s.secret.description = description.clone();
                    }
                }
            }
            SecretOp::Grant { id, relation, unit } => {
                if let Some(s) = self.secrets.get_mut(id) {
                    let unit = unit.as_ref().map(|u| {
                        let rel = &self.relations[relation];
                        Self::real_name(rel, app_of(&s.secret.owner), u)
                    });
                    s.grants.push((*relation, unit));
                }
            }
            SecretOp::Revoke { id, relation } => {
                if let Some(s) = self.secrets.get_mut(id) {
                    s.grants
                        .retain(|(r, _)| relation.is_some_and(|want| *r != want));
                }
            }
            SecretOp::Remove { id } => {
                self.secrets.remove(id);
            }
        }
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

    /// Hooks run so far on `unit`, in order.
    pub fn hook_names(&self, unit: &str) -> Vec<String> {
        self.trace
            .iter()
            .filter(|r| r.invocation.unit == unit)
            .map(|r| r.invocation.hook.clone())
            .collect()
    }

    /// A remote view helper: the bag `owner` published in relation `id`.
    pub fn bag(&self, id: u64, owner: &str) -> Option<&Bag> {
        let rel = self.relations.get(&id)?;
        rel.unit_bags.get(owner).or_else(|| rel.app_bags.get(owner))
    }

    /// The consumer unit names as the offering side sees them in relation `id`.
    pub fn name_seen_by(&self, id: u64, viewer_app: &str, real: &str) -> String {
        Self::view_name(&self.relations[&id], viewer_app, real)
    }
}

fn host_cidr(address: &str) -> String {
    if address.contains(':') {
        format!("{address}/128")
    } else {
        format!("{address}/32")
    }
}

fn subnet_of(address: &str) -> String {
    match address.rsplit_once('.') {
        Some((net, _)) if !address.contains(':') => format!("{net}.0/24"),
        _ => format!("{address}/64"),
    }
}

impl ProcessResult {
    /// Convenience for the trace: the process output, stdout then stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
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
