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
//!
//! Across a broker restart the member re-joins as soon as the client has
//! reconnected (offering its member id; the broker may give it a new one);
//! partitions it still owns go on
//! from its own position, partitions granted anew start at the committed
//! offset. Records handed out but not committed may come again; none is
//! skipped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_protocol::messages::{
    GroupAssignmentResponse, HeartbeatRequest, JoinGroupRequest, OffsetCommitEntry,
    OffsetCommitRequest, TopicPartition,
};
use ferry_protocol::ErrorCode;
use futures::future::BoxFuture;
use futures::Stream;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::client::Client;
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{ClientError, Result};
use crate::reconnect::ConnectionState;
use crate::record::ConsumerRecord;
use crate::seek::{OffsetReset, SeekTo};

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
    /// Where partitions without a committed offset start.
    pub offset_reset: OffsetReset,
    /// Commit automatically this often; `None` = only on `commit()`.
    pub auto_commit_interval_ms: Option<u64>,
    /// Fetch settings of the member's partitions.
    pub consumer: ConsumerConfig,
}

impl GroupConfig {
    /// Settings for joining `group` to consume `topics`, with defaults.
    ///
    /// ```
    /// use ferry_client::{GroupConfig, OffsetReset};
    /// let mut config = GroupConfig::new("billing", &["orders"]);
    /// assert_eq!(config.session_timeout_ms, 10_000);
    /// assert_eq!(config.offset_reset, OffsetReset::Earliest);
    /// config.offset_reset = OffsetReset::Latest; // only new records
    /// assert_eq!(config.auto_commit_interval_ms, Some(5_000));
    /// ```
    pub fn new(group: &str, topics: &[&str]) -> GroupConfig {
        GroupConfig {
            group: group.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            session_timeout_ms: 10_000,
            assignor: Assignor::Sticky,
            offset_reset: OffsetReset::Earliest,
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
    /// Held while re-joining: one join per lost membership, not one per
    /// caller that noticed (each would get a member id of its own).
    rejoining: tokio::sync::Mutex<()>,
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
            return Err(ClientError::NoTopics);
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
            rejoining: tokio::sync::Mutex::new(()),
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
        self.inner.as_deref_mut().ok_or(ClientError::Closed {
            what: "group consumer",
        })
    }

    /// Waits for the next records (or about `max_wait_ms` for none).
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        if !self.buffer.is_empty() {
            return Ok(self.buffer.drain(..).collect());
        }
        self.inner().await?.poll_batch().await
    }

    /// Commits the position of every owned partition (records handed out
    /// so far). If the broker forgot this member (it restarted), the member
    /// re-joins first.
    pub async fn commit(&mut self) -> Result<()> {
        let inner = self.inner().await?;
        let owned = inner.shared.membership.lock().owned.clone();
        inner.commit_or_rejoin(&owned).await
    }

    /// Moves an owned partition to `offset` (e.g. back to the first record
    /// the application did not process, before committing).
    pub async fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<()> {
        self.buffer
            .retain(|r| !(r.topic == topic && r.partition == partition));
        let inner = self.inner().await?;
        let owned = inner.shared.membership.lock().owned.clone();
        let consumer = inner
            .consumers
            .get_mut(topic)
            .filter(|_| owned.contains(&(topic.to_string(), partition)));
        match consumer {
            Some(consumer) => consumer.seek(partition, SeekTo::Offset(offset)).await,
            None => Err(ClientError::NotAssigned {
                topic: topic.to_string(),
                partition,
            }),
        }
    }

    /// The id the broker gave this member.
    pub fn member_id(&self) -> Option<String> {
        self.inner
            .as_ref()
            .map(|i| i.shared.membership.lock().member_id.clone())
    }

    /// The offset of the next record [`GroupConsumer::poll`] returns for an
    /// owned partition (`None` if not owned or not positioned yet).
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        let buffered = self
            .buffer
            .iter()
            .find(|r| r.topic == topic && r.partition == partition);
        match buffered {
            Some(record) => Some(record.offset),
            None => self
                .inner
                .as_ref()?
                .consumers
                .get(topic)?
                .position(partition),
        }
    }

    /// Whether this member holds every partition the broker assigned it
    /// (no hand-over in progress). A member assigned nothing is settled.
    pub fn assignment_settled(&self) -> bool {
        self.inner.as_ref().is_some_and(|inner| {
            let membership = inner.shared.membership.lock();
            membership.owned == membership.target
        })
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
        .ok_or(ClientError::Closed {
            what: "group consumer",
        })?;
        let owned = inner.shared.membership.lock().owned.clone();
        let committed = inner.commit_or_rejoin(&owned).await;
        inner.heartbeat.abort();
        let member_id = inner.shared.membership.lock().member_id.clone();
        let left = match inner
            .client
            .leave_group(&inner.config.group, &member_id)
            .await
        {
            // Already out (a broker restart forgot it): that is leaving.
            Err(e) if is_membership_lost(&e) => Ok(()),
            other => other,
        };
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
                // Bounded: with the broker away the client would keep trying.
                let session = Duration::from_millis(u64::from(inner.config.session_timeout_ms));
                handle.spawn(async move {
                    let leave = client.leave_group(&group, &member_id);
                    let _ = tokio::time::timeout(session, leave).await;
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
                match self.commit(&owned).await {
                    // The broker forgot or fenced this member (it restarted,
                    // or the session expired): the heartbeat re-joins, and
                    // the next owner starts at the last commit.
                    Err(e) if is_membership_lost(&e) => {
                        tracing::info!(group = %self.config.group, error = %e, "commit refused; re-joining")
                    }
                    other => other?,
                }
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
            let reset = SeekTo::from(self.config.offset_reset);
            let start = entry.offset.map_or(reset, SeekTo::Offset);
            match consumer.seek(entry.partition, start).await {
                Ok(()) => {}
                // The committed offset fell off the log (retention): reset.
                Err(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                    consumer.seek(entry.partition, reset).await?
                }
                Err(e) => return Err(e),
            }
        }
        self.shared.membership.lock().owned.extend(added);
        self.shared.report_now.notify_one();
        Ok(())
    }

    /// Commits; if the broker forgot or fenced this member (e.g. it
    /// restarted), re-joins (offering the same member id) and commits again.
    async fn commit_or_rejoin(&mut self, partitions: &BTreeSet<Tp>) -> Result<()> {
        let member_id = self.shared.membership.lock().member_id.clone();
        match self.commit(partitions).await {
            Err(e) if is_membership_lost(&e) => {
                tracing::info!(group = %self.config.group, error = %e, "commit refused");
                rejoin(&self.client, &self.config, &self.shared, &member_id).await?;
                self.commit(partitions).await
            }
            other => other,
        }
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
        offset_reset: config.offset_reset.name().to_string(),
    }
}

