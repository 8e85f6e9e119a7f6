//! The TLS files: what the unit keeps between hooks, and what PostgreSQL
//! reads.
//!
//! **Kept** ([`Kept`]): the unit's private key, its own certificate and the
//! CA that signed it, and the provider's certificate last accepted with its
//! CA, in the charm's root-only state directory ([`crate::state`]): the
//! source of truth, which nothing the postgres user does can change.
//!
//! **Served** ([`TlsDir`]): `/etc/postgresql/<major>/<cluster>/tls`,
//! root with group postgres, `0750`, made through [`crate::fsx`] (it sits
//! in the cluster's postgres-owned config directory: a link planted in its
//! place is refused). PostgreSQL (and later Patroni, as postgres) can read
//! it; nobody else can enter it; postgres cannot create, rename or replace
//! entries in it. Every converge writes the three files from what is kept
//! and decided, so anything changed in them is put back. They are owned by
//! postgres, as PostgreSQL requires of a key it does not get from root, and
//! written through the charm's one postgres-file writer,
//! [`crate::cluster::conf::write_if_changed`] (`fsx::write_atomic`: a `0600`
//! temporary file, `fsync`, rename; only when the content changed).
//! (`copy_config_with` copies only `postgresql.conf` (Debian's, renamed
//! `postgresql.base.conf` under Patroni) and `conf.d`, so the key never
//! reaches a scratch copy.)
//!
//! | served file | mode | setting |
//! |---|---|---|
//! | `key.pem` | 0600 | `ssl_key_file`: the unit's private key, made on the unit, never leaving it |
//! | `cert.pem` | 0644 | `ssl_cert_file`: the served certificate and its intermediates |
//! | `ca.pem` | 0644 | `ssl_ca_file`: the served certificate's CA, what clients are given |
//! | `peers-ca.pem` | 0644 | what a unit trusts in another (replication, `sslrootcert`): the internal CA, and the provider's while its certificate is served |

use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::key::PrivateKey;
use crate::cluster::{conf, Cluster};
use crate::fsx::{self, Owner};
use crate::ha::etcd_config::EtcdTls;
use crate::state::tls::Kind;
use crate::state::{self, StateDir};

pub const KEY: &str = "key.pem";
pub const CERTIFICATE: &str = "cert.pem";
pub const CA: &str = "ca.pem";
pub const PEER_CA: &str = "peers-ca.pem";

const DIR_MODE: u32 = 0o750;
const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

pub use crate::state::tls::CertAndCa;

/// The unit's TLS material between hooks, in its state directory
/// ([`crate::state::tls`] owns the files).
#[derive(Debug, Clone)]
pub struct Kept(StateDir);

impl Kept {
    pub fn new(state: StateDir) -> Self {
        Kept(state)
    }

    /// The unit's key; `None` when there is none yet. A key that does not
    /// parse is an error (the caller decides to replace it).
    pub fn key(&self) -> Result<Option<PrivateKey>> {
        let Some(pem) = state::tls::key(&self.0)? else {
            return Ok(None);
        };
        PrivateKey::from_pem(&pem)
            .map(Some)
            .with_context(|| format!("reading {}", state::tls::key_path(&self.0).display()))
    }

    /// The unit's key, made and kept on first use. An unreadable key is
    /// replaced (with a warning): everything made for the old one is made
    /// again, since the decision then sees a key that matches nothing.
    pub fn ensure_key(&self) -> Result<PrivateKey> {
        let key = match self.key() {
            Ok(Some(key)) => return Ok(key),
            Ok(None) => PrivateKey::generate()?,
            Err(e) => {
                log::warn!("replacing the unit's TLS key: {e:#}");
                PrivateKey::generate()?
            }
        };
        state::tls::keep_key(&self.0, &key.to_pem())?;
        Ok(key)
    }

    /// The unit's own certificate and the CA that signed it (the
    /// certificate itself when self-signed).
    pub fn own(&self) -> Option<CertAndCa> {
        state::tls::certificate(&self.0, Kind::Own)
    }

    pub fn keep_own(&self, own: &CertAndCa) -> Result<()> {
        state::tls::keep_certificate(&self.0, Kind::Own, own)
    }

