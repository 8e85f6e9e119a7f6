//! The TLS provider fixture (`tests/tls-provider-charm`: a CA built on the
//! v4 `tls-certificates` library, as the self-signed-certificates operator
//! is) against a stand-in requirer the test plays itself, under the Juju
//! emulator. The test makes the unit's key and CSR with the charm's `tls`
//! module, writes the request into the requirer's unit bag as the v4
//! library does (`certificate_signing_requests`), and checks the provider's
//! answer in its application bag (`certificates`, `request_errors`) with
//! the charm's own verification: so the charm's CSR is one the real library
//! signs, its reading of the wire format is the library's, and each way the
//! fixture can be told to misbehave is refused for its own reason.
//!
//! How later tests use the fixture:
//! * `scenarios::tls_provider_charm()` fills its `venv/`
//!   (`scripts/consumer-venv`) and gives the directory to deploy;
//! * config `mode` picks a fault (config.yaml lists them), `ca-common-name`
//!   rotates the CA (revoked at once, re-signed from the next hook),
//!   `certificate-validity` sets the lifetime.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use juju_emulator::{DeployOptions, World};
use postgresql_charm::tls::decide::{self, Answer, Facts, Relation, Renewal, Request, SanMatch};
use postgresql_charm::tls::sans::{required_sans, Identity, SanInputs};
use postgresql_charm::tls::verify::{same_pem, Rejection, Verified};
use postgresql_charm::tls::wire::{self, CERTIFICATES, REQUESTS, REQUEST_ERRORS};
use postgresql_charm::tls::{certificate_request, PrivateKey, Serve};
use scenarios::{tls_provider_charm, Scratch};
use serde_json::Value;
use time::OffsetDateTime;

const PROVIDER: &str = "tls-provider";
const REQUIRER: &str = "requirer";

