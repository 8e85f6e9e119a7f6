//! `pg_hba.conf` (and its `pg_ident.conf` map), rendered from the access
//! every client relation needs.
//!
//! The file is written whole, deterministically, from sorted inputs, so the
//! same relations always give the same bytes (and no needless reload).
//! PostgreSQL uses the **first** line matching a connection, so the order is:
//!
//! 1. `local all postgres peer map=juju_charm`: the charm (running as root)
//!    and the `postgres` OS user reach the server as `postgres` over the
//!    Unix socket; [`render_pg_ident`] holds the map.
//! 2. `local all all peer`: other local OS users as the role of their name.
//! 3. For each relation (sorted by relation id: endpoint name, then
//!    number) and each of its blocks (sorted), by its [`HbaScope`]:
//!    `host "<database>" "<user>" <cidr> scram-sha-256` for one database
//!    (`db`), `host all "<user>" <cidr> scram-sha-256` for all of them
//!    (`db-admin`), `host replication "<user>" <cidr> scram-sha-256` for
//!    streaming replication (standbys, when there are any).
//! 4. For each `admin-addresses` block: `host all all <cidr> scram-sha-256`.
//!
//!    With [`HbaInput::require_tls`] (the `client-tls=require` option) the
//!    client rules of steps 3 and 4 are `hostssl`: a clear-text connection
//!    from those addresses matches none of them and meets the `reject`
//!    lines below, so PostgreSQL refuses it naming `pg_hba.conf` and "no
//!    encryption". Replication rules stay `host` (the units' own traffic;
//!    its TLS comes with the internal CA), and so do the `local` lines.
//! 5. `host all all 0.0.0.0/0 reject` and `host all all ::/0 reject`.
//!    (Nothing is needed after `local all all peer`: it already matches
//!    every local connection. Replication connections match no `all` line:
//!    only a [`HbaScope::Replication`] rule lets one in.)
//!
//! Each line ends with a comment naming where it comes from; the comment is
//! reduced to a short run of safe ASCII so that remote text can never start
//! a new line.
//!
//! **Quoting.** Database and user names are always double-quoted, which
//! makes keywords such as `all`, `sameuser`, `samerole` and `replication`
//! plain names and disables the `+group` and `@file` syntaxes. Quoting does
//! *not* disable PostgreSQL 16's regular expressions (a token starting with
//! `/` is a regex even when quoted), and an embedded `"` would have to be
//! doubled; both are impossible here because only a validated [`Name`] gets
//! in, and names contain neither `/` nor `"` nor whitespace nor commas.
//! Addresses are written unquoted: a [`Cidr`] is printed from parsed numbers
//! and can be neither a keyword nor a host name.

use std::collections::BTreeSet;

use super::cidr::Cidr;
use super::{HbaScope, RelationAccess};
use crate::sql::{double_quote, Name};

/// The `pg_ident.conf` map used by the charm's own `local` line.
pub const IDENT_MAP: &str = "juju_charm";

/// The authentication method for every allowed network connection.
const METHOD: &str = "scram-sha-256";

/// Longest comment kept on a rule line.
const MAX_COMMENT_CHARS: usize = 100;

/// Everything `pg_hba.conf` is rendered from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HbaInput {
    /// The live relations. A broken relation is simply left out, which
    /// removes its rules.
    pub relations: Vec<RelationAccess>,
    /// The operator's `admin-addresses` option, already parsed.
    pub admin_addresses: Vec<Cidr>,
    /// Client rules accept TLS connections only (`hostssl`).
    pub require_tls: bool,
}

/// The DATABASE field of a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HbaDatabase {
    /// The `all` keyword.
    All,
    /// The `replication` keyword: streaming replication connections.
    Replication,
    /// One database, always written quoted.
    Named(Name),
}

/// The USER field of a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HbaUser {
    /// The `all` keyword.
    All,
    /// One role, always written quoted.
    Named(Name),
}

