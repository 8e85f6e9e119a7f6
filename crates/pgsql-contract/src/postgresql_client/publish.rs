//! What the leader publishes in its application bag for a `database`
//! relation, once the plan's secrets exist (pure).
//!
//! **v0**: the answer's plain fields (`database`, `endpoints`,
//! `read-only-endpoints`, `version`, and whatever the consumer did not ask
//! to have in secrets), plus `secret-user` and `secret-tls` holding the
//! secrets' URIs. The library fires `database_created` when `secret-user`
//! appears (or, without secrets, `username` and `password` together).
//!
//! **v1**: `version: v1`; `requests`, a JSON list with one object per
//! request: its `resource`, `request-id` and `salt` echoed, its plain
//! fields and its `secret-user` / `secret-tls`; and `data`, a JSON object
//! from each request id to the request as the charm understood it
//! (`resource`, `request-id`, `salt`, `extra-user-roles`,
//! `external-node-connectivity`). The library matches each answer to its
//! request through `data` (and fails the consumer's hook if an answer has
//! no entry there), then fires `resource_created` when its `secret-user`
//! appears.
//!
//! Only the leader writes the application bag. [`settings_to_write`] adds a
//! deletion for every other key the charm may publish, so nothing stale
//! stays, whichever protocol the relation spoke before; [`retraction`] is
//! what a refused relation's bag becomes. Both go through
//! [`crate::bag_changes`] against the bag Juju returns.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::plan::{Answer, ClientPlan};
use super::{ClientError, Protocol};
use crate::ids::RelationData;
use crate::secret::Secret;

/// Every key this charm may write in a `database` relation's bag, in
/// either protocol (`version` is the server's in v0 and `v1` in v1).
pub const PUBLISHED_KEYS: [&str; 14] = [
    "data",
    "database",
    "endpoints",
    "password",
    "read-only-endpoints",
    "read-only-uris",
    "requests",
    "secret-tls",
    "secret-user",
    "tls",
    "tls-ca",
    "uris",
    "username",
    "version",
];

/// The application bag for `plan`. `uris` maps each planned secret's label
/// to the URI of the secret the charm holds under it; a planned secret
/// without one is a charm bug, refused rather than published half.
pub fn app_bag(
    plan: &ClientPlan,
    uris: &BTreeMap<String, String>,
) -> Result<Secret<RelationData>, ClientError> {
    let mut answers = Vec::new();
    for answer in &plan.answers {
        answers.push(answer_fields(plan, answer, uris)?);
    }
    let bag = match plan.protocol {
        Protocol::V0 => answers.pop().expect("a v0 plan has one answer"),
        Protocol::V1 => v1_bag(plan, answers),
    };
    Ok(Secret::new(bag))
}

/// One answer's plain fields plus its secrets' URI fields.
fn answer_fields(
    plan: &ClientPlan,
    answer: &Answer,
    uris: &BTreeMap<String, String>,
) -> Result<RelationData, ClientError> {
    let mut fields = answer.fields.expose().clone();
    for secret in &answer.secrets {
        let uri = uris.get(&secret.label).ok_or_else(|| {
            ClientError::new(
                &plan.relation,
                secret.group.uri_field(),
                format!("no secret labelled {} to publish", secret.label),
            )
        })?;
        fields.insert(secret.group.uri_field(), uri.clone());
    }
    Ok(fields)
}

