//! Emulated machines: what a unit gets when it is deployed "to a machine"
//! instead of onto the test host itself.
//!
//! A machine is a set of namespaces on the test host: its own network
//! namespace with one address on the world's bridge ([`net`]), and its own
//! mount, pid, UTS and IPC namespaces held by its init ([`init`]). Its
//! hooks, and everything they start (PostgreSQL, Patroni, etcd, a watcher),
//! run inside, so three machines can each bind 5432 on their own address,
//! keep their own `/etc/postgresql`, `/run` and `/tmp`, and tune their own
//! `/proc/sys/vm` ([`plan`] says what is private and how).
//!
//! The operator can crash a machine (SIGKILL to its init: the kernel kills
//! every process in it at once), restart it (a fresh boot: new `/run`,
//! `/tmp`, `/proc`; the disk survives), and cut or restore its link.
//! Everything is removed by its own name when the machine is dropped.

pub mod init;
pub mod net;
pub mod plan;

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

use net::{Attachment, Bridge};
use plan::{boot_plan, MachineDirs, StorageMount, JUJU_DATA_DIR, KERNEL_VIEWS};

use crate::runner::AGENT_PATH;

/// What a machine is like, as far as the charm can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    /// `MemTotal` in the machine's `/proc/meminfo`, in MiB.
    pub memory_mib: u64,
    /// Huge pages (2 MiB) the machine's kernel holds: `HugePages_Total` and
    /// `HugePages_Free` in its `/proc/meminfo`, and its `vm.nr_hugepages`
    /// at boot. Writing `vm.nr_hugepages` on the machine changes only the
    /// file: it reserves nothing.
    pub huge_pages: u64,
    /// Directories private to this machine besides [`plan::PRIVATE_PATHS`].
    pub private_paths: Vec<PathBuf>,
}

impl Default for MachineSpec {
    fn default() -> Self {
        Self {
            memory_mib: 4096,
            huge_pages: 0,
            private_paths: Vec::new(),
        }
    }
}

/// The running init of a booted machine.
#[derive(Debug)]
struct Init {
    /// `unshare`, which waits for the init in the host's pid namespace.
    holder: Child,
    /// The init's pid on the test host.
    pid: i32,
    /// `pid:[inode]` of the machine's pid namespace.
    pid_ns: String,
}

/// One emulated machine. See the module documentation.
#[derive(Debug)]
pub struct Machine {
    pub id: String,
    pub hostname: String,
    /// Declared before `link` so that, dropped first, it empties the
    /// namespace before the link and the namespace go.
    init: Option<Init>,
    link: Attachment,
    dirs: MachineDirs,
    spec: MachineSpec,
    /// Host paths the machine sees as they are (the world's directory).
    shared: Vec<PathBuf>,
    storage: Vec<StorageMount>,
    partitioned: bool,
    tool_binary: PathBuf,
}

/// The MAC address of machine `id`'s `eth0` (Juju's LXD-style prefix).
pub(crate) fn mac_address(id: u32) -> String {
    format!(
        "00:16:3e:{:02x}:{:02x}:{:02x}",
        (id >> 16) & 0xff,
        (id >> 8) & 0xff,
        id & 0xff
    )
}

impl Machine {
    /// A new machine `id` on `bridge`, with its directories under `dir`, not
    /// booted yet. `shared` are host paths it sees as they are; `tool_binary`
    /// is the emulator binary (its init and, in the machine, its hook tools).
    pub(crate) fn create(
        id: u32,
        bridge: &mut Bridge,
        dir: &Path,
        spec: MachineSpec,
        shared: Vec<PathBuf>,
        tool_binary: &Path,
    ) -> Result<Self> {
        for path in &shared {
            if plan::LAYERED_PATHS
                .iter()
                .any(|layered| path.starts_with(layered))
            {
                bail!(
                    "{} cannot be shared with machines: it is below a layered directory ({})",
                    path.display(),
                    plan::LAYERED_PATHS.join(", ")
                );
            }
        }
        let address = bridge.lease()?;
        let link = Attachment::new(&net::unique_name("jm"), bridge, address, &mac_address(id))?;
        let machine = Self {
            id: id.to_string(),
            hostname: format!("juju-machine-{id}"),
            init: None,
            link,
            dirs: MachineDirs {
                root: dir.to_path_buf(),
            },
            spec,
            shared,
            storage: Vec::new(),
            partitioned: false,
            tool_binary: tool_binary.to_path_buf(),
        };
        machine.prepare_disk()?;
        Ok(machine)
    }

