//! The `catalogue!` macro: from one list of payload types and their schema versions it builds
//! the `Event` enum and everything that must stay in step with that list (type names, JSON
//! and binary encodings, JSON Schema), so adding an event kind is one line plus its struct.

/// Declares the event catalogue. Each entry is `PayloadType = schema_version => Command`; the
/// payload type's name is the event type written in the log and in JSON (`"event_type"`);
/// the command is the `domain` crate's (not used here).
macro_rules! catalogue {
    ($( $(#[$doc:meta])* $name:ident = $version:literal => $command:ident ),+ $(,)?) => {
        /// Every kind of event gridwatch records. The variant name is the event type.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Event {
            $( $(#[$doc])* $name($name), )+
        }

        $(
            impl From<$name> for Event {
                fn from(payload: $name) -> Event {
                    Event::$name(payload)
                }
            }
        )+

        impl Event {
            /// Every event type with its current schema version, in catalogue order.
            pub const TYPES: &'static [(&'static str, u16)] = &[$( (stringify!($name), $version), )+];

            /// What this kind means to the rest of gridwatch (see [`crate::EventFacts`]).
            pub fn facts(&self) -> &dyn $crate::EventFacts {
                match self {
                    $( Event::$name(payload) => payload, )+
                }
            }

            /// The event type: the name of the payload type.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( Event::$name(_) => stringify!($name), )+
                }
            }

            /// The schema version of this payload as held in memory, which is always the
            /// current one: older stored versions are upcast when they are read.
            pub fn schema_version(&self) -> u16 {
                match self {
                    $( Event::$name(_) => $version, )+
                }
            }

            /// The current schema version of `event_type`, or `None` when no such type exists.
            pub fn current_schema_version(event_type: &str) -> Option<u16> {
                Event::TYPES.iter().find(|(name, _)| *name == event_type).map(|(_, version)| *version)
            }

            /// Builds an event from its type name and its JSON `data`, checking the data
            /// against that type (field names, types, required fields, no unknown fields).
            pub fn from_json(
                event_type: &str,
                data: serde_json::Value,
            ) -> Result<Event, $crate::EventJsonError> {
                let result = match event_type {
                    $( stringify!($name) => serde_json::from_value::<$name>(data).map(Event::$name), )+
                    _ => return Err($crate::EventJsonError::UnknownEventType(event_type.to_owned())),
                };
                result.map_err(|source| $crate::EventJsonError::InvalidData {
                    event_type: event_type.to_owned(),
                    message: source.to_string(),
                })
            }

            /// Serializes the payload alone (the `data` of the JSON form).
            pub(crate) fn serialize_data<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( Event::$name(payload) => serde::Serialize::serialize(payload, serializer), )+
                }
            }

            /// Reads the next element of `seq` as a payload of `event_type` written at the
            /// current schema version; `None` when `seq` has no more elements.
            pub(crate) fn deserialize_current<'de, A: serde::de::SeqAccess<'de>>(
                event_type: &str,
                seq: &mut A,
            ) -> Result<Option<Event>, A::Error> {
                match event_type {
                    $( stringify!($name) => Ok(seq.next_element::<$name>()?.map(Event::$name)), )+
                    _ => Err(serde::de::Error::custom(format!("unknown event type {event_type:?}"))),
                }
            }

            /// The JSON Schema of every payload type, keyed by event type.
            pub fn data_schemas(generator: &mut schemars::SchemaGenerator) -> Vec<(&'static str, schemars::Schema)> {
                vec![$( (stringify!($name), generator.root_schema_for::<$name>()), )+]
            }

            /// Subschemas of every payload type, for the `Event` one-of schema.
            pub(crate) fn data_subschemas(generator: &mut schemars::SchemaGenerator) -> Vec<(&'static str, schemars::Schema)> {
                vec![$( (stringify!($name), generator.subschema_for::<$name>()), )+]
            }
        }
    };
}

pub(crate) use catalogue;
