//! Slash commands (protocol.md §6.1, §8.2): a text message whose content
//! starts with `/word` is run, not stored, and answered to its caller only
//! as a `command_result`. The same rules on every WebSocket dialect and on
//! `POST /api/v1/rooms/{id}/commands`, because they all come here.
//!
//! - [`parse`] tells a command from a message (and `//text` from both).
//! - [`Chat::prepare_send`] turns a send into a message to store (`/me`
//!   and escapes rewritten) or a [`CommandCall`].
//! - [`Chat::run_command`] checks the call like a send (room access,
//!   rate), then runs a built-in ([`builtins`]) or an app command
//!   ([`app`]), and answers a [`CommandResult`].

pub mod app;
mod builtins;

use super::{Caller, Chat, ChatError, ChatResult, validate_id};
use crate::config::CommandConfig;
use crate::store::{MemberRecord, RoomRecord, RoomRole};
use confab_protocol::client::SendMessage;
use confab_protocol::{CommandCode, CommandResult, ErrorCode, MessageType, ReqId};

/// The longest command word.
const MAX_WORD: usize = 32;

/// The built-in commands, in the order `/help` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltIn {
    /// What the caller may run here.
    Help,
    /// This connection and room.
    Status,
    /// The caller's rooms (also `/sessions`).
    Rooms,
    /// Server counters (global admins).
    Stats,
    /// Shows the room's topic, or sets it (room admins).
    Topic,
    /// Adds a member.
    Invite,
    /// Removes a member (room admins).
    Kick,
    /// Ends an assistant session.
    Clear,
    /// An action, stored as a message.
    Me,
}

impl BuiltIn {
    /// Every built-in, in `/help` order.
    pub const ALL: [BuiltIn; 9] = [
        BuiltIn::Help,
        BuiltIn::Status,
        BuiltIn::Rooms,
        BuiltIn::Stats,
        BuiltIn::Topic,
        BuiltIn::Invite,
        BuiltIn::Kick,
        BuiltIn::Clear,
        BuiltIn::Me,
    ];

    /// The built-in a command word names (`sessions` is `/rooms`).
    pub fn named(word: &str) -> Option<BuiltIn> {
        match word {
            "sessions" => Some(BuiltIn::Rooms),
            _ => BuiltIn::ALL.into_iter().find(|b| b.name() == word),
        }
    }

    /// The command word.
    pub fn name(self) -> &'static str {
        match self {
            BuiltIn::Help => "help",
            BuiltIn::Status => "status",
            BuiltIn::Rooms => "rooms",
            BuiltIn::Stats => "stats",
            BuiltIn::Topic => "topic",
            BuiltIn::Invite => "invite",
            BuiltIn::Kick => "kick",
            BuiltIn::Clear => "clear",
            BuiltIn::Me => "me",
        }
    }

    /// One line for `/help`.
    pub fn description(self) -> &'static str {
        match self {
            BuiltIn::Help => "the commands you may run here",
            BuiltIn::Status => "your connection and this room",
            BuiltIn::Rooms => "your rooms, newest activity first (also /sessions)",
            BuiltIn::Stats => "server counters",
            BuiltIn::Topic => "/topic shows the room's topic; /topic TEXT sets it (room admins)",
            BuiltIn::Invite => "/invite USER adds USER to this room",
            BuiltIn::Kick => "/kick USER removes USER from this room",
            BuiltIn::Clear => "ends this assistant session",
            BuiltIn::Me => "/me TEXT sends TEXT as an action",
        }
    }

    /// Whether an app command may have this name: `/clear` only applies in
    /// assistant rooms, and an app's `/clear` answers everywhere else.
    pub fn app_may_extend(self) -> bool {
        self == BuiltIn::Clear
    }
}

/// A line as typed, seen as a possible command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// An ordinary message.
    Plain,
    /// `//text`: the message `/text`.
    Escaped(&'a str),
    /// `/word args`: a command (known or not).
    Command {
        /// The word, lower-cased.
        word: String,
        /// The rest of the line, trimmed.
        args: &'a str,
    },
}

/// Tells a command from a message: `/` then a word of 1–32 characters of
/// `A-Z a-z 0-9 _ -`, then the end or whitespace. Anything else starting
/// with `/` (`/`, `/ hi`, `/path/to`) is a message; `//` escapes.
pub fn parse(content: &str) -> Line<'_> {
    let Some(rest) = content.strip_prefix('/') else {
        return Line::Plain;
    };
    if rest.starts_with('/') {
        return Line::Escaped(rest);
    }
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (word, args) = rest.split_at(end);
    let is_word = (1..=MAX_WORD).contains(&word.len())
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !is_word {
        return Line::Plain;
    }
    Line::Command {
        word: word.to_ascii_lowercase(),
        args: args.trim(),
    }
}

