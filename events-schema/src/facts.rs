//! What each event kind means to the rest of gridwatch, answered once, next to the kind:
//! the stream it is appended to, the entities it is about (typed), the entity it brings
//! into being, the people it says acted, the place it belongs to (for access by site and
//! for a site's report), who may ask for it, and whether it may be corrected or retracted.
//!
//! Every payload of the catalogue implements [`EventFacts`]; the `catalogue!` macro calls it
//! for each kind, so a new kind does not compile until its line in the [`facts!`] table (or
//! a hand-written impl) says what it is. Every layer (the rules, the service, the server's
//! permissions, the timeline, the reports) reads these facts from here instead of matching
//! on kinds itself.

use uuid::Uuid;

use crate::events::*;
use crate::{EntityId, InvalidEntityId};

/// The kinds of things events are about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Community,
    Grid,
    Site,
    Checkpoint,
    Staff,
    Team,
    Round,
    ChecklistItem,
    Issue,
    Inspection,
    /// A household, by a pseudonymous reference.
    Household,
    Directive,
    LedgerTask,
}

impl EntityKind {
    /// Places and people: registered once; a correction changes their details, never the
    /// state of a lifecycle.
    pub fn is_place_or_person(self) -> bool {
        match self {
            EntityKind::Community
            | EntityKind::Grid
            | EntityKind::Site
            | EntityKind::Checkpoint
            | EntityKind::Staff
            | EntityKind::Team => true,
            EntityKind::Round
            | EntityKind::ChecklistItem
            | EntityKind::Issue
            | EntityKind::Inspection
            | EntityKind::Household
            | EntityKind::Directive
            | EntityKind::LedgerTask => false,
        }
    }
}

impl EntityKind {
    /// Whether an entity of this kind is a site or belongs to one (a checkpoint, an issue at
    /// a checkpoint): what access by site and a site's report go by.
    pub fn is_of_a_site(self) -> bool {
        match self {
            EntityKind::Site | EntityKind::Checkpoint | EntityKind::Issue => true,
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
        }
    }
}

/// An entity an event names, with what kind of entity it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntityRef<'a> {
    pub kind: EntityKind,
    pub id: &'a EntityId,
}

/// The kinds of streams: one stream per entity, or one shared stream for a kind of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Community,
    Grid,
    Site,
    Checkpoint,
    Staff,
    Team,
    Round,
    Issue,
    /// One stream per person handing supplies over.
    Supplies,
    Directive,
    Ledger,
    /// One stream per author of field notes.
    Notes,
    /// Every correction and retraction, in one stream.
    Corrections,
    /// Every day seal, in one stream.
    Seals,
}

impl StreamKind {
    /// The stream id's prefix (`checkpoint` in `checkpoint:gate-1`), or the whole id of a
    /// shared stream.
    pub fn prefix(self) -> &'static str {
        match self {
            StreamKind::Community => "community",
            StreamKind::Grid => "grid",
            StreamKind::Site => "site",
            StreamKind::Checkpoint => "checkpoint",
            StreamKind::Staff => "staff",
            StreamKind::Team => "team",
            StreamKind::Round => "round",
            StreamKind::Issue => "issue",
            StreamKind::Supplies => "supplies",
            StreamKind::Directive => "directive",
            StreamKind::Ledger => "ledger",
            StreamKind::Notes => "notes",
            StreamKind::Corrections => "corrections",
            StreamKind::Seals => "seals",
        }
    }

    /// Whether the kind is one stream for all events of its kinds (no entity id in it).
    pub fn is_shared(self) -> bool {
        match self {
            StreamKind::Corrections | StreamKind::Seals => true,
            StreamKind::Community
            | StreamKind::Grid
            | StreamKind::Site
            | StreamKind::Checkpoint
            | StreamKind::Staff
            | StreamKind::Team
            | StreamKind::Round
            | StreamKind::Issue
            | StreamKind::Supplies
            | StreamKind::Directive
            | StreamKind::Ledger
            | StreamKind::Notes => false,
        }
    }
}

/// The stream an event is appended to: its kind and, unless the kind is shared, the
/// entity whose stream it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream<'a> {
    pub kind: StreamKind,
    pub entity: Option<&'a EntityId>,
}

impl Stream<'_> {
    /// The stream id: `kind:entity` (`issue:courier-0220`), or the shared stream's name.
    pub fn id(&self) -> Result<EntityId, InvalidEntityId> {
        match self.entity {
            Some(entity) => EntityId::new(format!("{}:{entity}", self.kind.prefix())),
            None => EntityId::new(self.kind.prefix()),
        }
    }
}

