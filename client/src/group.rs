//! [`GroupConsumer`]: a member of a consumer group. It joins, heartbeats in
//! the background, and on each poll reconciles with the assignment the
//! broker sent: partitions taken away are committed and dropped (and the
//! broker told at once), partitions granted start at the group's committed
//! offset (or `earliest`/`latest`). Offsets are auto-committed every
//! `auto_commit_interval_ms` by default, or with [`GroupConsumer::commit`].
//!
//! Delivery is at-least-once: the offsets committed are those of records
//! already handed to the application *before* the current poll, so a record
//! is committed only after the application asked for more.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, OffsetCommitEntry, OffsetCommitRequest, TopicPartition,
};
use ferry_protocol::ErrorCode;
use futures::future::BoxFuture;
use futures::Stream;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::client::Client;
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{ClientError, Result};
use crate::record::ConsumerRecord;
use crate::seek::SeekTo;

type Tp = (String, u32);
/// A poll in progress: it owns the member state until it finishes.
type PollFuture = BoxFuture<'static, (Box<Inner>, Result<Vec<ConsumerRecord>>)>;

/// How the broker spreads a group's partitions over its members. The group
/// keeps the assignor of its first member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Assignor {
    /// Balanced, moving as few partitions as possible when members change.
    #[default]
    Sticky,
    /// Contiguous ranges of each topic's partitions per member.
    Range,
    /// Partitions dealt out one by one.
    RoundRobin,
}

impl Assignor {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Sticky => "sticky",
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }
}

impl std::str::FromStr for Assignor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sticky" => Ok(Assignor::Sticky),
            "range" => Ok(Assignor::Range),
            "roundrobin" | "round-robin" => Ok(Assignor::RoundRobin),
            _ => Err(format!(
                "assignor must be sticky, range or roundrobin, not {s:?}"
            )),
        }
    }
}

/// A group member's settings.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The group to join.
    pub group: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Removed from the group after this long without a heartbeat.
    pub session_timeout_ms: u32,
    /// How partitions are spread over members.
    pub assignor: Assignor,
    /// Where partitions without a committed offset start: Earliest or Latest.
    pub offset_reset: SeekTo,
    /// Commit automatically this often; `None` = only on `commit()`.
    pub auto_commit_interval_ms: Option<u64>,
    /// Fetch settings of the member's partitions.
    pub consumer: ConsumerConfig,
}

impl GroupConfig {
    /// Settings for joining `group` to consume `topics`, with defaults.
    ///
    /// ```
    /// use ferry_client::GroupConfig;
    /// let config = GroupConfig::new("billing", &["orders"]);
    /// assert_eq!(config.session_timeout_ms, 10_000);
    /// assert_eq!(config.auto_commit_interval_ms, Some(5_000));
    /// ```
    pub fn new(group: &str, topics: &[&str]) -> GroupConfig {
        GroupConfig {
            group: group.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            session_timeout_ms: 10_000,
            assignor: Assignor::Sticky,
            offset_reset: SeekTo::Earliest,
            auto_commit_interval_ms: Some(5_000),
            consumer: ConsumerConfig::default(),
        }
    }
}

/// What the heartbeat task and the consumer share.
struct Membership {
    member_id: String,
    epoch: u64,
    /// The assignment the broker last sent.
    target: BTreeSet<Tp>,
    /// What the consumer is consuming now (reported in heartbeats).
    owned: BTreeSet<Tp>,
    error: Option<ClientError>,
}

struct Shared {
    membership: Mutex<Membership>,
    /// Wakes the consumer when the assignment changes.
    assignment_changed: Notify,
    /// Wakes the heartbeat task to report a release at once.
    report_now: Notify,
}

