//! What a machine's boot mounts, as data: the World computes a [`BootPlan`]
//! on the host (a pure function of the machine's directories and spec) and
//! the machine's init applies it inside the new namespaces
//! (`init.rs`), in this order:
//!
//! 1. copy-on-write layers over `/etc`, `/var` and `/usr/bin`, kept on the
//!    machine's disk: whatever the charm writes there (sysctl.d, udev rules,
//!    postgresql-common's createcluster.d, logs, `/usr/bin/juju-exec`) stays
//!    on this machine;
//! 2. the private directories, empty on a new machine and kept across
//!    reboots (`/etc/postgresql`, `/var/lib/postgresql`, ...);
//! 3. fresh tmpfs on `/run`, `/tmp` and `/dev/shm` at every boot;
//! 4. the shared paths bound back as the host has them (the world's own
//!    directory, so hook contexts and agent sockets reach the World);
//! 5. a fresh `/proc` (the machine's own pid namespace) and `/sys` (its own
//!    network devices);
//! 6. the machine's view of the kernel: its `/proc/meminfo`, `/proc/sys/vm`
//!    and transparent huge pages, plain files the charm may rewrite;
//! 7. its storage, at the locations the units were given.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Directories private to each machine by default, empty on a new machine
/// and kept across its reboots. Extend a machine's list with
/// [`super::MachineSpec::private_paths`].
pub const PRIVATE_PATHS: &[&str] = &[
    "/etc/postgresql",
    "/etc/patroni",
    "/var/lib/postgresql",
    "/var/lib/etcd",
    "/var/lib/juju-pg-charm",
    "/var/log/postgresql",
];

/// The agent's data directory: agents, tools, the juju-exec socket.
pub const JUJU_DATA_DIR: &str = "/var/lib/juju";

/// Host directories every machine sees through a copy-on-write layer.
pub const LAYERED_PATHS: &[&str] = &["/etc", "/var", "/usr/bin"];

/// Fresh at every boot, with their modes.
pub const TMPFS_PATHS: &[(&str, u32)] = &[("/run", 0o755), ("/tmp", 0o1777), ("/dev/shm", 0o1777)];

