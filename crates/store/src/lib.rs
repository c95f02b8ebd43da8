//! The event log's boundary: the [`EventStore`] trait every backend implements, its types
//! and limits, the hash chain, [`DynStore`] (any backend behind one type, for the layers that
//! must not name one), and the backend conformance suite (`conformance`, behind the
//! `conformance` feature so that its test-only dependencies stay out of production builds).
//! No backend lives here: the sled backend is the `store-sled` crate.
//!
//! Rules every backend keeps (and the conformance suite checks):
//! - global positions and stream versions start at 1 and have no holes;
//! - an append of several events is all-or-nothing, and is rejected whole when its expected
//!   version does not hold;
//! - an append is acknowledged only once it is durable;
//! - appends are idempotent by event id: a retry returns the original positions;
//! - `subscribe` delivers every event from a position on, catch-up then live, with no gap and
//!   no duplicate, and a slow subscriber never holds up writers;
//! - a failed write stops appends (`Poisoned`) but not reads of what is durable; an append
//!   refused for want of space (`StorageFull`) writes nothing and stops nothing.

#[cfg(feature = "conformance")]
pub mod conformance;
mod dyn_store;
#[cfg(feature = "memory")]
pub mod memory;
mod recovering;
mod restore;

use std::future::Future;

use futures::stream::BoxStream;
use uuid::Uuid;

pub use dyn_store::DynStore;
pub use events_schema::{ChainHash, EntityId, NewEvent, RecordedEvent, Timestamp};
pub use recovering::{Opener, Probe, Recovering};
pub use restore::{LogEnd, StoredRecord, check_restore};

/// The most events one append may carry.
pub const APPEND_EVENTS_MAX: usize = 1_000;
/// The largest stored record of one event, in bytes.
pub const EVENT_SIZE_BYTES_MAX: usize = events_schema::RECORD_BYTES_MAX;
/// The most events one read returns.
pub const READ_PAGE_EVENTS_MAX: usize = 10_000;
/// The most records one `restore_records` call writes.
pub const RESTORE_RECORDS_MAX: usize = 1_000;

/// What the writer expects the stream to look like before the append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have this version (0 is the same as `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (0 when empty) satisfies this.
    pub fn admits(self, current: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(version) => current == version,
        }
    }
}

impl std::str::FromStr for ExpectedVersion {
    type Err = String;

    /// `any`, `none` (or `no-stream`: the stream must not exist) or N (its last version).
    fn from_str(text: &str) -> Result<ExpectedVersion, String> {
        match text {
            "any" => Ok(ExpectedVersion::Any),
            "none" | "no-stream" => Ok(ExpectedVersion::NoStream),
            number => number
                .parse()
                .map(ExpectedVersion::Exact)
                .map_err(|_| format!("{number:?} is not `any`, `none` or a stream version")),
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// Where one appended event landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppendedEvent {
    pub event_id: Uuid,
    pub global_position: u64,
    pub stream_version: u64,
}

/// A durable append.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Committed {
    pub events: Vec<AppendedEvent>,
    /// True when every event id was already in the log from an earlier append, so nothing
    /// was written and the original positions are returned.
    pub deduplicated: bool,
}

/// An append the store refused, having written nothing. These are expected outcomes, kept
/// apart from [`StoreError`] so that `?` cannot pass a conflict to a caller that should retry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("stream {stream_id}: expected {expected}, but the stream is at version {actual}")]
    WrongExpectedVersion { stream_id: EntityId, expected: ExpectedVersion, actual: u64 },
    #[error("event id {event_id} is already recorded at position {global_position} by a different append")]
    EventIdInUse { event_id: Uuid, global_position: u64 },
    #[error("invalid append: {0}")]
    Invalid(String),
}

impl Rejection {
    /// Conflicts are about the log's current state; `Invalid` is about the request itself.
    pub fn is_conflict(&self) -> bool {
        !matches!(self, Rejection::Invalid(_))
    }
}

/// Operating errors: I/O, corruption, a store that stopped after a failed write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend's own error (its storage engine, its network), wrapped: no layer above
    /// the store names a backend's types.
    #[error("storage error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt log at global position {global_position}: {reason}")]
    Corrupt { global_position: u64, reason: String },
    #[error(
        "the log is shorter than its chain head: the head file says position {head_position} \
         was written, but the log ends at {log_end}; first missing position {}",
        log_end + 1
    )]
    Truncated { head_position: u64, log_end: u64 },
    /// Another process holds the store (a running server): the embedded backend lets one
    /// process open it at a time.
    #[error("the store is in use by another process ({0})")]
    InUse(String),
    /// The backend's storage is damaged so badly that it cannot even be opened (its own
    /// checks refused it); `verify` may still find where the intact part ends.
    #[error("the stored log is damaged: {0}")]
    Damaged(String),
    /// A write failed and the store stopped taking appends (it still answers reads of what
    /// is durable). The appends answered with this may or may not be in the log: once the
    /// store is reopened (a [`Recovering`] store does it by itself), retry them with the same
    /// event ids, which returns the original positions of those that were written.
    #[error("the store stopped taking writes after a failed write ({0}) until it is reopened")]
    Poisoned(String),
    /// The disk (or the backend's storage) has too little room left for the append: it was
    /// refused whole, before anything was written, and the store goes on taking reads.
    /// Writes resume by themselves once room is freed.
    #[error(
        "the disk holding the log is full ({0}): the append was refused and nothing was written; writes resume by themselves once space is freed"
    )]
    StorageFull(String),
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Wraps a backend's own error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend(Box::new(error))
    }

    /// Whether the log was found altered or cut short (as opposed to failing to be read).
    pub fn is_integrity(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. } | StoreError::Truncated { .. } | StoreError::Damaged(_))
    }
}

