//! Which kind of storage a device is, from what sysfs says about it.
//!
//! sysfs cannot always tell. `queue/rotational` is set to 0 only when the
//! device says it does not spin: SCSI disks answer VPD page 0xB1, but
//! virtio_blk reports 1 for whatever the hypervisor stores the image on, most
//! hardware RAID controllers do not pass the page through (Red Hat KB
//! 7008833), and loop devices inherit the flag of the backing file's disk.
//! For those a "rotational" answer is classified [`DiskClass::Unknown`]
//! rather than HDD: guessing HDD would be wrong for the common flash-backed
//! VM disk, guessing SSD would be wrong for the common spinning RAID-6. The
//! plan keeps PostgreSQL's defaults for unknown disks, the report says so,
//! and the `storage-type` option settles it (see `config.yaml`).
//!
//! A `rotational=0` answer is trusted everywhere: nothing reports 0 for a
//! spinning disk.

use crate::config::StorageTypeOverride;
use crate::facts::{DiskClass, DiskFacts, VolumeFacts};

/// The class of one leaf device; `storage_type` wins unless it is `auto`.
pub fn classify(disk: &DiskFacts, storage_type: StorageTypeOverride) -> DiskClass {
    if let Some(forced) = forced_class(storage_type) {
        return forced;
    }
    if disk.multipath {
        return DiskClass::San;
    }
    if disk.nvme {
        // Cloud block volumes (EBS, Google PD) are attached as NVMe but are
        // network storage with millisecond latencies.
        return match disk.virtual_disk_hint {
            Some(_) => DiskClass::San,
            None => DiskClass::Nvme,
        };
    }
    match disk.rotational {
        Some(false) => DiskClass::Ssd,
        Some(true) if rotational_flag_is_unreliable(disk) => DiskClass::Unknown,
        Some(true) => DiskClass::Hdd,
        None => DiskClass::Unknown,
    }
}

/// The class a volume is tuned for: its slowest leaf.
pub fn volume_class(volume: &VolumeFacts, storage_type: StorageTypeOverride) -> DiskClass {
    let slowest = volume
        .leaves
        .iter()
        .map(|leaf| classify(leaf, storage_type))
        .max_by_key(|class| class.slowness());
    slowest
        .or(forced_class(storage_type))
        .unwrap_or(DiskClass::Unknown)
}

fn forced_class(storage_type: StorageTypeOverride) -> Option<DiskClass> {
    match storage_type {
        StorageTypeOverride::Auto => None,
        StorageTypeOverride::Nvme => Some(DiskClass::Nvme),
        StorageTypeOverride::Ssd => Some(DiskClass::Ssd),
        StorageTypeOverride::Hdd => Some(DiskClass::Hdd),
        StorageTypeOverride::San => Some(DiskClass::San),
    }
}

fn rotational_flag_is_unreliable(disk: &DiskFacts) -> bool {
    disk.virtio
        || disk.virtual_disk_hint.is_some()
        || disk.hw_raid_hint.is_some()
        || disk.backing_file.is_some()
        || disk.name.starts_with("loop")
}

/// Vendor/model substrings (upper case) of hardware RAID logical volumes:
/// Dell PERC, Broadcom/LSI/Avago MegaRAID, HPE Smart Array ("LOGICAL
/// VOLUME"), IBM/Lenovo ServeRAID, Adaptec/Microsemi. An HBA in pass-through
/// mode shows the real disk's vendor instead, so these only match volumes.
const HW_RAID_MARKERS: [&str; 10] = [
    "PERC",
    "MEGARAID",
    "LSI",
    "AVAGO",
    "BROADCOM",
    "LOGICAL VOLUME",
    "SMART ARRAY",
    "SERVERAID",
    "ADAPTEC",
    "MICROSEMI",
];

/// Vendor/model substrings (upper case) of hypervisor and cloud disks.
const VIRTUAL_DISK_MARKERS: [&str; 8] = [
    "QEMU",
    "VMWARE",
    "VBOX",
    "VIRTUAL DISK",
    "XEN",
    "GOOGLE",
    "ELASTIC BLOCK STORE",
    "NVME_CARD-PD",
];

/// `"vendor model"` when it names a hardware RAID volume.
pub fn hw_raid_hint(vendor: Option<&str>, model: Option<&str>) -> Option<String> {
    hint(vendor, model, &HW_RAID_MARKERS)
}

/// `"vendor model"` when it names a hypervisor or cloud disk.
pub fn virtual_disk_hint(vendor: Option<&str>, model: Option<&str>) -> Option<String> {
    hint(vendor, model, &VIRTUAL_DISK_MARKERS)
}

fn hint(vendor: Option<&str>, model: Option<&str>, markers: &[&str]) -> Option<String> {
    let text = [vendor, model]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let upper = text.to_ascii_uppercase();
    markers
        .iter()
        .any(|marker| upper.contains(marker))
        .then_some(text)
}

