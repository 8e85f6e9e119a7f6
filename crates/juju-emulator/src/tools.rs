//! The hook tools (`relation-get`, `status-set`, ...) over a [`HookContext`].
//!
//! Each tool is a function of the context, its arguments and stdin that
//! returns what juju/cmd would print and the exit code: 0 on success, 2 for
//! argument errors, 1 for run errors, with `ERROR <message>` on stderr
//! (contract §3 and §4). Tools record their effects in the context: buffered
//! ones in `pending`, immediate ones in `immediate`.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::{json, Map, Value};

use crate::args::{flag, parse, FlagSpec, Parsed};
use crate::context::{
    Bag, HookContext, Immediate, NetworkInfo, RelationWrite, SecretContext, SecretOp, Status,
};
use crate::format::{render, Format};

/// Every tool name the emulator answers to.
pub const TOOL_NAMES: &[&str] = &[
    "action-fail",
    "action-get",
    "action-log",
    "action-set",
    "application-version-set",
    "close-port",
    "config-get",
    "is-leader",
    "juju-log",
    "juju-reboot",
    "leader-get",
    "leader-set",
    "network-get",
    "open-port",
    "opened-ports",
    "relation-get",
    "relation-ids",
    "relation-list",
    "relation-set",
    "secret-add",
    "secret-get",
    "secret-grant",
    "secret-ids",
    "secret-info-get",
    "secret-remove",
    "secret-revoke",
    "secret-set",
    "status-get",
    "status-set",
    "storage-add",
    "storage-get",
    "storage-list",
    "unit-get",
];

/// Tools that never change the context (so it is not written back).
const READ_ONLY_TOOLS: &[&str] = &[
    "action-get",
    "config-get",
    "is-leader",
    "leader-get",
    "network-get",
    "opened-ports",
    "relation-get",
    "relation-ids",
    "relation-list",
    "secret-get",
    "secret-ids",
    "secret-info-get",
    "status-get",
    "storage-get",
    "storage-list",
    "unit-get",
];

/// What a tool run produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Whether the context changed and must be written back.
    pub changed: bool,
}

/// A tool failure: `Usage` exits 2 (flag or argument errors), `Run` exits 1.
#[derive(Debug)]
enum Fail {
    Usage(String),
    Run(String),
}

type ToolResult = Result<Reply, Fail>;

/// A successful tool's result before formatting.
enum Reply {
    /// Nothing printed.
    Silent,
    /// A value printed with `--format` (default smart).
    Value(Value),
    /// Text printed verbatim.
    Text(String),
}

fn usage<T>(message: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Usage(message.into()))
}

fn run_err<T>(message: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Run(message.into()))
}

const FORMAT: FlagSpec = flag("format", None, true);
const OUTPUT: FlagSpec = flag("output", Some('o'), true);
const RELATION: FlagSpec = flag("relation", Some('r'), true);
const HELP: FlagSpec = flag("help", Some('h'), false);

