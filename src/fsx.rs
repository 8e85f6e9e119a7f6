//! File operations the charm does as root where others can write.
//!
//! The charm runs as root, yet much of what it touches lives in directories
//! the `postgres` user owns (`/etc/postgresql/<major>/<cluster>`, `conf.d`,
//! PGDATA, `/var/lib/postgresql`). Anyone who can act as `postgres` (a
//! db-admin consumer through `COPY ... TO PROGRAM`, an `archive_command`) can
//! plant symbolic links there, and path-based calls follow them: root would
//! then write, chmod or chown whatever the link names. So:
//!
//! * Paths are walked one component at a time from `/` with `openat` and
//!   `O_NOFOLLOW`. A symbolic link is followed only where it sits in a
//!   directory that only root can write ([`open_dir`]): links root made
//!   (`/var/run` → `/run`) still work, links anyone else made never do.
//! * Files are replaced atomically ([`write_atomic`]): a temporary file
//!   created exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`) in the directory's fd,
//!   owner and mode set on the open file (`fchown`, `fchmod`), `fsync`,
//!   `renameat`, then `fsync` of the directory, so a power cut leaves the old
//!   file or the new one, never an empty one.
//! * Reads ([`read`]) never follow a link in the last component either and
//!   refuse anything but a regular file (a planted FIFO would hang the hook).
//! * Scratch directories ([`Scratch`]) get unpredictable names (`mkdtemp`)
//!   in [`SCRATCH_ROOT`], which only root can write.
//!
//! Inside postgres-owned trees the charm otherwise acts *as* postgres
//! (copies, renames and deletions of PGDATA in `storage.rs`), so nothing
//! there can be turned against root.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Where scratch directories go: root-owned, `0711`, on tmpfs.
pub const SCRATCH_ROOT: &str = "/run/juju-pg-charm";

