//! What one hook sees: the [`HookContext`] snapshot the tools answer from
//! (config, leadership, relations as this unit sees them, storage, ports,
//! secrets, status), the unit's networks (§4.11, §7), and the exact
//! environment of §2.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::Value;

use super::model::{Invocation, Unit};
use super::naming::{app_of, host_cidr, subnet_of};
use super::World;
use crate::context::{ActionContext, HookContext, NetworkInfo, RelationContext, StorageContext};
use crate::runner::AGENT_PATH;

/// What a process runs for: the environment differs a little (§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HookKind {
    Hook,
    Action,
    /// `juju-exec`: the hook context without a hook (no
    /// `JUJU_DISPATCH_PATH`; the commands set it if they run a hook).
    Commands,
}

impl World {
    /// The unit's network as seen on relation `id` (§4.11, §7).
    pub(super) fn relation_network(&self, id: u64, unit: &str) -> NetworkInfo {
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
            mac_address: crate::machine::mac_address(u.machine.parse().unwrap_or(0)),
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

    pub(super) fn build_context(
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
            let view = |real: &str| rel.view_name(&app.name, real);
            let members: Vec<String> = rel
                .members
                .get(&unit.name)
                .map(|m| m.iter().map(|u| view(u)).collect())
                .unwrap_or_default();
            let remote_app_real = rel.remote_app_of(&app.name).unwrap_or_default();
            let remote_model_uuid = self
                .apps
                .get(remote_app_real)
                .and_then(|remote| self.models.get(&remote.model))
                .map_or_else(|| model.uuid.clone(), |remote| remote.uuid.clone());
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
                    remote_model_uuid,
                },
            );
        }
        let (remote_unit, remote_app) = match inv.relation.and_then(|id| self.relations.get(&id)) {
            Some(rel) => (
                inv.remote_unit
                    .as_ref()
                    .map(|u| rel.view_name(&app.name, u)),
                rel.remote_app_of(&app.name)
                    .map(|a| rel.view_name(&app.name, a)),
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
        let secrets = self.visible_secrets(&unit.name);
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
        })
    }

    /// The environment of §2, exactly.
    pub(super) fn hook_env(
        &self,
        unit: &Unit,
        inv: &Invocation,
        ctx: &HookContext,
        kind: HookKind,
    ) -> BTreeMap<String, String> {
        let is_action = kind == HookKind::Action;
        let paths = &unit.hook_paths;
        let charm_dir = paths.agent_dir.join("charm").display().to_string();
        let mut env: BTreeMap<String, String> = [
            ("CHARM_DIR", charm_dir.clone()),
            ("JUJU_CHARM_DIR", charm_dir),
            ("JUJU_CONTEXT_ID", ctx.id.clone()),
            (
                "JUJU_HOOK_NAME",
                if kind == HookKind::Hook {
                    inv.hook.clone()
                } else {
                    String::new()
                },
            ),
            (
                "JUJU_AGENT_SOCKET_ADDRESS",
                paths.agent_dir.join("agent.socket").display().to_string(),
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
            (
                "PATH",
                format!("{}:{AGENT_PATH}", paths.tools_dir.display()),
            ),
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
                    real.view_name(app_of(&unit.name), departing),
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
        env.extend(self.secret_hook_env(inv));
        env.extend(self.test_env.clone());
        env.extend(unit.extra_env.clone());
        match kind {
            HookKind::Hook => {
                env.insert("JUJU_DISPATCH_PATH".into(), format!("hooks/{}", inv.hook))
            }
            HookKind::Action => {
                env.insert("JUJU_DISPATCH_PATH".into(), format!("actions/{}", inv.hook))
            }
            HookKind::Commands => None,
        };
        env
    }
}
