//! Serving the `db` and `db-admin` relations (the `pgsql` interface): the
//! shell around the pure planner in [`crate::relations`].
//!
//! For each client relation the charm reads the remote bags, plans the
//! relation, creates its database objects, publishes the connection data
//! and grants access in `pg_hba.conf`. What it concluded about each relation
//! is kept next to the cluster's configuration (`juju-pg-charm.relations.json`)
//! so that a relation hook only re-reads its own relation (and any relation
//! not served yet) while `pg_hba.conf` is still rendered from all of them;
//! every other hook re-reads every relation. Either way the result is the
//! same: every live relation converges on every hook.
//!
//! A relation whose remote data is hostile or unusable is refused on its own
//! (no data published, no `pg_hba.conf` rule) and named in a blocked status;
//! the others keep working.
//!
//! **What was published** is read back from the bags Juju returns, never
//! remembered by the charm: a hook that failed after `relation-set` left
//! nothing committed, and its retry publishes again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cluster::{db, Cluster};
use crate::credentials::{self, StoredPassword};
use crate::juju::{self, RelationData, RelationId};
use crate::options::ClientOptions;
use crate::relations::cidr::Cidr;
use crate::relations::hba::RelationAccess;
use crate::relations::names::relation_user;
use crate::relations::publish::{
    bag_changes, plan_relation, retraction, unavailable_extensions_message, Credentials,
    DesiredObjects, RelationFacts, ServerFacts, ServerState,
};
use crate::relations::sql::{quote_ident, quote_literal, Name, NameKind};
use crate::relations::Endpoint;

/// What the charm concluded about one relation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Served {
    remote_app: String,
    endpoint: String,
    database: String,
    user: String,
    cidrs: Vec<String>,
    /// Why the relation is refused or waiting; `None` when served.
    problem: Option<String>,
}

type ServedMap = BTreeMap<String, Served>;

fn cache_path(cluster: &Cluster) -> PathBuf {
    cluster.conf_dir().join("juju-pg-charm.relations.json")
}

fn load(cluster: &Cluster) -> ServedMap {
    std::fs::read(cache_path(cluster))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn save(cluster: &Cluster, served: &ServedMap) -> Result<()> {
    let path = cache_path(cluster);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(served)?)?;
    std::fs::rename(&tmp, &path).context("saving the relation state")
}

/// The access rules of the relations served so far, for writing
/// `pg_hba.conf` before the server starts.
pub fn cached_access(cluster: &Cluster) -> Vec<RelationAccess> {
    load(cluster)
        .iter()
        .filter(|(_, s)| s.problem.is_none())
        .filter_map(|(id, s)| rebuild_access(id, s))
        .collect()
}

/// The outcome for the unit: access for `pg_hba.conf`, and problems to show.
pub struct ClientsOutcome {
    pub access: Vec<RelationAccess>,
    pub problems: Vec<String>,
}

/// The relation hook running now, if any.
struct HookRelation {
    id: RelationId,
    kind: String,
    remote_app: String,
    departing: Option<String>,
}

fn hook_relation() -> Result<Option<HookRelation>> {
    let Some(id) = RelationId::from_env()? else {
        return Ok(None);
    };
    let hook = std::env::var("JUJU_HOOK_NAME").unwrap_or_default();
    let kind = hook.rsplit('-').next().unwrap_or_default().to_string();
    Ok(Some(HookRelation {
        id,
        kind,
        remote_app: std::env::var("JUJU_REMOTE_APP").unwrap_or_default(),
        departing: std::env::var("JUJU_DEPARTING_UNIT")
            .ok()
            .filter(|u| !u.is_empty()),
    }))
}

/// Marks (in the charm directory) that this unit is leaving, so the
/// `-broken` hooks of its removal do not revoke what the remaining units
/// still serve (LP #1979811).
fn departing_marker() -> Option<PathBuf> {
    std::env::var_os("JUJU_CHARM_DIR").map(|d| PathBuf::from(d).join(".pg-charm-departing"))
}

