//! A leader's disk (feature `durable`): the records and checkpoints of a durable replica in a
//! [redb](https://docs.rs/redb) file, written by a thread of its own with group commit.
//!
//! Why redb: a pure-Rust embedded store (no C toolchain, as with snow for Noise), ACID with
//! copy-on-write B-trees and a checksummed commit, so a process killed mid-write reopens at its
//! last commit; `Durability::Immediate` fsyncs each commit, and it has an integrity check of its
//! own ([`Disk::check_integrity`]). It is maintained and used in production (it backs, among
//! others, the Iroh and Fuel stores). sled is unmaintained since 2021; RocksDB needs a C++
//! toolchain; fjall's LSM tree is built for large write-heavy sets, where our writes are a log
//! that a checkpoint replaces.
//!
//! The file holds two tables:
//! - `records`: position → a [`Record`] (postcard), appended in the order the replica emitted
//!   them;
//! - `meta`: `"image"` → the last [`Image`] (postcard), which covers every record before it
//!   (they are deleted when it is written), and `"format"` → the file format's version.
//!
//! [`Disk::open`] reads both and hands them to [`Replica::resume`](roundtable_runtime::Replica::resume);
//! a file that is not a roundtable disk, is corrupt or truncated is an error naming the file,
//! never a panic and never an empty start.
//!
//! The leader never waits for the disk: it hands each input's records to the [`Writer`] thread
//! and goes on; the thread commits everything that queued while it was syncing in one
//! transaction (group commit: many writes, one fsync), then tells the leader how far it got.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use roundtable_runtime::wire::PeerMessage;
use roundtable_runtime::LeaderId;
use tokio::sync::oneshot;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use roundtable_runtime::{Image, Record, ResumeError};

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The version of the layout above; a file of another version is refused.
const FORMAT: u32 = 1;

/// What went wrong with a leader's disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be opened or created (missing directory, permissions, not a redb file,
    /// another process holds it).
    #[error("cannot open the leader's disk {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What redb said.
        source: Box<redb::Error>,
    },
    /// The file is a redb file but not a roundtable disk of this format.
    #[error("{path} is not a roundtable disk of format {FORMAT} ({found})")]
    Format {
        /// The file.
        path: PathBuf,
        /// What it holds instead.
        found: String,
    },
    /// Reading or writing failed (a full or unwritable disk, an I/O error, corruption found
    /// while reading).
    #[error("the leader's disk {path} failed: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What redb said.
        source: Box<redb::Error>,
    },
    /// redb gave up on the file (it panicked reading a page it cannot make sense of): the file
    /// is corrupt. Caught, so that a corrupt disk is an error, never a crash of the process.
    #[error("the leader's disk {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What redb said as it gave up.
        reason: String,
    },
    /// A record could not be encoded; the commit wrote nothing.
    #[error("cannot write to the leader's disk {path}: {source}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// Why.
        source: roundtable_runtime::replica::EncodeError,
    },
    /// The writer thread stopped abnormally and took the open file with it.
    #[error("the leader's disk writer thread stopped abnormally")]
    WriterLost,
    /// What the file holds cannot be resumed from.
    #[error("the leader's disk {path} cannot be resumed from: {source}")]
    Resume {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ResumeError,
    },
}

/// What a disk held when it was opened.
#[derive(Debug, Default)]
pub struct Stored {
    /// The last checkpoint.
    pub image: Option<Image>,
    /// The records after it, in order.
    pub records: Vec<Record>,
}

impl Stored {
    /// Whether the disk held nothing (a first start, or a lost disk).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.image.is_none() && self.records.is_empty()
    }
}

/// A leader's disk: one redb file.
#[derive(Debug)]
pub struct Disk {
    db: redb::Database,
    path: PathBuf,
    /// The position of the next record.
    next: u64,
}

impl Disk {
    /// Opens (or creates) the disk at `path` and reads what it holds.
    pub fn open(path: &Path) -> Result<(Disk, Stored), DiskError> {
        guarded(path, || {
            let open_error = |e: redb::Error| DiskError::Open { path: path.into(), source: Box::new(e) };
            let db = redb::Database::create(path).map_err(|e| open_error(e.into()))?;
            let mut disk = Disk { db, path: path.into(), next: 0 };
            let stored = disk.read_unguarded()?;
            Ok((disk, stored))
        })
    }

