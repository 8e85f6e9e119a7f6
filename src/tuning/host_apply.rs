//! Applying the host plan ([`crate::tuning::host`]) to the machine, and
//! handing the machine back: the imperative shell around the pure plan,
//! run by every converge and by unit removal.
//!
//! Idempotent: files are written only when their content changes and live
//! kernel knobs only when their value differs; every change is logged at
//! info level (it reaches `juju-log`) as `old → new`. What it touches:
//!
//! * `/etc/sysctl.d/60-juju-pg-charm.conf` for boot, and the same keys under
//!   `/proc/sys` now. Only those keys: `sysctl --system` would re-apply every
//!   other file on the machine too.
//! * `/etc/udev/rules.d/69-juju-pg-charm.rules` for boot and hot-plug
//!   (devices matched by stable identity, after udev's own rules name them),
//!   and each planned device's `queue/scheduler` and `queue/read_ahead_kb`
//!   now.
//! * `/etc/systemd/system/juju-pg-charm-thp.service` for boot (enabled when
//!   systemd runs), and `/sys/kernel/mm/transparent_hugepage/enabled` now.
//! * `host-originals.json` in the unit's state directory
//!   ([`crate::state::host`]): before changing anything the charm records
//!   what was there and what it sets, plus any directory it has to create.
//!
//! Handing back ([`revert_host`]: `host-tuning` turned off, or the unit
//! removed) puts every recorded value back, removes the files (disabling
//! the unit first) and the directories it created, and deletes the
//! records. Some settings need care:
//!
//! * The kernel refuses `vm.dirty_bytes = 0` and `vm.dirty_background_bytes
//!   = 0`: an original 0 meant the `*_ratio` twin was in force, so the twin's
//!   recorded value is written back instead, which zeroes the bytes again.
//! * `vm.nr_hugepages` is shared with whoever else reserves huge pages: the
//!   charm adds its pages to what is there and gives back only what it
//!   added, even if the others changed theirs meanwhile.
//! * A value someone else changed after the charm set it (THP, a sysctl) is
//!   theirs now and is left alone.
//! * A device is restored only while it is still the same disk (its stable
//!   identity); kernel names can point at another disk after a reboot.
//!
//! Which of these a test may change is in [`HostRoots`] (its `global` and
//! `devices`, from [`crate::knobs`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use super::roots::{HostRoots, LEGACY_UDEV_FILE, SYSCTL_FILE, THP_UNIT};
use crate::fsx::{self, Owner};
use crate::state::host::{AppliedRecord, HugePagePool, Original, Originals};
use crate::tuning::host::{
    render_sysctl_conf, render_udev_rules, sysctl_boot_overrides, HostFacts, HostPlan, SysctlFile,
    TWINS,
};

const NR_HUGEPAGES: &str = "vm.nr_hugepages";

const THP_UNIT_TEXT: &str = "\
# Managed by the PostgreSQL charm; removed when its host-tuning option is off.
[Unit]
Description=Transparent huge pages off for PostgreSQL (juju-pg-charm)
DefaultDependencies=no
After=sysinit.target local-fs.target
Before=basic.target postgresql.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo never > /sys/kernel/mm/transparent_hugepage/enabled'

[Install]
WantedBy=basic.target
";

impl Original {
    /// Whether `live` is still what the charm set (or the record is too
    /// old to say).
    fn still_ours(&self, live: &str) -> bool {
        self.set
            .as_deref()
            .is_none_or(|set| normalize(set) == normalize(live))
    }
}

impl HugePagePool {
    pub fn read(roots: &HostRoots) -> Self {
        let meminfo = fs::read_to_string(roots.proc.join("meminfo")).unwrap_or_default();
        let field = |name: &str| {
            meminfo.lines().find_map(|line| {
                let rest = line.strip_prefix(name)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
        };
        HugePagePool {
            nr_hugepages: read_trimmed(&roots.sysctl(NR_HUGEPAGES)).and_then(|v| v.parse().ok()),
            total: field("HugePages_Total"),
            free: field("HugePages_Free"),
            page_size_kb: field("Hugepagesize"),
            others: huge_pages_of_others(roots, &Originals::load(&roots.state)),
        }
    }

    /// Whether the pages beyond the others' reservation hold `needed`.
    pub fn holds(&self, needed: u64) -> bool {
        self.total
            .is_some_and(|total| total.saturating_sub(self.others) >= needed)
    }
}

/// The pages of a `vm.nr_hugepages` record that are the charm's, when the
/// pool is `live` now.
fn charm_share(record: &Original, live: u64) -> u64 {
    let (Ok(was), Some(Ok(set))) = (
        record.was.parse::<u64>(),
        record.set.as_deref().map(str::parse::<u64>),
    ) else {
        return 0;
    };
    let added = set.saturating_sub(was);
    if live == set {
        added
    } else if live == was {
        0 // never written (a kill before the write), or given back by hand
    } else {
        added.min(live)
    }
}

/// Huge pages reserved by anyone but the charm.
fn huge_pages_of_others(roots: &HostRoots, originals: &Originals) -> u64 {
    let live: u64 = read_trimmed(&roots.sysctl(NR_HUGEPAGES))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let ours = originals
        .sysctls
        .get(NR_HUGEPAGES)
        .map_or(0, |record| charm_share(record, live));
    live - ours
}

/// What one [`apply_host_plan`] or [`revert_host`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostChanges {
    /// One line per change made now (`vm.swappiness: 60 → 10`).
    pub changed: Vec<String>,
    /// What could not be done (a read-only `/proc/sys` in a container, a
    /// scheduler the kernel lacks); the rest was still applied.
    pub problems: Vec<String>,
    /// The pool after the changes, read back from the kernel.
    pub pool: HugePagePool,
}

impl HostChanges {
    fn change(&mut self, line: String) {
        log::info!("host tuning: {line}");
        self.changed.push(line);
    }

