//! `gridwatch stress-append` (hidden): appends forever from several tasks and prints one
//! JSON line per acknowledged append. The crash test kills it at random moments and checks
//! that every printed acknowledgement survived.

use events_schema::{EntityId, Event, FieldNoteRecorded, NewEvent, Timestamp};
use std::io::Write;
use store::ExpectedVersion;
use uuid::Uuid;

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct StressArgs {
    /// Concurrent appending tasks.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

fn id(text: String) -> EntityId {
    EntityId::new(text).expect("generated ids are valid")
}

pub async fn run(service: crate::record::CliService, args: &StressArgs) -> Result<(), Failure> {
    let service = std::sync::Arc::new(service);
    let (acks, mut printed) = tokio::sync::mpsc::unbounded_channel::<String>();
    for task in 0..args.concurrency.max(1) {
        let service = service.clone();
        let acks = acks.clone();
        tokio::spawn(async move {
            for round in 0u64.. {
                let size = 1 + (round as usize + task) % 5;
                let correlation_id = Uuid::now_v7();
                let events: Vec<NewEvent> = (0..size)
                    .map(|part| NewEvent {
                        event_id: Uuid::now_v7(),
                        occurred_at: Timestamp::now(),
                        actor: id("stress".into()),
                        correlation_id: Some(correlation_id),
                        causation_id: None,
                        event: Event::FieldNoteRecorded(FieldNoteRecorded {
                            author: id(format!("task-{task}")),
                            text: format!("part {} of {size}", part + 1),
                            site_id: None,
                            weather: None,
                        }),
                    })
                    .collect();
                let stream = id(format!("stress-{}", (round as usize + task) % 7));
                match service.append_raw(&stream, ExpectedVersion::Any, events).await {
                    Ok(Ok(committed)) => {
                        let line = serde_json::json!({"correlation_id": correlation_id, "size": size, "events": committed.events});
                        if acks.send(line.to_string()).is_err() {
                            return;
                        }
                    }
                    other => panic!("stress append failed: {other:?}"),
                }
            }
        });
    }
    drop(acks);
    let mut stdout = std::io::stdout();
    while let Some(line) = printed.recv().await {
        // One write per line, flushed at once: a kill leaves at most the last line torn.
        stdout.write_all(format!("{line}\n").as_bytes())?;
        stdout.flush()?;
    }
    Ok(())
}
