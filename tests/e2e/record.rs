//! `gridwatch record` and `gridwatch status`: a gate issue's whole lifecycle from the
//! command line, with the rules' refusals as exit codes.

use crate::run;

fn record(data: &std::path::Path, command: &str, fields: &[&str]) -> crate::Output {
    let mut args = vec!["record", command];
    for field in fields {
        args.push("--set");
        args.push(field);
    }
    run(data, &args, "")
}

fn status(data: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["status"];
    args.extend_from_slice(extra);
    let output = run(data, &args, "");
    assert_eq!(output.code, 0, "{}", output.stderr);
    serde_json::from_str(&output.stdout).unwrap()
}

#[test]
fn a_gate_issue_from_raising_to_verification() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let ok = |output: crate::Output| assert_eq!(output.code, 0, "{}", output.stderr);
    ok(record(data, "register-community", &["community_id=minxin", "name=Minxin"]));
    ok(record(data, "register-grid", &["grid_id=grid-3", "community_id=minxin", "name=Grid 3"]));
    ok(record(
        data,
        "register-site",
        &["site_id=longwu", "grid_id=grid-3", "name=Longwu", "kind=residential_compound"],
    ));
    ok(record(data, "register-checkpoint", &["checkpoint_id=gate-1", "site_id=longwu", "name=Main gate"]));
    ok(record(data, "register-staff", &["staff_id=staff-1", "display_name=Deputy", "role=deployed_cadre"]));
    // The data of a command can come from stdin too.
    let raise = r#"{"issue_id":"courier","checkpoint_id":"gate-1","raised_by":"staff-1","category":"courier_congestion","severity":"high","summary":"tricycles crowd the gate"}"#;
    ok(run(data, &["record", "raise-issue", "--event-id", "01706a4b-2c00-7000-8000-00000000c0de"], raise));
    let raised_at = status(data, &[])["as_of"].as_str().unwrap().to_owned();
    // A retry with the same event id changes nothing.
    let again = run(data, &["record", "raise-issue", "--event-id", "01706a4b-2c00-7000-8000-00000000c0de"], raise);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains(r#""deduplicated":true"#), "{}", again.stdout);
    // Verification before resolution is refused by the rules: exit 3, nothing written.
    let early = record(data, "verify-resolution", &["issue_id=courier", "verified_by=staff-1"]);
    assert_eq!(early.code, 3, "{}", early.stderr);
    assert!(early.stderr.contains("not resolved"), "{}", early.stderr);
    // A malformed command: exit 2.
    assert_eq!(record(data, "raise-issue", &["issue_id=x"]).code, 2);
    assert_eq!(record(data, "no-such-command", &["a=b"]).code, 2);
    ok(record(data, "act-on-issue", &["issue_id=courier", "taken_by=staff-1", "action=cordon tape"]));
    ok(record(data, "escalate-issue", &["issue_id=courier", "escalated_by=staff-1", "escalated_to=subdistrict"]));
    assert_eq!(status(data, &[])["checkpoints"][0]["open_issues"], 1);
    ok(record(data, "resolve-issue", &["issue_id=courier", "resolved_by=staff-1", "resolution=stations moved out"]));
    ok(record(data, "verify-resolution", &["issue_id=courier", "verified_by=staff-1"]));
    let now = status(data, &[]);
    assert_eq!(now["checkpoints"][0]["open_issues"], 0);
    assert_eq!(now["communities"][0]["name"], "Minxin");
    // As it was when the issue had just been raised.
    assert_eq!(status(data, &["--as-of", &raised_at])["checkpoints"][0]["open_issues"], 1);
    // A note from the field on 2020-02-20, replayed with that day.
    let note = run(
        data,
        &[
            "record",
            "record-field-note",
            "--occurred-at",
            "2020-02-20T21:00:00+08:00",
            "--set",
            "author=staff-1",
            "--set",
            "text=rain at gate 2",
        ],
        "",
    );
    assert_eq!(note.code, 0, "{}", note.stderr);
    let replay = run(data, &["replay", "--day", "2020-02-20"], "");
    assert_eq!(replay.code, 0, "{}", replay.stderr);
    let replay: serde_json::Value = serde_json::from_str(&replay.stdout).unwrap();
    assert_eq!(replay["steps"].as_array().unwrap().len(), 1);
    assert_eq!(replay["steps"][0]["event_type"], "FieldNoteRecorded");
    assert_eq!(replay["steps"][0]["local_time"], "21:00:00");
    let before = run(data, &["replay", "--day", "2020-02-20", "--until", "20:59"], "");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&before.stdout).unwrap()["steps"].as_array().unwrap().len(),
        0
    );
    // Its after-action report, in both languages and all formats.
    let report = |format: &str, lang: &str| {
        let output = run(data, &["report", "--day", "2020-02-20", "--format", format, "--lang", lang], "");
        assert_eq!(output.code, 0, "{}", output.stderr);
        output.stdout
    };
    assert!(report("md", "en").contains("21:00 staff-1: rain at gate 2"));
    assert!(report("md", "zh").starts_with("# 工作总结 2020-02-20"));
    assert!(report("html", "en").contains("<h2>Field notes</h2>"));
    let json: serde_json::Value = serde_json::from_str(&report("json", "en")).unwrap();
    assert_eq!(json["field_notes"].as_array().unwrap().len(), 1);
    assert_eq!(json["field_notes"][0]["text"], "rain at gate 2");
    let text = report("text", "zh");
    assert!(text.starts_with("工作总结 2020-02-20\n") && text.contains("21:00 staff-1：rain at gate 2\n"), "{text}");
    assert_eq!(run(data, &["report", "--day", "2020-02-20", "--to", "2020-02-19"], "").code, 2);
    // An unknown format or language is a usage error, not a Markdown report.
    for (flag, value) in [("--format", "pdf"), ("--lang", "fr")] {
        assert_eq!(run(data, &["report", "--day", "2020-02-20", flag, value], "").code, 2, "{flag} {value}");
    }
    let events = crate::events(data, &["--stream", "issue:courier"]);
    assert_eq!(events.len(), 5);
    assert_eq!(events[4]["event_type"], "GateIssueResolutionVerified");
}

