//! Conformance of the hook tools with the contract (juju-hook-contract.md
//! §3–§4): each case runs the real multi-call binary through a tool-named
//! link against a hand-built hook context, and checks stdout, stderr and the
//! exit code.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use juju_emulator::context::{
    Bag, HookContext, Immediate, NetworkInfo, RelationContext, SecretContext, Status,
    StorageContext,
};
use juju_emulator::tools;
use serde_json::json;

struct Fixture {
    dir: PathBuf,
    context_path: PathBuf,
}

impl Fixture {
    fn new(name: &str, ctx: &HookContext) -> Self {
        let dir = std::env::temp_dir().join(format!("jemu-conf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tools")).unwrap();
        for tool in tools::names() {
            symlink(
                env!("CARGO_BIN_EXE_juju-emulator"),
                dir.join("tools").join(tool),
            )
            .unwrap();
        }
        let context_path = HookContext::path_in(&dir);
        ctx.save(&context_path).unwrap();
        Self { dir, context_path }
    }

    fn run(&self, tool: &str, args: &[&str]) -> (i32, String, String) {
        self.run_with_stdin(tool, args, "")
    }

    fn run_with_stdin(&self, tool: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
        let ctx = self.context();
        let mut child = Command::new(self.dir.join("tools").join(tool))
            .args(args)
            .env_clear()
            .env("JUJU_CONTEXT_ID", &ctx.id)
            .env("JUJU_AGENT_SOCKET_ADDRESS", self.dir.join("agent.socket"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn context(&self) -> HookContext {
        HookContext::load(&self.context_path).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bag(pairs: &[(&str, &str)]) -> Bag {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const MODEL_UUID: &str = "cdac5656-2423-4388-8f30-41854b4cca7d";
const OTHER_MODEL: &str = "0b8d3e3a-9a34-4c43-8a6b-2f0e5e6f7a11";

/// A unit `postgresql/0` in `db-relation-changed` for relation 7 with
/// consumer unit `myapp/1`.
fn relation_hook(leader: bool) -> HookContext {
    let network = NetworkInfo {
        interface: "eth0".into(),
        mac_address: "00:16:3e:ab:cd:ef".into(),
        bind_address: "10.5.0.17".into(),
        cidr: "10.5.0.0/24".into(),
        ingress_addresses: vec!["10.5.0.17".into()],
        egress_subnets: vec!["10.5.0.17/32".into()],
    };
    let mut relations = BTreeMap::new();
    relations.insert(
        7,
        RelationContext {
            endpoint: "db".into(),
            peer: false,
            remote_app: "myapp".into(),
            members: vec!["myapp/0".into(), "myapp/1".into()],
            unit_bags: [
                (
                    "postgresql/0".to_string(),
                    bag(&[("private-address", "10.5.0.17")]),
                ),
                (
                    "myapp/1".to_string(),
                    bag(&[
                        ("egress-subnets", "10.9.0.4/32"),
                        ("ingress-address", "10.9.0.4"),
                        ("private-address", "10.9.0.4"),
                        ("database", "12345"),
                    ]),
                ),
                (
                    "myapp/0".to_string(),
                    bag(&[("private-address", "10.9.0.3")]),
                ),
            ]
            .into_iter()
            .collect(),
            app_bags: [
                ("postgresql".to_string(), Bag::new()),
                ("myapp".to_string(), bag(&[("database", "shop")])),
            ]
            .into_iter()
            .collect(),
            network: network.clone(),
            remote_model_uuid: OTHER_MODEL.into(),
        },
    );
    relations.insert(
        9,
        RelationContext {
            endpoint: "db".into(),
            remote_app: "other".into(),
            remote_model_uuid: MODEL_UUID.into(),
            ..Default::default()
        },
    );
    HookContext {
        id: "postgresql/0-db-relation-changed-42".into(),
        unit: "postgresql/0".into(),
        app: "postgresql".into(),
        model_name: "db".into(),
        model_uuid: MODEL_UUID.into(),
        hook: "db-relation-changed".into(),
        leader,
        config: [
            ("port".to_string(), json!(5432)),
            ("profile".to_string(), json!("production")),
            ("tune".to_string(), json!(true)),
        ]
        .into_iter()
        .collect(),
        config_types: [
            ("port", "int"),
            ("profile", "string"),
            ("tune", "boolean"),
            ("nodefault", "string"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        relations,
        current_relation: Some(7),
        remote_unit: Some("myapp/1".into()),
        remote_app: Some("myapp".into()),
        storage: [(
            "pgdata/0".to_string(),
            StorageContext {
                kind: "filesystem".into(),
                location: "/srv/pgdata".into(),
            },
        )]
        .into_iter()
        .collect(),
        storage_names: vec!["pgdata".into()],
        endpoints: vec!["db".into(), "db-admin".into()],
        network,
        public_address: "192.0.2.17".into(),
        committed_ports: vec!["5432/tcp".into()],
        status: Status {
            status: "active".into(),
            message: "ready".into(),
        },
        ..Default::default()
    }
}

#[test]
fn relation_get_reads_the_remote_unit_by_default_and_prints_nothing_for_missing_keys() {
    let f = Fixture::new("rget", &relation_hook(false));
    let (code, out, err) = f.run("relation-get", &["--format=json"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "{\"database\":\"12345\",\"egress-subnets\":\"10.9.0.4/32\",\"ingress-address\":\"10.9.0.4\",\"private-address\":\"10.9.0.4\"}\n"
    );
    assert_eq!(
        f.run("relation-get", &["ingress-address"]),
        (0, "10.9.0.4\n".into(), String::new())
    );
    assert_eq!(
        f.run("relation-get", &["nope"]),
        (0, String::new(), String::new())
    );
    assert_eq!(
        f.run("relation-get", &["--format", "json", "nope"]).1,
        "null\n"
    );
    // YAML keeps strings that look like numbers strings.
    let yaml = f.run("relation-get", &["-", "myapp/1"]).1;
    let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(
        parsed["database"],
        serde_yaml::Value::String("12345".into())
    );
    // -r takes the part after the last colon; the app bag with --app.
    assert_eq!(
        f.run(
            "relation-get",
            &["-r", "whatever:7", "--app", "database", "myapp"]
        )
        .1,
        "shop\n"
    );
    assert_eq!(f.run("relation-get", &["--app", "database"]).1, "shop\n");
}

#[test]
fn relation_tools_reject_bad_relation_ids_with_exit_2() {
    let f = Fixture::new("rid", &relation_hook(false));
    let (code, _, err) = f.run("relation-get", &["-r", "db:x"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("ERROR ") && err.contains("invalid relation id"),
        "{err}"
    );
    let (code, _, err) = f.run("relation-list", &["-r", "99"]);
    assert_eq!(code, 2);
    assert!(err.contains("relation not found"), "{err}");
    let (code, _, err) = f.run("relation-get", &["--bogus"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR flag provided but not defined: -bogus\n")
    );
}

#[test]
fn non_leader_cannot_read_or_write_its_own_app_bag() {
    let f = Fixture::new("perm", &relation_hook(false));
    let (code, _, err) = f.run("relation-get", &["--app", "-", "postgresql"]);
    assert_eq!(code, 1);
    assert!(err.contains("permission denied"), "{err}");
    let (code, _, err) = f.run("relation-set", &["--app", "a=b"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot write relation settings"), "{err}");
    let (code, _, err) = f.run("leader-set", &["a=b"]);
    assert_eq!(code, 1);
    assert!(err.contains("not the leader"), "{err}");
    let (code, _, err) = f.run("status-set", &["--application", "active"]);
    assert_eq!(code, 1);
    assert!(err.contains("not the leader"), "{err}");
}

#[test]
fn relation_set_buffers_merges_deletes_and_reads_back_in_the_same_hook() {
    let f = Fixture::new("rset", &relation_hook(true));
    assert_eq!(f.run("relation-set", &["a=1", " b = two "]).0, 0);
    let (code, _, _) = f.run_with_stdin(
        "relation-set",
        &["--app", "--file", "-"],
        "{\"master\": \"dbname=x host=10.0.0.1\", \"n\": \"5\"}",
    );
    assert_eq!(code, 0);
    assert_eq!(f.run("relation-set", &["a="]).0, 0);
    let (code, _, err) = f.run("relation-set", &["novalue"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR expected \"key=value\", got \"novalue\"\n")
    );
    let (code, _, err) = f.run("relation-set", &["k=1", "k=2"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR key \"k\" specified more than once\n")
    );
    assert_eq!(
        f.run("relation-get", &["-", "postgresql/0"]).1,
        "b: two\nprivate-address: 10.5.0.17\n"
    );
    assert_eq!(
        f.run("relation-get", &["--app", "master", "postgresql"]).1,
        "dbname=x host=10.0.0.1\n"
    );
    let ctx = f.context();
    let keys: Vec<(&str, Option<&str>)> = ctx
        .pending
        .relation_writes
        .iter()
        .map(|w| (w.key.as_str(), w.value.as_deref()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("a", Some("1")),
            ("b", Some("two")),
            ("master", Some("dbname=x host=10.0.0.1")),
            ("n", Some("5")),
            ("a", None)
        ]
    );
    let (_, _, err) = f.run("relation-set", &["--format=json", "x=y"]);
    assert!(err.contains("--format flag deprecated"), "{err}");
}

#[test]
fn relation_ids_and_list_are_sorted_and_formatted() {
    let f = Fixture::new("rids", &relation_hook(false));
    assert_eq!(f.run("relation-ids", &[]).1, "db:7\ndb:9\n");
    assert_eq!(
        f.run("relation-ids", &["--format=json", "db"]).1,
        "[\"db:7\",\"db:9\"]\n"
    );
    assert_eq!(
        f.run("relation-ids", &["--format=json", "db-admin"]).1,
        "[]\n"
    );
    assert_eq!(f.run("relation-ids", &["db-admin"]).1, "");
    assert_eq!(f.run("relation-list", &[]).1, "myapp/0\nmyapp/1\n");
    assert_eq!(
        f.run("relation-list", &["--app", "--format=json"]).1,
        "\"myapp\"\n"
    );
    let (code, _, err) = f.run("relation-list", &["extra"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR unrecognized args: [\"extra\"]\n")
    );
}

#[test]
fn relation_model_get_names_the_remote_model() {
    let f = Fixture::new("rmodel", &relation_hook(false));
    assert_eq!(
        f.run("relation-model-get", &["--format=json"]).1,
        format!("{{\"uuid\":\"{OTHER_MODEL}\"}}\n")
    );
    assert_eq!(
        f.run("relation-model-get", &["-r", "db:9"]).1,
        format!("uuid: {MODEL_UUID}\n")
    );
    let (code, _, err) = f.run("relation-model-get", &["-r", "99"]);
    assert_eq!(code, 2);
    assert!(err.contains("relation not found"), "{err}");
    let (code, _, err) = f.run("relation-model-get", &["extra"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR unrecognized args: [\"extra\"]\n")
    );
}

#[test]
fn config_get_types_defaults_and_all() {
    let f = Fixture::new("config", &relation_hook(false));
    assert_eq!(
        f.run("config-get", &[]).1,
        "port: 5432\nprofile: production\ntune: true\n"
    );
    assert_eq!(
        f.run("config-get", &["--format=json"]).1,
        "{\"port\":5432,\"profile\":\"production\",\"tune\":true}\n"
    );
    assert_eq!(f.run("config-get", &["tune"]).1, "True\n");
    assert_eq!(f.run("config-get", &["port", "--format=json"]).1, "5432\n");
    assert_eq!(
        f.run("config-get", &["missing"]),
        (0, String::new(), String::new())
    );
    assert_eq!(
        f.run("config-get", &["-a", "--format=json"]).1,
        "{\"nodefault\":null,\"port\":5432,\"profile\":\"production\",\"tune\":true}\n"
    );
    let (code, _, err) = f.run("config-get", &["--all", "port"]);
    assert_eq!(
        (code, err.as_str()),
        (
            2,
            "ERROR cannot use argument --all together with key \"port\"\n"
        )
    );
}

#[test]
fn storage_tools() {
    let f = Fixture::new("storage", &relation_hook(false));
    assert_eq!(f.run("storage-list", &[]).1, "pgdata/0\n");
    assert_eq!(f.run("storage-list", &["--format=json", "pgwal"]).1, "[]\n");
    let (code, _, err) = f.run("storage-get", &[]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR no storage instance specified\n")
    );
    assert_eq!(
        f.run("storage-get", &["-s", "pgdata/0", "location"]).1,
        "/srv/pgdata\n"
    );
    assert_eq!(
        f.run("storage-get", &["-s", "pgdata/0"]).1,
        "kind: filesystem\nlocation: /srv/pgdata\n"
    );
    let (code, _, err) = f.run("storage-get", &["-s", "pgdata/0", "size"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "ERROR invalid storage attribute \"size\"\n")
    );
    let (code, _, err) = f.run("storage-get", &["-s", "bad id"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid storage ID"), "{err}");
    let (code, _, err) = f.run("storage-add", &[]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR storage add requires a storage directive\n")
    );
    let (code, _, err) = f.run("storage-add", &["pgdata=ebs,10G"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR only count can be specified for \"pgdata\"\n")
    );
    assert_eq!(f.run("storage-add", &["pgdata=2"]).0, 0);
    assert_eq!(
        f.context().pending.storage_add,
        vec![("pgdata".to_string(), 2)]
    );
}

#[test]
fn status_set_and_get() {
    let f = Fixture::new("status", &relation_hook(true));
    let (code, _, err) = f.run("status-set", &[]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR invalid args, require <status> [message]\n")
    );
    let (code, _, err) = f.run("status-set", &["error"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR invalid status \"error\", expected one of [maintenance blocked waiting active]\n")
    );
    let (code, _, err) = f.run("status-set", &["active", "a", "b"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR unrecognized args: [\"b\"]\n")
    );
    assert_eq!(
        f.run("status-set", &["blocked", "--", "-x needs care"]).0,
        0
    );
    assert_eq!(f.run("status-get", &[]).1, "blocked\n");
    assert_eq!(
        f.run(
            "status-get",
            &["--include-data", "--format=json", "--application=false"]
        )
        .1,
        "{\"message\":\"-x needs care\",\"status\":\"blocked\",\"status-data\":{}}\n"
    );
    assert_eq!(
        f.run("status-set", &["--application", "active", "all good"])
            .0,
        0
    );
    let app: serde_json::Value =
        serde_json::from_str(&f.run("status-get", &["--application", "--format=json"]).1).unwrap();
    assert_eq!(app["application-status"]["status"], "active");
    assert_eq!(
        app["application-status"]["units"]["postgresql/0"]["status"],
        "blocked"
    );
    assert_eq!(f.context().immediate.len(), 2);
}

#[test]
fn juju_log_levels_prefix_and_errors() {
    let f = Fixture::new("log", &relation_hook(false));
    assert_eq!(
        f.run(
            "juju-log",
            &["--log-level", "WARNING", "--", "disk", "slow"]
        ),
        (0, String::new(), String::new())
    );
    assert_eq!(f.run("juju-log", &["-l", "bogus", "x"]).0, 0);
    assert_eq!(f.run("juju-log", &["--debug", "y"]).0, 0);
    let (code, _, err) = f.run("juju-log", &[]);
    assert_eq!((code, err.as_str()), (2, "ERROR no message specified\n"));
    let logs: Vec<(String, String)> = f
        .context()
        .immediate
        .into_iter()
        .filter_map(|e| match e {
            Immediate::Log { level, message } => Some((level, message)),
            _ => None,
        })
        .collect();
    assert_eq!(
        logs,
        vec![
            ("WARNING".into(), "db:7: disk slow".into()),
            (
                "WARNING".into(),
                "Specified log level (BOGUS) is not valid".into()
            ),
            ("INFO".into(), "db:7: x".into()),
            ("DEBUG".into(), "db:7: y".into()),
        ]
    );
}

#[test]
fn network_get_shapes() {
    let f = Fixture::new("net", &relation_hook(false));
    assert_eq!(
        f.run("network-get", &["db", "--ingress-address"]).1,
        "10.5.0.17\n"
    );
    assert_eq!(
        f.run("network-get", &["db", "--egress-subnets"]).1,
        "10.5.0.17/32\n"
    );
    assert_eq!(
        f.run(
            "network-get",
            &["db", "--ingress-address", "--bind-address", "--format=json"]
        )
        .1,
        "{\"bind-address\":\"10.5.0.17\",\"ingress-address\":\"10.5.0.17\"}\n"
    );
    assert_eq!(
        f.run("network-get", &["db", "--format=json"]).1,
        "{\"bind-addresses\":[{\"addresses\":[{\"cidr\":\"10.5.0.0/24\",\"hostname\":\"\",\"value\":\"10.5.0.17\"}],\"interface-name\":\"eth0\",\"mac-address\":\"00:16:3e:ab:cd:ef\"}],\"egress-subnets\":[\"10.5.0.17/32\"],\"ingress-addresses\":[\"10.5.0.17\"]}\n"
    );
    let yaml = f.run("network-get", &["db"]).1;
    assert!(
        yaml.starts_with("bind-addresses:\n- mac-address:"),
        "{yaml}"
    );
    assert!(yaml.contains("    address: 10.5.0.17\n"), "{yaml}");
    let (code, _, err) = f.run("network-get", &["nope"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "ERROR no network config found for binding \"nope\"\n")
    );
    let (code, _, err) = f.run("network-get", &[]);
    assert_eq!((code, err.as_str()), (2, "ERROR no arguments specified\n"));
    assert_eq!(f.run("unit-get", &["public-address"]).1, "192.0.2.17\n");
    let (code, _, err) = f.run("unit-get", &["bogus"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR unknown setting \"bogus\"\n")
    );
}

#[test]
fn leadership_tools() {
    let f = Fixture::new("leader", &relation_hook(true));
    assert_eq!(f.run("is-leader", &[]).1, "True\n");
    assert_eq!(f.run("is-leader", &["--format=json"]).1, "true\n");
    assert_eq!(f.run("leader-set", &["a=1", "b=x y"]).0, 0);
    assert_eq!(
        f.run("leader-get", &["--format=json"]).1,
        "{\"a\":\"1\",\"b\":\"x y\"}\n"
    );
    assert_eq!(f.run("leader-get", &["b"]).1, "x y\n");
    assert_eq!(f.run("leader-get", &["zzz"]).1, "");
    let (code, _, err) = f.run("leader-get", &["a=b"]);
    assert_eq!((code, err.as_str()), (2, "ERROR invalid key \"a=b\"\n"));
    let f = Fixture::new("follower", &relation_hook(false));
    assert_eq!(f.run("is-leader", &[]).1, "False\n");
}

#[test]
fn ports_are_buffered_and_opened_ports_lists_committed_only() {
    let f = Fixture::new("ports", &relation_hook(false));
    assert_eq!(f.run("open-port", &["8080/TCP"]).0, 0);
    assert_eq!(f.run("open-port", &["icmp"]).0, 0);
    assert_eq!(f.run("close-port", &["5432"]).0, 0);
    assert_eq!(f.run("opened-ports", &[]).1, "5432/tcp\n");
    assert_eq!(f.run("opened-ports", &["--endpoints"]).1, "5432/tcp (*)\n");
    let (code, _, err) = f.run("open-port", &[]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR no port or range specified\n")
    );
    assert_eq!(f.run("open-port", &["70000"]).0, 2);
    let ctx = f.context();
    assert_eq!(ctx.pending.open_ports, vec!["8080/tcp", "icmp"]);
    assert_eq!(ctx.pending.close_ports, vec!["5432/tcp"]);
}

#[test]
fn secrets_an_owner_creates_reads_changes_and_shares() {
    let f = Fixture::new("secrets", &relation_hook(true));
    let (code, uri, err) = f.run(
        "secret-add",
        &[
            "--label",
            "db-password",
            "password=s3cret",
            "tls-ca#base64=aGVsbG8=",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let uri = uri.trim().to_string();
    // Juju 3.6 prints the URI with the model's UUID.
    let prefix = format!("secret://{MODEL_UUID}/");
    assert!(
        uri.starts_with(&prefix) && uri.len() == prefix.len() + 20,
        "{uri}"
    );
    let id = &uri[prefix.len()..];
    for form in [uri.clone(), format!("secret:{id}"), id.to_string()] {
        assert_eq!(
            f.run("secret-get", &[&form]).1,
            "password: s3cret\ntls-ca: hello\n",
            "{form}"
        );
    }
    assert_eq!(
        f.run("secret-get", &["--label", "db-password", "--format=json"])
            .1,
        "{\"password\":\"s3cret\",\"tls-ca\":\"hello\"}\n"
    );
    assert_eq!(
        f.run("secret-get", &[&uri, "tls-ca#base64"]).1,
        "aGVsbG8=\n"
    );
    let (code, _, err) = f.run("secret-get", &[&uri, "nokey"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "ERROR secret key \"nokey\" not found\n")
    );
    // With --label the first argument is still the URI, as in Juju.
    let (code, _, err) = f.run("secret-get", &["--label", "db-password", "password"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR secret URI \"password\" not valid\n")
    );
    assert_eq!(
        f.run("secret-ids", &["--format=json"]).1,
        format!("[\"{id}\"]\n")
    );
    // A new revision is visible at once to the owner.
    assert_eq!(f.run("secret-set", &[&uri, "password=n3w"]).0, 0);
    assert_eq!(f.run("secret-get", &[&uri, "password"]).1, "n3w\n");
    let info: serde_json::Value = serde_json::from_str(
        &f.run(
            "secret-info-get",
            &["--label", "db-password", "--format=json"],
        )
        .1,
    )
    .unwrap();
    assert_eq!(info[id]["revision"], 2);
    assert_eq!(info[id]["owner"], "application");
    assert_eq!(info[id]["label"], "db-password");
    assert_eq!(
        f.run("secret-info-get", &[&uri, "--format=smart"]).0,
        2,
        "yaml or json only"
    );
    assert_eq!(
        f.run("secret-grant", &[&uri, "-r", "7", "--unit", "myapp/0"])
            .0,
        0
    );
    let (code, _, err) = f.run("secret-grant", &[&uri, "-r", "7", "--unit", "other/0"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot specify unit \"other/0\" in relation to application \"myapp\""),
        "{err}"
    );
    // In a relation hook, revoke defaults to the hook's relation.
    assert_eq!(f.run("secret-revoke", &[&uri]).0, 0);
    let (code, _, err) = f.run("secret-revoke", &[&uri, "--app", "myapp"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "ERROR do not specify both relation and app\n")
    );
    let ops: Vec<String> = f
        .context()
        .pending
        .secret_ops
        .iter()
        .map(|op| {
            format!("{op:?}")
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ops, ["Add", "Set", "Grant", "Revoke"]);
}

#[test]
fn secrets_refuse_what_juju_refuses() {
    let f = Fixture::new("secrets-bad", &relation_hook(true));
    let cases: &[(&str, &[&str], i32, &str)] = &[
        (
            "secret-add",
            &[],
            2,
            "ERROR missing secret value or filename\n",
        ),
        ("secret-add", &["pw=x"], 2, "ERROR key \"pw\" not valid\n"),
        (
            "secret-add",
            &["Password=x"],
            2,
            "ERROR key \"Password\" not valid\n",
        ),
        (
            "secret-add",
            &["token#base64=***"],
            2,
            "ERROR base64 value for key \"token\" not valid\n",
        ),
        (
            "secret-add",
            &["--rotate", "sometimes", "token=x"],
            2,
            "ERROR rotate policy \"sometimes\" not valid\n",
        ),
        (
            "secret-add",
            &["--expire", "soon", "token=x"],
            2,
            "ERROR expire time or duration \"soon\" not valid\n",
        ),
        (
            "secret-add",
            &["--owner", "model", "token=x"],
            2,
            "ERROR secret owner \"model\" not valid\n",
        ),
        (
            "secret-get",
            &[],
            2,
            "ERROR require either a secret URI or label\n",
        ),
        (
            "secret-get",
            &["--label", "x", "--peek", "--refresh"],
            2,
            "ERROR specify one of --peek or --refresh but not both\n",
        ),
        (
            "secret-get",
            &["secret:cnp5t2tnh8pc778j61eg"],
            1,
            "ERROR secret \"cnp5t2tnh8pc778j61eg\" not found\n",
        ),
        (
            "secret-get",
            &["--label", "nobody"],
            1,
            "ERROR consumer label \"nobody\" not found\n",
        ),
        (
            "secret-set",
            &["secret:cnp5t2tnh8pc778j61eg", "token=x"],
            1,
            "ERROR secret \"cnp5t2tnh8pc778j61eg\" not found\n",
        ),
        ("secret-grant", &[], 2, "ERROR missing secret URI\n"),
        (
            "secret-revoke",
            &["secret:cnp5t2tnh8pc778j61eg", "--app", "a", "--unit", "a/0"],
            2,
            "ERROR specify only one of application or unit\n",
        ),
        (
            "secret-info-get",
            &["secret:cnp5t2tnh8pc778j61eg", "--label", "x"],
            2,
            "ERROR specify either a secret URI or label but not both\n",
        ),
    ];
    for (tool, args, code, err) in cases {
        assert_eq!(
            f.run(tool, args),
            (*code, String::new(), err.to_string()),
            "{tool} {args:?}"
        );
    }
    let f = Fixture::new("secrets-follower", &relation_hook(false));
    assert_eq!(
        f.run("secret-add", &["token=b"]),
        (
            1,
            String::new(),
            "ERROR this unit is not the leader\n".into()
        )
    );
    assert_eq!(f.run("secret-add", &["--owner", "unit", "token=b"]).0, 0);
}

/// The same unit as a consumer of `myapp`'s secret (revisions 1 and 2, it
/// tracks 1), granted over relation 7, and of a secret it may no longer read.
fn consumer_hook() -> HookContext {
    let mut ctx = relation_hook(false);
    let secret = |id: &str, readable: bool| SecretContext {
        id: id.into(),
        model_uuid: OTHER_MODEL.into(),
        owner: "myapp".into(),
        readable,
        latest: 2,
        revisions: [
            (1, bag(&[("password", "old")])),
            (2, bag(&[("password", "new")])),
        ]
        .into_iter()
        .collect(),
        tracked: Some(1),
        ..Default::default()
    };
    ctx.secrets.insert(
        "cnp5t2tnh8pc778j61eg".into(),
        secret("cnp5t2tnh8pc778j61eg", true),
    );
    ctx.secrets.insert(
        "d0b6vbdup3ahptq6bu00".into(),
        secret("d0b6vbdup3ahptq6bu00", false),
    );
    ctx
}

#[test]
fn secrets_a_consumer_pins_peeks_and_refreshes_with_labels_of_its_own() {
    let f = Fixture::new("secrets-consumer", &consumer_hook());
    let uri = format!("secret://{OTHER_MODEL}/cnp5t2tnh8pc778j61eg");
    let get = |args: &[&str]| f.run("secret-get", args).1;
    assert_eq!(get(&[&uri, "password"]), "old\n", "the tracked revision");
    assert_eq!(
        get(&[&uri, "password", "--peek"]),
        "new\n",
        "the latest, once"
    );
    assert_eq!(get(&[&uri, "password"]), "old\n");
    assert_eq!(
        get(&[&uri, "password", "--refresh", "--label", "creds"]),
        "new\n"
    );
    assert_eq!(get(&[&uri, "password"]), "new\n", "now tracking the latest");
    assert_eq!(
        get(&["--label", "creds", "--format=json"]),
        "{\"password\":\"new\"}\n"
    );
    let tracks: Vec<Immediate> = f
        .context()
        .immediate
        .into_iter()
        .filter(|e| matches!(e, Immediate::SecretTrack { .. }))
        .collect();
    assert_eq!(
        tracks,
        [Immediate::SecretTrack {
            id: "cnp5t2tnh8pc778j61eg".into(),
            revision: Some(2),
            label: Some("creds".into()),
        }]
    );
    // The short forms name a secret of the unit's own model.
    let (code, _, err) = f.run("secret-get", &["secret:cnp5t2tnh8pc778j61eg"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "ERROR secret \"cnp5t2tnh8pc778j61eg\" not found\n")
    );
    // A consumer owns nothing: it cannot change, share or inspect.
    for tool in ["secret-set", "secret-remove"] {
        assert_eq!(
            f.run(
                tool,
                &[&uri, "password=x"][..if tool == "secret-set" { 2 } else { 1 }]
            )
            .0,
            1,
            "{tool}"
        );
    }
    assert_eq!(f.run("secret-info-get", &[&uri]).0, 1);
    assert_eq!(f.run("secret-ids", &["--format=json"]).1, "null\n");
    let (code, _, err) = f.run(
        "secret-get",
        &[&format!("secret://{OTHER_MODEL}/d0b6vbdup3ahptq6bu00")],
    );
    assert_eq!(code, 1);
    assert!(err.contains("permission denied"), "{err}");
}

#[test]
fn action_tools_refuse_outside_actions() {
    let f = Fixture::new("actions", &relation_hook(false));
    for tool in ["action-get", "action-fail"] {
        let (code, _, err) = f.run(tool, &[]);
        assert_eq!(
            (code, err.as_str()),
            (1, "ERROR not running an action\n"),
            "{tool}"
        );
    }
    let (code, _, err) = f.run("action-set", &["a=b"]);
    assert_eq!((code, err.as_str()), (1, "ERROR not running an action\n"));
}

#[test]
fn wrong_or_missing_context_id_is_refused() {
    let f = Fixture::new("ctxid", &relation_hook(false));
    let out = Command::new(f.dir.join("tools").join("is-leader"))
        .env_clear()
        .env("JUJU_CONTEXT_ID", "someone-else")
        .env("JUJU_AGENT_SOCKET_ADDRESS", f.dir.join("agent.socket"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ERROR bad request: wrong context ID\n"
    );
    let out = Command::new(f.dir.join("tools").join("is-leader"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ERROR JUJU_CONTEXT_ID not set\n"
    );
}

#[test]
fn help_prints_usage_and_exits_0() {
    let f = Fixture::new("help", &relation_hook(false));
    let (code, out, _) = f.run("relation-get", &["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage: relation-get"), "{out}");
}
