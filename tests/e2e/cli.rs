//! The CLI contract: `append`, `events`, `verify`.

use crate::{events, run};

const NOTE: &str = r#"{"event_type":"FieldNoteRecorded","data":{"author":"staff-1","text":"rain at gate 2"}}"#;

fn issue_raised(issue: &str) -> String {
    serde_json::json!({
        "event_type": "GateIssueRaised",
        "occurred_at": "2020-02-20T10:15:00+08:00",
        "actor": "staff-1",
        "data": {
            "issue_id": issue, "checkpoint_id": "longwu-main-gate", "raised_by": "staff-1",
            "category": "courier_congestion", "severity": "high",
            "summary": "courier tricycles crowd the gate"
        }
    })
    .to_string()
}

#[test]
fn append_accepts_the_documented_line_and_prints_positions() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["append", "--stream", "notes"], &format!("{NOTE}\n"));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let printed: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(printed["events"][0]["global_position"], 1);
    assert_eq!(printed["events"][0]["stream_version"], 1);
    assert_eq!(printed["deduplicated"], false);
    let two = format!("{}\n{}\n", issue_raised("i-1"), issue_raised("i-2"));
    let output = run(dir.path(), &["append", "--stream", "issues", "--expected-version", "none"], &two);
    assert_eq!(output.code, 0, "{}", output.stderr);
    let printed: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    let positions: Vec<u64> =
        printed["events"].as_array().unwrap().iter().map(|e| e["global_position"].as_u64().unwrap()).collect();
    assert_eq!(positions, [2, 3]);
    let stored = events(dir.path(), &[]);
    assert_eq!(stored.len(), 3);
    for field in [
        "global_position",
        "stream_id",
        "stream_version",
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "recorded_at",
        "actor",
        "data",
        "hash",
    ] {
        assert!(stored.iter().all(|e| !e[field].is_null()), "field {field} missing");
    }
    assert_eq!(stored[1]["occurred_at"], "2020-02-20T02:15:00Z");
    assert_eq!(stored[1]["data"]["category"], "courier_congestion");
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), &["append", "--stream", "notes"], &format!("{NOTE}\n")).code, 0);
    let bad_inputs = [
        format!("{NOTE}\n{{not json\n"),
        format!("{NOTE}\n{}\n", r#"{"event_type":"NoSuchEvent","data":{}}"#),
        format!("{NOTE}\n{}\n", r#"{"event_type":"FieldNoteRecorded","data":{"author":"staff-1","text":3}}"#),
        format!(
            "{NOTE}\n{}\n",
            r#"{"event_type":"FieldNoteRecorded","data":{"author":"staff-1","text":"x"},"surprise":true}"#
        ),
        format!(
            "{NOTE}\n{}\n",
            r#"{"event_type":"FieldNoteRecorded","occurred_at":"2999-01-01T00:00:00Z","data":{"author":"s","text":"x"}}"#
        ),
        String::new(),
    ];
    for input in &bad_inputs {
        let output = run(dir.path(), &["append", "--stream", "notes"], input);
        assert_eq!(output.code, 2, "input {input:?}: {}", output.stderr);
        assert!(output.stderr.starts_with("error: "), "{}", output.stderr);
    }
    let output = run(dir.path(), &["append", "--stream", "has space"], NOTE);
    assert_eq!(output.code, 2, "{}", output.stderr);
    let output = run(dir.path(), &["append", "--stream", "notes", "--expected-version", "maybe"], NOTE);
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert_eq!(events(dir.path(), &[]).len(), 1, "bad input wrote something");
}

#[test]
fn a_conflict_exits_3_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), &["append", "--stream", "s", "--expected-version", "none"], NOTE).code, 0);
    for expected in ["none", "0", "2"] {
        let output =
            run(dir.path(), &["append", "--stream", "s", "--expected-version", expected], &format!("{NOTE}\n{NOTE}"));
        assert_eq!(output.code, 3, "{expected}: {}", output.stderr);
        assert!(output.stderr.contains("stream s"), "{}", output.stderr);
    }
    assert_eq!(run(dir.path(), &["append", "--stream", "s", "--expected-version", "1"], NOTE).code, 0);
    assert_eq!(events(dir.path(), &[]).len(), 2);
}

#[test]
fn a_retried_append_with_the_same_event_ids_writes_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let line = r#"{"event_type":"FieldNoteRecorded","event_id":"01706a4b-2c00-7000-8000-0000000000aa","data":{"author":"s","text":"x"}}"#;
    let first = run(dir.path(), &["append", "--stream", "s", "--expected-version", "none"], line);
    let again = run(dir.path(), &["append", "--stream", "s", "--expected-version", "none"], line);
    assert_eq!((first.code, again.code), (0, 0), "{}", again.stderr);
    let first: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    let again: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(first["events"], again["events"]);
    assert_eq!(again["deduplicated"], true);
    let elsewhere = run(dir.path(), &["append", "--stream", "t"], line);
    assert_eq!(elsewhere.code, 3, "{}", elsewhere.stderr);
    assert_eq!(events(dir.path(), &[]).len(), 1);
}

