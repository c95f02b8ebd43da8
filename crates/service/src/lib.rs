//! The service: executes commands against the store and keeps the views caught up.
//!
//! `execute` is parse -> load -> decide -> append: it catches the views up with the log,
//! decides the command against the domain state, and appends the events with the expected
//! version of the command's stream. The commands of one stream take their turn (a lock per
//! stream), so a command without an expected version is never refused because others write
//! the same stream through this service; a conflict with a writer outside it (another node)
//! makes it catch up again and retry. A command
//! that names its event id is safe to retry: once that id is in the log, the original
//! positions come back and nothing new is written.

pub mod backup;
pub mod day_file;
mod days;
pub mod demo;
mod replay;
pub mod seal_key;
mod seals;
mod snapshot;
mod stream_locks;

use std::collections::HashMap;

use days::{DayLedger, ReadViews};
use domain::{Command, Context, DomainError, State};
use events_schema::{EntityId, InvalidEntityId, NewEvent, Place, RecordedEvent, Timestamp};
use jiff::tz::TimeZone;
use projections::{AuditIndex, StatusReport};
use store::{Committed, EventStore, ExpectedVersion, READ_PAGE_EVENTS_MAX, Rejection, StoreError};
use tokio::sync::RwLock;
use uuid::Uuid;

pub use replay::{Replay, ReplayStep};
pub use seals::{DaySeals, ProofError, SealCheck, SealProblem, SealRecord};
pub use snapshot::PROJECTION_CODE_VERSION;

/// How often `execute` retries after a version conflict with a writer outside this service
/// (another node of a cluster) before it gives up. Writers inside it take their turn and
/// never conflict.
pub const CONFLICT_RETRIES_MAX: usize = 16;

/// The pause before retry `attempt` (from 1) after a conflict with an outside writer: it
/// doubles from 1 ms up to 64 ms, so that two nodes racing on one stream fall out of step.
fn conflict_backoff(attempt: usize) -> std::time::Duration {
    std::time::Duration::from_millis(1 << attempt.saturating_sub(1).min(6))
}

/// Why a command was not executed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The rules refused it; nothing was written.
    #[error(transparent)]
    Refused(#[from] DomainError),
    /// The store refused the append (bad request, or an event id used by another command).
    #[error(transparent)]
    Rejected(Rejection),
    #[error("the stream kept changing: gave up after {CONFLICT_RETRIES_MAX} retries")]
    TooManyConflicts,
    #[error(transparent)]
    InvalidStream(#[from] InvalidEntityId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The class of a failure: the one mapping that both the HTTP API (its status) and the CLI
/// (its exit code) read, so that the same case is the same class everywhere (the table is
/// in the README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself is not valid, whatever the log holds (HTTP 422, exit 2).
    Invalid,
    /// An entity it names does not exist (HTTP 404, exit 3).
    NotFound,
    /// The log's current state does not allow it: a transition the entity's state does not
    /// allow, a stream that moved on, an event id used by another command (HTTP 409, exit 3).
    Conflict,
    /// The store stopped taking work for now (it is being reopened after a failed write) or
    /// is closed (HTTP 503 with `Retry-After`, exit 1).
    Unavailable,
    /// The disk holding the log is full: the write was refused whole, reads go on, and
    /// writes resume by themselves once space is freed (HTTP 507 with `Retry-After`, exit 1).
    StorageFull,
    /// The log was found altered or cut short (HTTP 500, exit 4).
    Integrity,
    /// Anything else: I/O, the backend (HTTP 500, exit 1).
    Internal,
}

impl ErrorClass {
    /// The class of an operating error of the store.
    pub fn of_store(error: &StoreError) -> ErrorClass {
        match error {
            StoreError::Corrupt { .. } | StoreError::Truncated { .. } | StoreError::Damaged(_) => ErrorClass::Integrity,
            StoreError::Poisoned(_) | StoreError::Closed | StoreError::InUse(_) => ErrorClass::Unavailable,
            StoreError::StorageFull(_) => ErrorClass::StorageFull,
            StoreError::Backend(_) | StoreError::Io(_) => ErrorClass::Internal,
        }
    }

    /// The class of an append the store refused.
    pub fn of_rejection(rejection: &Rejection) -> ErrorClass {
        match rejection {
            Rejection::Invalid(_) => ErrorClass::Invalid,
            Rejection::WrongExpectedVersion { .. } | Rejection::EventIdInUse { .. } => ErrorClass::Conflict,
        }
    }
}

impl ServiceError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ServiceError::Refused(refusal) => match refusal.class() {
                domain::RefusalClass::NotFound => ErrorClass::NotFound,
                domain::RefusalClass::InvalidTransition => ErrorClass::Conflict,
                domain::RefusalClass::InvalidCommand => ErrorClass::Invalid,
            },
            ServiceError::Rejected(rejection) => ErrorClass::of_rejection(rejection),
            ServiceError::TooManyConflicts => ErrorClass::Conflict,
            ServiceError::InvalidStream(_) => ErrorClass::Invalid,
            ServiceError::Store(error) => ErrorClass::of_store(error),
        }
    }
}

