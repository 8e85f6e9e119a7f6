//! Root tier: the HA modules against real etcd 3.4, the bundled Patroni
//! 3.2.2 and PostgreSQL on one emulated machine, without the charm's
//! converge (which the wiring step adds later).
//!
//! The test deploys a do-nothing charm onto a machine, then runs its own
//! binary inside the machine's namespaces (the same test, which runs
//! `machine_side` when `HA_PROTO_SIDE` is set), which does what the converge will do for a
//! founding unit: a postgresql-common cluster with the replication and
//! rewind roles, the bundled Patroni installed from the packed charm's
//! wheel, etcd started detached from the rendered environment file with
//! authentication on, patroni.yml rendered and Patroni started detached; it
//! then checks what Patroni and etcd say, kills Patroni (-9) and waits for
//! the watcher to restart it and to dispatch `ha-topology-changed` through
//! `juju-exec`, which the outer test serves. Everything runs inside the
//! machine, which the World destroys (every process in it) when it drops.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use juju_emulator::machine::MachineSpec;
use juju_emulator::{DeployOptions, World};
use postgresql_charm::ha::dcs::{patch_for, DynamicConfig};
use postgresql_charm::ha::etcd_config::{cluster_token, EtcdConfig, InitialState};
use postgresql_charm::ha::etcdctl::{Etcdctl, ROOT_USER};
use postgresql_charm::ha::http::BasicAuth;
use postgresql_charm::ha::options::{HaOptions, TimingProfile};
use postgresql_charm::ha::patroni_api::PatroniApi;
use postgresql_charm::ha::patroni_config::{
    self, PatroniConfig, PatroniSecrets, WatchdogMode, ETCD_PATRONI_USER, REPLICATION_USER,
    REST_API_USER, REWIND_USER,
};
use postgresql_charm::ha::services::{Detached, ServiceSpec};
use postgresql_charm::ha::settings::{split, Setting};
use postgresql_charm::ha::topology::LocalRole;
use postgresql_charm::ha::version::{parse_version_output, BundledWheel, PatroniVersion};
use postgresql_charm::ha::watcher::WatcherConfig;
use postgresql_charm::ha::{install, HaPaths, Member, Scheme, ServiceKind, REST_API_PORT};
use postgresql_charm::secret::Password;
use postgresql_charm::state::StateDir;

const APP: &str = "haproto";
const NAME: &str = "haproto";
/// Where the inner side finds the wheel (inside the World's directory,
/// which machines share).
const WHEEL_DIR: &str = "ha-proto-wheel";
const HOOKS_SEEN: &str = "/var/lib/juju-pg-charm/hooks-seen";

const DISPATCH: &str = "#!/bin/sh\n\
    echo \"${JUJU_DISPATCH_PATH#hooks/}\" >> /var/lib/juju-pg-charm/hooks-seen\n\
    status-set active ok\n";

fn write_charm(dir: &Path) -> PathBuf {
    let charm = dir.join("charm");
    std::fs::create_dir_all(&charm).unwrap();
    std::fs::write(
        charm.join("metadata.yaml"),
        format!("name: {APP}\nsummary: s\ndescription: d\n"),
    )
    .unwrap();
    let dispatch = charm.join("dispatch");
    std::fs::write(&dispatch, DISPATCH).unwrap();
    std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    charm
}

/// The wheel from the packed charm, as the charm would find it in its
/// directory.
fn extract_wheel(into: &Path) -> PathBuf {
    let charm = scenarios::packed_charm().unwrap();
    let wheel = BundledWheel::charm();
    let name = format!("wheels/{}", wheel.file_name());
    std::fs::create_dir_all(into).unwrap();
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])",
        ])
        .arg(&charm)
        .arg(&name)
        .arg(into)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    into.join(name)
}

const TEST: &str = "one_member_patroni_cluster_from_the_rendered_configs";

