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
#[derive(Clone, Debug, PartialEq)]
enum Snapshot {
    Issue(projections::IssueRecord),
    Checkpoint(projections::CheckpointStatus),
}

fn snapshot(views: &Views, entity: &EntityId, at: Timestamp) -> Option<Snapshot> {
    if let Some(issue) = views.issues.issue(entity) {
        return Some(Snapshot::Issue(issue));
    }
    checkpoint_status(&views.registry, &views.checkpoints, &views.issues, entity, at).map(Snapshot::Checkpoint)
}

/// Appends `entity: field: before -> after` for each listed field that differs (fields in
/// alphabetical order, values as JSON).
macro_rules! changed_fields {
    ($changes:ident, $entity:ident, $before:ident, $after:ident; $($field:ident),+ $(,)?) => {
        $(
            if $before.$field != $after.$field {
                $changes.push(format!(
                    "{}: {}: {} -> {}",
                    $entity,
                    stringify!($field),
                    // Plain view fields with derived `Serialize`: a failure is a bug.
                    serde_json::to_string(&$before.$field).expect("a view's field serializes"),
                    serde_json::to_string(&$after.$field).expect("a view's field serializes"),
                ));
            }
        )+
    };
}

fn describe(entity: &EntityId, before: Option<&Snapshot>, after: &Snapshot, changes: &mut Vec<String>) {
    match (before, after) {
        (Some(Snapshot::Checkpoint(before)), Snapshot::Checkpoint(after)) => {
            changed_fields!(changes, entity, before, after;
                last_check, name, oldest_open_issue_minutes, open, open_issues, overdue, site_id,
                tallies_today, worst_open_severity);
        }
        (Some(Snapshot::Issue(before)), Snapshot::Issue(after)) => {
            changed_fields!(changes, entity, before, after;
                actions, assignee_id, category, checkpoint_id, escalated_to, first_action_at, raised_at,
                raised_by, reopened, resolution, resolved_at, severity, state, summary, verified_at);
        }
        _ => changes.push(format!("{entity}: appears")),
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
    // Corrections and retractions made after the day, by the event they amend: the replay
    // shows the day as it is known now, so each is applied right after what it amends.
    let mut later_amendments: std::collections::HashMap<uuid::Uuid, Vec<&RecordedEvent>> =
        std::collections::HashMap::new();
    for event in log.iter().filter(|event| local_day(event.occurred_at, time_zone) > day) {
        if let Some(amends) = event.event.facts().amends() {
            later_amendments.entry(amends.event_id()).or_default().push(event);
        }
    }
    let apply_with_later_amendments = |views: &mut Views, event: &RecordedEvent| {
        views.apply_to_projections(event);
        for amendment in later_amendments.get(&event.event_id).into_iter().flatten() {
            views.apply_to_projections(amendment);
        }
    };
    // What happened before the day is the state the day starts from.
    for event in log.iter().filter(|event| local_day(event.occurred_at, time_zone) < day) {
        apply_with_later_amendments(&mut views, event);
    }
    let entries = timeline(log, time_zone, day, None);
    let by_position: std::collections::HashMap<u64, &RecordedEvent> =
        log.iter().map(|event| (event.global_position, event)).collect();
    let mut steps = Vec::new();
    for entry in entries.into_iter().filter(|entry| entry.occurred_at <= until) {
        let Some(event) = by_position.get(&entry.global_position) else { continue };
        let before: Vec<_> = entry.entities.iter().map(|id| snapshot(&views, id, entry.occurred_at)).collect();
        apply_with_later_amendments(&mut views, event);
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
