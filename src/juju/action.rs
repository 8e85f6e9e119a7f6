//! Action tools: `action-get`, `action-set`, `action-fail`, `action-log`.
//!
//! They only work while an action runs. `action-fail` marks the action
//! failed while the process still exits 0; results set with `action-set` are
//! kept either way. Result values are treated as secrets in error messages
//! (an action may well return a password).

use serde_json::{Map, Value};

use super::tool::{Invocation, ToolError};

/// The action's parameters, defaults applied: `action-get --format=json`.
pub fn action_get() -> Result<Map<String, Value>, ToolError> {
    let params: Option<Map<String, Value>> = Invocation::new("action-get")
        .arg("--format=json")
        .run_json()?;
    Ok(params.unwrap_or_default())
}

/// Records results (dotted keys nest): `action-set key=value ...`.
/// Does nothing when `results` is empty.
pub fn action_set(results: &[(&str, &str)]) -> Result<(), ToolError> {
    if results.is_empty() {
        return Ok(());
    }
    let invocation = results
        .iter()
        .fold(Invocation::new("action-set"), |invocation, (key, value)| {
            invocation.secret_pair(key, value)
        });
    invocation.run().map(drop)
}

/// Marks the action failed with `message`: `action-fail -- <message>`.
pub fn action_fail(message: &str) -> Result<(), ToolError> {
    Invocation::new("action-fail")
        .arg("--")
        .arg(message)
        .run()
        .map(drop)
}

/// Sends a progress message to the operator: `action-log -- <message>`.
pub fn action_log(message: &str) -> Result<(), ToolError> {
    Invocation::new("action-log")
        .arg("--")
        .arg(message)
        .run()
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::super::tool::parse_json;
    use super::*;

    #[test]
    fn parses_action_get_output() {
        let params: Option<Map<String, Value>> =
            parse_json(r#"{"format":"text","limit":5}"#).unwrap();
        let params = params.unwrap();
        assert_eq!(params["format"], "text");
        assert_eq!(params["limit"], 5);
        let empty: Option<Map<String, Value>> = parse_json("{}\n").unwrap();
        assert!(empty.unwrap().is_empty());
    }
}
