//! The PostgreSQL tuning plan: machine facts + config → settings, each with
//! the reason it has its value. Pure: no I/O, same input, same output.
//!
//! The formulas follow the tuners surveyed in
//! `/work/shared/reference/postgres-tuning.md` (PGTune 2026, timescaledb-tune,
//! Canonical's charms, the PostgreSQL docs); each function names its source
//! and says where it deviates and why. Settings are returned sorted by name
//! in PostgreSQL syntax (`2GB`, `16MB`, `30247kB`, `0.9`, `on`).
//!
//! Memory is planned against a budget: the machine's memory (cgroup aware),
//! or less when `memory-limit` says so. [`memory_commitment`] adds up what
//! the settings allow PostgreSQL to allocate at worst, and the plan keeps
//! that within the budget by deriving `work_mem` from what is left.

use serde::Serialize;

use crate::classify::volume_class;
use crate::config::{Profile, StorageTypeOverride, TuningConfig};
use crate::facts::{DiskClass, MachineFacts, VolumeFacts};
use crate::units::{floor_mib, format_memory, parse_memory, GIB, KIB, MIB};

/// One postgresql.conf setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    pub name: &'static str,
    /// The value in postgresql.conf syntax, unquoted.
    pub value: String,
    /// Why it has this value, for `tuning-report` and the conf.d comments.
    pub reason: String,
}

impl Setting {
    fn new(name: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Setting {
            name,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// The settings for `facts` under `cfg`, sorted by name.
pub fn plan(facts: &MachineFacts, cfg: &TuningConfig) -> Vec<Setting> {
    let inputs = Inputs::new(facts, cfg);
    let wal = WalSize::new(&inputs);
    let mut settings = vec![max_connections(cfg)];
    settings.extend(wal.settings());
    if cfg.profile != Profile::Testing {
        let memory = MemoryPlan::new(&inputs);
        settings.extend(memory.settings(&inputs));
        settings.extend(checkpoints(wal.max_wal_size));
        settings.extend(storage(&inputs));
        settings.extend(parallelism(&inputs));
        settings.extend(features(&inputs));
    }
    settings.sort_by_key(|setting| setting.name);
    settings
}

/// The memory PostgreSQL is tuned for: the machine's memory, or the
/// `memory-limit` when that is lower.
pub fn memory_budget(facts: &MachineFacts, cfg: &TuningConfig) -> u64 {
    let memory = facts.memory_bytes;
    cfg.memory_limit
        .map_or(memory, |limit| limit.resolve(memory).min(memory))
}

/// Sessions may each run this many `work_mem`-sized operations at once: one
/// hash node (which may use `hash_mem_multiplier` = 2 × work_mem) plus one
/// sort. It is PGTune's ×3 safety factor; postgresqltuner.pl assumes 1.5.
/// Most OLTP statements use none, so this is a worst case, not an estimate.
pub const WORK_MEM_PER_SESSION: u64 = 3;

/// What the settings allow PostgreSQL to allocate at worst: shared memory,
/// one manual maintenance operation, every autovacuum worker, and
/// [`WORK_MEM_PER_SESSION`] × `work_mem` in every connection and parallel
/// worker. Settings missing from `settings` count at PostgreSQL's default.
pub fn memory_commitment(settings: &[Setting]) -> u64 {
    let memory = |name: &str, default: u64| {
        value_of(settings, name)
            .and_then(parse_memory)
            .unwrap_or(default)
    };
    let count = |name: &str, default: u64| {
        value_of(settings, name)
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let shared_buffers = memory("shared_buffers", 128 * MIB);
    let wal_buffers = memory("wal_buffers", automatic_wal_buffers(shared_buffers));
    let maintenance = memory("maintenance_work_mem", 64 * MIB);
    let autovacuum = memory("autovacuum_work_mem", maintenance);
    let work_mem = memory("work_mem", 4 * MIB);
    let sessions = count("max_connections", 100) + count("max_parallel_workers", 8);
    shared_buffers
        + wal_buffers
        + maintenance
        + count("autovacuum_max_workers", 3) * autovacuum
        + sessions * WORK_MEM_PER_SESSION * work_mem
}

fn value_of<'a>(settings: &'a [Setting], name: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|setting| setting.name == name)
        .map(|setting| setting.value.as_str())
}

/// Values several settings depend on, computed once.
struct Inputs<'a> {
    facts: &'a MachineFacts,
    cfg: &'a TuningConfig,
    budget: u64,
    cpus: u32,
    /// The class PGDATA's storage is tuned for (slowest leaf, or override).
    data_class: DiskClass,
    data_bearing_disks: u32,
}

impl<'a> Inputs<'a> {
    fn new(facts: &'a MachineFacts, cfg: &'a TuningConfig) -> Self {
        let no_volume = VolumeFacts::default();
        let data = facts.data.as_ref().unwrap_or(&no_volume);
        Inputs {
            facts,
            cfg,
            budget: memory_budget(facts, cfg),
            cpus: facts.cpus.max(1),
            data_class: volume_class(data, cfg.storage_type),
            data_bearing_disks: data.data_bearing_disks.max(1),
        }
    }

