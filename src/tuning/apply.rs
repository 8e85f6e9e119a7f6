//! Applying the host plan ([`crate::tuning::host`]) to the machine: the
//! imperative shell around the pure plan, called from every converge.
//!
//! Idempotent: files are written only when their content changes and live
//! kernel knobs only when their value differs; every change is logged at
//! info level (it reaches `juju-log`) as `old → new`. What it touches, all
//! put back when `host-tuning` is turned off:
//!
//! * `/etc/sysctl.d/60-juju-pg-charm.conf` for boot, and the same keys under
//!   `/proc/sys` now. Only those keys: `sysctl --system` would re-apply every
//!   other file on the machine too.
//! * `/etc/udev/rules.d/61-juju-pg-charm.rules` for boot and hot-plug, and
//!   each planned device's `queue/scheduler` and `queue/read_ahead_kb` now.
//! * `/etc/systemd/system/juju-pg-charm-thp.service` for boot (enabled when
//!   systemd runs), and `/sys/kernel/mm/transparent_hugepage/enabled` now.
//! * `host-originals.json` in the unit's state directory ([`crate::state`]):
//!   the value of every live knob before the charm first changed it, so
//!   turning the option off puts back exactly what was there (also for knobs
//!   a later plan drops). `host-applied.json` next to it records the plan in
//!   force for the `tuning-report` action.
//!
//! Huge pages: [`tune_host`] asks the server how many it needs
//! (`postgres -C shared_memory_size_in_huge_pages`), reserves them through
//! `vm.nr_hugepages`, reads `HugePages_Total` back and sets `huge_pages = on`
//! only when the pool really holds them (`try` otherwise), so a shortfall
//! never stops PostgreSQL from starting.
//!
//! Machine changes: [`tune_host`] also records a summary of the machine
//! (memory, CPUs, the disks under PGDATA and pg_wal) in the state
//! directory; `update-status` compares it with the machine as it is now
//! ([`machine_changed`], no process spawned) and converges again when they
//! differ, which re-tunes PostgreSQL and the host.
//!
//! Test-only environment (Juju never sets these; tests on a shared machine
//! do, through the emulator's `test_env`): `PG_CHARM_HOST_ETC` moves the
//! files under /etc above to a scratch directory;
//! `PG_CHARM_HOST_GLOBAL=off` leaves global kernel settings alone (no
//! sysctl, THP or systemd change) and changes live device settings only for
//! the devices named in `PG_CHARM_HOST_DEVICES` (comma-separated kernel
//! names, e.g. the test's own `loop7`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::cluster::conf::{self, Setting};
use crate::cluster::{self, Cluster};
use crate::fsx::{self, Owner, Scratch};
use crate::options::ClusterOptions;
use crate::state::{self, StateDir};
use crate::tuning::detect::{self, SysRoot};
use crate::tuning::facts::MachineFacts;
use crate::tuning::host::{host_plan, render_sysctl_conf, render_udev_rules, HostPlan};
use crate::tuning::units::{parse_memory, GIB, KIB};

/// Below `etc`.
pub const SYSCTL_FILE: &str = "sysctl.d/60-juju-pg-charm.conf";
/// Below `etc`; sorts after `10-dm.rules`, so `DM_NAME` matches work.
pub const UDEV_FILE: &str = "udev/rules.d/61-juju-pg-charm.rules";
pub const THP_UNIT: &str = "juju-pg-charm-thp.service";
const THP_UNIT_DIR: &str = "systemd/system";
/// Below `sys`.
const THP_KNOB: &str = "kernel/mm/transparent_hugepage/enabled";

/// Huge pages are worth reserving from this much shared_buffers on
/// (reference §6; the same threshold as [`host_plan`]'s documentation).
const HUGE_PAGES_FROM: u64 = 2 * GIB;

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

// ------------------------------------------------------------------ roots

