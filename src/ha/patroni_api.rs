//! Patroni's REST API (thin shell over [`super::http`]). GETs are open to
//! anyone reaching the port (Patroni 3.x); the unsafe methods need basic
//! auth, sent with every request when the client has it.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::http::{self, BasicAuth, Response, Trust};
use super::topology::{self, ClusterMember, LocalStatus};

/// A member's REST API.
#[derive(Debug, Clone)]
pub struct PatroniApi {
    /// `ip:port`.
    pub host_port: String,
    pub auth: Option<BasicAuth>,
    pub timeout: Duration,
    /// HTTPS, verifying the member with the internal CA; `None`: HTTP.
    pub trust: Option<Trust>,
}

impl PatroniApi {
    pub fn new(host_port: &str, auth: Option<BasicAuth>) -> Self {
        Self {
            host_port: host_port.to_string(),
            auth,
            timeout: Duration::from_secs(5),
            trust: None,
        }
    }

    /// Over HTTPS, trusting `trust` (`None` keeps HTTP).
    pub fn trusting(mut self, trust: Option<Trust>) -> Self {
        self.trust = trust;
        self
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Response> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON"));
        http::request(
            &self.host_port,
            method,
            path,
            bytes.as_deref(),
            self.auth.as_ref(),
            self.timeout,
            self.trust.as_ref(),
        )
    }

    /// A call that must succeed; the error carries Patroni's own message.
    fn expect_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Response> {
        let r = self.call(method, path, body)?;
        if !r.is_success() {
            bail!(
                "Patroni at {} refused {method} {path} ({}): {}",
                self.host_port,
                r.status,
                r.body.trim()
            );
        }
        Ok(r)
    }

    /// `GET /patroni`. Patroni answers 200 on a running member and 503
    /// when postgres is not running; both carry the status.
    pub fn patroni(&self) -> Result<LocalStatus> {
        let r = self.call("GET", "/patroni", None)?;
        topology::parse_patroni(&r.body)
    }

    /// `GET /cluster`.
    pub fn cluster(&self) -> Result<Vec<ClusterMember>> {
        let r = self.expect_ok("GET", "/cluster", None)?;
        topology::parse_cluster(&r.body)
    }

    /// `GET /history`: where each timeline ended.
    pub fn history(&self) -> Result<Vec<super::divergence::TimelineSwitch>> {
        let r = self.expect_ok("GET", "/history", None)?;
        super::divergence::parse_history(&r.body)
    }

    /// `GET /config`: the dynamic configuration in the DCS.
    pub fn config(&self) -> Result<Value> {
        let r = self.expect_ok("GET", "/config", None)?;
        serde_json::from_str(&r.body).context("Patroni's /config is not JSON")
    }

    /// `PATCH /config` with a JSON merge patch; returns the new configuration.
    pub fn patch_config(&self, patch: &Value) -> Result<Value> {
        let r = self.expect_ok("PATCH", "/config", Some(patch))?;
        serde_json::from_str(&r.body).context("Patroni's PATCH /config answer is not JSON")
    }

    /// `POST /switchover` from `leader` (required by 3.0.x) to `candidate`
    /// (a synchronous standby in synchronous mode; Patroni answers 412
    /// otherwise). Returns when done, with Patroni's message.
    pub fn switchover(&self, leader: &str, candidate: Option<&str>) -> Result<String> {
        let mut body = json!({ "leader": leader });
        if let Some(c) = candidate {
            body["candidate"] = json!(c);
        }
        let mut api = self.clone();
        api.timeout = Duration::from_secs(60);
        Ok(api.expect_ok("POST", "/switchover", Some(&body))?.body)
    }

    /// `POST /restart`; with `pending_only`, only when a setting needs it.
    pub fn restart(&self, pending_only: bool) -> Result<String> {
        let body = if pending_only {
            json!({ "restart_pending": true })
        } else {
            json!({})
        };
        let mut api = self.clone();
        api.timeout = Duration::from_secs(120);
        Ok(api.expect_ok("POST", "/restart", Some(&body))?.body)
    }

    /// `POST /reload`: Patroni re-reads its yml and reloads postgres.
    pub fn reload(&self) -> Result<()> {
        self.expect_ok("POST", "/reload", Some(&json!({})))
            .map(drop)
    }
}
