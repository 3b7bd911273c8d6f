//! The browser client's "pick a name" sign-in (`auth.dev_login`): a token
//! for whoever asks, so that two browser windows chat a minute after
//! `confab serve`. On by default only while confab generated its own JWT
//! secret and listens on loopback, where nobody else can ask; an app that
//! configures its secret or listens publicly has it off unless it says `on`.

use super::{Chat, ChatError, ChatResult};
use crate::auth::TokenRequest;
use crate::identity::{check_id, reserved_user};
use std::time::Duration;

/// How long a dev token lasts.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The longest display name.
const MAX_NAME_CHARS: usize = 64;

/// What `POST /api/v1/dev/login` answers.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DevToken {
    /// A user token (HS256, signed with the server's secret).
    pub token: String,
    /// The user it signs in.
    pub user_id: String,
    /// Seconds it is valid for.
    pub expires_in: u64,
}

/// `name` as a user id: lower-case ASCII letters and digits kept, every
/// run of anything else one `-`, none at the ends.
fn slug(name: &str) -> String {
    let mut id = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    id.trim_end_matches('-').to_owned()
}

impl Chat {
    /// A token for `name` (as `user_id`, or its [`slug`]). Refused:
    /// a blank, over-long or control-character name, a bad or reserved id.
    pub fn dev_login(&self, name: &str, user_id: Option<&str>) -> ChatResult<DevToken> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(ChatError::InvalidField(format!(
                "name must be 1–{MAX_NAME_CHARS} characters, none of them control characters"
            )));
        }
        let user_id = match user_id {
            Some(id) => id.to_owned(),
            None => slug(name),
        };
        if user_id.is_empty() {
            return Err(ChatError::InvalidField(
                "a name with letters or digits, or a user_id, is needed".into(),
            ));
        }
        check_id("user_id", &user_id).map_err(|e| ChatError::InvalidField(e.0))?;
        if let Some(why) = reserved_user(&user_id) {
            return Err(ChatError::InvalidField(why));
        }
        let token = self
            .auth
            .mint(&TokenRequest {
                user_id: user_id.clone(),
                name: Some(name.to_owned()),
                role: None,
                ttl: DEV_TOKEN_TTL,
            })
            .map_err(ChatError::Auth)?;
        Ok(DevToken {
            token,
            user_id,
            expires_in: DEV_TOKEN_TTL.as_secs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn names_become_ids_of_letters_digits_and_dashes() {
        assert_eq!(slug("Alice"), "alice");
        assert_eq!(slug("  Jean-Luc  Picard "), "jean-luc-picard");
        assert_eq!(slug("Zoë_2"), "zo-2");
        assert_eq!(slug("🙂"), "");
        assert_eq!(slug("--a--"), "a");
    }
}
