//! Snapshots of the views: their position in the log, the hash of the event there, and a
//! version of the projection code. A snapshot from other code, another time zone or another
//! log is not used: the views are rebuilt from position 0 instead.
//!
//! File layout: `GWSNAP02` (see `MAGIC`), the code version (u32 BE), then bincode of `Saved`.

use std::path::Path;

use events_schema::{ChainHash, EntityId};
use jiff::tz::TimeZone;
use projections::{AuditIndex, BoardState, CheckpointBoard, IssueBoard, Registry};
use serde::{Deserialize, Serialize};
use store::{EventStore, StoreError};

use crate::Views;
use crate::days::{DayLedger, ReadViews};
use crate::seals::SealIndex;

/// Raise this whenever a fold (domain state or projection) changes what it derives from
/// the same events: every older snapshot is then ignored and the views rebuilt from 0.
pub const PROJECTION_CODE_VERSION: u32 = 4;

/// The snapshot's layout: 02 keeps the day ledger's late arrivals as spans. A snapshot of
/// another layout is not read; the views are folded from the log instead.
const MAGIC: &[u8; 8] = b"GWSNAP02";

#[derive(Serialize, Deserialize)]
struct Saved {
    time_zone: String,
    position: u64,
    hash: ChainHash,
    domain: domain::State,
    registry: Registry,
    board: BoardState,
    issues: IssueBoard,
    audit: AuditIndex,
    days: DayLedger,
    seals: SealIndex,
    stream_versions: Vec<(EntityId, u64)>,
}

/// What a snapshot holds, copied from the views (under their lock) so that encoding and
/// writing it happen after the lock is released.
pub(crate) struct Taken(Saved);

pub(crate) fn take(views: &Views, time_zone: &TimeZone, hash: ChainHash) -> Taken {
    Taken(Saved {
        time_zone: time_zone.iana_name().unwrap_or_default().to_owned(),
        position: views.position,
        hash,
        domain: views.domain.clone(),
        registry: views.read.registry.clone(),
        board: views.read.checkpoints.state().clone(),
        issues: views.read.issues.clone(),
        audit: views.audit.clone(),
        days: views.days.clone(),
        seals: views.seals.clone(),
        stream_versions: views.stream_versions.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    })
}

/// Writes `taken` to `path` atomically (a synced temporary file renamed over it), one save
/// at a time (the periodic one and the one of a stop share the temporary file).
pub(crate) fn save(path: &Path, taken: &Taken) -> Result<(), StoreError> {
    static SAVING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SAVING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&PROJECTION_CODE_VERSION.to_be_bytes());
    bincode::serde::encode_into_std_write(&taken.0, &mut bytes, bincode::config::standard())
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, &bytes)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

/// The views of the snapshot at `path`, if there is one and it is usable with `store`.
pub(crate) async fn load<S: EventStore>(
    path: &Path,
    time_zone: &TimeZone,
    store: &S,
) -> Result<Option<Views>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let Some(body) = bytes.strip_prefix(MAGIC) else {
        if bytes.starts_with(b"GWSNAP") {
            tracing::info!(path = %path.display(), "a snapshot of another layout; rebuilding the views from position 0");
        } else {
            tracing::warn!(path = %path.display(), "not a snapshot; rebuilding the views");
        }
        return Ok(None);
    };
    let (version, body) = body.split_at(4.min(body.len()));
    if version != PROJECTION_CODE_VERSION.to_be_bytes() {
        tracing::info!("snapshot from other projection code; rebuilding the views from position 0");
        return Ok(None);
    }
    let Ok((saved, _)) = bincode::serde::decode_from_slice::<Saved, _>(body, bincode::config::standard()) else {
        tracing::warn!(path = %path.display(), "undecodable snapshot; rebuilding the views");
        return Ok(None);
    };
    if Some(saved.time_zone.as_str()) != time_zone.iana_name() {
        return Ok(None);
    }
    if saved.position > 0 {
        let here = store.read_all(saved.position, 1).await?;
        if here.first().map(|event| (event.global_position, event.hash)) != Some((saved.position, saved.hash)) {
            tracing::warn!("the snapshot belongs to another log; rebuilding the views");
            return Ok(None);
        }
    }
    Ok(Some(Views {
        domain: saved.domain,
        read: ReadViews {
            registry: saved.registry,
            checkpoints: CheckpointBoard::restore(time_zone.clone(), saved.board),
            issues: saved.issues.restored(),
        },
        audit: saved.audit,
        days: saved.days,
        seals: saved.seals,
        time_zone: time_zone.clone(),
        stream_versions: saved.stream_versions.into_iter().collect(),
        position: saved.position,
    }))
}
