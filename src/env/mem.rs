//! An in-memory disk that models what survives a crash: the durable image (what `sync` and
//! `sync_dir` made durable) is kept beside the live one, as redb's crash-consistency tests do.
//! Fast enough for proptest model tests; the simulator uses turmoil's filesystem instead.
//!
//! [`MemDisk::crash`] throws away everything not synced: file contents roll back to their last
//! synced image, and names roll back to their last synced directory state. With torn writes on,
//! each file keeps a random prefix of its unsynced writes (the last one cut at a block
//! boundary), as a disk that loses power mid-flush does.

use super::BoxFuture;
use super::disk::{DirEntry, Disk, DiskFile, FileMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One file's contents.
#[derive(Default)]
struct Inode {
    /// What readers see now.
    live: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Writes and truncations since the last sync, in order, for torn-write modelling.
    unsynced: Vec<PendingWrite>,
}

#[derive(Clone)]
enum PendingWrite {
    Write { pos: u64, data: Vec<u8> },
    SetLen(u64),
}

/// The namespace and the durable namespace.
#[derive(Default)]
struct State {
    /// Files visible now, by path.
    files: BTreeMap<PathBuf, Arc<Mutex<Inode>>>,
    /// Directories visible now.
    dirs: BTreeSet<PathBuf>,
    /// Files whose names survive a crash.
    durable_files: BTreeMap<PathBuf, Arc<Mutex<Inode>>>,
    /// Directories whose names survive a crash.
    durable_dirs: BTreeSet<PathBuf>,
    /// Number of syncs performed (file and directory), for tests that count them.
    syncs: u64,
}

/// An in-memory [`Disk`] with crash modelling. Cloning gives another handle on the same disk.
#[derive(Clone, Default)]
pub struct MemDisk {
    /// The shared state.
    state: Arc<Mutex<State>>,
    /// Bumped by every crash; handles opened before it fail afterwards.
    generation: Arc<AtomicU64>,
    /// File syncs under this directory wait until it is cleared ([`MemDisk::hold_syncs`]).
    held: Arc<tokio::sync::watch::Sender<Option<PathBuf>>>,
}

impl MemDisk {
    /// An empty disk with only the root directory.
    pub fn new() -> MemDisk {
        let disk = MemDisk::default();
        {
            let mut s = disk.lock();
            s.dirs.insert(PathBuf::from("/"));
            s.durable_dirs.insert(PathBuf::from("/"));
        }
        disk
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loses power: everything not synced is gone. With `torn_block_size`, each file keeps a
    /// random prefix of its unsynced writes, the last one cut at a multiple of the block size,
    /// chosen by `seed`.
    pub fn crash(&self, torn_block_size: Option<usize>, seed: u64) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut s = self.lock();
        s.files = s.durable_files.clone();
        s.dirs = s.durable_dirs.clone();
        let inodes: Vec<Arc<Mutex<Inode>>> = s.files.values().cloned().collect();
        for inode in inodes {
            let mut ino = inode.lock().unwrap_or_else(|e| e.into_inner());
            let mut image = ino.durable.clone();
            if let Some(block) = torn_block_size {
                let pending = std::mem::take(&mut ino.unsynced);
                let keep = rng.random_range(0..=pending.len());
                for (i, op) in pending.into_iter().take(keep).enumerate() {
                    match op {
                        PendingWrite::SetLen(len) => image.resize(len as usize, 0),
                        PendingWrite::Write { pos, data } => {
                            let n = if i + 1 == keep {
                                let blocks = data.len().div_ceil(block);
                                (rng.random_range(0..=blocks) * block).min(data.len())
                            } else {
                                data.len()
                            };
                            apply_write(&mut image, pos, &data[..n]);
                        }
                    }
                }
            }
            ino.unsynced.clear();
            ino.durable = image.clone();
            ino.live = image;
        }
    }

    /// A process restart without power loss: nothing is lost, open handles are closed.
    pub fn restart(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Holds every file sync under `dir` until called again with `None` (or another
    /// directory): for tests of what a slow sync lets happen meanwhile. A held sync makes
    /// durable what the file holds when it is released. A file is matched by the path it was
    /// opened at (a directory renamed since is not followed).
    pub fn hold_syncs(&self, dir: Option<PathBuf>) {
        self.held.send_replace(dir);
    }

    /// How many file and directory syncs have run.
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// The live contents of a file, for tests that corrupt or inspect files directly.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        let inode = s.files.get(path)?;
        let ino = inode.lock().unwrap_or_else(|e| e.into_inner());
        Some(ino.live.clone())
    }

    /// Replaces a file's contents, durably: for tests that plant damaged files.
    pub fn write_file_durable(&self, path: &Path, bytes: &[u8]) {
        let mut s = self.lock();
        let inode = s.files.entry(path.to_path_buf()).or_default().clone();
        s.durable_files.insert(path.to_path_buf(), inode.clone());
        let mut ino = inode.lock().unwrap_or_else(|e| e.into_inner());
        ino.live = bytes.to_vec();
        ino.durable = bytes.to_vec();
        ino.unsynced.clear();
    }

    fn check_parent(s: &State, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(p) if s.dirs.contains(p) => Ok(()),
            _ => Err(not_found(path)),
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

fn apply_write(buf: &mut Vec<u8>, pos: u64, data: &[u8]) {
    let end = pos as usize + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[pos as usize..end].copy_from_slice(data);
}

/// An open file on a [`MemDisk`].
struct MemFile {
    inode: Arc<Mutex<Inode>>,
    path: PathBuf,
    disk: MemDisk,
    /// The disk generation this handle was opened in.
    generation: u64,
    writable: bool,
}

impl MemFile {
    fn inode(&self) -> io::Result<MutexGuard<'_, Inode>> {
        if self.disk.generation.load(Ordering::SeqCst) != self.generation {
            return Err(io::Error::other(
                "stale handle: the disk crashed or restarted",
            ));
        }
        Ok(self.inode.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "opened read-only",
            ))
        }
    }
}

impl DiskFile for MemFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let ino = self.inode()?;
        let len = ino.live.len() as u64;
        if pos >= len {
            return Ok(0);
        }
        let n = buf.len().min((len - pos) as usize);
        buf[..n].copy_from_slice(&ino.live[pos as usize..pos as usize + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.writable()?;
        let mut ino = self.inode()?;
        apply_write(&mut ino.live, pos, buf);
        ino.unsynced.push(PendingWrite::Write {
            pos,
            data: buf.to_vec(),
        });
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.inode()?.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.writable()?;
        let mut ino = self.inode()?;
        ino.live.resize(len as usize, 0);
        ino.unsynced.push(PendingWrite::SetLen(len));
        Ok(())
    }

    fn sync(self: Arc<Self>) -> BoxFuture<'static, io::Result<()>> {
        let mut held = self.disk.held.subscribe();
        let path = self.path.clone();
        let sync = move || {
            let result = self.inode().map(|mut ino| {
                ino.durable = ino.live.clone();
                ino.unsynced.clear();
            });
            if result.is_ok() {
                self.disk.lock().syncs += 1;
            }
            result
        };
        let holds = move |h: &Option<PathBuf>| h.as_ref().is_some_and(|d| path.starts_with(d));
        if !holds(&held.borrow()) {
            let result = sync();
            return Box::pin(async move { result });
        }
        Box::pin(async move {
            // The sender lives as long as the disk, which this file's handle keeps alive.
            let _ = held.wait_for(|h| !holds(h)).await;
            sync()
        })
    }
}

