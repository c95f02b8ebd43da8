//! The field forms, made for a phone: record a patrol check at a gate (the checklist as big
//! toggles, weather, a note), raise an issue, and from an issue's page add an action,
//! resolve it, verify it. Each form is a plain HTML form (it works without script); bad
//! input is told next to its field and records nothing; a refusal by the rules is told
//! above the form. A form carries the event id it will record under (made when the form was
//! drawn), so sending it twice records it once.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use domain::Command;
use events_schema::{
    CheckResult, EntityId, EscalationTarget, Event, GateIssueAcknowledged, GateIssueActionTaken, GateIssueEscalated,
    GateIssueRaised, GateIssueReopened, GateIssueResolutionVerified, GateIssueResolved, IssueCategory,
    PatrolCheckRecorded, Severity, Stream, StreamKind, Timestamp, Weather,
};
use serde::{Deserialize, Serialize};
use service::CommandMeta;
use uuid::Uuid;

use super::{Lang, Person, WebError, check_post};
use crate::AppState;
use crate::auth::Permission;
use crate::extract::Body;
use crate::problem::ApiError;

/// The longest note, summary, action or resolution a form takes, in characters.
pub const FORM_TEXT_CHARS_MAX: usize = 2_000;
/// The longest issue summary, in characters (it is a line on the board).
pub const SUMMARY_CHARS_MAX: usize = 200;

/// The items of a patrol check's checklist: the form field, and its words.
const CHECKLIST: [(&str, &str, &str); 6] = [
    ("staff_present", "Staff on duty at the gate", "卡口有人值守"),
    ("protective_gear_worn", "Protective gear worn", "防护用品穿戴到位"),
    ("thermometer_working", "Thermometer working", "测温设备正常"),
    ("health_code_scan_enforced", "Health-code scan enforced", "严格扫码查验"),
    ("passage_logbook_kept", "Passage logbook kept", "出入登记本在记"),
    ("queue_orderly", "Queue orderly", "排队秩序良好"),
];

/// A form field's message, in the page's language.
#[derive(Clone, Debug, Serialize)]
struct FieldError {
    field: &'static str,
    message: &'static str,
}

/// What a form page shows: the values sent (kept on an error), the messages, and a
/// refusal by the rules.
#[derive(Debug, Default, Serialize)]
struct FormState {
    values: std::collections::BTreeMap<String, String>,
    errors: Vec<FieldError>,
    refused: Option<String>,
    /// The answer's status when the command failed for a reason that may pass (a conflict,
    /// a failure of the server): the outbox keeps such a record and tries again.
    #[serde(skip)]
    retry_status: Option<StatusCode>,
    event_id: String,
    done: bool,
}

impl FormState {
    fn fresh() -> FormState {
        FormState { event_id: Uuid::now_v7().to_string(), ..FormState::default() }
    }

    fn error(&mut self, lang: Lang, field: &'static str, en: &'static str, zh: &'static str) {
        self.errors.push(FieldError { field, message: lang.pick(en, zh) });
    }
}

type Fields = Vec<(String, String)>;

fn parse_fields(body: &[u8], lang: Lang) -> Result<Fields, WebError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| WebError::BadRequest(lang.pick("The form could not be read.", "表单无法读取。")))
}

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.trim()).filter(|value| !value.is_empty())
}

/// A required text of at most `max` characters; `None` (and a message) otherwise.
fn text(
    fields: &Fields,
    state: &mut FormState,
    lang: Lang,
    name: &'static str,
    required: (&'static str, &'static str),
    max: usize,
) -> Option<String> {
    match field(fields, name) {
        None => {
            state.error(lang, name, required.0, required.1);
            None
        }
        Some(value) if value.chars().count() > max => {
            state.error(lang, name, "This is too long.", "内容过长。");
            None
        }
        Some(value) => Some(value.to_string()),
    }
}

/// An optional text of at most `max` characters.
fn optional_text(fields: &Fields, state: &mut FormState, lang: Lang, name: &'static str, max: usize) -> Option<String> {
    let value = field(fields, name)?;
    if value.chars().count() > max {
        state.error(lang, name, "This is too long.", "内容过长。");
        return None;
    }
    Some(value.to_string())
}

