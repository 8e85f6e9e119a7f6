//! The host tuning plan: kernel settings for a dedicated database machine,
//! rendered as a sysctl.d file and a udev rules file. Pure: applying them
//! (`sysctl --system`, `udevadm trigger`, writing THP's sysfs knob, reading
//! back HugePages_Total) is the caller's job.
//!
//! Sources: `/work/shared/reference/postgres-tuning.md` §3 and §6 (Red Hat
//! and Oracle scheduler guidance, the PostgreSQL kernel-resources chapter,
//! EDB's writeback article, Dalibo's overcommit notes).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::tuning::classify::{classify, volume_class};
use crate::tuning::config::StorageTypeOverride;
use crate::tuning::facts::{DiskClass, MachineFacts, VolumeFacts};
use crate::tuning::units::{format_memory, GIB, MIB};

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
    /// Kernel name: `sda`, `nvme0n1`, `md0`, `dm-0`.
    pub name: String,
    /// Device-mapper name, matched instead of `dm-N` (which can change
    /// between boots).
    pub dm_name: Option<String>,
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
            let entry = device_entry(&mut devices, &leaf.name, leaf.dm_name.as_deref());
            entry.scheduler = Some(scheduler);
            entry.reason = format!("{} disk: {scheduler}, {why}", class.as_str());
        }
    }
    if let Some(data) = &facts.data {
        if let (Some(top), DiskClass::Hdd) = (&data.top_device, volume_class(data, storage_type)) {
            let entry = device_entry(&mut devices, top, data.top_device_dm_name.as_deref());
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
    dm_name: Option<&str>,
) -> &'a mut DeviceTuning {
    devices
        .entry(name.to_string())
        .or_insert_with(|| DeviceTuning {
            name: name.to_string(),
            dm_name: dm_name.map(str::to_string),
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

/// The contents of `/etc/udev/rules.d/*.rules`. Devices are matched by the
/// kernel name they had when the plan was made (device-mapper devices by
/// their stable DM_NAME, which the dm rules set earlier, so the file name
/// should sort after `10-dm.rules`, e.g. `60-postgresql-charm.rules`).
pub fn render_udev_rules(plan: &HostPlan) -> String {
    let mut text = String::from(MANAGED_HEADER);
    text.push_str("# Devices are matched by the names they had when this was written.\n");
    for device in &plan.devices {
        let matcher = match &device.dm_name {
            Some(dm_name) => format!("ENV{{DM_NAME}}==\"{dm_name}\""),
            None => format!("KERNEL==\"{}\"", device.name),
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
    use crate::tuning::facts::DiskFacts;

    fn leaf(name: &str, rotational: bool) -> DiskFacts {
        let mut disk = DiskFacts {
            name: name.into(),
            rotational: Some(rotational),
            nvme: name.starts_with("nvme"),
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
            dm_name: Some("vg-pgwal".into()),
            scheduler: None,
            read_ahead_kb: Some(4096),
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
                r#"ACTION=="add|change", SUBSYSTEM=="block", KERNEL=="md0", ATTR{queue/read_ahead_kb}="4096""#,
                r#"ACTION=="add|change", SUBSYSTEM=="block", KERNEL=="sda", ATTR{queue/scheduler}="mq-deadline""#,
                r#"ACTION=="add|change", SUBSYSTEM=="block", ENV{DM_NAME}=="vg-pgwal", ATTR{queue/read_ahead_kb}="4096""#,
            ]
        );
        assert!(udev.contains("\n# sda: hdd disk: mq-deadline, sorts requests"));
    }
}
