//! Days at the cost of a day. A query about a past moment or period (a replay, a report, the
//! status as of a moment) needs the read views as they stood when its period began, and then
//! only the period's own events (read by when they happened). Those starting views are kept
//! as **day checkpoints**: the views of everything that happened before a local day, folded
//! day by day in field order (each correction or retraction right after what it amends), as
//! the log stood at a position. A checkpoint is brought forward to a later position as long as
//! no event appended since then belongs to an earlier day: the [`DayLedger`] (folded with the
//! live views, in the snapshot) knows where such late arrivals are, so a late event
//! invalidates exactly the checkpoints of the days after its own.
//!
//! Checkpoints are a cache: they live in a directory next to the views' snapshot (or in memory
//! for a service without one), are checked against the chain hash at their position, and any
//! that is missing, stale or unreadable is rebuilt from an earlier one.
//!
//! File layout: `GWDAY002`, the projection code version (u32 BE), the BLAKE3 hash of the body
//! (32 bytes), then the body: bincode of `Saved`, compressed with zstd (level 3: about a third
//! of the size, 0.9 MB -> 0.25 MB for 200 gates, decompressed in under a millisecond). A file
//! torn by a crash fails its hash; one of another layout or code version (named in the file's
//! name, see [`file_name`]) is removed when the shelf opens.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use events_schema::{ChainHash, Event, RecordedEvent, Timestamp};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use projections::{BoardState, CheckpointBoard, IssueBoard, Registry, local_day};
use serde::{Deserialize, Serialize};
use store::{EventStore, StoreError};
use uuid::Uuid;

use crate::{PROJECTION_CODE_VERSION, Service, Times};

const MAGIC: &[u8; 8] = b"GWDAY002";

/// zstd's level for the checkpoints: written once, read by many queries.
const ZSTD_LEVEL: i32 = 3;

/// The most bytes a checkpoint's body may decompress to (its frame says how many; 0.9 MB for
/// 200 gates): a damaged file that claims more is not read.
const BODY_BYTES_MAX: u64 = 1 << 30;

/// Why a kept checkpoint cannot be used.
#[derive(Debug)]
enum Unusable {
    /// Reading it failed (an I/O error other than its absence): it may serve the next query.
    Unreadable,
    /// Gone, torn, or of another layout, code version or time zone: never used again.
    Invalid,
}

/// A checkpoint is kept after about this many events have been folded since the last kept
/// one: a query folds at most this many events more than its own period's.
const CHECKPOINT_SPACING_EVENTS: u64 = 6_000;

/// Versions of one day's checkpoint kept (the newest; older ones serve `known_at` queries).
const VERSIONS_KEPT: usize = 3;

/// A late arrival this close (in positions) to the last late arrival of its day joins its
/// span (see `DayLedger::late`).
const LATE_SPAN_GAP: u64 = 10_000;

/// A fold of more days than this is done by one query at a time (see `views_before`).
const LONG_FOLD_DAYS: usize = 3;

/// How deep a chain of corrections of corrections is followed.
pub(crate) const AMENDMENT_DEPTH_MAX: usize = 16;

/// The read views: what status, replay and reports are computed from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ReadViews {
    pub registry: Registry,
    pub checkpoints: CheckpointBoard,
    pub issues: IssueBoard,
}

impl ReadViews {
    pub fn new(time_zone: TimeZone) -> ReadViews {
        ReadViews {
            registry: Registry::default(),
            checkpoints: CheckpointBoard::new(time_zone),
            issues: IssueBoard::default(),
        }
    }

    pub fn apply(&mut self, event: &RecordedEvent) {
        self.registry.apply(event);
        self.checkpoints.apply(event);
        self.issues.apply(event);
    }

    pub fn status(&self, at: Timestamp, site: Option<&events_schema::EntityId>) -> projections::StatusReport {
        projections::status_at(&self.registry, &self.checkpoints, &self.issues, at, site)
    }
}

/// Which local day each event belongs to, as far as checkpoints care, folded in log order:
/// where the latest day rose, where events arrived for a day earlier than the latest (late
/// arrivals, and corrections of earlier days), and how many events each day has. It grows
/// with the days and the bursts of late arrivals, not with the events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DayLedger {
    /// (position, day): from this position on, `day` is the latest day any event belongs to.
    rises: Vec<(u64, Date)>,
    /// Per day, spans `(first, last)` of positions (ascending, apart) that hold every event
    /// that arrived for it while a later day was the latest, and maybe others between them:
    /// a late arrival within `LATE_SPAN_GAP` positions of its day's last span extends it. So
    /// a burst of them (a day's paper records entered the next morning, appenders that lag
    /// at midnight) is one span, not a position each; both ends of a span are late arrivals.
    late: BTreeMap<Date, Vec<(u64, u64)>>,
    /// Events per day.
    counts: BTreeMap<Date, u64>,
}

