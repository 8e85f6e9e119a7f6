//! The hook tools (`relation-get`, `status-set`, ...) over a [`HookContext`].
//!
//! Each tool is a function of the context, its arguments and stdin that
//! returns what juju/cmd would print and the exit code: 0 on success, 2 for
//! argument errors, 1 for run errors, with `ERROR <message>` on stderr
//! (contract §3 and §4). Tools record their effects in the context: buffered
//! ones in `pending`, immediate ones in `immediate`.
//!
//! [`TOOLS`] is the one registry: each tool's name, flags, output format,
//! whether it can change the context, and its handler. The handlers live in
//! one module per family: `relation`, `config`, `storage`, `status`,
//! `network`, `leader`, `secret`, `action`.

mod action;
mod config;
mod leader;
mod network;
mod relation;
mod secret;
mod status;
mod storage;

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use crate::args::{flag, parse, FlagSpec, Parsed};
use crate::context::HookContext;
use crate::format::{render, Format};

pub use network::parse_port_range;

/// How a tool takes `--format`.
#[derive(Debug, Clone, Copy)]
pub enum FormatFlag {
    /// No `--format` flag.
    None,
    /// Accepted and ignored, with `--format flag deprecated for command "<name>"` on stderr.
    Deprecated,
    /// `--format` (and `-o/--output`) with this default; `smart` may be refused.
    Choice { default: Format, smart: bool },
}

/// A tool's handler: most read the context and their arguments; some read
/// stdin or the files their arguments name.
#[derive(Clone, Copy)]
enum Handler {
    Args(fn(&mut HookContext, &Parsed) -> ToolResult),
    WithIo(fn(&mut HookContext, &Parsed, &mut dyn ToolIo) -> ToolResult),
}

/// What a tool reads and writes besides the context: stdin, the files its
/// arguments name (`--file`, `key#file=`) and the file `-o` names. A tool
/// process does it itself ([`LocalIo`]); a tool answered by the agent over
/// its socket does it through the client that asked
/// ([`crate::agent_socket`]).
pub trait ToolIo {
    fn read_stdin(&mut self) -> std::io::Result<String>;
    fn read_file(&mut self, path: &str) -> std::io::Result<String>;
    fn write_file(&mut self, path: &str, text: &str) -> std::io::Result<()>;
}

/// The tool process's own stdin and files.
pub struct LocalIo<'a> {
    pub stdin: &'a mut dyn Read,
}

impl ToolIo for LocalIo<'_> {
    fn read_stdin(&mut self) -> std::io::Result<String> {
        let mut text = String::new();
        self.stdin.read_to_string(&mut text)?;
        Ok(text)
    }

    fn read_file(&mut self, path: &str) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write_file(&mut self, path: &str, text: &str) -> std::io::Result<()> {
        std::fs::write(path, text)
    }
}

/// One hook tool.
#[derive(Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    /// Flags besides `--help` (and `--format`/`-o`, given by `format`).
    pub flags: &'static [FlagSpec],
    pub format: FormatFlag,
    /// Never changes the context, so it is not written back.
    pub read_only: bool,
    handler: Handler,
}

const PLAIN: FormatFlag = FormatFlag::None;
const DEPRECATED: FormatFlag = FormatFlag::Deprecated;
const SMART: FormatFlag = FormatFlag::Choice {
    default: Format::Smart,
    smart: true,
};
const YAML_OR_JSON: FormatFlag = FormatFlag::Choice {
    default: Format::Yaml,
    smart: false,
};

const FORMAT: FlagSpec = flag("format", None, true);
const OUTPUT: FlagSpec = flag("output", Some('o'), true);
const HELP: FlagSpec = flag("help", Some('h'), false);
const RELATION: FlagSpec = flag("relation", Some('r'), true);
const APP: FlagSpec = flag("app", None, false);
const SECRET_UPSERT: &[FlagSpec] = &[
    flag("owner", None, true),
    flag("label", None, true),
    flag("description", None, true),
    flag("expire", None, true),
    flag("rotate", None, true),
    flag("file", None, true),
];

use Handler::{Args, WithIo};

