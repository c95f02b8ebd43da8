//! [`Recovering`]: a store that comes back by itself after a failed write.
//!
//! A backend that hits a failed write (a full disk, an I/O error, a lost connection) stops
//! taking appends ([`StoreError::Poisoned`]) and goes on answering reads of what is durable:
//! what it had not made durable may or may not be in the log, and only a fresh open can say
//! which. This wrapper does that fresh open by itself: it keeps the stopped backend serving
//! reads until the backend's own probe says a reopen can succeed (for the sled backend: the
//! disk has room again), then swaps in a freshly opened backend, trying again with a growing
//! pause if the open fails; no restart of the process. Appends meanwhile answer `Poisoned`
//! (the layers above answer it as 503 with `Retry-After`); calls made during the swap itself
//! wait a moment for it; subscriptions go on from the position they had reached on the
//! reopened backend, with no gap and no duplicate.
//!
//! Backend-neutral: it knows only the [`EventStore`] boundary and a function that opens the
//! backend, so every backend gets the same recovery.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    Committed, EntityId, EventStore, EventStream, ExpectedVersion, NewEvent, RecordedEvent, Rejection, StoreError,
    StoredRecord, Timestamp, VerifyReport,
};

/// How long a call waits for a backend being reopened before it answers `Poisoned`.
const CALL_WAIT: Duration = Duration::from_secs(1);
/// How often the probe is asked whether a reopen can succeed.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// The first pause after a failed reopen, and the longest (it doubles after each failure).
const REOPEN_PAUSE_FIRST: Duration = Duration::from_millis(200);
const REOPEN_PAUSE_MAX: Duration = Duration::from_secs(5);

/// Opens the backend (a blocking call: it runs on tokio's blocking pool).
pub type Opener<S> = Arc<dyn Fn() -> Result<S, StoreError> + Send + Sync>;
/// Whether reopening the backend can succeed now (a cheap check, e.g. of free disk space);
/// until it says so, the stopped backend keeps serving reads.
pub type Probe = Arc<dyn Fn() -> bool + Send + Sync>;

/// The backend, or why there is none right now.
enum Slot<S> {
    Open(Arc<S>),
    /// Being reopened after this failure.
    Reopening(String),
}

impl<S> Clone for Slot<S> {
    fn clone(&self) -> Self {
        match self {
            Slot::Open(store) => Slot::Open(store.clone()),
            Slot::Reopening(reason) => Slot::Reopening(reason.clone()),
        }
    }
}

/// A backend that is reopened in the background whenever it stops after a failed write.
pub struct Recovering<S> {
    shared: Arc<Shared<S>>,
}

struct Shared<S> {
    slot: watch::Sender<Slot<S>>,
    open: Opener<S>,
    may_reopen: Probe,
    /// Set while a recovery is under way (one at a time).
    recovering: std::sync::atomic::AtomicBool,
    /// How many times the backend was reopened.
    reopened: std::sync::atomic::AtomicU64,
}

impl<S> std::fmt::Debug for Recovering<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = matches!(&*self.shared.slot.borrow(), Slot::Open(_));
        f.debug_struct("Recovering").field("open", &open).finish_non_exhaustive()
    }
}

impl<S> Clone for Recovering<S> {
    fn clone(&self) -> Self {
        Recovering { shared: self.shared.clone() }
    }
}