#[test]
fn one_member_patroni_cluster_from_the_rendered_configs() {
    if std::env::var_os("HA_PROTO_SIDE").is_some() {
        // This same test, run again inside the machine by the outer one.
        machine_side();
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        panic!("needs root (emulated machines)");
    }
    let scratch = scenarios::Scratch::new("ha-prototype").unwrap();
    let world_dir = scratch.0.join("world");
    let mut world = World::new(&world_dir).unwrap();
    let wheel = extract_wheel(&world_dir.join(WHEEL_DIR));
    world.add_model("db");
    world
        .deploy(
            "db",
            APP,
            &write_charm(&scratch.0),
            DeployOptions {
                units: 1,
                machine: Some(MachineSpec {
                    memory_mib: 2048,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    world.settle().unwrap();
    let unit = format!("{APP}/0");
    let machine = world.machine_of(&unit).unwrap();
    let address = machine.address();
    let charm_dir = world
        .unit(&unit)
        .unwrap()
        .hook_paths
        .agent_dir
        .join("charm");
    let mut command = machine.command(std::env::current_exe().unwrap()).unwrap();
    command
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env("HA_PROTO_SIDE", "1")
        .env("HA_PROTO_ADDRESS", address.to_string())
        .env("HA_PROTO_UNIT", &unit)
        .env("HA_PROTO_CHARM_DIR", &charm_dir)
        .env("HA_PROTO_WHEEL", &wheel)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = RefCell::new(command.spawn().unwrap());
    // Serve the watcher's juju-exec while the inner side runs.
    let served = world.run_until(Duration::from_secs(240), |_| {
        child.borrow_mut().try_wait().unwrap().is_some()
    });
    if served.is_err() {
        let _ = child.borrow_mut().kill();
    }
    let output = child.into_inner().wait_with_output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    served.unwrap_or_else(|e| panic!("{e:#}\ninner side:\n{text}"));
    assert!(output.status.success(), "inner side failed:\n{text}");
    assert!(
        text.contains(&format!("test {TEST} ... ok")),
        "the inner side did not run:\n{text}"
    );
    // The hook the watcher dispatched ran, in the unit's context.
    let seen = world
        .machine_of(&unit)
        .unwrap()
        .run("cat", &[HOOKS_SEEN])
        .unwrap();
    let seen = String::from_utf8_lossy(&seen.stdout).to_string();
    assert!(seen.lines().any(|l| l == "ha-topology-changed"), "{seen}");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} unset"))
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn as_postgres_sql(port: u16, sql: &str) -> String {
    let mut child = Command::new("runuser")
        .args(scenarios::superuser_psql_args(port, "postgres"))
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn postgres_owned(path: &Path, mode: u32) {
    let pg = nix::unistd::User::from_name("postgres").unwrap().unwrap();
    std::os::unix::fs::chown(path, Some(pg.uid.as_raw()), Some(pg.gid.as_raw())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The inner side: runs inside the machine.
fn machine_side() {
    // On failure, show what the services said.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        for entry in std::fs::read_dir("/var/log/juju-pg-charm")
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text
                .lines()
                .filter(|l| {
                    !l.starts_with("INFO:")
                        && !l.starts_with("WARNING:")
                        && !l.contains("\"level\":\"info\"")
                })
                .filter(|l| {
                    !l.contains("heartbeat connection")
                        && !l.contains("Lock owner")
                        && !l.contains("not healthy enough")
                        && !l.contains("restarting after failure")
                        && !l.contains("connection problems")
                })
                .take(80)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!("--- {} (first lines)", entry.path().display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        eprintln!("--- processes");
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                if !cmdline.is_empty() {
                    eprintln!(
                        "{:?} {}",
                        entry.file_name(),
                        String::from_utf8_lossy(&cmdline).replace('\0', " ")
                    );
                }
            }
        }
        for entry in std::fs::read_dir("/var/log/postgresql")
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            eprintln!(
                "--- {}\n{}",
                entry.path().display(),
                text.lines().rev().take(15).collect::<Vec<_>>().join("\n")
            );
        }
        default_hook(info);
    }));
    let address: std::net::IpAddr = env("HA_PROTO_ADDRESS").parse().unwrap();
    let unit = env("HA_PROTO_UNIT");
    let me = Member::new(&unit, address);
    let major = *postgresql_charm::cluster::packages::installed_majors()
        .last()
        .expect("a PostgreSQL server is installed");
    let paths = HaPaths::for_cluster(major, NAME);
    let state = StateDir::at(&Path::new("/var/lib/juju-pg-charm").join(NAME));
    let services = Detached::new(state.clone());
    let secrets = PatroniSecrets {
        rest_api: Password::generate().unwrap(),
        etcd: Password::generate().unwrap(),
        replication: Password::generate().unwrap(),
        rewind: Password::generate().unwrap(),
    };
    let etcd_root = Password::generate().unwrap();

    // The bundled Patroni, as the install step does it (a /var root: on an
    // emulated machine /usr/lib is the test host's).
    let wheel = BundledWheel::charm();
    let root = Path::new("/var/lib/juju-pg-charm-proto");
    let patroni =
        install::install_bundled(Path::new(&env("HA_PROTO_WHEEL")), &wheel, root).unwrap();
    let again = install::install_bundled(Path::new(&env("HA_PROTO_WHEEL")), &wheel, root).unwrap();
    assert_eq!(patroni, again);
    let version = parse_version_output(&sh(patroni.to_str().unwrap(), &["--version"])).unwrap();
    assert_eq!(version, PatroniVersion::new(3, 2, 2));

    // The cluster, as the charm makes it today, with the HA roles.
    let data_dir = PathBuf::from(format!("/var/lib/postgresql/{major}/{NAME}"));
    let config_dir = PathBuf::from(format!("/etc/postgresql/{major}/{NAME}"));
    sh(
        "pg_createcluster",
        &[
            &major.to_string(),
            NAME,
            "-p",
            "5432",
            "--start",
            "--",
            "--data-checksums",
        ],
    );
    as_postgres_sql(
        5432,
        &format!(
            "CREATE ROLE {REPLICATION_USER} WITH LOGIN REPLICATION PASSWORD '{}';\n\
             CREATE ROLE {REWIND_USER} WITH LOGIN PASSWORD '{}';\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO {REWIND_USER};\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO {REWIND_USER};\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO {REWIND_USER};\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO {REWIND_USER};\n\
             CREATE TABLE kept (n int); INSERT INTO kept VALUES (7);\n",
            secrets.replication.expose(),
            secrets.rewind.expose()
        ),
    );
    sh(
        "pg_ctlcluster",
        &[&major.to_string(), NAME, "stop", "-m", "fast"],
    );
    let sysid = postgresql_charm::cluster::system_identifier(&data_dir).unwrap();
    let hba = format!(
        "# the charm's\nlocal all postgres peer\nlocal all all peer\n\
         host replication {REPLICATION_USER} {address}/32 scram-sha-256\n\
         host postgres {REWIND_USER} {address}/32 scram-sha-256\n"
    );
    let hba_file = config_dir.join("pg_hba.conf");
    std::fs::write(&hba_file, &hba).unwrap();
    postgres_owned(&hba_file, 0o640);

    // etcd: one new member, detached, from the rendered environment file.
    let etcd = EtcdConfig {
        me: me.clone(),
        initial_cluster: vec![],
        initial_state: InitialState::New,
        cluster_token: cluster_token("proto-model", APP),
        data_dir: paths.etcd_data.clone(),
        tls: None,
    };
    std::fs::write(&paths.etcd_env, etcd.render()).unwrap();
    let etcd_spec = ServiceSpec {
        kind: ServiceKind::Etcd,
        program: "/usr/bin/etcd".into(),
        args: vec![],
        user: "etcd".into(),
        home: "/var/lib/etcd".into(),
        env_file: Some(paths.etcd_env.clone()),
        log: paths.log_file(ServiceKind::Etcd),
        wanted: true,
        stop_postgres: None,
    };
    services.start(&etcd_spec).unwrap();
    let anonymous = Etcdctl::new(vec![me.etcd_client_url(Scheme::Http)], None);
    let members = wait_for("etcd answers", Duration::from_secs(30), || {
        anonymous.member_list().ok()
    });
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, me.name());
    assert!(!anonymous.auth_enabled().unwrap());
    anonymous
        .enable_auth(&etcd_root, ETCD_PATRONI_USER, &secrets.etcd)
        .unwrap();
    assert!(anonymous.auth_enabled().unwrap());
    let root_ctl = Etcdctl::new(
        vec![me.etcd_client_url(Scheme::Http)],
        Some((ROOT_USER.into(), etcd_root.clone())),
    );
    let view = root_ctl.view().unwrap();
    assert_eq!(view.healthy.len(), 1, "{view:?}");

    // patroni.yml, rendered, and Patroni detached.
    let options = HaOptions {
        timing: TimingProfile::FAST,
        ..Default::default()
    };
    let settings = split(&[
        Setting::new("max_connections", "120"),
        Setting::new("shared_buffers", "64MB"),
        Setting::new("port", "6000"),
    ]);
    assert_eq!(settings.left_out.len(), 1);
    let dynamic = DynamicConfig {
        timing: options.timing,
        replication: options.replication_for(1),
        parameters: settings.cluster_wide.clone(),
    };
    let config = PatroniConfig {
        scope: APP.into(),
        me: me.clone(),
        etcd_members: vec![me.clone()],
        listen_host: address.to_string(),
        port: 5432,
        data_dir: data_dir.clone(),
        config_dir: config_dir.clone(),
        bin_dir: PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
        pgpass: paths.patroni_pgpass.clone(),
        socket_dir: "/var/run/postgresql".into(),
        wal_dir: None,
        strict: false,
        watchdog: WatchdogMode::Off,
        peer_tls: None,
        etcd_tls: false,
        local_parameters: settings.member.clone(),
        dynamic: dynamic.clone(),
    };
    std::fs::create_dir_all("/etc/patroni").unwrap();
    let rendered = patroni_config::render(&config, &secrets);
    std::fs::write(&paths.patroni_config, rendered.expose()).unwrap();
    postgres_owned(&paths.patroni_config, 0o600);
    let patroni_spec = ServiceSpec {
        kind: ServiceKind::Patroni,
        program: patroni.clone(),
        args: vec![paths.patroni_config.to_string_lossy().into_owned()],
        user: "postgres".into(),
        home: "/var/lib/postgresql".into(),
        env_file: None,
        log: paths.log_file(ServiceKind::Patroni),
        wanted: true,
        stop_postgres: None,
    };
    let first = services.start(&patroni_spec).unwrap();
    let api = PatroniApi::new(
        &postgresql_charm::ha::host_port(address, REST_API_PORT),
        Some(BasicAuth {
            user: REST_API_USER.into(),
            password: secrets.rest_api.clone(),
        }),
    );
    let log_of = |kind| std::fs::read_to_string(paths.log_file(kind)).unwrap_or_default();
    let status = wait_for(
        "Patroni runs the cluster as primary",
        Duration::from_secs(90),
        || api.patroni().ok().filter(|s| s.is_running_primary()),
    );
    assert_eq!(
        status.system_identifier,
        Some(sysid),
        "adopted, not re-initialised"
    );
    assert_eq!(status.version, Some(PatroniVersion::new(3, 2, 2)));
    assert_eq!(as_postgres_sql(5432, "SELECT n FROM kept"), "7");
    // Cluster-wide from the DCS, per-member from the local file, the
    // charm's pg_hba untouched.
    let (max_connections, shared_buffers) = wait_for(
        "settings applied",
        Duration::from_secs(60),
        || {
            let got = as_postgres_sql(5432, "SELECT current_setting('max_connections') || ' ' || current_setting('shared_buffers')");
            let (a, b) = got.split_once(' ')?;
            Some((a.to_string(), b.to_string())).filter(|(a, _)| a == "120")
        },
    );
    assert_eq!(
        (max_connections.as_str(), shared_buffers.as_str()),
        ("120", "64MB")
    );
    assert_eq!(
        std::fs::read_to_string(&hba_file).unwrap(),
        hba,
        "pg_hba.conf is the charm's"
    );
    // /config answers 502 until the DCS copy Patroni serves has it.
    let current = wait_for("GET /config", Duration::from_secs(30), || api.config().ok());
    assert_eq!(
        patch_for(&current, &dynamic),
        None,
        "the DCS says what bootstrap.dcs said: {current}"
    );
    let mut wanted = dynamic.clone();
    wanted
        .parameters
        .insert("max_connections".into(), "130".into());
    let patch = patch_for(&current, &wanted).unwrap();
    let after = api.patch_config(&patch).unwrap();
    assert_eq!(patch_for(&after, &wanted), None);
    let cluster = api.cluster().unwrap();
    assert_eq!(cluster.len(), 1);
    assert_eq!(cluster[0].name, me.name());

    // Anonymous and wrong-namespace writes are refused by etcd.
    let put = |ctl: &Etcdctl, key: &str| {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .env("ETCDCTL_ENDPOINTS", me.etcd_client_url(Scheme::Http))
            .envs(
                ctl.user
                    .as_ref()
                    .map(|(u, p)| {
                        [
                            ("ETCDCTL_USER", u.clone()),
                            ("ETCDCTL_PASSWORD", p.expose().clone()),
                        ]
                    })
                    .into_iter()
                    .flatten(),
            )
            .args(["put", key, "x"])
            .output()
            .unwrap()
            .status
            .success()
    };
    let patroni_ctl = Etcdctl::new(
        vec![],
        Some((ETCD_PATRONI_USER.into(), secrets.etcd.clone())),
    );
    assert!(!put(&anonymous, "/juju-pg/probe"));
    assert!(put(&patroni_ctl, "/juju-pg/probe"));
    assert!(!put(&patroni_ctl, "/elsewhere"));

    // The watcher: restarts a Patroni killed with -9, and dispatches the
    // topology hook through juju-exec.
    let watcher = WatcherConfig {
        unit: unit.clone(),
        charm_dir: PathBuf::from(env("HA_PROTO_CHARM_DIR")),
        api: postgresql_charm::ha::host_port(address, REST_API_PORT),
        api_ca: None,
        patroni_version: version.to_string(),
        supervise: vec![ServiceKind::Patroni, ServiceKind::Etcd],
        poll_ms: 500,
    };
    postgresql_charm::state::ha::save_watcher_config(&state, &watcher).unwrap();
    services
        .start(&ServiceSpec {
            kind: ServiceKind::HaWatcher,
            program: env!("CARGO_BIN_EXE_pg-ha-watcher").into(),
            args: vec![state.path().to_string_lossy().into_owned()],
            user: "root".into(),
            home: "/root".into(),
            env_file: None,
            log: paths.log_file(ServiceKind::HaWatcher),
            wanted: true,
            stop_postgres: None,
        })
        .unwrap();
    wait_for(
        "the watcher dispatches ha-topology-changed",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(HOOKS_SEEN)
                .ok()
                .filter(|s| s.lines().any(|l| l == "ha-topology-changed"))
        },
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let revived = wait_for(
        "the watcher restarts Patroni",
        Duration::from_secs(20),
        || {
            services
                .running(ServiceKind::Patroni)
                .filter(|p| *p != first)
        },
    );
    let status = wait_for("Patroni is primary again", Duration::from_secs(60), || {
        api.patroni().ok().filter(|s| s.is_running_primary())
    });
    assert_eq!(status.role, LocalRole::Primary);
    assert!(revived.is_alive());
    assert_eq!(as_postgres_sql(5432, "SELECT n FROM kept"), "7");

    // Graceful stops; nothing of the secrets in argv or the logs.
    services
        .stop(ServiceKind::HaWatcher, Duration::from_secs(10), true)
        .unwrap();
    let mut argv = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            argv.insert(
                entry.file_name(),
                String::from_utf8_lossy(&cmdline).replace('\0', " "),
            );
        }
    }
    let logs = format!(
        "{}{}{}",
        log_of(ServiceKind::Patroni),
        log_of(ServiceKind::Etcd),
        log_of(ServiceKind::HaWatcher)
    );
    for secret in [
        &secrets.rest_api,
        &secrets.etcd,
        &secrets.replication,
        &secrets.rewind,
        &etcd_root,
    ] {
        assert!(
            argv.values().all(|a| !a.contains(secret.expose().as_str())),
            "a password in argv"
        );
        assert!(
            !logs.contains(secret.expose().as_str()),
            "a password in a log"
        );
    }
    services
        .stop(ServiceKind::Patroni, Duration::from_secs(60), false)
        .unwrap();
    assert!(
        postgresql_charm::cluster::Cluster::running_pid(&data_dir).is_none(),
        "Patroni stopped postgres"
    );
    services
        .stop(ServiceKind::Etcd, Duration::from_secs(20), true)
        .unwrap();
}
