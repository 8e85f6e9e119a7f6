//! Making certificates and certificate signing requests (with rcgen).
//!
//! * [`self_signed`]: the unit's own certificate before any CA is at hand.
//! * [`CertificateAuthority`]: a CA kept as PEM (the leader's internal CA
//!   in an application secret, for replication, Patroni's REST API and
//!   etcd, and for the units' own client-facing certificates) and the
//!   certificates it issues for a unit's key.
//! * [`certificate_request`]: the CSR a unit sends over `tls-certificates`,
//!   made as the v4 library (`charmlibs-interfaces-tls-certificates`)
//!   makes it: subject `CN=<common name>` plus an `x500UniqueIdentifier`
//!   holding a random UUID (so that a renewal is never byte-identical to
//!   the request it replaces), the SANs in an extension request, nothing
//!   else; the provider copies subject and SANs into the certificate.
//!
//! Every certificate gets a random 127-bit serial: rcgen's default derives
//! it from the public key, so a unit re-issuing for the same key (new SANs)
//! would repeat issuer and serial, which clients may refuse.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::key::PrivateKey;
use super::sans::Identity;
use crate::secret::fill_random;

/// The `x500UniqueIdentifier` attribute type (2.5.4.45).
const UNIQUE_IDENTIFIER: [u64; 4] = [2, 5, 4, 45];

/// How far before "now" a new certificate starts, for clients whose clocks
/// lag the unit's.
pub const BACKDATE: Duration = Duration::from_secs(3600);

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From `now - BACKDATE` until `now + lifetime`.
    pub fn starting(now: OffsetDateTime, lifetime: Duration) -> Self {
        Validity {
            not_before: now - BACKDATE,
            not_after: now + lifetime,
        }
    }

    /// Whether `now` lies within.
    pub fn contains(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes).context("reading the random source")?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x40; // and always 16 bytes long
    Ok(SerialNumber::from_slice(&bytes))
}

