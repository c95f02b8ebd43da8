//! The HTTP API of gridwatch: commands and queries under `/api/v1`, the live feed as
//! server-sent events, bearer tokens with roles, Prometheus metrics and the OpenAPI document.
//!
//! Handlers are thin: parse -> authorise -> the service -> respond. Every error becomes a
//! problem+json response in one place ([`problem`]). Nothing here reaches into the store's
//! internals; the store is only read through the `EventStore` trait (raw log reads, the
//! live feed) and written through the service or a raw append.

pub mod auth;
mod extract;
mod live;
pub mod metrics;
mod openapi;
pub mod problem;
mod routes;
pub mod signin_links;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use service::Service;
use store::DynStore;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use auth::{Role, TokenFile};
pub use metrics::Metrics;
pub use openapi::openapi_document;
pub use routes::{CommandRequest, parse_command_body};

/// The service the server runs over: any backend, behind the store boundary (the server never
/// names one; the CLI opens the configured backend).
pub type AppService = Service<DynStore>;

/// Limits and timeouts of one server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The largest command body.
    pub command_body_bytes_max: usize,
    /// The largest raw append body (up to `store::APPEND_EVENTS_MAX` events).
    pub append_body_bytes_max: usize,
    /// How long a request may take before it is answered 503 (the live feed's stream is not
    /// limited, only its start).
    pub request_timeout: Duration,
    /// How long the live feed waits for a client to take the next event before it cuts the
    /// client off (it resumes with `Last-Event-ID`).
    pub live_send_timeout: Duration,
    /// Events buffered per live client.
    pub live_buffer_events: usize,
    /// A connection whose sent data stays unacknowledged this long (a client that stopped
    /// reading) is closed by the kernel (`TCP_USER_TIMEOUT`), so that it cannot hold the
    /// server, or its shutdown, forever.
    pub connection_stall_timeout: Duration,
    /// The key that signs day seals; its public part is published at `GET /api/v1/seal-key`
    /// (the secret never reaches the server's answers, its logs or the log).
    pub seal_key: Option<std::sync::Arc<service::seal_key::SealKey>>,
    /// Reads that fold a whole period of the log (timeline, replay, report, status as of a
    /// moment) run at most this many at a time, off the async workers.
    pub heavy_reads_max: usize,
    /// The most local days one report may cover.
    pub report_days_max: i32,
    /// The dashboard's address as its users reach it, for the gate posters' QR codes (the
    /// address the browser asked for when `None`).
    pub public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            command_body_bytes_max: 256 * 1024,
            append_body_bytes_max: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            live_send_timeout: Duration::from_secs(5),
            live_buffer_events: 256,
            connection_stall_timeout: Duration::from_secs(20),
            seal_key: None,
            heavy_reads_max: 1,
            report_days_max: 366,
            public_url: None,
        }
    }
}

/// How long a computed status board may be served again at the same log position.
pub const STATUS_CACHE_TTL: Duration = Duration::from_secs(1);

/// The status board as JSON, by site filter, with the log position and time it was
/// computed at (a std `Mutex`: held for a map lookup or insert only).
#[derive(Debug, Default)]
pub struct StatusCache {
    entries:
        std::sync::Mutex<std::collections::HashMap<Option<events_schema::EntityId>, (u64, Instant, axum::body::Bytes)>>,
}

impl StatusCache {
    fn get(&self, site: Option<&events_schema::EntityId>, position: u64) -> Option<axum::body::Bytes> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (computed_position, computed_at, body) = entries.get(&site.cloned())?;
        (*computed_position == position && computed_at.elapsed() < STATUS_CACHE_TTL).then(|| body.clone())
    }

    fn put(&self, site: Option<events_schema::EntityId>, position: u64, body: axum::body::Bytes) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Bounded: sites are few, but a caller could ask for many unknown ones.
        if entries.len() >= 1_024 {
            entries.clear();
        }
        entries.insert(site, (position, Instant::now(), body));
    }
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub service: Arc<AppService>,
    pub tokens: Arc<TokenFile>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServerConfig>,
    /// Cancelled when the server starts shutting down: ends live feeds, makes `/readyz` fail.
    pub shutdown: CancellationToken,
    pub status_cache: Arc<StatusCache>,
    /// Permits for heavy reads (see `ServerConfig::heavy_reads_max`).
    pub heavy_reads: Arc<tokio::sync::Semaphore>,
    /// One verification of the whole log at a time, apart from the heavy reads (it may take
    /// longer than a request may: it runs to its end even when its client has gone).
    pub verify_runs: Arc<tokio::sync::Semaphore>,
    /// The dashboard's templates, asset routes and browser sessions.
    pub web: Arc<web::Web>,
    /// One-time sign-in links (beside the token file).
    pub links: Arc<signin_links::SigninLinks>,
}

