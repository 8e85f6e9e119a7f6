//! IP addresses and CIDR blocks for `pg_hba.conf` and `allowed-subnets`.
//!
//! Addresses come from two places, trusted differently:
//!
//! * the operator's `admin-addresses` option: any valid block, even
//!   `0.0.0.0/0`, parsed with [`Cidr::parse`];
//! * remote units' relation data (`egress-subnets`, `ingress-address`,
//!   `private-address`): untrusted, parsed with [`parse_remote_subnets`] and
//!   [`parse_remote_address`], which also limit the input's size and refuse
//!   blocks that are too broad (see [`check_remote_breadth`]).
//!
//! A [`Cidr`] is always in normal form: the network address with the host
//! bits cleared, the prefix length always written, IPv6 in the RFC 5952 form
//! the standard library prints. `10.1.2.3/8` becomes `10.0.0.0/8`, `10.0.0.1`
//! becomes `10.0.0.1/32`, `2001:DB8::1` becomes `2001:db8::1/128`. Its text
//! is built from parsed numbers, so it can never be a `pg_hba.conf` keyword
//! (`all`, `samehost`, …) or a host name.
//!
//! Only `std::net` is used: IPv4 addresses with leading zeros (`010.0.0.1`,
//! ambiguous octal) and IPv6 zone ids (`fe80::1%eth0`) are refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::excerpt;

/// An IPv4 or IPv6 network block in normal form.
///
/// Ordering puts every IPv4 block before every IPv6 block, then sorts by
/// network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Longest text accepted as one address or block. The longest valid one,
/// `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128`, has 49 characters.
const MAX_CIDR_TEXT_BYTES: usize = 64;

impl Cidr {
    /// The block of `address/prefix_len` with the host bits cleared.
    pub fn new(address: IpAddr, prefix_len: u8) -> Result<Cidr, CidrError> {
        let max = max_prefix_len(address);
        if prefix_len > max {
            return Err(CidrError::Invalid {
                input: excerpt(&format!("{address}/{prefix_len}")),
                reason: format!("the prefix length must be at most {max}"),
            });
        }
        Ok(Cidr::masked(address, prefix_len))
    }

    /// The block holding only `address` (`/32` or `/128`).
    pub fn host(address: IpAddr) -> Cidr {
        Cidr {
            network: address,
            prefix_len: max_prefix_len(address),
        }
    }

    /// Parses `address` or `address/prefix_len`, IPv4 or IPv6, and clears
    /// the host bits. Surrounding whitespace is not accepted.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let invalid = |reason: &str| CidrError::Invalid {
            input: excerpt(text),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if text.len() > MAX_CIDR_TEXT_BYTES {
            return Err(invalid("it is too long to be an address"));
        }
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = IpAddr::from_str(address_text)
            .map_err(|_| invalid("the part before any '/' is not an IPv4 or IPv6 address"))?;
        let max = max_prefix_len(address);
        let prefix_len = match prefix_text {
            None => max,
            Some(prefix_text) => parse_prefix_len(prefix_text, max).ok_or_else(|| {
                invalid(&format!(
                    "the prefix length after '/' must be a whole number from 0 to {max}"
                ))
            })?,
        };
        Ok(Cidr::masked(address, prefix_len))
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The number of leading bits that are fixed.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `address` lies inside this block.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Cidr::masked(address, self.prefix_len).network == self.network
            }
            _ => false,
        }
    }

    fn masked(address: IpAddr, prefix_len: u8) -> Cidr {
        let network = match address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(prefix_len))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(prefix_len))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        };
        Cidr {
            network,
            prefix_len,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(text)
    }
}