    /// Reads the image and records again.
    pub fn read(&mut self) -> Result<Stored, DiskError> {
        let path = self.path.clone();
        guarded(&path, || self.read_unguarded())
    }

    fn io(&self, e: impl Into<redb::Error>) -> DiskError {
        DiskError::Io { path: self.path.clone(), source: Box::new(e.into()) }
    }

    fn encode_error(&self, source: roundtable_runtime::replica::EncodeError) -> DiskError {
        DiskError::Encode { path: self.path.clone(), source }
    }

    fn resume_error(&self, source: ResumeError) -> DiskError {
        DiskError::Resume { path: self.path.clone(), source }
    }

    /// Whether the file is a roundtable disk of this format (`false`: a new, empty file; an
    /// error: something else).
    fn initialized(&self) -> Result<bool, DiskError> {
        let format_error = |found: String| DiskError::Format { path: self.path.clone(), found };
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                let tables = txn.list_tables().map_err(|e| self.io(e))?.count();
                return if tables == 0 {
                    Ok(false)
                } else {
                    Err(format_error(format!("{tables} tables of another kind")))
                };
            }
            Err(e) => return Err(self.io(e)),
        };
        let format = meta.get("format").map_err(|e| self.io(e))?.map(|bytes| bytes.value().to_vec());
        match format {
            Some(bytes) if bytes == FORMAT.to_le_bytes() => Ok(true),
            Some(bytes) => Err(format_error(format!("format bytes {bytes:02x?}"))),
            None => Err(format_error("no format".into())),
        }
    }

    /// Reads the image and records; writes the format on a new file.
    fn read_unguarded(&mut self) -> Result<Stored, DiskError> {
        if !self.initialized()? {
            // A new file: write the format (an existing one is only read, so that a full disk
            // can still be read back).
            let txn = self.db.begin_write().map_err(|e| self.io(e))?;
            {
                let mut meta = txn.open_table(META).map_err(|e| self.io(e))?;
                meta.insert("format", FORMAT.to_le_bytes().as_slice()).map_err(|e| self.io(e))?;
                txn.open_table(RECORDS).map_err(|e| self.io(e))?;
            }
            txn.commit().map_err(|e| self.io(e))?;
        }
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let meta = txn.open_table(META).map_err(|e| self.io(e))?;
        let image = match meta.get("image").map_err(|e| self.io(e))? {
            Some(bytes) => Some(Image::decode(bytes.value()).map_err(|e| self.resume_error(e))?),
            None => None,
        };
        let table = txn.open_table(RECORDS).map_err(|e| self.io(e))?;
        let mut records = Vec::new();
        for row in table.iter().map_err(|e| self.io(e))? {
            let (position, bytes) = row.map_err(|e| self.io(e))?;
            let position = position.value();
            records.push(Record::decode(bytes.value(), position).map_err(|e| self.resume_error(e))?);
            self.next = position + 1;
        }
        Ok(Stored { image, records })
    }

    /// Appends `records` in one transaction, fsynced before it returns. With `image` (a
    /// checkpoint taken before `records`), the image replaces the one stored and every record
    /// stored. A [`Record::Recovering`] voids everything before it, so the records and image
    /// before it are deleted in the same transaction.
    pub fn commit(&mut self, records: &[Record], image: Option<&Image>) -> Result<(), DiskError> {
        let path = self.path.clone();
        guarded(&path, || self.commit_unguarded(records, image))
    }

    fn commit_unguarded(&mut self, records: &[Record], image: Option<&Image>) -> Result<(), DiskError> {
        let txn = self.db.begin_write().map_err(|e| self.io(e))?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| self.io(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.io(e))?;
            let plan = CommitPlan::of(records, image);
            if plan.clear {
                table.retain(|_, _| false).map_err(|e| self.io(e))?;
                meta.remove("image").map_err(|e| self.io(e))?;
            }
            if let Some(image) = plan.image {
                let bytes = image.encode().map_err(|e| self.encode_error(e))?;
                meta.insert("image", bytes.as_slice()).map_err(|e| self.io(e))?;
            }
            for record in plan.append {
                let bytes = record.encode().map_err(|e| self.encode_error(e))?;
                table.insert(self.next, bytes.as_slice()).map_err(|e| self.io(e))?;
                self.next += 1;
            }
        }
        txn.commit().map_err(|e| self.io(e))
    }

    /// redb's own check of the file (checksums of every page and the allocator state). Needs the
    /// disk to be idle.
    pub fn check_integrity(&mut self) -> Result<bool, DiskError> {
        let path = self.path.clone();
        guarded(&path, || {
            self.db.check_integrity().map_err(|e| DiskError::Io { path: self.path.clone(), source: Box::new(e.into()) })
        })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Runs `f`, turning a panic inside redb (which it resorts to on some pages it cannot make sense
/// of) into [`DiskError::Corrupt`].
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, DiskError>) -> Result<T, DiskError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "redb gave up reading it".to_owned());
        Err(DiskError::Corrupt { path: path.into(), reason })
    })
}

