//! Which requested extensions the charm creates, and where (pure).
//!
//! The charm creates extensions as the superuser, so an extension's install
//! script runs with every privilege. Two rules keep a consumer from turning
//! that into its own:
//!
//! * **The operator decides which extensions are allowed** for `db`
//!   consumers ([`AllowedExtensions`], the `allowed-extensions` option).
//!   By default only those PostgreSQL marks *trusted* (`trusted = true` in
//!   the control file: `pg_trgm`, `citext`, `hstore`, …), which a database
//!   owner may create itself anyway, so the charm hands out no power the
//!   consumer lacks. Anything else (`dblink`, `postgres_fdw`, `pageinspect`,
//!   `pg_stat_statements`, …: server-side network or file access, or C code
//!   not vetted for unprivileged use) needs the operator to list it, or
//!   `*`. Dependencies count: each extension `CASCADE` would pull in is
//!   checked too. `db-admin` consumers are superusers and could create any
//!   extension themselves: everything available is allowed.
//! * **Never in a schema the consumer can write** ([`plan_extensions`]). A
//!   script calls functions and operators by name; in a schema the consumer
//!   owns or may `CREATE` in (its database's `public`, a schema it made), it
//!   could plant look-alikes that run as the superuser. So an extension goes
//!   into the schema the consumer named, or [`DEFAULT_SCHEMA`], which the
//!   charm creates owned by `postgres` with `USAGE` for everyone, and an
//!   existing schema is used only if a superuser owns it and no other role
//!   may create in it. An extension whose control file fixes its schema
//!   (`plpgsql` in `pg_catalog`) goes there. An extension already installed
//!   runs no script and is left as it is.
//!
//! The charm's session runs with `search_path = pg_catalog` (see
//! the charm's `cluster::db`), and the statement is
//! `CREATE EXTENSION IF NOT EXISTS … WITH SCHEMA … CASCADE`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::excerpt;
use crate::sql::{Name, NameKind};

/// One requested extension and, if given, the schema to create it in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExtensionRequest {
    pub name: Name,
    pub schema: Option<Name>,
}

impl fmt::Display for ExtensionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{}({schema})", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// Where extensions go when the consumer names no schema. Consumers get it
/// on their `search_path` (set once per user and database, only when they
/// have none of their own).
pub const DEFAULT_SCHEMA: &str = "juju_extensions";

/// The `allowed-extensions` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedExtensions {
    /// Trusted extensions, plus these names.
    TrustedAnd(BTreeSet<String>),
    /// `*`: every available extension.
    Any,
}

impl Default for AllowedExtensions {
    fn default() -> Self {
        AllowedExtensions::TrustedAnd(BTreeSet::new())
    }
}

impl AllowedExtensions {
    /// Comma- or blank-separated extension names, or `*`.
    pub fn parse(text: &str) -> Result<AllowedExtensions, String> {
        let items: Vec<&str> = text
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|item| !item.is_empty())
            .collect();
        if items == ["*"] {
            return Ok(AllowedExtensions::Any);
        }
        let mut names = BTreeSet::new();
        for item in items {
            if item == "*" {
                return Err("* allows every extension and cannot be combined with names".into());
            }
            let name = Name::parse(NameKind::Extension, item).map_err(|e| e.to_string())?;
            names.insert(name.as_str().to_string());
        }
        Ok(AllowedExtensions::TrustedAnd(names))
    }

    fn allows(&self, extension: &ExtensionFacts) -> bool {
        match self {
            AllowedExtensions::Any => true,
            AllowedExtensions::TrustedAnd(names) => {
                extension.trusted || names.contains(&extension.name)
            }
        }
    }
}

/// What the server says about one extension (its default version).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionFacts {
    pub name: String,
    pub trusted: bool,
    /// The schema its control file fixes, if any (`pg_catalog` for
    /// `plpgsql`).
    pub fixed_schema: Option<String>,
    /// The extensions it requires.
    pub requires: Vec<String>,
    /// Already created in the relation's database.
    pub installed: bool,
}

