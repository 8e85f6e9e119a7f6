//! The unit's TLS, converged on every hook (issue 14): the one call the
//! converge makes ([`serve_unit`]), before the configuration names the
//! files, so PostgreSQL never starts or reloads without them.
//!
//! 1. **Observe**: the unit's key ([`Kept::ensure_key`], made on the unit
//!    the first time), the names and addresses clients use (host name,
//!    FQDN, the unit's private address, and the ingress address of every
//!    client relation, which for a cross-model relation is the unit's
//!    public address: exactly what clients are given as `host`), the kept
//!    certificates, and the `certificates` relation's two bags (the unit's
//!    request in its own bag, the provider's answer in its app bag).
//! 2. **Decide** ([`decide`], pure): which certificate to serve, what to
//!    re-issue or request, and what the status says.
//! 3. **Apply**: the own certificate re-issued, a new request put in the
//!    unit bag, the answer kept or forgotten, then PostgreSQL's three files
//!    written ([`TlsDir::serve`]); the converge's reload follows their
//!    change times (PostgreSQL reloads TLS files on SIGHUP: no restart).
//!
//! The private key goes only to the state directory and the `0600`
//! `key.pem` PostgreSQL reads; it is never in a bag, a log line or a
//! status. A provider's answer is remote input: it is served only once it
//! verified ([`crate::tls::verify`]); otherwise the unit keeps serving
//! what it served and [`Served::problem`] says why.
//!
//! The internal CA ([`super::internal_ca`], between units) is the own
//! certificate's signer when there is one ([`Facts::own_signer`],
//! [`CertificateAuthority::issue`]): the own certificate is re-issued by
//! [`decide`] when the signer changes (`Why::SignerChanged`), and its CA is
//! the one clients get.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use time::OffsetDateTime;

use super::decide::{self, decide, Answer, Decision, Facts, Held, Relation, Serve, Signer};
use super::files::{self, CertAndCa, Kept, TlsDir};
use super::issue::{certificate_request, self_signed, CertificateAuthority, Validity};
use super::key::PrivateKey;
use super::sans::{required_sans, Identity, SanInputs};
use super::verify::{self, Verified};
use super::wire;
use crate::cluster::conf::Setting;
use crate::event::RelationKind;
use crate::juju::{self, HookContext, Juju, RelationData, RelationId};
use crate::outcome::Problem;
use crate::relations::postgresql_client::plan::Tls;
use crate::relations::CLIENT_ENDPOINTS;
use crate::state::tls::Kind;
use crate::state::StateDir;

/// The unit's own certificate's lifetime (renewed with 10% left).
pub const OWN_LIFETIME: Duration = Duration::from_secs(365 * 86400);

/// Where PostgreSQL reads its certificate and key (for its settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// What the converge needs from TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub files: ServedFiles,
    /// What clients are told: TLS on, and the served certificate's CA.
    pub tls: Tls,
    /// Why the provider's certificate is not served (yet), for the status.
    pub problem: Option<Problem>,
    /// The CA is not the one every client relation was last served with:
    /// this hook serves them all ([`clients_served`] once it did).
    pub refresh_clients: bool,
    /// What a unit trusts when it connects to another (replication):
    /// [`files::PEER_CA`], the internal CA and, while the unit serves the
    /// provider's certificate, the provider's CA; `None` without an
    /// internal CA.
    pub peer_ca: Option<PathBuf>,
    /// The application's internal CA certificate (PEM), when there is one:
    /// what etcd's members trust in each other.
    pub internal_ca: Option<String>,
}

/// Every client relation was served with `served`'s CA.
pub fn clients_served(state: &StateDir, served: &Served) -> Result<()> {
    match &served.tls.ca {
        Some(ca) if served.refresh_clients => crate::state::tls::remember_clients_told(state, ca),
        _ => Ok(()),
    }
}

/// Whether a kept certificate (the own one, or the provider's accepted
/// one) is due for renewal, or unreadable: `update-status`, which
/// otherwise converges only when something is wrong, converges then, so a
/// unit that sees no other hook still renews in time. Reads two files;
/// spawns nothing.
pub fn renewal_due(state: &StateDir, now: OffsetDateTime) -> bool {
    let renewal = decide::Renewal::default();
    [Kind::Own, Kind::Provider].into_iter().any(|kind| {
        crate::state::tls::certificate(state, kind).is_some_and(|pair| {
            verify::validity(&pair.certificate)
                .map_or(true, |validity| renewal.is_due(&validity, now))
        })
    })
}

