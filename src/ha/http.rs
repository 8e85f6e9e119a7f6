//! A minimal HTTP/1.1 client for Patroni's REST API: one request per
//! connection (`Connection: close`), JSON bodies, basic auth, timeouts.
//!
//! Why not a crate: the only server is Patroni's (Python's `http.server`,
//! which answers with `Content-Length` and closes), always at an address
//! the charm chose, over HTTPS with the internal CA ([`Trust`], rustls)
//! once the unit has one, plain HTTP before. ureq would add `url`/`idna`
//! and read proxy variables from the environment by default (3.x), which
//! must never apply to a unit's own address. What we need fits in a page.
//!
//! The password goes only into the `Authorization` header: errors name the
//! method and URL, never a header.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;

use crate::secret::Password;

/// Largest response read (Patroni's answers are a few kB).
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Basic-auth credentials.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    pub user: String,
    pub password: Password,
}

impl BasicAuth {
    fn header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The trust for HTTPS: the CA certificates a server's certificate must
/// chain to (the internal CA, [`crate::tls::internal_ca`]), and the name it
/// must carry, the address connected to.
#[derive(Debug, Clone)]
pub struct Trust(Arc<rustls::ClientConfig>);

impl Trust {
    /// Trust in the certificates of `pem` (one or more PEM certificates).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let certificates = crate::tls::verify::pem_certificates(pem)
            .map_err(|e| anyhow::anyhow!("reading the trusted CA certificates: {e}"))?;
        for der in certificates {
            roots
                .add(rustls::pki_types::CertificateDer::from(der))
                .context("a trusted CA certificate is unusable")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("setting up TLS")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Trust(Arc::new(config)))
    }

    /// Trust in the PEM file at `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_pem(&pem).with_context(|| format!("reading {}", path.display()))
    }
}

/// Sends `method path` to `host_port` (an `ip:port`) and reads the answer:
/// over HTTPS when `trust` is given, verifying the server.
///
/// A server that answers the TLS handshake in clear HTTP (a Patroni whose
/// configuration gained its certificate but that has not reloaded yet)
/// gets the request again over plain HTTP, but only a request without
/// credentials: the password is never sent in clear text to a server that
/// should speak TLS. A certificate that does not verify is an error, never
/// a reason to fall back.
pub fn request(
    host_port: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    auth: Option<&BasicAuth>,
    timeout: Duration,
    trust: Option<&Trust>,
) -> Result<Response> {
    let scheme = if trust.is_some() { "https" } else { "http" };
    let what = format!("{method} {scheme}://{host_port}{path}");
    let address: SocketAddr = host_port
        .to_socket_addrs()
        .with_context(|| format!("{what}: bad address"))?
        .next()
        .with_context(|| format!("{what}: bad address"))?;
    let connect = || -> Result<TcpStream> {
        let stream = TcpStream::connect_timeout(&address, timeout)
            .with_context(|| format!("{what}: cannot connect"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(stream)
    };
    let mut message = request_bytes(host_port, method, path, body, auth);
    let raw = match trust {
        None => exchange(connect()?, &mut message, &what),
        Some(trust) => match tls_stream(trust, address, connect()?) {
            Ok(stream) => exchange(stream, &mut message, &what),
            Err(e) if speaks_plain_http(&e) && auth.is_none() => {
                log::debug!("{what}: the server answered in plain HTTP; asking again over HTTP");
                exchange(connect()?, &mut message, &what)
            }
            Err(e) if speaks_plain_http(&e) => Err(anyhow::Error::new(e).context(format!(
                "{what}: the server does not speak HTTPS yet; not sending credentials in clear text"
            ))),
            Err(e) => Err(anyhow::Error::new(e).context(format!("{what}: TLS handshake"))),
        },
    };
    message.fill(0);
    parse_response(&raw?).with_context(|| format!("{what}: unexpected answer"))
}

fn request_bytes(
    host_port: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    auth: Option<&BasicAuth>,
) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\
         Accept: application/json\r\nUser-Agent: juju-pg-charm\r\n"
    );
    if let Some(auth) = auth {
        head.push_str(&format!("Authorization: {}\r\n", auth.header()));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || matches!(method, "POST" | "PATCH" | "PUT") {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    message
}

/// Writes `message` and reads the whole answer.
fn exchange(mut stream: impl Read + Write, message: &mut [u8], what: &str) -> Result<Vec<u8>> {
    stream
        .write_all(message)
        .with_context(|| format!("{what}: sending"))?;
    stream.flush().with_context(|| format!("{what}: sending"))?;
    let mut raw = Vec::new();
    let read = stream.take(MAX_RESPONSE).read_to_end(&mut raw);
    match read {
        Ok(_) => Ok(raw),
        // Python's ssl closes without close_notify: the answer is whole
        // (Content-Length says so; parse_response checks).
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(e).with_context(|| format!("{what}: reading the answer")),
    }
}

/// A TLS stream to `address` over `tcp`, its handshake done (the server
/// verified against `trust`, by its IP address).
fn tls_stream(
    trust: &Trust,
    address: SocketAddr,
    mut tcp: TcpStream,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
    let mut connection = rustls::ClientConnection::new(trust.0.clone(), name)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    while connection.is_handshaking() {
        connection.complete_io(&mut tcp)?;
    }
    Ok(rustls::StreamOwned::new(connection, tcp))
}

/// The handshake failed because the server answered in something that is
/// not TLS (an HTTP server's `400 Bad request`).
fn speaks_plain_http(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::InvalidMessage(_)))
}

