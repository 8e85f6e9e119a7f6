//! The HA step of the converge, decided (pure): from what one unit sees
//! ([`Facts`]) to what it does next ([`Plan`]): the actions of one round, the
//! role this unit plays, the topology to publish to clients, and what its
//! status should say.
//!
//! It composes the membership rules ([`super::membership`]: the Juju
//! leader's etcd steps, each unit's etcd/Patroni/disk steps) with what they
//! leave to the caller: the cluster's passwords (one application-owned Juju
//! secret, its URI in the peer relation's application bag), this unit's bag,
//! the `pg_hba.conf` rules for the peers, patroni.yml, the standalone server
//! Patroni takes over or that a joiner's clone replaces, and the cluster-wide
//! settings in the DCS (`PATCH /config`, by the Juju leader).
//!
//! A round's actions are applied in order; the caller then observes again and
//! plans again, until a plan has no actions (a few rounds per hook). Every
//! action is idempotent and every decision is taken from what the world says
//! now, so a hook killed anywhere resumes where it stopped.

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;

use super::dcs::patch_for;
use super::divergence::{self, DivergedFacts, DivergedStep, Noticed, SetAside};
use super::etcd_config::{EtcdConfig, InitialState};
use super::membership::{
    leader_step, unit_step, DataDisk, EtcdRecord, EtcdView, HaAppState, LeaderStep, LeaderView,
    PeerUnit, UnitStep, UnitView,
};
use super::options::HaOptions;
use super::patroni_config::{self, PatroniConfig, PatroniSecrets, REPLICATION_USER, REWIND_USER};
use super::topology::{topology, warnings, ClusterMember, LocalStatus};
use super::version::PatroniVersion;
use super::Member;
use crate::juju::RelationData;
use crate::secret::Secret;

/// Keys of the peer relation's bags.
pub mod keys {
    /// App bag: the [`super::HaAppState`] as JSON.
    pub const CLUSTER: &str = "ha-cluster";
    /// App bag: the URI of the secret holding the cluster's passwords.
    pub const SECRETS: &str = "ha-secrets";
    /// Unit bags.
    pub const ADDRESS: &str = "ha-address";
    pub const READY: &str = "ha-ready";
    pub const DEPARTING: &str = "ha-departing";
    pub const FOUNDED: &str = "ha-founded";
    pub const WANTS_READD: &str = "ha-wants-readd";
}

/// What a unit publishes in its peer bag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitBag {
    pub address: Option<IpAddr>,
    pub ready: bool,
    pub departing: bool,
    pub founded: bool,
    pub wants_readd: bool,
}

impl UnitBag {
    pub fn from_data(data: &RelationData) -> Self {
        let flag = |key: &str| data.get(key).is_some_and(|v| v == "true");
        UnitBag {
            address: data.get(keys::ADDRESS).and_then(|a| a.parse().ok()),
            ready: flag(keys::READY),
            departing: flag(keys::DEPARTING),
            founded: flag(keys::FOUNDED),
            wants_readd: flag(keys::WANTS_READD),
        }
    }

    /// Every key, an unset flag as `""` (which deletes it).
    pub fn to_data(&self) -> RelationData {
        let flag = |on: bool| if on { "true" } else { "" }.to_string();
        RelationData::from([
            (
                keys::ADDRESS.to_string(),
                self.address.map(|a| a.to_string()).unwrap_or_default(),
            ),
            (keys::READY.to_string(), flag(self.ready)),
            (keys::DEPARTING.to_string(), flag(self.departing)),
            (keys::FOUNDED.to_string(), flag(self.founded)),
            (keys::WANTS_READD.to_string(), flag(self.wants_readd)),
        ])
    }

    pub fn peer(&self, unit: &str) -> PeerUnit {
        PeerUnit {
            unit: unit.to_string(),
            address: self.address,
            ready: self.ready,
            departing: self.departing,
            founded: self.founded,
            wants_readd: self.wants_readd,
        }
    }
}

/// The application bag's HA part: the cluster state and the secret's URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppBag {
    pub cluster: HaAppState,
    pub secrets_uri: Option<String>,
    /// Set when the bag held a cluster state that does not parse.
    pub unreadable: Option<String>,
}

