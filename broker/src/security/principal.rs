//! Who a connection is: a [`Principal`] (`User:<name>`), how it proved it
//! ([`AuthMethod`]), and the validated [`UserName`] behind it.
//!
//! A user name is 1..=[`USER_NAME_BYTES_LIMIT`] characters of
//! `A-Z a-z 0-9 . _ @ -`: the same rule for SCRAM users, token owners,
//! certificate names and super users, so a name never needs escaping in a
//! principal, an ACL or a log line.

use std::fmt;

/// Longest user name.
pub const USER_NAME_BYTES_LIMIT: usize = 128;
/// The principal of a connection that has not authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";
const USER_PREFIX: &str = "User:";

/// A validated user name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

impl UserName {
    /// The name, if it follows the rule (and is not `ANONYMOUS`).
    pub fn parse(name: &str) -> Option<UserName> {
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
        let length_ok = (1..=USER_NAME_BYTES_LIMIT).contains(&name.len());
        (valid_chars && length_ok && name != "ANONYMOUS").then(|| UserName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whom requests are checked for: a user, or nobody yet. Its text
/// (`User:<name>`, `User:ANONYMOUS`) is made once, when the connection
/// authenticates: ACL checks and quota charges on every request borrow it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    user: Option<UserName>,
    text: String,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal {
            user: None,
            text: ANONYMOUS.to_string(),
        }
    }

    pub fn user(name: UserName) -> Principal {
        let text = format!("{USER_PREFIX}{name}");
        Principal {
            user: Some(name),
            text,
        }
    }

    /// `User:<name>` with a valid name (never the anonymous principal).
    pub fn parse_user(text: &str) -> Option<UserName> {
        UserName::parse(text.strip_prefix(USER_PREFIX)?)
    }

    /// The text ACLs and `WhoAmI` use: `User:<name>` or `User:ANONYMOUS`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The user, unless anonymous.
    pub fn name(&self) -> Option<&UserName> {
        self.user.as_ref()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// How a connection authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    None,
    Scram,
    /// An access token, by its id (revoking it closes the connection).
    Token {
        id: String,
    },
    /// A verified TLS client certificate.
    Certificate,
}

impl AuthMethod {
    /// The name `WhoAmI` reports.
    pub fn name(&self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Scram => ferry_protocol::scram::SCRAM_SHA_256,
            AuthMethod::Token { .. } => super::TOKEN_MECHANISM,
            AuthMethod::Certificate => "certificate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_one_rule() {
        for good in ["alice", "svc.orders-1", "a@b", "x_y", &"a".repeat(128)] {
            assert!(UserName::parse(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a,b",
            "a=b",
            "ANONYMOUS",
            "*",
            &"a".repeat(129),
            "é",
        ] {
            assert!(UserName::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            Principal::parse_user("User:alice").map(|n| n.0),
            Some("alice".to_string())
        );
        assert!(Principal::parse_user("User:*").is_none());
        assert!(Principal::parse_user("alice").is_none());
        assert_eq!(Principal::anonymous().text(), ANONYMOUS);
        let alice = UserName::parse("alice").unwrap();
        assert_eq!(Principal::user(alice).text(), "User:alice");
    }
}
