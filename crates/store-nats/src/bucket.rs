//! A small replicated key-value bucket beside the log (JetStream KV): for what every node
//! must share but the immutable log must never hold, such as the hashes of the API tokens.
//!
//! A node keeps its own copy of the bucket in memory: [`SharedBucket::follow`] reads every
//! key's current value, then follows every change from a background task (an ordered
//! consumer, made again from the last revision it applied if it ever ends), so lookups never
//! wait for the cluster and a change made on one node reaches the others within the time of
//! one message.
//!
//! A watch that stalls (the node's NATS server cut off from the others, or stopped) delivers
//! nothing and says nothing, so a follower also proves, every `CONFIRM_EVERY`, that it holds
//! every change: it writes the bucket's heartbeat key (a write that only the cluster's
//! majority can take, so every change taken before it has a lower revision) and waits to read
//! it back. [`SharedBucket::unconfirmed_for`] says how long ago the last such proof began:
//! what the node holds is at least as new as the bucket was then. (Asking the stream's last
//! revision would not do: a replica that has lost its leader answers with its own.)

use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, kv, stream};
use futures::StreamExt;
use store::StoreError;

use crate::{NatsConfig, backend, connect};

/// The longest value the bucket takes.
const VALUE_BYTES_MAX: i32 = 64 * 1024;
/// How long a follower waits before it makes its watch again after it ended.
const REWATCH_PAUSE: Duration = Duration::from_millis(500);
/// How long reading the bucket may wait for its next value.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);
/// How often a follower proves that it holds every change; after a proof that failed, the next
/// is tried sooner.
const CONFIRM_EVERY: Duration = Duration::from_secs(2);
const CONFIRM_AGAIN: Duration = Duration::from_millis(500);
/// How long one proof (the heartbeat's write and its reading back) may take.
const CONFIRM_WAIT: Duration = Duration::from_secs(5);
/// The key a follower writes to prove it holds every change (its value: when, RFC 3339).
pub const HEARTBEAT_KEY: &str = "heartbeat";

/// One bucket, `<stream>_<name>`, shared by every node of the log in `<stream>`.
#[derive(Clone, Debug)]
pub struct SharedBucket {
    kv: kv::Store,
    /// The bucket's own stream, asked for its last revision.
    stream: stream::Stream,
    /// The last revision the follower applied (0 until [`SharedBucket::follow`]).
    applied: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Whether a follower runs: then a change returns once it has applied it.
    following: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// When the last proof that the follower held every change began, by the monotonic clock
    /// and by the wall clock (the monotonic one stops while the machine is suspended).
    confirmed: std::sync::Arc<std::sync::Mutex<Option<(Instant, SystemTime)>>>,
}

/// Whether a change is a value or the key's removal.
fn value_of(entry: &kv::Entry) -> Option<&[u8]> {
    match entry.operation {
        kv::Operation::Put => Some(&entry.value),
        kv::Operation::Delete | kv::Operation::Purge => None,
    }
}

