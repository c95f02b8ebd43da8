//! The derived indexes of the sled backend: stream id + stream version -> global position,
//! event id -> global position, and when it happened (`occurred_at`) -> global position.
//!
//! sled's cost (CPU, disk, memory) is per entry far more than per byte: its leaves hold 16
//! entries and every touched leaf is rewritten. So the indexes are packed into few entries
//! and kept off the append path:
//! - the writer adds each group's entries to an in-memory overlay, and moves the overlay into
//!   sled in one batch every `OVERLAY_EVENTS_MAX` events and on close;
//! - the overlay is never needed for durability: `m:indexed_through` says how far the sled
//!   index goes, and opening the store re-indexes the log after it.
//!
//! Key layout in the `index` tree:
//! - `s` + stream id length (u16 BE) + stream id + chunk number (u64 BE) -> the global
//!   positions (u64 BE each) of versions `chunk * 64 + 1 ..`, up to 64 of them;
//! - `e` + an event id (16 bytes), the least id of its bucket when the bucket was made ->
//!   entries of an event id (16 bytes) followed by its global position (u64 BE), in the
//!   order they were indexed. Each id is in the bucket with the greatest key at or below
//!   it, so a look-up is one seek and a scan of one bucket. Buckets fill up to
//!   `BUCKET_BYTES_MAX`; an id above all the ids of a full bucket starts a bucket of its
//!   own, and one among them splits the bucket into its lower and upper half (by id). So
//!   there is a bucket per few hundred ids, however the ids are spread in time: format 2
//!   keyed buckets by the id's millisecond, which for a log written one event at a time
//!   (a real one: one id per millisecond at most) is one bucket, one sled entry, per event;
//! - `o` + the UTC hour of `occurred_at` (microseconds since the epoch / 3,600,000,000, as
//!   an i64 with its sign bit flipped, BE) + a bucket number (u16 BE) -> entries of the
//!   microseconds of `occurred_at` into that hour (u32 BE) followed by the global position
//!   (u64 BE), in the order they were indexed; an hour with more than `BUCKET_BYTES_MAX` holds goes on
//!   in the next bucket number. A range of time (a local day, in any time zone) is a range
//!   of hours, and an event that arrives late lands in the hour it happened;
//! - `m:indexed_through` -> the last global position whose entries are in the tree, written
//!   in the same (atomic, single-tree) batch as those entries;
//! - `m:index_format` -> the layout above (`INDEX_FORMAT`), written in the same batch: an
//!   index of another layout (an older store) is rebuilt from the log on open.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use events_schema::{EntityId, Timestamp};
use uuid::Uuid;

use store::StoreError;

use crate::OrStoreError;

const INDEXED_THROUGH_KEY: &[u8] = b"m:indexed_through";
const INDEX_FORMAT_KEY: &[u8] = b"m:index_format";
/// What [`INDEXED_THROUGH_KEY`] says while the index is being cleared: more than any log.
pub(crate) const CLEARING: u64 = u64::MAX;
/// The most keys [`Index::clear`] removes in one sled batch.
const CLEAR_BATCH_KEYS: usize = 10_000;
/// The layout of the index this code writes: 1 held streams and event ids (no format key
/// was written then), 2 adds the occurred-at buckets, 3 keys the event-id buckets by their
/// least id instead of by millisecond. An index of another format is rebuilt from the log
/// on open.
pub(crate) const INDEX_FORMAT: u64 = 3;
/// The overlay is moved into sled once it holds this many events.
const OVERLAY_EVENTS_MAX: usize = 8_192;
/// Stream versions per stream-index entry.
const STREAM_CHUNK_VERSIONS: u64 = 64;
/// Bytes of one event-id bucket entry: the id, then the position.
const BUCKET_ENTRY_BYTES: usize = 16 + 8;
/// The most bytes one event-id bucket holds (682 ids).
const BUCKET_BYTES_MAX: usize = 16 * 1024 / BUCKET_ENTRY_BYTES * BUCKET_ENTRY_BYTES;
/// Length of an event-id bucket key: `e`, then an id.
const BUCKET_KEY_BYTES: usize = 1 + 16;
/// The first key after every event-id bucket key.
const AFTER_BUCKETS: &[u8] = b"f";
/// Microseconds of one occurred-at bucket prefix (an hour).
const OCCURRED_HOUR_MICROS: i64 = 3_600_000_000;
/// Bytes of one occurred-at entry: the microseconds into the hour, then the position.
const OCCURRED_ENTRY_BYTES: usize = 4 + 8;
/// The most bytes one occurred-at bucket holds (1,365 events).
const OCCURRED_BUCKET_BYTES_MAX: usize = 16 * 1024 / OCCURRED_ENTRY_BYTES * OCCURRED_ENTRY_BYTES;
/// Length of an occurred-at bucket key: `o`, the hour, the bucket number.
const OCCURRED_KEY_BYTES: usize = 1 + 8 + 2;

