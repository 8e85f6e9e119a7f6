//! The HA step of a hook (shell): observe this unit and its peers, ask
//! [`plan`](super::plan::plan) what to do, do it, and again, until a plan has
//! nothing left to do this hook.
//!
//! `crate::converge::ha_step` calls [`converge`] with an [`HaUnit`] (who and where this
//! unit is, what Patroni must run) after it made or found the unit's cluster;
//! the result's [`Plan`] says the unit's [`Role`](super::plan::Role) (serve
//! clients as primary, or not at all), the primary and standbys to publish,
//! and the problems for the status.
//!
//! Everything Juju is told during a hook is only committed when it succeeds,
//! and a unit reads its own writes from Juju only in the next hook, so the
//! [`Session`] remembers what this hook published and the passwords it
//! created.
//!
//! Only the detached service path runs here (no systemd as PID 1 on the test
//! machines); the systemd units are rendered by [`super::units`] and
//! table-tested, not yet used on machines where systemd is PID 1.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::divergence::{
    divergence, newest_segment_timeline, DivergedFacts, SetAside, StandbyPosition,
};
use super::etcdctl::{Etcdctl, ROOT_USER};
use super::http::{BasicAuth, Trust};
use super::membership::{DataDisk, EtcdRecord, EtcdView, HaAppState, PeerUnit};
use super::patroni_api::PatroniApi;
use super::patroni_config::{ETCD_PATRONI_USER, REPLICATION_USER, REST_API_USER, REWIND_USER};
use super::plan::{
    self, hba_block_in, with_hba_block, Action, AppBag, Facts, HaSecrets, Inputs, LocalFacts, Plan,
    SecretsFact, UnitBag,
};
use super::services::{PostgresStop, ServiceSpec, Services};
use super::{host_port, HaPaths, Member, Scheme, ServiceKind, REST_API_PORT};
use crate::cluster::{self, control, Cluster};
use crate::fsx::{self, Owner};
use crate::juju::{self, RelationData, RelationId, SecretOptions, SecretUri};
use crate::secret::{Password, Secret};
use crate::state::{ha as ha_files, StateDir};
use crate::storage;

/// The peer relation's endpoint.
pub const PEER_ENDPOINT: &str = "replication";
/// The label of the application-owned secret with the cluster's passwords.
pub const SECRET_LABEL: &str = "ha-cluster";
/// State files (in the unit's state directory).
/// At most this many rounds per hook: each round's actions are few, and a
/// plan that keeps finding work after that waits for the next hook.
const MAX_ROUNDS: usize = 16;

/// Who and where this unit is, and what Patroni must run.
#[derive(Debug, Clone)]
pub struct HaUnit {
    /// `postgresql/0`.
    pub unit: String,
    pub address: IpAddr,
    pub leader: bool,
    pub departing: bool,
    pub cluster: Cluster,
    pub data_dir: PathBuf,
    pub paths: HaPaths,
    pub state: StateDir,
    pub inputs: Inputs,
    /// The Patroni executable (the archive's or the bundled one).
    pub patroni_program: PathBuf,
}

impl HaUnit {
    pub fn member(&self) -> Member {
        Member::new(&self.unit, self.address)
    }

    /// The internal CA's file, when the unit has TLS between the units.
    pub fn peer_ca(&self) -> Option<&Path> {
        self.inputs
            .patroni
            .peer_tls
            .as_ref()
            .map(|t| t.ca.as_path())
    }

    /// How this unit talks to etcd in the cluster `app`: TLS when the
    /// cluster's etcd speaks it ([`HaAppState::etcd_tls_for`]).
    pub fn etcd_scheme(&self, app: &HaAppState) -> Scheme {
        Scheme::of(app.etcd_tls_for(self.inputs.etcd_tls.is_some()))
    }

    /// etcdctl against `endpoints`, verifying etcd with the internal CA.
    pub fn etcdctl(&self, endpoints: Vec<String>, user: Option<(String, Password)>) -> Etcdctl {
        Etcdctl::new(endpoints, user)
            .trusting(self.inputs.etcd_tls.as_ref().map(|t| t.ca.as_path()))
    }

    /// etcdctl against this unit's own etcd, anonymously.
    fn own_etcdctl(&self, app: &HaAppState) -> Etcdctl {
        self.etcdctl(
            vec![self.member().etcd_client_url(self.etcd_scheme(app))],
            None,
        )
    }

    /// The application part of the unit's name.
    pub fn app(&self) -> &str {
        self.unit.split('/').next().unwrap_or(&self.unit)
    }
}

