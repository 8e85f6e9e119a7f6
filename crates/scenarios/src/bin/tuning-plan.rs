//! Prints the charm's PostgreSQL tuning plan for this machine as
//! `name = value` lines (postgresql.conf syntax), with each reason as a
//! comment on stderr. Used by `bench/pgbench-tuning` to configure the
//! "charm" side of the comparison.
//!
//! Usage: tuning-plan <data-dir> [--pg-major N] [--profile P]
//!        [--max-connections N] [--storage-type T] [--memory-limit L]
//!
//! Detection is the charm's own (`tuning::detect` on the running system),
//! with PGDATA's volume from `<data-dir>`; the WAL is assumed to live in
//! PGDATA, as it does without a separate `pgwal` storage.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use postgresql_charm::tuning::{detect, plan, MachineFacts, SysRoot, TuningConfig};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut data_dir: Option<PathBuf> = None;
    let mut pg_major: u32 = 15;
    let mut profile = "mixed".to_string();
    let mut max_connections: i64 = 100;
    let mut storage_type = "auto".to_string();
    let mut memory_limit = String::new();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--pg-major" => pg_major = value("--pg-major")?.parse()?,
            "--profile" => profile = value("--profile")?,
            "--max-connections" => max_connections = value("--max-connections")?.parse()?,
            "--storage-type" => storage_type = value("--storage-type")?,
            "--memory-limit" => memory_limit = value("--memory-limit")?,
            other if other.starts_with("--") => bail!("unknown option {other}"),
            other => data_dir = Some(PathBuf::from(other)),
        }
    }
    let Some(data_dir) = data_dir else {
        bail!(
            "usage: tuning-plan <data-dir> [--pg-major N] [--profile P] [--max-connections N] \
             [--storage-type T] [--memory-limit L]"
        );
    };
    let cfg = TuningConfig::from_options(&profile, max_connections, &memory_limit, &storage_type)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let root = SysRoot::host();
    let facts = MachineFacts {
        memory_bytes: detect::memory_bytes(&root)?,
        cpus: detect::usable_cpus(&root)?,
        data: Some(detect::volume_for_path(&root, &data_dir)?),
        wal: None,
        pg_major,
        has_lz4: has_lz4(),
    };
    let data = facts.data.as_ref().expect("set above");
    eprintln!(
        "# facts: {} bytes of memory, {} CPUs, PG {}, lz4 {}, {} on {} ({}; {} of {} bytes free), leaves: {}",
        facts.memory_bytes,
        facts.cpus,
        facts.pg_major,
        facts.has_lz4,
        data.path.display(),
        data.mount_point.display(),
        data.fs_type,
        data.fs_free_bytes,
        data.fs_size_bytes,
        data.leaves
            .iter()
            .map(|leaf| format!("{} ({})", leaf.name, leaf.class.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for note in &data.notes {
        eprintln!("# note: {note}");
    }
    for setting in plan(&facts, &cfg) {
        eprintln!("# {}: {}", setting.name, setting.reason);
        println!("{} = {}", setting.name, setting.value);
    }
    Ok(())
}

/// As the charm decides it (`lifecycle::has_lz4`): Debian's server package
/// depends on liblz4, so the library being installed means the build has it.
fn has_lz4() -> bool {
    ["/usr/lib", "/lib"].iter().any(|base| {
        std::fs::read_dir(base).is_ok_and(|dirs| {
            dirs.filter_map(|d| d.ok())
                .any(|d| d.path().join("liblz4.so.1").exists())
        })
    })
}
