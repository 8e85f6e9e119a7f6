//! Emulated machines (crate::machine): each unit on its own network, mount,
//! pid, UTS and IPC namespaces; crash, restart, partition and heal; and
//! `juju-exec` from processes on a machine. Needs root (namespaces, veths,
//! a bridge); everything is removed by name when the World drops.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::{alive, Scratch};
use juju_emulator::machine::MachineSpec;
use juju_emulator::{DeployOptions, World};

/// A charm whose `start` runs a detached TCP server on the unit's address,
/// port 5432, answering with the unit name and the machine's hostname; its
/// `install` leaves marks in the machine's private and fresh directories.
const DISPATCH: &str = r#"#!/bin/sh
hook="${JUJU_DISPATCH_PATH#hooks/}"
if [ "$hook" = config-changed ] && [ "$(config-get mode)" = reboot ] && [ ! -e /var/lib/juju-pg-charm/rebooted ]; then
  touch /var/lib/juju-pg-charm/rebooted; juju-reboot
fi
if [ "$hook" = config-changed ] && [ "$(config-get mode)" = slow ] && [ ! -e /var/lib/juju-pg-charm/slow-once ]; then
  touch /var/lib/juju-pg-charm/slow-once; status-set maintenance "slowly"; sleep 5
fi
echo "$hook" >> /var/lib/juju-pg-charm/hooks-seen
env | sort > "$CHARM_DIR/../env.$hook"
case "$hook" in
  data-storage-attached)
    echo "$JUJU_STORAGE_LOCATION $(cat "$JUJU_STORAGE_LOCATION/label" 2>/dev/null)" > /var/lib/juju-pg-charm/storage-seen ;;
  install)
    mkdir -p /etc/postgresql && echo "$JUJU_UNIT_NAME" > /etc/postgresql/owner
    echo "$JUJU_UNIT_NAME" > /run/booted-by
    echo "$JUJU_UNIT_NAME" > /tmp/scratch-of ;;
  start)
    addr=$(unit-get private-address)
    setsid python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5432)); s.listen(8)
open("/run/server.pid", "w").write(str(__import__("os").getpid()))
while True:
    c, _ = s.accept(); c.sendall((sys.argv[2] + " " + socket.gethostname() + "\n").encode()); c.close()
' "$addr" "$JUJU_UNIT_NAME" </dev/null >/dev/null 2>&1 &
    for i in $(seq 50); do [ -s /run/server.pid ] && break; sleep 0.1; done ;;
esac
status-set active "ran $hook"
"#;

fn write_charm(dir: &Path) -> PathBuf {
    common::write_charm(
        dir,
        "charm",
        "srv",
        "peers:\n  cluster:\n    interface: srv-peer\nstorage:\n  data:\n    type: filesystem\n    location: /srv/data\n",
        DISPATCH,
    )
}

/// A World in a scratch directory with `units` units, each on a machine.
fn machines(name: &str, units: u32) -> (Scratch, World) {
    let s = Scratch::new("machines", name);
    let mut world = World::new(&s.0.join("world")).unwrap();
    deploy(&mut world, &s, units);
    (s, world)
}

