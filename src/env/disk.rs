//! The disk: a narrow file API (positional read and write, length, truncate, sync) and a few
//! directory operations. The log is written against these traits only.
//!
//! Durability model, as POSIX gives it and as the simulator enforces it: a write is durable only
//! after [`DiskFile::sync`] on its file, and a created, renamed or removed name only after
//! [`Disk::sync_dir`] on its parent directory.

use super::BoxFuture;
use super::probe::PlantedBugs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; create the file if it is missing, keep its contents if not.
    Create,
    /// Read and write; create the file, or truncate it to nothing if it exists.
    CreateTruncate,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirEntry {
    /// The file name (not the path). Names that are not UTF-8 are not listed.
    pub name: String,
    /// Whether the entry is a directory.
    pub is_dir: bool,
}

/// An open file.
#[allow(clippy::len_without_is_empty)] // a file's emptiness is never the question
pub trait DiskFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `pos`, extending the file if needed.
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// The file's current length, synced or not.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or zero-extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes everything written so far durable (fdatasync). Slow on real disks, so it is a
    /// future: the real implementation runs it off the async threads.
    fn sync(self: Arc<Self>) -> BoxFuture<'static, io::Result<()>>;
}

/// A filesystem.
pub trait Disk: Send + Sync + 'static {
    /// Opens (or creates) the file at `path`.
    fn open(&self, path: &Path, mode: FileMode) -> io::Result<Arc<dyn DiskFile>>;
    /// Creates `path` and any missing parents. Not durable until the parents are synced.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Lists a directory, sorted by name (so the order is the same in every world).
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Whether something exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Makes the directory's entries (creations, renames, removals in it) durable.
    fn sync_dir(&self, path: &Path) -> BoxFuture<'static, io::Result<()>>;
    /// The bugs the simulator planted (never any on a real disk): see [`PlantedBugs`].
    fn planted_bugs(&self) -> PlantedBugs {
        PlantedBugs::default()
    }
}

/// Reads exactly `buf.len()` bytes at `pos`, or fails with `UnexpectedEof`.
pub fn read_exact_at(file: &dyn DiskFile, buf: &mut [u8], pos: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], pos + done as u64)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "short read: wanted {} bytes at {pos}, file ended after {done}",
                    buf.len()
                ),
            ));
        }
        done += n;
    }
    Ok(())
}

/// Creates `dir` (and missing parents) durably: each created directory's parent is synced, so
/// the directory survives a power loss.
pub async fn create_dir_durable(disk: &dyn Disk, dir: &Path) -> io::Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        // A relative path ends in "" (the working directory), which exists.
        if p.as_os_str().is_empty() || disk.exists(p) {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    disk.create_dir_all(dir)?;
    for created in missing.iter().rev() {
        disk.sync_dir(created).await?;
        if let Some(parent) = created.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            disk.sync_dir(parent).await?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably: write a temp file beside it, sync it,
/// rename it over `path`, sync the directory. A crash at any point leaves either the old file
/// or the new one, never a mix.
pub async fn write_atomic(disk: &dyn Disk, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp_name);
    let file = disk.open(&tmp, FileMode::CreateTruncate)?;
    file.write_at(bytes, 0)?;
    if disk.planted_bugs().rename_before_sync {
        // The planted bug: the new name is made durable before the contents it names.
        disk.rename(&tmp, path)?;
        disk.sync_dir(dir).await?;
        return file.sync().await;
    }
    file.sync().await?;
    disk.rename(&tmp, path)?;
    disk.sync_dir(dir).await
}

/// The suffix of temp files written by [`write_atomic`]; recovery removes leftovers.
pub const TMP_SUFFIX: &str = ".tmp";

/// The real filesystem, through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

/// A real file. Positional I/O (`pread`/`pwrite`), so one handle serves concurrent readers.
struct RealFile {
    /// The open file.
    file: std::fs::File,
}

impl DiskFile for RealFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.file, buf, pos)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, buf, pos)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(self: Arc<Self>) -> BoxFuture<'static, io::Result<()>> {
        Box::pin(async move { run_blocking(move || self.file.sync_data()).await })
    }
}

/// Runs a slow blocking call (fsync) on tokio's blocking pool when there is a runtime, so the
/// async threads keep serving; inline otherwise. Only the real disk uses this.
async fn run_blocking<F>(f: F) -> io::Result<()>
where
    F: FnOnce() -> io::Result<()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        // determinism-ok: the real disk only; the simulator's disk never comes here.
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(format!("sync task failed: {e}"))),
        },
        Err(_) => f(),
    }
}

impl Disk for RealDisk {
    fn open(&self, path: &Path, mode: FileMode) -> io::Result<Arc<dyn DiskFile>> {
        let mut o = std::fs::OpenOptions::new();
        match mode {
            FileMode::Read => o.read(true),
            FileMode::ReadWrite => o.read(true).write(true),
            FileMode::Create => o.read(true).write(true).create(true),
            FileMode::CreateTruncate => o.read(true).write(true).create(true).truncate(true),
        };
        Ok(Arc::new(RealFile {
            file: o.open(path)?,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_dir = entry.file_type()?.is_dir();
            out.push(DirEntry { name, is_dir });
        }
        out.sort();
        Ok(out)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn sync_dir(&self, path: &Path) -> BoxFuture<'static, io::Result<()>> {
        let path = path.to_path_buf();
        Box::pin(async move { run_blocking(move || std::fs::File::open(&path)?.sync_all()).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn real_disk_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let disk = RealDisk;
        let sub = dir.path().join("a/b");
        create_dir_durable(&disk, &sub).await.unwrap();
        let f = disk.open(&sub.join("x"), FileMode::Create).unwrap();
        f.write_at(b"hello", 3).unwrap();
        f.clone().sync().await.unwrap();
        assert_eq!(f.len().unwrap(), 8);
        let mut buf = [0u8; 8];
        read_exact_at(&*f, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"\0\0\0hello");
        assert!(read_exact_at(&*f, &mut buf, 1).is_err());
        write_atomic(&disk, &sub.join("c"), b"v1").await.unwrap();
        write_atomic(&disk, &sub.join("c"), b"v2").await.unwrap();
        let names: Vec<String> = disk
            .list_dir(&sub)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["c", "x"]);
    }
}
