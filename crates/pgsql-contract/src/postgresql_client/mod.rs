//! The `database` relation (interface `postgresql_client`): the pure core.
//!
//! What today's Kubernetes charms speak, through one of two libraries:
//!
//! * **v0**, `data_interfaces` v0 (`charms.data_platform_libs.v0`, as the
//!   PyPI package `postgresql-charms-single-kernel` vendors it, LIBPATCH 58):
//!   flat keys in the requirer's application bag (`database`,
//!   `extra-user-roles`, `requested-secrets`, …), answered with flat keys.
//! * **v1**, the PyPI package `dpcharmlibs-interfaces` (1.2.2): `version:
//!   v1` and a JSON `requests` list, each request with its own
//!   `request-id`, answered with a JSON `requests` list in kind.
//!
//! The version is detected per relation ([`request::parse_requests`]). Like
//! [`super::request`] for `db`, nothing here runs a hook tool or SQL: the
//! charm reads the remote application's bag and the server's facts, and
//! carries out what these functions return.
//!
//! The flow for one relation:
//!
//! 1. [`request`] reads and validates what the consumer asked for; a
//!    requirer that has not written its request yet is waiting, not wrong.
//! 2. [`roles`] judges `extra-user-roles`: `CREATEDB` for anyone,
//!    `SUPERUSER` and `CREATEROLE` only for applications the operator names
//!    in `consumer-privileges`, any other name only if it is an existing
//!    NOLOGIN group role passing the same membership checks as `roles` on
//!    `db` ([`super::ownership::decide_role`]).
//! 3. [`plan`] names the relation's login role and lists its databases
//!    (each judged by [`super::ownership::decide_database`] before anything
//!    is created), and plans the Juju secrets to hold its credentials.
//! 4. [`publish`] turns the plan and the secrets' URIs into the provider's
//!    application bag, as the consumer's library reads it.
//!
//! Wire facts are checked against the libraries themselves by
//! `tests/postgresql_client.rs`, which relates the real consumer charms in
//! `tests/consumer-database-v0` and `tests/consumer-database-v1` to a
//! provider the test plays with what [`publish`] produces.
//!
//! **What the shell does with it**, per relation, in the same loop as `db`
//! (each relation served and failing on its own):
//!
//! 1. the relation's own login, [`crate::names::database_login`] (or its
//!    alternate after a rotation, [`crate::tenancy::logins`]), a member of
//!    the application's owner role [`plan::relation_user`]; its password
//!    from the relation password store, bound to the relation;
//! 2. [`plan::plan_client`]; `None`: wait; an error: refuse (blocked status,
//!    [`publish::retraction`], revoke as for `db`);
//! 3. before anything is created: `decide_database` for each of
//!    [`plan::ClientPlan::databases`] and [`roles::decide_extra_role`] for
//!    each group role, with the owner `(remote application, "database")`;
//! 4. the owner role (no `LOGIN`) with exactly the privileges the relation
//!    asks for, the login with the SCRAM verifier acting as the owner; the
//!    databases, owned by the owner role; the group grants (to the owner);
//!    `pg_hba.conf` lines for each database and both logins from the
//!    units' addresses;
//! 5. on the leader: each planned secret created (`secret-add --label`) or,
//!    when its content changed, given a new revision (`secret-set`), and
//!    granted to the relation; then [`publish::app_bag`] through
//!    [`publish::settings_to_write`] and `bag_changes`;
//! 6. on `-broken` or a refusal: the relation's secrets revoked and removed,
//!    the relation's logins revoked (the owner role's privileges too when
//!    no other relation of the application is served); the data stays.
//!
//! **Trust.** The consumer's bag is hostile until validated: every refusal
//! is a [`ClientError`] naming the relation and the field, with remote text
//! shown only through [`super::excerpt`]. A refusal concerns that relation
//! alone. Background: `ha-clients-tls-backups.md` part B.

pub mod plan;
pub mod publish;
pub mod request;
pub mod roles;
pub mod secrets;

use std::fmt;

