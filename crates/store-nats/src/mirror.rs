//! The node's mirror: the stream read in order, each message made a record chained to the
//! one before ([`Chain`]), and written to a local sled store with `restore_records` (which
//! checks what a restore checks: positions without holes, the chain links, stream versions,
//! event ids, `recorded_at`). Every read of the node is answered from it. A stream whose
//! records do not continue the chain stops the mirror: the node then refuses appends and
//! says why, and its reads stay at what it had checked.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::{consumer, stream};
use bytes::Bytes;
use events_schema::{ChainHash, Timestamp, decode_record};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use store::{EventStore, RESTORE_RECORDS_MAX, StoreError, StoredRecord, chain_hash};
use store_sled::SledStore;
use tokio::sync::watch;

/// How long the mirror waits for a message before it asks whether the stream has moved
/// on without it (a consumer whose server was lost stalls rather than fails).
const STALL_CHECK: Duration = Duration::from_secs(2);
/// How long the mirror waits before it reads the stream again after its reader failed.
const REREAD_PAUSE: Duration = Duration::from_millis(200);

/// Where the chain stands: the last position read, its hash and its `recorded_at`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Chain {
    position: u64,
    hash: ChainHash,
    recorded_at: Option<Timestamp>,
}

impl Chain {
    pub(crate) fn hash(&self) -> ChainHash {
        self.hash
    }

    /// The record of the message at `sequence` with `payload`, chained on.
    ///
    /// The payload is the record its writer encoded, `recorded_at` from the writer's clock;
    /// writers on several nodes have several clocks, so a `recorded_at` earlier than the one
    /// before it is raised to it (the record is then encoded again with that time). Every node
    /// reading the same stream computes the same records and the same chain.
    pub(crate) fn next(&mut self, sequence: u64, payload: &[u8]) -> Result<StoredRecord, String> {
        if sequence != self.position + 1 {
            return Err(format!("the stream skips from position {} to {sequence}", self.position));
        }
        let event = decode_record(sequence, payload, [0; 32]).map_err(|error| error.to_string())?;
        let (bytes, recorded_at) = match self.recorded_at {
            Some(before) if event.recorded_at < before => {
                let mut bytes = Vec::with_capacity(payload.len());
                events_schema::encode_record(
                    &event.stream_id,
                    event.stream_version,
                    before,
                    &event.to_new_event(),
                    &mut bytes,
                );
                (bytes, before)
            }
            _ => (payload.to_vec(), event.recorded_at),
        };
        let hash = chain_hash(&self.hash, sequence, &bytes);
        *self = Chain { position: sequence, hash, recorded_at: Some(recorded_at) };
        Ok(StoredRecord { global_position: sequence, bytes, hash })
    }
}

/// The header that tells the mirror how many messages of the same append follow this one
/// (on every message of a multi-message append but its last; a message without it ends its
/// append). A reader never sees part of an append: the mirror holds a message back until
/// its append's last one is there.
const APPEND_REST_HEADER: &str = "Gridwatch-Append-Rest";

/// Marks a message of an append that has `rest` more messages after it.
pub(crate) fn mark_rest(headers: &mut async_nats::HeaderMap, rest: usize) {
    if rest > 0 {
        headers.insert(APPEND_REST_HEADER, rest.to_string().as_str());
    }
}

/// One message of the stream: its sequence, its payload, and whether it ends its append.
pub(crate) type Message = (u64, Bytes, bool);

