//! Root never follows a link the `postgres` user can plant, never uses a
//! scratch name someone else can predict, and never loses a write to a
//! power cut. Anyone who can act as postgres (a db-admin consumer through
//! `COPY ... TO PROGRAM`, an `archive_command`) can plant files in the
//! directories postgres owns; these tests do exactly that, as postgres,
//! against a real cluster, and cut the power of real ext4 loop disks.
//!
//! Needs root (loop devices, mounts, PostgreSQL); `scripts/test` runs it.

mod common;

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{sh, Harness};

fn as_postgres(script: &str) {
    sh("runuser", &["-u", "postgres", "--", "sh", "-c", script]);
}

/// A root-owned file that must come out of every hook untouched.
struct Victim {
    path: PathBuf,
}

impl Victim {
    fn new(dir: &Path, name: &str) -> Self {
        let path = dir.join(name);
        std::fs::write(&path, "precious\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Victim { path }
    }

    fn assert_untouched(&self) {
        let meta = std::fs::metadata(&self.path).unwrap();
        assert_eq!(std::fs::read_to_string(&self.path).unwrap(), "precious\n");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600));
    }
}

fn converge(h: &mut Harness, config: &[(&str, &str)]) {
    h.world.set_config("postgresql", config).unwrap();
    h.world.settle().unwrap();
}

#[test]
fn links_postgres_plants_are_never_followed_by_root() {
    let mut h = Harness::new("planted-links");
    h.deploy(None, &[]);
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    let conf_dir = h.cluster.conf_dir();
    let victim = Victim::new(&h.scratch.0, "victim");
    // Every name root wrote through, or could be made to: temporary files,
    // the charm's old records next to the cluster, the memo of huge pages.
    for name in [
        "conf.d/90-juju-charm.juju-tmp",
        "pg_hba.juju-tmp",
        "pg_ident.juju-tmp",
        "postgresql.juju-tmp",
        "juju-pg-charm.relations.json.tmp",
        "juju-pg-charm.machine.juju-tmp",
        "juju-pg-charm.hugepages",
    ] {
        as_postgres(&format!(
            "ln -sf {} {}",
            victim.path.display(),
            conf_dir.join(name).display()
        ));
    }
    converge(
        &mut h,
        &[
            ("admin-addresses", "192.0.2.10"),
            ("extra-pg-conf", "work_mem = 11MB"),
        ],
    );
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    victim.assert_untouched();
    assert_eq!(h.cluster.psql("SHOW work_mem").unwrap(), "11MB");
    let hba = std::fs::read_to_string(conf_dir.join("pg_hba.conf")).unwrap();
    assert!(hba.contains("192.0.2.10/32"), "{hba}");
    // Nothing of the charm's is kept in directories postgres owns.
    let ours: Vec<String> = std::fs::read_dir(&conf_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("juju-pg-charm") && !n.ends_with("tmp") && n != "juju-pg-charm.hugepages"
        })
        .collect();
    assert!(ours.is_empty(), "{ours:?}");

    // conf.d itself swapped for a link to a directory root owns.
    let target = h.scratch.0.join("root-only");
    std::fs::create_dir_all(&target).unwrap();
    let conf_d = conf_dir.join("conf.d");
    as_postgres(&format!(
        "mv {0} {0}.real && ln -s {1} {0}",
        conf_d.display(),
        target.display()
    ));
    h.world
        .set_config("postgresql", &[("extra-pg-conf", "work_mem = 13MB")])
        .unwrap();
    let _ = h.world.settle();
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "root wrote into the directory the link names"
    );
    assert_eq!(h.cluster.psql("SELECT 1").unwrap(), "1", "still serving");
    // The link goes; the next hook finishes the change.
    as_postgres(&format!("rm {0} && mv {0}.real {0}", conf_d.display()));
    let retried = h.world.run_hook("postgresql/0", "config-changed").unwrap();
    assert!(retried.succeeded(), "{}", retried.output());
    assert_eq!(h.cluster.psql("SHOW work_mem").unwrap(), "13MB");
    victim.assert_untouched();
}

/// Removes the files a test planted in /tmp, by their names.
struct Planted(Vec<PathBuf>);

impl Drop for Planted {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn scratch_names_others_can_predict_cannot_fail_a_hook() {
    let mut h = Harness::new("scratch-names");
    h.deploy(None, &[]);
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    // A local user takes every name of the form /tmp/<prefix>-<id>-<pid>
    // the charm would use for its scratch copies.
    let id = format!("{}-{}", h.cluster.major, h.cluster.name);
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pids: Vec<u32> = if pid_max <= 65_536 {
        (1..=pid_max).collect()
    } else {
        (last + 1..last + 20_000).collect()
    };
    let mut planted = Planted(Vec::new());
    for prefix in ["juju-pg-charm-validate", "juju-pg-charm-hugepages"] {
        for pid in &pids {
            planted
                .0
                .push(std::env::temp_dir().join(format!("{prefix}-{id}-{pid}")));
        }
    }
    let list = h.scratch.0.join("planted");
    let names: Vec<String> = planted.0.iter().map(|p| p.display().to_string()).collect();
    std::fs::write(&list, names.join("\n") + "\n").unwrap();
    std::fs::set_permissions(&h.scratch.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o644)).unwrap();
    as_postgres(&format!("xargs touch < {}", list.display()));
    converge(&mut h, &[("extra-pg-conf", "work_mem = 9MB")]);
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    assert_eq!(h.cluster.psql("SHOW work_mem").unwrap(), "9MB");
}

