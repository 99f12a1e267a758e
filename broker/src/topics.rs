//! The topic registry: which topics exist, their settings and their
//! partition logs. Metadata lives in `<data>/meta/topics.meta` (magic, CRC,
//! JSON), replaced atomically through the storage `Vfs`; partition logs live
//! in `<data>/topics/<topic>/<partition>/`.
//!
//! Crash order: create writes the partition directories, then the metadata;
//! delete writes the metadata, retires the partition logs (no append, roll,
//! fsync or checkpoint touches their files again), renames the topic's
//! directory to a tombstone (`<name>~deleted-<n>`, a name no topic can
//! have) and removes it. Directories not named by the metadata (tombstones
//! included) are leftovers of one of those and are removed at start; a new
//! topic never adopts files that are already there. If the metadata file is corrupt, it is kept aside and rebuilt from
//! the directories (partition counts survive; per-topic settings fall back
//! to the broker defaults) and the broker says so in its log.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_storage::vfs::Vfs;
use ferry_storage::{Flusher, FsyncPolicy, Log, LogConfig};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::domain::TopicName;
use crate::error::{BrokerError, Result};
use crate::metafile::{self, Loaded};

pub const MAX_PARTITIONS_PER_TOPIC: u32 = 4096;
pub const MAX_TOPICS: usize = 10_000;
pub const METADATA_FILE: &str = "topics.meta";
const METADATA_MAGIC: &[u8; 8] = b"FMETA001";

/// A topic's settings as a creator chose them; `None` takes the broker's
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicSettings {
    pub partitions: Option<u32>,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: Option<u64>,
    pub segment_ms: Option<u64>,
    pub fsync: Option<FsyncPolicy>,
}

/// What is persisted per topic (`fsync` as its text form, as before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: TopicName,
    pub partitions: u32,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: Option<u64>,
    pub segment_ms: Option<u64>,
    #[serde(with = "fsync_text")]
    pub fsync: Option<FsyncPolicy>,
    pub created_ms: u64,
}

/// `Option<FsyncPolicy>` stored as `"always"`, `"never"` or `"<ms>"`.
mod fsync_text {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        value: &Option<FsyncPolicy>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        value.map(|p| p.to_string()).serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<FsyncPolicy>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl TopicMeta {
    /// The settings the topic was created with.
    pub fn settings(&self) -> TopicSettings {
        TopicSettings {
            partitions: Some(self.partitions),
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            fsync: self.fsync,
        }
    }

    /// Segment settings stored before the topic minimums existed are raised
    /// to them (for new segments), so an older data dir still opens.
    fn raise_to_segment_minimums(&mut self) {
        let stored = (self.segment_bytes, self.segment_ms);
        let raised =
            ferry_storage::config::raised_to_segment_minimums(self.segment_bytes, self.segment_ms);
        if raised != stored {
            tracing::warn!(topic = %self.name, ?stored, ?raised, "segment_bytes / segment_ms below today's minimums: raised for new segments");
            (self.segment_bytes, self.segment_ms) = raised;
        }
    }

    fn log_config(&self, defaults: &LogConfig) -> Result<LogConfig> {
        let mut config = defaults.clone();
        config.retention_ms = self.retention_ms.or(config.retention_ms);
        config.retention_bytes = self.retention_bytes.or(config.retention_bytes);
        config.segment_bytes = self.segment_bytes.unwrap_or(config.segment_bytes);
        config.segment_ms = self.segment_ms.or(config.segment_ms);
        config.fsync = self.fsync.unwrap_or(config.fsync);
        config.validate().map_err(BrokerError::InvalidTopicConfig)?;
        Ok(config)
    }
}

pub struct Topic {
    pub meta: TopicMeta,
    pub config: LogConfig,
    pub partitions: Vec<Log>,
}

impl Topic {
    pub fn partition(&self, partition: u32) -> Result<&Log> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| BrokerError::UnknownPartition {
                topic: self.meta.name.to_string(),
                partition,
            })
    }
}

pub struct Topics {
    vfs: Arc<dyn Vfs>,
    data_dir: PathBuf,
    defaults: LogConfig,
    flusher: Flusher,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serializes create/delete and metadata writes.
    admin: Mutex<()>,
    /// Fsyncs run by partitions of deleted topics, so the total never drops.
    retired_fsyncs: std::sync::atomic::AtomicU64,
}

