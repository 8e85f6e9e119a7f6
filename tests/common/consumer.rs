//! The Kubernetes-side consumer fixture (`tests/consumer-charm`): a real
//! ops charm using ops-lib-pgsql, as k8s applications do.

use std::path::PathBuf;

use juju_emulator::World;
use serde_json::Value;

/// The consumer charm directory, with its Python dependencies installed.
pub fn consumer_charm() -> PathBuf {
    scenarios::consumer_charm().expect("the consumer charm")
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