impl DayLedger {
    /// Notes the event at `position` (the next in log order), which belongs to `day`.
    pub fn note(&mut self, position: u64, day: Date) {
        let count = self.counts.entry(day).or_default();
        *count = count.saturating_add(1);
        match self.rises.last() {
            Some((_, latest)) if day < *latest => {
                let spans = self.late.entry(day).or_default();
                match spans.last_mut() {
                    Some((_, last)) if position.saturating_sub(*last) <= LATE_SPAN_GAP => *last = position,
                    _ => spans.push((position, position)),
                }
            }
            Some((_, latest)) if day == *latest => {}
            _ => self.rises.push((position, day)),
        }
    }

    /// The latest day of the events up to `position`.
    fn latest_day_at(&self, position: u64) -> Option<Date> {
        let rises = self.rises.partition_point(|(at, _)| *at <= position);
        rises.checked_sub(1).map(|k| self.rises[k].1)
    }

    /// Whether the views of everything before `day` as the log stood at `built_at` are also
    /// those as it stands at `at`: nothing appended after `built_at`, up to `at`, belongs to
    /// a day before `day`. An event that is not late belongs to the latest day or after it,
    /// so that holds for days up to the latest at `built_at` unless a late arrival says not.
    /// Exact when `at` is the log's end (a span that reaches past `built_at` ends with a late
    /// arrival after it); as the log stood before its end, a span that reaches into
    /// `built_at..=at` says not even if its late arrivals are all outside (a checkpoint
    /// wrongly refused costs a fold, never a wrong answer).
    fn still_holds(&self, day: Date, built_at: u64, at: u64) -> bool {
        built_at <= at
            && self.latest_day_at(built_at).is_some_and(|latest| day <= latest)
            && self.late.range(..day).all(|(_, spans)| {
                let next = spans.partition_point(|(_, last)| *last <= built_at);
                spans.get(next).is_none_or(|(first, _)| *first > at)
            })
    }

    /// The days with events, from `from` (inclusive, from the first when `None`) to `until`
    /// (exclusive).
    pub fn days(&self, from: Option<Date>, until: Date) -> Vec<Date> {
        let from = from.unwrap_or(Date::MIN);
        if from >= until {
            return Vec::new();
        }
        self.counts.range(from..until).map(|(day, _)| *day).collect()
    }

    pub fn count(&self, day: Date) -> u64 {
        self.counts.get(&day).copied().unwrap_or(0)
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    time_zone: String,
    day: Date,
    built_at: u64,
    hash: ChainHash,
    registry: Registry,
    board: BoardState,
    issues: IssueBoard,
}

/// Where day checkpoints are kept: `(day, position)` -> the views before `day` as the log
/// stood at `position`.
#[derive(Debug)]
pub(crate) struct Shelf {
    dir: Option<PathBuf>,
    keys: Mutex<BTreeSet<(Date, u64)>>,
    /// The checkpoints of a service without a directory.
    memory: Mutex<HashMap<(Date, u64), Vec<u8>>>,
}

/// `<day>@<position>.<layout>-<projection code version>.view`: the versions are in the name so
/// that files no code of this version reads are found (and removed) without reading them.
fn file_name((day, built_at): (Date, u64)) -> String {
    format!("{day}@{built_at}{}", file_suffix())
}

fn file_suffix() -> String {
    format!(".{}-{PROJECTION_CODE_VERSION}.view", String::from_utf8_lossy(MAGIC))
}

impl Shelf {
    pub fn in_memory() -> Shelf {
        Shelf { dir: None, keys: Mutex::new(BTreeSet::new()), memory: Mutex::new(HashMap::new()) }
    }