/// The owner a file or directory gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };

    /// This process (root, in a hook).
    pub fn current() -> Owner {
        Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }

    /// The `postgres` system user (looked up once per hook).
    pub fn postgres() -> Result<Owner> {
        static POSTGRES: OnceLock<Option<Owner>> = OnceLock::new();
        POSTGRES
            .get_or_init(|| {
                nix::unistd::User::from_name("postgres")
                    .ok()
                    .flatten()
                    .map(|user| Owner {
                        uid: user.uid.as_raw(),
                        gid: user.gid.as_raw(),
                    })
            })
            .context("there is no postgres system user (is the server package installed?)")
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn file_from(fd: i32) -> File {
    // SAFETY: `fd` was just returned by a successful open and is owned by no one else.
    File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

fn open_root() -> io::Result<File> {
    openat(None, "/", DIR_FLAGS, Mode::empty())
        .map(file_from)
        .map_err(errno)
}

/// Whether only root can change the entries of the directory `dir`.
fn only_root_writes(dir: &File) -> io::Result<bool> {
    let stat = fstat(dir.as_raw_fd()).map_err(errno)?;
    Ok(stat.st_uid == 0 && stat.st_mode & 0o022 == 0)
}

/// How [`walk`] makes missing directories.
#[derive(Clone, Copy)]
struct Create {
    owner: Owner,
    mode: u32,
    /// Give the last directory that owner and mode even when it exists.
    enforce_last: bool,
}

/// The directory at `path`, walked from `/` without following a symbolic
/// link that anyone but root could have planted. With `create`, missing
/// directories are made; the ones made are returned.
fn walk(path: &Path, create: Option<Create>) -> io::Result<(File, Vec<PathBuf>)> {
    if !path.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not an absolute path", path.display()),
        ));
    }
    let mut pending: VecDeque<OsString> = components(path);
    let mut current = open_root()?;
    let mut here = PathBuf::from("/");
    let mut created = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            current = openat(Some(current.as_raw_fd()), "..", DIR_FLAGS, Mode::empty())
                .map(file_from)
                .map_err(errno)?;
            here.pop();
            continue;
        }
        let stat = fstatat(
            Some(current.as_raw_fd()),
            name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        match stat {
            Ok(stat) if stat.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits() => {
                links += 1;
                if links > 40 || !only_root_writes(&current)? {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "{} is a symbolic link in a directory that users other than root \
                             can write; the charm does not follow it",
                            here.join(&name).display()
                        ),
                    ));
                }
                let target =
                    readlinkat(Some(current.as_raw_fd()), name.as_os_str()).map_err(errno)?;
                let target = PathBuf::from(target);
                let mut rest = components(&target);
                rest.extend(pending);
                pending = rest;
                if target.is_absolute() {
                    current = open_root()?;
                    here = PathBuf::from("/");
                }
            }
            Ok(stat) if stat.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() => {
                current = openat(
                    Some(current.as_raw_fd()),
                    name.as_os_str(),
                    DIR_FLAGS,
                    Mode::empty(),
                )
                .map(file_from)
                .map_err(errno)?;
                here.push(&name);
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", here.join(&name).display()),
                ))
            }
            Err(Errno::ENOENT) if create.is_some() => {
                let Create { owner, mode, .. } = create.expect("checked");
                match mkdirat(
                    Some(current.as_raw_fd()),
                    name.as_os_str(),
                    Mode::from_bits_truncate(0o700),
                ) {
                    Ok(()) => created.push(here.join(&name)),
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(errno(e)),
                }
                let dir = openat(
                    Some(current.as_raw_fd()),
                    name.as_os_str(),
                    DIR_FLAGS,
                    Mode::empty(),
                )
                .map(file_from)
                .map_err(errno)?;
                set_owner_and_mode(&dir, owner, mode)?;
                current = dir;
                here.push(&name);
            }
            Err(e) => return Err(errno(e)),
        }
    }
    if let Some(create) = create.filter(|c| c.enforce_last) {
        set_owner_and_mode(&current, create.owner, create.mode)?;
    }
    Ok((current, created))
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn set_owner_and_mode(file: &File, owner: Owner, mode: u32) -> io::Result<()> {
    let stat = fstat(file.as_raw_fd()).map_err(errno)?;
    if stat.st_uid != owner.uid || stat.st_gid != owner.gid {
        std::os::unix::fs::fchown(file, Some(owner.uid), Some(owner.gid))?;
    }
    if stat.st_mode & 0o7777 != mode {
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Opens the directory `path` (see the module documentation for which
/// symbolic links are followed).
pub(crate) fn open_dir(path: &Path) -> io::Result<File> {
    walk(path, None).map(|(dir, _)| dir)
}

/// Makes `path` and any missing parents, owned by `owner` with `mode`;
/// directories that exist are left as they are. Returns the directories it
/// made, outermost first.
pub(crate) fn create_dir_all(path: &Path, owner: Owner, mode: u32) -> Result<Vec<PathBuf>> {
    make_dirs(path, owner, mode, false)
}

/// [`create_dir_all`], and `path` itself gets `owner` and `mode` even if it
/// existed: for directories that are the charm's to decide.
pub(crate) fn ensure_dir(path: &Path, owner: Owner, mode: u32) -> Result<Vec<PathBuf>> {
    make_dirs(path, owner, mode, true)
}

fn make_dirs(path: &Path, owner: Owner, mode: u32, enforce_last: bool) -> Result<Vec<PathBuf>> {
    let create = Create {
        owner,
        mode,
        enforce_last,
    };
    walk(path, Some(create))
        .map(|(_, created)| created)
        .with_context(|| format!("creating {}", path.display()))
}

fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )),
    }
}

/// Opens the regular file `name` in `dir` for reading, never through a
/// link, never blocking on a FIFO.
fn open_regular_at(dir: &File, name: &OsStr, shown: &Path) -> io::Result<File> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let file = match openat(Some(dir.as_raw_fd()), name, flags, Mode::empty()) {
        Ok(fd) => file_from(fd),
        Err(Errno::ELOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a symbolic link; the charm does not follow it",
                    shown.display()
                ),
            ))
        }
        Err(e) => return Err(errno(e)),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", shown.display()),
        ));
    }
    Ok(file)
}

