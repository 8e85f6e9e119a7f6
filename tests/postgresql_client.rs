//! The `database` relation's wire format, proven against the real consumer
//! libraries: `tests/consumer-database-v0` (data_interfaces v0 from
//! postgresql-charms-single-kernel) and `tests/consumer-database-v1`
//! (dpcharmlibs-interfaces), each in a Kubernetes-side model, related
//! across models to a provider this test plays.
//!
//! The provider is a shell charm whose only job is to run, in a hook, the
//! hook-tool commands the test hands it: it creates the secrets
//! `relations::postgresql_client::plan` plans, as the application, and
//! grants them to the relation. The test then publishes what
//! `relations::postgresql_client::publish::app_bag` makes of them with
//! `World::write_bag`, as the charm's leader would. A real PostgreSQL
//! cluster of the test's own, holding the planned role and databases,
//! stands behind the published endpoints, so each consumer's connect step
//! (a table created, a row written and read back with the URI its library
//! hands it) is real. What is not checked here is the charm's own wiring:
//! nothing in `src/` runs in these tests but the pure contract.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::consumer::consumer_state;
use common::PrivateCluster;
use juju_emulator::{DeployOptions, World};
use postgresql_charm::juju::{RelationData, RelationId};
use postgresql_charm::relations::postgresql_client::plan::{
    plan_client, relation_user, ClientPlan, Server, Tls,
};
use postgresql_charm::relations::postgresql_client::publish::app_bag;
use postgresql_charm::relations::postgresql_client::request::{parse_requests, SecretMode};
use postgresql_charm::relations::postgresql_client::roles::{ConsumerPrivileges, Privilege};
use postgresql_charm::relations::postgresql_client::Protocol;
use postgresql_charm::relations::Credentials;
use postgresql_charm::secret::Password;
use scenarios::Scratch;
use serde_json::Value;

/// The provider's dispatch: on `config-changed`, runs `steps.sh` from its
/// state directory once (hook tools on PATH, `$state` set), and keeps what
/// it printed in `steps.out`.
const PROVIDER: &str = r#"#!/bin/sh
state="$CHARM_DIR/.."
[ "${JUJU_DISPATCH_PATH#hooks/}" = config-changed ] || exit 0
[ -f "$state/steps.sh" ] || exit 0
mv "$state/steps.sh" "$state/steps.run"
state="$state" sh -e "$state/steps.run" >> "$state/steps.out" 2>&1 || { cat "$state/steps.out" >&2; exit 1; }
"#;

fn provider_charm(dir: &Path) -> PathBuf {
    let charm = dir.join("test-provider");
    std::fs::create_dir_all(&charm).unwrap();
    std::fs::write(
        charm.join("metadata.yaml"),
        "name: test-provider\nsummary: s\ndescription: d\n\
         provides:\n  database:\n    interface: postgresql_client\n",
    )
    .unwrap();
    std::fs::write(
        charm.join("config.yaml"),
        "options:\n  step:\n    type: string\n    default: \"\"\n    description: bumped to run steps.sh\n",
    )
    .unwrap();
    let dispatch = charm.join("dispatch");
    std::fs::write(&dispatch, PROVIDER).unwrap();
    std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    charm
}

/// A PostgreSQL cluster of this test's own on 127.0.0.1, where the consumer
/// units (on the test host) connect; dropped with the guard.
struct Database {
    cluster: PrivateCluster,
}

