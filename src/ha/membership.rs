//! Who is in the cluster, and what to do next about it (pure).
//!
//! The Juju leader manages etcd's membership; each unit starts its own etcd
//! and Patroni when its turn comes. After bootstrap Patroni alone decides who
//! is primary: nothing here depends on which unit is primary.
//!
//! The protocol, over the peer relation:
//! * Each unit publishes its address, that it is ready to join (packages
//!   installed), that it is departing, and that it founded an etcd cluster
//!   (so that a new leader never founds a second one).
//! * The leader publishes [`HaAppState`]: the admitted members (etcd voting
//!   members, allowed to run Patroni), the member being added (`joining`,
//!   an etcd learner), and the cluster's system identifier once Patroni
//!   runs.
//! * The leader adds one unit at a time, as a **learner** (a voting add to
//!   a one-member cluster loses quorum until the new member runs; etcd 3.4
//!   takes one learner at a time): add → the joiner starts etcd with
//!   `existing` → promote (etcd refuses until the learner caught up:
//!   retried) → admitted. It removes a leaving member only when every other
//!   voting member is healthy, so a removal never leaves etcd without a
//!   majority (two members with one down).
//! * A unit starts Patroni only once admitted, after checking its data
//!   disk: empty → Patroni clones; the cluster's own system identifier →
//!   rejoin; anything else → blocked, naming the path (never wiped).
//!
//! [`leader_step`] and [`unit_step`] return one step; the caller applies it,
//! observes again and asks again (a few times per hook), so a hook killed
//! anywhere resumes from what the world says.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::etcd_config::InitialState;
use super::Member;

/// How long the leader waits for a learner's etcd to start before removing
/// it (so that another unit can join meanwhile).
pub const LEARNER_START_TIMEOUT_S: u64 = 600;

/// What the leader publishes in the peer relation's application bag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaAppState {
    /// etcd's voting members, allowed to run Patroni. Empty until bootstrap.
    #[serde(default)]
    pub members: Vec<Member>,
    /// The unit being added as an etcd learner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joining: Option<Joining>,
    /// The cluster's system identifier, once its first Patroni runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
    /// etcd speaks TLS: its founder started it with the internal CA's
    /// certificate (as etcd lists the founder: an `https` peer URL).
    /// Absent in a cluster founded before etcd spoke TLS, which goes on
    /// over HTTP: changing a running cluster's scheme would cut its
    /// members off from each other.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub etcd_tls: bool,
}

impl HaAppState {
    /// Whether this unit's etcd speaks TLS: the cluster's choice once it
    /// has members, else (founding) whether the unit can
    /// (`local_tls`: it has the internal CA's certificate for etcd).
    pub fn etcd_tls_for(&self, local_tls: bool) -> bool {
        if self.members.is_empty() {
            local_tls
        } else {
            self.etcd_tls
        }
    }

    pub fn is_member(&self, unit: &str) -> bool {
        self.members.iter().any(|m| m.unit == unit)
    }

    fn with_members(&self, members: Vec<Member>) -> Self {
        let mut members = members;
        members.sort();
        members.dedup_by(|a, b| a.unit == b.unit);
        Self {
            members,
            ..self.clone()
        }
    }
}

/// A learner being added, and when (the leader's clock, Unix seconds):
/// also the attempt's identity, so a joiner knows whether an etcd data
/// directory it finds is from this attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joining {
    pub member: Member,
    pub since: u64,
}

/// One unit of the peer relation (this one included), from its unit bag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUnit {
    pub unit: String,
    /// Its published address; `None` when missing or not an address.
    pub address: Option<IpAddr>,
    /// Installed and waiting to join.
    pub ready: bool,
    /// Leaving (its bag says so, or this hook is its `-relation-departed`).
    pub departing: bool,
    /// It started an etcd cluster of its own (`new`).
    pub founded: bool,
    /// Its etcd data is gone while it is a member: it asks to be re-added.
    pub wants_readd: bool,
}

impl PeerUnit {
    fn member(&self) -> Option<Member> {
        self.address.map(|a| Member::new(&self.unit, a))
    }
}

/// One etcd member, from `etcdctl member list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    pub id: u64,
    /// Empty until the member first started.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub is_learner: bool,
}

