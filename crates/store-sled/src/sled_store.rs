//! The sled backend: the embedded default log.
//!
//! Layout (two sled trees, one sled database under `<dir>/sled`, plus `<dir>/chain-head`):
//! - `log`: the only source of truth. Each entry holds a run of consecutive events: its key
//!   is the global position of the first (u64 big-endian), its value a sequence of frames
//!   `[record length: u32 BE][record bytes: codec tag + bincode][chain hash: 32 bytes]`. A
//!   commit group is written as few entries of up to `LOG_ENTRY_BYTES_TARGET` bytes, because
//!   sled's cost (disk, memory, iteration, and the page table its recovery loads on every
//!   open) is per entry far more than per byte: its leaves hold 16 entries, so a small entry
//!   costs a few hundred bytes on disk. Groups of one event (appends as a server takes them)
//!   leave small entries: the writer merges them into full ones once they are durable
//!   ([`Writer::merge_small_entries`]).
//! - `index`: derived from `log` and kept off the append path; see the `index` module.
//!
//! One writer thread owns every write. It drains the queue of appends, decides each
//! (idempotency, expected version, limits) and applies the group to sled in memory. The
//! group is then made durable, by the writer itself when nothing else waits, or by a syncer
//! thread while the writer goes on with the next group: sled flush, then `fdatasync` of
//! sled's data file, because sled 0.34's flush only calls `sync_file_range`, which neither
//! flushes the device cache nor the file's metadata. Only then is the durable head advanced;
//! a third thread then writes and syncs the chain-head file and answers the appends (while
//! the next group's log sync goes on), so every acknowledged append is named by a synced
//! chain head. Readers never see past the durable head. No multi-tree
//! transaction is used: the index can always be rebuilt from the log.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use events_schema::{
    CHAIN_HASH_BYTES, ChainHash, EntityId, NewEvent, RecordedEvent, Timestamp, decode_record, encode_record,
};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use store::{
    AppendedEvent, Committed, EVENT_SIZE_BYTES_MAX, EventStore, EventStream, ExpectedVersion, LogEnd,
    READ_PAGE_EVENTS_MAX, Rejection, StoreError, StoredRecord, VerifyProblem, VerifyReport, chain_hash, check_restore,
    validate_append,
};

use crate::OrStoreError;
use crate::head_file::{self, ChainHead, HeadFile};
use crate::index::{Index, IndexEntry, u64_from};

/// A log entry is closed once its frames reach this many bytes (a single larger event gets
/// an entry of its own).
const LOG_ENTRY_BYTES_TARGET: usize = 16 * 1024;
/// The most small entries the writer keeps in its run waiting to be merged (a merge takes
/// 16 or more of one event each; this is a backlog of tens of merges).
const SMALL_RUN_ENTRIES_MAX: usize = 1024;
/// Bytes of a frame besides the record: its length prefix and its chain hash.
const FRAME_OVERHEAD_BYTES: usize = 4 + CHAIN_HASH_BYTES;
/// How many appends may wait for the writer before `append` waits for room.
const APPEND_QUEUE_REQUESTS_MAX: usize = 4_096;
/// Events buffered per subscriber before its reader waits for it (the writer never does).
const SUBSCRIPTION_BUFFER_EVENTS: usize = 1_024;
/// Events read from the log per step of a subscription's catch-up.
const SUBSCRIPTION_PAGE_EVENTS: usize = 512;
/// sled's segment size. sled writes any page larger than a quarter segment to a file of its
/// own under `blobs/`, which it never fsyncs and cannot open without; with 4 MiB segments
/// the largest page the store makes (a leaf of 17 log entries of at most
/// `LOG_ENTRY_BYTES_TARGET` plus one event of at most `EVENT_SIZE_BYTES_MAX` each, about
/// 816 KiB; index values are capped far lower) stays under the 1 MiB threshold, so no blob
/// file is ever needed. Larger segments would leave more room but cost disk. sled
/// refuses to open a database with a segment size other than the one it was created with.
const SLED_SEGMENT_BYTES: usize = 4 * 1024 * 1024;
/// How long `open` waits for another holder of sled's file lock to let go.
const LOCK_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(3);
/// Groups applied but not yet synced before the writer waits for the syncer.
const SYNC_JOBS_QUEUED_MAX: usize = 4;
/// Events re-indexed per batch while repairing the index on open.
const REPAIR_BATCH_EVENTS: usize = 10_000;

/// Settings of the sled backend.
#[derive(Clone, Debug)]
pub struct SledConfig {
    pub dir: PathBuf,
    /// sled's page cache; its own default is 1 GiB, far more than a small deployment needs.
    pub cache_capacity_bytes: u64,
    /// The most events one group commit writes; more waiting appends go in the next group.
    pub group_commit_events_max: usize,
    /// Free space the store leaves on the data directory's filesystem: a group that would
    /// be written with less free is refused whole (`StorageFull`) before anything is written,
    /// so that sled never meets a full disk in the middle of a write; reads go on, and writes
    /// resume by themselves once space is freed. 0 turns the check off.
    pub disk_reserve_bytes: u64,
}

/// The default of [`SledConfig::disk_reserve_bytes`]: room for sled to start new segments
/// (4 MiB each) and write a snapshot of its page table.
pub const DISK_RESERVE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// The least free space a stopped store waits for before it is reopened (two segments).
const REOPEN_ROOM_BYTES_MIN: u64 = 2 * SLED_SEGMENT_BYTES as u64;

impl SledConfig {
    /// Whether a store stopped by a failed write can be reopened with hope of success: its
    /// filesystem has room again (the reserve, and at least two sled segments). An unreadable
    /// free space counts as room: the open itself will tell.
    pub fn has_room_to_reopen(&self) -> bool {
        free_bytes(&self.dir).map_or(true, |free| free >= self.disk_reserve_bytes.max(REOPEN_ROOM_BYTES_MIN))
    }
}

/// Bytes free to unprivileged writers on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(dir)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

impl SledConfig {
    pub fn new(dir: impl Into<PathBuf>) -> SledConfig {
        SledConfig {
            dir: dir.into(),
            cache_capacity_bytes: 64 * 1024 * 1024,
            group_commit_events_max: 8_192,
            disk_reserve_bytes: DISK_RESERVE_BYTES_DEFAULT,
        }
    }
}

/// The embedded event log. Cheap to clone; the last clone dropped stops the writer after
/// it has finished every queued append.
#[derive(Clone, Debug)]
pub struct SledStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: sled::Tree,
    index: Index,
    requests: Option<mpsc::Sender<AppendRequest>>,
    /// The durable head: the last position the writer flushed and acknowledged.
    durable: watch::Receiver<u64>,
    /// Set once when a write fails; from then on the store refuses every append (what it had
    /// not made durable may or may not be on disk: only a fresh open can say) and goes on
    /// answering reads of what is durable.
    poisoned: Arc<OnceLock<String>>,
    writer: Option<JoinHandle<()>>,
    head_path: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

type AppendReply = Result<Result<Committed, Rejection>, StoreError>;

#[derive(Debug)]
struct AppendRequest {
    work: Work,
    reply: oneshot::Sender<AppendReply>,
}

/// What an append request asks the writer to write.
#[derive(Debug)]
enum Work {
    /// New events for one stream.
    Append { stream_id: EntityId, expected: ExpectedVersion, events: Vec<NewEvent> },
    /// Records another log recorded, byte for byte (a restore): always a group of its own,
    /// since they bring their own `recorded_at`.
    Restore(Vec<StoredRecord>),
}

impl Work {
    fn len(&self) -> usize {
        match self {
            Work::Append { events, .. } => events.len(),
            Work::Restore(records) => records.len(),
        }
    }

    fn is_restore(&self) -> bool {
        matches!(self, Work::Restore(_))
    }
}

/// One stored event inside a log entry.
struct Frame<'a> {
    global_position: u64,
    record: &'a [u8],
    hash: ChainHash,
}

/// The frames of the log entry whose first event is at `first_position`.
fn frames(first_position: u64, value: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, StoreError>> {
    let mut rest = value;
    let mut global_position = first_position;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let corrupt = |reason: &str| StoreError::Corrupt { global_position, reason: reason.to_owned() };
        let frame = (|| {
            let length_bytes: [u8; 4] =
                rest.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(|| corrupt("frame length cut short"))?;
            let record_length = u32::from_be_bytes(length_bytes) as usize;
            let frame_length = FRAME_OVERHEAD_BYTES + record_length;
            let frame = rest.get(..frame_length).ok_or_else(|| corrupt("frame cut short"))?;
            let record = &frame[4..4 + record_length];
            let hash = frame[4 + record_length..].try_into().expect("sliced to the hash length");
            rest = &rest[frame_length..];
            Ok(Frame { global_position, record, hash })
        })();
        if frame.is_err() {
            rest = &[];
        }
        // Saturating: a damaged key near u64::MAX must not overflow here; the position
        // checks of every reader report the damage.
        global_position = global_position.saturating_add(1);
        Some(frame)
    })
}

