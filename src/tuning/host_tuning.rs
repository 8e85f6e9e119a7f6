//! The host-tuning step of the converge: records the machine for
//! `update-status` ([`crate::tuning::machine`]), applies (or hands back) the
//! host plan, and says whether the server may insist on huge pages.
//!
//! Huge pages: [`tune_host`] asks the server how many it needs
//! ([`crate::tuning::huge_pages`]), reserves them through `vm.nr_hugepages`,
//! reads the pool back and sets `huge_pages = on` only when the pages the
//! charm added really hold them (`try` otherwise), so a shortfall never
//! stops PostgreSQL from starting.

use std::path::Path;

use anyhow::Result;

use super::host_apply::{apply_host_plan, host_facts, revert_host, HostChanges};
use super::roots::HostRoots;
use crate::cluster::conf::{self, Setting};
use crate::cluster::Cluster;
use crate::fsx;
use crate::options::ClusterOptions;
use crate::state::host::{AppliedDevice, AppliedRecord, AppliedSysctl, HugePagePool};
use crate::tuning::facts::MachineFacts;
use crate::tuning::host::{for_this_host, host_plan, live_only_devices, HostPlan};
use crate::tuning::huge_pages::{remembered_huge_pages, shared_buffers_bytes, HUGE_PAGES_FROM};
use crate::tuning::machine::record_machine;

/// The host-tuning step of `converge()`, run after the PostgreSQL settings
/// are computed and before the charm's conf file is rendered: records the
/// machine for [`crate::tuning::machine::machine_changed`], applies (or
/// reverts) the host plan, and sets `huge_pages` to `on` when the pages the
/// charm reserved really hold PostgreSQL's shared memory. Never fails the
/// hook: what goes wrong is logged and PostgreSQL keeps `huge_pages = try`.
/// Returns notes for the unit's status: settings left to the host's own
/// sysctl files.
pub fn tune_host(
    roots: &HostRoots,
    cluster: &Cluster,
    data_dir: &Path,
    wal_dir: Option<&Path>,
    facts: &MachineFacts,
    options: &ClusterOptions,
    settings: &mut [Setting],
) -> Vec<String> {
    if let Err(e) = record_machine(&roots.state, data_dir, wal_dir) {
        log::warn!("could not record the machine for re-tuning: {e:#}");
    }
    match tune(roots, cluster, data_dir, facts, options, settings) {
        Ok(notes) => notes,
        Err(e) => {
            log::warn!("host tuning: {e:#}");
            Vec::new()
        }
    }
}

/// Hands the host back: every setting the charm changed restored, its
/// files and records removed (host-tuning off, unit removal).
pub fn hand_back_host(roots: &HostRoots) -> Result<HostChanges> {
    let changes = revert_host(roots)?;
    if !changes.changed.is_empty() {
        log::info!("the charm's host changes are reverted");
    }
    Ok(changes)
}

fn tune(
    roots: &HostRoots,
    cluster: &Cluster,
    data_dir: &Path,
    facts: &MachineFacts,
    options: &ClusterOptions,
    settings: &mut [Setting],
) -> Result<Vec<String>> {
    if !options.host_tuning {
        hand_back_host(roots)?;
        return Ok(Vec::new());
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
            return Ok(Vec::new());
        }
        None
    };
    let planned = host_plan(facts, options.tuning.storage_type, needed, false);
    let (plan, mut notes) = for_this_host(&planned, &host_facts(roots));
    notes.extend(live_only_devices(&plan, |name| roots.device_allowed(name)));
    let changes = apply_host_plan(&plan, roots)?;
    record_applied(roots, &plan, needed, &changes.pool, &notes)?;

    let operator_says = options
        .extra_pg_conf
        .iter()
        .any(|(name, _)| name == "huge_pages");
    if let (Some(needed), false) = (needed, operator_says) {
        if let Some(setting) = settings.iter_mut().find(|s| s.name == "huge_pages") {
            let total = changes.pool.total.unwrap_or(0);
            let others = changes.pool.others;
            if plan.huge_pages.is_some() && changes.pool.holds(needed) {
                setting.value = "on".into();
                setting.reason = format!(
                    "the host reserved huge pages and HugePages_Total ({total}, {others} of them \
                     others') holds the {needed} PostgreSQL needs \
                     (shared_memory_size_in_huge_pages), read back after reserving: `on` makes \
                     a later shortfall fail loudly at start"
                );
            } else {
                setting.value = "try".into();
                setting.reason = format!(
                    "PostgreSQL needs {needed} huge pages (shared_memory_size_in_huge_pages) but \
                     the charm's share of HugePages_Total ({total}, {others} of them others') \
                     is smaller: `on` would refuse to start, `try` falls back to normal pages"
                );
            }
        }
    }
    Ok(notes)
}

fn record_applied(
    roots: &HostRoots,
    plan: &HostPlan,
    needed: Option<u64>,
    pool: &HugePagePool,
    notes: &[String],
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
        left_to_host: notes.to_vec(),
    };
    record.save(&roots.state)
}
