//! Taking access back, and never handing an old password to a new relation
//! (pure).
//!
//! **Revocation.** A relation's user keeps `LOGIN` while some relation using
//! it is served. When none is, because its relations were removed or
//! refused (their data turned hostile, an ownership or role check failed),
//! the user loses `LOGIN` and `SUPERUSER` and its sessions are terminated:
//! [`users_to_revoke`] says whom. Two relations of one application on one
//! endpoint share a user (see [`super::names`]), so one of them being
//! refused or removed must not cut the other off.
//!
//! **Passwords belong to relations.** Next to each password the charm keeps
//! the relation ids it was issued to. A relation that is not among them gets
//! that password only if one of them is still live (the same application,
//! related twice); otherwise a new password is made ([`choose_password`]).
//! Juju never reuses a relation id, so an application that is removed and
//! related again always gets a new password, even if a `-broken` hook was
//! missed.

use std::collections::BTreeSet;

/// Where a relation stands after this hook, for revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Served, or failing now but still served as before.
    Serving,
    /// Not served yet, and nothing to take back (waiting for the leader,
    /// failed before it was ever served).
    Pending,
    /// Refused: its user must not keep access through it.
    Refused,
    /// No longer in the model (`-broken`, or gone since the last hook).
    Removed,
}

/// The users to revoke: those of refused or removed relations that no
/// serving relation uses. Empty user names (a relation refused before its
/// remote application was known) are ignored.
pub fn users_to_revoke<'a>(
    relations: impl IntoIterator<Item = (&'a str, Standing)>,
) -> BTreeSet<String> {
    let mut in_use = BTreeSet::new();
    let mut candidates = BTreeSet::new();
    for (user, standing) in relations {
        if user.is_empty() {
            continue;
        }
        match standing {
            Standing::Serving => {
                in_use.insert(user);
            }
            Standing::Refused | Standing::Removed => {
                candidates.insert(user);
            }
            Standing::Pending => {}
        }
    }
    candidates
        .difference(&in_use)
        .map(|user| user.to_string())
        .collect()
}

/// What the store holds for a relation user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredBinding {
    /// No password yet.
    Missing,
    /// A password stored before the charm bound passwords to relations.
    Unbound,
    /// A password and the relation ids it was issued to.
    Bound(BTreeSet<String>),
}

/// What to do with the stored password for one relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChoice {
    /// Use it as it is.
    Keep,
    /// Use it, and (leader) store that it is now issued to these relations.
    Rebind(BTreeSet<String>),
    /// Make a new one (leader), issued to these relations.
    Renew(BTreeSet<String>),
    /// Only the leader may make it; wait.
    Wait,
}

/// The choice for relation `this`, whose user is also used by the live
/// relations `live_same_user` (this one may be among them); see the module
/// docs. Only the leader writes the store.
pub fn choose_password(
    stored: &StoredBinding,
    this: &str,
    live_same_user: &BTreeSet<String>,
    leader: bool,
) -> PasswordChoice {
    let with_this = |mut ids: BTreeSet<String>| {
        ids.insert(this.to_string());
        ids
    };
    match stored {
        StoredBinding::Missing if leader => PasswordChoice::Renew(with_this(BTreeSet::new())),
        StoredBinding::Missing => PasswordChoice::Wait,
        StoredBinding::Unbound if leader => PasswordChoice::Rebind(with_this(BTreeSet::new())),
        StoredBinding::Unbound => PasswordChoice::Keep,
        StoredBinding::Bound(ids) if ids.contains(this) => PasswordChoice::Keep,
        StoredBinding::Bound(ids) => {
            let still_live: BTreeSet<String> = ids.intersection(live_same_user).cloned().collect();
            match (still_live.is_empty(), leader) {
                (false, true) => PasswordChoice::Rebind(with_this(still_live)),
                (false, false) => PasswordChoice::Keep,
                (true, true) => PasswordChoice::Renew(with_this(BTreeSet::new())),
                (true, false) => PasswordChoice::Wait,
            }
        }
    }
}

/// The choice when the operator asked for a new password
/// (`rotate-credentials`): the leader renews what `choice` would keep or
/// rebind, issued to the same relations; waiting stays waiting.
pub fn renewing(choice: PasswordChoice, stored: &StoredBinding, this: &str) -> PasswordChoice {
    match choice {
        PasswordChoice::Keep => {
            let mut ids = match stored {
                StoredBinding::Bound(ids) => ids.clone(),
                StoredBinding::Missing | StoredBinding::Unbound => BTreeSet::new(),
            };
            ids.insert(this.to_string());
            PasswordChoice::Renew(ids)
        }
        PasswordChoice::Rebind(ids) => PasswordChoice::Renew(ids),
        other => other,
    }
}

/// The relation ids as stored next to a password: comma-separated, sorted.
pub fn format_binding(ids: &BTreeSet<String>) -> String {
    ids.iter().map(String::as_str).collect::<Vec<_>>().join(",")
}

