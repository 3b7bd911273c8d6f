//! Signing what confab sends to the app's back-end, as the Standard Webhooks
//! convention does (protocol.md §8), so the app verifies it with any of
//! that convention's libraries: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

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
