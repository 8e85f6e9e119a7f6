//! The charm's records inside PostgreSQL: the table `juju_charm.owners` in
//! the `postgres` database, saying which consumer (remote application and
//! endpoint) each database and role was created for (the decisions are in
//! [`crate::relations::tenancy::ownership`]).
//!
//! Why in PostgreSQL rather than a file next to the cluster: the record
//! belongs with the data it describes. It survives the unit being replaced
//! on the same disk, goes into every backup and restore of the cluster, and
//! will replicate to standbys with everything else when the charm runs
//! several units. Only superusers can write it: the schema and table are
//! owned by `postgres` with no privilege for `PUBLIC`, and consumers cannot
//! reach the `postgres` database through `pg_hba.conf` anyway. (`db-admin`
//! consumers are superusers; nothing inside PostgreSQL can keep them out.)
//! A table found with any other owner is not trusted: the hook reports it.

use anyhow::{bail, Result};
use tokio_postgres::Client;

use crate::relations::tenancy::ownership::Owner;
use crate::relations::ClientEndpoint;

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Database,
    Role,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Database => "database",
            Kind::Role => "role",
        }
    }
}

const CREATE: &str = "
CREATE SCHEMA IF NOT EXISTS juju_charm;
REVOKE ALL ON SCHEMA juju_charm FROM PUBLIC;
CREATE TABLE IF NOT EXISTS juju_charm.owners (
    kind text NOT NULL CHECK (kind IN ('database', 'role')),
    name text NOT NULL,
    remote_app text NOT NULL,
    endpoint text NOT NULL,
    relation text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);
REVOKE ALL ON juju_charm.owners FROM PUBLIC;
COMMENT ON TABLE juju_charm.owners IS
    'Written by the PostgreSQL charm: the consumer (remote application, endpoint) each database and role was created for.';
";

/// Creates the table if missing and checks that only superusers own it.
/// `client` must be connected to the `postgres` database.
pub async fn ensure(client: &Client) -> Result<()> {
    let owners = "SELECT bool_and(r.rolsuper) FROM pg_roles r WHERE r.oid IN (
            (SELECT nspowner FROM pg_namespace WHERE nspname = 'juju_charm'),
            (SELECT relowner FROM pg_class WHERE oid = to_regclass('juju_charm.owners')))";
    let check = format!("SELECT to_regclass('juju_charm.owners') IS NOT NULL, ({owners})");
    for attempt in 0..2 {
        let row = client.query_one(&check, &[]).await?;
        let (exists, superuser_owned): (bool, Option<bool>) = (row.get(0), row.get(1));
        match (exists, superuser_owned) {
            (true, Some(true)) => return Ok(()),
            (false, _) if attempt == 0 => client.batch_execute(CREATE).await?,
            _ => break,
        }
    }
    bail!(
        "the charm's table juju_charm.owners (postgres database) or its schema is owned by a \
         role that is not a superuser, so its records cannot be trusted; check who changed it"
    )
}

/// Who `name` was recorded for, if anyone.
pub async fn owner(client: &Client, kind: Kind, name: &str) -> Result<Option<Owner>> {
    let row = client
        .query_opt(
            "SELECT remote_app, endpoint FROM juju_charm.owners WHERE kind = $1 AND name = $2",
            &[&kind.as_str(), &name],
        )
        .await?;
    Ok(row.and_then(|row| {
        Some(Owner {
            remote_app: row.get(0),
            endpoint: ClientEndpoint::named(row.get(1))?,
        })
    }))
}

/// Records `name` for `owner`, created for relation `relation`. A record
/// that exists already is kept as it is.
pub async fn record(
    client: &Client,
    kind: Kind,
    name: &str,
    owner: &Owner,
    relation: &str,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO juju_charm.owners (kind, name, remote_app, endpoint, relation) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &kind.as_str(),
                &name,
                &owner.remote_app,
                &owner.endpoint.as_str(),
                &relation,
            ],
        )
        .await?;
    Ok(())
}