/// Who may ask for an event of this kind (the server maps each class to its roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Places and people: registrations.
    Reference,
    /// What gate staff do: checks, tallies, inspections, raising and working on issues,
    /// notices, field notes. Field staff may do these only as themselves, at their sites.
    Field,
    /// Everything else operational: assignments, escalations, verification, closures,
    /// schedules, rounds, ledger tasks, supplies, directives, corrections.
    Operational,
    /// Computed by gridwatch itself (day seals); never recorded by hand.
    System,
}

/// What may be done to an event once it is recorded. Lifecycle steps (closing, schedules,
/// resolving, verifying, reopening, completing) are undone by the next step, not amended,
/// so that the rules' state and every view stay in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Amendment {
    /// Neither corrected nor retracted.
    Fixed,
    /// Its details may be corrected (registrations, a task's assignment, a round's start);
    /// it may not be withdrawn.
    Correctable,
    /// A fact without a lifecycle (or an issue raised by mistake): corrected, or withdrawn.
    CorrectableOrRetractable,
}

impl Amendment {
    pub fn may_correct(self) -> bool {
        match self {
            Amendment::Fixed => false,
            Amendment::Correctable | Amendment::CorrectableOrRetractable => true,
        }
    }

    pub fn may_retract(self) -> bool {
        match self {
            Amendment::Fixed | Amendment::Correctable => false,
            Amendment::CorrectableOrRetractable => true,
        }
    }
}

/// The place an event belongs to, for access by site and for a site's report: a site
/// itself, or the checkpoint or issue through which it belongs to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place<'a> {
    Site(&'a EntityId),
    Checkpoint(&'a EntityId),
    Issue(&'a EntityId),
    /// About no place in particular (a person's own note, a grid's round, a directive).
    Nowhere,
}

/// An event that amends another one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amends {
    Corrects(Uuid),
    Retracts(Uuid),
}

impl Amends {
    /// The id of the event amended.
    pub fn event_id(self) -> Uuid {
        match self {
            Amends::Corrects(event_id) | Amends::Retracts(event_id) => event_id,
        }
    }
}

/// The facts of one event kind, answered for one payload.
pub trait EventFacts {
    /// The stream it is appended to.
    fn stream(&self) -> Stream<'_>;
    /// Every entity it names, in the order its fields name them, without repeats.
    fn entities(&self) -> Vec<EntityRef<'_>>;
    /// The entity it brings into being (a registration, a raised issue, a started round...).
    fn creates(&self) -> Option<EntityRef<'_>>;
    /// The people it says acted (the checker, the one raising or acting on an issue, the
    /// author...); empty for kinds that name none.
    fn acting(&self) -> Vec<&EntityId>;
    /// The place it belongs to.
    fn place(&self) -> Place<'_>;
    /// Who may ask for it.
    fn access(&self) -> Access;
    /// Whether it may be corrected or retracted.
    fn amendment(&self) -> Amendment;
    /// The event it corrects or retracts, for corrections and retractions.
    fn amends(&self) -> Option<Amends>;
}

/// The ids a field holds: one, none or one (`Option`), or many (`Vec`).
trait Ids {
    fn ids(&self) -> Vec<&EntityId>;
}

impl Ids for EntityId {
    fn ids(&self) -> Vec<&EntityId> {
        vec![self]
    }
}

impl Ids for Option<EntityId> {
    fn ids(&self) -> Vec<&EntityId> {
        self.iter().collect()
    }
}

impl Ids for Vec<EntityId> {
    fn ids(&self) -> Vec<&EntityId> {
        self.iter().collect()
    }
}

/// The places a [`facts!`] line can name.
#[derive(Clone, Copy)]
enum PlaceKind {
    Site,
    Checkpoint,
    Issue,
    Nowhere,
}

fn place<'a>(kind: PlaceKind, ids: Vec<&'a EntityId>) -> Place<'a> {
    match (kind, ids.first()) {
        (PlaceKind::Site, Some(id)) => Place::Site(id),
        (PlaceKind::Checkpoint, Some(id)) => Place::Checkpoint(id),
        (PlaceKind::Issue, Some(id)) => Place::Issue(id),
        (PlaceKind::Site | PlaceKind::Checkpoint | PlaceKind::Issue | PlaceKind::Nowhere, _) => Place::Nowhere,
    }
}

