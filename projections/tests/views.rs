//! The read models, fed fixture streams from the seed account's courier-congestion day.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use events_schema::samples::{event_id, recorded_event};
use events_schema::*;
use jiff::civil::time;
use jiff::tz::TimeZone;
use projections::*;
use uuid::Uuid;

fn id(text: &str) -> EntityId {
    EntityId::new(text).unwrap()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A log of `events`, each as (when it happened, when it was recorded, what), at positions
/// 1, 2, 3, ... with ids `event_id(position)`.
fn log_of(events: Vec<(&str, &str, Event)>) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(index, (occurred, recorded, event))| {
            recorded_event(index as u64 + 1, id("s"), at(occurred), at(recorded), event)
        })
        .collect()
}

/// The summary of local days `from..=to` of `log` (in log order), computed the way the
/// service computes it from its day checkpoints: every event folded in the order it happened,
/// each correction or retraction right after what it amends.
fn summary(
    log: &[RecordedEvent],
    zone: &TimeZone,
    from: jiff::civil::Date,
    to: jiff::civil::Date,
    site: Option<&EntityId>,
) -> Summary {
    let by_id: std::collections::HashMap<Uuid, &RecordedEvent> = log.iter().map(|e| (e.event_id, e)).collect();
    let target_of =
        |event: &RecordedEvent| event.event.facts().amends().and_then(|a| by_id.get(&a.event_id()).copied());
    let mut in_order: Vec<&RecordedEvent> = log.iter().collect();
    in_order.sort_by_key(|e| (e.occurred_at, e.global_position));
    let amendments_of = |event: &RecordedEvent| -> Vec<&RecordedEvent> {
        log.iter().filter(|a| target_of(a).is_some_and(|t| t.event_id == event.event_id)).collect()
    };
    let effective = |event: &RecordedEvent| -> Option<Event> {
        let mut effective = event.event.clone();
        for amendment in amendments_of(event) {
            match &amendment.event {
                Event::EventRetracted(_) => return None,
                Event::EventCorrected(c) => effective = (*c.replacement).clone(),
                _ => {}
            }
        }
        Some(effective)
    };
    let morning = to.tomorrow().unwrap();
    let mut registry = Registry::default();
    let mut board = CheckpointBoard::new(zone.clone());
    let mut issues = IssueBoard::default();
    let (mut registry_before, mut board_before) = (None, None);
    let mut period = Vec::new();
    let mut morning_after = Vec::new();
    for event in in_order {
        let day = local_day(event.occurred_at, zone);
        if day >= from && registry_before.is_none() {
            registry_before = Some(registry.clone());
            board_before = Some(board.clone());
        }
        if from <= day && day <= to {
            period.push((event, effective(event)));
        } else if day == morning {
            morning_after.push((event, effective(event)));
        }
        if day > to || target_of(event).is_some() {
            continue;
        }
        for applied in [event].into_iter().chain(amendments_of(event)) {
            registry.apply(applied);
            board.apply(applied);
            issues.apply(applied);
        }
    }
    let registry_before = registry_before.unwrap_or_else(|| registry.clone());
    let board_before = board_before.unwrap_or_else(|| board.clone());
    let reading = |items: &[(&RecordedEvent, Option<Event>)]| -> Vec<(RecordedEvent, Option<Event>, Option<Event>)> {
        items.iter().map(|(e, eff)| ((*e).clone(), eff.clone(), target_of(e).map(|t| t.event.clone()))).collect()
    };
    let (period, morning_after) = (reading(&period), reading(&morning_after));
    let events: Vec<PeriodEvent<'_>> = period
        .iter()
        .map(|(event, eff, target)| PeriodEvent { event, effective: eff.as_ref(), target: target.as_ref() })
        .collect();
    let morning_events: Vec<PeriodEvent<'_>> = morning_after
        .iter()
        .map(|(event, eff, target)| PeriodEvent { event, effective: eff.as_ref(), target: target.as_ref() })
        .collect();
    let last = log.last().map_or((0, [0; 32]), |e| (e.global_position, e.hash));
    projections::summary(&Period {
        time_zone: zone,
        from,
        to,
        site,
        registry_before: &registry_before,
        board_before: &board_before,
        registry: &registry,
        issues: &issues,
        events: &events,
        morning_after: &morning_events,
        position: last.0,
        hash: last.1,
    })
}

/// The views, fed `events` (each with the time it happened) in order.
struct Views {
    registry: Registry,
    board: CheckpointBoard,
    issues: IssueBoard,
    applied: u64,
}

