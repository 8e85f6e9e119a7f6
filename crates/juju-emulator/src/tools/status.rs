//! `status-set`, `status-get`, `application-version-set` and `juju-log`
//! (contract §4.8–§4.10): what the unit tells the operator, at once.

use serde_json::{json, Value};

use super::{check_max_args, no_args, run_err, usage, Reply, ToolResult};
use crate::args::Parsed;
use crate::context::{HookContext, Immediate, Status};

const STATUSES: [&str; 4] = ["maintenance", "blocked", "waiting", "active"];

pub(super) fn status_set(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let Some(status) = p.positional.first() else {
        return usage("invalid args, require <status> [message]");
    };
    if !STATUSES.contains(&status.as_str()) {
        return usage(format!(
            "invalid status {status:?}, expected one of [maintenance blocked waiting active]"
        ));
    }
    check_max_args(p, 2)?;
    let application = p.is_set("application");
    if application && !ctx.leader {
        return run_err("this unit is not the leader");
    }
    let status = Status {
        status: status.clone(),
        message: p.positional.get(1).cloned().unwrap_or_default(),
    };
    if application {
        ctx.app_status = Some(status.clone());
    } else {
        ctx.status = status.clone();
    }
    ctx.immediate.push(Immediate::Status {
        application,
        status,
    });
    Ok(Reply::Silent)
}

fn status_value(status: &Status) -> Value {
    json!({"message": status.message, "status": status.status, "status-data": {}})
}

pub(super) fn status_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    let include_data = p.is_set("include-data");
    let smart = p.value("format").is_none_or(|f| f == "smart");
    if p.is_set("application") {
        if !ctx.leader {
            return run_err("finding application status: this unit is not the leader");
        }
        let app = ctx.app_status.clone().unwrap_or_else(|| Status {
            status: "unknown".into(),
            message: String::new(),
        });
        if smart && !include_data {
            return Ok(Reply::Value(json!(app.status)));
        }
        let mut value = status_value(&app);
        value["units"] = json!({ ctx.unit.clone(): status_value(&ctx.status) });
        return Ok(Reply::Value(json!({ "application-status": value })));
    }
    if smart && !include_data {
        return Ok(Reply::Value(json!(ctx.status.status)));
    }
    Ok(Reply::Value(status_value(&ctx.status)))
}

pub(super) fn application_version_set(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let Some(version) = p.positional.first() else {
        return usage("no version specified");
    };
    check_max_args(p, 1)?;
    ctx.immediate
        .push(Immediate::WorkloadVersion(version.clone()));
    Ok(Reply::Silent)
}

const LOG_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

pub(super) fn juju_log(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    if p.positional.is_empty() {
        return usage("no message specified");
    }
    let mut level = match p.value("log-level") {
        Some(l) => l.to_ascii_uppercase(),
        None if p.is_set("debug") => "DEBUG".into(),
        None => "INFO".into(),
    };
    if level == "WARN" {
        level = "WARNING".into();
    }
    if !LOG_LEVELS.contains(&level.as_str()) {
        ctx.immediate.push(Immediate::Log {
            level: "WARNING".into(),
            message: format!("Specified log level ({level}) is not valid"),
        });
        level = "INFO".into();
    }
    let mut message = p.positional.join(" ");
    if let Some(rel) = ctx
        .current_relation
        .and_then(|id| ctx.relations.get(&id).map(|r| (id, r)))
    {
        message = format!("{}:{}: {message}", rel.1.endpoint, rel.0);
    }
    ctx.immediate.push(Immediate::Log { level, message });
    Ok(Reply::Silent)
}
