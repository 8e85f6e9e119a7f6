//! Checking what a provider sends before it is installed, and reading the
//! public facts of the certificates and requests the unit keeps.
//!
//! [`verify_offered`] accepts a certificate only if it is for the unit's
//! key, is not a CA certificate, carries every required SAN (matched as TLS
//! clients match them, wildcards included), is valid now, comes with a
//! usable CA, and chains to that CA through signatures that verify
//! (rustls-webpki builds and checks the path: signatures, basic
//! constraints, path lengths, name constraints, extended key usage).
//! Names alone prove nothing: a CA of the same name with another key is
//! refused. Each failure is a distinct [`Rejection`] whose text can stand in
//! the unit's status.

use std::fmt;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::decide::{Held, Request, SanMatch, Signer};
use super::issue::Validity;
use super::key::PrivateKey;
use super::sans::Sans;

/// Why a provider's certificate is not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// `part` (the certificate, the CA, a chain entry) is not PEM
    /// certificates that parse.
    Unreadable {
        part: String,
        detail: String,
    },
    KeyMismatch,
    /// A CA certificate where a server certificate belongs.
    CaCertificate,
    MissingSans {
        missing: Vec<String>,
    },
    Expired {
        not_after: String,
    },
    NotYetValid {
        not_before: String,
    },
    /// Its extended key usage excludes TLS servers.
    NotForServers,
    /// The CA sent with it cannot be one (not a CA, expired, not yet valid).
    BadCa {
        detail: String,
    },
    /// No path of verifying signatures leads from it to the CA sent with it.
    NotSignedByCa {
        detail: String,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Unreadable { part, detail } => {
                write!(f, "its {part} is not a readable PEM certificate ({detail})")
            }
            Rejection::KeyMismatch => f.write_str("it does not match this unit's private key"),
            Rejection::CaCertificate => {
                f.write_str("it is a CA certificate, not a server certificate")
            }
            Rejection::MissingSans { missing } => {
                write!(
                    f,
                    "it lacks the subject alternative names {}",
                    missing.join(", ")
                )
            }
            Rejection::Expired { not_after } => write!(f, "it expired at {not_after}"),
            Rejection::NotYetValid { not_before } => {
                write!(f, "it is not valid before {not_before}")
            }
            Rejection::NotForServers => {
                f.write_str("its extended key usage does not allow TLS servers")
            }
            Rejection::BadCa { detail } => write!(f, "the CA sent with it {detail}"),
            Rejection::NotSignedByCa { detail } => {
                write!(f, "it does not chain to the CA sent with it ({detail})")
            }
        }
    }
}

/// What a provider sent for the unit's request (the v4 `certificates`
/// entry: `certificate`, `ca`, `chain`).
#[derive(Debug, Clone, Copy)]
pub struct Offered<'a> {
    pub certificate: &'a str,
    pub ca: &'a str,
    pub chain: &'a [String],
}

/// A certificate that passed [`verify_offered`], ready for the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The certificate and the intermediates between it and the CA, leaf
    /// first (PEM): PostgreSQL's `ssl_cert_file`.
    pub certificate_chain: String,
    /// The CA certificate(s) (PEM): `ssl_ca_file`, and what clients get.
    pub ca: String,
    pub held: Held,
}

/// RFC 3339, for status messages.
pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// The DER of every `CERTIFICATE` block in `text`; an error names what is
/// wrong (no block, another kind of block, bad base64).
pub fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(text).map_err(|e| e.to_string())?;
    if blocks.is_empty() {
        return Err("no PEM block".into());
    }
    blocks
        .into_iter()
        .map(|block| match block.tag() {
            "CERTIFICATE" => Ok(block.into_contents()),
            other => Err(format!("a {other:?} block where a CERTIFICATE belongs")),
        })
        .collect()
}

/// `der` as a PEM certificate (LF line endings, trailing newline).
pub fn to_pem(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der), config)
}

/// Whether two DER `SubjectPublicKeyInfo`s hold the same key (algorithm,
/// its parameters and the key bits; not the encoding's incidentals).
pub(crate) fn same_public_key(a: &[u8], b: &[u8]) -> bool {
    let (Ok((_, a)), Ok((_, b))) = (
        SubjectPublicKeyInfo::from_der(a),
        SubjectPublicKeyInfo::from_der(b),
    ) else {
        return false;
    };
    a.algorithm.algorithm == b.algorithm.algorithm
        && a.algorithm.parameters.as_ref().map(|p| p.as_bytes())
            == b.algorithm.parameters.as_ref().map(|p| p.as_bytes())
        && a.subject_public_key.data == b.subject_public_key.data
}