impl<S: EventStore> Recovering<S> {
    /// Opens the backend with `open` (the first open's error is returned: a store that cannot
    /// open at start is an operator's problem, not one to wait out); `may_reopen` says when a
    /// stopped backend can be reopened.
    pub fn open(open: Opener<S>, may_reopen: Probe) -> Result<Recovering<S>, StoreError> {
        let store = open()?;
        let (slot, _) = watch::channel(Slot::Open(Arc::new(store)));
        Ok(Recovering {
            shared: Arc::new(Shared {
                slot,
                open,
                may_reopen,
                recovering: std::sync::atomic::AtomicBool::new(false),
                reopened: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// How many times the backend has been reopened after a failed write.
    pub fn reopened(&self) -> u64 {
        self.shared.reopened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The open backend, waiting up to `wait` for one being reopened.
    async fn current(&self, wait: Duration) -> Result<Arc<S>, StoreError> {
        let mut slot = self.shared.slot.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let reason = match &*slot.borrow_and_update() {
                Slot::Open(store) => return Ok(store.clone()),
                Slot::Reopening(reason) => reason.clone(),
            };
            let changed = tokio::time::timeout_at(deadline, slot.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                return Err(StoreError::Poisoned(format!("{reason}; the store is being reopened, retry shortly")));
            }
        }
    }

    /// Notes that `failed` answered `error`: if that is a stop after a failed write and
    /// `failed` is still the backend in use, a recovery starts in the background (one at a
    /// time): wait for the probe, take the stopped backend out, open a fresh one.
    fn noticed(&self, failed: &Weak<S>, error: &StoreError) {
        use std::sync::atomic::Ordering;
        let StoreError::Poisoned(reason) = error else { return };
        let in_use =
            matches!(&*self.shared.slot.borrow(), Slot::Open(store) if Weak::ptr_eq(&Arc::downgrade(store), failed));
        if !in_use || self.shared.recovering.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::warn!(%reason, "the store stopped taking writes after a failed write; it serves reads and is reopened once that can succeed");
        let (shared, reason) = (self.shared.clone(), reason.clone());
        tokio::spawn(async move {
            let mut pause = REOPEN_PAUSE_FIRST;
            loop {
                while !(shared.may_reopen)() {
                    tokio::time::sleep(PROBE_INTERVAL).await;
                }
                if let Slot::Open(old) = shared.slot.send_replace(Slot::Reopening(reason.clone())) {
                    // The old backend lets go of its files once its last user is done with it;
                    // its drop may wait for its threads, so it happens on the blocking pool.
                    let _ = tokio::task::spawn_blocking(move || drop(old)).await;
                }
                let open = shared.open.clone();
                match tokio::task::spawn_blocking(move || open()).await {
                    Ok(Ok(store)) => {
                        shared.reopened.fetch_add(1, Ordering::Relaxed);
                        shared.slot.send_replace(Slot::Open(Arc::new(store)));
                        shared.recovering.store(false, Ordering::SeqCst);
                        tracing::info!("the store is open again; writes resume");
                        return;
                    }
                    Ok(Err(error)) => tracing::warn!(%error, ?pause, "reopening the store failed; trying again"),
                    Err(panic) => tracing::error!(%panic, "reopening the store panicked; trying again"),
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(REOPEN_PAUSE_MAX);
            }
        });
    }

    /// Returns once `old` is no longer the backend in use.
    async fn replaced(&self, old: &Weak<S>) {
        let mut slot = self.shared.slot.subscribe();
        loop {
            let still =
                matches!(&*slot.borrow_and_update(), Slot::Open(store) if Weak::ptr_eq(&Arc::downgrade(store), old));
            if !still || slot.changed().await.is_err() {
                return;
            }
        }
    }

    /// Runs `call` on the current backend, noticing a stop after a failed write.
    async fn with<T, F>(&self, call: impl FnOnce(Arc<S>) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        let store = self.current(CALL_WAIT).await?;
        let answer = call(store.clone()).await;
        if let Err(error) = &answer {
            self.noticed(&Arc::downgrade(&store), error);
        }
        answer
    }
}

impl<S: EventStore> EventStore for Recovering<S> {
    async fn append(
        &self,
        stream_id: &EntityId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Result<Committed, Rejection>, StoreError> {
        self.with(|store| async move { store.append(stream_id, expected, events).await }).await
    }

    async fn read_stream(
        &self,
        stream_id: &EntityId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.with(|store| async move { store.read_stream(stream_id, from_version, limit).await }).await
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.with(|store| async move { store.read_all(from_position, limit).await }).await
    }

    async fn read_occurred(
        &self,
        from: Timestamp,
        until: Timestamp,
        after: Option<(Timestamp, u64)>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.with(|store| async move { store.read_occurred(from, until, after, limit).await }).await
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        self.with(|store| async move { store.read_event(event_id).await }).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.with(|store| async move { store.head_position().await }).await
    }

    async fn read_records(&self, from_position: u64, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
        self.with(|store| async move { store.read_records(from_position, limit).await }).await
    }

    async fn restore_records(&self, records: Vec<StoredRecord>) -> Result<Result<Committed, Rejection>, StoreError> {
        self.with(|store| async move { store.restore_records(records).await }).await
    }

    /// The backend's subscription; when the backend stops after a failed write (or is
    /// closed under it for a reopen), the same subscription goes on from the reopened
    /// backend at the position it had reached.
    fn subscribe(&self, from_position: u64) -> EventStream {
        struct Resuming<S> {
            store: Recovering<S>,
            next: u64,
            /// The backend it reads from (weakly: a subscription must not keep a stopped
            /// backend from letting go of its files), and its stream.
            inner: Option<(Weak<S>, EventStream)>,
        }
        let state = Resuming { store: self.clone(), next: from_position.max(1), inner: None };
        futures::stream::unfold(state, |mut state| async move {
            loop {
                let (backend, inner) = match &mut state.inner {
                    Some((backend, inner)) => (backend.clone(), inner),
                    None => {
                        // Waits as long as it takes: a subscriber sees a pause, not an end.
                        let backend = match state.store.current(Duration::from_secs(3600)).await {
                            Ok(backend) => backend,
                            Err(_) => continue,
                        };
                        let inner = backend.subscribe(state.next);
                        state.inner = Some((Arc::downgrade(&backend), inner));
                        continue;
                    }
                };
                match inner.next().await {
                    Some(Ok(event)) => {
                        state.next = event.global_position + 1;
                        return Some((Ok(event), state));
                    }
                    Some(Err(error @ StoreError::Poisoned(_))) => {
                        // The stopped backend cannot serve it: go on from the reopened one.
                        state.store.noticed(&backend, &error);
                        state.store.replaced(&backend).await;
                        state.inner = None;
                    }
                    Some(Err(error)) => {
                        state.inner = None;
                        return Some((Err(error), state));
                    }
                    // The backend closed the stream: it was taken out for a reopen (resume
                    // on the new one), or the store is closing (end here too).
                    None => {
                        let replaced = !matches!(&*state.store.shared.slot.borrow(),
                            Slot::Open(open) if Weak::ptr_eq(&Arc::downgrade(open), &backend));
                        if !replaced {
                            return None;
                        }
                        state.inner = None;
                    }
                }
            }
        })
        .boxed()
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.with(|store| async move { store.verify().await }).await
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::memory::{MemoryLog, MemoryStore};

    /// A memory store that stops (as after a failed write) while `broken` is set, and then
    /// stays stopped until it is reopened.
    struct Flaky {
        store: MemoryStore,
        broken: Arc<AtomicBool>,
        stopped: AtomicBool,
    }

    impl Flaky {
        fn check(&self) -> Result<(), StoreError> {
            if self.broken.load(Ordering::SeqCst) {
                self.stopped.store(true, Ordering::SeqCst);
            }
            match self.stopped.load(Ordering::SeqCst) {
                true => Err(StoreError::Poisoned("no space left on device".into())),
                false => Ok(()),
            }
        }
    }

    impl EventStore for Flaky {
        async fn append(
            &self,
            stream_id: &EntityId,
            expected: ExpectedVersion,
            events: Vec<NewEvent>,
        ) -> Result<Result<Committed, Rejection>, StoreError> {
            self.check()?;
            self.store.append(stream_id, expected, events).await
        }
        async fn read_stream(&self, id: &EntityId, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
            self.store.read_stream(id, from, limit).await
        }
        async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
            self.store.read_all(from, limit).await
        }
        async fn read_occurred(
            &self,
            from: Timestamp,
            until: Timestamp,
            after: Option<(Timestamp, u64)>,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.store.read_occurred(from, until, after, limit).await
        }
        async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
            self.store.read_event(event_id).await
        }
        async fn head_position(&self) -> Result<u64, StoreError> {
            self.store.head_position().await
        }
        async fn read_records(&self, from: u64, limit: usize) -> Result<Vec<StoredRecord>, StoreError> {
            self.store.read_records(from, limit).await
        }
        async fn restore_records(
            &self,
            records: Vec<StoredRecord>,
        ) -> Result<Result<Committed, Rejection>, StoreError> {
            self.check()?;
            self.store.restore_records(records).await
        }
        fn subscribe(&self, from_position: u64) -> EventStream {
            self.store.subscribe(from_position)
        }
        async fn verify(&self) -> Result<VerifyReport, StoreError> {
            self.store.verify().await
        }
    }

    #[tokio::test]
    async fn a_stopped_backend_is_reopened_and_writes_and_subscriptions_go_on() {
        let log = Arc::new(Mutex::new(MemoryLog::default()));
        let broken = Arc::new(AtomicBool::new(false));
        let opener: Opener<Flaky> = {
            let (log, broken) = (log.clone(), broken.clone());
            Arc::new(move || {
                Ok(Flaky {
                    store: MemoryStore::over(log.clone()),
                    broken: broken.clone(),
                    stopped: AtomicBool::new(false),
                })
            })
        };
        let probe: Probe = {
            let broken = broken.clone();
            Arc::new(move || !broken.load(Ordering::SeqCst))
        };
        let store = Recovering::open(opener, probe).unwrap();
        let stream = EntityId::new("gate-1").unwrap();
        let note = crate::conformance::note;
        store.append(&stream, ExpectedVersion::Any, vec![note("one")]).await.unwrap().unwrap();
        let mut live = store.subscribe(1);
        assert_eq!(live.next().await.unwrap().unwrap().global_position, 1);

        broken.store(true, Ordering::SeqCst);
        let refused = store.append(&stream, ExpectedVersion::Any, vec![note("two")]).await;
        assert!(matches!(refused, Err(StoreError::Poisoned(_))), "{refused:?}");
        // Reads go on meanwhile, from the stopped backend, which is not reopened while the
        // probe says it cannot succeed; writes are refused.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(store.head_position().await.unwrap(), 1);
        assert_eq!(store.read_all(1, 10).await.unwrap().len(), 1);
        assert!(store.append(&stream, ExpectedVersion::Any, vec![note("three")]).await.is_err());
        assert_eq!(store.reopened(), 0);
        broken.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let committed = loop {
            match store.append(&stream, ExpectedVersion::Any, vec![note("four")]).await {
                Ok(Ok(committed)) => break committed,
                other => assert!(tokio::time::Instant::now() < deadline, "writes did not resume: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(committed.events[0].global_position, 2);
        assert!(store.reopened() >= 1);
        // The subscription made before the stop sees the new event, once.
        assert_eq!(live.next().await.unwrap().unwrap().global_position, 2);
    }
}
