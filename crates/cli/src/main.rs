//! `gridwatch`: the command-line tool over the event log.
//!
//! Exit codes: 0 success, 1 operating error (I/O, a store that cannot be opened),
//! 2 bad input (nothing written), 3 conflict (wrong expected version or a reused event id;
//! nothing written), 4 `verify` found the log (or a file given to `verify --file`) altered or
//! shortened, 5 `verify` met a store that a running server holds.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod append;
mod backend;
mod backup;
mod bench_http;
mod bench_projections;
mod days;
mod events;
mod record;
mod serve;
mod stress;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use store::StoreError;

#[derive(Debug, Parser)]
#[command(name = "gridwatch", version, about = "Event-sourced incident and patrol tracker")]
pub(crate) struct Cli {
    /// The data directory of the embedded store.
    #[arg(long, global = true, default_value = "./gridwatch-data")]
    data: PathBuf,
    /// The backend that holds the log.
    #[arg(long = "store", global = true, value_enum, default_value = "sled")]
    store: backend::Backend,
    /// The NATS servers of the cluster (`--store nats`), comma-separated; any of them will
    /// do. Credentials come from the environment (GRIDWATCH_NATS_CREDS, GRIDWATCH_NATS_TOKEN,
    /// or GRIDWATCH_NATS_USER and GRIDWATCH_NATS_PASSWORD), never from the command line.
    #[arg(long, global = true, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The JetStream stream that holds the log (`--store nats`); created if missing.
    #[arg(long, global = true, default_value = "GRIDWATCH")]
    nats_stream: String,
    /// Replicas of the stream when this node creates it (`--store nats`).
    #[arg(long, global = true, default_value_t = 3)]
    nats_replicas: usize,
    /// sled's page cache size in MiB.
    #[arg(long, global = true, default_value_t = 64)]
    cache_mib: u64,
    /// Free space (MiB) to leave on the data directory's filesystem: appends that would
    /// leave less are refused (HTTP 507) before anything is written, reads go on, and writes
    /// resume by themselves once space is freed. 0 turns the check off.
    #[arg(long, global = true, default_value_t = store_sled::DISK_RESERVE_BYTES_DEFAULT / (1024 * 1024))]
    disk_reserve_mib: u64,
    /// The file of the key that signs day seals: outside the data directory by default, so
    /// that no copy of the data carries it (`gridwatch seal-key create` makes it).
    #[arg(long, global = true, default_value = "./gridwatch-seal.key")]
    seal_key: PathBuf,
    /// The time zone local days are counted in.
    #[arg(long, global = true, default_value = "Asia/Shanghai")]
    time_zone: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (and the live feed) over the configured store.
    Serve(serve::ServeArgs),
    /// Access tokens for the HTTP API.
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// The key that signs day seals.
    #[command(subcommand)]
    SealKey(SealKeyCommand),
    /// Append NDJSON events from stdin to one stream, all or nothing.
    Append(append::AppendArgs),
    /// Print stored events as NDJSON.
    Events(events::EventsArgs),
    /// Recompute the hash chain and check the whole log; or, with --file, check a day export
    /// or an event proof offline (no data directory, no server).
    Verify(days::VerifyArgs),
    /// Seal a local day now (the server seals each day itself once its grace period ends).
    Seal(days::SealArgs),
    /// Write a self-contained, verifiable file of local days' events and their seals.
    Export(days::ExportArgs),
    /// Print one event with its inclusion proof in its day's sealed Merkle root.
    Prove(days::ProveArgs),
    /// Write a consistent backup of the whole log to a file, while writers go on (through
    /// the running server, with an admin token in GRIDWATCH_TOKEN, when one holds the store).
    Backup(backup::BackupArgs),
    /// Rebuild a store in --data (new or empty) from a backup file: the identical hash chain
    /// and seals; then verify it.
    Restore(backup::RestoreArgs),
    /// Do something through the domain rules (raise an issue, record a check, ...).
    Record(record::RecordArgs),
    /// The live status of every checkpoint, rolled up by site, grid and community.
    Status(record::StatusArgs),
    /// Every event of a local day in the order it happened, with what each changed, and the
    /// status as of a moment of that day.
    Replay(record::ReplayArgs),
    /// The after-action summary of a day or a range of days.
    Report(record::ReportArgs),
    /// Load the demo data set (a month of gate duty, 2020-02-12 to 2020-03-09); loading it
    /// again writes nothing.
    Demo,
    /// Measure the store against raw sled and raw fdatasync baselines.
    Bench(backend::sled_bench::BenchArgs),
    /// Benchmark tool: fold N generated events through every view, print events/s and
    /// peak memory (run by `bench --projections`, one process per count).
    #[command(hide = true)]
    BenchFold {
        #[arg(long)]
        events: u64,
    },
    /// Benchmark tool: the minimal axum handler `bench --http` compares the server with.
    #[command(hide = true)]
    BenchMinimalServer {
        #[arg(long)]
        addr: std::net::SocketAddr,
    },
    /// Test tool: append forever from several tasks, printing each acknowledgement.
    #[command(hide = true)]
    StressAppend(stress::StressArgs),
}

