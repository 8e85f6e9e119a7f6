//! Secrets as the controller keeps them (Juju 3.6): revisions, owner
//! metadata, grants scoped to relations, and what each consumer unit
//! tracks.
//!
//! * Owners (the owning unit, or any unit of the owning application) read
//!   the latest revision and look secrets up by the owner's label.
//! * Consumers read only what is granted to them over a live relation:
//!   their first read pins the latest revision, `--peek` reads the latest
//!   once, `--refresh` moves the pin; they name secrets with labels of
//!   their own. A new revision queues `secret-changed` for every consumer
//!   pinned to an older one; a revision no consumer tracks any more queues
//!   `secret-remove` (with `JUJU_SECRET_REVISION`) for the owner.
//! * Across models only the offering side shares, with the consumer
//!   application as a whole; removing the relation revokes its grants.
//!
//! A grant or change the controller refuses fails the hook that buffered
//! it, and nothing of that hook is committed ([`World::validate_secret_ops`]).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Result};

use super::model::Invocation;
use super::naming::app_of;
use super::World;
use crate::context::{Bag, SecretAccess, SecretContext, SecretMeta, SecretOp};

/// Who a grant is to (real names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Subject {
    App(String),
    Unit(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Grant {
    pub(super) relation: u64,
    pub(super) subject: Subject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Consumer {
    pub(super) tracked: u32,
    pub(super) label: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct StoredSecret {
    pub(super) id: String,
    pub(super) model_uuid: String,
    pub(super) owner: String,
    pub(super) meta: SecretMeta,
    pub(super) revisions: BTreeMap<u32, Bag>,
    pub(super) latest: u32,
    pub(super) grants: Vec<Grant>,
    /// Per consumer unit.
    pub(super) consumers: BTreeMap<String, Consumer>,
    /// Revisions the owner was told are obsolete.
    pub(super) notified_obsolete: BTreeSet<u32>,
}

impl StoredSecret {
    pub(super) fn uri(&self) -> String {
        format!("secret://{}/{}", self.model_uuid, self.id)
    }

    fn owned_by(&self, unit: &str) -> bool {
        self.owner == unit || self.owner == app_of(unit)
    }
}

impl World {
    /// The secrets `unit`'s hook context carries: those it owns, those it
    /// may read, and those it once read (to refuse them by name).
    pub(super) fn visible_secrets(&self, unit: &str) -> BTreeMap<String, SecretContext> {
        let mut out = BTreeMap::new();
        for s in self.secrets.values() {
            let owned = s.owned_by(unit);
            let readable = owned || self.can_read(s, unit);
            let consumer = s.consumers.get(unit);
            if !owned && !readable && consumer.is_none() {
                continue;
            }
            let mut revisions = BTreeMap::new();
            if readable {
                let wanted = [Some(s.latest), consumer.map(|c| c.tracked)];
                for r in wanted.into_iter().flatten() {
                    if let Some(content) = s.revisions.get(&r) {
                        revisions.insert(r, content.clone());
                    }
                }
            }
            let meta = if owned {
                s.meta.clone()
            } else {
                SecretMeta::default()
            };
            out.insert(
                s.id.clone(),
                SecretContext {
                    id: s.id.clone(),
                    model_uuid: s.model_uuid.clone(),
                    owner: s.owner.clone(),
                    owned,
                    readable,
                    label: meta.label,
                    description: meta.description,
                    expire: meta.expire,
                    rotate: meta.rotate,
                    latest: s.latest,
                    revisions,
                    tracked: (!owned).then(|| consumer.map(|c| c.tracked)).flatten(),
                    consumer_label: consumer.and_then(|c| c.label.clone()),
                    access: if owned { self.access_of(s) } else { Vec::new() },
                },
            );
        }
        out
    }

    /// Whether `unit` may read `s` as a consumer: a grant to its
    /// application or to it, over a relation that still exists.
    fn can_read(&self, s: &StoredSecret, unit: &str) -> bool {
        s.grants.iter().any(|g| {
            let live = self
                .relations
                .get(&g.relation)
                .is_some_and(|r| !r.broken && r.side_of(app_of(unit)).is_some());
            live && match &g.subject {
                Subject::App(app) => app == app_of(unit),
                Subject::Unit(u) => u == unit,
            }
        })
    }

    /// The grants as the owner's model names them (a cross-model consumer
    /// is `remote-<token>` there).
    fn access_of(&self, s: &StoredSecret) -> Vec<SecretAccess> {
        let viewer = app_of(&s.owner);
        s.grants
            .iter()
            .filter_map(|g| {
                let rel = self.relations.get(&g.relation)?;
                let target = match &g.subject {
                    Subject::App(app) => format!("application-{}", rel.view_name(viewer, app)),
                    Subject::Unit(unit) => {
                        format!("unit-{}", rel.view_name(viewer, unit).replace('/', "-"))
                    }
                };
                let mut sides: Vec<String> = rel
                    .sides
                    .iter()
                    .map(|side| format!("{}.{}", rel.view_name(viewer, &side.app), side.endpoint))
                    .collect();
                sides.sort();
                Some(SecretAccess {
                    target,
                    scope: format!("relation-{}", sides.join("#")),
                    role: "view".into(),
                })
            })
            .collect()
    }

    /// Checks what a hook of `unit` buffered for secrets as the controller
    /// would; the error is the one Juju fails the hook with.
    pub(super) fn validate_secret_ops(&self, unit: &str, ops: &[SecretOp]) -> Result<()> {
        let app = app_of(unit);
        let mut adds: BTreeMap<&str, &str> = BTreeMap::new(); // id -> owner
        let mut labels: BTreeSet<(String, String)> = self
            .secrets
            .values()
            .filter_map(|s| Some((s.owner.clone(), s.meta.label.clone()?)))
            .collect();
        for op in ops {
            match op {
                SecretOp::Add {
                    id, owner, meta, ..
                } => {
                    if let Some(label) = &meta.label {
                        if !labels.insert((owner.clone(), label.clone())) {
                            bail!("secret with label {label:?} already exists");
                        }
                    }
                    adds.insert(id, owner);
                }
                SecretOp::Set { id, meta, .. } => {
                    let owner = self.owner_of(id, &adds)?;
                    if let Some(label) = &meta.label {
                        let current = self.secrets.get(id).and_then(|s| s.meta.label.clone());
                        if current.as_ref() != Some(label)
                            && !labels.insert((owner.clone(), label.clone()))
                        {
                            bail!("secret with label {label:?} already exists");
                        }
                    }
                }
                SecretOp::Grant {
                    id,
                    relation,
                    unit: grantee,
                } => {
                    let owner = self.owner_of(id, &adds)?;
                    let rel = self
                        .relations
                        .get(relation)
                        .filter(|r| !r.broken)
                        .ok_or_else(|| anyhow!("cannot grant access to secret in scope of relation {relation} which is not alive"))?;
                    if let Some(offering) = &rel.offering_app {
                        if offering != app_of(&owner) {
                            bail!("cannot change access to {:?}: sharing consumer secrets across a cross model relation not supported", self.uri_of(id, &adds));
                        }
                        if grantee.is_some() {
                            bail!("cannot change access to {:?}: sharing secrets with a unit across a cross model relation not supported", self.uri_of(id, &adds));
                        }
                    }
                    let subject = self.subject(*relation, app, grantee.as_deref());
                    if let Some(existing) = self.secrets.get(id).and_then(|s| {
                        s.grants
                            .iter()
                            .find(|g| g.subject == subject && g.relation != *relation)
                    }) {
                        let _ = existing;
                        bail!("cannot change secret permission scope");
                    }
                }
                SecretOp::Revoke { id, .. } => {
                    self.owner_of(id, &adds)?;
                }
                SecretOp::Remove { id, revision } => {
                    self.owner_of(id, &adds)?;
                    if let (Some(r), Some(s)) = (revision, self.secrets.get(id)) {
                        if !s.revisions.contains_key(r) {
                            bail!("secret revision {r} of {:?} not found", s.uri());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn owner_of(&self, id: &str, adds: &BTreeMap<&str, &str>) -> Result<String> {
        match (self.secrets.get(id), adds.get(id)) {
            (Some(s), _) => Ok(s.owner.clone()),
            (None, Some(owner)) => Ok(owner.to_string()),
            (None, None) => bail!("secret {id:?} not found"),
        }
    }

    fn uri_of(&self, id: &str, adds: &BTreeMap<&str, &str>) -> String {
        match (self.secrets.get(id), adds.get(id)) {
            (Some(s), _) => s.uri(),
            _ => format!("secret:{id}"),
        }
    }

    /// The real grantee of a grant from `granting_app` over `relation`.
    fn subject(&self, relation: u64, granting_app: &str, unit: Option<&str>) -> Subject {
        let rel = &self.relations[&relation];
        match unit {
            Some(seen) => Subject::Unit(rel.real_name(granting_app, seen)),
            None => Subject::App(
                rel.remote_app_of(granting_app)
                    .unwrap_or_default()
                    .to_string(),
            ),
        }
    }

    /// Applies one validated secret change of `unit`'s hook, and queues the
    /// hooks it causes.
    pub(super) fn apply_secret_op(&mut self, unit: &str, op: &SecretOp) {
        let app = app_of(unit).to_string();
        let model_uuid = self
            .apps
            .get(&app)
            .and_then(|a| self.models.get(&a.model))
            .map(|m| m.uuid.clone())
            .unwrap_or_default();
        match op {
            SecretOp::Add {
                id,
                owner,
                content,
                meta,
            } => {
                self.secrets.insert(
                    id.clone(),
                    StoredSecret {
                        id: id.clone(),
                        model_uuid,
                        owner: owner.clone(),
                        meta: meta.clone(),
                        revisions: BTreeMap::from([(1, content.clone())]),
                        latest: 1,
                        grants: Vec::new(),
                        consumers: BTreeMap::new(),
                        notified_obsolete: BTreeSet::new(),
                    },
                );
            }
            SecretOp::Set { id, content, meta } => {
                let Some(s) = self.secrets.get_mut(id) else {
                    return;
                };
                for (field, new) in [
                    (&mut s.meta.label, &meta.label),
                    (&mut s.meta.description, &meta.description),
                    (&mut s.meta.expire, &meta.expire),
                    (&mut s.meta.rotate, &meta.rotate),
                ] {
                    if new.is_some() {
                        *field = new.clone();
                    }
                }
                let changed = content
                    .as_ref()
                    .filter(|c| s.revisions.get(&s.latest) != Some(*c));
                if let Some(content) = changed {
                    s.latest += 1;
                    s.revisions.insert(s.latest, content.clone());
                    self.queue_secret_changed(id);
                    self.queue_obsolete(id);
                }
            }
            SecretOp::Grant {
                id,
                relation,
                unit: grantee,
            } => {
                let subject = self.subject(*relation, &app, grantee.as_deref());
                if let Some(s) = self.secrets.get_mut(id) {
                    if !s.grants.iter().any(|g| g.subject == subject) {
                        s.grants.push(Grant {
                            relation: *relation,
                            subject,
                        });
                    }
                }
            }
            SecretOp::Revoke {
                id,
                app: revoked_app,
                unit: revoked_unit,
            } => {
                let Some(s) = self.secrets.get(id) else {
                    return;
                };
                // The names are as the revoking unit sees them.
                let real = |seen: &str| {
                    s.grants
                        .iter()
                        .filter_map(|g| self.relations.get(&g.relation))
                        .map(|r| r.real_name(&app, seen))
                        .find(|r| r != seen)
                        .unwrap_or_else(|| seen.to_string())
                };
                let subject = match (revoked_app, revoked_unit) {
                    (_, Some(u)) => Subject::Unit(real(u)),
                    (Some(a), None) => Subject::App(real(a)),
                    (None, None) => return,
                };
                if let Some(s) = self.secrets.get_mut(id) {
                    s.grants.retain(|g| g.subject != subject);
                }
            }
            SecretOp::Remove { id, revision } => match revision {
                None => {
                    self.secrets.remove(id);
                }
                Some(r) => {
                    if let Some(s) = self.secrets.get_mut(id) {
                        s.revisions.remove(r);
                        if s.revisions.is_empty() {
                            self.secrets.remove(id);
                        }
                    }
                }
            },
        }
    }

    /// A consumer's read, recorded at once: the revision it tracks and its label.
    pub(super) fn track_secret(
        &mut self,
        unit: &str,
        id: &str,
        revision: Option<u32>,
        label: Option<String>,
    ) {
        let Some(s) = self.secrets.get_mut(id) else {
            return;
        };
        if s.owned_by(unit) {
            return;
        }
        let latest = s.latest;
        let consumer = s.consumers.entry(unit.to_string()).or_insert(Consumer {
            tracked: revision.unwrap_or(latest),
            label: None,
        });
        if let Some(r) = revision {
            consumer.tracked = r;
        }
        if label.is_some() {
            consumer.label = label;
        }
        self.queue_obsolete(id);
    }

    /// `secret-changed` for every consumer that may read `id` and tracks
    /// an older revision than the latest.
    fn queue_secret_changed(&mut self, id: &str) {
        let Some(s) = self.secrets.get(id) else {
            return;
        };
        let stale: Vec<String> = s
            .consumers
            .iter()
            .filter(|(unit, c)| c.tracked < s.latest && self.can_read(s, unit))
            .map(|(unit, _)| unit.clone())
            .collect();
        for unit in stale {
            self.enqueue(Invocation {
                unit,
                hook: "secret-changed".into(),
                secret: Some(id.to_string()),
                ..Default::default()
            });
        }
    }

    /// `secret-remove` for the owner, once per revision that is neither the
    /// latest nor tracked by any consumer.
    fn queue_obsolete(&mut self, id: &str) {
        let Some(s) = self.secrets.get(id) else {
            return;
        };
        let tracked: BTreeSet<u32> = s.consumers.values().map(|c| c.tracked).collect();
        let obsolete: Vec<u32> = s
            .revisions
            .keys()
            .copied()
            .filter(|r| *r < s.latest && !tracked.contains(r) && !s.notified_obsolete.contains(r))
            .collect();
        let Some(owner_unit) = self.owner_unit(&s.owner) else {
            return;
        };
        for r in obsolete {
            self.secrets
                .get_mut(id)
                .expect("exists")
                .notified_obsolete
                .insert(r);
            self.enqueue(Invocation {
                unit: owner_unit.clone(),
                hook: "secret-remove".into(),
                secret: Some(id.to_string()),
                secret_revision: Some(r),
                ..Default::default()
            });
        }
    }

    /// The unit that runs an owner's secret hooks: the owning unit, or the
    /// leader of the owning application.
    fn owner_unit(&self, owner: &str) -> Option<String> {
        if owner.contains('/') {
            return Some(owner.to_string());
        }
        self.apps.get(owner)?.leader.clone()
    }

    /// Grants scoped to relation `id` go with it.
    pub(super) fn revoke_relation_grants(&mut self, id: u64) {
        for s in self.secrets.values_mut() {
            s.grants.retain(|g| g.relation != id);
        }
    }

    /// A removed unit's own grants and tracking go with it.
    pub(super) fn forget_secret_consumer(&mut self, unit: &str) {
        for s in self.secrets.values_mut() {
            s.grants
                .retain(|g| g.subject != Subject::Unit(unit.to_string()));
            s.consumers.remove(unit);
        }
    }

    /// URIs of the secrets `owner` (an application or unit) owns.
    pub fn secret_ids_owned_by(&self, owner: &str) -> Vec<String> {
        self.secrets
            .values()
            .filter(|s| s.owner == owner)
            .map(StoredSecret::uri)
            .collect()
    }

    /// The URI of the secret `owner` (an application or unit) labelled `label`.
    pub fn secret_uri(&self, owner: &str, label: &str) -> Option<String> {
        self.secrets
            .values()
            .find(|s| s.owner == owner && s.meta.label.as_deref() == Some(label))
            .map(StoredSecret::uri)
    }

    fn stored_secret(&self, uri: &str) -> Result<&StoredSecret> {
        let id = uri.rsplit(['/', ':']).next().unwrap_or(uri);
        self.secrets
            .get(id)
            .ok_or_else(|| anyhow!("secret {uri:?} not found"))
    }

    /// The latest revision of a secret, and its content.
    pub fn secret_latest(&self, uri: &str) -> Result<(u32, &Bag)> {
        let s = self.stored_secret(uri)?;
        Ok((s.latest, &s.revisions[&s.latest]))
    }

    /// The revision `unit` tracks as a consumer (`None`: it never read it).
    pub fn secret_tracked_by(&self, uri: &str, unit: &str) -> Result<Option<u32>> {
        Ok(self
            .stored_secret(uri)?
            .consumers
            .get(unit)
            .map(|c| c.tracked))
    }

    /// The secret's revisions still stored.
    pub fn secret_revisions(&self, uri: &str) -> Result<Vec<u32>> {
        Ok(self.stored_secret(uri)?.revisions.keys().copied().collect())
    }

    /// The secret's rotation is due: queues `secret-rotate` for its owner
    /// (Juju's rotation watcher; here the operator says when).
    pub fn rotate_secret(&mut self, uri: &str) -> Result<()> {
        let s = self.stored_secret(uri)?;
        if matches!(s.meta.rotate.as_deref(), None | Some("never")) {
            bail!("secret {uri:?} has no rotation policy");
        }
        self.queue_owner_hook(uri, "secret-rotate", None)
    }

    /// Revision `revision` of the secret has expired: queues
    /// `secret-expired` for its owner.
    pub fn expire_secret(&mut self, uri: &str, revision: u32) -> Result<()> {
        if !self.stored_secret(uri)?.revisions.contains_key(&revision) {
            bail!("secret {uri:?} has no revision {revision}");
        }
        self.queue_owner_hook(uri, "secret-expired", Some(revision))
    }

    fn queue_owner_hook(&mut self, uri: &str, hook: &str, revision: Option<u32>) -> Result<()> {
        let s = self.stored_secret(uri)?;
        let (id, owner) = (s.id.clone(), s.owner.clone());
        let unit = self
            .owner_unit(&owner)
            .ok_or_else(|| anyhow!("{owner} has no leader"))?;
        self.enqueue(Invocation {
            unit,
            hook: hook.into(),
            secret: Some(id),
            secret_revision: revision,
            ..Default::default()
        });
        Ok(())
    }

    /// `JUJU_SECRET_ID`, `JUJU_SECRET_LABEL` (the owner's label for owner
    /// hooks, the consumer's own for `secret-changed`) and, for
    /// `secret-remove`/`secret-expired`, `JUJU_SECRET_REVISION`.
    pub(super) fn secret_hook_env(&self, inv: &Invocation) -> Vec<(String, String)> {
        let Some(s) = inv.secret.as_ref().and_then(|id| self.secrets.get(id)) else {
            return Vec::new();
        };
        let label = if s.owned_by(&inv.unit) {
            s.meta.label.clone()
        } else {
            s.consumers.get(&inv.unit).and_then(|c| c.label.clone())
        };
        let mut env = vec![
            ("JUJU_SECRET_ID".to_string(), s.uri()),
            ("JUJU_SECRET_LABEL".to_string(), label.unwrap_or_default()),
        ];
        if let Some(r) = inv.secret_revision.filter(|r| *r > 0) {
            env.push(("JUJU_SECRET_REVISION".to_string(), r.to_string()));
        }
        env
    }
}
