//! [`MemoryStore`]: a backend that keeps the log in memory, for the tests of the layers above
//! the store (the server's API tests run on it), so that they need no storage engine. It
//! keeps every rule of the boundary that does not need a disk, and the conformance suite
//! checks it like any backend; "durable" means "in this process's memory", so it is behind
//! the `memory` feature and never in a production build.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use events_schema::{CHAIN_HASH_BYTES, ChainHash, decode_record, encode_record};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::{
    AppendedEvent, Committed, EVENT_SIZE_BYTES_MAX, EntityId, EventStore, EventStream, ExpectedVersion, NewEvent,
    READ_PAGE_EVENTS_MAX, RecordedEvent, Rejection, StoreError, Timestamp, VerifyProblem, VerifyReport, chain_hash,
    validate_append,
};

/// Events a subscriber may have in flight before its pump waits for it.
const SUBSCRIPTION_BUFFER_EVENTS: usize = 1_024;

/// The log itself, shared by every store opened over it (a "restart" opens a new store over
/// the same log).
#[derive(Debug, Default)]
pub struct MemoryLog {
    /// Each event with its stored bytes (the chain covers those bytes, as in any backend).
    records: Vec<(RecordedEvent, Vec<u8>)>,
    /// Event id -> index in `records`.
    by_event_id: HashMap<Uuid, usize>,
    /// Stream -> indexes in `records`, in version order.
    streams: HashMap<EntityId, Vec<usize>>,
    /// (occurred_at, global position) of every event, in that order.
    occurred: std::collections::BTreeSet<(Timestamp, u64)>,
}

/// The in-memory backend. Cheap to clone; clones share the log and its head.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    /// A std `Mutex`: held only for in-memory work, never across an await.
    log: Arc<Mutex<MemoryLog>>,
    head: Arc<watch::Sender<u64>>,
}

impl MemoryStore {
    /// A store over a fresh, empty log.
    pub fn new() -> MemoryStore {
        MemoryStore::over(Arc::new(Mutex::new(MemoryLog::default())))
    }

    /// A store over `log`, which another store may have written before (a restart).
    pub fn over(log: Arc<Mutex<MemoryLog>>) -> MemoryStore {
        let head = lock(&log).records.len() as u64;
        MemoryStore { log, head: Arc::new(watch::Sender::new(head)) }
    }