/// Runs tool `name` against `ctx`.
pub fn run_tool(
    ctx: &mut HookContext,
    name: &str,
    args: &[String],
    stdin: &mut dyn Read,
) -> Output {
    let Some((specs, default_format)) = tool_specs(name) else {
        return Output {
            code: 1,
            stderr: format!("ERROR unknown command {name:?}\n"),
            ..Default::default()
        };
    };
    let mut all_specs = specs.to_vec();
    all_specs.push(HELP);
    let parsed = match parse(args, &all_specs) {
        Ok(p) => p,
        Err(message) => return failure(Fail::Usage(message)),
    };
    if parsed.is_set("help") {
        return Output {
            stdout: format!("Usage: {name} [options]\n"),
            ..Default::default()
        };
    }
    let format = match parsed.value("format") {
        None => default_format,
        Some(f) => match Format::parse(f) {
            Some(format) if name != "secret-get" || format != Format::Smart => format,
            _ => {
                return failure(Fail::Usage(format!(
                    "invalid value {f:?} for flag --format: unknown format {f:?}"
                )))
            }
        },
    };
    let result = dispatch(ctx, name, &parsed, stdin);
    // Only tools that record something need the context written back.
    let changed = result.is_ok() && !READ_ONLY_TOOLS.contains(&name);
    let mut out = match result {
        Ok(Reply::Silent) => Output::default(),
        Ok(Reply::Text(text)) => Output {
            stdout: text,
            ..Default::default()
        },
        Ok(Reply::Value(value)) => {
            let text = render(&value, format);
            match parsed.value("output") {
                Some(path) => match std::fs::write(path, text) {
                    Ok(()) => Output::default(),
                    Err(e) => failure(Fail::Run(format!("cannot write {path}: {e}"))),
                },
                None => Output {
                    stdout: text,
                    ..Default::default()
                },
            }
        }
        Err(fail) => failure(fail),
    };
    if name == "relation-set" && parsed.flags.contains_key("format") && out.code == 0 {
        out.stderr
            .push_str("--format flag deprecated for command \"relation-set\"\n");
    }
    out.changed = changed;
    out
}

fn failure(fail: Fail) -> Output {
    let (code, message) = match fail {
        Fail::Usage(m) => (2, m),
        Fail::Run(m) => (1, m),
    };
    Output {
        code,
        stderr: format!("ERROR {message}\n"),
        ..Default::default()
    }
}

fn tool_specs(name: &str) -> Option<(Vec<FlagSpec>, Format)> {
    let smart = Format::Smart;
    let formatted = |mut extra: Vec<FlagSpec>| {
        extra.push(FORMAT);
        extra.push(OUTPUT);
        extra
    };
    let specs = match name {
        "relation-get" => formatted(vec![RELATION, flag("app", None, false)]),
        "relation-set" => vec![
            RELATION,
            flag("app", None, false),
            flag("file", None, true),
            FORMAT,
        ],
        "relation-ids" => formatted(vec![]),
        "relation-list" => formatted(vec![RELATION, flag("app", None, false)]),
        "config-get" => formatted(vec![flag("all", Some('a'), false)]),
        "storage-list" => formatted(vec![]),
        "storage-get" => formatted(vec![flag("storage", Some('s'), true)]),
        "storage-add" => vec![],
        "status-set" => vec![flag("application", None, false)],
        "status-get" => formatted(vec![
            flag("include-data", None, false),
            flag("application", None, false),
        ]),
        "application-version-set" => vec![],
        "juju-log" => vec![
            flag("debug", None, false),
            flag("log-level", Some('l'), true),
            FORMAT,
        ],
        "network-get" => formatted(vec![
            RELATION,
            flag("ingress-address", None, false),
            flag("bind-address", None, false),
            flag("egress-subnets", None, false),
            flag("primary-address", None, false),
        ]),
        "unit-get" => formatted(vec![]),
        "is-leader" => formatted(vec![]),
        "leader-get" => formatted(vec![]),
        "leader-set" => vec![],
        "open-port" | "close-port" => vec![flag("endpoints", None, true), FORMAT],
        "opened-ports" => formatted(vec![flag("endpoints", None, false)]),
        "secret-add" | "secret-set" => vec![
            flag("owner", None, true),
            flag("label", None, true),
            flag("description", None, true),
            flag("expire", None, true),
            flag("rotate", None, true),
            flag("file", None, true),
        ],
        "secret-get" => {
            return Some((
                formatted(vec![
                    flag("label", None, true),
                    flag("peek", None, false),
                    flag("refresh", None, false),
                ]),
                Format::Yaml,
            ))
        }
        "secret-grant" => vec![RELATION, flag("unit", None, true)],
        "secret-revoke" => vec![RELATION, flag("app", None, true), flag("unit", None, true)],
        "secret-remove" => vec![flag("revision", None, true)],
        "secret-ids" => formatted(vec![]),
        "secret-info-get" => {
            return Some((formatted(vec![flag("label", None, true)]), Format::Yaml))
        }
        "action-get" => formatted(vec![]),
        "action-set" | "action-fail" | "action-log" => vec![],
        "juju-reboot" => vec![flag("now", None, false)],
        _ => return None,
    };
    Some((specs, smart))
}