/// Appends one frame to a log entry being built.
fn push_frame(entry: &mut Vec<u8>, record: &[u8], hash: &ChainHash) {
    entry.extend_from_slice(&(record.len() as u32).to_be_bytes());
    entry.extend_from_slice(record);
    entry.extend_from_slice(hash);
}

/// The log entry that holds `global_position`, if any: (its first position, its value).
fn entry_holding(log: &sled::Tree, global_position: u64) -> Result<Option<(u64, sled::IVec)>, StoreError> {
    match log.range(..=global_position.to_be_bytes()).next_back() {
        Some(entry) => {
            let (key, value) = entry.or_store()?;
            Ok(Some((u64_from(&key, "a log key")?, value)))
        }
        None => Ok(None),
    }
}

/// The stored hash of `global_position` (all zeros for position 0).
fn stored_hash(log: &sled::Tree, global_position: u64) -> Result<ChainHash, StoreError> {
    if global_position == 0 {
        return Ok([0; CHAIN_HASH_BYTES]);
    }
    let missing = || StoreError::Corrupt { global_position, reason: "missing from the log".into() };
    let (first, value) = entry_holding(log, global_position)?.ok_or_else(missing)?;
    for frame in frames(first, &value) {
        let frame = frame?;
        if frame.global_position == global_position {
            return Ok(frame.hash);
        }
    }
    Err(missing())
}

/// The last position in the log (0 when empty) and its chain hash.
fn log_end(log: &sled::Tree) -> Result<(u64, ChainHash), StoreError> {
    let Some((key, value)) = log.last().or_store()? else { return Ok((0, [0; CHAIN_HASH_BYTES])) };
    let first = u64_from(&key, "a log key")?;
    let mut last = None;
    for frame in frames(first, &value) {
        let frame = frame?;
        last = Some((frame.global_position, frame.hash));
    }
    last.ok_or(StoreError::Corrupt { global_position: first, reason: "empty log entry".into() })
}

/// Replaces the consecutive log entries `run` (all durable) by one entry holding their frames.
fn merge_entries(log: &sled::Tree, run: &[SmallEntry], bytes: usize) -> Result<(), StoreError> {
    let mut frames = Vec::with_capacity(bytes);
    let mut batch = sled::Batch::default();
    for (k, entry) in run.iter().enumerate() {
        let key = entry.first.to_be_bytes();
        let value = log.get(key).or_store()?.ok_or_else(|| StoreError::Corrupt {
            global_position: entry.first,
            reason: "a log entry to merge is missing".into(),
        })?;
        assert_eq!(value.len(), entry.bytes, "the merged entries are the ones written");
        assert!(k == 0 || entry.first == run[k - 1].last + 1, "merged entries are consecutive");
        // A frame's position is its entry's key plus its place in the entry, so an entry
        // that holds fewer or more frames than its positions would move every frame after
        // it once merged: refuse it.
        if frame_count(entry.first, &value)? != entry.last - entry.first + 1 {
            return Err(StoreError::Corrupt {
                global_position: entry.first,
                reason: format!("the log entry does not hold positions {} to {}", entry.first, entry.last),
            });
        }
        frames.extend_from_slice(&value);
        if k > 0 {
            batch.remove(&key);
        }
    }
    batch.insert(&run[0].first.to_be_bytes(), frames);
    log.apply_batch(batch).or_store()
}

/// The frames in a log entry; an error when one is damaged.
fn frame_count(first_position: u64, value: &[u8]) -> Result<u64, StoreError> {
    frames(first_position, value).try_fold(0, |count, frame| frame.map(|_| count + 1))
}

/// The run of small entries at the end of the log, oldest first, up to what one merge takes:
/// an open goes on merging what the last one left (a process that appends one event and
/// exits, as a script's `gridwatch record` does, leaves one each). Each entry's last position
/// is counted from its own frames, so a hole before the log's end (damage that the open's
/// checks of the head do not reach) ends the run instead of being merged over; a damaged
/// entry ends it too, and the readers report it.
fn small_run_at_end(log: &sled::Tree) -> Result<Vec<SmallEntry>, StoreError> {
    let mut run: Vec<SmallEntry> = Vec::new();
    let mut bytes = 0;
    for entry in log.iter().rev() {
        let (key, value) = entry.or_store()?;
        if value.len() >= LOG_ENTRY_BYTES_TARGET || bytes >= LOG_ENTRY_BYTES_TARGET {
            break;
        }
        let first = u64_from(&key, "a log key")?;
        let Ok(count @ 1..) = frame_count(first, &value) else { break };
        let Some(last) = first.checked_add(count - 1) else { break };
        if run.last().is_some_and(|after| last.checked_add(1) != Some(after.first)) {
            break;
        }
        run.push(SmallEntry { first, last, bytes: value.len() });
        bytes += value.len();
    }
    run.reverse();
    Ok(run)
}

/// The events at `positions` (as an index lists them, all at most the durable head), in that
/// order. Runs of consecutive positions (one append, or events recorded in the order they
/// happened) are read in one go; a position the log does not hold is corruption.
fn read_positions(log: &sled::Tree, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = Vec::with_capacity(positions.len());
    let mut start = 0;
    while start < positions.len() {
        let mut end = start + 1;
        while end < positions.len() && positions[end] == positions[end - 1] + 1 {
            end += 1;
        }
        let read = read_log(log, positions[start], positions[end - 1], end - start)?;
        if read.len() != end - start {
            return Err(StoreError::Corrupt {
                global_position: positions[start] + read.len() as u64,
                reason: "indexed but missing from the log".into(),
            });
        }
        events.extend(read);
        start = end;
    }
    Ok(events)
}

/// The `recorded_at` of the next group: the wall clock, but always at least 1 µs after the
/// last one written (`max(now, last + 1 µs)`), so that it never goes backwards in the log
/// even when the clock is stepped back.
fn next_recorded_at(now: Timestamp, last: Timestamp) -> Timestamp {
    let floor = last.as_microsecond().saturating_add(1);
    let next = if now.as_microsecond() >= floor { now } else { Timestamp::from_microsecond(floor).unwrap_or(last) };
    assert!(next > last, "recorded_at only moves forward");
    next
}

/// Reads and checks the log from `from` up to `through` (inclusive), at most `limit` events.
/// Each record's chain hash is recomputed from the one before it.
fn read_log(log: &sled::Tree, from: u64, through: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
    read_log_as(log, from, through, limit, |global_position, record, hash| {
        decode_record(global_position, record, hash)
            .map_err(|error| StoreError::Corrupt { global_position, reason: error.to_string() })
    })
}

/// Like [`read_log`], each chain-checked record made into a `T` by `make(position, bytes,
/// hash)`.
fn read_log_as<T>(
    log: &sled::Tree,
    from: u64,
    through: u64,
    limit: usize,
    make: impl Fn(u64, &[u8], ChainHash) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let from = from.max(1);
    if from > through || limit == 0 {
        return Ok(Vec::new());
    }
    let wanted = limit.min((through - from + 1).min(READ_PAGE_EVENTS_MAX as u64 * 16) as usize);
    let mut events = Vec::with_capacity(wanted.min(READ_PAGE_EVENTS_MAX));
    // The next position to read, and the chain hash before it (`None`: not known yet, it is
    // taken from the frames before `next` in the entry holding it).
    let mut next = from;
    let mut previous = None;
    // The writer merges small entries under readers: an iterator that had read a merged
    // entry's first part finds its other keys gone (a gap). Reading on from the entry that
    // holds the next position finds the merged frames; a gap met a few times over without
    // an event read between is the log's own (a burst of merges may make many gaps, each
    // read past).
    let mut tries = 0;
    let mut read_at_last_gap = 0;
    loop {
        let start = match entry_holding(log, next)? {
            Some((start, _)) if start >= 1 => start,
            _ => return Err(StoreError::Corrupt { global_position: next, reason: "missing from the log".into() }),
        };
        if previous.is_none() && start == next {
            previous = Some(stored_hash(log, next - 1)?);
        }
        let mut link = previous.unwrap_or([0; CHAIN_HASH_BYTES]);
        let mut expected = start;
        let mut gap = false;
        'entries: for entry in log.range(start.to_be_bytes()..=through.to_be_bytes()) {
            let (key, value) = entry.or_store()?;
            let first = u64_from(&key, "a log key")?;
            // A merge under the iterator can only take keys away: an entry that starts
            // inside the frames before it is the log's own damage.
            if first < expected {
                return Err(StoreError::Corrupt { global_position: first, reason: "log entries overlap".into() });
            }
            if first > expected {
                gap = true;
                break;
            }
            for frame in frames(first, &value) {
                let Frame { global_position, record, hash } = frame?;
                expected = global_position + 1;
                if global_position < next {
                    // Only the stored hash is needed to check the link of the next frame.
                    link = hash;
                    continue;
                }
                if global_position > through || events.len() == wanted {
                    break 'entries;
                }
                if chain_hash(&link, global_position, record) != hash {
                    return Err(StoreError::Corrupt { global_position, reason: "chain hash mismatch".into() });
                }
                link = hash;
                events.push(make(global_position, record, hash)?);
                next = global_position + 1;
                previous = Some(hash);
            }
        }
        if !gap && (events.len() == wanted || expected > through) {
            break;
        }
        if events.len() > read_at_last_gap {
            tries = 0;
            read_at_last_gap = events.len();
        }
        tries += 1;
        if tries > 3 {
            return Err(StoreError::Corrupt { global_position: next, reason: "missing from the log".into() });
        }
    }
    Ok(events)
}

