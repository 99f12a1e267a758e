//! Seeded power losses over the whole broker, driven through the request
//! handlers. Partition segments, topic metadata, group offsets and queue
//! ack state all live on one simulated disk (`SimFs`), which loses power
//! while everything is open (a prefix of the journal, a random subset of
//! unsynced writes, torn writes). Produces (`acks=durable` and `written`),
//! offset commits and queue acks, and the topic and queue creations, are
//! requests on an in-process connection: framed as on the network and
//! served by `connection::serve_halves` (read loop, `cmd::dispatch`, write
//! loop, pushed queue deliveries), so a handler that answers before its
//! fsync is caught, not just a storage layer that lies.
//!
//! Fsyncs run only when the test says so (`Flusher::manual`). After each
//! request the broker's tasks run (a current-thread runtime) with no fsync
//! until a cheap request sent behind it has come back (frames are
//! dispatched in arrival order, so by then an answer that waits for nothing
//! has been written too); only if the answer is still missing are the
//! queued fsyncs run, then the tasks again, and so on. An answer given
//! before its fsync therefore arrives with its data unsynced. A later group
//! commit would cover it, so each life ends, with a power loss, after a
//! random sequence of operations: often right after such an answer.
//! Mutations this catches (`docs/reliability.md`): produce answering every
//! ack level at once, and OffsetCommit or queue Ack answering before their
//! durable future.
//!
//! - `fsync=always`: nothing acknowledged is lost: records, offset commits,
//!   queue acks, created topics and queues.
//! - the same with fsync EIO injected: a failed fsync fails its waiters, and
//!   what was acknowledged before it is still there after the power loss.
//! - `fsync=1` (interval): records answered `written` are lost only inside
//!   the documented window: one appended at least 1 ms before a flusher tick
//!   survives; `acks=durable` on that topic is answered after its fsync.
//! - in every mode, no record a default consumer was given (a Fetch with
//!   the default isolation, a queue's pushed delivery) is lost or replaced
//!   by another at its offset: consumers read only durable data. Mutation
//!   caught: reads bounded by the written end instead of the durable end.
//!
//! CI runs 1,000 seeds per mode; `FERRY_POWER_LOSS_SEEDS=100000` is the long
//! mode. A failure names its seed; `FERRY_POWER_LOSS_SEED=N` replays it (up
//! to the order in which the broker's tasks happen to interleave).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use ferry_broker::connection::serve_halves;
use ferry_broker::{Broker, Config};
use ferry_protocol::batch::{BatchBuilder, BatchIter, NewRecord, RecordIter};
use ferry_protocol::frame::{
    encode_frame, split_frame, Frame, FrameHeader, DEFAULT_MAX_FRAME_BYTES, FLAG_ERROR, FLAG_PUSH,
};
use ferry_protocol::messages::{
    AckRequest, Acks, CreateQueueRequest, CreateTopicRequest, DeliverBatch, ErrorResponse,
    FetchRequest, HandshakeRequest, HeartbeatRequest, JoinGroupRequest, ListTopicsRequest,
    OffsetCommitEntry, OffsetCommitRequest, ProduceRequest, QueueSubscribeRequest, TopicConfig,
    WireMessage,
};
use ferry_protocol::{Api, ApiKey};
use ferry_storage::vfs::{SimFs, SimOptions};
use ferry_storage::{now_ms, Flusher, LogConfig};
use futures::FutureExt;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

const ROUNDS: u64 = 3;
const INTERVAL_MS: u64 = 1;
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes the in-memory pipe holds each way (pushes never wait for room).
const PIPE_BYTES: usize = 1 << 20;
/// Scheduler passes a probe may take before the connection counts as stuck.
const PROBE_YIELDS: usize = 10_000;
/// Extra passes after the probe's answer, for good measure.
const QUIET_YIELDS: usize = 4;
/// Operations (produce, commit, queue ack, interval tick) per broker life.
const OPS_PER_LIFE: std::ops::RangeInclusive<usize> = 2..=6;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Always,
    AlwaysWithEio,
    Interval,
}

/// What the broker answered, and so must survive.
#[derive(Default)]
struct Acked {
    records: BTreeMap<(u32, u64), Vec<u8>>,
    commit: Option<u64>,
    /// Commits issued after the acknowledged one: any may have survived.
    later_commits: Vec<u64>,
    queue: Vec<(u32, u64)>,
    /// Records a default consumer was given (fetched or pushed by the
    /// queue), by (partition, offset): none may be lost or replaced.
    given: BTreeMap<(u32, u64), Vec<u8>>,
}