/// What the leader sees of etcd: the members, and which answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdView {
    pub members: Vec<EtcdMember>,
    pub healthy: BTreeSet<u64>,
}

impl EtcdView {
    fn by_peer_url(&self, member: &Member) -> Option<&EtcdMember> {
        self.members.iter().find(|m| member.is_at(&m.peer_urls))
    }

    fn voting(&self) -> impl Iterator<Item = &EtcdMember> {
        self.members.iter().filter(|m| !m.is_learner)
    }

    /// Removing `id` keeps a majority: every other voting member answers,
    /// and at least one stays.
    fn removal_is_safe(&self, id: u64) -> Result<(), String> {
        let others: Vec<&EtcdMember> = self.voting().filter(|m| m.id != id).collect();
        if others.is_empty() {
            return Err("it is the last etcd member".into());
        }
        let down: Vec<String> = others
            .iter()
            .filter(|m| !self.healthy.contains(&m.id))
            .map(|m| display_name(m))
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of the remaining etcd members {} down; removing one now could leave etcd \
                 without a majority",
                down.join(", "),
                if down.len() == 1 { "is" } else { "are" }
            ))
        }
    }
}

fn display_name(m: &EtcdMember) -> String {
    if m.name.is_empty() {
        m.peer_urls
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{:x}", m.id))
    } else {
        m.name.clone()
    }
}

/// Everything the Juju leader decides from.
#[derive(Debug, Clone)]
pub struct LeaderView<'a> {
    pub me: &'a str,
    pub app: &'a HaAppState,
    /// Every unit in the peer relation, this one included.
    pub peers: &'a [PeerUnit],
    /// `None` when no etcd member answered.
    pub etcd: Option<&'a EtcdView>,
    /// The system identifier this unit's Patroni reports as a running primary.
    pub local_primary_sysid: Option<u64>,
    /// Unix seconds.
    pub now: u64,
}

/// The leader's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderStep {
    /// Nothing to do.
    Idle,
    /// Found the cluster on this unit ([`unit_step`] does the work).
    Found,
    /// Write the application bag.
    Publish(HaAppState),
    /// `etcdctl member add <name> --learner --peer-urls=<url>` (retry
    /// "unhealthy cluster" for a few seconds: etcd refuses reconfiguration
    /// for ~5 s after the previous one).
    AddLearner(Member),
    /// `etcdctl member promote <id>` (retry "not in sync" for a few seconds).
    Promote { id: u64, unit: String },
    /// `etcdctl member remove <id>`.
    Remove { id: u64, reason: String },
    /// Nothing can be done now, and why (for the log and status).
    Wait(String),
}

fn peer<'a>(view: &'a LeaderView<'_>, unit: &str) -> Option<&'a PeerUnit> {
    view.peers.iter().find(|p| p.unit == unit)
}

/// Units sorted by number (`app/2` before `app/10`).
fn unit_order(unit: &str) -> (String, u64) {
    match unit.rsplit_once('/') {
        Some((app, n)) => (app.to_string(), n.parse().unwrap_or(u64::MAX)),
        None => (unit.to_string(), u64::MAX),
    }
}