impl SledStore {
    /// Opens (creating if needed) the log in `config.dir`, checks it against the chain-head
    /// file, repairs the derived index, and starts the writer.
    pub fn open(config: SledConfig) -> Result<SledStore, StoreError> {
        std::fs::create_dir_all(&config.dir)?;
        let sled_dir = config.dir.join("sled");
        let db = open_sled(&config.dir, config.cache_capacity_bytes)?;
        let log = db.open_tree("log").or_store()?;
        let index = Index::open(db.open_tree("index").or_store()?)?;
        let data_file = File::open(sled_dir.join("db"))?;

        let (log_end, last_hash) = log_end(&log)?;
        let last_recorded_at = match read_log(&log, log_end, log_end, 1)?.pop() {
            Some(last) => last.recorded_at,
            None => Timestamp::from_microsecond(0).expect("the epoch is a timestamp"),
        };
        let head_path = config.dir.join("chain-head");
        let recorded_head = head_file::read(&head_path)?;
        match recorded_head {
            None if log_end > 0 => {
                return Err(StoreError::Corrupt {
                    global_position: log_end,
                    reason: format!("the log holds events but {} is missing", head_path.display()),
                });
            }
            None => {}
            Some(head) if head.global_position > log_end => {
                return Err(StoreError::Truncated { head_position: head.global_position, log_end });
            }
            Some(head) => {
                if stored_hash(&log, head.global_position)? != head.hash {
                    return Err(StoreError::Corrupt {
                        global_position: head.global_position,
                        reason: "its chain hash differs from the one in the chain-head file".into(),
                    });
                }
                // Events after the recorded head reached the disk but the head file lagged:
                // check their links before trusting them.
                let mut next = head.global_position + 1;
                while next <= log_end {
                    let checked = read_log(&log, next, log_end, READ_PAGE_EVENTS_MAX)?;
                    next = checked.last().map_or(log_end + 1, |event| event.global_position + 1);
                }
            }
        }
        repair_index(&log, &index, log_end)?;
        // What this open adopts is made durable before the head file names it: a tail past
        // the recorded head may be only in the page cache (its writer died before its sync),
        // and a head file naming it, then a power loss, would make the log look cut short.
        // (Also at rest: sled's recovery may have written a synced snapshot that names
        // pages a stopped process wrote and never synced.)
        db.flush().or_store()?;
        data_file.sync_data()?;
        let opened_head = ChainHead { global_position: log_end, hash: last_hash };
        let mut head_file = HeadFile::open(&head_path, opened_head)?;
        if recorded_head.is_some_and(|head| head != opened_head) {
            head_file.write_synced(opened_head)?;
        }
        // A new store's files must survive a power loss too: sync the folders that hold them
        // (on every open: a first open cut short may have left them unsynced, and syncing a
        // folder that did not change writes nothing).
        head_file::sync_parent_dir(&sled_dir.join("db"))?;
        head_file::sync_parent_dir(&head_path)?;

        let (durable_sender, durable) = watch::channel(log_end);
        let (requests, receiver) = mpsc::channel(APPEND_QUEUE_REQUESTS_MAX);
        let poisoned = Arc::new(OnceLock::new());
        let (head_jobs, head_job_receiver) = std::sync::mpsc::channel();
        let head_syncer = HeadSyncer { head_file, written: log_end, poisoned: poisoned.clone(), failure: None };
        let head_syncer = std::thread::Builder::new()
            .name("gridwatch-head".into())
            .spawn(move || head_syncer.run(head_job_receiver))?;
        let syncer = Arc::new(Mutex::new(Syncer {
            db,
            data_file,
            synced: ChainHead { global_position: log_end, hash: last_hash },
            durable: durable_sender,
            poisoned: poisoned.clone(),
            failure: None,
            head_jobs: Some(head_jobs),
            head_syncer: Some(head_syncer),
        }));
        let (sync_jobs, sync_job_receiver) = std::sync::mpsc::sync_channel(SYNC_JOBS_QUEUED_MAX);
        let background_syncer = syncer.clone();
        let syncer_thread = std::thread::Builder::new()
            .name("gridwatch-sync".into())
            .spawn(move || Syncer::run(&background_syncer, sync_job_receiver))?;
        let writer = Writer {
            log: log.clone(),
            index: index.clone(),
            next_position: log_end + 1,
            last_hash,
            last_recorded_at,
            stream_heads: HashMap::new(),
            small_run: small_run_at_end(&log)?,
            durable: durable.clone(),
            poisoned: poisoned.clone(),
            group_commit_events_max: config.group_commit_events_max.max(1),
            dir: config.dir.clone(),
            disk_reserve_bytes: config.disk_reserve_bytes,
            sync_jobs,
            syncer: syncer.clone(),
        };
        let writer = std::thread::Builder::new().name("gridwatch-writer".into()).spawn(move || {
            writer.run(receiver);
            // The writer dropped its sender: the syncer finishes the queued jobs and stops.
            let _ = syncer_thread.join();
            syncer.lock().expect("no sync panicked").close();
        })?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                log,
                index,
                requests: Some(requests),
                durable,
                poisoned,
                writer: Some(writer),
                head_path,
            }),
        })
    }

    /// `result`, or, when it is a failure to read from a store stopped by a failed write,
    /// `Poisoned`: a reopen cures it.
    fn stopped_or<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        stopped_or(&self.inner.poisoned, result)
    }

    /// Hands `work` to the writer and waits for its answer.
    async fn send(&self, work: Work) -> Result<Result<Committed, Rejection>, StoreError> {
        self.check_usable()?;
        let requests = self.inner.requests.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        requests.send(AppendRequest { work, reply }).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Whether the store still takes appends.
    fn check_usable(&self) -> Result<(), StoreError> {
        match self.inner.poisoned.get() {
            Some(reason) => Err(StoreError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    fn durable_head(&self) -> u64 {
        *self.inner.durable.borrow()
    }

    /// `stream_id`'s last version and the global position it is at, `(0, 0)` when the stream
    /// has no events: one index lookup, no read of the log (the NATS backend's mirror answers
    /// its writers' first guess of a stream's end with it).
    pub fn stream_end(&self, stream_id: &EntityId) -> Result<(u64, u64), StoreError> {
        let version = self.inner.index.stream_version(stream_id)?;
        if version == 0 {
            return Ok((0, 0));
        }
        match self.inner.index.stream_position(stream_id, version)? {
            Some(position) if position <= self.durable_head() => Ok((version, position)),
            // Still being written: no guess rather than a wrong one.
            Some(_) => Ok((0, 0)),
            None => Err(StoreError::Corrupt {
                global_position: 0,
                reason: format!("the index has {stream_id} at version {version} and no position for it"),
            }),
        }
    }

    /// Synchronous `read_all`, for tools and benchmarks that run outside an async runtime.
    fn read_all_blocking(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        read_log(&self.inner.log, from_position, self.durable_head(), limit.min(READ_PAGE_EVENTS_MAX))
    }

    /// Recomputes the whole hash chain and checks every record, the per-stream versions, the
    /// event-id index and the chain-head file. The first problem found is reported with its
    /// global position; `Err` is kept for I/O errors.
    /// [`EventStore::verify`] on the calling thread, for tools and tests outside a runtime.
    pub fn verify_blocking(&self) -> Result<VerifyReport, StoreError> {
        // The head file is read before the durable head: the syncer writes it before it
        // advances the durable head, so with appends going on it can only be behind.
        let chain_head = head_file::read(&self.inner.head_path);
        let head = self.durable_head();
        let log = &self.inner.log;
        let mut report = VerifyReport { events: 0, last_hash: [0; CHAIN_HASH_BYTES], problem: None };
        let mut stream_versions: HashMap<EntityId, u64> = HashMap::new();
        let mut last_recorded_at = None;
        let mut occurred = OccurredCheck::default();
        let mut expected = 1u64;
        let problem = |global_position: u64, reason: String| Some(VerifyProblem { global_position, reason });
        // The writer merges small entries under this iterator: a gap is read on from the
        // entry that holds the next position (the merged one) before it counts, a few times.
        let mut seek_from = 1u64;
        let mut tries = 0;
        'seeks: loop {
            let mut gap = None;
            // Only the entry a re-seek starts at may hold frames already checked.
            let mut may_start_before = seek_from < expected;
            'entries: for entry in log.range(seek_from.to_be_bytes()..=head.to_be_bytes()) {
                let (key, value) = entry.or_store()?;
                let Ok(first) = u64_from(&key, "a log key") else {
                    report.problem = problem(expected, "malformed log key".into());
                    return Ok(report);
                };
                if first > expected {
                    gap = Some(first);
                    break;
                }
                if first < expected && !std::mem::take(&mut may_start_before) {
                    report.problem = problem(expected, format!("missing from the log (next present is {first})"));
                    return Ok(report);
                }
                may_start_before = false;
                for frame in frames(first, &value) {
                    let frame = match frame {
                        Ok(frame) => frame,
                        Err(error) => {
                            report.problem = problem(expected, error.to_string());
                            return Ok(report);
                        }
                    };
                    if frame.global_position < expected {
                        // Checked before the entries were merged into this one.
                        continue;
                    }
                    if frame.global_position > head {
                        break 'entries;
                    }
                    if let Err(reason) = self.check_frame(
                        &frame,
                        &report.last_hash,
                        &mut stream_versions,
                        &mut last_recorded_at,
                        &mut occurred,
                    ) {
                        report.problem = problem(frame.global_position, reason);
                        return Ok(report);
                    }
                    // Checked: these count events actually read, so they cannot pass u64.
                    report.events = report.events.checked_add(1).expect("event counts fit in u64");
                    report.last_hash = frame.hash;
                    expected = expected.checked_add(1).expect("positions fit in u64");
                    tries = 0;
                }
            }
            let missing = match gap {
                Some(next_present) => Some(next_present),
                None if report.events < head => None,
                None => break 'seeks,
            };
            tries += 1;
            match entry_holding(log, expected)? {
                Some((holding, _)) if tries <= 3 => seek_from = holding,
                _ => {
                    if let Some(next_present) = missing {
                        report.problem =
                            problem(expected, format!("missing from the log (next present is {next_present})"));
                        return Ok(report);
                    }
                    break 'seeks;
                }
            }
        }
        if report.events < head {
            report.problem = problem(report.events + 1, format!("missing from the log (the durable head is {head})"));
            return Ok(report);
        }
        match chain_head {
            Ok(Some(chain_head)) if chain_head.global_position > head => {
                report.problem = problem(
                    head + 1,
                    format!("missing: the chain-head file says {} events", chain_head.global_position),
                );
            }
            Ok(Some(chain_head)) => {
                if stored_hash(log, chain_head.global_position)? != chain_head.hash {
                    report.problem = problem(
                        chain_head.global_position,
                        "its chain hash differs from the one in the chain-head file".into(),
                    );
                }
            }
            Ok(None) => report.problem = problem(head, "the chain-head file is missing".into()),
            Err(error) => report.problem = problem(head, format!("the chain-head file is unreadable: {error}")),
        }
        Ok(report)
    }
}

impl SledStore {
    /// Checks one stored event for `verify`: its chain link, its bytes, its stream version,
    /// and both indexes' entries for it.
    fn check_frame(
        &self,
        frame: &Frame<'_>,
        previous: &ChainHash,
        stream_versions: &mut HashMap<EntityId, u64>,
        last_recorded_at: &mut Option<Timestamp>,
        occurred: &mut OccurredCheck,
    ) -> Result<(), String> {
        let global_position = frame.global_position;
        if chain_hash(previous, global_position, frame.record) != frame.hash {
            return Err("chain hash mismatch: the stored record or hash was changed".into());
        }
        let event = decode_record(global_position, frame.record, frame.hash)
            .map_err(|error| format!("undecodable record: {error}"))?;
        let stream_version = stream_versions.entry(event.stream_id.clone()).or_insert(0);
        if event.stream_version != *stream_version + 1 {
            return Err(format!(
                "stream {} jumps from version {} to {}",
                event.stream_id, stream_version, event.stream_version
            ));
        }
        *stream_version = event.stream_version;
        if let Some(last) = *last_recorded_at {
            if event.recorded_at < last {
                return Err(format!("recorded_at {} goes back from {last}", event.recorded_at));
            }
        }
        *last_recorded_at = Some(event.recorded_at);
        if !occurred.holds(&self.inner.index, event.occurred_at, global_position).map_err(|error| error.to_string())? {
            return Err(format!("event id {} is not indexed by when it happened", event.event_id));
        }
        let indexed = self.inner.index.event_position(event.event_id).map_err(|error| error.to_string())?;
        if indexed != Some(global_position) {
            return Err(format!("event id {} is not indexed at this position", event.event_id));
        }
        let position = self
            .inner
            .index
            .stream_position(&event.stream_id, event.stream_version)
            .map_err(|error| error.to_string())?;
        if position != Some(global_position) {
            return Err(format!(
                "stream {} version {} is not indexed at this position",
                event.stream_id, event.stream_version
            ));
        }
        Ok(())
    }
}

/// `verify`'s look-ups in the occurred-at index, an hour at a time (events come mostly in
/// the order they happened, so the same hour is asked for again and again).
#[derive(Default)]
struct OccurredCheck {
    hours: HashMap<i64, std::collections::HashSet<(i64, u64)>>,
}

impl OccurredCheck {
    /// Hours kept before the cache starts over (late arrivals jump back in time).
    const HOURS_MAX: usize = 48;
    const HOUR_MICROS: i64 = 3_600_000_000;

    fn holds(&mut self, index: &Index, occurred_at: Timestamp, global_position: u64) -> Result<bool, StoreError> {
        let micros = occurred_at.as_microsecond();
        let hour = micros.div_euclid(Self::HOUR_MICROS);
        if !self.hours.contains_key(&hour) {
            if self.hours.len() >= Self::HOURS_MAX {
                self.hours.clear();
            }
            let start = hour.saturating_mul(Self::HOUR_MICROS);
            let entries =
                index.occurred_page(start, start.saturating_add(Self::HOUR_MICROS), None, u64::MAX, usize::MAX)?;
            self.hours.insert(hour, entries.into_iter().collect());
        }
        Ok(self.hours[&hour].contains(&(micros, global_position)))
    }
}

/// Opens sled's database. sled lets go of its file lock only when its last internal handle
/// is gone, which can be a moment after a store in this process was dropped; so a lock held
/// elsewhere is retried for up to `LOCK_WAIT_MAX` before it is reported.
fn open_sled(store_dir: &Path, cache_capacity_bytes: u64) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        let opened = raw_sled_config(store_dir).cache_capacity(cache_capacity_bytes).open();
        match opened {
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock") && started.elapsed() < LOCK_WAIT_MAX =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(sled::Error::Io(error)) if error.to_string().contains("could not acquire lock") => {
                let db = store_dir.join("sled").join("db");
                return Err(StoreError::InUse(format!("another process holds the lock on {}", db.display())));
            }
            // sled's own checks refused its files: the log is damaged, not unreadable.
            Err(refusal @ sled::Error::Corruption { .. }) => return Err(StoreError::Damaged(refusal.to_string())),
            other => return other.or_store(),
        }
    }
}

