//! Table tests of the plan for the machine shapes the charm targets. The
//! expected values were worked out by hand from the formulas in plan.rs
//! (the arithmetic is in the comments), not copied from the output.

use std::collections::BTreeSet;

use super::*;
use crate::config::{MemoryLimit, StorageTypeOverride};
use crate::facts::{DiskFacts, RaidFacts};

fn disk(name: &str, rotational: bool) -> DiskFacts {
    DiskFacts {
        name: name.into(),
        rotational: Some(rotational),
        nvme: name.starts_with("nvme"),
        virtio: name.starts_with("vd"),
        ..DiskFacts::default()
    }
}

fn volume(mount: &str, size: u64, free: u64, leaves: Vec<DiskFacts>, disks: u32) -> VolumeFacts {
    VolumeFacts {
        path: mount.into(),
        mount_point: mount.into(),
        device_number: Some(format!("dev-of-{mount}")),
        fs_type: "ext4".into(),
        fs_size_bytes: size,
        fs_free_bytes: free,
        leaves,
        data_bearing_disks: disks,
        ..VolumeFacts::default()
    }
}

fn config(profile: Profile, max_connections: u32) -> TuningConfig {
    TuningConfig {
        profile,
        max_connections,
        memory_limit: None,
        storage_type: StorageTypeOverride::Auto,
    }
}

struct Shape {
    name: &'static str,
    facts: MachineFacts,
    cfg: TuningConfig,
    expected: &'static [(&'static str, &'static str)],
}

