//! Converging the unit on every hook: packages installed, the cluster
//! created (or adopted) where its data belongs, configured, running, and
//! reported. Each step reads what is there and does only what is missing,
//! so any hook may run twice or be killed and retried.
//!
//! Conditions an operator must resolve (bad config, foreign data in the
//! way, missing storage) are `blocked` statuses, not hook failures: the hook
//! succeeds, the message names the cause, and PostgreSQL keeps serving with
//! its last good configuration. Real failures return errors, so Juju
//! retries the hook.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::charm::Hook;
use crate::clients::objects::ClusterServer;
use crate::clients::{self, Clients, Io};
use crate::cluster::conf::{self, Setting};
use crate::cluster::{self, control, db, packages, reload, Cluster};
use crate::credentials::JujuPasswords;
use crate::fsx::{self, Owner};
use crate::juju::{self, HookTools, WorkloadStatus};
use crate::options::ClusterOptions;
use crate::outcome::{Outcome, Problem, Step};
use crate::relations::access::{hba, RelationAccess};
use crate::state::cluster::{Creating, OwnerRecord};
use crate::storage::{self, dir_state, DirState, Mounts, Placement, PlacementFacts};
use crate::tuning::{self, DiskClass, MachineFacts, SysRoot};
use crate::unit::Unit;

pub fn set_status(unit: &Unit, status: WorkloadStatus, message: &str) -> Result<()> {
    juju::status_set_if_changed(&unit.state, status, message).with_context(|| {
        format!(
            "could not set the unit status to {} \"{message}\" (Juju retries the hook)",
            status.as_str()
        )
    })
}

fn progress(unit: &Unit, message: &str) {
    log::info!("{message}");
    if let Err(e) = set_status(unit, WorkloadStatus::Maintenance, message) {
        log::warn!("{e:#}");
    }
}

/// Runs the whole convergence and reports the outcome as the unit status.
pub fn converge_and_report(hook: &Hook) -> Result<()> {
    match converge(hook)? {
        Outcome::Active(message) => set_status(&hook.unit, WorkloadStatus::Active, &message),
        Outcome::Blocked(message) => {
            log::warn!("blocked: {message}");
            set_status(&hook.unit, WorkloadStatus::Blocked, &message)
        }
        Outcome::Waiting(message) => set_status(&hook.unit, WorkloadStatus::Waiting, &message),
    }
}

pub fn converge(hook: &Hook) -> Result<Outcome> {
    let outcome = converge_unit(hook)?;
    if !matches!(outcome, Outcome::Active(_)) {
        // A converge that stopped early (bad config, storage in the way)
        // never reached the relations: removed ones still lose their access.
        if let Some(cluster) = hook.unit.existing_cluster().filter(|c| c.is_running()) {
            with_clients(hook, &cluster, |clients| clients.revoke_removed())
                .context("revoking the users of removed relations")?;
        }
    }
    Ok(outcome)
}