/// The contents of the regular file at `path`, read without following a
/// planted link (see the module documentation).
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let (dir, name) = split(path)?;
    let dir = open_dir(dir)?;
    let mut file = open_regular_at(&dir, name, path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Whether a regular file is at `path` (not following planted links).
pub fn is_file(path: &Path) -> bool {
    split(path)
        .and_then(|(dir, name)| open_regular_at(&open_dir(dir)?, name, path))
        .is_ok()
}

/// Replaces `path` with `content`, owned by `owner` with `mode`, unless it
/// already is exactly that; returns whether it wrote. The directory must
/// exist. Atomic and durable: see the module documentation.
pub(crate) fn write_atomic(path: &Path, content: &[u8], owner: Owner, mode: u32) -> Result<bool> {
    write(path, content, owner, mode).with_context(|| format!("writing {}", path.display()))
}

fn write(path: &Path, content: &[u8], owner: Owner, mode: u32) -> io::Result<bool> {
    let (dir_path, name) = split(path)?;
    let dir = open_dir(dir_path)?;
    if let Ok(mut old) = open_regular_at(&dir, name, path) {
        let stat = fstat(old.as_raw_fd()).map_err(errno)?;
        let mut bytes = Vec::new();
        old.read_to_end(&mut bytes)?;
        if bytes == content
            && stat.st_uid == owner.uid
            && stat.st_gid == owner.gid
            && stat.st_mode & 0o7777 == mode
        {
            return Ok(false);
        }
    }
    let (temp_name, mut temp) = create_temp(&dir, name)?;
    let written = (|| {
        temp.write_all(content)?;
        set_owner_and_mode(&temp, owner, mode)?;
        temp.sync_all()?;
        renameat(
            Some(dir.as_raw_fd()),
            temp_name.as_os_str(),
            Some(dir.as_raw_fd()),
            name,
        )
        .map_err(errno)?;
        dir.sync_all()
    })();
    if let Err(e) = written {
        let _ = unlinkat(
            Some(dir.as_raw_fd()),
            temp_name.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        );
        return Err(e);
    }
    Ok(true)
}

/// `.<name>.<random>.juju-tmp`, created exclusively in `dir`.
fn create_temp(dir: &File, name: &OsStr) -> io::Result<(OsString, File)> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    loop {
        let mut temp = OsString::from(".");
        temp.push(name);
        temp.push(format!(".{}.juju-tmp", random_hex()?));
        match openat(
            Some(dir.as_raw_fd()),
            temp.as_os_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => return Ok((temp, file_from(fd))),
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(errno(e)),
        }
    }
}

fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; 8];
    crate::secret::fill_random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Removes the file (or link) at `path` without following it; `false` when
/// there was none.
pub fn remove_file(path: &Path) -> Result<bool> {
    let removed = (|| {
        let (dir, name) = split(path)?;
        let dir = match open_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            other => other?,
        };
        match unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => dir.sync_all().map(|()| true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(errno(e)),
        }
    })();
    removed.with_context(|| format!("removing {}", path.display()))
}

/// Removes the directory `path` if it is empty; `false` when it was not
/// there or not empty.
pub(crate) fn remove_dir_if_empty(path: &Path) -> bool {
    let Ok((dir, name)) = split(path) else {
        return false;
    };
    let Ok(dir) = open_dir(dir) else {
        return false;
    };
    unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::RemoveDir).is_ok()
}

/// A scratch directory with an unpredictable name below [`SCRATCH_ROOT`],
/// removed on drop. It starts as root's alone (`0700`); files written into
/// it are the charm's own, so plain writes are safe there. [`Scratch::share`]
/// lets the postgres user read it.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(purpose: &str) -> Result<Self> {
        let pid = std::process::id();
        let template = Path::new(SCRATCH_ROOT).join(format!("{pid}-{purpose}-XXXXXX"));
        let mut last = None;
        // A unit being removed concurrently may take SCRATCH_ROOT away.
        for _ in 0..3 {
            ensure_dir(Path::new(SCRATCH_ROOT), Owner::current(), 0o711)?;
            remove_stale_scratch(pid);
            match nix::unistd::mkdtemp(&template) {
                Ok(path) => return Ok(Scratch { path }),
                Err(e) => last = Some(e),
            }
        }
        Err(errno(last.expect("tried"))).context("creating a scratch directory")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a new file below the scratch directory (parents made `0700`).
    pub fn write(&self, relative: &str, content: &[u8], mode: u32) -> Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(OFlag::O_NOFOLLOW.bits())
            .open(&path)
            .and_then(|mut file| {
                file.write_all(content)?;
                file.set_permissions(std::fs::Permissions::from_mode(mode))
            })
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Lets the postgres user read (not write) everything in it so far:
    /// directories `0755`, files as they were written (`0644` for those
    /// postgres must read).
    pub fn share(&self) -> Result<()> {
        for dir in dirs_below(&self.path)? {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("sharing {}", dir.display()))?;
        }
        Ok(())
    }
}

