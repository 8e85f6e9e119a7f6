//! The replicated cluster inside the converge (issue 11): whether this unit
//! takes part in one, the [`HaUnit`] it is as a member, one
//! [`ha::converge::converge`] per hook, and what its plan means for the rest
//! of the hook ([`decide`], pure): the role clients are served in, whether
//! Patroni or the charm starts the server, and what the status says.
//!
//! A lone unit stays a standalone server, as before HA: a one-member
//! Patroni cluster would add etcd and Patroni's failure modes with no
//! failover to gain. The unit turns into the cluster's founder in place
//! (same data directory, same system identifier) as soon as a peer joins.
//! A unit that is not the Juju leader never serves clients from a cluster
//! of its own: it waits to join the leader's, and its empty cluster is
//! replaced by Patroni's clone.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::charm::Hook;
use crate::cluster::conf::Setting;
use crate::cluster::Cluster;
use crate::event::RelationKind;
use crate::fsx;
use crate::ha::converge::{converge, read_secrets, rest_api, HaUnit, Session, PEER_ENDPOINT};
use crate::ha::dcs::DynamicConfig;
use crate::ha::etcd_config::cluster_token;
use crate::ha::options::HaOptions;
use crate::ha::patroni_config::{PatroniConfig, PeerTls, WatchdogMode};
use crate::ha::plan::{self as ha_plan, Inputs, Plan, Published};
use crate::ha::services::{ServiceSpec, Services};
use crate::ha::settings::{self as ha_settings, SplitSettings};
use crate::ha::switchover::{choose, hand_over, Handover};
use crate::ha::version::{self, BundledWheel};
use crate::ha::watcher::WatcherConfig;
use crate::ha::{install, services, HaPaths, Member, ServiceKind};
use crate::juju;
use crate::outcome::{Problem, Step};
use crate::replication::{PeerUnit, Role};
use crate::state::ha as ha_files;
use crate::tls::files::{EtcdTlsDir, Kept};

/// What the HA step decided for the rest of the hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaDecision {
    /// The role clients are served in; `None`: serve no client relation in
    /// this hook (no primary known, or the server is not a member yet).
    pub role: Option<Role>,
    /// Patroni starts, stops and restarts the server: the charm never does.
    pub patroni_manages: bool,
    /// Why the unit is not simply active.
    pub problems: Vec<Problem>,
    /// Shown after the active message (e.g. two units cannot fail over).
    pub warnings: Vec<String>,
}

