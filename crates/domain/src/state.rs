//! `State`: what the rules need to know about the world, folded from the log.
//!
//! It holds the entities (by id), the lifecycle position of each issue, round and ledger
//! task, and the ids of retracted events. It grows with the number of entities (and of
//! retractions), not of events: what a correction needs to know about its target is looked
//! up in the log by the service and passed in the `Context`.

use std::collections::{HashMap, HashSet};

use events_schema::{EntityId, Event, RecordedEvent};
use uuid::Uuid;

/// Where a gate issue stands, as far as the rules care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IssueStatus {
    Open,
    Resolved,
    Verified,
}

#[derive(Clone, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Round {
    pub(crate) checklist: HashSet<EntityId>,
    pub(crate) ticked: HashSet<EntityId>,
    pub(crate) completed: bool,
}

/// The decision state.
#[derive(Clone, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub(crate) communities: HashSet<EntityId>,
    pub(crate) grids: HashSet<EntityId>,
    pub(crate) sites: HashSet<EntityId>,
    /// Checkpoint -> open.
    pub(crate) checkpoints: HashMap<EntityId, bool>,
    pub(crate) staff: HashSet<EntityId>,
    pub(crate) teams: HashSet<EntityId>,
    pub(crate) issues: HashMap<EntityId, IssueStatus>,
    pub(crate) rounds: HashMap<EntityId, Round>,
    pub(crate) inspections: HashSet<EntityId>,
    pub(crate) directives: HashSet<EntityId>,
    /// Ledger task -> completed.
    pub(crate) ledger_tasks: HashMap<EntityId, bool>,
    pub(crate) retracted: HashSet<Uuid>,
    /// The event that raised each issue, so that retracting it withdraws the issue.
    pub(crate) raised_by_event: HashMap<Uuid, EntityId>,
    /// The last global position applied.
    pub global_position: u64,
}

impl State {
    /// Folds one recorded event in. Events must come in log order.
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        assert!(recorded.global_position > self.global_position, "events are applied in log order");
        self.global_position = recorded.global_position;
        if let Event::GateIssueRaised(e) = &recorded.event {
            self.raised_by_event.insert(recorded.event_id, e.issue_id.clone());
        }
        self.apply_event(&recorded.event);
    }

    fn apply_event(&mut self, event: &Event) {
        match event {
            Event::CommunityRegistered(e) => {
                self.communities.insert(e.community_id.clone());
            }
            Event::GridRegistered(e) => {
                self.grids.insert(e.grid_id.clone());
            }
            Event::SiteRegistered(e) => {
                self.sites.insert(e.site_id.clone());
            }
            Event::CheckpointRegistered(e) => {
                // `or_insert`: a corrected registration does not reopen a closed checkpoint.
                self.checkpoints.entry(e.checkpoint_id.clone()).or_insert(true);
            }
            Event::CheckpointClosed(e) => {
                self.checkpoints.insert(e.checkpoint_id.clone(), false);
            }
            Event::CheckpointReopened(e) => {
                self.checkpoints.insert(e.checkpoint_id.clone(), true);
            }
            Event::StaffRegistered(e) => {
                self.staff.insert(e.staff_id.clone());
            }
            Event::TeamFormed(e) => {
                self.teams.insert(e.team_id.clone());
            }
            Event::InspectionRecorded(e) => {
                self.inspections.insert(e.inspection_id.clone());
            }
            Event::PatrolRoundStarted(e) => {
                let checklist = e.checklist.iter().map(|item| item.item_id.clone()).collect();
                self.rounds.insert(e.round_id.clone(), Round { checklist, ..Round::default() });
            }
            Event::PatrolRoundItemTicked(e) => {
                if let Some(round) = self.rounds.get_mut(&e.round_id) {
                    round.ticked.insert(e.item_id.clone());
                }
            }
            Event::PatrolRoundCompleted(e) => {
                if let Some(round) = self.rounds.get_mut(&e.round_id) {
                    round.completed = true;
                }
            }
            Event::GateIssueRaised(e) => {
                self.issues.insert(e.issue_id.clone(), IssueStatus::Open);
            }
            Event::GateIssueResolved(e) => {
                self.issues.insert(e.issue_id.clone(), IssueStatus::Resolved);
            }
            Event::GateIssueResolutionVerified(e) => {
                self.issues.insert(e.issue_id.clone(), IssueStatus::Verified);
            }
            Event::GateIssueReopened(e) => {
                self.issues.insert(e.issue_id.clone(), IssueStatus::Open);
            }
            Event::DirectiveReceived(e) => {
                self.directives.insert(e.directive_id.clone());
            }
            Event::LedgerTaskAssigned(e) => {
                self.ledger_tasks.insert(e.task_id.clone(), false);
            }
            Event::LedgerTaskCompleted(e) => {
                self.ledger_tasks.insert(e.task_id.clone(), true);
            }
            Event::EventRetracted(e) => {
                self.retracted.insert(e.retracted_event_id);
                // An issue raised by mistake is withdrawn (its id may be raised again).
                if let Some(issue_id) = self.raised_by_event.remove(&e.retracted_event_id) {
                    self.issues.remove(&issue_id);
                }
            }
            // A corrected registration registers what it should have said (an id typed
            // wrongly becomes known under the right one); what corrections change beyond
            // that is for the views (projections) to show.
            Event::EventCorrected(e) => {
                if e.replacement.facts().creates().is_some_and(|created| created.kind.is_place_or_person()) {
                    self.apply_event(&e.replacement);
                }
            }
            Event::GateIssueAcknowledged(_)
            | Event::GateIssueAssigned(_)
            | Event::GateIssueActionTaken(_)
            | Event::GateIssueEscalated(_)
            | Event::CheckpointScheduleSet(_)
            | Event::PatrolCheckRecorded(_)
            | Event::TrafficTallyRecorded(_)
            | Event::QuarantineReleaseNoticeDelivered(_)
            | Event::SuppliesDelivered(_)
            | Event::FieldNoteRecorded(_)
            | Event::DaySealed(_) => {}
        }
    }

    /// Where issue `issue_id` stands, if it exists.
    pub fn issue_status(&self, issue_id: &EntityId) -> Option<IssueStatus> {
        self.issues.get(issue_id).copied()
    }
}
