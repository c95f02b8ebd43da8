//! The upcasting hook: reads payloads stored at an older schema version and turns them into
//! the current payload type, so that old log bytes stay readable forever.
//!
//! To change a payload incompatibly: keep the old struct here (e.g. `DaySealedV1`), raise the
//! version in the catalogue, add an arm below that decodes the old struct from `seq` and
//! converts it, and add a golden sample of the new version (old samples are never edited).

use jiff::civil::Date;
use serde::Deserialize;
use serde::de::{self, SeqAccess};

use crate::{DaySealed, Event};

/// `DaySealed` version 1: the chain head after a day's last event, unsigned, no Merkle root.
#[derive(Deserialize)]
struct DaySealedV1 {
    local_day: Date,
    time_zone: String,
    last_global_position: u64,
    chain_hash: String,
    event_count: u64,
}

impl From<DaySealedV1> for DaySealed {
    fn from(v1: DaySealedV1) -> DaySealed {
        DaySealed {
            local_day: v1.local_day,
            time_zone: v1.time_zone,
            sequence: 1,
            event_count: v1.event_count,
            first_global_position: 0,
            last_global_position: v1.last_global_position,
            merkle_root: String::new(),
            chain_head_position: v1.last_global_position,
            chain_hash: v1.chain_hash,
            previous_seal_position: 0,
            previous_seal_hash: String::new(),
            key_id: String::new(),
            signature: String::new(),
        }
    }
}

/// Decodes a payload of `event_type` written at `schema_version`, older than the current
/// one, and upcasts it. `None` when `seq` has no payload element.
pub(crate) fn decode_older<'de, A: SeqAccess<'de>>(
    event_type: &str,
    schema_version: u16,
    seq: &mut A,
) -> Result<Option<Event>, A::Error> {
    match (event_type, schema_version) {
        ("DaySealed", 1) => Ok(seq.next_element::<DaySealedV1>()?.map(|v1| Event::DaySealed(v1.into()))),
        _ => Err(de::Error::custom(format!("{event_type} schema version {schema_version} has no upcaster"))),
    }
}