/// Members of an md array that hold distinct data (no mirror copies, no
/// parity), the "spindle count" PostgreSQL's docs relate I/O concurrency to.
/// `raid10_copies` comes from `md/layout` (near × far copies; 2 by default).
pub fn raid_data_disks(level: &str, raid_disks: u32, raid10_copies: u32) -> u32 {
    let data = match level {
        "raid0" | "linear" => raid_disks,
        "raid1" => 1,
        "raid4" | "raid5" => raid_disks.saturating_sub(1),
        "raid6" => raid_disks.saturating_sub(2),
        "raid10" => raid_disks / raid10_copies.max(1),
        _ => 1,
    };
    data.max(1)
}

/// Copies kept by an md RAID10 `layout` value: the low byte is the number
/// of "near" copies, the next byte the number of "far" copies.
pub fn raid10_copies(layout: u32) -> u32 {
    let near = layout & 0xff;
    let far = (layout >> 8) & 0xff;
    (near.max(1) * far.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, rotational: Option<bool>) -> DiskFacts {
        DiskFacts {
            name: name.to_string(),
            rotational,
            nvme: name.starts_with("nvme"),
            virtio: name.starts_with("vd"),
            ..DiskFacts::default()
        }
    }

    #[test]
    fn classification_table() {
        let ebs = DiskFacts {
            virtual_disk_hint: Some("Amazon Elastic Block Store".into()),
            ..disk("nvme1n1", Some(false))
        };
        let perc = DiskFacts {
            hw_raid_hint: Some("DELL PERC H740P Mini".into()),
            ..disk("sda", Some(true))
        };
        let perc_ssd = DiskFacts {
            rotational: Some(false),
            ..perc.clone()
        };
        let qemu_scsi = DiskFacts {
            virtual_disk_hint: Some("QEMU QEMU HARDDISK".into()),
            ..disk("sdb", Some(true))
        };
        let loop_dev = DiskFacts {
            backing_file: Some("/srv/pg.img".into()),
            ..disk("loop0", Some(true))
        };
        let mpath = DiskFacts {
            multipath: true,
            ..disk("dm-3", Some(true))
        };
        let cases = [
            (disk("nvme0n1", Some(false)), DiskClass::Nvme),
            (ebs, DiskClass::San),
            (disk("sda", Some(false)), DiskClass::Ssd),
            (disk("sda", Some(true)), DiskClass::Hdd),
            (disk("sda", None), DiskClass::Unknown),
            (disk("vda", Some(true)), DiskClass::Unknown),
            (disk("vda", Some(false)), DiskClass::Ssd),
            (perc, DiskClass::Unknown),
            (perc_ssd, DiskClass::Ssd),
            (qemu_scsi, DiskClass::Unknown),
            (loop_dev, DiskClass::Unknown),
            (mpath, DiskClass::San),
        ];
        for (disk, expected) in cases {
            assert_eq!(
                classify(&disk, StorageTypeOverride::Auto),
                expected,
                "{disk:?}"
            );
        }
    }

    #[test]
    fn override_beats_detection() {
        let vda = disk("vda", Some(true));
        assert_eq!(classify(&vda, StorageTypeOverride::Ssd), DiskClass::Ssd);
        let nvme = disk("nvme0n1", Some(false));
        assert_eq!(classify(&nvme, StorageTypeOverride::Hdd), DiskClass::Hdd);
    }

    #[test]
    fn volume_is_as_slow_as_its_slowest_leaf() {
        let volume = VolumeFacts {
            leaves: vec![disk("nvme0n1", Some(false)), disk("sdb", Some(true))],
            ..VolumeFacts::default()
        };
        assert_eq!(
            volume_class(&volume, StorageTypeOverride::Auto),
            DiskClass::Hdd
        );
        let empty = VolumeFacts::default();
        assert_eq!(
            volume_class(&empty, StorageTypeOverride::Auto),
            DiskClass::Unknown
        );
        assert_eq!(
            volume_class(&empty, StorageTypeOverride::Nvme),
            DiskClass::Nvme
        );
    }

    #[test]
    fn hints_match_vendor_and_model() {
        assert!(hw_raid_hint(Some("DELL"), Some("PERC H730P Mini")).is_some());
        assert!(hw_raid_hint(Some("HP"), Some("LOGICAL VOLUME")).is_some());
        assert!(hw_raid_hint(Some("ATA"), Some("ST4000NM0035-1V4")).is_none());
        assert!(virtual_disk_hint(Some("QEMU"), Some("QEMU HARDDISK")).is_some());
        assert!(virtual_disk_hint(None, Some("Amazon Elastic Block Store")).is_some());
        assert!(virtual_disk_hint(None, Some("Amazon EC2 NVMe Instance Storage")).is_none());
    }

    #[test]
    fn data_disks_per_raid_level() {
        let cases = [
            ("raid0", 4, 2, 4),
            ("linear", 3, 2, 3),
            ("raid1", 2, 2, 1),
            ("raid5", 4, 2, 3),
            ("raid6", 12, 2, 10),
            ("raid10", 8, 2, 4),
            ("raid10", 6, 3, 2),
            ("raid6", 1, 2, 1),
            ("multipath", 2, 2, 1),
        ];
        for (level, disks, copies, expected) in cases {
            assert_eq!(raid_data_disks(level, disks, copies), expected, "{level}");
        }
        assert_eq!(raid10_copies(0x102), 2);
        assert_eq!(raid10_copies(0x201), 2);
        assert_eq!(raid10_copies(2), 2);
        assert_eq!(raid10_copies(0), 1);
    }
}
