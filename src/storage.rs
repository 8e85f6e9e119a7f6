//! Where the data lives: the `pgdata` and `pgwal` storage mounts, and the
//! crash-safe move of an existing cluster from the root disk onto `pgdata`.
//!
//! The move never needs a journal: every step leaves the file system in a
//! state from which the next run can tell what is done. The copy goes to a
//! staging directory and is renamed into place only once verified; the
//! configuration switches to the new directory only once it is in place;
//! the old copy is retired (renamed, then deleted) only once the server
//! runs from the new one. A copy is trusted only if its `global/pg_control`
//! is byte-identical to the stopped original's.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cluster::{self, conf, control, db, Cluster};
use crate::fsx::{self, Owner};
use crate::juju;

/// The storage mounts attached to this unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    pub pgdata: Option<PathBuf>,
    pub pgwal: Option<PathBuf>,
}

impl Mounts {
    /// Asks Juju (`storage-list`, `storage-get`), leaving out `detaching`.
    pub fn attached(detaching: Option<&str>) -> Result<Self> {
        let mut mounts = Self::default();
        for id in juju::storage_list(None)? {
            if Some(id.as_str()) == detaching {
                continue;
            }
            let slot = match id.split('/').next() {
                Some("pgdata") => &mut mounts.pgdata,
                Some("pgwal") => &mut mounts.pgwal,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(juju::storage_get(&id)?.location);
            }
        }
        Ok(mounts)
    }
}

/// What is at a directory where a cluster might live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirState {
    Missing,
    Empty,
    Cluster { major: u32 },
    Other,
}

pub fn dir_state(dir: &Path) -> DirState {
    match std::fs::read_dir(dir) {
        Err(_) => DirState::Missing,
        Ok(mut entries) => {
            if entries.next().is_none() {
                DirState::Empty
            } else {
                match cluster::data_dir_version(dir) {
                    Some(major) => DirState::Cluster { major },
                    None => DirState::Other,
                }
            }
        }
    }
}

/// What to do to put the cluster where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// No cluster yet: initialise one at `data_dir`.
    Create { data_dir: PathBuf },
    /// The disk already holds a cluster of this major version: use it.
    Adopt { data_dir: PathBuf },
    /// The cluster is where it belongs.
    InPlace { data_dir: PathBuf },
    /// The cluster is on the root disk and `pgdata` storage has arrived.
    Move { from: PathBuf, to: PathBuf },
    /// Something the charm did not create is in the way, or data is missing.
    Blocked(String),
}

/// Facts about the cluster and the disks, gathered by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementFacts {
    pub major: u32,
    pub config_exists: bool,
    pub ours: bool,
    pub conf_dir: PathBuf,
    /// `data_directory` from the cluster's postgresql.conf.
    pub configured: Option<PathBuf>,
    pub configured_state: DirState,
    /// Where the data should be: on `pgdata`, or on the root disk without it.
    pub desired: PathBuf,
    pub desired_state: DirState,
    pub on_storage: bool,
}

/// The pure placement decision.
pub fn plan_placement(f: &PlacementFacts) -> Placement {
    let major = f.major;
    if f.config_exists && !f.ours {
        return Placement::Blocked(format!(
            "found a PostgreSQL cluster the charm did not create at {}; move it aside (pg_dropcluster) or remove it",
            f.conf_dir.display()
        ));
    }
    if !f.config_exists {
        return match &f.desired_state {
            DirState::Missing | DirState::Empty => Placement::Create {
                data_dir: f.desired.clone(),
            },
            DirState::Cluster { major: found } if *found == major => Placement::Adopt {
                data_dir: f.desired.clone(),
            },
            DirState::Cluster { major: found } => Placement::Blocked(format!(
                "{} holds a PostgreSQL {found} cluster, not {major}; set config version={found} or move it aside",
                f.desired.display()
            )),
            DirState::Other => Placement::Blocked(format!(
                "{} is not empty and holds no PostgreSQL cluster; the charm will not overwrite it",
                f.desired.display()
            )),
        };
    }
    let configured = f.configured.clone().unwrap_or_default();
    if configured == f.desired {
        return match f.configured_state {
            DirState::Cluster { .. } => Placement::InPlace { data_dir: configured },
            _ => Placement::Blocked(format!(
                "the cluster's data directory {} is missing (storage detached?); the charm never re-initialises it",
                configured.display()
            )),
        };
    }
    match (&f.configured_state, f.on_storage) {
        (DirState::Cluster { .. }, true) => match f.desired_state {
            DirState::Missing | DirState::Empty | DirState::Cluster { .. } => Placement::Move {
                from: configured,
                to: f.desired.clone(),
            },
            DirState::Other => Placement::Blocked(format!(
                "{} is not empty and holds no PostgreSQL cluster; the charm will not overwrite it",
                f.desired.display()
            )),
        },
        (DirState::Cluster { .. }, false) => Placement::Blocked(format!(
            "the cluster lives on {} but no pgdata storage is attached (storage detached?); reattach it",
            configured.display()
        )),
        _ => Placement::Blocked(format!(
            "the cluster's data directory {} is missing (storage detached?); reattach the storage",
            configured.display()
        )),
    }
}