    /// The provider's certificate last accepted, and its CA.
    pub fn accepted(&self) -> Option<CertAndCa> {
        state::tls::certificate(&self.0, Kind::Provider)
    }

    pub fn keep_accepted(&self, accepted: &CertAndCa) -> Result<()> {
        state::tls::keep_certificate(&self.0, Kind::Provider, accepted)
    }

    pub fn forget_accepted(&self) -> Result<()> {
        state::tls::forget_certificate(&self.0, Kind::Provider)
    }
}

/// The directory PostgreSQL reads its TLS files from.
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

    /// `ssl_key_file`, `ssl_cert_file`, `ssl_ca_file` point here.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Makes the directory if it is missing, and gives it root, group
    /// postgres and `0750` in any case ([`fsx::ensure_dir`]: a link in its
    /// place is refused, not followed). Its parent (the cluster's config
    /// directory) must exist already.
    pub fn ensure(&self) -> Result<()> {
        let parent = self.0.parent().context("the TLS directory has no parent")?;
        match fsx::open_dir(parent) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
                "{} does not exist yet (the cluster comes first)",
                parent.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("opening {}", parent.display())),
        }
        fsx::ensure_dir(&self.0, dir_owner()?, DIR_MODE).map(drop)
    }

    /// A served file's text; `None` when it is missing.
    pub fn read(&self, name: &str) -> Result<Option<String>> {
        let path = self.file(name);
        match fsx::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Makes PostgreSQL's files `key`, `served.certificate` and `served.ca`
    /// (the key first, then the CA: a hook killed in between leaves the old
    /// certificate, which still matches the key, since the key changes only
    /// when it was lost); returns whether any changed, so the caller
    /// reloads.
    pub fn serve(&self, key: &PrivateKey, served: &CertAndCa) -> Result<bool> {
        self.ensure()?;
        let key_changed = conf::write_if_changed(&self.file(KEY), key.to_pem().expose(), KEY_MODE)?;
        let ca_changed = conf::write_if_changed(&self.file(CA), &served.ca, CERT_MODE)?;
        let cert_changed =
            conf::write_if_changed(&self.file(CERTIFICATE), &served.certificate, CERT_MODE)?;
        Ok(key_changed || ca_changed || cert_changed)
    }
}

/// The units' CA file of `cluster`, when the TLS step keeps one (the unit
/// has the internal CA): for the actions, which reach Patroni's REST API.
pub fn peer_ca_of(cluster: &Cluster) -> Option<PathBuf> {
    let path = TlsDir::of(cluster).file(PEER_CA);
    path.exists().then_some(path)
}

impl TlsDir {
    /// Makes [`PEER_CA`] `trusted` (PEM); whether it changed.
    pub fn serve_peer_ca(&self, trusted: &str) -> Result<bool> {
        self.ensure()?;
        conf::write_if_changed(&self.file(PEER_CA), trusted, CERT_MODE)
    }
}

/// etcd's copy of the unit's key, its own certificate and the internal CA
/// that signed it (etcd runs as its own user, which cannot enter
/// PostgreSQL's directory): root with etcd's group, `0750`, the key
/// `0640`, so root and etcd alone read it. Only the internal CA's
/// certificate: etcd's peers show each other the certificates the
/// application's CA signed, never a provider's (which may not be valid
/// for client authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTlsDir {
    path: PathBuf,
    group: u32,
}

impl EtcdTlsDir {
    /// The directory at `path`, readable by the group `group`.
    pub fn new(path: &Path, group: u32) -> Self {
        Self {
            path: path.to_path_buf(),
            group,
        }
    }

    /// The directory at `path`, readable by the `etcd` user's group.
    pub fn for_etcd(path: &Path) -> Result<Self> {
        let etcd = nix::unistd::User::from_name("etcd")
            .ok()
            .flatten()
            .context("no `etcd` system user: is etcd-server installed?")?;
        Ok(Self::new(path, etcd.gid.as_raw()))
    }

