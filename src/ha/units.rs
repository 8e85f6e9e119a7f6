//! The charm's systemd units (pure), for machines where systemd runs. The
//! packaged units are not used: `patroni@.service` has `Restart=no` and
//! `TimeoutSec=30` with `KillMode=process` (systemd then SIGKILLs Patroni
//! during a long shutdown checkpoint and leaves postgres running,
//! unmanaged), and `etcd.service` would start the package's default member.
//!
//! Patroni's unit:
//! * `Restart=on-failure`, `RestartSec=1`: a dead Patroni leaves a writable
//!   primary behind (measured: two primaries for ~150 s until Patroni came
//!   back and demoted it), so it comes back within seconds.
//! * `KillMode=control-group` with an `ExecStop=` that sends SIGTERM to
//!   Patroni and waits: Patroni stops postgres in order (a replica gets the
//!   shutdown checkpoint, then the leader key goes). When Patroni died by
//!   itself (`$MAINPID` empty), `ExecStop=` stops the postgres it left
//!   behind (fast shutdown) before systemd restarts Patroni; whatever is
//!   still in the unit's cgroup afterwards is killed. Postgres never runs
//!   without Patroni.
//! * `TimeoutStopSec=300`: far above a loop plus a shutdown checkpoint and
//!   a demoting primary's walsender wait (`wal_sender_timeout`, 60 s).

use std::path::Path;

use super::ServiceKind;

/// What a unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec<'a> {
    pub kind: ServiceKind,
    /// The command line (`ExecStart=`), already quoted where needed.
    pub exec_start: &'a str,
    /// For etcd: its environment file.
    pub environment_file: Option<&'a Path>,
    /// For Patroni: what `ExecStop=` stops when Patroni is gone.
    pub postgres: Option<PostgresForStop<'a>>,
    /// A unit to start after (Patroni after etcd), e.g. `juju-pg-etcd-main.service`.
    pub after: Option<&'a str>,
}

/// The server Patroni runs, for `ExecStop=` when Patroni died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresForStop<'a> {
    pub bin_dir: &'a Path,
    pub data_dir: &'a Path,
}

/// Seconds systemd gives a stop before SIGKILL.
pub const PATRONI_STOP_TIMEOUT: u32 = 300;

