//! `is-leader`, `leader-get`, `leader-set` (contract §4.13).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{check_max_args, key_values, no_args, run_err, usage, Reply, ToolResult};
use crate::args::Parsed;
use crate::context::{HookContext, Immediate};

pub(super) fn leader_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    match p.positional.first().map(String::as_str) {
        None | Some("-") => Ok(Reply::Value(json!(ctx.leader_settings))),
        Some(key) if key.contains('=') => usage(format!("invalid key {key:?}")),
        Some(key) => Ok(Reply::Value(
            ctx.leader_settings
                .get(key)
                .map(|v| json!(v))
                .unwrap_or(Value::Null),
        )),
    }
}

pub(super) fn leader_set(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let settings = key_values(&p.positional)?;
    if !ctx.leader {
        return run_err("cannot write leadership settings: cannot write settings: not the leader");
    }
    let mut change = BTreeMap::new();
    for (key, value) in settings {
        if value.is_empty() {
            ctx.leader_settings.remove(&key);
            change.insert(key, None);
        } else {
            ctx.leader_settings.insert(key.clone(), value.clone());
            change.insert(key, Some(value));
        }
    }
    ctx.immediate.push(Immediate::LeaderSet(change));
    Ok(Reply::Silent)
}

pub(super) fn is_leader(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    Ok(Reply::Value(json!(ctx.leader)))
}
