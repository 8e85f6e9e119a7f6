//! Juju secrets (contract §4.15): `secret-add`, `secret-set`,
//! `secret-grant`, `secret-revoke`, `secret-remove`, `secret-get`,
//! `secret-info-get`, `secret-ids`.
//!
//! Content values are [`Secret`]s in both directions. They never go on a
//! command line: `secret-add`/`secret-set` get each value as
//! `key#file=<path>`, a file of root's alone that exists while the tool runs
//! (error messages show `key=***`), and what `secret-get` returns is wrapped
//! before any caller sees it. Creating, updating, granting, revoking and
//! removing are buffered by Juju until the hook succeeds; the URI returned
//! by `secret-add` is valid at once. Secrets are the application's unless
//! asked otherwise, and only the leader manages those.
//!
//! URIs are [`SecretUri`]s: checked when Juju hands one over, so a URI the
//! charm publishes in a bag is exactly one Juju gave it.

use std::collections::BTreeMap;

use crate::secret::Secret;

use super::relation::RelationId;
use super::tool::{Invocation, ToolError};

/// Secret content: key → value.
pub type SecretContent = BTreeMap<String, Secret<String>>;

pub use crate::relations::ids::SecretUri;

/// Who owns a new secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretOwner {
    /// The application (managed by the leader only). Juju's default.
    #[default]
    Application,
    Unit,
}

/// Optional metadata for `secret-add` and `secret-set`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecretOptions<'a> {
    pub label: Option<&'a str>,
    pub description: Option<&'a str>,
    /// Only used by `secret-add`.
    pub owner: SecretOwner,
}

/// Creates a secret and returns its URI:
/// `secret-add [--owner O] [--label L] [--description D] key#file=… ...`.
pub fn secret_add(
    content: &SecretContent,
    options: SecretOptions<'_>,
) -> Result<SecretUri, ToolError> {
    let owner = match options.owner {
        SecretOwner::Application => "application",
        SecretOwner::Unit => "unit",
    };
    let invocation = Invocation::new("secret-add").arg("--owner").arg(owner);
    let invocation = with_content(with_metadata(invocation, options), content);
    invocation.run_parsed(|out| SecretUri::parse(out).ok_or("expected a secret URI"))
}

/// Replaces a secret's content with a new revision:
/// `secret-set <uri> [--label L] [--description D] key#file=… ...`.
pub fn secret_set(
    uri: &SecretUri,
    content: &SecretContent,
    options: SecretOptions<'_>,
) -> Result<(), ToolError> {
    let invocation = with_metadata(Invocation::new("secret-set").arg(uri.as_str()), options);
    with_content(invocation, content).run().map(drop)
}

/// Lets the remote application of `relation` (or one remote unit) read a
/// secret for as long as the relation lives:
/// `secret-grant <uri> -r <id> [--unit <unit>]`.
pub fn secret_grant(
    uri: &SecretUri,
    relation: &RelationId,
    unit: Option<&str>,
) -> Result<(), ToolError> {
    let mut invocation = Invocation::new("secret-grant")
        .arg(uri.as_str())
        .arg("-r")
        .arg(relation.to_string());
    if let Some(unit) = unit {
        invocation = invocation.arg("--unit").arg(unit);
    }
    invocation.run().map(drop)
}

/// Takes back what [`secret_grant`] gave the remote side of `relation`:
/// `secret-revoke <uri> -r <id>`.
pub fn secret_revoke(uri: &SecretUri, relation: &RelationId) -> Result<(), ToolError> {
    Invocation::new("secret-revoke")
        .arg(uri.as_str())
        .arg("-r")
        .arg(relation.to_string())
        .run()
        .map(drop)
}

/// Removes a secret with all its revisions (`revision: None`) or one
/// obsolete revision: `secret-remove <uri> [--revision N]`.
pub fn secret_remove(uri: &SecretUri, revision: Option<u32>) -> Result<(), ToolError> {
    let mut invocation = Invocation::new("secret-remove").arg(uri.as_str());
    if let Some(revision) = revision {
        invocation = invocation.arg("--revision").arg(revision.to_string());
    }
    invocation.run().map(drop)
}

