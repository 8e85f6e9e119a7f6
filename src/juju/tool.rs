//! Running one hook tool and turning its outcome into a typed result.
//!
//! Every typed function in [`crate::juju`] builds an [`Invocation`] and runs
//! it here, so this is the one place that spawns processes, reads their
//! output and decides what an error message may contain.
//!
//! Redaction rule: an invocation remembers which of its values are sensitive
//! (values of `key=value` arguments added with [`Invocation::secret_pair`],
//! values passed in files with [`Invocation::secret_file_pair`] and values
//! sent on stdin). Error messages show those arguments as `key=***`, never
//! show stdin, and have every sensitive value scrubbed out of the tool's
//! stderr before it is stored. Output parse errors keep only the position,
//! never the offending text.
//!
//! Off the command line: a process's arguments are world-readable in
//! `/proc/<pid>/cmdline`, so tools that can take a value from elsewhere get
//! it there: stdin (`relation-set --file -`) or, for `secret-add` and
//! `secret-set`, which read no stdin, a file of root's alone
//! (`key#file=<path>`, as ops passes secret content) in a scratch directory
//! that lives exactly as long as the tool runs.

use std::fmt;
use std::io::{self, Write};
use std::process::{Command, Output, Stdio};

use serde::de::DeserializeOwned;

use crate::fsx::Scratch;

/// A sensitive value shorter than this is not scrubbed from stderr: it cannot
/// be a real credential (passwords are 32 characters) and replacing every
/// occurrence of, say, `1` would make the message unreadable.
const MIN_SCRUBBED_LEN: usize = 4;

/// One hook-tool command line, built up before it is run. Its `Debug`
/// output shows only what an error message may show.
pub(crate) struct Invocation {
    tool: &'static str,
    args: Vec<String>,
    /// The arguments as error messages may show them.
    shown_args: Vec<String>,
    /// Values to scrub from stderr.
    sensitive: Vec<String>,
    stdin: Option<Vec<u8>>,
    /// `(index into args, value)`: `args[index]` is `key#file=`, completed
    /// with the path of a file holding `value` when the tool runs.
    files: Vec<(usize, String)>,
}

impl Invocation {
    pub(crate) fn new(tool: &'static str) -> Self {
        Invocation {
            tool,
            args: Vec::new(),
            shown_args: Vec::new(),
            sensitive: Vec::new(),
            stdin: None,
            files: Vec::new(),
        }
    }

    /// Adds an argument that is safe to show in an error message.
    pub(crate) fn arg(mut self, arg: impl Into<String>) -> Self {
        let arg = arg.into();
        self.shown_args.push(arg.clone());
        self.args.push(arg);
        self
    }

    /// Adds an argument that error messages show as `shown` instead (for
    /// long or noisy text such as a log message).
    pub(crate) fn arg_shown_as(mut self, arg: impl Into<String>, shown: &str) -> Self {
        self.args.push(arg.into());
        self.shown_args.push(shown.to_string());
        self
    }

    /// Adds a `key=value` argument whose value is never shown in errors.
    pub(crate) fn secret_pair(mut self, key: &str, value: &str) -> Self {
        self.args.push(format!("{key}={value}"));
        self.shown_args.push(format!("{key}=***"));
        self.sensitive.push(value.to_string());
        self
    }

    /// Adds a `key#file=<path>` argument: `value` is written to a file of
    /// root's alone just before the tool runs and removed after, so it is
    /// never on a command line; errors show `key=***`.
    pub(crate) fn secret_file_pair(mut self, key: &str, value: &str) -> Self {
        self.files.push((self.args.len(), value.to_string()));
        self.args.push(format!("{key}#file="));
        self.shown_args.push(format!("{key}=***"));
        self.sensitive.push(value.to_string());
        self
    }

    /// Sends `bytes` on stdin. `values` are the sensitive strings inside
    /// them, scrubbed from stderr should the tool echo them.
    pub(crate) fn stdin_secret(mut self, bytes: Vec<u8>, values: Vec<String>) -> Self {
        self.stdin = Some(bytes);
        self.sensitive.extend(values);
        self
    }

    /// The real arguments, for tests that check what goes on the command line.
    #[cfg(test)]
    pub(crate) fn args(&self) -> &[String] {
        &self.args
    }

