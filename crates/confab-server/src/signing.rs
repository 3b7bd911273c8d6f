//! Signing what confab sends to the app's back-end, as the Standard Webhooks
//! convention does (protocol.md §8), so the app verifies it with any of
//! that convention's libraries: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`;
//! and the one way a call to the app is made and its answer read.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a secret written the Standard Webhooks way.
const SECRET_PREFIX: &str = "whsec_";

/// Signs requests to the app with one key.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// The signer of `webhook.secret`: `whsec_` + base64 of the key bytes,
    /// or any other string, whose UTF-8 bytes are the key.
    pub fn from_secret(secret: &str) -> Result<Signer, String> {
        let key = match secret.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => STANDARD
                .decode(encoded)
                .map_err(|e| format!("the part after `whsec_` is not base64: {e}"))?,
            None => secret.as_bytes().to_vec(),
        };
        Ok(Signer { key })
    }

    /// The three headers of one attempt to deliver `body`.
    pub fn headers(&self, id: &str, timestamp: u64, body: &[u8]) -> [(&'static str, String); 3] {
        [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", self.signature(id, timestamp, body)),
        ]
    }

    /// A JSON POST of `body` to `url`, signed now as the call `kind_…` (a
    /// fresh id with the kind's prefix: `cmd`, `conn`): every call confab
    /// makes to the app goes out this way.
    pub fn post(
        &self,
        client: &reqwest::Client,
        url: &str,
        kind: &str,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let id = format!("{kind}_{}", uuid::Uuid::now_v7().simple());
        self.post_as(client, url, &id, body)
    }

    /// A JSON POST of `body` to `url`, signed now as the call `id`: a
    /// webhook event keeps its id on every attempt (receivers de-duplicate
    /// by it), with a fresh timestamp and signature each time.
    pub fn post_as(
        &self,
        client: &reqwest::Client,
        url: &str,
        id: &str,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in self.headers(id, timestamp, &body) {
            request = request.header(name, value);
        }
        request.body(body)
    }

    /// `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`.
    pub fn signature(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        // HMAC takes a key of any length: this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            unreachable!("HMAC accepts keys of every length")
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The app's answer to a call, read whole unless it is longer than `max`
/// bytes (`Ok(None)`): an answer goes to one connection, and a runaway one
/// must not fill the server's memory.
pub async fn read_answer(
    response: &mut reqwest::Response,
    max: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut read = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if read.len() + chunk.len() > max {
            return Ok(None);
        }
        read.extend_from_slice(&chunk);
    }
    Ok(Some(read))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification: what every
    /// verifying library checks against.
    #[test]
    fn signs_as_the_standard_webhooks_example() {
        let signer = Signer::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = signer.signature(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_plain_secret_is_its_own_bytes_and_bad_base64_is_refused() {
        let plain = Signer::from_secret("s3cret").unwrap();
        let encoded = Signer::from_secret(&format!("whsec_{}", STANDARD.encode("s3cret"))).unwrap();
        assert_eq!(
            plain.signature("a", 1, b"{}"),
            encoded.signature("a", 1, b"{}")
        );
        assert!(Signer::from_secret("whsec_not base64!").is_err());
    }
}