/// One `host … scram-sha-256` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaRule {
    pub database: HbaDatabase,
    pub user: HbaUser,
    pub cidr: Cidr,
    /// `hostssl`: TLS connections only.
    pub tls_only: bool,
    /// Where the rule comes from; sanitised when rendered.
    pub comment: String,
}

impl HbaRule {
    /// The rule as one `pg_hba.conf` line, without the line break.
    pub fn render(&self) -> String {
        let database = match &self.database {
            HbaDatabase::All => "all".to_string(),
            HbaDatabase::Replication => "replication".to_string(),
            HbaDatabase::Named(name) => quote_name(name),
        };
        let user = match &self.user {
            HbaUser::All => "all".to_string(),
            HbaUser::Named(name) => quote_name(name),
        };
        let kind = if self.tls_only { "hostssl" } else { "host" };
        format!(
            "{kind} {database} {user} {} {METHOD} # {}",
            self.cidr,
            sanitise_comment(&self.comment)
        )
    }
}

/// A name as a quoted `pg_hba.conf` token.
fn quote_name(name: &Name) -> String {
    debug_assert!(
        !name.as_str().starts_with('/'),
        "a name starting with '/' would be a regular expression in pg_hba.conf"
    );
    double_quote(name.as_str())
}

/// The comment reduced to printable ASCII (anything else becomes `?`) and at
/// most [`MAX_COMMENT_CHARS`] characters, so it stays on its line.
fn sanitise_comment(comment: &str) -> String {
    comment
        .chars()
        .take(MAX_COMMENT_CHARS)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The allow rules for `input`, in file order (steps 3 and 4 of the module
/// docs).
pub fn hba_rules(input: &HbaInput) -> Vec<HbaRule> {
    let mut relations: Vec<&RelationAccess> = input.relations.iter().collect();
    relations.sort_by(|a, b| a.relation.cmp(&b.relation));

    let mut rules = Vec::new();
    for access in relations {
        let databases = match &access.scope {
            HbaScope::Database(name) => vec![HbaDatabase::Named(name.clone())],
            HbaScope::Databases(names) => names.iter().cloned().map(HbaDatabase::Named).collect(),
            HbaScope::AllDatabases => vec![HbaDatabase::All],
            HbaScope::Replication => vec![HbaDatabase::Replication],
        };
        let comment = format!("{} {}", access.relation, access.remote_app);
        let tls_only = input.require_tls && access.scope != HbaScope::Replication;
        for database in &databases {
            for &cidr in &access.cidrs {
                rules.push(HbaRule {
                    database: database.clone(),
                    user: HbaUser::Named(access.user.clone()),
                    cidr,
                    tls_only,
                    comment: comment.clone(),
                });
            }
        }
    }
    let admin_addresses: BTreeSet<Cidr> = input.admin_addresses.iter().copied().collect();
    for cidr in admin_addresses {
        rules.push(HbaRule {
            database: HbaDatabase::All,
            user: HbaUser::All,
            cidr,
            tls_only: input.require_tls,
            comment: "admin-addresses".to_string(),
        });
    }
    rules
}

/// The whole `pg_hba.conf`, ending with a line break.
pub fn render_pg_hba(input: &HbaInput) -> String {
    let mut lines = vec![
        "# pg_hba.conf written by the PostgreSQL charm; changes made here are overwritten."
            .to_string(),
        "# PostgreSQL uses the first line that matches a connection.".to_string(),
        "# TYPE DATABASE USER ADDRESS METHOD".to_string(),
        format!(
            "local all postgres peer map={IDENT_MAP} # the charm (root) and the postgres OS user"
        ),
        "local all all peer # local OS users, as the role of the same name".to_string(),
    ];
    lines.extend(hba_rules(input).iter().map(HbaRule::render));
    lines.push("host all all 0.0.0.0/0 reject # everything else over IPv4".to_string());
    lines.push("host all all ::/0 reject # everything else over IPv6".to_string());
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The whole `pg_ident.conf`: the map that lets root (the charm) and the
/// `postgres` OS user connect locally as `postgres`.
pub fn render_pg_ident() -> String {
    format!(
        "# pg_ident.conf written by the PostgreSQL charm; changes made here are overwritten.\n\
         # MAPNAME SYSTEM-USERNAME PG-USERNAME\n\
         {IDENT_MAP} root postgres\n\
         {IDENT_MAP} postgres postgres\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::NameKind;
    use crate::ClientEndpoint;
    use crate::RelationId;

    fn name(kind: NameKind, text: &str) -> Name {
        Name::parse(kind, text).unwrap()
    }

    fn cidrs(list: &[&str]) -> BTreeSet<Cidr> {
        list.iter().map(|text| Cidr::parse(text).unwrap()).collect()
    }

    fn access(
        relation: &str,
        app: &str,
        database: &str,
        user: &str,
        blocks: &[&str],
    ) -> RelationAccess {
        let relation: RelationId = relation.parse().unwrap();
        let database = name(NameKind::Database, database);
        RelationAccess {
            // A client endpoint's scope; tests of other scopes set theirs.
            scope: ClientEndpoint::named(relation.endpoint())
                .map_or(HbaScope::Database(database.clone()), |e| {
                    e.hba_scope(&database)
                }),
            relation,
            remote_app: app.to_string(),
            user: name(NameKind::User, user),
            cidrs: cidrs(blocks),
        }
    }

    #[test]
    fn renders_the_whole_file_in_order() {
        let input = HbaInput {
            relations: vec![
                access(
                    "db:12",
                    "landscape",
                    "landscape",
                    "juju_landscape",
                    &["10.0.0.9"],
                ),
                access(
                    "db-admin:3",
                    "nagios",
                    "nagios",
                    "jujuadmin_nagios",
                    &["10.0.0.7", "2001:db8::7"],
                ),
                access(
                    "db:2",
                    "remote-76cd96ab50f146b284912afd1cc13a0e",
                    "discourse",
                    "juju_remote-76cd96ab50f146b284912afd1cc13a0e",
                    &["192.168.1.0/24", "10.0.0.5/32", "10.0.0.5"],
                ),
            ],
            admin_addresses: vec![
                Cidr::parse("172.16.0.0/12").unwrap(),
                Cidr::parse("0.0.0.0/0").unwrap(),
                Cidr::parse("172.16.0.0/12").unwrap(),
            ],
            ..Default::default()
        };
        let expected = "\
# pg_hba.conf written by the PostgreSQL charm; changes made here are overwritten.
# PostgreSQL uses the first line that matches a connection.
# TYPE DATABASE USER ADDRESS METHOD
local all postgres peer map=juju_charm # the charm (root) and the postgres OS user
local all all peer # local OS users, as the role of the same name
host \"discourse\" \"juju_remote-76cd96ab50f146b284912afd1cc13a0e\" 10.0.0.5/32 scram-sha-256 # db:2 remote-76cd96ab50f146b284912afd1cc13a0e
host \"discourse\" \"juju_remote-76cd96ab50f146b284912afd1cc13a0e\" 192.168.1.0/24 scram-sha-256 # db:2 remote-76cd96ab50f146b284912afd1cc13a0e
host \"landscape\" \"juju_landscape\" 10.0.0.9/32 scram-sha-256 # db:12 landscape
host all \"jujuadmin_nagios\" 10.0.0.7/32 scram-sha-256 # db-admin:3 nagios
host all \"jujuadmin_nagios\" 2001:db8::7/128 scram-sha-256 # db-admin:3 nagios
host all all 0.0.0.0/0 scram-sha-256 # admin-addresses
host all all 172.16.0.0/12 scram-sha-256 # admin-addresses
host all all 0.0.0.0/0 reject # everything else over IPv4
host all all ::/0 reject # everything else over IPv6
";
        assert_eq!(render_pg_hba(&input), expected);
    }

    #[test]
    fn required_tls_makes_client_and_admin_rules_hostssl_and_nothing_else() {
        let mut replication = access(
            "replication:1",
            "postgresql",
            "x",
            "juju_replication",
            &["10.0.0.2"],
        );
        replication.scope = HbaScope::Replication;
        for require_tls in [false, true] {
            let text = render_pg_hba(&HbaInput {
                relations: vec![
                    access("db:2", "app", "appdb", "juju_app", &["10.0.0.5"]),
                    access("db-admin:3", "ops", "x", "jujuadmin_ops", &["10.0.0.6"]),
                    access(
                        "database:4",
                        "shop",
                        "shop",
                        "jujuclient_shop",
                        &["10.0.0.7"],
                    ),
                    replication.clone(),
                ],
                admin_addresses: vec![Cidr::parse("192.168.0.0/16").unwrap()],
                require_tls,
            });
            let kind = |needle: &str| {
                let line = text.lines().find(|l| l.contains(needle)).unwrap();
                line.split(' ').next().unwrap().to_string()
            };
            let client = if require_tls { "hostssl" } else { "host" };
            for needle in ["db:2", "db-admin:3", "database:4", "admin-addresses"] {
                assert_eq!(kind(needle), client, "{needle} {require_tls}");
            }
            assert_eq!(kind("replication:1"), "host");
            assert_eq!(kind("local OS users"), "local");
            assert_eq!(kind("the charm (root)"), "local");
            // Clear text from anywhere still meets the reject lines, so
            // PostgreSQL names pg_hba.conf when it refuses it.
            assert_eq!(kind("everything else over IPv4"), "host");
            assert!(text.ends_with("host all all ::/0 reject # everything else over IPv6\n"));
        }
    }

    #[test]
    fn several_databases_get_a_rule_each_from_every_block() {
        let mut v1 = access(
            "database:4",
            "remote-0b",
            "appdb",
            "jujuclient_remote-0b",
            &["10.0.0.8", "10.0.0.9"],
        );
        v1.scope = HbaScope::Databases(vec![
            name(NameKind::Database, "appdb"),
            name(NameKind::Database, "reports"),
        ]);
        let text = render_pg_hba(&HbaInput {
            relations: vec![v1],
            admin_addresses: vec![],
            ..Default::default()
        });
        let rules: Vec<&str> = text.lines().filter(|l| l.contains("database:4")).collect();
        assert_eq!(
            rules,
            [
                "host \"appdb\" \"jujuclient_remote-0b\" 10.0.0.8/32 scram-sha-256 # database:4 remote-0b",
                "host \"appdb\" \"jujuclient_remote-0b\" 10.0.0.9/32 scram-sha-256 # database:4 remote-0b",
                "host \"reports\" \"jujuclient_remote-0b\" 10.0.0.8/32 scram-sha-256 # database:4 remote-0b",
                "host \"reports\" \"jujuclient_remote-0b\" 10.0.0.9/32 scram-sha-256 # database:4 remote-0b",
            ]
        );
    }

    #[test]
    fn no_relations_gives_only_local_access_and_the_rejects() {
        let text = render_pg_hba(&HbaInput::default());
        let rules: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
        assert_eq!(
            rules,
            [
                "local all postgres peer map=juju_charm # the charm (root) and the postgres OS user",
                "local all all peer # local OS users, as the role of the same name",
                "host all all 0.0.0.0/0 reject # everything else over IPv4",
                "host all all ::/0 reject # everything else over IPv6",
            ]
        );
    }

    #[test]
    fn keywords_as_names_are_quoted_into_plain_names() {
        for keyword in ["all", "sameuser", "samerole", "samegroup", "replication"] {
            let input = HbaInput {
                relations: vec![access("db:1", "app", keyword, keyword, &["10.0.0.1"])],
                admin_addresses: vec![],
                ..Default::default()
            };
            let text = render_pg_hba(&input);
            let expected =
                format!("host \"{keyword}\" \"{keyword}\" 10.0.0.1/32 scram-sha-256 # db:1 app\n");
            assert!(text.contains(&expected), "{keyword}: {text}");
        }
    }

    #[test]
    fn each_scope_has_its_database_field() {
        let mut standby = access(
            "replication:0",
            "postgresql",
            "unused",
            "juju_replication",
            &["10.0.0.4"],
        );
        standby.scope = HbaScope::Replication;
        let input = HbaInput {
            relations: vec![
                standby,
                access("db:1", "a", "a", "juju_a", &["10.0.0.1"]),
                access("db-admin:2", "b", "b", "jujuadmin_b", &["10.0.0.2"]),
            ],
            admin_addresses: vec![],
            ..Default::default()
        };
        let rules: Vec<String> = hba_rules(&input).iter().map(HbaRule::render).collect();
        assert_eq!(
            rules,
            [
                "host \"a\" \"juju_a\" 10.0.0.1/32 scram-sha-256 # db:1 a",
                "host all \"jujuadmin_b\" 10.0.0.2/32 scram-sha-256 # db-admin:2 b",
                "host replication \"juju_replication\" 10.0.0.4/32 scram-sha-256 # replication:0 postgresql",
            ]
        );
    }

    #[test]
    fn hostile_comment_text_stays_on_its_line() {
        let mut hostile = access("db:4", "app", "db", "juju_app", &["10.0.0.1"]);
        hostile.remote_app = format!(
            "app\nhost all all 0.0.0.0/0 trust\r\u{202e}{}",
            "x".repeat(200)
        );
        let text = render_pg_hba(&HbaInput {
            relations: vec![hostile],
            admin_addresses: vec![],
            ..Default::default()
        });
        assert!(!text.contains("trust\n"), "{text}");
        let line = text
            .lines()
            .find(|line| line.contains("10.0.0.1/32"))
            .unwrap();
        assert!(line.starts_with(
            "host \"db\" \"juju_app\" 10.0.0.1/32 scram-sha-256 # db:4 app?host all all 0.0.0.0/0 trust??"
        ), "{line}");
        assert!(line.len() < 200, "{line}");
        assert_eq!(text.lines().filter(|l| l.contains("trust")).count(), 1);
    }

    #[test]
    fn rendering_is_deterministic_whatever_the_input_order() {
        let a = access("db:1", "a", "a", "juju_a", &["10.0.0.2", "10.0.0.1"]);
        let b = access("db:2", "b", "b", "juju_b", &["10.0.0.3"]);
        let admin = vec![
            Cidr::parse("10.9.0.0/16").unwrap(),
            Cidr::parse("10.8.0.0/16").unwrap(),
        ];
        let forward = HbaInput {
            relations: vec![a.clone(), b.clone()],
            admin_addresses: admin.clone(),
            ..Default::default()
        };
        let backward = HbaInput {
            relations: vec![b, a],
            admin_addresses: admin.into_iter().rev().collect(),
            ..Default::default()
        };
        assert_eq!(render_pg_hba(&forward), render_pg_hba(&backward));
    }

    #[test]
    fn every_rule_line_has_the_pg_hba_shape() {
        let input = HbaInput {
            relations: vec![
                access(
                    "db:1",
                    "a",
                    "Mixed-Case_db",
                    "juju_a",
                    &["10.0.0.0/8", "::1"],
                ),
                access("db-admin:2", "b", "b", "jujuadmin_b", &["2001:db8::/32"]),
            ],
            admin_addresses: vec![Cidr::parse("::/0").unwrap()],
            ..Default::default()
        };
        for rule in hba_rules(&input) {
            let line = rule.render();
            let (fields, comment) = line.split_once(" # ").unwrap();
            let fields: Vec<&str> = fields.split(' ').collect();
            assert_eq!(fields.len(), 5, "{line}");
            assert_eq!(fields[0], "host");
            assert_eq!(fields[4], "scram-sha-256");
            assert!(Cidr::parse(fields[3]).is_ok(), "{line}");
            assert!(!comment.contains('\n'));
        }
    }

    #[test]
    fn ident_map_maps_root_and_postgres() {
        let text = render_pg_ident();
        assert!(text.contains("\njuju_charm root postgres\n"));
        assert!(text.ends_with("juju_charm postgres postgres\n"));
    }
}
