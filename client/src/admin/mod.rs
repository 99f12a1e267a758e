//! The typed admin API of [`Client`]: topics, offsets, groups, queues,
//! broker status, and security (who am I, users, access tokens, ACLs,
//! quotas). Arguments are typed configs and answers typed descriptions
//! (`types.rs`); `convert.rs` maps them to and from the wire.

mod convert;
mod types;

use std::time::Duration;

use ferry_protocol::messages::{
    BrokerStatusRequest, ChangePasswordRequest, CreateAclRequest, CreateTokenRequest,
    CreateTopicRequest, CreateUserRequest, DeleteAclRequest, DeleteGroupRequest,
    DeleteQueueRequest, DeleteQuotaRequest, DeleteTopicRequest, DeleteUserRequest,
    DescribeGroupRequest, DescribeQueueRequest, DescribeTopicRequest, InitProducerIdRequest,
    LeaveGroupRequest, ListAclsRequest, ListGroupsRequest, ListOffsetsRequest, ListQueuesRequest,
    ListQuotasRequest, ListTokensRequest, ListTopicsRequest, ListUsersRequest, OffsetFetchRequest,
    PeekQueueRequest, PurgeQueueRequest, ResetOffsetsRequest, RevokeTokenRequest, ScramCredentials,
    SetQuotaRequest, WhoAmIRequest,
};
use ferry_protocol::scram::{StoredCredentials, ITERATIONS_MIN};
use ferry_protocol::ErrorCode;

pub use self::types::{
    AclOperation, AclPermission, AclRule, AuthMethod, BrokerStatus, CommittedOffset, FsyncPolicy,
    GroupDescription, GroupInfo, GroupPartitionInfo, GroupState, MemberInfo, NewToken,
    ParseChoiceError, PartitionInfo, PatternType, ProducerIdentity, QueueConfig, QueueConsumerInfo,
    QueueDescription, QueueId, QuotaSpec, ResourceType, StartFrom, TokenInfo, TopicConfig,
    TopicDescription, TopicInfo, UserInfo, WhoAmI,
};
use crate::auth::off_runtime;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::seek::SeekTo;

/// PBKDF2 iterations of the credentials [`Client::create_user`] and
/// [`Client::change_password`] compute: SCRAM's minimum for SHA-256.
pub const USER_ITERATIONS: u32 = ITERATIONS_MIN;

