//! After a hook: the effects Juju applies at once whatever the exit code
//! (status, workload version, leader settings, logs; §1.3), and, on exit 0,
//! the buffered ones (relation settings, ports, storage, secrets; §5),
//! with the `-changed` hooks relation writes cause on the other side.

use std::collections::BTreeSet;

use anyhow::Result;

use super::model::{Invocation, LogRecord};
use super::naming::app_of;
use super::World;
use crate::context::{HookContext, Immediate};

impl World {
    /// status-set, application-version-set, leader-set and juju-log stick
    /// whatever the exit code (§1.3).
    pub(super) fn apply_immediate(
        &mut self,
        unit: &str,
        hook: &str,
        ctx: &HookContext,
    ) -> Result<()> {
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
                Immediate::SecretTrack {
                    id,
                    revision,
                    label,
                } => self.track_secret(unit, id, *revision, label.clone()),
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
    /// `Ok(Err(reason))` when the controller refuses it: nothing is applied
    /// and Juju fails the hook.
    pub(super) fn commit(
        &mut self,
        inv: &Invocation,
        ctx: &HookContext,
    ) -> Result<std::result::Result<(), String>> {
        let unit = inv.unit.clone();
        if let Err(refused) = self.validate_secret_ops(&unit, &ctx.pending.secret_ops) {
            return Ok(Err(format!("{refused:#}")));
        }
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
            let owner = rel.real_name(&app, &write.owner);
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
            self.apply_secret_op(&unit, op);
        }
        Ok(Ok(()))
    }

    /// Test-only: `owner`'s bag in relation `id` (a unit or application,
    /// by its real name) changes as if its charm had written `settings` in
    /// a committed hook (an empty value deletes the key), and everyone who
    /// sees that bag gets `-changed`. For a remote side that no real charm
    /// plays, or plays as a test needs (hostile data, say).
    pub fn write_bag(&mut self, id: u64, owner: &str, settings: &[(&str, &str)]) -> Result<()> {
        let rel = self
            .relations
            .get_mut(&id)
            .ok_or_else(|| anyhow::anyhow!("relation {id} not found"))?;
        let bags = if owner.contains('/') {
            &mut rel.unit_bags
        } else {
            &mut rel.app_bags
        };
        let bag = bags
            .get_mut(owner)
            .ok_or_else(|| anyhow::anyhow!("{owner} has no bag in relation {id}"))?;
        for (key, value) in settings {
            if value.is_empty() {
                bag.remove(*key);
            } else {
                bag.insert(key.to_string(), value.to_string());
            }
        }
        self.queue_changed(id, owner, owner);
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
                ..Default::default()
            });
        }
    }
}
