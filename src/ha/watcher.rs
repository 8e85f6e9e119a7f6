//! The watcher: a small long-running process per unit
//! (`bin/pg-ha-watcher <state dir>`, root) that
//! * polls the local Patroni (`GET /patroni` every second, `GET /cluster`
//!   every other second: GETs need no password);
//! * on the detached path, restarts Patroni or etcd within a second when it
//!   died but should run (a dead Patroni leaves a writable primary behind:
//!   measured two primaries for ~150 s);
//! * when the primary or the set of streaming standbys changes (the same
//!   change seen on two polls in a row), dispatches the charm's
//!   [`super::TOPOLOGY_HOOK`] with `juju-exec -u <unit> 'cd <charm dir> &&
//!   JUJU_DISPATCH_PATH=hooks/ha-topology-changed ./dispatch'`, as
//!   Canonical's cluster_topology_observer does (it polls every 30 s), so the
//!   relations name the new primary; `update-status` is the fallback. One
//!   dispatch at a time; a change during one is dispatched after it.
//!
//! [`Watcher::decide`] is pure; [`run`] is the loop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::patroni_api::PatroniApi;
use super::services::Detached;
use super::topology::{self, LocalRole};
use super::version::PatroniVersion;
use super::{ServiceKind, TOPOLOGY_HOOK};
use crate::state::{ha as ha_files, StateDir};

/// The watcher's configuration, written by the charm in the state
/// directory (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatcherConfig {
    pub unit: String,
    pub charm_dir: PathBuf,
    /// The local REST API, `ip:port`.
    pub api: String,
    /// Over HTTPS, verified with this CA file (the internal CA's).
    #[serde(default)]
    pub api_ca: Option<PathBuf>,
    /// The Patroni release running (streaming states differ).
    pub patroni_version: String,
    /// Services to restart when they die (empty under systemd, which does it).
    pub supervise: Vec<ServiceKind>,
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    1000
}

pub const CONFIG_FILE: &str = ha_files::WATCHER_CONFIG_FILE;

/// What the watcher compares: who is primary, who streams, and this
/// member's own role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub primary: Option<String>,
    pub standbys: Vec<String>,
    pub local_role: Option<LocalRole>,
}

/// One poll's observations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    /// `None` when the API did not answer.
    pub fingerprint: Option<Fingerprint>,
    /// Supervised services that should run and do not.
    pub dead: Vec<ServiceKind>,
    /// A dispatched hook is still running.
    pub dispatching: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Restart(ServiceKind),
    Dispatch,
}

/// The watcher's memory between polls.
#[derive(Debug, Clone, Default)]
pub struct Watcher {
    /// What the last dispatched hook saw (`None`: nothing dispatched yet).
    dispatched: Option<Fingerprint>,
    /// A new fingerprint and how many polls in a row showed it.
    candidate: Option<(Fingerprint, u32)>,
}

/// Polls a change must be seen on before it is dispatched (a failover
/// passes through "no primary" for a few seconds).
pub const STABLE_POLLS: u32 = 2;

impl Watcher {
    pub fn decide(&mut self, observation: &Observation) -> Vec<Action> {
        let mut actions: Vec<Action> = observation
            .dead
            .iter()
            .map(|k| Action::Restart(*k))
            .collect();
        let Some(seen) = &observation.fingerprint else {
            self.candidate = None;
            return actions;
        };
        if self.dispatched.as_ref() == Some(seen) {
            self.candidate = None;
            return actions;
        }
        let count = match &self.candidate {
            Some((fp, n)) if fp == seen => n + 1,
            _ => 1,
        };
        self.candidate = Some((seen.clone(), count));
        if count >= STABLE_POLLS && !observation.dispatching {
            self.dispatched = Some(seen.clone());
            self.candidate = None;
            actions.push(Action::Dispatch);
        }
        actions
    }
}

