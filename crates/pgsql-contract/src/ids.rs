//! Relation ids and bags, as Juju prints them (pure): the types the
//! contract is written in, which the hook-tool client (the charm's `juju` module)
//! reads and writes.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, Context};

/// One relation bag: key → value. A key that was never set is absent.
pub type RelationData = BTreeMap<String, String>;

/// A relation id as Juju prints it: `<endpoint>:<number>`, e.g. `db:7`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationId {
    endpoint: String,
    number: u32,
}

impl RelationId {
    pub fn new(endpoint: &str, number: u32) -> Self {
        RelationId {
            endpoint: endpoint.to_string(),
            number,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn number(&self) -> u32 {
        self.number
    }
}

impl fmt::Display for RelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.endpoint, self.number)
    }
}

impl FromStr for RelationId {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        let (endpoint, number) = text
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("relation id {text:?} is not `<endpoint>:<number>`"))?;
        let number = number
            .parse()
            .with_context(|| format!("relation id {text:?} does not end in a number"))?;
        Ok(RelationId::new(endpoint, number))
    }
}
