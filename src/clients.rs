//! Serving the `db` and `db-admin` relations (the `pgsql` interface): the
//! shell around the pure planner in [`crate::relations`].
//!
//! For each client relation the charm reads the remote bags, plans the
//! relation, checks what it asks for against what belongs to other
//! consumers ([`crate::relations::tenancy::ownership`],
//! [`crate::relations::tenancy::extensions`]), creates its database objects,
//! publishes the connection data and grants access in `pg_hba.conf`. What it
//! concluded about each relation is kept in the unit's state directory
//! (`relations.json`, [`crate::state`]) so that a relation hook only re-reads its
//! own relation (and any relation not served yet) while `pg_hba.conf` is
//! still rendered from all of them; every other hook re-reads every
//! relation. Either way the result is the same: every live relation
//! converges on every hook.
//!
//! **Consumers are tenants; one relation at a time.** Whatever goes wrong
//! with one relation (hostile remote data, a request for what belongs to
//! someone else, an SQL error the consumer caused in its own database, a
//! lock it holds) is that relation's problem, named in a blocked status; the
//! hook goes on with the others and succeeds.
//!
//! * A **refused** relation gets nothing: no data published (what was
//!   published is taken back), no `pg_hba.conf` rule, nothing created or
//!   granted, and its user loses LOGIN and SUPERUSER and its sessions end,
//!   unless another served relation uses the same user.
//! * A relation that **fails** after it was served keeps what it had (never
//!   more: its addresses can only shrink) and is retried by the next hook,
//!   `update-status` included.
//! * A **removed** relation's user is revoked the same way, even while the
//!   unit is blocked for another reason ([`revoke_removed`]).
//!
//! **What was published** is read back from the bags Juju returns, never
//! remembered by the charm: a hook that failed after `relation-set` left
//! nothing committed, and its retry publishes again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::cluster::records::{self, Kind as Record};
use crate::cluster::{db, Cluster};
use crate::credentials::{Passwords, StoredPassword};
use crate::event::RelationKind;
use crate::juju::{self, HookContext, HookRelation, RelationData, RelationId};
use crate::options::ClientOptions;
use crate::outcome::Problem;
use crate::relations::access::cidr::Cidr;
use crate::relations::access::RelationAccess;
use crate::relations::names::relation_user;
use crate::relations::pgsql::plan::{
    bag_changes, plan_relation, retraction, Credentials, RelationPlan, ServerFacts, ServerState,
};
use crate::relations::sql::{quote_ident, quote_literal, Name, NameKind};
use crate::relations::tenancy::extensions::{
    plan_extensions, schemas_to_check, ExtensionFacts, SchemaFacts, DEFAULT_SCHEMA,
};
use crate::relations::tenancy::ownership::{
    decide_database, decide_role, DatabaseFacts, Owner, RoleAction, RoleFact,
};
use crate::relations::tenancy::revocation::{users_to_revoke, Standing};
use crate::relations::ClientEndpoint;
use crate::relations::RelationFacts;
use crate::state::relations::{self as results, Condition, Served, ServedMap};

/// The access rules of the relations served so far, for writing
/// `pg_hba.conf` before the server starts.
pub fn cached_access(cluster: &Cluster) -> Vec<RelationAccess> {
    results::load(&cluster.state())
        .iter()
        .filter(|(_, s)| s.has_access())
        .filter_map(|(id, s)| rebuild_access(id, s))
        .collect()
}

/// Whether a relation failed in the last hook and waits for another try
/// (which `update-status` then gives it). Reads one file; spawns nothing.
pub fn needs_retry(cluster: &Cluster) -> bool {
    results::load(&cluster.state())
        .values()
        .any(|s| s.condition == Condition::Failed)
}

/// The outcome for the unit: access for `pg_hba.conf`, and problems to show.
pub struct ClientsOutcome {
    pub access: Vec<RelationAccess>,
    pub problems: Vec<Problem>,
}

