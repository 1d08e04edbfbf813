//! The simulated seam: runnel's `Disk`, `Network` and `Clock` traits on turmoil's per-host
//! filesystem, network and clock. Everything here must be called from inside a turmoil host.

use crate::history::{Event, Tp};
use crate::journal::{AppliedState, EntryId, FNV_OFFSET, JournalRef, Observed, fnv};
use runnel::env::disk::{DirEntry, Disk, DiskFile, FileMode};
use runnel::env::net::{Connection, Listener, Network};
use runnel::env::probe::{PlantedBugs, Probe, ProbeEvent};
use runnel::env::{BoxFuture, Clock, Env, SharedRng};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use turmoil::fs::shim::std::fs as simfs;

/// When the simulated kernel writes dirty data back on its own. turmoil's own random syncs are
/// off: the disk draws these from its host's `disk/...` stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Writeback {
    /// A file is written back once it holds this many unsynced writes (None: never; then only
    /// fsync makes data durable, and a power loss takes everything since the last one).
    pub dirty_writes: Option<u32>,
    /// Chance, in millionths, that a write is synced on its own right after it is made.
    pub sync_per_million: u32,
}

impl Default for Writeback {
    fn default() -> Self {
        Writeback {
            dirty_writes: Some(64),
            sync_per_million: 0,
        }
    }
}

impl std::fmt::Display for Writeback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.dirty_writes {
            Some(n) => write!(f, "after {n} dirty writes")?,
            None => write!(f, "never")?,
        }
        write!(f, ", partial syncs {}/1e6", self.sync_per_million)
    }
}

/// How the simulated disk behaves beyond turmoil's own fault settings.
#[derive(Debug, Clone)]
pub struct DiskFaults {
    /// fsync takes a random time in this range (so group commit has something to group and
    /// a crash can land mid-sync).
    pub fsync_latency: std::ops::Range<Duration>,
    /// A planted bug: fsync of a topic's segment reports success but syncs nothing.
    pub lying_fsync: bool,
    /// A planted bug: a directory fsync reports success but makes nothing durable.
    pub lying_dir_sync: bool,
    /// Bugs planted in runnel's own code, which asks the disk for them.
    pub planted: PlantedBugs,
    /// The kernel's writeback.
    pub writeback: Writeback,
    /// Faults the nemesis turns on and off while the simulation runs.
    pub switches: Arc<DiskSwitches>,
}

impl Default for DiskFaults {
    fn default() -> Self {
        DiskFaults {
            fsync_latency: Duration::from_micros(100)..Duration::from_millis(2),
            lying_fsync: false,
            lying_dir_sync: false,
            planted: PlantedBugs::default(),
            writeback: Writeback::default(),
            switches: Arc::new(DiskSwitches::default()),
        }
    }
}

/// Disk faults that can be switched while the simulation runs (turmoil fixes its own
/// filesystem settings when the simulation is built).
#[derive(Debug, Default)]
pub struct DiskSwitches {
    /// Per mille chance that a read or a write fails with EIO (transient: the next try may
    /// succeed).
    pub io_error_per_mille: std::sync::atomic::AtomicU32,
    /// While set, every write fails with ENOSPC (the disk is full).
    pub full: std::sync::atomic::AtomicBool,
    /// A crash armed to happen at a chosen point of the broker's disk work.
    pub armed: std::sync::Mutex<Option<ArmedCrash>>,
    /// Set when an armed crash point was reached: the process is dead from here on (every
    /// disk operation fails, every sync hangs) until the driver crashes the host.
    pub tripped: std::sync::atomic::AtomicBool,
}

