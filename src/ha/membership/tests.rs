//! Table tests of the membership decisions: every rule of `leader_step` and
//! `unit_step`, including the orders a killed hook or a leader change leaves.

use super::*;
use crate::ha::Scheme;

const NOW: u64 = 1_000_000;

fn addr(n: u32) -> IpAddr {
    format!("198.18.0.{}", 10 + n).parse().unwrap()
}

fn m(n: u32) -> Member {
    Member::new(&format!("postgresql/{n}"), addr(n))
}

fn peer(n: u32) -> PeerUnit {
    PeerUnit {
        unit: format!("postgresql/{n}"),
        address: Some(addr(n)),
        ready: true,
        departing: false,
        founded: false,
        wants_readd: false,
    }
}

fn peers(ns: &[u32]) -> Vec<PeerUnit> {
    ns.iter().map(|&n| peer(n)).collect()
}

/// etcd member `n` (id 100 + n), started, voting.
fn e(n: u32) -> EtcdMember {
    EtcdMember {
        id: 100 + u64::from(n),
        name: m(n).name(),
        peer_urls: vec![m(n).etcd_peer_url(Scheme::Https)],
        is_learner: false,
    }
}

fn learner(n: u32, started: bool) -> EtcdMember {
    EtcdMember {
        is_learner: true,
        name: if started { m(n).name() } else { String::new() },
        ..e(n)
    }
}

fn etcd(members: Vec<EtcdMember>, down: &[u32]) -> EtcdView {
    let healthy = members
        .iter()
        .map(|m| m.id)
        .filter(|id| !down.iter().any(|d| 100 + u64::from(*d) == *id))
        .collect();
    EtcdView { members, healthy }
}

fn app(members: &[u32]) -> HaAppState {
    HaAppState {
        members: members.iter().map(|&n| m(n)).collect(),
        joining: None,
        system_identifier: Some("42".into()),
        etcd_tls: true,
    }
}

fn joining(mut a: HaAppState, n: u32, since: u64) -> HaAppState {
    a.joining = Some(Joining {
        member: m(n),
        since,
    });
    a
}

fn leader(a: &HaAppState, p: &[PeerUnit], view: Option<&EtcdView>) -> LeaderStep {
    leader_step(&LeaderView {
        me: "postgresql/0",
        app: a,
        peers: p,
        etcd: view,
        local_primary_sysid: Some(42),
        now: NOW,
    })
}

#[test]
fn founding() {
    let empty = HaAppState::default();
    assert_eq!(leader(&empty, &peers(&[0, 1]), None), LeaderStep::Found);
    // This unit founded: admit it once its etcd answers.
    let mut p = peers(&[0, 1]);
    p[0].founded = true;
    let waiting = leader(&empty, &p, None);
    assert!(
        matches!(waiting, LeaderStep::Wait(ref w) if w.contains("postgresql/0")),
        "{waiting:?}"
    );
    let view = etcd(vec![e(0)], &[]);
    assert_eq!(
        leader(&empty, &p, Some(&view)),
        LeaderStep::Publish(HaAppState {
            members: vec![m(0)],
            joining: None,
            system_identifier: None,
            etcd_tls: true,
        })
    );
    // A founder without the internal CA (no Juju secrets) speaks HTTP,
    // and so does the cluster.
    let plain = etcd(
        vec![EtcdMember {
            peer_urls: vec![m(0).etcd_peer_url(Scheme::Http)],
            ..e(0)
        }],
        &[],
    );
    assert_eq!(
        leader(&empty, &p, Some(&plain)),
        LeaderStep::Publish(HaAppState {
            members: vec![m(0)],
            ..Default::default()
        })
    );
    // An earlier leader's unit founded: the new leader never founds another.
    let mut p = peers(&[0, 1, 2]);
    p[2].founded = true;
    let view = etcd(vec![e(2)], &[]);
    assert_eq!(
        leader(&empty, &p, Some(&view)),
        LeaderStep::Publish(HaAppState {
            members: vec![m(2)],
            etcd_tls: true,
            ..Default::default()
        })
    );
    // The system identifier follows once Patroni runs as primary there.
    let mut founded = app(&[0]);
    founded.system_identifier = None;
    let view = etcd(vec![e(0)], &[]);
    assert_eq!(
        leader(&founded, &peers(&[0]), Some(&view)),
        LeaderStep::Publish(app(&[0]))
    );
}

