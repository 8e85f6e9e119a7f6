//! Table tests of the HA plan: each rule, from the founding of the cluster
//! to a steady three-member cluster, joiners, refusals and departures.

use std::collections::BTreeSet;

use super::*;
use crate::ha::dcs::DynamicConfig;
use crate::ha::membership::{EtcdMember, Joining};
use crate::ha::options::{SyncNodeCount, TimingProfile};
use crate::ha::patroni_config::WatchdogMode;
use crate::ha::topology::{parse_cluster, LocalRole};
use crate::secret::Password;

const NOW: u64 = 1_000_000;
const SYSID: u64 = 42;

fn addr(n: u32) -> IpAddr {
    format!("198.18.0.{}", 10 + n).parse().unwrap()
}

fn m(n: u32) -> Member {
    Member::new(&format!("postgresql/{n}"), addr(n))
}

fn secrets() -> HaSecrets {
    let p = |s: &str| Password::new(format!("pw-{s}-0123456789"));
    HaSecrets {
        patroni: PatroniSecrets {
            rest_api: p("rest"),
            etcd: p("etcd"),
            replication: p("repl"),
            rewind: p("rewind"),
        },
        etcd_root: p("root"),
    }
}

fn inputs(n: u32) -> Inputs {
    Inputs {
        patroni: PatroniConfig {
            scope: "postgresql".into(),
            me: m(n),
            etcd_members: vec![],
            listen_host: addr(n).to_string(),
            port: 5432,
            data_dir: "/var/lib/postgresql/15/main".into(),
            config_dir: "/etc/postgresql/15/main".into(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            pgpass: "/var/lib/postgresql/.pgpass-ha".into(),
            socket_dir: "/var/run/postgresql".into(),
            wal_dir: None,
            strict: false,
            watchdog: WatchdogMode::Off,
            peer_tls: None,
            etcd_tls: false,
            local_parameters: Default::default(),
            dynamic: DynamicConfig {
                timing: TimingProfile::DEFAULT,
                replication: HaOptions::default().replication_for(1),
                parameters: [("max_connections".to_string(), "120".to_string())].into(),
            },
        },
        options: HaOptions::default(),
        cluster_token: "juju-pg-model-postgresql".into(),
        etcd_data: "/var/lib/etcd/juju-pg-main".into(),
        etcd_tls: None,
        patroni_version: PatroniVersion::new(3, 2, 2),
    }
}

fn etcd_member(n: u32, learner: bool, started: bool) -> EtcdMember {
    EtcdMember {
        id: 100 + u64::from(n),
        name: if started { m(n).name() } else { String::new() },
        peer_urls: vec![m(n).etcd_peer_url(crate::ha::Scheme::Http)],
        is_learner: learner,
    }
}

fn view(voting: &[u32]) -> EtcdView {
    let members: Vec<EtcdMember> = voting
        .iter()
        .map(|&n| etcd_member(n, false, true))
        .collect();
    let healthy: BTreeSet<u64> = members.iter().map(|e| e.id).collect();
    EtcdView { members, healthy }
}

fn status(role: LocalRole, state: &str, sysid: u64) -> LocalStatus {
    LocalStatus {
        role,
        state: state.into(),
        timeline: Some(2),
        pending_restart: false,
        system_identifier: Some(sysid),
        version: Some(PatroniVersion::new(3, 2, 2)),
    }
}

/// One unit's whole view, owned; `plan()` borrows it.
struct Case {
    n: u32,
    leader: bool,
    departing: bool,
    app: AppBag,
    secrets: SecretsFact,
    peers: Vec<PeerUnit>,
    published: UnitBag,
    etcd: Option<EtcdView>,
    local: LocalFacts,
    cluster: Option<Vec<ClusterMember>>,
    dcs: Option<Value>,
    inputs: Inputs,
}

impl Case {
    /// A unit the charm just made: standalone server running with nothing
    /// in it, nothing HA started, passwords readable.
    fn new(n: u32, leader: bool) -> Self {
        Case {
            n,
            leader,
            departing: false,
            app: AppBag {
                secrets_uri: Some("secret:abc".into()),
                ..Default::default()
            },
            secrets: SecretsFact::Present(secrets()),
            peers: vec![],
            published: UnitBag::default(),
            etcd: None,
            local: LocalFacts {
                etcd_running: false,
                etcd_record: EtcdRecord::None,
                etcd_auth_enabled: None,
                patroni_running: false,
                patroni: None,
                disk: DataDisk::Cluster {
                    path: "/var/lib/postgresql/15/main".into(),
                    system_identifier: u64::from(n) + 7,
                },
                standalone_running: true,
                user_data: Some(false),
                roles_ready: false,
                listed_in_etcd: None,
                patroni_config: None,
                hba_block: None,
                diverged: None,
                set_aside: None,
            },
            cluster: None,
            dcs: None,
            inputs: inputs(n),
        }
    }

    /// This unit's bag as the plan wants it, already published; its HA
    /// block and patroni.yml already written.
    fn settled(mut self) -> Self {
        self.published = self.bag();
        let tls = self.inputs.patroni.peer_tls.is_some();
        self.local.hba_block = Some(hba_block(&m(self.n), &self.app.cluster, tls));
        let config = patroni_config(&self.inputs, &m(self.n), &self.app.cluster);
        self.local.patroni_config = Some(patroni_config::render(&config, &secrets().patroni));
        self
    }

    fn bag(&self) -> UnitBag {
        UnitBag {
            address: Some(addr(self.n)),
            ready: matches!(self.secrets, SecretsFact::Present(_)),
            departing: self.departing,
            founded: self.local.etcd_record == EtcdRecord::Founded,
            wants_readd: false,
        }
    }

    /// A member of a cluster `members` whose system identifier is SYSID,
    /// with etcd running and Patroni not yet.
    fn member_of(mut self, members: &[u32]) -> Self {
        self.app.cluster = HaAppState {
            members: members.iter().map(|&k| m(k)).collect(),
            joining: None,
            system_identifier: Some(SYSID.to_string()),
            etcd_tls: false,
        };
        self.peers = members
            .iter()
            .filter(|&&k| k != self.n)
            .map(|&k| {
                UnitBag {
                    address: Some(addr(k)),
                    ready: true,
                    ..Default::default()
                }
                .peer(&m(k).unit)
            })
            .collect();
        self.local.etcd_running = true;
        self.local.etcd_record = EtcdRecord::Joined { since: 1 };
        self.local.roles_ready = true;
        if self.leader {
            self.etcd = Some(view(members));
        }
        self
    }

    /// Patroni runs this member with `role`, on the cluster's data.
    fn running(mut self, role: LocalRole, state: &str) -> Self {
        self.local.patroni_running = true;
        self.local.standalone_running = false;
        self.local.disk = DataDisk::Cluster {
            path: "/var/lib/postgresql/15/main".into(),
            system_identifier: SYSID,
        };
        self.local.patroni = Some(status(role, state, SYSID));
        self
    }

    fn plan(&self) -> Plan {
        let me = m(self.n);
        plan(&Facts {
            me: &me,
            leader: self.leader,
            departing: self.departing,
            app: &self.app,
            secrets: &self.secrets,
            peers: &self.peers,
            published: &self.published,
            etcd: self.etcd.as_ref(),
            local: &self.local,
            cluster: self.cluster.as_deref(),
            dcs: self.dcs.as_ref(),
            inputs: &self.inputs,
            now: NOW,
        })
    }
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::CreateSecrets => "create-secrets",
            Action::PublishUnit(_) => "publish-unit",
            Action::PublishApp(_) => "publish-app",
            Action::AddLearner(_) => "add-learner",
            Action::Promote { .. } => "promote",
            Action::RemoveMember { .. } => "remove-member",
            Action::StartEtcd { .. } => "start-etcd",
            Action::EnableEtcdAuth => "enable-etcd-auth",
            Action::StartStandalone => "start-standalone",
            Action::EnsureRoles => "ensure-roles",
            Action::StopStandalone => "stop-standalone",
            Action::WriteHba(_) => "write-hba",
            Action::WritePatroniConfig(_) => "write-patroni-config",
            Action::ReloadPatroni => "reload-patroni",
            Action::ClearForClone { .. } => "clear-for-clone",
            Action::StartPatroni => "start-patroni",
            Action::StopPatroni => "stop-patroni",
            Action::NoteDivergence(_) => "note-divergence",
            Action::SetAsideDiverged(_) => "set-aside",
            Action::LeaveEtcd => "leave-etcd",
            Action::PatchDcs(_) => "patch-dcs",
        })
        .collect()
}