/// What this hook did that Juju will only show the next one.
#[derive(Debug, Default)]
pub struct Session {
    unit_bag: Option<RelationData>,
    app_bag: RelationData,
    secrets: Option<HaSecrets>,
    /// Every round's actions, for the log and the tests.
    pub done: Vec<String>,
}

/// Observes, plans and applies until there is nothing left to do (or
/// [`MAX_ROUNDS`]). Returns the last plan.
pub fn converge(unit: &HaUnit, session: &mut Session) -> Result<Plan> {
    let relation = peer_relation()?;
    let mut last = None;
    for _ in 0..MAX_ROUNDS {
        let observed = observe(unit, &relation, session)?;
        let plan = observed.plan(unit);
        if plan.actions.is_empty() {
            return Ok(plan);
        }
        for action in &plan.actions {
            let shown = describe(action);
            log::info!("HA: {shown}");
            apply(unit, &relation, session, &observed, action)
                .with_context(|| format!("HA step \"{shown}\""))?;
            session.done.push(shown);
        }
        last = Some(plan);
    }
    Ok(last.expect("at least one round"))
}

/// The cluster's passwords as the application secret holds them (any unit
/// may read it once the leader granted it over the peer relation).
pub fn read_secrets(app: &str) -> Result<HaSecrets> {
    let relation = peer_relation()?;
    let data = juju::relation_get_app(&relation, app)
        .context("reading the peer relation's application data")?;
    let uri = AppBag::from_data(&data)
        .secrets_uri
        .context("the cluster has no passwords yet")?;
    let uri = SecretUri::parse(&uri).with_context(|| format!("{uri} is not a secret URI"))?;
    let content = juju::secret_get(&uri).context("reading the cluster's secret")?;
    HaSecrets::from_content(&content).context("the cluster's secret lacks some passwords")
}

/// This unit's Patroni REST API, authenticated with `secrets`, over HTTPS
/// when `ca` (the internal CA's file) is given.
pub fn rest_api(address: IpAddr, secrets: &HaSecrets, ca: Option<&Path>) -> PatroniApi {
    PatroniApi::new(
        &host_port(address, REST_API_PORT),
        Some(BasicAuth {
            user: REST_API_USER.into(),
            password: secrets.patroni.rest_api.clone(),
        }),
    )
    .trusting(peer_trust(ca))
}

/// The trust for the units' REST APIs: the CA file the TLS step keeps
/// ([`crate::tls::files::PEER_CA`]); `None` (HTTP) without one, or when it
/// cannot be read (said in the log; a Patroni on HTTPS then does not
/// answer, and the next hook tries again).
pub fn peer_trust(ca: Option<&Path>) -> Option<Trust> {
    let ca = ca?;
    match Trust::from_file(ca) {
        Ok(trust) => Some(trust),
        Err(e) => {
            log::warn!("the units' CA is unusable ({e:#}); Patroni's REST API over HTTP");
            None
        }
    }
}

fn peer_relation() -> Result<RelationId> {
    juju::relation_ids(PEER_ENDPOINT)
        .context("listing the peer relation")?
        .into_iter()
        .next()
        .with_context(|| format!("no `{PEER_ENDPOINT}` peer relation yet; Juju creates it"))
}

/// One action, for the log (never with a password).
fn describe(action: &Action) -> String {
    match action {
        Action::CreateSecrets => "create the cluster's passwords".into(),
        Action::PublishUnit(_) => "publish this unit's peer data".into(),
        Action::PublishApp(app) => format!(
            "publish the cluster: members {:?}, joining {:?}",
            app.members
                .iter()
                .map(|m| m.unit.as_str())
                .collect::<Vec<_>>(),
            app.joining.as_ref().map(|j| j.member.unit.as_str())
        ),
        Action::AddLearner(m) => format!("add {m} to etcd as a learner"),
        Action::Promote { unit, .. } => format!("promote {unit}'s etcd learner"),
        Action::RemoveMember { id, reason } => format!("remove etcd member {id:x}: {reason}"),
        Action::StartEtcd { wipe_first, .. } => {
            format!(
                "start etcd{}",
                if *wipe_first {
                    " on a wiped data directory"
                } else {
                    ""
                }
            )
        }
        Action::EnableEtcdAuth => "turn etcd authentication on".into(),
        Action::StartStandalone => "start the standalone server".into(),
        Action::EnsureRoles => "create the replication and rewind roles".into(),
        Action::StopStandalone => "stop the standalone server for Patroni".into(),
        Action::WriteHba(_) => "write the replication rules in pg_hba.conf".into(),
        Action::WritePatroniConfig(_) => "write patroni.yml".into(),
        Action::ReloadPatroni => "reload Patroni".into(),
        Action::ClearForClone { data_dir } => {
            format!("clear {} for Patroni's clone", data_dir.display())
        }
        Action::StartPatroni => "start Patroni".into(),
        Action::StopPatroni => "stop Patroni".into(),
        Action::NoteDivergence(_) => "note that this standby diverged".into(),
        Action::SetAsideDiverged(r) => format!(
            "set the diverged data aside at {} for Patroni's clone",
            r.data_aside.display()
        ),
        Action::LeaveEtcd => "stop etcd and delete its data".into(),
        Action::PatchDcs(patch) => format!("PATCH /config {patch}"),
    }
}