fn max_prefix_len(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Digits only (no sign, no leading zero except `0` itself), at most `max`.
fn parse_prefix_len(text: &str, max: u8) -> Option<u8> {
    let digits_only =
        !text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse::<u8>().ok().filter(|&len| len <= max)
}

/// Most bytes accepted in one unit's `egress-subnets` value.
pub const MAX_SUBNET_LIST_BYTES: usize = 4096;
/// Most entries accepted in one unit's `egress-subnets` value.
pub const MAX_SUBNETS_PER_UNIT: usize = 64;
/// Shortest IPv4 prefix accepted from relation data.
pub const MIN_REMOTE_PREFIX_LEN_V4: u8 = 8;
/// Shortest IPv6 prefix accepted from relation data.
pub const MIN_REMOTE_PREFIX_LEN_V6: u8 = 32;
/// Shortest prefix accepted from relation data for a block inside the
/// IPv4-mapped IPv6 range `::ffff:0:0/96`: the IPv4 rule shifted by 96 bits.
const MIN_REMOTE_PREFIX_LEN_V4_MAPPED: u8 = 96 + MIN_REMOTE_PREFIX_LEN_V4;

/// One entry of a remote subnet list: its normal form for `pg_hba.conf`, and
/// the consumer's own spelling for `allowed-subnets`.
///
/// Consumers check readiness by testing, *as strings*, that each of their
/// `egress-subnets` entries appears in our `allowed-subnets` (§2.2). If a
/// consumer writes `10.1.2.3/8` or `2001:DB8::/32`, only that spelling passes
/// its check, so we publish it next to the normal form. The spelling is safe
/// to echo: it parsed as an address, so it holds only hex digits, `.`, `:`
/// and `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCidr {
    pub written: String,
    pub cidr: Cidr,
}

/// Parses a remote unit's `egress-subnets`: CIDRs or addresses separated by
/// commas and/or ASCII whitespace. Empty entries are skipped, so an empty or
/// blank value gives an empty list.
///
/// Refuses values over [`MAX_SUBNET_LIST_BYTES`] bytes or with more than
/// [`MAX_SUBNETS_PER_UNIT`] entries, any invalid entry, and any entry too
/// broad for [`check_remote_breadth`]. Entries are returned in input order,
/// duplicates included.
pub fn parse_remote_subnets(text: &str) -> Result<Vec<ListedCidr>, CidrError> {
    if text.len() > MAX_SUBNET_LIST_BYTES {
        return Err(CidrError::ListTooLong { bytes: text.len() });
    }
    let entries: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|entry| !entry.is_empty())
        .collect();
    if entries.len() > MAX_SUBNETS_PER_UNIT {
        return Err(CidrError::TooManyEntries {
            count: entries.len(),
        });
    }
    entries
        .into_iter()
        .map(|entry| {
            let cidr = check_remote_breadth(Cidr::parse(entry)?)?;
            Ok(ListedCidr {
                written: entry.to_string(),
                cidr,
            })
        })
        .collect()
}

/// Parses a remote unit's `ingress-address` or `private-address`: one bare
/// IPv4 or IPv6 address (surrounding ASCII whitespace ignored), returned as
/// its `/32` or `/128` block. Host names and blocks are refused.
pub fn parse_remote_address(text: &str) -> Result<Cidr, CidrError> {
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.contains('/') {
        return Err(CidrError::Invalid {
            input: excerpt(text),
            reason: "an address is expected here, not a block".to_string(),
        });
    }
    Cidr::parse(trimmed)
}

/// Refuses a block from relation data that is broader than /8 (IPv4), /32
/// (IPv6) or /104 inside the IPv4-mapped range `::ffff:0:0/96`.
///
/// Why: a remote application only needs rules for the addresses its own
/// units connect from. A consumer that claims `0.0.0.0/0` or `::/0` (by
/// mistake, or because it is hostile or compromised) would otherwise turn
/// its `pg_hba.conf` rules into "from anywhere", leaving the password as the
/// only defence. /8 and /32 are wider than any real egress range (a k8s
/// cluster's node network, a NAT pool, an IPv6 site) while refusing the
/// "everything" blocks. The IPv4-mapped range gets the IPv4 rule so
/// `::ffff:0:0/96` cannot smuggle in all of IPv4. An operator who really
/// wants broad access says so in `admin-addresses`, which has no such limit.
pub fn check_remote_breadth(cidr: Cidr) -> Result<Cidr, CidrError> {
    let min_prefix_len = match cidr.network {
        IpAddr::V4(_) => MIN_REMOTE_PREFIX_LEN_V4,
        IpAddr::V6(network) => {
            let mapped_range_start = IpAddr::V6(Ipv4Addr::UNSPECIFIED.to_ipv6_mapped());
            if network.to_ipv4_mapped().is_some() || cidr.contains(mapped_range_start) {
                MIN_REMOTE_PREFIX_LEN_V4_MAPPED
            } else {
                MIN_REMOTE_PREFIX_LEN_V6
            }
        }
    };
    if cidr.prefix_len < min_prefix_len {
        return Err(CidrError::TooBroad {
            cidr,
            min_prefix_len,
        });
    }
    Ok(cidr)
}

