//! Changing stored bytes behind the store's back is found by `verify`.

use crate::run;

fn fill(data: &std::path::Path, count: usize) {
    for i in 1..=count {
        let line = format!(
            r#"{{"event_type":"FieldNoteRecorded","data":{{"author":"staff-1","text":"note number {i:04}"}}}}"#
        );
        assert_eq!(run(data, &["append", "--stream", "notes"], &line).code, 0);
    }
}

#[test]
fn one_changed_payload_byte_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 8);
    {
        // Rewrite position 5 through sled directly, one byte of its payload text changed.
        let db = store_sled::raw::raw_sled_config(dir.path()).open().unwrap();
        let log = db.open_tree("log").unwrap();
        let key = 5u64.to_be_bytes();
        let mut value = log.get(key).unwrap().unwrap().to_vec();
        let at = value.windows(16).position(|w| w == b"note number 0005").unwrap();
        value[at + 15] = b'6';
        log.insert(key, value).unwrap();
        db.flush().unwrap();
    }
    let output = run(dir.path(), &["verify"], "");
    assert_eq!(output.code, 4, "{}", output.stderr);
    assert!(output.stderr.contains("first bad position 5"), "{}", output.stderr);
}

#[test]
fn a_damaged_data_file_that_sled_cuts_short_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 40);
    let path = store_sled::raw::sled_data_file(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"note number 0030";
    let mut damaged = 0;
    let mut from = 0;
    while let Some(found) = bytes[from..].windows(needle.len()).position(|w| w == needle) {
        bytes[from + found + 3] ^= 0x01;
        damaged += 1;
        from += found + needle.len();
    }
    assert!(damaged > 0, "the record is not in the data file");
    std::fs::write(&path, &bytes).unwrap();
    let output = run(dir.path(), &["verify"], "");
    assert_eq!(output.code, 4, "damage went unnoticed or was misreported: {}\n{}", output.stdout, output.stderr);
    assert!(output.stderr.contains("position"), "{}", output.stderr);
    // Whatever sled recovered, nothing after the damage is presented as whole.
    let events = run(dir.path(), &["events"], "");
    assert_eq!(events.code, 4, "a damaged log was printed as whole:\n{}\n{}", events.stdout, events.stderr);
}