fn converge_unit(hook: &Hook) -> Result<Outcome> {
    let unit = &hook.unit;
    let config = juju::config_get().context("reading the charm config")?;
    let options = match ClusterOptions::from_config(&config) {
        Ok(options) => options,
        Err(e) => return Ok(Outcome::Blocked(still_serving(unit, &e.to_string()))),
    };
    let existing = unit.existing_cluster();
    if let (Some(cluster), Some(wanted)) = (&existing, options.version) {
        if cluster.major != wanted {
            return Ok(Outcome::Blocked(still_serving(unit, &format!(
                "config version: cannot change from {} to {wanted} after install; set it back to {} or \"\"",
                cluster.major, cluster.major
            ))));
        }
    }
    let major = match &existing {
        Some(cluster) => cluster.major,
        None => packages::ensure_installed(options.version, &|m| progress(unit, m))?,
    };
    let cluster = unit.cluster(major);
    let mounts = Mounts::attached(None)?;

    let data_dir = match place_cluster(hook, &cluster, &mounts, &options)? {
        Step::Done(dir) => dir,
        Step::Blocked(blocked) => return Ok(Outcome::Blocked(blocked)),
    };
    if let Step::Blocked(blocked) =
        storage::place_wal(&cluster, &data_dir, mounts.pgwal.as_deref(), &|m| {
            progress(unit, m)
        })?
    {
        return Ok(Outcome::Blocked(blocked));
    }
    storage::forget_blocked_move(&unit.state)?;
    if let Some(problem) = immutable_option_changed(unit, &options) {
        return Ok(Outcome::Blocked(still_serving(unit, &problem)));
    }
    let facts = tuning::machine::machine_facts(cluster.major, &data_dir, mounts.pgwal.as_deref());
    let mut settings = desired_settings(&options, &facts);
    // Host tuning (src/tuning/apply.rs): before the conf file is rendered,
    // so huge_pages is `on` only when the reserved pool really holds the
    // server's shared memory. Also records the machine for update-status.
    let host_notes = tuning::host_tuning::tune_host(
        &unit.host,
        &cluster,
        &data_dir,
        mounts.pgwal.as_deref(),
        &facts,
        &options,
        &mut settings,
    );
    let candidate = conf::render_charm_conf(&settings);
    let charm_conf = cluster.conf_dir().join(conf::CHARM_CONF);
    let unchanged = fsx::read_to_string(&charm_conf).is_ok_and(|live| live == candidate);
    // The live file was validated when it was written.
    if !unchanged {
        if let Err(rejected) = conf::validate(&cluster, &candidate)? {
            return Ok(Outcome::Blocked(still_serving(
                unit,
                &rejection_message(&rejected, &options.extra_pg_conf),
            )));
        }
    }
    let hba_path = cluster.conf_dir().join("pg_hba.conf");
    conf::write_if_changed(&charm_conf, &candidate, 0o644)?;
    conf::write_if_changed(
        &cluster.conf_dir().join("pg_ident.conf"),
        &hba::render_pg_ident(),
        0o640,
    )?;
    conf::write_if_changed(
        &hba_path,
        &render_pg_hba(&options, clients::cached_access(&unit.state)),
        0o640,
    )?;

    // Whether the files changed in this hook or in one killed before it
    // reloaded, the server's loaded state says what is left to do.
    if cluster.is_running() {
        reload::sync_with_files(&cluster)?;
    } else {
        progress(unit, &format!("starting PostgreSQL {}", cluster.major));
        control::start(&cluster)?;
    }
    let version = db::wait_for_version(&cluster, Duration::from_secs(60))?;
    storage::retire_leftovers(&cluster, &data_dir)?;
    let mut served = with_clients(hook, &cluster, |clients| clients.serve(&options.clients))?;
    conf::write_if_changed(&hba_path, &render_pg_hba(&options, served.access), 0o640)?;
    // Access rules need a reload only, never a restart.
    let hba_problems = reload::sync_with_files(&cluster)?;
    served
        .problems
        .extend(hba_problems.into_iter().map(Problem::Blocked));
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
        let mut message = active_message(&version, &data_dir, &mounts, &options);
        if !host_notes.is_empty() {
            // The live value and the one after a reboot would differ otherwise.
            message.push_str(&format!("; host: {}", host_notes.join("; ")));
        }
        message
    }))
}

/// Runs `serve` on the client relations of the unit's running `cluster`,
/// through the real hook tools and server.
fn with_clients<T>(
    hook: &Hook,
    cluster: &Cluster,
    serve: impl FnOnce(&Clients) -> Result<T>,
) -> Result<T> {
    let server = ClusterServer(cluster);
    let passwords = JujuPasswords {
        in_secrets: hook.context.has_secrets(),
    };
    serve(&Clients {
        context: &hook.context,
        state: &hook.unit.state,
        port: cluster.port,
        major: cluster.major,
        io: Io {
            juju: &HookTools,
            server: &server,
            passwords: &passwords,
        },
    })
}

/// Why the server refuses the candidate configuration. `extra-pg-conf` is
/// named only when the server names a setting that option produced, in the
/// charm's own file; anything else says what failed instead.
fn rejection_message(rejected: &conf::Rejected, extra_pg_conf: &[(String, String)]) -> String {
    let message = &rejected.message;
    let from_extra = |setting: &str| extra_pg_conf.iter().any(|(name, _)| name == setting);
    match (&rejected.setting, &rejected.file) {
        (setting, Some(file)) if !rejected.in_charm_conf() => format!(
            "PostgreSQL rejects {} in {file}, which the charm does not manage: {message}",
            setting.as_deref().unwrap_or("a line")
        ),
        (Some(setting), _) if from_extra(setting) => {
            format!("config extra-pg-conf: the server rejects {setting}: {message}")
        }
        (Some(setting), _) => format!(
            "PostgreSQL rejects the charm's own setting {setting} (please report this): {message}"
        ),
        (None, _) => format!("PostgreSQL could not check the configuration: {message}"),
    }
}

