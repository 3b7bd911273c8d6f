//! The configuration's tests: layering, every key documented, and the
//! values refused at start-up.
// figment::Jail fixes the closures' error type; its size is not ours to choose.
#![allow(clippy::result_large_err)]

use super::*;
use crate::store::{EventKind, EventSet};

#[test]
fn layers_apply_weakest_first() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "confab.toml",
            "listen = \"127.0.0.1:9000\"\n[limits]\nmax_message_length = 10\n",
        )?;
        jail.set_env("CONFAB_LIMITS__MAX_MESSAGE_LENGTH", "20");
        jail.set_env("CONFAB_RATE_LIMIT__MESSAGES_PER_MINUTE", "5");
        let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(config.listen, "127.0.0.1:9000");
        assert_eq!(config.limits.max_message_length, 20);
        assert_eq!(config.rate_limit.messages_per_minute, 5);
        let flags = Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        };
        jail.set_env("CONFAB_LISTEN", "127.0.0.1:7000");
        let config = Config::load(None, &flags).map_err(|e| e.to_string())?;
        assert_eq!(config.listen, "127.0.0.1:0");
        Ok(())
    });
}

#[test]
fn allowed_origins_take_a_list_or_a_comma_separated_string() {
    figment::Jail::expect_with(|jail| {
        jail.set_env(
            "CONFAB_SERVER__ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
        );
        let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(
            config.server.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        jail.set_env("CONFAB_SERVER__ALLOWED_ORIGINS", "*");
        let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(config.server.allowed_origins, ["*"]);
        jail.clear_env();
        jail.create_file(
            "confab.toml",
            "[server]\nallowed_origins = [\"https://c.example\"]\n",
        )?;
        let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(config.server.allowed_origins, ["https://c.example"]);
        Ok(())
    });
}

#[test]
fn trusted_proxies_take_addresses_and_ranges_as_a_list_or_a_string() {
    figment::Jail::expect_with(|jail| {
        jail.set_env(
            "CONFAB_SERVER__TRUSTED_PROXIES",
            "127.0.0.1, 10.0.0.0/8,::1, 2001:db8::/32,[fd00::1]",
        );
        jail.set_env("CONFAB_SERVER__FORWARDED_HEADER", "forwarded");
        let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        let nets: Vec<String> = config
            .trusted_proxy_nets()
            .map_err(|e| e.to_string())?
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            nets,
            [
                "127.0.0.1/32",
                "10.0.0.0/8",
                "::1/128",
                "2001:db8::/32",
                "fd00::1/128"
            ]
        );
        assert_eq!(config.server.forwarded_header, ForwardedHeader::Forwarded);
        jail.set_env("CONFAB_SERVER__TRUSTED_PROXIES", "10.0.0.0/8,nginx");
        let refused = Config::load(None, &Overrides::default()).unwrap_err();
        assert!(refused.to_string().contains("\"nginx\""), "{refused}");
        jail.clear_env();
        jail.create_file(
            "confab.toml",
            "[server]\ntrusted_proxies = [\"10.1.2.3/16\"]\nforwarded_header = \"x-forwarded-for\"\n",
        )?;
        let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        let nets = config.trusted_proxy_nets().map_err(|e| e.to_string())?;
        assert_eq!(nets[0].to_string(), "10.1.0.0/16", "host bits dropped");
        jail.create_file(
            "confab.toml",
            "[server]\nforwarded_header = \"x-real-ip\"\n",
        )?;
        assert!(Config::load(None, &Overrides::default()).is_err());
        jail.create_file(
            "confab.toml",
            "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
        )?;
        assert!(Config::load(None, &Overrides::default()).is_err());
        Ok(())
    });
    assert!(Config::default().trusted_proxy_nets().unwrap().is_empty());
}

