//! The broker's shared state, handed to every connection: configuration,
//! the topic registry, metrics and the shutdown signal.

use std::sync::Arc;

use ferry_storage::vfs::OsFs;
use ferry_storage::Flusher;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::Result;
use crate::groups::offsets::OffsetStore;
use crate::groups::{GroupConfig, GroupCoordinator};
use crate::metrics::Metrics;
use crate::queues::Queues;
use crate::topics::Topics;

pub struct Broker {
    pub config: Config,
    pub topics: Topics,
    pub groups: GroupCoordinator,
    pub offsets: OffsetStore,
    pub queues: Queues,
    pub metrics: Metrics,
    /// Cancelled when the broker starts shutting down.
    pub shutdown: CancellationToken,
}

impl Broker {
    /// Opens the data directory (recovering every partition) — blocking.
    pub fn open(config: Config) -> Result<Arc<Broker>> {
        let flusher = Flusher::start(config.fsync_threads);
        let vfs = Arc::new(OsFs::new());
        let offsets = OffsetStore::open_with(
            vfs.clone(),
            &config.data_dir,
            &flusher,
            config.state_snapshot_bytes,
        )?;
        let topics = Topics::open(
            vfs.clone(),
            &config.data_dir,
            config.log_defaults(),
            flusher,
        )?;
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
            topics,
            groups,
            offsets,
            queues,
            metrics: Metrics::default(),
            shutdown: CancellationToken::new(),
        }))
    }
}
