//! The handlers: commands, queries, the raw log, tokens, health and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::Command;
use events_schema::{EntityId, IssueCategory, Severity, Timestamp};
use projections::{IssueRecord, IssueState, StatusReport};
use serde::{Deserialize, Serialize};
use service::{CommandMeta, SiteOf};
use store::{Committed, ExpectedVersion, READ_PAGE_EVENTS_MAX};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Permission, Principal, Role, contains_token, permission_for};
use crate::extract::{Body, PathParam, QueryParams, parse_json};
use crate::problem::{ApiError, Problem};

/// Events a `GET /api/v1/events` answers when no `limit` is given.
pub const EVENTS_PAGE_DEFAULT: usize = 1_000;

/// A command and, optionally, what makes it safe to retry or conditional.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// The command's name, e.g. `record-patrol-check`, `raise-issue`, `act-on-issue`,
    /// `resolve-issue`, `verify-resolution` (see the `Command` schema).
    pub command: String,
    /// The command's data: the payload of the event it records.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The event id (UUIDv7) to record it under: the same request again returns the same
    /// answer and writes nothing.
    pub event_id: Option<Uuid>,
    /// When it happened in the field (RFC 3339); now when not given.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub occurred_at: Option<Timestamp>,
    /// The version the entity's stream must be at (as `If-Match` does); 409 otherwise.
    pub expected_version: Option<u64>,
    pub correlation_id: Option<Uuid>,
}

/// Where one event landed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppendedEventBody {
    pub event_id: Uuid,
    pub global_position: u64,
    pub stream_version: u64,
}

/// The answer to a command or an append.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppendResponse {
    pub stream_id: String,
    /// True when the events were already in the log (a retry): nothing was written.
    pub deduplicated: bool,
    pub events: Vec<AppendedEventBody>,
}

fn appended(state: &AppState, stream_id: &EntityId, committed: Committed) -> Response {
    state.metrics.record_appended(committed.events.len(), committed.deduplicated);
    let status = if committed.deduplicated { StatusCode::OK } else { StatusCode::CREATED };
    let last_version = committed.events.last().map_or(0, |event| event.stream_version);
    let body = AppendResponse {
        stream_id: stream_id.to_string(),
        deduplicated: committed.deduplicated,
        events: committed
            .events
            .into_iter()
            .map(|event| AppendedEventBody {
                event_id: event.event_id,
                global_position: event.global_position,
                stream_version: event.stream_version,
            })
            .collect(),
    };
    let mut response = (status, Json(body)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{last_version}\"")) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// Positions are int64 in the API (as the document says): a larger one is refused, not
/// read as "after the end".
pub(crate) fn check_position(name: &str, position: u64) -> Result<(), ApiError> {
    if i64::try_from(position).is_err() {
        return Err(ApiError::invalid(format!("{name} {position} is beyond the largest position, {}", i64::MAX)));
    }
    Ok(())
}

/// The stream version an `If-Match: "N"` header asks for.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    value
        .to_str()
        .ok()
        .map(|text| text.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|text| text.parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::malformed("If-Match must be a stream version, e.g. \"3\""))
}

/// Runs a read that folds a whole period of the log on a blocking thread, at most
/// `heavy_reads_max` at a time: the async workers (health checks, status, commands) stay
/// free, and the request's timeout still answers the caller when the work takes too long.
pub(crate) async fn heavy<T, F, Fut>(state: &AppState, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(std::sync::Arc<crate::AppService>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, store::StoreError>>,
{
    let permit = state.heavy_reads.clone().acquire_owned().await.map_err(|error| ApiError::internal(&error))?;
    let service = state.service.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        runtime.block_on(work(service))
    })
    .await
    .map_err(|error| ApiError::internal(&error))?
    .map_err(ApiError::from)
}

/// Counts the refusals that are about concurrency (a stream that moved on, an event id
/// already used), not about what was asked.
fn count_conflict(state: &AppState, error: &ApiError) {
    if matches!(error.kind, "wrong-expected-version" | "event-id-in-use" | "too-many-conflicts") {
        state.metrics.conflicts.inc();
    }
}

fn refuse_tokens(body: &[u8]) -> Result<(), ApiError> {
    if contains_token(body) {
        return Err(ApiError::invalid("the body contains an access token; tokens never go into the log"));
    }
    Ok(())
}