#[derive(Debug, Subcommand)]
enum SealKeyCommand {
    /// Make a new seal key in `--seal-key` (never overwriting one) and print its id and
    /// public key.
    Create,
}

fn seal_key(cli: &Cli, command: &SealKeyCommand) -> Result<(), Failure> {
    match command {
        SealKeyCommand::Create => {
            let key = service::seal_key::SealKey::create(&cli.seal_key).map_err(|error| match error {
                service::seal_key::SealKeyError::Exists(_) => Failure::Conflict(error.into()),
                other => Failure::Operating(other.into()),
            })?;
            let public = key.public();
            println!(
                "seal key {} (ed25519) in {} (mode 0600; keep it off the data directory)",
                public.key_id,
                cli.seal_key.display()
            );
            println!("public key {}", public.public_key);
            Ok(())
        }
    }
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// Exit 2: the input was wrong; nothing was written.
    BadInput(anyhow::Error),
    /// Exit 3: the log's state did not allow it; nothing was written.
    Conflict(anyhow::Error),
    /// Exit 4: verify found a problem.
    Integrity(anyhow::Error),
    /// Exit 5: `verify` met a store that a running server holds (verify over HTTP instead).
    InUse(anyhow::Error),
    /// Exit 1: anything else.
    Operating(anyhow::Error),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Operating(_) => 1,
            Failure::BadInput(_) => 2,
            Failure::Conflict(_) => 3,
            Failure::Integrity(_) => 4,
            Failure::InUse(_) => 5,
        }
    }

    fn error(&self) -> &anyhow::Error {
        match self {
            Failure::BadInput(error)
            | Failure::Conflict(error)
            | Failure::Integrity(error)
            | Failure::InUse(error)
            | Failure::Operating(error) => error,
        }
    }
}

impl Failure {
    /// The failure of a class (the one mapping, shared with the HTTP statuses): invalid
    /// input exits 2, an unknown entity or a conflict 3, a damaged log 4, anything else 1.
    pub fn classed(class: service::ErrorClass, error: anyhow::Error) -> Failure {
        use service::ErrorClass;
        match class {
            ErrorClass::Invalid => Failure::BadInput(error),
            ErrorClass::NotFound | ErrorClass::Conflict => Failure::Conflict(error),
            ErrorClass::Integrity => Failure::Integrity(error),
            ErrorClass::Unavailable | ErrorClass::StorageFull | ErrorClass::Internal => Failure::Operating(error),
        }
    }
}

impl From<StoreError> for Failure {
    /// A log found altered or cut short is an integrity failure (exit 4), wherever it is met.
    fn from(error: StoreError) -> Failure {
        Failure::classed(service::ErrorClass::of_store(&error), error.into())
    }
}

/// Writes `text` to standard output. A reader that went away (`gridwatch status | head`) is
/// not a failure of the command: the rest is dropped quietly.
pub(crate) fn print_out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        Failure::Operating(error.into())
    }
}