impl Acked {
    /// Notes a record a consumer was given; an offset given twice (a
    /// re-read, a redelivery) must hold the same record.
    fn give(&mut self, at: (u32, u64), value: Vec<u8>, context: &str) {
        if let Some(before) = self.given.insert(at, value.clone()) {
            assert_eq!(
                before, value,
                "{context}: {}/{} was given as two different records",
                at.0, at.1
            );
        }
    }
}

/// A record answered `written` on the interval topic: partition, offset,
/// value and when the answer came (after the append).
type Written = (u32, u64, Vec<u8>, u64);

fn batch(value: &[u8]) -> Bytes {
    let mut builder = BatchBuilder::new();
    builder.push(&NewRecord {
        timestamp_ms: 1,
        value: Some(Bytes::copy_from_slice(value)),
        ..NewRecord::default()
    });
    builder.finish()
}

/// The broker's settings.
fn config() -> Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let args = ["ferry-broker", "--data-dir", "/data"];
            Config::try_parse_from(args).expect("test config parses")
        })
        .clone()
}

/// Topic defaults far below the operator minimums: lives roll segments,
/// and the simulated disk does not copy megabytes of preallocated index.
fn log_defaults() -> LogConfig {
    LogConfig {
        segment_bytes: 8192,
        index_max_bytes: 4096,
        ..config().log_defaults()
    }
}

/// A response body, or the error the broker answered with.
fn decode<M: WireMessage>(frame: Frame) -> Result<M, String> {
    if frame.header.has(FLAG_ERROR) {
        let error = ErrorResponse::decode(frame.body).map_err(|e| e.to_string())?;
        return Err(error.error_message);
    }
    let message = M::decode(frame.body).map_err(|e| e.to_string())?;
    match message.status() {
        Some((code, text)) if code != 0 => Err(format!("error {code}: {text}")),
        _ => Ok(message),
    }
}

/// The client end of an in-process connection to the broker.
struct Client {
    broker: Arc<Broker>,
    reader: ReadHalf<DuplexStream>,
    writer: WriteHalf<DuplexStream>,
    buffer: BytesMut,
    next_id: u32,
    answers: BTreeMap<u32, Frame>,
    /// Pushed deliveries not acked yet: (delivery id, partition, offset).
    deliveries: Vec<(u64, u32, u64)>,
    /// Every record pushed since last taken: (partition, offset), value.
    pushed: Vec<((u32, u64), Vec<u8>)>,
    /// "seed N round R", for failure messages.
    context: String,
}

impl Client {
    /// Serves a new connection on the current runtime, over a pipe.
    fn connect(broker: &Arc<Broker>, context: String) -> Client {
        let (near, far) = tokio::io::duplex(PIPE_BYTES);
        let (far_reader, far_writer) = tokio::io::split(far);
        let peer = SocketAddr::from(([127, 0, 0, 1], 7171));
        tokio::spawn(serve_halves(
            broker.clone(),
            far_reader,
            far_writer,
            peer,
            None,
        ));
        let (reader, writer) = tokio::io::split(near);
        Client {
            broker: broker.clone(),
            reader,
            writer,
            buffer: BytesMut::new(),
            next_id: 0,
            answers: BTreeMap::new(),
            deliveries: Vec::new(),
            pushed: Vec::new(),
            context,
        }
    }

    /// Writes one request frame; returns its correlation id.
    async fn send<R: Api>(&mut self, request: &R) -> u32 {
        self.next_id += 1;
        let header = FrameHeader::request(R::KEY as u16, 1, self.next_id);
        let frame = encode_frame(header, request, None);
        let written = async {
            self.writer.write_all(&frame.head).await?;
            self.writer.write_all(&frame.tail).await
        };
        if let Err(error) = written.await {
            panic!("{}: cannot send {}: {error}", self.context, R::KEY.name());
        }
        self.next_id
    }