/// Field staff act as themselves, at their sites, and record what happened recently.
async fn authorize_field_command(
    state: &AppState,
    principal: &Principal,
    command: &Command,
    occurred_at: Option<Timestamp>,
    event_id: Option<Uuid>,
) -> Result<(), ApiError> {
    // The caller must be among the people the command says acted (a notice delivered by two
    // names both); a field command that names nobody cannot be theirs.
    if !crate::auth::acting_people(command).contains(&&principal.actor) {
        return Err(ApiError::forbidden(format!(
            "field staff record their own work: the command must name {} as the person acting",
            principal.actor
        )));
    }
    // A retry of what is already recorded gets its original answer, however late it comes.
    let retry = match event_id {
        Some(event_id) => state.service.event(event_id).await?.is_some(),
        None => false,
    };
    let earliest = Timestamp::now().as_microsecond().saturating_sub(crate::auth::FIELD_BACKDATE_MICROS_MAX);
    // When it happened, and for a tally the period it counts (reports file it by that).
    let times = [occurred_at, if let Command::RecordTally(e) = command { Some(e.period_start) } else { None }];
    if !retry && times.into_iter().flatten().any(|time| time.as_microsecond() < earliest) {
        return Err(ApiError::forbidden(format!(
            "field staff may record events at most {} hours after they happened; a supervisor can record older ones",
            crate::auth::FIELD_BACKDATE_MICROS_MAX / 3_600_000_000
        )));
    }
    // Another site's checkpoint or issue is answered as an unknown one is, word for word:
    // field staff cannot learn from the answer which ids exist elsewhere.
    let unknown =
        || ApiError::not_found("no checkpoint, issue or site of this token's sites has the id this command names");
    match state.service.site_of(command).await? {
        SiteOf::Site(site) if principal.covers_site(&site) => Ok(()),
        SiteOf::Site(_) => Err(unknown()),
        // About no place in particular (a personal field note): nothing to authorise against,
        // as long as it really names no place (a kind whose place is left out of its facts
        // must not let field staff past the site check).
        SiteOf::Nowhere if names_no_place(command) => Ok(()),
        SiteOf::Nowhere => Err(ApiError::forbidden("this command names a place its kind does not say it belongs to")),
        // The checkpoint or issue it names is unknown: nothing to authorise against.
        SiteOf::Unknown => Err(unknown()),
    }
}

/// Whether `command` names no site, checkpoint or issue at all.
fn names_no_place(command: &Command) -> bool {
    command.facts().entities().iter().all(|entity| !entity.kind.is_of_a_site())
}