/// Reads a secret by URI (the latest revision for its owner; for a
/// consumer, the revision it tracks): `secret-get --format=json <uri>`. A
/// missing secret gives an error whose [`ToolError::is_not_found`] is true.
pub fn secret_get(uri: &SecretUri) -> Result<SecretContent, ToolError> {
    read_content(
        Invocation::new("secret-get")
            .arg("--format=json")
            .arg(uri.as_str()),
    )
}

/// Reads the latest revision and tracks it from now on:
/// `secret-get --format=json --refresh <uri>`.
pub fn secret_get_latest(uri: &SecretUri) -> Result<SecretContent, ToolError> {
    read_content(
        Invocation::new("secret-get")
            .arg("--format=json")
            .arg("--refresh")
            .arg(uri.as_str()),
    )
}

/// Reads the latest revision once, tracking what it tracked before:
/// `secret-get --format=json --peek <uri>`.
pub fn secret_get_peek(uri: &SecretUri) -> Result<SecretContent, ToolError> {
    read_content(
        Invocation::new("secret-get")
            .arg("--format=json")
            .arg("--peek")
            .arg(uri.as_str()),
    )
}

/// Reads a secret by the label its owner gave it:
/// `secret-get --format=json --label <label>`.
pub fn secret_get_by_label(label: &str) -> Result<SecretContent, ToolError> {
    read_content(
        Invocation::new("secret-get")
            .arg("--format=json")
            .arg("--label")
            .arg(label),
    )
}

/// What `secret-info-get` tells an owner about one of its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub uri: SecretUri,
    /// The latest revision.
    pub revision: u32,
}

/// The URI of the secret its owner labelled `label`:
/// `secret-info-get --label <label> --format=json`, whose output is
/// `{<id>: {revision, label, …}}`.
pub fn secret_id_by_label(label: &str) -> Result<SecretUri, ToolError> {
    secret_info_by_label(label).map(|info| info.uri)
}

/// The secret its owner labelled `label` and its latest revision. A label
/// no secret of this owner has gives an error whose
/// [`ToolError::is_not_found`] is true.
pub fn secret_info_by_label(label: &str) -> Result<SecretInfo, ToolError> {
    Invocation::new("secret-info-get")
        .arg("--label")
        .arg(label)
        .arg("--format=json")
        .run_parsed(parse_info)
}

fn parse_info(out: &str) -> Result<SecretInfo, &'static str> {
    let info: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(out).map_err(|_| "expected JSON secret info")?;
    let (id, fields) = info.into_iter().next().ok_or("expected one secret")?;
    let uri = SecretUri::parse(&id).ok_or("expected a secret id")?;
    let revision = fields["revision"]
        .as_u64()
        .and_then(|r| u32::try_from(r).ok())
        .ok_or("expected a revision")?;
    Ok(SecretInfo { uri, revision })
}

/// URIs of the secrets this unit or application owns:
/// `secret-ids --format=json`. Bare ids get the `secret:` prefix.
pub fn secret_ids() -> Result<Vec<SecretUri>, ToolError> {
    Invocation::new("secret-ids")
        .arg("--format=json")
        .run_parsed(parse_ids)
}

fn parse_ids(out: &str) -> Result<Vec<SecretUri>, &'static str> {
    let text = if out.trim().is_empty() { "null" } else { out };
    let ids: Option<Vec<String>> =
        serde_json::from_str(text).map_err(|_| "expected a JSON list of ids")?;
    ids.unwrap_or_default()
        .iter()
        .map(|id| SecretUri::parse(id).ok_or("expected secret ids"))
        .collect()
}

fn with_metadata(mut invocation: Invocation, options: SecretOptions<'_>) -> Invocation {
    if let Some(label) = options.label {
        invocation = invocation.arg("--label").arg(label);
    }
    if let Some(description) = options.description {
        invocation = invocation.arg("--description").arg(description);
    }
    invocation
}

fn with_content(invocation: Invocation, content: &SecretContent) -> Invocation {
    content.iter().fold(invocation, |invocation, (key, value)| {
        invocation.secret_file_pair(key, value.expose())
    })
}

