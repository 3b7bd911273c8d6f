//! Stored records → the wire objects of protocol.md §2.2.

use crate::store::{MessageRecord, UserRecord};
use confab_protocol::{Message, Sender, User};

/// The message object every frame and REST answer carries.
pub fn message(record: MessageRecord) -> Message {
    Message {
        id: record.id,
        room_id: record.room_id,
        seq: record.seq,
        sender: Sender {
            id: record.sender_id,
            username: record.sender_username,
            first_name: record.sender_name.clone(),
            name: record.sender_name,
        },
        content: if record.deleted {
            String::new()
        } else {
            record.content
        },
        message_type: record.message_type,
        reply_to: record.reply_to,
        metadata: record.metadata,
        attachment: record.attachment.as_ref().map(super::attachments::wire),
        location: record.location,
        reactions: record.reactions,
        timestamp: record.created_at,
        edited_at: record.edited_at,
        deleted: record.deleted,
        is_read: false,
    }
}

/// The user object of `/api/v1/me`.
pub fn user(record: UserRecord) -> User {
    User {
        id: record.id,
        username: record.username,
        name: record.name,
        role: record.role.as_str().to_owned(),
        disabled: record.disabled,
        created_at: record.created_at,
    }
}
