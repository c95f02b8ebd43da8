//! The envelope around every event, its stored byte form (a one-byte codec tag, then
//! bincode), and its JSON forms: the line a client submits and the line `events` prints.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::encoding::EventData;
use crate::{EntityId, Event, EventJsonError, Timestamp};

/// The codec tag of records written with bincode 2 (standard configuration).
pub const CODEC_BINCODE_V1: u8 = 1;

/// The largest stored record of one event, in bytes. Also the decoder's allocation limit,
/// so that a damaged length field can never make it allocate more.
pub const RECORD_BYTES_MAX: usize = 32 * 1024;

/// Length in bytes of a chain hash.
pub const CHAIN_HASH_BYTES: usize = 32;

/// A chain hash: `H(previous hash, global position, record bytes)`, computed by the store.
pub type ChainHash = [u8; CHAIN_HASH_BYTES];

/// How far in the future `occurred_at` may be, to allow for devices whose clocks run fast.
pub const OCCURRED_AT_SKEW_MICROS_MAX: i64 = 5 * 60 * 1_000_000;

/// An event as submitted for appending: everything except what the log assigns (stream
/// version, global position, recorded_at, hash).
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// UUIDv7 chosen by the client (so a retry is recognised) or generated for it.
    pub event_id: Uuid,
    /// When it happened in the field; may be well before it reaches the log.
    pub occurred_at: Timestamp,
    /// Who did it (a staff id, or the tool that wrote it).
    pub actor: EntityId,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub event: Event,
}

/// An event as stored in the log, with everything the log assigned.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    /// Position in the whole log: 1, 2, 3, ... without holes.
    pub global_position: u64,
    pub stream_id: EntityId,
    /// Position within its stream: 1, 2, 3, ... without holes.
    pub stream_version: u64,
    pub event_id: Uuid,
    pub occurred_at: Timestamp,
    /// When the log accepted it.
    pub recorded_at: Timestamp,
    pub actor: EntityId,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub event: Event,
    /// The chain hash of this record.
    pub hash: ChainHash,
}

/// The stored fields, in stored order. Borrowed for encoding so that nothing is copied.
#[derive(Serialize)]
struct RecordRef<'a> {
    stream_id: &'a EntityId,
    stream_version: u64,
    event_id: Uuid,
    occurred_at: Timestamp,
    recorded_at: Timestamp,
    actor: &'a EntityId,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    event: &'a Event,
}

#[derive(Deserialize)]
struct Record {
    stream_id: EntityId,
    stream_version: u64,
    event_id: Uuid,
    occurred_at: Timestamp,
    recorded_at: Timestamp,
    actor: EntityId,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    event: Event,
}

/// Why stored bytes could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("unknown codec tag {0}")]
    UnknownCodec(u8),
    #[error("undecodable record: {0}")]
    Bincode(String),
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
}

/// Encodes the stored bytes of `event` at `stream_id`/`stream_version`: the codec tag, then
/// bincode. The global position is not part of the bytes (it is the key) but is covered by
/// the chain hash.
pub fn encode_record(
    stream_id: &EntityId,
    stream_version: u64,
    recorded_at: Timestamp,
    event: &NewEvent,
    out: &mut Vec<u8>,
) {
    let record = RecordRef {
        stream_id,
        stream_version,
        event_id: event.event_id,
        occurred_at: event.occurred_at,
        recorded_at,
        actor: &event.actor,
        correlation_id: event.correlation_id,
        causation_id: event.causation_id,
        event: &event.event,
    };
    out.push(CODEC_BINCODE_V1);
    bincode::serde::encode_into_std_write(&record, out, bincode::config::standard())
        .expect("encoding into a Vec cannot fail");
}

