//! The host tuning plan: kernel settings for a dedicated database machine,
//! rendered as a sysctl.d file and a udev rules file. Pure: applying them
//! (writing `/proc/sys` and sysfs knobs, reading back HugePages_Total) is
//! the charm's job (`tuning::host_apply`).
//!
//! [`host_plan`] is what the machine's hardware calls for; [`for_this_host`]
//! fits it to what else is on the host: huge pages are added to a
//! reservation that is already there, and a setting the operator's own
//! sysctl files set after the charm's file at boot is left to them (so the
//! live value and the value after a reboot agree), with a note saying so.
//!
//! Sources: the project's tuning research (Red Hat and Oracle scheduler
//! guidance, the PostgreSQL kernel-resources chapter, EDB's writeback
//! article, Dalibo's overcommit notes).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::classify::{classify, volume_class};
use crate::config::StorageTypeOverride;
use crate::facts::{DiskClass, MachineFacts, StableId, VolumeFacts};
use crate::units::{format_memory, GIB, MIB};

/// What to change on the host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostPlan {
    /// Sorted by key.
    pub sysctls: Vec<Sysctl>,
    /// Sorted by name.
    pub devices: Vec<DeviceTuning>,
    /// For `/sys/kernel/mm/transparent_hugepage/enabled`: always `never`;
    /// the PostgreSQL docs say THP "have been known to cause performance
    /// degradation" and PostgreSQL never asks for them.
    pub transparent_hugepage: &'static str,
    /// Huge pages to reserve (`vm.nr_hugepages`), if any.
    pub huge_pages: Option<u64>,
}

/// One kernel parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sysctl {
    pub key: &'static str,
    pub value: String,
    pub reason: String,
}

/// Queue settings for one block device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceTuning {
    /// Kernel name now: `sda`, `nvme0n1`, `md0`, `dm-0` (live changes).
    pub name: String,
    /// What the udev rule matches, since kernel names reorder at boot;
    /// `None`: tuned live only.
    pub stable_id: Option<StableId>,
    pub scheduler: Option<&'static str>,
    pub read_ahead_kb: Option<u32>,
    pub reason: String,
}

/// Host settings for `facts`.
///
/// * `storage_type`: the `storage-type` option, so misreported disks get
///   the scheduler of their real class.
/// * `huge_pages_needed`: `postgres -C shared_memory_size_in_huge_pages` for
///   the planned configuration; pass it only when shared_buffers is at least
///   2GB (below that huge pages are not worth a reservation; reference §6).
/// * `overcommit_opt_in`: strict overcommit (`vm.overcommit_memory = 2`)
///   makes allocations fail instead of waking the OOM killer, but a wrong
///   ratio breaks forks of everything on the machine, so only on request.
pub fn host_plan(
    facts: &MachineFacts,
    storage_type: StorageTypeOverride,
    huge_pages_needed: Option<u64>,
    overcommit_opt_in: bool,
) -> HostPlan {
    let huge_pages = huge_pages_needed.map(huge_pages_to_reserve);
    let mut sysctls = vec![Sysctl {
        key: "vm.swappiness",
        value: "10".into(),
        reason: "keep PostgreSQL's memory in RAM but let a small swap absorb a spike \
                 before the OOM killer does (Dalibo, pgtuner; the kernel default is 60)"
            .into(),
    }];
    sysctls.extend(dirty_limits(facts, storage_type));
    if let (Some(pages), Some(needed)) = (huge_pages, huge_pages_needed) {
        sysctls.push(Sysctl {
            key: "vm.nr_hugepages",
            value: pages.to_string(),
            reason: format!(
                "PostgreSQL's shared_memory_size_in_huge_pages ({needed}) plus 2% margin; \
                 read HugePages_Total back before setting huge_pages = on"
            ),
        });
    }
    if overcommit_opt_in {
        sysctls.extend(strict_overcommit());
    }
    sysctls.sort_by_key(|sysctl| sysctl.key);
    HostPlan {
        sysctls,
        devices: device_tuning(facts, storage_type),
        transparent_hugepage: "never",
        huge_pages,
    }
}

