//! The machine the charm tunes for: its facts for the tuning plan
//! ([`machine_facts`]), and noticing that it changed: every converge
//! records a digest of what the tuning depends on (memory, CPUs, the disks under PGDATA and pg_wal) in
//! the state directory, and `update-status` compares it with the machine
//! as it is now ([`machine_changed`], no process spawned) and converges
//! again when they differ, which re-tunes PostgreSQL and the host.

use std::path::Path;

use anyhow::Result;

use crate::state::machine::MachineRecord;
use crate::state::StateDir;
use crate::tuning::detect::{self, SysRoot};
use crate::tuning::facts::MachineFacts;

/// What the tuning plan needs to know about this machine. Detection never
/// fails a hook: what cannot be read is left out and the plan falls back to
/// PostgreSQL's defaults for it.
pub fn machine_facts(major: u32, data_dir: &Path, wal_dir: Option<&Path>) -> MachineFacts {
    let root = SysRoot::host();
    let volume = |path: &Path| match detect::volume_for_path(&root, path) {
        Ok(volume) => Some(volume),
        Err(e) => {
            log::debug!("no volume facts for {}: {e:#}", path.display());
            None
        }
    };
    let data = volume(data_dir);
    let wal = wal_dir
        .and_then(volume)
        .filter(|wal| data.as_ref().is_none_or(|d| !d.same_file_system(wal)));
    MachineFacts {
        memory_bytes: detect::memory_bytes(&root).unwrap_or(1 << 30),
        cpus: detect::usable_cpus(&root).unwrap_or(1),
        data,
        wal,
        pg_major: major,
        has_lz4: has_lz4(),
    }
}

/// Debian's and Ubuntu's PostgreSQL builds link lz4 where the library is
/// installed (the server package depends on it); checking for the library
/// avoids reading the server binary on every hook.
fn has_lz4() -> bool {
    ["/usr/lib", "/lib"].iter().any(|base| {
        std::fs::read_dir(base).is_ok_and(|dirs| {
            dirs.filter_map(|d| d.ok())
                .any(|d| d.path().join("liblz4.so.1").exists())
        })
    })
}

/// The facts the tuning depends on and that change with the hardware:
/// memory, CPUs, and the identity, size and class of the disks under
/// `data_dir` and `wal_dir`. Free space, and the scheduler and read-ahead
/// the charm itself sets, are left out. Reads procfs/sysfs only.
pub fn machine_digest(data_dir: &Path, wal_dir: Option<&Path>) -> String {
    let root = SysRoot::host();
    let volume = |path: &Path| {
        detect::volume_for_path(&root, path).ok().map(|v| {
            serde_json::json!({
                "device": v.device_number,
                "top": v.top_device,
                "fs_size_mib": v.fs_size_bytes >> 20,
                "raid": v.raid_arrays.iter().map(|r| format!("{} {} {}", r.device, r.level, r.raid_disks)).collect::<Vec<_>>(),
                "disks": v.data_bearing_disks,
                "leaves": v.leaves.iter().map(|leaf| serde_json::json!({
                    "name": leaf.name,
                    "rotational": leaf.rotational,
                    "class": leaf.class,
                })).collect::<Vec<_>>(),
            })
        })
    };
    serde_json::json!({
        "memory": detect::memory_bytes(&root).ok(),
        "cpus": detect::usable_cpus(&root).ok(),
        "data": volume(data_dir),
        "wal": wal_dir.and_then(volume),
    })
    .to_string()
}

pub fn record_machine(state: &StateDir, data_dir: &Path, wal_dir: Option<&Path>) -> Result<()> {
    let record = MachineRecord {
        data_dir: data_dir.to_path_buf(),
        wal_dir: wal_dir.map(Path::to_path_buf),
        digest: machine_digest(data_dir, wal_dir),
    };
    record.save(state)
}

/// Whether the machine differs from what the last converge tuned for (more
/// memory, another disk, a disk that now says it does not spin). Spawns
/// nothing; `false` when there is no record yet.
pub fn machine_changed(state: &StateDir) -> bool {
    let Some(record) = MachineRecord::load(state) else {
        return false;
    };
    let now = machine_digest(&record.data_dir, record.wal_dir.as_deref());
    if now != record.digest {
        log::info!(
            "the machine changed since the last tuning: {} → {now}",
            record.digest
        );
        return true;
    }
    false
}