impl Topics {
    /// Loads the metadata and opens (recovering) every partition log.
    pub fn open(
        vfs: Arc<dyn Vfs>,
        data_dir: &Path,
        defaults: LogConfig,
        flusher: Flusher,
    ) -> Result<Topics> {
        let topics_dir = data_dir.join("topics");
        let meta_dir = data_dir.join("meta");
        for dir in [&topics_dir, &meta_dir] {
            vfs.create_dir_all(dir)
                .map_err(BrokerError::metadata_io(dir))?;
        }
        let registry = Topics {
            vfs,
            data_dir: data_dir.to_path_buf(),
            defaults,
            flusher,
            topics: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
            retired_fsyncs: std::sync::atomic::AtomicU64::new(0),
        };
        let metas = registry.load_metadata()?;
        registry.remove_leftover_dirs(&metas)?;
        let mut opened = HashMap::new();
        for mut meta in metas.into_values() {
            meta.raise_to_segment_minimums();
            let topic = registry.open_topic(meta)?;
            opened.insert(topic.meta.name.to_string(), Arc::new(topic));
        }
        tracing::info!(topics = opened.len(), "topics opened");
        warn_if_over_fd_budget(&opened);
        *registry.topics.write() = opened;
        Ok(registry)
    }

    fn topic_dir(&self, name: &str) -> PathBuf {
        self.data_dir.join("topics").join(name)
    }

    fn open_topic(&self, meta: TopicMeta) -> Result<Topic> {
        let config = meta.log_config(&self.defaults)?;
        let mut partitions = Vec::with_capacity(meta.partitions as usize);
        for p in 0..meta.partitions {
            let dir = self.topic_dir(&meta.name).join(p.to_string());
            let name = format!("{}-{p}", meta.name);
            partitions.push(Log::open(
                self.vfs.clone(),
                &dir,
                &name,
                config.clone(),
                &self.flusher,
            )?);
        }
        Ok(Topic {
            meta,
            config,
            partitions,
        })
    }

    fn load_metadata(&self) -> Result<BTreeMap<String, TopicMeta>> {
        let path = self.data_dir.join("meta").join(METADATA_FILE);
        let valid = |metas: &[TopicMeta]| {
            metas
                .iter()
                .all(|m| m.partitions <= MAX_PARTITIONS_PER_TOPIC)
        };
        match metafile::read::<Vec<TopicMeta>>(&*self.vfs, &path, METADATA_MAGIC)? {
            Loaded::Missing => Ok(BTreeMap::new()),
            Loaded::Valid(metas) if valid(&metas) => {
                Ok(metas.into_iter().map(|m| (m.name.to_string(), m)).collect())
            }
            Loaded::Valid(_) | Loaded::Corrupt => {
                let aside = path.with_extension("meta.corrupt");
                tracing::error!(
                    path = %path.display(),
                    kept_as = %aside.display(),
                    "topic metadata is corrupt: rebuilding it from the partition directories with default settings"
                );
                let _ = self.vfs.rename(&path, &aside);
                let rebuilt = self.metadata_from_dirs()?;
                self.write_metadata(rebuilt.values())?;
                Ok(rebuilt)
            }
        }
    }

    fn metadata_from_dirs(&self) -> Result<BTreeMap<String, TopicMeta>> {
        let topics_dir = self.data_dir.join("topics");
        let list = |dir: &Path| {
            self.vfs
                .list_dir(dir)
                .map_err(BrokerError::metadata_io(dir))
        };
        let mut metas = BTreeMap::new();
        for name in list(&topics_dir)? {
            let Ok(topic) = TopicName::new(name.as_str()) else {
                continue;
            };
            let partitions = list(&topics_dir.join(&name))?
                .iter()
                .filter_map(|p| p.parse::<u32>().ok())
                .max()
                .map_or(0, |max| max + 1);
            if partitions > 0 {
                metas.insert(
                    name.clone(),
                    TopicMeta {
                        name: topic,
                        partitions,
                        retention_ms: None,
                        retention_bytes: None,
                        segment_bytes: None,
                        segment_ms: None,
                        fsync: None,
                        created_ms: ferry_storage::now_ms(),
                    },
                );
            }
        }
        Ok(metas)
    }

    fn remove_leftover_dirs(&self, metas: &BTreeMap<String, TopicMeta>) -> Result<()> {
        let topics_dir = self.data_dir.join("topics");
        let names = self
            .vfs
            .list_dir(&topics_dir)
            .map_err(BrokerError::metadata_io(&topics_dir))?;
        for name in names {
            if !metas.contains_key(&name) {
                tracing::warn!(dir = %topics_dir.join(&name).display(), "removing a topic directory not in the metadata");
                let _ = self.vfs.remove_dir_all(&topics_dir.join(&name));
            }
        }
        Ok(())
    }

