//! The `tls-certificates` interface (v1) as the v4 library
//! (`charmlibs-interfaces-tls-certificates`) writes and reads it.
//!
//! * Requirer **unit** bag (the library's `Mode.UNIT`):
//!   `certificate_signing_requests` = JSON list of
//!   `{"certificate_signing_request": <PEM, stripped>, "ca": false}`.
//! * Provider **application** bag: `certificates` = JSON list of
//!   `{"certificate_signing_request", "certificate", "ca", "chain": [..],
//!   "revoked"?}` (PEM strings; `chain` leaf first), and `request_errors` =
//!   JSON list of `{"csr", "error": {"code", "name", "message", "reason"?,
//!   ...}}`. A request is in one or the other, never both.
//!
//! Provider data is remote input: anything that does not parse is reported
//! as such, never trusted. Entries are matched to the unit's request by the
//! DER of the CSR, not its text (the library re-encodes PEM).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::decide::Answer;
use super::key::PrivateKey;
use super::sans::Sans;
use super::verify::{same_pem, verify_offered, Offered, Rejection, Verified};

/// The requirer bag key holding its requests.
pub const REQUESTS: &str = "certificate_signing_requests";
/// The provider application bag key holding its certificates.
pub const CERTIFICATES: &str = "certificates";
/// The provider application bag key holding refused requests.
pub const REQUEST_ERRORS: &str = "request_errors";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RequestEntry {
    certificate_signing_request: String,
    #[serde(default)]
    ca: Option<bool>,
}

/// The value of [`REQUESTS`] for the unit's one request (a server
/// certificate, `ca: false`).
pub fn requests_value(csr: &str) -> String {
    let entries = [RequestEntry {
        certificate_signing_request: csr.trim().to_string(),
        ca: Some(false),
    }];
    serde_json::to_string(&entries).expect("strings serialise")
}

/// The CSRs (PEM) in a [`REQUESTS`] value.
pub fn requests_in(value: &str) -> Result<Vec<String>, String> {
    let entries: Vec<RequestEntry> = serde_json::from_str(value)
        .map_err(|e| format!("{REQUESTS} is not the expected JSON: {e}"))?;
    Ok(entries
        .into_iter()
        .map(|e| e.certificate_signing_request)
        .collect())
}

/// One entry of [`CERTIFICATES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderCertificate {
    pub certificate_signing_request: String,
    pub certificate: String,
    pub ca: String,
    #[serde(default)]
    pub chain: Option<Vec<String>>,
    #[serde(default)]
    pub revoked: Option<bool>,
}

/// The entries of a [`CERTIFICATES`] value.
pub fn certificates_in(value: &str) -> Result<Vec<ProviderCertificate>, String> {
    serde_json::from_str(value).map_err(|e| format!("{CERTIFICATES} is not the expected JSON: {e}"))
}

/// The error a provider reports for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateError {
    pub code: i64,
    pub name: String,
    pub message: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// One entry of [`REQUEST_ERRORS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestError {
    pub csr: String,
    pub error: CertificateError,
}

/// The entries of a [`REQUEST_ERRORS`] value.
pub fn request_errors_in(value: &str) -> Result<Vec<RequestError>, String> {
    serde_json::from_str(value)
        .map_err(|e| format!("{REQUEST_ERRORS} is not the expected JSON: {e}"))
}

/// The provider's answer to `csr` (PEM), read from its application bag's
/// [`CERTIFICATES`] and [`REQUEST_ERRORS`] values, checked with
/// [`verify_offered`]; the verified certificate beside it when it passed.
pub fn read_answer(
    certificates: Option<&str>,
    request_errors: Option<&str>,
    csr: &str,
    key: &PrivateKey,
    required: &Sans,
    now: OffsetDateTime,
) -> (Answer, Option<Verified>) {
    let unreadable = |detail: String| Rejection::Unreadable {
        part: "provider's relation data".into(),
        detail,
    };
    let entries = match parsed(certificates, certificates_in) {
        Ok(entries) => entries,
        Err(e) => return (Answer::Rejected(unreadable(e)), None),
    };
    if let Some(entry) = entries
        .iter()
        .find(|e| same_pem(&e.certificate_signing_request, csr))
    {
        if entry.revoked == Some(true) {
            return (Answer::Revoked, None);
        }
        let chain = entry.chain.clone().unwrap_or_default();
        let offered = Offered {
            certificate: &entry.certificate,
            ca: &entry.ca,
            chain: &chain,
        };
        return match verify_offered(&offered, key, required, now) {
            Ok(verified) => (Answer::Valid(verified.held.clone()), Some(verified)),
            Err(rejection) => (Answer::Rejected(rejection), None),
        };
    }
    let errors = match parsed(request_errors, request_errors_in) {
        Ok(errors) => errors,
        Err(e) => return (Answer::Rejected(unreadable(e)), None),
    };
    match errors.iter().find(|e| same_pem(&e.csr, csr)) {
        Some(e) => (Answer::Denied(denial(&e.error)), None),
        None => (Answer::Waiting, None),
    }
}

/// A bag value's entries; none when the key is absent or empty.
fn parsed<T>(
    value: Option<&str>,
    parse: fn(&str) -> Result<Vec<T>, String>,
) -> Result<Vec<T>, String> {
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok(Vec::new()),
        Some(value) => parse(value),
    }
}

