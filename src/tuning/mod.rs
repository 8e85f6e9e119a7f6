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
//! * [`apply`]: the imperative shell that applies the host plan and hands
//!   the host back; [`huge_pages`] asks the server how many huge pages it
//!   needs; [`machine`] notices a changed machine.
//! * [`report`]: the `tuning-report` action.
//!
//! Writing `conf.d` is the caller's job (`lifecycle::converge`).

pub mod apply;
pub mod classify;
pub mod config;
pub mod detect;
pub mod facts;
pub mod host;
pub mod huge_pages;
pub mod machine;
pub mod plan;
pub mod report;
pub mod units;

pub use classify::{classify, volume_class};
pub use config::{ConfigError, MemoryLimit, Profile, StorageTypeOverride, TuningConfig};
pub use detect::{DeviceNumber, FsSpace, SysRoot};
pub use facts::{DiskClass, DiskFacts, MachineFacts, RaidFacts, StableId, VolumeFacts};
pub use host::{host_plan, render_sysctl_conf, render_udev_rules, DeviceTuning, HostPlan, Sysctl};
pub use plan::{memory_budget, memory_commitment, plan, Setting};
