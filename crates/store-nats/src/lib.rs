//! The clustered backend: the event log on one NATS JetStream stream.
//!
//! - **Layout.** One stream (file storage, R3 by default, delete and purge denied, atomic
//!   batches allowed), one subject per event stream ([`subject`]). A message's payload is the
//!   record as `events_schema::encode_record` writes it; its stream sequence is the event's
//!   global position.
//! - **Writes.** An append reads its stream's last message from the stream leader, checks
//!   the expected version against it, and publishes with `Nats-Expected-Last-Subject-Sequence`
//!   (so two writers on one stream, on any node, cannot both land) and `Nats-Msg-Id` = the
//!   event id (JetStream's dedupe window). A multi-event append is one atomic batch
//!   (ADR-50). A conflict with another writer is answered as a conflict only when the caller
//!   gave an expected version that no longer holds; otherwise it is retried.
//! - **The chain and the reads.** Concurrent writers cannot compute a chain over the global
//!   order, so every node computes it as it reads the stream in order ([`mirror`]): each
//!   message becomes a record at its sequence, chained to the one before, checked like a
//!   restore (no hole, stream versions dense, event ids new, `recorded_at` never back) and
//!   written to a local sled store, the node's **mirror**. A node refuses a stream whose
//!   records do not continue its chain. Every read is answered from the mirror; an append
//!   returns once the mirror holds it (read-your-writes on the node that wrote), and other
//!   nodes see it as soon as their mirror reads it.
//! - **Idempotency beyond the dedupe window.** Before it publishes, an append waits until
//!   the mirror holds its stream's last message and looks its event ids up there: a retry
//!   of an earlier append gets the original positions, whenever it comes.

pub mod baseline;
mod bucket;
mod mirror;
mod subject;

pub use bucket::SharedBucket;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use events_schema::{EntityId, NewEvent, RecordedEvent, Timestamp, encode_record};
use futures::StreamExt;
use store::{
    AppendedEvent, Committed, EVENT_SIZE_BYTES_MAX, EventStore, EventStream, ExpectedVersion, LogEnd, Rejection,
    StoreError, StoredRecord, VerifyProblem, VerifyReport, check_restore, validate_append,
};
use store_sled::{SledConfig, SledStore};
use uuid::Uuid;

/// How to reach the cluster and where this node keeps its mirror.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// The servers to connect to (any of them will do; the client finds the others).
    pub urls: Vec<String>,
    /// The JetStream stream that holds the log.
    pub stream: String,
    /// The subjects' prefix (`PREFIX.>` is the stream's only subject filter); by default the
    /// stream's name, so that two logs on one cluster never share a subject.
    pub subject_prefix: String,
    /// Replicas of the stream when this node creates it.
    pub replicas: usize,
    /// Where this node's mirror of the log lives (a sled store).
    pub mirror_dir: PathBuf,
    /// How the client proves who it is; never logged.
    pub credentials: Credentials,
    /// How long one request to the cluster (a publish ack included) may take.
    pub request_timeout: Duration,
}

/// The client's credentials.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    Token(String),
    UserPassword(String, String),
    /// A `.creds` file (JWT and NKey seed).
    File(PathBuf),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::None => "none",
            Credentials::Token(_) => "token (hidden)",
            Credentials::UserPassword(..) => "user and password (hidden)",
            Credentials::File(_) => "creds file",
        })
    }
}

impl NatsConfig {
    /// The defaults for the log in stream `stream` of a cluster at `urls`, this node's mirror
    /// in `mirror_dir`.
    pub fn new(urls: Vec<String>, stream: &str, mirror_dir: impl Into<PathBuf>) -> NatsConfig {
        NatsConfig {
            urls,
            stream: stream.to_owned(),
            subject_prefix: stream.to_owned(),
            replicas: 3,
            mirror_dir: mirror_dir.into(),
            credentials: Credentials::None,
            request_timeout: Duration::from_secs(3),
        }
    }
}

/// How often an append retries after a conflict with a writer on another node (or one of
/// JetStream's in-flight refusals) before it gives up.
const CONFLICT_RETRIES_MAX: u32 = 64;
/// How long an append waits for the mirror to read what it needs.
const MIRROR_WAIT: Duration = Duration::from_secs(30);
/// The shortest dedupe window (`duplicate_window`) the log's stream may have: an append
/// relies on it for the event ids acknowledged while it runs (a request may take
/// `request_timeout`, a wait for the mirror `MIRROR_WAIT`).
pub(crate) const DUPLICATE_WINDOW_MIN: Duration = Duration::from_secs(60);
/// How long an append goes on trying when the cluster does not answer (a new leader is
/// elected in 6–7 s) before it fails with the cluster's error.
const UNANSWERED_RETRY_FOR: Duration = Duration::from_secs(15);
/// How long an append goes on trying in all (conflicts, lost answers, a cluster that does
/// not answer) before it gives up with the last failure.
const APPEND_DEADLINE: Duration = Duration::from_secs(30);
/// How often the client pings its server (three unanswered pings: it connects to another).
const PING_INTERVAL: Duration = Duration::from_secs(1);
/// How often `verify` makes its reader of the stream again after it failed.
const VERIFY_READ_RETRIES: u32 = 10;
/// How long opening waits for the mirror to read the stream as it stood (a new node reads
/// the whole log).
const MIRROR_OPEN_WAIT: Duration = Duration::from_secs(3600);

