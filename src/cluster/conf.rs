//! The cluster's configuration files the charm owns: its file in `conf.d`,
//! `pg_hba.conf` and `pg_ident.conf`. Rendering is pure; writing is atomic
//! and only happens when the content changes, after the server binary has
//! validated the candidate (`postgres -C` on a scratch copy of the config),
//! so a bad value never reaches the live files.
//!
//! The configuration directory belongs to `postgres`, so every write goes
//! through [`fsx::write_atomic`] and every read through [`fsx::read`]: no
//! link planted there is ever followed, and a power cut leaves the old file
//! or the new one, never an empty `pg_hba.conf`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{as_postgres, Cluster};
use crate::fsx::{self, Owner, Scratch};

/// The charm's settings file, last in `conf.d` so it wins over earlier files.
pub const CHARM_CONF: &str = "conf.d/90-juju-charm.conf";

/// One postgresql.conf setting, why it has its value, and whether it must
/// be the same on every member of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub reason: String,
    pub scope: Scope,
}

impl Setting {
    pub fn new(name: &str, value: &str, reason: &str) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            reason: reason.into(),
            scope: Scope::of(name),
        }
    }
}

/// Where a setting belongs once several units serve one cluster. Today the
/// charm writes every setting to its conf.d file; with Patroni, the
/// cluster-wide ones go to Patroni's shared (DCS) configuration instead,
/// because Patroni passes them on the server's command line, which wins over
/// any file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Must be equal on the primary and its standbys.
    ClusterWide,
    /// May differ from member to member (memory, disks).
    Member,
}

/// The settings Patroni sets for the whole cluster, on the command line.
const CLUSTER_WIDE: [&str; 9] = [
    "max_connections",
    "max_locks_per_transaction",
    "max_prepared_transactions",
    "max_replication_slots",
    "max_wal_senders",
    "max_worker_processes",
    "track_commit_timestamp",
    "wal_level",
    "wal_log_hints",
];

impl Scope {
    pub fn of(name: &str) -> Scope {
        if CLUSTER_WIDE.contains(&name) {
            Scope::ClusterWide
        } else {
            Scope::Member
        }
    }
}

/// The charm's conf.d file: one `name = value` line per setting, each with
/// its reason as a comment. Later settings override earlier ones, so
/// `extra-pg-conf` goes last.
pub fn render_charm_conf(settings: &[Setting]) -> String {
    let mut out = String::from(
        "# Managed by the PostgreSQL charm (juju-pg-charm): edits are overwritten.\n\
         # Set your own values with the charm's `extra-pg-conf` option.\n",
    );
    for s in settings {
        out.push_str(&format!(
            "\n# {}\n{} = {}\n",
            s.reason.replace('\n', " "),
            s.name,
            s.value
        ));
    }
    out
}

/// The value of `name` in postgresql.conf text (last assignment wins).
pub fn setting_in(text: &str, name: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let (key, value) = line.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('\'').to_string())
    })
}

/// A setting the server refused, from `postgres -C`'s complaint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The parameter the server names, if it names one.
    pub setting: Option<String>,
    /// The file the server names (`in file "..."`), if any.
    pub file: Option<String>,
    pub message: String,
}

impl Rejected {
    /// Whether the complaint is about the charm's own conf.d file.
    pub fn in_charm_conf(&self) -> bool {
        self.file
            .as_deref()
            .is_some_and(|file| file.ends_with(CHARM_CONF))
    }
}

/// Picks the parameter name out of the server's complaint, e.g.
/// `invalid value for parameter "work_mem": "lots"`.
pub fn parse_rejection(stderr: &str) -> Rejected {
    let interesting = stderr
        .lines()
        .find(|l| l.contains("parameter") || l.contains("syntax error"))
        .or_else(|| stderr.lines().find(|l| l.contains("FATAL")))
        .unwrap_or(stderr)
        .trim();
    let message = interesting
        .split_once("LOG:")
        .or_else(|| interesting.split_once("FATAL:"))
        .map(|(_, m)| m.trim())
        .unwrap_or(interesting)
        .to_string();
    let quoted_after = |marker: &str| {
        message
            .split_once(marker)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| name.to_string())
    };
    // `in file "..."` on the line itself, or the FATAL line's
    // `configuration file "..." contains errors`.
    let file = quoted_after("in file \"").or_else(|| {
        stderr
            .split_once("configuration file \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(file, _)| file.to_string())
    });
    Rejected {
        setting: quoted_after("parameter \""),
        file,
        message: message.clone(),
    }
}

