//! Producer ids for idempotent producers (`InitProducerId`). An id is never
//! given twice by one data directory, restarts and `kill -9` included: ids
//! are handed out from blocks of [`PRODUCER_ID_BLOCK`], and the end of the
//! current block is made durable (`meta/producer-ids.meta`, via
//! `metafile.rs`) before any id of it is given. A restart continues after
//! the stored end, skipping the unused rest of the block.
//!
//! Epochs: asked with its current id and epoch, a producer gets the next
//! epoch of the same id (partitions then fence its older epoch's batches);
//! at the last epoch it gets a new id instead. The broker keeps no epoch
//! per id: what a producer says is its epoch is what the partitions fence
//! with.

use std::path::PathBuf;
use std::sync::Arc;

use ferry_storage::vfs::Vfs;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::metafile::{self, Loaded};

/// Ids reserved by one durable write.
pub const PRODUCER_ID_BLOCK: i64 = 1000;
const FILE_NAME: &str = "producer-ids.meta";
const MAGIC: &[u8; 8] = b"FRYPIDS1";

#[derive(Serialize, Deserialize)]
struct Stored {
    /// Every id below this may have been given.
    next_block: i64,
}

/// The ids left in the reserved block: `next..limit`.
struct Block {
    next: i64,
    limit: i64,
}

pub struct ProducerIds {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    block: Mutex<Block>,
}

impl ProducerIds {
    /// Reads where the last block ended (ids start at 1 in a new data dir).
    pub fn open(vfs: Arc<dyn Vfs>, data_dir: &std::path::Path) -> Result<ProducerIds> {
        let dir = data_dir.join("meta");
        let path = dir.join(FILE_NAME);
        let next = match metafile::read::<Stored>(&*vfs, &path, MAGIC)? {
            Loaded::Missing => 1,
            Loaded::Valid(stored) if stored.next_block >= 1 => stored.next_block,
            Loaded::Valid(_) | Loaded::Corrupt => {
                return Err(BrokerError::MetadataCorrupt {
                    path,
                    what: "producer id block",
                })
            }
        };
        Ok(ProducerIds {
            vfs,
            dir,
            block: Mutex::new(Block { next, limit: next }),
        })
    }

    /// A new producer id (blocking: may write and fsync the next block).
    pub fn allocate(&self) -> Result<i64> {
        let mut block = self.block.lock();
        if block.next == block.limit {
            let limit =
                block
                    .limit
                    .checked_add(PRODUCER_ID_BLOCK)
                    .ok_or(BrokerError::OverLimit {
                        what: "producer ids",
                        requested: block.limit as u64,
                        limit: i64::MAX as u64,
                    })?;
            let stored = Stored { next_block: limit };
            metafile::write(&*self.vfs, &self.dir, FILE_NAME, MAGIC, &stored)?;
            block.limit = limit;
        }
        let id = block.next;
        block.next += 1;
        assert!(block.next <= block.limit);
        Ok(id)
    }

    /// The identity `InitProducerId` answers with: a new id at epoch 0, or
    /// `current`'s id at its next epoch.
    pub fn init(&self, current: Option<(i64, i16)>) -> Result<(i64, i16)> {
        match current {
            Some((id, epoch)) if epoch < i16::MAX => Ok((id, epoch.max(-1) + 1)),
            _ => Ok((self.allocate()?, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_storage::vfs::SimFs;

    #[test]
    fn ids_are_never_given_twice_across_restarts_and_power_loss() {
        let fs = SimFs::new(1);
        let data = std::path::Path::new("/data");
        fs.create_dir_all(&data.join("meta")).unwrap();
        let ids = ProducerIds::open(Arc::new(fs.clone()), data).unwrap();
        let first: Vec<i64> = (0..3).map(|_| ids.allocate().unwrap()).collect();
        assert_eq!(first, vec![1, 2, 3]);
        let fs = fs.power_loss(7);
        let ids = ProducerIds::open(Arc::new(fs.clone()), data).unwrap();
        let next = ids.allocate().unwrap();
        assert!(next > 3, "restarted at {next}");
        assert_eq!(next, 1 + PRODUCER_ID_BLOCK);
    }

    #[test]
    fn a_bump_keeps_the_id_until_the_last_epoch() {
        let fs = SimFs::new(2);
        let data = std::path::Path::new("/data");
        fs.create_dir_all(&data.join("meta")).unwrap();
        let ids = ProducerIds::open(Arc::new(fs), data).unwrap();
        let (id, epoch) = ids.init(None).unwrap();
        assert_eq!(epoch, 0);
        assert_eq!(ids.init(Some((id, 0))).unwrap(), (id, 1));
        let (renewed, epoch) = ids.init(Some((id, i16::MAX))).unwrap();
        assert!(renewed != id && epoch == 0);
    }
}