/// A choice among a serde enum's names (`snake_case`), or `None` when not given.
fn choice<T: serde::de::DeserializeOwned>(fields: &Fields, name: &str) -> Result<Option<T>, ()> {
    match field(fields, name) {
        None => Ok(None),
        Some(value) => serde_json::from_value(serde_json::Value::String(value.to_string())).map(Some).map_err(|_| ()),
    }
}

/// The event id and field time a form was sent with: the id made when the form was drawn
/// (a resend records once), the moment the phone recorded it (offline capture) or now.
fn meta_of(fields: &Fields, person: &Person, state: &mut FormState, lang: Lang) -> CommandMeta {
    let event_id = field(fields, "event_id").and_then(|id| Uuid::parse_str(id).ok());
    if let Some(event_id) = event_id {
        state.event_id = event_id.to_string();
    }
    let occurred_at = field(fields, "occurred_at").and_then(|at| at.parse::<Timestamp>().ok());
    if field(fields, "occurred_at").is_some() && occurred_at.is_none() {
        state.error(lang, "occurred_at", "This time is not valid.", "时间无效。");
    }
    CommandMeta {
        event_id,
        occurred_at,
        actor: person.principal.actor.clone(),
        correlation_id: None,
        expected_version: None,
    }
}

/// What every form post starts with: its fields, the session's secret and origin checked,
/// a role that records, and the form state (what was sent, kept for a redraw) with the
/// post's event id and field time.
fn accept_post(
    person: &Person,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Fields, FormState, CommandMeta), WebError> {
    let lang = person.page.lang;
    let fields = parse_fields(body, lang)?;
    check_post(person, headers, field(&fields, "_csrf"))?;
    require_write(person)?;
    let mut form = FormState::fresh();
    form.values = fields.iter().filter(|(key, _)| key != "_csrf").cloned().collect();
    let meta = meta_of(&fields, person, &mut form, lang);
    Ok((fields, form, meta))
}

/// A choice the form must have (among a serde enum's names); `None`, and `message` next
/// to the field, otherwise.
fn required_choice<T: serde::de::DeserializeOwned>(
    fields: &Fields,
    form: &mut FormState,
    lang: Lang,
    name: &'static str,
    message: (&'static str, &'static str),
) -> Option<T> {
    match choice::<T>(fields, name) {
        Ok(Some(value)) => Some(value),
        _ => {
            form.error(lang, name, message.0, message.1);
            None
        }
    }
}

/// Runs a form's command; a refusal is told on the form (its words: the rules' own).
async fn run(state: &AppState, person: &Person, command: &Command, meta: CommandMeta, form: &mut FormState) -> bool {
    match crate::routes::run_command_telling(state, &person.principal, command, meta).await {
        Ok(_) => true,
        Err((_, Some(rule))) => {
            form.refused = Some(format!(
                "{}{}",
                person.page.lang.pick("The rules refused this: ", "规则不允许："),
                super::i18n::rule_words(person.page.lang, &rule)
            ));
            false
        }
        Err((ApiError { status, detail, .. }, None)) => {
            let lead = match status {
                StatusCode::FORBIDDEN => person.page.lang.pick("Not allowed", "无权操作"),
                StatusCode::CONFLICT => person.page.lang.pick("Changed meanwhile, try again", "期间已有变动，请重试"),
                s if s.is_server_error() => person.page.lang.pick("The server failed, try again", "服务器出错，请重试"),
                _ => person.page.lang.pick("The rules refused this", "规则不允许"),
            };
            form.refused = Some(format!("{lead}: {detail}"));
            if status == StatusCode::CONFLICT || status.is_server_error() {
                form.retry_status = Some(status);
            }
            false
        }
    }
}

