//! Host tuning end to end: a real PostgreSQL on an ext4 loop disk, driven by
//! the packed charm under the Juju emulator. The test flips the loop
//! device's `rotational` flag and checks that the running server's
//! `pg_settings` follow without a restart, that the device's scheduler and
//! read-ahead are set as the plan says, on that loop device only, and that
//! `host-tuning=false` puts everything back.
//!
//! The machine is shared with other tests, so the charm runs with the
//! test-only knobs (`tests/common`): its sysctl.d/udev/systemd files go to
//! the scratch directory, no global kernel setting is changed, and only the
//! device named in `PG_CHARM_HOST_DEVICES` (this test's loop device) is
//! tuned live. A guard restores that device whatever happens.
//!
//! Needs root (loop devices, mounts, PostgreSQL); `scripts/test` runs it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::Harness;

const QUEUE_ATTRIBUTES: [&str; 3] = ["rotational", "scheduler", "read_ahead_kb"];

/// The bracketed choice of `none [mq-deadline] kyber`, else the text.
fn selected(text: &str) -> String {
    let text = text.trim();
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
        .unwrap_or(text)
        .to_string()
}

fn queue_file(device: &str, attribute: &str) -> PathBuf {
    Path::new("/sys/block")
        .join(device)
        .join("queue")
        .join(attribute)
}

fn read_queue(device: &str, attribute: &str) -> String {
    selected(&std::fs::read_to_string(queue_file(device, attribute)).unwrap_or_default())
}

/// Puts the test's loop device back as it was, even when an assertion fails.
struct DeviceGuard {
    device: String,
    saved: Vec<(&'static str, String)>,
}

impl DeviceGuard {
    fn new(device: &str) -> Self {
        let saved = QUEUE_ATTRIBUTES
            .iter()
            .map(|attribute| (*attribute, read_queue(device, attribute)))
            .collect();
        Self {
            device: device.to_string(),
            saved,
        }
    }

    fn set(&self, attribute: &str, value: &str) {
        std::fs::write(queue_file(&self.device, attribute), value)
            .unwrap_or_else(|e| panic!("writing {value} to {}'s {attribute}: {e}", self.device));
    }

    fn original(&self, attribute: &str) -> &str {
        &self.saved.iter().find(|(a, _)| *a == attribute).unwrap().1
    }
}

impl Drop for DeviceGuard {
    fn drop(&mut self) {
        for (attribute, value) in &self.saved {
            let _ = std::fs::write(queue_file(&self.device, attribute), value);
        }
    }
}

/// scheduler and read_ahead_kb of every block device, keyed by device and
/// what is attached to it (a loop device another test re-attaches meanwhile
/// is a different disk and is not compared).
fn block_snapshot() -> BTreeMap<(String, String), (String, String)> {
    let mut snapshot = BTreeMap::new();
    for entry in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let device = entry.file_name().to_string_lossy().into_owned();
        let backing = std::fs::read_to_string(entry.path().join("loop/backing_file"))
            .unwrap_or_default()
            .trim()
            .to_string();
        snapshot.insert(
            (device.clone(), backing),
            (
                read_queue(&device, "scheduler"),
                read_queue(&device, "read_ahead_kb"),
            ),
        );
    }
    snapshot
}

/// Global knobs the charm must leave alone under `PG_CHARM_HOST_GLOBAL=off`.
fn global_snapshot() -> Vec<(String, String)> {
    [
        "/proc/sys/vm/swappiness",
        "/proc/sys/vm/dirty_bytes",
        "/proc/sys/vm/dirty_background_bytes",
        "/proc/sys/vm/nr_hugepages",
        "/proc/sys/vm/overcommit_memory",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ]
    .iter()
    .map(|path| {
        (
            path.to_string(),
            std::fs::read_to_string(path).unwrap_or_default(),
        )
    })
    .collect()
}

fn setting(h: &Harness, name: &str) -> String {
    h.cluster
        .psql(&format!(
            "SELECT setting FROM pg_settings WHERE name = '{name}'"
        ))
        .unwrap()
}

fn run_hook(h: &mut Harness, hook: &str) {
    let result = h.world.run_hook("postgresql/0", hook).unwrap();
    assert!(result.succeeded(), "{hook}: {}", result.output());
}