impl Database {
    fn start() -> Self {
        let cluster = PrivateCluster::unique();
        let out = Command::new("pg_createcluster")
            .args([
                &cluster.major.to_string(),
                &cluster.name,
                "--port",
                &cluster.port.to_string(),
                "--start",
                "--",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_createcluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Database { cluster }
    }

    fn sql(&self, sql: &str) -> String {
        self.cluster
            .psql(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn server(&self) -> Server {
        let version = self.sql("SHOW server_version");
        Server {
            primary: "127.0.0.1".to_string(),
            standbys: Vec::new(),
            port: self.cluster.port,
            version: version.split_whitespace().next().unwrap().to_string(),
            tls: Tls::default(),
        }
    }

    /// What the wiring will do for a plan, reduced to SQL: the login role
    /// with the password's SCRAM verifier (never the password itself) and
    /// the privileges asked for, and its databases.
    fn apply(&self, plan: &ClientPlan, password: &Password) {
        let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
        let privileges: Vec<&str> = plan
            .extra_user_roles
            .privileges
            .iter()
            .map(|p| p.keyword())
            .collect();
        self.sql(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') \
             THEN CREATE ROLE {quoted} LOGIN; END IF; END $$; \
             ALTER ROLE {quoted} LOGIN {privileges} PASSWORD '{verifier}'",
            user = plan.user,
            quoted = plan.user.quoted(),
            privileges = privileges.join(" "),
        ));
        for database in plan.databases() {
            if self.sql(&format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{database}'"
            )) == "0"
            {
                self.sql(&format!(
                    "CREATE DATABASE {} OWNER {}",
                    database.quoted(),
                    plan.user.quoted()
                ));
            }
        }
    }
}

/// The provider in model `db`, one consumer fixture in model `k8s`, related
/// across models.
struct Site {
    world: World,
    relation: u64,
    consumer: String,
    /// Where the consumers connect, for the tests that let them.
    database: Option<Database>,
    _scratch: Scratch,
}

impl Site {
    /// Two consumer units (the leader asks, both get the answer) and a
    /// database behind the endpoints.
    fn new(version: &str, config: &[(&str, &str)]) -> Self {
        Site::with(version, config, None, true, 2)
    }

    /// One consumer unit and nothing behind the endpoints.
    fn without_database(version: &str, config: &[(&str, &str)]) -> Self {
        Site::with(version, config, None, false, 1)
    }

    /// `juju_version`: what `JUJU_VERSION` hooks see, when not the default.
    fn with(
        version: &str,
        config: &[(&str, &str)],
        juju_version: Option<&str>,
        database: bool,
        units: u32,
    ) -> Self {
        let scratch = Scratch::new(&format!("pgclient-{version}")).unwrap();
        let database = database.then(Database::start);
        let mut world = World::new(&scratch.0.join("world")).unwrap();
        if let Some(juju_version) = juju_version {
            world.set_juju_version(juju_version);
        }
        world.add_model("db");
        world.add_model("k8s");
        world
            .deploy(
                "db",
                "pg",
                &provider_charm(&scratch.0),
                DeployOptions::default(),
            )
            .unwrap();
        let consumer = format!("app{version}");
        world
            .deploy(
                "k8s",
                &consumer,
                &common::consumer::database_consumer_charm(version),
                DeployOptions {
                    units,
                    config: config
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                },
            )
            .unwrap();
        world.settle().unwrap();
        let relation = world
            .integrate_cross_model("pg:database", &format!("{consumer}:database"), "pg", &[])
            .unwrap();
        world.settle().unwrap();
        Site {
            world,
            relation,
            consumer,
            database,
            _scratch: scratch,
        }
    }

    fn database(&self) -> &Database {
        self.database.as_ref().expect("a site with a database")
    }

    /// The server facts the plan is made with.
    fn server(&self) -> Server {
        match &self.database {
            Some(database) => database.server(),
            None => Server {
                primary: "198.51.100.5".to_string(),
                standbys: Vec::new(),
                port: 5432,
                version: "16.4".to_string(),
                tls: Tls::default(),
            },
        }
    }

    fn relation_id(&self) -> RelationId {
        RelationId::new("database", self.relation as u32)
    }

    /// The consumer application as the provider sees it (`remote-<hex>`).
    fn remote_app(&self) -> String {
        self.world.name_seen_by(self.relation, "pg", &self.consumer)
    }

    /// What the consumer's library wrote in its application bag.
    fn requirer_bag(&self) -> RelationData {
        self.world
            .bag(self.relation, &self.consumer)
            .unwrap()
            .clone()
    }

    fn plan(&self, password: &Password, privileges: &ConsumerPrivileges) -> ClientPlan {
        let remote = self.remote_app();
        plan_client(
            &self.relation_id(),
            &remote,
            &self.requirer_bag(),
            &self.server(),
            &Credentials {
                user: relation_user(&remote),
                password: password.clone(),
            },
            privileges,
        )
        .unwrap()
        .expect("the consumer has asked")
    }

    fn provider_dir(&self) -> PathBuf {
        self.world.unit("pg/0").unwrap().agent_dir.clone()
    }

    /// Runs `steps` in a provider hook (bumping its config).
    fn provider_runs(&mut self, steps: &str) {
        let dir = self.provider_dir();
        std::fs::write(dir.join("steps.sh"), steps).unwrap();
        let step = format!("{}", self.world.trace().len());
        self.world.set_config("pg", &[("step", &step)]).unwrap();
        self.world.settle().unwrap();
        assert!(!dir.join("steps.sh").exists(), "the provider ran its steps");
    }

    /// Runs, in a provider hook, `command(label, file)` for every secret
    /// of `plan`, `file` holding its content as YAML (removed after use, so
    /// the password is on disk only while the hook runs).
    fn with_secret_files(&mut self, plan: &ClientPlan, command: impl Fn(&str, &str) -> String) {
        let dir = self.provider_dir();
        let mut steps = String::new();
        for (index, secret) in plan.secrets().enumerate() {
            let file = dir.join(format!("secret-{index}.yaml"));
            let yaml = serde_yaml::to_string(secret.content.expose()).unwrap();
            std::fs::write(&file, yaml).unwrap();
            let file = file.display().to_string();
            steps.push_str(&command(&secret.label, &file));
            steps.push_str(&format!("rm '{file}'\n"));
        }
        self.provider_runs(&steps);
    }

    /// Creates (as the provider application) every secret the plan holds,
    /// grants each to the relation, and returns label → URI.
    fn create_secrets(&mut self, plan: &ClientPlan) -> BTreeMap<String, String> {
        let relation = self.relation;
        self.with_secret_files(plan, |label, file| {
            format!(
                "uri=$(secret-add --label '{label}' --file '{file}')\n\
                 secret-grant \"$uri\" -r database:{relation}\n\
                 echo \"{label} $uri\" >> \"$state/uris\"\n"
            )
        });
        std::fs::read_to_string(self.provider_dir().join("uris"))
            .unwrap()
            .lines()
            .map(|line| {
                let (label, uri) = line.split_once(' ').unwrap();
                (label.to_string(), uri.to_string())
            })
            .collect()
    }

    /// A new revision of every secret of `plan` (a new password, say).
    fn update_secrets(&mut self, plan: &ClientPlan, uris: &BTreeMap<String, String>) {
        self.with_secret_files(plan, |label, file| {
            format!("secret-set '{}' --file '{file}'\n", uris[label])
        });
    }

    /// Publishes the plan's answer as the provider's leader would.
    fn publish(&mut self, plan: &ClientPlan, uris: &BTreeMap<String, String>) -> RelationData {
        let bag = app_bag(plan, uris).unwrap();
        let pairs: Vec<(&str, &str)> = bag
            .expose()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.world.write_bag(self.relation, "pg", &pairs).unwrap();
        self.world.settle().unwrap();
        bag.expose().clone()
    }

    fn units(&self) -> Vec<String> {
        let app = self.world.app(&self.consumer).unwrap();
        app.units.keys().cloned().collect()
    }

    fn status(&self, unit: &str) -> String {
        self.world.unit(unit).unwrap().status.message.clone()
    }

    /// Nothing the hooks logged, printed or set as status, and no bag,
    /// holds the password.
    fn assert_no_leak(&self, password: &Password) {
        self.assert_not_logged(password);
        let relation = self.world.relation(self.relation).unwrap();
        for (owner, bag) in relation.app_bags.iter().chain(relation.unit_bags.iter()) {
            for (key, value) in bag {
                assert!(
                    !value.contains(password.expose().as_str()),
                    "password in {owner}'s {key}"
                );
            }
        }
    }

    /// Nothing the hooks logged, printed or set as status holds the password.
    fn assert_not_logged(&self, password: &Password) {
        let secret = password.expose();
        for record in self.world.logs() {
            assert!(
                !record.message.contains(secret.as_str()),
                "password in juju-log from {} during {}",
                record.unit,
                record.hook
            );
        }
        for hook in self.world.trace() {
            assert!(
                !hook.output().contains(secret.as_str()),
                "password in the output of {} on {}",
                hook.invocation.hook,
                hook.invocation.unit
            );
        }
        assert!(!self.world.status_text().contains(secret.as_str()));
    }
}

fn entry<'a>(state: &'a Value, database: &str) -> &'a Value {
    &state["databases"][database]
}