/// The broker no longer counts this member in (it restarted, or the
/// session expired): join again.
fn is_membership_lost(error: &ClientError) -> bool {
    matches!(
        error.code(),
        Some(ErrorCode::UnknownMember | ErrorCode::FencedMember)
    )
}

fn to_set(assignment: &[TopicPartition]) -> BTreeSet<Tp> {
    assignment
        .iter()
        .map(|tp| (tp.topic.clone(), tp.partition))
        .collect()
}

/// Heartbeats every `interval` (or at once when the consumer released
/// partitions, or the client reconnected); re-joins if the broker forgot
/// or fenced this member, e.g. after a restart. A lost connection is
/// re-made by the client; only giving up (or a refusal) reaches the
/// consumer, as an error of its next poll.
async fn heartbeat_loop(
    client: Client,
    config: GroupConfig,
    shared: Arc<Shared>,
    interval: Duration,
) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(50);
    let mut backoff = FIRST_BACKOFF;
    let mut connection = client.connection_state();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.report_now.notified() => {}
            // Back after a broker restart: re-join now, not a beat later.
            _ = reconnected(&mut connection) => {}
        }
        if beat(&client, &config, &shared).await {
            backoff = FIRST_BACKOFF;
        } else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// One heartbeat (or re-join), its answer taken as the membership. A
/// refusal is handed to the consumer's next poll; a lost connection
/// answers `false` (the caller backs off and tries again).
async fn beat(client: &Client, config: &GroupConfig, shared: &Shared) -> bool {
    match heartbeat_or_rejoin(client, config, shared).await {
        Ok(Some(answer)) => apply_answer(shared, answer),
        Ok(None) => {}
        Err(e @ ClientError::Disconnected { .. }) => {
            tracing::debug!(group = %config.group, error = %e, "heartbeat lost; trying again");
            return false;
        }
        Err(e) => {
            shared.membership.lock().error = Some(e);
            shared.assignment_changed.notify_one();
        }
    }
    true
}

/// Takes the broker's answer (to a join or heartbeat) as the membership,
/// waking the consumer if its assignment changed.
fn apply_answer(shared: &Shared, answer: GroupAssignmentResponse) {
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

/// Resolves once the client has made a new connection after losing one
/// (never, if the client is gone).
async fn reconnected(state: &mut watch::Receiver<ConnectionState>) {
    let before = state.borrow_and_update().reconnects();
    while state.changed().await.is_ok() {
        if state.borrow_and_update().reconnects() > before {
            return;
        }
    }
    std::future::pending().await
}

/// One heartbeat and its answer; if the broker no longer knows this
/// member, a re-join instead (which applies its own answer: `None`).
async fn heartbeat_or_rejoin(
    client: &Client,
    config: &GroupConfig,
    shared: &Shared,
) -> Result<Option<GroupAssignmentResponse>> {
    let (member_id, epoch, owned) = {
        let membership = shared.membership.lock();
        let owned = membership.owned.iter();
        let owned = owned.map(|(topic, partition)| TopicPartition {
            topic: topic.clone(),
            partition: *partition,
        });
        (
            membership.member_id.clone(),
            membership.epoch,
            owned.collect(),
        )
    };
    let request = HeartbeatRequest {
        group: config.group.clone(),
        member_id: member_id.clone(),
        member_epoch: epoch,
        owned,
    };
    match client.call(&request).await {
        Err(e) if is_membership_lost(&e) => {
            tracing::info!(group = %config.group, error = %e, "heartbeat refused");
            rejoin(client, config, shared, &member_id)
                .await
                .map(|()| None)
        }
        other => other.map(Some),
    }
}

/// Joins again (offering `lost`, the id the broker refused; it may hand
/// out a new one) and takes the answer as the membership, unless another
/// caller already re-joined in place of `lost`.
async fn rejoin(client: &Client, config: &GroupConfig, shared: &Shared, lost: &str) -> Result<()> {
    let _one_at_a_time = shared.rejoining.lock().await;
    if shared.membership.lock().member_id != lost {
        return Ok(());
    }
    tracing::info!(group = %config.group, member = %lost, "re-joining the group");
    let answer = client.call(&join_request(config, lost)).await?;
    apply_answer(shared, answer);
    Ok(())
}
