//! Moving a cluster onto its storage: the data onto `pgdata`
//! ([`move_cluster`]) and the write-ahead log onto `pgwal` ([`place_wal`]).
//!
//! **Uptime first.** Everything that can refuse a move is checked while the
//! server still runs: what is already at the destination (an earlier copy
//! of this cluster, another cluster, another major version, foreign files),
//! whether postgres can write there (a read-only disk), and whether the
//! data, its WAL and the tablespaces inside PGDATA fit, counted after stale
//! staging copies of an interrupted move are removed. Only then is the
//! server stopped. If anything fails after that (the disk fills up during
//! the copy, the copy differs, the server will not start from the new
//! place), the server is started again from where its data is, and the
//! blocked status says so. A blocked move is retried by `update-status`
//! once its destination changes ([`blocked_move_may_go_ahead`]).
//!
//! **Crash safety without a journal.** Every step leaves a state the next
//! run recognises. The copy goes to a staging directory and is renamed into
//! place only once verified; the configuration switches to the new
//! directory only once it is in place; the old copy is retired (renamed,
//! then deleted) only once the server runs from the new one. A copy is
//! trusted only if its `global/pg_control` is byte-identical to the stopped
//! original's.
//!
//! **Tablespaces.** One inside PGDATA is copied with it and its link is
//! pointed at the copy; one outside stays where it is. The old PGDATA is
//! never deleted while a tablespace of the running cluster points into it.
//!
//! **As postgres.** The trees belong to postgres, so the copies, renames and
//! deletions inside them run as postgres (and die with the hook): no link planted there
//! can turn them against root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::trees::{compare_trees, tablespaces, usage, Usage};
use super::{dir_state, DirState};
use crate::cluster::{self, conf, control, db, Cluster};
use crate::fsx::{self, Owner};
use crate::outcome::Step;
use crate::state::pending_move::PendingMove;
use crate::state::StateDir;

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Moves the cluster's data from `from` to `to` (see the module comment).
pub fn move_cluster(
    cluster: &Cluster,
    from: &Path,
    to: &Path,
    progress: &dyn Fn(&str),
) -> Result<Step> {
    let blocked = check_data_destination(from, to, cluster.major)?;
    if let Some(problem) = blocked {
        return blocked_while_serving(cluster, from, to, &problem);
    }
    control::stop(cluster)?;
    let outcome = copy_data(cluster, from, to, progress);
    let problem = match outcome {
        Ok(Step::Done(())) => {
            PendingMove::clear(&cluster.state())?;
            retire_unless_used(from, to);
            return Ok(Step::Done(()));
        }
        Ok(Step::Blocked(problem)) => problem,
        Err(e) => first_line(&format!("{e:#}")),
    };
    log::warn!("moving the data to {} failed: {problem}", to.display());
    remove_as_postgres(&staging_dir(to))?;
    let serving = serve_again(cluster, from)?;
    remember_blocked(&cluster.state(), to);
    Ok(Step::Blocked(format!(
        "moving the data to {} failed: {problem}; PostgreSQL was started again from {}",
        to.display(),
        serving.display()
    )))
}