/// A form page's status: 200 as drawn, 422 when the input or the rules refused it, or the
/// failure's own status when trying again may work.
fn form_status(form: &FormState) -> StatusCode {
    match form.retry_status {
        Some(status) => status,
        None if form.errors.is_empty() && form.refused.is_none() => StatusCode::OK,
        None => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

#[derive(Serialize)]
struct GateView {
    checkpoint_id: String,
    name: String,
    site: String,
}

async fn gate_view(state: &AppState, person: &Person, checkpoint_id: &EntityId) -> Result<GateView, WebError> {
    let lang = person.page.lang;
    let found = state
        .service
        .read_now(|registry, _, _, _| {
            registry.checkpoints.get(checkpoint_id).map(|checkpoint| {
                let site = registry
                    .sites
                    .get(&checkpoint.site_id)
                    .map_or_else(|| checkpoint.site_id.to_string(), |s| s.name.clone());
                (
                    checkpoint.site_id.clone(),
                    GateView { checkpoint_id: checkpoint_id.to_string(), name: checkpoint.name.clone(), site },
                )
            })
        })
        .await?;
    // Another site's gate and no gate at all look the same to field staff.
    match found {
        Some((site_id, gate)) if person.principal.covers_site(&site_id) => Ok(gate),
        _ => Err(WebError::NotFound(lang.pick("There is no such gate here.", "这里没有该卡口。"))),
    }
}

fn entity(text: &str, lang: Lang) -> Result<EntityId, WebError> {
    EntityId::new(text).map_err(|_| WebError::NotFound(lang.pick("There is no such page.", "没有该页面。")))
}

fn require_write(person: &Person) -> Result<(), WebError> {
    if person.principal.role.allows(Permission::WriteField) {
        Ok(())
    } else {
        Err(WebError::Forbidden(person.page.lang.pick("This role records nothing.", "该角色不能记录。")))
    }
}

#[derive(Debug, Deserialize)]
pub struct DoneParam {
    done: Option<Uuid>,
}

fn render_check(state: &AppState, person: &Person, gate: &GateView, form: &FormState) -> Result<Response, WebError> {
    let checklist: Vec<_> = CHECKLIST
        .iter()
        .map(|(name, en, zh)| serde_json::json!({ "name": name, "label": person.page.lang.pick(en, zh) }))
        .collect();
    let status = form_status(form);
    let page = state.web.render(
        "check.html",
        &person.page,
        minijinja::context! { gate => minijinja::value::Serde(gate), form => minijinja::value::Serde(form), checklist => minijinja::value::Serde(&checklist) },
    )?;
    Ok((status, page).into_response())
}

/// `GET /gates/{id}/check`: the check form of a gate (`?done=ID` after one was recorded).
pub async fn check_form(
    State(state): State<AppState>,
    person: Person,
    Path(checkpoint_id): Path<String>,
    axum::extract::Query(done): axum::extract::Query<DoneParam>,
) -> Result<Response, WebError> {
    require_write(&person)?;
    let checkpoint_id = entity(&checkpoint_id, person.page.lang)?;
    let gate = gate_view(&state, &person, &checkpoint_id).await?;
    let mut form = FormState::fresh();
    form.done = done.done.is_some();
    render_check(&state, &person, &gate, &form)
}

/// `POST /gates/{id}/check`: records the check, then back to an empty form that says so.
pub async fn record_check(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(checkpoint_id): Path<String>,
    Body(body): Body,
) -> Result<Response, WebError> {
    let lang = person.page.lang;
    let (fields, mut form, meta) = accept_post(&person, &headers, &body)?;
    let checkpoint_id = entity(&checkpoint_id, lang)?;
    let gate = gate_view(&state, &person, &checkpoint_id).await?;
    let mut item = |name: &'static str| match field(&fields, name) {
        None => None,
        Some("yes") => Some(true),
        Some("no") => Some(false),
        Some(_) => {
            form.error(lang, name, "Choose yes, no, or leave it unchecked.", "请选择“是”“否”或不填。");
            None
        }
    };
    let (staff_present, protective_gear_worn, thermometer_working) =
        (item("staff_present"), item("protective_gear_worn"), item("thermometer_working"));
    let (health_code_scan_enforced, passage_logbook_kept, queue_orderly) =
        (item("health_code_scan_enforced"), item("passage_logbook_kept"), item("queue_orderly"));
    let result: Option<CheckResult> =
        required_choice(&fields, &mut form, lang, "result", ("Say whether all was in order.", "请选择检查结果。"));
    let weather = choice::<Weather>(&fields, "weather").unwrap_or_else(|()| {
        form.error(lang, "weather", "Choose the weather from the list.", "请从列表中选择天气。");
        None
    });
    let note = optional_text(&fields, &mut form, lang, "note", FORM_TEXT_CHARS_MAX);
    let (Some(result), true) = (result, form.errors.is_empty()) else {
        return render_check(&state, &person, &gate, &form);
    };
    let command = Command::RecordPatrolCheck(PatrolCheckRecorded {
        checkpoint_id,
        staff_id: person.principal.actor.clone(),
        result,
        staff_present,
        protective_gear_worn,
        thermometer_working,
        health_code_scan_enforced,
        passage_logbook_kept,
        queue_orderly,
        weather,
        round_id: None,
        note,
    });
    let event_id = meta.event_id;
    if !run(&state, &person, &command, meta, &mut form).await {
        return render_check(&state, &person, &gate, &form);
    }
    let done = event_id.map_or_else(String::new, |id| id.to_string());
    Ok(Redirect::to(&format!("/gates/{}/check?done={done}", gate.checkpoint_id)).into_response())
}

fn render_raise(state: &AppState, person: &Person, gate: &GateView, form: &FormState) -> Result<Response, WebError> {
    let status = form_status(form);
    let categories: Vec<_> = [
        IssueCategory::CourierCongestion,
        IssueCategory::RefusedHealthCodeScan,
        IssueCategory::UnverifiableTravelHistory,
        IssueCategory::Crowding,
        IssueCategory::DeliveryBlocked,
        IssueCategory::Equipment,
        IssueCategory::Staffing,
        IssueCategory::Weather,
        IssueCategory::Other,
    ]
    .into_iter()
    .map(|category| serde_json::json!({ "value": category, "label": projections::words::category(person.page.lang.into(), category) }))
    .collect();
    let severities: Vec<_> = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical]
        .into_iter()
        .map(|severity| serde_json::json!({ "value": severity, "label": projections::words::severity(person.page.lang.into(), severity) }))
        .collect();
    let page = state.web.render(
        "raise.html",
        &person.page,
        minijinja::context! {
            gate => minijinja::value::Serde(gate), form => minijinja::value::Serde(form),
            categories => minijinja::value::Serde(&categories), severities => minijinja::value::Serde(&severities),
        },
    )?;
    Ok((status, page).into_response())
}

