//! Detection against the fake machines in `tests/fixtures/sysfs/` (see the
//! README there for what each one is).

use std::path::{Path, PathBuf};

use super::*;
use crate::tuning::facts::{DiskClass, DiskFacts, RaidFacts, StableId};
use crate::tuning::units::GIB;

fn fixture(name: &str) -> SysRoot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs");
    SysRoot::under(&dir.join(name))
}

/// The volume holding `path`, with made-up statvfs numbers.
fn volume(fixture_name: &str, path: &str) -> VolumeFacts {
    let space = FsSpace {
        size_bytes: 100 * GIB,
        free_bytes: 60 * GIB,
    };
    describe_volume(&fixture(fixture_name), Path::new(path), None, space)
}

fn leaf_names(volume: &VolumeFacts) -> Vec<&str> {
    volume
        .leaves
        .iter()
        .map(|leaf| leaf.name.as_str())
        .collect()
}

fn classes(volume: &VolumeFacts) -> Vec<DiskClass> {
    volume.leaves.iter().map(|leaf| leaf.class).collect()
}

#[test]
fn nvme() {
    let root = fixture("nvme");
    assert_eq!(memory_bytes(&root).unwrap(), 65_844_088 * 1024);
    assert_eq!(usable_cpus(&root).unwrap(), 16);
    let data = volume("nvme", "/var/lib/postgresql/16/main");
    assert_eq!(data.mount_point, Path::new("/"));
    assert_eq!(data.device_number.as_deref(), Some("259:2"));
    assert_eq!(data.fs_type, "ext4");
    assert_eq!(data.mount_options, ["rw", "relatime"]);
    assert_eq!(data.fs_size_bytes, 100 * GIB);
    assert_eq!(data.fs_free_bytes, 60 * GIB);
    assert_eq!(data.top_device.as_deref(), Some("nvme0n1"));
    assert_eq!(data.data_bearing_disks, 1);
    assert!(data.raid_arrays.is_empty());
    assert!(data.notes.is_empty(), "{:?}", data.notes);
    assert_eq!(
        data.leaves,
        [DiskFacts {
            name: "nvme0n1".into(),
            class: DiskClass::Nvme,
            rotational: Some(false),
            nvme: true,
            model: Some("Samsung SSD 980 PRO 1TB".into()),
            logical_block_size: Some(512),
            physical_block_size: Some(512),
            minimum_io_size: Some(512),
            optimal_io_size: Some(0),
            discard: Some(true),
            write_back_cache: Some(true),
            scheduler: Some("none".into()),
            read_ahead_kb: Some(128),
            // udev's ID_WWN, first of its names.
            stable_id: Some(StableId::Wwn("eui.002538b411b2c1d4".into())),
            ..DiskFacts::default()
        }]
    );
    assert_eq!(data.top_device_id, data.leaves[0].stable_id);
    assert_eq!(
        device_stable_id(&root, "nvme0n1"),
        Some(StableId::Wwn("eui.002538b411b2c1d4".into()))
    );
}

#[test]
fn sata_ssd() {
    let root = fixture("sata-ssd");
    assert_eq!(usable_cpus(&root).unwrap(), 8);
    let data = volume("sata-ssd", "/srv/pgdata/16/main");
    assert_eq!(data.device_number.as_deref(), Some("8:1"));
    assert_eq!(data.mount_options, ["rw", "noatime", "data=ordered"]);
    assert_eq!(data.top_device.as_deref(), Some("sda"));
    let sda = &data.leaves[0];
    assert_eq!(
        (sda.class, sda.vendor.as_deref(), sda.model.as_deref()),
        (DiskClass::Ssd, Some("ATA"), Some("Samsung SSD 870"))
    );
    assert_eq!(sda.scheduler.as_deref(), Some("mq-deadline"));
    assert!(!sda.virtio && sda.hw_raid_hint.is_none());
    // No udev database here: the SCSI device's wwid from sysfs.
    assert_eq!(
        sda.stable_id,
        Some(StableId::SysfsWwid("naa.5002538e40a4b0b6".into()))
    );
}