    /// The checkpoints kept in `dir` (created when missing); files of other versions are
    /// removed. A directory that cannot be read only makes queries slower.
    pub fn in_dir(dir: PathBuf) -> Shelf {
        let mut keys = BTreeSet::new();
        let suffix = file_suffix();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    // A save that a crash cut short leaves its temporary file behind; a
                    // checkpoint of another layout or code version is never read again.
                    let temporary = name.starts_with('.') && name.contains(".view.");
                    let other_version = name.ends_with(".view") && !name.ends_with(&suffix);
                    if temporary || other_version {
                        let _ = std::fs::remove_file(entry.path());
                        continue;
                    }
                    let Some((day, built_at)) = name.strip_suffix(&suffix).and_then(|n| n.split_once('@')) else {
                        continue;
                    };
                    if let (Ok(day), Ok(built_at)) = (day.parse::<Date>(), built_at.parse::<u64>()) {
                        keys.insert((day, built_at));
                    }
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(%error, dir = %dir.display(), "day checkpoints unreadable; rebuilding them"),
        }
        Shelf { dir: Some(dir), keys: Mutex::new(keys), memory: Mutex::new(HashMap::new()) }
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, BTreeSet<(Date, u64)>> {
        self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kept checkpoints of `day` or earlier, the latest day and position first.
    fn candidates(&self, day: Date) -> Vec<(Date, u64)> {
        self.keys().range(..=(day, u64::MAX)).rev().copied().collect()
    }

    fn read(&self, key: (Date, u64)) -> Result<Vec<u8>, Unusable> {
        match &self.dir {
            Some(dir) => std::fs::read(dir.join(file_name(key))).map_err(|error| match error.kind() {
                std::io::ErrorKind::NotFound => Unusable::Invalid,
                _ => {
                    tracing::warn!(%error, day = %key.0, position = key.1, "a day checkpoint cannot be read");
                    Unusable::Unreadable
                }
            }),
            None => self
                .memory
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&key)
                .cloned()
                .ok_or(Unusable::Invalid),
        }
    }

    fn load(&self, key: (Date, u64), time_zone: &TimeZone) -> Result<(ReadViews, ChainHash), Unusable> {
        let bytes = self.read(key)?;
        let body = bytes.strip_prefix(MAGIC).ok_or(Unusable::Invalid)?;
        let (version, body) = body.split_at_checked(4).ok_or(Unusable::Invalid)?;
        if version != PROJECTION_CODE_VERSION.to_be_bytes() {
            return Err(Unusable::Invalid);
        }
        let (hash, body) = body.split_at_checked(32).ok_or(Unusable::Invalid)?;
        if blake3::hash(body).as_bytes() != hash {
            tracing::warn!(day = %key.0, position = key.1, "a day checkpoint fails its hash; rebuilding it");
            return Err(Unusable::Invalid);
        }
        let size = match zstd::zstd_safe::get_frame_content_size(body) {
            Ok(Some(size)) if size <= BODY_BYTES_MAX => usize::try_from(size).map_err(|_| Unusable::Invalid)?,
            _ => return Err(Unusable::Invalid),
        };
        let body = zstd::bulk::decompress(body, size).map_err(|_| Unusable::Invalid)?;
        let (saved, _) = bincode::serde::decode_from_slice::<Saved, _>(&body, bincode::config::standard())
            .map_err(|_| Unusable::Invalid)?;
        if Some(saved.time_zone.as_str()) != time_zone.iana_name() || (saved.day, saved.built_at) != key {
            return Err(Unusable::Invalid);
        }
        let views = ReadViews {
            registry: saved.registry,
            checkpoints: CheckpointBoard::restore(time_zone.clone(), saved.board),
            issues: saved.issues.restored(),
        };
        Ok((views, saved.hash))
    }

    fn save(&self, key: (Date, u64), views: &ReadViews, hash: ChainHash, time_zone: &TimeZone) {
        let saved = Saved {
            time_zone: time_zone.iana_name().unwrap_or_default().to_owned(),
            day: key.0,
            built_at: key.1,
            hash,
            registry: views.registry.clone(),
            board: views.checkpoints.state().clone(),
            issues: views.issues.clone(),
        };
        let encoded = bincode::serde::encode_to_vec(&saved, bincode::config::standard())
            .map_err(|error| error.to_string())
            .and_then(|body| zstd::bulk::compress(&body, ZSTD_LEVEL).map_err(|error| error.to_string()));
        let body = match encoded {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "a day checkpoint could not be encoded");
                return;
            }
        };
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&PROJECTION_CODE_VERSION.to_be_bytes());
        bytes.extend_from_slice(blake3::hash(&body).as_bytes());
        bytes.extend_from_slice(&body);
        match &self.dir {
            Some(dir) => {
                let write = || -> std::io::Result<()> {
                    std::fs::create_dir_all(dir)?;
                    let temporary = dir.join(format!(".{}.{}", file_name(key), Uuid::now_v7()));
                    std::fs::write(&temporary, &bytes)?;
                    std::fs::rename(&temporary, dir.join(file_name(key)))
                };
                if let Err(error) = write() {
                    tracing::warn!(%error, "a day checkpoint could not be written");
                    return;
                }
            }
            None => {
                self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, bytes);
            }
        }
        let stale: Vec<(Date, u64)> = {
            let mut keys = self.keys();
            keys.insert(key);
            // The newest versions, and always the one just written (an older position's, for a
            // `known_at` query, would otherwise go at once).
            let others: Vec<(Date, u64)> =
                keys.range((key.0, 0)..=(key.0, u64::MAX)).copied().filter(|other| *other != key).collect();
            let stale = others[..others.len().saturating_sub(VERSIONS_KEPT - 1)].to_vec();
            for old in &stale {
                keys.remove(old);
            }
            stale
        };
        for old in stale {
            self.forget(old);
        }
    }

    /// Drops a checkpoint, its file too.
    fn forget(&self, key: (Date, u64)) {
        self.keys().remove(&key);
        match &self.dir {
            Some(dir) => {
                let _ = std::fs::remove_file(dir.join(file_name(key)));
            }
            None => {
                self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
            }
        }
    }
}

