//! The Kubernetes-side consumer fixtures: `tests/consumer-charm`, a real ops
//! charm using ops-lib-pgsql, and `tests/consumer-database-v0` / `-v1`, real
//! ops charms using the two `postgresql_client` libraries, as k8s
//! applications do. All write `consumer-state.json` next to their charm
//! directory.

use std::path::PathBuf;

use juju_emulator::World;
use serde_json::Value;

/// The consumer charm directory, with its Python dependencies installed.
pub fn consumer_charm() -> PathBuf {
    scenarios::consumer_charm().expect("the consumer charm")
}

/// The `postgresql_client` consumer fixture `tests/consumer-database-<version>`
/// (`v0`: data_interfaces v0; `v1`: dpcharmlibs-interfaces), with its Python
/// dependencies installed by `scripts/consumer-venv` (which fills every
/// fixture).
pub fn database_consumer_charm(version: &str) -> PathBuf {
    scenarios::consumer_charm().expect("the consumer fixtures");
    scenarios::repo_root().join(format!("tests/consumer-database-{version}"))
}

/// The consumer's state file (written at the end of each of its hooks).
pub fn consumer_state(world: &World, unit: &str) -> Value {
    let path = world
        .unit(unit)
        .unwrap()
        .agent_dir
        .join("consumer-state.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}
