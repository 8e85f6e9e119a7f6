//! TLS for the unit's PostgreSQL (issue 14): the building blocks, each
//! usable and tested on its own, and [`serve`], the one call the converge
//! makes.
//!
//! * [`sans`]: which names and addresses the unit's certificate must carry
//!   (pure).
//! * [`key`]: the unit's private key, made on the unit, never printed.
//! * [`issue`]: the unit's own certificate (self-signed, or issued by a CA
//!   kept as PEM: the internal CA), and the CSR for `tls-certificates`.
//! * [`internal_ca`]: the application's CA, made by the leader and kept in
//!   an application secret, that signs every unit's own certificate.
//! * [`wire`]: the `tls-certificates` v4 relation data, both sides' keys.
//! * [`verify`]: what a provider sends is checked before it is installed
//!   (key, SANs, dates, CA, signatures); the facts of kept certificates.
//! * [`decide`]: which certificate to serve, and what to make or request
//!   (pure, the clock an input).
//! * [`files`]: the key and certificate files PostgreSQL reads.
//! * [`serve`]: observe, decide, apply on every hook; the settings that
//!   point PostgreSQL at the files.
//!
//! Crates: rcgen makes keys, requests and certificates; x509-parser reads
//! certificates and requests; rustls-webpki verifies chains as TLS clients
//! do. All on ring; nothing shells out to `openssl`.

pub mod decide;
pub mod files;
pub mod internal_ca;
pub mod issue;
pub mod key;
pub mod sans;
pub mod serve;
pub mod verify;
pub mod wire;

pub use decide::{decide, Decision, Facts, Problem, Serve};
pub use issue::{certificate_request, self_signed, CertificateAuthority, Validity};
pub use key::PrivateKey;
pub use sans::{required_sans, Identity, SanInputs, Sans};
pub use serve::{serve_unit, Served, ServedFiles};
pub use verify::{verify_offered, Offered, Rejection, Verified};

/// The unit's certificate endpoint (`requires`, metadata.yaml).
pub const ENDPOINT: &str = "certificates";
/// Its interface.
pub const INTERFACE: &str = "tls-certificates";
