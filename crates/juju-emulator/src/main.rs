//! The multi-call binary of the emulator:
//!
//! * linked as `relation-get`, `status-set`, ... in a unit's tools
//!   directory, it asks the unit's agent over `JUJU_AGENT_SOCKET_ADDRESS`
//!   ([`juju_emulator::agent_socket`]), or, where none listens (`juju-exec`),
//!   finds the hook context next to it, checks `JUJU_CONTEXT_ID`, and runs
//!   the tool named by argv[0];
//! * linked as `juju-exec`, it asks the World to run commands in a unit's
//!   hook context ([`juju_emulator::exec`]);
//! * run as `juju-emulator machine-init <boot plan>`, it is an emulated
//!   machine's init ([`juju_emulator::machine::init`]).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use juju_emulator::context::{HookContext, LockedContext};
use juju_emulator::machine::init;
use juju_emulator::tools::{find, run_tool, LocalIo};
use juju_emulator::{agent_socket, exec};

fn main() -> ExitCode {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rest: Vec<String> = args.collect();
    if name == exec::COMMAND {
        return ExitCode::from(exec::client_main(&rest));
    }
    if rest.first().map(String::as_str) == Some(init::SUBCOMMAND) && find(&name).is_none() {
        let Some(plan) = rest.get(1) else {
            eprintln!("usage: juju-emulator {} <boot plan>", init::SUBCOMMAND);
            return ExitCode::from(2);
        };
        if let Err(e) = init::run(Path::new(plan)) {
            eprintln!("machine init: {e:#}");
        }
        return ExitCode::from(1);
    }
    if find(&name).is_none() {
        eprintln!(
            "juju-emulator: run me through a hook-tool link (relation-get, status-set, ...); \
             the emulator library (juju_emulator::World) creates them"
        );
        return ExitCode::from(2);
    }
    match run(&name, &rest) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("ERROR {message}");
            ExitCode::from(1)
        }
    }
}

fn run(name: &str, args: &[String]) -> Result<u8, String> {
    let context_id = std::env::var("JUJU_CONTEXT_ID")
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or("JUJU_CONTEXT_ID not set")?;
    let socket = std::env::var("JUJU_AGENT_SOCKET_ADDRESS")
        .map_err(|_| "JUJU_AGENT_SOCKET_ADDRESS not set")?;
    let mut stdin = std::io::stdin().lock();
    let request = agent_socket::request(&context_id, name, args, &mut stdin);
    // The agent of a hook answers over its socket; a `juju-exec` context
    // has only the file.
    let (code, stdout, stderr) = match agent_socket::call(Path::new(&socket), &request) {
        Some(answer) => {
            let answer = answer.map_err(|e| format!("cannot reach the unit agent: {e:#}"))?;
            for (path, text) in &answer.writes {
                std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))?;
            }
            (answer.code, answer.stdout, answer.stderr)
        }
        None => {
            let agent_dir = Path::new(&socket)
                .parent()
                .ok_or("bad JUJU_AGENT_SOCKET_ADDRESS")?;
            from_context_file(agent_dir, &request)?
        }
    };
    std::io::stdout()
        .write_all(stdout.as_bytes())
        .map_err(|e| e.to_string())?;
    std::io::stderr()
        .write_all(stderr.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(code as u8)
}

/// The tool run here, on the context file next to the agent's socket.
fn from_context_file(
    agent_dir: &Path,
    request: &agent_socket::ToolRequest,
) -> Result<(i32, String, String), String> {
    let path = HookContext::path_in(agent_dir);
    let mut locked =
        LockedContext::open(&path).map_err(|e| format!("cannot reach the unit agent: {e:#}"))?;
    if locked.context.id != request.context_id {
        return Err("bad request: wrong context ID".into());
    }
    let mut io = LocalIo {
        stdin: &mut request.stdin.as_deref().unwrap_or_default().as_bytes(),
    };
    let output = run_tool(&mut locked.context, &request.tool, &request.args, &mut io);
    if output.changed {
        locked.write_back().map_err(|e| format!("{e:#}"))?;
    }
    Ok((output.code, output.stdout, output.stderr))
}
