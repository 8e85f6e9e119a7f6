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
use crate::cluster::conf::{self, ConfigCheck, Setting};
use crate::cluster::Cluster;
use crate::options::ClusterOptions;
use crate::state::host::{AppliedDevice, AppliedRecord, AppliedSysctl, HugePagePool};
use crate::tuning::facts::MachineFacts;
use crate::tuning::host::{for_this_host, host_plan, live_only_devices, HostPlan};
use crate::tuning::huge_pages::{remembered_huge_pages, shared_buffers_bytes, HUGE_PAGES_FROM};
use crate::tuning::machine::record_machine;

/// The host-tuning step of the converge, run after the PostgreSQL settings
/// are planned and before the charm's conf file is written: records the
/// machine for [`crate::tuning::machine::machine_changed`], applies (or
/// reverts) the host plan, and says what `huge_pages` must be
/// ([`HugePagesChoice`]) now that the host holds the pages it does. Never
/// fails the hook: what goes wrong is logged and PostgreSQL keeps
/// `huge_pages = try`. The server checks the planned conf.d file here
/// only when huge pages are not sized (sizing runs the server on it, which
/// checks it too); the converge then reuses the verdict.
pub fn tune_host(roots: &HostRoots, target: &TuningTarget) -> HostOutcome {
    if let Err(e) = record_machine(&roots.state, target.data_dir, target.wal_dir) {
        log::warn!("could not record the machine for re-tuning: {e:#}");
    }
    match tune(roots, target) {
        Ok(outcome) => outcome,
        Err(e) => {
            log::warn!("host tuning: {e:#}");
            HostOutcome::default()
        }
    }
}

/// The server whose host is tuned: where it keeps its data, the machine,
/// the options and the planned settings.
pub struct TuningTarget<'a> {
    pub cluster: &'a Cluster,
    pub data_dir: &'a Path,
    pub wal_dir: Option<&'a Path>,
    pub machine: &'a MachineFacts,
    pub options: &'a ClusterOptions,
    pub settings: &'a [Setting],
    /// The server's verdict on the planned conf.d file.
    pub check: &'a ConfigCheck<'a>,
}

/// What tuning the host concluded, for the settings and the status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostOutcome {
    /// Settings left to the host's own sysctl files, for the unit's status.
    pub notes: Vec<String>,
    pub huge_pages: HugePagesChoice,
}

/// What `huge_pages` in the charm's conf.d file must say, given the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HugePagesChoice {
    /// As planned (the server needs no huge pages, or the operator chose).
    #[default]
    AsPlanned,
    /// The pool could not be sized this time: the value in force stays, so
    /// a transient failure never turns `on` into `try` and restarts.
    KeepInForce(String),
    /// The charm's share of the pool holds what the server needs: `on`.
    On(PoolFit),
    /// It does not: `try`, which falls back to normal pages.
    Try(PoolFit),
}

/// The huge pages the server needs, beside the pool read back after
/// reserving (`HugePages_Total`, and how many of them are others').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFit {
    pub needed: u64,
    pub total: u64,
    pub others: u64,
}

impl HugePagesChoice {
    /// `settings` with the choice made (pure): the first `huge_pages`
    /// setting gets its value and the reason for it.
    pub fn apply(&self, mut settings: Vec<Setting>) -> Vec<Setting> {
        let Some(setting) = settings.iter_mut().find(|s| s.name == "huge_pages") else {
            return settings;
        };
        let (value, reason) = match *self {
            HugePagesChoice::AsPlanned => return settings,
            HugePagesChoice::KeepInForce(ref value) => (
                value.clone(),
                "kept as it was: the huge page pool could not be sized this time (see the \
                 unit log)"
                    .to_string(),
            ),
            HugePagesChoice::On(fit) => (
                "on".to_string(),
                format!(
                    "the host reserved huge pages and HugePages_Total ({}, {} of them \
                     others') holds the {} PostgreSQL needs \
                     (shared_memory_size_in_huge_pages), read back after reserving: `on` makes \
                     a later shortfall fail loudly at start",
                    fit.total, fit.others, fit.needed
                ),
            ),
            HugePagesChoice::Try(fit) => (
                "try".to_string(),
                format!(
                    "PostgreSQL needs {} huge pages (shared_memory_size_in_huge_pages) but \
                     the charm's share of HugePages_Total ({}, {} of them others') \
                     is smaller: `on` would refuse to start, `try` falls back to normal pages",
                    fit.needed, fit.total, fit.others
                ),
            ),
        };
        setting.value = value;
        setting.reason = reason;
        settings
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

fn tune(roots: &HostRoots, target: &TuningTarget) -> Result<HostOutcome> {
    let TuningTarget {
        cluster,
        machine: facts,
        options,
        settings,
        check,
        ..
    } = *target;
    if !options.host_tuning {
        hand_back_host(roots)?;
        return Ok(HostOutcome::default());
    }
    let candidate = conf::render_charm_conf(settings);
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
        match remembered_huge_pages(cluster, target.data_dir, &candidate) {
            Ok(needed) => needed,
            Err(e) => {
                log::warn!(
                    "host tuning: {:#}",
                    e.context("sizing huge pages; host settings left as they are")
                );
                let in_force = check
                    .live()
                    .and_then(|text| conf::setting_in(text, "huge_pages"));
                return Ok(HostOutcome {
                    notes: Vec::new(),
                    huge_pages: in_force.map_or(HugePagesChoice::AsPlanned, |value| {
                        HugePagesChoice::KeepInForce(value)
                    }),
                });
            }
        }
    } else {
        if check.check(&candidate)?.is_err() {
            return Ok(HostOutcome::default());
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
    let huge_pages = match (needed, operator_says) {
        (Some(needed), false) => {
            let fit = PoolFit {
                needed,
                total: changes.pool.total.unwrap_or(0),
                others: changes.pool.others,
            };
            if plan.huge_pages.is_some() && changes.pool.holds(needed) {
                HugePagesChoice::On(fit)
            } else {
                HugePagesChoice::Try(fit)
            }
        }
        _ => HugePagesChoice::AsPlanned,
    };
    Ok(HostOutcome { notes, huge_pages })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_huge_pages_choice_sets_only_the_first_huge_pages_setting() {
        let planned = vec![
            Setting::new("shared_buffers", "4GB", "tuned"),
            Setting::new("huge_pages", "try", "tuned"),
            Setting::new("work_mem", "4MB", "tuned"),
        ];
        let value = |choice: HugePagesChoice| {
            let settings = choice.apply(planned.clone());
            assert_eq!(settings.len(), planned.len());
            assert_eq!(settings[0], planned[0]);
            assert_eq!(settings[2], planned[2]);
            settings[1].value.clone()
        };
        assert_eq!(value(HugePagesChoice::AsPlanned), "try");
        assert_eq!(value(HugePagesChoice::KeepInForce("on".into())), "on");
        let fit = PoolFit {
            needed: 2000,
            total: 2100,
            others: 100,
        };
        assert_eq!(value(HugePagesChoice::On(fit)), "on");
        assert_eq!(value(HugePagesChoice::Try(fit)), "try");
        let without = vec![Setting::new("work_mem", "4MB", "tuned")];
        assert_eq!(
            HugePagesChoice::KeepInForce("on".into()).apply(without.clone()),
            without
        );
    }
}
