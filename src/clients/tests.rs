//! The shell's decisions, tested through its seam: a fake Juju (the
//! relations and their bags, leadership), a fake server (what was created,
//! whose login was taken back) and an in-memory password store, over hook
//! sequences that only the integration tests reached before: a relation
//! served before the leader issued its password, leader-only writes to the
//! application bag, a user kept because another relation still uses it,
//! the departing unit's `-broken` hooks, and a revoke that fails and is
//! retried.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

use super::objects::{ObjectsRequest, Server};
use super::secrets::SecretTools;
use super::*;
use crate::credentials::{Entry, Issue, PasswordStore};
use crate::juju::SecretUri;
use crate::juju::{RelationData, ToolError};
use crate::relations::postgresql_client::secrets::OwnedSecret;
use crate::relations::sql::Name;
use crate::relations::tenancy::revocation::StoredBinding;
use crate::secret::Secret;
use crate::state::relations::Condition;

/// One relation as Juju holds it.
#[derive(Default)]
struct FakeRelation {
    remote_app: String,
    /// The remote units' bags.
    units: BTreeMap<String, RelationData>,
    /// This unit's bag and this application's bag.
    unit_bag: RelationData,
    app_bag: RelationData,
}

#[derive(Default)]
struct FakeJuju {
    leader: bool,
    relations: RefCell<BTreeMap<RelationId, FakeRelation>>,
    /// Every call that writes, in order.
    writes: RefCell<Vec<String>>,
}

impl FakeJuju {
    /// Relates `(relation id, remote app, its unit, the unit's egress-subnets)`.
    fn relate(&self, relations: &[(&str, &str, &str, &str)]) {
        for (id, app, unit, subnet) in relations {
            let bag: RelationData = [("egress-subnets".to_string(), subnet.to_string())].into();
            self.relations.borrow_mut().insert(
                id.parse().unwrap(),
                FakeRelation {
                    remote_app: app.to_string(),
                    units: [(unit.to_string(), bag)].into(),
                    ..FakeRelation::default()
                },
            );
        }
    }

    fn unrelate(&self, id: &str) {
        self.relations.borrow_mut().remove(&id.parse().unwrap());
    }

    fn with<T>(
        &self,
        id: &RelationId,
        f: impl FnOnce(&mut FakeRelation) -> T,
    ) -> Result<T, ToolError> {
        match self.relations.borrow_mut().get_mut(id) {
            Some(relation) => Ok(f(relation)),
            None => Err(ToolError::failed_for_tests(
                "relation-get",
                "relation not found",
            )),
        }
    }

    fn unit_bag(&self, id: &str) -> RelationData {
        self.with(&id.parse().unwrap(), |r| r.unit_bag.clone())
            .unwrap()
    }

    fn app_bag(&self, id: &str) -> RelationData {
        self.with(&id.parse().unwrap(), |r| r.app_bag.clone())
            .unwrap()
    }
}

/// A `relation-set`: empty values delete.
fn merge(bag: &mut RelationData, data: &RelationData) {
    for (key, value) in data {
        if value.is_empty() {
            bag.remove(key);
        } else {
            bag.insert(key.clone(), value.clone());
        }
    }
}

impl Juju for FakeJuju {
    fn relation_ids(&self, endpoint: &str) -> Result<Vec<RelationId>, ToolError> {
        Ok(self
            .relations
            .borrow()
            .keys()
            .filter(|id| id.endpoint() == endpoint)
            .cloned()
            .collect())
    }

    fn relation_list(&self, relation: &RelationId) -> Result<Vec<String>, ToolError> {
        self.with(relation, |r| r.units.keys().cloned().collect())
    }

    fn relation_remote_app(&self, relation: &RelationId) -> Result<Option<String>, ToolError> {
        self.with(relation, |r| Some(r.remote_app.clone()))
    }

    fn relation_get(&self, relation: &RelationId, unit: &str) -> Result<RelationData, ToolError> {
        self.with(relation, |r| {
            if unit == UNIT {
                r.unit_bag.clone()
            } else {
                r.units.get(unit).cloned().unwrap_or_default()
            }
        })
    }

    fn relation_get_app(
        &self,
        relation: &RelationId,
        app: &str,
    ) -> Result<RelationData, ToolError> {
        self.with(relation, |r| {
            if app == "postgresql" {
                r.app_bag.clone()
            } else {
                RelationData::new()
            }
        })
    }