impl Views {
    fn new() -> Views {
        let zone = TimeZone::get(DEFAULT_TIME_ZONE).unwrap();
        Views {
            registry: Registry::default(),
            board: CheckpointBoard::new(zone),
            issues: IssueBoard::default(),
            applied: 0,
        }
    }

    /// Applies `event` as having happened at `when`; returns its event id.
    fn apply(&mut self, when: &str, event: impl Into<Event>) -> Uuid {
        self.applied += 1;
        let recorded = recorded_event(self.applied, id("s"), at(when), at(when), event.into());
        self.registry.apply(&recorded);
        self.board.apply(&recorded);
        self.issues.apply(&recorded);
        recorded.event_id
    }

    fn status(&self, now: &str) -> StatusReport {
        status_at(&self.registry, &self.board, &self.issues, at(now), None)
    }
}

fn check(gate: &str, result: CheckResult) -> PatrolCheckRecorded {
    PatrolCheckRecorded {
        checkpoint_id: id(gate),
        staff_id: id("staff-1"),
        result,
        staff_present: Some(true),
        protective_gear_worn: Some(true),
        thermometer_working: Some(true),
        health_code_scan_enforced: Some(true),
        passage_logbook_kept: Some(true),
        queue_orderly: Some(result == CheckResult::Ok),
        weather: None,
        round_id: None,
        note: None,
    }
}

/// One community, one grid, two compounds: Longwu with its main gate (checked every two
/// hours from 07:00 to 22:00) and Jiaduoli with gate 1.
fn world() -> Views {
    let mut views = Views::new();
    let morning = "2020-02-20T06:00:00+08:00";
    views.apply(morning, CommunityRegistered { community_id: id("minxin"), name: "Minxin".into(), parent_area: None });
    views.apply(morning, GridRegistered { grid_id: id("grid-3"), community_id: id("minxin"), name: "Grid 3".into() });
    for (site, name) in [("longwu", "Longwu"), ("jiaduoli", "Jiaduoli")] {
        views.apply(
            morning,
            SiteRegistered {
                site_id: id(site),
                grid_id: id("grid-3"),
                name: name.into(),
                kind: SiteKind::ResidentialCompound,
            },
        );
    }
    views.apply(
        morning,
        CheckpointRegistered { checkpoint_id: id("longwu-main"), site_id: id("longwu"), name: "Main gate".into() },
    );
    views.apply(
        morning,
        CheckpointRegistered { checkpoint_id: id("jiaduoli-1"), site_id: id("jiaduoli"), name: "Gate 1".into() },
    );
    views.apply(
        morning,
        CheckpointScheduleSet {
            checkpoint_id: id("longwu-main"),
            check_interval_minutes: 120,
            active_from: time(7, 0, 0, 0),
            active_until: time(22, 0, 0, 0),
        },
    );
    views
}

fn courier_issue(severity: Severity) -> GateIssueRaised {
    GateIssueRaised {
        issue_id: id("courier"),
        checkpoint_id: id("longwu-main"),
        raised_by: id("staff-1"),
        category: IssueCategory::CourierCongestion,
        severity,
        summary: "tricycles from four transit stations crowd the gate".into(),
        details: None,
    }
}

#[test]
fn the_status_board_shows_last_checks_open_issues_and_rollups() {
    let mut views = world();
    views.apply("2020-02-20T09:00:00+08:00", check("longwu-main", CheckResult::IssueFound));
    views.apply("2020-02-20T09:05:00+08:00", courier_issue(Severity::High));
    views.apply("2020-02-20T09:30:00+08:00", check("jiaduoli-1", CheckResult::Ok));
    let status = views.status("2020-02-20T10:00:00+08:00");
    let longwu = status.checkpoints.iter().find(|c| c.checkpoint_id == id("longwu-main")).unwrap();
    assert_eq!(longwu.last_check.as_ref().unwrap().result, CheckResult::IssueFound);
    assert_eq!(
        (longwu.open_issues, longwu.worst_open_severity, longwu.oldest_open_issue_minutes),
        (1, Some(Severity::High), Some(55))
    );
    assert!(!longwu.overdue);
    assert_eq!(status.sites.len(), 2);
    let grid = &status.grids[0];
    assert_eq!((grid.checkpoints, grid.open_issues, grid.worst_open_severity), (2, 1, Some(Severity::High)));
    assert_eq!(status.communities[0].name, "Minxin");
    // Only one site's checkpoints when asked.
    let only =
        status_at(&views.registry, &views.board, &views.issues, at("2020-02-20T10:00:00+08:00"), Some(&id("jiaduoli")));
    assert_eq!(only.checkpoints.len(), 1);
}