/// A leader's disk as the leader actor drives it: the writer thread, the batches in flight, the
/// messages held until their batch is durable, and the writes waiting for it.
#[derive(Debug)]
pub(crate) struct DiskShell {
    /// Where the records go.
    backend: Backend,
    /// The last batch handed to the writer.
    submitted: u64,
    /// The last batch the writer synced.
    synced: u64,
    /// The batches handed over and not synced yet, with their record counts, oldest first.
    unsynced: VecDeque<(u64, usize)>,
    /// Records in `unsynced`.
    unsynced_records: usize,
    /// Messages that leave once their batch is synced, in order.
    held: VecDeque<(u64, LeaderId, PeerMessage)>,
    /// Writes acknowledged once their batch is synced.
    waiters: Vec<(u64, oneshot::Sender<Result<(), String>>)>,
    /// Records since the last checkpoint.
    since_image: usize,
    /// Take a checkpoint after this many records.
    image_every: usize,
    /// Why the disk failed, once it did.
    failed: Option<String>,
    /// What the writer did.
    counters: Arc<DiskCounters>,
    /// Messages dropped because too many were held.
    held_dropped: u64,
}

/// The most messages a durable leader holds until their batch is synced; beyond, they are
/// dropped (counted) and anti-entropy repairs.
pub const HELD_MAX: usize = 65_536;

/// The most records handed to the disk and not synced before client writes are refused
/// ([`crate::LeaderError::DiskBehind`]). Records, not batches: a leader that receives many
/// small messages makes a batch of each, and the writer commits all that queued in one
/// transaction anyway.
pub const UNSYNCED_MAX: u64 = 65_536;