/// Where in the broker's disk work a targeted crash lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// A write to a segment (`.log`): mid-append.
    SegmentWrite,
    /// A write to an offset or time index: between a batch and its index entry.
    IndexWrite,
    /// Creating a segment file: mid-roll (or mid-topic-creation).
    SegmentCreate,
    /// A rename: a checkpoint, a producer snapshot, or a topic deletion being committed.
    Rename,
    /// Deleting a file: retention, snapshot cleanup, recovery's own cleanup.
    Delete,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 5] = [
        CrashPoint::SegmentWrite,
        CrashPoint::IndexWrite,
        CrashPoint::SegmentCreate,
        CrashPoint::Rename,
        CrashPoint::Delete,
    ];

    /// Kafka-ish words for the failure report.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::SegmentWrite => "segment write",
            CrashPoint::IndexWrite => "index write",
            CrashPoint::SegmentCreate => "segment roll",
            CrashPoint::Rename => "rename (checkpoint, snapshot)",
            CrashPoint::Delete => "file delete (retention)",
        }
    }
}

/// A crash waiting for its point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmedCrash {
    pub point: CrashPoint,
    /// Crash after the operation took effect (else just before it).
    pub after: bool,
    /// Occurrences of the point to let pass first.
    pub skip: u32,
}

impl DiskSwitches {
    /// Called at each operation that may be a crash point: `Err` if the process is already
    /// dead or dies right here, before the operation; `Ok(true)` if it dies right after it.
    fn crash_point(&self, point: CrashPoint) -> io::Result<bool> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.tripped.load(SeqCst) {
            return Err(crashing());
        }
        let mut armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        match armed.as_mut() {
            Some(a) if a.point == point => {
                if a.skip > 0 {
                    a.skip -= 1;
                    return Ok(false);
                }
                let after = a.after;
                *armed = None;
                self.tripped.store(true, SeqCst);
                if after { Ok(true) } else { Err(crashing()) }
            }
            _ => Ok(false),
        }
    }

    /// Whether the process is dead (an armed crash point was reached).
    fn dead(&self) -> io::Result<()> {
        if self.tripped.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crashing());
        }
        Ok(())
    }
}

/// The error every disk operation of a process that reached its armed crash point gets.
fn crashing() -> io::Error {
    io::Error::other("the process is crashing (simulated)")
}

/// The crash point, if any, that an operation on `path` is.
fn write_point(path: &Path) -> Option<CrashPoint> {
    let p = path.to_string_lossy();
    if p.ends_with(".log") {
        Some(CrashPoint::SegmentWrite)
    } else if p.ends_with(".index") || p.ends_with(".timeindex") {
        Some(CrashPoint::IndexWrite)
    } else {
        None
    }
}

impl DiskSwitches {
    /// Whether this read or write fails, and how (the disk faults the nemesis switches).
    fn fault(&self, rng: &SharedRng, writing: bool) -> Option<io::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        if writing && self.full.load(Relaxed) {
            return Some(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (simulated)",
            ));
        }
        let p = self.io_error_per_mille.load(Relaxed);
        (p > 0 && rng.gen_range(0..1000) < u64::from(p))
            .then(|| io::Error::other("I/O error (simulated)"))
    }
}

/// Where a broker's disk reports: the journal, and which broker process it belongs to.
#[derive(Clone)]
pub struct DiskOwner {
    pub journal: JournalRef,
    /// The broker's index.
    pub host: usize,
    /// Which start of its process.
    pub incarnation: u32,
}

/// turmoil's filesystem behind runnel's `Disk`.
#[derive(Clone)]
pub struct SimDisk {
    /// Extra behaviour.
    faults: Arc<DiskFaults>,
    /// Draws fsync latencies, I/O errors and writeback (the host's `disk/...` stream).
    rng: SharedRng,
    /// Where operations and renames are reported (None for clients, which use no disk).
    owner: Option<DiskOwner>,
}

/// Operation codes in the trace.
#[derive(Clone, Copy)]
enum Op {
    Read = 1,
    Write = 2,
    SetLen = 3,
    Sync = 4,
    Open = 5,
    Rename = 6,
    Remove = 7,
    SyncDir = 8,
    List = 9,
    CreateDir = 10,
    RemoveDir = 11,
}