impl HaDecision {
    /// No replicated cluster: the charm runs its standalone server.
    pub fn standalone() -> Self {
        HaDecision {
            role: Some(Role::Standalone),
            patroni_manages: false,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// Whether this unit takes part in a replicated cluster in this hook.
/// `has_peers`: the peer relation lists another unit; `member_before`: an
/// earlier hook made this unit an etcd/Patroni member.
pub fn takes_part(enabled: bool, leader: bool, has_peers: bool, member_before: bool) -> bool {
    enabled && (member_before || has_peers || !leader)
}

/// What the HA plan means for the converge (pure).
/// `server_running`: the postmaster runs now.
pub fn decide(plan: &Plan, leader: bool, server_running: bool) -> HaDecision {
    let problems = plan
        .problems
        .iter()
        .map(|p| match p {
            ha_plan::Problem::Waiting(m) => Problem::Waiting(m.clone()),
            ha_plan::Problem::Blocked(m) => Problem::Blocked(m.clone()),
        })
        .collect::<Vec<_>>();
    let peer = |m: &Member| PeerUnit {
        name: m.unit.clone(),
        address: m.address.to_string(),
    };
    let mut decision = HaDecision {
        role: None,
        patroni_manages: plan.role != ha_plan::Role::Standalone,
        problems,
        warnings: plan.warnings.clone(),
    };
    let waiting = |why: &str| Problem::Waiting(why.to_string());
    match (&plan.role, &plan.published) {
        // The founder before Patroni took over: it serves as before.
        (ha_plan::Role::Standalone, _) if leader => decision.role = Some(Role::Standalone),
        (ha_plan::Role::Standalone, _) => decision
            .problems
            .push(waiting("waiting to join the leader's replicated cluster")),
        (ha_plan::Role::Primary, published) => {
            let standbys = published
                .as_ref()
                .map(|p| p.standbys.iter().map(peer).collect())
                .unwrap_or_default();
            decision.role = Some(Role::Primary { standbys });
        }
        (
            ha_plan::Role::Standby,
            Some(Published {
                primary: Some(primary),
                standbys,
            }),
        ) if server_running => {
            decision.role = Some(Role::Standby {
                primary: peer(primary),
                standbys: standbys.iter().map(peer).collect(),
            })
        }
        (ha_plan::Role::Standby, _) if server_running => decision
            .problems
            .push(waiting("the replicated cluster has no primary")),
        (ha_plan::Role::Standby, _) => decision.problems.push(waiting(
            "PostgreSQL is starting as a member of the replicated cluster",
        )),
    }
    decision
}

/// What the charm tells Patroni about the server, split into the
/// cluster-wide part (the DCS) and this member's; `Blocked` when a
/// cluster-wide value is one Patroni would silently replace.
pub fn split_settings(settings: &[Setting]) -> Step<SplitSettings> {
    let settings: Vec<ha_settings::Setting> = settings
        .iter()
        .map(|s| ha_settings::Setting::new(&s.name, &unquoted(&s.value)))
        .collect();
    let split = ha_settings::split(&settings);
    if !split.errors.is_empty() {
        return Step::Blocked(split.errors.join("; "));
    }
    Step::Done(split)
}

/// A value as postgresql.conf writes it (`'/a/b'`, `'it''s'`, `128MB`) as
/// Patroni wants it: Patroni quotes string values itself when it writes
/// its postgresql.conf, so a quoted one would be quoted twice.
fn unquoted(value: &str) -> String {
    let v = value.trim();
    match v.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(inner) if v.len() >= 2 => inner.replace("''", "'").replace("\\'", "'"),
        _ => v.to_string(),
    }
}

/// Where this unit's HA files are.
pub fn paths(cluster: &Cluster) -> HaPaths {
    HaPaths::for_cluster(cluster.major, &cluster.name)
}

/// Whether an earlier hook made this unit a member (its etcd record or
/// patroni.yml is there).
pub fn member_before(hook: &Hook, cluster: &Cluster) -> bool {
    ha_files::has_etcd_record(&hook.unit.state) || paths(cluster).patroni_config.exists()
}

/// Whether this unit takes part in a replicated cluster in this hook.
pub fn engaged(hook: &Hook, cluster: &Cluster) -> Result<bool> {
    if !hook.unit.ha {
        return Ok(false);
    }
    let leader = juju::is_leader().context("asking whether this unit is the leader")?;
    let has_peers = match juju::relation_ids(PEER_ENDPOINT)
        .context("listing the peer relation")?
        .first()
    {
        Some(id) => !juju::relation_list(id)
            .context("listing the peer units")?
            .is_empty(),
        None => false,
    };
    Ok(takes_part(
        true,
        leader,
        has_peers,
        member_before(hook, cluster),
    ))
}

/// The inputs of one HA step.
pub struct Target<'a> {
    pub cluster: &'a Cluster,
    pub data_dir: &'a Path,
    pub wal_dir: Option<&'a Path>,
    pub options: HaOptions,
    /// The settings as written to the charm's conf.d file.
    pub settings: &'a [Setting],
    /// TLS between the units, when the unit has the internal CA.
    pub peer_tls: Option<PeerTls>,
    /// That CA's certificate (PEM): etcd's members trust it alone.
    pub internal_ca: Option<&'a str>,
}

/// Runs the HA step: `Blocked` for a problem only the operator can solve
/// before the step can run at all.
pub fn run(hook: &Hook, target: &Target<'_>) -> Result<Step<HaDecision>> {
    if juju::relation_ids(PEER_ENDPOINT)
        .context("listing the peer relation")?
        .is_empty()
    {
        return Ok(Step::Done(HaDecision {
            role: None,
            patroni_manages: false,
            problems: vec![Problem::Waiting(
                "waiting for Juju to create the peer relation".into(),
            )],
            warnings: Vec::new(),
        }));
    }
    let split = match split_settings(target.settings) {
        Step::Done(split) => split,
        Step::Blocked(problem) => return Ok(Step::Blocked(problem)),
    };
    for (setting, why) in &split.left_out {
        log::debug!("{} not given to Patroni: {why}", setting.name);
    }
    let unit = ha_unit(hook, target, split)?;
    if unit.departing {
        hand_over_if_primary(&unit);
    }
    let mut session = Session::default();
    let plan = converge(&unit, &mut session)?;
    keep_watcher(hook, &unit, &plan)?;
    let running = Cluster::running_pid(target.data_dir).is_some();
    Ok(Step::Done(decide(&plan, unit.leader, running)))
}

/// A leaving primary hands over to a synchronous standby before its
/// Patroni stops (which would otherwise fail over only after the server is
/// down). Best effort: when no standby can take over (the last units), the
/// unit leaves anyway and Patroni's shutdown does what it can.
fn hand_over_if_primary(unit: &HaUnit) {
    let services = Services::new(unit.state.clone(), &unit.paths);
    if services.running(ServiceKind::Patroni).is_none() {
        return;
    }
    let attempt = || -> Result<()> {
        let secrets = read_secrets(unit.app())?;
        let api = rest_api(unit.address, &secrets, unit.peer_ca());
        let members = api.cluster()?;
        let synchronous = api.config()?["synchronous_mode"].as_bool().unwrap_or(false);
        match choose(&members, Some(&unit.unit), None, synchronous) {
            Handover::NotPrimary => Ok(()),
            Handover::Refused(why) => {
                log::warn!("leaving as primary without a switchover: {why}");
                Ok(())
            }
            handover => {
                let new = hand_over(&api, &handover, Duration::from_secs(90))?;
                log::info!("{} left the primary to {new}", unit.unit);
                Ok(())
            }
        }
    };
    if let Err(e) = attempt() {
        log::warn!("switchover before leaving failed: {e:#}");
    }
}

/// The watcher runs beside Patroni (it restarts Patroni or etcd when they
/// die, and dispatches the topology hook when the primary changes), and
/// goes when this unit leaves.
fn keep_watcher(hook: &Hook, unit: &HaUnit, plan: &Plan) -> Result<()> {
    let services = Services::new(unit.state.clone(), &unit.paths);
    let patroni_runs = services.running(ServiceKind::Patroni).is_some();
    if unit.departing || !patroni_runs || plan.role == ha_plan::Role::Standalone {
        if unit.departing {
            services.stop(ServiceKind::HaWatcher, Duration::from_secs(10), true)?;
        }
        return Ok(());
    }
    let Some(charm_dir) = hook.context.charm_dir.clone() else {
        return Ok(());
    };
    let config = WatcherConfig {
        unit: unit.unit.clone(),
        api: crate::ha::host_port(unit.address, crate::ha::REST_API_PORT),
        api_ca: unit.peer_ca().map(Path::to_path_buf),
        patroni_version: unit.inputs.patroni_version.to_string(),
        // Under systemd, `Restart=` brings them back.
        supervise: if services.restarted_by_supervisor() {
            vec![]
        } else {
            vec![ServiceKind::Patroni, ServiceKind::Etcd]
        },
        poll_ms: 1000,
        charm_dir: charm_dir.clone(),
    };
    // The watcher reads its configuration on every poll.
    if ha_files::watcher_config::<WatcherConfig>(&unit.state).as_ref() != Some(&config) {
        ha_files::save_watcher_config(&unit.state, &config)?;
    }
    services.start(&ServiceSpec {
        kind: ServiceKind::HaWatcher,
        program: charm_dir.join("bin/pg-ha-watcher"),
        args: vec![unit.state.path().to_string_lossy().into_owned()],
        user: "root".into(),
        home: "/root".into(),
        env_file: None,
        log: unit.paths.log_file(ServiceKind::HaWatcher),
        wanted: true,
        stop_postgres: None,
    })?;
    Ok(())
}

fn ha_unit(hook: &Hook, target: &Target<'_>, split: SplitSettings) -> Result<HaUnit> {
    let cluster = target.cluster;
    let address: IpAddr = juju::network_get_ingress_address(PEER_ENDPOINT, None)
        .context("asking Juju for this unit's address on the peer relation")?
        .parse()
        .context("the peer relation's ingress address is not an IP address")?;
    let leader = juju::is_leader().context("asking whether this unit is the leader")?;
    let departing = hook
        .context
        .relation_hook(RelationKind::Departed)
        .filter(|r| r.id.endpoint() == PEER_ENDPOINT)
        .and_then(|r| r.departing.as_deref())
        == Some(hook.unit.name.as_str());
    let paths = paths(cluster);
    let (patroni_program, patroni_version) = patroni_program(hook, &paths)?;
    // After the packages: the etcd user owns its copy of the TLS files.
    let etcd_tls = match (&target.peer_tls, target.internal_ca) {
        (Some(_), Some(ca)) => EtcdTlsDir::for_etcd(&paths.etcd_tls)?
            .serve(&Kept::new(hook.unit.state.clone()), ca)
            .context("writing etcd's TLS files")?,
        _ => None,
    };
    let me = Member::new(&hook.unit.name, address);
    let options = target.options;
    let inputs = Inputs {
        patroni: PatroniConfig {
            scope: hook.context.application().to_string(),
            me,
            etcd_members: vec![],
            listen_host: address.to_string(),
            port: cluster.port,
            data_dir: target.data_dir.to_path_buf(),
            config_dir: cluster.conf_dir(),
            bin_dir: cluster.bin(""),
            pgpass: paths.patroni_pgpass.clone(),
            socket_dir: "/var/run/postgresql".into(),
            wal_dir: target.wal_dir.map(Path::to_path_buf),
            strict: false,
            watchdog: WatchdogMode::Off,
            peer_tls: target.peer_tls.clone(),
            // The plan's, from the cluster's choice.
            etcd_tls: false,
            local_parameters: split.member,
            dynamic: DynamicConfig {
                timing: options.timing,
                replication: options.replication_for(1),
                parameters: split.cluster_wide,
            },
        },
        options,
        cluster_token: cluster_token(&hook.context.model_uuid, hook.context.application()),
        etcd_data: paths.etcd_data.clone(),
        etcd_tls,
        patroni_version,
    };
    Ok(HaUnit {
        unit: hook.unit.name.clone(),
        address,
        leader,
        departing,
        cluster: cluster.clone(),
        data_dir: target.data_dir.to_path_buf(),
        state: hook.unit.state.clone(),
        paths,
        inputs,
        patroni_program,
    })
}

/// `/usr/bin/patroni --version`, asked again only when the program file
/// changed (an upgrade): a Python start-up per hook adds seconds to the
/// topology hook a failover waits for.
fn archive_patroni(hook: &Hook) -> version::ArchivePatroni {
    use std::os::unix::fs::MetadataExt;
    let program = std::fs::metadata("/usr/bin/patroni")
        .map(|m| format!("{}:{}.{}", m.len(), m.mtime(), m.mtime_nsec()))
        .unwrap_or_default();
    let state = &hook.unit.state;
    if let Some((seen, said)) = ha_files::archive_patroni_memo(state) {
        if seen == program && !program.is_empty() {
            if let Ok(v) = version::PatroniVersion::parse(&said) {
                return version::ArchivePatroni::Version(v);
            }
        }
    }
    let found = install::archive_patroni();
    if let version::ArchivePatroni::Version(v) = &found {
        if let Err(e) = ha_files::save_archive_patroni_memo(state, &program, &v.to_string()) {
            log::debug!("not remembering the archive's Patroni version: {e:#}");
        }
    }
    found
}

/// The archive's packages installed, and the Patroni to run (with its
/// version): the archive's when it is safe with etcd v3, else the wheel
/// bundled into the charm.
fn patroni_program(
    hook: &Hook,
    paths: &HaPaths,
) -> Result<(PathBuf, crate::ha::version::PatroniVersion)> {
    install::ensure_packages(services::systemd_runs(), &|m| hook.unit.progress(m))?;
    let wheel = BundledWheel::charm();
    let choice = version::choose(&archive_patroni(hook), &wheel)?;
    let version = choice.version();
    if let version::PatroniChoice::Bundled { .. } = &choice {
        let charm_dir = hook
            .context
            .charm_dir
            .as_ref()
            .context("JUJU_CHARM_DIR is not set: the bundled Patroni is in the charm")?;
        let program = install::install_bundled(
            &charm_dir.join("wheels").join(wheel.file_name()),
            &wheel,
            &paths.bundled_root,
        )?;
        return Ok((program, version));
    }
    Ok((
        install::patroni_program(&choice, &paths.bundled_root, &wheel),
        version,
    ))
}

/// The HA files a removed unit leaves nothing of (after its services
/// stopped): patroni.yml and the pgpass file (both hold passwords), etcd's
/// environment file, data and TLS files, the services' logs and the
/// bundled Patroni.
/// The PostgreSQL data is kept, as for a standalone unit.
pub fn hand_back(cluster: &Cluster) -> Result<()> {
    let paths = paths(cluster);
    let files = [
        paths.patroni_config.clone(),
        paths.patroni_pgpass.clone(),
        paths.etcd_env.clone(),
        paths.log_file(ServiceKind::Etcd),
        paths.log_file(ServiceKind::Patroni),
        paths.log_file(ServiceKind::HaWatcher),
    ];
    for file in &files {
        match std::fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", file.display()))
            }
            _ => {}
        }
    }
    for dir in [&paths.etcd_data, &paths.etcd_tls, &paths.bundled_root] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    Ok(())
}

