//! Replay of a local day: its events in the order they happened, each with the changes it
//! made to the views, and the full status as of a moment of that day.

use events_schema::{EntityId, RecordedEvent, Timestamp};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use projections::{StatusReport, TimelineEntry, checkpoint_status, local_day, status_at, timeline};
use serde::Serialize;

use crate::Views;

/// One event of the replay and what it changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayStep {
    #[serde(flatten)]
    pub entry: TimelineEntry,
    /// `entity: field: before -> after` for every field of an issue or checkpoint the event
    /// changed, in a stable order.
    pub changes: Vec<String>,
}

/// A day's replay up to a moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Replay {
    pub day: Date,
    /// The local moment the replay stops at (the end of the day when not given).
    pub until: Timestamp,
    pub steps: Vec<ReplayStep>,
    pub status: StatusReport,
}

/// The facts of one entity the replay compares before and after each event.
fn snapshot(views: &Views, entity: &EntityId, at: Timestamp) -> Option<serde_json::Value> {
    if let Some(issue) = views.issues.issue(entity) {
        return serde_json::to_value(issue).ok();
    }
    let checkpoint = checkpoint_status(&views.registry, &views.checkpoints, &views.issues, entity, at)?;
    serde_json::to_value(checkpoint).ok()
}

fn describe(
    entity: &EntityId,
    before: Option<&serde_json::Value>,
    after: &serde_json::Value,
    changes: &mut Vec<String>,
) {
    let Some(after) = after.as_object() else { return };
    let empty = serde_json::Map::new();
    let before = before.and_then(|value| value.as_object()).unwrap_or(&empty);
    if before.is_empty() {
        changes.push(format!("{entity}: appears"));
        return;
    }
    // serde_json's maps are ordered by key: a stable order.
    for (field, value) in after {
        let old = before.get(field).unwrap_or(&serde_json::Value::Null);
        if old != value {
            changes.push(format!("{entity}: {field}: {old} -> {value}"));
        }
    }
}

/// Replays local `day` (in `time_zone`) of `log` (every event, in log order) up to `until`.
pub(crate) fn replay(log: &[RecordedEvent], time_zone: &TimeZone, day: Date, until: Option<Time>) -> Replay {
    let end_of_day = Time::MAX;
    let until_local = until.unwrap_or(end_of_day);
    let until = day
        .to_datetime(until_local)
        .to_zoned_datetime(time_zone.clone())
        .map(|zoned| Timestamp::from_jiff(zoned.timestamp()))
        .unwrap_or_else(|_| Timestamp::from_microsecond(0).expect("epoch"));
    let mut views = Views::new(time_zone.clone());
    // What happened before the day is the state the day starts from.
    for event in log.iter().filter(|event| local_day(event.occurred_at, time_zone) < day) {
        views.apply_to_projections(event);
    }
    let entries = timeline(log, time_zone, day, None);
    let by_position: std::collections::HashMap<u64, &RecordedEvent> =
        log.iter().map(|event| (event.global_position, event)).collect();
    let mut steps = Vec::new();
    for entry in entries.into_iter().filter(|entry| entry.occurred_at <= until) {
        let Some(event) = by_position.get(&entry.global_position) else { continue };
        let before: Vec<_> = entry.entities.iter().map(|id| snapshot(&views, id, entry.occurred_at)).collect();
        views.apply_to_projections(event);
        let mut changes = Vec::new();
        for (entity, before) in entry.entities.iter().zip(&before) {
            if let Some(after) = snapshot(&views, entity, entry.occurred_at) {
                describe(entity, before.as_ref(), &after, &mut changes);
            }
        }
        steps.push(ReplayStep { entry, changes });
    }
    let status = status_at(&views.registry, &views.checkpoints, &views.issues, until, None);
    Replay { day, until, steps, status }
}
