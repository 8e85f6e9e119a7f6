//! The `db` relation across models, end to end: the real PostgreSQL charm
//! offers `db`; Kubernetes-side consumers (a real ops charm using
//! ops-lib-pgsql) consume it from hosts with their own addresses (network
//! namespaces); only the addresses Juju reports for a consumer get in.

mod common;

use common::consumer::{consumer_charm, consumer_state};
use common::netns::Netns;
use common::Harness;
use juju_emulator::DeployOptions;
use serde_json::Value;

/// The database host and a consumer host, each a real address.
struct Site {
    h: Harness,
    consumer_host: Netns,
}

/// PostgreSQL listens on the host end of the consumer's link, which is the
/// unit's public address, and the consumer unit's address is the far end.
fn site(name: &str) -> Site {
    let mut h = Harness::new(name);
    let consumer_host = Netns::with_free_subnet("k8s");
    let db_address = consumer_host.host_addr.to_string();
    h.deploy_at(None, &[], vec![(db_address.clone(), db_address)]);
    h.world.add_model("k8s");
    Site { h, consumer_host }
}

fn deploy_consumer(s: &mut Site, app: &str, config: &[(&str, &str)]) -> u64 {
    let address = s.consumer_host.ns_addr.to_string();
    s.h.world
        .deploy(
            "k8s",
            app,
            &consumer_charm(),
            DeployOptions {
                units: 1,
                config: config
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                addresses: vec![(address.clone(), address)],
                ..Default::default()
            },
        )
        .unwrap();
    s.h.world.settle().unwrap();
    let id =
        s.h.world
            .integrate_cross_model("postgresql:db", &format!("{app}:db"), "pg", &[])
            .unwrap();
    s.h.world.settle().unwrap();
    id
}

fn master(s: &Site, unit: &str) -> String {
    let state = consumer_state(&s.h.world, unit);
    assert_eq!(
        state["ready"],
        Value::Bool(true),
        "{unit} sees the master as ready"
    );
    state["master"]
        .as_str()
        .expect("a master connection string")
        .to_string()
}

fn no_secret_anywhere(s: &Site, password: &str) {
    for log in s.h.world.logs() {
        assert!(
            !log.message.contains(password),
            "password in juju-log of {}",
            log.hook
        );
    }
    for record in s.h.world.trace() {
        assert!(
            !record.output().contains(password),
            "password in the output of {}",
            record.invocation.hook
        );
    }
    for app in s.h.world.apps() {
        for unit in app.units.values() {
            assert!(
                !unit.status.message.contains(password),
                "password in the status of {}",
                unit.name
            );
        }
    }
}

#[test]
fn a_k8s_consumer_gets_working_credentials_from_its_own_address_only() {
    let mut s = site("cmr");
    let rel = deploy_consumer(
        &mut s,
        "shop",
        &[
            ("database", "shop"),
            ("roles", "reporting"),
            ("extensions", "pg_trgm"),
        ],
    );
    assert_eq!(s.h.status().0, "active", "{:?}", s.h.status());
    let conninfo = master(&s, "shop/0");

    // From the consumer's own address, the credentials work.
    let who = s
        .consumer_host
        .psql(
            &conninfo,
            "SELECT current_user || ' ' || current_database()",
        )
        .unwrap();
    assert_eq!(
        who,
        "juju_remote-".to_string() + &who["juju_remote-".len()..]
    );
    assert!(who.ends_with(" shop"), "{who}");
    // The requested role and extension exist.
    assert_eq!(
        s.consumer_host
            .psql(&conninfo, "SELECT pg_has_role('reporting', 'member')")
            .unwrap(),
        "t"
    );
    assert_eq!(
        s.consumer_host
            .psql(
                &conninfo,
                "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'"
            )
            .unwrap(),
        "pg_trgm"
    );
    // It may create tables in its database.
    s.consumer_host
        .psql(
            &conninfo,
            "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)",
        )
        .unwrap();

    // What the provider published: the reactive client's rules and the echo.
    let provider_unit = s.h.world.bag(rel, "postgresql/0").unwrap().clone();
    let seen = s.h.world.name_seen_by(rel, "postgresql", "shop/0");
    assert_eq!(
        provider_unit["allowed-units"], seen,
        "space-separated unit names"
    );
    assert_eq!(
        provider_unit["allowed-subnets"],
        format!("{}/32", s.consumer_host.ns_addr)
    );
    assert_eq!(provider_unit["database"], "shop");
    assert_eq!(provider_unit["roles"], "reporting");
    assert_eq!(provider_unit["extensions"], "pg_trgm");
    assert_eq!(provider_unit["state"], "standalone");
    assert_eq!(provider_unit["port"], s.h.cluster.port.to_string());
    assert_eq!(provider_unit["host"], s.consumer_host.host_addr.to_string());
    assert!(!provider_unit.contains_key("standbys"));
    let app_bag = s.h.world.bag(rel, "postgresql").unwrap();
    assert_eq!(
        app_bag.get("master"),
        provider_unit.get("master"),
        "mirrored into the app bag by the leader"
    );

    // Another host, outside the consumer's egress-subnets, is refused even
    // with the right password.
    let stranger = Netns::with_free_subnet("stranger");
    let elsewhere = conninfo.replace(
        &format!("host={}", s.consumer_host.host_addr),
        &format!("host={}", stranger.host_addr),
    );
    let refused = stranger.psql(&elsewhere, "SELECT 1").unwrap_err();
    assert!(
        refused.contains("pg_hba.conf rejects connection"),
        "{refused}"
    );

    let password = provider_unit["password"].clone();
    assert!(password.len() >= 22, "at least 128 bits");
    no_secret_anywhere(&s, &password);

    // After the relation is removed, the credentials fail; the data stays.
    s.h.world.remove_relation(rel).unwrap();
    s.h.world.settle().unwrap();
    assert!(
        s.consumer_host.psql(&conninfo, "SELECT 1").is_err(),
        "credentials revoked"
    );
    assert_eq!(
        s.h.cluster
            .psql("SELECT count(*) FROM pg_database WHERE datname = 'shop'")
            .unwrap(),
        "1"
    );
    assert_eq!(s.h.status().0, "active", "{:?}", s.h.status());
}