pub fn render(spec: &UnitSpec<'_>) -> String {
    let mut unit =
        String::from("# Written by the PostgreSQL charm; it rewrites this file.\n[Unit]\n");
    let service = match spec.kind {
        ServiceKind::Etcd => {
            unit.push_str(
                "Description=etcd for the PostgreSQL charm (Patroni's DCS)\n\
                 After=network-online.target\nWants=network-online.target\n",
            );
            let mut s = String::from("Type=notify\nUser=etcd\nGroup=etcd\n");
            if let Some(env) = spec.environment_file {
                s.push_str(&format!("EnvironmentFile={}\n", env.display()));
            }
            s.push_str(&format!(
                "ExecStart={}\nRestart=on-failure\nRestartSec=2\nTimeoutStartSec=120\n\
                 TimeoutStopSec=60\nLimitNOFILE=65536\n",
                spec.exec_start
            ));
            s
        }
        ServiceKind::Patroni => {
            unit.push_str(&format!(
                "Description=Patroni for the PostgreSQL charm\n\
                 After=network-online.target{}\nWants=network-online.target\n",
                spec.after.map(|a| format!(" {a}")).unwrap_or_default()
            ));
            let mut s = format!(
                "Type=simple\nUser=postgres\nGroup=postgres\nEnvironment=HOME=/var/lib/postgresql\n\
                 ExecStart={}\nExecReload=/bin/kill -HUP $MAINPID\n",
                spec.exec_start
            );
            let stop_postgres = spec.postgres.as_ref().map_or(String::new(), |pg| {
                format!(
                    " else {}/pg_ctl stop -D {} -m fast -w -t {} >/dev/null 2>&1 || true;",
                    pg.bin_dir.display(),
                    pg.data_dir.display(),
                    PATRONI_STOP_TIMEOUT - 30
                )
            });
            s.push_str(&format!(
                "ExecStop=/bin/sh -c 'if [ -n \"$$MAINPID\" ]; then kill -TERM \"$$MAINPID\"; \
                 while kill -0 \"$$MAINPID\" 2>/dev/null; do sleep 0.2; done;{stop_postgres} fi'\n"
            ));
            s.push_str(&format!(
                "KillMode=control-group\nRestart=on-failure\nRestartSec=1\n\
                 TimeoutStopSec={PATRONI_STOP_TIMEOUT}\nLimitNOFILE=65536\n"
            ));
            s
        }
        ServiceKind::HaWatcher => {
            unit.push_str("Description=HA watcher of the PostgreSQL charm\n");
            format!(
                "Type=simple\nUser=root\nExecStart={}\nRestart=always\nRestartSec=2\n",
                spec.exec_start
            )
        }
    };
    unit.push_str("\n[Service]\n");
    unit.push_str(&service);
    unit.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn patroni_restarts_and_never_leaves_postgres_unmanaged() {
        let text = render(&UnitSpec {
            kind: ServiceKind::Patroni,
            exec_start: "/usr/bin/patroni /etc/patroni/juju-pg-15-main.json",
            environment_file: None,
            postgres: Some(PostgresForStop {
                bin_dir: Path::new("/usr/lib/postgresql/15/bin"),
                data_dir: Path::new("/srv/pgdata/15/main"),
            }),
            after: Some("juju-pg-etcd-main.service"),
        });
        let l = lines(&text);
        for want in [
            "User=postgres",
            "ExecStart=/usr/bin/patroni /etc/patroni/juju-pg-15-main.json",
            "Restart=on-failure",
            "RestartSec=1",
            "KillMode=control-group",
            "TimeoutStopSec=300",
            "After=network-online.target juju-pg-etcd-main.service",
            "WantedBy=multi-user.target",
        ] {
            assert!(l.contains(&want), "{want} missing:\n{text}");
        }
        let stop = l.iter().find(|l| l.starts_with("ExecStop=")).unwrap();
        // `$$`: systemd passes `$MAINPID` to sh, which reads it from the
        // environment (empty when Patroni died by itself).
        assert!(stop.contains("kill -TERM \"$$MAINPID\""), "{stop}");
        assert!(
            stop.contains(
                "else /usr/lib/postgresql/15/bin/pg_ctl stop -D /srv/pgdata/15/main -m fast"
            ),
            "{stop}"
        );
        assert!(!text.contains("KillMode=process"));
    }

    #[test]
    fn etcd_reads_the_charms_environment_file() {
        let text = render(&UnitSpec {
            kind: ServiceKind::Etcd,
            exec_start: "/usr/bin/etcd",
            environment_file: Some(Path::new("/etc/default/juju-pg-etcd-main")),
            postgres: None,
            after: None,
        });
        let l = lines(&text);
        for want in [
            "Type=notify",
            "User=etcd",
            "EnvironmentFile=/etc/default/juju-pg-etcd-main",
            "ExecStart=/usr/bin/etcd",
            "Restart=on-failure",
        ] {
            assert!(l.contains(&want), "{want} missing:\n{text}");
        }
    }

    #[test]
    fn the_watcher_always_comes_back() {
        let text = render(&UnitSpec {
            kind: ServiceKind::HaWatcher,
            exec_start:
                "/var/lib/juju/agents/unit-postgresql-0/charm/bin/pg-ha-watcher --unit postgresql/0",
            environment_file: None,
            postgres: None,
            after: None,
        });
        assert!(lines(&text).contains(&"Restart=always"));
        assert!(lines(&text).contains(&"User=root"));
    }
}