    /// Takes in whatever the broker has written so far, without waiting.
    fn drain(&mut self) {
        while let Some(read) = self.reader.read_buf(&mut self.buffer).now_or_never() {
            match read {
                Ok(0) => panic!("{}: the broker closed the connection", self.context),
                Ok(_) => {}
                Err(error) => panic!("{}: read failed: {error}", self.context),
            }
        }
        while let Some(frame) = split_frame(&mut self.buffer, DEFAULT_MAX_FRAME_BYTES)
            .unwrap_or_else(|e| panic!("{}: bad frame from the broker: {e}", self.context))
        {
            if !frame.header.has(FLAG_PUSH) {
                self.answers.insert(frame.header.correlation_id, frame);
                continue;
            }
            assert_eq!(frame.header.api_key, ApiKey::Deliver as u16);
            let pushed = DeliverBatch::decode(frame.body).expect("a Deliver frame decodes");
            self.deliveries.extend(
                pushed
                    .deliveries
                    .iter()
                    .map(|d| (d.delivery_id, d.partition, d.offset)),
            );
            self.pushed.extend(pushed.deliveries.into_iter().map(|d| {
                let value = d.value.map(|v| v.to_vec()).unwrap_or_default();
                ((d.partition, d.offset), value)
            }));
        }
    }

    /// Lets the broker's tasks run, with no fsync, until a request sent now
    /// is answered: whatever was sent before it has been dispatched, and an
    /// answer that did not wait for anything has been written.
    async fn round_trip(&mut self) {
        let probe = self.send(&ListTopicsRequest {}).await;
        for _ in 0..PROBE_YIELDS {
            tokio::task::yield_now().await;
            self.drain();
            if self.answers.remove(&probe).is_some() {
                for _ in 0..QUIET_YIELDS {
                    tokio::task::yield_now().await;
                }
                self.drain();
                return;
            }
        }
        panic!("{}: the connection stopped answering", self.context);
    }

    async fn call<R: Api>(&mut self, request: &R) -> Result<R::Response, String> {
        let id = self.send(request).await;
        self.answer::<R>(id).await
    }

    /// Waits for the answer to request `id`, running the queued fsyncs only
    /// while it is missing (and ticking for interval logs).
    async fn answer<R: Api>(&mut self, id: u32) -> Result<R::Response, String> {
        let started = Instant::now();
        loop {
            self.round_trip().await;
            if let Some(frame) = self.answers.remove(&id) {
                return decode(frame);
            }
            let flusher = self.broker.topics.flusher();
            if flusher.run_pending() == 0 {
                flusher.tick_now();
                if flusher.run_pending() == 0 {
                    // The interval's clock, or admin work on the blocking pool.
                    std::thread::yield_now();
                }
            }
            assert!(
                started.elapsed() < SETTLE_TIMEOUT,
                "{}: no answer to {} within {SETTLE_TIMEOUT:?}",
                self.context,
                R::KEY.name()
            );
        }
    }
}

/// One broker life's test state.
struct Round<'a> {
    mode: Mode,
    rng: &'a mut StdRng,
    acked: &'a mut Acked,
    written: Vec<Written>,
    /// The group member (id, epoch) that owns partition 0 of `t`.
    member: (String, u64),
    values: u32,
    context: String,
}

impl Round<'_> {
    /// An answer, which must be a success unless fsyncs fail on purpose.
    fn checked<T>(&self, what: &str, answer: Result<T, String>) -> Result<T, String> {
        if let Err(error) = &answer {
            assert!(
                self.mode == Mode::AlwaysWithEio,
                "{}: {what} failed: {error}",
                self.context
            );
        }
        answer
    }

    fn must<T>(&self, what: &str, answer: Result<T, String>) -> T {
        answer.unwrap_or_else(|error| panic!("{}: {what} failed: {error}", self.context))
    }
}

/// Topic `t` (2 partitions; `fsync=1` in interval mode) and queue `q`.
async fn create(client: &mut Client, round: &Round<'_>) {
    let topic = CreateTopicRequest {
        name: "t".into(),
        config: Some(TopicConfig {
            partitions: 2,
            fsync: (round.mode == Mode::Interval).then(|| INTERVAL_MS.to_string()),
            ..TopicConfig::default()
        }),
    };
    round.must("create topic", client.call(&topic).await);
    let queue = CreateQueueRequest {
        topic: "t".into(),
        queue: "q".into(),
        max_deliveries: 100,
        start: "earliest".into(),
        ..CreateQueueRequest::default()
    };
    round.must("create queue", client.call(&queue).await);
}

