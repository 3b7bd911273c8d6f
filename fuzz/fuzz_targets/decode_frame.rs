//! Any bytes a WebSocket client can send as a text frame: decoding never
//! panics, what decodes is a JSON object of a known frame type, and every
//! refusal carries a contract code and a message for people.
#![no_main]

use confab_protocol::client::CLIENT_FRAME_TYPES;
use confab_protocol::decode_client_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode_client_frame(text) {
        Ok(_envelope) => {
            let value: serde_json::Value =
                serde_json::from_str(text).expect("a decoded frame is JSON");
            let kind = value["type"].as_str().expect("a decoded frame has a type");
            assert!(CLIENT_FRAME_TYPES.contains(&kind), "{kind}");
        }
        Err(error) => {
            assert!(!error.message.is_empty());
            assert!(!error.code.as_str().is_empty());
        }
    }
});
