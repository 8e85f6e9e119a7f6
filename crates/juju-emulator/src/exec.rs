//! `juju-exec`: runs commands in a unit's hook context, from outside any
//! hook (a watcher the charm started, an operator on the machine).
//!
//! Juju 3.x syntax (`juju-exec [options] [-u] [<unit-name>] <commands>`):
//! the unit may be `app/0` or `unit-app-0`, given with `-u` or as the
//! first argument, or inferred when the machine has one unit; the
//! commands are the remaining arguments joined by spaces and run by bash
//! in the charm directory with the hook environment. The agent runs them
//! under the machine lock (here: between two hooks of the World), commits
//! what the tools changed like a hook does (Juju's `RunCommands` flushes
//! the context whatever the exit code, and not when the process is
//! killed), and the client exits with the commands' exit code.
//!
//! The client is the emulator binary linked as `juju-exec`. It talks to
//! the World over `<data dir>/juju-exec.socket`, where the data dir is the
//! parent of the directory holding the binary (`/var/lib/juju` on a
//! machine, the world's root on the test host): one JSON request line, one
//! JSON response line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::args::{flag, parse, FlagSpec};

/// The command name.
pub const COMMAND: &str = "juju-exec";

/// The socket's file name in the agent's data directory.
pub const SOCKET: &str = "juju-exec.socket";

const FLAGS: &[FlagSpec] = &[
    flag("u", None, true),
    flag("no-context", None, false),
    flag("relation", Some('r'), true),
    flag("remote-unit", None, true),
    flag("remote-app", None, true),
    flag("force-remote-unit", None, false),
    flag("operator", None, false),
    flag("help", Some('h'), false),
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The unit name (`app/0`); `None` with `no_context`.
    pub unit: Option<String>,
    pub commands: String,
    pub no_context: bool,
    pub relation: Option<String>,
    pub remote_unit: Option<String>,
    pub remote_app: Option<String>,
    pub force_remote_unit: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResponse {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Set when the agent refused or could not run the commands.
    pub error: Option<String>,
    /// With `--no-context`: the machine lock is ours until we hang up.
    pub lock_granted: bool,
}

/// `unit-my-app-3` or `my-app/3` → `my-app/3`; anything else is `None`.
pub fn unit_name(text: &str) -> Option<String> {
    let (app, number) = match text.strip_prefix("unit-") {
        Some(tag) => tag.rsplit_once('-')?,
        None => text.split_once('/')?,
    };
    let valid_app = !app.is_empty()
        && app.starts_with(|c: char| c.is_ascii_lowercase())
        && app
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let valid_number = !number.is_empty() && number.chars().all(|c| c.is_ascii_digit());
    (valid_app && valid_number).then(|| format!("{app}/{number}"))
}

/// Parses the command line as Juju's `juju-exec` `Init` does. `units_here`
/// are the units of this machine (to infer the unit when there is one).
/// The error is the message juju/cmd prints after `ERROR ` (exit 2).
pub fn parse_request(args: &[String], units_here: &[String]) -> Result<ExecRequest, String> {
    let p = parse(args, FLAGS)?;
    let mut positional = p.positional.clone();
    let explicit_unit = p.value("u").map(str::to_string);
    let mut request = ExecRequest {
        no_context: p.is_set("no-context"),
        relation: p.value("relation").map(str::to_string),
        remote_unit: p.value("remote-unit").map(str::to_string),
        remote_app: p.value("remote-app").map(str::to_string),
        force_remote_unit: p.is_set("force-remote-unit"),
        ..Default::default()
    };
    if p.is_set("operator") {
        return Err("--operator is only supported on k8s workload charms".into());
    }
    if request.no_context {
        if let Some(unit) = explicit_unit {
            return Err(format!(
                "-no-context cannot be passed with an explicit unit-name (-u {unit:?})"
            ));
        }
    } else {
        let infer = || match units_here {
            [only] => Some(only.clone()),
            _ => None,
        };
        let unit = match explicit_unit {
            Some(u) if u.is_empty() => {
                infer().ok_or("cannot infer the unit: more than one unit on this machine")?
            }
            Some(u) => unit_name(&u).ok_or_else(|| format!("{u:?} is not a valid tag"))?,
            None => {
                let Some(first) = positional.first().cloned() else {
                    return Err("missing unit-name".into());
                };
                match unit_name(&first) {
                    Some(unit) => {
                        positional.remove(0);
                        unit
                    }
                    None => infer().ok_or_else(|| format!("{first:?} is not a valid tag"))?,
                }
            }
        };
        request.unit = Some(unit);
        if request.remote_app.is_none() {
            request.remote_app = request
                .remote_unit
                .as_deref()
                .and_then(|u| u.split_once('/'))
                .map(|(app, _)| app.to_string());
        }
    }
    if positional.is_empty() {
        return Err("missing commands".into());
    }
    request.commands = positional.join(" ");
    Ok(request)
}

/// The agent's data directory: the parent of the directory that holds the
/// running binary (`/var/lib/juju/tools/jujuc` → `/var/lib/juju`).
fn data_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot find the agent's data directory".into())
}

