//! Real parts for the charm's integration tests: ext4 file systems on loop
//! devices, a private PostgreSQL cluster name and port per test, and an
//! emulated Juju world running the packed charm. Everything a test creates
//! is removed by its own name when the guard drops, even if the test fails.

#![allow(dead_code)]

pub mod consumer;
#[allow(unused_imports)]
pub use scenarios::netns;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use juju_emulator::{DeployOptions, StorageRequest, World};
use scenarios::{packed_charm, Scratch};
#[allow(unused_imports)]
pub use scenarios::{sh, LoopDisk};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The `memory-limit` every test deploys with unless it sets its own.
pub const TEST_MEMORY_LIMIT: &str = "1G";

/// One test's cluster identity: a unique name and port, and the cleanup of
/// everything postgresql-common knows under that name.
pub struct ClusterGuard {
    pub major: u32,
    pub name: String,
    pub port: u16,
}

impl ClusterGuard {
    pub fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        Self {
            major: installed_major(),
            name: format!("jt{pid}x{n}"),
            port: 40000 + ((pid as u16).wrapping_mul(7).wrapping_add(n as u16 * 13)) % 20000,
        }
    }

    pub fn conf_dir(&self) -> PathBuf {
        PathBuf::from(format!("/etc/postgresql/{}/{}", self.major, self.name))
    }

    /// The charm's private state for this unit (src/state.rs).
    pub fn state_dir(&self) -> PathBuf {
        Path::new(postgresql_charm::state::ROOT).join(&self.name)
    }

    pub fn log_file(&self) -> PathBuf {
        PathBuf::from(format!(
            "/var/log/postgresql/postgresql-{}-{}.log",
            self.major, self.name
        ))
    }

    /// `psql -Atc sql` as postgres over the unix socket.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args([
                "-h",
                "/var/run/postgresql",
                "-p",
                &self.port.to_string(),
                "-d",
                "postgres",
                "-Atc",
                sql,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn data_directory(&self) -> String {
        self.psql("SHOW data_directory").unwrap()
    }

    /// How many times the server became ready (starts and restarts).
    pub fn starts(&self) -> usize {
        std::fs::read_to_string(self.log_file())
            .unwrap_or_default()
            .matches("database system is ready to accept connections")
            .count()
    }

    pub fn is_running(&self) -> bool {
        self.psql("SELECT 1").is_ok()
    }

    /// A table of `rows` rows with some bulk, and a checksum of it.
    pub fn fill(&self, rows: u32) -> String {
        self.psql(&format!(
            "CREATE TABLE IF NOT EXISTS t (id int primary key, body text);\
             INSERT INTO t SELECT g, md5(g::text) || repeat('x', 200) FROM generate_series(1, {rows}) g ON CONFLICT DO NOTHING"
        ))
        .unwrap();
        self.checksum()
    }

    pub fn checksum(&self) -> String {
        self.psql(
            "SELECT count(*) || ':' || md5(string_agg(id::text || body, ',' ORDER BY id)) FROM t",
        )
        .unwrap()
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args([&self.major.to_string(), &self.name, "--stop"])
            .output();
        let _ = std::fs::remove_dir_all(self.conf_dir());
        let _ = std::fs::remove_file(self.log_file());
        let _ =
            std::fs::remove_dir_all(format!("/var/lib/postgresql/{}/{}", self.major, self.name));
        scenarios::remove_charm_state(&self.name);
    }
}

pub fn installed_major() -> u32 {
    let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed (scripts/install-deps)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    majors.sort();
    *majors.last().expect("a PostgreSQL server package")
}

/// The test-only environment that keeps host tuning off the shared machine.
pub fn host_tuning_env(dir: &Path) -> [(String, String); 2] {
    [
        (
            "PG_CHARM_HOST_ETC".into(),
            dir.join("etc").display().to_string(),
        ),
        ("PG_CHARM_HOST_GLOBAL".into(), "off".into()),
    ]
}

/// An emulated controller with the packed charm, isolated to `cluster`.
/// Field order matters: the world and cluster go before the disk unmounts.
pub struct Harness {
    pub world: World,
    pub cluster: ClusterGuard,
    pub disks: Vec<LoopDisk>,
    pub scratch: Scratch,
}

impl Harness {
    pub fn new(name: &str) -> Self {
        let scratch = Scratch::new(name).unwrap();
        let cluster = ClusterGuard::new();
        let mut world = World::new(&scratch.0.join("world")).unwrap();
        world.set_test_env("PG_CHARM_CLUSTER", &cluster.name);
        world.set_test_env("PG_CHARM_PORT", &cluster.port.to_string());
        // Host tuning (src/tuning/apply.rs) writes its files into the scratch
        // directory and changes no kernel setting of the shared test machine;
        // a test that wants its own loop device tuned live names it in
        // PG_CHARM_HOST_DEVICES.
        world.extend_test_env(host_tuning_env(&scratch.0.join("host")));
        world.add_model("db");
        Self {
            world,
            cluster,
            disks: Vec::new(),
            scratch,
        }
    }

    pub fn disk(&mut self, name: &str, size_mb: u64) -> PathBuf {
        let disk = LoopDisk::new(&self.scratch.0, name, size_mb);
        let mount = disk.mount.clone();
        self.disks.push(disk);
        mount
    }

    pub fn deploy(&mut self, pgdata: Option<&Path>, config: &[(&str, &str)]) {
        self.deploy_at(pgdata, config, Vec::new());
    }

    /// Like `deploy`, with the unit's (private, public) addresses.
    pub fn deploy_at(
        &mut self,
        pgdata: Option<&Path>,
        config: &[(&str, &str)],
        addresses: Vec<(String, String)>,
    ) {
        let storage: Vec<(&str, &Path)> = pgdata.map(|p| ("pgdata", p)).into_iter().collect();
        self.deploy_with(&storage, config, addresses);
    }

    /// Deploys with several storage instances, e.g. pgdata and pgwal.
    pub fn deploy_storage(&mut self, storage: &[(&str, &Path)], config: &[(&str, &str)]) {
        self.deploy_with(storage, config, Vec::new());
    }

    fn deploy_with(
        &mut self,
        storage: &[(&str, &Path)],
        config: &[(&str, &str)],
        addresses: Vec<(String, String)>,
    ) {
        let storage = storage
            .iter()
            .map(|(name, path)| StorageRequest::at(name, path))
            .collect();
        let mut config: std::collections::BTreeMap<String, String> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Test clusters are sized explicitly, not from this machine's
        // memory: a host that already runs PostgreSQL or holds huge pages
        // must not make them fail (shared_buffers 128MB, no huge pages).
        config
            .entry("memory-limit".into())
            .or_insert_with(|| TEST_MEMORY_LIMIT.into());
        let options = DeployOptions {
            units: 1,
            storage,
            config,
            addresses,
            ..Default::default()
        };
        self.world
            .deploy("db", "postgresql", &packed_charm().unwrap(), options)
            .unwrap();
        self.world.settle().unwrap();
    }

    pub fn status(&self) -> (String, String) {
        let s = &self.world.unit("postgresql/0").unwrap().status;
        (s.status.clone(), s.message.clone())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        scenarios::remove_charm_createcluster_file();
        // Stop and drop the cluster before the disks go away.
        let _ = Command::new("pg_dropcluster")
            .args([
                &self.cluster.major.to_string(),
                &self.cluster.name,
                "--stop",
            ])
            .output();
    }
}