/// `version`, `requests` and `data` for a v1 consumer.
fn v1_bag(plan: &ClientPlan, answers: Vec<RelationData>) -> RelationData {
    let mut responses = Vec::new();
    let mut echoes = Map::new();
    for (answer, mut fields) in plan.answers.iter().zip(answers) {
        let request = &answer.request;
        let ids = request.ids.as_ref().expect("v1 requests have ids");
        // v1 names the database `resource`; `database` is v0's key.
        fields.remove("database");
        let mut response: Map<String, Value> = fields
            .into_iter()
            .map(|(key, value)| (key, Value::String(value)))
            .collect();
        let mut echo = Map::new();
        for object in [&mut response, &mut echo] {
            object.insert("resource".into(), json!(request.database.as_str()));
            object.insert("request-id".into(), json!(ids.request_id));
            if let Some(salt) = &ids.salt {
                object.insert("salt".into(), json!(salt));
            }
        }
        if let Some(roles) = &request.extra_user_roles_text {
            echo.insert("extra-user-roles".into(), json!(roles));
        }
        if request.external_node_connectivity {
            echo.insert("external-node-connectivity".into(), json!(true));
        }
        responses.push(Value::Object(response));
        echoes.insert(ids.request_id.clone(), Value::Object(echo));
    }
    RelationData::from([
        ("version".to_string(), "v1".to_string()),
        ("requests".to_string(), Value::Array(responses).to_string()),
        ("data".to_string(), Value::Object(echoes).to_string()),
    ])
}

/// `bag` plus an empty value (delete) for every other key in
/// [`PUBLISHED_KEYS`]: exactly what to give `relation-set --app`.
pub fn settings_to_write(bag: &Secret<RelationData>) -> Secret<RelationData> {
    let mut settings = bag.expose().clone();
    for key in PUBLISHED_KEYS {
        settings.entry(key.to_string()).or_default();
    }
    Secret::new(settings)
}