struct Inner {
    client: Client,
    config: GroupConfig,
    shared: Arc<Shared>,
    consumers: BTreeMap<String, Consumer>,
    last_commit: Instant,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// A consumer-group member; read it as a `futures::Stream` of records.
///
/// ```no_run
/// # async fn demo() -> Result<(), ferry_client::ClientError> {
/// use futures::StreamExt;
/// use ferry_client::{Client, GroupConfig, GroupConsumer};
/// let client = Client::connect("127.0.0.1:7171").await?;
/// let mut consumer = GroupConsumer::join(&client, GroupConfig::new("billing", &["orders"])).await?;
/// while let Some(record) = consumer.next().await {
///     let record = record?;
///     println!("{}/{}@{}", record.topic, record.partition, record.offset);
/// }
/// # Ok(()) }
/// ```
pub struct GroupConsumer {
    inner: Option<Box<Inner>>,
    pending: Option<PollFuture>,
    buffer: VecDeque<ConsumerRecord>,
}

impl GroupConsumer {
    /// Joins the group and starts heartbeating in the background.
    pub async fn join(client: &Client, config: GroupConfig) -> Result<GroupConsumer> {
        if config.topics.is_empty() {
            return Err(ClientError::InvalidArgument(
                "subscribe to at least one topic".into(),
            ));
        }
        let answer = client.call(&join_request(&config, "")).await?;
        let shared = Arc::new(Shared {
            membership: Mutex::new(Membership {
                member_id: answer.member_id.clone(),
                epoch: answer.member_epoch,
                target: to_set(&answer.assignment),
                owned: BTreeSet::new(),
                error: None,
            }),
            assignment_changed: Notify::new(),
            report_now: Notify::new(),
        });
        let interval = Duration::from_millis(u64::from(answer.heartbeat_interval_ms.max(10)));
        let heartbeat = tokio::spawn(heartbeat_loop(
            client.clone(),
            config.clone(),
            shared.clone(),
            interval,
        ));
        let mut consumers = BTreeMap::new();
        for topic in &config.topics {
            let consumer = Consumer::with_config(client, topic, config.consumer.clone()).await?;
            consumers.insert(topic.clone(), consumer);
        }
        Ok(GroupConsumer {
            inner: Some(Box::new(Inner {
                client: client.clone(),
                config,
                shared,
                consumers,
                last_commit: Instant::now(),
                heartbeat,
            })),
            pending: None,
            buffer: VecDeque::new(),
        })
    }

    /// Finishes a poll that was interrupted, so the member state is here.
    async fn inner(&mut self) -> Result<&mut Inner> {
        if let Some(pending) = self.pending.take() {
            let (inner, result) = pending.await;
            self.inner = Some(inner);
            self.buffer.extend(result?);
        }
        self.inner
            .as_deref_mut()
            .ok_or_else(|| ClientError::InvalidArgument("the group consumer was closed".into()))
    }

    /// Waits for the next records (or about `max_wait_ms` for none).
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        if !self.buffer.is_empty() {
            return Ok(self.buffer.drain(..).collect());
        }
        self.inner().await?.poll_batch().await
    }

    /// Commits the position of every owned partition (records handed out so far).
    pub async fn commit(&mut self) -> Result<()> {
        let inner = self.inner().await?;
        let owned = inner.shared.membership.lock().owned.clone();
        inner.commit(&owned).await
    }

    /// Moves an owned partition to `offset` (e.g. back to the first record
    /// the application did not process, before committing).
    pub async fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<()> {
        self.buffer
            .retain(|r| !(r.topic == topic && r.partition == partition));
        let inner = self.inner().await?;
        if !inner
            .shared
            .membership
            .lock()
            .owned
            .contains(&(topic.to_string(), partition))
        {
            return Err(ClientError::InvalidArgument(format!(
                "{topic}/{partition} is not assigned to this member"
            )));
        }
        match inner.consumers.get_mut(topic) {
            Some(consumer) => consumer.seek(partition, SeekTo::Offset(offset)).await,
            None => Err(ClientError::InvalidArgument(format!(
                "not subscribed to {topic}"
            ))),
        }
    }

    /// The id the broker gave this member.
    pub fn member_id(&self) -> Option<String> {
        self.inner
            .as_ref()
            .map(|i| i.shared.membership.lock().member_id.clone())
    }