#[test]
fn a_v0_consumer_gets_its_database_through_secrets_and_follows_a_new_password() {
    let mut site = Site::new(
        "v0",
        &[("database", "appdb"), ("extra-user-roles", "CREATEDB")],
    );

    // What data_interfaces v0 wrote is a request the parser accepts.
    let request = parse_requests(&site.relation_id(), &site.requirer_bag())
        .unwrap()
        .expect("the library asked on relation-created");
    assert_eq!(request.protocol, Protocol::V0);
    assert_eq!(request.requests.len(), 1);
    assert_eq!(request.requests[0].database.as_str(), "appdb");
    assert!(request.requests[0]
        .extra_user_roles
        .privileges
        .contains(&Privilege::CreateDb));
    assert!(matches!(request.secrets, SecretMode::Fields(_)));
    for field in [
        "username",
        "password",
        "uris",
        "read-only-uris",
        "tls",
        "tls-ca",
    ] {
        assert!(
            request.secrets.in_secret(field),
            "{field} requested as a secret"
        );
    }
    for unit in site.units() {
        let status = site.status(&unit);
        assert!(
            !status.contains("credentials"),
            "{unit}: nothing yet: {status}"
        );
    }

    let password = Password::generate().unwrap();
    let plan = site.plan(&password, &ConsumerPrivileges::default());
    site.database().apply(&plan, &password);
    let uris = site.create_secrets(&plan);
    assert_eq!(
        uris.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            format!("database.{}.tls.secret", site.relation),
            format!("database.{}.user.secret", site.relation)
        ]
    );
    let published = site.publish(&plan, &uris);
    assert_eq!(
        published.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "database",
            "endpoints",
            "read-only-endpoints",
            "secret-tls",
            "secret-user",
            "version"
        ]
    );

    let user = relation_user(&site.remote_app());
    let endpoint = format!("127.0.0.1:{}", site.database().cluster.port);
    for unit in site.units() {
        let state = consumer_state(&site.world, &unit);
        let got = entry(&state, "appdb");
        assert_eq!(
            got["credentials"],
            serde_json::json!({
                "database": "appdb", "username": user.as_str(), "password": true,
                "uris": true, "read-only-uris": true, "endpoints": endpoint,
                "read-only-endpoints": endpoint, "version": plan.answers[0].fields.expose()["version"],
                "tls": "False", "tls-ca": false,
            }),
            "{unit}: what the library handed over"
        );
        assert_eq!(
            got["connected"],
            format!("wrote and read 'hello from {unit}'"),
            "{unit}: {got}"
        );
        assert_eq!(site.status(&unit), "got credentials for appdb; connected");
        assert_eq!(
            site.world
                .secret_tracked_by(
                    &uris[&format!("database.{}.user.secret", site.relation)],
                    &unit
                )
                .unwrap(),
            Some(1),
            "{unit} read the user secret by URI"
        );
    }

    // A new password: a new revision of the user secret. The library reads
    // it on secret-changed and the consumer connects with it.
    let new_password = Password::generate().unwrap();
    let rotated = site.plan(&new_password, &ConsumerPrivileges::default());
    site.database().apply(&rotated, &new_password);
    site.update_secrets(&rotated, &uris);
    for unit in site.units() {
        let state = consumer_state(&site.world, &unit);
        let got = entry(&state, "appdb");
        assert_eq!(got["rotations"], 1, "{unit}: {got}");
        assert_eq!(
            got["connected"],
            format!("wrote and read 'hello from {unit}'"),
            "{unit} connects with the new password: {got}"
        );
        assert_eq!(site.status(&unit), "new credentials for appdb; connected");
    }
    site.assert_no_leak(&password);
    site.assert_no_leak(&new_password);
}

