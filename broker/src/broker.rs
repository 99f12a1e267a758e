//! The broker's shared state, handed to every connection: configuration,
//! the topic registry, metrics and the shutdown signal.

use std::sync::Arc;

use ferry_storage::vfs::{OsFs, Vfs};
use ferry_storage::{Flusher, LogConfig};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::Result;
use crate::groups::offsets::OffsetStore;
use crate::groups::{GroupConfig, GroupCoordinator};
use crate::lock::DataDirLock;
use crate::metrics::Metrics;
use crate::producer_ids::ProducerIds;
use crate::queues::driver::Handles;
use crate::queues::Queues;
use crate::security::Security;
use crate::topics::Topics;

pub struct Broker {
    pub config: Config,
    pub topics: Arc<Topics>,
    pub groups: GroupCoordinator,
    pub offsets: OffsetStore,
    pub queues: Arc<Queues>,
    /// Users, tokens, ACLs, quotas; who may do what.
    pub security: Security,
    /// Idempotent producers' ids (`InitProducerId`).
    pub producer_ids: ProducerIds,
    pub metrics: Metrics,
    /// The exclusive lock on the data directory, held until the broker drops
    /// (`None` for a broker on a simulated disk, see [`Broker::open_on`]).
    pub lock: Option<DataDirLock>,
    /// When this broker was opened (for uptime).
    pub started_at: std::time::Instant,
    /// Cancelled when the broker starts shutting down.
    pub shutdown: CancellationToken,
}

impl Broker {
    /// Opens the data directory (recovering every partition) — blocking.
    pub fn open(config: Config) -> Result<Arc<Broker>> {
        // Before anything is read: a live broker's files are never "recovered".
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let flusher = Flusher::start(config.fsync_threads);
        let log_defaults = config.log_defaults();
        let vfs = Arc::new(OsFs::new());
        Broker::assemble(config, log_defaults, vfs, flusher, Some(lock))
    }

    /// Opens everything on `vfs` with `flusher` and without the data-dir
    /// lock (which is taken on the real filesystem): for tests that run the
    /// whole broker on a simulated disk, fsyncs run by a manual flusher.
    /// `log_defaults` replaces `config.log_defaults()` for topics (a
    /// simulated disk wants small segments and indexes).
    pub fn open_on(
        config: Config,
        log_defaults: LogConfig,
        vfs: Arc<dyn Vfs>,
        flusher: Flusher,
    ) -> Result<Arc<Broker>> {
        Broker::assemble(config, log_defaults, vfs, flusher, None)
    }

    fn assemble(
        config: Config,
        log_defaults: LogConfig,
        vfs: Arc<dyn Vfs>,
        flusher: Flusher,
        lock: Option<DataDirLock>,
    ) -> Result<Arc<Broker>> {
        // Before anything is read or written: data of another format is
        // refused, never misread.
        crate::data_format::check_or_mark(&*vfs, &config.data_dir)?;
        let offsets = OffsetStore::open_with(
            vfs.clone(),
            &config.data_dir,
            &flusher,
            config.state_snapshot_bytes,
        )?;
        let topics = Topics::open(vfs.clone(), &config.data_dir, log_defaults, flusher)?;
        let security = Security::open(vfs.clone(), &config.data_dir, &config)?;
        let producer_ids = ProducerIds::open(vfs.clone(), &config.data_dir)?;
        let queues = Queues::open_with(
            vfs,
            &config.data_dir,
            topics.flusher(),
            &topics,
            config.state_snapshot_bytes,
        )?;
        let groups = GroupCoordinator::new(GroupConfig {
            default_session_timeout_ms: config.group_session_timeout_ms,
            empty_group_retention_ms: config.group_retention_ms,
        });
        Ok(Arc::new(Broker {
            config,
            topics: Arc::new(topics),
            groups,
            offsets,
            queues: Arc::new(queues),
            security,
            producer_ids,
            metrics: Metrics::default(),
            lock,
            started_at: std::time::Instant::now(),
            shutdown: CancellationToken::new(),
        }))
    }

    /// What a queue driver may touch.
    pub fn queue_handles(&self) -> Handles {
        Handles {
            topics: self.topics.clone(),
            queues: self.queues.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}
