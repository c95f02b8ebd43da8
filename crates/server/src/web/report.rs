//! The after-action report page: pick a day or a range and a site; the report exactly as
//! the server renders it (`GET /api/v1/report?format=html`), charts drawn on the server as
//! SVG, a print stylesheet for A4, and "copy as text" (the text report, ready to paste into
//! a chat group).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use events_schema::{EntityId, Event, Timestamp};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use service::Times;

use super::charts::{self, Series};
use super::{Lang, Person, WebError};
use crate::AppState;
use crate::auth::Permission;

/// A schedule: its interval in minutes and its active hours.
type ActiveHours = (u32, jiff::civil::Time, jiff::civil::Time);

#[derive(Debug, Default, Deserialize)]
pub struct ReportParams {
    day: Option<String>,
    to: Option<String>,
    site: Option<String>,
}

#[derive(Serialize)]
struct SiteChoice {
    site_id: String,
    name: String,
}

#[derive(Serialize)]
struct Chart {
    svg: String,
    caption: String,
}

#[derive(Serialize)]
struct IssueKey {
    number: usize,
    summary: String,
}

fn date(text: Option<&str>, lang: Lang) -> Result<Option<Date>, WebError> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| WebError::BadRequest(lang.pick("A day is written YYYY-MM-DD.", "日期格式应为 YYYY-MM-DD。"))),
    }
}

/// Minutes of local hour `hour` inside the active window `from..until` (which may run past
/// midnight).
fn active_minutes(hour: i8, from: jiff::civil::Time, until: jiff::civil::Time) -> i64 {
    let minute_of = |time: jiff::civil::Time| i64::from(time.hour()) * 60 + i64::from(time.minute());
    let (start, end) = (minute_of(from), minute_of(until));
    let (hour_start, hour_end) = (i64::from(hour) * 60, i64::from(hour) * 60 + 60);
    let overlap = |a: i64, b: i64| (hour_end.min(b) - hour_start.max(a)).max(0);
    if start < end { overlap(start, end) } else { overlap(start, 24 * 60) + overlap(0, end) }
}