#[test]
fn a_v1_consumer_gets_each_database_it_requests() {
    let mut site = Site::new(
        "v1",
        &[
            ("databases", "appdb,reports"),
            ("extra-user-roles", "CREATEDB"),
        ],
    );

    // What dpcharmlibs-interfaces wrote is a request the parser accepts.
    let bag = site.requirer_bag();
    assert_eq!(bag.get("version").map(String::as_str), Some("v1"));
    let request = parse_requests(&site.relation_id(), &bag)
        .unwrap()
        .expect("the library asked on relation-created");
    assert_eq!(request.protocol, Protocol::V1);
    let asked: Vec<&str> = request
        .requests
        .iter()
        .map(|r| r.database.as_str())
        .collect();
    assert_eq!(asked, ["appdb", "reports"]);
    for r in &request.requests {
        let ids = r.ids.as_ref().unwrap();
        assert_eq!(ids.request_id.len(), 16, "sha256(resource:salt)[:16]");
        assert_eq!(ids.salt.as_ref().map(String::len), Some(16));
        assert_eq!(r.extra_user_roles_text.as_deref(), Some("CREATEDB"));
    }

    let password = Password::generate().unwrap();
    let plan = site.plan(&password, &ConsumerPrivileges::default());
    site.database().apply(&plan, &password);
    let uris = site.create_secrets(&plan);
    assert_eq!(uris.len(), 4, "a user and a tls secret per request");
    let published = site.publish(&plan, &uris);
    assert_eq!(
        published.keys().map(String::as_str).collect::<Vec<_>>(),
        ["data", "requests", "version"]
    );

    let user = relation_user(&site.remote_app());
    let endpoint = format!("127.0.0.1:{}", site.database().cluster.port);
    for unit in site.units() {
        let state = consumer_state(&site.world, &unit);
        for (answer, database) in plan.answers.iter().zip(["appdb", "reports"]) {
            let got = entry(&state, database);
            let ids = answer.request.ids.as_ref().unwrap();
            assert_eq!(got["request-id"], ids.request_id.as_str(), "{unit}");
            let credentials = &got["credentials"];
            assert_eq!(credentials["database"], database, "{unit}");
            assert_eq!(credentials["username"], user.as_str(), "{unit}");
            assert_eq!(credentials["uris"], true, "{unit}");
            // Across models dpcharmlibs-interfaces 1.2.2 never reads
            // `password` from the user secret (models.py lists it among the
            // fields a consumer cannot share across models and skips it), so
            // the consumer gets the password only inside `uris`, whatever
            // the provider does. If a new release hands it over, this says
            // so.
            assert_eq!(credentials["password"], false, "{unit}");
            assert_eq!(credentials["endpoints"], endpoint.as_str(), "{unit}");
            assert_eq!(
                credentials["read-only-endpoints"],
                endpoint.as_str(),
                "{unit}"
            );
            assert_eq!(
                credentials["tls"], false,
                "{unit}: JSON false, read with json.loads"
            );
            assert_eq!(
                got["connected"],
                format!("wrote and read 'hello from {unit}'"),
                "{unit} {database}: {got}"
            );
        }
        let events: Vec<&str> = state["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            events.iter().filter(|e| **e == "resource_created").count(),
            2,
            "{unit}: {events:?}"
        );
    }
    site.assert_no_leak(&password);
}

