//! The SQL side of serving a relation: what the server holds that bears on
//! a request (read before anything changes), whether the relation may have
//! it (the pure decisions of [`crate::relations::tenancy`]), creating and
//! granting it, and taking a user's access back.
//!
//! [`Server`] is the seam: the charm uses [`ClusterServer`], unit tests of
//! [`crate::clients`] a fake.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::cluster::records::{self, Kind as Record};
use crate::cluster::{db, Cluster};
use crate::credentials::StoredPassword;
use crate::juju::RelationId;
use crate::options::ClientOptions;
use crate::relations::postgresql_client::roles::decide_extra_role;
use crate::relations::sql::{quote_ident, quote_literal, Name};
use crate::relations::tenancy::extensions::{
    plan_extensions, schemas_to_check, ExtensionFacts, SchemaFacts, DEFAULT_SCHEMA,
};
use crate::relations::tenancy::logins::LoginPlan;
use crate::relations::tenancy::ownership::{
    decide_database, decide_role, DatabaseFacts, Owner, RoleAction, RoleFact,
};
use crate::relations::{ClientEndpoint, DesiredObjects};

/// What serving asks of the server.
pub trait Server {
    /// Checks what `request` asks for against what the server holds and
    /// creates it; `Ok(Some(problem))` refuses the relation (nothing was
    /// created or granted).
    fn ensure_objects(&self, request: &ObjectsRequest) -> Result<Option<String>>;

    /// Takes `user`'s access away (see [`revoke_login`]).
    fn revoke_login(&self, user: &str) -> Result<()>;

    /// Ends `user`'s logins and sessions, keeping its other attributes (a
    /// `database` relation's retired login, see [`disable_login`]).
    fn disable_login(&self, user: &str) -> Result<()>;
}

/// One relation's objects, for [`Server::ensure_objects`].
pub struct ObjectsRequest<'a> {
    pub options: &'a ClientOptions,
    pub relation: &'a RelationId,
    pub objects: &'a DesiredObjects,
    /// Who asks: the remote application, over which endpoint.
    pub owner: &'a Owner,
    /// The password the active login has: `objects.user`, or (`logins`)
    /// the active one of the relation's two logins.
    pub stored: &'a StoredPassword,
    /// A `database` relation's two logins, members of the owner role
    /// `objects.user` ([`crate::relations::tenancy::logins`]); `None`:
    /// `objects.user` is the one login.
    pub logins: Option<&'a LoginPlan>,
}

/// The unit's running cluster.
pub struct ClusterServer<'a>(pub &'a Cluster);

impl Server for ClusterServer<'_> {
    fn ensure_objects(&self, request: &ObjectsRequest) -> Result<Option<String>> {
        ensure_objects(self.0, request)
    }

    fn revoke_login(&self, user: &str) -> Result<()> {
        revoke_login(self.0, user)
    }

    fn disable_login(&self, user: &str) -> Result<()> {
        disable_login(self.0, user)
    }
}

fn ident(name: &Name) -> Result<String> {
    Ok(quote_ident(name.as_str())?)
}

/// What the server holds that bears on one relation's request.
struct Holdings {
    /// Each of its databases, `objects.databases()` order.
    databases: Vec<DatabaseFacts>,
    roles: Vec<(Name, Vec<RoleFact>)>,
    extensions: BTreeMap<String, ExtensionFacts>,
}

