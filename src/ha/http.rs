//! A minimal HTTP/1.1 client for Patroni's REST API: one request per
//! connection (`Connection: close`), JSON bodies, basic auth, timeouts.
//!
//! Why not a crate: the only server is Patroni's (Python's `http.server`,
//! which answers with `Content-Length` and closes), always at an address
//! the charm chose, over plain HTTP for now (TLS is issue 14, which will
//! bring rustls and may then justify `ureq`). ureq would add `url`/`idna`
//! and read proxy variables from the environment by default (3.x), which
//! must never apply to a unit's own address. What we need fits in one page.
//!
//! The password goes only into the `Authorization` header: errors name the
//! method and URL, never a header.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
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

/// Sends `method path` to `host_port` (an `ip:port`) and reads the answer.
pub fn request(
    host_port: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    auth: Option<&BasicAuth>,
    timeout: Duration,
) -> Result<Response> {
    let what = format!("{method} http://{host_port}{path}");
    let address: SocketAddr = host_port
        .to_socket_addrs()
        .with_context(|| format!("{what}: bad address"))?
        .next()
        .with_context(|| format!("{what}: bad address"))?;
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("{what}: cannot connect"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
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
    stream
        .write_all(&message)
        .with_context(|| format!("{what}: sending"))?;
    message.fill(0);
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .with_context(|| format!("{what}: reading the answer"))?;
    parse_response(&raw).with_context(|| format!("{what}: unexpected answer"))
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
}