use self::plan::Server;
use self::roles::{ConsumerPrivileges, Privilege};
use crate::access::cidr::AddressLimits;
use crate::access::remote::RemoteAddresses;
use crate::access::{HbaScope, RelationAccess};
use crate::ids::RelationId;
use crate::{Credentials, DesiredObjects, Publication, RelationFacts, ServerFacts};

/// The endpoint's name in `metadata.yaml`; also the first part of every
/// secret label, as the libraries make them.
pub const ENDPOINT: &str = "database";

/// Which library the consumer uses, told by its application bag's
/// `version` key (absent or `v0`: v0; `v1`: v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V0,
    V1,
}

/// A refused relation: which relation, which field of its data, and why.
/// The text starts with the relation id and is meant for a blocked status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub relation: RelationId,
    /// The key in the consumer's bag, or a path into it for v1
    /// (`requests[1].extra-user-roles`); empty for a problem of the whole
    /// relation.
    pub field: String,
    pub problem: String,
}

impl ClientError {
    pub(crate) fn new(
        relation: &RelationId,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        ClientError {
            relation: relation.clone(),
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.relation, self.problem)
        } else {
            write!(f, "{}: {}: {}", self.relation, self.field, self.problem)
        }
    }
}

impl std::error::Error for ClientError {}

/// The relation planned for the client loop, whatever the protocol: who
/// may connect from where (each of its databases, from its units'
/// `egress-subnets`), what to create, and what to publish (the leader's
/// secrets and application bag). `Ok(None)`: the consumer has not asked
/// yet. `Err`: refused, with a message that starts with the relation id.
pub fn plan_relation(
    facts: &RelationFacts,
    server: &ServerFacts,
    credentials: &Credentials,
    limits: &AddressLimits,
    privileges: &ConsumerPrivileges,
) -> Result<Option<crate::ClientPlan>, String> {
    let relation = &facts.relation;
    let addresses =
        RemoteAddresses::of(facts, limits).map_err(|problem| format!("{relation}: {problem}"))?;
    let facts_for_plan = Server {
        primary: server.primary_host.clone(),
        standbys: server.standby_hosts.clone(),
        port: server.port,
        version: server.version.clone(),
        tls: server.tls.clone(),
    };
    let Some(plan) = plan::plan_client(
        relation,
        &facts.remote_app,
        &facts.remote_app_data,
        &facts_for_plan,
        credentials,
        privileges,
    )
    .map_err(|error| error.to_string())?
    else {
        return Ok(None);
    };
    let mut seen = std::collections::BTreeSet::new();
    let databases: Vec<_> = plan
        .databases()
        .filter(|database| seen.insert(*database))
        .cloned()
        .collect();
    let Some((first, more)) = databases.split_first() else {
        return Err(format!("{relation}: asks for no database"));
    };
    let privileges = &plan.extra_user_roles.privileges;
    // The application's owner role owns the databases; pg_hba.conf names
    // the relation's own login (and its alternate, which the credentials
    // may name: [`crate::tenancy::logins`]), both acting as the owner.
    let owner = plan::relation_user(&facts.remote_app);
    let login = crate::names::database_login(&facts.remote_app, relation);
    let objects = DesiredObjects {
        database: first.clone(),
        more_databases: more.to_vec(),
        user: owner.clone(),
        superuser: privileges.contains(&Privilege::Superuser),
        createdb: privileges.contains(&Privilege::CreateDb),
        createrole: privileges.contains(&Privilege::CreateRole),
        roles: plan.extra_user_roles.groups.to_vec(),
        create_missing_roles: false,
        extensions: Vec::new(),
    };
    let scope = if more.is_empty() {
        HbaScope::Database(first.clone())
    } else {
        HbaScope::Databases(databases.clone())
    };
    Ok(Some(crate::ClientPlan {
        access: RelationAccess {
            relation: relation.clone(),
            remote_app: facts.remote_app.clone(),
            user: login,
            scope,
            cidrs: addresses.cidrs,
        },
        objects,
        publication: Publication::ClientSecretsAndBag(Box::new(plan)),
    }))
}

