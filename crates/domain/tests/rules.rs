//! Domain rules: given events, when a command, then events or the reason it is refused.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use domain::{Command, Context, DomainError, State, decide};
use events_schema::samples::{event_id, recorded_event};
use events_schema::*;
use uuid::Uuid;

fn id(text: &str) -> EntityId {
    EntityId::new(text).unwrap()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The world of the seed account: one community, a grid, a compound with its main gate,
/// two staff members.
fn world() -> Vec<Event> {
    vec![
        CommunityRegistered { community_id: id("minxin"), name: "Minxin".into(), parent_area: None }.into(),
        GridRegistered { grid_id: id("grid-3"), community_id: id("minxin"), name: "Grid 3".into() }.into(),
        SiteRegistered {
            site_id: id("longwu"),
            grid_id: id("grid-3"),
            name: "Longwu".into(),
            kind: SiteKind::ResidentialCompound,
        }
        .into(),
        CheckpointRegistered { checkpoint_id: id("gate-1"), site_id: id("longwu"), name: "Main gate".into() }.into(),
        StaffRegistered {
            staff_id: id("staff-1"),
            display_name: "Deputy".into(),
            role: StaffRole::DeployedCadre,
            grid_id: None,
        }
        .into(),
        StaffRegistered {
            staff_id: id("staff-2"),
            display_name: "Guard".into(),
            role: StaffRole::Guard,
            grid_id: None,
        }
        .into(),
    ]
}

/// The state after `events`, each recorded with id `event_id(n)` at position n.
fn given(events: Vec<Event>) -> State {
    let mut state = State::default();
    for (index, event) in events.into_iter().enumerate() {
        let stream_id = Command::recording(event.clone()).stream_id().unwrap();
        let when = at("2020-02-20T09:00:00+08:00");
        state.apply(&recorded_event(index as u64 + 1, stream_id, when, when, event));
    }
    state
}

fn context() -> Context {
    Context {
        now: at("2020-02-20T10:00:00+08:00"),
        occurred_at: at("2020-02-20T09:55:00+08:00"),
        actor: id("staff-1"),
        target: None,
    }
}

/// The context of a correction or retraction whose target the log holds as `event_type`
/// in `stream`.
fn naming(event_id: Uuid, event_type: &'static str, stream: &str) -> Context {
    let sample = events_schema::samples::one_of_each().into_iter().find(|e| e.event_type() == event_type).unwrap();
    Context { target: Some(domain::TargetEvent::of(event_id, &sample, id(stream))), ..context() }
}

/// Asserts that `command` after `events` records exactly its own event.
fn accepted(events: Vec<Event>, command: Command) {
    let decided = decide(&given(events), &command, &context());
    assert!(decided.is_ok(), "{command:?} refused: {decided:?}");
    assert_eq!(decided.unwrap().len(), 1);
}

/// Asserts that `command` after `events` is refused with `error`.
fn refused(events: Vec<Event>, command: Command, error: DomainError) {
    assert_eq!(decide(&given(events), &command, &context()), Err(error), "{command:?}");
}

fn with(mut events: Vec<Event>, more: impl IntoIterator<Item = Event>) -> Vec<Event> {
    events.extend(more);
    events
}

fn check(result: CheckResult) -> PatrolCheckRecorded {
    PatrolCheckRecorded {
        checkpoint_id: id("gate-1"),
        staff_id: id("staff-1"),
        result,
        staff_present: Some(true),
        protective_gear_worn: Some(true),
        thermometer_working: Some(true),
        health_code_scan_enforced: Some(true),
        passage_logbook_kept: None,
        queue_orderly: None,
        weather: None,
        round_id: None,
        note: None,
    }
}

fn raised(issue: &str) -> GateIssueRaised {
    GateIssueRaised {
        issue_id: id(issue),
        checkpoint_id: id("gate-1"),
        raised_by: id("staff-1"),
        category: IssueCategory::CourierCongestion,
        severity: Severity::High,
        summary: "tricycles at the gate".into(),
        details: None,
    }
}

fn action(issue: &str) -> GateIssueActionTaken {
    GateIssueActionTaken { issue_id: id(issue), taken_by: id("staff-1"), action: "cordon tape".into() }
}

fn resolved(issue: &str) -> GateIssueResolved {
    GateIssueResolved { issue_id: id(issue), resolved_by: id("staff-1"), resolution: "stations moved out".into() }
}

fn verified(issue: &str) -> GateIssueResolutionVerified {
    GateIssueResolutionVerified { issue_id: id(issue), verified_by: id("staff-2"), note: None, check_event_id: None }
}

fn reopened(issue: &str) -> GateIssueReopened {
    GateIssueReopened { issue_id: id(issue), reopened_by: id("staff-2"), reason: "back again".into() }
}

#[test]
fn a_check_needs_a_known_open_checkpoint_and_a_known_staff_member() {
    accepted(world(), Command::RecordPatrolCheck(check(CheckResult::Ok)));
    let mut at_unknown = check(CheckResult::Ok);
    at_unknown.checkpoint_id = id("gate-9");
    refused(
        world(),
        Command::RecordPatrolCheck(at_unknown),
        DomainError::Unknown { kind: "checkpoint", id: "gate-9".into() },
    );
    let closed = with(world(), [CheckpointClosed { checkpoint_id: id("gate-1"), reason: "night".into() }.into()]);
    refused(
        closed.clone(),
        Command::RecordPatrolCheck(check(CheckResult::Ok)),
        DomainError::CheckpointClosed(id("gate-1")),
    );
    let reopened = with(closed, [CheckpointReopened { checkpoint_id: id("gate-1"), reason: None }.into()]);
    accepted(reopened, Command::RecordPatrolCheck(check(CheckResult::Ok)));
    let mut by_stranger = check(CheckResult::Ok);
    by_stranger.staff_id = id("staff-9");
    refused(
        world(),
        Command::RecordPatrolCheck(by_stranger),
        DomainError::Unknown { kind: "staff member", id: "staff-9".into() },
    );
}

#[test]
fn registrations_need_their_parents_and_fresh_ids() {
    let site = SiteRegistered {
        site_id: id("jiaduoli"),
        grid_id: id("grid-3"),
        name: "Jiaduoli".into(),
        kind: SiteKind::ResidentialCompound,
    };
    accepted(world(), Command::RegisterSite(site.clone()));
    refused(
        world(),
        Command::RegisterSite(SiteRegistered { grid_id: id("grid-7"), ..site }),
        DomainError::Unknown { kind: "grid", id: "grid-7".into() },
    );
    let gate = CheckpointRegistered { checkpoint_id: id("gate-1"), site_id: id("longwu"), name: "Again".into() };
    refused(
        world(),
        Command::RegisterCheckpoint(gate),
        DomainError::AlreadyExists { kind: "checkpoint", id: "gate-1".into() },
    );
    let unnamed = CommunityRegistered { community_id: id("other"), name: "  ".into(), parent_area: None };
    assert!(matches!(
        decide(&given(world()), &Command::RegisterCommunity(unnamed), &context()),
        Err(DomainError::EmptyText("the name"))
    ));
    refused(
        world(),
        Command::ReopenCheckpoint(CheckpointReopened { checkpoint_id: id("gate-1"), reason: None }),
        DomainError::CheckpointOpen(id("gate-1")),
    );
}

#[test]
fn the_issue_lifecycle_is_enforced() {
    let issue = "courier";
    accepted(world(), Command::RaiseIssue(raised(issue)));
    refused(
        with(world(), [raised(issue).into()]),
        Command::RaiseIssue(raised(issue)),
        DomainError::AlreadyExists { kind: "issue", id: issue.into() },
    );
    refused(world(), Command::ActOnIssue(action(issue)), DomainError::Unknown { kind: "issue", id: issue.into() });
    let open = with(world(), [raised(issue).into(), action(issue).into()]);
    accepted(open.clone(), Command::ActOnIssue(action(issue)));
    accepted(
        open.clone(),
        Command::EscalateIssue(GateIssueEscalated {
            issue_id: id(issue),
            escalated_by: id("staff-1"),
            escalated_to: EscalationTarget::Subdistrict,
            note: None,
        }),
    );
    // Verify and reopen only after resolve.
    refused(open.clone(), Command::VerifyResolution(verified(issue)), DomainError::IssueNotResolved(id(issue)));
    refused(open.clone(), Command::ReopenIssue(reopened(issue)), DomainError::IssueNotResolved(id(issue)));
    let done = with(open, [resolved(issue).into()]);
    // No action on a resolved issue.
    refused(done.clone(), Command::ActOnIssue(action(issue)), DomainError::IssueResolved(id(issue)));
    refused(done.clone(), Command::ResolveIssue(resolved(issue)), DomainError::IssueResolved(id(issue)));
    accepted(done.clone(), Command::VerifyResolution(verified(issue)));
    let checked = with(done.clone(), [verified(issue).into()]);
    refused(checked.clone(), Command::VerifyResolution(verified(issue)), DomainError::IssueVerified(id(issue)));
    accepted(checked.clone(), Command::ReopenIssue(reopened(issue)));
    // Reopened: open again, so actions are accepted and verification is not.
    let again = with(checked, [reopened(issue).into()]);
    accepted(again.clone(), Command::ActOnIssue(action(issue)));
    refused(again, Command::VerifyResolution(verified(issue)), DomainError::IssueNotResolved(id(issue)));
    // Raising needs an open checkpoint.
    let closed = with(world(), [CheckpointClosed { checkpoint_id: id("gate-1"), reason: "night".into() }.into()]);
    refused(closed, Command::RaiseIssue(raised("other")), DomainError::CheckpointClosed(id("gate-1")));
}

#[test]
fn occurred_at_may_not_be_in_the_future_beyond_the_skew() {
    let state = given(world());
    let command = Command::RecordPatrolCheck(check(CheckResult::Ok));
    let mut context = context();
    context.occurred_at = at("2020-02-20T10:04:00+08:00");
    assert!(decide(&state, &command, &context).is_ok(), "4 minutes ahead is clock skew");
    context.occurred_at = at("2020-02-20T10:06:00+08:00");
    assert!(matches!(decide(&state, &command, &context), Err(DomainError::InTheFuture { .. })));
    context.occurred_at = at("2020-02-19T10:00:00+08:00");
    assert!(decide(&state, &command, &context).is_ok(), "a late arrival from yesterday is fine");
}

#[test]
fn corrections_and_retractions_name_a_live_event_of_the_same_type() {
    // Position 7 is the check below.
    let events = with(world(), [check(CheckResult::IssueFound).into()]);
    let state = given(events.clone());
    let correction = |target: Uuid, replacement: Event| {
        Command::CorrectEvent(EventCorrected {
            corrected_event_id: target,
            corrected_by: id("staff-2"),
            reason: "wrong result".into(),
            replacement: Box::new(replacement),
        })
    };
    let the_check = naming(event_id(7), "PatrolCheckRecorded", "checkpoint:gate-1");
    assert!(decide(&state, &correction(event_id(7), check(CheckResult::Ok).into()), &the_check).is_ok());
    // The log holds no such event: the caller found no target.
    assert_eq!(
        decide(&state, &correction(event_id(99), check(CheckResult::Ok).into()), &context()),
        Err(DomainError::Unknown { kind: "event", id: event_id(99).to_string() })
    );
    // A target that is not the one named does not count.
    assert_eq!(
        decide(&state, &correction(event_id(99), check(CheckResult::Ok).into()), &the_check),
        Err(DomainError::Unknown { kind: "event", id: event_id(99).to_string() })
    );
    assert_eq!(
        decide(&state, &correction(event_id(7), action("x").into()), &the_check),
        Err(DomainError::ReplacementTypeMismatch {
            target: "PatrolCheckRecorded",
            replacement: "GateIssueActionTaken"
        })
    );
    let retraction =
        EventRetracted { retracted_event_id: event_id(7), retracted_by: id("staff-2"), reason: "twice".into() };
    assert!(decide(&state, &Command::RetractEvent(retraction.clone()), &the_check).is_ok());
    let retracted = given(with(events, [retraction.clone().into()]));
    assert_eq!(
        decide(&retracted, &Command::RetractEvent(retraction.clone()), &the_check),
        Err(DomainError::EventRetracted(event_id(7)))
    );
    assert_eq!(
        decide(&retracted, &correction(event_id(7), check(CheckResult::Ok).into()), &the_check),
        Err(DomainError::EventRetracted(event_id(7)))
    );
    let of_the_retraction = naming(event_id(8), "EventRetracted", "corrections");
    assert_eq!(
        decide(
            &retracted,
            &Command::RetractEvent(EventRetracted { retracted_event_id: event_id(8), ..retraction }),
            &of_the_retraction
        ),
        Err(DomainError::NotCorrectable("EventRetracted"))
    );
}

#[test]
fn replacements_hold_on_their_own_and_lifecycle_steps_are_not_retracted() {
    let events =
        with(world(), [check(CheckResult::IssueFound).into(), raised("courier").into(), resolved("courier").into()]);
    let state = given(events.clone());
    let the_check = naming(event_id(7), "PatrolCheckRecorded", "checkpoint:gate-1");
    let correct = |replacement: PatrolCheckRecorded| {
        Command::CorrectEvent(EventCorrected {
            corrected_event_id: event_id(7),
            corrected_by: id("staff-2"),
            reason: "typo".into(),
            replacement: Box::new(replacement.into()),
        })
    };
    let mut elsewhere = check(CheckResult::Ok);
    elsewhere.checkpoint_id = id("gate-2");
    assert!(
        matches!(decide(&state, &correct(elsewhere), &the_check), Err(DomainError::CorrectionOfAnotherEntity { .. })),
        "another entity"
    );
    let mut by_nobody = check(CheckResult::Ok);
    by_nobody.staff_id = id("staff-9");
    assert_eq!(
        decide(&state, &correct(by_nobody), &the_check),
        Err(DomainError::Unknown { kind: "staff member", id: "staff-9".into() })
    );
    // A resolution is undone by reopening, not by retracting it.
    let retract = |target: u64| {
        Command::RetractEvent(EventRetracted {
            retracted_event_id: event_id(target),
            retracted_by: id("staff-2"),
            reason: "oops".into(),
        })
    };
    assert_eq!(
        decide(&state, &retract(9), &naming(event_id(9), "GateIssueResolved", "issue:courier")),
        Err(DomainError::NotCorrectable("GateIssueResolved"))
    );
    // An issue raised by mistake is withdrawn: nothing can be done to it afterwards, and its id is free again.
    assert!(decide(&state, &retract(8), &naming(event_id(8), "GateIssueRaised", "issue:courier")).is_ok());
    let withdrawn = given(with(
        events,
        [EventRetracted { retracted_event_id: event_id(8), retracted_by: id("staff-2"), reason: "oops".into() }.into()],
    ));
    assert_eq!(
        decide(&withdrawn, &Command::ActOnIssue(action("courier")), &context()),
        Err(DomainError::Unknown { kind: "issue", id: "courier".into() })
    );
    assert!(decide(&withdrawn, &Command::RaiseIssue(raised("courier")), &context()).is_ok());
    let seal = DaySealed {
        local_day: jiff::civil::date(2020, 2, 20),
        time_zone: "Asia/Shanghai".into(),
        sequence: 1,
        event_count: 1,
        first_global_position: 1,
        last_global_position: 1,
        merkle_root: "00".into(),
        chain_head_position: 1,
        chain_hash: "00".into(),
        previous_seal_position: 0,
        previous_seal_hash: String::new(),
        key_id: String::new(),
        signature: String::new(),
    };
    assert!(matches!(decide(&state, &Command::SealDay(seal), &context()), Err(DomainError::SealRecordedByHand)));
}

#[test]
fn rounds_tick_only_their_own_items_once_until_completed() {
    let round = PatrolRoundStarted {
        round_id: id("round-1"),
        grid_id: id("grid-3"),
        led_by: id("staff-1"),
        checklist: vec![ChecklistItem { item_id: id("every-gate"), label: "Look at every gate".into() }],
    };
    accepted(world(), Command::StartRound(round.clone()));
    let tick = |item: &str| PatrolRoundItemTicked {
        round_id: id("round-1"),
        item_id: id(item),
        ticked_by: id("staff-1"),
        evidence_event_id: None,
        note: None,
    };
    let started = with(world(), [round.clone().into()]);
    accepted(started.clone(), Command::TickRoundItem(tick("every-gate")));
    refused(
        started.clone(),
        Command::TickRoundItem(tick("moon")),
        DomainError::UnknownChecklistItem { round_id: id("round-1"), item_id: id("moon") },
    );
    let ticked = with(started, [tick("every-gate").into()]);
    refused(
        ticked.clone(),
        Command::TickRoundItem(tick("every-gate")),
        DomainError::ItemAlreadyTicked { round_id: id("round-1"), item_id: id("every-gate") },
    );
    let done = with(
        ticked,
        [PatrolRoundCompleted { round_id: id("round-1"), completed_by: id("staff-1"), note: None }.into()],
    );
    let mut in_round = check(CheckResult::Ok);
    in_round.round_id = Some(id("round-1"));
    refused(done, Command::RecordPatrolCheck(in_round), DomainError::RoundCompleted(id("round-1")));
    let empty = PatrolRoundStarted { checklist: Vec::new(), ..round };
    assert!(matches!(
        decide(&given(world()), &Command::StartRound(empty), &context()),
        Err(DomainError::EmptyChecklist)
    ));
}

#[test]
fn tallies_supplies_schedules_and_ledger_tasks_are_checked() {
    let tally = TrafficTallyRecorded {
        checkpoint_id: id("gate-1"),
        recorded_by: id("staff-2"),
        period_start: at("2020-02-20T07:00:00+08:00"),
        period_end: at("2020-02-20T09:00:00+08:00"),
        people_screened: 300,
        vehicles: 20,
        fever_flags: 0,
        refused_scans: 3,
        temporary_passes_issued: 4,
    };
    accepted(world(), Command::RecordTally(tally.clone()));
    let backwards =
        TrafficTallyRecorded { period_end: tally.period_start, period_start: tally.period_end, ..tally.clone() };
    assert!(matches!(
        decide(&given(world()), &Command::RecordTally(backwards), &context()),
        Err(DomainError::TallyPeriodReversed)
    ));
    let ahead = TrafficTallyRecorded { period_end: at("2020-02-20T18:00:00+08:00"), ..tally };
    assert!(matches!(
        decide(&given(world()), &Command::RecordTally(ahead), &context()),
        Err(DomainError::InTheFuture { .. })
    ));
    let supplies = SuppliesDelivered {
        delivered_by: id("staff-1"),
        recipient: "gate staff".into(),
        purpose: None,
        items: vec![SupplyItem { item: "herbal tea".into(), quantity: 0, unit: None }],
    };
    assert!(matches!(
        decide(&given(world()), &Command::DeliverSupplies(supplies), &context()),
        Err(DomainError::SuppliesWithoutItems)
    ));
    let schedule = |minutes| CheckpointScheduleSet {
        checkpoint_id: id("gate-1"),
        check_interval_minutes: minutes,
        active_from: jiff::civil::time(7, 0, 0, 0),
        active_until: jiff::civil::time(22, 0, 0, 0),
    };
    accepted(world(), Command::SetSchedule(schedule(120)));
    assert!(matches!(
        decide(&given(world()), &Command::SetSchedule(schedule(0)), &context()),
        Err(DomainError::CheckIntervalOutOfRange(0))
    ));
    let task = LedgerTaskAssigned {
        task_id: id("t-1"),
        title: "Fill in the ledger".into(),
        assignee_id: id("staff-1"),
        due_on: None,
    };
    let done = LedgerTaskCompleted { task_id: id("t-1"), completed_by: id("staff-1"), note: None };
    refused(
        world(),
        Command::CompleteLedgerTask(done.clone()),
        DomainError::Unknown { kind: "ledger task", id: "t-1".into() },
    );
    let finished = with(world(), [task.into(), done.clone().into()]);
    refused(finished, Command::CompleteLedgerTask(done), DomainError::TaskCompleted(id("t-1")));
}

#[test]
fn every_command_has_a_stream_named_after_its_entity() {
    assert_eq!(Command::RaiseIssue(raised("courier")).stream_id().unwrap().as_str(), "issue:courier");
    assert_eq!(Command::RecordPatrolCheck(check(CheckResult::Ok)).stream_id().unwrap().as_str(), "checkpoint:gate-1");
    let samples = events_schema::samples::one_of_each();
    assert_eq!(samples.len(), Event::TYPES.len(), "one sample of every kind");
    for event in samples {
        let command = Command::recording(event.clone());
        assert_eq!(command.event(), event, "{command:?} records its own event");
        let stream = command.facts().stream();
        let stream_id = command.stream_id().unwrap();
        match stream.entity {
            // A stream per entity: named `kind:id` after an entity the event is about.
            Some(entity) => {
                assert_eq!(stream_id.as_str(), format!("{}:{entity}", stream.kind.prefix()), "{command:?}");
                assert!(event.facts().entities().iter().any(|e| e.id == entity), "{command:?} is about its stream");
                assert!(!stream.kind.is_shared(), "{command:?}");
            }
            None => {
                assert_eq!(stream_id.as_str(), stream.kind.prefix(), "{command:?}");
                assert!(stream.kind.is_shared(), "{command:?} has a stream of its own but names no entity");
            }
        }
        let name = serde_json::to_value(&command).unwrap()["command"].as_str().unwrap().to_owned();
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "command name {name}");
    }
    let long = id(&"x".repeat(ENTITY_ID_BYTES_MAX));
    assert!(Command::RaiseIssue(GateIssueRaised { issue_id: long, ..raised("y") }).stream_id().is_err());
}

