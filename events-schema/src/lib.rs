//! The gridwatch event catalogue: the one stable contract of the project.
//!
//! It holds the envelope ([`NewEvent`], [`RecordedEvent`]), every event payload, the stored
//! byte form (codec tag + bincode) with upcasting of older schema versions, the JSON forms,
//! and the JSON Schema generated from the types. It depends on nothing in the workspace.

mod catalogue;
mod encoding;
mod envelope;
mod events;
mod facts;
mod id;
pub mod samples;
pub mod schema;
mod time;
mod upcast;

pub use encoding::{EventJsonError, serialize_event_data};
pub use envelope::{
    CHAIN_HASH_BYTES, CODEC_BINCODE_V1, ChainHash, DecodeError, EnvelopeJson, EventLine, NewEvent,
    OCCURRED_AT_SKEW_MICROS_MAX, RECORD_BYTES_MAX, RecordedEvent, decode_record, encode_record, parse_event_lines,
    whole_numbers_as_integers,
};
pub use events::*;
pub use facts::{Access, Amendment, Amends, EntityKind, EntityRef, EventFacts, Place, Stream, StreamKind};
pub use id::{ENTITY_ID_BYTES_MAX, EntityId, InvalidEntityId};
pub use time::Timestamp;