#[test]
fn zero_limits_are_refused() {
    let mut config = Config::default();
    config.rate_limit.typing_burst = 0;
    assert!(config.validate().is_err());
    let mut config = Config::default();
    config.limits.max_connections_per_address = 0;
    assert!(config.validate().is_err());
    let mut config = Config::default();
    config.server.heartbeat_ms = 10;
    assert!(config.validate().is_err());
    assert!(Config::default().validate().is_ok());
}

#[test]
fn the_recovery_grace_lies_between_the_timeout_and_the_session_ttl() {
    let with = |grace: u64, interval: u64| {
        let mut config = Config::default();
        config.assistant.timeout_s = 30;
        config.assistant.session_ttl = 3600;
        config.assistant.recovery_grace_s = grace;
        config.assistant.recovery_interval_s = interval;
        config.validate()
    };
    assert!(with(31, 1).is_ok());
    assert!(with(3599, 30).is_ok());
    assert!(with(30, 30).is_err(), "not longer than the timeout");
    assert!(with(3600, 30).is_err(), "not shorter than the session");
    assert!(with(120, 0).is_err(), "no interval");
    figment::Jail::expect_with(|jail| {
        jail.set_env("CONFAB_ASSISTANT__RECOVERY_GRACE_S", "5m");
        jail.set_env("CONFAB_ASSISTANT__RECOVERY_INTERVAL_S", "10");
        let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(config.assistant.recovery_grace_s, 300);
        assert_eq!(config.assistant.recovery_interval_s, 10);
        Ok(())
    });
}

#[test]
fn numeric_looking_secrets_stay_strings() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("CONFAB_JWT_SECRET", "12345");
        jail.set_env("CONFAB_API_KEY", "true");
        let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(config.jwt_secret, "12345");
        assert_eq!(config.api_key, "true");
        Ok(())
    });
}

#[test]
fn test_suite_variables_are_not_configuration() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("CONFAB_TEST_DATABASE", "postgres");
        jail.set_env("CONFAB_TEST_POSTGRES_URL", "postgres://elsewhere/postgres");
        jail.set_env("CONFAB_TESTING", "1");
        assert!(
            Config::load(None, &Overrides::default()).is_err(),
            "only the TEST_ prefix is set aside"
        );
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.set_env("CONFAB_TEST_DATABASE", "postgres");
        jail.set_env("CONFAB_TEST_POSTGRES_URL", "postgres://elsewhere/postgres");
        let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
        assert_eq!(config, Config::default());
        Ok(())
    });
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("confab.toml", "[limits]\nmax_mesage_length = 10\n")?;
        assert!(Config::load(None, &Overrides::default()).is_err());
        jail.create_file("confab.toml", "listen = \"nowhere\"\n")?;
        assert!(Config::load(None, &Overrides::default()).is_err());
        Ok(())
    });
}

/// Every key of the configuration (as `section.key`) appears in
/// `docs/configuration.md` together with its environment variable.
#[test]
fn every_key_is_documented() {
    let docs = include_str!("../../../../docs/configuration.md");
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let mut missing = Vec::new();
    for (key, value) in defaults.as_object().unwrap() {
        let keys: Vec<(String, String)> = match value.as_object() {
            Some(section) => section
                .keys()
                .map(|k| (k.clone(), format!("CONFAB_{}__{}", key, k).to_uppercase()))
                .collect(),
            None => vec![(key.clone(), format!("CONFAB_{key}").to_uppercase())],
        };
        for (name, env) in keys {
            if !docs.contains(&format!("| `{name}` | `{env}` |")) {
                missing.push(env);
            }
        }
    }
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
}

#[test]
fn database_passwords_stay_out_of_messages() {
    let with = |url: &str| Config {
        database_url: url.into(),
        ..Config::default()
    };
    assert_eq!(
        with("postgres://confab:s3cret@db:5432/confab?sslmode=require").database_url_redacted(),
        "postgres://confab:***@db:5432/confab?sslmode=require"
    );
    assert_eq!(
        with("postgres://postgres@127.0.0.1/postgres").database_url_redacted(),
        "postgres://postgres@127.0.0.1/postgres"
    );
    assert_eq!(
        with("sqlite://data/confab.db").database_url_redacted(),
        "sqlite://data/confab.db"
    );
}

