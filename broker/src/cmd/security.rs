//! The admin APIs of users, access tokens, ACL entries and quotas: wire
//! requests in, validated values to `security/admin.rs`, wire answers out.
//! Changes write `security.meta` (an fsync), so they run on the blocking
//! pool.

use std::net::IpAddr;
use std::sync::Arc;

use ferry_protocol::frame::FrameHeader;
use ferry_protocol::messages::*;
use ferry_protocol::scram::{StoredCredentials, ITERATIONS_MAX, ITERATIONS_MIN};

use super::{blocking, respond, Reply};
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::security::acl::{AclEntry, Operation, PatternType, Permission, PrincipalPattern};
use crate::security::quota::QuotaLimits;
use crate::security::{Principal, ResourceType, UserName};

/// Salt lengths accepted for SCRAM credentials.
const SALT_BYTES_MIN: usize = 16;
const SALT_BYTES_LIMIT: usize = 64;

fn ok(header: FrameHeader) -> Result<ferry_protocol::frame::OutFrame> {
    Ok(respond(header, &StatusResponse::default()))
}

fn user_name(name: &str) -> Result<UserName> {
    UserName::parse(name).ok_or_else(|| BrokerError::InvalidSecurityValue {
        what: "user name",
        value: name.chars().take(256).collect(),
        expected: "1..=128 of A-Z a-z 0-9 . _ @ -",
    })
}

fn credentials(wire: Option<ScramCredentials>) -> Result<StoredCredentials> {
    let invalid = |expected| BrokerError::InvalidSecurityValue {
        what: "SCRAM credentials",
        value: String::new(),
        expected,
    };
    let wire = wire.ok_or(invalid("credentials"))?;
    if !(SALT_BYTES_MIN..=SALT_BYTES_LIMIT).contains(&wire.salt.len()) {
        return Err(invalid("a salt of 16..=64 bytes"));
    }
    if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&wire.iterations) {
        return Err(invalid("iterations in 4096..=1000000"));
    }
    Ok(StoredCredentials {
        salt: wire.salt,
        iterations: wire.iterations,
        stored_key: wire
            .stored_key
            .try_into()
            .map_err(|_| invalid("a 32-byte StoredKey"))?,
        server_key: wire
            .server_key
            .try_into()
            .map_err(|_| invalid("a 32-byte ServerKey"))?,
    })
}

pub fn create_user(broker: &Arc<Broker>, header: FrameHeader, req: CreateUserRequest) -> Reply {
    blocking(broker, header, move |broker| {
        let name = user_name(&req.name)?;
        broker
            .security
            .create_user(&name, &credentials(req.credentials)?)?;
        ok(header)
    })
}

pub fn delete_user(broker: &Arc<Broker>, header: FrameHeader, req: DeleteUserRequest) -> Reply {
    blocking(broker, header, move |broker| {
        broker.security.delete_user(&req.name)?;
        ok(header)
    })
}

pub fn change_password(
    broker: &Arc<Broker>,
    header: FrameHeader,
    req: ChangePasswordRequest,
) -> Reply {
    blocking(broker, header, move |broker| {
        let credentials = credentials(req.credentials)?;
        broker.security.change_password(&req.name, &credentials)?;
        ok(header)
    })
}

pub fn list_users(broker: &Arc<Broker>, header: FrameHeader) -> Reply {
    let users = broker
        .security
        .list_users()
        .into_iter()
        .map(|user| UserInfo {
            name: user.name,
            iterations: user.iterations,
            super_user: user.super_user,
            tokens: user.tokens,
        })
        .collect();
    let response = ListUsersResponse {
        users,
        ..ListUsersResponse::default()
    };
    Reply::Now(respond(header, &response))
}

pub fn create_token(broker: &Arc<Broker>, header: FrameHeader, req: CreateTokenRequest) -> Reply {
    blocking(broker, header, move |broker| {
        let lifetime_ms = (req.expires_in_ms > 0).then_some(req.expires_in_ms);
        let token = broker.security.create_token(&req.user, lifetime_ms)?;
        let response = CreateTokenResponse {
            token: token.token,
            id: token.id,
            expires_at_ms: token.expires_at_ms.unwrap_or(0),
            ..CreateTokenResponse::default()
        };
        Ok(respond(header, &response))
    })
}

pub fn revoke_token(broker: &Arc<Broker>, header: FrameHeader, req: RevokeTokenRequest) -> Reply {
    blocking(broker, header, move |broker| {
        broker.security.revoke_token(&req.id)?;
        ok(header)
    })
}

pub fn list_tokens(broker: &Arc<Broker>, header: FrameHeader, req: ListTokensRequest) -> Reply {
    let user = (!req.user.is_empty()).then_some(req.user.as_str());
    let tokens = broker
        .security
        .list_tokens(user)
        .into_iter()
        .map(|token| TokenInfo {
            id: token.id,
            user: token.user,
            created_at_ms: token.created_at_ms,
            expires_at_ms: token.expires_at_ms.unwrap_or(0),
        })
        .collect();
    let response = ListTokensResponse {
        tokens,
        ..ListTokensResponse::default()
    };
    Reply::Now(respond(header, &response))
}

