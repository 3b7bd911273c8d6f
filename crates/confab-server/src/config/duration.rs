//! Duration keys. Each is counted in the unit its name ends with (`_ms`,
//! `_s`) and takes either that number (`heartbeat_ms = 25000`) or a human
//! duration (`heartbeat_ms = "25s"`, `CONFAB_SERVER__HEARTBEAT_MS="1m 30s"`).
//!
//! The fields stay integers in the key's unit, so nothing that reads them
//! changes: a string is converted, and refused when it is not a whole number
//! of that unit ("1500us" for a `_ms` key) or does not fit.

use serde::Deserializer;
use serde::de::{self, Unexpected, Visitor};
use std::fmt;
use std::time::Duration;

/// Reads a `_ms` key: milliseconds, or a duration string.
pub(super) fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(InUnit(Unit::Millis))
}

/// Reads a `_s` key: seconds, or a duration string.
pub(super) fn secs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(InUnit(Unit::Secs))
}

/// The unit a duration key is counted in (the end of its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// `_ms`.
    Millis,
    /// `_s`.
    Secs,
}

impl Unit {
    /// Nanoseconds in one unit.
    fn nanos(self) -> u128 {
        match self {
            Unit::Millis => 1_000_000,
            Unit::Secs => 1_000_000_000,
        }
    }

    /// The unit's name, for messages.
    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "milliseconds",
            Unit::Secs => "seconds",
        }
    }

    /// `text` as a count of this unit: plain digits are the count itself,
    /// anything else a duration as `humantime` reads it.
    fn parse(self, text: &str) -> Result<u64, String> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse()
                .map_err(|_| format!("{text:?} is too long in {}", self.name()));
        }
        let duration = humantime::parse_duration(text).map_err(|e| {
            format!(
                "{text:?} is not a duration ({e}): give a whole number of {} or a \
                 duration such as \"30s\", \"1m 30s\" or \"500ms\"",
                self.name()
            )
        })?;
        self.count(duration)
            .map_err(|why| format!("{text:?} {why}"))
    }

    /// `duration` in this unit, if it is a whole number of it that fits.
    fn count(self, duration: Duration) -> Result<u64, String> {
        let nanos = duration.as_nanos();
        if !nanos.is_multiple_of(self.nanos()) {
            return Err(format!("is not a whole number of {}", self.name()));
        }
        u64::try_from(nanos / self.nanos()).map_err(|_| format!("is too long in {}", self.name()))
    }
}

/// Reads a duration key counted in its unit.
struct InUnit(Unit);

impl Visitor<'_> for InUnit {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a whole number of {} or a duration such as \"30s\", \"1m 30s\" or \"500ms\"",
            self.0.name()
        )
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
        self.0.parse(value).map_err(E::custom)
    }
}

#[cfg(test)]
// figment::Jail fixes the closures' error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::Unit;
    use crate::config::{Config, Overrides};

    /// The configuration from the jail's file and environment, or the error's text.
    fn load() -> Result<Config, String> {
        Config::load(None, &Overrides::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn strings_convert_to_the_keys_unit() {
        assert_eq!(Unit::Millis.parse("500ms"), Ok(500));
        assert_eq!(Unit::Millis.parse("30s"), Ok(30_000));
        assert_eq!(Unit::Millis.parse("1m 30s"), Ok(90_000));
        assert_eq!(Unit::Millis.parse(" 25000 "), Ok(25_000));
        assert_eq!(Unit::Secs.parse("2m"), Ok(120));
        assert_eq!(Unit::Secs.parse("1h 1s"), Ok(3601));
        assert_eq!(Unit::Secs.parse("0"), Ok(0));
    }

    #[test]
    fn strings_that_lose_precision_or_do_not_fit_are_refused() {
        let error = Unit::Millis.parse("1500us").unwrap_err();
        assert!(error.contains("whole number of milliseconds"), "{error}");
        let error = Unit::Secs.parse("1500ms").unwrap_err();
        assert!(error.contains("whole number of seconds"), "{error}");
        assert!(Unit::Millis.parse("600000000years").is_err());
        assert!(Unit::Secs.parse("99999999999999999999").is_err());
    }

    #[test]
    fn numbers_and_strings_in_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "confab.toml",
                "broker_presence_ttl_ms = 20000\n\
                 [server]\nheartbeat_ms = \"30s\"\nwrite_timeout_ms = 5000\nshutdown_grace_s = \"1m\"\n\
                 [auth]\nauth_timeout_s = 7\nleeway_s = \"15s\"\n\
                 [database]\nacquire_timeout_s = \"2s\"\n\
                 [assistant]\ntimeout_s = \"1m 30s\"\n",
            )?;
            let config = load()?;
            assert_eq!(config.broker_presence_ttl_ms, 20_000);
            assert_eq!(config.server.heartbeat_ms, 30_000);
            assert_eq!(config.server.write_timeout_ms, 5_000);
            assert_eq!(config.server.shutdown_grace_s, 60);
            assert_eq!(config.auth.auth_timeout_s, 7);
            assert_eq!(config.auth.leeway_s, 15);
            assert_eq!(config.database.acquire_timeout_s, 2);
            assert_eq!(config.assistant.timeout_s, 90);
            Ok(())
        });
    }

    #[test]
    fn environment_variables_take_numbers_and_strings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CONFAB_SERVER__HEARTBEAT_MS", "30000");
            jail.set_env("CONFAB_AUTH__AUTH_TIMEOUT_S", "9");
            assert_eq!(load()?.server.heartbeat_ms, 30_000);
            assert_eq!(load()?.auth.auth_timeout_s, 9);
            jail.set_env("CONFAB_SERVER__HEARTBEAT_MS", "30s");
            jail.set_env("CONFAB_AUTH__AUTH_TIMEOUT_S", "1m 30s");
            assert_eq!(load()?.server.heartbeat_ms, 30_000);
            assert_eq!(load()?.auth.auth_timeout_s, 90);
            Ok(())
        });
    }

    #[test]
    fn bad_durations_are_refused_naming_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CONFAB_SERVER__HEARTBEAT_MS", "30 parsecs");
            let error = load().unwrap_err();
            assert!(
                error.contains("\"30 parsecs\" is not a duration"),
                "{error}"
            );
            assert!(error.contains("HEARTBEAT_MS"), "{error}");
            jail.set_env("CONFAB_SERVER__HEARTBEAT_MS", "1500us");
            let error = load().unwrap_err();
            assert!(error.contains("whole number of milliseconds"), "{error}");
            assert!(error.contains("HEARTBEAT_MS"), "{error}");
            jail.clear_env();
            jail.create_file("confab.toml", "[assistant]\ntimeout_s = \"soon\"\n")?;
            let error = load().unwrap_err();
            assert!(error.contains("timeout_s"), "{error}");
            jail.create_file("confab.toml", "[assistant]\ntimeout_s = -5\n")?;
            let error = load().unwrap_err();
            assert!(error.contains("timeout_s"), "{error}");
            jail.create_file("confab.toml", "[assistant]\ntimeout_s = 1.5\n")?;
            assert!(load().is_err());
            Ok(())
        });
    }
}
