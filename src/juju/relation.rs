//! Relations: `relation-ids`, `relation-list`, `relation-get`,
//! `relation-set`.
//!
//! Relation data is a map of string to string per unit ("unit bag") and per
//! application ("app bag"). Writes are buffered by Juju and published only if
//! the hook exits 0; an empty value deletes a key. `relation-set` sends its
//! data as JSON on stdin (`--file -`), so values such as passwords never
//! appear on a command line.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::tool::{Invocation, ToolError};

pub use crate::relations::{RelationData, RelationId};

/// Ids of the live relations on `endpoint`: `relation-ids --format=json <ep>`.
///
/// Asked once per endpoint and hook context: Juju fixes a hook's relations
/// when the hook starts, so the answer cannot change while it runs, and
/// several parts of a converge (clients, TLS, HA) ask for the same
/// endpoints. The memo is keyed by `JUJU_CONTEXT_ID` as well, so a process
/// that outlived its context would ask again.
pub fn relation_ids(endpoint: &str) -> Result<Vec<RelationId>, ToolError> {
    static ASKED: Mutex<BTreeMap<(String, String), Vec<RelationId>>> = Mutex::new(BTreeMap::new());
    let key = (
        std::env::var("JUJU_CONTEXT_ID").unwrap_or_default(),
        endpoint.to_string(),
    );
    if let Some(ids) = ASKED.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(ids);
    }
    let invocation = Invocation::new("relation-ids")
        .arg("--format=json")
        .arg(endpoint);
    let ids: Option<Vec<String>> = invocation.run_json()?;
    // Juju prints well-formed ids; skip (rather than fail on) anything odd.
    let ids = parse_relation_ids(ids.unwrap_or_default());
    if let Ok(mut asked) = ASKED.lock() {
        asked.insert(key, ids.clone());
    }
    Ok(ids)
}

fn parse_relation_ids(ids: Vec<String>) -> Vec<RelationId> {
    ids.iter().filter_map(|id| id.parse().ok()).collect()
}

/// Remote units now in the relation, sorted:
/// `relation-list --format=json -r <id>`.
pub fn relation_list(relation: &RelationId) -> Result<Vec<String>, ToolError> {
    let units: Option<Vec<String>> = Invocation::new("relation-list")
        .arg("--format=json")
        .arg("-r")
        .arg(relation.to_string())
        .run_json()?;
    Ok(units.unwrap_or_default())
}

/// The remote application's name: `relation-list --format=json -r <id> --app`.
/// On the offering side of a cross-model relation this is `remote-<hex>`.
pub fn relation_remote_app(relation: &RelationId) -> Result<Option<String>, ToolError> {
    let app: Option<String> = Invocation::new("relation-list")
        .arg("--format=json")
        .arg("-r")
        .arg(relation.to_string())
        .arg("--app")
        .run_json()?;
    Ok(app.filter(|name| !name.is_empty()))
}

/// A unit's bag: `relation-get --format=json -r <id> - <unit>`.
pub fn relation_get(relation: &RelationId, unit: &str) -> Result<RelationData, ToolError> {
    let data: Option<RelationData> = Invocation::new("relation-get")
        .arg("--format=json")
        .arg("-r")
        .arg(relation.to_string())
        .arg("-")
        .arg(unit)
        .run_json()?;
    Ok(data.unwrap_or_default())
}

/// An application's bag: `relation-get --format=json -r <id> --app - <app>`.
/// Reading our own app bag in a non-peer relation needs leadership.
pub fn relation_get_app(relation: &RelationId, app: &str) -> Result<RelationData, ToolError> {
    let data: Option<RelationData> = Invocation::new("relation-get")
        .arg("--format=json")
        .arg("-r")
        .arg(relation.to_string())
        .arg("--app")
        .arg("-")
        .arg(app)
        .run_json()?;
    Ok(data.unwrap_or_default())
}

/// Merges `data` into this unit's bag (empty value = delete the key):
/// `relation-set -r <id> --file -` with JSON on stdin.
pub fn relation_set(relation: &RelationId, data: &RelationData) -> Result<(), ToolError> {
    relation_set_invocation(relation, data, false)
        .run()
        .map(drop)
}

/// Merges `data` into our application's bag (leader only):
/// `relation-set -r <id> --app --file -` with JSON on stdin.
pub fn relation_set_app(relation: &RelationId, data: &RelationData) -> Result<(), ToolError> {
    relation_set_invocation(relation, data, true)
        .run()
        .map(drop)
}

fn relation_set_invocation(relation: &RelationId, data: &RelationData, app: bool) -> Invocation {
    let mut invocation = Invocation::new("relation-set")
        .arg("-r")
        .arg(relation.to_string());
    if app {
        invocation = invocation.arg("--app");
    }
    let json = serde_json::to_vec(data).expect("a map of strings always serialises");
    let values = data.values().cloned().collect();
    invocation.arg("--file").arg("-").stdin_secret(json, values)
}

#[cfg(test)]
mod tests {
    use super::super::tool::parse_json;
    use super::*;

    #[test]
    fn relation_id_parses_and_prints() {
        let id: RelationId = "db-admin:12".parse().unwrap();
        assert_eq!(id.endpoint(), "db-admin");
        assert_eq!(id.number(), 12);
        assert_eq!(id.to_string(), "db-admin:12");
        assert!("db".parse::<RelationId>().is_err());
        assert!("db:x".parse::<RelationId>().is_err());
    }

    #[test]
    fn parses_relation_ids_output() {
        let ids: Option<Vec<String>> = parse_json(r#"["db:7","db:9"]"#).unwrap();
        let ids = parse_relation_ids(ids.unwrap());
        assert_eq!(
            ids,
            vec![RelationId::new("db", 7), RelationId::new("db", 9)]
        );
        let none: Option<Vec<String>> = parse_json("[]\n").unwrap();
        assert!(parse_relation_ids(none.unwrap()).is_empty());
    }

    #[test]
    fn parses_relation_list_output() {
        let units: Option<Vec<String>> = parse_json(r#"["myapp/0","myapp/1"]"#).unwrap();
        assert_eq!(units.unwrap(), ["myapp/0", "myapp/1"]);
        let app: Option<String> = parse_json("\"myapp\"\n").unwrap();
        assert_eq!(app.as_deref(), Some("myapp"));
    }

    #[test]
    fn parses_relation_get_output() {
        let json = r#"{"egress-subnets":"10.5.0.17/32","ingress-address":"10.5.0.17","private-address":"10.5.0.17"}"#;
        let data: Option<RelationData> = parse_json(json).unwrap();
        let data = data.unwrap();
        assert_eq!(data["ingress-address"], "10.5.0.17");
        assert_eq!(data.len(), 3);
        let empty: Option<RelationData> = parse_json("null\n").unwrap();
        assert!(empty.is_none());
    }

    #[test]
    fn relation_set_sends_json_on_stdin_not_argv() {
        let data = RelationData::from([("password".to_string(), "s3cretvalue".to_string())]);
        let invocation = relation_set_invocation(&RelationId::new("db", 3), &data, true);
        assert_eq!(invocation.args(), ["-r", "db:3", "--app", "--file", "-"]);
        assert!(!format!("{invocation:?}").contains("s3cretvalue"));
    }
}