impl DiskShell {
    /// Opens the disk at `path`; returns what it held.
    pub(crate) fn open(path: &Path, image_every: usize) -> Result<(DiskShell, Stored), DiskError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DiskError::Dir { path: dir.into(), source })?;
        }
        let (disk, stored) = Disk::open(path)?;
        Ok((DiskShell::with(Backend::File { idle: Some(disk), writer: None }, &stored, image_every), stored))
    }

    /// A simulated disk (see [`MemoryDisk`]); returns what it held.
    pub(crate) fn memory(disk: MemoryDisk, sync_delay: Duration, image_every: usize) -> (DiskShell, Stored) {
        let stored = disk.stored();
        let backend = Backend::Memory { disk, delay: sync_delay, pending: VecDeque::new(), report: None };
        (DiskShell::with(backend, &stored, image_every), stored)
    }

    fn with(backend: Backend, stored: &Stored, image_every: usize) -> DiskShell {
        DiskShell {
            backend,
            submitted: 0,
            synced: 0,
            unsynced: VecDeque::new(),
            unsynced_records: 0,
            held: VecDeque::new(),
            waiters: Vec::new(),
            since_image: stored.records.len(),
            image_every: image_every.max(1),
            failed: None,
            counters: Arc::default(),
            held_dropped: 0,
        }
    }

    /// Starts the writer thread (if it is not running); `report` carries its reports to the
    /// leader.
    pub(crate) fn run(&mut self, report: impl Fn(Written) + Send + Sync + 'static) {
        match &mut self.backend {
            Backend::File { idle, writer } => {
                let Some(disk) = idle.take() else { return };
                match Writer::spawn(disk, self.counters.clone(), report) {
                    Ok(running) => *writer = Some(running),
                    Err(e) => self.fail(format!("cannot start the disk writer thread: {e}")),
                }
            }
            Backend::Memory { report: slot, .. } => *slot = Some(Reporter(Arc::new(report))),
        }
    }

    /// Stops the writer (a crash): what it was given is committed, what was held is dropped,
    /// and writes waiting for the disk are told the leader crashed.
    pub(crate) fn stop(&mut self) {
        match &mut self.backend {
            Backend::File { idle, writer } => {
                if let Some(running) = writer.take() {
                    *idle = running.stop();
                }
            }
            // A simulated crash loses what was not synced.
            Backend::Memory { pending, report, .. } => {
                pending.clear();
                *report = None;
            }
        }
        self.held.clear();
        for (_, waiter) in self.waiters.drain(..) {
            let _ = waiter.send(Err("the leader crashed".into()));
        }
        // Joined (or dropped): nothing is in flight. Batch numbers keep counting across
        // restarts, so a late report of the stopped writer releases nothing of the next life.
        self.synced = self.submitted;
        self.unsynced.clear();
        self.unsynced_records = 0;
    }

    /// Reads the disk again (after [`DiskShell::stop`]), for a restart.
    pub(crate) fn reread(&mut self) -> Result<Stored, DiskError> {
        let stored = match &mut self.backend {
            Backend::File { idle: Some(disk), .. } => disk.read()?,
            Backend::File { .. } => return Err(DiskError::WriterLost),
            Backend::Memory { disk, .. } => disk.stored(),
        };
        self.since_image = stored.records.len();
        Ok(stored)
    }

    /// Fsynced commits and records written so far (over every life of the leader).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.counters.commits.load(Ordering::Relaxed), self.counters.records.load(Ordering::Relaxed))
    }

    /// Why the disk failed, if it did: the leader refuses writes.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Whether `count` more records make a checkpoint due.
    pub(crate) fn image_due(&self, count: usize) -> bool {
        self.since_image + count >= self.image_every
    }

    /// Hands an input's records (and a checkpoint taken after them) to the writer.
    pub(crate) fn submit(&mut self, records: Vec<Record>, image: Option<Image>) {
        if self.failed.is_some() {
            return;
        }
        self.since_image = if image.is_some() { 0 } else { self.since_image + records.len() };
        self.submitted += 1;
        self.unsynced.push_back((self.submitted, records.len()));
        self.unsynced_records += records.len();
        let job = Job::Commit { batch: self.submitted, records, image: image.map(Box::new) };
        let handed = match &mut self.backend {
            Backend::File { writer, .. } => writer.as_ref().is_some_and(|w| w.submit(job)),
            Backend::Memory { delay, pending, report: Some(report), .. } => {
                // Synced `delay` later (simulated time), unless the leader crashes first.
                pending.push_back(job);
                let (report, delay, batch) = (report.clone(), *delay, self.submitted);
                actix::spawn(async move {
                    tokio::time::sleep(delay).await;
                    (report.0)(Written::Synced(batch));
                });
                true
            }
            Backend::Memory { report: None, .. } => false,
        };
        if !handed {
            self.fail("the disk writer is gone".into());
        }
    }

    /// Whether a message must wait for the disk: some batch is not synced yet (or the disk
    /// failed, and then it never leaves).
    pub(crate) fn must_hold(&self) -> bool {
        self.submitted > self.synced || self.failed.is_some()
    }

    /// Holds a message until the last batch submitted is synced. Beyond [`HELD_MAX`] held
    /// messages it is dropped instead (counted; anti-entropy sends what it carried again).
    pub(crate) fn hold(&mut self, to: LeaderId, msg: PeerMessage) {
        if self.held.len() >= HELD_MAX {
            self.held_dropped += 1;
            return;
        }
        self.held.push_back((self.submitted, to, msg));
    }

    /// Records handed over and not synced yet, when there are more than [`UNSYNCED_MAX`]: the
    /// disk is behind, and client writes are refused until it catches up.
    pub(crate) fn behind(&self) -> Option<u64> {
        let unsynced = self.unsynced_records as u64;
        (unsynced > UNSYNCED_MAX).then_some(unsynced)
    }

    /// Messages dropped because [`HELD_MAX`] were held already.
    pub(crate) fn held_dropped(&self) -> u64 {
        self.held_dropped
    }

    /// A receiver told when the last batch submitted is synced (at once if it is).
    pub(crate) fn wait(&mut self) -> oneshot::Receiver<Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        if let Some(reason) = &self.failed {
            let _ = tx.send(Err(reason.clone()));
        } else if self.submitted <= self.synced {
            let _ = tx.send(Ok(()));
        } else {
            self.waiters.push((self.submitted, tx));
        }
        rx
    }

    /// The writer synced every batch up to `upto`: returns the messages that may leave now.
    pub(crate) fn synced(&mut self, upto: u64) -> Vec<(LeaderId, PeerMessage)> {
        if let Backend::Memory { disk, pending, .. } = &mut self.backend {
            while pending.front().is_some_and(|Job::Commit { batch, .. }| *batch <= upto) {
                if let Some(Job::Commit { records, image, .. }) = pending.pop_front() {
                    disk.commit(&records, image.as_deref());
                    self.counters.commits.fetch_add(1, Ordering::Relaxed);
                    self.counters.records.fetch_add(records.len() as u64, Ordering::Relaxed);
                }
            }
        }
        self.synced = self.synced.max(upto);
        let synced = self.synced;
        while self.unsynced.front().is_some_and(|(batch, _)| *batch <= synced) {
            if let Some((_, records)) = self.unsynced.pop_front() {
                self.unsynced_records -= records;
            }
        }
        let (done, waiting): (Vec<_>, Vec<_>) = self.waiters.drain(..).partition(|(batch, _)| *batch <= synced);
        self.waiters = waiting;
        for (_, waiter) in done {
            let _ = waiter.send(Ok(()));
        }
        let mut released = Vec::new();
        while self.held.front().is_some_and(|(batch, _, _)| *batch <= synced) {
            if let Some((_, to, msg)) = self.held.pop_front() {
                released.push((to, msg));
            }
        }
        released
    }

    /// The disk failed: nothing more is written, held messages never leave, waiting writes fail.
    pub(crate) fn fail(&mut self, reason: String) {
        for (_, waiter) in self.waiters.drain(..) {
            let _ = waiter.send(Err(reason.clone()));
        }
        self.held.clear();
        self.failed = Some(reason);
    }
}

