//! Validated names. Topic, group and queue names share one rule: 1 to 200
//! bytes of ASCII letters, digits, `.`, `_` and `-`, and not `.` or `..`
//! (a topic name is a directory name). A value of these types is valid by
//! construction, so nothing downstream checks again.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, NameKind};

/// Longest name, in bytes.
pub const NAME_MAX_BYTES: usize = 200;
/// Longest part of a refused name repeated in an error message.
const ECHO_MAX_CHARS: usize = 64;

/// Why `name` is not a valid name, if it is not.
fn problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.len() > NAME_MAX_BYTES {
        return Some("longer than 200 bytes");
    }
    if name == "." || name == ".." {
        return Some("'.' and '..' are reserved");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
    if !name.bytes().all(allowed) {
        return Some("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    None
}

/// A name checked by [`problem`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Checks `name`; `kind` says which kind of name a refusal names.
    pub fn new(kind: NameKind, name: impl Into<String>) -> Result<Name, BrokerError> {
        let name = name.into();
        match problem(&name) {
            None => Ok(Name(name)),
            Some(reason) => Err(BrokerError::InvalidName {
                kind,
                name: name.chars().take(ECHO_MAX_CHARS).collect(),
                reason,
            }),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = BrokerError;

    fn try_from(name: String) -> Result<Name, BrokerError> {
        Name::new(NameKind::Topic, name)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $type:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $type(Name);

        impl $type {
            /// Checks `name`.
            pub fn new(name: impl Into<String>) -> Result<$type, BrokerError> {
                Name::new($kind, name).map($type)
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl Deref for $type {
            type Target = str;

            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl Borrow<str> for $type {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $type {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

name_type!(
    /// A topic's name (also its directory name).
    TopicName,
    NameKind::Topic
);
name_type!(
    /// A consumer group's name.
    GroupName,
    NameKind::Group
);
name_type!(
    /// A queue's name on its topic.
    QueueName,
    NameKind::Queue
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_once_at_construction() {
        for good in ["orders", "a.b-c_d", "x", &"n".repeat(200)] {
            assert!(TopicName::new(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "é", "a b", &"n".repeat(201)] {
            let error = TopicName::new(bad).unwrap_err();
            assert!(matches!(error, BrokerError::InvalidName { .. }), "{bad}");
        }
        let group = GroupName::new("a/b").unwrap_err();
        assert!(group.to_string().contains("group"), "{group}");
    }

    #[test]
    fn an_invalid_name_in_a_file_does_not_deserialize() {
        assert!(serde_json::from_str::<TopicName>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<TopicName>("\"../etc\"").is_err());
    }
}
