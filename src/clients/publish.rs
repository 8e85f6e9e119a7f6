//! Publishing to a relation: a [`Publication`] turned into `relation-set`
//! calls, writing only what differs from the bags Juju returns (so a hook
//! that failed after `relation-set`, which Juju then discarded, publishes
//! again on its retry), and, for `database`, the relation's secrets made
//! to exist first ([`super::secrets`]).

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use super::secrets::{self, SecretTools};
use crate::juju::{Juju, RelationData, RelationId};
use crate::relations::postgresql_client::publish::{app_bag, retraction, settings_to_write};
use crate::relations::{bag_changes, Publication};

/// Makes the relation's bags hold `publication`: for `pgsql`, this unit's
/// bag and, on the leader, the application's bag (`app`); for `database`,
/// on the leader only, its secrets and the application's bag.
/// `secret_labels`: the labels the relation's secrets may have (kept in its
/// cached result); returned as they are to be kept.
pub fn publish(
    juju: &dyn Juju,
    tools: &dyn SecretTools,
    id: &RelationId,
    publication: &Publication,
    unit: &str,
    leader: bool,
    secret_labels: &BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    let app = unit.split('/').next().unwrap_or_default();
    match publication {
        Publication::PgsqlBags(desired) => {
            let desired = desired.expose();
            let current = juju.relation_get(id, unit)?;
            let changes = bag_changes(desired, &current);
            if !changes.is_empty() {
                juju.relation_set(id, &changes)
                    .with_context(|| format!("publishing to {id}"))?;
            }
            if leader {
                set_app_bag(juju, id, app, desired)?;
            }
            Ok(secret_labels.clone())
        }
        Publication::ClientSecretsAndBag(plan) => {
            if !leader {
                return Ok(secret_labels.clone());
            }
            let planned: Vec<_> = plan.secrets().collect();
            let applied = secrets::apply(tools, id, true, &planned, secret_labels)?;
            let bag = app_bag(plan, &applied.uris).map_err(|e| anyhow::anyhow!("{e}"))?;
            set_app_bag(juju, id, app, settings_to_write(&bag).expose())?;
            Ok(applied.remembered)
        }
        Publication::ClientRetraction => {
            if !leader {
                return Ok(secret_labels.clone());
            }
            let applied = secrets::apply(tools, id, true, &[], secret_labels)?;
            set_app_bag(juju, id, app, &retraction())?;
            Ok(applied.remembered)
        }
    }
}

/// `relation-set --app` of what differs from the application bag Juju
/// returns (leader only).
fn set_app_bag(juju: &dyn Juju, id: &RelationId, app: &str, desired: &RelationData) -> Result<()> {
    let current = juju.relation_get_app(id, app)?;
    let changes = bag_changes(desired, &current);
    if !changes.is_empty() {
        juju.relation_set_app(id, &changes)
            .with_context(|| format!("publishing to {id}'s application bag"))?;
    }
    Ok(())
}
