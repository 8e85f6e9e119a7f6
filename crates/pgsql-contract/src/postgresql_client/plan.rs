//! One `database` relation, planned: its login role, its databases, and
//! the secrets and plain fields that carry its credentials (pure).
//!
//! **Names.** As on `db`, the role that owns the databases derives from
//! the remote application, so an application that relates again gets back
//! the role that owns its tables (databases are never dropped):
//! `jujuclient_<app>`, made valid as [`names`] makes `db`'s names. It has
//! no `LOGIN`: each relation logs in as its own member of it
//! ([`names::database_login`], `jujuclient_<app>_<n>`, and its alternate,
//! [`crate::tenancy::logins`]), which the credentials name. Each request's
//! database is the one it names; [`crate::tenancy::ownership::decide_database`] decides,
//! before anything is created, whether this consumer may have it. The
//! caller records the owner of what it creates as
//! `(remote application, "database")`.
//!
//! **Secrets** (as both libraries label and fill them):
//!
//! | group | content | label, v0 | label, v1 |
//! |---|---|---|---|
//! | `user` | `username`, `password`, `uris`, `read-only-uris` | `database.<n>.user.secret` | `database.<n>.<request-id>.user.secret` |
//! | `tls` | `tls`, `tls-ca` (only with a CA) | `database.<n>.tls.secret` | `database.<n>.<request-id>.tls.secret` |
//!
//! where `<n>` is the relation's number. In v0 only the fields named in
//! `requested-secrets` go into a secret, the rest plainly in the bag, which
//! is what the library reads; without `requested-secrets` nothing is in a
//! secret. The charm creates each secret as the application, grants it to
//! the relation, and publishes its URI as `secret-<group>`.
//!
//! **Values.** `endpoints` is the primary's `host:port`,
//! `read-only-endpoints` the standbys' (sorted, comma-separated), or the
//! primary's when there are none; an IPv6 host is written `[addr]`. `uris`
//! is `postgresql://<user>:<password>@<primary>:<port>/<database>`,
//! `read-only-uris` the same with every read-only endpoint
//! (`…@h1:5432,h2:5432/…`, libpq's multi-host form). `tls` is `True` or
//! `False` in v0 (what the PostgreSQL charms publish and v0 consumers
//! compare with) and JSON `true` or `false` in v1 (the library reads it
//! with `json.loads`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::request::{parse_requests, DatabaseRequest, SecretMode, TLS_FIELDS, USER_FIELDS};
use super::roles::{check_privileges, ConsumerPrivileges, ExtraUserRoles};
use super::{ClientError, Protocol, ENDPOINT};
use crate::excerpt;
use crate::ids::{RelationData, RelationId};
use crate::names;
use crate::secret::Secret;
use crate::sql::Name;
use crate::Credentials;

/// The start of every `database` relation's login role.
pub const USER_PREFIX: &str = "jujuclient_";

/// The role that owns the databases of `database` relations with
/// `remote_app` (no `LOGIN`; the relations' logins act as it).
pub fn relation_user(remote_app: &str) -> Name {
    names::relation_user(crate::ClientEndpoint::DATABASE, remote_app)
}

/// Where consumers reach the server, as the relation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The primary's address for the relation (`network-get … --ingress-address`).
    pub primary: String,
    /// The standbys' addresses; empty with one unit.
    pub standbys: Vec<String>,
    pub port: u16,
    /// The server's version, e.g. `16.4`.
    pub version: String,
    pub tls: Tls,
}

/// Whether clients can use TLS, and the CA to check the server with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub enabled: bool,
    /// PEM.
    pub ca: Option<String>,
}

/// A secret group, as the libraries name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretGroup {
    User,
    Tls,
}

impl SecretGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretGroup::User => "user",
            SecretGroup::Tls => "tls",
        }
    }

    /// The bag field that holds the secret's URI: `secret-user`, `secret-tls`.
    pub fn uri_field(self) -> String {
        format!("secret-{}", self.as_str())
    }

    fn of_field(field: &str) -> Option<SecretGroup> {
        if USER_FIELDS.contains(&field) {
            Some(SecretGroup::User)
        } else if TLS_FIELDS.contains(&field) {
            Some(SecretGroup::Tls)
        } else {
            None
        }
    }
}

