//! Leadership: `is-leader`, `leader-get`, `leader-set`.
//!
//! `leader-set` writes immediately (not at hook commit) and only the leader
//! may call it. Its values are passed as `key=value` arguments and treated as
//! secrets: they never appear in error messages. Note that Juju 4 removed
//! `leader-get`/`leader-set` ([`super::ToolError::is_tool_missing`] tells).

use std::collections::BTreeMap;

use super::tool::{Invocation, ToolError};

/// Whether this unit is the leader (and extends its lease by 30 s):
/// `is-leader --format=json`.
pub fn is_leader() -> Result<bool, ToolError> {
    Invocation::new("is-leader").arg("--format=json").run_json()
}

/// All leader settings: `leader-get --format=json`.
pub fn leader_get() -> Result<BTreeMap<String, String>, ToolError> {
    let settings: Option<BTreeMap<String, String>> = Invocation::new("leader-get")
        .arg("--format=json")
        .run_json()?;
    Ok(settings.unwrap_or_default())
}

/// Writes leader settings (an empty value deletes the key):
/// `leader-set key=value ...`. Does nothing when `settings` is empty.
pub fn leader_set(settings: &[(&str, &str)]) -> Result<(), ToolError> {
    if settings.is_empty() {
        return Ok(());
    }
    let invocation = settings
        .iter()
        .fold(Invocation::new("leader-set"), |invocation, (key, value)| {
            invocation.secret_pair(key, value)
        });
    invocation.run().map(drop)
}

#[cfg(test)]
mod tests {
    use super::super::tool::parse_json;
    use super::*;

    #[test]
    fn parses_is_leader_output() {
        assert!(parse_json::<bool>("true\n").unwrap());
        assert!(!parse_json::<bool>("false\n").unwrap());
    }

    #[test]
    fn parses_leader_get_output() {
        let settings: Option<BTreeMap<String, String>> =
            parse_json(r#"{"master":"postgresql/0","replication-password":"x"}"#).unwrap();
        assert_eq!(settings.unwrap()["master"], "postgresql/0");
        let empty: Option<BTreeMap<String, String>> = parse_json("{}").unwrap();
        assert!(empty.unwrap().is_empty());
    }
}
