//! The hook queue. Operator commands and committed changes queue
//! [`Invocation`]s; [`World::settle`] runs them one at a time (the machine
//! lock of §1.4 for every unit at once), retrying failures up to the
//! configured bound. Each run builds the hook's snapshot, runs the process,
//! and then commits or discards what it did.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::Value;

use super::model::{HookRecord, Invocation};
use super::naming::app_of;
use super::snapshot::HookKind;
use super::World;
use crate::agent_socket::{self, AgentServer};
use crate::context::HookContext;
use crate::runner::{run_process, ProcessResult};

impl World {
    /// Queues `inv` unless the same `-changed` hook is already waiting
    /// (Juju coalesces them).
    pub fn enqueue(&mut self, inv: Invocation) {
        if inv.hook.ends_with("-relation-changed") && self.queue.contains(&inv) {
            return;
        }
        self.queue.push_back(inv);
    }

    pub(super) fn enqueue_all(&mut self, app: &str, hook: &str) {
        let units: Vec<String> = self.apps[app].units.keys().cloned().collect();
        for unit in units {
            self.enqueue_hook(&unit, hook);
        }
    }

    pub(super) fn enqueue_hook(&mut self, unit: &str, hook: &str) {
        self.enqueue(Invocation {
            unit: unit.to_string(),
            hook: hook.to_string(),
            ..Default::default()
        });
    }

    pub(super) fn enqueue_relation(
        &mut self,
        unit: &str,
        id: u64,
        kind: &str,
        remote: Option<&str>,
    ) {
        let endpoint = self.relations[&id]
            .side_of(app_of(unit))
            .map(|s| s.endpoint.clone())
            .unwrap_or_default();
        self.enqueue(Invocation {
            unit: unit.to_string(),
            hook: format!("{endpoint}-relation-{kind}"),
            relation: Some(id),
            remote_unit: remote.map(str::to_string),
            ..Default::default()
        });
    }

