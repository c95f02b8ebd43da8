//! The catalogue's contract tests: checked-in JSON Schema is fresh, golden bytes still
//! decode (and re-encode identically), and both encodings round-trip every event type.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use events_schema::samples::{new_event, one_of_each};
use events_schema::*;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn blessing() -> bool {
    std::env::var_os("GRIDWATCH_BLESS").is_some()
}

fn list_files(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            list_files(&path, base, out);
        } else {
            out.insert(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn checked_in_json_schema_matches_the_types() {
    let dir = crate_dir().join("schema");
    let generated = schema::files();
    if blessing() {
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in &generated {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }
    let mut on_disk = BTreeSet::new();
    list_files(&dir, &dir, &mut on_disk);
    let expected: BTreeSet<String> = generated.iter().map(|(path, _)| path.clone()).collect();
    assert_eq!(
        on_disk, expected,
        "schema/ holds other files than the types generate; run GRIDWATCH_BLESS=1 cargo test -p events-schema"
    );
    for (path, text) in generated {
        let stored = std::fs::read_to_string(dir.join(&path)).unwrap();
        assert!(stored == text, "schema/{path} is stale; run GRIDWATCH_BLESS=1 cargo test -p events-schema");
    }
    assert_eq!(expected.iter().filter(|p| p.starts_with("events/")).count(), Event::TYPES.len());
}

/// Encodes one sample of every type as the log would store it.
fn golden_lines() -> Vec<String> {
    let stream = EntityId::new("golden").unwrap();
    let recorded_at: Timestamp = "2020-02-20T10:00:00+08:00".parse().unwrap();
    one_of_each()
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            let position = index as u64 + 1;
            let mut bytes = Vec::new();
            encode_record(&stream, position, recorded_at, &new_event(position, event), &mut bytes);
            let hash = *blake3_free_hash(position, &bytes);
            let recorded = decode_record(position, &bytes, hash).unwrap();
            serde_json::json!({
                "global_position": position,
                "record_hex": hex::encode(&bytes),
                "hash_hex": hex::encode(hash),
                "envelope": recorded,
            })
            .to_string()
        })
        .collect()
}

/// Golden samples are not about the chain: any fixed 32 bytes per record will do.
fn blake3_free_hash(position: u64, bytes: &[u8]) -> Box<ChainHash> {
    let mut hash = [0u8; CHAIN_HASH_BYTES];
    hash[..8].copy_from_slice(&position.to_be_bytes());
    hash[8] = bytes.len() as u8;
    Box::new(hash)
}

#[test]
fn golden_samples_still_decode_and_reencode_identically() {
    let dir = crate_dir().join("golden");
    // Golden files are added, never edited: blessing writes a new file only when some
    // (event type, schema version) has no sample yet.
    let mut covered = BTreeSet::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line_number, line) in text.lines().enumerate() {
            let sample: serde_json::Value = serde_json::from_str(line).unwrap();
            let position = sample["global_position"].as_u64().unwrap();
            let bytes = hex::decode(sample["record_hex"].as_str().unwrap()).unwrap();
            let hash: ChainHash = hex::decode(sample["hash_hex"].as_str().unwrap()).unwrap().try_into().unwrap();
            let recorded = decode_record(position, &bytes, hash)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", file.display(), line_number + 1));
            let stored_version = sample["envelope"]["schema_version"].as_u64().unwrap() as u16;
            covered.insert((recorded.event.event_type(), stored_version));
            if stored_version == recorded.event.schema_version() {
                assert_eq!(
                    serde_json::to_value(&recorded).unwrap(),
                    sample["envelope"],
                    "{}:{}",
                    file.display(),
                    line_number + 1
                );
                let new = recorded.to_new_event();
                let mut again = Vec::new();
                encode_record(&recorded.stream_id, recorded.stream_version, recorded.recorded_at, &new, &mut again);
                assert_eq!(again, bytes, "the encoder changed the bytes of {}:{}", file.display(), line_number + 1);
            }
        }
    }
    let missing: Vec<_> = Event::TYPES.iter().filter(|(t, v)| !covered.contains(&(*t, *v))).collect();
    if !missing.is_empty() && blessing() {
        let name = format!("{:04}-samples.ndjson", files.len() + 1);
        let mut text = golden_lines().join("\n");
        text.push('\n');
        std::fs::write(dir.join(name), text).unwrap();
        return;
    }
    assert!(
        missing.is_empty(),
        "no golden sample for {missing:?}; run GRIDWATCH_BLESS=1 cargo test -p events-schema to add a new golden file"
    );
}

