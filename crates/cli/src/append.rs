//! `gridwatch append`: NDJSON events from stdin, appended to one stream as one
//! all-or-nothing append.

use std::io::Read;

use anyhow::anyhow;
use events_schema::{EntityId, Timestamp};
use store::ExpectedVersion;

use crate::{Cli, Failure};

#[derive(Debug, clap::Args)]
pub struct AppendArgs {
    /// The stream to append to.
    #[arg(long)]
    stream: String,
    /// `any`, `none` (the stream must not exist) or N (the stream's last version).
    #[arg(long, default_value = "any")]
    expected_version: ExpectedVersion,
    /// The actor of lines that name none.
    #[arg(long, default_value = "cli")]
    actor: String,
}

pub async fn run(cli: &Cli, args: &AppendArgs) -> Result<(), Failure> {
    let stream = EntityId::new(args.stream.clone()).map_err(|error| Failure::BadInput(anyhow!("--stream: {error}")))?;
    let actor = EntityId::new(args.actor.clone()).map_err(|error| Failure::BadInput(anyhow!("--actor: {error}")))?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|error| Failure::BadInput(anyhow!("stdin is not UTF-8 text: {error}")))?;
    let events = events_schema::parse_event_lines(&input, &actor, Timestamp::now())
        .map_err(|error| Failure::BadInput(anyhow!("stdin: {error}")))?;
    // The store is opened only once the input is known to be good: bad input touches nothing.
    let service = crate::record::open_log(cli)?;
    match service.append_raw(&stream, args.expected_version, events).await? {
        Ok(committed) => {
            let output = serde_json::json!({
                "stream_id": stream.as_str(),
                "deduplicated": committed.deduplicated,
                "events": committed.events,
            });
            println!("{output}");
            Ok(())
        }
        Err(rejection) => Err(Failure::classed(service::ErrorClass::of_rejection(&rejection), rejection.into())),
    }
}
