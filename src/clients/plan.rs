//! The shell's own decisions about the client relations (pure): which
//! relations a hook refreshes, what one relation's facts call for
//! ([`relation_step`]: wait, refuse, or serve its [`ClientPlan`]), which
//! relations are gone, what a failing relation keeps, whose login to take
//! back, and what `pg_hba.conf` gets from the relation results.

use std::collections::{BTreeMap, BTreeSet};

use crate::juju::{HookRelation, RelationId};
use crate::options::ClientOptions;
use crate::relations::access::cidr::Cidr;
use crate::relations::access::{HbaScope, RelationAccess};
use crate::relations::names::relation_user;
use crate::relations::postgresql_client::plan::USER_PREFIX;
use crate::relations::sql::{Name, NameKind};
use crate::relations::tenancy::logins::alternate_login;
use crate::relations::tenancy::revocation::{users_to_revoke, Standing};
use crate::relations::ServerFacts;
use crate::relations::{plan_client, ClientEndpoint, ClientPlan, Credentials, RelationFacts};
use crate::replication::Role;
use crate::state::relations::{Served, ServedMap};

/// What the shell read of one relation before deciding anything, in the
/// order it reads it: it stops at the first thing missing.
pub enum Observed {
    /// Juju does not know the remote application yet.
    NoRemoteApp,
    /// The relation's credentials are not issued yet (only the leader
    /// issues them).
    NoCredentials,
    /// Everything the relation's plan is made from.
    Ready(Box<Ready>),
}

/// The facts of a relation that can be planned.
pub struct Ready {
    /// The remote bags.
    pub relation: RelationFacts,
    /// What clients are told about the server (from this unit's role).
    pub server: ServerFacts,
    /// The login and password the relation is given.
    pub credentials: Credentials,
}

/// What one relation's facts call for.
#[derive(Debug)]
pub enum RelationStep {
    /// Nothing to do yet; the relation waits, for what the message says.
    Wait(String),
    /// The request cannot be served: what was published is taken back and
    /// nothing is created.
    Refuse(String),
    /// Serve the plan: its objects (created only when `create_objects`:
    /// a standby replicates the primary's, it creates none), its
    /// publication, its access.
    Serve {
        plan: Box<ClientPlan>,
        create_objects: bool,
    },
}

/// The step for one relation, from what was observed of it (pure): the
/// interface's plan ([`plan_client`]) once everything is known, in this
/// unit's `role`.
pub fn relation_step(
    endpoint: ClientEndpoint,
    id: &RelationId,
    observed: &Observed,
    role: &Role,
    options: &ClientOptions,
) -> RelationStep {
    let ready = match observed {
        Observed::NoRemoteApp => {
            return RelationStep::Wait(format!("{id}: waiting for the remote application"))
        }
        Observed::NoCredentials => {
            return RelationStep::Wait(format!(
                "{id}: waiting for the leader to issue its credentials"
            ))
        }
        Observed::Ready(ready) => ready,
    };
    match plan_client(
        endpoint,
        &ready.relation,
        &ready.server,
        &ready.credentials,
        &options.address_limits,
        &options.consumer_privileges,
    ) {
        Ok(Some(plan)) => RelationStep::Serve {
            plan: Box::new(plan),
            create_objects: role.writes(),
        },
        Ok(None) => RelationStep::Wait(format!(
            "{id}: waiting for {} to ask for a database",
            ready.relation.remote_app
        )),
        Err(problem) => RelationStep::Refuse(problem),
    }
}

/// Whether this hook refreshes `id`: relation hooks refresh their own
/// relation and any not served yet; other hooks refresh every relation.
pub fn refreshes(hook: Option<&HookRelation>, id: &RelationId, cached: &ServedMap) -> bool {
    let settled = cached
        .get(&id.to_string())
        .is_some_and(|s| s.problem.is_none());
    match hook {
        Some(h) => h.id == *id || !settled,
        None => true,
    }
}

