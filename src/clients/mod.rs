//! Serving the client relations, whatever their interface: the shell
//! around the pure planner in [`crate::relations`].
//!
//! For each client relation the charm reads the remote bags ([`read`]),
//! plans the relation through its interface
//! ([`crate::relations::plan_client`]), checks what it asks for against
//! what belongs to other consumers and creates its database objects
//! ([`objects`]), publishes the interface's [`Publication`] ([`publish`])
//! and grants access in `pg_hba.conf`. What it concluded about each
//! relation is kept in the unit's state directory
//! ([`crate::state::relations`]) so that a relation hook only re-reads its
//! own relation (and any relation not served yet) while `pg_hba.conf` is
//! still rendered from all of them; every other hook re-reads every
//! relation ([`plan::refreshes`]). Either way the result is the same: every
//! live relation converges on every hook.
//!
//! Serving talks to Juju, the server and the password store only through
//! [`Io`]'s traits, so the decisions below are unit-tested with fakes.
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

pub mod known_revisions;
pub mod objects;
pub mod plan;
pub mod publish;
pub mod read;
pub mod rotation;
pub mod secrets;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, Result};

use self::objects::{ObjectsRequest, Server};
use self::secrets::SecretTools;
use crate::credentials::{PasswordStore, Passwords, StoredPassword};
use crate::event::RelationKind;
use crate::juju::{HookContext, HookRelation, Juju, RelationId};
use crate::options::ClientOptions;
use crate::outcome::Problem;
use crate::relations::access::cidr::Cidr;
use crate::relations::access::RelationAccess;
use crate::relations::names::{database_login, relation_user};
use crate::relations::sql::Name;
use crate::relations::tenancy::logins::LoginPlan;
use crate::relations::tenancy::ownership::Owner;
use crate::relations::{retraction, ClientEndpoint, Credentials, Interface, Publication};
use crate::replication::Role;
use crate::state::relations::{self as results, Condition, Served, ServedMap};
use crate::state::StateDir;

/// What serving the relations talks to.
pub struct Io<'a> {
    pub juju: &'a dyn Juju,
    /// The application's secrets (`database` relations, on the leader).
    pub secrets: &'a dyn SecretTools,
    pub server: &'a dyn Server,
    pub passwords: &'a dyn PasswordStore,
}

/// The client relations of this unit's running server.
pub struct Clients<'a> {
    pub context: &'a HookContext,
    /// Where the relation results are kept.
    pub state: &'a StateDir,
    /// The server's port, major and full version, as published.
    pub port: u16,
    pub major: u32,
    /// This unit's role: what clients are told, and whether objects are
    /// created (a standby is read-only; it still grants access).
    pub role: &'a Role,
    pub version: &'a str,
    /// TLS as `database` consumers are told (`tls`, `tls-ca`).
    pub tls: &'a crate::relations::postgresql_client::plan::Tls,
    /// Refresh every relation, even in a relation hook (the CA they are
    /// told changed).
    pub refresh_all: bool,
    /// Users whose passwords the operator asked to renew
    /// (`rotate-credentials`); empty in hooks.
    pub renew: &'a BTreeSet<String>,
    pub io: Io<'a>,
}

/// The outcome for the unit: access for `pg_hba.conf`, and problems to show.
pub struct ClientsOutcome {
    pub access: Vec<RelationAccess>,
    pub problems: Vec<Problem>,
}

/// The access rules of the relations served so far, for writing
/// `pg_hba.conf` before the server starts.
pub fn cached_access(state: &StateDir) -> Vec<RelationAccess> {
    results::load(state)
        .iter()
        .filter(|(_, s)| s.has_access())
        .filter_map(|(id, s)| plan::access_of(id, s))
        .flat_map(plan::with_alternate_login)
        .collect()
}

/// Whether a relation failed in the last hook and waits for another try
/// (which `update-status` then gives it). Reads one file; spawns nothing.
pub fn needs_retry(state: &StateDir) -> bool {
    results::load(state)
        .values()
        .any(|s| s.condition == Condition::Failed)
}

/// What serving one relation needs besides the relation itself.
struct Serving<'a> {
    options: &'a ClientOptions,
    leader: bool,
    /// Live relations by their cached user.
    live_users: BTreeMap<String, BTreeSet<String>>,
}

