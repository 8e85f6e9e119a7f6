//! Memory and CPU limits of this process's control group.
//!
//! Inside an LXD/Docker container or a systemd unit with `MemoryMax=`, the
//! machine's RAM and CPU count overstate what PostgreSQL may use. Limits are
//! read for the process's own cgroup (from `/proc/self/cgroup`) and every
//! ancestor, because a parent's limit applies to its children; the smallest
//! wins. Both hierarchies are handled:
//!
//! * cgroup v2: `memory.max` ("max" or bytes), `cpu.max` ("max 100000" or
//!   "quota period"), under `/sys/fs/cgroup` or, on hybrid hosts,
//!   `/sys/fs/cgroup/unified`.
//! * cgroup v1: `memory.limit_in_bytes`, `cpu.cfs_quota_us` /
//!   `cpu.cfs_period_us`, under `/sys/fs/cgroup/<controllers>`.
//!
//! When the cgroup file system is mounted at the container's own cgroup
//! (cgroup namespaces, or v1 bind mounts) the recorded path does not exist
//! below the mount; walking up to the mount's root still finds the
//! container's limit there.

use std::path::{Path, PathBuf};

use super::{read_text, SysRoot};

/// cgroup v1 reports "no limit" as the largest page-aligned i64
/// (9223372036854771712); anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// The smallest memory limit that applies to this process, if any.
pub fn memory_limit(root: &SysRoot) -> Option<u64> {
    let membership = Membership::of_this_process(root)?;
    let v2 = membership
        .v2_path
        .as_deref()
        .and_then(|path| smallest_on_path(&v2_mount(root), path, read_memory_max));
    let v1 = membership
        .v1_path(root, "memory")
        .and_then(|(mount, path)| smallest_on_path(&mount, &path, read_memory_limit_in_bytes));
    [v2, v1].into_iter().flatten().min()
}

/// The smallest CPU quota that applies to this process, in CPUs (1.5 = one
/// and a half CPUs' worth of time per period), if any.
pub(crate) fn cpu_quota(root: &SysRoot) -> Option<f64> {
    let membership = Membership::of_this_process(root)?;
    let v2 = membership
        .v2_path
        .as_deref()
        .and_then(|path| smallest_on_path(&v2_mount(root), path, read_cpu_max));
    let v1 = membership
        .v1_path(root, "cpu")
        .and_then(|(mount, path)| smallest_on_path(&mount, &path, read_cfs_quota));
    [v2, v1].into_iter().flatten().min_by(f64::total_cmp)
}

/// Which cgroups this process is in, from `/proc/self/cgroup`.
struct Membership {
    /// The `0::/path` line (cgroup v2).
    v2_path: Option<String>,
    /// `(controllers, path)` of the `N:controllers:/path` lines (cgroup v1).
    v1: Vec<(Vec<String>, String)>,
}

impl Membership {
    fn of_this_process(root: &SysRoot) -> Option<Self> {
        read_text(&root.proc.join("self/cgroup")).map(|text| Self::parse(&text))
    }

    fn parse(text: &str) -> Self {
        let mut membership = Membership {
            v2_path: None,
            v1: Vec::new(),
        };
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                membership.v2_path = Some(path.to_string());
            } else {
                let controllers = controllers.split(',').map(str::to_string).collect();
                membership.v1.push((controllers, path.to_string()));
            }
        }
        membership
    }

    /// The v1 mount directory and cgroup path of `controller`.
    fn v1_path(&self, root: &SysRoot, controller: &str) -> Option<(PathBuf, String)> {
        let (controllers, path) = self
            .v1
            .iter()
            .find(|(controllers, _)| controllers.iter().any(|c| c == controller))?;
        let cgroup_fs = root.sys.join("fs/cgroup");
        // "cpu,cpuacct" is usually mounted under that joint name, with
        // symlinks for each controller; some hosts mount them separately.
        let candidates = std::iter::once(controllers.join(",")).chain(controllers.iter().cloned());
        candidates
            .map(|name| cgroup_fs.join(name))
            .find(|dir| dir.is_dir())
            .map(|dir| (dir, path.clone()))
    }
}

/// Where the v2 hierarchy is mounted: `/sys/fs/cgroup` on unified hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones.
fn v2_mount(root: &SysRoot) -> PathBuf {
    let unified = root.sys.join("fs/cgroup");
    if unified.join("cgroup.controllers").exists() {
        unified
    } else {
        unified.join("unified")
    }
}

/// Applies `read_limit` to the cgroup directory of `cgroup_path` and each
/// of its ancestors up to `mount`, returning the smallest limit found.
fn smallest_on_path<T: PartialOrd>(
    mount: &Path,
    cgroup_path: &str,
    read_limit: fn(&Path) -> Option<T>,
) -> Option<T> {
    let mut dir = PathBuf::from(cgroup_path.trim_start_matches('/'));
    let mut smallest: Option<T> = None;
    loop {
        if let Some(limit) = read_limit(&mount.join(&dir)) {
            if smallest.as_ref().is_none_or(|s| limit < *s) {
                smallest = Some(limit);
            }
        }
        if !dir.pop() {
            return smallest;
        }
    }
}

fn read_memory_max(dir: &Path) -> Option<u64> {
    read_text(&dir.join("memory.max"))?.parse().ok()
}

fn read_memory_limit_in_bytes(dir: &Path) -> Option<u64> {
    let limit: u64 = read_text(&dir.join("memory.limit_in_bytes"))?
        .parse()
        .ok()?;
    (limit < V1_UNLIMITED).then_some(limit)
}

fn read_cpu_max(dir: &Path) -> Option<f64> {
    parse_cpu_max(&read_text(&dir.join("cpu.max"))?)
}

/// `"quota period"` in microseconds → CPUs; `"max ..."` → no limit.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota: f64 = fields.next()?.parse().ok()?;
    let period: f64 = fields.next().unwrap_or("100000").parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

fn read_cfs_quota(dir: &Path) -> Option<f64> {
    let quota: f64 = read_text(&dir.join("cpu.cfs_quota_us"))?.parse().ok()?;
    let period: f64 = read_text(&dir.join("cpu.cfs_period_us"))?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_hierarchies() {
        let text = "12:memory:/lxc/pg\n3:cpu,cpuacct:/lxc/pg\n0::/system.slice/x.service\n";
        let membership = Membership::parse(text);
        assert_eq!(
            membership.v2_path.as_deref(),
            Some("/system.slice/x.service")
        );
        assert_eq!(
            membership.v1,
            vec![
                (vec!["memory".to_string()], "/lxc/pg".to_string()),
                (
                    vec!["cpu".to_string(), "cpuacct".to_string()],
                    "/lxc/pg".to_string()
                ),
            ]
        );
    }

    #[test]
    fn cpu_max_values() {
        assert_eq!(parse_cpu_max("max 100000"), None);
        assert_eq!(parse_cpu_max("200000 100000"), Some(2.0));
        assert_eq!(parse_cpu_max("150000 100000"), Some(1.5));
        assert_eq!(parse_cpu_max(""), None);
    }
}
