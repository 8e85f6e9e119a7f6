//! Who may connect from where, for every client interface alike: the
//! remote units' addresses ([`remote`], parsed and bounded with [`cidr`]),
//! what each relation may reach ([`RelationAccess`], with its
//! [`HbaScope`]), and `pg_hba.conf` rendered from all of them ([`hba`]).

pub mod cidr;
pub mod hba;
pub mod remote;

use std::collections::BTreeSet;

use self::cidr::Cidr;
use super::sql::Name;
use crate::RelationId;

/// Which databases a rule lets its user reach.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HbaScope {
    /// One database (a `db` consumer's).
    Database(Name),
    /// Several databases (a `database` consumer's on protocol v1): one rule
    /// for each.
    Databases(Vec<Name>),
    /// Every database (a `db-admin` consumer, a superuser).
    AllDatabases,
    /// Streaming replication connections (the `replication` keyword), for
    /// standbys; no client interface grants it.
    Replication,
}

/// What one relation may reach, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationAccess {
    pub relation: RelationId,
    /// The remote application as Juju shows it; used only in comments.
    pub remote_app: String,
    pub user: Name,
    pub scope: HbaScope,
    /// The remote units' blocks, normalised and deduplicated.
    pub cidrs: BTreeSet<Cidr>,
}
