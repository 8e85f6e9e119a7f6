//! The `secret-*` tools (contract §4.15).

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::{json, Value};

use super::{
    app_of, check_max_args, no_args, relation_id, run_err, scalar_to_string, usage, Fail, Reply,
    ToolResult,
};
use crate::args::Parsed;
use crate::context::{Bag, HookContext, SecretContext, SecretOp};

fn new_secret_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut bytes = [0u8; 20];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    let id: String = bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    format!("secret:{id}")
}

/// Parses `key=value`, `key#base64=value` and `key#file=/path` content.
fn secret_content(p: &Parsed) -> Result<Bag, Fail> {
    let mut content = Bag::new();
    if let Some(path) = p.value("file") {
        let text =
            std::fs::read_to_string(path).map_err(|e| Fail::Run(format!("open {path}: {e}")))?;
        let map: BTreeMap<String, serde_yaml::Value> = serde_yaml::from_str(&text)
            .map_err(|e| Fail::Usage(format!("invalid secret file {path:?}: {e}")))?;
        for (k, v) in map {
            content.insert(k, scalar_to_string(&v).unwrap_or_default());
        }
    }
    for arg in &p.positional {
        let Some((key, value)) = arg.split_once('=') else {
            return usage(format!("expected \"key=value\", got {arg:?}"));
        };
        let value = match key.split_once('#') {
            Some((key, "file")) => {
                let text = std::fs::read_to_string(value)
                    .map_err(|e| Fail::Run(format!("open {value}: {e}")))?;
                content.insert(key.to_string(), text);
                continue;
            }
            Some((key, "base64")) => {
                content.insert(format!("{key}#base64"), value.to_string());
                continue;
            }
            _ => value,
        };
        content.insert(key.to_string(), value.to_string());
    }
    Ok(content)
}

fn find_secret<'a>(
    ctx: &'a HookContext,
    id: Option<&str>,
    label: Option<&str>,
) -> Option<&'a SecretContext> {
    let wanted = id.map(|id| {
        id.trim_start_matches("secret:")
            .rsplit('/')
            .next()
            .unwrap_or(id)
            .to_string()
    });
    ctx.secrets.values().find(|s| match (&wanted, label) {
        (Some(want), _) => s.id.trim_start_matches("secret:") == want,
        (None, Some(label)) => s.label.as_deref() == Some(label),
        (None, None) => false,
    })
}

pub(super) fn secret_add(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let content = secret_content(p)?;
    if content.is_empty() {
        return usage("missing secret value or filename");
    }
    let owner = p.value("owner").unwrap_or("application");
    if !["application", "unit"].contains(&owner) {
        return usage(format!("secret owner {owner:?} not valid"));
    }
    if owner == "application" && !ctx.leader {
        return run_err("this unit is not the leader");
    }
    let secret = SecretContext {
        id: new_secret_id(),
        label: p.value("label").map(str::to_string),
        owner: if owner == "unit" {
            ctx.unit.clone()
        } else {
            ctx.app.clone()
        },
        revision: 1,
        content,
        description: p.value("description").map(str::to_string),
    };
    ctx.secrets.insert(secret.id.clone(), secret.clone());
    let id = secret.id.clone();
    ctx.pending.secret_ops.push(SecretOp::Add(secret));
    Ok(Reply::Text(format!("{id}\n")))
}

pub(super) fn secret_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 2)?;
    let label = p.value("label");
    // With --label, a lone argument that is not a secret URI is the key.
    let (id, key) = match p.positional.as_slice() {
        [first] if label.is_some() && !first.starts_with("secret:") => (None, Some(first)),
        [first, key, ..] => (Some(first.as_str()), Some(key)),
        [first] => (Some(first.as_str()), None),
        [] => (None, None),
    };
    if id.is_none() && label.is_none() {
        return usage("require either a secret URI or label");
    }
    if p.is_set("peek") && p.is_set("refresh") {
        return usage("specify one of --peek or --refresh but not both");
    }
    let Some(secret) = find_secret(ctx, id, label) else {
        return run_err(format!(
            "secret {:?} not found",
            id.or(label).unwrap_or_default()
        ));
    };
    Ok(Reply::Value(match key {
        Some(key) => secret
            .content
            .get(key)
            .map(|v| json!(v))
            .unwrap_or(Value::Null),
        None => json!(secret.content),
    }))
}