#[test]
fn a_refusal_exits_by_its_class_as_the_api_answers_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let ok = |output: crate::Output| assert_eq!(output.code, 0, "{}", output.stderr);
    ok(record(data, "register-community", &["community_id=minxin", "name=Minxin"]));
    ok(record(data, "register-grid", &["grid_id=grid-3", "community_id=minxin", "name=Grid 3"]));
    ok(record(
        data,
        "register-site",
        &["site_id=longwu", "grid_id=grid-3", "name=Longwu", "kind=residential_compound"],
    ));
    ok(record(data, "register-checkpoint", &["checkpoint_id=gate-1", "site_id=longwu", "name=Main gate"]));
    ok(record(data, "register-staff", &["staff_id=staff-1", "display_name=Deputy", "role=deployed_cadre"]));
    let closure = "01706a4b-2c00-7000-8000-00000000c105";
    ok(run(
        data,
        &["record", "close-checkpoint", "--event-id", closure],
        r#"{"checkpoint_id":"gate-1","reason":"night"}"#,
    ));
    // A closure is a lifecycle step: never retracted, whatever the state (invalid: exit 2,
    // the class the API answers 422 for).
    let retract = format!(r#"{{"retracted_event_id":"{closure}","retracted_by":"staff-1","reason":"by mistake"}}"#);
    let refused = run(data, &["record", "retract-event"], &retract);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("cannot be corrected or retracted"), "{}", refused.stderr);
    // An unknown entity: exit 3 (HTTP 404); a transition the state does not allow: exit 3 (409).
    assert_eq!(record(data, "reopen-issue", &["issue_id=nope", "reopened_by=staff-1", "reason=x"]).code, 3);
    assert_eq!(record(data, "close-checkpoint", &["checkpoint_id=gate-1", "reason=again"]).code, 3);
    // An empty text: exit 2 (HTTP 422).
    assert_eq!(record(data, "reopen-checkpoint", &["checkpoint_id=gate-1"]).code, 0);
    assert_eq!(record(data, "close-checkpoint", &["checkpoint_id=gate-1", "reason= "]).code, 2);
}
