//! The `secret-*` tools (contract §4.15), as Juju 3.6's jujuc and the
//! controller behind it answer them:
//!
//! * URIs are `secret://<model-uuid>/<id>` (what `secret-add` prints),
//!   `secret:<id>` or a bare id; the short forms name a secret of the
//!   unit's own model, so a consumer in another model needs the full URI;
//! * owners read the latest revision and may use the owner's label;
//!   consumers read what was granted to them: the first read pins the
//!   latest revision, `--peek` reads the latest once, `--refresh` moves the
//!   pin, and a label they give is theirs alone (the controller records
//!   reads at once, whatever the hook's exit code);
//! * creating, changing, granting, revoking and removing are buffered and
//!   checked by the controller at commit ([`crate::World`]).

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::{json, Map, Value};

use super::{
    check_max_args, no_args, relation_id, run_err, scalar_to_string, usage, Fail, Reply, ToolIo,
    ToolResult,
};
use crate::args::Parsed;
use crate::context::{Bag, HookContext, Immediate, SecretContext, SecretMeta, SecretOp};

/// A 20-character xid: 12 random bytes in lowercase base32hex.
fn new_secret_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut bytes = [0u8; 12];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | b as u128;
    }
    // 96 bits in 20 characters of 5 bits: the last carries one bit, shifted.
    let bits = bits << 4;
    (0..20)
        .rev()
        .map(|i| ALPHABET[((bits >> (i * 5)) & 0x1f) as usize] as char)
        .collect()
}

/// (model UUID if the URI names one, id) of `secret://<uuid>/<id>`,
/// `secret:<id>` or `<id>`.
pub(crate) fn parse_uri(text: &str) -> Option<(Option<String>, String)> {
    let (model, id) = match text.strip_prefix("secret://") {
        Some(rest) => {
            let (model, id) = rest.split_once('/')?;
            let valid_model =
                model.len() == 36 && model.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            if !valid_model {
                return None;
            }
            (Some(model.to_string()), id)
        }
        None => (None, text.strip_prefix("secret:").unwrap_or(text)),
    };
    let valid_id = id.len() == 20
        && id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c));
    valid_id.then(|| (model, id.to_string()))
}

fn uri_arg(raw: &str) -> Result<(Option<String>, String), Fail> {
    parse_uri(raw).ok_or_else(|| Fail::Usage(format!("secret URI {raw:?} not valid")))
}

/// The secret a URI names, as this unit's context has it: the short forms
/// name a secret of the unit's own model.
fn by_uri<'a>(ctx: &'a HookContext, model: &Option<String>, id: &str) -> Option<&'a SecretContext> {
    let model = model.as_deref().unwrap_or(&ctx.model_uuid);
    ctx.secrets.get(id).filter(|s| s.model_uuid == model)
}

fn not_found<T>(id: &str) -> Result<T, Fail> {
    run_err(format!("secret {id:?} not found"))
}

const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = BASE64.iter().position(|b| *b == c)? as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// Juju's secret keys: lowercase letters, digits and single hyphens,
/// starting with a letter, at least three characters.
fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() >= 3
        && bytes[0].is_ascii_lowercase()
        && !key.ends_with('-')
        && !key.contains("--")
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Content from `key=value`, `key#base64=<base64>` and `key#file=<path>`
/// arguments and `--file <yaml>`; values are stored decoded.
fn secret_content(p: &Parsed, args: &[String], io: &mut dyn ToolIo) -> Result<Bag, Fail> {
    let mut content = Bag::new();
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return usage(format!("key value {arg:?} not valid"));
        };
        let (key, value) = match key.split_once('#') {
            Some((key, "base64")) => {
                let decoded = base64_decode(value)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        Fail::Usage(format!("base64 value for key {key:?} not valid"))
                    })?;
                (key, decoded)
            }
            Some((key, "file")) => {
                let text = io
                    .read_file(value)
                    .map_err(|e| Fail::Usage(format!("open {value}: {e}")))?;
                (key, text)
            }
            Some(_) => return usage(format!("key {key:?} not valid")),
            None => (key, value.to_string()),
        };
        if !valid_key(key) {
            return usage(format!("key {key:?} not valid"));
        }
        content.insert(key.to_string(), value);
    }
    if let Some(path) = p.value("file") {
        let text = io
            .read_file(path)
            .map_err(|e| Fail::Usage(format!("open {path}: {e}")))?;
        let map: BTreeMap<String, serde_yaml::Value> = serde_yaml::from_str(&text)
            .map_err(|e| Fail::Usage(format!("invalid secret file {path:?}: {e}")))?;
        for (k, v) in map {
            if !valid_key(&k) {
                return usage(format!("key {k:?} not valid"));
            }
            content.insert(k, scalar_to_string(&v).unwrap_or_default());
        }
    }
    Ok(content)
}