    fn pg_at_least(&self, major: u32) -> bool {
        self.facts.pg_major >= major
    }

    fn is_dw(&self) -> bool {
        self.cfg.profile == Profile::Dw
    }

    fn budget_text(&self) -> String {
        let budget = format_memory(floor_mib(self.budget));
        if self.budget < self.facts.memory_bytes {
            format!("{budget} memory budget (memory-limit)")
        } else {
            format!("{budget} of memory")
        }
    }
}

fn max_connections(cfg: &TuningConfig) -> Setting {
    let mut reason = "the max-connections option".to_string();
    if cfg.max_connections > 300 {
        reason.push_str(
            "; every connection is a process and shares work_mem: above ~300 a connection \
             pooler (PgBouncer) usually serves better",
        );
    }
    Setting::new("max_connections", cfg.max_connections.to_string(), reason)
}

// ---------------------------------------------------------------- memory

/// Memory settings, derived together so their sum stays within the budget.
struct MemoryPlan {
    shared_buffers: u64,
    wal_buffers: u64,
    maintenance_work_mem: u64,
    autovacuum_max_workers: u64,
    autovacuum_work_mem: u64,
    max_parallel_workers: u64,
    host_reserve: u64,
    work_mem: u64,
}

impl MemoryPlan {
    fn new(inputs: &Inputs) -> Self {
        let budget = inputs.budget;
        let shared_buffers = shared_buffers(budget);
        let maintenance_work_mem = maintenance_work_mem(budget, inputs.is_dw());
        let mut plan = MemoryPlan {
            shared_buffers,
            wal_buffers: automatic_wal_buffers(shared_buffers),
            maintenance_work_mem,
            autovacuum_max_workers: u64::from(autovacuum_max_workers(inputs.cpus)),
            autovacuum_work_mem: autovacuum_work_mem(maintenance_work_mem, inputs.facts.pg_major),
            max_parallel_workers: u64::from(inputs.cpus),
            host_reserve: host_reserve(budget),
            work_mem: 0,
        };
        plan.work_mem = plan.work_mem_within_budget(inputs);
        plan
    }

    /// Memory committed before any `work_mem` is handed out.
    fn fixed_commitment(&self) -> u64 {
        self.shared_buffers
            + self.wal_buffers
            + self.maintenance_work_mem
            + self.autovacuum_max_workers * self.autovacuum_work_mem
    }

    fn sessions(&self, inputs: &Inputs) -> u64 {
        u64::from(inputs.cfg.max_connections) + self.max_parallel_workers
    }

    /// PGTune: (RAM − shared_buffers) / (3 × (connections + workers)), ÷2 for
    /// dw and mixed. Deviations: maintenance, autovacuum and a host reserve
    /// are subtracted first, so [`memory_commitment`] fits the budget by
    /// construction; the count uses max_parallel_workers (the processes that
    /// run plan nodes) rather than max_worker_processes. Clamped to 256MB
    /// (1GB for dw) like the reference recommendation, and floored at 64kB
    /// (PostgreSQL's minimum) rather than PGTune's 4MB: on a small machine
    /// with many connections a lower work_mem is what keeps the commitment
    /// within memory.
    fn work_mem_within_budget(&self, inputs: &Inputs) -> u64 {
        let pool = inputs
            .budget
            .saturating_sub(self.fixed_commitment())
            .saturating_sub(self.host_reserve);
        let divisor = match inputs.cfg.profile {
            Profile::Dw | Profile::Mixed => 2,
            _ => 1,
        };
        let per_session = pool / (WORK_MEM_PER_SESSION * self.sessions(inputs)) / divisor;
        let cap = if inputs.is_dw() { GIB } else { 256 * MIB };
        let work_mem = per_session.clamp(64 * KIB, cap);
        if work_mem >= MIB {
            floor_mib(work_mem)
        } else {
            work_mem / KIB * KIB
        }
    }