#[test]
fn every_kind_says_who_acts_where_and_what_it_creates() {
    for event in events_schema::samples::one_of_each() {
        let facts = event.facts();
        let entities = facts.entities();
        let named = |id: &EntityId| entities.iter().any(|entity| entity.id == id);
        if let Some(created) = facts.creates() {
            assert!(entities.contains(&created), "{}: creates what it names", event.event_type());
        }
        for person in facts.acting() {
            assert!(named(person), "{}: the person acting is one of its entities", event.event_type());
        }
        match facts.place() {
            Place::Site(id) | Place::Checkpoint(id) | Place::Issue(id) => {
                assert!(named(id), "{}: its place is one of its entities", event.event_type())
            }
            // A kind about no place names none (the server lets field staff past the site
            // check only then).
            Place::Nowhere => assert!(
                entities.iter().all(|e| !e.kind.is_of_a_site()) || facts.access() != Access::Field,
                "{}: a field kind that names a place must say it belongs there",
                event.event_type()
            ),
        }
        // Field staff may only name themselves: a field kind must name who acts.
        if facts.access() == Access::Field {
            assert!(!facts.acting().is_empty(), "{}: a field kind names the person acting", event.event_type());
        }
        assert_eq!(facts.amends().is_some(), matches!(event, Event::EventCorrected(_) | Event::EventRetracted(_)));
    }
}

