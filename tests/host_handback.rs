//! The charm leaves the machine as it found it. Deployed with host tuning
//! on the real kernel and the real /etc (only the test's own loop device is
//! tuned live), it changes sysctls, transparent huge pages and the huge page
//! pool; `host-tuning=false` and then unit removal put back every one of
//! them, on top of a huge page reservation another tenant holds, and remove
//! every file it wrote. The kernel refuses `vm.dirty_bytes = 0`, so this is
//! also where restoring an original 0 is proved.
//!
//! The machine is shared with other engineers' tests: the window with
//! changed settings is a few seconds, and a guard puts the host back as it
//! was whatever happens.
//!
//! Needs root (loop devices, mounts, PostgreSQL); `scripts/test` runs it.

mod common;

use common::Harness;
use scenarios::host::{HostGuard, HostSnapshot};

fn sysctl(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/")))
        .unwrap()
        .trim()
        .to_string()
}

fn set_sysctl(key: &str, value: &str) {
    std::fs::write(format!("/proc/sys/{}", key.replace('.', "/")), value).unwrap();
}

/// Differences between two snapshots, one line each.
fn differences(before: &HostSnapshot, after: &HostSnapshot) -> Vec<String> {
    let (before, after) = (before.render(), after.render());
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    let mut out: Vec<String> = old
        .iter()
        .filter(|l| !new.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        new.iter()
            .filter(|l| !old.contains(l))
            .map(|l| format!("+ {l}")),
    );
    out
}

#[test]
fn host_tuning_off_and_removal_hand_the_host_back() {
    let before = HostSnapshot::take();
    let _guard = HostGuard(before.clone());
    // Another tenant of this machine holds huge pages already.
    let tenant_pages = sysctl("vm.nr_hugepages").parse::<u64>().unwrap() + 8;
    set_sysctl("vm.nr_hugepages", &tenant_pages.to_string());
    let with_tenant = HostSnapshot::take();
    if with_tenant.sysctls["vm.nr_hugepages"] != tenant_pages.to_string() {
        panic!("the kernel would not reserve 8 huge pages for the test's tenant");
    }

    let mut h = Harness::new("handback");
    let disk = h.disk("pgdata", 400);
    let device = h.disks[0].device.trim_start_matches("/dev/").to_string();
    // The real host: no scratch /etc, global settings allowed (an empty
    // knob is no knob); live device changes only on this test's own loop
    // device.
    h.world.set_test_env("PG_CHARM_HOST_ETC", "");
    h.world.set_test_env("PG_CHARM_HOST_GLOBAL", "");
    h.world.set_test_env("PG_CHARM_HOST_DEVICES", &device);
    // shared_buffers 2GB: the charm reserves huge pages of its own.
    h.deploy(Some(&disk), &[("memory-limit", "8G")]);
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    let tuned = HostSnapshot::take();
    assert_eq!(tuned.sysctls["vm.swappiness"], "10");
    assert_ne!(tuned.sysctls["vm.dirty_bytes"], "0");
    assert_eq!(tuned.transparent_hugepage, "never");
    let pages: u64 = tuned.sysctls["vm.nr_hugepages"].parse().unwrap();
    assert!(pages > tenant_pages, "the charm added its pages ({pages})");
    for file in [
        "/etc/sysctl.d/60-juju-pg-charm.conf",
        "/etc/udev/rules.d/69-juju-pg-charm.rules",
        "/etc/systemd/system/juju-pg-charm-thp.service",
    ] {
        assert!(std::path::Path::new(file).is_file(), "{file}");
    }

    // host-tuning=false: everything back, the tenant's pages still theirs,
    // and no setting left to retry on the next hook.
    h.world
        .set_config("postgresql", &[("host-tuning", "false")])
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    let off = HostSnapshot::take();
    assert!(
        differences(&with_tenant, &off).is_empty(),
        "host-tuning=false left: {:?}",
        differences(&with_tenant, &off)
    );
    let refused: Vec<&String> = h
        .world
        .logs()
        .iter()
        .map(|l| &l.message)
        .filter(|m| m.contains("host tuning") && m.contains("could not set"))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    let again = h.world.run_hook("postgresql/0", "config-changed").unwrap();
    assert!(again.succeeded(), "{}", again.output());
    assert!(differences(&with_tenant, &HostSnapshot::take()).is_empty());

    // On again, then the unit leaves: the same host as before it came.
    h.world
        .set_config("postgresql", &[("host-tuning", "true")])
        .unwrap();
    h.world.settle().unwrap();
    assert_eq!(HostSnapshot::take().sysctls["vm.swappiness"], "10");
    h.world.remove_unit("postgresql/0").unwrap();
    let removed = HostSnapshot::take();
    assert!(
        differences(&with_tenant, &removed).is_empty(),
        "removal left: {:?}",
        differences(&with_tenant, &removed)
    );
    assert!(
        !h.cluster.state_dir().exists(),
        "the charm's records remain"
    );
    // The data is kept, and not started at boot.
    let start_conf = h.cluster.conf_dir().join("start.conf");
    assert!(std::fs::read_to_string(start_conf)
        .unwrap()
        .lines()
        .any(|l| l == "manual"));
    assert!(!h.cluster.is_running());
}

#[test]
fn the_hosts_own_sysctl_files_win_at_boot_and_the_status_says_so() {
    let mut h = Harness::new("boot-order");
    let etc = h.scratch.0.join("host/etc");
    std::fs::create_dir_all(etc.join("sysctl.d")).unwrap();
    let local = etc.join("sysctl.d/99-local.conf");
    std::fs::write(&local, "vm.swappiness = 30\n").unwrap();
    h.deploy(None, &[]);
    let (status, message) = h.status();
    assert_eq!(status, "active", "{message}");
    assert!(
        message.contains(&format!(
            "host: vm.swappiness is left at 30 ({} sets it after the charm's file at boot",
            local.display()
        )),
        "{message}"
    );
    let ours = std::fs::read_to_string(etc.join("sysctl.d/60-juju-pg-charm.conf")).unwrap();
    assert!(!ours.contains("swappiness"), "{ours}");
    assert!(ours.contains("vm.dirty_bytes = "), "{ours}");
    // A file that sorts before the charm's loses at boot: the charm's wins.
    std::fs::rename(&local, etc.join("sysctl.d/10-local.conf")).unwrap();
    let hook = h.world.run_hook("postgresql/0", "config-changed").unwrap();
    assert!(hook.succeeded(), "{}", hook.output());
    let (_, message) = h.status();
    assert!(!message.contains("host:"), "{message}");
    let ours = std::fs::read_to_string(etc.join("sysctl.d/60-juju-pg-charm.conf")).unwrap();
    assert!(ours.contains("\nvm.swappiness = 10\n"), "{ours}");
}