#[test]
fn a_checkpoint_is_overdue_only_within_its_hours_and_after_its_interval() {
    let mut views = world();
    let overdue = |views: &Views, now: &str| {
        views.status(now).checkpoints.iter().find(|c| c.checkpoint_id == id("longwu-main")).unwrap().overdue
    };
    // Never checked: due from 07:00, so overdue after 09:00.
    assert!(!overdue(&views, "2020-02-20T06:30:00+08:00"), "before its hours");
    assert!(!overdue(&views, "2020-02-20T08:59:00+08:00"));
    assert!(overdue(&views, "2020-02-20T09:01:00+08:00"));
    views.apply("2020-02-20T10:00:00+08:00", check("longwu-main", CheckResult::Ok));
    assert!(!overdue(&views, "2020-02-20T11:59:00+08:00"));
    assert!(overdue(&views, "2020-02-20T12:01:00+08:00"));
    assert!(!overdue(&views, "2020-02-20T22:30:00+08:00"), "after its hours");
    // No schedule, never overdue; a closed checkpoint is not overdue either.
    assert!(
        !views
            .status("2020-02-20T23:00:00+08:00")
            .checkpoints
            .iter()
            .any(|c| c.checkpoint_id == id("jiaduoli-1") && c.overdue)
    );
    views.apply(
        "2020-02-20T12:30:00+08:00",
        CheckpointClosed { checkpoint_id: id("longwu-main"), reason: "renovation".into() },
    );
    assert!(!overdue(&views, "2020-02-20T15:00:00+08:00"));
}

#[test]
fn a_schedule_past_midnight_counts_from_the_evening_before() {
    let mut views = world();
    views.apply(
        "2020-02-20T06:00:00+08:00",
        CheckpointScheduleSet {
            checkpoint_id: id("jiaduoli-1"),
            check_interval_minutes: 60,
            active_from: time(20, 0, 0, 0),
            active_until: time(6, 0, 0, 0),
        },
    );
    views.apply("2020-02-20T23:30:00+08:00", check("jiaduoli-1", CheckResult::Ok));
    let overdue =
        |now: &str| views.status(now).checkpoints.iter().find(|c| c.checkpoint_id == id("jiaduoli-1")).unwrap().overdue;
    assert!(!overdue("2020-02-21T00:20:00+08:00"));
    assert!(overdue("2020-02-21T00:31:00+08:00"));
    assert!(!overdue("2020-02-21T12:00:00+08:00"), "outside its hours");
}

#[test]
fn retractions_and_corrections_change_the_last_check() {
    let mut views = world();
    views.apply("2020-02-20T09:00:00+08:00", check("longwu-main", CheckResult::Ok));
    let second = views.apply("2020-02-20T11:00:00+08:00", check("longwu-main", CheckResult::IssueFound));
    let last = |views: &Views| views.status("2020-02-20T12:00:00+08:00").checkpoints[1].last_check.clone().unwrap();
    assert_eq!(views.status("2020-02-20T12:00:00+08:00").checkpoints[1].checkpoint_id, id("longwu-main"));
    assert_eq!(last(&views).result, CheckResult::IssueFound);
    views.apply(
        "2020-02-20T11:30:00+08:00",
        EventCorrected {
            corrected_event_id: second,
            corrected_by: id("staff-2"),
            reason: "misread".into(),
            replacement: Box::new(check("longwu-main", CheckResult::Ok).into()),
        },
    );
    assert_eq!(last(&views).result, CheckResult::Ok);
    assert_eq!(last(&views).event_id, second);
    views.apply(
        "2020-02-20T11:40:00+08:00",
        EventRetracted { retracted_event_id: second, retracted_by: id("staff-2"), reason: "never happened".into() },
    );
    assert_eq!(last(&views).checked_at, at("2020-02-20T09:00:00+08:00"));
    // A late arrival (made at 10:00, recorded after the 11:00 one) does not hide a later check.
    views.apply("2020-02-20T13:00:00+08:00", check("longwu-main", CheckResult::Ok));
    views.apply("2020-02-20T10:00:00+08:00", check("longwu-main", CheckResult::IssueFound));
    assert_eq!(
        views.status("2020-02-20T14:00:00+08:00").checkpoints[1].last_check.as_ref().unwrap().checked_at,
        at("2020-02-20T13:00:00+08:00")
    );
    // Status as of a moment ignores checks made after it.
    assert_eq!(last(&views).checked_at, at("2020-02-20T10:00:00+08:00"));
}