    /// Writes the unit's key and its own certificate with `internal_ca`
    /// (PEM) from what the unit keeps, and returns their paths for etcd;
    /// `None` while the own certificate is not (yet) the internal CA's.
    pub fn serve(&self, kept: &Kept, internal_ca: &str) -> Result<Option<EtcdTls>> {
        let (Some(key), Some(own)) = (kept.key()?, kept.own()) else {
            return Ok(None);
        };
        if own.ca.trim() != internal_ca.trim() {
            return Ok(None);
        }
        let owner = Owner {
            uid: 0,
            gid: self.group,
        };
        fsx::ensure_dir(&self.path, owner, DIR_MODE)?;
        let files = EtcdTls {
            certificate: self.path.join(CERTIFICATE),
            key: self.path.join(KEY),
            ca: self.path.join(CA),
        };
        // The key first, the CA last, as for PostgreSQL's files.
        fsx::write_atomic(&files.key, key.to_pem().expose().as_bytes(), owner, 0o640)?;
        fsx::write_atomic(
            &files.certificate,
            own.certificate.as_bytes(),
            owner,
            CERT_MODE,
        )?;
        fsx::write_atomic(&files.ca, own.ca.as_bytes(), owner, CERT_MODE)?;
        Ok(Some(files))
    }
}

/// Root, with the postgres group.
fn dir_owner() -> Result<Owner> {
    Ok(Owner {
        uid: 0,
        gid: Owner::postgres()?.gid,
    })
}