fn path_hash(path: &Path) -> u64 {
    fnv(FNV_OFFSET, path.as_os_str().as_encoded_bytes())
}

/// An operation's outcome in the trace: 0 for success, else a code for the error.
fn outcome<T>(r: &io::Result<T>) -> u64 {
    match r {
        Ok(_) => 0,
        Err(e) => 1 + e.kind() as u64,
    }
}

impl SimDisk {
    pub fn new(faults: DiskFaults, rng: SharedRng, owner: Option<DiskOwner>) -> SimDisk {
        SimDisk {
            faults: Arc::new(faults),
            rng,
            owner,
        }
    }

    /// Folds an operation and its outcome into the trace.
    fn trace(&self, op: Op, path: u64, a: u64, b: u64, result: u64) {
        if let Some(o) = &self.owner {
            o.journal
                .lock()
                .mix(&[o.host as u64, op as u64, path, a, b, result]);
        }
    }

    /// Tells the journal what the broker did to a file the checker may be tracking.
    fn observe(&self, what: Observed) {
        if let Some(o) = &self.owner {
            o.journal
                .lock()
                .observe(crate::journal::now(), o.host, o.incarnation, what);
        }
    }

    fn latency(&self) -> Duration {
        let r = &self.faults.fsync_latency;
        if r.end <= r.start {
            return r.start;
        }
        let span = (r.end - r.start).as_nanos() as u64;
        r.start + Duration::from_nanos(self.rng.gen_range(0..span))
    }

    /// A future that waits the fsync latency, then runs `f` unless the disk lies about it.
    /// The lying fsync is a bug in syncing partition data: it hits topic segments (`.log`
    /// files) only, not the metadata log (losing the cluster's topics would only show as a
    /// broker without topics) nor checkpoints. The lying directory sync hits every directory.
    fn slow_sync(
        &self,
        path: &Path,
        op: Op,
        f: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> BoxFuture<'static, io::Result<()>> {
        let delay = self.latency();
        let p = path.to_string_lossy();
        let lying = match op {
            Op::SyncDir => self.faults.lying_dir_sync,
            _ => {
                self.faults.lying_fsync && p.ends_with(".log") && !p.contains("__cluster_metadata")
            }
        };
        let disk = self.clone();
        let ph = path_hash(path);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if disk.faults.switches.dead().is_err() {
                // A dead process never learns how its last fsync went.
                std::future::pending::<()>().await;
            }
            let r = if lying { Ok(()) } else { f() };
            disk.trace(op, ph, 0, 0, outcome(&r));
            r
        })
    }
}

/// A file on turmoil's filesystem.
struct SimFile {
    file: simfs::File,
    /// Where it is (for the planted lie, which spares the metadata log).
    path: std::path::PathBuf,
    /// The path's hash, for the trace.
    path_hash: u64,
    disk: SimDisk,
    /// Writes since the file was last synced or written back.
    dirty_writes: std::sync::atomic::AtomicU32,
}

impl SimFile {
    /// The simulated kernel after a write: a random partial sync, or a writeback once enough
    /// writes are dirty. Durable data, not a promise the log relies on.
    fn written(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let wb = self.disk.faults.writeback;
        let dirty = self.dirty_writes.fetch_add(1, Relaxed) + 1;
        let by_chance = wb.sync_per_million > 0
            && self.disk.rng.gen_range(0..1_000_000) < u64::from(wb.sync_per_million);
        if by_chance || wb.dirty_writes.is_some_and(|n| dirty >= n) {
            self.dirty_writes.store(0, Relaxed);
            let _ = self.file.sync_data();
        }
    }
}