/// Decodes stored bytes (as written by [`encode_record`]) found at `global_position`.
pub fn decode_record(global_position: u64, bytes: &[u8], hash: ChainHash) -> Result<RecordedEvent, DecodeError> {
    let (&tag, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if tag != CODEC_BINCODE_V1 {
        return Err(DecodeError::UnknownCodec(tag));
    }
    let config = bincode::config::standard().with_limit::<RECORD_BYTES_MAX>();
    let (record, read): (Record, usize) =
        bincode::serde::decode_from_slice(body, config).map_err(|error| DecodeError::Bincode(error.to_string()))?;
    if read != body.len() {
        return Err(DecodeError::TrailingBytes(body.len() - read));
    }
    Ok(RecordedEvent {
        global_position,
        stream_id: record.stream_id,
        stream_version: record.stream_version,
        event_id: record.event_id,
        occurred_at: record.occurred_at,
        recorded_at: record.recorded_at,
        actor: record.actor,
        correlation_id: record.correlation_id,
        causation_id: record.causation_id,
        event: record.event,
        hash,
    })
}

/// The JSON form of a stored event, as `gridwatch events` prints it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct EnvelopeJson<'a> {
    pub global_position: u64,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub actor: &'a str,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// The payload; its shape depends on `event_type` (see the per-type schemas).
    #[schemars(with = "serde_json::Value")]
    data: EventDataJson<'a>,
    /// Hex of the chain hash.
    pub hash: String,
}

#[derive(Debug)]
struct EventDataJson<'a>(&'a Event);

impl Serialize for EventDataJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EventData(self.0).serialize(serializer)
    }
}

impl RecordedEvent {
    /// The event as it was before the log recorded it (what an append of it again would be).
    pub fn to_new_event(&self) -> NewEvent {
        NewEvent {
            event_id: self.event_id,
            occurred_at: self.occurred_at,
            actor: self.actor.clone(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            event: self.event.clone(),
        }
    }

    /// The JSON view of this event.
    pub fn to_json(&self) -> EnvelopeJson<'_> {
        EnvelopeJson {
            global_position: self.global_position,
            stream_id: self.stream_id.as_str(),
            stream_version: self.stream_version,
            event_id: self.event_id,
            event_type: self.event.event_type(),
            schema_version: self.event.schema_version(),
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            actor: self.actor.as_str(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            data: EventDataJson(&self.event),
            hash: hex::encode(self.hash),
        }
    }
}

impl Serialize for RecordedEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// One event as a client submits it in JSON (a line of `gridwatch append`, an element of
/// the HTTP append body). Only `event_type` and `data` are required.
///
/// The fields the log assigns (`global_position`, `stream_id`, `stream_version`,
/// `recorded_at`, `hash`) are accepted and ignored, so that a line printed by
/// `gridwatch events` can be appended again elsewhere; any other field is an error.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventLine {
    pub event_type: String,
    pub data: serde_json::Value,
    pub event_id: Option<Uuid>,
    pub occurred_at: Option<Timestamp>,
    pub actor: Option<EntityId>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// Must be the current schema version of `event_type` when given.
    pub schema_version: Option<u16>,
    /// Assigned by the log; ignored on input.
    pub global_position: Option<u64>,
    /// Assigned by the log; ignored on input.
    pub stream_id: Option<String>,
    /// Assigned by the log; ignored on input.
    pub stream_version: Option<u64>,
    /// Assigned by the log; ignored on input.
    pub recorded_at: Option<Timestamp>,
    /// Assigned by the log; ignored on input.
    pub hash: Option<String>,
}