fn shapes() -> Vec<Shape> {
    vec![
        // 2 cores / 8GB VM on virtio (class unknown), mixed, 100 connections.
        // shared_buffers 8G/4 = 2GB; maintenance 8G/16 = 512MB, autovacuum
        // 3 × 512MB; wal_buffers 16MB; reserve 512MB.
        // work_mem = (8192 − 2048 − 16 − 512 − 1536 − 512)MB / (3 × 102) / 2
        //          = 3568MB / 612 = 5.8MB → 5MB.
        Shape {
            name: "2 cores / 8GB virtio",
            facts: MachineFacts {
                memory_bytes: 8 * GIB,
                cpus: 2,
                data: Some(volume("/", 40 * GIB, 30 * GIB, vec![disk("vda", true)], 1)),
                wal: None,
                pg_major: 16,
                has_lz4: true,
            },
            cfg: config(Profile::Mixed, 100),
            expected: &[
                ("shared_buffers", "2GB"),
                ("effective_cache_size", "6GB"),
                ("maintenance_work_mem", "512MB"),
                ("autovacuum_max_workers", "3"),
                ("autovacuum_work_mem", "512MB"),
                ("work_mem", "5MB"),
                ("wal_buffers", "16MB"),
                ("max_wal_size", "4GB"),
                ("min_wal_size", "1GB"),
                ("checkpoint_timeout", "5min"),
                ("checkpoint_completion_target", "0.9"),
                ("random_page_cost", "4"),
                ("effective_io_concurrency", "16"),
                ("maintenance_io_concurrency", "16"),
                ("max_connections", "100"),
                ("max_worker_processes", "8"),
                ("max_parallel_workers", "2"),
                ("max_parallel_workers_per_gather", "1"),
                ("max_parallel_maintenance_workers", "1"),
                ("huge_pages", "try"),
                ("wal_compression", "lz4"),
                ("jit", "off"),
                ("default_statistics_target", "100"),
            ],
        },
        // 16 cores / 64GB, one NVMe, oltp, 300 connections.
        // shared_buffers 16GB; maintenance 4GB → 2GB cap; autovacuum 4 × 1GB
        // (PG 16); reserve 4GB.
        // work_mem = (65536 − 16384 − 16 − 2048 − 4096 − 4096)MB / (3 × 316)
        //          = 38896MB / 948 = 41.0MB → 41MB.
        Shape {
            name: "16 cores / 64GB NVMe",
            facts: MachineFacts {
                memory_bytes: 64 * GIB,
                cpus: 16,
                data: Some(volume(
                    "/srv/pgdata",
                    1024 * GIB,
                    900 * GIB,
                    vec![disk("nvme0n1", false)],
                    1,
                )),
                wal: None,
                pg_major: 16,
                has_lz4: true,
            },
            cfg: config(Profile::Oltp, 300),
            expected: &[
                ("shared_buffers", "16GB"),
                ("effective_cache_size", "48GB"),
                ("maintenance_work_mem", "2GB"),
                ("autovacuum_max_workers", "4"),
                ("autovacuum_work_mem", "1GB"),
                ("work_mem", "41MB"),
                ("max_wal_size", "8GB"),
                ("min_wal_size", "2GB"),
                ("checkpoint_timeout", "15min"),
                ("random_page_cost", "1.1"),
                ("effective_io_concurrency", "256"),
                ("maintenance_io_concurrency", "128"),
                ("max_worker_processes", "16"),
                ("max_parallel_workers", "16"),
                ("max_parallel_workers_per_gather", "4"),
                ("max_parallel_maintenance_workers", "4"),
                ("jit", "off"),
            ],
        },
        // 64 cores / 512GB, md RAID10 of 8 NVMe (4 data-bearing), oltp, 500
        // connections, PostgreSQL 18.
        // shared_buffers 128GB; maintenance 2GB cap; autovacuum 5 × 2GB
        // (PG 17+ cap); reserve 4GB cap.
        // work_mem = (524288 − 131072 − 16 − 2048 − 10240 − 4096)MB / (3 × 564)
        //          = 376816MB / 1692 = 222.7MB → 222MB.
        // effective_io_concurrency 256 × 4 = 1024 → 1000.
        Shape {
            name: "64 cores / 512GB NVMe md RAID10",
            facts: MachineFacts {
                memory_bytes: 512 * GIB,
                cpus: 64,
                data: Some(VolumeFacts {
                    raid_arrays: vec![RaidFacts {
                        device: "md0".into(),
                        level: "raid10".into(),
                        raid_disks: 8,
                        data_disks: 4,
                        chunk_bytes: Some(512 * KIB),
                    }],
                    ..volume(
                        "/srv/pgdata",
                        7 * 1024 * GIB,
                        6 * 1024 * GIB,
                        (0..8).map(|i| disk(&format!("nvme{i}n1"), false)).collect(),
                        4,
                    )
                }),
                wal: None,
                pg_major: 18,
                has_lz4: true,
            },
            cfg: config(Profile::Oltp, 500),
            expected: &[
                ("shared_buffers", "128GB"),
                ("effective_cache_size", "384GB"),
                ("maintenance_work_mem", "2GB"),
                ("autovacuum_max_workers", "5"),
                ("autovacuum_work_mem", "2GB"),
                ("work_mem", "222MB"),
                ("max_wal_size", "8GB"),
                ("random_page_cost", "1.1"),
                ("effective_io_concurrency", "1000"),
                ("maintenance_io_concurrency", "256"),
                ("max_worker_processes", "64"),
                ("max_parallel_workers", "64"),
                ("max_parallel_workers_per_gather", "4"),
                ("max_parallel_maintenance_workers", "4"),
                ("io_method", "worker"),
                ("io_workers", "16"),
            ],
        },
        // 32 cores / 128GB, 12-disk HDD RAID6 behind a PERC (10 data disks
        // from stripe/chunk), storage-type=hdd because the controller hides
        // the medium; dw with 40 connections; WAL on its own 20GB file
        // system with 19GB free.
        // shared_buffers 32GB; maintenance 128G/8 = 16GB → 8GB dw cap;
        // autovacuum 5 × 1GB; reserve 4GB.
        // work_mem = (131072 − 32768 − 16 − 8192 − 5120 − 4096)MB / (3 × 72) / 2
        //          = 80880MB / 432 = 187.2MB → 187MB.
        // max_wal_size: dw 16GB, 60% of 20GB = 12GB, half of 19GB = 9.5GB
        // rounded down to a power of two → 8GB; min_wal_size = 8GB / 4 = 2GB.
        Shape {
            name: "32 cores / 128GB HDD RAID6 behind a controller",
            facts: MachineFacts {
                memory_bytes: 128 * GIB,
                cpus: 32,
                data: Some(volume(
                    "/var/lib/postgresql",
                    40 * 1024 * GIB,
                    30 * 1024 * GIB,
                    vec![DiskFacts {
                        hw_raid_hint: Some("DELL PERC H740P Mini".into()),
                        minimum_io_size: Some(65536),
                        optimal_io_size: Some(655360),
                        ..disk("sda", true)
                    }],
                    10,
                )),
                wal: Some(volume(
                    "/srv/pgwal",
                    20 * GIB,
                    19 * GIB,
                    vec![disk("sdb", false)],
                    1,
                )),
                pg_major: 16,
                has_lz4: true,
            },
            cfg: TuningConfig {
                storage_type: StorageTypeOverride::Hdd,
                ..config(Profile::Dw, 40)
            },
            expected: &[
                ("shared_buffers", "32GB"),
                ("effective_cache_size", "96GB"),
                ("maintenance_work_mem", "8GB"),
                ("autovacuum_max_workers", "5"),
                ("autovacuum_work_mem", "1GB"),
                ("work_mem", "187MB"),
                ("max_wal_size", "8GB"),
                ("min_wal_size", "2GB"),
                ("checkpoint_timeout", "15min"),
                ("random_page_cost", "4"),
                ("effective_io_concurrency", "10"),
                ("maintenance_io_concurrency", "10"),
                ("max_parallel_workers_per_gather", "16"),
                ("max_parallel_maintenance_workers", "4"),
                ("default_statistics_target", "500"),
                ("jit", "on"),
            ],
        },
        // An LXD container limited to 2 CPUs and 8GB by its cgroup (detection
        // already lowered the facts), on ZFS (no block device: class
        // unknown), sharing the machine: memory-limit 75% → 6GB budget.
        // PostgreSQL 14: wal_compression on (no lz4 option before 15).
        // shared_buffers 1536MB; maintenance 384MB, autovacuum 3 × 384MB;
        // reserve 384MB.
        // work_mem = (6144 − 1536 − 16 − 384 − 1152 − 384)MB / (3 × 202)
        //          = 2672MB / 606 = 4.4MB → 4MB.
        Shape {
            name: "cgroup-limited container",
            facts: MachineFacts {
                memory_bytes: 8 * GIB,
                cpus: 2,
                data: Some(VolumeFacts {
                    fs_type: "zfs".into(),
                    ..volume("/", 100 * GIB, 50 * GIB, Vec::new(), 0)
                }),
                wal: None,
                pg_major: 14,
                has_lz4: true,
            },
            cfg: TuningConfig {
                memory_limit: Some(MemoryLimit::Percent(75)),
                ..config(Profile::Web, 200)
            },
            expected: &[
                ("shared_buffers", "1536MB"),
                ("effective_cache_size", "4608MB"),
                ("maintenance_work_mem", "384MB"),
                ("autovacuum_work_mem", "384MB"),
                ("work_mem", "4MB"),
                ("max_wal_size", "4GB"),
                ("min_wal_size", "1GB"),
                ("random_page_cost", "4"),
                ("effective_io_concurrency", "16"),
                ("maintenance_io_concurrency", "16"),
                ("max_parallel_workers_per_gather", "1"),
                ("wal_compression", "on"),
            ],
        },
        // A tiny 1-CPU / 1GB machine on a SATA SSD, mixed, 100 connections,
        // 10GB file system with 2GB free.
        // shared_buffers 1GB/8 = 128MB; maintenance 64MB, autovacuum 3 × 64MB;
        // wal_buffers 4MB; reserve 256MB.
        // work_mem = (1024 − 128 − 4 − 64 − 192 − 256)MB / (3 × 101) / 2
        //          = 398458880 B / 303 / 2 = 657522 B → 642kB.
        // max_wal_size: half of 2GB free = 1GB; min_wal_size 256MB.
        Shape {
            name: "tiny 1GB machine",
            facts: MachineFacts {
                memory_bytes: GIB,
                cpus: 1,
                data: Some(volume("/", 10 * GIB, 2 * GIB, vec![disk("sda", false)], 1)),
                wal: None,
                pg_major: 16,
                has_lz4: true,
            },
            cfg: config(Profile::Mixed, 100),
            expected: &[
                ("shared_buffers", "128MB"),
                ("effective_cache_size", "768MB"),
                ("maintenance_work_mem", "64MB"),
                ("autovacuum_work_mem", "64MB"),
                ("wal_buffers", "4MB"),
                ("work_mem", "642kB"),
                ("max_wal_size", "1GB"),
                ("min_wal_size", "256MB"),
                ("random_page_cost", "1.1"),
                ("effective_io_concurrency", "200"),
                ("maintenance_io_concurrency", "100"),
                ("max_worker_processes", "8"),
                ("max_parallel_workers", "1"),
                ("max_parallel_workers_per_gather", "0"),
                ("max_parallel_maintenance_workers", "0"),
            ],
        },
    ]
}