/// One event of a day, with what a fold needs to know about it.
#[derive(Clone, Debug)]
pub(crate) struct DayStep {
    pub event: RecordedEvent,
    /// For a correction or retraction: the event it amends, when the log holds it (earlier).
    /// Boxed: few events amend another, and a day's steps are many.
    pub target: Option<Box<RecordedEvent>>,
    /// Whether a fold applies it here. A correction or retraction of an event the log holds
    /// is applied right after that event instead, wherever it lies.
    pub applied_here: bool,
    /// The corrections and retractions of this event (and of those, in turn), in log order:
    /// applied right after it.
    pub amendments: Vec<RecordedEvent>,
}

impl DayStep {
    /// What the event says as known now: its last correction's replacement, or `None` when
    /// a retraction took it back.
    pub fn effective(&self) -> Option<&Event> {
        let mut effective = &self.event.event;
        for amendment in &self.amendments {
            match &amendment.event {
                Event::EventRetracted(r) if r.retracted_event_id == self.event.event_id => return None,
                Event::EventCorrected(c) if c.corrected_event_id == self.event.event_id => effective = &c.replacement,
                _ => {}
            }
        }
        Some(effective)
    }

    /// Whether `times` look at this event (an amendment by when its target happened).
    pub fn admitted(&self, times: Times) -> bool {
        times.admits_with_target(&self.event, self.target.as_ref().map(|target| target.occurred_at))
    }

    pub fn apply_to(&self, views: &mut ReadViews) {
        if self.applied_here {
            views.apply(&self.event);
            for amendment in &self.amendments {
                views.apply(amendment);
            }
        }
    }
}

/// `steps` as a summary reads them.
pub(crate) fn period_events(steps: &[DayStep]) -> Vec<projections::PeriodEvent<'_>> {
    steps
        .iter()
        .map(|step| projections::PeriodEvent {
            event: &step.event,
            effective: step.effective(),
            target: step.target.as_ref().map(|target| &target.event),
        })
        .collect()
}

/// The day an event belongs to for the checkpoints: its own, or for a correction or
/// retraction, that of the event it amends (it changes what is known of that day). An
/// amendment that the log holds before its target (an imported log can) is applied on its
/// own day, as the day's steps apply it (`DayStep::applied_here`), and so belongs there.
pub(crate) async fn day_of<S: EventStore>(
    store: &S,
    event: &RecordedEvent,
    time_zone: &TimeZone,
) -> Result<Date, StoreError> {
    let mut occurred_at = event.occurred_at;
    let mut position = event.global_position;
    let mut amends = event.event.facts().amends().map(|amends| amends.event_id());
    for _ in 0..AMENDMENT_DEPTH_MAX {
        let Some(target_id) = amends else { break };
        let Some(target) = store.read_event(target_id).await? else { break };
        if target.global_position > position {
            break;
        }
        occurred_at = target.occurred_at;
        position = target.global_position;
        amends = target.event.facts().amends().map(|amends| amends.event_id());
    }
    Ok(local_day(occurred_at, time_zone))
}

impl<S: EventStore> Service<S> {
    /// The event at global `position`, if the log holds one there.
    pub(crate) async fn event_at(&self, position: u64) -> Result<Option<RecordedEvent>, StoreError> {
        if position == 0 {
            return Ok(None);
        }
        Ok(self.store.read_all(position, 1).await?.into_iter().next())
    }

