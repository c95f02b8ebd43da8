//! `gridwatch serve` (the HTTP API over the embedded store) and `gridwatch token create`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use events_schema::EntityId;
use server::{AppState, Role, ServerConfig};

use crate::{Cli, Failure};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0: any free port; the line `listening on http://…`
    /// on stdout names it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Load the demo month first (loading it again writes nothing).
    #[arg(long)]
    demo: bool,
    /// Requests taking longer are answered 503.
    #[arg(long, default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// How long shutdown waits for requests in flight before it stops anyway.
    #[arg(long, default_value_t = 30_000)]
    shutdown_grace_ms: u64,
    /// How long the live feed waits for a slow client before it cuts it off.
    #[arg(long, default_value_t = 5_000)]
    live_send_timeout_ms: u64,
    /// How long after a local day ends its events may still arrive before the server seals
    /// it (later arrivals go into an addendum seal of the same day).
    #[arg(long, default_value_t = 60)]
    seal_grace_minutes: u64,
    /// The views' snapshot is saved (checked once a minute) when they have moved this many
    /// events past the last one, so that a server killed rather than stopped starts again by
    /// folding at most about this many events. It is saved on every clean stop too.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every_events: u64,
    /// The dashboard's address as its users reach it (e.g. `https://gate.example.org`), for
    /// what is printed on paper: the gate posters' QR codes. Without it, the address the
    /// browser asked for.
    #[arg(long)]
    public_url: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token; it is printed alone on the last line of stdout, once. Works while
    /// the server runs.
    Create(TokenCreateArgs),
    /// Print every live token (id, role, sites, actor, created), one JSON object per line;
    /// never a secret.
    List,
    /// Print a one-time sign-in link for a live token (by its id): a URL that signs its first
    /// user in to the dashboard as that token's holder, once, within `--link-minutes`. Works
    /// while the server runs.
    Link {
        /// The token's id (the 12 hex digits after `gw_`).
        token_id: String,
        #[command(flatten)]
        link: LinkArgs,
    },
    /// Revoke a token by its id; a running server refuses it from its next request on.
    Revoke {
        /// The token's id (the 12 hex digits after `gw_`).
        token_id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct TokenCreateArgs {
    /// field, supervisor, auditor or admin.
    #[arg(long)]
    role: Role,
    /// A site field staff may work at (repeat for several).
    #[arg(long = "site", value_name = "SITE_ID")]
    sites: Vec<String>,
    /// Who the events written with it are by (a staff id; required for field tokens);
    /// `token:<token id>` when not given.
    #[arg(long)]
    actor: Option<String>,
    /// Print a one-time sign-in link on the last line instead of the token (the token's
    /// text is then never shown: its holder signs in with the link).
    #[arg(long)]
    link: bool,
    #[command(flatten)]
    link_args: LinkArgs,
}

#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// How many minutes the link is good for.
    #[arg(long, default_value_t = server::signin_links::LINK_MINUTES_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(server::signin_links::LINK_MINUTES_MAX)))]
    link_minutes: u32,
    /// The dashboard's address as its users reach it.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
}

/// Makes a one-time link for `token_id` and prints it alone on the last line.
fn print_link(cli: &Cli, token_id: &str, args: &LinkArgs) -> Result<(), Failure> {
    let links = server::signin_links::SigninLinks::new(&cli.data);
    let code = links.create(token_id, args.link_minutes, events_schema::Timestamp::now())?;
    println!("one-time sign-in link, good for {} minutes:", args.link_minutes);
    println!("{}/signin/link/{code}", args.base_url.trim_end_matches('/'));
    Ok(())
}

fn entity(flag: &str, text: &str) -> Result<EntityId, Failure> {
    EntityId::new(text).map_err(|error| Failure::BadInput(anyhow!("{flag} {text:?}: {error}")))
}

pub fn token(cli: &Cli, command: &TokenCommand) -> Result<(), Failure> {
    let args = match command {
        TokenCommand::Create(args) => args,
        TokenCommand::List => {
            for token in crate::backend::tokens(cli)?.list()? {
                println!("{}", serde_json::to_string(&token).map_err(|error| Failure::Operating(error.into()))?);
            }
            return Ok(());
        }
        TokenCommand::Link { token_id, link } => {
            let token_id = server::auth::id_of(token_id);
            if !crate::backend::tokens(cli)?.is_live(token_id).map_err(std::io::Error::from)? {
                return Err(Failure::BadInput(anyhow!(
                    "no live token {token_id} {}",
                    crate::backend::tokens_place(cli)
                )));
            }
            return print_link(cli, token_id, link);
        }
        TokenCommand::Revoke { token_id } => {
            let token_id = server::auth::id_of(token_id);
            return if crate::backend::tokens(cli)?.revoke(token_id)? {
                println!("token {token_id} revoked");
                Ok(())
            } else {
                Err(Failure::BadInput(anyhow!("no live token {token_id} {}", crate::backend::tokens_place(cli))))
            };
        }
    };
    let sites = args.sites.iter().map(|site| entity("--site", site)).collect::<Result<Vec<_>, _>>()?;
    let actor = args.actor.as_deref().map(|actor| entity("--actor", actor)).transpose()?;
    let made = crate::backend::tokens(cli)?.create(args.role, sites, actor).map_err(|error| match error.kind() {
        std::io::ErrorKind::InvalidInput => Failure::BadInput(anyhow!("{error} (--actor, --site)")),
        _ => Failure::Operating(error.into()),
    })?;
    let sites: Vec<&str> = made.record.sites.iter().map(|site| site.as_str()).collect();
    if args.link {
        println!(
            "token {} ({:?}, actor {}, sites [{}]); its text is not shown: sign in with the link",
            made.record.token_id,
            made.record.role,
            made.record.actor,
            sites.join(", ")
        );
        return print_link(cli, &made.record.token_id, &args.link_args);
    }
    println!(
        "token {} ({:?}, actor {}, sites [{}]); shown once, stored only as a hash:",
        made.record.token_id,
        made.record.role,
        made.record.actor,
        sites.join(", ")
    );
    println!("{}", made.token);
    Ok(())
}

