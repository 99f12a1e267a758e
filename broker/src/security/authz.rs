//! The authorization table: for every API, what the caller needs. One
//! `match` over [`ApiKey`] with no wildcard arm, so an API added to the
//! protocol table does not compile until it has a row here (and a test
//! walks every key).
//!
//! | API | needs |
//! | --- | --- |
//! | handshake, sasl_authenticate | nothing (they come before authentication) |
//! | who_am_i | an authenticated connection |
//! | create/delete/describe topic, list_offsets | topic create / delete / describe / describe |
//! | produce, init_producer_id, fetch | topic write, topic write, topic read |
//! | join, heartbeat, leave, offset_commit | group read |
//! | offset_fetch, describe_group | group describe |
//! | delete_group, reset_offsets | group delete, group alter |
//! | create/delete/describe queue | queue (`topic/queue`) create / delete / describe |
//! | queue_subscribe, ack, nack, in_progress, peek_queue | queue read |
//! | purge_queue | queue delete |
//! | list_topics, list_groups, list_queues | nothing: the answer holds only what the caller may describe |
//! | broker_status, list_users, list_tokens, list_acls, list_quotas | cluster describe |
//! | create/delete user, create/revoke token, create/delete acl, set/delete quota | cluster alter |
//! | change_password | cluster alter, or the user's own account |

use std::borrow::Cow;

use ferry_protocol::{ApiKey, Request};

use super::acl::{Operation, ResourceType};

/// The name of the cluster resource in ACLs.
pub const CLUSTER_RESOURCE: &str = "*";

/// What one API needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Allowed before authentication.
    Nothing,
    /// Any authenticated principal.
    Authenticated,
    /// `operation` on the resource the request names.
    On(ResourceType, Operation),
    /// Any authenticated principal; the answer is filtered to what it may
    /// describe of this type.
    Filtered(ResourceType),
    /// Cluster `operation`, or the caller's own user account.
    ClusterOrSelf(Operation),
    /// A frame only the broker sends.
    NotARequest,
}

/// The row of `key`.
pub fn need(key: ApiKey) -> Need {
    use Need::*;
    use Operation::*;
    use ResourceType::*;
    match key {
        ApiKey::Handshake | ApiKey::SaslAuthenticate => Nothing,
        ApiKey::WhoAmI => Authenticated,
        ApiKey::CreateTopic => On(Topic, Create),
        ApiKey::DeleteTopic => On(Topic, Delete),
        ApiKey::DescribeTopic | ApiKey::ListOffsets => On(Topic, Describe),
        ApiKey::Produce | ApiKey::InitProducerId => On(Topic, Write),
        ApiKey::Fetch => On(Topic, Read),
        ApiKey::JoinGroup | ApiKey::Heartbeat | ApiKey::LeaveGroup | ApiKey::OffsetCommit => {
            On(Group, Read)
        }
        ApiKey::OffsetFetch | ApiKey::DescribeGroup => On(Group, Describe),
        ApiKey::DeleteGroup => On(Group, Delete),
        ApiKey::ResetOffsets => On(Group, Alter),
        ApiKey::CreateQueue => On(Queue, Create),
        ApiKey::DeleteQueue => On(Queue, Delete),
        ApiKey::DescribeQueue => On(Queue, Describe),
        // Message contents, like consuming: read, not describe.
        ApiKey::PeekQueue => On(Queue, Read),
        // Destroys messages: as much as deleting the queue would.
        ApiKey::PurgeQueue => On(Queue, Delete),
        ApiKey::QueueSubscribe | ApiKey::Ack | ApiKey::Nack | ApiKey::InProgress => On(Queue, Read),
        ApiKey::ListTopics => Filtered(Topic),
        ApiKey::ListGroups => Filtered(Group),
        ApiKey::ListQueues => Filtered(Queue),
        ApiKey::BrokerStatus
        | ApiKey::ListUsers
        | ApiKey::ListTokens
        | ApiKey::ListAcls
        | ApiKey::ListQuotas => On(Cluster, Describe),
        ApiKey::CreateUser
        | ApiKey::DeleteUser
        | ApiKey::CreateToken
        | ApiKey::RevokeToken
        | ApiKey::CreateAcl
        | ApiKey::DeleteAcl
        | ApiKey::SetQuota
        | ApiKey::DeleteQuota => On(Cluster, Alter),
        ApiKey::ChangePassword => ClusterOrSelf(Alter),
        ApiKey::Deliver => NotARequest,
    }
}