#[test]
fn adding_one_learner_at_a_time() {
    let a = app(&[0]);
    let one = etcd(vec![e(0)], &[]);
    // Lowest unit number first (numerically: 2 before 10).
    let mut p = peers(&[0, 10, 2]);
    assert_eq!(leader(&a, &p, Some(&one)), LeaderStep::AddLearner(m(2)));
    // Not ready, no address, departing: not added.
    p[2].ready = false;
    p[1].address = None;
    assert_eq!(leader(&a, &p, Some(&one)), LeaderStep::Idle);
    p[1].address = Some(addr(10));
    p[1].departing = true;
    assert_eq!(leader(&a, &p, Some(&one)), LeaderStep::Idle);

    let p = peers(&[0, 1, 2]);
    // The learner is there: record it (also after a lost publication).
    let with_learner = etcd(vec![e(0), learner(1, false)], &[]);
    assert_eq!(
        leader(&a, &p, Some(&with_learner)),
        LeaderStep::Publish(joining(a.clone(), 1, NOW))
    );
    // Recorded and not started yet: wait; no second learner meanwhile.
    let j = joining(a.clone(), 1, NOW - 10);
    let step = leader(&j, &p, Some(&with_learner));
    assert!(
        matches!(step, LeaderStep::Wait(ref w) if w.contains("postgresql/1")),
        "{step:?}"
    );
    // Started: promote.
    let started = etcd(vec![e(0), learner(1, true)], &[]);
    assert_eq!(
        leader(&j, &p, Some(&started)),
        LeaderStep::Promote {
            id: 101,
            unit: "postgresql/1".into()
        }
    );
    // Promoted: admitted, joining cleared; then the next one.
    let promoted = etcd(vec![e(0), e(1)], &[]);
    let admitted = LeaderStep::Publish(app(&[0, 1]));
    assert_eq!(leader(&j, &p, Some(&promoted)), admitted);
    assert_eq!(
        leader(&app(&[0, 1]), &p, Some(&promoted)),
        LeaderStep::AddLearner(m(2))
    );
    // A promotion whose publication was lost is adopted the same way.
    assert_eq!(leader(&a, &p, Some(&promoted)), admitted);
}

#[test]
fn learners_that_never_start_or_belong_to_no_one_are_removed() {
    let p = peers(&[0, 1]);
    let view = etcd(vec![e(0), learner(1, false)], &[]);
    let stale = joining(app(&[0]), 1, NOW - LEARNER_START_TIMEOUT_S - 1);
    assert!(matches!(
        leader(&stale, &p, Some(&view)),
        LeaderStep::Remove { id: 101, .. }
    ));
    // The learner's unit left, or never was ours.
    let gone = etcd(vec![e(0), learner(5, true)], &[]);
    assert!(matches!(
        leader(&app(&[0]), &p, Some(&gone)),
        LeaderStep::Remove { id: 105, .. }
    ));
    let mut departing = peers(&[0, 1]);
    departing[1].departing = true;
    assert!(matches!(
        leader(&joining(app(&[0]), 1, NOW), &departing, Some(&view)),
        LeaderStep::Remove { id: 101, .. }
    ));
    // A recorded joiner whose learner is gone: cleared.
    let only = etcd(vec![e(0)], &[]);
    assert_eq!(
        leader(&joining(app(&[0]), 1, NOW), &p, Some(&only)),
        LeaderStep::Publish(app(&[0]))
    );
}

