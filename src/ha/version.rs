//! Which Patroni the charm runs (pure).
//!
//! Patroni older than 3.0.3 writes the leader key with an unconditional put
//! when its lease expired, after reading the cluster from a possibly stale
//! etcd member: after a partition heals the old primary can take the key
//! back and promote its stale copy (measured: 3 of 6 runs lost 461–558
//! acknowledged rows with Debian 12's 3.0.2; fixed upstream in 3.0.3, "Make
//! sure the leader key isn't unconditionally overwritten"). So the charm
//! always installs the archive's `patroni` package (for its Python
//! dependencies), and runs it only when it is 3.0.3 or newer (Ubuntu 24.04:
//! 3.2.2); otherwise it runs the wheel bundled into the charm at pack time
//! ([`BundledWheel`], from `patroni-wheel.txt`). A Patroni older than 3.0.3 is
//! never run with etcd3.

use std::fmt;

use anyhow::{bail, Context, Result};

/// A Patroni release: `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PatroniVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl PatroniVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// `3.2.2`, `4.0` (patch 0), `3.0.2-1` or `3.0.2+deb12` (suffix ignored).
    pub fn parse(text: &str) -> Result<Self> {
        let core = text
            .trim()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap_or("");
        let mut parts = core.split('.');
        let mut number = |what: &str| -> Result<Option<u32>> {
            match parts.next() {
                None | Some("") => Ok(None),
                Some(p) => p
                    .parse()
                    .map(Some)
                    .with_context(|| format!("{what} {p:?} of Patroni version {text:?}")),
            }
        };
        let Some(major) = number("major")? else {
            bail!("{text:?} is not a Patroni version");
        };
        let Some(minor) = number("minor")? else {
            bail!("{text:?} is not a Patroni version (no minor number)");
        };
        let patch = number("patch")?.unwrap_or(0);
        Ok(Self::new(major, minor, patch))
    }

    /// Whether this release may run with etcd3 (see the module comment).
    pub fn is_safe_with_etcd3(self) -> bool {
        self >= MIN_SAFE
    }

    /// Whether `GET /cluster` reports a streaming replica as `streaming`
    /// (3.0.4 and later); before, every running replica is `running`,
    /// streaming or not.
    pub fn reports_streaming(self) -> bool {
        self >= PatroniVersion::new(3, 0, 4)
    }
}

impl fmt::Display for PatroniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The first release that never overwrites another member's leader key.
pub const MIN_SAFE: PatroniVersion = PatroniVersion::new(3, 0, 3);

/// The version in the output of `patroni --version`: `patroni 3.0.2` from
/// the archive's script, `__main__.py 3.2.2` from `python3 -m patroni`.
pub fn parse_version_output(output: &str) -> Result<PatroniVersion> {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .with_context(|| "`patroni --version` printed nothing".to_string())?;
    let word = line
        .split_whitespace()
        .last()
        .expect("a non-empty line has a word");
    PatroniVersion::parse(word)
        .with_context(|| format!("reading the output of `patroni --version`: {line:?}"))
}

/// The wheel bundled into the charm: `patroni-wheel.txt`, one line in pip's
/// requirements format (`patroni==X.Y.Z --hash=sha256:<hex>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundledWheel {
    pub version: PatroniVersion,
    pub sha256: String,
}

const WHEEL_REQUIREMENT: &str = include_str!("../../patroni-wheel.txt");

impl BundledWheel {
    /// The charm's bundled wheel.
    pub fn charm() -> Self {
        Self::parse(WHEEL_REQUIREMENT).expect("patroni-wheel.txt is valid (tested)")
    }

    pub fn parse(requirements: &str) -> Result<Self> {
        let line = requirements
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .context("no requirement line")?;
        let mut words = line.split_whitespace();
        let spec = words.next().expect("non-empty");
        let Some(version) = spec.strip_prefix("patroni==") else {
            bail!("{spec:?} does not pin patroni with ==");
        };
        let version = PatroniVersion::parse(version)?;
        let hashes: Vec<&str> = words
            .filter_map(|w| w.strip_prefix("--hash=sha256:"))
            .collect();
        let [sha256] = hashes[..] else {
            bail!(
                "expected exactly one --hash=sha256:, found {}",
                hashes.len()
            );
        };
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{sha256:?} is not a sha256 in hex");
        }
        Ok(Self {
            version,
            sha256: sha256.to_ascii_lowercase(),
        })
    }

    /// The wheel's file name, as pip downloads it.
    pub fn file_name(&self) -> String {
        format!("patroni-{}-py3-none-any.whl", self.version)
    }
}

/// What the archive offers, as found on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchivePatroni {
    /// `patroni --version` said this.
    Version(PatroniVersion),
    /// No usable version (not installed, or the output made no sense).
    Unknown(String),
}

/// Which Patroni to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatroniChoice {
    /// The archive's `/usr/bin/patroni`.
    Archive(PatroniVersion),
    /// The bundled wheel, and why the archive's is not used.
    Bundled {
        version: PatroniVersion,
        reason: String,
    },
}

