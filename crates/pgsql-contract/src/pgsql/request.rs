//! What a consumer asks for on a `db` or `db-admin` relation: `database`,
//! `roles` and `extensions` (`pgsql-provider-anchors.md` §2.1–2.3).
//!
//! **Where requests are read.** Protocol v2 clients write the request in
//! their application bag; v1 clients (and v2 non-leaders, which cannot read
//! their own app bag) write it in unit bags. For each key separately, the
//! value is taken from the app bag if it is set there and non-empty,
//! otherwise from the first remote unit bag, in unit-name order, that sets it
//! non-empty. All units of a well-behaved client write the same values, so
//! the order only makes the choice deterministic.
//!
//! **Formats.**
//! * `database`: one name (see [`Name`]), used exactly as written: no
//!   trimming, so the echo matches what the client compares against.
//! * `roles`: comma-separated role names; blanks around items and empty
//!   items are ignored. Each role is created `NOLOGIN` and granted to the
//!   relation's user.
//! * `extensions`: comma-separated items, each `name`, `name(schema)`
//!   (legacy server syntax) or `name:schema` (protocol document syntax).
//!
//! **Limits.** A value may have at most [`MAX_REQUEST_VALUE_BYTES`] bytes and
//! a list at most [`MAX_REQUEST_ITEMS`] items; every name must pass
//! [`Name::parse`]. Any violation refuses the whole request with a
//! [`RequestError`] that names the key, where it was read and the item.
//!
//! **Echo.** The raw values chosen are kept in [`ConsumerRequest::verbatim`]:
//! clients wait until the server publishes them back unchanged.

use std::collections::BTreeMap;
use std::fmt;

use crate::excerpt;
use crate::sql::{Name, NameKind};
use crate::tenancy::extensions::ExtensionRequest;
use crate::RelationData;

/// The key for the requested database.
pub const DATABASE_KEY: &str = "database";
/// The key for the requested roles.
pub const ROLES_KEY: &str = "roles";
/// The key for the requested extensions.
pub const EXTENSIONS_KEY: &str = "extensions";

/// Most bytes accepted in one requested value.
pub const MAX_REQUEST_VALUE_BYTES: usize = 4096;
/// Most items accepted in the `roles` or `extensions` list.
pub const MAX_REQUEST_ITEMS: usize = 64;

/// The request values exactly as the consumer wrote them (absent when not
/// requested), for the echo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerbatimRequest {
    pub database: Option<String>,
    pub roles: Option<String>,
    pub extensions: Option<String>,
}

/// A validated request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerRequest {
    /// `None`: the consumer leaves the choice to us.
    pub database: Option<Name>,
    /// Sorted, without duplicates.
    pub roles: Vec<Name>,
    /// Sorted by name, without duplicates.
    pub extensions: Vec<ExtensionRequest>,
    pub verbatim: VerbatimRequest,
}

/// Reads and validates the request from the remote application's bag and
/// its units' bags (unit name → bag). Units that have departed must not be
/// in `unit_data`.
pub fn parse_request(
    app_data: &RelationData,
    unit_data: &BTreeMap<String, RelationData>,
) -> Result<ConsumerRequest, RequestError> {
    let mut request = ConsumerRequest::default();

    if let Some((source, value)) = pick(DATABASE_KEY, app_data, unit_data)? {
        let name = Name::parse(NameKind::Database, value)
            .map_err(|e| RequestError::new(DATABASE_KEY, &source, e.to_string()))?;
        request.database = Some(name);
        request.verbatim.database = Some(value.to_string());
    }

    if let Some((source, value)) = pick(ROLES_KEY, app_data, unit_data)? {
        let mut roles = Vec::new();
        for item in list_items(ROLES_KEY, &source, value)? {
            let role = Name::parse(NameKind::Role, item)
                .map_err(|e| RequestError::new(ROLES_KEY, &source, e.to_string()))?;
            roles.push(role);
        }
        roles.sort();
        roles.dedup();
        request.roles = roles;
        request.verbatim.roles = Some(value.to_string());
    }

    if let Some((source, value)) = pick(EXTENSIONS_KEY, app_data, unit_data)? {
        let mut extensions: BTreeMap<Name, Option<Name>> = BTreeMap::new();
        for item in list_items(EXTENSIONS_KEY, &source, value)? {
            let extension = parse_extension(item)
                .map_err(|problem| RequestError::new(EXTENSIONS_KEY, &source, problem))?;
            let schema = extensions
                .entry(extension.name.clone())
                .or_insert_with(|| extension.schema.clone());
            if *schema != extension.schema {
                return Err(RequestError::new(
                    EXTENSIONS_KEY,
                    &source,
                    format!(
                        "extension {} is requested twice with different schemas",
                        excerpt(extension.name.as_str())
                    ),
                ));
            }
        }
        request.extensions = extensions
            .into_iter()
            .map(|(name, schema)| ExtensionRequest { name, schema })
            .collect();
        request.verbatim.extensions = Some(value.to_string());
    }

    Ok(request)
}

