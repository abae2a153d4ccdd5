//! `webhook` {url, body, headers?, timeout_ms?}: POSTs `body` as JSON to
//! `url`, signed so the receiver can verify it came from switchyard:
//!
//! `Switchyard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//!
//! (the Stripe scheme: the timestamp lets receivers refuse replays). A 2xx
//! succeeds; 5xx, 408, 429, timeouts and connection errors are retried;
//! any other 4xx is final. Unless private networks are allowed, the URL may
//! not resolve to a loopback, private or link-local address (SSRF guard);
//! the check is done by the resolver the connection uses, so a DNS answer
//! cannot change between the check and the connect.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{whole_number, JobContext, JobFailure};
use crate::config::JobSettings;

const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const MAX_TIMEOUT_MS: u64 = 60_000;
pub const SIGNATURE_HEADER: &str = "switchyard-signature";

#[derive(Clone)]
pub struct WebhookHandler {
    client: reqwest::Client,
    secret: SecretString,
    allow_private: bool,
}

impl std::fmt::Debug for WebhookHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookHandler").field("allow_private", &self.allow_private).finish_non_exhaustive()
    }
}

/// Resolves names with the system resolver, refusing non-public addresses.
#[derive(Debug)]
struct PublicOnly;

/// The resolver's refusal: final, since retrying cannot change it.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to no public address")]
struct NoPublicAddress(String);

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(NoPublicAddress(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is on the public internet (not loopback, private,
/// link-local, shared, documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// `t=<timestamp>,v1=<hex signature>` of `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl WebhookHandler {
    pub fn new(settings: &JobSettings) -> Self {
        crate::tls::install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("switchyard-webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5));
        if !settings.webhook_allow_private_networks {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        // Building fails only when no TLS backend is compiled in, which the
        // crate's features rule out.
        let client = builder.build().unwrap_or_default();
        Self { client, secret: settings.webhook_secret.clone(), allow_private: settings.webhook_allow_private_networks }
    }

    async fn deliver(&self, job: JobContext) -> Result<Value, JobFailure> {
        if let Some((field, message)) = check(&job.payload) {
            return Err(JobFailure::fatal(format!("payload.{field} {message}")));
        }
        let url = url::Url::parse(job.payload["url"].as_str().unwrap_or_default())
            .map_err(|_| JobFailure::fatal("payload.url is not a URL"))?;
        if !self.allow_private {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(|ip| !is_public(ip)) {
                return Err(JobFailure::fatal("the webhook URL points at a private address"));
            }
        }
        let body = serde_json::to_vec(job.payload.get("body").unwrap_or(&Value::Null)).unwrap_or_default();
        let timeout = job.payload.get("timeout_ms").and_then(whole_number).unwrap_or(DEFAULT_TIMEOUT_MS);
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .client
            .post(url)
            .timeout(Duration::from_millis(timeout))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(self.secret.expose_secret(), timestamp, &body))
            .header("switchyard-job-id", &job.id)
            .header("switchyard-attempt", job.attempt.to_string());
        if let Some(headers) = job.payload.get("headers").and_then(Value::as_object) {
            for (name, value) in headers {
                if let Some(value) = value.as_str() {
                    request = request.header(name.as_str(), value);
                }
            }
        }
        let response = request.body(body).send().await.map_err(|e| {
            if is_refused_address(&e) {
                return JobFailure::fatal(format!("the webhook URL points at a private address: {}", error_chain(&e)));
            }
            let what = if e.is_timeout() { "timed out" } else { "could not be delivered" };
            JobFailure::retry(format!("the webhook {what}: {}", error_chain(&e)))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(json!({"status": status.as_u16()}));
        }
        let message = format!("the webhook answered HTTP {}", status.as_u16());
        let retryable = status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        Err(if retryable { JobFailure::retry(message) } else { JobFailure::fatal(message) })
    }
}

fn is_refused_address(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if cause.is::<NoPublicAddress>() {
            return true;
        }
        source = cause.source();
    }
    false
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl super::Handler for WebhookHandler {
    fn run(&self, job: JobContext) -> super::HandlerFuture {
        let this = self.clone();
        Box::pin(async move { this.deliver(job).await })
    }
}

const FORBIDDEN_HEADERS: &[&str] =
    &["host", "content-length", "content-type", "transfer-encoding", "connection", SIGNATURE_HEADER];

/// What [`check`] accepts, as a JSON Schema. The URL pattern is a plain
/// host name (and port) over http(s), narrower than what `check` parses;
/// header names exclude the ones switchyard sets itself, in any case.
pub fn payload_schema() -> Value {
    let label = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
    let any_case = |name: &str| -> String {
        name.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    let reserved: Vec<String> =
        FORBIDDEN_HEADERS.iter().map(|h| any_case(h)).chain([format!("{}.*", any_case("switchyard-"))]).collect();
    serde_json::json!({
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "maxLength": 2000,
                // The last label starts with a letter: a numeric one makes
                // the host an IPv4 address to URL parsers.
                "pattern": format!("^https?://({label}\\.)*[a-z]([a-z0-9-]{{0,61}}[a-z0-9])?(:[1-9][0-9]{{0,3}})?(/[A-Za-z0-9._~/-]*)?$"),
                "description": "Where to POST: an http:// or https:// URL."},
            "body": crate::http::openapi::any_json("Any JSON: the request body."),
            "headers": {"type": "object", "maxProperties": 20,
                "propertyNames": {"type": "string", "pattern": format!("^(?!({})$)[A-Za-z0-9-]{{1,64}}$", reserved.join("|"))},
                "additionalProperties": {"type": "string", "pattern": "^[\\t\\x20-\\x7e]*$"},
                "description": "Extra request headers (not Host, Content-Length, Content-Type, Transfer-Encoding, Connection or switchyard-*)."},
            "timeout_ms": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS},
        },
    })
}

pub fn check(payload: &Value) -> Option<(&'static str, String)> {
    let url_ok = payload
        .get("url")
        .and_then(Value::as_str)
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !url_ok {
        return Some(("url", "must be an http:// or https:// URL".into()));
    }
    if let Some(t) = payload.get("timeout_ms") {
        if !whole_number(t).is_some_and(|t| (1..=MAX_TIMEOUT_MS).contains(&t)) {
            return Some(("timeout_ms", format!("must be 1-{MAX_TIMEOUT_MS}")));
        }
    }
    if let Some(headers) = payload.get("headers") {
        let ok = headers.as_object().is_some_and(|h| {
            h.len() <= 20
                && h.iter().all(|(name, value)| {
                    value.as_str().is_some_and(|v| reqwest::header::HeaderValue::from_str(v).is_ok())
                        && reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                        && !FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str())
                        && !name.to_ascii_lowercase().starts_with("switchyard-")
                })
        });
        if !ok {
            return Some(("headers", "must be an object of at most 20 valid header names to string values".into()));
        }
    }
    None
}