/// Checks what the relation asks for against what the server holds, then
/// creates it; `Some(problem)` refuses the relation, and then nothing was
/// created or granted.
fn ensure_objects(cluster: &Cluster, request: &ObjectsRequest) -> Result<Option<String>> {
    let ObjectsRequest {
        relation: id,
        objects,
        ..
    } = *request;
    let database = objects.database.as_str();

    // One session for reading, deciding and creating (a second one to the
    // database only to look at its extensions and schemas).
    let user = ident(&objects.user)?;
    let relation = id.to_string();
    let decided = db::with_client(cluster, "postgres", async |client| {
        // 1. What the server holds, before anything changes.
        let mut holdings = read_holdings(client, objects)
            .await
            .context("reading what the server holds for it")?;
        let schemas = if holdings.databases[0].exists && !objects.extensions.is_empty() {
            let wanted = schemas_to_check(&objects.extensions, &holdings.extensions);
            let in_database = db::connect(cluster, database).await?;
            read_schemas(&in_database, &mut holdings, wanted)
                .await
                .with_context(|| format!("reading the schemas of database {database}"))?
        } else {
            BTreeMap::new()
        };

        // 2. Whether it may have it.
        let decided = match decide(request, &holdings, &schemas) {
            Ok(decided) => decided,
            Err(problem) => return Ok(Err(format!("{id}: {problem}"))),
        };

        // 3. Create and grant.
        create(client, request, &decided, &user, &relation)
            .await
            .context("creating its database objects")?;
        Ok(Ok(decided))
    })?;
    let steps = match decided {
        Ok(decided) => decided.steps,
        Err(problem) => return Ok(Some(problem)),
    };

    if !objects.superuser {
        for name in &objects.more_databases {
            db::with_client(cluster, name.as_str(), async |client| {
                grant_public_schema(client, &objects.user).await
            })
            .with_context(|| format!("preparing database {name}"))?;
        }
    }

    if objects.superuser && steps.is_empty() {
        return Ok(None);
    }
    db::with_client(cluster, database, async |client| {
        if !objects.superuser {
            grant_public_schema(client, &objects.user).await?;
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

/// What [`decide`] allows one relation: its databases, its roles, its
/// extensions' steps.
struct Decided<'a> {
    databases: Vec<(
        &'a Name,
        crate::relations::tenancy::ownership::DatabaseAction,
    )>,
    roles: Vec<(&'a Name, RoleAction)>,
    steps: Vec<crate::relations::tenancy::extensions::ExtensionStep>,
}

async fn read_holdings(client: &Client, objects: &DesiredObjects) -> Result<Holdings> {
    records::ensure(client).await?;
    let mut roles = Vec::new();
    for role in &objects.roles {
        roles.push((role.clone(), role_closure(client, role).await?));
    }
    let mut databases = Vec::new();
    for name in objects.databases() {
        databases.push(database_facts(client, name.as_str()).await?);
    }
    Ok(Holdings {
        databases,
        roles,
        extensions: if objects.extensions.is_empty() {
            BTreeMap::new()
        } else {
            available_extensions(client).await?
        },
    })
}

/// The installed extensions and the `wanted` schemas of the database
/// `client` is connected to.
async fn read_schemas(
    client: &Client,
    holdings: &mut Holdings,
    wanted: std::collections::BTreeSet<String>,
) -> Result<BTreeMap<String, SchemaFacts>> {
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
}

/// Whether the relation may have what it asks for (the pure decisions of
/// [`crate::relations::tenancy`]); `Err`: why not.
fn decide<'a>(
    request: &ObjectsRequest<'a>,
    holdings: &Holdings,
    schemas: &BTreeMap<String, SchemaFacts>,
) -> Result<Decided<'a>, String> {
    let ObjectsRequest {
        options,
        objects,
        owner,
        ..
    } = *request;
    let mut databases = Vec::new();
    for (name, facts) in objects.databases().zip(&holdings.databases) {
        let action = decide_database(owner, &objects.user, name, facts, &options.shared_databases)?;
        databases.push((name, action));
    }
    let mut roles = Vec::new();
    for (role, closure) in &holdings.roles {
        let action = if objects.create_missing_roles {
            decide_role(owner, &objects.user, role, closure)?
        } else {
            // `database` grants only roles an operator made.
            decide_extra_role(owner, &objects.user, role, closure)?;
            RoleAction::Grant
        };
        let role = objects
            .roles
            .iter()
            .find(|r| *r == role)
            .expect("holdings list the requested roles");
        roles.push((role, action));
    }
    let steps = plan_extensions(
        &objects.extensions,
        &holdings.extensions,
        &options.allowed_extensions,
        objects.superuser,
        schemas,
    )?;
    Ok(Decided {
        databases,
        roles,
        steps,
    })
}

/// Creates and grants what [`decide`] allowed, writing only what differs.
/// `user`: the relation's user, quoted.
async fn create(
    client: &Client,
    request: &ObjectsRequest<'_>,
    decided: &Decided<'_>,
    user: &str,
    relation: &str,
) -> Result<()> {
    let ObjectsRequest {
        objects,
        owner,
        stored,
        logins,
        ..
    } = *request;
    ensure_user(client, objects, stored, logins).await?;
    for (name, action) in &decided.databases {
        let database_ident = ident(name)?;
        if action.record {
            records::record(client, Record::Database, name.as_str(), owner, relation).await?;
        }
        if action.create {
            let owner_role = if objects.superuser { "postgres" } else { user };
            client
                .batch_execute(&format!(
                    "CREATE DATABASE {database_ident} OWNER {owner_role}"
                ))
                .await?;
        }
        // Only when something differs: a hook that changes nothing
        // commits nothing. The grant is read from the ACL itself, not with
        // has_database_privilege: a superuser owner role passes that, but
        // the logins that are its members do not inherit superuser, and
        // need CONNECT before they act as it.
        let access = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database d, \
                     aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a \
                     WHERE d.datname = $1 AND a.grantee = 0), \
                 (SELECT count(DISTINCT a.privilege_type) = 3 FROM pg_database d, \
                     aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a \
                     JOIN pg_roles r ON r.oid = a.grantee \
                     WHERE d.datname = $1 AND r.rolname = $2 \
                       AND a.privilege_type IN ('CREATE', 'CONNECT', 'TEMPORARY'))",
                &[&name.as_str(), &objects.user.as_str()],
            )
            .await?;
        let (public_has_some, user_has_all): (bool, bool) = (access.get(0), access.get(1));
        if public_has_some {
            client
                .batch_execute(&format!(
                    "REVOKE ALL ON DATABASE {database_ident} FROM PUBLIC"
                ))
                .await?;
        }
        if !user_has_all {
            client
                .batch_execute(&format!("GRANT ALL ON DATABASE {database_ident} TO {user}"))
                .await?;
        }
    }
    for (role, action) in &decided.roles {
        let role_ident = ident(role)?;
        if *action == RoleAction::Create {
            // Recorded in the same transaction: never a role of no one.
            client.batch_execute("BEGIN").await?;
            records::record(client, Record::Role, role.as_str(), owner, relation).await?;
            client
                .batch_execute(&format!("CREATE ROLE {role_ident} NOLOGIN; COMMIT"))
                .await?;
        }
        let member: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_auth_members m \
                     JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member \
                     WHERE r.rolname = $1 AND u.rolname = $2)",
                &[&role.as_str(), &objects.user.as_str()],
            )
            .await?
            .get(0);
        if !member {
            client
                .batch_execute(&format!("GRANT {role_ident} TO {user}"))
                .await?;
        }
    }
    Ok(())
}