/// Do something through the domain rules: record a check, raise, act on, resolve or
/// verify an issue, and every other command.
#[utoipa::path(
    post, path = "/api/v1/commands", tag = "commands",
    request_body(content = CommandRequest, description = "`command` and `data` as in the `Command` schema"),
    params(("If-Match" = Option<String>, Header, description = "the stream version expected, e.g. \"3\"")),
    responses(
        (status = 201, description = "recorded (durable)", body = AppendResponse),
        (status = 200, description = "already recorded under this event_id: the original answer", body = AppendResponse),
        (status = 400, description = "malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "no valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "outside the token's role or sites", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "an entity it names is unknown", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the entity's state or version does not allow it", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "not a valid command", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn execute_command(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    // Every role that writes at all may write field commands: a role that may not is told
    // so before its body is even read.
    principal.require(Permission::WriteField)?;
    let (request, command) = parse_command_body(&body)?;
    let expected_version = match (request.expected_version, if_match(&headers)?) {
        (Some(body), Some(header)) if body != header => {
            return Err(ApiError::invalid(format!("expected_version {body} and If-Match {header} disagree")));
        }
        (body, header) => body.or(header),
    };
    let stream_id = command.stream_id().map_err(|error| ApiError::invalid(error.to_string()))?;
    let meta = CommandMeta {
        event_id: request.event_id,
        occurred_at: request.occurred_at,
        actor: principal.actor.clone(),
        correlation_id: request.correlation_id,
        expected_version,
    };
    let committed = run_command(&state, &principal, &command, meta).await?;
    Ok(appended(&state, &stream_id, committed))
}

/// The body of `POST /api/v1/commands` read into its request and its command: malformed JSON
/// is 400, a body holding an access token or not naming a valid command 422. Pure, so that
/// it can be fuzzed.
pub fn parse_command_body(body: &[u8]) -> Result<(CommandRequest, Command), ApiError> {
    let request: CommandRequest = parse_json(body)?;
    refuse_tokens(body)?;
    let command: Command =
        serde_json::from_value(serde_json::json!({ "command": request.command, "data": request.data }))
            .map_err(|error| ApiError::invalid(format!("not a valid command: {error}")))?;
    Ok((request, command))
}

/// Runs `command` for `principal` (the API's commands and the dashboard's forms alike): the
/// role's permission, for field staff their own work at their sites and recently, then the
/// service. `meta.actor` is the principal's.
pub(crate) async fn run_command(
    state: &AppState,
    principal: &Principal,
    command: &Command,
    meta: CommandMeta,
) -> Result<Committed, ApiError> {
    run_command_telling(state, principal, command, meta).await.map_err(|(error, _)| error)
}

/// [`run_command`], also giving the rule that refused the command, when one did (for pages
/// that tell it in their own language).
pub(crate) async fn run_command_telling(
    state: &AppState,
    principal: &Principal,
    command: &Command,
    meta: CommandMeta,
) -> Result<Committed, (ApiError, Option<domain::DomainError>)> {
    let plain = |error: ApiError| (error, None);
    // The decoded text too: JSON escapes could hide a token from a scan of a raw body.
    refuse_tokens(&serde_json::to_vec(command).map_err(|error| plain(ApiError::internal(&error)))?).map_err(plain)?;
    principal.require(permission_for(command)).map_err(plain)?;
    if let Some(amends) = command.facts().amends() {
        // An amendment writes what the amended event said: it needs that kind's permission
        // too. (An unknown target is refused by the rules, after this.)
        let target = state.service.event(amends.event_id()).await.map_err(|error| plain(error.into()))?;
        if let Some(target) = target {
            principal.require(crate::auth::permission_to_write(target.event.facts().access())).map_err(plain)?;
        }
    }
    if principal.role.is_site_bound() {
        authorize_field_command(state, principal, command, meta.occurred_at, meta.event_id).await.map_err(plain)?;
    }
    match state.service.execute(command, &meta, Timestamp::now()).await {
        Ok(committed) => Ok(committed),
        Err(error) => {
            let rule = match &error {
                service::ServiceError::Refused(rule) => Some(rule.clone()),
                _ => None,
            };
            let error = ApiError::from(error);
            count_conflict(state, &error);
            Err((error, rule))
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    /// Field time (RFC 3339): the world as it happened up to this moment, as known now
    /// (events that occurred by then, late arrivals and later corrections included).
    #[param(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<Timestamp>,
    /// Log time (RFC 3339): as the log stood at this moment (events recorded by then), what
    /// the board showed then. With `as_of`: what was known then about the situation at `as_of`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub known_at: Option<Timestamp>,
    /// Only this site's checkpoints.
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub site: Option<EntityId>,
}

/// Limits a report to the sites a field token covers: their checkpoints and site roll-ups
/// only (the grid and community roll-ups would sum other sites).
fn only_sites(mut report: StatusReport, principal: &Principal) -> StatusReport {
    report.checkpoints.retain(|checkpoint| checkpoint.site_id.as_ref().is_some_and(|site| principal.covers_site(site)));
    report.sites.retain(|site| principal.covers_site(&site.id));
    report.grids.clear();
    report.communities.clear();
    report
}

/// The live status board: every checkpoint's last check, overdue or not, open issues, with
/// roll-ups by site, grid and community (now, or as of a moment).
#[utoipa::path(
    get, path = "/api/v1/status", tag = "queries", params(StatusParams),
    responses((status = 200, description = "the status report", body = Object), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn status(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<StatusParams>,
) -> Result<Response, ApiError> {
    principal.require(Permission::ReadStatus)?;
    if let Some(site) = &params.site {
        if !principal.covers_site(site) {
            return Err(ApiError::forbidden(format!("site {site} is not one of this token's sites")));
        }
    }
    let times = service::Times { as_of: params.as_of, known_at: params.known_at };
    if times != service::Times::NOW {
        // A fold of the log at another moment: an audit read.
        principal.require(Permission::ReadAudit)?;
        let site = params.site.clone();
        let report =
            heavy(&state, move |service| async move { service.status_at_times(times, site.as_ref()).await }).await?;
        return Ok(
            Json(if principal.role.is_site_bound() { only_sites(report, &principal) } else { report }).into_response()
        );
    }
    if principal.role.is_site_bound() {
        let report = state.service.status(Timestamp::now(), params.site.as_ref()).await?;
        return Ok(Json(only_sites(report, &principal)).into_response());
    }
    // The board now, for roles that see all of it: shared by every request at the same
    // log position within `STATUS_CACHE_TTL` (dashboards poll it; `as_of` in the body
    // says when it was computed). A new event always gives a fresh board.
    let position = state.service.catch_up().await?;
    if let Some(body) = state.status_cache.get(params.site.as_ref(), position) {
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let report = state.service.status(Timestamp::now(), params.site.as_ref()).await?;
    let body = axum::body::Bytes::from(serde_json::to_vec(&report).map_err(|error| ApiError::internal(&error))?);
    state.status_cache.put(params.site, position, body.clone());
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IssueParams {
    /// raised, acknowledged, assigned, in_progress, escalated, resolved or verified.
    #[param(value_type = Option<String>, pattern = r"^(raised|acknowledged|assigned|in_progress|escalated|resolved|verified)$")]
    pub state: Option<IssueState>,
    /// Only open (true) or only closed (false) issues.
    pub open: Option<bool>,
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub site: Option<EntityId>,
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub checkpoint: Option<EntityId>,
    /// e.g. courier_congestion.
    #[param(value_type = Option<String>)]
    pub category: Option<IssueCategory>,
    #[param(value_type = Option<String>)]
    pub severity: Option<Severity>,
}

/// Gate issues, filtered; field tokens see their sites' issues only.
#[utoipa::path(
    get, path = "/api/v1/issues", tag = "queries", params(IssueParams),
    responses((status = 200, description = "matching issues", body = [Object])),
    security(("bearer" = []))
)]
pub async fn issues(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<IssueParams>,
) -> Result<Json<Vec<IssueRecord>>, ApiError> {
    principal.require(Permission::ReadStatus)?;
    let sites = state.service.checkpoint_sites().await?;
    let mut issues = state.service.issues().await?;
    issues.retain(|issue| {
        let site = sites.get(&issue.checkpoint_id);
        site.is_some_and(|site| principal.covers_site(site))
            && params.site.as_ref().is_none_or(|wanted| site == Some(wanted))
            && params.checkpoint.as_ref().is_none_or(|wanted| &issue.checkpoint_id == wanted)
            && params.state.is_none_or(|wanted| issue.state == wanted)
            && params.open.is_none_or(|open| issue.is_open() == open)
            && params.category.is_none_or(|wanted| issue.category == wanted)
            && params.severity.is_none_or(|wanted| issue.severity == wanted)
    });
    Ok(Json(issues))
}

/// One gate issue.
#[utoipa::path(
    get, path = "/api/v1/issues/{issue_id}", tag = "queries",
    params(("issue_id" = String, Path, description = "the issue's id", pattern = r"^[A-Za-z0-9._:-]{1,128}$")),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn issue(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(issue_id): PathParam,
) -> Result<Json<IssueRecord>, ApiError> {
    principal.require(Permission::ReadStatus)?;
    let issue_id = EntityId::new(issue_id).map_err(|error| ApiError::invalid(error.to_string()))?;
    // An issue at another site is answered as an unknown one is: a site-bound token cannot
    // tell which ids exist elsewhere.
    let unknown = || ApiError::not_found(format!("no issue {issue_id} at this token's sites"));
    let issue = state.service.issue(&issue_id).await?.ok_or_else(unknown)?;
    if principal.role.is_site_bound() {
        let sites = state.service.checkpoint_sites().await?;
        if !sites.get(&issue.checkpoint_id).is_some_and(|site| principal.covers_site(site)) {
            return Err(unknown());
        }
    }
    Ok(Json(issue))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TimelineParams {
    /// The local day, YYYY-MM-DD.
    #[param(value_type = String, format = Date)]
    pub day: jiff::civil::Date,
    /// Only events naming this entity (a checkpoint, issue, staff member, ...).
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub entity: Option<EntityId>,
    /// Field time (RFC 3339): only what had happened by then (as known now).
    #[param(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<Timestamp>,
    /// Log time (RFC 3339): only what the log held then.
    #[param(value_type = Option<String>, format = DateTime)]
    pub known_at: Option<Timestamp>,
}

/// The audit timeline of a local day: every event in the order it happened, late arrivals
/// marked, corrections linked both ways.
#[utoipa::path(
    get, path = "/api/v1/timeline", tag = "audit", params(TimelineParams),
    responses((status = 200, body = [Object]), (status = 404, description = "no event names the entity", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn timeline(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<TimelineParams>,
) -> Result<Json<Vec<projections::TimelineEntry>>, ApiError> {
    principal.require(Permission::ReadAudit)?;
    let (day, entity) = (params.day, params.entity.clone());
    let times = service::Times { as_of: params.as_of, known_at: params.known_at };
    let entries =
        heavy(&state, move |service| async move { service.timeline(day, entity.as_ref(), times).await }).await?;
    entries.map(Json).ok_or_else(|| {
        ApiError::not_found(format!("no event names {}", params.entity.as_ref().map_or("", |entity| entity.as_str())))
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReplayParams {
    /// The local day, YYYY-MM-DD.
    #[param(value_type = String, format = Date)]
    pub day: jiff::civil::Date,
    /// Stop at this local time, HH:MM (the end of the day when not given).
    #[param(value_type = Option<String>, pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?$")]
    pub until: Option<jiff::civil::Time>,
    /// Field time (RFC 3339): only what had happened by then (as known now).
    #[param(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<Timestamp>,
    /// Log time (RFC 3339): only what the log held then.
    #[param(value_type = Option<String>, format = DateTime)]
    pub known_at: Option<Timestamp>,
}

/// The replay of a local day: its events in the order they happened with what each
/// changed, and the status as of a moment of that day.
#[utoipa::path(
    get, path = "/api/v1/replay", tag = "audit", params(ReplayParams),
    responses((status = 200, body = Object)),
    security(("bearer" = []))
)]
pub async fn replay(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<ReplayParams>,
) -> Result<Json<service::Replay>, ApiError> {
    principal.require(Permission::ReadAudit)?;
    let (day, until) = (params.day, params.until);
    let times = service::Times { as_of: params.as_of, known_at: params.known_at };
    Ok(Json(heavy(&state, move |service| async move { service.replay(day, until, times).await }).await?))
}

/// The public key that signs day seals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SealKeyResponse {
    /// Always `ed25519`.
    pub algorithm: &'static str,
    /// The first 16 hex digits of the blake3 hash of the 32-byte public key: what a seal names.
    pub key_id: String,
    /// The 32-byte ed25519 public key, hex.
    pub public_key: String,
}

/// The public key that signs day seals (what an auditor checks a seal's signature with).
#[utoipa::path(
    get, path = "/api/v1/seal-key", tag = "audit",
    responses(
        (status = 200, body = SealKeyResponse),
        (status = 404, description = "no seal key is configured", body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn seal_key(State(state): State<AppState>, principal: Principal) -> Result<Json<SealKeyResponse>, ApiError> {
    principal.require(Permission::ReadStatus)?;
    let key = state.config.seal_key.as_ref().map(|key| key.public()).ok_or_else(|| {
        ApiError::not_found(
            "no seal key is configured: make one with `gridwatch seal-key create`, serve with --seal-key",
        )
    })?;
    Ok(Json(SealKeyResponse { algorithm: key.algorithm, key_id: key.key_id, public_key: key.public_key }))
}

/// What `GET /api/v1/verify` found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyResponse {
    /// Whether every record, link, stream version, `recorded_at` order and index entry held.
    pub intact: bool,
    /// Events checked and found intact, from position 1.
    pub events: u64,
    /// Hex of the chain hash of the last intact event (all zeros for an empty log).
    pub head_hash: String,
    /// The first bad position and why, when the log is not intact.
    pub problem: Option<VerifyProblemBody>,
    /// Day seals checked against the log (what each covers, its Merkle root, the chain hash
    /// at its head, its link to the previous seal, and its signature with the server's key).
    pub seals_checked: u64,
    /// The seals that did not hold (none when every seal holds).
    pub seal_problems: Vec<SealProblemBody>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SealProblemBody {
    pub global_position: u64,
    #[schema(value_type = String, format = Date)]
    pub local_day: jiff::civil::Date,
    pub sequence: u32,
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyProblemBody {
    pub global_position: u64,
    pub reason: String,
}

/// Verifies the whole log while the server runs (as `gridwatch verify` does on a stopped
/// store): every record's chain link, its bytes, the stream versions, `recorded_at` order and
/// the indexes. It reads alongside the writers, never holding them up, off the async workers;
/// one runs at a time (503 while another runs), not limited by the request timeout.
#[utoipa::path(
    get, path = "/api/v1/verify", tag = "audit",
    responses((status = 200, description = "the verification's findings (intact or not)", body = VerifyResponse)),
    security(("bearer" = []))
)]
pub async fn verify(State(state): State<AppState>, principal: Principal) -> Result<Json<VerifyResponse>, ApiError> {
    principal.require(Permission::ReadAudit)?;
    let Ok(permit) = state.verify_runs.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "verify-running",
            "a verification of the log is already running; ask again when it has ended",
        ));
    };
    // A task of its own holds the permit until the verification ends, even if this request
    // is dropped (its client gone), so that verifications never pile up.
    let service = state.service.clone();
    let key = state.config.seal_key.as_ref().map(|key| key.public());
    let (report, seals) = tokio::spawn(async move {
        let _permit = permit;
        let report = service.verify().await?;
        // Seals are checked only over a log whose chain holds.
        let seals = match report.problem {
            None => service.verify_seals(key.as_ref()).await?,
            Some(_) => service::SealCheck::default(),
        };
        Ok::<_, store::StoreError>((report, seals))
    })
    .await
    .map_err(|error| ApiError::internal(&error))??;
    Ok(Json(VerifyResponse {
        seals_checked: seals.seals,
        seal_problems: seals
            .problems
            .into_iter()
            .map(|p| SealProblemBody {
                global_position: p.global_position,
                local_day: p.local_day,
                sequence: p.sequence,
                reason: p.reason,
            })
            .collect(),
        intact: report.problem.is_none(),
        events: report.events,
        head_hash: hex::encode(report.last_hash),
        problem: report
            .problem
            .map(|problem| VerifyProblemBody { global_position: problem.global_position, reason: problem.reason }),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// The first local day, YYYY-MM-DD.
    #[param(value_type = String, format = Date)]
    pub day: jiff::civil::Date,
    /// The last local day (the same as `day` when not given).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<jiff::civil::Date>,
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub site: Option<EntityId>,
    /// md (default), json, html or text (short lines for a chat group).
    #[param(value_type = Option<String>, pattern = r"^(md|json|html|text)$")]
    pub format: Option<String>,
    /// zh (default) or en.
    #[param(value_type = Option<String>, pattern = r"^(zh|en)$")]
    pub lang: Option<String>,
    /// Field time (RFC 3339): only what had happened by then (as known now).
    #[param(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<Timestamp>,
    /// Log time (RFC 3339): only what the log held then.
    #[param(value_type = Option<String>, format = DateTime)]
    pub known_at: Option<Timestamp>,
}

/// The after-action summary of a day or a range of days, in Markdown, JSON, HTML or plain
/// text (short lines for a chat group), in Chinese or English. An unknown `format` or `lang`
/// is an invalid value (422).
#[utoipa::path(
    get, path = "/api/v1/report", tag = "audit", params(ReportParams),
    responses(
        (status = 200, description = "the report", content(
            (String = "text/markdown"), (Object = "application/json"), (String = "text/html"),
            (String = "text/plain"))),
        (status = 422, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn report(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<ReportParams>,
) -> Result<Response, ApiError> {
    principal.require(Permission::ReadAudit)?;
    let to = params.to.unwrap_or(params.day);
    if to < params.day {
        return Err(ApiError::invalid(format!("to {to} is before day {}", params.day)));
    }
    let days = params.day.until(to).map_or(i32::MAX, |span| span.get_days());
    if days >= state.config.report_days_max {
        return Err(ApiError::invalid(format!("a report covers at most {} days", state.config.report_days_max)));
    }
    let format = choice(params.format.as_deref(), "format", projections::Format::Markdown)?;
    let lang = choice(params.lang.as_deref(), "lang", projections::Lang::Zh)?;
    let (day, site) = (params.day, params.site.clone());
    let times = service::Times { as_of: params.as_of, known_at: params.known_at };
    let summary =
        heavy(&state, move |service| async move { service.summary(day, to, site.as_ref(), times).await }).await?;
    let report = projections::render(&summary, format, lang)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], report).into_response())
}

/// A named choice (`format=md`), by the serde names of `T`; `default` when not given. A
/// value that names none of them is invalid (422), as it always was.
fn choice<T: serde::de::DeserializeOwned>(text: Option<&str>, name: &str, default: T) -> Result<T, ApiError> {
    let Some(text) = text else { return Ok(default) };
    let deserializer = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(text);
    T::deserialize(deserializer).map_err(|error| ApiError::invalid(format!("{name} {text:?}: {error}")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// The first global position (1 when not given).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub from: Option<u64>,
    /// At most this many events (1,000 when not given; at most 10,000).
    #[param(minimum = 1, maximum = 10_000)]
    pub limit: Option<usize>,
}

/// The log itself: stored envelopes from a global position on, as `gridwatch events`
/// prints them (a JSON array, or NDJSON with `Accept: application/x-ndjson`).
#[utoipa::path(
    get, path = "/api/v1/events", tag = "log", params(EventsParams),
    responses((status = 200, description = "envelopes in log order", body = [Object])),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    QueryParams(params): QueryParams<EventsParams>,
) -> Result<Response, ApiError> {
    principal.require(Permission::ReadAudit)?;
    let limit = params.limit.unwrap_or(EVENTS_PAGE_DEFAULT);
    if limit == 0 || limit > READ_PAGE_EVENTS_MAX {
        return Err(ApiError::invalid(format!("limit must be 1 to {READ_PAGE_EVENTS_MAX}")));
    }
    let from = params.from.unwrap_or(1).max(1);
    check_position("from", from)?;
    let page = state.service.events(from, limit).await?;
    let ndjson = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/x-ndjson"));
    if ndjson {
        let mut text = Vec::new();
        for event in &page {
            serde_json::to_writer(&mut text, event).map_err(|error| ApiError::internal(&error))?;
            text.push(b'\n');
        }
        Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response())
    } else {
        Ok(Json(page).into_response())
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AppendParams {
    /// `any` (default), `none` (the stream must not exist) or N (its last version).
    #[param(pattern = r"^(any|none|no-stream|\+?[0-9]{1,20})$")]
    pub expected_version: Option<String>,
}

/// Raw append to one stream of the log, all or nothing (admin): the body holds the same
/// event lines as `gridwatch append`, as a JSON array or NDJSON.
#[utoipa::path(
    post, path = "/api/v1/streams/{stream_id}/events", tag = "log",
    params(("stream_id" = String, Path, pattern = r"^[A-Za-z0-9._:-]{1,128}$"), AppendParams),
    request_body(content = [Object], description = "event lines (see EventLine.schema.json)", content_type = "application/json"),
    responses(
        (status = 201, body = AppendResponse),
        (status = 200, description = "every event id was already in the log", body = AppendResponse),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn append_events(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(stream_id): PathParam,
    QueryParams(params): QueryParams<AppendParams>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    principal.require(Permission::AppendLog)?;
    let stream_id = EntityId::new(stream_id).map_err(|error| ApiError::invalid(format!("stream id: {error}")))?;
    let expected: ExpectedVersion = match params.expected_version.as_deref() {
        None => ExpectedVersion::Any,
        Some(text) => {
            text.parse().map_err(|error: String| ApiError::malformed(format!("expected_version: {error}")))?
        }
    };
    let text =
        std::str::from_utf8(&body).map_err(|error| ApiError::malformed(format!("body is not UTF-8: {error}")))?;
    refuse_tokens(&body)?;
    let events =
        events_schema::parse_event_lines(text, &principal.actor, Timestamp::now()).map_err(ApiError::invalid)?;
    // Also the decoded text of everything that reaches the log (JSON escapes could hide a
    // token from the scan of the raw body).
    refuse_tokens(stream_id.as_str().as_bytes())?;
    for event in &events {
        refuse_tokens(event.actor.as_str().as_bytes())?;
        refuse_tokens(&serde_json::to_vec(&event.event).map_err(|error| ApiError::internal(&error))?)?;
    }
    match state.service.append_raw(&stream_id, expected, events).await? {
        Ok(committed) => Ok(appended(&state, &stream_id, committed)),
        Err(rejection) => {
            let error = ApiError::from(rejection);
            count_conflict(&state, &error);
            Err(error)
        }
    }
}

/// Runs `work` on the token file off the async workers (it reads, writes and fsyncs a
/// file). A request the file refuses (`InvalidInput`) is 422; any other failure is 500.
async fn on_token_file<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&crate::TokenFile) -> std::io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let tokens = state.tokens.clone();
    tokio::task::spawn_blocking(move || work(&tokens)).await.map_err(|error| ApiError::internal(&error))?.map_err(
        |error| match error.kind() {
            std::io::ErrorKind::InvalidInput => ApiError::invalid(error.to_string()),
            _ if error.get_ref().is_some_and(|inner| inner.is::<crate::auth::TokensUnavailable>()) => {
                ApiError::tokens_unavailable()
            }
            _ => ApiError::internal(&error),
        },
    )
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub role: Role,
    /// For field staff: the sites it may work at.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub sites: Vec<EntityId>,
    /// Who the events written with it are by (a staff id; required for field tokens);
    /// `token:<token id>` when not given.
    #[schema(value_type = Option<String>)]
    pub actor: Option<EntityId>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub token_id: String,
    /// The token itself: shown this once, stored only as a hash.
    pub token: String,
    pub role: Role,
    #[schema(value_type = Vec<String>)]
    pub sites: Vec<EntityId>,
    #[schema(value_type = String)]
    pub actor: EntityId,
}

/// Make a token (admin). The answer is the only place its text ever appears.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenRequest,
    responses(
        (status = 201, body = TokenResponse),
        (status = 400, description = "malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a field token without an actor, sites on another role, a bad role", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    Body(body): Body,
) -> Result<Response, ApiError> {
    principal.require(Permission::ManageTokens)?;
    let request: TokenRequest = parse_json(&body)?;
    let made = on_token_file(&state, move |tokens| tokens.create(request.role, request.sites, request.actor)).await?;
    tracing::info!(token_id = %made.record.token_id, role = ?made.record.role, by = %principal.token_id, "token created");
    let body = TokenResponse {
        token_id: made.record.token_id,
        token: made.token,
        role: made.record.role,
        sites: made.record.sites,
        actor: made.record.actor,
    };
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// Every live token (admin): ids, roles, sites, actors; never a secret or a hash.
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = [crate::auth::TokenInfo])),
    security(("bearer" = []))
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<crate::auth::TokenInfo>>, ApiError> {
    principal.require(Permission::ManageTokens)?;
    Ok(Json(on_token_file(&state, |tokens| tokens.list()).await?))
}

/// Revoke a token (admin): it authenticates nowhere from the next request on.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{token_id}", tag = "tokens",
    params(("token_id" = String, Path, pattern = r"^[0-9a-f]{12}$")),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(token_id): PathParam,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::ManageTokens)?;
    let token_id = crate::auth::id_of(&token_id).to_owned();
    let id = token_id.clone();
    let revoked = on_token_file(&state, move |tokens| tokens.revoke(&id)).await?;
    if !revoked {
        return Err(ApiError::not_found(format!("no live token {token_id}")));
    }
    // Its dashboard sessions end now (their live boards within a second).
    state.web.sessions.end_token(&token_id);
    tracing::info!(%token_id, by = %principal.token_id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store answers and the server is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = Object), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting-down", "the server is shutting down"));
    }
    // A node that can check no token serves no one: not ready.
    state.tokens.checkable()?;
    let head = state.service.head_position().await.map_err(|error| {
        let mut problem = ApiError::from(error);
        problem.status = StatusCode::SERVICE_UNAVAILABLE;
        problem
    })?;
    Ok(Json(serde_json::json!({ "ready": true, "head_position": head })))
}

/// Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let head = state.service.head_position().await.unwrap_or(0);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render(head)).into_response()
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", responses((status = 200, body = Object)))]
pub async fn openapi() -> Json<&'static serde_json::Value> {
    Json(crate::openapi_document())
}

/// A consistent backup of the whole log as it stands when asked, streamed as NDJSON (the
/// README's "Backup and restore"): the header names the head position and its chain hash,
/// then every record up to it. Writers go on meanwhile; `gridwatch restore` rebuilds a store
/// with the identical chain from it.
#[utoipa::path(
    post, path = "/api/v1/backup", tag = "operations",
    responses(
        (status = 200, description = "the backup, header line first", body = String, content_type = "application/x-ndjson"),
        (status = 403, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn backup(State(state): State<AppState>, principal: Principal) -> Result<Response, ApiError> {
    principal.require(Permission::Backup)?;
    let (header_sender, header) = tokio::sync::oneshot::channel();
    let (lines, body) = tokio::sync::mpsc::channel::<Result<String, store::StoreError>>(4);
    let service = state.service.clone();
    // A task of its own reads the log a page at a time while the client takes the lines;
    // it ends when the client goes away.
    tokio::spawn(async move {
        let (head, mut stream) = match service.backup().await {
            Ok(backup) => backup,
            Err(error) => {
                let _ = header_sender.send(Err(error));
                return;
            }
        };
        let _ = header_sender.send(Ok(head));
        while let Some(line) = futures::StreamExt::next(&mut stream).await {
            if let Err(error) = &line {
                tracing::error!(%error, "a backup failed while it was sent; the client gets a cut-off body");
            }
            if lines.send(line).await.is_err() {
                return;
            }
        }
    });
    let head = header.await.map_err(|error| ApiError::internal(&error))??;
    tracing::info!(head_position = head.head_position, "backup started");
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body));
    let name = format!("attachment; filename=\"gridwatch-backup-{}.ndjson\"", head.head_position);
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson".to_owned()), (header::CONTENT_DISPOSITION, name)], body)
        .into_response())
}

pub async fn no_route() -> ApiError {
    ApiError::not_found("no such route; the API is described at /api/openapi.json")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "this route does not take that method")
}

fn day_of_path(text: &str) -> Result<jiff::civil::Date, ApiError> {
    text.parse().map_err(|_| ApiError::invalid(format!("{text:?} is not a day (YYYY-MM-DD)")))
}

/// The public keys an export or a proof names.
fn published_keys(state: &AppState) -> Vec<service::seal_key::PublicSealKey> {
    state.config.seal_key.iter().map(|key| key.public()).collect()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// The last local day of the export (the path's day when not given).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<jiff::civil::Date>,
    /// `ndjson` (the default) or `cloudevents` (the same lines as CloudEvents, structured mode).
    pub format: Option<String>,
}

/// The export of local days (the README's "Day export"): NDJSON that `gridwatch verify
/// --file` checks with no server and no data.
#[utoipa::path(
    get, path = "/api/v1/days/{day}/export", tag = "audit",
    params(("day" = String, Path, format = Date, description = "the first local day"), ExportParams),
    responses(
        (status = 200, description = "the export", content_type = "application/x-ndjson", body = String),
        (status = 422, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn day_export(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(day): PathParam,
    QueryParams(params): QueryParams<ExportParams>,
) -> Result<Response, ApiError> {
    principal.require(Permission::ReadAudit)?;
    let day = day_of_path(&day)?;
    let to = params.to.unwrap_or(day);
    if to < day {
        return Err(ApiError::invalid(format!("to {to} is before day {day}")));
    }
    if day.until(to).map_or(i32::MAX, |span| span.get_days()) >= state.config.report_days_max {
        return Err(ApiError::invalid(format!("an export covers at most {} days", state.config.report_days_max)));
    }
    let cloudevents = match params.format.as_deref() {
        None | Some("ndjson") => false,
        Some("cloudevents") => true,
        Some(other) => return Err(ApiError::invalid(format!("format {other:?}: ndjson or cloudevents"))),
    };
    let key = state.config.seal_key.clone();
    let text = heavy(&state, move |service| async move { service.export_days(day, to, key.as_deref()).await }).await?;
    if cloudevents {
        let text = service::day_file::to_cloudevents(&text).map_err(|error| ApiError::internal(&error))?;
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response());
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response())
}

/// A local day's seals, and how many of its events arrived after the last of them.
#[utoipa::path(
    get, path = "/api/v1/days/{day}/seals", tag = "audit",
    params(("day" = String, Path, format = Date, description = "the local day")),
    responses((status = 200, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn day_seals(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(day): PathParam,
) -> Result<Json<service::DaySeals>, ApiError> {
    principal.require(Permission::ReadAudit)?;
    let day = day_of_path(&day)?;
    Ok(Json(state.service.day_seals(day).await?))
}

/// Seals a local day now (its first seal, or an addendum for the events that arrived after
/// it): 201 with the seal, or 200 with `null` when nothing arrived since its last seal.
#[utoipa::path(
    post, path = "/api/v1/days/{day}/seal", tag = "audit",
    params(("day" = String, Path, format = Date, description = "the local day")),
    responses(
        (status = 201, description = "the seal made", body = Object),
        (status = 200, description = "nothing to seal"),
        (status = 409, description = "no seal key is configured", body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn seal_day(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(day): PathParam,
) -> Result<Response, ApiError> {
    principal.require(Permission::WriteOperational)?;
    let day = day_of_path(&day)?;
    let key = state.config.seal_key.clone().ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "no-seal-key", "no seal key is configured: days cannot be sealed")
    })?;
    match state.service.seal_day(day, &key).await? {
        Some(seal) => Ok((StatusCode::CREATED, Json(seal)).into_response()),
        None => Ok((StatusCode::OK, Json(serde_json::Value::Null)).into_response()),
    }
}

/// One event with its inclusion proof in the Merkle root of the signed seal that covers it
/// (the README's "Day export"); `gridwatch verify --file` checks it alone.
#[utoipa::path(
    get, path = "/api/v1/events/{event_id}/proof", tag = "audit",
    params(("event_id" = String, Path, format = Uuid, description = "the event's id")),
    responses(
        (status = 200, body = Object),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "no signed seal covers the event yet", body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn event_proof(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(event_id): PathParam,
) -> Result<Response, ApiError> {
    principal.require(Permission::ReadAudit)?;
    let event_id: Uuid = event_id.parse().map_err(|_| ApiError::invalid(format!("{event_id:?} is not a UUID")))?;
    match state.service.prove(event_id, &published_keys(&state)).await {
        Ok(proof) => Ok(([(header::CONTENT_TYPE, "application/json")], proof).into_response()),
        Err(service::ProofError::Store(error)) => Err(error.into()),
        Err(service::ProofError::NoSuchEvent) => Err(ApiError::not_found(format!("no event {event_id}"))),
        Err(error) => Err(ApiError::new(StatusCode::CONFLICT, "not-sealed", error.to_string())),
    }
}
