//! Runs one hook process exactly as the Juju 3.6 uniter does (contract §1.2,
//! §2): the charm's `dispatch` (or `hooks/<name>`, or `actions/<name>`) with
//! no arguments, cwd = charm dir, stdin = /dev/null, and *only* the
//! environment Juju builds — no `HOME`, tools directory first on `PATH`.
//! It also measures wall time and peak RSS, for benchmarks.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The agent's own PATH, after the tools directory.
pub const AGENT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin";

/// How one hook process ended.
#[derive(Debug, Clone, Default)]
pub struct ProcessResult {
    /// Exit code, or `None` when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    /// Peak resident set size of the largest process of the hook, in KiB.
    pub max_rss_kib: u64,
    /// The handler was missing: Juju counts the hook as succeeded.
    pub missing_handler: bool,
}

impl ProcessResult {
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    /// The process output, stdout then stderr (for assertion messages).
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Picks what Juju would execute for `dispatch_path` (`hooks/x`, `actions/y`).
pub fn handler_for(charm_dir: &Path, dispatch_path: &str) -> Option<PathBuf> {
    let dispatch = charm_dir.join("dispatch");
    if dispatch.exists() {
        return Some(dispatch);
    }
    let legacy = charm_dir.join(dispatch_path);
    legacy.exists().then_some(legacy)
}

/// Where a hook process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// On the test host itself.
    Host,
    /// Inside an emulated machine, entered through its init's namespaces;
    /// paths (program, working directory) are as the machine sees them.
    Machine { init_pid: i32 },
}

impl Site {
    /// A command that runs `program` at this site with `cwd` as its working
    /// directory. On a machine the process gets its own process group (so a
    /// kill reaches the hook, not only `nsenter`).
    pub fn command(&self, program: &Path, cwd: &Path) -> Command {
        match self {
            Site::Host => {
                let mut cmd = Command::new(program);
                cmd.current_dir(cwd);
                cmd
            }
            Site::Machine { init_pid } => {
                // nsenter opens --wd in the caller's mount namespace, where
                // the machine's paths do not exist: change directory once
                // inside (leaving no PWD behind: Juju sets none), then exec
                // the program with the arguments the caller adds.
                let mut cmd = Command::new("/usr/bin/nsenter");
                cmd.arg("--target")
                    .arg(init_pid.to_string())
                    .args(["--mount", "--net", "--pid", "--uts", "--ipc", "--"])
                    .args([
                        "/bin/sh",
                        "-c",
                        r#"cd "$0" && unset PWD OLDPWD && exec "$@""#,
                    ])
                    .arg(cwd)
                    .arg(program)
                    .current_dir("/")
                    .process_group(0);
                cmd
            }
        }
    }
}

/// Runs the charm's handler for `JUJU_DISPATCH_PATH` with exactly `env`.
/// `charm_dir` is the charm on the test host (to find the handler);
/// `seen_charm_dir` is where the process sees it (different on a machine).
/// With `kill_after`, the hook is sent SIGKILL after that long, like an
/// agent or machine dying mid-hook.
pub fn run_process(
    charm_dir: &Path,
    seen_charm_dir: &Path,
    site: &Site,
    env: &BTreeMap<String, String>,
    kill_after: Option<Duration>,
) -> Result<ProcessResult> {
    let dispatch_path = env.get("JUJU_DISPATCH_PATH").cloned().unwrap_or_default();
    let Some(handler) = handler_for(charm_dir, &dispatch_path) else {
        return Ok(ProcessResult {
            code: Some(0),
            missing_handler: true,
            ..Default::default()
        });
    };
    let mode = std::fs::metadata(&handler)?.permissions().mode();
    if mode & 0o111 == 0 {
        return Ok(ProcessResult {
            code: Some(1),
            stderr: format!("fork/exec {}: permission denied", handler.display()),
            ..Default::default()
        });
    }
    let relative = handler.strip_prefix(charm_dir).unwrap_or(&handler);
    let mut cmd = site.command(&seen_charm_dir.join(relative), seen_charm_dir);
    cmd.env_clear().envs(env);
    run_command(cmd, site, kill_after)
}

/// Runs `cmd` (made by [`Site::command`]) with stdin from /dev/null and
/// stdout and stderr captured; measures wall time and peak RSS.
pub fn run_command(
    mut cmd: Command,
    site: &Site,
    kill_after: Option<Duration>,
) -> Result<ProcessResult> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    // On a machine the hook is nsenter's child: kill the process group.
    let target = match site {
        Site::Host => pid,
        Site::Machine { .. } => -pid,
    };
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let reaped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(delay) = kill_after {
        let reaped = reaped.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            if !reaped.load(std::sync::atomic::Ordering::SeqCst) {
                // SAFETY: kill(2) on our own child (or its group), not reaped yet.
                unsafe {
                    libc::kill(target, libc::SIGKILL);
                }
            }
        });
    }
    let (status, usage) = wait4(pid)?;
    reaped.store(true, std::sync::atomic::Ordering::SeqCst);
    let wall = start.elapsed();
    // The child is reaped; keep std from waiting on it again.
    std::mem::forget(child);
    let exit = std::process::ExitStatus::from_raw(status);
    Ok(ProcessResult {
        code: exit.code(),
        signal: exit.signal(),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        wall,
        max_rss_kib: usage.ru_maxrss as u64,
        missing_handler: false,
    })
}

fn wait4(pid: libc::pid_t) -> Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data, zero is a valid bit pattern.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting on our own child with valid out-pointers.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for the hook process");
        }
    }
}
