//! The `rotate-credentials` action: new passwords for the users of client
//! relations, on the leader (which alone stores passwords).
//!
//! `target` says whose: `all`, a relation (`database:4`, `db:2`), or an
//! application as this charm sees it (`remote-<hex>` across models, as a
//! blocked status or `juju show-unit` shows it). The users chosen from the
//! relations' cached results ([`select`], pure) are then renewed while the
//! unit converges as on any hook: each relation's new password goes where
//! its interface keeps it, a new revision of the `database` relation's
//! user secret (its consumers hear `secret-changed`), or new data in the
//! `db`/`db-admin` bags. A `db` role's verifier changes in the same pass,
//! so its old password stops working at once; a `database` relation moves
//! to the other of its own two logins, and the old one retires
//! once no consumer holds the old revision
//! ([`crate::relations::tenancy::logins`], [`crate::clients::rotation`]).
//!
//! Results (`action-set`): `users` (the renewed users, comma-separated;
//! user names, never passwords) and `relations`.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use crate::charm::Hook;
use crate::juju;
use crate::outcome::Outcome;
use crate::relations::ClientEndpoint;
use crate::state::relations::{self as results, ServedMap};

/// Which relations the operator named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    /// `<endpoint>:<number>`, a client endpoint.
    Relation(String),
    /// The remote application, as this charm sees it.
    Application(String),
}

impl Target {
    /// Reads the `target` parameter.
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        if text == "all" {
            return Ok(Target::All);
        }
        if let Some((endpoint, number)) = text.split_once(':') {
            let known = ClientEndpoint::named(endpoint).is_some();
            if known && !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()) {
                return Ok(Target::Relation(text.to_string()));
            }
            return Err(format!(
                "target {text:?} is not a client relation (database:<n>, db:<n>, db-admin:<n>)"
            ));
        }
        let app_name = !text.is_empty()
            && text.len() <= 64
            && text.starts_with(|c: char| c.is_ascii_lowercase())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if app_name {
            Ok(Target::Application(text.to_string()))
        } else {
            Err(format!(
                "target {text:?} is neither \"all\", a relation (database:<n>) nor an application name"
            ))
        }
    }
}

/// The users of the relations `target` names, and those relations; only
/// relations with a user (served, failing or refused after the charm knew
/// its consumer).
pub fn select(served: &ServedMap, target: &Target) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut users = BTreeSet::new();
    let mut relations = BTreeSet::new();
    for (id, s) in served {
        let chosen = match target {
            Target::All => true,
            Target::Relation(relation) => id == relation,
            Target::Application(app) => &s.remote_app == app,
        };
        if chosen && !s.user.is_empty() {
            users.insert(s.user.clone());
            relations.insert(id.clone());
        }
    }
    (users, relations)
}

pub fn run(hook: &Hook) -> Result<()> {
    if !juju::is_leader().context("asking whether this unit leads")? {
        return super::fail(
            "rotate-credentials runs on the leader unit, which keeps the passwords",
        );
    }
    let params = juju::action_get().context("reading the action's parameters")?;
    let text = params.get("target").and_then(|v| v.as_str()).unwrap_or("");
    let target = match Target::parse(text) {
        Ok(target) => target,
        Err(problem) => return super::fail(&problem),
    };
    let (users, relations) = select(&results::load(&hook.unit.state), &target);
    if users.is_empty() {
        return super::fail(&format!(
            "no client relation matches {text:?} (see the relations in juju status)"
        ));
    }
    let outcome = crate::converge::converge_renewing(hook, &users)?;
    let join = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
    juju::action_set(&[("users", &join(&users)), ("relations", &join(&relations))])
        .context("reporting the rotated users")?;
    match outcome {
        Outcome::Active(_) => Ok(()),
        Outcome::Blocked(message) | Outcome::Waiting(message) => super::fail(&format!(
            "new passwords issued, but the unit is not serving everything: {message}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::relations::{example, Condition};

    #[test]
    fn targets_are_all_a_relation_or_an_application() {
        assert_eq!(Target::parse("all"), Ok(Target::All));
        assert_eq!(
            Target::parse(" database:4 "),
            Ok(Target::Relation("database:4".into()))
        );
        assert_eq!(
            Target::parse("remote-0b1c"),
            Ok(Target::Application("remote-0b1c".into()))
        );
        for bad in [
            "",
            "replication:1",
            "database:",
            "database:x",
            "Shop",
            "a b",
            "x;y",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selection_follows_the_cached_results() {
        let mut served = ServedMap::new();
        let mut a = example("appdb", &["10.0.0.1/32"], Condition::Served);
        a.remote_app = "remote-a".into();
        a.user = "jujuclient_remote-a".into();
        let mut b = example("shop", &["10.0.0.2/32"], Condition::Served);
        b.remote_app = "remote-b".into();
        b.user = "juju_remote-b".into();
        let mut waiting = example("", &[], Condition::Waiting);
        waiting.user = String::new();
        served.insert("database:4".into(), a);
        served.insert("db:2".into(), b);
        served.insert("db:3".into(), waiting);
        let set = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            select(&served, &Target::All),
            (
                set(&["juju_remote-b", "jujuclient_remote-a"]),
                set(&["database:4", "db:2"])
            )
        );
        assert_eq!(
            select(&served, &Target::Relation("db:2".into())),
            (set(&["juju_remote-b"]), set(&["db:2"]))
        );
        assert_eq!(
            select(&served, &Target::Application("remote-a".into())),
            (set(&["jujuclient_remote-a"]), set(&["database:4"]))
        );
        assert_eq!(
            select(&served, &Target::Application("nobody".into())).0,
            set(&[])
        );
    }
}
