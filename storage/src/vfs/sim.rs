//! A simulated disk for crash testing. Each file keeps its durable image (what
//! survives power loss) apart from the writes made since its last fsync; the
//! namespace keeps its durable entries apart from creations, renames and
//! removals made since the last directory fsync.
//!
//! [`SimFs::power_loss`] returns the disk as it could be found after the power
//! went out: every file's durable image plus a random subset of its pending
//! writes (each possibly torn to a prefix), and the durable namespace plus a
//! random prefix of the pending namespace operations (journals commit in
//! order). Fsync failures can be injected; a failed fsync drops the pending
//! writes from ever becoming durable while reads still see them, as Linux
//! does after a writeback error.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{VFile, Vfs};

type Inode = u64;

#[derive(Debug, Clone)]
enum DataOp {
    Write { position: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<DataOp>,
}

#[derive(Debug, Clone)]
enum MetaOp {
    Link(PathBuf, Inode),
    Unlink(PathBuf),
}

/// Failure injection settings.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// Probability that any one fsync fails with EIO.
    pub sync_failure_probability: f64,
    /// Total bytes the disk holds; a write that would grow past it fails
    /// with ENOSPC (having written what fitted, as a real disk may).
    pub capacity_bytes: Option<u64>,
}

#[derive(Debug)]
struct SimState {
    files: HashMap<Inode, SimFile>,
    names: BTreeMap<PathBuf, Inode>,
    durable_names: BTreeMap<PathBuf, Inode>,
    pending_meta: Vec<MetaOp>,
    next_inode: Inode,
    rng: StdRng,
    options: SimOptions,
    failed_syncs: u64,
}

/// The simulated disk. Cloning shares the same disk.
#[derive(Clone)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
}

impl SimFs {
    pub fn new(seed: u64) -> SimFs {
        SimFs::with_options(seed, SimOptions::default())
    }

    pub fn with_options(seed: u64, options: SimOptions) -> SimFs {
        SimFs {
            state: Arc::new(Mutex::new(SimState {
                files: HashMap::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                pending_meta: Vec::new(),
                next_inode: 1,
                rng: StdRng::seed_from_u64(seed),
                options,
                failed_syncs: 0,
            })),
        }
    }

    pub fn set_options(&self, options: SimOptions) {
        self.state.lock().options = options;
    }

    pub fn failed_syncs(&self) -> u64 {
        self.state.lock().failed_syncs
    }

    /// The disk as found after a power loss now, as a new, independent disk.
    /// Handles opened on `self` keep working on the old disk only.
    pub fn power_loss(&self, seed: u64) -> SimFs {
        let state = self.state.lock();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut names = state.durable_names.clone();
        let keep_meta = rng.gen_range(0..=state.pending_meta.len());
        for op in &state.pending_meta[..keep_meta] {
            apply_meta(&mut names, op);
        }
        let mut files = HashMap::new();
        for inode in names.values() {
            if files.contains_key(inode) {
                continue;
            }
            let Some(file) = state.files.get(inode) else {
                continue;
            };
            let mut image = file.durable.clone();
            for op in &file.pending {
                if !rng.gen_bool(0.5) {
                    continue;
                }
                match op {
                    DataOp::Write { position, data } => {
                        let torn = if rng.gen_bool(0.2) {
                            rng.gen_range(0..=data.len())
                        } else {
                            data.len()
                        };
                        apply_write(&mut image, *position, &data[..torn]);
                    }
                    DataOp::SetLen(len) => image.resize(*len as usize, 0),
                }
            }
            files.insert(
                *inode,
                SimFile {
                    current: image.clone(),
                    durable: image,
                    pending: Vec::new(),
                },
            );
        }
        SimFs {
            state: Arc::new(Mutex::new(SimState {
                files,
                durable_names: names.clone(),
                names,
                pending_meta: Vec::new(),
                next_inode: state.next_inode,
                rng: StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
                options: SimOptions::default(),
                failed_syncs: 0,
            })),
        }
    }