    fn problem(&mut self, line: String) {
        log::warn!("host tuning: {line}");
        self.problems.push(line);
    }
}

/// Brings the host in line with `plan` (a plan already fitted
/// [`for_this_host`](crate::tuning::host::for_this_host)), recording every
/// value before it changes.
///
/// Errors are for the charm's own files (state, /etc); a live knob that
/// cannot be written is a [`HostChanges::problems`] entry instead, and its
/// record is kept so the next hook tries again.
pub fn apply_host_plan(plan: &HostPlan, roots: &HostRoots) -> Result<HostChanges> {
    let mut changes = HostChanges::default();
    let mut originals = Originals::load(&roots.state);
    apply(plan, roots, &mut originals, &mut changes)?;
    changes.pool = HugePagePool::read(roots);
    Ok(changes)
}

/// Hands the host back: puts back everything the charm changed and removes
/// its files, directories and records. Errors and problems as for
/// [`apply_host_plan`].
pub fn revert_host(roots: &HostRoots) -> Result<HostChanges> {
    let mut changes = HostChanges::default();
    let mut originals = Originals::load(&roots.state);
    revert(roots, &mut originals, &mut changes)?;
    changes.pool = HugePagePool::read(roots);
    Ok(changes)
}

fn apply(
    plan: &HostPlan,
    roots: &HostRoots,
    originals: &mut Originals,
    changes: &mut HostChanges,
) -> Result<()> {
    // Files first: they say what is intended even if a live write fails.
    write_file(
        roots,
        originals,
        &roots.sysctl_file(),
        &render_sysctl_conf(plan),
        changes,
    )?;
    remove_file(&roots.etc.join(LEGACY_UDEV_FILE), changes)?;
    if plan.devices.is_empty() {
        remove_file(&roots.udev_file(), changes)?;
    } else {
        write_file(
            roots,
            originals,
            &roots.udev_file(),
            &render_udev_rules(plan),
            changes,
        )?;
    }
    if write_file(roots, originals, &roots.thp_unit(), THP_UNIT_TEXT, changes)? && roots.systemd() {
        systemctl(&["daemon-reload"], changes);
        systemctl(&["enable", THP_UNIT], changes);
    }

    // sysctls: the planned values, and the originals of any a previous plan
    // set but this one does not (strict overcommit turned off, no more huge
    // pages).
    let planned: BTreeSet<&str> = plan.sysctls.iter().map(|s| s.key).collect();
    for key in originals.sysctls.keys().cloned().collect::<Vec<_>>() {
        if !planned.contains(key.as_str()) {
            restore_sysctl(roots, originals, &key, changes)?;
        }
    }
    if roots.global {
        let others = huge_pages_of_others(roots, originals);
        for sysctl in &plan.sysctls {
            let path = roots.sysctl(sysctl.key);
            let Some(old) = read_trimmed(&path) else {
                changes.problem(format!("{} is not readable; skipped", sysctl.key));
                continue;
            };
            let wanted = &sysctl.value;
            let recorded = originals.sysctls.get(sysctl.key);
            if normalize(&old) == normalize(wanted)
                && recorded.is_none_or(|r| r.set.as_deref() == Some(wanted.as_str()))
            {
                continue;
            }
            let mut record = match recorded {
                Some(record) => record.clone(),
                None => {
                    let mut record = Original::new(&old, wanted);
                    record.twin =
                        twin_of(sysctl.key)
                            .filter(|_| old.trim() == "0")
                            .and_then(|twin| {
                                Some((twin.to_string(), read_trimmed(&roots.sysctl(twin))?))
                            });
                    record
                }
            };
            record.set = Some(wanted.clone());
            if sysctl.key == NR_HUGEPAGES {
                // Ours is what goes beyond the others' pages.
                record.was = others.to_string();
            }
            originals.sysctls.insert(sysctl.key.to_string(), record);
            originals.save(&roots.state)?;
            if normalize(&old) != normalize(wanted) {
                set_knob(&path, sysctl.key, &old, wanted, changes);
            }
            if sysctl.key == NR_HUGEPAGES {
                // What the kernel gave (fragmented memory gives less) is
                // what the charm holds.
                if let (Some(given), Some(record)) =
                    (read_trimmed(&path), originals.sysctls.get_mut(NR_HUGEPAGES))
                {
                    if record.set.as_deref() != Some(given.as_str()) {
                        record.set = Some(given);
                        originals.save(&roots.state)?;
                    }
                }
            }
        }
    }

    // Block devices.
    let mut planned_devices: BTreeMap<&str, Vec<(&str, String)>> = BTreeMap::new();
    for device in &plan.devices {
        let attributes = planned_devices.entry(&device.name).or_default();
        if let Some(scheduler) = device.scheduler {
            attributes.push(("scheduler", scheduler.to_string()));
        }
        if let Some(read_ahead) = device.read_ahead_kb {
            attributes.push(("read_ahead_kb", read_ahead.to_string()));
        }
    }
    for (device, recorded) in originals.devices.clone() {
        for attribute in recorded.attributes.keys() {
            let still = planned_devices
                .get(device.as_str())
                .is_some_and(|wanted| wanted.iter().any(|(a, _)| a == attribute));
            if !still {
                restore_device(roots, originals, &device, attribute, changes)?;
            }
        }
    }
    for (device, attributes) in &planned_devices {
        if !roots.device_allowed(device) {
            continue;
        }
        for (attribute, wanted) in attributes {
            let path = roots.queue(device, attribute);
            let Some(text) = read_trimmed(&path) else {
                changes.problem(format!("{} is not readable; skipped", path.display()));
                continue;
            };
            let old = selected(&text);
            if old == *wanted {
                continue;
            }
            if *attribute == "scheduler"
                && !text
                    .split_whitespace()
                    .any(|s| s.trim_matches(['[', ']']) == wanted)
            {
                changes.problem(format!(
                    "{device}: scheduler {wanted} is not available ({text}); left at {old}"
                ));
                continue;
            }
            let identity = roots.device_id(device);
            let recorded = originals.devices.entry(device.to_string()).or_default();
            if recorded.attributes.is_empty() {
                recorded.identity = identity;
            }
            recorded
                .attributes
                .entry(attribute.to_string())
                .or_insert_with(|| Original::new(&old, wanted))
                .set = Some(wanted.clone());
            originals.save(&roots.state)?;
            set_knob(
                &path,
                &format!("{device} {attribute}"),
                &old,
                wanted,
                changes,
            );
        }
    }

    // Transparent huge pages.
    if roots.global {
        let path = roots.thp();
        if let Some(text) = read_trimmed(&path) {
            let old = selected(&text);
            if old != plan.transparent_hugepage {
                originals
                    .transparent_hugepage
                    .get_or_insert_with(|| Original::new(&old, plan.transparent_hugepage));
                originals.save(&roots.state)?;
                set_knob(
                    &path,
                    "transparent_hugepage",
                    &old,
                    plan.transparent_hugepage,
                    changes,
                );
            }
        }
    }
    Ok(())
}

fn revert(roots: &HostRoots, originals: &mut Originals, changes: &mut HostChanges) -> Result<()> {
    for key in originals.sysctls.keys().cloned().collect::<Vec<_>>() {
        restore_sysctl(roots, originals, &key, changes)?;
    }
    for (device, recorded) in originals.devices.clone() {
        for attribute in recorded.attributes.keys() {
            restore_device(roots, originals, &device, attribute, changes)?;
        }
    }
    if let Some(record) = originals.transparent_hugepage.clone() {
        let path = roots.thp();
        // Kept for the next try when the kernel refuses.
        let restored = match read_trimmed(&path).map(|text| selected(&text)) {
            Some(now) if now != record.was && record.still_ours(&now) => {
                set_knob(&path, "transparent_hugepage", &now, &record.was, changes)
            }
            Some(now) if now != record.was => {
                changes.change(format!(
                    "transparent_hugepage: left at {now}, set by someone else since the charm \
                     set {}",
                    record.set.as_deref().unwrap_or("?")
                ));
                true
            }
            _ => true,
        };
        if restored {
            originals.transparent_hugepage = None;
            originals.save(&roots.state)?;
        }
    }
    let unit = roots.thp_unit();
    let unit_existed = unit.exists();
    if unit_existed && roots.systemd() {
        systemctl(&["disable", THP_UNIT], changes);
    }
    for path in [
        roots.sysctl_file(),
        roots.udev_file(),
        roots.etc.join(LEGACY_UDEV_FILE),
        unit,
    ] {
        remove_file(&path, changes)?;
    }
    if unit_existed && roots.systemd() {
        systemctl(&["daemon-reload"], changes);
    }
    for dir in std::mem::take(&mut originals.created_dirs).iter().rev() {
        if fsx::remove_dir_if_empty(dir) {
            changes.change(format!("removed {}", dir.display()));
        }
    }
    originals.save(&roots.state)?;
    AppliedRecord::clear(&roots.state)?;
    Ok(())
}

fn twin_of(key: &str) -> Option<&'static str> {
    TWINS
        .iter()
        .find(|(bytes, _)| *bytes == key)
        .map(|(_, ratio)| *ratio)
}

