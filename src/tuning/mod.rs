//! Automatic tuning of PostgreSQL and of the host it runs on.
//!
//! The module is split along "functional core, imperative shell" lines. The
//! core is the crate `pg-tuning` (re-exported here, so its modules keep their
//! paths: `tuning::plan`, `tuning::host`, ...), which Cargo keeps pure:
//!
//! * [`facts`]: plain data describing the machine (memory, CPUs, the file
//!   systems and block devices under PGDATA and the WAL directory).
//! * [`classify()`]: which kind of disk a leaf device is (NVMe, SSD, HDD,
//!   SAN or unknown), with the `storage-type` config as an override.
//! * [`config`]: the tuning-related charm options, parsed and validated.
//! * [`plan()`]: a pure function from facts and config to PostgreSQL settings,
//!   each with the reason it has its value.
//! * [`host`]: a pure plan for kernel settings (sysctl, huge pages, I/O
//!   scheduler, read-ahead) rendered as a sysctl.d file and udev rules.
//!
//! The shell around them, in the charm:
//!
//! * [`detect`]: the only part that reads the machine. It reads sysfs and
//!   procfs below a configurable root ([`SysRoot`]), so tests run it against
//!   fixture trees in `tests/fixtures/sysfs/`. Missing files never panic;
//!   what could not be found is recorded as `Unknown` plus a note.
//! * [`roots`]: where the host's files and knobs are ([`HostRoots`]);
//! * [`host_apply`]: applying the host plan ([`host_apply::apply_host_plan`])
//!   and handing the host back ([`host_apply::revert_host`]);
//! * [`huge_pages`]: how many huge pages the server needs;
//! * [`machine`]: the machine's facts, and noticing that it changed;
//! * [`host_tuning`]: the host-tuning step of the converge.
//!
//! Writing `conf.d` is the caller's job (`converge::apply`); the
//! `tuning-report` action is in [`crate::actions`].

/// The pure core: `classify`, `config`, `facts`, `host`, `plan`, `units`
/// and their items, at the paths they had before they became a crate.
pub use pg_tuning::*;

pub mod detect;
pub(crate) mod host_apply;
pub(crate) mod host_tuning;
pub(crate) mod huge_pages;
pub(crate) mod machine;
pub(crate) mod roots;

pub use detect::SysRoot;
pub(crate) use roots::HostRoots;
