//! The after-action summary of one or more local days, for the whole community or one site:
//! checks against schedule (coverage and gaps), issues by category with their times to first
//! action and to resolution, escalations, verifications and reopenings, actions, supplies,
//! quarantine releases, passes and traffic tallies, field notes, corrections, and the
//! integrity seal (chain head) at the end of the range.
//!
//! Computed from the events when asked (like the timeline), deterministic for the same events.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use events_schema::{CheckResult, EntityId, EntityKind, Event, IssueCategory, RecordedEvent, SupplyItem, Timestamp};
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::timeline::local_day;
use crate::{IssueBoard, Registry, TallyTotals};

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
    /// The integrity seal: the last position holding an event that happened by the end of
    /// the range, and its chain hash (hex), which a later `verify` must still find.
    pub seal_position: u64,
    pub seal_hash: String,
}

fn minutes(micros: i64) -> i64 {
    micros / 60_000_000
}

/// The local date and time of `at`.
fn local_time(at: Timestamp, time_zone: &TimeZone) -> DateTime {
    at.as_jiff().to_zoned_datetime(time_zone.clone()).datetime()
}

/// Builds the summary of local days `from..=to` (for `site` when given) from `log` (every
/// event, in log order).
pub fn summary(log: &[RecordedEvent], time_zone: &TimeZone, from: Date, to: Date, site: Option<&EntityId>) -> Summary {
    let in_range = |at: Timestamp| {
        let day = local_day(at, time_zone);
        from <= day && day <= to
    };
    let end = to
        .tomorrow()
        .ok()
        .and_then(|next| next.to_datetime(Time::MIN).to_zoned_datetime(time_zone.clone()).ok())
        .map(|zoned| Timestamp::from_jiff(zoned.timestamp()));
    let known_by_end: Vec<&RecordedEvent> = log.iter().filter(|e| end.is_none_or(|end| e.occurred_at < end)).collect();
    // Corrections and retractions count whenever they were made: a report shows the
    // corrected state of its period, even when the correction came later.
    let mut retracted: BTreeSet<uuid::Uuid> = BTreeSet::new();
    let mut replacements: HashMap<uuid::Uuid, &Event> = HashMap::new();
    for event in log {
        match &event.event {
            Event::EventRetracted(r) => {
                retracted.insert(r.retracted_event_id);
            }
            Event::EventCorrected(c) => {
                replacements.insert(c.corrected_event_id, &c.replacement);
            }
            Event::CommunityRegistered(_)
            | Event::GridRegistered(_)
            | Event::SiteRegistered(_)
            | Event::CheckpointRegistered(_)
            | Event::CheckpointClosed(_)
            | Event::CheckpointReopened(_)
            | Event::StaffRegistered(_)
            | Event::TeamFormed(_)
            | Event::CheckpointScheduleSet(_)
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
            | Event::DaySealed(_) => {}
        }
    }
    let later_amendments = log
        .iter()
        .filter(|e| end.is_some_and(|end| e.occurred_at >= end))
        .filter(|e| e.event.facts().amends().is_some());
    let mut registry = Registry::default();
    let mut board = IssueBoard::default();
    for event in known_by_end.iter().copied().chain(later_amendments) {
        registry.apply(event);
        board.apply(event);
    }
    let site_of = |checkpoint_id: &EntityId| registry.checkpoints.get(checkpoint_id).map(|c| c.site_id.clone());
    let in_site = |checkpoint_id: &EntityId| site.is_none_or(|site| site_of(checkpoint_id).as_ref() == Some(site));
    let standing = |e: &&&RecordedEvent| !retracted.contains(&e.event_id);
    // What an event says once corrected.
    let effective = |e: &RecordedEvent| -> Event {
        replacements.get(&e.event_id).map_or_else(|| e.event.clone(), |r| (*r).clone())
    };

    // Checks and schedules per checkpoint.
    let mut schedules = BTreeMap::new();
    let mut check_times: BTreeMap<EntityId, Vec<(Timestamp, CheckResult)>> = BTreeMap::new();
    // Checks on the morning after the range, for windows that run past its last midnight.
    let mut overnight_checks: BTreeMap<EntityId, Vec<(Timestamp, CheckResult)>> = BTreeMap::new();
    let after_end = end.and_then(|end| Timestamp::from_microsecond(end.as_microsecond() + 86_400_000_000));
    for event in log.iter().filter(|e| !retracted.contains(&e.event_id)) {
        let outside_but_overnight =
            end.is_some_and(|end| event.occurred_at >= end) && after_end.is_some_and(|after| event.occurred_at < after);
        if let (true, Event::PatrolCheckRecorded(e)) = (outside_but_overnight, effective(event)) {
            if in_site(&e.checkpoint_id) {
                overnight_checks.entry(e.checkpoint_id.clone()).or_default().push((event.occurred_at, e.result));
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
        seal_position: 0,
        seal_hash: String::new(),
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
    let by_id: HashMap<uuid::Uuid, &RecordedEvent> = log.iter().map(|e| (e.event_id, e)).collect();
    for event in known_by_end.iter().filter(standing) {
        let during = in_range(event.occurred_at);
        let payload = effective(event);
        match &payload {
            Event::CheckpointScheduleSet(e) => {
                schedules.insert(e.checkpoint_id.clone(), (e.check_interval_minutes, e.active_from, e.active_until));
            }
            Event::PatrolCheckRecorded(e) if during && in_site(&e.checkpoint_id) => {
                check_times.entry(e.checkpoint_id.clone()).or_default().push((event.occurred_at, e.result));
            }
            Event::GateIssueEscalated(e) if during && issue_in_site(&e.issue_id) => {
                summary.escalations = summary.escalations.saturating_add(1)
            }
            Event::GateIssueResolutionVerified(e) if during && issue_in_site(&e.issue_id) => {
                summary.verifications = summary.verifications.saturating_add(1)
            }
            Event::GateIssueReopened(e) if during && issue_in_site(&e.issue_id) => {
                summary.reopenings = summary.reopenings.saturating_add(1)
            }
            Event::GateIssueActionTaken(e) if during && issue_in_site(&e.issue_id) => {
                summary.actions = summary.actions.saturating_add(1)
            }
            Event::GateIssueResolved(e) if during && issue_in_site(&e.issue_id) => {
                summary.resolved = summary.resolved.saturating_add(1)
            }
            Event::SuppliesDelivered(e) if during && site.is_none() => {
                summary.supplies.push(SupplyDelivery {
                    occurred_at_local: local_time(event.occurred_at, time_zone),
                    delivered_by: e.delivered_by.clone(),
                    recipient: e.recipient.clone(),
                    purpose: e.purpose.clone(),
                    items: e.items.clone(),
                });
            }
            Event::QuarantineReleaseNoticeDelivered(e) if during && site.is_none_or(|s| *s == e.site_id) => {
                summary.quarantine_releases = summary.quarantine_releases.saturating_add(1);
            }
            Event::InspectionRecorded(e) if during && site.is_none_or(|s| *s == e.site_id) => {
                summary.inspections = summary.inspections.saturating_add(1)
            }
            Event::FieldNoteRecorded(e) if during && site.is_none_or(|s| e.site_id.as_ref() == Some(s)) => {
                summary.field_notes.push(FieldNote {
                    occurred_at_local: local_time(event.occurred_at, time_zone),
                    author: e.author.clone(),
                    site_id: e.site_id.clone(),
                    text: e.text.clone(),
                });
            }
            Event::EventCorrected(c)
                if during && by_id.get(&c.corrected_event_id).is_some_and(|t| about_site(&t.event)) =>
            {
                summary.corrections = summary.corrections.saturating_add(1);
            }
            Event::EventRetracted(r)
                if during && by_id.get(&r.retracted_event_id).is_some_and(|t| about_site(&t.event)) =>
            {
                summary.retractions = summary.retractions.saturating_add(1);
            }
            Event::CommunityRegistered(_)
            | Event::GridRegistered(_)
            | Event::SiteRegistered(_)
            | Event::CheckpointRegistered(_)
            | Event::CheckpointClosed(_)
            | Event::CheckpointReopened(_)
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
    // Tallies count on the day their period starts, whenever they were recorded.
    for event in log.iter().filter(|e| !retracted.contains(&e.event_id)) {
        if let Event::TrafficTallyRecorded(e) = effective(event) {
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
        let schedule = schedules.get(checkpoint_id).copied();
        // A window belongs to the day it starts on; the last day's may run past midnight,
        // so its checks after midnight count for its coverage (not for the check count).
        let mut window_checks = checks.clone();
        window_checks.extend(overnight_checks.remove(checkpoint_id).unwrap_or_default());
        let (expected, gaps) = match schedule {
            Some(schedule) => coverage(schedule, &window_checks, from, to, time_zone),
            None => (None, Vec::new()),
        };
        summary.checks.push(CheckCoverage {
            checkpoint_id: checkpoint_id.clone(),
            name: info.name.clone(),
            checks: checks.len() as u32,
            issues_found: checks.iter().filter(|(_, result)| *result == CheckResult::IssueFound).count() as u32,
            expected,
            gaps,
        });
    }
    let range_start = from
        .to_datetime(Time::MIN)
        .to_zoned_datetime(time_zone.clone())
        .ok()
        .map(|z| Timestamp::from_jiff(z.timestamp()));
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
    // The seal: the chain hash at the last position holding an event that happened by the
    // end of the range. Every event of the range lies at or before it, so checking the chain
    // up to it proves none of them was altered, however late they were recorded.
    if let Some(last) = known_by_end.iter().max_by_key(|e| e.global_position) {
        summary.seal_position = last.global_position;
        summary.seal_hash = last.hash.iter().map(|b| format!("{b:02x}")).collect();
    }
    summary
}

/// Checks the schedule asked for over the range, and the gaps longer than the interval.
fn coverage(
    (interval_minutes, active_from, active_until): (u32, Time, Time),
    checks: &[(Timestamp, CheckResult)],
    from: Date,
    to: Date,
    time_zone: &TimeZone,
) -> (Option<u32>, Vec<Gap>) {
    // A schedule without an interval (only possible through a raw append) asks for nothing.
    if interval_minutes == 0 {
        return (None, Vec::new());
    }
    let interval = i64::from(interval_minutes) * 60_000_000;
    let mut expected = 0u32;
    let mut gaps = Vec::new();
    let mut day = from;
    while day <= to {
        let start = day.to_datetime(active_from).to_zoned_datetime(time_zone.clone());
        let until_day = if active_from < active_until { Ok(day) } else { day.tomorrow() };
        let end = until_day.and_then(|d| d.to_datetime(active_until).to_zoned_datetime(time_zone.clone()));
        if let (Ok(start), Ok(end)) = (start, end) {
            let (start, end) = (Timestamp::from_jiff(start.timestamp()), Timestamp::from_jiff(end.timestamp()));
            let window = end.as_microsecond() - start.as_microsecond();
            expected = expected.saturating_add(u32::try_from(window / interval).unwrap_or(u32::MAX));
            let mut times: Vec<Timestamp> =
                checks.iter().map(|(at, _)| *at).filter(|at| start <= *at && *at < end).collect();
            times.sort();
            let mut previous = start;
            for at in times.into_iter().chain([end]) {
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