/// The server's work on days, once a minute: seal each day whose grace period for late
/// arrivals has passed (with an addendum for what arrived after its seal), bring the day
/// checkpoints forward so that a query of any day reads that day only, and save the views'
/// snapshot when they have moved `snapshot_every` events past the last one.
async fn keep_days(
    service: Arc<crate::record::CliService>,
    key: Option<Arc<service::seal_key::SealKey>>,
    grace: Duration,
    snapshot_every: u64,
) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    let mut saved_at = service.started_from();
    loop {
        every.tick().await;
        // Off the async workers, as the heavy reads are: the first round on an old store
        // folds and seals every day it finds.
        let (service, key) = (service.clone(), key.clone());
        let runtime = tokio::runtime::Handle::current();
        let round = tokio::task::spawn_blocking(move || {
            runtime.block_on(async move {
                if let Some(key) = &key {
                    match service.seal_ended_days(key, events_schema::Timestamp::now(), grace).await {
                        Ok(seals) if !seals.is_empty() => tracing::info!(seals = seals.len(), "days sealed"),
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "sealing the ended days failed; trying again in a minute"),
                    }
                }
                if let Err(error) = service.checkpoint_days().await {
                    tracing::warn!(%error, "bringing the day checkpoints forward failed");
                }
                if service.position().await < saved_at + snapshot_every {
                    return saved_at;
                }
                match service.save_snapshot().await {
                    Ok(position) => position.unwrap_or(saved_at),
                    Err(error) => {
                        tracing::warn!(%error, "saving the views' snapshot failed; trying again in a minute");
                        saved_at
                    }
                }
            })
        });
        match round.await {
            Ok(position) => saved_at = position,
            Err(error) => tracing::warn!(%error, "the day keeper's round failed"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called (before
/// the server says it listens), not when the future is first polled.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

pub async fn serve(cli: &Cli, args: &ServeArgs) -> Result<(), Failure> {
    let service = crate::record::open_service(cli).await?;
    tracing::info!("the views start from position {} (0: folded from the log's start)", service.started_from());
    if args.demo {
        let events = service.load_demo().await.map_err(|error| Failure::Operating(error.into()))?;
        tracing::info!(events, "the demo month is loaded");
    }
    let tokens = crate::backend::tokens(cli)?;
    // Only on a first start: an installation whose admin tokens were all revoked makes a new
    // one with `gridwatch token create --role admin`, not by printing it at every start.
    if tokens.is_new()? {
        let made = tokens.create(Role::Admin, Vec::new(), None)?;
        println!("first start: admin token {} (shown once, stored only as a hash):", made.record.token_id);
        println!("{}", made.token);
    }
    let listener = tokio::net::TcpListener::bind(args.addr).await.map_err(|error| {
        Failure::Operating(anyhow::Error::new(error).context(format!("cannot listen on {}", args.addr)))
    })?;
    let address = listener.local_addr()?;
    // The seal key, if there is one: the server signs seals with it and publishes only its
    // public part.
    let seal_key = if cli.seal_key.exists() {
        let key = service::seal_key::SealKey::load(&cli.seal_key).map_err(|error| Failure::Operating(error.into()))?;
        tracing::info!(key_id = %key.public().key_id, "seal key loaded");
        Some(Arc::new(key))
    } else {
        tracing::info!(path = %cli.seal_key.display(), "no seal key; GET /api/v1/seal-key answers 404");
        None
    };
    let config = ServerConfig {
        seal_key: seal_key.clone(),
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        live_send_timeout: Duration::from_millis(args.live_send_timeout_ms),
        public_url: args.public_url.clone(),
        ..ServerConfig::default()
    };
    let service = Arc::new(service);
    let days = tokio::spawn(keep_days(
        service.clone(),
        seal_key.clone(),
        Duration::from_secs(args.seal_grace_minutes * 60),
        args.snapshot_every_events,
    ));
    let state = AppState::new(service.clone(), tokens, config);
    let shutdown = state.shutdown.clone();
    let stop = stop_signal()?;
    println!("listening on http://{address}");
    use std::io::Write;
    std::io::stdout().flush()?;
    // Where this server answers, for the CLI's commands that must go through it while it
    // holds the store (`gridwatch backup`); removed again on a clean stop.
    let url_file = cli.data.join(crate::backup::SERVER_URL_FILE);
    std::fs::write(&url_file, format!("http://{address}\n"))?;
    tracing::info!(%address, data = %cli.data.display(), "serving");
    let grace = Duration::from_millis(args.shutdown_grace_ms);
    let finished = tokio::select! {
        served = server::serve(listener, state, stop) => { served?; true }
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => false,
    };
    days.abort();
    let _ = std::fs::remove_file(&url_file);
    // Every acknowledged append is already durable; the snapshot only makes the next
    // start faster.
    if let Err(error) = service.save_snapshot().await {
        tracing::warn!(%error, "saving the views' snapshot failed");
    }
    if !finished {
        return Err(Failure::Operating(anyhow!(
            "requests were still in flight {} ms after the shutdown began; stopped without them",
            args.shutdown_grace_ms
        )));
    }
    tracing::info!("stopped");
    Ok(())
}