/// A leader's disk, as [`crate::LeaderSpec::disk`] names it.
#[derive(Debug, Clone)]
pub enum DiskSpec {
    /// A redb file (created, with its directory, if missing).
    File(PathBuf),
    /// A simulated disk that syncs a batch `sync_delay` after it is handed over.
    Memory {
        /// The disk.
        disk: MemoryDisk,
        /// How long a sync takes.
        sync_delay: Duration,
    },
}

impl DiskSpec {
    /// Opens the disk; returns what it held.
    pub(crate) fn open(&self, image_every: usize) -> Result<(DiskShell, Stored), DiskError> {
        match self {
            DiskSpec::File(path) => DiskShell::open(path, image_every),
            DiskSpec::Memory { disk, sync_delay } => Ok(DiskShell::memory(disk.clone(), *sync_delay, image_every)),
        }
    }

    /// The file, for errors (empty for a simulated disk).
    pub(crate) fn path(&self) -> PathBuf {
        match self {
            DiskSpec::File(path) => path.clone(),
            DiskSpec::Memory { .. } => PathBuf::from("(simulated disk)"),
        }
    }
}

/// Where a leader's records go.
#[derive(Debug)]
enum Backend {
    /// A redb file, written by a thread of its own.
    File {
        /// The disk while no writer runs (before the start, after a crash).
        idle: Option<Disk>,
        /// The writer thread, while it runs.
        writer: Option<Writer>,
    },
    /// A simulated disk: a batch is synced `delay` after it is handed over (simulated time).
    Memory {
        /// The disk.
        disk: MemoryDisk,
        /// How long a sync takes.
        delay: Duration,
        /// Batches handed over and not yet synced: lost if the leader crashes first.
        pending: VecDeque<Job>,
        /// Tells the leader a batch is synced.
        report: Option<Reporter>,
    },
}

/// A callback to the leader.
#[derive(Clone)]
struct Reporter(Arc<dyn Fn(Written) + Send + Sync>);

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter")
    }
}

/// A simulated disk, for the simulator: what a leader synced, kept in memory outside the leader
/// so that it survives the leader's crash, and lost by [`MemoryDisk::lose`] (a disk failure).
/// Clones share the disk. Build leaders on them with
/// [`ClusterBuilder::memory_disks`](crate::ClusterBuilder::memory_disks).
#[derive(Debug, Clone, Default)]
pub struct MemoryDisk {
    state: Arc<std::sync::Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    image: Option<Image>,
    records: Vec<Record>,
}

