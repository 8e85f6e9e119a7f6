//! Converging the unit on every hook: packages installed, the cluster
//! created (or adopted) where its data belongs, configured, running,
//! serving its relations, and reported. Each step reads what is there and
//! does only what is missing, so any hook may run twice or be killed and
//! retried.
//!
//! The converge is observe → plan → apply, in a fixed order:
//!
//! 1. **Ground**: the config, the packages, and the cluster put in place
//!    ([`placement`], [`crate::storage`]): what is observed next depends on
//!    where the data now is.
//! 2. **Observe** once: [`UnitFacts`] (options, the disks and the machine,
//!    the owner record, whether the server runs, the relations' access
//!    from earlier hooks).
//! 3. **Plan** (pure, [`plan::plan`]): the settings, `pg_hba.conf` before
//!    the server starts, the status's wording; or blocked.
//! 4. **Apply**: the host tuned for the settings (which only chooses
//!    `huge_pages`, [`HugePagesChoice`]), the configuration validated once
//!    (`postgres -C`, [`ConfigCheck`]) and written, the server started or
//!    brought in line with its files, the client relations served
//!    ([`crate::clients`]), `pg_hba.conf` rendered once from all of them
//!    and reloaded, the port opened and the status set.
//!
//! Conditions an operator must resolve (bad config, foreign data in the
//! way, missing storage) are `blocked` statuses, not hook failures: the hook
//! succeeds, the message names the cause, and PostgreSQL keeps serving with
//! its last good configuration. Real failures return errors, so Juju
//! retries the hook.
//!
//! [`HugePagesChoice`]: crate::tuning::host_tuning::HugePagesChoice

pub mod ha_step;
pub mod placement;
pub mod plan;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};

use self::ha_step::HaDecision;
use self::plan::{UnitFacts, UnitPlan};
use crate::charm::Hook;
use crate::clients::objects::ClusterServer;
use crate::clients::secrets::HookSecrets;
use crate::clients::{self, Clients, Io};
use crate::cluster::conf::{self, ConfigCheck};
use crate::cluster::{control, db, packages, reload, Cluster};
use crate::credentials::JujuPasswords;
use crate::juju::{self, HookTools, WorkloadStatus};
use crate::options::ClusterOptions;
use crate::outcome::{Outcome, Problem, Step};
use crate::relations::access::hba;
use crate::replication::Role;
use crate::state::cluster::OwnerRecord;
use crate::storage::{self, Mounts};
use crate::tls::{self, files::TlsDir};
use crate::tuning::host_tuning::{tune_host, TuningTarget};

/// Runs the whole convergence and reports the outcome as the unit status.
pub fn converge_and_report(hook: &Hook) -> Result<()> {
    let unit = &hook.unit;
    match converge(hook)? {
        Outcome::Active(message) => unit.set_status(WorkloadStatus::Active, &message),
        Outcome::Blocked(message) => {
            log::warn!("blocked: {message}");
            unit.set_status(WorkloadStatus::Blocked, &message)
        }
        Outcome::Waiting(message) => unit.set_status(WorkloadStatus::Waiting, &message),
    }
}

pub fn converge(hook: &Hook) -> Result<Outcome> {
    converge_renewing(hook, &BTreeSet::new())
}

/// [`converge`], giving the relation users in `renew` new passwords as
/// their relations are served (`rotate-credentials`).
pub fn converge_renewing(hook: &Hook, renew: &BTreeSet<String>) -> Result<Outcome> {
    let outcome = converge_unit(hook, renew)?;
    if !matches!(outcome, Outcome::Active(_)) {
        // A converge that stopped early (bad config, storage in the way)
        // never reached the relations: removed ones still lose their access.
        // A standby is read-only: the primary's converge revokes.
        if let Some(cluster) = hook
            .unit
            .existing_cluster()
            .filter(|c| c.is_running() && !in_recovery(c))
        {
            let role = Role::Standalone;
            with_clients(hook, &cluster, &role, "", None, renew, |clients| {
                clients.revoke_removed()
            })
            .context("revoking the users of removed relations")?;
        }
    }
    Ok(outcome)
}