#[test]
fn the_issue_board_follows_the_lifecycle_and_its_corrections() {
    let mut views = world();
    views.apply("2020-02-20T09:05:00+08:00", courier_issue(Severity::Medium));
    views.apply(
        "2020-02-20T09:10:00+08:00",
        GateIssueAssigned { issue_id: id("courier"), assignee_id: id("staff-1"), assigned_by: id("staff-2") },
    );
    let first_action = views.apply(
        "2020-02-20T09:20:00+08:00",
        GateIssueActionTaken {
            issue_id: id("courier"),
            taken_by: id("staff-1"),
            action: "property office told to control tricycles".into(),
        },
    );
    views.apply(
        "2020-02-20T09:40:00+08:00",
        GateIssueActionTaken {
            issue_id: id("courier"),
            taken_by: id("staff-1"),
            action: "cordon tape splits people and vehicles".into(),
        },
    );
    views.apply(
        "2020-02-20T11:00:00+08:00",
        GateIssueEscalated {
            issue_id: id("courier"),
            escalated_by: id("staff-1"),
            escalated_to: EscalationTarget::Subdistrict,
            note: None,
        },
    );
    let issue = views.issues.issue(&id("courier")).unwrap();
    assert_eq!(issue.state, IssueState::Escalated);
    assert_eq!(issue.assignee_id, Some(id("staff-1")));
    assert_eq!(issue.time_to_first_action_micros(), Some(15 * 60_000_000));
    assert_eq!(issue.escalated_to, [EscalationTarget::Subdistrict]);
    assert!(issue.is_open());
    views.apply(
        "2020-02-20T09:06:00+08:00",
        EventRetracted { retracted_event_id: first_action, retracted_by: id("staff-1"), reason: "wrong issue".into() },
    );
    assert_eq!(views.issues.issue(&id("courier")).unwrap().time_to_first_action_micros(), Some(35 * 60_000_000));
    views.apply(
        "2020-02-20T12:00:00+08:00",
        EventCorrected {
            corrected_event_id: event_id(8),
            corrected_by: id("staff-2"),
            reason: "worse than first said".into(),
            replacement: Box::new(courier_issue(Severity::High).into()),
        },
    );
    assert_eq!(views.issues.issue(&id("courier")).unwrap().severity, Severity::High);
    views.apply(
        "2020-02-20T17:05:00+08:00",
        GateIssueResolved {
            issue_id: id("courier"),
            resolved_by: id("staff-1"),
            resolution: "stations moved outside".into(),
        },
    );
    let resolved = views.issues.issue(&id("courier")).unwrap();
    assert_eq!((resolved.state, resolved.time_to_resolution_micros()), (IssueState::Resolved, Some(8 * 3_600_000_000)));
    views.apply(
        "2020-02-21T09:00:00+08:00",
        GateIssueResolutionVerified {
            issue_id: id("courier"),
            verified_by: id("staff-1"),
            note: None,
            check_event_id: None,
        },
    );
    assert_eq!(views.issues.issue(&id("courier")).unwrap().state, IssueState::Verified);
    views.apply(
        "2020-02-22T09:00:00+08:00",
        GateIssueReopened { issue_id: id("courier"), reopened_by: id("staff-2"), reason: "back".into() },
    );
    let reopened = views.issues.issue(&id("courier")).unwrap();
    assert_eq!(
        (reopened.state, reopened.reopened, reopened.verified_at, reopened.is_open()),
        (IssueState::InProgress, 1, None, true)
    );
    // Retracting the raising removes the issue from the board.
    views.apply(
        "2020-02-22T10:00:00+08:00",
        EventRetracted { retracted_event_id: event_id(8), retracted_by: id("staff-1"), reason: "test entry".into() },
    );
    assert!(views.issues.issue(&id("courier")).is_none());
}

