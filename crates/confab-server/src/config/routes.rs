//! `[[server.routes]]`: extra WebSocket paths, each speaking one dialect.

use super::ConfigError;
use serde::{Deserialize, Serialize};

/// One extra WebSocket path (`[[server.routes]]`), e.g. `path =
/// "/ws/job_chat/{room_id}/"`, `dialect = "chat"`, so that an app moving to
/// confab changes only its host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Under `/ws/`; a room-scoped dialect's path holds `{room_id}` as one
    /// whole segment, the unified one's none.
    pub path: String,
    /// Which protocol the path speaks.
    pub dialect: DialectName,
}

/// The WebSocket dialects a path can speak (docs/protocol.md §2, §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialectName {
    /// The multiplexed protocol of `/ws`.
    Unified,
    /// The job-conversations dialect of `/ws/chat/{room_id}/`.
    Chat,
    /// The sessions dialect of `/ws/sessions/{room_id}/`.
    Sessions,
}

impl DialectName {
    /// Whether the dialect's connections join the one room their path names.
    pub fn room_scoped(self) -> bool {
        !matches!(self, DialectName::Unified)
    }
}

impl RouteConfig {
    /// Checks what can be checked of a route alone: the path's characters,
    /// its place under `/ws/`, and its `{room_id}` segment. (Clashes with
    /// other routes are checked where the routes are built.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |why: &str| {
            Err(ConfigError::Value(format!(
                "server.routes: path {:?}: {why}",
                self.path
            )))
        };
        let Some(rest) = self.path.strip_prefix("/ws/") else {
            return fail("must start with /ws/");
        };
        let mut rooms = 0;
        for segment in rest.split('/') {
            if segment == "{room_id}" {
                rooms += 1;
            } else if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return fail(
                    "segments may hold only letters, digits, `_`, `-`, `.`, or be `{room_id}`",
                );
            }
        }
        match (self.dialect.room_scoped(), rooms) {
            (true, 1) | (false, 0) => Ok(()),
            (true, _) => fail("a room-scoped dialect needs exactly one `{room_id}` segment"),
            (false, _) => fail("the unified dialect takes no `{room_id}`"),
        }
    }
}

#[cfg(test)]
// figment::Jail fixes the closures' error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    fn route(path: &str, dialect: DialectName) -> RouteConfig {
        RouteConfig {
            path: path.into(),
            dialect,
        }
    }

    #[test]
    fn a_route_lives_under_ws_and_names_its_room_as_its_dialect_needs() {
        for (path, dialect) in [
            ("/ws/job_chat/{room_id}/", DialectName::Chat),
            ("/ws/v1/sessions/{room_id}", DialectName::Sessions),
            ("/ws/notifications/", DialectName::Unified),
            ("/ws/a-b.c_d", DialectName::Unified),
        ] {
            assert!(route(path, dialect).validate().is_ok(), "{path}");
        }
        for (path, dialect) in [
            ("/api/v1/rooms/{room_id}/", DialectName::Chat),
            ("ws/chat/{room_id}/", DialectName::Chat),
            ("/ws/chat/", DialectName::Chat),
            ("/ws/{room_id}/{room_id}/", DialectName::Chat),
            ("/ws/{id}/", DialectName::Chat),
            ("/ws/x{room_id}/", DialectName::Chat),
            ("/ws/{room_id}/", DialectName::Unified),
            ("/ws/*rest", DialectName::Unified),
            ("/ws/:room/", DialectName::Unified),
            ("/ws/a b/", DialectName::Unified),
            ("/ws/é/", DialectName::Unified),
        ] {
            let refused = route(path, dialect).validate();
            assert!(refused.is_err(), "{path} {dialect:?}");
        }
    }

    #[test]
    fn routes_come_from_toml_tables_and_from_an_inline_list_in_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "confab.toml",
                "[[server.routes]]\npath = \"/ws/job_chat/{room_id}/\"\ndialect = \"chat\"\n",
            )?;
            let config = super::super::Config::load(None, &super::super::Overrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(
                config.server.routes,
                [route("/ws/job_chat/{room_id}/", DialectName::Chat)]
            );
            jail.set_env(
                "CONFAB_SERVER__ROUTES",
                r#"[{path="/ws/s/{room_id}/",dialect="sessions"}]"#,
            );
            let config = super::super::Config::load(None, &super::super::Overrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(
                config.server.routes,
                [route("/ws/s/{room_id}/", DialectName::Sessions)]
            );
            jail.set_env(
                "CONFAB_SERVER__ROUTES",
                r#"[{path="/ws/s/",dialect="chat"}]"#,
            );
            assert!(super::super::Config::load(None, &super::super::Overrides::default()).is_err());
            Ok(())
        });
    }
}