/// Where a value was read, for error messages.
fn describe_source(unit: Option<&str>) -> String {
    match unit {
        None => "the application data".to_string(),
        Some(unit) => format!("unit {}'s data", excerpt(unit)),
    }
}

/// The value of `key` by the precedence in the module docs, with where it
/// was found; refuses an oversized value.
fn pick<'a>(
    key: &'static str,
    app_data: &'a RelationData,
    unit_data: &'a BTreeMap<String, RelationData>,
) -> Result<Option<(String, &'a str)>, RequestError> {
    let set = |bag: &'a RelationData| bag.get(key).map(String::as_str).filter(|v| !v.is_empty());
    let found = set(app_data)
        .map(|value| (describe_source(None), value))
        .or_else(|| {
            unit_data
                .iter()
                .find_map(|(unit, bag)| set(bag).map(|value| (describe_source(Some(unit)), value)))
        });
    match found {
        Some((source, value)) if value.len() > MAX_REQUEST_VALUE_BYTES => Err(RequestError::new(
            key,
            &source,
            format!(
                "the value is {} bytes long, more than the {MAX_REQUEST_VALUE_BYTES} accepted",
                value.len()
            ),
        )),
        found => Ok(found),
    }
}

/// The non-empty, trimmed items of a comma-separated list, at most
/// [`MAX_REQUEST_ITEMS`] of them.
fn list_items<'a>(
    key: &'static str,
    source: &str,
    value: &'a str,
) -> Result<Vec<&'a str>, RequestError> {
    let items: Vec<&str> = value
        .split(',')
        .map(|item| item.trim_matches(|c: char| c.is_ascii_whitespace()))
        .filter(|item| !item.is_empty())
        .collect();
    if items.len() > MAX_REQUEST_ITEMS {
        return Err(RequestError::new(
            key,
            source,
            format!(
                "the list has {} items, more than the {MAX_REQUEST_ITEMS} accepted",
                items.len()
            ),
        ));
    }
    Ok(items)
}

/// `name`, `name(schema)` or `name:schema`. The error text names the item.
fn parse_extension(item: &str) -> Result<ExtensionRequest, String> {
    let (name, schema) = if let Some((name, rest)) = item.split_once('(') {
        let schema = rest.strip_suffix(')').ok_or_else(|| {
            format!(
                "item {} is not name, name(schema) or name:schema",
                excerpt(item)
            )
        })?;
        (name, Some(schema))
    } else if let Some((name, schema)) = item.split_once(':') {
        (name, Some(schema))
    } else {
        (item, None)
    };
    let trim = |text: &str| {
        text.trim_matches(|c: char| c.is_ascii_whitespace())
            .to_string()
    };
    let name = Name::parse(NameKind::Extension, &trim(name)).map_err(|e| e.to_string())?;
    let schema = schema
        .map(|schema| Name::parse(NameKind::Schema, &trim(schema)))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(ExtensionRequest { name, schema })
}

/// A refused request: which key, where it was read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub key: &'static str,
    /// `the application data` or `unit "<name>"'s data`.
    pub source: String,
    pub problem: String,
}

impl RequestError {
    fn new(key: &'static str, source: &str, problem: String) -> RequestError {
        RequestError {
            key,
            source: source.to_string(),
            problem,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requested {} in {}: {}",
            self.key, self.source, self.problem
        )
    }
}

impl std::error::Error for RequestError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn bag(pairs: &[(&str, &str)]) -> RelationData {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn units(list: &[(&str, RelationData)]) -> BTreeMap<String, RelationData> {
        list.iter()
            .map(|(unit, data)| (unit.to_string(), data.clone()))
            .collect()
    }