/// An empty value (delete) for every key in [`PUBLISHED_KEYS`]: what a
/// refused relation's application bag must end up as.
pub fn retraction() -> RelationData {
    PUBLISHED_KEYS
        .iter()
        .map(|key| (key.to_string(), String::new()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bag_changes;
    use crate::postgresql_client::testing::{bag, plan, server, PASSWORD};

    fn plan_for(app_data: &RelationData) -> ClientPlan {
        plan(app_data, &server(&[])).unwrap().unwrap()
    }

    /// The URI Juju would give each planned secret.
    fn uris(plan: &ClientPlan) -> BTreeMap<String, String> {
        plan.secrets()
            .enumerate()
            .map(|(i, s)| (s.label.clone(), format!("secret://model-uuid/d0secret{i}")))
            .collect()
    }

    #[test]
    fn a_v0_bag_carries_secret_uris_and_no_password() {
        let plan = plan_for(&bag(&[
            ("database", "shopdb"),
            (
                "requested-secrets",
                "[\"username\", \"password\", \"tls\", \"tls-ca\", \"uris\", \"read-only-uris\"]",
            ),
        ]));
        let published = app_bag(&plan, &uris(&plan)).unwrap();
        assert_eq!(
            published.expose(),
            &bag(&[
                ("database", "shopdb"),
                ("endpoints", "10.1.0.5:5432"),
                ("read-only-endpoints", "10.1.0.5:5432"),
                ("secret-tls", "secret://model-uuid/d0secret1"),
                ("secret-user", "secret://model-uuid/d0secret0"),
                ("version", "16.4"),
            ])
        );
        let missing = app_bag(&plan, &BTreeMap::new()).unwrap_err();
        assert_eq!(missing.field, "secret-user");
        assert!(
            missing.problem.contains("database.7.user.secret"),
            "{missing}"
        );
    }

    #[test]
    fn a_v0_bag_without_secrets_holds_the_credentials() {
        let plan = plan_for(&bag(&[("database", "shopdb")]));
        let published = app_bag(&plan, &BTreeMap::new()).unwrap();
        let published = published.expose();
        assert_eq!(published["username"], "jujuclient_shop_7");
        assert_eq!(published["password"], PASSWORD);
        assert_eq!(
            published["uris"],
            format!("postgresql://jujuclient_shop_7:{PASSWORD}@10.1.0.5:5432/shopdb")
        );
        assert!(!published.contains_key("secret-user"));
    }

    #[test]
    fn a_v1_bag_answers_in_kind_and_echoes_the_requests() {
        let plan = plan_for(&bag(&[
            ("version", "v1"),
            (
                "requests",
                "[{\"resource\": \"shopdb\", \"request-id\": \"85b027df81b4186b\", \
                   \"salt\": \"8gFgs4Dk7HzDqjNe\", \"extra-user-roles\": \"CREATEDB\", \
                   \"external-node-connectivity\": true, \"entity-type\": null}, \
                  {\"resource\": \"reports\", \"request-id\": \"0b0708e796f4afbe\"}]",
            ),
        ]));
        let published = app_bag(&plan, &uris(&plan)).unwrap();
        let published = published.expose();
        assert_eq!(
            published.keys().map(String::as_str).collect::<Vec<_>>(),
            ["data", "requests", "version"]
        );
        assert_eq!(published["version"], "v1");
        let requests: Value = serde_json::from_str(&published["requests"]).unwrap();
        assert_eq!(
            requests,
            json!([
                {
                    "resource": "shopdb", "request-id": "85b027df81b4186b",
                    "salt": "8gFgs4Dk7HzDqjNe",
                    "endpoints": "10.1.0.5:5432", "read-only-endpoints": "10.1.0.5:5432",
                    "version": "16.4",
                    "secret-user": "secret://model-uuid/d0secret0",
                    "secret-tls": "secret://model-uuid/d0secret1",
                },
                {
                    "resource": "reports", "request-id": "0b0708e796f4afbe",
                    "endpoints": "10.1.0.5:5432", "read-only-endpoints": "10.1.0.5:5432",
                    "version": "16.4",
                    "secret-user": "secret://model-uuid/d0secret2",
                    "secret-tls": "secret://model-uuid/d0secret3",
                },
            ])
        );
        let data: Value = serde_json::from_str(&published["data"]).unwrap();
        assert_eq!(
            data,
            json!({
                "85b027df81b4186b": {
                    "resource": "shopdb", "request-id": "85b027df81b4186b",
                    "salt": "8gFgs4Dk7HzDqjNe", "extra-user-roles": "CREATEDB",
                    "external-node-connectivity": true,
                },
                "0b0708e796f4afbe": {"resource": "reports", "request-id": "0b0708e796f4afbe"},
            })
        );
        assert!(!published.values().any(|v| v.contains(PASSWORD)));
        // Stable: the same plan publishes the same bytes, so nothing is
        // written again.
        assert_eq!(app_bag(&plan, &uris(&plan)).unwrap().expose(), published);
    }

    #[test]
    fn stale_keys_are_deleted_and_refusals_take_everything_back() {
        let plan = plan_for(&bag(&[("database", "shopdb")]));
        let published = app_bag(&plan, &BTreeMap::new()).unwrap();
        let settings = settings_to_write(&published);
        let before_v1 = bag(&[
            ("version", "v1"),
            ("requests", "[]"),
            ("data", "{}"),
            ("secret-user", "secret:old"),
        ]);
        let changes = bag_changes(settings.expose(), &before_v1);
        assert_eq!(changes["requests"], "");
        assert_eq!(changes["data"], "");
        assert_eq!(changes["secret-user"], "");
        assert_eq!(changes["version"], "16.4");
        assert_eq!(changes["username"], "jujuclient_shop_7");
        let mut after = before_v1.clone();
        for (key, value) in &changes {
            if value.is_empty() {
                after.remove(key);
            } else {
                after.insert(key.clone(), value.clone());
            }
        }
        assert_eq!(&after, published.expose());
        assert!(bag_changes(settings.expose(), &after).is_empty());
        let retract = bag_changes(&retraction(), &after);
        assert_eq!(retract.len(), after.len());
        assert!(retract.values().all(String::is_empty));
        for key in published.expose().keys() {
            assert!(PUBLISHED_KEYS.contains(&key.as_str()), "{key}");
        }
    }
}
