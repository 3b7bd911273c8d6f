//! The connect proxy (protocol.md §8.3): for apps that sign users in with a
//! session cookie, not a JWT. A WebSocket handshake with no token but a
//! cookie is forwarded, signed like every call to the app, to
//! `auth.proxy_url`; the app answers who the cookie belongs to (200), that
//! it belongs to nobody (401) or to someone refused (403). The answer for
//! one cookie may be kept `auth.proxy_cache_s` seconds, so a page opening
//! several sockets asks once.

use super::{Caller, Chat, ChatError, ChatResult};
use crate::auth::{AuthError, Identity, claim_id};
use crate::config::Config;
use crate::identity;
use crate::signing::{Signer, read_answer};
use crate::store::{GlobalRole, ROLE_NAME_RULE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Cookies whose answers are kept at once; past it the stale ones go, and
/// if none is stale, all.
const MAX_CACHED: usize = 10_000;
/// The most of the proxy's answer confab reads.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// What a handshake shows the app: its cookie and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Knock<'a> {
    /// The `Cookie` header, as sent.
    pub cookie: &'a str,
    /// The `Origin` header, if any.
    pub origin: Option<&'a str>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<&'a str>,
    /// The path the socket was opened on.
    pub path: &'a str,
    /// The client's address.
    pub remote_addr: IpAddr,
}

/// The body POSTed to the app.
#[derive(Serialize)]
struct Call<'a> {
    headers: CallHeaders<'a>,
    path: &'a str,
    remote_addr: String,
}

#[derive(Serialize)]
struct CallHeaders<'a> {
    cookie: &'a str,
    origin: Option<&'a str>,
    #[serde(rename = "user-agent")]
    user_agent: Option<&'a str>,
}

/// The app's 200: who the cookie belongs to.
#[derive(Debug, Clone, Deserialize)]
struct Answer {
    user_id: serde_json::Value,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

/// What the app said of one cookie.
#[derive(Debug, Clone)]
enum Verdict {
    /// This user.
    User(Answer),
    /// Nobody (401).
    Nobody,
    /// Someone who may not connect (403).
    Refused,
}

/// The connect proxy of one node: the HTTP client, the signer and the
/// answers kept per cookie.
pub struct ConnectProxy {
    client: Option<reqwest::Client>,
    signer: Option<Signer>,
    url: String,
    timeout: Duration,
    keep: Duration,
    /// Keyed by the cookie's SHA-256: the cookies themselves are not kept.
    cache: Mutex<HashMap<[u8; 32], (Verdict, Instant)>>,
}

impl ConnectProxy {
    /// The proxy of `auth.proxy_url`, or `None` when it is not set.
    pub fn new(config: &Config) -> Option<ConnectProxy> {
        let auth = &config.auth;
        if auth.proxy_url.is_empty() {
            return None;
        }
        let client = reqwest::Client::builder()
            .build()
            .inspect_err(|error| {
                tracing::error!(%error, "the connect proxy's HTTP client could not be built")
            })
            .ok();
        Some(ConnectProxy {
            client,
            // Checked when the configuration was validated.
            signer: Signer::from_secret(&config.webhook.secret).ok(),
            url: auth.proxy_url.clone(),
            timeout: Duration::from_secs(auth.proxy_timeout_s),
            keep: Duration::from_secs(auth.proxy_cache_s),
            cache: Mutex::default(),
        })
    }

    /// The app's verdict on `knock`'s cookie: kept, or asked now.
    async fn verdict(&self, knock: &Knock<'_>) -> Result<Verdict, String> {
        let key: [u8; 32] = Sha256::digest(knock.cookie.as_bytes()).into();
        if !self.keep.is_zero() {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((verdict, until)) = cache.get(&key)
                && Instant::now() < *until
            {
                return Ok(verdict.clone());
            }
        }
        let verdict = self.ask(knock).await?;
        if !self.keep.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, (_, until)| now < *until);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(key, (verdict.clone(), now + self.keep));
        }
        Ok(verdict)
    }

    /// One signed call to the app.
    async fn ask(&self, knock: &Knock<'_>) -> Result<Verdict, String> {
        let (Some(client), Some(signer)) = (&self.client, &self.signer) else {
            return Err("no HTTP client".into());
        };
        let body = serde_json::to_vec(&Call {
            headers: CallHeaders {
                cookie: knock.cookie,
                origin: knock.origin,
                user_agent: knock.user_agent,
            },
            path: knock.path,
            remote_addr: knock.remote_addr.to_string(),
        })
        .map_err(|e| e.to_string())?;
        let request = signer.post(client, &self.url, "conn", body);
        let exchange = async {
            let mut response = request
                .send()
                .await
                .map_err(|e| format!("unreachable: {e}"))?;
            match response.status().as_u16() {
                200 => {}
                401 => return Ok(Verdict::Nobody),
                403 => return Ok(Verdict::Refused),
                status => return Err(format!("answered {status}")),
            }
            let read = read_answer(&mut response, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("answer too long")?;
            serde_json::from_slice::<Answer>(&read)
                .map(Verdict::User)
                .map_err(|e| format!("bad answer: {e}"))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| "no answer in time".to_owned())?
    }
}

impl Chat {
    /// Whether handshakes without a token may be signed in by the app.
    pub fn has_connect_proxy(&self) -> bool {
        self.proxy.is_some()
    }

    /// Signs a connection in by its cookie: the app's user exactly as if a
    /// token had named them (created or updated from the answer's `name`
    /// and `role`, refused when disabled), with no expiry of confab's own.
    /// The app's 401 is [`AuthError::Missing`] (4001), its 403 a refused
    /// credential (4003), and an answer naming one of the server's own
    /// identities or a malformed role is refused like such a token; a
    /// proxy that fails is [`ChatError::Upstream`] (1011).
    pub async fn proxy_sign_in(
        &self,
        knock: Knock<'_>,
    ) -> ChatResult<(Caller, Option<Vec<String>>)> {
        let Some(proxy) = &self.proxy else {
            return Err(AuthError::Missing.into());
        };
        let verdict = proxy.verdict(&knock).await.map_err(|why| {
            tracing::warn!(why, url = proxy.url, "the connect proxy failed");
            ChatError::Upstream(why)
        })?;
        let answer = match verdict {
            Verdict::User(answer) => answer,
            Verdict::Nobody => return Err(AuthError::Missing.into()),
            Verdict::Refused => {
                return Err(AuthError::Invalid("the app refused this session".into()).into());
            }
        };
        let user_id = claim_id(&answer.user_id).ok_or_else(|| {
            ChatError::Upstream("the answer's user_id is not a string or an integer".into())
        })?;
        identity::check_id("the app's user id", &user_id).map_err(|e| AuthError::Invalid(e.0))?;
        if let Some(reason) = identity::reserved_user(&user_id) {
            return Err(AuthError::Invalid(reason).into());
        }
        let role = answer
            .role
            .as_deref()
            .map(|name| {
                GlobalRole::parse(name).ok_or_else(|| {
                    AuthError::Invalid(format!("bad role {name:?}: {ROLE_NAME_RULE}"))
                })
            })
            .transpose()?;
        let identity = Identity {
            user_id,
            username: None,
            name: answer.name,
            role,
            exp: 0,
        };
        let (user, rooms) = self.user_from_identity(identity, true).await?;
        let caller = Caller {
            user,
            server_key: false,
            exp: None,
            anonymous: None,
        };
        Ok((caller, rooms))
    }
}