/// One application-owned secret the relation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSecret {
    pub group: SecretGroup,
    /// The owner's label; one secret per label.
    pub label: String,
    /// Holds the password (user group).
    pub content: Secret<RelationData>,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub request: DatabaseRequest,
    /// Empty when the consumer cannot use secrets.
    pub secrets: Vec<PlannedSecret>,
    /// The fields that go plainly in the bag (`database`, `endpoints`,
    /// `read-only-endpoints`, `version`, and in v0 whatever was not
    /// requested as a secret, password included without secrets).
    pub fields: Secret<RelationData>,
}

/// The plan for one relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPlan {
    pub relation: RelationId,
    pub protocol: Protocol,
    /// The login the credentials name (the relation's own, a member of
    /// [`relation_user`]).
    pub user: Name,
    /// What all its requests asked for together: privileges the user gets
    /// (each already allowed by `consumer-privileges`) and group roles to
    /// check with [`super::roles::decide_extra_role`] and grant.
    pub extra_user_roles: ExtraUserRoles,
    /// One per request, in the consumer's order.
    pub answers: Vec<Answer>,
}

impl ClientPlan {
    /// The databases the relation's user owns (each to be judged by
    /// `decide_database` first).
    pub fn databases(&self) -> impl Iterator<Item = &Name> {
        self.answers.iter().map(|answer| &answer.request.database)
    }

    /// Every secret to create (or update) and grant to the relation.
    pub fn secrets(&self) -> impl Iterator<Item = &PlannedSecret> {
        self.answers.iter().flat_map(|answer| answer.secrets.iter())
    }
}

/// Plans the `database` relation `relation` with `remote_app`, from the
/// remote application's bag. `credentials` are those of the relation's
/// active login. `Ok(None)`: the consumer has not asked
/// yet. An error refuses the relation as a whole.
pub fn plan_client(
    relation: &RelationId,
    remote_app: &str,
    app_data: &RelationData,
    server: &Server,
    credentials: &Credentials,
    privileges: &ConsumerPrivileges,
) -> Result<Option<ClientPlan>, ClientError> {
    let Some(requests) = parse_requests(relation, app_data)? else {
        return Ok(None);
    };
    let mut extra_user_roles = ExtraUserRoles::default();
    for (index, request) in requests.requests.iter().enumerate() {
        let field = match requests.protocol {
            Protocol::V0 => "extra-user-roles".to_string(),
            Protocol::V1 => format!("requests[{index}].extra-user-roles"),
        };
        check_privileges(remote_app, &request.extra_user_roles, privileges)
            .map_err(|problem| ClientError::new(relation, field, problem))?;
        extra_user_roles = extra_user_roles.union(&request.extra_user_roles);
    }
    let addresses =
        Addresses::new(server).map_err(|problem| ClientError::new(relation, "", problem))?;
    let answers = requests
        .requests
        .into_iter()
        .map(|request| {
            answer(
                relation,
                requests.protocol,
                &requests.secrets,
                request,
                server,
                &addresses,
                credentials,
            )
        })
        .collect();
    Ok(Some(ClientPlan {
        relation: relation.clone(),
        protocol: requests.protocol,
        user: credentials.user.clone(),
        extra_user_roles,
        answers,
    }))
}

/// The server's addresses, checked and written once.
struct Addresses {
    /// `host:port` of the primary.
    primary: String,
    /// `host:port` of each read-only endpoint, sorted.
    read_only: Vec<String>,
}

impl Addresses {
    fn new(server: &Server) -> Result<Addresses, String> {
        let endpoint = |host: &str| -> Result<String, String> {
            let written = uri_host(host).ok_or_else(|| {
                format!(
                    "the server address {} cannot go into a connection URI",
                    excerpt(host)
                )
            })?;
            Ok(format!("{written}:{}", server.port))
        };
        let primary = endpoint(&server.primary)?;
        let standbys: BTreeSet<String> = server
            .standbys
            .iter()
            .map(|host| endpoint(host))
            .collect::<Result<_, _>>()?;
        let read_only = if standbys.is_empty() {
            vec![primary.clone()]
        } else {
            standbys.into_iter().collect()
        };
        Ok(Addresses { primary, read_only })
    }
}

