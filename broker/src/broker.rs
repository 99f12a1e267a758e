//! The broker's shared state, handed to every connection: configuration,
//! the topic registry, metrics and the shutdown signal.

use std::sync::Arc;

use ferry_storage::vfs::OsFs;
use ferry_storage::Flusher;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::topics::Topics;

pub struct Broker {
    pub config: Config,
    pub topics: Topics,
    pub metrics: Metrics,
    /// Cancelled when the broker starts shutting down.
    pub shutdown: CancellationToken,
}

impl Broker {
    /// Opens the data directory (recovering every partition) — blocking.
    pub fn open(config: Config) -> Result<Arc<Broker>> {
        let flusher = Flusher::start(config.fsync_threads);
        let topics = Topics::open(
            Arc::new(OsFs::new()),
            &config.data_dir,
            config.log_defaults(),
            flusher,
        )?;
        Ok(Arc::new(Broker {
            config,
            topics,
            metrics: Metrics::default(),
            shutdown: CancellationToken::new(),
        }))
    }
}
