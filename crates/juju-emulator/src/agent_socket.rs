//! The unit agent's socket: hook tools answered by the World from the
//! hook's context held in memory, as Juju's uniter answers them over
//! `JUJU_AGENT_SOCKET_ADDRESS`.
//!
//! Without it every tool process would read and parse the whole context
//! file (every relation's bags, every visible secret: over a megabyte at
//! 500 relations), a cost that grows with the model and that real Juju
//! does not have. The World starts an [`AgentServer`] on `agent.socket`
//! for each hook; the tool binary sends one JSON [`ToolRequest`] line and
//! reads one [`ToolResponse`] line. The client runs where the hook runs
//! (inside an emulated machine, with its own files), so it sends what the
//! tool may read (stdin when an argument is `-`, every file an argument
//! names) and writes the files the tool produced (`-o`).
//!
//! Where no agent listens (a `juju-exec` context), the tool falls back to
//! the context file (`context::LockedContext`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::context::HookContext;
use crate::tools::{run_tool, Output, ToolIo};

/// The socket's file name in the unit's agent directory.
pub const SOCKET: &str = "agent.socket";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolRequest {
    pub context_id: String,
    pub tool: String,
    pub args: Vec<String>,
    /// The client's stdin, read when an argument is `-`.
    pub stdin: Option<String>,
    /// Every file an argument names: its content, or why it could not be read.
    pub files: BTreeMap<String, Result<String, String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolResponse {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Files the tool wrote (`-o`), for the client to write.
    pub writes: Vec<(String, String)>,
}

/// The files a tool's arguments may name: `--file <path>`,
/// `--file=<path>`, `<key>#file=<path>`.
pub fn named_files(args: &[String]) -> Vec<String> {
    let mut files = Vec::new();
    let mut next_is_file = false;
    for arg in args {
        if next_is_file {
            files.push(arg.clone());
            next_is_file = false;
        } else if arg == "--file" {
            next_is_file = true;
        } else if let Some(path) = arg.strip_prefix("--file=") {
            files.push(path.to_string());
        } else if let Some((_, path)) = arg.split_once("#file=") {
            files.push(path.to_string());
        }
    }
    files
}

/// The request for `tool args`, with what it may read from here.
pub fn request(context_id: &str, tool: &str, args: &[String], stdin: &mut dyn Read) -> ToolRequest {
    let named = named_files(args);
    let stdin = named.iter().any(|f| f == "-").then(|| {
        let mut text = String::new();
        let _ = stdin.read_to_string(&mut text);
        text
    });
    let files = named
        .into_iter()
        .filter(|f| f != "-")
        .map(|f| {
            let content = std::fs::read_to_string(&f).map_err(|e| e.to_string());
            (f, content)
        })
        .collect();
    ToolRequest {
        context_id: context_id.to_string(),
        tool: tool.to_string(),
        args: args.to_vec(),
        stdin,
        files,
    }
}

/// Asks the agent at `socket`; `None` when no agent listens there.
pub fn call(socket: &Path, request: &ToolRequest) -> Option<Result<ToolResponse>> {
    let stream = UnixStream::connect(socket).ok()?;
    Some(exchange(stream, request))
}

fn exchange(mut stream: UnixStream, request: &ToolRequest) -> Result<ToolResponse> {
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .context("writing to the unit agent")?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .context("reading the unit agent's answer")?;
    serde_json::from_str(&answer).context("the unit agent's answer is not valid")
}

/// The tool's view of the client's stdin and files.
struct ForwardedIo<'a> {
    request: &'a ToolRequest,
    writes: Vec<(String, String)>,
}

impl ToolIo for ForwardedIo<'_> {
    fn read_stdin(&mut self) -> std::io::Result<String> {
        Ok(self.request.stdin.clone().unwrap_or_default())
    }

    fn read_file(&mut self, path: &str) -> std::io::Result<String> {
        match self.request.files.get(path) {
            Some(Ok(text)) => Ok(text.clone()),
            Some(Err(why)) => Err(std::io::Error::other(why.clone())),
            None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    }

    fn write_file(&mut self, path: &str, text: &str) -> std::io::Result<()> {
        self.writes.push((path.to_string(), text.to_string()));
        Ok(())
    }
}

/// Answers one request from `context`.
pub fn answer(context: &mut HookContext, request: &ToolRequest) -> ToolResponse {
    if request.context_id != context.id {
        return ToolResponse {
            code: 1,
            stderr: "ERROR bad request: wrong context ID\n".into(),
            ..Default::default()
        };
    }
    let mut io = ForwardedIo {
        request,
        writes: Vec::new(),
    };
    let Output {
        code,
        stdout,
        stderr,
        ..
    } = run_tool(context, &request.tool, &request.args, &mut io);
    ToolResponse {
        code,
        stdout,
        stderr,
        writes: io.writes,
    }
}

