//! Which browser origins may open a WebSocket (`server.allowed_origins`).
//!
//! Browsers attach cookies and other ambient credentials to a cross-site
//! WebSocket handshake and send an `Origin` header with it; refusing foreign
//! origins stops a page on another site from riding a user's session
//! (cross-site WebSocket hijacking). Clients that are not browsers send no
//! `Origin` and are not affected.

use axum::http::Uri;

/// The handshake's origin rule, built once from the configuration.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    any: bool,
    /// Configured origins, normalized (`scheme://host[:port]`, lower case,
    /// default ports dropped). Empty means the localhost default.
    listed: Vec<String>,
}

impl OriginPolicy {
    /// `allowed` is `server.allowed_origins`: empty allows the server's own
    /// host and localhost (any scheme, any port); otherwise the server's own
    /// host and the listed origins; `*` allows every origin.
    pub fn new(allowed: &[String]) -> Self {
        OriginPolicy {
            any: allowed.iter().any(|o| o == "*"),
            listed: allowed
                .iter()
                .filter_map(|o| normalize(o).map(|n| n.serialized))
                .collect(),
        }
    }

    /// Whether a handshake with this `Origin` may proceed. `host` is the
    /// request's `Host` header. A request without `Origin` never gets here.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        if self.any {
            return true;
        }
        let Some(origin) = normalize(origin) else {
            // `null` (sandboxed pages, file://) and garbage: only `*` admits them.
            return false;
        };
        if host.is_some_and(|host| same_host(&origin, host)) {
            return true;
        }
        if self.listed.is_empty() {
            matches!(
                origin.host.as_str(),
                "localhost" | "127.0.0.1" | "[::1]" | "::1"
            )
        } else {
            self.listed.contains(&origin.serialized)
        }
    }
}

/// An origin split into what the rules compare.
struct Origin {
    scheme: String,
    host: String,
    /// The port unless it is the scheme's default.
    port: Option<u16>,
    serialized: String,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

fn normalize(text: &str) -> Option<Origin> {
    let uri: Uri = text.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().filter(|p| Some(*p) != default_port(&scheme));
    let serialized = match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    };
    Some(Origin {
        scheme,
        host,
        port,
        serialized,
    })
}

/// Whether the origin names the host the request was sent to (a page served
/// by this server). The `Host` header's port defaults by the origin's scheme.
fn same_host(origin: &Origin, host: &str) -> bool {
    let Ok(authority) = host.trim().parse::<axum::http::uri::Authority>() else {
        return false;
    };
    let port = authority
        .port_u16()
        .filter(|p| Some(*p) != default_port(&origin.scheme));
    authority.host().eq_ignore_ascii_case(&origin.host) && port == origin.port
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(list: &[&str]) -> OriginPolicy {
        OriginPolicy::new(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn default_allows_same_host_and_localhost() {
        let p = policy(&[]);
        assert!(p.allows("https://chat.example.com", Some("chat.example.com")));
        assert!(p.allows("https://chat.example.com", Some("chat.example.com:443")));
        assert!(p.allows(
            "http://chat.example.com:8080",
            Some("chat.example.com:8080")
        ));
        assert!(!p.allows(
            "http://chat.example.com:8081",
            Some("chat.example.com:8080")
        ));
        assert!(p.allows("http://localhost:3000", Some("chat.example.com")));
        assert!(p.allows("http://127.0.0.1:5173", None));
        assert!(p.allows("http://[::1]:5173", None));
        assert!(!p.allows("https://evil.example", Some("chat.example.com")));
        assert!(!p.allows(
            "https://chat.example.com.evil.example",
            Some("chat.example.com")
        ));
        assert!(!p.allows("null", Some("chat.example.com")));
        assert!(!p.allows("not an origin", None));
    }

    #[test]
    fn a_list_replaces_localhost_and_star_allows_all() {
        let p = policy(&["https://App.Example.com:443", "http://10.0.0.5:8000"]);
        assert!(p.allows("https://app.example.com", None));
        assert!(p.allows("http://10.0.0.5:8000", None));
        assert!(!p.allows("http://app.example.com", None), "scheme matters");
        assert!(!p.allows("http://localhost:3000", None));
        assert!(p.allows("https://chat.example.com", Some("chat.example.com")));
        assert!(policy(&["*"]).allows("null", None));
        assert!(policy(&["*"]).allows("https://anything.example", None));
    }
}
