//! Detection: the machine facts, read from sysfs and procfs.
//!
//! Everything is read below a [`SysRoot`] so tests can point it at fixture
//! trees (`tests/fixtures/sysfs/<name>/{sys,proc}`). The only system calls
//! on real paths are in [`volume_for_path`] (`stat` for the device number,
//! `statvfs` for size and free space); [`describe_volume`] takes those as
//! arguments and reads files only.
//!
//! Missing or malformed files never panic. Memory and CPU count are
//! required (an error names the file); disk details degrade to `None` or
//! [`crate::tuning::DiskClass::Unknown`] with a note in
//! [`VolumeFacts::notes`].

mod block;
mod cgroup;
mod mountinfo;

#[cfg(test)]
mod fixture_tests;

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result};

use crate::tuning::facts::VolumeFacts;
pub(crate) use block::device_stable_id;
pub(crate) use mountinfo::{mount_containing, parse_mountinfo};

/// Where sysfs, procfs and udev's database are: `/sys`, `/proc` and
/// `/run/udev/data`, or a fixture tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoot {
    pub sys: PathBuf,
    pub proc: PathBuf,
    /// udev's database: `b<MAJ>:<MIN>` files of `E:KEY=value` lines.
    pub udev_data: PathBuf,
}

impl SysRoot {
    /// The running system.
    pub fn host() -> Self {
        SysRoot {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
            udev_data: PathBuf::from("/run/udev/data"),
        }
    }

    /// A tree with `sys/`, `proc/` and `run/udev/data/` below `dir`.
    pub fn under(dir: &Path) -> Self {
        SysRoot {
            sys: dir.join("sys"),
            proc: dir.join("proc"),
            udev_data: dir.join("run/udev/data"),
        }
    }
}

impl Default for SysRoot {
    fn default() -> Self {
        SysRoot::host()
    }
}

/// A Linux device number, printed and parsed as `MAJ:MIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DeviceNumber {
    pub major: u32,
    pub minor: u32,
}

impl DeviceNumber {
    pub fn new(major: u32, minor: u32) -> Self {
        DeviceNumber { major, minor }
    }

    /// Splits an `st_dev` with glibc's encoding (not just `>> 8`).
    pub(crate) fn from_dev_t(dev: u64) -> Self {
        DeviceNumber {
            major: nix::sys::stat::major(dev) as u32,
            minor: nix::sys::stat::minor(dev) as u32,
        }
    }
}

impl fmt::Display for DeviceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl FromStr for DeviceNumber {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parse = || {
            let (major, minor) = text.split_once(':')?;
            Some(DeviceNumber::new(major.parse().ok()?, minor.parse().ok()?))
        };
        parse().ok_or_else(|| format!("{text:?} is not a MAJ:MIN device number"))
    }
}

/// Size and free space of a file system, as statvfs reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FsSpace {
    pub size_bytes: u64,
    /// Available to unprivileged users (`f_bavail`): PostgreSQL is not root.
    pub free_bytes: u64,
}

/// Usable memory: MemTotal, lowered to the cgroup memory limit.
///
/// MemTotal rather than sysinfo(2) because LXD's lxcfs virtualises
/// `/proc/meminfo` inside containers; MemTotal rather than MemAvailable
/// because it is stable (it includes a reserved huge page pool).
pub fn memory_bytes(root: &SysRoot) -> Result<u64> {
    let path = root.proc.join("meminfo");
    let meminfo =
        fs::read_to_string(&path).with_context(|| format!("could not read {}", path.display()))?;
    let total = parse_mem_total(&meminfo)
        .with_context(|| format!("no MemTotal line in {}", path.display()))?;
    Ok(cgroup::memory_limit(root).map_or(total, |limit| limit.min(total)))
}

/// CPUs this process may use: its affinity mask (`Cpus_allowed_list` in
/// `/proc/self/status`, the same mask sched_getaffinity returns), lowered to
/// the cgroup CPU quota rounded up.
pub fn usable_cpus(root: &SysRoot) -> Result<u32> {
    let path = root.proc.join("self/status");
    let status =
        fs::read_to_string(&path).with_context(|| format!("could not read {}", path.display()))?;
    let allowed = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .and_then(count_cpu_list)
        .with_context(|| format!("no usable Cpus_allowed_list line in {}", path.display()))?;
    let quota = cgroup::cpu_quota(root).map(|cpus| cpus.ceil().max(1.0) as u32);
    Ok(quota.map_or(allowed, |quota| quota.min(allowed)))
}