    /// The log this store writes, to open another store over it later.
    pub fn log(&self) -> Arc<Mutex<MemoryLog>> {
        self.log.clone()
    }
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

fn lock(log: &Mutex<MemoryLog>) -> MutexGuard<'_, MemoryLog> {
    // A panic while holding the lock is a bug in this file; the log itself is still whole
    // (every change is made after all checks), so the poison is not passed on.
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryLog {
    fn page(&self, indexes: impl Iterator<Item = usize>, limit: usize) -> Vec<RecordedEvent> {
        indexes.take(limit.min(READ_PAGE_EVENTS_MAX)).map(|index| self.records[index].0.clone()).collect()
    }

    fn append(
        &mut self,
        stream_id: &EntityId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Committed, Rejection> {
        validate_append(&events)?;
        // Idempotency: a retry of a whole earlier append gets its original positions.
        let found: Vec<&RecordedEvent> = events
            .iter()
            .filter_map(|event| self.by_event_id.get(&event.event_id))
            .map(|&i| &self.records[i].0)
            .collect();
        if let Some(first) = found.first() {
            if found.len() != events.len() || found.iter().any(|earlier| earlier.stream_id != *stream_id) {
                return Err(Rejection::EventIdInUse {
                    event_id: first.event_id,
                    global_position: first.global_position,
                });
            }
            let events = found
                .iter()
                .map(|e| AppendedEvent {
                    event_id: e.event_id,
                    global_position: e.global_position,
                    stream_version: e.stream_version,
                })
                .collect();
            return Ok(Committed { events, deduplicated: true });
        }
        let current = self.streams.get(stream_id).map_or(0, |versions| versions.len() as u64);
        if !expected.admits(current) {
            return Err(Rejection::WrongExpectedVersion { stream_id: stream_id.clone(), expected, actual: current });
        }
        let last = self.records.last().map(|(event, _)| (event.hash, event.recorded_at));
        let (mut previous, last_recorded_at) = last.map_or(([0; CHAIN_HASH_BYTES], None), |(h, at)| (h, Some(at)));
        let recorded_at = match last_recorded_at {
            Some(last) if Timestamp::now() <= last => {
                Timestamp::from_microsecond(last.as_microsecond().saturating_add(1)).unwrap_or(last)
            }
            _ => Timestamp::now(),
        };
        // Encode and check everything before anything is added: all or nothing.
        let first_position = self.records.len() as u64 + 1;
        let mut new_records = Vec::with_capacity(events.len());
        for (offset, event) in events.iter().enumerate() {
            let offset = offset as u64;
            let global_position = first_position.checked_add(offset).expect("positions fit in u64");
            let stream_version = current.checked_add(1 + offset).expect("versions fit in u64");
            let mut bytes = Vec::new();
            encode_record(stream_id, stream_version, recorded_at, event, &mut bytes);
            if bytes.len() > EVENT_SIZE_BYTES_MAX {
                return Err(Rejection::Invalid(format!(
                    "event {} encodes to {} bytes; at most {EVENT_SIZE_BYTES_MAX}",
                    event.event_id,
                    bytes.len()
                )));
            }
            let hash = chain_hash(&previous, global_position, &bytes);
            let recorded = decode_record(global_position, &bytes, hash).expect("an encoded record decodes");
            previous = hash;
            new_records.push((recorded, bytes));
        }
        let mut appended = Vec::with_capacity(new_records.len());
        for (recorded, bytes) in new_records {
            let index = self.records.len();
            assert_eq!(recorded.global_position, index as u64 + 1, "positions are dense");
            appended.push(AppendedEvent {
                event_id: recorded.event_id,
                global_position: recorded.global_position,
                stream_version: recorded.stream_version,
            });
            self.by_event_id.insert(recorded.event_id, index);
            self.streams.entry(stream_id.clone()).or_default().push(index);
            self.occurred.insert((recorded.occurred_at, recorded.global_position));
            self.records.push((recorded, bytes));
        }
        Ok(Committed { events: appended, deduplicated: false })
    }

    fn restore(&mut self, records: Vec<crate::StoredRecord>) -> Result<Result<Committed, Rejection>, StoreError> {
        let end = crate::LogEnd {
            position: self.records.len() as u64,
            hash: self.records.last().map_or([0; CHAIN_HASH_BYTES], |(event, _)| event.hash),
            recorded_at: self.records.last().map(|(event, _)| event.recorded_at),
        };
        let events = match crate::check_restore(
            &records,
            end,
            |stream_id| Ok(self.streams.get(stream_id).map_or(0, |versions| versions.len() as u64)),
            |event_id| Ok(self.by_event_id.contains_key(&event_id)),
        )? {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let mut appended = Vec::with_capacity(events.len());
        for (event, record) in events.into_iter().zip(records) {
            let index = self.records.len();
            appended.push(AppendedEvent {
                event_id: event.event_id,
                global_position: event.global_position,
                stream_version: event.stream_version,
            });
            self.by_event_id.insert(event.event_id, index);
            self.streams.entry(event.stream_id.clone()).or_default().push(index);
            self.occurred.insert((event.occurred_at, event.global_position));
            self.records.push((event, record.bytes));
        }
        Ok(Ok(Committed { events: appended, deduplicated: false }))
    }

    fn verify(&self) -> VerifyReport {
        let mut report = VerifyReport { events: 0, last_hash: [0; CHAIN_HASH_BYTES], problem: None };
        let mut versions: HashMap<&EntityId, u64> = HashMap::new();
        let mut last_recorded_at = None;
        for (event, bytes) in &self.records {
            let problem = |reason: String| Some(VerifyProblem { global_position: event.global_position, reason });
            let expected_hash: ChainHash = chain_hash(&report.last_hash, event.global_position, bytes);
            let version = versions.entry(&event.stream_id).or_insert(0);
            if expected_hash != event.hash {
                report.problem = problem("chain hash mismatch".into());
            } else if event.stream_version != *version + 1 {
                report.problem =
                    problem(format!("stream {} jumps to version {}", event.stream_id, event.stream_version));
            } else if last_recorded_at.is_some_and(|last| event.recorded_at < last) {
                report.problem = problem("recorded_at goes backwards".into());
            }
            if report.problem.is_some() {
                return report;
            }
            *version = event.stream_version;
            last_recorded_at = Some(event.recorded_at);
            report.events += 1;
            report.last_hash = event.hash;
        }
        report
    }
}

impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream_id: &EntityId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Result<Committed, Rejection>, StoreError> {
        let mut log = lock(&self.log);
        let outcome = log.append(stream_id, expected, events);
        let head = log.records.len() as u64;
        drop(log);
        self.head.send_if_modified(|current| {
            let moved = *current < head;
            *current = head.max(*current);
            moved
        });
        Ok(outcome)
    }

    async fn read_stream(
        &self,
        stream_id: &EntityId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = lock(&self.log);
        let Some(indexes) = log.streams.get(stream_id) else { return Ok(Vec::new()) };
        let skip = usize::try_from(from_version.max(1) - 1).unwrap_or(usize::MAX);
        Ok(log.page(indexes.iter().skip(skip).copied(), limit))
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = lock(&self.log);
        let start = usize::try_from(from_position.max(1) - 1).unwrap_or(usize::MAX);
        Ok(log.page(start..log.records.len(), limit))
    }

    async fn read_occurred(
        &self,
        from: Timestamp,
        until: Timestamp,
        after: Option<(Timestamp, u64)>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = lock(&self.log);
        // Nothing is left after a cursor at or past the end (and `BTreeSet::range` would
        // panic on such bounds).
        if from >= until || after.is_some_and(|after| after >= (until, 0)) {
            return Ok(Vec::new());
        }
        let start = match after {
            Some(after) if after >= (from, 0) => std::ops::Bound::Excluded(after),
            _ => std::ops::Bound::Included((from, 0)),
        };
        let positions =
            log.occurred.range((start, std::ops::Bound::Excluded((until, 0)))).map(|(_, position)| *position);
        Ok(log.page(positions.map(|position| (position - 1) as usize), limit))
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let log = lock(&self.log);
        Ok(log.by_event_id.get(&event_id).map(|&index| log.records[index].0.clone()))
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(lock(&self.log).records.len() as u64)
    }

    async fn read_records(&self, from_position: u64, limit: usize) -> Result<Vec<crate::StoredRecord>, StoreError> {
        let log = lock(&self.log);
        let start = usize::try_from(from_position.max(1) - 1).unwrap_or(usize::MAX);
        Ok(log
            .records
            .iter()
            .skip(start)
            .take(limit.min(READ_PAGE_EVENTS_MAX))
            .map(|(event, bytes)| crate::StoredRecord {
                global_position: event.global_position,
                bytes: bytes.clone(),
                hash: event.hash,
            })
            .collect())
    }

    async fn restore_records(
        &self,
        records: Vec<crate::StoredRecord>,
    ) -> Result<Result<Committed, Rejection>, StoreError> {
        let mut log = lock(&self.log);
        let outcome = log.restore(records);
        let head = log.records.len() as u64;
        drop(log);
        self.head.send_if_modified(|current| {
            let moved = *current < head;
            *current = head.max(*current);
            moved
        });
        outcome
    }

    fn subscribe(&self, from_position: u64) -> EventStream {
        // The pump holds the log and a receiver of the head, not the store: when the last
        // store over this head goes, the sender goes with it and the subscription ends.
        let log = self.log.clone();
        let mut head = self.head.subscribe();
        let (sender, receiver) = mpsc::channel(SUBSCRIPTION_BUFFER_EVENTS);
        tokio::spawn(async move {
            let mut next = from_position.max(1);
            loop {
                let page = {
                    let log = lock(&log);
                    let start = usize::try_from(next - 1).unwrap_or(usize::MAX);
                    log.page(start..log.records.len(), READ_PAGE_EVENTS_MAX)
                };
                if page.is_empty() {
                    tokio::select! {
                        changed = head.changed() => if changed.is_err() { return },
                        () = sender.closed() => return,
                    }
                    continue;
                }
                for event in page {
                    next = event.global_position + 1;
                    if sender.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(receiver).boxed()
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        Ok(lock(&self.log).verify())
    }
}
