//! JSON Schema generated from the types, checked in under `events-schema/schema/`.
//!
//! `cargo test -p events-schema` fails when the checked-in files differ from what the types
//! generate; `GRIDWATCH_BLESS=1 cargo test -p events-schema` rewrites them.

use schemars::generate::SchemaSettings;

use crate::{EnvelopeJson, Event, EventLine};

/// Every schema file as (path relative to `schema/`, pretty JSON text with a final newline).
pub fn files() -> Vec<(String, String)> {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let mut files = vec![
        ("Event.schema.json".to_owned(), generator.root_schema_for::<Event>()),
        ("EventLine.schema.json".to_owned(), generator.root_schema_for::<EventLine>()),
        ("RecordedEvent.schema.json".to_owned(), generator.root_schema_for::<EnvelopeJson<'_>>()),
    ];
    for (event_type, schema) in Event::data_schemas(&mut generator) {
        files.push((format!("events/{event_type}.schema.json"), schema));
    }
    files
        .into_iter()
        .map(|(path, schema)| {
            let mut text = serde_json::to_string_pretty(&schema).expect("a schema is valid JSON");
            text.push('\n');
            (path, text)
        })
        .collect()
}
