//! The after-action summary of one or more local days, for the whole community or one site:
//! checks against schedule (coverage and gaps), issues by category with their times to first
//! action and to resolution, escalations, verifications and reopenings, actions, supplies,
//! quarantine releases, passes and traffic tallies, field notes, corrections, and the
//! integrity seal (chain head) at the end of the range.
//!
//! Computed when asked from the views at the period's start and end and the period's own
//! events (see [`Period`]), deterministic for the same events.

use std::collections::BTreeMap;

use events_schema::{CheckResult, EntityId, EntityKind, Event, IssueCategory, RecordedEvent, SupplyItem, Timestamp};
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::timeline::local_day;
use crate::{CheckpointBoard, IssueBoard, Registry, TallyTotals};

/// Checks of one checkpoint over the range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckCoverage {
    pub checkpoint_id: EntityId,
    pub name: String,
    pub checks: u32,
    pub issues_found: u32,
    /// Checks the schedule asked for (none without a schedule).
    pub expected: Option<u32>,
    /// Periods inside the active hours longer than the interval without a check.
    pub gaps: Vec<Gap>,
}

/// A period inside a checkpoint's active hours, longer than its check interval, without a
/// check. Its ends are local date-times, not times of day, because an overnight window's
/// gap can start before midnight and end after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The local day whose active window holds the gap (a window belongs to the day it
    /// starts on).
    pub day: Date,
    /// The last check before the gap, or the window's start.
    pub start: DateTime,
    /// The next check after the gap, or the window's end.
    pub end: DateTime,
}

/// Supplies handed over in the range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SupplyDelivery {
    /// When they were handed over, local time.
    pub occurred_at_local: DateTime,
    pub delivered_by: EntityId,
    pub recipient: String,
    pub purpose: Option<String>,
    /// What was handed over, each with its quantity as a number.
    pub items: Vec<SupplyItem>,
}

/// A field note recorded in the range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldNote {
    /// When it was written, local time.
    pub occurred_at_local: DateTime,
    pub author: EntityId,
    pub site_id: Option<EntityId>,
    pub text: String,
}

/// One issue as the summary lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IssueLine {
    pub issue_id: EntityId,
    pub checkpoint_id: EntityId,
    pub category: IssueCategory,
    pub summary: String,
    pub state: crate::IssueState,
    pub minutes_to_first_action: Option<i64>,
    pub minutes_to_resolution: Option<i64>,
    pub actions: Vec<String>,
    pub escalated_to: Vec<events_schema::EscalationTarget>,
    pub verified: bool,
    pub reopened: u32,
}

/// The summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub from: Date,
    pub to: Date,
    pub site_id: Option<EntityId>,
    pub checks: Vec<CheckCoverage>,
    /// Issues raised in the range, and those raised before it that were still open.
    pub issues: Vec<IssueLine>,
    pub raised_by_category: BTreeMap<IssueCategory, u32>,
    pub resolved: u32,
    pub still_open: u32,
    pub escalations: u32,
    pub verifications: u32,
    pub reopenings: u32,
    pub actions: u32,
    pub supplies: Vec<SupplyDelivery>,
    pub quarantine_releases: u32,
    pub inspections: u32,
    pub tallies: TallyTotals,
    pub field_notes: Vec<FieldNote>,
    pub corrections: u32,
    pub retractions: u32,
    /// The integrity seal: the log position the summary was computed at (every event it
    /// counts lies at or before it) and its chain hash (hex), which a later `verify` must
    /// still find.
    pub seal_position: u64,
    pub seal_hash: String,
    /// The signed day seals of the period, in log order.
    pub day_seals: Vec<DaySealLine>,
    /// Events of the period that arrived after their day's last seal (or whose day has no
    /// seal yet): counted here, not yet covered by a seal.
    pub unsealed_events: u64,
}

/// One day seal, as a report lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DaySealLine {
    pub day: Date,
    pub sequence: u32,
    pub event_count: u64,
    pub merkle_root: String,
    pub key_id: String,
    pub global_position: u64,
}