/// The resource a request names, as ACLs name it: a topic, a group, a
/// queue as `topic/queue`, the cluster as `*`. `None` for requests whose
/// row is not [`Need::On`].
pub fn resource_name(request: &Request) -> Option<Cow<'_, str>> {
    let queue = |topic: &str, queue: &str| Some(Cow::Owned(format!("{topic}/{queue}")));
    match request {
        Request::CreateTopic(r) => Some(Cow::Borrowed(&r.name)),
        Request::DeleteTopic(r) => Some(Cow::Borrowed(&r.name)),
        Request::DescribeTopic(r) => Some(Cow::Borrowed(&r.name)),
        Request::ListOffsets(r) => Some(Cow::Borrowed(&r.topic)),
        Request::Produce(r) => Some(Cow::Borrowed(&r.topic)),
        Request::InitProducerId(r) => Some(Cow::Borrowed(&r.topic)),
        Request::Fetch(r) => Some(Cow::Borrowed(&r.topic)),
        Request::JoinGroup(r) => Some(Cow::Borrowed(&r.group)),
        Request::Heartbeat(r) => Some(Cow::Borrowed(&r.group)),
        Request::LeaveGroup(r) => Some(Cow::Borrowed(&r.group)),
        Request::OffsetCommit(r) => Some(Cow::Borrowed(&r.group)),
        Request::OffsetFetch(r) => Some(Cow::Borrowed(&r.group)),
        Request::DescribeGroup(r) => Some(Cow::Borrowed(&r.group)),
        Request::DeleteGroup(r) => Some(Cow::Borrowed(&r.group)),
        Request::ResetOffsets(r) => Some(Cow::Borrowed(&r.group)),
        Request::CreateQueue(r) => queue(&r.topic, &r.queue),
        Request::DeleteQueue(r) => queue(&r.topic, &r.queue),
        Request::DescribeQueue(r) => queue(&r.topic, &r.queue),
        Request::PeekQueue(r) => queue(&r.topic, &r.queue),
        Request::PurgeQueue(r) => queue(&r.topic, &r.queue),
        Request::QueueSubscribe(r) => queue(&r.topic, &r.queue),
        Request::Ack(r) => queue(&r.topic, &r.queue),
        Request::Nack(r) => queue(&r.topic, &r.queue),
        Request::InProgress(r) => queue(&r.topic, &r.queue),
        Request::BrokerStatus(_)
        | Request::ListUsers(_)
        | Request::ListTokens(_)
        | Request::ListAcls(_)
        | Request::ListQuotas(_)
        | Request::CreateUser(_)
        | Request::DeleteUser(_)
        | Request::CreateToken(_)
        | Request::RevokeToken(_)
        | Request::CreateAcl(_)
        | Request::DeleteAcl(_)
        | Request::SetQuota(_)
        | Request::DeleteQuota(_)
        | Request::ChangePassword(_) => Some(Cow::Borrowed(CLUSTER_RESOURCE)),
        Request::Handshake(_)
        | Request::SaslAuthenticate(_)
        | Request::WhoAmI(_)
        | Request::ListTopics(_)
        | Request::ListGroups(_)
        | Request::ListQueues(_) => None,
    }
}

/// Requests a quota never delays: those that keep a session or a delivery
/// alive, or authenticate (a throttled group member keeps its partitions,
/// a throttled queue consumer its deliveries).
pub fn never_throttled(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::Handshake
            | ApiKey::SaslAuthenticate
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::Ack
            | ApiKey::Nack
            | ApiKey::InProgress
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ferry_protocol::frame::FrameHeader;

    /// Every request API has a row, and each `On` row can name its resource.
    #[test]
    fn every_api_has_a_row_and_a_resource() {
        for key in ApiKey::ALL {
            let row = need(key);
            if key.row().push {
                assert_eq!(row, Need::NotARequest, "{}", key.name());
                continue;
            }
            assert_ne!(row, Need::NotARequest, "{} is a request", key.name());
            let header = FrameHeader::request(key as u16, 1, 1);
            let request = Request::decode(&header, Bytes::new()).expect("empty body decodes");
            let named = resource_name(&request).is_some();
            let wants_name = matches!(row, Need::On(..) | Need::ClusterOrSelf(_));
            assert_eq!(named, wants_name, "{}", key.name());
        }
    }

    #[test]
    fn cluster_rows_name_the_cluster_and_queues_their_topic() {
        let status = Request::BrokerStatus(Default::default());
        assert_eq!(resource_name(&status).as_deref(), Some(CLUSTER_RESOURCE));
        let ack = Request::Ack(ferry_protocol::messages::AckRequest {
            topic: "orders".into(),
            queue: "billing".into(),
            ..Default::default()
        });
        assert_eq!(resource_name(&ack).as_deref(), Some("orders/billing"));
        assert!(never_throttled(ApiKey::Heartbeat));
        assert!(!never_throttled(ApiKey::Produce));
    }
}
