//! The NATS backend against the conformance suite, on the three-node test cluster that
//! `./test.sh` starts (`tests/nats/cluster.sh`), whose client URLs it passes in
//! `GRIDWATCH_TEST_NATS_URLS`. Each harness has a stream of its own, R3; each open of it a new
//! mirror, so that "after a restart" means a node that reads the whole stream again.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use store::conformance::Harness;
use store_nats::{NatsConfig, NatsStore};

struct NatsHarness {
    dir: tempfile::TempDir,
    name: String,
    opens: AtomicU32,
}

impl NatsHarness {
    fn new() -> NatsHarness {
        NatsHarness {
            dir: tempfile::tempdir().unwrap(),
            name: format!("T{}", uuid::Uuid::now_v7().simple()),
            opens: AtomicU32::new(0),
        }
    }
}

fn cluster_urls() -> Vec<String> {
    let urls = std::env::var("GRIDWATCH_TEST_NATS_URLS").unwrap_or_else(|_| {
        panic!(
            "GRIDWATCH_TEST_NATS_URLS is not set: run the tests with ./test.sh, which starts the \
             three-node test cluster (or start it yourself: tests/nats/cluster.sh start DIR, and \
             set the variable to the URLs it prints)"
        )
    });
    urls.split(',').map(str::to_owned).collect()
}

impl Harness for NatsHarness {
    type Store = NatsStore;
    async fn open(&self) -> NatsStore {
        let open = self.opens.fetch_add(1, Ordering::Relaxed);
        let config = NatsConfig::new(cluster_urls(), &self.name, self.dir.path().join(format!("mirror-{open}")));
        NatsStore::open(config).await.unwrap()
    }
}

store::conformance_tests!(NatsHarness::new());