/// Lets `user` (quoted) create in the public schema of the database the
/// client is connected to (which the consumer may also have dropped: its
/// choice).
async fn grant_public_schema(client: &Client, user: &Name) -> Result<()> {
    if !schema_exists(client, "public").await? {
        return Ok(());
    }
    // Only when it lacks them: a hook that changes nothing commits nothing.
    let has_all: bool = client
        .query_one(
            "SELECT has_schema_privilege($1, 'public', 'CREATE') \
                AND has_schema_privilege($1, 'public', 'USAGE')",
            &[&user.as_str()],
        )
        .await?
        .get(0);
    if !has_all {
        client
            .batch_execute(&format!("GRANT ALL ON SCHEMA public TO {}", ident(user)?))
            .await?;
    }
    Ok(())
}

/// The relation's login role, with its password's verifier (the password
/// itself never goes into SQL) and exactly the role attributes the
/// relation may have. With `logins` (a `database` relation), the
/// application's owner role has those attributes and no `LOGIN`; the
/// active login has the password and nothing else, is a member of the
/// owner and acts as it (`SET role`); the inactive one keeps `LOGIN` only
/// while retiring.
async fn ensure_user(
    client: &Client,
    objects: &DesiredObjects,
    stored: &StoredPassword,
    logins: Option<&LoginPlan>,
) -> Result<()> {
    let attributes = Attributes {
        superuser: objects.superuser,
        createdb: objects.createdb,
        createrole: objects.createrole,
    };
    let Some(logins) = logins else {
        return ensure_login(client, &objects.user, &attributes, Some(stored)).await;
    };
    // The owner first: the login is made a member of it.
    ensure_owner(client, &logins.owner, &attributes).await?;
    let plain = Attributes {
        superuser: false,
        createdb: false,
        createrole: false,
    };
    ensure_login(client, &logins.active, &plain, Some(stored)).await?;
    act_as_owner(client, &logins.active, &logins.owner).await?;
    if !logins.inactive_keeps_login {
        disable_sessions(client, logins.inactive.as_str()).await?;
    }
    Ok(())
}