/// Fixtures the module's table tests share: relation `database:7` with
/// application `shop`, a one-unit server at 10.1.0.5, a known password.
#[cfg(test)]
pub(crate) mod testing {
    use super::plan::{plan_client, ClientPlan, Server, Tls};
    use super::roles::ConsumerPrivileges;
    use super::ClientError;
    use crate::ids::{RelationData, RelationId};
    use crate::secret::Password;
    use crate::Credentials;

    pub const PASSWORD: &str = "Pw5e1d0c9a7bPw5e1d0c9a7bPw5e1d0c";

    pub fn relation() -> RelationId {
        RelationId::new("database", 7)
    }

    pub fn bag(pairs: &[(&str, &str)]) -> RelationData {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn server(standbys: &[&str]) -> Server {
        Server {
            primary: "10.1.0.5".to_string(),
            standbys: standbys.iter().map(|s| s.to_string()).collect(),
            port: 5432,
            version: "16.4".to_string(),
            tls: Tls::default(),
        }
    }

    pub fn credentials(app: &str) -> Credentials {
        Credentials {
            user: crate::names::database_login(app, &relation()),
            password: Password::new(PASSWORD.to_string()),
        }
    }

    /// The plan for `shop` on `database:7`, with `privileges`.
    pub fn plan_with(
        app_data: &RelationData,
        server: &Server,
        privileges: &ConsumerPrivileges,
    ) -> Result<Option<ClientPlan>, ClientError> {
        plan_client(
            &relation(),
            "shop",
            app_data,
            server,
            &credentials("shop"),
            privileges,
        )
    }

    /// The plan for `shop` on `database:7`, nothing privileged allowed.
    pub fn plan(
        app_data: &RelationData,
        server: &Server,
    ) -> Result<Option<ClientPlan>, ClientError> {
        plan_with(app_data, server, &ConsumerPrivileges::default())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::plan::{SecretGroup, Tls};
    use super::testing::{bag, credentials, relation};
    use super::*;
    use crate::access::cidr::AddressLimits;
    use crate::ServerState;

    /// The server's TLS, as the client loop passes it in `ServerFacts`,
    /// reaches the relation's TLS secret (`secret-tls`).
    #[test]
    fn the_servers_tls_and_ca_reach_the_tls_secret() {
        let facts = RelationFacts {
            relation: relation(),
            remote_app: "shop".into(),
            remote_app_data: bag(&[
                ("database", "shop"),
                (
                    "requested-secrets",
                    "[\"username\", \"password\", \"tls\", \"tls-ca\", \"uris\", \"read-only-uris\"]",
                ),
            ]),
            remote_units: BTreeMap::from([(
                "shop/0".to_string(),
                bag(&[("egress-subnets", "10.2.0.8/32")]),
            )]),
            departing_unit: None,
        };
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        for tls in [
            Tls::default(),
            Tls {
                enabled: true,
                ca: Some(ca.into()),
            },
        ] {
            let server = ServerFacts {
                host: "10.1.0.5".into(),
                primary_host: "10.1.0.5".into(),
                standby_hosts: vec![],
                port: 5432,
                major_version: 16,
                version: "16.4".into(),
                state: ServerState::Standalone,
                tls: tls.clone(),
            };
            let plan = plan_relation(
                &facts,
                &server,
                &credentials("shop"),
                &AddressLimits::default(),
                &ConsumerPrivileges::default(),
            )
            .unwrap()
            .unwrap();
            let Publication::ClientSecretsAndBag(plan) = plan.publication else {
                panic!("a database plan publishes secrets and a bag")
            };
            let secret = plan.answers[0]
                .secrets
                .iter()
                .find(|s| s.group == SecretGroup::Tls)
                .expect("a TLS secret");
            let content = secret.content.expose();
            assert_eq!(content["tls"], if tls.enabled { "True" } else { "False" });
            assert_eq!(content.get("tls-ca").map(String::as_str), tls.ca.as_deref());
        }
    }
}