    /// Runs the tool and returns its stdout.
    pub(crate) fn run(self) -> Result<String, ToolError> {
        let output = match self.spawn_and_wait() {
            Ok(output) => output,
            Err(err) => return Err(self.error(ToolFailure::NotRunnable(err))),
        };
        if !output.status.success() {
            let stderr = self.scrub(String::from_utf8_lossy(&output.stderr).trim());
            let code = output.status.code();
            return Err(self.error(ToolFailure::Exited { code, stderr }));
        }
        String::from_utf8(output.stdout).map_err(|_| {
            self.error(ToolFailure::UnexpectedOutput(
                "stdout is not UTF-8".to_string(),
            ))
        })
    }

    /// Runs the tool and parses its stdout as JSON. Empty output (some tools
    /// print nothing for "no value") is read as `null`.
    pub(crate) fn run_json<T: DeserializeOwned>(self) -> Result<T, ToolError> {
        let tool = self.tool;
        let shown_args = self.shown_args.clone();
        let stdout = self.run()?;
        parse_json(&stdout).map_err(|reason| ToolError {
            tool,
            shown_args,
            failure: ToolFailure::UnexpectedOutput(reason),
        })
    }

    /// Runs the tool and reads its stdout with `parse`, whose error says
    /// what was expected (never quoting the output).
    pub(crate) fn run_parsed<T>(
        self,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<T, ToolError> {
        let tool = self.tool;
        let shown_args = self.shown_args.clone();
        let stdout = self.run()?;
        parse(&stdout).map_err(|reason| ToolError {
            tool,
            shown_args,
            failure: ToolFailure::UnexpectedOutput(reason.to_string()),
        })
    }

    fn spawn_and_wait(&self) -> io::Result<Output> {
        // Kept until the tool has exited: it holds the value files.
        let (_scratch, args) = self.args_with_files()?;
        let mut command = Command::new(self.tool);
        command
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let Some(input) = &self.stdin else {
            return command.stdin(Stdio::null()).output();
        };
        // stdin is written in full before stdout is read. That cannot block:
        // the tools that take stdin print little, and the JSON we send is far
        // below a pipe buffer (64 KiB).
        let mut child = command.stdin(Stdio::piped()).spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            // A tool that exits without reading stdin gives EPIPE here; its
            // exit status and stderr tell the real story, so keep going.
            if let Err(err) = stdin.write_all(input) {
                if err.kind() != io::ErrorKind::BrokenPipe {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(err);
                }
            }
        }
        child.wait_with_output()
    }

    /// The arguments with every `key#file=` completed by the path of a new
    /// file holding its value, in a scratch directory only root can enter.
    fn args_with_files(&self) -> io::Result<(Option<Scratch>, Vec<String>)> {
        if self.files.is_empty() {
            return Ok((None, self.args.clone()));
        }
        let scratch = Scratch::new("tool-values").map_err(io::Error::other)?;
        let mut args = self.args.clone();
        for (n, (index, value)) in self.files.iter().enumerate() {
            let path = scratch
                .write(&format!("value-{n}"), value.as_bytes(), 0o600)
                .map_err(io::Error::other)?;
            args[*index].push_str(&path.display().to_string());
        }
        Ok((Some(scratch), args))
    }

    fn scrub(&self, text: &str) -> String {
        scrub_values(text, &self.sensitive)
    }

