//! Sample events, one of every type, with facts taken from the domain's seed account
//! (a community, its compounds and gates, the courier-congestion issue of 2020-02-20).
//! Used by the golden files, the store's tests and the benchmarks.

use jiff::civil::{date, time};
use uuid::Uuid;

use crate::*;

fn id(text: &str) -> EntityId {
    EntityId::new(text).expect("sample ids are valid")
}

/// One event of every type in the catalogue, in catalogue order.
pub fn one_of_each() -> Vec<Event> {
    let at = |text: &str| text.parse::<Timestamp>().expect("sample timestamps are valid");
    let events: Vec<Event> = vec![
        CommunityRegistered {
            community_id: id("minxin"),
            name: "Minxin Community".into(),
            parent_area: Some("Cuizhu subdistrict, Luohu district".into()),
        }
        .into(),
        GridRegistered { grid_id: id("minxin-grid-3"), community_id: id("minxin"), name: "Grid 3".into() }.into(),
        SiteRegistered {
            site_id: id("longwu"),
            grid_id: id("minxin-grid-3"),
            name: "Longwu Compound".into(),
            kind: SiteKind::ResidentialCompound,
        }
        .into(),
        CheckpointRegistered { checkpoint_id: id("longwu-main-gate"), site_id: id("longwu"), name: "Main gate".into() }
            .into(),
        CheckpointClosed { checkpoint_id: id("jiaduoli-gate-4"), reason: "consolidated into gate 1 at night".into() }
            .into(),
        CheckpointReopened { checkpoint_id: id("jiaduoli-gate-4"), reason: None }.into(),
        StaffRegistered {
            staff_id: id("staff-1"),
            display_name: "Deputy head (deployed)".into(),
            role: StaffRole::DeployedCadre,
            grid_id: Some(id("minxin-grid-3")),
        }
        .into(),
        TeamFormed {
            team_id: id("task-force-3"),
            grid_id: id("minxin-grid-3"),
            name: "Grid 3 task force".into(),
            member_ids: vec![id("staff-1"), id("staff-2"), id("staff-3")],
        }
        .into(),
        CheckpointScheduleSet {
            checkpoint_id: id("longwu-main-gate"),
            check_interval_minutes: 120,
            active_from: time(7, 0, 0, 0),
            active_until: time(22, 0, 0, 0),
        }
        .into(),
        PatrolCheckRecorded {
            checkpoint_id: id("jiaduoli-gate-2"),
            staff_id: id("staff-2"),
            result: CheckResult::Ok,
            staff_present: Some(true),
            protective_gear_worn: Some(true),
            thermometer_working: Some(true),
            health_code_scan_enforced: Some(true),
            passage_logbook_kept: None,
            queue_orderly: Some(true),
            weather: Some(Weather::Rain),
            round_id: None,
            note: Some("guards in raincoats, masks and gloves; scanning every resident".into()),
        }
        .into(),
        TrafficTallyRecorded {
            checkpoint_id: id("jiaduoli-gate-1"),
            recorded_by: id("staff-3"),
            period_start: at("2020-02-23T00:00:00+08:00"),
            period_end: at("2020-02-23T12:00:00+08:00"),
            people_screened: 412,
            vehicles: 37,
            fever_flags: 0,
            refused_scans: 2,
            temporary_passes_issued: 5,
        }
        .into(),
        InspectionRecorded {
            inspection_id: id("insp-2020-02-23-07"),
            site_id: id("corner-noodle-shop"),
            inspector_id: id("staff-1"),
            kind: InspectionKind::ReopeningCheck,
            result: InspectionResult::Passed,
            findings: Some("staff temperature log kept; masks on".into()),
        }
        .into(),
        PatrolRoundStarted {
            round_id: id("round-2020-02-26-am"),
            grid_id: id("minxin-grid-3"),
            led_by: id("staff-1"),
            checklist: vec![
                ChecklistItem { item_id: id("walk-grid"), label: "Walk the grid".into() },
                ChecklistItem { item_id: id("property-office"), label: "Visit the property office".into() },
                ChecklistItem { item_id: id("every-gate"), label: "Look at every gate".into() },
                ChecklistItem { item_id: id("ask-staff"), label: "Ask the gate staff".into() },
                ChecklistItem { item_id: id("reopened-shops"), label: "Check reopened shops".into() },
            ],
        }
        .into(),
        PatrolRoundItemTicked {
            round_id: id("round-2020-02-26-am"),
            item_id: id("every-gate"),
            ticked_by: id("staff-1"),
            evidence_event_id: Some(Uuid::from_u128(0x0170_6a4b_2c00_7000_8000_0000_0000_0001)),
            note: None,
        }
        .into(),
        PatrolRoundCompleted { round_id: id("round-2020-02-26-am"), completed_by: id("staff-1"), note: None }.into(),
        GateIssueRaised {
            issue_id: id("issue-2020-02-20-courier"),
            checkpoint_id: id("longwu-main-gate"),
            raised_by: id("staff-1"),
            category: IssueCategory::CourierCongestion,
            severity: Severity::High,
            summary: "Courier tricycles from four transit stations crowd the gate".into(),
            details: Some("residents and vehicles weave between tricycles; screening slowed".into()),
        }
        .into(),
        GateIssueAcknowledged { issue_id: id("issue-2020-02-20-courier"), acknowledged_by: id("staff-2") }.into(),
        GateIssueAssigned {
            issue_id: id("issue-2020-02-20-courier"),
            assignee_id: id("staff-1"),
            assigned_by: id("staff-2"),
        }
        .into(),
        GateIssueActionTaken {
            issue_id: id("issue-2020-02-20-courier"),
            taken_by: id("staff-1"),
            action: "cordon tape splits the pedestrian and vehicle lanes".into(),
        }
        .into(),
        GateIssueEscalated {
            issue_id: id("issue-2020-02-20-courier"),
            escalated_by: id("staff-1"),
            escalated_to: EscalationTarget::Subdistrict,
            note: Some("subdistrict leaders come with enforcement officers and police".into()),
        }
        .into(),
        GateIssueResolved {
            issue_id: id("issue-2020-02-20-courier"),
            resolved_by: id("staff-1"),
            resolution: "transit stations agreed to move their pickup outside the compound".into(),
        }
        .into(),
        GateIssueResolutionVerified {
            issue_id: id("issue-2020-02-20-courier"),
            verified_by: id("staff-1"),
            note: Some("no tricycles at the gate; queue orderly".into()),
            check_event_id: None,
        }
        .into(),
        GateIssueReopened {
            issue_id: id("issue-2020-02-21-scan"),
            reopened_by: id("staff-2"),
            reason: "refusals again at the evening peak".into(),
        }
        .into(),
        QuarantineReleaseNoticeDelivered {
            household_ref: id("hh-7f3a"),
            site_id: id("jiaduoli"),
            delivered_by: vec![id("staff-4"), id("staff-5")],
            masks_worn: true,
            temperature_taken: true,
            instructions_given: true,
            signed: true,
        }
        .into(),
        SuppliesDelivered {
            delivered_by: id("staff-1"),
            recipient: "gate staff, all checkpoints".into(),
            purpose: Some("drinks for the rain shift".into()),
            items: vec![SupplyItem { item: "herbal tea".into(), quantity: 20, unit: Some("cases".into()) }],
        }
        .into(),
        DirectiveReceived {
            directive_id: id("sz-2020-03-01-rules"),
            title: "Rules for tightening compound epidemic control".into(),
            issued_by: "city headquarters".into(),
            summary: None,
            requires_review: true,
        }
        .into(),
        LedgerTaskAssigned {
            task_id: id("ledger-2020-02-18-1"),
            title: "Fill in the meeting decisions ledger".into(),
            assignee_id: id("staff-1"),
            due_on: Some(date(2020, 2, 18)),
        }
        .into(),
        LedgerTaskCompleted { task_id: id("ledger-2020-02-18-1"), completed_by: id("staff-1"), note: None }.into(),
        FieldNoteRecorded {
            author: id("staff-1"),
            text: "雨天，四个出入口都有人值守。Rain; all four gates staffed.".into(),
            site_id: Some(id("jiaduoli")),
            weather: Some(Weather::Rain),
        }
        .into(),
        EventCorrected {
            corrected_event_id: Uuid::from_u128(0x0170_6a4b_2c00_7000_8000_0000_0000_0002),
            corrected_by: id("staff-2"),
            reason: "wrong gate".into(),
            replacement: Box::new(
                GateIssueActionTaken {
                    issue_id: id("issue-2020-02-20-courier"),
                    taken_by: id("staff-2"),
                    action: "property office told to keep tricycles off the gate".into(),
                }
                .into(),
            ),
        }
        .into(),
        EventRetracted {
            retracted_event_id: Uuid::from_u128(0x0170_6a4b_2c00_7000_8000_0000_0000_0003),
            retracted_by: id("staff-2"),
            reason: "entered twice".into(),
        }
        .into(),
        DaySealed {
            local_day: date(2020, 2, 20),
            time_zone: "Asia/Shanghai".into(),
            sequence: 1,
            event_count: 118,
            first_global_position: 3,
            last_global_position: 120,
            merkle_root: "11".repeat(32),
            chain_head_position: 121,
            chain_hash: "00".repeat(32),
            previous_seal_position: 0,
            previous_seal_hash: String::new(),
            key_id: "0123456789abcdef".into(),
            signature: "22".repeat(64),
        }
        .into(),
    ];
    debug_assert_eq!(events.len(), Event::TYPES.len());
    events
}

