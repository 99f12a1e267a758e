//! The topic registry: which topics exist, their settings and their
//! partition logs. Metadata lives in `<data>/meta/topics.meta` (magic, CRC,
//! JSON), replaced atomically through the storage `Vfs`; partition logs live
//! in `<data>/topics/<topic>/<partition>/`.
//!
//! Crash order: create writes the partition directories, then the metadata;
//! delete writes the metadata, then removes the directories. Directories not
//! named by the metadata are leftovers of one of those and are removed at
//! start. If the metadata file is corrupt, it is kept aside and rebuilt from
//! the directories (partition counts survive; per-topic settings fall back
//! to the broker defaults) and the broker says so in its log.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_protocol::messages::TopicConfig;
use ferry_storage::vfs::Vfs;
use ferry_storage::{Flusher, FsyncPolicy, Log, LogConfig};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::metafile::{self, Loaded};

pub const MAX_PARTITIONS_PER_TOPIC: u32 = 4096;
pub const MAX_TOPICS: usize = 10_000;
pub const TOPIC_NAME_MAX_BYTES: usize = 200;
pub const METADATA_FILE: &str = "topics.meta";
const METADATA_MAGIC: &[u8; 8] = b"FMETA001";

/// What is persisted per topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub partitions: u32,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub segment_bytes: Option<u64>,
    pub segment_ms: Option<u64>,
    pub fsync: Option<String>,
    pub created_ms: u64,
}

impl TopicMeta {
    pub fn to_config(&self) -> TopicConfig {
        TopicConfig {
            partitions: self.partitions,
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            segment_bytes: self.segment_bytes,
            fsync: self.fsync.clone(),
            segment_ms: self.segment_ms,
        }
    }

    fn log_config(&self, defaults: &LogConfig) -> Result<LogConfig> {
        let mut config = defaults.clone();
        if let Some(ms) = self.retention_ms {
            config.retention_ms = Some(ms);
        }
        if let Some(bytes) = self.retention_bytes {
            config.retention_bytes = Some(bytes);
        }
        if let Some(bytes) = self.segment_bytes {
            config.segment_bytes = bytes;
        }
        if let Some(ms) = self.segment_ms {
            config.segment_ms = Some(ms);
        }
        if let Some(fsync) = &self.fsync {
            config.fsync = fsync
                .parse::<FsyncPolicy>()
                .map_err(BrokerError::InvalidConfig)?;
        }
        config
            .validate()
            .map_err(|e| BrokerError::InvalidConfig(e.to_string()))?;
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
                topic: self.meta.name.clone(),
                partition,
            })
    }
}

pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(BrokerError::InvalidTopicName {
            name: name.chars().take(64).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > TOPIC_NAME_MAX_BYTES {
        return invalid("longer than 200 bytes");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

pub struct Topics {
    vfs: Arc<dyn Vfs>,
    data_dir: PathBuf,
    defaults: LogConfig,
    flusher: Flusher,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serializes create/delete and metadata writes.
    admin: Mutex<()>,
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
                .map_err(|e| BrokerError::Metadata(format!("{}: {e}", dir.display())))?;
        }
        let registry = Topics {
            vfs,
            data_dir: data_dir.to_path_buf(),
            defaults,
            flusher,
            topics: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
        };
        let metas = registry.load_metadata()?;
        registry.remove_leftover_dirs(&metas)?;
        let mut opened = HashMap::new();
        for meta in metas.into_values() {
            let topic = registry.open_topic(meta)?;
            opened.insert(topic.meta.name.clone(), Arc::new(topic));
        }
        tracing::info!(topics = opened.len(), "topics opened");
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
            metas.iter().all(|m| {
                validate_topic_name(&m.name).is_ok() && m.partitions <= MAX_PARTITIONS_PER_TOPIC
            })
        };
        match metafile::read::<Vec<TopicMeta>>(&*self.vfs, &path, METADATA_MAGIC)? {
            Loaded::Missing => Ok(BTreeMap::new()),
            Loaded::Valid(metas) if valid(&metas) => {
                Ok(metas.into_iter().map(|m| (m.name.clone(), m)).collect())
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
                .map_err(|e| BrokerError::Metadata(format!("{}: {e}", dir.display())))
        };
        let mut metas = BTreeMap::new();
        for name in list(&topics_dir)? {
            if validate_topic_name(&name).is_err() {
                continue;
            }
            let partitions = list(&topics_dir.join(&name))?
                .iter()
                .filter_map(|p| p.parse::<u32>().ok())
                .max()
                .map_or(0, |max| max + 1);
            if partitions > 0 {
                metas.insert(
                    name.clone(),
                    TopicMeta {
                        name,
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
            .map_err(|e| BrokerError::Metadata(format!("{}: {e}", topics_dir.display())))?;
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
        name: &str,
        config: Option<TopicConfig>,
        default_partitions: u32,
    ) -> Result<Arc<Topic>> {
        validate_topic_name(name)?;
        let config = config.unwrap_or_default();
        let partitions = if config.partitions == 0 {
            default_partitions
        } else {
            config.partitions
        };
        if partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err(BrokerError::InvalidConfig(format!(
                "{partitions} partitions is above the limit of {MAX_PARTITIONS_PER_TOPIC}"
            )));
        }
        let _admin = self.admin.lock();
        if self.topics.read().contains_key(name) {
            return Err(BrokerError::TopicExists(name.to_string()));
        }
        if self.topics.read().len() >= MAX_TOPICS {
            return Err(BrokerError::InvalidConfig(format!(
                "the broker holds the maximum of {MAX_TOPICS} topics"
            )));
        }
        let meta = TopicMeta {
            name: name.to_string(),
            partitions,
            retention_ms: config.retention_ms,
            retention_bytes: config.retention_bytes,
            segment_bytes: config.segment_bytes,
            segment_ms: config.segment_ms,
            fsync: config.fsync,
            created_ms: ferry_storage::now_ms(),
        };
        meta.log_config(&self.defaults)?;
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
        tracing::info!(topic = name, partitions, "topic created");
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
                .filter(|t| t.meta.name != name)
                .map(|t| t.meta.clone())
                .collect()
        };
        remaining.sort_by(|a, b| a.name.cmp(&b.name));
        self.write_metadata(remaining.iter())?;
        self.topics.write().remove(name);
        if let Err(error) = self.vfs.remove_dir_all(&self.topic_dir(name)) {
            tracing::warn!(topic = name, %error, "topic deleted but its directory could not be removed; it goes at next start");
        }
        tracing::info!(topic = name, "topic deleted");
        Ok(())
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
    pub fn fsyncs(&self) -> u64 {
        self.list()
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|log| log.stats().fsyncs)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_storage::vfs::SimFs;

    #[test]
    fn names_are_validated() {
        for good in ["a", "orders.v1", "A-b_c.9"] {
            assert!(validate_topic_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "sp ace", "é", &"x".repeat(201)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

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
        let config = TopicConfig {
            partitions: 3,
            retention_ms: Some(5000),
            ..TopicConfig::default()
        };
        topics.create("orders", Some(config), 1).unwrap();
        assert!(matches!(
            topics.create("orders", None, 1),
            Err(BrokerError::TopicExists(_))
        ));
        topics.create("gone", None, 2).unwrap();
        topics.delete("gone").unwrap();
        drop(topics);
        let fs = fs.power_loss(5);
        let topics = open(&fs);
        let names: Vec<String> = topics.list().iter().map(|t| t.meta.name.clone()).collect();
        assert_eq!(names, vec!["orders".to_string()]);
        assert_eq!(topics.get("orders").unwrap().meta.retention_ms, Some(5000));
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