    /// Direct access for corruption tests: the current bytes of a file.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.lock();
        let inode = state.names.get(path)?;
        state.files.get(inode).map(|f| f.current.clone())
    }

    /// Direct access for corruption tests: replace a file's bytes, durably.
    pub fn write_file(&self, path: &Path, bytes: Vec<u8>) {
        let mut state = self.state.lock();
        let inode = match state.names.get(path) {
            Some(inode) => *inode,
            None => {
                let inode = state.next_inode;
                state.next_inode += 1;
                state.names.insert(path.to_path_buf(), inode);
                state.durable_names.insert(path.to_path_buf(), inode);
                inode
            }
        };
        state.files.insert(
            inode,
            SimFile {
                current: bytes.clone(),
                durable: bytes,
                pending: Vec::new(),
            },
        );
    }
}

fn apply_meta(names: &mut BTreeMap<PathBuf, Inode>, op: &MetaOp) {
    match op {
        MetaOp::Link(path, inode) => {
            names.insert(path.clone(), *inode);
        }
        MetaOp::Unlink(path) => {
            names.remove(path);
        }
    }
}

fn apply_write(image: &mut Vec<u8>, position: u64, data: &[u8]) {
    let end = position as usize + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[position as usize..end].copy_from_slice(data);
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

struct SimHandle {
    state: Arc<Mutex<SimState>>,
    inode: Inode,
}

impl SimHandle {
    fn with_file<T>(&self, f: impl FnOnce(&mut SimFile) -> T) -> T {
        let mut state = self.state.lock();
        let file = state.files.entry(self.inode).or_default();
        f(file)
    }
}

impl VFile for SimHandle {
    fn write_at(&self, position: u64, buf: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock();
        let room = match state.options.capacity_bytes {
            Some(capacity) => {
                let used: u64 = state.files.values().map(|f| f.current.len() as u64).sum();
                let current = state
                    .files
                    .get(&self.inode)
                    .map_or(0, |f| f.current.len() as u64);
                let growth = (position + buf.len() as u64).saturating_sub(current);
                let free = capacity.saturating_sub(used);
                (growth > free).then(|| (current + free).saturating_sub(position) as usize)
            }
            None => None,
        };
        let fits = room.map_or(buf.len(), |r| r.min(buf.len()));
        let file = state.files.entry(self.inode).or_default();
        if fits > 0 {
            apply_write(&mut file.current, position, &buf[..fits]);
            file.pending.push(DataOp::Write {
                position,
                data: buf[..fits].to_vec(),
            });
        }
        if room.is_some() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with_file(|file| {
            let end = position as usize + buf.len();
            if end > file.current.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past end of file",
                ));
            }
            buf.copy_from_slice(&file.current[position as usize..end]);
            Ok(())
        })
    }

    fn read_view(&self, position: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(position, &mut buf)?;
        Ok(Bytes::from(buf))
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.with_file(|file| file.current.len() as u64))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with_file(|file| {
            file.current.resize(len as usize, 0);
            file.pending.push(DataOp::SetLen(len));
        });
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.state.lock();
        let probability = state.options.sync_failure_probability;
        let fail = probability > 0.0 && state.rng.gen_bool(probability.min(1.0));
        if fail {
            state.failed_syncs += 1;
        }
        let file = state.files.entry(self.inode).or_default();
        if fail {
            // Linux marks the pages clean after a writeback error: the
            // pending writes will never reach the disk, reads still see them.
            file.pending.clear();
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        for op in std::mem::take(&mut file.pending) {
            match op {
                DataOp::Write { position, data } => apply_write(&mut file.durable, position, &data),
                DataOp::SetLen(len) => file.durable.resize(len as usize, 0),
            }
        }
        Ok(())
    }
}