#[test]
fn every_type_round_trips_through_json_and_binary() {
    for event in one_of_each() {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event, "{json}");
        let bytes = bincode::serde::encode_to_vec(&event, bincode::config::standard()).unwrap();
        let (back, read): (Event, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!((back, read), (event, bytes.len()));
    }
}

#[test]
fn the_documented_cli_line_is_accepted() {
    let line = r#"{"event_type":"FieldNoteRecorded","data":{"author":"staff-1","text":"rain at gate 2"}}"#;
    let line: EventLine = serde_json::from_str(line).unwrap();
    let now = Timestamp::now();
    let event = line.into_new_event(&EntityId::new("cli").unwrap(), now, uuid::Uuid::now_v7).unwrap();
    assert_eq!(event.occurred_at, now);
    assert_eq!(event.actor.as_str(), "cli");
    match event.event {
        Event::FieldNoteRecorded(note) => assert_eq!(note.text, "rain at gate 2"),
        other => panic!("decoded as {other:?}"),
    }
}

#[test]
fn bad_json_events_are_rejected_with_the_reason() {
    let actor = EntityId::new("cli").unwrap();
    let cases = [
        (r#"{"event_type":"NoSuchThing","data":{}}"#, "unknown event type"),
        (r#"{"event_type":"FieldNoteRecorded","data":{"author":"staff-1"}}"#, "missing field `text`"),
        (
            r#"{"event_type":"FieldNoteRecorded","data":{"author":"staff-1","text":"x","mood":1}}"#,
            "unknown field `mood`",
        ),
        (r#"{"event_type":"FieldNoteRecorded","data":{"author":"a b","text":"x"}}"#, "invalid id"),
        (
            r#"{"event_type":"GateIssueRaised","data":{"issue_id":"i","checkpoint_id":"c","raised_by":"s","category":"aliens","severity":"high","summary":"x"}}"#,
            "unknown variant `aliens`",
        ),
        (
            r#"{"event_type":"FieldNoteRecorded","schema_version":7,"data":{"author":"s","text":"x"}}"#,
            "schema version 7",
        ),
        (
            r#"{"event_type":"FieldNoteRecorded","occurred_at":"2999-01-01T00:00:00Z","data":{"author":"s","text":"x"}}"#,
            "later than now",
        ),
        (
            r#"{"event_type":"FieldNoteRecorded","occurred_at":"yesterday","data":{"author":"s","text":"x"}}"#,
            "RFC 3339",
        ),
        (r#"{"event_type":"FieldNoteRecorded","event_id":"not-a-uuid","data":{"author":"s","text":"x"}}"#, "UUID"),
    ];
    for (line, reason) in cases {
        let error = serde_json::from_str::<EventLine>(line)
            .map_err(|e| e.to_string())
            .and_then(|l| l.into_new_event(&actor, Timestamp::now(), uuid::Uuid::now_v7).map_err(|e| e.to_string()))
            .unwrap_err();
        assert!(error.contains(reason), "{line}: {error}");
    }
    let error =
        serde_json::from_str::<EventLine>(r#"{"event_type":"FieldNoteRecorded","data":{},"extra":1}"#).unwrap_err();
    assert!(error.to_string().contains("unknown field `extra`"), "{error}");
}

#[test]
fn an_exported_envelope_line_can_be_appended_again() {
    let event = one_of_each().remove(15);
    let new = new_event(1, event.clone());
    let mut bytes = Vec::new();
    encode_record(&EntityId::new("s").unwrap(), 1, Timestamp::now(), &new, &mut bytes);
    let recorded = decode_record(1, &bytes, [7; 32]).unwrap();
    let line: EventLine = serde_json::from_str(&serde_json::to_string(&recorded).unwrap()).unwrap();
    let again = line.into_new_event(&EntityId::new("cli").unwrap(), Timestamp::now(), || panic!("id given")).unwrap();
    assert_eq!(again, new);
}

#[test]
fn bytes_from_a_newer_build_or_a_foreign_codec_fail_clearly() {
    let payload =
        FieldNoteRecorded { author: EntityId::new("s").unwrap(), text: "x".into(), site_id: None, weather: None };
    let bytes =
        bincode::serde::encode_to_vec(("FieldNoteRecorded", 9u16, payload), bincode::config::standard()).unwrap();
    let error = bincode::serde::decode_from_slice::<Event, _>(&bytes, bincode::config::standard()).unwrap_err();
    assert!(error.to_string().contains("newer gridwatch"), "{error}");
    assert_eq!(decode_record(1, &[9, 1, 2], [0; 32]), Err(DecodeError::UnknownCodec(9)));
    assert_eq!(decode_record(1, &[], [0; 32]), Err(DecodeError::Empty));
}

#[test]
fn a_damaged_length_field_is_an_error_not_a_huge_allocation() {
    // Codec tag, then a stream id whose varint length claims 2^62 bytes.
    let mut bytes = vec![CODEC_BINCODE_V1, 253];
    bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
    bytes.extend_from_slice(b"not really that long");
    assert!(matches!(decode_record(1, &bytes, [0; 32]), Err(DecodeError::Bincode(_))));
}

/// One line per kind: what its facts say about the catalogue's sample of it.
fn facts_line(event: &Event) -> String {
    let facts = event.facts();
    let stream = facts.stream().id().unwrap();
    let entities: Vec<String> = facts.entities().iter().map(|e| format!("{:?}:{}", e.kind, e.id)).collect();
    let acting: Vec<&str> = facts.acting().iter().map(|id| id.as_str()).collect();
    let creates = facts.creates().map(|e| format!("{:?}:{}", e.kind, e.id));
    format!(
        "{} stream={stream} access={:?} amendment={:?} place={:?} acting={acting:?} creates={creates:?} entities={entities:?}",
        event.event_type(),
        facts.access(),
        facts.amendment(),
        facts.place(),
    )
}

/// The facts table, pinned: a kind moved to another stream would break the expected
/// versions of every log already written, and a kind's access or amendment decides who may
/// do what. A change shows up here, to be reviewed (bless with `GRIDWATCH_BLESS=1`).
#[test]
fn the_facts_of_every_kind_are_as_reviewed() {
    let path = crate_dir().join("tests").join("facts.txt");
    let lines: Vec<String> = one_of_each().iter().map(facts_line).collect();
    assert_eq!(lines.len(), Event::TYPES.len(), "one line per kind");
    let text = lines.join("\n") + "\n";
    if blessing() {
        std::fs::write(&path, &text).unwrap();
    }
    let reviewed = std::fs::read_to_string(&path).unwrap();
    for (now, then) in text.lines().zip(reviewed.lines()) {
        assert_eq!(now, then, "a kind's facts changed; review, then bless with GRIDWATCH_BLESS=1");
    }
    assert_eq!(text.lines().count(), reviewed.lines().count(), "kinds were added or removed; review and bless");
}

#[test]
fn a_version_1_day_seal_reads_as_an_unsigned_first_seal() {
    let text = std::fs::read_to_string(crate_dir().join("golden/0001-samples.ndjson")).unwrap();
    let line = text.lines().find(|line| line.contains("\"event_type\":\"DaySealed\"")).unwrap();
    let sample: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(sample["envelope"]["schema_version"], 1);
    let bytes = hex::decode(sample["record_hex"].as_str().unwrap()).unwrap();
    let recorded = decode_record(32, &bytes, [0; 32]).unwrap();
    assert_eq!(recorded.event.schema_version(), 2, "read as the current version");
    let Event::DaySealed(seal) = recorded.event else { panic!("{:?}", recorded.event) };
    assert_eq!((seal.sequence, seal.event_count, seal.chain_head_position), (1, 120, 120));
    assert_eq!((seal.last_global_position, seal.first_global_position), (120, 0));
    assert!(seal.signature.is_empty() && seal.key_id.is_empty() && seal.merkle_root.is_empty());
}