fn minutes(micros: i64) -> i64 {
    micros / 60_000_000
}

/// The local date and time of `at`.
fn local_time(at: Timestamp, time_zone: &TimeZone) -> DateTime {
    at.as_jiff().to_zoned_datetime(time_zone.clone()).datetime()
}

/// One event of the period, as the summary reads it.
#[derive(Clone, Copy, Debug)]
pub struct PeriodEvent<'a> {
    pub event: &'a RecordedEvent,
    /// What it says as known now: its last correction's replacement when corrected, `None`
    /// when retracted.
    pub effective: Option<&'a Event>,
    /// For a correction or a retraction: the event it amends, when the log holds it.
    pub target: Option<&'a Event>,
}

/// What a summary is computed from: the views when the period began and when it ended, and
/// the period's own events. Nothing from outside the period is read but these views.
#[derive(Clone, Copy, Debug)]
pub struct Period<'a> {
    pub time_zone: &'a TimeZone,
    pub from: Date,
    pub to: Date,
    pub site: Option<&'a EntityId>,
    /// The registry and checkpoint board as they stood when the period began: which
    /// checkpoints existed, and each one's schedule and open state then.
    pub registry_before: &'a Registry,
    pub board_before: &'a CheckpointBoard,
    /// The registry and the issues as they stood when the period ended (corrections made
    /// later included).
    pub registry: &'a Registry,
    pub issues: &'a IssueBoard,
    /// The events that happened in the period, in the order they happened.
    pub events: &'a [PeriodEvent<'a>],
    /// The events of the day after the period: checks for a window that runs past its last
    /// midnight, and tallies for a period that starts in the range.
    pub morning_after: &'a [PeriodEvent<'a>],
    /// The log position the summary was computed at, and its chain hash.
    pub position: u64,
    pub hash: events_schema::ChainHash,
}

/// The rules a checkpoint was under from a moment on: whether it existed and was open, and
/// its schedule (interval in minutes, active from, active until).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rules {
    registered: bool,
    open: bool,
    schedule: Option<(u32, Time, Time)>,
}

