//! The commands an operator runs: `add-model`, `deploy`, `add-unit`,
//! `config`, `integrate` (within and across models), `offer` and
//! `consume`, `add-storage`,
//! `detach-storage`, `remove-relation`, `remove-unit`, `refresh` and
//! `run <action>`. Each changes the model and queues the hooks Juju would
//! run, in the order of the contract's section 6; [`World::settle`] runs them.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

use super::model::{
    ActionOutcome, Application, DeployOptions, EndpointRef, HookPaths, Invocation, Model, Offer,
    Relation, StorageInstance, StorageRequest, Unit, UnitOptions,
};
use super::naming::{app_of, model_uuid, relation_token};
use super::World;
use crate::charm::{unpack, Charm, EndpointRole};
use crate::context::{Bag, Status};
use crate::tools;

impl World {
    /// `juju add-model <name>` (idempotent).
    pub fn add_model(&mut self, name: &str) -> &mut Model {
        self.models
            .entry(name.to_string())
            .or_insert_with(|| Model {
                name: name.to_string(),
                uuid: model_uuid(name),
                egress_subnets: Vec::new(),
            })
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
            let options = UnitOptions {
                addresses: opts.addresses.get(i as usize).cloned(),
                storage: opts.storage.clone(),
                machine: opts.machine.clone(),
            };
            self.add_unit_with(app, options)?;
        }
        Ok(())
    }

    /// `juju add-unit <app>`, on the test host.
    pub fn add_unit(&mut self, app: &str, addresses: Option<(String, String)>) -> Result<String> {
        self.add_unit_with(
            app,
            UnitOptions {
                addresses,
                ..Default::default()
            },
        )
    }

    /// `juju add-unit <app> [--to <new machine>] [--attach-storage ...]`.
    pub fn add_unit_with(&mut self, app_name: &str, options: UnitOptions) -> Result<String> {
        let UnitOptions {
            addresses,
            storage,
            machine: machine_spec,
        } = options;
        let app = self.app(app_name)?;
        let n = app.next_unit;
        let charm = app.charm.clone().expect("deployed app has a charm");
        let machine = self.next_machine;
        self.next_machine += 1;
        let name = format!("{app_name}/{n}");
        let tag = format!("unit-{app_name}-{n}");
        let (agent_dir, tools_dir, hook_paths, addresses) = match machine_spec {
            Some(spec) => {
                let m = self.new_machine(machine, spec)?;
                let data = m.juju_data();
                let seen = std::path::Path::new(crate::machine::plan::JUJU_DATA_DIR);
                let address = m.address().to_string();
                (
                    data.join("agents").join(&tag),
                    data.join("tools").join(&tag),
                    HookPaths {
                        agent_dir: seen.join("agents").join(&tag),
                        tools_dir: seen.join("tools").join(&tag),
                    },
                    (address.clone(), address),
                )
            }
            None => {
                let agent_dir = self.root.join("agents").join(&tag);
                let tools_dir = self.root.join("tools").join(&tag);
                let addresses = addresses.unwrap_or_else(|| {
                    // Made-up addresses that stay valid for any number of
                    // machines; nothing is ever sent to them.
                    let host = 10 + machine;
                    (
                        format!("10.1.{}.{}", host / 256, host % 256),
                        format!("100.64.{}.{}", host / 256, host % 256),
                    )
                });
                let hook_paths = HookPaths {
                    agent_dir: agent_dir.clone(),
                    tools_dir: tools_dir.clone(),
                };
                (agent_dir, tools_dir, hook_paths, addresses)
            }
        };
        let (private_address, public_address) = addresses;
        unpack(&charm.dir, &agent_dir.join("charm"))?;
        std::fs::create_dir_all(&tools_dir)?;
        // Each tool links to the emulator binary as the unit's machine has
        // it (one directory up from the tools directory).
        let binary = hook_paths
            .tools_dir
            .parent()
            .expect("tools/<tag>")
            .join(crate::machine::TOOLS_BINARY);
        let on_host = !self.machines.contains_key(&machine.to_string());
        // On the test host juju-exec sits with the tools; a machine has
        // /usr/bin/juju-exec.
        let exec = on_host.then_some(crate::exec::COMMAND);
        for tool in tools::names().chain(exec) {
            let link = tools_dir.join(tool);
            let _ = std::fs::remove_file(&link);
            symlink(&binary, &link).with_context(|| format!("linking {}", link.display()))?;
        }
        let app = self.apps.get_mut(app_name).expect("app exists");
        app.next_unit += 1;
        let unit = Unit {
            name: name.clone(),
            machine: machine.to_string(),
            private_address,
            public_address,
            agent_dir,
            tools_dir,
            hook_paths,
            status: Status {
                status: "waiting".into(),
                message: "agent initialising".into(),
            },
            workload_version: String::new(),
            storage: BTreeMap::new(),
            ports: Default::default(),
            failed_hook: None,
            started: false,
            interrupted: false,
            departing: false,
            extra_env: BTreeMap::new(),
        };
        let leader_needed = app.leader.is_none();
        if leader_needed {
            app.leader = Some(name.clone());
        }
        app.units.insert(name.clone(), unit);

        // §6.1: storage-attached (all of it) before install on machines.
        for request in &storage {
            let id = self.attach_storage(&name, request)?;
            self.enqueue(Invocation {
                unit: name.clone(),
                hook: format!("{}-storage-attached", request.name),
                storage: Some(id),
                ..Default::default()
            });
        }
        if self.machines.contains_key(&machine.to_string()) {
            self.machine_mut(&machine.to_string())?.boot()?;
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

    fn attach_storage(&mut self, unit: &str, request: &StorageRequest) -> Result<String> {
        let name = request.name.as_str();
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
        let location = request
            .location
            .clone()
            .unwrap_or_else(|| meta.location_for(name, &id));
        let machine = self.unit(unit)?.machine.clone();
        match (&request.source, self.machines.contains_key(&machine)) {
            (Some(source), true) => self.mount_storage(&machine, source, &location)?,
            (Some(source), false) => bail!(
                "storage source {} needs a unit on an emulated machine; on the test host give its mount point as the location",
                source.display()
            ),
            (None, _) => {}
        }
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
        self.add_storage_with(
            unit,
            StorageRequest {
                name: name.to_string(),
                location,
                source: None,
            },
        )
    }

    /// `juju add-storage <unit> <name>` with a volume: `request.source`
    /// mounted in the unit's machine.
    pub fn add_storage_with(&mut self, unit: &str, request: StorageRequest) -> Result<String> {
        let name = request.name.clone();
        let id = self.attach_storage(unit, &request)?;
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
        self.run_invocation(
            &Invocation {
                unit: unit.to_string(),
                hook: format!("{name}-storage-detaching"),
                storage: Some(id.to_string()),
                ..Default::default()
            },
            None,
        )?;
        let removed = self.unit_mut(unit)?.storage.remove(id);
        if let Some(instance) = removed {
            let machine = self.unit(unit)?.machine.clone();
            self.unmount_storage(&machine, &instance.location)?;
        }
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

    fn new_relation(
        &mut self,
        sides: Vec<EndpointRef>,
        offering_app: Option<String>,
        saas_name: String,
        via: Vec<String>,
    ) -> u64 {
        let id = self.next_relation;
        self.next_relation += 1;
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
                token: relation_token(id),
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

    /// `juju offer <app>:<endpoint>[,<endpoint>…] <name>`: returns the
    /// offer's URL, `admin/<model>.<name>`, for [`World::integrate_offer`].
    pub fn offer(&mut self, app: &str, endpoints: &[&str], name: &str) -> Result<String> {
        let application = self.app(app)?;
        let charm = application.charm.clone().expect("charm");
        if endpoints.is_empty() {
            bail!("an offer needs at least one endpoint");
        }
        for endpoint in endpoints {
            match charm.relation_endpoint(endpoint) {
                Some((EndpointRole::Peer, _)) => {
                    bail!("cannot offer peer endpoint {endpoint:?} of application {app:?}")
                }
                Some(_) => {}
                None => bail!("application {app:?} has no endpoint {endpoint:?}"),
            }
        }
        let url = format!("admin/{}.{name}", application.model);
        if let Some(existing) = self.offers.get(&url) {
            if existing.app != app {
                bail!(
                    "offer {url:?} already exists for application {:?}",
                    existing.app
                );
            }
        }
        self.offers.insert(
            url.clone(),
            Offer {
                url: url.clone(),
                app: app.to_string(),
                endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            },
        );
        Ok(url)
    }

    /// `juju consume <url> <saas_name>` in the consumer's model, then
    /// `juju integrate <consumer>[:<endpoint>] <saas_name> [--via cidrs]`.
    /// As Juju does, the endpoints are matched by interface and role among
    /// those the offer names; none, or more than one, is an error.
    pub fn integrate_offer(
        &mut self,
        url: &str,
        consumer: &str,
        saas_name: &str,
        via: &[&str],
    ) -> Result<u64> {
        let offer = self
            .offers
            .get(url)
            .cloned()
            .ok_or_else(|| anyhow!("offer {url:?} not found"))?;
        let (consumer_app, wanted) = match consumer.split_once(':') {
            Some((app, endpoint)) => (app, Some(endpoint)),
            None => (consumer, None),
        };
        let consumer_charm = self.app(consumer_app)?.charm.clone().expect("charm");
        let offer_charm = self.app(&offer.app)?.charm.clone().expect("charm");
        let consumer_endpoints: Vec<String> = match wanted {
            Some(endpoint) => vec![endpoint.to_string()],
            None => consumer_charm.endpoints(),
        };
        let mut matches = Vec::new();
        for mine in &consumer_endpoints {
            let Some((my_role, my_interface)) = consumer_charm.relation_endpoint(mine) else {
                bail!("application {consumer_app:?} has no endpoint {mine:?}");
            };
            for offered in &offer.endpoints {
                let (role, interface) = offer_charm.relation_endpoint(offered).expect("checked");
                if interface == my_interface && role.relates_to(my_role) {
                    matches.push((offered.clone(), mine.clone()));
                }
            }
        }
        let (offered, mine) = match matches.as_slice() {
            [one] => one.clone(),
            [] => bail!("no relations found between {consumer:?} and {saas_name:?}"),
            many => bail!(
                "ambiguous relation: {consumer:?} {saas_name:?} could refer to {}",
                many.iter()
                    .map(|(o, m)| format!("\"{consumer_app}:{m} {saas_name}:{o}\""))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        self.integrate_cross_model(
            &format!("{}:{offered}", offer.app),
            &format!("{consumer_app}:{mine}"),
            saas_name,
            via,
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
        let mut declared = Vec::new();
        for side in [&left, &right] {
            let charm = self.app(&side.app)?.charm.clone().expect("charm");
            match charm.relation_endpoint(&side.endpoint) {
                Some((role, interface)) => declared.push((role, interface.to_string())),
                None => bail!(
                    "application {:?} has no endpoint {:?}",
                    side.app,
                    side.endpoint
                ),
            }
        }
        let ((left_role, left_interface), (right_role, right_interface)) =
            (&declared[0], &declared[1]);
        if left_interface != right_interface || !left_role.relates_to(*right_role) {
            bail!("no relations found between {a:?} and {b:?}");
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
                        ..Default::default()
                    });
                }
                self.enqueue_relation(&unit, id, "broken", None);
            }
        }
        self.relations.get_mut(&id).expect("relation").broken = true;
        // Secret grants are scoped to the relation: they go with it.
        self.revoke_relation_grants(id);
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
                        ..Default::default()
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
                    ..Default::default()
                });
            }
        }
        self.enqueue_leaving(unit, &relation_ids)?;
        self.settle()?;
        self.forget_secret_consumer(unit);
        let machine = self.unit(unit)?.machine.clone();
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
        // Juju destroys the machine with its last unit.
        self.destroy_machine_if_empty(&machine)?;
        Ok(())
    }

    /// What a leaving unit runs after its `-departed` hooks: `stop`,
    /// `-broken` for each of `relations` but the peer one,
    /// `storage-detaching` for each storage, and `remove`, the last (§6.3).
    fn enqueue_leaving(&mut self, unit: &str, relations: &[u64]) -> Result<()> {
        self.enqueue_hook(unit, "stop");
        for id in relations {
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
        Ok(())
    }

    /// `juju remove-application`: every unit of `app` leaves at once, and
    /// every relation of the application goes with it. Each unit runs
    /// `-departed` once per remote (and peer) unit it had seen, then `stop`,
    /// `-broken` for each non-peer relation, `storage-detaching` and
    /// `remove` (§6.3, the order of a leaving unit); the other side of each
    /// relation sees every unit depart, then `-broken`. Units are taken in
    /// turn within each phase (Juju runs them concurrently). Then the
    /// application, its relations' secret grants and its machines go.
    pub fn remove_application(&mut self, app: &str) -> Result<()> {
        self.settle()?;
        let units: Vec<String> = self.app(app)?.units.keys().cloned().collect();
        for unit in &units {
            self.unit_mut(unit)?.departing = true;
        }
        let relation_ids: Vec<u64> = self
            .relations
            .values()
            .filter(|r| !r.broken && r.side_of(app).is_some())
            .map(|r| r.id)
            .collect();
        // Phase 1: every unit of both sides sees the leaving units depart.
        for id in &relation_ids {
            let rel = self.relations[id].clone();
            for (other, seen) in &rel.members {
                let endpoint = rel.side_of(app_of(other)).expect("side").endpoint.clone();
                for remote in seen {
                    let departing = if app_of(other) == app {
                        other.clone()
                    } else if app_of(remote) == app {
                        remote.clone()
                    } else {
                        continue;
                    };
                    self.enqueue(Invocation {
                        unit: other.clone(),
                        hook: format!("{endpoint}-relation-departed"),
                        relation: Some(*id),
                        remote_unit: Some(remote.clone()),
                        departing_unit: Some(departing),
                        ..Default::default()
                    });
                }
            }
        }
        // Phase 2: the leaving units stop, break, detach and go.
        for unit in &units {
            self.enqueue_leaving(unit, &relation_ids)?;
        }
        // The other applications' units: the relation is broken for them.
        for id in &relation_ids {
            let rel = self.relations[id].clone();
            if rel.is_peer() {
                continue;
            }
            for side in rel.sides.iter().filter(|side| side.app != app) {
                let others: Vec<String> = self.apps[&side.app].units.keys().cloned().collect();
                for other in others {
                    self.enqueue_relation(&other, *id, "broken", None);
                }
            }
        }
        self.settle()?;
        for id in &relation_ids {
            self.relations.get_mut(id).expect("relation").broken = true;
            self.revoke_relation_grants(*id);
        }
        let mut machines = Vec::new();
        for unit in &units {
            self.forget_secret_consumer(unit);
            machines.push(self.unit(unit)?.machine.clone());
            for rel in self.relations.values_mut() {
                rel.members.remove(unit);
            }
        }
        self.apps.remove(app);
        for machine in machines {
            self.destroy_machine_if_empty(&machine)?;
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
}
