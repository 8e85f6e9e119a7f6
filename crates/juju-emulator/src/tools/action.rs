//! `action-get`, `action-set`, `action-fail`, `action-log` (contract §4.16),
//! and `juju-reboot` (§4.17), which refuses to run in an action.

use serde_json::{json, Value};

use super::{check_max_args, no_args, run_err, usage, Fail, Reply, ToolResult};
use crate::args::Parsed;
use crate::context::{HookContext, Immediate};

fn action(ctx: &mut HookContext) -> Result<&mut crate::context::ActionContext, Fail> {
    ctx.action
        .as_mut()
        .ok_or_else(|| Fail::Run("not running an action".into()))
}

pub(super) fn action_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let params = Value::Object(action(ctx)?.params.clone());
    let Some(path) = p.positional.first() else {
        return Ok(Reply::Value(params));
    };
    let mut value = &params;
    for part in path.split('.') {
        match value.get(part) {
            Some(v) => value = v,
            None => return Ok(Reply::Value(Value::Null)),
        }
    }
    Ok(Reply::Value(value.clone()))
}

fn valid_action_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub(super) fn action_set(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let mut sets = Vec::new();
    for arg in &p.positional {
        let Some((key, value)) = arg.split_once('=') else {
            return usage(format!("argument {arg:?} must be of the form key...=value"));
        };
        for part in key.split('.') {
            if !valid_action_key(part) {
                return usage(format!(
                    "key {part:?} must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric and hyphens"
                ));
            }
        }
        if ["stdout", "stdout-encoding", "stderr", "stderr-encoding"].contains(&key) {
            return usage(format!("cannot set reserved action key {key:?}"));
        }
        sets.push((key.to_string(), value.to_string()));
    }
    let action = action(ctx)?;
    for (key, value) in sets {
        action.results.insert(key, json!(value));
    }
    Ok(Reply::Silent)
}

pub(super) fn action_fail(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let message = p.positional.first().cloned().unwrap_or_else(|| {
        "action failed without reason given, check action for errors".to_string()
    });
    action(ctx)?.failed = Some(message);
    Ok(Reply::Silent)
}

pub(super) fn action_log(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    if p.positional.is_empty() {
        return usage("no message specified");
    }
    action(ctx)?;
    ctx.immediate
        .push(Immediate::ActionLog(p.positional.join(" ")));
    Ok(Reply::Silent)
}

pub(super) fn juju_reboot(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    if ctx.action.is_some() {
        return run_err("juju-reboot is not supported when running an action.");
    }
    ctx.pending.reboot = true;
    Ok(Reply::Silent)
}