fn deploy(world: &mut World, scratch: &Scratch, units: u32) {
    world.add_model("db");
    let charm = write_charm(&scratch.0);
    world
        .deploy(
            "db",
            "srv",
            &charm,
            DeployOptions {
                units,
                machine: Some(MachineSpec {
                    memory_mib: 2048,
                    huge_pages: 16,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
}

/// What the server on `address:5432` says, or `None` if nothing answers.
fn ask(address: Ipv4Addr) -> Option<String> {
    let target = SocketAddr::from((address, 5432));
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut stream, &mut reply).ok()?;
    Some(reply.trim().to_string())
}

fn read_in(world: &World, unit: &str, path: &str) -> String {
    let out = world.machine_of(unit).unwrap().run("cat", &[path]).unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn two_machines_serve_the_same_port_each_on_its_own_address() {
    let (_s, world) = machines("ports", 2);
    let a = world.machine_of("srv/0").unwrap().address();
    let b = world.machine_of("srv/1").unwrap().address();
    assert_ne!(a, b);
    assert_eq!(world.unit("srv/0").unwrap().private_address, a.to_string());
    assert_eq!(ask(a).unwrap(), "srv/0 juju-machine-0");
    assert_eq!(ask(b).unwrap(), "srv/1 juju-machine-1");
    let hooks: BTreeMap<String, String> = ["srv/0", "srv/1"]
        .iter()
        .map(|u| {
            (
                u.to_string(),
                read_in(&world, u, "/var/lib/juju-pg-charm/hooks-seen"),
            )
        })
        .collect();
    assert!(
        hooks["srv/0"].starts_with("install\ncluster-relation-created\nleader-elected"),
        "{hooks:?}"
    );
    // The hook environment on a machine is Juju's, with the machine's paths.
    let env = read_env(&world, "srv/0", "install");
    assert_eq!(env["CHARM_DIR"], "/var/lib/juju/agents/unit-srv-0/charm");
    assert_eq!(
        env["JUJU_AGENT_SOCKET_ADDRESS"],
        "/var/lib/juju/agents/unit-srv-0/agent.socket"
    );
    assert!(env["PATH"].starts_with("/var/lib/juju/tools/unit-srv-0:"));
    assert_eq!(env["JUJU_MACHINE_ID"], "0");
    // Exactly Juju's variables (§2); PWD is the charm's own /bin/sh's.
    let keys: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "APT_LISTCHANGES_FRONTEND",
            "CHARM_DIR",
            "CLOUD_API_VERSION",
            "DEBIAN_FRONTEND",
            "JUJU_AGENT_SOCKET_ADDRESS",
            "JUJU_AGENT_SOCKET_NETWORK",
            "JUJU_API_ADDRESSES",
            "JUJU_AVAILABILITY_ZONE",
            "JUJU_CHARM_DIR",
            "JUJU_CHARM_FTP_PROXY",
            "JUJU_CHARM_HTTPS_PROXY",
            "JUJU_CHARM_HTTP_PROXY",
            "JUJU_CHARM_NO_PROXY",
            "JUJU_CONTEXT_ID",
            "JUJU_DISPATCH_PATH",
            "JUJU_HOOK_NAME",
            "JUJU_MACHINE_ID",
            "JUJU_MODEL_NAME",
            "JUJU_MODEL_UUID",
            "JUJU_PRINCIPAL_UNIT",
            "JUJU_SLA",
            "JUJU_UNIT_NAME",
            "JUJU_VERSION",
            "LANG",
            "PATH",
            "PWD",
            "TERM",
        ]
    );
}

fn read_env(world: &World, unit: &str, hook: &str) -> BTreeMap<String, String> {
    let path = world
        .unit(unit)
        .unwrap()
        .agent_dir
        .join(format!("env.{hook}"));
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn sh_in(world: &World, unit: &str, script: &str) -> (bool, String) {
    let out = world
        .machine_of(unit)
        .unwrap()
        .run("sh", &["-c", script])
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn mounts_and_kernel_views_are_private_to_each_machine() {
    let (_s, world) = machines("private", 2);
    for (unit, other) in [("srv/0", "srv/1"), ("srv/1", "srv/0")] {
        assert_eq!(read_in(&world, unit, "/etc/postgresql/owner"), unit);
        assert_eq!(read_in(&world, unit, "/run/booted-by"), unit);
        assert_eq!(read_in(&world, unit, "/tmp/scratch-of"), unit);
        assert_ne!(read_in(&world, unit, "/etc/postgresql/owner"), other);
    }
    // Nothing of it on the test host.
    for path in [
        "/etc/postgresql/owner",
        "/run/booted-by",
        "/tmp/scratch-of",
        "/var/lib/juju-pg-charm/hooks-seen",
    ] {
        assert!(!Path::new(path).exists(), "{path} leaked onto the host");
    }
    // The machine's disk is reachable from the host for inspection.
    let m0 = world.machine_of("srv/0").unwrap();
    let owner = m0.host_path(Path::new("/etc/postgresql/owner")).unwrap();
    assert_eq!(std::fs::read_to_string(owner).unwrap().trim(), "srv/0");
    // Writes below /etc (a copy-on-write layer) stay on the machine.
    assert!(sh_in(&world, "srv/0", "echo x > /etc/jemu-layer-probe").0);
    assert_eq!(sh_in(&world, "srv/0", "cat /etc/jemu-layer-probe").1, "x");
    assert!(!sh_in(&world, "srv/1", "cat /etc/jemu-layer-probe").0);
    assert!(!Path::new("/etc/jemu-layer-probe").exists());
    // Each machine has its own memory size and huge pages.
    let meminfo = read_in(&world, "srv/0", "/proc/meminfo");
    // In the kernel's layout: the value right-aligned to column 24.
    assert!(
        meminfo.contains("\nMemTotal:        2097152 kB\n")
            || meminfo.starts_with("MemTotal:        2097152 kB\n"),
        "{meminfo}"
    );
    assert!(
        meminfo.contains("\nHugePages_Total:      16\n"),
        "{meminfo}"
    );
    assert_eq!(read_in(&world, "srv/1", "/proc/sys/vm/nr_hugepages"), "16");
    // ... and its own sysctls and THP setting: a write changes only it.
    let host_swappiness = std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap();
    let host_thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap();
    assert!(sh_in(&world, "srv/0", "echo 7 > /proc/sys/vm/swappiness && echo never > /sys/kernel/mm/transparent_hugepage/enabled").0);
    assert_eq!(read_in(&world, "srv/0", "/proc/sys/vm/swappiness"), "7");
    assert_eq!(
        read_in(
            &world,
            "srv/0",
            "/sys/kernel/mm/transparent_hugepage/enabled"
        ),
        "never"
    );
    assert_eq!(
        read_in(&world, "srv/1", "/proc/sys/vm/swappiness"),
        host_swappiness.trim()
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap(),
        host_swappiness
    );
    assert_eq!(
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap(),
        host_thp
    );
    // Its own processes: the init, the charm's server, and this ps.
    let (_, ps) = sh_in(&world, "srv/0", "ps -e -o pid=,comm=");
    let comms: Vec<&str> = ps
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(comms.len(), 4, "{ps}");
    assert!(comms.contains(&"python3") && comms.contains(&"ps"), "{ps}");
    assert!(
        ps.lines().any(|l| l.trim().starts_with("1 ")),
        "its own pid 1: {ps}"
    );
}

#[test]
fn a_crash_kills_every_process_at_once_and_a_restart_boots_afresh() {
    let (_s, mut world) = machines("crash", 2);
    let address = world.machine_of("srv/0").unwrap().address();
    let before = world.machine_of("srv/0").unwrap().processes();
    assert!(before.len() >= 2, "the init and the server: {before:?}");
    assert!(ask(address).is_some());

    world.crash_machine("0").unwrap();
    let machine = world.machine("0").unwrap();
    assert!(!machine.is_up());
    assert!(machine.processes().is_empty());
    assert!(
        before.iter().all(|pid| !alive(*pid)),
        "every process is gone"
    );
    assert_eq!(ask(address), None, "nothing answers");
    assert!(
        machine.run("true", &[]).is_err(),
        "a crashed machine runs nothing"
    );

    // Its hooks wait; the other machine's run.
    world.set_config("srv", &[("mode", "other")]).unwrap();
    world.settle().unwrap();
    assert_eq!(world.hook_names("srv/1").last().unwrap(), "config-changed");
    assert_ne!(world.hook_names("srv/0").last().unwrap(), "config-changed");
    assert!(world
        .queue()
        .any(|i| i.unit == "srv/0" && i.hook == "config-changed"));

    // A restart: fresh /run and /tmp, the same disk, and Juju's `start`
    // before what waited.
    world.restart_machine("0").unwrap();
    world.settle().unwrap();
    let tail: Vec<String> = world
        .hook_names("srv/0")
        .into_iter()
        .rev()
        .take(2)
        .collect();
    assert_eq!(tail, ["config-changed", "start"]);
    assert_eq!(read_in(&world, "srv/0", "/run/booted-by"), "");
    assert_eq!(read_in(&world, "srv/0", "/tmp/scratch-of"), "");
    assert_eq!(read_in(&world, "srv/0", "/etc/postgresql/owner"), "srv/0");
    assert_eq!(
        ask(address).unwrap(),
        "srv/0 juju-machine-0",
        "start brought it back"
    );
    assert_eq!(
        world.unit("srv/0").unwrap().status.message,
        "ran config-changed"
    );
}

#[test]
fn a_leader_whose_machine_is_gone_loses_its_lease_to_a_reachable_unit() {
    let (_s, mut world) = machines("lease", 3);
    let lease = Duration::from_secs(3);
    world.set_leadership_lease(lease);
    assert_eq!(world.app("srv").unwrap().leader.as_deref(), Some("srv/0"));
    world.crash_machine("0").unwrap();
    // Before the lease runs out nothing changes; a settle alone (no time
    // passing in the agent loop) elects nobody.
    world.settle().unwrap();
    assert_eq!(world.app("srv").unwrap().leader.as_deref(), Some("srv/0"));
    let crashed_at = std::time::Instant::now();
    world
        .run_until(Duration::from_secs(30), |w| {
            w.app("srv").unwrap().leader.as_deref() != Some("srv/0")
        })
        .unwrap();
    assert!(crashed_at.elapsed() >= lease - Duration::from_millis(200));
    let leader = world.app("srv").unwrap().leader.clone().unwrap();
    assert_ne!(leader, "srv/0");
    world.settle().unwrap();
    assert_eq!(world.hook_names(&leader).last().unwrap(), "leader-elected");
    let other = if leader == "srv/1" { "srv/2" } else { "srv/1" };
    assert_eq!(
        world.hook_names(other).last().unwrap(),
        "leader-settings-changed"
    );
    // The old leader learns it on its return.
    world.restart_machine("0").unwrap();
    world.settle().unwrap();
    let names = world.hook_names("srv/0");
    assert!(
        names
            .iter()
            .rev()
            .take(3)
            .any(|h| h == "leader-settings-changed"),
        "{names:?}"
    );
    assert_eq!(
        world.app("srv").unwrap().leader.as_deref(),
        Some(leader.as_str())
    );
}

#[test]
fn a_partition_cuts_the_machine_off_and_a_heal_brings_it_back() {
    let (_s, mut world) = machines("partition", 2);
    let a = world.machine_of("srv/0").unwrap().address();
    let b = world.machine_of("srv/1").unwrap().address();
    let from_b = |world: &World| {
        sh_in(
            world,
            "srv/1",
            &format!("python3 -c 'import socket; s=socket.create_connection((\"{a}\", 5432), 1); print(s.recv(100).decode().strip())'"),
        )
    };
    assert_eq!(
        from_b(&world).1,
        "srv/0 juju-machine-0",
        "machines reach each other"
    );

    world.partition_machine("0").unwrap();
    assert_eq!(ask(a), None, "the host cannot reach it");
    assert!(!from_b(&world).0, "nor can the other machine");
    assert_eq!(
        ask(b).unwrap(),
        "srv/1 juju-machine-1",
        "the rest still works"
    );
    let machine = world.machine("0").unwrap();
    assert!(machine.is_up() && machine.is_partitioned());
    assert!(machine.processes().len() >= 2, "its processes live on");
    world.set_config("srv", &[("mode", "cut")]).unwrap();
    world.settle().unwrap();
    assert_ne!(
        world.hook_names("srv/0").last().unwrap(),
        "config-changed",
        "no hook runs while cut off"
    );

    world.heal_machine("0").unwrap();
    assert_eq!(from_b(&world).1, "srv/0 juju-machine-0");
    assert_eq!(ask(a).unwrap(), "srv/0 juju-machine-0");
    world.settle().unwrap();
    assert_eq!(world.hook_names("srv/0").last().unwrap(), "config-changed");
}

#[test]
fn everything_is_removed_by_name_even_when_a_test_panics() {
    let s = Scratch::new("machines", "panic");
    let names = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut world = World::new(&s.0.join("world")).unwrap();
        deploy(&mut world, &s, 1);
        let bridge = world.machine_network().unwrap().name.clone();
        let machine = world.machine_of("srv/0").unwrap();
        *names.lock().unwrap() = Some((
            machine.netns().to_string(),
            machine.processes(),
            [bridge, machine.host_link().to_string()],
        ));
        panic!("the test fails here");
    }));
    assert!(result.is_err());
    let (netns, pids, links) = names.lock().unwrap().take().unwrap();
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&netns),
        "{netns} left behind"
    );
    assert!(
        pids.len() >= 2 && pids.iter().all(|pid| !alive(*pid)),
        "processes left behind"
    );
    for link in links {
        let shown = std::process::Command::new("ip")
            .args(["link", "show", &link])
            .output()
            .unwrap();
        assert!(!shown.status.success(), "{link} left behind");
    }
}

