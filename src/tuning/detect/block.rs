//! From a device number to the physical disks below it, through sysfs.
//!
//! 1. `/sys/dev/block/MAJ:MIN` is a symlink to the device's directory under
//!    `/sys/devices/...`.
//! 2. A directory with a `partition` file is a partition; its parent
//!    directory is the whole disk (`sda1` → `sda`, `nvme0n1p2` → `nvme0n1`).
//!    Names are never cut at digits: that breaks on `nvme0n1` and `dm-0`.
//! 3. Stacked devices (device-mapper: LVM, dm-crypt, multipath; md RAID)
//!    list their members in `slaves/`. Members are visited recursively; a
//!    device without members is a leaf. A multipath device is kept as one
//!    leaf because its members are paths to the same LUN, not disks.
//! 4. Each leaf's `queue/` attributes, `device/vendor` and `device/model`,
//!    `device/driver` and `loop/backing_file` become a [`DiskFacts`].
//! 5. Each device's [`StableId`] comes from udev's database (`ID_WWN`,
//!    `ID_SERIAL`, `ID_PATH`, `DM_UUID`, `MD_UUID`), or from sysfs where
//!    that is missing (`wwid`, `dm/uuid`, `loop/backing_file`).
//!
//! File system types without a block device (btrfs, ZFS, overlayfs, tmpfs)
//! have anonymous `0:N` numbers; for those the mount source (`/dev/...`)
//! is looked up by name instead.

use std::fs;
use std::path::{Path, PathBuf};

use super::{read_number, read_text, DeviceNumber, SysRoot};
use crate::tuning::classify::{
    classify, hw_raid_hint, raid10_copies, raid_data_disks, virtual_disk_hint,
};
use crate::tuning::config::StorageTypeOverride;
use crate::tuning::facts::{DiskClass, DiskFacts, RaidFacts, StableId};

/// Stacks deeper than this are treated as broken (sysfs has no cycles, but
/// a fixture or a bug could).
const MAX_STACK_DEPTH: usize = 8;

/// What lies below one file system.
#[derive(Debug, Default)]
pub(crate) struct BlockStack {
    pub top_device: Option<String>,
    pub top_device_dm_name: Option<String>,
    pub top_device_id: Option<StableId>,
    pub leaves: Vec<DiskFacts>,
    pub raid_arrays: Vec<RaidFacts>,
    pub data_bearing_disks: u32,
    pub notes: Vec<String>,
}

/// Finds the sysfs directory of the device a file system is on: by device
/// number, or else by the mount source's name.
pub(crate) fn locate(root: &SysRoot, device: DeviceNumber, mount_source: &str) -> Option<PathBuf> {
    fs::canonicalize(root.sys.join(format!("dev/block/{device}")))
        .ok()
        .or_else(|| locate_by_source(root, mount_source))
}

fn locate_by_source(root: &SysRoot, source: &str) -> Option<PathBuf> {
    let name = source.strip_prefix("/dev/")?;
    if let Some(dm_name) = name.strip_prefix("mapper/") {
        return find_dm_by_name(root, dm_name);
    }
    fs::canonicalize(root.sys.join("class/block").join(name)).ok()
}

fn find_dm_by_name(root: &SysRoot, dm_name: &str) -> Option<PathBuf> {
    let entries = fs::read_dir(root.sys.join("block")).ok()?;
    entries
        .flatten()
        .map(|entry| entry.path())
        .find(|dir| read_text(&dir.join("dm/name")).as_deref() == Some(dm_name))
        .and_then(|dir| fs::canonicalize(dir).ok())
}

/// Walks the stack below `device_dir` (the file system's device).
pub fn walk(device_dir: &Path, udev_data: &Path) -> BlockStack {
    let top = whole_disk(device_dir);
    let mut stack = BlockStack {
        top_device: Some(device_name(&top)),
        top_device_dm_name: read_text(&top.join("dm/name")),
        top_device_id: stable_id(&top, udev_data),
        ..BlockStack::default()
    };
    stack.data_bearing_disks = visit(&top, udev_data, 0, &mut stack);
    stack
}

/// The [`StableId`] of the block device the kernel calls `name` now.
pub(crate) fn device_stable_id(root: &SysRoot, name: &str) -> Option<StableId> {
    let dir = fs::canonicalize(root.sys.join("block").join(name)).ok()?;
    stable_id(&dir, &root.udev_data)
}