    /// The chain hash of the event at `position` (zeros for position 0 or past the head).
    pub(crate) async fn hash_at(&self, position: u64) -> Result<ChainHash, StoreError> {
        Ok(self.event_at(position).await?.map_or([0; 32], |event| event.hash))
    }

    /// The last position whose event was recorded by `known_at` (recorded times rise with the
    /// position), or `head` when `known_at` is `None`.
    pub(crate) async fn position_known_at(&self, known_at: Option<Timestamp>, head: u64) -> Result<u64, StoreError> {
        let Some(known_at) = known_at else { return Ok(head) };
        // The answer lies in lo..=hi.
        let (mut lo, mut hi) = (0, head);
        while lo < hi {
            let middle = lo + (hi - lo).div_ceil(2);
            let recorded_at = self.event_at(middle).await?.map(|event| event.recorded_at);
            if recorded_at.is_some_and(|recorded_at| recorded_at <= known_at) {
                lo = middle;
            } else {
                hi = middle - 1;
            }
        }
        Ok(lo)
    }

    /// The events that happened on local `day`, as the log stood at position `at`, in the
    /// order they happened, each with its target and amendments.
    pub(crate) async fn day_steps(&self, day: Date, at: u64) -> Result<Vec<DayStep>, StoreError> {
        let mut steps = self
            .day_events(day, |event| {
                (event.global_position <= at).then_some(DayStep {
                    event,
                    target: None,
                    applied_here: true,
                    amendments: Vec::new(),
                })
            })
            .await?;
        for step in &mut steps {
            let Some(amends) = step.event.event.facts().amends() else { continue };
            step.target = self.store.read_event(amends.event_id()).await?.map(Box::new);
            step.applied_here =
                step.target.as_ref().is_none_or(|target| target.global_position >= step.event.global_position);
        }
        // The amendments of each event applied here, found in the audit index (a brief read
        // lock per round, not held across the store reads).
        let mut wanted: Vec<(usize, Uuid)> = steps
            .iter()
            .enumerate()
            .filter(|(_, step)| step.applied_here)
            .map(|(k, s)| (k, s.event.event_id))
            .collect();
        for _ in 0..AMENDMENT_DEPTH_MAX {
            if wanted.is_empty() {
                break;
            }
            let found: Vec<(usize, Uuid)> = {
                let views = self.views.read().await;
                wanted
                    .iter()
                    .flat_map(|(k, id)| views.audit.amendments(*id).map(move |amendment| (*k, amendment)))
                    .collect()
            };
            wanted.clear();
            for (k, amendment_id) in found {
                let Some(amendment) = self.store.read_event(amendment_id).await? else { continue };
                // An amendment appended before what it amends (a raw append) was applied
                // where it lies.
                let after_target = amendment.global_position > steps[k].event.global_position;
                if amendment.global_position <= at && after_target {
                    wanted.push((k, amendment.event_id));
                    steps[k].amendments.push(amendment);
                }
            }
        }
        for step in &mut steps {
            step.amendments.sort_by_key(|amendment| amendment.global_position);
        }
        Ok(steps)
    }

    /// Where a fold of the views before local `day` at position `at` starts: the latest
    /// usable checkpoint (or nothing), the days with events to fold from it, and the latest
    /// day at `at`.
    async fn fold_start(&self, day: Date, at: u64) -> Result<(ReadViews, Vec<Date>, Option<Date>), StoreError> {
        // Checkpoints that could not be read by this query (I/O errors).
        let mut unreadable = BTreeSet::new();
        let (start, mut days, latest) = loop {
            let (candidate, days, latest) = {
                let views = self.views.read().await;
                let ledger = &views.days;
                let candidate = self
                    .days
                    .candidates(day)
                    .into_iter()
                    .find(|key| !unreadable.contains(key) && ledger.still_holds(key.0, key.1, at));
                let days = ledger.days(candidate.map(|(checkpoint_day, _)| checkpoint_day), day);
                (candidate, days, ledger.latest_day_at(at))
            };
            let Some(key) = candidate else { break (ReadViews::new(self.time_zone.clone()), days, latest) };
            let loaded = self.days.load(key, &self.time_zone);
            let hash_then = self.event_at(key.1).await?.map(|event| event.hash);
            match loaded {
                Ok((views, hash)) if key.1 == 0 || hash_then == Some(hash) => break (views, days, latest),
                Err(Unusable::Unreadable) => {
                    unreadable.insert(key);
                }
                // Invalid, or from another log: never used again. (A query that saves the same
                // key meanwhile may lose its file: it is rebuilt when next needed.)
                Ok(_) | Err(Unusable::Invalid) => self.days.forget(key),
            }
        };
        // No event at or before `at` belongs to a day after the latest one then.
        days.retain(|folded_day| latest.is_some_and(|latest| *folded_day <= latest));
        Ok((start, days, latest))
    }