/// `host` as the host part of a URI: an IP address (IPv6 in brackets) or a
/// DNS name; `None` for anything else.
fn uri_host(host: &str) -> Option<String> {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(address)) => Some(format!("[{address}]")),
        Ok(IpAddr::V4(address)) => Some(address.to_string()),
        Err(_) => {
            let is_dns = !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            is_dns.then(|| host.to_ascii_lowercase())
        }
    }
}

/// `text` percent-encoded for a URI's user, password or path: everything but
/// RFC 3986's unreserved characters. (The charm's names and passwords are
/// unreserved already; this keeps the URI right whatever they hold.)
fn uri_component(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The answer to `request`: every field, split between secrets and the bag.
fn answer(
    relation: &RelationId,
    protocol: Protocol,
    mode: &SecretMode,
    request: DatabaseRequest,
    server: &Server,
    addresses: &Addresses,
    credentials: &Credentials,
) -> Answer {
    let database = request.database.as_str();
    let userinfo = format!(
        "{}:{}",
        uri_component(credentials.user.as_str()),
        uri_component(credentials.password.expose())
    );
    let uri = |hosts: &str| {
        format!(
            "postgresql://{userinfo}@{hosts}/{}",
            uri_component(database)
        )
    };
    let tls = match (protocol, server.tls.enabled) {
        (Protocol::V0, true) => "True",
        (Protocol::V0, false) => "False",
        (Protocol::V1, true) => "true",
        (Protocol::V1, false) => "false",
    };
    let mut all = vec![
        ("database", database.to_string()),
        ("endpoints", addresses.primary.clone()),
        ("read-only-endpoints", addresses.read_only.join(",")),
        ("version", server.version.clone()),
        ("username", credentials.user.to_string()),
        ("password", credentials.password.expose().clone()),
        ("uris", uri(&addresses.primary)),
        ("read-only-uris", uri(&addresses.read_only.join(","))),
        ("tls", tls.to_string()),
    ];
    if server.tls.enabled {
        if let Some(ca) = &server.tls.ca {
            all.push(("tls-ca", ca.clone()));
        }
    }

    let mut fields = RelationData::new();
    let mut contents: BTreeMap<SecretGroup, RelationData> = BTreeMap::new();
    for (field, value) in all {
        match SecretGroup::of_field(field) {
            Some(group) if mode.in_secret(field) => {
                contents
                    .entry(group)
                    .or_default()
                    .insert(field.to_string(), value);
            }
            _ => {
                fields.insert(field.to_string(), value);
            }
        }
    }
    let secrets = contents
        .into_iter()
        .map(|(group, content)| PlannedSecret {
            group,
            label: secret_label(
                relation,
                request.ids.as_ref().map(|i| &i.request_id[..]),
                group,
            ),
            content: Secret::new(content),
        })
        .collect();
    Answer {
        request,
        secrets,
        fields: Secret::new(fields),
    }
}

/// The relation whose user secret `label` is (the inverse of
/// [`secret_label`] for the `user` group); `None` for any other label.
pub fn user_secret_relation(label: &str) -> Option<RelationId> {
    let rest = label
        .strip_prefix(ENDPOINT)?
        .strip_prefix('.')?
        .strip_suffix(".user.secret")?;
    let number = rest.split('.').next()?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(RelationId::new(ENDPOINT, number.parse().ok()?))
}

/// The owner's label, as the libraries make it (see the module docs).
fn secret_label(relation: &RelationId, request_id: Option<&str>, group: SecretGroup) -> String {
    let number = relation.number();
    let group = group.as_str();
    match request_id {
        None => format!("{ENDPOINT}.{number}.{group}.secret"),
        Some(id) => format!("{ENDPOINT}.{number}.{id}.{group}.secret"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgresql_client::roles::Privilege;
    use crate::postgresql_client::testing::{bag, plan, plan_with, server, PASSWORD};
    use crate::sql::MAX_IDENTIFIER_BYTES;

    const ALL_SECRETS: &str = "[\"username\", \"password\", \"tls\", \"tls-ca\", \"uris\", \
                               \"read-only-uris\", \"entity-name\", \"entity-password\"]";

    #[test]
    fn users_are_named_after_the_application() {
        assert_eq!(relation_user("shop").as_str(), "jujuclient_shop");
        let cmr = "remote-76cd96ab50f146b284912afd1cc13a0e";
        assert_eq!(relation_user(cmr).as_str(), format!("jujuclient_{cmr}"));
        let long = "x".repeat(60);
        let fitted = relation_user(&long);
        assert!(fitted.as_str().len() <= MAX_IDENTIFIER_BYTES, "{fitted}");
        assert!(fitted.as_str().starts_with("jujuclient_xxx"), "{fitted}");
        assert_ne!(relation_user(&long), relation_user(&format!("{long}y")));
        assert_ne!(
            relation_user("shop"),
            names::relation_user(crate::ClientEndpoint::DB, "shop")
        );
    }

    #[test]
    fn v0_with_secrets_keeps_every_credential_in_two_secrets() {
        let app = bag(&[("database", "shopdb"), ("requested-secrets", ALL_SECRETS)]);
        let plan = plan(&app, &server(&["10.1.0.7", "10.1.0.6", "10.1.0.7"]))
            .unwrap()
            .unwrap();
        assert_eq!(plan.protocol, Protocol::V0);
        assert_eq!(plan.user.as_str(), "jujuclient_shop_7");
        assert_eq!(
            plan.databases().map(Name::as_str).collect::<Vec<_>>(),
            ["shopdb"]
        );
        let answer = &plan.answers[0];
        assert_eq!(
            answer.fields.expose(),
            &bag(&[
                ("database", "shopdb"),
                ("endpoints", "10.1.0.5:5432"),
                ("read-only-endpoints", "10.1.0.6:5432,10.1.0.7:5432"),
                ("version", "16.4"),
            ])
        );
        let secrets: Vec<(&str, &RelationData)> = plan
            .secrets()
            .map(|s| (s.label.as_str(), s.content.expose()))
            .collect();
        let uri = format!("postgresql://jujuclient_shop_7:{PASSWORD}@10.1.0.5:5432/shopdb");
        let ro_uri =
            format!("postgresql://jujuclient_shop_7:{PASSWORD}@10.1.0.6:5432,10.1.0.7:5432/shopdb");
        assert_eq!(
            secrets,
            [
                (
                    "database.7.user.secret",
                    &bag(&[
                        ("password", PASSWORD),
                        ("read-only-uris", &ro_uri),
                        ("uris", &uri),
                        ("username", "jujuclient_shop_7"),
                    ])
                ),
                ("database.7.tls.secret", &bag(&[("tls", "False")])),
            ]
        );
        assert_eq!(
            plan.secrets().map(|s| s.group).collect::<Vec<_>>(),
            [SecretGroup::User, SecretGroup::Tls]
        );
    }

    #[test]
    fn v0_without_secrets_publishes_plainly_and_fields_not_asked_for_stay_plain() {
        let plain = plan(&bag(&[("database", "shopdb")]), &server(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(plain.secrets().count(), 0);
        let fields = plain.answers[0].fields.expose();
        let uri = format!("postgresql://jujuclient_shop_7:{PASSWORD}@10.1.0.5:5432/shopdb");
        assert_eq!(
            fields,
            &bag(&[
                ("database", "shopdb"),
                ("endpoints", "10.1.0.5:5432"),
                ("password", PASSWORD),
                ("read-only-endpoints", "10.1.0.5:5432"),
                ("read-only-uris", &uri),
                ("tls", "False"),
                ("uris", &uri),
                ("username", "jujuclient_shop_7"),
                ("version", "16.4"),
            ])
        );
        // A partial list: what it leaves out goes plainly (never a password).
        let partial = bag(&[
            ("database", "shopdb"),
            (
                "requested-secrets",
                "[\"password\", \"uris\", \"read-only-uris\"]",
            ),
        ]);
        let partial = plan(&partial, &server(&[])).unwrap().unwrap();
        let fields = partial.answers[0].fields.expose();
        assert_eq!(
            fields.get("username").map(String::as_str),
            Some("jujuclient_shop_7")
        );
        assert_eq!(fields.get("tls").map(String::as_str), Some("False"));
        assert!(!fields.values().any(|v| v.contains(PASSWORD)), "{fields:?}");
        assert_eq!(
            partial
                .secrets()
                .map(|s| s.label.as_str())
                .collect::<Vec<_>>(),
            ["database.7.user.secret"]
        );
    }

    #[test]
    fn tls_is_published_as_each_library_reads_it() {
        let mut with_tls = server(&[]);
        with_tls.tls = Tls {
            enabled: true,
            ca: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".into()),
        };
        let v0 = bag(&[("database", "shopdb"), ("requested-secrets", ALL_SECRETS)]);
        let v0 = plan(&v0, &with_tls).unwrap().unwrap();
        let tls = v0.answers[0].secrets[1].content.expose();
        assert_eq!(tls["tls"], "True");
        assert!(tls["tls-ca"].starts_with("-----BEGIN CERTIFICATE-----\n"));
        let v1 = bag(&[
            ("version", "v1"),
            (
                "requests",
                "[{\"resource\": \"shopdb\", \"request-id\": \"abc\"}]",
            ),
        ]);
        let on = plan(&v1, &with_tls).unwrap().unwrap();
        assert_eq!(on.answers[0].secrets[1].content.expose()["tls"], "true");
        let off = plan(&v1, &server(&[])).unwrap().unwrap();
        assert_eq!(
            off.answers[0].secrets[1].content.expose(),
            &bag(&[("tls", "false")])
        );
    }

    #[test]
    fn v1_answers_each_request_with_secrets_labelled_by_its_id() {
        let app = bag(&[
            ("version", "v1"),
            (
                "requests",
                "[{\"resource\": \"shopdb\", \"request-id\": \"85b027df81b4186b\", \
                   \"salt\": \"s1\", \"extra-user-roles\": \"CREATEDB\"}, \
                  {\"resource\": \"reports\", \"request-id\": \"0b0708e796f4afbe\", \
                   \"extra-user-roles\": \"readers\"}]",
            ),
        ]);
        let plan = plan(&app, &server(&["10.1.0.6"])).unwrap().unwrap();
        assert_eq!(plan.protocol, Protocol::V1);
        assert_eq!(
            plan.databases().map(Name::as_str).collect::<Vec<_>>(),
            ["shopdb", "reports"]
        );
        assert_eq!(
            plan.extra_user_roles
                .privileges
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [Privilege::CreateDb]
        );
        assert_eq!(
            plan.extra_user_roles
                .groups
                .iter()
                .map(Name::as_str)
                .collect::<Vec<_>>(),
            ["readers"]
        );
        assert_eq!(
            plan.secrets().map(|s| s.label.as_str()).collect::<Vec<_>>(),
            [
                "database.7.85b027df81b4186b.user.secret",
                "database.7.85b027df81b4186b.tls.secret",
                "database.7.0b0708e796f4afbe.user.secret",
                "database.7.0b0708e796f4afbe.tls.secret",
            ]
        );
        let reports = &plan.answers[1];
        assert_eq!(
            reports.secrets[0].content.expose()["uris"],
            format!("postgresql://jujuclient_shop_7:{PASSWORD}@10.1.0.5:5432/reports")
        );
        assert_eq!(
            reports.secrets[0].content.expose()["read-only-uris"],
            format!("postgresql://jujuclient_shop_7:{PASSWORD}@10.1.0.6:5432/reports")
        );
        assert_eq!(
            reports.fields.expose(),
            &bag(&[
                ("database", "reports"),
                ("endpoints", "10.1.0.5:5432"),
                ("read-only-endpoints", "10.1.0.6:5432"),
                ("version", "16.4"),
            ])
        );
    }

    #[test]
    fn superuser_and_createrole_need_the_operator() {
        let app = bag(&[("database", "shopdb"), ("extra-user-roles", "SUPERUSER")]);
        let refused = plan(&app, &server(&[])).unwrap_err();
        assert_eq!(refused.field, "extra-user-roles");
        assert!(refused.to_string().starts_with(
            "database:7: extra-user-roles: asks for SUPERUSER: power over every tenant's data"
        ));
        let allowed = ConsumerPrivileges::parse("superuser = shop").unwrap();
        let plan = plan_with(&app, &server(&[]), &allowed).unwrap().unwrap();
        assert!(plan
            .extra_user_roles
            .privileges
            .contains(&Privilege::Superuser));
        let v1 = bag(&[
            ("version", "v1"),
            (
                "requests",
                "[{\"resource\": \"a\", \"request-id\": \"1\"}, \
                  {\"resource\": \"b\", \"request-id\": \"2\", \"extra-user-roles\": \"createrole\"}]",
            ),
        ]);
        let refused = plan_with(&v1, &server(&[]), &allowed).unwrap_err();
        assert_eq!(refused.field, "requests[1].extra-user-roles");
        assert!(refused.problem.contains("(createrole = shop)"), "{refused}");
    }

    #[test]
    fn server_addresses_are_written_for_uris_or_refused() {
        let mut v6 = server(&["fd00::7", "fd00::6"]);
        v6.primary = "FD00:0:0::5".to_string();
        let app = bag(&[("database", "shopdb")]);
        let plan6 = plan(&app, &v6).unwrap().unwrap();
        let fields = plan6.answers[0].fields.expose();
        assert_eq!(fields["endpoints"], "[fd00::5]:5432");
        assert_eq!(
            fields["read-only-endpoints"],
            "[fd00::6]:5432,[fd00::7]:5432"
        );
        assert_eq!(
            fields["uris"],
            format!("postgresql://jujuclient_shop_7:{PASSWORD}@[fd00::5]:5432/shopdb")
        );
        let mut named = server(&[]);
        named.primary = "DB-1.Example.internal".to_string();
        let named = plan(&app, &named).unwrap().unwrap();
        assert_eq!(
            named.answers[0].fields.expose()["endpoints"],
            "db-1.example.internal:5432"
        );
        for bad in ["", "a b", "h/x", "u@h", "h?x", "-h", "h..x", "h,x", "h\n"] {
            let mut broken = server(&[]);
            broken.standbys = vec![bad.to_string()];
            let error = plan(&app, &broken).unwrap_err();
            assert_eq!(error.field, "");
            assert!(
                error.problem.contains("cannot go into a connection URI"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn uri_components_are_percent_encoded() {
        assert_eq!(uri_component("abc-_.~09XY"), "abc-_.~09XY");
        assert_eq!(uri_component("p@ss:w/rd?#%"), "p%40ss%3Aw%2Frd%3F%23%25");
        assert_eq!(uri_component("é"), "%C3%A9");
    }

    #[test]
    fn waiting_and_refused_requests_plan_nothing() {
        assert_eq!(plan(&bag(&[]), &server(&[])), Ok(None));
        let error = plan(&bag(&[("database", "x'y")]), &server(&[])).unwrap_err();
        assert_eq!(error.field, "database");
    }

    #[test]
    fn the_password_never_prints() {
        let app = bag(&[("database", "shopdb")]);
        let plan = plan(&app, &server(&[])).unwrap().unwrap();
        let shown = format!("{plan:?}");
        assert!(!shown.contains(PASSWORD), "{shown}");
    }

    #[test]
    fn user_secret_labels_name_their_relation() {
        let rel = RelationId::new("database", 7);
        for request in [None, Some("85b027df81b4186b")] {
            let label = secret_label(&rel, request, SecretGroup::User);
            assert_eq!(user_secret_relation(&label), Some(rel.clone()), "{label}");
            let tls = secret_label(&rel, request, SecretGroup::Tls);
            assert_eq!(user_secret_relation(&tls), None, "{tls}");
        }
        for other in [
            "",
            "pgsql-jujuclient-shop",
            "database..user.secret",
            "database.x.user.secret",
            "db.7.user.secret",
            "database.99999999999999999999999.user.secret",
        ] {
            assert_eq!(user_secret_relation(other), None, "{other}");
        }
    }
}