/// Why the data cannot go to `to`, checked without stopping anything.
fn check_data_destination(from: &Path, to: &Path, major: u32) -> Result<Option<String>> {
    if is_read_only(nearest_existing(to)) {
        return Ok(Some(format!(
            "{} is on a read-only file system",
            nearest_existing(to).display()
        )));
    }
    remove_as_postgres(&staging_dir(to))?;
    let source = match cluster::system_identifier(from) {
        Ok(id) => id,
        Err(e) => return Ok(Some(format!("cannot identify the cluster to move: {e:#}"))),
    };
    let mut reclaimable = Usage::default();
    match dir_state(to) {
        DirState::Missing | DirState::Empty => {}
        DirState::Cluster { major: found } if found != major => {
            return Ok(Some(format!(
                "{} holds PostgreSQL {found} data, not {major}; move it aside",
                to.display()
            )))
        }
        DirState::Cluster { .. } => match cluster::system_identifier(to) {
            // An earlier copy of this cluster, complete or not: replaced.
            Ok(id) if id == source => reclaimable = usage(to)?,
            Ok(_) => {
                return Ok(Some(format!(
                    "pgdata storage holds a different cluster at {} while this unit's data is \
                     at {}; move one of them aside",
                    to.display(),
                    from.display()
                )))
            }
            Err(e) => {
                return Ok(Some(format!(
                    "{} holds PostgreSQL data the charm cannot identify ({e:#}); move it aside",
                    to.display()
                )))
            }
        },
        DirState::Other => {
            return Ok(Some(format!(
                "{} is not empty and holds no PostgreSQL cluster; the charm will not overwrite it",
                to.display()
            )))
        }
    }
    if let Some(problem) = writable_by_postgres(to)? {
        return Ok(Some(problem));
    }
    // Tablespaces inside PGDATA are in this count; those outside stay put.
    let needed = usage(from)?;
    lacks_space(to, "the cluster", needed, reclaimable)
}

/// Stops nothing: the copy, its verification, the switch and the start.
fn copy_data(cluster: &Cluster, from: &Path, to: &Path, progress: &dyn Fn(&str)) -> Result<Step> {
    let source_control =
        pg_control(from).context("the cluster to move has no global/pg_control")?;
    let copied = !matches!(dir_state(to), DirState::Missing | DirState::Empty);
    if copied && pg_control(to).as_deref() == Some(source_control.as_slice()) {
        log::info!(
            "{} already holds a verified copy of {}",
            to.display(),
            from.display()
        );
    } else {
        if copied {
            // Checked before stopping: an earlier copy of this cluster.
            log::warn!(
                "{} holds an outdated copy of this cluster; copying again",
                to.display()
            );
            remove_as_postgres(to)?;
        }
        progress(&format!(
            "copying the cluster from {} to {}",
            from.display(),
            to.display()
        ));
        let staging = staging_dir(to);
        if let Step::Blocked(difference) = copy_verified(from, to, &staging)? {
            return Ok(Step::Blocked(difference));
        }
        point_tablespaces_at_copy(from, to, &staging)?;
        if to.exists() {
            as_postgres("rmdir", &[to])?; // empty
        }
        as_postgres("mv", &[Path::new("-T"), &staging, to])?;
        as_postgres("sync", &[Path::new("-f"), to])?;
    }
    switch_data_directory(cluster, to)?;
    progress(&format!("starting PostgreSQL from {}", to.display()));
    control::start(cluster)?;
    db::wait_for_version(cluster, START_TIMEOUT)?;
    Ok(Step::Done(()))
}

/// Copies `source` (as postgres) to `staging`, next to where it goes
/// (`target`), flushes it, and compares it with the original.
fn copy_verified(source: &Path, target: &Path, staging: &Path) -> Result<Step> {
    create_parents(target)?;
    as_postgres("cp", &[Path::new("-a"), source, staging])?;
    as_postgres("sync", &[Path::new("-f"), staging])?;
    Ok(match compare_trees(source, staging)? {
        None => Step::Done(()),
        Some(difference) => Step::Blocked(format!(
            "the copy of {} differs from the original: {difference}",
            source.display()
        )),
    })
}

/// Links in the copy's `pg_tblspc` that point into the original PGDATA
/// are pointed at the same place in the copy; the others stay.
fn point_tablespaces_at_copy(from: &Path, to: &Path, staging: &Path) -> Result<()> {
    for tablespace in tablespaces(staging)? {
        let link = staging.join("pg_tblspc").join(&tablespace.oid);
        let Ok(target) = std::fs::read_link(&link) else {
            continue; // in place: a directory, copied
        };
        match target.strip_prefix(from) {
            Ok(inside) if target.is_absolute() => {
                let moved = to.join(inside);
                as_postgres("ln", &[Path::new("-sfnT"), &moved, &link])?;
                log::info!(
                    "tablespace {} moves with the data to {}",
                    tablespace.oid,
                    moved.display()
                );
            }
            _ => log::info!(
                "tablespace {} stays at {}",
                tablespace.oid,
                target.display()
            ),
        }
    }
    Ok(())
}

