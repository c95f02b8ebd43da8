//! The service over the real sled store: commands, retries, conflicts, status as of a time.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use domain::{Command, DomainError};
use events_schema::*;
use jiff::tz::TimeZone;
use service::{CommandMeta, Service, ServiceError};
use store::EventStore;
use store_sled::{SledConfig, SledStore};
use uuid::Uuid;

mod common;
use common::{at, gate_check, id, in_the_field, meta, world};

async fn service(dir: &std::path::Path) -> Service<SledStore> {
    let store = SledStore::open(SledConfig::new(dir)).unwrap();
    Service::open(store, TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap()).await.unwrap()
}

fn raise(issue: &str) -> Command {
    Command::RaiseIssue(GateIssueRaised {
        issue_id: id(issue),
        checkpoint_id: id("gate-1"),
        raised_by: id("staff-1"),
        category: IssueCategory::CourierCongestion,
        severity: Severity::High,
        summary: "tricycles".into(),
        details: None,
    })
}

fn act(issue: &str, n: usize) -> Command {
    Command::ActOnIssue(GateIssueActionTaken {
        issue_id: id(issue),
        taken_by: id("staff-1"),
        action: format!("action {n}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_become_events_and_refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    for command in world() {
        service.execute(&command, &meta(), Timestamp::now()).await.unwrap();
    }
    service.execute(&raise("courier"), &meta(), Timestamp::now()).await.unwrap();
    let status = service.status(Timestamp::now(), None).await.unwrap();
    assert_eq!(status.checkpoints[0].open_issues, 1);
    let before = service.head_position().await.unwrap();
    match service.execute(&raise("courier"), &meta(), Timestamp::now()).await {
        Err(ServiceError::Refused(DomainError::AlreadyExists { kind: "issue", .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(service.head_position().await.unwrap(), before);
    let events = service.stream_events(&id("issue:courier"), 1, 10).await.unwrap();
    assert_eq!(events.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_retried_with_its_event_id_returns_the_original_result() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    for command in world() {
        service.execute(&command, &meta(), Timestamp::now()).await.unwrap();
    }
    let retry_safe = CommandMeta { event_id: Some(Uuid::now_v7()), ..meta() };
    let first = service.execute(&raise("courier"), &retry_safe, Timestamp::now()).await.unwrap();
    let again = service.execute(&raise("courier"), &retry_safe, Timestamp::now()).await.unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.events, first.events);
    assert_eq!(service.head_position().await.unwrap(), first.events[0].global_position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_on_one_issue_all_land_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let service = std::sync::Arc::new(service(dir.path()).await);
    for command in world() {
        service.execute(&command, &meta(), Timestamp::now()).await.unwrap();
    }
    service.execute(&raise("courier"), &meta(), Timestamp::now()).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let service = service.clone();
            tokio::spawn(async move { service.execute(&act("courier", n), &meta(), Timestamp::now()).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stream = service.stream_events(&id("issue:courier"), 1, 100).await.unwrap();
    assert_eq!(stream.iter().map(|e| e.stream_version).collect::<Vec<_>>(), (1..=9).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_known_at_a_moment_equals_a_store_holding_only_the_events_until_then() {
    let full = tempfile::tempdir().unwrap();
    let partial = tempfile::tempdir().unwrap();
    let service = service(full.path()).await;
    let mut commands = world();
    commands.push(raise("courier"));
    commands.push(act("courier", 1));
    for command in &commands {
        service.execute(command, &meta(), Timestamp::now()).await.unwrap();
    }
    let moment = Timestamp::now();
    for command in [
        act("courier", 2),
        raise("second"),
        Command::ResolveIssue(GateIssueResolved {
            issue_id: id("courier"),
            resolved_by: id("staff-1"),
            resolution: "moved".into(),
        }),
    ] {
        service.execute(&command, &meta(), Timestamp::now()).await.unwrap();
    }
    // The same events as the full log had at `moment`, in a store of their own.
    let only_until_then = {
        let store = SledStore::open(SledConfig::new(partial.path())).unwrap();
        for event in service.events(1, 1_000).await.unwrap().into_iter().filter(|e| e.recorded_at <= moment) {
            let new = NewEvent {
                event_id: event.event_id,
                occurred_at: event.occurred_at,
                actor: event.actor,
                correlation_id: None,
                causation_id: None,
                event: event.event,
            };
            store.append(&event.stream_id, store::ExpectedVersion::Any, vec![new]).await.unwrap().unwrap();
        }
        Service::open(store, TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap()).await.unwrap()
    };
    let times = service::Times { as_of: None, known_at: Some(moment) };
    let as_of = service.status_at_times(times, None).await.unwrap();
    let expected = only_until_then.status(moment, None).await.unwrap();
    assert_eq!(as_of, expected);
    assert_eq!(as_of.checkpoints[0].open_issues, 1);
    assert_eq!(
        service.status(Timestamp::now(), None).await.unwrap().checkpoints[0].open_issues,
        1,
        "courier resolved, second open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_replays_in_field_order_with_its_changes_and_the_same_way_twice() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    let when = |time: &str| CommandMeta { occurred_at: Some(at(time)), ..meta() };
    for command in world() {
        service.execute(&command, &when("2020-02-19T08:00:00+08:00"), Timestamp::now()).await.unwrap();
    }
    let day = [
        ("2020-02-20T09:05:00+08:00", raise("courier")),
        ("2020-02-20T09:20:00+08:00", act("courier", 1)),
        (
            "2020-02-20T11:00:00+08:00",
            Command::EscalateIssue(GateIssueEscalated {
                issue_id: id("courier"),
                escalated_by: id("staff-1"),
                escalated_to: EscalationTarget::Subdistrict,
                note: None,
            }),
        ),
        (
            "2020-02-21T09:00:00+08:00",
            Command::ResolveIssue(GateIssueResolved {
                issue_id: id("courier"),
                resolved_by: id("staff-1"),
                resolution: "moved out".into(),
            }),
        ),
    ];
    for (time, command) in &day {
        service.execute(command, &when(time), Timestamp::now()).await.unwrap();
    }
    // A check made at 08:30 on the 20th, recorded only now (days later): it lands on the 20th.
    let late = Command::RecordPatrolCheck(PatrolCheckRecorded {
        queue_orderly: Some(false),
        ..gate_check(CheckResult::IssueFound)
    });
    service.execute(&late, &when("2020-02-20T08:30:00+08:00"), Timestamp::now()).await.unwrap();

    let twentieth = jiff::civil::date(2020, 2, 20);
    let whole = service.replay(twentieth, None, service::Times::NOW).await.unwrap();
    let types: Vec<_> = whole.steps.iter().map(|s| s.entry.event_type).collect();
    assert_eq!(types, ["PatrolCheckRecorded", "GateIssueRaised", "GateIssueActionTaken", "GateIssueEscalated"]);
    assert!(whole.steps[0].entry.late);
    assert!(
        whole.steps[0].changes.iter().any(|c| c.starts_with("gate-1: last_check: null")),
        "{:?}",
        whole.steps[0].changes
    );
    assert!(whole.steps[1].changes.contains(&"courier: appears".to_owned()), "{:?}", whole.steps[1].changes);
    assert!(
        whole.steps[3].changes.contains(&r#"courier: state: "in_progress" -> "escalated""#.to_owned()),
        "{:?}",
        whole.steps[3].changes
    );
    assert_eq!(whole.status.checkpoints[0].open_issues, 1, "resolved only on the 21st");
    // Stopping at 10:00 leaves out the escalation; the status is the one of 10:00.
    let morning = service.replay(twentieth, Some(jiff::civil::time(10, 0, 0, 0)), service::Times::NOW).await.unwrap();
    assert_eq!(morning.steps.len(), 3);
    assert_eq!(morning.until, at("2020-02-20T10:00:00+08:00"));
    // Deterministic: the same log gives byte-identical replays.
    let again = service.replay(twentieth, None, service::Times::NOW).await.unwrap();
    assert_eq!(serde_json::to_string(&whole).unwrap(), serde_json::to_string(&again).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_find_their_target_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    for command in world() {
        service.execute(&command, &meta(), Timestamp::now()).await.unwrap();
    }
    let raised = service.execute(&raise("courier"), &meta(), Timestamp::now()).await.unwrap();
    let target = raised.events[0].event_id;
    let correct = |target: Uuid, replacement: Event| {
        Command::CorrectEvent(EventCorrected {
            corrected_event_id: target,
            corrected_by: id("staff-1"),
            reason: "typo".into(),
            replacement: Box::new(replacement),
        })
    };
    let Command::RaiseIssue(mut fixed) = raise("courier") else { unreachable!() };
    fixed.severity = Severity::Low;
    service.execute(&correct(target, fixed.clone().into()), &meta(), Timestamp::now()).await.unwrap();
    assert_eq!(
        service.status(Timestamp::now(), None).await.unwrap().checkpoints[0].worst_open_severity,
        Some(Severity::Low)
    );
    match service.execute(&correct(Uuid::now_v7(), fixed.into()), &meta(), Timestamp::now()).await {
        Err(ServiceError::Refused(DomainError::Unknown { kind: "event", .. })) => {}
        other => panic!("{other:?}"),
    }
    let retract = Command::RetractEvent(EventRetracted {
        retracted_event_id: target,
        retracted_by: id("staff-1"),
        reason: "test entry".into(),
    });
    service.execute(&retract, &meta(), Timestamp::now()).await.unwrap();
    match service.execute(&retract, &meta(), Timestamp::now()).await {
        Err(ServiceError::Refused(DomainError::EventRetracted(_))) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(service.status(Timestamp::now(), None).await.unwrap().checkpoints[0].open_issues, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_reused_for_a_different_command_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    for command in world() {
        service.execute(&command, &meta(), Timestamp::now()).await.unwrap();
    }
    let with_id = CommandMeta { event_id: Some(Uuid::now_v7()), ..meta() };
    service.execute(&raise("courier"), &with_id, Timestamp::now()).await.unwrap();
    let resolve = Command::ResolveIssue(GateIssueResolved {
        issue_id: id("courier"),
        resolved_by: id("staff-1"),
        resolution: "done".into(),
    });
    match service.execute(&resolve, &with_id, Timestamp::now()).await {
        Err(ServiceError::Rejected(store::Rejection::EventIdInUse { .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(service.status(Timestamp::now(), None).await.unwrap().checkpoints[0].open_issues, 1);
}

/// A back-filled day: the paper records of 2020-06-01 typed in today, one corrected later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_is_field_time_as_known_now_and_known_at_is_the_log_as_it_stood() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    for command in world() {
        service.execute(&command, &in_the_field("2020-06-01T07:00:00+08:00"), Timestamp::now()).await.unwrap();
    }
    // The log's own times, not the clock's: the log stood so at the moment it recorded its
    // last event (recorded_at only moves forward, so later events are recorded after it).
    let recorded_at = |position: u64| {
        let service = &service;
        async move { service.events(position, 1).await.unwrap()[0].recorded_at }
    };
    let before_backfill = recorded_at(service.head_position().await.unwrap()).await;
    let check = gate_check(CheckResult::Ok);
    let recorded = service
        .execute(
            &Command::RecordPatrolCheck(check.clone()),
            &in_the_field("2020-06-01T10:00:00+08:00"),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let before_correction = recorded_at(recorded.events[0].global_position).await;
    let correction = Command::CorrectEvent(EventCorrected {
        corrected_event_id: recorded.events[0].event_id,
        corrected_by: id("staff-1"),
        reason: "the form said issue found".into(),
        replacement: Box::new(PatrolCheckRecorded { result: CheckResult::IssueFound, ..check }.into()),
    });
    service.execute(&correction, &meta(), Timestamp::now()).await.unwrap();
    let noon = Some(at("2020-06-01T12:00:00+08:00"));
    let board = |times: service::Times| {
        let service = &service;
        async move {
            let report = service.status_at_times(times, None).await.unwrap();
            report.checkpoints[0].last_check.as_ref().map(|check| check.result)
        }
    };
    // As of noon that day, as known now: the back-filled check, corrected.
    assert_eq!(board(service::Times { as_of: noon, known_at: None }).await, Some(CheckResult::IssueFound));
    // What the log said of that noon before the correction: the check as first typed in.
    let then = Some(before_correction);
    assert_eq!(board(service::Times { as_of: noon, known_at: then }).await, Some(CheckResult::Ok));
    // Before the paper records were typed in, nobody knew of a check at noon.
    let earlier = Some(before_backfill);
    assert_eq!(board(service::Times { as_of: noon, known_at: earlier }).await, None);
    // Before the check happened in the field there was none, whatever is known now.
    assert_eq!(board(service::Times { as_of: Some(at("2020-06-01T09:00:00+08:00")), known_at: None }).await, None);
    // known_at alone: the board as it stood then.
    assert_eq!(board(service::Times { as_of: None, known_at: then }).await, Some(CheckResult::Ok));
    // The same two times on the day's timeline, report and replay.
    let june_first = jiff::civil::date(2020, 6, 1);
    let timeline = |times| {
        let service = &service;
        async move { service.timeline(june_first, Some(&id("gate-1")), times).await.unwrap().unwrap() }
    };
    let now_known = timeline(service::Times::NOW).await;
    let checks: Vec<_> = now_known.iter().filter(|e| e.event_type == "PatrolCheckRecorded").collect();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].amended_by.len(), 1, "as known now, the check was corrected");
    let as_then = timeline(service::Times { as_of: None, known_at: then }).await;
    let checks: Vec<_> = as_then.iter().filter(|e| e.event_type == "PatrolCheckRecorded").collect();
    assert!(checks[0].amended_by.is_empty(), "the correction was not in the log yet");
    let before = timeline(service::Times { as_of: None, known_at: earlier }).await;
    assert!(before.iter().all(|e| e.event_type != "PatrolCheckRecorded"), "not typed in yet: {before:?}");
    let report = |times| {
        let service = &service;
        async move { service.summary(june_first, june_first, None, times).await.unwrap() }
    };
    assert_eq!(report(service::Times::NOW).await.checks[0].issues_found, 1, "the corrected result");
    assert_eq!(report(service::Times { as_of: None, known_at: then }).await.checks[0].issues_found, 0);
    assert_eq!(report(service::Times { as_of: None, known_at: earlier }).await.checks[0].checks, 0);
    let replay = service.replay(june_first, None, service::Times { as_of: None, known_at: earlier }).await.unwrap();
    assert!(replay.steps.iter().all(|step| step.entry.event_type != "PatrolCheckRecorded"));
    let replay = service.replay(june_first, None, service::Times::NOW).await.unwrap();
    assert_eq!(replay.steps.iter().filter(|step| step.entry.event_type == "PatrolCheckRecorded").count(), 1);
    // The replay shows the day as known now: the check with its later correction, as the
    // status as of that day's end does.
    let replayed = replay.status.checkpoints[0].last_check.as_ref().map(|check| check.result);
    assert_eq!(replayed, Some(CheckResult::IssueFound));
    let end_of_day = Some(at("2020-06-01T23:59:59+08:00"));
    assert_eq!(board(service::Times { as_of: end_of_day, known_at: None }).await, replayed);
    let then_replayed = service.replay(june_first, None, service::Times { as_of: None, known_at: then }).await.unwrap();
    assert_eq!(
        then_replayed.status.checkpoints[0].last_check.as_ref().map(|check| check.result),
        Some(CheckResult::Ok)
    );
}

/// Every day query the service answers from day checkpoints, as one comparable text.
async fn day_answers<S: EventStore>(service: &Service<S>, days: &[jiff::civil::Date]) -> Vec<String> {
    let mut answers = Vec::new();
    for day in days {
        let summary = service.summary(*day, *day, None, service::Times::NOW).await.unwrap();
        let replay = service.replay(*day, None, service::Times::NOW).await.unwrap();
        let noon: Timestamp = format!("{day}T12:00:00+08:00").parse().unwrap();
        let status = service.status_at_times(service::Times { as_of: Some(noon), known_at: None }, None).await.unwrap();
        answers.push(format!(
            "{day}\nsummary {}\nreplay {}\nstatus {}",
            serde_json::to_string(&summary).unwrap(),
            serde_json::to_string(&replay).unwrap(),
            serde_json::to_string(&status).unwrap()
        ));
    }
    let range = service.summary(days[0], days[days.len() - 1], None, service::Times::NOW).await.unwrap();
    answers.push(format!("range {}", serde_json::to_string(&range).unwrap()));
    answers
}

#[tokio::test]
async fn late_events_change_their_own_and_later_days_and_checkpoints_agree_with_a_fold_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let zone = TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap();
    let snapshot = dir.path().join("views.snapshot");
    let open = || async {
        let store = SledStore::open(SledConfig::new(dir.path())).unwrap();
        Service::open_with_snapshot(store, zone.clone(), snapshot.clone()).await.unwrap()
    };
    let service = open().await;
    for command in world() {
        service.execute(&command, &in_the_field("2020-06-01T07:00:00+08:00"), Timestamp::now()).await.unwrap();
    }
    let schedule = Command::SetSchedule(CheckpointScheduleSet {
        checkpoint_id: id("gate-1"),
        check_interval_minutes: 240,
        active_from: jiff::civil::time(8, 0, 0, 0),
        active_until: jiff::civil::time(20, 0, 0, 0),
    });
    service.execute(&schedule, &in_the_field("2020-06-01T07:30:00+08:00"), Timestamp::now()).await.unwrap();
    let check = |result| Command::RecordPatrolCheck(gate_check(result));
    let days: Vec<jiff::civil::Date> = (1..=5).map(|d| jiff::civil::date(2020, 6, d)).collect();
    let mut first_check = None;
    for day in &days {
        for hour in ["09", "13", "17"] {
            let recorded = service
                .execute(&check(CheckResult::Ok), &in_the_field(&format!("{day}T{hour}:00:00+08:00")), Timestamp::now())
                .await
                .unwrap();
            first_check.get_or_insert(recorded.events[0].event_id);
        }
    }
    service.execute(&raise("tricycles"), &in_the_field("2020-06-02T10:00:00+08:00"), Timestamp::now()).await.unwrap();
    let resolve = Command::ResolveIssue(GateIssueResolved {
        issue_id: id("tricycles"),
        resolved_by: id("staff-1"),
        resolution: "moved".into(),
    });
    service.execute(&resolve, &in_the_field("2020-06-03T11:00:00+08:00"), Timestamp::now()).await.unwrap();
    let before = day_answers(&service, &days).await;
    assert_eq!(day_answers(&service, &days).await, before, "answers from the checkpoints just made");
    assert!(std::fs::read_dir(dir.path().join("views.days")).unwrap().count() > 0, "checkpoints are kept on disk");
    let known_before_late = service.events(service.head_position().await.unwrap(), 1).await.unwrap()[0].recorded_at;

    // Late: the first check of the 1st is corrected now, and the gate's closure on the
    // evening of the 2nd is typed in now.
    let correction = Command::CorrectEvent(EventCorrected {
        corrected_event_id: first_check.unwrap(),
        corrected_by: id("staff-1"),
        reason: "the paper said issue found".into(),
        replacement: Box::new(gate_check(CheckResult::IssueFound).into()),
    });
    service.execute(&correction, &meta(), Timestamp::now()).await.unwrap();
    let close = Command::CloseCheckpoint(CheckpointClosed { checkpoint_id: id("gate-1"), reason: "repairs".into() });
    service.execute(&close, &in_the_field("2020-06-02T18:00:00+08:00"), Timestamp::now()).await.unwrap();
    let after = day_answers(&service, &days).await;
    let summary = |day: usize| {
        let service = &service;
        let day = days[day];
        async move { service.summary(day, day, None, service::Times::NOW).await.unwrap() }
    };
    assert_eq!(summary(0).await.checks[0].issues_found, 1, "the 1st, corrected");
    assert_eq!(summary(0).await.checks[0].expected, Some(3), "the 1st: 08:00-20:00 every 4 h");
    // The 2nd: open until 18:00 (10 h, 2 checks asked for), then closed.
    assert_eq!(summary(1).await.checks[0].expected, Some(2));
    // From the 3rd on the gate is closed: nothing asked for, and the board says closed.
    assert_eq!(summary(2).await.checks[0].expected, Some(0));
    assert!(before[2].contains("\"open\":true"), "{}", before[2]);
    for day in 2..5 {
        assert!(after[day].contains("\"open\":false"), "{}", after[day]);
        assert_ne!(after[day], before[day]);
    }
    // What the board showed on the 4th before the late records were typed in: open.
    let noon_4th = Some(at("2020-06-04T12:00:00+08:00"));
    let then = service.status_at_times(service::Times { as_of: noon_4th, known_at: Some(known_before_late) }, None);
    assert!(then.await.unwrap().checkpoints[0].open);

    // The same answers from a fold from scratch: no snapshot, no checkpoints.
    drop(service);
    std::fs::remove_dir_all(dir.path().join("views.days")).unwrap();
    assert!(!snapshot.exists(), "no snapshot was saved: the fresh service folds from position 0");
    let fresh = open().await;
    // Two queries at once that both need the long fold: one folds, the other waits and
    // starts from what it kept; both answer the same.
    let (one, two) = tokio::join!(
        fresh.summary(days[4], days[4], None, service::Times::NOW),
        fresh.summary(days[4], days[4], None, service::Times::NOW)
    );
    assert_eq!(serde_json::to_string(&one.unwrap()).unwrap(), serde_json::to_string(&two.unwrap()).unwrap());
    assert_eq!(day_answers(&fresh, &days).await, after);
}
