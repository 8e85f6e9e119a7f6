//! Which names and addresses a unit's certificate must carry (pure).
//!
//! Clients verify with `sslmode=verify-full`: the host they connect to must
//! be one of the certificate's subject alternative names. They connect to
//! what Juju gave them: the ingress address of their relation (for a
//! consumer in another model, the unit's public address), or a name that
//! resolves to the unit (its host name or FQDN). [`required_sans`] turns
//! those inputs into one normalised, sorted set; what cannot be a SAN is
//! returned beside it with the reason, never silently dropped.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use rustls_pki_types::DnsName;

/// A certificate's subject alternative names: DNS names (lowercase, no
/// trailing dot) and IP addresses (IPv4-mapped IPv6 as IPv4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sans {
    dns: BTreeSet<String>,
    ips: BTreeSet<IpAddr>,
}

/// Why an input cannot be a subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotASan {
    Empty,
    /// `0.0.0.0`, `::`, multicast or broadcast: no client connects there.
    UnusableAddress,
    /// Not an IP address and not a valid DNS name.
    InvalidName,
    /// A wildcard: the charm asks for exactly the names it serves.
    Wildcard,
}

impl fmt::Display for NotASan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotASan::Empty => "empty",
            NotASan::UnusableAddress => "an address no client connects to",
            NotASan::InvalidName => "neither an IP address nor a valid DNS name",
            NotASan::Wildcard => "a wildcard",
        })
    }
}

impl Sans {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `entry`, an IP address or a DNS name, normalised.
    pub fn add(&mut self, entry: &str) -> Result<(), NotASan> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(NotASan::Empty);
        }
        let bare = entry
            .strip_prefix('[')
            .and_then(|e| e.strip_suffix(']'))
            .unwrap_or(entry);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.add_ip(ip);
        }
        self.add_dns(entry)
    }

    pub fn add_ip(&mut self, ip: IpAddr) -> Result<(), NotASan> {
        let ip = ip.to_canonical();
        let unusable = ip.is_unspecified()
            || ip.is_multicast()
            || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if unusable {
            return Err(NotASan::UnusableAddress);
        }
        self.ips.insert(ip);
        Ok(())
    }

    pub fn add_dns(&mut self, name: &str) -> Result<(), NotASan> {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Err(NotASan::Empty);
        }
        if name.contains('*') {
            return Err(NotASan::Wildcard);
        }
        if name.parse::<IpAddr>().is_ok() || DnsName::try_from(name.as_str()).is_err() {
            return Err(NotASan::InvalidName);
        }
        self.dns.insert(name);
        Ok(())
    }

    pub fn dns(&self) -> impl Iterator<Item = &str> {
        self.dns.iter().map(String::as_str)
    }

    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ips.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty()
    }

    /// Every entry as text: DNS names first, then addresses, each sorted.
    pub fn entries(&self) -> Vec<String> {
        self.dns
            .iter()
            .cloned()
            .chain(self.ips.iter().map(IpAddr::to_string))
            .collect()
    }

    /// The entries of `self` that `other` lacks (exact comparison; for
    /// certificates from a provider, [`crate::tls::verify`] matches names
    /// the way TLS clients do, wildcards included).
    pub fn missing_from(&self, other: &Sans) -> Vec<String> {
        let dns = self.dns.difference(&other.dns).cloned();
        let ips = self.ips.difference(&other.ips).map(IpAddr::to_string);
        dns.chain(ips).collect()
    }
}

impl fmt::Display for Sans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entries().join(", "))
    }
}

/// What the unit is reached by, as the charm learns it from Juju and the
/// host.
#[derive(Debug, Clone, Default)]
pub struct SanInputs<'a> {
    /// The host name (`gethostname(2)`).
    pub hostname: &'a str,
    /// The host's FQDN, when it has one different from the host name.
    pub fqdn: Option<&'a str>,
    /// Every address clients are given: the ingress addresses of each
    /// client relation (`network-get <endpoint> -r <id>`, which for a
    /// cross-model relation is the unit's public address), the unit's
    /// public and private addresses. Names are accepted too (some clouds
    /// give a DNS name as the public address).
    pub addresses: &'a [&'a str],
}

/// The names and addresses a certificate for this unit must carry, and the
/// subject common name to go with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub common_name: String,
    pub sans: Sans,
}

/// The inputs that could not be SANs, each with the reason.
pub type Skipped = Vec<(String, NotASan)>;

/// The upper bound X.520 puts on a common name (`ub-common-name`); the
/// Python `cryptography` library, which providers use, refuses longer ones.
pub const COMMON_NAME_MAX: usize = 64;