fn random_uuid() -> Result<String> {
    let mut b = [0u8; 16];
    fill_random(&mut b).context("reading the random source")?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

fn san_list(identity: &Identity) -> Result<Vec<SanType>> {
    let mut sans = Vec::new();
    for name in identity.sans.dns() {
        let name = name
            .try_into()
            .with_context(|| format!("{name:?} cannot be a DNS name"))?;
        sans.push(SanType::DnsName(name));
    }
    sans.extend(identity.sans.ips().map(SanType::IpAddress));
    Ok(sans)
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if !common_name.is_empty() {
        dn.push(DnType::CommonName, common_name);
    }
    dn
}

/// A server certificate's parameters: usable by PostgreSQL, Patroni and
/// etcd, as a server and as a client (etcd peers are both).
fn leaf_params(identity: &Identity, validity: &Validity) -> Result<CertificateParams> {
    if identity.sans.is_empty() {
        bail!("a certificate needs at least one subject alternative name");
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&identity.common_name);
    params.subject_alt_names = san_list(identity)?;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(random_serial()?);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// A certificate for `key`, signed by itself (PEM).
pub fn self_signed(key: &PrivateKey, identity: &Identity, validity: &Validity) -> Result<String> {
    let mut params = leaf_params(identity, validity)?;
    params.use_authority_key_identifier_extension = false;
    let cert = params
        .self_signed(key.pair())
        .context("signing the unit's own certificate")?;
    Ok(cert.pem())
}

/// The certificate signing request for `key` and `identity` (PEM), as the
/// v4 library makes it (see the module documentation).
pub fn certificate_request(key: &PrivateKey, identity: &Identity) -> Result<String> {
    if identity.sans.is_empty() {
        bail!("a certificate request needs at least one subject alternative name");
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&identity.common_name);
    params.distinguished_name.push(
        DnType::CustomDnType(UNIQUE_IDENTIFIER.to_vec()),
        DnValue::Utf8String(random_uuid()?),
    );
    params.subject_alt_names = san_list(identity)?;
    let csr = params
        .serialize_request(key.pair())
        .context("signing the certificate request")?;
    csr.pem().context("encoding the certificate request")
}

/// A certificate authority: its certificate (PEM, public) and its key.
#[derive(Debug)]
pub struct CertificateAuthority {
    certificate: String,
    key: PrivateKey,
}

impl CertificateAuthority {
    /// A new CA named `common_name`, with a fresh key. It issues end-entity
    /// certificates only (path length 0).
    pub fn generate(common_name: &str, validity: &Validity) -> Result<Self> {
        let key = PrivateKey::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(key.pair())
            .with_context(|| format!("signing the CA certificate {common_name:?}"))?;
        Ok(CertificateAuthority {
            certificate: cert.pem(),
            key,
        })
    }

    /// A CA kept earlier: its certificate must be a CA certificate for `key`.
    pub fn from_pem(certificate: &str, key: PrivateKey) -> Result<Self> {
        let der = super::verify::pem_certificates(certificate)
            .ok()
            .and_then(|mut blocks| (blocks.len() == 1).then(|| blocks.remove(0)))
            .context("the CA certificate is not exactly one PEM certificate")?;
        let (_, cert) =
            X509Certificate::from_der(&der).context("the CA certificate is unreadable")?;
        if !cert.is_ca() {
            bail!("the CA certificate is not a CA certificate (basicConstraints CA:FALSE)");
        }
        if !super::verify::same_public_key(cert.public_key().raw, &key.public_key_der()) {
            bail!("the CA certificate does not belong to the CA key kept with it");
        }
        Ok(CertificateAuthority {
            certificate: certificate.to_string(),
            key,
        })
    }

    /// The CA certificate (PEM): what clients and peers trust.
    pub fn certificate(&self) -> &str {
        &self.certificate
    }

    /// The CA's key, for keeping it (in the application secret).
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// A certificate for `subject_key` and `identity`, signed by this CA (PEM).
    pub fn issue(
        &self,
        subject_key: &PrivateKey,
        identity: &Identity,
        validity: &Validity,
    ) -> Result<String> {
        let params = leaf_params(identity, validity)?;
        let issuer = Issuer::from_ca_cert_pem(&self.certificate, self.key.pair())
            .context("reading the CA certificate")?;
        let cert = params
            .signed_by(subject_key.pair(), &issuer)
            .context("signing a certificate with the CA")?;
        Ok(cert.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::sans::{required_sans, SanInputs};
    use x509_parser::extensions::GeneralName;

    fn identity() -> Identity {
        required_sans(&SanInputs {
            hostname: "db-0",
            fqdn: Some("db-0.maas.example"),
            addresses: &["10.0.0.5", "2001:db8::5"],
        })
        .0
    }

    fn parse(pem: &str) -> Vec<u8> {
        super::super::verify::pem_certificates(pem)
            .unwrap()
            .remove(0)
    }

    fn sans_of(der: &[u8]) -> Vec<String> {
        let (_, cert) = X509Certificate::from_der(der).unwrap();
        let ext = cert.subject_alternative_name().unwrap().unwrap();
        ext.value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::DNSName(dns) => dns.to_string(),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()
                }
                GeneralName::IPAddress(b) => {
                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()
                }
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect()
    }

    #[test]
    fn self_signed_carries_the_identity_and_dates() {
        let key = PrivateKey::generate().unwrap();
        let now = OffsetDateTime::now_utc();
        let validity = Validity::starting(now, Duration::from_secs(86400));
        let pem = self_signed(&key, &identity(), &validity).unwrap();
        let der = parse(&pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            cert.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "db-0.maas.example"
        );
        assert_eq!(cert.subject(), cert.issuer());
        assert!(!cert.is_ca());
        assert_eq!(
            cert.validity().not_before.timestamp(),
            (now - BACKDATE).unix_timestamp()
        );
        assert_eq!(
            cert.validity().not_after.timestamp(),
            (now + Duration::from_secs(86400)).unix_timestamp()
        );
        assert_eq!(
            sans_of(&der),
            ["db-0", "db-0.maas.example", "10.0.0.5", "2001:db8::5"]
        );
        assert!(super::super::verify::same_public_key(
            cert.public_key().raw,
            &key.public_key_der()
        ));
    }

    #[test]
    fn serials_are_random_even_for_one_key() {
        let key = PrivateKey::generate().unwrap();
        let validity = Validity::starting(OffsetDateTime::now_utc(), Duration::from_secs(60));
        let serial = |pem: String| {
            let der = parse(&pem);
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            cert.raw_serial().to_vec()
        };
        let a = serial(self_signed(&key, &identity(), &validity).unwrap());
        let b = serial(self_signed(&key, &identity(), &validity).unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn a_request_is_what_the_v4_library_sends() {
        let key = PrivateKey::generate().unwrap();
        let pem = certificate_request(&key, &identity()).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
        let block = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1;
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
                .unwrap();
        let info = &csr.certification_request_info;
        let attributes: Vec<(String, String)> = info
            .subject
            .iter_attributes()
            .map(|a| {
                (
                    a.attr_type().to_id_string(),
                    a.as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(attributes.len(), 2, "{attributes:?}");
        assert_eq!(
            attributes[0],
            ("2.5.4.3".into(), "db-0.maas.example".into())
        );
        assert_eq!(attributes[1].0, "2.5.4.45");
        let uuid = &attributes[1].1;
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4", "{uuid}");
        assert!(super::super::verify::same_public_key(
            info.subject_pki.raw,
            &key.public_key_der()
        ));
        // Two requests for the same key and names still differ.
        assert_ne!(pem, certificate_request(&key, &identity()).unwrap());
    }

    #[test]
    fn nothing_without_a_san() {
        let key = PrivateKey::generate().unwrap();
        let empty = Identity {
            common_name: "x".into(),
            sans: Default::default(),
        };
        let validity = Validity::starting(OffsetDateTime::now_utc(), Duration::from_secs(60));
        assert!(certificate_request(&key, &empty).is_err());
        assert!(self_signed(&key, &empty, &validity).is_err());
    }

    #[test]
    fn a_ca_issues_for_a_units_key_and_reloads_from_pem() {
        let now = OffsetDateTime::now_utc();
        let ca = CertificateAuthority::generate(
            "postgresql internal CA",
            &Validity::starting(now, Duration::from_secs(10 * 365 * 86400)),
        )
        .unwrap();
        let kept = ca.key().to_pem();
        let ca =
            CertificateAuthority::from_pem(ca.certificate(), PrivateKey::from_pem(&kept).unwrap())
                .unwrap();
        let unit_key = PrivateKey::generate().unwrap();
        let validity = Validity::starting(now, Duration::from_secs(86400));
        let pem = ca.issue(&unit_key, &identity(), &validity).unwrap();
        let der = parse(&pem);
        let ca_der = parse(ca.certificate());
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        assert!(ca_cert.is_ca());
        assert!(super::super::verify::same_public_key(
            cert.public_key().raw,
            &unit_key.public_key_der()
        ));
    }

    #[test]
    fn a_ca_refuses_a_foreign_key_or_a_leaf() {
        let validity = Validity::starting(OffsetDateTime::now_utc(), Duration::from_secs(600));
        let ca = CertificateAuthority::generate("ca", &validity).unwrap();
        let err = CertificateAuthority::from_pem(ca.certificate(), PrivateKey::generate().unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
        let key = PrivateKey::generate().unwrap();
        let leaf = self_signed(&key, &identity(), &validity).unwrap();
        let err = CertificateAuthority::from_pem(&leaf, key).unwrap_err();
        assert!(err.to_string().contains("not a CA certificate"), "{err}");
        let err =
            CertificateAuthority::from_pem("junk", PrivateKey::generate().unwrap()).unwrap_err();
        assert!(err.to_string().contains("not exactly one PEM"), "{err}");
    }
}
