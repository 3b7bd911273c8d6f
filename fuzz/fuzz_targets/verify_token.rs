//! Any string in a token placement (header, subprotocol, first frame, query):
//! verification never panics, and nothing but a token signed with the secret
//! is accepted.
#![no_main]

use confab_server::auth::{Authenticator, bearer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let auth = Authenticator::new("fuzz-secret", "fuzz-key", 30);
    let token = bearer(text).unwrap_or(text);
    let _ = auth.is_server_key(token);
    if let Ok(identity) = auth.verify(token) {
        // Random bytes never forge a signature; a corpus entry that is a real
        // token (signed with this secret) is the only way here.
        assert!(!identity.user_id.is_empty());
    }
});