/// Marks (in the charm directory) that this unit is leaving, so the
/// `-broken` hooks of its removal do not revoke what the remaining units
/// still serve (LP #1979811).
fn departing_marker(context: &HookContext) -> Option<PathBuf> {
    context
        .charm_dir
        .as_ref()
        .map(|d| d.join(".pg-charm-departing"))
}

/// Whether this unit is leaving the application (it saw itself depart).
fn this_unit_is_leaving(context: &HookContext) -> bool {
    if let (Some(h), Some(marker)) = (
        context.relation_hook(RelationKind::Departed),
        departing_marker(context),
    ) {
        if h.departing.as_deref() == Some(context.unit.as_str()) {
            std::fs::write(&marker, "departing\n").ok();
        }
    }
    departing_marker(context).is_some_and(|m| m.exists())
}

/// The live client relations (without the one breaking in this hook).
fn live_relations(context: &HookContext) -> Result<Vec<RelationId>> {
    let mut live = Vec::new();
    for endpoint in ["db", "db-admin"] {
        live.extend(juju::relation_ids(endpoint)?);
    }
    if let Some(h) = context.relation_hook(RelationKind::Broken) {
        live.retain(|id| *id != h.id);
    }
    Ok(live)
}

/// Takes the relations that are no longer live out of `served`.
fn take_removed(served: &mut ServedMap, live: &[RelationId]) -> Vec<(String, Served)> {
    let live: BTreeSet<String> = live.iter().map(RelationId::to_string).collect();
    let gone: Vec<String> = served
        .keys()
        .filter(|id| !live.contains(*id))
        .cloned()
        .collect();
    gone.into_iter()
        .filter_map(|id| served.remove_entry(&id))
        .collect()
}

/// What serving needs besides the relation itself.
struct Serving<'a> {
    cluster: &'a Cluster,
    options: &'a ClientOptions,
    leader: bool,
    unit: String,
    /// Live relations by their cached user.
    live_users: BTreeMap<String, BTreeSet<String>>,
}

/// Serves every client relation of the running cluster.
pub fn serve(
    context: &HookContext,
    cluster: &Cluster,
    major: u32,
    options: &ClientOptions,
) -> Result<ClientsOutcome> {
    let hook = context.relation.as_ref();
    let leaving = this_unit_is_leaving(context);
    let live = live_relations(context)?;
    let mut served = results::load(&cluster.state());
    let removed = take_removed(&mut served, &live);

    let mut live_users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, s) in &served {
        live_users
            .entry(s.user.clone())
            .or_default()
            .insert(id.clone());
    }
    // Asked only when some relation needs it: most hooks of a unit without
    // client relations then call no tool here beyond relation-ids.
    let mut serving: Option<Serving> = None;
    let mut passwords: Option<Passwords> = None;
    for id in &live {
        let key = id.to_string();
        let is_hook_relation = hook.is_some_and(|h| h.id == *id);
        let settled = served.get(&key).is_some_and(|s| s.problem.is_none());
        // Relation hooks refresh their own relation and any not served yet;
        // other hooks refresh everything.
        if hook.is_some() && !is_hook_relation && settled {
            continue;
        }
        let previous = served.get(&key).cloned().unwrap_or_default();
        if serving.is_none() {
            serving = Some(Serving {
                cluster,
                options,
                leader: juju::is_leader()?,
                unit: context.unit.clone(),
                live_users: std::mem::take(&mut live_users),
            });
        }
        let serving = serving.as_ref().expect("just set");
        let passwords =
            passwords.get_or_insert_with(|| Passwords::new(serving.leader, context.has_secrets()));
        let outcome = serve_relation(
            serving,
            major,
            passwords,
            id,
            hook.filter(|_| is_hook_relation),
            &previous,
        );
        served.insert(key, outcome);
    }
    let mut problems: Vec<Problem> = revoke(cluster, &mut served, removed, leaving)
        .into_iter()
        .map(Problem::Blocked)
        .collect();
    results::save(&cluster.state(), &served)?;

    let mut access = Vec::new();
    for (id, s) in &served {
        if let Some(problem) = s.problem() {
            problems.push(problem);
        }
        if s.has_access() {
            match rebuild_access(id, s) {
                Some(a) => access.push(a),
                None => problems.push(Problem::Blocked(format!(
                    "{id}: could not rebuild its access rules"
                ))),
            }
        }
    }
    Ok(ClientsOutcome { access, problems })
}

