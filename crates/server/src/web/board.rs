//! The status board, the dashboard's home page: every checkpoint grouped by community, grid
//! and site, its state in words and colour, its last check and open issues; overdue gates
//! first. It refreshes itself when the live board feed says the log moved (and every half
//! minute, since a gate becomes overdue with no event at all).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use events_schema::{CheckResult, EntityId, IssueCategory, Severity, Timestamp};
use futures::{Stream, StreamExt};
use projections::{CheckpointStatus, IssueBoard, Registry};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Person, WebError};
use crate::AppState;
use crate::auth::{Permission, Principal};

/// A gate whose next check is due within this long is "due soon".
pub const DUE_SOON: Duration = Duration::from_secs(15 * 60);
/// The live board tells a page at most this often that the log moved (the last change of a
/// burst is always told).
pub const LIVE_BOARD_INTERVAL: Duration = Duration::from_millis(250);
/// How often the live board checks that its session and token are still live.
const SESSION_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A checkpoint's state on the board, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateState {
    Overdue,
    Issue,
    DueSoon,
    Ok,
    Closed,
}

impl GateState {
    fn of(status: &CheckpointStatus, now: Timestamp) -> GateState {
        if !status.open {
            GateState::Closed
        } else if status.overdue {
            GateState::Overdue
        } else if status.open_issues > 0 {
            GateState::Issue
        } else if status
            .due_at
            .is_some_and(|due_at| due_at.as_microsecond() - now.as_microsecond() <= DUE_SOON.as_micros() as i64)
        {
            GateState::DueSoon
        } else {
            GateState::Ok
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardFilter {
    /// Only this site's gates.
    #[serde(default, deserialize_with = "empty_is_none")]
    pub site: Option<EntityId>,
    /// Only gates in this state.
    #[serde(default, deserialize_with = "empty_is_none")]
    pub state: Option<GateState>,
    /// The live board: the position the page was drawn at.
    #[serde(default)]
    pub after: Option<u64>,
}

/// An empty form field (`site=`) means "any".
fn empty_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let text = Option::<String>::deserialize(deserializer)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => T::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(text)).map(Some),
    }
}

/// A filter as a query string (the empty parts left out).
#[derive(Serialize)]
struct FilterQuery<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<&'a EntityId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<GateState>,
}

#[derive(Debug, Serialize)]
struct LastCheck {
    at: String,
    by: String,
    issue_found: bool,
}

#[derive(Debug, Serialize)]
struct OpenIssue {
    issue_id: String,
    summary: String,
    category: IssueCategory,
    severity: Severity,
    age_minutes: i64,
}

#[derive(Debug, Serialize)]
struct Gate {
    checkpoint_id: String,
    name: String,
    state: GateState,
    worst_severity: Option<Severity>,
    last_check: Option<LastCheck>,
    due_at: Option<String>,
    issues: Vec<OpenIssue>,
}

#[derive(Debug, Serialize)]
struct SiteGroup {
    site_id: String,
    name: String,
    worst: GateState,
    gates: Vec<Gate>,
}

#[derive(Debug, Serialize)]
struct GridGroup {
    name: String,
    sites: Vec<SiteGroup>,
}

#[derive(Debug, Serialize)]
struct CommunityGroup {
    name: String,
    grids: Vec<GridGroup>,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    gates: usize,
    overdue: usize,
    issue: usize,
    due_soon: usize,
    ok: usize,
    closed: usize,
}

#[derive(Debug, Serialize)]
struct SiteChoice {
    site_id: String,
    name: String,
}

/// The board as a page draws it.
#[derive(Debug, Serialize)]
pub struct BoardView {
    position: u64,
    as_of: String,
    counts: Counts,
    communities: Vec<CommunityGroup>,
    sites: Vec<SiteChoice>,
    site: Option<String>,
    state: Option<GateState>,
    /// The query string of this filter (for the refresh and the live feed).
    query: String,
}

/// `at` in local time: `HH:MM` on the day of `now`, with its date on any other.
fn local_clock(at: Timestamp, now: Timestamp, time_zone: &jiff::tz::TimeZone) -> String {
    let local = at.as_jiff().to_zoned_datetime(time_zone.clone());
    let today = now.as_jiff().to_zoned_datetime(time_zone.clone()).date();
    if local.date() == today {
        local.strftime("%H:%M").to_string()
    } else {
        local.strftime("%Y-%m-%d %H:%M").to_string()
    }
}