fn pg_control(dir: &Path) -> Option<Vec<u8>> {
    std::fs::read(dir.join("global/pg_control")).ok()
}

/// Moves the stopped-or-running cluster from `from` to `to`; see the module
/// comment for why every step is safe to interrupt. `Ok(Err(msg))` means
/// the move cannot go ahead and the unit should be blocked with `msg`.
pub fn move_cluster(
    cluster: &Cluster,
    from: &Path,
    to: &Path,
    progress: &dyn Fn(&str),
) -> Result<std::result::Result<(), String>> {
    control::stop(cluster)?;
    let source_control =
        pg_control(from).context("the cluster to move has no global/pg_control")?;
    if to.exists() && dir_state(to) != DirState::Empty {
        if pg_control(to).as_deref() == Some(source_control.as_slice()) {
            log::info!(
                "{} already holds a verified copy of {}",
                to.display(),
                from.display()
            );
        } else if cluster::system_identifier(to)? == cluster::system_identifier(from)? {
            log::warn!(
                "{} holds an outdated copy of this cluster; copying again",
                to.display()
            );
            std::fs::remove_dir_all(to)?;
        } else {
            return Ok(Err(format!(
                "pgdata storage holds a different cluster at {} while this unit's data is at {}; move one of them aside",
                to.display(),
                from.display()
            )));
        }
    }
    if !to.exists() || dir_state(to) == DirState::Empty {
        if let Some(short) = lacks_space(from, to)? {
            return Ok(Err(short));
        }
        progress(&format!(
            "copying the cluster from {} to {}",
            from.display(),
            to.display()
        ));
        let staging = staging_dir(to);
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        create_parents(to)?;
        cluster::run(Command::new("cp").arg("-a").arg(from).arg(&staging))?;
        cluster::run(Command::new("sync").arg("-f").arg(&staging))?;
        if let Err(difference) = compare_trees(from, &staging)? {
            std::fs::remove_dir_all(&staging)?;
            bail!(
                "the copy of {} differs from the original: {difference}",
                from.display()
            );
        }
        if to.exists() {
            std::fs::remove_dir(to)?; // empty
        }
        std::fs::rename(&staging, to)?;
        cluster::run(Command::new("sync").arg("-f").arg(to))?;
    }
    switch_data_directory(cluster, to)?;
    progress(&format!("starting PostgreSQL from {}", to.display()));
    control::start(cluster)?;
    db::wait_for_version(cluster, std::time::Duration::from_secs(60))?;
    retire(from)?;
    Ok(Ok(()))
}