impl Client {
    /// Creates a topic with `partitions` and the broker's defaults.
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        let config = TopicConfig {
            partitions,
            ..TopicConfig::default()
        };
        self.create_topic_with(name, &config).await
    }

    /// Creates a topic unless one of that name exists (whatever its
    /// settings): `true` if this call created it. For programs that run
    /// more than once.
    pub async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<bool> {
        let config = TopicConfig {
            partitions,
            ..TopicConfig::default()
        };
        self.ensure_topic_with(name, &config).await
    }

    /// [`Client::ensure_topic`] with the topic's own settings (an existing
    /// topic keeps its own).
    pub async fn ensure_topic_with(&self, name: &str, config: &TopicConfig) -> Result<bool> {
        already_exists(
            self.create_topic_with(name, config).await,
            ErrorCode::TopicAlreadyExists,
        )
    }

    /// Creates a topic with its own settings.
    ///
    /// ```no_run
    /// # async fn demo(client: ferry_client::Client) -> Result<(), ferry_client::ClientError> {
    /// use ferry_client::{FsyncPolicy, TopicConfig};
    /// let config = TopicConfig { partitions: 3, fsync: Some(FsyncPolicy::Never), ..TopicConfig::default() };
    /// client.create_topic_with("metrics", &config).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_topic_with(&self, name: &str, config: &TopicConfig) -> Result<()> {
        let request = CreateTopicRequest {
            name: name.to_string(),
            config: Some(convert::topic_config_to_wire(config)),
        };
        self.call(&request).await.map(drop)
    }

    /// Deletes a topic, its data, its queues and its groups' offsets.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let request = DeleteTopicRequest {
            name: name.to_string(),
        };
        self.call(&request).await.map(drop)
    }

    /// Every topic with its partition count.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let topics = self.call(&ListTopicsRequest {}).await?.topics;
        Ok(topics.into_iter().map(convert::topic_info).collect())
    }

    /// A topic's settings and its partitions' offsets and sizes.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let request = DescribeTopicRequest {
            name: name.to_string(),
        };
        convert::topic_description(self.call(&request).await?)
    }

    /// Number of partitions of a topic.
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        Ok(self.describe_topic(topic).await?.partitions.len() as u32)
    }

    /// Resolves `seek` to an offset of `topic`/`partition`.
    pub async fn resolve_offset(&self, topic: &str, partition: u32, seek: SeekTo) -> Result<u64> {
        if let SeekTo::Offset(offset) = seek {
            return Ok(offset);
        }
        let (spec, timestamp_ms, _) = convert::offset_spec(seek);
        let request = ListOffsetsRequest {
            topic: topic.to_string(),
            partition,
            spec: spec as u32,
            timestamp_ms,
        };
        Ok(self.call(&request).await?.offset)
    }

    /// Removes a member from a group at once (its partitions move).
    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        let request = LeaveGroupRequest {
            group: group.to_string(),
            member_id: member_id.to_string(),
        };
        self.call(&request).await.map(drop)
    }

    /// Committed offsets of `group` for (topic, partition) pairs (all of
    /// them if `partitions` is empty).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: &[(String, u32)],
    ) -> Result<Vec<CommittedOffset>> {
        let request = OffsetFetchRequest {
            group: group.to_string(),
            partitions: convert::topic_partitions(partitions),
        };
        let offsets = self.call(&request).await?.offsets;
        Ok(offsets.into_iter().map(convert::committed_offset).collect())
    }

    /// A group's members, assignment, committed offsets and lag.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let request = DescribeGroupRequest {
            group: group.to_string(),
        };
        convert::group_description(self.call(&request).await?)
    }

    /// Every group with live members or committed offsets.
    pub async fn list_groups(&self) -> Result<Vec<GroupInfo>> {
        let groups = self.call(&ListGroupsRequest {}).await?.groups;
        groups.into_iter().map(convert::group_info).collect()
    }

    /// Deletes a group and its offsets (refused while it has live members).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let request = DeleteGroupRequest {
            group: group.to_string(),
        };
        self.call(&request).await.map(drop)
    }

    /// Moves a group's committed offsets for every partition of `topic`
    /// (refused while the group has live members); answers the new ones.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: SeekTo,
    ) -> Result<Vec<CommittedOffset>> {
        self.reset_offsets_with(group, topic, ResetTarget::To(to), false)
            .await
    }

    /// [`Client::reset_offsets`] to a [`ResetTarget`]; with `dry_run`, the
    /// broker answers the offsets it would set and sets nothing (allowed
    /// while the group has live members).
    pub async fn reset_offsets_with(
        &self,
        group: &str,
        topic: &str,
        target: ResetTarget,
        dry_run: bool,
    ) -> Result<Vec<CommittedOffset>> {
        let (to, shift_by) = match target {
            ResetTarget::To(to) => (to, None),
            ResetTarget::ShiftBy(shift) => (SeekTo::Earliest, Some(shift)),
        };
        let (spec, timestamp_ms, offset) = convert::offset_spec(to);
        let request = ResetOffsetsRequest {
            group: group.to_string(),
            topic: topic.to_string(),
            spec: spec as u32,
            timestamp_ms,
            offset,
            shift_by,
            dry_run,
        };
        let offsets = self.call(&request).await?.offsets;
        Ok(offsets.into_iter().map(convert::committed_offset).collect())
    }

    /// Creates a queue on `topic`.
    pub async fn create_queue(&self, topic: &str, queue: &str, config: &QueueConfig) -> Result<()> {
        let request = convert::create_queue_request(topic, queue, config);
        self.call(&request).await.map(drop)
    }

    /// Creates a queue unless one of that name exists on `topic`: `true` if
    /// this call created it.
    pub async fn ensure_queue(
        &self,
        topic: &str,
        queue: &str,
        config: &QueueConfig,
    ) -> Result<bool> {
        already_exists(
            self.create_queue(topic, queue, config).await,
            ErrorCode::QueueAlreadyExists,
        )
    }

    /// Deletes a queue and its ack state.
    pub async fn delete_queue(&self, topic: &str, queue: &str) -> Result<()> {
        let request = DeleteQueueRequest {
            topic: topic.to_string(),
            queue: queue.to_string(),
        };
        self.call(&request).await.map(drop)
    }

    /// Every queue.
    pub async fn list_queues(&self) -> Result<Vec<QueueId>> {
        let queues = self.call(&ListQueuesRequest {}).await?.queues;
        Ok(queues.into_iter().map(convert::queue_id).collect())
    }

    /// A queue's counts, consumers and settings.
    pub async fn describe_queue(&self, topic: &str, queue: &str) -> Result<QueueDescription> {
        let request = DescribeQueueRequest {
            topic: topic.to_string(),
            queue: queue.to_string(),
        };
        Ok(convert::queue_description(self.call(&request).await?))
    }

    /// Drops every ready message of a queue (those in flight stay: an
    /// unacked one comes back as usual); answers how many were dropped,
    /// once that is durable.
    pub async fn purge_queue(&self, topic: &str, queue: &str) -> Result<u64> {
        let request = PurgeQueueRequest {
            topic: topic.to_string(),
            queue: queue.to_string(),
        };
        Ok(self.call(&request).await?.purged)
    }

    /// Up to `max_messages` ready messages of a queue, in the order they
    /// would be delivered, without delivering or changing anything (the
    /// broker caps a peek at 1000 messages and 4 MiB).
    pub async fn peek_queue(
        &self,
        topic: &str,
        queue: &str,
        max_messages: u32,
    ) -> Result<Vec<PeekedMessage>> {
        let request = PeekQueueRequest {
            topic: topic.to_string(),
            queue: queue.to_string(),
            max_messages,
        };
        let messages = self.call(&request).await?.messages;
        Ok(messages
            .into_iter()
            .map(|d| PeekedMessage {
                deliveries: d.delivery_count,
                record: crate::record::ConsumerRecord {
                    topic: topic.to_string(),
                    partition: d.partition,
                    offset: d.offset,
                    timestamp_ms: d.timestamp_ms,
                    key: d.key,
                    value: d.value,
                    headers: crate::queue::record_headers(d.headers),
                },
            })
            .collect())
    }

    /// An idempotent producer's identity for writing `topic`: a new
    /// producer id at epoch 0, or, given `current`, the same id at the next
    /// epoch (the broker then fences batches of older epochs).
    pub async fn init_producer_id(
        &self,
        topic: &str,
        current: Option<ProducerIdentity>,
    ) -> Result<ProducerIdentity> {
        let request = InitProducerIdRequest {
            topic: topic.to_string(),
            producer_id: current.map_or(0, |c| c.producer_id),
            producer_epoch: current.map_or(0, |c| i32::from(c.epoch)),
        };
        let answer = self.call(&request).await?;
        let epoch =
            i16::try_from(answer.producer_epoch).map_err(|_| ClientError::UnexpectedAnswer {
                field: "producer epoch",
                value: answer.producer_epoch.to_string(),
            })?;
        Ok(ProducerIdentity {
            producer_id: answer.producer_id,
            epoch,
        })
    }

    /// The broker's version, uptime, data directory and counts.
    pub async fn broker_status(&self) -> Result<BrokerStatus> {
        let status = self.call(&BrokerStatusRequest {}).await?;
        Ok(convert::broker_status(status))
    }

    /// Who the broker takes this connection to be, and how it proved it.
    pub async fn who_am_i(&self) -> Result<WhoAmI> {
        convert::who_am_i(self.call(&WhoAmIRequest {}).await?)
    }

    /// Creates a SCRAM user. Its credentials (salt, [`USER_ITERATIONS`]
    /// iterations, StoredKey, ServerKey) are computed here: the password
    /// never reaches the broker.
    pub async fn create_user(&self, name: &str, password: &str) -> Result<()> {
        let request = CreateUserRequest {
            name: name.to_string(),
            credentials: Some(stored_credentials(password).await?),
        };
        self.call(&request).await.map(drop)
    }

    /// Deletes a user, its tokens and its ACL entries; its connections are
    /// closed.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let request = DeleteUserRequest {
            name: name.to_string(),
        };
        self.call(&request).await.map(drop)
    }

    /// Replaces a user's password (computed into credentials here, like
    /// [`Client::create_user`]); its open connections stay.
    pub async fn change_password(&self, name: &str, password: &str) -> Result<()> {
        let request = ChangePasswordRequest {
            name: name.to_string(),
            credentials: Some(stored_credentials(password).await?),
        };
        self.call(&request).await.map(drop)
    }

    /// Every SCRAM user.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        let users = self.call(&ListUsersRequest {}).await?.users;
        Ok(users.into_iter().map(convert::user_info).collect())
    }

    /// Makes an access token for `user`, valid for `expires_in` (`None` =
    /// until revoked). The answer is the only place its secret appears.
    pub async fn create_token(&self, user: &str, expires_in: Option<Duration>) -> Result<NewToken> {
        let request = CreateTokenRequest {
            user: user.to_string(),
            expires_in_ms: convert::expires_in_ms(expires_in),
        };
        Ok(convert::new_token(self.call(&request).await?))
    }

    /// Revokes a token by id; connections that authenticated with it close.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        let request = RevokeTokenRequest { id: id.to_string() };
        self.call(&request).await.map(drop)
    }

    /// The live tokens of `user` (`None` = of every user), without secrets.
    pub async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        let request = ListTokensRequest {
            user: user.unwrap_or_default().to_string(),
        };
        let tokens = self.call(&request).await?.tokens;
        Ok(tokens.into_iter().map(convert::token_info).collect())
    }

    /// Adds an ACL entry (adding one that exists changes nothing).
    pub async fn create_acl(&self, rule: &AclRule) -> Result<()> {
        let request = CreateAclRequest {
            acl: Some(convert::acl_to_wire(rule)),
        };
        self.call(&request).await.map(drop)
    }

    /// Removes the ACL entry equal to `rule`.
    pub async fn delete_acl(&self, rule: &AclRule) -> Result<()> {
        let request = DeleteAclRequest {
            acl: Some(convert::acl_to_wire(rule)),
        };
        self.call(&request).await.map(drop)
    }

    /// Every ACL entry.
    pub async fn list_acls(&self) -> Result<Vec<AclRule>> {
        let acls = self.call(&ListAclsRequest {}).await?.acls;
        acls.into_iter().map(convert::acl_rule).collect()
    }

    /// Sets (replaces) a principal's quota.
    pub async fn set_quota(&self, quota: &QuotaSpec) -> Result<()> {
        let request = SetQuotaRequest {
            quota: Some(convert::quota_to_wire(quota)),
        };
        self.call(&request).await.map(drop)
    }

    /// Removes a principal's quota (its rates become unlimited).
    pub async fn delete_quota(&self, principal: &str) -> Result<()> {
        let request = DeleteQuotaRequest {
            principal: principal.to_string(),
        };
        self.call(&request).await.map(drop)
    }

    /// Every quota.
    pub async fn list_quotas(&self) -> Result<Vec<QuotaSpec>> {
        let quotas = self.call(&ListQuotasRequest {}).await?.quotas;
        Ok(quotas.into_iter().map(convert::quota_spec).collect())
    }
}