impl DiskFile for SimFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let r = (|| {
            self.disk.faults.switches.dead()?;
            if let Some(e) = self.disk.faults.switches.fault(&self.disk.rng, false) {
                return Err(e);
            }
            FileExt::read_at(&self.file, buf, pos)
        })();
        let n = r.as_ref().map_or(0, |n| *n as u64);
        self.disk
            .trace(Op::Read, self.path_hash, pos, n, outcome(&r));
        r
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let r = (|| {
            let switches = &self.disk.faults.switches;
            switches.dead()?;
            if let Some(e) = switches.fault(&self.disk.rng, true) {
                return Err(e);
            }
            let dies_after = match write_point(&self.path) {
                Some(point) => switches.crash_point(point)?,
                None => false,
            };
            FileExt::write_all_at(&self.file, buf, pos)?;
            if dies_after {
                return Err(crashing());
            }
            self.written();
            Ok(())
        })();
        let len = buf.len() as u64;
        self.disk
            .trace(Op::Write, self.path_hash, pos, len, outcome(&r));
        r
    }

    fn len(&self) -> io::Result<u64> {
        self.disk.faults.switches.dead()?;
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let r = (|| {
            self.disk.faults.switches.dead()?;
            self.file.set_len(len)?;
            self.written();
            Ok(())
        })();
        self.disk
            .trace(Op::SetLen, self.path_hash, len, 0, outcome(&r));
        r
    }

    fn sync(self: Arc<Self>) -> BoxFuture<'static, io::Result<()>> {
        let disk = self.disk.clone();
        let path = self.path.clone();
        disk.slow_sync(&path, Op::Sync, move || {
            self.dirty_writes
                .store(0, std::sync::atomic::Ordering::Relaxed);
            match self.file.sync_data() {
                // POSIX syncs through the open descriptor, which outlives an unlink; turmoil's
                // shim syncs by path. A file deleted meanwhile has nothing left to make
                // durable. (turmoil does not follow a rename either: a file renamed before its
                // sync is never made durable under its new name; see docs/simulation.md.)
                Err(e) if e.to_string().contains("No such file") => Ok(()),
                other => other,
            }
        })
    }
}

impl Disk for SimDisk {
    fn open(&self, path: &Path, mode: FileMode) -> io::Result<Arc<dyn DiskFile>> {
        let r = (|| {
            let switches = &self.faults.switches;
            switches.dead()?;
            let creating = matches!(mode, FileMode::Create | FileMode::CreateTruncate)
                && path.to_string_lossy().ends_with(".log")
                && !simfs::exists(path);
            let dies_after = creating && switches.crash_point(CrashPoint::SegmentCreate)?;
            let mut o = simfs::OpenOptions::new();
            match mode {
                FileMode::Read => o.read(true),
                FileMode::ReadWrite => o.read(true).write(true),
                FileMode::Create => o.read(true).write(true).create(true),
                FileMode::CreateTruncate => o.read(true).write(true).create(true).truncate(true),
            };
            let file = o.open(path)?;
            if dies_after {
                return Err(crashing());
            }
            Ok(Arc::new(SimFile {
                file,
                path: path.to_path_buf(),
                path_hash: path_hash(path),
                disk: self.clone(),
                dirty_writes: std::sync::atomic::AtomicU32::new(0),
            }) as Arc<dyn DiskFile>)
        })();
        self.trace(Op::Open, path_hash(path), mode as u64, 0, outcome(&r));
        r
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let r = self
            .faults
            .switches
            .dead()
            .and_then(|()| simfs::create_dir_all(path));
        self.trace(Op::CreateDir, path_hash(path), 0, 0, outcome(&r));
        r
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let r = (|| {
            self.faults.switches.dead()?;
            let mut out = Vec::new();
            for entry in simfs::read_dir(path)? {
                let entry = entry?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let is_dir = entry.file_type()?.is_dir();
                out.push(DirEntry { name, is_dir });
            }
            // turmoil lists from a hash set: sort, or the order would differ from run to run.
            out.sort();
            Ok(out)
        })();
        let n = r.as_ref().map_or(0, |v| v.len() as u64);
        self.trace(Op::List, path_hash(path), n, 0, outcome(&r));
        r
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let r = (|| {
            let dies_after = self.faults.switches.crash_point(CrashPoint::Rename)?;
            simfs::rename(from, to)?;
            // The contents now under `to`: a version the checker must accept there once the
            // rename is durable, even before anyone declares it.
            if let Ok(bytes) = simfs::read(to) {
                self.observe(Observed::Renamed {
                    to: to.to_path_buf(),
                    crc: crc32fast::hash(&bytes),
                    len: bytes.len(),
                });
            }
            if dies_after {
                return Err(crashing());
            }
            Ok(())
        })();
        self.trace(Op::Rename, path_hash(from), path_hash(to), 0, outcome(&r));
        r
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let r = (|| {
            let dies_after = self.faults.switches.crash_point(CrashPoint::Delete)?;
            simfs::remove_file(path)?;
            self.observe(Observed::Removed {
                path: path.to_path_buf(),
            });
            if dies_after {
                return Err(crashing());
            }
            Ok(())
        })();
        self.trace(Op::Remove, path_hash(path), 0, 0, outcome(&r));
        r
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let r = self
            .faults
            .switches
            .dead()
            .and_then(|()| simfs::remove_dir_all(path));
        self.trace(Op::RemoveDir, path_hash(path), 0, 0, outcome(&r));
        r
    }

