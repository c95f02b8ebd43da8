//! gridwatch's commands and their rules.
//!
//! `decide(&state, &command, &context)` turns one thing a person does into the events that
//! record it, or a typed [`DomainError`] saying why it cannot be done. It is pure: no I/O,
//! no clock (the current time comes in through [`Context`]), no threads. [`State`] is what
//! the rules need to know, folded from the log with [`State::apply`].

mod command;
mod decide;
mod state;

pub use command::{Command, Context, TargetEvent};
pub use decide::{DomainError, RefusalClass, decide, events_of};
pub use state::{IssueStatus, State};