/// Parses a whole HTTP/1.x response (`Content-Length`, chunked, or until
/// the connection closed).
pub fn parse_response(raw: &[u8]) -> Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).context("headers are not UTF-8")?;
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut words = status_line.split_whitespace();
    let (Some(version), Some(code)) = (words.next(), words.next()) else {
        bail!("bad status line {status_line:?}");
    };
    if !version.starts_with("HTTP/1.") {
        bail!("bad status line {status_line:?}");
    }
    let status: u16 = code
        .parse()
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    let body = if chunked {
        let mut out = Vec::new();
        loop {
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .context("truncated chunk")?;
            let size_text = std::str::from_utf8(&rest[..end])?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .context("bad chunk size")?;
            rest = &rest[end + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                bail!("truncated chunk");
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        out
    } else if let Some(n) = length {
        if rest.len() < n {
            bail!("body shorter than its Content-Length");
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::net::TcpListener;

    #[test]
    fn responses_with_length_chunks_or_close() {
        let r = parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}extra").unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                body: "{}".into()
            }
        );
        assert!(r.is_success());
        let r = parse_response(
            b"HTTP/1.1 412 Precondition Failed\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            r,
            Response {
                status: 412,
                body: "abcdef".into()
            }
        );
        assert!(!r.is_success());
        let r = parse_response(b"HTTP/1.0 503 x\r\nServer: y\r\n\r\nno length").unwrap();
        assert_eq!(r.body, "no length");
        for bad in [
            &b"garbage"[..],
            b"SMTP 200 OK\r\n\r\n",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// A one-shot server that records the request and answers `reply`.
    fn serve_once(reply: &'static [u8]) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then Content-Length bytes of body.
            loop {
                let n = conn.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            conn.write_all(reply).unwrap();
            got
        });
        (address, handle)
    }

    #[test]
    fn a_request_carries_basic_auth_and_the_body() {
        let (address, server) = serve_once(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\ndone");
        let auth = BasicAuth {
            user: "patroni".into(),
            password: Secret::new("s3cret".into()),
        };
        let r = request(
            &address,
            "PATCH",
            "/config",
            Some(br#"{"ttl":30}"#),
            Some(&auth),
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        assert_eq!(r.body, "done");
        let sent = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(sent.starts_with("PATCH /config HTTP/1.1\r\n"), "{sent}");
        // base64("patroni:s3cret")
        assert!(
            sent.contains("Authorization: Basic cGF0cm9uaTpzM2NyZXQ=\r\n"),
            "{sent}"
        );
        assert!(sent.contains("Content-Length: 10\r\n"));
        assert!(sent.ends_with(r#"{"ttl":30}"#));
    }

    #[test]
    fn errors_name_the_url_but_never_the_password() {
        // A port nothing listens on (bound then closed).
        let address = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let auth = BasicAuth {
            user: "patroni".into(),
            password: Secret::new("s3cret".into()),
        };
        let e = request(
            &address,
            "POST",
            "/restart",
            None,
            Some(&auth),
            Duration::from_secs(2),
            None,
        )
        .unwrap_err();
        let text = format!("{e:#} {e:?} {auth:?}");
        assert!(
            text.contains(&format!("POST http://{address}/restart")),
            "{text}"
        );
        assert!(
            !text.contains("s3cret") && !text.contains("cGF0cm9uaTpzM2NyZXQ"),
            "{text}"
        );
    }

    /// A TLS server answering one request with `reply`, its certificate
    /// for 127.0.0.1 signed by `ca`.
    fn serve_tls_once(
        ca: &crate::tls::CertificateAuthority,
        reply: &'static [u8],
    ) -> (String, std::thread::JoinHandle<Result<Vec<u8>, String>>) {
        use crate::tls::{required_sans, PrivateKey, SanInputs, Validity};
        let key = PrivateKey::generate().unwrap();
        let identity = required_sans(&SanInputs {
            hostname: "db-0",
            fqdn: None,
            addresses: &["127.0.0.1"],
        })
        .0;
        let now = time::OffsetDateTime::now_utc();
        let pem = ca
            .issue(
                &key,
                &identity,
                &Validity::starting(now, Duration::from_secs(3600)),
            )
            .unwrap();
        let chain = crate::tls::verify::pem_certificates(&pem)
            .unwrap()
            .into_iter()
            .map(rustls::pki_types::CertificateDer::from)
            .collect();
        let key_der =
            rustls::pki_types::PrivateKeyDer::try_from(key.pair().serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
            let connection =
                rustls::ServerConnection::new(Arc::new(config)).map_err(|e| e.to_string())?;
            let mut stream = rustls::StreamOwned::new(connection, tcp);
            let mut got = vec![0u8; 4096];
            let n = stream.read(&mut got).map_err(|e| e.to_string())?;
            got.truncate(n);
            stream.write_all(reply).map_err(|e| e.to_string())?;
            stream.conn.send_close_notify();
            let _ = stream.flush();
            Ok(got)
        });
        (address, handle)
    }

    fn ca(name: &str) -> crate::tls::CertificateAuthority {
        let now = time::OffsetDateTime::now_utc();
        crate::tls::CertificateAuthority::generate(
            name,
            &crate::tls::Validity::starting(now, Duration::from_secs(3600)),
        )
        .unwrap()
    }

    const OK: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";

    /// `GET /patroni` without credentials, trusting `trust`.
    fn get_patroni(address: &str, trust: &Trust) -> Result<Response> {
        request(
            address,
            "GET",
            "/patroni",
            None,
            None,
            Duration::from_secs(5),
            Some(trust),
        )
    }

    /// A plain-HTTP server that answers each of `replies` to what it first
    /// reads of one connection (a TLS ClientHello, read as a request, gets
    /// the first), and returns what it read.
    fn answer_first_reads(
        replies: Vec<&'static [u8]>,
    ) -> (String, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (mut conn, _) = listener.accept().unwrap();
                let mut got = vec![0u8; 4096];
                let n = conn.read(&mut got).unwrap();
                seen.push(got[..n].to_vec());
                conn.write_all(reply).unwrap();
            }
            seen
        });
        (address, server)
    }

    #[test]
    fn https_verifies_the_server_with_the_trusted_ca() {
        let internal = ca("internal CA");
        let trust = Trust::from_pem(internal.certificate()).unwrap();
        let (address, server) = serve_tls_once(&internal, OK);
        let r = get_patroni(&address, &trust).unwrap();
        assert_eq!(r.body, "ok");
        let sent = String::from_utf8(server.join().unwrap().unwrap()).unwrap();
        assert!(sent.starts_with("GET /patroni HTTP/1.1\r\n"), "{sent}");
    }

    #[test]
    fn a_certificate_of_another_ca_is_refused_and_never_falls_back() {
        let trust = Trust::from_pem(ca("internal CA").certificate()).unwrap();
        let (address, server) = serve_tls_once(&ca("someone else"), OK);
        let e = get_patroni(&address, &trust).unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.contains("TLS handshake") && text.contains(&format!("https://{address}")),
            "{text}"
        );
        assert!(server.join().unwrap().is_err(), "the server saw no request");
    }

    /// A Patroni not yet reloaded with its certificate answers the
    /// handshake in plain HTTP: a request without credentials is asked
    /// again over HTTP; one with credentials is not sent in clear text.
    #[test]
    fn plain_http_is_only_a_fallback_without_credentials() {
        let trust = Trust::from_pem(ca("internal CA").certificate()).unwrap();
        let bad_request: &[u8] = b"HTTP/1.0 400 Bad request\r\nContent-Length: 0\r\n\r\n";
        // The first connection gets the 400 (its ClientHello read as HTTP),
        // the second the plain request.
        let (address, server) = answer_first_reads(vec![bad_request, OK]);
        let r = get_patroni(&address, &trust).unwrap();
        assert_eq!(r.body, "ok");
        let seen = server.join().unwrap();
        assert!(
            seen[1].starts_with(b"GET /patroni HTTP/1.1"),
            "asked again over HTTP"
        );

        let (address, server) = answer_first_reads(vec![bad_request]);
        let auth = BasicAuth {
            user: "patroni".into(),
            password: Secret::new("s3cret".into()),
        };
        let e = request(
            &address,
            "POST",
            "/switchover",
            Some(b"{}"),
            Some(&auth),
            Duration::from_secs(5),
            Some(&trust),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("not sending credentials"),
            "{e:#}"
        );
        let sent = server.join().unwrap().concat();
        assert!(
            !String::from_utf8_lossy(&sent).contains("Authorization"),
            "only the TLS handshake went out"
        );
    }
}
