//! `tls-*.pem`: the unit's TLS material between hooks (issue 14): its
//! private key, its own certificate with the CA that signed it, and the
//! provider's certificate last accepted with its CA. The source of truth
//! for what `crate::tls::files` serves to PostgreSQL; nothing the postgres
//! user does can change it here.

use anyhow::{Context, Result};

use super::StateDir;
use crate::secret::Secret;

/// The unit's private key (PKCS#8 PEM).
const KEY: &str = "tls-key.pem";
/// The unit's own certificate, and the CA it is signed by (itself when
/// self-signed).
const OWN_CERT: &str = "tls-own-cert.pem";
const OWN_CA: &str = "tls-own-ca.pem";
/// The provider's certificate (with intermediates) last accepted, and its CA.
const PROVIDER_CERT: &str = "tls-provider-cert.pem";
const PROVIDER_CA: &str = "tls-provider-ca.pem";
/// The CA every client relation was last served with (after a converge
/// that served them all), so a CA change refreshes every relation, even
/// when the hook that changed it was killed before they were served.
const CLIENTS_CA: &str = "tls-clients-ca.pem";
/// This unit's ingress address in each client relation (relation id →
/// address), so a relation hook asks Juju only about its own relation.
const ADDRESSES: &str = "tls-addresses.json";

/// A certificate and the CA it chains to, as PEM (public).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertAndCa {
    /// Leaf first, then intermediates.
    pub certificate: String,
    pub ca: String,
}

/// Whose certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The unit's own (self-signed, or from the internal CA).
    Own,
    /// The `certificates` provider's, once verified.
    Provider,
}

impl Kind {
    fn files(self) -> (&'static str, &'static str) {
        match self {
            Kind::Own => (OWN_CERT, OWN_CA),
            Kind::Provider => (PROVIDER_CERT, PROVIDER_CA),
        }
    }
}

/// The key's PEM; `None` when there is none yet. Text that is not UTF-8
/// is an error that never quotes it.
pub fn key(state: &StateDir) -> Result<Option<Secret<String>>> {
    let Some(bytes) = state.read(KEY) else {
        return Ok(None);
    };
    String::from_utf8(bytes)
        .map(|text| Some(Secret::new(text)))
        .map_err(|_| anyhow::anyhow!("{} is not text", state.file(KEY).display()))
}

pub fn keep_key(state: &StateDir, pem: &Secret<String>) -> Result<()> {
    state
        .write(KEY, pem.expose().as_bytes())
        .map(drop)
        .context("keeping the unit's TLS key")
}

/// Where the key is kept (for error messages and tests; never its content).
pub fn key_path(state: &StateDir) -> std::path::PathBuf {
    state.file(KEY)
}

pub fn certificate(state: &StateDir, kind: Kind) -> Option<CertAndCa> {
    let (cert, ca) = kind.files();
    let text = |name| String::from_utf8(state.read(name)?).ok();
    Some(CertAndCa {
        certificate: text(cert)?,
        ca: text(ca)?,
    })
}

pub fn keep_certificate(state: &StateDir, kind: Kind, pair: &CertAndCa) -> Result<()> {
    let (cert, ca) = kind.files();
    // The CA first: a certificate is never kept without the CA it came with.
    state.write(ca, pair.ca.as_bytes())?;
    state.write(cert, pair.certificate.as_bytes())?;
    Ok(())
}

pub fn forget_certificate(state: &StateDir, kind: Kind) -> Result<()> {
    let (cert, ca) = kind.files();
    for name in [cert, ca] {
        if state.exists(name) {
            state.remove(name)?;
        }
    }
    Ok(())
}

/// Whether every client relation was last served with `ca`.
pub fn clients_told(state: &StateDir, ca: &str) -> bool {
    state
        .read(CLIENTS_CA)
        .is_some_and(|told| told == ca.as_bytes())
}

/// Every client relation was served with `ca`.
pub fn remember_clients_told(state: &StateDir, ca: &str) -> Result<()> {
    state.write(CLIENTS_CA, ca.as_bytes()).map(drop)
}

/// The ingress addresses last seen, by relation id.
pub fn addresses(state: &StateDir) -> std::collections::BTreeMap<String, String> {
    state.read_json(ADDRESSES).unwrap_or_default()
}

pub fn keep_addresses(
    state: &StateDir,
    addresses: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    state.write_json(ADDRESSES, addresses).map(drop)
}