    /// Partitions this member is consuming now.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.inner
            .as_ref()
            .map(|i| i.shared.membership.lock().owned.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Commits, leaves the group (its partitions move at once) and stops.
    pub async fn close(mut self) -> Result<()> {
        let mut inner = match self.inner().await {
            Ok(_) => self.inner.take(),
            Err(e) => return Err(e),
        }
        .ok_or_else(|| ClientError::InvalidArgument("already closed".into()))?;
        let owned = inner.shared.membership.lock().owned.clone();
        let committed = inner.commit(&owned).await;
        inner.heartbeat.abort();
        let member_id = inner.shared.membership.lock().member_id.clone();
        let left = inner
            .client
            .leave_group(&inner.config.group, &member_id)
            .await;
        inner.consumers.clear();
        committed.and(left)
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.heartbeat.abort();
            // Leave politely if a runtime is around; the session would expire anyway.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let member_id = inner.shared.membership.lock().member_id.clone();
                let (client, group) = (inner.client.clone(), inner.config.group.clone());
                handle.spawn(async move {
                    let _ = client.leave_group(&group, &member_id).await;
                });
            }
        }
    }
}

impl Stream for GroupConsumer {
    type Item = Result<ConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(record) = this.buffer.pop_front() {
                return Poll::Ready(Some(Ok(record)));
            }
            if this.pending.is_none() {
                let Some(mut inner) = this.inner.take() else {
                    return Poll::Ready(None);
                };
                this.pending = Some(Box::pin(async move {
                    let result = inner.poll_batch().await;
                    (inner, result)
                }));
            }
            let Some(pending) = this.pending.as_mut() else {
                return Poll::Ready(None);
            };
            match pending.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready((inner, result)) => {
                    this.pending = None;
                    this.inner = Some(inner);
                    match result {
                        Ok(records) => this.buffer.extend(records),
                        Err(error) => return Poll::Ready(Some(Err(error))),
                    }
                }
            }
        }
    }
}

impl Inner {
    async fn poll_batch(&mut self) -> Result<Vec<ConsumerRecord>> {
        if let Some(error) = self.shared.membership.lock().error.take() {
            return Err(error);
        }
        // Everything handed out before this call counts as processed.
        if let Some(interval) = self.config.auto_commit_interval_ms {
            if self.last_commit.elapsed() >= Duration::from_millis(interval) {
                let owned = self.shared.membership.lock().owned.clone();
                self.commit(&owned).await?;
            }
        }
        self.reconcile().await?;
        let max_wait = Duration::from_millis(u64::from(self.config.consumer.max_wait_ms));
        if self.consumers.values().all(|c| c.assignment().is_empty()) {
            // Nothing to read until the broker grants something.
            let _ = tokio::time::timeout(max_wait, self.shared.assignment_changed.notified()).await;
            return Ok(Vec::new());
        }
        let shared = self.shared.clone();
        let polls = self
            .consumers
            .values_mut()
            .filter(|c| !c.assignment().is_empty())
            .map(|c| Box::pin(c.poll()))
            .collect::<Vec<_>>();
        tokio::select! {
            (result, _, _) = futures::future::select_all(polls) => result,
            _ = shared.assignment_changed.notified() => Ok(Vec::new()),
        }
    }

    /// Applies the broker's latest assignment: release what was taken away
    /// (after committing it), then start what was granted.
    async fn reconcile(&mut self) -> Result<()> {
        let (target, owned) = {
            let membership = self.shared.membership.lock();
            (membership.target.clone(), membership.owned.clone())
        };
        let revoked: BTreeSet<Tp> = owned.difference(&target).cloned().collect();
        if !revoked.is_empty() {
            if self.config.auto_commit_interval_ms.is_some() {
                // Best effort: if the broker already fenced us, the next owner
                // re-reads from the last commit (at-least-once).
                let _ = self.commit(&revoked).await;
            }
            for (topic, partition) in &revoked {
                if let Some(consumer) = self.consumers.get_mut(topic) {
                    consumer.unassign(*partition);
                }
            }
            self.shared
                .membership
                .lock()
                .owned
                .retain(|tp| !revoked.contains(tp));
            self.shared.report_now.notify_one();
        }
        let added: Vec<Tp> = target.difference(&owned).cloned().collect();
        if added.is_empty() {
            return Ok(());
        }
        let committed = self
            .client
            .fetch_offsets(&self.config.group, &added)
            .await?;
        for entry in committed {
            let Some(consumer) = self.consumers.get_mut(&entry.topic) else {
                continue;
            };
            let start = entry
                .offset
                .map_or(self.config.offset_reset, SeekTo::Offset);
            match consumer.seek(entry.partition, start).await {
                Ok(()) => {}
                // The committed offset fell off the log (retention): reset.
                Err(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                    consumer
                        .seek(entry.partition, self.config.offset_reset)
                        .await?
                }
                Err(e) => return Err(e),
            }
        }
        self.shared.membership.lock().owned.extend(added);
        self.shared.report_now.notify_one();
        Ok(())
    }