impl PatroniChoice {
    pub fn version(&self) -> PatroniVersion {
        match self {
            PatroniChoice::Archive(v) => *v,
            PatroniChoice::Bundled { version, .. } => *version,
        }
    }
}

/// The archive's Patroni when it is safe with etcd3, else the bundled one.
/// Fails only when neither is safe (a broken `patroni-wheel.txt`).
pub fn choose(archive: &ArchivePatroni, bundled: &BundledWheel) -> Result<PatroniChoice> {
    let reason = match archive {
        ArchivePatroni::Version(v) if v.is_safe_with_etcd3() => {
            return Ok(PatroniChoice::Archive(*v));
        }
        ArchivePatroni::Version(v) => format!(
            "the archive's Patroni {v} is older than {MIN_SAFE}, which can lose acknowledged \
             writes after a partition heals"
        ),
        ArchivePatroni::Unknown(why) => format!("the archive's Patroni is unusable: {why}"),
    };
    if !bundled.version.is_safe_with_etcd3() {
        bail!(
            "{reason}, and the bundled Patroni {} is older than {MIN_SAFE} too",
            bundled.version
        );
    }
    Ok(PatroniChoice::Bundled {
        version: bundled.version,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_output_of_every_packaging_is_understood() {
        let cases = [
            ("patroni 3.0.2\n", (3, 0, 2)),
            ("patroni 2.1.3", (2, 1, 3)),
            ("__main__.py 3.2.2\n", (3, 2, 2)),
            ("patroni 4.0.4", (4, 0, 4)),
            ("\n  patroni 4.1\n", (4, 1, 0)),
            ("patroni 3.0.2-1", (3, 0, 2)),
        ];
        for (output, (a, b, c)) in cases {
            assert_eq!(
                parse_version_output(output).unwrap(),
                PatroniVersion::new(a, b, c),
                "{output:?}"
            );
        }
    }

    #[test]
    fn nonsense_version_output_is_an_error_quoting_it() {
        for output in ["", "\n\n", "patroni", "patroni x.y", "patroni 3"] {
            let e = parse_version_output(output).unwrap_err();
            assert!(format!("{e:#}").contains("patroni"), "{output:?}: {e:#}");
        }
    }

    #[test]
    fn the_gate_is_3_0_3() {
        let safe = |s| PatroniVersion::parse(s).unwrap().is_safe_with_etcd3();
        assert!(!safe("2.1.3"));
        assert!(!safe("3.0.2"));
        assert!(safe("3.0.3"));
        assert!(safe("3.2.2"));
        assert!(safe("4.0.4"));
        assert!(!PatroniVersion::parse("3.0.3").unwrap().reports_streaming());
        assert!(PatroniVersion::parse("3.0.4").unwrap().reports_streaming());
    }

    fn wheel() -> BundledWheel {
        BundledWheel::charm()
    }

    #[test]
    fn the_charm_bundles_patroni_3_2_2_pinned_by_hash() {
        let w = wheel();
        assert_eq!(w.version, PatroniVersion::new(3, 2, 2));
        assert_eq!(w.file_name(), "patroni-3.2.2-py3-none-any.whl");
        assert_eq!(w.sha256.len(), 64);
    }

    #[test]
    fn requirement_lines_without_a_single_hash_or_pin_are_refused() {
        let h = "a".repeat(64);
        assert!(BundledWheel::parse(&format!("patroni==3.2.2 --hash=sha256:{h}")).is_ok());
        for bad in [
            "patroni>=3.2.2 --hash=sha256:".to_string() + &h,
            "patroni==3.2.2".to_string(),
            format!("patroni==3.2.2 --hash=sha256:{h} --hash=sha256:{h}"),
            "patroni==3.2.2 --hash=sha256:abc".to_string(),
            "# only a comment".to_string(),
        ] {
            assert!(BundledWheel::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn choice_uses_the_archive_only_from_3_0_3() {
        let v = |s| ArchivePatroni::Version(PatroniVersion::parse(s).unwrap());
        assert_eq!(
            choose(&v("3.2.2"), &wheel()).unwrap(),
            PatroniChoice::Archive(PatroniVersion::new(3, 2, 2))
        );
        assert_eq!(
            choose(&v("4.0.4"), &wheel()).unwrap().version(),
            PatroniVersion::new(4, 0, 4)
        );
        for old in ["3.0.2", "2.1.3"] {
            match choose(&v(old), &wheel()).unwrap() {
                PatroniChoice::Bundled { version, reason } => {
                    assert_eq!(version, PatroniVersion::new(3, 2, 2));
                    assert!(reason.contains(old) && reason.contains("3.0.3"), "{reason}");
                }
                other => panic!("{old}: {other:?}"),
            }
        }
        let unknown = ArchivePatroni::Unknown("/usr/bin/patroni is missing".into());
        assert!(matches!(
            choose(&unknown, &wheel()).unwrap(),
            PatroniChoice::Bundled { .. }
        ));
        let old_wheel = BundledWheel {
            version: PatroniVersion::new(3, 0, 2),
            sha256: "a".repeat(64),
        };
        assert!(choose(&v("3.0.2"), &old_wheel).is_err());
    }
}
