//! Installing what HA runs: the archive's `patroni`, `etcd-server` and
//! `etcd-client`, and, where the archive's Patroni is older than 3.0.3,
//! the Patroni wheel bundled into the charm ([`install_bundled`]).
//!
//! The etcd package's postinst starts a default member (named after the
//! host, data in `/var/lib/etcd/default`, on localhost) on systemd
//! machines. The charm masks `etcd.service` before installing it, and
//! afterwards stops any default member the package started and removes its
//! data directory only when that directory did not exist before.
//!
//! The bundled Patroni runs with the system `python3` and the archive's
//! libraries (psycopg2, python-etcd, urllib3, yaml, click, dateutil,
//! prettytable, psutil: the `patroni` package's dependencies), from a
//! root-owned directory everyone can read.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::services::Systemd;
use super::version::{self, ArchivePatroni, BundledWheel, PatroniChoice};
use crate::fsx::{self, Owner};

/// The packages HA needs (python3-etcd: Patroni's etcd client library,
/// one of the alternatives the `patroni` package depends on; python3-idna:
/// python-etcd hands urllib3's TLS to pyOpenSSL, whose certificate name
/// check imports idna, which nothing else pulls in, so Patroni could not
/// reach etcd over HTTPS without it).
pub const PACKAGES: &[&str] = &[
    "patroni",
    "python3-etcd",
    "python3-idna",
    "etcd-server",
    "etcd-client",
];

/// The package's default member's data directory.
pub const DEFAULT_ETCD_DATA: &str = "/var/lib/etcd/default";

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", name])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"ii"))
}

/// Installs [`PACKAGES`] (no-op when present), keeping etcd's default
/// member from running.
pub fn ensure_packages(systemd: bool, progress: &dyn Fn(&str)) -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let default_existed = Path::new(DEFAULT_ETCD_DATA).exists();
    if systemd && missing.contains(&"etcd-server") {
        Systemd::mask("etcd.service").context("masking etcd.service before installing etcd")?;
    }
    progress(&format!(
        "installing {} from the archive",
        missing.join(" ")
    ));
    let mut args = vec!["install", "--no-install-recommends"];
    args.extend(&missing);
    if let Err(first) = apt_get(&args) {
        apt_get(&["update"]).context("apt-get update")?;
        apt_get(&args).with_context(|| {
            format!(
                "installing {} (first attempt: {first:#})",
                missing.join(" ")
            )
        })?;
    }
    stop_default_member(systemd, default_existed)
}

/// Stops the package's default etcd member if something started it, and
/// removes its data directory if the package made it just now.
fn stop_default_member(systemd: bool, default_existed: bool) -> Result<()> {
    if systemd {
        if Systemd::is_active("etcd.service") {
            Systemd::stop("etcd.service")?;
        }
    } else if let Some(pid) = default_member_pid() {
        log::info!("stopping the etcd package's default member (pid {pid})");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    if !systemd {
        // No systemd: the sysv script would start it at boot.
        let _ = crate::cluster::run(Command::new("update-rc.d").args(["etcd", "disable"]));
    }
    if !default_existed && Path::new(DEFAULT_ETCD_DATA).exists() {
        std::fs::remove_dir_all(DEFAULT_ETCD_DATA).with_context(|| {
            format!("removing the package's default member {DEFAULT_ETCD_DATA}")
        })?;
    }
    Ok(())
}

/// The default member started by `/etc/init.d/etcd` (its pidfile), if alive.
fn default_member_pid() -> Option<i32> {
    let pid: i32 = fsx::read_to_string(Path::new("/run/etcd.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    (exe == Path::new("/usr/bin/etcd")).then_some(pid)
}

fn apt_get(args: &[&str]) -> Result<String> {
    crate::cluster::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "-o",
                "DPkg::Lock::Timeout=600",
                "-o",
                "Dpkg::Options::=--force-confold",
                "-y",
                "-q",
            ])
            .args(args),
    )
}

/// What `/usr/bin/patroni --version` says.
pub fn archive_patroni() -> ArchivePatroni {
    let program = Path::new("/usr/bin/patroni");
    if !program.exists() {
        return ArchivePatroni::Unknown("/usr/bin/patroni is missing".into());
    }
    match crate::cluster::run(Command::new(program).arg("--version")) {
        Ok(out) => match version::parse_version_output(&out) {
            Ok(v) => ArchivePatroni::Version(v),
            Err(e) => ArchivePatroni::Unknown(format!("{e:#}")),
        },
        Err(e) => ArchivePatroni::Unknown(format!("{e:#}")),
    }
}

/// Where the bundled Patroni `wheel` is installed below `root`.
pub fn bundled_dir(root: &Path, wheel: &BundledWheel) -> PathBuf {
    root.join(format!("patroni-{}", wheel.version))
}

/// The `patroni` program for `choice`.
pub fn patroni_program(choice: &PatroniChoice, root: &Path, wheel: &BundledWheel) -> PathBuf {
    match choice {
        PatroniChoice::Archive(_) => PathBuf::from("/usr/bin/patroni"),
        PatroniChoice::Bundled { .. } => bundled_dir(root, wheel).join("bin/patroni"),
    }
}