/// What the server says about a schema of the relation's database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchemaFacts {
    pub exists: bool,
    /// Owned by a superuser, and no other role may `CREATE` in it.
    pub only_superusers_write: bool,
}

/// One `CREATE EXTENSION` to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionStep {
    pub name: Name,
    /// `WITH SCHEMA`; `None` when the control file fixes the schema.
    pub schema: Option<Name>,
    /// The schema does not exist: create it owned by the superuser first.
    pub create_schema: bool,
}

/// The extensions to create, or why the request is refused (meant for the
/// blocked status, after the relation id). `available` holds every
/// extension the server could install (`pg_available_extensions`) with its
/// facts; `schemas` the facts of the schemas the steps would use (a schema
/// missing from it does not exist).
pub fn plan_extensions(
    requested: &[ExtensionRequest],
    available: &BTreeMap<String, ExtensionFacts>,
    allowed: &AllowedExtensions,
    superuser: bool,
    schemas: &BTreeMap<String, SchemaFacts>,
) -> Result<Vec<ExtensionStep>, String> {
    let missing: Vec<&str> = requested
        .iter()
        .map(|e| e.name.as_str())
        .filter(|name| !available.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        let (noun, verb) = if missing.len() == 1 {
            ("extension", "is")
        } else {
            ("extensions", "are")
        };
        return Err(format!(
            "requested {noun} {} {verb} not available on this server; \
             install the package that provides it, or remove it from the request",
            missing.join(", ")
        ));
    }
    let mut steps = Vec::new();
    for extension in requested {
        let facts = &available[extension.name.as_str()];
        if !superuser {
            let needed = closure(&facts.name, available)?;
            let refused: Vec<&str> = needed
                .iter()
                .filter(|name| !allowed.allows(&available[name.as_str()]))
                .map(String::as_str)
                .collect();
            if !refused.is_empty() {
                let via = if refused == [facts.name.as_str()] {
                    String::new()
                } else {
                    format!(" (which needs {})", refused.join(", "))
                };
                return Err(format!(
                    "requested extension {}{via} is not trusted by PostgreSQL and not in \
                     allowed-extensions; the operator may allow it",
                    extension.name
                ));
            }
        }
        if facts.installed {
            continue;
        }
        let schema = match (&facts.fixed_schema, &extension.schema) {
            (Some(fixed), Some(asked)) if fixed != asked.as_str() => {
                return Err(format!(
                    "extension {} can only be created in schema {fixed}, not {asked}",
                    extension.name
                ))
            }
            (Some(fixed), _) => fixed.clone(),
            (None, Some(asked)) => asked.as_str().to_string(),
            (None, None) => DEFAULT_SCHEMA.to_string(),
        };
        let found = schemas.get(&schema).copied().unwrap_or_default();
        if found.exists && !found.only_superusers_write {
            return Err(format!(
                "extension {} would go into schema {}, which roles other than superusers \
                 may write; the charm runs extension scripts only in schemas they cannot \
                 (ask for it without a schema, or in a new one)",
                extension.name,
                excerpt(&schema)
            ));
        }
        steps.push(ExtensionStep {
            name: extension.name.clone(),
            schema: match facts.fixed_schema {
                Some(_) => None,
                None => Some(Name::parse(NameKind::Schema, &schema).map_err(|e| e.to_string())?),
            },
            create_schema: !found.exists && facts.fixed_schema.is_none(),
        });
    }
    Ok(steps)
}

/// `name` and every extension it requires, directly or not.
fn closure(
    name: &str,
    available: &BTreeMap<String, ExtensionFacts>,
) -> Result<BTreeSet<String>, String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(next) = todo.pop() {
        if !seen.insert(next.clone()) {
            continue;
        }
        let facts = available.get(&next).ok_or_else(|| {
            format!(
                "extension {name} needs {}, which is not available on this server; \
                 install the package that provides it",
                excerpt(&next)
            )
        })?;
        todo.extend(facts.requires.iter().cloned());
    }
    Ok(seen)
}

