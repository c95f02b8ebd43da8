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
    /// Whether it may be corrected or retracted (its kind's fact).
    pub amendment: Amendment,
    /// The entity it brought into being, if any (a correction of it names that entity again).
    pub created: Option<EntityId>,
    /// The stream it was recorded in: a replacement must belong to the same entity.
    pub stream_id: EntityId,
}

impl TargetEvent {
    /// What the rules need of `event`, recorded in `stream_id`.
    pub fn of(event_id: uuid::Uuid, event: &Event, stream_id: EntityId) -> TargetEvent {
        let facts = event.facts();
        TargetEvent {
            event_id,
            event_type: event.event_type(),
            amendment: facts.amendment(),
            created: facts.creates().map(|created| created.id.clone()),
            stream_id,
        }
    }
}

/// Builds the `Command` enum from the catalogue's list (`events_schema::event_catalogue!`):
/// one command per event kind, carrying that kind's payload.
macro_rules! commands {
    ($( $event:ident = $version:literal => $command:ident ),+ $(,)?) => {
        /// Something a person (or the system, for day seals) asks to do. In JSON:
        /// `{"command": "raise-issue", "data": {...}}`, `data` being the payload of its event;
        /// the command's name is its variant in kebab case.
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(tag = "command", content = "data", rename_all = "kebab-case", deny_unknown_fields)]
        pub enum Command {
            $( $command($event), )+
        }

        $(
            impl From<$event> for Command {
                fn from(payload: $event) -> Command {
                    Command::$command(payload)
                }
            }
        )+

        impl Command {
            /// The command that records `event`.
            pub fn recording(event: Event) -> Command {
                match event {
                    $( Event::$event(payload) => Command::$command(payload), )+
                }
            }

            /// The event this command records once its rules hold.
            pub fn event(&self) -> Event {
                match self {
                    $( Command::$command(payload) => Event::$event(payload.clone()), )+
                }
            }

            /// What the command's event kind means (see [`events_schema::EventFacts`]).
            pub fn facts(&self) -> &dyn EventFacts {
                match self {
                    $( Command::$command(payload) => payload, )+
                }
            }
        }
    };
}

events_schema::event_catalogue!(commands);

impl Command {
    /// The stream its events are appended to: one per entity (`checkpoint:gate-1`,
    /// `issue:courier-0220`), so that concurrent commands on different entities never
    /// conflict and those on the same entity are ordered by its stream version.
    pub fn stream_id(&self) -> Result<EntityId, InvalidEntityId> {
        self.facts().stream().id()
    }
}