/// `owner` exists without `LOGIN` and with `attributes`; a role that could
/// log in (made before each relation had its own login) loses its
/// sessions too.
async fn ensure_owner(client: &Client, owner: &Name, attributes: &Attributes) -> Result<()> {
    let current = role_state(client, owner).await?;
    let options = role_options(current.as_ref(), attributes, Some(false), None)?;
    apply_role(client, owner, current.is_some(), &options).await?;
    if current.is_some_and(|c| c.login) {
        disable_sessions(client, owner.as_str()).await?;
    }
    Ok(())
}

/// The role attributes a relation's user has, besides `LOGIN` (never
/// `REPLICATION`).
struct Attributes {
    superuser: bool,
    createdb: bool,
    createrole: bool,
}

/// What `pg_authid` holds for a role.
struct RoleState {
    verifier: Option<String>,
    login: bool,
    superuser: bool,
    createdb: bool,
    createrole: bool,
    replication: bool,
}

async fn role_state(client: &Client, role: &Name) -> Result<Option<RoleState>> {
    let row = client
        .query_opt(
            "SELECT rolpassword, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication \
             FROM pg_authid WHERE rolname = $1",
            &[&role.as_str()],
        )
        .await?;
    Ok(row.map(|row| RoleState {
        verifier: row.get(0),
        login: row.get(1),
        superuser: row.get(2),
        createdb: row.get(3),
        createrole: row.get(4),
        replication: row.get(5),
    }))
}

/// The `ALTER ROLE`/`CREATE ROLE` options that make `current` (`None`: no
/// such role) what is wanted; empty when it already is (so a hook that
/// changes nothing writes nothing). `login`: `Some` to set it.
fn role_options(
    current: Option<&RoleState>,
    attributes: &Attributes,
    login: Option<bool>,
    verifier: Option<&str>,
) -> Result<Vec<String>> {
    let mut options = Vec::new();
    let mut want = |on: bool, had: Option<bool>, name: &str| {
        if had != Some(on) {
            options.push(if on {
                name.to_string()
            } else {
                format!("NO{name}")
            });
        }
    };
    if let Some(login) = login {
        want(login, current.map(|c| c.login), "LOGIN");
    } else if current.is_none() {
        want(false, None, "LOGIN");
    }
    want(
        attributes.superuser,
        current.map(|c| c.superuser),
        "SUPERUSER",
    );
    want(attributes.createdb, current.map(|c| c.createdb), "CREATEDB");
    want(
        attributes.createrole,
        current.map(|c| c.createrole),
        "CREATEROLE",
    );
    want(false, current.map(|c| c.replication), "REPLICATION");
    if let Some(verifier) = verifier {
        if current.and_then(|c| c.verifier.as_deref()) != Some(verifier) {
            options.push(format!("PASSWORD {}", quote_literal(verifier)?));
        }
    }
    Ok(options)
}

/// Creates `role`, or alters it when `options` is not empty.
async fn apply_role(client: &Client, role: &Name, exists: bool, options: &[String]) -> Result<()> {
    let name = ident(role)?;
    if exists && options.is_empty() {
        return Ok(());
    }
    let verb = if exists { "ALTER" } else { "CREATE" };
    client
        .batch_execute(&format!("{verb} ROLE {name} WITH {}", options.join(" ")))
        .await?;
    Ok(())
}

/// `user` exists with `LOGIN`, `attributes` and (when given) the password
/// whose verifier `stored` holds.
async fn ensure_login(
    client: &Client,
    user: &Name,
    attributes: &Attributes,
    stored: Option<&StoredPassword>,
) -> Result<()> {
    let current = role_state(client, user).await?;
    let verifier = stored.map(|s| s.verifier.as_str());
    let options = role_options(current.as_ref(), attributes, Some(true), verifier)?;
    apply_role(client, user, current.is_some(), &options).await
}

