//! Kafka's ACL model: entries that allow or deny one operation on a set of
//! resources to a principal (or to every principal), from one host or any,
//! and the rule that decides a request.
//!
//! The rule ([`Acls::authorize`]): a matching deny wins; else a matching
//! allow; else deny. `read`, `write`, `delete` and `alter` imply
//! `describe`: an allow of one of them also allows `describe`. A deny only
//! denies the operation it names, so a deny of `describe` denies
//! `describe` only, and a deny of `read` does not deny `describe`.
//!
//! Matching:
//! - principal: `User:<name>` matches exactly that principal; `User:*`
//!   matches every principal, `User:ANONYMOUS` included.
//! - resource: a literal name matches exactly that name (`orders` does not
//!   match `orders2`), and the literal name `*` matches every resource of
//!   its type; a prefixed name matches every name that starts with it
//!   (`orders.` matches `orders.eu`, not `ordersx`).
//! - host: `None` matches every host; an address matches that address
//!   (an IPv4-mapped IPv6 peer, as seen by a dual-stack listener, matches
//!   its IPv4 form).
//! - the cluster has one resource, named `*`: a cluster entry is always the
//!   literal `*`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most entries one broker holds.
pub const ACL_ENTRIES_LIMIT: usize = 10_000;
/// Longest resource name (or prefix) of an entry, in bytes: a queue's
/// `topic/queue` with both names at their longest.
pub const ACL_RESOURCE_NAME_BYTES_LIMIT: usize = 2 * crate::domain::names::NAME_MAX_BYTES + 1;
/// Longest user name in a principal pattern, in bytes.
pub const ACL_PRINCIPAL_NAME_BYTES_LIMIT: usize = 128;
/// The resource name that means every resource of its type, and the name
/// of the cluster.
pub const WILDCARD_RESOURCE: &str = "*";
/// Longest part of a refused value repeated in an error message.
const ECHO_CHARS_LIMIT: usize = 64;
const USER_PREFIX: &str = "User:";
const WILDCARD_PRINCIPAL: &str = "User:*";

/// Why an entry, or one of its parts, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error(
        "invalid principal {0:?}: expected User:<name> (1 to 128 of A-Z a-z 0-9 . _ @ -) or User:*"
    )]
    InvalidPrincipal(String),
    #[error("unknown {what} {value:?}")]
    Unknown { what: &'static str, value: String },
    #[error("the resource name is empty")]
    EmptyResourceName,
    #[error("the resource name is {bytes} bytes, over the limit of {limit}")]
    ResourceNameTooLong { bytes: usize, limit: usize },
    #[error("the resource name contains a control character")]
    ControlCharacter,
    #[error(
        "a prefixed entry cannot be the wildcard \"*\": use a literal \"*\" for every resource"
    )]
    PrefixedWildcard,
    #[error("a cluster entry must be the literal name \"*\"")]
    ClusterName,
    #[error("too many ACL entries: the limit is {limit}")]
    TooMany { limit: usize },
}

/// `text`, cut short for an error message.
fn clip(text: &str) -> String {
    text.chars().take(ECHO_CHARS_LIMIT).collect()
}

