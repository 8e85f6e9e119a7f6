//! What a consumer asks for on a `database` relation, in either protocol
//! version, read from its application bag (pure).
//!
//! Both libraries write their request in the requirer's application bag
//! (the leader, on `relation-created`) and nowhere else that the provider
//! reads, so unit bags are not consulted.
//!
//! **v0** (`data_interfaces` v0, no `version` key, or `version: v0`):
//!
//! | key | accepted |
//! |---|---|
//! | `database` | one database [`Name`]; absent or empty: not asked yet |
//! | `extra-user-roles` | see [`ExtraUserRoles`] |
//! | `requested-secrets` | JSON list of field names; absent: the requirer cannot use secrets, so credentials go plainly in the bag; present: it must list `password`, `uris` and `read-only-uris` (the charm never publishes a password in relation data when secrets are used) |
//! | `external-node-connectivity` | `true` or `false` (every consumer of this charm is external; nothing changes) |
//! | `provided-secrets`, `alias`, and keys this charm does not know | ignored |
//! | `entity-type`, `extra-group-roles`, `entity-permissions`, `requested-entity-secret` | refused: entity requests are not supported |
//! | `prefix-matching`, a `database` ending in `*` | refused: prefix requests are not supported |
//!
//! **v1** (`dpcharmlibs-interfaces`, `version: v1`): `requests` is a JSON
//! list (absent or `[]`: not asked yet) of at most [`MAX_REQUESTS`]
//! objects, each with
//!
//! | key | accepted |
//! |---|---|
//! | `resource` (or its alias `database`) | as `database` above |
//! | `request-id` | required, 1–64 of `[A-Za-z0-9_-]`, unique in the list |
//! | `salt` | optional, 1–64 of `[A-Za-z0-9_-]`; echoed back |
//! | `extra-user-roles` | a string as in v0, or `null` |
//! | `external-node-connectivity` | `true`, `false` or `null` |
//! | `extra-group-roles`, `entity-type`, `entity-permissions`, `entity-name`, `entity-password`, `password`, `secret-requested-entity`, `requested-entity-secret`, `secret-mtls`, `mtls-cert` | must be `null` or absent (entity and mTLS requests are not supported) |
//! | `prefix-matching`, `prefix` | must be `null` or absent (prefix requests are not supported) |
//! | `subject`, `topic`, `index`, `plugin-url` | must be `null` or absent (other services' resources) |
//! | other keys | ignored (the library allows extra keys) |
//!
//! and two requests may not name the same database. Any other `version` is
//! refused. Every refusal is a [`ClientError`] naming the field.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::roles::ExtraUserRoles;
use super::{ClientError, Protocol};
use crate::excerpt;
use crate::ids::{RelationData, RelationId};
use crate::pgsql::request::MAX_REQUEST_VALUE_BYTES;
use crate::sql::{Name, NameKind};

/// Most requests one v1 relation may make (each is a database).
pub const MAX_REQUESTS: usize = 16;
/// Most bytes accepted in v1's `requests`.
pub const MAX_REQUESTS_BYTES: usize = 64 * 1024;
/// Most bytes in a request id or a salt.
pub const MAX_ID_BYTES: usize = 64;
/// Most field names in `requested-secrets`.
pub const MAX_SECRET_FIELDS: usize = 64;

/// The user fields the charm publishes (in the `user` secret group).
pub const USER_FIELDS: [&str; 4] = ["username", "password", "uris", "read-only-uris"];
/// The TLS fields (the `tls` secret group).
pub const TLS_FIELDS: [&str; 2] = ["tls", "tls-ca"];
/// The fields that hold the password: with secrets they must be in one.
pub const PASSWORD_FIELDS: [&str; 3] = ["password", "uris", "read-only-uris"];

/// Where the credentials go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretMode {
    /// No `requested-secrets` (a requirer without Juju secrets): every field
    /// plainly in the bag.
    Plain,
    /// The fields listed in `requested-secrets` go into secrets, the others
    /// plainly in the bag. v1 always lists every field.
    Fields(BTreeSet<String>),
}

