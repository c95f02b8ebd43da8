//! `gridwatch record`, `status` and `replay`: commands through the domain rules, the live
//! status board, and the audit replay of a day.

use std::io::Read;

use anyhow::anyhow;
use domain::Command;
use events_schema::{EntityId, Timestamp};
use service::{CommandMeta, Service};
use store::DynStore;
use uuid::Uuid;

use crate::{Cli, Failure};

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The command, e.g. `raise-issue`. Without it, stdin holds the whole command as
    /// `{"command": "raise-issue", "data": {...}}`.
    command: Option<String>,
    /// A field of the command's data as `name=value` (the value is JSON when it parses as
    /// JSON, text otherwise). Without any, stdin holds the data as a JSON object.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    fields: Vec<String>,
    /// The id of the event to record (UUIDv7): give it to make a retry safe.
    #[arg(long)]
    event_id: Option<Uuid>,
    /// When it happened (RFC 3339); now when not given.
    #[arg(long)]
    occurred_at: Option<Timestamp>,
    /// Who does it.
    #[arg(long, default_value = "cli")]
    actor: String,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    times: TimesArgs,
    /// Only this site's checkpoints.
    #[arg(long)]
    site: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The local day, YYYY-MM-DD.
    #[arg(long)]
    day: jiff::civil::Date,
    /// Stop at this local time, HH:MM (the end of the day when not given).
    #[arg(long)]
    until: Option<jiff::civil::Time>,
    #[command(flatten)]
    times: TimesArgs,
}

/// The two times a query can be asked at, by name (see `gridwatch status`).
#[derive(Debug, clap::Args)]
pub struct TimesArgs {
    /// Field time (RFC 3339): only what had happened by then, as known now.
    #[arg(long)]
    as_of: Option<Timestamp>,
    /// Log time (RFC 3339): only what the log held then.
    #[arg(long)]
    known_at: Option<Timestamp>,
}

impl TimesArgs {
    fn times(&self) -> service::Times {
        service::Times { as_of: self.as_of, known_at: self.known_at }
    }
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The first local day, YYYY-MM-DD.
    #[arg(long)]
    day: jiff::civil::Date,
    /// The last local day (the same as --day when not given).
    #[arg(long)]
    to: Option<jiff::civil::Date>,
    /// Only this site.
    #[arg(long)]
    site: Option<String>,
    /// The output format.
    #[arg(long, value_enum, default_value_t = projections::Format::Markdown)]
    format: projections::Format,
    /// The language of the report's words.
    #[arg(long, value_enum, default_value_t = projections::Lang::Zh)]
    lang: projections::Lang,
    #[command(flatten)]
    times: TimesArgs,
}

fn bad_input(error: impl std::fmt::Display) -> Failure {
    Failure::BadInput(anyhow!("{error}"))
}

/// Builds the command from the arguments and stdin.
fn parse_command(args: &RecordArgs) -> Result<Command, Failure> {
    let json = match &args.command {
        None => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).map_err(bad_input)?;
            serde_json::from_str::<serde_json::Value>(&input).map_err(|error| bad_input(format!("stdin: {error}")))?
        }
        Some(name) if args.fields.is_empty() => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).map_err(bad_input)?;
            let data: serde_json::Value =
                serde_json::from_str(&input).map_err(|error| bad_input(format!("stdin: {error}")))?;
            serde_json::json!({ "command": name, "data": data })
        }
        Some(name) => {
            let mut data = serde_json::Map::new();
            for field in &args.fields {
                let (key, value) =
                    field.split_once('=').ok_or_else(|| bad_input(format!("--set {field:?}: expected NAME=VALUE")))?;
                let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
                data.insert(key.to_owned(), value);
            }
            serde_json::json!({ "command": name, "data": data })
        }
    };
    serde_json::from_value(json).map_err(|error| bad_input(format!("not a valid command: {error}")))
}

fn time_zone(cli: &Cli) -> Result<jiff::tz::TimeZone, Failure> {
    jiff::tz::TimeZone::get(&cli.time_zone)
        .map_err(|error| bad_input(format!("--time-zone {}: {error}", cli.time_zone)))
}

