//! Relation passwords: generated once by the leader from the OS random
//! source, stored where every unit can read them (a Juju secret on Juju
//! 3.1+, leader settings before that), and never rotated implicitly.
//!
//! Next to each password the store keeps its SCRAM-SHA-256 verifier, so
//! the SQL layer can set the role's password without the password ever
//! appearing in SQL, and can tell whether the role already has it.

use anyhow::{Context, Result};

use crate::juju::{self, SecretContent, SecretOptions};
use crate::relations::sql::Name;
use crate::secret::{Password, Secret};

/// A relation user's password and the verifier PostgreSQL stores for it.
#[derive(Debug, Clone)]
pub struct StoredPassword {
    pub password: Password,
    /// `SCRAM-SHA-256$<iterations>:<salt>$<stored key>:<server key>`.
    pub verifier: String,
}

fn juju_has_secrets() -> bool {
    let version = std::env::var("JUJU_VERSION").unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (3, 1)
}

fn label(user: &Name) -> String {
    format!("pgsql-{}", user.as_str().replace('_', "-"))
}

fn new_password() -> Result<StoredPassword> {
    let password = Password::generate().context("reading the OS random source for a password")?;
    let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
    Ok(StoredPassword { password, verifier })
}

/// The password of `user`, creating it when this unit is the leader.
/// `None` means it does not exist yet and only the leader may create it.
pub fn password_for(user: &Name, leader: bool) -> Result<Option<StoredPassword>> {
    if juju_has_secrets() {
        from_secret(user, leader)
    } else {
        from_leader_settings(user, leader)
    }
}

fn from_secret(user: &Name, leader: bool) -> Result<Option<StoredPassword>> {
    let label = label(user);
    match juju::secret_get_by_label(&label) {
        Ok(content) => {
            let get = |key: &str| content.get(key).map(|v| v.expose().clone());
            match (get("password"), get("verifier")) {
                (Some(password), Some(verifier)) => Ok(Some(StoredPassword {
                    password: Secret::new(password),
                    verifier,
                })),
                _ => anyhow::bail!("secret {label} lacks its password or verifier"),
            }
        }
        Err(e) if e.is_not_found() && leader => {
            let stored = new_password()?;
            let mut content = SecretContent::new();
            content.insert("password".into(), stored.password.clone());
            content.insert("verifier".into(), Secret::new(stored.verifier.clone()));
            juju::secret_add(
                &content,
                SecretOptions {
                    label: Some(&label),
                    description: Some("password of a pgsql relation user"),
                    ..Default::default()
                },
            )
            .with_context(|| format!("storing the password of {user} in a Juju secret"))?;
            Ok(Some(stored))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading secret {label}")),
    }
}

fn from_leader_settings(user: &Name, leader: bool) -> Result<Option<StoredPassword>> {
    let settings = juju::leader_get().context("reading leader settings")?;
    let key = format!("password-{user}");
    let verifier_key = format!("verifier-{user}");
    if let (Some(password), Some(verifier)) = (settings.get(&key), settings.get(&verifier_key)) {
        return Ok(Some(StoredPassword {
            password: Secret::new(password.clone()),
            verifier: verifier.clone(),
        }));
    }
    if !leader {
        return Ok(None);
    }
    let stored = new_password()?;
    juju::leader_set(&[
        (key.as_str(), stored.password.expose().as_str()),
        (verifier_key.as_str(), stored.verifier.as_str()),
    ])
    .with_context(|| format!("storing the password of {user} in leader settings"))?;
    Ok(Some(stored))
}
