//! The PostgreSQL charm's tuning, as pure functions: what the machine is
//! ([`facts`]), which kind of disk each volume is ([`classify()`]), the
//! tuning options ([`config`]), the PostgreSQL settings they call for, each
//! with its reason ([`plan()`]), and the host's kernel settings ([`host`]).
//!
//! Nothing here reads a file, spawns a process or reads the environment;
//! the charm detects the facts (`tuning::detect`, under a `SysRoot`) and
//! applies the plans (`tuning::host_apply`, conf.d). A crate of its own so
//! that Cargo keeps it that way: it depends on `serde` and nothing else.

pub mod classify;
pub mod config;
pub mod facts;
pub mod host;
pub mod plan;
pub mod units;

pub use classify::{classify, volume_class};
pub use config::{ConfigError, MemoryLimit, Profile, StorageTypeOverride, TuningConfig};
pub use facts::{DiskClass, DiskFacts, MachineFacts, RaidFacts, StableId, VolumeFacts};
pub use host::{host_plan, render_sysctl_conf, render_udev_rules, DeviceTuning, HostPlan, Sysctl};
pub use plan::{memory_budget, memory_commitment, plan, Setting};
