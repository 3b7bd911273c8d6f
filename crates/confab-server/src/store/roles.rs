//! The roles a user has: globally (from its token or the admin API) and in
//! each room, as stored and as apps name them.

/// Global role of a user (claim `role`): the three the server gives
/// meaning to, and any other name an app uses for its own rules (protocol.md
/// §8.2, "Roles": `analyst`), which has a member's rights and is kept, shown
/// and matched against app commands' `roles`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum GlobalRole {
    /// May do anything, including `/api/v1/stats`.
    Admin,
    /// The default.
    #[default]
    Member,
    /// Read-only everywhere.
    Viewer,
    /// A name of the app's: a member's rights.
    Custom(RoleName),
}

/// A role name of the app's own: 1–32 characters of `a-z 0-9 _ -`, never
/// one of the built-in names (which parse to their own variants).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleName(String);

impl RoleName {
    /// The longest role name.
    pub const MAX_LEN: usize = 32;

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl GlobalRole {
    /// The role as stored and sent.
    pub fn as_str(&self) -> &str {
        match self {
            GlobalRole::Admin => "admin",
            GlobalRole::Member => "member",
            GlobalRole::Viewer => "viewer",
            GlobalRole::Custom(name) => name.as_str(),
        }
    }

    /// Parses a stored or claimed role name: the built-in names (and
    /// `user`, an alias of `member`), or any other well-formed name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(GlobalRole::Admin),
            "member" | "user" => Some(GlobalRole::Member),
            "viewer" => Some(GlobalRole::Viewer),
            _ if is_role_name(name) => Some(GlobalRole::Custom(RoleName(name.to_owned()))),
            _ => None,
        }
    }
}

/// Whether `name` is a well-formed role name (1–32 of `a-z 0-9 _ -`).
pub fn is_role_name(name: &str) -> bool {
    (1..=RoleName::MAX_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// What a refused role name is told (claims, REST, the CLI).
pub const ROLE_NAME_RULE: &str = "a role is 1–32 characters of a-z, 0-9, _ and -";

/// Role of a member inside one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum RoomRole {
    /// Read-only in this room.
    Viewer,
    /// The default.
    #[default]
    Member,
    /// May manage members and messages.
    Admin,
    /// Created the room; as admin.
    Owner,
}

impl RoomRole {
    /// The role as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomRole::Owner => "owner",
            RoomRole::Admin => "admin",
            RoomRole::Member => "member",
            RoomRole::Viewer => "viewer",
        }
    }

    /// Parses a stored or requested role name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "owner" => Some(RoomRole::Owner),
            "admin" => Some(RoomRole::Admin),
            "member" => Some(RoomRole::Member),
            "viewer" => Some(RoomRole::Viewer),
            _ => None,
        }
    }
}