impl AppBag {
    pub fn from_data(data: &RelationData) -> Self {
        let mut bag = AppBag {
            secrets_uri: data.get(keys::SECRETS).filter(|u| !u.is_empty()).cloned(),
            ..Default::default()
        };
        if let Some(raw) = data.get(keys::CLUSTER).filter(|r| !r.is_empty()) {
            match serde_json::from_str(raw) {
                Ok(cluster) => bag.cluster = cluster,
                Err(e) => bag.unreadable = Some(format!("{}: {e}", keys::CLUSTER)),
            }
        }
        bag
    }

    pub fn cluster_data(cluster: &HaAppState) -> RelationData {
        RelationData::from([(
            keys::CLUSTER.to_string(),
            serde_json::to_string(cluster).expect("JSON"),
        )])
    }
}

/// The cluster's passwords, all in one application-owned secret.
#[derive(Debug, Clone)]
pub struct HaSecrets {
    pub patroni: PatroniSecrets,
    /// etcd's `root` (membership changes, authentication setup).
    pub etcd_root: crate::secret::Password,
}

/// The secret's content keys.
pub const SECRET_KEYS: [&str; 5] = [
    "replication",
    "rewind",
    "rest-api",
    "etcd-patroni",
    "etcd-root",
];

impl HaSecrets {
    pub fn to_content(&self) -> crate::juju::SecretContent {
        let s = &self.patroni;
        [
            &s.replication,
            &s.rewind,
            &s.rest_api,
            &s.etcd,
            &self.etcd_root,
        ]
        .into_iter()
        .zip(SECRET_KEYS)
        .map(|(p, k)| (k.to_string(), Secret::new(p.expose().clone())))
        .collect()
    }

    /// `None` when a key is missing or empty.
    pub fn from_content(content: &crate::juju::SecretContent) -> Option<Self> {
        let get = |k: &str| {
            content
                .get(k)
                .filter(|v| !v.expose().is_empty())
                .map(|v| crate::secret::Password::new(v.expose().clone()))
        };
        Some(HaSecrets {
            patroni: PatroniSecrets {
                replication: get("replication")?,
                rewind: get("rewind")?,
                rest_api: get("rest-api")?,
                etcd: get("etcd-patroni")?,
            },
            etcd_root: get("etcd-root")?,
        })
    }
}

/// Whether this unit can read the cluster's passwords.
#[derive(Debug, Clone)]
pub enum SecretsFact {
    /// No URI in the application bag yet.
    Missing,
    /// The URI is there but the secret cannot be read (or lacks keys).
    Unreadable(String),
    Present(HaSecrets),
}

/// What this unit sees of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFacts {
    pub etcd_running: bool,
    pub etcd_record: EtcdRecord,
    /// Founder only: whether etcd's authentication is on.
    pub etcd_auth_enabled: Option<bool>,
    pub patroni_running: bool,
    /// `GET /patroni`, when it answers.
    pub patroni: Option<LocalStatus>,
    pub disk: DataDisk,
    /// The server runs outside Patroni (pg_ctlcluster/systemd).
    pub standalone_running: bool,
    /// Whether the data directory holds anything but what the charm and
    /// `pg_createcluster` put there; `None` when unknown (server down).
    pub user_data: Option<bool>,
    /// The replication and rewind roles have the secret's passwords.
    pub roles_ready: bool,
    /// Departing units: whether etcd still lists this unit.
    pub listed_in_etcd: Option<bool>,
    /// patroni.yml as it is on disk.
    pub patroni_config: Option<Secret<String>>,
    /// The charm's HA block in `pg_hba.conf` as it is on disk.
    pub hba_block: Option<String>,
    /// A standby Patroni runs that forked off the primary's history and
    /// does not stream ([`divergence`]).
    pub diverged: Option<DivergedFacts>,
    /// The last re-clone's record (`ha-set-aside.json`), and whether its
    /// diverged copy is still there.
    pub set_aside: Option<(SetAside, bool)>,
}

