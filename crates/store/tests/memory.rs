//! The in-memory backend against the conformance suite: the suite is written for any
//! backend, and the backend the API tests run on keeps every rule.

use std::sync::{Arc, Mutex};

use store::conformance::Harness;
use store::memory::{MemoryLog, MemoryStore};

/// One log that every "restart" opens a new store over.
#[derive(Default)]
struct MemoryHarness {
    log: Arc<Mutex<MemoryLog>>,
}

impl Harness for MemoryHarness {
    type Store = MemoryStore;
    async fn open(&self) -> MemoryStore {
        MemoryStore::over(self.log.clone())
    }
}

store::conformance_tests!(MemoryHarness::default());