impl MemoryDisk {
    /// An empty disk.
    #[must_use]
    pub fn new() -> Self {
        MemoryDisk::default()
    }

    /// What the disk holds.
    #[must_use]
    pub fn stored(&self) -> Stored {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Stored { image: state.image.clone(), records: state.records.clone() }
    }

    /// The disk fails: everything on it is gone.
    pub fn lose(&self) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *state = MemoryState::default();
    }

    /// Like [`Disk::commit`].
    fn commit(&self, records: &[Record], image: Option<&Image>) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let plan = CommitPlan::of(records, image);
        if plan.clear {
            *state = MemoryState::default();
        }
        if let Some(image) = plan.image {
            state.image = Some(image.clone());
        }
        state.records.extend_from_slice(plan.append);
    }
}

/// What committing `records`, after a checkpoint `image` taken before them, does to a disk (a
/// file or a simulated one alike).
struct CommitPlan<'a> {
    /// Everything stored goes first: the image replaces it, or a `Recovering` voids it.
    clear: bool,
    /// The image to store (none when a `Recovering` after it voids it too).
    image: Option<&'a Image>,
    /// The records to append: those from the last `Recovering` on, or all of them.
    append: &'a [Record],
}

impl<'a> CommitPlan<'a> {
    fn of(records: &'a [Record], image: Option<&'a Image>) -> Self {
        let reset = records.iter().rposition(|r| matches!(r, Record::Recovering));
        CommitPlan {
            clear: image.is_some() || reset.is_some(),
            image: image.filter(|_| reset.is_none()),
            append: &records[reset.unwrap_or(0)..],
        }
    }
}

/// What a leader's disk did, counted by its writer thread.
#[derive(Debug, Default)]
pub(crate) struct DiskCounters {
    /// Fsynced transactions.
    pub(crate) commits: AtomicU64,
    /// Records written.
    pub(crate) records: AtomicU64,
}

/// A job for the writer thread.
#[derive(Debug)]
pub(crate) enum Job {
    /// Records of batch `batch`, and, when the leader took one, a checkpoint after them.
    Commit { batch: u64, records: Vec<Record>, image: Option<Box<Image>> },
}

/// The writer thread's report, for the leader.
#[derive(Debug)]
pub(crate) enum Written {
    /// Every batch up to this one is durable.
    Synced(u64),
    /// Writing failed; nothing from the first failed batch on is durable, and the writer stopped.
    Failed(String),
}

/// The thread that owns a [`Disk`] and commits what the leader hands it.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    thread: std::thread::JoinHandle<Disk>,
}

impl Writer {
    /// Starts the thread; `report` is called (from that thread) after each commit.
    pub(crate) fn spawn(
        mut disk: Disk,
        counters: Arc<DiskCounters>,
        report: impl Fn(Written) + Send + Sync + 'static,
    ) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new().name("roundtable-disk".into()).spawn(move || {
            while let Ok(first) = queue.recv() {
                // Group commit: everything that queued while the last commit was syncing.
                let mut jobs = vec![first];
                jobs.extend(queue.try_iter());
                let mut records = Vec::new();
                let mut image = None;
                let mut last = 0;
                for Job::Commit { batch, records: mut more, image: taken } in jobs {
                    if taken.is_some() {
                        records.clear();
                        image = taken;
                    } else {
                        records.append(&mut more);
                    }
                    last = batch;
                }
                match disk.commit(&records, image.as_deref()) {
                    Ok(()) => {
                        counters.commits.fetch_add(1, Ordering::Relaxed);
                        counters.records.fetch_add(records.len() as u64, Ordering::Relaxed);
                        report(Written::Synced(last));
                    }
                    Err(e) => {
                        report(Written::Failed(e.to_string()));
                        return disk;
                    }
                }
            }
            disk
        })?;
        Ok(Writer { jobs, thread })
    }

    /// Stops the thread once it has committed what it was given, and takes the disk back
    /// (`None` if the thread panicked).
    pub(crate) fn stop(self) -> Option<Disk> {
        drop(self.jobs);
        self.thread.join().ok()
    }

    /// Hands a batch to the thread; false once it stopped.
    pub(crate) fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }
}
