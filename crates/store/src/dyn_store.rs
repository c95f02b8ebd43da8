//! [`DynStore`]: any backend behind one concrete type, so that the service's users (the
//! HTTP server, the CLI's commands) are written once for every backend and name none; only
//! the code that opens the configured backend knows which one it is.
//!
//! Each call costs one boxed future, which is nothing next to an append's fsync or a read's
//! decoding.

use std::sync::Arc;

use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{
    Committed, EntityId, EventStore, EventStream, ExpectedVersion, NewEvent, RecordedEvent, Rejection, StoreError,
    StoredRecord, Timestamp, VerifyReport,
};

/// The object-safe form of [`EventStore`], implemented for every backend.
trait ObjectStore: Send + Sync + 'static {
    fn append<'a>(
        &'a self,
        stream_id: &'a EntityId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'a, Result<Result<Committed, Rejection>, StoreError>>;
    fn read_stream<'a>(
        &'a self,
        stream_id: &'a EntityId,
        from_version: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<RecordedEvent>, StoreError>>;
    fn read_all(&self, from_position: u64, limit: usize) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>>;
    fn read_occurred(
        &self,
        from: Timestamp,
        until: Timestamp,
        after: Option<(Timestamp, u64)>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>>;
    fn read_event(&self, event_id: Uuid) -> BoxFuture<'_, Result<Option<RecordedEvent>, StoreError>>;
    fn head_position(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn read_records(&self, from_position: u64, limit: usize) -> BoxFuture<'_, Result<Vec<StoredRecord>, StoreError>>;
    fn restore_records(
        &self,
        records: Vec<StoredRecord>,
    ) -> BoxFuture<'_, Result<Result<Committed, Rejection>, StoreError>>;
    fn subscribe(&self, from_position: u64) -> EventStream;
    fn verify(&self) -> BoxFuture<'_, Result<VerifyReport, StoreError>>;
}

impl<S: EventStore> ObjectStore for S {
    fn append<'a>(
        &'a self,
        stream_id: &'a EntityId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'a, Result<Result<Committed, Rejection>, StoreError>> {
        Box::pin(EventStore::append(self, stream_id, expected, events))
    }

    fn read_stream<'a>(
        &'a self,
        stream_id: &'a EntityId,
        from_version: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(EventStore::read_stream(self, stream_id, from_version, limit))
    }

    fn read_all(&self, from_position: u64, limit: usize) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(EventStore::read_all(self, from_position, limit))
    }

    fn read_occurred(
        &self,
        from: Timestamp,
        until: Timestamp,
        after: Option<(Timestamp, u64)>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        Box::pin(EventStore::read_occurred(self, from, until, after, limit))
    }

    fn read_event(&self, event_id: Uuid) -> BoxFuture<'_, Result<Option<RecordedEvent>, StoreError>> {
        Box::pin(EventStore::read_event(self, event_id))
    }

    fn head_position(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(EventStore::head_position(self))
    }

    fn read_records(&self, from_position: u64, limit: usize) -> BoxFuture<'_, Result<Vec<StoredRecord>, StoreError>> {
        Box::pin(EventStore::read_records(self, from_position, limit))
    }

    fn restore_records(
        &self,
        records: Vec<StoredRecord>,
    ) -> BoxFuture<'_, Result<Result<Committed, Rejection>, StoreError>> {
        Box::pin(EventStore::restore_records(self, records))
    }

    fn subscribe(&self, from_position: u64) -> EventStream {
        EventStore::subscribe(self, from_position)
    }

    fn verify(&self) -> BoxFuture<'_, Result<VerifyReport, StoreError>> {
        Box::pin(EventStore::verify(self))
    }
}

/// Any backend, cheap to clone (clones share the backend).
#[derive(Clone)]
pub struct DynStore {
    backend: Arc<dyn ObjectStore>,
    /// The backend's name, for logs and `Debug` (e.g. "sled").
    name: &'static str,
}

impl DynStore {
    pub fn new(name: &'static str, backend: impl EventStore) -> DynStore {
        DynStore { backend: Arc::new(backend), name }
    }

    /// The name the backend was opened under.
    pub fn backend_name(&self) -> &'static str {
        self.name
    }
}

impl std::fmt::Debug for DynStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynStore").field("backend", &self.name).finish_non_exhaustive()
    }
}

impl EventStore for DynStore {
    async fn append(
        &self,
        stream_id: &EntityId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Result<Committed, Rejection>, StoreError> {
        self.backend.append(stream_id, expected, events).await
    }

    async fn read_stream(
        &self,
        stream_id: &EntityId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.backend.read_stream(stream_id, from_version, limit).await
    }

    fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        self.backend.read_all(from_position, limit)
    }

    fn read_occurred(
        &self,
        from: Timestamp,
        until: Timestamp,
        after: Option<(Timestamp, u64)>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        self.backend.read_occurred(from, until, after, limit)
    }

    fn read_event(&self, event_id: Uuid) -> impl Future<Output = Result<Option<RecordedEvent>, StoreError>> + Send {
        self.backend.read_event(event_id)
    }

    fn head_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.backend.head_position()
    }

    fn read_records(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredRecord>, StoreError>> + Send {
        self.backend.read_records(from_position, limit)
    }

    fn restore_records(
        &self,
        records: Vec<StoredRecord>,
    ) -> impl Future<Output = Result<Result<Committed, Rejection>, StoreError>> + Send {
        self.backend.restore_records(records)
    }

    fn subscribe(&self, from_position: u64) -> EventStream {
        self.backend.subscribe(from_position)
    }

    fn verify(&self) -> impl Future<Output = Result<VerifyReport, StoreError>> + Send {
        self.backend.verify()
    }
}