/// Serves every client relation of the running cluster.
pub fn serve(cluster: &Cluster, major: u32, options: &ClientOptions) -> Result<ClientsOutcome> {
    let hook = hook_relation()?;
    let unit = std::env::var("JUJU_UNIT_NAME").unwrap_or_default();
    if let (Some(h), Some(marker)) = (&hook, departing_marker()) {
        if h.kind == "departed" && h.departing.as_deref() == Some(unit.as_str()) {
            std::fs::write(&marker, "departing\n").ok();
        }
    }
    let leaving = departing_marker().is_some_and(|m| m.exists());

    let mut live = Vec::new();
    for endpoint in ["db", "db-admin"] {
        live.extend(juju::relation_ids(endpoint)?);
    }
    if let Some(h) = &hook {
        if h.kind == "broken" {
            live.retain(|id| *id != h.id);
        }
    }
    let mut served = load(cluster);
    let live_keys: BTreeSet<String> = live.iter().map(|id| id.to_string()).collect();
    let gone: Vec<(String, Served)> = served
        .iter()
        .filter(|(id, _)| !live_keys.contains(*id))
        .map(|(id, s)| (id.clone(), s.clone()))
        .collect();
    for (id, old) in gone {
        served.remove(&id);
        let still_used = served
            .values()
            .any(|s| s.user == old.user && s.problem.is_none());
        if !leaving && !still_used && !old.user.is_empty() {
            revoke_login(cluster, &old.user)
                .with_context(|| format!("revoking login of {id}'s user"))?;
        }
    }

    // Asked only when some relation needs it: most hooks of a unit without
    // client relations then call no tool here beyond relation-ids.
    let mut leader = None;
    for id in &live {
        let key = id.to_string();
        let is_hook_relation = hook.as_ref().is_some_and(|h| h.id == *id);
        let settled = served.get(&key).is_some_and(|s| s.problem.is_none());
        // Relation hooks refresh their own relation and any not served yet;
        // other hooks refresh everything.
        if hook.is_some() && !is_hook_relation && settled {
            continue;
        }
        let leader = match leader {
            Some(known) => known,
            None => *leader.insert(juju::is_leader()?),
        };
        let outcome = serve_relation(
            cluster,
            major,
            id,
            hook.as_ref().filter(|_| is_hook_relation),
            leader,
            options,
        );
        served.insert(key, outcome?);
    }
    save(cluster, &served)?;

    let mut access = Vec::new();
    let mut problems = Vec::new();
    for (id, s) in &served {
        match &s.problem {
            Some(problem) => problems.push(problem.clone()),
            None => match rebuild_access(id, s) {
                Some(a) => access.push(a),
                None => problems.push(format!("{id}: could not rebuild its access rules")),
            },
        }
    }
    Ok(ClientsOutcome { access, problems })
}

fn rebuild_access(id: &str, s: &Served) -> Option<RelationAccess> {
    let relation: RelationId = id.parse().ok()?;
    Some(RelationAccess {
        endpoint: Endpoint::from_name(relation.endpoint())?,
        relation,
        remote_app: s.remote_app.clone(),
        database: Name::parse(NameKind::Database, &s.database).ok()?,
        user: Name::parse(NameKind::User, &s.user).ok()?,
        cidrs: s
            .cidrs
            .iter()
            .filter_map(|c| c.parse::<Cidr>().ok())
            .collect(),
    })
}