fn value<'a>(settings: &'a [Setting], name: &str) -> Option<&'a str> {
    value_of(settings, name)
}

#[test]
fn machine_shapes() {
    for shape in shapes() {
        let settings = plan(&shape.facts, &shape.cfg);
        for (name, expected) in shape.expected {
            assert_eq!(
                value(&settings, name),
                Some(*expected),
                "{}: {name}",
                shape.name
            );
        }
    }
}

#[test]
fn memory_commitments_stay_within_the_budget() {
    for shape in shapes() {
        let settings = plan(&shape.facts, &shape.cfg);
        let budget = memory_budget(&shape.facts, &shape.cfg);
        let committed = memory_commitment(&settings);
        assert!(
            committed <= budget,
            "{}: {committed} committed > {budget} budget",
            shape.name
        );
        let shared_buffers = parse_memory(value(&settings, "shared_buffers").unwrap()).unwrap();
        assert!(
            shared_buffers * 10 <= budget * 4,
            "{}: over 40%",
            shape.name
        );
    }
}

#[test]
fn plans_are_sorted_unique_explained_and_deterministic() {
    for shape in shapes() {
        let settings = plan(&shape.facts, &shape.cfg);
        let names: Vec<_> = settings.iter().map(|s| s.name).collect();
        let unique: BTreeSet<_> = names.iter().collect();
        assert_eq!(names.len(), unique.len(), "{}: duplicates", shape.name);
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{}", shape.name);
        assert!(settings.iter().all(|s| !s.reason.is_empty()));
        assert_eq!(settings, plan(&shape.facts, &shape.cfg));
        let min_wal = parse_memory(value(&settings, "min_wal_size").unwrap()).unwrap();
        let max_wal = parse_memory(value(&settings, "max_wal_size").unwrap()).unwrap();
        assert!(min_wal <= max_wal, "{}", shape.name);
    }
}