/// EXT4_IOC_SHUTDOWN with EXT4_GOING_FLAGS_NOLOGFLUSH: the file system stops
/// at once and its journal is not flushed, as if the power went.
fn cut_power(mount: &Path) {
    const EXT4_IOC_SHUTDOWN: u64 = 0x8004_587d;
    const NOLOGFLUSH: u32 = 2;
    let dir = std::fs::File::open(mount).unwrap();
    let flags = NOLOGFLUSH;
    // SAFETY: a valid fd and a pointer to a u32 that outlives the call.
    let rc = unsafe {
        nix::libc::ioctl(
            dir.as_raw_fd(),
            EXT4_IOC_SHUTDOWN as _,
            &flags as *const u32,
        )
    };
    assert_eq!(rc, 0, "shutdown of {}", mount.display());
}

fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if path.file_name().is_some_and(|n| n == "lost+found") {
                continue;
            }
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The mount points the test made outside its scratch directory, removed
/// (after their disks are unmounted) whatever happens.
struct MountPoints(Vec<PathBuf>);

impl Drop for MountPoints {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::process::Command::new("umount")
                .arg(dir)
                .stderr(std::process::Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = std::fs::remove_dir(postgresql_charm::state::ROOT);
    }
}

#[test]
fn a_power_cut_right_after_a_hook_loses_neither_pg_hba_nor_the_charms_records() {
    let mount_points;
    let mut h = Harness::new("power-cut");
    let conf_dir = h.cluster.conf_dir();
    let state_dir = h.cluster.state_dir();
    mount_points = MountPoints(vec![conf_dir.clone(), state_dir.clone()]);
    // The cluster's configuration and the charm's state directory each on
    // an ext4 disk of their own, whose journal commits only every minute
    // unless someone asks (fsync).
    for (name, place) in [("conf", &conf_dir), ("state", &state_dir)] {
        h.disk(name, 32);
        let disk = h.disks.last_mut().unwrap();
        disk.unmount();
        std::fs::create_dir_all(place).unwrap();
        sh(
            "mount",
            &["-o", "commit=60", &disk.device, place.to_str().unwrap()],
        );
        disk.mount = place.to_path_buf();
    }
    h.deploy(None, &[]);
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    // What pg_createcluster and the deploy wrote is on disk now.
    for place in [&conf_dir, &state_dir] {
        sh("sync", &["-f", place.to_str().unwrap()]);
    }
    let synced = (contents(&conf_dir), contents(&state_dir));

    // One hook rewrites pg_hba.conf, the conf.d file and the host record.
    converge(
        &mut h,
        &[("admin-addresses", "192.0.2.20"), ("storage-type", "hdd")],
    );
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    let written = (contents(&conf_dir), contents(&state_dir));
    for (file, dir) in [
        ("pg_hba.conf", &conf_dir),
        ("conf.d/90-juju-charm.conf", &conf_dir),
        ("host-applied.json", &state_dir),
    ] {
        let path = dir.join(file);
        let all = if dir == &conf_dir {
            &written.0
        } else {
            &written.1
        };
        let before = if dir == &conf_dir {
            &synced.0
        } else {
            &synced.1
        };
        assert_ne!(all.get(&path), before.get(&path), "{file} was rewritten");
    }

    // The power goes right after the hook.
    for place in [&conf_dir, &state_dir] {
        cut_power(place);
        sh("umount", &[place.to_str().unwrap()]);
    }
    for disk in &h.disks {
        if disk.mount == conf_dir || disk.mount == state_dir {
            sh("mount", &[&disk.device, disk.mount.to_str().unwrap()]);
        }
    }
    let after = (contents(&conf_dir), contents(&state_dir));
    for (path, bytes) in written.0.iter().chain(written.1.iter()) {
        let survived = after.0.get(path).or_else(|| after.1.get(path));
        let earlier = synced.0.get(path).or_else(|| synced.1.get(path));
        let what = match survived {
            Some(now) if now == bytes => continue,
            None => "is gone",
            Some(now) if now.is_empty() => "is empty",
            Some(now) if Some(now) == earlier => "is back to its content before the hook",
            Some(_) => "holds something else",
        };
        panic!("{} {what} after the power cut", path.display());
    }
    let hba = std::fs::read_to_string(conf_dir.join("pg_hba.conf")).unwrap();
    assert!(hba.contains("192.0.2.20/32"), "{hba}");
    // And the unit goes on.
    let next = h.world.run_hook("postgresql/0", "update-status").unwrap();
    assert!(next.succeeded(), "{}", next.output());
    drop(h);
    drop(mount_points);
}