/// Reads, plans, creates, publishes: one relation.
fn serve_relation(
    cluster: &Cluster,
    major: u32,
    id: &RelationId,
    hook: Option<&HookRelation>,
    leader: bool,
    options: &ClientOptions,
) -> Result<Served> {
    let remote_app = match hook {
        Some(h) if !h.remote_app.is_empty() => h.remote_app.clone(),
        _ => juju::relation_remote_app(id)?.unwrap_or_default(),
    };
    let endpoint = Endpoint::from_name(id.endpoint()).context("not a client endpoint")?;
    let refused = |problem: String| Served {
        remote_app: remote_app.clone(),
        endpoint: id.endpoint().to_string(),
        problem: Some(problem),
        ..Default::default()
    };
    if remote_app.is_empty() {
        return Ok(refused(format!("{id}: waiting for the remote application")));
    }
    let mut remote_units = BTreeMap::new();
    for unit in juju::relation_list(id)? {
        remote_units.insert(unit.clone(), juju::relation_get(id, &unit)?);
    }
    let remote_app_data = juju::relation_get_app(id, &remote_app).unwrap_or_default();
    let user = relation_user(endpoint, &remote_app);
    let Some(stored) = credentials::password_for(&user, leader)? else {
        return Ok(refused(format!(
            "{id}: waiting for the leader to create its credentials"
        )));
    };
    let host = juju::network_get_ingress_address(id.endpoint(), Some(id))?;
    let facts = RelationFacts {
        relation: id.clone(),
        remote_app: remote_app.clone(),
        remote_app_data,
        remote_units,
        departing_unit: hook.and_then(|h| h.departing.clone()),
    };
    let server = ServerFacts {
        host: host.clone(),
        primary_host: host,
        standby_hosts: Vec::new(),
        port: cluster.port,
        major_version: major,
        state: ServerState::Standalone,
    };
    let credentials = Credentials {
        user: user.clone(),
        password: stored.password.clone(),
    };
    let problem = match plan_relation(&facts, &server, &credentials, &options.address_limits) {
        Err(e) => Some(e.to_string()),
        Ok(plan) => match ensure_objects(cluster, id, &plan.objects, &stored)? {
            Some(problem) => Some(problem),
            None => {
                publish(id, plan.settings_to_write().expose(), leader)?;
                return Ok(Served {
                    remote_app,
                    endpoint: id.endpoint().to_string(),
                    database: plan.access.database.to_string(),
                    user: plan.access.user.to_string(),
                    cidrs: plan.access.cidrs.iter().map(|c| c.to_string()).collect(),
                    problem: None,
                });
            }
        },
    };
    let problem = problem.unwrap_or_default();
    log::warn!("refusing {problem}");
    // Fail closed: take back anything published before, so the client
    // does not keep connecting with data the charm no longer stands by.
    publish(id, &retraction(), leader)?;
    Ok(refused(problem))
}

/// Makes this unit's bag (and, on the leader, the application's bag) hold
/// `desired`, writing only what differs from what Juju returns.
fn publish(id: &RelationId, desired: &RelationData, leader: bool) -> Result<()> {
    let unit = std::env::var("JUJU_UNIT_NAME").unwrap_or_default();
    let current = juju::relation_get(id, &unit)?;
    let changes = bag_changes(desired, &current);
    if !changes.is_empty() {
        juju::relation_set(id, &changes).with_context(|| format!("publishing to {id}"))?;
    }
    if leader {
        let app = unit.split('/').next().unwrap_or_default();
        let current = juju::relation_get_app(id, app)?;
        let changes = bag_changes(desired, &current);
        if !changes.is_empty() {
            juju::relation_set_app(id, &changes)
                .with_context(|| format!("publishing to {id}'s application bag"))?;
        }
    }
    Ok(())
}

fn ident(name: &Name) -> Result<String> {
    Ok(quote_ident(name.as_str())?)
}