/// The log on a JetStream stream; clones share the connection and the mirror.
#[derive(Clone, Debug)]
pub struct NatsStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: async_nats::Client,
    stream: stream::Stream,
    prefix: String,
    mirror: mirror::Mirror,
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string().into())
}

impl NatsStore {
    /// Connects, creates the stream if it is not there (refusing one whose settings do not
    /// protect the log), opens the mirror and starts reading the stream into it.
    pub async fn open(config: NatsConfig) -> Result<NatsStore, StoreError> {
        // Before anything is made in the cluster.
        mirror_named_for(&config)?;
        let (client, context) = connect(&config).await?;
        // A busy cluster (a leader being elected, many streams made at once) may not answer
        // the first time: asked again, a second later, a few times.
        let stream = open_stream(&context, &config).await?;
        let info = retrying(|| {
            let mut stream = stream.clone();
            async move { stream.info().await.cloned().map_err(backend) }
        })
        .await?;
        let (stream_last, window) = (info.state.last_sequence, info.config.duplicate_window);
        let mirror_store = open_mirror(&config)?;
        mirror_of_this_log(&config, &stream, &mirror_store, stream_last).await?;
        std::fs::write(config.mirror_dir.join(MIRROR_STREAM_FILE), format!("{}\n", config.stream)).map_err(backend)?;
        let mirror = mirror::Mirror::start(mirror_store, stream.clone(), subject::all(&config.subject_prefix)).await?;
        mirror.held().dedupe_window(window);
        let inner = Inner { client, stream, prefix: config.subject_prefix, mirror };
        let store = NatsStore { inner: Arc::new(inner) };
        // Opened once the mirror holds the stream as it stood: a node answers no read from
        // less than what was acknowledged before it started.
        let asked = Instant::now();
        let last = retrying(|| store.stream_last_sequence()).await?;
        store.inner.mirror.wait_for(last, MIRROR_OPEN_WAIT).await?;
        store.inner.mirror.held().whole_before(asked);
        Ok(store)
    }

    /// The local mirror (for tests and tools that compare it with the stream).
    pub fn mirror(&self) -> &SledStore {
        self.inner.mirror.store()
    }

    /// The stream's last sequence, as its leader says (and its dedupe window, kept).
    async fn stream_last_sequence(&self) -> Result<u64, StoreError> {
        let mut stream = self.inner.stream.clone();
        let info = stream.info().await.map_err(backend)?;
        self.inner.mirror.held().dedupe_window(info.config.duplicate_window);
        Ok(info.state.last_sequence)
    }

    /// The sequence and version of `stream_id`'s last message (0, 0 for none), from the leader.
    async fn last_of(&self, subject: &str) -> Result<(u64, u64), StoreError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match self.inner.stream.get_last_raw_message_by_subject(subject).await {
            Ok(message) => {
                let event =
                    events_schema::decode_record(message.sequence, &message.payload, [0; 32]).map_err(|error| {
                        StoreError::Corrupt { global_position: message.sequence, reason: error.to_string() }
                    })?;
                Ok((message.sequence, event.stream_version))
            }
            Err(error) if matches!(error.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok((0, 0)),
            Err(error) => Err(backend(error)),
        }
    }

    /// The earlier append these events were part of, if the mirror holds any of them: the
    /// original positions when it was this very append, a rejection when it was another.
    async fn earlier(
        &self,
        stream_id: &EntityId,
        events: &[NewEvent],
    ) -> Result<Option<Result<Committed, Rejection>>, StoreError> {
        let mut found = Vec::new();
        for event in events {
            if let Some(earlier) = self.inner.mirror.store().read_event(event.event_id).await? {
                found.push(earlier);
            }
        }
        let Some(first) = found.first() else { return Ok(None) };
        if found.len() != events.len() || found.iter().any(|earlier| earlier.stream_id != *stream_id) {
            return Ok(Some(Err(Rejection::EventIdInUse {
                event_id: first.event_id,
                global_position: first.global_position,
            })));
        }
        Ok(Some(Ok(Committed { events: found.iter().map(appended).collect(), deduplicated: true })))
    }