    fn error(&self, failure: ToolFailure) -> ToolError {
        ToolError {
            tool: self.tool,
            shown_args: self.shown_args.clone(),
            failure,
        }
    }
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocation")
            .field("tool", &self.tool)
            .field("args", &self.shown_args)
            .field("stdin", &self.stdin.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Parses tool output as JSON; the error text never quotes the output.
pub(crate) fn parse_json<T: DeserializeOwned>(stdout: &str) -> Result<T, String> {
    let text = if stdout.trim().is_empty() {
        "null"
    } else {
        stdout
    };
    serde_json::from_str(text).map_err(|err| {
        format!(
            "expected JSON of another shape ({:?} error at line {} column {})",
            err.classify(),
            err.line(),
            err.column()
        )
    })
}

fn scrub_values(text: &str, sensitive: &[String]) -> String {
    let mut text = text.to_string();
    for value in sensitive {
        if value.len() >= MIN_SCRUBBED_LEN {
            text = text.replace(value.as_str(), "***");
        }
    }
    text
}

/// Why a hook tool call failed.
#[derive(Debug)]
pub enum ToolFailure {
    /// The tool could not be started (not on PATH: not inside a Juju hook,
    /// or a tool this Juju version lacks, such as `leader-get` on Juju 4).
    NotRunnable(io::Error),
    /// The tool ran and exited non-zero (`code` is `None` if killed by a
    /// signal). `stderr` is trimmed and scrubbed of sensitive values.
    Exited { code: Option<i32>, stderr: String },
    /// The tool succeeded but printed something we could not parse.
    UnexpectedOutput(String),
}

/// A failed hook-tool call: which tool, its arguments with sensitive values
/// replaced by `***`, and what went wrong.
#[derive(Debug)]
pub struct ToolError {
    tool: &'static str,
    shown_args: Vec<String>,
    failure: ToolFailure,
}

impl ToolError {
    /// The tool's name, e.g. `relation-get`.
    pub fn tool(&self) -> &'static str {
        self.tool
    }

    pub fn failure(&self) -> &ToolFailure {
        &self.failure
    }

    /// The exit code, if the tool ran and exited normally with a failure.
    pub fn exit_code(&self) -> Option<i32> {
        match &self.failure {
            ToolFailure::Exited { code, .. } => *code,
            _ => None,
        }
    }

    /// The tool's stderr (trimmed and scrubbed), or `""`.
    pub fn stderr(&self) -> &str {
        match &self.failure {
            ToolFailure::Exited { stderr, .. } => stderr,
            _ => "",
        }
    }

    /// A tool that exited 1 with `stderr`, for the fakes of unit tests.
    #[cfg(test)]
    pub fn failed_for_tests(tool: &'static str, stderr: &str) -> Self {
        ToolError {
            tool,
            shown_args: Vec::new(),
            failure: ToolFailure::Exited {
                code: Some(1),
                stderr: stderr.to_string(),
            },
        }
    }

    /// The tool said something was not found (unknown relation, secret…).
    pub fn is_not_found(&self) -> bool {
        self.stderr_mentions(&["not found"])
    }

    /// The tool refused access (e.g. a non-leader reading its own app bag).
    pub fn is_permission_denied(&self) -> bool {
        self.stderr_mentions(&["permission denied", "access denied"])
    }

    /// The tool refused because this unit is not the leader.
    pub fn is_not_leader(&self) -> bool {
        self.stderr_mentions(&["not the leader", "cannot write relation settings"])
    }

    /// The tool is not on PATH: we are outside a hook, or this Juju version
    /// does not provide it.
    pub fn is_tool_missing(&self) -> bool {
        matches!(&self.failure, ToolFailure::NotRunnable(err) if err.kind() == io::ErrorKind::NotFound)
    }

    fn stderr_mentions(&self, phrases: &[&str]) -> bool {
        let stderr = self.stderr().to_lowercase();
        phrases.iter().any(|phrase| stderr.contains(phrase))
    }

    fn command_line(&self) -> String {
        std::iter::once(self.tool)
            .chain(self.shown_args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let command = self.command_line();
        match &self.failure {
            ToolFailure::NotRunnable(err) => write!(
                f,
                "could not run hook tool `{command}`: {err} \
                 (hook tools are only on PATH inside a Juju hook or action)"
            ),
            ToolFailure::Exited {
                code: Some(code),
                stderr,
            } => write!(
                f,
                "hook tool `{command}` failed with exit code {code}: {stderr}"
            ),
            ToolFailure::Exited { code: None, stderr } => {
                write!(f, "hook tool `{command}` was killed by a signal: {stderr}")
            }
            ToolFailure::UnexpectedOutput(reason) => {
                write!(
                    f,
                    "hook tool `{command}` printed unexpected output: {reason}"
                )
            }
        }
    }
}

/// The cause (stderr or the spawn error) is already part of the message, so
/// there is no separate `source()`; `{:#}` chains stay free of repeats.
impl std::error::Error for ToolError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(invocation: &Invocation, code: i32, stderr: &str) -> ToolError {
        let stderr = invocation.scrub(stderr);
        invocation.error(ToolFailure::Exited {
            code: Some(code),
            stderr,
        })
    }

    #[test]
    fn error_shows_keys_but_not_secret_values() {
        let invocation = Invocation::new("leader-set")
            .secret_pair("replication-password", "s3cretPassw0rd")
            .secret_pair("master", "postgresql/0");
        let err = exited(
            &invocation,
            2,
            "ERROR argument \"replication-password=s3cretPassw0rd\" is bad",
        );
        let message = err.to_string();
        let debug = format!("{invocation:?} {err:?}");
        assert!(!debug.contains("s3cretPassw0rd"), "{debug}");
        assert!(!message.contains("s3cretPassw0rd"), "{message}");
        assert!(!message.contains("postgresql/0"), "{message}");
        assert!(message.contains("replication-password=***"), "{message}");
        assert!(message.contains("master=***"), "{message}");
        assert!(message.contains("exit code 2"), "{message}");
        assert_eq!(err.exit_code(), Some(2));
        assert_eq!(err.tool(), "leader-set");
    }

    #[test]
    fn stdin_values_are_scrubbed_from_stderr() {
        let invocation = Invocation::new("relation-set")
            .arg("--file")
            .arg("-")
            .stdin_secret(
                b"{\"password\":\"abcdefgh\"}".to_vec(),
                vec!["abcdefgh".into()],
            );
        let err = exited(&invocation, 1, "ERROR bad value abcdefgh");
        assert_eq!(
            err.to_string(),
            "hook tool `relation-set --file -` failed with exit code 1: ERROR bad value ***"
        );
    }

    #[test]
    fn short_sensitive_values_are_not_scrubbed() {
        assert_eq!(scrub_values("count is 1", &["1".into()]), "count is 1");
    }

    #[test]
    fn classifies_stderr() {
        let invocation = Invocation::new("secret-get").arg("secret:abc");
        assert!(exited(&invocation, 1, "ERROR secret \"abc\" not found").is_not_found());
        let denied = exited(&invocation, 1, "ERROR permission denied");
        assert!(denied.is_permission_denied());
        assert!(!denied.is_not_found());
        let leader = exited(
            &invocation,
            1,
            "ERROR cannot write leadership settings: cannot write settings: not the leader",
        );
        assert!(leader.is_not_leader());
    }

    #[test]
    fn missing_tool_is_reported_as_such() {
        let err = Invocation::new("pg-charm-test-no-such-tool")
            .arg("--format=json")
            .run()
            .unwrap_err();
        assert!(err.is_tool_missing());
        assert_eq!(err.exit_code(), None);
        assert!(err.to_string().contains("only on PATH inside a Juju hook"));
    }

    #[test]
    fn runs_a_real_process_and_captures_stdout_and_stdin() {
        let out = Invocation::new("cat")
            .stdin_secret(b"hello".to_vec(), vec![])
            .run()
            .unwrap();
        assert_eq!(out, "hello");
    }

    #[test]
    fn file_values_reach_the_tool_but_not_its_command_line() {
        // The "tool" prints its arguments, then the file the second names.
        let invocation = Invocation::new("sh")
            .arg("-c")
            .arg("echo \"$*\"; cat \"${2#password#file=}\"")
            .arg("sh")
            .arg("--label")
            .secret_file_pair("password", "s3cret value\nwith a newline");
        assert!(!format!("{invocation:?}").contains("s3cret"));
        let out = invocation.run().unwrap();
        let (args, content) = out.split_once('\n').unwrap();
        assert!(!args.contains("s3cret"), "{args}");
        assert!(
            args.starts_with("--label password#file=/run/juju-pg-charm/"),
            "{args}"
        );
        assert_eq!(content, "s3cret value\nwith a newline", "exact bytes");
        let path = args.split_once('=').unwrap().1;
        assert!(
            !std::path::Path::new(path).exists(),
            "removed after the tool ran"
        );
    }

    #[test]
    fn file_values_are_shown_and_scrubbed_like_pairs() {
        let invocation = Invocation::new("sh")
            .arg("-c")
            .arg("echo \"ERROR bad $(cat \"${1#password#file=}\")\" >&2; exit 1")
            .arg("sh")
            .secret_file_pair("password", "s3cretPassw0rd");
        let err = invocation.run().unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("s3cretPassw0rd"), "{message}");
        assert!(message.contains("password=***"), "{message}");
        assert!(message.ends_with("ERROR bad ***"), "{message}");
    }

    #[test]
    fn nonzero_exit_carries_trimmed_stderr() {
        let err = Invocation::new("sh")
            .arg("-c")
            .arg("echo 'ERROR relation not found' >&2; exit 2")
            .run()
            .unwrap_err();
        assert_eq!(err.exit_code(), Some(2));
        assert_eq!(err.stderr(), "ERROR relation not found");
        assert!(err.is_not_found());
    }

    #[test]
    fn parse_errors_do_not_quote_the_output() {
        let err = parse_json::<u32>("\"topsecret\"").unwrap_err();
        assert!(!err.contains("topsecret"), "{err}");
        assert_eq!(parse_json::<Option<u32>>("\n").unwrap(), None);
    }
}
