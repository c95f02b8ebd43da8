//! Stored records as they are, for backups and restores that keep the hash chain byte for
//! byte: [`StoredRecord`], and the checks every backend makes before it writes records that
//! another log recorded ([`check_restore`]).

use std::collections::{HashMap, HashSet};

use events_schema::{ChainHash, EntityId, RecordedEvent, Timestamp, decode_record};
use uuid::Uuid;

use crate::{EVENT_SIZE_BYTES_MAX, RESTORE_RECORDS_MAX, Rejection, StoreError, chain_hash};

/// One record as the log holds it: its global position, the bytes the chain covers (codec
/// tag and bincode of the record, as `events_schema::encode_record` writes them) and its
/// chain hash. The same bytes in any backend: a backup of one restores into another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub global_position: u64,
    pub bytes: Vec<u8>,
    pub hash: ChainHash,
}

/// Where the log ends, as a restore must continue it.
#[derive(Clone, Copy, Debug)]
pub struct LogEnd {
    /// The last position (0 when empty) and its chain hash (zeros when empty).
    pub position: u64,
    pub hash: ChainHash,
    /// The last record's `recorded_at`, if any.
    pub recorded_at: Option<Timestamp>,
}

/// Checks that `records` continue a log that ends at `end`: positions from `end.position + 1`
/// with no gap, each chain link, each record decoding to an event that continues its stream
/// (`stream_version(stream)` is the stream's last version in the log) with an event id the
/// log does not hold (`known(id)`), and `recorded_at` never going back. Returns the decoded
/// events, in order; nothing is written by a caller until all of it holds. `Err` is for the
/// lookups' own failures.
pub fn check_restore(
    records: &[StoredRecord],
    end: LogEnd,
    stream_version: impl Fn(&EntityId) -> Result<u64, StoreError>,
    known: impl Fn(Uuid) -> Result<bool, StoreError>,
) -> Result<Result<Vec<RecordedEvent>, Rejection>, StoreError> {
    if records.is_empty() {
        return Ok(Err(Rejection::Invalid("a restore needs at least one record".into())));
    }
    if records.len() > RESTORE_RECORDS_MAX {
        return Ok(Err(Rejection::Invalid(format!(
            "{} records in one restore; at most {RESTORE_RECORDS_MAX}",
            records.len()
        ))));
    }
    let mut previous = end.hash;
    let mut last_recorded_at = end.recorded_at;
    let mut versions: HashMap<EntityId, u64> = HashMap::new();
    let mut ids = HashSet::with_capacity(records.len());
    let mut events = Vec::with_capacity(records.len());
    for (offset, record) in records.iter().enumerate() {
        let position = end.position + 1 + offset as u64;
        let refuse =
            |reason: String| Rejection::Invalid(format!("record at position {}: {reason}", record.global_position));
        if record.global_position != position {
            return Ok(Err(refuse(format!("the log continues at position {position}"))));
        }
        if record.bytes.len() > EVENT_SIZE_BYTES_MAX {
            return Ok(Err(refuse(format!("{} bytes; at most {EVENT_SIZE_BYTES_MAX}", record.bytes.len()))));
        }
        if chain_hash(&previous, position, &record.bytes) != record.hash {
            return Ok(Err(refuse("its chain hash does not follow from the one before and its bytes".into())));
        }
        let event = match decode_record(position, &record.bytes, record.hash) {
            Ok(event) => event,
            Err(error) => return Ok(Err(refuse(error.to_string()))),
        };
        let version = match versions.get(&event.stream_id) {
            Some(version) => *version,
            None => stream_version(&event.stream_id)?,
        };
        if event.stream_version != version + 1 {
            return Ok(Err(refuse(format!(
                "stream {} is at version {version}, the record says {}",
                event.stream_id, event.stream_version
            ))));
        }
        if !ids.insert(event.event_id) || known(event.event_id)? {
            return Ok(Err(refuse(format!("event id {} is already in the log", event.event_id))));
        }
        if last_recorded_at.is_some_and(|last| event.recorded_at < last) {
            return Ok(Err(refuse("its recorded_at is before the previous record's".into())));
        }
        versions.insert(event.stream_id.clone(), event.stream_version);
        last_recorded_at = Some(event.recorded_at);
        previous = record.hash;
        events.push(event);
    }
    Ok(Ok(events))
}
