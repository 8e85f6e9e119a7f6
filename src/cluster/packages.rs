//! PostgreSQL from the distribution archive: apt, non-interactive, waiting
//! for the dpkg lock, with the package's automatic `main` cluster suppressed
//! so that the charm creates its own cluster where the data belongs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::run;
use crate::fsx;

/// Tells postgresql-common not to create a default cluster on install.
pub const NO_DEFAULT_CLUSTER: &str = "/etc/postgresql-common/createcluster.d/50-juju-pg-charm.conf";

/// Major versions whose server binaries are installed, highest last.
pub fn installed_majors() -> Vec<u32> {
    let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|v: &u32| {
                    Path::new(&format!("/usr/lib/postgresql/{v}/bin/postgres")).exists()
                })
                .collect()
        })
        .unwrap_or_default();
    majors.sort();
    majors
}

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", name])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"ii"))
}

const NO_DEFAULT_CLUSTER_TEXT: &str =
    "# Written by the PostgreSQL charm: it creates its own cluster on its storage.\n\
     create_main_cluster = false\n";

/// Unit removal: the file goes, so packages installed later behave as
/// they would have without the charm.
pub(crate) fn remove_no_default_cluster_file() -> Result<()> {
    let path = Path::new(NO_DEFAULT_CLUSTER);
    if fsx::read_to_string(path).is_ok_and(|text| text == NO_DEFAULT_CLUSTER_TEXT) {
        fsx::remove_file(path)?;
    }
    Ok(())
}

fn suppress_default_cluster() -> Result<()> {
    let path = Path::new(NO_DEFAULT_CLUSTER);
    let content = NO_DEFAULT_CLUSTER_TEXT;
    let owner = fsx::Owner::current();
    fsx::create_dir_all(path.parent().expect("absolute path"), owner, 0o755)?;
    fsx::write_atomic(path, content.as_bytes(), owner, 0o644).map(drop)
}

fn apt_get(args: &[&str]) -> Result<String> {
    let mut last_error = None;
    // apt waits for the dpkg lock itself (DPkg::Lock::Timeout); a few retries
    // cover mirrors that fail transiently.
    for attempt in 1..=3 {
        let result = run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "-o",
                "DPkg::Lock::Timeout=600",
                "-o",
                "Dpkg::Options::=--force-confold",
                "-y",
                "-q",
            ])
            .args(args));
        match result {
            Ok(out) => return Ok(out),
            Err(e) => {
                log::warn!(
                    "apt-get {} failed (attempt {attempt}/3): {e:#}",
                    args.join(" ")
                );
                last_error = Some(e);
                std::thread::sleep(Duration::from_secs(5 * attempt));
            }
        }
    }
    Err(last_error.expect("at least one attempt"))
}

/// Makes sure the server packages are installed; returns the major version
/// to run: `requested`, or the distribution's default.
pub(crate) fn ensure_installed(requested: Option<u32>, progress: &dyn Fn(&str)) -> Result<u32> {
    suppress_default_cluster()?;
    let packages: Vec<String> = match requested {
        Some(v) => vec![format!("postgresql-{v}"), format!("postgresql-client-{v}")],
        None => vec!["postgresql".into()],
    };
    let missing: Vec<&str> = packages
        .iter()
        .map(String::as_str)
        .filter(|p| !package_installed(p))
        .collect();
    if !missing.is_empty() {
        progress(&format!(
            "installing {} from the archive",
            missing.join(" ")
        ));
        if let Err(e) = apt_get(
            &["install", "--no-install-recommends"]
                .iter()
                .copied()
                .chain(missing.iter().copied())
                .collect::<Vec<_>>(),
        ) {
            progress("refreshing package lists");
            apt_get(&["update"]).context("apt-get update")?;
            apt_get(
                &["install", "--no-install-recommends"]
                    .iter()
                    .copied()
                    .chain(missing.iter().copied())
                    .collect::<Vec<_>>(),
            )
            .with_context(|| format!("installing {} (first attempt: {e:#})", missing.join(" ")))?;
        }
    }
    let majors = installed_majors();
    match requested {
        Some(v) if majors.contains(&v) => Ok(v),
        Some(v) => {
            bail!("postgresql-{v} is installed but /usr/lib/postgresql/{v}/bin/postgres is missing")
        }
        None => majors
            .last()
            .copied()
            .context("the postgresql package installed no server under /usr/lib/postgresql"),
    }
}
