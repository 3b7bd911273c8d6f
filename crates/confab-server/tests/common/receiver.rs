//! A stand-in for the app's back-end (protocol.md §8): a real HTTP server on
//! 127.0.0.1 that confab POSTs app commands to. It checks each request's
//! Standard Webhooks signature itself (HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, keyed as `webhook.secret`
//! says), records every request with that verdict, and answers the way the
//! test asks: a JSON answer, an error status, too late, not JSON, or an
//! answer made from the request (the connect proxy's).

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The key bytes behind [`secret`].
pub const KEY: &[u8] = b"confab test webhook key, 32 byte";

/// The secret as `webhook.secret` takes it: `whsec_` + base64 of [`KEY`].
pub fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

/// How the receiver answers every request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this JSON body.
    Ok(Value),
    /// This status, with a JSON body that would be a success if relayed.
    Status(u16),
    /// Waits this long, then answers 200 `{"text": "slow answer"}`.
    Slow(Duration),
    /// 200 with a body that is not JSON.
    NotJson,
    /// 503 to the first this many requests, then 200 `{}`.
    FailFirst(usize),
    /// The status and JSON body this function makes of the request's body
    /// (an app whose answer depends on what it is asked: the connect
    /// proxy's cookies).
    Computed(fn(&Value) -> (u16, Value)),
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST`, hopefully.
    pub method: String,
    /// The request path (`/commands`).
    pub path: String,
    /// Every header.
    pub headers: HeaderMap,
    /// The body as sent.
    pub raw: String,
    /// The body as JSON (`null` when it is not JSON).
    pub body: Value,
    /// Whether one of the `webhook-signature` entries is `v1,` + the
    /// base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` under
    /// the receiver's key.
    pub signature_valid: bool,
    /// When it arrived.
    pub at: tokio::time::Instant,
}

impl Received {
    /// A header's value as text (`None` when absent or not text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    requests: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts answering with `reply`, verifying signatures under [`secret`].
    pub async fn start(reply: Reply) -> Receiver {
        Self::start_with_secret(&secret(), reply).await
    }

    /// Starts answering with `reply`, verifying signatures under `secret`
    /// (written as `webhook.secret` is).
    pub async fn start_with_secret(secret: &str, reply: Reply) -> Receiver {
        Self::start_at("127.0.0.1:0", secret, reply).await
    }

    /// [`Receiver::start_with_secret`] on the address `at` (`127.0.0.1:0`
    /// for any port; a receiver that comes back on the port of one that
    /// was down).
    pub async fn start_at(at: &str, secret: &str, reply: Reply) -> Receiver {
        let requests: Arc<Mutex<Vec<Received>>> = Arc::default();
        let recorded = requests.clone();
        let key = key_of(secret);
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let reply = reply.clone();
                let recorded = recorded.clone();
                let key = key.clone();
                async move {
                    let signature_valid = verify(&key, &headers, &body);
                    let raw = String::from_utf8_lossy(&body).into_owned();
                    let json: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
                    let count = {
                        let mut recorded = recorded.lock().unwrap();
                        recorded.push(Received {
                            method: method.to_string(),
                            path: uri.path().to_owned(),
                            body: json.clone(),
                            raw,
                            headers,
                            signature_valid,
                            at: tokio::time::Instant::now(),
                        });
                        recorded.len()
                    };
                    respond(reply, &json, count).await
                }
            },
        );
        let listener = tokio::net::TcpListener::bind(at).await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            base: format!("http://{address}"),
            requests,
            task,
        }
    }

    /// The URL to configure as a command's `url`: `{base}/commands`.
    pub fn url(&self) -> String {
        format!("{}/commands", self.base)
    }

    /// The URL to configure as `webhook.url`: `{base}/webhooks`.
    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks", self.base)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (at most [`super::WAIT`]) until `n` requests have arrived;
    /// returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + super::WAIT;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver got {} requests, not {n}",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The HMAC key a `webhook.secret` stands for: the base64-decoded part
/// after `whsec_`, or else the string's UTF-8 bytes.
pub fn key_of(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD
            .decode(encoded)
            .unwrap_or_else(|e| panic!("{secret:?} is not whsec_ + base64: {e}")),
        None => secret.as_bytes().to_vec(),
    }
}

/// Standard Webhooks verification of the signature (not of the
/// timestamp's age, which the tests check on their own).
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) = (
        text("webhook-id"),
        text("webhook-timestamp"),
        text("webhook-signature"),
    ) else {
        return false;
    };
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signatures.split(' ').any(|entry| {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            return false;
        };
        let Ok(signature) = STANDARD.decode(encoded) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(&signed);
        mac.verify_slice(&signature).is_ok()
    })
}

/// The answer to the `count`th request.
async fn respond(reply: Reply, request: &Value, count: usize) -> Response {
    match reply {
        Reply::FailFirst(n) if count <= n => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "not now"})),
        )
            .into_response(),
        Reply::FailFirst(_) => axum::Json(json!({})).into_response(),
        Reply::Computed(answer) => {
            let (status, body) = answer(request);
            (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
        }
        Reply::Ok(body) => axum::Json(body).into_response(),
        Reply::Status(status) => (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({"ok": true, "text": "an error status is no answer"})),
        )
            .into_response(),
        Reply::Slow(wait) => {
            tokio::time::sleep(wait).await;
            axum::Json(json!({"text": "slow answer"})).into_response()
        }
        Reply::NotJson => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Bad gateway</body></html>",
        )
            .into_response(),
    }
}

/// A URL where nothing listens (a port just bound and released).
pub async fn unreachable_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/commands")
}
