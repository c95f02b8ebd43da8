//! `decide`: the rules. Each command either becomes its event or is refused with the reason.

use events_schema::{EntityId, Event, OCCURRED_AT_SKEW_MICROS_MAX};

use crate::state::IssueStatus;
use crate::{Command, Context, State, TargetEvent};

/// Why a command was refused. Nothing is recorded for a refused command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("unknown {kind} {id}")]
    Unknown { kind: &'static str, id: String },
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("checkpoint {0} is closed")]
    CheckpointClosed(EntityId),
    #[error("checkpoint {0} is already open")]
    CheckpointOpen(EntityId),
    #[error("issue {0} is resolved: reopen it first")]
    IssueResolved(EntityId),
    #[error("issue {0} is not resolved")]
    IssueNotResolved(EntityId),
    #[error("issue {0}'s resolution is already verified")]
    IssueVerified(EntityId),
    #[error("round {0} is completed")]
    RoundCompleted(EntityId),
    #[error("round {round_id} has no checklist item {item_id}")]
    UnknownChecklistItem { round_id: EntityId, item_id: EntityId },
    #[error("item {item_id} of round {round_id} is already ticked")]
    ItemAlreadyTicked { round_id: EntityId, item_id: EntityId },
    #[error("ledger task {0} is already completed")]
    TaskCompleted(EntityId),
    #[error("event {0} was retracted")]
    EventRetracted(uuid::Uuid),
    #[error("a {target} cannot be replaced by a {replacement}")]
    ReplacementTypeMismatch { target: &'static str, replacement: &'static str },
    #[error("a {0} cannot be corrected or retracted")]
    NotCorrectable(&'static str),
    #[error("occurred_at {occurred_at} is in the future (now {now})")]
    InTheFuture { occurred_at: events_schema::Timestamp, now: events_schema::Timestamp },
    #[error("{0}")]
    Invalid(String),
}

fn unknown(kind: &'static str, id: impl ToString) -> DomainError {
    DomainError::Unknown { kind, id: id.to_string() }
}

fn exists(kind: &'static str, id: impl ToString) -> DomainError {
    DomainError::AlreadyExists { kind, id: id.to_string() }
}

fn require(known: bool, kind: &'static str, id: &EntityId) -> Result<(), DomainError> {
    if known { Ok(()) } else { Err(unknown(kind, id)) }
}

fn require_new(known: bool, kind: &'static str, id: &EntityId) -> Result<(), DomainError> {
    if known { Err(exists(kind, id)) } else { Ok(()) }
}

fn require_text(text: &str, what: &str) -> Result<(), DomainError> {
    if text.trim().is_empty() { Err(DomainError::Invalid(format!("{what} is empty"))) } else { Ok(()) }
}

impl State {
    fn staff_known(&self, staff_id: &EntityId) -> Result<(), DomainError> {
        require(self.staff.contains(staff_id), "staff member", staff_id)
    }

    fn open_checkpoint(&self, checkpoint_id: &EntityId) -> Result<(), DomainError> {
        match self.checkpoints.get(checkpoint_id) {
            None => Err(unknown("checkpoint", checkpoint_id)),
            Some(false) => Err(DomainError::CheckpointClosed(checkpoint_id.clone())),
            Some(true) => Ok(()),
        }
    }

    fn issue(&self, issue_id: &EntityId) -> Result<IssueStatus, DomainError> {
        self.issues.get(issue_id).copied().ok_or_else(|| unknown("issue", issue_id))
    }

    /// For acknowledge, assign, act and escalate: the issue exists and is not resolved.
    fn unresolved_issue(&self, issue_id: &EntityId) -> Result<(), DomainError> {
        match self.issue(issue_id)? {
            IssueStatus::Open => Ok(()),
            IssueStatus::Resolved | IssueStatus::Verified => Err(DomainError::IssueResolved(issue_id.clone())),
        }
    }

