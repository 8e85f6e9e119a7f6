//! One `pgsql` relation, planned: the data to publish, the `pg_hba.conf`
//! access to grant and the database objects to create.
//!
//! [`plan_relation`] is the whole decision for one `db` or `db-admin`
//! relation, made from what the charm read (the remote side's bags, the
//! server's facts, the relation's credentials). The charm then:
//!
//! * writes [`RelationPlan::publication`] to its unit bag on every unit,
//!   and to its app bag too when it is the leader;
//! * puts [`RelationPlan::access`] into the
//!   [`HbaInput`](crate::access::hba::HbaInput) of every live
//!   relation, renders `pg_hba.conf` and reloads;
//! * on the primary, creates [`RelationPlan::objects`], once
//!   [`crate::tenancy::ownership`] and
//!   [`crate::tenancy::extensions`] have allowed them.
//!
//! On `Err`, the relation is refused as a whole: the charm publishes nothing
//! new for it, gives it no `pg_hba.conf` rules (fail closed), and shows the
//! error (which starts with the relation id) in a blocked status. Other
//! relations are planned independently and keep working.
//!
//! **Published keys** (`pgsql-provider-anchors.md` §2.3, §7):
//! `host`, `port`, `database`, `user`, `password`, `schema_user`,
//! `schema_password` (the same user and password), `master` (libpq string
//! with `dbname host password port user` to the primary), `standbys`
//! (newline-separated libpq strings, absent without standbys), `state`,
//! `version` (major), `allowed-units` (space-separated), `allowed-subnets`
//! (comma-separated, sorted, unique), and `roles` / `extensions` echoed
//! verbatim when requested. The requested `database` is echoed by `database`
//! itself, which is always exactly the requested name when there is one.
//!
//! **Remote addresses** are [`crate::access::remote`]'s: a unit
//! without any is not in `allowed-units`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::libpq::{conninfo, ConninfoError};
use super::request::{parse_request, ConsumerRequest, RequestError};
use super::request::{DATABASE_KEY, EXTENSIONS_KEY, ROLES_KEY};
use crate::access::cidr::AddressLimits;
use crate::access::remote::{AddressProblem, RemoteAddresses};
use crate::access::RelationAccess;
use crate::names::default_database;
use crate::secret::Secret;
use crate::sql::Name;
use crate::{ClientEndpoint, Credentials, DesiredObjects, Publication, RelationFacts, ServerFacts};
use crate::{RelationData, RelationId};

/// Every key [`plan_relation`] may publish. A key missing from a plan must
/// be deleted from the bag (written as an empty value), or a stale value
/// such as an old `standbys` would stay.
pub const PUBLISHED_KEYS: [&str; 15] = [
    "allowed-subnets",
    "allowed-units",
    DATABASE_KEY,
    EXTENSIONS_KEY,
    "host",
    "master",
    "password",
    "port",
    ROLES_KEY,
    "schema_password",
    "schema_user",
    "standbys",
    "state",
    "user",
    "version",
];

/// The plan for one relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationPlan {
    /// The keys to publish, with their values; holds the password.
    pub data: Secret<RelationData>,
    pub access: RelationAccess,
    pub objects: DesiredObjects,
    pub request: ConsumerRequest,
}

impl RelationPlan {
    /// [`RelationPlan::data`] plus an empty value (delete) for every other
    /// key in [`PUBLISHED_KEYS`]: exactly what to give `relation-set`.
    pub fn settings_to_write(&self) -> Secret<RelationData> {
        let mut settings = self.data.expose().clone();
        for key in PUBLISHED_KEYS {
            settings.entry(key.to_string()).or_default();
        }
        Secret::new(settings)
    }

    /// What to publish: [`RelationPlan::settings_to_write`], in this unit's
    /// bag and the leader's application bag.
    pub fn publication(&self) -> Publication {
        Publication::PgsqlBags(self.settings_to_write())
    }
}

/// An empty value (delete) for every key in [`PUBLISHED_KEYS`]: what a
/// refused relation's bags must end up as.
pub fn retraction() -> RelationData {
    PUBLISHED_KEYS
        .iter()
        .map(|key| (key.to_string(), String::new()))
        .collect()
}

/// Plans one client relation; see the module docs. `limits` bounds the
/// address space the relation's units may be granted together.
pub fn plan_relation(
    facts: &RelationFacts,
    server: &ServerFacts,
    credentials: &Credentials,
    limits: &AddressLimits,
) -> Result<RelationPlan, RelationError> {
    plan(facts, server, credentials, limits).map_err(|problem| RelationError {
        relation: facts.relation.clone(),
        problem,
    })
}