#[test]
fn removing_the_last_unit_destroys_its_machine() {
    let (_s, mut world) = machines("remove", 2);
    let machine = world.machine_of("srv/1").unwrap();
    let (netns, pids) = (machine.netns().to_string(), machine.processes());
    world.remove_unit("srv/1").unwrap();
    assert!(world.machine("1").is_err(), "gone with its unit");
    assert!(pids.iter().all(|pid| !alive(*pid)));
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&netns));
    assert!(world.machine("0").unwrap().is_up(), "the other one stays");
}

#[test]
fn a_crash_during_a_hook_interrupts_it_and_the_reboot_runs_it_again() {
    let (_s, mut world) = machines("midhook", 1);
    world.set_config("srv", &[("mode", "slow")]).unwrap();
    world
        .crash_machine_after("0", Duration::from_millis(1500))
        .unwrap();
    let started = std::time::Instant::now();
    world.settle().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the hook died with its machine"
    );
    let last = world.trace().last().unwrap();
    assert_eq!(last.invocation.hook, "config-changed");
    assert_eq!(last.signal, Some(9));
    let unit = world.unit("srv/0").unwrap();
    assert!(unit.failed_hook.is_none(), "a crash is not a hook error");
    assert_eq!(unit.status.message, "slowly", "status-set had taken effect");
    assert!(!world.machine("0").unwrap().is_up());
    assert_eq!(world.queue().next().unwrap().hook, "config-changed");

    world.restart_machine("0").unwrap();
    world.settle().unwrap();
    let tail: Vec<String> = world
        .hook_names("srv/0")
        .into_iter()
        .rev()
        .take(2)
        .collect();
    assert_eq!(
        tail,
        ["start", "config-changed"],
        "the interrupted hook first, then start"
    );
    assert_eq!(world.unit("srv/0").unwrap().status.message, "ran start");
}