/// Joins group `g` and heartbeats until the member owns partition 0 of `t`.
async fn join(client: &mut Client, round: &Round<'_>) -> (String, u64) {
    let request = JoinGroupRequest {
        group: "g".into(),
        client_id: "power-loss".into(),
        topics: vec!["t".into()],
        ..JoinGroupRequest::default()
    };
    let mut answer = round.must("join group", client.call(&request).await);
    for _ in 0..100 {
        if answer
            .assignment
            .iter()
            .any(|tp| tp.topic == "t" && tp.partition == 0)
        {
            return (answer.member_id, answer.member_epoch);
        }
        let heartbeat = HeartbeatRequest {
            group: "g".into(),
            member_id: answer.member_id.clone(),
            member_epoch: answer.member_epoch,
            owned: answer.assignment.clone(),
        };
        answer = round.must("heartbeat", client.call(&heartbeat).await);
    }
    panic!("{}: partition t/0 never assigned", round.context);
}

/// Connects, handshakes, creates (first life) or restarts the queue
/// drivers, joins the group and subscribes to the queue.
async fn start(broker: &Arc<Broker>, round: &mut Round<'_>, first: bool) -> Client {
    // The CreateQueue handler starts the driver of a new queue.
    for (topic, name) in broker.queues.list() {
        if let Ok(queue) = broker.queues.get(&topic, &name) {
            tokio::spawn(ferry_broker::queues::drive(broker.queue_handles(), queue));
        }
    }
    let mut client = Client::connect(broker, round.context.clone());
    let hello = HandshakeRequest {
        client_id: "power-loss".into(),
        min_version: 1,
        max_version: 1,
    };
    round.must("handshake", client.call(&hello).await);
    if first {
        create(&mut client, round).await;
    }
    round.member = join(&mut client, round).await;
    let subscribe = QueueSubscribeRequest {
        topic: "t".into(),
        queue: "q".into(),
        prefetch: 1000,
        subscription_id: 0,
    };
    round.must("queue subscribe", client.call(&subscribe).await);
    client
}

/// Produces a few records, one request each. `acks=durable` answers must
/// survive; `written` ones (interval mode) only outside the window.
async fn produce(client: &mut Client, round: &mut Round<'_>) {
    for _ in 0..round.rng.gen_range(1..8) {
        let partition = round.rng.gen_range(0..2u32);
        round.values += 1;
        let value = format!("{}v{}", round.context, round.values).into_bytes();
        let durable = match round.mode {
            Mode::Interval => round.rng.gen_bool(0.3),
            _ => round.rng.gen_bool(0.7),
        };
        let acks = if durable {
            Acks::Durable
        } else {
            Acks::Written
        };
        let request = ProduceRequest {
            topic: "t".into(),
            partition,
            acks: acks as u32,
            records: batch(&value),
        };
        let answer = client.call(&request).await;
        let Ok(answer) = round.checked("produce", answer) else {
            continue; // read-only after an injected EIO: an error, not an ack
        };
        let at = (partition, answer.base_offset);
        if durable {
            round.acked.records.insert(at, value);
        } else if round.mode == Mode::Interval {
            round.written.push((at.0, at.1, value, now_ms()));
        }
    }
}

/// Commits the end of partition 0 as the group member; some commits are
/// left in flight, unanswered, when the power fails.
async fn commit(client: &mut Client, round: &mut Round<'_>) {
    let end = client.broker.topics.partition("t", 0).unwrap().end_offset();
    let request = OffsetCommitRequest {
        group: "g".into(),
        member_id: round.member.0.clone(),
        member_epoch: round.member.1,
        offsets: vec![OffsetCommitEntry {
            topic: "t".into(),
            partition: 0,
            offset: end,
            metadata: String::new(),
        }],
    };
    if round.rng.gen_bool(0.3) {
        client.send(&request).await;
        round.acked.later_commits.push(end);
        return;
    }
    let answer = client.call(&request).await;
    match round.checked("offset commit", answer) {
        Ok(_) => {
            round.acked.commit = Some(end);
            round.acked.later_commits.clear();
        }
        Err(_) => round.acked.later_commits.push(end),
    }
}

