//! Client relations `db` and `db-admin` (the legacy `pgsql` interface): the
//! pure core.
//!
//! Everything in this module is a function of its inputs. It runs no hook
//! tools, no SQL and touches no files; the charm feeds it what it read from
//! Juju and PostgreSQL, and carries out what it returns. That keeps every
//! decision about untrusted relation data in one place that table tests cover.
//!
//! The flow for one relation:
//!
//! 1. [`request`] reads what the consumer asked for (`database`, `roles`,
//!    `extensions`) from its application bag and unit bags.
//! 2. [`names`] derives the default database name and the relation's user.
//! 3. [`publish`] turns the relation, the server's facts and the credentials
//!    into the data to publish, the `pg_hba.conf` access to grant, and the
//!    database objects to create.
//! 4. [`ownership`] decides whether the relation may have its database and
//!    roles (consumers are tenants); [`extensions`] which extensions to
//!    create and where; [`revocation`] whose access to take back and when a
//!    relation needs a new password.
//! 5. [`hba`] renders `pg_hba.conf` from every relation's access.
//!
//! Helpers for the boundaries: [`cidr`] (addresses from relation data),
//! [`sql`] (quoting and validating names for SQL), [`libpq`] (connection
//! strings).
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

pub mod cidr;
pub mod extensions;
pub mod hba;
pub mod libpq;
pub mod names;
pub mod ownership;
pub mod publish;
pub mod request;
pub mod revocation;
pub mod sql;

use std::fmt;

/// A client endpoint of this charm. The two differ only in privileges: a
/// `db` user owns one database, a `db-admin` user is a superuser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    Db,
    DbAdmin,
}

impl Endpoint {
    /// The endpoint with this name in `metadata.yaml`, if it is a client one.
    pub fn from_name(name: &str) -> Option<Endpoint> {
        match name {
            "db" => Some(Endpoint::Db),
            "db-admin" => Some(Endpoint::DbAdmin),
            _ => None,
        }
    }

    /// The endpoint's name in `metadata.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Db => "db",
            Endpoint::DbAdmin => "db-admin",
        }
    }

    /// Whether the relation's user is a PostgreSQL superuser.
    pub fn grants_superuser(self) -> bool {
        self == Endpoint::DbAdmin
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    fn endpoint_names_round_trip() {
        for endpoint in [Endpoint::Db, Endpoint::DbAdmin] {
            assert_eq!(Endpoint::from_name(endpoint.as_str()), Some(endpoint));
        }
        assert_eq!(Endpoint::from_name("replication"), None);
        assert_eq!(Endpoint::from_name("DB"), None);
        assert!(Endpoint::DbAdmin.grants_superuser());
        assert!(!Endpoint::Db.grants_superuser());
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