#[test]
fn tallies_count_on_their_local_day_and_can_be_taken_back() {
    let mut views = world();
    let tally = |start: &str, end: &str, people: u32| TrafficTallyRecorded {
        checkpoint_id: id("jiaduoli-1"),
        recorded_by: id("staff-2"),
        period_start: at(start),
        period_end: at(end),
        people_screened: people,
        vehicles: 1,
        fever_flags: 0,
        refused_scans: 0,
        temporary_passes_issued: 2,
    };
    views.apply("2020-02-20T12:00:00+08:00", tally("2020-02-20T07:00:00+08:00", "2020-02-20T12:00:00+08:00", 300));
    // 23:00 to midnight in Shanghai is 15:00 to 16:00 UTC: still the 20th.
    let late =
        views.apply("2020-02-21T00:10:00+08:00", tally("2020-02-20T23:00:00+08:00", "2020-02-21T00:00:00+08:00", 40));
    views.apply("2020-02-21T08:00:00+08:00", tally("2020-02-21T07:00:00+08:00", "2020-02-21T08:00:00+08:00", 7));
    let today = |views: &Views, now: &str| views.status(now).checkpoints[0].tallies_today;
    assert_eq!(today(&views, "2020-02-20T23:59:00+08:00").people_screened, 340);
    assert_eq!(today(&views, "2020-02-21T09:00:00+08:00").people_screened, 7);
    views.apply(
        "2020-02-21T09:00:00+08:00",
        EventRetracted { retracted_event_id: late, retracted_by: id("staff-2"), reason: "double count".into() },
    );
    let totals = today(&views, "2020-02-20T23:59:00+08:00");
    assert_eq!((totals.people_screened, totals.vehicles, totals.temporary_passes_issued), (300, 1, 2));
    // Only the latest two days of tallies are kept: memory does not grow with the log.
    views.apply("2020-02-23T08:00:00+08:00", tally("2020-02-23T07:00:00+08:00", "2020-02-23T08:00:00+08:00", 9));
    assert_eq!(today(&views, "2020-02-20T23:59:00+08:00").people_screened, 0);
    assert_eq!(today(&views, "2020-02-23T09:00:00+08:00").people_screened, 9);
}

#[test]
fn the_timeline_holds_the_local_day_in_field_order_with_amendments_and_late_arrivals() {
    let zone = TimeZone::get(DEFAULT_TIME_ZONE).unwrap();
    let mut entries: Vec<(&str, &str, Event)> = Vec::new();
    let mut push =
        |occurred: &'static str, recorded: &'static str, event: Event| entries.push((occurred, recorded, event));
    // 23:30 local on the 19th is 15:30 UTC: the 19th, not the 20th.
    push("2020-02-19T23:30:00+08:00", "2020-02-19T23:30:00+08:00", check("longwu-main", CheckResult::Ok).into());
    push(
        "2020-02-20T09:00:00+08:00",
        "2020-02-20T09:00:00+08:00",
        check("longwu-main", CheckResult::IssueFound).into(),
    );
    push("2020-02-20T09:05:00+08:00", "2020-02-20T09:05:00+08:00", courier_issue(Severity::Medium).into());
    // Made at 08:00 on the 20th, recorded the next morning.
    push("2020-02-20T08:00:00+08:00", "2020-02-21T07:00:00+08:00", check("jiaduoli-1", CheckResult::Ok).into());
    push(
        "2020-02-20T10:00:00+08:00",
        "2020-02-20T10:00:00+08:00",
        EventCorrected {
            corrected_event_id: event_id(3),
            corrected_by: id("staff-2"),
            reason: "worse".into(),
            replacement: Box::new(courier_issue(Severity::High).into()),
        }
        .into(),
    );
    push(
        "2020-02-20T11:00:00+08:00",
        "2020-02-20T11:00:00+08:00",
        EventRetracted { retracted_event_id: event_id(2), retracted_by: id("staff-2"), reason: "wrong gate".into() }
            .into(),
    );
    let log = log_of(entries);
    let day = jiff::civil::date(2020, 2, 20);
    let entries = timeline(&log, &zone, day, None);
    assert_eq!(
        entries.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        [4, 2, 3, 5, 6],
        "field order, day 20 only"
    );
    assert!(entries[0].late && !entries[1].late);
    assert_eq!(entries[0].local_time, time(8, 0, 0, 0));
    let raised = &entries[2];
    assert_eq!((raised.amended_by.clone(), raised.retracted), (vec![event_id(5)], false));
    assert_eq!(entries[1].amended_by, [event_id(6)]);
    assert!(entries[1].retracted);
    assert_eq!(entries[3].amends, Some(event_id(3)));
    assert!(
        raised.entities.contains(&id("courier"))
            && raised.entities.contains(&id("longwu-main"))
            && raised.entities.contains(&id("staff-1"))
    );
    // Per entity: the correction belongs to the issue it corrects; the other gate's check does not.
    let courier = timeline(&log, &zone, day, Some(&id("courier")));
    assert_eq!(courier.iter().map(|e| e.global_position).collect::<Vec<_>>(), [3, 5]);
    let jiaduoli = timeline(&log, &zone, day, Some(&id("jiaduoli-1")));
    assert_eq!(jiaduoli.len(), 1);
    assert_eq!(timeline(&log, &zone, jiff::civil::date(2020, 2, 19), None).len(), 1);
    assert!(
        !entities_of(&log[4].event).iter().any(|e| e.as_str().starts_with("01706a4b")),
        "event ids are not entities"
    );
}