fn waiting(plan: &Plan) -> Vec<&str> {
    plan.problems
        .iter()
        .filter_map(|p| match p {
            Problem::Waiting(w) => Some(w.as_str()),
            Problem::Blocked(_) => None,
        })
        .collect()
}

fn blocked(plan: &Plan) -> Vec<&str> {
    plan.problems
        .iter()
        .filter_map(|p| match p {
            Problem::Blocked(b) => Some(b.as_str()),
            Problem::Waiting(_) => None,
        })
        .collect()
}

#[test]
fn the_leader_creates_the_passwords_first_and_nothing_else() {
    let mut c = Case::new(0, true);
    c.secrets = SecretsFact::Missing;
    c.app.secrets_uri = None;
    let p = c.plan();
    assert_eq!(kinds(&p), ["create-secrets"]);
    assert_eq!(p.role, Role::Standalone);
}

#[test]
fn other_units_wait_for_the_passwords() {
    for secrets in [
        SecretsFact::Missing,
        SecretsFact::Unreadable("permission denied".into()),
    ] {
        let mut c = Case::new(1, false);
        c.secrets = secrets;
        let p = c.plan();
        assert!(p.actions.is_empty(), "{:?}", kinds(&p));
        assert_eq!(waiting(&p).len(), 1, "{p:?}");
        assert_eq!(p.role, Role::Standalone);
    }
}