/// A command to run: what a send turned out to be.
#[derive(Debug, Clone)]
pub struct CommandCall {
    /// The room it runs in.
    pub room_id: String,
    /// The command word, lower-cased.
    pub word: String,
    /// The rest of the line, trimmed.
    pub args: String,
    /// The whole line.
    pub text: String,
    /// The request's `req_id`, passed to app commands.
    pub req_id: Option<ReqId>,
}

/// What a send is, once looked at.
#[derive(Debug)]
pub enum Prepared {
    /// A message to store (an escaped `//text` already unescaped).
    Message(SendMessage),
    /// `/me TEXT`: a message to store, marked as an action.
    Me(SendMessage),
    /// A command to run.
    Command(CommandCall),
}

/// Where a command runs, for `/status`.
#[derive(Debug, Clone, Default)]
pub struct Place {
    /// The connection's id and endpoint; `None` over REST.
    pub connection: Option<(String, &'static str)>,
}

/// What a command is, once resolved.
enum Resolved<'c> {
    BuiltIn(BuiltIn),
    App(&'c CommandConfig),
    Unknown,
}

/// What the caller is in the room a command runs in.
pub(crate) struct Standing {
    room: RoomRecord,
    member: Option<MemberRecord>,
}

impl Standing {
    /// Room owner or admin, global admin, or the server key.
    fn manages(&self, caller: &Caller) -> bool {
        caller.is_admin()
            || self
                .member
                .as_ref()
                .is_some_and(|m| m.role >= RoomRole::Admin)
    }

    /// May store messages here.
    fn writes(&self, caller: &Caller) -> bool {
        caller.can_write()
            && !self.room.closed
            && self
                .member
                .as_ref()
                .is_none_or(|m| m.role != RoomRole::Viewer)
    }

    fn is_assistant(&self) -> bool {
        self.room.room_type == super::caller::ASSISTANT_ROOM
    }
}

impl Chat {
    /// Looks at a send: a text message starting with `/word` is a command;
    /// `//text` becomes the message `/text`; `/me TEXT` the message `TEXT`
    /// with `metadata.action: true`; anything else is left as it is.
    pub fn prepare_send(&self, mut request: SendMessage, req_id: Option<&ReqId>) -> Prepared {
        let is_text = request.message_type.is_none_or(|t| t == MessageType::Text);
        let Some(content) = request.content.as_deref().filter(|_| is_text) else {
            return Prepared::Message(request);
        };
        match parse(content) {
            Line::Plain => Prepared::Message(request),
            Line::Escaped(text) => {
                request.content = Some(text.to_owned());
                Prepared::Message(request)
            }
            Line::Command { word, args } if word == BuiltIn::Me.name() => {
                request.content = Some(args.to_owned());
                let mut metadata = request
                    .metadata
                    .take()
                    .unwrap_or_else(|| serde_json::json!({}));
                // Not an object: left for the send's own check to refuse.
                if let Some(object) = metadata.as_object_mut() {
                    object.insert("action".into(), serde_json::Value::Bool(true));
                }
                request.metadata = Some(metadata);
                Prepared::Me(request)
            }
            Line::Command { word, args } => Prepared::Command(CommandCall {
                args: args.to_owned(),
                text: content.to_owned(),
                word,
                room_id: request.room_id,
                req_id: req_id.cloned(),
            }),
        }
    }

    /// Runs a command as `caller`. Checked first as a send is (the room, the
    /// caller's access to it, the line's length, the message rate): those
    /// refusals are errors.
    /// Whatever the command itself answers, failures included, is the
    /// [`CommandResult`]; only storage failing inside it is an error.
    pub async fn run_command(
        &self,
        caller: &Caller,
        call: &CommandCall,
        place: &Place,
    ) -> ChatResult<CommandResult> {
        if call.room_id.is_empty() {
            return Err(ChatError::InvalidField(
                "send_message: missing field `room_id`".into(),
            ));
        }
        validate_id("room_id", &call.room_id)?;
        let max = self.config.limits.max_message_length;
        if call.text.chars().count() > max {
            return Err(ChatError::MessageTooLong { max });
        }
        let (room, member) = self.room_access(caller, &call.room_id).await?;
        self.check_message_rate(caller)?;
        let standing = Standing { room, member };
        let outcome = match self.resolve(&call.word, &standing) {
            Resolved::BuiltIn(built_in) => {
                self.run_built_in(built_in, caller, call, &standing, place)
                    .await
            }
            Resolved::App(command) => self.run_app(command, caller, call, &standing, place).await,
            Resolved::Unknown => Ok(CommandResult::failed(
                &call.word,
                ErrorCode::NotFound,
                format!("unknown command /{}; /help lists the commands", call.word),
            )),
        };
        match outcome {
            Ok(result) => Ok(result),
            Err(error) if error.is_internal() => Err(error),
            Err(error) => Ok(CommandResult::failed(
                &call.word,
                error.code(),
                error.public_message(),
            )),
        }
    }