/// The conf.d settings that make PostgreSQL serve TLS with `files`.
/// `ssl_ca_file` is left unset: it is for client certificates, which the
/// charm does not ask for.
pub fn settings(files: &ServedFiles) -> Vec<Setting> {
    let quoted = |path: &PathBuf| format!("'{}'", path.display().to_string().replace('\'', "''"));
    vec![
        Setting::new(
            "ssl",
            "on",
            "clients are offered TLS from the first connection",
        ),
        Setting::new(
            "ssl_cert_file",
            &quoted(&files.certificate),
            "the unit's certificate with its chain, from the charm",
        ),
        Setting::new(
            "ssl_key_file",
            &quoted(&files.key),
            "the unit's private key, made on the unit (postgres, 0600)",
        ),
    ]
}

/// Observes, decides and applies the unit's TLS for `dir` (the cluster's
/// TLS directory), at `now`; `internal_ca` signs the own certificate when
/// given (else it is self-signed).
pub fn serve_unit(
    juju: &dyn Juju,
    context: &HookContext,
    state: &StateDir,
    dir: &TlsDir,
    internal_ca: Option<&CertificateAuthority>,
    now: OffsetDateTime,
) -> Result<Served> {
    let kept = Kept::new(state.clone());
    let key = kept.ensure_key()?;
    let addresses = client_addresses(juju, context, state)?;
    let hostname = nix::unistd::gethostname()
        .context("reading the host name")?
        .to_string_lossy()
        .into_owned();
    let fqdn = fqdn(&hostname);
    let address_refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let (identity, skipped) = required_sans(&SanInputs {
        hostname: &hostname,
        fqdn: fqdn.as_deref().filter(|f| *f != hostname),
        addresses: &address_refs,
    });
    for (entry, why) in skipped {
        log::warn!("TLS: {entry:?} cannot be in the certificate: {why}");
    }
    let relation = certificates_relation(juju, context)?;
    let observed = observe(&kept, &key, &identity, relation.as_ref(), internal_ca, now);
    let decision = decide(&observed.facts);
    log::debug!("TLS decision: {decision:?}");
    apply(
        juju,
        &kept,
        &key,
        &identity,
        relation.as_ref(),
        internal_ca,
        observed,
        &decision,
        now,
    )?;
    let served: CertAndCa = match decision.serve {
        Serve::Own => kept.own(),
        Serve::Provider => kept.accepted(),
    }
    .context("the certificate to serve was not kept")?;
    if dir.serve(&key, &served)? {
        log::info!("TLS: PostgreSQL's certificate files changed; the reload applies them");
    }
    let peer_ca = match internal_ca {
        Some(ca) => {
            let mut trusted = ca.certificate().to_string();
            if decision.serve == Serve::Provider && served.ca != trusted {
                trusted = format!("{}\n{}", trusted.trim_end(), served.ca);
            }
            dir.serve_peer_ca(&trusted)?;
            Some(dir.file(files::PEER_CA))
        }
        None => None,
    };
    let refresh_clients = !crate::state::tls::clients_told(state, &served.ca);
    Ok(Served {
        files: ServedFiles {
            certificate: dir.file(files::CERTIFICATE),
            key: dir.file(files::KEY),
        },
        tls: Tls {
            enabled: true,
            ca: Some(served.ca),
        },
        problem: decision.problem.as_ref().map(status_problem),
        refresh_clients,
        peer_ca,
        internal_ca: internal_ca.map(|ca| ca.certificate().to_string()),
    })
}

/// The `certificates` relation and what is in its bags.
struct CertificatesRelation {
    id: RelationId,
    /// The unit's current request (PEM), from its own bag.
    request: Option<String>,
    /// The provider's application bag (empty before it answered).
    provider: RelationData,
}