    /// Runs every queued hook, one at a time, and the `juju-exec` requests
    /// that arrived meanwhile. Hooks of units whose machine is down or
    /// partitioned stay queued. A failed hook is retried up to
    /// [`World::set_hook_retries`] times; then `settle` stops with an error
    /// and the unit stays in error with its hook at the head of the queue.
    pub fn settle(&mut self) -> Result<()> {
        let mut budget = 100_000;
        loop {
            budget -= 1;
            if budget == 0 {
                bail!("hooks did not settle: the charms keep changing relation data");
            }
            self.refresh_machines()?;
            let Some(inv) = self.next_runnable() else {
                if self.serve_exec_requests()? > 0 {
                    continue;
                }
                return Ok(());
            };
            let mut attempts = 0;
            loop {
                let record = self.run_invocation(&inv, None)?;
                if record.succeeded() || !self.reachable(&inv.unit) {
                    // Done, or interrupted by its machine's crash (queued
                    // again for after the reboot).
                    break;
                }
                attempts += 1;
                if attempts > self.hook_retries {
                    self.queue.push_front(inv.clone());
                    let logs: Vec<String> = self
                        .logs
                        .iter()
                        .filter(|l| l.unit == inv.unit && l.hook == inv.hook)
                        .rev()
                        .take(20)
                        .map(|l| format!("{} {}", l.level, l.message))
                        .collect();
                    bail!(
                        "hook failed: {:?} on {} (exit {:?}, signal {:?})\noutput:\n{}\nlast juju-log records:\n{}",
                        inv.hook,
                        inv.unit,
                        record.code,
                        record.signal,
                        record.output(),
                        logs.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
    }

    /// Takes the first queued hook whose unit's agent can run it, dropping
    /// hooks of units that are gone, and secret hooks of secrets removed
    /// since they were queued (Juju's uniter runs them only for secrets
    /// that still exist).
    fn next_runnable(&mut self) -> Option<Invocation> {
        self.queue.retain(|inv| {
            let app = super::naming::app_of(&inv.unit);
            let unit_exists = self
                .apps
                .get(app)
                .is_some_and(|a| a.units.contains_key(&inv.unit));
            let secret_exists = inv
                .secret
                .as_ref()
                .is_none_or(|id| self.secrets.contains_key(id));
            unit_exists && secret_exists
        });
        let index = self
            .queue
            .iter()
            .position(|inv| self.reachable(&inv.unit))?;
        self.queue.remove(index)
    }

    /// Runs one hook now, outside the queue (e.g. `update-status`), and queues what it causes.
    pub fn run_hook(&mut self, unit: &str, hook: &str) -> Result<ProcessResult> {
        self.run_again(&Invocation {
            unit: unit.to_string(),
            hook: hook.to_string(),
            ..Default::default()
        })
    }

    /// Runs `inv` again now, outside the queue, as Juju does when it retries a
    /// hook (a test that repeats a hook the trace shows already ran).
    pub fn run_again(&mut self, inv: &Invocation) -> Result<ProcessResult> {
        self.run_invocation(inv, None)
    }

    /// Runs `inv` and kills it after `after` (SIGKILL), as a dying agent would.
    pub fn run_hook_killed_after(
        &mut self,
        inv: Invocation,
        after: Duration,
    ) -> Result<ProcessResult> {
        self.run_invocation(&inv, Some(after))
    }

    pub(super) fn run_invocation(
        &mut self,
        inv: &Invocation,
        kill_after: Option<Duration>,
    ) -> Result<ProcessResult> {
        // Membership changes take effect before the hook runs (§4.4).
        if let Some(id) = inv.relation {
            let remote = inv.remote_unit.clone();
            let rel = self.relations.get_mut(&id).expect("relation");
            let seen = rel.members.entry(inv.unit.clone()).or_default();
            if inv.hook.ends_with("-relation-joined") {
                seen.extend(remote);
            } else if inv.hook.ends_with("-relation-departed") {
                if let Some(r) = &remote {
                    seen.remove(r);
                }
            } else if inv.hook.ends_with("-relation-broken") {
                seen.clear();
            }
        }
        let (_, result) = self.execute(inv, None, kill_after)?;
        Ok(result)
    }

    /// Builds the context, runs the process, then commits or discards.
    pub(super) fn execute(
        &mut self,
        inv: &Invocation,
        action_params: Option<serde_json::Map<String, Value>>,
        kill_after: Option<Duration>,
    ) -> Result<(HookContext, ProcessResult)> {
        let is_action = action_params.is_some();
        let unit = self.unit(&inv.unit)?.clone();
        let site = self.site_of(&unit)?;
        let context = self.build_context(inv, action_params)?;
        let context_path = HookContext::path_in(&unit.agent_dir);
        let kind = if is_action {
            HookKind::Action
        } else {
            HookKind::Hook
        };
        let env = self.hook_env(&unit, inv, &context, kind);
        // The agent answers the hook's tools from memory; where its socket
        // cannot be made, the tools share the context file.
        let socket = unit.agent_dir.join(agent_socket::SOCKET);
        let (agent, context) = match AgentServer::start(&socket, context) {
            Ok(agent) => (Some(agent), None),
            Err(context) => {
                context.save(&context_path)?;
                (None, Some(context))
            }
        };
        let result = run_process(
            &unit.agent_dir.join("charm"),
            &unit.hook_paths.agent_dir.join("charm"),
            &site,
            &env,
            kill_after,
        )?;
        let crashed = match self.machines.get_mut(&unit.machine) {
            Some(machine) => machine.refresh()?,
            None => false,
        };
        let after = match agent {
            Some(agent) => agent.finish(),
            // A tool killed by a crash may have left the file half written.
            None => match (HookContext::load(&context_path), context) {
                (Ok(after), _) => after,
                (Err(_), Some(before)) if crashed => *before,
                (Err(e), _) => return Err(e),
            },
        };
        std::fs::remove_file(&context_path).ok();
        self.apply_immediate(&inv.unit, &inv.hook, &after)?;
        if crashed && !is_action {
            // The machine died under the hook: nothing is committed, the
            // unit is not in error, and the hook runs again after the reboot.
            self.unit_mut(&inv.unit)?.interrupted = true;
            self.agent.forget(&unit.machine);
            self.queue.push_front(inv.clone());
            self.trace.push(HookRecord {
                invocation: inv.clone(),
                result: result.clone(),
            });
            return Ok((after, result));
        }
        let mut result = result;
        // Actions commit like hooks (the uniter flushes their context too):
        // relation data, secrets and ports set in an action reach the
        // controller when it exits 0, `action-fail` or not.
        if result.succeeded() {
            if let Err(refused) = self.commit(inv, &after)? {
                // The controller refused what the hook buffered: Juju fails
                // the hook (and logs why).
                result.code = Some(1);
                result
                    .stderr
                    .push_str(&format!("ERROR committing the hook: {refused}\n"));
            }
        }
        let ok = result.succeeded();
        if !is_action {
            let u = self.unit_mut(&inv.unit)?;
            u.failed_hook = (!ok).then(|| inv.hook.clone());
            if ok && inv.hook == "start" {
                u.started = true;
            }
        }
        self.trace.push(HookRecord {
            invocation: inv.clone(),
            result: result.clone(),
        });
        if ok && !is_action && after.pending.reboot {
            // juju-reboot: the machine reboots once the hook has succeeded.
            let machine = unit.machine.clone();
            if self.machines.contains_key(&machine) {
                self.restart_machine(&machine)?;
            }
        }
        Ok((after, result))
    }
}