const ROTATE_POLICIES: [&str; 7] = [
    "never",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "yearly",
];

/// A Go duration (`72h`, `1h30m`, `1.5s`): `Some(positive)`.
fn go_duration_positive(text: &str) -> Option<bool> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut any_nonzero = false;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().ok()?;
        any_nonzero |= value > 0.0;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        if !["ns", "us", "µs", "ms", "s", "m", "h"].contains(&unit) {
            return None;
        }
        rest = next;
    }
    Some(any_nonzero && !negative)
}

/// `YYYY-MM-DDTHH:MM:SS`, optionally with a zone (RFC 3339).
fn looks_like_time(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && text[..19]
            .chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16].contains(&i) || c.is_ascii_digit())
}

/// `--label`, `--description`, `--expire`, `--rotate` as Juju checks them.
fn secret_meta(p: &Parsed) -> Result<SecretMeta, Fail> {
    if let Some(expire) = p.value("expire") {
        if !looks_like_time(expire) {
            match go_duration_positive(expire) {
                Some(true) => {}
                Some(false) => {
                    return usage(format!("negative expire duration {expire:?} not valid"))
                }
                None => return usage(format!("expire time or duration {expire:?} not valid")),
            }
        }
    }
    if let Some(rotate) = p.value("rotate") {
        if !ROTATE_POLICIES.contains(&rotate) {
            return usage(format!("rotate policy {rotate:?} not valid"));
        }
    }
    Ok(SecretMeta {
        label: p.value("label").map(str::to_string),
        description: p.value("description").map(str::to_string),
        expire: p.value("expire").map(str::to_string),
        rotate: p.value("rotate").map(str::to_string),
    })
}

pub(super) fn secret_add(ctx: &mut HookContext, p: &Parsed, io: &mut dyn ToolIo) -> ToolResult {
    if p.positional.is_empty() && p.value("file").is_none() {
        return usage("missing secret value or filename");
    }
    let owner = p.value("owner").unwrap_or("application");
    if !["application", "unit"].contains(&owner) {
        return usage(format!("secret owner {owner:?} not valid"));
    }
    let meta = secret_meta(p)?;
    let content = secret_content(p, &p.positional, io)?;
    if content.is_empty() {
        return run_err("empty secret value not valid");
    }
    if owner == "application" && !ctx.leader {
        return run_err("this unit is not the leader");
    }
    let owner = if owner == "unit" {
        ctx.unit.clone()
    } else {
        ctx.app.clone()
    };
    let secret = SecretContext {
        id: new_secret_id(),
        model_uuid: ctx.model_uuid.clone(),
        owner: owner.clone(),
        owned: true,
        readable: true,
        label: meta.label.clone(),
        description: meta.description.clone(),
        expire: meta.expire.clone(),
        rotate: meta.rotate.clone(),
        latest: 1,
        revisions: BTreeMap::from([(1, content.clone())]),
        ..Default::default()
    };
    let uri = secret.uri();
    ctx.pending.secret_ops.push(SecretOp::Add {
        id: secret.id.clone(),
        owner,
        content,
        meta,
    });
    ctx.secrets.insert(secret.id.clone(), secret);
    Ok(Reply::Text(format!("{uri}\n")))
}

pub(super) fn secret_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let uri = p.positional.first().map(|raw| uri_arg(raw)).transpose()?;
    let key = p.positional.get(1).cloned();
    check_max_args(p, 2)?;
    let label = p.value("label").map(str::to_string);
    if uri.is_none() && label.is_none() {
        return usage("require either a secret URI or label");
    }
    let (peek, refresh) = (p.is_set("peek"), p.is_set("refresh"));
    if peek && refresh {
        return usage("specify one of --peek or --refresh but not both");
    }
    let id = match (&uri, &label) {
        (Some((model, id)), _) => match by_uri(ctx, model, id) {
            Some(s) => s.id.clone(),
            None => return not_found(id),
        },
        (None, Some(label)) => {
            // Owners' labels first, then this unit's own consumer labels.
            let owned = ctx
                .secrets
                .values()
                .find(|s| s.owned && s.label.as_deref() == Some(label.as_str()));
            let consumed = || {
                ctx.secrets
                    .values()
                    .find(|s| !s.owned && s.consumer_label.as_deref() == Some(label.as_str()))
            };
            match owned.or_else(consumed) {
                Some(s) => s.id.clone(),
                None => return run_err(format!("consumer label {label:?} not found")),
            }
        }
        (None, None) => unreachable!("checked above"),
    };
    let secret = ctx.secrets.get_mut(&id).expect("found");
    let content = if secret.owned {
        secret.revisions[&secret.latest].clone()
    } else {
        if !secret.readable {
            return run_err(format!(
                "permission denied: cannot read secret {:?}",
                secret.uri()
            ));
        }
        let pin = refresh || secret.tracked.is_none();
        let revision = if pin || peek {
            secret.latest
        } else {
            secret.tracked.expect("tracked")
        };
        // A label given with the URI becomes this unit's label for it.
        let new_label = label.filter(|_| uri.is_some());
        if pin || new_label.is_some() {
            if pin {
                secret.tracked = Some(secret.latest);
            }
            if new_label.is_some() {
                secret.consumer_label = new_label.clone();
            }
            ctx.immediate.push(Immediate::SecretTrack {
                id: id.clone(),
                revision: pin.then_some(revision),
                label: new_label,
            });
        }
        let secret = &ctx.secrets[&id];
        secret.revisions.get(&revision).cloned().unwrap_or_default()
    };
    Ok(Reply::Value(match key {
        None => json!(content),
        Some(key) => {
            let (name, encoded) = match key.strip_suffix("#base64") {
                Some(name) => (name, true),
                None => (key.as_str(), false),
            };
            match content.get(name) {
                Some(v) if encoded => json!(base64_encode(v.as_bytes())),
                Some(v) => json!(v),
                None => return run_err(format!("secret key {name:?} not found")),
            }
        }
    }))
}