/// The result of [`EventStore::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events checked and found intact, from position 1.
    pub events: u64,
    /// The chain hash of the last intact event.
    pub last_hash: ChainHash,
    /// The first problem found, if any.
    pub problem: Option<VerifyProblem>,
}

/// The first bad position found by `verify`, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyProblem {
    pub global_position: u64,
    pub reason: String,
}

/// A stream of recorded events (a subscription).
pub type EventStream = BoxStream<'static, Result<RecordedEvent, StoreError>>;

/// The append-only event log.
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream_id` as one all-or-nothing unit and returns once they are
    /// durable.
    fn append(
        &self,
        stream_id: &EntityId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Result<Committed, Rejection>, StoreError>> + Send;

    /// Up to `limit` events of `stream_id` from `from_version` (inclusive) on.
    fn read_stream(
        &self,
        stream_id: &EntityId,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Up to `limit` events of the whole log from `from_position` (inclusive) on.
    fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Up to `limit` events that happened in `from..until` (by `occurred_at`: a late arrival
    /// is found where it happened, not where it was recorded), ordered by when they happened
    /// and then by global position, strictly after `after` (the `(occurred_at, position)` of
    /// the last event of the previous page) when given. The cost grows with the events of the
    /// period, not with the log: a local day, in any time zone, is such a period.
    fn read_occurred(
        &self,
        from: Timestamp,
        until: Timestamp,
        after: Option<(Timestamp, u64)>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The durable event with id `event_id`, if the log holds one.
    fn read_event(&self, event_id: Uuid) -> impl Future<Output = Result<Option<RecordedEvent>, StoreError>> + Send;

    /// Up to `limit` durable records from `from_position` (inclusive) on, as the log holds
    /// them (the bytes its chain covers): what a backup copies.
    fn read_records(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredRecord>, StoreError>> + Send;

    /// Writes `records`, read from another log with `read_records`, at the end of this one,
    /// byte for byte, as one all-or-nothing unit, once they are checked to continue it (see
    /// [`check_restore`]): positions, chain links, stream versions, event ids, `recorded_at`.
    /// A log restored this way has the same chain, record for record, as the one it came
    /// from, and goes on from it.
    fn restore_records(
        &self,
        records: Vec<StoredRecord>,
    ) -> impl Future<Output = Result<Result<Committed, Rejection>, StoreError>> + Send;

    /// The global position of the last durable event (0 when the log is empty).
    fn head_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every event from `from_position` (inclusive) on: first those already in the log,
    /// then each new one as it becomes durable; no gap, no duplicate.
    fn subscribe(&self, from_position: u64) -> EventStream;

    /// Recomputes the whole hash chain and checks every record, the stream versions, that
    /// `recorded_at` never goes backwards, and what the backend keeps beside the log (its
    /// indexes, its chain head). The first problem found is reported with its global
    /// position; `Err` is kept for failures to read.
    fn verify(&self) -> impl Future<Output = Result<VerifyReport, StoreError>> + Send;
}

/// The chain hash of the record at `global_position`: `blake3(previous || position || bytes)`.
/// The first record's previous hash is all zeros.
pub fn chain_hash(previous: &ChainHash, global_position: u64, record_bytes: &[u8]) -> ChainHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(previous);
    hasher.update(&global_position.to_be_bytes());
    hasher.update(record_bytes);
    *hasher.finalize().as_bytes()
}

/// Checks an append request against the limits every backend shares; `Err` says why not.
pub fn validate_append(events: &[NewEvent]) -> Result<(), Rejection> {
    if events.is_empty() {
        return Err(Rejection::Invalid("an append needs at least one event".into()));
    }
    if events.len() > APPEND_EVENTS_MAX {
        return Err(Rejection::Invalid(format!("{} events in one append; at most {APPEND_EVENTS_MAX}", events.len())));
    }
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    for event in events {
        if event.event_id.get_version_num() != 7 {
            return Err(Rejection::Invalid(format!("event id {} is not a UUIDv7", event.event_id)));
        }
        if !seen.insert(event.event_id) {
            return Err(Rejection::Invalid(format!("event id {} appears twice in one append", event.event_id)));
        }
    }
    Ok(())
}
