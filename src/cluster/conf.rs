//! The cluster's configuration files the charm owns: its file in `conf.d`,
//! `pg_hba.conf` and `pg_ident.conf`. Rendering is pure; writing is atomic
//! and only happens when the content changes, after the server binary has
//! validated the candidate (`postgres -C` on a scratch copy of the config),
//! so a bad value never reaches the live files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::unistd::{chown, User};

use super::{as_postgres, Cluster};

/// The charm's settings file, last in `conf.d` so it wins over earlier files.
pub const CHARM_CONF: &str = "conf.d/90-juju-charm.conf";

/// One postgresql.conf setting and why it has its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub reason: String,
}

impl Setting {
    pub fn new(name: &str, value: &str, reason: &str) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            reason: reason.into(),
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
    pub setting: Option<String>,
    pub message: String,
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
    let setting = message
        .split_once("parameter \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(name, _)| name.to_string());
    Rejected { setting, message }
}

/// Validates the cluster's configuration with `candidate` as the charm's
/// conf.d file, without touching the live files: the config directory is
/// copied to a scratch directory and `postgres -C` reads it from there.
pub fn validate(cluster: &Cluster, candidate: &str) -> Result<std::result::Result<(), Rejected>> {
    let scratch = ScratchDir::new(cluster)?;
    copy_config_with(cluster, candidate, &scratch.0)?;
    make_readable_by_postgres(&scratch.0)?;
    let out = as_postgres(&cluster.bin("postgres"))
        .arg("-C")
        .arg("data_directory")
        .arg("-c")
        .arg(format!(
            "config_file={}",
            scratch.0.join("postgresql.conf").display()
        ))
        .output()
        .context("running postgres -C to validate the configuration")?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    Ok(Err(parse_rejection(&String::from_utf8_lossy(&out.stderr))))
}

/// Copies the cluster's postgresql.conf and conf.d into `dest`, with
/// `candidate` as the charm's conf.d file, so the server can read a
/// configuration without it being live. Returns the copied postgresql.conf.
pub fn copy_config_with(cluster: &Cluster, candidate: &str, dest: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dest.join("conf.d"))?;
    let config_file = dest.join("postgresql.conf");
    std::fs::copy(cluster.conf_file(), &config_file)?;
    for entry in std::fs::read_dir(cluster.conf_dir().join("conf.d"))? {
        let entry = entry?;
        if entry.path().is_file() {
            std::fs::copy(entry.path(), dest.join("conf.d").join(entry.file_name()))?;
        }
    }
    std::fs::write(dest.join(CHARM_CONF), candidate)?;
    Ok(config_file)
}

struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(cluster: &Cluster) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "juju-pg-charm-validate-{}-{}",
            cluster.id(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make_readable_by_postgres(dir: &Path) -> Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for entry in walk(dir)? {
        let mode = if entry.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        }
        out.push(path);
    }
    Ok(out)
}

/// Writes `content` to `path` (owned by postgres, `mode`) unless it is
/// already there; returns whether the file changed. Atomic: a crash leaves
/// either the old or the new file.
pub fn write_if_changed(path: &Path, content: &str, mode: u32) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    let tmp = path.with_extension("juju-tmp");
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    chown_postgres(&tmp)?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(true)
}

pub fn chown_postgres(path: &Path) -> Result<()> {
    let user = User::from_name("postgres")?.context("no postgres system user")?;
    chown(path, Some(user.uid), Some(user.gid))
        .with_context(|| format!("chown postgres {}", path.display()))
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
