//! `extra-user-roles`: what a `database` consumer may ask to be given, and
//! the operator's option `consumer-privileges` (pure).
//!
//! **Syntax.** Both libraries send one string of comma-separated items
//! (`"CREATEDB"`, `"createdb,reporting"`); blanks around items and empty
//! items are ignored. An item is either
//!
//! * a privilege, case-insensitively: `CREATEDB`, `CREATEROLE`, `SUPERUSER`;
//! * or the name of a group role, exactly as written (see [`Name`]).
//!
//! Other role attributes (`LOGIN`, `REPLICATION`, `BYPASSRLS`, `NO…`,
//! `PASSWORD`, …) are refused by name, so a consumer asking for them hears
//! why rather than "no such role".
//!
//! **Policy** ([`check_privileges`], [`decide_extra_role`]):
//!
//! * `CREATEDB` is given to every consumer that asks. It lets the consumer
//!   create databases of its own; those carry no record, so the charm never
//!   hands them to another consumer.
//! * `SUPERUSER` and `CREATEROLE` reach every tenant's data (CREATEROLE in
//!   PostgreSQL 15 can alter every non-superuser role), so only the
//!   applications the operator lists in `consumer-privileges` get them.
//! * Any other name must be an **existing** role that passes exactly the
//!   checks `roles` on `db` passes ([`decide_role`]): NOLOGIN, no powers, no
//!   predefined role, no other relation's user, no other consumer's role,
//!   in all its memberships. Unlike `roles` on `db`, a missing role is not
//!   created: `extra-user-roles` asks for a role the operator made.
//!
//! **`consumer-privileges`** names who may have which privilege, in the
//! shape of `shared-databases`: entries separated by `;` or line breaks,
//! each `<privilege> = <application>[, <application>…]`, privilege
//! `superuser` or `createrole` (any case), applications named as Juju shows
//! them to this charm (`remote-<hex>` across models; a refused relation's
//! status prints the exact name). The default, empty, allows neither.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::excerpt;
use crate::pgsql::request::{MAX_REQUEST_ITEMS, MAX_REQUEST_VALUE_BYTES};
use crate::sql::{Name, NameKind};
use crate::tenancy::ownership::{
    decide_role, parse_application_lists, Owner, RoleAction, RoleFact,
};

/// A role attribute a consumer may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    CreateDb,
    CreateRole,
    Superuser,
}

impl Privilege {
    /// The SQL keyword (`CREATE ROLE … CREATEDB`).
    pub fn keyword(self) -> &'static str {
        match self {
            Privilege::CreateDb => "CREATEDB",
            Privilege::CreateRole => "CREATEROLE",
            Privilege::Superuser => "SUPERUSER",
        }
    }

    /// The keyword that takes it away (`ALTER ROLE … NOCREATEDB`).
    pub fn revoking_keyword(self) -> &'static str {
        match self {
            Privilege::CreateDb => "NOCREATEDB",
            Privilege::CreateRole => "NOCREATEROLE",
            Privilege::Superuser => "NOSUPERUSER",
        }
    }

    pub const ALL: [Privilege; 3] = [
        Privilege::CreateDb,
        Privilege::CreateRole,
        Privilege::Superuser,
    ];

    fn from_keyword(text: &str) -> Option<Privilege> {
        Privilege::ALL
            .into_iter()
            .find(|p| p.keyword().eq_ignore_ascii_case(text))
    }

    /// Whether giving it needs the operator's word.
    pub fn needs_permission(self) -> bool {
        self != Privilege::CreateDb
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Role attributes PostgreSQL knows besides the three above, refused by name.
const OTHER_ATTRIBUTES: [&str; 14] = [
    "LOGIN",
    "NOLOGIN",
    "REPLICATION",
    "NOREPLICATION",
    "BYPASSRLS",
    "NOBYPASSRLS",
    "INHERIT",
    "NOINHERIT",
    "NOSUPERUSER",
    "NOCREATEDB",
    "NOCREATEROLE",
    "PASSWORD",
    "CONNECTION",
    "VALID",
];

/// A parsed `extra-user-roles`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraUserRoles {
    pub privileges: BTreeSet<Privilege>,
    /// Sorted, without duplicates.
    pub groups: Vec<Name>,
}

