//! The TLS files: what PostgreSQL reads, and the certificates the unit
//! keeps between hooks.
//!
//! One directory, `/etc/postgresql/<major>/<cluster>/tls` ([`TlsDir::of`]),
//! owned by root with group postgres, mode `0750`: PostgreSQL (and later
//! Patroni, as postgres) can read it, nobody else can enter it, and the
//! postgres user cannot create, rename or replace entries in it, so nothing
//! it plants there redirects root's writes. (`copy_config_with` copies only
//! `postgresql.conf` and `conf.d`, so the key never reaches a scratch
//! copy.) The files are owned by postgres, as PostgreSQL requires of a key
//! it does not get from root, and written through the charm's one
//! postgres-file writer, [`crate::cluster::conf::write_if_changed`]
//! (atomic, only when the content changed):
//!
//! | file | mode | what |
//! |---|---|---|
//! | `server.key` | 0600 | the unit's private key (`ssl_key_file`); made on the unit, never leaves it |
//! | `server.crt` | 0644 | the served certificate and its intermediates (`ssl_cert_file`) |
//! | `ca.crt` | 0644 | the served certificate's CA (`ssl_ca_file`; what clients are given) |
//! | `own.crt` | 0644 | the unit's own certificate |
//! | `own-ca.crt` | 0644 | the CA of the own certificate (the internal CA, or the certificate itself) |
//! | `provider.crt` | 0644 | the provider's certificate last accepted, with intermediates |
//! | `provider-ca.crt` | 0644 | its CA |

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::unistd::User;

use super::key::PrivateKey;
use crate::cluster::{conf, Cluster};
use crate::secret::Secret;

pub const KEY: &str = "server.key";
pub const CERTIFICATE: &str = "server.crt";
pub const CA: &str = "ca.crt";
pub const OWN: &str = "own.crt";
pub const OWN_CA: &str = "own-ca.crt";
pub const ACCEPTED: &str = "provider.crt";
pub const ACCEPTED_CA: &str = "provider-ca.crt";

const DIR_MODE: u32 = 0o750;
const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

/// A unit's TLS directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDir(PathBuf);

impl TlsDir {
    /// The cluster's: `<conf dir>/tls`.
    pub fn of(cluster: &Cluster) -> Self {
        TlsDir(cluster.conf_dir().join("tls"))
    }