#[test]
fn juju_reboot_reboots_the_machine_after_the_hook() {
    let (_s, mut world) = machines("reboot", 1);
    let before = world.machine_of("srv/0").unwrap().init_pid();
    world.set_config("srv", &[("mode", "reboot")]).unwrap();
    world.settle().unwrap();
    let after = world.machine_of("srv/0").unwrap().init_pid();
    assert_ne!(before, after, "a new boot");
    let tail: Vec<String> = world
        .hook_names("srv/0")
        .into_iter()
        .rev()
        .take(2)
        .collect();
    assert_eq!(tail, ["start", "config-changed"]);
    assert_eq!(
        read_in(&world, "srv/0", "/run/booted-by"),
        "",
        "a fresh /run"
    );
}

/// A loop device with an ext4 file system labelled `label`, detached on drop.
struct Loop {
    image: PathBuf,
    device: String,
}

impl Loop {
    fn new(dir: &Path, label: &str) -> Self {
        let image = dir.join(format!("{label}.img"));
        let run = |cmd: &str, args: &[&str]| {
            let out = std::process::Command::new(cmd).args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        run("truncate", &["-s", "64M", image.to_str().unwrap()]);
        let device = run("losetup", &["--find", "--show", image.to_str().unwrap()]);
        let disk = Self { image, device };
        run("mkfs.ext4", &["-q", "-F", &disk.device]);
        disk
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.device])
            .status();
        let _ = std::fs::remove_file(&self.image);
    }
}

