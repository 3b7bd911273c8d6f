//! Any bytes a WebSocket client can send as a text frame: decoding never
//! panics, what decodes is a JSON object of a known frame type, every refusal
//! carries a contract code and a message for people, and the validation that
//! follows decoding (ids, metadata) never panics on what got through.
#![no_main]

use confab_protocol::client::CLIENT_FRAME_TYPES;
use confab_protocol::{ClientFrame, decode_client_frame};
use confab_server::core::{validate_id, validate_metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode_client_frame(text) {
        Ok(envelope) => {
            let value: serde_json::Value =
                serde_json::from_str(text).expect("a decoded frame is JSON");
            let kind = value["type"].as_str().expect("a decoded frame has a type");
            assert!(CLIENT_FRAME_TYPES.contains(&kind), "{kind}");
            if let Some(room_id) = envelope.frame.room_id() {
                let _ = validate_id("room", room_id);
            }
            if let ClientFrame::SendMessage(send) = &envelope.frame {
                if let Some(metadata) = &send.metadata {
                    let _ = validate_metadata(metadata, 16 * 1024);
                }
            }
        }
        Err(error) => {
            assert!(!error.message.is_empty());
            assert!(!error.code.as_str().is_empty());
        }
    }
});