    fn settings(&self, inputs: &Inputs) -> Vec<Setting> {
        let budget = inputs.budget_text();
        let share = if inputs.budget < 2 * GIB {
            "1/8"
        } else {
            "1/4"
        };
        let work_mem_note = if self.work_mem < 4 * MIB {
            " — below PostgreSQL's 4MB default because max-connections × work_mem must fit \
             in memory; fewer connections or a pooler would allow more"
        } else {
            ""
        };
        vec![
            Setting::new(
                "shared_buffers",
                format_memory(self.shared_buffers),
                format!(
                    "{share} of {budget} (PostgreSQL docs, PGTune; 1/8 below 2GB so the OS \
                     keeps room); not capped like the legacy charm's 8GB, huge pages make \
                     large buffers cheap"
                ),
            ),
            Setting::new(
                "effective_cache_size",
                format_memory(floor_mib(inputs.budget / 4 * 3)),
                format!("3/4 of {budget}: shared_buffers plus the OS page cache (all tuners)"),
            ),
            Setting::new(
                "maintenance_work_mem",
                format_memory(self.maintenance_work_mem),
                format!(
                    "{} of {budget}, at most {} (PGTune; the cap keeps several concurrent \
                     VACUUM/CREATE INDEX from taking gigabytes each)",
                    if inputs.is_dw() { "1/8 (dw)" } else { "1/16" },
                    if inputs.is_dw() { "8GB" } else { "2GB" },
                ),
            ),
            Setting::new(
                "autovacuum_max_workers",
                self.autovacuum_max_workers.to_string(),
                format!(
                    "{} CPUs: 3 below 16, 4 from 16, 5 from 32 (PGTune)",
                    inputs.cpus
                ),
            ),
            Setting::new(
                "autovacuum_work_mem",
                format_memory(self.autovacuum_work_mem),
                format!(
                    "maintenance_work_mem, at most {} per worker: {}",
                    if inputs.pg_at_least(17) { "2GB" } else { "1GB" },
                    if inputs.pg_at_least(17) {
                        "PGTune's cap, so every autovacuum worker cannot take 8GB"
                    } else {
                        "before PostgreSQL 17 vacuum cannot use more than 1GB for dead tuples"
                    }
                ),
            ),
            Setting::new(
                "wal_buffers",
                format_memory(self.wal_buffers),
                "1/32 of shared_buffers, at most one 16MB WAL segment: what PostgreSQL's \
                 automatic -1 picks (PGTune writes the same), spelled out for the report",
            ),
            Setting::new(
                "work_mem",
                format_memory(self.work_mem),
                format!(
                    "what is left of {budget} after shared_buffers, maintenance, autovacuum and \
                     {} for the OS, shared by {} sessions (max_connections + \
                     max_parallel_workers) × {WORK_MEM_PER_SESSION} operations each{} \
                     (PGTune's formula){work_mem_note}",
                    format_memory(floor_mib(self.host_reserve)),
                    self.sessions(inputs),
                    match inputs.cfg.profile {
                        Profile::Dw | Profile::Mixed => ", halved for large dw/mixed queries",
                        _ => "",
                    },
                ),
            ),
            Setting::new(
                "huge_pages",
                "try",
                "use huge pages when the host has reserved them (the host plan reserves \
                 shared_memory_size_in_huge_pages when shared_buffers ≥ 2GB); `on` only \
                 after the reservation is read back, or PostgreSQL would refuse to start",
            ),
        ]
    }
}

/// PostgreSQL docs: 25 % of RAM on a dedicated server, less below 1–2 GB.
/// PGTune, timescaledb-tune and Canonical use RAM/4 throughout; below 2 GiB
/// we use RAM/8 (reference recommendation) but never less than PostgreSQL's
/// 128MB default unless that would exceed RAM/4.
fn shared_buffers(budget: u64) -> u64 {
    let share = if budget < 2 * GIB {
        budget / 8
    } else {
        budget / 4
    };
    floor_mib(share.max((128 * MIB).min(budget / 4)))
}

/// PGTune: RAM/16 (dw RAM/8), capped at 8GB. We cap at 2GB outside dw
/// (timescaledb-tune's 2047MB, the reference recommendation): index builds
/// gain little beyond it, and each concurrent manual VACUUM or CREATE INDEX
/// may take it. Floor: PostgreSQL's 64MB default (or RAM/8 if smaller).
fn maintenance_work_mem(budget: u64, dw: bool) -> u64 {
    let (share, cap) = if dw {
        (budget / 8, 8 * GIB)
    } else {
        (budget / 16, 2 * GIB)
    };
    floor_mib(share.clamp((64 * MIB).min(budget / 8), cap))
}

/// PGTune: 5 workers from 32 CPUs, 4 from 16, else PostgreSQL's 3.
fn autovacuum_max_workers(cpus: u32) -> u32 {
    match cpus {
        32.. => 5,
        16.. => 4,
        _ => 3,
    }
}

/// PGTune sets 2GB once maintenance_work_mem reaches 2GB. Before
/// PostgreSQL 17 vacuum's dead-tuple array is limited to 1GB, so more is
/// never used there and would only inflate the commitment.
fn autovacuum_work_mem(maintenance_work_mem: u64, pg_major: u32) -> u64 {
    let cap = if pg_major >= 17 { 2 * GIB } else { GIB };
    maintenance_work_mem.min(cap)
}

/// PostgreSQL's `wal_buffers = -1`: shared_buffers/32, 64kB .. 16MB.
fn automatic_wal_buffers(shared_buffers: u64) -> u64 {
    (shared_buffers / 32).clamp(64 * KIB, 16 * MIB) / KIB * KIB
}

/// Memory left for the kernel, the Juju agent and backend-private memory
/// that no setting bounds: 1/16 of the budget, 256MB .. 4GB (a charm
/// choice; PGTune reserves nothing and relies on its ×3 factor).
fn host_reserve(budget: u64) -> u64 {
    (budget / 16).clamp((256 * MIB).min(budget / 4), 4 * GIB)
}

// ------------------------------------------------------------------- WAL

/// max_wal_size / min_wal_size.
///
/// Profile defaults are PGTune's (web/mixed 1GB/4GB, oltp 2GB/8GB, dw
/// 4GB/16GB; min = max/4). Deviation: max_wal_size is limited to the space
/// the WAL file system can spare — 60 % of its size (timescaledb-tune's
/// rule for a WAL disk) and half of its free space (a charm choice, so the
/// WAL a checkpoint cycle keeps cannot fill a shared disk; max_wal_size is a
/// soft limit, hence half). pg_wal's own files count as used space, so on a
/// disk that holds little else the limit settles near a third of (free +
/// WAL) instead of chasing itself; the setting only needs a reload.
struct WalSize {
    max_wal_size: u64,
    min_wal_size: u64,
    max_reason: String,
}

impl WalSize {
    fn new(inputs: &Inputs) -> Self {
        let (default_min, default_max) = match inputs.cfg.profile {
            Profile::Web | Profile::Mixed => (GIB, 4 * GIB),
            Profile::Oltp => (2 * GIB, 8 * GIB),
            Profile::Dw => (4 * GIB, 16 * GIB),
            Profile::Testing => (80 * MIB, GIB),
        };
        let default_reason = match inputs.cfg.profile {
            Profile::Testing => format!("PostgreSQL's default {}", format_memory(default_max)),
            profile => format!(
                "{} profile default {} (PGTune)",
                profile.as_str(),
                format_memory(default_max)
            ),
        };
        let wal_volume = inputs.facts.wal.as_ref().or(inputs.facts.data.as_ref());
        let limit = wal_volume.and_then(wal_space_limit);
        let (max_wal_size, max_reason) = match limit {
            Some((limit, why)) if limit < default_max => (
                floor_mib(limit).max(SMALLEST_WAL_SIZE),
                format!("{default_reason}, lowered to {why}, so WAL cannot fill the disk"),
            ),
            Some((_, why)) => (default_max, format!("{default_reason}; within {why}")),
            None => (
                default_max,
                format!("{default_reason}; the WAL file system's size is unknown, so not bounded"),
            ),
        };
        let min_wal_size = floor_mib(default_min.min(max_wal_size / 4)).max(SMALLEST_WAL_SIZE);
        WalSize {
            max_wal_size,
            min_wal_size,
            max_reason,
        }
    }