/// Puts the write-ahead log on the `pgwal` mount when there is one: new
/// clusters get it from `pg_createcluster --waldir`; an existing cluster's
/// `pg_wal` is copied there (server stopped), verified, and replaced by a
/// symlink. Like the data move, every step can be interrupted: the copy is
/// staged, the old directory is renamed aside before the link is made, and
/// a retry finishes whichever step was cut short. The server is left
/// stopped after a move (the converge starts it with its configuration),
/// and running after anything that blocks.
pub fn place_wal(
    cluster: &Cluster,
    data_dir: &Path,
    wal_mount: Option<&Path>,
    progress: &dyn Fn(&str),
) -> Result<Step> {
    let link = data_dir.join("pg_wal");
    let aside = data_dir.join(".pg_wal.juju-retiring");
    let current = std::fs::read_link(&link).ok();
    if let Some(target) = &current {
        if !target.exists() {
            return Ok(Step::Blocked(format!(
                "the write-ahead log at {} is missing (pgwal storage detached?); reattach it",
                target.display()
            )));
        }
    }
    let Some(mount) = wal_mount else {
        return Ok(Step::Done(()));
    };
    let wanted = cluster.data_dir_on(mount).join("pg_wal");
    if current.as_deref() == Some(wanted.as_path()) {
        remove_as_postgres(&aside)?;
        return Ok(Step::Done(()));
    }
    if let Some(current) = current {
        return Ok(Step::Blocked(format!(
            "the write-ahead log is already at {}, not on pgwal storage {}; move it by hand",
            current.display(),
            mount.display()
        )));
    }
    // A directory inside PGDATA, or set aside by an interrupted move.
    let source = if link.exists() {
        link.clone()
    } else {
        aside.clone()
    };
    if let Some(problem) = check_wal_destination(data_dir, &source, &wanted)? {
        return blocked_while_serving(cluster, data_dir, &wanted, &problem);
    }
    control::stop(cluster)?;
    let problem = match move_wal(&source, &wanted, &link, &aside, progress) {
        Ok(Step::Done(())) => {
            PendingMove::clear(&cluster.state())?;
            return Ok(Step::Done(()));
        }
        Ok(Step::Blocked(problem)) => problem,
        Err(e) => first_line(&format!("{e:#}")),
    };
    log::warn!("moving the write-ahead log failed: {problem}");
    remove_as_postgres(&staging_dir(&wanted))?;
    if std::fs::symlink_metadata(&link).is_err() && aside.exists() {
        as_postgres("mv", &[Path::new("-T"), &aside, &link])?;
    }
    let serving = serve_again(cluster, data_dir)?;
    remember_blocked(&cluster.state(), &wanted);
    Ok(Step::Blocked(format!(
        "moving the write-ahead log to {} failed: {problem}; PostgreSQL was started again \
         from {}",
        wanted.display(),
        serving.display()
    )))
}

fn check_wal_destination(data_dir: &Path, source: &Path, wanted: &Path) -> Result<Option<String>> {
    if is_read_only(nearest_existing(wanted)) {
        return Ok(Some(format!(
            "{} is on a read-only file system",
            nearest_existing(wanted).display()
        )));
    }
    remove_as_postgres(&staging_dir(wanted))?;
    if wanted.exists() {
        // An earlier copy of this cluster's WAL is replaced; anything else
        // is not the charm's to delete.
        let ours = cluster::system_identifier(data_dir).ok();
        let empty = std::fs::read_dir(wanted).is_ok_and(|mut e| e.next().is_none());
        return Ok(match wal_system_identifier(wanted) {
            Some(found) if Some(found) == ours => None,
            None if empty => None,
            Some(_) => Some(format!(
                "pgwal storage holds another cluster's write-ahead log at {}; move it aside",
                wanted.display()
            )),
            None => Some(format!(
                "{} is not empty and holds no write-ahead log of this cluster; move it aside",
                wanted.display()
            )),
        });
    }
    if let Some(problem) = writable_by_postgres(wanted)? {
        return Ok(Some(problem));
    }
    lacks_space(
        wanted,
        "the write-ahead log",
        usage(source)?,
        Usage::default(),
    )
}

