//! Replay of a local day: its events in the order they happened, each with the changes it
//! made to the views, and the full status as of a moment of that day.

use std::collections::HashMap;

use events_schema::{EntityId, EntityKind, Event, Timestamp};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use projections::{StatusReport, TimelineEntry, checkpoint_status};
use serde::Serialize;

use crate::days::{DayStep, ReadViews};

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

/// The facts of `entity` at `at`: looked up only among the issues or the checkpoints when the
/// event names it as one (most entities of a check are a checkpoint and a person, and each
/// miss is a search of a map keyed by strings), in both otherwise.
fn snapshot(views: &ReadViews, entity: &EntityId, kind: Option<EntityKind>, at: Timestamp) -> Option<Snapshot> {
    let issue = || views.issues.issue(entity).map(Snapshot::Issue);
    let checkpoint =
        || checkpoint_status(&views.registry, &views.checkpoints, &views.issues, entity, at).map(Snapshot::Checkpoint);
    match kind {
        Some(EntityKind::Issue) => issue(),
        Some(EntityKind::Checkpoint) => checkpoint(),
        Some(_) => None,
        None => issue().or_else(checkpoint),
    }
}

/// The kind `step`'s event (or the event it amends) names `entity` as, if it does.
fn kind_in(step: &DayStep, entity: &EntityId) -> Option<EntityKind> {
    let named =
        |event: &Event| event.facts().entities().into_iter().find(|named| named.id == entity).map(|named| named.kind);
    named(&step.event.event).or_else(|| step.target.as_ref().and_then(|target| named(&target.event)))
}

/// Appends `entity: field: before -> after` for each listed field that differs (fields in
/// alphabetical order, values as JSON).
macro_rules! changed_fields {
    ($changes:ident, $entity:ident, $before:ident, $after:ident; $($field:ident),+ $(,)?) => {
        $(
            if $before.$field != $after.$field {
                $changes.push(change_line($entity, stringify!($field), &$before.$field, &$after.$field));
            }
        )+
    };
}

/// `entity: field: before -> after`, the values as JSON, written into one buffer.
fn change_line<T: Serialize>(entity: &EntityId, field: &str, before: &T, after: &T) -> String {
    let mut line = Vec::with_capacity(entity.as_str().len() + field.len() + 64);
    line.extend_from_slice(entity.as_str().as_bytes());
    line.extend_from_slice(b": ");
    line.extend_from_slice(field.as_bytes());
    line.extend_from_slice(b": ");
    // Plain view fields with derived `Serialize`: a failure is a bug.
    serde_json::to_writer(&mut line, before).expect("a view's field serializes");
    line.extend_from_slice(b" -> ");
    serde_json::to_writer(&mut line, after).expect("a view's field serializes");
    String::from_utf8(line).expect("ids and JSON are UTF-8")
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

/// The moment local `until` of `day` is in `time_zone` (the day's last microsecond when
/// `None`).
pub(crate) fn until_moment(day: Date, until: Option<Time>, time_zone: &TimeZone) -> Timestamp {
    day.to_datetime(until.unwrap_or(Time::MAX))
        .to_zoned_datetime(time_zone.clone())
        .map(|zoned| Timestamp::from_jiff(zoned.timestamp()))
        .unwrap_or_else(|_| Timestamp::from_microsecond(0).expect("epoch"))
}

/// Replays local `day` up to `until`: `views` are those of everything before the day, `steps`
/// the day's events and `entries` their timeline (the entries the query looks at). Each
/// correction or retraction is applied right after what it amends (the day as known now), so
/// its own entry changes nothing.
pub(crate) fn replay(
    mut views: ReadViews,
    steps: &[DayStep],
    entries: Vec<TimelineEntry>,
    day: Date,
    until: Timestamp,
) -> Replay {
    let by_position: HashMap<u64, &DayStep> = steps.iter().map(|step| (step.event.global_position, step)).collect();
    let mut replayed = Vec::with_capacity(entries.len());
    for entry in entries.into_iter().filter(|entry| entry.occurred_at <= until) {
        let Some(step) = by_position.get(&entry.global_position) else { continue };
        let kinds: Vec<_> = entry.entities.iter().map(|id| kind_in(step, id)).collect();
        let before: Vec<_> = entry
            .entities
            .iter()
            .zip(&kinds)
            .map(|(id, kind)| snapshot(&views, id, *kind, entry.occurred_at))
            .collect();
        step.apply_to(&mut views);
        let mut changes = Vec::new();
        for ((entity, kind), before) in entry.entities.iter().zip(&kinds).zip(&before) {
            if let Some(after) = snapshot(&views, entity, *kind, entry.occurred_at) {
                describe(entity, before.as_ref(), &after, &mut changes);
            }
        }
        replayed.push(ReplayStep { entry, changes });
    }
    let status = views.status(until, None);
    Replay { day, until, steps: replayed, status }
}