/// What the converge supplies: this unit's cluster as Patroni must run it.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// patroni.yml without the parts the plan fills in (`etcd_members`,
    /// `dynamic.replication`, `strict`).
    pub patroni: PatroniConfig,
    pub options: HaOptions,
    pub cluster_token: String,
    pub etcd_data: PathBuf,
    /// etcd's TLS files, once the unit has its certificate from the
    /// internal CA.
    pub etcd_tls: Option<super::etcd_config::EtcdTls>,
    /// The Patroni the unit runs (for reading `/cluster` right).
    pub patroni_version: PatroniVersion,
}

/// Everything one unit decides from.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub me: &'a Member,
    pub leader: bool,
    /// This unit is leaving (its `-relation-departed`, `stop`...).
    pub departing: bool,
    pub app: &'a AppBag,
    pub secrets: &'a SecretsFact,
    /// The other units' bags (this unit's own comes from `published`).
    pub peers: &'a [PeerUnit],
    /// This unit's bag as Juju has it.
    pub published: &'a UnitBag,
    /// etcd as the leader sees it; `None` when no member answered (or
    /// this unit is not the leader).
    pub etcd: Option<&'a EtcdView>,
    pub local: &'a LocalFacts,
    /// `GET /cluster`, when Patroni answers.
    pub cluster: Option<&'a [ClusterMember]>,
    /// `GET /config` (leader, when Patroni answers).
    pub dcs: Option<&'a Value>,
    pub inputs: &'a Inputs,
    /// Unix seconds.
    pub now: u64,
}

/// One thing to do. The apply does them in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Leader: generate the passwords from the OS random source, add the
    /// application-owned secret, publish its URI in the app bag.
    CreateSecrets,
    PublishUnit(UnitBag),
    /// Leader: the app bag's cluster state.
    PublishApp(HaAppState),
    AddLearner(Member),
    Promote {
        id: u64,
        unit: String,
    },
    RemoveMember {
        id: u64,
        reason: String,
    },
    /// Write etcd's environment file, then start etcd (wiping its data
    /// directory first when it is from an earlier membership) and record it.
    StartEtcd {
        env: String,
        wipe_first: bool,
        record: EtcdRecord,
    },
    /// Founder: etcd's root and patroni users, then `auth enable`.
    EnableEtcdAuth,
    /// Start the standalone server (to create the roles, or to look at its
    /// data before a clone replaces it).
    StartStandalone,
    /// Create or update the replication and rewind roles (the standalone
    /// server runs; passwords as SCRAM verifiers).
    EnsureRoles,
    /// Stop the standalone server cleanly and keep it from being started
    /// outside Patroni (`start.conf` manual).
    StopStandalone,
    /// The charm's block of `pg_hba.conf` (replication and rewind from the
    /// peers), then a reload of whatever server runs.
    WriteHba(String),
    WritePatroniConfig(Secret<String>),
    ReloadPatroni,
    /// Delete the data directory (and the WAL directory it links to) that
    /// `pg_createcluster` made and that holds no data, so that Patroni clones.
    ClearForClone {
        data_dir: PathBuf,
    },
    StartPatroni,
    StopPatroni,
    /// Remember when a diverged standby was first seen (its grace).
    NoteDivergence(Noticed),
    /// Rename a diverged data directory (and its WAL directory) aside, the
    /// record written first and marked done last; Patroni, stopped, then
    /// clones into the empty place.
    SetAsideDiverged(SetAside),
    /// Stop etcd and delete its data directory (out of etcd already).
    LeaveEtcd,
    /// Leader: converge the DCS.
    PatchDcs(Value),
}

/// The part this unit plays (what the converge serves clients as).
///
/// Not `crate::replication::Role`: that one carries its peers
/// (`Primary { standbys }`, `Standby { primary }`), while a member that is
/// still cloning or waiting to join has no primary to name; the peers are in
/// [`Plan::published`]. `crate::converge::ha_step::decide` maps this `Role`
/// plus `published` to the converge's `Role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No replicated cluster (yet): the server runs outside Patroni.
    Standalone,
    /// Patroni's leader with its server running: writes go here.
    Primary,
    /// Anything else: a streaming standby, a member starting, cloning,
    /// waiting to join. Never written to.
    Standby,
}

