//! The router: what the charm does for each Juju event.
//!
//! [`handle`] maps an [`Event`] to a handler. Most events converge the whole
//! unit ([`lifecycle::converge_and_report`]); a few have work of their own
//! (storage detaching, stop, remove, the cheap update-status check, actions).
//! Events the charm does not handle are logged at debug level and succeed.

use anyhow::{Context, Result};

use crate::event::Event;
use crate::juju;
use crate::lifecycle;

/// Storage names declared in `metadata.yaml`.
const STORAGE_NAMES: [&str; 2] = ["pgdata", "pgwal"];
/// Relation endpoints declared in `metadata.yaml`.
const ENDPOINTS: [&str; 3] = ["db", "db-admin", "replication"];

/// Runs the handler for `event`. An `Err` fails the hook (exit 1).
pub fn handle(event: &Event) -> Result<()> {
    match event {
        Event::Action { name } => run_action(name),
        Event::UpdateStatus => lifecycle::update_status(),
        Event::Stop => lifecycle::stop_server("stopped"),
        Event::Remove => lifecycle::remove_unit(),
        Event::StorageDetaching { storage } if is_our_storage(storage) => {
            lifecycle::storage_detaching(storage)
        }
        Event::Relation { endpoint, .. } if !is_our_endpoint(endpoint) => unhandled(event),
        Event::StorageAttached { storage } if !is_our_storage(storage) => unhandled(event),
        Event::Unknown(_) => unhandled(event),
        // Everything else converges the whole unit: the legacy charm's rule,
        // which makes the order hooks arrive in irrelevant.
        _ => lifecycle::converge_and_report(),
    }
}

fn unhandled(event: &Event) -> Result<()> {
    log::debug!("no handler for {event}; nothing to do");
    Ok(())
}

fn is_our_storage(name: &str) -> bool {
    STORAGE_NAMES.contains(&name)
}

fn is_our_endpoint(name: &str) -> bool {
    ENDPOINTS.contains(&name)
}

/// Actions report failure through `action-fail` and still exit 0, so the
/// operator sees the message in `juju show-task` rather than a crash.
fn run_action(name: &str) -> Result<()> {
    match name {
        "tuning-report" => crate::tuning::report::run(),
        other => fail_action(&format!(
            "unknown action {other:?}: this charm only defines the actions in actions.yaml"
        )),
    }
}

fn fail_action(message: &str) -> Result<()> {
    juju::action_fail(message)
        .with_context(|| format!("could not mark the action failed (\"{message}\")"))
}