/// How many addresses the blocks of one relation cover together, per
/// family, each address counted once however many blocks hold it. A block
/// inside the IPv4-mapped range `::ffff:0:0/96` counts as the IPv4
/// addresses it stands for, as [`check_remote_breadth`] treats it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coverage {
    pub ipv4: u128,
    pub ipv6: u128,
}

/// The [`Coverage`] of `blocks`. CIDR blocks either nest or are disjoint,
/// so after sorting by start (widest first), a block that starts before the
/// end of the last counted one lies inside it.
pub fn coverage<'a>(blocks: impl IntoIterator<Item = &'a Cidr>) -> Coverage {
    // (is IPv6, first address, number of host bits)
    let mut spans: Vec<(bool, u128, u32)> = blocks
        .into_iter()
        .map(|cidr| match cidr.network {
            IpAddr::V4(v4) => (
                false,
                u128::from(u32::from(v4)),
                32 - u32::from(cidr.prefix_len),
            ),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if cidr.prefix_len >= 96 => (
                    false,
                    u128::from(u32::from(v4)),
                    128 - u32::from(cidr.prefix_len),
                ),
                _ => (true, u128::from(v6), 128 - u32::from(cidr.prefix_len)),
            },
        })
        .collect();
    spans.sort_by_key(|&(v6, start, host_bits)| (v6, start, std::cmp::Reverse(host_bits)));
    let mut total = Coverage::default();
    // The end (exclusive) of the last counted block of each family.
    let mut end: [Option<u128>; 2] = [None, None];
    for (v6, start, host_bits) in spans {
        let family = usize::from(v6);
        if end[family].is_some_and(|end| start < end) {
            continue;
        }
        let size = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
        end[family] = Some(start.saturating_add(size));
        let sum = if v6 { &mut total.ipv6 } else { &mut total.ipv4 };
        *sum = sum.saturating_add(size);
    }
    total
}

/// The most address space one relation may be granted, per family, as the
/// prefix length of a block of that size: `ipv4_prefix_len: 16` allows at
/// most the 65,536 addresses of one /16, counted over all the relation's
/// blocks together (the config options `relation-ipv4-breadth` and
/// `relation-ipv6-breadth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLimits {
    pub ipv4_prefix_len: u8,
    pub ipv6_prefix_len: u8,
}

impl Default for AddressLimits {
    fn default() -> Self {
        AddressLimits {
            ipv4_prefix_len: 16,
            ipv6_prefix_len: 48,
        }
    }
}

impl AddressLimits {
    /// The widest limits accepted: one block of the broadest size relation
    /// data may claim at all.
    pub const WIDEST_IPV4: u8 = MIN_REMOTE_PREFIX_LEN_V4;
    pub const WIDEST_IPV6: u8 = MIN_REMOTE_PREFIX_LEN_V6;

    pub fn max_ipv4(&self) -> u128 {
        1u128 << (32 - u32::from(self.ipv4_prefix_len.min(32)))
    }

    pub fn max_ipv6(&self) -> u128 {
        1u128 << (128 - u32::from(self.ipv6_prefix_len.clamp(1, 128)))
    }
}