/// Facts about the file system holding `path` on the running system.
///
/// Uses `stat` and `statvfs` on `path`, so `root` should be the host's
/// (a fixture root with real paths would mix two systems).
pub fn volume_for_path(root: &SysRoot, path: &Path) -> Result<VolumeFacts> {
    let path =
        fs::canonicalize(path).with_context(|| format!("could not resolve {}", path.display()))?;
    let metadata =
        fs::metadata(&path).with_context(|| format!("could not stat {}", path.display()))?;
    let stats = nix::sys::statvfs::statvfs(&path)
        .with_context(|| format!("could not statvfs {}", path.display()))?;
    let fragment = stats.fragment_size() as u64;
    let space = FsSpace {
        size_bytes: (stats.blocks() as u64).saturating_mul(fragment),
        free_bytes: (stats.blocks_available() as u64).saturating_mul(fragment),
    };
    let device = DeviceNumber::from_dev_t(metadata.dev());
    Ok(describe_volume(root, &path, Some(device), space))
}

/// Facts about the file system holding `path` (absolute, symlinks already
/// resolved), from files below `root` only.
///
/// `device` is the path's `st_dev`; without it the device number of the
/// mount containing `path` is used (that is how fixture tests call this).
pub(crate) fn describe_volume(
    root: &SysRoot,
    path: &Path,
    device: Option<DeviceNumber>,
    space: FsSpace,
) -> VolumeFacts {
    let mut volume = VolumeFacts {
        path: path.to_path_buf(),
        fs_size_bytes: space.size_bytes,
        fs_free_bytes: space.free_bytes,
        ..VolumeFacts::default()
    };
    let mountinfo_path = root.proc.join("self/mountinfo");
    let mounts = read_text(&mountinfo_path)
        .map(|text| parse_mountinfo(&text))
        .unwrap_or_default();
    let mount = mount_containing(&mounts, path);
    match mount {
        Some(mount) => {
            volume.mount_point = mount.mount_point.clone();
            volume.fs_type = mount.fs_type.clone();
            volume.mount_options = mount.options.clone();
            if let Some(device) = device.filter(|device| *device != mount.device) {
                volume.notes.push(format!(
                    "{} has device {device} but its mount {} says {}; using the former",
                    path.display(),
                    mount.mount_point.display(),
                    mount.device
                ));
            }
        }
        None => volume.notes.push(format!(
            "no mount for {} in {}",
            path.display(),
            mountinfo_path.display()
        )),
    }
    let Some(device) = device.or(mount.map(|m| m.device)) else {
        return volume;
    };
    volume.device_number = Some(device.to_string());
    let source = mount.map_or("", |m| m.source.as_str());
    let Some(device_dir) = block::locate(root, device, source) else {
        volume.notes.push(format!(
            "device {device} ({} {source}) has no block device in sysfs \
             (btrfs, ZFS, overlayfs and tmpfs use anonymous device numbers); disk class unknown",
            volume.fs_type
        ));
        return volume;
    };
    let stack = block::walk(&device_dir, &root.udev_data);
    volume.top_device = stack.top_device;
    volume.top_device_dm_name = stack.top_device_dm_name;
    volume.top_device_id = stack.top_device_id;
    volume.leaves = stack.leaves;
    volume.raid_arrays = stack.raid_arrays;
    volume.data_bearing_disks = stack.data_bearing_disks;
    volume.notes.extend(stack.notes);
    volume
}

/// `MemTotal:  24684084 kB` → bytes.
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// `0-3,8,10-11` → 7. `None` for anything malformed or empty.
fn count_cpu_list(list: &str) -> Option<u32> {
    let mut count = 0;
    for range in list.trim().split(',') {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let (first, last): (u32, u32) = (first.parse().ok()?, last.parse().ok()?);
        count += last.checked_sub(first)? + 1;
    }
    (count > 0).then_some(count)
}

/// A sysfs/procfs file's contents, trimmed; `None` if unreadable.
fn read_text(path: &Path) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_string())
}

/// A file holding one number; `None` if unreadable or not a number.
fn read_number<T: FromStr>(path: &Path) -> Option<T> {
    read_text(path)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-1"), Some(2));
        assert_eq!(count_cpu_list("0-3,8,10-11\n"), Some(7));
        assert_eq!(count_cpu_list("5"), Some(1));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
    }

    #[test]
    fn mem_total() {
        let meminfo = "MemTotal:       24684084 kB\nMemFree: 1 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_684_084 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB"), None);
    }

    #[test]
    fn device_numbers() {
        assert_eq!("259:2".parse(), Ok(DeviceNumber::new(259, 2)));
        assert!("259".parse::<DeviceNumber>().is_err());
        assert_eq!(DeviceNumber::new(8, 1).to_string(), "8:1");
        // glibc encoding: minor 256 of major 259 does not fit in 8 bits.
        assert_eq!(
            DeviceNumber::from_dev_t(0x11_0300),
            DeviceNumber::new(259, 256)
        );
    }

    #[test]
    fn the_real_host_does_not_panic() {
        // Whatever this machine looks like, detection must answer or err.
        let root = SysRoot::host();
        let _ = memory_bytes(&root);
        let _ = usable_cpus(&root);
        let _ = volume_for_path(&root, Path::new("/"));
    }
}