pub fn leader_step(view: &LeaderView<'_>) -> LeaderStep {
    let app = view.app;
    if app.members.is_empty() {
        return founding_step(view);
    }
    let Some(etcd) = view.etcd else {
        return LeaderStep::Wait("no etcd member answers".into());
    };
    let voting: Vec<&EtcdMember> = etcd.voting().collect();
    let is_voting = |m: &Member| etcd.by_peer_url(m).is_some_and(|e| !e.is_learner);

    // The bag follows etcd: members removed (or never promoted) leave it.
    let kept: Vec<Member> = app
        .members
        .iter()
        .filter(|m| is_voting(m))
        .cloned()
        .collect();
    if kept.len() != app.members.len() && !kept.is_empty() {
        return LeaderStep::Publish(app.with_members(kept));
    }

    // Voting members the bag does not know: a promote whose publication was
    // lost (adopt), or a stranger (remove).
    for e in &voting {
        if app.members.iter().any(|m| m.is_at(&e.peer_urls)) {
            continue;
        }
        let live_peer = view
            .peers
            .iter()
            .filter(|p| !p.departing)
            .find_map(|p| p.member().filter(|m| m.is_at(&e.peer_urls)));
        match live_peer {
            Some(member) => {
                let mut members = app.members.clone();
                members.push(member.clone());
                let mut next = app.with_members(members);
                if next
                    .joining
                    .as_ref()
                    .is_some_and(|j| j.member.unit == member.unit)
                {
                    next.joining = None;
                }
                return LeaderStep::Publish(next);
            }
            None => {
                return match etcd.removal_is_safe(e.id) {
                    Ok(()) => LeaderStep::Remove {
                        id: e.id,
                        reason: format!("{} is no unit of this application", display_name(e)),
                    },
                    Err(why) => LeaderStep::Wait(format!(
                        "not removing the unknown etcd member {}: {why}",
                        display_name(e)
                    )),
                };
            }
        }
    }

    // The learner: promote it once started, give up on it after a while.
    if let Some(learner) = etcd.members.iter().find(|m| m.is_learner) {
        let candidate = view
            .peers
            .iter()
            .find(|p| !p.departing && p.member().is_some_and(|m| m.is_at(&learner.peer_urls)));
        let Some(candidate) = candidate else {
            return LeaderStep::Remove {
                id: learner.id,
                reason: format!("the learner {} is no joining unit", display_name(learner)),
            };
        };
        let member = candidate.member().expect("matched by address");
        let recorded = app.joining.as_ref().filter(|j| j.member == member);
        let Some(joining) = recorded else {
            let mut next = app.clone();
            next.joining = Some(Joining {
                member,
                since: view.now,
            });
            return LeaderStep::Publish(next);
        };
        if !learner.name.is_empty() {
            return LeaderStep::Promote {
                id: learner.id,
                unit: candidate.unit.clone(),
            };
        }
        if view.now.saturating_sub(joining.since) > LEARNER_START_TIMEOUT_S {
            return LeaderStep::Remove {
                id: learner.id,
                reason: format!(
                    "{} did not start etcd within {LEARNER_START_TIMEOUT_S} s",
                    candidate.unit
                ),
            };
        }
        return LeaderStep::Wait(format!("waiting for {} to start etcd", candidate.unit));
    }
    if app.joining.is_some() {
        // Its learner is gone (removed, or the add never happened).
        let mut next = app.clone();
        next.joining = None;
        return LeaderStep::Publish(next);
    }

    // Departures, one at a time, only while the rest keep a majority.
    for m in &app.members {
        let p = peer(view, &m.unit);
        let Some(e) = etcd.by_peer_url(m) else {
            continue;
        };
        let healthy = etcd.healthy.contains(&e.id);
        let leaving = match p {
            Some(p) => p.departing || p.wants_readd,
            // Absent from the relation: gone, or not seen yet by this
            // (maybe new) leader. Only a member that stopped answering goes.
            None => !healthy,
        };
        if !leaving {
            continue;
        }
        return match etcd.removal_is_safe(e.id) {
            Ok(()) => LeaderStep::Remove {
                id: e.id,
                reason: format!("{} is leaving", m.unit),
            },
            Err(why) => LeaderStep::Wait(format!("not removing {} from etcd yet: {why}", m.unit)),
        };
    }

    // Additions: the first ready unit that is not in yet.
    let mut waiting: Vec<&PeerUnit> = view
        .peers
        .iter()
        .filter(|p| p.ready && !p.departing && !p.wants_readd && !app.is_member(&p.unit))
        .filter(|p| p.member().is_some_and(|m| etcd.by_peer_url(&m).is_none()))
        .collect();
    waiting.sort_by_key(|p| unit_order(&p.unit));
    if let Some(next) = waiting.first() {
        return LeaderStep::AddLearner(next.member().expect("filtered"));
    }

    if app.system_identifier.is_none() {
        if let Some(sysid) = view.local_primary_sysid {
            let mut next = app.clone();
            next.system_identifier = Some(sysid.to_string());
            return LeaderStep::Publish(next);
        }
    }
    LeaderStep::Idle
}

