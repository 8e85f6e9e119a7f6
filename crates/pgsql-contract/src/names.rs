//! Names the charm chooses: the default database and the relation's user.
//!
//! Both derive from the **remote application name**, as in the legacy charm,
//! not from the relation id. The name is the same on every unit and in every
//! hook, and it survives removing and re-adding the relation. A consumer that
//! relates again therefore gets back the same user, which still owns its
//! tables (the database is never dropped), and a dump restored into a new
//! model keeps its ownership.
//!
//! | Endpoint   | User                  | Default database |
//! |------------|-----------------------|------------------|
//! | `db`       | `juju_<app>`          | `<app>`          |
//! | `db-admin` | `jujuadmin_<app>`     | `<app>`          |
//! | `database` | `jujuclient_<app>` (owner, no login), logins `jujuclient_<app>_<n>` | as asked |
//!
//! Juju application names (`[a-z][a-z0-9-]*`) are already valid names, so in
//! practice these are used as they are; cross-model consumers appear as
//! `remote-<32 hex>`, giving `juju_remote-76cd…` (44 bytes).
//!
//! When the result would not be a valid [`Name`] (over 63 bytes, an odd
//! character, or a reserved database such as `postgres`), it is made valid:
//! characters outside `[A-Za-z0-9_-]` become `_`, the text is cut to 46
//! bytes, and `_` plus the 16-hex-digit FNV-1a 64 hash of the full untouched
//! name is appended: 63 bytes at most, stable, and distinct for distinct
//! applications. (The legacy charm used 31 characters plus an MD5; names
//! that fit are identical to its names, only the long ones differ.)
//!
//! One consequence of app-based names on `db`: if one application has two
//! relations to the same endpoint, they share a user. Revoking login on
//! `-broken` must therefore wait until no live relation still maps to it.
//! The schema user published for compatibility is the same user.
//!
//! On `database` the application's role only owns; each relation `n`
//! logs in as its own role, [`database_login`], a member of it
//! ([`crate::tenancy::logins`]): `-broken` revokes that relation's logins
//! alone. `n` is the relation's number in this model (Juju never reuses
//! one), so a consumer that relates again gets a new login that still acts
//! as the owner of its tables. Application names have no `_`, so
//! `jujuclient_<app>_<n>` is never another application's owner role.

use super::sql::{Name, NameKind, MAX_IDENTIFIER_BYTES};
use super::{ClientEndpoint, Interface};

/// The database a relation gets when the consumer asks for none: the remote
/// application's name, made valid if need be (see the module docs).
pub fn default_database(remote_app: &str) -> Name {
    fit_name(NameKind::Database, remote_app, remote_app)
}

/// The login role the charm creates for a relation on `endpoint` with
/// `remote_app`: `juju_<app>`, `jujuadmin_<app>` or, for `database`,
/// `jujuclient_<app>`.
pub fn relation_user(endpoint: ClientEndpoint, remote_app: &str) -> Name {
    let prefix = match endpoint.interface {
        Interface::Pgsql { admin: false } => "juju_",
        Interface::Pgsql { admin: true } => "jujuadmin_",
        Interface::PostgresqlClient => "jujuclient_",
    };
    fit_name(NameKind::User, &format!("{prefix}{remote_app}"), remote_app)
}

/// The login of `database` relation `relation` with `remote_app`:
/// `jujuclient_<app>_<n>`, made valid as the other names are (the hash is
/// of `<app>_<n>`).
pub fn database_login(remote_app: &str, relation: &crate::RelationId) -> Name {
    let own = format!("{remote_app}_{}", relation.number());
    fit_name(NameKind::User, &format!("jujuclient_{own}"), &own)
}

/// Bytes of readable text kept before the hash suffix: 46 + `_` + 16 = 63.
const READABLE_PART_BYTES: usize = MAX_IDENTIFIER_BYTES - 1 - 16;

/// `candidate` if it is a valid name of `kind`, else its sanitised, cut
/// form with the hash of `hashed` appended.
fn fit_name(kind: NameKind, candidate: &str, hashed: &str) -> Name {
    if let Ok(name) = Name::parse(kind, candidate) {
        return name;
    }
    let mut readable: String = candidate
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !readable.starts_with(|c: char| c.is_ascii_alphabetic()) {
        readable.insert(0, '_');
    }
    // Every character is ASCII now, so any byte index is a char boundary.
    readable.truncate(READABLE_PART_BYTES);
    let fitted = format!("{readable}_{:016x}", fnv1a_64(hashed.as_bytes()));
    // Can't fail: at most 63 bytes of [A-Za-z0-9_-], starting with a letter
    // or '_', and ending in a hash, so it equals no reserved database name;
    // user names start with "juju", never with "pg_" or an SQL keyword.
    Name::parse(kind, &fitted).expect("a sanitised name with a hash suffix is always valid")
}