/// For a converge that stopped before serving the relations (bad config,
/// storage in the way): the users of removed relations still lose their
/// access, if the server runs. Relations still live are left as they are.
pub fn revoke_removed(context: &HookContext, cluster: &Cluster) -> Result<()> {
    let leaving = this_unit_is_leaving(context);
    let live = live_relations(context)?;
    let mut served = results::load(&cluster.state());
    let removed = take_removed(&mut served, &live);
    if removed.is_empty() {
        return Ok(());
    }
    for problem in revoke(cluster, &mut served, removed, leaving) {
        log::warn!("{problem}");
    }
    results::save(&cluster.state(), &served)
}

/// Revokes the users that neither a serving relation nor this unit's
/// departure keeps (see [`users_to_revoke`]). A removed relation whose user
/// could not be revoked stays in `served`, without access, so the next hook
/// tries again; the problems say so.
fn revoke(
    cluster: &Cluster,
    served: &mut ServedMap,
    removed: Vec<(String, Served)>,
    leaving: bool,
) -> Vec<String> {
    if leaving {
        return Vec::new();
    }
    let standings = served
        .values()
        .map(|s| (s.user.as_str(), s.standing()))
        .chain(
            removed
                .iter()
                .map(|(_, s)| (s.user.as_str(), Standing::Removed)),
        );
    let mut problems = Vec::new();
    for user in users_to_revoke(standings) {
        let Err(error) = revoke_login(cluster, &user) else {
            continue;
        };
        let problem = format!(
            "could not revoke the login of {user} yet ({}); retrying",
            one_line(&error)
        );
        log::warn!("{problem}");
        let mut kept = false;
        for (id, old) in removed.iter().filter(|(_, s)| s.user == user) {
            kept = true;
            served.insert(
                id.clone(),
                Served {
                    remote_app: old.remote_app.clone(),
                    endpoint: old.endpoint.clone(),
                    user: user.clone(),
                    problem: Some(format!("{id} (removed): {problem}")),
                    condition: Condition::Failed,
                    ..Served::default()
                },
            );
        }
        if !kept {
            problems.push(problem);
        }
    }
    problems
}

fn rebuild_access(id: &str, s: &Served) -> Option<RelationAccess> {
    let relation: RelationId = id.parse().ok()?;
    let database = Name::parse(NameKind::Database, &s.database).ok()?;
    Some(RelationAccess {
        scope: ClientEndpoint::named(relation.endpoint())?.hba_scope(&database),
        relation,
        remote_app: s.remote_app.clone(),
        user: Name::parse(NameKind::User, &s.user).ok()?,
        cidrs: s
            .cidrs
            .iter()
            .filter_map(|c| c.parse::<Cidr>().ok())
            .collect(),
    })
}

/// An error as one bounded line, for a status message.
fn one_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}").replace(['\n', '\r'], " ");
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// What serving one relation learnt before anything failed.
#[derive(Default)]
struct Seen {
    remote_app: String,
    user: String,
    /// The addresses its plan grants.
    cidrs: Option<BTreeSet<Cidr>>,
}