    fn settings(&self) -> Vec<Setting> {
        vec![
            Setting::new(
                "max_wal_size",
                format_memory(self.max_wal_size),
                self.max_reason.clone(),
            ),
            Setting::new(
                "min_wal_size",
                format_memory(self.min_wal_size),
                "WAL kept for reuse: a quarter of max_wal_size, at most the profile default \
                 (PGTune)",
            ),
        ]
    }
}

/// Two 16MB WAL segments: the smallest min_wal_size and max_wal_size
/// PostgreSQL accepts.
const SMALLEST_WAL_SIZE: u64 = 32 * MIB;

/// How much WAL the file system can take, with the explanation.
///
/// Half of the free space, rounded down to a power of two: free space moves
/// with every write, and a limit that followed it exactly would rewrite the
/// configuration (and reload the server) on every hook. A power-of-two step
/// changes only when the free space halves or doubles.
fn wal_space_limit(volume: &VolumeFacts) -> Option<(u64, String)> {
    if volume.fs_size_bytes == 0 {
        return None;
    }
    let of_size = volume.fs_size_bytes / 10 * 6;
    let of_free = power_of_two_floor(volume.fs_free_bytes / 2);
    let place = volume.mount_point.display();
    Some(if of_free < of_size {
        (
            of_free,
            format!(
                "half of the free space on {place}, rounded down to a power of two ({})",
                format_memory(of_free)
            ),
        )
    } else {
        (
            of_size,
            format!(
                "60% of the {} file system {place} (timescaledb-tune)",
                format_memory(floor_mib(volume.fs_size_bytes))
            ),
        )
    })
}

/// The largest power of two not above `bytes` (0 for 0).
fn power_of_two_floor(bytes: u64) -> u64 {
    if bytes == 0 {
        0
    } else {
        1 << (63 - bytes.leading_zeros())
    }
}

/// PostgreSQL 14's default. checkpoint_timeout 15min once max_wal_size
/// reaches 8GB is a charm choice (reference §6): with that much WAL allowed,
/// time rather than WAL volume should trigger checkpoints, and fewer
/// checkpoints mean fewer full-page images.
fn checkpoints(max_wal_size: u64) -> Vec<Setting> {
    let (timeout, why) = if max_wal_size >= 8 * GIB {
        (
            "15min",
            "max_wal_size is at least 8GB, so checkpoints can be spaced out; fewer \
             checkpoints write fewer full-page images",
        )
    } else {
        ("5min", "PostgreSQL's default; max_wal_size is below 8GB")
    };
    vec![
        Setting::new(
            "checkpoint_completion_target",
            "0.9",
            "spread checkpoint writes over 90% of the interval (all tuners; PostgreSQL 14+ default)",
        ),
        Setting::new("checkpoint_timeout", timeout, why),
    ]
}

// --------------------------------------------------------------- storage

/// random_page_cost, effective_io_concurrency, maintenance_io_concurrency.
fn storage(inputs: &Inputs) -> Vec<Setting> {
    let class = inputs.data_class;
    let disks = inputs.data_bearing_disks;
    let class_text = class_description(inputs);
    let (random_page_cost, rpc_reason) = random_page_cost(class, inputs.is_dw());
    let effective = effective_io_concurrency(class, disks);
    let mut settings = vec![
        Setting::new(
            "random_page_cost",
            random_page_cost,
            format!("PGDATA on {class_text}: {rpc_reason}"),
        ),
        Setting::new(
            "effective_io_concurrency",
            effective.to_string(),
            format!(
                "PGDATA on {class_text} with {disks} data-bearing disk(s): {}",
                io_concurrency_reason(class)
            ),
        ),
    ];
    if inputs.pg_at_least(13) {
        let default = if inputs.pg_at_least(18) { 16 } else { 10 };
        let maintenance = maintenance_io_concurrency(class, effective, default);
        let why = match class {
            DiskClass::Nvme | DiskClass::Ssd | DiskClass::San => format!(
                "half of effective_io_concurrency, 256 at most and PostgreSQL's default \
                 {default} at least: every autovacuum worker issues this many I/Os of its \
                 own (PostgreSQL commit cc6be07)"
            ),
            DiskClass::Hdd | DiskClass::Unknown => format!(
                "effective_io_concurrency or PostgreSQL's default {default}, whichever is \
                 higher: recovery prefetch and vacuum read ahead this far"
            ),
        };
        settings.push(Setting::new(
            "maintenance_io_concurrency",
            maintenance.to_string(),
            why,
        ));
    }
    settings
}

fn class_description(inputs: &Inputs) -> String {
    let how = if inputs.cfg.storage_type == StorageTypeOverride::Auto {
        "detected"
    } else {
        "storage-type"
    };
    format!("{} storage ({how})", inputs.data_class.as_str())
}

/// PGTune: 4 for HDD, 1.1 for flash, and since 2026 4 for dw (data
/// warehouses rarely fit in RAM, where a low value picks index scans that
/// read the disk randomly). PostgreSQL's docs no longer recommend 1.1 for
/// SSDs (2025 rewrite): 1.1 is a statement that reads are mostly cached.
/// Unknown storage keeps the default 4.
fn random_page_cost(class: DiskClass, dw: bool) -> (&'static str, &'static str) {
    match class {
        _ if dw => (
            "4",
            "dw data usually exceeds memory, where a low value makes index scans look \
             cheaper than they are (PGTune 2026)",
        ),
        DiskClass::Nvme | DiskClass::Ssd | DiskClass::San => (
            "1.1",
            "random reads cost little more than sequential ones on flash and when the \
             working set is cached (PGTune)",
        ),
        DiskClass::Hdd => ("4", "PostgreSQL's default, which models spinning disks"),
        DiskClass::Unknown => (
            "4",
            "PostgreSQL's default, kept because the medium is unknown; set storage-type \
             to ssd or nvme if the disk is flash",
        ),
    }
}

/// Concurrent prefetch I/Os per scan. Per-device values are PGTune's (HDD 2,
/// SSD 200, SAN 300) except NVMe: 256 (timescaledb-tune, reference) instead
/// of PGTune's 1000, because the PostgreSQL 18 docs warn that needlessly
/// high values add latency. Multiplied by data-bearing disks (PostgreSQL's
/// old "number of spindles" advice, extended to flash arrays), max 1000.
/// Unknown storage gets 16, the default PostgreSQL 18 chose as safe for
/// any storage (commit ff79b5b), rather than 1 on older versions.
fn effective_io_concurrency(class: DiskClass, data_bearing_disks: u32) -> u32 {
    let per_disk = match class {
        DiskClass::Hdd => return data_bearing_disks.clamp(2, 1000),
        DiskClass::Unknown => return 16,
        DiskClass::Ssd => 200,
        DiskClass::San => 300,
        DiskClass::Nvme => 256,
    };
    (per_disk * data_bearing_disks).min(1000)
}

fn io_concurrency_reason(class: DiskClass) -> &'static str {
    match class {
        DiskClass::Hdd => "one I/O per spindle, at least 2 (PostgreSQL docs, PGTune)",
        DiskClass::Unknown => {
            "PostgreSQL 18's default, safe for any storage; set storage-type to use more"
        }
        DiskClass::Ssd => "200 per SSD (PGTune), at most 1000",
        DiskClass::San => "300 per LUN (PGTune), at most 1000",
        DiskClass::Nvme => "256 per NVMe device (timescaledb-tune), at most 1000",
    }
}