/// Brings the derived index up to `log_end`: re-indexes what a crash left unindexed, and
/// rebuilds from scratch when the index claims more than the log holds.
fn repair_index(log: &sled::Tree, index: &Index, log_end: u64) -> Result<(), StoreError> {
    let mut indexed_through = index.indexed_through()?;
    // A clear cut short leaves the index claiming more than any log holds (`CLEARING`).
    if indexed_through > log_end {
        if indexed_through == crate::index::CLEARING {
            tracing::info!("the index was being cleared when its last process stopped; clearing it again");
        } else {
            tracing::warn!(indexed_through, log_end, "index ahead of the log; rebuilding it");
        }
        index.clear()?;
        indexed_through = 0;
    }
    let format = index.format()?;
    if indexed_through > 0 && format != crate::index::INDEX_FORMAT {
        tracing::info!(format, "the index was written in another layout; rebuilding it from the log");
        index.clear()?;
        indexed_through = 0;
    }
    if indexed_through < log_end {
        tracing::info!(from = indexed_through + 1, to = log_end, "re-indexing the log tail");
    }
    while indexed_through < log_end {
        let events = read_log(log, indexed_through + 1, log_end, REPAIR_BATCH_EVENTS)?;
        indexed_through = events.last().map_or(log_end, |event| event.global_position);
        let entries = events.into_iter().map(|event| IndexEntry {
            stream_id: event.stream_id,
            stream_version: event.stream_version,
            global_position: event.global_position,
            event_id: event.event_id,
            occurred_at: event.occurred_at,
        });
        index.add(entries, indexed_through, true)?;
    }
    Ok(())
}

/// The single owner of all writes: it decides each append of a group and applies the group
/// to sled (in memory). When no other append is waiting it makes the group durable itself;
/// otherwise it hands the group to the syncer thread and goes on deciding the next group
/// while that one is synced, so that CPU work and the disk overlap under load. Replies wait
/// for durability either way, and readers never look past the durable head.
struct Writer {
    log: sled::Tree,
    index: Index,
    next_position: u64,
    last_hash: ChainHash,
    /// The `recorded_at` of the last event written: the next group's is later, whatever the
    /// wall clock says (it may have been stepped back).
    last_recorded_at: Timestamp,
    /// Last version of each stream seen by the writer: a cache of the index.
    stream_heads: HashMap<EntityId, u64>,
    /// The small entries at the log's end, oldest first (see [`Writer::merge_small_entries`]).
    small_run: Vec<SmallEntry>,
    /// The durable head, which the small entries must reach before they are merged.
    durable: watch::Receiver<u64>,
    poisoned: Arc<OnceLock<String>>,
    group_commit_events_max: usize,
    /// The data directory, and the free space to leave on its filesystem.
    dir: PathBuf,
    disk_reserve_bytes: u64,
    sync_jobs: std::sync::mpsc::SyncSender<SyncJob>,
    /// A std `Mutex`: it is only taken by the writer and syncer threads, never across an await.
    syncer: Arc<Mutex<Syncer>>,
}

