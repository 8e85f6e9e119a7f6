//! The charm's long-running processes (etcd, Patroni, the watcher): systemd
//! units where systemd is PID 1 ([`Systemd`]), detached processes elsewhere
//! ([`Detached`]): own session (`setsid`), the service's user through
//! `setpriv` (which execs, so the pid is the service's), environment from
//! scratch, output appended to a root-only log, pid **and start time**
//! recorded in the charm's state directory (a recycled pid is never taken
//! for the service).
//!
//! The detached path keeps, per service, what to run and whether it should
//! run (`service-<kind>.json`): the watcher restarts a dead service only
//! when it should run, so a stop by the charm is never undone. Every start
//! and stop, by the charm or the watcher, holds `services.lock` (flock).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::etcd_config::parse_env_file;
use super::ServiceKind;
use crate::fsx::{self, Owner};
use crate::state::ha::{self as ha_files, ServiceFile};
use crate::state::StateDir;

/// Whether systemd runs this machine.
pub fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// What a detached service runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub kind: ServiceKind,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The account it runs as (`postgres`, `etcd`, `root`).
    pub user: String,
    /// Its `HOME`.
    pub home: PathBuf,
    /// Variables read at each start from this file (`KEY=value` lines).
    pub env_file: Option<PathBuf>,
    pub log: PathBuf,
    /// Whether it should run (the watcher restarts it only then).
    pub wanted: bool,
    /// For Patroni under systemd: the server its unit's `ExecStop=` stops
    /// when Patroni died by itself (`crate::ha::units`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_postgres: Option<PostgresStop>,
}

/// The server a Patroni unit stops when Patroni is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresStop {
    pub bin_dir: PathBuf,
    pub data_dir: PathBuf,
}

/// One unit's long-running services, run by whichever supervisor the
/// machine has: systemd units where systemd is PID 1, detached processes
/// elsewhere. Both backends record each service's [`ServiceSpec`] (and
/// whether it should run) in the state directory, so "does this unit run
/// HA services at all" has one answer.
#[derive(Debug, Clone)]
pub struct Services {
    detached: Detached,
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Detached,
    /// Units named and placed as `HaPaths` says.
    Systemd(Box<super::HaPaths>),
}

impl Services {
    /// The services of the cluster `paths` names, under systemd when it
    /// runs this machine.
    pub fn new(state: StateDir, paths: &super::HaPaths) -> Self {
        Self::with_backend(state, paths, systemd_runs())
    }

    fn with_backend(state: StateDir, paths: &super::HaPaths, systemd: bool) -> Self {
        let backend = if systemd {
            Backend::Systemd(Box::new(paths.clone()))
        } else {
            Backend::Detached
        };
        Self {
            detached: Detached::new(state),
            backend,
        }
    }

    /// Whether a supervisor other than the charm's watcher restarts dead
    /// services (systemd's `Restart=`).
    pub fn restarted_by_supervisor(&self) -> bool {
        matches!(self.backend, Backend::Systemd(_))
    }

    pub fn spec(&self, kind: ServiceKind) -> Option<ServiceSpec> {
        self.detached.spec(kind)
    }

    /// The running process of `kind`, if any (under systemd, the unit's
    /// main process).
    pub fn running(&self, kind: ServiceKind) -> Option<PidRecord> {
        match &self.backend {
            Backend::Detached => self.detached.running(kind),
            Backend::Systemd(paths) => {
                let pid = Systemd::main_pid(&paths.service_name(kind))?;
                PidRecord::of(pid)
            }
        }
    }

    /// Starts `spec` unless it runs; records that it should run. Under
    /// systemd: the unit file written (and systemd told when it changed),
    /// then `enable --now`. A running service is not restarted for a
    /// changed unit, as a detached one is not for a changed spec.
    pub fn start(&self, spec: &ServiceSpec) -> Result<()> {
        match &self.backend {
            Backend::Detached => self.detached.start(spec).map(drop),
            Backend::Systemd(paths) => {
                let mut wanted = spec.clone();
                wanted.wanted = true;
                self.detached.record_spec(&wanted)?;
                let unit = paths.service_name(spec.kind);
                let after = (spec.kind == ServiceKind::Patroni)
                    .then(|| format!("{}.service", paths.service_name(ServiceKind::Etcd)));
                let text = unit_text(spec, after.as_deref());
                if Systemd::install_unit(&paths.unit_file(spec.kind), &text)? {
                    Systemd::daemon_reload()?;
                }
                Systemd::enable_now(&unit)
                    .with_context(|| format!("starting {unit}; see `journalctl -u {unit}`"))
            }
        }
    }