#[test]
fn founding_etcd_then_authentication_then_roles_then_patroni() {
    // Round 1: publish the address, the HA hba block, a new etcd.
    let c = Case::new(0, true);
    let p = c.plan();
    assert_eq!(kinds(&p), ["publish-unit", "write-hba", "start-etcd"]);
    let Action::PublishUnit(bag) = &p.actions[0] else {
        unreachable!()
    };
    assert_eq!(bag.address, Some(addr(0)));
    assert!(bag.ready && bag.founded, "{bag:?}");
    let Action::StartEtcd {
        env,
        wipe_first,
        record,
    } = &p.actions[2]
    else {
        unreachable!()
    };
    assert!(env.contains("ETCD_INITIAL_CLUSTER_STATE=new\n"), "{env}");
    assert!(env.contains("ETCD_INITIAL_CLUSTER=postgresql-0=http://198.18.0.10:2380\n"));
    assert!(!wipe_first);
    assert_eq!(*record, EtcdRecord::Founded);

    // Round 2: etcd runs without authentication.
    let mut c = Case::new(0, true);
    c.local.etcd_running = true;
    c.local.etcd_record = EtcdRecord::Founded;
    c.local.etcd_auth_enabled = Some(false);
    c.etcd = Some(view(&[0]));
    let c = c.settled();
    let p = c.plan();
    // The leader admits its own founder as the first member meanwhile.
    assert_eq!(kinds(&p), ["publish-app", "enable-etcd-auth"]);
    assert_eq!(
        p.actions[0],
        Action::PublishApp(HaAppState {
            members: vec![m(0)],
            joining: None,
            system_identifier: None,
            etcd_tls: false,
        })
    );

    // Round 3: the roles, while the standalone server runs (or start it).
    let mut c = c;
    c.local.etcd_auth_enabled = Some(true);
    c.app.cluster.members = vec![m(0)];
    let c = c.settled();
    assert_eq!(kinds(&c.plan()), ["ensure-roles"]);
    let mut down = Case { ..c };
    down.local.standalone_running = false;
    assert_eq!(kinds(&down.plan()), ["start-standalone"]);

    // Round 4: roles in place: stop the standalone server, Patroni adopts.
    let mut c = down;
    c.local.standalone_running = true;
    c.local.roles_ready = true;
    c.local.patroni_config = None;
    let p = c.plan();
    assert_eq!(
        kinds(&p),
        ["stop-standalone", "write-patroni-config", "start-patroni"]
    );
    assert_eq!(
        p.role,
        Role::Standby,
        "no longer standalone, not primary yet"
    );

    // Round 5: Patroni runs it as primary: the leader records the sysid.
    let mut c = c.settled();
    c.local.patroni_running = true;
    c.local.standalone_running = false;
    c.local.patroni = Some(status(LocalRole::Primary, "running", 7));
    let p = c.plan();
    assert_eq!(p.role, Role::Primary);
    assert_eq!(
        p.actions,
        [Action::PublishApp(HaAppState {
            members: vec![m(0)],
            joining: None,
            system_identifier: Some("7".into()),
            etcd_tls: false,
        })]
    );
}

#[test]
fn a_new_leader_never_founds_a_second_cluster() {
    let mut c = Case::new(1, true);
    c.peers = vec![UnitBag {
        address: Some(addr(0)),
        ready: true,
        founded: true,
        ..Default::default()
    }
    .peer("postgresql/0")];
    let p = c.plan();
    assert!(!kinds(&p).contains(&"start-etcd"), "{:?}", kinds(&p));
    assert!(!waiting(&p).is_empty());
}

