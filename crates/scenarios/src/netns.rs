//! Consumer hosts with addresses of their own: a network namespace joined to
//! the root namespace by a veth pair. A process run inside connects from the
//! namespace's address, so PostgreSQL sees a real remote client and its
//! `pg_hba` rules are exercised for real.
//!
//! Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking: reserved for
//! tests, never routed). The namespace gets no default route, so traffic from
//! inside can only reach the host side of its own pair, or, for a host made
//! with [`Netns::on_machine_network`], everything on the bridge a World's
//! emulated machines share.

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use juju_emulator::machine::net::Attachment;
use juju_emulator::World;

static NEXT: AtomicU32 = AtomicU32::new(0);
/// `ip netns add` mounts /run/netns on first use; concurrent first uses race.
static CREATE: Mutex<()> = Mutex::new(());
/// Held from picking a free subnet until its address is on the host.
static ALLOCATE: Mutex<()> = Mutex::new(());

/// A network namespace and its veth pair, removed by name on drop.
pub struct Netns {
    /// The namespace, as `ip netns` names it.
    pub name: String,
    /// The veth end in the root namespace.
    pub host_if: String,
    pub host_addr: Ipv4Addr,
    /// The address of `eth0` inside the namespace.
    pub ns_addr: Ipv4Addr,
    pub prefix: u8,
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip: {e} (scripts/install-deps installs iproute2)"))
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn in_test_range(addr: Ipv4Addr) -> bool {
    let [a, b, ..] = addr.octets();
    a == 198 && (b == 18 || b == 19)
}

impl Netns {
    /// Creates the namespace `jt<pid>-<hint>-<n>` and a veth pair: the host
    /// end (`vj<pid>x<n>`) gets `host_addr/prefix`, the end inside (`eth0`)
    /// `ns_addr/prefix`; all links up. Panics if the addresses are outside
    /// 198.18.0.0/15. A failure half-way still removes what was made.
    pub fn new(name_hint: &str, host_addr: Ipv4Addr, ns_addr: Ipv4Addr, prefix: u8) -> Self {
        assert!(
            in_test_range(host_addr) && in_test_range(ns_addr),
            "test namespaces use 198.18.0.0/15 only, not {host_addr} / {ns_addr}"
        );
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let hint: String = name_hint
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect();
        // The guard exists before anything is created, so a panic below
        // unwinds through Drop and removes whatever was made so far.
        let ns = Self {
            name: format!("jt{pid}-{hint}-{n}"),
            host_if: format!("vj{pid}x{n}"), // IFNAMSIZ: at most 15 characters
            host_addr,
            ns_addr,
            prefix,
        };
        {
            let _lock = CREATE.lock().unwrap_or_else(|e| e.into_inner());
            ip_ok(&["netns", "add", &ns.name]);
        }
        ip_ok(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns.name,
        ]);
        let host_cidr = format!("{host_addr}/{prefix}");
        let ns_cidr = format!("{ns_addr}/{prefix}");
        ip_ok(&["addr", "add", &host_cidr, "dev", &ns.host_if]);
        ip_ok(&["link", "set", &ns.host_if, "up"]);
        ip_ok(&["-n", &ns.name, "addr", "add", &ns_cidr, "dev", "eth0"]);
        ip_ok(&["-n", &ns.name, "link", "set", "eth0", "up"]);
        ip_ok(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Like [`Netns::new`] with a /30 of 198.18.0.0/15 that no interface on
    /// the host uses yet, picked from the test's pid so that concurrent test
    /// processes rarely even try the same one (between processes the check
    /// and the claim are not atomic).
    pub fn with_free_subnet(name_hint: &str) -> Self {
        let _lock = ALLOCATE.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        let n = NEXT.load(Ordering::SeqCst);
        for attempt in 0..8192u32 {
            let index = pid.wrapping_mul(7).wrapping_add(n * 13 + attempt) % 8192; // /30s in a /15
            let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + index * 4;
            let (host, inside) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
            let cidr = format!("{}/30", Ipv4Addr::from(base));
            let used = ip(&["-o", "addr", "show", "to", &cidr]);
            if used.status.success() && used.stdout.is_empty() {
                return Self::new(name_hint, host, inside, 30);
            }
        }
        panic!("no free /30 left in 198.18.0.0/15");
    }

    /// A consumer host on `world`'s machine network: `eth0` plugged into the
    /// bridge its emulated machines share, so it reaches their addresses
    /// and they reach it. `host_addr` is the bridge's own (the test host's)
    /// address, `ns_addr` this host's. Removed by name on drop, like the others.
    pub fn on_machine_network(world: &mut World, name_hint: &str) -> Self {
        let address = world
            .lease_address()
            .unwrap_or_else(|e| panic!("an address on the machine network: {e:#}"));
        let bridge = world.machine_network().expect("made by the lease");
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let hint: String = name_hint
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect();
        let name = format!("jt{}-{hint}-{n}", std::process::id());
        let [_, _, c, d] = address.octets();
        let mac = format!("02:6c:00:00:{c:02x}:{d:02x}");
        let attachment = Attachment::new(&name, bridge, address, &mac)
            .unwrap_or_else(|e| panic!("a consumer host on {}: {e:#}", bridge.name));
        let ns = Self {
            name: attachment.netns.clone(),
            host_if: attachment.host_if.clone(),
            host_addr: bridge.gateway,
            ns_addr: address,
            prefix: bridge.prefix,
        };
        // From here on this guard removes both by name.
        std::mem::forget(attachment);
        ns
    }

    /// Runs `program args` inside the namespace (`ip netns exec`).
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {}: {e}", self.name))
    }