/// Acks about half of the deliveries pushed so far; some acks are left in
/// flight when the power fails.
async fn ack(client: &mut Client, round: &mut Round<'_>) {
    client.round_trip().await;
    let pushed = std::mem::take(&mut client.deliveries);
    let (chosen, kept): (Vec<_>, Vec<_>) =
        pushed.into_iter().partition(|_| round.rng.gen_bool(0.5));
    client.deliveries = kept;
    if chosen.is_empty() {
        return;
    }
    let request = AckRequest {
        topic: "t".into(),
        queue: "q".into(),
        delivery_ids: chosen.iter().map(|(id, _, _)| *id).collect(),
    };
    if round.rng.gen_bool(0.3) {
        client.send(&request).await;
        return;
    }
    let answer = client.call(&request).await;
    if round.checked("queue ack", answer).is_ok() {
        let settled = chosen.iter().map(|(_, p, o)| (*p, *o));
        round.acked.queue.extend(settled);
    }
}

/// Reads both partitions from the start as a default consumer would (no
/// wait): whatever comes back must survive every power loss.
async fn fetch(client: &mut Client, round: &mut Round<'_>) {
    for partition in 0..2u32 {
        let request = FetchRequest {
            topic: "t".into(),
            partition,
            max_bytes: 1 << 20,
            ..FetchRequest::default()
        };
        let answer = round.must("fetch", client.call(&request).await);
        let records = BatchIter::new(answer.records, 1 << 26)
            .flatten()
            .flat_map(|(header, body)| RecordIter::new(body, header).flatten());
        for record in records {
            let value = record.value.map(|v| v.to_vec()).unwrap_or_default();
            round
                .acked
                .give((partition, record.offset), value, &round.context);
        }
    }
}

/// Takes the queue deliveries pushed so far as given records.
fn take_pushed(client: &mut Client, round: &mut Round<'_>) {
    for (at, value) in std::mem::take(&mut client.pushed) {
        round.acked.give(at, value, &round.context);
    }
}

/// Interval mode: a flusher tick. A record answered `written` at least one
/// interval before it is fsynced by it. Half the ticks wait out the
/// interval (the clock, not a sleep), so every record so far is promised.
fn tick(flusher: &Flusher, round: &mut Round<'_>) {
    let last = round.written.last().map(|w| w.3);
    if let Some(last_ms) = last.filter(|_| round.rng.gen_bool(0.5)) {
        while now_ms() < last_ms + INTERVAL_MS {
            std::thread::yield_now();
        }
    }
    let tick_ms = now_ms();
    flusher.tick_now();
    flusher.run_pending();
    let acked = &mut round.acked.records;
    round.written.retain(|(p, o, value, written_ms)| {
        let promised = written_ms + INTERVAL_MS <= tick_ms;
        if promised {
            acked.insert((*p, *o), value.clone());
        }
        !promised
    });
}

/// One broker life up to the power loss: set up, then a random sequence
/// of operations; whatever was answered last may still be unsynced.
async fn live(broker: &Arc<Broker>, fs: &SimFs, round: &mut Round<'_>, first: bool) {
    let mut client = start(broker, round, first).await;
    if round.mode == Mode::AlwaysWithEio {
        fs.set_options(SimOptions {
            sync_failure_probability: 0.03,
            ..SimOptions::default()
        });
    }
    let kinds = if round.mode == Mode::Interval { 5 } else { 4 };
    for _ in 0..round.rng.gen_range(OPS_PER_LIFE) {
        match round.rng.gen_range(0..kinds) {
            0 => produce(&mut client, round).await,
            1 => commit(&mut client, round).await,
            2 => ack(&mut client, round).await,
            3 => fetch(&mut client, round).await,
            _ => tick(broker.topics.flusher(), round),
        }
        take_pushed(&mut client, round);
    }
}

fn read_value(broker: &Broker, partition: u32, offset: u64) -> Option<Bytes> {
    let log = broker.topics.partition("t", partition).ok()?;
    let read = log.read(offset, 1).ok()?;
    BatchIter::new(read.data, 1 << 26)
        .flatten()
        .flat_map(|(header, body)| RecordIter::new(body, header).flatten())
        .find(|record| record.offset == offset)
        .and_then(|record| record.value)
}