fn dispatch(ctx: &mut HookContext, name: &str, p: &Parsed, stdin: &mut dyn Read) -> ToolResult {
    match name {
        "relation-get" => relation_get(ctx, p),
        "relation-set" => relation_set(ctx, p, stdin),
        "relation-ids" => relation_ids(ctx, p),
        "relation-list" => relation_list(ctx, p),
        "config-get" => config_get(ctx, p),
        "storage-list" => storage_list(ctx, p),
        "storage-get" => storage_get(ctx, p),
        "storage-add" => storage_add(ctx, p),
        "status-set" => status_set(ctx, p),
        "status-get" => status_get(ctx, p),
        "application-version-set" => application_version_set(ctx, p),
        "juju-log" => juju_log(ctx, p),
        "network-get" => network_get(ctx, p),
        "unit-get" => unit_get(ctx, p),
        "is-leader" => {
            no_args(p)?;
            Ok(Reply::Value(json!(ctx.leader)))
        }
        "leader-get" => leader_get(ctx, p),
        "leader-set" => leader_set(ctx, p),
        "open-port" => port_change(ctx, p, true),
        "close-port" => port_change(ctx, p, false),
        "opened-ports" => opened_ports(ctx, p),
        "secret-add" => secret_add(ctx, p),
        "secret-get" => secret_get(ctx, p),
        "secret-set" => secret_set(ctx, p),
        "secret-grant" => secret_grant(ctx, p),
        "secret-revoke" => secret_revoke(ctx, p),
        "secret-remove" => secret_remove(ctx, p),
        "secret-ids" => secret_ids(ctx, p),
        "secret-info-get" => secret_info_get(ctx, p),
        "action-get" => action_get(ctx, p),
        "action-set" => action_set(ctx, p),
        "action-fail" => action_fail(ctx, p),
        "action-log" => action_log(ctx, p),
        "juju-reboot" => juju_reboot(ctx, p),
        _ => run_err(format!("unknown command {name:?}")),
    }
}

fn no_args(p: &Parsed) -> Result<(), Fail> {
    check_max_args(p, 0)
}

fn check_max_args(p: &Parsed, max: usize) -> Result<(), Fail> {
    if p.positional.len() > max {
        let extra: Vec<String> = p.positional[max..]
            .iter()
            .map(|a| format!("{a:?}"))
            .collect();
        return usage(format!("unrecognized args: [{}]", extra.join(" ")));
    }
    Ok(())
}

/// Resolves `-r` (the part after the last colon) or the hook's own relation.
fn relation_id(ctx: &HookContext, p: &Parsed) -> Result<u64, Fail> {
    match p.value("relation") {
        Some(raw) => {
            let tail = raw.rsplit(':').next().unwrap_or(raw);
            let id: u64 = tail.parse().map_err(|_| {
                Fail::Usage(format!(
                    "invalid value {raw:?} for flag -r: invalid relation id"
                ))
            })?;
            if !ctx.relations.contains_key(&id) {
                return usage(format!(
                    "invalid value {raw:?} for flag -r: relation not found"
                ));
            }
            Ok(id)
        }
        None => ctx
            .current_relation
            .ok_or_else(|| Fail::Usage("no relation id specified".into())),
    }
}

fn app_of(unit_or_app: &str) -> &str {
    unit_or_app.split('/').next().unwrap_or(unit_or_app)
}

fn relation_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

