//! Which certificate the unit serves, and what it must make or ask for
//! (pure; the clock is an input).
//!
//! The unit always keeps its **own** certificate fresh (signed by the
//! internal CA when it can read it, by itself until then): it is what it
//! serves without a `certificates` relation, and what it falls back to.
//! With the relation it keeps one request (CSR) in its unit bag for its key
//! and exactly its required SANs, and serves the provider's certificate:
//!
//! * the provider's **answer** to the current request, when it verified
//!   ([`crate::tls::verify::verify_offered`]); it becomes the **accepted**
//!   certificate (kept beside the unit's own, so that a later bad answer
//!   does not take it away);
//! * else the accepted one while it is still usable (valid now, the unit's
//!   key, every required SAN) and the provider has not revoked it;
//! * else the unit's own. The status then says why.
//!
//! A certificate is renewed once less than [`Renewal::remaining_percent`]
//! of its lifetime is left (the v4 library renews at 90% elapsed, so 10 is
//! its equivalent): the own one by re-issuing it, the provider's by sending
//! a new request for the same key, while the current one is served until
//! the new answer arrives. A provider's new CA arrives as a new answer to
//! the current request (providers re-sign outstanding requests after
//! rotating their CA) and is accepted like any other answer that verifies.

use std::fmt;

use time::OffsetDateTime;

use super::issue::Validity;
use super::verify::Rejection;

/// Who signed a certificate, as far as the charm can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    SelfSigned,
    /// A CA, by its public key (DER `SubjectPublicKeyInfo`).
    Ca(Vec<u8>),
    /// Neither the certificate itself nor the CA it was checked against.
    Other,
}

/// How a certificate's SANs compare with those the unit requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanMatch {
    Exact,
    /// Every required one, and others besides (names no longer used, or a
    /// wildcard).
    Covers,
    Missing(Vec<String>),
}

impl SanMatch {
    fn covers(&self) -> bool {
        !matches!(self, SanMatch::Missing(_))
    }
}

/// The public facts of a certificate the unit holds or was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub validity: Validity,
    pub sans: SanMatch,
    /// Its public key is the unit's.
    pub matches_key: bool,
    pub signer: Signer,
}

/// The provider's answer to the unit's current request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Nothing yet (or no request yet).
    Waiting,
    /// `request_errors` names the request; the provider's message.
    Denied(String),
    /// The certificate for the request is marked `revoked`.
    Revoked,
    /// It was sent but fails verification.
    Rejected(Rejection),
    /// It verified.
    Valid(Held),
}

/// The request (CSR) in the unit's bag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub sans: SanMatch,
    pub matches_key: bool,
}

/// The `certificates` relation, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub request: Option<Request>,
    pub answer: Answer,
}

/// When to renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// Renew once less than this share of the lifetime is left (1-99).
    pub remaining_percent: u8,
}

impl Default for Renewal {
    fn default() -> Self {
        Renewal {
            remaining_percent: 10,
        }
    }
}

impl Renewal {
    pub fn is_due(&self, validity: &Validity, now: OffsetDateTime) -> bool {
        let lifetime = validity.not_after - validity.not_before;
        let margin = lifetime * (f64::from(self.remaining_percent.clamp(1, 99)) / 100.0);
        now >= validity.not_after - margin
    }
}

/// Everything the decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub now: OffsetDateTime,
    pub renewal: Renewal,
    /// The unit's own certificate, when it has one.
    pub own: Option<Held>,
    /// Who should sign the own certificate now: the internal CA once the
    /// unit can read it, else the certificate itself.
    pub own_signer: Signer,
    /// The provider's certificate accepted earlier, when one is kept.
    pub accepted: Option<Held>,
    pub relation: Option<Relation>,
}

/// Why a certificate or request is made anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Missing,
    KeyChanged,
    SansChanged,
    SignerChanged,
    Renewal,
    Expired,
    NotYetValid,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Why::Missing => "there is none",
            Why::KeyChanged => "the unit's key changed",
            Why::SansChanged => "the names and addresses clients use changed",
            Why::SignerChanged => "the CA that should sign it changed",
            Why::Renewal => "it is due for renewal",
            Why::Expired => "it expired",
            Why::NotYetValid => "it is not valid yet",
        })
    }
}

/// Which certificate PostgreSQL serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    Own,
    /// The accepted provider certificate (the answer, when it is accepted
    /// by this decision).
    Provider,
}

