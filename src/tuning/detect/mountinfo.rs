//! `/proc/self/mountinfo`: which file system a path is on.
//!
//! Format (proc(5)): `id parent MAJ:MIN root mount-point mount-options
//! [optional fields...] - fs-type source super-options`. Paths escape space,
//! tab, newline and backslash as octal (`\040`).

use std::path::{Path, PathBuf};

use super::DeviceNumber;

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MountEntry {
    /// `st_dev` of files on this mount. btrfs, ZFS, overlayfs and tmpfs use
    /// anonymous `0:N` numbers that have no block device behind them.
    pub device: DeviceNumber,
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// What was mounted: `/dev/sda1`, `tank/pg`, `overlay`, ...
    pub source: String,
    /// Per-mount options, then super-block options, without duplicates.
    pub options: Vec<String>,
}

/// Parses every well-formed line; malformed lines are skipped.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (before, after) = line.split_once(" - ")?;
    let before: Vec<&str> = before.split(' ').collect();
    let after: Vec<&str> = after.split(' ').collect();
    let device = before.get(2)?.parse().ok()?;
    let mount_point = PathBuf::from(unescape(before.get(4)?));
    let mut options: Vec<String> = Vec::new();
    let per_mount = before.get(5)?.split(',');
    let super_block = after.get(2).copied().unwrap_or("").split(',');
    for option in per_mount.chain(super_block) {
        if !option.is_empty() && !options.iter().any(|o| o == option) {
            options.push(option.to_string());
        }
    }
    Some(MountEntry {
        device,
        mount_point,
        fs_type: after.first()?.to_string(),
        source: unescape(after.get(1)?),
        options,
    })
}

/// Undoes the kernel's `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount `path` (absolute, symlinks resolved) lives on: the longest
/// mount point that is a prefix of it; among equal ones the last, because a
/// later mount hides an earlier one at the same place.
pub(crate) fn mount_containing<'a>(
    entries: &'a [MountEntry],
    path: &Path,
) -> Option<&'a MountEntry> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, entry)| path.starts_with(&entry.mount_point))
        .max_by_key(|(index, entry)| (entry.mount_point.components().count(), *index))
        .map(|(_, entry)| entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard
40 27 259:2 / /srv/pg\\040data rw,noatime shared:5 master:1 - xfs /dev/nvme0n1p2 rw,attr2,noquota
41 27 259:3 / /srv/pg\\040data rw,noatime - ext4 /dev/nvme1n1 rw
garbage line
";

    #[test]
    fn parses_fields_and_escapes() {
        let entries = parse_mountinfo(SAMPLE);
        assert_eq!(entries.len(), 4);
        let data = &entries[2];
        assert_eq!(data.device, DeviceNumber::new(259, 2));
        assert_eq!(data.mount_point, Path::new("/srv/pg data"));
        assert_eq!(data.fs_type, "xfs");
        assert_eq!(data.source, "/dev/nvme0n1p2");
        assert_eq!(data.options, ["rw", "noatime", "attr2", "noquota"]);
    }

    #[test]
    fn longest_and_latest_mount_wins() {
        let entries = parse_mountinfo(SAMPLE);
        let found = |p: &str| mount_containing(&entries, Path::new(p)).map(|e| e.device);
        assert_eq!(
            found("/srv/pg data/16/main"),
            Some(DeviceNumber::new(259, 3))
        );
        assert_eq!(found("/srv/pg"), Some(DeviceNumber::new(252, 1)));
        assert_eq!(found("/var/lib"), Some(DeviceNumber::new(252, 1)));
        assert_eq!(mount_containing(&[], Path::new("/")), None);
    }
}
