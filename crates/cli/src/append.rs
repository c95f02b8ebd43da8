//! `gridwatch append`: NDJSON events from stdin, appended to one stream as one
//! all-or-nothing append.

use std::io::Read;

use anyhow::anyhow;
use events_schema::{EntityId, EventLine, Timestamp};
use store::{EventStore, ExpectedVersion, Rejection};

use crate::{Cli, Failure, open_store};

#[derive(Debug, clap::Args)]
pub struct AppendArgs {
    /// The stream to append to.
    #[arg(long)]
    stream: String,
    /// `any`, `none` (the stream must not exist) or N (the stream's last version).
    #[arg(long, default_value = "any", value_parser = parse_expected_version)]
    expected_version: ExpectedVersion,
    /// The actor of lines that name none.
    #[arg(long, default_value = "cli")]
    actor: String,
}

pub fn parse_expected_version(text: &str) -> Result<ExpectedVersion, String> {
    match text {
        "any" => Ok(ExpectedVersion::Any),
        "none" | "no-stream" => Ok(ExpectedVersion::NoStream),
        number => number
            .parse()
            .map(ExpectedVersion::Exact)
            .map_err(|_| format!("{number:?} is not `any`, `none` or a stream version")),
    }
}

/// Parses NDJSON lines (blank lines are skipped); the first bad line is the error.
pub fn parse_lines(input: &str, actor: &EntityId) -> Result<Vec<events_schema::NewEvent>, anyhow::Error> {
    let now = Timestamp::now();
    let mut events = Vec::new();
    for (index, line) in input.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: EventLine = serde_json::from_str(line).map_err(|error| anyhow!("line {}: {error}", index + 1))?;
        let event = parsed
            .into_new_event(actor, now, uuid::Uuid::now_v7)
            .map_err(|error| anyhow!("line {}: {error}", index + 1))?;
        events.push(event);
    }
    if events.is_empty() {
        return Err(anyhow!("no events on stdin"));
    }
    Ok(events)
}

pub async fn run(cli: &Cli, args: &AppendArgs) -> Result<(), Failure> {
    let stream = EntityId::new(args.stream.clone()).map_err(|error| Failure::BadInput(anyhow!("--stream: {error}")))?;
    let actor = EntityId::new(args.actor.clone()).map_err(|error| Failure::BadInput(anyhow!("--actor: {error}")))?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|error| Failure::BadInput(anyhow!("stdin is not UTF-8 text: {error}")))?;
    let events = parse_lines(&input, &actor).map_err(Failure::BadInput)?;
    // The store is opened only once the input is known to be good: bad input touches nothing.
    let store = open_store(cli)?;
    match store.append(&stream, args.expected_version, events).await? {
        Ok(committed) => {
            let output = serde_json::json!({
                "stream_id": stream.as_str(),
                "deduplicated": committed.deduplicated,
                "events": committed.events,
            });
            println!("{output}");
            Ok(())
        }
        Err(rejection @ Rejection::Invalid(_)) => Err(Failure::BadInput(rejection.into())),
        Err(rejection) => Err(Failure::Conflict(rejection.into())),
    }
}
