//! Live status: every checkpoint's last check, whether it is overdue against its schedule,
//! its open issues and today's tallies, rolled up by site, grid and community.

use std::collections::{BTreeMap, HashMap};

use events_schema::{CheckResult, EntityId, Event, RecordedEvent, Severity, Timestamp, TrafficTallyRecorded};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{IssueBoard, Registry};

/// Checks kept per checkpoint, newest last: enough to fall back on when recent ones are
/// retracted, without keeping every check ever made.
const RECENT_CHECKS_MAX: usize = 32;
/// Local days of tallies kept: the status shows today's, and yesterday's may still be
/// corrected or arrive late. Older ones belong to reports, which read the log.
const TALLY_DAYS_KEPT: i64 = 2;

/// One patrol check as the status shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub event_id: Uuid,
    pub checked_at: Timestamp,
    pub staff_id: EntityId,
    pub result: CheckResult,
}

/// Passage-logbook counts added up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyTotals {
    pub people_screened: u64,
    pub vehicles: u64,
    pub fever_flags: u64,
    pub refused_scans: u64,
    pub temporary_passes_issued: u64,
}

impl TallyTotals {
    fn of(tally: &TrafficTallyRecorded) -> TallyTotals {
        TallyTotals {
            people_screened: u64::from(tally.people_screened),
            vehicles: u64::from(tally.vehicles),
            fever_flags: u64::from(tally.fever_flags),
            refused_scans: u64::from(tally.refused_scans),
            temporary_passes_issued: u64::from(tally.temporary_passes_issued),
        }
    }

    fn add(&mut self, other: TallyTotals) {
        self.people_screened = self.people_screened.saturating_add(other.people_screened);
        self.vehicles = self.vehicles.saturating_add(other.vehicles);
        self.fever_flags = self.fever_flags.saturating_add(other.fever_flags);
        self.refused_scans = self.refused_scans.saturating_add(other.refused_scans);
        self.temporary_passes_issued = self.temporary_passes_issued.saturating_add(other.temporary_passes_issued);
    }

    fn subtract(&mut self, other: TallyTotals) {
        self.people_screened = self.people_screened.saturating_sub(other.people_screened);
        self.vehicles = self.vehicles.saturating_sub(other.vehicles);
        self.fever_flags = self.fever_flags.saturating_sub(other.fever_flags);
        self.refused_scans = self.refused_scans.saturating_sub(other.refused_scans);
        self.temporary_passes_issued = self.temporary_passes_issued.saturating_sub(other.temporary_passes_issued);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Schedule {
    interval_minutes: u32,
    active_from: Time,
    active_until: Time,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    open: bool,
    schedule: Option<Schedule>,
    recent_checks: Vec<CheckRecord>,
    tallies_by_day: BTreeMap<Date, TallyTotals>,
}

impl Default for Checkpoint {
    fn default() -> Checkpoint {
        Checkpoint { open: true, schedule: None, recent_checks: Vec::new(), tallies_by_day: BTreeMap::new() }
    }
}

/// The per-checkpoint facts behind the status view.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointBoard {
    time_zone: TimeZone,
    state: BoardState,
}

/// What a [`CheckpointBoard`] knows, apart from its time zone: what a snapshot keeps.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct BoardState {
    checkpoints: BTreeMap<EntityId, Checkpoint>,
    /// Tallies by event id, so that a correction or retraction can take its counts back.
    tallies: HashMap<Uuid, (EntityId, Date, TallyTotals)>,
    /// The latest local day a tally was seen for.
    latest_tally_day: Option<Date>,
}

impl CheckpointBoard {
    /// Local days are counted in `time_zone`.
    pub fn new(time_zone: TimeZone) -> CheckpointBoard {
        CheckpointBoard { time_zone, state: BoardState::default() }
    }

    /// A board that knows `state` (from a snapshot), counting local days in `time_zone`.
    pub fn restore(time_zone: TimeZone, state: BoardState) -> CheckpointBoard {
        CheckpointBoard { time_zone, state }
    }

    /// What the board knows, for a snapshot.
    pub fn state(&self) -> &BoardState {
        &self.state
    }