fn move_wal(
    source: &Path,
    wanted: &Path,
    link: &Path,
    aside: &Path,
    progress: &dyn Fn(&str),
) -> Result<Step> {
    if wanted.exists() && compare_trees(source, wanted)?.is_some() {
        // An earlier copy of this cluster's WAL (checked before stopping).
        remove_as_postgres(wanted)?;
    }
    if !wanted.exists() {
        progress(&format!(
            "moving the write-ahead log to {}",
            wanted.parent().unwrap_or(wanted).display()
        ));
        let staging = staging_dir(wanted);
        if let Step::Blocked(difference) = copy_verified(source, wanted, &staging)? {
            return Ok(Step::Blocked(difference));
        }
        as_postgres("mv", &[Path::new("-T"), &staging, wanted])?;
    }
    if link.exists() {
        as_postgres("mv", &[Path::new("-T"), link, aside])?;
    }
    as_postgres("ln", &[Path::new("-sT"), wanted, link])?;
    remove_as_postgres(aside)?;
    Ok(Step::Done(()))
}

/// The system identifier in the long header of the first WAL segment in
/// `dir` (bytes 24..32), if there is one to read.
fn wal_system_identifier(dir: &Path) -> Option<u64> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.len() == 24 && name.chars().all(|c| c.is_ascii_hexdigit())
        })
        .map(|e| e.path())
        .collect();
    segments.sort();
    let bytes = fsx::read(segments.first()?).ok()?;
    Some(u64::from_ne_bytes(bytes.get(24..32)?.try_into().ok()?))
}

/// A check refused the move before anything stopped: the server keeps (or,
/// after an earlier interrupted attempt, goes back to) serving.
fn blocked_while_serving(
    cluster: &Cluster,
    data_dir: &Path,
    target: &Path,
    problem: &str,
) -> Result<Step> {
    let was_running = cluster.is_running();
    let serving = serve_again(cluster, data_dir)?;
    remember_blocked(&cluster.state(), target);
    let how = if was_running {
        "keeps running"
    } else {
        "was started again"
    };
    Ok(Step::Blocked(format!(
        "{problem}; PostgreSQL {how} from {}",
        serving.display()
    )))
}

/// After a move that did not finish: the server runs again from where its
/// data is, which is `original` unless the copy is already serving.
fn serve_again(cluster: &Cluster, original: &Path) -> Result<PathBuf> {
    if !cluster.is_running() {
        if cluster.data_directory()? != original && original.join("PG_VERSION").is_file() {
            switch_data_directory(cluster, original)?;
        }
        control::start(cluster)?;
        db::wait_for_version(cluster, START_TIMEOUT)?;
    }
    cluster.data_directory()
}

/// Deletes the copy a finished move left behind (`old`), unless a
/// tablespace of the cluster at `data_dir` points into it. A failure is
/// logged; the next converge tries again ([`retire_leftovers`]).
fn retire_unless_used(old: &Path, data_dir: &Path) {
    let used_by: Vec<String> = match tablespaces(data_dir) {
        Ok(found) => found
            .into_iter()
            .filter(|t| t.location.as_ref().is_some_and(|l| l.starts_with(old)))
            .map(|t| t.oid)
            .collect(),
        Err(e) => {
            log::warn!("keeping {}: tablespaces unreadable: {e:#}", old.display());
            return;
        }
    };
    if !used_by.is_empty() {
        log::warn!(
            "keeping the old copy at {}: tablespace(s) {} of the running cluster point into it",
            old.display(),
            used_by.join(", ")
        );
        return;
    }
    let retiring = retiring_dir(old);
    let retired = as_postgres("mv", &[Path::new("-T"), old, &retiring])
        .and_then(|_| remove_as_postgres(&retiring));
    match retired {
        Ok(()) => log::info!("retired the old copy at {}", old.display()),
        Err(e) => log::warn!("could not retire {}: {e:#}", old.display()),
    }
}

