//! The router: what the charm does for each Juju event.
//!
//! [`handle`] maps an [`Event`] to a small handler function. At this stage
//! every lifecycle hook only reports a status, so the operator can follow
//! the unit in `juju status`; later stages put the real work (installing and
//! configuring PostgreSQL, serving relations) behind the same functions.
//! Events the charm does not handle are logged at debug level and succeed.

use anyhow::{Context, Result};

use crate::event::{Event, RelationKind};
use crate::juju::{self, WorkloadStatus};

/// Storage names declared in `metadata.yaml`.
const STORAGE_NAMES: [&str; 2] = ["pgdata", "pgwal"];
/// Relation endpoints declared in `metadata.yaml`.
const ENDPOINTS: [&str; 3] = ["db", "db-admin", "replication"];

/// The status of a unit with nothing left to do.
const READY: &str = "ready";

/// Runs the handler for `event`. An `Err` fails the hook (exit 1).
pub fn handle(event: &Event) -> Result<()> {
    match event {
        Event::Install => set_status(WorkloadStatus::Maintenance, "installing"),
        Event::Start
        | Event::ConfigChanged
        | Event::UpdateStatus
        | Event::LeaderElected
        | Event::LeaderSettingsChanged => set_status(WorkloadStatus::Active, READY),
        Event::UpgradeCharm => set_status(WorkloadStatus::Maintenance, "upgrading charm"),
        Event::Stop => set_status(WorkloadStatus::Maintenance, "stopping"),
        Event::Remove => set_status(WorkloadStatus::Maintenance, "removing unit"),
        Event::StorageAttached { storage } if is_our_storage(storage) => set_status(
            WorkloadStatus::Maintenance,
            &format!("{storage} storage attached"),
        ),
        Event::StorageDetaching { storage } if is_our_storage(storage) => set_status(
            WorkloadStatus::Maintenance,
            &format!("{storage} storage detaching"),
        ),
        Event::Relation { endpoint, kind } if is_our_endpoint(endpoint) => {
            relation_event(endpoint, *kind)
        }
        Event::Action { name } => run_action(name),
        _ => {
            log::debug!("no handler for {event}; nothing to do");
            Ok(())
        }
    }
}

fn is_our_storage(name: &str) -> bool {
    STORAGE_NAMES.contains(&name)
}

fn is_our_endpoint(name: &str) -> bool {
    ENDPOINTS.contains(&name)
}

fn relation_event(endpoint: &str, kind: RelationKind) -> Result<()> {
    log::debug!("{endpoint} relation {}", kind.as_str());
    set_status(WorkloadStatus::Active, READY)
}

fn set_status(status: WorkloadStatus, message: &str) -> Result<()> {
    juju::status_set_if_changed(status, message).with_context(|| {
        format!(
            "could not set the unit status to {} \"{message}\" \
             (Juju retries the hook; `juju debug-log` shows the agent's side)",
            status.as_str()
        )
    })
}

/// Actions report failure through `action-fail` and still exit 0, so the
/// operator sees the message in `juju show-task` rather than a crash.
fn run_action(name: &str) -> Result<()> {
    match name {
        "tuning-report" => fail_action("tuning-report is not implemented yet"),
        other => fail_action(&format!(
            "unknown action {other:?}: this charm only defines the actions in actions.yaml"
        )),
    }
}

fn fail_action(message: &str) -> Result<()> {
    juju::action_fail(message)
        .with_context(|| format!("could not mark the action failed (\"{message}\")"))
}
