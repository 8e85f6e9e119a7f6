//! Shared pieces of the runnable scenarios: where the packed charm is, and
//! scratch directories that clean up after themselves.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate lives in crates/<name>")
        .to_path_buf()
}

/// The packed charm: `$PG_CHARM_FILE`, else `build/postgresql.charm` as
/// `scripts/pack` leaves it.
pub fn packed_charm() -> Result<PathBuf> {
    let path = match std::env::var_os("PG_CHARM_FILE") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join("build/postgresql.charm"),
    };
    if !path.is_file() {
        bail!(
            "no packed charm at {}: run scripts/pack first (or set PG_CHARM_FILE)",
            path.display()
        );
    }
    Ok(path)
}

/// A directory under /tmp removed on drop, even when a scenario fails.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("pg-charm-{name}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