/// Who looks at the board, when, and through which filter.
pub(crate) struct Viewer<'a> {
    pub now: Timestamp,
    pub time_zone: &'a jiff::tz::TimeZone,
    pub principal: &'a Principal,
    pub filter: &'a BoardFilter,
}

/// A group's name and id (ordered by name, then id).
type Named = (String, String);
/// Gates by community, grid and site.
type Tree = BTreeMap<Named, BTreeMap<Named, BTreeMap<Named, Vec<Gate>>>>;

/// The board of what the viewer may see, filtered, from the views at `position`.
pub(crate) fn board_view(
    registry: &Registry,
    checkpoints: &projections::CheckpointBoard,
    issues: &IssueBoard,
    position: u64,
    viewer: &Viewer<'_>,
) -> BoardView {
    let Viewer { now, time_zone, principal, filter } = *viewer;
    let status = projections::status_at(registry, checkpoints, issues, now, filter.site.as_ref());
    let name_of_staff =
        |id: &EntityId| registry.staff.get(id).map_or_else(|| id.to_string(), |staff| staff.display_name.clone());
    let mut counts = Counts::default();
    // community -> grid -> site -> gates, each level by name then id.
    let mut tree = Tree::new();
    for checkpoint in &status.checkpoints {
        let (site_id, grid_id, community_id) = registry.place_of(&checkpoint.checkpoint_id);
        let Some(site_id) = site_id else { continue };
        if !principal.covers_site(site_id) {
            continue;
        }
        let state = GateState::of(checkpoint, now);
        match state {
            GateState::Overdue => counts.overdue += 1,
            GateState::Issue => counts.issue += 1,
            GateState::DueSoon => counts.due_soon += 1,
            GateState::Ok => counts.ok += 1,
            GateState::Closed => counts.closed += 1,
        }
        counts.gates += 1;
        if filter.state.is_some_and(|wanted| wanted != state) {
            continue;
        }
        let gate = Gate {
            checkpoint_id: checkpoint.checkpoint_id.to_string(),
            name: checkpoint.name.clone(),
            state,
            worst_severity: checkpoint.worst_open_severity,
            last_check: checkpoint.last_check.as_ref().map(|check| LastCheck {
                at: local_clock(check.checked_at, now, time_zone),
                by: name_of_staff(&check.staff_id),
                issue_found: check.result == CheckResult::IssueFound,
            }),
            due_at: checkpoint.due_at.map(|due_at| local_clock(due_at, now, time_zone)),
            issues: issues
                .open_issues_at(&checkpoint.checkpoint_id)
                .map(|issue| OpenIssue {
                    issue_id: issue.issue_id.to_string(),
                    summary: issue.summary.clone(),
                    category: issue.category,
                    severity: issue.severity,
                    age_minutes: issue.age_micros(now).max(0) / 60_000_000,
                })
                .collect(),
        };
        let named = |id: Option<&EntityId>, name: Option<&str>| {
            (
                name.map_or_else(|| id.map_or_else(String::new, ToString::to_string), str::to_string),
                id.map_or_else(String::new, ToString::to_string),
            )
        };
        let community =
            named(community_id, community_id.and_then(|id| registry.communities.get(id)).map(|c| c.name.as_str()));
        let grid = named(grid_id, grid_id.and_then(|id| registry.grids.get(id)).map(|g| g.name.as_str()));
        let site = named(Some(site_id), registry.sites.get(site_id).map(|s| s.name.as_str()));
        tree.entry(community).or_default().entry(grid).or_default().entry(site).or_default().push(gate);
    }
    let communities = tree
        .into_iter()
        .map(|((name, _), grids)| CommunityGroup {
            name,
            grids: grids
                .into_iter()
                .map(|((name, _), sites)| {
                    let mut sites: Vec<SiteGroup> = sites
                        .into_iter()
                        .map(|((name, site_id), mut gates)| {
                            // Overdue gates first, then open issues (worst first), due soon, ok, closed.
                            gates.sort_by(|a, b| {
                                (a.state, std::cmp::Reverse(a.worst_severity), &a.name).cmp(&(
                                    b.state,
                                    std::cmp::Reverse(b.worst_severity),
                                    &b.name,
                                ))
                            });
                            let worst = gates.first().map_or(GateState::Ok, |gate| gate.state);
                            SiteGroup { site_id, name, worst, gates }
                        })
                        .collect();
                    // Sites with overdue gates first, each group keeping its name order.
                    sites.sort_by_key(|site| site.worst != GateState::Overdue);
                    GridGroup { name, sites }
                })
                .collect(),
        })
        .collect();
    let sites = registry
        .sites
        .iter()
        .filter(|(site_id, _)| principal.covers_site(site_id))
        .map(|(site_id, site)| SiteChoice { site_id: site_id.to_string(), name: site.name.clone() })
        .collect();
    let query = serde_urlencoded::to_string(FilterQuery { site: filter.site.as_ref(), state: filter.state })
        .unwrap_or_default();
    BoardView {
        position,
        as_of: local_clock(now, now, time_zone),
        counts,
        communities,
        sites,
        site: filter.site.as_ref().map(ToString::to_string),
        state: filter.state,
        query,
    }
}