fn founding_step(view: &LeaderView<'_>) -> LeaderStep {
    let mut founders: Vec<&PeerUnit> = view.peers.iter().filter(|p| p.founded).collect();
    founders.sort_by_key(|p| unit_order(&p.unit));
    let Some(founder) = founders.first() else {
        return LeaderStep::Found;
    };
    // This unit, or an earlier leader's unit, founded etcd: admit it. Its
    // etcd must list it (a founder's etcd has exactly itself).
    let Some(member) = founder.member() else {
        return LeaderStep::Wait(format!(
            "{} founded etcd but publishes no address",
            founder.unit
        ));
    };
    let listed = view
        .etcd
        .and_then(|e| e.by_peer_url(&member))
        .filter(|m| !m.is_learner);
    let Some(listed) = listed else {
        return LeaderStep::Wait(format!("waiting for {}'s etcd to answer", founder.unit));
    };
    let next = HaAppState {
        members: vec![member],
        joining: None,
        system_identifier: None,
        etcd_tls: listed.peer_urls.iter().any(|u| u.starts_with("https://")),
    };
    LeaderStep::Publish(next)
}

/// What is on the unit's data disk, looked at before the charm creates
/// anything there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDisk {
    /// No data directory, or an empty one.
    Empty,
    /// A cluster the charm just made with pg_createcluster for this unit
    /// and Patroni never ran on (a joiner's: Patroni replaces it by a clone).
    Fresh { path: PathBuf },
    /// A cluster with this system identifier.
    Cluster {
        path: PathBuf,
        system_identifier: u64,
    },
    /// Something else (no valid control file, unreadable...).
    Unusable { path: PathBuf, reason: String },
}

/// What this unit's etcd data directory holds, per the charm's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdRecord {
    /// No data directory.
    None,
    /// This unit founded the cluster in it.
    Founded,
    /// Started as the learner of the attempt `since` ([`Joining::since`]).
    Joined { since: u64 },
    /// There, but the charm has no record of it.
    Unknown,
}

/// Everything one unit decides from.
#[derive(Debug, Clone)]
pub struct UnitView<'a> {
    pub me: &'a Member,
    /// This unit is the leader and may found the cluster (no peer founded).
    pub may_found: bool,
    pub app: &'a HaAppState,
    pub etcd_running: bool,
    pub etcd_record: EtcdRecord,
    /// etcd authentication is on (founder only; `None` when unknown).
    pub etcd_auth_enabled: Option<bool>,
    pub patroni_running: bool,
    pub disk: DataDisk,
    pub departing: bool,
    /// Whether etcd still lists this unit (departing units wait for the
    /// leader to remove them before stopping their etcd); `None` = unknown.
    pub listed_in_etcd: Option<bool>,
    /// The unit has etcd's TLS files (its certificate from the internal CA).
    pub etcd_tls_ready: bool,
}

/// How to start etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdStart {
    pub initial_cluster: Vec<Member>,
    pub state: InitialState,
    /// Delete the data directory first: it is from an earlier membership
    /// (etcd refuses to start a re-added member on old data).
    pub wipe_first: bool,
    /// What to record once started.
    pub record: EtcdRecord,
    /// Over TLS ([`HaAppState::etcd_tls_for`]).
    pub tls: bool,
}

/// One unit's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitStep {
    StartEtcd(EtcdStart),
    /// Create the root and `patroni` users (passwords on stdin) and the
    /// role for the DCS namespace, then `auth enable`.
    EnableEtcdAuth,
    /// The founder has no cluster yet: create it (pg_createcluster).
    CreateCluster,
    /// The founder's cluster (new or converted): create the replication and
    /// rewind roles while it runs standalone, stop it cleanly, hand it to
    /// systemd-free Patroni (disable `postgresql@`, `start.conf` manual),
    /// render patroni.yml, start Patroni.
    AdoptIntoPatroni,
    /// A joiner: make the config dir if needed (pg_createcluster), delete the
    /// fresh data and WAL directories this charm made, start Patroni (clones).
    CloneWithPatroni,
    /// A member's own data: start Patroni on it (rewinds if needed).
    StartPatroni,
    /// Leaving: stop Patroni (SIGTERM: a primary hands over first).
    StopPatroni,
    /// Leaving, and out of etcd: stop etcd and delete its data directory.
    LeaveEtcd,
    /// Publish that this unit's etcd data is gone and it needs re-adding.
    RequestReadd,
    /// Cannot go on; the message names what the operator must look at.
    Blocked(String),
    Wait(String),
    /// Everything runs.
    Running,
}

