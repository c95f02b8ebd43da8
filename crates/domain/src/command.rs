//! Commands: one per thing a person does. Each carries the facts it would record (the
//! payload of the event it leads to), so the command and its event cannot drift apart.

use events_schema::*;

/// Who does it and when: passed in, never read from a clock here.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// The time the decision is made (the service's clock).
    pub now: Timestamp,
    /// When it happened in the field (may be earlier than `now`, never much later).
    pub occurred_at: Timestamp,
    pub actor: EntityId,
    /// For a correction or retraction: the event it names, as the log holds it (`None` when
    /// the log has no such event). Looked up by the caller, so the state need not keep every
    /// event.
    pub target: Option<TargetEvent>,
}

/// What the rules need to know about the event a correction or retraction names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetEvent {
    pub event_id: uuid::Uuid,
    pub event_type: &'static str,
    /// The stream it was recorded in: a replacement must belong to the same entity.
    pub stream_id: EntityId,
}

/// Something a person (or the system, for day seals) asks to do. In JSON:
/// `{"command": "raise-issue", "data": {...}}`, `data` being the payload of its event.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(tag = "command", content = "data", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    RegisterCommunity(CommunityRegistered),
    RegisterGrid(GridRegistered),
    RegisterSite(SiteRegistered),
    RegisterCheckpoint(CheckpointRegistered),
    CloseCheckpoint(CheckpointClosed),
    ReopenCheckpoint(CheckpointReopened),
    RegisterStaff(StaffRegistered),
    FormTeam(TeamFormed),
    SetSchedule(CheckpointScheduleSet),
    RecordPatrolCheck(PatrolCheckRecorded),
    RecordTally(TrafficTallyRecorded),
    RecordInspection(InspectionRecorded),
    StartRound(PatrolRoundStarted),
    TickRoundItem(PatrolRoundItemTicked),
    CompleteRound(PatrolRoundCompleted),
    RaiseIssue(GateIssueRaised),
    AcknowledgeIssue(GateIssueAcknowledged),
    AssignIssue(GateIssueAssigned),
    ActOnIssue(GateIssueActionTaken),
    EscalateIssue(GateIssueEscalated),
    ResolveIssue(GateIssueResolved),
    VerifyResolution(GateIssueResolutionVerified),
    ReopenIssue(GateIssueReopened),
    DeliverQuarantineNotice(QuarantineReleaseNoticeDelivered),
    DeliverSupplies(SuppliesDelivered),
    RecordDirective(DirectiveReceived),
    AssignLedgerTask(LedgerTaskAssigned),
    CompleteLedgerTask(LedgerTaskCompleted),
    RecordFieldNote(FieldNoteRecorded),
    CorrectEvent(EventCorrected),
    RetractEvent(EventRetracted),
    SealDay(DaySealed),
}

impl Command {
    /// The command that records `event`.
    pub fn recording(event: Event) -> Command {
        match event {
            Event::CommunityRegistered(e) => e.into(),
            Event::GridRegistered(e) => e.into(),
            Event::SiteRegistered(e) => e.into(),
            Event::CheckpointRegistered(e) => e.into(),
            Event::CheckpointClosed(e) => e.into(),
            Event::CheckpointReopened(e) => e.into(),
            Event::StaffRegistered(e) => e.into(),
            Event::TeamFormed(e) => e.into(),
            Event::CheckpointScheduleSet(e) => e.into(),
            Event::PatrolCheckRecorded(e) => e.into(),
            Event::TrafficTallyRecorded(e) => e.into(),
            Event::InspectionRecorded(e) => e.into(),
            Event::PatrolRoundStarted(e) => e.into(),
            Event::PatrolRoundItemTicked(e) => e.into(),
            Event::PatrolRoundCompleted(e) => e.into(),
            Event::GateIssueRaised(e) => e.into(),
            Event::GateIssueAcknowledged(e) => e.into(),
            Event::GateIssueAssigned(e) => e.into(),
            Event::GateIssueActionTaken(e) => e.into(),
            Event::GateIssueEscalated(e) => e.into(),
            Event::GateIssueResolved(e) => e.into(),
            Event::GateIssueResolutionVerified(e) => e.into(),
            Event::GateIssueReopened(e) => e.into(),
            Event::QuarantineReleaseNoticeDelivered(e) => e.into(),
            Event::SuppliesDelivered(e) => e.into(),
            Event::DirectiveReceived(e) => e.into(),
            Event::LedgerTaskAssigned(e) => e.into(),
            Event::LedgerTaskCompleted(e) => e.into(),
            Event::FieldNoteRecorded(e) => e.into(),
            Event::EventCorrected(e) => e.into(),
            Event::EventRetracted(e) => e.into(),
            Event::DaySealed(e) => e.into(),
        }
    }

