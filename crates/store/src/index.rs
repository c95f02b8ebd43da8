//! The derived indexes of the sled backend: stream id + version -> global position, and
//! event id -> global position.
//!
//! They live in sled's `index` tree, but not on the append path: the writer adds each
//! group's entries to an in-memory overlay, and moves the overlay into sled in one batch
//! every `OVERLAY_EVENTS_MAX` events (and on close). sled's cost is per entry and per
//! page touched, so one sorted batch of thousands of entries writes far less than a few
//! entries per commit, and the commit path flushes little more than the log itself. The
//! overlay is never needed for durability: `m:indexed_through` says how far the sled index
//! goes, and opening the store re-indexes the log after it.
//!
//! Key layout in the `index` tree:
//! - `s` + stream id length (u16 BE) + stream id + first stream version (u64 BE) ->
//!   first global position (u64 BE) + count (u32 BE): one run per append (its events are
//!   consecutive in both numberings);
//! - `e` + event id (16 bytes) -> global position (u64 BE);
//! - `m:indexed_through` -> the last global position whose entries are in the tree, written
//!   in the same (atomic, single-tree) batch as those entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use events_schema::EntityId;
use uuid::Uuid;

use crate::StoreError;

const INDEXED_THROUGH_KEY: &[u8] = b"m:indexed_through";
/// The overlay is moved into sled once it holds this many events.
const OVERLAY_EVENTS_MAX: usize = 8_192;

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

fn stream_key(stream_id: &EntityId, stream_version: u64) -> Vec<u8> {
    let mut key = stream_prefix(stream_id);
    key.extend_from_slice(&stream_version.to_be_bytes());
    key
}

fn event_key(event_id: Uuid) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = b'e';
    key[1..].copy_from_slice(event_id.as_bytes());
    key
}

/// The events of one append to one stream: consecutive versions at consecutive positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamRun {
    pub(crate) first_version: u64,
    pub(crate) first_position: u64,
    pub(crate) count: u64,
}

impl StreamRun {
    fn from_entry(key: &[u8], value: &[u8]) -> Result<StreamRun, StoreError> {
        let malformed = || StoreError::Corrupt { global_position: 0, reason: "malformed stream index entry".into() };
        let first_version = u64_from(key.get(key.len().saturating_sub(8)..).ok_or_else(malformed)?, "a stream version")?;
        let first_position = u64_from(value.get(..8).ok_or_else(malformed)?, "a stream index position")?;
        let count: [u8; 4] = value.get(8..12).and_then(|b| b.try_into().ok()).ok_or_else(malformed)?;
        Ok(StreamRun { first_version, first_position, count: u64::from(u32::from_be_bytes(count)) })
    }

    fn value(&self) -> [u8; 12] {
        let mut value = [0u8; 12];
        value[..8].copy_from_slice(&self.first_position.to_be_bytes());
        value[8..].copy_from_slice(&(self.count as u32).to_be_bytes());
        value
    }

    pub(crate) fn last_version(&self) -> u64 {
        self.first_version + self.count - 1
    }

    pub(crate) fn holds(&self, stream_version: u64) -> bool {
        (self.first_version..=self.last_version()).contains(&stream_version)
    }

    /// Whether `next` continues this run without a gap in either numbering.
    pub(crate) fn continued_by(&self, next: &StreamRun) -> bool {
        self.first_version + self.count == next.first_version && self.first_position + self.count == next.first_position
    }
}

/// Index entries the writer has made that are not in sled's tree yet.
#[derive(Debug, Default)]
struct Overlay {
    stream_runs: HashMap<EntityId, Vec<StreamRun>>,
    event_positions: HashMap<Uuid, u64>,
    /// The last position covered by the overlay (0 when it is empty).
    through: u64,
}

/// The indexes: sled's tree plus the overlay. Cheap to clone; clones share the overlay.
#[derive(Clone, Debug)]
pub(crate) struct Index {
    tree: sled::Tree,
    /// A std `Mutex`: held only for short, synchronous look-ups, never across an await.
    /// Readers hold it while they read the tree too, so that they see each entry either in
    /// the overlay or in the tree, never neither, while the writer moves the overlay.
    overlay: Arc<Mutex<Overlay>>,
}

impl Index {
    pub(crate) fn new(tree: sled::Tree) -> Index {
        Index { tree, overlay: Arc::new(Mutex::new(Overlay::default())) }
    }

