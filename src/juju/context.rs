//! What Juju tells the charm about the running hook, read from the
//! environment once, in `main`, and passed down.
//!
//! Juju describes a hook through environment variables (`juju-hook-contract.md`
//! §2): the event (`JUJU_DISPATCH_PATH`), the unit, and for relation and
//! storage hooks which relation or storage, which remote unit and
//! application, and which unit is departing. [`HookContext::from_vars`] turns
//! them into one typed value; nothing else in the charm reads a `JUJU_*`
//! variable.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{RelationId, SecretUri};
use crate::event::{Event, RelationKind};

/// The running hook, as Juju describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookContext {
    pub event: Event,
    /// `JUJU_UNIT_NAME`, e.g. `postgresql/0`.
    pub unit: String,
    /// The relation of a relation hook.
    pub relation: Option<HookRelation>,
    /// `JUJU_STORAGE_ID` in storage hooks, e.g. `pgdata/0`.
    pub storage_id: Option<String>,
    /// `JUJU_CHARM_DIR`.
    pub charm_dir: Option<PathBuf>,
    /// `JUJU_VERSION`, e.g. `3.6.1`.
    pub juju_version: String,
    /// `JUJU_MODEL_UUID`: with a secret's id, the URI consumers in other
    /// models read it by (`secret://<model-uuid>/<id>`).
    pub model_uuid: String,
    /// Whether a hook context exists (`JUJU_CONTEXT_ID`), so `juju-log` works.
    pub in_hook: bool,
    /// The secret of a secret hook (`JUJU_SECRET_ID`, `JUJU_SECRET_LABEL`,
    /// `JUJU_SECRET_REVISION`).
    pub secret: Option<HookSecret>,
}

/// The secret a secret hook is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSecret {
    pub uri: SecretUri,
    /// The owner's label (empty when it has none).
    pub label: String,
    /// The obsolete revision (`secret-remove`, `secret-expired`).
    pub revision: Option<u32>,
}

/// The relation a relation hook is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRelation {
    /// `JUJU_RELATION_ID`.
    pub id: RelationId,
    /// What happened to it, from the event (`None` if Juju named a relation
    /// outside a relation hook).
    pub kind: Option<RelationKind>,
    /// `JUJU_REMOTE_APP`; empty when Juju does not say.
    pub remote_app: String,
    /// `JUJU_DEPARTING_UNIT`, in `-relation-departed`.
    pub departing: Option<String>,
}

impl HookContext {
    /// The context of this process.
    pub fn from_env() -> Result<Self> {
        let argv0 = std::env::args().next().unwrap_or_default();
        Self::from_vars(|name| std::env::var(name).ok(), &argv0)
    }