    /// One attempt at an append: the stream's end (the mirror's guess, or the leader's),
    /// the event ids looked up, the expected version checked, the publish.
    async fn attempt(
        &self,
        stream_id: &EntityId,
        subject: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
        guess: bool,
    ) -> Result<Attempt, StoreError> {
        let (after, version) = if guess {
            let (version, position) = self.inner.mirror.store().stream_end(stream_id)?;
            (position, version)
        } else {
            self.last_of(subject).await?
        };
        self.inner.mirror.wait_for(after, MIRROR_WAIT).await?;
        // An event id used before, on any stream, must be found: in the mirror, for one
        // acknowledged before the mirror last held the whole stream; by JetStream's dedupe
        // window, for one since (or still in flight), when that moment is recent enough.
        // Otherwise the mirror first reads up to the stream's end as its leader says.
        if !self.inner.mirror.held().recently() {
            self.mirror_holds_the_stream().await?;
        }
        if let Some(outcome) = self.earlier(stream_id, events).await? {
            return Ok(Attempt::Done(outcome));
        }
        if !expected.admits(version) {
            if guess {
                // Never refused on the mirror's word: the leader says.
                return Ok(Attempt::AskTheLeader);
            }
            return Ok(Attempt::Done(Err(Rejection::WrongExpectedVersion {
                stream_id: stream_id.clone(),
                expected,
                actual: version,
            })));
        }
        let recorded_at = Timestamp::now();
        let mut records = Vec::with_capacity(events.len());
        for (offset, event) in events.iter().enumerate() {
            let mut bytes = Vec::new();
            encode_record(stream_id, version + 1 + offset as u64, recorded_at, event, &mut bytes);
            if bytes.len() > EVENT_SIZE_BYTES_MAX {
                return Ok(Attempt::Done(Err(Rejection::Invalid(format!(
                    "event {} is {} bytes stored; at most {EVENT_SIZE_BYTES_MAX}",
                    event.event_id,
                    bytes.len()
                )))));
            }
            records.push((event.event_id, bytes));
        }
        let sent = Instant::now();
        match self.publish(subject, after, records).await? {
            Published::Stored { last_sequence, duplicate } => {
                self.inner.mirror.wait_for(last_sequence, MIRROR_WAIT).await?;
                if duplicate {
                    // Stored earlier (a retry inside the dedupe window): the mirror says where.
                    return Ok(Attempt::Again("a duplicate: looked up again".into()));
                }
                // The leader numbered this publish after every one it had acknowledged
                // before it was sent, and the mirror holds it.
                self.inner.mirror.held().whole_before(sent);
                let Some(first) = (last_sequence + 1).checked_sub(events.len() as u64) else {
                    return Err(StoreError::Corrupt {
                        global_position: last_sequence,
                        reason: format!("the stream acknowledged {} events at position {last_sequence}", events.len()),
                    });
                };
                let stored = self.inner.mirror.store().read_all(first, events.len()).await?;
                let ours = stored.len() == events.len()
                    && stored.iter().zip(events).all(|(stored, event)| stored.event_id == event.event_id);
                if !ours {
                    // The stream numbered this append where the mirror holds other events: it
                    // is not the stream the mirror read (made again, restored from an older
                    // copy). Refused from here on, not followed.
                    let reason = format!(
                        "the stream acknowledged an append at position {first}, where this node's mirror holds other \
                         events: it lost acknowledged events (made again, restored from an older copy?)"
                    );
                    return Err(self.inner.mirror.refuse_from(first, reason));
                }
                Ok(Attempt::Done(Ok(Committed { events: stored.iter().map(appended).collect(), deduplicated: false })))
            }
            // The mirror's end was behind the stream's: ask the leader, at once.
            Published::Conflict if guess => Ok(Attempt::AskTheLeader),
            Published::Conflict => Ok(Attempt::Again("a conflict with another writer".into())),
            Published::DuplicateInBatch => {
                // Some of these ids are in the stream: the mirror reads them first.
                self.mirror_holds_the_stream().await?;
                Ok(Attempt::Again("an event id of the batch is in the stream".into()))
            }
            Published::Lost(reason) => {
                tracing::warn!(%reason, "a publish's outcome is unknown; looking for it in the stream");
                self.mirror_holds_the_stream().await?;
                Ok(Attempt::Unknown(reason))
            }
            Published::Busy(reason) => {
                self.mirror_holds_the_stream().await?;
                Ok(Attempt::Again(reason))
            }
        }
    }