/// Validates the cluster's configuration with `candidate` as the charm's
/// conf.d file, without touching the live files: the config directory is
/// copied to a scratch directory and `postgres -C` reads it from there.
pub fn validate(cluster: &Cluster, candidate: &str) -> Result<std::result::Result<(), Rejected>> {
    let scratch = Scratch::new("validate")?;
    let config_file = copy_config_with(cluster, candidate, &scratch, "")?;
    scratch.share()?;
    let out = as_postgres(&cluster.bin("postgres"))
        .arg("-C")
        .arg("data_directory")
        .arg("-c")
        .arg(format!("config_file={}", config_file.display()))
        .output()
        .context("running postgres -C to validate the configuration")?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    // Name the live files, not their scratch copies.
    let stderr = String::from_utf8_lossy(&out.stderr).replace(
        &scratch.path().display().to_string(),
        &cluster.conf_dir().display().to_string(),
    );
    Ok(Err(parse_rejection(&stderr)))
}

/// The server's verdict on the charm's conf.d file, asked at most once per
/// hook: the live file was validated when it was written, and a candidate
/// already judged in this hook is not judged again. Host tuning asks before
/// it sizes the host for a configuration, and the converge before it writes
/// the file; with the same candidate, `postgres -C` runs once.
pub struct ConfigCheck<'a> {
    cluster: &'a Cluster,
    live: Option<String>,
    verdict: std::cell::RefCell<Option<(String, std::result::Result<(), Rejected>)>>,
}

impl<'a> ConfigCheck<'a> {
    /// Reads the live conf.d file of `cluster` (missing: `None`).
    pub fn new(cluster: &'a Cluster) -> Self {
        ConfigCheck {
            live: fsx::read_to_string(&cluster.conf_dir().join(CHARM_CONF)).ok(),
            cluster,
            verdict: std::cell::RefCell::new(None),
        }
    }

    /// The charm's conf.d file as it is in force.
    pub fn live(&self) -> Option<&str> {
        self.live.as_deref()
    }

    /// Whether `candidate` is the file in force already.
    pub fn is_live(&self, candidate: &str) -> bool {
        self.live.as_deref() == Some(candidate)
    }

    /// `Ok(Err(..))` when the server rejects `candidate` ([`validate`]).
    pub fn check(&self, candidate: &str) -> Result<std::result::Result<(), Rejected>> {
        if self.is_live(candidate) {
            return Ok(Ok(()));
        }
        if let Some((judged, verdict)) = self.verdict.borrow().as_ref() {
            if judged == candidate {
                return Ok(verdict.clone());
            }
        }
        let verdict = validate(self.cluster, candidate)?;
        *self.verdict.borrow_mut() = Some((candidate.to_string(), verdict.clone()));
        Ok(verdict)
    }
}