/// udev's properties for the device in `dir` (`E:KEY=value` lines of its
/// database entry), empty when udev does not run.
fn udev_properties(dir: &Path, udev_data: &Path) -> Vec<(String, String)> {
    let Some(number) = read_text(&dir.join("dev")) else {
        return Vec::new();
    };
    let Ok(text) = fs::read_to_string(udev_data.join(format!("b{number}"))) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| line.strip_prefix("E:")?.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn stable_id(dir: &Path, udev_data: &Path) -> Option<StableId> {
    if let Some(file) = read_text(&dir.join("loop/backing_file")) {
        return Some(StableId::LoopFile(PathBuf::from(file)));
    }
    let udev = udev_properties(dir, udev_data);
    let property = |key: &str| {
        udev.iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    // A device-mapper device made without a uuid has nothing stable.
    if dir.join("dm").is_dir() {
        return property("DM_UUID")
            .or_else(|| read_text(&dir.join("dm/uuid")).filter(|uuid| !uuid.is_empty()))
            .map(StableId::DmUuid);
    }
    if dir.join("md").is_dir() {
        return property("MD_UUID").map(StableId::MdUuid);
    }
    property("ID_WWN")
        .map(StableId::Wwn)
        .or_else(|| property("ID_SERIAL").map(StableId::Serial))
        .or_else(|| property("ID_PATH").map(StableId::Path))
        .or_else(|| {
            read_text(&dir.join("wwid"))
                .or_else(|| read_text(&dir.join("device/wwid")))
                .filter(|wwid| !wwid.is_empty())
                .map(StableId::SysfsWwid)
        })
}

/// Visits one device and returns how many disks' worth of distinct data
/// it spreads over (see [`crate::tuning::facts::VolumeFacts::data_bearing_disks`]).
fn visit(dir: &Path, udev_data: &Path, depth: usize, stack: &mut BlockStack) -> u32 {
    let name = device_name(dir);
    if depth > MAX_STACK_DEPTH {
        stack.notes.push(format!(
            "{name}: device stack deeper than {MAX_STACK_DEPTH}; not followed"
        ));
        return 1;
    }
    let members = if is_multipath(dir) {
        Vec::new()
    } else {
        members(dir)
    };
    if members.is_empty() {
        let disk = disk_facts(dir, udev_data);
        let width = hw_raid_stripe_width(&disk);
        add_leaf(stack, disk);
        return width;
    }
    let raid = raid_facts(dir);
    if let Some(raid) = &raid {
        stack.raid_arrays.push(raid.clone());
    }
    let member_width: u32 = members
        .iter()
        .map(|member| visit(member, udev_data, depth + 1, stack))
        .sum();
    match raid {
        // Mirror copies and parity hold no extra data.
        Some(raid) => (member_width * raid.data_disks / raid.raid_disks.max(1)).max(1),
        // LVM linear/striped and dm-crypt: the members add up.
        None => member_width.max(1),
    }
}

fn add_leaf(stack: &mut BlockStack, disk: DiskFacts) {
    if stack.leaves.iter().any(|leaf| leaf.name == disk.name) {
        return;
    }
    stack.notes.extend(leaf_note(&disk));
    stack.leaves.push(disk);
}

/// Why a leaf is `Unknown` or otherwise deserves a remark.
fn leaf_note(disk: &DiskFacts) -> Option<String> {
    let name = &disk.name;
    if let Some(file) = &disk.backing_file {
        return Some(format!(
            "{name}: loop device backed by {}; its rotational flag is inherited from the disk \
             under that file, so the class is unknown (set storage-type)",
            file.display()
        ));
    }
    if disk.class != DiskClass::Unknown {
        return None;
    }
    let why = if disk.rotational.is_none() {
        "queue/rotational is unreadable".to_string()
    } else if disk.virtio {
        "virtio disk: rotational=1 describes nothing about the host's storage".to_string()
    } else if let Some(hint) = &disk.virtual_disk_hint {
        format!("virtual disk ({hint}): rotational=1 is not reliable")
    } else if let Some(hint) = &disk.hw_raid_hint {
        format!("hardware RAID volume ({hint}): controllers report rotational=1 for SSD arrays too")
    } else {
        "not classified".to_string()
    };
    Some(format!("{name}: class unknown, {why} (set storage-type)"))
}

/// A partition's parent directory is its disk; anything else is itself.
fn whole_disk(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(parent) if dir.join("partition").exists() => parent.to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// The members of a stacked device, each taken to its whole disk.
fn members(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir.join("slaves")) else {
        return Vec::new();
    };
    let mut members: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|entry| fs::canonicalize(entry.path()).ok())
        .map(|member| whole_disk(&member))
        .collect();
    members.sort();
    members.dedup();
    members
}

fn device_name(dir: &Path) -> String {
    dir.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_multipath(dir: &Path) -> bool {
    read_text(&dir.join("dm/uuid")).is_some_and(|uuid| uuid.starts_with("mpath-"))
}

fn raid_facts(dir: &Path) -> Option<RaidFacts> {
    let level = read_text(&dir.join("md/level"))?;
    let raid_disks: u32 = read_number(&dir.join("md/raid_disks")).unwrap_or(1);
    let copies = read_number(&dir.join("md/layout")).map_or(2, raid10_copies);
    let chunk_bytes = read_number(&dir.join("md/chunk_size")).filter(|&chunk: &u64| chunk > 0);
    Some(RaidFacts {
        device: device_name(dir),
        data_disks: raid_data_disks(&level, raid_disks, copies),
        level,
        raid_disks,
        chunk_bytes,
    })
}

/// Reads everything tuning needs about one leaf device.
fn disk_facts(dir: &Path, udev_data: &Path) -> DiskFacts {
    let name = device_name(dir);
    let queue = dir.join("queue");
    let vendor = read_text(&dir.join("device/vendor"));
    let model = read_text(&dir.join("device/model"));
    let driver = fs::read_link(dir.join("device/driver"))
        .ok()
        .map(|target| device_name(&target));
    let mut disk = DiskFacts {
        rotational: read_number::<u8>(&queue.join("rotational")).map(|flag| flag != 0),
        nvme: name.starts_with("nvme"),
        virtio: name.starts_with("vd") || driver.as_deref() == Some("virtio_blk"),
        multipath: is_multipath(dir),
        virtual_disk_hint: virtual_disk_hint(vendor.as_deref(), model.as_deref()),
        hw_raid_hint: hw_raid_hint(vendor.as_deref(), model.as_deref()),
        dm_name: read_text(&dir.join("dm/name")),
        logical_block_size: read_number(&queue.join("logical_block_size")),
        physical_block_size: read_number(&queue.join("physical_block_size")),
        minimum_io_size: read_number(&queue.join("minimum_io_size")),
        optimal_io_size: read_number(&queue.join("optimal_io_size")),
        discard: read_number::<u64>(&queue.join("discard_max_bytes")).map(|max| max > 0),
        write_back_cache: read_text(&queue.join("write_cache")).map(|mode| mode == "write back"),
        scheduler: read_text(&queue.join("scheduler")).and_then(|list| active_scheduler(&list)),
        read_ahead_kb: read_number(&queue.join("read_ahead_kb")),
        backing_file: read_text(&dir.join("loop/backing_file")).map(PathBuf::from),
        stable_id: stable_id(dir, udev_data),
        vendor,
        model,
        name,
        class: DiskClass::Unknown,
    };
    disk.class = classify(&disk, StorageTypeOverride::Auto);
    disk
}

/// `"none [mq-deadline] kyber"` → `mq-deadline`; a single name (stacked
/// devices print `none`) is returned as is.
fn active_scheduler(list: &str) -> Option<String> {
    let active = list
        .split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'));
    match active {
        Some(name) => Some(name.to_string()),
        None => list
            .split_whitespace()
            .next()
            .filter(|_| list.split_whitespace().count() == 1)
            .map(str::to_string),
    }
}

/// A hardware RAID volume is opaque, but controllers usually report the
/// chunk as `minimum_io_size` and the full stripe as `optimal_io_size` (the
/// same numbers mkfs.xfs uses for su/sw): their ratio is the data disks.
/// Plain SSDs also report an optimal size, so this is only trusted for
/// volumes whose model names a RAID controller.
fn hw_raid_stripe_width(disk: &DiskFacts) -> u32 {
    let (Some(_), Some(chunk), Some(stripe)) = (
        &disk.hw_raid_hint,
        disk.minimum_io_size,
        disk.optimal_io_size,
    ) else {
        return 1;
    };
    if chunk > 0 && stripe > chunk && stripe % chunk == 0 {
        stripe / chunk
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_scheduler_forms() {
        assert_eq!(
            active_scheduler("none [mq-deadline] kyber bfq").as_deref(),
            Some("mq-deadline")
        );
        assert_eq!(
            active_scheduler("[none] mq-deadline").as_deref(),
            Some("none")
        );
        assert_eq!(active_scheduler("none").as_deref(), Some("none"));
        assert_eq!(active_scheduler("none mq-deadline"), None);
    }
}