#[test]
fn a_correction_of_what_creates_an_entity_is_not_refused_because_it_exists() {
    // An inspection and a directive bring their ids into being: correcting one must not be
    // refused as "already exists" (it is the one being corrected).
    let inspection = InspectionRecorded {
        inspection_id: id("insp-1"),
        site_id: id("longwu"),
        inspector_id: id("staff-1"),
        kind: InspectionKind::ReopeningCheck,
        result: InspectionResult::IssuesFound,
        findings: None,
    };
    let other = InspectionRecorded { inspection_id: id("insp-2"), ..inspection.clone() };
    let mut events = world();
    events.push(inspection.clone().into());
    events.push(other.into());
    let state = given(events);
    let target = event_id(7);
    let recorded: Event = inspection.clone().into();
    let context = Context { target: Some(domain::TargetEvent::of(target, &recorded, id("site:longwu"))), ..context() };
    let correct = |replacement: InspectionRecorded| {
        Command::CorrectEvent(EventCorrected {
            corrected_event_id: target,
            corrected_by: id("staff-2"),
            reason: "misread the form".into(),
            replacement: Box::new(replacement.into()),
        })
    };
    let fixed = InspectionRecorded { result: InspectionResult::Passed, ..inspection.clone() };
    let decided = decide(&state, &correct(fixed), &context);
    assert!(decided.is_ok(), "{decided:?}");
    // The rest of the replacement's rules still hold: a known inspector, and no other
    // inspection's id.
    let by_a_stranger = InspectionRecorded { inspector_id: id("staff-9"), ..inspection.clone() };
    assert_eq!(
        decide(&state, &correct(by_a_stranger), &context),
        Err(DomainError::Unknown { kind: "staff member", id: "staff-9".into() })
    );
    let as_another = InspectionRecorded { inspection_id: id("insp-2"), ..inspection };
    assert_eq!(
        decide(&state, &correct(as_another), &context),
        Err(DomainError::AlreadyExists { kind: "inspection", id: "insp-2".into() })
    );
}