/// Why an accepted certificate is no longer served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    Expired,
    NotYetValid,
    Missing(Vec<String>),
    KeyChanged,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Expired => f.write_str("expired"),
            Unusable::NotYetValid => f.write_str("is not valid yet"),
            Unusable::Missing(sans) => write!(f, "lacks {}", sans.join(", ")),
            Unusable::KeyChanged => f.write_str("is for another key"),
        }
    }
}

/// What the status should say while the provider's certificate is not
/// (or not freshly) served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Waiting,
    Denied {
        message: String,
        serving: Serve,
    },
    Revoked,
    Rejected {
        rejection: Rejection,
        serving: Serve,
    },
    AcceptedUnusable(Unusable),
}

impl fmt::Display for Serve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Serve::Own => "serving the unit's own certificate",
            Serve::Provider => "serving the provider's previous certificate",
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let own = Serve::Own;
        match self {
            Problem::Waiting => write!(f, "waiting for a certificate from the provider; {own}"),
            Problem::Denied { message, serving } => {
                write!(
                    f,
                    "the provider refused the certificate request: {message}; {serving}"
                )
            }
            Problem::Revoked => write!(f, "the provider revoked the certificate; {own}"),
            Problem::Rejected { rejection, serving } => {
                write!(
                    f,
                    "provider certificate not installed: {rejection}; {serving}"
                )
            }
            Problem::AcceptedUnusable(why) => write!(f, "the provider's certificate {why}; {own}"),
        }
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Issue the own certificate anew.
    pub reissue_own: Option<Why>,
    /// Put a new request in the unit bag (replacing any other).
    pub send_request: Option<Why>,
    /// Keep the answer as the accepted certificate.
    pub accept_answer: bool,
    /// Delete the accepted certificate.
    pub forget_accepted: bool,
    pub serve: Serve,
    pub problem: Option<Problem>,
}

fn time_problem(validity: &Validity, now: OffsetDateTime) -> Option<Why> {
    if now < validity.not_before {
        Some(Why::NotYetValid)
    } else if now > validity.not_after {
        Some(Why::Expired)
    } else {
        None
    }
}

fn own_reissue(facts: &Facts) -> Option<Why> {
    let Some(own) = &facts.own else {
        return Some(Why::Missing);
    };
    if !own.matches_key {
        Some(Why::KeyChanged)
    } else if own.sans != SanMatch::Exact {
        Some(Why::SansChanged)
    } else if own.signer != facts.own_signer {
        Some(Why::SignerChanged)
    } else if let Some(why) = time_problem(&own.validity, facts.now) {
        Some(why)
    } else if facts.renewal.is_due(&own.validity, facts.now) {
        Some(Why::Renewal)
    } else {
        None
    }
}

fn request_renewal(relation: &Relation, facts: &Facts) -> Option<Why> {
    let Some(request) = &relation.request else {
        return Some(Why::Missing);
    };
    if !request.matches_key {
        return Some(Why::KeyChanged);
    }
    if request.sans != SanMatch::Exact {
        return Some(Why::SansChanged);
    }
    match &relation.answer {
        Answer::Valid(held) if facts.renewal.is_due(&held.validity, facts.now) => {
            Some(Why::Renewal)
        }
        // An honest provider's certificate expires when the unit missed
        // its renewal (it was down): only a new request helps.
        Answer::Rejected(Rejection::Expired { .. }) => Some(Why::Expired),
        _ => None,
    }
}

fn unusable(held: &Held, now: OffsetDateTime) -> Option<Unusable> {
    if !held.matches_key {
        return Some(Unusable::KeyChanged);
    }
    if let SanMatch::Missing(sans) = &held.sans {
        return Some(Unusable::Missing(sans.clone()));
    }
    match time_problem(&held.validity, now) {
        Some(Why::NotYetValid) => Some(Unusable::NotYetValid),
        Some(_) => Some(Unusable::Expired),
        None => None,
    }
}

