//! Where a client relation's remote units connect from: for each remote
//! unit still in the relation (a unit being departed is left out), its
//! `egress-subnets` if set and non-empty, otherwise its `ingress-address`,
//! otherwise its `private-address`, as a `/32` or `/128`. A unit with none
//! of these has no address (and pgsql leaves it out of `allowed-units`).
//!
//! The same for every client interface: it is what `pg_hba.conf` grants.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::cidr::{self, AddressLimits, Cidr, CidrError, ListedCidr};
use crate::RelationData;
use crate::{excerpt, RelationFacts};

/// Most remote units accepted in one relation.
pub const MAX_UNITS_PER_RELATION: usize = 1024;
/// Most distinct blocks accepted from all remote units of one relation.
pub const MAX_SUBNETS_PER_RELATION: usize = 1024;

/// The remote units still in the relation (without the departing one),
/// checked to be named like Juju units and not too many.
fn present_units(facts: &RelationFacts) -> Result<BTreeMap<String, RelationData>, AddressProblem> {
    let units: BTreeMap<String, RelationData> = facts
        .remote_units
        .iter()
        .filter(|(unit, _)| Some(unit.as_str()) != facts.departing_unit.as_deref())
        .map(|(unit, bag)| (unit.clone(), bag.clone()))
        .collect();
    if units.len() > MAX_UNITS_PER_RELATION {
        return Err(AddressProblem::TooManyUnits { count: units.len() });
    }
    if let Some(unit) = units.keys().find(|unit| !is_unit_name(unit)) {
        return Err(AddressProblem::UnitName {
            unit: excerpt(unit),
        });
    }
    Ok(units)
}

/// Where the remote units connect from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAddresses {
    /// The units still in the relation (without the departing one), by
    /// name, with their bags.
    pub present: BTreeMap<String, RelationData>,
    /// Units with address data, sorted.
    pub units: Vec<String>,
    /// Normal forms and the units' own spellings, sorted, unique.
    pub subnets: BTreeSet<String>,
    /// Normal forms, for `pg_hba.conf`.
    pub cidrs: BTreeSet<Cidr>,
}

impl RemoteAddresses {
    /// Where the remote units of `facts` connect from, refused when a unit's
    /// data is invalid, there are too many units or blocks, or the blocks
    /// together cover more addresses than `limits` allow.
    pub fn of(facts: &RelationFacts, limits: &AddressLimits) -> Result<Self, AddressProblem> {
        let units = present_units(facts)?;
        let addresses = Self::collect(&units)?;
        check_coverage(&addresses.cidrs, limits)?;
        Ok(RemoteAddresses {
            present: units,
            ..addresses
        })
    }

    fn collect(units: &BTreeMap<String, RelationData>) -> Result<Self, AddressProblem> {
        let mut addresses = RemoteAddresses {
            present: BTreeMap::new(),
            units: Vec::new(),
            subnets: BTreeSet::new(),
            cidrs: BTreeSet::new(),
        };
        for (unit, bag) in units {
            let blocks = unit_blocks(bag).map_err(|(key, error)| AddressProblem::UnitAddress {
                unit: unit.clone(),
                key,
                error,
            })?;
            if blocks.is_empty() {
                continue;
            }
            addresses.units.push(unit.clone());
            for ListedCidr { written, cidr } in blocks {
                addresses.subnets.insert(cidr.to_string());
                addresses.subnets.insert(written);
                addresses.cidrs.insert(cidr);
            }
        }
        if addresses.cidrs.len() > MAX_SUBNETS_PER_RELATION {
            return Err(AddressProblem::TooManySubnets {
                count: addresses.cidrs.len(),
            });
        }
        Ok(addresses)
    }
}

/// Refuses blocks that together cover more addresses than `limits` allow:
/// each block passed [`cidr::check_remote_breadth`], but 64 /8s per unit,
/// over many units, would still add up to "from anywhere".
fn check_coverage(cidrs: &BTreeSet<Cidr>, limits: &AddressLimits) -> Result<(), AddressProblem> {
    let covered = cidr::coverage(cidrs);
    for (family, covered, allowed, prefix_len) in [
        (4, covered.ipv4, limits.max_ipv4(), limits.ipv4_prefix_len),
        (6, covered.ipv6, limits.max_ipv6(), limits.ipv6_prefix_len),
    ] {
        if covered > allowed {
            return Err(AddressProblem::TooBroad {
                family,
                covered: covered.to_string(),
                prefix_len,
            });
        }
    }
    Ok(())
}

/// `<application>/<number>`, as Juju names units.
fn is_unit_name(unit: &str) -> bool {
    match unit.split_once('/') {
        Some((app, number)) => {
            !app.is_empty()
                && app
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !number.is_empty()
                && number.len() <= 10
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// A unit's blocks by the fallback order in the module docs, or the key
/// whose value was refused.
fn unit_blocks(bag: &RelationData) -> Result<Vec<ListedCidr>, (&'static str, CidrError)> {
    let value = |key: &str| bag.get(key).filter(|v| !v.trim().is_empty());
    if let Some(subnets) = value("egress-subnets") {
        let blocks = cidr::parse_remote_subnets(subnets).map_err(|e| ("egress-subnets", e))?;
        if !blocks.is_empty() {
            return Ok(blocks);
        }
    }
    for key in ["ingress-address", "private-address"] {
        if let Some(address) = value(key) {
            let block = cidr::parse_remote_address(address).map_err(|e| (key, e))?;
            return Ok(vec![ListedCidr {
                written: block.to_string(),
                cidr: block,
            }]);
        }
    }
    Ok(Vec::new())
}

/// Why a relation's remote addresses are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressProblem {
    /// A remote unit's address data is invalid or too broad.
    UnitAddress {
        unit: String,
        key: &'static str,
        error: CidrError,
    },
    /// A remote unit name is not `<app>/<n>` (shown as an excerpt).
    UnitName {
        unit: String,
    },
    TooManyUnits {
        count: usize,
    },
    TooManySubnets {
        count: usize,
    },
    /// The units' blocks together cover more IPv`family` addresses than one
    /// `/prefix_len` holds (`covered`, in decimal: IPv6 counts need 128 bits).
    TooBroad {
        family: u8,
        covered: String,
        prefix_len: u8,
    },
}

impl fmt::Display for AddressProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressProblem::UnitAddress { unit, key, error } => {
                write!(f, "{key} of unit {}: {error}", excerpt(unit))
            }
            AddressProblem::UnitName { unit } => {
                write!(f, "remote unit name {unit} is not <application>/<number>")
            }
            AddressProblem::TooManyUnits { count } => write!(
                f,
                "{count} remote units, more than the {MAX_UNITS_PER_RELATION} accepted"
            ),
            AddressProblem::TooManySubnets { count } => write!(
                f,
                "the remote units claim {count} distinct subnets, more than the \
                 {MAX_SUBNETS_PER_RELATION} accepted"
            ),
            AddressProblem::TooBroad {
                family,
                covered,
                prefix_len,
            } => write!(
                f,
                "the remote units' addresses cover {covered} IPv{family} addresses together, \
                 more than one /{prefix_len} (relation-ipv{family}-breadth); narrow the \
                 consumer's egress-subnets or raise relation-ipv{family}-breadth"
            ),
        }
    }
}