    fn write_metadata<'a>(&self, metas: impl Iterator<Item = &'a TopicMeta>) -> Result<()> {
        let list: Vec<&TopicMeta> = metas.collect();
        metafile::write(
            &*self.vfs,
            &self.data_dir.join("meta"),
            METADATA_FILE,
            METADATA_MAGIC,
            &list,
        )
    }

    pub fn get(&self, name: &str) -> Result<Arc<Topic>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownTopic(name.chars().take(256).collect()))
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Result<Log> {
        self.get(topic)?.partition(partition).cloned()
    }

    /// The fsync pool shared by every log of the broker.
    pub fn flusher(&self) -> &Flusher {
        &self.flusher
    }

    /// Partition count of every topic.
    pub fn partition_counts(&self) -> BTreeMap<String, u32> {
        self.topics
            .read()
            .iter()
            .map(|(name, t)| (name.clone(), t.meta.partitions))
            .collect()
    }

    pub fn list(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = self.topics.read().values().cloned().collect();
        topics.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        topics
    }

    /// Creates a topic (blocking: creates files and fsyncs).
    pub fn create(
        &self,
        name: &TopicName,
        settings: TopicSettings,
        default_partitions: u32,
    ) -> Result<Arc<Topic>> {
        let partitions = match settings.partitions {
            None | Some(0) => default_partitions,
            Some(n) => n,
        };
        if partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err(BrokerError::OverLimit {
                what: "the partition count",
                requested: u64::from(partitions),
                limit: u64::from(MAX_PARTITIONS_PER_TOPIC),
            });
        }
        let _admin = self.admin.lock();
        if self.topics.read().contains_key(name.as_str()) {
            return Err(BrokerError::TopicExists(name.to_string()));
        }
        if self.topics.read().len() >= MAX_TOPICS {
            return Err(BrokerError::Full {
                what: "topics",
                limit: MAX_TOPICS as u64,
            });
        }
        let meta = TopicMeta {
            name: name.clone(),
            partitions,
            retention_ms: settings.retention_ms,
            retention_bytes: settings.retention_bytes,
            segment_bytes: settings.segment_bytes,
            segment_ms: settings.segment_ms,
            fsync: settings.fsync,
            created_ms: ferry_storage::now_ms(),
        };
        meta.log_config(&self.defaults)?;
        ferry_storage::config::check_segment_minimums(meta.segment_bytes, meta.segment_ms)
            .map_err(BrokerError::InvalidTopicConfig)?;
        if let Some(budget) = ferry_storage::fd_budget::budget() {
            let open: u64 = self
                .partition_counts()
                .values()
                .map(|&n| u64::from(n))
                .sum();
            budget
                .check(open, u64::from(partitions))
                .map_err(BrokerError::OpenFilesBudget)?;
        }
        // Leftovers of a topic of the same name are never adopted.
        self.bury(name)?;
        let topic = Arc::new(self.open_topic(meta)?);
        let mut all: Vec<TopicMeta> = self
            .topics
            .read()
            .values()
            .map(|t| t.meta.clone())
            .collect();
        all.push(topic.meta.clone());
        all.sort_by(|a, b| a.name.cmp(&b.name));
        if let Err(e) = self.write_metadata(all.iter()) {
            let _ = self.vfs.remove_dir_all(&self.topic_dir(name));
            return Err(e);
        }
        self.topics.write().insert(name.to_string(), topic.clone());
        tracing::info!(topic = %name, partitions, "topic created");
        Ok(topic)
    }

    /// Deletes a topic and its data (blocking).
    pub fn delete(&self, name: &str) -> Result<()> {
        let _admin = self.admin.lock();
        let mut remaining: Vec<TopicMeta> = {
            let topics = self.topics.read();
            if !topics.contains_key(name) {
                return Err(BrokerError::UnknownTopic(name.chars().take(256).collect()));
            }
            topics
                .values()
                .filter(|t| t.meta.name.as_str() != name)
                .map(|t| t.meta.clone())
                .collect()
        };
        remaining.sort_by(|a, b| a.name.cmp(&b.name));
        self.write_metadata(remaining.iter())?;
        if let Some(topic) = self.topics.write().remove(name) {
            for log in &topic.partitions {
                log.retire();
            }
            let fsyncs: u64 = topic.partitions.iter().map(|log| log.stats().fsyncs).sum();
            self.retired_fsyncs
                .fetch_add(fsyncs, std::sync::atomic::Ordering::Relaxed);
        }
        if let Err(error) = self.bury(name) {
            tracing::warn!(topic = name, %error, "topic deleted but its directory could not be removed; it goes at next start");
        }
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Moves `name`'s directory (if any) out of the way under a tombstone
    /// name, then removes it. After an `Ok`, nothing is left at the topic's
    /// path, so a topic created there starts empty.
    fn bury(&self, name: &str) -> Result<()> {
        let dir = self.topic_dir(name);
        if !self.vfs.exists(&dir) {
            return Ok(());
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tombstone = self.topic_dir(&format!("{name}~deleted-{nanos}"));
        self.vfs
            .rename(&dir, &tombstone)
            .map_err(BrokerError::metadata_io(&dir))?;
        self.vfs
            .remove_dir_all(&tombstone)
            .map_err(BrokerError::metadata_io(&tombstone))
    }

    pub fn apply_retention(&self) {
        let now = ferry_storage::now_ms();
        for topic in self.list() {
            for log in &topic.partitions {
                if let Err(error) = log.apply_retention(now) {
                    tracing::warn!(partition = log.name(), %error, "retention failed");
                }
            }
        }
    }

    /// Clean shutdown of every log (blocking).
    pub fn close_all(&self) {
        for topic in self.list() {
            for log in &topic.partitions {
                if let Err(error) = log.close() {
                    tracing::error!(partition = log.name(), %error, "closing log failed");
                }
            }
        }
    }

    /// Total fsyncs run across partitions (a scrapeable counter).
    /// Fsyncs run by every partition since start, deleted topics included
    /// (monotonic, as a Prometheus counter must be).
    pub fn fsyncs(&self) -> u64 {
        // Under the registry's read lock: a deletion (which moves a topic's
        // count to `retired_fsyncs` under the write lock) is either wholly
        // before or wholly after this sum, so no topic counts twice and the
        // counter never goes down.
        let topics = self.topics.read();
        let open: u64 = topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .map(|log| log.stats().fsyncs)
            .sum();
        open + self
            .retired_fsyncs
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A broker always opens its own data dir, even with more partitions than
/// the open-files budget (a lowered limit): it says so, and new topics are
/// refused until partitions are deleted or the limit raised.
fn warn_if_over_fd_budget(opened: &HashMap<String, Arc<Topic>>) {
    let partitions: u64 = opened.values().map(|t| u64::from(t.meta.partitions)).sum();
    if let Some(budget) = ferry_storage::fd_budget::budget() {
        if partitions > budget.partitions() {
            tracing::warn!(
                partitions,
                budget = budget.partitions(),
                open_files_limit = budget.limit,
                "more partitions than the open-files budget: started anyway; new topics are refused until the limit is raised"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_storage::vfs::SimFs;

    #[test]
    fn topics_survive_reopen_and_corrupt_metadata_is_rebuilt() {
        let fs = SimFs::new(1);
        let data = Path::new("/data");
        let open = |fs: &SimFs| {
            Topics::open(
                Arc::new(fs.clone()),
                data,
                LogConfig::default(),
                Flusher::start(1),
            )
            .unwrap()
        };
        let topics = open(&fs);
        let name = |n: &str| TopicName::new(n).unwrap();
        let settings = TopicSettings {
            partitions: Some(3),
            retention_ms: Some(5000),
            fsync: Some(FsyncPolicy::IntervalMs(100)),
            ..TopicSettings::default()
        };
        topics.create(&name("orders"), settings, 1).unwrap();
        assert!(matches!(
            topics.create(&name("orders"), TopicSettings::default(), 1),
            Err(BrokerError::TopicExists(_))
        ));
        topics
            .create(&name("gone"), TopicSettings::default(), 2)
            .unwrap();
        topics.delete("gone").unwrap();
        drop(topics);
        let fs = fs.power_loss(5);
        let topics = open(&fs);
        let names: Vec<String> = topics
            .list()
            .iter()
            .map(|t| t.meta.name.to_string())
            .collect();
        assert_eq!(names, vec!["orders".to_string()]);
        let orders = topics.get("orders").unwrap();
        assert_eq!(orders.meta.retention_ms, Some(5000));
        assert_eq!(orders.meta.fsync, Some(FsyncPolicy::IntervalMs(100)));
        drop(orders);
        drop(topics);
        let path = data.join("meta").join(METADATA_FILE);
        let mut bytes = fs.read_file(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        fs.write_file(&path, bytes);
        let topics = open(&fs);
        let orders = topics.get("orders").unwrap();
        assert_eq!(
            orders.partitions.len(),
            3,
            "partition count rebuilt from directories"
        );
        assert_eq!(
            orders.meta.retention_ms, None,
            "settings fall back to defaults"
        );
    }
}