/// The stream's messages from `start` on, in order: those already there, then each new
/// one (an ordered consumer: no acks, recreated by the client on a gap).
pub(crate) async fn read_stream_from(
    stream: &stream::Stream,
    start: u64,
    filter: String,
) -> Result<BoxStream<'static, Result<Message, StoreError>>, StoreError> {
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter,
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: start.max(1) },
            ..Default::default()
        })
        .await
        .map_err(crate::backend)?;
    let messages = consumer.messages().await.map_err(crate::backend)?;
    Ok(messages
        .map(|message| {
            let message = message.map_err(crate::backend)?;
            let sequence = message.info().map_err(crate::backend)?.stream_sequence;
            let rest = message.message.headers.as_ref().and_then(|headers| headers.get(APPEND_REST_HEADER));
            let ends = rest.is_none_or(|rest| rest.as_str() == "0");
            Ok((sequence, message.message.payload, ends))
        })
        .boxed())
}

/// Why the stream, which the leader says ends at `stream_last`, is not the one the mirror
/// read up to `held`, if it is not: it ends before the mirror does, or its message at the
/// mirror's last position is another event. A stream that lost acknowledged messages
/// (deleted and made again, restored from an older copy, damaged on every node) is refused
/// rather than followed, since the mirror would chain new messages onto ones that are gone.
/// `None` when it is the same, or when the message cannot be read now (asked again later).
pub(crate) async fn departed(
    stream: &stream::Stream,
    mirror: &SledStore,
    held: u64,
    stream_last: u64,
) -> Option<String> {
    if held == 0 {
        return None;
    }
    if stream_last < held {
        return Some(format!(
            "the stream ends at position {stream_last}, before this node's mirror (at {held}): it lost acknowledged \
             events (deleted and made again, restored from an older copy?)"
        ));
    }
    // The leader's copy (STREAM.MSG.GET), not a replica's; not waited for longer than a
    // stall check (during an election there is no leader to answer: asked again later).
    let message = tokio::time::timeout(STALL_CHECK, stream.get_raw_message(held)).await.ok()?.ok()?;
    let theirs = decode_record(held, &message.payload, [0; 32]).ok()?;
    let ours = mirror.read_all(held, 1).await.ok()?.pop()?;
    (theirs.event_id != ours.event_id).then(|| {
        format!(
            "the stream holds event {} at position {held}, where this node's mirror holds {}: the stream was made \
             again or restored from another copy",
            theirs.event_id, ours.event_id
        )
    })
}

/// The mirror and the task that keeps it up with the stream.
#[derive(Debug)]
pub(crate) struct Mirror {
    store: SledStore,
    head: watch::Receiver<u64>,
    /// Why the mirror stopped, once the stream failed its checks.
    stopped: Arc<OnceLock<(u64, String)>>,
    held: Arc<Held>,
    task: tokio::task::JoinHandle<()>,
}