/// Deletes the root-disk copy left behind by a finished move (or an
/// interrupted retirement), once the server runs from `data_dir`, and only
/// if it is a copy of the same cluster.
pub fn retire_leftovers(cluster: &Cluster, data_dir: &Path) -> Result<()> {
    let old = cluster.root_disk_data_dir();
    let retiring = retiring_dir(&old);
    if let Err(e) = remove_as_postgres(&retiring) {
        log::warn!("could not delete {}: {e:#}", retiring.display());
    }
    if old != data_dir
        && old.exists()
        && cluster.is_running()
        && cluster::same_cluster(
            &cluster::system_identifier(&old),
            &cluster::system_identifier(data_dir),
        )
    {
        retire_unless_used(&old, data_dir);
    }
    Ok(())
}

/// Whether postgres can create `target` (its parents are made first).
fn writable_by_postgres(target: &Path) -> Result<Option<String>> {
    let existing = nearest_existing(target);
    if is_read_only(existing) {
        return Ok(Some(format!(
            "{} is on a read-only file system",
            existing.display()
        )));
    }
    if let Err(e) = create_parents(target) {
        return Ok(Some(format!(
            "cannot prepare {}: {e:#}",
            target.parent().unwrap_or(target).display()
        )));
    }
    let parent = target.parent().unwrap_or(target);
    let template = parent.join(".juju-probe.XXXXXX");
    let probe = as_postgres("mktemp", &[Path::new("-d"), &template]);
    match probe {
        Ok(made) => {
            as_postgres("rmdir", &[Path::new(made.trim())])?;
            Ok(None)
        }
        Err(e) => Ok(Some(format!(
            "postgres cannot write to {}: {}",
            parent.display(),
            first_line(&format!("{e:#}"))
        ))),
    }
}

fn lacks_space(
    target: &Path,
    what: &str,
    needed: Usage,
    reclaimable: Usage,
) -> Result<Option<String>> {
    let existing = nearest_existing(target);
    let stat = nix::sys::statvfs::statvfs(existing)
        .with_context(|| format!("statvfs {}", existing.display()))?;
    // What an unprivileged user (postgres, who copies) may still use.
    let free_bytes =
        stat.blocks_available() as u64 * stat.fragment_size() as u64 + reclaimable.bytes;
    let free_inodes = stat.files_available() as u64 + reclaimable.inodes;
    let want_bytes = needed.bytes + needed.bytes / 10;
    let want_inodes = needed.inodes + needed.inodes / 10;
    if free_bytes < want_bytes {
        return Ok(Some(format!(
            "not enough free space on {} for {what}: {} MiB free, {} MiB needed",
            existing.display(),
            free_bytes >> 20,
            want_bytes >> 20
        )));
    }
    // Some file systems (btrfs) report no inode counts.
    if stat.files() > 0 && free_inodes < want_inodes {
        return Ok(Some(format!(
            "not enough free inodes on {} for {what}: {free_inodes} free, {want_inodes} needed",
            existing.display()
        )));
    }
    Ok(None)
}

fn nearest_existing(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}

fn is_read_only(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path)
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// The destination's file system and directory as they are now.
fn pending_move(target: &Path) -> Option<PendingMove> {
    let existing = nearest_existing(target);
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    Some(PendingMove {
        target: target.to_path_buf(),
        free_bytes: stat.blocks_available() as u64 * stat.fragment_size() as u64,
        free_inodes: stat.files_available() as u64,
        read_only: stat.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        nearest: existing.to_path_buf(),
        changed_at_ns: {
            let meta = std::fs::metadata(existing).ok()?;
            i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
        },
    })
}

fn remember_blocked(state: &StateDir, target: &Path) {
    if let Some(pending) = pending_move(target) {
        if let Err(e) = pending.save(state) {
            log::warn!("not remembering the blocked move: {e:#}");
        }
    }
}