    fn relation_set(&self, relation: &RelationId, data: &RelationData) -> Result<(), ToolError> {
        self.writes
            .borrow_mut()
            .push(format!("relation-set -r {relation}"));
        self.with(relation, |r| merge(&mut r.unit_bag, data))
    }

    fn relation_set_app(
        &self,
        relation: &RelationId,
        data: &RelationData,
    ) -> Result<(), ToolError> {
        if !self.leader {
            // Juju refuses it: only the leader writes the application bag.
            return Err(ToolError::failed_for_tests(
                "relation-set",
                "not the leader",
            ));
        }
        self.writes
            .borrow_mut()
            .push(format!("relation-set -r {relation} --app"));
        self.with(relation, |r| merge(&mut r.app_bag, data))
    }

    fn is_leader(&self) -> Result<bool, ToolError> {
        Ok(self.leader)
    }

    fn ingress_address(&self, _: &RelationId) -> Result<String, ToolError> {
        Ok("10.1.0.5".into())
    }
}

/// The server: what it was asked to create and to take back.
/// Users to renew: none in these tests.
static NO_RENEWAL: BTreeSet<String> = BTreeSet::new();
static NO_TLS: crate::relations::postgresql_client::plan::Tls =
    crate::relations::postgresql_client::plan::Tls {
        enabled: false,
        ca: None,
    };

/// The `pgsql` relations these tests serve never touch Juju secrets: any
/// call fails the relation, which the tests would see.
struct PgsqlHasNoSecrets;

impl SecretTools for PgsqlHasNoSecrets {
    fn find(&self, label: &str) -> Result<Option<OwnedSecret>> {
        anyhow::bail!("pgsql looked up secret {label}")
    }
    fn latest(&self, label: &str) -> Result<Option<(SecretUri, u32)>> {
        anyhow::bail!("pgsql looked up secret {label}")
    }
    fn create(&self, label: &str, _: &Secret<RelationData>) -> Result<SecretUri> {
        anyhow::bail!("pgsql created secret {label}")
    }
    fn update(&self, uri: &SecretUri, _: &Secret<RelationData>) -> Result<()> {
        anyhow::bail!("pgsql updated secret {uri}")
    }
    fn grant(&self, uri: &SecretUri, _: &RelationId) -> Result<()> {
        anyhow::bail!("pgsql granted secret {uri}")
    }
    fn revoke(&self, uri: &SecretUri, _: &RelationId) -> Result<()> {
        anyhow::bail!("pgsql revoked secret {uri}")
    }
    fn remove(&self, uri: &SecretUri) -> Result<()> {
        anyhow::bail!("pgsql removed secret {uri}")
    }
}

#[derive(Default)]
struct FakeServer {
    /// Users whose objects were ensured, by relation.
    ensured: RefCell<Vec<(String, String)>>,
    revoked: RefCell<Vec<String>>,
    /// Retired logins (`database` relations' after a rotation).
    disabled: RefCell<Vec<String>>,
    /// The next revokes fail (a consumer holds a lock).
    failing_revokes: RefCell<usize>,
    /// Relations whose request the server's holdings refuse.
    refuse: RefCell<BTreeSet<String>>,
}

impl Server for FakeServer {
    fn ensure_objects(&self, request: &ObjectsRequest) -> Result<Option<String>> {
        let relation = request.relation.to_string();
        if self.refuse.borrow().contains(&relation) {
            return Ok(Some(format!(
                "{relation}: database belongs to another consumer"
            )));
        }
        self.ensured
            .borrow_mut()
            .push((relation, request.objects.user.to_string()));
        Ok(None)
    }

    fn revoke_login(&self, user: &str) -> Result<()> {
        let mut failing = self.failing_revokes.borrow_mut();
        if *failing > 0 {
            *failing -= 1;
            anyhow::bail!("canceling statement due to lock timeout");
        }
        self.revoked.borrow_mut().push(user.to_string());
        Ok(())
    }

    fn disable_login(&self, user: &str) -> Result<()> {
        self.disabled.borrow_mut().push(user.to_string());
        Ok(())
    }
}

/// The password store (a Juju secret per user in the charm).
#[derive(Default)]
struct FakePasswords {
    stored: RefCell<BTreeMap<String, Entry>>,
}