fn still_serving(unit: &Unit, problem: &str) -> String {
    let serving = unit.existing_cluster().is_some_and(|c| c.is_running());
    if serving {
        format!("{problem} (still serving with the last good configuration)")
    } else {
        problem.to_string()
    }
}

fn active_message(
    version: &str,
    data_dir: &Path,
    mounts: &Mounts,
    options: &ClusterOptions,
) -> String {
    match &mounts.pgdata {
        Some(mount) => format!(
            "PostgreSQL {version} on {}{}",
            mount.display(),
            disk_hint(data_dir, options)
        ),
        None => format!("PostgreSQL {version} on the root disk (no pgdata storage)"),
    }
}

/// `(nvme)`, `(ssd)` or `(hdd)` for the disk under `path`, when known.
fn disk_hint(path: &Path, options: &ClusterOptions) -> String {
    match tuning::detect::volume_for_path(&SysRoot::host(), path) {
        Ok(volume) => match tuning::volume_class(&volume, options.tuning.storage_type) {
            DiskClass::Unknown => String::new(),
            class => format!(" ({})", class.as_str()),
        },
        Err(_) => String::new(),
    }
}

/// The charm's settings: its own, then the tuning plan, then
/// `extra-pg-conf` (which wins over both).
fn desired_settings(options: &ClusterOptions, facts: &MachineFacts) -> Vec<Setting> {
    let mut settings = vec![
        Setting::new(
            "listen_addresses",
            "'*'",
            "consumers connect over the network; pg_hba.conf decides who may",
        ),
        Setting::new(
            "password_encryption",
            "'scram-sha-256'",
            "relation passwords are stored as SCRAM verifiers",
        ),
    ];
    for tuned in tuning::plan(facts, &options.tuning) {
        settings.push(Setting::new(tuned.name, &tuned.value, &tuned.reason));
    }
    for (name, value) in &options.extra_pg_conf {
        settings.retain(|s| s.name != *name);
        settings.push(Setting::new(
            name,
            value,
            "from the charm's extra-pg-conf option",
        ));
    }
    settings
}

fn render_pg_hba(options: &ClusterOptions, relations: Vec<RelationAccess>) -> String {
    hba::render_pg_hba(&hba::HbaInput {
        relations,
        admin_addresses: options.admin_addresses.clone(),
    })
}

/// `locale` and `encoding` only apply when the cluster is created.
fn immutable_option_changed(unit: &Unit, options: &ClusterOptions) -> Option<String> {
    let record = OwnerRecord::load(&unit.state)?;
    for (option, recorded, wanted) in [
        ("locale", &record.locale, &options.locale),
        ("encoding", &record.encoding, &options.encoding),
    ] {
        if let Some(recorded) = recorded {
            if recorded != wanted {
                return Some(format!(
                    "config {option}: cannot change from {recorded} to {wanted} after the cluster was created; set it back"
                ));
            }
        }
    }
    None
}

/// Puts the cluster where it belongs, or says why it cannot.
fn place_cluster(
    hook: &Hook,
    cluster: &Cluster,
    mounts: &Mounts,
    options: &ClusterOptions,
) -> Result<Step<PathBuf>> {
    finish_interrupted_creation(hook, cluster, options)?;
    let desired = match &mounts.pgdata {
        Some(mount) => cluster.data_dir_on(mount),
        None => cluster.root_disk_data_dir(),
    };
    let configured = if cluster.exists() {
        cluster.data_directory().ok()
    } else {
        None
    };
    let facts = PlacementFacts {
        major: cluster.major,
        config_exists: cluster.exists(),
        ours: cluster.is_ours(),
        conf_dir: cluster.conf_dir(),
        configured_state: configured
            .as_deref()
            .map(dir_state)
            .unwrap_or(DirState::Missing),
        configured,
        desired_state: dir_state(&desired),
        desired: desired.clone(),
        on_storage: mounts.pgdata.is_some(),
    };
    match storage::plan_placement(&facts) {
        Placement::Blocked(message) => Ok(Step::Blocked(message)),
        Placement::InPlace { data_dir } => Ok(Step::Done(data_dir)),
        Placement::Create { data_dir } => {
            create_cluster(hook, cluster, &data_dir, mounts.pgwal.as_deref(), options)?;
            Ok(Step::Done(data_dir))
        }
        Placement::Adopt { data_dir } => {
            adopt_cluster(hook, cluster, &data_dir, options)?;
            Ok(Step::Done(data_dir))
        }
        Placement::Move { from, to } => {
            Ok(
                storage::move_cluster(cluster, &from, &to, &|m| progress(&hook.unit, m))?
                    .map(|()| to),
            )
        }
    }
}