    /// The stream its events are appended to: one per entity (`checkpoint:gate-1`,
    /// `issue:courier-0220`), so that concurrent commands on different entities never
    /// conflict and those on the same entity are ordered by its stream version.
    pub fn stream_id(&self) -> Result<EntityId, InvalidEntityId> {
        let (kind, id): (&str, &EntityId) = match self {
            Command::RegisterCommunity(e) => ("community", &e.community_id),
            Command::RegisterGrid(e) => ("grid", &e.grid_id),
            Command::RegisterSite(e) => ("site", &e.site_id),
            Command::RecordInspection(e) => ("site", &e.site_id),
            Command::DeliverQuarantineNotice(e) => ("site", &e.site_id),
            Command::RegisterCheckpoint(e) => ("checkpoint", &e.checkpoint_id),
            Command::CloseCheckpoint(e) => ("checkpoint", &e.checkpoint_id),
            Command::ReopenCheckpoint(e) => ("checkpoint", &e.checkpoint_id),
            Command::SetSchedule(e) => ("checkpoint", &e.checkpoint_id),
            Command::RecordPatrolCheck(e) => ("checkpoint", &e.checkpoint_id),
            Command::RecordTally(e) => ("checkpoint", &e.checkpoint_id),
            Command::RegisterStaff(e) => ("staff", &e.staff_id),
            Command::FormTeam(e) => ("team", &e.team_id),
            Command::StartRound(e) => ("round", &e.round_id),
            Command::TickRoundItem(e) => ("round", &e.round_id),
            Command::CompleteRound(e) => ("round", &e.round_id),
            Command::RaiseIssue(e) => ("issue", &e.issue_id),
            Command::AcknowledgeIssue(e) => ("issue", &e.issue_id),
            Command::AssignIssue(e) => ("issue", &e.issue_id),
            Command::ActOnIssue(e) => ("issue", &e.issue_id),
            Command::EscalateIssue(e) => ("issue", &e.issue_id),
            Command::ResolveIssue(e) => ("issue", &e.issue_id),
            Command::VerifyResolution(e) => ("issue", &e.issue_id),
            Command::ReopenIssue(e) => ("issue", &e.issue_id),
            Command::DeliverSupplies(e) => ("supplies", &e.delivered_by),
            Command::RecordDirective(e) => ("directive", &e.directive_id),
            Command::AssignLedgerTask(e) => ("ledger", &e.task_id),
            Command::CompleteLedgerTask(e) => ("ledger", &e.task_id),
            Command::RecordFieldNote(e) => ("notes", &e.author),
            Command::CorrectEvent(_) | Command::RetractEvent(_) => return EntityId::new("corrections"),
            Command::SealDay(_) => return EntityId::new("seals"),
        };
        EntityId::new(format!("{kind}:{id}"))
    }
}

/// Each payload makes the one command that records it.
macro_rules! command_from {
    ($($payload:ident => $variant:ident),+ $(,)?) => {
        $(impl From<$payload> for Command {
            fn from(payload: $payload) -> Command {
                Command::$variant(payload)
            }
        })+
    };
}

command_from! {
    CommunityRegistered => RegisterCommunity, GridRegistered => RegisterGrid, SiteRegistered => RegisterSite,
    CheckpointRegistered => RegisterCheckpoint, CheckpointClosed => CloseCheckpoint,
    CheckpointReopened => ReopenCheckpoint, StaffRegistered => RegisterStaff, TeamFormed => FormTeam,
    CheckpointScheduleSet => SetSchedule, PatrolCheckRecorded => RecordPatrolCheck,
    TrafficTallyRecorded => RecordTally, InspectionRecorded => RecordInspection, PatrolRoundStarted => StartRound,
    PatrolRoundItemTicked => TickRoundItem, PatrolRoundCompleted => CompleteRound, GateIssueRaised => RaiseIssue,
    GateIssueAcknowledged => AcknowledgeIssue, GateIssueAssigned => AssignIssue, GateIssueActionTaken => ActOnIssue,
    GateIssueEscalated => EscalateIssue, GateIssueResolved => ResolveIssue,
    GateIssueResolutionVerified => VerifyResolution, GateIssueReopened => ReopenIssue,
    QuarantineReleaseNoticeDelivered => DeliverQuarantineNotice, SuppliesDelivered => DeliverSupplies,
    DirectiveReceived => RecordDirective, LedgerTaskAssigned => AssignLedgerTask,
    LedgerTaskCompleted => CompleteLedgerTask, FieldNoteRecorded => RecordFieldNote, EventCorrected => CorrectEvent,
    EventRetracted => RetractEvent, DaySealed => SealDay,
}