    /// The context from `var` (an environment lookup) and `argv0` (used when
    /// `JUJU_DISPATCH_PATH` is missing, as with an old `hooks/<name>` copy).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, argv0: &str) -> Result<Self> {
        let set = |name: &str| var(name).filter(|value| !value.is_empty());
        let event = Event::from_dispatch_path(&set("JUJU_DISPATCH_PATH").unwrap_or(argv0.into()));
        let relation = match set("JUJU_RELATION_ID") {
            None => None,
            Some(id) => Some(HookRelation {
                id: id
                    .parse()
                    .context("JUJU_RELATION_ID set by Juju is not `<endpoint>:<number>`")?,
                kind: match &event {
                    Event::Relation { kind, .. } => Some(*kind),
                    _ => None,
                },
                remote_app: set("JUJU_REMOTE_APP").unwrap_or_default(),
                departing: set("JUJU_DEPARTING_UNIT"),
            }),
        };
        Ok(HookContext {
            event,
            unit: var("JUJU_UNIT_NAME").unwrap_or_default(),
            relation,
            storage_id: set("JUJU_STORAGE_ID"),
            charm_dir: var("JUJU_CHARM_DIR").map(PathBuf::from),
            juju_version: var("JUJU_VERSION").unwrap_or_default(),
            model_uuid: var("JUJU_MODEL_UUID").unwrap_or_default(),
            in_hook: set("JUJU_CONTEXT_ID").is_some(),
            secret: match set("JUJU_SECRET_ID") {
                None => None,
                Some(id) => Some(HookSecret {
                    uri: SecretUri::parse(&id)
                        .context("JUJU_SECRET_ID set by Juju is not a secret URI")?,
                    label: set("JUJU_SECRET_LABEL").unwrap_or_default(),
                    revision: match set("JUJU_SECRET_REVISION") {
                        None => None,
                        Some(r) => Some(
                            r.parse()
                                .context("JUJU_SECRET_REVISION set by Juju is not a number")?,
                        ),
                    },
                }),
            },
        })
    }

    /// The relation hook's relation, if this is one of `kind`.
    pub fn relation_hook(&self, kind: RelationKind) -> Option<&HookRelation> {
        self.relation.as_ref().filter(|r| r.kind == Some(kind))
    }

    /// The application part of the unit name (`postgresql` for
    /// `postgresql/0`).
    pub fn application(&self) -> &str {
        self.unit.split('/').next().unwrap_or_default()
    }

    /// Whether Juju is new enough for secrets (3.1 and later).
    pub fn has_secrets(&self) -> bool {
        let mut parts = self
            .juju_version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (3, 1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn context(vars: &[(&str, &str)]) -> Result<HookContext> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HookContext::from_vars(|name| vars.get(name).cloned(), "/charm/hooks/install")
    }

    #[test]
    fn a_relation_hook_names_its_relation_and_kind() {
        let ctx = context(&[
            ("JUJU_DISPATCH_PATH", "hooks/db-relation-departed"),
            ("JUJU_UNIT_NAME", "postgresql/1"),
            ("JUJU_RELATION_ID", "db:7"),
            ("JUJU_REMOTE_APP", "app"),
            ("JUJU_DEPARTING_UNIT", "app/2"),
            ("JUJU_CONTEXT_ID", "postgresql/1-db-relation-departed-1"),
            ("JUJU_VERSION", "3.6.1"),
        ])
        .unwrap();
        let relation = ctx.relation.clone().unwrap();
        assert_eq!(relation.id, "db:7".parse().unwrap());
        assert_eq!(relation.kind, Some(RelationKind::Departed));
        assert_eq!(relation.remote_app, "app");
        assert_eq!(relation.departing.as_deref(), Some("app/2"));
        assert!(ctx.relation_hook(RelationKind::Departed).is_some());
        assert!(ctx.relation_hook(RelationKind::Broken).is_none());
        assert_eq!(ctx.application(), "postgresql");
        assert!(ctx.in_hook && ctx.has_secrets());
    }

    #[test]
    fn other_hooks_have_no_relation_and_fall_back_to_argv0() {
        let ctx = context(&[("JUJU_DISPATCH_PATH", ""), ("JUJU_DEPARTING_UNIT", "")]).unwrap();
        assert_eq!(ctx.event, Event::Install);
        assert_eq!(ctx.relation, None);
        assert_eq!(ctx.storage_id, None);
        assert!(!ctx.in_hook);
    }

    #[test]
    fn storage_ids_and_juju_versions() {
        let ctx = context(&[
            ("JUJU_DISPATCH_PATH", "hooks/pgdata-storage-detaching"),
            ("JUJU_STORAGE_ID", "pgdata/0"),
            ("JUJU_VERSION", "2.9.45"),
        ])
        .unwrap();
        assert_eq!(ctx.storage_id.as_deref(), Some("pgdata/0"));
        assert!(!ctx.has_secrets());
        for (version, secrets) in [
            ("3.1.0", true),
            ("3.0.9", false),
            ("4.0", true),
            ("", false),
        ] {
            let ctx = context(&[("JUJU_VERSION", version)]).unwrap();
            assert_eq!(ctx.has_secrets(), secrets, "{version}");
        }
    }

    #[test]
    fn a_malformed_relation_id_is_an_error() {
        let err = context(&[("JUJU_RELATION_ID", "db")]).unwrap_err();
        assert!(format!("{err:#}").contains("JUJU_RELATION_ID"), "{err:#}");
    }
}
