//! Consumers are tenants: which consumer a database or a role belongs to,
//! and when one consumer may be handed what another has (pure).
//!
//! The charm records which consumer, as `(remote application, endpoint)`,
//! each database and role was created for. The record lives inside
//! PostgreSQL, in the charm's table `juju_charm.owners` of the `postgres`
//! database, which only superusers can write (see
//! the charm's `cluster::records`): it survives a unit being replaced on the
//! same data, is backed up and restored with the data, and will replicate
//! to standbys. The decisions here read that record and what the server
//! says; they run before anything is created or granted, so a refusal
//! leaves nothing behind.
//!
//! **Databases** ([`decide_database`]):
//!
//! * recorded for this consumer: used (created again if it was dropped);
//! * missing and unrecorded: created and recorded for this consumer;
//! * recorded for another consumer, or existing without a record (made by
//!   hand, or by anything but the charm): refused, unless the operator's
//!   `shared-databases` option lists this consumer's application for that
//!   database ([`SharedDatabases`]);
//! * existing, unrecorded, and owned by this relation's own user: recorded
//!   for this consumer (the charm created it before it kept records; no one
//!   else can make a database owned by a relation user).
//!
//! `db-admin` consumers are superusers that reach every database anyway: they
//! may name any database, and are recorded only for databases they create.
//!
//! **Roles** ([`decide_role`]): a requested role is created `NOLOGIN` and
//! recorded when missing. An existing one is granted only if neither it nor
//! any role it is a member of, directly or through other roles, has powers:
//! login, superuser, replication, bypassrls, createrole or createdb; a
//! built-in role (`pg_read_server_files`, `pg_execute_server_program`,
//! `pg_read_all_data`, … every role PostgreSQL predefines); another
//! relation's user; or a role recorded for another consumer. Roles the
//! operator made by hand, without such memberships, are shared on purpose
//! and may be granted to anyone who asks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::excerpt;
use crate::sql::{Name, NameKind};
use crate::ClientEndpoint;

/// Who a database or role was created for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    /// The remote application as Juju shows it to this charm (`remote-<hex>`
    /// across models).
    pub remote_app: String,
    pub endpoint: ClientEndpoint,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.remote_app, self.endpoint)
    }
}

/// The `shared-databases` option: the applications the operator lets use a
/// database that was not created for them, by database.
///
/// Syntax: entries separated by `;` or line breaks, each
/// `<database> = <application>[, <application>…]` (commas or blanks between
/// applications). Applications are named as Juju shows them to this charm:
/// `remote-<hex>` for a consumer in another model (the blocked status of a
/// refused relation prints the exact name). The default, empty, shares
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedDatabases {
    by_database: BTreeMap<String, BTreeSet<String>>,
}

impl SharedDatabases {
    /// Parses the option; the error names the entry.
    pub fn parse(text: &str) -> Result<SharedDatabases, String> {
        let mut shared = SharedDatabases::default();
        for (database, apps) in parse_application_lists(text, "<database>", |database| {
            Name::parse(NameKind::Database, database).map_err(|e| e.to_string())
        })? {
            shared
                .by_database
                .entry(database.as_str().to_string())
                .or_default()
                .extend(apps);
        }
        Ok(shared)
    }

    /// Whether the operator lets `app` use `database`.
    pub fn allows(&self, database: &Name, app: &str) -> bool {
        self.by_database
            .get(database.as_str())
            .is_some_and(|apps| apps.contains(app))
    }
}

/// Parses the options that name applications per key (`shared-databases`,
/// `consumer-privileges`): entries separated by `;` or line breaks, each
/// `<key> = <application>[, <application>…]` (commas or blanks between
/// applications). `key` judges the left side; the error names the entry.
pub(crate) fn parse_application_lists<K>(
    text: &str,
    key_name: &str,
    key: impl Fn(&str) -> Result<K, String>,
) -> Result<Vec<(K, Vec<String>)>, String> {
    let mut entries = Vec::new();
    for entry in text.split([';', '\n']) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (left, apps) = entry.split_once('=').ok_or_else(|| {
            format!(
                "entry {} is not {key_name} = <application>[, ...]",
                excerpt(entry)
            )
        })?;
        let left = key(left.trim())?;
        let apps: Vec<&str> = apps
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|app| !app.is_empty())
            .collect();
        if apps.is_empty() {
            return Err(format!("entry {} names no application", excerpt(entry)));
        }
        if let Some(bad) = apps.iter().find(|app| !is_application_name(app)) {
            return Err(format!("{} is not an application name", excerpt(bad)));
        }
        entries.push((left, apps.iter().map(|app| app.to_string()).collect()));
    }
    Ok(entries)
}