/// A decided group: the writer's head once it was applied, which must be durable before
/// any of its answers go out (even a group that wrote nothing: a retry's original positions
/// may belong to a group that is not durable yet), and the answers.
struct SyncJob {
    applied: ChainHead,
    replies: Vec<(oneshot::Sender<AppendReply>, Result<Committed, Rejection>)>,
}

/// Makes applied groups durable: sled flush, then `fdatasync` of sled's data file (sled 0.34's
/// flush only calls `sync_file_range`); then advances the durable head and hands the answers
/// to the [`HeadSyncer`]. Groups that queued up meanwhile share one flush.
struct Syncer {
    db: sled::Db,
    /// sled's data file, opened separately so that it can be `fdatasync`ed.
    data_file: File,
    synced: ChainHead,
    durable: watch::Sender<u64>,
    poisoned: Arc<OnceLock<String>>,
    /// Set when a sync failed: every later job is answered with it.
    failure: Option<String>,
    /// Where the synced groups' answers go; `None` once closed.
    head_jobs: Option<std::sync::mpsc::Sender<HeadJob>>,
    head_syncer: Option<JoinHandle<()>>,
}

/// Synced groups whose chain head must reach the head file before they are answered.
struct HeadJob {
    /// The head to write, or `None` when the groups wrote nothing new (a retry's answer still
    /// waits for the head jobs before it, which may name its original positions).
    head: Option<ChainHead>,
    replies: Vec<(oneshot::Sender<AppendReply>, Result<Committed, Rejection>)>,
}

/// Owns the chain-head file: writes and syncs the newest synced head of the jobs that queued
/// up, then answers them, in order. It runs beside the [`Syncer`], so the head file's sync
/// of one group overlaps the log's sync of the next.
struct HeadSyncer {
    head_file: HeadFile,
    written: u64,
    poisoned: Arc<OnceLock<String>>,
    /// Set when writing the head file failed: every later job is answered with it.
    failure: Option<String>,
}

impl HeadSyncer {
    fn run(mut self, jobs: std::sync::mpsc::Receiver<HeadJob>) {
        while let Ok(first) = jobs.recv() {
            let mut ready = vec![first];
            ready.extend(jobs.try_iter());
            let head = ready.iter().filter_map(|job| job.head).max_by_key(|head| head.global_position);
            if let (None, Some(head)) = (&self.failure, head) {
                if head.global_position > self.written {
                    match self.head_file.write_synced(head) {
                        Ok(()) => self.written = head.global_position,
                        Err(error) => {
                            let reason = format!("writing the chain-head file failed: {error}");
                            tracing::error!(%reason, "the store stops taking writes");
                            let _ = self.poisoned.set(reason.clone());
                            self.failure = Some(reason);
                        }
                    }
                }
            }
            for job in ready {
                for (reply, outcome) in job.replies {
                    let answer = match &self.failure {
                        Some(reason) => Err(StoreError::Poisoned(reason.clone())),
                        None => Ok(outcome),
                    };
                    let _ = reply.send(answer);
                }
            }
        }
    }
}

impl Syncer {
    fn run(syncer: &Mutex<Syncer>, jobs: std::sync::mpsc::Receiver<SyncJob>) {
        while let Ok(first) = jobs.recv() {
            let mut ready = vec![first];
            ready.extend(jobs.try_iter());
            syncer.lock().expect("no sync panicked").complete(ready);
        }
    }

    /// Makes `jobs` durable (one flush for all) and hands them to the head syncer, which
    /// answers them; answers them itself with the failure when the sync failed.
    fn complete(&mut self, jobs: Vec<SyncJob>) {
        let applied = jobs.iter().map(|job| job.applied).max_by_key(|head| head.global_position);
        let mut head = None;
        if let (None, Some(applied)) = (&self.failure, applied) {
            if applied.global_position > self.synced.global_position {
                match self.sync(applied) {
                    Ok(()) => head = Some(applied),
                    Err(error) => {
                        let reason = error.to_string();
                        tracing::error!(%reason, "making appends durable failed; the store stops taking writes");
                        let _ = self.poisoned.set(reason.clone());
                        self.failure = Some(reason);
                    }
                }
            }
        }
        let replies: Vec<_> = jobs.into_iter().flat_map(|job| job.replies).collect();
        let failed = |replies: Vec<(oneshot::Sender<AppendReply>, _)>, reason: &str| {
            for (reply, _) in replies {
                let _ = reply.send(Err(StoreError::Poisoned(reason.to_owned())));
            }
        };
        match (&self.failure, &self.head_jobs) {
            (Some(reason), _) => failed(replies, reason),
            (None, Some(head_jobs)) => {
                if let Err(std::sync::mpsc::SendError(job)) = head_jobs.send(HeadJob { head, replies }) {
                    failed(job.replies, "the chain-head writer stopped");
                }
            }
            (None, None) => failed(replies, "the store is closing"),
        }
    }

    fn sync(&mut self, head: ChainHead) -> Result<(), StoreError> {
        assert!(head.global_position > self.synced.global_position, "the durable head only moves forward");
        self.db.flush().or_store()?;
        self.data_file.sync_data()?;
        self.synced = head;
        // The durable head moves before the head file is written, so that whoever reads
        // the file and then the durable head (as `verify` does) never finds the file ahead.
        // The head file is written after this (by the head syncer, before any answer goes
        // out): an acknowledged append is always named by a synced head file, so a tail that
        // sled loses with a power loss is found on the next open.
        let before = self.durable.send_replace(head.global_position);
        assert!(before < head.global_position, "the durable head only moves forward");
        Ok(())
    }

    /// On close: everything applied (the index too) is flushed, and the head syncer has
    /// written the last head and answered every append before the store lets go.
    fn close(&mut self) {
        if self.failure.is_none() {
            if let Err(error) = self.db.flush() {
                tracing::error!(%error, "flushing on close failed");
            }
        }
        drop(self.head_jobs.take());
        if let Some(head_syncer) = self.head_syncer.take() {
            let _ = head_syncer.join();
        }
    }
}

/// What the group being committed has decided so far, before it is durable.
#[derive(Default)]
struct Group {
    log_batch: sled::Batch,
    /// The log entry being filled: its first position and its frames so far.
    entry: Option<(u64, Vec<u8>)>,
    /// Index entries of the group: (stream, stream version, global position, event id).
    index_entries: Vec<IndexEntry>,
    stream_heads: HashMap<EntityId, u64>,
    event_ids: HashMap<Uuid, (EntityId, AppendedEvent)>,
    writes: usize,
    /// The position and chain hash of the last frame pushed (or of the log's last event
    /// before the group): each new frame must link to it.
    chain_tip: (u64, ChainHash),
    /// The last `recorded_at` of a restored group (its records bring their own).
    restored_recorded_at: Option<Timestamp>,
    /// The entries written so far: first position and bytes.
    written: Vec<(u64, usize)>,
}

/// A log entry under `LOG_ENTRY_BYTES_TARGET`, one of the run at the log's end that the
/// writer merges into one entry once they are durable and fill one.
#[derive(Clone, Copy, Debug)]
struct SmallEntry {
    first: u64,
    last: u64,
    bytes: usize,
}

impl Group {
    /// Adds one frame to the log entry being filled, starting a new entry when it is full.
    fn push_frame(&mut self, global_position: u64, record: &[u8], hash: &ChainHash) {
        // The record's chain link, checked right before it is written.
        let (tip_position, tip_hash) = self.chain_tip;
        assert_eq!(global_position, tip_position + 1, "positions are dense");
        assert_eq!(
            chain_hash(&tip_hash, global_position, record),
            *hash,
            "position {global_position}: broken chain link"
        );
        self.chain_tip = (global_position, *hash);
        if self.entry.as_ref().is_some_and(|(_, frames)| frames.len() >= LOG_ENTRY_BYTES_TARGET) {
            self.close_entry();
        }
        let (_, frames) =
            self.entry.get_or_insert_with(|| (global_position, Vec::with_capacity(LOG_ENTRY_BYTES_TARGET)));
        push_frame(frames, record, hash);
    }

    /// Moves the entry being filled into the log batch.
    fn close_entry(&mut self) {
        if let Some((first_position, frames)) = self.entry.take() {
            self.written.push((first_position, frames.len()));
            self.log_batch.insert(&first_position.to_be_bytes(), frames);
        }
    }
}