impl SecretMode {
    /// Every field this charm publishes, in secrets.
    pub fn all() -> SecretMode {
        SecretMode::Fields(
            USER_FIELDS
                .iter()
                .chain(TLS_FIELDS.iter())
                .map(|field| field.to_string())
                .collect(),
        )
    }

    /// Whether `field` goes into a secret.
    pub fn in_secret(&self, field: &str) -> bool {
        match self {
            SecretMode::Plain => false,
            SecretMode::Fields(fields) => fields.contains(field),
        }
    }
}

/// A v1 request's identity, echoed back in the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIds {
    pub request_id: String,
    pub salt: Option<String>,
}

/// One validated request for a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseRequest {
    /// `None` in v0, which has one request per relation.
    pub ids: Option<RequestIds>,
    pub database: Name,
    pub extra_user_roles: ExtraUserRoles,
    /// `extra-user-roles` as the consumer wrote it, when it did (v1 echoes it).
    pub extra_user_roles_text: Option<String>,
    pub external_node_connectivity: bool,
}

/// Everything one relation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequests {
    pub protocol: Protocol,
    pub secrets: SecretMode,
    /// One in v0; one or more in v1, in the consumer's order.
    pub requests: Vec<DatabaseRequest>,
}

/// Reads and validates the request of `relation` from the remote
/// application's bag. `Ok(None)`: the consumer has not asked yet.
pub fn parse_requests(
    relation: &RelationId,
    app_data: &RelationData,
) -> Result<Option<ClientRequests>, ClientError> {
    let refuse = |field: &str, problem: String| ClientError::new(relation, field, problem);
    match app_data.get("version").map(String::as_str) {
        None | Some("") | Some("v0") => parse_v0(app_data, &refuse),
        Some("v1") => parse_v1(app_data, &refuse),
        Some(other) => Err(refuse(
            "version",
            format!(
                "{} is not a protocol version the charm speaks (v0, v1)",
                excerpt(other)
            ),
        )),
    }
}

type Refuse<'a> = dyn Fn(&str, String) -> ClientError + 'a;

const ENTITY_NOT_SUPPORTED: &str =
    "entity requests are not supported; ask for a database, and the charm creates its user";
const PREFIX_NOT_SUPPORTED: &str =
    "prefix requests (several databases by a name ending in *) are not supported; ask for \
     each database by name";
const MTLS_NOT_SUPPORTED: &str = "client certificates (mTLS) are not supported";

fn parse_v0(app: &RelationData, refuse: &Refuse) -> Result<Option<ClientRequests>, ClientError> {
    let value = |key: &str| app.get(key).map(String::as_str).filter(|v| !v.is_empty());
    for key in [
        "entity-type",
        "extra-group-roles",
        "entity-permissions",
        "requested-entity-secret",
    ] {
        if value(key).is_some() {
            return Err(refuse(key, ENTITY_NOT_SUPPORTED.to_string()));
        }
    }
    if value("prefix-matching").is_some() {
        return Err(refuse("prefix-matching", PREFIX_NOT_SUPPORTED.to_string()));
    }
    let Some(database) = value("database") else {
        return Ok(None);
    };
    let database = parse_database(database).map_err(|problem| refuse("database", problem))?;
    let extra_user_roles_text = value("extra-user-roles").map(str::to_string);
    let extra_user_roles = ExtraUserRoles::parse(extra_user_roles_text.as_deref().unwrap_or(""))
        .map_err(|problem| refuse("extra-user-roles", problem))?;
    let external_node_connectivity = match value("external-node-connectivity") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(refuse(
                "external-node-connectivity",
                format!("{} is not true or false", excerpt(other)),
            ))
        }
    };
    let secrets = match app.get("requested-secrets") {
        None => SecretMode::Plain,
        Some(text) => {
            parse_requested_secrets(text).map_err(|problem| refuse("requested-secrets", problem))?
        }
    };
    Ok(Some(ClientRequests {
        protocol: Protocol::V0,
        secrets,
        requests: vec![DatabaseRequest {
            ids: None,
            database,
            extra_user_roles,
            extra_user_roles_text,
            external_node_connectivity,
        }],
    }))
}

