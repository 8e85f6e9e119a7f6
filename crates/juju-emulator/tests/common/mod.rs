//! Shared pieces of the emulator's own tests: a scratch directory removed
//! on drop, and small shell charms written on the fly.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A directory under the system's temp dir, named after the test suite,
/// the test and this process; removed on drop, even when the test fails.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(suite: &str, name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("jemu-{suite}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes charm `name` in `dir/<dir_name>`: metadata (with `metadata` added),
/// one string option `mode` (default `normal`), and `dispatch`.
pub fn write_charm(
    dir: &Path,
    dir_name: &str,
    name: &str,
    metadata: &str,
    dispatch: &str,
) -> PathBuf {
    let charm = dir.join(dir_name);
    std::fs::create_dir_all(&charm).unwrap();
    std::fs::write(
        charm.join("metadata.yaml"),
        format!("name: {name}\nsummary: s\ndescription: d\n{metadata}"),
    )
    .unwrap();
    std::fs::write(
        charm.join("config.yaml"),
        "options:\n  mode:\n    type: string\n    default: normal\n    description: m\n",
    )
    .unwrap();
    let path = charm.join("dispatch");
    std::fs::write(&path, dispatch).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    charm
}

/// Whether process `pid` exists.
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}