    /// A directory of the caller's choosing (tests).
    pub fn at(path: &Path) -> Self {
        TlsDir(path.to_path_buf())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Makes the directory if it is missing, and gives it root, group
    /// postgres and `0750` in any case, on the directory itself: a symbolic
    /// link in its place is refused, not followed.
    pub fn ensure(&self) -> Result<()> {
        let postgres = User::from_name("postgres")?
            .context("there is no postgres system user (is the server package installed?)")?;
        match fs::DirBuilder::new().mode(0o700).create(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", self.0.display())),
        }
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
            .open(&self.0)
            .with_context(|| {
                format!(
                    "opening {} (it must be a directory, not a link)",
                    self.0.display()
                )
            })?;
        std::os::unix::fs::fchown(&dir, Some(0), Some(postgres.gid.as_raw()))
            .with_context(|| format!("chown root:postgres {}", self.0.display()))?;
        dir.set_permissions(fs::Permissions::from_mode(DIR_MODE))
            .with_context(|| format!("chmod {DIR_MODE:o} {}", self.0.display()))?;
        Ok(())
    }

    /// The file's text; `None` when it is missing.
    pub fn read(&self, name: &str) -> Result<Option<String>> {
        let path = self.file(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes a certificate file (`0644`, postgres) unless it already holds
    /// `pem`; returns whether it wrote.
    pub fn write(&self, name: &str, pem: &str) -> Result<bool> {
        if name == KEY {
            bail!("the key is written with write_key");
        }
        conf::write_if_changed(&self.file(name), pem, CERT_MODE)
    }

    pub fn remove(&self, name: &str) -> Result<bool> {
        let path = self.file(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    /// The unit's key; `None` when there is none yet. A key file that does
    /// not parse is an error (the caller decides to replace it).
    pub fn key(&self) -> Result<Option<PrivateKey>> {
        let path = self.file(KEY);
        match fs::read_to_string(&path) {
            Ok(text) => PrivateKey::from_pem(&Secret::new(text))
                .map(Some)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the unit's key (`0600`, postgres) unless it is already there.
    pub fn write_key(&self, key: &PrivateKey) -> Result<bool> {
        conf::write_if_changed(&self.file(KEY), key.to_pem().expose(), KEY_MODE)
    }

    /// The unit's key, made and written on first use. An unreadable key
    /// file is replaced (with a warning): everything made for the old key
    /// is made again, since the decision sees the new key match nothing.
    pub fn ensure_key(&self) -> Result<PrivateKey> {
        let key = match self.key() {
            Ok(Some(key)) => key,
            Ok(None) => PrivateKey::generate()?,
            Err(e) => {
                log::warn!("replacing the unit's TLS key: {e:#}");
                PrivateKey::generate()?
            }
        };
        self.write_key(&key)?;
        Ok(key)
    }

    /// Points PostgreSQL's files at `certificate_chain` and `ca` (the CA
    /// first: a hook killed in between leaves a CA file PostgreSQL uses
    /// only for client certificates, and the certificate still matching
    /// the key); returns whether either changed, so the caller reloads.
    pub fn serve(&self, certificate_chain: &str, ca: &str) -> Result<bool> {
        let ca_changed = self.write(CA, ca)?;
        let cert_changed = self.write(CERTIFICATE, certificate_chain)?;
        Ok(ca_changed || cert_changed)
    }
}

/// Whether the directory is as [`TlsDir::ensure`] leaves it (for tests and
/// for the wiring's checks).
pub fn is_private(dir: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    let postgres = User::from_name("postgres")?.context("no postgres system user")?;
    Ok(meta.is_dir()
        && meta.uid() == 0
        && meta.gid() == postgres.gid.as_raw()
        && meta.mode() & 0o7777 == DIR_MODE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("tls-files-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn postgres() -> User {
        User::from_name("postgres")
            .unwrap()
            .expect("a postgres user")
    }

    #[test]
    fn the_directory_is_roots_with_group_postgres() {
        let scratch = Scratch::new("dir");
        let tls = TlsDir::at(&scratch.0.join("tls"));
        tls.ensure().unwrap();
        assert!(is_private(tls.path()).unwrap());
        // Loosened by someone: put back.
        fs::set_permissions(tls.path(), fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::chown(tls.path(), Some(postgres().uid.as_raw()), None).unwrap();
        tls.ensure().unwrap();
        assert!(is_private(tls.path()).unwrap());
    }

    #[test]
    fn a_link_in_its_place_is_refused_not_followed() {
        let scratch = Scratch::new("link");
        let target = scratch.0.join("elsewhere");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&target, scratch.0.join("tls")).unwrap();
        let err = TlsDir::at(&scratch.0.join("tls")).ensure().unwrap_err();
        assert!(format!("{err:#}").contains("not a link"), "{err:#}");
        let meta = fs::metadata(&target).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755));
    }

    #[test]
    fn the_key_is_postgres_only_and_made_once() {
        let scratch = Scratch::new("key");
        let tls = TlsDir::at(&scratch.0.join("tls"));
        tls.ensure().unwrap();
        assert!(tls.key().unwrap().is_none());
        let key = tls.ensure_key().unwrap();
        let meta = fs::metadata(tls.file(KEY)).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(meta.uid(), postgres().uid.as_raw());
        let again = tls.ensure_key().unwrap();
        assert_eq!(again.public_key_der(), key.public_key_der());
        assert!(
            !tls.write_key(&key).unwrap(),
            "unchanged content is not rewritten"
        );
        assert!(tls.write(KEY, "x").is_err());
    }

    #[test]
    fn an_unreadable_key_is_replaced() {
        let scratch = Scratch::new("badkey");
        let tls = TlsDir::at(&scratch.0.join("tls"));
        tls.ensure().unwrap();
        fs::write(tls.file(KEY), "not a key").unwrap();
        let err = tls.key().unwrap_err();
        assert!(
            format!("{err:#}").contains("not a PKCS#8 PEM key"),
            "{err:#}"
        );
        let key = tls.ensure_key().unwrap();
        assert_eq!(
            tls.key().unwrap().unwrap().public_key_der(),
            key.public_key_der()
        );
    }

    #[test]
    fn serving_writes_both_files_and_reports_change() {
        let scratch = Scratch::new("serve");
        let tls = TlsDir::at(&scratch.0.join("tls"));
        tls.ensure().unwrap();
        assert!(tls.serve("CERT-A\n", "CA-A\n").unwrap());
        assert!(!tls.serve("CERT-A\n", "CA-A\n").unwrap());
        assert!(tls.serve("CERT-B\n", "CA-A\n").unwrap());
        assert_eq!(tls.read(CERTIFICATE).unwrap().as_deref(), Some("CERT-B\n"));
        assert_eq!(tls.read(CA).unwrap().as_deref(), Some("CA-A\n"));
        for name in [CERTIFICATE, CA] {
            let meta = fs::metadata(tls.file(name)).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o644);
            assert_eq!(meta.uid(), postgres().uid.as_raw());
        }
        assert!(tls.remove(CA).unwrap());
        assert!(!tls.remove(CA).unwrap());
        assert_eq!(tls.read(CA).unwrap(), None);
    }
}
