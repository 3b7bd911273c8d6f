//! The identities the server keeps for itself and the one rule every id
//! follows.
//!
//! Token verification ([`crate::auth`]) and core both need these, so they
//! live here, below both: a token may never claim an identity the server
//! acts as, and an id a token carries must pass the same rule as one a
//! back-end sends over REST. Keeping the list in one place is what makes
//! "every built-in identity is reserved" hold when a new one is added.

/// The user the server key acts as when it names no user; the sender of
/// messages a back-end posts as itself and of the server's own notices.
pub const SYSTEM_USER: &str = "system";

/// The assistant bot's user id (protocol.md §6): the sender of its replies.
pub const ASSISTANT_USER: &str = "assistant";

/// The prefix of anonymous visitors' ids (protocol.md §1). A token for `anon-x`
/// would own visitor `anon-x`'s rooms; the server key may act as one, which
/// is how a back-end opens an `assistant` room for a visitor.
pub const ANONYMOUS_PREFIX: &str = "anon-";

/// The longest id, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Built-in user ids, refused in tokens whatever their case (so that no
/// user can appear as `System` beside `system` either).
const BUILT_IN_USERS: &[&str] = &[SYSTEM_USER, ASSISTANT_USER];

/// An id that breaks the id rule, or one the server keeps for itself. The
/// text says which rule, and is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub String);

/// The id rule, for user ids and room ids alike: 1–128 bytes, no
/// whitespace or control characters (U+0000 included), none of `/ ? # %`
/// (ids appear in URL paths, where those would need escaping or change the
/// route), and not `.` or `..`, which a URL-normalising client can never
/// send as a path segment. `what` names the id in the message.
pub fn check_id(what: &str, id: &str) -> Result<(), InvalidId> {
    let shaped = !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '/' | '?' | '#' | '%'));
    if !shaped {
        return Err(InvalidId(format!(
            "{what} must be 1–{MAX_ID_BYTES} bytes without spaces, control characters, '/', '?', '#' or '%'"
        )));
    }
    if id == "." || id == ".." {
        return Err(InvalidId(format!(
            "{what} may not be `.` or `..` (a dot segment cannot appear in a URL path)"
        )));
    }
    Ok(())
}

/// Why a token may not name `user_id`: it is one of the server's own
/// identities. `None` when any token may.
pub fn reserved_user(user_id: &str) -> Option<String> {
    let lower = user_id.to_ascii_lowercase();
    if lower.starts_with(ANONYMOUS_PREFIX) {
        return Some(format!(
            "user ids starting with `{ANONYMOUS_PREFIX}` are reserved for anonymous visitors"
        ));
    }
    BUILT_IN_USERS
        .iter()
        .any(|built_in| lower == *built_in)
        .then(|| format!("the user id `{user_id}` is reserved for the server itself"))
}

/// Whether `user_id` is one of the server's built-in users (not a visitor):
/// their stored rows are the server's, never rewritten from outside.
pub fn is_built_in_user(user_id: &str) -> bool {
    BUILT_IN_USERS.contains(&user_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_path_characters_and_dot_segments() {
        assert!(check_id("id", "job-45").is_ok());
        assert!(check_id("id", "a.b").is_ok());
        assert!(check_id("id", "...").is_ok());
        for bad in [
            "", "a/b", "a b", "a?b", "a#b", "a%2Fb", "%2e", "%2E%2e", ".", "..", "a\0b", "a\tb",
        ] {
            assert!(check_id("id", bad).is_err(), "{bad:?}");
        }
        assert!(check_id("id", &"x".repeat(128)).is_ok());
        assert!(check_id("id", &"x".repeat(129)).is_err());
    }

    #[test]
    fn every_built_in_identity_is_reserved_in_any_case() {
        for id in [
            "system",
            "System",
            "SYSTEM",
            "assistant",
            "Assistant",
            "anon-1",
            "ANON-x",
        ] {
            assert!(reserved_user(id).is_some(), "{id}");
        }
        for id in ["systems", "alice", "anon", "my-system"] {
            assert!(reserved_user(id).is_none(), "{id}");
        }
    }
}
