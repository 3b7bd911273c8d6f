//! A stand-in for an OpenAI-compatible Chat Completions provider: a real
//! HTTP server on 127.0.0.1 that answers `POST /v1/chat/completions` the way
//! such providers do (server-sent events when asked to stream), and records
//! every request for the test to inspect.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How the provider answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Streams these pieces as `chat.completion.chunk` events, a little
    /// apart, each event split over two TCP writes, then `[DONE]`.
    Stream(Vec<&'static str>),
    /// Answers one plain (non-streamed) completion with this text.
    Plain(&'static str),
    /// Answers this HTTP status with an error body.
    Fail(u16),
    /// Sends the headers and one piece, then nothing for a minute.
    Hang,
    /// Streams one event whose data is not JSON.
    Malformed,
    /// Waits this long, then answers one plain completion with this text
    /// (to see how many requests the server keeps in flight at once).
    Slow(Duration, &'static str),
}

/// One request as the provider received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: Value,
}

/// A running fake provider; stops when dropped.
pub struct FakeProvider {
    /// What `assistant.base_url` should be.
    pub base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// Requests being answered now, and the most there ever were at once.
    load: Arc<Mutex<(usize, usize)>>,
    task: JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProvider {
    /// Starts answering with `behaviour` on a free port.
    pub async fn start(behaviour: Behaviour) -> FakeProvider {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let recorded = requests.clone();
        let load: Arc<Mutex<(usize, usize)>> = Arc::default();
        let counted = load.clone();
        let app = Router::new().route(
            "/v1/chat/completions",
            post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let behaviour = behaviour.clone();
                let recorded = recorded.clone();
                let counted = counted.clone();
                async move {
                    recorded.lock().unwrap().push(Recorded {
                        authorization: headers
                            .get(header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                        body,
                    });
                    if let Behaviour::Slow(wait, _) = behaviour {
                        {
                            let mut load = counted.lock().unwrap();
                            load.0 += 1;
                            load.1 = load.1.max(load.0);
                        }
                        tokio::time::sleep(wait).await;
                        counted.lock().unwrap().0 -= 1;
                    }
                    respond(behaviour)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeProvider {
            base_url: format!("http://{address}/v1"),
            requests,
            load,
            task,
        }
    }

    /// The most requests that were being answered at once (`Slow` only).
    pub fn peak_in_flight(&self) -> usize {
        self.load.lock().unwrap().1
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// One streamed event's bytes.
fn event(delta: &str) -> String {
    let chunk = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}],
    });
    format!("data: {chunk}\n\n")
}

fn respond(behaviour: Behaviour) -> Response {
    match behaviour {
        Behaviour::Stream(pieces) => {
            let mut writes: Vec<String> = vec![event("")];
            for piece in pieces {
                // Split mid-event: the reader must reassemble lines.
                let whole = event(piece);
                let (a, b) = whole.split_at(whole.len() / 2);
                writes.push(a.to_owned());
                writes.push(b.to_owned());
            }
            writes.push("data: [DONE]\n\n".to_owned());
            let body = futures_util::stream::iter(writes).then(|write| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, Infallible>(Bytes::from(write))
            });
            (
                [(header::CONTENT_TYPE, "text/event-stream")],
                Body::from_stream(body),
            )
                .into_response()
        }
        Behaviour::Malformed => (
            [(header::CONTENT_TYPE, "text/event-stream")],
            "data: {\"choices\": [oops\n\n",
        )
            .into_response(),
        Behaviour::Plain(text) | Behaviour::Slow(_, text) => Json(json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }))
        .into_response(),
        Behaviour::Fail(status) => (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"error": {"message": "provider is down", "type": "server_error"}})),
        )
            .into_response(),
        Behaviour::Hang => {
            let body = futures_util::stream::iter([event("Thinking"), String::new()]).then(
                |write| async move {
                    if write.is_empty() {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Ok::<_, Infallible>(Bytes::from(write))
                },
            );
            (
                [(header::CONTENT_TYPE, "text/event-stream")],
                Body::from_stream(body),
            )
                .into_response()
        }
    }
}