    fn exists(&self, path: &Path) -> bool {
        simfs::exists(path)
    }

    fn sync_dir(&self, path: &Path) -> BoxFuture<'static, io::Result<()>> {
        let path = path.to_path_buf();
        // `File::open(dir).sync_all()` does nothing in the shim; its `sync_dir` does.
        let p = path.clone();
        self.slow_sync(&p, Op::SyncDir, move || simfs::sync_dir(&path))
    }

    fn planted_bugs(&self) -> PlantedBugs {
        self.faults.planted
    }
}

/// turmoil's network behind runnel's `Network`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimNetwork;

struct SimListener {
    inner: turmoil::net::TcpListener,
}

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Box<dyn Connection>, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            Ok((Box::new(stream) as Box<dyn Connection>, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl Network for SimNetwork {
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            // A host listens on all its addresses; only the port matters.
            let port: u16 = addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("bad address {addr}"))
                })?;
            let inner =
                turmoil::net::TcpListener::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).await?;
            Ok(Box::new(SimListener { inner }) as Box<dyn Listener>)
        })
    }

    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Connection>>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as Box<dyn Connection>)
        })
    }
}

/// turmoil's wall clock: the pinned epoch plus simulated time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimClock;

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        turmoil::since_epoch().map_or(0, |d| d.as_millis() as i64)
    }
}

/// The epoch every simulation starts at: 2023-11-14T22:13:20Z, fixed so runs repeat.
pub const EPOCH_MS: u64 = 1_700_000_000_000;

/// The simulation's start time, for `turmoil::Builder::epoch`.
pub fn epoch() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_millis(EPOCH_MS)
}

/// A simulated `Env` for one host, with `rng` for its software and `disk_rng` for its disk's
/// faults: `owner` is set for a broker, whose disk reports to the journal and whose storage
/// declares its state to the probe.
pub fn sim_env(
    faults: DiskFaults,
    rng: SharedRng,
    disk_rng: SharedRng,
    owner: Option<DiskOwner>,
) -> Env {
    let probe: Arc<dyn Probe> = match &owner {
        Some(o) => Arc::new(HostProbe(o.clone())),
        None => Arc::new(runnel::env::NoProbe),
    };
    Env {
        disk: Arc::new(SimDisk::new(faults, disk_rng, owner)),
        net: Arc::new(SimNetwork),
        clock: Arc::new(SimClock),
        rng,
        probe,
    }
}

/// A broker process's probe: its declarations go to the journal.
struct HostProbe(DiskOwner);