    fn open_round(&self, round_id: &EntityId) -> Result<&crate::state::Round, DomainError> {
        let round = self.rounds.get(round_id).ok_or_else(|| unknown("round", round_id))?;
        if round.completed { Err(DomainError::RoundCompleted(round_id.clone())) } else { Ok(round) }
    }

    /// The live event `event_id` (the context's target), for corrections and retractions.
    fn live_target<'a>(&self, event_id: uuid::Uuid, context: &'a Context) -> Result<&'a TargetEvent, DomainError> {
        let target = context
            .target
            .as_ref()
            .filter(|target| target.event_id == event_id)
            .ok_or_else(|| unknown("event", event_id))?;
        if self.retracted.contains(&event_id) {
            return Err(DomainError::EventRetracted(event_id));
        }
        Ok(target)
    }
}

/// What may be done to an event once it is recorded: (corrected, retracted). Facts without a
/// lifecycle may be both; registrations and a task's assignment may have their details
/// corrected; an issue raised by mistake may be withdrawn. Lifecycle steps (closing,
/// schedules, resolving, verifying, reopening, completing) are undone by the next step, not
/// by a retraction, so that the rules' state and every view stay in step.
fn amendable(event_type: &str) -> (bool, bool) {
    match event_type {
        "PatrolCheckRecorded"
        | "TrafficTallyRecorded"
        | "InspectionRecorded"
        | "GateIssueAcknowledged"
        | "GateIssueAssigned"
        | "GateIssueActionTaken"
        | "GateIssueEscalated"
        | "QuarantineReleaseNoticeDelivered"
        | "SuppliesDelivered"
        | "DirectiveReceived"
        | "FieldNoteRecorded"
        | "GateIssueRaised" => (true, true),
        "CommunityRegistered"
        | "GridRegistered"
        | "SiteRegistered"
        | "CheckpointRegistered"
        | "StaffRegistered"
        | "TeamFormed"
        | "LedgerTaskAssigned"
        | "PatrolRoundStarted" => (true, false),
        _ => (false, false),
    }
}

/// Decides `command` against `state`: the events to record, or why not.
pub fn decide(state: &State, command: &Command, context: &Context) -> Result<Vec<Event>, DomainError> {
    if context.occurred_at.as_microsecond() > context.now.as_microsecond().saturating_add(OCCURRED_AT_SKEW_MICROS_MAX) {
        return Err(DomainError::InTheFuture { occurred_at: context.occurred_at, now: context.now });
    }
    check(state, command, context)?;
    Ok(vec![event_of(command)])
}