/// Why an address, block or subnet list was refused. The messages are meant
/// for the operator and quote remote input only as an [`excerpt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// Not an address or block; `input` is already an excerpt.
    Invalid { input: String, reason: String },
    /// A valid block that relation data may not claim.
    TooBroad { cidr: Cidr, min_prefix_len: u8 },
    /// The list is longer than [`MAX_SUBNET_LIST_BYTES`].
    ListTooLong { bytes: usize },
    /// The list has more than [`MAX_SUBNETS_PER_UNIT`] entries.
    TooManyEntries { count: usize },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::Invalid { input, reason } => {
                write!(f, "{input} is not an IP address or CIDR block: {reason}")
            }
            CidrError::TooBroad {
                cidr,
                min_prefix_len,
            } => write!(
                f,
                "{cidr} is too broad to accept from relation data \
                 (the prefix must be /{min_prefix_len} or longer; \
                 broad access belongs in the admin-addresses option)"
            ),
            CidrError::ListTooLong { bytes } => write!(
                f,
                "the subnet list is {bytes} bytes long, more than the \
                 {MAX_SUBNET_LIST_BYTES} accepted"
            ),
            CidrError::TooManyEntries { count } => write!(
                f,
                "the subnet list has {count} entries, more than the \
                 {MAX_SUBNETS_PER_UNIT} accepted"
            ),
        }
    }
}

impl std::error::Error for CidrError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises_addresses_and_blocks() {
        let cases = [
            ("10.0.0.1", "10.0.0.1/32"),
            ("10.0.0.1/32", "10.0.0.1/32"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("10.1.2.3/0", "0.0.0.0/0"),
            ("192.168.7.200/25", "192.168.7.128/25"),
            ("255.255.255.255/31", "255.255.255.254/31"),
            ("::1", "::1/128"),
            ("::", "::/128"),
            ("2001:DB8::1", "2001:db8::1/128"),
            ("2001:db8:0:0:0:0:0:1/64", "2001:db8::/64"),
            ("2001:db8::ffff/127", "2001:db8::fffe/127"),
            ("fe80::1/10", "fe80::/10"),
            ("::ffff:10.1.2.3/104", "::ffff:10.0.0.0/104"),
            ("::/0", "::/0"),
        ];
        for (input, expected) in cases {
            let cidr = Cidr::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(cidr.to_string(), expected, "input {input}");
            assert_eq!(Cidr::parse(expected).unwrap(), cidr, "{expected} is stable");
        }
    }

    #[test]
    fn refuses_invalid_text() {
        let cases = [
            ("", "empty"),
            ("10.0.0", "not an IPv4 or IPv6"),
            ("10.0.0.256", "not an IPv4 or IPv6"),
            ("010.0.0.1", "not an IPv4 or IPv6"),
            ("10.0.0.1/33", "from 0 to 32"),
            ("::1/129", "from 0 to 128"),
            ("10.0.0.1/", "from 0 to 32"),
            ("10.0.0.1/+8", "from 0 to 32"),
            ("10.0.0.1/-1", "from 0 to 32"),
            ("10.0.0.1/08", "from 0 to 32"),
            ("10.0.0.1/8/8", "from 0 to 32"),
            ("10.0.0.1/ 8", "from 0 to 32"),
            (" 10.0.0.1", "not an IPv4 or IPv6"),
            ("10.0.0.1\n", "not an IPv4 or IPv6"),
            ("fe80::1%eth0", "not an IPv4 or IPv6"),
            ("[::1]", "not an IPv4 or IPv6"),
            ("all", "not an IPv4 or IPv6"),
            ("samenet", "not an IPv4 or IPv6"),
            ("db.example.com", "not an IPv4 or IPv6"),
            ("10.0.0.1 reject", "not an IPv4 or IPv6"),
            ("１０.0.0.1", "not an IPv4 or IPv6"),
            ("\"10.0.0.1\"", "not an IPv4 or IPv6"),
            (&"1".repeat(65), "too long"),
        ];
        for (input, reason) in cases {
            let error = Cidr::parse(input).expect_err(input);
            let message = error.to_string();
            assert!(message.contains(reason), "{input:?}: {message}");
            assert!(!message.contains('\n'), "{input:?}: {message}");
        }
    }

