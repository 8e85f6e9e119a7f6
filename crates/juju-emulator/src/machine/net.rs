//! The machines' network: one bridge per [`crate::World`] in the test
//! host's root namespace, and one network namespace per machine joined to it
//! by a veth pair. Machines and consumer hosts on the bridge reach each
//! other; the test process reaches them through the bridge's own address.
//!
//! Addresses come from 198.18.0.0/15 (RFC 2544, reserved for tests, never
//! routed): a /24 no interface of this host uses yet, picked from the pid so
//! that concurrent test processes rarely even try the same one. Every link
//! and namespace is named after the test process (`jb<pid>x<n>`,
//! `jv<pid>x<n>`, `jm<pid>x<n>`) and removed by that name.

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context as _, Result};

/// Numbers the links and namespaces this process creates.
static NEXT: AtomicU32 = AtomicU32::new(0);
/// `ip netns add` mounts /run/netns on first use; concurrent first uses race.
static CREATE: Mutex<()> = Mutex::new(());
/// Held from picking a free subnet until the bridge holds its address.
static ALLOCATE: Mutex<()> = Mutex::new(());

/// A name unique to this process: `<prefix><pid>x<n>` (at most 15 bytes
/// for a link name, IFNAMSIZ).
pub(crate) fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

pub(crate) fn ip(args: &[&str]) -> Result<Output> {
    Command::new("ip")
        .args(args)
        .output()
        .context("running ip (scripts/install-deps installs iproute2)")
}

pub(crate) fn ip_ok(args: &[&str]) -> Result<()> {
    let out = ip(args)?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A bridge with an address of its own, removed by name on drop.
#[derive(Debug)]
pub struct Bridge {
    pub name: String,
    /// The bridge's address: the test host as the machines see it.
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    next_host: u8,
}

impl Bridge {
    /// Creates `jb<pid>x<n>` with `.1` of a free /24 of 198.18.0.0/15.
    pub fn new() -> Result<Self> {
        let _lock = ALLOCATE.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        for attempt in 0..512u32 {
            let index = pid.wrapping_mul(31).wrapping_add(attempt * 7) % 512; // /24s in a /15
            let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + index * 256;
            let cidr = format!("{}/24", Ipv4Addr::from(base));
            let used = ip(&["-o", "addr", "show", "to", &cidr])?;
            let routed = ip(&["-o", "route", "show", "to", "match", &cidr])?;
            let routes = String::from_utf8_lossy(&routed.stdout)
                .lines()
                .filter(|l| !l.starts_with("default"))
                .count();
            if used.status.success() && used.stdout.is_empty() && routes == 0 {
                let bridge = Self {
                    name: unique_name("jb"),
                    gateway: Ipv4Addr::from(base + 1),
                    prefix: 24,
                    next_host: 10,
                };
                bridge.create()?;
                return Ok(bridge);
            }
        }
        bail!("no free /24 left in 198.18.0.0/15 for a machine network")
    }

    fn create(&self) -> Result<()> {
        // A fixed MAC: otherwise the bridge takes its ports' lowest, and a
        // port going down and up (a partition) changes the host's MAC under
        // the machines' neighbour caches.
        let [_, _, c, d] = self.gateway.octets();
        let pid = std::process::id();
        let mac = format!(
            "02:6a:{:02x}:{:02x}:{c:02x}:{d:02x}",
            (pid >> 8) & 0xff,
            pid & 0xff
        );
        ip_ok(&[
            "link",
            "add",
            &self.name,
            "address",
            &mac,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        ip_ok(&[
            "addr",
            "add",
            &format!("{}/{}", self.gateway, self.prefix),
            "dev",
            &self.name,
        ])?;
        ip_ok(&["link", "set", &self.name, "up"])
    }

    /// The next unused address on the bridge's /24 (for a machine or a
    /// consumer host).
    pub fn lease(&mut self) -> Result<Ipv4Addr> {
        if self.next_host == 255 {
            bail!("the machine network {} is full", self.name);
        }
        let octets = self.gateway.octets();
        let address = Ipv4Addr::new(octets[0], octets[1], octets[2], self.next_host);
        self.next_host += 1;
        Ok(address)
    }
}

impl Bridge {
    /// Forgets, on the test host, the neighbour at `address` (an entry that
    /// failed while it was cut off would refuse the first packets after).
    pub fn forget_neighbour(&self, address: Ipv4Addr) {
        let _ = ip(&["neigh", "del", &address.to_string(), "dev", &self.name]);
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.name]);
    }
}

/// A network namespace joined to a bridge by a veth pair: `eth0` inside,
/// `host_if` on the bridge. Removed by name on drop.
#[derive(Debug)]
pub struct Attachment {
    pub netns: String,
    pub host_if: String,
    pub address: Ipv4Addr,
}

impl Attachment {
    /// Creates namespace `netns` with `eth0` at `address/prefix` (MAC `mac`)
    /// plugged into `bridge`. A failure half-way still removes what was made.
    pub fn new(netns: &str, bridge: &Bridge, address: Ipv4Addr, mac: &str) -> Result<Self> {
        let attachment = Self {
            netns: netns.to_string(),
            host_if: unique_name("jv"),
            address,
        };
        {
            let _lock = CREATE.lock().unwrap_or_else(|e| e.into_inner());
            ip_ok(&["netns", "add", netns])?;
        }
        let ns = attachment.netns.as_str();
        ip_ok(&[
            "link",
            "add",
            &attachment.host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        ])?;
        ip_ok(&["link", "set", &attachment.host_if, "master", &bridge.name])?;
        ip_ok(&["link", "set", &attachment.host_if, "up"])?;
        ip_ok(&["-n", ns, "link", "set", "eth0", "address", mac])?;
        ip_ok(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{address}/{}", bridge.prefix),
            "dev",
            "eth0",
        ])?;
        ip_ok(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip_ok(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(attachment)
    }

    /// Takes the link down (`false`) or up (`true`): a partition and its heal.
    pub fn set_link(&self, up: bool) -> Result<()> {
        ip_ok(&["link", "set", &self.host_if, if up { "up" } else { "down" }])?;
        if up {
            let operstate = format!("/sys/class/net/{}/operstate", self.host_if);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::fs::read_to_string(&operstate).map_or(true, |s| s.trim() != "up") {
                if std::time::Instant::now() > deadline {
                    bail!("link {} did not come back up", self.host_if);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Forgets what this namespace learnt (or failed to learn, during a
    /// partition) about its neighbours.
    pub fn forget_neighbours(&self) {
        let _ = ip(&[
            "-n",
            &self.netns,
            "neigh",
            "flush",
            "dev",
            "eth0",
            "nud",
            "all",
        ]);
    }

    /// Forgets, in this namespace, the neighbour at `address`.
    pub fn forget_neighbour(&self, address: Ipv4Addr) {
        let _ = ip(&[
            "-n",
            &self.netns,
            "neigh",
            "del",
            &address.to_string(),
            "dev",
            "eth0",
        ]);
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // Deleting either end of a veth deletes the pair; the namespace goes
        // last. Both by name, whatever state creation got to.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.netns]);
    }
}
