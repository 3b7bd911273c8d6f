//! `[[commands]]` and `[webhook]`: the app's own slash commands, answered by
//! its back-end, and the secret every request to that back-end is signed
//! with (protocol.md §8, §8.2).

use super::{ConfigError, duration};
use crate::core::commands::BuiltIn;
use crate::store::{EventKind, EventSet, ROLE_NAME_RULE, is_role_name};
use serde::{Deserialize, Serialize};

/// `[webhook]`: how confab signs what it sends to the app, and where its
/// events go (protocol.md §8.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// The signing key: `whsec_` + base64 of the key bytes (the Standard
    /// Webhooks form), or any other string, whose UTF-8 bytes are the key.
    /// Required as soon as an app command has a `url`, `url` is set or
    /// `auth.proxy_url` is.
    pub secret: String,
    /// Where events are POSTed; empty: no events are written or sent.
    pub url: String,
    /// The event types to send (`message.created`, …); empty: all.
    #[serde(deserialize_with = "super::string_list")]
    pub events: Vec<String>,
    /// How long the receiver has to answer one attempt.
    #[serde(deserialize_with = "duration::secs")]
    pub timeout_s: u64,
    /// Attempts per event before it is recorded as failed.
    pub max_attempts: u32,
    /// Attempts under way at once, on this node: a slow receiver holds
    /// this many requests and no more.
    pub max_in_flight: usize,
    /// Events kept in the outbox (pending and failed); beyond it the
    /// oldest are dropped, counted and logged.
    pub max_pending: u64,
    /// Events older than this are dropped, counted and logged.
    #[serde(deserialize_with = "duration::secs")]
    pub max_age_s: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            secret: String::new(),
            url: String::new(),
            events: Vec::new(),
            timeout_s: 10,
            max_attempts: 12,
            max_in_flight: 16,
            max_pending: 100_000,
            max_age_s: 7 * 24 * 3600,
        }
    }
}

impl WebhookConfig {
    /// The events to write: none without a `url`, else those of `events`
    /// (all when empty). Names are checked by [`WebhookConfig::validate`].
    pub fn event_set(&self) -> EventSet {
        if self.url.is_empty() {
            return EventSet::NONE;
        }
        if self.events.is_empty() {
            return EventSet::all();
        }
        EventSet::of(self.events.iter().filter_map(|name| EventKind::parse(name)))
    }

    /// Checks the secret's form and, with a `url`, the delivery settings.
    fn validate(&self) -> Result<(), ConfigError> {
        crate::signing::Signer::from_secret(&self.secret)
            .map_err(|why| ConfigError::Value(format!("webhook.secret: {why}")))?;
        if self.url.is_empty() {
            return Ok(());
        }
        let fail = |why: String| Err(ConfigError::Value(format!("webhook.{why}")));
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return fail(format!("url {:?} must be http:// or https://", self.url));
        }
        if self.secret.is_empty() {
            return fail("secret must be set with webhook.url: events are signed with it".into());
        }
        if let Some(name) = self
            .events
            .iter()
            .find(|name| EventKind::parse(name).is_none())
        {
            let known: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
            return fail(format!(
                "events: {name:?} is not an event type (one of {})",
                known.join(", ")
            ));
        }
        if self.timeout_s == 0 {
            return fail("timeout_s must be > 0".into());
        }
        if self.max_attempts == 0 {
            return fail("max_attempts must be > 0".into());
        }
        if self.max_in_flight == 0 {
            return fail("max_in_flight must be > 0".into());
        }
        if self.max_pending == 0 {
            return fail("max_pending must be > 0".into());
        }
        if self.max_age_s == 0 {
            return fail("max_age_s must be > 0".into());
        }
        Ok(())
    }
}

/// One app command (`[[commands]]`): `/name args` runs it, answered by the
/// app at `url`, or by the built-in named in `alias`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandConfig {
    /// The command word, without the slash: 1–32 of `a-z 0-9 _ -`.
    pub name: String,
    /// One line for `/help`.
    pub description: String,
    /// Global roles allowed to run it; empty: everyone. Global admins and
    /// the server key always may.
    pub roles: Vec<String>,
    /// Where confab POSTs the signed call (exactly one of `url`, `alias`).
    pub url: Option<String>,
    /// A built-in this command is another name for (`stat` → `stats`).
    pub alias: Option<String>,
    /// How long the app has to answer.
    #[serde(deserialize_with = "duration::secs")]
    pub timeout_s: u64,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            name: String::new(),
            description: String::new(),
            roles: Vec::new(),
            url: None,
            alias: None,
            timeout_s: 10,
        }
    }
}