#[test]
fn the_leader_adds_a_ready_unit_as_a_learner_and_the_primary_admits_it() {
    let mut c = Case::new(0, true)
        .member_of(&[0])
        .running(LocalRole::Primary, "running");
    c.local.etcd_record = EtcdRecord::Founded;
    c.peers.push(
        UnitBag {
            address: Some(addr(1)),
            ready: true,
            ..Default::default()
        }
        .peer("postgresql/1"),
    );
    let c = c.settled();
    assert_eq!(c.plan().actions, [Action::AddLearner(m(1))]);
    // Once the learner is recorded as joining, every unit's hba admits it.
    let mut c = c;
    c.app.cluster.joining = Some(Joining {
        member: m(1),
        since: NOW,
    });
    let p = c.plan();
    let Some(Action::WriteHba(block)) = p.actions.first() else {
        panic!("{p:?}")
    };
    assert!(block.contains("host replication juju_replication 198.18.0.11/32 scram-sha-256\n"));
    assert!(block.contains("host postgres juju_rewind 198.18.0.11/32 scram-sha-256\n"));
}

#[test]
fn the_joiner_starts_etcd_as_an_existing_member() {
    let mut c = Case::new(1, false);
    c.app.cluster = HaAppState {
        members: vec![m(0)],
        joining: Some(Joining {
            member: m(1),
            since: 77,
        }),
        system_identifier: Some(SYSID.to_string()),
        etcd_tls: false,
    };
    let c = c.settled();
    let p = c.plan();
    let [Action::StartEtcd {
        env,
        wipe_first,
        record,
    }] = p.actions.as_slice()
    else {
        panic!("{:?}", kinds(&p))
    };
    assert!(env.contains("ETCD_INITIAL_CLUSTER_STATE=existing\n"));
    assert!(env.contains(
        "ETCD_INITIAL_CLUSTER=postgresql-0=http://198.18.0.10:2380,postgresql-1=http://198.18.0.11:2380\n"
    ));
    assert!(!wipe_first);
    assert_eq!(*record, EtcdRecord::Joined { since: 77 });
    // Not a member, not joining: it waits its turn.
    let mut c = c;
    c.app.cluster.joining = None;
    let p = c.plan();
    assert!(p.actions.is_empty());
    assert_eq!(waiting(&p).len(), 1);
}

#[test]
fn an_admitted_joiner_replaces_its_empty_cluster_by_a_clone() {
    let c = Case::new(1, false).member_of(&[0, 1]).settled();
    let mut c = c;
    c.local.patroni_config = None;
    let p = c.plan();
    assert_eq!(
        kinds(&p),
        [
            "stop-standalone",
            "clear-for-clone",
            "write-patroni-config",
            "start-patroni"
        ]
    );
    assert_eq!(
        p.actions[1],
        Action::ClearForClone {
            data_dir: "/var/lib/postgresql/15/main".into()
        }
    );
    // The same with the standalone server already stopped.
    c.local.standalone_running = false;
    assert_eq!(
        kinds(&c.plan()),
        ["clear-for-clone", "write-patroni-config", "start-patroni"]
    );
    // An empty disk: Patroni clones into it.
    c.local.disk = DataDisk::Empty;
    assert_eq!(kinds(&c.plan()), ["write-patroni-config", "start-patroni"]);
}

#[test]
fn a_joiner_whose_disk_holds_data_is_never_cleared() {
    let mut c = Case::new(1, false).member_of(&[0, 1]).settled();
    c.local.user_data = Some(true);
    let p = c.plan();
    assert!(p.actions.is_empty(), "{:?}", kinds(&p));
    let b = blocked(&p);
    assert_eq!(b.len(), 1, "{p:?}");
    assert!(b[0].contains("/var/lib/postgresql/15/main"), "{}", b[0]);
    assert!(b[0].contains("holds another cluster"), "{}", b[0]);
    // Unknown content (server down): start it and look, never block blind.
    c.local.user_data = None;
    c.local.standalone_running = false;
    let p = c.plan();
    assert_eq!(kinds(&p), ["start-standalone"]);
    assert!(blocked(&p).is_empty());
    // A disk the control file cannot be read on is blocked as it is.
    c.local.disk = DataDisk::Unusable {
        path: "/srv/pgdata/15/main".into(),
        reason: "no global/pg_control".into(),
    };
    let p = c.plan();
    assert!(p.actions.is_empty());
    assert!(blocked(&p)[0].contains("/srv/pgdata/15/main"));
}

#[test]
fn a_member_with_the_clusters_own_data_rejoins_on_it() {
    let mut c = Case::new(2, false).member_of(&[0, 1, 2]).settled();
    c.local.disk = DataDisk::Cluster {
        path: "/var/lib/postgresql/15/main".into(),
        system_identifier: SYSID,
    };
    c.local.user_data = Some(true);
    c.local.standalone_running = false;
    assert_eq!(kinds(&c.plan()), ["start-patroni"]);
    // Somebody started it outside Patroni: stop that first.
    c.local.standalone_running = true;
    assert_eq!(kinds(&c.plan()), ["stop-standalone", "start-patroni"]);
}

