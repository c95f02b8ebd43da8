//! How an `Event` is written: `{"event_type": ..., "data": {...}}` in JSON, and
//! `(event_type, schema_version, payload)` in the binary log encoding, where an older
//! `schema_version` is upcast to the current payload on read.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::{SerializeStruct, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Event;

/// Why a JSON event was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventJsonError {
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("invalid data for {event_type}: {message}")]
    InvalidData { event_type: String, message: String },
    #[error("occurred_at {occurred_at} is later than now ({now}) by more than the allowed clock skew")]
    OccurredInTheFuture { occurred_at: crate::Timestamp, now: crate::Timestamp },
    #[error("{event_type} has schema version {given}, but this build reads and writes version {current} in JSON")]
    UnsupportedSchemaVersion { event_type: String, given: u16, current: u16 },
}

/// The `data` half of an event's JSON form.
pub(crate) struct EventData<'a>(pub(crate) &'a Event);

impl Serialize for EventData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_data(serializer)
    }
}

/// Serializes only the payload of `event` (the `data` of its JSON form), for a field that
/// holds an event but shows its data (`#[serde(serialize_with = ...)]`).
pub fn serialize_event_data<S: Serializer>(event: &Event, serializer: S) -> Result<S::Ok, S::Error> {
    EventData(event).serialize(serializer)
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            let mut object = serializer.serialize_struct("Event", 2)?;
            object.serialize_field("event_type", self.event_type())?;
            object.serialize_field("data", &EventData(self))?;
            object.end()
        } else {
            let mut tuple = serializer.serialize_tuple(3)?;
            tuple.serialize_element(self.event_type())?;
            tuple.serialize_element(&self.schema_version())?;
            tuple.serialize_element(&EventData(self))?;
            tuple.end()
        }
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
        if deserializer.is_human_readable() {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct JsonEvent {
                event_type: String,
                data: serde_json::Value,
            }
            let json = JsonEvent::deserialize(deserializer)?;
            Event::from_json(&json.event_type, json.data).map_err(de::Error::custom)
        } else {
            deserializer.deserialize_tuple(3, BinaryEventVisitor)
        }
    }
}

struct BinaryEventVisitor;

impl<'de> Visitor<'de> for BinaryEventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event as (event_type, schema_version, payload)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Event, A::Error> {
        let KnownEventType { event_type, current } =
            seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let schema_version: u16 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let event = if schema_version == current {
            Event::deserialize_current(event_type, &mut seq)?
        } else if schema_version < current {
            crate::upcast::decode_older(event_type, schema_version, &mut seq)?
        } else {
            return Err(de::Error::custom(format!(
                "{event_type} schema version {schema_version} was written by a newer gridwatch \
                 (this build knows up to version {current})"
            )));
        };
        event.ok_or_else(|| de::Error::invalid_length(2, &self))
    }
}

/// An event type name read from stored bytes, resolved against the catalogue without
/// allocating: the name becomes the catalogue's own `&'static str`.
struct KnownEventType {
    event_type: &'static str,
    current: u16,
}

impl<'de> Deserialize<'de> for KnownEventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<KnownEventType, D::Error> {
        struct TypeVisitor;
        impl Visitor<'_> for TypeVisitor {
            type Value = KnownEventType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event type name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<KnownEventType, E> {
                Event::TYPES
                    .iter()
                    .find(|(event_type, _)| *event_type == name)
                    .map(|&(event_type, current)| KnownEventType { event_type, current })
                    .ok_or_else(|| E::custom(format!("unknown event type {name:?}")))
            }
        }
        deserializer.deserialize_str(TypeVisitor)
    }
}

impl JsonSchema for Event {
    fn schema_name() -> Cow<'static, str> {
        "Event".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let variants: Vec<serde_json::Value> = Event::data_subschemas(generator)
            .into_iter()
            .map(|(event_type, data)| {
                serde_json::json!({
                    "type": "object",
                    "properties": {
                        "event_type": { "const": event_type },
                        "data": data,
                    },
                    "required": ["event_type", "data"],
                    "additionalProperties": false,
                })
            })
            .collect();
        json_schema!({
            "description": "An event: its type name and its data, checked against that type.",
            "oneOf": variants,
        })
    }
}
