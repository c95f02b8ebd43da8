//! `gridwatch events`: stored envelopes as NDJSON, one per line.

use std::io::{BufWriter, ErrorKind, Write};

use anyhow::anyhow;
use events_schema::{EntityId, RecordedEvent};
use store::READ_PAGE_EVENTS_MAX;

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// The first global position to print.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Only this stream's events.
    #[arg(long)]
    stream: Option<String>,
    /// At most this many events.
    #[arg(long)]
    limit: Option<u64>,
}

pub async fn run(service: &crate::record::CliService, args: &EventsArgs) -> Result<(), Failure> {
    let stream = match &args.stream {
        Some(stream) => {
            Some(EntityId::new(stream.clone()).map_err(|error| Failure::BadInput(anyhow!("--stream: {error}")))?)
        }
        None => None,
    };
    let mut remaining = args.limit.unwrap_or(u64::MAX);
    let mut output = BufWriter::new(std::io::stdout().lock());
    // Where the next page starts: a global position, or a stream version with --stream.
    let mut next = if stream.is_some() { 1 } else { args.from };
    while remaining > 0 {
        let page_size = remaining.min(READ_PAGE_EVENTS_MAX as u64) as usize;
        let page: Vec<RecordedEvent> = match &stream {
            Some(stream) => service.stream_events(stream, next, page_size).await?,
            None => service.events(next, page_size).await?,
        };
        let Some(last) = page.last() else { break };
        next = if stream.is_some() { last.stream_version + 1 } else { last.global_position + 1 };
        for event in page.iter().filter(|event| event.global_position >= args.from) {
            if remaining == 0 {
                break;
            }
            remaining -= 1;
            let written = serde_json::to_writer(&mut output, event)
                .map_err(std::io::Error::from)
                .and_then(|()| output.write_all(b"\n"));
            match written {
                Ok(()) => {}
                // A closed pipe (`gridwatch events | head`) is the reader's choice, not an error.
                Err(error) if error.kind() == ErrorKind::BrokenPipe => return Ok(()),
                Err(error) => return Err(error.into()),
            }
        }
    }
    match output.flush() {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}