#[test]
fn a_running_member_follows_its_config_and_the_leader_the_dcs() {
    let c = Case::new(1, false)
        .member_of(&[0, 1, 2])
        .running(LocalRole::Replica, "streaming")
        .settled();
    let p = c.plan();
    assert!(p.actions.is_empty(), "{:?}", kinds(&p));
    assert!(p.problems.is_empty(), "{p:?}");
    assert_eq!(p.role, Role::Standby);
    // Membership changed since the file was written: rewrite and reload.
    let mut stale = c;
    stale.local.patroni_config = Some(Secret::new("{}".into()));
    assert_eq!(
        kinds(&stale.plan()),
        ["write-patroni-config", "reload-patroni"]
    );
    // Only the leader patches the DCS, and only what differs.
    let mut follower = stale.settled();
    follower.dcs = Some(serde_json::json!({"ttl": 30}));
    assert!(follower.plan().actions.is_empty());
    let mut leader = Case::new(0, true)
        .member_of(&[0, 1, 2])
        .running(LocalRole::Primary, "running")
        .settled();
    let config = patroni_config(&leader.inputs, &m(0), &leader.app.cluster);
    leader.dcs = Some(config.dynamic.to_json());
    assert!(leader.plan().actions.is_empty(), "{:?}", leader.plan());
    let mut old = config.dynamic.to_json();
    old["synchronous_node_count"] = 2.into();
    old["postgresql"]["parameters"]["max_connections"] = "100".into();
    leader.dcs = Some(old);
    let p = leader.plan();
    assert_eq!(kinds(&p), ["patch-dcs"]);
    let Action::PatchDcs(patch) = &p.actions[0] else {
        unreachable!()
    };
    assert_eq!(patch["synchronous_node_count"], 1);
    assert_eq!(patch["postgresql"]["parameters"]["max_connections"], "120");
}

#[test]
fn replication_settings_follow_the_admitted_members() {
    let inputs = inputs(0);
    let one = patroni_config(&inputs, &m(0), &HaAppState::default());
    assert_eq!(one.etcd_members, [m(0)]);
    assert!(one.dynamic.replication.synchronous_mode);
    assert!(!one.strict);
    let three = HaAppState {
        members: vec![m(0), m(1), m(2)],
        ..Default::default()
    };
    let mut strict = inputs.clone();
    strict.options.strict = true;
    let config = patroni_config(&strict, &m(0), &three);
    assert_eq!(config.etcd_members, [m(0), m(1), m(2)]);
    assert_eq!(config.dynamic.replication.synchronous_node_count, 1);
    assert!(config.dynamic.replication.synchronous_mode_strict);
    assert!(config.strict, "the clone takes no slot in strict mode");
    let mut asynchronous = inputs;
    asynchronous.options.sync_node_count = SyncNodeCount::Asynchronous;
    assert!(
        !patroni_config(&asynchronous, &m(0), &three)
            .dynamic
            .replication
            .synchronous_mode
    );
}

const CLUSTER: &str = r#"{"members": [
  {"name": "postgresql-0", "role": "leader", "state": "running", "host": "198.18.0.10", "port": 5432, "timeline": 2},
  {"name": "postgresql-1", "role": "sync_standby", "state": "streaming", "host": "198.18.0.11", "port": 5432, "timeline": 2, "lag": 0},
  {"name": "postgresql-2", "role": "replica", "state": "streaming", "host": "198.18.0.12", "port": 5432, "timeline": 2, "lag": 0}
]}"#;

#[test]
fn the_topology_to_publish_comes_from_patroni_not_from_juju() {
    // Unit 2 is the Juju leader; Patroni's leader is unit 0.
    let mut c = Case::new(2, true)
        .member_of(&[0, 1, 2])
        .running(LocalRole::Replica, "streaming")
        .settled();
    c.cluster = Some(parse_cluster(CLUSTER).unwrap());
    let p = c.plan();
    assert_eq!(p.role, Role::Standby);
    assert_eq!(
        p.published,
        Some(Published {
            primary: Some(m(0)),
            standbys: vec![m(1), m(2)],
        })
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // Two members: the operator is told they cannot fail over safely.
    let mut two = Case::new(0, false)
        .member_of(&[0, 1])
        .running(LocalRole::Primary, "running")
        .settled();
    two.cluster = Some(
        parse_cluster(
            r#"{"members": [
          {"name": "postgresql-0", "role": "leader", "state": "running"},
          {"name": "postgresql-1", "role": "replica", "state": "streaming"}]}"#,
        )
        .unwrap(),
    );
    let p = two.plan();
    assert_eq!(p.role, Role::Primary);
    assert!(p.warnings.iter().any(|w| w.contains("two units")), "{p:?}");
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("no synchronous standby")),
        "{p:?}"
    );
    // No /cluster: nothing is published (the relations keep what they had).
    two.cluster = None;
    assert_eq!(two.plan().published, None);
}

