//! `ferryctl acl`: add, remove and list ACL entries. The flags of `add` and
//! `remove` (`AclArgs`) become one typed `AclRule`.

use ferry_client::{AclPermission, AclRule, Client, PatternType, ResourceType};
use serde_json::json;

use crate::cli::{AclArgs, AclCommand};
use crate::error::{CliError, CliResult};
use crate::output::{outcome, print_json, print_table};

/// Runs one `acl` subcommand.
pub async fn run(client: &Client, command: AclCommand, json_output: bool) -> CliResult {
    match command {
        AclCommand::Add(args) => {
            let rule = rule(args)?;
            client.create_acl(&rule).await?;
            outcome(
                json_output,
                json!({ "added": rule_json(&rule) }),
                format!("added ACL: {}", describe(&rule)),
            )
        }
        AclCommand::Remove(args) => {
            let rule = rule(args)?;
            client.delete_acl(&rule).await?;
            outcome(
                json_output,
                json!({ "removed": rule_json(&rule) }),
                format!("removed ACL: {}", describe(&rule)),
            )
        }
        AclCommand::List => list(client, json_output).await,
    }
}

/// The rule `args` name (clap makes sure exactly one permission and one
/// resource flag are given).
fn rule(args: AclArgs) -> Result<AclRule, CliError> {
    let permission = if args.deny {
        AclPermission::Deny
    } else {
        AclPermission::Allow
    };
    let (resource_type, resource_name) = if let Some(topic) = args.topic {
        (ResourceType::Topic, topic)
    } else if let Some(group) = args.group {
        (ResourceType::Group, group)
    } else if let Some(queue) = args.queue {
        (ResourceType::Queue, queue_name(queue, args.prefixed)?)
    } else {
        (ResourceType::Cluster, "*".to_string())
    };
    let pattern = if args.prefixed {
        PatternType::Prefixed
    } else {
        PatternType::Literal
    };
    Ok(AclRule {
        principal: args.principal,
        resource_type,
        pattern,
        resource_name,
        operation: args.operation,
        permission,
        host: args.host,
    })
}

/// `--queue`: `TOPIC/QUEUE`, `*`, or with `--prefixed` any prefix.
fn queue_name(queue: String, prefixed: bool) -> Result<String, CliError> {
    let whole = queue
        .split_once('/')
        .is_some_and(|(topic, name)| !topic.is_empty() && !name.is_empty());
    if prefixed || whole || queue == "*" {
        return Ok(queue);
    }
    Err(CliError::InvalidValue {
        flag: "--queue",
        value: queue,
        expected: "TOPIC/QUEUE, * (every queue), or a prefix with --prefixed",
    })
}

async fn list(client: &Client, json_output: bool) -> CliResult {
    let rules = client.list_acls().await?;
    if json_output {
        let list: Vec<_> = rules.iter().map(rule_json).collect();
        return print_json(json!({ "acls": list }));
    }
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            vec![
                r.principal.clone(),
                r.permission.to_string(),
                r.operation.to_string(),
                r.resource_type.to_string(),
                r.resource_name.clone(),
                r.pattern.to_string(),
                r.host.map_or_else(|| "*".into(), |ip| ip.to_string()),
            ]
        })
        .collect();
    let headers = [
        "PRINCIPAL",
        "PERMISSION",
        "OPERATION",
        "RESOURCE",
        "NAME",
        "PATTERN",
        "HOST",
    ];
    print_table(&headers, &rows)
}

fn rule_json(rule: &AclRule) -> serde_json::Value {
    json!({
        "principal": rule.principal,
        "permission": rule.permission.as_str(),
        "operation": rule.operation.as_str(),
        "resource_type": rule.resource_type.as_str(),
        "resource_name": rule.resource_name,
        "pattern": rule.pattern.as_str(),
        "host": rule.host.map(|ip| ip.to_string()),
    })
}

/// One line: `allow User:alice write on topic orders. (prefixed)`.
fn describe(rule: &AclRule) -> String {
    let mut text = format!(
        "{} {} {} on {} {}",
        rule.permission, rule.principal, rule.operation, rule.resource_type, rule.resource_name
    );
    if rule.pattern == PatternType::Prefixed {
        text.push_str(" (prefixed)");
    }
    if let Some(host) = rule.host {
        text.push_str(&format!(" from {host}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use ferry_client::AclOperation;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parsed(args: &[&str]) -> Option<Result<AclRule, CliError>> {
        let line = [&["ferryctl", "acl", "add", "User:alice"], args].concat();
        match Cli::try_parse_from(line).ok()?.command {
            Command::Acl(AclCommand::Add(args)) => Some(rule(args)),
            _ => None,
        }
    }

    #[test]
    fn flags_become_a_typed_rule() {
        let args = [
            "--allow",
            "--operation",
            "write",
            "--topic",
            "orders.",
            "--prefixed",
        ];
        let rule = parsed(&args).and_then(Result::ok);
        let expected = AclRule {
            principal: "User:alice".into(),
            resource_type: ResourceType::Topic,
            pattern: PatternType::Prefixed,
            resource_name: "orders.".into(),
            operation: AclOperation::Write,
            permission: AclPermission::Allow,
            host: None,
        };
        assert_eq!(rule.as_ref(), Some(&expected));
        assert_eq!(
            describe(&expected),
            "allow User:alice write on topic orders. (prefixed)"
        );
        let args = [
            "--deny",
            "--operation",
            "ALTER",
            "--cluster",
            "--host",
            "10.1.2.3",
        ];
        let cluster = parsed(&args).and_then(Result::ok);
        let cluster = cluster.map(|r| (r.permission, r.resource_type, r.resource_name, r.host));
        let host = "10.1.2.3".parse().ok();
        assert_eq!(
            cluster,
            Some((AclPermission::Deny, ResourceType::Cluster, "*".into(), host))
        );
    }

    #[test]
    fn queues_are_named_topic_slash_queue() {
        let queue = |name: &str, prefixed: bool| queue_name(name.to_string(), prefixed).is_ok();
        assert!(queue("orders/billing", false) && queue("*", false) && queue("ord", true));
        assert!(!queue("billing", false) && !queue("orders/", false) && !queue("/q", false));
        assert!(
            parsed(&["--allow", "--operation", "read", "--queue", "orders"])
                .is_some_and(|r| r.is_err())
        );
    }
}
