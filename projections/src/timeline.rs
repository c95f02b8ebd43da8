//! The audit timeline: every event of a local day (or of one entity on that day) with who,
//! when and what, late arrivals marked, and corrections shown next to what they correct.
//!
//! It is computed from the day's events when asked, not kept in memory, so that it can show
//! every event without the views growing with the log.

use std::collections::BTreeMap;

use events_schema::{EntityId, Event, RecordedEvent, Timestamp};
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
    pub data: serde_json::Value,
}

pub(crate) fn time_text<S: serde::Serializer>(time: &Time, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&time.strftime("%H:%M:%S"))
}

/// The local day of `at` in `time_zone`.
pub fn local_day(at: Timestamp, time_zone: &TimeZone) -> Date {
    at.as_jiff().to_zoned_datetime(time_zone.clone()).date()
}

/// The ids an event names, in the order its fields name them.
pub fn entities_of(event: &Event) -> Vec<EntityId> {
    let value = serde_json::to_value(event).unwrap_or_default();
    entities_in(&value["data"])
}

/// The ids named in an event's JSON `data`.
fn entities_in(data: &serde_json::Value) -> Vec<EntityId> {
    let mut ids = Vec::new();
    collect_ids(data, &mut ids);
    ids
}

/// Fields that hold entity ids end in `_id`, `_by` or `_ref`, or are `author`; lists of
/// them (`member_ids`, `delivered_by`) too. Fields naming other events (`*event_id`) do not.
fn collect_ids(value: &serde_json::Value, ids: &mut Vec<EntityId>) {
    let Some(object) = value.as_object() else { return };
    for (key, field) in object {
        let names_an_entity = !key.ends_with("event_id")
            && (key.ends_with("_id")
                || key.ends_with("_ids")
                || key.ends_with("_by")
                || key.ends_with("_ref")
                || key == "author");
        let candidates: Vec<&serde_json::Value> = match field {
            serde_json::Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for candidate in candidates {
            if names_an_entity {
                if let Some(id) = candidate.as_str().and_then(|text| EntityId::new(text).ok()) {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
            if candidate.is_object() {
                collect_ids(candidate, ids);
            }
        }
    }
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
        match &event.event {
            Event::EventCorrected(e) => {
                amendments.entry(e.corrected_event_id).or_default().push((event.event_id, false))
            }
            Event::EventRetracted(e) => {
                amendments.entry(e.retracted_event_id).or_default().push((event.event_id, true))
            }
            _ => {}
        }
    }
    let mut entries: Vec<TimelineEntry> = events
        .iter()
        .filter(|event| local_day(event.occurred_at, time_zone) == day)
        .filter_map(|event| {
            let mut json = serde_json::to_value(&event.event).unwrap_or_default();
            let data = json.get_mut("data").map(serde_json::Value::take).unwrap_or_default();
            let mut entities = entities_in(&data);
            let amends = match &event.event {
                Event::EventCorrected(e) => Some(e.corrected_event_id),
                Event::EventRetracted(e) => Some(e.retracted_event_id),
                _ => None,
            };
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
                data,
            })
        })
        .collect();
    entries.sort_by_key(|entry| (entry.occurred_at, entry.global_position));
    entries
}