/// Every tool the emulator answers to.
pub const TOOLS: &[Tool] = &[
    writes("action-fail", &[], PLAIN, Args(action::action_fail)),
    reads("action-get", &[], SMART, Args(action::action_get)),
    writes("action-log", &[], PLAIN, Args(action::action_log)),
    writes("action-set", &[], PLAIN, Args(action::action_set)),
    writes(
        "application-version-set",
        &[],
        PLAIN,
        Args(status::application_version_set),
    ),
    writes(
        "close-port",
        &[flag("endpoints", None, true)],
        DEPRECATED,
        Args(network::close_port),
    ),
    reads(
        "config-get",
        &[flag("all", Some('a'), false)],
        SMART,
        Args(config::config_get),
    ),
    reads("is-leader", &[], SMART, Args(leader::is_leader)),
    writes(
        "juju-log",
        &[
            flag("debug", None, false),
            flag("log-level", Some('l'), true),
        ],
        DEPRECATED,
        Args(status::juju_log),
    ),
    writes(
        "juju-reboot",
        &[flag("now", None, false)],
        PLAIN,
        Args(action::juju_reboot),
    ),
    reads("leader-get", &[], SMART, Args(leader::leader_get)),
    writes("leader-set", &[], PLAIN, Args(leader::leader_set)),
    reads(
        "network-get",
        &[
            RELATION,
            flag("ingress-address", None, false),
            flag("bind-address", None, false),
            flag("egress-subnets", None, false),
            flag("primary-address", None, false),
        ],
        SMART,
        Args(network::network_get),
    ),
    writes(
        "open-port",
        &[flag("endpoints", None, true)],
        DEPRECATED,
        Args(network::open_port),
    ),
    reads(
        "opened-ports",
        &[flag("endpoints", None, false)],
        SMART,
        Args(network::opened_ports),
    ),
    reads(
        "relation-get",
        &[RELATION, APP],
        SMART,
        Args(relation::relation_get),
    ),
    reads("relation-ids", &[], SMART, Args(relation::relation_ids)),
    reads(
        "relation-list",
        &[RELATION, APP],
        SMART,
        Args(relation::relation_list),
    ),
    reads(
        "relation-model-get",
        &[RELATION],
        SMART,
        Args(relation::relation_model_get),
    ),
    writes(
        "relation-set",
        &[RELATION, APP, flag("file", None, true)],
        DEPRECATED,
        WithIo(relation::relation_set),
    ),
    writes(
        "secret-add",
        SECRET_UPSERT,
        PLAIN,
        WithIo(secret::secret_add),
    ),
    writes(
        "secret-get",
        &[
            flag("label", None, true),
            flag("peek", None, false),
            flag("refresh", None, false),
        ],
        YAML_OR_JSON,
        Args(secret::secret_get),
    ),
    writes(
        "secret-grant",
        &[RELATION, flag("unit", None, true)],
        PLAIN,
        Args(secret::secret_grant),
    ),
    reads("secret-ids", &[], SMART, Args(secret::secret_ids)),
    reads(
        "secret-info-get",
        &[flag("label", None, true)],
        YAML_OR_JSON,
        Args(secret::secret_info_get),
    ),
    writes(
        "secret-remove",
        &[flag("revision", None, true)],
        PLAIN,
        Args(secret::secret_remove),
    ),
    writes(
        "secret-revoke",
        &[
            RELATION,
            flag("app", None, true),
            flag("application", None, true),
            flag("unit", None, true),
        ],
        PLAIN,
        Args(secret::secret_revoke),
    ),
    writes(
        "secret-set",
        SECRET_UPSERT,
        PLAIN,
        WithIo(secret::secret_set),
    ),
    reads(
        "status-get",
        &[
            flag("include-data", None, false),
            flag("application", None, false),
        ],
        SMART,
        Args(status::status_get),
    ),
    writes(
        "status-set",
        &[flag("application", None, false)],
        PLAIN,
        Args(status::status_set),
    ),
    writes("storage-add", &[], PLAIN, Args(storage::storage_add)),
    reads(
        "storage-get",
        &[flag("storage", Some('s'), true)],
        SMART,
        Args(storage::storage_get),
    ),
    reads("storage-list", &[], SMART, Args(storage::storage_list)),
    reads("unit-get", &[], SMART, Args(network::unit_get)),
];