/// Puts the write-ahead log on the `pgwal` mount when there is one: new
/// clusters get it from `pg_createcluster --waldir`; an existing cluster's
/// `pg_wal` is copied there (server stopped), verified, and replaced by a
/// symlink. Like the data move, every step can be interrupted: the copy is
/// staged, the old directory is renamed aside before the link is made, and
/// a retry finishes whichever step was cut short. `Ok(Err(msg))`: blocked.
pub fn place_wal(
    cluster: &Cluster,
    data_dir: &Path,
    wal_mount: Option<&Path>,
    progress: &dyn Fn(&str),
) -> Result<std::result::Result<(), String>> {
    let link = data_dir.join("pg_wal");
    let aside = data_dir.join(".pg_wal.juju-retiring");
    let current = std::fs::read_link(&link).ok();
    if let Some(target) = &current {
        if !target.exists() {
            return Ok(Err(format!(
                "the write-ahead log at {} is missing (pgwal storage detached?); reattach it",
                target.display()
            )));
        }
    }
    let Some(mount) = wal_mount else {
        return Ok(Ok(()));
    };
    let wanted = cluster.data_dir_on(mount).join("pg_wal");
    if current.as_deref() == Some(wanted.as_path()) {
        if aside.exists() {
            std::fs::remove_dir_all(&aside)?;
        }
        return Ok(Ok(()));
    }
    if current.is_some() {
        return Ok(Err(format!(
            "the write-ahead log is already at {}, not on pgwal storage {}; move it by hand",
            current.unwrap_or_default().display(),
            mount.display()
        )));
    }
    control::stop(cluster)?;
    if !wanted.exists() {
        progress(&format!(
            "moving the write-ahead log to {}",
            mount.display()
        ));
        let source = if link.exists() {
            link.clone()
        } else {
            aside.clone()
        };
        let staging = staging_dir(&wanted);
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        create_parents(&wanted)?;
        cluster::run(Command::new("cp").arg("-a").arg(&source).arg(&staging))?;
        cluster::run(Command::new("sync").arg("-f").arg(&staging))?;
        if let Err(difference) = compare_trees(&source, &staging)? {
            std::fs::remove_dir_all(&staging)?;
            bail!(
                "the copy of {} differs from the original: {difference}",
                source.display()
            );
        }
        std::fs::rename(&staging, &wanted)?;
    }
    if link.exists() {
        std::fs::rename(&link, &aside)?;
    }
    std::os::unix::fs::symlink(&wanted, &link)?;
    let user = nix::unistd::User::from_name("postgres")?.context("no postgres user")?;
    std::os::unix::fs::lchown(&link, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
    if aside.exists() {
        std::fs::remove_dir_all(&aside)?;
    }
    Ok(Ok(()))
}

/// Deletes the root-disk copy left behind by a finished move (or an
/// interrupted retirement), once the server runs from `data_dir`.
pub fn retire_leftovers(cluster: &Cluster, data_dir: &Path) -> Result<()> {
    let old = cluster.root_disk_data_dir();
    let retiring = retiring_dir(&old);
    if retiring.exists() {
        std::fs::remove_dir_all(&retiring)?;
    }
    if old != data_dir
        && old.exists()
        && cluster.is_running()
        && cluster::same_cluster(
            &cluster::system_identifier(&old),
            &cluster::system_identifier(data_dir),
        )
    {
        retire(&old)?;
    }
    Ok(())
}

fn retire(old: &Path) -> Result<()> {
    let retiring = retiring_dir(old);
    std::fs::rename(old, &retiring).with_context(|| format!("retiring {}", old.display()))?;
    std::fs::remove_dir_all(&retiring)
        .with_context(|| format!("deleting {}", retiring.display()))?;
    log::info!("retired the old copy at {}", old.display());
    Ok(())
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
        let mode = std::fs::metadata(mount)?.mode();
        if mode & 0o001 == 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                mount,
                std::fs::Permissions::from_mode((mode & 0o7777) | 0o755),
            )?;
        }
    }
    Ok(())
}

fn lacks_space(from: &Path, to: &Path) -> Result<Option<String>> {
    let used: u64 = cluster::run(Command::new("du").args(["-s", "-B1"]).arg(from))?
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let target = to
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let stat = nix::sys::statvfs::statvfs(target)?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    Ok((free < used + used / 10).then(|| {
        format!(
            "not enough free space on {} to move the cluster: {} MiB free, {} MiB needed",
            target.display(),
            free >> 20,
            (used + used / 10) >> 20
        )
    }))
}

/// Points the cluster's postgresql.conf at `data_dir` (atomic rewrite).
fn switch_data_directory(cluster: &Cluster, data_dir: &Path) -> Result<()> {
    let path = cluster.conf_file();
    let text = std::fs::read_to_string(&path)?;
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

/// One entry of a tree, as far as PostgreSQL's data is concerned.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    link: Option<PathBuf>,
}

fn manifest(root: &Path) -> Result<BTreeMap<PathBuf, Entry>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(&dir)? {
            let path = item?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let kind = if meta.file_type().is_symlink() {
                "link"
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir"
            } else {
                "file"
            };
            let rel = path.strip_prefix(root)?.to_path_buf();
            out.insert(
                rel,
                Entry {
                    kind,
                    mode: meta.mode(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                    size: if kind == "file" { meta.len() } else { 0 },
                    link: (kind == "link")
                        .then(|| std::fs::read_link(&path))
                        .transpose()?,
                },
            );
        }
    }
    Ok(out)
}