impl ExtraUserRoles {
    /// Parses the value; the error describes the item (the caller names the
    /// relation and the field).
    pub fn parse(text: &str) -> Result<ExtraUserRoles, String> {
        if text.len() > MAX_REQUEST_VALUE_BYTES {
            return Err(format!(
                "the value is {} bytes long, more than the {MAX_REQUEST_VALUE_BYTES} accepted",
                text.len()
            ));
        }
        let items: Vec<&str> = text
            .split(',')
            .map(|item| item.trim_matches(|c: char| c.is_ascii_whitespace()))
            .filter(|item| !item.is_empty())
            .collect();
        if items.len() > MAX_REQUEST_ITEMS {
            return Err(format!(
                "the list has {} items, more than the {MAX_REQUEST_ITEMS} accepted",
                items.len()
            ));
        }
        let mut roles = ExtraUserRoles::default();
        for item in items {
            if let Some(privilege) = Privilege::from_keyword(item) {
                roles.privileges.insert(privilege);
            } else if let Some(attribute) = OTHER_ATTRIBUTES
                .iter()
                .find(|a| a.eq_ignore_ascii_case(item))
            {
                return Err(format!(
                    "{attribute} is a role attribute the charm does not give; \
                     it gives CREATEDB, CREATEROLE and SUPERUSER"
                ));
            } else {
                let role = Name::parse(NameKind::Role, item).map_err(|e| e.to_string())?;
                roles.groups.push(role);
            }
        }
        roles.groups.sort();
        roles.groups.dedup();
        Ok(roles)
    }

    /// Everything in `self` and in `other`: a user several requests share
    /// gets what each of them asked for.
    pub fn union(&self, other: &ExtraUserRoles) -> ExtraUserRoles {
        let mut groups: BTreeSet<Name> = self.groups.iter().cloned().collect();
        groups.extend(other.groups.iter().cloned());
        ExtraUserRoles {
            privileges: self.privileges.union(&other.privileges).copied().collect(),
            groups: groups.into_iter().collect(),
        }
    }
}

/// The `consumer-privileges` option: which applications may be given
/// `SUPERUSER` or `CREATEROLE` (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerPrivileges {
    by_privilege: BTreeMap<Privilege, BTreeSet<String>>,
}

impl ConsumerPrivileges {
    /// Parses the option; the error names the entry.
    pub fn parse(text: &str) -> Result<ConsumerPrivileges, String> {
        let mut allowed = ConsumerPrivileges::default();
        for (privilege, apps) in
            parse_application_lists(
                text,
                "<privilege>",
                |privilege| match Privilege::from_keyword(privilege) {
                    Some(Privilege::CreateDb) => {
                        Err("CREATEDB needs no permission: every consumer may have it".to_string())
                    }
                    Some(privilege) => Ok(privilege),
                    None => Err(format!(
                        "{} is not a privilege; name superuser or createrole",
                        excerpt(privilege)
                    )),
                },
            )?
        {
            allowed
                .by_privilege
                .entry(privilege)
                .or_default()
                .extend(apps);
        }
        Ok(allowed)
    }

    /// Whether `app` may be given `privilege`.
    pub fn allows(&self, app: &str, privilege: Privilege) -> bool {
        !privilege.needs_permission()
            || self
                .by_privilege
                .get(&privilege)
                .is_some_and(|apps| apps.contains(app))
    }
}

/// Refuses the privileges `app` asked for that the operator did not allow
/// it; the error is meant for the blocked status, after the relation id.
pub fn check_privileges(
    app: &str,
    asked: &ExtraUserRoles,
    allowed: &ConsumerPrivileges,
) -> Result<(), String> {
    let refused: Vec<&str> = asked
        .privileges
        .iter()
        .filter(|&&privilege| !allowed.allows(app, privilege))
        .map(|privilege| privilege.keyword())
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let list = refused.join(", ");
    let first = refused[0].to_ascii_lowercase();
    Err(format!(
        "asks for {list}: power over every tenant's data, which the charm gives {app} \
         only if consumer-privileges lists it ({first} = {app})"
    ))
}

