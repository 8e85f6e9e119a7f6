//! The network-namespace consumer hosts of `common::netns`: traffic from
//! inside comes from the namespace's own address, reaches only the host side
//! of its own veth pair, and nothing is left behind, even after a failure.
//!
//! Needs root (`ip netns`, veth); `scripts/test` runs it.

mod common;

use std::io::Read;
use std::net::{IpAddr, TcpListener};
use std::process::Command;

use common::netns::{redact_conninfo, redact_secret, Netns};

fn netns_names() -> String {
    common::sh("ip", &["netns", "list"])
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .unwrap()
        .status
        .success()
}

/// What `Drop` must remove: the namespace and the host end of the pair.
fn assert_gone(name: &str, host_if: &str) {
    assert!(
        !netns_names()
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name)),
        "namespace {name} left behind"
    );
    assert!(!link_exists(host_if), "veth {host_if} left behind");
}

#[test]
fn each_namespace_reaches_its_own_host_side_from_its_own_address_only() {
    let a = Netns::with_free_subnet("a");
    let b = Netns::with_free_subnet("b");
    assert_ne!(a.host_addr, b.host_addr);
    let listen_a = TcpListener::bind((a.host_addr, 0)).unwrap();
    let listen_b = TcpListener::bind((b.host_addr, 0)).unwrap();
    let port_a = listen_a.local_addr().unwrap().port();
    let port_b = listen_b.local_addr().unwrap().port();

    // The kernel completes the handshake into the backlog, so accepting
    // after the client has gone still shows who connected.
    assert!(a.tcp_connects(a.host_addr, port_a));
    let (_, peer) = listen_a.accept().unwrap();
    assert_eq!(peer.ip(), IpAddr::V4(a.ns_addr));
    assert!(b.tcp_connects(b.host_addr, port_b));
    let (_, peer) = listen_b.accept().unwrap();
    assert_eq!(peer.ip(), IpAddr::V4(b.ns_addr));

    // No default route inside: another test subnet is unreachable.
    assert!(!b.tcp_connects(a.host_addr, port_a));
    let routes = b.run("ip", &["route", "show"]);
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(!routes.contains("default"), "{routes}");

    let names = [
        (a.name.clone(), a.host_if.clone()),
        (b.name.clone(), b.host_if.clone()),
    ];
    assert!(netns_names().contains(&a.name));
    drop(a);
    drop(b);
    for (name, host_if) in &names {
        assert_gone(name, host_if);
    }
}

#[test]
fn psql_runs_inside_and_errors_never_show_the_password() {
    let ns = Netns::with_free_subnet("psql");
    let listener = TcpListener::bind((ns.host_addr, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    // Not a PostgreSQL server: read the startup packet, then hang up.
    let server = std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().unwrap();
        let _ = stream.read(&mut [0u8; 512]);
        peer
    });
    let password = "pw-9f3b27c1d8";
    let conninfo = format!(
        "host={} port={port} dbname=x user=u password={password} sslmode=disable",
        ns.host_addr
    );
    let err = ns.psql(&conninfo, "SELECT 1").unwrap_err();
    assert_eq!(server.join().unwrap().ip(), IpAddr::V4(ns.ns_addr));
    assert!(!err.contains(password), "password in the error");
    assert!(err.contains("password=***"), "{err}");
}

#[test]
fn a_failure_half_way_still_removes_the_namespace() {
    let pid = std::process::id();
    let made = std::panic::catch_unwind(|| {
        // /33 is refused by `ip addr add`, after the namespace and the pair exist.
        Netns::new(
            "halfway",
            "198.19.255.249".parse().unwrap(),
            "198.19.255.250".parse().unwrap(),
            33,
        )
    });
    assert!(made.is_err());
    let prefix = format!("jt{pid}-halfway-");
    assert!(
        !netns_names().contains(&prefix),
        "{prefix}* left behind: {}",
        netns_names()
    );
}

#[test]
fn conninfo_passwords_are_redacted_in_every_form() {
    let cases = [
        (
            "host=h password=s3cr3t user=u",
            "host=h password=*** user=u",
        ),
        ("password = 'a b\\'c' user=u", "password = '***' user=u"),
        (
            "postgresql://u:s3cr3t@h:5432/db",
            "postgresql://u:***@h:5432/db",
        ),
        ("host=h user=u", "host=h user=u"),
        // A key that merely ends in "password" is not the password.
        ("xpassword=x password=s3cr3t", "xpassword=x password=***"),
    ];
    for (conninfo, want) in cases {
        assert_eq!(redact_conninfo(conninfo), want);
    }
    assert_eq!(
        redact_secret("FATAL: bad s3cr3t", "password=s3cr3t"),
        "FATAL: bad ***"
    );
}