fn certificates_relation(
    juju: &dyn Juju,
    context: &HookContext,
) -> Result<Option<CertificatesRelation>> {
    let broken = context.relation_hook(RelationKind::Broken).map(|h| &h.id);
    let ids = juju
        .relation_ids(super::ENDPOINT)
        .context("listing the certificates relation")?;
    let Some(id) = ids.into_iter().find(|id| Some(id) != broken) else {
        return Ok(None);
    };
    let own = juju
        .relation_get(&id, &context.unit)
        .with_context(|| format!("reading this unit's bag in {id}"))?;
    let request = own
        .get(wire::REQUESTS)
        .filter(|v| !v.trim().is_empty())
        .and_then(|value| match wire::requests_in(value) {
            Ok(requests) => requests.into_iter().next(),
            Err(e) => {
                log::warn!("TLS: {id}: replacing this unit's request: {e}");
                None
            }
        });
    let provider = match juju.relation_remote_app(&id)? {
        Some(app) => juju
            .relation_get_app(&id, &app)
            .with_context(|| format!("reading {app}'s bag in {id}"))?,
        None => RelationData::new(),
    };
    Ok(Some(CertificatesRelation {
        id,
        request,
        provider,
    }))
}

/// Every address clients are given: each live client relation's ingress
/// address (and the peer relation's, where the other units connect), and
/// the unit's private address (sorted, without repeats). A
/// relation hook asks Juju only for its own relation's address (and for
/// relations not seen yet), the others come from the last hook's answers
/// (`state::tls`), as the client relations themselves are refreshed; any
/// other hook asks for every relation.
fn client_addresses(
    juju: &dyn Juju,
    context: &HookContext,
    state: &StateDir,
) -> Result<Vec<String>> {
    let hook = context.relation.as_ref().map(|h| &h.id);
    let broken = context.relation_hook(RelationKind::Broken).map(|h| &h.id);
    let cached = crate::state::tls::addresses(state);
    let mut by_relation = std::collections::BTreeMap::new();
    // The peer relation's address too: the other units reach this one's
    // PostgreSQL and Patroni REST API there, verifying it.
    let endpoints = CLIENT_ENDPOINTS
        .iter()
        .map(|e| e.name)
        .chain([crate::ha::converge::PEER_ENDPOINT]);
    for endpoint in endpoints {
        for id in juju.relation_ids(endpoint)? {
            if Some(&id) == broken {
                continue;
            }
            let key = id.to_string();
            let address = match cached.get(&key) {
                Some(known) if !asks_for(hook, &id, true) => known.clone(),
                _ => juju
                    .ingress_address(&id)
                    .with_context(|| format!("asking Juju for this unit's address in {id}"))?,
            };
            by_relation.insert(key, address);
        }
    }
    if by_relation != cached {
        crate::state::tls::keep_addresses(state, &by_relation)?;
    }
    let mut addresses: std::collections::BTreeSet<String> = by_relation.into_values().collect();
    addresses.insert(juju::unit_private_address().context("asking Juju for the private address")?);
    addresses.retain(|a| !a.trim().is_empty());
    Ok(addresses.into_iter().collect())
}

/// Whether a hook on `hook` (a relation hook, or `None`) asks Juju for the
/// unit's address in `id`, when an earlier answer is `known` or not.
fn asks_for(hook: Option<&RelationId>, id: &RelationId, known: bool) -> bool {
    !known || hook.is_none_or(|h| h == id)
}