fn push_unique<'a>(refs: &mut Vec<EntityRef<'a>>, kind: EntityKind, ids: Vec<&'a EntityId>) {
    for id in ids {
        let entity = EntityRef { kind, id };
        if !refs.contains(&entity) {
            refs.push(entity);
        }
    }
}

/// The table: one line per kind. Each names fields of the payload (`Kind(field)`), and a
/// field may hold one id, an optional one or a list; `Kind()` names no field.
macro_rules! facts {
    ($(
        $name:ident {
            stream: $stream:ident ( $($stream_field:ident)? ),
            access: $access:ident,
            amendment: $amendment:ident,
            creates: [ $( $created:ident ( $created_field:ident ) )? ],
            place: $place:ident ( $($place_field:ident)? ),
            acting: [ $($acting_field:ident),* ],
            entities: [ $( $entity:ident ( $entity_field:ident ) ),* $(,)? ],
        }
    )+) => {$(
        impl EventFacts for $name {
            fn stream(&self) -> Stream<'_> {
                Stream { kind: StreamKind::$stream, entity: [$(&self.$stream_field)?].into_iter().next() }
            }

            fn entities(&self) -> Vec<EntityRef<'_>> {
                let named: Vec<(EntityKind, Vec<&EntityId>)> =
                    vec![$( (EntityKind::$entity, Ids::ids(&self.$entity_field)) ),*];
                let mut refs = Vec::new();
                for (kind, ids) in named {
                    push_unique(&mut refs, kind, ids);
                }
                refs
            }

            fn creates(&self) -> Option<EntityRef<'_>> {
                [$( EntityRef { kind: EntityKind::$created, id: &self.$created_field } )?].into_iter().next()
            }

            fn acting(&self) -> Vec<&EntityId> {
                let named: Vec<Vec<&EntityId>> = vec![$( Ids::ids(&self.$acting_field) ),*];
                named.into_iter().flatten().collect()
            }

            fn place(&self) -> Place<'_> {
                let ids: Vec<Vec<&EntityId>> = vec![$( Ids::ids(&self.$place_field) )?];
                place(PlaceKind::$place, ids.into_iter().flatten().collect())
            }

            fn access(&self) -> Access {
                Access::$access
            }

            fn amendment(&self) -> Amendment {
                Amendment::$amendment
            }

            fn amends(&self) -> Option<Amends> {
                None
            }
        }
    )+};
}