/// A requested database: a [`Name`], and never a prefix.
fn parse_database(text: &str) -> Result<Name, String> {
    if text.ends_with('*') {
        return Err(PREFIX_NOT_SUPPORTED.to_string());
    }
    Name::parse(NameKind::Database, text).map_err(|e| e.to_string())
}

/// `requested-secrets`: a JSON list of field names that covers every field
/// holding the password.
fn parse_requested_secrets(text: &str) -> Result<SecretMode, String> {
    if text.len() > MAX_REQUEST_VALUE_BYTES {
        return Err(format!(
            "the value is {} bytes long, more than the {MAX_REQUEST_VALUE_BYTES} accepted",
            text.len()
        ));
    }
    let list: Vec<Value> = serde_json::from_str(text)
        .map_err(|e| format!("{} is not a JSON list: {e}", excerpt(text)))?;
    if list.len() > MAX_SECRET_FIELDS {
        return Err(format!(
            "the list has {} items, more than the {MAX_SECRET_FIELDS} accepted",
            list.len()
        ));
    }
    let mut fields = BTreeSet::new();
    for item in &list {
        let field = item
            .as_str()
            .filter(|field| is_field_name(field))
            .ok_or_else(|| format!("item {} is not a field name", excerpt(&item.to_string())))?;
        fields.insert(field.to_string());
    }
    let missing: Vec<&str> = PASSWORD_FIELDS
        .into_iter()
        .filter(|field| !fields.contains(*field))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the list leaves out {}, which hold the password; the charm never publishes a \
             password in relation data when secrets are used",
            missing.join(", ")
        ));
    }
    Ok(SecretMode::Fields(fields))
}

/// A relation-data field name as the libraries spell them.
fn is_field_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_ID_BYTES
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn parse_v1(app: &RelationData, refuse: &Refuse) -> Result<Option<ClientRequests>, ClientError> {
    let Some(text) = app.get("requests").filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    if text.len() > MAX_REQUESTS_BYTES {
        return Err(refuse(
            "requests",
            format!(
                "the value is {} bytes long, more than the {MAX_REQUESTS_BYTES} accepted",
                text.len()
            ),
        ));
    }
    let items: Vec<Value> = serde_json::from_str(text).map_err(|e| {
        refuse(
            "requests",
            format!("{} is not a JSON list: {e}", excerpt(text)),
        )
    })?;
    if items.is_empty() {
        return Ok(None);
    }
    if items.len() > MAX_REQUESTS {
        return Err(refuse(
            "requests",
            format!(
                "{} requests, more than the {MAX_REQUESTS} accepted",
                items.len()
            ),
        ));
    }
    let mut requests: Vec<DatabaseRequest> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("requests[{index}]");
        let object = item
            .as_object()
            .ok_or_else(|| refuse(&path, "not a JSON object".to_string()))?;
        let request = parse_v1_request(object, &path, refuse)?;
        let ids = request.ids.as_ref().expect("v1 requests have ids");
        if let Some(earlier) = requests.iter().position(|r| {
            r.ids
                .as_ref()
                .is_some_and(|i| i.request_id == ids.request_id)
        }) {
            return Err(refuse(
                &format!("{path}.request-id"),
                format!(
                    "{} is also the id of requests[{earlier}]",
                    excerpt(&ids.request_id)
                ),
            ));
        }
        if let Some(earlier) = requests.iter().position(|r| r.database == request.database) {
            return Err(refuse(
                &format!("{path}.resource"),
                format!(
                    "requests[{earlier}] already asks for database {}",
                    request.database
                ),
            ));
        }
        requests.push(request);
    }
    Ok(Some(ClientRequests {
        protocol: Protocol::V1,
        secrets: SecretMode::all(),
        requests,
    }))
}