/// The latest moment known before which every message the stream acknowledged is in the
/// mirror (from the leader's word only: its answer to "what is your last sequence", asked at
/// that moment, or the sequence it gave a publish sent then, once the mirror holds it), and
/// the stream's dedupe window as last read.
#[derive(Debug)]
pub(crate) struct Held {
    state: Mutex<(Option<Instant>, Duration)>,
}

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<Instant>, Duration)> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The mirror holds every message acknowledged before `at`.
    pub(crate) fn whole_before(&self, at: Instant) {
        let mut state = self.lock();
        state.0 = Some(state.0.map_or(at, |known| known.max(at)));
    }

    pub(crate) fn dedupe_window(&self, window: Duration) {
        self.lock().1 = window;
    }

    /// Whether the mirror held the whole stream within the last quarter of the dedupe
    /// window: then an event id acknowledged since is still inside JetStream's window (with
    /// three quarters of it to spare for the publish), and one from before is in the mirror.
    pub(crate) fn recently(&self) -> bool {
        let (at, window) = *self.lock();
        window >= crate::DUPLICATE_WINDOW_MIN && at.is_some_and(|at| at.elapsed() < window / 4)
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mirror {
    /// Starts reading `stream` (its subjects `filter`) into `store` from where it ends.
    pub(crate) async fn start(store: SledStore, stream: stream::Stream, filter: String) -> Result<Mirror, StoreError> {
        let head = store.head_position().await?;
        let chain = match store.read_all(head, 1).await?.pop() {
            Some(last) => {
                Chain { position: last.global_position, hash: last.hash, recorded_at: Some(last.recorded_at) }
            }
            None => Chain::default(),
        };
        let (sender, receiver) = watch::channel(head);
        let stopped = Arc::new(OnceLock::new());
        let held = Arc::new(Held { state: Mutex::new((None, Duration::ZERO)) });
        let state = Following { head: sender, stopped: stopped.clone(), held: held.clone() };
        let task = tokio::spawn(follow(store.clone(), stream, filter, chain, state));
        Ok(Mirror { store, head: receiver, stopped, held, task })
    }

    pub(crate) fn held(&self) -> &Held {
        &self.held
    }

    pub(crate) fn store(&self) -> &SledStore {
        &self.store
    }

    /// `Err` once the stream failed the mirror's checks.
    pub(crate) fn usable(&self) -> Result<(), StoreError> {
        match self.stopped.get() {
            Some((position, reason)) => Err(StoreError::Corrupt {
                global_position: *position,
                reason: format!("this node refuses the stream from here: {reason}"),
            }),
            None => Ok(()),
        }
    }

    /// Stops the mirror: the stream is not the one it read (`reason` says how it knows).
    /// The error every use of the node answers from now on.
    pub(crate) fn refuse_from(&self, position: u64, reason: String) -> StoreError {
        stop(&self.stopped, position, reason);
        self.task.abort();
        self.usable().expect_err("the mirror was just stopped")
    }

    /// Waits until the mirror holds position `position`.
    pub(crate) async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), StoreError> {
        let mut head = self.head.clone();
        let reached = tokio::time::timeout(timeout, head.wait_for(|head| *head >= position)).await;
        self.usable()?;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::Backend(
                format!("this node's mirror did not reach position {position} within {} s", timeout.as_secs()).into(),
            )),
        }
    }
}

/// What the mirror's task tells the rest of the node.
struct Following {
    head: watch::Sender<u64>,
    stopped: Arc<OnceLock<(u64, String)>>,
    held: Arc<Held>,
}