#[test]
fn events_filters_by_position_stream_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4 {
        let stream = if round % 2 == 0 { "even" } else { "odd" };
        assert_eq!(run(dir.path(), &["append", "--stream", stream], &format!("{NOTE}\n{NOTE}\n{NOTE}")).code, 0);
    }
    let positions = |args: &[&str]| -> Vec<u64> {
        events(dir.path(), args).iter().map(|e| e["global_position"].as_u64().unwrap()).collect()
    };
    assert_eq!(positions(&["--from", "10"]), [10, 11, 12]);
    assert_eq!(positions(&["--limit", "2"]), [1, 2]);
    assert_eq!(positions(&["--stream", "odd"]), [4, 5, 6, 10, 11, 12]);
    assert_eq!(positions(&["--stream", "odd", "--from", "6", "--limit", "2"]), [6, 10]);
    assert!(positions(&["--stream", "nobody"]).is_empty());
}

#[test]
fn printed_events_can_be_appended_again_elsewhere() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let input = format!("{}\n{}\n{NOTE}\n", issue_raised("i-1"), issue_raised("i-2"));
    assert_eq!(run(source.path(), &["append", "--stream", "s"], &input).code, 0);
    let exported = run(source.path(), &["events", "--stream", "s"], "");
    let imported = run(target.path(), &["append", "--stream", "s", "--expected-version", "none"], &exported.stdout);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let before = events(source.path(), &[]);
    let after = events(target.path(), &[]);
    assert_eq!(before.len(), after.len());
    for (a, b) in before.iter().zip(&after) {
        for field in ["event_id", "event_type", "data", "occurred_at", "actor", "stream_version", "global_position"] {
            assert_eq!(a[field], b[field], "{field}");
        }
    }
}

#[test]
fn verify_passes_on_an_intact_log() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), &["append", "--stream", "s"], &format!("{NOTE}\n{NOTE}")).code, 0);
    let output = run(dir.path(), &["verify"], "");
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.starts_with("ok: 2 events"), "{}", output.stdout);
}

#[test]
fn reading_commands_refuse_a_missing_store_and_bad_input_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    for args in [&["verify"][..], &["events"][..]] {
        let output = run(&missing, args, "");
        assert_eq!(output.code, 1, "{args:?}: {}", output.stderr);
        assert!(output.stderr.contains("no gridwatch store"), "{}", output.stderr);
    }
    let output = run(&missing, &["append", "--stream", "s"], "{not json");
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(!missing.exists(), "a failed command created {}", missing.display());
}

#[test]
fn bench_creates_a_missing_dir_and_removes_its_stores_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not").join("there");
    let output = run(
        dir.path(),
        &["bench", "--scan-only", "--scan-events", "2000", "--seconds", "0.05", "--dir", missing.to_str().unwrap()],
        "",
    );
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.contains("read_all"), "no scan figures: {}", output.stdout);
    assert!(missing.is_dir(), "--dir was not created");
    assert_eq!(std::fs::read_dir(&missing).unwrap().count(), 0, "the benchmark's stores were left behind");
}

#[test]
fn a_seal_key_is_made_once_outside_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys").join("seal.key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    let data = dir.path().join("data");
    let made = run(&data, &["--seal-key", key.to_str().unwrap(), "seal-key", "create"], "");
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(made.stdout.starts_with("seal key "), "{}", made.stdout);
    let secret = std::fs::read_to_string(&key).unwrap().trim().to_owned();
    assert_eq!(secret.len(), 64);
    assert!(!made.stdout.contains(&secret) && !made.stderr.contains(&secret), "the secret is never printed");
    assert!(!data.exists(), "nothing is written to the data directory");
    let again = run(&data, &["--seal-key", key.to_str().unwrap(), "seal-key", "create"], "");
    assert_eq!(again.code, 3, "an existing key is never overwritten: {}", again.stderr);
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim(), secret);
}

