//! `IssueBoard`: every gate issue with its state, assignee, age, time to first action and
//! to resolution, escalations, verification and reopenings.
//!
//! Each issue keeps its own short history of steps (an issue has a handful of events), and
//! every figure is derived from the steps still standing, so a corrected or retracted step
//! changes exactly what it should.

use std::collections::{BTreeMap, BTreeSet};

use events_schema::{EntityId, EscalationTarget, Event, IssueCategory, RecordedEvent, Severity, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where an issue stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueState {
    Raised,
    Acknowledged,
    Assigned,
    InProgress,
    Escalated,
    Resolved,
    Verified,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Step {
    Raised {
        checkpoint_id: EntityId,
        raised_by: EntityId,
        category: IssueCategory,
        severity: Severity,
        summary: String,
    },
    Acknowledged,
    Assigned {
        assignee_id: EntityId,
    },
    Action {
        action: String,
    },
    Escalated {
        to: EscalationTarget,
    },
    Resolved {
        resolution: String,
    },
    Verified,
    Reopened,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    event_id: Uuid,
    occurred_at: Timestamp,
    step: Step,
    retracted: bool,
}

/// One issue as the board shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IssueRecord {
    pub issue_id: EntityId,
    pub checkpoint_id: EntityId,
    pub category: IssueCategory,
    pub severity: Severity,
    pub summary: String,
    pub raised_by: EntityId,
    pub raised_at: Timestamp,
    pub state: IssueState,
    pub assignee_id: Option<EntityId>,
    pub first_action_at: Option<Timestamp>,
    pub actions: Vec<String>,
    pub escalated_to: Vec<EscalationTarget>,
    pub resolved_at: Option<Timestamp>,
    pub resolution: Option<String>,
    pub verified_at: Option<Timestamp>,
    pub reopened: u32,
}

impl IssueRecord {
    /// Open means not resolved (a verified issue is resolved too).
    pub fn is_open(&self) -> bool {
        !matches!(self.state, IssueState::Resolved | IssueState::Verified)
    }

    /// Microseconds from raising to the first action, if any.
    pub fn time_to_first_action_micros(&self) -> Option<i64> {
        self.first_action_at.map(|at| at.as_microsecond() - self.raised_at.as_microsecond())
    }

    /// Microseconds from raising to the (last) resolution, if resolved.
    pub fn time_to_resolution_micros(&self) -> Option<i64> {
        if self.is_open() {
            return None;
        }
        self.resolved_at.map(|at| at.as_microsecond() - self.raised_at.as_microsecond())
    }

    /// Microseconds since the issue was raised, at `now`.
    pub fn age_micros(&self, now: Timestamp) -> i64 {
        now.as_microsecond() - self.raised_at.as_microsecond()
    }
}

/// Every issue, by id. A snapshot keeps the histories; the derived records are rebuilt by
/// [`IssueBoard::restored`].
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct IssueBoard {
    histories: BTreeMap<EntityId, Vec<Entry>>,
    /// Which issue an event id belongs to, for corrections and retractions.
    owners: BTreeMap<Uuid, EntityId>,
    /// The issues raised at each checkpoint, so that one checkpoint's issues are found
    /// without looking at every issue.
    by_checkpoint: BTreeMap<EntityId, BTreeSet<EntityId>>,
    /// Every standing issue as derived from its history, refreshed when that history changes.
    #[serde(skip)]
    records: BTreeMap<EntityId, IssueRecord>,
    /// The open issues of each checkpoint, kept with `records`: the status of a checkpoint
    /// looks at these only, not at every issue ever raised there.
    #[serde(skip)]
    open_by_checkpoint: BTreeMap<EntityId, BTreeSet<EntityId>>,
}

fn step_of(event: &Event) -> Option<(&EntityId, Step)> {
    Some(match event {
        Event::GateIssueRaised(e) => (
            &e.issue_id,
            Step::Raised {
                checkpoint_id: e.checkpoint_id.clone(),
                raised_by: e.raised_by.clone(),
                category: e.category,
                severity: e.severity,
                summary: e.summary.clone(),
            },
        ),
        Event::GateIssueAcknowledged(e) => (&e.issue_id, Step::Acknowledged),
        Event::GateIssueAssigned(e) => (&e.issue_id, Step::Assigned { assignee_id: e.assignee_id.clone() }),
        Event::GateIssueActionTaken(e) => (&e.issue_id, Step::Action { action: e.action.clone() }),
        Event::GateIssueEscalated(e) => (&e.issue_id, Step::Escalated { to: e.escalated_to }),
        Event::GateIssueResolved(e) => (&e.issue_id, Step::Resolved { resolution: e.resolution.clone() }),
        Event::GateIssueResolutionVerified(e) => (&e.issue_id, Step::Verified),
        Event::GateIssueReopened(e) => (&e.issue_id, Step::Reopened),
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
        | Event::QuarantineReleaseNoticeDelivered(_)
        | Event::SuppliesDelivered(_)
        | Event::DirectiveReceived(_)
        | Event::LedgerTaskAssigned(_)
        | Event::LedgerTaskCompleted(_)
        | Event::FieldNoteRecorded(_)
        | Event::EventCorrected(_)
        | Event::EventRetracted(_)
        | Event::DaySealed(_) => return None,
    })
}

impl IssueBoard {
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        match &recorded.event {
            Event::EventCorrected(correction) => {
                let Some(issue_id) = self.owners.get(&correction.corrected_event_id) else { return };
                let Some((_, step)) = step_of(&correction.replacement) else { return };
                if let Step::Raised { checkpoint_id, .. } = &step {
                    for issues in self.by_checkpoint.values_mut() {
                        issues.remove(issue_id);
                    }
                    self.by_checkpoint.entry(checkpoint_id.clone()).or_default().insert(issue_id.clone());
                }
                if let Some(entry) = self
                    .histories
                    .get_mut(issue_id)
                    .and_then(|history| history.iter_mut().find(|e| e.event_id == correction.corrected_event_id))
                {
                    entry.step = step;
                }
                let issue_id = issue_id.clone();
                self.refresh(&issue_id);
            }
            Event::EventRetracted(retraction) => {
                let Some(issue_id) = self.owners.get(&retraction.retracted_event_id) else { return };
                if let Some(entry) = self
                    .histories
                    .get_mut(issue_id)
                    .and_then(|history| history.iter_mut().find(|e| e.event_id == retraction.retracted_event_id))
                {
                    entry.retracted = true;
                }
                let issue_id = issue_id.clone();
                self.refresh(&issue_id);
            }
            event => {
                if let Some((issue_id, step)) = step_of(event) {
                    if let Step::Raised { checkpoint_id, .. } = &step {
                        self.by_checkpoint.entry(checkpoint_id.clone()).or_default().insert(issue_id.clone());
                    }
                    self.owners.insert(recorded.event_id, issue_id.clone());
                    self.histories.entry(issue_id.clone()).or_default().push(Entry {
                        event_id: recorded.event_id,
                        occurred_at: recorded.occurred_at,
                        step,
                        retracted: false,
                    });
                    let issue_id = issue_id.clone();
                    self.refresh(&issue_id);
                }
            }
        }
    }

    /// The board after deserialising: the derived records rebuilt from the histories.
    pub fn restored(mut self) -> IssueBoard {
        let issue_ids: Vec<EntityId> = self.histories.keys().cloned().collect();
        for issue_id in issue_ids {
            self.refresh(&issue_id);
        }
        self
    }

    fn refresh(&mut self, issue_id: &EntityId) {
        if let Some(old) = self.records.remove(issue_id) {
            if let Some(open) = self.open_by_checkpoint.get_mut(&old.checkpoint_id) {
                open.remove(issue_id);
                // No empty sets: the board is the same however it was built.
                if open.is_empty() {
                    self.open_by_checkpoint.remove(&old.checkpoint_id);
                }
            }
        }
        if let Some(record) = self.histories.get(issue_id).and_then(|history| derive(issue_id, history)) {
            if record.is_open() {
                self.open_by_checkpoint.entry(record.checkpoint_id.clone()).or_default().insert(issue_id.clone());
            }
            self.records.insert(issue_id.clone(), record);
        }
    }

    /// One issue, or `None` when unknown (or its raising was retracted).
    pub fn issue(&self, issue_id: &EntityId) -> Option<IssueRecord> {
        self.records.get(issue_id).cloned()
    }

    /// The issues raised at `checkpoint_id`, ordered by id.
    pub fn issues_at<'a>(&'a self, checkpoint_id: &EntityId) -> impl Iterator<Item = &'a IssueRecord> + 'a {
        let issues = self.by_checkpoint.get(checkpoint_id);
        issues.into_iter().flatten().filter_map(|issue_id| self.records.get(issue_id))
    }

    /// The open issues of `checkpoint_id`, ordered by id.
    pub fn open_issues_at<'a>(&'a self, checkpoint_id: &EntityId) -> impl Iterator<Item = &'a IssueRecord> + 'a {
        let open = self.open_by_checkpoint.get(checkpoint_id);
        open.into_iter().flatten().filter_map(|issue_id| self.records.get(issue_id))
    }

    /// Every issue, ordered by id.
    pub fn issues(&self) -> impl Iterator<Item = IssueRecord> + '_ {
        self.records.values().cloned()
    }
}

