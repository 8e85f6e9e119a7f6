//! How many huge pages PostgreSQL needs: the server's own answer
//! (`postgres -C shared_memory_size_in_huge_pages`) for a candidate
//! configuration, asked on scratch copies so nothing live is touched, and
//! remembered in the state directory for that configuration.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::cluster::{self, conf, Cluster};
use crate::fsx::{self, Owner, Scratch};
use crate::state::huge_pages::HugePagesMemo;
use crate::tuning::units::{parse_memory, GIB, KIB};
use anyhow::{bail, Context, Result};

/// Huge pages are worth reserving from this much shared_buffers on
/// (the same threshold as [`crate::tuning::host::host_plan`]'s documentation).
pub const HUGE_PAGES_FROM: u64 = 2 * GIB;

/// `postgres -C shared_memory_size_in_huge_pages` for the cluster with
/// `candidate` as the charm's conf.d file; `None` when the server cannot use
/// huge pages here (-1). A running server locks its data directory against
/// `-C` for runtime-computed parameters, so the server reads a scratch copy
/// of the configuration and a scratch data directory holding only
/// `PG_VERSION`, `global/pg_control` and `postgresql.auto.conf`; nothing
/// live is touched. Needs PostgreSQL 15 or later.
pub fn shared_memory_huge_pages(
    cluster: &Cluster,
    data_dir: &Path,
    candidate: &str,
) -> Result<Option<u64>> {
    let scratch = Scratch::new("huge-pages")?;
    let config_file = conf::copy_config_with(cluster, candidate, &scratch, "conf")?;
    let data = scratch.path().join("data");
    std::fs::create_dir_all(data.join("global"))?;
    for file in ["PG_VERSION", "global/pg_control", "postgresql.auto.conf"] {
        let from = data_dir.join(file);
        match fsx::read(&from) {
            Ok(bytes) => {
                scratch.write(&format!("data/{file}"), &bytes, 0o600)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
        }
    }
    scratch.share()?;
    // The server insists on owning its data directory (mode 0700). The
    // directory goes to postgres last, so nothing inside it can be swapped
    // for a link before root is done with it.
    let postgres = Owner::postgres()?;
    for path in [
        data.join("PG_VERSION"),
        data.join("global/pg_control"),
        data.join("postgresql.auto.conf"),
        data.join("global"),
        data.clone(),
    ] {
        if std::fs::symlink_metadata(&path).is_ok() {
            std::os::unix::fs::lchown(&path, Some(postgres.uid), Some(postgres.gid))
                .with_context(|| format!("handing {} to postgres", path.display()))?;
        }
    }
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700))?;
    let out = cluster::as_postgres(&cluster.bin("postgres"))
        .arg("-C")
        .arg("shared_memory_size_in_huge_pages")
        .arg("-c")
        .arg(format!("config_file={}", config_file.display()))
        .arg("-c")
        .arg(format!("data_directory={}", data.display()))
        .arg("-c")
        .arg("external_pid_file=")
        .output()
        .context("running postgres -C shared_memory_size_in_huge_pages")?;
    if !out.status.success() {
        bail!(
            "postgres -C shared_memory_size_in_huge_pages failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let pages: i64 = text
        .trim()
        .parse()
        .with_context(|| format!("postgres -C printed {:?}", text.trim()))?;
    Ok(u64::try_from(pages).ok().filter(|&pages| pages > 0))
}

/// [`shared_memory_huge_pages`], remembered in the state directory for the
/// candidate it was computed for: the answer only changes with the
/// configuration, and asking the server costs a process and ~20 MB.
pub fn remembered_huge_pages(
    cluster: &Cluster,
    data_dir: &Path,
    candidate: &str,
) -> Result<Option<u64>> {
    let state = cluster.state();
    let key = format!(
        "{:016x}",
        crate::relations::names::fnv1a_64(candidate.as_bytes())
    );
    if let Some(memo) = HugePagesMemo::load(&state) {
        if memo.candidate == key {
            return Ok(memo.pages);
        }
    }
    let pages = shared_memory_huge_pages(cluster, data_dir, candidate)?;
    let memo = HugePagesMemo {
        candidate: key,
        pages,
    };
    if let Err(e) = memo.save(&state) {
        log::warn!("not remembering the huge page count: {e:#}");
    }
    Ok(pages)
}

/// shared_buffers in bytes from its postgresql.conf value (`6GB`, `'6GB'`,
/// or a count of 8kB blocks).
pub fn shared_buffers_bytes(value: &str) -> Option<u64> {
    let value = value.trim().trim_matches('\'');
    parse_memory(value).or_else(|| value.parse::<u64>().ok().map(|blocks| blocks * 8 * KIB))
}