/// Keys of a v1 request that must be `null` or absent, and why.
const V1_UNSUPPORTED: [(&str, &str); 16] = [
    ("extra-group-roles", ENTITY_NOT_SUPPORTED),
    ("entity-type", ENTITY_NOT_SUPPORTED),
    ("entity-permissions", ENTITY_NOT_SUPPORTED),
    ("entity-name", ENTITY_NOT_SUPPORTED),
    ("entity-password", ENTITY_NOT_SUPPORTED),
    ("password", ENTITY_NOT_SUPPORTED),
    ("secret-requested-entity", ENTITY_NOT_SUPPORTED),
    ("requested-entity-secret", ENTITY_NOT_SUPPORTED),
    ("secret-mtls", MTLS_NOT_SUPPORTED),
    ("mtls-cert", MTLS_NOT_SUPPORTED),
    ("prefix-matching", PREFIX_NOT_SUPPORTED),
    ("prefix", PREFIX_NOT_SUPPORTED),
    (
        "subject",
        "a schema-registry subject is not a PostgreSQL resource",
    ),
    ("topic", "a Kafka topic is not a PostgreSQL resource"),
    ("index", "a search index is not a PostgreSQL resource"),
    ("plugin-url", "a search plugin is not a PostgreSQL resource"),
];

fn parse_v1_request(
    object: &Map<String, Value>,
    path: &str,
    refuse: &Refuse,
) -> Result<DatabaseRequest, ClientError> {
    let field = |key: &str| format!("{path}.{key}");
    let present = |key: &str| object.get(key).filter(|value| !value.is_null());
    let string = |key: &str| -> Result<Option<&str>, ClientError> {
        match present(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(other) => Err(refuse(
                &field(key),
                format!("{} is not a string", excerpt(&other.to_string())),
            )),
        }
    };
    for (key, why) in V1_UNSUPPORTED {
        if present(key).is_some() {
            return Err(refuse(&field(key), why.to_string()));
        }
    }

    let resource = string("resource")?;
    let alias = string("database")?;
    let (key, database) = match (resource, alias) {
        (Some(resource), Some(alias)) if resource != alias => {
            return Err(refuse(
                &field("database"),
                format!(
                    "{} differs from resource {}",
                    excerpt(alias),
                    excerpt(resource)
                ),
            ))
        }
        (Some(resource), _) => ("resource", resource),
        (None, Some(alias)) => ("database", alias),
        (None, None) => {
            return Err(refuse(
                &field("resource"),
                "the request names no database".to_string(),
            ))
        }
    };
    let database = parse_database(database).map_err(|problem| refuse(&field(key), problem))?;

    let request_id = string("request-id")?
        .ok_or_else(|| refuse(&field("request-id"), "the request has no id".to_string()))?;
    check_id(request_id).map_err(|problem| refuse(&field("request-id"), problem))?;
    let salt = string("salt")?;
    if let Some(salt) = salt {
        check_id(salt).map_err(|problem| refuse(&field("salt"), problem))?;
    }

    let extra_user_roles_text = string("extra-user-roles")?
        .filter(|text| !text.is_empty())
        .map(str::to_string);
    let extra_user_roles = ExtraUserRoles::parse(extra_user_roles_text.as_deref().unwrap_or(""))
        .map_err(|problem| refuse(&field("extra-user-roles"), problem))?;
    let external_node_connectivity = match present("external-node-connectivity") {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => {
            return Err(refuse(
                &field("external-node-connectivity"),
                format!("{} is not true or false", excerpt(&other.to_string())),
            ))
        }
    };
    Ok(DatabaseRequest {
        ids: Some(RequestIds {
            request_id: request_id.to_string(),
            salt: salt.map(str::to_string),
        }),
        database,
        extra_user_roles,
        extra_user_roles_text,
        external_node_connectivity,
    })
}

