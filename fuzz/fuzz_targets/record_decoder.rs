//! The stored record decoder: any bytes either decode or are refused, never a panic; what
//! decodes encodes back to a record that decodes to the same event.
#![no_main]

use events_schema::{decode_record, encode_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(event) = decode_record(7, bytes, [0; 32]) else { return };
    let new = event.to_new_event();
    let mut again = Vec::new();
    encode_record(&event.stream_id, event.stream_version, event.recorded_at, &new, &mut again);
    let decoded = decode_record(7, &again, [0; 32]).expect("a re-encoded record decodes");
    assert_eq!(decoded, event);
});