fn read_content(invocation: Invocation) -> Result<SecretContent, ToolError> {
    let content: Option<BTreeMap<String, String>> = invocation.run_json()?;
    Ok(wrap_content(content.unwrap_or_default()))
}

fn wrap_content(content: BTreeMap<String, String>) -> SecretContent {
    content
        .into_iter()
        .map(|(key, value)| (key, Secret::new(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tool::parse_json;
    use super::*;

    #[test]
    fn secret_get_output_is_wrapped() {
        let raw: Option<BTreeMap<String, String>> =
            parse_json(r#"{"password":"s3cretvalue","username":"juju_app"}"#).unwrap();
        let content = wrap_content(raw.unwrap());
        assert_eq!(content["password"].expose(), "s3cretvalue");
        assert!(!format!("{content:?}").contains("s3cretvalue"));
    }

    const ID: &str = "cnp5t2tnh8pc778j61eg";
    const MODEL: &str = "9c1d3d6e-2f4b-4c8a-8e5f-0a1b2c3d4e5f";

    #[test]
    fn secret_ids_get_the_uri_prefix() {
        let ids = parse_ids(&format!(r#"["{ID}","secret:{ID}"]"#)).unwrap();
        assert_eq!(ids[0].as_str(), format!("secret:{ID}"));
        assert_eq!(ids[0], ids[1]);
        assert_eq!(parse_ids("null\n").unwrap(), []);
        assert_eq!(parse_ids("").unwrap(), []);
        assert!(parse_ids(r#"["secret:abc"]"#).is_err());
    }

    #[test]
    fn uris_are_checked_in_every_form_juju_prints() {
        let long = format!("secret://{MODEL}/{ID}");
        for (text, want) in [
            (format!("secret:{ID}\n"), Some(format!("secret:{ID}"))),
            (ID.to_string(), Some(format!("secret:{ID}"))),
            (long.clone(), Some(long.clone())),
        ] {
            let uri = SecretUri::parse(&text);
            assert_eq!(uri.as_ref().map(|u| u.as_str().to_string()), want, "{text}");
            assert_eq!(uri.unwrap().id(), ID);
        }
        for bad in [
            "",
            "secret:",
            "secret:CNP5T2TNH8PC778J61EG",
            "secret:cnp5t2tnh8pc778j61ez",
            "secret:cnp5t2tnh8pc778j61eg0",
            "secret://not-a-model/cnp5t2tnh8pc778j61eg",
            "secret:cnp5t2tnh8pc778j61eg x",
        ] {
            assert_eq!(SecretUri::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn short_uris_get_the_owners_model() {
        let short = SecretUri::parse(ID).unwrap();
        let long = short.in_model(MODEL);
        assert_eq!(long.as_str(), format!("secret://{MODEL}/{ID}"));
        assert_eq!(long.in_model("0000"), long);
        assert_eq!(short.in_model("not-a-uuid"), short);
    }

    #[test]
    fn info_gives_the_uri_and_latest_revision() {
        let info = parse_info(&format!(
            r#"{{"{ID}":{{"revision":3,"label":"db","owner":"application"}}}}"#
        ))
        .unwrap();
        assert_eq!(info.uri.as_str(), format!("secret:{ID}"));
        assert_eq!(info.revision, 3);
        assert!(parse_info("{}").is_err());
        assert!(parse_info(&format!(r#"{{"{ID}":{{}}}}"#)).is_err());
    }

    #[test]
    fn content_goes_in_files_never_on_the_command_line() {
        let content = SecretContent::from([
            ("password".into(), Secret::new("s3cretvalue".into())),
            ("username".into(), Secret::new("juju_app".into())),
        ]);
        let options = SecretOptions {
            label: Some("db-password"),
            ..SecretOptions::default()
        };
        let invocation = with_content(
            with_metadata(Invocation::new("secret-add"), options),
            &content,
        );
        assert_eq!(
            invocation.args(),
            ["--label", "db-password", "password#file=", "username#file="],
            "each path is added when the tool runs"
        );
        assert!(!format!("{invocation:?}").contains("s3cretvalue"));
    }
}
