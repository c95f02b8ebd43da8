//! The live feed: server-sent events of every event from a global position on, catch-up
//! then live, resumable with `Last-Event-ID`.
//!
//! Each client gets a forwarding task between the store's subscription and the response
//! body, through a small buffer. A client that does not take an event within
//! `live_send_timeout` is cut off: its subscription ends, the log's writers never wait for
//! it, and it resumes from its last event id when it reconnects.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;

use crate::AppState;
use crate::auth::{Permission, Principal};
use crate::extract::QueryParams;
use crate::problem::ApiError;

/// How often a live feed that is sending events checks that its token is still live.
const TOKEN_RECHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LiveParams {
    /// The first global position to send; `Last-Event-ID` (the last position received)
    /// takes precedence. Without either, only events after the current head are sent.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub from: Option<u64>,
}

/// The live feed: one SSE message per event (`id` = its global position, `data` = the
/// envelope as JSON), in log order, no gap and no duplicate across reconnects.
#[utoipa::path(
    get, path = "/api/v1/events/live", tag = "log", params(
        LiveParams,
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this global position", pattern = r"^\s*\+?[0-9]{1,20}\s*$")
    ),
    responses((status = 200, description = "text/event-stream of envelopes", content_type = "text/event-stream", body = String)),
    security(("bearer" = []))
)]
pub async fn live(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    QueryParams(params): QueryParams<LiveParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    principal.require(Permission::ReadAudit)?;
    let last_event_id = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::malformed("Last-Event-ID must be a global position"))?,
        ),
        None => None,
    };
    if let Some(from) = params.from {
        crate::routes::check_position("from", from)?;
    }
    let from = match (last_event_id, params.from) {
        (Some(last), _) => last.saturating_add(1),
        (None, Some(from)) => from.max(1),
        (None, None) => state.service.head_position().await?.saturating_add(1),
    };
    let subscriber = state.metrics.live_subscriber(from.saturating_sub(1));
    let mut subscription = state.service.subscribe(from);
    let (sender, receiver) = mpsc::channel::<(Option<u64>, SseEvent)>(state.config.live_buffer_events);
    let send_timeout = state.config.live_send_timeout;
    let shutdown = state.shutdown.clone();
    let metrics = state.metrics.clone();
    let tokens = state.tokens.clone();
    let token_id = principal.token_id.clone();
    tokio::spawn(async move {
        // The token was checked when the feed opened; a revocation ends the feed within
        // `TOKEN_RECHECK_INTERVAL`, on a quiet log too, and no event goes out after it is seen.
        let mut recheck = tokio::time::interval(TOKEN_RECHECK_INTERVAL);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A token that cannot be checked now ends the feed too (its client reconnects, and is
        // answered 503 until the token can be checked).
        let revoked = || match tokens.is_live(&token_id) {
            Ok(true) => false,
            Ok(false) => {
                tracing::info!(%token_id, "the live feed's token was revoked: feed closed");
                true
            }
            Err(_) => true,
        };
        let mut token_checked = std::time::Instant::now();
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                // The client went away: end its subscription now, not at the next event.
                () = sender.closed() => return,
                _ = recheck.tick() => {
                    if revoked() {
                        return;
                    }
                    token_checked = std::time::Instant::now();
                    continue;
                }
                next = subscription.next() => next,
            };
            // Busy: checked again before sending once a recheck is due.
            if token_checked.elapsed() >= TOKEN_RECHECK_INTERVAL {
                if revoked() {
                    return;
                }
                token_checked = std::time::Instant::now();
            }
            let message = match next {
                None => return,
                Some(Ok(event)) => {
                    let position = event.global_position;
                    match serde_json::to_string(&event) {
                        Ok(json) => (SseEvent::default().id(position.to_string()).data(json), Some(position)),
                        Err(error) => (SseEvent::default().event("error").data(error.to_string()), None),
                    }
                }
                Some(Err(error)) => {
                    tracing::error!(%error, "the live feed's subscription failed");
                    (SseEvent::default().event("error").data("the log cannot be read; reconnect later"), None)
                }
            };
            let (message, position) = message;
            match sender.send_timeout((position, message), send_timeout).await {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(_)) => {
                    metrics.live_dropped.inc();
                    tracing::info!(
                        timeout_ms = send_timeout.as_millis() as u64,
                        "a live client read too slowly: cut off"
                    );
                    return;
                }
                Err(SendTimeoutError::Closed(_)) => return,
            }
            if position.is_none() {
                return;
            }
        }
    });
    let shutdown = state.shutdown.clone().cancelled_owned();
    // The subscriber's entry moves with each message the body takes, so the lag metric
    // counts what the client has not been sent yet.
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver)
        .map(move |(position, message)| {
            if let Some(position) = position {
                subscriber.sent(position);
            }
            Ok(message)
        })
        .take_until(shutdown);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
