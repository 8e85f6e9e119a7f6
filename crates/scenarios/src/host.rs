//! What a test, or the whole suite, must leave as it found it on the host:
//! the kernel settings the charm tunes, transparent huge pages, the huge
//! page pool, and the files in the directories the charm writes under /etc.
//! `scripts/test` compares a [`HostSnapshot`] from before the suite with
//! one from after (the `host-snapshot` binary); tests that let the charm
//! tune the real host restore one in a guard ([`HostGuard`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every sysctl the charm may change, with the ratio twins the kernel
/// changes behind its back.
pub const SYSCTLS: [&str; 8] = [
    "vm.swappiness",
    "vm.dirty_bytes",
    "vm.dirty_ratio",
    "vm.dirty_background_bytes",
    "vm.dirty_background_ratio",
    "vm.nr_hugepages",
    "vm.overcommit_memory",
    "vm.overcommit_ratio",
];

/// The directories the charm writes under /etc (recursively).
pub const ETC_DIRS: [&str; 3] = ["/etc/sysctl.d", "/etc/udev/rules.d", "/etc/systemd/system"];

const THP: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSnapshot {
    pub sysctls: BTreeMap<String, String>,
    /// The bracketed choice (`madvise`).
    pub transparent_hugepage: String,
    /// `HugePages_Total` from /proc/meminfo.
    pub huge_pages_total: String,
    /// Path → what is there (`file <digest>`, `link <target>`, `dir`); a
    /// missing directory is `missing`.
    pub files: BTreeMap<PathBuf, String>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn selected(text: &str) -> String {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
        .unwrap_or(text)
        .to_string()
}

fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        out.insert(dir.to_path_buf(), "missing".into());
        return;
    };
    out.insert(dir.to_path_buf(), "dir".into());
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap_or_default();
            out.insert(path, format!("link {}", target.display()));
        } else if meta.is_dir() {
            walk(&path, out);
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let digest = postgresql_charm::relations::names::fnv1a_64(&bytes);
            out.insert(
                path,
                format!("file {digest:016x} mode {:o}", meta_mode(&meta)),
            );
        }
    }
}

fn meta_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    meta.mode() & 0o7777
}

impl HostSnapshot {
    pub fn take() -> Self {
        let mut files = BTreeMap::new();
        for dir in ETC_DIRS {
            walk(Path::new(dir), &mut files);
        }
        let meminfo = read("/proc/meminfo");
        HostSnapshot {
            sysctls: SYSCTLS
                .iter()
                .map(|key| (key.to_string(), read(&sysctl_path(key))))
                .collect(),
            transparent_hugepage: selected(&read(THP)),
            huge_pages_total: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("HugePages_Total:"))
                .unwrap_or_default()
                .trim()
                .to_string(),
            files,
        }
    }

    /// One line per fact, for a diff.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.sysctls {
            out.push_str(&format!("sysctl {key} = {value}\n"));
        }
        out.push_str(&format!(
            "transparent_hugepage = {}\nHugePages_Total = {}\n",
            self.transparent_hugepage, self.huge_pages_total
        ));
        for (path, what) in &self.files {
            out.push_str(&format!("{} {what}\n", path.display()));
        }
        out
    }

    /// Puts the kernel settings back and removes any file of the charm's
    /// (named `juju-pg-charm`) that was not there. Best effort: for guards.
    pub fn restore(&self) {
        let now = HostSnapshot::take();
        for (bytes, ratio) in [
            ("vm.dirty_bytes", "vm.dirty_ratio"),
            ("vm.dirty_background_bytes", "vm.dirty_background_ratio"),
        ] {
            // The kernel refuses 0 bytes; the ratio zeroes them.
            let key = if self.sysctls[bytes] == "0" {
                ratio
            } else {
                bytes
            };
            if now.sysctls[key] != self.sysctls[key] {
                let _ = std::fs::write(sysctl_path(key), &self.sysctls[key]);
            }
        }
        for key in [
            "vm.swappiness",
            "vm.nr_hugepages",
            "vm.overcommit_memory",
            "vm.overcommit_ratio",
        ] {
            if now.sysctls[key] != self.sysctls[key] {
                let _ = std::fs::write(sysctl_path(key), &self.sysctls[key]);
            }
        }
        if now.transparent_hugepage != self.transparent_hugepage {
            let _ = std::fs::write(THP, &self.transparent_hugepage);
        }
        for path in now.files.keys().rev() {
            let ours = path.to_string_lossy().contains("juju-pg-charm");
            if ours && !self.files.contains_key(path) {
                let _ = std::fs::remove_file(path);
            }
        }
        for (path, what) in now.files.iter().rev() {
            if what == "dir" && self.files.get(path).map(String::as_str) == Some("missing") {
                let _ = std::fs::remove_dir(path);
            }
        }
    }
}

/// Restores a [`HostSnapshot`] when dropped, even when a test fails.
pub struct HostGuard(pub HostSnapshot);

impl Drop for HostGuard {
    fn drop(&mut self) {
        self.0.restore();
    }
}
