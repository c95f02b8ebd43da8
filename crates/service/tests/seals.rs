//! Day seals, the day export and event proofs: made by the service, checked offline.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use domain::Command;
use events_schema::*;
use jiff::tz::TimeZone;
use service::Service;
use service::day_file::{Leniency, parse_public_key, verify_file};
use service::seal_key::SealKey;
use store_sled::{SledConfig, SledStore};

mod common;
use common::{at, gate_check, id, in_the_field};

const UNSEALED: Leniency = Leniency { allow_unsealed: true, ..Leniency::STRICT };
const UNSIGNED: Leniency = Leniency { allow_unsigned: true, ..Leniency::STRICT };

fn check() -> Command {
    Command::RecordPatrolCheck(gate_check(CheckResult::Ok))
}

async fn world(service: &Service<SledStore>) {
    for command in common::world() {
        service.execute(&command, &in_the_field("2020-06-01T07:00:00+08:00"), Timestamp::now()).await.unwrap();
    }
}

fn june(day: i8) -> jiff::civil::Date {
    jiff::civil::date(2020, 6, day)
}

#[tokio::test]
async fn sealed_days_export_and_prove_offline_and_every_tampering_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = SealKey::create(&dir.path().join("seal.key")).unwrap();
    let public = key.public();
    let store = SledStore::open(SledConfig::new(dir.path().join("data"))).unwrap();
    let service = Arc::new(Service::open(store, TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap()).await.unwrap());
    world(&service).await;
    for hour in 8..20 {
        service
            .execute(&check(), &in_the_field(&format!("2020-06-01T{hour:02}:10:00+08:00")), Timestamp::now())
            .await
            .unwrap();
    }
    service.execute(&check(), &in_the_field("2020-06-02T09:00:00+08:00"), Timestamp::now()).await.unwrap();

    // Sealing the 1st while writers add checks of the 1st: every event lands in a seal.
    let writer = {
        let service = service.clone();
        tokio::spawn(async move {
            for minute in 0..30 {
                let when = format!("2020-06-01T21:{minute:02}:00+08:00");
                service.execute(&check(), &in_the_field(&when), Timestamp::now()).await.unwrap();
            }
        })
    };
    let first = service.seal_day(june(1), &key).await.unwrap().unwrap();
    writer.await.unwrap();
    let addendum = service.seal_day(june(1), &key).await.unwrap();
    let seals = service.day_seals(june(1)).await.unwrap();
    assert_eq!(seals.unsealed_events, 0, "{seals:?}");
    let counts: u64 = seals.seals.iter().map(|s| s.seal.event_count).sum();
    assert_eq!(counts, 5 + 12 + 30, "every event of the 1st is in exactly one seal");
    assert_eq!(seals.seals[0].global_position, first.global_position);
    if let Some(addendum) = &addendum {
        let Event::DaySealed(seal) = &addendum.event else { panic!() };
        assert_eq!((seal.sequence, seal.previous_seal_position), (2, first.global_position));
    }
    assert!(service.seal_day(june(1), &key).await.unwrap().is_none(), "nothing new, no seal");
    // A seal written by hand (a raw append) is refused: it could claim to cover anything.
    let stored = service.events(first.global_position, 1).await.unwrap().remove(0);
    let forged = NewEvent {
        event_id: uuid::Uuid::now_v7(),
        occurred_at: stored.occurred_at,
        actor: stored.actor,
        correlation_id: None,
        causation_id: None,
        event: stored.event,
    };
    let refused = service.append_raw(&id("seals"), store::ExpectedVersion::Any, vec![forged]).await.unwrap();
    assert!(matches!(refused, Err(store::Rejection::Invalid(_))), "{refused:?}");
    // A late check of the 1st: not sealed until the next addendum.
    service.execute(&check(), &in_the_field("2020-06-01T23:00:00+08:00"), Timestamp::now()).await.unwrap();
    assert_eq!(service.day_seals(june(1)).await.unwrap().unsealed_events, 1);
    // The day's report shows its seals and the late event not sealed yet.
    let report = service.summary(june(1), june(1), None, service::Times::NOW).await.unwrap();
    assert_eq!((report.day_seals.len(), report.unsealed_events), (seals.seals.len(), 1));
    assert_eq!(report.day_seals[0].event_count, 17);
    let export = service.export_days(june(1), june(1), Some(&key)).await.unwrap();
    let unsealed = verify_file(&export, Some(&public), Leniency::STRICT).unwrap_err();
    assert!(unsealed.message.contains("covered by no seal"), "{unsealed}");
    assert!(verify_file(&export, Some(&public), UNSEALED).unwrap().unsealed_lines.len() == 1);
    let late = service.seal_day(june(1), &key).await.unwrap().unwrap();
    let Event::DaySealed(late_seal) = &late.event else { panic!() };
    assert_eq!(late_seal.event_count, 1);
    // The 2nd is sealed too (the export of both days chains the seals).
    service.seal_day(june(2), &key).await.unwrap().unwrap();

    let export = service.export_days(june(1), june(2), Some(&key)).await.unwrap();
    let report = verify_file(&export, Some(&public), Leniency::STRICT).unwrap();
    assert_eq!((report.events, report.key_trusted), (5 + 12 + 30 + 1 + 1, true));
    assert!(report.seals >= 3);
    // Without a trusted key: checked against the file's own key.
    assert!(!verify_file(&export, None, Leniency::STRICT).unwrap().key_trusted);
    let key_json = serde_json::to_string(&public).unwrap();
    assert_eq!(parse_public_key(&key_json).unwrap(), public);

    // The same export as CloudEvents: every line a CloudEvent, checked the same way.
    let cloud = service::day_file::to_cloudevents(&export).unwrap();
    let report = verify_file(&cloud, Some(&public), Leniency::STRICT).unwrap();
    assert_eq!((report.kind, report.events), ("export (CloudEvents)", 5 + 12 + 30 + 1 + 1));
    let cloud_lines: Vec<String> = cloud.lines().map(str::to_owned).collect();
    // Every line is a CloudEvent for the CloudEvents project's own SDK.
    for (number, line) in cloud_lines.iter().enumerate() {
        use cloudevents::AttributesReader;
        let event: cloudevents::Event =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", number + 1));
        assert_eq!(event.specversion(), cloudevents::event::SpecVersion::V10);
        assert!(event.ty().starts_with("gridwatch."), "{}", event.ty());
        if event.ty() == "gridwatch.PatrolCheckRecorded" {
            assert!(event.extension("gwposition").is_some() && event.extension("gwleaf").is_some());
            assert!(event.time().is_some() && event.subject() == Some("checkpoint:gate-1"));
        }
    }
    let third: serde_json::Value = serde_json::from_str(&cloud_lines[2]).unwrap();
    assert_eq!(
        (third["specversion"].clone(), third["type"].clone()),
        ("1.0".into(), "gridwatch.GridRegistered".into())
    );
    assert!(third["gwposition"].is_string() && third["gwleaf"].is_string() && third["gwsealposition"].is_string());
    for (attribute, value) in [("source", "/elsewhere"), ("gwleaf", "00"), ("gwactor", "someone-else")] {
        let mut bent = third.clone();
        bent[attribute] = serde_json::Value::String(value.into());
        let mut lines = cloud_lines.clone();
        lines[2] = bent.to_string();
        let error = verify_file(&(lines.join("\n") + "\n"), Some(&public), Leniency::STRICT).unwrap_err();
        assert_eq!(error.line, 3, "{attribute}: {error}");
    }

    // Tampering, each named by its line (lines count from 1; line 1 is the header).
    let lines: Vec<&str> = export.lines().collect();
    let rebuilt = |lines: &[String]| lines.join("\n") + "\n";
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let event_line = 3; // the 2nd event of the 1st
    // A changed byte that keeps the line canonical JSON: the grid's name.
    let mut changed = owned.clone();
    changed[event_line - 1] = changed[event_line - 1].replacen("\"name\":\"Grid 3\"", "\"name\":\"Grid 4\"", 1);
    assert!(changed != owned, "the line was changed");
    assert_eq!(verify_file(&rebuilt(&changed), Some(&public), Leniency::STRICT).unwrap_err().line, event_line);
    // A changed byte that breaks canonical form.
    let mut spaced = owned.clone();
    spaced[event_line - 1] = spaced[event_line - 1].replacen(':', ": ", 1);
    assert_eq!(verify_file(&rebuilt(&spaced), Some(&public), Leniency::STRICT).unwrap_err().line, event_line);
    // A removed line: the seal that covered it says so.
    let mut removed = owned.clone();
    removed.remove(event_line - 1);
    let error = verify_file(&rebuilt(&removed), Some(&public), Leniency::STRICT).unwrap_err();
    assert!(error.message.contains("removed"), "{error}");
    let seal_line = owned.iter().position(|l| l.contains("\"event_type\":\"DaySealed\"")).unwrap() + 1;
    assert_eq!(error.line, seal_line - 1);
    // Two lines swapped.
    let mut swapped = owned.clone();
    swapped.swap(event_line - 1, event_line);
    // The second of the two is the first line out of order.
    assert_eq!(verify_file(&rebuilt(&swapped), Some(&public), Leniency::STRICT).unwrap_err().line, event_line + 1);
    // A line inserted: a copy of an event of the 1st, given the position of the 2nd's check
    // (18, inside the first seal's range), right after position 17 where it belongs.
    let after = owned.iter().position(|l| l.contains("\"global_position\":17,")).unwrap();
    let copy = owned[after].replacen("\"global_position\":17,", "\"global_position\":18,", 1);
    let mut inserted = owned.clone();
    inserted.insert(after + 1, copy);
    let error = verify_file(&rebuilt(&inserted), Some(&public), Leniency::STRICT).unwrap_err();
    assert_eq!(error.line, after + 2, "the inserted line itself: {error}");
    // A copy of a line with its own position: out of order, named.
    let mut doubled = owned.clone();
    doubled.insert(event_line, owned[event_line - 1].clone());
    assert_eq!(verify_file(&rebuilt(&doubled), Some(&public), Leniency::STRICT).unwrap_err().line, event_line + 1);
    // A seal replaced by one signed with another key.
    let other = SealKey::create(&dir.path().join("other.key")).unwrap();
    let Event::DaySealed(mut forged) = first.event.clone() else { panic!() };
    forged.key_id = other.public().key_id;
    forged.signature = hex::encode(other.sign(&service::day_file::signing_input(&forged)));
    let forged_line = service::day_file::export_line(&RecordedEvent { event: forged.clone().into(), ..first.clone() });
    let mut replaced = owned.clone();
    replaced[seal_line - 1] = forged_line;
    let error = verify_file(&rebuilt(&replaced), Some(&public), Leniency::STRICT).unwrap_err();
    assert_eq!(error.line, seal_line, "{error}");
    // A seal whose count is changed (and re-signed by nobody): its signature fails.
    let mut recounted = owned.clone();
    recounted[seal_line - 1] = recounted[seal_line - 1].replacen("\"event_count\":", "\"event_count\":1", 1);
    assert_eq!(verify_file(&rebuilt(&recounted), Some(&public), Leniency::STRICT).unwrap_err().line, seal_line);
    // The forged seal passes only when its own key is trusted... and then the events must
    // still be what it covers.
    assert!(verify_file(&rebuilt(&replaced), Some(&other.public()), Leniency::STRICT).is_err());

    // The service checks every seal against the log, and against the key it is given.
    let check = service.verify_seals(Some(&public)).await.unwrap();
    assert!(check.seals >= 4 && check.problems.is_empty(), "{check:?}");
    let check = service.verify_seals(Some(&other.public())).await.unwrap();
    assert_eq!(check.problems.len() as u64, check.seals, "none is signed by the other key");
    assert!(check.problems[0].reason.contains("not a key this check trusts"), "{:?}", check.problems[0]);

    // The last addendum of the 1st left out, with the event it covers: only the signature
    // line can tell, and it does.
    let addendum_line = owned
        .iter()
        .position(|l| {
            l.contains("\"event_type\":\"DaySealed\"")
                && l.contains("\"local_day\":\"2020-06-01\",\"merkle_root\"")
                && l.contains("\"sequence\":3,")
        })
        .unwrap();
    let late_position = late.global_position - 1;
    let late_line = owned.iter().position(|l| l.contains(&format!("\"global_position\":{late_position},"))).unwrap();
    let mut cut = owned.clone();
    cut.remove(addendum_line + 1);
    cut.remove(addendum_line);
    cut.remove(late_line);
    let error = verify_file(&rebuilt(&cut), Some(&public), Leniency::STRICT).unwrap_err();
    assert_eq!(error.line, cut.len(), "the signature line: {error}");
    assert!(error.message.contains("not the one that was signed"), "{error}");
    // A seal's envelope changed (not its signed data): the next seal names it.
    let mut moved = owned.clone();
    moved[seal_line - 1] = moved[seal_line - 1].replacen("\"recorded_at\":\"2", "\"recorded_at\":\"1", 1);
    assert_eq!(verify_file(&rebuilt(&moved), Some(&public), Leniency::STRICT).unwrap_err().line, seal_line);
    // The last seal's envelope changed: only the signature line can tell.
    let last_seal = owned.iter().rposition(|l| l.contains("\"event_type\":\"DaySealed\"")).unwrap();
    let mut moved = owned.clone();
    moved[last_seal] = moved[last_seal].replacen("\"recorded_at\":\"2", "\"recorded_at\":\"1", 1);
    assert_eq!(verify_file(&rebuilt(&moved), Some(&public), Leniency::STRICT).unwrap_err().line, owned.len());
    // The leaf hashes changed: their own line; an event changed with its leaf hash: the leaf line.
    let mut leaves = owned.clone();
    let mut first_leaf: serde_json::Value = serde_json::from_str(&owned[seal_line]).unwrap();
    first_leaf["leaf_hashes"][0] = serde_json::Value::String("00".repeat(32));
    leaves[seal_line] = serde_json_canonicalizer::to_string(&first_leaf).unwrap();
    assert_eq!(verify_file(&rebuilt(&leaves), Some(&public), Leniency::STRICT).unwrap_err().line, seal_line + 1);
    let mut both = changed.clone();
    let mut listed: serde_json::Value = serde_json::from_str(&owned[seal_line]).unwrap();
    listed["leaf_hashes"][event_line - 2] =
        serde_json::Value::String(service::day_file::leaf_hash(&changed[event_line - 1]));
    both[seal_line] = serde_json_canonicalizer::to_string(&listed).unwrap();
    assert_eq!(verify_file(&rebuilt(&both), Some(&public), Leniency::STRICT).unwrap_err().line, seal_line + 1);
    // CR LF line ends are not the format.
    assert_eq!(verify_file(&export.replace('\n', "\r\n"), Some(&public), Leniency::STRICT).unwrap_err().line, 1);
    // An export made without a key has no signature line: refused unless asked to list.
    let unsigned = service.export_days(june(2), june(2), None).await.unwrap();
    let error = verify_file(&unsigned, Some(&public), Leniency::STRICT).unwrap_err();
    assert!(error.message.contains("no signature line"), "{error}");
    assert!(!verify_file(&unsigned, Some(&public), UNSIGNED).unwrap().export_signed);
    // Listing unsealed events does not let an export without its signature line through.
    let error = verify_file(&unsigned, Some(&public), UNSEALED).unwrap_err();
    assert!(error.message.contains("no signature line"), "{error}");
    // Without a trusted key, a key added to the header cannot sign the file (else lines
    // could be cut and the file re-signed): refused at the signature line.
    let mut header: serde_json::Value = serde_json::from_str(&owned[0]).unwrap();
    header["public_keys"].as_array_mut().unwrap().push(serde_json::to_value(other.public()).unwrap());
    let mut resigned = owned[..owned.len() - 1].to_vec();
    resigned[0] = serde_json_canonicalizer::to_string(&header).unwrap();
    let body = rebuilt(&resigned);
    let trailer = service::day_file::export_trailer(&body, &other);
    assert!(verify_file(&(body.clone() + &trailer + "\n"), None, Leniency::STRICT).is_err());
    // ...while the file's own seal key signing it is the untrusted check passing.
    let signed_by_seals = body.clone() + &service::day_file::export_trailer(&body, &key) + "\n";
    let report = verify_file(&signed_by_seals, None, Leniency::STRICT).unwrap();
    assert_eq!(report.export_key_id.as_deref(), Some(public.key_id.as_str()));
    let error = verify_file(&(body + &trailer + "\n"), None, Leniency::STRICT).unwrap_err();
    assert_eq!(error.line, owned.len(), "{error}");
    assert!(error.message.contains("not a key this check trusts"), "{error}");
    // A CloudEvent that a parser taking the first of two members would read differently.
    let mut doubled_member = cloud_lines.clone();
    doubled_member[2] = doubled_member[2].replacen('{', "{\"data\":{\"name\":\"Forged\"},", 1);
    let error = verify_file(&(doubled_member.join("\n") + "\n"), Some(&public), Leniency::STRICT).unwrap_err();
    assert_eq!(error.line, 3, "{error}");
    // A seal's root changed in its CloudEvent: named at the seal, not at an event.
    let cloud_seal = cloud_lines.iter().position(|l| l.contains("\"type\":\"gridwatch.DaySealed\"")).unwrap();
    let mut bent_seal: serde_json::Value = serde_json::from_str(&cloud_lines[cloud_seal]).unwrap();
    bent_seal["data"]["merkle_root"] = serde_json::Value::String("11".repeat(32));
    let mut lines = cloud_lines.clone();
    lines[cloud_seal] = bent_seal.to_string();
    assert_eq!(
        verify_file(&(lines.join("\n") + "\n"), Some(&public), Leniency::STRICT).unwrap_err().line,
        cloud_seal + 1
    );

    // A proof for each event of the sealed 1st verifies on its own.
    let day_events: Vec<serde_json::Value> = owned[1..]
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event_type"].is_string() && v["event_type"] != "DaySealed")
        .collect();
    assert_eq!(day_events.len(), 5 + 12 + 30 + 1 + 1);
    for event in &day_events {
        let event_id: uuid::Uuid = event["event_id"].as_str().unwrap().parse().unwrap();
        let proof = service.prove(event_id, std::slice::from_ref(&public)).await.unwrap();
        let report = verify_file(&proof, Some(&public), Leniency::STRICT).unwrap();
        assert_eq!(report.kind, "proof");
        // The same proof against a changed root fails.
        let mut value: serde_json::Value = serde_json::from_str(&proof).unwrap();
        let seal = value["seal"].as_str().unwrap().to_owned();
        let root_start = seal.find("\"merkle_root\":\"").unwrap() + 15;
        let mut bent = seal.clone();
        bent.replace_range(
            root_start..root_start + 1,
            if &seal[root_start..root_start + 1] == "0" { "1" } else { "0" },
        );
        value["seal"] = serde_json::Value::String(bent);
        assert!(verify_file(&value.to_string(), Some(&public), Leniency::STRICT).is_err());
        // A path one hash too long fails (and does not crash the check).
        let mut value: serde_json::Value = serde_json::from_str(&proof).unwrap();
        value["path"].as_array_mut().unwrap().push(serde_json::Value::String("00".repeat(32)));
        assert!(verify_file(&value.to_string(), Some(&public), Leniency::STRICT).is_err());
        // And a proof with a bent path fails too.
        let mut value: serde_json::Value = serde_json::from_str(&proof).unwrap();
        if let Some(first) = value["path"].as_array_mut().and_then(|p| p.first_mut()) {
            *first = serde_json::Value::String("00".repeat(32));
            assert!(verify_file(&value.to_string(), Some(&public), Leniency::STRICT).is_err());
        }
    }
}