fn owned_secret(ctx: &HookContext, id: Option<&str>) -> Result<String, Fail> {
    let Some(id) = id else {
        return usage("missing secret URI");
    };
    let Some(secret) = find_secret(ctx, Some(id), None) else {
        return run_err(format!("secret {id:?} not found"));
    };
    if secret.owner == ctx.app && !ctx.leader {
        return run_err("this unit is not the leader");
    }
    if secret.owner != ctx.app && secret.owner != ctx.unit {
        return run_err(format!(
            "permission denied: secret {id:?} is not owned by this unit"
        ));
    }
    Ok(secret.id.clone())
}

pub(super) fn secret_set(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let id = owned_secret(ctx, p.positional.first().map(String::as_str))?;
    let rest = Parsed {
        flags: p.flags.clone(),
        positional: p.positional[1..].to_vec(),
    };
    let content = secret_content(&rest)?;
    let content = (!content.is_empty()).then_some(content);
    let secret = ctx.secrets.get_mut(&id).expect("owned secret");
    if let Some(c) = &content {
        secret.content = c.clone();
        secret.revision += 1;
    }
    if let Some(label) = p.value("label") {
        secret.label = Some(label.to_string());
    }
    ctx.pending.secret_ops.push(SecretOp::Set {
        id,
        content,
        label: p.value("label").map(str::to_string),
        description: p.value("description").map(str::to_string),
    });
    Ok(Reply::Silent)
}

pub(super) fn secret_grant(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let id = owned_secret(ctx, p.positional.first().map(String::as_str))?;
    let relation = relation_id(ctx, p)?;
    let unit = p.value("unit").map(str::to_string);
    if let Some(unit) = &unit {
        let remote = &ctx.relations[&relation].remote_app;
        if app_of(unit) != remote {
            return usage(format!(
                "cannot specify unit {unit:?} in relation to application {remote:?}"
            ));
        }
    }
    ctx.pending
        .secret_ops
        .push(SecretOp::Grant { id, relation, unit });
    Ok(Reply::Silent)
}

pub(super) fn secret_revoke(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let id = owned_secret(ctx, p.positional.first().map(String::as_str))?;
    let relation = match p.value("relation") {
        Some(_) => Some(relation_id(ctx, p)?),
        None => ctx.current_relation,
    };
    ctx.pending
        .secret_ops
        .push(SecretOp::Revoke { id, relation });
    Ok(Reply::Silent)
}

pub(super) fn secret_remove(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let id = owned_secret(ctx, p.positional.first().map(String::as_str))?;
    ctx.pending.secret_ops.push(SecretOp::Remove { id });
    Ok(Reply::Silent)
}

pub(super) fn secret_ids(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    let ids: Vec<String> = ctx
        .secrets
        .values()
        .filter(|s| s.owner == ctx.app || s.owner == ctx.unit)
        .map(|s| s.id.trim_start_matches("secret:").to_string())
        .collect();
    Ok(Reply::Value(if ids.is_empty() {
        Value::Null
    } else {
        json!(ids)
    }))
}

pub(super) fn secret_info_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let id = p.positional.first().map(String::as_str);
    let label = p.value("label");
    if id.is_none() && label.is_none() {
        return usage("require either a secret URI or label");
    }
    let Some(secret) = find_secret(ctx, id, label) else {
        return run_err(format!(
            "secret {:?} not found",
            id.or(label).unwrap_or_default()
        ));
    };
    let short = secret.id.trim_start_matches("secret:").to_string();
    Ok(Reply::Value(json!({ short: {
        "revision": secret.revision,
        "label": secret.label,
        "owner": if secret.owner.contains('/') { "unit" } else { "application" },
        "rotation": "never",
    }})))
}
