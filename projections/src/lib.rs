//! Pure folds from the log to read models: who and where things are ([`Registry`]), where
//! every gate issue stands ([`IssueBoard`]), and every checkpoint's live status
//! ([`CheckpointBoard`], queried with [`status_at`]).
//!
//! No I/O, no clock, no threads: each view is fed `RecordedEvent`s in log order through
//! `apply`, and every question about time takes the time as an argument, so the same
//! events always give the same answers. Corrections and retractions change the views as
//! users expect: a corrected fact replaces the original; a retracted one no longer counts.
//! Memory grows with the number of entities (checkpoints, issues, days), not of events.
//! Counts use saturating arithmetic: a figure that reached its type's maximum stays there
//! instead of wrapping or stopping the fold (a `u32` of checks is years of gate duty).

mod issues;
mod registry;
mod report;
/// The words of reports and pages, in each language: categories, states, severities...
pub mod words {
    pub use crate::report::{category, severity, state, t, target, weather};
}
mod status;
mod summary;
mod timeline;

pub use issues::{IssueBoard, IssueRecord, IssueState};
pub use registry::Registry;
pub use report::{Format, Lang, RenderError, render};
pub use status::{
    BoardState, CheckRecord, CheckpointBoard, CheckpointStatus, Rollup, StatusReport, TallyTotals, checkpoint_status,
    status_at,
};
pub use summary::{
    CheckCoverage, DaySealLine, FieldNote, Gap, IssueLine, Period, PeriodEvent, Summary, SupplyDelivery, summary,
};
pub use timeline::{AuditIndex, TimelineEntry, day_bounds, day_timeline, entities_of, local_day, timeline};

/// The time zone of the built-in profile; local days are counted in it.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";