/// Compares two trees: names, types, modes, owners, link targets and the
/// bytes of every file. `Ok(Err(..))` describes the first difference.
pub fn compare_trees(a: &Path, b: &Path) -> Result<std::result::Result<(), String>> {
    let (left, right) = (manifest(a)?, manifest(b)?);
    if left.len() != right.len() {
        return Ok(Err(format!(
            "{} entries versus {}",
            left.len(),
            right.len()
        )));
    }
    for ((path_a, entry_a), (path_b, entry_b)) in left.iter().zip(right.iter()) {
        if path_a != path_b || entry_a != entry_b {
            return Ok(Err(format!(
                "{} differs ({entry_a:?} versus {entry_b:?})",
                path_a.display()
            )));
        }
        if entry_a.kind == "file"
            && std::fs::read(a.join(path_a))? != std::fs::read(b.join(path_b))?
        {
            return Ok(Err(format!("the content of {} differs", path_a.display())));
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> PlacementFacts {
        PlacementFacts {
            major: 15,
            config_exists: false,
            ours: false,
            conf_dir: "/etc/postgresql/15/main".into(),
            configured: None,
            configured_state: DirState::Missing,
            desired: "/srv/pgdata/15/main".into(),
            desired_state: DirState::Missing,
            on_storage: true,
        }
    }

    #[test]
    fn placement_decisions() {
        let root = PathBuf::from("/var/lib/postgresql/15/main");
        let desired = PathBuf::from("/srv/pgdata/15/main");
        let ours = |configured: &Path, state: DirState| PlacementFacts {
            config_exists: true,
            ours: true,
            configured: Some(configured.to_path_buf()),
            configured_state: state,
            ..facts()
        };
        let cases: Vec<(&str, PlacementFacts, Placement)> = vec![
            (
                "fresh disk",
                facts(),
                Placement::Create {
                    data_dir: desired.clone(),
                },
            ),
            (
                "empty disk",
                PlacementFacts {
                    desired_state: DirState::Empty,
                    ..facts()
                },
                Placement::Create {
                    data_dir: desired.clone(),
                },
            ),
            (
                "re-attached disk",
                PlacementFacts {
                    desired_state: DirState::Cluster { major: 15 },
                    ..facts()
                },
                Placement::Adopt {
                    data_dir: desired.clone(),
                },
            ),
            (
                "in place",
                ours(&desired, DirState::Cluster { major: 15 }),
                Placement::InPlace {
                    data_dir: desired.clone(),
                },
            ),
            (
                "storage added later",
                PlacementFacts {
                    desired_state: DirState::Missing,
                    ..ours(&root, DirState::Cluster { major: 15 })
                },
                Placement::Move {
                    from: root.clone(),
                    to: desired.clone(),
                },
            ),
            (
                "interrupted move resumes",
                PlacementFacts {
                    desired_state: DirState::Cluster { major: 15 },
                    ..ours(&root, DirState::Cluster { major: 15 })
                },
                Placement::Move {
                    from: root.clone(),
                    to: desired.clone(),
                },
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(plan_placement(&f), want, "{name}");
        }
    }

    #[test]
    fn placement_never_overwrites_foreign_or_missing_data() {
        let blocked = |f: PlacementFacts, needle: &str| match plan_placement(&f) {
            Placement::Blocked(msg) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("expected blocked with {needle:?}, got {other:?}"),
        };
        blocked(
            PlacementFacts {
                config_exists: true,
                ..facts()
            },
            "/etc/postgresql/15/main",
        );
        blocked(
            PlacementFacts {
                desired_state: DirState::Other,
                ..facts()
            },
            "/srv/pgdata/15/main is not empty",
        );
        blocked(
            PlacementFacts {
                desired_state: DirState::Cluster { major: 14 },
                ..facts()
            },
            "PostgreSQL 14 cluster",
        );
        let detached = PlacementFacts {
            config_exists: true,
            ours: true,
            configured: Some("/srv/pgdata/15/main".into()),
            configured_state: DirState::Missing,
            desired: "/var/lib/postgresql/15/main".into(),
            on_storage: false,
            ..facts()
        };
        blocked(detached, "storage detached");
        let data_missing = PlacementFacts {
            config_exists: true,
            ours: true,
            configured: Some("/srv/pgdata/15/main".into()),
            configured_state: DirState::Missing,
            ..facts()
        };
        blocked(data_missing, "never re-initialises");
    }

    #[test]
    fn tree_comparison_sees_every_kind_of_difference() {
        let base = std::env::temp_dir().join(format!("pg-charm-trees-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        for dir in [&a, &b] {
            std::fs::create_dir_all(dir.join("sub")).unwrap();
            std::fs::write(dir.join("sub/f"), "same").unwrap();
            std::os::unix::fs::symlink("sub/f", dir.join("l")).unwrap();
        }
        assert_eq!(compare_trees(&a, &b).unwrap(), Ok(()));
        std::fs::write(b.join("sub/f"), "diff").unwrap();
        assert!(compare_trees(&a, &b)
            .unwrap()
            .unwrap_err()
            .contains("content of sub/f"));
        std::fs::write(b.join("sub/f"), "same").unwrap();
        std::fs::remove_file(b.join("l")).unwrap();
        std::os::unix::fs::symlink("elsewhere", b.join("l")).unwrap();
        assert!(compare_trees(&a, &b).unwrap().is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
