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
    #[error("{0} is empty")]
    EmptyText(&'static str),
    #[error("the check interval must be 1 to 1,440 minutes, not {0}")]
    CheckIntervalOutOfRange(u32),
    #[error("the schedule's hours are empty (from equals until)")]
    EmptyScheduleHours,
    #[error("the tally's period ends before it starts")]
    TallyPeriodReversed,
    #[error("a round needs at least one checklist item")]
    EmptyChecklist,
    #[error("checklist item {0} appears twice")]
    DuplicateChecklistItem(EntityId),
    #[error("a notice is delivered by at least one staff member")]
    NoticeWithoutDeliverer,
    #[error("supplies need at least one named item with a quantity")]
    SuppliesWithoutItems,
    #[error("a correction of an event of {target_stream} must be about the same entity")]
    CorrectionOfAnotherEntity { target_stream: EntityId },
    #[error("day seals are computed from the log, not recorded by hand")]
    SealRecordedByHand,
}

impl DomainError {
    /// The class of the refusal, for the one mapping to HTTP statuses and exit codes:
    /// something the command names does not exist, the entity's state does not allow it
    /// now, or the command itself is not valid whatever the state.
    pub fn class(&self) -> RefusalClass {
        match self {
            DomainError::Unknown { .. } => RefusalClass::NotFound,
            DomainError::AlreadyExists { .. }
            | DomainError::CheckpointClosed(_)
            | DomainError::CheckpointOpen(_)
            | DomainError::IssueResolved(_)
            | DomainError::IssueNotResolved(_)
            | DomainError::IssueVerified(_)
            | DomainError::RoundCompleted(_)
            | DomainError::ItemAlreadyTicked { .. }
            | DomainError::TaskCompleted(_)
            | DomainError::EventRetracted(_)
            | DomainError::UnknownChecklistItem { .. } => RefusalClass::InvalidTransition,
            DomainError::ReplacementTypeMismatch { .. }
            | DomainError::NotCorrectable(_)
            | DomainError::InTheFuture { .. }
            | DomainError::EmptyText(_)
            | DomainError::CheckIntervalOutOfRange(_)
            | DomainError::EmptyScheduleHours
            | DomainError::TallyPeriodReversed
            | DomainError::EmptyChecklist
            | DomainError::DuplicateChecklistItem(_)
            | DomainError::NoticeWithoutDeliverer
            | DomainError::SuppliesWithoutItems
            | DomainError::CorrectionOfAnotherEntity { .. }
            | DomainError::SealRecordedByHand => RefusalClass::InvalidCommand,
        }
    }
}

/// How a refusal is classed (see [`DomainError::class`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalClass {
    /// An entity the command names does not exist.
    NotFound,
    /// The entity exists, but its state does not allow this now.
    InvalidTransition,
    /// The command is not valid in any state.
    InvalidCommand,
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

/// The id must be new, unless it is `corrected`: the entity that the event being corrected
/// brought into being, which a correction of that event names again.
fn require_new(
    known: bool,
    kind: &'static str,
    id: &EntityId,
    corrected: Option<&EntityId>,
) -> Result<(), DomainError> {
    if known && corrected != Some(id) { Err(exists(kind, id)) } else { Ok(()) }
}