    /// Stops `kind`; it will not be restarted (see [`Detached::stop`];
    /// under systemd the unit's own `TimeoutStopSec=` bounds the stop).
    pub fn stop(&self, kind: ServiceKind, grace: Duration, kill_after: bool) -> Result<()> {
        match &self.backend {
            Backend::Detached => self.detached.stop(kind, grace, kill_after),
            Backend::Systemd(paths) => {
                if let Some(mut spec) = self.spec(kind) {
                    spec.wanted = false;
                    self.detached.record_spec(&spec)?;
                }
                let unit = paths.service_name(kind);
                if Systemd::is_loaded(&unit) {
                    Systemd::disable_now(&unit)?;
                }
                Ok(())
            }
        }
    }

    /// Forgets `kind` entirely (unit removal), after [`Services::stop`]:
    /// under systemd its unit file goes too.
    pub fn forget(&self, kind: ServiceKind) -> Result<()> {
        if let Backend::Systemd(paths) = &self.backend {
            if fsx::remove_file(&paths.unit_file(kind))? {
                Systemd::daemon_reload()?;
            }
        }
        self.detached.forget(kind)
    }
}

/// The systemd unit that runs `spec` (pure): `ExecStart=` is the program
/// and its arguments, each quoted for systemd; etcd reads its environment
/// file; Patroni starts after etcd and stops what it left behind.
pub fn unit_text(spec: &ServiceSpec, after: Option<&str>) -> String {
    let exec_start: Vec<String> = std::iter::once(spec.program.to_string_lossy().into_owned())
        .chain(spec.args.iter().cloned())
        .map(|word| systemd_quote(&word))
        .collect();
    let exec_start = exec_start.join(" ");
    super::units::render(&super::units::UnitSpec {
        kind: spec.kind,
        exec_start: &exec_start,
        environment_file: spec.env_file.as_deref(),
        postgres: spec
            .stop_postgres
            .as_ref()
            .map(|pg| super::units::PostgresForStop {
                bin_dir: &pg.bin_dir,
                data_dir: &pg.data_dir,
            }),
        after,
    })
}