/// The two times a query can be asked at (see [`Service::status_at_times`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Times {
    /// Field time: only what occurred by then.
    pub as_of: Option<Timestamp>,
    /// Log time: only what was recorded by then.
    pub known_at: Option<Timestamp>,
}

impl Times {
    /// Now, as known now: every event.
    pub const NOW: Times = Times { as_of: None, known_at: None };

    /// Whether `event` is part of the world these times look at, by its own times (an
    /// amendment counts by its target's field time instead: see [`Times::admits_amendment`]).
    pub fn admits(&self, event: &RecordedEvent) -> bool {
        self.as_of.is_none_or(|as_of| event.occurred_at <= as_of)
            && self.known_at.is_none_or(|known_at| event.recorded_at <= known_at)
    }

    /// Whether an amendment (a correction or retraction) of an event that occurred at
    /// `target_occurred_at` counts: it fixes what is known of its target, so it counts when
    /// the target happened by `as_of`, whenever it was made, if it was recorded by `known_at`.
    pub fn admits_amendment(&self, amendment: &RecordedEvent, target_occurred_at: Timestamp) -> bool {
        self.as_of.is_none_or(|as_of| target_occurred_at <= as_of)
            && self.known_at.is_none_or(|known_at| amendment.recorded_at <= known_at)
    }

    /// Whether `event` counts, given (for an amendment) when its target occurred, if the log
    /// holds the target: an amendment of an event the log does not hold (a raw append) counts
    /// by its own times, unless a field time asks about its target.
    pub fn admits_with_target(&self, event: &RecordedEvent, target_occurred_at: Option<Timestamp>) -> bool {
        match (event.event.facts().amends(), target_occurred_at) {
            (Some(_), Some(at)) => self.admits_amendment(event, at),
            (Some(_), None) => self.as_of.is_none() && self.admits(event),
            (None, _) => self.admits(event),
        }
    }
}

/// The site a command is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteOf {
    Site(EntityId),
    /// It names a checkpoint or issue the views do not know.
    Unknown,
    /// Its kind belongs to no place (a personal note, a round, a directive).
    Nowhere,
}

/// Who asks, when it happened, and (for safe retries) the event id to use.
#[derive(Clone, Debug)]
pub struct CommandMeta {
    pub event_id: Option<Uuid>,
    /// When it happened in the field; now when not given.
    pub occurred_at: Option<Timestamp>,
    pub actor: EntityId,
    pub correlation_id: Option<Uuid>,
    /// The version the command's stream must be at (optimistic concurrency chosen by the
    /// caller): a mismatch is a conflict and nothing is retried. `None`: the service reads
    /// the version itself and retries on conflicts.
    pub expected_version: Option<u64>,
}

