//! Names and addresses the emulator makes up, deterministically: model
//! UUIDs, relation tokens, and the CIDRs Juju derives from an address.

pub(crate) fn model_uuid(name: &str) -> String {
    let h = fnv(name);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h as u32,
        (h >> 32) as u16,
        (h >> 48) as u16 & 0xfff,
        (h >> 20) as u16 & 0xfff,
        h & 0xffff_ffff_ffff
    )
}

/// 32 hex digits: how the offering side names the consumer of relation `id`.
pub(crate) fn relation_token(id: u64) -> String {
    format!(
        "{:016x}{:016x}",
        fnv(&format!("token-{id}")),
        fnv(&format!("salt-{id}"))
    )
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// The application of a unit name (`pg/0` -> `pg`); an application name as is.
pub(crate) fn app_of(unit: &str) -> &str {
    unit.split('/').next().unwrap_or(unit)
}

/// The /32 (or /128) of one address: Juju's default egress subnet.
pub(crate) fn host_cidr(address: &str) -> String {
    if address.contains(':') {
        format!("{address}/128")
    } else {
        format!("{address}/32")
    }
}

/// The /24 (or /64) around an address, for `network-get`'s `cidr`.
pub(crate) fn subnet_of(address: &str) -> String {
    match address.rsplit_once('.') {
        Some((net, _)) if !address.contains(':') => format!("{net}.0/24"),
        _ => format!("{address}/64"),
    }
}