/// Flash: half of effective_io_concurrency, at most 256 (reference, after
/// IchiruTake's pgtuner); never below PostgreSQL's default.
fn maintenance_io_concurrency(class: DiskClass, effective: u32, default: u32) -> u32 {
    match class {
        DiskClass::Nvme | DiskClass::Ssd | DiskClass::San => (effective / 2).clamp(default, 256),
        DiskClass::Hdd | DiskClass::Unknown => effective.max(default),
    }
}

// ----------------------------------------------------------- parallelism

/// Workers and parallel query.
///
/// * max_worker_processes = max(8, CPUs): PGTune uses CPUs, Canonical
///   min(8, 2 × CPUs); never below PostgreSQL's 8, which extensions and
///   logical replication also draw from.
/// * max_parallel_workers = CPUs (PGTune, timescaledb-tune).
/// * per gather: ceil(CPUs/2), at most 4 except dw (PGTune); 0 on one CPU.
/// * maintenance: ceil(CPUs/2), at most 4 (PGTune); 0 on one CPU.
/// * PostgreSQL 18 `io_method = worker` and io_workers = CPUs/4 in 3..32
///   (PGTune's formula). Not io_uring, which PGTune picks: it needs a
///   liburing build and an io_uring the kernel has not disabled, and worker
///   is PostgreSQL's default and safe everywhere.
fn parallelism(inputs: &Inputs) -> Vec<Setting> {
    let cpus = inputs.cpus;
    let half = cpus.div_ceil(2);
    let single_cpu = cpus < 2;
    let per_gather = if single_cpu {
        0
    } else if inputs.is_dw() {
        half
    } else {
        half.min(4)
    };
    let maintenance = if single_cpu { 0 } else { half.min(4) };
    let mut settings = vec![
        Setting::new(
            "max_worker_processes",
            cpus.max(8).to_string(),
            format!("one per CPU ({cpus}), never below PostgreSQL's 8 that extensions share"),
        ),
        Setting::new(
            "max_parallel_workers",
            cpus.to_string(),
            "one parallel worker per CPU (PGTune, timescaledb-tune)",
        ),
        Setting::new(
            "max_parallel_workers_per_gather",
            per_gather.to_string(),
            if inputs.is_dw() {
                "half the CPUs: dw queries are few and large (PGTune)"
            } else {
                "half the CPUs, at most 4, so one query cannot take every core (PGTune)"
            },
        ),
    ];
    if inputs.pg_at_least(11) {
        settings.push(Setting::new(
            "max_parallel_maintenance_workers",
            maintenance.to_string(),
            "half the CPUs, at most 4 (PGTune)",
        ));
    }
    if inputs.pg_at_least(18) {
        settings.push(Setting::new(
            "io_method",
            "worker",
            "PostgreSQL 18's default; io_uring needs a liburing build and an enabled \
             io_uring, so it is not chosen automatically",
        ));
        settings.push(Setting::new(
            "io_workers",
            (cpus / 4).clamp(3, 32).to_string(),
            "a quarter of the CPUs, 3..32 (PGTune)",
        ));
    }
    settings
}