/// The deterministic UUIDv7 of sample number `sequence`.
pub fn event_id(sequence: u64) -> Uuid {
    Uuid::from_u128(0x0170_6a4b_2c00_7000_8000_0000_0000_0000 | u128::from(sequence))
}

/// `event` as the log would hold it at `global_position` (also its stream version) of
/// `stream_id`, with id `event_id(global_position)`, for tests that feed folds directly.
pub fn recorded_event(
    global_position: u64,
    stream_id: EntityId,
    occurred_at: Timestamp,
    recorded_at: Timestamp,
    event: Event,
) -> RecordedEvent {
    RecordedEvent {
        global_position,
        stream_id,
        stream_version: global_position,
        event_id: event_id(global_position),
        occurred_at,
        recorded_at,
        actor: id("staff-1"),
        correlation_id: None,
        causation_id: None,
        event,
        hash: [global_position as u8; 32],
    }
}

/// Wraps `event` in an envelope with fixed, deterministic metadata derived from `sequence`.
pub fn new_event(sequence: u64, event: Event) -> NewEvent {
    NewEvent {
        event_id: event_id(sequence),
        occurred_at: Timestamp::from_microsecond(1_582_160_400_000_000 + sequence as i64 * 60_000_000)
            .expect("in range"),
        actor: id("staff-1"),
        correlation_id: None,
        causation_id: None,
        event,
    }
}
