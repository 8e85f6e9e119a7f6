//! A machine's init: process 1 of the machine's pid namespace, started by
//! `Machine::boot` inside fresh mount, pid, UTS and IPC namespaces
//! (and the machine's network namespace). It applies the [`BootPlan`],
//! reports `ready <host pid>` on stdout, and then reaps every process the
//! machine orphans (daemons the charm starts end up as its children).
//! Killing it kills everything on the machine at once: that is a crash.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use super::plan::BootPlan;

/// The emulator binary runs as a machine's init when called as
/// `juju-emulator machine-init <boot plan>`.
pub const SUBCOMMAND: &str = "machine-init";

/// Runs the init; returns only on a boot error (the caller exits 1).
pub fn run(plan_file: &Path) -> Result<()> {
    let plan: BootPlan = serde_json::from_slice(
        &std::fs::read(plan_file).with_context(|| format!("reading {}", plan_file.display()))?,
    )
    .context("parsing the boot plan")?;
    let host_pid = host_pid()?;
    boot(&plan)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready {host_pid}")?;
    stdout.flush()?;
    drop(stdout);
    detach_stdio();
    reap_forever()
}

/// Our pid in the host's pid namespace: the first `NSpid` of /proc/self
/// while /proc is still the host's.
fn host_pid() -> Result<i32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .context("no NSpid in /proc/self/status")
}

fn boot(plan: &BootPlan) -> Result<()> {
    // Every bind source is opened before anything is mounted: later mounts
    // (the layers over /var, the tmpfs over /tmp) may shadow the host paths,
    // and the machine must get the host's directories, not what it sees.
    let shared = open_all(plan.shared.iter().map(|p| (p.as_path(), p.as_path())))?;
    let private = open_all(
        plan.private
            .iter()
            .map(|b| (b.source.as_path(), b.target.as_path())),
    )?;
    let views = open_all(
        plan.kernel_views
            .iter()
            .filter(|v| v.target.exists() && v.source.exists())
            .map(|v| (v.source.as_path(), v.target.as_path())),
    )?;
    let storage_dirs = open_all(
        plan.storage
            .iter()
            .filter(|s| s.bind)
            .map(|s| (s.source.as_path(), s.target.as_path())),
    )?;
    for layer in &plan.layers {
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            layer.target.display(),
            layer.upper.display(),
            layer.work.display()
        );
        mount(
            Some("overlay"),
            &layer.target,
            Some("overlay"),
            0,
            Some(&options),
        )?;
    }
    bind_all(&private, false)?;
    for tmpfs in &plan.tmpfs {
        mount(
            Some("tmpfs"),
            &tmpfs.target,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&format!("mode={:o}", tmpfs.mode)),
        )?;
    }
    bind_all(&shared, true)?;
    let safe = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(Some("proc"), Path::new("/proc"), Some("proc"), safe, None)?;
    mount(Some("sysfs"), Path::new("/sys"), Some("sysfs"), safe, None)?;
    // The fds are this process's: /proc/self is still right after the remount.
    bind_all(&views, false)?;
    bind_all(&storage_dirs, false)?;
    for storage in plan.storage.iter().filter(|s| !s.bind) {
        std::fs::create_dir_all(&storage.target)
            .with_context(|| format!("creating {}", storage.target.display()))?;
        let status = Command::new("mount")
            .arg(&storage.source)
            .arg(&storage.target)
            .status()
            .context("running mount")?;
        if !status.success() {
            bail!(
                "mounting {} on {}: {status}",
                storage.source.display(),
                storage.target.display()
            );
        }
    }
    let name = CString::new(plan.hostname.as_str())?;
    // SAFETY: a valid pointer and its length.
    if unsafe { libc::sethostname(name.as_ptr(), plan.hostname.len()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("sethostname");
    }
    // What systemd-tmpfiles does for /run and /tmp at boot (the sockets
    // directory of postgresql-common, /run/lock, ...), if it is installed.
    if Path::new("/usr/bin/systemd-tmpfiles").exists() {
        let _ = Command::new("/usr/bin/systemd-tmpfiles")
            .args(["--create", "--boot", "--prefix=/run", "--prefix=/tmp"])
            .status();
    }
    std::env::set_current_dir("/")?;
    Ok(())
}

/// A bind mount to make: the source held open, and where it goes.
struct Held<'a> {
    source: OwnedFd,
    target: &'a Path,
}

fn open_all<'a>(pairs: impl Iterator<Item = (&'a Path, &'a Path)>) -> Result<Vec<Held<'a>>> {
    pairs
        .map(|(source, target)| {
            Ok(Held {
                source: open_path(source)?,
                target,
            })
        })
        .collect()
}

fn bind_all(binds: &[Held<'_>], recursive: bool) -> Result<()> {
    for bind in binds {
        if !bind.target.exists() {
            let is_dir = std::fs::metadata(format!("/proc/self/fd/{}", bind.source.as_raw_fd()))
                .map(|m| m.is_dir())
                .unwrap_or(true);
            if is_dir {
                std::fs::create_dir_all(bind.target)
            } else {
                std::fs::write(bind.target, "")
            }
            .with_context(|| format!("creating {}", bind.target.display()))?;
        }
        let source = format!("/proc/self/fd/{}", bind.source.as_raw_fd());
        bind_mount(Path::new(&source), bind.target, recursive)?;
    }
    Ok(())
}

fn open_path(path: &Path) -> Result<OwnedFd> {
    let dir = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(dir.into())
}

fn cstring(path: &Path) -> Result<CString> {
    Ok(CString::new(path.as_os_str().as_bytes())?)
}

fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let source = source.map(CString::new).transpose()?;
    let fstype = fstype.map(CString::new).transpose()?;
    let data = data.map(CString::new).transpose()?;
    let target_c = cstring(target)?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string that
    // outlives the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target_c.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "mounting {} on {}",
                fstype
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                target.display()
            )
        });
    }
    Ok(())
}

fn bind_mount(source: &Path, target: &Path, recursive: bool) -> Result<()> {
    let source_c = cstring(source)?;
    let target_c = cstring(target)?;
    let flags = libc::MS_BIND | if recursive { libc::MS_REC } else { 0 };
    // SAFETY: NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            source_c.as_ptr(),
            target_c.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("binding {} on {}", source.display(), target.display()));
    }
    Ok(())
}

/// stdin and stdout to /dev/null: the World has read `ready` and daemons
/// must not hold its pipe.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        // SAFETY: dup2 onto the standard descriptors of this process.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

fn reap_forever() -> ! {
    loop {
        let mut status = 0;
        // SAFETY: waiting for any child with a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            // No children yet: orphans will be reparented to us later.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}
