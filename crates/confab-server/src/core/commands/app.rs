//! App commands (protocol.md §8.2): the signed call to the app's back-end
//! and what its answer may be. The app's logic lives behind one URL; confab
//! checks roles before calling, bounds the calls in flight, and turns every
//! way the app can fail into `upstream_error`.

use crate::config::{CommandConfig, Config};
use crate::metrics::AppCommandCounters;
use crate::signing::{Signer, read_answer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The most of an app's answer confab reads; a longer one is an
/// `upstream_error` (the answer goes to one connection, as one frame).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// What confab POSTs to the app for one command.
#[derive(Debug, Serialize)]
pub struct Call<'a> {
    /// The command word, without the slash.
    pub command: &'a str,
    /// The rest of the line after the word, trimmed.
    pub args: &'a str,
    /// The whole line.
    pub text: &'a str,
    /// Who ran it.
    pub user: CallUser<'a>,
    /// Where.
    pub room_id: &'a str,
    /// The request's `req_id`, as the client sent it (`null` without one).
    pub req_id: Option<&'a confab_protocol::ReqId>,
}

/// The caller, as the app's role checks and logs need it.
#[derive(Debug, Serialize)]
pub struct CallUser<'a> {
    /// The user id.
    pub id: &'a str,
    /// The display name, if known.
    pub name: Option<&'a str>,
    /// The global role's name (`analyst` as much as `admin`).
    pub role: &'a str,
}

/// The app's answer (a 2xx with a JSON object).
#[derive(Debug, Deserialize)]
pub struct Answer {
    /// Whether the command did what was asked (default `true`).
    #[serde(default = "yes")]
    pub ok: bool,
    /// The answer for the caller.
    #[serde(default)]
    pub text: String,
    /// The answer for programs.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Text to store in the room as a system message; anything but a
    /// string is ignored.
    #[serde(default)]
    pub post: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// Why an app command got no usable answer (`upstream_error`).
#[derive(Debug, thiserror::Error)]
pub enum Upstream {
    /// `limits.max_app_commands_in_flight` calls are waiting already.
    #[error("too many commands are waiting for the app; try again in a moment")]
    Busy,
    /// No answer within the command's `timeout_s`.
    #[error("the app did not answer in time")]
    Timeout,
    /// Unreachable, refused, or cut off.
    #[error("the app could not be reached")]
    Unreachable(#[source] reqwest::Error),
    /// An answer other than 2xx.
    #[error("the app answered {0}")]
    Status(reqwest::StatusCode),
    /// A 2xx whose body is not the JSON object of an answer.
    #[error("the app's answer is not a valid command answer")]
    BadAnswer,
    /// Longer than confab reads.
    #[error("the app's answer is too long")]
    TooLong,
    /// No HTTP client (TLS could not be set up at start).
    #[error("the app cannot be called from this node")]
    NoClient,
}

/// Calls app commands: one HTTP client, the signer, and the bound on calls
/// in flight on this node.
pub struct AppCalls {
    client: Option<reqwest::Client>,
    signer: Option<Signer>,
    slots: Arc<Semaphore>,
    counters: AppCommandCounters,
}

impl AppCalls {
    /// Ready for the configured commands. Builds the HTTP client only when
    /// some command calls the app.
    pub fn new(config: &Config, counters: AppCommandCounters) -> AppCalls {
        let calls_app = config.commands.iter().any(|c| c.url.is_some());
        let client = calls_app
            .then(|| {
                reqwest::Client::builder()
                    .build()
                    .inspect_err(|error| {
                        tracing::error!(%error, "the app commands' HTTP client could not be built")
                    })
                    .ok()
            })
            .flatten();
        // Checked when the configuration was validated.
        let signer = Signer::from_secret(&config.webhook.secret).ok();
        AppCalls {
            client,
            signer,
            slots: Arc::new(Semaphore::new(config.limits.max_app_commands_in_flight)),
            counters,
        }
    }

    /// POSTs `call` to `command.url`, signed, and reads the answer within
    /// `command.timeout_s`.
    pub async fn call(&self, command: &CommandConfig, call: &Call<'_>) -> Result<Answer, Upstream> {
        let outcome = self.attempt(command, call).await;
        let counter = match &outcome {
            Ok(_) => &self.counters.ok,
            Err(Upstream::Busy) => &self.counters.busy,
            Err(Upstream::Timeout) => &self.counters.timeout,
            Err(_) => &self.counters.error,
        };
        counter.inc();
        if let Err(error) = &outcome {
            tracing::warn!(command = command.name, %error, "app command failed");
        }
        outcome
    }

    async fn attempt(&self, command: &CommandConfig, call: &Call<'_>) -> Result<Answer, Upstream> {
        let (Some(client), Some(signer), Some(url)) = (&self.client, &self.signer, &command.url)
        else {
            return Err(Upstream::NoClient);
        };
        let _slot = self.slots.try_acquire().map_err(|_| Upstream::Busy)?;
        // Serializing borrowed strings and a JSON id cannot fail.
        let body = serde_json::to_vec(call).map_err(|_| Upstream::BadAnswer)?;
        let request = signer.post(client, url, "cmd", body);
        let exchange = async {
            let mut response = request.send().await.map_err(Upstream::Unreachable)?;
            if !response.status().is_success() {
                return Err(Upstream::Status(response.status()));
            }
            let read = read_answer(&mut response, MAX_ANSWER_BYTES)
                .await
                .map_err(Upstream::Unreachable)?
                .ok_or(Upstream::TooLong)?;
            serde_json::from_slice::<Answer>(&read).map_err(|_| Upstream::BadAnswer)
        };
        tokio::time::timeout(Duration::from_secs(command.timeout_s), exchange)
            .await
            .map_err(|_| Upstream::Timeout)?
    }
}