/// One word of a systemd command line: bare when it holds nothing systemd
/// reads specially, else double-quoted with `\`, `"`, `$` and `%` escaped
/// (`$$` and `%%` are systemd's literal `$` and `%`).
fn systemd_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c));
    if plain {
        return word.to_string();
    }
    let mut quoted = String::from("\"");
    for c in word.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '$' => quoted.push_str("$$"),
            '%' => quoted.push_str("%%"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A started process: its pid and its start time (clock ticks since boot,
/// `/proc/<pid>/stat` field 22), which together name it for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidRecord {
    pub pid: i32,
    pub start_time: u64,
}

impl PidRecord {
    /// The process, if it still runs (and is not a zombie).
    pub fn of(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (state, start_time) = parse_stat(&stat)?;
        (state != 'Z' && state != 'X').then_some(Self { pid, start_time })
    }

    pub fn is_alive(&self) -> bool {
        Self::of(self.pid).is_some_and(|now| now.start_time == self.start_time)
    }
}

/// State and start time from a `/proc/<pid>/stat` line (the command name
/// in parentheses may hold spaces and parentheses).
pub fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; field 22 (starttime) is fields[19].
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Detached services of one unit, recorded in its state directory.
#[derive(Debug, Clone)]
pub struct Detached {
    pub state: StateDir,
}

impl Detached {
    pub fn new(state: StateDir) -> Self {
        Self { state }
    }

    /// Holds the services lock until dropped.
    fn lock(&self) -> Result<Flock<File>> {
        let file = File::open(ha_files::services_lock(&self.state)?)
            .context("opening the services lock")?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .context("locking the services lock")
    }

    pub fn spec(&self, kind: ServiceKind) -> Option<ServiceSpec> {
        ha_files::service_record(&self.state, ServiceFile::Spec, kind.as_str())
    }

    /// Records what `spec.kind` runs and whether it should run.
    fn record_spec(&self, spec: &ServiceSpec) -> Result<()> {
        let _lock = self.lock()?;
        ha_files::save_service_record(&self.state, ServiceFile::Spec, spec.kind.as_str(), spec)
    }

    /// The running process of `kind`, if any.
    pub fn running(&self, kind: ServiceKind) -> Option<PidRecord> {
        let record: PidRecord =
            ha_files::service_record(&self.state, ServiceFile::Pid, kind.as_str())?;
        record.is_alive().then_some(record)
    }

    /// Starts `spec` unless it runs; records that it should run.
    pub fn start(&self, spec: &ServiceSpec) -> Result<PidRecord> {
        let _lock = self.lock()?;
        let mut spec = spec.clone();
        spec.wanted = true;
        ha_files::save_service_record(&self.state, ServiceFile::Spec, spec.kind.as_str(), &spec)?;
        if let Some(running) = self.running(spec.kind) {
            return Ok(running);
        }
        self.spawn(&spec)
    }

    /// Restarts `kind` if it should run and does not (the watcher).
    /// Returns the new process when it started one.
    pub fn revive(&self, kind: ServiceKind) -> Result<Option<PidRecord>> {
        let _lock = self.lock()?;
        let Some(spec) = self.spec(kind).filter(|s| s.wanted) else {
            return Ok(None);
        };
        if self.running(kind).is_some() {
            return Ok(None);
        }
        self.spawn(&spec).map(Some)
    }

    fn spawn(&self, spec: &ServiceSpec) -> Result<PidRecord> {
        let log = open_log(&spec.log)?;
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("HOME".into(), spec.home.to_string_lossy().into_owned()),
            ("USER".into(), spec.user.clone()),
            ("LOGNAME".into(), spec.user.clone()),
        ];
        if let Some(file) = &spec.env_file {
            let text =
                fsx::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            env.extend(
                parse_env_file(&text).with_context(|| format!("reading {}", file.display()))?,
            );
        }
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={}", spec.user))
            .arg(format!("--regid={}", spec.user))
            .arg("--init-groups")
            .arg("--")
            .arg(&spec.program)
            .args(&spec.args)
            .env_clear()
            .envs(env)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", spec.program.display()))?;
        let pid = child.id() as i32;
        // Its start time, read while it surely exists (not yet reaped: it
        // is our child until this process exits).
        let record = PidRecord::of(pid).with_context(|| {
            format!(
                "{} exited at once; see {}",
                spec.program.display(),
                spec.log.display()
            )
        })?;
        ha_files::save_service_record(&self.state, ServiceFile::Pid, spec.kind.as_str(), &record)?;
        log::info!("started {} (pid {pid})", spec.kind.as_str());
        Ok(record)
    }

    /// Stops `kind` (SIGTERM, then waits up to `grace`); it will not be
    /// restarted. Returns an error if it still runs after `grace`, unless
    /// `kill_after` (then SIGKILL): never for Patroni, whose SIGKILL would
    /// leave postgres running.
    pub fn stop(&self, kind: ServiceKind, grace: Duration, kill_after: bool) -> Result<()> {
        let _lock = self.lock()?;
        if let Some(mut spec) = self.spec(kind) {
            spec.wanted = false;
            ha_files::save_service_record(&self.state, ServiceFile::Spec, kind.as_str(), &spec)?;
        }
        let Some(record) = self.running(kind) else {
            return Ok(());
        };
        let pid = Pid::from_raw(record.pid);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while record.is_alive() {
            if Instant::now() > deadline {
                if kill_after {
                    let _ = kill(pid, Signal::SIGKILL);
                    std::thread::sleep(Duration::from_millis(200));
                    break;
                }
                bail!(
                    "{} (pid {}) did not stop within {} s",
                    kind.as_str(),
                    record.pid,
                    grace.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        ha_files::remove_service_record(&self.state, ServiceFile::Pid, kind.as_str())
    }

    /// Forgets `kind` entirely (unit removal), after [`Detached::stop`].
    pub fn forget(&self, kind: ServiceKind) -> Result<()> {
        ha_files::remove_service_record(&self.state, ServiceFile::Spec, kind.as_str())?;
        ha_files::remove_service_record(&self.state, ServiceFile::Pid, kind.as_str())
    }
}

fn open_log(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        fsx::create_dir_all(dir, Owner::current(), 0o700)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// systemd, through `systemctl`.
pub struct Systemd;

impl Systemd {
    fn systemctl(args: &[&str]) -> Result<String> {
        crate::cluster::run(Command::new("systemctl").args(args))
    }

    /// Writes the unit file (root's, 0644); returns whether it changed, in
    /// which case the caller runs [`Systemd::daemon_reload`].
    pub fn install_unit(path: &Path, text: &str) -> Result<bool> {
        fsx::write_atomic(path, text.as_bytes(), Owner::current(), 0o644)
    }

    pub fn daemon_reload() -> Result<()> {
        Self::systemctl(&["daemon-reload"]).map(drop)
    }

    pub fn enable_now(unit: &str) -> Result<()> {
        Self::systemctl(&["enable", "--now", unit]).map(drop)
    }

    pub fn restart(unit: &str) -> Result<()> {
        Self::systemctl(&["restart", unit]).map(drop)
    }

    pub fn stop(unit: &str) -> Result<()> {
        Self::systemctl(&["stop", unit]).map(drop)
    }

    pub fn disable_now(unit: &str) -> Result<()> {
        Self::systemctl(&["disable", "--now", unit]).map(drop)
    }

    /// The unit's main process, when it runs one.
    pub fn main_pid(unit: &str) -> Option<i32> {
        let out = Self::systemctl(&["show", "--property=MainPID", "--value", unit]).ok()?;
        out.trim().parse().ok().filter(|pid| *pid > 0)
    }

    /// Whether systemd knows the unit (its file is installed).
    pub fn is_loaded(unit: &str) -> bool {
        Self::systemctl(&["show", "--property=LoadState", "--value", unit])
            .is_ok_and(|state| state.trim() == "loaded")
    }

    pub fn is_active(unit: &str) -> bool {
        Command::new("systemctl")
            .args(["is-active", "--quiet", unit])
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn mask(unit: &str) -> Result<()> {
        Self::systemctl(&["mask", unit]).map(drop)
    }

    pub fn unmask(unit: &str) -> Result<()> {
        Self::systemctl(&["unmask", unit]).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_strange_command_names() {
        let line =
            "4242 (pat (ro) ni) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("1 (x) Z 0"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_recycled_pid_is_not_it() {
        let me = PidRecord::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = PidRecord {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
    }

    fn spec(kind: ServiceKind, program: &str, args: &[&str]) -> ServiceSpec {
        ServiceSpec {
            kind,
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            user: "postgres".into(),
            home: "/var/lib/postgresql".into(),
            env_file: None,
            log: "/var/log/juju-pg-charm/x.log".into(),
            wanted: true,
            stop_postgres: None,
        }
    }

    #[test]
    fn systemd_words_are_quoted_only_when_systemd_would_read_them() {
        for (word, quoted) in [
            ("/usr/bin/patroni", "/usr/bin/patroni"),
            (
                "/etc/patroni/juju-pg-15-main.json",
                "/etc/patroni/juju-pg-15-main.json",
            ),
            ("--unit=postgresql/0", "--unit=postgresql/0"),
            ("two words", "\"two words\""),
            ("$HOME", "\"$$HOME\""),
            ("50%", "\"50%%\""),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("", "\"\""),
        ] {
            assert_eq!(systemd_quote(word), quoted, "{word}");
        }
    }

    #[test]
    fn a_systemd_unit_runs_what_the_detached_path_runs() {
        let mut patroni = spec(
            ServiceKind::Patroni,
            "/var/lib/juju-pg-patroni/bin/patroni",
            &["/etc/patroni/juju-pg-15-main.json"],
        );
        patroni.stop_postgres = Some(PostgresStop {
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            data_dir: "/srv/pgdata/15/main".into(),
        });
        let text = unit_text(&patroni, Some("juju-pg-etcd-main.service"));
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "ExecStart=/var/lib/juju-pg-patroni/bin/patroni /etc/patroni/juju-pg-15-main.json",
            "After=network-online.target juju-pg-etcd-main.service",
            "User=postgres",
        ] {
            assert!(lines.contains(&want), "{want} missing:\n{text}");
        }
        assert!(
            text.contains("/usr/lib/postgresql/15/bin/pg_ctl stop -D /srv/pgdata/15/main"),
            "{text}"
        );

        let mut etcd = spec(ServiceKind::Etcd, "/usr/bin/etcd", &[]);
        etcd.env_file = Some("/etc/default/juju-pg-etcd-main".into());
        let text = unit_text(&etcd, None);
        assert!(text.contains("\nEnvironmentFile=/etc/default/juju-pg-etcd-main\n"));
        assert!(text.contains("\nExecStart=/usr/bin/etcd\n"));
        assert!(!text.contains("pg_ctl"));

        let watcher = spec(
            ServiceKind::HaWatcher,
            "/var/lib/juju/agents/unit-postgresql-0/charm/bin/pg-ha-watcher",
            &["/var/lib/juju-pg-charm/main"],
        );
        assert!(unit_text(&watcher, None).contains(
            "\nExecStart=/var/lib/juju/agents/unit-postgresql-0/charm/bin/pg-ha-watcher \
             /var/lib/juju-pg-charm/main\n"
        ));
    }

    #[test]
    fn the_backend_follows_the_machine() {
        let paths = crate::ha::HaPaths::for_cluster(15, "main");
        let state = StateDir::at(Path::new("/nonexistent/state"));
        let systemd = Services::with_backend(state.clone(), &paths, true);
        assert!(systemd.restarted_by_supervisor());
        assert_eq!(
            paths.unit_file(ServiceKind::Patroni),
            Path::new("/etc/systemd/system/juju-pg-patroni-main.service")
        );
        let detached = Services::with_backend(state, &paths, false);
        assert!(!detached.restarted_by_supervisor());
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ha-services-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Needs `setpriv` and root (to switch to root: the only user every
    /// test machine has); detached, recorded, revived, stopped.
    #[test]
    fn a_detached_service_is_recorded_revived_and_stopped() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("needs root (setpriv --reuid)");
            return;
        }
        let dir = scratch("detached");
        let services = Detached::new(StateDir::at(&dir.join("state")));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("env"), "# c\nGREETING=hello\n").unwrap();
        let spec = ServiceSpec {
            kind: ServiceKind::HaWatcher,
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                "echo \"$GREETING $HOME\"; exec sleep 600".into(),
            ],
            user: "root".into(),
            home: "/root".into(),
            env_file: Some(dir.join("env")),
            log: dir.join("logs/svc.log"),
            wanted: true,
            stop_postgres: None,
        };
        let first = services.start(&spec).unwrap();
        assert!(first.is_alive());
        assert_eq!(
            services.start(&spec).unwrap(),
            first,
            "running: not started twice"
        );
        // Its own session, so a hook's process group never takes it along.
        let sid = std::fs::read_to_string(format!("/proc/{}/stat", first.pid)).unwrap();
        let fields: Vec<&str> = sid[sid.rfind(')').unwrap() + 2..].split(' ').collect();
        assert_eq!(fields[3], first.pid.to_string(), "session id is its pid");
        // Its greeting first: killed before it ran `echo`, it would write
        // nothing and the log below would count one line short.
        let log_file = dir.join("logs/svc.log");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&log_file).unwrap().lines().count() < 1 {
            assert!(Instant::now() < deadline, "the first start wrote nothing");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Dies: revived; stopped: not revived.
        kill(Pid::from_raw(first.pid), Signal::SIGKILL).unwrap();
        // Generous bounds: they only stop a broken test, and a loaded
        // machine can take seconds to schedule a child.
        let deadline = Instant::now() + Duration::from_secs(60);
        while first.is_alive() && Instant::now() < deadline {
            // Our child: reap it so that it is gone, as init would.
            let _ = nix::sys::wait::waitpid(Pid::from_raw(first.pid), None);
        }
        assert!(services.running(ServiceKind::HaWatcher).is_none());
        let second = services.revive(ServiceKind::HaWatcher).unwrap().unwrap();
        assert_ne!(second, first);
        assert_eq!(services.revive(ServiceKind::HaWatcher).unwrap(), None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&log_file).unwrap().lines().count() < 2 {
            assert!(Instant::now() < deadline, "the second start wrote nothing");
            std::thread::sleep(Duration::from_millis(50));
        }
        services
            .stop(ServiceKind::HaWatcher, Duration::from_secs(30), true)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let _ = nix::sys::wait::waitpid(Pid::from_raw(second.pid), None);
        assert!(!second.is_alive());
        assert_eq!(services.revive(ServiceKind::HaWatcher).unwrap(), None);
        let log = std::fs::read_to_string(dir.join("logs/svc.log")).unwrap();
        assert_eq!(log, "hello /root\nhello /root\n");
        services.forget(ServiceKind::HaWatcher).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