/// The decision (see the module documentation).
pub fn decide(facts: &Facts) -> Decision {
    let reissue_own = own_reissue(facts);
    let Some(relation) = &facts.relation else {
        return Decision {
            reissue_own,
            send_request: None,
            accept_answer: false,
            forget_accepted: facts.accepted.is_some(),
            serve: Serve::Own,
            problem: None,
        };
    };
    let send_request = request_renewal(relation, facts);
    if let Answer::Valid(held) = &relation.answer {
        debug_assert!(held.sans.covers() && held.matches_key);
        return Decision {
            reissue_own,
            send_request,
            accept_answer: true,
            forget_accepted: false,
            serve: Serve::Provider,
            problem: None,
        };
    }
    let accepted_unusable = facts.accepted.as_ref().map(|a| unusable(a, facts.now));
    let keep_accepted =
        matches!(accepted_unusable, Some(None)) && relation.answer != Answer::Revoked;
    let serve = if keep_accepted {
        Serve::Provider
    } else {
        Serve::Own
    };
    // A request made anew makes the answer to the old one moot.
    let answer = if send_request.is_some() {
        &Answer::Waiting
    } else {
        &relation.answer
    };
    let problem = match answer {
        Answer::Rejected(rejection) => Some(Problem::Rejected {
            rejection: rejection.clone(),
            serving: serve,
        }),
        Answer::Denied(message) => Some(Problem::Denied {
            message: message.clone(),
            serving: serve,
        }),
        Answer::Revoked => Some(Problem::Revoked),
        Answer::Waiting | Answer::Valid(_) if keep_accepted => None,
        Answer::Waiting | Answer::Valid(_) => match accepted_unusable {
            Some(Some(why)) => Some(Problem::AcceptedUnusable(why)),
            _ => Some(Problem::Waiting),
        },
    };
    Decision {
        reissue_own,
        send_request,
        accept_answer: false,
        forget_accepted: facts.accepted.is_some() && !keep_accepted,
        serve,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(86400);

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
    }

    /// A 100-day certificate that started `age_days` ago.
    fn aged(age_days: u64) -> Validity {
        let start = now() - DAY * age_days as u32;
        Validity {
            not_before: start,
            not_after: start + DAY * 100,
        }
    }

    fn ca() -> Signer {
        Signer::Ca(vec![1, 2, 3])
    }

    fn held(validity: Validity) -> Held {
        Held {
            validity,
            sans: SanMatch::Exact,
            matches_key: true,
            signer: Signer::SelfSigned,
        }
    }

    fn fresh() -> Held {
        held(aged(1))
    }

    fn expiring() -> Held {
        held(aged(95))
    }

    fn expired() -> Held {
        held(aged(101))
    }

    fn future() -> Held {
        let mut h = held(aged(0));
        h.validity.not_before = now() + DAY;
        h
    }

    fn missing() -> Held {
        Held {
            sans: SanMatch::Missing(vec!["10.0.0.9".into()]),
            ..fresh()
        }
    }

    fn covers() -> Held {
        Held {
            sans: SanMatch::Covers,
            ..fresh()
        }
    }

    fn foreign_key() -> Held {
        Held {
            matches_key: false,
            ..fresh()
        }
    }

    fn signed_by(signer: Signer) -> Held {
        Held { signer, ..fresh() }
    }

    fn request() -> Option<Request> {
        Some(Request {
            sans: SanMatch::Exact,
            matches_key: true,
        })
    }

    fn facts(own: Option<Held>, accepted: Option<Held>, relation: Option<Relation>) -> Facts {
        Facts {
            now: now(),
            renewal: Renewal::default(),
            own,
            own_signer: Signer::SelfSigned,
            accepted,
            relation,
        }
    }

    fn related(request: Option<Request>, answer: Answer) -> Option<Relation> {
        Some(Relation { request, answer })
    }

    fn rejected_key() -> Answer {
        Answer::Rejected(Rejection::KeyMismatch)
    }

    fn rejected_expired() -> Answer {
        Answer::Rejected(Rejection::Expired {
            not_after: "2030-03-17T17:46:40Z".into(),
        })
    }

    #[test]
    fn renewal_is_due_in_the_last_share_of_the_lifetime() {
        let r = Renewal::default();
        assert!(!r.is_due(&aged(0), now()));
        assert!(!r.is_due(&aged(89), now()));
        assert!(r.is_due(&aged(90), now()));
        assert!(r.is_due(&aged(150), now()));
        let third = Renewal {
            remaining_percent: 34,
        };
        assert!(!third.is_due(&aged(65), now()));
        assert!(third.is_due(&aged(67), now()));
    }

    /// The expected decision, built up from "serve this, nothing else".
    fn serving(serve: Serve) -> Decision {
        Decision {
            reissue_own: None,
            send_request: None,
            accept_answer: false,
            forget_accepted: false,
            serve,
            problem: None,
        }
    }

    impl Decision {
        fn reissue(mut self, why: Why) -> Self {
            self.reissue_own = Some(why);
            self
        }
        fn request(mut self, why: Why) -> Self {
            self.send_request = Some(why);
            self
        }
        fn accept(mut self) -> Self {
            self.accept_answer = true;
            self
        }
        fn forget(mut self) -> Self {
            self.forget_accepted = true;
            self
        }
        fn problem(mut self, problem: Problem) -> Self {
            self.problem = Some(problem);
            self
        }
    }

    fn rejected(rejection: Rejection, serving: Serve) -> Problem {
        Problem::Rejected { rejection, serving }
    }

    fn request_for(sans: SanMatch, matches_key: bool) -> Option<Request> {
        Some(Request { sans, matches_key })
    }

    #[test]
    fn table() {
        use Answer::*;
        use Serve::*;
        let mut ca_arrived = facts(Some(fresh()), None, None);
        ca_arrived.own_signer = ca();
        let mut ca_signed = facts(Some(signed_by(ca())), None, None);
        ca_signed.own_signer = ca();
        let new_san = || SanMatch::Missing(vec!["10.0.0.9".into()]);
        let denied = |m: &str| Denied(m.into());
        let denial = |m: &str, serving| Problem::Denied {
            message: m.into(),
            serving,
        };
        let rows: Vec<(&str, Facts, Decision)> =
            vec![
                // Without the relation: the own certificate, kept fresh.
                (
                    "first hook",
                    facts(None, None, None),
                    serving(Own).reissue(Why::Missing),
                ),
                ("all well", facts(Some(fresh()), None, None), serving(Own)),
                (
                    "own due",
                    facts(Some(expiring()), None, None),
                    serving(Own).reissue(Why::Renewal),
                ),
                (
                    "own expired",
                    facts(Some(expired()), None, None),
                    serving(Own).reissue(Why::Expired),
                ),
                (
                    "clock went back",
                    facts(Some(future()), None, None),
                    serving(Own).reissue(Why::NotYetValid),
                ),
                (
                    "new address",
                    facts(Some(missing()), None, None),
                    serving(Own).reissue(Why::SansChanged),
                ),
                (
                    "address gone",
                    facts(Some(covers()), None, None),
                    serving(Own).reissue(Why::SansChanged),
                ),
                (
                    "key replaced",
                    facts(Some(foreign_key()), None, None),
                    serving(Own).reissue(Why::KeyChanged),
                ),
                (
                    "internal CA arrived",
                    ca_arrived,
                    serving(Own).reissue(Why::SignerChanged),
                ),
                ("signed by the CA", ca_signed, serving(Own)),
                (
                    "relation removed",
                    facts(Some(fresh()), Some(fresh()), None),
                    serving(Own).forget(),
                ),
                // Related: request, then serve what verifies.
                (
                    "just related",
                    facts(Some(fresh()), None, related(None, Waiting)),
                    serving(Own).request(Why::Missing).problem(Problem::Waiting),
                ),
                (
                    "waiting",
                    facts(Some(fresh()), None, related(request(), Waiting)),
                    serving(Own).problem(Problem::Waiting),
                ),
                (
                    "answered",
                    facts(Some(fresh()), None, related(request(), Valid(fresh()))),
                    serving(Provider).accept(),
                ),
                (
                    "answer with extra SANs",
                    facts(Some(fresh()), None, related(request(), Valid(covers()))),
                    serving(Provider).accept(),
                ),
                (
                    "new CA, same request",
                    facts(
                        Some(fresh()),
                        Some(fresh()),
                        related(request(), Valid(signed_by(ca()))),
                    ),
                    serving(Provider).accept(),
                ),
                (
                    "provider certificate due",
                    facts(
                        Some(fresh()),
                        Some(expiring()),
                        related(request(), Valid(expiring())),
                    ),
                    serving(Provider).accept().request(Why::Renewal),
                ),
                (
                    "renewal pending",
                    facts(Some(fresh()), Some(expiring()), related(request(), Waiting)),
                    serving(Provider),
                ),
                (
                    "renewal answered badly",
                    facts(
                        Some(fresh()),
                        Some(fresh()),
                        related(request(), rejected_key()),
                    ),
                    serving(Provider).problem(rejected(Rejection::KeyMismatch, Provider)),
                ),
                (
                    "bad first answer",
                    facts(Some(fresh()), None, related(request(), rejected_key())),
                    serving(Own).problem(rejected(Rejection::KeyMismatch, Own)),
                ),
                (
                    "missed the renewal",
                    facts(
                        Some(fresh()),
                        Some(expired()),
                        related(request(), rejected_expired()),
                    ),
                    serving(Own)
                        .request(Why::Expired)
                        .forget()
                        .problem(Problem::AcceptedUnusable(Unusable::Expired)),
                ),
                (
                    "accepted expired",
                    facts(Some(fresh()), Some(expired()), related(request(), Waiting)),
                    serving(Own)
                        .forget()
                        .problem(Problem::AcceptedUnusable(Unusable::Expired)),
                ),
                (
                    "accepted lacks a new SAN",
                    facts(
                        Some(fresh()),
                        Some(missing()),
                        related(request_for(new_san(), true), Waiting),
                    ),
                    serving(Own).request(Why::SansChanged).forget().problem(
                        Problem::AcceptedUnusable(Unusable::Missing(vec!["10.0.0.9".into()])),
                    ),
                ),
                (
                    "stale answer while re-requesting",
                    facts(
                        Some(fresh()),
                        Some(fresh()),
                        related(
                            request_for(SanMatch::Covers, true),
                            Rejected(Rejection::MissingSans {
                                missing: vec!["x".into()],
                            }),
                        ),
                    ),
                    serving(Provider).request(Why::SansChanged),
                ),
                (
                    "request for an old key",
                    facts(
                        Some(fresh()),
                        None,
                        related(request_for(SanMatch::Exact, false), rejected_key()),
                    ),
                    serving(Own)
                        .request(Why::KeyChanged)
                        .problem(Problem::Waiting),
                ),
                (
                    "revoked",
                    facts(Some(fresh()), Some(fresh()), related(request(), Revoked)),
                    serving(Own).forget().problem(Problem::Revoked),
                ),
                (
                    "denied",
                    facts(Some(fresh()), None, related(request(), denied("no IPs"))),
                    serving(Own).problem(denial("no IPs", Own)),
                ),
                (
                    "denied renewal",
                    facts(
                        Some(fresh()),
                        Some(fresh()),
                        related(request(), denied("busy")),
                    ),
                    serving(Provider).problem(denial("busy", Provider)),
                ),
                (
                    "own renewed while the provider's is served",
                    facts(
                        Some(expiring()),
                        Some(fresh()),
                        related(request(), Valid(fresh())),
                    ),
                    serving(Provider).accept().reissue(Why::Renewal),
                ),
            ];
        for (case, facts, want) in rows {
            assert_eq!(decide(&facts), want, "{case}");
        }
    }

    fn owns() -> Vec<Option<Held>> {
        vec![
            None,
            Some(fresh()),
            Some(expiring()),
            Some(expired()),
            Some(future()),
            Some(missing()),
            Some(covers()),
            Some(foreign_key()),
            Some(signed_by(ca())),
            Some(signed_by(Signer::Other)),
        ]
    }

    fn accepteds() -> Vec<Option<Held>> {
        vec![
            None,
            Some(fresh()),
            Some(expiring()),
            Some(expired()),
            Some(future()),
            Some(missing()),
            Some(foreign_key()),
        ]
    }

    fn relations() -> Vec<Option<Relation>> {
        let requests = [
            None,
            request(),
            Some(Request {
                sans: SanMatch::Covers,
                matches_key: true,
            }),
            Some(Request {
                sans: SanMatch::Missing(vec!["a".into()]),
                matches_key: true,
            }),
            Some(Request {
                sans: SanMatch::Exact,
                matches_key: false,
            }),
        ];
        let answers = [
            Answer::Waiting,
            Answer::Denied("no".into()),
            Answer::Revoked,
            rejected_key(),
            rejected_expired(),
            Answer::Rejected(Rejection::NotYetValid {
                not_before: "x".into(),
            }),
            Answer::Valid(fresh()),
            Answer::Valid(expiring()),
            Answer::Valid(covers()),
        ];
        let mut out = vec![None];
        for request in &requests {
            for answer in &answers {
                // Without a request there is nothing to answer.
                if request.is_none() && *answer != Answer::Waiting {
                    continue;
                }
                out.push(related(request.clone(), answer.clone()));
            }
        }
        out
    }

    /// Every combination of the inputs above, checked against the rules
    /// the module documentation states.
    #[test]
    fn every_combination_keeps_the_rules() {
        let mut seen = 0;
        for own_signer in [Signer::SelfSigned, ca()] {
            for own in owns() {
                for accepted in accepteds() {
                    for relation in relations() {
                        let f = Facts {
                            own_signer: own_signer.clone(),
                            ..facts(own.clone(), accepted.clone(), relation.clone())
                        };
                        check_rules(&f, &decide(&f));
                        seen += 1;
                    }
                }
            }
        }
        assert_eq!(seen, 2 * 10 * 7 * 38);
    }

    fn check_rules(f: &Facts, d: &Decision) {
        let ctx = format!("{f:#?}\n=> {d:#?}");
        let now = f.now;
        let own_ok = f.own.as_ref().is_some_and(|o| {
            o.matches_key
                && o.sans == SanMatch::Exact
                && o.signer == f.own_signer
                && o.validity.contains(now)
                && !f.renewal.is_due(&o.validity, now)
        });
        assert_eq!(d.reissue_own.is_none(), own_ok, "own certificate: {ctx}");
        let Some(relation) = &f.relation else {
            assert_eq!(d.serve, Serve::Own, "{ctx}");
            assert_eq!(d.send_request, None, "{ctx}");
            assert!(!d.accept_answer, "{ctx}");
            assert_eq!(d.forget_accepted, f.accepted.is_some(), "{ctx}");
            assert_eq!(d.problem, None, "{ctx}");
            return;
        };
        let valid = matches!(relation.answer, Answer::Valid(_));
        assert_eq!(d.accept_answer, valid, "{ctx}");
        let accepted_usable = f
            .accepted
            .as_ref()
            .is_some_and(|a| a.matches_key && a.sans.covers() && a.validity.contains(now));
        if d.serve == Serve::Provider {
            assert!(
                valid || (accepted_usable && relation.answer != Answer::Revoked),
                "never serve a provider certificate that is not usable: {ctx}"
            );
        } else {
            assert!(!valid, "a verified answer is served: {ctx}");
            assert!(d.problem.is_some(), "serving the own one says why: {ctx}");
        }
        if valid {
            assert_eq!(d.problem, None, "{ctx}");
            assert!(!d.forget_accepted, "{ctx}");
        }
        if d.forget_accepted {
            assert_eq!(d.serve, Serve::Own, "{ctx}");
        }
        let request_ok = relation
            .request
            .as_ref()
            .is_some_and(|r| r.matches_key && r.sans == SanMatch::Exact);
        if !request_ok {
            assert!(
                d.send_request.is_some(),
                "a request for the unit's key and SANs: {ctx}"
            );
        }
        if let Answer::Valid(held) = &relation.answer {
            if request_ok {
                assert_eq!(
                    d.send_request.is_some(),
                    f.renewal.is_due(&held.validity, now),
                    "renew the provider's certificate when due: {ctx}"
                );
            }
        }
        if request_ok && matches!(relation.answer, Answer::Rejected(Rejection::Expired { .. })) {
            assert_eq!(d.send_request, Some(Why::Expired), "{ctx}");
        }
        if let Some(Problem::Rejected { serving, .. } | Problem::Denied { serving, .. }) =
            &d.problem
        {
            assert_eq!(*serving, d.serve, "{ctx}");
        }
    }

    #[test]
    fn problems_read_as_status_messages() {
        let own = "serving the unit's own certificate";
        let cases = [
            (
                Problem::Waiting,
                format!("waiting for a certificate from the provider; {own}"),
            ),
            (
                Problem::Denied {
                    message: "no IPs".into(),
                    serving: Serve::Own,
                },
                format!("the provider refused the certificate request: no IPs; {own}"),
            ),
            (
                Problem::Revoked,
                format!("the provider revoked the certificate; {own}"),
            ),
            (
                rejected(Rejection::KeyMismatch, Serve::Provider),
                "provider certificate not installed: it does not match this unit's private \
                 key; serving the provider's previous certificate"
                    .to_string(),
            ),
            (
                Problem::AcceptedUnusable(Unusable::Missing(vec![
                    "10.0.0.9".into(),
                    "db.example".into(),
                ])),
                format!("the provider's certificate lacks 10.0.0.9, db.example; {own}"),
            ),
        ];
        for (problem, text) in cases {
            assert_eq!(problem.to_string(), text);
        }
    }
}