/// The pool to reserve for `needed` pages: 2 % more (rounded up), because
/// other processes may map huge pages too and allocation can fall short.
pub fn huge_pages_to_reserve(needed: u64) -> u64 {
    needed + needed.div_ceil(50)
}

/// Dirty page cache limits in bytes instead of the default 10 %/20 % of
/// memory (25GB/51GB of dirty data on a 256GB machine, flushed in one
/// burst). EDB's "Linux writeback configuration" recommends 64–256MB in
/// the background and a few times that as the hard limit; pgbent measured
/// that going below ~256MB/1GB costs throughput on fast SSDs. So flash
/// gets 256MB/1GB, spinning or unknown disks 64MB/256MB. Never above the
/// kernel's defaults (10 %/20 % of memory), so small machines stay small.
fn dirty_limits(facts: &MachineFacts, storage_type: StorageTypeOverride) -> Vec<Sysctl> {
    let class = slowest_class(facts, storage_type);
    let (background, limit) = match class {
        DiskClass::Nvme | DiskClass::Ssd | DiskClass::San => (256 * MIB, GIB),
        DiskClass::Hdd | DiskClass::Unknown => (64 * MIB, 256 * MIB),
    };
    let background = background.min(facts.memory_bytes / 10);
    let limit = limit.min(facts.memory_bytes / 5);
    let why = format!(
        "for {} storage (the slowest under PGDATA and pg_wal)",
        class.as_str()
    );
    vec![
        Sysctl {
            key: "vm.dirty_background_bytes",
            value: background.to_string(),
            reason: format!(
                "start writeback at {} of dirty page cache {why}, instead of 10% of memory",
                format_memory(background)
            ),
        },
        Sysctl {
            key: "vm.dirty_bytes",
            value: limit.to_string(),
            reason: format!(
                "block writers at {} of dirty page cache {why}, instead of 20% of memory",
                format_memory(limit)
            ),
        },
    ]
}

/// Dalibo's KB suggests `vm.overcommit_ratio = 80` with a small swap. Huge
/// pages are outside the commit limit, so 80 % of the rest of memory is left
/// for backends, the Juju agent and the OS.
fn strict_overcommit() -> Vec<Sysctl> {
    vec![
        Sysctl {
            key: "vm.overcommit_memory",
            value: "2".into(),
            reason: "strict overcommit (opted in): allocations fail cleanly instead of the \
                     OOM killer ending the postmaster (PostgreSQL docs 19.4.4)"
                .into(),
        },
        Sysctl {
            key: "vm.overcommit_ratio",
            value: "80".into(),
            reason: "commit limit = swap + 80% of memory outside huge pages (Dalibo)".into(),
        },
    ]
}

/// Volumes the host plan covers: PGDATA's and, if separate, pg_wal's.
fn volumes(facts: &MachineFacts) -> impl Iterator<Item = &VolumeFacts> {
    facts.data.iter().chain(facts.wal.iter())
}

fn slowest_class(facts: &MachineFacts, storage_type: StorageTypeOverride) -> DiskClass {
    volumes(facts)
        .map(|volume| volume_class(volume, storage_type))
        .max_by_key(|class| class.slowness())
        .unwrap_or(DiskClass::Unknown)
}