#[tokio::test]
async fn the_server_seals_each_day_once_its_grace_period_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let key = SealKey::create(&dir.path().join("seal.key")).unwrap();
    let store = SledStore::open(SledConfig::new(dir.path().join("data"))).unwrap();
    let service = Service::open(store, TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap()).await.unwrap();
    world(&service).await;
    service.execute(&check(), &in_the_field("2020-06-02T09:00:00+08:00"), Timestamp::now()).await.unwrap();
    let grace = std::time::Duration::from_secs(3_600);
    // Half an hour after the 2nd ended: only the 1st is past its grace period.
    let sealed = service.seal_ended_days(&key, at("2020-06-03T00:30:00+08:00"), grace).await.unwrap();
    let days: Vec<_> = sealed
        .iter()
        .map(|seal| match &seal.event {
            Event::DaySealed(seal) => seal.local_day,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(days, [june(1)]);
    let sealed = service.seal_ended_days(&key, at("2020-06-03T01:30:00+08:00"), grace).await.unwrap();
    assert_eq!(sealed.len(), 1, "then the 2nd");
    assert!(service.seal_ended_days(&key, at("2020-06-03T01:31:00+08:00"), grace).await.unwrap().is_empty());
    // A late check of the 1st gets an addendum at the next round.
    service.execute(&check(), &in_the_field("2020-06-01T18:00:00+08:00"), Timestamp::now()).await.unwrap();
    let sealed = service.seal_ended_days(&key, at("2020-06-03T01:32:00+08:00"), grace).await.unwrap();
    let Event::DaySealed(addendum) = &sealed[0].event else { panic!() };
    assert_eq!((addendum.local_day, addendum.sequence, addendum.event_count), (june(1), 2, 1));
}