/// Builds the summary of `period`.
pub fn summary(period: &Period<'_>) -> Summary {
    let Period { time_zone, from, to, site, registry, issues: board, .. } = *period;
    let in_range = |at: Timestamp| {
        let day = local_day(at, time_zone);
        from <= day && day <= to
    };
    let site_of = |checkpoint_id: &EntityId| registry.checkpoints.get(checkpoint_id).map(|c| c.site_id.clone());
    let in_site = |checkpoint_id: &EntityId| site.is_none_or(|site| site_of(checkpoint_id).as_ref() == Some(site));

    // Checks per checkpoint, and the rules each checkpoint was under through the period.
    let mut check_times: BTreeMap<EntityId, Vec<(Timestamp, CheckResult)>> = BTreeMap::new();
    // Checks on the morning after the range, for windows that run past its last midnight.
    let mut overnight_checks: BTreeMap<EntityId, Vec<(Timestamp, CheckResult)>> = BTreeMap::new();
    let range_start = crate::day_bounds(from, time_zone).map(|(start, _)| start);
    let mut rules: BTreeMap<EntityId, Vec<(Option<Timestamp>, Rules)>> = BTreeMap::new();
    for checkpoint_id in registry.checkpoints.keys() {
        let (open, schedule) = period.board_before.rules_of(checkpoint_id);
        let registered = period.registry_before.checkpoints.contains_key(checkpoint_id);
        rules.insert(checkpoint_id.clone(), vec![(None, Rules { registered, open, schedule })]);
    }
    let mut change_rules = |checkpoint_id: &EntityId, at: Timestamp, change: &dyn Fn(&mut Rules)| {
        if let Some(changes) = rules.get_mut(checkpoint_id) {
            let mut next = changes.last().map(|(_, rules)| *rules).expect("every checkpoint starts with its rules");
            change(&mut next);
            changes.push((Some(at), next));
        }
    };
    for item in period.morning_after {
        if let Some(Event::PatrolCheckRecorded(e)) = item.effective {
            if in_site(&e.checkpoint_id) {
                overnight_checks.entry(e.checkpoint_id.clone()).or_default().push((item.event.occurred_at, e.result));
            }
        }
    }
    let mut summary = Summary {
        from,
        to,
        site_id: site.cloned(),
        checks: Vec::new(),
        issues: Vec::new(),
        raised_by_category: BTreeMap::new(),
        resolved: 0,
        still_open: 0,
        escalations: 0,
        verifications: 0,
        reopenings: 0,
        actions: 0,
        supplies: Vec::new(),
        quarantine_releases: 0,
        inspections: 0,
        tallies: TallyTotals::default(),
        field_notes: Vec::new(),
        corrections: 0,
        retractions: 0,
        seal_position: period.position,
        seal_hash: period.hash.iter().map(|b| format!("{b:02x}")).collect(),
        day_seals: Vec::new(),
        unsealed_events: 0,
    };
    let issue_in_site = |issue_id: &EntityId| board.issue(issue_id).is_some_and(|issue| in_site(&issue.checkpoint_id));
    // Whether an event is about `site` (always, without a site filter).
    let about_site = |event: &Event| {
        site.is_none_or(|site| {
            event.facts().entities().iter().any(|entity| match entity.kind {
                EntityKind::Site => entity.id == site,
                EntityKind::Checkpoint => in_site(entity.id),
                EntityKind::Issue => issue_in_site(entity.id),
                EntityKind::Community
                | EntityKind::Grid
                | EntityKind::Staff
                | EntityKind::Team
                | EntityKind::Round
                | EntityKind::ChecklistItem
                | EntityKind::Inspection
                | EntityKind::Household
                | EntityKind::Directive
                | EntityKind::LedgerTask => false,
            })
        })
    };
    for item in period.events {
        let Some(payload) = item.effective else { continue };
        let event = item.event;
        match payload {
            Event::CheckpointRegistered(e) => {
                change_rules(&e.checkpoint_id, event.occurred_at, &|rules| rules.registered = true);
            }
            Event::CheckpointClosed(e) => {
                change_rules(&e.checkpoint_id, event.occurred_at, &|rules| rules.open = false)
            }
            Event::CheckpointReopened(e) => {
                change_rules(&e.checkpoint_id, event.occurred_at, &|rules| rules.open = true);
            }
            Event::CheckpointScheduleSet(e) => {
                let schedule = (e.check_interval_minutes, e.active_from, e.active_until);
                change_rules(&e.checkpoint_id, event.occurred_at, &|rules| rules.schedule = Some(schedule));
            }
            Event::PatrolCheckRecorded(e) if in_site(&e.checkpoint_id) => {
                check_times.entry(e.checkpoint_id.clone()).or_default().push((event.occurred_at, e.result));
            }
            Event::GateIssueEscalated(e) if issue_in_site(&e.issue_id) => {
                summary.escalations = summary.escalations.saturating_add(1)
            }
            Event::GateIssueResolutionVerified(e) if issue_in_site(&e.issue_id) => {
                summary.verifications = summary.verifications.saturating_add(1)
            }
            Event::GateIssueReopened(e) if issue_in_site(&e.issue_id) => {
                summary.reopenings = summary.reopenings.saturating_add(1)
            }
            Event::GateIssueActionTaken(e) if issue_in_site(&e.issue_id) => {
                summary.actions = summary.actions.saturating_add(1)
            }
            Event::GateIssueResolved(e) if issue_in_site(&e.issue_id) => {
                summary.resolved = summary.resolved.saturating_add(1)
            }
            Event::SuppliesDelivered(e) if site.is_none() => {
                summary.supplies.push(SupplyDelivery {
                    occurred_at_local: local_time(event.occurred_at, time_zone),
                    delivered_by: e.delivered_by.clone(),
                    recipient: e.recipient.clone(),
                    purpose: e.purpose.clone(),
                    items: e.items.clone(),
                });
            }
            Event::QuarantineReleaseNoticeDelivered(e) if site.is_none_or(|s| *s == e.site_id) => {
                summary.quarantine_releases = summary.quarantine_releases.saturating_add(1);
            }
            Event::InspectionRecorded(e) if site.is_none_or(|s| *s == e.site_id) => {
                summary.inspections = summary.inspections.saturating_add(1)
            }
            Event::FieldNoteRecorded(e) if site.is_none_or(|s| e.site_id.as_ref() == Some(s)) => {
                summary.field_notes.push(FieldNote {
                    occurred_at_local: local_time(event.occurred_at, time_zone),
                    author: e.author.clone(),
                    site_id: e.site_id.clone(),
                    text: e.text.clone(),
                });
            }
            Event::EventCorrected(_) if item.target.is_some_and(&about_site) => {
                summary.corrections = summary.corrections.saturating_add(1);
            }
            Event::EventRetracted(_) if item.target.is_some_and(&about_site) => {
                summary.retractions = summary.retractions.saturating_add(1);
            }
            Event::CommunityRegistered(_)
            | Event::GridRegistered(_)
            | Event::SiteRegistered(_)
            | Event::StaffRegistered(_)
            | Event::TeamFormed(_)
            | Event::PatrolCheckRecorded(_)
            | Event::TrafficTallyRecorded(_)
            | Event::InspectionRecorded(_)
            | Event::PatrolRoundStarted(_)
            | Event::PatrolRoundItemTicked(_)
            | Event::PatrolRoundCompleted(_)
            | Event::GateIssueRaised(_)
            | Event::GateIssueAcknowledged(_)
            | Event::GateIssueAssigned(_)
            | Event::GateIssueActionTaken(_)
            | Event::GateIssueEscalated(_)
            | Event::GateIssueResolved(_)
            | Event::GateIssueResolutionVerified(_)
            | Event::GateIssueReopened(_)
            | Event::QuarantineReleaseNoticeDelivered(_)
            | Event::SuppliesDelivered(_)
            | Event::DirectiveReceived(_)
            | Event::LedgerTaskAssigned(_)
            | Event::LedgerTaskCompleted(_)
            | Event::FieldNoteRecorded(_)
            | Event::EventCorrected(_)
            | Event::EventRetracted(_)
            | Event::DaySealed(_) => {}
        }
    }
    // Tallies count on the day their period starts (a tally made by the end of the day
    // after the range counts for the range's last day).
    for item in period.events.iter().chain(period.morning_after) {
        if let Some(Event::TrafficTallyRecorded(e)) = item.effective {
            if in_range(e.period_start) && in_site(&e.checkpoint_id) {
                summary.tallies.people_screened =
                    summary.tallies.people_screened.saturating_add(u64::from(e.people_screened));
                summary.tallies.vehicles = summary.tallies.vehicles.saturating_add(u64::from(e.vehicles));
                summary.tallies.fever_flags = summary.tallies.fever_flags.saturating_add(u64::from(e.fever_flags));
                summary.tallies.refused_scans =
                    summary.tallies.refused_scans.saturating_add(u64::from(e.refused_scans));
                summary.tallies.temporary_passes_issued =
                    summary.tallies.temporary_passes_issued.saturating_add(u64::from(e.temporary_passes_issued));
            }
        }
    }
    for (checkpoint_id, info) in &registry.checkpoints {
        if !in_site(checkpoint_id) {
            continue;
        }
        let checks = check_times.remove(checkpoint_id).unwrap_or_default();
        // A window belongs to the day it starts on; the last day's may run past midnight,
        // so its checks after midnight count for its coverage (not for the check count).
        let mut window_checks = checks.clone();
        window_checks.extend(overnight_checks.remove(checkpoint_id).unwrap_or_default());
        let changes = rules.remove(checkpoint_id).unwrap_or_default();
        let (expected, gaps) = coverage(&changes, range_start, &window_checks, from, to, time_zone);
        summary.checks.push(CheckCoverage {
            checkpoint_id: checkpoint_id.clone(),
            name: info.name.clone(),
            checks: checks.len() as u32,
            issues_found: checks.iter().filter(|(_, result)| *result == CheckResult::IssueFound).count() as u32,
            expected,
            gaps,
        });
    }
    for issue in board.issues().filter(|issue| in_site(&issue.checkpoint_id)) {
        let raised_during = in_range(issue.raised_at);
        let open_from_before = range_start.is_some_and(|start| issue.raised_at < start)
            && (issue.is_open() || issue.resolved_at.is_some_and(&in_range));
        if !raised_during && !open_from_before {
            continue;
        }
        if raised_during {
            let raised = summary.raised_by_category.entry(issue.category).or_default();
            *raised = raised.saturating_add(1);
        }
        summary.still_open = summary.still_open.saturating_add(u32::from(issue.is_open()));
        summary.issues.push(IssueLine {
            minutes_to_first_action: issue.time_to_first_action_micros().map(minutes),
            minutes_to_resolution: issue.time_to_resolution_micros().map(minutes),
            verified: issue.verified_at.is_some(),
            issue_id: issue.issue_id,
            checkpoint_id: issue.checkpoint_id,
            category: issue.category,
            summary: issue.summary,
            state: issue.state,
            actions: issue.actions,
            escalated_to: issue.escalated_to,
            reopened: issue.reopened,
        });
    }
    summary
}