    /// The machine's address on the world's bridge.
    pub fn address(&self) -> Ipv4Addr {
        self.link.address
    }

    /// Its network namespace (for `ip netns exec`).
    pub fn netns(&self) -> &str {
        &self.link.netns
    }

    /// The host end of its link, on the world's bridge.
    pub fn host_link(&self) -> &str {
        &self.link.host_if
    }

    pub fn spec(&self) -> &MachineSpec {
        &self.spec
    }

    pub fn is_up(&self) -> bool {
        self.init.is_some()
    }

    pub fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    /// Up and connected: its agent can run hooks.
    pub fn is_reachable(&self) -> bool {
        self.is_up() && !self.partitioned
    }

    /// The init's pid on the test host, while the machine is up.
    pub fn init_pid(&self) -> Option<i32> {
        self.init.as_ref().map(|i| i.pid)
    }

    /// Where the machine's `path` is on the test host, for the directories
    /// it keeps on its disk (the private paths, `/var/lib/juju`).
    pub fn host_path(&self, path: &Path) -> Option<PathBuf> {
        let private = plan::PRIVATE_PATHS
            .iter()
            .map(PathBuf::from)
            .chain([PathBuf::from(JUJU_DATA_DIR)])
            .chain(self.spec.private_paths.iter().cloned());
        for root in private {
            if let Ok(rest) = path.strip_prefix(&root) {
                return Some(self.dirs.private(&root).join(rest));
            }
        }
        None
    }

    /// `/var/lib/juju` of the machine, on the test host.
    pub(crate) fn juju_data(&self) -> PathBuf {
        self.dirs.juju_data()
    }

