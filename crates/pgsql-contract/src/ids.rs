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
/// A secret's URI as Juju prints it: `secret:<id>` or
/// `secret://<model-uuid>/<id>`, the id 20 characters of base32hex (an
/// xid). A bare id from `secret-ids` gets the `secret:` prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretUri(String);

impl SecretUri {
    /// Checks what Juju printed; `None` for anything else.
    pub fn parse(text: &str) -> Option<SecretUri> {
        let text = text.trim();
        let id = match text.strip_prefix("secret://") {
            Some(rest) => {
                let (model, id) = rest.split_once('/')?;
                let uuid =
                    model.len() == 36 && model.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
                if !uuid {
                    return None;
                }
                id
            }
            None => text.strip_prefix("secret:").unwrap_or(text),
        };
        let xid = id.len() == 20
            && id
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c));
        if !xid {
            return None;
        }
        Some(SecretUri(if text.starts_with("secret:") {
            text.to_string()
        } else {
            format!("secret:{text}")
        }))
    }

    /// The URI that names the secret `self` names from any model:
    /// `secret://<model_uuid>/<id>`, `model_uuid` being the owner's model
    /// (a short form names a secret of the reader's own model, so a
    /// consumer across models needs this one). Unchanged if it is already
    /// long or `model_uuid` is not a model UUID.
    pub fn in_model(&self, model_uuid: &str) -> SecretUri {
        if self.0.starts_with("secret://") {
            return self.clone();
        }
        SecretUri::parse(&format!("secret://{model_uuid}/{}", self.id()))
            .unwrap_or_else(|| self.clone())
    }

    /// The id alone (the last 20 characters), which names the secret
    /// whichever form the URI has.
    pub fn id(&self) -> &str {
        &self.0[self.0.len() - 20..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SecretUri {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