impl PasswordStore for FakePasswords {
    fn read(&self, user: &Name) -> Result<Entry> {
        Ok(self
            .stored
            .borrow()
            .get(user.as_str())
            .cloned()
            .unwrap_or(Entry {
                password: None,
                binding: StoredBinding::Missing,
                alternate: None,
                logins: None,
            }))
    }

    fn write(&self, user: &Name, issue: &Issue) -> Result<()> {
        self.stored
            .borrow_mut()
            .insert(user.to_string(), issue.entry.clone());
        Ok(())
    }
}

const UNIT: &str = "postgresql/0";

/// A unit's world: Juju, the server, the password store, the state and
/// charm directories (removed when dropped).
struct World {
    role: Role,
    juju: FakeJuju,
    server: FakeServer,
    passwords: FakePasswords,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

impl World {
    fn relate(&self, relations: &[(&str, &str, &str, &str)]) {
        self.juju.relate(relations);
    }

    /// The leader's world, with `relations` ([`FakeJuju::relate`]).
    fn leader_of(relations: &[(&str, &str, &str, &str)]) -> Self {
        let world = World::new(true);
        world.relate(relations);
        world
    }

    fn new(leader: bool) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pg-charm-clients-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("charm")).unwrap();
        World {
            role: Role::Standalone,
            juju: FakeJuju {
                leader,
                ..FakeJuju::default()
            },
            server: FakeServer::default(),
            passwords: FakePasswords::default(),
            dir,
        }
    }

    /// The context of `hook` (`db-relation-changed`, `update-status`...)
    /// about `relation`, as Juju sets it.
    fn context(
        &self,
        hook: &str,
        relation: Option<(&str, &str)>,
        departing: Option<&str>,
    ) -> HookContext {
        let charm_dir = self.dir.join("charm").display().to_string();
        let mut vars: BTreeMap<&str, String> = [
            ("JUJU_DISPATCH_PATH", format!("hooks/{hook}")),
            ("JUJU_UNIT_NAME", UNIT.to_string()),
            ("JUJU_CHARM_DIR", charm_dir),
            ("JUJU_VERSION", "3.6.1".to_string()),
        ]
        .into();
        if let Some((id, app)) = relation {
            vars.insert("JUJU_RELATION_ID", id.to_string());
            vars.insert("JUJU_REMOTE_APP", app.to_string());
        }
        if let Some(unit) = departing {
            vars.insert("JUJU_DEPARTING_UNIT", unit.to_string());
        }
        HookContext::from_vars(|name| vars.get(name).cloned(), "").unwrap()
    }

    fn clients<'a>(&'a self, context: &'a HookContext, state: &'a StateDir) -> Clients<'a> {
        Clients {
            context,
            state,
            port: 5432,
            major: 16,
            role: &self.role,
            version: "16.4",
            tls: &NO_TLS,
            refresh_all: false,
            renew: &NO_RENEWAL,
            io: Io {
                juju: &self.juju,
                secrets: &PgsqlHasNoSecrets,
                server: &self.server,
                passwords: &self.passwords,
            },
        }
    }

    fn state(&self) -> StateDir {
        StateDir::at(&self.dir.join("state"))
    }

    /// Runs `hook` and serves the relations, as the converge does.
    fn serve(&self, hook: &str, relation: Option<(&str, &str)>) -> ClientsOutcome {
        let context = self.context(hook, relation, None);
        let state = self.state();
        self.clients(&context, &state).serve(&options()).unwrap()
    }

    fn revoked(&self) -> Vec<String> {
        self.server.revoked.borrow().clone()
    }

    fn condition(&self, id: &str) -> Option<Condition> {
        results::load(&self.state()).get(id).map(|s| s.condition)
    }
}

fn options() -> ClientOptions {
    crate::options::ClusterOptions::from_config(&crate::options::test_config(&[]))
        .unwrap()
        .clients
}

