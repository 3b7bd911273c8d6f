//! Tokens: verifying and minting JWTs, and recognising the server key.
//!
//! This module only answers "who does this credential claim to be?". Turning
//! that into a stored user (created on first sight, refused when disabled) is
//! core's job, in [`crate::core::Chat::authenticate`].

use crate::identity;
use crate::store::{GlobalRole, ROLE_NAME_RULE};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential at all (close 4001, HTTP 401).
    #[error("no token given")]
    Missing,
    /// Bad signature, malformed, wrong algorithm, not yet valid (`nbf`),
    /// no subject, a subject that breaks the id rule or names one of the
    /// server's own identities (close 4003, HTTP 401).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` is in the past, beyond the leeway (close 4003, HTTP 401).
    #[error("token expired")]
    Expired,
}

/// The claims confab reads. `sub` is the user id; `user_id` is accepted too,
/// because Django REST framework SimpleJWT tokens carry the id there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id (string or number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<serde_json::Value>,
    /// SimpleJWT's user id claim, used when `sub` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<serde_json::Value>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Global role: `admin`, `member` or `viewer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, seconds since the epoch: refused until then (with the
    /// same leeway as `exp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The user id.
    pub user_id: String,
    /// Handle from the token, if any.
    pub username: Option<String>,
    /// Display name from the token, if any.
    pub name: Option<String>,
    /// Role from the token, if any.
    pub role: Option<GlobalRole>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// What a visitor token carries (protocol.md §3.4): which anonymous
/// visitor it is and which assistant session it resumes. Signed with the
/// same key as user tokens, and told apart from them by `typ`; its subject
/// is an `anon-…` id, which user tokens may never name, so neither kind
/// passes for the other.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VisitorClaims {
    /// The visitor's `anon-…` id.
    sub: String,
    /// The session it resumes.
    sid: String,
    /// Always [`VISITOR_TOKEN_TYPE`].
    typ: String,
    /// Expiry, seconds since the epoch (`assistant.session_ttl` after issue).
    exp: u64,
    /// Issued at.
    iat: u64,
}

/// The `typ` claim of visitor tokens.
const VISITOR_TOKEN_TYPE: &str = "confab-visitor";

/// A verified visitor token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorToken {
    /// The visitor's `anon-…` id.
    pub visitor_id: String,
    /// The session it names.
    pub session_id: String,
}

/// What `confab token` asks for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The user id (`sub`).
    pub user_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Global role.
    pub role: Option<GlobalRole>,
    /// How long the token is valid.
    pub ttl: Duration,
}

/// Verifies user tokens and the server key. Built once from the configuration.
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    api_key: Option<String>,
}

impl Authenticator {
    /// `secret` is the HS256 key; `api_key` empty means no server key exists.
    pub fn new(secret: &str, api_key: &str, leeway_s: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway_s;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        Authenticator {
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            validation,
            api_key: (!api_key.is_empty()).then(|| api_key.to_owned()),
        }
    }

    /// Whether `token` is the server key (compared in constant time).
    pub fn is_server_key(&self, token: &str) -> bool {
        let Some(key) = &self.api_key else {
            return false;
        };
        // The length is not secret (it leaks through timing anyway); the
        // bytes are compared in constant time.
        bool::from(key.as_bytes().ct_eq(token.as_bytes()))
    }