/// The `juju-exec` command dispatching the topology hook.
pub fn dispatch_command(config: &WatcherConfig) -> Command {
    let mut c = Command::new("juju-exec");
    c.arg("-u").arg(&config.unit).arg(format!(
        "cd {} && JUJU_DISPATCH_PATH=hooks/{TOPOLOGY_HOOK} ./dispatch",
        shell_quote(&config.charm_dir.to_string_lossy())
    ));
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null());
    c
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn observe_fingerprint(
    api: &PatroniApi,
    version: PatroniVersion,
    with_cluster: bool,
    last: &Option<Fingerprint>,
) -> Option<Fingerprint> {
    let local = api.patroni().ok()?;
    let (primary, standbys) = if with_cluster {
        let members = api.cluster().ok()?;
        let t = topology::topology(&members, version);
        (t.primary, t.standbys)
    } else {
        let last = last.as_ref()?;
        (last.primary.clone(), last.standbys.clone())
    };
    Some(Fingerprint {
        primary,
        standbys,
        local_role: Some(local.role),
    })
}

/// The REST API's trust, read again only when its CA file changes (the
/// loop polls every second or so; the file changes with the CA).
#[derive(Default)]
struct KeptTrust {
    read: Option<(PathBuf, Option<std::time::SystemTime>, u64)>,
    trust: Option<crate::ha::http::Trust>,
}

impl KeptTrust {
    fn of(&mut self, ca: Option<&std::path::Path>) -> Option<crate::ha::http::Trust> {
        let Some(ca) = ca else {
            self.read = None;
            self.trust = None;
            return None;
        };
        let stamp = std::fs::metadata(ca).ok();
        let seen = (
            ca.to_path_buf(),
            stamp.as_ref().and_then(|m| m.modified().ok()),
            stamp.as_ref().map_or(0, |m| m.len()),
        );
        if self.read.as_ref() != Some(&seen) {
            self.trust = crate::ha::converge::peer_trust(Some(ca));
            self.read = Some(seen);
        }
        self.trust.clone()
    }
}

