//! `auth.dev_login`: whether the browser client's "pick a name" sign-in
//! exists, and the loopback test its `auto` setting rests on.

use serde::{Deserialize, Serialize};

/// Whether `POST /api/v1/dev/login` exists (see [`super::AuthConfig::dev_login`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DevLogin {
    /// On while the JWT secret is generated and the listen address is loopback.
    #[default]
    Auto,
    /// On, whatever the secret and address.
    On,
    /// Off.
    Off,
}

/// Whether `listen` (`host:port`) names a loopback address.
pub(super) fn listens_on_loopback(listen: &str) -> bool {
    if let Ok(address) = listen.parse::<std::net::SocketAddr>() {
        return address.ip().is_loopback();
    }
    listen
        .rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}