/// A tool that only reads the context.
const fn reads(
    name: &'static str,
    flags: &'static [FlagSpec],
    format: FormatFlag,
    handler: Handler,
) -> Tool {
    Tool {
        name,
        flags,
        format,
        read_only: true,
        handler,
    }
}

/// A tool that records something in the context.
const fn writes(
    name: &'static str,
    flags: &'static [FlagSpec],
    format: FormatFlag,
    handler: Handler,
) -> Tool {
    Tool {
        read_only: false,
        ..reads(name, flags, format, handler)
    }
}

/// The tool named `name`.
pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// Every tool name, for the links in a unit's tools directory.
pub fn names() -> impl Iterator<Item = &'static str> {
    TOOLS.iter().map(|t| t.name)
}

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
pub(super) enum Fail {
    Usage(String),
    Run(String),
}

pub(super) type ToolResult = Result<Reply, Fail>;

/// A successful tool's result before formatting.
pub(super) enum Reply {
    /// Nothing printed.
    Silent,
    /// A value printed with `--format` (default smart).
    Value(Value),
    /// Text printed verbatim.
    Text(String),
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

/// Runs tool `name` against `ctx`.
pub fn run_tool(ctx: &mut HookContext, name: &str, args: &[String], io: &mut dyn ToolIo) -> Output {
    let Some(tool) = find(name) else {
        return Output {
            code: 1,
            stderr: format!("ERROR unknown command {name:?}\n"),
            ..Default::default()
        };
    };
    let mut specs = tool.flags.to_vec();
    match tool.format {
        FormatFlag::None => {}
        FormatFlag::Deprecated => specs.push(FORMAT),
        FormatFlag::Choice { .. } => specs.extend([FORMAT, OUTPUT]),
    }
    specs.push(HELP);
    let parsed = match parse(args, &specs) {
        Ok(p) => p,
        Err(message) => return failure(Fail::Usage(message)),
    };
    if parsed.is_set("help") {
        return Output {
            stdout: format!("Usage: {name} [options]\n"),
            ..Default::default()
        };
    }
    let format = match (tool.format, parsed.value("format")) {
        (FormatFlag::Choice { default, .. }, None) => default,
        (FormatFlag::Choice { smart, .. }, Some(f)) => match Format::parse(f) {
            Some(format) if smart || format != Format::Smart => format,
            _ => {
                return failure(Fail::Usage(format!(
                    "invalid value {f:?} for flag --format: unknown format {f:?}"
                )))
            }
        },
        _ => Format::Smart,
    };
    let result = match tool.handler {
        Args(run) => run(ctx, &parsed),
        WithIo(run) => run(ctx, &parsed, io),
    };
    // Only tools that record something need the context written back.
    let changed = result.is_ok() && !tool.read_only;
    let mut out = match result {
        Ok(Reply::Silent) => Output::default(),
        Ok(Reply::Text(text)) => Output {
            stdout: text,
            ..Default::default()
        },
        Ok(Reply::Value(value)) => {
            let text = render(&value, format);
            match parsed.value("output") {
                Some(path) => match io.write_file(path, &text) {
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

pub(super) fn usage<T>(message: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Usage(message.into()))
}

pub(super) fn run_err<T>(message: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Run(message.into()))
}

pub(super) fn no_args(p: &Parsed) -> Result<(), Fail> {
    check_max_args(p, 0)
}

pub(super) fn check_max_args(p: &Parsed, max: usize) -> Result<(), Fail> {
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
pub(super) fn relation_id(ctx: &HookContext, p: &Parsed) -> Result<u64, Fail> {
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

pub(super) fn app_of(unit_or_app: &str) -> &str {
    unit_or_app.split('/').next().unwrap_or(unit_or_app)
}

/// Parses `key=value` arguments as juju/utils keyvalues does (trimmed, empty allowed).
pub(super) fn key_values(args: &[String]) -> Result<Vec<(String, String)>, Fail> {
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

pub(super) fn scalar_to_string(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Null => Some(String::new()),
        _ => None,
    }
}