/// The typed entry of a wire binding.
fn acl_entry(wire: Option<AclBinding>) -> Result<AclEntry> {
    let invalid = |what, value: String, expected| BrokerError::InvalidSecurityValue {
        what,
        value,
        expected,
    };
    let wire = wire.ok_or(invalid("acl", String::new(), "an ACL entry"))?;
    let principal: PrincipalPattern = wire
        .principal
        .parse()
        .map_err(|_| invalid("principal", wire.principal.clone(), "User:<name> or User:*"))?;
    let resource_type = ResourceType::from_u32(wire.resource_type)
        .ok_or_else(|| invalid("resource type", wire.resource_type.to_string(), "0..=3"))?;
    let pattern = PatternType::from_u32(wire.pattern).ok_or_else(|| {
        invalid(
            "pattern",
            wire.pattern.to_string(),
            "0 literal or 1 prefixed",
        )
    })?;
    let operation = Operation::from_u32(wire.operation)
        .ok_or_else(|| invalid("operation", wire.operation.to_string(), "0..=5"))?;
    let permission = Permission::from_u32(wire.permission).ok_or_else(|| {
        invalid(
            "permission",
            wire.permission.to_string(),
            "0 allow or 1 deny",
        )
    })?;
    let host = match wire.host.as_str() {
        "" | "*" => None,
        text => Some(
            text.parse::<IpAddr>()
                .map_err(|_| invalid("host", text.chars().take(64).collect(), "an IP address"))?,
        ),
    };
    Ok(AclEntry {
        principal,
        resource_type,
        pattern,
        resource_name: wire.resource_name,
        operation,
        permission,
        host,
    })
}

fn acl_binding(entry: &AclEntry) -> AclBinding {
    AclBinding {
        principal: entry.principal.as_str().to_string(),
        resource_type: entry.resource_type.as_u32(),
        pattern: entry.pattern.as_u32(),
        resource_name: entry.resource_name.clone(),
        operation: entry.operation.as_u32(),
        permission: entry.permission.as_u32(),
        host: entry.host.map(|h| h.to_string()).unwrap_or_default(),
    }
}

pub fn create_acl(broker: &Arc<Broker>, header: FrameHeader, req: CreateAclRequest) -> Reply {
    blocking(broker, header, move |broker| {
        broker.security.add_acl(acl_entry(req.acl)?)?;
        ok(header)
    })
}

pub fn delete_acl(broker: &Arc<Broker>, header: FrameHeader, req: DeleteAclRequest) -> Reply {
    blocking(broker, header, move |broker| {
        broker.security.remove_acl(&acl_entry(req.acl)?)?;
        ok(header)
    })
}

pub fn list_acls(broker: &Arc<Broker>, header: FrameHeader) -> Reply {
    let acls = broker
        .security
        .list_acls()
        .iter()
        .map(acl_binding)
        .collect();
    let response = ListAclsResponse {
        acls,
        ..ListAclsResponse::default()
    };
    Reply::Now(respond(header, &response))
}

fn quota_principal(text: &str) -> Result<UserName> {
    Principal::parse_user(text).ok_or_else(|| BrokerError::InvalidSecurityValue {
        what: "quota principal",
        value: text.chars().take(256).collect(),
        expected: "User:<name>",
    })
}

pub fn set_quota(broker: &Arc<Broker>, header: FrameHeader, req: SetQuotaRequest) -> Reply {
    blocking(broker, header, move |broker| {
        let quota = req.quota.unwrap_or_default();
        let principal = quota_principal(&quota.principal)?;
        let limits = QuotaLimits {
            produce_bytes_per_sec: quota.produce_bytes_per_sec,
            fetch_bytes_per_sec: quota.fetch_bytes_per_sec,
            requests_per_sec: quota.requests_per_sec,
        };
        broker.security.set_quota(&principal, limits)?;
        ok(header)
    })
}

pub fn delete_quota(broker: &Arc<Broker>, header: FrameHeader, req: DeleteQuotaRequest) -> Reply {
    blocking(broker, header, move |broker| {
        broker.security.delete_quota(&req.principal)?;
        ok(header)
    })
}

pub fn list_quotas(broker: &Arc<Broker>, header: FrameHeader) -> Reply {
    let quotas = broker
        .security
        .list_quotas()
        .into_iter()
        .map(|(principal, limits)| QuotaEntry {
            principal,
            produce_bytes_per_sec: limits.produce_bytes_per_sec,
            fetch_bytes_per_sec: limits.fetch_bytes_per_sec,
            requests_per_sec: limits.requests_per_sec,
        })
        .collect();
    let response = ListQuotasResponse {
        quotas,
        ..ListQuotasResponse::default()
    };
    Reply::Now(respond(header, &response))
}
