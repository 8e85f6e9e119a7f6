//! `network-get`, `unit-get` and the ports: `open-port`, `close-port`,
//! `opened-ports` (contract §4.11, §4.12, §4.14).

use serde_json::{json, Map, Value};

use super::{check_max_args, no_args, relation_id, run_err, usage, Reply, ToolResult};
use crate::args::Parsed;
use crate::context::{HookContext, NetworkInfo};

pub(super) fn network_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let Some(binding) = p.positional.first() else {
        return usage("no arguments specified");
    };
    check_max_args(p, 1)?;
    if !binding.is_empty() && !ctx.endpoints.contains(binding) {
        return run_err(format!("no network config found for binding {binding:?}"));
    }
    let relation = match p.value("relation") {
        Some(_) => Some(relation_id(ctx, p)?),
        None => ctx.current_relation,
    };
    let info: &NetworkInfo = match relation.and_then(|id| ctx.relations.get(&id)) {
        Some(rel) => &rel.network,
        None => &ctx.network,
    };
    let ingress = info
        .ingress_addresses
        .first()
        .cloned()
        .unwrap_or_else(|| info.bind_address.clone());
    let mut chosen: Vec<(&str, Value)> = Vec::new();
    if p.is_set("bind-address") {
        chosen.push(("bind-address", json!(info.bind_address)));
    }
    if p.is_set("ingress-address") {
        chosen.push(("ingress-address", json!(ingress)));
    }
    if p.is_set("egress-subnets") {
        chosen.push(("egress-subnets", json!(info.egress_subnets)));
    }
    if p.is_set("primary-address") {
        chosen.push(("primary-address", json!(info.bind_address)));
    }
    match chosen.len() {
        0 => {}
        1 => return Ok(Reply::Value(chosen.remove(0).1)),
        _ => {
            let map: Map<String, Value> = chosen
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            return Ok(Reply::Value(Value::Object(map)));
        }
    }
    let json_doc = json!({
        "bind-addresses": [{
            "mac-address": info.mac_address,
            "interface-name": info.interface,
            "addresses": [{"hostname": "", "value": info.bind_address, "cidr": info.cidr}],
        }],
        "egress-subnets": info.egress_subnets,
        "ingress-addresses": info.ingress_addresses,
    });
    if p.value("format") == Some("json") {
        return Ok(Reply::Value(json_doc));
    }
    // YAML keeps struct order and the legacy duplicate keys (contract §4.11).
    let mut text = String::from("bind-addresses:\n");
    text.push_str(&format!(
        "- mac-address: {:?}\n  interface-name: {}\n  addresses:\n  - hostname: \"\"\n    value: {}\n    cidr: {}\n    address: {}\n  macaddress: {:?}\n  interfacename: {}\n",
        info.mac_address, info.interface, info.bind_address, info.cidr, info.bind_address,
        info.mac_address, info.interface
    ));
    text.push_str("egress-subnets:\n");
    for subnet in &info.egress_subnets {
        text.push_str(&format!("- {subnet}\n"));
    }
    text.push_str("ingress-addresses:\n");
    for address in &info.ingress_addresses {
        text.push_str(&format!("- {address}\n"));
    }
    Ok(Reply::Text(text))
}

pub(super) fn unit_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let Some(setting) = p.positional.first() else {
        return usage("no setting specified");
    };
    check_max_args(p, 1)?;
    match setting.as_str() {
        "private-address" => Ok(Reply::Value(json!(ctx.network.bind_address))),
        "public-address" => Ok(Reply::Value(json!(ctx.public_address))),
        other => usage(format!("unknown setting {other:?}")),
    }
}

/// Normalises `5432`, `5432/TCP`, `8000-8999/udp` or `icmp` to Juju's form.
pub fn parse_port_range(raw: &str) -> Option<String> {
    let raw = raw.to_ascii_lowercase();
    if raw == "icmp" {
        return Some(raw);
    }
    let (range, protocol) = match raw.split_once('/') {
        Some((range, protocol)) => (range, protocol),
        None => (raw.as_str(), "tcp"),
    };
    if !["tcp", "udp"].contains(&protocol) {
        return None;
    }
    let port = |s: &str| s.parse::<u16>().ok().filter(|p| *p > 0);
    match range.split_once('-') {
        Some((from, to)) => {
            let (from, to) = (port(from)?, port(to)?);
            (from <= to).then(|| format!("{from}-{to}/{protocol}"))
        }
        None => Some(format!("{}/{protocol}", port(range)?)),
    }
}

fn port_change(ctx: &mut HookContext, p: &Parsed, open: bool) -> ToolResult {
    let Some(raw) = p.positional.first() else {
        return usage("no port or range specified");
    };
    check_max_args(p, 1)?;
    let Some(port) = parse_port_range(raw) else {
        return usage(format!("invalid port or range {raw:?}"));
    };
    if open {
        ctx.pending.open_ports.push(port);
    } else {
        ctx.pending.close_ports.push(port);
    }
    Ok(Reply::Silent)
}

pub(super) fn opened_ports(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    let suffix = if p.is_set("endpoints") { " (*)" } else { "" };
    let ports: Vec<String> = ctx
        .committed_ports
        .iter()
        .map(|port| format!("{port}{suffix}"))
        .collect();
    Ok(Reply::Value(json!(ports)))
}

pub(super) fn open_port(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    port_change(ctx, p, true)
}

pub(super) fn close_port(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    port_change(ctx, p, false)
}