#[test]
fn removals_keep_a_majority() {
    let three = app(&[0, 1, 2]);
    let all_up = etcd(vec![e(0), e(1), e(2)], &[]);
    let mut p = peers(&[0, 1, 2]);
    p[2].departing = true;
    assert!(matches!(
        leader(&three, &p, Some(&all_up)),
        LeaderStep::Remove { id: 102, .. }
    ));
    // Never shrink to two while one of those is down.
    let one_down = etcd(vec![e(0), e(1), e(2)], &[1]);
    let step = leader(&three, &p, Some(&one_down));
    assert!(
        matches!(step, LeaderStep::Wait(ref w) if w.contains("postgresql-1") && w.contains("majority")),
        "{step:?}"
    );
    // The leaving member itself down is fine: the others are up.
    let leaver_down = etcd(vec![e(0), e(1), e(2)], &[2]);
    assert!(matches!(
        leader(&three, &p, Some(&leaver_down)),
        LeaderStep::Remove { id: 102, .. }
    ));
    // Absent from the relation but answering: maybe a new leader that has
    // not seen it join yet, so nothing is removed.
    let absent = peers(&[0, 1]);
    assert_eq!(leader(&three, &absent, Some(&all_up)), LeaderStep::Idle);
    assert!(matches!(
        leader(&three, &absent, Some(&leaver_down)),
        LeaderStep::Remove { id: 102, .. }
    ));
    // The last member is never removed.
    let mut alone = peers(&[0]);
    alone[0].departing = true;
    let step = leader(&app(&[0]), &alone, Some(&etcd(vec![e(0)], &[])));
    assert!(
        matches!(step, LeaderStep::Wait(ref w) if w.contains("last")),
        "{step:?}"
    );
    // A member asking to be re-added goes out first.
    let mut readd = peers(&[0, 1, 2]);
    readd[1].wants_readd = true;
    assert!(matches!(
        leader(&three, &readd, Some(&all_up)),
        LeaderStep::Remove { id: 101, .. }
    ));
}

#[test]
fn the_bag_follows_etcd() {
    // Removed from etcd, publication lost: dropped from the bag.
    let p = peers(&[0, 1, 2]);
    let view = etcd(vec![e(0), e(1)], &[]);
    assert_eq!(
        leader(&app(&[0, 1, 2]), &p, Some(&view)),
        LeaderStep::Publish(app(&[0, 1]))
    );
    // A voting member that is no unit of ours is removed, when safe.
    let stranger = etcd(vec![e(0), e(1), e(7)], &[]);
    assert!(matches!(
        leader(&app(&[0, 1]), &p, Some(&stranger)),
        LeaderStep::Remove { id: 107, .. }
    ));
    let stranger_down = etcd(vec![e(0), e(1), e(7)], &[1]);
    assert!(matches!(
        leader(&app(&[0, 1]), &p, Some(&stranger_down)),
        LeaderStep::Wait(_)
    ));
    assert!(matches!(
        leader(&app(&[0]), &p, None),
        LeaderStep::Wait(ref w) if w.contains("no etcd")
    ));
    assert_eq!(
        leader(
            &app(&[0, 1, 2]),
            &p,
            Some(&etcd(vec![e(0), e(1), e(2)], &[]))
        ),
        LeaderStep::Idle
    );
}

fn unit(app: &HaAppState) -> UnitView<'_> {
    static ME: std::sync::OnceLock<Member> = std::sync::OnceLock::new();
    UnitView {
        me: ME.get_or_init(|| m(1)),
        may_found: false,
        app,
        etcd_running: true,
        etcd_record: EtcdRecord::Joined { since: 7 },
        etcd_auth_enabled: None,
        patroni_running: false,
        disk: DataDisk::Empty,
        departing: false,
        listed_in_etcd: Some(true),
        etcd_tls_ready: true,
    }
}