/// What the index records of one event.
#[derive(Clone, Debug)]
pub(crate) struct IndexEntry {
    pub(crate) stream_id: EntityId,
    pub(crate) stream_version: u64,
    pub(crate) global_position: u64,
    pub(crate) event_id: Uuid,
    pub(crate) occurred_at: Timestamp,
}

/// An i64 as bytes that sort in its order (the sign bit flipped, big-endian).
fn ordered_bytes(value: i64) -> [u8; 8] {
    ((value as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_ordered_bytes(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The key prefix of the occurred-at buckets of the hour holding `micros`.
fn occurred_prefix(micros: i64) -> [u8; 9] {
    let mut prefix = [0u8; 9];
    prefix[0] = b'o';
    prefix[1..].copy_from_slice(&ordered_bytes(micros.div_euclid(OCCURRED_HOUR_MICROS)));
    prefix
}

fn occurred_entry(micros: i64, global_position: u64) -> [u8; OCCURRED_ENTRY_BYTES] {
    let into_hour =
        u32::try_from(micros.rem_euclid(OCCURRED_HOUR_MICROS)).expect("an hour of microseconds fits in u32");
    let mut entry = [0u8; OCCURRED_ENTRY_BYTES];
    entry[..4].copy_from_slice(&into_hour.to_be_bytes());
    entry[4..].copy_from_slice(&global_position.to_be_bytes());
    entry
}

/// The (occurred_at in microseconds, global position) of `entry`, in the bucket whose key is
/// `key`.
fn occurred_of(key: &[u8], entry: &[u8]) -> Result<(i64, u64), StoreError> {
    let hour_bytes =
        key.get(1..9).and_then(|bytes| bytes.try_into().ok()).ok_or_else(|| malformed("occurred-at key"))?;
    let into_hour = u32::from_be_bytes(entry[..4].try_into().expect("entries of 12 bytes"));
    let position = u64::from_be_bytes(entry[4..].try_into().expect("entries of 12 bytes"));
    let micros = from_ordered_bytes(hour_bytes)
        .checked_mul(OCCURRED_HOUR_MICROS)
        .and_then(|start| start.checked_add(i64::from(into_hour)))
        .ok_or_else(|| malformed("occurred-at hour"))?;
    Ok((micros, position))
}

pub(crate) fn u64_from(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        global_position: 0,
        reason: format!("{what} is {} bytes, not 8", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

fn stream_prefix(stream_id: &EntityId) -> Vec<u8> {
    let id = stream_id.as_str().as_bytes();
    let mut key = Vec::with_capacity(3 + id.len() + 8);
    key.push(b's');
    key.extend_from_slice(&(id.len() as u16).to_be_bytes());
    key.extend_from_slice(id);
    key
}

fn chunk_of(stream_version: u64) -> u64 {
    (stream_version - 1) / STREAM_CHUNK_VERSIONS
}

fn chunk_key(stream_id: &EntityId, chunk: u64) -> Vec<u8> {
    let mut key = stream_prefix(stream_id);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// The key of the event-id bucket whose least id is `least`.
fn bucket_key(least: Uuid) -> [u8; BUCKET_KEY_BYTES] {
    let mut key = [0u8; BUCKET_KEY_BYTES];
    key[0] = b'e';
    key[1..].copy_from_slice(least.as_bytes());
    key
}

/// The least id of the event-id bucket whose key is `key`.
fn bucket_least(key: &[u8]) -> Result<Uuid, StoreError> {
    match (key.len(), key.first()) {
        (BUCKET_KEY_BYTES, Some(b'e')) => Ok(Uuid::from_slice(&key[1..]).expect("16 bytes")),
        _ => Err(malformed("event-id bucket key")),
    }
}

/// The (id, position) entries of an event-id bucket.
fn bucket_entries(bucket: &[u8]) -> Result<impl Iterator<Item = (Uuid, u64)> + '_, StoreError> {
    if bucket.len() % BUCKET_ENTRY_BYTES != 0 {
        return Err(malformed("event-id bucket"));
    }
    Ok(bucket.chunks_exact(BUCKET_ENTRY_BYTES).map(|entry| {
        let (id, position) = entry.split_at(16);
        (Uuid::from_slice(id).expect("16 bytes"), u64::from_be_bytes(position.try_into().expect("entries of 24 bytes")))
    }))
}

fn push_bucket_entry(bucket: &mut Vec<u8>, event_id: Uuid, position: u64) {
    bucket.extend_from_slice(event_id.as_bytes());
    bucket.extend_from_slice(&position.to_be_bytes());
}

fn occurred_key(prefix: &[u8; 9], number: u16) -> [u8; OCCURRED_KEY_BYTES] {
    let mut key = [0u8; OCCURRED_KEY_BYTES];
    key[..9].copy_from_slice(prefix);
    key[9..].copy_from_slice(&number.to_be_bytes());
    key
}

fn malformed(what: &str) -> StoreError {
    StoreError::Corrupt { global_position: 0, reason: format!("malformed {what} in the index") }
}

/// The stream version `offset` into the chunk whose key is `key`. Checked: a damaged chunk
/// key is reported, never an overflow.
fn chunk_version(key: &[u8], offset: u64) -> Result<u64, StoreError> {
    chunk_number(key)?
        .checked_mul(STREAM_CHUNK_VERSIONS)
        .and_then(|first| first.checked_add(offset))
        .ok_or_else(|| StoreError::Corrupt { global_position: 0, reason: "a stream index key is out of range".into() })
}

fn chunk_number(key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .map_or(Err(malformed("stream chunk key")), |at| u64_from(&key[at..], "a stream chunk number"))
}

fn positions_of(chunk: &[u8]) -> impl Iterator<Item = u64> + '_ {
    chunk.chunks_exact(8).map(|bytes| u64::from_be_bytes(bytes.try_into().expect("chunks of 8")))
}

/// The layout the index in `tree` was written in (1 when it names none).
fn format_of(tree: &sled::Tree) -> Result<u64, StoreError> {
    match tree.get(INDEX_FORMAT_KEY).or_store()? {
        Some(bytes) => u64_from(&bytes, "the index format"),
        None => Ok(1),
    }
}

/// Index entries the writer has made that are not in sled's tree yet.
#[derive(Debug, Default)]
struct Overlay {
    /// Per stream: the first version not in the tree, and the positions from it on.
    streams: HashMap<EntityId, (u64, Vec<u64>)>,
    event_positions: HashMap<Uuid, u64>,
    /// (occurred_at in microseconds, global position) of every event in the overlay.
    occurred: Vec<(i64, u64)>,
    /// The last position covered by the overlay (0 when it is empty).
    through: u64,
}

#[derive(Debug)]
struct State {
    overlay: Overlay,
    /// The greatest event id indexed so far: an id above it cannot be in the index, which
    /// spares the look-up for nearly every new UUIDv7.
    max_event_id: Uuid,
}

/// The indexes: sled's tree plus the overlay. Cheap to clone; clones share the overlay.
#[derive(Clone, Debug)]
pub(crate) struct Index {
    tree: sled::Tree,
    /// A std `Mutex`: held only for short, synchronous look-ups, never across an await.
    /// Readers hold it while they read the tree too, so that they see each entry either in
    /// the overlay or in the tree, never neither, while the writer moves the overlay.
    state: Arc<Mutex<State>>,
}

impl Index {
    pub(crate) fn open(tree: sled::Tree) -> Result<Index, StoreError> {
        // Every id at or above the last bucket's key is in it, so the greatest id is too. (An
        // index of another format is cleared before anything looks up an id in it.)
        let mut max_event_id = Uuid::nil();
        if format_of(&tree)? == INDEX_FORMAT {
            if let Some(entry) = tree.range(&b"e"[..]..AFTER_BUCKETS).next_back() {
                let (key, bucket) = entry.or_store()?;
                bucket_least(&key)?;
                for (id, _) in bucket_entries(&bucket)? {
                    max_event_id = max_event_id.max(id);
                }
            }
        }
        Ok(Index { tree, state: Arc::new(Mutex::new(State { overlay: Overlay::default(), max_event_id })) })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("no index look-up panicked")
    }

    /// Where `event_id` was recorded.
    pub(crate) fn event_position(&self, event_id: Uuid) -> Result<Option<u64>, StoreError> {
        let state = self.state();
        if let Some(position) = state.overlay.event_positions.get(&event_id) {
            return Ok(Some(*position));
        }
        if event_id > state.max_event_id {
            return Ok(None);
        }
        let Some((_, bucket)) = self.stored_bucket_at_or_below(event_id)? else {
            return Ok(None);
        };
        Ok(bucket_entries(&bucket)?.find(|(id, _)| *id == event_id).map(|(_, position)| position))
    }

    /// The stored event-id bucket that holds `event_id` if any does: the one with the
    /// greatest key at or below it.
    fn stored_bucket_at_or_below(&self, event_id: Uuid) -> Result<Option<(Uuid, sled::IVec)>, StoreError> {
        match self.tree.range(&b"e"[..]..=&bucket_key(event_id)[..]).next_back() {
            Some(entry) => {
                let (key, bucket) = entry.or_store()?;
                Ok(Some((bucket_least(&key)?, bucket)))
            }
            None => Ok(None),
        }
    }

    /// The least key of a stored event-id bucket above `event_id`.
    fn stored_bucket_above(&self, event_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let after = (std::ops::Bound::Excluded(&bucket_key(event_id)[..]), std::ops::Bound::Excluded(AFTER_BUCKETS));
        match self.tree.range::<&[u8], _>(after).next() {
            Some(entry) => Ok(Some(bucket_least(&entry.or_store()?.0)?)),
            None => Ok(None),
        }
    }

    /// The last version of `stream_id` (0 when it has no events).
    pub(crate) fn stream_version(&self, stream_id: &EntityId) -> Result<u64, StoreError> {
        let state = self.state();
        if let Some((first, positions)) = state.overlay.streams.get(stream_id) {
            return Ok(first + positions.len() as u64 - 1);
        }
        self.stored_stream_version(stream_id)
    }

    fn stored_stream_version(&self, stream_id: &EntityId) -> Result<u64, StoreError> {
        match self.tree.scan_prefix(stream_prefix(stream_id)).next_back() {
            Some(entry) => {
                let (key, chunk) = entry.or_store()?;
                chunk_version(&key, (chunk.len() / 8) as u64)
            }
            None => Ok(0),
        }
    }

    /// The positions of `stream_id`'s versions from `from_version` (at least 1) on, at most
    /// `limit`, in version order.
    pub(crate) fn stream_positions(
        &self,
        stream_id: &EntityId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let state = self.state();
        let mut positions = Vec::new();
        let mut next_version = from_version.max(1);
        let start = chunk_key(stream_id, chunk_of(next_version));
        let end = chunk_key(stream_id, u64::MAX);
        for entry in self.tree.range(start..=end) {
            if positions.len() >= limit {
                return Ok(positions);
            }
            let (key, chunk) = entry.or_store()?;
            let first_version = chunk_version(&key, 1)?;
            for (offset, position) in positions_of(&chunk).enumerate() {
                let version = first_version.saturating_add(offset as u64);
                if version == next_version && positions.len() < limit {
                    positions.push(position);
                    next_version = next_version.saturating_add(1);
                }
            }
        }
        if let Some((first, pending)) = state.overlay.streams.get(stream_id) {
            let skip = next_version.saturating_sub(*first) as usize;
            if next_version >= *first {
                positions.extend(pending.iter().skip(skip).take(limit - positions.len().min(limit)));
            }
        }
        positions.truncate(limit);
        Ok(positions)
    }

    /// The position of `stream_id` at `stream_version`, if it has one.
    pub(crate) fn stream_position(&self, stream_id: &EntityId, stream_version: u64) -> Result<Option<u64>, StoreError> {
        Ok(self.stream_positions(stream_id, stream_version, 1)?.first().copied())
    }

    /// Adds the entries of applied events (writer, and repair on open), as
    /// `(stream, stream version, global position, event id)` in log order. `through` is the
    /// last position they cover. Moves the overlay into sled when it is full, or at once
    /// when `persist_now`.
    pub(crate) fn add(
        &self,
        events: impl Iterator<Item = IndexEntry>,
        through: u64,
        persist_now: bool,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        for IndexEntry { stream_id, stream_version, global_position, event_id, occurred_at } in events {
            let (first, positions) = state.overlay.streams.entry(stream_id).or_insert((stream_version, Vec::new()));
            if *first + positions.len() as u64 != stream_version {
                return Err(StoreError::Corrupt {
                    global_position,
                    reason: format!(
                        "stream version {stream_version} does not follow {}",
                        *first + positions.len() as u64 - 1
                    ),
                });
            }
            positions.push(global_position);
            state.overlay.event_positions.insert(event_id, global_position);
            state.overlay.occurred.push((occurred_at.as_microsecond(), global_position));
            state.max_event_id = state.max_event_id.max(event_id);
        }
        state.overlay.through = through;
        if persist_now || state.overlay.event_positions.len() >= OVERLAY_EVENTS_MAX {
            self.persist(&mut state.overlay)?;
        }
        Ok(())
    }

    /// Moves the overlay into sled now (on close).
    pub(crate) fn persist_overlay(&self) -> Result<(), StoreError> {
        let mut state = self.state();
        self.persist(&mut state.overlay)
    }

    fn persist(&self, overlay: &mut Overlay) -> Result<(), StoreError> {
        if overlay.through == 0 {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (stream_id, (first, positions)) in &overlay.streams {
            // Fill the stream's last stored chunk first, then new chunks.
            let mut version = *first;
            let mut pending = positions.as_slice();
            while !pending.is_empty() {
                let chunk = chunk_of(version);
                let key = chunk_key(stream_id, chunk);
                let mut value = if (version - 1) % STREAM_CHUNK_VERSIONS == 0 {
                    Vec::new()
                } else {
                    self.tree.get(&key).or_store()?.map(|stored| stored.to_vec()).unwrap_or_default()
                };
                let room = (STREAM_CHUNK_VERSIONS - (version - 1) % STREAM_CHUNK_VERSIONS) as usize;
                let (now, later) = pending.split_at(room.min(pending.len()));
                for position in now {
                    value.extend_from_slice(&position.to_be_bytes());
                }
                batch.insert(key, value);
                version += now.len() as u64;
                pending = later;
            }
        }
        for (least, bucket) in self.event_buckets_with(&overlay.event_positions)? {
            batch.insert(&bucket_key(least)[..], bucket);
        }
        // Per hour of occurred_at: the same, filling the hour's last bucket and going on.
        let mut hours: BTreeMap<[u8; 9], (u16, Vec<u8>)> = BTreeMap::new();
        for &(micros, position) in &overlay.occurred {
            let prefix = occurred_prefix(micros);
            let (number, bucket) = match hours.entry(prefix) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    let last = match self.tree.scan_prefix(prefix).next_back() {
                        Some(stored) => {
                            let (key, bucket) = stored.or_store()?;
                            let number = key.get(prefix.len()..).and_then(|n| n.try_into().ok());
                            let number =
                                number.map(u16::from_be_bytes).ok_or_else(|| malformed("occurred-at bucket key"))?;
                            (number, bucket.to_vec())
                        }
                        None => (0, Vec::new()),
                    };
                    entry.insert(last)
                }
            };
            if bucket.len() + OCCURRED_ENTRY_BYTES > OCCURRED_BUCKET_BYTES_MAX {
                batch.insert(&occurred_key(&prefix, *number), std::mem::take(bucket));
                *number = number.checked_add(1).ok_or_else(|| malformed("occurred-at bucket number"))?;
            }
            bucket.extend_from_slice(&occurred_entry(micros, position));
        }
        for (prefix, (number, bucket)) in hours {
            batch.insert(&occurred_key(&prefix, number), bucket);
        }
        batch.insert(INDEXED_THROUGH_KEY, &overlay.through.to_be_bytes());
        batch.insert(INDEX_FORMAT_KEY, &INDEX_FORMAT.to_be_bytes());
        self.tree.apply_batch(batch).or_store()?;
        *overlay = Overlay::default();
        Ok(())
    }

    /// The event-id buckets that change when `event_positions` are added, by least id: the
    /// stored buckets they land in, with them, and the new buckets they make.
    fn event_buckets_with(&self, event_positions: &HashMap<Uuid, u64>) -> Result<BTreeMap<Uuid, Vec<u8>>, StoreError> {
        let mut added: Vec<(Uuid, u64)> = event_positions.iter().map(|(id, position)| (*id, *position)).collect();
        added.sort_unstable();
        let mut buckets: BTreeMap<Uuid, Vec<u8>> = BTreeMap::new();
        // The stored bucket the current id falls in, and the next stored bucket's key: ids
        // below it fall in the same one, so in-order ids cost one seek in all.
        let mut stored_floor: Option<Uuid> = None;
        let mut stored_next: Option<Option<Uuid>> = None;
        for (event_id, position) in added {
            if stored_next.is_none_or(|next| next.is_some_and(|next| event_id >= next)) {
                stored_floor = match self.stored_bucket_at_or_below(event_id)? {
                    Some((least, bucket)) => {
                        buckets.entry(least).or_insert_with(|| bucket.to_vec());
                        Some(least)
                    }
                    None => None,
                };
                stored_next = Some(self.stored_bucket_above(event_id)?);
            }
            let floor = buckets.range(..=event_id).next_back().map(|(least, _)| *least).max(stored_floor);
            let Some(least) = floor else {
                let mut bucket = Vec::with_capacity(BUCKET_BYTES_MAX);
                push_bucket_entry(&mut bucket, event_id, position);
                buckets.insert(event_id, bucket);
                continue;
            };
            let bucket = buckets.get_mut(&least).expect("the floor is a bucket of the map");
            if bucket.len() + BUCKET_ENTRY_BYTES <= BUCKET_BYTES_MAX {
                push_bucket_entry(bucket, event_id, position);
                continue;
            }
            let mut entries: Vec<(Uuid, u64)> = bucket_entries(bucket)?.collect();
            if entries.iter().all(|(id, _)| *id < event_id) {
                // Full, and the id comes after all of it: a bucket of its own.
                let mut bucket = Vec::with_capacity(BUCKET_BYTES_MAX);
                push_bucket_entry(&mut bucket, event_id, position);
                buckets.insert(event_id, bucket);
                continue;
            }
            // Full, and the id falls among its ids: split it into its lower and upper half.
            entries.push((event_id, position));
            entries.sort_unstable();
            let upper = entries.split_off(entries.len() / 2);
            let write = |entries: &[(Uuid, u64)]| {
                let mut bucket = Vec::with_capacity(BUCKET_BYTES_MAX);
                for (id, position) in entries {
                    push_bucket_entry(&mut bucket, *id, *position);
                }
                bucket
            };
            if upper[0].0 <= least {
                return Err(StoreError::Corrupt {
                    global_position: position,
                    reason: format!("event id {} is indexed twice", upper[0].0),
                });
            }
            *bucket = write(&entries);
            buckets.insert(upper[0].0, write(&upper));
        }
        Ok(buckets)
    }

    /// The first `limit` (occurred_at, global position) pairs, in that order, of the events
    /// that happened in `from..until` (microseconds), are at most `head` and come after
    /// `after`. Reads hour by hour from the cursor's hour and stops at the end of the hour
    /// that fills the page, so a page costs about a page, wherever it starts.
    pub(crate) fn occurred_page(
        &self,
        from: i64,
        until: i64,
        after: Option<(i64, u64)>,
        head: u64,
        limit: usize,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        let state = self.state();
        let from = after.map_or(from, |(at, _)| at.max(from));
        let mut found = Vec::new();
        if from >= until || limit == 0 {
            return Ok(found);
        }
        let wanted = |at: i64, position: u64| {
            (from..until).contains(&at) && position <= head && after.is_none_or(|after| (at, position) > after)
        };
        let start = occurred_key(&occurred_prefix(from), 0);
        let end = occurred_key(&occurred_prefix(until - 1), u16::MAX);
        // The end (exclusive, in microseconds) of what was scanned when the page filled up.
        let mut scanned_until = until;
        let mut current_hour: Option<[u8; 9]> = None;
        for entry in self.tree.range(start..=end) {
            let (key, bucket) = entry.or_store()?;
            if key.len() != OCCURRED_KEY_BYTES || bucket.len() % OCCURRED_ENTRY_BYTES != 0 {
                return Err(malformed("occurred-at bucket"));
            }
            let hour: [u8; 9] = key[..9].try_into().expect("checked length");
            if current_hour.is_some_and(|current| current != hour) && found.len() >= limit {
                // Every later entry happened in a later hour than all of these.
                let hour_start = from_ordered_bytes(hour[1..].try_into().expect("8 bytes"));
                scanned_until = hour_start.saturating_mul(OCCURRED_HOUR_MICROS).min(until);
                break;
            }
            current_hour = Some(hour);
            for entry in bucket.chunks_exact(OCCURRED_ENTRY_BYTES) {
                let (at, position) = occurred_of(&key, entry)?;
                if wanted(at, position) {
                    found.push((at, position));
                }
            }
        }
        found.extend(
            state.overlay.occurred.iter().copied().filter(|&(at, position)| at < scanned_until && wanted(at, position)),
        );
        found.sort_unstable();
        found.truncate(limit);
        Ok(found)
    }

    /// The layout the stored index was written in (1 when it names none: written before the
    /// format was recorded).
    pub(crate) fn format(&self) -> Result<u64, StoreError> {
        format_of(&self.tree)
    }

    /// The last position whose entries are in sled's tree.
    pub(crate) fn indexed_through(&self) -> Result<u64, StoreError> {
        match self.tree.get(INDEXED_THROUGH_KEY).or_store()? {
            Some(bytes) => u64_from(&bytes, "the index marker"),
            None => Ok(0),
        }
    }

    /// Throws the index away (when it claims more than the log holds, or was written in
    /// another layout), in batches of at most [`CLEAR_BATCH_KEYS`] keys: a log of 10M events
    /// indexed one key per event has tens of millions, too many for one batch in memory.
    /// Before the first batch the index is made to claim more than any log holds
    /// ([`CLEARING`]), so that an open after a crash midway, of this version or an older one,
    /// clears it again before using it (sled recovers a prefix of its writes); the claim goes
    /// last.
    pub(crate) fn clear(&self) -> Result<(), StoreError> {
        let mut state = self.state();
        state.overlay = Overlay::default();
        state.max_event_id = Uuid::nil();
        self.tree.insert(INDEXED_THROUGH_KEY, &CLEARING.to_be_bytes()).or_store()?;
        loop {
            let mut batch = sled::Batch::default();
            let mut keys = 0;
            for key in self.tree.iter().keys() {
                let key = key.or_store()?;
                if key == INDEXED_THROUGH_KEY {
                    continue;
                }
                batch.remove(key);
                keys += 1;
                if keys == CLEAR_BATCH_KEYS {
                    break;
                }
            }
            if keys == 0 {
                break;
            }
            self.tree.apply_batch(batch).or_store()?;
        }
        self.tree.remove(INDEXED_THROUGH_KEY).or_store()?;
        Ok(())
    }
}
