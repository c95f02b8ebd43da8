//! The audit timeline: every event of a local day (or of one entity on that day) with who,
//! when and what, late arrivals marked, and corrections shown next to what they correct.
//!
//! It is computed from the day's events when asked, not kept in memory, so that it can show
//! every event without the views growing with the log.

use std::collections::{HashMap, HashSet};

use events_schema::{Amends, EntityId, Event, RecordedEvent, Timestamp};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::Serialize;
use uuid::Uuid;

/// One event on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub global_position: u64,
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub occurred_at: Timestamp,
    /// `occurred_at` on the local clock.
    #[serde(serialize_with = "crate::timeline::time_text")]
    pub local_time: Time,
    pub recorded_at: Timestamp,
    /// Recorded on a later local day than it happened (a phone that was offline).
    pub late: bool,
    pub actor: EntityId,
    /// Every entity the event names (checkpoints, sites, issues, staff, ...).
    pub entities: Vec<EntityId>,
    /// The event this one corrects or retracts.
    pub amends: Option<Uuid>,
    /// Later events that correct or retract this one.
    pub amended_by: Vec<Uuid>,
    pub retracted: bool,
    /// The event; shown as its payload (`data`).
    #[serde(rename = "data", serialize_with = "events_schema::serialize_event_data")]
    pub event: Event,
}

pub(crate) fn time_text<S: serde::Serializer>(time: &Time, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&time.strftime("%H:%M:%S"))
}

/// The local day of `at` in `time_zone`.
pub fn local_day(at: Timestamp, time_zone: &TimeZone) -> Date {
    at.as_jiff().to_zoned_datetime(time_zone.clone()).date()
}

/// The ids an event names, in the order its fields name them (its kind's facts; ids of
/// other events are not entities).
pub fn entities_of(event: &Event) -> Vec<EntityId> {
    event.facts().entities().into_iter().map(|entity| entity.id.clone()).collect()
}

/// What the audit timeline needs to know about the whole log, folded as events arrive so
/// that a day's timeline reads only that day: which entities any event has named, and which
/// later events amend each event. It grows with the entities and the amendments, not with
/// the events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct AuditIndex {
    named: HashSet<EntityId>,
    /// Event id -> the corrections (`false`) and retractions (`true`) of it, with when each
    /// was recorded, in log order.
    amended_by: HashMap<Uuid, Vec<(Uuid, bool, Timestamp)>>,
}

impl AuditIndex {
    /// Folds one recorded event in (in log order).
    pub fn apply(&mut self, event: &RecordedEvent) {
        self.named.extend(event.event.facts().entities().into_iter().map(|entity| entity.id.clone()));
        match event.event.facts().amends() {
            Some(Amends::Corrects(target)) => {
                self.amended_by.entry(target).or_default().push((event.event_id, false, event.recorded_at))
            }
            Some(Amends::Retracts(target)) => {
                self.amended_by.entry(target).or_default().push((event.event_id, true, event.recorded_at))
            }
            None => {}
        }
    }

    /// Whether any event of the log names `entity`.
    pub fn names(&self, entity: &EntityId) -> bool {
        self.named.contains(entity)
    }

    /// The ids of the corrections and retractions of `event_id`, in log order.
    pub fn amendments(&self, event_id: Uuid) -> impl Iterator<Item = Uuid> + '_ {
        self.amendments_of(event_id).iter().map(|(id, _, _)| *id)
    }

    fn amendments_of(&self, event_id: Uuid) -> &[(Uuid, bool, Timestamp)] {
        self.amended_by.get(&event_id).map_or(&[], Vec::as_slice)
    }
}

/// The timeline of local `day` from `events` (any superset of the day's events, in log
/// order), everything it needs to know taken from `events` themselves.
pub fn timeline(
    events: &[RecordedEvent],
    time_zone: &TimeZone,
    day: Date,
    entity: Option<&EntityId>,
) -> Vec<TimelineEntry> {
    let mut audit = AuditIndex::default();
    for event in events {
        audit.apply(event);
    }
    let by_id: HashMap<Uuid, &Event> = events.iter().map(|event| (event.event_id, &event.event)).collect();
    day_timeline(events, &audit, |event_id| by_id.get(&event_id).copied(), time_zone, day, entity, None)
}

/// The timeline of local `day` from `day_events` (the day's events, or a superset, in any
/// order), `audit` (folded over the whole log) and `target` (the event an amendment of the
/// day names): the day's events ordered by when they happened, then by position; only those
/// naming `entity` when it is given. With `known_at`, amendments recorded later than that are
/// left out of `amended_by` (the caller leaves such events out of `day_events`).
pub fn day_timeline<'a, 'e>(
    day_events: impl IntoIterator<Item = &'e RecordedEvent>,
    audit: &AuditIndex,
    target: impl Fn(Uuid) -> Option<&'a Event>,
    time_zone: &TimeZone,
    day: Date,
    entity: Option<&EntityId>,
    known_at: Option<Timestamp>,
) -> Vec<TimelineEntry> {
    let day_events = day_events.into_iter();
    let mut entries: Vec<TimelineEntry> = Vec::with_capacity(day_events.size_hint().0);
    entries.extend(day_events.filter(|event| local_day(event.occurred_at, time_zone) == day).filter_map(|event| {
        let mut entities = entities_of(&event.event);
        let amends = event.event.facts().amends().map(Amends::event_id);
        if let Some(original) = amends.and_then(&target) {
            // A correction belongs to the entities of what it corrects, too.
            for id in entities_of(original) {
                if !entities.contains(&id) {
                    entities.push(id);
                }
            }
        }
        if entity.is_some_and(|entity| !entities.contains(entity)) {
            return None;
        }
        let amended: Vec<(Uuid, bool)> = audit
            .amendments_of(event.event_id)
            .iter()
            .filter(|(_, _, recorded_at)| known_at.is_none_or(|known_at| *recorded_at <= known_at))
            .map(|(id, retraction, _)| (*id, *retraction))
            .collect();
        let local = event.occurred_at.as_jiff().to_zoned_datetime(time_zone.clone());
        Some(TimelineEntry {
            global_position: event.global_position,
            event_id: event.event_id,
            event_type: event.event.event_type(),
            occurred_at: event.occurred_at,
            local_time: local.time(),
            recorded_at: event.recorded_at,
            late: local_day(event.recorded_at, time_zone) > day,
            actor: event.actor.clone(),
            entities,
            amends,
            retracted: amended.iter().any(|(_, retraction)| *retraction),
            amended_by: amended.iter().map(|(id, _)| *id).collect(),
            event: event.event.clone(),
        })
    }));
    entries.sort_by_key(|entry| (entry.occurred_at, entry.global_position));
    entries
}

/// The first moment of local `day` and of the day after it in `time_zone`, as timestamps:
/// the period whose events are that day's (`from..until`).
pub fn day_bounds(day: Date, time_zone: &TimeZone) -> Option<(Timestamp, Timestamp)> {
    let start = |date: Date| {
        date.to_datetime(Time::MIN)
            .to_zoned_datetime(time_zone.clone())
            .ok()
            .map(|zoned| Timestamp::from_jiff(zoned.timestamp()))
    };
    Some((start(day)?, start(day.tomorrow().ok()?)?))
}
