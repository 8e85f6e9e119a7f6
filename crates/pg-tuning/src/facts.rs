//! What the charm knows about the machine: plain data, no behaviour.
//!
//! The charm's `tuning::detect` fills these in from sysfs/procfs; tests build them
//! by hand to describe machine shapes. Everything derives `Serialize` so the
//! `tuning-report` action can print exactly what the plan was computed from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the PostgreSQL tuning plan depends on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineFacts {
    /// Memory PostgreSQL can use: MemTotal, lowered to the cgroup limit.
    pub memory_bytes: u64,
    /// CPUs this process may run on, lowered to the cgroup CPU quota.
    pub cpus: u32,
    /// The file system holding PGDATA, if known.
    pub data: Option<VolumeFacts>,
    /// The file system holding `pg_wal`, when it is not inside PGDATA's.
    pub wal: Option<VolumeFacts>,
    /// PostgreSQL major version, e.g. 16.
    pub pg_major: u32,
    /// Whether the PostgreSQL build has lz4 (`pg_config --configure` lists
    /// `--with-lz4`; Debian/Ubuntu builds do).
    pub has_lz4: bool,
}

/// A mounted file system and the block devices it is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct VolumeFacts {
    /// The directory that was asked about (e.g. PGDATA).
    pub path: PathBuf,
    /// Where its file system is mounted.
    pub mount_point: PathBuf,
    /// `MAJ:MIN` of the file system's device, as in `/proc/self/mountinfo`.
    pub device_number: Option<String>,
    /// Kernel name of the device the file system sits on, after going from a
    /// partition to its disk: `sda`, `nvme0n1`, `md0`, `dm-0`, `loop0`.
    /// This is where read-ahead applies.
    pub top_device: Option<String>,
    /// The device-mapper name of `top_device` (`vg-lv`), which, unlike
    /// `dm-N`, is stable across reboots.
    pub top_device_dm_name: Option<String>,
    /// What names `top_device` across reboots (kernel names reorder).
    pub top_device_id: Option<StableId>,
    /// `ext4`, `xfs`, `zfs`, ... (empty when unknown).
    pub fs_type: String,
    pub fs_size_bytes: u64,
    /// Space available to unprivileged users (statvfs `f_bavail`).
    pub fs_free_bytes: u64,
    /// Per-mount options followed by super-block options (`noatime`,
    /// `discard`, `data=ordered`, ...).
    pub mount_options: Vec<String>,
    /// The physical devices at the bottom of the stack (the disk itself,
    /// the members of md/dm devices, or a multipath device as one unit).
    pub leaves: Vec<DiskFacts>,
    /// Software RAID arrays found in the stack, outermost first.
    pub raid_arrays: Vec<RaidFacts>,
    /// How many disks' worth of distinct data the volume spreads reads
    /// over: RAID members minus mirror copies and parity, LVM physical
    /// volumes added up, a hardware RAID volume's stripe width / chunk.
    /// 0 is read as 1.
    pub data_bearing_disks: u32,
    /// What could not be detected and why; shown by `tuning-report`.
    pub notes: Vec<String>,
}

/// An md (Linux software RAID) array.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RaidFacts {
    /// Kernel name, e.g. `md0`.
    pub device: String,
    /// `raid0`, `raid1`, `raid5`, `raid6`, `raid10`, `linear`, ...
    pub level: String,
    /// Member slots (`md/raid_disks`; spares not included).
    pub raid_disks: u32,
    /// Members holding distinct data: without mirror copies and parity.
    pub data_disks: u32,
    /// Chunk (stripe unit) size; `None` for levels without striping.
    pub chunk_bytes: Option<u64>,
}

impl VolumeFacts {
    /// Whether `other` is the same file system (same device number).
    pub fn same_file_system(&self, other: &VolumeFacts) -> bool {
        match (&self.device_number, &other.device_number) {
            (Some(a), Some(b)) => a == b,
            _ => self.mount_point == other.mount_point,
        }
    }
}

/// The kind of storage, as far as tuning is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskClass {
    /// Local NVMe flash.
    Nvme,
    /// SATA/SAS flash, or a RAID volume that says it is not rotational.
    Ssd,
    /// Spinning disks.
    Hdd,
    /// Network storage (multipath LUNs, cloud block volumes).
    San,
    /// Cannot tell from sysfs: virtual disks and hardware RAID volumes that
    /// claim to be rotational, loop devices. Set `storage-type` to resolve.
    #[default]
    Unknown,
}

impl DiskClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskClass::Nvme => "nvme",
            DiskClass::Ssd => "ssd",
            DiskClass::Hdd => "hdd",
            DiskClass::San => "san",
            DiskClass::Unknown => "unknown",
        }
    }

    /// Higher means slower random reads. A volume is as slow as its slowest
    /// leaf; `Unknown` ranks just below HDD so that an unclassified device
    /// never makes the plan more aggressive than a known one would.
    pub fn slowness(self) -> u8 {
        match self {
            DiskClass::Nvme => 0,
            DiskClass::Ssd => 1,
            DiskClass::San => 2,
            DiskClass::Unknown => 3,
            DiskClass::Hdd => 4,
        }
    }
}

