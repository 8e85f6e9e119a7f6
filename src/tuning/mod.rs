//! Automatic tuning of PostgreSQL and of the host it runs on.
//!
//! The module is split along "functional core, imperative shell" lines:
//!
//! * [`facts`]: plain data describing the machine (memory, CPUs, the file
//!   systems and block devices under PGDATA and the WAL directory).
//! * [`detect`]: the only part that touches the system. It reads sysfs and
//!   procfs below a configurable root ([`SysRoot`]), so tests run it against
//!   fixture trees in `tests/fixtures/sysfs/`. Missing files never panic;
//!   what could not be found is recorded as `Unknown` plus a note.
//! * [`classify()`]: which kind of disk a leaf device is (NVMe, SSD, HDD,
//!   SAN or unknown), with the `storage-type` config as an override.
//! * [`config`]: the tuning-related charm options, parsed and validated.
//! * [`plan()`]: a pure function from facts and config to PostgreSQL settings,
//!   each with the reason it has its value.
//! * [`host`]: a pure plan for kernel settings (sysctl, huge pages, I/O
//!   scheduler, read-ahead) rendered as a sysctl.d file and udev rules.
//!
//! The shell around them:
//!
//! * [`roots`]: where the host's files and knobs are ([`HostRoots`]);
//! * [`host_apply`]: applying the host plan ([`host_apply::apply_host_plan`])
//!   and handing the host back ([`host_apply::revert_host`]);
//! * [`huge_pages`]: how many huge pages the server needs;
//! * [`machine`]: the machine's facts, and noticing that it changed;
//! * [`host_tuning`]: the host-tuning step of the converge.
//!
//! Writing `conf.d` is the caller's job (`converge::apply`); the
//! `tuning-report` action is in [`crate::actions`].

pub mod classify;
pub mod config;
pub mod detect;
pub mod facts;
pub mod host;
pub mod host_apply;
pub mod host_tuning;
pub mod huge_pages;
pub mod machine;
pub mod plan;
pub mod roots;
pub mod units;

pub use classify::{classify, volume_class};
pub use config::{ConfigError, MemoryLimit, Profile, StorageTypeOverride, TuningConfig};
pub use detect::{DeviceNumber, FsSpace, SysRoot};
pub use facts::{DiskClass, DiskFacts, MachineFacts, RaidFacts, StableId, VolumeFacts};
pub use host::{host_plan, render_sysctl_conf, render_udev_rules, DeviceTuning, HostPlan, Sysctl};
pub use plan::{memory_budget, memory_commitment, plan, Setting};
pub use roots::HostRoots;