/// A closed set of names with wire values `0..` in declaration order:
/// `FromStr` and `Display` (lowercase names), `from_u32` and `as_u32`.
macro_rules! acl_enum {
    (
        $(#[$doc:meta])*
        $name:ident, $what:literal {
            $($variant:ident => $text:literal $(| $alias:literal)*),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord,
        )]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value of wire number `value`, if there is one.
            pub fn from_u32(value: u32) -> Option<$name> {
                usize::try_from(value).ok().and_then(|i| Self::ALL.get(i).copied())
            }

            /// The wire number.
            pub fn as_u32(self) -> u32 {
                self as u32
            }

            /// The lowercase name.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = AclError;

            fn from_str(text: &str) -> Result<$name, AclError> {
                match text {
                    $($text $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(AclError::Unknown { what: $what, value: clip(text) }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

acl_enum! {
    /// What kind of thing an entry is about.
    ResourceType, "resource type" {
        Cluster => "cluster",
        Topic => "topic",
        Group => "group",
        Queue => "queue",
    }
}

acl_enum! {
    /// How an entry's resource name matches names.
    PatternType, "pattern type" {
        Literal => "literal",
        Prefixed => "prefixed" | "prefix",
    }
}

acl_enum! {
    /// What a request does to a resource.
    Operation, "operation" {
        Read => "read",
        Write => "write",
        Create => "create",
        Delete => "delete",
        Alter => "alter",
        Describe => "describe",
    }
}

acl_enum! {
    /// Whether a matching entry allows or denies.
    Permission, "permission" {
        Allow => "allow",
        Deny => "deny",
    }
}

impl Operation {
    /// Whether an allow of `self` also allows `requested`.
    fn grants(self, requested: Operation) -> bool {
        use Operation::*;
        self == requested
            || (requested == Describe && matches!(self, Read | Write | Delete | Alter))
    }
}

/// Whom an entry is about: `User:<name>`, or `User:*` for every principal.
/// Valid by construction: `User:` then 1 to
/// [`ACL_PRINCIPAL_NAME_BYTES_LIMIT`] bytes of `A-Z a-z 0-9 . _ @ -`, or
/// `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrincipalPattern(String);

impl PrincipalPattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `User:*`.
    pub fn is_wildcard(&self) -> bool {
        self.0 == WILDCARD_PRINCIPAL
    }

    /// Whether the entry applies to `principal` (a principal's text,
    /// `User:<name>` or `User:ANONYMOUS`).
    pub fn matches(&self, principal: &str) -> bool {
        if self.is_wildcard() {
            return principal.starts_with(USER_PREFIX);
        }
        self.0 == principal
    }
}

impl FromStr for PrincipalPattern {
    type Err = AclError;

    fn from_str(text: &str) -> Result<PrincipalPattern, AclError> {
        let invalid = || AclError::InvalidPrincipal(clip(text));
        let name = text.strip_prefix(USER_PREFIX).ok_or_else(invalid)?;
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-');
        let length_ok = (1..=ACL_PRINCIPAL_NAME_BYTES_LIMIT).contains(&name.len());
        if name == "*" || (length_ok && name.bytes().all(allowed)) {
            Ok(PrincipalPattern(text.to_string()))
        } else {
            Err(invalid())
        }
    }
}

impl TryFrom<String> for PrincipalPattern {
    type Error = AclError;

    fn try_from(text: String) -> Result<PrincipalPattern, AclError> {
        text.parse()
    }
}

impl From<PrincipalPattern> for String {
    fn from(pattern: PrincipalPattern) -> String {
        pattern.0
    }
}

impl fmt::Display for PrincipalPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One ACL entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclEntry {
    pub principal: PrincipalPattern,
    pub resource_type: ResourceType,
    pub pattern: PatternType,
    /// A name, a prefix, or `*` (literal only) for every resource.
    pub resource_name: String,
    pub operation: Operation,
    pub permission: Permission,
    /// `None`: every host.
    pub host: Option<IpAddr>,
}

impl AclEntry {
    /// Checks what the principal's type does not: the resource name is 1 to
    /// [`ACL_RESOURCE_NAME_BYTES_LIMIT`] bytes without control characters,
    /// `*` is literal only, and a cluster entry is the literal `*`.
    pub fn validate(&self) -> Result<(), AclError> {
        let name = self.resource_name.as_str();
        if name.is_empty() {
            return Err(AclError::EmptyResourceName);
        }
        if name.len() > ACL_RESOURCE_NAME_BYTES_LIMIT {
            return Err(AclError::ResourceNameTooLong {
                bytes: name.len(),
                limit: ACL_RESOURCE_NAME_BYTES_LIMIT,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(AclError::ControlCharacter);
        }
        let literal = self.pattern == PatternType::Literal;
        if name == WILDCARD_RESOURCE && !literal {
            return Err(AclError::PrefixedWildcard);
        }
        if self.resource_type == ResourceType::Cluster && !(literal && name == WILDCARD_RESOURCE) {
            return Err(AclError::ClusterName);
        }
        Ok(())
    }

    /// Whether the entry is about `principal` on `host` and the resource
    /// `name` of type `resource_type` (whatever its operation).
    fn applies_to(
        &self,
        principal: &str,
        host: IpAddr,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.resource_type == resource_type
            && self.name_matches(name)
            && self.host_matches(host)
            && self.principal.matches(principal)
    }

    fn name_matches(&self, name: &str) -> bool {
        match self.pattern {
            PatternType::Literal => {
                self.resource_name == WILDCARD_RESOURCE || self.resource_name == name
            }
            PatternType::Prefixed => name.starts_with(&self.resource_name),
        }
    }

    fn host_matches(&self, host: IpAddr) -> bool {
        match self.host {
            None => true,
            Some(own) => own.to_canonical() == host.to_canonical(),
        }
    }
}

/// Every ACL entry of the broker, without duplicates, in the order added.
/// Loading refuses a list with an invalid entry or over the limit (an entry
/// silently dropped could be a deny).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<AclEntry>", into = "Vec<AclEntry>")]
pub struct Acls {
    entries: Vec<AclEntry>,
}

impl Acls {
    /// Adds `entry`: `Ok(false)` when it is already there. Refuses an
    /// invalid entry, and a new one past [`ACL_ENTRIES_LIMIT`].
    pub fn add(&mut self, entry: AclEntry) -> Result<bool, AclError> {
        entry.validate()?;
        if self.entries.contains(&entry) {
            return Ok(false);
        }
        if self.entries.len() >= ACL_ENTRIES_LIMIT {
            return Err(AclError::TooMany {
                limit: ACL_ENTRIES_LIMIT,
            });
        }
        self.entries.push(entry);
        assert!(self.entries.len() <= ACL_ENTRIES_LIMIT);
        Ok(true)
    }

    /// Removes `entry`; false when it was not there.
    pub fn remove(&mut self, entry: &AclEntry) -> bool {
        let before = self.entries.len();
        self.entries.retain(|own| own != entry);
        self.entries.len() < before
    }

    /// Removes every entry naming exactly `principal` (wildcard entries
    /// stay unless `principal` is `User:*`); how many went.
    pub fn remove_principal(&mut self, principal: &str) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|entry| entry.principal.as_str() != principal);
        before - self.entries.len()
    }

    pub fn entries(&self) -> &[AclEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `principal` connected from `host` may do `operation` on the
    /// resource `name` of type `resource_type`: a matching deny of
    /// `operation` wins; else a matching allow that grants it; else no.
    /// One pass over the entries.
    pub fn authorize(
        &self,
        principal: &str,
        host: IpAddr,
        resource_type: ResourceType,
        name: &str,
        operation: Operation,
    ) -> bool {
        let mut allowed = false;
        for entry in &self.entries {
            if !entry.applies_to(principal, host, resource_type, name) {
                continue;
            }
            match entry.permission {
                Permission::Deny if entry.operation == operation => return false,
                Permission::Allow if entry.operation.grants(operation) => allowed = true,
                _ => {}
            }
        }
        allowed
    }
}

impl TryFrom<Vec<AclEntry>> for Acls {
    type Error = AclError;

    fn try_from(entries: Vec<AclEntry>) -> Result<Acls, AclError> {
        let mut acls = Acls::default();
        for entry in entries {
            acls.add(entry)?;
        }
        Ok(acls)
    }
}

impl From<Acls> for Vec<AclEntry> {
    fn from(acls: Acls) -> Vec<AclEntry> {
        acls.entries
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    const ALICE: &str = "User:alice";
    const BOB: &str = "User:bob";
    const ANONYMOUS: &str = "User:ANONYMOUS";

    fn local() -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    fn entry(
        principal: &str,
        resource_type: ResourceType,
        pattern: PatternType,
        name: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclEntry {
        AclEntry {
            principal: principal.parse().expect("test principal is valid"),
            resource_type,
            pattern,
            resource_name: name.to_string(),
            operation,
            permission,
            host: None,
        }
    }

    fn allow(principal: &str, name: &str, operation: Operation) -> AclEntry {
        use {PatternType::Literal, Permission::Allow, ResourceType::Topic};
        entry(principal, Topic, Literal, name, operation, Allow)
    }

    fn deny(principal: &str, name: &str, operation: Operation) -> AclEntry {
        use {PatternType::Literal, Permission::Deny, ResourceType::Topic};
        entry(principal, Topic, Literal, name, operation, Deny)
    }

    fn acls(entries: impl IntoIterator<Item = AclEntry>) -> Acls {
        let mut acls = Acls::default();
        for entry in entries {
            acls.add(entry).expect("test entry is accepted");
        }
        acls
    }

    /// Whether `principal` on localhost may do `operation` on topic `name`.
    fn may(acls: &Acls, principal: &str, name: &str, operation: Operation) -> bool {
        acls.authorize(principal, local(), ResourceType::Topic, name, operation)
    }

    #[test]
    fn nothing_is_allowed_without_a_matching_allow() {
        assert!(!may(&Acls::default(), ALICE, "orders", Operation::Read));
        let acls = acls([allow(ALICE, "orders", Operation::Read)]);
        assert!(may(&acls, ALICE, "orders", Operation::Read));
        assert!(!may(&acls, ALICE, "orders", Operation::Write));
        assert!(!may(&acls, BOB, "orders", Operation::Read));
        let group = acls.authorize(
            ALICE,
            local(),
            ResourceType::Group,
            "orders",
            Operation::Read,
        );
        assert!(!group, "an entry applies to its resource type only");
    }

    #[test]
    fn a_matching_deny_beats_any_allow() {
        let mut set = acls([
            allow("User:*", "*", Operation::Write),
            allow(ALICE, "orders", Operation::Write),
        ]);
        set.add(deny(ALICE, "orders", Operation::Write))
            .expect("valid");
        assert!(!may(&set, ALICE, "orders", Operation::Write));
        assert!(may(&set, ALICE, "payments", Operation::Write));
        assert!(may(&set, BOB, "orders", Operation::Write));
    }

    #[test]
    fn read_write_delete_and_alter_imply_describe() {
        use Operation::*;
        for implying in [Read, Write, Delete, Alter] {
            let set = acls([allow(ALICE, "orders", implying)]);
            assert!(
                may(&set, ALICE, "orders", Describe),
                "{implying} implies describe"
            );
        }
        let set = acls([allow(ALICE, "orders", Create)]);
        assert!(!may(&set, ALICE, "orders", Describe), "create does not");
        let set = acls([allow(ALICE, "orders", Describe)]);
        assert!(
            !may(&set, ALICE, "orders", Read),
            "describe implies nothing"
        );
    }

    #[test]
    fn a_deny_denies_only_the_operation_it_names() {
        use Operation::*;
        let set = acls([
            allow(ALICE, "orders", Read),
            deny(ALICE, "orders", Describe),
        ]);
        assert!(!may(&set, ALICE, "orders", Describe));
        assert!(
            may(&set, ALICE, "orders", Read),
            "a deny of describe denies describe only"
        );
        let set = acls([allow(ALICE, "orders", Write), deny(ALICE, "orders", Read)]);
        assert!(!may(&set, ALICE, "orders", Read));
        assert!(
            may(&set, ALICE, "orders", Describe),
            "a deny of read leaves describe"
        );
    }

    #[test]
    fn a_literal_name_matches_exactly_and_star_matches_every_name() {
        let set = acls([allow(ALICE, "orders", Operation::Read)]);
        assert!(may(&set, ALICE, "orders", Operation::Read));
        assert!(!may(&set, ALICE, "orders2", Operation::Read));
        assert!(!may(&set, ALICE, "order", Operation::Read));
        let set = acls([allow(ALICE, "*", Operation::Read)]);
        for name in ["orders", "payments", "*"] {
            assert!(may(&set, ALICE, name, Operation::Read), "{name}");
        }
    }

    #[test]
    fn a_prefixed_name_matches_names_starting_with_it() {
        use {Operation::Read, PatternType::Prefixed, Permission::Allow, ResourceType::Topic};
        let set = acls([entry(ALICE, Topic, Prefixed, "orders.", Read, Allow)]);
        assert!(may(&set, ALICE, "orders.eu", Read));
        assert!(may(&set, ALICE, "orders.", Read));
        assert!(!may(&set, ALICE, "ordersx", Read));
        assert!(!may(&set, ALICE, "orders", Read));
        let star = entry(ALICE, Topic, Prefixed, "*", Read, Allow);
        assert_eq!(star.validate(), Err(AclError::PrefixedWildcard));
    }

    #[test]
    fn an_entry_with_a_host_matches_that_host_only() {
        let mut from_host = allow(ALICE, "orders", Operation::Read);
        from_host.host = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));
        let set = acls([from_host]);
        let read_from = |host: IpAddr| {
            set.authorize(ALICE, host, ResourceType::Topic, "orders", Operation::Read)
        };
        assert!(read_from(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))));
        assert!(!read_from(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8))));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped());
        assert!(read_from(mapped), "a dual-stack listener's mapped address");
        let any_host = acls([allow(ALICE, "orders", Operation::Read)]);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(any_host.authorize(ALICE, v6, ResourceType::Topic, "orders", Operation::Read));
    }

    #[test]
    fn the_wildcard_principal_matches_everyone_including_anonymous() {
        let set = acls([allow("User:*", "orders", Operation::Read)]);
        for principal in [ALICE, BOB, ANONYMOUS] {
            assert!(
                may(&set, principal, "orders", Operation::Read),
                "{principal}"
            );
        }
        let pattern: PrincipalPattern = "User:*".parse().expect("valid");
        assert!(pattern.is_wildcard());
        assert!(!pattern.matches("alice"), "not a principal's text");
        let alice: PrincipalPattern = ALICE.parse().expect("valid");
        assert!(alice.matches(ALICE));
        assert!(!alice.matches("User:alice2"));
    }

    #[test]
    fn principal_patterns_are_validated() {
        let long = format!("User:{}", "a".repeat(ACL_PRINCIPAL_NAME_BYTES_LIMIT));
        for good in [ALICE, "User:*", ANONYMOUS, "User:svc.orders-1@x_y", &long] {
            let parsed: PrincipalPattern = good.parse().expect(good);
            assert_eq!(parsed.as_str(), good);
        }
        let too_long = format!("{long}a");
        for bad in [
            "alice",
            "User:",
            "user:alice",
            "User:a b",
            "User:a*",
            "Group:x",
            &too_long,
        ] {
            let refused = bad.parse::<PrincipalPattern>();
            assert!(
                matches!(refused, Err(AclError::InvalidPrincipal(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn resource_names_are_validated() {
        use {Operation::Alter, PatternType::*, Permission::Allow, ResourceType::*};
        let named = |resource_type, pattern, name: &str| {
            entry(ALICE, resource_type, pattern, name, Alter, Allow).validate()
        };
        assert_eq!(named(Topic, Literal, ""), Err(AclError::EmptyResourceName));
        let longest = "t".repeat(ACL_RESOURCE_NAME_BYTES_LIMIT);
        assert_eq!(named(Topic, Literal, &longest), Ok(()));
        let refused = named(Topic, Literal, &format!("{longest}t"));
        assert!(matches!(
            refused,
            Err(AclError::ResourceNameTooLong { bytes, .. }) if bytes == ACL_RESOURCE_NAME_BYTES_LIMIT + 1
        ));
        assert_eq!(
            named(Topic, Literal, "a\nb"),
            Err(AclError::ControlCharacter)
        );
        assert_eq!(named(Queue, Literal, "orders/billing"), Ok(()));
        assert_eq!(named(Cluster, Literal, "*"), Ok(()));
        assert_eq!(named(Cluster, Literal, "ferry"), Err(AclError::ClusterName));
        assert_eq!(named(Cluster, Prefixed, "f"), Err(AclError::ClusterName));
    }

    #[test]
    fn names_and_wire_values_round_trip() {
        for &value in ResourceType::ALL {
            assert_eq!(value.to_string().parse(), Ok(value));
            assert_eq!(ResourceType::from_u32(value.as_u32()), Some(value));
        }
        for &value in Operation::ALL {
            assert_eq!(value.to_string().parse(), Ok(value));
            assert_eq!(Operation::from_u32(value.as_u32()), Some(value));
        }
        assert_eq!(Operation::Describe.as_u32(), 5);
        assert_eq!(Operation::from_u32(6), None);
        assert_eq!(ResourceType::Queue.as_u32(), 3);
        assert_eq!("prefix".parse(), Ok(PatternType::Prefixed));
        assert_eq!("prefixed".parse(), Ok(PatternType::Prefixed));
        assert_eq!(PatternType::from_u32(1), Some(PatternType::Prefixed));
        assert_eq!(Permission::from_u32(1), Some(Permission::Deny));
        assert_eq!(Permission::from_u32(2), None);
        assert!(matches!(
            "READ".parse::<Operation>(),
            Err(AclError::Unknown { .. })
        ));
    }

    #[test]
    fn adding_twice_keeps_one_and_removing_takes_it_out() {
        let mut set = Acls::default();
        let read = allow(ALICE, "orders", Operation::Read);
        assert_eq!(set.add(read.clone()), Ok(true));
        assert_eq!(set.add(read.clone()), Ok(false));
        assert_eq!(set.len(), 1);
        assert!(set.remove(&read));
        assert!(!set.remove(&read));
        assert!(set.is_empty());
        let invalid = allow(ALICE, "", Operation::Read);
        assert_eq!(set.add(invalid), Err(AclError::EmptyResourceName));
    }

    #[test]
    fn adding_past_the_limit_is_refused() {
        let mut set = Acls::default();
        for i in 0..ACL_ENTRIES_LIMIT {
            let added = set.add(allow(ALICE, &format!("t{i}"), Operation::Read));
            assert_eq!(added, Ok(true));
        }
        let again = set.add(allow(ALICE, "t0", Operation::Read));
        assert_eq!(again, Ok(false), "a duplicate is not a new entry");
        let refused = set.add(allow(ALICE, "one-more", Operation::Read));
        let limit = ACL_ENTRIES_LIMIT;
        assert_eq!(refused, Err(AclError::TooMany { limit }));
        assert_eq!(set.len(), ACL_ENTRIES_LIMIT);
    }

    #[test]
    fn removing_a_principal_drops_exactly_its_entries() {
        let mut set = acls([
            allow(ALICE, "orders", Operation::Read),
            deny(ALICE, "payments", Operation::Write),
            allow("User:alice2", "orders", Operation::Read),
            allow("User:*", "orders", Operation::Describe),
            allow(BOB, "orders", Operation::Read),
        ]);
        assert_eq!(set.remove_principal(ALICE), 2);
        assert_eq!(set.len(), 3);
        assert!(set.entries().iter().all(|e| e.principal.as_str() != ALICE));
        assert_eq!(set.remove_principal(ALICE), 0);
    }

    #[test]
    fn loading_validates_every_entry() {
        let set = acls([allow(ALICE, "orders", Operation::Read)]);
        let json = serde_json::to_string(&set).expect("serializes");
        assert!(json.contains("\"principal\":\"User:alice\""), "{json}");
        assert!(json.contains("\"operation\":\"read\""), "{json}");
        let loaded: Acls = serde_json::from_str(&json).expect("loads");
        assert_eq!(loaded, set);
        let bad_principal = json.replace("User:alice", "alice");
        assert!(serde_json::from_str::<Acls>(&bad_principal).is_err());
        let bad_name = json.replace("\"orders\"", "\"\"");
        assert!(serde_json::from_str::<Acls>(&bad_name).is_err());
    }

    fn any_entry() -> impl Strategy<Value = AclEntry> {
        let principal = prop::sample::select(vec![ALICE, BOB, "User:*", ANONYMOUS]);
        let resource_type = prop::sample::select(ResourceType::ALL.to_vec());
        let pattern = prop::sample::select(PatternType::ALL.to_vec());
        let name = prop::sample::select(vec!["orders", "orders.eu", "o", "*", "payments"]);
        let operation = prop::sample::select(Operation::ALL.to_vec());
        let permission = prop::sample::select(Permission::ALL.to_vec());
        let host = prop::option::of(prop::sample::select(vec![local(), any_v6()]));
        (
            principal,
            resource_type,
            pattern,
            name,
            operation,
            permission,
            host,
        )
            .prop_map(
                |(principal, resource_type, pattern, name, operation, permission, host)| {
                    let mut entry = entry(
                        principal,
                        resource_type,
                        pattern,
                        name,
                        operation,
                        permission,
                    );
                    if resource_type == ResourceType::Cluster {
                        entry.pattern = PatternType::Literal;
                        entry.resource_name = WILDCARD_RESOURCE.to_string();
                    }
                    if entry.pattern == PatternType::Prefixed && entry.resource_name == "*" {
                        entry.pattern = PatternType::Literal;
                    }
                    entry.host = host;
                    entry
                },
            )
    }

    fn any_v6() -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))
    }

    proptest! {
        /// Whatever else the set holds, a deny of exactly (principal,
        /// resource, name, operation) from any host makes the answer no.
        #[test]
        fn an_exact_deny_always_wins(
            others in prop::collection::vec(any_entry(), 0..40),
            principal in prop::sample::select(vec![ALICE, BOB, ANONYMOUS]),
            resource_type in prop::sample::select(ResourceType::ALL.to_vec()),
            name in prop::sample::select(vec!["orders", "orders.eu", "payments"]),
            operation in prop::sample::select(Operation::ALL.to_vec()),
            host in prop::sample::select(vec![local(), any_v6()]),
            deny_at in 0usize..41,
        ) {
            let name = if resource_type == ResourceType::Cluster { "*" } else { name };
            let exact = entry(principal, resource_type, PatternType::Literal, name, operation, Permission::Deny);
            let mut all = others;
            all.insert(deny_at.min(all.len()), exact);
            let set = acls(all);
            prop_assert!(!set.authorize(principal, host, resource_type, name, operation));
        }
    }
}