/// The 64-bit FNV-1a hash: tiny, stable across platforms and releases, and
/// good enough to tell application names apart (this is not about secrecy).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMR_APP: &str = "remote-76cd96ab50f146b284912afd1cc13a0e";

    #[test]
    fn fnv1a_64_matches_the_reference_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn ordinary_names_are_used_as_they_are() {
        let cases = [
            (
                ClientEndpoint::DB,
                "discourse",
                "discourse",
                "juju_discourse",
            ),
            (
                ClientEndpoint::DB_ADMIN,
                "landscape-server",
                "landscape-server",
                "jujuadmin_landscape-server",
            ),
            (
                ClientEndpoint::DB,
                CMR_APP,
                CMR_APP,
                "juju_remote-76cd96ab50f146b284912afd1cc13a0e",
            ),
        ];
        for (endpoint, app, database, user) in cases {
            assert_eq!(default_database(app).as_str(), database);
            assert_eq!(relation_user(endpoint, app).as_str(), user);
        }
    }

    #[test]
    fn awkward_names_are_made_valid_stable_and_distinct() {
        let long_a = format!("{}-a", "x".repeat(70));
        let long_b = format!("{}-b", "x".repeat(70));
        let just_too_long_for_admin = "x".repeat(58);
        let apps = [
            long_a.as_str(),
            long_b.as_str(),
            "postgres",
            "template1",
            "",
            "9lives",
            "we\"ird; app\n",
            "ünïcode",
            just_too_long_for_admin.as_str(),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for app in apps {
            for name in [
                default_database(app),
                relation_user(ClientEndpoint::DB, app),
                relation_user(ClientEndpoint::DB_ADMIN, app),
            ] {
                let text = name.as_str();
                assert!(text.len() <= MAX_IDENTIFIER_BYTES, "{text}");
                assert!(
                    text.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                    "{text}"
                );
                assert!(seen.insert(text.to_string()), "{text} produced twice");
            }
            assert_eq!(default_database(app), default_database(app), "stable");
        }
        assert_eq!(
            default_database("postgres").as_str(),
            format!("postgres_{:016x}", fnv1a_64(b"postgres"))
        );
        assert!(default_database("9lives").as_str().starts_with("_9lives_"));
        assert!(relation_user(ClientEndpoint::DB, &long_a)
            .as_str()
            .starts_with(&format!("juju_{}", "x".repeat(41))));
    }

    #[test]
    fn database_logins_are_per_relation_and_never_an_owner_role() {
        let rel = |n| crate::RelationId::new("database", n);
        assert_eq!(
            database_login("shop", &rel(7)).as_str(),
            "jujuclient_shop_7"
        );
        assert_eq!(
            database_login(CMR_APP, &rel(12)).as_str(),
            format!("jujuclient_{CMR_APP}_12")
        );
        assert_ne!(
            database_login("shop", &rel(7)),
            database_login("shop", &rel(8))
        );
        let long = "y".repeat(70);
        let (a, b) = (
            database_login(&long, &rel(1)),
            database_login(&long, &rel(2)),
        );
        assert!(a.as_str().len() <= MAX_IDENTIFIER_BYTES, "{a}");
        assert_ne!(a, b, "the hash covers the relation number");
        // Application names never hold '_': no login is an owner role.
        for app in ["shop", "shop-7", CMR_APP] {
            for n in [1, 7, 70] {
                let login = database_login(app, &rel(n));
                for other in ["shop", "shop-7", CMR_APP] {
                    assert_ne!(login, relation_user(ClientEndpoint::DATABASE, other));
                }
            }
        }
    }

    #[test]
    fn names_that_just_fit_are_kept() {
        let app = "a".repeat(MAX_IDENTIFIER_BYTES - "jujuadmin_".len());
        assert_eq!(
            relation_user(ClientEndpoint::DB_ADMIN, &app).as_str(),
            format!("jujuadmin_{app}")
        );
        let one_more = format!("{app}b");
        assert_ne!(
            relation_user(ClientEndpoint::DB_ADMIN, &one_more).as_str(),
            format!("jujuadmin_{one_more}")
        );
    }
}