#[test]
fn the_day_summary_counts_checks_against_the_schedule_and_the_issues_of_the_day() {
    let zone = TimeZone::get(DEFAULT_TIME_ZONE).unwrap();
    let mut entries: Vec<(&str, &str, Event)> = Vec::new();
    let mut push = |occurred: &'static str, event: Event| entries.push((occurred, occurred, event));
    let setup = "2020-02-19T08:00:00+08:00";
    push(setup, CommunityRegistered { community_id: id("minxin"), name: "Minxin".into(), parent_area: None }.into());
    push(setup, GridRegistered { grid_id: id("grid-3"), community_id: id("minxin"), name: "Grid 3".into() }.into());
    push(
        setup,
        SiteRegistered {
            site_id: id("longwu"),
            grid_id: id("grid-3"),
            name: "Longwu".into(),
            kind: SiteKind::ResidentialCompound,
        }
        .into(),
    );
    push(
        setup,
        CheckpointRegistered { checkpoint_id: id("longwu-main"), site_id: id("longwu"), name: "Main gate".into() }
            .into(),
    );
    // Every 4 hours from 08:00 to 20:00: three checks expected a day.
    push(
        setup,
        CheckpointScheduleSet {
            checkpoint_id: id("longwu-main"),
            check_interval_minutes: 240,
            active_from: time(8, 0, 0, 0),
            active_until: time(20, 0, 0, 0),
        }
        .into(),
    );
    push("2020-02-20T09:00:00+08:00", check("longwu-main", CheckResult::IssueFound).into());
    push("2020-02-20T09:05:00+08:00", courier_issue(Severity::High).into());
    push(
        "2020-02-20T09:20:00+08:00",
        GateIssueActionTaken { issue_id: id("courier"), taken_by: id("staff-1"), action: "cordon tape".into() }.into(),
    );
    push(
        "2020-02-20T11:00:00+08:00",
        GateIssueEscalated {
            issue_id: id("courier"),
            escalated_by: id("staff-1"),
            escalated_to: EscalationTarget::Subdistrict,
            note: None,
        }
        .into(),
    );
    push(
        "2020-02-20T17:05:00+08:00",
        GateIssueResolved {
            issue_id: id("courier"),
            resolved_by: id("staff-1"),
            resolution: "stations moved out".into(),
        }
        .into(),
    );
    push("2020-02-20T19:00:00+08:00", check("longwu-main", CheckResult::Ok).into());
    push(
        "2020-02-20T20:30:00+08:00",
        FieldNoteRecorded {
            author: id("staff-1"),
            text: "the gate is orderly again".into(),
            site_id: None,
            weather: None,
        }
        .into(),
    );
    push(
        "2020-02-20T21:00:00+08:00",
        SuppliesDelivered {
            delivered_by: id("staff-1"),
            recipient: "gate staff".into(),
            purpose: None,
            items: vec![SupplyItem { item: "herbal tea".into(), quantity: 20, unit: Some("cases".into()) }],
        }
        .into(),
    );
    push(
        "2020-02-21T09:00:00+08:00",
        GateIssueResolutionVerified {
            issue_id: id("courier"),
            verified_by: id("staff-1"),
            note: None,
            check_event_id: None,
        }
        .into(),
    );
    let log = log_of(entries);
    let twentieth = jiff::civil::date(2020, 2, 20);
    let day = summary(&log, &zone, twentieth, twentieth, None);
    let gate = &day.checks[0];
    assert_eq!((gate.checks, gate.issues_found, gate.expected), (2, 1, Some(3)));
    assert_eq!(gate.gaps, [Gap { day: twentieth, start: twentieth.at(9, 0, 0, 0), end: twentieth.at(19, 0, 0, 0) }]);
    assert_eq!(day.raised_by_category.get(&IssueCategory::CourierCongestion), Some(&1));
    assert_eq!((day.resolved, day.still_open, day.escalations, day.actions, day.verifications), (1, 0, 1, 1, 0));
    let issue = &day.issues[0];
    assert_eq!(
        (issue.minutes_to_first_action, issue.minutes_to_resolution, issue.verified),
        (Some(15), Some(480), false)
    );
    assert_eq!(
        day.supplies,
        [SupplyDelivery {
            occurred_at_local: twentieth.at(21, 0, 0, 0),
            delivered_by: id("staff-1"),
            recipient: "gate staff".into(),
            purpose: None,
            items: vec![SupplyItem { item: "herbal tea".into(), quantity: 20, unit: Some("cases".into()) }],
        }]
    );
    assert_eq!(
        day.field_notes,
        [FieldNote {
            occurred_at_local: twentieth.at(20, 30, 0, 0),
            author: id("staff-1"),
            site_id: None,
            text: "the gate is orderly again".into(),
        }]
    );
    assert_eq!(day.seal_position, log.len() as u64, "the position the summary was computed at");
    // The next day counts the verification; the issue, resolved the day before, is not listed again.
    let next = summary(&log, &zone, jiff::civil::date(2020, 2, 21), jiff::civil::date(2020, 2, 21), None);
    assert_eq!((next.verifications, next.issues.len(), next.raised_by_category.len()), (1, 0, 0));
    // Rendered for people in both languages, and safely as HTML.
    let english = render(&day, Format::Markdown, Lang::En).unwrap();
    assert!(english.starts_with("# After-action summary 2020-02-20\n"), "{english}");
    assert!(english.contains("- courier congestion: 1\n"), "{english}");
    assert!(english.contains("First action after 15 min, resolved after 480 min"), "{english}");
    let chinese = render(&day, Format::Markdown, Lang::Zh).unwrap();
    assert!(chinese.contains("- 快递车辆拥堵: 1\n") && chinese.contains("## 巡查与排班"), "{chinese}");
    let mut tricky = day.clone();
    tricky.field_notes[0].text = "<script>alert(1)</script>".into();
    let html = render(&tricky, Format::Html, Lang::En).unwrap();
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"), "{html}");
    let json: serde_json::Value = serde_json::from_str(&render(&day, Format::Json, Lang::En).unwrap()).unwrap();
    assert_eq!(json["resolved"], 1);
    // The same events give the same summary.
    assert_eq!(
        serde_json::to_string(&day).unwrap(),
        serde_json::to_string(&summary(&log, &zone, twentieth, twentieth, None)).unwrap()
    );
}

