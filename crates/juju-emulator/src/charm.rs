//! What the emulator reads from a charm: `metadata.yaml`, `config.yaml`,
//! `actions.yaml`, and how it unpacks a `.charm` file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub provides: BTreeMap<String, EndpointMeta>,
    #[serde(default)]
    pub requires: BTreeMap<String, EndpointMeta>,
    #[serde(default)]
    pub peers: BTreeMap<String, EndpointMeta>,
    #[serde(default)]
    pub storage: BTreeMap<String, StorageMeta>,
    #[serde(default, rename = "extra-bindings")]
    pub extra_bindings: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EndpointMeta {
    pub interface: String,
}

/// Which side of a relation an endpoint is declared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointRole {
    Provider,
    Requirer,
    Peer,
}

impl EndpointRole {
    /// Whether an endpoint of this role relates to one of `other` (Juju:
    /// provider with requirer; peers only among themselves).
    pub fn relates_to(self, other: EndpointRole) -> bool {
        matches!(
            (self, other),
            (EndpointRole::Provider, EndpointRole::Requirer)
                | (EndpointRole::Requirer, EndpointRole::Provider)
        )
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StorageMeta {
    #[serde(rename = "type")]
    pub kind: String,
    pub location: Option<String>,
    pub multiple: Option<Multiple>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Multiple {
    pub range: String,
}

impl StorageMeta {
    /// Upper bound of `multiple.range` (`0-1` -> 1, `0-` -> unbounded); 1 without `multiple`.
    pub fn count_max(&self) -> Option<u32> {
        match &self.multiple {
            None => Some(1),
            Some(m) => m
                .range
                .split('-')
                .nth(1)
                .and_then(|max| max.trim().parse().ok()),
        }
    }

    /// Where Juju mounts instance `id` (contract §4.7).
    pub fn location_for(&self, name: &str, id: &str) -> String {
        match (&self.location, self.count_max()) {
            (Some(location), Some(1)) => location.clone(),
            (Some(location), _) => format!("{location}/{id}"),
            (None, _) => format!(
                "/var/lib/juju/storage/{name}/{}",
                id.rsplit('/').next().unwrap_or("0")
            ),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub options: BTreeMap<String, ConfigOption>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigOption {
    #[serde(rename = "type")]
    pub kind: String,
    pub default: Option<serde_yaml::Value>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionMeta {
    #[serde(default)]
    pub params: BTreeMap<String, serde_yaml::Value>,
}

/// An unpacked charm directory and what it declares.
#[derive(Debug, Clone)]
pub struct Charm {
    pub dir: PathBuf,
    pub metadata: Metadata,
    pub config: ConfigFile,
    pub actions: BTreeMap<String, ActionMeta>,
}

impl Charm {
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name));
        let metadata: Metadata = serde_yaml::from_str(
            &read("metadata.yaml")
                .with_context(|| format!("charm missing from disk: {}", dir.display()))?,
        )
        .context("parsing metadata.yaml")?;
        let config = match read("config.yaml") {
            Ok(text) => serde_yaml::from_str(&text).context("parsing config.yaml")?,
            Err(_) => ConfigFile::default(),
        };
        let actions = match read("actions.yaml") {
            Ok(text) if !text.trim().is_empty() => {
                serde_yaml::from_str(&text).context("parsing actions.yaml")?
            }
            _ => BTreeMap::new(),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            metadata,
            config,
            actions,
        })
    }

    /// Every endpoint name, as `network-get` bindings.
    pub fn endpoints(&self) -> Vec<String> {
        let m = &self.metadata;
        m.provides
            .keys()
            .chain(m.requires.keys())
            .chain(m.peers.keys())
            .chain(m.extra_bindings.keys())
            .cloned()
            .collect()
    }

    /// The role and interface of a relation endpoint (not an extra binding).
    pub fn relation_endpoint(&self, name: &str) -> Option<(EndpointRole, &str)> {
        let m = &self.metadata;
        [
            (EndpointRole::Provider, &m.provides),
            (EndpointRole::Requirer, &m.requires),
            (EndpointRole::Peer, &m.peers),
        ]
        .into_iter()
        .find_map(|(role, endpoints)| {
            endpoints
                .get(name)
                .map(|meta| (role, meta.interface.as_str()))
        })
    }

    /// Default values of every option that has a non-null default.
    pub fn config_defaults(&self) -> BTreeMap<String, Value> {
        self.config
            .options
            .iter()
            .filter_map(|(name, opt)| {
                let default = opt.default.as_ref()?;
                let value = yaml_to_json(default);
                (!value.is_null()).then(|| (name.clone(), value))
            })
            .collect()
    }

    /// Checks a value set with `juju config` against the option's type, as the CLI does.
    pub fn typed_config_value(&self, key: &str, raw: &str) -> Result<Value> {
        let Some(option) = self.config.options.get(key) else {
            bail!("unknown option {key:?}");
        };
        Ok(match option.kind.as_str() {
            "string" | "secret" => Value::String(raw.to_string()),
            "int" => Value::from(
                raw.parse::<i64>()
                    .with_context(|| format!("option {key:?} expected int, got {raw:?}"))?,
            ),
            "float" => Value::from(
                raw.parse::<f64>()
                    .with_context(|| format!("option {key:?} expected float, got {raw:?}"))?,
            ),
            "boolean" => Value::Bool(match raw {
                "true" | "True" => true,
                "false" | "False" => false,
                _ => bail!("option {key:?} expected boolean, got {raw:?}"),
            }),
            other => bail!("option {key:?} has unknown type {other:?}"),
        })
    }
}

pub fn yaml_to_json(value: &serde_yaml::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Copies a charm (a `.charm` zip or a directory) to `dest`, keeping modes.
pub fn unpack(source: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        std::fs::remove_dir_all(dest).with_context(|| format!("clearing {}", dest.display()))?;
    }
    std::fs::create_dir_all(dest)?;
    let status = if source.is_dir() {
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", source.display()))
            .arg(dest)
            .status()
    } else {
        Command::new("unzip")
            .arg("-q")
            .arg(source)
            .arg("-d")
            .arg(dest)
            .status()
    }
    .with_context(|| format!("unpacking {} (is unzip installed?)", source.display()))?;
    if !status.success() {
        bail!(
            "unpacking {} into {} failed: {status}",
            source.display(),
            dest.display()
        );
    }
    Ok(())
}