/// What the broker stores for a user with `password` (a fresh salt,
/// [`USER_ITERATIONS`]), derived off the runtime's threads.
async fn stored_credentials(password: &str) -> Result<ScramCredentials> {
    if password.is_empty() {
        return Err(ClientError::InvalidCredentials {
            reason: "the password is empty".into(),
        });
    }
    let password = password.as_bytes().to_vec();
    let stored = off_runtime(move || StoredCredentials::generate(&password, USER_ITERATIONS))
        .await?
        .map_err(|e| ClientError::InvalidCredentials {
            reason: e.to_string(),
        })?;
    Ok(convert::scram_credentials(&stored))
}

/// A ready message of a queue, seen by [`Client::peek_queue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekedMessage {
    /// The record, as a consumer of the topic would read it.
    pub record: crate::record::ConsumerRecord,
    /// Deliveries so far (0: never delivered).
    pub deliveries: u32,
}

/// Where [`Client::reset_offsets_with`] moves each partition of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// The same place in every partition.
    To(SeekTo),
    /// This many records from each partition's committed offset (its
    /// start if it has none), kept within the partition: negative to
    /// read again, positive to skip.
    ShiftBy(i64),
}

/// `Ok(true)` for created, `Ok(false)` for the `exists` error.
fn already_exists(created: Result<()>, exists: ErrorCode) -> Result<bool> {
    match created {
        Ok(()) => Ok(true),
        Err(error) if error.code() == Some(exists) => Ok(false),
        Err(error) => Err(error),
    }
}