#[test]
fn a_report_shows_the_corrected_state_of_its_period_even_when_corrected_later() {
    let zone = TimeZone::get(DEFAULT_TIME_ZONE).unwrap();
    let mut entries: Vec<(&str, &str, Event)> = Vec::new();
    let mut push = |occurred: &'static str, event: Event| entries.push((occurred, occurred, event));
    let setup = "2020-02-19T08:00:00+08:00";
    push(setup, CommunityRegistered { community_id: id("minxin"), name: "Minxin".into(), parent_area: None }.into());
    push(setup, GridRegistered { grid_id: id("grid-3"), community_id: id("minxin"), name: "Grid 3".into() }.into());
    for site in ["longwu", "jiaduoli"] {
        push(
            setup,
            SiteRegistered {
                site_id: id(site),
                grid_id: id("grid-3"),
                name: site.into(),
                kind: SiteKind::ResidentialCompound,
            }
            .into(),
        );
    }
    push(
        setup,
        CheckpointRegistered { checkpoint_id: id("longwu-main"), site_id: id("longwu"), name: "Main gate".into() }
            .into(),
    );
    push(
        setup,
        CheckpointRegistered { checkpoint_id: id("jiaduoli-1"), site_id: id("jiaduoli"), name: "Gate 1".into() }.into(),
    );
    let tally = |start: &str, end: &str, people: u32| TrafficTallyRecorded {
        checkpoint_id: id("longwu-main"),
        recorded_by: id("staff-1"),
        period_start: at(start),
        period_end: at(end),
        people_screened: people,
        vehicles: 0,
        fever_flags: 0,
        refused_scans: 0,
        temporary_passes_issued: 0,
    };
    push("2020-02-20T12:05:00+08:00", tally("2020-02-20T07:00:00+08:00", "2020-02-20T12:00:00+08:00", 300).into()); // 7
    push("2020-02-20T10:00:00+08:00", check("longwu-main", CheckResult::IssueFound).into()); // 8
    // The night shift's tally, recorded the next morning, belongs to the 20th.
    push("2020-02-21T06:10:00+08:00", tally("2020-02-20T22:00:00+08:00", "2020-02-21T06:00:00+08:00", 77).into()); // 9
    // The next day: the noon tally corrected (300 was 30), the check retracted.
    push(
        "2020-02-21T09:00:00+08:00",
        EventCorrected {
            corrected_event_id: event_id(7),
            corrected_by: id("staff-1"),
            reason: "typo".into(),
            replacement: Box::new(tally("2020-02-20T07:00:00+08:00", "2020-02-20T12:00:00+08:00", 30).into()),
        }
        .into(),
    );
    push(
        "2020-02-21T09:05:00+08:00",
        EventRetracted { retracted_event_id: event_id(8), retracted_by: id("staff-1"), reason: "wrong gate".into() }
            .into(),
    );
    let log = log_of(entries);
    let twentieth = jiff::civil::date(2020, 2, 20);
    let day = summary(&log, &zone, twentieth, twentieth, None);
    assert_eq!(day.tallies.people_screened, 30 + 77);
    let longwu = day.checks.iter().find(|c| c.checkpoint_id == id("longwu-main")).unwrap();
    assert_eq!((longwu.checks, longwu.issues_found), (0, 0));
    // The amendments were made on the 21st: that day's report counts them, for its site only.
    let next = jiff::civil::date(2020, 2, 21);
    let next_day = summary(&log, &zone, next, next, None);
    assert_eq!((next_day.corrections, next_day.retractions), (1, 1));
    let other_site = summary(&log, &zone, next, next, Some(&id("jiaduoli")));
    assert_eq!((other_site.corrections, other_site.retractions), (0, 0));
    let own_site = summary(&log, &zone, next, next, Some(&id("longwu")));
    assert_eq!((own_site.corrections, own_site.retractions), (1, 1));
}