/// What clients should be told (the relations' `master` and `standbys`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Published {
    pub primary: Option<Member>,
    pub standbys: Vec<Member>,
}

/// Why the unit is not simply active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Waiting(String),
    Blocked(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub role: Role,
    /// `None` when Patroni's `/cluster` is not known.
    pub published: Option<Published>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
}

/// The `pg_hba.conf` lines the cluster needs: replication (Patroni, the
/// clone) and rewind (`pg_rewind` connects to `postgres`) from every admitted
/// member, the one joining, and this unit itself (Patroni reads its own
/// timeline over a replication connection to its address). With `tls`
/// (the units verify each other with the internal CA) the lines are
/// `hostssl`: a unit's replication never goes in clear text.
pub fn hba_block(me: &Member, app: &HaAppState, tls: bool) -> String {
    let kind = if tls { "hostssl" } else { "host" };
    let mut addresses: Vec<IpAddr> = app.members.iter().map(|m| m.address).collect();
    addresses.extend(app.joining.iter().map(|j| j.member.address));
    addresses.push(me.address);
    addresses.sort();
    addresses.dedup();
    let mut text = String::new();
    for a in addresses {
        let cidr = match a {
            IpAddr::V4(_) => format!("{a}/32"),
            IpAddr::V6(_) => format!("{a}/128"),
        };
        text.push_str(&format!(
            "{kind} replication {REPLICATION_USER} {cidr} scram-sha-256\n"
        ));
        text.push_str(&format!(
            "{kind} postgres {REWIND_USER} {cidr} scram-sha-256\n"
        ));
    }
    text
}

/// The markers around the HA block in `pg_hba.conf`.
pub const HBA_BEGIN: &str = "# BEGIN replication between the units (HA)";
pub const HBA_END: &str = "# END replication between the units (HA)";

/// The HA block of a `pg_hba.conf`, without its markers.
pub fn hba_block_in(text: &str) -> Option<String> {
    let (_, rest) = text.split_once(&format!("{HBA_BEGIN}\n"))?;
    let (block, _) = rest.split_once(&format!("{HBA_END}\n"))?;
    Some(block.to_string())
}