fn restore_sysctl(
    roots: &HostRoots,
    originals: &mut Originals,
    key: &str,
    changes: &mut HostChanges,
) -> Result<()> {
    let Some(record) = originals.sysctls.get(key).cloned() else {
        return Ok(());
    };
    let path = roots.sysctl(key);
    let restored = match read_trimmed(&path) {
        // A knob that is gone has nothing to restore.
        None => true,
        Some(now) if key == NR_HUGEPAGES => {
            let live: u64 = now.parse().unwrap_or(0);
            let target = (live - charm_share(&record, live)).to_string();
            target == now || set_knob(&path, key, &now, &target, changes)
        }
        Some(now) if !record.still_ours(&now) => {
            changes.change(format!(
                "{key}: left at {now}, set by someone else since the charm set {}",
                record.set.as_deref().unwrap_or("?")
            ));
            true
        }
        Some(now) if normalize(&now) == normalize(&record.was) => true,
        Some(now) => match &record.twin {
            // The kernel refuses 0 here: the ratio twin brings it back.
            Some((twin, value)) if record.was.trim() == "0" => {
                let twin_path = roots.sysctl(twin);
                let twin_now = read_trimmed(&twin_path).unwrap_or_default();
                set_knob(&twin_path, twin, &twin_now, value, changes)
                    && read_trimmed(&path).is_some_and(|bytes| bytes == "0")
            }
            _ => set_knob(&path, key, &now, &record.was, changes),
        },
    };
    if restored {
        originals.sysctls.remove(key);
        originals.save(&roots.state)?;
    }
    Ok(())
}