/// Every view, at one position of the log.
#[derive(Debug, PartialEq)]
struct Views {
    domain: State,
    read: ReadViews,
    /// Which day each event belongs to, for the day checkpoints (see [`days`]).
    days: DayLedger,
    /// Where each day's seals are.
    seals: seals::SealIndex,
    /// The time zone local days are counted in.
    time_zone: TimeZone,
    /// Which entities the log names and which events amend which, for timelines of a day.
    audit: AuditIndex,
    /// Last version of every stream, for the expected version of the next append.
    stream_versions: HashMap<EntityId, u64>,
    position: u64,
}

impl Views {
    fn new(time_zone: TimeZone) -> Views {
        Views {
            domain: State::default(),
            read: ReadViews::new(time_zone.clone()),
            days: DayLedger::default(),
            seals: seals::SealIndex::default(),
            time_zone,
            audit: AuditIndex::default(),
            stream_versions: HashMap::new(),
            position: 0,
        }
    }

    /// Applies the next event of the log, which belongs to local `day` (see
    /// [`days::day_of`]), to every view.
    fn apply(&mut self, event: &RecordedEvent, day: jiff::civil::Date) {
        self.domain.apply(event);
        self.audit.apply(event);
        self.read.apply(event);
        self.days.note(event.global_position, day);
        self.seals.apply(event, &self.time_zone);
        self.stream_versions.insert(event.stream_id.clone(), event.stream_version);
        self.position = event.global_position;
    }
}

/// The service over one store.
#[derive(Debug)]
pub struct Service<S> {
    store: S,
    time_zone: TimeZone,
    /// A tokio `RwLock`: held across the store reads of a catch-up.
    views: RwLock<Views>,
    /// Where the views' snapshot is kept, if anywhere.
    snapshot_path: Option<std::path::PathBuf>,
    /// The day checkpoints (next to the snapshot, or in memory).
    days: days::Shelf,
    /// Held by the one query doing a long fold of days (see `days::views_before`).
    days_rebuild: tokio::sync::Mutex<()>,
    /// The commands of one stream take their turn.
    stream_locks: stream_locks::StreamLocks,
    /// The position the views started from when the service opened (a snapshot's, or 0).
    started_from: u64,
}

impl<S: EventStore> Service<S> {
    /// The service over `store`, its views caught up with the whole log.
    pub async fn open(store: S, time_zone: TimeZone) -> Result<Service<S>, StoreError> {
        let service = Service::open_lazily(store, time_zone);
        service.catch_up().await?;
        Ok(service)
    }

    /// The service over `store` with its views not folded yet: they catch up with the log
    /// the first time a command or a view needs them. For callers that only read or append
    /// the raw log.
    pub fn open_lazily(store: S, time_zone: TimeZone) -> Service<S> {
        Service {
            store,
            views: RwLock::new(Views::new(time_zone.clone())),
            time_zone,
            snapshot_path: None,
            days: days::Shelf::in_memory(),
            days_rebuild: tokio::sync::Mutex::new(()),
            stream_locks: stream_locks::StreamLocks::default(),
            started_from: 0,
        }
    }

    /// The service over `store`, starting from the snapshot at `snapshot_path` when it is
    /// usable (same projection code version and time zone, and its position holds the same
    /// event in this log), from position 0 otherwise; then caught up with the log.
    pub async fn open_with_snapshot(
        store: S,
        time_zone: TimeZone,
        snapshot_path: std::path::PathBuf,
    ) -> Result<Service<S>, StoreError> {
        let views =
            snapshot::load(&snapshot_path, &time_zone, &store).await?.unwrap_or_else(|| Views::new(time_zone.clone()));
        let started_from = views.position;
        let days = days::Shelf::in_dir(snapshot_path.with_extension("days"));
        let service = Service {
            store,
            views: RwLock::new(views),
            time_zone,
            snapshot_path: Some(snapshot_path),
            days,
            days_rebuild: tokio::sync::Mutex::new(()),
            stream_locks: stream_locks::StreamLocks::default(),
            started_from,
        };
        service.catch_up().await?;
        Ok(service)
    }

