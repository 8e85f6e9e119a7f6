//! The `database` relation's Juju secrets, applied: the thin shell around
//! [`crate::relations::postgresql_client::secrets`], run by the leader (the
//! secrets are the application's) for one relation at a time.
//!
//! It looks up every label the relation needs or may have used, lets the
//! pure core decide, and carries out its steps through [`SecretTools`]
//! (the hook tools in the charm, a fake in the tests below). What it
//! returns is what the published bag and the relation's cached result
//! need: the URI of each live secret by label, and the labels to remember.
//!
//! Content never goes on a command line ([`crate::juju::secret_add`]
//! passes it in files) and never into an error message: errors name the
//! label and the tool.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};

use crate::juju::{self, RelationData, RelationId, SecretContent, SecretOptions, SecretUri};
use crate::relations::postgresql_client::plan::PlannedSecret;
use crate::relations::postgresql_client::secrets::{
    converge, labels_to_look_up, uris_after, OwnedSecret, SecretStep,
};
use crate::secret::Secret;

/// What the shell asks of Juju's secrets.
pub trait SecretTools {
    /// The application's secret labelled `label`, with its latest content;
    /// `None` if it has none.
    fn find(&self, label: &str) -> Result<Option<OwnedSecret>>;
    /// The URI and latest revision of the application's secret labelled
    /// `label` (`secret-info-get` alone, no content); `None` if it has none.
    fn latest(&self, label: &str) -> Result<Option<(SecretUri, u32)>>;
    /// `secret-add --owner application --label <label>`.
    fn create(&self, label: &str, content: &Secret<RelationData>) -> Result<SecretUri>;
    /// `secret-set <uri>`.
    fn update(&self, uri: &SecretUri, content: &Secret<RelationData>) -> Result<()>;
    /// `secret-grant <uri> -r <relation>`.
    fn grant(&self, uri: &SecretUri, relation: &RelationId) -> Result<()>;
    /// `secret-revoke <uri> -r <relation>`.
    fn revoke(&self, uri: &SecretUri, relation: &RelationId) -> Result<()>;
    /// `secret-remove <uri>`.
    fn remove(&self, uri: &SecretUri) -> Result<()>;
}

/// The real hook tools. `model_uuid`: this model's
/// ([`crate::juju::HookContext::model_uuid`]), for the long form of the
/// URIs `secret-info-get` names by id.
#[derive(Debug, Clone, Default)]
pub struct HookSecrets {
    pub model_uuid: String,
}

fn to_content(content: &Secret<RelationData>) -> SecretContent {
    content
        .expose()
        .iter()
        .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
        .collect()
}

impl SecretTools for HookSecrets {
    fn find(&self, label: &str) -> Result<Option<OwnedSecret>> {
        let info = match juju::secret_info_by_label(label) {
            Ok(info) => info,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("looking up secret {label}")),
        };
        let content = juju::secret_get(&info.uri)
            .with_context(|| format!("reading secret {label} ({})", info.uri))?;
        let content: RelationData = content
            .into_iter()
            .map(|(k, v)| (k, v.expose().clone()))
            .collect();
        Ok(Some(OwnedSecret {
            uri: info.uri.in_model(&self.model_uuid),
            revision: info.revision,
            content: Secret::new(content),
        }))
    }

    fn latest(&self, label: &str) -> Result<Option<(SecretUri, u32)>> {
        match juju::secret_info_by_label(label) {
            Ok(info) => Ok(Some((info.uri.in_model(&self.model_uuid), info.revision))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e).with_context(|| format!("looking up secret {label}")),
        }
    }

    fn create(&self, label: &str, content: &Secret<RelationData>) -> Result<SecretUri> {
        let options = SecretOptions {
            label: Some(label),
            ..SecretOptions::default()
        };
        juju::secret_add(&to_content(content), options)
            .map(|uri| uri.in_model(&self.model_uuid))
            .with_context(|| format!("creating secret {label}"))
    }

    fn update(&self, uri: &SecretUri, content: &Secret<RelationData>) -> Result<()> {
        juju::secret_set(uri, &to_content(content), SecretOptions::default())
            .with_context(|| format!("updating secret {uri}"))
    }

    fn grant(&self, uri: &SecretUri, relation: &RelationId) -> Result<()> {
        juju::secret_grant(uri, relation, None)
            .with_context(|| format!("granting secret {uri} to {relation}"))
    }

    fn revoke(&self, uri: &SecretUri, relation: &RelationId) -> Result<()> {
        juju::secret_revoke(uri, relation)
            .with_context(|| format!("revoking secret {uri} from {relation}"))
    }

    fn remove(&self, uri: &SecretUri) -> Result<()> {
        juju::secret_remove(uri, None).with_context(|| format!("removing secret {uri}"))
    }
}