#[test]
fn a_standby_that_does_not_stream_says_so() {
    // `/patroni` says `running` for every replica: `/cluster` decides.
    let mut c = Case::new(1, false)
        .member_of(&[0, 1])
        .running(LocalRole::Replica, "running")
        .settled();
    let cluster = |state: &str| {
        parse_cluster(&format!(
            r#"{{"members": [
          {{"name": "postgresql-0", "role": "leader", "state": "running"}},
          {{"name": "postgresql-1", "role": "replica", "state": "{state}"}}]}}"#
        ))
        .unwrap()
    };
    c.cluster = Some(cluster("streaming"));
    assert!(c.plan().problems.is_empty(), "{:?}", c.plan());
    c.cluster = Some(cluster("starting"));
    let p = c.plan();
    assert!(waiting(&p)[0].contains("does not stream"), "{p:?}");
    assert!(waiting(&p)[0].contains("starting"), "{p:?}");
    // 3.2.2 reports streaming: `running` for a replica means it does not.
    c.cluster = Some(cluster("running"));
    assert_eq!(waiting(&c.plan()).len(), 1);
}

#[test]
fn departing_stops_patroni_first_and_says_so_in_its_bag() {
    let mut c = Case::new(2, false)
        .member_of(&[0, 1, 2])
        .running(LocalRole::Replica, "streaming")
        .settled();
    c.departing = true;
    let p = c.plan();
    assert_eq!(kinds(&p), ["publish-unit", "stop-patroni"]);
    let Action::PublishUnit(bag) = &p.actions[0] else {
        unreachable!()
    };
    assert!(bag.departing);
    // Out of etcd: leave it.
    c.published.departing = true;
    c.local.patroni_running = false;
    c.local.listed_in_etcd = Some(false);
    assert_eq!(kinds(&c.plan()), ["leave-etcd"]);
    // Gone from both: nothing more, whatever the membership does meanwhile.
    c.local.etcd_running = false;
    c.local.etcd_record = EtcdRecord::None;
    c.local.patroni_config = Some(Secret::new("{\"old\": 1}".into()));
    c.app.cluster.members.retain(|x| x.unit != "postgresql/2");
    c.local.hba_block = Some(hba_block(&m(2), &c.app.cluster, false));
    let p = c.plan();
    assert!(p.actions.is_empty(), "{:?}", kinds(&p));
    assert_eq!(p.role, Role::Standby, "never serves clients again");
}

#[test]
fn a_member_that_lost_its_etcd_data_asks_to_be_readded() {
    let mut c = Case::new(1, false).member_of(&[0, 1, 2]).settled();
    c.local.etcd_running = false;
    c.local.etcd_record = EtcdRecord::None;
    let p = c.plan();
    let [Action::PublishUnit(bag)] = p.actions.as_slice() else {
        panic!("{:?}", kinds(&p))
    };
    assert!(bag.wants_readd);
    // Published: it stays asked for until the leader re-adds it.
    c.published.wants_readd = true;
    assert!(c.plan().actions.is_empty());
}

#[test]
fn hba_block_admits_members_the_joiner_and_itself_only() {
    let app = HaAppState {
        members: vec![m(2), m(0)],
        joining: Some(Joining {
            member: m(1),
            since: 1,
        }),
        system_identifier: None,
        etcd_tls: false,
    };
    let block = hba_block(&m(0), &app, false);
    let lines: Vec<&str> = block.lines().collect();
    assert_eq!(lines.len(), 6, "{block}");
    assert_eq!(
        lines[0],
        "host replication juju_replication 198.18.0.10/32 scram-sha-256"
    );
    assert_eq!(
        lines[5],
        "host postgres juju_rewind 198.18.0.12/32 scram-sha-256"
    );
    let v6 = Member::new("postgresql/9", "fd00::9".parse().unwrap());
    assert_eq!(
        hba_block(&v6, &HaAppState::default(), false),
        "host replication juju_replication fd00::9/128 scram-sha-256\n\
         host postgres juju_rewind fd00::9/128 scram-sha-256\n"
    );
    // With the internal CA, the same lines, TLS only.
    let tls = hba_block(&m(0), &app, true);
    assert_eq!(tls, block.replace("host ", "hostssl "));
    assert!(tls.lines().all(|l| l.starts_with("hostssl ")), "{tls}");
}