/// `text` with its HA block replaced by `block`, or inserted before the
/// first `host` rule (the charm's file ends with rules that reject every
/// other address, so the block must come before them).
pub fn with_hba_block(text: &str, block: &str) -> String {
    let wrapped = format!("{HBA_BEGIN}\n{block}{HBA_END}\n");
    if let (Some(start), Some(end)) = (text.find(HBA_BEGIN), text.find(HBA_END)) {
        if start < end {
            let after = end + HBA_END.len() + 1;
            return format!(
                "{}{wrapped}{}",
                &text[..start],
                &text[after.min(text.len())..]
            );
        }
    }
    let mut out = String::new();
    let mut inserted = false;
    for line in text.lines() {
        if !inserted && line.trim_start().starts_with("host") {
            out.push_str(&wrapped);
            inserted = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !inserted {
        out.push_str(&wrapped);
    }
    out
}

/// patroni.yml for this unit as the cluster stands.
pub fn patroni_config(inputs: &Inputs, me: &Member, app: &HaAppState) -> PatroniConfig {
    let mut config = inputs.patroni.clone();
    config.etcd_members = if app.members.is_empty() {
        vec![me.clone()]
    } else {
        app.members.clone()
    };
    config.etcd_tls = app.etcd_tls_for(inputs.etcd_tls.is_some());
    let admitted = app.members.len().max(1);
    config.dynamic.replication = inputs.options.replication_for(admitted);
    config.strict = config.dynamic.replication.synchronous_mode_strict;
    config
}

fn role(facts: &Facts<'_>) -> Role {
    match &facts.local.patroni {
        Some(s) if facts.local.patroni_running && s.is_running_primary() => Role::Primary,
        _ if facts.app.cluster.members.is_empty() && !facts.local.patroni_running => {
            Role::Standalone
        }
        _ => Role::Standby,
    }
}

fn published(facts: &Facts<'_>) -> Option<Published> {
    let members = facts.cluster?;
    let t = topology(members, facts.inputs.patroni_version);
    let known = &facts.app.cluster.members;
    let by_name = |name: &String| known.iter().find(|m| &m.name() == name).cloned();
    Some(Published {
        primary: t.primary.as_ref().and_then(by_name),
        standbys: t.standbys.iter().filter_map(by_name).collect(),
    })
}

/// This unit's bag as it should be, before the unit step's own wishes.
fn desired_bag(facts: &Facts<'_>) -> UnitBag {
    UnitBag {
        address: Some(facts.me.address),
        ready: matches!(facts.secrets, SecretsFact::Present(_)),
        departing: facts.departing,
        founded: facts.local.etcd_record == EtcdRecord::Founded,
        wants_readd: facts.published.wants_readd
            && facts.app.cluster.is_member(&facts.me.unit)
            && facts.local.etcd_record == EtcdRecord::None,
    }
}

/// The disk as the membership rules should see it: a cluster that is not
/// the replicated one but holds nothing (what `pg_createcluster` and the
/// charm made for a new unit) is fresh, and a clone may replace it.
fn disk_for_membership(facts: &Facts<'_>) -> DataDisk {
    let local = facts.local;
    let cluster_sysid = facts.app.cluster.system_identifier.as_deref();
    match (&local.disk, cluster_sysid) {
        (
            DataDisk::Cluster {
                path,
                system_identifier,
            },
            Some(sysid),
        ) if system_identifier.to_string() != sysid && local.user_data == Some(false) => {
            DataDisk::Fresh { path: path.clone() }
        }
        (disk, _) => disk.clone(),
    }
}

/// The disk holds another cluster whose content the charm does not know
/// (its server is down).
fn must_look_inside(facts: &Facts<'_>) -> bool {
    let local = facts.local;
    matches!(local.disk, DataDisk::Cluster { .. })
        && local.user_data.is_none()
        && !local.standalone_running
        && !local.patroni_running
}

pub fn plan(facts: &Facts<'_>) -> Plan {
    let mut plan = Plan {
        actions: Vec::new(),
        role: role(facts),
        published: published(facts),
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    if let Some(why) = &facts.app.unreadable {
        plan.problems.push(Problem::Blocked(format!(
            "the peer relation's application data is not readable ({why}); the leader rewrites it"
        )));
        if !facts.leader {
            return plan;
        }
    }
    let secrets = match facts.secrets {
        SecretsFact::Present(s) => s,
        SecretsFact::Missing if facts.leader => {
            plan.actions.push(Action::CreateSecrets);
            return plan;
        }
        SecretsFact::Missing => {
            plan.problems.push(Problem::Waiting(
                "waiting for the leader to create the cluster's passwords".into(),
            ));
            return plan;
        }
        SecretsFact::Unreadable(why) => {
            plan.problems.push(Problem::Waiting(format!(
                "cannot read the cluster's passwords yet: {why}"
            )));
            return plan;
        }
    };
    let app = &facts.app.cluster;
    let local = facts.local;

    let mut bag = desired_bag(facts);
    let hba = hba_block(facts.me, app, facts.inputs.patroni.peer_tls.is_some());
    if local.hba_block.as_deref() != Some(hba.as_str()) {
        plan.actions.push(Action::WriteHba(hba));
    }

    let mut peers: Vec<PeerUnit> = facts
        .peers
        .iter()
        .filter(|p| p.unit != facts.me.unit)
        .cloned()
        .collect();
    peers.push(bag.peer(&facts.me.unit));

    if facts.leader {
        let local_primary_sysid = local
            .patroni
            .as_ref()
            .filter(|s| local.patroni_running && s.is_running_primary())
            .and_then(|s| s.system_identifier);
        let step = leader_step(&LeaderView {
            me: &facts.me.unit,
            app,
            peers: &peers,
            etcd: facts.etcd,
            local_primary_sysid,
            now: facts.now,
        });
        match step {
            LeaderStep::Idle | LeaderStep::Found => {}
            LeaderStep::Publish(next) => plan.actions.push(Action::PublishApp(next)),
            LeaderStep::AddLearner(m) => plan.actions.push(Action::AddLearner(m)),
            LeaderStep::Promote { id, unit } => plan.actions.push(Action::Promote { id, unit }),
            LeaderStep::Remove { id, reason } => {
                plan.actions.push(Action::RemoveMember { id, reason })
            }
            LeaderStep::Wait(why) => plan.problems.push(Problem::Waiting(why)),
        }
    }

    let may_found = facts.leader && !peers.iter().any(|p| p.founded && p.unit != facts.me.unit);
    let disk = disk_for_membership(facts);
    let step = unit_step(&UnitView {
        me: facts.me,
        may_found,
        app,
        etcd_running: local.etcd_running,
        etcd_record: local.etcd_record.clone(),
        etcd_auth_enabled: local.etcd_auth_enabled,
        patroni_running: local.patroni_running,
        disk: disk.clone(),
        departing: facts.departing,
        listed_in_etcd: local.listed_in_etcd,
        etcd_tls_ready: facts.inputs.etcd_tls.is_some(),
    });
    let config = patroni_config(facts.inputs, facts.me, app);
    let rendered = patroni_config::render(&config, &secrets.patroni);
    let config_current = local.patroni_config.as_ref() == Some(&rendered);
    let write_config = |actions: &mut Vec<Action>| {
        if !config_current {
            actions.push(Action::WritePatroniConfig(rendered.clone()));
        }
    };
    // A set-aside cut short by a killed hook is finished before Patroni
    // runs again (it would clone into a half-moved directory).
    let unfinished = local.set_aside.as_ref().filter(|(r, _)| !r.done);
    if let (
        Some((record, _)),
        UnitStep::Running | UnitStep::StartPatroni | UnitStep::CloneWithPatroni,
    ) = (unfinished, &step)
    {
        let running = local.patroni_running;
        reclone(&mut plan.actions, record.clone(), running, &write_config);
        finish_plan(&mut plan, facts, bag, &config);
        return plan;
    }
    match step {
        UnitStep::StartEtcd(start) => {
            let env = EtcdConfig {
                me: facts.me.clone(),
                initial_cluster: start.initial_cluster,
                initial_state: start.state,
                cluster_token: facts.inputs.cluster_token.clone(),
                data_dir: facts.inputs.etcd_data.clone(),
                tls: facts.inputs.etcd_tls.clone().filter(|_| start.tls),
            }
            .render();
            if start.state == InitialState::New {
                bag.founded = true;
            }
            plan.actions.push(Action::StartEtcd {
                env,
                wipe_first: start.wipe_first,
                record: start.record,
            });
        }
        UnitStep::EnableEtcdAuth => plan.actions.push(Action::EnableEtcdAuth),
        UnitStep::CreateCluster => plan.problems.push(Problem::Waiting(
            "waiting for the converge to create the cluster Patroni takes over".into(),
        )),
        UnitStep::AdoptIntoPatroni => {
            if !local.roles_ready {
                plan.actions.push(if local.standalone_running {
                    Action::EnsureRoles
                } else {
                    Action::StartStandalone
                });
            } else {
                if local.standalone_running {
                    plan.actions.push(Action::StopStandalone);
                }
                write_config(&mut plan.actions);
                plan.actions.push(Action::StartPatroni);
            }
        }
        UnitStep::CloneWithPatroni => {
            if local.standalone_running {
                plan.actions.push(Action::StopStandalone);
            }
            if let DataDisk::Fresh { path } = &disk {
                plan.actions.push(Action::ClearForClone {
                    data_dir: path.clone(),
                });
            }
            write_config(&mut plan.actions);
            plan.actions.push(Action::StartPatroni);
        }
        UnitStep::StartPatroni => {
            if local.standalone_running {
                plan.actions.push(Action::StopStandalone);
            }
            write_config(&mut plan.actions);
            plan.actions.push(Action::StartPatroni);
        }
        UnitStep::StopPatroni => plan.actions.push(Action::StopPatroni),
        UnitStep::LeaveEtcd => plan.actions.push(Action::LeaveEtcd),
        UnitStep::RequestReadd => bag.wants_readd = true,
        // A member's disk holding another cluster is blocked only once the
        // charm looked inside: it may be a fresh one this charm made.
        UnitStep::Blocked(_) if must_look_inside(facts) => {
            plan.actions.push(Action::StartStandalone)
        }
        UnitStep::Blocked(why) => plan.problems.push(Problem::Blocked(why)),
        UnitStep::Wait(why) => plan.problems.push(Problem::Waiting(why)),
        // A departed unit is "running" with nothing left to run.
        UnitStep::Running if !local.patroni_running => {}
        UnitStep::Running if local.diverged.is_some() => {
            let d = local.diverged.as_ref().expect("checked");
            match divergence::step(d, facts.now) {
                DivergedStep::Notice(noticed, why) => {
                    plan.actions.push(Action::NoteDivergence(noticed));
                    plan.problems.push(Problem::Waiting(why));
                }
                DivergedStep::Wait(why) => plan.problems.push(Problem::Waiting(why)),
                DivergedStep::Blocked(why) => plan.problems.push(Problem::Blocked(why)),
                DivergedStep::Reclone => {
                    let record =
                        SetAside::new(&d.data_dir, d.wal_dir.as_deref(), d.divergence, facts.now);
                    reclone(&mut plan.actions, record, true, &write_config);
                }
            }
        }
        UnitStep::Running => {
            if !config_current {
                plan.actions
                    .push(Action::WritePatroniConfig(rendered.clone()));
                plan.actions.push(Action::ReloadPatroni);
            }
            if let (true, Some(current)) = (facts.leader, facts.dcs) {
                if let Some(patch) = patch_for(current, &config.dynamic) {
                    plan.actions.push(Action::PatchDcs(patch));
                }
            }
            // `/patroni` says `running` for any replica; `/cluster` says
            // whether it streams.
            let mine = facts
                .cluster
                .and_then(|c| c.iter().find(|m| m.name == facts.me.name()));
            if let Some(m) = mine {
                if m.role.is_standby() && !m.is_streaming(facts.inputs.patroni_version) {
                    plan.problems.push(Problem::Waiting(format!(
                        "this standby does not stream from the primary yet (Patroni: {})",
                        m.state
                    )));
                }
            }
        }
    }
    finish_plan(&mut plan, facts, bag, &config);
    plan
}

/// A re-clone: Patroni stopped (with its server), the data set aside,
/// patroni.yml written if it must be, Patroni started (it clones).
fn reclone(
    actions: &mut Vec<Action>,
    record: SetAside,
    patroni_running: bool,
    write_config: &dyn Fn(&mut Vec<Action>),
) {
    if patroni_running {
        actions.push(Action::StopPatroni);
    }
    actions.push(Action::SetAsideDiverged(record));
    write_config(actions);
    actions.push(Action::StartPatroni);
}

/// What every plan ends with: this unit's bag first when it changed, and
/// the warnings.
fn finish_plan(plan: &mut Plan, facts: &Facts<'_>, bag: UnitBag, config: &PatroniConfig) {
    if bag != *facts.published {
        plan.actions.insert(0, Action::PublishUnit(bag));
    }
    if let Some(published) = &plan.published {
        let t = super::topology::Topology {
            primary: published.primary.as_ref().map(Member::name),
            standbys: published.standbys.iter().map(Member::name).collect(),
            sync_standbys: facts
                .cluster
                .map(|c| topology(c, facts.inputs.patroni_version).sync_standbys)
                .unwrap_or_default(),
            unhealthy: Vec::new(),
        };
        plan.warnings = warnings(
            facts.app.cluster.members.len(),
            &config.dynamic.replication,
            &t,
        );
    }
    if let Some((record, true)) = &facts.local.set_aside {
        if record.done {
            plan.warnings.push(record.warning());
        }
    }
}

#[cfg(test)]
mod simulation;
#[cfg(test)]
mod tests;