/// Creates what the relation needs; `Some(problem)` refuses the relation.
fn ensure_objects(
    cluster: &Cluster,
    id: &RelationId,
    objects: &DesiredObjects,
    stored: &StoredPassword,
) -> Result<Option<String>> {
    let user = ident(&objects.user)?;
    let database = ident(&objects.database)?;
    let verifier = quote_literal(&stored.verifier)?;
    let superuser = if objects.superuser {
        "SUPERUSER"
    } else {
        "NOSUPERUSER"
    };
    let problem = db::with_client(cluster, "postgres", async |client| {
        let available: BTreeSet<String> = client
            .query("SELECT name FROM pg_available_extensions", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let missing = objects.unavailable_extensions(&available);
        if !missing.is_empty() {
            return Ok(Some(unavailable_extensions_message(id, &missing)));
        }
        let existing = client
            .query_opt(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                &[&objects.user.as_str()],
            )
            .await?;
        match existing {
            None => {
                client
                    .batch_execute(&format!(
                        "CREATE ROLE {user} WITH LOGIN {superuser} NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {verifier}"
                    ))
                    .await?
            }
            Some(row) => {
                let current: Option<String> = row.get(0);
                let mut sql = format!("ALTER ROLE {user} WITH LOGIN {superuser}");
                if current.as_deref() != Some(stored.verifier.as_str()) {
                    sql.push_str(&format!(" PASSWORD {verifier}"));
                }
                client.batch_execute(&sql).await?
            }
        }
        for role in &objects.roles {
            let attributes = client
                .query_opt(
                    "SELECT rolcanlogin OR rolsuper OR rolreplication OR rolbypassrls OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = $1",
                    &[&role.as_str()],
                )
                .await?;
            match attributes {
                None => client.batch_execute(&format!("CREATE ROLE {} NOLOGIN", ident(role)?)).await?,
                Some(row) if row.get::<_, bool>(0) => {
                    return Ok(Some(format!(
                        "{id}: requested role {role} exists with login or administrative powers; the charm will not grant it"
                    )))
                }
                Some(_) => {}
            }
            client.batch_execute(&format!("GRANT {} TO {user}", ident(role)?)).await?;
        }
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&objects.database.as_str()])
            .await?
            .is_some();
        if !exists {
            let owner = if objects.superuser { "postgres".to_string() } else { user.clone() };
            client.batch_execute(&format!("CREATE DATABASE {database} OWNER {owner}")).await?;
        }
        client
            .batch_execute(&format!(
                "REVOKE ALL ON DATABASE {database} FROM PUBLIC; GRANT ALL ON DATABASE {database} TO {user}"
            ))
            .await?;
        Ok(None)
    })
    .with_context(|| format!("creating the database objects of {id}"))?;
    if problem.is_some() {
        return Ok(problem);
    }
    if !objects.extensions.is_empty() || !objects.superuser {
        db::with_client(cluster, objects.database.as_str(), async |client| {
            if !objects.superuser {
                // The relation's user may create in its database's public schema.
                client
                    .batch_execute(&format!("GRANT ALL ON SCHEMA public TO {user}"))
                    .await?;
            }
            for extension in &objects.extensions {
                let mut sql = String::new();
                if let Some(schema) = &extension.schema {
                    sql.push_str(&format!("CREATE SCHEMA IF NOT EXISTS {}; ", ident(schema)?));
                }
                sql.push_str(&format!(
                    "CREATE EXTENSION IF NOT EXISTS {}",
                    ident(&extension.name)?
                ));
                if let Some(schema) = &extension.schema {
                    sql.push_str(&format!(" WITH SCHEMA {}", ident(schema)?));
                }
                client.batch_execute(&sql).await?;
            }
            Ok(())
        })
        .with_context(|| format!("creating the extensions of {id}"))?;
    }
    Ok(None)
}

/// `-broken`: the relation's user can no longer log in, and its sessions
/// end. The database and its data stay.
fn revoke_login(cluster: &Cluster, user: &str) -> Result<()> {
    let name = quote_ident(user)?;
    db::with_client(cluster, "postgres", async |client| {
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
            .await?
            .is_some();
        if exists {
            client
                .batch_execute(&format!("ALTER ROLE {name} NOLOGIN"))
                .await?;
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                    &[&user],
                )
                .await?;
            log::info!("revoked login of {user}");
        }
        Ok(())
    })
}
