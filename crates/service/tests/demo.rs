//! The demo data set: it loads (twice, writing nothing the second time), it tells the
//! courier-congestion story, and the reports of two of its days match their golden files
//! (Markdown and JSON; the chat-group text of the 20th too).

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use jiff::civil::date;
use jiff::tz::TimeZone;
use projections::{Format, Lang, render};
use service::Service;
use store_sled::{SledConfig, SledStore};

/// The seal's hash covers `recorded_at`, which is the time of loading: golden files hold a
/// placeholder instead.
fn without_seal_hash(report: &str, hash: &str) -> String {
    assert_eq!(hash.len(), 64, "a seal hash");
    report.replace(hash, "<chain hash>")
}

fn check_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("GRIDWATCH_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{name} missing; run GRIDWATCH_BLESS=1 cargo test -p service"));
    assert!(
        expected == actual,
        "{name} differs from its golden file; if the change is intended, run GRIDWATCH_BLESS=1 cargo test -p service\n{actual}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_month_loads_once_and_reports_the_courier_story() {
    let dir = tempfile::tempdir().unwrap();
    let zone = TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap();
    let service = Service::open(SledStore::open(SledConfig::new(dir.path())).unwrap(), zone.clone()).await.unwrap();
    let events = service.load_demo().await.unwrap();
    // 27 days, 8 gates, about five checks and two tallies each a day, and the story.
    assert!(events > 1_400, "a month of routine: {events} events");
    assert_eq!(service.load_demo().await.unwrap(), events, "a second load writes nothing");
    assert_eq!(service.demo_commands_len(), events as usize);
    // Generated the same every time: same commands, times and ids.
    let twice = (service::demo::demo_commands(&zone), service::demo::demo_commands(&zone));
    assert_eq!(format!("{:?}", twice.0), format!("{:?}", twice.1));

    let twentieth = service.summary(date(2020, 2, 20), date(2020, 2, 20), None, service::Times::NOW).await.unwrap();
    let courier = twentieth.issues.iter().find(|i| i.issue_id.as_str() == "courier-0220").unwrap();
    assert_eq!(courier.actions.len(), 3);
    assert_eq!(courier.escalated_to, [events_schema::EscalationTarget::Subdistrict]);
    assert_eq!(courier.state, projections::IssueState::Escalated);
    let twenty_first = service.summary(date(2020, 2, 21), date(2020, 2, 21), None, service::Times::NOW).await.unwrap();
    let courier = twenty_first.issues.iter().find(|i| i.issue_id.as_str() == "courier-0220").unwrap();
    assert_eq!(courier.state, projections::IssueState::Verified);
    assert!(courier.minutes_to_resolution.is_some());

    for (day, summary) in [("2020-02-20", &twentieth), ("2020-02-21", &twenty_first)] {
        for (format, extension) in [(Format::Markdown, "md"), (Format::Json, "json")] {
            let report = render(summary, format, Lang::Zh).unwrap();
            check_golden(&format!("report-{day}.zh.{extension}"), &without_seal_hash(&report, &summary.seal_hash));
        }
        let english = render(summary, Format::Markdown, Lang::En).unwrap();
        check_golden(&format!("report-{day}.en.md"), &without_seal_hash(&english, &summary.seal_hash));
    }
    // The chat-group text of the 20th, in both languages, and its figures are the JSON's.
    let json: serde_json::Value = serde_json::from_str(&render(&twentieth, Format::Json, Lang::Zh).unwrap()).unwrap();
    let checks: u64 = json["checks"].as_array().unwrap().iter().map(|c| c["checks"].as_u64().unwrap()).sum();
    let people = json["tallies"]["people_screened"].as_u64().unwrap();
    for (lang, name, figures) in [
        (Lang::Zh, "zh", [format!("巡查 {checks} 次，"), format!("测温验码 {people} 人，")]),
        (Lang::En, "en", [format!("{checks} checks of "), format!("people screened {people}, ")]),
    ] {
        let text = render(&twentieth, Format::Text, lang).unwrap();
        for figure in figures {
            assert!(text.contains(&figure), "{figure:?} in\n{text}");
        }
        check_golden(&format!("report-2020-02-20.{name}.txt"), &without_seal_hash(&text, &twentieth.seal_hash));
    }
    // The JSON holds values: a gap has typed ends, and a supply's quantity is a number.
    let gap = &json["checks"][0]["gaps"][0];
    assert_eq!(json["checks"][0]["checkpoint_id"], "dehong-garage");
    assert_eq!(
        (&gap["day"], &gap["start"], &gap["end"]),
        (&"2020-02-20".into(), &"2020-02-20T07:00:00".into(), &"2020-02-20T11:10:00".into())
    );
    let relief_day = service.summary(date(2020, 2, 17), date(2020, 2, 17), None, service::Times::NOW).await.unwrap();
    let relief: serde_json::Value =
        serde_json::from_str(&render(&relief_day, Format::Json, Lang::En).unwrap()).unwrap();
    let delivery = &relief["supplies"][0];
    assert_eq!(delivery["recipient"], "urban governance office");
    assert_eq!(delivery["occurred_at_local"], "2020-02-17T10:00:00");
    assert_eq!(delivery["items"][0], serde_json::json!({"item": "bread", "quantity": 40, "unit": "loaves"}));
    assert!(delivery["items"].as_array().unwrap().iter().all(|item| item["quantity"].is_u64()));
    // The seal names a position that verify will find with that very hash.
    let sealed = service.events(twentieth.seal_position, 1).await.unwrap();
    let hash: String = sealed[0].hash.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hash, twentieth.seal_hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_from_a_snapshot_equal_views_from_position_zero() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("views.snapshot");
    let zone = TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap();
    let open_store = || SledStore::open(SledConfig::new(dir.path().join("log"))).unwrap();
    let moment: events_schema::Timestamp = "2020-02-20T12:00:00+08:00".parse().unwrap();
    {
        let service = Service::open_with_snapshot(open_store(), zone.clone(), snapshot.clone()).await.unwrap();
        service.load_demo().await.unwrap();
        let covered = service.save_snapshot().await.unwrap().unwrap();
        assert!(covered > 1_000);
        // More events after the snapshot, which a restart must catch up on.
        let retract = domain::Command::RetractEvent(events_schema::EventRetracted {
            retracted_event_id: service.events(covered - 3, 1).await.unwrap()[0].event_id,
            retracted_by: events_schema::EntityId::new("cadre-1").unwrap(),
            reason: "entered twice".into(),
        });
        let meta = service::CommandMeta {
            event_id: None,
            occurred_at: None,
            actor: events_schema::EntityId::new("cadre-1").unwrap(),
            correlation_id: None,
            expected_version: None,
        };
        service.execute(&retract, &meta, events_schema::Timestamp::now()).await.unwrap();
    }
    {
        // Every view, the rules' state included, restored from the snapshot and caught up,
        // equals the views folded from position 0 (two services over one store).
        let store = open_store();
        let restored = Service::open_with_snapshot(store.clone(), zone.clone(), snapshot.clone()).await.unwrap();
        assert!(restored.started_from() > 1_000, "the snapshot was used");
        let folded = Service::open(store, zone.clone()).await.unwrap();
        assert_eq!(folded.started_from(), 0);
        assert_eq!(folded.position().await, restored.position().await);
        assert!(restored.has_the_views_of(&folded).await, "views from the snapshot differ from views from 0");
    }
    let from_snapshot = {
        let service = Service::open_with_snapshot(open_store(), zone.clone(), snapshot.clone()).await.unwrap();
        assert!(service.started_from() > 1_000, "the snapshot was used");
        let status = service.status(moment, None).await.unwrap();
        let report = render(
            &service.summary(date(2020, 2, 20), date(2020, 2, 21), None, service::Times::NOW).await.unwrap(),
            Format::Json,
            Lang::En,
        )
        .unwrap();
        let replay =
            serde_json::to_string(&service.replay(date(2020, 2, 20), None, service::Times::NOW).await.unwrap())
                .unwrap();
        (serde_json::to_string(&status).unwrap(), report, replay, service.position().await)
    };
    let from_zero = {
        let service = Service::open(open_store(), zone.clone()).await.unwrap();
        let status = service.status(moment, None).await.unwrap();
        let report = render(
            &service.summary(date(2020, 2, 20), date(2020, 2, 21), None, service::Times::NOW).await.unwrap(),
            Format::Json,
            Lang::En,
        )
        .unwrap();
        let replay =
            serde_json::to_string(&service.replay(date(2020, 2, 20), None, service::Times::NOW).await.unwrap())
                .unwrap();
        (serde_json::to_string(&status).unwrap(), report, replay, service.position().await)
    };
    assert_eq!(from_snapshot, from_zero);
    // A snapshot of other projection code is ignored, and the views rebuilt from 0.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes[8..12].copy_from_slice(&(service::PROJECTION_CODE_VERSION + 1).to_be_bytes());
    std::fs::write(&snapshot, &bytes).unwrap();
    let service = Service::open_with_snapshot(open_store(), zone, snapshot).await.unwrap();
    assert_eq!(service.started_from(), 0, "the snapshot was ignored");
    assert_eq!(serde_json::to_string(&service.status(moment, None).await.unwrap()).unwrap(), from_zero.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_timeline_read_by_the_day_equals_the_one_folded_from_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let zone = TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap();
    let service = Service::open(SledStore::open(SledConfig::new(dir.path())).unwrap(), zone.clone()).await.unwrap();
    service.load_demo().await.unwrap();
    // A correction of the 20th's courier issue made a week later, recorded now: the 20th's
    // timeline shows the amendment, the 27th's shows the correction with the issue's entities.
    let raised = service.events(1, 10_000).await.unwrap().into_iter().find(|e| {
        matches!(&e.event, events_schema::Event::GateIssueRaised(raised) if raised.issue_id.as_str() == "courier-0220")
    });
    let raised = raised.expect("the demo raises the courier issue");
    let events_schema::Event::GateIssueRaised(original) = &raised.event else { unreachable!() };
    let correction = domain::Command::CorrectEvent(events_schema::EventCorrected {
        corrected_event_id: raised.event_id,
        corrected_by: events_schema::EntityId::new("cadre-1").unwrap(),
        reason: "it was high, not medium".into(),
        replacement: Box::new(
            events_schema::GateIssueRaised { severity: events_schema::Severity::Critical, ..original.clone() }.into(),
        ),
    });
    let meta = service::CommandMeta {
        event_id: None,
        occurred_at: Some("2020-02-27T09:00:00+08:00".parse().unwrap()),
        actor: events_schema::EntityId::new("cadre-1").unwrap(),
        correlation_id: None,
        expected_version: None,
    };
    service.execute(&correction, &meta, events_schema::Timestamp::now()).await.unwrap();
    let mut log = Vec::new();
    loop {
        let page = service.events(log.len() as u64 + 1, 10_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        log.extend(page);
    }
    let mut day = service::demo::DEMO_FIRST_DAY;
    while day <= service::demo::DEMO_LAST_DAY {
        let by_day = service.timeline(day, None, service::Times::NOW).await.unwrap().unwrap();
        assert_eq!(by_day, projections::timeline(&log, &zone, day, None), "{day}");
        assert!(!by_day.is_empty(), "{day} has events");
        day = day.tomorrow().unwrap();
    }
    let courier = events_schema::EntityId::new("courier-0220").unwrap();
    let twentieth = service.timeline(date(2020, 2, 20), Some(&courier), service::Times::NOW).await.unwrap().unwrap();
    assert_eq!(twentieth, projections::timeline(&log, &zone, date(2020, 2, 20), Some(&courier)));
    assert!(twentieth.iter().any(|entry| !entry.amended_by.is_empty()), "the raise shows its later correction");
    let week_later = service.timeline(date(2020, 2, 27), Some(&courier), service::Times::NOW).await.unwrap().unwrap();
    assert_eq!(week_later.len(), 1, "the correction belongs to the issue: {week_later:?}");
    assert_eq!(week_later[0].amends, Some(raised.event_id));
    // An entity no event names is unknown; one named on other days has an empty day.
    assert!(
        service
            .timeline(date(2020, 2, 20), Some(&events_schema::EntityId::new("nobody").unwrap()), service::Times::NOW)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        service.timeline(date(2020, 2, 13), Some(&courier), service::Times::NOW).await.unwrap(),
        Some(Vec::new())
    );
}
