//! The one place of the CLI (and so of the server it runs) that names a concrete backend:
//! `--store` picks one, and everything else works on [`store::DynStore`] through the
//! service. Also here: what only a backend can say about a data directory (is there a store,
//! verify one that may not even open), and the sled backend's benchmark with its raw-sled
//! baseline.

mod cluster_bench;
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
    /// A NATS JetStream cluster (`--nats-url`), shared by every node; this node keeps its
    /// mirror of the log (what it answers reads from) in `--data`/nats-mirror.
    Nats,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Nats => "nats",
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
        // The client reconnects by itself (to any node of the cluster); nothing to reopen.
        Backend::Nats => open_nats(cli).map(|store| DynStore::new(cli.store.name(), store)),
    };
    opened.map_err(|error| {
        if let StoreError::InUse(_) = error {
            return Failure::Operating(anyhow::Error::new(error).context(held_by_a_server(cli)));
        }
        let context = format!("cannot open the {} store in {}", cli.store.name(), cli.data.display());
        if error.is_integrity() {
            Failure::Integrity(anyhow::Error::new(error).context(context))
        } else {
            Failure::Operating(anyhow::Error::new(error).context(context))
        }
    })
}

/// What to tell the user of a command that met a store another process holds: most likely a
/// running server, which answers the same questions over HTTP (it says where in
/// `server-url` while it runs).
fn held_by_a_server(cli: &Cli) -> String {
    let at = crate::backup::server_url(&cli.data).map(|url| format!(" at {url}")).unwrap_or_default();
    format!(
        "{} is held by a running gridwatch server{at} (or another gridwatch process): ask the server over HTTP \
         (status, replay, timeline, report, export, seals, verify: see /api/openapi.json), or stop it first",
        cli.data.display()
    )
}

/// Whether the configured backend holds a store at `--data`.
pub fn exists(cli: &Cli) -> bool {
    match cli.store {
        Backend::Sled => store_sled::exists(&cli.data),
        Backend::Nats => store_sled::exists(&cli.data.join(NATS_MIRROR_DIR)),
    }
}

/// Verifies the configured store. What the log holds (even a log too damaged to open)
/// comes back in the report; `Err` is for failing to read it at all.
pub fn verify(cli: &Cli) -> Result<VerifyReport, StoreError> {
    match cli.store {
        Backend::Sled => store_sled::verify_dir(sled_config(cli)),
        Backend::Nats => {
            use store::EventStore;
            let store = open_nats(cli)?;
            block_on(store.verify())
        }
    }
}

/// Where a node keeps its mirror of a NATS-held log, inside `--data`.
const NATS_MIRROR_DIR: &str = "nats-mirror";

/// The NATS backend's settings, from the command line and (credentials only) the
/// environment: `GRIDWATCH_NATS_CREDS` (a `.creds` file), `GRIDWATCH_NATS_TOKEN`, or
/// `GRIDWATCH_NATS_USER` with `GRIDWATCH_NATS_PASSWORD`; never from arguments, which other
/// users of the machine and process listings can read.
fn nats_config(cli: &Cli) -> Result<store_nats::NatsConfig, StoreError> {
    let urls: Vec<String> =
        cli.nats_url.split(',').map(str::trim).filter(|url| !url.is_empty()).map(str::to_owned).collect();
    let mut config = store_nats::NatsConfig::new(urls, &cli.nats_stream, cli.data.join(NATS_MIRROR_DIR));
    config.replicas = cli.nats_replicas;
    let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    config.credentials = if let Some(file) = variable("GRIDWATCH_NATS_CREDS") {
        store_nats::Credentials::File(file.into())
    } else if let Some(token) = variable("GRIDWATCH_NATS_TOKEN") {
        store_nats::Credentials::Token(token)
    } else if let (Some(user), Some(password)) = (variable("GRIDWATCH_NATS_USER"), variable("GRIDWATCH_NATS_PASSWORD"))
    {
        store_nats::Credentials::UserPassword(user, password)
    } else {
        store_nats::Credentials::None
    };
    Ok(config)
}

fn open_nats(cli: &Cli) -> Result<store_nats::NatsStore, StoreError> {
    let config = nats_config(cli)?;
    block_on(store_nats::NatsStore::open(config))
}

/// Runs `future` to its end from the synchronous code that opens a backend (inside the
/// CLI's multi-threaded runtime).
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

/// The API tokens of the configured backend: the token file in `--data` on sled; on NATS
/// the cluster's bucket `<stream>_TOKENS` (hashes only, as in the file), shared by every
/// node, read whole before this returns and followed after.
pub fn tokens(cli: &Cli) -> Result<Arc<server::TokenFile>, StoreError> {
    match cli.store {
        Backend::Sled => Ok(Arc::new(server::TokenFile::new(&cli.data))),
        Backend::Nats => {
            let config = nats_config(cli)?;
            let bucket = block_on(store_nats::SharedBucket::open(&config, TOKEN_BUCKET))?;
            let tokens = Arc::new(server::TokenFile::shared(&cli.data, Arc::new(NatsTokens(bucket.clone()))));
            let follower = Arc::downgrade(&tokens);
            block_on(bucket.follow(move |key, record| {
                if let (Some(tokens), Some(token_id)) = (follower.upgrade(), key.strip_prefix(TOKEN_KEY_PREFIX)) {
                    tokens.apply_shared(token_id, record);
                }
            }))?;
            Ok(tokens)
        }
    }
}

/// Where [`tokens`] keeps them, for messages.
pub fn tokens_place(cli: &Cli) -> String {
    match cli.store {
        Backend::Sled => format!("in {}", cli.data.display()),
        Backend::Nats => format!("in the bucket {}_{TOKEN_BUCKET} of the cluster", cli.nats_stream),
    }
}

/// The name of the tokens' bucket, after the stream's name.
const TOKEN_BUCKET: &str = "TOKENS";
/// A token's key in the bucket: this and its id.
const TOKEN_KEY_PREFIX: &str = "token.";
/// The key that the installation's first start creates.
const FIRST_START_KEY: &str = "first-start";

/// The tokens' bucket, for [`server::TokenFile`].
#[derive(Debug)]
struct NatsTokens(store_nats::SharedBucket);

fn io_error(error: StoreError) -> std::io::Error {
    std::io::Error::other(error)
}

impl server::auth::SharedTokens for NatsTokens {
    fn put(&self, token_id: &str, record: Vec<u8>) -> std::io::Result<()> {
        block_on(self.0.put(&format!("{TOKEN_KEY_PREFIX}{token_id}"), record)).map_err(io_error)
    }

    fn remove(&self, token_id: &str) -> std::io::Result<()> {
        block_on(self.0.delete(&format!("{TOKEN_KEY_PREFIX}{token_id}"))).map_err(io_error)
    }

    fn claim_first_start(&self) -> std::io::Result<bool> {
        let now = events_schema::Timestamp::now().to_string().into_bytes();
        block_on(self.0.create(FIRST_START_KEY, now)).map_err(io_error)
    }

    fn unconfirmed_for(&self) -> Option<std::time::Duration> {
        self.0.unconfirmed_for()
    }
}
