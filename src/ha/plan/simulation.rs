//! The plan across units: three units' hooks in many orders against a model
//! of Juju (bags committed at the end of a hook), etcd (one learner at a
//! time, promote only once started) and Patroni (the first to start with a
//! cluster leads, the others clone or rejoin), checking the safety rules after
//! every action and where every order must end.

use serde_json::Value;

use super::*;
use crate::ha::membership::EtcdMember;
use crate::ha::options::TimingProfile;
use crate::ha::patroni_config::WatchdogMode;
use crate::ha::topology::{parse_cluster, LocalRole};
use crate::secret::Password;
use std::collections::BTreeMap;

const DATA_HOLDER_SYSID: u64 = 1000;

fn member(n: usize) -> Member {
    Member::new(
        &format!("postgresql/{n}"),
        format!("198.18.1.{}", 10 + n).parse().unwrap(),
    )
}

fn inputs(n: usize) -> Inputs {
    let options = HaOptions {
        timing: TimingProfile::FAST,
        ..Default::default()
    };
    Inputs {
        patroni: PatroniConfig {
            scope: "postgresql".into(),
            me: member(n),
            etcd_members: vec![],
            listen_host: member(n).address.to_string(),
            port: 5432,
            data_dir: "/var/lib/postgresql/15/main".into(),
            config_dir: "/etc/postgresql/15/main".into(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            pgpass: "/var/lib/postgresql/.pgpass".into(),
            socket_dir: "/var/run/postgresql".into(),
            wal_dir: None,
            strict: false,
            watchdog: WatchdogMode::Off,
            peer_tls: None,
            etcd_tls: false,
            local_parameters: Default::default(),
            dynamic: crate::ha::dcs::DynamicConfig {
                timing: options.timing,
                replication: options.replication_for(1),
                parameters: [("max_connections".to_string(), "120".to_string())].into(),
            },
        },
        options,
        cluster_token: "t".into(),
        etcd_data: "/var/lib/etcd/x".into(),
        etcd_tls: Some(crate::ha::etcd_config::EtcdTls {
            certificate: "/var/lib/etcd/x.tls/cert.pem".into(),
            key: "/var/lib/etcd/x.tls/key.pem".into(),
            ca: "/var/lib/etcd/x.tls/ca.pem".into(),
        }),
        patroni_version: PatroniVersion::new(3, 2, 2),
    }
}

#[derive(Debug, Clone)]
struct Unit {
    etcd_running: bool,
    etcd_record: EtcdRecord,
    patroni_running: bool,
    /// The system identifier on disk; `None` = empty.
    disk: Option<u64>,
    user_data: bool,
    standalone_running: bool,
    roles_ready: bool,
    patroni_config: Option<Secret<String>>,
    hba_block: Option<String>,
    bag: RelationData,
}

/// Juju, etcd and Patroni for three units.
struct Model {
    leader: usize,
    units: Vec<Unit>,
    app_bag: RelationData,
    secret: Option<HaSecrets>,
    etcd: Vec<EtcdMember>,
    etcd_auth: bool,
    /// Patroni's leader key and the cluster's system identifier.
    dcs_leader: Option<usize>,
    dcs_sysid: Option<u64>,
    dcs_config: Option<Value>,
    /// Each unit's problems when its last hook ended.
    problems: Vec<Vec<Problem>>,
    log: Vec<String>,
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl Model {
    /// Three units the charm made, each with its standalone cluster
    /// running; unit 0's holds data.
    fn new(leader: usize) -> Self {
        let unit = |n: usize| Unit {
            etcd_running: false,
            etcd_record: EtcdRecord::None,
            patroni_running: false,
            disk: Some(DATA_HOLDER_SYSID + n as u64),
            user_data: n == 0,
            standalone_running: true,
            roles_ready: false,
            patroni_config: None,
            hba_block: None,
            bag: RelationData::new(),
        };
        Model {
            leader,
            units: (0..3).map(unit).collect(),
            app_bag: RelationData::new(),
            secret: None,
            etcd: Vec::new(),
            etcd_auth: false,
            dcs_leader: None,
            dcs_sysid: None,
            dcs_config: None,
            problems: vec![Vec::new(); 3],
            log: Vec::new(),
        }
    }

    fn etcd_of(&self, n: usize) -> Option<usize> {
        let me = member(n);
        self.etcd.iter().position(|e| me.is_at(&e.peer_urls))
    }

    fn cluster_json(&self) -> Vec<ClusterMember> {
        let members: Vec<Value> = (0..3)
            .filter(|&n| self.units[n].patroni_running)
            .map(|n| {
                let role = if self.dcs_leader == Some(n) {
                    "leader"
                } else {
                    "replica"
                };
                let state = if role == "leader" {
                    "running"
                } else {
                    "streaming"
                };
                serde_json::json!({"name": member(n).name(), "role": role, "state": state})
            })
            .collect();
        parse_cluster(&serde_json::json!({ "members": members }).to_string()).unwrap()
    }

    /// One hook (or juju-exec) on unit `n`: rounds until the plan is empty.
    /// Returns whether it did anything.
    fn hook(&mut self, n: usize) -> bool {
        let leader = n == self.leader;
        let mut unit_overlay: Option<RelationData> = None;
        let mut app_overlay = RelationData::new();
        let mut session_secret: Option<HaSecrets> = None;
        let mut did = false;
        for _ in 0..16 {
            let mut app_data = self.app_bag.clone();
            app_data.extend(app_overlay.clone());
            let app = AppBag::from_data(&app_data);
            let secrets = match (&session_secret, &app.secrets_uri, &self.secret) {
                (Some(s), _, _) => SecretsFact::Present(s.clone()),
                (None, Some(_), Some(s)) => SecretsFact::Present(s.clone()),
                _ => SecretsFact::Missing,
            };
            let peers: Vec<PeerUnit> = (0..3)
                .filter(|&k| k != n)
                .map(|k| UnitBag::from_data(&self.units[k].bag).peer(&member(k).unit))
                .collect();
            let published = UnitBag::from_data(unit_overlay.as_ref().unwrap_or(&self.units[n].bag));
            let view = EtcdView {
                healthy: self
                    .etcd
                    .iter()
                    .filter(|e| !e.name.is_empty())
                    .map(|e| e.id)
                    .collect(),
                members: self.etcd.clone(),
            };
            let etcd_answers = self.units.iter().any(|u| u.etcd_running);
            let u = &self.units[n];
            let patroni = u.patroni_running.then(|| LocalStatus {
                role: if self.dcs_leader == Some(n) {
                    LocalRole::Primary
                } else {
                    LocalRole::Replica
                },
                state: "running".into(),
                timeline: Some(2),
                pending_restart: false,
                system_identifier: u.disk,
                version: None,
            });
            let local = LocalFacts {
                etcd_running: u.etcd_running,
                etcd_record: u.etcd_record.clone(),
                etcd_auth_enabled: u.etcd_running.then_some(self.etcd_auth),
                patroni_running: u.patroni_running,
                patroni,
                disk: match u.disk {
                    None => DataDisk::Empty,
                    Some(s) => DataDisk::Cluster {
                        path: "/var/lib/postgresql/15/main".into(),
                        system_identifier: s,
                    },
                },
                standalone_running: u.standalone_running,
                user_data: u.standalone_running.then_some(u.user_data),
                roles_ready: u.roles_ready,
                listed_in_etcd: None,
                patroni_config: u.patroni_config.clone(),
                hba_block: u.hba_block.clone(),
                diverged: None,
                set_aside: None,
            };
            let cluster = u.patroni_running.then(|| self.cluster_json());
            let me = member(n);
            let inputs = inputs(n);
            let p = plan(&Facts {
                me: &me,
                leader,
                departing: false,
                app: &app,
                secrets: &secrets,
                peers: &peers,
                published: &published,
                etcd: (leader && etcd_answers).then_some(&view),
                local: &local,
                cluster: cluster.as_deref(),
                dcs: (leader && u.patroni_running)
                    .then_some(self.dcs_config.as_ref())
                    .flatten(),
                inputs: &inputs,
                now: 1_000,
            });
            if p.actions.is_empty() {
                self.problems[n] = p.problems;
                break;
            }
            did = true;
            for action in p.actions {
                self.log.push(format!("{n}: {action:?}"));
                match action {
                    Action::CreateSecrets => {
                        assert!(leader);
                        let pw = |s: &str| Password::new(format!("{s}-password-0123456789"));
                        let s = HaSecrets {
                            patroni: PatroniSecrets {
                                rest_api: pw("rest"),
                                etcd: pw("etcd"),
                                replication: pw("repl"),
                                rewind: pw("rewind"),
                            },
                            etcd_root: pw("root"),
                        };
                        self.secret = Some(s.clone());
                        session_secret = Some(s);
                        app_overlay.insert(keys::SECRETS.into(), "secret:x".into());
                    }
                    Action::PublishUnit(bag) => unit_overlay = Some(bag.to_data()),
                    Action::PublishApp(state) => {
                        assert!(leader, "only the leader writes the app bag");
                        app_overlay.extend(AppBag::cluster_data(&state));
                    }
                    Action::AddLearner(m) => {
                        assert!(leader);
                        assert!(
                            !self.etcd.iter().any(|e| e.is_learner),
                            "etcd 3.4 takes one learner at a time"
                        );
                        assert!(self.etcd_auth, "membership changes after auth is on");
                        let k = self.etcd.len() as u64;
                        self.etcd.push(EtcdMember {
                            id: 500 + k,
                            name: String::new(),
                            peer_urls: vec![m.etcd_peer_url(crate::ha::Scheme::Https)],
                            is_learner: true,
                        });
                    }
                    Action::Promote { id, .. } => {
                        let e = self.etcd.iter_mut().find(|e| e.id == id).unwrap();
                        assert!(
                            e.is_learner && !e.name.is_empty(),
                            "promote a started learner"
                        );
                        e.is_learner = false;
                    }
                    Action::RemoveMember { id, reason } => {
                        panic!("nobody leaves here, yet {id} was removed: {reason}")
                    }
                    Action::StartEtcd { record, env, .. } => {
                        let u = &mut self.units[n];
                        u.etcd_running = true;
                        u.etcd_record = record.clone();
                        let vars: BTreeMap<String, String> =
                            crate::ha::etcd_config::parse_env_file(&env)
                                .unwrap()
                                .into_iter()
                                .collect();
                        let advertised = vars["ETCD_INITIAL_ADVERTISE_PEER_URLS"].clone();
                        assert!(advertised.starts_with("https://"), "{advertised}");
                        match record {
                            EtcdRecord::Founded => {
                                assert!(self.etcd.is_empty(), "one etcd cluster only");
                                self.etcd.push(EtcdMember {
                                    id: 500,
                                    name: member(n).name(),
                                    peer_urls: vec![advertised],
                                    is_learner: false,
                                });
                            }
                            _ => {
                                let i = self.etcd_of(n).expect("added before it starts");
                                // etcd refuses to start a member whose URL
                                // is not the one it was added with.
                                assert_eq!(self.etcd[i].peer_urls, [advertised]);
                                self.etcd[i].name = member(n).name();
                            }
                        }
                    }
                    Action::EnableEtcdAuth => self.etcd_auth = true,
                    Action::StartStandalone => {
                        assert!(self.units[n].disk.is_some());
                        assert!(!self.units[n].patroni_running);
                        self.units[n].standalone_running = true;
                    }
                    Action::EnsureRoles => {
                        assert!(self.units[n].standalone_running);
                        self.units[n].roles_ready = true;
                    }
                    Action::StopStandalone => self.units[n].standalone_running = false,
                    Action::WriteHba(b) => self.units[n].hba_block = Some(b),
                    Action::WritePatroniConfig(c) => self.units[n].patroni_config = Some(c),
                    Action::ReloadPatroni => assert!(self.units[n].patroni_running),
                    Action::ClearForClone { .. } => {
                        let u = &mut self.units[n];
                        assert!(!u.standalone_running, "cleared while running");
                        assert!(!u.user_data, "a clone never replaces data");
                        u.disk = None;
                    }
                    // The simulation never diverges a standby.
                    Action::NoteDivergence(_) | Action::SetAsideDiverged(_) => {
                        panic!("no standby diverges in the simulation")
                    }
                    Action::StartPatroni => {
                        let i = self.etcd_of(n).expect("an etcd member");
                        assert!(!self.etcd[i].is_learner, "Patroni on a voting member only");
                        let u = &mut self.units[n];
                        assert!(!u.standalone_running, "Patroni with a server running");
                        assert!(u.patroni_config.is_some());
                        u.patroni_running = true;
                        match (self.dcs_sysid, u.disk) {
                            (None, Some(s)) => {
                                self.dcs_sysid = Some(s);
                                self.dcs_leader = Some(n);
                                let config = u.patroni_config.as_ref().unwrap();
                                let v: Value = serde_json::from_str(config.expose()).unwrap();
                                self.dcs_config = Some(v["bootstrap"]["dcs"].clone());
                            }
                            (Some(_), None) => u.disk = self.dcs_sysid,
                            (Some(cluster), Some(mine)) => {
                                assert_eq!(cluster, mine, "Patroni on another cluster's data")
                            }
                            (None, None) => panic!("Patroni with nothing to bootstrap from"),
                        }
                    }
                    Action::StopPatroni | Action::LeaveEtcd => panic!("nobody leaves here"),
                    Action::PatchDcs(patch) => {
                        assert!(leader);
                        merge(self.dcs_config.as_mut().unwrap(), &patch);
                    }
                }
            }
        }
        // Juju commits the hook's writes.
        if let Some(data) = unit_overlay {
            self.units[n].bag.extend(data);
        }
        self.app_bag.extend(app_overlay);
        did
    }
}

/// A small deterministic generator (no crate for this).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }
}

/// Runs random hooks until every unit, in turn, has nothing to do.
fn run(model: &mut Model, seed: u64) {
    let mut rng = Lcg(seed);
    let mut hooks = 0;
    loop {
        for _ in 0..(rng.next() % 4) {
            model.hook(rng.next() % 3);
            hooks += 1;
        }
        let mut quiet = true;
        for n in 0..3 {
            quiet &= !model.hook(n);
        }
        if quiet {
            break;
        }
        assert!(hooks < 400, "no convergence:\n{}", model.log.join("\n"));
    }
}

#[test]
fn every_hook_order_forms_one_cluster_on_the_data_holders_data() {
    for seed in 0..300 {
        let mut model = Model::new(0);
        run(&mut model, seed);
        let log = || model.log.join("\n");
        assert_eq!(model.etcd.len(), 3, "seed {seed}:\n{}", log());
        assert!(model
            .etcd
            .iter()
            .all(|e| !e.is_learner && !e.name.is_empty()));
        assert!(model.units.iter().all(|u| u.patroni_running), "seed {seed}");
        assert_eq!(model.dcs_leader, Some(0), "seed {seed}");
        assert_eq!(model.dcs_sysid, Some(DATA_HOLDER_SYSID));
        assert!(model
            .units
            .iter()
            .all(|u| u.disk == Some(DATA_HOLDER_SYSID)));
        let app = AppBag::from_data(&model.app_bag).cluster;
        assert_eq!(app.members, [member(0), member(1), member(2)]);
        assert_eq!(app.joining, None);
        assert_eq!(app.system_identifier, Some(DATA_HOLDER_SYSID.to_string()));
        assert!(app.etcd_tls, "etcd founded over TLS stays on it");
        // Every hba admits every member; the DCS says one synchronous standby.
        for u in &model.units {
            let block = u.hba_block.as_deref().unwrap();
            assert_eq!(block.lines().count(), 6, "{block}");
        }
        let dcs = model.dcs_config.as_ref().unwrap();
        assert_eq!(dcs["synchronous_mode"], true);
        assert_eq!(dcs["synchronous_node_count"], 1);
        assert_eq!(dcs["postgresql"]["parameters"]["max_connections"], "120");
    }
}

#[test]
fn with_another_leader_the_data_holder_is_blocked_never_cleared() {
    // The leader founds on its own (empty) cluster; unit 0's rows are never
    // replaced by a clone: it stays blocked, naming its data directory.
    for seed in 0..100 {
        let mut model = Model::new(1);
        run(&mut model, seed);
        assert_eq!(model.dcs_leader, Some(1));
        assert!(!model.units[0].patroni_running);
        assert_eq!(model.units[0].disk, Some(DATA_HOLDER_SYSID), "seed {seed}");
        assert!(model.units[2].patroni_running);
        let blocked: Vec<&Problem> = model.problems[0]
            .iter()
            .filter(|p| matches!(p, Problem::Blocked(_)))
            .collect();
        assert!(
            matches!(blocked.as_slice(), [Problem::Blocked(b)] if b.contains("/var/lib/postgresql/15/main")),
            "seed {seed}: {:?}",
            model.problems[0]
        );
    }
}
