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
//! Helpers for the boundaries: [`sql`] (quoting and validating names for
//! SQL), [`names`] (the names the charm chooses).
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
pub mod names;
pub mod pgsql;
pub mod sql;
pub mod tenancy;

use std::collections::BTreeMap;
use std::fmt;

use self::access::HbaScope;
use self::sql::Name;
use crate::juju::{RelationData, RelationId};
use crate::secret::Secret;

/// The interface a client endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Interface {
    /// The legacy `pgsql` interface; `admin`: the relation's user is a
    /// superuser (`db-admin`), else it owns one database (`db`).
    Pgsql { admin: bool },
}

impl Interface {
    /// The interface's name in `metadata.yaml`.
    pub fn name(self) -> &'static str {
        match self {
            Interface::Pgsql { .. } => "pgsql",
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
pub const CLIENT_ENDPOINTS: &[ClientEndpoint] = &[ClientEndpoint::DB, ClientEndpoint::DB_ADMIN];

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

/// What to publish to one relation, in the interface's own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// `pgsql`: the same keys in this unit's bag and, on the leader, in the
    /// application's bag (an empty value deletes a key).
    PgsqlBags(Secret<RelationData>),
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
