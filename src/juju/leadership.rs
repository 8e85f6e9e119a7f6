//! Leadership: `is-leader`, `leader-get`, `leader-set`.
//!
//! `leader-set` writes immediately (not at hook commit) and only the leader
//! may call it. Its values are passed as `key=value` arguments and treated as
//! secrets: they never appear in error messages. Note that Juju 4 removed
//! `leader-get`/`leader-set` ([`super::ToolError::is_tool_missing`] tells).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::tool::{Invocation, ToolError};

/// Whether this unit is the leader (and extends its lease by 30 s):
/// `is-leader --format=json`.
///
/// The answer is kept for [`LEADERSHIP_KEPT`] within the hook's context:
/// a `true` is guaranteed for 30 s from the call, and a `false` may turn
/// `true` only with a `leader-elected` hook still to come, which converges
/// as the leader. Several steps of one converge (the internal CA, the
/// replicated cluster, the clients) ask, so the hook asks once. Past that
/// time (a long HA hook) Juju is asked again.
pub fn is_leader() -> Result<bool, ToolError> {
    static ASKED: Mutex<Option<(String, Instant, bool)>> = Mutex::new(None);
    let context = std::env::var("JUJU_CONTEXT_ID").unwrap_or_default();
    if let Ok(asked) = ASKED.lock() {
        if let Some((asked_in, at, answer)) = asked.as_ref() {
            if *asked_in == context && at.elapsed() < LEADERSHIP_KEPT {
                return Ok(*answer);
            }
        }
    }
    let at = Instant::now();
    let answer: bool = Invocation::new("is-leader")
        .arg("--format=json")
        .run_json()?;
    if let Ok(mut asked) = ASKED.lock() {
        *asked = Some((context, at, answer));
    }
    Ok(answer)
}

/// How long an `is-leader` answer is relied on: well inside the 30 s lease
/// it guarantees.
pub const LEADERSHIP_KEPT: Duration = Duration::from_secs(20);

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
