//! The PostgreSQL machine charm as a library; `src/main.rs` is the thin
//! `pg-charm` entry point on top of it. ARCHITECTURE.md is the map.
//!
//! The public modules are what the entry point, the integration tests and
//! the scenarios (walkthrough, benchmarks, `tuning-plan`) use: the router
//! ([`charm`]), the hook context and tools ([`juju`], [`knobs`],
//! [`process_env`]), the pure cores they inspect ([`relations`],
//! [`tuning`]), the HA groundwork the HA tests and benchmark drive
//! ([`ha`]: Patroni and etcd on every unit, issues 11 and 12; not yet
//! wired into the converge), and the places the tests clean up
//! ([`state`], [`fsx`], [`cluster`]), and [`tls`] (keys, certificates,
//! the `tls-certificates` relation data and their verification, which the
//! provider test drives). Everything else is private to the
//! charm: the converge (`converge`, `lifecycle`), the client relations'
//! shell (`clients`, `credentials`), storage placement and moves
//! (`storage`), roles (`replication`), options, outcomes, events, actions.

mod actions;
pub mod charm;
mod clients;
pub mod cluster;
mod converge;
mod credentials;
mod event;
pub mod fsx;
pub mod ha;
pub mod juju;
pub mod knobs;
mod lifecycle;
mod options;
mod outcome;
pub mod process_env;
/// The client relations' pure core: [`pgsql_contract`], a crate of its own
/// so that Cargo keeps it free of the shell.
pub use pgsql_contract as relations;
pub use pgsql_contract::secret;
mod replication;
pub mod state;
mod storage;
pub mod tls;
pub mod tuning;
mod unit;
