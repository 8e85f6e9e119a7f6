//! The internal CA (issue 14 item 5): one certificate authority per
//! application, made by the leader and kept in an application secret, that
//! signs every unit's own certificate.
//!
//! **Why.** Without it each unit's own certificate is self-signed, so a
//! client given one unit's certificate as its CA can verify that unit only,
//! and replication between units cannot verify at all. With it, every unit
//! serves a certificate the same CA signed: `database` consumers get that CA
//! (`tls-ca`) and can verify whichever unit is primary, and a standby
//! verifies its primary (`sslmode=verify-ca`, [`crate::ha`]).
//!
//! **Where it lives.** An application-owned Juju secret labelled
//! [`LABEL`], with the CA certificate and its private key (PEM). Every unit
//! of the application can read it (the secret is the application's; no
//! other application is ever granted it); only the leader writes it. A
//! unit signs its own certificate with it, so the unit's key never leaves
//! the unit. Without Juju secrets (before 3.1) there is no internal CA and
//! each unit's certificate stays self-signed.
//!
//! **When.** The leader makes it on the first hook that finds none; the
//! secret exists once that hook commits. Another unit that finds none yet
//! keeps its self-signed certificate and signs a new one with the CA on its
//! next hook after the commit ([`super::decide`]: `Why::SignerChanged`).
//! A secret that cannot be read as a CA is left alone (only the leader can
//! have written it): the unit keeps serving and says so in its log.

use std::time::Duration;

use anyhow::{Context, Result};
use time::OffsetDateTime;

use super::issue::{CertificateAuthority, Validity};
use super::key::PrivateKey;
use crate::juju::{self, SecretContent, SecretOptions};
use crate::secret::Secret;

/// The application secret's label.
pub const LABEL: &str = "internal-ca";
/// How long the CA is valid (unit certificates are renewed far inside it).
pub const LIFETIME: Duration = Duration::from_secs(10 * 365 * 86400);

const CERTIFICATE_FIELD: &str = "certificate";
const KEY_FIELD: &str = "key";

/// What a unit does about the internal CA (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Sign with the CA found.
    Use,
    /// Make one and keep it (leader, with Juju secrets).
    Create,
    /// None to sign with: self-signed for now.
    SelfSign,
}

/// The step for a unit that `found` the secret or not.
pub fn step(found: bool, leader: bool, has_secrets: bool) -> Step {
    match (has_secrets, found, leader) {
        (false, _, _) => Step::SelfSign,
        (true, true, _) => Step::Use,
        (true, false, true) => Step::Create,
        (true, false, false) => Step::SelfSign,
    }
}

/// The secret's content for `ca`.
fn to_content(ca: &CertificateAuthority) -> SecretContent {
    SecretContent::from([
        (
            CERTIFICATE_FIELD.to_string(),
            Secret::new(ca.certificate().to_string()),
        ),
        (KEY_FIELD.to_string(), ca.key().to_pem()),
    ])
}

/// The CA in the secret's content.
fn from_content(content: &SecretContent) -> Result<CertificateAuthority> {
    let field = |name: &str| {
        content
            .get(name)
            .with_context(|| format!("the secret has no {name:?}"))
    };
    let key = PrivateKey::from_pem(field(KEY_FIELD)?).context("reading the CA key")?;
    CertificateAuthority::from_pem(field(CERTIFICATE_FIELD)?.expose(), key)
}

/// The application's internal CA, made now if this unit is the leader and
/// there is none; `None`: the unit signs its own certificate itself.
pub fn internal_ca(
    leader: bool,
    has_secrets: bool,
    application: &str,
    now: OffsetDateTime,
) -> Result<Option<CertificateAuthority>> {
    let found = if has_secrets {
        match juju::secret_get_by_label(LABEL) {
            Ok(content) => Some(content),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e).context("reading the internal CA's secret"),
        }
    } else {
        None
    };
    match step(found.is_some(), leader, has_secrets) {
        Step::Use => {
            let content = found.expect("Use means found");
            match from_content(&content) {
                Ok(ca) => Ok(Some(ca)),
                Err(e) => {
                    log::warn!(
                        "TLS: the internal CA in secret {LABEL} is unusable ({e:#}); \
                         the unit signs its own certificate"
                    );
                    Ok(None)
                }
            }
        }
        Step::Create => {
            let ca = CertificateAuthority::generate(
                &format!("{application} internal CA"),
                &Validity::starting(now, LIFETIME),
            )?;
            juju::secret_add(
                &to_content(&ca),
                SecretOptions {
                    label: Some(LABEL),
                    description: Some("the internal CA that signs the units' certificates"),
                    ..Default::default()
                },
            )
            .context("keeping the internal CA in an application secret")?;
            log::info!("TLS: made the application's internal CA");
            Ok(Some(ca))
        }
        Step::SelfSign => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_leader_makes_it_and_only_with_secrets() {
        use Step::*;
        // (found, leader, has_secrets) -> step
        let cases = [
            ((true, true, true), Use),
            ((true, false, true), Use),
            ((false, true, true), Create),
            ((false, false, true), SelfSign),
            ((false, true, false), SelfSign),
            ((true, true, false), SelfSign),
            ((false, false, false), SelfSign),
        ];
        for ((found, leader, secrets), want) in cases {
            assert_eq!(
                step(found, leader, secrets),
                want,
                "{found} {leader} {secrets}"
            );
        }
    }

    #[test]
    fn the_secret_holds_a_ca_that_reads_back() {
        let now = OffsetDateTime::now_utc();
        let ca =
            CertificateAuthority::generate("pg internal CA", &Validity::starting(now, LIFETIME))
                .unwrap();
        let content = to_content(&ca);
        let back = from_content(&content).unwrap();
        assert_eq!(back.certificate(), ca.certificate());
        let mut broken = content.clone();
        broken.remove(KEY_FIELD);
        assert!(from_content(&broken).is_err());
        let other =
            CertificateAuthority::generate("other", &Validity::starting(now, LIFETIME)).unwrap();
        let mut mismatched = content;
        mismatched.insert(KEY_FIELD.to_string(), other.key().to_pem());
        let error = format!("{:#}", from_content(&mismatched).unwrap_err());
        assert!(error.contains("does not belong"), "{error}");
    }
}