impl Writer {
    fn run(mut self, mut requests: mpsc::Receiver<AppendRequest>) {
        // A restore met while filling a group waits for the next one.
        let mut held: Option<AppendRequest> = None;
        while let Some(first) = held.take().or_else(|| requests.blocking_recv()) {
            let mut events = first.work.len();
            let alone = first.work.is_restore();
            let mut group = vec![first];
            while !alone && events < self.group_commit_events_max {
                match requests.try_recv() {
                    Ok(request) if request.work.is_restore() => {
                        held = Some(request);
                        break;
                    }
                    Ok(request) => {
                        events += request.work.len();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            let job = self.commit(group);
            match job {
                // Nobody else is waiting: sync here, without a hand-over to another thread.
                Some(job) if requests.is_empty() => self.syncer.lock().expect("no sync panicked").complete(vec![job]),
                Some(job) => {
                    if let Err(std::sync::mpsc::SendError(job)) = self.sync_jobs.send(job) {
                        self.syncer.lock().expect("no sync panicked").complete(vec![job]);
                    }
                }
                None => {}
            }
            // Only while nobody waits (a restore held for a group of its own waits too): a
            // merge never holds up an append.
            while held.is_none() && requests.is_empty() && self.merge_small_entries() {}
        }
        // A clean close leaves the index complete, so the next open has nothing to repair.
        if self.poisoned.get().is_none() {
            if let Err(error) = self.index.persist_overlay() {
                tracing::error!(%error, "writing the index on close failed; it is rebuilt on the next open");
            }
        }
    }

    /// Decides and applies one group; `None` when it failed (its requests were answered).
    fn commit(&mut self, requests: Vec<AppendRequest>) -> Option<SyncJob> {
        if let Some(reason) = self.poisoned.get() {
            for request in requests {
                let _ = request.reply.send(Err(StoreError::Poisoned(reason.clone())));
            }
            return None;
        }
        let recorded_at = next_recorded_at(Timestamp::now(), self.last_recorded_at);
        let position_before = self.next_position;
        let hash_before = self.last_hash;
        let mut group = Group { chain_tip: (position_before - 1, hash_before), ..Group::default() };
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut failure = None;
        for request in &requests {
            match self.decide(request, recorded_at, &mut group) {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let stream_heads = std::mem::take(&mut group.stream_heads);
        let restored_recorded_at = group.restored_recorded_at;
        if failure.is_none() && group.writes > 0 {
            if let Some(full) = self.disk_full() {
                // Refused before anything was written: the store stays usable.
                tracing::warn!(reason = %full, "appends refused: the disk is full");
                self.next_position = position_before;
                self.last_hash = hash_before;
                for request in requests {
                    let _ = request.reply.send(Err(StoreError::StorageFull(full.clone())));
                }
                return None;
            }
            group.close_entry();
            let written = std::mem::take(&mut group.written);
            failure = self.apply(group).err();
            if failure.is_none() {
                self.note_written(&written);
            }
        }
        if let Some(error) = failure {
            let reason = error.to_string();
            tracing::error!(%reason, "append failed; the store stops taking writes");
            let _ = self.poisoned.set(reason.clone());
            self.next_position = position_before;
            self.last_hash = hash_before;
            for request in requests {
                let _ = request.reply.send(Err(StoreError::Poisoned(reason.clone())));
            }
            return None;
        }
        self.stream_heads.extend(stream_heads);
        if self.next_position > position_before {
            self.last_recorded_at = restored_recorded_at.unwrap_or(recorded_at);
        }
        let applied = ChainHead { global_position: self.next_position - 1, hash: self.last_hash };
        let replies = requests.into_iter().map(|request| request.reply).zip(outcomes).collect();
        Some(SyncJob { applied, replies })
    }

    /// Notes the small entries a group wrote (first position and bytes, in order; the last
    /// ends at the writer's head). A full one is left out, so it ends the run of small ones
    /// before it: a merge joins consecutive entries only.
    fn note_written(&mut self, written: &[(u64, usize)]) {
        for (k, &(first, bytes)) in written.iter().enumerate() {
            let last = written.get(k + 1).map_or(self.next_position - 1, |&(next, _)| next - 1);
            if bytes < LOG_ENTRY_BYTES_TARGET {
                self.small_run.push(SmallEntry { first, last, bytes });
            }
        }
        // Under a queue that never empties no merge runs: the oldest small entries are left
        // as they are rather than kept in a run that grows without end.
        if self.small_run.len() > SMALL_RUN_ENTRIES_MAX {
            let excess = self.small_run.len() - SMALL_RUN_ENTRIES_MAX;
            self.small_run.drain(..excess);
        }
    }

    /// Merges the oldest small entries at the log's end into one, once they are durable and
    /// hold `LOG_ENTRY_BYTES_TARGET` bytes together: appends of one event each (as a server
    /// takes them) write an entry per commit group, and sled's cost (its page table, loaded
    /// on every open, and its cache) is per entry. One sled batch writes the first entry's key
    /// with the frames of all and removes the others' keys: atomic, so after a crash the log
    /// holds the one layout or the other, with the same frames; readers that meet the keys
    /// going under their iterator read on from the merged entry (see [`read_log_as`]). A
    /// failed merge stops the store, as a failed append does.
    /// Returns whether it merged entries (the writer goes on while nobody waits).
    fn merge_small_entries(&mut self) -> bool {
        if self.poisoned.get().is_some() {
            return false;
        }
        let durable = *self.durable.borrow();
        loop {
            let (mut bytes, mut take, mut cut_short) = (0, 0, false);
            for (k, entry) in self.small_run.iter().enumerate() {
                if entry.last > durable {
                    break;
                }
                if k > 0 && entry.first != self.small_run[k - 1].last + 1 {
                    // A full entry came between: what is before it cannot grow any more.
                    cut_short = true;
                    break;
                }
                bytes += entry.bytes;
                take += 1;
                if bytes >= LOG_ENTRY_BYTES_TARGET {
                    break;
                }
            }
            if bytes >= LOG_ENTRY_BYTES_TARGET && take >= 2 {
                // A merge writes too, so not into the disk's reserve: it waits for room.
                if self.disk_full().is_some() {
                    return false;
                }
                let run: Vec<SmallEntry> = self.small_run.drain(..take).collect();
                if let Err(error) = merge_entries(&self.log, &run, bytes) {
                    let reason = format!("merging log entries failed: {error}");
                    tracing::error!(%reason, "the store stops taking writes");
                    let _ = self.poisoned.set(reason);
                    self.small_run.clear();
                    return false;
                }
                return true;
            }
            if !cut_short {
                return false;
            }
            self.small_run.drain(..take);
        }
    }

    /// Why the next group must not be written, if the data directory's filesystem has less
    /// free space than the reserve.
    fn disk_full(&self) -> Option<String> {
        if self.disk_reserve_bytes == 0 {
            return None;
        }
        match free_bytes(&self.dir) {
            Ok(free) if free < self.disk_reserve_bytes => Some(format!(
                "{} MiB free on the filesystem of {}, under the {} MiB kept in reserve",
                free / (1024 * 1024),
                self.dir.display(),
                self.disk_reserve_bytes / (1024 * 1024)
            )),
            Ok(_) => None,
            // Not knowing is no reason to refuse: the write itself will tell.
            Err(error) => {
                tracing::warn!(%error, "cannot read the free space of the data directory");
                None
            }
        }
    }

    /// Applies a decided group: its log entries to sled (in memory until the syncer
    /// flushes), its index entries to the index overlay.
    fn apply(&mut self, group: Group) -> Result<(), StoreError> {
        self.log.apply_batch(group.log_batch).or_store()?;
        self.index.add(group.index_entries.into_iter(), self.next_position - 1, false)
    }

    fn stream_head(&self, group: &Group, stream_id: &EntityId) -> Result<u64, StoreError> {
        if let Some(version) = group.stream_heads.get(stream_id).or_else(|| self.stream_heads.get(stream_id)) {
            return Ok(*version);
        }
        self.index.stream_version(stream_id)
    }

    /// Where `event_id` was recorded, looking at this group first, then the index.
    fn find_event(&self, group: &Group, event_id: Uuid) -> Result<Option<(EntityId, AppendedEvent)>, StoreError> {
        if let Some(found) = group.event_ids.get(&event_id) {
            return Ok(Some(found.clone()));
        }
        let Some(global_position) = self.index.event_position(event_id)? else { return Ok(None) };
        let event = read_log(&self.log, global_position, global_position, 1)?.pop().ok_or_else(|| {
            StoreError::Corrupt { global_position, reason: "indexed but missing from the log".into() }
        })?;
        Ok(Some((event.stream_id, AppendedEvent { event_id, global_position, stream_version: event.stream_version })))
    }

    fn decide(
        &mut self,
        request: &AppendRequest,
        recorded_at: Timestamp,
        group: &mut Group,
    ) -> Result<Result<Committed, Rejection>, StoreError> {
        match &request.work {
            Work::Append { stream_id, expected, events } => {
                self.decide_append(stream_id, *expected, events, recorded_at, group)
            }
            Work::Restore(records) => self.decide_restore(records, group),
        }
    }

    /// Decides a restore (a group of its own): the records must continue the log exactly.
    fn decide_restore(
        &mut self,
        records: &[StoredRecord],
        group: &mut Group,
    ) -> Result<Result<Committed, Rejection>, StoreError> {
        let end = LogEnd {
            position: self.next_position - 1,
            hash: self.last_hash,
            recorded_at: (self.next_position > 1).then_some(self.last_recorded_at),
        };
        let checked = check_restore(
            records,
            end,
            |stream_id| self.stream_head(group, stream_id),
            |event_id| Ok(self.find_event(group, event_id)?.is_some()),
        )?;
        let events = match checked {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let mut appended = Vec::with_capacity(events.len());
        for (record, event) in records.iter().zip(&events) {
            group.push_frame(record.global_position, &record.bytes, &record.hash);
            let entry = AppendedEvent {
                event_id: event.event_id,
                global_position: event.global_position,
                stream_version: event.stream_version,
            };
            group.event_ids.insert(event.event_id, (event.stream_id.clone(), entry));
            group.stream_heads.insert(event.stream_id.clone(), event.stream_version);
            group.index_entries.push(IndexEntry {
                stream_id: event.stream_id.clone(),
                stream_version: event.stream_version,
                global_position: event.global_position,
                event_id: event.event_id,
                occurred_at: event.occurred_at,
            });
            appended.push(entry);
        }
        let last = events.last().expect("checked: at least one record");
        group.writes += events.len();
        group.restored_recorded_at = Some(last.recorded_at);
        self.next_position = last.global_position + 1;
        self.last_hash = last.hash;
        Ok(Ok(Committed { events: appended, deduplicated: false }))
    }

    fn decide_append(
        &mut self,
        stream_id: &EntityId,
        expected: ExpectedVersion,
        events: &[NewEvent],
        recorded_at: Timestamp,
        group: &mut Group,
    ) -> Result<Result<Committed, Rejection>, StoreError> {
        let request_events = events;
        if let Err(rejection) = validate_append(request_events) {
            return Ok(Err(rejection));
        }
        // Idempotency: a retry of an earlier append gets the original answer.
        let mut found = Vec::new();
        for event in request_events {
            if let Some(earlier) = self.find_event(group, event.event_id)? {
                found.push(earlier);
            }
        }
        if let Some((_, first)) = found.first() {
            let whole_retry =
                found.len() == request_events.len() && found.iter().all(|(found_stream, _)| found_stream == stream_id);
            if !whole_retry {
                return Ok(Err(Rejection::EventIdInUse {
                    event_id: first.event_id,
                    global_position: first.global_position,
                }));
            }
            let events = found.into_iter().map(|(_, appended)| appended).collect();
            return Ok(Ok(Committed { events, deduplicated: true }));
        }
        let current = self.stream_head(group, stream_id)?;
        if !expected.admits(current) {
            return Ok(Err(Rejection::WrongExpectedVersion {
                stream_id: stream_id.clone(),
                expected,
                actual: current,
            }));
        }
        // Encode everything before touching the group, so a rejected event writes nothing.
        let mut previous = self.last_hash;
        let mut records = Vec::with_capacity(request_events.len());
        let mut appended = Vec::with_capacity(request_events.len());
        for (offset, event) in request_events.iter().enumerate() {
            // Checked: a position or version past u64 is a bug, not an operating error.
            let offset = offset as u64;
            let global_position = self.next_position.checked_add(offset).expect("global positions fit in u64");
            let stream_version = current.checked_add(1 + offset).expect("stream versions fit in u64");
            let mut record = Vec::with_capacity(256);
            encode_record(stream_id, stream_version, recorded_at, event, &mut record);
            if record.len() > EVENT_SIZE_BYTES_MAX {
                return Ok(Err(Rejection::Invalid(format!(
                    "event {} encodes to {} bytes; at most {EVENT_SIZE_BYTES_MAX}",
                    event.event_id,
                    record.len()
                ))));
            }
            let hash = chain_hash(&previous, global_position, &record);
            debug_assert!(decode_record(global_position, &record, hash).is_ok(), "an encoded record decodes");
            previous = hash;
            records.push((record, hash));
            appended.push(AppendedEvent { event_id: event.event_id, global_position, stream_version });
        }
        for ((record, hash), appended) in records.iter().zip(&appended) {
            group.push_frame(appended.global_position, record, hash);
            group.event_ids.insert(appended.event_id, (stream_id.clone(), *appended));
        }
        let last = appended.last().expect("validated: at least one event");
        assert!(last.stream_version > current && last.global_position >= self.next_position, "heads only move forward");
        group.index_entries.extend(appended.iter().zip(request_events).map(|(a, event)| IndexEntry {
            stream_id: stream_id.clone(),
            stream_version: a.stream_version,
            global_position: a.global_position,
            event_id: a.event_id,
            occurred_at: event.occurred_at,
        }));
        group.stream_heads.insert(stream_id.clone(), last.stream_version);
        group.writes += appended.len();
        self.next_position = last.global_position + 1;
        self.last_hash = previous;
        Ok(Ok(Committed { events: appended, deduplicated: false }))
    }
}

impl EventStore for SledStore {
    async fn append(
        &self,
        stream_id: &EntityId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Result<Committed, Rejection>, StoreError> {
        self.send(Work::Append { stream_id: stream_id.clone(), expected, events }).await
    }

    async fn read_stream(
        &self,
        stream_id: &EntityId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Once stopped by a failed write, sled may fail a read too (a read can make it
        // rewrite a page): that is the stop's doing, and a reopen cures it.
        self.stopped_or((|| {
            let head = self.durable_head();
            let from_version = from_version.max(1);
            let limit = limit.min(READ_PAGE_EVENTS_MAX);
            let mut positions = self.inner.index.stream_positions(stream_id, from_version, limit)?;
            // Versions and positions rise together: what is past the durable head is the tail.
            positions.retain(|&position| position <= head);
            let events = read_positions(&self.inner.log, &positions)?;
            for (offset, event) in events.iter().enumerate() {
                let expected_version = from_version + offset as u64;
                if event.stream_id != *stream_id || event.stream_version != expected_version {
                    return Err(StoreError::Corrupt {
                        global_position: event.global_position,
                        reason: format!("the index says {stream_id} version {expected_version} is here"),
                    });
                }
            }
            Ok(events)
        })())
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.stopped_or(self.read_all_blocking(from_position, limit))
    }

    async fn read_occurred(
        &self,
        from: Timestamp,
        until: Timestamp,
        after: Option<(Timestamp, u64)>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.stopped_or((|| {
            let head = self.durable_head();
            let limit = limit.min(READ_PAGE_EVENTS_MAX);
            let after = after.map(|(at, position)| (at.as_microsecond(), position));
            // Readers never see past the durable head (the index's overlay may hold more).
            let found =
                self.inner.index.occurred_page(from.as_microsecond(), until.as_microsecond(), after, head, limit)?;
            let positions: Vec<u64> = found.iter().map(|&(_, position)| position).collect();
            let events = read_positions(&self.inner.log, &positions)?;
            for (event, &(at, position)) in events.iter().zip(&found) {
                if event.global_position != position || event.occurred_at.as_microsecond() != at {
                    return Err(StoreError::Corrupt {
                        global_position: position,
                        reason: "the occurred-at index names an event that happened at another time".into(),
                    });
                }
            }
            Ok(events)
        })())
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.stopped_or((|| {
            let head = self.durable_head();
            match self.inner.index.event_position(event_id)? {
                Some(position) if position <= head => Ok(read_log(&self.inner.log, position, position, 1)?.pop()),
                _ => Ok(None),
            }
        })())
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.durable_head())
    }

    async fn read_records(&self, from_position: u64, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
        let limit = limit.min(READ_PAGE_EVENTS_MAX);
        self.stopped_or(read_log_as(
            &self.inner.log,
            from_position,
            self.durable_head(),
            limit,
            |position, bytes, hash| Ok(StoredRecord { global_position: position, bytes: bytes.to_vec(), hash }),
        ))
    }

    async fn restore_records(&self, records: Vec<StoredRecord>) -> Result<Result<Committed, Rejection>, StoreError> {
        self.send(Work::Restore(records)).await
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.verify_blocking())
            .await
            .map_err(|error| StoreError::Io(std::io::Error::other(error)))?
    }

    fn subscribe(&self, from_position: u64) -> EventStream {
        // The task holds the log and the durable head, not the store itself, so that a
        // subscription never keeps a dropped store open: when the store closes, the durable
        // head's sender goes away and the subscription ends.
        let log = self.inner.log.clone();
        let poisoned = self.inner.poisoned.clone();
        let mut durable = self.inner.durable.clone();
        let (sender, receiver) = mpsc::channel(SUBSCRIPTION_BUFFER_EVENTS);
        tokio::spawn(async move {
            pump_subscription(&log, &poisoned, &mut durable, &sender, from_position).await;
            // The log handle goes before the channel closes, so that whoever sees the end of
            // the stream can open the storage again at once.
            drop(log);
            drop(sender);
        });
        tokio_stream::wrappers::ReceiverStream::new(receiver).boxed()
    }
}

/// `result`, or `Poisoned` when it is a failure to read and the store is stopped.
///
/// sled can write while reading (a read may make it rewrite a page), and once one of its
/// writes failed it refuses every further write with that error, the ones reads need
/// included. The write that failed may be one of sled's own, which the writer finds only at
/// its next flush (a full disk made a live feed's read fail a quarter of a second before the
/// writer knew). So a read that sled fails with the error of a write (the disk or the quota
/// full, the file too large: no read fails so by itself) stops the store itself (sets
/// `poisoned`), and a reopen cures it. Any other read error (a bad sector, a missing file)
/// is answered as it is: a reopen would not cure it, and would stop appends for nothing.
fn stopped_or<T>(poisoned: &OnceLock<String>, result: Result<T, StoreError>) -> Result<T, StoreError> {
    let error = match result {
        Err(error @ (StoreError::Backend(_) | StoreError::Io(_))) => error,
        result => return result,
    };
    if poisoned.get().is_none() && is_sleds_write_failure(&error) {
        let reason = format!("sled's writes failed; a read of the log met it: {error}");
        if poisoned.set(reason.clone()).is_ok() {
            tracing::error!(%reason, "the store stops taking writes until it is reopened");
            return Err(StoreError::Poisoned(reason));
        }
    }
    match poisoned.get() {
        Some(reason) => Err(StoreError::Poisoned(format!("{reason}; then a read failed: {error}"))),
        None => Err(error),
    }
}

/// Whether `error` is sled's I/O error of a failed write, met by a read.
fn is_sleds_write_failure(error: &StoreError) -> bool {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    let StoreError::Backend(inner) = error else { return false };
    matches!(inner.downcast_ref::<sled::Error>(), Some(sled::Error::Io(io))
        if matches!(io.kind(), StorageFull | QuotaExceeded | FileTooLarge))
}

/// Feeds one subscription: catch-up reads from the log up to the durable head, then waits
/// for the head to move. Returns when the subscriber or the store goes away, or on an error
/// (which is sent to the subscriber first).
async fn pump_subscription(
    log: &sled::Tree,
    poisoned: &OnceLock<String>,
    durable: &mut watch::Receiver<u64>,
    sender: &mpsc::Sender<Result<RecordedEvent, StoreError>>,
    from_position: u64,
) {
    let mut next = from_position.max(1);
    loop {
        let head = *durable.borrow_and_update();
        if next > head {
            tokio::select! {
                changed = durable.changed() => if changed.is_err() { return },
                () = sender.closed() => return,
            }
            continue;
        }
        // A stopped store still serves what is durable; its subscriptions end when it is
        // dropped (to be reopened), which closes the durable head's channel.
        let page = stopped_or(poisoned, read_log(log, next, head, SUBSCRIPTION_PAGE_EVENTS));
        match page {
            Ok(events) => {
                for event in events {
                    next = event.global_position + 1;
                    if sender.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => {
                let _ = sender.send(Err(error)).await;
                return;
            }
        }
    }
}

/// Opens the store for the `verify` command and checks it. Open-time findings (a shortened
/// log, a chain head that does not match) become a report, not an error.
///
/// When sled refuses to open the database at all (its snapshot disagrees with a damaged
/// log), the check is repeated on a temporary copy without sled's snapshot files, which
/// makes sled recover from its log segments and stop at the damage; the original is never
/// changed by that.
pub fn verify_dir(config: SledConfig) -> Result<VerifyReport, StoreError> {
    match verify_opened(config.clone()) {
        Err(StoreError::Damaged(refusal)) => {
            tracing::warn!(%refusal, "sled refused to open the store; verifying a copy without its snapshot");
            let copy = tempfile::tempdir()?;
            copy_dir(&config.dir, copy.path())?;
            for entry in std::fs::read_dir(copy.path().join("sled"))? {
                let path = entry?.path();
                if path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with("snap.")) {
                    std::fs::remove_file(path)?;
                }
            }
            let mut report = verify_opened(SledConfig { dir: copy.path().to_owned(), ..config })?;
            if let Some(problem) = &mut report.problem {
                problem.reason.push_str(&format!(" (sled refused to open the store itself: {refusal})"));
            } else {
                report.problem = Some(VerifyProblem {
                    global_position: report.events + 1,
                    reason: format!(
                        "sled refuses to open the store ({refusal}), though its log segments hold an intact chain"
                    ),
                });
            }
            Ok(report)
        }
        other => other,
    }
}

fn verify_opened(config: SledConfig) -> Result<VerifyReport, StoreError> {
    match SledStore::open(config) {
        Ok(store) => store.verify_blocking(),
        Err(StoreError::Truncated { head_position, log_end }) => Ok(VerifyReport {
            events: log_end,
            last_hash: [0; CHAIN_HASH_BYTES],
            problem: Some(VerifyProblem {
                global_position: log_end + 1,
                reason: format!(
                    "the log ends at {log_end} but the chain-head file says {head_position} events were written: \
                     the log was cut short"
                ),
            }),
        }),
        Err(StoreError::Corrupt { global_position, reason }) => Ok(VerifyReport {
            events: 0,
            last_hash: [0; CHAIN_HASH_BYTES],
            problem: Some(VerifyProblem { global_position, reason }),
        }),
        Err(error) => Err(error),
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// sled's configuration for the database inside a store directory, for tests and tools
/// that look at (or damage) the raw trees while the store is closed.
pub fn raw_sled_config(store_dir: &Path) -> sled::Config {
    sled::Config::new().path(store_dir.join("sled")).segment_size(SLED_SEGMENT_BYTES).flush_every_ms(None)
}

/// Opens the raw sled database of a store directory, waiting (as the store does) for a
/// store just dropped in this process to let go of sled's file lock. For tests that change
/// the trees behind the store's back.
pub fn open_raw_sled(store_dir: &Path) -> Result<sled::Db, StoreError> {
    open_sled(store_dir, SledConfig::new(store_dir).cache_capacity_bytes)
}

/// The path of sled's data file inside a store directory (for tests that damage it).
pub fn sled_data_file(dir: &Path) -> PathBuf {
    dir.join("sled").join("db")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(micros: i64) -> Timestamp {
        Timestamp::from_microsecond(micros).expect("a valid timestamp")
    }

    #[test]
    fn recorded_at_follows_the_clock_but_never_goes_back_when_it_is_stepped() {
        assert_eq!(next_recorded_at(at(5_000), at(1_000)), at(5_000), "a clock ahead is taken as it is");
        assert_eq!(next_recorded_at(at(1_000), at(1_000)), at(1_001), "the same microsecond moves on by one");
        assert_eq!(next_recorded_at(at(200), at(1_000)), at(1_001), "a clock stepped back is overruled");
    }

    fn sled_io_error(kind: std::io::ErrorKind, text: &str) -> Result<(), StoreError> {
        Err(StoreError::backend(sled::Error::Io(std::io::Error::new(kind, text.to_owned()))))
    }

    /// A read that sled fails with a write's error (as it does once one of its own writes met
    /// a full disk, before the writer's flush finds out) stops the store there and then: the
    /// read answers `Poisoned`, which a `Recovering` store and its subscriptions take as
    /// "reopen and go on", and appends are refused from then on. Any other read error (a bad
    /// sector, a missing file: a reopen would not cure them, so no reopen loop) and sled's
    /// other refusals leave the store as it is.
    #[tokio::test]
    async fn a_read_that_meets_a_failed_write_stops_the_store_and_no_other_read_error_does() {
        use std::io::ErrorKind;
        use store::conformance::note;
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(SledConfig::new(dir.path())).unwrap();
        let gate = EntityId::new("gate").unwrap();
        store.append(&gate, ExpectedVersion::Any, vec![note("before")]).await.unwrap().unwrap();
        let poisoned = &store.inner.poisoned;

        let bug = Err::<(), _>(StoreError::backend(sled::Error::ReportableBug("a bug".into())));
        assert!(matches!(stopped_or(poisoned, bug), Err(StoreError::Backend(_))));
        let ours = Err::<(), _>(StoreError::Io(std::io::Error::other("the head file")));
        assert!(matches!(stopped_or(poisoned, ours), Err(StoreError::Io(_))));
        for (kind, text) in [(ErrorKind::Other, "Input/output error"), (ErrorKind::NotFound, "a blob file")] {
            let read = stopped_or(poisoned, sled_io_error(kind, text));
            assert!(matches!(read, Err(StoreError::Backend(_))), "{text}: {read:?}");
        }
        assert!(poisoned.get().is_none(), "a read error that a reopen does not cure stopped the store");
        assert!(store.append(&gate, ExpectedVersion::Any, vec![note("still taken")]).await.unwrap().is_ok());

        let read = stopped_or(poisoned, sled_io_error(ErrorKind::StorageFull, "No space left on device"));
        let Err(StoreError::Poisoned(reason)) = read else { panic!("{read:?}") };
        assert!(reason.starts_with("sled's writes failed") && reason.contains("No space left"), "{reason}");
        let refused = store.append(&gate, ExpectedVersion::Any, vec![note("after")]).await;
        assert!(matches!(refused, Err(StoreError::Poisoned(_))), "{refused:?}");
        // What is durable is still read.
        assert_eq!(store.read_all(1, 10).await.unwrap().len(), 2);
        // And a later failure names the first.
        let again = stopped_or(poisoned, Err::<(), _>(StoreError::Io(std::io::Error::other("again"))));
        let Err(StoreError::Poisoned(later)) = again else { panic!("{again:?}") };
        assert!(later.starts_with(&reason) && later.ends_with("again"), "{later}");
    }
}