/// Whether the server is a standby (read-only); `false` when unsure, so
/// that a failing revocation is reported rather than skipped.
fn in_recovery(cluster: &Cluster) -> bool {
    db::query(cluster, "SELECT pg_is_in_recovery()")
        .ok()
        .and_then(|rows| rows.first().map(|r| r.get::<_, bool>(0)))
        .unwrap_or(false)
}

/// Whether the unit's cluster serves now (for "still serving" in a
/// blocked message).
fn serving(hook: &Hook) -> bool {
    hook.unit.existing_cluster().is_some_and(|c| c.is_running())
}

fn blocked(hook: &Hook, problem: &str) -> Outcome {
    Outcome::Blocked(plan::still_serving(problem, serving(hook)))
}

fn converge_unit(hook: &Hook, renew: &BTreeSet<String>) -> Result<Outcome> {
    let unit = &hook.unit;
    // 1. Ground: the config, the packages, the cluster in place.
    let config = juju::config_get().context("reading the charm config")?;
    let options = match ClusterOptions::from_config(&config) {
        Ok(options) => options,
        Err(e) => return Ok(blocked(hook, &e.to_string())),
    };
    let existing = unit.existing_cluster();
    if let Some(problem) = plan::version_change(existing.as_ref().map(|c| c.major), options.version)
    {
        return Ok(blocked(hook, &problem));
    }
    let major = match &existing {
        Some(cluster) => cluster.major,
        None => packages::ensure_installed(options.version, &|m| unit.progress(m))?,
    };
    let cluster = unit.cluster(major);
    let mounts = Mounts::attached(None)?;
    // Patroni clones a standby's data itself (after the HA step cleared the
    // empty cluster made here), so the placement creates, adopts or moves.
    let data_dir =
        match placement::place_cluster(hook, &cluster, &mounts, &options, &Role::Standalone)? {
            Step::Done(dir) => dir,
            Step::Blocked(blocked) => return Ok(Outcome::Blocked(blocked)),
        };
    if let Step::Blocked(blocked) =
        storage::place_wal(&cluster, &data_dir, mounts.pgwal.as_deref(), &|m| {
            unit.progress(m)
        })?
    {
        return Ok(Outcome::Blocked(blocked));
    }
    storage::forget_blocked_move(&unit.state)?;
    // TLS in place before the configuration names its files (issue 14),
    // the unit's certificate signed by the application's internal CA.
    let now = time::OffsetDateTime::now_utc();
    let internal_ca = tls::internal_ca::internal_ca(
        crate::juju::is_leader().context("asking whether this unit leads")?,
        hook.context.has_secrets(),
        hook.context.application(),
        now,
    )?;
    let tls = tls::serve_unit(
        &HookTools,
        &hook.context,
        &unit.state,
        &TlsDir::of(&cluster),
        internal_ca.as_ref(),
        now,
    )?;

    // 2. Observe, once.
    let running = cluster.is_running();
    let facts = UnitFacts {
        machine: crate::tuning::machine::machine_facts(major, &data_dir, mounts.pgwal.as_deref()),
        owner: OwnerRecord::load(&unit.state),
        running,
        // Only a start needs them (`pg_hba.conf` before the server runs);
        // the clients step reads the results itself, and with hundreds of
        // relations reading them twice is measurable.
        cached_access: if running {
            Vec::new()
        } else {
            clients::cached_access(&unit.state)
        },
        pgdata_mount: mounts.pgdata.clone(),
        data_dir,
        options,
        tls: Some(tls),
    };

    // 3. Plan.
    let plan = match plan::plan(&facts) {
        Step::Done(plan) => plan,
        Step::Blocked(problem) => return Ok(blocked(hook, &problem)),
    };

    // 4. Apply.
    apply(hook, &cluster, &mounts, &facts, plan, renew)
}