    async fn commit(&mut self, partitions: &BTreeSet<Tp>) -> Result<()> {
        self.last_commit = Instant::now();
        let offsets: Vec<OffsetCommitEntry> = partitions
            .iter()
            .filter_map(|(topic, partition)| {
                let position = self.consumers.get(topic)?.position(*partition)?;
                Some(OffsetCommitEntry {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: position,
                    metadata: String::new(),
                })
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, member_epoch) = {
            let membership = self.shared.membership.lock();
            (membership.member_id.clone(), membership.epoch)
        };
        self.client
            .call(&OffsetCommitRequest {
                group: self.config.group.clone(),
                member_id,
                member_epoch,
                offsets,
            })
            .await
            .map(drop)
    }
}

fn join_request(config: &GroupConfig, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest {
        group: config.group.clone(),
        member_id: member_id.to_string(),
        client_id: "ferry-client".into(),
        topics: config.topics.clone(),
        assignor: config.assignor.name().to_string(),
        session_timeout_ms: config.session_timeout_ms,
        offset_reset: match config.offset_reset {
            SeekTo::Latest => "latest".into(),
            _ => "earliest".into(),
        },
    }
}

fn to_set(assignment: &[TopicPartition]) -> BTreeSet<Tp> {
    assignment
        .iter()
        .map(|tp| (tp.topic.clone(), tp.partition))
        .collect()
}

/// Heartbeats every `interval` (or at once when the consumer released
/// partitions); rejoins if the broker forgot or fenced this member.
async fn heartbeat_loop(
    client: Client,
    config: GroupConfig,
    shared: Arc<Shared>,
    interval: Duration,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.report_now.notified() => {}
        }
        let (member_id, owned) = {
            let membership = shared.membership.lock();
            (membership.member_id.clone(), membership.owned.clone())
        };
        let request = HeartbeatRequest {
            group: config.group.clone(),
            member_id: member_id.clone(),
            member_epoch: shared.membership.lock().epoch,
            owned: owned
                .iter()
                .map(|(topic, partition)| TopicPartition {
                    topic: topic.clone(),
                    partition: *partition,
                })
                .collect(),
        };
        let answer = match client.call(&request).await {
            Ok(answer) => answer,
            Err(e)
                if matches!(
                    e.code(),
                    Some(ErrorCode::UnknownMember | ErrorCode::FencedMember)
                ) =>
            {
                tracing::info!(group = %config.group, member = %member_id, "rejoining the group");
                match client.call(&join_request(&config, &member_id)).await {
                    Ok(answer) => answer,
                    Err(e) => {
                        shared.membership.lock().error = Some(e);
                        shared.assignment_changed.notify_one();
                        continue;
                    }
                }
            }
            Err(e) if e.is_connection_error() => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(e) => {
                shared.membership.lock().error = Some(e);
                shared.assignment_changed.notify_one();
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let target = to_set(&answer.assignment);
        let changed = {
            let mut membership = shared.membership.lock();
            membership.member_id = answer.member_id;
            membership.epoch = answer.member_epoch;
            let changed = membership.target != target;
            membership.target = target;
            changed
        };
        if changed {
            shared.assignment_changed.notify_one();
        }
    }
}