/// A request id or salt: it goes into secret labels and back into the bag.
fn check_id(text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > MAX_ID_BYTES {
        return Err(format!(
            "{} must have 1 to {MAX_ID_BYTES} bytes",
            excerpt(text)
        ));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "{} may hold only ASCII letters, digits, '_' and '-'",
            excerpt(text)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgresql_client::testing::{bag, relation};

    /// The requirer app bag data_interfaces v0 (LIBPATCH 58) wrote under
    /// the emulator for `DatabaseRequires(database_name="appdb",
    /// extra_user_roles="CREATEDB")`.
    fn real_v0_bag() -> RelationData {
        bag(&[
            ("database", "appdb"),
            ("extra-user-roles", "CREATEDB"),
            ("provided-secrets", "[\"mtls-cert\"]"),
            (
                "requested-secrets",
                "[\"username\", \"password\", \"tls\", \"tls-ca\", \"uris\", \
                 \"read-only-uris\", \"entity-name\", \"entity-password\"]",
            ),
        ])
    }

    /// One request as dpcharmlibs-interfaces 1.2.2 wrote it under the
    /// emulator, for `RequirerCommonModel(resource=..., extra_user_roles=...)`.
    fn real_v1_request(resource: &str, request_id: &str, roles: Option<&str>) -> Value {
        let mut request = serde_json::json!({
            "resource": resource, "request-id": request_id, "salt": "8gFgs4Dk7HzDqjNe",
            "extra-user-roles": roles, "extra-group-roles": null,
            "external-node-connectivity": false, "entity-type": null,
            "entity-permissions": null, "secret-mtls": null, "mtls-cert": null,
            "secret-requested-entity": null, "entity-name": null, "password": null,
            "prefix-matching": null, "entity-password": null,
        });
        if roles.is_none() {
            request["extra-user-roles"] = Value::Null;
        }
        request
    }

    fn v1_bag(requests: &[Value]) -> RelationData {
        bag(&[
            ("version", "v1"),
            ("requests", &serde_json::to_string(requests).unwrap()),
        ])
    }

    #[test]
    fn a_real_v0_request_is_one_database_with_secrets() {
        let parsed = parse_requests(&relation(), &real_v0_bag())
            .unwrap()
            .unwrap();
        assert_eq!(parsed.protocol, Protocol::V0);
        assert_eq!(parsed.requests.len(), 1);
        let request = &parsed.requests[0];
        assert_eq!(request.database.as_str(), "appdb");
        assert_eq!(request.ids, None);
        assert_eq!(
            request.extra_user_roles,
            ExtraUserRoles::parse("createdb").unwrap()
        );
        assert_eq!(request.extra_user_roles_text.as_deref(), Some("CREATEDB"));
        assert!(!request.external_node_connectivity);
        for field in USER_FIELDS.iter().chain(TLS_FIELDS.iter()) {
            assert!(parsed.secrets.in_secret(field), "{field}");
        }
    }

    #[test]
    fn v0_variants_that_are_accepted() {
        let plain = parse_requests(&relation(), &bag(&[("database", "shop")]))
            .unwrap()
            .unwrap();
        assert_eq!(plain.secrets, SecretMode::Plain);
        assert_eq!(
            plain.requests[0].extra_user_roles,
            ExtraUserRoles::default()
        );
        let explicit = bag(&[
            ("version", "v0"),
            ("database", "shop-2_b"),
            ("external-node-connectivity", "true"),
            (
                "requested-secrets",
                "[\"password\",\"uris\",\"read-only-uris\"]",
            ),
            ("alias", "cluster1"),
            ("some-future-key", "anything \n at all"),
            ("entity-type", ""),
        ]);
        let parsed = parse_requests(&relation(), &explicit).unwrap().unwrap();
        assert_eq!(parsed.requests[0].database.as_str(), "shop-2_b");
        assert!(parsed.requests[0].external_node_connectivity);
        assert!(parsed.secrets.in_secret("password"));
        assert!(!parsed.secrets.in_secret("username"));
        assert!(!parsed.secrets.in_secret("tls"));
    }

    #[test]
    fn a_consumer_that_has_not_asked_yet_is_waiting() {
        for app in [
            bag(&[]),
            bag(&[("database", "")]),
            bag(&[("requested-secrets", "[\"password\"]")]),
            bag(&[("version", "v1")]),
            bag(&[("version", "v1"), ("requests", "")]),
            bag(&[("version", "v1"), ("requests", "[]")]),
        ] {
            assert_eq!(parse_requests(&relation(), &app), Ok(None), "{app:?}");
        }
    }

    #[test]
    fn real_v1_requests_are_answered_one_by_one() {
        let app = v1_bag(&[
            real_v1_request("appdb", "85b027df81b4186b", Some("CREATEDB")),
            real_v1_request("reports", "0b0708e796f4afbe", None),
        ]);
        let parsed = parse_requests(&relation(), &app).unwrap().unwrap();
        assert_eq!(parsed.protocol, Protocol::V1);
        assert_eq!(parsed.secrets, SecretMode::all());
        let summary: Vec<(&str, &str, Option<&str>, Option<&str>)> = parsed
            .requests
            .iter()
            .map(|r| {
                let ids = r.ids.as_ref().unwrap();
                (
                    r.database.as_str(),
                    ids.request_id.as_str(),
                    ids.salt.as_deref(),
                    r.extra_user_roles_text.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "appdb",
                    "85b027df81b4186b",
                    Some("8gFgs4Dk7HzDqjNe"),
                    Some("CREATEDB")
                ),
                (
                    "reports",
                    "0b0708e796f4afbe",
                    Some("8gFgs4Dk7HzDqjNe"),
                    None
                ),
            ]
        );
        // The `database` alias of `resource`, and a request with only what
        // matters.
        let minimal = v1_bag(&[serde_json::json!({"database": "shop", "request-id": "r1"})]);
        let parsed = parse_requests(&relation(), &minimal).unwrap().unwrap();
        assert_eq!(parsed.requests[0].database.as_str(), "shop");
        assert_eq!(parsed.requests[0].ids.as_ref().unwrap().salt, None);
        let both = v1_bag(&[serde_json::json!(
            {"resource": "shop", "database": "shop", "request-id": "r1"}
        )]);
        assert!(parse_requests(&relation(), &both).is_ok());
    }

    /// `(field, problem)` for the v0 bag `pairs`.
    fn refusal(app: &RelationData) -> (String, String) {
        let error = parse_requests(&relation(), app).expect_err(&format!("{app:?}"));
        let text = error.to_string();
        assert!(text.starts_with("database:7: "), "{text}");
        assert!(!text.contains('\n') && text.len() < 400, "{text}");
        (error.field, error.problem)
    }

    #[test]
    fn hostile_v0_fields_are_refused_by_name() {
        let long = "d".repeat(64);
        let huge_roles = "r,".repeat(MAX_REQUEST_VALUE_BYTES);
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (
                vec![("database", "a'b")],
                "database",
                "'\\'' is not allowed",
            ),
            (
                vec![("database", "a\"b")],
                "database",
                "'\"' is not allowed",
            ),
            (
                vec![("database", "a\nb")],
                "database",
                "'\\n' is not allowed",
            ),
            (
                vec![("database", "a\0b")],
                "database",
                "'\\u{0}' is not allowed",
            ),
            (
                vec![("database", "a;DROP")],
                "database",
                "';' is not allowed",
            ),
            (
                vec![("database", "dé")],
                "database",
                "'\\u{e9}' is not allowed",
            ),
            (vec![("database", &long)], "database", "64 bytes long"),
            (
                vec![("database", "postgres")],
                "database",
                "server's own databases",
            ),
            (
                vec![("database", "template1")],
                "database",
                "server's own databases",
            ),
            (vec![("database", "app*")], "database", "prefix requests"),
            (vec![("database", "*")], "database", "prefix requests"),
            (
                vec![("database", "app"), ("prefix-matching", "all")],
                "prefix-matching",
                "prefix requests",
            ),
            (
                vec![("database", "app"), ("entity-type", "USER")],
                "entity-type",
                "entity requests are not supported",
            ),
            (
                vec![("database", "app"), ("extra-group-roles", "x")],
                "extra-group-roles",
                "entity requests",
            ),
            (
                vec![("database", "app"), ("entity-permissions", "[]")],
                "entity-permissions",
                "entity requests",
            ),
            (
                vec![("database", "app"), ("requested-entity-secret", "secret:x")],
                "requested-entity-secret",
                "entity requests",
            ),
            (
                vec![("database", "app"), ("extra-user-roles", "LOGIN")],
                "extra-user-roles",
                "LOGIN is a role attribute",
            ),
            (
                vec![
                    ("database", "app"),
                    ("extra-user-roles", "pg_read_all_data"),
                ],
                "extra-user-roles",
                "pg_",
            ),
            (
                vec![("database", "app"), ("extra-user-roles", "x y")],
                "extra-user-roles",
                "a space is not allowed",
            ),
            (
                vec![("database", "app"), ("extra-user-roles", &huge_roles)],
                "extra-user-roles",
                "bytes long",
            ),
            (
                vec![("database", "app"), ("external-node-connectivity", "yes")],
                "external-node-connectivity",
                "\"yes\" is not true or false",
            ),
            (
                vec![("database", "app"), ("requested-secrets", "[\"password\"")],
                "requested-secrets",
                "is not a JSON list",
            ),
            (
                vec![("database", "app"), ("requested-secrets", "{}")],
                "requested-secrets",
                "is not a JSON list",
            ),
            (
                vec![("database", "app"), ("requested-secrets", "[1]")],
                "requested-secrets",
                "item \"1\" is not a field name",
            ),
            (
                vec![("database", "app"), ("requested-secrets", "[\"a\\nb\"]")],
                "requested-secrets",
                "is not a field name",
            ),
            (
                vec![("database", "app"), ("requested-secrets", "[]")],
                "requested-secrets",
                "leaves out password, uris, read-only-uris",
            ),
            (
                vec![
                    ("database", "app"),
                    ("requested-secrets", "[\"username\",\"password\"]"),
                ],
                "requested-secrets",
                "leaves out uris, read-only-uris, which hold the password",
            ),
            (
                vec![("version", "v2"), ("database", "app")],
                "version",
                "\"v2\" is not a protocol version",
            ),
        ];
        for (pairs, field, want) in cases {
            let (got_field, problem) = refusal(&bag(&pairs));
            assert_eq!(got_field, field, "{pairs:?}: {problem}");
            assert!(problem.contains(want), "{pairs:?}: {problem}");
        }
        let many: Vec<String> = (0..=MAX_SECRET_FIELDS)
            .map(|i| format!("\"f{i}\""))
            .collect();
        let (_, problem) = refusal(&bag(&[
            ("database", "app"),
            ("requested-secrets", &format!("[{}]", many.join(","))),
        ]));
        assert!(problem.contains("65 items"), "{problem}");
    }

    #[test]
    fn hostile_v1_requests_are_refused_by_path() {
        let ok = || real_v1_request("appdb", "85b027df81b4186b", None);
        let with = |key: &str, value: Value| {
            let mut request = ok();
            request[key] = value;
            request
        };
        let without = |key: &str| {
            let mut request = ok();
            request.as_object_mut().unwrap().remove(key);
            request
        };
        let cases: Vec<(Vec<Value>, &str, &str)> = vec![
            (
                vec![with("resource", "a'b".into())],
                "requests[0].resource",
                "'\\'' is not allowed",
            ),
            (
                vec![with("resource", "x*".into())],
                "requests[0].resource",
                "prefix requests",
            ),
            (
                vec![with("resource", 5.into())],
                "requests[0].resource",
                "\"5\" is not a string",
            ),
            (
                vec![without("resource")],
                "requests[0].resource",
                "names no database",
            ),
            (
                vec![with("database", "other".into())],
                "requests[0].database",
                "\"other\" differs from resource \"appdb\"",
            ),
            (
                vec![without("request-id")],
                "requests[0].request-id",
                "has no id",
            ),
            (
                vec![with("request-id", "".into())],
                "requests[0].request-id",
                "1 to 64 bytes",
            ),
            (
                vec![with("request-id", "a.b".into())],
                "requests[0].request-id",
                "only ASCII letters",
            ),
            (
                vec![with("request-id", "x".repeat(65).into())],
                "requests[0].request-id",
                "1 to 64 bytes",
            ),
            (
                vec![with("salt", "s\nalt".into())],
                "requests[0].salt",
                "only ASCII letters",
            ),
            (
                vec![with("extra-user-roles", "SUPERUSER,REPLICATION".into())],
                "requests[0].extra-user-roles",
                "REPLICATION is a role attribute",
            ),
            (
                vec![with("extra-user-roles", serde_json::json!(["CREATEDB"]))],
                "requests[0].extra-user-roles",
                "is not a string",
            ),
            (
                vec![with("external-node-connectivity", "true".into())],
                "requests[0].external-node-connectivity",
                "is not true or false",
            ),
            (
                vec![with("entity-type", "USER".into())],
                "requests[0].entity-type",
                "entity requests are not supported",
            ),
            (
                vec![with("extra-group-roles", "g".into())],
                "requests[0].extra-group-roles",
                "entity requests",
            ),
            (
                vec![with("entity-name", "alice".into())],
                "requests[0].entity-name",
                "entity requests",
            ),
            (
                vec![with("password", "hunter2".into())],
                "requests[0].password",
                "entity requests",
            ),
            (
                vec![with("entity-permissions", serde_json::json!([]))],
                "requests[0].entity-permissions",
                "entity requests",
            ),
            (
                vec![with("secret-requested-entity", "secret:abc".into())],
                "requests[0].secret-requested-entity",
                "entity requests",
            ),
            (
                vec![with("mtls-cert", "PEM".into())],
                "requests[0].mtls-cert",
                "mTLS",
            ),
            (
                vec![with("prefix-matching", "all".into())],
                "requests[0].prefix-matching",
                "prefix requests",
            ),
            (
                vec![with("topic", "orders".into())],
                "requests[0].topic",
                "Kafka topic",
            ),
            (
                vec![with("plugin-url", "http://x".into())],
                "requests[0].plugin-url",
                "search plugin",
            ),
            (
                vec![ok(), real_v1_request("other", "85b027df81b4186b", None)],
                "requests[1].request-id",
                "is also the id of requests[0]",
            ),
            (
                vec![ok(), real_v1_request("appdb", "ffff", None)],
                "requests[1].resource",
                "requests[0] already asks for database appdb",
            ),
            (
                vec![Value::from("appdb")],
                "requests[0]",
                "not a JSON object",
            ),
        ];
        for (requests, field, want) in cases {
            let (got_field, problem) = refusal(&v1_bag(&requests));
            assert_eq!(got_field, field, "{requests:?}: {problem}");
            assert!(problem.contains(want), "{requests:?}: {problem}");
        }
        let too_many: Vec<Value> = (0..=MAX_REQUESTS)
            .map(|i| real_v1_request(&format!("db{i}"), &format!("id{i}"), None))
            .collect();
        let (field, problem) = refusal(&v1_bag(&too_many));
        assert_eq!(field, "requests");
        assert!(
            problem.contains("17 requests, more than the 16"),
            "{problem}"
        );
        for text in ["{\"resource\": \"x\"}", "[{", "not json", "\"[]\""] {
            let (field, problem) = refusal(&bag(&[("version", "v1"), ("requests", text)]));
            assert_eq!(field, "requests");
            assert!(problem.contains("is not a JSON list"), "{text}: {problem}");
        }
        let huge = format!("[\"{}\"]", "x".repeat(MAX_REQUESTS_BYTES));
        let (_, problem) = refusal(&bag(&[("version", "v1"), ("requests", &huge)]));
        assert!(problem.contains("bytes long"), "{problem}");
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let most: Vec<Value> = (0..MAX_REQUESTS)
            .map(|i| real_v1_request(&format!("db{i}"), &format!("id{i}"), None))
            .collect();
        let parsed = parse_requests(&relation(), &v1_bag(&most))
            .unwrap()
            .unwrap();
        assert_eq!(parsed.requests.len(), MAX_REQUESTS);
        let longest_id = "i".repeat(MAX_ID_BYTES);
        let request = real_v1_request(&"d".repeat(63), &longest_id, None);
        assert!(parse_requests(&relation(), &v1_bag(&[request])).is_ok());
    }
}