#[test]
fn btrfs_is_found_through_its_mount_source() {
    // btrfs reports an anonymous 0:48; /dev/sda3 leads to the disk.
    let data = volume("sata-ssd", "/srv/btrfs/pg");
    assert_eq!(data.fs_type, "btrfs");
    assert_eq!(data.device_number.as_deref(), Some("0:48"));
    assert_eq!(leaf_names(&data), ["sda"]);
    assert_eq!(classes(&data), [DiskClass::Ssd]);
}

#[test]
fn hdd() {
    let data = volume("hdd", "/var/lib/postgresql/16/main");
    assert_eq!(data.fs_type, "xfs");
    assert_eq!(
        data.mount_options,
        ["rw", "noatime", "attr2", "inode64", "noquota"]
    );
    let sda = &data.leaves[0];
    assert_eq!(sda.class, DiskClass::Hdd);
    assert_eq!(
        (sda.logical_block_size, sda.physical_block_size),
        (Some(512), Some(4096))
    );
    assert_eq!(sda.discard, Some(false));
}

#[test]
fn md_raid10_of_hdds() {
    let data = volume("md-raid10-hdd", "/var/lib/postgresql/16/main");
    assert_eq!(data.device_number.as_deref(), Some("9:0"));
    assert_eq!(data.top_device.as_deref(), Some("md0"));
    assert_eq!(
        data.raid_arrays,
        [RaidFacts {
            device: "md0".into(),
            level: "raid10".into(),
            raid_disks: 4,
            data_disks: 2,
            chunk_bytes: Some(512 * 1024),
        }]
    );
    // Members are partitions; the leaves are their disks.
    assert_eq!(leaf_names(&data), ["sda", "sdb", "sdc", "sdd"]);
    assert_eq!(classes(&data), [DiskClass::Hdd; 4]);
    assert_eq!(data.data_bearing_disks, 2);
}

#[test]
fn lvm_on_nvme_with_a_separate_wal_volume() {
    let data = volume("lvm-on-nvme", "/srv/pgdata/16/main");
    assert_eq!(data.top_device.as_deref(), Some("dm-0"));
    assert_eq!(data.top_device_dm_name.as_deref(), Some("vgdata-pgdata"));
    assert_eq!(
        data.top_device_id,
        Some(StableId::DmUuid(
            "LVM-kq3Vv0Jd8lGQ1rJtW0x9hCwVZLhYx1gT5oJcM1nC0bQd0m9hR5iYq1bQ2kJZ3x4y".into()
        ))
    );
    assert_eq!(leaf_names(&data), ["nvme0n1", "nvme1n1"]);
    assert_eq!(classes(&data), [DiskClass::Nvme; 2]);
    assert_eq!(data.data_bearing_disks, 2);
    assert_eq!(data.leaves[0].write_back_cache, Some(false));
    let wal = volume("lvm-on-nvme", "/srv/pgwal/16/main");
    assert_eq!(wal.top_device_dm_name.as_deref(), Some("vgdata-pgwal"));
    assert_eq!(leaf_names(&wal), ["nvme1n1"]);
    assert!(!data.same_file_system(&wal));
}

#[test]
fn virtio_is_unknown_with_a_note() {
    let root = fixture("virtio");
    assert_eq!(memory_bytes(&root).unwrap(), 8_141_092 * 1024);
    assert_eq!(usable_cpus(&root).unwrap(), 2);
    let data = volume("virtio", "/var/lib/postgresql/16/main");
    assert_eq!(
        data.mount_options,
        ["rw", "relatime", "discard", "errors=remount-ro"]
    );
    let vda = &data.leaves[0];
    assert!(vda.virtio);
    assert_eq!(
        (vda.rotational, vda.class),
        (Some(true), DiskClass::Unknown)
    );
    assert_eq!(vda.scheduler.as_deref(), Some("mq-deadline"));
    assert_eq!(
        data.notes,
        [
            "vda: class unknown, virtio disk: rotational=1 describes nothing about the \
          host's storage (set storage-type)"
        ]
    );
}