    /// Verifies a user JWT: signature, algorithm, `exp` and `nbf` (with
    /// leeway), and a subject that passes the id rule and is none of the
    /// server's own identities ([`crate::identity`]).
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    AuthError::Invalid("the token is not valid yet (`nbf`)".into())
                }
                _ => AuthError::Invalid(e.to_string()),
            })?;
        let claims = data.claims;
        let subject = claims
            .sub
            .as_ref()
            .or(claims.user_id.as_ref())
            .ok_or_else(|| AuthError::Invalid("no `sub` (or `user_id`) claim".into()))?;
        let user_id = claim_id(subject).ok_or_else(|| {
            AuthError::Invalid("`sub` (or `user_id`) must be a string or an integer".into())
        })?;
        identity::check_id("the token's user id", &user_id).map_err(|e| AuthError::Invalid(e.0))?;
        if let Some(reason) = identity::reserved_user(&user_id) {
            return Err(AuthError::Invalid(reason));
        }
        let role = match claims.role.as_deref() {
            None => None,
            Some(name) => Some(GlobalRole::parse(name).ok_or_else(|| {
                AuthError::Invalid(format!("bad role {name:?}: {ROLE_NAME_RULE}"))
            })?),
        };
        Ok(Identity {
            user_id,
            username: claims.username,
            name: claims.name,
            role,
            exp: claims.exp,
        })
    }

    /// Mints the visitor token of `visitor_id` for `session_id`, valid for
    /// `ttl_s` seconds.
    pub fn mint_visitor(
        &self,
        visitor_id: &str,
        session_id: &str,
        ttl_s: u64,
    ) -> Result<String, AuthError> {
        let now = unix_now();
        let claims = VisitorClaims {
            sub: visitor_id.to_owned(),
            sid: session_id.to_owned(),
            typ: VISITOR_TOKEN_TYPE.to_owned(),
            exp: now.saturating_add(ttl_s),
            iat: now,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Verifies a visitor token: signature, `exp`, `typ`, an `anon-…`
    /// subject and a session id that pass the id rule. A user token (or
    /// anything else) is [`AuthError::Invalid`]; a genuine one past its
    /// `exp` is [`AuthError::Expired`].
    pub fn verify_visitor(&self, token: &str) -> Result<VisitorToken, AuthError> {
        let data = jsonwebtoken::decode::<VisitorClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid(e.to_string()),
        })?;
        let claims = data.claims;
        if claims.typ != VISITOR_TOKEN_TYPE || !claims.sub.starts_with(identity::ANONYMOUS_PREFIX) {
            return Err(AuthError::Invalid("not a visitor token".into()));
        }
        identity::check_id("the visitor id", &claims.sub).map_err(|e| AuthError::Invalid(e.0))?;
        identity::check_id("the session id", &claims.sid).map_err(|e| AuthError::Invalid(e.0))?;
        Ok(VisitorToken {
            visitor_id: claims.sub,
            session_id: claims.sid,
        })
    }

    /// Mints an HS256 token, for `confab token` and tests.
    pub fn mint(&self, request: &TokenRequest) -> Result<String, AuthError> {
        let now = unix_now();
        let claims = Claims {
            sub: Some(serde_json::Value::String(request.user_id.clone())),
            user_id: None,
            name: request.name.clone(),
            username: None,
            role: request.role.as_ref().map(|r| r.as_str().to_owned()),
            exp: now + request.ttl.as_secs(),
            iat: Some(now),
            nbf: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A user id claim as a string: strings as they are, integers in decimal
/// (the id rule is checked after).
/// A user id claim as a string: a string, or an integer's decimal form
/// (also what an app's connect proxy may answer).
pub(crate) fn claim_id(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Extracts a bearer token from an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new("secret", "server-key", 0)
    }

    #[test]
    fn minted_tokens_verify() {
        let a = auth();
        let token = a
            .mint(&TokenRequest {
                user_id: "alice".into(),
                name: Some("Alice".into()),
                role: Some(GlobalRole::Viewer),
                ttl: Duration::from_secs(60),
            })
            .unwrap();
        let id = a.verify(&token).unwrap();
        assert_eq!(id.user_id, "alice");
        assert_eq!(id.name.as_deref(), Some("Alice"));
        assert_eq!(id.role, Some(GlobalRole::Viewer));
    }

    #[test]
    fn expired_wrong_key_and_no_subject_are_refused() {
        let a = auth();
        let header = Header::new(Algorithm::HS256);
        let key = EncodingKey::from_secret(b"secret");
        let past = serde_json::json!({"sub": "a", "exp": unix_now() - 120});
        let token = jsonwebtoken::encode(&header, &past, &key).unwrap();
        assert_eq!(a.verify(&token), Err(AuthError::Expired));

        let other = Authenticator::new("other", "", 0);
        let token = other
            .mint(&TokenRequest {
                user_id: "a".into(),
                name: None,
                role: None,
                ttl: Duration::from_secs(60),
            })
            .unwrap();
        assert!(matches!(a.verify(&token), Err(AuthError::Invalid(_))));

        let nosub = serde_json::json!({"exp": unix_now() + 60});
        let token = jsonwebtoken::encode(&header, &nosub, &key).unwrap();
        assert!(matches!(a.verify(&token), Err(AuthError::Invalid(_))));
        assert!(matches!(a.verify("garbage"), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn simplejwt_user_id_claim_is_accepted() {
        let key = EncodingKey::from_secret(b"secret");
        let claims =
            serde_json::json!({"user_id": 42, "exp": unix_now() + 60, "token_type": "access"});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
        assert_eq!(auth().verify(&token).unwrap().user_id, "42");
    }

    fn signed(claims: serde_json::Value) -> String {
        let key = EncodingKey::from_secret(b"secret");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_within_the_leeway_accepted() {
        let exp = unix_now() + 7200;
        let later = signed(serde_json::json!({"sub": "a", "exp": exp, "nbf": unix_now() + 3600}));
        assert!(matches!(auth().verify(&later), Err(AuthError::Invalid(m)) if m.contains("nbf")));
        let lenient = Authenticator::new("secret", "", 30);
        let soon = signed(serde_json::json!({"sub": "a", "exp": exp, "nbf": unix_now() + 10}));
        assert_eq!(lenient.verify(&soon).unwrap().user_id, "a");
    }

    #[test]
    fn subjects_follow_the_id_rule_and_spare_the_servers_identities() {
        let exp = unix_now() + 60;
        for sub in [
            "system",
            "SYSTEM",
            "assistant",
            "anon-1",
            "a/b",
            "a b",
            "a?b",
            "a#b",
            "..",
            "a\0b",
        ] {
            let token = signed(serde_json::json!({"sub": sub, "exp": exp}));
            assert!(
                matches!(auth().verify(&token), Err(AuthError::Invalid(_))),
                "{sub:?}"
            );
        }
        let long = signed(serde_json::json!({"sub": "x".repeat(200), "exp": exp}));
        let Err(AuthError::Invalid(message)) = auth().verify(&long) else {
            panic!("a 200-byte subject was accepted");
        };
        assert!(message.contains("1–128"), "{message}");
        // (An object `sub` is refused by the JWT library itself.)
        let object = signed(serde_json::json!({"user_id": {"id": 1}, "exp": exp}));
        let Err(AuthError::Invalid(message)) = auth().verify(&object) else {
            panic!("an object subject was accepted");
        };
        assert!(message.contains("string or an integer"), "{message}");
    }

    #[test]
    fn visitor_tokens_and_user_tokens_never_pass_for_each_other() {
        let a = auth();
        let token = a.mint_visitor("anon-1", "s1", 60).unwrap();
        assert_eq!(
            a.verify_visitor(&token).unwrap(),
            VisitorToken {
                visitor_id: "anon-1".into(),
                session_id: "s1".into()
            }
        );
        assert!(
            matches!(a.verify(&token), Err(AuthError::Invalid(_))),
            "a visitor token is no user token"
        );
        let user = signed(serde_json::json!({"sub": "alice", "exp": unix_now() + 60}));
        assert!(matches!(
            a.verify_visitor(&user),
            Err(AuthError::Invalid(_))
        ));
        // Shaped like one, but not of the visitor type, or not for a visitor.
        let exp = unix_now() + 60;
        for claims in [
            serde_json::json!({"sub": "anon-1", "sid": "s1", "typ": "other", "exp": exp, "iat": 0}),
            serde_json::json!({"sub": "alice", "sid": "s1", "typ": VISITOR_TOKEN_TYPE, "exp": exp, "iat": 0}),
            serde_json::json!({"sub": "anon-1", "sid": "a/b", "typ": VISITOR_TOKEN_TYPE, "exp": exp, "iat": 0}),
        ] {
            assert!(
                matches!(
                    a.verify_visitor(&signed(claims.clone())),
                    Err(AuthError::Invalid(_))
                ),
                "{claims}"
            );
        }
        let other = Authenticator::new("other", "", 0);
        let forged = other.mint_visitor("anon-1", "s1", 60).unwrap();
        assert!(matches!(
            a.verify_visitor(&forged),
            Err(AuthError::Invalid(_))
        ));
        let old = signed(serde_json::json!({
            "sub": "anon-1", "sid": "s1", "typ": VISITOR_TOKEN_TYPE, "exp": unix_now() - 120, "iat": 0
        }));
        assert_eq!(a.verify_visitor(&old), Err(AuthError::Expired));
    }

    #[test]
    fn server_key_and_bearer() {
        let a = auth();
        assert!(a.is_server_key("server-key"));
        assert!(!a.is_server_key("server-kez"));
        assert!(!Authenticator::new("s", "", 0).is_server_key(""));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
    }
}