/// What [`apply`] leaves for the bag and the cached result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedSecrets {
    /// The URI of each secret the relation keeps, by label.
    pub uris: BTreeMap<String, String>,
    /// The labels to remember for the relation.
    pub remembered: BTreeSet<String>,
}

/// Makes the application's secrets for `relation` exactly `planned`
/// (empty: none, for a relation that is gone or refused). `in_context`:
/// the relation is one this hook may name with `-r` (live, or the
/// `-broken` hook's own), so grants can be revoked explicitly.
pub fn apply(
    tools: &dyn SecretTools,
    relation: &RelationId,
    in_context: bool,
    planned: &[&PlannedSecret],
    remembered: &BTreeSet<String>,
) -> Result<AppliedSecrets> {
    let mut found = BTreeMap::new();
    for label in labels_to_look_up(planned.iter().copied(), remembered) {
        let owned = tools.find(&label)?;
        found.insert(label, owned);
    }
    let changes = converge(planned.iter().copied(), &found);
    let mut created = BTreeMap::new();
    for step in &changes.steps {
        match step {
            SecretStep::Create { label, content } => {
                let uri = tools.create(label, content)?;
                tools.grant(&uri, relation)?;
                created.insert(label.clone(), uri);
            }
            SecretStep::Update { uri, content, .. } => tools.update(uri, content)?,
            SecretStep::Retire { uri, .. } => {
                if in_context {
                    tools.revoke(uri, relation)?;
                }
                tools.remove(uri)?;
                log::info!("removed secret {uri} of {relation}");
            }
        }
    }
    Ok(AppliedSecrets {
        uris: uris_after(&found, &changes, &created),
        remembered: changes.remembered,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::relations::postgresql_client::plan::SecretGroup;

    /// Juju's secrets as one leader's hook sees them, and the calls made.
    #[derive(Default)]
    struct Fake {
        secrets: RefCell<BTreeMap<String, OwnedSecret>>,
        calls: RefCell<Vec<String>>,
        next: RefCell<u8>,
    }

    impl Fake {
        fn call(&self, text: String) {
            self.calls.borrow_mut().push(text);
        }

        fn take_calls(&self) -> Vec<String> {
            std::mem::take(&mut *self.calls.borrow_mut())
        }
    }

    impl SecretTools for Fake {
        fn find(&self, label: &str) -> Result<Option<OwnedSecret>> {
            self.call(format!("find {label}"));
            Ok(self.secrets.borrow().get(label).cloned())
        }

        fn latest(&self, label: &str) -> Result<Option<(SecretUri, u32)>> {
            self.call(format!("latest {label}"));
            Ok(self
                .secrets
                .borrow()
                .get(label)
                .map(|owned| (owned.uri.clone(), owned.revision)))
        }

        fn create(&self, label: &str, content: &Secret<RelationData>) -> Result<SecretUri> {
            let mut next = self.next.borrow_mut();
            let uri = SecretUri::parse(&format!("cnp5t2tnh8pc778j61e{}", (b'a' + *next) as char))
                .unwrap();
            *next += 1;
            self.call(format!("create {label}"));
            self.secrets.borrow_mut().insert(
                label.to_string(),
                OwnedSecret {
                    uri: uri.clone(),
                    revision: 1,
                    content: content.clone(),
                },
            );
            Ok(uri)
        }

        fn update(&self, uri: &SecretUri, content: &Secret<RelationData>) -> Result<()> {
            self.call(format!("update {uri}"));
            for owned in self.secrets.borrow_mut().values_mut() {
                if owned.uri == *uri {
                    owned.content = content.clone();
                }
            }
            Ok(())
        }

        fn grant(&self, uri: &SecretUri, relation: &RelationId) -> Result<()> {
            self.call(format!("grant {uri} {relation}"));
            Ok(())
        }

        fn revoke(&self, uri: &SecretUri, relation: &RelationId) -> Result<()> {
            self.call(format!("revoke {uri} {relation}"));
            Ok(())
        }

        fn remove(&self, uri: &SecretUri) -> Result<()> {
            self.call(format!("remove {uri}"));
            self.secrets
                .borrow_mut()
                .retain(|_, owned| owned.uri != *uri);
            Ok(())
        }
    }

    fn planned(label: &str, password: &str) -> PlannedSecret {
        PlannedSecret {
            group: SecretGroup::User,
            label: label.to_string(),
            content: Secret::new(RelationData::from([(
                "password".to_string(),
                password.to_string(),
            )])),
        }
    }

    const A: &str = "secret:cnp5t2tnh8pc778j61ea";
    const B: &str = "secret:cnp5t2tnh8pc778j61eb";

    #[test]
    fn a_relation_lifetime_of_secrets() {
        let fake = Fake::default();
        let rel = RelationId::new("database", 7);
        let user = planned("database.7.user.secret", "p1");
        let tls = planned("database.7.tls.secret", "t1");

        // Served: both created and granted to the relation.
        let first = apply(&fake, &rel, true, &[&user, &tls], &BTreeSet::new()).unwrap();
        assert_eq!(
            fake.take_calls(),
            [
                "find database.7.tls.secret",
                "find database.7.user.secret",
                "create database.7.tls.secret",
                &format!("grant {A} database:7"),
                "create database.7.user.secret",
                &format!("grant {B} database:7"),
            ]
        );
        assert_eq!(
            first.uris,
            BTreeMap::from([
                ("database.7.tls.secret".to_string(), A.to_string()),
                ("database.7.user.secret".to_string(), B.to_string()),
            ])
        );

        // Served again, unchanged: only looked up.
        let again = apply(&fake, &rel, true, &[&user, &tls], &first.remembered).unwrap();
        assert_eq!(again, first);
        assert!(fake.take_calls().iter().all(|c| c.starts_with("find ")));

        // A new password: one new revision, same URIs.
        let rotated = planned("database.7.user.secret", "p2");
        let after = apply(&fake, &rel, true, &[&rotated, &tls], &first.remembered).unwrap();
        assert_eq!(after.uris, first.uris);
        assert_eq!(
            fake.take_calls()
                .into_iter()
                .filter(|c| !c.starts_with("find "))
                .collect::<Vec<_>>(),
            [format!("update {B}")]
        );

        // -broken: revoked and removed, but remembered until seen gone.
        let broken = apply(&fake, &rel, true, &[], &after.remembered).unwrap();
        assert!(broken.uris.is_empty());
        assert_eq!(
            fake.take_calls()
                .into_iter()
                .filter(|c| !c.starts_with("find "))
                .collect::<Vec<_>>(),
            [
                format!("revoke {A} database:7"),
                format!("remove {A}"),
                format!("revoke {B} database:7"),
                format!("remove {B}"),
            ]
        );
        assert_eq!(broken.remembered.len(), 2);
        // A later hook (the relation no longer in context) finds them gone
        // and forgets them.
        let later = apply(&fake, &rel, false, &[], &broken.remembered).unwrap();
        assert!(later.remembered.is_empty());
        assert!(fake.take_calls().iter().all(|c| c.starts_with("find ")));
    }

    #[test]
    fn a_retry_after_the_relation_went_only_removes() {
        let fake = Fake::default();
        let rel = RelationId::new("database", 9);
        let user = planned("database.9.user.secret", "p1");
        let served = apply(&fake, &rel, true, &[&user], &BTreeSet::new()).unwrap();
        fake.take_calls();
        apply(&fake, &rel, false, &[], &served.remembered).unwrap();
        assert_eq!(
            fake.take_calls()
                .into_iter()
                .filter(|c| !c.starts_with("find "))
                .collect::<Vec<_>>(),
            [format!("remove {A}")]
        );
    }
}
