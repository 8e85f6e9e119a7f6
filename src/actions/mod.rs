//! The charm's actions (`actions.yaml`).
//!
//! Actions report failure through `action-fail` and still exit 0, so the
//! operator sees the message in `juju show-task` rather than a crash.

pub mod cluster_status;
pub mod rotate_credentials;
pub mod switchover;
pub mod tuning_report;

use anyhow::{Context, Result};

use crate::charm::Hook;
use crate::juju;

/// Runs action `name`.
pub fn run(hook: &Hook, name: &str) -> Result<()> {
    match name {
        "tuning-report" => tuning_report::run(hook),
        "rotate-credentials" => rotate_credentials::run(hook),
        "get-primary" => cluster_status::run(hook, false),
        "cluster-status" => cluster_status::run(hook, true),
        "switchover" => switchover::run(hook),
        other => fail(&format!(
            "unknown action {other:?}: this charm only defines the actions in actions.yaml"
        )),
    }
}

pub(crate) fn fail(message: &str) -> Result<()> {
    juju::action_fail(message)
        .with_context(|| format!("could not mark the action failed (\"{message}\")"))
}