/// The secret named by `raw`, which this unit (or, as leader, its
/// application) must own: Juju knows no other secret in these tools.
fn owned_secret(ctx: &HookContext, raw: Option<&String>) -> Result<String, Fail> {
    let Some(raw) = raw else {
        return usage("missing secret URI");
    };
    let (model, id) = uri_arg(raw)?;
    let Some(secret) = by_uri(ctx, &model, &id).filter(|s| s.owned) else {
        return not_found(&id);
    };
    if secret.owner == ctx.app && !ctx.leader {
        return run_err("this unit is not the leader");
    }
    Ok(secret.id.clone())
}

pub(super) fn secret_set(ctx: &mut HookContext, p: &Parsed, io: &mut dyn ToolIo) -> ToolResult {
    let meta = secret_meta(p)?;
    let rest = p.positional.get(1..).unwrap_or_default();
    let content = secret_content(p, rest, io)?;
    let id = owned_secret(ctx, p.positional.first())?;
    let secret = ctx.secrets.get_mut(&id).expect("owned secret");
    let new_content = (!content.is_empty()).then_some(content);
    if let Some(c) = &new_content {
        if secret.revisions.get(&secret.latest) != Some(c) {
            secret.latest += 1;
            secret.revisions.insert(secret.latest, c.clone());
        }
    }
    for (field, new) in [
        (&mut secret.label, &meta.label),
        (&mut secret.description, &meta.description),
        (&mut secret.expire, &meta.expire),
        (&mut secret.rotate, &meta.rotate),
    ] {
        if new.is_some() {
            *field = new.clone();
        }
    }
    ctx.pending.secret_ops.push(SecretOp::Set {
        id,
        content: new_content,
        meta,
    });
    Ok(Reply::Silent)
}

/// `secret-grant <ID> -r <relation> [--unit <unit>]`.
pub(super) fn secret_grant(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let Some(raw) = p.positional.first() else {
        return usage("missing secret URI");
    };
    uri_arg(raw)?;
    let relation = relation_id(ctx, p)?;
    let unit = p.value("unit").map(str::to_string);
    if let Some(unit) = &unit {
        if crate::exec::unit_name(unit).as_deref() != Some(unit.as_str()) {
            return usage(format!("unit {unit:?} not valid"));
        }
        let remote = &ctx.relations[&relation].remote_app;
        if super::app_of(unit) != remote {
            return usage(format!(
                "cannot specify unit {unit:?} in relation to application {remote:?}"
            ));
        }
    }
    check_max_args(p, 1)?;
    let id = owned_secret(ctx, p.positional.first())?;
    ctx.pending
        .secret_ops
        .push(SecretOp::Grant { id, relation, unit });
    Ok(Reply::Silent)
}

/// `secret-revoke <ID> [-r <relation>] [--app <app>] [--unit <unit>]`; in
/// a relation hook the relation is the hook's.
pub(super) fn secret_revoke(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let Some(raw) = p.positional.first() else {
        return usage("missing secret URI");
    };
    uri_arg(raw)?;
    let mut app = p
        .value("app")
        .or_else(|| p.value("application"))
        .map(str::to_string);
    let unit = p.value("unit").map(str::to_string);
    if app.is_some() && unit.is_some() {
        return usage("specify only one of application or unit");
    }
    let relation = match p.value("relation") {
        Some(_) => Some(relation_id(ctx, p)?),
        None => ctx.current_relation,
    };
    if let Some(id) = relation {
        if app.is_some() {
            return usage("do not specify both relation and app");
        }
        app = Some(ctx.relations[&id].remote_app.clone());
    }
    if app.is_none() && unit.is_none() {
        return usage("missing relation or application or unit");
    }
    check_max_args(p, 1)?;
    let id = owned_secret(ctx, p.positional.first())?;
    ctx.pending
        .secret_ops
        .push(SecretOp::Revoke { id, app, unit });
    Ok(Reply::Silent)
}