/// Takes the relations that are no longer live out of `served`.
pub fn take_removed(served: &mut ServedMap, live: &[RelationId]) -> Vec<(String, Served)> {
    let live: BTreeSet<String> = live.iter().map(RelationId::to_string).collect();
    let gone: Vec<String> = served
        .keys()
        .filter(|id| !live.contains(*id))
        .cloned()
        .collect();
    gone.into_iter()
        .filter_map(|id| served.remove_entry(&id))
        .collect()
}

/// The live relations (by id) of each user, as the results say.
pub fn relations_by_user(served: &ServedMap) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, s) in served {
        by_user
            .entry(s.user.clone())
            .or_default()
            .insert(id.clone());
    }
    by_user
}

/// The users to revoke now: those of refused or `removed` relations that
/// no serving relation uses, unless this unit is `leaving` (its departure's
/// `-broken` hooks must not revoke what the remaining units still serve).
/// A `database` relation's user is its own login; the application's owner
/// role (no login, but the privileges its relations asked for) goes with
/// the last of them.
pub fn users_to_take_back(
    served: &ServedMap,
    removed: &[(String, Served)],
    leaving: bool,
) -> BTreeSet<String> {
    if leaving {
        return BTreeSet::new();
    }
    let relations: Vec<(&Served, Standing)> = served
        .values()
        .map(|s| (s, s.standing()))
        .chain(removed.iter().map(|(_, s)| (s, Standing::Removed)))
        .collect();
    let owners: Vec<(String, Standing)> = relations
        .iter()
        .filter(|(s, _)| s.endpoint == ClientEndpoint::DATABASE.name && !s.remote_app.is_empty())
        .map(|(s, standing)| {
            let owner = relation_user(ClientEndpoint::DATABASE, &s.remote_app);
            (owner.to_string(), *standing)
        })
        .collect();
    users_to_revoke(
        relations
            .iter()
            .map(|(s, standing)| (s.user.as_str(), *standing))
            .chain(owners.iter().map(|(o, standing)| (o.as_str(), *standing))),
    )
}

/// The access a relation keeps while serving it fails: what it had, on
/// the addresses it still claims (never more than before).
pub fn failing_access(
    previous: &Served,
    planned: Option<&BTreeSet<Cidr>>,
) -> (String, Vec<String>) {
    if !previous.has_access() {
        return (String::new(), Vec::new());
    }
    let cidrs = previous
        .cidrs
        .iter()
        .filter(|c| match (planned, c.parse::<Cidr>()) {
            (None, _) => true,
            (Some(planned), Ok(cidr)) => planned.contains(&cidr),
            (Some(_), Err(_)) => false,
        })
        .cloned()
        .collect();
    (previous.database.clone(), cidrs)
}

/// The `pg_hba.conf` access of a relation result (one with access); `None`
/// when the result cannot be read back (a corrupted state file).
pub fn access_of(id: &str, s: &Served) -> Option<RelationAccess> {
    let relation: RelationId = id.parse().ok()?;
    let database = Name::parse(NameKind::Database, &s.database).ok()?;
    let scope = if s.more_databases.is_empty() {
        ClientEndpoint::named(relation.endpoint())?.hba_scope(&database)
    } else {
        let mut all = vec![database];
        for more in &s.more_databases {
            all.push(Name::parse(NameKind::Database, more).ok()?);
        }
        HbaScope::Databases(all)
    };
    Some(RelationAccess {
        scope,
        relation,
        remote_app: s.remote_app.clone(),
        user: Name::parse(NameKind::User, &s.user).ok()?,
        cidrs: s
            .cidrs
            .iter()
            .filter_map(|c| c.parse::<Cidr>().ok())
            .collect(),
    })
}

/// The logins of a relation user: a `database` relation has two
/// ([`crate::relations::tenancy::logins`]), both to revoke when it goes
/// (for an owner role, which has none, the second names no role).
pub fn logins_of(user: &str) -> Vec<String> {
    let mut logins = vec![user.to_string()];
    if user.starts_with(USER_PREFIX) {
        if let Ok(owner) = Name::parse(NameKind::User, user) {
            logins.push(alternate_login(&owner).to_string());
        }
    }
    logins
}