/// Whether a move that was blocked may go ahead now: its destination
/// changed (space freed, remounted read-write, something moved aside).
/// Spawns nothing.
pub fn blocked_move_may_go_ahead(state: &StateDir) -> bool {
    PendingMove::load(state)
        .is_some_and(|pending| pending_move(&pending.target).as_ref() != Some(&pending))
}

/// Forgets a blocked move (the placement no longer needs one).
pub fn forget_blocked_move(state: &StateDir) -> Result<()> {
    PendingMove::clear(state)
}

fn pg_control(dir: &Path) -> Option<Vec<u8>> {
    fsx::read(&dir.join("global/pg_control")).ok()
}

fn staging_dir(to: &Path) -> PathBuf {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    to.with_file_name(format!(".{name}.juju-copy"))
}

fn retiring_dir(old: &Path) -> PathBuf {
    let name = old
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    old.with_file_name(format!(".{name}.juju-retiring"))
}

/// `<mount>/<major>` owned by postgres, like Debian's /var/lib/postgresql/<major>.
pub fn create_parents(data_dir: &Path) -> Result<()> {
    let parent = data_dir.parent().context("data directory has no parent")?;
    fsx::ensure_dir(parent, Owner::postgres()?, 0o755)?;
    if let Some(mount) = parent.parent() {
        // The mount root must let postgres through.
        let dir = fsx::open_dir(mount).with_context(|| format!("opening {}", mount.display()))?;
        let mode = dir.metadata()?.mode();
        if mode & 0o001 == 0 {
            use std::os::unix::fs::PermissionsExt;
            dir.set_permissions(std::fs::Permissions::from_mode((mode & 0o7777) | 0o755))
                .with_context(|| format!("letting postgres through {}", mount.display()))?;
        }
    }
    Ok(())
}

/// Points the cluster's postgresql.conf at `data_dir` (atomic rewrite).
fn switch_data_directory(cluster: &Cluster, data_dir: &Path) -> Result<()> {
    let path = cluster.conf_file();
    let text = fsx::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let line = format!(
        "data_directory = '{}'\t\t# set by the PostgreSQL charm",
        data_dir.display()
    );
    let mut replaced = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("data_directory") && l.contains('=') {
                replaced = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !replaced {
        out.insert(0, line);
    }
    conf::write_if_changed(&path, &(out.join("\n") + "\n"), 0o644)?;
    Ok(())
}

/// `program args...` as postgres, which owns the trees being moved, and
/// killed with the hook: a hook killed mid-copy must not leave a `cp`
/// writing into the staging directory the retry cleans up.
pub(crate) fn as_postgres(program: &str, args: &[&Path]) -> Result<String> {
    use std::os::unix::process::CommandExt;
    let postgres = Owner::postgres()?;
    let hook = nix::unistd::getpid();
    let mut command = std::process::Command::new(program);
    // std drops root's supplementary groups before setuid.
    command.args(args).uid(postgres.uid).gid(postgres.gid);
    // SAFETY: the closure only makes two system calls (prctl, getppid),
    // both async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if nix::unistd::getppid() != hook {
                return Err(std::io::Error::other("the hook is gone"));
            }
            Ok(())
        });
    }
    cluster::run(&mut command)
}

/// `rm -rf` as postgres, when there is something to remove. A process of a
/// killed hook may still be on its way out: a second try after a moment.
fn remove_as_postgres(path: &Path) -> Result<()> {
    for attempt in 0.. {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        match as_postgres("rm", &[Path::new("-rf"), path]) {
            Ok(_) => return Ok(()),
            Err(e) if attempt >= 2 => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    unreachable!("the loop returns")
}

/// The gist of an error for a status line: the tool's own complaint
/// (what follows `failed (exit status: N): `), first line only.
fn first_line(text: &str) -> String {
    let gist = text.split_once("): ").map_or(text, |(_, rest)| rest);
    let gist = gist.lines().next().unwrap_or(gist);
    gist.chars().take(300).collect()
}