impl Vfs for SimFs {
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        // Directories are implicit: a name's parents always exist.
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.state.lock();
        let mut names: Vec<String> = state
            .names
            .keys()
            .filter_map(|name| {
                let rest = name.strip_prefix(path).ok()?;
                let first = rest.components().next()?;
                Some(first.as_os_str().to_string_lossy().into_owned())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.state.lock();
        state.names.contains_key(path) || state.names.keys().any(|name| name.starts_with(path))
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn VFile>> {
        let mut state = self.state.lock();
        let inode = match state.names.get(path) {
            Some(inode) => *inode,
            None if create => {
                let inode = state.next_inode;
                state.next_inode += 1;
                state.files.insert(inode, SimFile::default());
                state.names.insert(path.to_path_buf(), inode);
                state
                    .pending_meta
                    .push(MetaOp::Link(path.to_path_buf(), inode));
                inode
            }
            None => return Err(not_found(path)),
        };
        Ok(Arc::new(SimHandle {
            state: self.state.clone(),
            inode,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        if state.names.remove(path).is_none() {
            return Err(not_found(path));
        }
        state.pending_meta.push(MetaOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        let doomed: Vec<PathBuf> = state
            .names
            .keys()
            .filter(|n| n.starts_with(path))
            .cloned()
            .collect();
        for name in doomed {
            state.names.remove(&name);
            state.pending_meta.push(MetaOp::Unlink(name));
        }
        Ok(())
    }

    /// Renames a file, or a directory (every name below it, as one
    /// journal step each: the rename of a real directory is atomic, and
    /// here a power loss may keep a prefix of the moves; callers only
    /// rename directories whose contents are doomed either way).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        let moves: Vec<(PathBuf, PathBuf)> = match state.names.contains_key(from) {
            true => vec![(from.to_path_buf(), to.to_path_buf())],
            false => state
                .names
                .keys()
                .filter_map(|name| {
                    let rest = name.strip_prefix(from).ok()?;
                    Some((name.clone(), to.join(rest)))
                })
                .collect(),
        };
        if moves.is_empty() {
            return Err(not_found(from));
        }
        for (old, new) in moves {
            let Some(inode) = state.names.remove(&old) else {
                continue;
            };
            state.names.insert(new.clone(), inode);
            state.pending_meta.push(MetaOp::Unlink(old));
            state.pending_meta.push(MetaOp::Link(new, inode));
        }
        Ok(())
    }

    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        // A directory fsync commits the journal: every namespace operation so
        // far becomes durable, in order (ext4/xfs behaviour).
        let mut state = self.state.lock();
        let ops = std::mem::take(&mut state.pending_meta);
        for op in &ops {
            apply_meta(&mut state.durable_names, op);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_data_survives_and_unsynced_names_may_not() {
        let fs = SimFs::new(1);
        let dir = Path::new("/d");
        let file = fs.open(&dir.join("a"), true).unwrap();
        file.write_at(0, b"durable").unwrap();
        file.sync().unwrap();
        fs.sync_dir(dir).unwrap();
        file.write_at(7, b"-maybe").unwrap();
        for seed in 0..50 {
            let after = fs.power_loss(seed);
            let bytes = after.read_file(&dir.join("a")).unwrap();
            assert!(bytes.starts_with(b"durable"));
        }
        let fresh = fs.open(&dir.join("b"), true).unwrap();
        fresh.write_at(0, b"x").unwrap();
        fresh.sync().unwrap();
        let outcomes: Vec<bool> = (0..50)
            .map(|s| fs.power_loss(s).exists(&dir.join("b")))
            .collect();
        assert!(outcomes.contains(&true) && outcomes.contains(&false));
    }

    #[test]
    fn failed_sync_loses_the_window_even_if_a_later_sync_succeeds() {
        let fs = SimFs::with_options(
            3,
            SimOptions {
                sync_failure_probability: 1.0,
                ..SimOptions::default()
            },
        );
        let file = fs.open(Path::new("/f"), true).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        file.write_at(0, b"lost").unwrap();
        assert!(file.sync().is_err());
        fs.set_options(SimOptions::default());
        file.sync().unwrap();
        assert_eq!(fs.power_loss(9).read_file(Path::new("/f")).unwrap(), b"");
    }
}