#[test]
fn low_work_mem_is_explained() {
    let tiny = shapes().pop().unwrap();
    let settings = plan(&tiny.facts, &tiny.cfg);
    let work_mem = settings.iter().find(|s| s.name == "work_mem").unwrap();
    assert!(work_mem.reason.contains("below PostgreSQL's 4MB default"));
}

#[test]
fn testing_profile_keeps_defaults_but_protects_the_disk() {
    let mut tiny = shapes().pop().unwrap();
    tiny.facts.data.as_mut().unwrap().fs_free_bytes = GIB;
    let settings = plan(&tiny.facts, &config(Profile::Testing, 100));
    let summary: Vec<_> = settings
        .iter()
        .map(|s| (s.name, s.value.as_str()))
        .collect();
    // Half of 1GB free: 512MB instead of PostgreSQL's 1GB; min 80MB kept.
    assert_eq!(
        summary,
        [
            ("max_connections", "100"),
            ("max_wal_size", "512MB"),
            ("min_wal_size", "80MB"),
        ]
    );
}

#[test]
fn wal_inside_pgdata_is_bounded_by_the_data_file_system() {
    let mut shape = shapes().remove(1);
    let data = shape.facts.data.as_mut().unwrap();
    data.fs_size_bytes = 100 * GIB;
    data.fs_free_bytes = 6 * GIB;
    let settings = plan(&shape.facts, &shape.cfg);
    // Half of 6GB free is 3GB, rounded down to a power of two.
    assert_eq!(value(&settings, "max_wal_size"), Some("2GB"));
    assert_eq!(value(&settings, "min_wal_size"), Some("512MB"));
    assert_eq!(value(&settings, "checkpoint_timeout"), Some("5min"));
    let reason = &settings
        .iter()
        .find(|s| s.name == "max_wal_size")
        .unwrap()
        .reason;
    assert!(
        reason.contains(
            "half of the free space on /srv/pgdata, rounded down to a power of two (2GB)"
        ),
        "{reason}"
    );
}