impl CommandConfig {
    /// Checks one command alone (names across commands are checked by
    /// [`validate_commands`]).
    fn validate(&self, webhook: &WebhookConfig) -> Result<(), ConfigError> {
        let fail = |why: String| {
            Err(ConfigError::Value(format!(
                "commands: {:?}: {why}",
                self.name
            )))
        };
        if !is_role_name(&self.name) {
            return fail("a name is 1–32 characters of a-z, 0-9, _ and -".into());
        }
        if let Some(built_in) = BuiltIn::named(&self.name)
            && !built_in.app_may_extend()
        {
            return fail(format!(
                "/{} is built in (docs/protocol.md §6.1); pick another name",
                self.name
            ));
        }
        if let Some(role) = self.roles.iter().find(|role| !is_role_name(role)) {
            return fail(format!("role {role:?}: {ROLE_NAME_RULE}"));
        }
        match (&self.url, &self.alias) {
            (Some(url), None) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return fail(format!("url {url:?} must be http:// or https://"));
                }
                if self.timeout_s == 0 {
                    return fail("timeout_s must be > 0".into());
                }
                if webhook.secret.is_empty() {
                    return fail(
                        "webhook.secret must be set: calls to the app are signed with it".into(),
                    );
                }
            }
            (None, Some(alias)) => {
                if BuiltIn::named(alias).is_none() {
                    return fail(format!("alias {alias:?} is not a built-in command"));
                }
            }
            _ => return fail("needs exactly one of `url` and `alias`".into()),
        }
        Ok(())
    }
}

/// Checks `[webhook]` and every `[[commands]]` entry, their names unique.
pub fn validate_commands(
    commands: &[CommandConfig],
    webhook: &WebhookConfig,
) -> Result<(), ConfigError> {
    webhook.validate()?;
    for (i, command) in commands.iter().enumerate() {
        command.validate(webhook)?;
        if commands[..i].iter().any(|c| c.name == command.name) {
            return Err(ConfigError::Value(format!(
                "commands: {:?} is defined twice",
                command.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
// figment::Jail fixes the closures' error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::config::{Config, Overrides};

    #[test]
    fn commands_come_from_toml_or_one_environment_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CONFAB_WEBHOOK__SECRET", "whsec_c2VjcmV0");
            jail.set_env(
                "CONFAB_COMMANDS",
                r#"[{name="reload", roles=["admin","analyst"], url="http://127.0.0.1:9/c", timeout_s="3s"}, {name="stat", alias="stats"}]"#,
            );
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.commands.len(), 2);
            assert_eq!(config.commands[0].roles, ["admin", "analyst"]);
            assert_eq!(config.commands[0].timeout_s, 3);
            assert_eq!(config.commands[1].alias.as_deref(), Some("stats"));
            assert_eq!(config.commands[1].timeout_s, 10);
            jail.clear_env();
            jail.create_file(
                "confab.toml",
                "[webhook]\nsecret = \"plain\"\n\n[[commands]]\nname = \"reload\"\n\
                 description = \"Reload the logs\"\nurl = \"https://app.example/c\"\n",
            )?;
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.commands[0].description, "Reload the logs");
            assert!(config.commands[0].roles.is_empty());
            Ok(())
        });
    }

    #[test]
    fn bad_commands_and_proxy_settings_stop_the_start() {
        let with = |commands: Vec<CommandConfig>, secret: &str| {
            let config = Config {
                commands,
                webhook: WebhookConfig {
                    secret: secret.into(),
                    ..WebhookConfig::default()
                },
                ..Config::default()
            };
            config.validate().map_err(|e| e.to_string())
        };
        let call = |name: &str| CommandConfig {
            name: name.into(),
            url: Some("http://127.0.0.1:9/c".into()),
            ..CommandConfig::default()
        };
        assert!(with(vec![call("reload")], "s").is_ok());
        // An app's /clear answers outside assistant rooms.
        assert!(with(vec![call("clear")], "s").is_ok());
        let refused = [
            (vec![call("reload")], "", "webhook.secret"),
            (vec![call("reload")], "whsec_not base64!", "base64"),
            (vec![call("stats")], "s", "built in"),
            (vec![call("Reload")], "s", "a name is"),
            (vec![call(&"x".repeat(33))], "s", "a name is"),
            (vec![call("reload"), call("reload")], "s", "twice"),
            (
                vec![CommandConfig {
                    roles: vec!["Analyst!".into()],
                    ..call("reload")
                }],
                "s",
                "role",
            ),
            (
                vec![CommandConfig {
                    url: Some("ftp://x".into()),
                    ..call("reload")
                }],
                "s",
                "http",
            ),
            (
                vec![CommandConfig {
                    alias: Some("stats".into()),
                    ..call("reload")
                }],
                "s",
                "exactly one",
            ),
            (
                vec![CommandConfig {
                    name: "stat".into(),
                    alias: Some("nothing".into()),
                    ..CommandConfig::default()
                }],
                "s",
                "not a built-in",
            ),
        ];
        let proxied = |url: &str, secret: &str| {
            let mut config = Config {
                webhook: WebhookConfig {
                    secret: secret.into(),
                    ..WebhookConfig::default()
                },
                ..Config::default()
            };
            config.auth.proxy_url = url.into();
            config.validate().map_err(|e| e.to_string())
        };
        assert!(proxied("http://127.0.0.1:9/who", "s").is_ok());
        let error = proxied("http://127.0.0.1:9/who", "").expect_err("no secret");
        assert!(error.contains("webhook.secret"), "{error}");
        let error = proxied("ws://127.0.0.1:9/who", "s").expect_err("not http");
        assert!(error.contains("http"), "{error}");
        for (commands, secret, why) in refused {
            let error = with(commands.clone(), secret).expect_err(why);
            assert!(error.contains(why), "{error:?} should say {why:?}");
        }
    }
}