/// `rendered` (the charm's whole `pg_hba.conf`) with the replication rules
/// the HA step keeps in the file at `path`, so that rendering the clients'
/// rules never drops the peers' access.
pub fn keep_replication_rules(path: &Path, rendered: String) -> String {
    match fsx::read_to_string(path)
        .ok()
        .as_deref()
        .and_then(ha_plan::hba_block_in)
    {
        Some(block) => ha_plan::with_hba_block(&rendered, &block),
        None => rendered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u8) -> Member {
        Member::new(
            &format!("postgresql/{n}"),
            format!("10.0.0.{n}").parse().unwrap(),
        )
    }

    fn plan(role: ha_plan::Role, published: Option<Published>) -> Plan {
        Plan {
            actions: vec![],
            role,
            published,
            problems: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn who_takes_part() {
        // (enabled, leader, peers, member before) -> takes part
        let cases = [
            (true, true, false, false, false), // a lone leader: standalone
            (true, true, true, false, true),   // a peer joined: found the cluster
            (true, true, false, true, true),   // the last member stays one
            (true, false, false, false, true), // a non-leader waits to join
            (false, false, true, true, false), // PG_CHARM_HA=off
        ];
        for (enabled, leader, peers, before, want) in cases {
            assert_eq!(
                takes_part(enabled, leader, peers, before),
                want,
                "{enabled} {leader} {peers} {before}"
            );
        }
    }

    #[test]
    fn the_ha_plan_decides_how_clients_are_served() {
        let p = Published {
            primary: Some(member(0)),
            standbys: vec![member(1), member(2)],
        };
        let no_primary = Published {
            primary: None,
            standbys: vec![member(1)],
        };
        let peer = |n: u8| PeerUnit {
            name: format!("postgresql/{n}"),
            address: format!("10.0.0.{n}"),
        };
        use ha_plan::Role as H;
        // (ha role, published, leader, running) -> (role, patroni manages, waiting)
        let cases = [
            (
                H::Standalone,
                None,
                true,
                true,
                Some(Role::Standalone),
                false,
                false,
            ),
            (H::Standalone, None, false, true, None, false, true),
            (
                H::Primary,
                Some(p.clone()),
                false,
                true,
                Some(Role::Primary {
                    standbys: vec![peer(1), peer(2)],
                }),
                true,
                false,
            ),
            (
                H::Primary,
                None,
                true,
                true,
                Some(Role::Primary { standbys: vec![] }),
                true,
                false,
            ),
            (
                H::Standby,
                Some(p.clone()),
                true,
                true,
                Some(Role::Standby {
                    primary: peer(0),
                    standbys: vec![peer(1), peer(2)],
                }),
                true,
                false,
            ),
            (H::Standby, Some(p.clone()), false, false, None, true, true),
            (H::Standby, Some(no_primary), false, true, None, true, true),
            (H::Standby, None, true, true, None, true, true),
        ];
        for (ha_role, published, leader, running, role, manages, waits) in cases {
            let d = decide(&plan(ha_role, published.clone()), leader, running);
            let case = format!("{ha_role:?} {published:?} {leader} {running}");
            assert_eq!(d.role, role, "{case}");
            assert_eq!(d.patroni_manages, manages, "{case}");
            assert_eq!(
                d.problems.iter().any(Problem::is_waiting),
                waits,
                "{case}: {:?}",
                d.problems
            );
        }
    }

    #[test]
    fn the_plans_problems_and_warnings_reach_the_status() {
        let mut p = plan(ha_plan::Role::Primary, None);
        p.problems = vec![
            ha_plan::Problem::Blocked("disk holds another cluster".into()),
            ha_plan::Problem::Waiting("etcd learner catching up".into()),
        ];
        p.warnings = vec!["two units cannot fail over safely".into()];
        let d = decide(&p, true, true);
        assert_eq!(
            d.problems,
            [
                Problem::Blocked("disk holds another cluster".into()),
                Problem::Waiting("etcd learner catching up".into())
            ]
        );
        assert_eq!(d.warnings, ["two units cannot fail over safely"]);
    }

    #[test]
    fn conf_values_reach_patroni_unquoted() {
        let cases = [
            ("128MB", "128MB"),
            (
                "'/etc/postgresql/15/main/tls/cert.pem'",
                "/etc/postgresql/15/main/tls/cert.pem",
            ),
            ("'it''s'", "it's"),
            ("'%m [%p] '", "%m [%p] "),
            ("''", ""),
            ("on", "on"),
            ("'", "'"),
        ];
        for (conf, raw) in cases {
            assert_eq!(unquoted(conf), raw, "{conf}");
        }
        let Step::Done(split) =
            split_settings(&[Setting::new("ssl_cert_file", "'/x/cert.pem'", "")])
        else {
            panic!()
        };
        assert_eq!(split.member["ssl_cert_file"], "/x/cert.pem");
    }

    #[test]
    fn cluster_wide_settings_patroni_would_replace_block() {
        let ok = split_settings(&[
            Setting::new("max_connections", "200", ""),
            Setting::new("shared_buffers", "1GB", ""),
        ]);
        let Step::Done(split) = ok else {
            panic!("{ok:?}")
        };
        assert_eq!(split.cluster_wide["max_connections"], "200");
        assert_eq!(split.member["shared_buffers"], "1GB");
        assert!(matches!(
            split_settings(&[Setting::new("max_connections", "5", "")]),
            Step::Blocked(_)
        ));
    }

    #[test]
    fn rendering_the_clients_rules_keeps_the_replication_rules() {
        let dir = std::env::temp_dir().join(format!("ha-step-hba-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pg_hba.conf");
        let rendered = "local all all peer\nhost all all 0.0.0.0/0 reject\n".to_string();
        // No file, or a file without the block: as rendered.
        assert_eq!(keep_replication_rules(&path, rendered.clone()), rendered);
        let block = "host replication juju_replication 10.0.0.1/32 scram-sha-256\n";
        std::fs::write(
            &path,
            ha_plan::with_hba_block("local all all peer\n", block),
        )
        .unwrap();
        let kept = keep_replication_rules(&path, rendered);
        assert_eq!(ha_plan::hba_block_in(&kept).as_deref(), Some(block));
        assert!(
            kept.find("juju_replication").unwrap() < kept.find("reject").unwrap(),
            "{kept}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