/// Copies the cluster's postgresql.conf and conf.d into `below` in
/// `scratch` (readable by postgres once shared), with `candidate` as the
/// charm's conf.d file, so the server can read a configuration without it
/// being live. Returns the copied postgresql.conf. A conf.d entry that is
/// a link or not a regular file is left out (and logged): the charm does not
/// read through links in directories postgres owns.
pub fn copy_config_with(
    cluster: &Cluster,
    candidate: &str,
    scratch: &Scratch,
    below: &str,
) -> Result<PathBuf> {
    let relative = |name: &str| {
        if below.is_empty() {
            name.to_string()
        } else {
            format!("{below}/{name}")
        }
    };
    // Under Patroni, its postgresql.conf sets (after including Debian's
    // file, renamed postgresql.base.conf) the values the charm gave it
    // before: those would override the candidate, so a bad candidate would
    // pass. Debian's file with conf.d is what the candidate belongs to.
    let base = cluster.base_conf_file();
    let main_file = if base.exists() {
        base
    } else {
        cluster.conf_file()
    };
    let main = fsx::read(&main_file).with_context(|| format!("reading {}", main_file.display()))?;
    let config_file = scratch.write(&relative("postgresql.conf"), &main, 0o644)?;
    let conf_d = cluster.conf_dir().join("conf.d");
    let entries =
        std::fs::read_dir(&conf_d).with_context(|| format!("listing {}", conf_d.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| !n.contains('/')) else {
            continue;
        };
        if format!("conf.d/{name}") == CHARM_CONF {
            continue;
        }
        match fsx::read(&entry.path()) {
            Ok(bytes) => {
                scratch.write(&relative(&format!("conf.d/{name}")), &bytes, 0o644)?;
            }
            Err(e) => log::warn!("validating without {}: {e}", entry.path().display()),
        }
    }
    scratch.write(&relative(CHARM_CONF), candidate.as_bytes(), 0o644)?;
    Ok(config_file)
}

/// Writes `content` to `path` (owned by postgres, `mode`) unless it is
/// already there; returns whether the file changed. Atomic and durable, and
/// never through a link ([`fsx::write_atomic`]).
pub fn write_if_changed(path: &Path, content: &str, mode: u32) -> Result<bool> {
    fsx::write_atomic(path, content.as_bytes(), Owner::postgres()?, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_name_the_parameter() {
        let cases = [
            (
                "2026-11-23 LOG:  invalid value for parameter \"work_mem\": \"lots\"\n2026 FATAL:  configuration file \"/x/conf.d/90.conf\" contains errors",
                Some("work_mem"),
                "invalid value for parameter \"work_mem\": \"lots\"",
            ),
            (
                "2026 LOG:  unrecognized configuration parameter \"foo_bar\" in file \"/x\" line 1\n2026 FATAL: x",
                Some("foo_bar"),
                "unrecognized configuration parameter \"foo_bar\" in file \"/x\" line 1",
            ),
            (
                "2026 LOG:  syntax error in file \"/x\" line 3, near token \"'\"\n",
                None,
                "syntax error in file \"/x\" line 3, near token \"'\"",
            ),
        ];
        for (stderr, setting, message) in cases {
            let r = parse_rejection(stderr);
            assert_eq!(r.setting.as_deref(), setting);
            assert_eq!(r.message, message);
            let file = if message.contains("in file") {
                "/x"
            } else {
                "/x/conf.d/90.conf"
            };
            assert_eq!(r.file.as_deref(), Some(file));
        }
    }

    #[test]
    fn settings_patroni_sets_for_the_whole_cluster_are_cluster_wide() {
        for name in ["max_connections", "wal_level", "max_wal_senders"] {
            assert_eq!(
                Setting::new(name, "1", "x").scope,
                Scope::ClusterWide,
                "{name}"
            );
        }
        for name in [
            "shared_buffers",
            "work_mem",
            "huge_pages",
            "listen_addresses",
        ] {
            assert_eq!(Setting::new(name, "1", "x").scope, Scope::Member, "{name}");
        }
    }

    #[test]
    fn settings_render_with_reasons_and_read_back() {
        let text = render_charm_conf(&[
            Setting::new(
                "listen_addresses",
                "'*'",
                "clients connect over the network",
            ),
            Setting::new("work_mem", "64MB", "from extra-pg-conf\ninjected"),
        ]);
        assert!(text.contains("\n# clients connect over the network\nlisten_addresses = '*'\n"));
        assert!(text.contains("# from extra-pg-conf injected\nwork_mem = 64MB\n"));
        assert_eq!(setting_in(&text, "work_mem").as_deref(), Some("64MB"));
        assert_eq!(
            setting_in("data_directory = '/srv/x'  # here\n", "data_directory").as_deref(),
            Some("/srv/x")
        );
        assert_eq!(setting_in("a = 1\na = 2\n", "a").as_deref(), Some("2"));
    }
}
