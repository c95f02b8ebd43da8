//! The audit timeline: every event of a local day (or of one entity on that day) with who,
//! when and what, late arrivals marked, and corrections shown next to what they correct.
//!
//! It is computed from the day's events when asked, not kept in memory, so that it can show
//! every event without the views growing with the log.

use std::collections::BTreeMap;

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

/// The timeline of local `day` from `events` (any superset of the day's events, in log
/// order): the day's events ordered by when they happened, then by position; only those
/// naming `entity` when it is given.
pub fn timeline(
    events: &[RecordedEvent],
    time_zone: &TimeZone,
    day: Date,
    entity: Option<&EntityId>,
) -> Vec<TimelineEntry> {
    let mut amendments: BTreeMap<Uuid, Vec<(Uuid, bool)>> = BTreeMap::new();
    for event in events {
        match event.event.facts().amends() {
            Some(Amends::Corrects(target)) => amendments.entry(target).or_default().push((event.event_id, false)),
            Some(Amends::Retracts(target)) => amendments.entry(target).or_default().push((event.event_id, true)),
            None => {}
        }
    }
    let mut entries: Vec<TimelineEntry> = events
        .iter()
        .filter(|event| local_day(event.occurred_at, time_zone) == day)
        .filter_map(|event| {
            let mut entities = entities_of(&event.event);
            let amends = event.event.facts().amends().map(Amends::event_id);
            if let Some(target) = amends {
                // A correction belongs to the entities of what it corrects, too.
                if let Some(original) = events.iter().find(|other| other.event_id == target) {
                    for id in entities_of(&original.event) {
                        if !entities.contains(&id) {
                            entities.push(id);
                        }
                    }
                }
            }
            if entity.is_some_and(|entity| !entities.contains(entity)) {
                return None;
            }
            let amended = amendments.get(&event.event_id).cloned().unwrap_or_default();
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
                amended_by: amended.into_iter().map(|(id, _)| id).collect(),
                event: event.event.clone(),
            })
        })
        .collect();
    entries.sort_by_key(|entry| (entry.occurred_at, entry.global_position));
    entries
}
