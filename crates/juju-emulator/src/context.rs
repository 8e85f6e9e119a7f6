//! The per-hook context: everything one hook run may see and change.
//!
//! Juju gives each hook a snapshot (config, leadership, relation bags, storage,
//! ports) that stays stable for the whole hook, and buffers most writes until
//! the hook exits 0. The emulator does the same with a JSON file next to the
//! unit's (pretend) agent socket: the runner writes it before the hook, every
//! hook tool reads it and records its effects in it, and the runner reads it
//! back afterwards to commit (exit 0) or discard (failure) the buffered part.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A relation data bag: string keys to string values.
pub type Bag = BTreeMap<String, String>;

/// File name of the context inside the unit's agent directory.
pub const CONTEXT_FILE: &str = "hook-context.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HookContext {
    /// `JUJU_CONTEXT_ID`; tools called with another id are refused.
    pub id: String,
    pub unit: String,
    pub app: String,
    pub model_name: String,
    pub model_uuid: String,
    /// The hook name (`install`, `db-relation-changed`) or the action name.
    pub hook: String,
    pub action: Option<ActionContext>,
    pub leader: bool,
    pub leader_settings: Bag,
    /// Effective config values (user-set values over defaults); unset
    /// options without a default are absent.
    pub config: BTreeMap<String, Value>,
    /// Every option declared in config.yaml, with its type.
    pub config_types: BTreeMap<String, String>,
    pub relations: BTreeMap<u64, RelationContext>,
    pub current_relation: Option<u64>,
    pub remote_unit: Option<String>,
    pub remote_app: Option<String>,
    pub storage: BTreeMap<String, StorageContext>,
    pub current_storage: Option<String>,
    /// Storage names the charm declares, with whether they allow more instances.
    pub storage_names: Vec<String>,
    /// Endpoint names of the charm (and so valid `network-get` bindings).
    pub endpoints: Vec<String>,
    pub network: NetworkInfo,
    pub public_address: String,
    pub committed_ports: Vec<String>,
    pub secrets: BTreeMap<String, SecretContext>,
    pub status: Status,
    pub app_status: Option<Status>,
    /// Effects that Juju applies at once, in call order.
    pub immediate: Vec<Immediate>,
    /// Effects buffered until the hook exits 0.
    pub pending: Pending,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActionContext {
    pub name: String,
    pub params: serde_json::Map<String, Value>,
    pub results: BTreeMap<String, Value>,
    pub failed: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RelationContext {
    pub endpoint: String,
    pub peer: bool,
    /// The remote application as this unit sees it (`remote-<hex>` across models).
    pub remote_app: String,
    /// Remote units in scope now, sorted.
    pub members: Vec<String>,
    /// Unit bags of every unit ever in the relation, own unit included.
    pub unit_bags: BTreeMap<String, Bag>,
    /// Application bags, own application included.
    pub app_bags: BTreeMap<String, Bag>,
    /// What `network-get <ep> -r <id>` reports for this relation.
    pub network: NetworkInfo,
    /// The UUID of the model hosting the remote application (this model's
    /// own for a peer or same-model relation): `relation-model-get`.
    #[serde(default)]
    pub remote_model_uuid: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StorageContext {
    pub kind: String,
    pub location: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkInfo {
    pub interface: String,
    pub mac_address: String,
    pub bind_address: String,
    pub cidr: String,
    pub ingress_addresses: Vec<String>,
    pub egress_subnets: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub status: String,
    pub message: String,
}

/// A secret as one unit sees it: as its owner (the unit, or a unit of the
/// owning application) or as a consumer it was granted to.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SecretContext {
    /// The xid (20 characters), without `secret:`.
    pub id: String,
    /// The owner's model: the URI is `secret://<model_uuid>/<id>`.
    pub model_uuid: String,
    /// The owning application or unit.
    pub owner: String,
    /// This unit (or its application) owns it.
    pub owned: bool,
    /// A consumer may read it now (granted over a live relation).
    pub readable: bool,
    /// The owner's label, description and policies: owners only.
    pub label: Option<String>,
    pub description: Option<String>,
    pub expire: Option<String>,
    pub rotate: Option<String>,
    pub latest: u32,
    /// Content of the revisions this unit may be given: the latest and the
    /// one it tracks.
    pub revisions: BTreeMap<u32, Bag>,
    /// Consumers: the revision this unit tracks (`None`: never read), and
    /// the label it gave the secret.
    pub tracked: Option<u32>,
    pub consumer_label: Option<String>,
    /// Owners: the grants, as `secret-info-get` shows them.
    pub access: Vec<SecretAccess>,
}

impl SecretContext {
    pub fn uri(&self) -> String {
        format!("secret://{}/{}", self.model_uuid, self.id)
    }
}

/// One grant of a secret: `secret-info-get`'s `access` entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretAccess {
    /// `application-<name>` or `unit-<app>-<n>`.
    pub target: String,
    /// `relation-<key>`.
    pub scope: String,
    pub role: String,
}

/// Owner metadata that `secret-add` sets and `secret-set` may change
/// (`None`: unchanged).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretMeta {
    pub label: Option<String>,
    pub description: Option<String>,
    pub expire: Option<String>,
    pub rotate: Option<String>,
}