async fn verify(cli: &Cli) -> Result<(), Failure> {
    // An error here is about opening or reading (a lock, I/O), not about what the log
    // holds: findings come back inside the report.
    let report = match backend::verify(cli) {
        Ok(report) => report,
        // A running server holds the store: it verifies it itself, without stopping.
        Err(StoreError::InUse(_)) => {
            return Err(Failure::InUse(anyhow::anyhow!(
                "{} is held by a running gridwatch server; verify through it instead: \
                 GET /api/v1/verify (auditor token), or stop the server first",
                cli.data.display()
            )));
        }
        Err(error) => return Err(Failure::Operating(anyhow::Error::new(error).context("the log cannot be verified"))),
    };
    match report.problem {
        None => {
            let head = if report.events == 0 { "empty".to_owned() } else { hex_of(&report.last_hash) };
            let noun = if report.events == 1 { "event" } else { "events" };
            println!("ok: {} {noun}, chain intact, head {head}", report.events);
            // Then every day seal against the log (and its signature, with the seal key).
            let key = match cli.seal_key.exists() {
                true => Some(
                    service::seal_key::SealKey::load(&cli.seal_key)
                        .map_err(|error| Failure::Operating(error.into()))?
                        .public(),
                ),
                false => None,
            };
            let service = record::open_service(cli).await?;
            let seals = service.verify_seals(key.as_ref()).await?;
            if let Some(problem) = seals.problems.first() {
                return Err(Failure::Integrity(anyhow::anyhow!(
                    "seal {} of {} at position {}: {} ({} of {} seals do not hold)",
                    problem.sequence,
                    problem.local_day,
                    problem.global_position,
                    problem.reason,
                    seals.problems.len(),
                    seals.seals
                )));
            }
            let signed = if key.is_some() { "signatures checked" } else { "signatures not checked: no --seal-key" };
            println!("ok: {} day seals hold ({signed})", seals.seals);
            Ok(())
        }
        Some(problem) => Err(Failure::Integrity(anyhow::anyhow!(
            "first bad position {}: {} ({} events before it are intact)",
            problem.global_position,
            problem.reason,
            report.events
        ))),
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses a data directory that does not exist, for commands that only read: a typo in
/// `--data` must not create an empty store and report on it.
fn existing_store(cli: &Cli) -> Result<(), Failure> {
    if backend::exists(cli) {
        Ok(())
    } else {
        Err(Failure::Operating(anyhow::anyhow!("no gridwatch store in {}", cli.data.display())))
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Serve(args) => serve::serve(&cli, args).await,
        Command::Token(command) => serve::token(&cli, command),
        Command::SealKey(command) => seal_key(&cli, command),
        Command::Append(args) => append::run(&cli, args).await,
        Command::Events(args) => {
            existing_store(&cli)?;
            events::run(&record::open_log(&cli)?, args).await
        }
        Command::Verify(args) => match args.file() {
            Some(file) => days::verify_file(args, file),
            None => {
                existing_store(&cli)?;
                verify(&cli).await
            }
        },
        Command::Seal(args) => {
            existing_store(&cli)?;
            days::seal(&cli, args).await
        }
        Command::Export(args) => {
            existing_store(&cli)?;
            days::export(&cli, args).await
        }
        Command::Backup(args) => {
            existing_store(&cli)?;
            backup::backup(&cli, args).await
        }
        Command::Restore(args) => backup::restore(&cli, args).await,
        Command::Prove(args) => {
            existing_store(&cli)?;
            days::prove(&cli, args).await
        }
        Command::Record(args) => record::record(&cli, args).await,
        Command::Status(args) => {
            existing_store(&cli)?;
            record::status(&cli, args).await
        }
        Command::Replay(args) => {
            existing_store(&cli)?;
            record::replay(&cli, args).await
        }
        Command::Report(args) => {
            existing_store(&cli)?;
            record::report(&cli, args).await
        }
        Command::Demo => record::demo(&cli).await,
        Command::Bench(args) => backend::sled_bench::run(args, &cli).await,
        Command::BenchFold { events } => bench_projections::fold(*events),
        Command::BenchMinimalServer { addr } => bench_http::minimal_server(*addr).await,
        Command::StressAppend(args) => stress::run(record::open_log(&cli)?, args).await,
    }
}

/// Logs go to stderr: `GRIDWATCH_LOG` filters them (info for `serve`, warn otherwise),
/// `GRIDWATCH_LOG_FORMAT=json` makes them one JSON object per line.
fn init_logs(cli: &Cli) {
    let default = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRIDWATCH_LOG").unwrap_or_else(|_| default.into());
    use std::io::IsTerminal;
    // Colours only for a person at a terminal, never into a log file.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    if std::env::var("GRIDWATCH_LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(cli));
    // For benchmarks that measure a command in a process of its own (`bench --days`).
    if std::env::var_os("GRIDWATCH_REPORT_PEAK_MEMORY").is_some() {
        eprintln!("peak_rss_mib {:.1}", bench_projections::peak_rss_mib());
    }
    // Blocking work still running (a long report after a shutdown's grace period) must not
    // hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {:#}", failure.error());
            ExitCode::from(failure.exit_code())
        }
    }
}
