//! The relation's Juju secrets, converged (pure): which to create, give a
//! new revision, or retire, so that the application owns exactly the
//! secrets [`super::plan`] planned for the relation, each with the planned
//! content.
//!
//! The charm never trusts its memory for what Juju committed: the shell
//! looks every label up (`secret-info-get --label`, then `secret-get` for
//! the content) and this module compares. It does remember which labels
//! it may have used for a relation (in the relation's cached result), so
//! that secrets no longer planned, or left by a relation that is gone, are
//! found again; a label is forgotten only once Juju says it names nothing.
//! Secret changes are buffered until the hook succeeds, so a label stays
//! remembered from the hook that may create its secret until a later hook
//! finds it gone.
//!
//! Retiring a secret is `secret-revoke -r <relation>` while the relation is
//! still in the hook's context (its `-broken` hook, or a refusal), then
//! `secret-remove`: removal alone already ends every consumer's access, so
//! a retirement retried after the relation is gone just removes.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::PlannedSecret;
use crate::ids::{RelationData, SecretUri};
use crate::secret::Secret;

/// A secret the application owns under one of the relation's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSecret {
    pub uri: SecretUri,
    /// Its latest revision's number (a new content makes the next one).
    pub revision: u32,
    /// Its latest revision's content.
    pub content: Secret<RelationData>,
}

/// One change to the application's secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretStep {
    /// `secret-add --label <label>` with the content, then
    /// `secret-grant -r <relation>`.
    Create {
        label: String,
        content: Secret<RelationData>,
    },
    /// `secret-set <uri>`: a new revision (a new password, a TLS change),
    /// which consumers tracking the old one hear of in `secret-changed`.
    Update {
        label: String,
        uri: SecretUri,
        content: Secret<RelationData>,
    },
    /// `secret-revoke` (while the relation lives) and `secret-remove`.
    Retire { label: String, uri: SecretUri },
}

/// What to do, and which labels to remember for the relation afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretChanges {
    pub steps: Vec<SecretStep>,
    pub remembered: BTreeSet<String>,
}

/// The labels the shell must look up: the planned ones and the remembered.
pub fn labels_to_look_up<'a>(
    planned: impl IntoIterator<Item = &'a PlannedSecret>,
    remembered: &BTreeSet<String>,
) -> BTreeSet<String> {
    planned
        .into_iter()
        .map(|secret| secret.label.clone())
        .chain(remembered.iter().cloned())
        .collect()
}

/// Compares the planned secrets with what each looked-up label names
/// (`None`: nothing). `planned` empty retires everything found: the
/// relation is gone, refused, or its consumer cannot use secrets.
pub fn converge<'a>(
    planned: impl IntoIterator<Item = &'a PlannedSecret>,
    found: &BTreeMap<String, Option<OwnedSecret>>,
) -> SecretChanges {
    let planned: BTreeMap<&str, &PlannedSecret> = planned
        .into_iter()
        .map(|secret| (secret.label.as_str(), secret))
        .collect();
    let mut steps = Vec::new();
    let mut remembered = BTreeSet::new();
    for (label, secret) in &planned {
        remembered.insert(label.to_string());
        match found.get(*label).and_then(Option::as_ref) {
            None => steps.push(SecretStep::Create {
                label: label.to_string(),
                content: secret.content.clone(),
            }),
            Some(owned) if owned.content != secret.content => steps.push(SecretStep::Update {
                label: label.to_string(),
                uri: owned.uri.clone(),
                content: secret.content.clone(),
            }),
            Some(_) => {}
        }
    }
    for (label, owned) in found {
        if planned.contains_key(label.as_str()) {
            continue;
        }
        if let Some(owned) = owned {
            remembered.insert(label.clone());
            steps.push(SecretStep::Retire {
                label: label.clone(),
                uri: owned.uri.clone(),
            });
        }
    }
    SecretChanges { steps, remembered }
}