#[test]
fn a_day_is_sealed_exported_verified_offline_and_proven_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = dir.path().join("seal.key");
    let key_arg = key.to_str().unwrap();
    let lines = format!("{}\n{}\n", issue_raised("i-1"), issue_raised("i-2"));
    assert_eq!(run(&data, &["append", "--stream", "issues"], &lines).code, 0);
    // No key yet: sealing says how to make one.
    let keyless = run(&data, &["--seal-key", key_arg, "seal", "--day", "2020-02-20"], "");
    assert_eq!(keyless.code, 2, "{}", keyless.stderr);
    assert!(keyless.stderr.contains("seal-key create"), "{}", keyless.stderr);
    assert_eq!(run(&data, &["--seal-key", key_arg, "seal-key", "create"], "").code, 0);
    let sealed = run(&data, &["--seal-key", key_arg, "seal", "--day", "2020-02-20"], "");
    assert_eq!(sealed.code, 0, "{}", sealed.stderr);
    let seal: serde_json::Value = serde_json::from_str(sealed.stdout.trim()).unwrap();
    assert_eq!((seal["event_type"].clone(), seal["data"]["event_count"].clone()), ("DaySealed".into(), 2.into()));
    let verified = run(&data, &["--seal-key", key_arg, "verify"], "");
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert!(verified.stdout.contains("1 day seals hold (signatures checked)"), "{}", verified.stdout);

    let export = dir.path().join("day.ndjson");
    let exported =
        run(&data, &["--seal-key", key_arg, "export", "--day", "2020-02-20", "--output", export.to_str().unwrap()], "");
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    // The public key as an auditor gets it, and a data directory that does not exist.
    let public = dir.path().join("public.json");
    let key_id = seal["data"]["key_id"].as_str().unwrap();
    let header: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&export).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(header["public_keys"][0]["key_id"], key_id);
    std::fs::write(&public, header["public_keys"][0].to_string()).unwrap();
    let nowhere = dir.path().join("no-data-here");
    let check = |file: &std::path::Path| {
        run(&nowhere, &["verify", "--file", file.to_str().unwrap(), "--public-key", public.to_str().unwrap()], "")
    };
    let ok = check(&export);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("2 event(s), 1 seal(s)") && ok.stdout.contains("the key given"), "{}", ok.stdout);
    assert!(!nowhere.exists(), "verify --file needs no data directory");
    // A changed line fails with exit 4, naming it.
    let text = std::fs::read_to_string(&export).unwrap();
    let bent = dir.path().join("bent.ndjson");
    std::fs::write(
        &bent,
        text.replacen("\"summary\":\"courier tricycles crowd the gate\"", "\"summary\":\"all calm\"", 1),
    )
    .unwrap();
    let failed = check(&bent);
    assert_eq!(failed.code, 4, "{}", failed.stdout);
    assert!(failed.stderr.contains("line 2:"), "{}", failed.stderr);
    assert!(ok.stdout.contains(&format!("the export's signature line: signed by {key_id}")), "{}", ok.stdout);
    // Without its signature line the file proves no line was left out: refused, also when
    // unsealed events are allowed, unless --allow-unsigned asks for the line-by-line check.
    let unsigned = dir.path().join("unsigned.ndjson");
    let body: Vec<&str> = text.lines().collect();
    std::fs::write(&unsigned, body[..body.len() - 1].join("\n") + "\n").unwrap();
    let refused = run(
        &nowhere,
        &["verify", "--file", unsigned.to_str().unwrap(), "--public-key", public.to_str().unwrap(), "--allow-unsealed"],
        "",
    );
    assert_eq!(refused.code, 4, "{}", refused.stdout);
    assert!(refused.stderr.contains("--allow-unsigned"), "{}", refused.stderr);
    let listed = run(&nowhere, &["verify", "--file", unsigned.to_str().unwrap(), "--allow-unsigned"], "");
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("no signature line"), "{}", listed.stdout);

    // One event's proof, checked alone.
    let event_id = events(&data, &[])[0]["event_id"].as_str().unwrap().to_owned();
    let proof = run(&data, &["--seal-key", key_arg, "prove", "--event", &event_id], "");
    assert_eq!(proof.code, 0, "{}", proof.stderr);
    let proof_file = dir.path().join("proof.json");
    std::fs::write(&proof_file, &proof.stdout).unwrap();
    let proven = check(&proof_file);
    assert_eq!(proven.code, 0, "{}", proven.stderr);
    assert!(proven.stdout.starts_with("ok: proof 2020-02-20"), "{}", proven.stdout);
    // The proof's event, changed, no longer leads to the sealed root.
    std::fs::write(&proof_file, proof.stdout.replacen("courier tricycles", "courier bicycles", 1)).unwrap();
    assert_eq!(check(&proof_file).code, 4);
}

#[test]
fn a_reader_that_goes_away_is_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), &["append", "--stream", "notes"], &format!("{NOTE}\n")).code, 0);
    // `gridwatch report ... | head -c 1`: the pipe closes before the report is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = crate::gridwatch(dir.path())
        .args(["report", "--day", "2020-02-20", "--format", "html"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