/// The loop; returns only on a configuration error.
pub fn run(state_dir: PathBuf) -> Result<()> {
    let state = StateDir::at(&state_dir);
    let services = Detached::new(state.clone());
    let mut watcher = Watcher::default();
    let mut dispatch: Option<Child> = None;
    let mut last: Option<Fingerprint> = None;
    let mut tick: u64 = 0;
    let mut trust = KeptTrust::default();
    loop {
        let config: WatcherConfig = ha_files::watcher_config(&state)
            .with_context(|| format!("no readable {CONFIG_FILE} in {}", state_dir.display()))?;
        let version = PatroniVersion::parse(&config.patroni_version)?;
        let mut api =
            PatroniApi::new(&config.api, None).trusting(trust.of(config.api_ca.as_deref()));
        api.timeout = Duration::from_millis(config.poll_ms.max(500));
        let dead: Vec<ServiceKind> = config
            .supervise
            .iter()
            .copied()
            .filter(|k| {
                services.spec(*k).is_some_and(|s| s.wanted) && services.running(*k).is_none()
            })
            .collect();
        if let Some(child) = &mut dispatch {
            if let Ok(Some(status)) = child.try_wait() {
                log::info!("{TOPOLOGY_HOOK} dispatch finished: {status}");
                dispatch = None;
            }
        }
        let fingerprint = observe_fingerprint(&api, version, tick % 2 == 0, &last);
        if fingerprint.is_some() {
            last = fingerprint.clone();
        }
        let observation = Observation {
            fingerprint,
            dead,
            dispatching: dispatch.is_some(),
        };
        for action in watcher.decide(&observation) {
            match action {
                Action::Restart(kind) => match services.revive(kind) {
                    Ok(Some(p)) => {
                        log::warn!("{} had died; restarted (pid {})", kind.as_str(), p.pid)
                    }
                    Ok(None) => {}
                    Err(e) => log::error!("restarting {}: {e:#}", kind.as_str()),
                },
                Action::Dispatch => {
                    log::info!(
                        "topology changed: {:?}; dispatching {TOPOLOGY_HOOK}",
                        observation.fingerprint
                    );
                    match dispatch_command(&config).spawn() {
                        Ok(child) => dispatch = Some(child),
                        Err(e) => log::error!("juju-exec: {e}"),
                    }
                }
            }
        }
        tick += 1;
        std::thread::sleep(Duration::from_millis(config.poll_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(primary: &str, standbys: &[&str]) -> Option<Fingerprint> {
        Some(Fingerprint {
            primary: (!primary.is_empty()).then(|| primary.to_string()),
            standbys: standbys.iter().map(|s| s.to_string()).collect(),
            local_role: Some(LocalRole::Replica),
        })
    }

    fn obs(fingerprint: Option<Fingerprint>) -> Observation {
        Observation {
            fingerprint,
            ..Default::default()
        }
    }

    #[test]
    fn a_change_is_dispatched_once_it_is_stable() {
        let mut w = Watcher::default();
        let a = fp("pg-0", &["pg-1", "pg-2"]);
        // At start, once: the charm may have missed anything before.
        assert_eq!(w.decide(&obs(a.clone())), []);
        assert_eq!(w.decide(&obs(a.clone())), [Action::Dispatch]);
        for _ in 0..5 {
            assert_eq!(w.decide(&obs(a.clone())), []);
        }
        // A failover: no primary for a while, then pg-1. Transient states
        // seen once are not dispatched.
        assert_eq!(w.decide(&obs(fp("", &["pg-1"]))), []);
        assert_eq!(w.decide(&obs(fp("pg-1", &[]))), []);
        assert_eq!(w.decide(&obs(fp("pg-1", &[]))), [Action::Dispatch]);
        // A standby starts streaming.
        assert_eq!(w.decide(&obs(fp("pg-1", &["pg-2"]))), []);
        assert_eq!(w.decide(&obs(fp("pg-1", &["pg-2"]))), [Action::Dispatch]);
    }

    #[test]
    fn nothing_is_dispatched_blind_or_twice_at_once() {
        let mut w = Watcher::default();
        let a = fp("pg-0", &[]);
        w.decide(&obs(a.clone()));
        w.decide(&obs(a.clone()));
        let b = fp("pg-1", &[]);
        // The API does not answer: no decision, and the count restarts.
        assert_eq!(w.decide(&obs(b.clone())), []);
        assert_eq!(w.decide(&obs(None)), []);
        assert_eq!(w.decide(&obs(b.clone())), []);
        // A hook is still running: wait for it, then dispatch.
        let busy = Observation {
            fingerprint: b.clone(),
            dispatching: true,
            ..Default::default()
        };
        assert_eq!(w.decide(&busy), []);
        assert_eq!(w.decide(&busy), []);
        assert_eq!(w.decide(&obs(b.clone())), [Action::Dispatch]);
        // Back to what was dispatched before b: that is a change too.
        assert_eq!(w.decide(&obs(a.clone())), []);
        assert_eq!(w.decide(&obs(a)), [Action::Dispatch]);
    }

    #[test]
    fn dead_services_are_restarted_at_once_whatever_the_api_says() {
        let mut w = Watcher::default();
        let o = Observation {
            fingerprint: None,
            dead: vec![ServiceKind::Patroni, ServiceKind::Etcd],
            dispatching: true,
        };
        assert_eq!(
            w.decide(&o),
            [
                Action::Restart(ServiceKind::Patroni),
                Action::Restart(ServiceKind::Etcd)
            ]
        );
    }

    #[test]
    fn the_dispatch_runs_the_charms_hook_through_juju_exec() {
        let c = dispatch_command(&WatcherConfig {
            unit: "postgresql/0".into(),
            charm_dir: "/var/lib/juju/agents/unit-postgresql-0/charm".into(),
            api: "198.18.0.10:8008".into(),
            api_ca: None,
            patroni_version: "3.2.2".into(),
            supervise: vec![],
            poll_ms: 1000,
        });
        let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(c.get_program(), "juju-exec");
        assert_eq!(
            args,
            [
                "-u",
                "postgresql/0",
                "cd '/var/lib/juju/agents/unit-postgresql-0/charm' && \
                 JUJU_DISPATCH_PATH=hooks/ha-topology-changed ./dispatch"
            ]
        );
        // No hook context leaks in (juju-exec refuses to run inside one).
        assert!(c.get_envs().all(|(k, _)| k != "JUJU_CONTEXT_ID"));
    }
}
