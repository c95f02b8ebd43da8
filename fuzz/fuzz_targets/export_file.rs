//! The day export and event proof files that `gridwatch verify --file` checks offline: any
//! text is a report or an error naming what is wrong, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    for (allow_unsealed, allow_unsigned) in [(false, false), (true, false), (true, true)] {
        let leniency = service::day_file::Leniency { allow_unsealed, allow_unsigned };
        let _ = service::day_file::verify_file(text, None, leniency);
    }
    let _ = service::day_file::to_cloudevents(text);
});