/// Everything acknowledged before the power loss is still there, and every
/// record a consumer was given still holds its offset.
fn verify(broker: &Broker, acked: &mut Acked, context: &str) {
    assert!(
        broker.topics.get("t").is_ok(),
        "{context}: acked topic lost"
    );
    for ((p, o), value) in &acked.records {
        let found = read_value(broker, *p, *o);
        assert_eq!(
            found.as_deref(),
            Some(&value[..]),
            "{context}: acked record {p}/{o} lost"
        );
    }
    for ((p, o), value) in &acked.given {
        let found = read_value(broker, *p, *o);
        assert_eq!(
            found.as_deref(),
            Some(&value[..]),
            "{context}: record {p}/{o} a consumer was given is lost or replaced"
        );
    }
    // The group's offset is the acknowledged commit or a later one (a later
    // commit may be lower: unacknowledged records can vanish in a power loss,
    // and the committing consumer commits the end it saw).
    let now = broker.offsets.get("g", "t", 0).map(|c| c.offset);
    if let Some(commit) = acked.commit {
        let later = now.is_some_and(|now| acked.later_commits.contains(&now));
        assert!(
            now == Some(commit) || later,
            "{context}: acked commit {commit} lost (found {now:?}, later attempts {:?})",
            acked.later_commits
        );
    }
    // What survived a power loss is durable: it is the bar from now on.
    if now.is_some() {
        acked.commit = now;
        acked.later_commits.clear();
    }
    let queue = broker
        .queues
        .get("t", "q")
        .unwrap_or_else(|_| panic!("{context}: acked queue lost"));
    let state = queue.state.lock();
    for (p, o) in &acked.queue {
        assert!(
            state.settled[*p as usize].contains(*o),
            "{context}: acked queue message {p}/{o} would come again"
        );
    }
}

/// What one seed checked, for the summary line.
#[derive(Default)]
struct Tally {
    records: usize,
    given: usize,
    queue_acks: usize,
    commits: usize,
    failed_fsyncs: u64,
}

fn run_seed(seed: u64, mode: Mode) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fs = SimFs::new(seed);
    let mut acked = Acked::default();
    let mut failed_fsyncs = 0;
    for life in 0..=ROUNDS {
        let context = format!("seed {seed} round {life}");
        // Fsyncs run only when the test says so: power can fail with some queued.
        let vfs = Arc::new(fs.clone());
        let broker = Broker::open_on(config(), log_defaults(), vfs, Flusher::manual())
            .unwrap_or_else(|e| panic!("{context}: the broker failed to reopen: {e}"));
        if life > 0 {
            verify(&broker, &mut acked, &context);
        }
        if life == ROUNDS {
            break;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut round = Round {
            mode,
            rng: &mut rng,
            acked: &mut acked,
            written: Vec::new(),
            member: (String::new(), 0),
            values: 0,
            context,
        };
        runtime.block_on(live(&broker, &fs, &mut round, life == 0));
        failed_fsyncs += fs.failed_syncs();
        // Power fails while everything is open: no clean close syncs anything.
        let crashed = fs.power_loss(seed.wrapping_mul(7919).wrapping_add(life));
        runtime.shutdown_background();
        drop(broker);
        fs = crashed;
    }
    Tally {
        records: acked.records.len(),
        given: acked.given.len(),
        queue_acks: acked.queue.len(),
        commits: usize::from(acked.commit.is_some()),
        failed_fsyncs,
    }
}

fn run(mode: Mode) {
    if let Some(seed) = std::env::var("FERRY_POWER_LOSS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run_seed(seed, mode);
        return;
    }
    let seeds: u64 = std::env::var("FERRY_POWER_LOSS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut total = Tally::default();
    for seed in 0..seeds {
        let tally = run_seed(seed, mode);
        total.records += tally.records;
        total.given += tally.given;
        total.queue_acks += tally.queue_acks;
        total.commits += tally.commits;
        total.failed_fsyncs += tally.failed_fsyncs;
    }
    eprintln!(
        "{mode:?}: {seeds} seeds x {ROUNDS} power losses: {} acknowledged records, {} records \
         given to consumers, {} queue acks, {} commits verified after the last one, {} injected \
         fsync failures, 0 lost",
        total.records, total.given, total.queue_acks, total.commits, total.failed_fsyncs
    );
}

#[test]
fn power_loss_with_fsync_always_loses_nothing_acknowledged() {
    run(Mode::Always);
}

#[test]
fn power_loss_after_fsync_eio_loses_nothing_acknowledged() {
    run(Mode::AlwaysWithEio);
}

#[test]
fn power_loss_in_interval_mode_loses_only_the_window() {
    run(Mode::Interval);
}