    /// A command that runs `program` inside the machine (all its
    /// namespaces), in its `/`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Result<Command> {
        let pid = self
            .init_pid()
            .ok_or_else(|| anyhow!("machine {} is down", self.id))?;
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(pid.to_string())
            // Without --wd the process starts in the machine's root.
            .args(["--mount", "--net", "--pid", "--uts", "--ipc", "--"])
            .arg(program);
        Ok(cmd)
    }

    /// Runs `program args` inside the machine and waits for it.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        self.command(program)?
            .args(args)
            .output()
            .with_context(|| format!("running {program} on machine {}", self.id))
    }

    /// Pids (on the test host) of every process in the machine, its init included.
    pub fn processes(&self) -> Vec<i32> {
        match &self.init {
            Some(init) => processes_in(&init.pid_ns),
            None => Vec::new(),
        }
    }

    fn prepare_disk(&self) -> Result<()> {
        let plan = self.boot_plan();
        for layer in &plan.layers {
            fs::create_dir_all(&layer.upper)?;
            fs::create_dir_all(&layer.work)?;
        }
        for bind in &plan.private {
            if bind.source.exists() {
                continue;
            }
            fs::create_dir_all(&bind.source)
                .with_context(|| format!("creating {}", bind.source.display()))?;
            // A new machine's directory looks like a fresh install's: owner
            // and mode as the host's packages made them.
            if let Ok(meta) = fs::metadata(&bind.target) {
                std::os::unix::fs::chown(&bind.source, Some(meta.uid()), Some(meta.gid()))?;
                fs::set_permissions(
                    &bind.source,
                    fs::Permissions::from_mode(meta.mode() & 0o7777),
                )?;
            }
        }
        // The hook tools, and /usr/bin/juju-exec, on the machine's own disk.
        let data = self.juju_data();
        fs::create_dir_all(data.join("agents"))?;
        fs::create_dir_all(data.join("tools"))?;
        place_binary(&self.tool_binary, &data.join("tools").join(TOOLS_BINARY))?;
        let usr_bin = self.dirs.layer(Path::new("/usr/bin")).upper;
        let exec = usr_bin.join(crate::exec::COMMAND);
        let _ = fs::remove_file(&exec);
        symlink(
            Path::new(JUJU_DATA_DIR).join("tools").join(TOOLS_BINARY),
            &exec,
        )?;
        Ok(())
    }

    fn boot_plan(&self) -> plan::BootPlan {
        boot_plan(
            &self.dirs,
            &self.hostname,
            &self.spec.private_paths,
            &self.shared,
            &self.storage,
        )
    }

    /// Records a unit's storage; it is mounted at every boot from now on
    /// (and at once, if the machine is up).
    pub(crate) fn add_storage(&mut self, mount: StorageMount) -> Result<()> {
        if self.is_up() {
            let target = mount.target.to_string_lossy().into_owned();
            let mkdir = self.run("mkdir", &["-p", &target])?;
            if !mkdir.status.success() {
                bail!("creating {target} on machine {}", self.id);
            }
            if mount.bind {
                self.bind_from_host(&mount.source, &mount.target)?;
            } else {
                let source = mount.source.to_string_lossy().into_owned();
                let out = self.run("mount", &[&source, &target])?;
                if !out.status.success() {
                    bail!(
                        "mounting {source} on {target} in machine {}: {}",
                        self.id,
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
        }
        self.storage.push(mount);
        Ok(())
    }

    /// Binds the host's `source` at `target` in the running machine, which
    /// may not see `source` at all: a detached copy of the host's mount
    /// (`open_tree`) moved into the machine's mount namespace (`move_mount`).
    fn bind_from_host(&self, source: &Path, target: &Path) -> Result<()> {
        const OPEN_TREE_CLONE: libc::c_uint = 1;
        const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
        let pid = self
            .init_pid()
            .ok_or_else(|| anyhow!("machine {} is down", self.id))?;
        let source_c = std::ffi::CString::new(source.as_os_str().as_encoded_bytes())?;
        // SAFETY: open_tree(2) with a NUL-terminated path; the result is a
        // new descriptor we own, or -1.
        let tree = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                source_c.as_ptr(),
                OPEN_TREE_CLONE
                    | libc::O_CLOEXEC as libc::c_uint
                    | libc::AT_RECURSIVE as libc::c_uint,
            )
        };
        if tree < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("open_tree {}", source.display()));
        }
        // SAFETY: a descriptor open_tree just returned to us.
        let tree =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(tree as i32) };
        let ns = fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
        let (tree_fd, ns_fd) = (
            std::os::fd::AsRawFd::as_raw_fd(&tree),
            std::os::fd::AsRawFd::as_raw_fd(&ns),
        );
        let target_c = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())?;
        let empty = std::ffi::CString::new("")?;
        let mut cmd = Command::new("/bin/true");
        // SAFETY: only async-signal-safe system calls between fork and exec,
        // on descriptors and strings made before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns_fd, libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let rc = libc::syscall(
                    libc::SYS_move_mount,
                    tree_fd,
                    empty.as_ptr(),
                    libc::AT_FDCWD,
                    target_c.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                );
                if rc != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let status = cmd.status().with_context(|| {
            format!(
                "binding {} at {} in machine {}",
                source.display(),
                target.display(),
                self.id
            )
        })?;
        if !status.success() {
            bail!(
                "binding {} in machine {}: {status}",
                source.display(),
                self.id
            );
        }
        Ok(())
    }

    /// Unmounts and forgets the storage at `target`.
    pub(crate) fn remove_storage(&mut self, target: &Path) -> Result<()> {
        if self.is_up() {
            let _ = self.run("umount", &[&target.to_string_lossy()]);
        }
        self.storage.retain(|m| m.target != target);
        Ok(())
    }

    /// Boots the machine: fresh kernel views, then its init, which mounts
    /// everything and says `ready`.
    pub(crate) fn boot(&mut self) -> Result<()> {
        if self.is_up() {
            bail!("machine {} is already up", self.id);
        }
        self.write_kernel_views()?;
        let plan = self.boot_plan();
        let plan_file = self.dirs.boot_plan_file();
        fs::write(&plan_file, serde_json::to_vec_pretty(&plan)?)?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dirs.init_log())?;
        let mut holder = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.link.netns))
            .args([
                "--", "unshare", "--mount", "--pid", "--uts", "--ipc", "--fork",
            ])
            .args(["--propagation", "private", "--"])
            .arg(&self.tool_binary)
            .arg(init::SUBCOMMAND)
            .arg(&plan_file)
            .env_clear()
            .env("PATH", AGENT_PATH)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the machine's init (nsenter, unshare)")?;
        let stdout = holder.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let pid = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse::<i32>().ok());
        let Some(pid) = pid else {
            let _ = holder.kill();
            let _ = holder.wait();
            let log = fs::read_to_string(self.dirs.init_log()).unwrap_or_default();
            bail!(
                "machine {} did not boot: {}",
                self.id,
                log.lines().last().unwrap_or("no output")
            );
        };
        let pid_ns = fs::read_link(format!("/proc/{pid}/ns/pid"))
            .context("reading the machine's pid namespace")?
            .to_string_lossy()
            .into_owned();
        self.init = Some(Init {
            holder,
            pid,
            pid_ns,
        });
        Ok(())
    }

    /// Kills every process on the machine at once (SIGKILL to its init) and
    /// waits until they are all gone. A no-op when it is down.
    pub(crate) fn crash(&mut self) -> Result<()> {
        let Some(mut init) = self.init.take() else {
            return Ok(());
        };
        // While its holder runs, the init's pid is the init's (alive, or a
        // zombie the holder has not reaped): safe to signal.
        if init.holder.try_wait()?.is_none() {
            // SAFETY: kill(2) on the init we started.
            unsafe {
                libc::kill(init.pid, libc::SIGKILL);
            }
        }
        let _ = init.holder.wait();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !processes_in(&init.pid_ns).is_empty() {
            if Instant::now() > deadline {
                bail!(
                    "processes of machine {} outlived its init: {:?}",
                    self.id,
                    processes_in(&init.pid_ns)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Notices a machine whose init died behind our back (a scheduled
    /// crash): `true` when it has just gone down, with its processes gone.
    pub(crate) fn refresh(&mut self) -> Result<bool> {
        let died = match &mut self.init {
            Some(init) => init.holder.try_wait()?.is_some() || exiting(init.pid),
            None => false,
        };
        if died {
            self.crash()?;
        }
        Ok(died)
    }

    /// Kills every process on the machine at once `after` from now, whatever
    /// the World is doing then (a hook may be running on it).
    pub(crate) fn schedule_crash(&self, after: Duration) -> Result<()> {
        let pid = self
            .init_pid()
            .ok_or_else(|| anyhow!("machine {} is down", self.id))?;
        // A pidfd: the signal reaches this init, never a process that
        // reused its pid.
        // SAFETY: pidfd_open(2) on a pid; the result is ours, or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("pidfd_open");
        }
        // SAFETY: a descriptor pidfd_open just returned to us.
        let fd =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        std::thread::spawn(move || {
            std::thread::sleep(after);
            // SAFETY: pidfd_send_signal(2) on our descriptor, no siginfo.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            }
        });
        Ok(())
    }

    /// A clean shutdown: SIGTERM to every process but the init, up to
    /// `grace` for them to exit, then [`Machine::crash`] for the rest.
    pub(crate) fn shutdown(&mut self, grace: Duration) -> Result<()> {
        let Some(init) = &self.init else {
            return Ok(());
        };
        let init_pid = init.pid;
        let others = |m: &Self| -> Vec<i32> {
            m.processes()
                .into_iter()
                .filter(|p| *p != init_pid)
                .collect()
        };
        for pid in others(self) {
            // SAFETY: kill(2) on a process of this machine.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        while !others(self).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.crash()
    }

    /// Takes the machine's link down (a partition) or up again.
    pub(crate) fn set_partitioned(&mut self, partitioned: bool) -> Result<()> {
        self.link.set_link(!partitioned)?;
        if !partitioned {
            self.link.forget_neighbours();
        }
        self.partitioned = partitioned;
        Ok(())
    }

    /// Forgets what this machine learnt about the neighbour at `address`.
    pub(crate) fn forget_neighbour(&self, address: Ipv4Addr) {
        self.link.forget_neighbour(address);
    }

    /// The machine's `/proc/meminfo`, `/proc/sys/vm` and THP directory,
    /// made from the host's at every boot (as after a reboot, the charm's
    /// live changes are gone).
    fn write_kernel_views(&self) -> Result<()> {
        let kernel = self.dirs.root.join("kernel");
        if kernel.exists() {
            fs::remove_dir_all(&kernel)?;
        }
        for view in KERNEL_VIEWS {
            let host = Path::new(view);
            let copy = self.dirs.kernel_view(host);
            if *view == "/proc/meminfo" {
                fs::create_dir_all(copy.parent().expect("a parent"))?;
                let text = fs::read_to_string(host).unwrap_or_default();
                fs::write(&copy, machine_meminfo(&text, &self.spec))?;
            } else if host.is_dir() {
                copy_tree(host, &copy)?;
            }
        }
        let nr = self
            .dirs
            .kernel_view(Path::new("/proc/sys/vm/nr_hugepages"));
        if nr.exists() {
            fs::write(nr, format!("{}\n", self.spec.huge_pages))?;
        }
        Ok(())
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.crash();
    }
}

/// File name of the emulator binary in a tools directory.
pub(crate) const TOOLS_BINARY: &str = "jujuc";

/// The emulator binary at `dest`: a hard link, or a copy across devices.
pub(crate) fn place_binary(binary: &Path, dest: &Path) -> Result<()> {
    let _ = fs::remove_file(dest);
    if fs::hard_link(binary, dest).is_err() {
        fs::copy(binary, dest)
            .with_context(|| format!("copying {} to {}", binary.display(), dest.display()))?;
    }
    Ok(())
}

/// Whether process `pid` is gone or on its way out (PF_EXITING): a killed
/// init stays in the kernel until every process of its namespace is reaped.
fn exiting(pid: i32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // After the command name in parentheses: state, ppid, pgrp, session,
    // tty, tpgid, flags.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let zombie = matches!(fields.first(), Some(&"Z" | &"X"));
    let flags: u64 = fields.get(6).and_then(|f| f.parse().ok()).unwrap_or(0);
    zombie || flags & PF_EXITING != 0
}

/// `pid:[inode]` of every process in the pid namespace `pid_ns`.
fn processes_in(pid_ns: &str) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/ns/pid"))
                .is_ok_and(|ns| ns.to_string_lossy() == pid_ns)
        })
        .collect()
}

/// The host's `/proc/meminfo` as a machine of `spec` reports it: its own
/// total and huge pages; free and available memory no more than the total.
fn machine_meminfo(host: &str, spec: &MachineSpec) -> String {
    let total_kib = spec.memory_mib * 1024;
    let mut out = String::new();
    for line in host.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let value: Option<u64> = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        let replaced = match (key, value) {
            ("MemTotal", _) => Some(total_kib),
            ("MemFree" | "MemAvailable", Some(v)) => Some(v.min(total_kib)),
            ("HugePages_Total" | "HugePages_Free", _) => Some(spec.huge_pages),
            ("HugePages_Rsvd" | "HugePages_Surp", _) => Some(0),
            _ => None,
        };
        match replaced {
            Some(v) => {
                let unit = if rest.trim_end().ends_with("kB") {
                    " kB"
                } else {
                    ""
                };
                // The kernel right-aligns values to column 24.
                let width = 24usize.saturating_sub(key.len() + 1).max(1);
                out.push_str(&format!("{key}:{v:>width$}{unit}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Copies the regular files below `from` (procfs or sysfs) to `to`, with
/// their contents as read now; unreadable (write-only) files become empty.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            let content = fs::read(entry.path()).unwrap_or_default();
            fs::write(&dest, content)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_reports_the_machines_memory_and_huge_pages() {
        let host = "MemTotal:       24684084 kB\nMemFree:        20000000 kB\nMemAvailable:    1000000 kB\nBuffers:          123 kB\nHugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n";
        let spec = MachineSpec {
            memory_mib: 2048,
            huge_pages: 300,
            ..Default::default()
        };
        let text = machine_meminfo(host, &spec);
        let field = |k: &str| -> String {
            text.lines()
                .find(|l| l.starts_with(&format!("{k}:")))
                .unwrap()
                .to_string()
        };
        assert_eq!(field("MemTotal"), "MemTotal:        2097152 kB");
        assert_eq!(
            field("MemFree"),
            "MemFree:         2097152 kB",
            "capped at the total"
        );
        assert_eq!(
            field("MemAvailable"),
            "MemAvailable:    1000000 kB",
            "kept when below"
        );
        assert_eq!(field("HugePages_Total"), "HugePages_Total:     300");
        assert_eq!(field("HugePages_Free"), "HugePages_Free:      300");
        assert_eq!(field("Buffers"), "Buffers:          123 kB");
        assert_eq!(field("Hugepagesize"), "Hugepagesize:       2048 kB");
    }

    #[test]
    fn mac_addresses_stay_valid_past_255_machines() {
        assert_eq!(mac_address(5), "00:16:3e:00:00:05");
        assert_eq!(mac_address(300), "00:16:3e:00:01:2c");
    }
}
