//! The client relations' pure core: everything the charm decides about a
//! consumer, as functions of what it read.
//!
//! Nothing here runs hook tools or SQL or touches files; the charm feeds it
//! what it read from Juju and PostgreSQL and carries out what it returns.
//! That keeps every decision about untrusted relation data in one place that
//! table tests cover.
//!
//! * [`CLIENT_ENDPOINTS`]: the table of client endpoints (name and
//!   interface), which `metadata.yaml` must match.
//! * [`access`]: who may connect from where, for every interface: the remote
//!   units' addresses, what each relation may reach ([`access::HbaScope`])
//!   and `pg_hba.conf`.
//! * [`tenancy`]: consumers are tenants: ownership of databases and roles,
//!   extensions, revocation and passwords bound to relations.
//! * [`pgsql`]: the `pgsql` interface (`db`, `db-admin`): the request, the
//!   plan and the published data.
//! * A new interface is a module beside [`pgsql`] with its request parser
//!   and its [`Publication`] arm, plus a row in [`CLIENT_ENDPOINTS`].
//!
//! Helpers for the boundaries: [`ids`] (relation ids and bags, as Juju
//! prints them), [`sql`] (quoting and validating names for SQL), [`names`]
//! (the names the charm chooses).
//!
//! **Trust.** Everything the remote application writes (its bags) is hostile
//! until validated: a name that is too long, contains quotes, semicolons,
//! newlines or non-ASCII characters, an invalid or enormous subnet list, or a
//! huge value is refused with an error naming the relation, the key and the
//! item. An error concerns only that relation; the others keep working.
//! Error messages quote remote input only through [`excerpt`], so they stay
//! short, single-line and free of control characters.
//!
//! Background: `pgsql-provider-anchors.md` §1.6, §1.7, §2 and §7, and
//! `juju-hook-contract.md` §5 and §7.

pub mod access;
pub mod ids;
pub mod names;
pub mod pgsql;
pub mod postgresql_client;
pub mod secret;
pub mod sql;
pub mod tenancy;

use std::collections::BTreeMap;
use std::fmt;

use self::access::cidr::AddressLimits;
use self::access::{HbaScope, RelationAccess};
pub use self::ids::{RelationData, RelationId};
use self::postgresql_client::roles::ConsumerPrivileges;
use self::sql::Name;
use self::tenancy::extensions::ExtensionRequest;
use crate::secret::{Password, Secret};

/// The interface a client endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Interface {
    /// The legacy `pgsql` interface; `admin`: the relation's user is a
    /// superuser (`db-admin`), else it owns one database (`db`).
    Pgsql { admin: bool },
    /// `postgresql_client` (`database`), both protocol versions of the
    /// data-platform libraries: the user owns the databases it asks for,
    /// with the privileges `extra-user-roles` may add.
    PostgresqlClient,
}

impl Interface {
    /// The interface's name in `metadata.yaml`.
    pub fn name(self) -> &'static str {
        match self {
            Interface::Pgsql { .. } => "pgsql",
            Interface::PostgresqlClient => "postgresql_client",
        }
    }
}

/// A client endpoint of this charm, as `metadata.yaml` declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientEndpoint {
    pub name: &'static str,
    pub interface: Interface,
}

impl ClientEndpoint {
    pub const DB: ClientEndpoint = ClientEndpoint {
        name: "db",
        interface: Interface::Pgsql { admin: false },
    };
    pub const DB_ADMIN: ClientEndpoint = ClientEndpoint {
        name: "db-admin",
        interface: Interface::Pgsql { admin: true },
    };
    pub const DATABASE: ClientEndpoint = ClientEndpoint {
        name: postgresql_client::ENDPOINT,
        interface: Interface::PostgresqlClient,
    };

    /// The client endpoint with this name in `metadata.yaml`.
    pub fn named(name: &str) -> Option<ClientEndpoint> {
        CLIENT_ENDPOINTS.iter().copied().find(|e| e.name == name)
    }

    /// The endpoint's name in `metadata.yaml`.
    pub fn as_str(self) -> &'static str {
        self.name
    }

    /// Whether the relation's user is a PostgreSQL superuser.
    pub fn grants_superuser(self) -> bool {
        match self.interface {
            Interface::Pgsql { admin } => admin,
            Interface::PostgresqlClient => false,
        }
    }

    /// What `pg_hba.conf` lets the relation's user reach, when its database
    /// is `database`.
    pub fn hba_scope(self, database: &Name) -> HbaScope {
        if self.grants_superuser() {
            HbaScope::AllDatabases
        } else {
            HbaScope::Database(database.clone())
        }
    }
}

