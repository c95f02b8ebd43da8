//! The embedded default backend: the event log on sled ([`SledStore`]), behind the
//! [`store::EventStore`] boundary. Everything that knows about sled is here: its trees and
//! their layout, the derived indexes, the chain-head file, and the raw access that tests and
//! benchmarks need to look behind the store's back (`raw`).

mod head_file;
mod index;
mod sled_store;

pub use head_file::ChainHead;
pub use sled_store::{DISK_RESERVE_BYTES_DEFAULT, SledConfig, SledStore, verify_dir};

/// Raw access to a store directory's sled database, for tests that damage it on purpose
/// and benchmarks that measure raw sled next to the store. Never used by the store itself.
pub mod raw {
    pub use crate::sled_store::{open_raw_sled, raw_sled_config, sled_data_file};
    /// sled itself, the version the backend is built on, for the benchmark's raw baseline.
    pub use sled;

    /// Overwrites the chain-head file of a closed store (for tests that forge a whole
    /// consistent tail, to reach the checks behind the chain).
    pub fn write_chain_head(store_dir: &std::path::Path, head: crate::ChainHead) -> std::io::Result<()> {
        crate::head_file::HeadFile::open(&store_dir.join("chain-head"), head)?.write_synced(head)
    }

    /// The chain head the store's chain-head file names now (for tests of when it is written).
    pub fn read_chain_head(store_dir: &std::path::Path) -> std::io::Result<Option<crate::ChainHead>> {
        crate::head_file::read(&store_dir.join("chain-head"))
    }
}

/// Whether `dir` holds a sled store (its chain-head file exists): for commands that only
/// read, so that a typo in a data directory does not create an empty store.
pub fn exists(dir: &std::path::Path) -> bool {
    dir.join("chain-head").exists()
}

/// Turns sled's errors into the boundary's (sled's own error is kept as the source).
pub(crate) trait OrStoreError<T> {
    fn or_store(self) -> Result<T, store::StoreError>;
}

impl<T> OrStoreError<T> for Result<T, sled::Error> {
    fn or_store(self) -> Result<T, store::StoreError> {
        self.map_err(|error| match error {
            // sled's own checks refused what it read: the log is damaged, not unreadable.
            sled::Error::Corruption { .. } => store::StoreError::Damaged(error.to_string()),
            other => store::StoreError::backend(other),
        })
    }
}