impl EventLine {
    /// Checks the data against its event type and fills in what the client left out:
    /// `actor` from `default_actor`, `occurred_at` from `now`, `event_id` from `new_event_id`.
    /// An `occurred_at` later than `now` plus [`OCCURRED_AT_SKEW_MICROS_MAX`] is refused.
    pub fn into_new_event(
        self,
        default_actor: &EntityId,
        now: Timestamp,
        new_event_id: impl FnOnce() -> Uuid,
    ) -> Result<NewEvent, EventJsonError> {
        if let (Some(given), Some(current)) = (self.schema_version, Event::current_schema_version(&self.event_type)) {
            if given != current {
                return Err(EventJsonError::UnsupportedSchemaVersion { event_type: self.event_type, given, current });
            }
        }
        let event = Event::from_json(&self.event_type, self.data)?;
        let occurred_at = self.occurred_at.unwrap_or(now);
        if occurred_at.as_microsecond() > now.as_microsecond().saturating_add(OCCURRED_AT_SKEW_MICROS_MAX) {
            return Err(EventJsonError::OccurredInTheFuture { occurred_at, now });
        }
        Ok(NewEvent {
            event_id: self.event_id.unwrap_or_else(new_event_id),
            occurred_at,
            actor: self.actor.unwrap_or_else(|| default_actor.clone()),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            event,
        })
    }
}

/// Writes every number of `value` that is a whole number written with a fraction (`494.0`)
/// as the integer it is: JSON (and JSON Schema's `integer`) make no difference between the
/// two, and the payloads' integer fields must not either.
pub fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().unwrap_or(f64::NAN);
            if float.fract() == 0.0 && float.abs() < 9.0e15 {
                // Exact: every whole number under 2^53 is an f64 and an i64 alike.
                *number = serde_json::Number::from(float as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// Reads one value as `T`, whole numbers written with a fraction taken as integers.
fn from_json_value<T: serde::de::DeserializeOwned>(mut value: serde_json::Value) -> Result<T, serde_json::Error> {
    whole_numbers_as_integers(&mut value);
    serde_json::from_value(value)
}

/// Parses event lines as a client submits them: NDJSON (one [`EventLine`] per line, blank
/// lines skipped) or, when the text starts with `[`, one JSON array of them. Fills in what
/// the lines leave out (see [`EventLine::into_new_event`]); the first bad line (or array
/// element), counted from 1, is the error.
pub fn parse_event_lines(input: &str, default_actor: &EntityId, now: Timestamp) -> Result<Vec<NewEvent>, String> {
    let lines: Vec<(usize, Result<EventLine, serde_json::Error>)> = if input.trim_start().starts_with('[') {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(input).map_err(|error| format!("not a JSON array of events: {error}"))?;
        values.into_iter().enumerate().map(|(index, value)| (index + 1, from_json_value(value))).collect()
    } else {
        input
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| (index + 1, serde_json::from_str(line).and_then(from_json_value)))
            .collect()
    };
    let mut events = Vec::with_capacity(lines.len());
    for (number, line) in lines {
        let event = line
            .map_err(|error| error.to_string())
            .and_then(|line| line.into_new_event(default_actor, now, Uuid::now_v7).map_err(|error| error.to_string()))
            .map_err(|error| format!("event {number}: {error}"))?;
        events.push(event);
    }
    if events.is_empty() {
        return Err("no events given".to_owned());
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_number_written_with_a_fraction_is_an_integer_and_a_fraction_is_not() {
        let actor = EntityId::new("cli").expect("valid");
        let now = Timestamp::from_microsecond(1_582_156_800_000_000).expect("valid");
        let line = |interval: &str| {
            format!(
                r#"{{"event_type":"CheckpointScheduleSet","data":{{"checkpoint_id":"gate-1","check_interval_minutes":{interval},"active_from":"08:00","active_until":"20:00"}}}}"#
            )
        };
        let events = parse_event_lines(&line("30.0"), &actor, now).expect("30.0 is the integer 30");
        let Event::CheckpointScheduleSet(schedule) = &events[0].event else { panic!("{:?}", events[0].event) };
        assert_eq!(schedule.check_interval_minutes, 30);
        assert!(parse_event_lines(&line("30.5"), &actor, now).is_err());
        assert!(parse_event_lines(&line("-1.0"), &actor, now).is_err());
    }
}
