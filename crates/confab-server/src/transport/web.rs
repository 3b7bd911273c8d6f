//! The browser client (`GET /`): a single page and the `confab-js` library
//! it is built on, embedded in the binary so that `confab serve` alone gives
//! a working chat at its address. Every answer carries a strict
//! Content-Security-Policy: scripts and styles from this server only, no
//! inline code, nothing framed, so a message that slipped past the page's
//! text rendering still could not run.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What the page may load and do: its own scripts, styles and images (and
/// uploads previewed as `blob:`), WebSockets and fetches to this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its path under `/app/`, its type and its text.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Embeds a file of the page (`web/`) or of the library (`clients/js/src/`).
macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_str!($file),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file served under `/app/`; `GET /` is `index.html`.
static ASSETS: &[Asset] = &[
    asset!(
        "index.html",
        "../../web/index.html",
        "text/html; charset=utf-8"
    ),
    asset!("app.css", "../../web/app.css", "text/css; charset=utf-8"),
    // The page's modules (web/): app.js is the entry point.
    asset!("app.js", "../../web/app.js", JS),
    asset!("banner.js", "../../web/banner.js", JS),
    asset!("composer.js", "../../web/composer.js", JS),
    asset!("conversation.js", "../../web/conversation.js", JS),
    asset!("dom.js", "../../web/dom.js", JS),
    asset!("format.js", "../../web/format.js", JS),
    asset!("message.js", "../../web/message.js", JS),
    asset!("rooms.js", "../../web/rooms.js", JS),
    asset!("session.js", "../../web/session.js", JS),
    asset!("signin.js", "../../web/signin.js", JS),
    asset!("store.js", "../../web/store.js", JS),
    // confab-js, as its package ships it: the page imports `confab/confab.js`.
    asset!(
        "confab/confab.js",
        "../../../../clients/js/src/confab.js",
        JS
    ),
    asset!(
        "confab/connection.js",
        "../../../../clients/js/src/connection.js",
        JS
    ),
    asset!(
        "confab/emitter.js",
        "../../../../clients/js/src/emitter.js",
        JS
    ),
    asset!(
        "confab/errors.js",
        "../../../../clients/js/src/errors.js",
        JS
    ),
    asset!("confab/live.js", "../../../../clients/js/src/live.js", JS),
    asset!(
        "confab/policy.js",
        "../../../../clients/js/src/policy.js",
        JS
    ),
    asset!("confab/rest.js", "../../../../clients/js/src/rest.js", JS),
    asset!("confab/rooms.js", "../../../../clients/js/src/rooms.js", JS),
    asset!(
        "confab/sequence.js",
        "../../../../clients/js/src/sequence.js",
        JS
    ),
    asset!(
        "confab/subscriptions.js",
        "../../../../clients/js/src/subscriptions.js",
        JS
    ),
    asset!("confab/token.js", "../../../../clients/js/src/token.js", JS),
];

/// `GET /`: the page.
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /app/{*path}`: a file of the page or of `confab-js`.
pub async fn asset(Path(path): Path<String>) -> Response {
    serve(&path)
}

/// The embedded file at `path`, with its security headers, or 404.
fn serve(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Embedded in the binary: a new binary may change them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The paths served under `/app/` (tests check every library file is one).
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|asset| asset.path)
}
