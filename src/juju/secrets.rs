//! Juju secrets: `secret-add`, `secret-get`, `secret-set`, `secret-grant`,
//! `secret-ids`.
//!
//! Content values are [`Secret`]s in both directions. They are passed to
//! `secret-add`/`secret-set` as `key=value` arguments that error messages
//! show as `key=***`, and what `secret-get` returns is wrapped before any
//! caller sees it. Creating, updating and granting are buffered by Juju until
//! the hook succeeds; the URI returned by `secret-add` is valid at once.

use std::collections::BTreeMap;

use crate::secret::Secret;

use super::relation::RelationId;
use super::tool::{Invocation, ToolError};

/// Secret content: key → value.
pub type SecretContent = BTreeMap<String, Secret<String>>;

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

/// Creates a secret and returns its URI (`secret:<id>`):
/// `secret-add [--owner O] [--label L] [--description D] key=value ...`.
pub fn secret_add(
    content: &SecretContent,
    options: SecretOptions<'_>,
) -> Result<String, ToolError> {
    let owner = match options.owner {
        SecretOwner::Application => "application",
        SecretOwner::Unit => "unit",
    };
    let invocation = Invocation::new("secret-add").arg("--owner").arg(owner);
    let uri = with_content(with_metadata(invocation, options), content).run()?;
    Ok(uri.trim().to_string())
}

/// Replaces a secret's content with a new revision:
/// `secret-set <uri> [--label L] [--description D] key=value ...`.
pub fn secret_set(
    uri: &str,
    content: &SecretContent,
    options: SecretOptions<'_>,
) -> Result<(), ToolError> {
    let invocation = with_metadata(Invocation::new("secret-set").arg(uri), options);
    with_content(invocation, content).run().map(drop)
}

/// Reads a secret by URI at the revision this unit tracks:
/// `secret-get --format=json <uri>`. A missing secret gives an error whose
/// [`ToolError::is_not_found`] is true.
pub fn secret_get(uri: &str) -> Result<SecretContent, ToolError> {
    read_content(Invocation::new("secret-get").arg("--format=json").arg(uri))
}

/// Reads the latest revision and tracks it from now on:
/// `secret-get --format=json --refresh <uri>`.
pub fn secret_get_latest(uri: &str) -> Result<SecretContent, ToolError> {
    read_content(
        Invocation::new("secret-get")
            .arg("--format=json")
            .arg("--refresh")
            .arg(uri),
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

/// The URI of the secret its owner labelled `label`:
/// `secret-info-get --label <label> --format=json`, whose output is
/// `{<id>: {revision, label, …}}`.
pub fn secret_id_by_label(label: &str) -> Result<String, ToolError> {
    let info: Option<BTreeMap<String, serde_json::Value>> = Invocation::new("secret-info-get")
        .arg("--label")
        .arg(label)
        .arg("--format=json")
        .run_json()?;
    let id = info
        .and_then(|info| info.into_keys().next())
        .unwrap_or_default();
    Ok(normalise_secret_ids(vec![id]).remove(0))
}

/// Lets the remote side of `relation` (or one remote unit) read a secret:
/// `secret-grant <uri> -r <id> [--unit <unit>]`.
pub fn secret_grant(uri: &str, relation: &RelationId, unit: Option<&str>) -> Result<(), ToolError> {
    let mut invocation = Invocation::new("secret-grant")
        .arg(uri)
        .arg("-r")
        .arg(relation.to_string());
    if let Some(unit) = unit {
        invocation = invocation.arg("--unit").arg(unit);
    }
    invocation.run().map(drop)
}

/// URIs of the secrets this unit or application owns:
/// `secret-ids --format=json`. Bare ids get the `secret:` prefix.
pub fn secret_ids() -> Result<Vec<String>, ToolError> {
    let ids: Option<Vec<String>> = Invocation::new("secret-ids")
        .arg("--format=json")
        .run_json()?;
    Ok(normalise_secret_ids(ids.unwrap_or_default()))
}

fn normalise_secret_ids(ids: Vec<String>) -> Vec<String> {
    ids.into_iter()
        .map(|id| {
            if id.starts_with("secret:") {
                id
            } else {
                format!("secret:{id}")
            }
        })
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
        invocation.secret_pair(key, value.expose())
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

    #[test]
    fn secret_ids_get_the_uri_prefix() {
        let raw: Option<Vec<String>> =
            parse_json(r#"["cnp5t2tnh8pc778j61eg","secret:abc"]"#).unwrap();
        assert_eq!(
            normalise_secret_ids(raw.unwrap()),
            ["secret:cnp5t2tnh8pc778j61eg", "secret:abc"]
        );
        assert!(parse_json::<Option<Vec<String>>>("null\n")
            .unwrap()
            .is_none());
    }

    #[test]
    fn content_goes_in_key_value_args_hidden_from_debug() {
        let content = SecretContent::from([("password".into(), Secret::new("s3cretvalue".into()))]);
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
            ["--label", "db-password", "password=s3cretvalue"]
        );
        assert!(!format!("{invocation:?}").contains("s3cretvalue"));
    }
}