    /// The read views of everything that happened before local `day`, as the log stood at
    /// position `at` (at most the views' position), from the latest usable checkpoint brought
    /// forward day by day; the checkpoints this passes are kept for the next query.
    pub(crate) async fn views_before(&self, day: Date, at: u64) -> Result<ReadViews, StoreError> {
        let (mut views, mut days, mut latest) = self.fold_start(day, at).await?;
        // A long fold (after a late arrival for an old day, or on a store without
        // checkpoints) is done once: concurrent queries that need it wait for it, then start
        // from what it kept.
        let _rebuilding;
        if days.len() > LONG_FOLD_DAYS {
            _rebuilding = self.days_rebuild.lock().await;
            (views, days, latest) = self.fold_start(day, at).await?;
        }
        if days.is_empty() {
            return Ok(views);
        }
        let hash_at = self.hash_at(at).await?;
        let mut since_kept = 0u64;
        for (k, folded_day) in days.iter().enumerate() {
            for step in self.day_steps(*folded_day, at).await? {
                step.apply_to(&mut views);
            }
            since_kept = since_kept.saturating_add(self.views.read().await.days.count(*folded_day));
            // The views now hold everything before the next day with events (or `day`).
            let next = days.get(k + 1).copied().unwrap_or(day);
            let last = k + 1 == days.len();
            if (last || since_kept >= CHECKPOINT_SPACING_EVENTS) && latest.is_some_and(|latest| next <= latest) {
                self.days.save((next, at), &views, hash_at, &self.time_zone);
                since_kept = 0;
            }
        }
        Ok(views)
    }

    /// The read views as of field time `cut` (everything that happened by then) as the log
    /// stood at position `at`.
    pub(crate) async fn views_until(&self, cut: Timestamp, at: u64) -> Result<ReadViews, StoreError> {
        let day = local_day(cut, &self.time_zone);
        let mut views = self.views_before(day, at).await?;
        for step in self.day_steps(day, at).await? {
            if step.event.occurred_at <= cut {
                step.apply_to(&mut views);
            }
        }
        Ok(views)
    }

    /// Brings the day checkpoints forward to the latest day of the log, so that the next
    /// query of any day starts from a checkpoint near it. Returns that day.
    pub async fn checkpoint_days(&self) -> Result<Option<Date>, StoreError> {
        let head = self.catch_up().await?;
        let (latest, kept) = {
            let views = self.views.read().await;
            let latest = views.days.latest_day_at(head);
            // Already kept for the latest day and still holding: nothing to load or fold
            // (the server asks once a minute).
            let kept = latest.is_some_and(|latest| {
                self.days
                    .candidates(latest)
                    .into_iter()
                    .take_while(|(day, _)| *day == latest)
                    .any(|(day, built_at)| views.days.still_holds(day, built_at, head))
            });
            (latest, kept)
        };
        if let (Some(latest), false) = (latest, kept) {
            self.views_before(latest, head).await?;
        }
        Ok(latest)
    }
}