/// The validity of the first certificate in `pem`.
pub fn validity(pem: &str) -> Result<Validity, String> {
    let der = pem_certificates(pem)?.remove(0);
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
    Ok(validity_of(&cert))
}

fn validity_of(cert: &X509Certificate<'_>) -> Validity {
    Validity {
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
    }
}

/// The SANs a certificate or request names, normalised; `exotic` counts
/// the entries that are no plain name or address (wildcards, e-mail, URI).
struct Named {
    sans: Sans,
    exotic: usize,
}

fn named<'a>(names: impl IntoIterator<Item = &'a GeneralName<'a>>) -> Named {
    let mut out = Named {
        sans: Sans::new(),
        exotic: 0,
    };
    for name in names {
        let added = match name {
            GeneralName::DNSName(dns) => out.sans.add_dns(dns).is_ok(),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => out
                    .sans
                    .add_ip(<[u8; 4]>::try_from(*bytes).expect("4 bytes").into())
                    .is_ok(),
                16 => out
                    .sans
                    .add_ip(<[u8; 16]>::try_from(*bytes).expect("16 bytes").into())
                    .is_ok(),
                _ => false,
            },
            _ => false,
        };
        if !added {
            out.exotic += 1;
        }
    }
    out
}

fn cert_names(cert: &X509Certificate<'_>) -> Named {
    match cert.subject_alternative_name() {
        Ok(Some(ext)) => named(ext.value.general_names.iter()),
        _ => named([]),
    }
}

/// Required SANs the certificate does not cover, matched as TLS clients
/// match (webpki: wildcards in the left-most label, IPs exactly).
fn missing_sans(leaf: &EndEntityCert<'_>, required: &Sans) -> Vec<String> {
    required
        .entries()
        .into_iter()
        .filter(|entry| {
            let Ok(name) = ServerName::try_from(entry.as_str()) else {
                return true;
            };
            leaf.verify_is_valid_for_subject_name(&name).is_err()
        })
        .collect()
}

fn san_match(leaf: &EndEntityCert<'_>, names: &Named, required: &Sans) -> SanMatch {
    let missing = missing_sans(leaf, required);
    if !missing.is_empty() {
        SanMatch::Missing(missing)
    } else if names.exotic == 0 && names.sans == *required {
        SanMatch::Exact
    } else {
        SanMatch::Covers
    }
}

fn unix_time(now: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(now.unix_timestamp().max(0) as u64))
}

/// Signature algorithms a provider's chain may use.
static ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

fn describe_chain_error(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => "neither the CA nor any certificate in the chain issued it".into(),
        E::InvalidSignatureForPublicKey => {
            "a signature does not verify with its issuer's key".into()
        }
        E::CertExpired { .. } | E::CertNotValidYet { .. } => {
            "an intermediate certificate is outside its validity period".into()
        }
        E::EndEntityUsedAsCa => "an intermediate certificate is not a CA certificate".into(),
        E::PathLenConstraintViolated => "the chain is longer than a CA allows".into(),
        E::NameConstraintViolation => "a CA's name constraints exclude it".into(),
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "it is signed with an algorithm the charm does not accept".into()
        }
        other => format!("{other:?}"),
    }
}

fn unreadable(part: &str, detail: impl fmt::Display) -> Rejection {
    Rejection::Unreadable {
        part: part.to_string(),
        detail: detail.to_string(),
    }
}

