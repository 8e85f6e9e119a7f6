//! Where the host's files and kernel knobs are, and which live changes a
//! test allows ([`HostRoots::for_unit`], from [`TestKnobs`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::knobs::TestKnobs;
use crate::state::StateDir;
use crate::tuning::detect::{self, SysRoot};
use crate::tuning::facts::StableId;

/// Below `etc`.
pub const SYSCTL_FILE: &str = "sysctl.d/60-juju-pg-charm.conf";
/// Below `etc`; sorts after `60-persistent-storage.rules` and
/// `63-md-raid-arrays.rules`, which set the identities the rules match.
pub const UDEV_FILE: &str = "udev/rules.d/69-juju-pg-charm.rules";
/// Earlier revisions' name for [`UDEV_FILE`], removed when found.
pub(super) const LEGACY_UDEV_FILE: &str = "udev/rules.d/61-juju-pg-charm.rules";
pub const THP_UNIT: &str = "juju-pg-charm-thp.service";
const THP_UNIT_DIR: &str = "systemd/system";
/// Below `sys`.
const THP_KNOB: &str = "kernel/mm/transparent_hugepage/enabled";

/// Where the host's files and kernel knobs are, and which live changes are
/// allowed. [`HostRoots::for_unit`] is the real machine unless a test says
/// otherwise (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoots {
    /// `/etc`: sysctl.d, udev rules, systemd units.
    pub etc: PathBuf,
    /// `/proc`: `sys/...` knobs and `meminfo`.
    pub proc: PathBuf,
    /// `/sys`: block device queues, THP.
    pub sys: PathBuf,
    /// udev's database, for devices' stable identities.
    pub udev_data: PathBuf,
    /// The sysctl.d directories boot reads, highest priority first.
    pub sysctl_dirs: Vec<PathBuf>,
    /// The unit's state directory: original values and the applied plan.
    pub state: StateDir,
    /// Whether global settings (sysctls, THP, systemd) may change now.
    pub global: bool,
    /// Devices whose live settings may change; `None`: every planned one.
    pub devices: Option<BTreeSet<String>>,
}

impl HostRoots {
    /// The real machine, every change allowed.
    pub fn host(state: StateDir) -> Self {
        HostRoots {
            etc: PathBuf::from("/etc"),
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
            udev_data: PathBuf::from("/run/udev/data"),
            // systemd-sysctl's search path (sysctl.d(5)).
            sysctl_dirs: [
                "/etc/sysctl.d",
                "/run/sysctl.d",
                "/usr/local/lib/sysctl.d",
                "/usr/lib/sysctl.d",
                "/lib/sysctl.d",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
            state,
            global: true,
            devices: None,
        }
    }

    /// [`HostRoots::host`] adjusted by the test-only `PG_CHARM_HOST_*`
    /// variables ([`TestKnobs`]).
    pub fn for_unit(knobs: &TestKnobs, state: StateDir) -> Self {
        let mut roots = HostRoots::host(state);
        if let Some(etc) = &knobs.host_etc {
            roots.etc = etc.clone();
            roots.sysctl_dirs = vec![roots.etc.join("sysctl.d")];
        }
        if knobs.host_global {
            roots.devices = knobs.host_devices.clone();
        } else {
            roots.global = false;
            roots.devices = Some(knobs.host_devices.clone().unwrap_or_default());
        }
        roots
    }

    pub fn sysctl_file(&self) -> PathBuf {
        self.etc.join(SYSCTL_FILE)
    }

    pub fn udev_file(&self) -> PathBuf {
        self.etc.join(UDEV_FILE)
    }

    pub fn thp_unit(&self) -> PathBuf {
        self.etc.join(THP_UNIT_DIR).join(THP_UNIT)
    }

    pub(super) fn sysctl(&self, key: &str) -> PathBuf {
        self.proc.join("sys").join(key.replace('.', "/"))
    }

    pub(super) fn queue(&self, device: &str, attribute: &str) -> PathBuf {
        self.sys
            .join("block")
            .join(device)
            .join("queue")
            .join(attribute)
    }

    pub(super) fn thp(&self) -> PathBuf {
        self.sys.join(THP_KNOB)
    }

    pub(super) fn device_allowed(&self, name: &str) -> bool {
        self.devices.as_ref().is_none_or(|set| set.contains(name))
    }

    /// The stable identity of the device the kernel calls `name` now.
    pub(super) fn device_id(&self, name: &str) -> Option<StableId> {
        let root = SysRoot {
            sys: self.sys.clone(),
            proc: self.proc.clone(),
            udev_data: self.udev_data.clone(),
        };
        detect::device_stable_id(&root, name)
    }

    /// systemctl only for the real /etc, with global changes allowed, on a
    /// machine that runs systemd.
    pub(super) fn systemd(&self) -> bool {
        self.global && self.etc == Path::new("/etc") && Path::new("/run/systemd/system").is_dir()
    }
}