/// `dir` and the directories below it (no links followed).
fn dirs_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_path_buf()];
    let mut index = 0;
    while index < out.len() {
        for entry in std::fs::read_dir(&out[index])? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                out.push(entry.path());
            }
        }
        index += 1;
    }
    Ok(out)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // std's remove_dir_all never follows links below its argument.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Scratch directories of hooks that were killed (their pid is gone).
fn remove_stale_scratch(own_pid: u32) {
    let Ok(entries) = std::fs::read_dir(SCRATCH_ROOT) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if pid as u32 != own_pid && !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The scratch root, when the unit leaves and nothing else uses it.
pub(crate) fn remove_scratch_root() {
    remove_stale_scratch(std::process::id());
    remove_dir_if_empty(Path::new(SCRATCH_ROOT));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("pg-charm-fsx-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn me() -> Owner {
        Owner::current()
    }

    #[test]
    fn writes_atomically_once_and_reads_back() {
        let dir = Dir::new("write");
        let path = dir.0.join("f.conf");
        assert!(write_atomic(&path, b"one\n", me(), 0o640).unwrap());
        assert!(!write_atomic(&path, b"one\n", me(), 0o640).unwrap());
        assert_eq!(read_to_string(&path).unwrap(), "one\n");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
        // A different mode alone is a change.
        assert!(write_atomic(&path, b"one\n", me(), 0o644).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o644);
        let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [OsString::from("f.conf")]);
    }

    #[test]
    fn a_planted_link_is_replaced_never_written_through() {
        let dir = Dir::new("planted");
        let victim = dir.0.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.0.join("pg_hba.conf");
        symlink(&victim, &path).unwrap();
        // Reading through the link is refused.
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(write_atomic(&path, b"new", me(), 0o640).unwrap());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(read(&path).unwrap(), b"new");
        // Removing a link removes the link only.
        symlink(&victim, dir.0.join("link")).unwrap();
        assert!(remove_file(&dir.0.join("link")).unwrap());
        assert!(victim.exists());
        assert!(!remove_file(&dir.0.join("link")).unwrap());
    }

    #[test]
    fn links_are_followed_only_in_directories_only_root_writes() {
        let dir = Dir::new("links");
        std::fs::create_dir_all(dir.0.join("real")).unwrap();
        std::fs::write(dir.0.join("real/f"), "x").unwrap();
        symlink(dir.0.join("real"), dir.0.join("via")).unwrap();
        let root_owned = nix::unistd::getuid().is_root();
        // The scratch directory is ours and 0755: followed when we are root.
        assert_eq!(read(&dir.0.join("via/f")).is_ok(), root_owned);
        // In a directory others can write, never.
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = read(&dir.0.join("via/f")).unwrap_err();
        assert!(err.to_string().contains("does not follow"), "{err}");
        assert!(write_atomic(&dir.0.join("via/g"), b"y", me(), 0o644).is_err());
        assert!(!dir.0.join("real/g").exists());
    }

    #[test]
    fn fifos_and_directories_are_not_read() {
        let dir = Dir::new("fifo");
        let fifo = dir.0.join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
        assert!(read(&fifo).is_err());
        assert!(read(&dir.0).is_err());
        assert!(!is_file(&fifo));
    }

    #[test]
    fn creates_missing_directories_with_owner_and_mode() {
        let dir = Dir::new("mkdir");
        let deep = dir.0.join("a/b/c");
        let created = create_dir_all(&deep, me(), 0o700).unwrap();
        assert_eq!(created, [dir.0.join("a"), dir.0.join("a/b"), deep.clone()]);
        assert_eq!(std::fs::metadata(&deep).unwrap().mode() & 0o7777, 0o700);
        assert!(create_dir_all(&deep, me(), 0o711).unwrap().is_empty());
        assert_eq!(std::fs::metadata(&deep).unwrap().mode() & 0o7777, 0o700);
        assert!(ensure_dir(&deep, me(), 0o711).unwrap().is_empty());
        assert_eq!(std::fs::metadata(&deep).unwrap().mode() & 0o7777, 0o711);
        assert!(!remove_dir_if_empty(&dir.0.join("a")));
        assert!(remove_dir_if_empty(&deep));
    }
}