/// One physical (or opaque virtual) block device.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct DiskFacts {
    /// Kernel name: `sda`, `nvme0n1`, `vda`, `loop0`, `dm-3` (multipath).
    pub name: String,
    /// Detected class, before the `storage-type` override.
    pub class: DiskClass,
    /// `queue/rotational`; `None` when unreadable.
    pub rotational: Option<bool>,
    /// An NVMe namespace (`nvme*` name).
    pub nvme: bool,
    /// Served by the virtio_blk driver (`vd*` name or `device/driver`).
    pub virtio: bool,
    /// A dm-multipath device (dm uuid `mpath-`): one LUN seen over several paths.
    pub multipath: bool,
    /// Vendor/model text that marks a hypervisor or cloud disk (`QEMU`,
    /// `VMware`, `Amazon Elastic Block Store`, ...).
    pub virtual_disk_hint: Option<String>,
    /// Vendor/model text that marks a hardware RAID volume (`PERC`,
    /// `MegaRAID`, `LOGICAL VOLUME`, ...).
    pub hw_raid_hint: Option<String>,
    /// `device/vendor`, trimmed: the SCSI vendor (`ATA`, `DELL`), or a PCI
    /// vendor id for virtio (`0x1af4`).
    pub vendor: Option<String>,
    /// SCSI or NVMe `device/model`, trimmed.
    pub model: Option<String>,
    /// Device-mapper name, for a multipath leaf (stable for udev rules).
    pub dm_name: Option<String>,
    pub logical_block_size: Option<u32>,
    pub physical_block_size: Option<u32>,
    /// For RAID volumes: the chunk (stripe unit).
    pub minimum_io_size: Option<u32>,
    /// For RAID volumes: the full stripe width; 0 means "not reported".
    pub optimal_io_size: Option<u32>,
    /// Supports TRIM/UNMAP (`queue/discard_max_bytes` > 0).
    pub discard: Option<bool>,
    /// `queue/write_cache` is "write back" (a volatile cache that needs
    /// flushes) rather than "write through".
    pub write_back_cache: Option<bool>,
    /// The active I/O scheduler, e.g. `mq-deadline`.
    pub scheduler: Option<String>,
    pub read_ahead_kb: Option<u32>,
    /// For loop devices: the file behind it.
    pub backing_file: Option<PathBuf>,
    /// What names this disk across reboots (`sdX` names reorder at boot).
    pub stable_id: Option<StableId>,
}

/// A block device's identity that survives reboots and re-plugging, in the
/// order the charm prefers them; each is something a udev rule can match
/// ([`StableId::udev_match`]). Kernel names (`sda`, `md127`, `dm-3`) are
/// not stable: they follow probe order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum StableId {
    /// `ID_WWN` from udev's database (World Wide Name / EUI).
    Wwn(String),
    /// `ID_SERIAL` (vendor, model and serial number).
    Serial(String),
    /// `ID_PATH` (the controller port the disk is attached to).
    Path(String),
    /// The `wwid` sysfs attribute, when udev's database is not there.
    SysfsWwid(String),
    /// A device-mapper device's `DM_UUID` (LVM, multipath, dm-crypt).
    DmUuid(String),
    /// An md array's `MD_UUID`.
    MdUuid(String),
    /// A loop device: the file behind it.
    LoopFile(PathBuf),
}

impl StableId {
    /// The udev match keys for this identity, for a rules file that sorts
    /// after `60-persistent-storage.rules` and `63-md-raid-arrays.rules`
    /// (which set the `ID_*` and `MD_UUID` properties). `None` when the
    /// value holds characters udev would read as a pattern or a quote.
    pub fn udev_match(&self) -> Option<String> {
        let (key, value) = match self {
            StableId::Wwn(v) => ("ENV{ID_WWN}", v.as_str()),
            StableId::Serial(v) => ("ENV{ID_SERIAL}", v.as_str()),
            StableId::Path(v) => ("ENV{ID_PATH}", v.as_str()),
            StableId::SysfsWwid(v) => ("ATTRS{wwid}", v.as_str()),
            StableId::DmUuid(v) => ("ENV{DM_UUID}", v.as_str()),
            StableId::MdUuid(v) => ("ENV{MD_UUID}", v.as_str()),
            StableId::LoopFile(path) => {
                let path = path.to_str()?;
                return plain_udev_value(path)
                    .then(|| format!("KERNEL==\"loop*\", ATTR{{loop/backing_file}}==\"{path}\""));
            }
        };
        plain_udev_value(value).then(|| format!("{key}==\"{value}\""))
    }
}

/// Nothing udev treats as a glob (`*?[]|`), a quote, an escape or a line
/// break, and not empty.
fn plain_udev_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !"*?[]|\"\\".contains(c) || c == ' ')
}