#[test]
fn hardware_raid_volume() {
    let data = volume("hw-raid", "/var/lib/postgresql/16/main");
    // xfs straight on the whole disk: no partition step.
    assert_eq!(data.device_number.as_deref(), Some("8:0"));
    let sda = &data.leaves[0];
    assert_eq!(sda.hw_raid_hint.as_deref(), Some("DELL PERC H740P Mini"));
    assert_eq!(sda.class, DiskClass::Unknown);
    assert_eq!(sda.write_back_cache, Some(false));
    // 640 KiB stripe / 64 KiB chunk.
    assert_eq!(data.data_bearing_disks, 10);
    assert!(
        data.notes[0].contains("hardware RAID volume"),
        "{:?}",
        data.notes
    );
}

#[test]
fn loop_device() {
    let data = volume("loop", "/mnt/pgdata/16/main");
    let loop0 = &data.leaves[0];
    assert_eq!(
        loop0.backing_file.as_deref(),
        Some(Path::new("/srv/images/pgdata.img"))
    );
    assert_eq!(loop0.class, DiskClass::Unknown);
    assert_eq!(loop0.read_ahead_kb, Some(2560));
    assert_eq!(
        loop0.stable_id,
        Some(StableId::LoopFile("/srv/images/pgdata.img".into()))
    );
    assert!(data.notes[0].starts_with("loop0: loop device backed by /srv/images/pgdata.img"));
}

#[test]
fn multipath_lun_is_one_san_leaf() {
    let data = volume("multipath-san", "/srv/pgdata/16/main");
    assert_eq!(leaf_names(&data), ["dm-0"]);
    let lun = &data.leaves[0];
    assert!(lun.multipath);
    assert_eq!(lun.class, DiskClass::San);
    assert_eq!(lun.dm_name.as_deref(), Some("mpatha"));
    assert_eq!(
        lun.stable_id,
        Some(StableId::DmUuid(
            "mpath-3600a098038304437415d4b6a59684a52".into()
        ))
    );
    assert_eq!(data.data_bearing_disks, 1);
}

#[test]
fn cgroup_v2_container() {
    let root = fixture("container-cgroup-v2");
    // MemTotal says 64GB; the namespace root's memory.max says 8GB.
    assert_eq!(memory_bytes(&root).unwrap(), 8 * GIB);
    // 16 CPUs allowed, cpu.max "200000 100000".
    assert_eq!(usable_cpus(&root).unwrap(), 2);
    let data = volume("container-cgroup-v2", "/var/lib/postgresql/16/main");
    assert_eq!(data.fs_type, "zfs");
    assert!(data.leaves.is_empty());
    assert!(
        data.notes[0].contains("has no block device in sysfs"),
        "{:?}",
        data.notes
    );
}

#[test]
fn cgroup_v1_container() {
    let root = fixture("container-cgroup-v1");
    assert_eq!(memory_bytes(&root).unwrap(), 4 * GIB);
    // 1.5 CPUs of quota round up to 2.
    assert_eq!(usable_cpus(&root).unwrap(), 2);
    let data = volume("container-cgroup-v1", "/var/lib/postgresql");
    assert_eq!(data.fs_type, "overlay");
    assert!(data.leaves.is_empty());
}

#[test]
fn missing_files_degrade_instead_of_panicking() {
    let empty = SysRoot::under(&PathBuf::from("/nonexistent/fixture"));
    assert!(memory_bytes(&empty).is_err());
    assert!(usable_cpus(&empty).is_err());
    let data = describe_volume(&empty, Path::new("/srv"), None, FsSpace::default());
    assert!(data.leaves.is_empty());
    assert!(data.notes[0].starts_with("no mount for /srv"));
    let data = describe_volume(
        &empty,
        Path::new("/srv"),
        Some(DeviceNumber::new(8, 1)),
        FsSpace::default(),
    );
    assert_eq!(data.device_number.as_deref(), Some("8:1"));
    assert!(data.notes[1].contains("has no block device in sysfs"));
}

#[test]
fn errors_name_the_missing_file() {
    let empty = SysRoot::under(Path::new("/nonexistent/fixture"));
    let err = memory_bytes(&empty).unwrap_err().to_string();
    assert_eq!(err, "could not read /nonexistent/fixture/proc/meminfo");
}