/// Checks the rules asked for over the range, and the gaps longer than the interval. `rules`
/// are the checkpoint's rules from the range's start (`None`) and each change after it: a
/// day's window counts only while the checkpoint exists, is open and has a schedule, each
/// part of it by the schedule in force then.
fn coverage(
    rules: &[(Option<Timestamp>, Rules)],
    range_start: Option<Timestamp>,
    checks: &[(Timestamp, CheckResult)],
    from: Date,
    to: Date,
    time_zone: &TimeZone,
) -> (Option<u32>, Vec<Gap>) {
    // A schedule without an interval (only possible through a raw append) asks for nothing.
    let asks = |rules: &Rules| rules.schedule.is_some_and(|(interval, _, _)| interval > 0);
    if !rules.iter().any(|(_, rules)| asks(rules)) {
        return (None, Vec::new());
    }
    let mut times: Vec<Timestamp> = checks.iter().map(|(at, _)| *at).collect();
    times.sort();
    let mut expected = 0u32;
    let mut gaps = Vec::new();
    let mut day = from;
    while day <= to {
        for (k, (since, part)) in rules.iter().enumerate() {
            let Some((interval_minutes, active_from, active_until)) = part.schedule else { continue };
            if !part.registered || !part.open || interval_minutes == 0 {
                continue;
            }
            let interval = i64::from(interval_minutes) * 60_000_000;
            let start = day.to_datetime(active_from).to_zoned_datetime(time_zone.clone());
            let until_day = if active_from < active_until { Ok(day) } else { day.tomorrow() };
            let end = until_day.and_then(|d| d.to_datetime(active_until).to_zoned_datetime(time_zone.clone()));
            let (Ok(start), Ok(end)) = (start, end) else { continue };
            let mut start = Timestamp::from_jiff(start.timestamp());
            let mut end = Timestamp::from_jiff(end.timestamp());
            // This part of the rules holds from its change (or the range's start) to the next.
            if let Some(since) = since.or(range_start) {
                start = start.max(since);
            }
            if let Some((Some(next), _)) = rules.get(k + 1) {
                end = end.min(*next);
            }
            if start >= end {
                continue;
            }
            let window = end.as_microsecond() - start.as_microsecond();
            expected = expected.saturating_add(u32::try_from(window / interval).unwrap_or(u32::MAX));
            let inside = times.iter().copied().filter(|at| start <= *at && *at < end);
            let mut previous = start;
            for at in inside.chain([end]) {
                if at.as_microsecond() - previous.as_microsecond() > interval {
                    gaps.push(Gap { day, start: local_time(previous, time_zone), end: local_time(at, time_zone) });
                }
                previous = at;
            }
        }
        let Ok(next) = day.tomorrow() else { break };
        day = next;
    }
    (Some(expected), gaps)
}