async fn view(state: &AppState, person: &Person, filter: &BoardFilter) -> Result<BoardView, WebError> {
    if !person.principal.role.allows(Permission::ReadStatus) {
        return Err(WebError::Forbidden(
            person.page.lang.pick("This role may not see the board.", "该角色无权查看看板。"),
        ));
    }
    if let Some(site) = &filter.site {
        if !person.principal.covers_site(site) {
            return Err(WebError::Forbidden(
                person.page.lang.pick("That site is not one of yours.", "该站点不在您的范围内。"),
            ));
        }
    }
    let now = Timestamp::now();
    let time_zone = state.service.time_zone().clone();
    let principal = person.principal.clone();
    Ok(state
        .service
        .read_now(|registry, checkpoints, issues, position| {
            let viewer = Viewer { now, time_zone: &time_zone, principal: &principal, filter };
            board_view(registry, checkpoints, issues, position, &viewer)
        })
        .await?)
}

fn filter_of(query: Option<&str>, person: &Person) -> Result<BoardFilter, WebError> {
    serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| {
        WebError::BadRequest(person.page.lang.pick("That board filter is not valid.", "看板筛选条件无效。"))
    })
}

/// `GET /`: the board page.
pub async fn page(State(state): State<AppState>, person: Person, uri: axum::http::Uri) -> Result<Response, WebError> {
    let filter = filter_of(uri.query(), &person)?;
    let board = view(&state, &person, &filter).await?;
    Ok(state
        .web
        .render("board.html", &person.page, minijinja::context! { board => minijinja::value::Serde(&board) })?
        .into_response())
}

/// `GET /board`: the board alone, for the page's refresh.
pub async fn fragment(
    State(state): State<AppState>,
    person: Person,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let filter = filter_of(uri.query(), &person)?;
    let board = view(&state, &person, &filter).await?;
    Ok(state
        .web
        .render("board_body.html", &person.page, minijinja::context! { board => minijinja::value::Serde(&board) })?
        .into_response())
}

/// Whether an event may change what `principal` sees on a board of `site` (when filtered).
async fn concerns(
    state: &AppState,
    principal: &Principal,
    site: Option<&EntityId>,
    event: &events_schema::RecordedEvent,
) -> bool {
    if site.is_none() && !principal.role.is_site_bound() {
        return true;
    }
    match state.service.site_of_event(&event.event).await {
        Ok(service::SiteOf::Site(event_site)) => {
            principal.covers_site(&event_site) && site.is_none_or(|site| *site == event_site)
        }
        // A registration of a place, a correction: it may change any board.
        Ok(service::SiteOf::Unknown | service::SiteOf::Nowhere) => !principal.role.is_site_bound(),
        Err(_) => false,
    }
}

/// `GET /live/board`: server-sent `board` messages (the position, as `id` and data) when
/// the log moved in a way the page's board may show, at most every `LIVE_BOARD_INTERVAL`;
/// from `Last-Event-ID` or `after` (the position the page was drawn at), so a page that
/// reconnects hears of what it missed. It ends when the session or its token does.
pub async fn live(
    State(state): State<AppState>,
    visitor: super::Visitor,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    // Signed out (the session ended, the token was revoked): 204, which tells the browser's
    // EventSource to stop reconnecting (a redirect to the sign-in page would not).
    let Some(signed) = visitor.signed else { return Ok(axum::http::StatusCode::NO_CONTENT.into_response()) };
    let person = Person { page: visitor.page, principal: signed.principal.clone(), signed };
    Ok(live_feed(state, person, headers, uri).await?.into_response())
}