/// Where the host's files and kernel knobs are, and which live changes are
/// allowed. [`HostRoots::from_env`] is the real machine unless a test says
/// otherwise (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoots {
    /// `/etc`: sysctl.d, udev rules, systemd units.
    pub etc: PathBuf,
    /// `/proc`: `sys/...` knobs and `meminfo`.
    pub proc: PathBuf,
    /// `/sys`: block device queues, THP.
    pub sys: PathBuf,
    /// The unit's state directory: original values and the applied plan.
    pub state: StateDir,
    /// Whether global settings (sysctls, THP, systemd) may change now.
    pub global: bool,
    /// Devices whose live settings may change; `None`: every planned one.
    pub devices: Option<BTreeSet<String>>,
}

impl HostRoots {
    /// The real machine, every change allowed.
    pub fn host() -> Self {
        HostRoots {
            etc: PathBuf::from("/etc"),
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
            state: StateDir::unit(),
            global: true,
            devices: None,
        }
    }

    /// [`HostRoots::host`] adjusted by the test-only `PG_CHARM_HOST_*`
    /// variables.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut roots = HostRoots::host();
        if let Some(etc) = var("PG_CHARM_HOST_ETC") {
            roots.etc = PathBuf::from(etc);
        }
        let devices = var("PG_CHARM_HOST_DEVICES").map(|list| {
            list.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect::<BTreeSet<_>>()
        });
        if var("PG_CHARM_HOST_GLOBAL").is_some_and(|v| v.trim() == "off") {
            roots.global = false;
            roots.devices = Some(devices.unwrap_or_default());
        } else {
            roots.devices = devices;
        }
        roots
    }

    pub fn sysctl_file(&self) -> PathBuf {
        self.etc.join(SYSCTL_FILE)
    }

    pub fn udev_file(&self) -> PathBuf {
        self.etc.join(UDEV_FILE)
    }

    pub fn thp_unit(&self) -> PathBuf {
        self.etc.join(THP_UNIT_DIR).join(THP_UNIT)
    }

    fn sysctl(&self, key: &str) -> PathBuf {
        self.proc.join("sys").join(key.replace('.', "/"))
    }

    fn queue(&self, device: &str, attribute: &str) -> PathBuf {
        self.sys
            .join("block")
            .join(device)
            .join("queue")
            .join(attribute)
    }

    fn thp(&self) -> PathBuf {
        self.sys.join(THP_KNOB)
    }

    fn device_allowed(&self, name: &str) -> bool {
        self.devices.as_ref().is_none_or(|set| set.contains(name))
    }

    /// systemctl only for the real /etc, with global changes allowed, on a
    /// machine that runs systemd.
    fn systemd(&self) -> bool {
        self.global && self.etc == Path::new("/etc") && Path::new("/run/systemd/system").is_dir()
    }
}

// ------------------------------------------------------------------ state

/// The value of each live knob before the charm first changed it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Originals {
    /// sysctl key → value.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Device → queue attribute (`scheduler`, `read_ahead_kb`) → value.
    #[serde(default)]
    pub devices: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub transparent_hugepage: Option<String>,
}

impl Originals {
    pub fn load(roots: &HostRoots) -> Self {
        roots
            .state
            .read_json(state::HOST_ORIGINALS)
            .unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.sysctls.is_empty() && self.devices.is_empty() && self.transparent_hugepage.is_none()
    }

    /// Saved before the change it records, so a kill in between loses nothing.
    fn save(&self, roots: &HostRoots) -> Result<()> {
        if self.is_empty() {
            return roots.state.remove(state::HOST_ORIGINALS);
        }
        roots
            .state
            .write_json(state::HOST_ORIGINALS, self)
            .map(drop)
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
            nr_hugepages: read_trimmed(&roots.sysctl("vm.nr_hugepages"))
                .and_then(|v| v.parse().ok()),
            total: field("HugePages_Total"),
            free: field("HugePages_Free"),
            page_size_kb: field("Hugepagesize"),
        }
    }

    /// Whether the pool holds `needed` pages.
    pub fn holds(&self, needed: u64) -> bool {
        self.total.is_some_and(|total| total >= needed)
    }
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
    /// `vm.nr_hugepages` asked for (needed + margin).
    pub huge_pages_reserved: Option<u64>,
    pub pool: HugePagePool,
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
    pub fn load(roots: &HostRoots) -> Option<Self> {
        roots.state.read_json(state::HOST_APPLIED)
    }
}