/// The host's canonical name (`getaddrinfo` with `AI_CANONNAME`, as
/// `hostname -f` does); `None` when the resolver knows none.
fn fqdn(hostname: &str) -> Option<String> {
    use nix::libc;
    use std::ffi::{CStr, CString};
    let node = CString::new(hostname).ok()?;
    let hints = libc::addrinfo {
        ai_flags: libc::AI_CANONNAME,
        ai_family: libc::AF_UNSPEC,
        ai_socktype: libc::SOCK_STREAM,
        ai_protocol: 0,
        ai_addrlen: 0,
        ai_addr: std::ptr::null_mut(),
        ai_canonname: std::ptr::null_mut(),
        ai_next: std::ptr::null_mut(),
    };
    let mut found: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `node` and `hints` outlive the call; `found` is freed below.
    let rc = unsafe { libc::getaddrinfo(node.as_ptr(), std::ptr::null(), &hints, &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: getaddrinfo succeeded, so `found` points at a valid list
    // whose first entry carries the canonical name (or null).
    let name = unsafe {
        let canon = (*found).ai_canonname;
        let name = (!canon.is_null()).then(|| CStr::from_ptr(canon).to_string_lossy().into_owned());
        libc::freeaddrinfo(found);
        name
    };
    name.filter(|n| !n.is_empty() && n.contains('.'))
}

/// The decision's facts, and the verified answer beside them.
struct Observed {
    facts: Facts,
    verified: Option<Verified>,
}

fn observe(
    kept: &Kept,
    key: &PrivateKey,
    identity: &Identity,
    relation: Option<&CertificatesRelation>,
    internal_ca: Option<&CertificateAuthority>,
    now: OffsetDateTime,
) -> Observed {
    let required = &identity.sans;
    let held = |pair: Option<CertAndCa>, with_ca: bool, what: &str| -> Option<Held> {
        let pair = pair?;
        let ca = with_ca.then_some(pair.ca.as_str());
        match verify::assess(&pair.certificate, key, required, ca) {
            Ok(held) => Some(held),
            Err(e) => {
                log::warn!("TLS: the kept {what} certificate is unreadable ({e}); replacing it");
                None
            }
        }
    };
    // Checked against the CA kept with it: the certificate itself when
    // self-signed, else the internal CA that signed it.
    let own = held(kept.own(), true, "own");
    let own_signer = match internal_ca.map(|ca| verify::ca_signer(ca.certificate())) {
        None => Signer::SelfSigned,
        Some(Ok(signer)) => signer,
        Some(Err(e)) => {
            log::warn!("TLS: the internal CA is unreadable ({e}); self-signing");
            Signer::SelfSigned
        }
    };
    let accepted = held(kept.accepted(), true, "provider's");
    let mut verified = None;
    let relation = relation.map(|r| {
        let request = r.request.as_deref().and_then(|csr| {
            verify::assess_request(csr, key, required)
                .map_err(|e| log::warn!("TLS: {}: this unit's request is unreadable: {e}", r.id))
                .ok()
        });
        let answer = match &r.request {
            None => Answer::Waiting,
            Some(csr) => {
                let (answer, ok) = wire::read_answer(
                    r.provider.get(wire::CERTIFICATES).map(String::as_str),
                    r.provider.get(wire::REQUEST_ERRORS).map(String::as_str),
                    csr,
                    key,
                    required,
                    now,
                );
                verified = ok;
                answer
            }
        };
        Relation { request, answer }
    });
    Observed {
        facts: Facts {
            now,
            renewal: decide::Renewal::default(),
            own,
            own_signer,
            accepted,
            relation,
        },
        verified,
    }
}

#[allow(clippy::too_many_arguments)]
fn apply(
    juju: &dyn Juju,
    kept: &Kept,
    key: &PrivateKey,
    identity: &Identity,
    relation: Option<&CertificatesRelation>,
    internal_ca: Option<&CertificateAuthority>,
    observed: Observed,
    decision: &Decision,
    now: OffsetDateTime,
) -> Result<()> {
    if let Some(why) = decision.reissue_own {
        let validity = Validity::starting(now, OWN_LIFETIME);
        let own = match internal_ca {
            Some(ca) => {
                log::info!("TLS: issuing the unit's own certificate with the internal CA: {why}");
                CertAndCa {
                    certificate: ca.issue(key, identity, &validity)?,
                    ca: ca.certificate().to_string(),
                }
            }
            None => {
                log::info!("TLS: issuing the unit's own certificate: {why}");
                let certificate = self_signed(key, identity, &validity)?;
                CertAndCa {
                    ca: certificate.clone(),
                    certificate,
                }
            }
        };
        kept.keep_own(&own)?;
    }
    if let (Some(why), Some(relation)) = (decision.send_request, relation) {
        log::info!(
            "TLS: {}: requesting a certificate for {}: {why}",
            relation.id,
            identity.sans.entries().join(", ")
        );
        let csr = certificate_request(key, identity)?;
        let data = RelationData::from([(wire::REQUESTS.to_string(), wire::requests_value(&csr))]);
        juju.relation_set(&relation.id, &data)
            .with_context(|| format!("sending the certificate request in {}", relation.id))?;
    }
    if decision.accept_answer {
        let verified = observed
            .verified
            .context("an accepted answer comes verified")?;
        log::info!("TLS: installing the provider's certificate");
        kept.keep_accepted(&CertAndCa {
            certificate: verified.certificate_chain,
            ca: verified.ca,
        })?;
    }
    if decision.forget_accepted {
        log::info!("TLS: no longer serving the provider's certificate");
        kept.forget_accepted()?;
    }
    Ok(())
}

/// The decision's problem as the unit's status shows it: a wait while the
/// provider may still answer, blocked when it refused or sent something
/// the unit will not install.
pub fn status_problem(problem: &decide::Problem) -> Problem {
    let message = format!("certificates: {problem}");
    match problem {
        decide::Problem::Denied { .. } | decide::Problem::Rejected { .. } => {
            Problem::Blocked(message)
        }
        decide::Problem::Waiting
        | decide::Problem::Revoked
        | decide::Problem::AcceptedUnusable(_) => Problem::Waiting(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::verify::Rejection;

    #[test]
    fn the_settings_point_at_the_files_quoted() {
        let files = ServedFiles {
            certificate: "/etc/postgresql/16/main/tls/cert.pem".into(),
            key: "/etc/postgresql/16/it's/tls/key.pem".into(),
        };
        let rendered: Vec<(String, String)> = settings(&files)
            .into_iter()
            .map(|s| (s.name, s.value))
            .collect();
        assert_eq!(
            rendered,
            [
                ("ssl".to_string(), "on".to_string()),
                (
                    "ssl_cert_file".to_string(),
                    "'/etc/postgresql/16/main/tls/cert.pem'".to_string()
                ),
                (
                    "ssl_key_file".to_string(),
                    "'/etc/postgresql/16/it''s/tls/key.pem'".to_string()
                ),
            ]
        );
    }

    #[test]
    fn update_status_converges_when_a_kept_certificate_is_due() {
        let dir = std::env::temp_dir().join(format!("tls-due-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = StateDir::at(&dir);
        let kept = Kept::new(state.clone());
        let key = kept.ensure_key().unwrap();
        let (identity, _) = required_sans(&SanInputs {
            hostname: "db-0",
            fqdn: None,
            addresses: &["10.0.0.5"],
        });
        let now = OffsetDateTime::now_utc();
        assert!(!renewal_due(&state, now), "nothing kept, nothing due");
        let day = Duration::from_secs(86400);
        let own = self_signed(&key, &identity, &Validity::starting(now, day * 100)).unwrap();
        kept.keep_own(&CertAndCa {
            certificate: own.clone(),
            ca: own,
        })
        .unwrap();
        assert!(!renewal_due(&state, now));
        assert!(!renewal_due(&state, now + day * 80));
        assert!(renewal_due(&state, now + day * 91), "10% left");
        assert!(renewal_due(&state, now + day * 200), "expired");
        kept.keep_accepted(&CertAndCa {
            certificate: "garbage".into(),
            ca: "garbage".into(),
        })
        .unwrap();
        assert!(renewal_due(&state, now), "an unreadable one is replaced");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_relation_hook_asks_only_for_its_own_address_and_unknown_ones() {
        let db4 = RelationId::new("db", 4);
        let db5 = RelationId::new("db", 5);
        let cases = [
            // (hook, relation, known, asks)
            (None, &db4, true, true),
            (None, &db4, false, true),
            (Some(&db4), &db4, true, true),
            (Some(&db4), &db5, true, false),
            (Some(&db4), &db5, false, true),
        ];
        for (hook, id, known, asks) in cases {
            assert_eq!(asks_for(hook, id, known), asks, "{hook:?} {id} {known}");
        }
    }

    #[test]
    fn refusals_block_and_waits_wait() {
        let rejected = decide::Problem::Rejected {
            rejection: Rejection::KeyMismatch,
            serving: Serve::Own,
        };
        let denied = decide::Problem::Denied {
            message: "ip_not_allowed (101): no".into(),
            serving: Serve::Provider,
        };
        for (problem, blocked) in [
            (rejected, true),
            (denied, true),
            (decide::Problem::Waiting, false),
            (decide::Problem::Revoked, false),
            (
                decide::Problem::AcceptedUnusable(decide::Unusable::Expired),
                false,
            ),
        ] {
            let status = status_problem(&problem);
            assert_eq!(
                matches!(status, Problem::Blocked(_)),
                blocked,
                "{problem:?}"
            );
            assert!(status.message().starts_with("certificates: "), "{status:?}");
            assert!(status.message().contains(&problem.to_string()));
        }
    }
}