/// Checks `offered` for `key`, the `required` SANs and the time `now`
/// (see the module documentation for what is checked, in this order).
pub fn verify_offered(
    offered: &Offered<'_>,
    key: &PrivateKey,
    required: &Sans,
    now: OffsetDateTime,
) -> Result<Verified, Rejection> {
    let mut given =
        pem_certificates(offered.certificate).map_err(|e| unreadable("certificate", e))?;
    let leaf_der = given.remove(0);
    let ca_ders = pem_certificates(offered.ca).map_err(|e| unreadable("CA", e))?;
    let mut chain_ders = given;
    for (n, entry) in offered.chain.iter().enumerate() {
        let ders =
            pem_certificates(entry).map_err(|e| unreadable(&format!("chain entry {n}"), e))?;
        chain_ders.extend(ders);
    }
    let (_, leaf) =
        X509Certificate::from_der(&leaf_der).map_err(|e| unreadable("certificate", e))?;
    let leaf_webpki_der = CertificateDer::from(leaf_der.as_slice());
    let leaf_webpki = EndEntityCert::try_from(&leaf_webpki_der)
        .map_err(|e| unreadable("certificate", format!("{e:?}")))?;

    if !same_public_key(leaf.public_key().raw, &key.public_key_der()) {
        return Err(Rejection::KeyMismatch);
    }
    if leaf.is_ca() {
        return Err(Rejection::CaCertificate);
    }
    let names = cert_names(&leaf);
    let sans = san_match(&leaf_webpki, &names, required);
    if let SanMatch::Missing(missing) = sans {
        return Err(Rejection::MissingSans { missing });
    }
    let validity = validity_of(&leaf);
    if now < validity.not_before {
        return Err(Rejection::NotYetValid {
            not_before: format_time(validity.not_before),
        });
    }
    if now > validity.not_after {
        return Err(Rejection::Expired {
            not_after: format_time(validity.not_after),
        });
    }

    let mut cas = Vec::new();
    for der in &ca_ders {
        let (_, ca) = X509Certificate::from_der(der).map_err(|e| unreadable("CA", e))?;
        if !ca.is_ca() {
            return Err(Rejection::BadCa {
                detail: "is not a CA certificate".into(),
            });
        }
        let ca_validity = validity_of(&ca);
        if now > ca_validity.not_after {
            return Err(Rejection::BadCa {
                detail: format!("expired at {}", format_time(ca_validity.not_after)),
            });
        }
        if now < ca_validity.not_before {
            return Err(Rejection::BadCa {
                detail: format!(
                    "is not valid before {}",
                    format_time(ca_validity.not_before)
                ),
            });
        }
        cas.push((der, ca.public_key().raw.to_vec()));
    }

    let intermediates: Vec<CertificateDer<'_>> = chain_ders
        .iter()
        .filter(|der| **der != leaf_der && !ca_ders.contains(der))
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    let mut first_error = None;
    for (ca_der, ca_spki) in &cas {
        let ca_cert = CertificateDer::from(ca_der.as_slice());
        let anchor = match webpki::anchor_from_trusted_cert(&ca_cert) {
            Ok(anchor) => anchor,
            Err(e) => return Err(unreadable("CA", format!("{e:?}"))),
        };
        let anchors = [anchor];
        match leaf_webpki.verify_for_usage(
            ALGORITHMS,
            &anchors,
            &intermediates,
            unix_time(now),
            KeyUsage::server_auth(),
            None,
            None,
        ) {
            Ok(path) => {
                let mut certificate_chain = to_pem(&leaf_der);
                for cert in path.intermediate_certificates() {
                    certificate_chain.push_str(&to_pem(cert.der().as_ref()));
                }
                let ca = ca_ders.iter().map(|der| to_pem(der)).collect();
                return Ok(Verified {
                    certificate_chain,
                    ca,
                    held: Held {
                        validity,
                        sans,
                        matches_key: true,
                        signer: Signer::Ca(ca_spki.clone()),
                    },
                });
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(webpki::Error::RequiredEkuNotFoundContext(_)) => Err(Rejection::NotForServers),
        #[allow(deprecated)]
        Some(webpki::Error::RequiredEkuNotFound) => Err(Rejection::NotForServers),
        Some(e) => Err(Rejection::NotSignedByCa {
            detail: describe_chain_error(&e),
        }),
        None => Err(unreadable("CA", "no CA certificate")),
    }
}

/// Whether `cert` carries a signature by the key of `issuer` and names it
/// as its issuer.
fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer() == issuer.subject() && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// The facts of a certificate the unit keeps (its own, or the provider's it
/// accepted), for [`crate::tls::decide`]. `ca` is the CA it may be signed
/// by (the internal CA for the own certificate).
pub fn assess(
    certificate: &str,
    key: &PrivateKey,
    required: &Sans,
    ca: Option<&str>,
) -> Result<Held, String> {
    let der = pem_certificates(certificate)?.remove(0);
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
    let webpki_der = CertificateDer::from(der.as_slice());
    let leaf = EndEntityCert::try_from(&webpki_der).map_err(|e| format!("{e:?}"))?;
    let ca_der = match ca {
        Some(ca) => Some(pem_certificates(ca)?.remove(0)),
        None => None,
    };
    let ca_cert = match &ca_der {
        Some(der) => Some(X509Certificate::from_der(der).map_err(|e| e.to_string())?.1),
        None => None,
    };
    let signer = if signed_by(&cert, &cert) {
        Signer::SelfSigned
    } else if let Some(ca) = ca_cert.as_ref().filter(|ca| signed_by(&cert, ca)) {
        Signer::Ca(ca.public_key().raw.to_vec())
    } else {
        Signer::Other
    };
    Ok(Held {
        validity: validity_of(&cert),
        sans: san_match(&leaf, &cert_names(&cert), required),
        matches_key: same_public_key(cert.public_key().raw, &key.public_key_der()),
        signer,
    })
}

/// The signer the own certificate should have when `ca` (PEM) signs it.
pub fn ca_signer(ca: &str) -> Result<Signer, String> {
    let der = pem_certificates(ca)?.remove(0);
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| e.to_string())?;
    Ok(Signer::Ca(cert.public_key().raw.to_vec()))
}

/// The facts of the request (CSR, PEM) in the unit's bag.
pub fn assess_request(csr: &str, key: &PrivateKey, required: &Sans) -> Result<Request, String> {
    let block = pem::parse(csr).map_err(|e| e.to_string())?;
    if block.tag() != "CERTIFICATE REQUEST" {
        return Err(format!(
            "a {:?} block where a CERTIFICATE REQUEST belongs",
            block.tag()
        ));
    }
    let (_, request) =
        X509CertificationRequest::from_der(block.contents()).map_err(|e| e.to_string())?;
    let mut names = named([]);
    if let Some(extensions) = request.requested_extensions() {
        for extension in extensions {
            if let ParsedExtension::SubjectAlternativeName(san) = extension {
                names = named(san.general_names.iter());
            }
        }
    }
    let sans = if names.exotic == 0 && names.sans == *required {
        SanMatch::Exact
    } else {
        let missing = required.missing_from(&names.sans);
        if missing.is_empty() {
            SanMatch::Covers
        } else {
            SanMatch::Missing(missing)
        }
    };
    Ok(Request {
        sans,
        matches_key: same_public_key(
            request.certification_request_info.subject_pki.raw,
            &key.public_key_der(),
        ),
    })
}

/// Whether two PEM texts hold the same DER (certificates or requests;
/// comparing text would trip over line endings and wrapping).
pub fn same_pem(a: &str, b: &str) -> bool {
    match (pem::parse_many(a), pem::parse_many(b)) {
        (Ok(a), Ok(b)) => {
            let a: Vec<_> = a.iter().map(|p| p.contents()).collect();
            let b: Vec<_> = b.iter().map(|p| p.contents()).collect();
            !a.is_empty() && a == b
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tls::issue::{self_signed, CertificateAuthority};
    use crate::tls::sans::{required_sans, Identity, SanInputs};
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
    };

    const DAY: Duration = Duration::from_secs(86400);

    pub(crate) fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    pub(crate) fn identity() -> Identity {
        required_sans(&SanInputs {
            hostname: "db-0",
            fqdn: Some("db-0.maas.example"),
            addresses: &["10.0.0.5"],
        })
        .0
    }

    /// A test CA, as a provider would run one.
    pub(crate) struct TestCa {
        key: KeyPair,
        params: CertificateParams,
        pub(crate) pem: String,
    }

    pub(crate) fn ca_with(
        name: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        is_ca: bool,
    ) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = from;
        params.not_after = to;
        params.is_ca = if is_ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { key, params, pem }
    }

    pub(crate) fn ca(name: &str) -> TestCa {
        ca_with(name, now() - DAY, now() + DAY * 365, true)
    }

    /// What `issuer` signs for `subject` with these SANs, dates and usages.
    pub(crate) struct Leaf<'a> {
        pub(crate) sans: Vec<&'a str>,
        pub(crate) from: OffsetDateTime,
        pub(crate) to: OffsetDateTime,
        pub(crate) is_ca: bool,
        pub(crate) ekus: Vec<ExtendedKeyUsagePurpose>,
    }

    impl Default for Leaf<'_> {
        fn default() -> Self {
            Leaf {
                sans: vec!["db-0", "db-0.maas.example", "10.0.0.5"],
                from: now() - DAY,
                to: now() + DAY * 90,
                is_ca: false,
                ekus: vec![],
            }
        }
    }

    pub(crate) fn sign(issuer: &TestCa, subject: &impl PublicKeyData, leaf: Leaf<'_>) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "db-0.maas.example");
        params.subject_alt_names = leaf
            .sans
            .iter()
            .map(|s| match s.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*s).try_into().unwrap()),
            })
            .collect();
        params.not_before = leaf.from;
        params.not_after = leaf.to;
        params.is_ca = if leaf.is_ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::NoCa
        };
        params.extended_key_usages = leaf.ekus;
        let issuer = Issuer::from_params(&issuer.params, &issuer.key);
        params.signed_by(subject, &issuer).unwrap().pem()
    }

    fn offer<'a>(certificate: &'a str, ca: &'a str, chain: &'a [String]) -> Offered<'a> {
        Offered {
            certificate,
            ca,
            chain,
        }
    }

    fn check(
        certificate: &str,
        ca: &str,
        chain: &[String],
        key: &PrivateKey,
    ) -> Result<Verified, Rejection> {
        verify_offered(&offer(certificate, ca, chain), key, &identity().sans, now())
    }

    #[test]
    fn an_honest_certificate_is_accepted() {
        let key = PrivateKey::generate().unwrap();
        let provider = ca("provider CA");
        let cert = sign(&provider, key.pair(), Leaf::default());
        let chain = [cert.clone(), provider.pem.clone()];
        let verified = check(&cert, &provider.pem, &chain, &key).unwrap();
        assert!(same_pem(&verified.certificate_chain, &cert));
        assert!(same_pem(&verified.ca, &provider.pem));
        assert_eq!(verified.held.sans, SanMatch::Exact);
        assert!(verified.held.matches_key);
        assert_eq!(verified.held.signer, ca_signer(&provider.pem).unwrap());
        // No chain at all, and text with CRLF line ends, are fine too.
        let crlf = cert.replace('\n', "\r\n");
        assert!(check(&crlf, &provider.pem, &[], &key).is_ok());
    }

    #[test]
    fn each_failure_has_its_own_reason() {
        let key = PrivateKey::generate().unwrap();
        let other_key = KeyPair::generate().unwrap();
        let provider = ca("provider CA");
        let impostor = ca("provider CA"); // same name, other key
        let stranger = ca("another CA");
        let not_a_ca = ca_with("provider CA", now() - DAY, now() + DAY, false);
        let old_ca = ca_with("old CA", now() - DAY * 30, now() - DAY, true);
        let honest = sign(&provider, key.pair(), Leaf::default());
        let ca_sign = |issuer: &TestCa, leaf: Leaf<'_>| sign(issuer, key.pair(), leaf);

        let cases: Vec<(&str, String, String, Rejection)> = vec![
            (
                "wrong key",
                sign(&provider, &other_key, Leaf::default()),
                provider.pem.clone(),
                Rejection::KeyMismatch,
            ),
            (
                "missing SAN",
                ca_sign(
                    &provider,
                    Leaf {
                        sans: vec!["db-0", "db-0.maas.example"],
                        ..Leaf::default()
                    },
                ),
                provider.pem.clone(),
                Rejection::MissingSans {
                    missing: vec!["10.0.0.5".into()],
                },
            ),
            (
                "no SAN",
                ca_sign(
                    &provider,
                    Leaf {
                        sans: vec![],
                        ..Leaf::default()
                    },
                ),
                provider.pem.clone(),
                Rejection::MissingSans {
                    missing: vec!["db-0".into(), "db-0.maas.example".into(), "10.0.0.5".into()],
                },
            ),
            (
                "CA certificate",
                ca_sign(
                    &provider,
                    Leaf {
                        is_ca: true,
                        ..Leaf::default()
                    },
                ),
                provider.pem.clone(),
                Rejection::CaCertificate,
            ),
            (
                "client only",
                ca_sign(
                    &provider,
                    Leaf {
                        ekus: vec![ExtendedKeyUsagePurpose::ClientAuth],
                        ..Leaf::default()
                    },
                ),
                provider.pem.clone(),
                Rejection::NotForServers,
            ),
            (
                "impostor CA",
                honest.clone(),
                impostor.pem.clone(),
                Rejection::NotSignedByCa {
                    detail: "a signature does not verify with its issuer's key".into(),
                },
            ),
            (
                "signed by a stranger",
                ca_sign(&stranger, Leaf::default()),
                provider.pem.clone(),
                Rejection::NotSignedByCa {
                    detail: "neither the CA nor any certificate in the chain issued it".into(),
                },
            ),
            (
                "CA is no CA",
                ca_sign(&not_a_ca, Leaf::default()),
                not_a_ca.pem.clone(),
                Rejection::BadCa {
                    detail: "is not a CA certificate".into(),
                },
            ),
        ];
        for (case, cert, ca_pem, want) in cases {
            assert_eq!(
                check(&cert, &ca_pem, &[], &key).unwrap_err(),
                want,
                "{case}"
            );
        }

        let expired = ca_sign(
            &provider,
            Leaf {
                from: now() - DAY * 10,
                to: now() - DAY,
                ..Leaf::default()
            },
        );
        assert!(matches!(
            check(&expired, &provider.pem, &[], &key),
            Err(Rejection::Expired { .. })
        ));
        let early = ca_sign(
            &provider,
            Leaf {
                from: now() + DAY,
                to: now() + DAY * 10,
                ..Leaf::default()
            },
        );
        assert!(matches!(
            check(&early, &provider.pem, &[], &key),
            Err(Rejection::NotYetValid { .. })
        ));
        let under_old = sign(&old_ca, key.pair(), Leaf::default());
        match check(&under_old, &old_ca.pem, &[], &key) {
            Err(Rejection::BadCa { detail }) => {
                assert!(detail.starts_with("expired at "), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dates_are_judged_by_the_clock_given() {
        let key = PrivateKey::generate().unwrap();
        let provider = ca("provider CA");
        let start = now();
        let cert = sign(
            &provider,
            key.pair(),
            Leaf {
                from: start,
                to: start + DAY,
                ..Leaf::default()
            },
        );
        let at = |t| verify_offered(&offer(&cert, &provider.pem, &[]), &key, &identity().sans, t);
        assert!(at(start + DAY / 2).is_ok());
        match at(start + DAY * 2) {
            Err(Rejection::Expired { not_after }) => {
                let end =
                    OffsetDateTime::from_unix_timestamp((start + DAY).unix_timestamp()).unwrap();
                assert_eq!(not_after, format_time(end));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            at(start - DAY),
            Err(Rejection::NotYetValid { .. })
        ));
    }

    #[test]
    fn garbage_is_unreadable_and_says_where() {
        let key = PrivateKey::generate().unwrap();
        let provider = ca("provider CA");
        let honest = sign(&provider, key.pair(), Leaf::default());
        let key_pem = key.to_pem().into_exposed();
        let truncated = honest[..honest.len() / 2].to_string();
        let bad_base64 = honest.replacen("MII", "M!I", 1);
        let cases: Vec<(&str, &str, Vec<String>, &str)> = vec![
            ("", &provider.pem, vec![], "certificate"),
            ("not pem at all", &provider.pem, vec![], "certificate"),
            (&truncated, &provider.pem, vec![], "certificate"),
            (&bad_base64, &provider.pem, vec![], "certificate"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                &provider.pem,
                vec![],
                "certificate",
            ),
            (&honest, "", vec![], "CA"),
            (&honest, &key_pem, vec![], "CA"),
            (
                &honest,
                &provider.pem,
                vec!["junk".to_string()],
                "chain entry 0",
            ),
            (
                &honest,
                &provider.pem,
                vec![honest.clone(), "junk".to_string()],
                "chain entry 1",
            ),
        ];
        for (cert, ca_pem, chain, part) in cases {
            match check(cert, ca_pem, &chain, &key) {
                Err(Rejection::Unreadable { part: got, detail }) => {
                    assert_eq!(got, part, "{cert:?} / {ca_pem:?}: {detail}");
                    let body = key_pem.lines().nth(1).unwrap();
                    assert!(!detail.contains(body), "{detail}");
                }
                other => panic!("{part}: {other:?}"),
            }
        }
    }

    #[test]
    fn intermediates_come_from_the_chain_and_are_served() {
        let key = PrivateKey::generate().unwrap();
        let root = ca("root CA");
        let inter_key = KeyPair::generate().unwrap();
        let mut inter_params = CertificateParams::default();
        inter_params.distinguished_name = rcgen::DistinguishedName::new();
        inter_params
            .distinguished_name
            .push(DnType::CommonName, "intermediate CA");
        inter_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        inter_params.not_before = now() - DAY;
        inter_params.not_after = now() + DAY * 100;
        let inter_pem = inter_params
            .signed_by(&inter_key, &Issuer::from_params(&root.params, &root.key))
            .unwrap()
            .pem();
        let inter = TestCa {
            key: inter_key,
            params: inter_params,
            pem: inter_pem,
        };
        let cert = sign(&inter, key.pair(), Leaf::default());
        let chain = [cert.clone(), inter.pem.clone(), root.pem.clone()];
        let verified = check(&cert, &root.pem, &chain, &key).unwrap();
        assert_eq!(
            pem_certificates(&verified.certificate_chain).unwrap().len(),
            2
        );
        assert!(same_pem(
            &verified.certificate_chain,
            &format!("{cert}{}", inter.pem)
        ));
        // The leaf and intermediate in `certificate` itself work too.
        assert!(check(&format!("{cert}{}", inter.pem), &root.pem, &[], &key).is_ok());
        // Without the intermediate, nothing leads to the root.
        assert!(matches!(
            check(&cert, &root.pem, &[], &key),
            Err(Rejection::NotSignedByCa { .. })
        ));
    }

    #[test]
    fn names_match_as_clients_match() {
        let key = PrivateKey::generate().unwrap();
        let provider = ca("provider CA");
        let wildcard = sign(
            &provider,
            key.pair(),
            Leaf {
                sans: vec!["db-0", "*.maas.example", "10.0.0.5"],
                ..Leaf::default()
            },
        );
        assert_eq!(
            check(&wildcard, &provider.pem, &[], &key)
                .unwrap()
                .held
                .sans,
            SanMatch::Covers
        );
        let extra = sign(
            &provider,
            key.pair(),
            Leaf {
                sans: vec!["db-0", "db-0.maas.example", "10.0.0.5", "10.9.9.9"],
                ..Leaf::default()
            },
        );
        assert_eq!(
            check(&extra, &provider.pem, &[], &key).unwrap().held.sans,
            SanMatch::Covers
        );
        let upper = sign(
            &provider,
            key.pair(),
            Leaf {
                sans: vec!["DB-0", "db-0.MAAS.example", "10.0.0.5"],
                ..Leaf::default()
            },
        );
        assert!(check(&upper, &provider.pem, &[], &key).is_ok());
        // A wildcard covers one label only.
        let deep = sign(
            &provider,
            key.pair(),
            Leaf {
                sans: vec!["db-0", "*.example", "10.0.0.5"],
                ..Leaf::default()
            },
        );
        assert_eq!(
            check(&deep, &provider.pem, &[], &key).unwrap_err(),
            Rejection::MissingSans {
                missing: vec!["db-0.maas.example".into()]
            }
        );
    }

    #[test]
    fn a_ca_bundle_may_hold_the_old_and_the_new_ca() {
        let key = PrivateKey::generate().unwrap();
        let old = ca("provider CA");
        let new = ca("provider CA");
        let cert = sign(&new, key.pair(), Leaf::default());
        let bundle = format!("{}{}", old.pem, new.pem);
        let verified = check(&cert, &bundle, &[], &key).unwrap();
        assert_eq!(verified.held.signer, ca_signer(&new.pem).unwrap());
        assert_eq!(pem_certificates(&verified.ca).unwrap().len(), 2);
    }

    #[test]
    fn rejections_read_as_status_text() {
        let cases = [
            (
                Rejection::Unreadable {
                    part: "CA".into(),
                    detail: "no PEM block".into(),
                },
                "its CA is not a readable PEM certificate (no PEM block)",
            ),
            (
                Rejection::KeyMismatch,
                "it does not match this unit's private key",
            ),
            (
                Rejection::CaCertificate,
                "it is a CA certificate, not a server certificate",
            ),
            (
                Rejection::MissingSans {
                    missing: vec!["a".into(), "10.0.0.1".into()],
                },
                "it lacks the subject alternative names a, 10.0.0.1",
            ),
            (
                Rejection::Expired {
                    not_after: "2030-01-01T00:00:00Z".into(),
                },
                "it expired at 2030-01-01T00:00:00Z",
            ),
            (
                Rejection::NotYetValid {
                    not_before: "2030-01-01T00:00:00Z".into(),
                },
                "it is not valid before 2030-01-01T00:00:00Z",
            ),
            (
                Rejection::NotForServers,
                "its extended key usage does not allow TLS servers",
            ),
            (
                Rejection::BadCa {
                    detail: "is not a CA certificate".into(),
                },
                "the CA sent with it is not a CA certificate",
            ),
            (
                Rejection::NotSignedByCa { detail: "x".into() },
                "it does not chain to the CA sent with it (x)",
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (rejection, text) in cases {
            assert_eq!(rejection.to_string(), text);
            assert!(seen.insert(text));
        }
    }

    #[test]
    fn kept_certificates_are_assessed() {
        let key = PrivateKey::generate().unwrap();
        let required = identity().sans;
        let validity = crate::tls::issue::Validity::starting(now(), DAY);
        let own = self_signed(&key, &identity(), &validity).unwrap();
        let held = assess(&own, &key, &required, None).unwrap();
        assert_eq!(held.signer, Signer::SelfSigned);
        assert_eq!(held.sans, SanMatch::Exact);
        assert!(held.matches_key);
        assert_eq!(
            held.validity.not_after.unix_timestamp(),
            validity.not_after.unix_timestamp()
        );

        let internal = CertificateAuthority::generate("internal", &validity).unwrap();
        let issued = internal.issue(&key, &identity(), &validity).unwrap();
        let held = assess(&issued, &key, &required, Some(internal.certificate())).unwrap();
        assert_eq!(held.signer, ca_signer(internal.certificate()).unwrap());
        let other = CertificateAuthority::generate("internal", &validity).unwrap();
        let held = assess(&issued, &key, &required, Some(other.certificate())).unwrap();
        assert_eq!(held.signer, Signer::Other);

        let mut more = required.clone();
        more.add("10.0.0.77").unwrap();
        assert_eq!(
            assess(&own, &key, &more, None).unwrap().sans,
            SanMatch::Missing(vec!["10.0.0.77".into()])
        );
        let fewer = crate::tls::sans::Sans::new();
        assert_eq!(
            assess(&own, &key, &fewer, None).unwrap().sans,
            SanMatch::Covers
        );
        let stranger = PrivateKey::generate().unwrap();
        assert!(
            !assess(&own, &stranger, &required, None)
                .unwrap()
                .matches_key
        );
        assert!(assess("junk", &key, &required, None).is_err());
    }

    #[test]
    fn requests_are_assessed() {
        let key = PrivateKey::generate().unwrap();
        let csr = crate::tls::issue::certificate_request(&key, &identity()).unwrap();
        let required = identity().sans;
        let request = assess_request(&csr, &key, &required).unwrap();
        assert_eq!(
            request,
            Request {
                sans: SanMatch::Exact,
                matches_key: true
            }
        );
        let mut more = required.clone();
        more.add("198.51.100.1").unwrap();
        assert_eq!(
            assess_request(&csr, &key, &more).unwrap().sans,
            SanMatch::Missing(vec!["198.51.100.1".into()])
        );
        let mut fewer = Sans::new();
        fewer.add("db-0").unwrap();
        assert_eq!(
            assess_request(&csr, &key, &fewer).unwrap().sans,
            SanMatch::Covers
        );
        assert!(
            !assess_request(&csr, &PrivateKey::generate().unwrap(), &required)
                .unwrap()
                .matches_key
        );
        assert!(assess_request(&own_cert(&key), &key, &required).is_err());
    }

    fn own_cert(key: &PrivateKey) -> String {
        self_signed(
            key,
            &identity(),
            &crate::tls::issue::Validity::starting(now(), DAY),
        )
        .unwrap()
    }

    #[test]
    fn same_pem_compares_der() {
        let key = PrivateKey::generate().unwrap();
        let a = own_cert(&key);
        let b = own_cert(&key);
        assert!(same_pem(&a, &a.replace('\n', "\r\n")));
        assert!(same_pem(&a, a.trim()));
        assert!(!same_pem(&a, &b));
        assert!(!same_pem("", ""));
        assert!(!same_pem("junk", "junk"));
    }
}