#[test]
fn hostile_or_impossible_requests_block_only_their_own_relation() {
    let mut s = site("hostile");
    let good = deploy_consumer(&mut s, "good", &[("database", "gooddb")]);
    let good_conninfo = master(&s, "good/0");
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "quotes",
            &[("database", "x\"; DROP DATABASE gooddb; --")],
            "database",
        ),
        ("long", &[("database", &"a".repeat(64))], "database"),
        (
            "newline",
            &[("roles", "r1\nhost all all 0.0.0.0/0 trust")],
            "roles",
        ),
        ("unicode", &[("database", "bäckerei")], "database"),
        (
            "superrole",
            &[("roles", "pg_execute_server_program")],
            "pg_execute_server_program",
        ),
        (
            "noext",
            &[("extensions", "no_such_extension")],
            "no_such_extension",
        ),
    ];
    for (app, config, needle) in cases {
        let rel = deploy_consumer(&mut s, app, config);
        let (status, message) = s.h.status();
        assert_eq!(status, "blocked", "{app}: {message}");
        assert!(
            message.contains(&format!("db:{rel}")),
            "{app}: names the relation: {message}"
        );
        assert!(message.contains(needle), "{app}: {message}");
        let state = consumer_state(&s.h.world, &format!("{app}/0"));
        assert_eq!(
            state["ready"],
            Value::Bool(false),
            "{app} is not told to connect"
        );
        // The good relation keeps working meanwhile.
        assert_eq!(
            s.consumer_host.psql(&good_conninfo, "SELECT 1").unwrap(),
            "1",
            "{app}"
        );
        s.h.world.remove_relation(rel).unwrap();
        s.h.world.settle().unwrap();
    }
    assert_eq!(s.h.status().0, "active", "{:?}", s.h.status());
    let hba = std::fs::read_to_string(s.h.cluster.conf_dir().join("pg_hba.conf")).unwrap();
    assert!(!hba.contains("trust"), "{hba}");
    assert!(
        hba.trim_end()
            .ends_with("reject # everything else over IPv6"),
        "{hba}"
    );
    assert_eq!(
        s.consumer_host.psql(&good_conninfo, "SELECT 1").unwrap(),
        "1"
    );
    let _ = good;
}