fn start_creating(cluster: &Cluster, adopting: bool) -> Result<()> {
    Creating {
        major: cluster.major,
        adopting,
    }
    .save(&cluster.state())
}

fn finish_interrupted_creation(
    hook: &Hook,
    cluster: &Cluster,
    options: &ClusterOptions,
) -> Result<()> {
    let state = cluster.state();
    let Some(creating) = Creating::load(&state) else {
        return Ok(());
    };
    if creating.major == cluster.major && cluster.exists() && !cluster.is_ours() {
        if !creating.adopting {
            // A fresh initdb that never served anyone: redo it from scratch.
            log::warn!(
                "redoing the interrupted creation of cluster {}",
                cluster.id()
            );
            cluster::run(Command::new("pg_dropcluster").args([
                &cluster.major.to_string(),
                &cluster.name,
                "--stop",
            ]))?;
        } else {
            // An adoption: the data is the operator's; just finish the bookkeeping.
            owner_record(hook, cluster, options).save(&state)?;
        }
    }
    Creating::clear(&state)
}

fn owner_record(hook: &Hook, cluster: &Cluster, options: &ClusterOptions) -> OwnerRecord {
    OwnerRecord {
        major: cluster.major,
        unit: hook.context.unit.clone(),
        locale: Some(options.locale.clone()),
        encoding: Some(options.encoding.clone()),
    }
}

fn create_cluster(
    hook: &Hook,
    cluster: &Cluster,
    data_dir: &Path,
    wal_mount: Option<&Path>,
    options: &ClusterOptions,
) -> Result<()> {
    progress(
        &hook.unit,
        &format!(
            "creating the PostgreSQL {} cluster in {}",
            cluster.major,
            data_dir.display()
        ),
    );
    storage::create_parents(data_dir)?;
    start_creating(cluster, false)?;
    let mut command = pg_createcluster(cluster, data_dir);
    command
        .arg("--locale")
        .arg(&options.locale)
        .arg("--encoding")
        .arg(&options.encoding);
    // initdb options, after `--`: checksums, and the WAL on its own disk.
    command.args(["--", "--data-checksums"]);
    if let Some(mount) = wal_mount {
        let wal_dir = cluster.data_dir_on(mount).join("pg_wal");
        storage::create_parents(&wal_dir)?;
        command.arg(format!("--waldir={}", wal_dir.display()));
    }
    cluster::run(&mut command).context("pg_createcluster failed")?;
    owner_record(hook, cluster, options).save(&cluster.state())?;
    Creating::clear(&cluster.state())
}

/// `pg_createcluster <major> <name> --datadir .. --port .. --start-conf=auto`:
/// the part creating and adopting share.
fn pg_createcluster(cluster: &Cluster, data_dir: &Path) -> Command {
    let mut command = Command::new("pg_createcluster");
    command
        .arg(cluster.major.to_string())
        .arg(&cluster.name)
        .arg("--datadir")
        .arg(data_dir)
        .arg("--port")
        .arg(cluster.port.to_string())
        .arg("--start-conf=auto");
    command
}

