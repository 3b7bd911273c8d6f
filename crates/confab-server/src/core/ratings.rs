//! Satisfaction ratings of assistant sessions (issue 17): whoever used an
//! `assistant` room rates it 1–5, with optional feedback, usually once the
//! session is closed. One rating per session; a later one replaces it.
//!
//! A rating is not a message: it does not enter the room's log, take a seq
//! or reach anyone live. So read-only callers (global `viewer`s, room
//! viewers) may rate, as the visitor of a help desk often is one; what
//! matters is that they are in the session. REST (`/api/v1/rooms/{id}/rating`)
//! and the `/ws/assistant/` dialect's `session_close` both come here.

use super::caller::ASSISTANT_ROOM;
use super::{Caller, Chat, ChatError, ChatResult};
use crate::store::{RatingRecord, RoomRecord};
use confab_protocol::Timestamp;
use serde::Serialize;

/// The lowest rating.
pub const MIN_RATING: i64 = 1;
/// The highest rating.
pub const MAX_RATING: i64 = 5;

/// A session's rating, as REST answers it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rating {
    /// The rated session (an `assistant` room).
    pub room_id: String,
    /// Who rated it: a member, or the user the server key acted as.
    pub user_id: String,
    /// 1 (poor) to 5 (excellent).
    #[schema(minimum = 1, maximum = 5)]
    pub rating: i64,
    /// What the rater wrote; `null` when nothing (blank counts as nothing).
    #[schema(required = true)]
    pub feedback: Option<String>,
    /// When it was given (a later rating replaces it).
    pub rated_at: Timestamp,
}

impl From<RatingRecord> for Rating {
    fn from(record: RatingRecord) -> Self {
        Rating {
            room_id: record.room_id,
            user_id: record.user_id,
            rating: record.rating,
            feedback: record.feedback,
            rated_at: record.rated_at,
        }
    }
}

/// Ratings across every session, for `GET /api/v1/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RatingSummary {
    /// Sessions rated (each counted once, with its latest rating).
    pub count: i64,
    /// The mean of their ratings; `null` when none is rated.
    #[schema(required = true)]
    pub average: Option<f64>,
}

impl Chat {
    /// Rates an assistant session for the caller, replacing the session's
    /// earlier rating (whoever gave it), and returns it as stored.
    ///
    /// Members of the room (viewers too, see the module docs), global
    /// admins and the server key may rate; others are refused as by every
    /// room operation (`forbidden`, `not_found` for an unknown room). The
    /// room must be of type `assistant`, open or closed; `rating` is 1–5;
    /// `feedback` is at most `limits.max_message_length` characters, and
    /// blank feedback is stored as none. Every refusal but access is
    /// `invalid_field`.
    pub async fn rate_session(
        &self,
        caller: &Caller,
        room_id: &str,
        rating: i64,
        feedback: Option<String>,
    ) -> ChatResult<Rating> {
        let (room, _) = self.room_access(caller, room_id).await?;
        require_session(&room)?;
        if !(MIN_RATING..=MAX_RATING).contains(&rating) {
            return Err(ChatError::InvalidField(format!(
                "rating must be a whole number from {MIN_RATING} to {MAX_RATING}"
            )));
        }
        let feedback = self.checked_feedback(feedback)?;
        let stored = self
            .store
            .rate_session(RatingRecord {
                room_id: room.id,
                user_id: caller.id().to_owned(),
                rating,
                feedback,
                rated_at: Timestamp::now(),
            })
            .await?;
        Ok(stored.into())
    }

    /// The session's rating (`None` until rated), for whoever may rate it.
    pub async fn session_rating(
        &self,
        caller: &Caller,
        room_id: &str,
    ) -> ChatResult<Option<Rating>> {
        let (room, _) = self.room_access(caller, room_id).await?;
        require_session(&room)?;
        Ok(self.store.get_rating(&room.id).await?.map(Rating::from))
    }

    /// Ratings across every session (for [`Chat::stats`]).
    pub(super) async fn rating_summary(&self) -> ChatResult<RatingSummary> {
        let (count, average) = self.store.rating_summary().await?;
        Ok(RatingSummary { count, average })
    }

    /// Feedback as stored: blank is none; longer than a message may be, or
    /// holding U+0000 (which PostgreSQL cannot store), is refused.
    fn checked_feedback(&self, feedback: Option<String>) -> ChatResult<Option<String>> {
        let Some(text) = feedback.filter(|text| !text.trim().is_empty()) else {
            return Ok(None);
        };
        let max = self.config.limits.max_message_length;
        if text.chars().count() > max {
            return Err(ChatError::InvalidField(format!(
                "feedback must be at most {max} characters"
            )));
        }
        if text.contains('\0') {
            return Err(ChatError::InvalidField(
                "feedback may not contain U+0000".into(),
            ));
        }
        Ok(Some(text))
    }
}

/// Refuses rooms that are not assistant sessions: only those are rated.
fn require_session(room: &RoomRecord) -> ChatResult<()> {
    if room.room_type == ASSISTANT_ROOM {
        Ok(())
    } else {
        Err(ChatError::InvalidField(
            "only assistant sessions are rated".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(room_type: &str) -> RoomRecord {
        RoomRecord {
            id: "r".into(),
            name: None,
            room_type: room_type.into(),
            metadata: serde_json::json!({}),
            closed: true,
            last_seq: 0,
            last_activity: Timestamp(0),
            created_at: Timestamp(0),
            direct_key: None,
        }
    }

    #[test]
    fn only_assistant_rooms_are_sessions_closed_or_not() {
        assert!(require_session(&room("assistant")).is_ok());
        for other in ["group", "direct", "job", "assistants"] {
            let err = require_session(&room(other)).unwrap_err();
            assert_eq!(err.code(), confab_protocol::ErrorCode::InvalidField);
        }
    }
}