fn plan(
    facts: &RelationFacts,
    server: &ServerFacts,
    credentials: &Credentials,
    limits: &AddressLimits,
) -> Result<RelationPlan, RelationProblem> {
    let endpoint = ClientEndpoint::named(facts.relation.endpoint())
        .ok_or(RelationProblem::NotAClientEndpoint)?;
    let addresses = RemoteAddresses::of(facts, limits).map_err(RelationProblem::Address)?;

    let request = parse_request(&facts.remote_app_data, &addresses.present)
        .map_err(RelationProblem::Request)?;
    if let Some(role) = request.roles.iter().find(|&role| *role == credentials.user) {
        return Err(RelationProblem::RoleIsTheUser { role: role.clone() });
    }
    let database = request
        .database
        .clone()
        .unwrap_or_else(|| default_database(&facts.remote_app));

    let data = published_data(&database, credentials, server, &addresses, &request)?;
    Ok(RelationPlan {
        data: Secret::new(data),
        access: RelationAccess {
            relation: facts.relation.clone(),
            remote_app: facts.remote_app.clone(),
            user: credentials.user.clone(),
            scope: endpoint.hba_scope(&database),
            cidrs: addresses.cidrs,
        },
        objects: DesiredObjects {
            database,
            more_databases: Vec::new(),
            user: credentials.user.clone(),
            superuser: endpoint.grants_superuser(),
            createdb: false,
            createrole: false,
            roles: request.roles.clone(),
            create_missing_roles: true,
            extensions: request.extensions.clone(),
        },
        request,
    })
}

/// The published keys; empty values are left out.
fn published_data(
    database: &Name,
    credentials: &Credentials,
    server: &ServerFacts,
    addresses: &RemoteAddresses,
    request: &ConsumerRequest,
) -> Result<RelationData, RelationProblem> {
    let user = credentials.user.as_str();
    let password = credentials.password.expose();
    let port = server.port.to_string();
    let connection_to = |host: &str| {
        let params = BTreeMap::from([
            ("dbname", database.to_string()),
            ("host", host.to_string()),
            ("password", password.clone()),
            ("port", port.clone()),
            ("user", user.to_string()),
        ]);
        conninfo(&params).map_err(|error| RelationProblem::ServerAddress { error })
    };
    let master = connection_to(&server.primary_host)?;
    let standby_hosts: BTreeSet<&String> = server.standby_hosts.iter().collect();
    let standbys = standby_hosts
        .into_iter()
        .map(|host| connection_to(host))
        .collect::<Result<Vec<_>, _>>()?;

    let entries = [
        ("allowed-subnets", join(&addresses.subnets, ",")),
        ("allowed-units", addresses.units.join(" ")),
        (DATABASE_KEY, database.to_string()),
        (
            EXTENSIONS_KEY,
            request.verbatim.extensions.clone().unwrap_or_default(),
        ),
        ("host", server.host.clone()),
        ("master", master),
        ("password", password.clone()),
        ("port", port.clone()),
        (
            ROLES_KEY,
            request.verbatim.roles.clone().unwrap_or_default(),
        ),
        ("schema_password", password.clone()),
        ("schema_user", user.to_string()),
        ("standbys", standbys.join("\n")),
        ("state", server.state.as_str().to_string()),
        ("user", user.to_string()),
        ("version", server.major_version.to_string()),
    ];
    Ok(entries
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| (key.to_string(), value))
        .collect())
}

fn join(items: &BTreeSet<String>, separator: &str) -> String {
    items
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(separator)
}

/// A relation refused by [`plan_relation`]. Its text starts with the
/// relation id and is meant for a blocked status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationError {
    pub relation: RelationId,
    pub problem: RelationProblem,
}

/// What is wrong with a refused relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelationProblem {
    /// The relation is not on `db` or `db-admin` (a charm bug).
    NotAClientEndpoint,
    /// The consumer's request is invalid.
    Request(RequestError),
    /// The remote units' addresses are invalid, too many or too broad.
    Address(AddressProblem),
    /// The consumer asked to be granted its own user.
    RoleIsTheUser { role: Name },
    /// A server address cannot go into a connection string.
    ServerAddress { error: ConninfoError },
}