facts! {
    CommunityRegistered {
        stream: Community(community_id), access: Reference, amendment: Correctable,
        creates: [Community(community_id)], place: Nowhere(), acting: [],
        entities: [Community(community_id)],
    }
    GridRegistered {
        stream: Grid(grid_id), access: Reference, amendment: Correctable,
        creates: [Grid(grid_id)], place: Nowhere(), acting: [],
        entities: [Grid(grid_id), Community(community_id)],
    }
    SiteRegistered {
        stream: Site(site_id), access: Reference, amendment: Correctable,
        creates: [Site(site_id)], place: Site(site_id), acting: [],
        entities: [Site(site_id), Grid(grid_id)],
    }
    CheckpointRegistered {
        stream: Checkpoint(checkpoint_id), access: Reference, amendment: Correctable,
        creates: [Checkpoint(checkpoint_id)], place: Site(site_id), acting: [],
        entities: [Checkpoint(checkpoint_id), Site(site_id)],
    }
    CheckpointClosed {
        stream: Checkpoint(checkpoint_id), access: Operational, amendment: Fixed,
        creates: [], place: Checkpoint(checkpoint_id), acting: [],
        entities: [Checkpoint(checkpoint_id)],
    }
    CheckpointReopened {
        stream: Checkpoint(checkpoint_id), access: Operational, amendment: Fixed,
        creates: [], place: Checkpoint(checkpoint_id), acting: [],
        entities: [Checkpoint(checkpoint_id)],
    }
    StaffRegistered {
        stream: Staff(staff_id), access: Reference, amendment: Correctable,
        creates: [Staff(staff_id)], place: Nowhere(), acting: [],
        entities: [Staff(staff_id), Grid(grid_id)],
    }
    TeamFormed {
        stream: Team(team_id), access: Reference, amendment: Correctable,
        creates: [Team(team_id)], place: Nowhere(), acting: [],
        entities: [Team(team_id), Grid(grid_id), Staff(member_ids)],
    }
    CheckpointScheduleSet {
        stream: Checkpoint(checkpoint_id), access: Operational, amendment: Fixed,
        creates: [], place: Checkpoint(checkpoint_id), acting: [],
        entities: [Checkpoint(checkpoint_id)],
    }
    PatrolCheckRecorded {
        stream: Checkpoint(checkpoint_id), access: Field, amendment: CorrectableOrRetractable,
        creates: [], place: Checkpoint(checkpoint_id), acting: [staff_id],
        entities: [Checkpoint(checkpoint_id), Staff(staff_id), Round(round_id)],
    }
    TrafficTallyRecorded {
        stream: Checkpoint(checkpoint_id), access: Field, amendment: CorrectableOrRetractable,
        creates: [], place: Checkpoint(checkpoint_id), acting: [recorded_by],
        entities: [Checkpoint(checkpoint_id), Staff(recorded_by)],
    }
    InspectionRecorded {
        stream: Site(site_id), access: Field, amendment: CorrectableOrRetractable,
        creates: [Inspection(inspection_id)], place: Site(site_id), acting: [inspector_id],
        entities: [Inspection(inspection_id), Site(site_id), Staff(inspector_id)],
    }
    PatrolRoundItemTicked {
        stream: Round(round_id), access: Operational, amendment: Fixed,
        creates: [], place: Nowhere(), acting: [ticked_by],
        entities: [Round(round_id), ChecklistItem(item_id), Staff(ticked_by)],
    }
    PatrolRoundCompleted {
        stream: Round(round_id), access: Operational, amendment: Fixed,
        creates: [], place: Nowhere(), acting: [completed_by],
        entities: [Round(round_id), Staff(completed_by)],
    }
    GateIssueRaised {
        stream: Issue(issue_id), access: Field, amendment: CorrectableOrRetractable,
        creates: [Issue(issue_id)], place: Checkpoint(checkpoint_id), acting: [raised_by],
        entities: [Issue(issue_id), Checkpoint(checkpoint_id), Staff(raised_by)],
    }
    GateIssueAcknowledged {
        stream: Issue(issue_id), access: Field, amendment: CorrectableOrRetractable,
        creates: [], place: Issue(issue_id), acting: [acknowledged_by],
        entities: [Issue(issue_id), Staff(acknowledged_by)],
    }
    GateIssueAssigned {
        stream: Issue(issue_id), access: Operational, amendment: CorrectableOrRetractable,
        creates: [], place: Issue(issue_id), acting: [assigned_by],
        entities: [Issue(issue_id), Staff(assignee_id), Staff(assigned_by)],
    }
    GateIssueActionTaken {
        stream: Issue(issue_id), access: Field, amendment: CorrectableOrRetractable,
        creates: [], place: Issue(issue_id), acting: [taken_by],
        entities: [Issue(issue_id), Staff(taken_by)],
    }
    GateIssueEscalated {
        stream: Issue(issue_id), access: Operational, amendment: CorrectableOrRetractable,
        creates: [], place: Issue(issue_id), acting: [escalated_by],
        entities: [Issue(issue_id), Staff(escalated_by)],
    }
    GateIssueResolved {
        stream: Issue(issue_id), access: Field, amendment: Fixed,
        creates: [], place: Issue(issue_id), acting: [resolved_by],
        entities: [Issue(issue_id), Staff(resolved_by)],
    }
    GateIssueResolutionVerified {
        stream: Issue(issue_id), access: Operational, amendment: Fixed,
        creates: [], place: Issue(issue_id), acting: [verified_by],
        entities: [Issue(issue_id), Staff(verified_by)],
    }
    GateIssueReopened {
        stream: Issue(issue_id), access: Operational, amendment: Fixed,
        creates: [], place: Issue(issue_id), acting: [reopened_by],
        entities: [Issue(issue_id), Staff(reopened_by)],
    }
    QuarantineReleaseNoticeDelivered {
        stream: Site(site_id), access: Field, amendment: CorrectableOrRetractable,
        creates: [], place: Site(site_id), acting: [delivered_by],
        entities: [Household(household_ref), Site(site_id), Staff(delivered_by)],
    }
    SuppliesDelivered {
        stream: Supplies(delivered_by), access: Operational, amendment: CorrectableOrRetractable,
        creates: [], place: Nowhere(), acting: [delivered_by],
        entities: [Staff(delivered_by)],
    }
    DirectiveReceived {
        stream: Directive(directive_id), access: Operational, amendment: CorrectableOrRetractable,
        creates: [Directive(directive_id)], place: Nowhere(), acting: [],
        entities: [Directive(directive_id)],
    }
    LedgerTaskAssigned {
        stream: Ledger(task_id), access: Operational, amendment: Correctable,
        creates: [LedgerTask(task_id)], place: Nowhere(), acting: [],
        entities: [LedgerTask(task_id), Staff(assignee_id)],
    }
    LedgerTaskCompleted {
        stream: Ledger(task_id), access: Operational, amendment: Fixed,
        creates: [], place: Nowhere(), acting: [completed_by],
        entities: [LedgerTask(task_id), Staff(completed_by)],
    }
    FieldNoteRecorded {
        stream: Notes(author), access: Field, amendment: CorrectableOrRetractable,
        creates: [], place: Site(site_id), acting: [author],
        entities: [Staff(author), Site(site_id)],
    }
    DaySealed {
        stream: Seals(), access: System, amendment: Fixed,
        creates: [], place: Nowhere(), acting: [],
        entities: [],
    }
}