/// Effects that take hold the moment the tool runs, whatever the hook's exit code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Immediate {
    Status {
        application: bool,
        status: Status,
    },
    WorkloadVersion(String),
    LeaderSet(BTreeMap<String, Option<String>>),
    /// A consumer's `secret-get`: the revision it now tracks (`None`:
    /// unchanged) and the label it gives the secret (`None`: unchanged).
    /// The controller records these at once.
    SecretTrack {
        id: String,
        revision: Option<u32>,
        label: Option<String>,
    },
    Log {
        level: String,
        message: String,
    },
    ActionLog(String),
}

/// Writes buffered until the hook exits 0.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pending {
    /// (relation id, bag owner) -> key -> value (`None` deletes).
    pub relation_writes: Vec<RelationWrite>,
    pub open_ports: Vec<String>,
    pub close_ports: Vec<String>,
    pub storage_add: Vec<(String, u32)>,
    pub secret_ops: Vec<SecretOp>,
    pub reboot: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RelationWrite {
    pub relation: u64,
    /// A unit name or an application name.
    pub owner: String,
    pub key: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum SecretOp {
    Add {
        id: String,
        owner: String,
        content: Bag,
        meta: SecretMeta,
    },
    Set {
        id: String,
        /// A new revision, unless the content is unchanged.
        content: Option<Bag>,
        meta: SecretMeta,
    },
    /// To the remote application of `relation`, or to one of its units.
    Grant {
        id: String,
        relation: u64,
        unit: Option<String>,
    },
    /// From an application or a unit (names as this unit sees them).
    Revoke {
        id: String,
        app: Option<String>,
        unit: Option<String>,
    },
    /// The whole secret, or one revision.
    Remove { id: String, revision: Option<u32> },
}

impl HookContext {
    pub fn path_in(agent_dir: &Path) -> PathBuf {
        agent_dir.join(CONTEXT_FILE)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }

    /// The bag a unit or application owns in a relation, as this hook sees it.
    pub fn bag(&self, relation: u64, owner: &str) -> Option<&Bag> {
        let rel = self.relations.get(&relation)?;
        rel.unit_bags.get(owner).or_else(|| rel.app_bags.get(owner))
    }
}

/// A context file opened under an exclusive lock, so that tools a charm runs
/// in parallel within one hook cannot lose each other's writes.
pub struct LockedContext {
    file: fs::File,
    pub context: HookContext,
}

impl LockedContext {
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening hook context {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).context("locking hook context");
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let context = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing hook context {}", path.display()))?;
        Ok(Self { file, context })
    }

    pub fn write_back(mut self) -> Result<()> {
        let bytes = serde_json::to_vec(&self.context)?;
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&bytes)?;
        Ok(())
    }
}