#[cfg(test)]
mod tests {
    // Test code: an unwrap that fails is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn day(d: i8) -> Date {
        jiff::civil::date(2020, 6, d)
    }

    #[test]
    fn a_late_arrival_invalidates_the_checkpoints_of_the_days_after_its_own_only() {
        let mut ledger = DayLedger::default();
        for (position, d) in [(1, 1), (2, 1), (3, 2), (4, 3), (5, 4)] {
            ledger.note(position, day(d));
        }
        // Built at 5: the views before the 2nd, 3rd and 4th hold until something late comes.
        for d in 2..=4 {
            assert!(ledger.still_holds(day(d), 5, 5));
        }
        // Not for a day after the latest: the next in-order event may belong to it.
        assert!(!ledger.still_holds(day(5), 5, 5));
        // Nor at a position before the one it was built at.
        assert!(!ledger.still_holds(day(2), 5, 4));
        ledger.note(6, day(2));
        assert!(ledger.still_holds(day(2), 5, 6), "an event of the 2nd changes nothing before the 2nd");
        assert!(!ledger.still_holds(day(3), 5, 6), "it changes what came before the 3rd");
        assert!(!ledger.still_holds(day(4), 5, 6));
        assert!(ledger.still_holds(day(4), 6, 6), "built after it, it holds");
        assert!(ledger.still_holds(day(4), 5, 5), "as the log stood at 5, it still holds");
        assert_eq!(ledger.days(Some(day(2)), day(4)), [day(2), day(3)]);
        assert_eq!(ledger.count(day(2)), 2);
    }

    /// Late arrivals close together are one span: the ledger does not grow with them, and a
    /// checkpoint is still judged right as the log stands at its end. Far apart, they are
    /// spans of their own.
    #[test]
    fn a_burst_of_late_arrivals_is_one_span_and_checkpoints_are_judged_as_before() {
        let mut ledger = DayLedger::default();
        ledger.note(1, day(1));
        ledger.note(2, day(2));
        // The 1st's paper records entered on the 2nd, between the 2nd's own events.
        for position in 3..=2_000 {
            ledger.note(position, if position % 3 == 0 { day(1) } else { day(2) });
        }
        assert_eq!(ledger.late[&day(1)], [(3, 1_998)]);
        assert!(!ledger.still_holds(day(2), 1_000, 2_000), "late arrivals of the 1st came after 1,000");
        assert!(ledger.still_holds(day(2), 1_998, 2_000), "none after 1,998");
        assert!(ledger.still_holds(day(1), 2, 2_000), "nothing late before the 1st");
        // As the log stood at 1,500, after a checkpoint built at 1,000: late arrivals came
        // in between (1,002, ...), so it does not hold, exactly as with every position kept.
        assert!(!ledger.still_holds(day(2), 1_000, 1_500));
        // Far from the span: a span of its own.
        ledger.note(2_001 + LATE_SPAN_GAP, day(1));
        assert_eq!(ledger.late[&day(1)], [(3, 1_998), (2_001 + LATE_SPAN_GAP, 2_001 + LATE_SPAN_GAP)]);
        assert!(ledger.still_holds(day(2), 1_998, 2_000 + LATE_SPAN_GAP));
        assert!(!ledger.still_holds(day(2), 1_998, 2_001 + LATE_SPAN_GAP));
        assert_eq!(ledger.count(day(1)), 1 + 666 + 1);
    }

    /// An imported log may hold a correction before the event it corrects: the day's steps
    /// then apply it on its own day, and the checkpoints must count it there too.
    #[tokio::test]
    async fn an_amendment_stored_before_its_target_belongs_to_its_own_day() {
        use events_schema::{EntityId, Event, EventCorrected, GridRegistered, NewEvent};
        let dir = tempfile::tempdir().unwrap();
        let store = store_sled::SledStore::open(store_sled::SledConfig::new(dir.path())).unwrap();
        let zone = TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap();
        let id = |text: &str| EntityId::new(text).unwrap();
        let grid = |name: &str| -> Event {
            GridRegistered { grid_id: id("g"), community_id: id("c"), name: name.into() }.into()
        };
        let new = |event_id, occurred_at: &str, event| NewEvent {
            event_id,
            occurred_at: occurred_at.parse().unwrap(),
            actor: id("importer"),
            correlation_id: None,
            causation_id: None,
            event,
        };
        let (target_id, correction_id) = (Uuid::now_v7(), Uuid::now_v7());
        let correction: Event = EventCorrected {
            corrected_event_id: target_id,
            corrected_by: id("importer"),
            reason: "typed in again".into(),
            replacement: Box::new(grid("Grid 2")),
        }
        .into();
        let appends = [
            (id("correction"), new(correction_id, "2020-06-03T09:00:00+08:00", correction)),
            (id("grid:g"), new(target_id, "2020-06-01T09:00:00+08:00", grid("Grid 1"))),
        ];
        for (stream, event) in appends {
            store.append(&stream, store::ExpectedVersion::Any, vec![event]).await.unwrap().unwrap();
        }
        let logged = store.read_all(1, 2).await.unwrap();
        assert_eq!(day_of(&store, &logged[0], &zone).await.unwrap(), day(3), "the correction, before its target");
        assert_eq!(day_of(&store, &logged[1], &zone).await.unwrap(), day(1));
        // A correction after its target belongs to the target's day.
        let later = new(
            Uuid::now_v7(),
            "2020-06-04T09:00:00+08:00",
            EventCorrected {
                corrected_event_id: target_id,
                corrected_by: id("importer"),
                reason: "once more".into(),
                replacement: Box::new(grid("Grid 3")),
            }
            .into(),
        );
        store.append(&id("correction"), store::ExpectedVersion::Any, vec![later]).await.unwrap().unwrap();
        let logged = store.read_all(3, 1).await.unwrap();
        assert_eq!(day_of(&store, &logged[0], &zone).await.unwrap(), day(1));
    }

    #[test]
    fn a_kept_day_keeps_its_newest_versions_only() {
        let shelf = Shelf::in_memory();
        let zone = TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap();
        let views = ReadViews::new(zone.clone());
        for built_at in 1..=5 {
            shelf.save((day(2), built_at), &views, [7; 32], &zone);
        }
        shelf.save((day(1), 9), &views, [7; 32], &zone);
        assert_eq!(shelf.candidates(day(2)), [(day(2), 5), (day(2), 4), (day(2), 3), (day(1), 9)]);
        // One for an older position is kept when written, beside the newest.
        shelf.save((day(2), 2), &views, [7; 32], &zone);
        assert_eq!(shelf.candidates(day(2)), [(day(2), 5), (day(2), 4), (day(2), 2), (day(1), 9)]);
        assert_eq!(
            shelf.load((day(2), 5), &zone).ok().map(|(views, hash)| (views.registry, hash)),
            Some((Registry::default(), [7; 32]))
        );
        assert!(shelf.load((day(2), 1), &zone).is_err(), "pruned");
        // A torn or changed file is not used.
        let dir = tempfile::tempdir().unwrap();
        let on_disk = Shelf::in_dir(dir.path().join("days"));
        on_disk.save((day(3), 7), &views, [7; 32], &zone);
        assert!(on_disk.load((day(3), 7), &zone).is_ok());
        let file = dir.path().join("days").join(file_name((day(3), 7)));
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        assert!(matches!(on_disk.load((day(3), 7), &zone), Err(Unusable::Invalid)));
        assert_eq!(Shelf::in_dir(dir.path().join("days")).candidates(day(3)), [(day(3), 7)], "found again on open");
        let other_zone = TimeZone::get("Europe/Paris").unwrap();
        assert!(
            matches!(shelf.load((day(2), 5), &other_zone), Err(Unusable::Invalid)),
            "another time zone's days are other days"
        );
        // A file of the previous layout (the body not compressed) is not used, and forgotten
        // with its file.
        on_disk.save((day(4), 8), &views, [7; 32], &zone);
        let file = dir.path().join("days").join(file_name((day(4), 8)));
        let stored = std::fs::read(&file).unwrap();
        let saved = Saved {
            time_zone: zone.iana_name().unwrap().to_owned(),
            day: day(4),
            built_at: 8,
            hash: [7; 32],
            registry: views.registry.clone(),
            board: views.checkpoints.state().clone(),
            issues: views.issues.clone(),
        };
        let plain = bincode::serde::encode_to_vec(&saved, bincode::config::standard()).unwrap();
        let compressed = &stored[MAGIC.len() + 4 + 32..];
        assert_eq!(zstd::decode_all(compressed).unwrap(), plain, "the body is bincode, compressed with zstd");
        let mut old = b"GWDAY001".to_vec();
        old.extend_from_slice(&stored[MAGIC.len()..MAGIC.len() + 4]);
        old.extend_from_slice(blake3::hash(&plain).as_bytes());
        old.extend_from_slice(&plain);
        std::fs::write(&file, &old).unwrap();
        assert!(matches!(on_disk.load((day(4), 8), &zone), Err(Unusable::Invalid)), "the previous layout");
        on_disk.forget((day(4), 8));
        assert!(!file.exists() && on_disk.candidates(day(4)) == [(day(3), 7)]);
        // Named as the previous layout (or another code version) named its files: removed
        // when the shelf opens, unread.
        let days = dir.path().join("days");
        for name in ["2020-06-05@9.view", "2020-06-05@10.GWDAY002-1.view"] {
            std::fs::write(days.join(name), &old).unwrap();
        }
        let reopened = Shelf::in_dir(days.clone());
        assert_eq!(reopened.candidates(day(5)), [(day(3), 7)]);
        let mut left: Vec<String> =
            std::fs::read_dir(&days).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [file_name((day(3), 7))]);
        // One that cannot be read now (here a directory where its file should be) is skipped,
        // not removed: the next query may read it.
        std::fs::create_dir(days.join(file_name((day(6), 1)))).unwrap();
        let reopened = Shelf::in_dir(days.clone());
        assert!(matches!(reopened.load((day(6), 1), &zone), Err(Unusable::Unreadable)));
        assert_eq!(reopened.candidates(day(6))[0], (day(6), 1));
    }
}