/// Parses `key=value` arguments as juju/utils keyvalues does (trimmed, empty allowed).
fn key_values(args: &[String]) -> Result<Vec<(String, String)>, Fail> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for arg in args {
        let Some((k, v)) = arg.split_once('=') else {
            return usage(format!("expected \"key=value\", got {arg:?}"));
        };
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        if k.is_empty() {
            return usage(format!("expected \"key=value\", got {arg:?}"));
        }
        if seen.insert(k.clone(), ()).is_some() {
            return usage(format!("key {k:?} specified more than once"));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn scalar_to_string(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Null => Some(String::new()),
        _ => None,
    }
}

fn read_settings_file(path: &str, stdin: &mut dyn Read) -> Result<Vec<(String, String)>, Fail> {
    let text = if path == "-" {
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|e| Fail::Run(format!("reading stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| Fail::Run(format!("open {path}: {e}")))?
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

fn relation_set(ctx: &mut HookContext, p: &Parsed, stdin: &mut dyn Read) -> ToolResult {
    let id = relation_id(ctx, p)?;
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    if let Some(path) = p.value("file") {
        settings.extend(read_settings_file(path, stdin)?);
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

fn relation_ids(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

fn relation_list(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    let id = relation_id(ctx, p)?;
    let rel = &ctx.relations[&id];
    if p.is_set("app") {
        return Ok(Reply::Value(json!(rel.remote_app)));
    }
    Ok(Reply::Value(json!(rel.members)))
}

fn config_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let all = p.is_set("all");
    match p.positional.first() {
        Some(key) if all => usage(format!(
            "cannot use argument --all together with key {key:?}"
        )),
        Some(key) => Ok(Reply::Value(
            ctx.config.get(key).cloned().unwrap_or(Value::Null),
        )),
        None => {
            let mut map: Map<String, Value> = ctx
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if all {
                for name in ctx.config_types.keys() {
                    map.entry(name.clone()).or_insert(Value::Null);
                }
            }
            Ok(Reply::Value(Value::Object(map)))
        }
    }
}

fn storage_list(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

fn storage_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

fn storage_add(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

const STATUSES: [&str; 4] = ["maintenance", "blocked", "waiting", "active"];

fn status_set(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

fn status_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

fn application_version_set(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let Some(version) = p.positional.first() else {
        return usage("no version specified");
    };
    check_max_args(p, 1)?;
    ctx.immediate
        .push(Immediate::WorkloadVersion(version.clone()));
    Ok(Reply::Silent)
}

const LOG_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

fn juju_log(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

fn network_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let Some(binding) = p.positional.first() else {
        return usage("no arguments specified");
    };
    check_max_args(p, 1)?;
    if !binding.is_empty() && !ctx.endpoints.contains(binding) {
        return run_err(format!("no network config found for binding {binding:?}"));
    }
    let relation = match p.value("relation") {
        Some(_) => Some(relation_id(ctx, p)?),
        None => ctx.current_relation,
    };
    let info: &NetworkInfo = match relation.and_then(|id| ctx.relations.get(&id)) {
        Some(rel) => &rel.network,
        None => &ctx.network,
    };
    let ingress = info
        .ingress_addresses
        .first()
        .cloned()
        .unwrap_or_else(|| info.bind_address.clone());
    let mut chosen: Vec<(&str, Value)> = Vec::new();
    if p.is_set("bind-address") {
        chosen.push(("bind-address", json!(info.bind_address)));
    }
    if p.is_set("ingress-address") {
        chosen.push(("ingress-address", json!(ingress)));
    }
    if p.is_set("egress-subnets") {
        chosen.push(("egress-subnets", json!(info.egress_subnets)));
    }
    if p.is_set("primary-address") {
        chosen.push(("primary-address", json!(info.bind_address)));
    }
    match chosen.len() {
        0 => {}
        1 => return Ok(Reply::Value(chosen.remove(0).1)),
        _ => {
            let map: Map<String, Value> = chosen
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            return Ok(Reply::Value(Value::Object(map)));
        }
    }
    let json_doc = json!({
        "bind-addresses": [{
            "mac-address": info.mac_address,
            "interface-name": info.interface,
            "addresses": [{"hostname": "", "value": info.bind_address, "cidr": info.cidr}],
        }],
        "egress-subnets": info.egress_subnets,
        "ingress-addresses": info.ingress_addresses,
    });
    if p.value("format") == Some("json") {
        return Ok(Reply::Value(json_doc));
    }
    // YAML keeps struct order and the legacy duplicate keys (contract §4.11).
    let mut text = String::from("bind-addresses:\n");
    text.push_str(&format!(
        "- mac-address: {:?}\n  interface-name: {}\n  addresses:\n  - hostname: \"\"\n    value: {}\n    cidr: {}\n    address: {}\n  macaddress: {:?}\n  interfacename: {}\n",
        info.mac_address, info.interface, info.bind_address, info.cidr, info.bind_address,
        info.mac_address, info.interface
    ));
    text.push_str("egress-subnets:\n");
    for subnet in &info.egress_subnets {
        text.push_str(&format!("- {subnet}\n"));
    }
    text.push_str("ingress-addresses:\n");
    for address in &info.ingress_addresses {
        text.push_str(&format!("- {address}\n"));
    }
    Ok(Reply::Text(text))
}

fn unit_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let Some(setting) = p.positional.first() else {
        return usage("no setting specified");
    };
    check_max_args(p, 1)?;
    match setting.as_str() {
        "private-address" => Ok(Reply::Value(json!(ctx.network.bind_address))),
        "public-address" => Ok(Reply::Value(json!(ctx.public_address))),
        other => usage(format!("unknown setting {other:?}")),
    }
}

fn leader_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

fn leader_set(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

/// Normalises `5432`, `5432/TCP`, `8000-8999/udp` or `icmp` to Juju's form.
pub fn parse_port_range(raw: &str) -> Option<String> {
    let raw = raw.to_ascii_lowercase();
    if raw == "icmp" {
        return Some(raw);
    }
    let (range, protocol) = match raw.split_once('/') {
        Some((range, protocol)) => (range, protocol),
        None => (raw.as_str(), "tcp"),
    };
    if !["tcp", "udp"].contains(&protocol) {
        return None;
    }
    let port = |s: &str| s.parse::<u16>().ok().filter(|p| *p > 0);
    match range.split_once('-') {
        Some((from, to)) => {
            let (from, to) = (port(from)?, port(to)?);
            (from <= to).then(|| format!("{from}-{to}/{protocol}"))
        }
        None => Some(format!("{}/{protocol}", port(range)?)),
    }
}

fn port_change(ctx: &mut HookContext, p: &Parsed, open: bool) -> ToolResult {
    let Some(raw) = p.positional.first() else {
        return usage("no port or range specified");
    };
    check_max_args(p, 1)?;
    let Some(port) = parse_port_range(raw) else {
        return usage(format!("invalid port or range {raw:?}"));
    };
    if open {
        ctx.pending.open_ports.push(port);
    } else {
        ctx.pending.close_ports.push(port);
    }
    Ok(Reply::Silent)
}

fn opened_ports(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    let suffix = if p.is_set("endpoints") { " (*)" } else { "" };
    let ports: Vec<String> = ctx
        .committed_ports
        .iter()
        .map(|port| format!("{port}{suffix}"))
        .collect();
    Ok(Reply::Value(json!(ports)))
}

fn new_secret_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut bytes = [0u8; 20];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    let id: String = bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    format!("secret:{id}")
}

/// Parses `key=value`, `key#base64=value` and `key#file=/path` content.
fn secret_content(p: &Parsed, stdin: Option<&mut dyn Read>) -> Result<Bag, Fail> {
    let _ = stdin;
    let mut content = Bag::new();
    if let Some(path) = p.value("file") {
        let text =
            std::fs::read_to_string(path).map_err(|e| Fail::Run(format!("open {path}: {e}")))?;
        let map: BTreeMap<String, serde_yaml::Value> = serde_yaml::from_str(&text)
            .map_err(|e| Fail::Usage(format!("invalid secret file {path:?}: {e}")))?;
        for (k, v) in map {
            content.insert(k, scalar_to_string(&v).unwrap_or_default());
        }
    }
    for arg in &p.positional {
        let Some((key, value)) = arg.split_once('=') else {
            return usage(format!("expected \"key=value\", got {arg:?}"));
        };
        let value = match key.split_once('#') {
            Some((key, "file")) => {
                let text = std::fs::read_to_string(value)
                    .map_err(|e| Fail::Run(format!("open {value}: {e}")))?;
                content.insert(key.to_string(), text);
                continue;
            }
            Some((key, "base64")) => {
                content.insert(format!("{key}#base64"), value.to_string());
                continue;
            }
            _ => value,
        };
        content.insert(key.to_string(), value.to_string());
    }
    Ok(content)
}

fn find_secret<'a>(
    ctx: &'a HookContext,
    id: Option<&str>,
    label: Option<&str>,
) -> Option<&'a SecretContext> {
    let wanted = id.map(|id| {
        id.trim_start_matches("secret:")
            .rsplit('/')
            .next()
            .unwrap_or(id)
            .to_string()
    });
    ctx.secrets.values().find(|s| match (&wanted, label) {
        (Some(want), _) => s.id.trim_start_matches("secret:") == want,
        (None, Some(label)) => s.label.as_deref() == Some(label),
        (None, None) => false,
    })
}

fn secret_add(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let content = secret_content(p, None)?;
    if content.is_empty() {
        return usage("missing secret value or filename");
    }
    let owner = p.value("owner").unwrap_or("application");
    if !["application", "unit"].contains(&owner) {
        return usage(format!("secret owner {owner:?} not valid"));
    }
    if owner == "application" && !ctx.leader {
        return run_err("this unit is not the leader");
    }
    let secret = SecretContext {
        id: new_secret_id(),
        label: p.value("label").map(str::to_string),
        owner: if owner == "unit" {
            ctx.unit.clone()
        } else {
            ctx.app.clone()
        },
        revision: 1,
        content,
        description: p.value("description").map(str::to_string),
    };
    ctx.secrets.insert(secret.id.clone(), secret.clone());
    let id = secret.id.clone();
    ctx.pending.secret_ops.push(SecretOp::Add(secret));
    Ok(Reply::Text(format!("{id}\n")))
}

fn secret_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 2)?;
    let label = p.value("label");
    // With --label, a lone argument that is not a secret URI is the key.
    let (id, key) = match p.positional.as_slice() {
        [first] if label.is_some() && !first.starts_with("secret:") => (None, Some(first)),
        [first, key, ..] => (Some(first.as_str()), Some(key)),
        [first] => (Some(first.as_str()), None),
        [] => (None, None),
    };
    if id.is_none() && label.is_none() {
        return usage("require either a secret URI or label");
    }
    if p.is_set("peek") && p.is_set("refresh") {
        return usage("specify one of --peek or --refresh but not both");
    }
    let Some(secret) = find_secret(ctx, id, label) else {
        return run_err(format!(
            "secret {:?} not found",
            id.or(label).unwrap_or_default()
        ));
    };
    Ok(Reply::Value(match key {
        Some(key) => secret
            .content
            .get(key)
            .map(|v| json!(v))
            .unwrap_or(Value::Null),
        None => json!(secret.content),
    }))
}

fn owned_secret(ctx: &HookContext, id: Option<&str>) -> Result<String, Fail> {
    let Some(id) = id else {
        return usage("missing secret URI");
    };
    let Some(secret) = find_secret(ctx, Some(id), None) else {
        return run_err(format!("secret {id:?} not found"));
    };
    if secret.owner == ctx.app && !ctx.leader {
        return run_err("this unit is not the leader");
    }
    if secret.owner != ctx.app && secret.owner != ctx.unit {
        return run_err(format!(
            "permission denied: secret {id:?} is not owned by this unit"
        ));
    }
    Ok(secret.id.clone())
}

fn secret_set(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let id = owned_secret(ctx, p.positional.first().map(String::as_str))?;
    let rest = Parsed {
        flags: p.flags.clone(),
        positional: p.positional[1..].to_vec(),
    };
    let content = secret_content(&rest, None)?;
    let content = (!content.is_empty()).then_some(content);
    let secret = ctx.secrets.get_mut(&id).expect("owned secret");
    if let Some(c) = &content {
        secret.content = c.clone();
        secret.revision += 1;
    }
    if let Some(label) = p.value("label") {
        secret.label = Some(label.to_string());
    }
    ctx.pending.secret_ops.push(SecretOp::Set {
        id,
        content,
        label: p.value("label").map(str::to_string),
        description: p.value("description").map(str::to_string),
    });
    Ok(Reply::Silent)
}

fn secret_grant(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let id = owned_secret(ctx, p.positional.first().map(String::as_str))?;
    let relation = relation_id(ctx, p)?;
    let unit = p.value("unit").map(str::to_string);
    if let Some(unit) = &unit {
        let remote = &ctx.relations[&relation].remote_app;
        if app_of(unit) != remote {
            return usage(format!(
                "cannot specify unit {unit:?} in relation to application {remote:?}"
            ));
        }
    }
    ctx.pending
        .secret_ops
        .push(SecretOp::Grant { id, relation, unit });
    Ok(Reply::Silent)
}

fn secret_revoke(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let id = owned_secret(ctx, p.positional.first().map(String::as_str))?;
    let relation = match p.value("relation") {
        Some(_) => Some(relation_id(ctx, p)?),
        None => ctx.current_relation,
    };
    ctx.pending
        .secret_ops
        .push(SecretOp::Revoke { id, relation });
    Ok(Reply::Silent)
}

fn secret_remove(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let id = owned_secret(ctx, p.positional.first().map(String::as_str))?;
    ctx.pending.secret_ops.push(SecretOp::Remove { id });
    Ok(Reply::Silent)
}

fn secret_ids(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    let ids: Vec<String> = ctx
        .secrets
        .values()
        .filter(|s| s.owner == ctx.app || s.owner == ctx.unit)
        .map(|s| s.id.trim_start_matches("secret:").to_string())
        .collect();
    Ok(Reply::Value(if ids.is_empty() {
        Value::Null
    } else {
        json!(ids)
    }))
}

fn secret_info_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let id = p.positional.first().map(String::as_str);
    let label = p.value("label");
    if id.is_none() && label.is_none() {
        return usage("require either a secret URI or label");
    }
    let Some(secret) = find_secret(ctx, id, label) else {
        return run_err(format!(
            "secret {:?} not found",
            id.or(label).unwrap_or_default()
        ));
    };
    let short = secret.id.trim_start_matches("secret:").to_string();
    Ok(Reply::Value(json!({ short: {
        "revision": secret.revision,
        "label": secret.label,
        "owner": if secret.owner.contains('/') { "unit" } else { "application" },
        "rotation": "never",
    }})))
}

fn action(ctx: &mut HookContext) -> Result<&mut crate::context::ActionContext, Fail> {
    ctx.action
        .as_mut()
        .ok_or_else(|| Fail::Run("not running an action".into()))
}

fn action_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

fn action_set(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
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

fn action_fail(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let message = p.positional.first().cloned().unwrap_or_else(|| {
        "action failed without reason given, check action for errors".to_string()
    });
    action(ctx)?.failed = Some(message);
    Ok(Reply::Silent)
}

fn action_log(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    if p.positional.is_empty() {
        return usage("no message specified");
    }
    action(ctx)?;
    ctx.immediate
        .push(Immediate::ActionLog(p.positional.join(" ")));
    Ok(Reply::Silent)
}

fn juju_reboot(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    if ctx.action.is_some() {
        return run_err("juju-reboot is not supported when running an action.");
    }
    ctx.pending.reboot = true;
    Ok(Reply::Silent)
}