/// Integrates an existing data directory (a re-attached disk) into
/// postgresql-common without touching its data: pg_createcluster adopts a
/// data directory that holds its own postgresql.conf.
fn adopt_cluster(
    hook: &Hook,
    cluster: &Cluster,
    data_dir: &Path,
    options: &ClusterOptions,
) -> Result<()> {
    progress(
        &hook.unit,
        &format!(
            "adopting the PostgreSQL {} cluster found in {}",
            cluster.major,
            data_dir.display()
        ),
    );
    start_creating(cluster, true)?;
    let postgres = Owner::postgres()?;
    for (file, content, mode) in [
        (
            "postgresql.conf",
            "# Adopted by the PostgreSQL charm.\n".to_string(),
            0o644,
        ),
        (
            "pg_hba.conf",
            "local all postgres peer\n".to_string(),
            0o640,
        ),
        ("pg_ident.conf", hba::render_pg_ident(), 0o640),
    ] {
        let path = data_dir.join(file);
        if !fsx::is_file(&path) {
            fsx::write_atomic(&path, content.as_bytes(), postgres, mode)?;
        }
    }
    cluster::run(&mut pg_createcluster(cluster, data_dir))
        .context("pg_createcluster could not adopt the existing data directory")?;
    let conf_file = cluster.conf_file();
    let text = fsx::read_to_string(&conf_file)
        .with_context(|| format!("reading {}", conf_file.display()))?;
    if conf::setting_in(&text, "include_dir").is_none() {
        conf::write_if_changed(
            &conf_file,
            &format!("{text}\ninclude_dir = 'conf.d'\n"),
            0o644,
        )?;
    }
    fsx::create_dir_all(&cluster.conf_dir().join("conf.d"), postgres, 0o755)?;
    owner_record(hook, cluster, options).save(&cluster.state())?;
    Creating::clear(&cluster.state())
}

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
    progress(
        &hook.unit,
        &format!("stopping PostgreSQL: {storage} storage is detaching"),
    );
    control::stop(&cluster)?;
    set_status(
        &hook.unit,
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

/// `stop`: no server is left running; nothing is deleted.
pub fn stop_server(hook: &Hook, reason: &str) -> Result<()> {
    if let Some(cluster) = hook.unit.existing_cluster() {
        control::stop(&cluster)?;
    }
    set_status(&hook.unit, WorkloadStatus::Maintenance, reason)
}

/// `remove`: the unit leaves and hands the machine back. The server is
/// stopped, and its cluster (data and configuration) is kept but no longer
/// started at boot. Every host setting the charm changed gets its recorded
/// value back, its files under /etc go (units disabled first), and its
/// state directory is deleted.
pub fn remove_unit(hook: &Hook) -> Result<()> {
    if let Some(cluster) = hook.unit.existing_cluster() {
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
    set_status(
        &hook.unit,
        WorkloadStatus::Maintenance,
        "removing unit; data kept",
    )?;
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
        Some(cluster) if cluster.is_running() => Ok(()),
        // Down with its data in place: it died or was stopped by hand.
        // (Down without its data, e.g. storage detached, is reported by
        // the converge as blocked, with no "restarting" in between.)
        Some(cluster) if data_in_place(&cluster) => {
            log::warn!("PostgreSQL {} is not running; starting it", cluster.id());
            set_status(
                &hook.unit,
                WorkloadStatus::Maintenance,
                "PostgreSQL was down; restarting it",
            )?;
            converge_and_report(hook)
        }
        Some(_) | None => converge_and_report(hook),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::conf::parse_rejection;

    #[test]
    fn a_rejection_names_extra_pg_conf_only_for_its_own_settings() {
        let charm_file = "/etc/postgresql/15/main/conf.d/90-juju-charm.conf";
        let bad_value = |name: &str, file: &str| {
            parse_rejection(&format!(
                "LOG:  invalid value for parameter \"{name}\": \"lots\"\n\
                 FATAL:  configuration file \"{file}\" contains errors\n"
            ))
        };
        let extra = vec![("work_mem".to_string(), "lots".to_string())];
        let cases = [
            (
                bad_value("work_mem", charm_file),
                "config extra-pg-conf: the server rejects work_mem: invalid value",
            ),
            (
                bad_value("shared_buffers", charm_file),
                "PostgreSQL rejects the charm's own setting shared_buffers",
            ),
            (
                bad_value("work_mem", "/etc/postgresql/15/main/conf.d/50-local.conf"),
                "PostgreSQL rejects work_mem in /etc/postgresql/15/main/conf.d/50-local.conf, \
                 which the charm does not manage",
            ),
            (
                parse_rejection(
                    "postgres: could not identify current directory: Permission denied\n",
                ),
                "PostgreSQL could not check the configuration: postgres: could not identify \
                 current directory",
            ),
        ];
        for (rejected, wanted) in cases {
            let message = rejection_message(&rejected, &extra);
            assert!(message.starts_with(wanted), "{message}");
        }
    }
}