    fn names(request: &ConsumerRequest) -> (Option<&str>, Vec<&str>, Vec<String>) {
        (
            request.database.as_ref().map(Name::as_str),
            request.roles.iter().map(Name::as_str).collect(),
            request.extensions.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn nothing_requested_gives_an_empty_request() {
        let juju_keys = bag(&[
            ("egress-subnets", "10.0.0.1/32"),
            ("ingress-address", "10.0.0.1"),
            ("private-address", "10.0.0.1"),
        ]);
        let request = parse_request(&bag(&[]), &units(&[("app/0", juju_keys)])).unwrap();
        assert_eq!(request, ConsumerRequest::default());
        let empty_values = bag(&[("database", ""), ("roles", ""), ("extensions", "")]);
        assert_eq!(
            parse_request(&empty_values, &BTreeMap::new()).unwrap(),
            ConsumerRequest::default()
        );
    }

    #[test]
    fn parses_lists_and_extension_syntaxes() {
        let app = bag(&[
            ("database", "Discourse_DB"),
            ("roles", " writer, reader,,reader ,"),
            (
                "extensions",
                "citext, pg_trgm:extensions, hstore(public),uuid-ossp ( util ),citext",
            ),
        ]);
        let request = parse_request(&app, &BTreeMap::new()).unwrap();
        assert_eq!(
            names(&request),
            (
                Some("Discourse_DB"),
                vec!["reader", "writer"],
                vec![
                    "citext".to_string(),
                    "hstore(public)".to_string(),
                    "pg_trgm(extensions)".to_string(),
                    "uuid-ossp(util)".to_string()
                ]
            )
        );
        assert_eq!(
            request.verbatim,
            VerbatimRequest {
                database: Some("Discourse_DB".into()),
                roles: Some(" writer, reader,,reader ,".into()),
                extensions: Some(
                    "citext, pg_trgm:extensions, hstore(public),uuid-ossp ( util ),citext".into()
                ),
            }
        );
    }

    #[test]
    fn app_bag_wins_per_key_then_the_first_unit_in_name_order() {
        let app = bag(&[("database", "from_app"), ("roles", "")]);
        let unit_bags = units(&[
            ("app/1", bag(&[("database", "from_unit1"), ("roles", "r1")])),
            ("app/0", bag(&[("extensions", "citext")])),
            ("app/2", bag(&[("roles", "r2"), ("extensions", "hstore")])),
        ]);
        let request = parse_request(&app, &unit_bags).unwrap();
        assert_eq!(
            names(&request),
            (Some("from_app"), vec!["r1"], vec!["citext".to_string()])
        );
    }

    #[test]
    fn refuses_hostile_requests_naming_key_source_and_item() {
        let huge = "a".repeat(MAX_REQUEST_VALUE_BYTES + 1);
        let many_roles = (0..=MAX_REQUEST_ITEMS)
            .map(|i| format!("r{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let long_name = "d".repeat(64);
        let cases: Vec<(&str, &str, &str)> = vec![
            (
                "database",
                "x\"; DROP DATABASE y; --",
                r#"'"' is not allowed"#,
            ),
            ("database", " padded", "a space is not allowed"),
            ("database", "new\nline", r"'\n' is not allowed"),
            ("database", "ünïcode", r"'\u{fc}' is not allowed"),
            ("database", &long_name, "64 bytes long"),
            ("database", &huge, "4097 bytes long"),
            ("database", "postgres", "server's own databases"),
            ("database", "a,b", "',' is not allowed"),
            (
                "roles",
                "reader, pg_execute_server_program",
                "pg_execute_server_program",
            ),
            ("roles", "postgres", "superuser"),
            ("roles", "juju_otherapp", "users the charm creates"),
            ("roles", "a b", "a space is not allowed"),
            ("roles", "x';--", "is not allowed"),
            ("roles", &many_roles, "65 items"),
            ("extensions", "citext(", "not name, name(schema)"),
            ("extensions", "citext(a)b", "not name, name(schema)"),
            (
                "extensions",
                "citext()",
                "schema name \"\" is not accepted: it is empty",
            ),
            ("extensions", "citext:", "it is empty"),
            ("extensions", "(schema)", "extension name \"\""),
            ("extensions", "citext(pg_catalog)", "pg_"),
            ("extensions", "citext(a(b))", "not allowed"),
            ("extensions", "a:b:c", "':' is not allowed"),
            ("extensions", "citext; DROP", "';' is not allowed"),
            (
                "extensions",
                "citext(a),citext(b)",
                "twice with different schemas",
            ),
        ];
        for (key, value, reason) in cases {
            let app = bag(&[(key, value)]);
            let error = parse_request(&app, &BTreeMap::new()).expect_err(value);
            let message = error.to_string();
            assert_eq!(error.key, key);
            assert!(
                message.starts_with(&format!("requested {key} in the application data: ")),
                "{message}"
            );
            assert!(message.contains(reason), "{value:?}: {message}");
            assert!(!message.contains('\n') && message.len() < 300, "{message}");
        }
    }

    #[test]
    fn errors_from_unit_bags_name_the_unit() {
        let unit_bags = units(&[("remote-abc/3", bag(&[("roles", "pg_monitor")]))]);
        let error = parse_request(&bag(&[]), &unit_bags).unwrap_err();
        assert_eq!(error.source, "unit \"remote-abc/3\"'s data");
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let value = (0..MAX_REQUEST_ITEMS)
            .map(|i| format!("role_{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let request = parse_request(&bag(&[("roles", &value)]), &BTreeMap::new()).unwrap();
        assert_eq!(request.roles.len(), MAX_REQUEST_ITEMS);
        let padded = format!("{}{}", "reader", " ".repeat(MAX_REQUEST_VALUE_BYTES - 6));
        assert!(parse_request(&bag(&[("roles", &padded)]), &BTreeMap::new()).is_ok());
    }
}
