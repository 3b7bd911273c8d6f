//! Every refusal reaches a client that is still sending its body.
//!
//! A request refused before its body is read (an upload without a token:
//! 401; one over the size limit: 413) is answered while the client is still
//! writing. hyper then stops reading and closes the connection after the
//! answer; the kernel, closing a socket with unread bytes, resets it, and a
//! client that writes its whole body before it reads (browsers' `fetch`
//! with `FormData`, Python's `httpx.AsyncClient`) sees a dropped connection
//! instead of the status and its JSON body.
//!
//! So a request with a body reaches its handler through a body this layer
//! can take back: when the handler is done without reading it all, the rest
//! is read and thrown away (at most [`DRAIN_TIME`] and a configured number
//! of bytes, like nginx's lingering close) before the answer goes out. A
//! client that asked `Expect: 100-continue` and whose body was never asked
//! for is not drained: it waits for the answer instead of sending.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// The longest a refused request's unread body is read for.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The request body, shared between the handler's [`Lent`] body and this
/// layer, which takes it back afterwards.
#[derive(Default)]
struct Shared {
    /// `None` once taken back.
    body: Option<Body>,
    /// The handler asked for at least one frame.
    polled: bool,
    /// The body reached its end (or failed): nothing is left to drain.
    finished: bool,
}

type SharedBody = Arc<Mutex<Shared>>;

/// The body a handler sees: every poll goes to the shared one.
struct Lent(SharedBody);

impl HttpBody for Lent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut shared = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        shared.polled = true;
        let Some(body) = shared.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            shared.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let shared = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        shared.body.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        // Content-Length checks (the upload route's body limit) read this.
        let shared = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        shared
            .body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

/// The middleware: lends the body to the handler, then drains what it left
/// (at most `max_bytes`) before the answer is sent.
pub async fn drain_unread_body(request: Request, next: Next, max_bytes: usize) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let expects_continue = parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let shared: SharedBody = Arc::new(Mutex::new(Shared {
        body: Some(body),
        ..Shared::default()
    }));
    let lent = Body::new(Lent(shared.clone()));
    let mut response = next.run(Request::from_parts(parts, lent)).await;
    let (left, polled) = {
        let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let left = shared.body.take().filter(|_| !shared.finished);
        (left, shared.polled)
    };
    let Some(left) = left else {
        return response;
    };
    if expects_continue && !polled {
        return response;
    }
    if !drain(left, max_bytes).await {
        // Past the bounds: the answer still goes out, and the connection
        // ends after it rather than reading on.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads and drops the rest of a body; true when it ended within the bounds.
async fn drain(body: Body, max_bytes: usize) -> bool {
    let deadline = Instant::now() + DRAIN_TIME;
    let mut stream = body.into_data_stream();
    let mut drained = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(None) => return true,
            Ok(Some(Ok(chunk))) => {
                drained = drained.saturating_add(chunk.len());
                if drained > max_bytes {
                    return false;
                }
            }
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}
