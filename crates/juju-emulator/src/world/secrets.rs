//! Secrets as the controller stores them: content and owner, the grants
//! that let other units read them, and the changes hooks commit.

use std::collections::BTreeMap;

use super::naming::app_of;
use super::World;
use crate::context::{SecretContext, SecretOp};

#[derive(Debug, Clone)]
pub(super) struct StoredSecret {
    pub(super) secret: SecretContext,
    /// (relation id, unit): a grant to the remote application of the
    /// relation, or to that one unit.
    pub(super) grants: Vec<(u64, Option<String>)>,
}

impl World {
    /// The secrets `unit` may read, as its hook context carries them.
    pub(super) fn visible_secrets(&self, unit: &str) -> BTreeMap<String, SecretContext> {
        self.secrets
            .values()
            .filter(|s| self.secret_visible(s, unit))
            .map(|s| (s.secret.id.clone(), s.secret.clone()))
            .collect()
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

    pub(super) fn apply_secret_op(&mut self, op: &SecretOp) {
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
                        rel.real_name(app_of(&s.secret.owner), u)
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
}