fn units_in(data_dir: &Path) -> Vec<String> {
    let mut units: Vec<String> = std::fs::read_dir(data_dir.join("agents"))
        .map(|entries| {
            entries
                .filter_map(|e| unit_name(e.ok()?.file_name().to_str()?))
                .collect()
        })
        .unwrap_or_default();
    units.sort();
    units
}

/// The `juju-exec` command: returns the exit code.
pub fn client_main(args: &[String]) -> u8 {
    if let Some(id) = std::env::var("JUJU_CONTEXT_ID")
        .ok()
        .filter(|id| !id.is_empty())
    {
        eprintln!("ERROR juju-exec cannot be called from within a hook, have context {id:?}");
        return 2;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("Usage: juju-exec [options] [-u] [<unit-name>] <commands>");
        return 0;
    }
    let data_dir = match data_dir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("ERROR {e}");
            return 1;
        }
    };
    let request = match parse_request(args, &units_in(&data_dir)) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("ERROR {e}");
            return 2;
        }
    };
    match call(&data_dir.join(SOCKET), &request) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR {e}");
            1
        }
    }
}

fn call(socket: &Path, request: &ExecRequest) -> Result<u8, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the machine agent at {}: {e}",
            socket.display()
        )
    })?;
    let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut reply = String::new();
    reader
        .read_line(&mut reply)
        .map_err(|e| format!("waiting for the agent: {e}"))?;
    let response: ExecResponse = serde_json::from_str(&reply)
        .map_err(|_| "the agent went away before answering".to_string())?;
    if let Some(error) = response.error {
        return Err(error);
    }
    if response.lock_granted {
        // --no-context: our own process runs the commands, holding the
        // machine lock (the connection) until they finish.
        let status = std::process::Command::new("/bin/bash")
            .arg("-c")
            .arg(&request.commands)
            .status()
            .map_err(|e| format!("running bash: {e}"))?;
        drop(stream);
        return Ok(status.code().unwrap_or(1) as u8);
    }
    print!("{}", response.stdout);
    eprint!("{}", response.stderr);
    let _ = std::io::stdout().flush();
    Ok(response.code.clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_like_juju_exec() {
        let here = vec!["pg/0".to_string()];
        let ok = |a: &[&str]| parse_request(&args(a), &[]).unwrap();
        let r = ok(&["foo/2", "bar", "baz"]);
        assert_eq!(
            (r.unit.as_deref(), r.commands.as_str()),
            (Some("foo/2"), "bar baz")
        );
        let r = ok(&["-u", "foo/2", "unit-foo-2"]);
        assert_eq!(
            (r.unit.as_deref(), r.commands.as_str()),
            (Some("foo/2"), "unit-foo-2")
        );
        let r = ok(&["unit-my-app-2", "command"]);
        assert_eq!(r.unit.as_deref(), Some("my-app/2"));
        let r = ok(&[
            "--relation",
            "db:1",
            "--remote-unit",
            "other/1",
            "pg/0",
            "x",
        ]);
        assert_eq!(r.relation.as_deref(), Some("db:1"));
        assert_eq!(r.remote_app.as_deref(), Some("other"));
        let r = ok(&["--no-context", "echo", "done"]);
        assert!(r.no_context && r.unit.is_none());
        assert_eq!(r.commands, "echo done");
        // One unit on the machine: the first argument may be a command.
        let r = parse_request(&args(&["status-get"]), &here).unwrap();
        assert_eq!(
            (r.unit.as_deref(), r.commands.as_str()),
            (Some("pg/0"), "status-get")
        );
        let err = |a: &[&str]| parse_request(&args(a), &[]).unwrap_err();
        assert_eq!(err(&[]), "missing unit-name");
        assert_eq!(err(&["foo"]), "\"foo\" is not a valid tag");
        assert_eq!(err(&["foo/2"]), "missing commands");
        assert_eq!(err(&["-u", "foo/2"]), "missing commands");
        assert_eq!(
            err(&["--no-context", "-u", "foo/1", "x"]),
            "-no-context cannot be passed with an explicit unit-name (-u \"foo/1\")"
        );
    }
}