impl Disk for MemDisk {
    fn open(&self, path: &Path, mode: FileMode) -> io::Result<Arc<dyn DiskFile>> {
        let mut s = self.lock();
        let inode = match (s.files.get(path).cloned(), mode) {
            (Some(inode), FileMode::CreateTruncate) => {
                {
                    let mut ino = inode.lock().unwrap_or_else(|e| e.into_inner());
                    ino.live.clear();
                    ino.unsynced.push(PendingWrite::SetLen(0));
                }
                inode
            }
            (Some(inode), _) => inode,
            (None, FileMode::Read | FileMode::ReadWrite) => return Err(not_found(path)),
            (None, FileMode::Create | FileMode::CreateTruncate) => {
                MemDisk::check_parent(&s, path)?;
                if s.dirs.contains(path) {
                    return Err(io::Error::other("is a directory"));
                }
                let inode = Arc::new(Mutex::new(Inode::default()));
                s.files.insert(path.to_path_buf(), inode.clone());
                inode
            }
        };
        Ok(Arc::new(MemFile {
            inode,
            path: path.to_path_buf(),
            disk: self.clone(),
            generation: self.generation.load(Ordering::SeqCst),
            writable: mode != FileMode::Read,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        for anc in path.ancestors() {
            if s.files.contains_key(anc) {
                return Err(io::Error::other(format!("{} is a file", anc.display())));
            }
            s.dirs.insert(anc.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let s = self.lock();
        if !s.dirs.contains(path) {
            return Err(not_found(path));
        }
        let name_of = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_owned);
        let mut out: Vec<DirEntry> = s
            .files
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| {
                name_of(p).map(|name| DirEntry {
                    name,
                    is_dir: false,
                })
            })
            .chain(
                s.dirs
                    .iter()
                    .filter(|p| p.parent() == Some(path))
                    .filter_map(|p| name_of(p).map(|name| DirEntry { name, is_dir: true })),
            )
            .collect();
        out.sort();
        Ok(out)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        MemDisk::check_parent(&s, to)?;
        if let Some(inode) = s.files.remove(from) {
            s.files.insert(to.to_path_buf(), inode);
            return Ok(());
        }
        if !s.dirs.contains(from) {
            return Err(not_found(from));
        }
        // A directory: everything under it moves with it.
        let moved = |p: &Path| to.join(p.strip_prefix(from).expect("under from"));
        let files: Vec<_> = s
            .files
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for p in files {
            let inode = s.files.remove(&p).expect("listed");
            s.files.insert(moved(&p), inode);
        }
        let dirs: Vec<_> = s
            .dirs
            .iter()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for p in dirs {
            s.dirs.remove(&p);
            s.dirs.insert(moved(&p));
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if !s.dirs.contains(path) {
            return Err(not_found(path));
        }
        s.files.retain(|p, _| !p.starts_with(path));
        s.dirs.retain(|p| !p.starts_with(path));
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.lock();
        s.files.contains_key(path) || s.dirs.contains(path)
    }

    fn sync_dir(&self, path: &Path) -> BoxFuture<'static, io::Result<()>> {
        let mut s = self.lock();
        let result = if s.dirs.contains(path) {
            // The directory's entries become what they are now.
            let in_dir = |p: &Path| p.parent() == Some(path);
            s.durable_files.retain(|p, _| !in_dir(p));
            let live: Vec<_> = s
                .files
                .iter()
                .filter(|(p, _)| in_dir(p))
                .map(|(p, i)| (p.clone(), i.clone()))
                .collect();
            s.durable_files.extend(live);
            s.durable_dirs.retain(|p| !in_dir(p));
            let live_dirs: Vec<_> = s.dirs.iter().filter(|p| in_dir(p)).cloned().collect();
            s.durable_dirs.extend(live_dirs);
            s.syncs += 1;
            Ok(())
        } else {
            Err(not_found(path))
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::disk::{create_dir_durable, write_atomic};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn unsynced_data_and_names_are_lost() {
        let disk = MemDisk::new();
        block_on(create_dir_durable(&disk, Path::new("/d"))).unwrap();
        let f = disk.open(Path::new("/d/a"), FileMode::Create).unwrap();
        f.write_at(b"one", 0).unwrap();
        block_on(f.clone().sync()).unwrap();
        // Synced data, but the name was never synced: gone after a crash.
        disk.crash(None, 0);
        assert!(!disk.exists(Path::new("/d/a")));
        assert!(disk.exists(Path::new("/d")));

        let f = disk.open(Path::new("/d/a"), FileMode::Create).unwrap();
        f.write_at(b"one", 0).unwrap();
        block_on(f.clone().sync()).unwrap();
        block_on(disk.sync_dir(Path::new("/d"))).unwrap();
        f.write_at(b"two", 3).unwrap();
        disk.crash(None, 0);
        assert_eq!(disk.read_file(Path::new("/d/a")).unwrap(), b"one");
        // The old handle is stale.
        assert!(f.write_at(b"x", 0).is_err());
    }

    #[test]
    fn torn_writes_keep_a_block_prefix() {
        let disk = MemDisk::new();
        block_on(create_dir_durable(&disk, Path::new("/d"))).unwrap();
        let f = disk.open(Path::new("/d/a"), FileMode::Create).unwrap();
        block_on(disk.sync_dir(Path::new("/d"))).unwrap();
        f.write_at(&[7u8; 100], 0).unwrap();
        let mut lens = BTreeSet::new();
        for seed in 0..50 {
            let d = MemDisk::new();
            block_on(create_dir_durable(&d, Path::new("/d"))).unwrap();
            let f = d.open(Path::new("/d/a"), FileMode::Create).unwrap();
            block_on(d.sync_dir(Path::new("/d"))).unwrap();
            f.write_at(&[7u8; 100], 0).unwrap();
            d.crash(Some(16), seed);
            let got = d.read_file(Path::new("/d/a")).unwrap();
            assert!(got.iter().all(|b| *b == 7));
            assert!(got.len() % 16 == 0 || got.len() == 100);
            lens.insert(got.len());
        }
        assert!(lens.len() > 2, "torn lengths vary: {lens:?}");
    }

    #[test]
    fn directories_rename_with_their_contents() {
        let disk = MemDisk::new();
        block_on(create_dir_durable(&disk, Path::new("/d/a"))).unwrap();
        disk.open(Path::new("/d/a/f"), FileMode::Create)
            .unwrap()
            .write_at(b"x", 0)
            .unwrap();
        disk.rename(Path::new("/d/a"), Path::new("/d/b")).unwrap();
        assert!(!disk.exists(Path::new("/d/a")) && !disk.exists(Path::new("/d/a/f")));
        assert_eq!(disk.read_file(Path::new("/d/b/f")).unwrap(), b"x");
        disk.remove_dir_all(Path::new("/d/b")).unwrap();
        assert!(!disk.exists(Path::new("/d/b/f")));
    }

    #[test]
    fn atomic_write_survives_as_old_or_new() {
        let disk = MemDisk::new();
        block_on(create_dir_durable(&disk, Path::new("/d"))).unwrap();
        block_on(write_atomic(&disk, Path::new("/d/c"), b"old")).unwrap();
        // A crash between the temp write and the rename leaves the old file.
        let tmp = disk
            .open(Path::new("/d/c.tmp"), FileMode::CreateTruncate)
            .unwrap();
        tmp.write_at(b"new", 0).unwrap();
        disk.crash(Some(1), 3);
        assert_eq!(disk.read_file(Path::new("/d/c")).unwrap(), b"old");
        block_on(write_atomic(&disk, Path::new("/d/c"), b"new")).unwrap();
        disk.crash(Some(1), 4);
        assert_eq!(disk.read_file(Path::new("/d/c")).unwrap(), b"new");
    }
}
