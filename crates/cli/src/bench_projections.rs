//! `gridwatch bench --projections`: folds generated events through every view (the domain
//! state, registry, checkpoint board, issue board) and measures events per second on one
//! core, peak memory at 1M and at 5M events (each count in a process of its own, so the
//! figures do not mix), and the replay of a 100,000-event day.

use std::time::Instant;

use domain::State;
use events_schema::*;
use jiff::tz::TimeZone;
use projections::{CheckpointBoard, IssueBoard, Registry};
use uuid::Uuid;

use crate::Failure;

const SITES: u64 = 50;
const CHECKPOINTS_PER_SITE: u64 = 4;
const STAFF: u64 = 40;
/// Issues in the generated log: a fixed number, so that the entities are the same at 1M and
/// at 5M events and only the number of events grows.
const ISSUES: u64 = 2_000;

fn id(text: String) -> EntityId {
    EntityId::new(text).expect("generated ids are valid")
}

/// How many generated events register the places and the staff (they come first).
pub const SETUP_EVENTS: u64 = SITES * (1 + CHECKPOINTS_PER_SITE) + STAFF + 2;
/// How many checkpoints (gates) the generated events name.
pub const CHECKPOINTS: u64 = SITES * CHECKPOINTS_PER_SITE;

/// The `n`-th generated event (deterministic): the places first, then a mix of checks (70%),
/// tallies (15%), issue steps (10%) and field notes (5%), one every 3 seconds of field time.
pub fn generated_event(n: u64, start: Timestamp) -> RecordedEvent {
    let setup = SETUP_EVENTS;
    let checkpoint = |k: u64| id(format!("cp-{}", k % CHECKPOINTS));
    let staff = |k: u64| id(format!("staff-{}", k % STAFF));
    let occurred_at = Timestamp::from_microsecond(start.as_microsecond() + n as i64 * 3_000_000).expect("in range");
    let event: Event = if n == 0 {
        CommunityRegistered { community_id: id("c".into()), name: "Community".into(), parent_area: None }.into()
    } else if n == 1 {
        GridRegistered { grid_id: id("g".into()), community_id: id("c".into()), name: "Grid".into() }.into()
    } else if n < 2 + SITES {
        SiteRegistered {
            site_id: id(format!("site-{}", n - 2)),
            grid_id: id("g".into()),
            name: format!("Site {}", n - 2),
            kind: SiteKind::ResidentialCompound,
        }
        .into()
    } else if n < 2 + SITES + SITES * CHECKPOINTS_PER_SITE {
        let k = n - 2 - SITES;
        CheckpointRegistered {
            checkpoint_id: checkpoint(k),
            site_id: id(format!("site-{}", k / CHECKPOINTS_PER_SITE)),
            name: format!("Gate {k}"),
        }
        .into()
    } else if n < setup {
        StaffRegistered {
            staff_id: staff(n),
            display_name: format!("Staff {n}"),
            role: StaffRole::GridWorker,
            grid_id: None,
        }
        .into()
    } else {
        let k = n - setup;
        match k % 20 {
            0..14 => PatrolCheckRecorded {
                checkpoint_id: checkpoint(k),
                staff_id: staff(k),
                result: if k % 97 == 0 { CheckResult::IssueFound } else { CheckResult::Ok },
                staff_present: Some(true),
                protective_gear_worn: Some(true),
                thermometer_working: Some(true),
                health_code_scan_enforced: Some(true),
                passage_logbook_kept: Some(true),
                queue_orderly: Some(true),
                weather: None,
                round_id: None,
                note: None,
            }
            .into(),
            14..17 => TrafficTallyRecorded {
                checkpoint_id: checkpoint(k),
                recorded_by: staff(k),
                period_start: occurred_at,
                period_end: occurred_at,
                people_screened: (k % 300) as u32,
                vehicles: (k % 30) as u32,
                fever_flags: 0,
                refused_scans: (k % 3) as u32,
                temporary_passes_issued: (k % 2) as u32,
            }
            .into(),
            17 if k / 60 < ISSUES => {
                // Issue steps: each issue is raised, acted on and resolved over 3 of them.
                let issue = id(format!("issue-{}", k / 60));
                match (k / 20) % 3 {
                    0 => GateIssueRaised {
                        issue_id: issue,
                        checkpoint_id: checkpoint(k),
                        raised_by: staff(k),
                        category: IssueCategory::Crowding,
                        severity: Severity::Medium,
                        summary: "crowd".into(),
                        details: None,
                    }
                    .into(),
                    1 => GateIssueActionTaken { issue_id: issue, taken_by: staff(k), action: "split the queue".into() }
                        .into(),
                    _ => GateIssueResolved { issue_id: issue, resolved_by: staff(k), resolution: "orderly".into() }
                        .into(),
                }
            }
            17 | 18 => PatrolCheckRecorded {
                checkpoint_id: checkpoint(k + 1),
                staff_id: staff(k),
                result: CheckResult::Ok,
                staff_present: None,
                protective_gear_worn: None,
                thermometer_working: None,
                health_code_scan_enforced: None,
                passage_logbook_kept: None,
                queue_orderly: None,
                weather: None,
                round_id: None,
                note: None,
            }
            .into(),
            _ => FieldNoteRecorded {
                author: staff(k),
                text: "all quiet at the gate".into(),
                site_id: None,
                weather: None,
            }
            .into(),
        }
    };
    RecordedEvent {
        global_position: n + 1,
        stream_id: id("s".into()),
        stream_version: n + 1,
        event_id: Uuid::from_u128(0x0170_0000_0000_7000_8000_0000_0000_0000 | u128::from(n)),
        occurred_at,
        recorded_at: occurred_at,
        actor: id("bench".into()),
        correlation_id: None,
        causation_id: None,
        event,
        hash: [0; 32],
    }
}

/// Folds `events` generated events; prints `events_per_second peak_rss_mib`.
pub fn fold(events: u64) -> Result<(), Failure> {
    let zone = TimeZone::get(projections::DEFAULT_TIME_ZONE).map_err(|e| Failure::Operating(e.into()))?;
    let start: Timestamp =
        "2020-02-12T00:00:00+08:00".parse().map_err(|e: jiff::Error| Failure::Operating(e.into()))?;
    let mut state = State::default();
    let mut registry = Registry::default();
    let mut board = CheckpointBoard::new(zone);
    let mut issues = IssueBoard::default();
    let started = Instant::now();
    for n in 0..events {
        let event = generated_event(n, start);
        state.apply(&event);
        registry.apply(&event);
        board.apply(&event);
        issues.apply(&event);
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    // Keep the views alive until memory is read.
    let open = issues.issues().filter(|issue| issue.is_open()).count();
    println!("{rate:.0} {:.1} {open}", peak_rss_mib());
    Ok(())
}

/// The peak resident memory of this process so far, in MiB.
pub(crate) fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}
