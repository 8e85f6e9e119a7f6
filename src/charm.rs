//! The router: what the charm does for each Juju event.
//!
//! [`handle`] maps an [`Event`] to a handler. Most events converge the whole
//! unit ([`converge::converge_and_report`]); a few have work of their own
//! (storage detaching, stop, remove, the cheap update-status check, actions).
//! Events the charm does not handle are logged at debug level and succeed.

use anyhow::Result;

use crate::actions;
use crate::clients;
use crate::converge;
use crate::event::Event;
use crate::juju::HookContext;
use crate::knobs::TestKnobs;
use crate::lifecycle;
use crate::relations::ClientEndpoint;
use crate::tls;
use crate::unit::Unit;

/// What a handler knows before it looks at the world: what Juju says about
/// this hook, and where this unit's things are.
#[derive(Debug, Clone)]
pub struct Hook {
    pub context: HookContext,
    pub unit: Unit,
}

impl Hook {
    pub fn new(context: HookContext, knobs: &TestKnobs) -> Self {
        let unit = Unit::new(&context, knobs);
        Hook { context, unit }
    }
}

/// Storage names declared in `metadata.yaml`.
const STORAGE_NAMES: [&str; 2] = ["pgdata", "pgwal"];
/// The peer endpoint declared in `metadata.yaml` (the client endpoints are
/// [`crate::relations::CLIENT_ENDPOINTS`]).
const PEER_ENDPOINT: &str = "replication";

/// Runs the handler for the hook's event. An `Err` fails the hook (exit 1).
pub fn handle(hook: &Hook) -> Result<()> {
    let event = &hook.context.event;
    if matches!(event, Event::Install | Event::Start) {
        crate::state::stopped::clear(&hook.unit.state)?;
    }
    if !runs_after_stop(event) && crate::state::stopped::is_marked(&hook.unit.state) {
        log::info!("{event}: this unit stopped for its removal; nothing is started again");
        return Ok(());
    }
    match event {
        Event::Action { name } => actions::run(hook, name),
        Event::UpdateStatus => lifecycle::update_status(hook),
        Event::Stop => lifecycle::stop_server(hook, "stopped"),
        Event::Remove => lifecycle::remove_unit(hook),
        Event::SecretRemove => clients::rotation::secret_removed(hook),
        Event::StorageDetaching { storage } if is_our_storage(storage) => {
            lifecycle::storage_detaching(hook, storage)
        }
        Event::Relation { endpoint, .. } if !is_our_endpoint(endpoint) => unhandled(event),
        Event::StorageAttached { storage } if !is_our_storage(storage) => unhandled(event),
        // Dispatched by the HA watcher (`juju-exec`) when Patroni's primary
        // or standbys change: the relations follow.
        Event::Unknown(name) if name == crate::ha::TOPOLOGY_HOOK => {
            converge::converge_and_report(hook)
        }
        Event::Unknown(_) => unhandled(event),
        // Everything else converges the whole unit: the legacy charm's rule,
        // which makes the order hooks arrive in irrelevant.
        _ => converge::converge_and_report(hook),
    }
}

/// What still runs on a unit after its `stop` hook (Juju is removing it):
/// the rest of the removal and the operator's actions. Everything else
/// (its `-relation-broken` hooks, a late `update-status`) would converge,
/// and so start again what `stop` stopped.
fn runs_after_stop(event: &Event) -> bool {
    matches!(
        event,
        Event::Stop
            | Event::Remove
            | Event::StorageDetaching { .. }
            | Event::Action { .. }
            | Event::Install
            | Event::Start
    )
}

fn unhandled(event: &Event) -> Result<()> {
    log::debug!("no handler for {event}; nothing to do");
    Ok(())
}

fn is_our_storage(name: &str) -> bool {
    STORAGE_NAMES.contains(&name)
}

fn is_our_endpoint(name: &str) -> bool {
    name == PEER_ENDPOINT || name == tls::ENDPOINT || ClientEndpoint::named(name).is_some()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::relations::CLIENT_ENDPOINTS;

    #[test]
    fn after_stop_only_the_removal_and_actions_run() {
        for (path, runs) in [
            ("hooks/stop", true),
            ("hooks/remove", true),
            ("hooks/pgdata-storage-detaching", true),
            ("actions/tuning-report", true),
            ("hooks/install", true),
            ("hooks/start", true),
            ("hooks/db-relation-broken", false),
            ("hooks/database-relation-broken", false),
            ("hooks/replication-relation-departed", false),
            ("hooks/update-status", false),
            ("hooks/config-changed", false),
            ("hooks/leader-elected", false),
            ("hooks/ha-topology-changed", false),
        ] {
            let event = Event::from_dispatch_path(path);
            assert_eq!(runs_after_stop(&event), runs, "{path}");
        }
    }

    #[test]
    fn the_endpoints_and_storage_are_those_of_metadata_yaml() {
        let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/metadata.yaml"));
        let metadata: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let interfaces = |section: &str| -> BTreeMap<String, String> {
            metadata[section]
                .as_mapping()
                .unwrap()
                .iter()
                .map(|(name, spec)| {
                    let name = name.as_str().unwrap().to_string();
                    (name, spec["interface"].as_str().unwrap().to_string())
                })
                .collect()
        };
        let clients: BTreeMap<String, String> = CLIENT_ENDPOINTS
            .iter()
            .map(|e| (e.name.to_string(), e.interface.name().to_string()))
            .collect();
        assert_eq!(interfaces("provides"), clients);
        assert_eq!(
            interfaces("peers").into_keys().collect::<Vec<_>>(),
            [PEER_ENDPOINT]
        );
        assert_eq!(
            interfaces("requires"),
            BTreeMap::from([(tls::ENDPOINT.to_string(), tls::INTERFACE.to_string())])
        );
        let storage: Vec<&str> = metadata["storage"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(storage, STORAGE_NAMES);
        for name in ["db", "db-admin", "replication", "certificates", "pgdata"] {
            assert!(is_our_endpoint(name) || is_our_storage(name), "{name}");
        }
        assert!(!is_our_endpoint("website") && !is_our_storage("logs"));
    }
}
