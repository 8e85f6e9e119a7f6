//! The `pgsql` interface: the `db` and `db-admin` endpoints of the legacy
//! PostgreSQL charm, which consumers such as ops-lib-pgsql speak.
//!
//! 1. [`request`] reads what the consumer asked for (`database`, `roles`,
//!    `extensions`) from its application bag and unit bags.
//! 2. [`plan`] turns the relation, the server's facts and the credentials
//!    into the data to publish (in the unit bag and the leader's app bag),
//!    the `pg_hba.conf` access to grant and the database objects to create;
//!    [`libpq`] writes the connection strings it publishes.

pub mod libpq;
pub mod plan;
pub mod request;