#[test]
fn a_founder_starts_a_new_etcd_then_adopts_its_cluster() {
    let empty = HaAppState::default();
    let wait = unit_step(&unit(&empty));
    assert!(matches!(wait, UnitStep::Wait(_)), "{wait:?}");
    let founder = |etcd_running, record, auth, disk| UnitView {
        may_found: true,
        etcd_running,
        etcd_record: record,
        etcd_auth_enabled: auth,
        disk,
        ..unit(&empty)
    };
    assert_eq!(
        unit_step(&founder(false, EtcdRecord::None, None, DataDisk::Empty)),
        UnitStep::StartEtcd(EtcdStart {
            initial_cluster: vec![m(1)],
            state: InitialState::New,
            wipe_first: false,
            record: EtcdRecord::Founded,
            tls: true,
        })
    );
    // Without the internal CA's certificate, a founder founds over HTTP.
    let UnitStep::StartEtcd(plain) = unit_step(&UnitView {
        etcd_tls_ready: false,
        ..founder(false, EtcdRecord::None, None, DataDisk::Empty)
    }) else {
        panic!()
    };
    assert!(!plain.tls);
    let UnitStep::StartEtcd(again) =
        unit_step(&founder(false, EtcdRecord::Founded, None, DataDisk::Empty))
    else {
        panic!()
    };
    assert!(!again.wipe_first, "its own data is kept");
    let UnitStep::StartEtcd(old) =
        unit_step(&founder(false, EtcdRecord::Unknown, None, DataDisk::Empty))
    else {
        panic!()
    };
    assert!(old.wipe_first, "data of an unknown membership goes");
    assert_eq!(
        unit_step(&founder(
            true,
            EtcdRecord::Founded,
            Some(false),
            DataDisk::Empty
        )),
        UnitStep::EnableEtcdAuth
    );
    assert_eq!(
        unit_step(&founder(
            true,
            EtcdRecord::Founded,
            Some(true),
            DataDisk::Empty
        )),
        UnitStep::CreateCluster
    );
    let existing = DataDisk::Cluster {
        path: "/srv/pgdata/15/main".into(),
        system_identifier: 9,
    };
    assert_eq!(
        unit_step(&founder(
            true,
            EtcdRecord::Founded,
            Some(true),
            existing.clone()
        )),
        UnitStep::AdoptIntoPatroni
    );
    // Admitted (bag published), before the system identifier: still adopting.
    let mut published = app(&[1]);
    published.system_identifier = None;
    let view = UnitView {
        etcd_record: EtcdRecord::Founded,
        etcd_auth_enabled: Some(true),
        disk: existing,
        ..unit(&published)
    };
    assert_eq!(unit_step(&view), UnitStep::AdoptIntoPatroni);
}

#[test]
fn a_joiner_starts_etcd_only_as_the_recorded_learner() {
    let a = app(&[0]);
    let not_yet = UnitView {
        etcd_running: false,
        etcd_record: EtcdRecord::None,
        ..unit(&a)
    };
    assert!(
        matches!(unit_step(&not_yet), UnitStep::Wait(ref w) if w.contains("one unit at a time"))
    );
    let j = joining(app(&[0]), 1, 500);
    let start = UnitView {
        etcd_running: false,
        etcd_record: EtcdRecord::None,
        ..unit(&j)
    };
    assert_eq!(
        unit_step(&start),
        UnitStep::StartEtcd(EtcdStart {
            initial_cluster: vec![m(0)],
            state: InitialState::Existing,
            wipe_first: false,
            record: EtcdRecord::Joined { since: 500 },
            tls: true,
        })
    );
    // A cluster on TLS waits for the joiner's certificate; one founded on
    // HTTP (before etcd spoke TLS) is joined over HTTP, certificate or not.
    let no_certificate = UnitView {
        etcd_tls_ready: false,
        ..start.clone()
    };
    assert!(
        matches!(unit_step(&no_certificate), UnitStep::Wait(ref w) if w.contains("internal CA")),
        "{:?}",
        unit_step(&no_certificate)
    );
    let plain = HaAppState {
        etcd_tls: false,
        ..j.clone()
    };
    for ready in [true, false] {
        let UnitStep::StartEtcd(s) = unit_step(&UnitView {
            etcd_tls_ready: ready,
            app: &plain,
            ..start.clone()
        }) else {
            panic!()
        };
        assert!(!s.tls);
    }
    for (record, wipe) in [
        (EtcdRecord::Joined { since: 500 }, false),
        (EtcdRecord::Joined { since: 400 }, true),
        (EtcdRecord::Founded, true),
        (EtcdRecord::Unknown, true),
    ] {
        let view = UnitView {
            etcd_record: record.clone(),
            ..start.clone()
        };
        let UnitStep::StartEtcd(s) = unit_step(&view) else {
            panic!()
        };
        assert_eq!(s.wipe_first, wipe, "{record:?}");
    }
    let running = UnitView {
        etcd_running: true,
        ..start
    };
    assert!(matches!(unit_step(&running), UnitStep::Wait(ref w) if w.contains("promote")));
}