/// The service over whichever backend `--store` names.
pub(crate) type CliService = Service<DynStore>;

/// The service over the store in `--data`, its views starting from the snapshot kept there.
pub(crate) async fn open_service(cli: &Cli) -> Result<CliService, Failure> {
    let zone = time_zone(cli)?;
    Ok(Service::open_with_snapshot(crate::backend::open(cli)?, zone, cli.data.join("views.snapshot")).await?)
}

/// The service for commands that only read or append the raw log: its views are not folded
/// unless something asks for one, so paging or importing costs what it reads or writes.
pub(crate) fn open_log(cli: &Cli) -> Result<CliService, Failure> {
    Ok(Service::open_lazily(crate::backend::open(cli)?, time_zone(cli)?))
}

pub async fn record(cli: &Cli, args: &RecordArgs) -> Result<(), Failure> {
    let command = parse_command(args)?;
    let actor = EntityId::new(&args.actor).map_err(|error| bad_input(format!("--actor: {error}")))?;
    time_zone(cli)?;
    let meta = CommandMeta {
        event_id: args.event_id,
        occurred_at: args.occurred_at,
        actor,
        correlation_id: None,
        expected_version: None,
    };
    let service = open_service(cli).await?;
    match service.execute(&command, &meta, Timestamp::now()).await {
        Ok(committed) => {
            // The event is in the log: a snapshot that cannot be saved is only a slower start.
            if let Err(error) = service.save_snapshot().await {
                tracing::warn!(%error, "saving the views' snapshot failed");
            }
            let stream_id = command.stream_id().map_err(bad_input)?;
            let output = serde_json::json!({
                "stream_id": stream_id.as_str(),
                "deduplicated": committed.deduplicated,
                "events": committed.events,
            });
            println!("{output}");
            Ok(())
        }
        Err(error) => Err(Failure::classed(error.class(), error.into())),
    }
}

pub async fn status(cli: &Cli, args: &StatusArgs) -> Result<(), Failure> {
    let site = match &args.site {
        Some(site) => Some(EntityId::new(site).map_err(|error| bad_input(format!("--site: {error}")))?),
        None => None,
    };
    let service = open_service(cli).await?;
    let times = args.times.times();
    let report = if times == service::Times::NOW {
        service.status(Timestamp::now(), site.as_ref()).await?
    } else {
        service.status_at_times(times, site.as_ref()).await?
    };
    crate::print_out(
        &(serde_json::to_string_pretty(&report).map_err(|error| Failure::Operating(error.into()))? + "\n"),
    )?;
    Ok(())
}

pub async fn replay(cli: &Cli, args: &ReplayArgs) -> Result<(), Failure> {
    let service = open_service(cli).await?;
    let replay = service.replay(args.day, args.until, args.times.times()).await?;
    crate::print_out(
        &(serde_json::to_string_pretty(&replay).map_err(|error| Failure::Operating(error.into()))? + "\n"),
    )?;
    Ok(())
}

pub async fn report(cli: &Cli, args: &ReportArgs) -> Result<(), Failure> {
    let site = match &args.site {
        Some(site) => Some(EntityId::new(site).map_err(|error| bad_input(format!("--site: {error}")))?),
        None => None,
    };
    let to = args.to.unwrap_or(args.day);
    if to < args.day {
        return Err(bad_input(format!("--to {to} is before --day {}", args.day)));
    }
    let service = open_service(cli).await?;
    let summary = service.summary(args.day, to, site.as_ref(), args.times.times()).await?;
    let report =
        projections::render(&summary, args.format, args.lang).map_err(|error| Failure::Operating(error.into()))?;
    crate::print_out(&report)?;
    Ok(())
}

pub async fn demo(cli: &Cli) -> Result<(), Failure> {
    let service = open_service(cli).await?;
    let events = service.load_demo().await.map_err(|error| Failure::Operating(error.into()))?;
    if let Err(error) = service.save_snapshot().await {
        tracing::warn!(%error, "saving the views' snapshot failed");
    }
    println!(
        "the demo month ({} to {}) is in {}: {events} events",
        service::demo::DEMO_FIRST_DAY,
        service::demo::DEMO_LAST_DAY,
        cli.data.display()
    );
    Ok(())
}