// By hand: the kinds whose facts reach inside nested values.

impl EventFacts for PatrolRoundStarted {
    fn stream(&self) -> Stream<'_> {
        Stream { kind: StreamKind::Round, entity: Some(&self.round_id) }
    }

    fn entities(&self) -> Vec<EntityRef<'_>> {
        let mut refs = Vec::new();
        push_unique(&mut refs, EntityKind::Round, vec![&self.round_id]);
        push_unique(&mut refs, EntityKind::Grid, vec![&self.grid_id]);
        push_unique(&mut refs, EntityKind::Staff, vec![&self.led_by]);
        push_unique(&mut refs, EntityKind::ChecklistItem, self.checklist.iter().map(|item| &item.item_id).collect());
        refs
    }

    fn creates(&self) -> Option<EntityRef<'_>> {
        Some(EntityRef { kind: EntityKind::Round, id: &self.round_id })
    }

    fn acting(&self) -> Vec<&EntityId> {
        vec![&self.led_by]
    }

    fn place(&self) -> Place<'_> {
        Place::Nowhere
    }

    fn access(&self) -> Access {
        Access::Operational
    }

    fn amendment(&self) -> Amendment {
        Amendment::Correctable
    }

    fn amends(&self) -> Option<Amends> {
        None
    }
}

impl EventFacts for EventCorrected {
    fn stream(&self) -> Stream<'_> {
        Stream { kind: StreamKind::Corrections, entity: None }
    }

    /// The corrector, then what the replacement names (the corrected event's entities).
    fn entities(&self) -> Vec<EntityRef<'_>> {
        let mut refs = vec![EntityRef { kind: EntityKind::Staff, id: &self.corrected_by }];
        for entity in self.replacement.facts().entities() {
            push_unique(&mut refs, entity.kind, vec![entity.id]);
        }
        refs
    }

    fn creates(&self) -> Option<EntityRef<'_>> {
        None
    }

    fn acting(&self) -> Vec<&EntityId> {
        vec![&self.corrected_by]
    }

    fn place(&self) -> Place<'_> {
        Place::Nowhere
    }

    fn access(&self) -> Access {
        Access::Operational
    }

    fn amendment(&self) -> Amendment {
        Amendment::Fixed
    }

    fn amends(&self) -> Option<Amends> {
        Some(Amends::Corrects(self.corrected_event_id))
    }
}

impl EventFacts for EventRetracted {
    fn stream(&self) -> Stream<'_> {
        Stream { kind: StreamKind::Corrections, entity: None }
    }

    /// The one who retracts it (the timeline adds the retracted event's entities).
    fn entities(&self) -> Vec<EntityRef<'_>> {
        vec![EntityRef { kind: EntityKind::Staff, id: &self.retracted_by }]
    }

    fn creates(&self) -> Option<EntityRef<'_>> {
        None
    }

    fn acting(&self) -> Vec<&EntityId> {
        vec![&self.retracted_by]
    }

    fn place(&self) -> Place<'_> {
        Place::Nowhere
    }

    fn access(&self) -> Access {
        Access::Operational
    }

    fn amendment(&self) -> Amendment {
        Amendment::Fixed
    }

    fn amends(&self) -> Option<Amends> {
        Some(Amends::Retracts(self.retracted_event_id))
    }
}