fn require_text(text: &str, what: &'static str) -> Result<(), DomainError> {
    if text.trim().is_empty() { Err(DomainError::EmptyText(what)) } else { Ok(()) }
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

/// Decides `command` against `state`: the events to record, or why not.
pub fn decide(state: &State, command: &Command, context: &Context) -> Result<Vec<Event>, DomainError> {
    if context.occurred_at.as_microsecond() > context.now.as_microsecond().saturating_add(OCCURRED_AT_SKEW_MICROS_MAX) {
        return Err(DomainError::InTheFuture { occurred_at: context.occurred_at, now: context.now });
    }
    check(state, command, context, None)?;
    Ok(events_of(command))
}

/// Checks `command`'s rules; `corrected` is the entity that the event a correction replaces
/// created, when `command` is that correction's replacement.
fn check(state: &State, command: &Command, context: &Context, corrected: Option<&EntityId>) -> Result<(), DomainError> {
    match command {
        Command::RegisterCommunity(e) => {
            require_text(&e.name, "the name")?;
            require_new(state.communities.contains(&e.community_id), "community", &e.community_id, corrected)
        }
        Command::RegisterGrid(e) => {
            require_text(&e.name, "the name")?;
            require(state.communities.contains(&e.community_id), "community", &e.community_id)?;
            require_new(state.grids.contains(&e.grid_id), "grid", &e.grid_id, corrected)
        }
        Command::RegisterSite(e) => {
            require_text(&e.name, "the name")?;
            require(state.grids.contains(&e.grid_id), "grid", &e.grid_id)?;
            require_new(state.sites.contains(&e.site_id), "site", &e.site_id, corrected)
        }
        Command::RegisterCheckpoint(e) => {
            require_text(&e.name, "the name")?;
            require(state.sites.contains(&e.site_id), "site", &e.site_id)?;
            require_new(state.checkpoints.contains_key(&e.checkpoint_id), "checkpoint", &e.checkpoint_id, corrected)
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
            require_new(state.staff.contains(&e.staff_id), "staff member", &e.staff_id, corrected)
        }
        Command::FormTeam(e) => {
            require_text(&e.name, "the name")?;
            require(state.grids.contains(&e.grid_id), "grid", &e.grid_id)?;
            e.member_ids.iter().try_for_each(|member| state.staff_known(member))?;
            require_new(state.teams.contains(&e.team_id), "team", &e.team_id, corrected)
        }
        Command::SetSchedule(e) => {
            require(state.checkpoints.contains_key(&e.checkpoint_id), "checkpoint", &e.checkpoint_id)?;
            if e.check_interval_minutes == 0 || e.check_interval_minutes > 24 * 60 {
                return Err(DomainError::CheckIntervalOutOfRange(e.check_interval_minutes));
            }
            if e.active_from == e.active_until {
                return Err(DomainError::EmptyScheduleHours);
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
                return Err(DomainError::TallyPeriodReversed);
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
            require_new(state.inspections.contains(&e.inspection_id), "inspection", &e.inspection_id, corrected)
        }
        Command::StartRound(e) => {
            require(state.grids.contains(&e.grid_id), "grid", &e.grid_id)?;
            state.staff_known(&e.led_by)?;
            require_new(state.rounds.contains_key(&e.round_id), "round", &e.round_id, corrected)?;
            if e.checklist.is_empty() {
                return Err(DomainError::EmptyChecklist);
            }
            let mut seen = std::collections::HashSet::new();
            for item in &e.checklist {
                require_text(&item.label, "a checklist label")?;
                if !seen.insert(&item.item_id) {
                    return Err(DomainError::DuplicateChecklistItem(item.item_id.clone()));
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
            require_new(state.issues.contains_key(&e.issue_id), "issue", &e.issue_id, corrected)
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
                return Err(DomainError::NoticeWithoutDeliverer);
            }
            e.delivered_by.iter().try_for_each(|staff| state.staff_known(staff))
        }
        Command::DeliverSupplies(e) => {
            state.staff_known(&e.delivered_by)?;
            require_text(&e.recipient, "the recipient")?;
            if e.items.is_empty() || e.items.iter().any(|item| item.quantity == 0 || item.item.trim().is_empty()) {
                return Err(DomainError::SuppliesWithoutItems);
            }
            Ok(())
        }
        Command::RecordDirective(e) => {
            require_text(&e.title, "the title")?;
            require_new(state.directives.contains(&e.directive_id), "directive", &e.directive_id, corrected)
        }
        Command::AssignLedgerTask(e) => {
            require_text(&e.title, "the title")?;
            state.staff_known(&e.assignee_id)?;
            require_new(state.ledger_tasks.contains_key(&e.task_id), "ledger task", &e.task_id, corrected)
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
            if !target.amendment.may_correct() {
                return Err(DomainError::NotCorrectable(target.event_type));
            }
            let replacement = e.replacement.event_type();
            if target.event_type != replacement {
                return Err(DomainError::ReplacementTypeMismatch { target: target.event_type, replacement });
            }
            let replacement = Command::recording(e.replacement.as_ref().clone());
            if replacement.stream_id().ok().as_ref() != Some(&target.stream_id) {
                return Err(DomainError::CorrectionOfAnotherEntity { target_stream: target.stream_id.clone() });
            }
            // The replacement must hold on its own, except that the entity the corrected
            // event brought into being exists already (it is the one being corrected).
            check(state, &replacement, context, target.created.as_ref())?;
            Ok(())
        }
        Command::RetractEvent(e) => {
            state.staff_known(&e.retracted_by)?;
            require_text(&e.reason, "the reason")?;
            let target = state.live_target(e.retracted_event_id, context)?;
            if !target.amendment.may_retract() {
                return Err(DomainError::NotCorrectable(target.event_type));
            }
            Ok(())
        }
        Command::SealDay(_) => Err(DomainError::SealRecordedByHand),
    }
}

/// The events a command records, without checking its rules: for a retry of a command
/// whose events are already in the log, which the store recognises by their ids.
pub fn events_of(command: &Command) -> Vec<Event> {
    vec![command.event()]
}
