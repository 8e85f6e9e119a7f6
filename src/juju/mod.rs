//! Typed client for the Juju hook tools, and the `log` backend built on
//! `juju-log`.
//!
//! This module owns every conversation with the Juju agent. Each function
//! runs one hook tool found on `PATH` (`relation-get`, `status-set`, …),
//! with `--format=json` where the tool has output, and returns typed data or
//! a [`ToolError`] naming the tool, its exit code and its stderr. Nothing
//! else in the charm spawns hook tools or parses their output.
//!
//! Secret values never go on a command line shown in errors: `relation-set`
//! reads JSON from stdin; `secret-add`/`secret-set` read each value from a
//! file of root's alone (`key#file=<path>`), never from the command line;
//! `leader-set` and `action-set`, which take values nowhere else, get them
//! as `key=value` arguments that errors show as `key=***`. `tool.rs` holds
//! the exact redaction rule.
//!
//! The tools' behaviour (exit codes, output shapes, when writes take effect)
//! is described in `juju-hook-contract.md` §3–5.

mod action;
mod config;
mod context;
mod leadership;
pub mod log;
pub(crate) mod memo;
mod network;
mod ports;
mod relation;
mod seam;
mod secrets;
mod status;
mod storage;
mod tool;

pub use action::{action_fail, action_get, action_log, action_set};
pub use config::{config_get, Config};
pub use context::{HookContext, HookRelation, HookSecret};
pub use leadership::{is_leader, leader_get, leader_set};
pub use network::{network_get_egress_subnets, network_get_ingress_address, unit_private_address};
pub use ports::{close_port, open_port, opened_ports};
pub use relation::{
    relation_get, relation_get_app, relation_ids, relation_list, relation_remote_app, relation_set,
    relation_set_app, RelationData, RelationId,
};
pub use seam::{HookTools, Juju};
pub use secrets::{
    secret_add, secret_get, secret_get_by_label, secret_get_latest, secret_get_peek, secret_grant,
    secret_id_by_label, secret_ids, secret_info_by_label, secret_remove, secret_revoke, secret_set,
    SecretContent, SecretInfo, SecretOptions, SecretOwner, SecretUri,
};
pub use status::{
    application_status_set, application_version_set, status_get, status_set, status_set_if_changed,
    StatusInfo, WorkloadStatus,
};
pub use storage::{storage_add, storage_get, storage_list, StorageInfo, StorageKind};
pub use tool::{ToolError, ToolFailure};