/// `login` is a member of `owner` and starts every session as `owner`, so
/// what it creates belongs to `owner`.
async fn act_as_owner(client: &Client, login: &Name, owner: &Name) -> Result<()> {
    let state = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_auth_members m \
                 JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member \
                 WHERE r.rolname = $2 AND u.rolname = $1), \
             EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_roles u ON u.oid = s.setrole \
                 WHERE u.rolname = $1 AND s.setdatabase = 0 \
                   AND format('role=%s', $2::text) = ANY (s.setconfig))",
            &[&login.as_str(), &owner.as_str()],
        )
        .await?;
    let (member, acts): (bool, bool) = (state.get(0), state.get(1));
    let owner_literal = quote_literal(owner.as_str())?;
    let (login, owner) = (ident(login)?, ident(owner)?);
    if !member {
        client
            .batch_execute(&format!("GRANT {owner} TO {login}"))
            .await?;
    }
    if !acts {
        client
            .batch_execute(&format!("ALTER ROLE {login} SET role = {owner_literal}"))
            .await?;
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
                "SELECT rolcanlogin OR rolsuper OR rolcreaterole, \
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
            .batch_execute(&format!(
                "ALTER ROLE {name} NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB"
            ))
            .await?;
        client.query_one(terminate, &[&user]).await?;
        log::info!("revoked login of {user} and ended its sessions");
        Ok(())
    })
    .with_context(|| format!("revoking the login of {user}"))
}

/// Ends `user`'s logins and its sessions (if it exists and has either),
/// keeping its other attributes: the retired login of a `database`
/// relation (its other login goes on acting as the owner), or an owner role
/// made when it could log in.
async fn disable_sessions(client: &Client, user: &str) -> Result<()> {
    let state = client
        .query_opt(
            "SELECT rolcanlogin, EXISTS (SELECT 1 FROM pg_stat_activity WHERE usename = $1) \
             FROM pg_roles WHERE rolname = $1",
            &[&user],
        )
        .await?;
    let Some(state) = state else {
        return Ok(());
    };
    let (login, sessions): (bool, bool) = (state.get(0), state.get(1));
    if !login && !sessions {
        return Ok(());
    }
    let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE usename = $1 AND pid <> pg_backend_pid()";
    client.query_one(terminate, &[&user]).await?;
    client
        .batch_execute(&format!("ALTER ROLE {} NOLOGIN", quote_ident(user)?))
        .await?;
    client.query_one(terminate, &[&user]).await?;
    log::info!("retired login {user} and ended its sessions");
    Ok(())
}

/// [`disable_sessions`] in its own session (the `secret-remove` hook).
fn disable_login(cluster: &Cluster, user: &str) -> Result<()> {
    db::with_client(cluster, "postgres", async |client| {
        disable_sessions(client, user).await
    })
    .with_context(|| format!("retiring the login of {user}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(login: bool, superuser: bool, verifier: &str) -> RoleState {
        RoleState {
            verifier: Some(verifier.to_string()),
            login,
            superuser,
            createdb: false,
            createrole: false,
            replication: false,
        }
    }

    const PLAIN: Attributes = Attributes {
        superuser: false,
        createdb: false,
        createrole: false,
    };

    #[test]
    fn a_role_is_altered_only_where_it_differs() {
        let options = |current: Option<&RoleState>, login, verifier| {
            role_options(current, &PLAIN, login, verifier)
                .unwrap()
                .join(" ")
        };
        assert_eq!(
            options(None, Some(true), Some("SCRAM-v")),
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD 'SCRAM-v'"
        );
        assert_eq!(
            options(None, None, None),
            "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
        );
        let settled = state(true, false, "SCRAM-v");
        assert_eq!(options(Some(&settled), Some(true), Some("SCRAM-v")), "");
        assert_eq!(options(Some(&settled), None, None), "", "login left alone");
        assert_eq!(
            options(Some(&settled), Some(true), Some("SCRAM-w")),
            "PASSWORD 'SCRAM-w'"
        );
        let revoked = state(false, true, "SCRAM-v");
        assert_eq!(
            options(Some(&revoked), Some(true), None),
            "LOGIN NOSUPERUSER"
        );
        let mut replicating = state(true, false, "SCRAM-v");
        replicating.replication = true;
        assert_eq!(
            options(Some(&replicating), Some(true), None),
            "NOREPLICATION"
        );
    }
}