/// Juju's application names: lower-case letters, digits and `-`, starting
/// with a letter (which `remote-<hex>` also is).
fn is_application_name(text: &str) -> bool {
    text.len() <= 128
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What the server says about a requested database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseFacts {
    pub exists: bool,
    /// Its owner (`datdba`), when it exists.
    pub owner_role: Option<String>,
    /// Who the charm recorded it for, if anyone.
    pub recorded: Option<Owner>,
}

/// What to do with a database a relation may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseAction {
    /// `CREATE DATABASE`, it does not exist.
    pub create: bool,
    /// Record it for this consumer.
    pub record: bool,
}

/// Whether the relation of `me` (whose user is `user`) may have `database`;
/// see the module docs. The error is meant for the blocked status, after
/// the relation id.
pub fn decide_database(
    me: &Owner,
    user: &Name,
    database: &Name,
    facts: &DatabaseFacts,
    shared: &SharedDatabases,
) -> Result<DatabaseAction, String> {
    let superuser = me.endpoint.grants_superuser();
    let shared_with_me = shared.allows(database, &me.remote_app);
    let create = !facts.exists;
    match &facts.recorded {
        Some(owner) if owner == me => Ok(DatabaseAction {
            create,
            record: false,
        }),
        Some(_) if superuser || shared_with_me => Ok(DatabaseAction {
            create,
            record: false,
        }),
        Some(owner) => Err(format!(
            "database {database} was created for {owner}, another consumer; the charm \
             hands it to {} only if shared-databases lists it ({database}={})",
            me.remote_app, me.remote_app
        )),
        None if !facts.exists => Ok(DatabaseAction {
            create: true,
            record: true,
        }),
        None if facts.owner_role.as_deref() == Some(user.as_str()) => Ok(DatabaseAction {
            create: false,
            record: true,
        }),
        None if superuser || shared_with_me => Ok(DatabaseAction {
            create: false,
            record: false,
        }),
        None => Err(format!(
            "database {database} exists but the charm did not create it for this consumer; \
             it hands it to {} only if shared-databases lists it ({database}={})",
            me.remote_app, me.remote_app
        )),
    }
}

/// One role in the closure of a requested role: the role itself
/// (`depth` 0) or a role it is a member of, directly (1) or through others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleFact {
    pub name: String,
    pub depth: u32,
    /// One of the roles PostgreSQL predefines (an OID below 16384): the
    /// bootstrap superuser and every `pg_*` role.
    pub predefined: bool,
    /// The attributes it has among LOGIN, SUPERUSER, REPLICATION,
    /// BYPASSRLS, CREATEROLE, CREATEDB (upper case, in that order).
    pub powers: Vec<&'static str>,
    pub recorded: Option<Owner>,
}

/// What to do with a requested role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleAction {
    /// Create it NOLOGIN, record it for this consumer, grant it.
    Create,
    /// Grant it.
    Grant,
}

