//! The agent loop: what runs while a test waits.
//!
//! Real unit agents do things on their own: they run `update-status` every
//! `update-status-hook-interval`, and they serve `juju-exec` requests from
//! processes on their machine (a watcher the charm started, say), under the
//! machine lock. The World serves those requests between hooks (it runs one
//! thing at a time, which is the machine lock for every machine at once),
//! in [`World::settle`] and, while a test waits for something, in
//! [`World::run_until`], which also fires `update-status` on the
//! configured interval.
//!
//! Requests arrive on one unix socket per machine (and one for the test
//! host), accepted by a thread each and queued until the World serves them.
//! Requests from a crashed or partitioned machine wait like its hooks do.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

use super::model::Invocation;
use super::snapshot::HookKind;
use super::World;
use crate::context::HookContext;
use crate::exec::{ExecRequest, ExecResponse};
use crate::runner::{run_command, ProcessResult};

/// One `juju-exec` the agent ran.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    /// `None` for `--no-context`.
    pub unit: Option<String>,
    pub commands: String,
    /// Empty for `--no-context` (the client ran the commands itself).
    pub result: ProcessResult,
    /// Whether what the commands' tools buffered was committed.
    pub committed: bool,
}

/// A request and the connection to answer it on.
struct Incoming {
    /// The machine it came from; `None`: the test host.
    machine: Option<String>,
    request: ExecRequest,
    stream: UnixStream,
}

struct Listener {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

pub(super) struct Agent {
    listeners: Vec<Listener>,
    tx: Sender<Incoming>,
    rx: Receiver<Incoming>,
    waiting: VecDeque<Incoming>,
    update_status_every: Option<Duration>,
    next_update_status: Option<Instant>,
    /// Since when each machine has been unreachable (leadership leases).
    pub(super) unreachable_since: std::collections::BTreeMap<String, Instant>,
    pub(super) leadership_lease: Duration,
}

impl Agent {
    pub(super) fn new() -> Self {
        let (tx, rx) = channel();
        Self {
            listeners: Vec::new(),
            tx,
            rx,
            waiting: VecDeque::new(),
            update_status_every: None,
            next_update_status: None,
            unreachable_since: Default::default(),
            leadership_lease: super::machines::LEADERSHIP_LEASE,
        }
    }