#[test]
fn unknown_size_leaves_wal_unbounded() {
    let mut shape = shapes().remove(1);
    shape.facts.data = None;
    let settings = plan(&shape.facts, &shape.cfg);
    assert_eq!(value(&settings, "max_wal_size"), Some("8GB"));
    assert_eq!(value(&settings, "random_page_cost"), Some("4"));
}

#[test]
fn storage_type_override_beats_detection() {
    let mut shape = shapes().remove(0);
    shape.cfg.storage_type = StorageTypeOverride::Ssd;
    let settings = plan(&shape.facts, &shape.cfg);
    assert_eq!(value(&settings, "random_page_cost"), Some("1.1"));
    assert_eq!(value(&settings, "effective_io_concurrency"), Some("200"));
    let reason = &settings
        .iter()
        .find(|s| s.name == "random_page_cost")
        .unwrap()
        .reason;
    assert!(
        reason.starts_with("PGDATA on ssd storage (storage-type)"),
        "{reason}"
    );
}

#[test]
fn version_gates() {
    let mut shape = shapes().remove(0);
    shape.facts.pg_major = 10;
    let old = plan(&shape.facts, &shape.cfg);
    for absent in [
        "max_parallel_maintenance_workers",
        "jit",
        "maintenance_io_concurrency",
        "io_method",
        "io_workers",
    ] {
        assert_eq!(value(&old, absent), None, "{absent} on PostgreSQL 10");
    }
    assert_eq!(value(&old, "wal_compression"), Some("on"));
    shape.facts.pg_major = 15;
    shape.facts.has_lz4 = false;
    assert_eq!(
        value(&plan(&shape.facts, &shape.cfg), "wal_compression"),
        Some("pglz")
    );
}

#[test]
fn memory_limit_above_ram_is_ignored() {
    let facts = shapes().remove(0).facts;
    let cfg = TuningConfig {
        memory_limit: Some(MemoryLimit::Bytes(64 * GIB)),
        ..config(Profile::Mixed, 100)
    };
    assert_eq!(memory_budget(&facts, &cfg), 8 * GIB);
    let half = TuningConfig {
        memory_limit: Some(MemoryLimit::Bytes(4 * GIB)),
        ..cfg
    };
    assert_eq!(memory_budget(&facts, &half), 4 * GIB);
    let settings = plan(&facts, &half);
    assert_eq!(value(&settings, "shared_buffers"), Some("1GB"));
    let reason = &settings
        .iter()
        .find(|s| s.name == "shared_buffers")
        .unwrap()
        .reason;
    assert!(
        reason.contains("4GB memory budget (memory-limit)"),
        "{reason}"
    );
}

#[test]
fn commitment_counts_defaults_for_missing_settings() {
    // Stock PostgreSQL: 128MB + 4MB + 64MB + 3 × 64MB + 108 × 3 × 4MB.
    assert_eq!(
        memory_commitment(&[]),
        (128 + 4 + 64 + 192 + 108 * 3 * 4) * MIB
    );
}