fn cidrs(outcome: &ClientsOutcome) -> Vec<(String, Vec<String>)> {
    outcome
        .access
        .iter()
        .map(|a| {
            (
                a.relation.to_string(),
                a.cidrs.iter().map(|c| c.to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn a_relation_waits_for_the_leaders_password_and_only_the_leader_writes_the_app_bag() {
    // relation-changed on a follower before the leader issued anything.
    let follower = World::new(false);
    follower.relate(&[("db:1", "app", "app/0", "10.2.0.8/32")]);
    let outcome = follower.serve("db-relation-changed", Some(("db:1", "app")));
    assert_eq!(outcome.problems.len(), 1);
    assert!(outcome.problems[0].is_waiting(), "{:?}", outcome.problems);
    assert!(outcome.problems[0]
        .message()
        .contains("waiting for the leader to issue its credentials"));
    assert!(outcome.access.is_empty());
    assert!(follower.juju.writes.borrow().is_empty());
    assert_eq!(follower.condition("db:1"), Some(Condition::Waiting));

    // The leader issues the password, publishes to both bags, grants access.
    let leader = World::new(true);
    leader.relate(&[("db:1", "app", "app/0", "10.2.0.8/32")]);
    let outcome = leader.serve("db-relation-changed", Some(("db:1", "app")));
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert_eq!(
        cidrs(&outcome),
        [("db:1".to_string(), vec!["10.2.0.8/32".to_string()])]
    );
    assert_eq!(
        *leader.juju.writes.borrow(),
        ["relation-set -r db:1", "relation-set -r db:1 --app"]
    );
    assert_eq!(leader.juju.unit_bag("db:1"), leader.juju.app_bag("db:1"));
    assert!(leader.juju.unit_bag("db:1").contains_key("password"));

    // Once stored, the follower serves it too, writing its own bag only.
    *follower.passwords.stored.borrow_mut() = leader.passwords.stored.borrow().clone();
    let outcome = follower.serve("update-status", None);
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert_eq!(*follower.juju.writes.borrow(), ["relation-set -r db:1"]);
    assert_eq!(
        follower.juju.unit_bag("db:1").get("password"),
        leader.juju.unit_bag("db:1").get("password")
    );
    // Nothing changed: a second hook writes nothing.
    follower.serve("update-status", None);
    assert_eq!(follower.juju.writes.borrow().len(), 1);
}

#[test]
fn a_removed_relations_user_is_kept_while_another_relation_still_uses_it() {
    let world = World::leader_of(&[
        ("db:1", "app", "app/0", "10.2.0.8/32"),
        ("db:2", "app", "app/1", "10.2.0.9/32"),
    ]);
    world.serve("update-status", None);
    assert_eq!(world.server.ensured.borrow().len(), 2);

    // db:2 breaks: juju_app still serves db:1.
    world.serve("db-relation-broken", Some(("db:2", "app")));
    world.juju.unrelate("db:2");
    assert!(world.revoked().is_empty());
    assert_eq!(world.condition("db:2"), None);

    // db:1 breaks too: now its login goes.
    let outcome = world.serve("db-relation-broken", Some(("db:1", "app")));
    assert_eq!(world.revoked(), ["juju_app"]);
    assert!(outcome.access.is_empty());
}

#[test]
fn the_departing_units_broken_hooks_revoke_nothing() {
    let world = World::new(false);
    *world.passwords.stored.borrow_mut() = {
        let leader = World::new(true);
        leader.relate(&[("db:1", "app", "app/0", "10.2.0.8/32")]);
        leader.serve("update-status", None);
        let stored = leader.passwords.stored.borrow().clone();
        stored
    };
    world.relate(&[("db:1", "app", "app/0", "10.2.0.8/32")]);
    world.serve("update-status", None);

    // This unit departs (scale down): its -broken hooks follow.
    let context = world.context("db-relation-departed", Some(("db:1", "app")), Some(UNIT));
    let state = world.state();
    world.clients(&context, &state).serve(&options()).unwrap();
    world.serve("db-relation-broken", Some(("db:1", "app")));
    assert!(
        world.revoked().is_empty(),
        "the remaining units still serve it"
    );

    // Another unit departing marks nothing: a -broken then revokes.
    let other = World::new(false);
    *other.passwords.stored.borrow_mut() = world.passwords.stored.borrow().clone();
    other.relate(&[("db:1", "app", "app/0", "10.2.0.8/32")]);
    other.serve("update-status", None);
    let context = other.context("db-relation-departed", Some(("db:1", "app")), Some("app/0"));
    let state = other.state();
    other.clients(&context, &state).serve(&options()).unwrap();
    other.serve("db-relation-broken", Some(("db:1", "app")));
    assert_eq!(other.revoked(), ["juju_app"]);
}

#[test]
fn a_broken_relation_loses_its_login_while_the_unit_is_blocked_and_a_failed_revoke_is_retried() {
    let world = World::new(true);
    world.relate(&[("db:1", "app", "app/0", "10.2.0.8/32")]);
    world.serve("update-status", None);

    // -broken while the converge is blocked (bad config): only
    // revoke_removed runs. The first revoke fails: the relation stays,
    // failed, and the next hook tries again.
    *world.server.failing_revokes.borrow_mut() = 1;
    world.juju.unrelate("db:1");
    let context = world.context("db-relation-broken", Some(("db:1", "app")), None);
    let state = world.state();
    world.clients(&context, &state).revoke_removed().unwrap();
    assert!(world.revoked().is_empty());
    assert_eq!(world.condition("db:1"), Some(Condition::Failed));
    assert!(needs_retry(&state));
    assert!(cached_access(&state).is_empty(), "no access while removed");

    let context = world.context("update-status", None, None);
    world.clients(&context, &state).revoke_removed().unwrap();
    assert_eq!(world.revoked(), ["juju_app"]);
    assert_eq!(world.condition("db:1"), None);
    assert!(!needs_retry(&state));
}

#[test]
fn a_refused_relation_gets_nothing_and_the_others_are_served() {
    let world = World::leader_of(&[
        ("db:1", "good", "good/0", "10.2.0.8/32"),
        ("db:2", "bad", "bad/0", "10.2.0.9/32"),
    ]);
    world.server.refuse.borrow_mut().insert("db:2".into());
    let outcome = world.serve("update-status", None);
    assert_eq!(cidrs(&outcome).len(), 1);
    assert_eq!(cidrs(&outcome)[0].0, "db:1");
    assert_eq!(outcome.problems.len(), 1);
    assert!(!outcome.problems[0].is_waiting());
    assert_eq!(world.condition("db:2"), Some(Condition::Refused));
    // Its user is taken back, and nothing was published to it.
    assert_eq!(world.revoked(), ["juju_bad"]);
    assert!(world.juju.unit_bag("db:2").is_empty());
    assert!(!world.juju.unit_bag("db:1").is_empty());

    // A relation hook of db:1 refreshes the refused db:2 too: it is not
    // settled.
    world.server.refuse.borrow_mut().clear();
    let outcome = world.serve("db-relation-changed", Some(("db:1", "good")));
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert_eq!(world.condition("db:2"), Some(Condition::Served));
}

#[test]
fn a_standby_creates_nothing_but_grants_access_and_names_its_primary() {
    let mut world = World::leader_of(&[("db:1", "app", "app/0", "10.2.0.8/32")]);
    world.role = Role::Standby {
        primary: crate::replication::PeerUnit {
            name: "postgresql/1".into(),
            address: "10.1.0.7".into(),
        },
        standbys: vec![],
    };
    let outcome = world.serve("db-relation-changed", Some(("db:1", "app")));
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert!(world.server.ensured.borrow().is_empty());
    assert_eq!(
        cidrs(&outcome),
        [("db:1".to_string(), vec!["10.2.0.8/32".to_string()])]
    );
    let bag = world.juju.unit_bag("db:1");
    assert_eq!(bag["state"], "hot standby");
    assert!(bag["master"].contains("host=10.1.0.7"), "{}", bag["master"]);
    assert!(
        bag["standbys"].contains("host=10.1.0.5"),
        "{}",
        bag["standbys"]
    );

    // The same relation on a standalone server gets its objects.
    let world = World::leader_of(&[("db:1", "app", "app/0", "10.2.0.8/32")]);
    world.serve("db-relation-changed", Some(("db:1", "app")));
    assert_eq!(world.server.ensured.borrow().len(), 1);
    assert_eq!(world.juju.unit_bag("db:1")["state"], "standalone");
}

/// One step of a hook order.
enum Step {
    /// Juju runs `hook`, about the relation `(id, remote app)` if any.
    Hook(&'static str, Option<(&'static str, &'static str)>),
    /// Leadership moves to (`true`) or away from this unit.
    Leader(bool),
    /// The remote application of `id` becomes known to Juju.
    RemoteAppKnown(&'static str, &'static str),
    /// The server's holdings refuse (`true`) or accept `id`'s request.
    ServerRefuses(&'static str, bool),
    /// Juju forgets relation `id` (after its `-broken` hook).
    Unrelate(&'static str),
}

#[test]
fn hook_orders_converge_each_relation_on_its_own() {
    use Condition::*;
    use Step::*;
    // Each order: the relations, then the steps with the condition of
    // each relation (in the order given) after the step; `None`: the
    // relation is not in the results.
    type Order = (
        &'static str,
        Vec<(&'static str, &'static str, &'static str, &'static str)>,
        Vec<(Step, Vec<Option<Condition>>)>,
    );
    let orders: Vec<Order> = vec![
        (
            "a follower's relation hook before the leader issued anything",
            vec![("db:1", "app", "app/0", "10.2.0.8/32")],
            vec![
                (Leader(false), vec![None]),
                (
                    Hook("db-relation-joined", Some(("db:1", "app"))),
                    vec![Some(Waiting)],
                ),
                (
                    Hook("db-relation-changed", Some(("db:1", "app"))),
                    vec![Some(Waiting)],
                ),
                (Leader(true), vec![Some(Waiting)]),
                (Hook("leader-elected", None), vec![Some(Served)]),
                (Leader(false), vec![Some(Served)]),
                (Hook("update-status", None), vec![Some(Served)]),
            ],
        ),
        (
            "update-status before Juju knows the remote application",
            vec![("db:1", "", "app/0", "10.2.0.8/32")],
            vec![
                (Hook("update-status", None), vec![Some(Waiting)]),
                (RemoteAppKnown("db:1", "app"), vec![Some(Waiting)]),
                (
                    Hook("db-relation-changed", Some(("db:1", "app"))),
                    vec![Some(Served)],
                ),
            ],
        ),
        (
            "one relation refused, the other served; the refused one's hook-less retry",
            vec![
                ("db:1", "good", "good/0", "10.2.0.8/32"),
                ("db-admin:2", "bad", "bad/0", "10.2.0.9/32"),
            ],
            vec![
                (ServerRefuses("db-admin:2", true), vec![None, None]),
                // db:1, never served, is not settled: refreshed too.
                (
                    Hook("db-admin-relation-changed", Some(("db-admin:2", "bad"))),
                    vec![Some(Served), Some(Refused)],
                ),
                (
                    Hook("config-changed", None),
                    vec![Some(Served), Some(Refused)],
                ),
                (
                    ServerRefuses("db-admin:2", false),
                    vec![Some(Served), Some(Refused)],
                ),
                // A relation hook of db:1 retries the unsettled db-admin:2.
                (
                    Hook("db-relation-changed", Some(("db:1", "good"))),
                    vec![Some(Served), Some(Served)],
                ),
            ],
        ),
        (
            "a relation broken and forgotten while another is served",
            vec![
                ("db:1", "app", "app/0", "10.2.0.8/32"),
                ("db:2", "other", "other/0", "10.2.0.9/32"),
            ],
            vec![
                (Hook("install", None), vec![Some(Served), Some(Served)]),
                (
                    Hook("db-relation-broken", Some(("db:1", "app"))),
                    vec![None, Some(Served)],
                ),
                (Unrelate("db:1"), vec![None, Some(Served)]),
                (Hook("update-status", None), vec![None, Some(Served)]),
            ],
        ),
    ];
    for (order, relations, steps) in orders {
        let mut world = World::leader_of(&relations);
        for (n, (step, want)) in steps.into_iter().enumerate() {
            match step {
                Hook(hook, relation) => {
                    world.serve(hook, relation);
                }
                Leader(leader) => world.juju.leader = leader,
                RemoteAppKnown(id, app) => {
                    world
                        .juju
                        .with(&id.parse().unwrap(), |r| r.remote_app = app.to_string())
                        .unwrap();
                }
                ServerRefuses(id, true) => {
                    world.server.refuse.borrow_mut().insert(id.to_string());
                }
                ServerRefuses(id, false) => {
                    world.server.refuse.borrow_mut().remove(id);
                }
                Unrelate(id) => world.juju.unrelate(id),
            }
            let got: Vec<Option<Condition>> = relations
                .iter()
                .map(|(id, ..)| world.condition(id))
                .collect();
            assert_eq!(got, want, "{order}: after step {n}");
        }
    }
}