// -------------------------------------------------------------- features

/// wal_compression, jit, default_statistics_target.
fn features(inputs: &Inputs) -> Vec<Setting> {
    let (compression, why) = match (inputs.pg_at_least(15), inputs.facts.has_lz4) {
        (true, true) => (
            "lz4",
            "compress full-page images with lz4 (PGTune; PostgreSQL 15+, build has lz4)",
        ),
        (true, false) => ("pglz", "compress full-page images; this build has no lz4"),
        (false, _) => (
            "on",
            "compress full-page images (pglz; lz4 needs PostgreSQL 15)",
        ),
    };
    let mut settings = vec![
        Setting::new("wal_compression", compression, why),
        Setting::new(
            "default_statistics_target",
            if inputs.is_dw() { "500" } else { "100" },
            if inputs.is_dw() {
                "larger samples for the complex plans of dw queries (PGTune)"
            } else {
                "PostgreSQL's default (PGTune)"
            },
        ),
    ];
    if inputs.pg_at_least(11) {
        let (jit, why) = if inputs.is_dw() {
            ("on", "long analytical queries repay JIT compilation")
        } else {
            (
                "off",
                "JIT compilation costs more than it saves on short queries (PGTune, timescaledb-tune)",
            )
        };
        settings.push(Setting::new("jit", jit, why));
    }
    settings
}

#[cfg(test)]
mod tests;