    /// What `word` runs here: built-ins first, except `/clear` outside
    /// assistant rooms when the app has its own.
    fn resolve(&self, word: &str, standing: &Standing) -> Resolved<'_> {
        let app = self.config.commands.iter().find(|c| c.name == word);
        match (BuiltIn::named(word), app) {
            (Some(BuiltIn::Clear), Some(app)) if !standing.is_assistant() => Resolved::App(app),
            (Some(built_in), _) => Resolved::BuiltIn(built_in),
            (None, Some(app)) => Resolved::App(app),
            (None, None) => Resolved::Unknown,
        }
    }

    /// Runs an app command: the role check, then the alias's built-in or
    /// the signed call; `post` is stored as a system message.
    async fn run_app(
        &self,
        command: &CommandConfig,
        caller: &Caller,
        call: &CommandCall,
        standing: &Standing,
        place: &Place,
    ) -> ChatResult<CommandResult> {
        if !role_allows(command, caller) {
            return Ok(CommandResult::failed(
                &call.word,
                ErrorCode::Forbidden,
                format!("your role may not run /{}", call.word),
            ));
        }
        if let Some(built_in) = command.alias.as_deref().and_then(BuiltIn::named) {
            return self
                .run_built_in(built_in, caller, call, standing, place)
                .await;
        }
        let body = app::Call {
            command: &call.word,
            args: &call.args,
            text: &call.text,
            user: app::CallUser {
                id: caller.id(),
                name: caller.user.name.as_deref(),
                role: caller.user.role.as_str(),
            },
            room_id: &call.room_id,
            req_id: call.req_id.as_ref(),
        };
        let answer = match self.app_calls.call(command, &body).await {
            Ok(answer) => answer,
            Err(error) => {
                return Ok(CommandResult::failed(
                    &call.word,
                    CommandCode::UpstreamError,
                    error.to_string(),
                ));
            }
        };
        let post = answer.post.as_ref().and_then(|p| p.as_str());
        if let Some(post) = post
            && let Err(error) = self
                .post_for_command(standing, post, &call.word, caller)
                .await
        {
            if error.is_internal() {
                return Err(error);
            }
            return Ok(CommandResult::failed(
                &call.word,
                CommandCode::UpstreamError,
                format!(
                    "the app's post could not be stored: {}",
                    error.public_message()
                ),
            ));
        }
        Ok(CommandResult {
            command: call.word.clone(),
            ok: answer.ok,
            text: answer.text,
            data: answer.data,
            code: None,
        })
    }

    /// Whether `/help` lists `command` for `caller` here.
    fn app_command_listed(
        &self,
        command: &CommandConfig,
        caller: &Caller,
        standing: &Standing,
    ) -> bool {
        let shadowed = BuiltIn::named(&command.name).is_some() && standing.is_assistant();
        !shadowed
            && role_allows(command, caller)
            && command
                .alias
                .as_deref()
                .and_then(BuiltIn::named)
                .is_none_or(|b| self.built_in_allowed(b, caller, standing))
    }
}

/// An app command's role rule: everyone when `roles` is empty; else the
/// listed global roles, and always global admins and the server key.
fn role_allows(command: &CommandConfig, caller: &Caller) -> bool {
    command.roles.is_empty()
        || caller.is_admin()
        || command.roles.iter().any(|r| r == caller.user.role.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_a_slash_and_a_word() {
        let command = |word: &str, args| Line::Command {
            word: word.into(),
            args,
        };
        assert_eq!(parse("/help"), command("help", ""));
        assert_eq!(parse("/Reload   7 days "), command("reload", "7 days"));
        assert_eq!(parse("/me\twaves"), command("me", "waves"));
        assert_eq!(parse("/a-b_c"), command("a-b_c", ""));
        assert_eq!(
            parse(&format!("/{}", "x".repeat(32))),
            command(&"x".repeat(32), "")
        );
    }

    #[test]
    fn other_slashes_are_messages_and_double_slash_escapes() {
        for plain in [
            "hello /help",
            " /help",
            "/",
            "/ help",
            "/path/to x",
            "/héllo",
            "/a.b",
        ] {
            assert_eq!(parse(plain), Line::Plain, "{plain:?}");
        }
        assert_eq!(parse(&format!("/{}", "x".repeat(33))), Line::Plain);
        assert_eq!(parse("//help me"), Line::Escaped("/help me"));
        assert_eq!(parse("///"), Line::Escaped("//"));
    }

    #[test]
    fn built_in_names_resolve_with_the_sessions_alias() {
        for built_in in BuiltIn::ALL {
            assert_eq!(BuiltIn::named(built_in.name()), Some(built_in));
        }
        assert_eq!(BuiltIn::named("sessions"), Some(BuiltIn::Rooms));
        assert_eq!(BuiltIn::named("reload"), None);
    }
}