/// The partition directory's name (`t0-1`) from its path.
fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Probe for HostProbe {
    fn event(&self, event: ProbeEvent<'_>) {
        let what = match event {
            ProbeEvent::Recovered {
                dir,
                state,
                producers,
            } => Observed::Recovered {
                dir: dir_name(dir),
                state,
                producers: producers.to_vec(),
            },
            ProbeEvent::State { dir, state } => Observed::State {
                dir: dir_name(dir),
                state,
            },
            ProbeEvent::Deleted { dir } => Observed::Deleted { dir: dir_name(dir) },
            ProbeEvent::Appended { dir, batches } => Observed::Appended {
                dir: dir_name(dir),
                batches: batches.to_vec(),
            },
            ProbeEvent::IsrExpanding {
                dir,
                leader_epoch,
                added,
            } => Observed::IsrExpanding {
                dir: dir_name(dir),
                leader_epoch,
                added: added.to_vec(),
            },
            ProbeEvent::Leading {
                dir,
                leader_epoch,
                epoch_start,
            } => Observed::Leading {
                dir: dir_name(dir),
                leader_epoch,
                epoch_start,
            },
            ProbeEvent::Truncated { dir, offset } => Observed::Truncated {
                dir: dir_name(dir),
                offset,
            },
            ProbeEvent::AcksAllAnswered { dir, batches } => Observed::AcksAllAnswered {
                dir: dir_name(dir),
                batches: batches.to_vec(),
            },
            ProbeEvent::FileDurable { path, bytes } => Observed::FileDurable {
                path: path.to_path_buf(),
                crc: crc32fast::hash(bytes),
                len: bytes.len(),
            },
            ProbeEvent::OffsetsAppended { dir, end, commits } => Observed::OffsetsAppended {
                dir: dir_name(dir),
                end,
                commits: commits
                    .iter()
                    .map(|c| {
                        (
                            c.group.clone(),
                            Tp {
                                topic: c.topic.clone(),
                                partition: c.partition,
                            },
                            c.offset,
                        )
                    })
                    .collect(),
            },
            ProbeEvent::GroupAssigned {
                group,
                generation,
                members,
            } => Observed::GroupAssigned {
                group: group.to_string(),
                generation,
                members: members
                    .iter()
                    .map(|(m, ps)| {
                        let tps = ps
                            .iter()
                            .map(|(t, p)| Tp {
                                topic: t.clone(),
                                partition: *p,
                            })
                            .collect();
                        (m.clone(), tps)
                    })
                    .collect(),
            },
            ProbeEvent::GroupDeleted { group } => Observed::GroupDeleted {
                group: group.to_string(),
            },
            ProbeEvent::QuorumOpened {
                quorum,
                snapshot,
                entries,
            } => Observed::QuorumOpened {
                quorum,
                snapshot,
                entries: entries.iter().map(EntryId::of).collect(),
            },
            ProbeEvent::QuorumReady {
                persisted,
                snapshot,
                log_start,
                reset_log,
                truncated_to,
                appended,
                leader,
                epoch,
                high_watermark,
            } => Observed::QuorumReady {
                persisted,
                snapshot,
                log_start,
                reset_log,
                truncated_to,
                appended: appended.iter().map(EntryId::of).collect(),
                leader,
                epoch,
                high_watermark,
            },
            ProbeEvent::MetadataApplied { offset, state } => Observed::MetadataApplied {
                offset,
                state: AppliedState(Arc::new(state.clone())),
            },
            ProbeEvent::MetadataRestored { offset, state } => Observed::MetadataRestored {
                offset,
                state: AppliedState(Arc::new(state.clone())),
            },
        };
        let o = &self.0;
        let mut journal = o.journal.lock();
        let at = crate::journal::now();
        // The history checker needs it too: generation numbers repeat across it.
        let deleted = match &what {
            Observed::GroupDeleted { group } => Some(group.clone()),
            _ => None,
        };
        journal.observe(at, o.host, o.incarnation, what);
        if let Some(group) = deleted {
            journal.record(at, Event::GroupDeleted { group });
        }
    }

    fn observing(&self) -> bool {
        true
    }
}