pub(super) fn secret_remove(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let revision = match p.value("revision") {
        Some(raw) => Some(raw.parse::<u32>().map_err(|_| {
            Fail::Usage(format!(
                "invalid value {raw:?} for flag --revision: parse error"
            ))
        })?),
        None => None,
    };
    check_max_args(p, 1)?;
    let id = owned_secret(ctx, p.positional.first())?;
    ctx.pending
        .secret_ops
        .push(SecretOp::Remove { id, revision });
    Ok(Reply::Silent)
}

pub(super) fn secret_ids(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    no_args(p)?;
    let ids: Vec<String> = ctx
        .secrets
        .values()
        .filter(|s| s.owned)
        .map(|s| s.id.clone())
        .collect();
    Ok(Reply::Value(if ids.is_empty() {
        Value::Null
    } else {
        json!(ids)
    }))
}

pub(super) fn secret_info_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    let uri = p.positional.first().map(|raw| uri_arg(raw)).transpose()?;
    check_max_args(p, 1)?;
    let label = p.value("label");
    match (&uri, label) {
        (None, None) => return usage("require either a secret URI or label"),
        (Some(_), Some(_)) => return usage("specify either a secret URI or label but not both"),
        _ => {}
    }
    let found = match (&uri, label) {
        (Some((model, id)), _) => by_uri(ctx, model, id).filter(|s| s.owned),
        (None, Some(label)) => ctx
            .secrets
            .values()
            .find(|s| s.owned && s.label.as_deref() == Some(label)),
        (None, None) => None,
    };
    let Some(secret) = found else {
        let want = uri
            .map(|(_, id)| id)
            .or(label.map(str::to_string))
            .unwrap_or_default();
        return not_found(&want);
    };
    let mut info = Map::new();
    info.insert("revision".into(), json!(secret.latest));
    info.insert(
        "label".into(),
        json!(secret.label.clone().unwrap_or_default()),
    );
    info.insert(
        "owner".into(),
        json!(if secret.owner.contains('/') {
            "unit"
        } else {
            "application"
        }),
    );
    for (key, value) in [
        ("description", &secret.description),
        ("rotation", &secret.rotate),
        ("expiry", &secret.expire),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            info.insert(key.into(), json!(v));
        }
    }
    if !secret.access.is_empty() {
        info.insert(
            "access".into(),
            json!(secret
                .access
                .iter()
                .map(|a| json!({"target": a.target, "scope": a.scope, "role": a.role}))
                .collect::<Vec<_>>()),
        );
    }
    Ok(Reply::Value(
        json!({ secret.id.clone(): Value::Object(info) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_xids_and_uris_parse_in_every_form() {
        let id = new_secret_id();
        assert_eq!(id.len(), 20);
        assert!(matches!(id.chars().last(), Some('0' | 'g')), "{id}");
        let uuid = "cdac5656-2423-4388-8f30-41854b4cca7d";
        assert_eq!(
            parse_uri(&format!("secret://{uuid}/{id}")),
            Some((Some(uuid.to_string()), id.clone()))
        );
        assert_eq!(parse_uri(&format!("secret:{id}")), Some((None, id.clone())));
        assert_eq!(parse_uri(&id), Some((None, id.clone())));
        for bad in [
            "secret:short",
            "password",
            "secret://nope/cnp5t2tnh8pc778j61eg",
            "secret:CNP5T2TNH8PC778J61EG",
        ] {
            assert_eq!(parse_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn base64_round_trips() {
        for text in ["", "a", "ab", "abc", "s3cret value\n", "ünïcode"] {
            let encoded = base64_encode(text.as_bytes());
            assert_eq!(
                base64_decode(&encoded).unwrap(),
                text.as_bytes(),
                "{encoded}"
            );
        }
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_decode("not base64!"), None);
    }

    #[test]
    fn keys_expiry_and_durations_follow_juju() {
        for good in ["password", "tls-ca", "uri2", "abc"] {
            assert!(valid_key(good), "{good}");
        }
        for bad in ["ab", "Password", "9lives", "a--b", "end-", "under_score"] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert_eq!(go_duration_positive("72h"), Some(true));
        assert_eq!(go_duration_positive("1h30m"), Some(true));
        assert_eq!(go_duration_positive("-5m"), Some(false));
        assert_eq!(go_duration_positive("tomorrow"), None);
        assert!(looks_like_time("2026-01-02T15:04:05"));
        assert!(looks_like_time("2026-01-02T15:04:05Z"));
        assert!(!looks_like_time("2026-01-02"));
    }
}
