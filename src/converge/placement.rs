//! Putting the cluster where its data belongs: the shell around
//! [`crate::storage::plan_placement`]. It creates the cluster
//! (`pg_createcluster`), adopts a data directory found on the storage, or
//! moves the data onto the storage, and finishes a creation a killed hook
//! left half done.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::charm::Hook;
use crate::cluster::conf;
use crate::cluster::{self, Cluster};
use crate::fsx::{self, Owner};
use crate::options::ClusterOptions;
use crate::outcome::Step;
use crate::relations::access::hba;
use crate::replication::Role;
use crate::state::cluster::{Creating, OwnerRecord};
use crate::storage::{self, dir_state, DirState, Mounts, Placement, PlacementFacts};

/// Puts the cluster where it belongs, or says why it cannot.
pub fn place_cluster(
    hook: &Hook,
    cluster: &Cluster,
    mounts: &Mounts,
    options: &ClusterOptions,
    role: &Role,
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
        clone_from: role.clone_from().map(|primary| primary.name.clone()),
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
        // Only the plan's tests have standbys yet: cloning comes with HA.
        Placement::Clone { from, .. } => Ok(Step::Blocked(format!(
            "this unit is a standby of {from}: cloning from the primary is not supported yet"
        ))),
        Placement::Move { from, to } => {
            Ok(
                storage::move_cluster(cluster, &from, &to, &|m| hook.unit.progress(m))?
                    .map(|()| to),
            )
        }
    }
}

/// `<doing> the PostgreSQL <major> cluster <where> <data_dir>`, as progress.
fn announce(hook: &Hook, doing: &str, cluster: &Cluster, place: &str, data_dir: &Path) {
    hook.unit.progress(&format!(
        "{doing} the PostgreSQL {} cluster {place} {}",
        cluster.major,
        data_dir.display()
    ));
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
    announce(hook, "creating", cluster, "in", data_dir);
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
    announce(hook, "adopting", cluster, "found in", data_dir);
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
