//! Uploads for `image` and `file` messages: validated, stored once per
//! content hash under `DATA_DIR/attachments/`, served to the uploader and to
//! members of rooms whose messages reference them.

use super::{Caller, Chat, ChatError, ChatResult};
use crate::store::AttachmentRecord;
use confab_protocol::{Attachment, MessageType, Timestamp};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// An upload as the transport received it.
#[derive(Debug)]
pub struct Upload {
    /// The client's file name.
    pub name: Option<String>,
    /// The client's MIME type.
    pub content_type: Option<String>,
    /// The bytes.
    pub bytes: bytes::Bytes,
}

/// The wire form of an upload.
pub fn wire(record: &AttachmentRecord) -> Attachment {
    Attachment {
        id: record.id.clone(),
        url: format!("/api/v1/attachments/{}", record.id),
        content_type: record.content_type.clone(),
        size: u64::try_from(record.size).unwrap_or(0),
        name: record.name.clone(),
    }
}

impl Chat {
    fn attachments_dir(&self) -> PathBuf {
        self.config.data_dir.join("attachments")
    }

    /// Validates and stores an upload. Images must be what they claim: the
    /// bytes are sniffed, and a claimed `image/*` that is not a known image
    /// format is refused; the stored type is the sniffed one.
    pub async fn upload(&self, caller: &Caller, upload: Upload) -> ChatResult<Attachment> {
        if !caller.can_write() {
            return Err(ChatError::Forbidden("read-only users cannot upload".into()));
        }
        let max = self.config.limits.max_upload_bytes;
        if upload.bytes.len() > max {
            return Err(ChatError::TooLarge { max });
        }
        if upload.bytes.is_empty() {
            return Err(ChatError::InvalidField("the file is empty".into()));
        }
        let claimed = upload
            .content_type
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty());
        if let Some(t) = &claimed {
            let shaped = t.len() <= 100
                && t.split_once('/')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
                && t.chars().all(|c| c.is_ascii_graphic());
            if !shaped {
                return Err(ChatError::InvalidField(
                    "content type is not a MIME type".into(),
                ));
            }
        }
        let sniffed = infer::get(&upload.bytes).map(|kind| kind.mime_type().to_owned());
        let sniffed_image = sniffed.as_ref().filter(|t| t.starts_with("image/"));
        let content_type = match (&claimed, sniffed_image) {
            (Some(t), None) if t.starts_with("image/") => {
                return Err(ChatError::InvalidField(format!(
                    "the file is not a {t} image (its bytes are not a known image format)"
                )));
            }
            (_, Some(image)) => image.clone(),
            (Some(t), None) => t.clone(),
            (None, None) => sniffed.unwrap_or_else(|| "application/octet-stream".into()),
        };
        let name = upload
            .name
            .as_deref()
            .and_then(|n| n.rsplit(['/', '\\']).next())
            .map(|n| {
                n.chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect::<String>()
            })
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "file".into());
        // Hashing up to `max_upload_bytes` takes milliseconds of CPU: off the
        // async workers, so the connections they serve do not wait for it.
        let bytes = upload.bytes.clone();
        let sha256 = tokio::task::spawn_blocking(move || format!("{:x}", Sha256::digest(&bytes)))
            .await
            .map_err(|e| ChatError::Io(std::io::Error::other(e)))?;
        self.write_blob(&sha256, &upload.bytes).await?;
        let record = AttachmentRecord {
            id: uuid::Uuid::now_v7().to_string(),
            uploader_id: caller.id().to_owned(),
            sha256,
            content_type,
            size: i64::try_from(upload.bytes.len()).unwrap_or(i64::MAX),
            name,
            created_at: Timestamp::now(),
        };
        self.store.create_attachment(record.clone()).await?;
        Ok(wire(&record))
    }

    /// Writes the bytes once per content hash (write to a temporary file,
    /// then rename, so a crash never leaves a half file under the hash).
    async fn write_blob(&self, sha256: &str, bytes: &[u8]) -> ChatResult<()> {
        let dir = self.attachments_dir();
        let path = dir.join(sha256);
        if tokio::fs::try_exists(&path).await? {
            return Ok(());
        }
        tokio::fs::create_dir_all(&dir).await?;
        let temp = dir.join(format!(".{}.tmp", uuid::Uuid::now_v7()));
        tokio::fs::write(&temp, bytes).await?;
        tokio::fs::rename(&temp, &path).await?;
        Ok(())
    }

    /// An upload and where its bytes are, for the uploader, admins, and
    /// members of a room with a message referencing it.
    pub async fn download(
        &self,
        caller: &Caller,
        id: &str,
    ) -> ChatResult<(AttachmentRecord, PathBuf)> {
        let record = self
            .store
            .get_attachment(id)
            .await?
            .ok_or(ChatError::NotFound("attachment"))?;
        let allowed = record.uploader_id == caller.id()
            || caller.is_admin()
            || self.store.attachment_shared_with(id, caller.id()).await?;
        if !allowed {
            return Err(ChatError::Forbidden(
                "only the uploader and members of rooms where it was shared may download this"
                    .into(),
            ));
        }
        let path = self.attachments_dir().join(&record.sha256);
        Ok((record, path))
    }

    /// The upload an `image`/`file` message may reference: it exists, the
    /// sender uploaded it (or is an admin), and images are images.
    pub(super) async fn usable_attachment(
        &self,
        caller: &Caller,
        id: Option<&str>,
        message_type: MessageType,
    ) -> ChatResult<AttachmentRecord> {
        let id = id.ok_or_else(|| {
            ChatError::InvalidField(format!(
                "a {} message needs `attachment_id`",
                message_type.as_str()
            ))
        })?;
        let record = self
            .store
            .get_attachment(id)
            .await?
            .ok_or(ChatError::NotFound("attachment"))?;
        if record.uploader_id != caller.id() && !caller.is_admin() {
            return Err(ChatError::Forbidden(
                "only the uploader may send this attachment".into(),
            ));
        }
        if message_type == MessageType::Image && !record.content_type.starts_with("image/") {
            return Err(ChatError::InvalidField(
                "an image message needs an image upload".into(),
            ));
        }
        Ok(record)
    }
}