fn check(state: &State, command: &Command, context: &Context) -> Result<(), DomainError> {
    match command {
        Command::RegisterCommunity(e) => {
            require_text(&e.name, "the name")?;
            require_new(state.communities.contains(&e.community_id), "community", &e.community_id)
        }
        Command::RegisterGrid(e) => {
            require_text(&e.name, "the name")?;
            require(state.communities.contains(&e.community_id), "community", &e.community_id)?;
            require_new(state.grids.contains(&e.grid_id), "grid", &e.grid_id)
        }
        Command::RegisterSite(e) => {
            require_text(&e.name, "the name")?;
            require(state.grids.contains(&e.grid_id), "grid", &e.grid_id)?;
            require_new(state.sites.contains(&e.site_id), "site", &e.site_id)
        }
        Command::RegisterCheckpoint(e) => {
            require_text(&e.name, "the name")?;
            require(state.sites.contains(&e.site_id), "site", &e.site_id)?;
            require_new(state.checkpoints.contains_key(&e.checkpoint_id), "checkpoint", &e.checkpoint_id)
        }
        Command::CloseCheckpoint(e) => {
            require_text(&e.reason, "the reason")?;
            state.open_checkpoint(&e.checkpoint_id)
        }
        Command::ReopenCheckpoint(e) => match state.checkpoints.get(&e.checkpoint_id) {
            None => Err(unknown("checkpoint", &e.checkpoint_id)),
            Some(true) => Err(DomainError::CheckpointOpen(e.checkpoint_id.clone())),
            Some(false) => Ok(()),
        },
        Command::RegisterStaff(e) => {
            require_text(&e.display_name, "the display name")?;
            if let Some(grid_id) = &e.grid_id {
                require(state.grids.contains(grid_id), "grid", grid_id)?;
            }
            require_new(state.staff.contains(&e.staff_id), "staff member", &e.staff_id)
        }
        Command::FormTeam(e) => {
            require_text(&e.name, "the name")?;
            require(state.grids.contains(&e.grid_id), "grid", &e.grid_id)?;
            e.member_ids.iter().try_for_each(|member| state.staff_known(member))?;
            require_new(state.teams.contains(&e.team_id), "team", &e.team_id)
        }
        Command::SetSchedule(e) => {
            require(state.checkpoints.contains_key(&e.checkpoint_id), "checkpoint", &e.checkpoint_id)?;
            if e.check_interval_minutes == 0 || e.check_interval_minutes > 24 * 60 {
                return Err(DomainError::Invalid("the check interval must be 1 to 1,440 minutes".into()));
            }
            if e.active_from == e.active_until {
                return Err(DomainError::Invalid("the schedule's hours are empty (from equals until)".into()));
            }
            Ok(())
        }
        Command::RecordPatrolCheck(e) => {
            state.open_checkpoint(&e.checkpoint_id)?;
            state.staff_known(&e.staff_id)?;
            if let Some(round_id) = &e.round_id {
                state.open_round(round_id)?;
            }
            Ok(())
        }
        Command::RecordTally(e) => {
            require(state.checkpoints.contains_key(&e.checkpoint_id), "checkpoint", &e.checkpoint_id)?;
            state.staff_known(&e.recorded_by)?;
            if e.period_start >= e.period_end {
                return Err(DomainError::Invalid("the tally's period ends before it starts".into()));
            }
            if e.period_end.as_microsecond() > context.now.as_microsecond().saturating_add(OCCURRED_AT_SKEW_MICROS_MAX)
            {
                return Err(DomainError::InTheFuture { occurred_at: e.period_end, now: context.now });
            }
            Ok(())
        }
        Command::RecordInspection(e) => {
            require(state.sites.contains(&e.site_id), "site", &e.site_id)?;
            state.staff_known(&e.inspector_id)?;
            require_new(state.inspections.contains(&e.inspection_id), "inspection", &e.inspection_id)
        }
        Command::StartRound(e) => {
            require(state.grids.contains(&e.grid_id), "grid", &e.grid_id)?;
            state.staff_known(&e.led_by)?;
            require_new(state.rounds.contains_key(&e.round_id), "round", &e.round_id)?;
            if e.checklist.is_empty() {
                return Err(DomainError::Invalid("a round needs at least one checklist item".into()));
            }
            let mut seen = std::collections::HashSet::new();
            for item in &e.checklist {
                require_text(&item.label, "a checklist label")?;
                if !seen.insert(&item.item_id) {
                    return Err(DomainError::Invalid(format!("checklist item {} appears twice", item.item_id)));
                }
            }
            Ok(())
        }
        Command::TickRoundItem(e) => {
            let round = state.open_round(&e.round_id)?;
            state.staff_known(&e.ticked_by)?;
            if !round.checklist.contains(&e.item_id) {
                return Err(DomainError::UnknownChecklistItem {
                    round_id: e.round_id.clone(),
                    item_id: e.item_id.clone(),
                });
            }
            if round.ticked.contains(&e.item_id) {
                return Err(DomainError::ItemAlreadyTicked {
                    round_id: e.round_id.clone(),
                    item_id: e.item_id.clone(),
                });
            }
            Ok(())
        }
        Command::CompleteRound(e) => {
            state.open_round(&e.round_id)?;
            state.staff_known(&e.completed_by)
        }
        Command::RaiseIssue(e) => {
            state.open_checkpoint(&e.checkpoint_id)?;
            state.staff_known(&e.raised_by)?;
            require_text(&e.summary, "the summary")?;
            require_new(state.issues.contains_key(&e.issue_id), "issue", &e.issue_id)
        }
        Command::AcknowledgeIssue(e) => {
            state.staff_known(&e.acknowledged_by)?;
            state.unresolved_issue(&e.issue_id)
        }
        Command::AssignIssue(e) => {
            state.staff_known(&e.assignee_id)?;
            state.staff_known(&e.assigned_by)?;
            state.unresolved_issue(&e.issue_id)
        }
        Command::ActOnIssue(e) => {
            state.staff_known(&e.taken_by)?;
            require_text(&e.action, "the action")?;
            state.unresolved_issue(&e.issue_id)
        }
        Command::EscalateIssue(e) => {
            state.staff_known(&e.escalated_by)?;
            state.unresolved_issue(&e.issue_id)
        }
        Command::ResolveIssue(e) => {
            state.staff_known(&e.resolved_by)?;
            require_text(&e.resolution, "the resolution")?;
            state.unresolved_issue(&e.issue_id)
        }
        Command::VerifyResolution(e) => {
            state.staff_known(&e.verified_by)?;
            match state.issue(&e.issue_id)? {
                IssueStatus::Open => Err(DomainError::IssueNotResolved(e.issue_id.clone())),
                IssueStatus::Verified => Err(DomainError::IssueVerified(e.issue_id.clone())),
                IssueStatus::Resolved => Ok(()),
            }
        }
        Command::ReopenIssue(e) => {
            state.staff_known(&e.reopened_by)?;
            require_text(&e.reason, "the reason")?;
            match state.issue(&e.issue_id)? {
                IssueStatus::Open => Err(DomainError::IssueNotResolved(e.issue_id.clone())),
                IssueStatus::Resolved | IssueStatus::Verified => Ok(()),
            }
        }
        Command::DeliverQuarantineNotice(e) => {
            require(state.sites.contains(&e.site_id), "site", &e.site_id)?;
            if e.delivered_by.is_empty() {
                return Err(DomainError::Invalid("a notice is delivered by at least one staff member".into()));
            }
            e.delivered_by.iter().try_for_each(|staff| state.staff_known(staff))
        }
        Command::DeliverSupplies(e) => {
            state.staff_known(&e.delivered_by)?;
            require_text(&e.recipient, "the recipient")?;
            if e.items.is_empty() || e.items.iter().any(|item| item.quantity == 0 || item.item.trim().is_empty()) {
                return Err(DomainError::Invalid("supplies need at least one named item with a quantity".into()));
            }
            Ok(())
        }
        Command::RecordDirective(e) => {
            require_text(&e.title, "the title")?;
            require_new(state.directives.contains(&e.directive_id), "directive", &e.directive_id)
        }
        Command::AssignLedgerTask(e) => {
            require_text(&e.title, "the title")?;
            state.staff_known(&e.assignee_id)?;
            require_new(state.ledger_tasks.contains_key(&e.task_id), "ledger task", &e.task_id)
        }
        Command::CompleteLedgerTask(e) => {
            state.staff_known(&e.completed_by)?;
            match state.ledger_tasks.get(&e.task_id) {
                None => Err(unknown("ledger task", &e.task_id)),
                Some(true) => Err(DomainError::TaskCompleted(e.task_id.clone())),
                Some(false) => Ok(()),
            }
        }
        Command::RecordFieldNote(e) => {
            state.staff_known(&e.author)?;
            require_text(&e.text, "the note")?;
            if let Some(site_id) = &e.site_id {
                require(state.sites.contains(site_id), "site", site_id)?;
            }
            Ok(())
        }
        Command::CorrectEvent(e) => {
            state.staff_known(&e.corrected_by)?;
            require_text(&e.reason, "the reason")?;
            let target = state.live_target(e.corrected_event_id, context)?;
            if !amendable(target.event_type).0 {
                return Err(DomainError::NotCorrectable(target.event_type));
            }
            let replacement = e.replacement.event_type();
            if target.event_type != replacement {
                return Err(DomainError::ReplacementTypeMismatch { target: target.event_type, replacement });
            }
            let replacement = Command::recording(e.replacement.as_ref().clone());
            if replacement.stream_id().ok().as_ref() != Some(&target.stream_id) {
                return Err(DomainError::Invalid(format!(
                    "a correction of an event of {} must be about the same entity",
                    target.stream_id
                )));
            }
            // The replacement must hold on its own, except that the entity it registers or
            // raises exists already (it is the one being corrected).
            if !matches!(
                replacement,
                Command::RegisterCommunity(_)
                    | Command::RegisterGrid(_)
                    | Command::RegisterSite(_)
                    | Command::RegisterCheckpoint(_)
                    | Command::RegisterStaff(_)
                    | Command::FormTeam(_)
                    | Command::RaiseIssue(_)
                    | Command::AssignLedgerTask(_)
                    | Command::StartRound(_)
            ) {
                check(state, &replacement, context)?;
            }
            Ok(())
        }
        Command::RetractEvent(e) => {
            state.staff_known(&e.retracted_by)?;
            require_text(&e.reason, "the reason")?;
            let target = state.live_target(e.retracted_event_id, context)?;
            if !amendable(target.event_type).1 {
                return Err(DomainError::NotCorrectable(target.event_type));
            }
            Ok(())
        }
        Command::SealDay(_) => {
            Err(DomainError::Invalid("day seals are computed from the log, not recorded by hand".into()))
        }
    }
}