/// Scheduler on every leaf device, read-ahead on PGDATA's top device.
fn device_tuning(facts: &MachineFacts, storage_type: StorageTypeOverride) -> Vec<DeviceTuning> {
    let mut devices: BTreeMap<String, DeviceTuning> = BTreeMap::new();
    for volume in volumes(facts) {
        for leaf in &volume.leaves {
            // A loop device forwards to a file; the disk under that file is
            // the one whose scheduler matters. Exception: a file system made
            // right on a loop device (the loop device is the volume's top
            // device) gets that loop device tuned, because its queue is where
            // all of the volume's I/O enters. The integration tests rely on it
            // to see host tuning applied to their own loop disk.
            let is_loop = leaf.backing_file.is_some() || leaf.name.starts_with("loop");
            if is_loop && volume.top_device.as_deref() != Some(leaf.name.as_str()) {
                continue;
            }
            let class = classify(leaf, storage_type);
            let (scheduler, why) = scheduler_for(class);
            let entry = device_entry(&mut devices, &leaf.name, leaf.stable_id.as_ref());
            entry.scheduler = Some(scheduler);
            entry.reason = format!("{} disk: {scheduler}, {why}", class.as_str());
        }
    }
    if let Some(data) = &facts.data {
        if let (Some(top), DiskClass::Hdd) = (&data.top_device, volume_class(data, storage_type)) {
            let entry = device_entry(&mut devices, top, data.top_device_id.as_ref());
            entry.read_ahead_kb = Some(HDD_READ_AHEAD_KB);
            let separator = if entry.reason.is_empty() { "" } else { "; " };
            entry.reason.push_str(&format!(
                "{separator}read-ahead {HDD_READ_AHEAD_KB}kB: PGDATA is on spinning disks, \
                 where larger sequential reads pay off"
            ));
        }
    }
    devices.into_values().collect()
}

/// Older DBA guides use `blockdev --setra 4096`..`16384` sectors (2–8MB) on
/// HDD arrays; 4MB is in that range. Flash keeps the kernel's choice: the
/// reference found no reason to change it without measuring.
const HDD_READ_AHEAD_KB: u32 = 4096;

fn device_entry<'a>(
    devices: &'a mut BTreeMap<String, DeviceTuning>,
    name: &str,
    stable_id: Option<&StableId>,
) -> &'a mut DeviceTuning {
    devices
        .entry(name.to_string())
        .or_insert_with(|| DeviceTuning {
            name: name.to_string(),
            stable_id: stable_id.cloned(),
            scheduler: None,
            read_ahead_kb: None,
            reason: String::new(),
        })
}

/// Red Hat ("do not change" NVMe's none) and Oracle (mq-deadline for HDD,
/// none for SSD/NVMe); never bfq, which favours interactive desktops.
fn scheduler_for(class: DiskClass) -> (&'static str, &'static str) {
    match class {
        DiskClass::Nvme | DiskClass::Ssd => (
            "none",
            "flash has no seek cost to reorder for; the device queues deeply itself",
        ),
        DiskClass::San => ("none", "the storage array schedules and caches itself"),
        DiskClass::Hdd => (
            "mq-deadline",
            "sorts requests to cut seeks and bounds how long reads wait behind writes",
        ),
        DiskClass::Unknown => (
            "mq-deadline",
            "right for spinning disks and cheap for flash behind a hypervisor or RAID \
             controller, which schedule again",
        ),
    }
}

/// Pairs the kernel keeps exclusive: setting one zeroes the other, and the
/// `*_bytes` side cannot be written as 0.
pub const TWINS: [(&str, &str); 2] = [
    ("vm.dirty_bytes", "vm.dirty_ratio"),
    ("vm.dirty_background_bytes", "vm.dirty_background_ratio"),
];

/// A sysctl setting the host's own sysctl files apply after the charm's
/// file at boot, so it, not the charm's, is in force after a reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootOverride {
    pub file: PathBuf,
    pub value: String,
}

/// One sysctl.d file: its name (what boot orders by), where it is, and what
/// it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlFile {
    pub name: String,
    pub path: PathBuf,
    pub text: String,
}