/// Kernel files and directories each machine has its own copy of (under its
/// `kernel/` directory, regenerated from the host at every boot).
pub const KERNEL_VIEWS: &[&str] = &[
    "/proc/meminfo",
    "/proc/sys/vm",
    "/sys/kernel/mm/transparent_hugepage",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub target: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tmpfs {
    pub target: PathBuf,
    pub mode: u32,
}

/// A unit's storage: a block device mounted, or a directory bound, at the
/// location the unit was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageMount {
    pub source: PathBuf,
    pub target: PathBuf,
    /// `true` for a directory (bind mount), `false` for a block device.
    pub bind: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootPlan {
    pub hostname: String,
    pub layers: Vec<Layer>,
    pub private: Vec<Bind>,
    pub tmpfs: Vec<Tmpfs>,
    pub shared: Vec<PathBuf>,
    pub kernel_views: Vec<Bind>,
    pub storage: Vec<StorageMount>,
}

/// Where a machine keeps what survives its reboots (`disk/`) and what is
/// remade at each boot (`kernel/`), below its directory in the world.
#[derive(Debug, Clone)]
pub struct MachineDirs {
    pub root: PathBuf,
}

impl MachineDirs {
    pub fn disk(&self) -> PathBuf {
        self.root.join("disk")
    }

    /// The host path of `path` on this machine's private disk.
    pub fn private(&self, path: &Path) -> PathBuf {
        self.disk()
            .join("private")
            .join(path.strip_prefix("/").unwrap_or(path))
    }

    pub fn layer(&self, path: &Path) -> Layer {
        let name = path.to_string_lossy().trim_matches('/').replace('/', "-");
        let base = self.disk().join("layers").join(name);
        Layer {
            target: path.to_path_buf(),
            upper: base.join("upper"),
            work: base.join("work"),
        }
    }

    /// The machine's copy of a kernel file or directory.
    pub fn kernel_view(&self, path: &Path) -> PathBuf {
        self.root
            .join("kernel")
            .join(path.strip_prefix("/").unwrap_or(path))
    }

    /// What the machine sees as `/var/lib/juju`.
    pub fn juju_data(&self) -> PathBuf {
        self.private(Path::new(JUJU_DATA_DIR))
    }

    pub fn boot_plan_file(&self) -> PathBuf {
        self.root.join("boot.json")
    }

    pub fn init_log(&self) -> PathBuf {
        self.root.join("init.log")
    }
}

/// The boot plan of a machine whose extra private paths are `extra_private`,
/// that shares `shared` with the host and mounts `storage`.
pub fn boot_plan(
    dirs: &MachineDirs,
    hostname: &str,
    extra_private: &[PathBuf],
    shared: &[PathBuf],
    storage: &[StorageMount],
) -> BootPlan {
    let mut private: Vec<PathBuf> = PRIVATE_PATHS.iter().map(PathBuf::from).collect();
    private.push(PathBuf::from(JUJU_DATA_DIR));
    for extra in extra_private {
        if !private.contains(extra) {
            private.push(extra.clone());
        }
    }
    BootPlan {
        hostname: hostname.to_string(),
        layers: LAYERED_PATHS
            .iter()
            .map(|p| dirs.layer(Path::new(p)))
            .collect(),
        private: private
            .iter()
            .map(|p| Bind {
                source: dirs.private(p),
                target: p.clone(),
            })
            .collect(),
        tmpfs: TMPFS_PATHS
            .iter()
            .map(|(p, mode)| Tmpfs {
                target: PathBuf::from(p),
                mode: *mode,
            })
            .collect(),
        shared: shared.to_vec(),
        kernel_views: KERNEL_VIEWS
            .iter()
            .map(|p| Bind {
                source: dirs.kernel_view(Path::new(p)),
                target: PathBuf::from(p),
            })
            .collect(),
        storage: storage.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> MachineDirs {
        MachineDirs {
            root: PathBuf::from("/w/machines/3"),
        }
    }

    #[test]
    fn private_paths_are_on_the_machines_disk_and_extendable() {
        let plan = boot_plan(
            &dirs(),
            "machine-3",
            &[PathBuf::from("/srv/extra"), PathBuf::from("/etc/patroni")],
            &[PathBuf::from("/tmp/world")],
            &[],
        );
        let binds: Vec<(&Path, &Path)> = plan
            .private
            .iter()
            .map(|b| (b.source.as_path(), b.target.as_path()))
            .collect();
        assert!(binds.contains(&(
            Path::new("/w/machines/3/disk/private/var/lib/postgresql"),
            Path::new("/var/lib/postgresql")
        )));
        assert!(binds.contains(&(
            Path::new("/w/machines/3/disk/private/var/lib/juju"),
            Path::new("/var/lib/juju")
        )));
        assert!(binds.contains(&(
            Path::new("/w/machines/3/disk/private/srv/extra"),
            Path::new("/srv/extra")
        )));
        let patroni = binds
            .iter()
            .filter(|(_, t)| *t == Path::new("/etc/patroni"))
            .count();
        assert_eq!(patroni, 1, "a default named again is not bound twice");
        assert_eq!(plan.shared, [PathBuf::from("/tmp/world")]);
    }

    #[test]
    fn layers_tmpfs_and_kernel_views_follow_the_tables() {
        let plan = boot_plan(&dirs(), "m", &[], &[], &[]);
        assert_eq!(
            plan.layers[0],
            Layer {
                target: "/etc".into(),
                upper: "/w/machines/3/disk/layers/etc/upper".into(),
                work: "/w/machines/3/disk/layers/etc/work".into(),
            }
        );
        assert_eq!(
            plan.layers[2].upper,
            Path::new("/w/machines/3/disk/layers/usr-bin/upper")
        );
        let tmpfs: Vec<&Path> = plan.tmpfs.iter().map(|t| t.target.as_path()).collect();
        assert_eq!(
            tmpfs,
            [Path::new("/run"), Path::new("/tmp"), Path::new("/dev/shm")]
        );
        assert_eq!(
            plan.kernel_views[1],
            Bind {
                source: "/w/machines/3/kernel/proc/sys/vm".into(),
                target: "/proc/sys/vm".into(),
            }
        );
    }
}
