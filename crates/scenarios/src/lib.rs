//! Shared pieces of the runnable scenarios and the charm's integration
//! tests: where the packed charm is, scratch directories and loop-device
//! disks that clean up after themselves.

pub mod ha;
pub mod host;
pub mod netns;

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Runs a command that must succeed; returns its stdout.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An ext4 file system on a loop device, mounted at `mount`.
pub struct LoopDisk {
    pub image: PathBuf,
    pub device: String,
    pub mount: PathBuf,
}

impl LoopDisk {
    pub fn new(dir: &Path, name: &str, size_mb: u64) -> Self {
        let image = dir.join(format!("{name}.img"));
        let mount = dir.join(name);
        std::fs::create_dir_all(&mount).unwrap();
        sh(
            "truncate",
            &["-s", &format!("{size_mb}M"), image.to_str().unwrap()],
        );
        let device = sh("losetup", &["--find", "--show", image.to_str().unwrap()])
            .trim()
            .to_string();
        let disk = Self {
            image,
            device,
            mount,
        };
        sh("mkfs.ext4", &["-q", "-F", &disk.device]);
        disk.mount_it();
        disk
    }

    pub fn mount_it(&self) {
        sh("mount", &[&self.device, self.mount.to_str().unwrap()]);
    }

    pub fn unmount(&self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        self.unmount();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

/// A PostgreSQL cluster name and port private to one scenario, passed to the
/// charm through the emulator's test-only environment, and dropped (with its
/// data) when the guard goes.
pub struct PrivateCluster {
    pub major: u32,
    pub name: String,
    pub port: u16,
}

impl PrivateCluster {
    pub fn new(name: &str, port: u16) -> Self {
        let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        majors.sort();
        Self {
            major: majors.last().copied().unwrap_or(0),
            name: name.to_string(),
            port,
        }
    }

    /// The cluster's name and port, and the test-only host-tuning knobs
    /// (src/tuning/apply.rs) that keep the charm's sysctl/udev/systemd files
    /// in a scratch directory and every kernel setting of this machine as it is.
    pub fn env(&self) -> [(String, String); 4] {
        let host = self.host_dir();
        [
            ("PG_CHARM_CLUSTER".into(), self.name.clone()),
            ("PG_CHARM_PORT".into(), self.port.to_string()),
            (
                "PG_CHARM_HOST_ETC".into(),
                host.join("etc").display().to_string(),
            ),
            ("PG_CHARM_HOST_GLOBAL".into(), "off".into()),
        ]
    }

    fn host_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("pg-charm-host-{}", self.name))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(format!(
            "/var/log/postgresql/postgresql-{}-{}.log",
            self.major, self.name
        ))
        .unwrap_or_default()
    }
}

/// Removes the file the charm's install leaves in postgresql-common's
/// createcluster.d (to stop packages creating a default cluster), when the
/// charm wrote it: on a test machine it is the tests' doing.
pub fn remove_charm_createcluster_file() {
    let path = std::path::Path::new(postgresql_charm::cluster::packages::NO_DEFAULT_CLUSTER);
    if std::fs::read_to_string(path)
        .is_ok_and(|text| text.starts_with("# Written by the PostgreSQL charm"))
    {
        let _ = std::fs::remove_file(path);
    }
}

/// Removes the charm's private state for the cluster `name`
/// (`/var/lib/juju-pg-charm/<name>`, see src/state.rs), and the parent
/// directory and the scratch root when no other test uses them.
pub fn remove_charm_state(name: &str) {
    let root = Path::new(postgresql_charm::state::ROOT);
    let _ = std::fs::remove_dir_all(root.join(name));
    let _ = std::fs::remove_dir(root);
    // The hooks' scratch root, once no hook uses it (src/fsx.rs).
    let _ = std::fs::remove_dir(postgresql_charm::fsx::SCRATCH_ROOT);
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        remove_charm_createcluster_file();
        remove_charm_state(&self.name);
        let _ = std::fs::remove_dir_all(self.host_dir());
        let _ = Command::new("pg_dropcluster")
            .args([&self.major.to_string(), &self.name, "--stop"])
            .output();
        // pg_dropcluster leaves files it did not create (the charm's conf.d
        // file) in the configuration directory.
        let _ = std::fs::remove_dir_all(format!("/etc/postgresql/{}/{}", self.major, self.name));
        let _ = std::fs::remove_file(format!(
            "/var/log/postgresql/postgresql-{}-{}.log",
            self.major, self.name
        ));
    }
}

/// The Kubernetes-side consumer fixture (`tests/consumer-charm`: a real ops
/// charm using ops-lib-pgsql), with its Python dependencies installed by
/// `scripts/consumer-venv`.
pub fn consumer_charm() -> Result<PathBuf> {
    fixture_charm("scripts/consumer-venv", "tests/consumer-charm")
}

/// The TLS provider fixture (`tests/tls-provider-charm`: a CA on the
/// tls-certificates interface, built on the v4 library, whose `mode` config
/// makes it misbehave on purpose), with its Python dependencies installed by
/// `scripts/consumer-venv`.
pub fn tls_provider_charm() -> Result<PathBuf> {
    fixture_charm("scripts/consumer-venv", "tests/tls-provider-charm")
}

fn fixture_charm(venv_script: &str, dir: &str) -> Result<PathBuf> {
    let root = repo_root();
    let status = Command::new(root.join(venv_script)).status()?;
    if !status.success() {
        bail!("{venv_script} failed");
    }
    Ok(root.join(dir))
}