/// The access a relation keeps while serving it fails: what it had, on
/// the addresses it still claims (never more than before).
fn failing_access(previous: &Served, planned: Option<&BTreeSet<Cidr>>) -> (String, Vec<String>) {
    if !previous.has_access() {
        return (String::new(), Vec::new());
    }
    let cidrs = previous
        .cidrs
        .iter()
        .filter(|c| match (planned, c.parse::<Cidr>()) {
            (None, _) => true,
            (Some(planned), Ok(cidr)) => planned.contains(&cidr),
            (Some(_), Err(_)) => false,
        })
        .cloned()
        .collect();
    (previous.database.clone(), cidrs)
}

/// Serves one relation; an error becomes its problem, never the hook's.
fn serve_relation(
    context: &Serving,
    major: u32,
    passwords: &mut Passwords,
    id: &RelationId,
    hook: Option<&HookRelation>,
    previous: &Served,
) -> Served {
    let mut seen = Seen::default();
    match try_serve(context, major, passwords, id, hook, &mut seen) {
        Ok(served) => served,
        Err(error) => {
            let problem = format!("{id}: {}; retrying on the next hook", one_line(&error));
            log::warn!("{problem}");
            let (database, cidrs) = failing_access(previous, seen.cidrs.as_ref());
            let or_previous = |seen: String, previous: &String| {
                if seen.is_empty() {
                    previous.clone()
                } else {
                    seen
                }
            };
            Served {
                remote_app: or_previous(seen.remote_app, &previous.remote_app),
                endpoint: id.endpoint().to_string(),
                user: or_previous(seen.user, &previous.user),
                database,
                cidrs,
                problem: Some(problem),
                condition: Condition::Failed,
            }
        }
    }
}

/// Reads, plans, checks, creates, publishes: one relation.
fn try_serve(
    context: &Serving,
    major: u32,
    passwords: &mut Passwords,
    id: &RelationId,
    hook: Option<&HookRelation>,
    seen: &mut Seen,
) -> Result<Served> {
    let remote_app = match hook {
        Some(h) if !h.remote_app.is_empty() => h.remote_app.clone(),
        _ => juju::relation_remote_app(id)?.unwrap_or_default(),
    };
    let endpoint = ClientEndpoint::named(id.endpoint()).context("not a client endpoint")?;
    let outcome = |user: &str, condition: Condition, problem: String| Served {
        remote_app: remote_app.clone(),
        endpoint: id.endpoint().to_string(),
        user: user.to_string(),
        problem: Some(problem),
        condition,
        ..Served::default()
    };
    if remote_app.is_empty() {
        let problem = format!("{id}: waiting for the remote application");
        return Ok(outcome("", Condition::Waiting, problem));
    }
    seen.remote_app = remote_app.clone();
    let user = relation_user(endpoint, &remote_app);
    seen.user = user.to_string();
    let refuse = |problem: String| -> Result<Served> {
        log::warn!("refusing {problem}");
        // Fail closed: take back anything published before, so the client
        // does not keep connecting with data the charm no longer stands by.
        let problem = match publish(id, &retraction(), context) {
            Ok(()) => problem,
            Err(e) => format!("{problem} (taking its data back failed: {})", one_line(&e)),
        };
        Ok(outcome(user.as_str(), Condition::Refused, problem))
    };

    let mut remote_units = BTreeMap::new();
    for unit in juju::relation_list(id)? {
        remote_units.insert(unit.clone(), juju::relation_get(id, &unit)?);
    }
    let remote_app_data = juju::relation_get_app(id, &remote_app).unwrap_or_default();
    let live_same_user = context
        .live_users
        .get(user.as_str())
        .cloned()
        .unwrap_or_default();
    let Some(stored) = passwords.for_relation(&user, id, &live_same_user)? else {
        let problem = format!("{id}: waiting for the leader to issue its credentials");
        return Ok(outcome(user.as_str(), Condition::Waiting, problem));
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
        port: context.cluster.port,
        major_version: major,
        state: ServerState::Standalone,
    };
    let credentials = Credentials {
        user: user.clone(),
        password: stored.password.clone(),
    };
    let plan = match plan_relation(
        &facts,
        &server,
        &credentials,
        &context.options.address_limits,
    ) {
        Ok(plan) => plan,
        Err(e) => return refuse(e.to_string()),
    };
    seen.cidrs = Some(plan.access.cidrs.clone());
    let owner = Owner {
        remote_app: remote_app.clone(),
        endpoint,
    };
    if let Some(problem) = ensure_objects(context, id, &plan, &owner, &stored)? {
        return refuse(problem);
    }
    publish(id, plan.settings_to_write().expose(), context)?;
    Ok(Served {
        remote_app,
        endpoint: id.endpoint().to_string(),
        user: user.to_string(),
        database: plan.objects.database.to_string(),
        cidrs: plan.access.cidrs.iter().map(|c| c.to_string()).collect(),
        problem: None,
        condition: Condition::Served,
    })
}