impl fmt::Display for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Every client endpoint; `metadata.yaml`'s `provides` holds exactly these
/// (and `tests` check it).
pub const CLIENT_ENDPOINTS: &[ClientEndpoint] = &[
    ClientEndpoint::DB,
    ClientEndpoint::DB_ADMIN,
    ClientEndpoint::DATABASE,
];

/// What the charm read about one client relation, whatever its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationFacts {
    pub relation: RelationId,
    /// The remote application as Juju shows it (`remote-<hex>` across
    /// models).
    pub remote_app: String,
    /// The remote application's bag.
    pub remote_app_data: RelationData,
    /// The bags of the remote units in `relation-list`, by unit name.
    pub remote_units: BTreeMap<String, RelationData>,
    /// In `-relation-departed`, the unit that is leaving: left out even if
    /// it is still listed.
    pub departing_unit: Option<String>,
}

/// The database objects a relation needs. The user's password is in the
/// credentials; it is set with `scram-sha-256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredObjects {
    /// Created if missing, never dropped.
    pub database: Name,
    /// More databases like `database` (a `database` consumer on protocol v1
    /// may ask for several); empty for `pgsql`.
    pub more_databases: Vec<Name>,
    /// A LOGIN role with privileges on its databases only (`db`,
    /// `database`), or a superuser (`db-admin`, or a `database` consumer
    /// the operator allowed SUPERUSER).
    pub user: Name,
    pub superuser: bool,
    /// `CREATEDB` and `CREATEROLE` (`database`'s `extra-user-roles`).
    pub createdb: bool,
    pub createrole: bool,
    /// Granted to `user`, as [`tenancy::ownership::decide_role`] allows;
    /// `pgsql` creates a missing one NOLOGIN, `database` refuses the
    /// relation instead (`create_missing_roles` false).
    pub roles: Vec<Name>,
    pub create_missing_roles: bool,
    /// Created in `database`, as [`tenancy::extensions::plan_extensions`]
    /// allows.
    pub extensions: Vec<ExtensionRequest>,
}

/// This unit's role in the cluster, as published in `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// The primary, without standbys.
    Standalone,
    /// The primary, with standbys.
    Master,
    /// A read-only standby.
    HotStandby,
}

impl DesiredObjects {
    /// `database`, then `more_databases`.
    pub fn databases(&self) -> impl Iterator<Item = &Name> {
        std::iter::once(&self.database).chain(self.more_databases.iter())
    }
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Standalone => "standalone",
            ServerState::Master => "master",
            ServerState::HotStandby => "hot standby",
        }
    }
}

/// What the charm knows about the server, as seen from this relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// This unit's address for the relation:
    /// `network-get db -r <id> --ingress-address`.
    pub host: String,
    /// The primary's address for the relation (equal to `host` on the
    /// primary); goes into `master`.
    pub primary_host: String,
    /// The standbys' addresses for the relation; empty with one unit.
    pub standby_hosts: Vec<String>,
    pub port: u16,
    /// The major version, e.g. 16.
    pub major_version: u32,
    /// The full version, e.g. `16.4` (`database` publishes it).
    pub version: String,
    pub state: ServerState,
    /// Whether the server speaks TLS, and the CA clients verify it with
    /// (`database` publishes both; `pgsql` has no field for them).
    pub tls: postgresql_client::plan::Tls,
}

/// The relation's login role and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// From [`names::relation_user`].
    pub user: Name,
    pub password: Password,
}

/// What to publish to one relation, in the interface's own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// `pgsql`: the same keys in this unit's bag and, on the leader, in the
    /// application's bag (an empty value deletes a key).
    PgsqlBags(Secret<RelationData>),
    /// `postgresql_client`: on the leader, the plan's secrets made to
    /// exist (and no others of the relation), then the application bag
    /// naming them ([`postgresql_client::publish::app_bag`]); nothing on
    /// other units.
    ClientSecretsAndBag(Box<postgresql_client::plan::ClientPlan>),
    /// `postgresql_client` taken back: the relation's secrets retired and
    /// every key the charm may publish deleted.
    ClientRetraction,
}

