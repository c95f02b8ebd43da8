//! `gridwatch backup DEST` and `gridwatch restore SRC --data DIR`: a consistent copy of the
//! whole log taken while writers go on, and a store rebuilt from it with the identical hash
//! chain and seals (the format is in the README, "Backup and restore").
//!
//! A running server holds the store, so `backup` then asks the server for it
//! (`POST /api/v1/backup`, with the admin token in `GRIDWATCH_TOKEN`), at the address the
//! server wrote into the data directory (or `--server`); with no server, it reads the store
//! itself.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use futures::StreamExt;
use store::StoreError;

use crate::{Cli, Failure};

/// The file in the data directory that names the running server's address.
pub const SERVER_URL_FILE: &str = "server-url";

/// The address the server running on `data` wrote to [`SERVER_URL_FILE`], if it did.
pub(crate) fn server_url(data: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(data.join(SERVER_URL_FILE)).ok().map(|url| url.trim().to_owned())
}
/// The environment variable `backup` reads an admin token from (never a flag: command lines
/// are visible to every user of the machine and end up in shell histories).
const TOKEN_VARIABLE: &str = "GRIDWATCH_TOKEN";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (never overwritten: written beside, synced, then renamed).
    dest: PathBuf,
    /// The running server to ask (default: the address it wrote into the data directory).
    #[arg(long)]
    server: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    src: PathBuf,
}

fn operating(error: impl std::fmt::Display) -> Failure {
    Failure::Operating(anyhow::anyhow!("{error}"))
}

/// The temporary file a backup is written to before it is renamed into place.
fn partial(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".partial");
    dest.with_file_name(name)
}

pub async fn backup(cli: &Cli, args: &BackupArgs) -> Result<(), Failure> {
    if args.dest.exists() {
        return Err(Failure::BadInput(anyhow::anyhow!(
            "{} exists; a backup never overwrites a file",
            args.dest.display()
        )));
    }
    let temporary = partial(&args.dest);
    let mut file = std::fs::File::create(&temporary)?;
    let written = match (&args.server, crate::record::open_log(cli)) {
        (None, Ok(service)) => from_store(&service, &mut file).await,
        (Some(url), _) => from_server(url, &mut file).await,
        (None, Err(Failure::Operating(error))) if in_use(&error) => {
            let url = server_url(&cli.data).ok_or_else(|| {
                Failure::InUse(anyhow::anyhow!(
                    "{} is held by a running server that did not say where it listens; pass --server URL",
                    cli.data.display()
                ))
            })?;
            from_server(&url, &mut file).await
        }
        (None, Err(failure)) => Err(failure),
    };
    let (head, records) = match written.and_then(|written| {
        file.sync_all()?;
        Ok(written)
    }) {
        Ok(written) => written,
        Err(failure) => {
            let _ = std::fs::remove_file(&temporary);
            return Err(failure);
        }
    };
    std::fs::rename(&temporary, &args.dest)?;
    if let Some(parent) = args.dest.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    println!("backup of {records} events (head {head}) written to {}", args.dest.display());
    Ok(())
}

fn in_use(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| matches!(cause.downcast_ref::<StoreError>(), Some(StoreError::InUse(_))))
}

/// Writes the backup of the store itself; returns (head hash, records).
async fn from_store(service: &crate::record::CliService, out: &mut impl Write) -> Result<(String, u64), Failure> {
    let (header, mut lines) = service.backup().await?;
    while let Some(line) = lines.next().await {
        out.write_all(line?.as_bytes())?;
    }
    Ok((header.head_hash, header.head_position))
}

/// Writes the backup a running server sends; checks that it came whole (its header's head
/// is its last record).
async fn from_server(url: &str, out: &mut impl Write) -> Result<(String, u64), Failure> {
    let token = std::env::var(TOKEN_VARIABLE).map_err(|_| {
        Failure::BadInput(anyhow::anyhow!(
            "a running server holds the store: set {TOKEN_VARIABLE} to an admin token to take the backup through it"
        ))
    })?;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/backup", url.trim_end_matches('/')))
        .bearer_auth(token)
        .send()
        .await
        .map_err(operating)?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(operating(format!("the server refused the backup: {status}: {body}")));
    }
    let mut body = response.bytes_stream();
    // The header line, the last whole line, and the line being read.
    let (mut first_line, mut last_line, mut current) = (Vec::new(), Vec::new(), Vec::new());
    let mut lines = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| operating(format!("the backup was cut off: {error}")))?;
        out.write_all(&chunk)?;
        for &byte in chunk.iter() {
            if byte != b'\n' {
                current.push(byte);
                continue;
            }
            if lines == 0 {
                first_line = std::mem::take(&mut current);
            } else {
                last_line = std::mem::take(&mut current);
            }
            lines += 1;
        }
    }
    let header: service::backup::BackupHeader = serde_json::from_slice(&first_line).map_err(operating)?;
    let records = lines.saturating_sub(1);
    let last_position =
        serde_json::from_slice::<serde_json::Value>(&last_line).ok().and_then(|line| line["position"].as_u64());
    if records != header.head_position || (records > 0 && last_position != Some(header.head_position)) {
        return Err(operating(format!(
            "the backup came cut short: {records} records of the {} its header names",
            header.head_position
        )));
    }
    Ok((header.head_hash, header.head_position))
}

pub async fn restore(cli: &Cli, args: &RestoreArgs) -> Result<(), Failure> {
    let empty = match std::fs::read_dir(&cli.data) {
        Ok(mut entries) => entries.next().is_none(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
        Err(error) => return Err(error.into()),
    };
    if !empty {
        return Err(Failure::BadInput(anyhow::anyhow!(
            "{} is not empty; restore into a new (or empty) data directory",
            cli.data.display()
        )));
    }
    let input = std::fs::File::open(&args.src)
        .map_err(|error| Failure::BadInput(anyhow::anyhow!("{}: {error}", args.src.display())))?;
    let existed = cli.data.exists();
    let restored = async {
        let service = crate::record::open_log(cli)?;
        let header = service.restore(std::io::BufReader::new(input)).await.map_err(|error| match error {
            service::backup::RestoreError::Store(error) => Failure::from(error),
            other => Failure::BadInput(
                anyhow::Error::new(other).context(format!("{} cannot be restored", args.src.display())),
            ),
        })?;
        Ok::<_, Failure>(header)
    }
    .await;
    match restored {
        Ok(header) => {
            println!(
                "restored {} events, head {}, into {}",
                header.head_position,
                header.head_hash,
                cli.data.display()
            );
            // The same checks as `gridwatch verify`: the chain, then every day seal.
            crate::verify(cli).await
        }
        Err(failure) => {
            // Nothing half-restored is left behind to be mistaken for a store.
            let _ = std::fs::remove_dir_all(&cli.data);
            if existed {
                let _ = std::fs::create_dir(&cli.data);
            }
            Err(failure)
        }
    }
}
