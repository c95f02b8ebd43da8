//! Backups of the whole log, and restores that rebuild it with the identical hash chain.
//!
//! A backup is NDJSON (the README's "Backup and restore" documents it):
//! - line 1, the header: `{"format": "gridwatch-backup", "version": 1, "head_position": N,
//!   "head_hash": HEX, "made_at": RFC 3339}`;
//! - then one line per record, positions 1 to N in order: `{"position": P, "record": BASE64,
//!   "hash": HEX}`, where `record` is the stored bytes the chain covers (standard base64 with
//!   padding) and `hash` their chain hash.
//!
//! The log only grows, so every record up to the head named when the backup starts is fixed:
//! a backup taken while writers go on is consistent by construction (it is the log as it stood
//! at `head_position`). Seals are events of the log, so a backup holds them too. What is kept
//! beside the log (tokens, sign-in links, the views' snapshot and day checkpoints) is not in a
//! backup: a restored store rebuilds its views, and its server makes a new admin token on its
//! first start.

use std::io::BufRead;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use store::{EventStore, RESTORE_RECORDS_MAX, Rejection, StoreError, StoredRecord};

use crate::Service;

/// The `format` of a backup's header line.
pub const BACKUP_FORMAT: &str = "gridwatch-backup";
/// The version of the backup format this build writes and reads.
pub const BACKUP_VERSION: u32 = 1;
/// Records read from the log per step of a backup.
const BACKUP_PAGE_RECORDS: usize = 1_000;

/// A backup's header line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHeader {
    pub format: String,
    pub version: u32,
    pub head_position: u64,
    pub head_hash: String,
    pub made_at: events_schema::Timestamp,
}

/// One record line of a backup.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLine {
    position: u64,
    record: String,
    hash: String,
}

/// Why a backup file cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("the backup ends after position {restored}, but its header names position {head}: it is cut short")]
    CutShort { restored: u64, head: u64 },
    #[error("the restored log ends with chain hash {found}, but the backup's header names {named}")]
    HeadMismatch { found: String, named: String },
    #[error("the store refused a record: {0}")]
    Refused(Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the backup: {0}")]
    Io(#[from] std::io::Error),
}

/// The record line of `record`, without its newline.
fn record_line(record: &StoredRecord) -> String {
    let line = RecordLine {
        position: record.global_position,
        record: BASE64.encode(&record.bytes),
        hash: hex::encode(record.hash),
    };
    serde_json::to_string(&line).expect("a record line serialises")
}

impl<S: EventStore> Service<S> {
    /// The backup of the log as it stands now, line by line (each with its newline): the
    /// header, then every record up to the head it names, read a page at a time. Memory does
    /// not grow with the log.
    pub async fn backup(&self) -> Result<(BackupHeader, BoxStream<'_, Result<String, StoreError>>), StoreError> {
        let head = self.store.head_position().await?;
        let head_hash = self.hash_at(head).await?;
        let header = BackupHeader {
            format: BACKUP_FORMAT.to_owned(),
            version: BACKUP_VERSION,
            head_position: head,
            head_hash: hex::encode(head_hash),
            made_at: events_schema::Timestamp::now(),
        };
        let first = serde_json::to_string(&header).expect("a header serialises") + "\n";
        let pages = futures::stream::try_unfold(1u64, move |next| async move {
            if next > head {
                return Ok(None);
            }
            let wanted = usize::try_from(head - next + 1).unwrap_or(usize::MAX).min(BACKUP_PAGE_RECORDS);
            let records = self.store.read_records(next, wanted).await?;
            let Some(last) = records.last() else {
                return Err(StoreError::Corrupt { global_position: next, reason: "missing from the log".into() });
            };
            let after = last.global_position + 1;
            let mut text = String::with_capacity(records.len() * 512);
            for record in &records {
                text.push_str(&record_line(record));
                text.push('\n');
            }
            Ok(Some((text, after)))
        });
        Ok((header.clone(), futures::stream::once(async move { Ok(first) }).chain(pages).boxed()))
    }
}

impl<S: EventStore> Service<S> {
    /// Restores the backup read from `input` into this service's store, which must be
    /// empty: every record, byte for byte, in batches the store checks (positions, chain
    /// links, versions, ids); then checks that the restored log ends where the header says.
    /// Returns the header.
    pub async fn restore(&self, input: impl BufRead) -> Result<BackupHeader, RestoreError> {
        restore(&self.store, input).await
    }
}

async fn restore<S: EventStore>(store: &S, input: impl BufRead) -> Result<BackupHeader, RestoreError> {
    let mut lines = input.lines();
    let malformed = |line: u64, reason: String| RestoreError::Malformed { line, reason };
    let header_text = lines.next().ok_or_else(|| malformed(1, "the file is empty".into()))??;
    let header: BackupHeader = serde_json::from_str(&header_text)
        .map_err(|error| malformed(1, format!("not a gridwatch backup header: {error}")))?;
    if header.format != BACKUP_FORMAT || header.version != BACKUP_VERSION {
        return Err(malformed(
            1,
            format!(
                "format {} version {}; this build reads {BACKUP_FORMAT} version {BACKUP_VERSION}",
                header.format, header.version
            ),
        ));
    }
    if store.head_position().await? != 0 {
        return Err(malformed(1, "the store to restore into already holds events".into()));
    }
    let mut batch = Vec::with_capacity(RESTORE_RECORDS_MAX);
    let mut restored = 0u64;
    for (index, line) in lines.enumerate() {
        let number = index as u64 + 2;
        let line = line?;
        let parsed: RecordLine =
            serde_json::from_str(&line).map_err(|error| malformed(number, format!("not a record line: {error}")))?;
        let bytes = BASE64.decode(&parsed.record).map_err(|error| malformed(number, format!("record: {error}")))?;
        let hash = hex::decode(&parsed.hash)
            .ok()
            .and_then(|hash| <[u8; 32]>::try_from(hash).ok())
            .ok_or_else(|| malformed(number, "hash: not 64 hex digits".into()))?;
        if parsed.position > header.head_position {
            return Err(malformed(number, format!("position {} is past the header's head", parsed.position)));
        }
        batch.push(StoredRecord { global_position: parsed.position, bytes, hash });
        if batch.len() == RESTORE_RECORDS_MAX {
            restored += write_batch(store, std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        restored += write_batch(store, batch).await?;
    }
    if restored != header.head_position {
        return Err(RestoreError::CutShort { restored, head: header.head_position });
    }
    let found = match store.read_records(restored, 1).await?.pop() {
        Some(record) => hex::encode(record.hash),
        None => hex::encode([0u8; 32]),
    };
    if found != header.head_hash {
        return Err(RestoreError::HeadMismatch { found, named: header.head_hash });
    }
    Ok(header)
}

async fn write_batch<S: EventStore>(store: &S, batch: Vec<StoredRecord>) -> Result<u64, RestoreError> {
    let count = batch.len() as u64;
    match store.restore_records(batch).await? {
        Ok(_) => Ok(count),
        Err(rejection) => Err(RestoreError::Refused(rejection)),
    }
}