/// The events a command records, without checking its rules: for a retry of a command
/// whose events are already in the log, which the store recognises by their ids.
pub fn events_of(command: &Command) -> Vec<Event> {
    vec![event_of(command)]
}

/// The event a command records once its rules hold.
fn event_of(command: &Command) -> Event {
    match command.clone() {
        Command::RegisterCommunity(e) => e.into(),
        Command::RegisterGrid(e) => e.into(),
        Command::RegisterSite(e) => e.into(),
        Command::RegisterCheckpoint(e) => e.into(),
        Command::CloseCheckpoint(e) => e.into(),
        Command::ReopenCheckpoint(e) => e.into(),
        Command::RegisterStaff(e) => e.into(),
        Command::FormTeam(e) => e.into(),
        Command::SetSchedule(e) => e.into(),
        Command::RecordPatrolCheck(e) => e.into(),
        Command::RecordTally(e) => e.into(),
        Command::RecordInspection(e) => e.into(),
        Command::StartRound(e) => e.into(),
        Command::TickRoundItem(e) => e.into(),
        Command::CompleteRound(e) => e.into(),
        Command::RaiseIssue(e) => e.into(),
        Command::AcknowledgeIssue(e) => e.into(),
        Command::AssignIssue(e) => e.into(),
        Command::ActOnIssue(e) => e.into(),
        Command::EscalateIssue(e) => e.into(),
        Command::ResolveIssue(e) => e.into(),
        Command::VerifyResolution(e) => e.into(),
        Command::ReopenIssue(e) => e.into(),
        Command::DeliverQuarantineNotice(e) => e.into(),
        Command::DeliverSupplies(e) => e.into(),
        Command::RecordDirective(e) => e.into(),
        Command::AssignLedgerTask(e) => e.into(),
        Command::CompleteLedgerTask(e) => e.into(),
        Command::RecordFieldNote(e) => e.into(),
        Command::CorrectEvent(e) => e.into(),
        Command::RetractEvent(e) => e.into(),
        Command::SealDay(e) => e.into(),
    }
}