fn derive(issue_id: &EntityId, history: &[Entry]) -> Option<IssueRecord> {
    let mut standing = history.iter().filter(|entry| !entry.retracted);
    let raised = standing.find(|entry| matches!(entry.step, Step::Raised { .. }))?;
    let Step::Raised { checkpoint_id, raised_by, category, severity, summary } = &raised.step else { return None };
    let mut record = IssueRecord {
        issue_id: issue_id.clone(),
        checkpoint_id: checkpoint_id.clone(),
        category: *category,
        severity: *severity,
        summary: summary.clone(),
        raised_by: raised_by.clone(),
        raised_at: raised.occurred_at,
        state: IssueState::Raised,
        assignee_id: None,
        first_action_at: None,
        actions: Vec::new(),
        escalated_to: Vec::new(),
        resolved_at: None,
        resolution: None,
        verified_at: None,
        reopened: 0,
    };
    for entry in history.iter().filter(|entry| !entry.retracted) {
        let at = entry.occurred_at;
        match &entry.step {
            Step::Raised { .. } => {}
            Step::Acknowledged => {
                if record.state == IssueState::Raised {
                    record.state = IssueState::Acknowledged;
                }
            }
            Step::Assigned { assignee_id } => {
                record.assignee_id = Some(assignee_id.clone());
                if matches!(record.state, IssueState::Raised | IssueState::Acknowledged) {
                    record.state = IssueState::Assigned;
                }
            }
            Step::Action { action } => {
                // The earliest action, whatever order the actions reached the log in.
                record.first_action_at = Some(record.first_action_at.map_or(at, |first| first.min(at)));
                record.actions.push(action.clone());
                if record.state != IssueState::Escalated {
                    record.state = IssueState::InProgress;
                }
            }
            Step::Escalated { to } => {
                record.escalated_to.push(*to);
                record.state = IssueState::Escalated;
            }
            Step::Resolved { resolution } => {
                record.state = IssueState::Resolved;
                record.resolved_at = Some(at);
                record.resolution = Some(resolution.clone());
            }
            Step::Verified => {
                record.state = IssueState::Verified;
                record.verified_at = Some(at);
            }
            Step::Reopened => {
                record.state = IssueState::InProgress;
                record.verified_at = None;
                record.reopened = record.reopened.saturating_add(1);
            }
        }
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    // Test code: an unwrap that fails is a failed test.
    #![allow(clippy::unwrap_used)]

    use events_schema::samples::{event_id, recorded_event};
    use events_schema::*;

    use super::IssueBoard;

    fn id(text: &str) -> EntityId {
        EntityId::new(text).unwrap()
    }

    /// The open issues of every checkpoint, as the board keeps them and as found by looking
    /// at every issue raised there.
    fn both_ways(board: &IssueBoard, checkpoints: &[&str]) -> (Vec<Vec<EntityId>>, Vec<Vec<EntityId>>) {
        let kept =
            checkpoints.iter().map(|c| board.open_issues_at(&id(c)).map(|i| i.issue_id.clone()).collect()).collect();
        let found = checkpoints
            .iter()
            .map(|c| board.issues_at(&id(c)).filter(|i| i.is_open()).map(|i| i.issue_id.clone()).collect())
            .collect();
        (kept, found)
    }

    #[test]
    fn the_open_issues_kept_per_checkpoint_are_those_found_among_all() {
        let raised = |issue: &str, gate: &str| -> Event {
            GateIssueRaised {
                issue_id: id(issue),
                checkpoint_id: id(gate),
                raised_by: id("staff-1"),
                category: IssueCategory::CourierCongestion,
                severity: Severity::High,
                summary: "tricycles".into(),
                details: None,
            }
            .into()
        };
        let events: Vec<Event> = vec![
            raised("i-1", "gate-a"),
            raised("i-2", "gate-a"),
            raised("i-3", "gate-b"),
            GateIssueResolved { issue_id: id("i-1"), resolved_by: id("staff-1"), resolution: "moved".into() }.into(),
            GateIssueReopened { issue_id: id("i-1"), reopened_by: id("staff-1"), reason: "back".into() }.into(),
            // The second issue was raised at the other gate in fact.
            EventCorrected {
                corrected_event_id: event_id(2),
                corrected_by: id("staff-1"),
                reason: "wrong gate".into(),
                replacement: Box::new(raised("i-2", "gate-b")),
            }
            .into(),
            EventRetracted { retracted_event_id: event_id(3), retracted_by: id("staff-1"), reason: "twice".into() }
                .into(),
            GateIssueResolved { issue_id: id("i-2"), resolved_by: id("staff-1"), resolution: "moved".into() }.into(),
        ];
        let at: Timestamp = "2020-02-20T10:00:00+08:00".parse().unwrap();
        let mut board = IssueBoard::default();
        for (index, event) in events.into_iter().enumerate() {
            board.apply(&recorded_event(index as u64 + 1, id("s"), at, at, event));
            let (kept, found) = both_ways(&board, &["gate-a", "gate-b"]);
            assert_eq!(kept, found, "after event {}", index + 1);
        }
        let (kept, _) = both_ways(&board, &["gate-a", "gate-b"]);
        assert_eq!(kept, [vec![id("i-1")], vec![]]);
        assert_eq!(board.clone().restored(), board, "the same board when rebuilt from its histories");
    }
}
