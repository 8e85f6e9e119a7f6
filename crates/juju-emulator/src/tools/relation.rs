//! `relation-get`, `relation-set`, `relation-ids`, `relation-list` (contract
//! §4.1–§4.4) and `relation-model-get` (§4.18).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    app_of, check_max_args, key_values, no_args, relation_id, run_err, scalar_to_string, usage,
    Fail, Reply, ToolIo, ToolResult,
};
use crate::args::Parsed;
use crate::context::{HookContext, RelationWrite};

pub(super) fn relation_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 2)?;
    let id = relation_id(ctx, p)?;
    let rel = &ctx.relations[&id];
    let want_app = p.is_set("app");
    let key = p
        .positional
        .first()
        .map(String::as_str)
        .filter(|k| *k != "-");
    let target = match p.positional.get(1) {
        Some(explicit) if want_app => app_of(explicit).to_string(),
        Some(explicit) => explicit.clone(),
        None if want_app && ctx.current_relation != Some(id) => rel.remote_app.clone(),
        None if want_app => match &ctx.remote_app {
            Some(app) => app.clone(),
            None => return usage("no unit or application specified"),
        },
        None => match (&ctx.remote_unit, &ctx.remote_app) {
            _ if ctx.current_relation != Some(id) => {
                return usage("no unit or application specified")
            }
            (Some(unit), _) => unit.clone(),
            (None, Some(app)) => app.clone(),
            (None, None) => return usage("no unit or application specified"),
        },
    };
    let reading_app_bag = !target.contains('/');
    if reading_app_bag && target == ctx.app && !rel.peer && !ctx.leader {
        return run_err(format!(
            "permission denied: cannot read application settings of {:?} in relation {}:{id}: this unit is not the leader",
            ctx.app, rel.endpoint
        ));
    }
    let bag = if reading_app_bag {
        rel.app_bags.get(&target)
    } else {
        rel.unit_bags.get(&target)
    };
    let Some(bag) = bag else {
        return run_err(format!(
            "cannot read settings for {} {target:?} in relation \"{}:{id}\": settings not found",
            if reading_app_bag {
                "application"
            } else {
                "unit"
            },
            rel.endpoint
        ));
    };
    Ok(Reply::Value(match key {
        None => json!(bag),
        Some(k) => bag.get(k).map(|v| json!(v)).unwrap_or(Value::Null),
    }))
}

fn read_settings_file(path: &str, io: &mut dyn ToolIo) -> Result<Vec<(String, String)>, Fail> {
    let text = if path == "-" {
        io.read_stdin()
            .map_err(|e| Fail::Run(format!("reading stdin: {e}")))?
    } else {
        io.read_file(path)
            .map_err(|e| Fail::Run(format!("open {path}: {e}")))?
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let map: BTreeMap<String, serde_yaml::Value> = serde_yaml::from_str(&text)
        .map_err(|e| Fail::Usage(format!("invalid settings file {path:?}: {e}")))?;
    map.into_iter()
        .map(|(k, v)| {
            scalar_to_string(&v)
                .map(|s| (k.clone(), s))
                .ok_or_else(|| Fail::Usage(format!("value of {k:?} must be a string")))
        })
        .collect()
}

pub(super) fn relation_set(ctx: &mut HookContext, p: &Parsed, io: &mut dyn ToolIo) -> ToolResult {
    let id = relation_id(ctx, p)?;
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    if let Some(path) = p.value("file") {
        settings.extend(read_settings_file(path, io)?);
    }
    settings.extend(key_values(&p.positional)?);
    let owner = if p.is_set("app") {
        if !ctx.leader {
            return run_err("cannot write relation settings: this unit is not the leader");
        }
        ctx.app.clone()
    } else {
        ctx.unit.clone()
    };
    let app_bag = p.is_set("app");
    let rel = ctx.relations.get_mut(&id).expect("checked relation");
    let bag = if app_bag {
        rel.app_bags.entry(owner.clone()).or_default()
    } else {
        rel.unit_bags.entry(owner.clone()).or_default()
    };
    for (key, value) in settings {
        let value = if value.is_empty() {
            bag.remove(&key);
            None
        } else {
            bag.insert(key.clone(), value.clone());
            Some(value)
        };
        ctx.pending.relation_writes.push(RelationWrite {
            relation: id,
            owner: owner.clone(),
            key,
            value,
        });
    }
    Ok(Reply::Silent)
}

pub(super) fn relation_ids(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let endpoint = match p.positional.first() {
        Some(ep) => ep.clone(),
        None => match ctx.current_relation.and_then(|id| ctx.relations.get(&id)) {
            Some(rel) => rel.endpoint.clone(),
            None => return usage("no relation name specified"),
        },
    };
    let ids: Vec<String> = ctx
        .relations
        .iter()
        .filter(|(_, rel)| rel.endpoint == endpoint)
        .map(|(id, rel)| format!("{}:{id}", rel.endpoint))
        .collect();
    Ok(Reply::Value(json!(ids)))
}

pub(super) fn relation_list(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    let id = relation_id(ctx, p)?;
    let rel = &ctx.relations[&id];
    if p.is_set("app") {
        return Ok(Reply::Value(json!(rel.remote_app)));
    }
    Ok(Reply::Value(json!(rel.members)))
}

/// `relation-model-get [-r <id>]`: the model hosting the remote application,
/// as `{"uuid": ...}` (Juju 3.6). `-r` is needed outside relation hooks.
pub(super) fn relation_model_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    let id = relation_id(ctx, p)?;
    Ok(Reply::Value(
        json!({ "uuid": ctx.relations[&id].remote_model_uuid }),
    ))
}