impl AppState {
    pub fn new(service: Arc<AppService>, tokens: Arc<TokenFile>, config: ServerConfig) -> AppState {
        AppState {
            links: Arc::new(signin_links::SigninLinks::new(tokens.dir())),
            service,
            tokens,
            metrics: Arc::new(Metrics::new()),
            heavy_reads: Arc::new(tokio::sync::Semaphore::new(config.heavy_reads_max.max(1))),
            verify_runs: Arc::new(tokio::sync::Semaphore::new(1)),
            config: Arc::new(config),
            shutdown: CancellationToken::new(),
            status_cache: Arc::new(StatusCache::default()),
            web: Arc::new(web::Web::new(&web::assets().manifest())),
        }
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let commands = Router::new()
        .route("/api/v1/commands", post(routes::execute_command))
        .route("/api/v1/tokens", post(routes::create_token).get(routes::list_tokens))
        .route("/api/v1/tokens/{token_id}", axum::routing::delete(routes::revoke_token))
        .layer(DefaultBodyLimit::max(state.config.command_body_bytes_max));
    let appends = Router::new()
        .route("/api/v1/streams/{stream_id}/events", post(routes::append_events))
        .layer(DefaultBodyLimit::max(state.config.append_body_bytes_max));
    let api = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/api/openapi.json", get(routes::openapi))
        .route("/api/v1/status", get(routes::status))
        .route("/api/v1/issues", get(routes::issues))
        .route("/api/v1/issues/{issue_id}", get(routes::issue))
        .route("/api/v1/timeline", get(routes::timeline))
        .route("/api/v1/replay", get(routes::replay))
        .route("/api/v1/report", get(routes::report))
        .route("/api/v1/events", get(routes::events))
        .route("/api/v1/events/live", get(live::live))
        .route("/api/v1/verify", get(routes::verify))
        .route("/api/v1/seal-key", get(routes::seal_key))
        .route("/api/v1/days/{day}/export", get(routes::day_export))
        .route("/api/v1/days/{day}/seals", get(routes::day_seals))
        .route("/api/v1/days/{day}/seal", post(routes::seal_day))
        .route("/api/v1/events/{event_id}/proof", get(routes::event_proof))
        .route("/api/v1/backup", post(routes::backup))
        .merge(commands)
        .merge(appends)
        .merge(dashboard())
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::method_not_allowed);
    api.layer(axum::middleware::from_fn_with_state(state.clone(), measure))
        .layer(
            tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            // Method, path and request id only: headers (the token) and the
                            // query are never logged.
                            let request_id = request
                                .headers()
                                .get("x-request-id")
                                .and_then(|value| value.to_str().ok())
                                .unwrap_or("");
                            // A token pasted into a path (`DELETE /api/v1/tokens/<whole token>`)
                            // must not reach the log.
                            let path = request.uri().path();
                            let path = if path.starts_with("/signin/link/") {
                                // A one-time sign-in link's code is a secret until it is used.
                                "/signin/link/(code)"
                            } else if auth::contains_token(path.as_bytes()) {
                                "(a path holding a token)"
                            } else {
                                path
                            };
                            tracing::info_span!(
                                "request",
                                request_id = %request_id,
                                method = %request.method(),
                                path = %path,
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id()),
        )
        .with_state(state)
}

/// The dashboard's pages and assets, with the headers that keep its pages to themselves:
/// scripts, styles and connections from this origin only, never framed.
fn dashboard() -> Router<AppState> {
    use axum::http::{HeaderValue, header};
    use tower_http::set_header::SetResponseHeaderLayer;
    let policy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                  connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";
    // Pages compressed as they go out (the assets are compressed already; the live board's
    // event stream is left as it is by the default predicate).
    web::router()
        .layer(tower_http::compression::CompressionLayer::new().br(true).gzip(true))
        .layer(DefaultBodyLimit::max(web::FORM_BODY_BYTES_MAX))
        .merge(web::assets().into_router())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
}

/// Times every request out after the configured time, and counts it by route and status.
async fn measure(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // A bounded label: any other method string would make a new series.
    let method = match *request.method() {
        Method::GET | Method::POST | Method::PUT | Method::DELETE | Method::HEAD | Method::OPTIONS | Method::PATCH => {
            request.method().to_string()
        }
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    // A verification of the whole log takes as long as the log is long: it is not cut off.
    let timed = if route == "/api/v1/verify" {
        Ok(next.run(request).await)
    } else {
        tokio::time::timeout(state.config.request_timeout, next.run(request)).await
    };
    let response = match timed {
        Ok(response) => response,
        Err(_) => problem::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "no answer within {} ms; a command may still have been recorded: retry it with the same event_id",
                state.config.request_timeout.as_millis()
            ),
        )
        .into_response(),
    };
    let labels = metrics::RequestLabels { method, route: route.clone(), status: response.status().as_u16() };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .request_seconds
        .get_or_create(&metrics::RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Serves the API on `listener` until `stop` completes, then shuts down gracefully: live
/// feeds end, requests in flight (appends included) finish and are answered.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let stall_timeout = state.config.connection_stall_timeout;
    let app = router(state);
    let listener = listener.tap_io(move |connection| {
        let socket = socket2::SockRef::from(&*connection);
        if let Err(error) = socket.set_tcp_user_timeout(Some(stall_timeout)).and_then(|()| socket.set_tcp_nodelay(true))
        {
            tracing::warn!(%error, "cannot set the connection's socket options");
        }
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            stop.await;
            tracing::info!("shutting down: finishing requests in flight");
            shutdown.cancel();
        })
        .await
}