/// The agent answering one hook's tools, from a thread of the World.
pub struct AgentServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<HookContext>>,
}

impl AgentServer {
    /// Listens on `path` (a stale socket there is replaced) with `context`;
    /// when it cannot, hands `context` back.
    pub fn start(path: &Path, context: HookContext) -> Result<AgentServer, Box<HookContext>> {
        let _ = std::fs::remove_file(path);
        let Ok(listener) = UnixListener::bind(path) else {
            return Err(Box::new(context));
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut context = context;
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(&mut context, stream);
                }
            }
            context
        });
        Ok(AgentServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    /// Stops answering; the context as the hook's tools left it.
    pub fn finish(mut self) -> HookContext {
        self.shut_down().expect("the agent thread ran")
    }

    fn shut_down(&mut self) -> Option<HookContext> {
        let thread = self.thread.take()?;
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept; the thread sees `stop` and returns.
        let _ = UnixStream::connect(&self.path);
        let context = thread.join().ok();
        let _ = std::fs::remove_file(&self.path);
        context
    }
}

impl Drop for AgentServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// One connection: one request line, one answer line. A client that says
/// nothing for 30 s is dropped.
fn serve(context: &mut HookContext, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut line = String::new();
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    if BufReader::new(reader).read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let response = match serde_json::from_str::<ToolRequest>(&line) {
        Ok(request) => answer(context, &request),
        Err(e) => ToolResponse {
            code: 1,
            stderr: format!("ERROR bad request: {e}\n"),
            ..Default::default()
        },
    };
    let mut stream = stream;
    if let Ok(mut bytes) = serde_json::to_vec(&response) {
        bytes.push(b'\n');
        let _ = stream.write_all(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_arguments_name() {
        let args: Vec<String> = [
            "--file",
            "-",
            "--file=/tmp/a.yaml",
            "password#file=rel/p.txt",
            "user=x",
            "-r",
            "db:1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(named_files(&args), ["-", "/tmp/a.yaml", "rel/p.txt"]);
        assert!(named_files(&["a=b".to_string()]).is_empty());
    }

    #[test]
    fn stdin_is_read_only_when_an_argument_is_a_dash() {
        let mut stdin: &[u8] = b"key: value\n";
        let r = request("c", "relation-get", &["-".to_string()], &mut stdin);
        assert_eq!(r.stdin, None);
        let mut stdin: &[u8] = b"key: value\n";
        let args = ["--file".to_string(), "-".to_string()];
        let r = request("c", "relation-set", &args, &mut stdin);
        assert_eq!(r.stdin.as_deref(), Some("key: value\n"));
        assert!(r.files.is_empty());
        let args = ["--file=/nonexistent/settings".to_string()];
        let r = request("c", "relation-set", &args, &mut stdin);
        let why = r.files["/nonexistent/settings"].as_ref().unwrap_err();
        assert!(why.contains("No such file"), "{why}");
    }

    #[test]
    fn a_server_answers_from_its_context_and_hands_it_back() {
        let dir = std::env::temp_dir().join(format!("agent-socket-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join(SOCKET);
        let context = HookContext {
            id: "ctx-1".into(),
            unit: "app/0".into(),
            ..Default::default()
        };
        let server = AgentServer::start(&socket, context).unwrap();
        let ask = |id: &str, tool: &str, args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            call(&socket, &request(id, tool, &args, &mut std::io::empty()))
                .expect("an agent listens")
                .unwrap()
        };
        let set = ask("ctx-1", "status-set", &["active", "serving"]);
        assert_eq!(set.code, 0, "{set:?}");
        let got = ask("ctx-1", "status-get", &["--format=json"]);
        assert!(got.stdout.contains("serving"), "{got:?}");
        let wrong = ask("ctx-2", "status-get", &[]);
        assert_eq!(wrong.code, 1);
        assert!(wrong.stderr.contains("wrong context ID"));
        let to_file = ask("ctx-1", "status-get", &["--format=json", "-o", "out.json"]);
        assert_eq!(to_file.stdout, "");
        assert_eq!(to_file.writes.len(), 1);
        assert_eq!(to_file.writes[0].0, "out.json");
        let after = server.finish();
        assert_eq!(after.status.message, "serving");
        assert!(!socket.exists(), "the socket is removed");
        assert!(call(&socket, &ToolRequest::default()).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