#[test]
fn a_member_checks_its_disk_before_patroni() {
    let a = app(&[0, 1]);
    let with = |disk| UnitView { disk, ..unit(&a) };
    assert_eq!(
        unit_step(&with(DataDisk::Empty)),
        UnitStep::CloneWithPatroni
    );
    assert_eq!(
        unit_step(&with(DataDisk::Fresh {
            path: "/srv/pgdata/15/main".into()
        })),
        UnitStep::CloneWithPatroni
    );
    assert_eq!(
        unit_step(&with(DataDisk::Cluster {
            path: "/srv/pgdata/15/main".into(),
            system_identifier: 42
        })),
        UnitStep::StartPatroni
    );
    let UnitStep::Blocked(other) = unit_step(&with(DataDisk::Cluster {
        path: "/srv/pgdata/15/main".into(),
        system_identifier: 7,
    })) else {
        panic!()
    };
    assert!(
        other.starts_with("/srv/pgdata/15/main holds another cluster (system identifier 7")
            && other.contains("42"),
        "{other}"
    );
    let UnitStep::Blocked(unusable) = unit_step(&with(DataDisk::Unusable {
        path: "/srv/pgdata/15/main".into(),
        reason: "no global/pg_control".into(),
    })) else {
        panic!()
    };
    assert!(
        unusable.starts_with("/srv/pgdata/15/main cannot be used"),
        "{unusable}"
    );
    // Before the cluster's first Patroni runs, members other than the founder wait.
    let mut early = app(&[0, 1]);
    early.system_identifier = None;
    assert!(matches!(unit_step(&unit(&early)), UnitStep::Wait(_)));
    let running = UnitView {
        patroni_running: true,
        ..unit(&a)
    };
    assert_eq!(unit_step(&running), UnitStep::Running);
}

#[test]
fn a_member_restarts_its_etcd_or_asks_to_be_readded() {
    let a = app(&[0, 1]);
    let down = UnitView {
        etcd_running: false,
        ..unit(&a)
    };
    assert_eq!(
        unit_step(&down),
        UnitStep::StartEtcd(EtcdStart {
            initial_cluster: vec![m(0), m(1)],
            state: InitialState::Existing,
            wipe_first: false,
            record: EtcdRecord::Joined { since: 7 },
            tls: true,
        })
    );
    let lost = UnitView {
        etcd_record: EtcdRecord::None,
        ..down
    };
    assert_eq!(unit_step(&lost), UnitStep::RequestReadd);
}

#[test]
fn a_departing_unit_stops_patroni_then_leaves_etcd_once_removed() {
    let a = app(&[0, 1]);
    let leaving = |patroni_running, listed, etcd_running| UnitView {
        departing: true,
        patroni_running,
        listed_in_etcd: listed,
        etcd_running,
        ..unit(&a)
    };
    assert_eq!(
        unit_step(&leaving(true, Some(true), true)),
        UnitStep::StopPatroni
    );
    assert!(matches!(
        unit_step(&leaving(false, Some(true), true)),
        UnitStep::Wait(ref w) if w.contains("remove this unit")
    ));
    assert!(matches!(
        unit_step(&leaving(false, None, true)),
        UnitStep::Wait(_)
    ));
    assert_eq!(
        unit_step(&leaving(false, Some(false), true)),
        UnitStep::LeaveEtcd
    );
    assert_eq!(
        unit_step(&leaving(false, Some(false), false)),
        UnitStep::LeaveEtcd
    );
    let gone = UnitView {
        etcd_record: EtcdRecord::None,
        ..leaving(false, Some(false), false)
    };
    assert_eq!(unit_step(&gone), UnitStep::Running);
}