/// The parser accepts what each library writes for the options a consumer
/// sets, and the plan refuses what the operator did not allow: checked on
/// the bags the real libraries wrote.
#[test]
fn privileges_asked_through_the_real_libraries_need_the_operator() {
    for (version, key) in [("v0", "database"), ("v1", "databases")] {
        let site = Site::without_database(
            version,
            &[(key, "appdb"), ("extra-user-roles", "superuser,reporting")],
        );
        let remote = site.remote_app();
        let credentials = Credentials {
            user: relation_user(&remote),
            password: Password::generate().unwrap(),
        };
        let plan = |privileges: &ConsumerPrivileges| {
            plan_client(
                &site.relation_id(),
                &remote,
                &site.requirer_bag(),
                &site.server(),
                &credentials,
                privileges,
            )
        };
        let refused = plan(&ConsumerPrivileges::default())
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("asks for SUPERUSER")
                && refused.contains(&format!("(superuser = {remote})")),
            "{version}: {refused}"
        );
        let allowed = ConsumerPrivileges::parse(&format!("superuser = {remote}")).unwrap();
        let planned = plan(&allowed).unwrap().unwrap();
        assert!(planned
            .extra_user_roles
            .privileges
            .contains(&Privilege::Superuser));
        assert_eq!(
            planned
                .extra_user_roles
                .groups
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>(),
            ["reporting"],
            "{version}"
        );
    }
}

