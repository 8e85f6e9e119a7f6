//! The shell of the two alternating logins of each `database` relation
//! ([`crate::relations::tenancy::logins`]): noticing which revisions of
//! their user secrets the charm supersedes, and the `secret-remove` hook,
//! where Juju says a revision is obsolete.
//!
//! **`secret-remove`** (run on the leader, for secrets the application
//! owns): the revision is removed (`secret-remove --revision N`, which
//! Juju expects of the owner), and when it was the last outstanding
//! revision of a user secret whose relation has a retiring login, retiring
//! ends: the store says so and the retired login loses `LOGIN` and its
//! sessions. Every step is idempotent: a retried hook finds the revision no
//! longer outstanding (the store was committed) or does it all again (it
//! was not); the converge of later hooks keeps a retired login without
//! `LOGIN` in any case (the store says it is not retiring).

use std::cell::RefCell;
use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::objects::{ClusterServer, Server};
use super::secrets::SecretTools;
use crate::charm::Hook;
use crate::credentials::{JujuPasswords, Passwords};
use crate::juju::{self, RelationData, RelationId, SecretUri};
use crate::relations::postgresql_client::plan::user_secret_relation;
use crate::relations::postgresql_client::secrets::OwnedSecret;
use crate::relations::sql::{Name, NameKind};
use crate::relations::tenancy::logins::Revision;
use crate::secret::Secret;
use crate::state::relations as results;

/// [`SecretTools`] that notes, of each user secret (one holding a
/// password) it gives a new revision, the revision superseded.
pub struct Recording<'a> {
    inner: &'a dyn SecretTools,
    latest: RefCell<BTreeMap<String, u32>>,
    superseded: RefCell<Vec<Revision>>,
}

impl<'a> Recording<'a> {
    pub fn new(inner: &'a dyn SecretTools) -> Self {
        Recording {
            inner,
            latest: RefCell::new(BTreeMap::new()),
            superseded: RefCell::new(Vec::new()),
        }
    }

    /// The revisions superseded so far.
    pub fn superseded(&self) -> Vec<Revision> {
        self.superseded.borrow().clone()
    }
}

impl SecretTools for Recording<'_> {
    fn find(&self, label: &str) -> Result<Option<OwnedSecret>> {
        let found = self.inner.find(label)?;
        if let Some(owned) = &found {
            self.latest
                .borrow_mut()
                .insert(owned.uri.id().to_string(), owned.revision);
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
        self.inner.update(uri, content)?;
        let id = uri.id().to_string();
        let holds_password = content.expose().contains_key("password");
        if let (true, Some(&revision)) = (holds_password, self.latest.borrow().get(&id)) {
            self.superseded.borrow_mut().push((id, revision));
        }
        Ok(())
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

/// The `secret-remove` hook (see the module docs).
pub fn secret_removed(hook: &Hook) -> Result<()> {
    let Some(secret) = &hook.context.secret else {
        log::warn!("secret-remove without JUJU_SECRET_ID; nothing to do");
        return Ok(());
    };
    let Some(revision) = secret.revision else {
        log::debug!(
            "secret-remove of {} without a revision; nothing to do",
            secret.uri
        );
        return Ok(());
    };
    if !juju::is_leader().context("asking whether this unit leads")? {
        // Only the owner (the leader, for the application's secrets) is
        // told; a unit that lost the lead since leaves it to the new one.
        return Ok(());
    }
    if let Some(login) = login_of(hook, &secret.label) {
        let store = JujuPasswords {
            in_secrets: hook.context.has_secrets(),
        };
        let mut passwords = Passwords::new(true, &store);
        let obsolete = (secret.uri.id().to_string(), revision);
        if let Some(retired) = passwords.revision_removed(&login, &obsolete)? {
            retire(hook, &retired);
        }
    }
    match juju::secret_remove(&secret.uri, Some(revision)) {
        Ok(()) => Ok(()),
        // Removed already (a retried hook).
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing revision {revision} of {}", secret.uri)),
    }
}

/// The main login of the `database` relation whose user secret `label`
/// is (under which its login state is stored), as the relation results
/// remember it.
fn login_of(hook: &Hook, label: &str) -> Option<Name> {
    let relation = user_secret_relation(label)?;
    let served = results::load(&hook.unit.state);
    let user = &served.get(&relation.to_string())?.user;
    Name::parse(NameKind::User, user).ok()
}

/// Takes `login`'s `LOGIN` and sessions now, if this unit's server is up;
/// otherwise (or if it fails) the next converge of the writing unit does.
fn retire(hook: &Hook, login: &Name) {
    let Some(cluster) = hook.unit.existing_cluster().filter(|c| c.is_running()) else {
        log::info!("{login} retires; the server is down, the next converge takes its login");
        return;
    };
    if let Err(error) = ClusterServer(&cluster).disable_login(login.as_str()) {
        log::warn!(
            "{login} retires, but taking its login failed ({error:#}); the next converge retries"
        );
    }
}
