//! `storage-list`, `storage-get`, `storage-add` (contract §4.6).

use serde_json::json;

use super::{app_of, check_max_args, run_err, usage, Reply, ToolResult};
use crate::args::Parsed;
use crate::context::HookContext;

pub(super) fn storage_list(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let filter = p.positional.first();
    let ids: Vec<&String> = ctx
        .storage
        .keys()
        .filter(|id| filter.is_none_or(|name| app_of(id) == name))
        .collect();
    Ok(Reply::Value(json!(ids)))
}

fn valid_storage_id(id: &str) -> bool {
    match id.split_once('/') {
        Some((name, n)) => {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

pub(super) fn storage_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let id = match p.value("storage") {
        Some(id) if !valid_storage_id(id) => {
            return usage(format!(
                "invalid value {id:?} for flag -s: invalid storage ID {id:?}"
            ))
        }
        Some(id) => id.to_string(),
        None => match &ctx.current_storage {
            Some(id) => id.clone(),
            None => return usage("no storage instance specified"),
        },
    };
    let Some(storage) = ctx.storage.get(&id) else {
        return usage(format!(
            "invalid value {id:?} for flag -s: storage instance {id:?} not found"
        ));
    };
    match p.positional.first().map(String::as_str) {
        None => Ok(Reply::Value(
            json!({"kind": storage.kind, "location": storage.location}),
        )),
        Some("kind") => Ok(Reply::Value(json!(storage.kind))),
        Some("location") => Ok(Reply::Value(json!(storage.location))),
        Some(other) => run_err(format!("invalid storage attribute {other:?}")),
    }
}

pub(super) fn storage_add(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    if p.positional.is_empty() {
        return usage("storage add requires a storage directive");
    }
    let mut requests = Vec::new();
    for directive in &p.positional {
        let (name, count) = match directive.split_once('=') {
            Some((name, count)) => match count.parse::<u32>() {
                Ok(n) => (name.to_string(), n),
                Err(_) => return usage(format!("only count can be specified for {name:?}")),
            },
            None => (directive.clone(), 1),
        };
        if !ctx.storage_names.contains(&name) {
            return run_err(format!("storage {name:?} not found"));
        }
        requests.push((name, count));
    }
    ctx.pending.storage_add.extend(requests);
    Ok(Reply::Silent)
}