#[test]
fn a_night_schedule_is_covered_by_the_checks_after_midnight() {
    let zone = TimeZone::get(DEFAULT_TIME_ZONE).unwrap();
    let setup = "2020-02-19T08:00:00+08:00";
    let mut entries: Vec<(&str, &str, Event)> = vec![
        (
            setup,
            setup,
            CommunityRegistered { community_id: id("minxin"), name: "Minxin".into(), parent_area: None }.into(),
        ),
        (
            setup,
            setup,
            GridRegistered { grid_id: id("grid-3"), community_id: id("minxin"), name: "Grid 3".into() }.into(),
        ),
        (
            setup,
            setup,
            SiteRegistered {
                site_id: id("longwu"),
                grid_id: id("grid-3"),
                name: "Longwu".into(),
                kind: SiteKind::ResidentialCompound,
            }
            .into(),
        ),
        (
            setup,
            setup,
            CheckpointRegistered { checkpoint_id: id("longwu-main"), site_id: id("longwu"), name: "Main gate".into() }
                .into(),
        ),
        (
            setup,
            setup,
            CheckpointScheduleSet {
                checkpoint_id: id("longwu-main"),
                check_interval_minutes: 120,
                active_from: time(22, 0, 0, 0),
                active_until: time(6, 0, 0, 0),
            }
            .into(),
        ),
    ];
    for when in [
        "2020-02-20T22:30:00+08:00",
        "2020-02-21T00:30:00+08:00",
        "2020-02-21T02:30:00+08:00",
        "2020-02-21T04:30:00+08:00",
    ] {
        entries.push((when, when, check("longwu-main", CheckResult::Ok).into()));
    }
    let log = log_of(entries);
    let twentieth = jiff::civil::date(2020, 2, 20);
    let night = summary(&log, &zone, twentieth, twentieth, None);
    let gate = &night.checks[0];
    assert_eq!((gate.checks, gate.expected), (1, Some(4)), "the 20th's own checks; the night's expected checks");
    assert!(gate.gaps.is_empty(), "covered all night: {:?}", gate.gaps);
    // Without the check at half past midnight, the gap runs from before midnight to after it,
    // and belongs to the window of the 20th.
    let midnight_check = log.iter().position(|e| e.occurred_at == at("2020-02-21T00:30:00+08:00")).unwrap();
    let mut thinner = log.clone();
    thinner.remove(midnight_check);
    let night = summary(&thinner, &zone, twentieth, twentieth, None);
    let next_day = jiff::civil::date(2020, 2, 21);
    assert_eq!(
        night.checks[0].gaps,
        [Gap { day: twentieth, start: twentieth.at(22, 30, 0, 0), end: next_day.at(2, 30, 0, 0) }]
    );
}