/// The schemas [`plan_extensions`] may look at for `requested`, so the
/// shell can read their facts first.
pub fn schemas_to_check(
    requested: &[ExtensionRequest],
    available: &BTreeMap<String, ExtensionFacts>,
) -> BTreeSet<String> {
    requested
        .iter()
        .map(|extension| {
            match (
                available
                    .get(extension.name.as_str())
                    .and_then(|f| f.fixed_schema.clone()),
                &extension.schema,
            ) {
                (Some(fixed), _) => fixed,
                (None, Some(asked)) => asked.as_str().to_string(),
                (None, None) => DEFAULT_SCHEMA.to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(name: &str, trusted: bool, requires: &[&str]) -> (String, ExtensionFacts) {
        (
            name.to_string(),
            ExtensionFacts {
                name: name.to_string(),
                trusted,
                requires: requires.iter().map(|r| r.to_string()).collect(),
                ..ExtensionFacts::default()
            },
        )
    }

    fn server() -> BTreeMap<String, ExtensionFacts> {
        let mut plpgsql = ext("plpgsql", true, &[]);
        plpgsql.1.fixed_schema = Some("pg_catalog".into());
        let mut installed = ext("citext", true, &[]);
        installed.1.installed = true;
        BTreeMap::from([
            ext("pg_trgm", true, &[]),
            ext("cube", true, &[]),
            ext("earthdistance", false, &["cube"]),
            ext("dblink", false, &[]),
            ext("needs_dblink", true, &["dblink"]),
            ext("broken", true, &["not_here"]),
            plpgsql,
            installed,
        ])
    }

    fn request(text: &str) -> Vec<ExtensionRequest> {
        text.split(',')
            .map(|item| {
                let (name, schema) = match item.split_once(':') {
                    Some((n, s)) => (n, Some(Name::parse(NameKind::Schema, s).unwrap())),
                    None => (item, None),
                };
                ExtensionRequest {
                    name: Name::parse(NameKind::Extension, name).unwrap(),
                    schema,
                }
            })
            .collect()
    }

    fn steps(list: &[(&str, Option<&str>, bool)]) -> Vec<ExtensionStep> {
        list.iter()
            .map(|&(name, schema, create_schema)| ExtensionStep {
                name: Name::parse(NameKind::Extension, name).unwrap(),
                schema: schema.map(|s| Name::parse(NameKind::Schema, s).unwrap()),
                create_schema,
            })
            .collect()
    }

    #[test]
    fn allowed_extensions_parse() {
        assert_eq!(
            AllowedExtensions::parse("").unwrap(),
            AllowedExtensions::default()
        );
        assert_eq!(
            AllowedExtensions::parse(" * ").unwrap(),
            AllowedExtensions::Any
        );
        assert_eq!(
            AllowedExtensions::parse("dblink, postgres_fdw pageinspect").unwrap(),
            AllowedExtensions::TrustedAnd(
                ["dblink", "pageinspect", "postgres_fdw"]
                    .map(String::from)
                    .into()
            )
        );
        assert!(AllowedExtensions::parse("*, dblink")
            .unwrap_err()
            .contains("cannot be combined"));
        assert!(AllowedExtensions::parse("db;link")
            .unwrap_err()
            .contains("';' is not allowed"));
    }

    #[test]
    fn extensions_go_only_where_the_consumer_cannot_write() {
        let default = AllowedExtensions::default();
        let safe = SchemaFacts {
            exists: true,
            only_superusers_write: true,
        };
        let writable = SchemaFacts {
            exists: true,
            only_superusers_write: false,
        };
        let schemas = |list: &[(&str, SchemaFacts)]| -> BTreeMap<String, SchemaFacts> {
            list.iter().map(|(n, f)| (n.to_string(), *f)).collect()
        };
        type Case<'a> = (
            &'a str,
            BTreeMap<String, SchemaFacts>,
            Result<Vec<ExtensionStep>, &'a str>,
        );
        let cases: Vec<Case> = vec![
            // The charm's schema, created when missing, used when safe.
            (
                "pg_trgm",
                schemas(&[]),
                Ok(steps(&[("pg_trgm", Some(DEFAULT_SCHEMA), true)])),
            ),
            (
                "pg_trgm",
                schemas(&[(DEFAULT_SCHEMA, safe)]),
                Ok(steps(&[("pg_trgm", Some(DEFAULT_SCHEMA), false)])),
            ),
            // A consumer that took the charm's schema name first is refused.
            (
                "pg_trgm",
                schemas(&[(DEFAULT_SCHEMA, writable)]),
                Err("which roles other than superusers may write"),
            ),
            // A schema the consumer names: the same rules; public is its own.
            (
                "pg_trgm:util",
                schemas(&[]),
                Ok(steps(&[("pg_trgm", Some("util"), true)])),
            ),
            (
                "pg_trgm:public",
                schemas(&[("public", writable)]),
                Err("schema \"public\""),
            ),
            // Fixed schemas are the extension's own.
            (
                "plpgsql",
                schemas(&[("pg_catalog", safe)]),
                Ok(steps(&[("plpgsql", None, false)])),
            ),
            (
                "plpgsql:util",
                schemas(&[]),
                Err("can only be created in schema pg_catalog, not util"),
            ),
            // Installed already: no script runs, nothing to check.
            (
                "citext:public",
                schemas(&[("public", writable)]),
                Ok(vec![]),
            ),
            // Availability first, naming every missing one.
            (
                "nope,pg_trgm,gone",
                schemas(&[]),
                Err("extensions nope, gone are not available"),
            ),
            (
                "broken",
                schemas(&[]),
                Err("needs \"not_here\", which is not available"),
            ),
            // Trust, dependencies included.
            (
                "dblink",
                schemas(&[]),
                Err("requested extension dblink is not trusted"),
            ),
            (
                "earthdistance",
                schemas(&[]),
                Err("requested extension earthdistance is not trusted"),
            ),
            (
                "needs_dblink",
                schemas(&[]),
                Err("needs_dblink (which needs dblink) is not trusted"),
            ),
        ];
        for (text, schemas, want) in cases {
            let got = plan_extensions(&request(text), &server(), &default, false, &schemas);
            match (&got, &want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                _ => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_operator_widens_the_allow_list_and_superusers_need_none() {
        let none = BTreeMap::new();
        let listed = AllowedExtensions::parse("earthdistance").unwrap();
        // earthdistance is listed; cube, which CASCADE adds, is trusted.
        assert_eq!(
            plan_extensions(&request("earthdistance"), &server(), &listed, false, &none),
            Ok(steps(&[("earthdistance", Some(DEFAULT_SCHEMA), true)]))
        );
        assert!(plan_extensions(&request("dblink"), &server(), &listed, false, &none).is_err());
        for allowed in [AllowedExtensions::Any, AllowedExtensions::default()] {
            let superuser = allowed == AllowedExtensions::default();
            assert_eq!(
                plan_extensions(&request("dblink"), &server(), &allowed, superuser, &none),
                Ok(steps(&[("dblink", Some(DEFAULT_SCHEMA), true)]))
            );
        }
        // Even a superuser's extension goes into a schema no tenant writes.
        let writable = BTreeMap::from([(
            "public".to_string(),
            SchemaFacts {
                exists: true,
                only_superusers_write: false,
            },
        )]);
        assert!(plan_extensions(
            &request("dblink:public"),
            &server(),
            &listed,
            true,
            &writable
        )
        .is_err());
    }

    #[test]
    fn the_schemas_to_check_are_those_the_plan_would_use() {
        let wanted = schemas_to_check(&request("pg_trgm,plpgsql,citext:util,nope"), &server());
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        assert_eq!(wanted, [DEFAULT_SCHEMA, "pg_catalog", "util"]);
    }
}