#[test]
fn storage_sources_are_mounted_in_the_machine_at_their_location() {
    let s = Scratch::new("machines", "storage");
    let disk = Loop::new(&s.0, "data0");
    let shared = s.0.join("shared-dir");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("label"), "from-a-directory").unwrap();
    let mut world = World::new(&s.0.join("world")).unwrap();
    world.add_model("db");
    let charm = write_charm(&s.0);
    world
        .deploy(
            "db",
            "srv",
            &charm,
            DeployOptions {
                units: 1,
                machine: Some(MachineSpec::default()),
                storage: vec![juju_emulator::StorageRequest::from_source(
                    "data",
                    Path::new(&disk.device),
                )],
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    // The block device is the machine's /srv/data, not the host's.
    let (_, mounted) = sh_in(&world, "srv/0", "findmnt -n -o SOURCE /srv/data");
    assert_eq!(mounted, disk.device);
    assert_eq!(
        read_in(&world, "srv/0", "/var/lib/juju-pg-charm/storage-seen"),
        "/srv/data"
    );
    assert!(sh_in(&world, "srv/0", "echo kept > /srv/data/label").0);
    assert!(!Path::new("/srv/data/label").exists());
    // It is mounted again at every boot.
    world.restart_machine("0").unwrap();
    world.settle().unwrap();
    assert_eq!(read_in(&world, "srv/0", "/srv/data/label"), "kept");
    // A directory of the test host can be given too.
    let id = world
        .add_storage_with(
            "srv/0",
            juju_emulator::StorageRequest {
                name: "data".into(),
                location: Some("/srv/more".into()),
                source: Some(shared.clone()),
            },
        )
        .unwrap();
    world.settle().unwrap();
    assert_eq!(
        read_in(&world, "srv/0", "/var/lib/juju-pg-charm/storage-seen"),
        "/srv/more from-a-directory"
    );
    world.detach_storage("srv/0", &id).unwrap();
    assert!(
        !sh_in(&world, "srv/0", "mountpoint -q /srv/more").0,
        "unmounted on detach"
    );
}