/// A unit whose TLS gains the internal CA rewrites its replication rules
/// as hostssl (and back without it).
#[test]
fn the_replication_rules_follow_the_peer_tls() {
    let mut c = Case::new(2, false).member_of(&[0, 1, 2]).settled();
    c.local.hba_block = Some(hba_block(&m(2), &c.app.cluster, false));
    c.inputs.patroni.peer_tls = Some(crate::ha::patroni_config::PeerTls {
        ca: "/etc/postgresql/16/main/tls/peers-ca.pem".into(),
        certificate: "/etc/postgresql/16/main/tls/cert.pem".into(),
        key: "/etc/postgresql/16/main/tls/key.pem".into(),
    });
    let want = hba_block(&m(2), &c.app.cluster, true);
    assert!(
        c.plan().actions.contains(&Action::WriteHba(want.clone())),
        "{:?}",
        c.plan().actions
    );
    c.local.hba_block = Some(want);
    assert!(!c
        .plan()
        .actions
        .iter()
        .any(|a| matches!(a, Action::WriteHba(_))));
}

#[test]
fn bags_round_trip_and_a_bad_app_bag_is_reported() {
    let bag = UnitBag {
        address: Some(addr(3)),
        ready: true,
        departing: false,
        founded: true,
        wants_readd: false,
    };
    let data = bag.to_data();
    assert_eq!(data[keys::DEPARTING], "", "unset flags delete their key");
    assert_eq!(UnitBag::from_data(&data), bag);
    let app = HaAppState {
        members: vec![m(0)],
        joining: None,
        system_identifier: Some("1".into()),
        etcd_tls: false,
    };
    let mut data = AppBag::cluster_data(&app);
    data.insert(keys::SECRETS.into(), "secret:xyz".into());
    let parsed = AppBag::from_data(&data);
    assert_eq!(parsed.cluster, app);
    assert_eq!(parsed.secrets_uri.as_deref(), Some("secret:xyz"));
    data.insert(keys::CLUSTER.into(), "{not json".into());
    let mut c = Case::new(1, false);
    c.app = AppBag::from_data(&data);
    let p = c.plan();
    assert!(p.actions.is_empty());
    assert!(blocked(&p)[0].contains(keys::CLUSTER), "{p:?}");
}

#[test]
fn secrets_round_trip_and_never_show() {
    let s = secrets();
    let content = s.to_content();
    assert_eq!(content.len(), SECRET_KEYS.len());
    let back = HaSecrets::from_content(&content).unwrap();
    assert_eq!(back.etcd_root.expose(), s.etcd_root.expose());
    assert_eq!(
        back.patroni.replication.expose(),
        s.patroni.replication.expose()
    );
    let mut missing = content.clone();
    missing.remove("rewind");
    assert!(HaSecrets::from_content(&missing).is_none());
    // A plan that writes patroni.yml shows no password when printed.
    let mut c = Case::new(1, false).member_of(&[0, 1]).settled();
    c.local.patroni_config = None;
    let shown = format!("{:?}", c.plan());
    assert!(shown.contains("WritePatroniConfig"), "{shown}");
    for p in content.values() {
        assert!(!shown.contains(p.expose().as_str()), "{shown}");
    }
}

#[test]
fn the_hba_block_goes_before_the_rejecting_rules_and_is_replaced_in_place() {
    let charm =
        "# written by the charm\nlocal all postgres peer map=juju_charm\nlocal all all peer\n\
                 hostssl app app 10.0.0.0/24 scram-sha-256\nhost all all 0.0.0.0/0 reject\n";
    assert_eq!(hba_block_in(charm), None);
    let one = with_hba_block(
        charm,
        "host replication juju_replication 1.2.3.4/32 scram-sha-256\n",
    );
    assert_eq!(
        one,
        format!(
            "# written by the charm\nlocal all postgres peer map=juju_charm\nlocal all all peer\n\
             {HBA_BEGIN}\nhost replication juju_replication 1.2.3.4/32 scram-sha-256\n{HBA_END}\n\
             hostssl app app 10.0.0.0/24 scram-sha-256\nhost all all 0.0.0.0/0 reject\n"
        )
    );
    assert_eq!(
        hba_block_in(&one).as_deref(),
        Some("host replication juju_replication 1.2.3.4/32 scram-sha-256\n")
    );
    let two = with_hba_block(&one, "x\ny\n");
    assert_eq!(hba_block_in(&two).as_deref(), Some("x\ny\n"));
    assert_eq!(two.matches(HBA_BEGIN).count(), 1);
    assert_eq!(with_hba_block(&two, "x\ny\n"), two, "idempotent");
    // A file with no host rule gets the block at its end.
    assert_eq!(
        with_hba_block("local all all peer\n", "z\n"),
        format!("local all all peer\n{HBA_BEGIN}\nz\n{HBA_END}\n")
    );
}

