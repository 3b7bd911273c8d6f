//! The client's address, for everything keyed or logged by address (the
//! handshake rate, connection caps, anonymous visitors' caps and message
//! rate, the connection span): the TCP peer's, unless the peer is a trusted
//! reverse proxy (`server.trusted_proxies`), whose forwarding header then
//! names the client. Resolved here and nowhere else, by the [`ClientAddr`]
//! extractor that WebSocket upgrades and REST requests both use.
//!
//! # Reading the chain
//! Each proxy appends the address it received the request from, so the
//! header lists the hops left to right, client first, and only the entries
//! appended by proxies we trust are worth anything: everything to their
//! left may be whatever the client wrote. So the chain is walked from the
//! right, skipping trusted hops, and the first untrusted address is the
//! client (if every hop is trusted, the leftmost one). An entry that cannot
//! be read on that walk (garbage, a port that is no port, `unknown`, an
//! obfuscated `for=_hidden`, a `Forwarded` element without `for=`) leaves
//! the client unknown: the peer's address is used, as without a proxy. Only
//! one header is read, the one `server.forwarded_header` names: a proxy
//! passes on whatever a client put in the other one.

use crate::config::{Config, ConfigError, ForwardedHeader};
use crate::transport::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::{FORWARDED, HeaderName};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tracing::Instrument;

/// Hops read from the right of a forwarding chain before giving up (and
/// using the peer's address): more trusted proxies than this in a row is no
/// deployment, and a header stuffed with them costs no more than this.
pub const MAX_HOPS: usize = 32;

/// `X-Forwarded-For` (not in `http`'s list of standard headers).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which peers may name the client, and in which header; built once from
/// the configuration.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// From `server.trusted_proxies` and `server.forwarded_header`; an
    /// entry that is not an address or range is refused.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        Ok(TrustedProxies {
            nets: config.trusted_proxy_nets()?,
            header: config.server.forwarded_header,
        })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request that came from `peer` with
    /// `headers`. Never fails: whatever cannot be read is the peer's.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`: one
        // client, one key, whichever way it arrived.
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let name = match self.header {
            ForwardedHeader::XForwardedFor => X_FORWARDED_FOR,
            ForwardedHeader::Forwarded => FORWARDED,
        };
        // Several header lines are one list, in order (RFC 9110 §5.3).
        let mut entries = headers
            .get_all(name)
            .iter()
            .rev()
            .flat_map(|line| match line.to_str() {
                Ok(text) => Lines::Text(text.rsplit(',')),
                Err(_) => Lines::Unreadable(Some(())),
            })
            .filter_map(|entry| match entry {
                Some(text) if text.trim().is_empty() => None, // `a,,b`: an empty element
                other => Some(other),
            });
        let mut leftmost = None;
        for _ in 0..MAX_HOPS {
            let Some(entry) = entries.next() else {
                // Every hop trusted: the leftmost is as far as anyone knows.
                return leftmost.unwrap_or(peer);
            };
            let hop = match entry {
                Some(text) => match self.header {
                    ForwardedHeader::XForwardedFor => x_forwarded_for_hop(text.trim()),
                    ForwardedHeader::Forwarded => forwarded_hop(text.trim()),
                },
                None => None,
            };
            match hop {
                Some(ip) if self.trusts(ip) => leftmost = Some(ip),
                Some(ip) => return ip,
                None => return peer,
            }
        }
        peer
    }
}

/// The entries of one header line, right to left; `None` for a line that
/// is not text.
enum Lines<'a> {
    Text(std::str::RSplit<'a, char>),
    Unreadable(Option<()>),
}

impl<'a> Iterator for Lines<'a> {
    type Item = Option<&'a str>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Lines::Text(split) => split.next().map(Some),
            Lines::Unreadable(once) => once.take().map(|()| None),
        }
    }
}