/// The URIs the published bag names, by label, once `changes` are applied:
/// `created` holds what `secret-add` printed for each [`SecretStep::Create`].
pub fn uris_after(
    found: &BTreeMap<String, Option<OwnedSecret>>,
    changes: &SecretChanges,
    created: &BTreeMap<String, SecretUri>,
) -> BTreeMap<String, String> {
    let retired: BTreeSet<&str> = changes
        .steps
        .iter()
        .filter_map(|step| match step {
            SecretStep::Retire { label, .. } => Some(label.as_str()),
            _ => None,
        })
        .collect();
    let existing = found.iter().filter_map(|(label, owned)| {
        let owned = owned.as_ref()?;
        (!retired.contains(label.as_str())).then(|| (label.clone(), owned.uri.to_string()))
    });
    existing
        .chain(created.iter().map(|(l, u)| (l.clone(), u.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::plan::SecretGroup;
    use super::*;

    fn uri(n: u8) -> SecretUri {
        SecretUri::parse(&format!("secret:cnp5t2tnh8pc778j61e{}", (b'a' + n) as char)).unwrap()
    }

    fn content(password: &str) -> Secret<RelationData> {
        Secret::new(RelationData::from([(
            "password".to_string(),
            password.to_string(),
        )]))
    }

    fn planned(label: &str, password: &str) -> PlannedSecret {
        PlannedSecret {
            group: SecretGroup::User,
            label: label.to_string(),
            content: content(password),
        }
    }

    fn owned(n: u8, password: &str) -> Option<OwnedSecret> {
        Some(OwnedSecret {
            uri: uri(n),
            revision: 1,
            content: content(password),
        })
    }

    const USER: &str = "database.7.user.secret";
    const TLS: &str = "database.7.tls.secret";

    #[test]
    fn every_case_of_planned_against_found() {
        let user = planned(USER, "p1");
        let tls = planned(TLS, "t1");
        type Case<'a> = (
            &'a str,
            Vec<&'a PlannedSecret>,
            Vec<(&'a str, Option<OwnedSecret>)>,
            Vec<SecretStep>,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing yet: both created",
                vec![&user, &tls],
                vec![(USER, None), (TLS, None)],
                vec![
                    SecretStep::Create {
                        label: TLS.into(),
                        content: content("t1"),
                    },
                    SecretStep::Create {
                        label: USER.into(),
                        content: content("p1"),
                    },
                ],
                vec![TLS, USER],
            ),
            (
                "as planned: nothing to do",
                vec![&user, &tls],
                vec![(USER, owned(0, "p1")), (TLS, owned(1, "t1"))],
                vec![],
                vec![TLS, USER],
            ),
            (
                "a new password: a new revision",
                vec![&user, &tls],
                vec![(USER, owned(0, "old")), (TLS, owned(1, "t1"))],
                vec![SecretStep::Update {
                    label: USER.into(),
                    uri: uri(0),
                    content: content("p1"),
                }],
                vec![TLS, USER],
            ),
            (
                "gone, refused or plain: everything found retires",
                vec![],
                vec![(USER, owned(0, "p1")), (TLS, None)],
                vec![SecretStep::Retire {
                    label: USER.into(),
                    uri: uri(0),
                }],
                vec![USER],
            ),
            (
                "retired and confirmed gone: forgotten",
                vec![],
                vec![(USER, None), (TLS, None)],
                vec![],
                vec![],
            ),
            (
                "a request dropped: its secrets retire, the others stay",
                vec![&user],
                vec![(USER, owned(0, "p1")), (TLS, owned(1, "t1"))],
                vec![SecretStep::Retire {
                    label: TLS.into(),
                    uri: uri(1),
                }],
                vec![TLS, USER],
            ),
        ];
        for (name, planned, found, steps, remembered) in cases {
            let found: BTreeMap<String, Option<OwnedSecret>> =
                found.into_iter().map(|(l, o)| (l.to_string(), o)).collect();
            let changes = converge(planned, &found);
            assert_eq!(changes.steps, steps, "{name}");
            let want: BTreeSet<String> = remembered.iter().map(|l| l.to_string()).collect();
            assert_eq!(changes.remembered, want, "{name}");
        }
    }

    #[test]
    fn planned_and_remembered_labels_are_looked_up() {
        let user = planned(USER, "p1");
        let remembered = BTreeSet::from([TLS.to_string(), USER.to_string()]);
        assert_eq!(
            labels_to_look_up([&user], &remembered),
            BTreeSet::from([TLS.to_string(), USER.to_string()])
        );
        assert_eq!(
            labels_to_look_up([&user], &BTreeSet::new()),
            BTreeSet::from([USER.to_string()])
        );
    }

    #[test]
    fn published_uris_are_those_that_remain_and_those_created() {
        let user = planned(USER, "p1");
        let found = BTreeMap::from([(USER.to_string(), None), (TLS.to_string(), owned(1, "t1"))]);
        let changes = converge([&user], &found);
        let created = BTreeMap::from([(USER.to_string(), uri(2))]);
        assert_eq!(
            uris_after(&found, &changes, &created),
            BTreeMap::from([(USER.to_string(), uri(2).to_string())]),
            "the TLS secret retires, so its URI is not published"
        );
        let user_tls = planned(TLS, "t1");
        let changes = converge([&user, &user_tls], &found);
        assert_eq!(
            uris_after(&found, &changes, &created),
            BTreeMap::from([
                (TLS.to_string(), uri(1).to_string()),
                (USER.to_string(), uri(2).to_string())
            ])
        );
    }

    #[test]
    fn debug_output_never_shows_content() {
        let changes = converge(
            [&planned(USER, "s3cretpassword")],
            &BTreeMap::from([(USER.to_string(), owned(0, "0ldpassword"))]),
        );
        let debug = format!("{changes:?}");
        assert!(!debug.contains("s3cretpassword"), "{debug}");
        assert!(!debug.contains("0ldpassword"), "{debug}");
    }
}