/// Everything observed in one round (owned; the plan borrows it).
struct Observed {
    app: AppBag,
    secrets: SecretsFact,
    peers: Vec<PeerUnit>,
    published: UnitBag,
    etcd: Option<EtcdView>,
    local: LocalFacts,
    cluster: Option<Vec<super::topology::ClusterMember>>,
    dcs: Option<serde_json::Value>,
}

impl Observed {
    fn plan(&self, unit: &HaUnit) -> Plan {
        let me = unit.member();
        plan::plan(&Facts {
            me: &me,
            leader: unit.leader,
            departing: unit.departing,
            app: &self.app,
            secrets: &self.secrets,
            peers: &self.peers,
            published: &self.published,
            etcd: self.etcd.as_ref(),
            local: &self.local,
            cluster: self.cluster.as_deref(),
            dcs: self.dcs.as_ref(),
            inputs: &unit.inputs,
            now: now(),
        })
    }

    fn secrets(&self) -> Result<&HaSecrets> {
        match &self.secrets {
            SecretsFact::Present(s) => Ok(s),
            _ => bail!("the cluster's passwords are not readable"),
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn api(unit: &HaUnit, secrets: Option<&HaSecrets>) -> PatroniApi {
    PatroniApi::new(
        &host_port(unit.address, REST_API_PORT),
        secrets.map(|s| BasicAuth {
            user: REST_API_USER.into(),
            password: s.patroni.rest_api.clone(),
        }),
    )
    .trusting(peer_trust(unit.peer_ca()))
}

fn etcd_endpoints(unit: &HaUnit, app: &HaAppState) -> Vec<String> {
    let scheme = unit.etcd_scheme(app);
    let mut urls: Vec<String> = app
        .members
        .iter()
        .map(|m| m.etcd_client_url(scheme))
        .collect();
    if urls.is_empty() {
        urls.push(unit.member().etcd_client_url(scheme));
    }
    urls
}

fn root_etcdctl(unit: &HaUnit, app: &HaAppState, secrets: &HaSecrets) -> Etcdctl {
    unit.etcdctl(
        etcd_endpoints(unit, app),
        Some((ROOT_USER.into(), secrets.etcd_root.clone())),
    )
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum StoredEtcdRecord {
    Founded,
    Joined { since: u64 },
}

fn etcd_record(unit: &HaUnit) -> EtcdRecord {
    match ha_files::etcd_record::<StoredEtcdRecord>(&unit.state) {
        Some(StoredEtcdRecord::Founded) => EtcdRecord::Founded,
        Some(StoredEtcdRecord::Joined { since }) => EtcdRecord::Joined { since },
        None if unit.paths.etcd_data.exists() => EtcdRecord::Unknown,
        None => EtcdRecord::None,
    }
}

/// Not reversible, and changes with either password.
fn roles_digest(secrets: &HaSecrets) -> String {
    let mut h = Sha256::new();
    h.update(b"juju-pg-ha-roles\0");
    h.update(secrets.patroni.replication.expose().as_bytes());
    h.update(b"\0");
    h.update(secrets.patroni.rewind.expose().as_bytes());
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

fn observe(unit: &HaUnit, relation: &RelationId, session: &Session) -> Result<Observed> {
    let mut app_data = juju::relation_get_app(relation, unit.app())
        .context("reading the peer relation's application data")?;
    app_data.extend(session.app_bag.clone());
    let app = AppBag::from_data(&app_data);
    let secrets = match (&session.secrets, &app.secrets_uri) {
        (Some(s), _) => SecretsFact::Present(s.clone()),
        (None, None) => SecretsFact::Missing,
        (None, Some(uri)) => match SecretUri::parse(uri).map(|u| juju::secret_get(&u)) {
            None => SecretsFact::Unreadable(format!("{uri} is not a secret URI")),
            Some(Ok(content)) => match HaSecrets::from_content(&content) {
                Some(s) => SecretsFact::Present(s),
                None => SecretsFact::Unreadable(format!("{uri} lacks some passwords")),
            },
            Some(Err(e)) => SecretsFact::Unreadable(format!("{e}")),
        },
    };
    let mut peers = Vec::new();
    for other in juju::relation_list(relation).context("listing the peer units")? {
        let data = juju::relation_get(relation, &other)
            .with_context(|| format!("reading {other}'s peer data"))?;
        peers.push(UnitBag::from_data(&data).peer(&other));
    }
    let published = match &session.unit_bag {
        Some(data) => UnitBag::from_data(data),
        None => UnitBag::from_data(
            &juju::relation_get(relation, &unit.unit).context("reading this unit's peer data")?,
        ),
    };
    let known = match &secrets {
        SecretsFact::Present(s) => Some(s),
        _ => None,
    };
    let etcd = match known {
        Some(s) if unit.leader => {
            let root = root_etcdctl(unit, &app.cluster, s);
            root.view()
                .or_else(|_| {
                    Etcdctl {
                        user: None,
                        ..root.clone()
                    }
                    .view()
                })
                .ok()
        }
        _ => None,
    };
    let mut local = observe_local(unit, &app.cluster, known);
    let api = api(unit, known);
    let cluster = local.patroni_running.then(|| api.cluster().ok()).flatten();
    local.diverged = cluster
        .as_deref()
        .and_then(|c| observe_divergence(unit, &local, c, &api));
    let dcs = (unit.leader && local.patroni.is_some())
        .then(|| api.config().ok())
        .flatten();
    Ok(Observed {
        app,
        secrets,
        peers,
        published,
        etcd,
        local,
        cluster,
        dcs,
    })
}

fn observe_local(unit: &HaUnit, app: &HaAppState, secrets: Option<&HaSecrets>) -> LocalFacts {
    let services = Services::new(unit.state.clone(), &unit.paths);
    let me = unit.member();
    let etcd_running = services.running(ServiceKind::Etcd).is_some();
    let patroni_running = services.running(ServiceKind::Patroni).is_some();
    let anonymous = unit.own_etcdctl(app);
    let etcd_auth_enabled = etcd_running
        .then(|| anonymous.auth_enabled().ok())
        .flatten();
    let patroni = patroni_running
        .then(|| api(unit, None).patroni().ok())
        .flatten();
    let postmaster = Cluster::running_pid(&unit.data_dir).is_some();
    let standalone_running = postmaster && !patroni_running;
    let disk = data_disk(&unit.data_dir);
    let user_data = if standalone_running {
        holds_user_data(&unit.cluster).ok()
    } else {
        None
    };
    let roles_ready = secrets.is_some_and(|s| {
        ha_files::roles_digest(&unit.state).as_deref() == Some(roles_digest(s).as_str())
    });
    let listed_in_etcd = unit.departing.then(|| {
        unit.etcdctl(etcd_endpoints(unit, app), None)
            .member_list()
            .ok()
            .map(|list| list.iter().any(|m| me.is_at(&m.peer_urls)))
    });
    let hba_text = fsx::read_to_string(&unit.cluster.conf_dir().join("pg_hba.conf")).ok();
    LocalFacts {
        etcd_running,
        etcd_record: etcd_record(unit),
        etcd_auth_enabled,
        patroni_running,
        patroni,
        disk,
        standalone_running,
        user_data,
        roles_ready,
        listed_in_etcd: listed_in_etcd.flatten(),
        patroni_config: fsx::read_to_string(&unit.paths.patroni_config)
            .ok()
            .map(Secret::new),
        hba_block: hba_text.as_deref().and_then(hba_block_in),
        diverged: None,
        set_aside: ha_files::set_aside::<SetAside>(&unit.state).map(|r| {
            let kept = std::fs::symlink_metadata(&r.data_aside).is_ok();
            (r, kept)
        }),
    }
}

/// A standby Patroni runs that does not stream: whether it forked off the
/// primary's history ([`super::divergence`]), and what a re-clone needs.
/// `None` whenever something is unknown: the charm re-clones only on
/// evidence.
fn observe_divergence(
    unit: &HaUnit,
    local: &LocalFacts,
    cluster: &[super::topology::ClusterMember],
    api: &PatroniApi,
) -> Option<DivergedFacts> {
    let me = cluster.iter().find(|m| m.name == unit.member().name())?;
    let leader = cluster
        .iter()
        .find(|m| m.role == super::topology::Role::Leader)?;
    let running = local.patroni.as_ref()?;
    if !me.role.is_standby()
        || me.is_streaming(unit.inputs.patroni_version)
        || running.state != "running"
    {
        return None;
    }
    let row = psql(
        &unit.cluster,
        "postgres",
        "SELECT pg_is_in_recovery(), \
                (SELECT timeline_id FROM pg_control_checkpoint()), \
                pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint;",
    )
    .ok()?;
    let mut fields = row.split('|');
    let (Some("t"), Some(timeline), Some(replayed)) = (fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    let pg_wal = unit.data_dir.join("pg_wal");
    let names: Vec<String> = std::fs::read_dir(&pg_wal)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let position = StandbyPosition {
        checkpoint_timeline: timeline.parse().ok()?,
        replayed: replayed.parse().ok()?,
        newest_wal_timeline: newest_segment_timeline(names.iter().map(String::as_str)),
    };
    let history = api.history().ok()?;
    let divergence = divergence(&history, leader.timeline?, &position)?;
    let wal_dir = std::fs::read_link(&pg_wal).ok();
    let data_bytes = storage::trees::usage(&unit.data_dir).ok()?.bytes;
    let parent = unit.data_dir.parent()?;
    let stat = nix::sys::statvfs::statvfs(parent).ok()?;
    let external_tablespaces = storage::trees::tablespaces(&unit.data_dir)
        .ok()?
        .iter()
        .any(|t| !t.inside(&unit.data_dir));
    Some(DivergedFacts {
        divergence,
        data_dir: unit.data_dir.clone(),
        wal_dir,
        noticed: ha_files::diverged(&unit.state),
        data_bytes,
        free_bytes: stat.blocks_available() as u64 * stat.fragment_size() as u64,
        external_tablespaces,
    })
}

fn data_disk(data_dir: &Path) -> DataDisk {
    let empty = std::fs::read_dir(data_dir).map_or(true, |mut d| d.next().is_none());
    if empty {
        return DataDisk::Empty;
    }
    match cluster::system_identifier(data_dir) {
        Ok(system_identifier) => DataDisk::Cluster {
            path: data_dir.to_path_buf(),
            system_identifier,
        },
        Err(e) => DataDisk::Unusable {
            path: data_dir.to_path_buf(),
            reason: format!("{e:#}"),
        },
    }
}

/// SQL over the unix socket as `postgres`, fed on stdin; the output rows.
fn psql(cluster: &Cluster, database: &str, sql: &str) -> Result<String> {
    let mut child = cluster::as_postgres(Path::new("/usr/bin/psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", "/var/run/postgresql", "-p", &cluster.port.to_string()])
        .args(["-d", database, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting psql")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(sql.as_bytes())
        .context("feeding psql")?;
    let out = child.wait_with_output().context("waiting for psql")?;
    if !out.status.success() {
        bail!(
            "psql on {} failed: {}",
            cluster.id(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether the server holds anything a clone would destroy: a database
/// besides the three `pg_createcluster` makes, a relation in `postgres`
/// outside the system and charm schemas, or a consumer the charm served.
fn holds_user_data(cluster: &Cluster) -> Result<bool> {
    let count = psql(
        cluster,
        "postgres",
        "SELECT (SELECT count(*) FROM pg_database \
                  WHERE datname NOT IN ('postgres', 'template0', 'template1')) \
              + (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'juju_charm') \
                    AND c.relkind IN ('r', 'p', 'm', 'v', 'S', 'f')) \
              + CASE WHEN to_regclass('juju_charm.owners') IS NULL THEN 0 \
                     ELSE (xpath('/row/c/text()', query_to_xml( \
                       'SELECT count(*) AS c FROM juju_charm.owners', false, true, '')))[1]::text::int \
                END;",
    )?;
    let n: i64 = count
        .trim()
        .parse()
        .with_context(|| format!("unexpected count {count:?}"))?;
    Ok(n > 0)
}

fn apply(
    unit: &HaUnit,
    relation: &RelationId,
    session: &mut Session,
    observed: &Observed,
    action: &Action,
) -> Result<()> {
    let services = Services::new(unit.state.clone(), &unit.paths);
    match action {
        Action::CreateSecrets => {
            let generate = || Password::generate().context("reading the OS random source");
            let secrets = HaSecrets {
                patroni: super::patroni_config::PatroniSecrets {
                    rest_api: generate()?,
                    etcd: generate()?,
                    replication: generate()?,
                    rewind: generate()?,
                },
                etcd_root: generate()?,
            };
            let uri = juju::secret_add(
                &secrets.to_content(),
                SecretOptions {
                    label: Some(SECRET_LABEL),
                    description: Some("replication, rewind, Patroni REST API and etcd passwords"),
                    ..Default::default()
                },
            )
            .context("adding the cluster's secret")?;
            let data = RelationData::from([(plan::keys::SECRETS.to_string(), uri.to_string())]);
            juju::relation_set_app(relation, &data).context("publishing the secret's URI")?;
            session.app_bag.extend(data);
            session.secrets = Some(secrets);
        }
        Action::PublishUnit(bag) => {
            let data = bag.to_data();
            juju::relation_set(relation, &data).context("writing this unit's peer data")?;
            session.unit_bag = Some(data);
        }
        Action::PublishApp(next) => {
            let data = AppBag::cluster_data(next);
            juju::relation_set_app(relation, &data).context("writing the cluster state")?;
            session.app_bag.extend(data);
        }
        Action::AddLearner(member) => {
            let cluster = &observed.app.cluster;
            let root = root_etcdctl(unit, cluster, observed.secrets()?);
            let peer_url = member.etcd_peer_url(unit.etcd_scheme(cluster));
            retry(Duration::from_secs(20), "unhealthy cluster", || {
                root.at_leader()?.add_learner(&member.name(), &peer_url)
            })?;
        }
        Action::Promote { id, .. } => {
            let root = root_etcdctl(unit, &observed.app.cluster, observed.secrets()?);
            retry(Duration::from_secs(30), "in sync", || {
                root.at_leader()?.promote(*id)
            })?;
        }
        Action::RemoveMember { id, .. } => {
            root_etcdctl(unit, &observed.app.cluster, observed.secrets()?)
                .at_leader()?
                .remove(*id)?;
        }
        Action::StartEtcd {
            env,
            wipe_first,
            record,
        } => start_etcd(
            unit,
            &observed.app.cluster,
            &services,
            env,
            *wipe_first,
            record,
        )?,
        Action::EnableEtcdAuth => {
            let s = observed.secrets()?;
            unit.own_etcdctl(&observed.app.cluster).enable_auth(
                &s.etcd_root,
                ETCD_PATRONI_USER,
                &s.patroni.etcd,
            )?;
        }
        Action::StartStandalone => control::start(&unit.cluster)?,
        Action::EnsureRoles => {
            let s = observed.secrets()?;
            psql(&unit.cluster, "postgres", &roles_sql(s))?;
            ha_files::save_roles_digest(&unit.state, &roles_digest(s))?;
        }
        Action::StopStandalone => stop_standalone(unit)?,
        Action::WriteHba(block) => {
            let path = unit.cluster.conf_dir().join("pg_hba.conf");
            let text = fsx::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            fsx::write_atomic(
                &path,
                with_hba_block(&text, block).as_bytes(),
                Owner::postgres()?,
                0o640,
            )?;
            if Cluster::running_pid(&unit.data_dir).is_some() {
                psql(&unit.cluster, "postgres", "SELECT pg_reload_conf();")?;
            }
        }
        Action::WritePatroniConfig(text) => {
            let path = &unit.paths.patroni_config;
            let dir = path.parent().context("patroni.yml has a directory")?;
            fsx::ensure_dir(dir, Owner::ROOT, 0o755)?;
            fsx::write_atomic(path, text.expose().as_bytes(), Owner::postgres()?, 0o600)?;
        }
        Action::ReloadPatroni => api(unit, Some(observed.secrets()?)).reload()?,
        Action::ClearForClone { data_dir } => clear_for_clone(unit, data_dir)?,
        Action::StartPatroni => {
            services.start(&patroni_spec(unit))?;
            let api = api(unit, None);
            wait_for(
                Duration::from_secs(60),
                "Patroni's REST API to answer",
                || api.patroni().ok(),
            )?;
        }
        Action::StopPatroni => {
            services.stop(ServiceKind::Patroni, Duration::from_secs(300), false)?
        }
        Action::NoteDivergence(noticed) => {
            log::warn!(
                "this standby cannot follow the primary: {}; the charm re-clones it in {} s \
                 unless Patroni rewinds it",
                noticed.divergence.describe(),
                super::divergence::REWIND_GRACE_SECS
            );
            ha_files::save_diverged(&unit.state, noticed)?;
        }
        Action::SetAsideDiverged(record) => set_aside_diverged(unit, record)?,
        Action::LeaveEtcd => {
            services.stop(ServiceKind::Etcd, Duration::from_secs(30), true)?;
            remove_etcd_data(unit)?;
            ha_files::clear_etcd_record(&unit.state)?;
        }
        Action::PatchDcs(patch) => {
            api(unit, Some(observed.secrets()?)).patch_config(patch)?;
        }
    }
    Ok(())
}

/// Retries `f` while its error contains `transient`, up to `limit`.
fn retry<T>(limit: Duration, transient: &str, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if format!("{e:#}").contains(transient) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

fn wait_for<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("waited {} s for {what}", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn roles_sql(s: &HaSecrets) -> String {
    let verifier = |p: &Password| postgres_protocol::password::scram_sha_256(p.expose().as_bytes());
    let rewind_grants = [
        "pg_catalog.pg_ls_dir(text, boolean, boolean)",
        "pg_catalog.pg_stat_file(text, boolean)",
        "pg_catalog.pg_read_binary_file(text)",
        "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
    ]
    .iter()
    .map(|f| format!("GRANT EXECUTE ON FUNCTION {f} TO {REWIND_USER};\n"))
    .collect::<String>();
    format!(
        "DO $$ BEGIN\n\
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{REPLICATION_USER}') THEN\n\
             CREATE ROLE {REPLICATION_USER};\n\
           END IF;\n\
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{REWIND_USER}') THEN\n\
             CREATE ROLE {REWIND_USER};\n\
           END IF;\n\
         END $$;\n\
         ALTER ROLE {REPLICATION_USER} WITH LOGIN REPLICATION PASSWORD '{}';\n\
         ALTER ROLE {REWIND_USER} WITH LOGIN NOREPLICATION PASSWORD '{}';\n\
         {rewind_grants}",
        verifier(&s.patroni.replication),
        verifier(&s.patroni.rewind),
    )
}

fn stop_standalone(unit: &HaUnit) -> Result<()> {
    let cluster = &unit.cluster;
    if super::services::systemd_runs() {
        let service = format!("postgresql@{}.service", cluster.id());
        let _ = Command::new("systemctl")
            .args(["disable", &service])
            .status();
    }
    if Cluster::running_pid(&unit.data_dir).is_some() {
        let major = cluster.major.to_string();
        cluster::run(Command::new("pg_ctlcluster").args([
            major.as_str(),
            &cluster.name,
            "stop",
            "-m",
            "fast",
        ]))
        .context("stopping the standalone server for Patroni")?;
    }
    // Nothing but Patroni starts it from now on.
    fsx::write_atomic(
        &cluster.conf_dir().join("start.conf"),
        b"manual\n",
        Owner::postgres()?,
        0o644,
    )?;
    Ok(())
}

/// Deletes the data directory a clone replaces (and the WAL directory its
/// `pg_wal` links to). The plan only asks for this when the server, while
/// it ran, held no data; this checks again that it is down.
fn clear_for_clone(unit: &HaUnit, data_dir: &Path) -> Result<()> {
    if data_dir != unit.data_dir {
        bail!(
            "refusing to clear {}: it is not this unit's data directory",
            data_dir.display()
        );
    }
    if Cluster::running_pid(data_dir).is_some() {
        bail!("{} is in use by a running server", data_dir.display());
    }
    let pg_wal = data_dir.join("pg_wal");
    if let Ok(target) = std::fs::read_link(&pg_wal) {
        for entry in
            std::fs::read_dir(&target).with_context(|| format!("reading {}", target.display()))?
        {
            let path = entry?.path();
            if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            }
            .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("removing {}", data_dir.display()))?;
    }
    Ok(())
}

/// Renames a diverged data directory aside (and the WAL directory its
/// `pg_wal` links to, re-linked), as postgres, who owns them: nothing is
/// deleted, and Patroni clones into the empty place. The record is saved
/// before the first rename and marked done after the last; each step is
/// skipped when already done, so a killed hook's retry finishes the moves.
fn set_aside_diverged(unit: &HaUnit, record: &SetAside) -> Result<()> {
    if record.data_dir != unit.data_dir {
        bail!(
            "refusing to set {} aside: it is not this unit's data directory",
            record.data_dir.display()
        );
    }
    if Cluster::running_pid(&record.data_dir).is_some() {
        bail!(
            "{} is in use by a running server",
            record.data_dir.display()
        );
    }
    ha_files::save_set_aside(&unit.state, record)?;
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let mv = |from: &Path, to: &Path| {
        storage::moves::as_postgres("mv", &[Path::new("-T"), from, to])
            .with_context(|| format!("renaming {} to {}", from.display(), to.display()))
    };
    if exists(&record.data_dir) && !exists(&record.data_aside) {
        mv(&record.data_dir, &record.data_aside)?;
    }
    if !exists(&record.data_aside) {
        bail!(
            "neither {} nor {} exists: set the diverged data aside by hand, then run update-status",
            record.data_dir.display(),
            record.data_aside.display()
        );
    }
    if let Some((from, to)) = &record.wal {
        if exists(from) && !exists(to) {
            mv(from, to)?;
        }
        let link = record.data_aside.join("pg_wal");
        if std::fs::read_link(&link).ok().as_deref() != Some(to.as_path()) {
            storage::moves::as_postgres("ln", &[Path::new("-sfnT"), to, &link])
                .with_context(|| format!("linking {} to {}", link.display(), to.display()))?;
        }
    }
    ha_files::save_set_aside(
        &unit.state,
        &SetAside {
            done: true,
            ..record.clone()
        },
    )?;
    ha_files::clear_diverged(&unit.state)?;
    log::warn!(
        "{}; Patroni clones this unit from the primary now",
        record.warning()
    );
    Ok(())
}

fn etcd_spec(unit: &HaUnit) -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::Etcd,
        program: "/usr/bin/etcd".into(),
        args: vec![],
        user: "etcd".into(),
        home: "/var/lib/etcd".into(),
        env_file: Some(unit.paths.etcd_env.clone()),
        log: unit.paths.log_file(ServiceKind::Etcd),
        wanted: true,
        stop_postgres: None,
    }
}

fn patroni_spec(unit: &HaUnit) -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::Patroni,
        program: unit.patroni_program.clone(),
        args: vec![unit.paths.patroni_config.to_string_lossy().into_owned()],
        user: "postgres".into(),
        home: "/var/lib/postgresql".into(),
        env_file: None,
        log: unit.paths.log_file(ServiceKind::Patroni),
        wanted: true,
        stop_postgres: Some(PostgresStop {
            bin_dir: PathBuf::from(format!("/usr/lib/postgresql/{}/bin", unit.cluster.major)),
            data_dir: unit.data_dir.clone(),
        }),
    }
}

fn remove_etcd_data(unit: &HaUnit) -> Result<()> {
    let data = &unit.paths.etcd_data;
    if data.exists() {
        std::fs::remove_dir_all(data).with_context(|| format!("removing {}", data.display()))?;
    }
    Ok(())
}

fn start_etcd(
    unit: &HaUnit,
    app: &HaAppState,
    services: &Services,
    env: &str,
    wipe_first: bool,
    record: &EtcdRecord,
) -> Result<()> {
    if wipe_first {
        services.stop(ServiceKind::Etcd, Duration::from_secs(30), true)?;
        remove_etcd_data(unit)?;
    }
    let env_dir = unit.paths.etcd_env.parent().context("env file directory")?;
    fsx::ensure_dir(env_dir, Owner::ROOT, 0o755)?;
    fsx::write_atomic(&unit.paths.etcd_env, env.as_bytes(), Owner::ROOT, 0o644)?;
    let stored = match record {
        EtcdRecord::Founded => Some(StoredEtcdRecord::Founded),
        EtcdRecord::Joined { since } => Some(StoredEtcdRecord::Joined { since: *since }),
        EtcdRecord::None | EtcdRecord::Unknown => None,
    };
    // Recorded first: a hook killed after the start still knows what the
    // data directory is.
    if let Some(stored) = stored {
        ha_files::save_etcd_record(&unit.state, &stored)?;
    }
    let etcd = nix::unistd::User::from_name("etcd")
        .ok()
        .flatten()
        .context("no `etcd` system user: is etcd-server installed?")?;
    let parent = unit.paths.etcd_data.parent().context("etcd data parent")?;
    fsx::ensure_dir(
        parent,
        Owner {
            uid: etcd.uid.as_raw(),
            gid: etcd.gid.as_raw(),
        },
        0o700,
    )?;
    services.start(&etcd_spec(unit))?;
    let me = unit.own_etcdctl(app);
    wait_for(Duration::from_secs(30), "etcd to answer", || {
        me.answers().then_some(())
    })?;
    Ok(())
}
