//! `host-originals.json`: every host setting as the charm found it before
//! changing it (recorded before each change), and `host-applied.json`: the
//! host plan in force, for the `tuning-report` action.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::StateDir;
use crate::tuning::facts::StableId;

pub(super) const HOST_ORIGINALS: &str = "host-originals.json";
pub(super) const HOST_APPLIED: &str = "host-applied.json";

/// One live knob as the charm found it, and what the charm set it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OriginalRecord")]
pub struct Original {
    /// The value before the charm changed it (for `vm.nr_hugepages`: the
    /// pages others had reserved when the charm last set it).
    pub was: String,
    /// What the charm set; `None` in records of earlier revisions.
    pub set: Option<String>,
    /// For a `*_bytes` twin whose original was 0: the `*_ratio` key and the
    /// value it had, which is what restores it.
    pub twin: Option<(String, String)>,
}

/// How [`Original`] is read: earlier revisions kept the bare value.
#[derive(Deserialize)]
#[serde(untagged)]
enum OriginalRecord {
    Bare(String),
    Full {
        was: String,
        #[serde(default)]
        set: Option<String>,
        #[serde(default)]
        twin: Option<(String, String)>,
    },
}

impl From<OriginalRecord> for Original {
    fn from(record: OriginalRecord) -> Self {
        match record {
            OriginalRecord::Bare(was) => Original {
                was,
                set: None,
                twin: None,
            },
            OriginalRecord::Full { was, set, twin } => Original { was, set, twin },
        }
    }
}

impl Original {
    /// `was`, before the charm set `set`.
    pub fn new(was: &str, set: &str) -> Self {
        Original {
            was: was.to_string(),
            set: Some(set.to_string()),
            twin: None,
        }
    }
}

/// The queue settings of one device as the charm found them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "DeviceRecord")]
pub struct DeviceOriginals {
    /// Which disk it was (`None`: none known, or a record of an earlier
    /// revision).
    pub identity: Option<StableId>,
    /// `scheduler`, `read_ahead_kb` → value.
    pub attributes: BTreeMap<String, Original>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DeviceRecord {
    Full {
        #[serde(default)]
        identity: Option<StableId>,
        attributes: BTreeMap<String, Original>,
    },
    Bare(BTreeMap<String, Original>),
}

impl From<DeviceRecord> for DeviceOriginals {
    fn from(record: DeviceRecord) -> Self {
        match record {
            DeviceRecord::Full {
                identity,
                attributes,
            } => DeviceOriginals {
                identity,
                attributes,
            },
            DeviceRecord::Bare(attributes) => DeviceOriginals {
                identity: None,
                attributes,
            },
        }
    }
}

/// Everything the charm changed on the host, as it was before.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Originals {
    /// sysctl key → value.
    #[serde(default)]
    pub sysctls: BTreeMap<String, Original>,
    /// Device kernel name → its queue settings.
    #[serde(default)]
    pub devices: BTreeMap<String, DeviceOriginals>,
    #[serde(default)]
    pub transparent_hugepage: Option<Original>,
    /// Directories the charm created for its files (removed when empty).
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
}

impl Originals {
    pub fn load(state: &StateDir) -> Self {
        state.read_json(HOST_ORIGINALS).unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.sysctls.is_empty()
            && self.devices.is_empty()
            && self.transparent_hugepage.is_none()
            && self.created_dirs.is_empty()
    }

    /// Saved before the change it records, so a kill in between loses nothing.
    pub fn save(&self, state: &StateDir) -> Result<()> {
        if self.is_empty() {
            return state.remove(HOST_ORIGINALS);
        }
        state.write_json(HOST_ORIGINALS, self).map(drop)
    }
}

/// The huge page pool as the kernel reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HugePagePool {
    /// `/proc/sys/vm/nr_hugepages`.
    pub nr_hugepages: Option<u64>,
    /// `HugePages_Total` in `/proc/meminfo`.
    pub total: Option<u64>,
    /// `HugePages_Free`.
    pub free: Option<u64>,
    /// `Hugepagesize`, in kB.
    pub page_size_kb: Option<u64>,
    /// Reserved by others, not by the charm.
    #[serde(default)]
    pub others: u64,
}

/// The plan in force, as recorded for `tuning-report`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedRecord {
    pub global: bool,
    /// `None`: every planned device.
    pub devices_allowed: Option<Vec<String>>,
    pub files: Vec<PathBuf>,
    pub sysctls: Vec<AppliedSysctl>,
    pub devices: Vec<AppliedDevice>,
    pub transparent_hugepage: String,
    /// `shared_memory_size_in_huge_pages`, when huge pages are planned.
    pub huge_pages_needed: Option<u64>,
    /// `vm.nr_hugepages` asked for by the charm (needed + margin).
    pub huge_pages_reserved: Option<u64>,
    pub pool: HugePagePool,
    /// What differs after a reboot: settings left to the host's own sysctl
    /// files, devices tuned live only.
    #[serde(default)]
    pub left_to_host: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedSysctl {
    pub key: String,
    pub value: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedDevice {
    pub name: String,
    pub scheduler: Option<String>,
    pub read_ahead_kb: Option<u32>,
    pub reason: String,
}

impl AppliedRecord {
    pub fn load(state: &StateDir) -> Option<Self> {
        state.read_json(HOST_APPLIED)
    }

    pub fn save(&self, state: &StateDir) -> Result<()> {
        state.write_json(HOST_APPLIED, self).map(drop)
    }

    /// Host tuning is off, or everything is handed back.
    pub fn clear(state: &StateDir) -> Result<()> {
        state.remove(HOST_APPLIED)
    }
}