/// One relation's plan, whatever its interface: what `pg_hba.conf` grants,
/// what to create, and what to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPlan {
    pub access: RelationAccess,
    pub objects: DesiredObjects,
    pub publication: Publication,
}

/// Plans one relation on `endpoint` through its interface; `Ok(None)`: the
/// consumer has not asked yet; `Err` refuses it with a message for a
/// blocked status, which starts with the relation id.
pub fn plan_client(
    endpoint: ClientEndpoint,
    facts: &RelationFacts,
    server: &ServerFacts,
    credentials: &Credentials,
    limits: &AddressLimits,
    privileges: &ConsumerPrivileges,
) -> Result<Option<ClientPlan>, String> {
    match endpoint.interface {
        Interface::Pgsql { .. } => pgsql::plan::plan_relation(facts, server, credentials, limits)
            .map(|plan| {
                Some(ClientPlan {
                    publication: plan.publication(),
                    access: plan.access,
                    objects: plan.objects,
                })
            })
            .map_err(|error| error.to_string()),
        Interface::PostgresqlClient => {
            postgresql_client::plan_relation(facts, server, credentials, limits, privileges)
        }
    }
}

/// What a refused relation's bags must end up as: everything the interface
/// publishes, taken back.
pub fn retraction(endpoint: ClientEndpoint) -> Publication {
    match endpoint.interface {
        Interface::Pgsql { .. } => Publication::PgsqlBags(Secret::new(pgsql::plan::retraction())),
        Interface::PostgresqlClient => Publication::ClientRetraction,
    }
}

/// The `relation-set` that turns `current` (a bag as Juju returned it, so as
/// last committed) into `desired` (what a [`Publication`] holds for that bag): the keys whose value differs, an empty value meaning
/// delete. Empty when there is nothing to write.
///
/// This is the only memo of what was published: it is read back from Juju,
/// so it cannot disagree with what Juju committed. A hook that published and
/// then failed left nothing committed, and its retry publishes again.
pub fn bag_changes(desired: &RelationData, current: &RelationData) -> RelationData {
    desired
        .iter()
        .filter(|(key, value)| current.get(*key).map_or("", String::as_str) != value.as_str())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Most characters of remote input that an error message shows.
pub const EXCERPT_CHARS: usize = 40;

/// Remote input made fit for a status message or a log line: at most
/// [`EXCERPT_CHARS`] characters, in double quotes, with every character that
/// is not printable ASCII escaped (`\n`, `\u{202e}`, …) and a trailing `…`
/// when cut.
pub fn excerpt(text: &str) -> String {
    let mut shown = String::from("\"");
    for c in text.chars().take(EXCERPT_CHARS) {
        if c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\') {
            shown.push(c);
        } else {
            shown.extend(c.escape_default());
        }
    }
    shown.push('"');
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_found_by_name_and_say_what_they_grant() {
        for endpoint in CLIENT_ENDPOINTS {
            assert_eq!(ClientEndpoint::named(endpoint.as_str()), Some(*endpoint));
        }
        assert_eq!(ClientEndpoint::named("replication"), None);
        assert_eq!(ClientEndpoint::named("DB"), None);
        assert!(ClientEndpoint::DB_ADMIN.grants_superuser());
        assert!(!ClientEndpoint::DB.grants_superuser());
        let app = Name::parse(sql::NameKind::Database, "app").unwrap();
        assert_eq!(
            ClientEndpoint::DB.hba_scope(&app),
            HbaScope::Database(app.clone())
        );
        assert_eq!(
            ClientEndpoint::DB_ADMIN.hba_scope(&app),
            HbaScope::AllDatabases
        );
        assert_eq!(ClientEndpoint::DB.interface.name(), "pgsql");
    }

    #[test]
    fn excerpts_are_short_quoted_and_printable() {
        let long = "x".repeat(100);
        let cases: [(&str, String); 7] = [
            ("plain", r#""plain""#.to_string()),
            ("with space", r#""with space""#.to_string()),
            ("a\nb", r#""a\nb""#.to_string()),
            ("quote\"back\\", r#""quote\"back\\""#.to_string()),
            ("é\u{202e}", r#""\u{e9}\u{202e}""#.to_string()),
            ("", r#""""#.to_string()),
            (&long, format!("\"{}\"…", "x".repeat(EXCERPT_CHARS))),
        ];
        for (input, expected) in cases {
            assert_eq!(excerpt(input), expected, "input {input:?}");
        }
    }
}