/// Makes this unit's bag (and, on the leader, the application's bag) hold
/// `desired`, writing only what differs from what Juju returns.
fn publish(id: &RelationId, desired: &RelationData, context: &Serving) -> Result<()> {
    let current = juju::relation_get(id, &context.unit)?;
    let changes = bag_changes(desired, &current);
    if !changes.is_empty() {
        juju::relation_set(id, &changes).with_context(|| format!("publishing to {id}"))?;
    }
    if context.leader {
        let app = context.unit.split('/').next().unwrap_or_default();
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

/// What the server holds that bears on one relation's request.
struct Holdings {
    database: DatabaseFacts,
    roles: Vec<(Name, Vec<RoleFact>)>,
    extensions: BTreeMap<String, ExtensionFacts>,
}

/// Checks what the relation asks for against what the server holds, then
/// creates it; `Some(problem)` refuses the relation, and then nothing was
/// created or granted.
fn ensure_objects(
    context: &Serving,
    id: &RelationId,
    plan: &RelationPlan,
    owner: &Owner,
    stored: &StoredPassword,
) -> Result<Option<String>> {
    let cluster = context.cluster;
    let options = context.options;
    let objects = &plan.objects;
    let database = objects.database.as_str();

    // 1. What the server holds, before anything changes.
    let mut holdings = db::with_client(cluster, "postgres", async |client| {
        records::ensure(client).await?;
        let mut roles = Vec::new();
        for role in &objects.roles {
            roles.push((role.clone(), role_closure(client, role).await?));
        }
        Ok(Holdings {
            database: database_facts(client, database).await?,
            roles,
            extensions: if objects.extensions.is_empty() {
                BTreeMap::new()
            } else {
                available_extensions(client).await?
            },
        })
    })
    .context("reading what the server holds for it")?;
    let schemas = if holdings.database.exists && !objects.extensions.is_empty() {
        let wanted = schemas_to_check(&objects.extensions, &holdings.extensions);
        db::with_client(cluster, database, async |client| {
            for row in client
                .query("SELECT extname::text FROM pg_extension", &[])
                .await?
            {
                if let Some(facts) = holdings.extensions.get_mut(row.get::<_, &str>(0)) {
                    facts.installed = true;
                }
            }
            let mut schemas = BTreeMap::new();
            for schema in wanted {
                let facts = schema_facts(client, &schema).await?;
                schemas.insert(schema, facts);
            }
            Ok(schemas)
        })
        .with_context(|| format!("reading the schemas of database {database}"))?
    } else {
        BTreeMap::new()
    };

    // 2. Whether it may have it.
    let refusal = |problem: String| Ok(Some(format!("{id}: {problem}")));
    let database_action = match decide_database(
        owner,
        &objects.user,
        &objects.database,
        &holdings.database,
        &options.shared_databases,
    ) {
        Ok(action) => action,
        Err(problem) => return refusal(problem),
    };
    let mut role_actions = Vec::new();
    for (role, closure) in &holdings.roles {
        match decide_role(owner, &objects.user, role, closure) {
            Ok(action) => role_actions.push((role, action)),
            Err(problem) => return refusal(problem),
        }
    }
    let steps = match plan_extensions(
        &objects.extensions,
        &holdings.extensions,
        &options.allowed_extensions,
        objects.superuser,
        &schemas,
    ) {
        Ok(steps) => steps,
        Err(problem) => return refusal(problem),
    };

    // 3. Create and grant.
    let user = ident(&objects.user)?;
    let database_ident = ident(&objects.database)?;
    let relation = id.to_string();
    db::with_client(cluster, "postgres", async |client| {
        ensure_user(client, &objects.user, objects.superuser, stored).await?;
        if database_action.record {
            records::record(client, Record::Database, database, owner, &relation).await?;
        }
        if database_action.create {
            let owner_role = if objects.superuser { "postgres" } else { &user };
            client
                .batch_execute(&format!(
                    "CREATE DATABASE {database_ident} OWNER {owner_role}"
                ))
                .await?;
        }
        for (role, action) in &role_actions {
            let role_ident = ident(role)?;
            if *action == RoleAction::Create {
                // Recorded in the same transaction: never a role of no one.
                client.batch_execute("BEGIN").await?;
                records::record(client, Record::Role, role.as_str(), owner, &relation).await?;
                client
                    .batch_execute(&format!("CREATE ROLE {role_ident} NOLOGIN; COMMIT"))
                    .await?;
            }
            client
                .batch_execute(&format!("GRANT {role_ident} TO {user}"))
                .await?;
        }
        client
            .batch_execute(&format!(
                "REVOKE ALL ON DATABASE {database_ident} FROM PUBLIC; \
                 GRANT ALL ON DATABASE {database_ident} TO {user}"
            ))
            .await?;
        Ok(())
    })
    .context("creating its database objects")?;

    if objects.superuser && steps.is_empty() {
        return Ok(None);
    }
    db::with_client(cluster, database, async |client| {
        if !objects.superuser && schema_exists(client, "public").await? {
            // Its user may create in its database's public schema (which
            // the consumer may also have dropped: its choice).
            client
                .batch_execute(&format!("GRANT ALL ON SCHEMA public TO {user}"))
                .await?;
        }
        let mut in_default_schema = false;
        for step in &steps {
            let mut sql = format!("CREATE EXTENSION IF NOT EXISTS {}", ident(&step.name)?);
            if let Some(schema) = &step.schema {
                if step.create_schema {
                    client
                        .batch_execute(&format!(
                            "CREATE SCHEMA IF NOT EXISTS {0}; GRANT USAGE ON SCHEMA {0} TO PUBLIC",
                            ident(schema)?
                        ))
                        .await?;
                }
                // Checked again right before the script runs: a consumer
                // may have created the schema since it was first looked at.
                let facts = schema_facts(client, schema.as_str()).await?;
                anyhow::ensure!(
                    facts.only_superusers_write,
                    "schema {schema} of database {database} may be written by roles other \
                     than superusers; not creating extension {} in it",
                    step.name
                );
                in_default_schema |= schema.as_str() == DEFAULT_SCHEMA;
                sql.push_str(&format!(" WITH SCHEMA {}", ident(schema)?));
            }
            sql.push_str(" CASCADE");
            client.batch_execute(&sql).await?;
        }
        if in_default_schema {
            put_default_schema_on_search_path(client, &objects.user, database).await?;
        }
        Ok(())
    })
    .with_context(|| format!("preparing database {database}"))?;
    Ok(None)
}

/// The relation's login role, with its password's verifier (the password
/// itself never goes into SQL).
async fn ensure_user(
    client: &Client,
    user_name: &Name,
    superuser: bool,
    stored: &StoredPassword,
) -> Result<()> {
    let user = ident(user_name)?;
    let verifier = quote_literal(&stored.verifier)?;
    let superuser = if superuser {
        "SUPERUSER"
    } else {
        "NOSUPERUSER"
    };
    let existing = client
        .query_opt(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&user_name.as_str()],
        )
        .await?;
    match existing {
        None => {
            client
                .batch_execute(&format!(
                    "CREATE ROLE {user} WITH LOGIN {superuser} NOCREATEDB NOCREATEROLE \
                     NOREPLICATION PASSWORD {verifier}"
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
    Ok(())
}

async fn database_facts(client: &Client, database: &str) -> Result<DatabaseFacts> {
    let owner_role: Option<String> = client
        .query_opt(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await?
        .map(|row| row.get(0));
    Ok(DatabaseFacts {
        exists: owner_role.is_some(),
        owner_role,
        recorded: records::owner(client, Record::Database, database).await?,
    })
}

/// `role` and every role it is a member of, directly or not, with their
/// powers and records (empty if `role` does not exist).
async fn role_closure(client: &Client, role: &Name) -> Result<Vec<RoleFact>> {
    let rows = client
        .query(
            "WITH RECURSIVE up(oid, depth) AS ( \
                 SELECT oid, 0 FROM pg_roles WHERE rolname = $1 \
               UNION \
                 SELECT m.roleid, up.depth + 1 FROM pg_auth_members m \
                 JOIN up ON m.member = up.oid WHERE up.depth < 64) \
             SELECT r.rolname::text, min(up.depth), r.oid < 16384, \
                    r.rolcanlogin, r.rolsuper, r.rolreplication, r.rolbypassrls, \
                    r.rolcreaterole, r.rolcreatedb, o.remote_app, o.endpoint \
             FROM up JOIN pg_roles r ON r.oid = up.oid \
             LEFT JOIN juju_charm.owners o ON o.kind = 'role' AND o.name = r.rolname \
             GROUP BY r.rolname, r.oid, r.rolcanlogin, r.rolsuper, r.rolreplication, \
                      r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, o.remote_app, o.endpoint",
            &[&role.as_str()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let powers = [
                "LOGIN",
                "SUPERUSER",
                "REPLICATION",
                "BYPASSRLS",
                "CREATEROLE",
                "CREATEDB",
            ]
            .into_iter()
            .enumerate()
            .filter(|(i, _)| row.get::<_, bool>(3 + i))
            .map(|(_, power)| power)
            .collect();
            let recorded = match (
                row.get::<_, Option<String>>(9),
                row.get::<_, Option<&str>>(10),
            ) {
                (Some(remote_app), Some(endpoint)) => {
                    ClientEndpoint::named(endpoint).map(|endpoint| Owner {
                        remote_app,
                        endpoint,
                    })
                }
                _ => None,
            };
            RoleFact {
                name: row.get(0),
                depth: row.get::<_, i32>(1).unsigned_abs(),
                predefined: row.get(2),
                powers,
                recorded,
            }
        })
        .collect())
}

/// Every extension the server could install, at its default version.
async fn available_extensions(client: &Client) -> Result<BTreeMap<String, ExtensionFacts>> {
    let rows = client
        .query(
            "SELECT a.name::text, coalesce(v.trusted, false), v.schema::text, \
                    coalesce(v.requires::text[], '{}') \
             FROM pg_available_extensions a \
             LEFT JOIN pg_available_extension_versions v \
                    ON v.name = a.name AND v.version = a.default_version",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let name: String = row.get(0);
            let facts = ExtensionFacts {
                name: name.clone(),
                trusted: row.get(1),
                fixed_schema: row.get(2),
                requires: row.get(3),
                installed: false,
            };
            (name, facts)
        })
        .collect())
}

async fn schema_exists(client: &Client, schema: &str) -> Result<bool> {
    Ok(client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await?
        .is_some())
}

/// Whether `schema` exists, and whether only superusers may write it.
async fn schema_facts(client: &Client, schema: &str) -> Result<SchemaFacts> {
    let row = client
        .query_opt(
            "SELECT owner.rolsuper AND NOT EXISTS ( \
                 SELECT 1 FROM pg_roles r \
                 WHERE NOT r.rolsuper AND has_schema_privilege(r.oid, n.oid, 'CREATE')) \
             FROM pg_namespace n JOIN pg_roles owner ON owner.oid = n.nspowner \
             WHERE n.nspname = $1",
            &[&schema],
        )
        .await?;
    Ok(SchemaFacts {
        exists: row.is_some(),
        only_superusers_write: row.is_some_and(|row| row.get(0)),
    })
}

/// Puts [`DEFAULT_SCHEMA`] on `user`'s `search_path` in `database`, unless
/// the user has set a `search_path` of its own there.
async fn put_default_schema_on_search_path(
    client: &Client,
    user: &Name,
    database: &str,
) -> Result<()> {
    let has_own = client
        .query_opt(
            "SELECT 1 FROM pg_db_role_setting s \
             JOIN pg_roles r ON r.oid = s.setrole \
             JOIN pg_database d ON d.oid = s.setdatabase \
             WHERE r.rolname = $1 AND d.datname = $2 \
               AND EXISTS (SELECT 1 FROM unnest(s.setconfig) c WHERE c LIKE 'search\\_path=%')",
            &[&user.as_str(), &database],
        )
        .await?
        .is_some();
    if !has_own {
        client
            .batch_execute(&format!(
                "ALTER ROLE {} IN DATABASE {} SET search_path = \"$user\", public, {}",
                ident(user)?,
                quote_ident(database)?,
                quote_ident(DEFAULT_SCHEMA)?
            ))
            .await?;
    }
    Ok(())
}

/// Takes a relation user's access away: its sessions end, it can no longer
/// log in, and it is no superuser. The sessions go first as well as last,
/// because one of them may hold the lock `ALTER ROLE` needs (a consumer can
/// change its own password in a transaction it keeps open). Databases and
/// data stay.
fn revoke_login(cluster: &Cluster, user: &str) -> Result<()> {
    let name = quote_ident(user)?;
    let terminate = if cluster.major >= 14 {
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity \
         WHERE usename = $1 AND pid <> pg_backend_pid()"
    } else {
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE usename = $1 AND pid <> pg_backend_pid()"
    };
    db::with_client(cluster, "postgres", async |client| {
        let state = client
            .query_opt(
                "SELECT rolcanlogin OR rolsuper, \
                        EXISTS (SELECT 1 FROM pg_stat_activity WHERE usename = $1) \
                 FROM pg_roles WHERE rolname = $1",
                &[&user],
            )
            .await?;
        let Some(state) = state else {
            return Ok(());
        };
        let (powers, sessions): (bool, bool) = (state.get(0), state.get(1));
        if !powers && !sessions {
            return Ok(());
        }
        client.query_one(terminate, &[&user]).await?;
        client
            .batch_execute(&format!("ALTER ROLE {name} NOLOGIN NOSUPERUSER"))
            .await?;
        client.query_one(terminate, &[&user]).await?;
        log::info!("revoked login of {user} and ended its sessions");
        Ok(())
    })
    .with_context(|| format!("revoking the login of {user}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::relations::example as served;

    #[test]
    fn a_failing_relation_keeps_at_most_what_it_had() {
        let had = served("app", &["10.0.0.1/32", "10.0.0.2/32"], Condition::Served);
        let planned: BTreeSet<Cidr> = ["10.0.0.2/32", "10.0.0.3/32"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(
            failing_access(&had, Some(&planned)),
            ("app".to_string(), vec!["10.0.0.2/32".to_string()])
        );
        assert_eq!(
            failing_access(&had, None),
            ("app".to_string(), had.cidrs.clone())
        );
        let never = served("", &[], Condition::Waiting);
        assert_eq!(
            failing_access(&never, Some(&planned)),
            (String::new(), vec![])
        );
    }
}