    /// Waits until the mirror holds the stream as its leader says it stands now.
    async fn mirror_holds_the_stream(&self) -> Result<(), StoreError> {
        let asked = Instant::now();
        let last = self.stream_last_sequence().await?;
        self.inner.mirror.wait_for(last, MIRROR_WAIT).await?;
        self.inner.mirror.held().whole_before(asked);
        Ok(())
    }

    /// Publishes the records of one append as one unit: a single message, or an atomic
    /// batch. Returns the last sequence and whether JetStream found it a duplicate.
    async fn publish(&self, subject: &str, after: u64, records: Vec<(Uuid, Vec<u8>)>) -> Result<Published, StoreError> {
        let count = records.len();
        let batch_id = Uuid::now_v7().simple().to_string();
        let mut ack = None;
        for (index, (event_id, bytes)) in records.into_iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, event_id.to_string().as_str());
            if index == 0 {
                headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, after.to_string().as_str());
            }
            if count > 1 {
                headers.insert(async_nats::header::NATS_BATCH_ID, batch_id.as_str());
                headers.insert(async_nats::header::NATS_BATCH_SEQUENCE, (index + 1).to_string().as_str());
            }
            mirror::mark_rest(&mut headers, count - index - 1);
            let last = index + 1 == count;
            if last && count > 1 {
                headers.insert(async_nats::header::NATS_BATCH_COMMIT, async_nats::header::NATS_BATCH_COMMIT_FINAL);
            }
            if last {
                ack = Some(self.inner.client.request_with_headers(subject.to_owned(), headers, bytes.into()).await);
            } else {
                self.inner
                    .client
                    .publish_with_headers(subject.to_owned(), headers, bytes.into())
                    .await
                    .map_err(backend)?;
            }
        }
        let reply = match ack {
            Some(Ok(reply)) => reply,
            Some(Err(error)) => return Ok(Published::Lost(error.to_string())),
            None => return Err(backend("nothing to publish")),
        };
        published(&reply.payload)
    }
}

/// What the cluster answered to a publish.
#[derive(Debug)]
enum Published {
    Stored {
        last_sequence: u64,
        duplicate: bool,
    },
    /// Another writer moved the stream first (or JetStream refused it while another publish
    /// to the subject was in flight).
    Conflict,
    /// An event id of the batch is a duplicate inside the dedupe window (the whole batch is
    /// refused for it).
    DuplicateInBatch,
    /// No answer: the append may or may not be in the log.
    Lost(String),
    /// Refused for now with nothing of this publish written (another publish of the same
    /// id in flight, a leader just replaced): its events may still land by another
    /// publish, so they are looked for in the stream.
    Busy(String),
}

/// How one attempt at an append ended.
enum Attempt {
    Done(Result<Committed, Rejection>),
    /// The mirror's guess of the stream's end was wrong: ask the leader, at once.
    AskTheLeader,
    /// Try again after a pause (why, for the message if it gives up).
    Again(String),
    /// This attempt's publish may have been stored (its answer was lost): try again after a
    /// pause, and if the events are found, they are this append's own.
    Unknown(String),
}

/// JetStream's answer to a publish.
fn published(payload: &[u8]) -> Result<Published, StoreError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        seq: Option<u64>,
        #[serde(default)]
        duplicate: bool,
        error: Option<ApiError>,
    }
    #[derive(serde::Deserialize)]
    struct ApiError {
        #[serde(default)]
        code: u16,
        #[serde(default)]
        err_code: u64,
        #[serde(default)]
        description: String,
    }
    let answer: Answer = serde_json::from_slice(payload)
        .map_err(|error| backend(format!("JetStream's answer to a publish is not JSON ({error})")))?;
    match (answer.seq, answer.error) {
        (_, Some(error)) => match error.err_code {
            // Wrong last sequence, and a publish to a subject with another one in flight:
            // conflicts. Then what a leader change or a busy cluster answers for a moment,
            // with nothing written (expected-sequence checks not ready, too many requests,
            // a membership change, a batch that lost a message on the way): tried again,
            // like a conflict.
            10071 | 10164 | 10163 | 10167 | 10202 | 10176 => Ok(Published::Conflict),
            10201 => Ok(Published::DuplicateInBatch),
            // "Duplicate message id is in process": a publish with this event id (another
            // node's, or our own retry's) is staged and may yet land. Its outcome is looked
            // for in the stream, like an answer that never came.
            10158 => Ok(Published::Busy(format!("{} ({})", error.description, error.err_code))),
            // "raft: not leader" (503 with no JetStream code): the proposal went to a node
            // that had just lost the leadership; nothing is known to be written.
            0 if error.code == 503 => Ok(Published::Busy(error.description)),
            // No room: the account's or a server's storage limit (10047), a cluster without
            // the resources for the write (10023), memory (10028). Nothing was written, and
            // the next append goes through once there is room again.
            10047 | 10023 | 10028 => Err(StoreError::StorageFull(format!(
                "JetStream: {} ({}): give the cluster more room (max_file_store, the disks)",
                error.description, error.err_code
            ))),
            _ => Err(backend(format!("JetStream refused the publish: {} ({})", error.description, error.err_code))),
        },
        (Some(seq), None) => Ok(Published::Stored { last_sequence: seq, duplicate: answer.duplicate }),
        (None, None) => Err(backend("JetStream answered a publish without a sequence")),
    }
}

