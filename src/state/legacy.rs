//! Adopting the records of revisions before the state directory.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::cluster::OwnerRecord;
use super::host::{HOST_APPLIED, HOST_ORIGINALS};
use super::{StateDir, ROOT};
use crate::fsx;

/// Revisions before the state directory kept their files next to the
/// cluster (`juju-pg-charm.*` in its configuration directory) and the host
/// record in `/var/lib/juju-pg-charm` itself. After `upgrade-charm` from one
/// of them, the owner marker becomes the [`OwnerRecord`], the host record
/// moves into the state directory, and the caches (rebuilt by the next
/// converge) are deleted.
/// `conf_dir(major)` is where the unit's cluster of that major keeps its
/// configuration.
pub fn adopt(state: &StateDir, conf_dir: &dyn Fn(u32) -> PathBuf) -> Option<OwnerRecord> {
    let mut majors: Vec<u32> = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    majors.sort();
    let (major, marker) = majors.into_iter().rev().find_map(|major| {
        let text = fsx::read_to_string(&conf_dir(major).join("juju-pg-charm.owner")).ok()?;
        Some((major, text))
    })?;
    let field = |key: &str| {
        marker
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
    };
    let record = OwnerRecord {
        major,
        unit: marker.lines().next().unwrap_or_default().to_string(),
        locale: field("locale"),
        encoding: field("encoding"),
    };
    let moved = (|| -> Result<()> {
        for file in [HOST_ORIGINALS, HOST_APPLIED] {
            let legacy = Path::new(ROOT).join(file);
            if let Ok(bytes) = fsx::read(&legacy) {
                state.write(file, &bytes)?;
                fsx::remove_file(&legacy)?;
            }
        }
        record.save(state)?;
        let conf_dir = conf_dir(major);
        for file in [
            "juju-pg-charm.owner",
            "juju-pg-charm.relations.json",
            "juju-pg-charm.machine.json",
            "juju-pg-charm.hugepages",
        ] {
            fsx::remove_file(&conf_dir.join(file))?;
        }
        Ok(())
    })();
    match moved {
        Ok(()) => log::info!("moved the charm's records into {}", state.path().display()),
        Err(e) => log::warn!("could not move the charm's earlier records: {e:#}"),
    }
    Some(record)
}