impl Clients<'_> {
    /// Serves every client relation.
    pub fn serve(&self, options: &ClientOptions) -> Result<ClientsOutcome> {
        let hook = self.context.relation.as_ref().filter(|_| !self.refresh_all);
        let leaving = self.this_unit_is_leaving();
        let live = self.live_relations()?;
        let mut served = results::load(self.state);
        let removed = plan::take_removed(&mut served, &live);

        let mut live_users = plan::relations_by_user(&served);
        // Asked only when some relation needs it: most hooks of a unit
        // without client relations then call no tool here beyond
        // relation-ids.
        let mut serving: Option<Serving> = None;
        let mut passwords: Option<Passwords> = None;
        for id in &live {
            if !plan::refreshes(hook, id, &served) {
                continue;
            }
            let key = id.to_string();
            let previous = served.get(&key).cloned().unwrap_or_default();
            if serving.is_none() {
                serving = Some(Serving {
                    options,
                    leader: self.io.juju.is_leader()?,
                    live_users: std::mem::take(&mut live_users),
                });
            }
            let serving = serving.as_ref().expect("just set");
            let passwords = passwords.get_or_insert_with(|| {
                Passwords::new(serving.leader, self.io.passwords).renewing(self.renew)
            });
            let is_hook_relation = hook.is_some_and(|h| h.id == *id);
            let outcome = self.serve_relation(
                serving,
                passwords,
                id,
                hook.filter(|_| is_hook_relation),
                &previous,
            );
            served.insert(key, outcome);
        }
        let removed = self.retire_secrets(
            &mut served,
            removed,
            serving.as_ref().map(|s| s.leader),
            leaving,
        );
        let mut problems: Vec<Problem> = self
            .revoke(&mut served, removed, leaving)
            .into_iter()
            .map(Problem::Blocked)
            .collect();
        results::save(self.state, &served)?;

        let mut access = Vec::new();
        for (id, s) in &served {
            if let Some(problem) = s.problem() {
                problems.push(problem);
            }
            if s.has_access() {
                match plan::access_of(id, s) {
                    Some(a) => access.extend(plan::with_alternate_login(a)),
                    None => problems.push(Problem::Blocked(format!(
                        "{id}: could not rebuild its access rules"
                    ))),
                }
            }
        }
        Ok(ClientsOutcome { access, problems })
    }

    /// For a converge that stopped before serving the relations (bad
    /// config, storage in the way): the users of removed relations still
    /// lose their access. Relations still live are left as they are.
    pub fn revoke_removed(&self) -> Result<()> {
        let leaving = self.this_unit_is_leaving();
        let live = self.live_relations()?;
        let mut served = results::load(self.state);
        let removed = plan::take_removed(&mut served, &live);
        if removed.is_empty() {
            return Ok(());
        }
        let removed = self.retire_secrets(&mut served, removed, None, leaving);
        for problem in self.revoke(&mut served, removed, leaving) {
            log::warn!("{problem}");
        }
        results::save(self.state, &served)
    }

    /// Marks (in the charm directory) that this unit is leaving, so the
    /// `-broken` hooks of its removal do not revoke what the remaining
    /// units still serve (LP #1979811).
    fn departing_marker(&self) -> Option<PathBuf> {
        let dir = self.context.charm_dir.as_ref()?;
        Some(dir.join(".pg-charm-departing"))
    }

    /// Whether this unit is leaving the application (it saw itself depart).
    fn this_unit_is_leaving(&self) -> bool {
        if let (Some(h), Some(marker)) = (
            self.context.relation_hook(RelationKind::Departed),
            self.departing_marker(),
        ) {
            if h.departing.as_deref() == Some(self.context.unit.as_str()) {
                std::fs::write(&marker, "departing\n").ok();
            }
        }
        self.departing_marker().is_some_and(|m| m.exists())
    }

    /// The live client relations (without the one breaking in this hook).
    fn live_relations(&self) -> Result<Vec<RelationId>> {
        let mut live = Vec::new();
        for endpoint in crate::relations::CLIENT_ENDPOINTS {
            live.extend(self.io.juju.relation_ids(endpoint.name)?);
        }
        if let Some(h) = self.context.relation_hook(RelationKind::Broken) {
            live.retain(|id| *id != h.id);
        }
        Ok(live)
    }

    /// Retires the application secrets of removed `database` relations, on
    /// the leader (`leader`: already asked, else asked here if needed). A
    /// relation whose secrets could not all be removed stays in `served`,
    /// without access, so the next hook tries again. A `leaving` unit
    /// retires nothing: its `-broken` hooks mean that it goes, not the
    /// relations, which the remaining units (and the next leader) still
    /// serve with those secrets, even when the leaving unit is the leader.
    fn retire_secrets(
        &self,
        served: &mut ServedMap,
        removed: Vec<(String, Served)>,
        leader: Option<bool>,
        leaving: bool,
    ) -> Vec<(String, Served)> {
        let mut leader = leader;
        let mut gone = Vec::new();
        for (key, old) in removed {
            if old.secret_labels.is_empty() || leaving {
                gone.push((key, old));
                continue;
            }
            let is_leader = match leader {
                Some(known) => known,
                None => {
                    let known = self.io.juju.is_leader().unwrap_or(false);
                    leader = Some(known);
                    known
                }
            };
            let Ok(id) = key.parse::<RelationId>() else {
                gone.push((key, old));
                continue;
            };
            if !is_leader {
                gone.push((key, old));
                continue;
            }
            let in_context = self
                .context
                .relation_hook(RelationKind::Broken)
                .is_some_and(|h| h.id == id);
            match secrets::apply(self.io.secrets, &id, in_context, &[], &old.secret_labels) {
                Ok(applied) if applied.remembered.is_empty() => gone.push((key, old)),
                Ok(applied) => {
                    // Removed in this hook; forgotten once a later hook
                    // finds them gone (the removal commits with the hook).
                    served.insert(
                        key.clone(),
                        Served {
                            secret_labels: applied.remembered,
                            condition: Condition::Refused,
                            ..removed_entry(&old)
                        },
                    );
                    gone.push((key, old));
                }
                Err(error) => {
                    let problem = format!(
                        "{key} (removed): could not remove its secrets yet ({}); retrying",
                        one_line(&error)
                    );
                    log::warn!("{problem}");
                    served.insert(
                        key.clone(),
                        Served {
                            problem: Some(problem),
                            condition: Condition::Failed,
                            ..removed_entry(&old)
                        },
                    );
                    gone.push((key, old));
                }
            }
        }
        gone
    }

    /// Revokes the users that neither a serving relation nor this unit's
    /// departure keeps ([`plan::users_to_take_back`]). A removed relation
    /// whose user could not be revoked stays in `served`, without access,
    /// so the next hook tries again; the problems say so.
    fn revoke(
        &self,
        served: &mut ServedMap,
        removed: Vec<(String, Served)>,
        leaving: bool,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for user in plan::users_to_take_back(served, &removed, leaving) {
            let revoked = plan::logins_of(&user)
                .iter()
                .try_for_each(|login| self.io.server.revoke_login(login));
            let Err(error) = revoked else {
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

    /// Serves one relation; an error becomes its problem, never the hook's.
    fn serve_relation(
        &self,
        serving: &Serving,
        passwords: &mut Passwords,
        id: &RelationId,
        hook: Option<&HookRelation>,
        previous: &Served,
    ) -> Served {
        let mut seen = Seen::default();
        match self.try_serve(serving, passwords, id, hook, previous, &mut seen) {
            Ok(served) => served,
            Err(error) => {
                let problem = format!("{id}: {}; retrying on the next hook", one_line(&error));
                log::warn!("{problem}");
                let (database, cidrs) = plan::failing_access(previous, seen.cidrs.as_ref());
                let or_previous = |seen: String, previous: &String| {
                    if seen.is_empty() {
                        previous.clone()
                    } else {
                        seen
                    }
                };
                let more_databases = if database == previous.database {
                    previous.more_databases.clone()
                } else {
                    Vec::new()
                };
                Served {
                    remote_app: or_previous(seen.remote_app, &previous.remote_app),
                    endpoint: id.endpoint().to_string(),
                    user: or_previous(seen.user, &previous.user),
                    database,
                    more_databases,
                    cidrs,
                    secret_labels: previous.secret_labels.clone(),
                    secret_revisions: previous.secret_revisions.clone(),
                    problem: Some(problem),
                    condition: Condition::Failed,
                }
            }
        }
    }

    /// One relation: observe (read what its plan needs), plan
    /// ([`plan::relation_step`], pure), apply (check and create its
    /// objects, publish).
    fn try_serve(
        &self,
        serving: &Serving,
        passwords: &mut Passwords,
        id: &RelationId,
        hook: Option<&HookRelation>,
        previous: &Served,
        seen: &mut Seen,
    ) -> Result<Served> {
        let endpoint = ClientEndpoint::named(id.endpoint()).context("not a client endpoint")?;
        let (observed, issued) = self.observe(serving, passwords, endpoint, id, hook, seen)?;
        let step = plan::relation_step(endpoint, id, &observed, self.role, serving.options);
        self.apply_step(
            serving, passwords, endpoint, id, previous, step, issued, seen,
        )
    }

    /// What the relation's plan needs, read in the order the plan needs
    /// it, stopping at the first thing missing (so a relation waiting for
    /// its remote application or its credentials costs no more tool
    /// calls): the remote application, the remote bags, the credentials
    /// (issued here by the leader; [`Passwords`]), this unit's address.
    fn observe(
        &self,
        serving: &Serving,
        passwords: &mut Passwords,
        endpoint: ClientEndpoint,
        id: &RelationId,
        hook: Option<&HookRelation>,
        seen: &mut Seen,
    ) -> Result<(plan::Observed, Option<Issued>)> {
        let juju = self.io.juju;
        let remote_app = read::remote_app(juju, id, hook)?;
        if remote_app.is_empty() {
            return Ok((plan::Observed::NoRemoteApp, None));
        }
        seen.remote_app = remote_app.clone();
        // `db`: the application's user; `database`: the relation's own
        // login, a member of the application's owner role.
        let owner = relation_user(endpoint, &remote_app);
        let user = if endpoint.interface == Interface::PostgresqlClient {
            database_login(&remote_app, id)
        } else {
            owner.clone()
        };
        seen.user = user.to_string();

        let facts = read::relation_facts(juju, id, &remote_app, hook)?;
        let live_same_user = serving
            .live_users
            .get(user.as_str())
            .cloned()
            .unwrap_or_default();
        // A `database` relation has two logins (one retiring after a
        // rotation); `db` relations log in as their user.
        let issued = if endpoint.interface == Interface::PostgresqlClient {
            passwords
                .database_login(&user, &owner, id, &live_same_user)?
                .map(|l| (l.login, l.stored, Some(l.plan)))
        } else {
            passwords
                .for_relation(&user, id, &live_same_user)?
                .map(|stored| (user.clone(), stored, None))
        };
        let Some((login, stored, logins)) = issued else {
            return Ok((plan::Observed::NoCredentials, None));
        };
        let host = juju.ingress_address(id)?;
        let mut server = self
            .role
            .server_facts(&host, self.port, self.major, self.version);
        server.tls = self.tls.clone();
        let credentials = Credentials {
            user: login,
            password: stored.password.clone(),
        };
        let observed = plan::Observed::Ready(Box::new(plan::Ready {
            relation: facts,
            server,
            credentials,
        }));
        Ok((
            observed,
            Some(Issued {
                user,
                stored,
                logins,
            }),
        ))
    }

    /// Carries out the relation's step: nothing for a waiting relation;
    /// its data taken back for a refused one; for one to serve, its
    /// objects checked against the server's holdings and created (which
    /// may still refuse it), then its publication, then (`database`) its
    /// logins settled.
    #[allow(clippy::too_many_arguments)]
    fn apply_step(
        &self,
        serving: &Serving,
        passwords: &mut Passwords,
        endpoint: ClientEndpoint,
        id: &RelationId,
        previous: &Served,
        step: plan::RelationStep,
        issued: Option<Issued>,
        seen: &mut Seen,
    ) -> Result<Served> {
        let remote_app = seen.remote_app.clone();
        let relation_user = seen.user.clone();
        let outcome = |condition: Condition, problem: String| Served {
            remote_app: remote_app.clone(),
            endpoint: id.endpoint().to_string(),
            user: relation_user.clone(),
            secret_labels: previous.secret_labels.clone(),
            problem: Some(problem),
            condition,
            ..Served::default()
        };
        let refuse = |problem: String| -> Result<Served> {
            log::warn!("refusing {problem}");
            // Fail closed: take back anything published before, so the
            // client does not keep connecting with data the charm no longer
            // stands by.
            let mut refused = outcome(Condition::Refused, problem.clone());
            match self.publish(id, &retraction(endpoint), serving, &previous.secret_labels) {
                Ok(labels) => refused.secret_labels = labels,
                Err(e) => {
                    refused.problem = Some(format!(
                        "{problem} (taking its data back failed: {})",
                        one_line(&e)
                    ))
                }
            }
            Ok(refused)
        };
        let (plan, create_objects) = match step {
            plan::RelationStep::Wait(problem) => return Ok(outcome(Condition::Waiting, problem)),
            plan::RelationStep::Refuse(problem) => return refuse(problem),
            plan::RelationStep::Serve {
                plan,
                create_objects,
            } => (plan, create_objects),
        };
        let Issued {
            user,
            stored,
            logins,
        } = issued.context("a relation to serve without its credentials")?;
        seen.cidrs = Some(plan.access.cidrs.clone());
        let owner = Owner {
            remote_app: remote_app.clone(),
            endpoint,
        };
        let request = ObjectsRequest {
            options: serving.options,
            relation: id,
            objects: &plan.objects,
            owner: &owner,
            stored: &stored,
            logins: logins.as_ref(),
        };
        if create_objects {
            if let Some(problem) = self.io.server.ensure_objects(&request)? {
                return refuse(problem);
            }
        }
        let mut secret_revisions = BTreeMap::new();
        let secret_labels = if endpoint.interface == Interface::PostgresqlClient {
            let planned = match &plan.publication {
                Publication::ClientSecretsAndBag(plan) => plan
                    .secrets()
                    .map(|s| (s.label.clone(), s.content.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            let remembering = known_revisions::Remembering::new(
                self.io.secrets,
                &previous.secret_revisions,
                planned,
            );
            let recording = rotation::Recording::new(&remembering);
            let labels = self.publish_with(
                &recording,
                id,
                &plan.publication,
                serving,
                &previous.secret_labels,
            )?;
            passwords.superseded(&user, &recording.superseded())?;
            secret_revisions = remembering.seen();
            if let Some(retired) = passwords.settle_logins(&user)? {
                if create_objects {
                    self.io.server.disable_login(retired.as_str())?;
                }
            }
            labels
        } else {
            self.publish(id, &plan.publication, serving, &previous.secret_labels)?
        };
        Ok(Served {
            remote_app,
            endpoint: id.endpoint().to_string(),
            user: user.to_string(),
            database: plan.objects.database.to_string(),
            more_databases: plan
                .objects
                .more_databases
                .iter()
                .map(ToString::to_string)
                .collect(),
            cidrs: plan.access.cidrs.iter().map(|c| c.to_string()).collect(),
            secret_labels,
            secret_revisions,
            problem: None,
            condition: Condition::Served,
        })
    }

    fn publish(
        &self,
        id: &RelationId,
        publication: &Publication,
        serving: &Serving,
        secret_labels: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>> {
        self.publish_with(self.io.secrets, id, publication, serving, secret_labels)
    }

    fn publish_with(
        &self,
        secrets: &dyn SecretTools,
        id: &RelationId,
        publication: &Publication,
        serving: &Serving,
        secret_labels: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>> {
        publish::publish(
            self.io.juju,
            secrets,
            id,
            publication,
            &self.context.unit,
            serving.leader,
            secret_labels,
        )
    }
}

/// An error as one bounded line, for a status message.
fn one_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}").replace(['\n', '\r'], " ");
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The credentials the leader issued (or a follower found) for a relation:
/// its relation user (`database`: the relation's main login), the stored
/// password of the login it uses, and (`database`) which of its two logins
/// does what.
struct Issued {
    user: Name,
    stored: StoredPassword,
    logins: Option<LoginPlan>,
}

/// What serving one relation learnt before anything failed.
#[derive(Default)]
struct Seen {
    remote_app: String,
    user: String,
    /// The addresses its plan grants.
    cidrs: Option<BTreeSet<Cidr>>,
}

/// What stays cached of a removed relation while something of it is still
/// to be taken back: who it was, no access.
fn removed_entry(old: &Served) -> Served {
    Served {
        remote_app: old.remote_app.clone(),
        endpoint: old.endpoint.clone(),
        user: old.user.clone(),
        ..Served::default()
    }
}

#[cfg(test)]
mod tests;
