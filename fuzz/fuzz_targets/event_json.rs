//! One event line's JSON (as `gridwatch append` and raw appends take it, and as `gridwatch
//! events` prints it): any text is an event or an error, never a panic; an event printed as
//! the log prints it reads back as the same event (a printed line can be appended again).
#![no_main]

use events_schema::{EntityId, EventLine, RecordedEvent, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(line) = serde_json::from_slice::<EventLine>(bytes) else { return };
    let actor = EntityId::new("fuzz").expect("a valid id");
    let now = Timestamp::from_microsecond(1_582_156_800_000_000).expect("a valid time");
    let Ok(new) = line.into_new_event(&actor, now, uuid::Uuid::now_v7) else { return };
    let recorded = RecordedEvent {
        global_position: 1,
        stream_id: EntityId::new("fuzz-stream").expect("a valid id"),
        stream_version: 1,
        event_id: new.event_id,
        occurred_at: new.occurred_at,
        recorded_at: now,
        actor: new.actor.clone(),
        correlation_id: new.correlation_id,
        causation_id: new.causation_id,
        event: new.event.clone(),
        hash: [0; 32],
    };
    let printed = serde_json::to_string(&recorded.to_json()).expect("an event prints");
    let again: EventLine = serde_json::from_str(&printed).expect("a printed line reads back");
    let again = again.into_new_event(&actor, now, uuid::Uuid::now_v7).expect("a printed line is valid");
    assert_eq!(again, new);
});