/// `GET /gates/{id}/issue`: the form that raises an issue at a gate.
pub async fn raise_form(
    State(state): State<AppState>,
    person: Person,
    Path(checkpoint_id): Path<String>,
) -> Result<Response, WebError> {
    require_write(&person)?;
    let checkpoint_id = entity(&checkpoint_id, person.page.lang)?;
    let gate = gate_view(&state, &person, &checkpoint_id).await?;
    render_raise(&state, &person, &gate, &FormState::fresh())
}

/// `POST /gates/{id}/issue`: raises it, then to the issue's page.
pub async fn raise(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(checkpoint_id): Path<String>,
    Body(body): Body,
) -> Result<Response, WebError> {
    let lang = person.page.lang;
    let (fields, mut form, meta) = accept_post(&person, &headers, &body)?;
    let checkpoint_id = entity(&checkpoint_id, lang)?;
    let gate = gate_view(&state, &person, &checkpoint_id).await?;
    let category: Option<IssueCategory> =
        required_choice(&fields, &mut form, lang, "category", ("Choose what the issue is about.", "请选择问题类别。"));
    let severity: Option<Severity> =
        required_choice(&fields, &mut form, lang, "severity", ("Choose how bad it is.", "请选择严重程度。"));
    let summary = text(
        &fields,
        &mut form,
        lang,
        "summary",
        ("Say in a line what is wrong.", "请用一句话说明问题。"),
        SUMMARY_CHARS_MAX,
    );
    let details = optional_text(&fields, &mut form, lang, "details", FORM_TEXT_CHARS_MAX);
    let (Some(category), Some(severity), Some(summary), true) = (category, severity, summary, form.errors.is_empty())
    else {
        return render_raise(&state, &person, &gate, &form);
    };
    // The issue's id from the form's event id: a resend names the same issue.
    let event_id = meta.event_id.unwrap_or_else(Uuid::now_v7);
    let issue_id = EntityId::new(format!("issue-{}", event_id.simple())).map_err(|error| WebError::internal(&error))?;
    let command = Command::RaiseIssue(GateIssueRaised {
        issue_id: issue_id.clone(),
        checkpoint_id,
        raised_by: person.principal.actor.clone(),
        category,
        severity,
        summary,
        details,
    });
    let meta = CommandMeta { event_id: Some(event_id), ..meta };
    if !run(&state, &person, &command, meta, &mut form).await {
        return render_raise(&state, &person, &gate, &form);
    }
    Ok(Redirect::to(&format!("/issues/{issue_id}")).into_response())
}

