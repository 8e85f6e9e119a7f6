//! `relations.json`: what the charm concluded about each client relation,
//! by relation id, so that a relation hook re-reads only its own relation
//! (and any not served yet) while `pg_hba.conf` is still rendered from all
//! of them.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::StateDir;
use crate::outcome::Problem;
use crate::relations::tenancy::revocation::Standing;

const RELATIONS: &str = "relations.json";

/// Where a relation stands, as the last hook left it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    #[default]
    Served,
    /// Hostile, or asking for what it may not have.
    Refused,
    /// Waiting for Juju or the leader.
    Waiting,
    /// Serving it failed; the next hook tries again.
    Failed,
}

/// A secret revision the leader read, and a digest of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownRevision {
    pub revision: u32,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

/// What the charm concluded about one relation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Served {
    pub remote_app: String,
    pub endpoint: String,
    /// The relation's user, known as soon as its remote application is.
    #[serde(default)]
    pub user: String,
    /// The access `pg_hba.conf` grants it; an empty database means none.
    pub database: String,
    /// More databases it may reach the same way (`database` on protocol v1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_databases: Vec<String>,
    pub cidrs: Vec<String>,
    /// The labels of the application secrets the leader may have made for
    /// it (`database`), kept until Juju says they name nothing
    /// ([`crate::relations::postgresql_client::secrets`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub secret_labels: BTreeSet<String>,
    /// Of each of those secrets, the latest revision Juju showed the leader
    /// and a SHA-256 of that revision's content (revisions never change), so
    /// a later hook that finds the same revision and plans the same content
    /// need not read it again ([`crate::clients::known_revisions`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_revisions: BTreeMap<String, KnownRevision>,
    /// Why the relation is refused, waiting or failing; `None` when served.
    pub problem: Option<String>,
    #[serde(default)]
    pub condition: Condition,
}

impl Served {
    /// Whether `pg_hba.conf` lets it in: served, or failing after it was.
    pub fn has_access(&self) -> bool {
        !self.database.is_empty() && matches!(self.condition, Condition::Served | Condition::Failed)
    }

    /// What the unit's status shows for it.
    pub fn problem(&self) -> Option<Problem> {
        let message = self.problem.clone()?;
        Some(match self.condition {
            Condition::Waiting => Problem::Waiting(message),
            Condition::Served | Condition::Refused | Condition::Failed => Problem::Blocked(message),
        })
    }

    pub fn standing(&self) -> Standing {
        if self.has_access() {
            return Standing::Serving;
        }
        match self.condition {
            Condition::Waiting | Condition::Failed => Standing::Pending,
            Condition::Refused | Condition::Served => Standing::Refused,
        }
    }
}

pub type ServedMap = BTreeMap<String, Served>;

/// The relation results the last hook left; none when there are none yet
/// (or the file is unreadable: every relation is then served again).
pub fn load(state: &StateDir) -> ServedMap {
    state.read_json(RELATIONS).unwrap_or_default()
}

pub fn save(state: &StateDir, served: &ServedMap) -> Result<()> {
    state
        .write_json(RELATIONS, served)
        .map(drop)
        .context("saving the relation state")
}

/// A result of user `juju_app` for tests: access to `database` from
/// `cidrs`, with a problem unless served.
#[cfg(test)]
pub fn example(database: &str, cidrs: &[&str], condition: Condition) -> Served {
    Served {
        user: "juju_app".into(),
        database: database.into(),
        cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
        problem: (condition != Condition::Served).then(|| "problem".to_string()),
        condition,
        ..Served::default()
    }
}

#[cfg(test)]
mod tests {
    use super::example as served;
    use super::*;

    #[test]
    fn standing_follows_access_and_condition() {
        use Condition::{Failed, Refused, Waiting};
        let cases = [
            (
                served("app", &["10.0.0.1/32"], Condition::Served),
                Standing::Serving,
            ),
            (served("app", &["10.0.0.1/32"], Failed), Standing::Serving),
            (served("", &[], Failed), Standing::Pending),
            (served("", &[], Waiting), Standing::Pending),
            (served("", &[], Refused), Standing::Refused),
            // A refused entry never has access, whatever it still names.
            (served("app", &["10.0.0.1/32"], Refused), Standing::Refused),
        ];
        for (s, want) in cases {
            assert_eq!(s.standing(), want, "{s:?}");
        }
        // A refusal cached by an older charm: a problem, no database.
        let legacy: Served =
            serde_json::from_str(r#"{"remote_app":"a","endpoint":"db","database":"","user":"","cidrs":[],"problem":"db:1: x","published":0}"#)
                .unwrap();
        assert!(!legacy.has_access());
        assert_eq!(legacy.standing(), Standing::Refused);
    }
}
