//! The PostgreSQL machine charm as a library; `src/main.rs` is the thin
//! `pg-charm` entry point on top of it.
//!
//! Being a library lets integration tests (run against the Juju emulator)
//! reuse the event parser and the hook-tool client directly.
//!
//! * [`event`]: which hook or action is running, from `JUJU_DISPATCH_PATH`.
//! * [`charm`]: the router from events to handlers.
//! * [`juju`]: the typed hook-tool client and the `juju-log` logger.
//! * [`secret`]: redacting wrapper for credentials, password generation.
//! * [`process_env`]: `HOME`/`USER`/`LANG` for the processes we spawn.
//! * [`relations`]: the pure core of the `db` and `db-admin` client
//!   relations (validation, published data, `pg_hba.conf`).
//! * [`tuning`]: machine detection and the PostgreSQL/host tuning plans.
//! * [`state`]: every file the charm keeps between hooks, in one root-only
//!   directory; [`fsx`]: the file operations root may do where others write.

pub mod actions;
pub mod charm;
pub mod clients;
pub mod cluster;
pub mod converge;
pub mod credentials;
pub mod event;
pub mod fsx;
pub mod juju;
pub mod knobs;
pub mod lifecycle;
pub mod options;
pub mod outcome;
pub mod process_env;
pub mod relations;
pub mod replication;
pub mod secret;
pub mod state;
pub mod storage;
pub mod tuning;
pub mod unit;