/// Which keys the host's sysctl files set after the charm's file (named
/// `ours`) at boot, as systemd-sysctl applies them: `files` in directory
/// priority order (`/etc/sysctl.d` first), where a name seen earlier hides
/// the same name later; then every file in name order, later assignments
/// winning. Keys are normalised (`vm/swappiness` = `vm.swappiness`, a
/// leading `-` ignored).
pub fn sysctl_boot_overrides(ours: &str, files: &[SysctlFile]) -> BTreeMap<String, BootOverride> {
    let mut by_name: BTreeMap<&str, &SysctlFile> = BTreeMap::new();
    for file in files {
        by_name.entry(file.name.as_str()).or_insert(file);
    }
    let mut last: BTreeMap<String, (bool, BootOverride)> = BTreeMap::new();
    for (name, file) in by_name {
        let after_ours = name > ours;
        for line in file.text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim().trim_start_matches('-').replace('/', ".");
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            let setting = BootOverride {
                file: file.path.clone(),
                value,
            };
            last.insert(key, (after_ours, setting));
        }
    }
    last.into_iter()
        .filter(|(_, (after_ours, _))| *after_ours)
        .map(|(key, (_, setting))| (key, setting))
        .collect()
}

/// What else is on the host that the plan must fit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Settings the host's own files apply after the charm's at boot.
    pub boot_overrides: BTreeMap<String, BootOverride>,
    /// Huge pages reserved by others (the live pool minus the charm's share).
    pub huge_pages_of_others: u64,
}

/// `plan` fitted to `host`: the charm's huge pages are added to the others'
/// reservation (`vm.nr_hugepages` = theirs + ours), and settings the host's
/// own files override at boot are left to them. Returns the plan and one
/// note per setting left to the host, for the unit's status.
pub fn for_this_host(plan: &HostPlan, host: &HostFacts) -> (HostPlan, Vec<String>) {
    let mut fitted = plan.clone();
    let mut notes = Vec::new();
    fitted.sysctls.retain(|sysctl| {
        let (key, ours) = (sysctl.key, &sysctl.value);
        if let Some(theirs) = host.boot_overrides.get(key).filter(|t| t.value != *ours) {
            notes.push(format!(
                "{key} is left at {} ({} sets it after the charm's file at boot; the charm \
                 would set {ours})",
                theirs.value,
                theirs.file.display(),
            ));
            return false;
        }
        // Setting a ratio zeroes its bytes twin, so a later ratio wins too.
        let twin = TWINS.iter().find(|(bytes, _)| *bytes == key);
        if let Some((theirs, ratio)) =
            twin.and_then(|(_, ratio)| Some((host.boot_overrides.get(*ratio)?, ratio)))
        {
            notes.push(format!(
                "{key} is left alone ({} sets {ratio} = {} after the charm's file at boot, \
                 which replaces it; the charm would set {ours})",
                theirs.file.display(),
                theirs.value,
            ));
            return false;
        }
        true
    });
    if fitted.sysctls.iter().all(|s| s.key != "vm.nr_hugepages") {
        fitted.huge_pages = None;
    }
    for sysctl in &mut fitted.sysctls {
        if sysctl.key == "vm.nr_hugepages" && host.huge_pages_of_others > 0 {
            let ours: u64 = sysctl.value.parse().unwrap_or(0);
            sysctl.value = (ours + host.huge_pages_of_others).to_string();
            sysctl.reason.push_str(&format!(
                "; on top of the {} huge pages already reserved on this host",
                host.huge_pages_of_others
            ));
        }
    }
    (fitted, notes)
}

/// One note for the unit's status per device of `plan` that is tuned live
/// (`tuned_live`) but has no stable identity for a udev rule: its tuning
/// does not survive a reboot.
pub fn live_only_devices(plan: &HostPlan, tuned_live: impl Fn(&str) -> bool) -> Vec<String> {
    plan.devices
        .iter()
        .filter(|d| {
            d.stable_id
                .as_ref()
                .and_then(StableId::udev_match)
                .is_none()
        })
        .filter(|d| tuned_live(&d.name))
        .map(|d| {
            format!(
                "{} is tuned live only: it has no stable identity (WWN, serial, ID_PATH) for \
                 a udev rule, so a reboot brings back the kernel's defaults",
                d.name
            )
        })
        .collect()
}