/// A requirer whose hooks do nothing: the test writes its bag.
fn requirer_charm(dir: &Path) -> PathBuf {
    let charm = dir.join("requirer-charm");
    std::fs::create_dir_all(&charm).unwrap();
    std::fs::write(
        charm.join("metadata.yaml"),
        "name: requirer\nsummary: s\ndescription: d\n\
         requires:\n  certificates:\n    interface: tls-certificates\n",
    )
    .unwrap();
    let dispatch = charm.join("dispatch");
    std::fs::write(&dispatch, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&dispatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    charm
}

struct Site {
    world: World,
    relation: u64,
    key: PrivateKey,
    identity: Identity,
    csr: String,
    _scratch: Scratch,
}

fn identity() -> Identity {
    required_sans(&SanInputs {
        hostname: "juju-4f2a1c-0",
        fqdn: Some("juju-4f2a1c-0.maas.example"),
        addresses: &["10.20.0.5", "198.51.100.7"],
    })
    .0
}

fn site(name: &str) -> Site {
    let scratch = Scratch::new(&format!("tls-provider-{name}")).unwrap();
    let mut world = World::new(&scratch.0.join("world")).unwrap();
    world.add_model("tls");
    world
        .deploy(
            "tls",
            PROVIDER,
            &tls_provider_charm().unwrap(),
            DeployOptions::default(),
        )
        .unwrap();
    world
        .deploy(
            "tls",
            REQUIRER,
            &requirer_charm(&scratch.0),
            DeployOptions::default(),
        )
        .unwrap();
    world.settle().unwrap();
    let relation = world
        .integrate(
            &format!("{PROVIDER}:certificates"),
            &format!("{REQUIRER}:certificates"),
        )
        .unwrap();
    world.settle().unwrap();
    let key = PrivateKey::generate().unwrap();
    let identity = identity();
    let csr = certificate_request(&key, &identity).unwrap();
    let mut site = Site {
        world,
        relation,
        key,
        identity,
        csr: String::new(),
        _scratch: scratch,
    };
    site.request(&csr);
    site
}

impl Site {
    /// Puts `csr` in the requirer unit's bag, as the v4 library does.
    fn request(&mut self, csr: &str) {
        let value = wire::requests_value(csr);
        self.world
            .write_bag(
                self.relation,
                &format!("{REQUIRER}/0"),
                &[(REQUESTS, &value)],
            )
            .unwrap();
        self.world.settle().unwrap();
        self.csr = csr.to_string();
        self.assert_provider_healthy();
    }

    fn configure(&mut self, settings: &[(&str, &str)]) {
        self.world.set_config(PROVIDER, settings).unwrap();
        self.world.settle().unwrap();
        self.assert_provider_healthy();
    }

    fn update_status(&mut self) {
        let result = self
            .world
            .run_hook(&format!("{PROVIDER}/0"), "update-status")
            .unwrap();
        assert!(result.succeeded(), "update-status: {}", result.output());
        self.world.settle().unwrap();
    }

    fn provider_bag(&self, key: &str) -> Option<String> {
        self.world.bag(self.relation, PROVIDER)?.get(key).cloned()
    }

    /// The provider's answer to the current request, as the charm reads it.
    fn answer(&self) -> (Answer, Option<Verified>) {
        wire::read_answer(
            self.provider_bag(CERTIFICATES).as_deref(),
            self.provider_bag(REQUEST_ERRORS).as_deref(),
            &self.csr,
            &self.key,
            &self.identity.sans,
            OffsetDateTime::now_utc(),
        )
    }

    fn verified(&self) -> Verified {
        match self.answer() {
            (Answer::Valid(_), Some(verified)) => verified,
            other => panic!("expected a valid answer, got {other:?}"),
        }
    }

    fn rejection(&self) -> Rejection {
        match self.answer() {
            (Answer::Rejected(rejection), None) => rejection,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    /// The entries in the provider's `certificates` (raw JSON).
    fn entries(&self) -> Vec<Value> {
        let text = self
            .provider_bag(CERTIFICATES)
            .unwrap_or_else(|| "[]".into());
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Every provider hook succeeded, and it says it is serving.
    fn assert_provider_healthy(&self) {
        for hook in self.world.trace() {
            assert!(
                hook.succeeded(),
                "{} on {} failed:\n{}",
                hook.invocation.hook,
                hook.invocation.unit,
                hook.output()
            );
        }
        let status = &self.world.unit(&format!("{PROVIDER}/0")).unwrap().status;
        assert_ne!(status.status, "blocked", "{}", status.message);
    }
}

#[test]
fn the_fixture_signs_the_charms_request_and_the_charm_accepts_it() {
    let site = site("honest");

    // The wire format, as the provider library wrote it.
    let entries = site.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert!(same_pem(
        entry["certificate_signing_request"].as_str().unwrap(),
        &site.csr
    ));
    let chain: Vec<&str> = entry["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(chain.len(), 2, "chain is [certificate, CA]");
    assert!(same_pem(chain[0], entry["certificate"].as_str().unwrap()));
    assert!(same_pem(chain[1], entry["ca"].as_str().unwrap()));
    assert!(site.provider_bag(REQUEST_ERRORS).is_none_or(|v| v == "[]"));

    // The charm's verification accepts it for the key that made the request.
    let verified = site.verified();
    assert!(same_pem(&verified.ca, entry["ca"].as_str().unwrap()));
    assert!(same_pem(
        &verified.certificate_chain,
        entry["certificate"].as_str().unwrap()
    ));
    assert_eq!(verified.held.sans, SanMatch::Exact);

    // And the decision serves it.
    let facts = Facts {
        now: OffsetDateTime::now_utc(),
        renewal: Renewal::default(),
        own: None,
        own_signer: decide::Signer::SelfSigned,
        accepted: None,
        relation: Some(Relation {
            request: Some(Request {
                sans: SanMatch::Exact,
                matches_key: true,
            }),
            answer: Answer::Valid(verified.held.clone()),
        }),
    };
    let decision = decide::decide(&facts);
    assert_eq!(decision.serve, Serve::Provider);
    assert!(decision.accept_answer);
    assert_eq!(decision.send_request, None);

    // Another unit's key is not served by this certificate.
    let stranger = PrivateKey::generate().unwrap();
    let (answer, _) = wire::read_answer(
        site.provider_bag(CERTIFICATES).as_deref(),
        None,
        &site.csr,
        &stranger,
        &site.identity.sans,
        OffsetDateTime::now_utc(),
    );
    assert_eq!(answer, Answer::Rejected(Rejection::KeyMismatch));

    // The private key is in no bag and no log.
    let key_pem = site.key.to_pem();
    let body = key_pem.expose().lines().nth(1).unwrap();
    for owner in [PROVIDER, "tls-provider/0", REQUIRER, "requirer/0"] {
        if let Some(bag) = site.world.bag(site.relation, owner) {
            assert!(
                bag.values().all(|v| !v.contains(body)),
                "key in {owner}'s bag"
            );
        }
    }
    assert!(site.world.logs().iter().all(|r| !r.message.contains(body)));
}

#[test]
fn every_fault_the_fixture_can_make_is_refused_for_its_own_reason() {
    let mut site = site("faults");
    site.verified();

    site.configure(&[("mode", "wrong-sans")]);
    // The fixture leaves out the request's first SAN (DNS names sort first).
    assert_eq!(
        site.rejection(),
        Rejection::MissingSans {
            missing: vec!["juju-4f2a1c-0".into()]
        }
    );

    site.configure(&[("mode", "wrong-key")]);
    assert_eq!(site.rejection(), Rejection::KeyMismatch);

    site.configure(&[("mode", "expired")]);
    assert!(matches!(site.rejection(), Rejection::Expired { .. }));

    site.configure(&[("mode", "not-yet-valid")]);
    assert!(matches!(site.rejection(), Rejection::NotYetValid { .. }));

    site.configure(&[("mode", "ca-certificate")]);
    assert_eq!(site.rejection(), Rejection::CaCertificate);

    // Signed by a CA with exactly the real CA's subject: only the signature
    // tells them apart.
    site.configure(&[("mode", "wrong-ca")]);
    assert_eq!(
        site.rejection(),
        Rejection::NotSignedByCa {
            detail: "a signature does not verify with its issuer's key".into()
        }
    );

    site.configure(&[("mode", "deny")]);
    match site.answer() {
        (Answer::Denied(message), None) => assert_eq!(
            message,
            "SERVER_NOT_AVAILABLE (201): the fixture denies every request in mode deny"
        ),
        other => panic!("deny: {other:?}"),
    }
    assert!(
        site.entries().is_empty(),
        "a request is answered or refused, never both"
    );

    site.configure(&[("mode", "intermediate")]);
    let verified = site.verified();
    assert_eq!(
        verified
            .certificate_chain
            .matches("BEGIN CERTIFICATE")
            .count(),
        2,
        "the certificate is served with its intermediate"
    );

    site.configure(&[("mode", "honest")]);
    site.verified();

    // A provider whose data is not even JSON.
    site.world
        .write_bag(site.relation, PROVIDER, &[(CERTIFICATES, "{garbage")])
        .unwrap();
    site.world.settle().unwrap();
    assert!(matches!(site.rejection(), Rejection::Unreadable { .. }));
}

#[test]
fn a_rotated_ca_revokes_then_re_signs_with_the_new_ca() {
    let mut site = site("rotation");
    let before = site.verified();

    site.configure(&[("ca-common-name", "tls-provider-fixture CA 2")]);
    assert_eq!(site.answer(), (Answer::Revoked, None));

    // As the self-signed-certificates operator: signed again from the next hook.
    site.update_status();
    let after = site.verified();
    assert!(!same_pem(&after.ca, &before.ca), "a new CA");
    assert_ne!(after.held.signer, before.held.signer);

    // The old CA no longer vouches for the new certificate.
    let offered = postgresql_charm::tls::Offered {
        certificate: &after.certificate_chain,
        ca: &before.ca,
        chain: &[],
    };
    assert!(matches!(
        postgresql_charm::tls::verify_offered(
            &offered,
            &site.key,
            &site.identity.sans,
            OffsetDateTime::now_utc()
        ),
        Err(Rejection::NotSignedByCa { .. })
    ));
}

#[test]
fn a_renewal_request_replaces_the_old_one_and_gets_its_own_answer() {
    let mut site = site("renewal");
    let first = site.verified();
    let old_csr = site.csr.clone();

    // Same key, new request (as on renewal): the provider drops the answer
    // to the request that went away and answers the new one.
    let renewal = certificate_request(&site.key, &site.identity).unwrap();
    assert!(!same_pem(&renewal, &old_csr));
    site.request(&renewal);
    let second = site.verified();
    assert!(!same_pem(
        &first.certificate_chain,
        &second.certificate_chain
    ));
    let entries = site.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(same_pem(
        entries[0]["certificate_signing_request"].as_str().unwrap(),
        &renewal
    ));

    // New SANs (a new client relation's address) make a new request too.
    let mut wider = site.identity.clone();
    wider.sans.add("10.20.0.99").unwrap();
    let widened = certificate_request(&site.key, &wider).unwrap();
    site.identity = wider;
    site.request(&widened);
    assert!(site
        .verified()
        .certificate_chain
        .contains("-----BEGIN CERTIFICATE-----"));
}