fn restore_device(
    roots: &HostRoots,
    originals: &mut Originals,
    device: &str,
    attribute: &str,
    changes: &mut HostChanges,
) -> Result<()> {
    let Some(recorded) = originals.devices.get(device).cloned() else {
        return Ok(());
    };
    let Some(record) = recorded.attributes.get(attribute) else {
        return Ok(());
    };
    let path = roots.queue(device, attribute);
    let identity = roots.device_id(device);
    let restored = match read_trimmed(&path).map(|text| selected(&text)) {
        // The name now belongs to another disk (or to none): nothing of
        // ours to put back there.
        _ if recorded.identity.is_some() && identity != recorded.identity => {
            changes.change(format!(
                "{device} {attribute}: not restored, {device} is another disk now"
            ));
            true
        }
        Some(now) if now != record.was && record.still_ours(&now) => set_knob(
            &path,
            &format!("{device} {attribute}"),
            &now,
            &record.was,
            changes,
        ),
        _ => true,
    };
    if restored {
        if let Some(entry) = originals.devices.get_mut(device) {
            entry.attributes.remove(attribute);
            if entry.attributes.is_empty() {
                originals.devices.remove(device);
            }
        }
        originals.save(&roots.state)?;
    }
    Ok(())
}

/// Writes a live knob and reads it back; `false` (and a problem) when the
/// kernel refused or kept another value.
fn set_knob(path: &Path, label: &str, old: &str, new: &str, changes: &mut HostChanges) -> bool {
    if let Err(e) = fs::write(path, new) {
        changes.problem(format!("{label}: could not set {new} ({e}); still {old}"));
        return false;
    }
    let now = read_trimmed(path)
        .map(|text| selected(&text))
        .unwrap_or_default();
    if normalize(&now) == normalize(new) {
        changes.change(format!("{label}: {old} → {new}"));
        true
    } else {
        // nr_hugepages falls short when memory is fragmented.
        changes.problem(format!(
            "{label}: asked for {new}, the kernel gives {now} (was {old})"
        ));
        false
    }
}

fn systemctl(args: &[&str], changes: &mut HostChanges) {
    match Command::new("systemctl").args(args).output() {
        Ok(out) if out.status.success() => {
            if args[0] != "daemon-reload" {
                changes.change(format!("systemctl {}", args.join(" ")));
            }
        }
        Ok(out) => changes.problem(format!(
            "systemctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => changes.problem(format!("systemctl {}: {e}", args.join(" "))),
    }
}

/// The bracketed choice of `none [mq-deadline] kyber`, else the text.
fn selected(text: &str) -> String {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
        .unwrap_or(text)
        .to_string()
}

/// sysctls print tabs between several values (`kernel.sem`).
fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|t| t.trim().to_string())
}