#[test]
fn huge_or_invalid_subnet_lists_are_refused() {
    let mut s = site("subnets");
    let rel = deploy_consumer(&mut s, "lots", &[]);
    assert_eq!(s.h.status().0, "active");
    // The consumer's model claims absurd egress: 0.0.0.0/0, then garbage.
    for (subnets, needle) in [
        (vec!["0.0.0.0/0"], "egress-subnets"),
        (vec!["10.0.0.0/99"], "egress-subnets"),
    ] {
        s.h.world.set_model_egress_subnets("k8s", &subnets).unwrap();
        s.h.world.remove_relation(rel).unwrap();
        s.h.world.settle().unwrap();
        let again =
            s.h.world
                .integrate_cross_model("postgresql:db", "lots:db", "pg", &[])
                .unwrap();
        s.h.world.settle().unwrap();
        let (status, message) = s.h.status();
        assert_eq!(status, "blocked", "{subnets:?}: {message}");
        assert!(
            message.contains(needle) && message.contains(&format!("db:{again}")),
            "{message}"
        );
        s.h.world.remove_relation(again).unwrap();
        s.h.world.settle().unwrap();
        s.h.world.set_model_egress_subnets("k8s", &[]).unwrap();
    }
}

#[test]
fn scale_down_does_not_revoke_what_the_remaining_units_serve() {
    let mut s = site("scale-down");
    // A second unit, with a cluster of its own on this test machine: two
    // servers on one address cannot replicate, so each stays standalone
    // (PG_CHARM_HA=off). What is tested is the departing unit's revocation,
    // which does not depend on replication (tests/ha_cluster.rs has the
    // replicated scale down).
    s.h.world.set_test_env("PG_CHARM_HA", "off");
    let second = common::PrivateCluster::unique();
    let address = s.consumer_host.host_addr.to_string();
    let unit =
        s.h.world
            .add_unit("postgresql", Some((address.clone(), address)))
            .unwrap();
    s.h.world
        .set_unit_env(&unit, "PG_CHARM_CLUSTER", &second.name)
        .unwrap();
    s.h.world
        .set_unit_env(&unit, "PG_CHARM_PORT", &second.port.to_string())
        .unwrap();
    s.h.world.settle().unwrap();
    deploy_consumer(&mut s, "shop", &[("database", "shop")]);
    let conninfo = master(&s, "shop/0");
    s.consumer_host.psql(&conninfo, "SELECT 1").unwrap();
    assert_eq!(
        second
            .psql("SELECT rolcanlogin FROM pg_roles WHERE rolname LIKE 'juju_remote-%'")
            .unwrap(),
        "t"
    );

    s.h.world.remove_unit(&unit).unwrap();
    let leaving: Vec<&String> =
        s.h.world
            .logs()
            .iter()
            .filter(|l| l.unit == unit && l.message.contains("revoked login"))
            .map(|l| &l.message)
            .collect();
    assert!(leaving.is_empty(), "the leaving unit revoked: {leaving:?}");
    // The relation itself lives on: the remaining unit still serves it.
    s.consumer_host.psql(&conninfo, "SELECT 1").unwrap();
    assert_eq!(s.h.status().0, "active", "{:?}", s.h.status());
    let hooks = s.h.world.hook_names(&unit);
    assert!(
        hooks.contains(&"db-relation-broken".to_string()),
        "{hooks:?}"
    );
}

#[test]
fn db_admin_consumers_get_a_superuser() {
    let mut s = site("db-admin");
    let address = s.consumer_host.ns_addr.to_string();
    s.h.world
        .deploy(
            "k8s",
            "admin-tool",
            &consumer_charm(),
            DeployOptions {
                units: 1,
                addresses: vec![(address.clone(), address)],
                ..Default::default()
            },
        )
        .unwrap();
    s.h.world.settle().unwrap();
    let rel =
        s.h.world
            .integrate_cross_model("postgresql:db-admin", "admin-tool:db", "pg-admin", &[])
            .unwrap();
    s.h.world.settle().unwrap();
    assert_eq!(s.h.status().0, "active", "{:?}", s.h.status());
    let conninfo = master(&s, "admin-tool/0");
    let who = s
        .consumer_host
        .psql(
            &conninfo,
            "SELECT current_user || ' ' || rolsuper FROM pg_roles WHERE rolname = current_user",
        )
        .unwrap();
    assert!(
        who.starts_with("jujuadmin_remote-") && who.ends_with(" true"),
        "{who}"
    );
    // pg_hba lets the admin user into every database from its address only.
    let hba = std::fs::read_to_string(s.h.cluster.conf_dir().join("pg_hba.conf")).unwrap();
    let rule = hba
        .lines()
        .find(|l| l.contains("jujuadmin_"))
        .expect("an admin rule");
    assert!(rule.starts_with("host all \"jujuadmin_"), "{rule}");
    assert!(
        rule.contains(&format!("{}/32", s.consumer_host.ns_addr)),
        "{rule}"
    );
    let _ = rel;
}