impl SharedBucket {
    /// Connects and opens the bucket, making it (file storage, the log's replica count, one
    /// value kept per key: a removed key's last value is gone from the cluster) if it is not
    /// there.
    pub async fn open(config: &NatsConfig, name: &str) -> Result<SharedBucket, StoreError> {
        let (_client, context) = connect(config).await?;
        let bucket = format!("{}_{name}", config.stream);
        let kv = match context.get_key_value(&bucket).await {
            Ok(kv) => kv,
            Err(error) if error.kind() == jetstream::context::KeyValueErrorKind::GetBucket => context
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    description: "gridwatch: shared by the nodes of one log, never part of it".to_owned(),
                    history: 1,
                    max_value_size: VALUE_BYTES_MAX,
                    storage: stream::StorageType::File,
                    num_replicas: config.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|error| backend(format!("cannot make the bucket {bucket}: {error}")))?,
            Err(error) => return Err(backend(format!("cannot open the bucket {bucket}: {error}"))),
        };
        let stream = context.get_stream(&kv.stream_name).await.map_err(backend)?;
        Ok(SharedBucket {
            kv,
            stream,
            applied: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
            following: Default::default(),
            confirmed: Default::default(),
        })
    }

    /// Stores `value` under `key`, durably on the cluster once this returns, and applied by
    /// this node's follower if it has one (so that its changes are seen in their order).
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let revision = self.kv.put(key, value.into()).await.map_err(backend)?;
        self.until_applied(revision).await
    }

    /// Stores `value` under `key` unless the key is there already: `false` if it was.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        match self.kv.create(key, value.into()).await {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(backend(error)),
        }
    }

    /// Removes `key` (and its value) from the bucket.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.kv.delete(key).await.map_err(backend)?;
        // The delete's revision is not returned: a heartbeat written after it has a higher
        // one, and once the follower has read that back it has applied the delete.
        self.heartbeat().await
    }

    /// Writes the heartbeat (the time, RFC 3339); returns once the follower, if there is one,
    /// has read it back, and so every change the cluster took before it.
    async fn heartbeat(&self) -> Result<(), StoreError> {
        self.put(HEARTBEAT_KEY, events_schema::Timestamp::now().to_string().into_bytes()).await
    }

    /// Waits until the follower, if there is one, has applied `revision`.
    async fn until_applied(&self, revision: u64) -> Result<(), StoreError> {
        if !self.following.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(CATCH_UP_WAIT, applied.wait_for(|applied| *applied >= revision))
            .await
            .map_err(|_| backend(format!("the bucket {}'s change {revision} was not read back", self.kv.name)))?
            .map(drop)
            .map_err(backend)
    }

    /// Every key's current value.
    pub async fn entries(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut entries = Vec::new();
        self.follow_until_current(|key, value| {
            if let Some(value) = value {
                entries.push((key.to_owned(), value.to_vec()));
            }
        })
        .await?;
        Ok(entries)
    }

    /// Calls `apply` with every key's current value (returning once it has), then, from a
    /// background task, with every change after (`None`: the key was removed), in the order
    /// the cluster took them, for as long as the runtime runs.
    pub async fn follow(&self, mut apply: impl FnMut(&str, Option<&[u8]>) + Send + 'static) -> Result<(), StoreError> {
        let (mut watch, mut applied) = self.follow_until_current(&mut apply).await?;
        self.applied.send_replace(applied);
        self.following.store(true, std::sync::atomic::Ordering::SeqCst);
        let (kv, applied_to) = (self.kv.clone(), self.applied.clone());
        tokio::spawn(async move {
            loop {
                while let Some(entry) = watch.next().await {
                    match entry {
                        Ok(entry) => {
                            applied = entry.revision;
                            apply(&entry.key, value_of(&entry));
                            applied_to.send_replace(applied);
                        }
                        // A change that could not be read is not skipped: watched again from
                        // the last one applied.
                        Err(error) => {
                            tracing::warn!(bucket = %kv.name, %error, "the bucket's watch failed");
                            break;
                        }
                    }
                }
                // The watch ended: make it again from the next revision.
                loop {
                    tokio::time::sleep(REWATCH_PAUSE).await;
                    match kv.watch_all_from_revision(applied + 1).await {
                        Ok(again) => {
                            watch = again;
                            break;
                        }
                        Err(error) => tracing::warn!(bucket = %kv.name, %error, "cannot watch the bucket again"),
                    }
                }
            }
        });
        // A node that cannot prove it at once starts unproven (and is told so by the caller's
        // checks of `unconfirmed_for`).
        let first = self.confirm().await;
        if let Err(error) = &first {
            tracing::warn!(bucket = %self.kv.name, %error, "cannot prove yet that this node holds every change of the bucket");
        }
        let bucket = self.clone();
        tokio::spawn(async move {
            let mut failing = first.is_err();
            loop {
                tokio::time::sleep(if failing { CONFIRM_AGAIN } else { CONFIRM_EVERY }).await;
                match bucket.confirm().await {
                    Ok(()) if failing => {
                        tracing::info!(bucket = %bucket.kv.name, "the bucket is followed again: this node holds every change");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(error) if !failing => {
                        tracing::warn!(bucket = %bucket.kv.name, %error, "cannot prove that this node holds every change of the bucket");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        });
        Ok(())
    }

    /// Proves that the follower holds every change the cluster took before now: writes the
    /// heartbeat and waits until the follower has read it back (at most `CONFIRM_WAIT`).
    async fn confirm(&self) -> Result<(), StoreError> {
        let began = (Instant::now(), SystemTime::now());
        tokio::time::timeout(CONFIRM_WAIT, self.heartbeat()).await.map_err(|_| {
            backend(format!("the bucket {}'s heartbeat was not read back within {CONFIRM_WAIT:?}", self.kv.name))
        })??;
        let mut confirmed = self.confirmed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Proofs may end out of order; the latest start counts.
        if confirmed.is_none_or(|(at, _)| at < began.0) {
            *confirmed = Some(began);
        }
        Ok(())
    }

    /// How long ago the last proof that this node holds every change began (`None` before
    /// [`SharedBucket::follow`], or until one succeeded): every change the cluster took before
    /// then has been applied. The longer of the monotonic and the wall clock's reading, so
    /// that a suspended machine does not wake up trusting what it held before.
    pub fn unconfirmed_for(&self) -> Option<Duration> {
        let confirmed = *self.confirmed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        confirmed.map(|(at, wall)| at.elapsed().max(wall.elapsed().unwrap_or_default()))
    }

    /// Applies every key's current value; returns the watch, to follow the changes after,
    /// and the last revision applied.
    async fn follow_until_current(
        &self,
        mut apply: impl FnMut(&str, Option<&[u8]>),
    ) -> Result<(kv::Watch, u64), StoreError> {
        let mut stream = self.stream.clone();
        let last = stream.info().await.map_err(backend)?.state.last_sequence;
        let mut watch = self.kv.watch_with_history(">").await.map_err(backend)?;
        let mut applied = 0;
        // The bucket's last message is the last of its key: the watch delivers it.
        while applied < last {
            let next = tokio::time::timeout(CATCH_UP_WAIT, watch.next())
                .await
                .map_err(|_| backend(format!("the bucket {} was not read within {CATCH_UP_WAIT:?}", self.kv.name)))?;
            match next {
                Some(Ok(entry)) => {
                    applied = entry.revision;
                    apply(&entry.key, value_of(&entry));
                }
                Some(Err(error)) => return Err(backend(format!("cannot read the bucket {}: {error}", self.kv.name))),
                None => return Err(backend(format!("the bucket {}'s watch ended", self.kv.name))),
            }
        }
        Ok((watch, applied))
    }
}