#[derive(Serialize)]
struct StepView {
    at: String,
    by: String,
    what: String,
}

/// `GET /issues/{id}`: an issue and its whole timeline, with the actions this person's role
/// allows.
pub async fn issue_page(
    State(state): State<AppState>,
    person: Person,
    Path(issue_id): Path<String>,
) -> Result<Response, WebError> {
    let form = FormState::fresh();
    render_issue(&state, &person, &issue_id, &form, StatusCode::OK).await
}

/// An issue this person may see, with what its page names (its gate, people by name).
struct VisibleIssue {
    issue: projections::IssueRecord,
    gate: String,
    staff: std::collections::HashMap<String, String>,
}

/// The issue `issue_id` if this person's role reads issues and it lies at one of their sites;
/// another site's issue is answered as one that does not exist.
async fn visible_issue(
    state: &AppState,
    person: &Person,
    issue_id: &str,
) -> Result<(EntityId, VisibleIssue), WebError> {
    let lang = person.page.lang;
    if !person.principal.role.allows(Permission::ReadStatus) {
        return Err(WebError::Forbidden(lang.pick("This role may not see issues.", "该角色无权查看问题。")));
    }
    let issue_id = entity(issue_id, lang)?;
    let not_found = || WebError::NotFound(lang.pick("There is no such issue here.", "这里没有该问题。"));
    let found = state
        .service
        .read_now(|registry, _, issues, _| {
            issues.issue(&issue_id).map(|issue| {
                let site = registry.checkpoints.get(&issue.checkpoint_id).map(|c| c.site_id.clone());
                let gate = registry
                    .checkpoints
                    .get(&issue.checkpoint_id)
                    .map_or_else(|| issue.checkpoint_id.to_string(), |c| c.name.clone());
                let staff: std::collections::HashMap<String, String> =
                    registry.staff.iter().map(|(id, s)| (id.to_string(), s.display_name.clone())).collect();
                (issue, site, gate, staff)
            })
        })
        .await?;
    let Some((issue, site, gate, staff)) = found else { return Err(not_found()) };
    if !site.as_ref().is_some_and(|site| person.principal.covers_site(site)) {
        return Err(not_found());
    }
    Ok((issue_id, VisibleIssue { issue, gate, staff }))
}

