//! The hooks with work of their own besides the converge
//! ([`crate::converge`]): storage detaching, stop, remove, and the cheap
//! `update-status` check, which converges only when something changed.

use std::time::Duration;

use anyhow::Result;

use crate::charm::Hook;
use crate::clients;
use crate::cluster::{conf, control, packages, Cluster};
use crate::converge::{converge_and_report, ha_step};
use crate::fsx;
use crate::ha::services::Services;
use crate::ha::ServiceKind;
use crate::juju::{self, WorkloadStatus};
use crate::storage;
use crate::tls;
use crate::tuning;

/// `<storage>-storage-detaching`: a clean, fast shutdown with a checkpoint,
/// and the data stays where it is.
pub fn storage_detaching(hook: &Hook, storage: &str) -> Result<()> {
    let Some(cluster) = hook.unit.existing_cluster() else {
        return Ok(());
    };
    if storage == "pgdata" && !data_is_on_detaching_storage(hook, &cluster) {
        // The data never moved onto this disk (or already left it).
        return Ok(());
    }
    hook.unit.progress(&format!(
        "stopping PostgreSQL: {storage} storage is detaching"
    ));
    control::stop(&cluster)?;
    hook.unit.set_status(
        WorkloadStatus::Blocked,
        &format!("{storage} storage detached: PostgreSQL stopped, data kept on the disk"),
    )
}

/// Whether the cluster's data directory is under the detaching storage
/// (when unsure, assume it is: stopping is the safe side).
fn data_is_on_detaching_storage(hook: &Hook, cluster: &Cluster) -> bool {
    let id = hook.context.storage_id.as_deref().unwrap_or_default();
    match (juju::storage_get(id), cluster.data_directory()) {
        (Ok(info), Ok(data_dir)) => data_dir.starts_with(&info.location),
        _ => true,
    }
}

/// `stop`: no server is left running; nothing is deleted. Patroni goes
/// first (it would start the server again), then etcd.
pub fn stop_server(hook: &Hook, reason: &str) -> Result<()> {
    // First: a hook killed after stopping something must not see a later
    // hook start it again.
    crate::state::stopped::mark(&hook.unit.state)?;
    stop_ha_services(hook)?;
    if let Some(cluster) = hook.unit.existing_cluster() {
        control::stop(&cluster)?;
    }
    hook.unit.set_status(WorkloadStatus::Maintenance, reason)
}

/// Stops Patroni (which stops its server) and etcd, when this unit runs them.
fn stop_ha_services(hook: &Hook) -> Result<()> {
    let Some(services) = ha_services(hook) else {
        return Ok(());
    };
    // A unit that never ran them has no service records: nothing to stop,
    // and no HA file is created for it.
    if ServiceKind::ALL.iter().all(|k| services.spec(*k).is_none()) {
        return Ok(());
    }
    services.stop(ServiceKind::HaWatcher, Duration::from_secs(10), true)?;
    if services.running(ServiceKind::Patroni).is_some() {
        hook.unit.progress("stopping Patroni and its PostgreSQL");
        services.stop(ServiceKind::Patroni, Duration::from_secs(300), false)?;
    }
    if services.running(ServiceKind::Etcd).is_some() {
        services.stop(ServiceKind::Etcd, Duration::from_secs(30), true)?;
    }
    Ok(())
}

/// The HA services of this unit's cluster (none without a cluster: they
/// run only once it is placed).
fn ha_services(hook: &Hook) -> Option<Services> {
    let cluster = hook.unit.existing_cluster()?;
    Some(Services::new(
        hook.unit.state.clone(),
        &ha_step::paths(&cluster),
    ))
}

/// `remove`: the unit leaves and hands the machine back. The server is
/// stopped, and its cluster (data and configuration) is kept but no longer
/// started at boot. Every host setting the charm changed gets its recorded
/// value back, its files under /etc go (units disabled first), and its
/// state directory is deleted.
pub fn remove_unit(hook: &Hook) -> Result<()> {
    stop_ha_services(hook)?;
    if let Some(services) = ha_services(hook) {
        // Under systemd, the unit files go (disabled by the stop above).
        for kind in ServiceKind::ALL {
            services.forget(kind)?;
        }
    }
    if let Some(cluster) = hook.unit.existing_cluster() {
        ha_step::hand_back(&cluster)?;
        control::stop(&cluster)?;
        let start_conf = cluster.conf_dir().join("start.conf");
        conf::write_if_changed(
            &start_conf,
            "# Set by the PostgreSQL charm when its unit was removed: the cluster and its\n\
             # data are kept, but not started at boot. Set back to auto to serve it again.\n\
             manual\n",
            0o644,
        )?;
    }
    hook.unit
        .set_status(WorkloadStatus::Maintenance, "removing unit; data kept")?;
    let handed_back = tuning::host_tuning::hand_back_host(&hook.unit.host)?;
    for problem in &handed_back.problems {
        log::warn!("left on the host: {problem}");
    }
    packages::remove_no_default_cluster_file()?;
    hook.unit.state.remove_all()?;
    fsx::remove_scratch_root();
    Ok(())
}

/// `update-status`: cheap when all is well (no process spawned); a dead
/// server is reported and brought back, and a machine that changed (more
/// memory, another disk) is tuned again.
fn data_in_place(cluster: &Cluster) -> bool {
    cluster
        .data_directory()
        .is_ok_and(|dir| dir.join("PG_VERSION").is_file())
}

pub fn update_status(hook: &Hook) -> Result<()> {
    let state = &hook.unit.state;
    match hook.unit.existing_cluster() {
        // A member of a replicated cluster: Patroni may have promoted or
        // demoted the server since the last hook, so the relations follow
        // (the fallback when no topology hook came).
        Some(cluster) if ha_step::member_before(hook, &cluster) => converge_and_report(hook),
        // Re-tuning (src/tuning/apply.rs): compares sysfs/procfs with the
        // machine the last converge recorded; spawns nothing.
        Some(cluster) if cluster.is_running() && tuning::machine::machine_changed(state) => {
            converge_and_report(hook)
        }
        // A relation failed in an earlier hook (a consumer held a lock, its
        // database refused a statement): try it again.
        Some(cluster) if cluster.is_running() && clients::needs_retry(state) => {
            converge_and_report(hook)
        }
        // A storage move that was blocked, and whose destination changed
        // since (space freed, something moved aside): try again.
        Some(cluster) if cluster.is_running() && storage::blocked_move_may_go_ahead(state) => {
            converge_and_report(hook)
        }
        // A kept TLS certificate is due for renewal (reads two files).
        Some(cluster)
            if cluster.is_running()
                && tls::serve::renewal_due(state, time::OffsetDateTime::now_utc()) =>
        {
            converge_and_report(hook)
        }
        Some(cluster) if cluster.is_running() => Ok(()),
        // Down with its data in place: it died or was stopped by hand.
        // (Down without its data, e.g. storage detached, is reported by
        // the converge as blocked, with no "restarting" in between.)
        Some(cluster) if data_in_place(&cluster) => {
            log::warn!("PostgreSQL {} is not running; starting it", cluster.id());
            hook.unit.set_status(
                WorkloadStatus::Maintenance,
                "PostgreSQL was down; restarting it",
            )?;
            converge_and_report(hook)
        }
        Some(_) | None => converge_and_report(hook),
    }
}