impl fmt::Display for RelationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.relation)?;
        match &self.problem {
            RelationProblem::NotAClientEndpoint => {
                f.write_str("not a client relation (db or db-admin)")
            }
            RelationProblem::Request(error) => write!(f, "{error}"),
            RelationProblem::Address(problem) => write!(f, "{problem}"),
            RelationProblem::RoleIsTheUser { role } => {
                write!(f, "requested roles include {role}, the relation's own user")
            }
            RelationProblem::ServerAddress { error } => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for RelationError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::hba::{render_pg_hba, HbaInput};
    use crate::access::remote::MAX_UNITS_PER_RELATION;
    use crate::access::HbaScope;
    use crate::names::relation_user;
    use crate::sql::NameKind;
    use crate::{bag_changes, ServerState};

    const PASSWORD: &str = "Zq3Xw9Lr2Tn8Vb5Kc1Hm7Pj4Fd6Gs0Ay";
    const CMR_APP: &str = "remote-76cd96ab50f146b284912afd1cc13a0e";
    /// The widest address limits the options accept, so that tests about
    /// other rules are not refused for breadth.
    const WIDEST: AddressLimits = AddressLimits {
        ipv4_prefix_len: AddressLimits::WIDEST_IPV4,
        ipv6_prefix_len: AddressLimits::WIDEST_IPV6,
    };

    fn bag(pairs: &[(&str, &str)]) -> RelationData {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn juju_bag(address: &str) -> RelationData {
        bag(&[
            ("egress-subnets", &format!("{address}/32")),
            ("ingress-address", address),
            ("private-address", address),
        ])
    }

    fn facts(relation: &str, app: &str, units: &[(&str, RelationData)]) -> RelationFacts {
        RelationFacts {
            relation: relation.parse().unwrap(),
            remote_app: app.to_string(),
            remote_app_data: RelationData::new(),
            remote_units: units
                .iter()
                .map(|(unit, data)| (unit.to_string(), data.clone()))
                .collect(),
            departing_unit: None,
        }
    }

    fn standalone() -> ServerFacts {
        ServerFacts {
            host: "10.1.0.5".to_string(),
            primary_host: "10.1.0.5".to_string(),
            standby_hosts: vec![],
            port: 5432,
            major_version: 16,
            version: "16.4".to_string(),
            state: ServerState::Standalone,
            tls: Default::default(),
        }
    }

    fn credentials_for(facts: &RelationFacts) -> Credentials {
        let endpoint = ClientEndpoint::named(facts.relation.endpoint()).unwrap();
        Credentials {
            user: relation_user(endpoint, &facts.remote_app),
            password: Secret::new(PASSWORD.to_string()),
        }
    }

    fn plan(facts: &RelationFacts, server: &ServerFacts) -> Result<RelationPlan, RelationError> {
        plan_relation(facts, server, &credentials_for(facts), &WIDEST)
    }

    fn published(plan: &RelationPlan) -> Vec<(String, String)> {
        plan.data.expose().clone().into_iter().collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn publishes_the_legacy_key_set_for_a_single_unit() {
        let facts = facts(
            "db:7",
            "discourse",
            &[("discourse/0", juju_bag("10.2.0.8"))],
        );
        let plan = plan(&facts, &standalone()).unwrap();
        let master = format!(
            "dbname=discourse host=10.1.0.5 password={PASSWORD} port=5432 user=juju_discourse"
        );
        assert_eq!(
            published(&plan),
            pairs(&[
                ("allowed-subnets", "10.2.0.8/32"),
                ("allowed-units", "discourse/0"),
                ("database", "discourse"),
                ("host", "10.1.0.5"),
                ("master", &master),
                ("password", PASSWORD),
                ("port", "5432"),
                ("schema_password", PASSWORD),
                ("schema_user", "juju_discourse"),
                ("state", "standalone"),
                ("user", "juju_discourse"),
                ("version", "16"),
            ])
        );
        let discourse = Name::parse(NameKind::Database, "discourse").unwrap();
        assert_eq!(plan.access.scope, HbaScope::Database(discourse.clone()));
        assert_eq!(
            plan.objects,
            DesiredObjects {
                database: discourse,
                more_databases: vec![],
                user: credentials_for(&facts).user,
                superuser: false,
                createdb: false,
                createrole: false,
                roles: vec![],
                create_missing_roles: true,
                extensions: vec![],
            }
        );
        let blocks: Vec<String> = plan.access.cidrs.iter().map(ToString::to_string).collect();
        assert_eq!(blocks, ["10.2.0.8/32"]);
    }

    #[test]
    fn every_published_key_is_a_known_key() {
        let mut facts = facts("db:1", "app", &[("app/0", juju_bag("10.2.0.8"))]);
        facts.remote_app_data = bag(&[("roles", "reader"), ("extensions", "citext")]);
        let mut server = standalone();
        server.standby_hosts = vec!["10.1.0.6".to_string()];
        let plan = plan(&facts, &server).unwrap();
        let keys: BTreeSet<&str> = plan.data.expose().keys().map(String::as_str).collect();
        assert_eq!(keys, PUBLISHED_KEYS.into_iter().collect());
    }

    #[test]
    fn standbys_are_sorted_newline_separated_and_master_is_the_primary() {
        let facts = facts("db:7", "app", &[("app/0", juju_bag("10.2.0.8"))]);
        let server = ServerFacts {
            host: "10.1.0.7".to_string(),
            primary_host: "10.1.0.5".to_string(),
            standby_hosts: vec!["10.1.0.7".into(), "10.1.0.6".into(), "10.1.0.7".into()],
            state: ServerState::HotStandby,
            ..standalone()
        };
        let plan = plan(&facts, &server).unwrap();
        let data = plan.data.expose();
        let to = |host: &str| {
            format!("dbname=app host={host} password={PASSWORD} port=5432 user=juju_app")
        };
        assert_eq!(data["host"], "10.1.0.7");
        assert_eq!(data["master"], to("10.1.0.5"));
        assert_eq!(
            data["standbys"],
            format!("{}\n{}", to("10.1.0.6"), to("10.1.0.7"))
        );
        assert_eq!(data["state"], "hot standby");
        assert_eq!(ServerState::Master.as_str(), "master");
    }

    #[test]
    fn settings_to_write_delete_keys_no_longer_published() {
        let facts = facts("db:7", "app", &[]);
        let plan = plan(&facts, &standalone()).unwrap();
        let settings = plan.settings_to_write();
        let settings = settings.expose();
        assert_eq!(settings.len(), PUBLISHED_KEYS.len());
        for key in [
            "standbys",
            "roles",
            "extensions",
            "allowed-units",
            "allowed-subnets",
        ] {
            assert_eq!(settings[key], "", "{key}");
        }
        assert_eq!(settings["password"], PASSWORD);
    }

    #[test]
    fn bag_changes_write_only_what_the_committed_bag_lacks() {
        let facts = facts("db:7", "app", &[("app/0", juju_bag("10.2.0.8"))]);
        let plan = plan(&facts, &standalone()).unwrap();
        let desired = plan.settings_to_write();
        let desired = desired.expose();
        // Nothing committed yet (or the hook that published failed): all of it.
        let everything = bag_changes(desired, &RelationData::new());
        assert_eq!(everything, *plan.data.expose());
        // Committed already: nothing to write.
        let committed = plan.data.expose().clone();
        assert!(bag_changes(desired, &committed).is_empty());
        // Juju's own keys in our bag are left alone; a stale key is deleted,
        // a changed one rewritten.
        let mut stale = committed.clone();
        stale.insert("ingress-address".into(), "10.1.0.5".into());
        stale.insert("standbys".into(), "old".into());
        stale.insert("port".into(), "5433".into());
        assert_eq!(
            bag_changes(desired, &stale),
            bag(&[("port", "5432"), ("standbys", "")])
        );
        // Retracting deletes exactly the published keys present.
        assert_eq!(
            bag_changes(&retraction(), &stale),
            stale
                .keys()
                .filter(|k| PUBLISHED_KEYS.contains(&k.as_str()))
                .map(|k| (k.clone(), String::new()))
                .collect::<RelationData>()
        );
        assert!(bag_changes(&retraction(), &juju_bag("10.1.0.5")).is_empty());
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let facts = facts("db:7", "app", &[("app/0", juju_bag("10.2.0.8"))]);
        let plan = plan(&facts, &standalone()).unwrap();
        let credentials = credentials_for(&facts);
        for text in [
            format!("{plan:?}"),
            format!("{:?}", plan.settings_to_write()),
            format!("{credentials:?}"),
        ] {
            assert!(!text.contains(PASSWORD), "{text}");
        }
    }

    #[test]
    fn echoes_the_request_verbatim_and_plans_its_objects() {
        let mut facts = facts(
            "db-admin:9",
            CMR_APP,
            &[(&format!("{CMR_APP}/0"), juju_bag("10.2.0.8"))],
        );
        facts.remote_app_data = bag(&[
            ("database", "landscape-main"),
            ("roles", "writer, reader"),
            ("extensions", "citext, pg_trgm(util)"),
        ]);
        let plan = plan(&facts, &standalone()).unwrap();
        let data = plan.data.expose();
        assert_eq!(data["database"], "landscape-main");
        assert_eq!(data["roles"], "writer, reader");
        assert_eq!(data["extensions"], "citext, pg_trgm(util)");
        assert_eq!(data["user"], format!("jujuadmin_{CMR_APP}"));
        assert!(plan.objects.superuser);
        let roles: Vec<&str> = plan.objects.roles.iter().map(Name::as_str).collect();
        assert_eq!(roles, ["reader", "writer"]);
        let extensions: Vec<String> = plan
            .objects
            .extensions
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(extensions, ["citext", "pg_trgm(util)"]);
    }

    #[test]
    fn cross_model_consumers_get_a_default_database_named_after_the_remote_app() {
        let facts = facts(
            "db:3",
            CMR_APP,
            &[(&format!("{CMR_APP}/0"), juju_bag("203.0.113.9"))],
        );
        let plan = plan(&facts, &standalone()).unwrap();
        assert_eq!(plan.data.expose()["database"], CMR_APP);
        assert_eq!(plan.data.expose()["user"], format!("juju_{CMR_APP}"));
        assert_eq!(plan.data.expose()["allowed-units"], format!("{CMR_APP}/0"));
    }

    #[test]
    fn addresses_fall_back_and_are_merged_sorted_and_deduplicated() {
        let units = [
            (
                "app/0",
                bag(&[
                    ("egress-subnets", "10.3.0.0/16, 10.2.0.8/32"),
                    ("ingress-address", "10.2.0.8"),
                ]),
            ),
            (
                "app/1",
                bag(&[
                    ("egress-subnets", ""),
                    ("ingress-address", "10.2.0.9"),
                    ("private-address", "10.9.9.9"),
                ]),
            ),
            ("app/2", bag(&[("private-address", "2001:db8::2")])),
            ("app/3", bag(&[("egress-subnets", "10.2.0.8/32")])),
            (
                "app/4",
                bag(&[("egress-subnets", "10.3.7.7/16,2001:DB8::2")]),
            ),
            ("app/10", bag(&[("some-key", "no address at all")])),
        ];
        let plan = plan(&facts("db:5", "app", &units), &standalone()).unwrap();
        let data = plan.data.expose();
        assert_eq!(data["allowed-units"], "app/0 app/1 app/2 app/3 app/4");
        assert_eq!(
            data["allowed-subnets"],
            "10.2.0.8/32,10.2.0.9/32,10.3.0.0/16,10.3.7.7/16,2001:DB8::2,2001:db8::2/128"
        );
        let blocks: Vec<String> = plan.access.cidrs.iter().map(ToString::to_string).collect();
        assert_eq!(
            blocks,
            [
                "10.2.0.8/32",
                "10.2.0.9/32",
                "10.3.0.0/16",
                "2001:db8::2/128"
            ]
        );
    }

    #[test]
    fn a_departing_unit_is_left_out() {
        let mut facts = facts(
            "db:5",
            "app",
            &[
                ("app/0", juju_bag("10.2.0.8")),
                (
                    "app/1",
                    bag(&[
                        ("egress-subnets", "10.2.0.9/32"),
                        ("roles", "from_departing"),
                    ]),
                ),
            ],
        );
        facts.departing_unit = Some("app/1".to_string());
        let plan = plan(&facts, &standalone()).unwrap();
        let data = plan.data.expose();
        assert_eq!(data["allowed-units"], "app/0");
        assert_eq!(data["allowed-subnets"], "10.2.0.8/32");
        assert!(!data.contains_key("roles"));
        assert_eq!(plan.access.cidrs.len(), 1);
    }

    #[test]
    fn refuses_hostile_relations_with_a_clear_message() {
        let huge_list = "10.0.0.1,".repeat(600);
        let too_many_units: Vec<(String, RelationData)> = (0..=MAX_UNITS_PER_RELATION)
            .map(|n| (format!("app/{n}"), RelationData::new()))
            .collect();
        let cases: Vec<(RelationFacts, &str)> = vec![
            (
                facts("db:4", "app", &[("app/0", bag(&[("egress-subnets", "0.0.0.0/0")]))]),
                "db:4: egress-subnets of unit \"app/0\": 0.0.0.0/0 is too broad",
            ),
            (
                facts("db:4", "app", &[("app/0", bag(&[("egress-subnets", "10.0.0.1;rm -rf /")]))]),
                "db:4: egress-subnets of unit \"app/0\": \"10.0.0.1;rm\" is not an IP address",
            ),
            (
                facts("db:4", "app", &[("app/0", bag(&[("egress-subnets", &huge_list)]))]),
                "db:4: egress-subnets of unit \"app/0\": the subnet list is 5400 bytes long",
            ),
            (
                facts("db:4", "app", &[("app/0", bag(&[("ingress-address", "evil.example.com")]))]),
                "db:4: ingress-address of unit \"app/0\": \"evil.example.com\" is not an IP address",
            ),
            (
                facts("db:4", "app", &[("app/0", bag(&[("private-address", "10.0.0.0/8")]))]),
                "db:4: private-address of unit \"app/0\": \"10.0.0.0/8\" is not an IP address",
            ),
            (
                facts("db:4", "app", &[("app/0 all", juju_bag("10.0.0.1"))]),
                "db:4: remote unit name \"app/0 all\" is not <application>/<number>",
            ),
            (
                facts("db:4", "app", &[("app/0", bag(&[("database", "x\ny")]))]),
                "db:4: requested database in unit \"app/0\"'s data: database name \"x\\ny\" is not accepted",
            ),
            (
                facts("db:4", "app", &[("app/0", bag(&[("roles", "juju_app")]))]),
                "db:4: requested roles in unit \"app/0\"'s data: role name \"juju_app\" is not accepted",
            ),
            (
                RelationFacts {
                    remote_units: too_many_units.into_iter().collect(),
                    ..facts("db:4", "app", &[])
                },
                "db:4: 1025 remote units, more than the 1024 accepted",
            ),
            (
                facts("replication:4", "app", &[]),
                "replication:4: not a client relation",
            ),
        ];
        for (facts, expected) in cases {
            let credentials = Credentials {
                user: relation_user(ClientEndpoint::DB, &facts.remote_app),
                password: Secret::new(PASSWORD.to_string()),
            };
            let error =
                plan_relation(&facts, &standalone(), &credentials, &WIDEST).expect_err(expected);
            let message = error.to_string();
            assert!(
                message.starts_with(expected),
                "got: {message}\nwant: {expected}"
            );
            assert!(!message.contains('\n') && message.len() < 300, "{message}");
        }
    }

    #[test]
    fn too_many_distinct_subnets_across_units_are_refused() {
        let units: Vec<(String, RelationData)> = (0..40)
            .map(|n| {
                let list: Vec<String> = (0..30).map(|m| format!("10.{n}.{m}.1")).collect();
                (
                    format!("app/{n}"),
                    bag(&[("egress-subnets", &list.join(","))]),
                )
            })
            .collect();
        let facts = RelationFacts {
            remote_units: units.into_iter().collect(),
            ..facts("db:4", "app", &[])
        };
        let error = plan(&facts, &standalone()).unwrap_err();
        assert_eq!(
            error.problem,
            RelationProblem::Address(AddressProblem::TooManySubnets { count: 1200 })
        );
    }

    #[test]
    fn the_address_space_of_a_relation_is_bounded_over_all_its_units() {
        // Each unit claims blocks that are fine alone; together they are not.
        let units = |count: u8, prefix: u8| -> Vec<(String, RelationData)> {
            (0..count)
                .map(|n| {
                    // Distinct blocks: 10.0.0.0/16, 10.1.0.0/16… or 10.0.0.0/8, 11.0.0.0/8…
                    let subnets = if prefix == 8 {
                        format!("{}.0.0.0/8", 10 + n)
                    } else {
                        format!("10.{n}.0.0/{prefix}")
                    };
                    (format!("app/{n}"), bag(&[("egress-subnets", &subnets)]))
                })
                .collect()
        };
        let facts_of = |units: Vec<(String, RelationData)>| RelationFacts {
            remote_units: units.into_iter().collect(),
            ..facts("db:4", "app", &[])
        };
        let limits = AddressLimits::default();
        let credentials = credentials_for(&facts("db:4", "app", &[]));
        let judge = |facts: &RelationFacts, limits: &AddressLimits| {
            plan_relation(facts, &standalone(), &credentials, limits).map(|_| ())
        };
        // One /16: exactly the default limit.
        assert_eq!(judge(&facts_of(units(1, 16)), &limits), Ok(()));
        // Two /16s: twice the limit.
        let error = judge(&facts_of(units(2, 16)), &limits).unwrap_err();
        assert_eq!(
            error.problem,
            RelationProblem::Address(AddressProblem::TooBroad {
                family: 4,
                covered: "131072".into(),
                prefix_len: 16
            })
        );
        assert_eq!(
            error.to_string(),
            "db:4: the remote units' addresses cover 131072 IPv4 addresses together, \
             more than one /16 (relation-ipv4-breadth); narrow the consumer's \
             egress-subnets or raise relation-ipv4-breadth"
        );
        // The same blocks repeated by every unit count once.
        let same: Vec<(String, RelationData)> = (0..50)
            .map(|n| {
                (
                    format!("app/{n}"),
                    bag(&[("egress-subnets", "10.9.0.0/16")]),
                )
            })
            .collect();
        assert_eq!(judge(&facts_of(same), &limits), Ok(()));
        // 40 units with one /8 each: allowed per block, far too much together.
        let error = judge(&facts_of(units(40, 8)), &WIDEST).unwrap_err();
        assert!(matches!(
            error.problem,
            RelationProblem::Address(AddressProblem::TooBroad { family: 4, .. })
        ));
        // IPv6 has its own budget; IPv4-mapped blocks spend IPv4's.
        let v6 = facts(
            "db:4",
            "app",
            &[
                ("app/0", bag(&[("egress-subnets", "2001:db8::/48")])),
                ("app/1", bag(&[("egress-subnets", "2001:db9::/48")])),
            ],
        );
        let error = judge(&v6, &limits).unwrap_err();
        assert!(matches!(
            error.problem,
            RelationProblem::Address(AddressProblem::TooBroad { family: 6, .. })
        ));
        let mapped = facts(
            "db:4",
            "app",
            &[("app/0", bag(&[("egress-subnets", "::ffff:10.0.0.0/104")]))],
        );
        let error = judge(&mapped, &limits).unwrap_err();
        assert!(matches!(
            error.problem,
            RelationProblem::Address(AddressProblem::TooBroad { family: 4, .. })
        ));
    }

    #[test]
    fn a_consumer_cannot_ask_for_its_own_user_as_a_role() {
        // juju_* roles are reserved anyway; a user name outside that prefix
        // (possible if the charm's naming ever changes) is still caught.
        let mut facts = facts("db:4", "app", &[]);
        facts.remote_app_data = bag(&[("roles", "custom_user")]);
        let credentials = Credentials {
            user: Name::parse(NameKind::User, "custom_user").unwrap(),
            password: Secret::new(PASSWORD.to_string()),
        };
        let error = plan_relation(&facts, &standalone(), &credentials, &WIDEST).unwrap_err();
        assert_eq!(
            error.to_string(),
            "db:4: requested roles include custom_user, the relation's own user"
        );
    }

    #[test]
    fn a_hostile_relation_does_not_affect_the_others() {
        let good = facts("db:1", "good", &[("good/0", juju_bag("10.2.0.8"))]);
        let bad = facts(
            "db:2",
            "bad",
            &[("bad/0", bag(&[("egress-subnets", "::/0")]))],
        );
        let admin = facts("db-admin:3", "ops", &[("ops/0", juju_bag("10.2.0.9"))]);
        let mut input = HbaInput::default();
        let mut blocked = Vec::new();
        for facts in [&good, &bad, &admin] {
            match plan(facts, &standalone()) {
                Ok(plan) => input.relations.push(plan.access),
                Err(error) => blocked.push(error.to_string()),
            }
        }
        assert_eq!(blocked.len(), 1);
        assert!(
            blocked[0].starts_with("db:2: egress-subnets"),
            "{}",
            blocked[0]
        );
        let text = render_pg_hba(&input);
        assert!(
            text.contains("host \"good\" \"juju_good\" 10.2.0.8/32 scram-sha-256 # db:1 good\n")
        );
        assert!(text
            .contains("host all \"jujuadmin_ops\" 10.2.0.9/32 scram-sha-256 # db-admin:3 ops\n"));
        assert!(!text.contains("bad"));
    }
}
