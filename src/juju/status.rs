//! Workload status and version: `status-set`, `status-get`,
//! `application-version-set`. These take effect immediately, even if the
//! hook later fails, so they are the operator's live view of the charm.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::tool::{Invocation, ToolError};
use crate::state::StateDir;

/// The statuses a charm may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadStatus {
    Maintenance,
    Blocked,
    Waiting,
    Active,
}

impl WorkloadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadStatus::Maintenance => "maintenance",
            WorkloadStatus::Blocked => "blocked",
            WorkloadStatus::Waiting => "waiting",
            WorkloadStatus::Active => "active",
        }
    }
}

/// The unit's current status as `status-get` reports it. `status` is a
/// string because Juju may also report `unknown` or `error`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusInfo {
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(rename = "status-data", default)]
    pub data: Map<String, Value>,
}

/// Sets this unit's status: `status-set <status> -- <message>`.
pub fn status_set(status: WorkloadStatus, message: &str) -> Result<(), ToolError> {
    Invocation::new("status-set")
        .arg(status.as_str())
        .arg("--")
        .arg(message)
        .run()
        .map(drop)
}

/// Sets this unit's status unless it is already exactly that.
///
/// Only the charm sets its workload status, so the last value it set is
/// remembered (see [`super::memo`]) and an unchanged status costs no hook
/// tool call: most `update-status` runs then spawn nothing at all.
pub fn status_set_if_changed(
    memo: &StateDir,
    status: WorkloadStatus,
    message: &str,
) -> Result<(), ToolError> {
    let wanted = format!("{}\n{message}", status.as_str());
    super::memo::unless_unchanged(memo, "status", &wanted, || status_set(status, message))
}

/// Sets the application's status (leader only):
/// `status-set --application <status> -- <message>`.
pub fn application_status_set(status: WorkloadStatus, message: &str) -> Result<(), ToolError> {
    Invocation::new("status-set")
        .arg("--application")
        .arg(status.as_str())
        .arg("--")
        .arg(message)
        .run()
        .map(drop)
}

/// Reads this unit's status: `status-get --include-data --format=json`.
pub fn status_get() -> Result<StatusInfo, ToolError> {
    Invocation::new("status-get")
        .arg("--include-data")
        .arg("--format=json")
        .run_json()
}

/// Shows `version` in the Version column of `juju status`.
pub fn application_version_set(version: &str) -> Result<(), ToolError> {
    Invocation::new("application-version-set")
        .arg("--")
        .arg(version)
        .run()
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::super::tool::parse_json;
    use super::*;

    #[test]
    fn parses_status_get_output() {
        let json = r#"{"message":"ready","status":"active","status-data":{}}"#;
        let info: StatusInfo = parse_json(json).unwrap();
        assert_eq!(info.status, "active");
        assert_eq!(info.message, "ready");
        assert!(info.data.is_empty());
    }

    #[test]
    fn parses_status_get_without_optional_fields() {
        let info: StatusInfo = parse_json(r#"{"status":"unknown"}"#).unwrap();
        assert_eq!(info.status, "unknown");
        assert_eq!(info.message, "");
    }

    #[test]
    fn status_words_match_juju() {
        let words: Vec<_> = [
            WorkloadStatus::Maintenance,
            WorkloadStatus::Blocked,
            WorkloadStatus::Waiting,
            WorkloadStatus::Active,
        ]
        .map(WorkloadStatus::as_str)
        .into();
        assert_eq!(words, ["maintenance", "blocked", "waiting", "active"]);
    }
}