async fn live_feed(
    state: AppState,
    person: Person,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, WebError> {
    let filter = filter_of(uri.query(), &person)?;
    if !person.principal.role.allows(Permission::ReadStatus) {
        return Err(WebError::Forbidden(
            person.page.lang.pick("This role may not see the board.", "该角色无权查看看板。"),
        ));
    }
    let last = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .or(filter.after);
    let from = match last {
        Some(last) => last.saturating_add(1),
        None => state.service.head_position().await?.saturating_add(1),
    };
    let mut subscription = state.service.subscribe(from);
    let (sender, receiver) = mpsc::channel::<SseEvent>(4);
    let shutdown = state.shutdown.clone();
    let key = person.signed.key;
    let principal = person.principal.clone();
    let site = filter.site.clone();
    let ended = state.shutdown.clone().cancelled_owned();
    tokio::spawn(async move {
        let mut recheck = tokio::time::interval(SESSION_RECHECK_INTERVAL);
        let mut tell = tokio::time::interval(LIVE_BOARD_INTERVAL);
        tell.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending: Option<u64> = None;
        // A change after a quiet spell is told at once; changes within `LIVE_BOARD_INTERVAL`
        // of the last message wait for the next tick (the last of a burst always told).
        let mut last_told = tokio::time::Instant::now() - LIVE_BOARD_INTERVAL;
        let tell_now =
            |position: u64| SseEvent::default().event("board").id(position.to_string()).data(position.to_string());
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = sender.closed() => return,
                _ = recheck.tick() => {
                    if !state.web.sessions.exists(&key) || !matches!(state.tokens.is_live(&principal.token_id), Ok(true)) {
                        tracing::info!(token_id = %principal.token_id, "the live board's session ended: feed closed");
                        return;
                    }
                }
                _ = tell.tick() => {
                    if let Some(position) = pending.take() {
                        if sender.send_timeout(tell_now(position), state.config.live_send_timeout).await.is_err() {
                            return;
                        }
                        last_told = tokio::time::Instant::now();
                    }
                }
                next = subscription.next() => match next {
                    None => return,
                    Some(Ok(event)) => {
                        if concerns(&state, &principal, site.as_ref(), &event).await {
                            if last_told.elapsed() >= LIVE_BOARD_INTERVAL {
                                if sender.send_timeout(tell_now(event.global_position), state.config.live_send_timeout).await.is_err() {
                                    return;
                                }
                                last_told = tokio::time::Instant::now();
                                pending = None;
                            } else {
                                pending = Some(event.global_position);
                            }
                        }
                    }
                    Some(Err(error)) => {
                        tracing::error!(%error, "the live board's subscription failed");
                        return;
                    }
                },
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver).map(Ok).take_until(ended);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(
        open: bool,
        overdue: bool,
        open_issues: u32,
        due_in_minutes: Option<i64>,
        now: Timestamp,
    ) -> CheckpointStatus {
        CheckpointStatus {
            checkpoint_id: EntityId::new("gate").unwrap(),
            name: "Gate".into(),
            site_id: None,
            open,
            last_check: None,
            overdue,
            due_at: due_in_minutes
                .map(|minutes| Timestamp::from_microsecond(now.as_microsecond() + minutes * 60_000_000).unwrap()),
            open_issues,
            worst_open_severity: None,
            oldest_open_issue_minutes: None,
            tallies_today: Default::default(),
        }
    }

    #[test]
    fn a_gates_state_is_its_most_urgent_fact() {
        let now = Timestamp::now();
        assert_eq!(GateState::of(&status(false, true, 1, Some(1), now), now), GateState::Closed);
        assert_eq!(GateState::of(&status(true, true, 1, Some(-5), now), now), GateState::Overdue);
        assert_eq!(GateState::of(&status(true, false, 1, Some(5), now), now), GateState::Issue);
        assert_eq!(GateState::of(&status(true, false, 0, Some(15), now), now), GateState::DueSoon);
        assert_eq!(GateState::of(&status(true, false, 0, Some(16), now), now), GateState::Ok);
        assert_eq!(GateState::of(&status(true, false, 0, None, now), now), GateState::Ok, "outside its hours");
    }
}
