//! One lock per stream: the commands of one stream are decided and appended one at a time,
//! so that a command without an expected version never loses a race with another command
//! of this service on the same stream (a gate's checks, the shared `corrections` stream, an
//! author's notes). Commands of different streams do not wait for one another, and still
//! share the store's group commits.
//!
//! A lock exists only while someone holds or waits for it: the map does not grow with the
//! streams the log has seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use events_schema::EntityId;
use tokio::sync::OwnedMutexGuard;

#[derive(Debug, Default)]
pub(crate) struct StreamLocks {
    /// A std `Mutex`: held only to find or drop an entry, never across an await.
    locks: Mutex<HashMap<EntityId, Arc<tokio::sync::Mutex<()>>>>,
}

/// The lock of one stream, held; dropping it lets the next command of the stream go.
pub(crate) struct StreamGuard<'a> {
    locks: &'a StreamLocks,
    stream_id: EntityId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl StreamLocks {
    /// Waits for the lock of `stream_id` (in the order the callers asked for it: tokio's
    /// mutex is fair).
    pub(crate) async fn lock(&self, stream_id: &EntityId) -> StreamGuard<'_> {
        let lock = self.locks.lock().expect("no lock-map panic").entry(stream_id.clone()).or_default().clone();
        let guard = lock.lock_owned().await;
        StreamGuard { locks: self, stream_id: stream_id.clone(), guard: Some(guard) }
    }

    /// How many streams have a lock now (held or waited for).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.lock().expect("no lock-map panic").len()
    }
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self.locks.locks.lock().expect("no lock-map panic");
        drop(self.guard.take());
        // Every clone of a lock is made under the map's mutex, which is held here: when only
        // the map holds it, nobody waits for it and nobody can start to.
        if locks.get(&self.stream_id).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            locks.remove(&self.stream_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> EntityId {
        EntityId::new(text).expect("valid")
    }

    #[tokio::test]
    async fn one_holder_per_stream_and_no_entry_left_behind() {
        let locks = Arc::new(StreamLocks::default());
        let held = locks.lock(&id("gate-1")).await;
        // Another stream is not held up.
        drop(locks.lock(&id("gate-2")).await);
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _guard = locks.lock(&id("gate-1")).await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a second holder of the same stream waits");
        assert_eq!(locks.len(), 1);
        drop(held);
        waiting.await.expect("the waiter gets the lock once it is let go");
        assert_eq!(locks.len(), 0, "no lock is kept once nobody holds or waits for it");
    }
}