/// Whether the relation of `me` (whose user is `user`) may be granted
/// `role`, whose closure the server reported (empty: it does not exist);
/// see the module docs.
pub fn decide_role(
    me: &Owner,
    user: &Name,
    role: &Name,
    closure: &[RoleFact],
) -> Result<RoleAction, String> {
    if closure.is_empty() {
        return Ok(RoleAction::Create);
    }
    // A superuser already has every privilege a role could give; only the
    // role itself is checked, as before tenancy.
    let superuser = me.endpoint.grants_superuser();
    let mut facts: Vec<&RoleFact> = closure
        .iter()
        .filter(|fact| !superuser || fact.depth == 0)
        .collect();
    facts.sort_by_key(|fact| (fact.depth, fact.name.clone()));
    for fact in facts {
        let what = if fact.depth == 0 {
            format!("requested role {role}")
        } else {
            let through = if fact.depth > 1 {
                " (through other roles)"
            } else {
                ""
            };
            format!(
                "requested role {role} is a member{through} of {}, which",
                fact.name
            )
        };
        let is_other_user = fact.name != user.as_str()
            && fact.name.to_ascii_lowercase().starts_with("juju")
            && fact.depth > 0;
        let problem = if fact.predefined {
            Some("is built into PostgreSQL with server-wide powers".to_string())
        } else if is_other_user {
            Some("is another relation's user".to_string())
        } else if !fact.powers.is_empty() {
            Some(format!("has {}", fact.powers.join(", ")))
        } else {
            match &fact.recorded {
                Some(owner) if owner != me => Some(format!("was created for {owner}")),
                _ => None,
            }
        };
        if let Some(problem) = problem {
            return Err(format!("{what} {problem}; the charm will not grant it"));
        }
    }
    Ok(RoleAction::Grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(app: &str, endpoint: ClientEndpoint) -> Owner {
        Owner {
            remote_app: app.to_string(),
            endpoint,
        }
    }

    fn name(kind: NameKind, text: &str) -> Name {
        Name::parse(kind, text).unwrap()
    }

    #[test]
    fn shared_databases_parse_and_refuse_clearly() {
        let shared = SharedDatabases::parse(
            " reports = analytics, billing;legacy=remote-1f2e\n\nreports = audit ",
        )
        .unwrap();
        let reports = name(NameKind::Database, "reports");
        let legacy = name(NameKind::Database, "legacy");
        for app in ["analytics", "billing", "audit"] {
            assert!(shared.allows(&reports, app), "{app}");
        }
        assert!(shared.allows(&legacy, "remote-1f2e"));
        assert!(!shared.allows(&legacy, "analytics"));
        assert!(!shared.allows(&name(NameKind::Database, "other"), "analytics"));
        assert_eq!(
            SharedDatabases::parse("").unwrap(),
            SharedDatabases::default()
        );
        assert_eq!(
            SharedDatabases::parse(" ; \n").unwrap(),
            SharedDatabases::default()
        );
        let cases = [
            (
                "reports",
                "entry \"reports\" is not <database> = <application>",
            ),
            ("reports =", "entry \"reports =\" names no application"),
            ("postgres = app", "server's own databases"),
            ("a\"b = app", "'\"' is not allowed"),
            ("reports = App", "\"App\" is not an application name"),
            ("reports = app;x", "entry \"x\" is not"),
            ("reports = a/0", "\"a/0\" is not an application name"),
        ];
        for (text, want) in cases {
            let error = SharedDatabases::parse(text).unwrap_err();
            assert!(error.contains(want), "{text:?}: {error}");
        }
    }

    #[test]
    fn a_database_belongs_to_the_consumer_it_was_created_for() {
        let me = owner("shop", ClientEndpoint::DB);
        let other = owner("rival", ClientEndpoint::DB);
        let admin = owner("ops", ClientEndpoint::DB_ADMIN);
        let me_as_admin = owner("shop", ClientEndpoint::DB_ADMIN);
        let user = name(NameKind::User, "juju_shop");
        let db = name(NameKind::Database, "shop");
        let none = SharedDatabases::default();
        let shared = SharedDatabases::parse("shop = shop, ops").unwrap();
        let facts =
            |exists: bool, owner_role: Option<&str>, recorded: Option<&Owner>| DatabaseFacts {
                exists,
                owner_role: owner_role.map(str::to_string),
                recorded: recorded.cloned(),
            };
        let act = |create, record| Ok(DatabaseAction { create, record });
        type Case<'a> = (
            &'a Owner,
            DatabaseFacts,
            &'a SharedDatabases,
            Result<DatabaseAction, &'a str>,
        );
        let cases: Vec<Case> = vec![
            // New: created and recorded.
            (&me, facts(false, None, None), &none, act(true, true)),
            // Ours: used; recreated if the consumer dropped it.
            (
                &me,
                facts(true, Some("juju_shop"), Some(&me)),
                &none,
                act(false, false),
            ),
            (&me, facts(false, None, Some(&me)), &none, act(true, false)),
            // Created for this consumer before records existed: adopted.
            (
                &me,
                facts(true, Some("juju_shop"), None),
                &none,
                act(false, true),
            ),
            // Another tenant's, or made by hand: refused unless shared.
            (
                &me,
                facts(true, Some("juju_rival"), Some(&other)),
                &none,
                Err("was created for rival (db)"),
            ),
            (
                &me,
                facts(false, None, Some(&other)),
                &none,
                Err("was created for rival (db)"),
            ),
            (
                &me,
                facts(true, Some("postgres"), None),
                &none,
                Err("did not create it for this consumer"),
            ),
            (
                &me,
                facts(true, Some("juju_rival"), None),
                &none,
                Err("did not create it"),
            ),
            (
                &me,
                facts(true, Some("juju_rival"), Some(&other)),
                &shared,
                act(false, false),
            ),
            (
                &me,
                facts(true, Some("postgres"), None),
                &shared,
                act(false, false),
            ),
            // The same application on the other endpoint is another consumer.
            (
                &me_as_admin,
                facts(true, None, Some(&me)),
                &none,
                act(false, false),
            ),
            (
                &me,
                facts(true, None, Some(&me_as_admin)),
                &none,
                Err("shop (db-admin)"),
            ),
            // db-admin: a superuser anyway; recorded only for what it creates.
            (
                &admin,
                facts(true, Some("juju_rival"), Some(&other)),
                &none,
                act(false, false),
            ),
            (
                &admin,
                facts(true, Some("postgres"), None),
                &none,
                act(false, false),
            ),
            (&admin, facts(false, None, None), &none, act(true, true)),
        ];
        for (who, facts, sharing, want) in cases {
            let got = decide_database(who, &user, &db, &facts, sharing);
            match (&got, &want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{who} {facts:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{who} {facts:?}: {got}"),
                _ => panic!("{who} {facts:?}: got {got:?}, want {want:?}"),
            }
        }
        let refused =
            decide_database(&me, &user, &db, &facts(true, None, Some(&other)), &none).unwrap_err();
        assert_eq!(
            refused,
            "database shop was created for rival (db), another consumer; the charm hands it \
             to shop only if shared-databases lists it (shop=shop)"
        );
    }

    fn role(name: &str, depth: u32) -> RoleFact {
        RoleFact {
            name: name.to_string(),
            depth,
            ..RoleFact::default()
        }
    }

    #[test]
    fn roles_are_judged_by_everything_they_are_a_member_of() {
        let me = owner("shop", ClientEndpoint::DB);
        let other = owner("rival", ClientEndpoint::DB);
        let user = name(NameKind::User, "juju_shop");
        let requested = name(NameKind::Role, "reporting");
        let with = |mut fact: RoleFact, edit: &dyn Fn(&mut RoleFact)| {
            edit(&mut fact);
            fact
        };
        let cases: Vec<(Vec<RoleFact>, Result<RoleAction, &str>)> = vec![
            (vec![], Ok(RoleAction::Create)),
            (vec![role("reporting", 0)], Ok(RoleAction::Grant)),
            (
                vec![with(role("reporting", 0), &|f| {
                    f.recorded = Some(me.clone())
                })],
                Ok(RoleAction::Grant),
            ),
            (
                vec![with(role("reporting", 0), &|f| {
                    f.recorded = Some(other.clone())
                })],
                Err("requested role reporting was created for rival (db)"),
            ),
            (
                vec![with(role("reporting", 0), &|f| f.powers = vec!["LOGIN"])],
                Err("requested role reporting has LOGIN"),
            ),
            (
                vec![
                    role("reporting", 0),
                    with(role("pg_read_server_files", 1), &|f| f.predefined = true),
                ],
                Err("member of pg_read_server_files, which is built into PostgreSQL"),
            ),
            (
                vec![
                    role("reporting", 0),
                    role("middle", 1),
                    with(role("pg_execute_server_program", 2), &|f| {
                        f.predefined = true
                    }),
                ],
                Err("member (through other roles) of pg_execute_server_program"),
            ),
            (
                vec![
                    role("reporting", 0),
                    with(role("boss", 1), &|f| f.powers = vec!["SUPERUSER"]),
                ],
                Err("member of boss, which has SUPERUSER"),
            ),
            (
                vec![
                    role("reporting", 0),
                    with(role("alice", 1), &|f| f.powers = vec!["LOGIN", "CREATEDB"]),
                ],
                Err("which has LOGIN, CREATEDB"),
            ),
            (
                vec![
                    role("reporting", 0),
                    with(role("juju_rival", 1), &|f| f.powers = vec!["LOGIN"]),
                ],
                Err("member of juju_rival, which is another relation's user"),
            ),
            (
                vec![role("reporting", 0), role("jujuadmin_ops", 2)],
                Err("jujuadmin_ops, which is another relation's user"),
            ),
            (
                vec![
                    role("reporting", 0),
                    with(role("rival_data", 1), &|f| f.recorded = Some(other.clone())),
                ],
                Err("member of rival_data, which was created for rival (db)"),
            ),
            // Harmless memberships: roles made by hand, ours, our own user.
            (
                vec![
                    role("reporting", 0),
                    role("readers", 1),
                    with(role("mine", 1), &|f| f.recorded = Some(me.clone())),
                    role("juju_shop", 2),
                ],
                Ok(RoleAction::Grant),
            ),
        ];
        for (closure, want) in cases {
            let got = decide_role(&me, &user, &requested, &closure);
            match (&got, &want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{closure:?}"),
                (Err(got), Err(want)) => {
                    assert!(got.contains(want), "{closure:?}: {got}");
                    assert!(got.ends_with("; the charm will not grant it"), "{got}");
                }
                _ => panic!("{closure:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn superuser_relations_only_have_the_role_itself_checked() {
        let admin = owner("ops", ClientEndpoint::DB_ADMIN);
        let user = name(NameKind::User, "jujuadmin_ops");
        let requested = name(NameKind::Role, "monitoring");
        let predefined = RoleFact {
            predefined: true,
            ..role("pg_monitor", 1)
        };
        assert_eq!(
            decide_role(
                &admin,
                &user,
                &requested,
                &[role("monitoring", 0), predefined]
            ),
            Ok(RoleAction::Grant)
        );
        let login = RoleFact {
            powers: vec!["LOGIN"],
            ..role("monitoring", 0)
        };
        assert!(decide_role(&admin, &user, &requested, &[login]).is_err());
    }
}
