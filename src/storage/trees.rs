//! Looking at directory trees without following links: what a copy must
//! match ([`compare_trees`]), how much room one needs ([`usage`]), and
//! where a cluster's tablespaces are ([`tablespaces`]).
//!
//! The trees are PGDATA and pg_wal, owned by `postgres`: metadata comes from
//! `lstat`, contents from [`fsx::read`], so a link planted there is compared
//! as a link and never read through.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fsx;

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
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
        for item in entries {
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
/// bytes of every file. `Ok(Some(..))` describes the first difference.
pub fn compare_trees(a: &Path, b: &Path) -> Result<Option<String>> {
    let (left, right) = (manifest(a)?, manifest(b)?);
    if left.len() != right.len() {
        return Ok(Some(format!(
            "{} entries versus {}",
            left.len(),
            right.len()
        )));
    }
    for ((path_a, entry_a), (path_b, entry_b)) in left.iter().zip(right.iter()) {
        if path_a != path_b || entry_a != entry_b {
            return Ok(Some(format!(
                "{} differs ({entry_a:?} versus {entry_b:?})",
                path_a.display()
            )));
        }
        if entry_a.kind == "file" && fsx::read(&a.join(path_a))? != fsx::read(&b.join(path_b))? {
            return Ok(Some(format!("the content of {} differs", path_a.display())));
        }
    }
    Ok(None)
}

/// Room a tree takes on disk: allocated bytes and entries (inodes), as
/// `du` counts them (links are not followed). The tree may belong to a
/// running server: entries that vanish while it is walked are skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

pub fn usage(root: &Path) -> Result<Usage> {
    let mut total = Usage {
        bytes: std::fs::symlink_metadata(root)
            .with_context(|| format!("looking at {}", root.display()))?
            .blocks()
            * 512,
        inodes: 1,
    };
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if gone(&e) && dir != root => continue,
            other => other.with_context(|| format!("listing {}", dir.display()))?,
        };
        for item in entries {
            let path = match item {
                Ok(item) => item.path(),
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            total.bytes += meta.blocks() * 512;
            total.inodes += 1;
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(total)
}

/// One tablespace of a cluster: `pg_tblspc/<oid>` and where it points
/// (`None` for an in-place tablespace, a directory inside `pg_tblspc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tablespace {
    pub oid: String,
    pub location: Option<PathBuf>,
}

impl Tablespace {
    /// Whether its data lies inside `data_dir` (and so is copied with it).
    pub fn inside(&self, data_dir: &Path) -> bool {
        self.location
            .as_ref()
            .is_none_or(|l| l.starts_with(data_dir))
    }
}

pub fn tablespaces(data_dir: &Path) -> Result<Vec<Tablespace>> {
    let dir = data_dir.join("pg_tblspc");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut out = Vec::new();
    for item in entries {
        let item = item?;
        let location = if item.file_type()?.is_symlink() {
            let target = std::fs::read_link(item.path())?;
            Some(if target.is_absolute() {
                target
            } else {
                dir.join(target)
            })
        } else {
            None
        };
        out.push(Tablespace {
            oid: item.file_name().to_string_lossy().into_owned(),
            location,
        });
    }
    out.sort_by(|a, b| a.oid.cmp(&b.oid));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_comparison_sees_every_kind_of_difference() {
        let base = std::env::temp_dir().join(format!("pg-charm-trees-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        for dir in [&a, &b] {
            std::fs::create_dir_all(dir.join("sub")).unwrap();
            std::fs::write(dir.join("sub/f"), "same").unwrap();
            std::os::unix::fs::symlink("sub/f", dir.join("l")).unwrap();
        }
        assert_eq!(compare_trees(&a, &b).unwrap(), None);
        std::fs::write(b.join("sub/f"), "diff").unwrap();
        assert!(compare_trees(&a, &b)
            .unwrap()
            .unwrap()
            .contains("content of sub/f"));
        std::fs::write(b.join("sub/f"), "same").unwrap();
        std::fs::remove_file(b.join("l")).unwrap();
        std::os::unix::fs::symlink("elsewhere", b.join("l")).unwrap();
        assert!(compare_trees(&a, &b).unwrap().is_some());
        // Usage counts every entry and its blocks, links not followed.
        let used = usage(&a).unwrap();
        assert_eq!(used.inodes, 4);
        assert!(used.bytes >= 4096, "{used:?}");
        // Tablespaces: links in pg_tblspc, inside PGDATA or not.
        std::fs::create_dir_all(a.join("pg_tblspc")).unwrap();
        std::fs::create_dir_all(a.join("ts")).unwrap();
        std::os::unix::fs::symlink(a.join("ts"), a.join("pg_tblspc/16390")).unwrap();
        std::os::unix::fs::symlink("/srv/elsewhere", a.join("pg_tblspc/16391")).unwrap();
        let found = tablespaces(&a).unwrap();
        assert_eq!(found.len(), 2);
        assert!(found[0].inside(&a));
        assert!(!found[1].inside(&a));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