/// A launcher: the system python3, isolated (`-I`: no user site, no
/// `PYTHON*` variables), with the wheel's directory first on `sys.path`.
/// The `__main__` guard matters: Patroni starts the postmaster through
/// multiprocessing's spawn, whose child imports the main script again.
pub fn launcher(lib: &Path, module: &str, function: &str) -> String {
    format!(
        "#!/usr/bin/python3 -I\n\
         # Written by the PostgreSQL charm: Patroni from the wheel bundled with the charm.\n\
         import sys\n\
         sys.path.insert(0, {lib:?})\n\
         from {module} import {function}\n\
         if __name__ == \"__main__\":\n\
         \x20   sys.exit({function}())\n",
        lib = lib.to_string_lossy()
    )
}

fn sha256_hex(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Installs the bundled wheel (`wheel_file`, from the charm directory)
/// into `<root>/patroni-<version>/` unless it is there already; returns the
/// `patroni` program. Checks the wheel's sha256 first; unpacks into a
/// temporary directory and renames it into place, so a killed hook leaves
/// either nothing or a complete installation.
pub fn install_bundled(wheel_file: &Path, wheel: &BundledWheel, root: &Path) -> Result<PathBuf> {
    let dir = bundled_dir(root, wheel);
    let marker = dir.join(".installed-sha256");
    let program = dir.join("bin/patroni");
    if fsx::read_to_string(&marker).is_ok_and(|s| s.trim() == wheel.sha256) {
        return Ok(program);
    }
    let actual = sha256_hex(wheel_file)?;
    if actual != wheel.sha256 {
        bail!(
            "{} has sha256 {actual}, not the pinned {}: the charm is damaged; refresh it",
            wheel_file.display(),
            wheel.sha256
        );
    }
    let owner = Owner::current();
    fsx::create_dir_all(root, owner, 0o755)?;
    let staging = root.join(format!(".patroni-{}.partial", wheel.version));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    fsx::create_dir_all(&staging.join("bin"), owner, 0o755)?;
    let lib = staging.join("lib");
    crate::cluster::run(
        Command::new("/usr/bin/python3")
            .args(["-I", "-m", "zipfile", "-e"])
            .arg(wheel_file)
            .arg(&lib),
    )
    .context("unpacking the bundled Patroni wheel")?;
    make_readable(&lib)?;
    let final_lib = dir.join("lib");
    for (name, module, function) in [
        ("patroni", "patroni.__main__", "main"),
        ("patronictl", "patroni.ctl", "ctl"),
    ] {
        let path = staging.join("bin").join(name);
        fsx::write_atomic(
            &path,
            launcher(&final_lib, module, function).as_bytes(),
            owner,
            0o755,
        )?;
    }
    fsx::write_atomic(
        &staging.join(".installed-sha256"),
        format!("{}\n", wheel.sha256).as_bytes(),
        owner,
        0o644,
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::rename(&staging, &dir)
        .with_context(|| format!("moving the bundled Patroni into {}", dir.display()))?;
    log::info!(
        "installed the bundled Patroni {} in {}",
        wheel.version,
        dir.display()
    );
    Ok(program)
}

/// Directories 0755, files 0644: root's, readable by postgres.
fn make_readable(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let mode = if meta.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
        if meta.is_dir() {
            make_readable(&entry.path())?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launcher_runs_patroni_from_the_bundled_directory() {
        let text = launcher(
            Path::new("/usr/lib/juju-pg-charm/patroni-3.2.2/lib"),
            "patroni.__main__",
            "main",
        );
        assert!(text.starts_with("#!/usr/bin/python3 -I\n"));
        assert!(text.contains("sys.path.insert(0, \"/usr/lib/juju-pg-charm/patroni-3.2.2/lib\")"));
        assert!(text.contains(
            "from patroni.__main__ import main\nif __name__ == \"__main__\":\n    sys.exit(main())\n"
        ));
    }

    #[test]
    fn the_archive_or_the_bundled_program() {
        let wheel = BundledWheel::charm();
        let root = Path::new("/usr/lib/juju-pg-charm");
        assert_eq!(
            patroni_program(
                &PatroniChoice::Archive(version::PatroniVersion::new(3, 2, 2)),
                root,
                &wheel
            ),
            PathBuf::from("/usr/bin/patroni")
        );
        assert_eq!(
            patroni_program(
                &PatroniChoice::Bundled {
                    version: wheel.version,
                    reason: String::new()
                },
                root,
                &wheel
            ),
            PathBuf::from("/usr/lib/juju-pg-charm/patroni-3.2.2/bin/patroni")
        );
    }

    #[test]
    fn a_wheel_with_the_wrong_hash_is_refused_and_nothing_is_installed() {
        let dir = std::env::temp_dir().join(format!("ha-install-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("patroni-3.2.2-py3-none-any.whl");
        std::fs::write(&fake, b"not the wheel").unwrap();
        let e = install_bundled(&fake, &BundledWheel::charm(), &dir.join("root")).unwrap_err();
        assert!(format!("{e:#}").contains("not the pinned"), "{e:#}");
        assert!(!dir.join("root").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