/// Whether the directory is as [`TlsDir::ensure`] leaves it.
pub fn is_private(dir: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    let owner = dir_owner()?;
    Ok(meta.is_dir()
        && meta.uid() == owner.uid
        && meta.gid() == owner.gid
        && meta.mode() & 0o7777 == DIR_MODE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::User;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("tls-files-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn kept(&self) -> Kept {
            Kept::new(StateDir::at(&self.0.join("state")))
        }

        fn served(&self) -> TlsDir {
            TlsDir::at(&self.0.join("tls"))
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

    fn pair(cert: &str, ca: &str) -> CertAndCa {
        CertAndCa {
            certificate: cert.into(),
            ca: ca.into(),
        }
    }

    #[test]
    fn the_key_is_made_once_and_kept_roots_alone() {
        let scratch = Scratch::new("key");
        let kept = scratch.kept();
        assert!(kept.key().unwrap().is_none());
        let key = kept.ensure_key().unwrap();
        let path = state::tls::key_path(&StateDir::at(&scratch.0.join("state")));
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600));
        let again = kept.ensure_key().unwrap();
        assert_eq!(again.public_key_der(), key.public_key_der());
    }

    #[test]
    fn an_unreadable_key_is_replaced() {
        let scratch = Scratch::new("badkey");
        let kept = scratch.kept();
        kept.ensure_key().unwrap();
        let path = state::tls::key_path(&StateDir::at(&scratch.0.join("state")));
        fs::write(&path, "not a key").unwrap();
        let err = kept.key().unwrap_err();
        assert!(
            format!("{err:#}").contains("not a PKCS#8 PEM key"),
            "{err:#}"
        );
        let key = kept.ensure_key().unwrap();
        assert_eq!(
            kept.key().unwrap().unwrap().public_key_der(),
            key.public_key_der()
        );
    }

    #[test]
    fn own_and_accepted_certificates_are_kept_and_forgotten() {
        let scratch = Scratch::new("kept");
        let kept = scratch.kept();
        assert_eq!(kept.own(), None);
        assert_eq!(kept.accepted(), None);
        kept.keep_own(&pair("OWN", "OWN-CA")).unwrap();
        kept.keep_accepted(&pair("P", "P-CA")).unwrap();
        assert_eq!(kept.own(), Some(pair("OWN", "OWN-CA")));
        assert_eq!(kept.accepted(), Some(pair("P", "P-CA")));
        kept.forget_accepted().unwrap();
        assert_eq!(kept.accepted(), None);
        kept.forget_accepted().unwrap();
        assert_eq!(kept.own(), Some(pair("OWN", "OWN-CA")));
    }

    #[test]
    fn the_directory_is_roots_with_group_postgres() {
        let scratch = Scratch::new("dir");
        let tls = scratch.served();
        tls.ensure().unwrap();
        assert!(is_private(tls.path()).unwrap());
        // Loosened by someone: put back.
        fs::set_permissions(tls.path(), fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::chown(tls.path(), Some(postgres().uid.as_raw()), None).unwrap();
        tls.ensure().unwrap();
        assert!(is_private(tls.path()).unwrap());
    }

    #[test]
    fn nothing_is_made_before_the_cluster() {
        let scratch = Scratch::new("early");
        let missing = scratch.0.join("no-cluster-yet");
        let err = TlsDir::at(&missing.join("tls")).ensure().unwrap_err();
        assert!(err.to_string().contains("does not exist yet"), "{err}");
        assert!(!missing.exists());
    }

    #[test]
    fn a_link_in_its_place_is_refused_not_followed() {
        // As in production, the directory's parent is postgres's (the
        // cluster's config directory), so postgres may have planted the link.
        let scratch = Scratch::new("link");
        let conf_dir = scratch.0.join("conf");
        fs::create_dir(&conf_dir).unwrap();
        std::os::unix::fs::chown(&conf_dir, Some(postgres().uid.as_raw()), None).unwrap();
        let target = scratch.0.join("elsewhere");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&target, conf_dir.join("tls")).unwrap();
        let err = TlsDir::at(&conf_dir.join("tls")).ensure().unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        let meta = fs::metadata(&target).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755));
    }

    #[test]
    fn etcd_gets_the_key_and_the_internal_cas_certificate_only() {
        let scratch = Scratch::new("etcd");
        let kept = scratch.kept();
        let group = postgres().gid.as_raw();
        let dir = EtcdTlsDir::new(&scratch.0.join("etcd.tls"), group);
        assert_eq!(
            dir.serve(&kept, "CA-I\n").unwrap(),
            None,
            "nothing kept yet"
        );
        let key = kept.ensure_key().unwrap();
        kept.keep_own(&pair("CERT-SELF\n", "CERT-SELF\n")).unwrap();
        assert_eq!(
            dir.serve(&kept, "CA-I\n").unwrap(),
            None,
            "not signed by the internal CA"
        );
        kept.keep_own(&pair("CERT-I\n", "CA-I\n")).unwrap();
        let files = dir.serve(&kept, "CA-I\n").unwrap().unwrap();
        assert_eq!(fs::read_to_string(&files.certificate).unwrap(), "CERT-I\n");
        assert_eq!(fs::read_to_string(&files.ca).unwrap(), "CA-I\n");
        assert_eq!(
            &fs::read_to_string(&files.key).unwrap(),
            key.to_pem().expose()
        );
        let meta = fs::metadata(scratch.0.join("etcd.tls")).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, group, 0o750)
        );
        for (path, mode) in [
            (&files.key, 0o640),
            (&files.certificate, 0o644),
            (&files.ca, 0o644),
        ] {
            let meta = fs::metadata(path).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid(), meta.mode() & 0o7777),
                (0, group, mode),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn serving_writes_postgres_files_and_puts_back_what_changed() {
        let scratch = Scratch::new("serve");
        let tls = scratch.served();
        let key = scratch.kept().ensure_key().unwrap();
        assert!(tls.serve(&key, &pair("CERT-A\n", "CA-A\n")).unwrap());
        assert!(!tls.serve(&key, &pair("CERT-A\n", "CA-A\n")).unwrap());
        assert!(tls.serve(&key, &pair("CERT-B\n", "CA-A\n")).unwrap());
        assert_eq!(tls.read(CERTIFICATE).unwrap().as_deref(), Some("CERT-B\n"));
        assert_eq!(tls.read(CA).unwrap().as_deref(), Some("CA-A\n"));
        let pg = postgres().uid.as_raw();
        for (name, mode) in [(KEY, 0o600), (CERTIFICATE, 0o644), (CA, 0o644)] {
            let meta = fs::metadata(tls.file(name)).unwrap();
            assert_eq!((meta.uid(), meta.mode() & 0o7777), (pg, mode), "{name}");
        }
        let served_key = tls.read(KEY).unwrap().unwrap();
        assert_eq!(&served_key, key.to_pem().expose());
        // Someone (acting as postgres) replaces the served key: put back.
        fs::write(tls.file(KEY), "tampered").unwrap();
        assert!(tls.serve(&key, &pair("CERT-B\n", "CA-A\n")).unwrap());
        assert_eq!(&tls.read(KEY).unwrap().unwrap(), key.to_pem().expose());
    }
}