const MANAGED_HEADER: &str = "# Managed by the PostgreSQL charm and rewritten on every change; \
edits here are lost.\n# Set the charm's host-tuning option to false to remove it.\n";

/// The contents of `/etc/sysctl.d/*.conf`: one commented line per setting.
pub fn render_sysctl_conf(plan: &HostPlan) -> String {
    let mut text = String::from(MANAGED_HEADER);
    for sysctl in &plan.sysctls {
        text.push_str(&format!(
            "\n# {}\n{} = {}\n",
            sysctl.reason, sysctl.key, sysctl.value
        ));
    }
    text
}

/// The contents of `/etc/udev/rules.d/*.rules`. Devices are matched by
/// their stable identity ([`StableId::udev_match`]: WWN, serial, `ID_PATH`,
/// `DM_UUID`, `MD_UUID`, a loop device's file), never by a kernel name that
/// can belong to another disk after a reboot; the file must sort after
/// `63-md-raid-arrays.rules`, which sets the last of those properties. A
/// device without a stable identity gets no rule, only a comment.
pub fn render_udev_rules(plan: &HostPlan) -> String {
    let mut text = String::from(MANAGED_HEADER);
    text.push_str("# Devices are matched by what names them across reboots, not by sdX names.\n");
    for device in &plan.devices {
        let Some(matcher) = device.stable_id.as_ref().and_then(StableId::udev_match) else {
            text.push_str(&format!(
                "\n# {}: {}\n# {} has no stable identity (WWN, serial, ID_PATH) to match: \
                 tuned live only, not after a reboot.\n",
                device.name, device.reason, device.name
            ));
            continue;
        };
        let mut rule = format!("ACTION==\"add|change\", SUBSYSTEM==\"block\", {matcher}");
        if let Some(scheduler) = device.scheduler {
            rule.push_str(&format!(", ATTR{{queue/scheduler}}=\"{scheduler}\""));
        }
        if let Some(read_ahead) = device.read_ahead_kb {
            rule.push_str(&format!(", ATTR{{queue/read_ahead_kb}}=\"{read_ahead}\""));
        }
        text.push_str(&format!("\n# {}: {}\n{rule}\n", device.name, device.reason));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::DiskFacts;

    fn leaf(name: &str, rotational: bool) -> DiskFacts {
        let mut disk = DiskFacts {
            name: name.into(),
            rotational: Some(rotational),
            nvme: name.starts_with("nvme"),
            stable_id: Some(StableId::Serial(format!("ATA_Disk_{name}"))),
            ..DiskFacts::default()
        };
        disk.class = classify(&disk, StorageTypeOverride::Auto);
        disk
    }

    fn machine(memory_bytes: u64, data: VolumeFacts, wal: Option<VolumeFacts>) -> MachineFacts {
        MachineFacts {
            memory_bytes,
            cpus: 16,
            data: Some(data),
            wal,
            pg_major: 16,
            has_lz4: true,
        }
    }

    fn md_raid10_of_hdds() -> VolumeFacts {
        VolumeFacts {
            top_device: Some("md0".into()),
            top_device_id: Some(StableId::MdUuid(
                "3a1b2c3d:4e5f6071:8293a4b5:c6d7e8f9".into(),
            )),
            leaves: ["sda", "sdb", "sdc", "sdd"]
                .into_iter()
                .map(|name| leaf(name, true))
                .collect(),
            ..VolumeFacts::default()
        }
    }

    fn lvm_on_nvme() -> VolumeFacts {
        VolumeFacts {
            top_device: Some("dm-1".into()),
            top_device_dm_name: Some("vg-pgwal".into()),
            top_device_id: Some(StableId::DmUuid("LVM-pgwal".into())),
            leaves: vec![leaf("nvme1n1", false)],
            ..VolumeFacts::default()
        }
    }

    fn value<'a>(plan: &'a HostPlan, key: &str) -> Option<&'a str> {
        plan.sysctls
            .iter()
            .find(|sysctl| sysctl.key == key)
            .map(|sysctl| sysctl.value.as_str())
    }

    #[test]
    fn hdd_raid_gets_deadline_read_ahead_and_small_dirty_limits() {
        let facts = machine(128 * GIB, md_raid10_of_hdds(), Some(lvm_on_nvme()));
        let plan = host_plan(&facts, StorageTypeOverride::Auto, None, false);
        let summary: Vec<_> = plan
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.scheduler, d.read_ahead_kb))
            .collect();
        assert_eq!(
            summary,
            [
                ("md0", None, Some(4096)),
                ("nvme1n1", Some("none"), None),
                ("sda", Some("mq-deadline"), None),
                ("sdb", Some("mq-deadline"), None),
                ("sdc", Some("mq-deadline"), None),
                ("sdd", Some("mq-deadline"), None),
            ]
        );
        assert_eq!(value(&plan, "vm.dirty_background_bytes"), Some("67108864"));
        assert_eq!(value(&plan, "vm.dirty_bytes"), Some("268435456"));
        assert_eq!(value(&plan, "vm.swappiness"), Some("10"));
        assert_eq!(value(&plan, "vm.nr_hugepages"), None);
        assert_eq!(value(&plan, "vm.overcommit_memory"), None);
        assert_eq!(plan.transparent_hugepage, "never");
    }

    #[test]
    fn flash_gets_large_dirty_limits_capped_by_memory() {
        let nvme = || VolumeFacts {
            top_device: Some("nvme0n1".into()),
            leaves: vec![leaf("nvme0n1", false)],
            ..VolumeFacts::default()
        };
        let big = host_plan(
            &machine(64 * GIB, nvme(), None),
            StorageTypeOverride::Auto,
            None,
            false,
        );
        assert_eq!(value(&big, "vm.dirty_background_bytes"), Some("268435456"));
        assert_eq!(value(&big, "vm.dirty_bytes"), Some("1073741824"));
        // 1GB of memory: never above the kernel's 10 % / 20 %.
        let tiny = host_plan(
            &machine(GIB, nvme(), None),
            StorageTypeOverride::Auto,
            None,
            false,
        );
        assert_eq!(value(&tiny, "vm.dirty_background_bytes"), Some("107374182"));
        assert_eq!(value(&tiny, "vm.dirty_bytes"), Some("214748364"));
        assert_eq!(big.devices[0].read_ahead_kb, None);
    }

    #[test]
    fn override_changes_the_scheduler_of_misreporting_disks() {
        let vda = VolumeFacts {
            top_device: Some("vda".into()),
            leaves: vec![DiskFacts {
                virtio: true,
                ..leaf("vda", true)
            }],
            ..VolumeFacts::default()
        };
        let facts = machine(8 * GIB, vda, None);
        let auto = host_plan(&facts, StorageTypeOverride::Auto, None, false);
        assert_eq!(auto.devices[0].scheduler, Some("mq-deadline"));
        assert_eq!(auto.devices[0].read_ahead_kb, None);
        let ssd = host_plan(&facts, StorageTypeOverride::Ssd, None, false);
        assert_eq!(ssd.devices[0].scheduler, Some("none"));
    }

    #[test]
    fn huge_pages_and_overcommit() {
        let facts = machine(24 * GIB, md_raid10_of_hdds(), None);
        let plan = host_plan(&facts, StorageTypeOverride::Auto, Some(3154), true);
        // 3154 pages measured for shared_buffers = 6GB (reference §5.2).
        assert_eq!(plan.huge_pages, Some(3218));
        assert_eq!(value(&plan, "vm.nr_hugepages"), Some("3218"));
        assert_eq!(value(&plan, "vm.overcommit_memory"), Some("2"));
        assert_eq!(value(&plan, "vm.overcommit_ratio"), Some("80"));
        let keys: Vec<_> = plan.sysctls.iter().map(|s| s.key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn loop_devices_are_tuned_only_when_they_carry_the_file_system() {
        let loop_leaf = |name: &str| DiskFacts {
            backing_file: Some("/srv/pg.img".into()),
            ..leaf(name, true)
        };
        // An md array built from loop devices: the loops are left alone.
        let md_of_loops = VolumeFacts {
            top_device: Some("md0".into()),
            leaves: vec![loop_leaf("loop0"), loop_leaf("loop1")],
            ..VolumeFacts::default()
        };
        let plan = host_plan(
            &machine(8 * GIB, md_of_loops, None),
            StorageTypeOverride::Auto,
            None,
            false,
        );
        assert!(plan.devices.is_empty());
        // PGDATA's file system right on a loop device: that device is tuned.
        let loop_volume = VolumeFacts {
            top_device: Some("loop0".into()),
            leaves: vec![loop_leaf("loop0")],
            ..VolumeFacts::default()
        };
        let plan = host_plan(
            &machine(8 * GIB, loop_volume, None),
            StorageTypeOverride::Auto,
            None,
            false,
        );
        let summary: Vec<_> = plan
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.scheduler, d.read_ahead_kb))
            .collect();
        assert_eq!(summary, [("loop0", Some("mq-deadline"), None)]);
    }

    #[test]
    fn renders_commented_files() {
        let facts = machine(128 * GIB, md_raid10_of_hdds(), Some(lvm_on_nvme()));
        let mut plan = host_plan(&facts, StorageTypeOverride::Auto, Some(100), false);
        plan.devices.retain(|d| d.name == "md0" || d.name == "sda");
        plan.devices.push(DeviceTuning {
            name: "dm-1".into(),
            stable_id: Some(StableId::DmUuid("LVM-pgwal".into())),
            scheduler: None,
            read_ahead_kb: Some(4096),
            reason: "example".into(),
        });
        plan.devices.push(DeviceTuning {
            name: "sdz".into(),
            stable_id: None,
            scheduler: Some("none"),
            read_ahead_kb: None,
            reason: "example".into(),
        });
        let sysctl = render_sysctl_conf(&plan);
        assert!(sysctl.starts_with("# Managed by the PostgreSQL charm"));
        assert!(sysctl.contains("\n# PostgreSQL's shared_memory_size_in_huge_pages (100) plus 2% margin; read HugePages_Total back before setting huge_pages = on\nvm.nr_hugepages = 102\n"));
        assert!(sysctl.contains("\nvm.swappiness = 10\n"));
        for line in sysctl
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            assert!(line.contains(" = "), "{line}");
        }
        let udev = render_udev_rules(&plan);
        let rules: Vec<_> = udev.lines().filter(|l| l.starts_with("ACTION")).collect();
        assert_eq!(
            rules,
            [
                r#"ACTION=="add|change", SUBSYSTEM=="block", ENV{MD_UUID}=="3a1b2c3d:4e5f6071:8293a4b5:c6d7e8f9", ATTR{queue/read_ahead_kb}="4096""#,
                r#"ACTION=="add|change", SUBSYSTEM=="block", ENV{ID_SERIAL}=="ATA_Disk_sda", ATTR{queue/scheduler}="mq-deadline""#,
                r#"ACTION=="add|change", SUBSYSTEM=="block", ENV{DM_UUID}=="LVM-pgwal", ATTR{queue/read_ahead_kb}="4096""#,
            ]
        );
        assert!(udev.contains("\n# sda: hdd disk: mq-deadline, sorts requests"));
    }

    #[test]
    fn stable_ids_become_udev_matches_or_nothing() {
        let cases = [
            (
                StableId::Wwn("0x5002538e40a4b0b6".into()),
                Some(r#"ENV{ID_WWN}=="0x5002538e40a4b0b6""#),
            ),
            (
                StableId::Path("pci-0000:00:17.0-ata-1".into()),
                Some(r#"ENV{ID_PATH}=="pci-0000:00:17.0-ata-1""#),
            ),
            (
                StableId::SysfsWwid("t10.ATA     Samsung SSD".into()),
                Some(r#"ATTRS{wwid}=="t10.ATA     Samsung SSD""#),
            ),
            (
                StableId::LoopFile("/srv/pg.img".into()),
                Some(r#"KERNEL=="loop*", ATTR{loop/backing_file}=="/srv/pg.img""#),
            ),
            // Glob characters, quotes and empty values match the wrong disks.
            (StableId::LoopFile("/srv/a*b.img".into()), None),
            (StableId::Serial("x\"y".into()), None),
            (StableId::Wwn(String::new()), None),
        ];
        for (id, wanted) in cases {
            assert_eq!(id.udev_match().as_deref(), wanted, "{id:?}");
        }
    }

    fn conf(name: &str, dir: &str, text: &str) -> SysctlFile {
        SysctlFile {
            name: name.into(),
            path: PathBuf::from(dir).join(name),
            text: text.into(),
        }
    }

    #[test]
    fn boot_order_decides_which_file_wins() {
        let files = [
            conf(
                "99-local.conf",
                "/etc/sysctl.d",
                "vm/swappiness = 30\n# vm.dirty_bytes = 9\n",
            ),
            conf(
                "10-early.conf",
                "/etc/sysctl.d",
                "vm.swappiness = 5\nvm.dirty_bytes=1\n",
            ),
            // Hidden by /etc's file of the same name.
            conf(
                "99-local.conf",
                "/usr/lib/sysctl.d",
                "vm.overcommit_memory = 1\n",
            ),
            conf(
                "70-vendor.conf",
                "/usr/lib/sysctl.d",
                "-vm.dirty_ratio = 30\n",
            ),
        ];
        let overrides = sysctl_boot_overrides("60-juju-pg-charm.conf", &files);
        let keys: Vec<&str> = overrides.keys().map(String::as_str).collect();
        assert_eq!(keys, ["vm.dirty_ratio", "vm.swappiness"]);
        assert_eq!(overrides["vm.swappiness"].value, "30");
        assert_eq!(
            overrides["vm.swappiness"].file,
            PathBuf::from("/etc/sysctl.d/99-local.conf")
        );

        let facts = machine(64 * GIB, md_raid10_of_hdds(), None);
        let mut plan = host_plan(&facts, StorageTypeOverride::Auto, Some(1000), false);
        let host = HostFacts {
            boot_overrides: overrides,
            huge_pages_of_others: 64,
        };
        let (fitted, notes) = for_this_host(&plan, &host);
        // swappiness (directly) and dirty_bytes (through its ratio twin)
        // are the host's; dirty_background_bytes and huge pages the charm's.
        assert_eq!(value(&fitted, "vm.swappiness"), None);
        assert_eq!(value(&fitted, "vm.dirty_bytes"), None);
        assert_eq!(
            value(&fitted, "vm.dirty_background_bytes"),
            Some("67108864")
        );
        assert_eq!(value(&fitted, "vm.nr_hugepages"), Some("1084"));
        assert_eq!(fitted.huge_pages, Some(1020));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("vm.dirty_bytes is left alone"),
            "{notes:?}"
        );
        assert!(
            notes[1].starts_with("vm.swappiness is left at 30"),
            "{notes:?}"
        );
        // Nothing on the host: the plan as it was.
        assert_eq!(
            for_this_host(&plan, &HostFacts::default()),
            (plan.clone(), Vec::new())
        );
        // A disk udev cannot name is tuned, and the status says for how long
        // (when the charm changes it live at all).
        assert!(live_only_devices(&plan, |_| true).is_empty());
        plan.devices[1].stable_id = None;
        assert!(live_only_devices(&plan, |_| false).is_empty());
        let notes = live_only_devices(&plan, |_| true);
        assert_eq!(
            notes,
            [format!(
                "{} is tuned live only: it has no stable identity (WWN, serial, ID_PATH) for a \
                 udev rule, so a reboot brings back the kernel's defaults",
                plan.devices[1].name
            )]
        );
    }
}