    fn overlay(&self) -> MutexGuard<'_, Overlay> {
        self.overlay.lock().expect("no index look-up panicked")
    }

    /// Where `event_id` was recorded.
    pub(crate) fn event_position(&self, event_id: Uuid) -> Result<Option<u64>, StoreError> {
        let overlay = self.overlay();
        if let Some(position) = overlay.event_positions.get(&event_id) {
            return Ok(Some(*position));
        }
        match self.tree.get(event_key(event_id))? {
            Some(position) => Ok(Some(u64_from(&position, "an event index value")?)),
            None => Ok(None),
        }
    }

    /// The last version of `stream_id` (0 when it has no events).
    pub(crate) fn stream_version(&self, stream_id: &EntityId) -> Result<u64, StoreError> {
        let overlay = self.overlay();
        if let Some(run) = overlay.stream_runs.get(stream_id).and_then(|runs| runs.last()) {
            return Ok(run.last_version());
        }
        match self.tree.scan_prefix(stream_prefix(stream_id)).next_back() {
            Some(entry) => {
                let (key, value) = entry?;
                Ok(StreamRun::from_entry(&key, &value)?.last_version())
            }
            None => Ok(0),
        }
    }

    /// The runs of `stream_id` that hold versions from `from_version` on, in order, until
    /// they hold at least `events_max` events.
    pub(crate) fn stream_runs(&self, stream_id: &EntityId, from_version: u64, events_max: usize) -> Result<Vec<StreamRun>, StoreError> {
        let overlay = self.overlay();
        let mut runs = Vec::new();
        let mut events = 0u64;
        let start = match self.tree.range(stream_prefix(stream_id)..=stream_key(stream_id, from_version)).next_back() {
            Some(entry) => {
                let (key, value) = entry?;
                let run = StreamRun::from_entry(&key, &value)?;
                if run.holds(from_version) { stream_key(stream_id, run.first_version) } else { stream_key(stream_id, from_version) }
            }
            None => stream_key(stream_id, from_version),
        };
        let stored = self.tree.range(start..=stream_key(stream_id, u64::MAX)).map(|entry| {
            let (key, value) = entry?;
            StreamRun::from_entry(&key, &value)
        });
        let pending = overlay.stream_runs.get(stream_id).into_iter().flatten().map(|run| Ok(*run));
        for run in stored.chain(pending) {
            if events >= events_max as u64 {
                break;
            }
            let run = run?;
            if run.last_version() < from_version {
                continue;
            }
            events += run.last_version() + 1 - run.first_version.max(from_version);
            runs.push(run);
        }
        Ok(runs)
    }

    /// The run of `stream_id` that holds `stream_version`, if any.
    pub(crate) fn stream_run_holding(&self, stream_id: &EntityId, stream_version: u64) -> Result<Option<StreamRun>, StoreError> {
        Ok(self.stream_runs(stream_id, stream_version, 1)?.into_iter().next().filter(|run| run.holds(stream_version)))
    }

    /// Adds the entries of one applied group (writer only). `through` is the group's last
    /// position. Moves the overlay into sled when it is full.
    pub(crate) fn add(&self, runs: Vec<(EntityId, StreamRun)>, events: impl Iterator<Item = (Uuid, u64)>, through: u64) -> Result<(), StoreError> {
        let mut overlay = self.overlay();
        for (stream_id, run) in runs {
            overlay.stream_runs.entry(stream_id).or_default().push(run);
        }
        overlay.event_positions.extend(events);
        overlay.through = through;
        if overlay.event_positions.len() >= OVERLAY_EVENTS_MAX {
            Index::persist(&self.tree, &mut overlay)?;
        }
        Ok(())
    }

    /// Moves the overlay into sled now (on close, and before a full verification).
    pub(crate) fn persist_overlay(&self) -> Result<(), StoreError> {
        Index::persist(&self.tree, &mut self.overlay())
    }

    fn persist(tree: &sled::Tree, overlay: &mut Overlay) -> Result<(), StoreError> {
        if overlay.through == 0 {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (stream_id, runs) in &overlay.stream_runs {
            for run in runs {
                batch.insert(stream_key(stream_id, run.first_version), &run.value());
            }
        }
        for (event_id, position) in &overlay.event_positions {
            batch.insert(&event_key(*event_id), &position.to_be_bytes());
        }
        batch.insert(INDEXED_THROUGH_KEY, &overlay.through.to_be_bytes());
        tree.apply_batch(batch)?;
        *overlay = Overlay::default();
        Ok(())
    }

    /// The last position whose entries are in sled's tree.
    pub(crate) fn indexed_through(&self) -> Result<u64, StoreError> {
        match self.tree.get(INDEXED_THROUGH_KEY)? {
            Some(bytes) => u64_from(&bytes, "the index marker"),
            None => Ok(0),
        }
    }

    /// Throws the tree away (when it claims more than the log holds).
    pub(crate) fn clear(&self) -> Result<(), StoreError> {
        *self.overlay() = Overlay::default();
        self.tree.clear()?;
        Ok(())
    }

    /// Writes index entries for events read back from the log (repair on open). Consecutive
    /// events of one stream become one run, as the writer makes them.
    pub(crate) fn write_recovered(
        &self,
        events: &[(EntityId, u64, u64, Uuid)],
        through: u64,
    ) -> Result<(), StoreError> {
        let mut runs: Vec<(EntityId, StreamRun)> = Vec::new();
        let mut batch = sled::Batch::default();
        for (stream_id, stream_version, global_position, event_id) in events {
            batch.insert(&event_key(*event_id), &global_position.to_be_bytes());
            let run = StreamRun { first_version: *stream_version, first_position: *global_position, count: 1 };
            match runs.last_mut() {
                Some((last_stream, last)) if last_stream == stream_id && last.continued_by(&run) => last.count += 1,
                _ => runs.push((stream_id.clone(), run)),
            }
        }
        for (stream_id, run) in runs {
            batch.insert(stream_key(&stream_id, run.first_version), &run.value());
        }
        batch.insert(INDEXED_THROUGH_KEY, &through.to_be_bytes());
        self.tree.apply_batch(batch)?;
        Ok(())
    }
}
