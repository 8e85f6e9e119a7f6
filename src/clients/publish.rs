//! Publishing to a relation: a [`Publication`] turned into `relation-set`
//! calls, writing only what differs from the bags Juju returns (so a hook
//! that failed after `relation-set`, which Juju then discarded, publishes
//! again on its retry).

use anyhow::{Context, Result};

use crate::juju::{Juju, RelationId};
use crate::relations::{bag_changes, Publication};

/// Makes the relation's bags hold `publication`: for `pgsql`, this unit's
/// bag and, on the leader, the application's bag (`app`).
pub fn publish(
    juju: &dyn Juju,
    id: &RelationId,
    publication: &Publication,
    unit: &str,
    leader: bool,
) -> Result<()> {
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
                let app = unit.split('/').next().unwrap_or_default();
                let current = juju.relation_get_app(id, app)?;
                let changes = bag_changes(desired, &current);
                if !changes.is_empty() {
                    juju.relation_set_app(id, &changes)
                        .with_context(|| format!("publishing to {id}'s application bag"))?;
                }
            }
            Ok(())
        }
    }
}