/// One `X-Forwarded-For` entry: an address, bare or with a port as some
/// proxies write it (`192.0.2.1:4711`, `[2001:db8::1]:4711`, `[2001:db8::1]`).
fn x_forwarded_for_hop(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    let (host, port) = entry.split_once(':')?;
    is_port(port)
        .then(|| host.parse::<Ipv4Addr>().ok())
        .flatten()
        .map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

/// One `Forwarded` element's `for=` address (RFC 7239 §5.2: bare IPv4, a
/// quoted `"[IPv6]"`, either with a port); `None` for `unknown`, an
/// obfuscated `_name`, no `for=` or anything unreadable.
fn forwarded_hop(element: &str) -> Option<IpAddr> {
    let parsed = rfc7239::parse(element).next()?.ok()?;
    let node = parsed.forwarded_for?;
    node.ip().map(|ip| ip.to_canonical())
}

/// The client's address (see the module docs): what per-address limits,
/// anonymous visitors and logs key on. Resolved once per request and kept
/// in its extensions, so the REST span and a WebSocket upgrade agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    /// Only the peer address can be missing, and only if the server was
    /// started without connect info: a bug, answered 500.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(known) = parts.extensions.get::<ClientAddr>() {
            return Ok(*known);
        }
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let client = ClientAddr(state.proxies.client(peer.ip(), &parts.headers));
        parts.extensions.insert(client);
        Ok(client)
    }
}

