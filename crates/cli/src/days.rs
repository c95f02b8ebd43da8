//! `gridwatch seal`, `export`, `prove` and `verify --file`: the audit day from the command
//! line. The file formats are in the README ("Day export").

use std::path::PathBuf;

use clap::Args;
use jiff::civil::Date;

use crate::{Cli, Failure};

#[derive(Debug, Args)]
pub struct SealArgs {
    /// The local day to seal (its first seal, or an addendum for events that arrived after).
    #[arg(long)]
    day: Date,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The first local day.
    #[arg(long)]
    day: Date,
    /// The last local day (the same as --day when not given).
    #[arg(long)]
    to: Option<Date>,
    #[arg(long, value_enum, default_value = "ndjson")]
    format: ExportFormat,
    /// Write the export here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ExportFormat {
    /// The verifiable export (`gridwatch verify --file` checks it).
    Ndjson,
    /// The same lines as CloudEvents (JSON event format, structured mode), checked the same way.
    Cloudevents,
}

#[derive(Debug, Args)]
pub struct ProveArgs {
    /// The event's id.
    #[arg(long)]
    event: uuid::Uuid,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Check an export or a proof file instead of the data directory (no store, no server).
    #[arg(long)]
    file: Option<PathBuf>,
    /// The seal key to trust: the JSON of GET /api/v1/seal-key, or its 64 hex digits. Without
    /// it a file is checked against the key it names itself.
    #[arg(long, requires = "file")]
    public_key: Option<PathBuf>,
    /// List the events of the file that no seal covers instead of failing.
    #[arg(long, requires = "file")]
    allow_unsealed: bool,
    /// Check an export without a signature line (made where no seal key was set) line by
    /// line instead of failing; nothing then proves that no line was left out.
    #[arg(long, requires = "file")]
    allow_unsigned: bool,
}

impl VerifyArgs {
    pub fn file(&self) -> Option<&PathBuf> {
        self.file.as_ref()
    }
}

fn bad_input(error: impl std::fmt::Display) -> Failure {
    Failure::BadInput(anyhow::anyhow!("{error}"))
}

fn load_key(cli: &Cli) -> Result<service::seal_key::SealKey, Failure> {
    if !cli.seal_key.exists() {
        return Err(Failure::BadInput(anyhow::anyhow!(
            "no seal key at {}: make one with `gridwatch seal-key create` (or pass --seal-key)",
            cli.seal_key.display()
        )));
    }
    service::seal_key::SealKey::load(&cli.seal_key).map_err(|error| Failure::Operating(error.into()))
}

/// The public keys an export or a proof names: the seal key's, when there is one.
fn public_keys(cli: &Cli) -> Result<Vec<service::seal_key::PublicSealKey>, Failure> {
    Ok(if cli.seal_key.exists() { vec![load_key(cli)?.public()] } else { Vec::new() })
}

pub async fn seal(cli: &Cli, args: &SealArgs) -> Result<(), Failure> {
    let key = load_key(cli)?;
    let service = crate::record::open_service(cli).await?;
    match service.seal_day(args.day, &key).await.map_err(|error| Failure::classed(error.class(), error.into()))? {
        Some(seal) => println!("{}", service::day_file::export_line(&seal)),
        None => println!("{} is sealed and nothing arrived since its last seal", args.day),
    }
    Ok(())
}

pub async fn export(cli: &Cli, args: &ExportArgs) -> Result<(), Failure> {
    let to = args.to.unwrap_or(args.day);
    if to < args.day {
        return Err(bad_input("--to is before --day"));
    }
    let key = if cli.seal_key.exists() { Some(load_key(cli)?) } else { None };
    let service = crate::record::open_service(cli).await?;
    let mut text = service.export_days(args.day, to, key.as_ref()).await?;
    if let ExportFormat::Cloudevents = args.format {
        text = service::day_file::to_cloudevents(&text).map_err(|error| Failure::Operating(error.into()))?;
    }
    match &args.output {
        Some(path) => std::fs::write(path, text)?,
        None => crate::print_out(&text)?,
    }
    Ok(())
}

pub async fn prove(cli: &Cli, args: &ProveArgs) -> Result<(), Failure> {
    let keys = public_keys(cli)?;
    let service = crate::record::open_service(cli).await?;
    match service.prove(args.event, &keys).await {
        Ok(proof) => crate::print_out(&proof),
        Err(service::ProofError::Store(error)) => Err(error.into()),
        Err(service::ProofError::NoSuchEvent) => Err(Failure::Conflict(anyhow::anyhow!("no event {}", args.event))),
        Err(error) => Err(Failure::Conflict(error.into())),
    }
}

/// `verify --file`: exit 0 when the file checks out, 4 naming the first bad line.
pub fn verify_file(args: &VerifyArgs, file: &PathBuf) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file).map_err(|error| {
        Failure::Operating(anyhow::Error::new(error).context(format!("cannot read {}", file.display())))
    })?;
    let trusted = match &args.public_key {
        Some(path) => {
            let key_text = std::fs::read_to_string(path).map_err(|error| {
                Failure::Operating(anyhow::Error::new(error).context(format!("cannot read {}", path.display())))
            })?;
            Some(service::day_file::parse_public_key(&key_text).map_err(bad_input)?)
        }
        None => None,
    };
    let leniency =
        service::day_file::Leniency { allow_unsealed: args.allow_unsealed, allow_unsigned: args.allow_unsigned };
    let report = service::day_file::verify_file(&text, trusted.as_ref(), leniency)
        .map_err(|error| Failure::Integrity(anyhow::anyhow!("{}: {error}", file.display())))?;
    let days: Vec<String> = report.days.iter().map(Date::to_string).collect();
    let signers = if report.seal_key_ids.is_empty() { &report.key_ids } else { &report.seal_key_ids };
    println!(
        "ok: {} {}, {} event(s), {} seal(s), signed by {} ({})",
        report.kind,
        days.join(", "),
        report.events,
        report.seals,
        signers.join(", "),
        if report.key_trusted {
            "the key given"
        } else {
            "the key the file names: pass --public-key to check who signed it"
        }
    );
    match &report.export_key_id {
        Some(key_id) => println!("the export's signature line: signed by {key_id}"),
        None if !report.export_signed => {
            println!("the export has no signature line: nothing proves that no line was left out");
        }
        None => {}
    }
    for line in &report.unsealed_lines {
        println!("unsealed: line {line} (covered by no seal yet)");
    }
    Ok(())
}