#[test]
fn a_diverged_standby_is_given_a_grace_then_set_aside_and_recloned() {
    use crate::ha::divergence::{DivergedFacts, Divergence, Noticed, REWIND_GRACE_SECS};
    let d = Divergence {
        timeline: 1,
        switchpoint: 0x5000060,
        replayed: 0x7000028,
    };
    let mut c = Case::new(1, false)
        .member_of(&[0, 1, 2])
        .running(LocalRole::Replica, "running")
        .settled();
    c.local.diverged = Some(DivergedFacts {
        divergence: d,
        data_dir: "/var/lib/postgresql/15/main".into(),
        wal_dir: Some("/srv/wal/15/main/pg_wal".into()),
        noticed: None,
        data_bytes: 1 << 30,
        free_bytes: 4 << 30,
        external_tablespaces: false,
    });
    // First sight: noted, waiting, nothing moved.
    let p = c.plan();
    assert_eq!(kinds(&p), ["note-divergence"]);
    assert!(waiting(&p)[0].contains("0/5000060"), "{p:?}");
    assert_eq!(p.role, Role::Standby);
    // Within the grace: waiting only.
    let noticed = |since| Noticed {
        divergence: d,
        since,
    };
    c.local.diverged.as_mut().unwrap().noticed = Some(noticed(NOW - 1));
    let p = c.plan();
    assert!(p.actions.is_empty(), "{:?}", kinds(&p));
    assert!(waiting(&p)[0].contains("re-cloning in"), "{p:?}");
    // Grace over: stop Patroni, set aside, start Patroni (which clones).
    c.local.diverged.as_mut().unwrap().noticed = Some(noticed(NOW - REWIND_GRACE_SECS));
    let p = c.plan();
    assert_eq!(kinds(&p), ["stop-patroni", "set-aside", "start-patroni"]);
    let Action::SetAsideDiverged(record) = &p.actions[1] else {
        unreachable!()
    };
    assert_eq!(
        record.data_aside,
        std::path::Path::new(&format!("/var/lib/postgresql/15/main.diverged-{NOW}"))
    );
    assert!(!record.done);
    // No room for a clone beside the kept data: blocked, nothing moved.
    c.local.diverged.as_mut().unwrap().free_bytes = 1 << 30;
    let p = c.plan();
    assert!(p.actions.is_empty(), "{:?}", kinds(&p));
    assert!(
        matches!(&p.problems[..], [Problem::Blocked(m)] if m.contains("MiB free")),
        "{p:?}"
    );
}

#[test]
fn an_interrupted_set_aside_is_finished_before_patroni_runs_and_a_kept_copy_is_shown() {
    use crate::ha::divergence::{Divergence, SetAside};
    let d = Divergence {
        timeline: 1,
        switchpoint: 0x5000060,
        replayed: 0x7000028,
    };
    let record = SetAside::new(
        std::path::Path::new("/var/lib/postgresql/15/main"),
        None,
        d,
        NOW - 10,
    );
    // Killed after the record, Patroni stopped: finish, then start it.
    let mut c = Case::new(1, false).member_of(&[0, 1, 2]).settled();
    c.local.standalone_running = false;
    c.local.disk = DataDisk::Empty;
    c.local.set_aside = Some((record.clone(), true));
    assert_eq!(kinds(&c.plan()), ["set-aside", "start-patroni"]);
    // Killed before Patroni stopped: stop it first.
    let mut running = c.running(LocalRole::Replica, "running");
    assert_eq!(
        kinds(&running.plan()),
        ["stop-patroni", "set-aside", "start-patroni"]
    );
    // Done: nothing to do; the kept copy is a warning while it is there.
    let done = SetAside {
        done: true,
        ..record
    };
    running.local.set_aside = Some((done.clone(), true));
    let p = running.plan();
    assert!(p.actions.is_empty(), "{:?}", kinds(&p));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("main.diverged-") && w.contains("pg_rewind")),
        "{p:?}"
    );
    running.local.set_aside = Some((done, false));
    assert!(running.plan().warnings.is_empty());
}