async fn render_issue(
    state: &AppState,
    person: &Person,
    issue_id: &str,
    form: &FormState,
    status: StatusCode,
) -> Result<Response, WebError> {
    let lang = person.page.lang;
    let (issue_id, VisibleIssue { issue, gate, staff }) = visible_issue(state, person, issue_id).await?;
    let stream =
        Stream { kind: StreamKind::Issue, entity: Some(&issue_id) }.id().map_err(|error| WebError::internal(&error))?;
    let mut events = state.service.stream_events(&stream, 1, store::READ_PAGE_EVENTS_MAX).await?;
    // Its corrections and retractions live in the shared `corrections` stream.
    let mut amendments = Vec::new();
    for event in &events {
        amendments.extend(state.service.amendments_of(event.event_id).await?);
    }
    events.extend(amendments);
    events.sort_by_key(|event| event.global_position);
    events.dedup_by_key(|event| event.global_position);
    let time_zone = state.service.time_zone().clone();
    let name = |id: &EntityId| staff.get(id.as_str()).cloned().unwrap_or_else(|| id.to_string());
    let timeline: Vec<StepView> = events
        .iter()
        .map(|event| {
            let at =
                event.occurred_at.as_jiff().to_zoned_datetime(time_zone.clone()).strftime("%Y-%m-%d %H:%M").to_string();
            let (by, what) = step_words(&event.event, lang, &name);
            StepView { at, by, what }
        })
        .collect();
    let now = Timestamp::now();
    let role = person.principal.role;
    let page = state.web.render(
        "issue.html",
        &person.page,
        minijinja::context! {
            issue => minijinja::value::Serde(&issue),
            gate => gate,
            open => issue.is_open(),
            age_minutes => issue.age_micros(now).max(0) / 60_000_000,
            timeline => minijinja::value::Serde(&timeline),
            form => minijinja::value::Serde(form),
            may_act => role.allows(Permission::WriteField),
            may_verify => role.allows(Permission::WriteOperational),
            targets => minijinja::value::Serde(&[
                EscalationTarget::Subdistrict,
                EscalationTarget::UrbanManagement,
                EscalationTarget::Police,
                EscalationTarget::PropertyManagement,
                EscalationTarget::Other,
            ]
            .map(|target| serde_json::json!({ "value": target, "label": projections::words::target(lang.into(), target) }))),
        },
    )?;
    Ok((status, page).into_response())
}

/// Who did a step of an issue, and what, in words.
pub(crate) fn step_words(event: &Event, lang: Lang, name: &dyn Fn(&EntityId) -> String) -> (String, String) {
    let l = lang.into();
    match event {
        Event::GateIssueRaised(e) => (
            name(&e.raised_by),
            format!(
                "{} ({}, {}): {}",
                lang.pick("Raised", "上报"),
                projections::words::category(l, e.category),
                projections::words::severity(l, e.severity),
                e.summary
            ),
        ),
        Event::GateIssueAcknowledged(e) => (name(&e.acknowledged_by), lang.pick("Acknowledged", "已确认").to_string()),
        Event::GateIssueAssigned(e) => {
            (name(&e.assigned_by), format!("{} {}", lang.pick("Assigned to", "指派给"), name(&e.assignee_id)))
        }
        Event::GateIssueActionTaken(e) => (name(&e.taken_by), format!("{}: {}", lang.pick("Action", "处置"), e.action)),
        Event::GateIssueEscalated(e) => (
            name(&e.escalated_by),
            format!("{} {}", lang.pick("Escalated to", "提级至"), projections::words::target(l, e.escalated_to)),
        ),
        Event::GateIssueResolved(e) => {
            (name(&e.resolved_by), format!("{}: {}", lang.pick("Resolved", "已解决"), e.resolution))
        }
        Event::GateIssueResolutionVerified(e) => {
            (name(&e.verified_by), lang.pick("Resolution verified", "回头看核实").to_string())
        }
        Event::GateIssueReopened(e) => {
            (name(&e.reopened_by), format!("{}: {}", lang.pick("Reopened", "重新打开"), e.reason))
        }
        Event::EventCorrected(e) => {
            let (_, what) = step_words(&e.replacement, lang, name);
            (name(&e.corrected_by), format!("{} ({}): {}", lang.pick("Corrected", "更正"), e.reason, what))
        }
        Event::EventRetracted(e) => {
            (name(&e.retracted_by), format!("{}: {}", lang.pick("Retracted", "撤回"), e.reason))
        }
        other => (String::new(), other.event_type().to_string()),
    }
}