/// What one [`apply_host_plan`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostChanges {
    pub enabled: bool,
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

// ------------------------------------------------------------------ apply

/// Brings the host in line with `plan` (`enabled`), or puts back everything
/// the charm changed and removes its files (`!enabled`, `plan` unused).
///
/// Errors are for the charm's own files (state, /etc); a live knob that
/// cannot be written is a [`HostChanges::problems`] entry instead.
pub fn apply_host_plan(plan: &HostPlan, enabled: bool, roots: &HostRoots) -> Result<HostChanges> {
    let mut changes = HostChanges {
        enabled,
        ..HostChanges::default()
    };
    let mut originals = Originals::load(roots);
    if enabled {
        apply(plan, roots, &mut originals, &mut changes)?;
    } else {
        revert(roots, &mut originals, &mut changes)?;
    }
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
    if write_file(&roots.sysctl_file(), &render_sysctl_conf(plan), 0o644)? {
        changes.change(format!("wrote {}", roots.sysctl_file().display()));
    }
    if plan.devices.is_empty() {
        if remove_file(&roots.udev_file())? {
            changes.change(format!("removed {}", roots.udev_file().display()));
        }
    } else if write_file(&roots.udev_file(), &render_udev_rules(plan), 0o644)? {
        changes.change(format!("wrote {}", roots.udev_file().display()));
    }
    if write_file(&roots.thp_unit(), THP_UNIT_TEXT, 0o644)? {
        changes.change(format!("wrote {}", roots.thp_unit().display()));
        if roots.systemd() {
            systemctl(&["daemon-reload"], changes);
            systemctl(&["enable", THP_UNIT], changes);
        }
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
        for sysctl in &plan.sysctls {
            let path = roots.sysctl(sysctl.key);
            let Some(old) = read_trimmed(&path) else {
                changes.problem(format!("{} is not readable; skipped", sysctl.key));
                continue;
            };
            if normalize(&old) == normalize(&sysctl.value) {
                continue;
            }
            if !originals.sysctls.contains_key(sysctl.key) {
                originals.sysctls.insert(sysctl.key.into(), old.clone());
                originals.save(roots)?;
            }
            set_knob(&path, sysctl.key, &old, &sysctl.value, changes);
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
    for (device, attributes) in originals.devices.clone() {
        for attribute in attributes.keys() {
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
            let recorded = originals.devices.entry(device.to_string()).or_default();
            if !recorded.contains_key(*attribute) {
                recorded.insert(attribute.to_string(), old.clone());
                originals.save(roots)?;
            }
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
                if originals.transparent_hugepage.is_none() {
                    originals.transparent_hugepage = Some(old.clone());
                    originals.save(roots)?;
                }
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
    for (device, attributes) in originals.devices.clone() {
        for attribute in attributes.keys() {
            restore_device(roots, originals, &device, attribute, changes)?;
        }
    }
    if let Some(old) = originals.transparent_hugepage.clone() {
        let path = roots.thp();
        // Kept for the next try when the kernel refuses.
        let restored = match read_trimmed(&path) {
            Some(text) if selected(&text) != old => set_knob(
                &path,
                "transparent_hugepage",
                &selected(&text),
                &old,
                changes,
            ),
            _ => true,
        };
        if restored {
            originals.transparent_hugepage = None;
            originals.save(roots)?;
        }
    }
    let unit = roots.thp_unit();
    let unit_existed = unit.exists();
    if unit_existed && roots.systemd() {
        systemctl(&["disable", THP_UNIT], changes);
    }
    for path in [roots.sysctl_file(), roots.udev_file(), unit] {
        if remove_file(&path)? {
            changes.change(format!("removed {}", path.display()));
        }
    }
    if unit_existed && roots.systemd() {
        systemctl(&["daemon-reload"], changes);
    }
    roots.state.remove(state::HOST_APPLIED)?;
    Ok(())
}

fn restore_sysctl(
    roots: &HostRoots,
    originals: &mut Originals,
    key: &str,
    changes: &mut HostChanges,
) -> Result<()> {
    let Some(old) = originals.sysctls.get(key).cloned() else {
        return Ok(());
    };
    let path = roots.sysctl(key);
    let restored = match read_trimmed(&path) {
        Some(now) if normalize(&now) != normalize(&old) => {
            set_knob(&path, key, &now, &old, changes)
        }
        _ => true,
    };
    if restored {
        originals.sysctls.remove(key);
        originals.save(roots)?;
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
    let Some(old) = originals
        .devices
        .get(device)
        .and_then(|a| a.get(attribute))
        .cloned()
    else {
        return Ok(());
    };
    let path = roots.queue(device, attribute);
    // A device that is gone has nothing to restore.
    let restored = match read_trimmed(&path) {
        Some(text) if selected(&text) != old => set_knob(
            &path,
            &format!("{device} {attribute}"),
            &selected(&text),
            &old,
            changes,
        ),
        _ => true,
    };
    if restored {
        if let Some(attributes) = originals.devices.get_mut(device) {
            attributes.remove(attribute);
            if attributes.is_empty() {
                originals.devices.remove(device);
            }
        }
        originals.save(roots)?;
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

/// Atomic, durable, owned by the charm (root); `false` when the content was
/// already there.
fn write_file(path: &Path, content: &str, mode: u32) -> Result<bool> {
    if let Some(dir) = path.parent() {
        fsx::create_dir_all(dir, Owner::current(), 0o755)?;
    }
    fsx::write_atomic(path, content.as_bytes(), Owner::current(), mode)
}

fn remove_file(path: &Path) -> Result<bool> {
    fsx::remove_file(path)
}

// ------------------------------------------------------------- huge pages

/// `postgres -C shared_memory_size_in_huge_pages` for the cluster with
/// `candidate` as the charm's conf.d file; `None` when the server cannot use
/// huge pages here (-1). A running server locks its data directory against
/// `-C` for runtime-computed parameters, so the server reads a scratch copy
/// of the configuration and a scratch data directory holding only
/// `PG_VERSION`, `global/pg_control` and `postgresql.auto.conf`; nothing
/// live is touched. Needs PostgreSQL 15 or later.
pub fn shared_memory_huge_pages(
    cluster: &Cluster,
    data_dir: &Path,
    candidate: &str,
) -> Result<Option<u64>> {
    let scratch = Scratch::new("huge-pages")?;
    let config_file = conf::copy_config_with(cluster, candidate, &scratch, "conf")?;
    let data = scratch.path().join("data");
    std::fs::create_dir_all(data.join("global"))?;
    for file in ["PG_VERSION", "global/pg_control", "postgresql.auto.conf"] {
        let from = data_dir.join(file);
        match fsx::read(&from) {
            Ok(bytes) => {
                scratch.write(&format!("data/{file}"), &bytes, 0o600)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
        }
    }
    scratch.share()?;
    // The server insists on owning its data directory (mode 0700). The
    // directory goes to postgres last, so nothing inside it can be swapped
    // for a link before root is done with it.
    let postgres = Owner::postgres()?;
    for path in [
        data.join("PG_VERSION"),
        data.join("global/pg_control"),
        data.join("postgresql.auto.conf"),
        data.join("global"),
        data.clone(),
    ] {
        if std::fs::symlink_metadata(&path).is_ok() {
            std::os::unix::fs::lchown(&path, Some(postgres.uid), Some(postgres.gid))
                .with_context(|| format!("handing {} to postgres", path.display()))?;
        }
    }
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700))?;
    let out = cluster::as_postgres(&cluster.bin("postgres"))
        .arg("-C")
        .arg("shared_memory_size_in_huge_pages")
        .arg("-c")
        .arg(format!("config_file={}", config_file.display()))
        .arg("-c")
        .arg(format!("data_directory={}", data.display()))
        .arg("-c")
        .arg("external_pid_file=")
        .output()
        .context("running postgres -C shared_memory_size_in_huge_pages")?;
    if !out.status.success() {
        bail!(
            "postgres -C shared_memory_size_in_huge_pages failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let pages: i64 = text
        .trim()
        .parse()
        .with_context(|| format!("postgres -C printed {:?}", text.trim()))?;
    Ok(u64::try_from(pages).ok().filter(|&pages| pages > 0))
}

/// What [`remembered_huge_pages`] keeps in the state directory.
#[derive(Debug, Serialize, Deserialize)]
struct HugePagesMemo {
    /// FNV-1a of the candidate configuration it was computed for.
    candidate: String,
    pages: Option<u64>,
}

/// [`shared_memory_huge_pages`], remembered in the state directory for the
/// candidate it was computed for: the answer only changes with the
/// configuration, and asking the server costs a process and ~20 MB.
fn remembered_huge_pages(
    cluster: &Cluster,
    data_dir: &Path,
    candidate: &str,
) -> Result<Option<u64>> {
    let state = StateDir::unit();
    let key = format!(
        "{:016x}",
        crate::relations::names::fnv1a_64(candidate.as_bytes())
    );
    if let Some(memo) = state.read_json::<HugePagesMemo>(state::HUGE_PAGES) {
        if memo.candidate == key {
            return Ok(memo.pages);
        }
    }
    let pages = shared_memory_huge_pages(cluster, data_dir, candidate)?;
    let memo = HugePagesMemo {
        candidate: key,
        pages,
    };
    if let Err(e) = state.write_json(state::HUGE_PAGES, &memo) {
        log::warn!("not remembering the huge page count: {e:#}");
    }
    Ok(pages)
}

/// shared_buffers in bytes from its postgresql.conf value (`6GB`, `'6GB'`,
/// or a count of 8kB blocks).
fn shared_buffers_bytes(value: &str) -> Option<u64> {
    let value = value.trim().trim_matches('\'');
    parse_memory(value).or_else(|| value.parse::<u64>().ok().map(|blocks| blocks * 8 * KIB))
}

// ---------------------------------------------------------------- converge

/// The host-tuning step of `converge()`, run after the PostgreSQL settings
/// are computed and before the charm's conf file is rendered: records the
/// machine for [`machine_changed`], applies (or reverts) the host plan, and
/// sets `huge_pages` to `on` when the reserved pool really holds PostgreSQL's
/// shared memory. Never fails the hook: what goes wrong is logged and
/// PostgreSQL keeps `huge_pages = try`.
pub fn tune_host(
    cluster: &Cluster,
    data_dir: &Path,
    wal_dir: Option<&Path>,
    facts: &MachineFacts,
    options: &ClusterOptions,
    settings: &mut [Setting],
) {
    if let Err(e) = record_machine(data_dir, wal_dir) {
        log::warn!("could not record the machine for re-tuning: {e:#}");
    }
    if let Err(e) = tune(cluster, data_dir, facts, options, settings) {
        log::warn!("host tuning: {e:#}");
    }
}

fn tune(
    cluster: &Cluster,
    data_dir: &Path,
    facts: &MachineFacts,
    options: &ClusterOptions,
    settings: &mut [Setting],
) -> Result<()> {
    let roots = HostRoots::from_env();
    if !options.host_tuning {
        let changes = apply_host_plan(&empty_plan(), false, &roots)?;
        if !changes.changed.is_empty() {
            log::info!("host-tuning is off: the charm's host changes are reverted");
        }
        return Ok(());
    }
    let candidate = conf::render_charm_conf(settings);
    let live = fsx::read_to_string(&cluster.conf_dir().join(conf::CHARM_CONF)).ok();
    let shared_buffers = settings
        .iter()
        .rev()
        .find(|s| s.name == "shared_buffers")
        .and_then(|s| shared_buffers_bytes(&s.value))
        .unwrap_or(0);
    // A configuration the server rejects is blocked by converge right after
    // this: the host stays as it is for the configuration in force. Sizing
    // huge pages runs the server on the candidate, which checks it too.
    let needed = if shared_buffers >= HUGE_PAGES_FROM && cluster.major >= 15 {
        match remembered_huge_pages(cluster, data_dir, &candidate) {
            Ok(needed) => needed,
            Err(e) => {
                // Keep huge_pages as it is in force: a transient failure
                // must not turn `on` into `try` and restart the server.
                let in_force = live
                    .as_deref()
                    .and_then(|text| conf::setting_in(text, "huge_pages"));
                if let (Some(value), Some(setting)) = (
                    in_force,
                    settings.iter_mut().find(|s| s.name == "huge_pages"),
                ) {
                    setting.value = value;
                    setting.reason = "kept as it was: the huge page pool could not be sized \
                                      this time (see the unit log)"
                        .into();
                }
                return Err(e.context("sizing huge pages; host settings left as they are"));
            }
        }
    } else {
        if live.as_deref() != Some(candidate.as_str())
            && conf::validate(cluster, &candidate)?.is_err()
        {
            return Ok(());
        }
        None
    };
    let plan = host_plan(facts, options.tuning.storage_type, needed, false);
    let changes = apply_host_plan(&plan, true, &roots)?;
    record_applied(&roots, &plan, needed, &changes.pool)?;

    let operator_says = options
        .extra_pg_conf
        .iter()
        .any(|(name, _)| name == "huge_pages");
    if let (Some(needed), false) = (needed, operator_says) {
        if let Some(setting) = settings.iter_mut().find(|s| s.name == "huge_pages") {
            let total = changes.pool.total.unwrap_or(0);
            if changes.pool.holds(needed) {
                setting.value = "on".into();
                setting.reason = format!(
                    "the host reserved huge pages and HugePages_Total ({total}) holds the \
                     {needed} PostgreSQL needs (shared_memory_size_in_huge_pages), read back \
                     after reserving: `on` makes a later shortfall fail loudly at start"
                );
            } else {
                setting.value = "try".into();
                setting.reason = format!(
                    "PostgreSQL needs {needed} huge pages (shared_memory_size_in_huge_pages) but \
                     HugePages_Total is {total}: `on` would refuse to start, `try` falls back to \
                     normal pages"
                );
            }
        }
    }
    Ok(())
}

fn empty_plan() -> HostPlan {
    HostPlan {
        sysctls: Vec::new(),
        devices: Vec::new(),
        transparent_hugepage: "never",
        huge_pages: None,
    }
}

fn record_applied(
    roots: &HostRoots,
    plan: &HostPlan,
    needed: Option<u64>,
    pool: &HugePagePool,
) -> Result<()> {
    let record = AppliedRecord {
        global: roots.global,
        devices_allowed: roots
            .devices
            .as_ref()
            .map(|set| set.iter().cloned().collect()),
        files: [roots.sysctl_file(), roots.udev_file(), roots.thp_unit()]
            .into_iter()
            .filter(|path| path.exists())
            .collect(),
        sysctls: plan
            .sysctls
            .iter()
            .map(|s| AppliedSysctl {
                key: s.key.into(),
                value: s.value.clone(),
                reason: s.reason.clone(),
            })
            .collect(),
        devices: plan
            .devices
            .iter()
            .map(|d| AppliedDevice {
                name: d.name.clone(),
                scheduler: d.scheduler.map(str::to_string),
                read_ahead_kb: d.read_ahead_kb,
                reason: d.reason.clone(),
            })
            .collect(),
        transparent_hugepage: plan.transparent_hugepage.into(),
        huge_pages_needed: needed,
        huge_pages_reserved: plan.huge_pages,
        pool: pool.clone(),
    };
    roots
        .state
        .write_json(state::HOST_APPLIED, &record)
        .map(drop)
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

// --------------------------------------------------------- machine changes

/// What the last converge saw ([`state::MACHINE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MachineRecord {
    data_dir: PathBuf,
    wal_dir: Option<PathBuf>,
    /// [`machine_digest`] then.
    digest: String,
}

/// The facts the tuning depends on and that change with the hardware:
/// memory, CPUs, and the identity, size and class of the disks under
/// `data_dir` and `wal_dir`. Free space, and the scheduler and read-ahead
/// the charm itself sets, are left out. Reads procfs/sysfs only.
pub fn machine_digest(data_dir: &Path, wal_dir: Option<&Path>) -> String {
    let root = SysRoot::host();
    let volume = |path: &Path| {
        detect::volume_for_path(&root, path).ok().map(|v| {
            serde_json::json!({
                "device": v.device_number,
                "top": v.top_device,
                "fs_size_mib": v.fs_size_bytes >> 20,
                "raid": v.raid_arrays.iter().map(|r| format!("{} {} {}", r.device, r.level, r.raid_disks)).collect::<Vec<_>>(),
                "disks": v.data_bearing_disks,
                "leaves": v.leaves.iter().map(|leaf| serde_json::json!({
                    "name": leaf.name,
                    "rotational": leaf.rotational,
                    "class": leaf.class,
                })).collect::<Vec<_>>(),
            })
        })
    };
    serde_json::json!({
        "memory": detect::memory_bytes(&root).ok(),
        "cpus": detect::usable_cpus(&root).ok(),
        "data": volume(data_dir),
        "wal": wal_dir.and_then(volume),
    })
    .to_string()
}

fn record_machine(data_dir: &Path, wal_dir: Option<&Path>) -> Result<()> {
    let record = MachineRecord {
        data_dir: data_dir.to_path_buf(),
        wal_dir: wal_dir.map(Path::to_path_buf),
        digest: machine_digest(data_dir, wal_dir),
    };
    StateDir::unit()
        .write_json(state::MACHINE, &record)
        .map(drop)
}

/// Whether the machine differs from what the last converge tuned for (more
/// memory, another disk, a disk that now says it does not spin). Spawns
/// nothing; `false` when there is no record yet.
pub fn machine_changed() -> bool {
    let Some(record) = StateDir::unit().read_json::<MachineRecord>(state::MACHINE) else {
        return false;
    };
    let now = machine_digest(&record.data_dir, record.wal_dir.as_deref());
    if now != record.digest {
        log::info!(
            "the machine changed since the last tuning: {} → {now}",
            record.digest
        );
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuning::host::{DeviceTuning, Sysctl};

    /// A fake host: /etc, /proc and /sys below a scratch directory.
    struct FakeHost(PathBuf);

    impl FakeHost {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("pg-charm-apply-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            let host = FakeHost(dir);
            host.put("proc/sys/vm/swappiness", "60\n");
            host.put("proc/sys/vm/dirty_bytes", "0\n");
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
            host.put("sys/block/loop3/queue/scheduler", "[none] mq-deadline\n");
            host.put("sys/block/loop3/queue/read_ahead_kb", "128\n");
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
                    dm_name: None,
                    scheduler: Some("mq-deadline"),
                    read_ahead_kb: Some(4096),
                    reason: "r".into(),
                },
                DeviceTuning {
                    name: "sda".into(),
                    dm_name: None,
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
        let changes = apply_host_plan(&plan(), true, &roots).unwrap();
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
        assert!(host
            .get("etc/udev/rules.d/61-juju-pg-charm.rules")
            .contains(r#"KERNEL=="loop3", ATTR{queue/scheduler}="mq-deadline""#));
        assert!(host
            .get("etc/systemd/system/juju-pg-charm-thp.service")
            .contains("echo never"));
        let originals = Originals::load(&roots);
        assert_eq!(originals.sysctls["vm.swappiness"], "60");
        assert_eq!(originals.devices["sda"]["scheduler"], "mq-deadline");
        assert_eq!(originals.transparent_hugepage.as_deref(), Some("madvise"));

        // A second run changes nothing.
        let again = apply_host_plan(&plan(), true, &roots).unwrap();
        assert!(again.changed.is_empty(), "{:?}", again.changed);

        let reverted = apply_host_plan(&plan(), false, &roots).unwrap();
        assert!(reverted.problems.is_empty(), "{:?}", reverted.problems);
        assert_eq!(host.get("proc/sys/vm/swappiness"), "60");
        assert_eq!(host.get("proc/sys/vm/dirty_bytes"), "0");
        assert_eq!(host.get("sys/block/loop3/queue/scheduler"), "none");
        assert_eq!(host.get("sys/block/loop3/queue/read_ahead_kb"), "128");
        assert_eq!(host.get("sys/block/sda/queue/scheduler"), "mq-deadline");
        assert_eq!(
            host.get("sys/kernel/mm/transparent_hugepage/enabled"),
            "madvise"
        );
        for file in [
            "etc/sysctl.d/60-juju-pg-charm.conf",
            "etc/udev/rules.d/61-juju-pg-charm.rules",
            "etc/systemd/system/juju-pg-charm-thp.service",
            "state/host-originals.json",
        ] {
            assert!(!host.0.join(file).exists(), "{file} left behind");
        }
    }

    #[test]
    fn a_dropped_setting_gets_its_original_back() {
        let host = FakeHost::new("dropped");
        let roots = host.roots();
        apply_host_plan(&plan(), true, &roots).unwrap();
        let mut smaller = plan();
        smaller.sysctls.retain(|s| s.key != "vm.swappiness");
        smaller.devices.retain(|d| d.name != "sda");
        smaller.devices[0].read_ahead_kb = None;
        apply_host_plan(&smaller, true, &roots).unwrap();
        assert_eq!(host.get("proc/sys/vm/swappiness"), "60");
        assert_eq!(host.get("sys/block/sda/queue/scheduler"), "mq-deadline");
        assert_eq!(host.get("sys/block/loop3/queue/read_ahead_kb"), "128");
        assert_eq!(host.get("sys/block/loop3/queue/scheduler"), "mq-deadline");
        let originals = Originals::load(&roots);
        assert!(!originals.sysctls.contains_key("vm.swappiness"));
        assert!(!originals.devices.contains_key("sda"));
    }

    #[test]
    fn test_mode_changes_only_the_listed_devices_and_no_global_setting() {
        let host = FakeHost::new("test-mode");
        let mut roots = host.roots();
        roots.global = false;
        roots.devices = Some(["loop3".to_string()].into());
        let changes = apply_host_plan(&plan(), true, &roots).unwrap();
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
        let changes = apply_host_plan(&plan(), true, &host.roots()).unwrap();
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
        let pool = HugePagePool::read(&host.roots());
        assert_eq!(pool.total, Some(3218));
        assert_eq!(pool.free, Some(3000));
        assert_eq!(pool.page_size_kb, Some(2048));
        assert!(pool.holds(3154));
        assert!(!pool.holds(4000));
        assert_eq!(selected("none [mq-deadline] kyber"), "mq-deadline");
        assert_eq!(selected("4096"), "4096");
        assert_eq!(shared_buffers_bytes("'6GB'"), Some(6 * GIB));
        assert_eq!(shared_buffers_bytes("16384"), Some(128 << 20));
    }
}
