//! Not reading a `database` relation's secret again when Juju still holds
//! the revision the leader read before and the plan has not changed.
//!
//! Deciding whether a secret needs a new revision means comparing what the
//! plan wants with what Juju holds. A secret revision never changes, so the
//! leader keeps, per label, the latest revision Juju showed it and a SHA-256
//! of that revision's content (in the relation's cached result). A later
//! hook asks Juju for the latest revision only (`secret-info-get`); when it
//! is the same and the planned content has the same digest, Juju holds
//! exactly the planned content and `secret-get` is skipped. Anything else
//! (a new revision, a changed plan, a revision the charm set in a hook Juju
//! then discarded) reads the secret as before. Juju's word still decides:
//! nothing the charm wrote is taken for committed.

use std::cell::RefCell;
use std::collections::BTreeMap;

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::secrets::SecretTools;
use crate::juju::{RelationData, RelationId, SecretUri};
use crate::relations::postgresql_client::secrets::OwnedSecret;
use crate::secret::Secret;
use crate::state::relations::KnownRevision;

/// A SHA-256 of a secret's content (keys sorted, as the map keeps them).
pub fn digest(content: &Secret<RelationData>) -> String {
    let mut hash = Sha256::new();
    for (key, value) in content.expose() {
        for part in [key, value] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// [`SecretTools`] that answers `find` from a known revision when it can.
pub struct Remembering<'a> {
    inner: &'a dyn SecretTools,
    /// What earlier hooks read, by label.
    known: &'a BTreeMap<String, KnownRevision>,
    /// This hook's planned content, by label.
    planned: BTreeMap<String, Secret<RelationData>>,
    /// What this hook read or confirmed, by label.
    seen: RefCell<BTreeMap<String, KnownRevision>>,
}

impl<'a> Remembering<'a> {
    pub fn new(
        inner: &'a dyn SecretTools,
        known: &'a BTreeMap<String, KnownRevision>,
        planned: impl IntoIterator<Item = (String, Secret<RelationData>)>,
    ) -> Self {
        Remembering {
            inner,
            known,
            planned: planned.into_iter().collect(),
            seen: RefCell::new(BTreeMap::new()),
        }
    }

    /// The revisions to remember for the next hook.
    pub fn seen(&self) -> BTreeMap<String, KnownRevision> {
        self.seen.borrow().clone()
    }
}

impl SecretTools for Remembering<'_> {
    fn find(&self, label: &str) -> Result<Option<OwnedSecret>> {
        if let (Some(content), Some(known)) = (self.planned.get(label), self.known.get(label)) {
            if digest(content) == known.sha256 {
                let Some((uri, revision)) = self.inner.latest(label)? else {
                    return Ok(None);
                };
                if revision == known.revision {
                    self.seen
                        .borrow_mut()
                        .insert(label.to_string(), known.clone());
                    return Ok(Some(OwnedSecret {
                        uri,
                        revision,
                        content: content.clone(),
                    }));
                }
            }
        }
        let found = self.inner.find(label)?;
        if let Some(owned) = &found {
            self.seen.borrow_mut().insert(
                label.to_string(),
                KnownRevision {
                    revision: owned.revision,
                    sha256: digest(&owned.content),
                },
            );
        }
        Ok(found)
    }

    fn latest(&self, label: &str) -> Result<Option<(SecretUri, u32)>> {
        self.inner.latest(label)
    }

    fn create(&self, label: &str, content: &Secret<RelationData>) -> Result<SecretUri> {
        self.inner.create(label, content)
    }

    fn update(&self, uri: &SecretUri, content: &Secret<RelationData>) -> Result<()> {
        self.inner.update(uri, content)
    }

    fn grant(&self, uri: &SecretUri, relation: &RelationId) -> Result<()> {
        self.inner.grant(uri, relation)
    }

    fn revoke(&self, uri: &SecretUri, relation: &RelationId) -> Result<()> {
        self.inner.revoke(uri, relation)
    }

    fn remove(&self, uri: &SecretUri) -> Result<()> {
        self.inner.remove(uri)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// One secret in Juju at `revision` with `content`; counts the reads.
    struct OneSecret {
        revision: Cell<u32>,
        content: RefCell<Secret<RelationData>>,
        reads: Cell<u32>,
    }

    const URI: &str = "secret:cnp5t2tnh8pc778j61ea";

    impl SecretTools for OneSecret {
        fn find(&self, _: &str) -> Result<Option<OwnedSecret>> {
            self.reads.set(self.reads.get() + 1);
            Ok(Some(OwnedSecret {
                uri: SecretUri::parse(URI).unwrap(),
                revision: self.revision.get(),
                content: self.content.borrow().clone(),
            }))
        }
        fn latest(&self, _: &str) -> Result<Option<(SecretUri, u32)>> {
            Ok(Some((SecretUri::parse(URI).unwrap(), self.revision.get())))
        }
        fn create(&self, _: &str, _: &Secret<RelationData>) -> Result<SecretUri> {
            unreachable!()
        }
        fn update(&self, _: &SecretUri, _: &Secret<RelationData>) -> Result<()> {
            unreachable!()
        }
        fn grant(&self, _: &SecretUri, _: &RelationId) -> Result<()> {
            unreachable!()
        }
        fn revoke(&self, _: &SecretUri, _: &RelationId) -> Result<()> {
            unreachable!()
        }
        fn remove(&self, _: &SecretUri) -> Result<()> {
            unreachable!()
        }
    }

    fn content(password: &str) -> Secret<RelationData> {
        Secret::new(RelationData::from([(
            "password".to_string(),
            password.to_string(),
        )]))
    }

    const LABEL: &str = "database.7.user.secret";

    #[test]
    fn a_known_revision_with_the_planned_content_is_not_read_again() {
        let juju = OneSecret {
            revision: Cell::new(3),
            content: RefCell::new(content("p1")),
            reads: Cell::new(0),
        };
        let none = BTreeMap::new();
        let planned = || [(LABEL.to_string(), content("p1"))];
        // First hook: read, and its digest remembered.
        let first = Remembering::new(&juju, &none, planned());
        assert_eq!(first.find(LABEL).unwrap().unwrap().revision, 3);
        assert_eq!(juju.reads.get(), 1);
        let known = first.seen();
        assert_eq!(known[LABEL].revision, 3);
        assert_eq!(known[LABEL].sha256, digest(&content("p1")));

        // Same revision, same plan: answered without reading.
        let second = Remembering::new(&juju, &known, planned());
        let found = second.find(LABEL).unwrap().unwrap();
        assert_eq!((found.revision, juju.reads.get()), (3, 1));
        assert_eq!(found.content, content("p1"));
        assert_eq!(second.seen(), known);

        // A changed plan reads what Juju holds (and then updates it).
        let changed = Remembering::new(&juju, &known, [(LABEL.to_string(), content("p2"))]);
        assert_eq!(changed.find(LABEL).unwrap().unwrap().content, content("p1"));
        assert_eq!(juju.reads.get(), 2);

        // A new revision in Juju (whoever made it) is read too.
        juju.revision.set(4);
        *juju.content.borrow_mut() = content("p1");
        let newer = Remembering::new(&juju, &known, planned());
        assert_eq!(newer.find(LABEL).unwrap().unwrap().revision, 4);
        assert_eq!(juju.reads.get(), 3);
        assert_eq!(newer.seen()[LABEL].revision, 4);
    }

    #[test]
    fn digests_tell_contents_apart() {
        let a = Secret::new(RelationData::from([("ab".into(), "c".into())]));
        let b = Secret::new(RelationData::from([("a".into(), "bc".into())]));
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(digest(&a).len(), 64);
    }
}
