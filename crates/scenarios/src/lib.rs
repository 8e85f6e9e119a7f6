//! Shared pieces of the runnable scenarios and the charm's integration
//! tests: where the packed charm is, scratch directories and loop-device
//! disks that clean up after themselves.

pub mod ha;
pub mod host;
pub mod netns;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Result};

/// The arguments to `runuser` that run `psql` as the `postgres` superuser
/// over the unix socket on `port`, in `database`: unaligned, tuples only,
/// no `.psqlrc`, stopping at the first error. The caller appends `-c SQL`
/// or `-f -`. One builder, so every test talks to its cluster the same way.
pub fn superuser_psql_args(port: u16, database: &str) -> Vec<String> {
    [
        "-u",
        "postgres",
        "--",
        "psql",
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "/var/run/postgresql",
        "-p",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([port.to_string(), "-d".to_string(), database.to_string()])
    .collect()
}

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

/// A PostgreSQL cluster name and port private to one scenario or test,
/// passed to the charm through the emulator's test-only environment, and
/// dropped (with its data, configuration, log and the charm's state for it)
/// when the guard goes, even when the scenario or test fails.
pub struct PrivateCluster {
    pub major: u32,
    pub name: String,
    pub port: u16,
    /// Whether dropping the guard also removes the charm's createcluster.d
    /// file ([`remove_charm_createcluster_file`]): a scenario's cluster
    /// does; a test's does not (its `Harness` does, after the world).
    removes_createcluster_file: bool,
}

static NEXT_UNIQUE: AtomicU32 = AtomicU32::new(0);

impl PrivateCluster {
    /// A scenario's cluster, named and placed by the scenario.
    pub fn new(name: &str, port: u16) -> Self {
        Self {
            major: postgresql_charm::cluster::packages::installed_majors()
                .last()
                .copied()
                .unwrap_or(0),
            name: name.to_string(),
            port,
            removes_createcluster_file: true,
        }
    }

    /// A test's cluster: a name and port no other test process (nor another
    /// guard of this one) uses.
    pub fn unique() -> Self {
        let n = NEXT_UNIQUE.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        Self {
            major: installed_major(),
            name: format!("jt{pid}x{n}"),
            port: 40000 + ((pid as u16).wrapping_mul(7).wrapping_add(n as u16 * 13)) % 20000,
            removes_createcluster_file: false,
        }
    }

    /// The cluster's name and port, and the test-only host-tuning knobs
    /// (src/tuning/roots.rs) that keep the charm's sysctl/udev/systemd files
    /// in a scratch directory and every kernel setting of this machine as it is.
    pub fn env(&self) -> [(String, String); 4] {
        let [etc, global] = host_tuning_env(&self.host_dir());
        [
            ("PG_CHARM_CLUSTER".into(), self.name.clone()),
            ("PG_CHARM_PORT".into(), self.port.to_string()),
            etc,
            global,
        ]
    }

    fn host_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("pg-charm-host-{}", self.name))
    }

    pub fn conf_dir(&self) -> PathBuf {
        PathBuf::from(format!("/etc/postgresql/{}/{}", self.major, self.name))
    }

    /// The charm's private state for this unit (src/state/).
    pub fn state_dir(&self) -> PathBuf {
        Path::new(postgresql_charm::state::ROOT).join(&self.name)
    }

    pub fn log_file(&self) -> PathBuf {
        PathBuf::from(format!(
            "/var/log/postgresql/postgresql-{}-{}.log",
            self.major, self.name
        ))
    }

    /// The server's log, or nothing when there is none yet.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// `psql -Atc sql` as postgres over the unix socket.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("runuser")
            .args(superuser_psql_args(self.port, "postgres"))
            .args(["-c", sql])
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
        self.log()
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

/// The newest installed PostgreSQL major (the one the charm picks).
pub fn installed_major() -> u32 {
    *postgresql_charm::cluster::packages::installed_majors()
        .last()
        .expect("a PostgreSQL server is installed (scripts/install-deps)")
}

/// The test-only environment that keeps host tuning off the shared machine:
/// the charm's sysctl, udev and systemd files go under `dir`, and no kernel
/// setting of this machine changes.
pub fn host_tuning_env(dir: &Path) -> [(String, String); 2] {
    [
        (
            "PG_CHARM_HOST_ETC".into(),
            dir.join("etc").display().to_string(),
        ),
        ("PG_CHARM_HOST_GLOBAL".into(), "off".into()),
    ]
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
        if self.removes_createcluster_file {
            remove_charm_createcluster_file();
        }
        remove_charm_state(&self.name);
        let _ = std::fs::remove_dir_all(self.host_dir());
        let _ = Command::new("pg_dropcluster")
            .args([&self.major.to_string(), &self.name, "--stop"])
            .output();
        // pg_dropcluster leaves files it did not create (the charm's conf.d
        // file) in the configuration directory, and a data directory it
        // could not drop (a cluster the test broke on purpose).
        let _ = std::fs::remove_dir_all(self.conf_dir());
        let _ = std::fs::remove_file(self.log_file());
        let _ =
            std::fs::remove_dir_all(format!("/var/lib/postgresql/{}/{}", self.major, self.name));
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