/// Whether the relation of `me` (whose user is `user`) may be granted the
/// group role `role` it named in `extra-user-roles`, whose closure the
/// server reported (empty: it does not exist). The same checks as `roles`
/// on `db`, except that a missing role is refused, not created.
pub fn decide_extra_role(
    me: &Owner,
    user: &Name,
    role: &Name,
    closure: &[RoleFact],
) -> Result<(), String> {
    if closure.is_empty() {
        return Err(format!(
            "extra-user-roles names role {role}, which does not exist; an operator must \
             create it (NOLOGIN) before the charm grants it"
        ));
    }
    match decide_role(me, user, role, closure)? {
        RoleAction::Grant => Ok(()),
        // decide_role creates only roles that do not exist.
        RoleAction::Create => unreachable!("a role with a closure exists"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientEndpoint;

    fn role(text: &str) -> Name {
        Name::parse(NameKind::Role, text).unwrap()
    }

    #[test]
    fn extra_user_roles_are_privileges_or_group_names() {
        let cases: [(&str, &[Privilege], &[&str]); 8] = [
            ("", &[], &[]),
            (" , ,", &[], &[]),
            ("CREATEDB", &[Privilege::CreateDb], &[]),
            ("createdb", &[Privilege::CreateDb], &[]),
            (
                " superuser , CreateRole ",
                &[Privilege::CreateRole, Privilege::Superuser],
                &[],
            ),
            ("CREATEDB,createdb", &[Privilege::CreateDb], &[]),
            (
                "reporting, createdb,Audit,reporting",
                &[Privilege::CreateDb],
                &["Audit", "reporting"],
            ),
            ("app_reader-2", &[], &["app_reader-2"]),
        ];
        for (text, privileges, groups) in cases {
            let parsed = ExtraUserRoles::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(
                parsed.privileges.iter().copied().collect::<Vec<_>>(),
                privileges,
                "{text:?}"
            );
            assert_eq!(
                parsed.groups.iter().map(Name::as_str).collect::<Vec<_>>(),
                groups,
                "{text:?}"
            );
        }
    }

    #[test]
    fn extra_user_roles_refuse_what_is_not_a_privilege_or_a_name() {
        let many = (0..=MAX_REQUEST_ITEMS)
            .map(|i| format!("r{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let huge = "r".repeat(MAX_REQUEST_VALUE_BYTES + 1);
        let cases = [
            ("login", "LOGIN is a role attribute the charm does not give"),
            ("createdb, Replication", "REPLICATION is a role attribute"),
            ("bypassrls", "BYPASSRLS"),
            ("nosuperuser", "NOSUPERUSER"),
            ("password", "PASSWORD"),
            (
                "pg_read_server_files",
                "reserved for PostgreSQL's built-in roles",
            ),
            ("pg_execute_server_program", "pg_"),
            ("postgres", "it is the superuser"),
            ("juju_shop", "reserved for the users the charm creates"),
            (
                "jujuclient_other",
                "reserved for the users the charm creates",
            ),
            ("public", "SQL keyword"),
            ("a b", "a space is not allowed"),
            ("x';--", "'\\'' is not allowed"),
            ("admin\"", "'\"' is not allowed"),
            ("line\nbreak", "'\\n' is not allowed"),
            ("nul\0", "'\\u{0}' is not allowed"),
            ("rôle", "'\\u{f4}' is not allowed"),
            ("CREATEDB WITH LOGIN", "a space is not allowed"),
            ("1role", "must start with a letter"),
            (&many, "65 items"),
            (&huge, "bytes long"),
        ];
        for (text, want) in cases {
            let error = ExtraUserRoles::parse(text).expect_err(text);
            assert!(error.contains(want), "{text:?}: {error}");
            assert!(!error.contains('\n') && error.len() < 300, "{error}");
        }
        let over_long = format!("r{}", "x".repeat(63));
        assert!(ExtraUserRoles::parse(&over_long)
            .unwrap_err()
            .contains("64 bytes long"));
    }

    #[test]
    fn a_shared_user_gets_what_every_request_asked_for() {
        let a = ExtraUserRoles::parse("createdb,readers").unwrap();
        let b = ExtraUserRoles::parse("superuser,readers,writers").unwrap();
        let both = a.union(&b);
        assert_eq!(
            both.privileges.into_iter().collect::<Vec<_>>(),
            [Privilege::CreateDb, Privilege::Superuser]
        );
        assert_eq!(both.groups, [role("readers"), role("writers")]);
    }

    #[test]
    fn consumer_privileges_parse_and_refuse_clearly() {
        let allowed = ConsumerPrivileges::parse(
            " superuser = ops, remote-1f2e\nCreateRole=migrator;superuser = audit ",
        )
        .unwrap();
        for (app, privilege, want) in [
            ("ops", Privilege::Superuser, true),
            ("remote-1f2e", Privilege::Superuser, true),
            ("audit", Privilege::Superuser, true),
            ("migrator", Privilege::CreateRole, true),
            ("migrator", Privilege::Superuser, false),
            ("ops", Privilege::CreateRole, false),
            ("anyone", Privilege::CreateDb, true),
            ("anyone", Privilege::Superuser, false),
        ] {
            assert_eq!(allowed.allows(app, privilege), want, "{app} {privilege}");
        }
        assert_eq!(
            ConsumerPrivileges::parse(" ;\n ").unwrap(),
            ConsumerPrivileges::default()
        );
        let none = ConsumerPrivileges::default();
        assert!(!none.allows("ops", Privilege::Superuser));
        assert!(!none.allows("ops", Privilege::CreateRole));
        let cases = [
            ("superuser", "is not <privilege> = <application>"),
            ("superuser =", "names no application"),
            ("createdb = app", "CREATEDB needs no permission"),
            ("login = app", "\"login\" is not a privilege"),
            ("superuser = App", "\"App\" is not an application name"),
            ("superuser = a/0", "\"a/0\" is not an application name"),
            ("superuser = app;x", "entry \"x\" is not"),
        ];
        for (text, want) in cases {
            let error = ConsumerPrivileges::parse(text).unwrap_err();
            assert!(error.contains(want), "{text:?}: {error}");
        }
    }

    #[test]
    fn privileges_need_the_operators_word_except_createdb() {
        let allowed = ConsumerPrivileges::parse("createrole = shop").unwrap();
        let asked = |text: &str| ExtraUserRoles::parse(text).unwrap();
        assert_eq!(
            check_privileges("shop", &asked("CREATEDB,createrole"), &allowed),
            Ok(())
        );
        assert_eq!(
            check_privileges("rival", &asked("createdb"), &allowed),
            Ok(())
        );
        assert_eq!(
            check_privileges("rival", &asked("reporting"), &allowed),
            Ok(())
        );
        assert_eq!(
            check_privileges("rival", &asked("superuser,createrole"), &allowed).unwrap_err(),
            "asks for CREATEROLE, SUPERUSER: power over every tenant's data, which the charm \
             gives rival only if consumer-privileges lists it (createrole = rival)"
        );
        assert!(check_privileges("shop", &asked("superuser"), &allowed)
            .unwrap_err()
            .contains("(superuser = shop)"));
    }

    fn fact(name: &str, depth: u32) -> RoleFact {
        RoleFact {
            name: name.to_string(),
            depth,
            ..RoleFact::default()
        }
    }

    #[test]
    fn group_roles_must_exist_and_pass_the_db_membership_checks() {
        let me = Owner {
            remote_app: "shop".to_string(),
            endpoint: ClientEndpoint::DB,
        };
        let other = Owner {
            remote_app: "rival".to_string(),
            endpoint: ClientEndpoint::DB,
        };
        let user = Name::parse(NameKind::User, "jujuclient_shop").unwrap();
        let requested = role("reporting");
        let cases: Vec<(Vec<RoleFact>, Result<(), &str>)> = vec![
            (vec![], Err("role reporting, which does not exist")),
            (vec![fact("reporting", 0)], Ok(())),
            (vec![fact("reporting", 0), fact("readers", 1)], Ok(())),
            (
                vec![RoleFact {
                    powers: vec!["LOGIN"],
                    ..fact("reporting", 0)
                }],
                Err("requested role reporting has LOGIN"),
            ),
            (
                vec![
                    fact("reporting", 0),
                    RoleFact {
                        predefined: true,
                        ..fact("pg_write_server_files", 2)
                    },
                ],
                Err("(through other roles) of pg_write_server_files"),
            ),
            (
                vec![fact("reporting", 0), fact("jujuclient_rival", 1)],
                Err("jujuclient_rival, which is another relation's user"),
            ),
            (
                vec![RoleFact {
                    recorded: Some(other.clone()),
                    ..fact("reporting", 0)
                }],
                Err("was created for rival (db)"),
            ),
        ];
        for (closure, want) in cases {
            let got = decide_extra_role(&me, &user, &requested, &closure);
            match (&got, &want) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(want)) => assert!(got.contains(want), "{closure:?}: {got}"),
                _ => panic!("{closure:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