/// `GET /report?day=D[&to=D2][&site=S]`.
pub async fn page(
    State(state): State<AppState>,
    person: Person,
    axum::extract::Query(params): axum::extract::Query<ReportParams>,
) -> Result<Response, WebError> {
    let lang = person.page.lang;
    if !person.principal.role.allows(Permission::ReadAudit) {
        return Err(WebError::Forbidden(lang.pick("This role may not read reports.", "该角色无权查看报告。")));
    }
    let time_zone = state.service.time_zone().clone();
    let today = projections::local_day(Timestamp::now(), &time_zone);
    let from = date(params.day.as_deref(), lang)?.unwrap_or(today);
    let to = date(params.to.as_deref(), lang)?.unwrap_or(from);
    if to < from {
        return Err(WebError::BadRequest(lang.pick("The range ends before it begins.", "结束日期早于开始日期。")));
    }
    let days = from.until(to).map_or(i32::MAX, |span| span.get_days()).saturating_add(1);
    if days > state.config.report_days_max {
        return Err(WebError::BadRequest(lang.pick("A report covers at most a year.", "报告最多覆盖一年。")));
    }
    let site = match params.site.as_deref().map(str::trim).filter(|site| !site.is_empty()) {
        None => None,
        Some(site) => Some(
            EntityId::new(site)
                .map_err(|_| WebError::BadRequest(lang.pick("That site is not valid.", "站点无效。")))?,
        ),
    };
    let site_for = site.clone();
    let summary = crate::routes::heavy(&state, move |service| async move {
        service.summary(from, to, site_for.as_ref(), Times::NOW).await
    })
    .await
    .map_err(|error| WebError::internal(&error.detail))?;
    let html = projections::render(&summary, projections::Format::Html, lang.into())
        .map_err(|error| WebError::internal(&error))?;
    let text = projections::render(&summary, projections::Format::Text, lang.into())
        .map_err(|error| WebError::internal(&error))?;
    // The report's own body, exactly as rendered (its head and inline style are the
    // standalone document's; the page has its own).
    let body = html
        .split_once("<body>")
        .and_then(|(_, rest)| rest.rsplit_once("</body>"))
        .map_or_else(String::new, |(body, _)| body.to_string());

    // What the charts need beyond the summary: each checkpoint's site and schedule, and the
    // issues' gates.
    let (places, sites) = state
        .service
        .read_now(|registry, checkpoints, issues, _| {
            let places: HashMap<EntityId, (EntityId, Option<ActiveHours>)> = registry
                .checkpoints
                .iter()
                .map(|(id, checkpoint)| (id.clone(), (checkpoint.site_id.clone(), checkpoints.rules_of(id).1)))
                .collect();
            let issue_gates: HashMap<EntityId, EntityId> =
                issues.issues().map(|issue| (issue.issue_id.clone(), issue.checkpoint_id.clone())).collect();
            let sites: Vec<SiteChoice> = registry
                .sites
                .iter()
                .map(|(id, site)| SiteChoice { site_id: id.to_string(), name: site.name.clone() })
                .collect();
            ((places, issue_gates), sites)
        })
        .await?;
    let (places, issue_gates) = places;
    // Checks per local hour and issues opened and closed, from the period's events (a day's
    // timeline at a time: the cost of the period), as a heavy read like the summary's.
    let single = from == to;
    let (places, issue_gates_for, counted_site) = (Arc::new(places), Arc::new(issue_gates), site.clone());
    let places_for = places.clone();
    let (checks_by_hour, opened, closed) = crate::routes::heavy(&state, move |service| async move {
        let in_site = |checkpoint: &EntityId| {
            counted_site.as_ref().is_none_or(|site| {
                places_for.get(checkpoint).is_some_and(|(checkpoint_site, _)| checkpoint_site == site)
            })
        };
        let mut checks_by_hour = [0f64; 24];
        let mut opened: BTreeMap<String, f64> = BTreeMap::new();
        let mut closed: BTreeMap<String, f64> = BTreeMap::new();
        let mut day = from;
        loop {
            let entries = service.timeline(day, None, Times::NOW).await?.unwrap_or_default();
            for entry in entries.iter().filter(|entry| !entry.retracted) {
                let bucket =
                    if single { format!("{:02}", entry.local_time.hour()) } else { day.strftime("%m-%d").to_string() };
                match &entry.event {
                    Event::PatrolCheckRecorded(check) if in_site(&check.checkpoint_id) => {
                        checks_by_hour[entry.local_time.hour() as usize] += 1.0;
                    }
                    Event::GateIssueRaised(raised) if in_site(&raised.checkpoint_id) => {
                        *opened.entry(bucket).or_default() += 1.0
                    }
                    Event::GateIssueResolved(resolved)
                        if issue_gates_for.get(&resolved.issue_id).is_some_and(&in_site) =>
                    {
                        *closed.entry(bucket).or_default() += 1.0;
                    }
                    _ => {}
                }
            }
            match day.tomorrow() {
                Ok(next) if day < to => day = next,
                _ => break,
            }
        }
        Ok((checks_by_hour, opened, closed))
    })
    .await
    .map_err(|error| WebError::internal(&error.detail))?;
    let mut asked = [0f64; 24];
    for (site_id, schedule) in places.values() {
        if site.as_ref().is_some_and(|site| site != site_id) {
            continue;
        }
        if let Some((interval, active_from, active_until)) = schedule {
            for (hour, asked) in asked.iter_mut().enumerate() {
                let minutes = active_minutes(hour as i8, *active_from, *active_until);
                *asked += minutes as f64 / f64::from((*interval).max(1)) * f64::from(days);
            }
        }
    }
    let hours: Vec<String> = (0..24).map(|hour| format!("{hour:02}")).collect();
    let checks_chart = Chart {
        svg: charts::bars(
            lang.pick("Checks per hour against the schedule", "每小时巡查次数与排班要求"),
            &hours,
            &[Series { name: lang.pick("checks recorded", "实际巡查"), values: checks_by_hour.to_vec(), colour: charts::DARK }],
            Some(&Series { name: lang.pick("asked for by the schedules", "排班要求"), values: asked.to_vec(), colour: charts::RED }),
            lang.pick("checks", "次"),
        ),
        caption: lang
            .pick(
                "Checks recorded in each local hour of the period, and the checks the gates' schedules (as set now) ask for in that hour.",
                "期间每个整点时段记录的巡查次数，以及各卡口（按现行排班）在该时段应有的巡查次数。",
            )
            .to_string(),
    };
    let buckets: Vec<String> = if single {
        hours.clone()
    } else {
        opened.keys().chain(closed.keys()).cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect()
    };
    let issues_chart = Chart {
        svg: charts::bars(
            lang.pick("Issues opened and closed", "问题新增与办结"),
            &buckets,
            &[
                Series {
                    name: lang.pick("opened", "新增"),
                    values: buckets.iter().map(|b| opened.get(b).copied().unwrap_or(0.0)).collect(),
                    colour: charts::RED,
                },
                Series {
                    name: lang.pick("closed", "办结"),
                    values: buckets.iter().map(|b| closed.get(b).copied().unwrap_or(0.0)).collect(),
                    colour: charts::GREEN,
                },
            ],
            None,
            lang.pick("issues", "件"),
        ),
        caption: if single {
            lang.pick(
                "Issues raised and resolved in each local hour of the day.",
                "当天每个整点时段新增和解决的问题数。",
            )
        } else {
            lang.pick("Issues raised and resolved on each day of the period.", "期间每天新增和解决的问题数。")
        }
        .to_string(),
    };
    let keyed: Vec<IssueKey> = summary
        .issues
        .iter()
        .enumerate()
        .map(|(k, issue)| IssueKey { number: k + 1, summary: issue.summary.clone() })
        .collect();
    let numbers: Vec<String> = keyed.iter().map(|key| format!("#{}", key.number)).collect();
    let minutes = |value: Option<i64>| value.map_or(0.0, |minutes| minutes as f64);
    let times_chart = Chart {
        svg: charts::bars(
            lang.pick("Time to first action and to resolution", "首次处置与解决用时"),
            &numbers,
            &[
                Series {
                    name: lang.pick("to first action", "至首次处置"),
                    values: summary.issues.iter().map(|issue| minutes(issue.minutes_to_first_action)).collect(),
                    colour: charts::BLUE,
                },
                Series {
                    name: lang.pick("to resolution", "至解决"),
                    values: summary.issues.iter().map(|issue| minutes(issue.minutes_to_resolution)).collect(),
                    colour: charts::GREEN,
                },
            ],
            None,
            lang.pick("minutes", "分钟"),
        ),
        caption: lang
            .pick(
                "Minutes from raising each issue to its first action and to its resolution (none: not yet).",
                "每个问题从上报到首次处置、到解决所用的分钟数（无柱：尚未发生）。",
            )
            .to_string(),
    };
    let page = state.web.render(
        "report.html",
        &person.page,
        minijinja::context! {
            from => from.to_string(),
            to => to.to_string(),
            range => !single,
            site => site.as_ref().map(ToString::to_string).unwrap_or_default(),
            sites => minijinja::value::Serde(&sites),
            body => minijinja::Value::from_safe_string(body),
            text => text,
            charts => minijinja::value::Serde(&[checks_chart, issues_chart, times_chart]),
            issue_keys => minijinja::value::Serde(&keyed),
        },
    )?;
    Ok(page.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::time;

    #[test]
    fn an_active_window_is_split_into_hours_across_midnight() {
        assert_eq!(active_minutes(8, time(8, 0, 0, 0), time(20, 0, 0, 0)), 60);
        assert_eq!(active_minutes(7, time(8, 0, 0, 0), time(20, 0, 0, 0)), 0);
        assert_eq!(active_minutes(20, time(8, 0, 0, 0), time(20, 0, 0, 0)), 0);
        assert_eq!(active_minutes(8, time(8, 30, 0, 0), time(20, 0, 0, 0)), 30);
        assert_eq!(active_minutes(23, time(22, 0, 0, 0), time(6, 0, 0, 0)), 60);
        assert_eq!(active_minutes(3, time(22, 0, 0, 0), time(6, 0, 0, 0)), 60);
        assert_eq!(active_minutes(12, time(22, 0, 0, 0), time(6, 0, 0, 0)), 0);
    }
}