pub fn unit_step(view: &UnitView<'_>) -> UnitStep {
    let app = view.app;
    let me = view.me;
    if view.departing {
        if view.patroni_running {
            return UnitStep::StopPatroni;
        }
        return match view.listed_in_etcd {
            Some(false) => {
                if view.etcd_running || view.etcd_record != EtcdRecord::None {
                    UnitStep::LeaveEtcd
                } else {
                    UnitStep::Running
                }
            }
            _ if !view.etcd_running => UnitStep::Running,
            _ => UnitStep::Wait("waiting for the leader to remove this unit from etcd".into()),
        };
    }

    if app.members.is_empty() {
        if !view.may_found {
            return UnitStep::Wait("waiting for the leader to found the cluster".into());
        }
        return founding_unit_step(view);
    }

    if app.etcd_tls && !view.etcd_tls_ready && !view.etcd_running {
        return UnitStep::Wait(
            "waiting for this unit's certificate from the internal CA (etcd speaks TLS)".into(),
        );
    }
    if !app.is_member(&me.unit) {
        let joining = app.joining.as_ref().filter(|j| j.member.unit == me.unit);
        return match joining {
            Some(_) if view.etcd_running => {
                UnitStep::Wait("waiting for the leader to promote this unit's etcd member".into())
            }
            Some(j) => UnitStep::StartEtcd(EtcdStart {
                initial_cluster: app.members.clone(),
                state: InitialState::Existing,
                wipe_first: view.etcd_record != EtcdRecord::None
                    && view.etcd_record != (EtcdRecord::Joined { since: j.since }),
                record: EtcdRecord::Joined { since: j.since },
                tls: app.etcd_tls,
            }),
            None => UnitStep::Wait(
                "waiting to join the cluster (the leader adds one unit at a time)".into(),
            ),
        };
    }

    // A member.
    if !view.etcd_running {
        if view.etcd_record == EtcdRecord::None {
            return UnitStep::RequestReadd;
        }
        return UnitStep::StartEtcd(EtcdStart {
            initial_cluster: app.members.clone(),
            state: InitialState::Existing,
            wipe_first: false,
            record: view.etcd_record.clone(),
            tls: app.etcd_tls,
        });
    }
    if view.patroni_running {
        return UnitStep::Running;
    }
    let Some(cluster_sysid) = app.system_identifier.as_deref() else {
        if view.etcd_record == EtcdRecord::Founded {
            return founding_unit_step(view);
        }
        return UnitStep::Wait("waiting for the first member's Patroni".into());
    };
    match &view.disk {
        DataDisk::Empty | DataDisk::Fresh { .. } => UnitStep::CloneWithPatroni,
        DataDisk::Cluster {
            system_identifier, ..
        } if system_identifier.to_string() == cluster_sysid => UnitStep::StartPatroni,
        DataDisk::Cluster {
            path,
            system_identifier,
        } => UnitStep::Blocked(format!(
            "{} holds another cluster (system identifier {system_identifier}, the replicated \
             cluster's is {cluster_sysid}); move its data away or give this unit an empty disk",
            path.display()
        )),
        DataDisk::Unusable { path, reason } => UnitStep::Blocked(format!(
            "{} cannot be used for a replica ({reason}); empty it or give this unit another disk",
            path.display()
        )),
    }
}

fn founding_unit_step(view: &UnitView<'_>) -> UnitStep {
    if !view.etcd_running {
        return UnitStep::StartEtcd(EtcdStart {
            initial_cluster: vec![view.me.clone()],
            state: InitialState::New,
            wipe_first: view.etcd_record != EtcdRecord::None
                && view.etcd_record != EtcdRecord::Founded,
            record: EtcdRecord::Founded,
            tls: view.etcd_tls_ready,
        });
    }
    if view.etcd_auth_enabled != Some(true) {
        return UnitStep::EnableEtcdAuth;
    }
    if view.patroni_running {
        return UnitStep::Running;
    }
    match &view.disk {
        DataDisk::Empty => UnitStep::CreateCluster,
        DataDisk::Fresh { .. } | DataDisk::Cluster { .. } => UnitStep::AdoptIntoPatroni,
        DataDisk::Unusable { path, reason } => UnitStep::Blocked(format!(
            "{} cannot hold the cluster ({reason})",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests;
