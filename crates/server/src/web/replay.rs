//! The day replay: a day's events in the order they happened, a slider and step buttons that
//! show the board as it was after each of them, and the day's integrity from its seals.
//! Without script the slider is a form (`?step=K`); with htmx, moving it redraws only the
//! moment.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use events_schema::{EntityId, Event, Timestamp};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use service::Times;

use super::board::{BoardFilter, Viewer, board_view};
use super::{Lang, Person, WebError};
use crate::AppState;
use crate::auth::Permission;

#[derive(Debug, Default, Deserialize)]
pub struct ReplayParams {
    /// After how many of the day's events (0: the day's start).
    #[serde(default, deserialize_with = "number")]
    step: Option<usize>,
    /// A step button's target (takes precedence over the slider's `step`).
    #[serde(default, deserialize_with = "number")]
    go: Option<usize>,
}

/// A form's number; an empty field is none.
fn number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[derive(Serialize)]
struct EventLine {
    index: usize,
    time: String,
    what: String,
    late: bool,
    retracted: bool,
}

/// The day's integrity, in a word for the badge and a sentence.
#[derive(Serialize)]
struct Integrity {
    state: &'static str,
    words: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct DayParam {
    day: Option<String>,
}

/// `GET /replay[?day=D]`: the replay of that day (today's when not given, or not a day).
pub async fn pick(
    State(state): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<DayParam>,
) -> Response {
    let today = projections::local_day(Timestamp::now(), state.service.time_zone());
    let day = params.day.and_then(|day| day.parse::<Date>().ok()).unwrap_or(today);
    Redirect::to(&format!("/days/{day}/replay")).into_response()
}

fn day_of(text: &str, lang: Lang) -> Result<Date, WebError> {
    text.parse::<Date>()
        .map_err(|_| WebError::NotFound(lang.pick("That is not a day (YYYY-MM-DD).", "日期格式应为 YYYY-MM-DD。")))
}

/// What an event says, in words (people by their names).
pub(crate) fn event_words(
    event: &Event,
    lang: Lang,
    name: &dyn Fn(&EntityId) -> String,
    place: &dyn Fn(&EntityId) -> String,
) -> String {
    let l = lang.into();
    let words = projections::words::category;
    match event {
        Event::PatrolCheckRecorded(e) => format!(
            "{} {}, {}: {}",
            lang.pick("Check at", "巡查"),
            place(&e.checkpoint_id),
            name(&e.staff_id),
            if e.result == events_schema::CheckResult::IssueFound {
                lang.pick("issue found", "发现问题")
            } else {
                lang.pick("all in order", "一切正常")
            }
        ),
        Event::TrafficTallyRecorded(e) => format!(
            "{} {}: {} {}, {} {}",
            lang.pick("Tally at", "登记统计"),
            place(&e.checkpoint_id),
            e.people_screened,
            lang.pick("people screened", "人次查验"),
            e.vehicles,
            lang.pick("vehicles", "车辆")
        ),
        Event::GateIssueRaised(e) => format!(
            "{} {} ({}, {}): {}",
            lang.pick("Issue raised at", "问题上报"),
            place(&e.checkpoint_id),
            words(l, e.category),
            projections::words::severity(l, e.severity),
            e.summary
        ),
        Event::FieldNoteRecorded(e) => format!("{} {}: {}", lang.pick("Note by", "工作记录"), name(&e.author), e.text),
        Event::CheckpointClosed(e) => format!("{} {}", lang.pick("Closed:", "关闭："), place(&e.checkpoint_id)),
        Event::CheckpointReopened(e) => format!("{} {}", lang.pick("Reopened:", "重新开放："), place(&e.checkpoint_id)),
        other => {
            let (by, what) = super::forms::step_words(other, lang, name);
            if by.is_empty() { what } else { format!("{what} ({by})") }
        }
    }
}

/// `GET /days/{day}/replay[?step=K]`: the day's replay at the moment after its K-th event.
pub async fn page(
    State(state): State<AppState>,
    person: Person,
    Path(day): Path<String>,
    axum::extract::Query(params): axum::extract::Query<ReplayParams>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let lang = person.page.lang;
    if !person.principal.role.allows(Permission::ReadAudit) {
        return Err(WebError::Forbidden(lang.pick("This role may not replay days.", "该角色无权回放。")));
    }
    let day = day_of(&day, lang)?;
    let time_zone = state.service.time_zone().clone();
    // The day's reads fold a period of the log: a heavy read, as the API's replay is.
    let (start, end) = projections::day_bounds(day, &time_zone)
        .ok_or(WebError::NotFound(lang.pick("That day cannot be shown.", "无法显示该日期。")))?;
    let principal = person.principal.clone();
    let key = state.config.seal_key.as_ref().map(|key| key.public());
    let wanted_step = params.go.or(params.step);
    let (entries, step, board, names, seals, check) = crate::routes::heavy(&state, move |service| async move {
        let entries = service.timeline(day, None, Times::NOW).await?.unwrap_or_default();
        let step = wanted_step.unwrap_or(entries.len()).min(entries.len());
        // The moment after the step's event (the day's start before the first; the day's
        // end after the last).
        let moment = match step {
            0 => start,
            k if k == entries.len() => end,
            k => entries[k - 1].occurred_at,
        };
        let filter = BoardFilter::default();
        let (board, names) = service
            .read_as_of(moment, |registry, checkpoints, issues, position| {
                let viewer = Viewer { now: moment, time_zone: &time_zone, principal: &principal, filter: &filter };
                let board = board_view(registry, checkpoints, issues, position, &viewer);
                let staff: std::collections::HashMap<EntityId, String> =
                    registry.staff.iter().map(|(id, staff)| (id.clone(), staff.display_name.clone())).collect();
                let places: std::collections::HashMap<EntityId, String> =
                    registry.checkpoints.iter().map(|(id, checkpoint)| (id.clone(), checkpoint.name.clone())).collect();
                (board, (staff, places))
            })
            .await?;
        let seals = service.day_seals(day).await?;
        let check = service.verify_day_seals(day, key.as_ref()).await?;
        Ok((entries, step, board, names, seals, check))
    })
    .await
    .map_err(|error| WebError::internal(&error.detail))?;
    let (staff, places) = names;
    let name = |id: &EntityId| staff.get(id).cloned().unwrap_or_else(|| id.to_string());
    let place = |id: &EntityId| places.get(id).cloned().unwrap_or_else(|| id.to_string());
    let events: Vec<EventLine> = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| EventLine {
            index: index + 1,
            time: entry.local_time.strftime("%H:%M").to_string(),
            what: event_words(&entry.event, lang, &name, &place),
            late: entry.late,
            retracted: entry.retracted,
        })
        .collect();
    let integrity = if seals.seals.is_empty() {
        Integrity { state: "unsealed", words: lang.pick("Not sealed yet.", "尚未封存。").to_string() }
    } else if !check.problems.is_empty() {
        Integrity {
            state: "broken",
            words: format!(
                "{} {}",
                lang.pick("A seal does not match the log:", "封存与日志不符："),
                check.problems[0].reason
            ),
        }
    } else if seals.unsealed_events > 0 {
        Integrity {
            state: "late",
            words: format!(
                "{} {} {}",
                lang.pick("Sealed and verified, with", "已封存并核验，另有"),
                seals.unsealed_events,
                lang.pick("later arrivals not sealed yet.", "条后到记录尚未封存。")
            ),
        }
    } else {
        Integrity {
            state: "sealed",
            words: format!(
                "{} ({} {})",
                lang.pick("Sealed and verified", "已封存并核验"),
                seals.seals.len(),
                lang.pick("seals", "次封存")
            ),
        }
    };
    let moment_words = match step {
        0 => lang.pick("The day's start, before any event.", "当天开始，尚无记录。").to_string(),
        k if k == entries.len() && k > 0 => {
            format!("{} ({})", lang.pick("The day's end", "当天结束"), events[k - 1].what)
        }
        k => format!(
            "{} {} / {}: {} — {}",
            lang.pick("After event", "第"),
            k,
            entries.len(),
            events[k - 1].time,
            events[k - 1].what
        ),
    };
    let fragment = headers.contains_key("hx-request");
    let template = if fragment { "replay_moment.html" } else { "replay.html" };
    let page = state.web.render(
        template,
        &person.page,
        minijinja::context! {
            day => day.to_string(),
            previous_day => day.yesterday().map(|d| d.to_string()).unwrap_or_default(),
            next_day => day.tomorrow().map(|d| d.to_string()).unwrap_or_default(),
            step => step,
            steps => entries.len(),
            moment_words => moment_words,
            board => minijinja::value::Serde(&board),
            events => minijinja::value::Serde(&events),
            integrity => minijinja::value::Serde(&integrity),
        },
    )?;
    Ok(page.into_response())
}