#[test]
fn generated_secret_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let first = config.resolve_jwt_secret().unwrap();
    assert_eq!(first.len(), 64);
    assert_eq!(config.resolve_jwt_secret().unwrap(), first);
}

#[test]
fn webhook_events_take_a_list_or_a_string_and_unknown_ones_are_refused() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("CONFAB_WEBHOOK__URL", "https://app.example/hooks");
        jail.set_env("CONFAB_WEBHOOK__SECRET", "s3cret");
        jail.set_env("CONFAB_WEBHOOK__EVENTS", "message.missed,room.closed");
        let config = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(config.webhook.events, ["message.missed", "room.closed"]);
        assert_eq!(
            config.webhook.event_set(),
            EventSet::of([EventKind::MessageMissed, EventKind::RoomClosed])
        );
        jail.set_env("CONFAB_WEBHOOK__EVENTS", "message.created,message.sent");
        let error = Config::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("\"message.sent\" is not an event type"),
            "{error}"
        );
        Ok(())
    });
    // No url: nothing is written, whatever `events` says.
    let mut config = Config::default();
    config.webhook.events = vec!["message.created".into()];
    assert_eq!(config.webhook.event_set(), EventSet::NONE);
    config.webhook.url = "https://app.example/hooks".into();
    config.webhook.secret = "s".into();
    config.webhook.events.clear();
    assert_eq!(config.webhook.event_set(), EventSet::all(), "empty: all");
    assert!(config.validate().is_ok());
    let refused = |tweak: fn(&mut Config)| {
        let mut bad = config.clone();
        tweak(&mut bad);
        bad.validate().unwrap_err().to_string()
    };
    assert!(refused(|c| c.webhook.secret.clear()).contains("webhook.secret"));
    assert!(refused(|c| c.webhook.url = "ftp://app".into()).contains("webhook.url"));
    assert!(refused(|c| c.webhook.max_attempts = 0).contains("max_attempts"));
    assert!(refused(|c| c.webhook.max_pending = 0).contains("max_pending"));
    assert!(refused(|c| c.webhook.max_in_flight = 0).contains("max_in_flight"));
}

#[test]
fn dev_login_is_on_by_default_only_with_a_generated_secret_on_loopback() {
    let with = |listen: &str, secret: &str, dev_login: DevLogin| {
        let mut config = Config {
            listen: listen.into(),
            jwt_secret: secret.into(),
            ..Config::default()
        };
        config.auth.dev_login = dev_login;
        config.dev_login_enabled()
    };
    for listen in [
        "127.0.0.1:8080",
        "127.9.9.9:1",
        "[::1]:8080",
        "localhost:8080",
        "LocalHost:0",
    ] {
        assert!(with(listen, "", DevLogin::Auto), "{listen}");
        assert!(!with(listen, "configured", DevLogin::Auto), "{listen}");
        assert!(!with(listen, "", DevLogin::Off), "{listen}");
    }
    for listen in [
        "0.0.0.0:8080",
        "[::]:8080",
        "10.0.0.5:80",
        "chat.example:443",
        "localhost.evil:1",
    ] {
        assert!(!with(listen, "", DevLogin::Auto), "{listen}");
        assert!(with(listen, "configured", DevLogin::On), "{listen}");
    }
    figment::Jail::expect_with(|jail| {
        jail.set_env("CONFAB_AUTH__DEV_LOGIN", "off");
        let config = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(config.auth.dev_login, DevLogin::Off);
        jail.set_env("CONFAB_AUTH__DEV_LOGIN", "maybe");
        assert!(Config::load(None, &Overrides::default()).is_err());
        Ok(())
    });
}