/// Serves a request inside a span naming its client (`request{client=…}`),
/// so that whatever is logged while it is served says who asked; the
/// address is resolved here once and kept for the handler.
pub async fn in_span(client: ClientAddr, request: Request, next: Next) -> Response {
    let span = tracing::info_span!("request", client = %client.0);
    next.run(request).instrument(span).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const PROXY: &str = "10.0.0.2";

    fn proxies(list: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let mut config = Config::default();
        config.server.trusted_proxies = list.iter().map(|s| s.to_string()).collect();
        config.server.forwarded_header = header;
        TrustedProxies::new(&config).unwrap()
    }

    fn xff() -> TrustedProxies {
        proxies(
            &["10.0.0.0/24", "2001:db8:ffff::/48"],
            ForwardedHeader::XForwardedFor,
        )
    }

    fn fwd() -> TrustedProxies {
        proxies(&["10.0.0.0/24", "::1"], ForwardedHeader::Forwarded)
    }

    fn headers(name: &str, lines: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(line).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// The client `p` resolves for a request from `peer` with one line of `name`.
    fn resolve(p: &TrustedProxies, peer: &str, name: &str, line: &str) -> IpAddr {
        p.client(ip(peer), &headers(name, &[line.as_bytes()]))
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let p = xff();
        let x = "x-forwarded-for";
        assert_eq!(resolve(&p, PROXY, x, "203.0.113.9"), ip("203.0.113.9"));
        // The client's own claim (1.1.1.1) is to the left of what our proxies saw.
        assert_eq!(
            resolve(&p, PROXY, x, "1.1.1.1, 203.0.113.9, 10.0.0.7"),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(
                &p,
                PROXY,
                x,
                " 198.51.100.1 ,203.0.113.9,10.0.0.7,10.0.0.1 "
            ),
            ip("203.0.113.9")
        );
        // Every hop trusted: the leftmost.
        assert_eq!(resolve(&p, PROXY, x, "10.0.0.5, 10.0.0.7"), ip("10.0.0.5"));
        // Several lines are one list, in order.
        let two = headers(x, &[b"1.1.1.1, 203.0.113.9", b"10.0.0.7"]);
        assert_eq!(p.client(ip(PROXY), &two), ip("203.0.113.9"));
        // Empty list elements are no hops.
        assert_eq!(
            resolve(&p, PROXY, x, "203.0.113.9,, 10.0.0.7,"),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn untrusted_peers_cannot_name_anyone() {
        let p = xff();
        let x = "x-forwarded-for";
        assert_eq!(resolve(&p, "192.0.2.1", x, "203.0.113.9"), ip("192.0.2.1"));
        assert_eq!(
            resolve(&p, "10.0.1.1", x, "203.0.113.9"),
            ip("10.0.1.1"),
            "outside /24"
        );
        let none = TrustedProxies::default();
        assert_eq!(
            resolve(&none, PROXY, x, "203.0.113.9"),
            ip(PROXY),
            "trust nobody"
        );
        // No header, or another one than configured: the peer.
        assert_eq!(p.client(ip(PROXY), &HeaderMap::new()), ip(PROXY));
        assert_eq!(
            resolve(&p, PROXY, "forwarded", "for=203.0.113.9"),
            ip(PROXY)
        );
        assert_eq!(resolve(&fwd(), PROXY, x, "203.0.113.9"), ip(PROXY));
        assert_eq!(resolve(&p, PROXY, "x-real-ip", "203.0.113.9"), ip(PROXY));
    }

    #[test]
    fn ipv6_ports_and_mapped_addresses() {
        let p = xff();
        let x = "x-forwarded-for";
        for (entry, client) in [
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("203.0.113.9:4711", "203.0.113.9"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
        ] {
            assert_eq!(resolve(&p, PROXY, x, entry), ip(client), "{entry}");
        }
        // An IPv6 proxy, and an IPv4 proxy seen through a dual-stack socket.
        assert_eq!(
            resolve(&p, "2001:db8:ffff::9", x, "2001:db8::1, 2001:db8:ffff::3"),
            ip("2001:db8::1")
        );
        assert_eq!(
            resolve(&p, "::ffff:10.0.0.2", x, "203.0.113.9"),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(&p, "::ffff:192.0.2.1", x, "203.0.113.9"),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn forwarded_for_elements_per_rfc_7239() {
        let p = fwd();
        let f = "forwarded";
        for (line, client) in [
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            (r#"for="[2001:db8::1]:4711""#, "2001:db8::1"),
            (r#"For="[2001:db8:cafe::17]""#, "2001:db8:cafe::17"),
            ("for=192.0.2.43, for=10.0.0.9", "192.0.2.43"),
            (
                r#"for=198.51.100.17;by=10.0.0.3, for="[::1]""#,
                "198.51.100.17",
            ),
            (
                "for=1.1.1.1, for=192.0.2.43;proto=https, for=10.0.0.9",
                "192.0.2.43",
            ),
        ] {
            assert_eq!(resolve(&p, PROXY, f, line), ip(client), "{line}");
        }
        assert_eq!(resolve(&p, "::1", f, "for=192.0.2.60"), ip("192.0.2.60"));
    }

    #[test]
    fn hostile_headers_fall_back_to_the_peer_and_never_panic() {
        let (x, f) = ("x-forwarded-for", "forwarded");
        let huge = "9".repeat(100_000);
        let many_hops = vec!["10.0.0.7"; 10_000].join(",");
        let behind_many = format!("203.0.113.9,{}", vec!["10.0.0.7"; MAX_HOPS].join(","));
        let garbage_left = format!("{huge},zzz,203.0.113.9,10.0.0.7");
        for (p, name, line) in [
            (xff(), x, "not an address"),
            (xff(), x, "203.0.113.9, garbage"),
            (xff(), x, "unknown"),
            (xff(), x, "_hidden"),
            (xff(), x, "203.0.113.9:99999"),
            (xff(), x, "203.0.113.9:"),
            (xff(), x, "[2001:db8::1"),
            (xff(), x, "[2001:db8::1]x"),
            (xff(), x, "2001:db8::1:4711x"),
            (xff(), x, "[203.0.113.9]:1"),
            (xff(), x, "203.0.113.9 10.0.0.7"),
            (xff(), x, huge.as_str()),
            (xff(), x, many_hops.as_str()),
            (xff(), x, behind_many.as_str()),
            (xff(), x, ","),
            (xff(), x, ""),
            (fwd(), f, "for=unknown"),
            (fwd(), f, "for=_hidden"),
            (fwd(), f, "for=_hidden, for=10.0.0.9"),
            (fwd(), f, "for=192.0.2.43, for=unknown"),
            (fwd(), f, "proto=https"),
            (fwd(), f, "for=2001:db8::1"),
            (fwd(), f, r#"for="[2001:db8::1""#),
            (fwd(), f, "for=192.0.2.60;junk"),
            (fwd(), f, "for=192.0.2.60:http"),
            (fwd(), f, "for"),
            (fwd(), f, ";;;"),
            (fwd(), f, huge.as_str()),
        ] {
            assert_eq!(
                resolve(&p, PROXY, name, line),
                ip(PROXY),
                "{name}: {line:.60}"
            );
        }
        // What the client put left of the first untrusted hop is never read.
        assert_eq!(resolve(&xff(), PROXY, x, &garbage_left), ip("203.0.113.9"));
        // Exactly as many trusted hops as are read: the leftmost of them.
        let at_most = format!("203.0.113.9,{}", vec!["10.0.0.7"; MAX_HOPS - 1].join(","));
        assert_eq!(resolve(&xff(), PROXY, x, &at_most), ip("203.0.113.9"));
        // Bytes that are no text.
        let bytes = headers(x, &[b"203.0.113.9", b"\xff\xfe"]);
        assert_eq!(xff().client(ip(PROXY), &bytes), ip(PROXY));
        let bytes = headers(x, &[b"\xff\xfe", b"203.0.113.9"]);
        assert_eq!(xff().client(ip(PROXY), &bytes), ip("203.0.113.9"));
    }
}