/// A provider's error as one line for the status (its text is remote
/// input: control characters go, and it is bounded).
fn denial(error: &CertificateError) -> String {
    let mut text = format!("{} ({}): {}", error.name, error.code, error.message);
    if let Some(reason) = &error.reason {
        text.push_str(" - ");
        text.push_str(reason);
    }
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::issue::certificate_request;
    use crate::tls::verify::tests::{ca, identity, now, sign, Leaf};
    use serde_json::{json, Value};

    fn entry(csr: &str, cert: &str, ca: &str, extra: Value) -> Value {
        let mut entry = json!({
            "certificate_signing_request": csr.trim(),
            "certificate": cert.trim(),
            "ca": ca.trim(),
            "chain": [cert.trim(), ca.trim()],
        });
        for (k, v) in extra.as_object().unwrap() {
            entry[k] = v.clone();
        }
        entry
    }

    #[test]
    fn the_request_is_what_the_library_writes() {
        let key = PrivateKey::generate().unwrap();
        let csr = certificate_request(&key, &identity()).unwrap();
        let value = requests_value(&csr);
        let parsed: Value = serde_json::from_str(&value).unwrap();
        assert_eq!(
            parsed,
            json!([{"certificate_signing_request": csr.trim(), "ca": false}])
        );
        assert_eq!(requests_in(&value).unwrap(), [csr.trim()]);
        // What the library itself may leave: `ca` null, extra keys.
        let theirs = r#"[{"certificate_signing_request": "X", "ca": null, "other": 1}]"#;
        assert_eq!(requests_in(theirs).unwrap(), ["X"]);
        assert!(requests_in("{").is_err());
    }

    #[test]
    fn provider_entries_parse_with_optional_fields() {
        let value = r#"[
            {"certificate_signing_request": "R", "certificate": "C", "ca": "A"},
            {"certificate_signing_request": "R2", "certificate": "C2", "ca": "A2",
             "chain": null, "revoked": true, "future": "field"}
        ]"#;
        let entries = certificates_in(value).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].chain, None);
        assert_eq!(entries[1].revoked, Some(true));
        for bad in [
            "",
            "[{}]",
            "{\"certificates\": []}",
            "[{\"certificate\": 1}]",
        ] {
            assert!(certificates_in(bad).is_err(), "{bad}");
        }
        let errors = request_errors_in(
            r#"[{"csr": "R", "error": {"code": 101, "name": "IP_NOT_ALLOWED", "message": "no IPs", "provider": "p"}}]"#,
        )
        .unwrap();
        assert_eq!(errors[0].error.code, 101);
    }

    #[test]
    fn the_answer_is_found_by_the_request_and_verified() {
        let key = PrivateKey::generate().unwrap();
        let sans = identity().sans;
        let csr = certificate_request(&key, &identity()).unwrap();
        let other_csr = certificate_request(&key, &identity()).unwrap();
        let provider = ca("provider CA");
        let cert = sign(&provider, key.pair(), Leaf::default());
        let answer = |certificates: Option<&str>, errors: Option<&str>| {
            read_answer(certificates, errors, &csr, &key, &sans, now())
        };

        assert_eq!(answer(None, None).0, Answer::Waiting);
        assert_eq!(answer(Some(""), Some("")).0, Answer::Waiting);

        // The library re-encodes PEM; matching is by DER.
        let rewrapped = csr.replace('\n', "\r\n");
        let ours = json!([entry(&rewrapped, &cert, &provider.pem, json!({}))]).to_string();
        let (got, verified) = answer(Some(&ours), None);
        assert!(matches!(got, Answer::Valid(_)), "{got:?}");
        assert!(verified
            .unwrap()
            .certificate_chain
            .contains(cert.lines().nth(1).unwrap()));

        let theirs = json!([entry(&other_csr, &cert, &provider.pem, json!({}))]).to_string();
        assert_eq!(answer(Some(&theirs), None).0, Answer::Waiting);

        let revoked =
            json!([entry(&csr, &cert, &provider.pem, json!({"revoked": true}))]).to_string();
        assert_eq!(answer(Some(&revoked), None), (Answer::Revoked, None));

        let stranger = ca("another CA");
        let bad = json!([entry(&csr, &cert, &stranger.pem, json!({}))]).to_string();
        assert!(matches!(
            answer(Some(&bad), None).0,
            Answer::Rejected(Rejection::NotSignedByCa { .. })
        ));

        let denied = json!([{"csr": csr, "error": {"code": 101, "name": "IP_NOT_ALLOWED",
            "message": "IP SANs are not allowed\nby policy", "reason": "vault role"}}])
        .to_string();
        assert_eq!(
            answer(None, Some(&denied)).0,
            Answer::Denied(
                "IP_NOT_ALLOWED (101): IP SANs are not allowed by policy - vault role".into()
            )
        );

        for garbage in ["{not json", "[{\"certificate\": 5}]"] {
            match answer(Some(garbage), None).0 {
                Answer::Rejected(Rejection::Unreadable { part, .. }) => {
                    assert_eq!(part, "provider's relation data")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_denial_is_one_bounded_line() {
        let long = CertificateError {
            code: 999,
            name: "OTHER".into(),
            message: "x\u{7}\r\n".repeat(300),
            reason: None,
        };
        let text = denial(&long);
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert_eq!(text.chars().count(), 201);
    }
}