    /// Accepts `juju-exec` connections on `path` for `machine`.
    pub(super) fn listen(&mut self, machine: Option<String>, path: &Path) -> Result<()> {
        let _ = std::fs::remove_file(path);
        let listener =
            UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let tx = self.tx.clone();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || accept_loop(listener, machine, tx, stop))
        };
        self.listeners.push(Listener {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Drops the requests of `machine`: its agent died with it (a crash or
    /// a reboot), and with it what it had been asked.
    pub(super) fn forget(&mut self, machine: &str) {
        self.collect(None);
        self.waiting
            .retain(|w| w.machine.as_deref() != Some(machine));
    }

    /// Moves what arrived into the waiting list; with `wait`, blocks up to
    /// that long for the first arrival.
    fn collect(&mut self, wait: Option<Duration>) {
        if let Some(wait) = wait {
            match self.rx.recv_timeout(wait) {
                Ok(incoming) => self.waiting.push_back(incoming),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
            }
        }
        while let Ok(incoming) = self.rx.try_recv() {
            self.waiting.push_back(incoming);
        }
    }
}

fn accept_loop(
    listener: UnixListener,
    machine: Option<String>,
    tx: Sender<Incoming>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut line = String::new();
                let read = stream
                    .try_clone()
                    .and_then(|s| BufReader::new(s).read_line(&mut line));
                let _ = stream.set_read_timeout(None);
                match read
                    .ok()
                    .and_then(|_| serde_json::from_str::<ExecRequest>(&line).ok())
                {
                    Some(request) => {
                        let incoming = Incoming {
                            machine: machine.clone(),
                            request,
                            stream,
                        };
                        if tx.send(incoming).is_err() {
                            return;
                        }
                    }
                    None => answer(
                        stream,
                        &ExecResponse {
                            error: Some("malformed juju-exec request".into()),
                            ..Default::default()
                        },
                    ),
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn answer(mut stream: UnixStream, response: &ExecResponse) {
    if let Ok(mut line) = serde_json::to_string(response) {
        line.push('\n');
        let _ = stream.write_all(line.as_bytes());
    }
}

impl World {
    /// Runs `update-status` on every unit every `every` while a test waits
    /// in [`World::run_until`] (Juju's `update-status-hook-interval`,
    /// 5 minutes by default there). `None` (the default here): never.
    pub fn set_update_status_interval(&mut self, every: Option<Duration>) {
        self.agent.update_status_every = every;
        self.agent.next_update_status = every.map(|e| Instant::now() + e);
    }

    /// How long a leader's machine may be unreachable before another unit
    /// is elected ([`super::machines::LEADERSHIP_LEASE`] by default, as
    /// Juju; shorter only for tests of the emulator itself).
    pub fn set_leadership_lease(&mut self, lease: Duration) {
        self.agent.leadership_lease = lease;
    }

    /// Every `juju-exec` served so far, in order.
    pub fn execs(&self) -> &[ExecRecord] {
        &self.execs
    }

    /// Runs the agents until `done(world)` holds: queued hooks, `juju-exec`
    /// requests as they arrive, and `update-status` on its interval. Fails
    /// when a hook fails (as [`World::settle`] does) or after `timeout`.
    ///
    /// ```no_run
    /// # fn f(world: &mut juju_emulator::World, rel: u64) -> anyhow::Result<()> {
    /// world.run_until(std::time::Duration::from_secs(60), |w| {
    ///     w.bag(rel, "postgresql").is_some_and(|b| b.get("master").is_some_and(|m| m.contains("host=198.18.")))
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn run_until(&mut self, timeout: Duration, done: impl FnMut(&World) -> bool) -> Result<()> {
        if self.agent_loop(Instant::now() + timeout, done)? {
            return Ok(());
        }
        bail!(
            "not done after {timeout:?}; the model now:\n{}",
            self.status_text()
        )
    }

    /// Lets the agents run for `duration` (hooks, `juju-exec`,
    /// `update-status`), then returns; fails only when a hook fails.
    pub fn run_for(&mut self, duration: Duration) -> Result<()> {
        self.agent_loop(Instant::now() + duration, |_| false)
            .map(drop)
    }

    /// Runs hooks and requests until `done` holds (`true`) or `deadline`
    /// passes (`false`), whichever comes first, even while work keeps
    /// arriving.
    fn agent_loop(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&World) -> bool,
    ) -> Result<bool> {
        loop {
            self.expire_leadership();
            self.settle()?;
            self.fire_update_status();
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            if self.has_runnable() {
                continue;
            }
            let mut wait = (deadline - now).min(Duration::from_millis(100));
            if let Some(next) = self.agent.next_update_status {
                wait = wait.min(next.saturating_duration_since(now));
            }
            self.agent.collect(Some(wait));
        }
    }

    fn fire_update_status(&mut self) {
        let (Some(every), Some(next)) = (
            self.agent.update_status_every,
            self.agent.next_update_status,
        ) else {
            return;
        };
        if Instant::now() < next {
            return;
        }
        self.agent.next_update_status = Some(Instant::now() + every);
        let units: Vec<String> = self
            .apps
            .values()
            .flat_map(|a| a.units.values())
            .filter(|u| u.started && !u.departing)
            .map(|u| u.name.clone())
            .collect();
        for unit in units {
            let queued = self
                .queue
                .iter()
                .any(|i| i.unit == unit && i.hook == "update-status");
            if !queued {
                self.enqueue_hook(&unit, "update-status");
            }
        }
    }

    /// Whether a queued hook or a `juju-exec` request can run now.
    pub(super) fn has_runnable(&mut self) -> bool {
        self.agent.collect(None);
        self.queue.iter().any(|i| self.reachable(&i.unit))
            || self
                .agent
                .waiting
                .iter()
                .any(|w| self.machine_reachable(w.machine.as_deref()))
    }

    /// Serves every `juju-exec` request that arrived and can run; returns
    /// how many ran.
    pub(super) fn serve_exec_requests(&mut self) -> Result<usize> {
        self.agent.collect(None);
        let mut served = 0;
        let mut held = VecDeque::new();
        while let Some(incoming) = self.agent.waiting.pop_front() {
            if !self.machine_reachable(incoming.machine.as_deref()) {
                held.push_back(incoming);
                continue;
            }
            served += 1;
            let Incoming {
                machine,
                request,
                stream,
            } = incoming;
            if request.no_context {
                self.hold_machine_lock(stream, &request)?;
                continue;
            }
            let response = match self.run_commands(machine.as_deref(), &request) {
                Ok(response) => response,
                Err(e) => ExecResponse {
                    error: Some(format!("{e:#}")),
                    ..Default::default()
                },
            };
            answer(stream, &response);
        }
        self.agent.waiting = held;
        Ok(served)
    }

    /// `--no-context`: the client runs the commands itself while we hold
    /// the lock, until it hangs up.
    fn hold_machine_lock(&mut self, stream: UnixStream, request: &ExecRequest) -> Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        answer(
            stream,
            &ExecResponse {
                lock_granted: true,
                ..Default::default()
            },
        );
        let mut rest = String::new();
        let _ = reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(600)));
        let _ = reader.read_line(&mut rest);
        self.execs.push(ExecRecord {
            unit: None,
            commands: request.commands.clone(),
            result: ProcessResult::default(),
            committed: false,
        });
        Ok(())
    }

    /// Runs a `juju-exec` request in its unit's hook context (in its
    /// machine), and commits what it did unless it was killed.
    fn run_commands(
        &mut self,
        machine: Option<&str>,
        request: &ExecRequest,
    ) -> Result<ExecResponse> {
        let unit_name = request.unit.clone().unwrap_or_default();
        let here = self
            .unit(&unit_name)
            .ok()
            .filter(|u| match machine {
                Some(m) => u.machine == m,
                None => !self.machines.contains_key(&u.machine),
            })
            .cloned();
        let Some(unit) = here else {
            bail!("unit {unit_name:?} not found on this machine");
        };
        let relation = match &request.relation {
            None => {
                if let Some(remote) = &request.remote_unit {
                    bail!("remote unit: {remote}, provided without a relation");
                }
                None
            }
            Some(raw) => Some(self.exec_relation(&unit.name, raw)?),
        };
        let remote_unit = match relation {
            None => None,
            Some(id) => self.exec_remote_unit(&unit.name, id, request)?,
        };
        let inv = Invocation {
            unit: unit.name.clone(),
            hook: "juju-exec".into(),
            relation,
            remote_unit,
            ..Default::default()
        };
        let mut context = self.build_context(&inv, None)?;
        context.id = format!("{}-run-commands-{}", unit.name, self.next_context);
        context.hook = String::new();
        let context_path = HookContext::path_in(&unit.agent_dir);
        context.save(&context_path)?;
        let env = self.hook_env(&unit, &inv, &context, HookKind::Commands);
        let script = format!("juju-exec-{}.sh", self.next_context);
        std::fs::write(unit.agent_dir.join(&script), &request.commands)?;
        let site = self.site_of(&unit)?;
        let seen_charm = unit.hook_paths.agent_dir.join("charm");
        let mut cmd = site.command(Path::new("/bin/bash"), &seen_charm);
        cmd.arg(unit.hook_paths.agent_dir.join(&script))
            .env_clear()
            .envs(&env);
        let result = run_command(cmd, &site, None);
        let _ = std::fs::remove_file(unit.agent_dir.join(&script));
        let after = HookContext::load(&context_path);
        std::fs::remove_file(&context_path).ok();
        let (result, after) = (result?, after?);
        self.apply_immediate(&unit.name, "juju-exec", &after)?;
        // Juju's RunCommands flushes unless running the commands failed:
        // a non-zero exit code is a result, a signal is not.
        let refused = match result.signal {
            None => self.commit(&inv, &after)?.err(),
            Some(_) => None,
        };
        let committed = result.signal.is_none() && refused.is_none();
        self.execs.push(ExecRecord {
            unit: Some(unit.name.clone()),
            commands: request.commands.clone(),
            result: result.clone(),
            committed,
        });
        if let Some(refused) = refused {
            return Ok(ExecResponse {
                error: Some(format!("committing the commands' changes: {refused}")),
                stdout: result.stdout,
                stderr: result.stderr,
                ..Default::default()
            });
        }
        Ok(match (result.code, result.signal) {
            (Some(code), _) => ExecResponse {
                code,
                stdout: result.stdout,
                stderr: result.stderr,
                ..Default::default()
            },
            (None, signal) => ExecResponse {
                error: Some(format!("signal: {}", signal.unwrap_or_default())),
                stdout: result.stdout,
                stderr: result.stderr,
                ..Default::default()
            },
        })
    }

    /// `-r` of juju-exec: `db:1` or `1`, a relation of the unit's.
    fn exec_relation(&self, unit: &str, raw: &str) -> Result<u64> {
        let tail = match raw.rsplit_once(':') {
            Some((_, id)) => id,
            None => raw,
        };
        let id: u64 = tail.parse().map_err(|_| anyhow!("invalid relation id"))?;
        let app = super::naming::app_of(unit);
        match self.relations.get(&id) {
            Some(rel) if !rel.broken && rel.side_of(app).is_some() => Ok(id),
            _ => bail!("unable to find relation id {raw:?} for unit {unit:?}"),
        }
    }

    /// The remote unit of juju-exec's relation context: given, or the only
    /// one in the relation (as the unit names them).
    fn exec_remote_unit(
        &self,
        unit: &str,
        id: u64,
        request: &ExecRequest,
    ) -> Result<Option<String>> {
        let rel = &self.relations[&id];
        let app = super::naming::app_of(unit);
        if let Some(seen) = &request.remote_unit {
            let real = rel.real_name(app, seen);
            let member = rel.members.get(unit).is_some_and(|m| m.contains(&real));
            if !member && !request.force_remote_unit {
                bail!("no remote unit {seen:?} in relation {id}");
            }
            return Ok(Some(real));
        }
        let members: Vec<&String> = rel
            .members
            .get(unit)
            .map(|m| m.iter().collect())
            .unwrap_or_default();
        match members.as_slice() {
            [] => Ok(None),
            [only] => Ok(Some((*only).clone())),
            many if !request.force_remote_unit => {
                let names: Vec<String> = many.iter().map(|u| rel.view_name(app, u)).collect();
                bail!(
                    "unable to determine remote-unit, please disambiguate: [{}]",
                    names.join(" ")
                )
            }
            _ => Ok(None),
        }
    }
}