fn apply(
    hook: &Hook,
    cluster: &Cluster,
    mounts: &Mounts,
    facts: &UnitFacts,
    plan: UnitPlan,
    renew: &BTreeSet<String>,
) -> Result<Outcome> {
    let unit = &hook.unit;
    let options = &facts.options;
    let check = ConfigCheck::new(cluster);
    // The host before the conf file: huge_pages is `on` only when the
    // reserved pool really holds the server's shared memory. Also records
    // the machine for update-status.
    let target = TuningTarget {
        cluster,
        data_dir: &facts.data_dir,
        wal_dir: mounts.pgwal.as_deref(),
        machine: &facts.machine,
        options,
        settings: &plan.settings,
        check: &check,
    };
    let host = tune_host(&unit.host, &target);
    let settings = host.huge_pages.apply(plan.settings.clone());
    let candidate = conf::render_charm_conf(&settings);
    if let Err(rejected) = check.check(&candidate)? {
        let problem = plan::rejection_message(&rejected, &options.extra_pg_conf);
        return Ok(blocked(hook, &problem));
    }
    let conf_dir = cluster.conf_dir();
    let hba_path = conf_dir.join("pg_hba.conf");
    let render_hba =
        |hba: &hba::HbaInput| ha_step::keep_replication_rules(&hba_path, hba::render_pg_hba(hba));
    conf::write_if_changed(&conf_dir.join(conf::CHARM_CONF), &candidate, 0o644)?;
    conf::write_if_changed(
        &conf_dir.join("pg_ident.conf"),
        &hba::render_pg_ident(),
        0o640,
    )?;

    // The replicated cluster, when this unit takes part in one: Patroni
    // may take the server over, clone it, or leave it to the charm.
    let ha = if ha_step::engaged(hook, cluster)? {
        if let Some(hba) = &plan.hba_before_start {
            conf::write_if_changed(&hba_path, &render_hba(hba), 0o640)?;
        }
        let target = ha_step::Target {
            cluster,
            data_dir: &facts.data_dir,
            wal_dir: mounts.pgwal.as_deref(),
            options: options.ha,
            settings: &settings,
            peer_tls: facts.tls.as_ref().and_then(|t| {
                Some(crate::ha::patroni_config::PeerTls {
                    ca: t.peer_ca.clone()?,
                    certificate: t.files.certificate.clone(),
                    key: t.files.key.clone(),
                })
            }),
            internal_ca: facts.tls.as_ref().and_then(|t| t.internal_ca.as_deref()),
        };
        match ha_step::run(hook, &target)? {
            Step::Done(decision) => decision,
            Step::Blocked(problem) => return Ok(blocked(hook, &problem)),
        }
    } else {
        HaDecision::standalone()
    };
    let Some(role) = ha.role.clone() else {
        // Not serving clients in this hook (joining, cloning, no primary).
        return Ok(Outcome::from_problems(&ha.problems, String::new));
    };

    // Whether the files changed in this hook or in one killed before it
    // reloaded, the server's loaded state says what is left to do.
    if !ha.patroni_manages {
        match &plan.hba_before_start {
            Some(hba) if !cluster.is_running() => {
                conf::write_if_changed(&hba_path, &render_hba(hba), 0o640)?;
                unit.progress(&format!("starting PostgreSQL {}", cluster.major));
                control::start(cluster)?;
            }
            _ => {
                reload::sync_with_files(cluster)?;
            }
        }
    }
    // Under Patroni the server may restart under the hook (a rewind after
    // a partition, a demotion): what fails then is not the hook's fault,
    // and the next hook (the watcher's, or update-status) serves.
    let postmaster = Cluster::running_pid(&facts.data_dir);
    let serve = || -> Result<Outcome> {
        let version = db::wait_for_version(cluster, Duration::from_secs(60))?;
        storage::retire_leftovers(cluster, &facts.data_dir)?;
        let mut served = with_clients(
            hook,
            cluster,
            &role,
            &version,
            facts.tls.as_ref(),
            renew,
            |clients| clients.serve(&options.clients),
        )?;
        if let Some(tls) = &facts.tls {
            tls::serve::clients_served(&unit.state, tls)?;
        }
        served
            .problems
            .extend(facts.tls.as_ref().and_then(|t| t.problem.clone()));
        if plan::hba_after_serving(&plan, &served.access) {
            let hba = plan::hba_input(options, served.access);
            conf::write_if_changed(&hba_path, &render_hba(&hba), 0o640)?;
        }
        // Access rules need a reload only, never a restart; under Patroni,
        // Patroni alone restarts the server.
        let synced = if ha.patroni_manages {
            reload::sync_without_restart(cluster)?
        } else {
            reload::Synced {
                hba_problems: reload::sync_with_files(cluster)?,
                pending_restart: Vec::new(),
            }
        };
        served
            .problems
            .extend(synced.hba_problems.into_iter().map(Problem::Blocked));
        served.problems.extend(ha.problems.iter().cloned());
        // open-port is committed with the hook, so what is open is asked of
        // Juju (opened-ports lists committed ports only), never remembered.
        let port = format!("{}/tcp", cluster.port);
        if !juju::opened_ports()
            .context("listing the opened ports")?
            .contains(&port)
        {
            juju::open_port(cluster.port).context("opening the PostgreSQL port")?;
        }
        juju::memo::unless_unchanged(&unit.state, "version", &version, || {
            juju::application_version_set(&version)
        })
        .context("setting the workload version")?;
        Ok(Outcome::from_problems(&served.problems, || {
            let mut message = plan::active_message(&version, &plan, &host.notes);
            message.push_str(&plan::role_note(&role));
            if !synced.pending_restart.is_empty() {
                message.push_str(&format!(
                    "; {} wait for a restart (Patroni restarts the server: `patronictl restart`)",
                    synced.pending_restart.join(", ")
                ));
            }
            for warning in &ha.warnings {
                message.push_str(&format!("; {warning}"));
            }
            message
        }))
    };
    match serve() {
        Err(e) if ha.patroni_manages && Cluster::running_pid(&facts.data_dir) != postmaster => {
            log::warn!("PostgreSQL restarted under Patroni during the hook: {e:#}");
            Ok(Outcome::Waiting(
                "PostgreSQL restarted under Patroni during the hook; serving the relations next"
                    .into(),
            ))
        }
        other => other,
    }
}

/// Runs `serve` on the client relations of the unit's running `cluster`,
/// through the real hook tools and server.
/// `version`: the server's full version, published to `database`
/// consumers (empty when the relations are not served); `tls`: whether
/// they may use TLS and the CA to verify the server with (every relation
/// is refreshed when that CA is new to them).
fn with_clients<T>(
    hook: &Hook,
    cluster: &Cluster,
    role: &Role,
    version: &str,
    tls: Option<&tls::Served>,
    renew: &BTreeSet<String>,
    serve: impl FnOnce(&Clients) -> Result<T>,
) -> Result<T> {
    let server = ClusterServer(cluster);
    let told = tls.map(|t| t.tls.clone()).unwrap_or_default();
    let passwords = JujuPasswords {
        in_secrets: hook.context.has_secrets(),
    };
    serve(&Clients {
        context: &hook.context,
        state: &hook.unit.state,
        port: cluster.port,
        major: cluster.major,
        role,
        version,
        tls: &told,
        refresh_all: tls.is_some_and(|t| t.refresh_clients),
        renew,
        io: Io {
            juju: &HookTools,
            secrets: &HookSecrets {
                model_uuid: hook.context.model_uuid.clone(),
            },
            server: &server,
            passwords: &passwords,
        },
    })
}