/// The mirror's task: read, chain, check and write, in batches of what is there, forever;
/// a lost connection or consumer is recreated from the mirror's end.
async fn follow(store: SledStore, stream: stream::Stream, filter: String, mut chain: Chain, state: Following) {
    let Following { head, stopped, .. } = &state;
    // Whether a check that the stream is still the mirror's (`departed`) is under way: it
    // runs beside the reading, which an election must not hold up.
    let checking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let mut messages = match read_stream_from(&stream, chain.position + 1, filter.clone()).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "the mirror cannot read the stream; trying again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Messages read whose append's last message has not come yet (read again with the
        // consumer, when it is made again).
        let mut batch: Vec<Message> = Vec::new();
        loop {
            if stopped.get().is_some() {
                return;
            }
            match tokio::time::timeout(STALL_CHECK, messages.next()).await {
                Ok(Some(Ok(message))) => batch.push(message),
                Ok(Some(Err(error))) => {
                    // A short pause: a new leader is read from as soon as it is there, and a
                    // reader that fails at once again is not made again in a tight loop.
                    tracing::warn!(%error, "the mirror lost the stream; reading again from its end");
                    tokio::time::sleep(REREAD_PAUSE).await;
                    break;
                }
                Ok(None) => break,
                // Quiet: fine if the stream has nothing new, a stalled consumer (its server
                // lost, say) if it has.
                Err(_) => {
                    let mut stream = stream.clone();
                    let asked = Instant::now();
                    match tokio::time::timeout(STALL_CHECK, stream.info()).await {
                        Ok(Ok(info)) if info.state.last_sequence <= chain.position => {
                            let (last, window) = (info.state.last_sequence, info.config.duplicate_window);
                            // Shorter than the mirror: told without asking for a message.
                            if last < chain.position {
                                if let Some(reason) = departed(&stream, &store, chain.position, last).await {
                                    stop(stopped, chain.position, reason);
                                    return;
                                }
                            }
                            // The mirror holds the whole stream once its last message is
                            // known to be the stream's: checked beside the reading.
                            if !checking.swap(true, std::sync::atomic::Ordering::SeqCst) {
                                let (stream, store, stopped) = (stream.clone(), store.clone(), stopped.clone());
                                let (checking, held, position) = (checking.clone(), state.held.clone(), chain.position);
                                tokio::spawn(async move {
                                    match departed(&stream, &store, position, last).await {
                                        Some(reason) => stop(&stopped, position, reason),
                                        None => {
                                            held.whole_before(asked);
                                            held.dedupe_window(window);
                                        }
                                    }
                                    checking.store(false, std::sync::atomic::Ordering::SeqCst);
                                });
                            }
                            continue;
                        }
                        Ok(Ok(_)) => tracing::warn!("the mirror's consumer stalled; reading again from its end"),
                        Ok(Err(error)) => {
                            tracing::warn!(%error, "the stream does not answer; reading again from the mirror's end")
                        }
                        Err(_) => tracing::warn!("the stream does not answer; reading again from the mirror's end"),
                    }
                    break;
                }
            }
            // (An append is at most `APPEND_EVENTS_MAX` messages, no more than this: a full
            // batch always ends one.)
            while batch.len() < RESTORE_RECORDS_MAX {
                match messages.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    // The batch read so far is written first; the consumer goes on from
                    // there (async-nats remakes an ordered consumer itself), or fails again
                    // on the next read, which makes it again from the mirror's end.
                    Some(Some(Err(error))) => {
                        tracing::warn!(%error, "the mirror's read failed after a batch; writing the batch first");
                        break;
                    }
                    _ => break,
                }
            }
            // Only whole appends are written: the rest waits for its last message.
            let Some(whole) = batch.iter().rposition(|(_, _, ends)| *ends).map(|last| last + 1) else {
                if batch.len() >= RESTORE_RECORDS_MAX {
                    let first = batch.first().map_or(chain.position + 1, |(sequence, ..)| *sequence);
                    stop(stopped, first, format!("an append of more than {RESTORE_RECORDS_MAX} messages from here"));
                    return;
                }
                continue;
            };
            let held_back = batch.split_off(whole);
            let complete = std::mem::replace(&mut batch, held_back);
            let mut next = chain;
            let mut records = Vec::with_capacity(complete.len());
            let mut replayed = false;
            for (sequence, payload, _) in &complete {
                if *sequence <= next.position {
                    // Already held: the client made its ordered consumer again from the
                    // stream's start (async-nats does when the consumer had delivered nothing
                    // yet). Not a break in the chain: read again from the mirror's end.
                    replayed = true;
                    break;
                }
                match next.next(*sequence, payload) {
                    Ok(record) => records.push(record),
                    Err(reason) => {
                        stop(stopped, *sequence, reason);
                        return;
                    }
                }
            }
            if records.is_empty() {
                tracing::warn!(
                    position = chain.position,
                    "the stream was delivered again from its start; reading from the mirror's end"
                );
                break;
            }
            match store.restore_records(records).await {
                Ok(Ok(_)) => {
                    chain = next;
                    head.send_replace(chain.position);
                    if replayed {
                        tracing::warn!(
                            position = chain.position,
                            "the stream was delivered again from its start; reading from the mirror's end"
                        );
                        break;
                    }
                }
                Ok(Err(rejection)) => {
                    stop(stopped, chain.position + 1, rejection.to_string());
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "the mirror could not write; reading again from its end in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

fn stop(stopped: &OnceLock<(u64, String)>, position: u64, reason: String) {
    tracing::error!(position, %reason, "the stream does not continue this node's chain; refusing it from here");
    let _ = stopped.set((position, reason));
}