/// Writes one of the charm's files (atomic, durable, root's), recording any
/// directory it must create first; `false` when it was already there.
fn write_file(
    roots: &HostRoots,
    originals: &mut Originals,
    path: &Path,
    content: &str,
    changes: &mut HostChanges,
) -> Result<bool> {
    if let Some(dir) = path.parent() {
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.exists())
            .map(Path::to_path_buf)
            .collect();
        if !missing.is_empty() {
            for made in missing.into_iter().rev() {
                if !originals.created_dirs.contains(&made) {
                    originals.created_dirs.push(made);
                }
            }
            originals.save(&roots.state)?;
        }
        fsx::create_dir_all(dir, Owner::current(), 0o755)?;
    }
    let wrote = fsx::write_atomic(path, content.as_bytes(), Owner::current(), 0o644)?;
    if wrote {
        changes.change(format!("wrote {}", path.display()));
    }
    Ok(wrote)
}

fn remove_file(path: &Path, changes: &mut HostChanges) -> Result<()> {
    if fsx::remove_file(path)? {
        changes.change(format!("removed {}", path.display()));
    }
    Ok(())
}

/// The host's own sysctl.d files (not the charm's), in boot's directory
/// priority.
fn host_sysctl_files(roots: &HostRoots) -> Vec<SysctlFile> {
    let ours = roots.sysctl_file();
    let mut files = Vec::new();
    for dir in &roots.sysctl_dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<SysctlFile> = entries
            .flatten()
            .filter(|e| e.path() != ours)
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                name.ends_with(".conf").then_some(())?;
                Some(SysctlFile {
                    text: fs::read_to_string(e.path()).ok()?,
                    path: e.path(),
                    name,
                })
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        files.extend(found);
    }
    files
}

/// What else on the host the plan must fit ([`for_this_host`]).
pub(super) fn host_facts(roots: &HostRoots) -> HostFacts {
    let ours = Path::new(SYSCTL_FILE)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    HostFacts {
        boot_overrides: sysctl_boot_overrides(&ours, &host_sysctl_files(roots)),
        huge_pages_of_others: huge_pages_of_others(roots, &Originals::load(&roots.state)),
    }
}

/// Live values for the report.
pub fn live_sysctl(roots: &HostRoots, key: &str) -> Option<String> {
    read_trimmed(&roots.sysctl(key)).map(|v| normalize(&v))
}

pub fn live_device(roots: &HostRoots, device: &str, attribute: &str) -> Option<String> {
    read_trimmed(&roots.queue(device, attribute)).map(|v| selected(&v))
}