/// `access` and, for a `database` relation, the same rules for its
/// alternate login, which may be the one in use (pg_hba.conf names the
/// login; both always, so a rotation needs no reload).
pub fn with_alternate_login(access: RelationAccess) -> Vec<RelationAccess> {
    if access.relation.endpoint() != ClientEndpoint::DATABASE.name {
        return vec![access];
    }
    let alternate = RelationAccess {
        user: alternate_login(&access.user),
        ..access.clone()
    };
    vec![access, alternate]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relations::access::HbaScope;
    use crate::state::relations::{example as served, Condition};

    fn map(entries: &[(&str, Served)]) -> ServedMap {
        entries
            .iter()
            .map(|(id, s)| (id.to_string(), s.clone()))
            .collect()
    }

    fn id(text: &str) -> RelationId {
        text.parse().unwrap()
    }

    /// What the shell observes of relation `id`: one remote unit with
    /// `subnet`, the remote application's bag `app_bag`, credentials issued.
    fn ready(id: &str, subnet: &str, app_bag: &[(&str, &str)], role: &Role) -> Observed {
        let relation = RelationFacts {
            relation: id.parse().unwrap(),
            remote_app: "app".into(),
            remote_app_data: app_bag
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            remote_units: [(
                "app/0".to_string(),
                [("egress-subnets".to_string(), subnet.to_string())].into(),
            )]
            .into(),
            departing_unit: None,
        };
        Observed::Ready(Box::new(Ready {
            relation,
            server: role.server_facts("10.1.0.5", 5432, 16, "16.4"),
            credentials: Credentials {
                user: Name::parse(NameKind::User, "juju_app").unwrap(),
                password: "not-a-real-password-just-a-test".to_string().into(),
            },
        }))
    }

    fn client_options() -> ClientOptions {
        crate::options::ClusterOptions::from_config(&crate::options::test_config(&[]))
            .unwrap()
            .clients
    }

    /// The step's kind and what it says: `wait: <message>`,
    /// `refuse: <message>`, `serve` or `serve read-only`, with the
    /// publication's kind.
    fn describe(step: &RelationStep) -> String {
        match step {
            RelationStep::Wait(problem) => format!("wait: {problem}"),
            RelationStep::Refuse(problem) => format!("refuse: {problem}"),
            RelationStep::Serve {
                plan,
                create_objects,
            } => {
                let publication = match plan.publication {
                    crate::relations::Publication::PgsqlBags(_) => "bags",
                    crate::relations::Publication::ClientSecretsAndBag(_) => "secrets and bag",
                    crate::relations::Publication::ClientRetraction => "retraction",
                };
                let writes = if *create_objects { "" } else { " read-only" };
                format!("serve{writes}: {publication} for {}", plan.objects.database)
            }
        }
    }

    #[test]
    fn a_relations_step_follows_from_what_was_observed_and_the_role() {
        let standalone = Role::Standalone;
        let primary = Role::Primary { standbys: vec![] };
        let standby = Role::Standby {
            primary: crate::replication::PeerUnit {
                name: "postgresql/1".into(),
                address: "10.1.0.7".into(),
            },
            standbys: vec![],
        };
        let asks = [("database", "orders")];
        let cases: Vec<(&str, ClientEndpoint, Observed, &Role, &str)> = vec![
            // A relation hook before Juju knows the remote application,
            // and before the leader issued the credentials.
            (
                "db:1",
                ClientEndpoint::DB,
                Observed::NoRemoteApp,
                &standalone,
                "wait: db:1: waiting for the remote application",
            ),
            (
                "db:1",
                ClientEndpoint::DB,
                Observed::NoCredentials,
                &standalone,
                "wait: db:1: waiting for the leader to issue its credentials",
            ),
            // pgsql: served at once (the database defaults to the app's),
            // created only where the server takes writes.
            (
                "db:1",
                ClientEndpoint::DB,
                ready("db:1", "10.2.0.8/32", &[], &standalone),
                &standalone,
                "serve: bags for app",
            ),
            (
                "db:1",
                ClientEndpoint::DB,
                ready("db:1", "10.2.0.8/32", &[], &primary),
                &primary,
                "serve: bags for app",
            ),
            (
                "db:1",
                ClientEndpoint::DB,
                ready("db:1", "10.2.0.8/32", &[], &standby),
                &standby,
                "serve read-only: bags for app",
            ),
            // Hostile remote data refuses the relation.
            (
                "db:1",
                ClientEndpoint::DB,
                ready("db:1", "not-a-subnet", &[], &standalone),
                &standalone,
                "refuse",
            ),
            // postgresql_client: waits until the consumer asks, then
            // serves the database it asked for.
            (
                "database:2",
                ClientEndpoint::DATABASE,
                ready("database:2", "10.2.0.8/32", &[], &standalone),
                &standalone,
                "wait: database:2: waiting for app to ask for a database",
            ),
            (
                "database:2",
                ClientEndpoint::DATABASE,
                ready("database:2", "10.2.0.8/32", &asks, &standalone),
                &standalone,
                "serve: secrets and bag for orders",
            ),
            (
                "database:2",
                ClientEndpoint::DATABASE,
                ready("database:2", "10.2.0.8/32", &asks, &standby),
                &standby,
                "serve read-only: secrets and bag for orders",
            ),
        ];
        let options = client_options();
        for (relation, endpoint, observed, role, want) in cases {
            let step = relation_step(endpoint, &id(relation), &observed, role, &options);
            let got = describe(&step);
            assert!(
                got.starts_with(want),
                "{relation} in {role:?}: got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn relation_hooks_refresh_their_own_relation_and_unsettled_ones() {
        let cached = map(&[
            ("db:1", served("a", &["10.0.0.1/32"], Condition::Served)),
            ("db:2", served("", &[], Condition::Failed)),
        ]);
        let hook = HookRelation {
            id: id("db:1"),
            kind: None,
            remote_app: "a".into(),
            departing: None,
        };
        let other = HookRelation {
            id: id("db:9"),
            ..hook.clone()
        };
        let cases = [
            (Some(&hook), "db:1", true),
            (Some(&hook), "db:2", true),
            (Some(&hook), "db:3", true),
            (Some(&other), "db:1", false),
            (None, "db:1", true),
        ];
        for (hook, relation, want) in cases {
            assert_eq!(refreshes(hook, &id(relation), &cached), want, "{relation}");
        }
    }

    #[test]
    fn removed_relations_are_taken_out_and_their_users_revoked_unless_still_used() {
        let shared = served("a", &["10.0.0.1/32"], Condition::Served);
        let mut results = map(&[("db:1", shared.clone()), ("db:2", shared.clone())]);
        let removed = take_removed(&mut results, &[id("db:1")]);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].0, "db:2");
        assert_eq!(results.keys().collect::<Vec<_>>(), ["db:1"]);
        // db:1 still serves juju_app: nobody is revoked.
        assert!(users_to_take_back(&results, &removed, false).is_empty());
        // Without db:1, juju_app goes; but never while this unit leaves.
        let mut none = ServedMap::new();
        let removed = take_removed(&mut results, &[]);
        assert_eq!(
            users_to_take_back(&none, &removed, false),
            BTreeSet::from(["juju_app".to_string()])
        );
        assert!(users_to_take_back(&none, &removed, true).is_empty());
        none.insert("db:3".into(), served("", &[], Condition::Refused));
        assert_eq!(users_to_take_back(&none, &[], false).len(), 1);
        assert_eq!(
            relations_by_user(&map(&[("db:1", shared.clone()), ("db:4", shared)]))["juju_app"],
            BTreeSet::from(["db:1".to_string(), "db:4".to_string()])
        );
    }

    /// Two `database` relations of one application: each has its own
    /// login, revoked with its relation alone; the owner role's privileges
    /// go with the last one.
    #[test]
    fn a_database_relation_takes_back_its_own_login_and_the_last_the_owners() {
        let of = |app: &str, endpoint: &str, user: &str, condition| Served {
            remote_app: app.into(),
            endpoint: endpoint.into(),
            user: user.into(),
            ..served(app, &["10.0.0.1/32"], condition)
        };
        let relation = |n: u32, condition| {
            of(
                "shop",
                "database",
                &format!("jujuclient_shop_{n}"),
                condition,
            )
        };
        let gone = |n: u32| (format!("database:{n}"), relation(n, Condition::Served));
        let set = |users: &[&str]| users.iter().map(|u| u.to_string()).collect::<BTreeSet<_>>();
        let one_left = map(&[("database:8", relation(8, Condition::Served))]);
        assert_eq!(
            users_to_take_back(&one_left, &[gone(7)], false),
            set(&["jujuclient_shop_7"]),
            "the other relation of shop keeps its login and the owner"
        );
        assert_eq!(
            users_to_take_back(&ServedMap::new(), &[gone(7), gone(8)], false),
            set(&["jujuclient_shop", "jujuclient_shop_7", "jujuclient_shop_8"])
        );
        let refused = map(&[("database:8", relation(8, Condition::Refused))]);
        assert_eq!(
            users_to_take_back(&refused, &[], false),
            set(&["jujuclient_shop", "jujuclient_shop_8"])
        );
        // Another application's relation keeps nothing of shop's.
        let other = of("blog", "database", "jujuclient_blog_9", Condition::Served);
        assert_eq!(
            users_to_take_back(&map(&[("database:9", other)]), &[gone(7)], false),
            set(&["jujuclient_shop", "jujuclient_shop_7"])
        );
        // A `db` relation of the same application has its own user.
        let db = of("shop", "db", "juju_shop", Condition::Served);
        assert_eq!(
            users_to_take_back(&map(&[("db:1", db)]), &[gone(7)], false),
            set(&["jujuclient_shop", "jujuclient_shop_7"])
        );
        assert!(users_to_take_back(&ServedMap::new(), &[gone(7)], true).is_empty());
    }

    #[test]
    fn a_failing_relation_keeps_at_most_what_it_had() {
        let had = served("app", &["10.0.0.1/32", "10.0.0.2/32"], Condition::Served);
        let planned: BTreeSet<Cidr> = ["10.0.0.2/32", "10.0.0.3/32"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(
            failing_access(&had, Some(&planned)),
            ("app".to_string(), vec!["10.0.0.2/32".to_string()])
        );
        assert_eq!(
            failing_access(&had, None),
            ("app".to_string(), had.cidrs.clone())
        );
        let never = served("", &[], Condition::Waiting);
        assert_eq!(
            failing_access(&never, Some(&planned)),
            (String::new(), vec![])
        );
    }

    #[test]
    fn access_is_read_back_with_the_endpoints_scope() {
        let result = served("app", &["10.0.0.1/32", "junk"], Condition::Served);
        let db = access_of("db:1", &result).unwrap();
        assert_eq!(
            db.scope,
            HbaScope::Database(Name::parse(NameKind::Database, "app").unwrap())
        );
        assert_eq!(db.cidrs.len(), 1);
        assert_eq!(
            access_of("db-admin:2", &result).unwrap().scope,
            HbaScope::AllDatabases
        );
        assert_eq!(access_of("replication:3", &result), None);
        assert_eq!(access_of("db", &result), None);
    }

    #[test]
    fn database_relations_have_two_logins_in_access_and_revocation() {
        assert_eq!(logins_of("juju_app"), ["juju_app"]);
        assert_eq!(
            logins_of("jujuclient_app_4"),
            ["jujuclient_app_4", "jujuclient_app_4_b"]
        );
        let mut result = served("app", &["10.0.0.1/32"], Condition::Served);
        result.user = "jujuclient_app_4".into();
        let database = with_alternate_login(access_of("database:4", &result).unwrap());
        let users: Vec<&str> = database.iter().map(|a| a.user.as_str()).collect();
        assert_eq!(users, ["jujuclient_app_4", "jujuclient_app_4_b"]);
        assert_eq!(database[0].cidrs, database[1].cidrs);
        assert_eq!(database[0].scope, database[1].scope);
        result.user = "juju_app".into();
        assert_eq!(
            with_alternate_login(access_of("db:1", &result).unwrap()).len(),
            1
        );
    }
}
