//! The one place of the CLI (and so of the server it runs) that names a concrete backend:
//! `--store` picks one, and everything else works on [`store::DynStore`] through the
//! service. Also here: what only a backend can say about a data directory (is there a store,
//! verify one that may not even open), and the sled backend's benchmark with its raw-sled
//! baseline.

mod days_bench;
pub mod sled_bench;

use std::sync::Arc;

use store::{DynStore, Recovering, StoreError, VerifyReport};
use store_sled::{SledConfig, SledStore};

use crate::{Cli, Failure};

/// The backends `--store` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The embedded default: a sled database in `--data`, no services needed.
    Sled,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
        }
    }
}

fn sled_config(cli: &Cli) -> SledConfig {
    let mut config = SledConfig::new(&cli.data);
    config.cache_capacity_bytes = cli.cache_mib * 1024 * 1024;
    config.disk_reserve_bytes = cli.disk_reserve_mib * 1024 * 1024;
    config
}

/// Opens the configured backend, reopened by itself in the background whenever it stops
/// after a failed write ([`Recovering`]). A log found altered or cut short is an integrity
/// failure (exit 4); anything else that keeps it from opening is an operating one.
pub fn open(cli: &Cli) -> Result<DynStore, Failure> {
    let opened = match cli.store {
        Backend::Sled => {
            let config = sled_config(cli);
            let probe: store::Probe = {
                let config = config.clone();
                Arc::new(move || config.has_room_to_reopen())
            };
            let opener: store::Opener<SledStore> = Arc::new(move || SledStore::open(config.clone()));
            Recovering::open(opener, probe).map(|store| DynStore::new(cli.store.name(), store))
        }
    };
    opened.map_err(|error| {
        let context = format!("cannot open the {} store in {}", cli.store.name(), cli.data.display());
        if error.is_integrity() {
            Failure::Integrity(anyhow::Error::new(error).context(context))
        } else {
            Failure::Operating(anyhow::Error::new(error).context(context))
        }
    })
}

/// Whether the configured backend holds a store at `--data`.
pub fn exists(cli: &Cli) -> bool {
    match cli.store {
        Backend::Sled => store_sled::exists(&cli.data),
    }
}

/// Verifies the configured store. What the log holds (even a log too damaged to open)
/// comes back in the report; `Err` is for failing to read it at all.
pub fn verify(cli: &Cli) -> Result<VerifyReport, StoreError> {
    match cli.store {
        Backend::Sled => store_sled::verify_dir(sled_config(cli)),
    }
}