    /// Writes the views' snapshot (atomically), if the service has a snapshot path. Returns
    /// the position it covers.
    pub async fn save_snapshot(&self) -> Result<Option<u64>, StoreError> {
        let Some(path) = &self.snapshot_path else { return Ok(None) };
        self.catch_up().await?;
        let (taken, position) = {
            let views = self.views.read().await;
            let hash = self.hash_at(views.position).await?;
            (snapshot::take(&views, &self.time_zone, hash), views.position)
        };
        // Encoded and written with the views free again: appends do not wait for the disk.
        snapshot::save(path, &taken)?;
        Ok(Some(position))
    }

    /// The position the views started from when the service opened: a snapshot's, or 0.
    pub fn started_from(&self) -> u64 {
        self.started_from
    }

    /// Whether every view of this service (the rules' state included) equals `other`'s: for
    /// tests that views restored from a snapshot are the views folded from position 0.
    pub async fn has_the_views_of<T>(&self, other: &Service<T>) -> bool {
        *self.views.read().await == *other.views.read().await
    }

    /// The position the views have reached.
    pub async fn position(&self) -> u64 {
        self.views.read().await.position
    }

    /// The durable event with id `event_id`, if the log holds one.
    pub async fn event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.store.read_event(event_id).await
    }

    /// Up to `limit` events of the log from `from_position` on (a page of the raw log).
    pub async fn events(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_all(from_position, limit.min(READ_PAGE_EVENTS_MAX)).await
    }

    /// Up to `limit` events of one stream from `from_version` on.
    pub async fn stream_events(
        &self,
        stream_id: &EntityId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_stream(stream_id, from_version, limit.min(READ_PAGE_EVENTS_MAX)).await
    }

    /// A raw append of already-formed events to one stream, all or nothing, past the rules
    /// (for importing a log and for administrators; the caller checks who may do it).
    pub async fn append_raw(
        &self,
        stream_id: &EntityId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Result<Committed, Rejection>, StoreError> {
        // Seals are made by gridwatch alone (`seal_day`): one written by hand could claim to
        // cover events it does not, and later seals would skip them.
        if let Some(event) = events.iter().find(|event| event.event.facts().access() == events_schema::Access::System) {
            return Ok(Err(Rejection::Invalid(format!(
                "{} is written by gridwatch itself (gridwatch seal, or the server once a day ends), never by an append",
                event.event.event_type()
            ))));
        }
        // In the stream's turn, so that it does not make a command of the stream conflict.
        let _turn = self.stream_locks.lock(stream_id).await;
        self.store.append(stream_id, expected, events).await
    }

    /// The global position of the last durable event (0 when the log is empty).
    pub async fn head_position(&self) -> Result<u64, StoreError> {
        self.store.head_position().await
    }

    /// Every event from `from_position` on: the log's, then each new one as it becomes
    /// durable (no gap, no duplicate).
    pub fn subscribe(&self, from_position: u64) -> store::EventStream {
        self.store.subscribe(from_position)
    }

    /// Checks the whole log (chain, versions, `recorded_at` order, the backend's indexes).
    pub async fn verify(&self) -> Result<store::VerifyReport, StoreError> {
        self.store.verify().await
    }

    /// Applies every event the views have not seen yet.
    ///
    /// While the store is stopped for a moment (being reopened after a failed write), the
    /// views answer as they stand: they hold only what was durable. A command decided on them
    /// still appends with the expected version of its stream, so it cannot land on a stream
    /// that moved on meanwhile.
    pub async fn catch_up(&self) -> Result<u64, StoreError> {
        match self.fold_new_events().await {
            // A store stopped by a failed write (being reopened) still has the views folded
            // from what was durable: answer from them, as they stand.
            Err(StoreError::Poisoned(reason)) => {
                tracing::warn!(%reason, "the store is being reopened; answering from the views as they stand");
                Ok(self.views.read().await.position)
            }
            folded => folded,
        }
    }

    /// Folds what the store holds past the views into them; the views' position.
    async fn fold_new_events(&self) -> Result<u64, StoreError> {
        // Most calls find nothing new: a shared lock and the store's head answer that
        // without making concurrent readers wait for one another.
        let head = self.store.head_position().await?;
        {
            let views = self.views.read().await;
            if views.position >= head {
                return Ok(views.position);
            }
        }
        let mut views = self.views.write().await;
        loop {
            let page = self.store.read_all(views.position + 1, READ_PAGE_EVENTS_MAX).await?;
            if page.is_empty() {
                return Ok(views.position);
            }
            for event in &page {
                let day = days::day_of(&self.store, event, &self.time_zone).await?;
                views.apply(event, day);
            }
        }
    }

    /// Decides `command` and appends its events, retrying on version conflicts.
    pub async fn execute(
        &self,
        command: &Command,
        meta: &CommandMeta,
        now: Timestamp,
    ) -> Result<Committed, ServiceError> {
        let stream_id = command.stream_id()?;
        // A correction or retraction: what the log holds under the id it names.
        let target = match command.facts().amends() {
            Some(amends) => self.store.read_event(amends.event_id()).await?,
            None => None,
        };
        let target = target.map(|event| domain::TargetEvent::of(event.event_id, &event.event, event.stream_id));
        let context = Context { now, occurred_at: meta.occurred_at.unwrap_or(now), actor: meta.actor.clone(), target };
        let _turn = self.stream_locks.lock(&stream_id).await;
        for attempt in 0..=CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                tokio::time::sleep(conflict_backoff(attempt)).await;
            }
            self.catch_up().await?;
            // A retry of a command already in the log (checked on every attempt: a
            // concurrent identical retry may have just landed) gets the original answer,
            // whatever the rules would say now; the same id on different content is refused.
            let retried = match meta.event_id {
                Some(event_id) => match self.store.read_event(event_id).await? {
                    Some(stored) => {
                        let same =
                            stored.stream_id == stream_id && domain::events_of(command).first() == Some(&stored.event);
                        if !same {
                            return Err(ServiceError::Rejected(Rejection::EventIdInUse {
                                event_id,
                                global_position: stored.global_position,
                            }));
                        }
                        true
                    }
                    None => false,
                },
                None => false,
            };
            let (events, expected) = {
                let views = self.views.read().await;
                let version = views.stream_versions.get(&stream_id).copied().unwrap_or(0);
                let expected = match meta.expected_version {
                    _ if retried => ExpectedVersion::Any,
                    // The caller's expectation is checked before the rules, so that a stale
                    // client hears "conflict", not a rule that no longer applies.
                    Some(expected) if expected != version => {
                        return Err(ServiceError::Rejected(Rejection::WrongExpectedVersion {
                            stream_id,
                            expected: ExpectedVersion::Exact(expected),
                            actual: version,
                        }));
                    }
                    _ => ExpectedVersion::Exact(version),
                };
                let events = if retried {
                    domain::events_of(command)
                } else {
                    domain::decide(&views.domain, command, &context)?
                };
                (events, expected)
            };
            let new_events = events
                .into_iter()
                .enumerate()
                .map(|(index, event)| NewEvent {
                    event_id: meta.event_id.filter(|_| index == 0).unwrap_or_else(Uuid::now_v7),
                    occurred_at: context.occurred_at,
                    actor: meta.actor.clone(),
                    correlation_id: meta.correlation_id,
                    causation_id: None,
                    event,
                })
                .collect();
            match self.store.append(&stream_id, expected, new_events).await? {
                Ok(committed) => return Ok(committed),
                Err(Rejection::WrongExpectedVersion { .. }) if meta.expected_version.is_none() => continue,
                Err(rejection) => return Err(ServiceError::Rejected(rejection)),
            }
        }
        Err(ServiceError::TooManyConflicts)
    }

    /// The live status at `now` (of one site's checkpoints when `site` is given).
    pub async fn status(&self, now: Timestamp, site: Option<&EntityId>) -> Result<StatusReport, StoreError> {
        self.catch_up().await?;
        let views = self.views.read().await;
        Ok(views.read.status(now, site))
    }

    /// What `read` makes of the views now, in one look (caught up with the log first): the
    /// registry, the checkpoint board and the issue board, all at the log position it is
    /// also given. For pages that show several views side by side and must agree.
    pub async fn read_now<T>(
        &self,
        read: impl FnOnce(&projections::Registry, &projections::CheckpointBoard, &projections::IssueBoard, u64) -> T,
    ) -> Result<T, StoreError> {
        self.catch_up().await?;
        let views = self.views.read().await;
        Ok(read(&views.read.registry, &views.read.checkpoints, &views.read.issues, views.position))
    }

    /// What `read` makes of the views as of field time `as_of` (everything that happened by
    /// then, as known now): from the day's checkpoint, the cost of a day. For the replay's
    /// board at a moment.
    pub async fn read_as_of<T>(
        &self,
        as_of: Timestamp,
        read: impl FnOnce(&projections::Registry, &projections::CheckpointBoard, &projections::IssueBoard, u64) -> T,
    ) -> Result<T, StoreError> {
        let head = self.catch_up().await?;
        let views = self.views_until(as_of, head).await?;
        Ok(read(&views.registry, &views.checkpoints, &views.issues, head))
    }

    /// The corrections and retractions of `event_id` (and of those, in turn), in log order.
    pub async fn amendments_of(&self, event_id: Uuid) -> Result<Vec<RecordedEvent>, StoreError> {
        self.catch_up().await?;
        let mut found = Vec::new();
        let mut wanted = vec![event_id];
        for _ in 0..days::AMENDMENT_DEPTH_MAX {
            let ids: Vec<Uuid> = {
                let views = self.views.read().await;
                wanted.iter().flat_map(|id| views.audit.amendments(*id).collect::<Vec<_>>()).collect()
            };
            if ids.is_empty() {
                break;
            }
            wanted.clear();
            for id in ids {
                if let Some(amendment) = self.store.read_event(id).await? {
                    wanted.push(amendment.event_id);
                    found.push(amendment);
                }
            }
        }
        found.sort_by_key(|event| event.global_position);
        Ok(found)
    }

    /// Every issue the log knows, in issue id order (caught up with the log first).
    pub async fn issues(&self) -> Result<Vec<projections::IssueRecord>, StoreError> {
        self.catch_up().await?;
        // The board lists them in id order already.
        Ok(self.views.read().await.read.issues.issues().collect())
    }

    /// One issue, as the board knows it now (caught up with the log first).
    pub async fn issue(&self, issue_id: &EntityId) -> Result<Option<projections::IssueRecord>, StoreError> {
        self.catch_up().await?;
        Ok(self.views.read().await.read.issues.issue(issue_id))
    }

    /// Every checkpoint's site, as the registry knows it now.
    pub async fn checkpoint_sites(&self) -> Result<HashMap<EntityId, EntityId>, StoreError> {
        self.catch_up().await?;
        let views = self.views.read().await;
        Ok(views
            .read
            .registry
            .checkpoints
            .iter()
            .map(|(id, checkpoint)| (id.clone(), checkpoint.site_id.clone()))
            .collect())
    }

    /// The site a command is about (for access control by site), from the place its kind
    /// belongs to: a site, or the site of the checkpoint or issue it names.
    pub async fn site_of(&self, command: &Command) -> Result<SiteOf, StoreError> {
        self.site_of_place(command.facts().place()).await
    }

    /// The site an event is about, as [`Service::site_of`] tells it of a command.
    pub async fn site_of_event(&self, event: &events_schema::Event) -> Result<SiteOf, StoreError> {
        self.site_of_place(event.facts().place()).await
    }

    async fn site_of_place(&self, place: Place<'_>) -> Result<SiteOf, StoreError> {
        self.catch_up().await?;
        let views = self.views.read().await;
        let checkpoint_site = |checkpoint_id: &EntityId| {
            views.read.registry.checkpoints.get(checkpoint_id).map(|checkpoint| checkpoint.site_id.clone())
        };
        let issue_site =
            |issue_id: &EntityId| views.read.issues.issue(issue_id).and_then(|i| checkpoint_site(&i.checkpoint_id));
        Ok(match place {
            Place::Site(site_id) => SiteOf::Site(site_id.clone()),
            Place::Checkpoint(checkpoint_id) => checkpoint_site(checkpoint_id).map_or(SiteOf::Unknown, SiteOf::Site),
            Place::Issue(issue_id) => issue_site(issue_id).map_or(SiteOf::Unknown, SiteOf::Site),
            Place::Nowhere => SiteOf::Nowhere,
        })
    }

    /// The audit timeline of local `day` (of one entity when given). `None` when `entity`
    /// is named by no event of the log. It reads the day's events (by when they happened)
    /// and the events their amendments name, never the whole log. `times` narrow it to what
    /// had happened by `as_of` and what the log held at `known_at` (see [`Times`]).
    pub async fn timeline(
        &self,
        day: jiff::civil::Date,
        entity: Option<&EntityId>,
        times: Times,
    ) -> Result<Option<Vec<projections::TimelineEntry>>, StoreError> {
        let head = self.catch_up().await?;
        if let Some(entity) = entity {
            if !self.views.read().await.audit.names(entity) {
                return Ok(None);
            }
        }
        let at = self.position_known_at(times.known_at, head).await?;
        let steps = self.day_steps(day, at).await?;
        Ok(Some(self.day_entries(&steps, day, entity, times).await))
    }

    /// The timeline entries of `steps` (local `day`'s) that `times` look at.
    async fn day_entries(
        &self,
        steps: &[days::DayStep],
        day: jiff::civil::Date,
        entity: Option<&EntityId>,
        times: Times,
    ) -> Vec<projections::TimelineEntry> {
        let events = steps.iter().filter(|step| step.admitted(times)).map(|step| &step.event);
        let targets: HashMap<Uuid, &events_schema::Event> = steps
            .iter()
            .filter_map(|step| step.target.as_ref())
            .map(|target| (target.event_id, &target.event))
            .collect();
        let views = self.views.read().await;
        projections::day_timeline(
            events,
            &views.audit,
            |event_id| targets.get(&event_id).copied(),
            &self.time_zone,
            day,
            entity,
            times.known_at,
        )
    }

    /// What `keep` makes of every event that happened on local `day` (those it keeps), in the
    /// order they happened: read by when they happened, page by page, the cost of the day and
    /// not of the log, and never the whole day held twice.
    async fn day_events<T>(
        &self,
        day: jiff::civil::Date,
        mut keep: impl FnMut(RecordedEvent) -> Option<T>,
    ) -> Result<Vec<T>, StoreError> {
        let Some((from, until)) = projections::day_bounds(day, &self.time_zone) else { return Ok(Vec::new()) };
        // Sized for the day up front: a day of 100,000 events is tens of megabytes, copied
        // again at every doubling otherwise.
        let expected = self.views.read().await.days.count(day);
        let mut kept: Vec<T> = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        let mut after = None;
        loop {
            let page = self.store.read_occurred(from, until, after, READ_PAGE_EVENTS_MAX).await?;
            let Some(last) = page.last() else { return Ok(kept) };
            after = Some((last.occurred_at, last.global_position));
            kept.extend(page.into_iter().filter_map(&mut keep));
        }
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The replay of local `day`: its events in the order they happened, each with what it
    /// changed, and the status as of `until` (local time; the end of the day when `None`),
    /// from the events `times` look at (see [`Times`]).
    pub async fn replay(
        &self,
        day: jiff::civil::Date,
        until: Option<jiff::civil::Time>,
        times: Times,
    ) -> Result<Replay, StoreError> {
        let head = self.catch_up().await?;
        let at = self.position_known_at(times.known_at, head).await?;
        let until = replay::until_moment(day, until, &self.time_zone);
        let cut = times.as_of.map_or(until, |as_of| as_of.min(until));
        let starts_before_day = projections::day_bounds(day, &self.time_zone).is_some_and(|(start, _)| cut < start);
        let views =
            if starts_before_day { self.views_until(cut, at).await? } else { self.views_before(day, at).await? };
        let steps = self.day_steps(day, at).await?;
        let entries = self.day_entries(&steps, day, None, times).await;
        Ok(replay::replay(views, &steps, entries, day, until))
    }

    /// Loads the demo data set (see [`demo`]); a second load writes nothing. Returns the
    /// number of events the log holds afterwards.
    pub async fn load_demo(&self) -> Result<u64, ServiceError> {
        for demo in demo::demo_commands(&self.time_zone) {
            let meta = CommandMeta {
                event_id: Some(demo.event_id),
                occurred_at: Some(demo.occurred_at),
                actor: demo.actor,
                correlation_id: None,
                expected_version: None,
            };
            // Each command is decided at the moment it happened.
            self.execute(&demo.command, &meta, demo.occurred_at).await?;
        }
        Ok(self.store.head_position().await?)
    }

    /// How many commands the demo data set holds (one event each).
    pub fn demo_commands_len(&self) -> usize {
        demo::demo_commands(&self.time_zone).len()
    }

    /// The after-action summary of local days `from..=to` (of one site when given), from the
    /// events `times` look at: what a report said when printed at `known_at`, or the period
    /// as it had unfolded by `as_of` (see [`Times`]).
    pub async fn summary(
        &self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
        site: Option<&EntityId>,
        times: Times,
    ) -> Result<projections::Summary, StoreError> {
        let head = self.catch_up().await?;
        let at = self.position_known_at(times.known_at, head).await?;
        let range_start = projections::day_bounds(from, &self.time_zone).map(|(start, _)| start);
        let mut views = match (times.as_of, range_start) {
            (Some(as_of), Some(start)) if as_of < start => self.views_until(as_of, at).await?,
            _ => self.views_before(from, at).await?,
        };
        let before = views.clone();
        let morning = to.tomorrow().ok();
        // Every day of the period (at most the report limit): a day may hold only corrections
        // of earlier days, which the ledger counts under those days.
        let mut days = Vec::new();
        let mut next = Some(from);
        while let Some(day) = next.filter(|day| *day <= to) {
            days.push(day);
            next = day.tomorrow().ok();
        }
        let mut period = Vec::new();
        for day in days {
            for step in self.day_steps(day, at).await? {
                if step.admitted(times) {
                    step.apply_to(&mut views);
                    period.push(step);
                }
            }
        }
        let mut morning_after = Vec::new();
        if let Some(morning) = morning {
            morning_after = self.day_steps(morning, at).await?;
            morning_after.retain(|step| step.admitted(times));
        }
        let (events, morning_after) = (days::period_events(&period), days::period_events(&morning_after));
        let mut summary = projections::summary(&projections::Period {
            time_zone: &self.time_zone,
            from,
            to,
            site,
            registry_before: &before.registry,
            board_before: &before.checkpoints,
            registry: &views.registry,
            issues: &views.issues,
            events: &events,
            morning_after: &morning_after,
            position: at,
            hash: self.hash_at(at).await?,
        });
        (summary.day_seals, summary.unsealed_events) = self.period_seals(from, to, at, &period).await?;
        Ok(summary)
    }

    /// The status at a moment, by the two times, each asked for by name:
    /// - `as_of`: the world as it happened up to that moment in the field (events that
    ///   occurred by then), as known now (late arrivals and later corrections included);
    /// - `known_at`: as the log stood at that moment (events recorded by then): what the
    ///   board showed then.
    ///
    /// Together: what was known at `known_at` about the situation at `as_of`. The board is
    /// asked at `as_of` (or at `known_at` when only that is given).
    pub async fn status_at_times(&self, times: Times, site: Option<&EntityId>) -> Result<StatusReport, StoreError> {
        let Some(asked_at) = times.as_of.or(times.known_at) else {
            return self.status(Timestamp::now(), site).await;
        };
        let head = self.catch_up().await?;
        let at = self.position_known_at(times.known_at, head).await?;
        let views = self.views_until(asked_at, at).await?;
        Ok(views.status(asked_at, site))
    }
}