/// `POST /issues/{id}/{step}`: `action` (what was done), `resolve` (how), `verify`.
pub async fn issue_step(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path((issue_id, step)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Response, WebError> {
    let lang = person.page.lang;
    let (fields, mut form, meta) = accept_post(&person, &headers, &body)?;
    let id = entity(&issue_id, lang)?;
    let actor = person.principal.actor.clone();
    let command = match step.as_str() {
        "action" => text(
            &fields,
            &mut form,
            lang,
            "action",
            ("Say what was done.", "请说明采取了什么措施。"),
            FORM_TEXT_CHARS_MAX,
        )
        .map(|action| Command::ActOnIssue(GateIssueActionTaken { issue_id: id.clone(), taken_by: actor, action })),
        "resolve" => text(
            &fields,
            &mut form,
            lang,
            "resolution",
            ("Say how it was resolved.", "请说明如何解决。"),
            FORM_TEXT_CHARS_MAX,
        )
        .map(|resolution| {
            Command::ResolveIssue(GateIssueResolved { issue_id: id.clone(), resolved_by: actor, resolution })
        }),
        "acknowledge" => {
            Some(Command::AcknowledgeIssue(GateIssueAcknowledged { issue_id: id.clone(), acknowledged_by: actor }))
        }
        "escalate" => {
            let target = ("Choose who it goes to.", "请选择提级对象。");
            required_choice::<EscalationTarget>(&fields, &mut form, lang, "escalated_to", target).map(|escalated_to| {
                let note = optional_text(&fields, &mut form, lang, "note", FORM_TEXT_CHARS_MAX);
                Command::EscalateIssue(GateIssueEscalated {
                    issue_id: id.clone(),
                    escalated_by: actor,
                    escalated_to,
                    note,
                })
            })
        }
        "reopen" => text(
            &fields,
            &mut form,
            lang,
            "reason",
            ("Say why it is reopened.", "请说明重新打开的原因。"),
            FORM_TEXT_CHARS_MAX,
        )
        .map(|reason| Command::ReopenIssue(GateIssueReopened { issue_id: id.clone(), reopened_by: actor, reason })),
        "verify" => {
            let note = optional_text(&fields, &mut form, lang, "note", FORM_TEXT_CHARS_MAX);
            Some(Command::VerifyResolution(GateIssueResolutionVerified {
                issue_id: id.clone(),
                verified_by: actor,
                note,
                check_event_id: None,
            }))
        }
        _ => return Err(WebError::NotFound(lang.pick("There is no such page.", "没有该页面。"))),
    };
    // The issue must be one this person may see before anything is recorded.
    visible_issue(&state, &person, &issue_id).await?;
    let (Some(command), true) = (command, form.errors.is_empty()) else {
        return render_issue(&state, &person, &issue_id, &form, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    if !run(&state, &person, &command, meta, &mut form).await {
        return render_issue(&state, &person, &issue_id, &form, form_status(&form)).await;
    }
    Ok(Redirect::to(&format!("/issues/{issue_id}")).into_response())
}

#[derive(Serialize)]
struct IssueRow {
    issue_id: String,
    summary: String,
    gate: String,
    site: String,
    category: IssueCategory,
    severity: Severity,
    state: projections::IssueState,
    open: bool,
    raised: String,
    age_minutes: i64,
}

/// How far back resolved issues are listed.
pub const RECENT_ISSUES_DAYS: i64 = 14;

/// `GET /issues`: open issues (worst and oldest first), then those resolved in the last
/// `RECENT_ISSUES_DAYS` days, of the sites this person may see.
pub async fn issues_page(State(state): State<AppState>, person: Person) -> Result<Response, WebError> {
    let lang = person.page.lang;
    if !person.principal.role.allows(Permission::ReadStatus) {
        return Err(WebError::Forbidden(lang.pick("This role may not see issues.", "该角色无权查看问题。")));
    }
    let now = Timestamp::now();
    let time_zone = state.service.time_zone().clone();
    let principal = person.principal.clone();
    let recent_since = now.as_microsecond() - RECENT_ISSUES_DAYS * 24 * 3_600_000_000;
    let mut rows = state
        .service
        .read_now(|registry, _, issues, _| {
            issues
                .issues()
                .filter_map(|issue| {
                    let checkpoint = registry.checkpoints.get(&issue.checkpoint_id)?;
                    if !principal.covers_site(&checkpoint.site_id) {
                        return None;
                    }
                    let open = issue.is_open();
                    let recent = issue.resolved_at.is_some_and(|at| at.as_microsecond() >= recent_since);
                    (open || recent).then(|| IssueRow {
                        issue_id: issue.issue_id.to_string(),
                        summary: issue.summary.clone(),
                        gate: checkpoint.name.clone(),
                        site: registry
                            .sites
                            .get(&checkpoint.site_id)
                            .map_or_else(|| checkpoint.site_id.to_string(), |s| s.name.clone()),
                        category: issue.category,
                        severity: issue.severity,
                        state: issue.state,
                        open,
                        raised: issue
                            .raised_at
                            .as_jiff()
                            .to_zoned_datetime(time_zone.clone())
                            .strftime("%Y-%m-%d %H:%M")
                            .to_string(),
                        age_minutes: issue.age_micros(now).max(0) / 60_000_000,
                    })
                })
                .collect::<Vec<_>>()
        })
        .await?;
    rows.sort_by(|a, b| {
        (!a.open, std::cmp::Reverse(a.severity), std::cmp::Reverse(a.age_minutes)).cmp(&(
            !b.open,
            std::cmp::Reverse(b.severity),
            std::cmp::Reverse(b.age_minutes),
        ))
    });
    let page = state.web.render(
        "issues.html",
        &person.page,
        minijinja::context! { rows => minijinja::value::Serde(&rows), recent_days => RECENT_ISSUES_DAYS },
    )?;
    Ok(page.into_response())
}

/// This server's address for links printed on paper: the configured public address, else
/// the one the browser reached.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers.get(axum::http::header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("localhost");
    let scheme = if super::over_tls(headers) { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// `text` as a QR code (error correction M: a poster gets scuffed).
fn qr_code(text: &str) -> Result<qrcode::QrCode, WebError> {
    qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|error| WebError::internal(&error))
}

/// `text` as a QR code, an inline SVG image named `name`.
fn qr_svg(text: &str, name: &str) -> Result<String, WebError> {
    let code = qr_code(text)?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(320, 320)
        .dark_color(qrcode::render::svg::Color("#000"))
        .light_color(qrcode::render::svg::Color("#fff"))
        .build();
    let svg = svg.trim_start_matches(r#"<?xml version="1.0" standalone="yes"?>"#);
    let name = minijinja::HtmlEscape(name).to_string();
    Ok(svg.replacen("<svg ", &format!("<svg class=\"qr\" role=\"img\" aria-label=\"{name}\" "), 1))
}

/// `GET /gates/{id}/poster`: a printable poster for the gate, with a QR code that opens its
/// check form on a phone.
pub async fn poster(
    State(state): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Path(checkpoint_id): Path<String>,
) -> Result<Response, WebError> {
    let checkpoint_id = entity(&checkpoint_id, person.page.lang)?;
    let gate = gate_view(&state, &person, &checkpoint_id).await?;
    let url = format!("{}/gates/{}/check", base_url(&state, &headers), gate.checkpoint_id);
    let qr = qr_svg(&url, person.page.lang.pick("QR code of this gate's check form", "本卡口巡查表单的二维码"))?;
    let page = state.web.render(
        "poster.html",
        &person.page,
        minijinja::context! { gate => minijinja::value::Serde(&gate), url => url, qr => minijinja::Value::from_safe_string(qr) },
    )?;
    Ok(page.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posters_qr_code_reads_back_as_the_gates_check_form() {
        let url = "https://gridwatch.example/gates/longwu-main/check";
        let code = qr_code(url).unwrap();
        // Read back by a QR decoder from the code's own modules (4-module quiet zone).
        let width = code.width();
        let colors = code.to_colors();
        let scale = 4;
        let side = (width + 8) * scale;
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| {
            let (mx, my) = ((x / scale).wrapping_sub(4), (y / scale).wrapping_sub(4));
            if mx < width && my < width && colors[my * width + mx] == qrcode::Color::Dark { 0 } else { 255 }
        });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().unwrap();
        assert_eq!(content, url);
        let svg = qr_svg(url, "QR").unwrap();
        assert!(svg.starts_with("<svg class=\"qr\" role=\"img\" aria-label=\"QR\""), "{svg:.80}");
        assert!(!svg.contains("style="));
    }
}
