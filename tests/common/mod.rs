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

use juju_emulator::{DeployOptions, StorageRequest, World};
#[allow(unused_imports)]
pub use scenarios::{host_tuning_env, installed_major, sh, LoopDisk, PrivateCluster};
use scenarios::{packed_charm, Scratch};

/// The `memory-limit` every test deploys with unless it sets its own.
pub const TEST_MEMORY_LIMIT: &str = "1G";

/// An emulated controller with the packed charm, isolated to `cluster`.
/// Field order matters: the world and cluster go before the disk unmounts.
pub struct Harness {
    pub world: World,
    pub cluster: PrivateCluster,
    pub disks: Vec<LoopDisk>,
    pub scratch: Scratch,
}

impl Harness {
    pub fn new(name: &str) -> Self {
        let scratch = Scratch::new(name).unwrap();
        let cluster = PrivateCluster::unique();
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