    /// Whether `checkpoint_id` is open, and its schedule (interval in minutes, active from,
    /// active until), as far as the board knows: open and unscheduled when it knows nothing.
    pub fn rules_of(&self, checkpoint_id: &EntityId) -> (bool, Option<(u32, Time, Time)>) {
        match self.state.checkpoints.get(checkpoint_id) {
            Some(checkpoint) => {
                (checkpoint.open, checkpoint.schedule.map(|s| (s.interval_minutes, s.active_from, s.active_until)))
            }
            None => (true, None),
        }
    }

    fn local_day(&self, at: Timestamp) -> Date {
        at.as_jiff().to_zoned_datetime(self.time_zone.clone()).date()
    }

    pub fn apply(&mut self, recorded: &RecordedEvent) {
        match &recorded.event {
            Event::CheckpointRegistered(e) => {
                self.state.checkpoints.entry(e.checkpoint_id.clone()).or_default();
            }
            Event::CheckpointClosed(e) => {
                self.state.checkpoints.entry(e.checkpoint_id.clone()).or_default().open = false
            }
            Event::CheckpointReopened(e) => {
                self.state.checkpoints.entry(e.checkpoint_id.clone()).or_default().open = true
            }
            Event::CheckpointScheduleSet(e) => {
                self.state.checkpoints.entry(e.checkpoint_id.clone()).or_default().schedule = Some(Schedule {
                    interval_minutes: e.check_interval_minutes,
                    active_from: e.active_from,
                    active_until: e.active_until,
                });
            }
            Event::PatrolCheckRecorded(e) => {
                let check = CheckRecord {
                    event_id: recorded.event_id,
                    checked_at: recorded.occurred_at,
                    staff_id: e.staff_id.clone(),
                    result: e.result,
                };
                self.add_check(&e.checkpoint_id, check);
            }
            Event::TrafficTallyRecorded(e) => self.add_tally(recorded.event_id, e),
            Event::EventCorrected(correction) => {
                let target = correction.corrected_event_id;
                match correction.replacement.as_ref() {
                    Event::PatrolCheckRecorded(e) => {
                        // The corrected check keeps the time the original was made; one no
                        // longer among the recent checks stays out of them.
                        let mut original_time = None;
                        for checkpoint in self.state.checkpoints.values_mut() {
                            if let Some(original) =
                                checkpoint.recent_checks.iter().find(|check| check.event_id == target)
                            {
                                original_time = Some(original.checked_at);
                            }
                            checkpoint.recent_checks.retain(|check| check.event_id != target);
                        }
                        let Some(checked_at) = original_time else { return };
                        self.add_check(
                            &e.checkpoint_id,
                            CheckRecord {
                                event_id: target,
                                checked_at,
                                staff_id: e.staff_id.clone(),
                                result: e.result,
                            },
                        );
                    }
                    Event::TrafficTallyRecorded(e) => {
                        self.remove_tally(target);
                        self.add_tally(target, e);
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
            Event::EventRetracted(retraction) => {
                let target = retraction.retracted_event_id;
                for checkpoint in self.state.checkpoints.values_mut() {
                    checkpoint.recent_checks.retain(|check| check.event_id != target);
                }
                self.remove_tally(target);
            }
            Event::CommunityRegistered(_)
            | Event::GridRegistered(_)
            | Event::SiteRegistered(_)
            | Event::StaffRegistered(_)
            | Event::TeamFormed(_)
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

    fn add_check(&mut self, checkpoint_id: &EntityId, check: CheckRecord) {
        let checks = &mut self.state.checkpoints.entry(checkpoint_id.clone()).or_default().recent_checks;
        // Late arrivals go where their time puts them.
        let at = checks.partition_point(|other| other.checked_at <= check.checked_at);
        checks.insert(at, check);
        if checks.len() > RECENT_CHECKS_MAX {
            checks.remove(0);
        }
    }

    fn add_tally(&mut self, event_id: Uuid, tally: &TrafficTallyRecorded) {
        let day = self.local_day(tally.period_start);
        if self.state.latest_tally_day.is_none_or(|latest| day > latest) {
            self.state.latest_tally_day = Some(day);
            // Keep memory bounded by days kept, not by the tallies ever made.
            if let Ok(oldest) = day.checked_sub(jiff::Span::new().days(TALLY_DAYS_KEPT - 1)) {
                self.state.tallies.retain(|_, (_, tally_day, _)| *tally_day >= oldest);
                for checkpoint in self.state.checkpoints.values_mut() {
                    checkpoint.tallies_by_day.retain(|tally_day, _| *tally_day >= oldest);
                }
            }
        }
        let totals = TallyTotals::of(tally);
        self.state
            .checkpoints
            .entry(tally.checkpoint_id.clone())
            .or_default()
            .tallies_by_day
            .entry(day)
            .or_default()
            .add(totals);
        self.state.tallies.insert(event_id, (tally.checkpoint_id.clone(), day, totals));
    }

    fn remove_tally(&mut self, event_id: Uuid) {
        if let Some((checkpoint_id, day, totals)) = self.state.tallies.remove(&event_id) {
            if let Some(sum) =
                self.state.checkpoints.get_mut(&checkpoint_id).and_then(|c| c.tallies_by_day.get_mut(&day))
            {
                sum.subtract(totals);
            }
        }
    }
}

/// One checkpoint's status at a moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckpointStatus {
    pub checkpoint_id: EntityId,
    pub name: String,
    pub site_id: Option<EntityId>,
    pub open: bool,
    pub last_check: Option<CheckRecord>,
    pub overdue: bool,
    /// When the next check is due (overdue after it): within the schedule's active hours of
    /// an open checkpoint; `None` outside them, without a schedule, or closed.
    pub due_at: Option<Timestamp>,
    pub open_issues: u32,
    pub worst_open_severity: Option<Severity>,
    pub oldest_open_issue_minutes: Option<i64>,
    pub tallies_today: TallyTotals,
}

/// The same figures added up over a site, a grid or a community.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rollup {
    pub id: EntityId,
    pub name: String,
    pub checkpoints: u32,
    pub closed: u32,
    pub overdue: u32,
    pub open_issues: u32,
    pub worst_open_severity: Option<Severity>,
    pub oldest_open_issue_minutes: Option<i64>,
    pub tallies_today: TallyTotals,
}

impl Rollup {
    fn add(&mut self, status: &CheckpointStatus) {
        self.checkpoints = self.checkpoints.saturating_add(1);
        self.closed = self.closed.saturating_add(u32::from(!status.open));
        self.overdue = self.overdue.saturating_add(u32::from(status.overdue));
        self.open_issues = self.open_issues.saturating_add(status.open_issues);
        self.worst_open_severity = self.worst_open_severity.max(status.worst_open_severity);
        self.oldest_open_issue_minutes = self.oldest_open_issue_minutes.max(status.oldest_open_issue_minutes);
        self.tallies_today.add(status.tallies_today);
    }
}

/// The status board at a moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusReport {
    pub as_of: Timestamp,
    pub checkpoints: Vec<CheckpointStatus>,
    pub sites: Vec<Rollup>,
    pub grids: Vec<Rollup>,
    pub communities: Vec<Rollup>,
}

/// When a checkpoint with `schedule`, last checked at `last_check`, is due again as seen at
/// `now` (overdue once `now` is past it): its interval after the later of its last check and
/// the start of the current active window; `None` outside the active hours.
fn due_at(
    schedule: Schedule,
    last_check: Option<Timestamp>,
    local: jiff::civil::DateTime,
    time_zone: &TimeZone,
) -> Option<Timestamp> {
    let (today, time) = (local.date(), local.time());
    let Schedule { interval_minutes, active_from, active_until } = schedule;
    let window_day = if active_from < active_until {
        if time < active_from || time >= active_until {
            return None;
        }
        today
    } else if time >= active_from {
        today
    } else if time < active_until {
        today.yesterday().unwrap_or(today)
    } else {
        return None;
    };
    let window_start = window_day.to_datetime(active_from).to_zoned_datetime(time_zone.clone()).ok()?;
    let window_start = window_start.timestamp().as_microsecond();
    let due_since = last_check.map_or(window_start, |at| at.as_microsecond().max(window_start));
    Timestamp::from_microsecond(due_since.saturating_add(i64::from(interval_minutes) * 60_000_000))
}

/// The status of one checkpoint at `now`, or `None` when it is not registered.
pub fn checkpoint_status(
    registry: &Registry,
    board: &CheckpointBoard,
    issues: &IssueBoard,
    checkpoint_id: &EntityId,
    now: Timestamp,
) -> Option<CheckpointStatus> {
    let info = registry.checkpoints.get(checkpoint_id)?;
    let facts = board.state.checkpoints.get(checkpoint_id);
    let open = facts.is_none_or(|facts| facts.open);
    let last_check =
        facts.and_then(|facts| facts.recent_checks.iter().rev().find(|check| check.checked_at <= now)).cloned();
    let open_issues: Vec<_> = issues.open_issues_at(checkpoint_id).collect();
    // The moment in local time, once: the day for the tallies, the time for the schedule.
    let local = now.as_jiff().to_zoned_datetime(board.time_zone.clone()).datetime();
    let today = local.date();
    let due_at = facts.and_then(|facts| facts.schedule).filter(|_| open).and_then(|schedule| {
        due_at(schedule, last_check.as_ref().map(|check| check.checked_at), local, &board.time_zone)
    });
    Some(CheckpointStatus {
        checkpoint_id: checkpoint_id.clone(),
        name: info.name.clone(),
        site_id: Some(info.site_id.clone()),
        open,
        overdue: due_at.is_some_and(|due_at| now > due_at),
        due_at,
        last_check,
        open_issues: open_issues.len() as u32,
        worst_open_severity: open_issues.iter().map(|issue| issue.severity).max(),
        oldest_open_issue_minutes: open_issues.iter().map(|issue| issue.age_micros(now) / 60_000_000).max(),
        tallies_today: facts.and_then(|facts| facts.tallies_by_day.get(&today)).copied().unwrap_or_default(),
    })
}

/// The status of every checkpoint (of `site`, when given) at `now`, with roll-ups.
pub fn status_at(
    registry: &Registry,
    board: &CheckpointBoard,
    issues: &IssueBoard,
    now: Timestamp,
    site: Option<&EntityId>,
) -> StatusReport {
    let checkpoints: Vec<CheckpointStatus> = registry
        .checkpoints
        .iter()
        .filter(|(_, info)| site.is_none_or(|site| *site == info.site_id))
        .filter_map(|(checkpoint_id, _)| checkpoint_status(registry, board, issues, checkpoint_id, now))
        .collect();
    let mut sites: BTreeMap<EntityId, Rollup> = BTreeMap::new();
    let mut grids: BTreeMap<EntityId, Rollup> = BTreeMap::new();
    let mut communities: BTreeMap<EntityId, Rollup> = BTreeMap::new();
    for status in &checkpoints {
        let (site_id, grid_id, community_id) = registry.place_of(&status.checkpoint_id);
        let levels = [
            (&mut sites, site_id, site_id.and_then(|id| registry.sites.get(id)).map(|s| s.name.clone())),
            (&mut grids, grid_id, grid_id.and_then(|id| registry.grids.get(id)).map(|g| g.name.clone())),
            (
                &mut communities,
                community_id,
                community_id.and_then(|id| registry.communities.get(id)).map(|c| c.name.clone()),
            ),
        ];
        for (rollups, id, name) in levels {
            if let Some(id) = id {
                rollups
                    .entry(id.clone())
                    .or_insert_with(|| Rollup {
                        id: id.clone(),
                        name: name.unwrap_or_default(),
                        checkpoints: 0,
                        closed: 0,
                        overdue: 0,
                        open_issues: 0,
                        worst_open_severity: None,
                        oldest_open_issue_minutes: None,
                        tallies_today: TallyTotals::default(),
                    })
                    .add(status);
            }
        }
    }
    StatusReport {
        as_of: now,
        checkpoints,
        sites: sites.into_values().collect(),
        grids: grids.into_values().collect(),
        communities: communities.into_values().collect(),
    }
}