/// A requirer whose Juju has no secrets (before 3.0.3, as ops tells it)
/// writes no `requested-secrets`; the plan then publishes every credential
/// plainly, which is where that library looks for them.
#[test]
fn a_v0_consumer_without_secrets_gets_plain_credentials() {
    let mut site = Site::with("v0", &[("database", "plaindb")], Some("3.0.2"), true, 1);
    let bag = site.requirer_bag();
    assert!(!bag.contains_key("requested-secrets"), "{bag:?}");
    let request = parse_requests(&site.relation_id(), &bag).unwrap().unwrap();
    assert_eq!(request.secrets, SecretMode::Plain);

    let password = Password::generate().unwrap();
    let plan = site.plan(&password, &ConsumerPrivileges::default());
    assert_eq!(plan.secrets().count(), 0);
    site.database().apply(&plan, &password);
    let published = site.publish(&plan, &BTreeMap::new());
    assert_eq!(
        published.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "database",
            "endpoints",
            "password",
            "read-only-endpoints",
            "read-only-uris",
            "tls",
            "uris",
            "username",
            "version"
        ]
    );
    for unit in site.units() {
        let state = consumer_state(&site.world, &unit);
        let got = entry(&state, "plaindb");
        assert_eq!(got["credentials"]["password"], true, "{unit}: {got}");
        assert_eq!(got["credentials"]["tls"], "False", "{unit}: {got}");
        assert_eq!(
            got["connected"],
            format!("wrote and read 'hello from {unit}'"),
            "{unit}: {got}"
        );
    }
    // In relation data by necessity, but still never logged or printed.
    site.assert_not_logged(&password);
}

/// The v1 library matches each answer to its request through the
/// provider's `data` echo: without it the consumer takes nothing (it logs
/// "Missing data to compute diffs"); with it, the same answer is taken.
#[test]
fn a_v1_answer_needs_the_data_echo() {
    let mut site = Site::without_database("v1", &[("databases", "appdb")]);
    let password = Password::generate().unwrap();
    let plan = site.plan(&password, &ConsumerPrivileges::default());
    let uris = site.create_secrets(&plan);
    let bag = app_bag(&plan, &uris).unwrap();
    let without_data: Vec<(&str, &str)> = bag
        .expose()
        .iter()
        .filter(|(key, _)| key.as_str() != "data")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    site.world
        .write_bag(site.relation, "pg", &without_data)
        .unwrap();
    site.world.settle().unwrap();
    for unit in site.units() {
        let state_file = site
            .world
            .unit(&unit)
            .unwrap()
            .agent_dir
            .join("consumer-state.json");
        assert!(!state_file.exists(), "{unit} recorded nothing");
        assert!(
            site.world.logs().iter().any(|record| record.unit == unit
                && record.message.contains("Missing data to compute diffs")),
            "{unit} says why it waits"
        );
    }
    site.publish(&plan, &uris);
    for unit in site.units() {
        let state = consumer_state(&site.world, &unit);
        let got = entry(&state, "appdb");
        assert_eq!(got["credentials"]["database"], "appdb", "{unit}: {state}");
        // No server behind 198.51.100.5: the library's part is done, the
        // connection is not.
        assert!(got["connect-error"].is_string(), "{unit}: {got}");
        assert_eq!(
            site.status(&unit),
            "got credentials for appdb; connect failed"
        );
    }
    site.assert_no_leak(&password);
}