    #[test]
    fn new_masks_and_checks_the_prefix() {
        let address: IpAddr = "10.9.8.7".parse().unwrap();
        assert_eq!(Cidr::new(address, 16).unwrap().to_string(), "10.9.0.0/16");
        assert!(Cidr::new(address, 33).is_err());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(Cidr::new(v6, 128).unwrap(), Cidr::host(v6));
        assert!(Cidr::new(v6, 129).is_err());
    }

    #[test]
    fn contains_respects_the_prefix_and_the_family() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains("10.1.255.3".parse().unwrap()));
        assert!(!block.contains("10.2.0.1".parse().unwrap()));
        assert!(!block.contains("::ffff:10.1.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn ipv4_sorts_before_ipv6_then_by_address() {
        let mut blocks: Vec<Cidr> = ["::1", "10.0.0.2", "10.0.0.0/8", "9.0.0.1", "10.0.0.0/16"]
            .iter()
            .map(|text| Cidr::parse(text).unwrap())
            .collect();
        blocks.sort();
        let sorted: Vec<String> = blocks.iter().map(Cidr::to_string).collect();
        assert_eq!(
            sorted,
            [
                "9.0.0.1/32",
                "10.0.0.0/8",
                "10.0.0.0/16",
                "10.0.0.2/32",
                "::1/128"
            ]
        );
    }

    #[test]
    fn parses_remote_subnet_lists() {
        let cases: [(&str, &[(&str, &str)]); 7] = [
            ("", &[]),
            (" , ,", &[]),
            ("10.5.0.17/32", &[("10.5.0.17/32", "10.5.0.17/32")]),
            (
                "10.5.0.17/32,10.6.0.0/16",
                &[
                    ("10.5.0.17/32", "10.5.0.17/32"),
                    ("10.6.0.0/16", "10.6.0.0/16"),
                ],
            ),
            (
                "10.5.0.17, 10.6.1.1/16\n2001:DB8::/48",
                &[
                    ("10.5.0.17", "10.5.0.17/32"),
                    ("10.6.1.1/16", "10.6.0.0/16"),
                    ("2001:DB8::/48", "2001:db8::/48"),
                ],
            ),
            (
                "10.0.0.1/32,10.0.0.1/32",
                &[
                    ("10.0.0.1/32", "10.0.0.1/32"),
                    ("10.0.0.1/32", "10.0.0.1/32"),
                ],
            ),
            (
                "::ffff:10.0.0.0/104",
                &[("::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104")],
            ),
        ];
        for (input, expected) in cases {
            let listed = parse_remote_subnets(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            let got: Vec<(String, String)> = listed
                .iter()
                .map(|entry| (entry.written.clone(), entry.cidr.to_string()))
                .collect();
            let expected: Vec<(String, String)> = expected
                .iter()
                .map(|(written, cidr)| (written.to_string(), cidr.to_string()))
                .collect();
            assert_eq!(got, expected, "input {input:?}");
        }
    }

    #[test]
    fn refuses_hostile_remote_subnet_lists() {
        let many = vec!["10.0.0.1"; MAX_SUBNETS_PER_UNIT + 1].join(",");
        let huge = "10.0.0.1,".repeat(1000);
        let cases = [
            ("0.0.0.0/0", "too broad"),
            ("10.0.0.0/7", "too broad"),
            ("::/0", "too broad"),
            ("2001:db8::/31", "too broad"),
            ("::ffff:0:0/96", "too broad"),
            ("::ffff:10.0.0.0/103", "too broad"),
            ("::/32", "too broad"),
            ("10.0.0.1,0.0.0.0/0", "too broad"),
            ("10.0.0.1;DROP TABLE x", "not an IP address"),
            ("10.0.0.1 all", "not an IP address"),
            ("10.0.0.1\"", "not an IP address"),
            ("10.0.0.1\u{a0}10.0.0.2", "not an IP address"),
            (&many, "65 entries"),
            (&huge, "9000 bytes"),
        ];
        for (input, reason) in cases {
            let error = parse_remote_subnets(input).expect_err(input);
            let message = error.to_string();
            assert!(message.contains(reason), "{input:?}: {message}");
            assert!(
                message.len() < 200,
                "{input:?}: message too long: {message}"
            );
        }
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let at_limit = vec!["10.0.0.1"; MAX_SUBNETS_PER_UNIT].join(",");
        assert_eq!(
            parse_remote_subnets(&at_limit).unwrap().len(),
            MAX_SUBNETS_PER_UNIT
        );
        assert!(parse_remote_subnets("10.0.0.0/8").is_ok());
        assert!(parse_remote_subnets("2001:db8::/32").is_ok());
    }

    #[test]
    fn coverage_counts_each_address_once_per_family() {
        let cover = |blocks: &[&str]| {
            let parsed: Vec<Cidr> = blocks.iter().map(|b| Cidr::parse(b).unwrap()).collect();
            let c = coverage(&parsed);
            (c.ipv4, c.ipv6)
        };
        let cases: &[(&[&str], (u128, u128))] = &[
            (&[], (0, 0)),
            (&["10.0.0.1"], (1, 0)),
            (&["10.0.0.1", "10.0.0.1"], (1, 0)),
            // Nested blocks count once, whatever the order.
            (&["10.0.0.7", "10.0.0.0/24", "10.0.0.0/25"], (256, 0)),
            (&["10.0.0.0/24", "10.0.1.0/24"], (512, 0)),
            (&["10.0.0.0/8", "11.0.0.0/8"], (1 << 25, 0)),
            (&["2001:db8::1", "2001:db8::/64"], (0, 1 << 64)),
            // IPv4-mapped blocks are IPv4 space, and overlap with it.
            (&["::ffff:10.0.0.0/104", "10.0.0.0/8"], (1 << 24, 0)),
            (&["10.0.0.0/16", "2001:db8::/48"], (1 << 16, 1 << 80)),
        ];
        for (blocks, want) in cases {
            assert_eq!(cover(blocks), *want, "{blocks:?}");
        }
        // Many wide blocks add up: 64 distinct /8s are a quarter of IPv4.
        let wide: Vec<Cidr> = (1..=64u8)
            .map(|n| Cidr::new(IpAddr::V4(Ipv4Addr::new(n, 0, 0, 0)), 8).unwrap())
            .collect();
        assert_eq!(coverage(&wide).ipv4, 1 << 30);
    }

    #[test]
    fn address_limits_are_block_sizes() {
        let limits = AddressLimits::default();
        assert_eq!((limits.max_ipv4(), limits.max_ipv6()), (1 << 16, 1 << 80));
        let widest = AddressLimits {
            ipv4_prefix_len: AddressLimits::WIDEST_IPV4,
            ipv6_prefix_len: AddressLimits::WIDEST_IPV6,
        };
        assert_eq!((widest.max_ipv4(), widest.max_ipv6()), (1 << 24, 1 << 96));
        let narrowest = AddressLimits {
            ipv4_prefix_len: 32,
            ipv6_prefix_len: 128,
        };
        assert_eq!((narrowest.max_ipv4(), narrowest.max_ipv6()), (1, 1));
    }

    #[test]
    fn parses_remote_addresses_as_host_blocks() {
        let cases = [
            ("10.5.0.17", Ok("10.5.0.17/32")),
            (" 10.5.0.17\n", Ok("10.5.0.17/32")),
            ("2001:db8::17", Ok("2001:db8::17/128")),
            ("10.5.0.0/16", Err("not a block")),
            ("node1.maas", Err("not an IPv4 or IPv6")),
            ("", Err("empty")),
        ];
        for (input, expected) in cases {
            match (parse_remote_address(input), expected) {
                (Ok(cidr), Ok(text)) => assert_eq!(cidr.to_string(), text),
                (Err(error), Err(reason)) => {
                    assert!(error.to_string().contains(reason), "{input:?}: {error}")
                }
                (got, _) => panic!("{input:?}: unexpected {got:?}"),
            }
        }
    }
}
