//! The upcasting hook: reads payloads stored at an older schema version and turns them into
//! the current payload type, so that old log bytes stay readable forever.
//!
//! Every event type is at schema version 1 today, so no upcaster exists yet. To change a
//! payload incompatibly: keep the old struct here (e.g. `FieldNoteRecordedV1`), raise the
//! version in the catalogue, add an arm below that decodes the old struct from `seq` and
//! converts it, and add a golden sample of the new version (old samples are never edited).

use serde::de::{self, SeqAccess};

use crate::Event;

/// Decodes a payload of `event_type` written at `schema_version`, older than the current
/// one, and upcasts it. `None` when `seq` has no payload element.
pub(crate) fn decode_older<'de, A: SeqAccess<'de>>(
    event_type: &str,
    schema_version: u16,
    _seq: &mut A,
) -> Result<Option<Event>, A::Error> {
    // Arms of the form `("FieldNoteRecorded", 1) => Ok(seq.next_element::<V1>()?.map(upcast))`
    // go here.
    Err(de::Error::custom(format!("{event_type} schema version {schema_version} has no upcaster")))
}