    /// Whether a TCP connection from inside to `addr:port` succeeds within 5 s.
    pub fn tcp_connects(&self, addr: Ipv4Addr, port: u16) -> bool {
        let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
        self.run("timeout", &["5", "bash", "-c", &script])
            .status
            .success()
    }

    /// Runs `sql` with `psql` from inside, connecting with `conninfo` as its
    /// only connection argument (no PGPASSWORD, no ~/.pgpass, no prompt).
    /// The error is psql's stderr with the password taken out: safe to print.
    pub fn psql(&self, conninfo: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(["psql", "-X", "-w", "-q", "-At", "-v", "ON_ERROR_STOP=1"])
            .args(["-d", conninfo, "-c", sql])
            // Only what psql needs: nothing from the test's PG* environment.
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("PGPASSFILE", "/dev/null")
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .unwrap_or_else(|e| panic!("psql in {}: {e}", self.name));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "psql {} from {}: {}",
                redact_conninfo(conninfo),
                self.ns_addr,
                redact_secret(&stderr, conninfo)
            ))
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting either end of a veth deletes the pair; the namespace goes
        // last. Both by name, both whatever state creation got to.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// The password in a libpq conninfo (`key=value` or URI form) as written
/// there and, if quoting changes it, as libpq reads it.
fn password_forms(conninfo: &str) -> Vec<String> {
    if let Some(rest) = conninfo
        .strip_prefix("postgresql://")
        .or_else(|| conninfo.strip_prefix("postgres://"))
    {
        let userinfo = rest.split_once('@').map(|(u, _)| u).unwrap_or("");
        return userinfo
            .split_once(':')
            .map(|(_, p)| vec![p.to_string()])
            .unwrap_or_default();
    }
    let mut rest = conninfo;
    while let Some(at) = rest.find("password") {
        let boundary = rest[..at].is_empty() || rest[..at].ends_with(char::is_whitespace);
        rest = &rest[at + "password".len()..];
        let Some(value) = rest.trim_start().strip_prefix('=').filter(|_| boundary) else {
            continue;
        };
        let value = value.trim_start();
        let Some(quoted) = value.strip_prefix('\'') else {
            return vec![value.split_whitespace().next().unwrap_or("").to_string()];
        };
        // Quoted: up to the next unescaped quote; `\x` stands for `x`.
        let (mut raw, mut read) = (String::new(), String::new());
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    raw.push(c);
                    if let Some(next) = chars.next() {
                        raw.push(next);
                        read.push(next);
                    }
                }
                '\'' => break,
                c => {
                    raw.push(c);
                    read.push(c);
                }
            }
        }
        return vec![raw, read];
    }
    Vec::new()
}

/// `text` with `conninfo`'s password replaced by `***`.
pub fn redact_secret(text: &str, conninfo: &str) -> String {
    let mut forms = password_forms(conninfo);
    forms.retain(|p| !p.is_empty());
    forms.sort_by_key(|p| std::cmp::Reverse(p.len())); // the longer form first
    forms
        .iter()
        .fold(text.to_string(), |text, p| text.replace(p.as_str(), "***"))
}

/// `conninfo` with its password shown as `***`, for assertion messages.
pub fn redact_conninfo(conninfo: &str) -> String {
    redact_secret(conninfo, conninfo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root: namespaces, veths, a bridge.
    #[test]
    fn hosts_on_the_machine_network_reach_the_test_host_and_each_other() {
        let root = std::env::temp_dir().join(format!("pg-charm-netns-{}", std::process::id()));
        let mut world = World::new(&root).unwrap();
        let a = Netns::on_machine_network(&mut world, "a");
        let b = Netns::on_machine_network(&mut world, "b");
        assert_eq!(a.host_addr, world.machine_network().unwrap().gateway);
        assert_ne!(a.ns_addr, b.ns_addr);
        let listener = std::net::TcpListener::bind((a.host_addr, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(a.tcp_connects(a.host_addr, port), "the test host, from a");
        let server = std::process::Command::new("ip")
            .args(["netns", "exec", &b.name, "timeout", "10", "python3", "-c"])
            .arg(format!(
                "import socket; s=socket.socket(); s.bind(('{}', 5432)); s.listen(1); s.accept()",
                b.ns_addr
            ))
            .spawn()
            .unwrap();
        let reached = (0..50).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            a.tcp_connects(b.ns_addr, 5432)
        });
        let mut server = server;
        let _ = server.kill();
        let _ = server.wait();
        assert!(reached, "b, from a");
        let (a_name, b_name) = (a.name.clone(), b.name.clone());
        drop((a, b, world));
        let listed = ip(&["netns", "list"]);
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            !listed.contains(&a_name) && !listed.contains(&b_name),
            "{listed}"
        );
        let _ = std::fs::remove_dir_all(root);
    }
}