pub fn live_thp(roots: &HostRoots) -> Option<String> {
    read_trimmed(&roots.thp()).map(|v| selected(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateDir;
    use crate::tuning::facts::StableId;
    use crate::tuning::host::{for_this_host, DeviceTuning, Sysctl};
    use crate::tuning::huge_pages::shared_buffers_bytes;
    use crate::tuning::units::GIB;

    /// A fake host: /etc, /proc, /sys and udev's database below a scratch
    /// directory. Plain files accept any value, unlike the kernel: the real
    /// kernel's rules (dirty_bytes = 0) are tested in tests/host_handback.rs.
    struct FakeHost(PathBuf);

    impl FakeHost {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("pg-charm-apply-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            let host = FakeHost(dir);
            host.put("proc/sys/vm/swappiness", "60\n");
            host.put("proc/sys/vm/dirty_bytes", "0\n");
            host.put("proc/sys/vm/dirty_ratio", "20\n");
            host.put("proc/sys/vm/nr_hugepages", "0\n");
            host.put(
                "proc/meminfo",
                "MemTotal: 1000 kB\nHugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n",
            );
            host.put(
                "sys/kernel/mm/transparent_hugepage/enabled",
                "always [madvise] never\n",
            );
            host.put(
                "sys/block/sda/queue/scheduler",
                "none [mq-deadline] kyber bfq\n",
            );
            host.put("sys/block/sda/queue/read_ahead_kb", "128\n");
            host.put("sys/block/sda/dev", "8:0\n");
            host.put("run/udev/data/b8:0", "E:ID_WWN=0x5000c500a1b2c3d4\n");
            host.put("sys/block/loop3/queue/scheduler", "[none] mq-deadline\n");
            host.put("sys/block/loop3/queue/read_ahead_kb", "128\n");
            host.put("sys/block/loop3/loop/backing_file", "/srv/pg.img\n");
            host
        }

        fn put(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        fn get(&self, path: &str) -> String {
            fs::read_to_string(self.0.join(path)).unwrap()
        }

        fn roots(&self) -> HostRoots {
            HostRoots {
                etc: self.0.join("etc"),
                proc: self.0.join("proc"),
                sys: self.0.join("sys"),
                udev_data: self.0.join("run/udev/data"),
                sysctl_dirs: vec![self.0.join("etc/sysctl.d")],
                state: StateDir::at(&self.0.join("state")),
                global: true,
                devices: None,
            }
        }
    }

    impl Drop for FakeHost {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn plan() -> HostPlan {
        HostPlan {
            sysctls: vec![
                Sysctl {
                    key: "vm.dirty_bytes",
                    value: "268435456".into(),
                    reason: "r".into(),
                },
                Sysctl {
                    key: "vm.swappiness",
                    value: "10".into(),
                    reason: "r".into(),
                },
            ],
            devices: vec![
                DeviceTuning {
                    name: "loop3".into(),
                    stable_id: Some(StableId::LoopFile("/srv/pg.img".into())),
                    scheduler: Some("mq-deadline"),
                    read_ahead_kb: Some(4096),
                    reason: "r".into(),
                },
                DeviceTuning {
                    name: "sda".into(),
                    stable_id: Some(StableId::Wwn("0x5000c500a1b2c3d4".into())),
                    scheduler: Some("none"),
                    read_ahead_kb: None,
                    reason: "r".into(),
                },
            ],
            transparent_hugepage: "never",
            huge_pages: None,
        }
    }

    #[test]
    fn applies_then_reverts_exactly_what_was_there() {
        let host = FakeHost::new("roundtrip");
        let roots = host.roots();
        let changes = apply_host_plan(&plan(), &roots).unwrap();
        assert!(changes.problems.is_empty(), "{:?}", changes.problems);
        // Plain files accept any text; the bracket is how the kernel shows it.
        assert_eq!(host.get("proc/sys/vm/swappiness"), "10");
        assert_eq!(host.get("sys/block/loop3/queue/scheduler"), "mq-deadline");
        assert_eq!(host.get("sys/block/loop3/queue/read_ahead_kb"), "4096");
        assert_eq!(host.get("sys/block/sda/queue/scheduler"), "none");
        assert_eq!(
            host.get("sys/kernel/mm/transparent_hugepage/enabled"),
            "never"
        );
        assert!(host
            .get("etc/sysctl.d/60-juju-pg-charm.conf")
            .contains("vm.swappiness = 10"));
        let udev = host.get("etc/udev/rules.d/69-juju-pg-charm.rules");
        assert!(udev.contains(
            r#"KERNEL=="loop*", ATTR{loop/backing_file}=="/srv/pg.img", ATTR{queue/scheduler}="mq-deadline""#
        ), "{udev}");
        assert!(
            udev.contains(r#"ENV{ID_WWN}=="0x5000c500a1b2c3d4", ATTR{queue/scheduler}="none""#),
            "{udev}"
        );
        assert!(!udev.contains("KERNEL==\"sda\""), "{udev}");
        assert!(host
            .get("etc/systemd/system/juju-pg-charm-thp.service")
            .contains("echo never"));
        let originals = Originals::load(&roots.state);
        assert_eq!(originals.sysctls["vm.swappiness"].was, "60");
        assert_eq!(
            originals.sysctls["vm.swappiness"].set.as_deref(),
            Some("10")
        );
        assert_eq!(
            originals.sysctls["vm.dirty_bytes"].twin,
            Some(("vm.dirty_ratio".into(), "20".into()))
        );
        assert_eq!(
            originals.devices["sda"].attributes["scheduler"].was,
            "mq-deadline"
        );
        assert_eq!(
            originals.devices["sda"].identity,
            Some(StableId::Wwn("0x5000c500a1b2c3d4".into()))
        );
        assert_eq!(
            originals
                .transparent_hugepage
                .as_ref()
                .map(|o| o.was.as_str()),
            Some("madvise")
        );
        // The charm made these directories, and records that.
        assert!(originals
            .created_dirs
            .contains(&host.0.join("etc/udev/rules.d")));

        // A second run changes nothing.
        let again = apply_host_plan(&plan(), &roots).unwrap();
        assert!(again.changed.is_empty(), "{:?}", again.changed);

        // The fake dirty_bytes does not zero itself like the kernel's when
        // the ratio is written: do it here, as the kernel would.
        host.put("proc/sys/vm/dirty_bytes", "0");
        let reverted = revert_host(&roots).unwrap();
        assert!(reverted.problems.is_empty(), "{:?}", reverted.problems);
        assert_eq!(host.get("proc/sys/vm/swappiness"), "60");
        assert_eq!(host.get("proc/sys/vm/dirty_ratio"), "20\n");
        assert_eq!(host.get("sys/block/loop3/queue/scheduler"), "none");
        assert_eq!(host.get("sys/block/loop3/queue/read_ahead_kb"), "128");
        assert_eq!(host.get("sys/block/sda/queue/scheduler"), "mq-deadline");
        assert_eq!(
            host.get("sys/kernel/mm/transparent_hugepage/enabled"),
            "madvise"
        );
        for file in [
            "etc/sysctl.d/60-juju-pg-charm.conf",
            "etc/udev/rules.d/69-juju-pg-charm.rules",
            "etc/systemd/system/juju-pg-charm-thp.service",
            "etc/udev",
            "etc/sysctl.d",
            "state/host-originals.json",
        ] {
            assert!(!host.0.join(file).exists(), "{file} left behind");
        }
    }

    #[test]
    fn an_original_zero_dirty_bytes_is_restored_through_its_ratio() {
        let host = FakeHost::new("twin");
        let roots = host.roots();
        apply_host_plan(&plan(), &roots).unwrap();
        // The kernel zeroed the ratio when the bytes were set.
        host.put("proc/sys/vm/dirty_ratio", "0");
        // The fake does not zero the bytes on the ratio write: the restore
        // is not confirmed, so it is kept for the next hook, not lost.
        revert_host(&roots).unwrap();
        assert_eq!(host.get("proc/sys/vm/dirty_ratio"), "20");
        assert_ne!(host.get("proc/sys/vm/dirty_bytes"), "0");
        assert!(Originals::load(&roots.state)
            .sysctls
            .contains_key("vm.dirty_bytes"));
        // Once the bytes read 0 (the kernel's doing), it is done.
        host.put("proc/sys/vm/dirty_bytes", "0");
        revert_host(&roots).unwrap();
        assert!(Originals::load(&roots.state).sysctls.is_empty());
    }

    #[test]
    fn what_someone_else_changed_since_is_left_alone() {
        let host = FakeHost::new("others");
        let roots = host.roots();
        apply_host_plan(&plan(), &roots).unwrap();
        host.put("proc/sys/vm/swappiness", "30");
        host.put("sys/kernel/mm/transparent_hugepage/enabled", "always");
        host.put("sys/block/sda/queue/scheduler", "none [mq-deadline] kyber");
        host.put("proc/sys/vm/dirty_bytes", "0"); // the kernel's doing, see above
        let reverted = revert_host(&roots).unwrap();
        assert!(reverted.problems.is_empty(), "{:?}", reverted.problems);
        assert_eq!(host.get("proc/sys/vm/swappiness"), "30");
        assert_eq!(
            host.get("sys/kernel/mm/transparent_hugepage/enabled"),
            "always"
        );
        assert_eq!(
            host.get("sys/block/sda/queue/scheduler"),
            "none [mq-deadline] kyber"
        );
        assert!(!roots.state.file("host-originals.json").exists());
    }

    #[test]
    fn huge_pages_are_added_to_others_and_only_ours_given_back() {
        let host = FakeHost::new("huge");
        let roots = host.roots();
        // Another tenant holds 100 pages.
        host.put("proc/sys/vm/nr_hugepages", "100");
        let mut wanted = plan();
        wanted.huge_pages = Some(50);
        wanted.sysctls.push(Sysctl {
            key: NR_HUGEPAGES,
            value: "50".into(),
            reason: "r".into(),
        });
        let (fitted, _) = for_this_host(&wanted, &host_facts(&roots));
        let nr = fitted
            .sysctls
            .iter()
            .find(|s| s.key == NR_HUGEPAGES)
            .unwrap();
        assert_eq!(nr.value, "150");
        apply_host_plan(&fitted, &roots).unwrap();
        assert_eq!(host.get("proc/sys/vm/nr_hugepages"), "150");
        host.put("proc/meminfo", "HugePages_Total:     150\n");
        let pool = HugePagePool::read(&roots);
        assert_eq!(pool.others, 100);
        assert!(pool.holds(50));
        assert!(!pool.holds(51));
        // Planned again: no change, the others' count stays theirs.
        let (again, _) = for_this_host(&wanted, &host_facts(&roots));
        assert_eq!(again, fitted);
        // The tenant takes 20 more meanwhile; the charm gives back its 50.
        host.put("proc/sys/vm/nr_hugepages", "170");
        revert_host(&roots).unwrap();
        assert_eq!(host.get("proc/sys/vm/nr_hugepages"), "120");
    }

    #[test]
    fn a_setting_the_hosts_files_override_at_boot_is_left_to_them() {
        let host = FakeHost::new("override");
        host.put("etc/sysctl.d/99-local.conf", "vm/swappiness = 30\n");
        host.put("etc/sysctl.d/10-early.conf", "vm.dirty_bytes = 1\n");
        let roots = host.roots();
        let (fitted, notes) = for_this_host(&plan(), &host_facts(&roots));
        assert!(fitted.sysctls.iter().all(|s| s.key != "vm.swappiness"));
        assert!(fitted.sysctls.iter().any(|s| s.key == "vm.dirty_bytes"));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("vm.swappiness is left at 30 (")
                && notes[0].contains("99-local.conf"),
            "{notes:?}"
        );
        apply_host_plan(&fitted, &roots).unwrap();
        assert_eq!(host.get("proc/sys/vm/swappiness"), "60\n");
        assert!(!host
            .get("etc/sysctl.d/60-juju-pg-charm.conf")
            .contains("swappiness"));
    }

    #[test]
    fn a_dropped_setting_gets_its_original_back() {
        let host = FakeHost::new("dropped");
        let roots = host.roots();
        apply_host_plan(&plan(), &roots).unwrap();
        let mut smaller = plan();
        smaller.sysctls.retain(|s| s.key != "vm.swappiness");
        smaller.devices.retain(|d| d.name != "sda");
        smaller.devices[0].read_ahead_kb = None;
        apply_host_plan(&smaller, &roots).unwrap();
        assert_eq!(host.get("proc/sys/vm/swappiness"), "60");
        assert_eq!(host.get("sys/block/sda/queue/scheduler"), "mq-deadline");
        assert_eq!(host.get("sys/block/loop3/queue/read_ahead_kb"), "128");
        assert_eq!(host.get("sys/block/loop3/queue/scheduler"), "mq-deadline");
        let originals = Originals::load(&roots.state);
        assert!(!originals.sysctls.contains_key("vm.swappiness"));
        assert!(!originals.devices.contains_key("sda"));
    }

    #[test]
    fn a_device_that_is_another_disk_now_is_not_restored() {
        let host = FakeHost::new("renamed");
        let roots = host.roots();
        apply_host_plan(&plan(), &roots).unwrap();
        // After a reboot, sda is another disk.
        host.put("run/udev/data/b8:0", "E:ID_WWN=0x5000c500ffffffff\n");
        host.put("sys/block/sda/queue/scheduler", "[none] mq-deadline\n");
        revert_host(&roots).unwrap();
        assert_eq!(
            host.get("sys/block/sda/queue/scheduler"),
            "[none] mq-deadline\n"
        );
        assert!(Originals::load(&roots.state).devices.is_empty());
    }

    #[test]
    fn records_of_earlier_revisions_still_restore() {
        let host = FakeHost::new("legacy");
        let roots = host.roots();
        host.put(
            "state/host-originals.json",
            r#"{"sysctls": {"vm.swappiness": "60"}, "devices": {"sda": {"scheduler": "mq-deadline"}}, "transparent_hugepage": "madvise"}"#,
        );
        host.put("proc/sys/vm/swappiness", "10");
        host.put("sys/block/sda/queue/scheduler", "[none] mq-deadline");
        host.put(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "always madvise [never]",
        );
        revert_host(&roots).unwrap();
        assert_eq!(host.get("proc/sys/vm/swappiness"), "60");
        assert_eq!(host.get("sys/block/sda/queue/scheduler"), "mq-deadline");
        assert_eq!(
            host.get("sys/kernel/mm/transparent_hugepage/enabled"),
            "madvise"
        );
    }

    #[test]
    fn test_mode_changes_only_the_listed_devices_and_no_global_setting() {
        let host = FakeHost::new("test-mode");
        let mut roots = host.roots();
        roots.global = false;
        roots.devices = Some(["loop3".to_string()].into());
        let changes = apply_host_plan(&plan(), &roots).unwrap();
        assert!(changes.problems.is_empty(), "{:?}", changes.problems);
        assert_eq!(host.get("proc/sys/vm/swappiness"), "60\n");
        assert_eq!(
            host.get("sys/kernel/mm/transparent_hugepage/enabled"),
            "always [madvise] never\n"
        );
        assert_eq!(
            host.get("sys/block/sda/queue/scheduler"),
            "none [mq-deadline] kyber bfq\n"
        );
        assert_eq!(host.get("sys/block/loop3/queue/scheduler"), "mq-deadline");
        // The files are still rendered, so tests can read them.
        assert!(host.0.join("etc/sysctl.d/60-juju-pg-charm.conf").is_file());
    }

    #[test]
    fn a_missing_scheduler_is_a_problem_not_an_error() {
        let host = FakeHost::new("no-scheduler");
        host.put("sys/block/sda/queue/scheduler", "[mq-deadline] kyber\n");
        let changes = apply_host_plan(&plan(), &host.roots()).unwrap();
        assert_eq!(changes.problems.len(), 1, "{:?}", changes.problems);
        assert!(changes.problems[0].contains("sda: scheduler none is not available"));
    }

    #[test]
    fn pool_and_values() {
        let host = FakeHost::new("pool");
        host.put(
            "proc/meminfo",
            "HugePages_Total:    3218\nHugePages_Free:     3000\nHugepagesize:       2048 kB\n",
        );
        host.put("proc/sys/vm/nr_hugepages", "3218");
        let pool = HugePagePool::read(&host.roots());
        assert_eq!(pool.total, Some(3218));
        assert_eq!(pool.free, Some(3000));
        assert_eq!(pool.page_size_kb, Some(2048));
        // None of them are the charm's: it has reserved nothing.
        assert_eq!(pool.others, 3218);
        assert!(!pool.holds(3154));
        assert_eq!(selected("none [mq-deadline] kyber"), "mq-deadline");
        assert_eq!(selected("4096"), "4096");
        assert_eq!(shared_buffers_bytes("'6GB'"), Some(6 * GIB));
        assert_eq!(shared_buffers_bytes("16384"), Some(128 << 20));
    }
}