/// Reads [`format_binding`]'s text back; `None` (no such field) is a
/// password stored before bindings existed.
pub fn parse_binding(text: Option<&str>) -> StoredBinding {
    match text {
        None => StoredBinding::Unbound,
        Some(text) => StoredBinding::Bound(
            text.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewing_keeps_the_binding_and_never_forces_a_non_leader() {
        let ids =
            |list: &[&str]| -> BTreeSet<String> { list.iter().map(|s| s.to_string()).collect() };
        let bound = StoredBinding::Bound(ids(&["db:1", "db:2"]));
        let cases = [
            (
                PasswordChoice::Keep,
                &bound,
                PasswordChoice::Renew(ids(&["db:1", "db:2"])),
            ),
            (
                PasswordChoice::Keep,
                &StoredBinding::Unbound,
                PasswordChoice::Renew(ids(&["db:1"])),
            ),
            (
                PasswordChoice::Rebind(ids(&["db:1", "db:3"])),
                &bound,
                PasswordChoice::Renew(ids(&["db:1", "db:3"])),
            ),
            (
                PasswordChoice::Renew(ids(&["db:1"])),
                &StoredBinding::Missing,
                PasswordChoice::Renew(ids(&["db:1"])),
            ),
            (PasswordChoice::Wait, &bound, PasswordChoice::Wait),
        ];
        for (choice, stored, want) in cases {
            assert_eq!(renewing(choice.clone(), stored, "db:1"), want, "{choice:?}");
        }
    }

    fn ids(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn revokes_users_no_serving_relation_still_needs() {
        use Standing::*;
        type Case<'a> = (&'a [(&'a str, Standing)], &'a [&'a str]);
        let cases: &[Case] = &[
            (&[], &[]),
            (&[("juju_a", Serving)], &[]),
            (&[("juju_a", Removed)], &["juju_a"]),
            (&[("juju_a", Refused)], &["juju_a"]),
            (&[("juju_a", Pending)], &[]),
            // Shared user: the other relation still serves it.
            (&[("juju_a", Removed), ("juju_a", Serving)], &[]),
            (&[("juju_a", Refused), ("juju_a", Serving)], &[]),
            (&[("juju_a", Refused), ("juju_a", Pending)], &["juju_a"]),
            (
                &[
                    ("juju_a", Removed),
                    ("juju_b", Serving),
                    ("jujuadmin_c", Refused),
                ],
                &["juju_a", "jujuadmin_c"],
            ),
            (&[("", Refused)], &[]),
        ];
        for (relations, want) in cases {
            let got = users_to_revoke(relations.iter().copied());
            assert_eq!(got, ids(want), "{relations:?}");
        }
    }

    #[test]
    fn a_new_relation_never_gets_an_old_password() {
        use PasswordChoice::*;
        let bound = |list: &[&str]| StoredBinding::Bound(ids(list));
        let cases: Vec<(StoredBinding, &str, &[&str], bool, PasswordChoice)> = vec![
            (
                StoredBinding::Missing,
                "db:3",
                &[],
                true,
                Renew(ids(&["db:3"])),
            ),
            (StoredBinding::Missing, "db:3", &[], false, Wait),
            // Issued to this relation: kept, on every unit.
            (bound(&["db:3"]), "db:3", &["db:3"], true, Keep),
            (bound(&["db:3"]), "db:3", &[], false, Keep),
            // Re-related: the old relation is gone, so a new password.
            (
                bound(&["db:3"]),
                "db:9",
                &["db:9"],
                true,
                Renew(ids(&["db:9"])),
            ),
            (bound(&["db:3"]), "db:9", &[], false, Wait),
            // The same application related twice: the live one shares it.
            (
                bound(&["db:3"]),
                "db:9",
                &["db:3", "db:9"],
                true,
                Rebind(ids(&["db:3", "db:9"])),
            ),
            (bound(&["db:3"]), "db:9", &["db:3"], false, Keep),
            // Relations that left are dropped from the binding.
            (
                bound(&["db:1", "db:3"]),
                "db:9",
                &["db:3"],
                true,
                Rebind(ids(&["db:3", "db:9"])),
            ),
            // Stored before bindings: adopted by the relation using it.
            (
                StoredBinding::Unbound,
                "db:3",
                &[],
                true,
                Rebind(ids(&["db:3"])),
            ),
            (StoredBinding::Unbound, "db:3", &[], false, Keep),
        ];
        for (stored, this, live, leader, want) in cases {
            assert_eq!(
                choose_password(&stored, this, &ids(live), leader),
                want,
                "{stored:?} {this} live {live:?} leader {leader}"
            );
        }
    }

    #[test]
    fn bindings_round_trip() {
        let set = ids(&["db:9", "db-admin:2", "db:10"]);
        let text = format_binding(&set);
        assert_eq!(text, "db-admin:2,db:10,db:9");
        assert_eq!(parse_binding(Some(&text)), StoredBinding::Bound(set));
        assert_eq!(parse_binding(None), StoredBinding::Unbound);
        assert_eq!(
            parse_binding(Some("")),
            StoredBinding::Bound(BTreeSet::new())
        );
    }
}
