//! The NDJSON (or JSON array) import of `gridwatch append` and of raw appends over HTTP: any
//! text gives events or an error naming the bad line, never a panic; every event given holds
//! a valid UUIDv7 id and writes to JSON.
#![no_main]

use events_schema::{EntityId, Timestamp, parse_event_lines};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let actor = EntityId::new("fuzz").expect("a valid id");
    let now = Timestamp::from_microsecond(1_582_156_800_000_000).expect("a valid time");
    match parse_event_lines(text, &actor, now) {
        Ok(events) => {
            assert!(!events.is_empty());
            for event in events {
                assert_eq!(event.event_id.get_version_num(), 7);
                serde_json::to_string(&event.event).expect("an event serialises");
            }
        }
        Err(error) => assert!(!error.is_empty()),
    }
});
