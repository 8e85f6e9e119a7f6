//! Reading one client relation from Juju: its remote application, the
//! remote units' bags and the remote application's bag, and this unit's
//! address for it. Only what Juju returns is used; nothing is remembered.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::juju::{HookRelation, Juju, RelationId};
use crate::relations::RelationFacts;

/// The remote application of `id`: the one the relation hook names, else
/// Juju's answer; empty while Juju does not know it yet.
pub fn remote_app(juju: &dyn Juju, id: &RelationId, hook: Option<&HookRelation>) -> Result<String> {
    Ok(match hook {
        Some(h) if !h.remote_app.is_empty() => h.remote_app.clone(),
        _ => juju.relation_remote_app(id)?.unwrap_or_default(),
    })
}

/// The relation's remote bags. The application bag is best effort (a
/// consumer that never wrote one has none to read).
pub fn relation_facts(
    juju: &dyn Juju,
    id: &RelationId,
    remote_app: &str,
    hook: Option<&HookRelation>,
) -> Result<RelationFacts> {
    let mut remote_units = BTreeMap::new();
    for unit in juju.relation_list(id)? {
        let bag = juju.relation_get(id, &unit)?;
        remote_units.insert(unit, bag);
    }
    Ok(RelationFacts {
        relation: id.clone(),
        remote_app: remote_app.to_string(),
        remote_app_data: juju.relation_get_app(id, remote_app).unwrap_or_default(),
        remote_units,
        departing_unit: hook.and_then(|h| h.departing.clone()),
    })
}
