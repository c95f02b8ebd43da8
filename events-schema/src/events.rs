//! Every event payload of the catalogue (see `domain.md`), and the `Event` enum over them.
//!
//! Payloads are facts in the past tense. They hold ids, enums and counts, never a person's
//! real name beyond a display name chosen by the team, and never a password or a token.
//! Optional fields may be left out of JSON; unknown fields are rejected.

use jiff::civil::{Date, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalogue::catalogue;
use crate::{EntityId, Timestamp};

/// Declares payload structs with the derives and serde settings every payload shares.
macro_rules! payloads {
    ($( $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* } )+) => {
        $(
            $(#[$meta])*
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
            #[serde(deny_unknown_fields)]
            pub struct $name { $($body)* }
        )+
    };
}

/// Declares the plain enums used inside payloads (snake_case in JSON).
macro_rules! kinds {
    ($( $(#[$meta:meta])* pub enum $name:ident { $($body:tt)* } )+) => {
        $(
            $(#[$meta])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
            #[serde(rename_all = "snake_case")]
            pub enum $name { $($body)* }
        )+
    };
}

kinds! {
    /// What kind of place a site is.
    pub enum SiteKind { ResidentialCompound, Enterprise, SmallVenue, Other }
    /// The part a staff member plays on the team.
    pub enum StaffRole { DeployedCadre, GridWorker, PropertyManagement, Guard, Volunteer, Other }
    /// The outcome of a patrol check.
    pub enum CheckResult { Ok, IssueFound }
    /// Weather as noted in the field; rain makes gate duty harder.
    pub enum Weather { Clear, Cloudy, Rain, Cold, Hot, Windy }
    /// What a gate issue is about (categories seen in the diary, plus `other`).
    pub enum IssueCategory {
        CourierCongestion, RefusedHealthCodeScan, UnverifiableTravelHistory, Weather,
        Equipment, Staffing, Crowding, DeliveryBlocked, Other
    }
    /// How bad a gate issue is; ordered from least to worst.
    pub enum Severity { Low, Medium, High, Critical }
    /// Who an issue is escalated to.
    pub enum EscalationTarget { Subdistrict, UrbanManagement, Police, PropertyManagement, Other }
    /// Why a venue was inspected.
    pub enum InspectionKind { ReopeningCheck, Routine, FollowUp }
    /// What an inspection found.
    pub enum InspectionResult { Passed, IssuesFound, Closed }
}

payloads! {
    /// A community (unit of local administration) was registered.
    pub struct CommunityRegistered {
        pub community_id: EntityId,
        #[schemars(pattern(r"\S"))]
        pub name: String,
        /// Where it sits, e.g. "Cuizhu subdistrict, Luohu district".
        pub parent_area: Option<String>,
    }

    /// A grid (the patch of a community one team covers) was registered.
    pub struct GridRegistered {
        pub grid_id: EntityId,
        pub community_id: EntityId,
        #[schemars(pattern(r"\S"))]
        pub name: String,
    }

    /// A site (compound, enterprise or small venue) was registered in a grid.
    pub struct SiteRegistered {
        pub site_id: EntityId,
        pub grid_id: EntityId,
        #[schemars(pattern(r"\S"))]
        pub name: String,
        pub kind: SiteKind,
    }

    /// A checkpoint (gate, screening point) was registered at a site.
    pub struct CheckpointRegistered {
        pub checkpoint_id: EntityId,
        pub site_id: EntityId,
        #[schemars(pattern(r"\S"))]
        pub name: String,
    }

    /// A checkpoint was closed: no checks are expected or accepted until it reopens.
    pub struct CheckpointClosed {
        pub checkpoint_id: EntityId,
        #[schemars(pattern(r"\S"))]
        pub reason: String,
    }

    /// A closed checkpoint was opened again.
    pub struct CheckpointReopened {
        pub checkpoint_id: EntityId,
        pub reason: Option<String>,
    }

    /// A staff member joined; `display_name` is what the team calls them, not a legal name.
    pub struct StaffRegistered {
        pub staff_id: EntityId,
        #[schemars(pattern(r"\S"))]
        pub display_name: String,
        pub role: StaffRole,
        pub grid_id: Option<EntityId>,
    }

    /// A team (e.g. a grid task force) was formed with its members.
    pub struct TeamFormed {
        pub team_id: EntityId,
        pub grid_id: EntityId,
        #[schemars(pattern(r"\S"))]
        pub name: String,
        #[serde(default)]
        pub member_ids: Vec<EntityId>,
    }

    /// How often a checkpoint must be checked, and during which local hours.
    pub struct CheckpointScheduleSet {
        pub checkpoint_id: EntityId,
        #[schemars(range(min = 1, max = 1440))]
        pub check_interval_minutes: u32,
        /// Local time of day the schedule starts (e.g. `07:00`).
        #[schemars(with = "String")]
        pub active_from: Time,
        /// Local time of day it ends (e.g. `22:00`); before `active_from` means past midnight.
        #[schemars(with = "String")]
        pub active_until: Time,
    }

    /// A patrol check at a checkpoint: who looked and what they found. Each finding is
    /// `true` (fine), `false` (not fine) or absent (not looked at).
    pub struct PatrolCheckRecorded {
        pub checkpoint_id: EntityId,
        pub staff_id: EntityId,
        pub result: CheckResult,
        pub staff_present: Option<bool>,
        /// Masks, gloves, and raincoats when it rains.
        pub protective_gear_worn: Option<bool>,
        pub thermometer_working: Option<bool>,
        pub health_code_scan_enforced: Option<bool>,
        pub passage_logbook_kept: Option<bool>,
        pub queue_orderly: Option<bool>,
        pub weather: Option<Weather>,
        /// The patrol round this check belongs to, if any.
        pub round_id: Option<EntityId>,
        pub note: Option<String>,
    }

    /// Counts from a checkpoint's passage logbook for a period (counts only, never people).
    pub struct TrafficTallyRecorded {
        pub checkpoint_id: EntityId,
        pub recorded_by: EntityId,
        pub period_start: Timestamp,
        pub period_end: Timestamp,
        pub people_screened: u32,
        pub vehicles: u32,
        pub fever_flags: u32,
        pub refused_scans: u32,
        pub temporary_passes_issued: u32,
    }

    /// An inspection of a venue, e.g. an enterprise or small shop reopening.
    pub struct InspectionRecorded {
        pub inspection_id: EntityId,
        pub site_id: EntityId,
        pub inspector_id: EntityId,
        pub kind: InspectionKind,
        pub result: InspectionResult,
        pub findings: Option<String>,
    }

    /// A patrol round began with its checklist (e.g. the "five once-overs").
    pub struct PatrolRoundStarted {
        pub round_id: EntityId,
        pub grid_id: EntityId,
        pub led_by: EntityId,
        #[schemars(length(min = 1))]
        pub checklist: Vec<ChecklistItem>,
    }

    /// One checklist item of a round was done.
    pub struct PatrolRoundItemTicked {
        pub round_id: EntityId,
        pub item_id: EntityId,
        pub ticked_by: EntityId,
        /// The patrol check or inspection event that backs this tick, if any.
        pub evidence_event_id: Option<Uuid>,
        pub note: Option<String>,
    }

    /// A patrol round ended.
    pub struct PatrolRoundCompleted {
        pub round_id: EntityId,
        pub completed_by: EntityId,
        pub note: Option<String>,
    }

    /// A gate issue was raised at a checkpoint.
    pub struct GateIssueRaised {
        pub issue_id: EntityId,
        pub checkpoint_id: EntityId,
        pub raised_by: EntityId,
        pub category: IssueCategory,
        pub severity: Severity,
        #[schemars(pattern(r"\S"))]
        pub summary: String,
        pub details: Option<String>,
    }

    /// Someone took note of an issue.
    pub struct GateIssueAcknowledged {
        pub issue_id: EntityId,
        pub acknowledged_by: EntityId,
    }

    /// An issue was given to a staff member to handle.
    pub struct GateIssueAssigned {
        pub issue_id: EntityId,
        pub assignee_id: EntityId,
        pub assigned_by: EntityId,
    }

    /// Something was done about an issue (any number of times).
    pub struct GateIssueActionTaken {
        pub issue_id: EntityId,
        pub taken_by: EntityId,
        #[schemars(pattern(r"\S"))]
        pub action: String,
    }

    /// An issue was handed up for help beyond the team.
    pub struct GateIssueEscalated {
        pub issue_id: EntityId,
        pub escalated_by: EntityId,
        pub escalated_to: EscalationTarget,
        pub note: Option<String>,
    }

    /// An issue was solved.
    pub struct GateIssueResolved {
        pub issue_id: EntityId,
        pub resolved_by: EntityId,
        #[schemars(pattern(r"\S"))]
        pub resolution: String,
    }

    /// A follow-up check confirmed the resolution held.
    pub struct GateIssueResolutionVerified {
        pub issue_id: EntityId,
        pub verified_by: EntityId,
        pub note: Option<String>,
        /// The patrol check that looked again, if any.
        pub check_event_id: Option<Uuid>,
    }

    /// A resolved issue came back.
    pub struct GateIssueReopened {
        pub issue_id: EntityId,
        pub reopened_by: EntityId,
        #[schemars(pattern(r"\S"))]
        pub reason: String,
    }

    /// A home-quarantine release notice was delivered to a household. The household is a
    /// pseudonymous reference, never a name or an address.
    pub struct QuarantineReleaseNoticeDelivered {
        pub household_ref: EntityId,
        pub site_id: EntityId,
        pub delivered_by: Vec<EntityId>,
        pub masks_worn: bool,
        pub temperature_taken: bool,
        pub instructions_given: bool,
        pub signed: bool,
    }

    /// Supplies were handed over.
    pub struct SuppliesDelivered {
        pub delivered_by: EntityId,
        /// Who received them, as a role or place ("gate staff at site-x", "relief office").
        #[schemars(pattern(r"\S"))]
        pub recipient: String,
        pub purpose: Option<String>,
        #[schemars(length(min = 1))]
        pub items: Vec<SupplyItem>,
    }

    /// A directive (a new rule from above) arrived.
    pub struct DirectiveReceived {
        pub directive_id: EntityId,
        #[schemars(pattern(r"\S"))]
        pub title: String,
        pub issued_by: String,
        pub summary: Option<String>,
        /// Whether it asks for a look back over open findings.
        pub requires_review: bool,
    }

    /// A supervision-ledger task was assigned.
    pub struct LedgerTaskAssigned {
        pub task_id: EntityId,
        #[schemars(pattern(r"\S"))]
        pub title: String,
        pub assignee_id: EntityId,
        #[schemars(with = "Option<String>")]
        pub due_on: Option<Date>,
    }

    /// A supervision-ledger task was done.
    pub struct LedgerTaskCompleted {
        pub task_id: EntityId,
        pub completed_by: EntityId,
        pub note: Option<String>,
    }

    /// A free-text note from the field: the daily diary of a staff member.
    pub struct FieldNoteRecorded {
        pub author: EntityId,
        #[schemars(pattern(r"\S"))]
        pub text: String,
        pub site_id: Option<EntityId>,
        pub weather: Option<Weather>,
    }

    /// An earlier event was wrong; `replacement` is what it should have said (same type).
    pub struct EventCorrected {
        pub corrected_event_id: Uuid,
        pub corrected_by: EntityId,
        #[schemars(pattern(r"\S"))]
        pub reason: String,
        pub replacement: Box<Event>,
    }

    /// An earlier event should not have been recorded at all.
    pub struct EventRetracted {
        pub retracted_event_id: Uuid,
        pub retracted_by: EntityId,
        #[schemars(pattern(r"\S"))]
        pub reason: String,
    }

    /// The signed seal of a local day's events (see the README's "Day export" for how each
    /// field is computed and checked). A day's first seal has `sequence` 1; events of the day
    /// that arrive after it are covered by a further seal of the same day (an addendum).
    /// Schema version 1 (day, chain head, count only) is read as an unsigned sequence-1 seal.
    pub struct DaySealed {
        #[schemars(with = "String")]
        pub local_day: Date,
        pub time_zone: String,
        /// 1 for the day's first seal; 2, 3, ... for its addenda.
        pub sequence: u32,
        /// How many events of the day this seal covers: those recorded after the day's
        /// previous seal was made (its `chain_head_position`), up to this one's.
        pub event_count: u64,
        /// The smallest and largest global position among them (0 when there are none).
        pub first_global_position: u64,
        pub last_global_position: u64,
        /// Hex of the RFC 9162 Merkle tree hash (SHA-256) over their export lines, in log order.
        pub merkle_root: String,
        /// The head of the log when the seal was made, and hex of its chain hash.
        pub chain_head_position: u64,
        pub chain_hash: String,
        /// The position of the seal before this one in the log (any day; 0 for the first),
        /// and hex of the SHA-256 of that seal's export line (empty for the first).
        pub previous_seal_position: u64,
        pub previous_seal_hash: String,
        /// The id of the ed25519 key that signed it (empty for an upcast version-1 seal).
        pub key_id: String,
        /// Hex of the ed25519 signature (empty for an upcast version-1 seal).
        pub signature: String,
    }
}

/// One line of a patrol round's checklist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    pub item_id: EntityId,
    #[schemars(pattern(r"\S"))]
    pub label: String,
}

/// One kind of supply handed over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SupplyItem {
    #[schemars(pattern(r"\S"))]
    pub item: String,
    #[schemars(range(min = 1))]
    pub quantity: u32,
    pub unit: Option<String>,
}

/// The catalogue: every event kind, in catalogue order, with its current schema version and
/// the command that records it. It calls `$callback!` with the list: `catalogue!` here
/// builds the `Event` enum from it, and the `domain` crate builds its `Command` enum, so
/// that the kinds and their commands are listed once. What each kind means is in `facts`.
#[macro_export]
macro_rules! event_catalogue {
    ($callback:ident) => {
        $callback! {
            CommunityRegistered = 1 => RegisterCommunity,
            GridRegistered = 1 => RegisterGrid,
            SiteRegistered = 1 => RegisterSite,
            CheckpointRegistered = 1 => RegisterCheckpoint,
            CheckpointClosed = 1 => CloseCheckpoint,
            CheckpointReopened = 1 => ReopenCheckpoint,
            StaffRegistered = 1 => RegisterStaff,
            TeamFormed = 1 => FormTeam,
            CheckpointScheduleSet = 1 => SetSchedule,
            PatrolCheckRecorded = 1 => RecordPatrolCheck,
            TrafficTallyRecorded = 1 => RecordTally,
            InspectionRecorded = 1 => RecordInspection,
            PatrolRoundStarted = 1 => StartRound,
            PatrolRoundItemTicked = 1 => TickRoundItem,
            PatrolRoundCompleted = 1 => CompleteRound,
            GateIssueRaised = 1 => RaiseIssue,
            GateIssueAcknowledged = 1 => AcknowledgeIssue,
            GateIssueAssigned = 1 => AssignIssue,
            GateIssueActionTaken = 1 => ActOnIssue,
            GateIssueEscalated = 1 => EscalateIssue,
            GateIssueResolved = 1 => ResolveIssue,
            GateIssueResolutionVerified = 1 => VerifyResolution,
            GateIssueReopened = 1 => ReopenIssue,
            QuarantineReleaseNoticeDelivered = 1 => DeliverQuarantineNotice,
            SuppliesDelivered = 1 => DeliverSupplies,
            DirectiveReceived = 1 => RecordDirective,
            LedgerTaskAssigned = 1 => AssignLedgerTask,
            LedgerTaskCompleted = 1 => CompleteLedgerTask,
            FieldNoteRecorded = 1 => RecordFieldNote,
            EventCorrected = 1 => CorrectEvent,
            EventRetracted = 1 => RetractEvent,
            DaySealed = 2 => SealDay,
        }
    };
}

crate::event_catalogue!(catalogue);
