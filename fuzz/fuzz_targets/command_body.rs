//! The body of `POST /api/v1/commands`: any bytes are a command or a problem (400/422), never
//! a panic; a command names a valid stream and is decided by the rules (refused or not, on
//! an empty state) without a panic.
#![no_main]

use events_schema::{EntityId, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match server::parse_command_body(bytes) {
        Ok((_, command)) => {
            let _ = command.stream_id();
            let now = Timestamp::from_microsecond(1_582_156_800_000_000).expect("a valid time");
            let context = domain::Context {
                now,
                occurred_at: now,
                actor: EntityId::new("fuzz").expect("a valid id"),
                target: None,
            };
            let _ = domain::decide(&domain::State::default(), &command, &context);
        }
        Err(problem) => assert!(matches!(problem.status.as_u16(), 400 | 422), "{}", problem.status),
    }
});