/// [`Identity`] from the inputs: every address and both names as SANs; the
/// common name is the FQDN when it fits, else the host name, else the first
/// SAN that fits.
pub fn required_sans(inputs: &SanInputs<'_>) -> (Identity, Skipped) {
    let mut sans = Sans::new();
    let mut skipped = Vec::new();
    let names = std::iter::once(inputs.hostname).chain(inputs.fqdn);
    for name in names {
        if let Err(why) = sans.add_dns(name) {
            skipped.push((name.to_string(), why));
        }
    }
    for address in inputs.addresses {
        if let Err(why) = sans.add(address) {
            skipped.push((address.to_string(), why));
        }
    }
    let fits = |name: &str| !name.is_empty() && name.len() <= COMMON_NAME_MAX;
    let normalise = |name: &str| name.trim().trim_end_matches('.').to_ascii_lowercase();
    let common_name = [inputs.fqdn, Some(inputs.hostname)]
        .into_iter()
        .flatten()
        .map(normalise)
        .filter(|name| sans.dns.contains(name))
        .chain(sans.entries())
        .find(|name| fits(name))
        .unwrap_or_default();
    (Identity { common_name, sans }, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans(entries: &[&str]) -> Sans {
        let mut sans = Sans::new();
        for entry in entries {
            sans.add(entry).unwrap();
        }
        sans
    }

    #[test]
    fn entries_are_classified_and_normalised() {
        let cases: &[(&str, Result<&str, NotASan>)] = &[
            ("10.1.2.3", Ok("10.1.2.3")),
            (" 10.1.2.3 ", Ok("10.1.2.3")),
            ("2001:db8::1", Ok("2001:db8::1")),
            ("[2001:db8::1]", Ok("2001:db8::1")),
            ("::ffff:10.0.0.7", Ok("10.0.0.7")),
            ("DB-0.Example.COM.", Ok("db-0.example.com")),
            ("juju-4f2a1c-0", Ok("juju-4f2a1c-0")),
            ("", Err(NotASan::Empty)),
            ("   ", Err(NotASan::Empty)),
            ("0.0.0.0", Err(NotASan::UnusableAddress)),
            ("::", Err(NotASan::UnusableAddress)),
            ("224.0.0.1", Err(NotASan::UnusableAddress)),
            ("255.255.255.255", Err(NotASan::UnusableAddress)),
            ("*.example.com", Err(NotASan::Wildcard)),
            ("bad name", Err(NotASan::InvalidName)),
            ("under_score!", Err(NotASan::InvalidName)),
            ("a..b", Err(NotASan::InvalidName)),
            ("10.0.0.300", Err(NotASan::InvalidName)),
            ("[not-an-ip]", Err(NotASan::InvalidName)),
            ("x\ny", Err(NotASan::InvalidName)),
        ];
        for (input, want) in cases {
            let mut s = Sans::new();
            let got = s.add(input).map(|()| s.entries().join(","));
            assert_eq!(got.as_deref(), want.as_ref().map(|w| *w), "input {input:?}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert_eq!(Sans::new().add(&long), Err(NotASan::InvalidName));
    }

    #[test]
    fn duplicates_collapse_and_order_is_stable() {
        let s = sans(&[
            "b.example",
            "10.0.0.2",
            "A.example",
            "10.0.0.1",
            "b.example.",
            "10.0.0.2",
        ]);
        assert_eq!(
            s.entries(),
            ["a.example", "b.example", "10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(s.to_string(), "a.example, b.example, 10.0.0.1, 10.0.0.2");
    }

    #[test]
    fn missing_from_names_what_the_other_lacks() {
        let want = sans(&["db.example", "10.0.0.1", "2001:db8::5"]);
        let have = sans(&["db.example", "other.example", "2001:db8::5"]);
        assert_eq!(want.missing_from(&have), ["10.0.0.1"]);
        assert!(want.missing_from(&want).is_empty());
        assert_eq!(have.missing_from(&want), ["other.example"]);
    }

    #[test]
    fn required_sans_gathers_names_and_every_address() {
        let addresses = [
            "10.20.0.5",
            "198.51.100.7",
            "10.20.0.5",
            "db.public.example",
        ];
        let (identity, skipped) = required_sans(&SanInputs {
            hostname: "juju-4f2a1c-0",
            fqdn: Some("juju-4f2a1c-0.maas.example"),
            addresses: &addresses,
        });
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(identity.common_name, "juju-4f2a1c-0.maas.example");
        assert_eq!(
            identity.sans.entries(),
            [
                "db.public.example",
                "juju-4f2a1c-0",
                "juju-4f2a1c-0.maas.example",
                "10.20.0.5",
                "198.51.100.7"
            ]
        );
    }

    #[test]
    fn required_sans_reports_what_it_skips() {
        let addresses = ["", "0.0.0.0", "not a name", "10.0.0.9"];
        let (identity, skipped) = required_sans(&SanInputs {
            hostname: "db-0",
            fqdn: None,
            addresses: &addresses,
        });
        assert_eq!(identity.sans.entries(), ["db-0", "10.0.0.9"]);
        assert_eq!(identity.common_name, "db-0");
        assert_eq!(
            skipped,
            [
                (String::new(), NotASan::Empty),
                ("0.0.0.0".to_string(), NotASan::UnusableAddress),
                ("not a name".to_string(), NotASan::InvalidName),
            ]
        );
    }

    #[test]
    fn common_name_fits_the_x520_bound() {
        // An FQDN longer than 64 characters (legal for DNS) falls back to
        // the host name; it stays a SAN.
        let fqdn = format!("db-0.{}.example", ["abcdefghij"; 6].join("."));
        assert!(fqdn.len() > COMMON_NAME_MAX);
        let (identity, _) = required_sans(&SanInputs {
            hostname: "DB-0",
            fqdn: Some(&fqdn),
            addresses: &[],
        });
        assert_eq!(identity.common_name, "db-0");
        assert!(identity.sans.dns().any(|n| n == fqdn));

        // No usable name at all: the first address that fits.
        let (identity, skipped) = required_sans(&SanInputs {
            hostname: "",
            fqdn: None,
            addresses: &["10.0.0.3"],
        });
        assert_eq!(identity.common_name, "10.0.0.3");
        assert_eq!(skipped.len(), 1);
    }
}