#[test]
fn host_tuning_follows_the_loop_disk_and_is_reverted() {
    let mut h = Harness::new("host-tuning");
    let disk = h.disk("pgdata", 600);
    let device = h.disks[0].device.trim_start_matches("/dev/").to_string();
    let guard = DeviceGuard::new(&device);
    let host_dir = h.scratch.0.join("host");
    let sysctl_file = host_dir.join("etc/sysctl.d/60-juju-pg-charm.conf");
    let udev_file = host_dir.join("etc/udev/rules.d/69-juju-pg-charm.rules");
    // The rule names the disk by what stays true across reboots: a loop
    // device by its file, never by its loopN name.
    let image = h.disks[0].image.display().to_string();
    let thp_unit = host_dir.join("etc/systemd/system/juju-pg-charm-thp.service");
    let originals = h.cluster.state_dir().join("host-originals.json");
    h.world.set_test_env("PG_CHARM_HOST_DEVICES", &device);
    let globals = global_snapshot();
    let blocks = block_snapshot();

    // 1. A loop device that says it does not spin is flash. shared_buffers
    // of 2GB (memory-limit 8G) makes the charm size huge pages.
    guard.set("rotational", "0");
    h.deploy(Some(&disk), &[("memory-limit", "8G")]);
    let (status, message) = h.status();
    assert_eq!(status, "active", "{message}");
    assert!(message.ends_with("(ssd)"), "{message}");
    assert_eq!(setting(&h, "random_page_cost"), "1.1");
    assert_eq!(setting(&h, "effective_io_concurrency"), "200");
    assert_eq!(read_queue(&device, "scheduler"), "none");
    let sysctl = std::fs::read_to_string(&sysctl_file).unwrap();
    assert!(sysctl.contains("\nvm.swappiness = 10\n"), "{sysctl}");
    assert!(
        sysctl.contains("\nvm.dirty_bytes = 1073741824\n"),
        "{sysctl}"
    );
    let udev = std::fs::read_to_string(&udev_file).unwrap();
    assert!(
        udev.contains(&format!(
            r#"KERNEL=="loop*", ATTR{{loop/backing_file}}=="{image}", ATTR{{queue/scheduler}}="none""#
        )),
        "{udev}"
    );
    assert!(!udev.contains(&format!("KERNEL==\"{device}\"")), "{udev}");
    assert!(std::fs::read_to_string(&thp_unit)
        .unwrap()
        .contains("echo never > /sys/kernel/mm/transparent_hugepage/enabled"));
    check_huge_pages(&h, &sysctl);
    assert_eq!(h.cluster.starts(), 1, "one start over the whole deploy");

    // 2. The same device now says it spins: a loop device's flag is not
    // trusted, so the class is unknown and PostgreSQL's defaults return.
    // update-status notices the changed machine; nothing restarts.
    guard.set("rotational", "1");
    run_hook(&mut h, "update-status");
    assert_eq!(setting(&h, "random_page_cost"), "4");
    assert_eq!(setting(&h, "effective_io_concurrency"), "16");
    assert_eq!(read_queue(&device, "scheduler"), "mq-deadline");
    assert_eq!(
        read_queue(&device, "read_ahead_kb"),
        guard.original("read_ahead_kb")
    );
    assert_eq!(h.cluster.starts(), 1, "re-tuned without a restart");
    // And a quiet update-status changes nothing.
    let conf = h.cluster.conf_dir().join("conf.d/90-juju-charm.conf");
    let modified = std::fs::metadata(&conf).unwrap().modified().unwrap();
    run_hook(&mut h, "update-status");
    assert_eq!(
        std::fs::metadata(&conf).unwrap().modified().unwrap(),
        modified
    );

    // 3. The operator says the disks spin: HDD read-ahead on PGDATA's device.
    h.world
        .set_config("postgresql", &[("storage-type", "hdd")])
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(setting(&h, "effective_io_concurrency"), "2");
    assert_eq!(read_queue(&device, "scheduler"), "mq-deadline");
    assert_eq!(read_queue(&device, "read_ahead_kb"), "4096");
    let udev = std::fs::read_to_string(&udev_file).unwrap();
    assert!(
        udev.contains(&format!(
            r#"KERNEL=="loop*", ATTR{{loop/backing_file}}=="{image}", ATTR{{queue/scheduler}}="mq-deadline", ATTR{{queue/read_ahead_kb}}="4096""#
        )),
        "{udev}"
    );
    assert_eq!(h.cluster.starts(), 1, "re-tuned without a restart");

    // 4. The report: hardware, settings with reasons, host changes in force.
    let report = h
        .world
        .run_action("postgresql/0", "tuning-report", Default::default())
        .unwrap();
    assert_eq!(report.failed, None, "{}", report.process.output());
    let result = |key: &str| {
        report
            .results
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in {:?}", report.results))
            .to_string()
    };
    let settings = result("settings");
    let line = settings
        .lines()
        .find(|l| l.starts_with("random_page_cost = 4 "))
        .unwrap_or_else(|| panic!("{settings}"));
    assert!(
        line.contains("# PGDATA on hdd storage (storage-type)"),
        "{line}"
    );
    assert!(settings.contains("\nshared_buffers = "), "{settings}");
    let host = result("host");
    assert!(host.starts_with("host-tuning: on\n"), "{host}");
    assert!(
        host.contains(&format!(
            "{device}: scheduler mq-deadline (live mq-deadline, was {}); read_ahead_kb 4096 \
             (live 4096, was {})",
            guard.original("scheduler"),
            guard.original("read_ahead_kb")
        )),
        "{host}"
    );
    assert!(host.contains("vm.swappiness = 10 ("), "{host}");
    assert!(result("hardware").contains(&format!("top_device: {device}")));
    assert!(result("summary").starts_with(&format!("PGDATA on hdd storage ({device})")));

    // 5. host-tuning=false: the device gets its own values back and the
    // charm's files are gone; PostgreSQL keeps serving without a restart.
    h.world
        .set_config("postgresql", &[("host-tuning", "false")])
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    assert_eq!(
        read_queue(&device, "scheduler"),
        guard.original("scheduler")
    );
    assert_eq!(
        read_queue(&device, "read_ahead_kb"),
        guard.original("read_ahead_kb")
    );
    for file in [&sysctl_file, &udev_file, &thp_unit, &originals] {
        assert!(!file.exists(), "{} left behind", file.display());
    }
    assert_eq!(setting(&h, "random_page_cost"), "4");
    assert_eq!(h.cluster.starts(), 1);
    let report = h
        .world
        .run_action("postgresql/0", "tuning-report", Default::default())
        .unwrap();
    let host = report.results["host"].as_str().unwrap().to_string();
    assert!(host.starts_with("host-tuning: off"), "{host}");

    // Nothing else on the machine changed: no global knob, no other device.
    drop(guard);
    assert_eq!(global_snapshot(), globals);
    let after = block_snapshot();
    for (key, values) in &blocks {
        if let Some(now) = after.get(key) {
            assert_eq!(now, values, "{key:?} changed");
        }
    }
}

/// With shared_buffers of 2GB the charm sizes the pool with the server's
/// own `shared_memory_size_in_huge_pages` and renders it (on top of any
/// pages already reserved on this machine); nothing is reserved in test
/// mode, so none of the pool is the charm's and `huge_pages` stays `try`,
/// whatever this machine has reserved for others.
fn check_huge_pages(h: &Harness, sysctl: &str) {
    let shared_buffers_mb: u64 = h
        .cluster
        .psql("SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shared_buffers_mb, 2048, "memory-limit 8G gives 2GB");
    let reserved_by_others: u64 = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let needed: u64 = h
        .cluster
        .psql("SHOW shared_memory_size_in_huge_pages")
        .unwrap()
        .parse()
        .unwrap();
    let reserve = needed + needed.div_ceil(50) + reserved_by_others;
    assert!(
        sysctl.contains(&format!("\nvm.nr_hugepages = {reserve}\n")),
        "{needed} pages needed: {sysctl}"
    );
    assert_eq!(h.cluster.psql("SHOW huge_pages").unwrap(), "try");
}
