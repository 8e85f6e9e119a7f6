//! The unit's private key: made on the unit, kept as PKCS#8 PEM, never
//! printed.
//!
//! ECDSA P-256: quick to make on any machine, accepted by every provider of
//! the tls-certificates interface (the v4 library signs RSA and ECDSA
//! requests alike) and by libpq, JDBC, pgx, node-postgres and Python clients.
//! The key lives in a [`Secret`], so `{:?}` prints `***`; errors about a key
//! never quote it (a PEM parser's message can carry a decoded byte).

use anyhow::{anyhow, Context, Result};
use rcgen::{KeyPair, PublicKeyData, PKCS_ECDSA_P256_SHA256};

use crate::secret::Secret;

/// A private key, with its public half at hand.
#[derive(Debug)]
pub struct PrivateKey(Secret<KeyPair>);

impl PrivateKey {
    /// A fresh ECDSA P-256 key from the system's random source.
    pub fn generate() -> Result<Self> {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map(|pair| PrivateKey(Secret::new(pair)))
            .context("generating an ECDSA P-256 private key")
    }

    /// A key read back from its PKCS#8 PEM (as [`PrivateKey::to_pem`]
    /// writes it). The error never quotes the text.
    pub fn from_pem(pem: &Secret<String>) -> Result<Self> {
        let refused = || anyhow!("the private key is not a PKCS#8 PEM key this charm can read");
        let block = pem::parse(pem.expose()).map_err(|_| refused())?;
        if block.tag() != "PRIVATE KEY" {
            return Err(refused());
        }
        KeyPair::try_from(block.contents())
            .map(|pair| PrivateKey(Secret::new(pair)))
            .map_err(|_| refused())
    }

    /// The key as PKCS#8 PEM, for the key file.
    pub fn to_pem(&self) -> Secret<String> {
        Secret::new(self.0.expose().serialize_pem())
    }

    /// The public key as a DER `SubjectPublicKeyInfo`, as certificates and
    /// requests carry it.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.0.expose().subject_public_key_info()
    }

    pub(crate) fn pair(&self) -> &KeyPair {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_key() {
        let key = PrivateKey::generate().unwrap();
        let pem = key.to_pem();
        assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(back.public_key_der(), key.public_key_der());
    }

    #[test]
    fn two_keys_differ() {
        let a = PrivateKey::generate().unwrap();
        let b = PrivateKey::generate().unwrap();
        assert_ne!(a.public_key_der(), b.public_key_der());
    }

    #[test]
    fn nothing_prints_the_key() {
        let key = PrivateKey::generate().unwrap();
        let pem = key.to_pem();
        let body: String = pem.expose().lines().nth(1).unwrap().to_string();
        for shown in [format!("{key:?}"), format!("{pem:?}"), format!("{pem}")] {
            assert!(!shown.contains(&body), "{shown}");
            assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        }
    }

    #[test]
    fn unreadable_keys_are_refused_without_quoting_them() {
        let good = PrivateKey::generate().unwrap().to_pem().into_exposed();
        let mut broken = good.clone();
        broken.replace_range(40..44, "!!!!");
        let cases = [
            String::new(),
            "garbage".to_string(),
            good.replace("PRIVATE KEY", "CERTIFICATE"),
            broken,
            good[..good.len() / 2].to_string(),
        ];
        for text in cases {
            let err = PrivateKey::from_pem(&Secret::new(text.clone())).unwrap_err();
            let shown = format!("{err:#} {err:?}");
            assert!(shown.contains("not a PKCS#8 PEM key"), "{shown}");
            if let Some(line) = text.lines().nth(1) {
                assert!(!shown.contains(line), "{shown}");
            }
        }
    }
}