/// `operation` again, a second later, while it fails (up to [`VERIFY_READ_RETRIES`] times):
/// for opening and for `verify`'s reads of the stream, which a node lost a moment ago (the
/// client still reconnecting, a new leader being elected) or a busy cluster can make fail
/// for a few seconds.
async fn retrying<T, F: std::future::Future<Output = Result<T, StoreError>>>(
    mut operation: impl FnMut() -> F,
) -> Result<T, StoreError> {
    let mut failures = 0;
    loop {
        match operation().await {
            Err(error) if failures < VERIFY_READ_RETRIES => {
                tracing::warn!(%error, "a request to the cluster failed; trying again in a second");
                failures += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            done => return done,
        }
    }
}

fn appended(event: &RecordedEvent) -> AppendedEvent {
    AppendedEvent {
        event_id: event.event_id,
        global_position: event.global_position,
        stream_version: event.stream_version,
    }
}

/// Connects to the cluster with the configured credentials, refusing URLs that carry them,
/// and makes the JetStream context every request goes through.
pub(crate) async fn connect(config: &NatsConfig) -> Result<(async_nats::Client, jetstream::Context), StoreError> {
    let mut options = async_nats::ConnectOptions::new()
        .request_timeout(Some(config.request_timeout))
        .retry_on_initial_connect()
        .max_reconnects(None)
        // A server that stops answering (paused, cut off) is left for another after three
        // unanswered pings, about 3 s, instead of the default 3 minutes.
        .ping_interval(PING_INTERVAL);
    options = match &config.credentials {
        Credentials::None => options,
        Credentials::Token(token) => options.token(token.clone()),
        Credentials::UserPassword(user, password) => options.user_and_password(user.clone(), password.clone()),
        Credentials::File(path) => options.credentials_file(path).await.map_err(backend)?,
    };
    if config.urls.iter().any(|url| url.contains('@')) {
        return Err(backend(
            "a NATS URL with credentials in it (user:password@ or token@) is refused: they would show in \
             process listings and logs; give them in GRIDWATCH_NATS_CREDS, GRIDWATCH_NATS_TOKEN or \
             GRIDWATCH_NATS_USER and GRIDWATCH_NATS_PASSWORD",
        ));
    }
    let addresses: Vec<async_nats::ServerAddr> =
        config.urls.iter().map(|url| url.parse()).collect::<Result<_, _>>().map_err(backend)?;
    let client = tokio::time::timeout(config.request_timeout * 3, options.connect(addresses))
        .await
        .map_err(|_| backend(format!("no NATS server answered at {}", config.urls.join(","))))?
        .map_err(backend)?;
    let mut context = jetstream::new(client.clone());
    context.set_timeout(config.request_timeout);
    Ok((client, context))
}

async fn open_stream(context: &jetstream::Context, config: &NatsConfig) -> Result<stream::Stream, StoreError> {
    let wanted = stream::Config {
        name: config.stream.clone(),
        subjects: vec![subject::all(&config.subject_prefix)],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        deny_delete: true,
        deny_purge: true,
        allow_atomic_publish: true,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    let mut stream = retrying(|| async { context.get_or_create_stream(wanted.clone()).await.map_err(backend) }).await?;
    let info = stream.info().await.map_err(backend)?;
    let found = &info.config;
    // Limits delete messages as surely as a delete would: none may be set.
    let unlimited = |limit: i64| limit <= 0;
    let protected = found.deny_delete
        && found.deny_purge
        && found.allow_atomic_publish
        && found.storage == stream::StorageType::File
        && found.retention == stream::RetentionPolicy::Limits
        && found.max_age.is_zero()
        && unlimited(found.max_messages)
        && unlimited(found.max_bytes)
        && unlimited(found.max_messages_per_subject)
        && found.duplicate_window >= DUPLICATE_WINDOW_MIN
        && found.subjects == [subject::all(&config.subject_prefix)]
        // A message's own TTL, or a deleted subject's marker, removes messages too.
        && !found.allow_message_ttl
        && found.subject_delete_marker_ttl.is_none()
        // Acknowledged before it is on disk: what Jepsen found losing writes (JetStream
        // itself refuses it with atomic batches today).
        && found.persist_mode != Some(stream::PersistenceMode::Async)
        // Fewer copies than asked for: one node's disk lost is acknowledged events lost.
        && found.num_replicas >= config.replicas;
    if !protected {
        return Err(backend(format!(
            "stream {} exists without the settings that protect the log (file storage, deny delete, deny purge, \
             allow atomic, limits retention with no limit set, no message TTLs, the default persist mode, at least \
             {} replicas, a duplicate window of at least {} s, subjects exactly {})",
            config.stream,
            config.replicas,
            DUPLICATE_WINDOW_MIN.as_secs(),
            subject::all(&config.subject_prefix)
        )));
    }
    Ok(stream)
}

/// The file in a mirror's folder that names the stream it was read from.
const MIRROR_STREAM_FILE: &str = "gridwatch-nats-stream";

/// Refuses a mirror read from another stream (its folder names another), with what to do.
fn mirror_named_for(config: &NatsConfig) -> Result<(), StoreError> {
    let dir = config.mirror_dir.display();
    let named = config.mirror_dir.join(MIRROR_STREAM_FILE);
    match std::fs::read_to_string(&named) {
        Ok(name) if name.trim() != config.stream => Err(backend(format!(
            "this node's mirror in {dir} was read from the stream {}, not {}: give each stream a data folder \
             of its own (or remove {dir} to read {} from its start)",
            name.trim(),
            config.stream,
            config.stream
        ))),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(backend(format!("cannot read {}: {error}", named.display()))),
    }
}

/// Refuses a mirror of another log under this stream's name (it holds more than the stream:
/// the stream was deleted and made again), with what to do.
async fn mirror_of_this_log(
    config: &NatsConfig,
    stream: &stream::Stream,
    mirror: &SledStore,
    stream_last: u64,
) -> Result<(), StoreError> {
    let dir = config.mirror_dir.display();
    let held = mirror.head_position().await?;
    if held > stream_last {
        return Err(backend(format!(
            "this node's mirror in {dir} holds {held} events, the stream {} only {stream_last}: the mirror is of \
             another log (was the stream deleted and made again?); remove {dir} to read the stream from its start",
            config.stream
        )));
    }
    if let Some(reason) = mirror::departed(stream, mirror, held, stream_last).await {
        return Err(backend(format!(
            "this node's mirror in {dir} is not of the stream {}: {reason}; remove {dir} to read the stream from \
             its start",
            config.stream
        )));
    }
    Ok(())
}

fn open_mirror(config: &NatsConfig) -> Result<SledStore, StoreError> {
    let mut sled = SledConfig::new(&config.mirror_dir);
    sled.cache_capacity_bytes = 64 * 1024 * 1024;
    SledStore::open(sled)
}

impl EventStore for NatsStore {
    async fn append(
        &self,
        stream_id: &EntityId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Result<Committed, Rejection>, StoreError> {
        if let Err(rejection) = validate_append(&events) {
            return Ok(Err(rejection));
        }
        self.inner.mirror.usable()?;
        let subject = subject::of(&self.inner.prefix, stream_id);
        // The first attempt takes the stream's end from this node's mirror, with no round
        // trip: right unless another node appended to this stream since the mirror read it,
        // and then JetStream refuses the publish (its expected last subject sequence is
        // checked by the leader) and the next attempt asks the leader.
        let mut guess = true;
        let mut last_failure = String::new();
        let started = Instant::now();
        // Whether a publish of this call may have landed: its events found later are its own.
        let mut maybe_stored = false;
        for attempt in 0..CONFLICT_RETRIES_MAX {
            if attempt > 0 && started.elapsed() >= APPEND_DEADLINE {
                break;
            }
            match self.attempt(stream_id, &subject, expected, &events, guess).await {
                Ok(Attempt::Done(Ok(mut committed))) => {
                    committed.deduplicated &= !maybe_stored;
                    return Ok(Ok(committed));
                }
                Ok(Attempt::Done(rejected)) => return Ok(rejected),
                Ok(Attempt::Unknown(reason)) => {
                    maybe_stored = true;
                    last_failure = reason;
                }
                Ok(Attempt::AskTheLeader) => {
                    guess = false;
                    continue;
                }
                Ok(Attempt::Again(reason)) => last_failure = reason,
                // The cluster did not answer (a leader being elected, a node lost): the next
                // attempt asks again, for as long as an election takes; an event of this
                // append that did land is found then.
                Err(StoreError::Backend(reason)) if started.elapsed() < UNANSWERED_RETRY_FOR => {
                    tracing::warn!(%reason, attempt, "an append's request to the cluster failed; trying again");
                    last_failure = reason.to_string();
                }
                Err(error) => return Err(error),
            }
            guess = false;
            tokio::time::sleep(Duration::from_millis(1 << attempt.min(6))).await;
        }
        Err(backend(format!(
            "gave up on stream {stream_id} after {:.1} s (conflicts with other writers, or a cluster that did not \
             answer); the last: {last_failure}",
            started.elapsed().as_secs_f64()
        )))
    }

    async fn read_stream(
        &self,
        stream_id: &EntityId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.mirror.store().read_stream(stream_id, from_version, limit).await
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.mirror.store().read_all(from_position, limit).await
    }

    async fn read_occurred(
        &self,
        from: Timestamp,
        until: Timestamp,
        after: Option<(Timestamp, u64)>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.mirror.store().read_occurred(from, until, after, limit).await
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.inner.mirror.store().read_event(event_id).await
    }

    async fn read_records(&self, from_position: u64, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
        self.inner.mirror.store().read_records(from_position, limit).await
    }

    async fn restore_records(&self, records: Vec<StoredRecord>) -> Result<Result<Committed, Rejection>, StoreError> {
        self.inner.mirror.usable()?;
        let last = self.stream_last_sequence().await?;
        self.inner.mirror.wait_for(last, MIRROR_WAIT).await?;
        let mirror = self.inner.mirror.store();
        let end = match mirror.read_all(last, 1).await?.pop() {
            Some(event) => {
                LogEnd { position: event.global_position, hash: event.hash, recorded_at: Some(event.recorded_at) }
            }
            None => LogEnd { position: 0, hash: [0; 32], recorded_at: None },
        };
        // What `check_restore` asks of the log: each stream's last version (from the leader)
        // and whether an event id is in it already.
        let mut versions = std::collections::HashMap::new();
        let mut known = std::collections::HashSet::new();
        for record in &records {
            if let Ok(event) = events_schema::decode_record(record.global_position, &record.bytes, record.hash) {
                if !versions.contains_key(&event.stream_id) {
                    let (_, version) = self.last_of(&subject::of(&self.inner.prefix, &event.stream_id)).await?;
                    versions.insert(event.stream_id.clone(), version);
                }
                if mirror.read_event(event.event_id).await?.is_some() {
                    known.insert(event.event_id);
                }
            }
        }
        let events = match check_restore(
            &records,
            end,
            |stream| Ok(versions.get(stream).copied().unwrap_or(0)),
            |id| Ok(known.contains(&id)),
        )? {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        // One atomic batch at the stream's end: `Nats-Expected-Last-Sequence` on its first
        // message refuses it whole if anything was written meanwhile.
        let batch_id = Uuid::now_v7().simple().to_string();
        let count = records.len();
        let mut reply = None;
        for (index, (record, event)) in records.iter().zip(&events).enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, event.event_id.to_string().as_str());
            if index == 0 {
                headers.insert(async_nats::header::NATS_EXPECTED_LAST_SEQUENCE, end.position.to_string().as_str());
            }
            headers.insert(async_nats::header::NATS_BATCH_ID, batch_id.as_str());
            headers.insert(async_nats::header::NATS_BATCH_SEQUENCE, (index + 1).to_string().as_str());
            mirror::mark_rest(&mut headers, count - index - 1);
            let subject = subject::of(&self.inner.prefix, &event.stream_id);
            if index + 1 == count {
                headers.insert(async_nats::header::NATS_BATCH_COMMIT, async_nats::header::NATS_BATCH_COMMIT_FINAL);
                reply = Some(
                    self.inner
                        .client
                        .request_with_headers(subject, headers, record.bytes.clone().into())
                        .await
                        .map_err(backend)?,
                );
            } else {
                self.inner
                    .client
                    .publish_with_headers(subject, headers, record.bytes.clone().into())
                    .await
                    .map_err(backend)?;
            }
        }
        let Some(reply) = reply else { return Err(backend("nothing to restore")) };
        match published(&reply.payload)? {
            Published::Stored { last_sequence, .. } => {
                self.inner.mirror.wait_for(last_sequence, MIRROR_WAIT).await?;
                let written = mirror.read_records(end.position + 1, count).await?;
                if written != records {
                    return Err(StoreError::Corrupt {
                        global_position: end.position + 1,
                        reason: "the restored records read back differ from those sent".into(),
                    });
                }
                Ok(Ok(Committed { events: events.iter().map(appended).collect(), deduplicated: false }))
            }
            Published::Conflict | Published::DuplicateInBatch => Ok(Err(Rejection::Invalid(
                "the log moved while it was being restored into; nothing was written".into(),
            ))),
            Published::Lost(reason) | Published::Busy(reason) => Err(backend(reason)),
        }
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.mirror.store().head_position().await
    }

    fn subscribe(&self, from_position: u64) -> EventStream {
        self.inner.mirror.store().subscribe(from_position)
    }

    /// The mirror's own checks, then the stream read again from its first message: every
    /// message must give the record the mirror holds at its sequence (a message changed in
    /// the cluster since this node read it fails here), and the mirror must reach the end.
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mirror = self.inner.mirror.store();
        // The stream's end first, and the mirror holding it, so that appends during the
        // check are not taken for a mirror that falls short.
        let last = retrying(|| self.stream_last_sequence()).await?;
        self.inner.mirror.wait_for(last, MIRROR_WAIT).await?;
        let report = mirror.verify().await?;
        if report.problem.is_some() {
            return Ok(report);
        }
        let mut checked = 0;
        let filter = subject::all(&self.inner.prefix);
        let mut messages = retrying(|| mirror::read_stream_from(&self.inner.stream, 1, filter.clone())).await?;
        let mut chain = mirror::Chain::default();
        let mut failures = 0;
        while checked < last {
            let message = match tokio::time::timeout(MIRROR_WAIT, messages.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(_) => Err(backend("the stream's reader stalled")),
            };
            let (sequence, payload, _) = match message {
                Ok(message) => message,
                // A consumer that lost its server (or a heartbeat) is made again from here.
                Err(error) if failures < VERIFY_READ_RETRIES => {
                    tracing::warn!(%error, position = checked + 1, "verify: reading the stream again from here");
                    failures += 1;
                    messages =
                        retrying(|| mirror::read_stream_from(&self.inner.stream, checked + 1, filter.clone())).await?;
                    continue;
                }
                Err(error) => return Err(error),
            };
            if sequence <= checked {
                // Delivered again from the stream's start (an ordered consumer made again
                // before it delivered anything starts there): already checked.
                continue;
            }
            let record = match chain.next(sequence, &payload) {
                Ok(record) => record,
                Err(reason) => {
                    return Ok(VerifyReport {
                        events: checked,
                        last_hash: chain.hash(),
                        problem: Some(VerifyProblem { global_position: sequence, reason }),
                    });
                }
            };
            let held = mirror.read_records(sequence, 1).await?.pop();
            if held.as_ref() != Some(&record) {
                return Ok(VerifyReport {
                    events: checked,
                    last_hash: chain.hash(),
                    problem: Some(VerifyProblem {
                        global_position: sequence,
                        reason: "the stream's message differs from the record this node read there before".into(),
                    }),
                });
            }
            checked = sequence;
        }
        if checked < last || report.events < last {
            return Ok(VerifyReport {
                events: checked.min(report.events),
                last_hash: chain.hash(),
                problem: Some(VerifyProblem {
                    global_position: checked.min(report.events) + 1,
                    reason: format!(
                        "the stream ends at {last}, but this node could read only to {}",
                        checked.min(report.events)
                    ),
                }),
            });
        }
        Ok(VerifyReport { events: last, last_hash: chain.hash(), problem: None })
    }
}

#[cfg(test)]
mod published_tests {
    use super::*;

    #[test]
    fn jetstream_answers_are_read_as_what_they_mean() {
        let stored = published(br#"{"stream":"S","seq":7,"duplicate":true}"#).unwrap();
        assert!(matches!(stored, Published::Stored { last_sequence: 7, duplicate: true }), "{stored:?}");
        let conflict = published(br#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}"#);
        assert!(matches!(conflict, Ok(Published::Conflict)), "{conflict:?}");
        for code in [10047, 10023, 10028] {
            let answer = format!(
                r#"{{"error":{{"code":500,"err_code":{code},"description":"insufficient storage resources available"}}}}"#
            );
            match published(answer.as_bytes()) {
                Err(StoreError::StorageFull(reason)) => assert!(reason.contains("insufficient"), "{reason}"),
                other => panic!("{code}: {other:?}"),
            }
        }
        let in_flight =
            published(br#"{"error":{"code":409,"err_code":10158,"description":"duplicate message id is in process"}}"#);
        assert!(matches!(in_flight, Ok(Published::Busy(_))), "{in_flight:?}");
        let not_leader = published(br#"{"error":{"code":503,"description":"raft: not leader"}}"#);
        assert!(matches!(not_leader, Ok(Published::Busy(_))), "{not_leader:?}");
        let other = published(br#"{"error":{"code":503,"err_code":10008,"description":"jetstream not enabled"}}"#);
        assert!(matches!(other, Err(StoreError::Backend(_))), "{other:?}");
    }
}
