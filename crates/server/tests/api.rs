//! The HTTP API in process: every role boundary, bad input that changes nothing, safe
//! retries and conditional writes, the raw log, the live feed, metrics and OpenAPI.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use futures::StreamExt;
use serde_json::{Value, json};
use server::{AppState, Role, ServerConfig, TokenFile};
use service::Service;
use store::DynStore;
use store::memory::MemoryStore;
use tower::ServiceExt;

struct Api {
    router: Router,
    state: AppState,
    admin: String,
    supervisor: String,
    auditor: String,
    /// Field staff at site-a.
    field_a: String,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn api_with(config: ServerConfig) -> Api {
    api_with_tokens(config, |dir| Arc::new(TokenFile::new(dir))).await
}

/// With the tokens `tokens` makes for the data directory it is given.
async fn api_with_tokens(config: ServerConfig, tokens: impl FnOnce(&std::path::Path) -> Arc<TokenFile>) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = DynStore::new("memory", MemoryStore::new());
    let service = Arc::new(Service::open(store, jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()).await.unwrap());
    let tokens = tokens(dir.path());
    let make = |role, sites: &[&str], actor: &str| {
        let sites = sites.iter().map(|site| events_schema::EntityId::new(*site).unwrap()).collect();
        tokens.create(role, sites, Some(events_schema::EntityId::new(actor).unwrap())).unwrap().token
    };
    let admin = make(Role::Admin, &[], "admin-1");
    let supervisor = make(Role::Supervisor, &[], "cadre-1");
    let auditor = make(Role::Auditor, &[], "auditor-1");
    let field_a = make(Role::Field, &["site-a"], "guard-1");
    let state = AppState::new(service, tokens.clone(), config);
    let api = Api { router: server::router(state.clone()), state, admin, supervisor, auditor, field_a, _dir: dir };
    for (command, data) in [
        ("register-community", json!({"community_id": "minxin", "name": "Minxin"})),
        ("register-grid", json!({"grid_id": "grid-1", "community_id": "minxin", "name": "Grid 1"})),
        (
            "register-site",
            json!({"site_id": "site-a", "grid_id": "grid-1", "name": "A", "kind": "residential_compound"}),
        ),
        (
            "register-site",
            json!({"site_id": "site-b", "grid_id": "grid-1", "name": "B", "kind": "residential_compound"}),
        ),
        ("register-checkpoint", json!({"checkpoint_id": "gate-a", "site_id": "site-a", "name": "A main gate"})),
        ("register-checkpoint", json!({"checkpoint_id": "gate-b", "site_id": "site-b", "name": "B main gate"})),
        ("register-staff", json!({"staff_id": "guard-1", "display_name": "Guard Wu", "role": "guard"})),
        ("register-staff", json!({"staff_id": "guard-2", "display_name": "Guard Lin", "role": "guard"})),
        ("register-staff", json!({"staff_id": "cadre-1", "display_name": "Cadre Zhou", "role": "deployed_cadre"})),
    ] {
        let answer = api.command(&api.admin.clone(), command, data).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{command}: {}", answer.text);
    }
    api
}

async fn api() -> Api {
    api_with(ServerConfig::default()).await
}

fn raise(issue: &str, checkpoint: &str) -> Value {
    json!({"issue_id": issue, "checkpoint_id": checkpoint, "raised_by": "guard-1",
           "category": "courier_congestion", "severity": "high", "summary": "tricycles crowd the gate"})
}

fn check(checkpoint: &str) -> Value {
    json!({"checkpoint_id": checkpoint, "staff_id": "guard-1", "result": "ok"})
}

impl Api {
    async fn send(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Vec<u8>>) -> Answer {
        self.send_with(method, uri, token, body, &[]).await
    }

    async fn send_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request =
            request.header("content-type", "application/json").body(Body::from(body.unwrap_or_default())).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            assert_eq!(headers["content-type"], "application/problem+json", "{status}: {text}");
            assert_eq!(body["status"], status.as_u16(), "{text}");
            assert!(body["detail"].as_str().is_some_and(|detail| !detail.is_empty()), "{text}");
        }
        Answer { status, headers, body, text }
    }

    async fn get(&self, uri: &str, token: &str) -> Answer {
        self.send(Method::GET, uri, Some(token), None).await
    }

    async fn command(&self, token: &str, command: &str, data: Value) -> Answer {
        self.command_body(token, json!({"command": command, "data": data})).await
    }

    async fn command_body(&self, token: &str, body: Value) -> Answer {
        self.send(Method::POST, "/api/v1/commands", Some(token), Some(body.to_string().into_bytes())).await
    }

    async fn head(&self) -> u64 {
        self.state.service.head_position().await.unwrap()
    }
}

/// Every API route with a request that would succeed for an allowed role.
fn routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/status", None),
        (Method::GET, "/api/v1/issues", None),
        (Method::GET, "/api/v1/issues/i-1", None),
        (Method::GET, "/api/v1/timeline?day=2020-02-20", None),
        (Method::GET, "/api/v1/replay?day=2020-02-20", None),
        (Method::GET, "/api/v1/report?day=2020-02-20", None),
        (Method::GET, "/api/v1/events", None),
        (Method::GET, "/api/v1/events/live", None),
        (Method::GET, "/api/v1/verify", None),
        (Method::POST, "/api/v1/commands", Some(json!({"command": "record-patrol-check", "data": check("gate-a")}))),
        (
            Method::POST,
            "/api/v1/streams/notes/events",
            Some(json!([{"event_type": "FieldNoteRecorded", "data": {"author": "a", "text": "t"}}])),
        ),
        (Method::POST, "/api/v1/tokens", Some(json!({"role": "auditor"}))),
        (Method::GET, "/api/v1/tokens", None),
    ]
}

/// A cluster node that cannot prove its shared tokens are current answers every request that
/// needs a token 503 `tokens-unavailable` (with `Retry-After`, not saying the token is wrong),
/// a wrong token too; a request without one is still 401; `/readyz` says it is not ready.
/// Proven current again, it answers as before.
#[tokio::test]
async fn a_node_that_cannot_prove_its_shared_tokens_current_accepts_none_and_is_not_ready() {
    let shared = Arc::new(common::SharedTokensOfOneNode::default());
    let of_node = shared.clone();
    let api = api_with_tokens(ServerConfig::default(), move |dir| of_node.node(dir)).await;
    assert_eq!(api.get("/api/v1/status", &api.auditor).await.status, StatusCode::OK);
    shared.proven(server::auth::SHARED_TOKENS_UNCONFIRMED_MAX + std::time::Duration::from_secs(1));
    for token in [api.auditor.clone(), api.admin.clone(), format!("{}0", &api.admin[..api.admin.len() - 1])] {
        for (method, uri, body) in routes() {
            let answer =
                api.send(method.clone(), uri, Some(&token), body.map(|body| body.to_string().into_bytes())).await;
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}: {}", answer.text);
            assert_eq!(answer.body["type"], "/problems/tokens-unavailable");
            assert!(answer.headers.contains_key("retry-after") && !answer.headers.contains_key("www-authenticate"));
        }
    }
    assert_eq!(api.send(Method::GET, "/api/v1/status", None, None).await.status, StatusCode::UNAUTHORIZED);
    let ready = api.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (ready.status, ready.body["type"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("/problems/tokens-unavailable"))
    );
    shared.proven(std::time::Duration::from_secs(1));
    assert_eq!(api.get("/api/v1/status", &api.auditor).await.status, StatusCode::OK);
    assert_eq!(api.send(Method::GET, "/readyz", None, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let api = api().await;
    for (method, uri, body) in routes() {
        let body = body.map(|body| body.to_string().into_bytes());
        let answer = api.send(method.clone(), uri, None, body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(answer.headers["www-authenticate"], "Bearer");
        let wrong = format!("{}0", &api.admin[..api.admin.len() - 1]);
        let wrong = if wrong == api.admin { format!("{}1", &api.admin[..api.admin.len() - 1]) } else { wrong };
        let answer = api.send(method.clone(), uri, Some(&wrong), body).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri} with a wrong secret");
    }
}

#[tokio::test]
async fn each_role_reaches_exactly_its_routes() {
    let api = api().await;
    assert_eq!(api.command(&api.admin, "raise-issue", raise("i-1", "gate-a")).await.status, StatusCode::CREATED);
    let allowed = |role: &str, uri: &str| match role {
        "admin" => true,
        "supervisor" => !uri.starts_with("/api/v1/streams") && !uri.starts_with("/api/v1/tokens"),
        "auditor" => {
            !uri.starts_with("/api/v1/streams") && !uri.starts_with("/api/v1/tokens") && !uri.contains("commands")
        }
        "field" => uri.starts_with("/api/v1/status") || uri.starts_with("/api/v1/issues") || uri.contains("commands"),
        _ => unreachable!(),
    };
    for (role, token) in
        [("admin", &api.admin), ("supervisor", &api.supervisor), ("auditor", &api.auditor), ("field", &api.field_a)]
    {
        for (method, uri, body) in routes() {
            let body = body.map(|body| body.to_string().into_bytes());
            let answer = if uri.ends_with("/live") {
                // The live feed never ends: only its head is looked at.
                let request = Request::builder()
                    .uri(uri)
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap();
                let response = api.router.clone().oneshot(request).await.unwrap();
                Answer { status: response.status(), headers: HeaderMap::new(), body: Value::Null, text: String::new() }
            } else {
                api.send(method.clone(), uri, Some(token), body).await
            };
            if allowed(role, uri) {
                assert!(answer.status.is_success(), "{role} {method} {uri}: {} {}", answer.status, answer.text);
            } else {
                assert_eq!(answer.status, StatusCode::FORBIDDEN, "{role} {method} {uri}: {}", answer.text);
            }
        }
    }
}

#[tokio::test]
async fn commands_need_their_role_and_field_staff_their_sites() {
    let api = api().await;
    let head = api.head().await;
    // Places and people are the admin's; operational steps the supervisor's.
    let site = json!({"site_id": "site-c", "grid_id": "grid-1", "name": "C", "kind": "enterprise"});
    for token in [&api.supervisor, &api.auditor, &api.field_a] {
        assert_eq!(api.command(token, "register-site", site.clone()).await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(api.command(&api.auditor, "record-patrol-check", check("gate-a")).await.status, StatusCode::FORBIDDEN);
    // Field staff at site-a: not at site-b, neither checks nor issues; and another site's
    // gate is answered word for word as an unknown gate is.
    let elsewhere = api.command(&api.field_a, "record-patrol-check", check("gate-b")).await;
    let unknown = api.command(&api.field_a, "record-patrol-check", check("gate-nowhere")).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND, "{}", elsewhere.text);
    assert_eq!(elsewhere.text, unknown.text);
    assert_eq!(api.command(&api.field_a, "raise-issue", raise("i-b", "gate-b")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.head().await, head, "refused commands wrote nothing");
    assert_eq!(api.command(&api.field_a, "record-patrol-check", check("gate-a")).await.status, StatusCode::CREATED);
    assert_eq!(api.command(&api.field_a, "raise-issue", raise("i-a", "gate-a")).await.status, StatusCode::CREATED);
    assert_eq!(api.command(&api.supervisor, "raise-issue", raise("i-b", "gate-b")).await.status, StatusCode::CREATED);
    let act = |issue: &str| json!({"issue_id": issue, "taken_by": "guard-1", "action": "cordon tape"});
    assert_eq!(api.command(&api.field_a, "act-on-issue", act("i-a")).await.status, StatusCode::CREATED);
    let elsewhere = api.command(&api.field_a, "act-on-issue", act("i-b")).await;
    let unknown = api.command(&api.field_a, "act-on-issue", act("i-nowhere")).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND, "{}", elsewhere.text);
    assert_eq!(elsewhere.text, unknown.text);
    let escalate = json!({"issue_id": "i-a", "escalated_by": "guard-1", "escalated_to": "subdistrict"});
    assert_eq!(api.command(&api.field_a, "escalate-issue", escalate.clone()).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.command(&api.supervisor, "escalate-issue", escalate).await.status, StatusCode::CREATED);
    // What field staff read is their sites' only.
    let issues = api.get("/api/v1/issues", &api.field_a).await;
    let ids: Vec<&str> = issues.body.as_array().unwrap().iter().map(|i| i["issue_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["i-a"]);
    let elsewhere = api.get("/api/v1/issues/i-b", &api.field_a).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(elsewhere.text, api.get("/api/v1/issues/i-b", &api.field_a).await.text);
    assert_eq!(
        elsewhere.text.replace("i-b", "i-x"),
        api.get("/api/v1/issues/i-x", &api.field_a).await.text,
        "another site's issue reads as an unknown one"
    );
    assert_eq!(api.get("/api/v1/status?site=site-b", &api.field_a).await.status, StatusCode::FORBIDDEN);
    let status = api.get("/api/v1/status", &api.field_a).await;
    let gates: Vec<&str> =
        status.body["checkpoints"].as_array().unwrap().iter().map(|c| c["checkpoint_id"].as_str().unwrap()).collect();
    assert_eq!(gates, ["gate-a"]);
    assert!(status.body["grids"].as_array().unwrap().is_empty());
    let everything = api.get("/api/v1/status", &api.supervisor).await;
    assert_eq!(everything.body["checkpoints"].as_array().unwrap().len(), 2);
    // The token's actor is the events' actor.
    let events = api.get("/api/v1/events", &api.auditor).await;
    let last = events.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "cadre-1");
}

/// A correction writes what the corrected event said: a supervisor may correct a patrol
/// check, not a gate's registration (places and people are the admin's), and a retraction
/// likewise.
#[tokio::test]
async fn amending_an_event_needs_the_permission_of_its_kind() {
    let api = api().await;
    assert_eq!(api.command(&api.supervisor, "record-patrol-check", check("gate-a")).await.status, StatusCode::CREATED);
    let events = api.get("/api/v1/events?limit=1000", &api.auditor).await.body;
    let id_of = |event_type: &str| {
        let about_gate_a = |e: &&Value| e["event_type"] == event_type && e["data"]["checkpoint_id"] == "gate-a";
        events.as_array().unwrap().iter().find(about_gate_a).unwrap()["event_id"].clone()
    };
    let (gate, patrol) = (id_of("CheckpointRegistered"), id_of("PatrolCheckRecorded"));
    let moved: events_schema::Event = events_schema::CheckpointRegistered {
        checkpoint_id: events_schema::EntityId::new("gate-a").unwrap(),
        site_id: events_schema::EntityId::new("site-b").unwrap(),
        name: "A main gate".into(),
    }
    .into();
    let correction = |target: &Value, replacement: Value| json!({"corrected_event_id": target, "corrected_by": "cadre-1", "reason": "typed wrong", "replacement": replacement});
    let head = api.head().await;
    let refused =
        api.command(&api.supervisor, "correct-event", correction(&gate, serde_json::to_value(&moved).unwrap()));
    let refused = refused.await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let retraction = json!({"retracted_event_id": gate, "retracted_by": "cadre-1", "reason": "not a gate"});
    assert_eq!(api.command(&api.supervisor, "retract-event", retraction).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.head().await, head, "refused amendments wrote nothing");
    // The admin may; and the supervisor may correct what a supervisor may write.
    let done = api.command(&api.admin, "correct-event", correction(&gate, serde_json::to_value(&moved).unwrap())).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.text);
    let checked: Value = serde_json::to_value(events_schema::Event::from(events_schema::PatrolCheckRecorded {
        result: events_schema::CheckResult::IssueFound,
        ..serde_json::from_value(check("gate-a")).unwrap()
    }))
    .unwrap();
    let done = api.command(&api.supervisor, "correct-event", correction(&patrol, checked)).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.text);
}

#[tokio::test]
async fn bad_input_gets_a_problem_and_changes_nothing() {
    let api = api_with(ServerConfig { command_body_bytes_max: 4096, ..ServerConfig::default() }).await;
    assert_eq!(api.command(&api.admin, "raise-issue", raise("i-1", "gate-a")).await.status, StatusCode::CREATED);
    let schedule = "01706a4b-2c00-7000-8000-00000000c5ed";
    let set_schedule = json!({"command": "set-schedule", "event_id": schedule, "data": {"checkpoint_id": "gate-a", "check_interval_minutes": 60, "active_from": "07:00", "active_until": "22:00"}});
    assert_eq!(api.command_body(&api.admin, set_schedule).await.status, StatusCode::CREATED);
    let before = api.get("/api/v1/events", &api.auditor).await.text;
    let head = api.head().await;
    let post =
        |body: &str| api.send(Method::POST, "/api/v1/commands", Some(&api.admin), Some(body.as_bytes().to_vec()));
    let cases: Vec<(&str, Answer, StatusCode)> = vec![
        ("malformed JSON", post(r#"{"command": "raise-issue", "data": {"#).await, StatusCode::BAD_REQUEST),
        ("not JSON at all", post("raise the issue please").await, StatusCode::BAD_REQUEST),
        ("wrong type", post(r#"{"command": "record-patrol-check", "data": {"checkpoint_id": 7, "staff_id": "guard-1", "result": "ok"}}"#).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("wrong type of a meta field", post(r#"{"command": "record-patrol-check", "data": {}, "expected_version": "three"}"#).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("unknown field", post(&json!({"command": "record-patrol-check", "data": check("gate-a"), "colour": "red"}).to_string()).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("unknown data field", post(&json!({"command": "record-patrol-check", "data": {"checkpoint_id": "gate-a", "staff_id": "guard-1", "result": "ok", "colour": "red"}}).to_string()).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("unknown command", post(&json!({"command": "launch-rocket", "data": {}}).to_string()).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("bad enum value", post(&json!({"command": "record-patrol-check", "data": {"checkpoint_id": "gate-a", "staff_id": "guard-1", "result": "meh"}}).to_string()).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("bad id", post(&json!({"command": "record-patrol-check", "data": check("gate a/../x")}).to_string()).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("oversized body", post(&json!({"command": "record-field-note", "data": {"author": "guard-1", "text": "x".repeat(5000)}}).to_string()).await, StatusCode::PAYLOAD_TOO_LARGE),
        ("timestamp out of range", post(&json!({"command": "record-patrol-check", "data": check("gate-a"), "occurred_at": "99999-01-01T00:00:00Z"}).to_string()).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("timestamp not a time", post(&json!({"command": "record-patrol-check", "data": check("gate-a"), "occurred_at": "2020-02-30T25:00:00Z"}).to_string()).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("timestamp in the future", post(&json!({"command": "record-patrol-check", "data": check("gate-a"), "occurred_at": "2099-01-01T00:00:00Z"}).to_string()).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("unknown checkpoint", api.command(&api.admin, "record-patrol-check", check("gate-z")).await, StatusCode::NOT_FOUND),
        ("unknown issue", api.command(&api.admin, "act-on-issue", json!({"issue_id": "i-9", "taken_by": "guard-1", "action": "x"})).await, StatusCode::NOT_FOUND),
        ("invalid transition", api.command(&api.admin, "verify-resolution", json!({"issue_id": "i-1", "verified_by": "cadre-1"})).await, StatusCode::CONFLICT),
        // The same class as the CLI's exit 2: a lifecycle step is never retracted.
        ("retraction of a lifecycle step", api.command(&api.admin, "retract-event", json!({"retracted_event_id": schedule, "retracted_by": "cadre-1", "reason": "oops"})).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("empty text", api.command(&api.admin, "act-on-issue", json!({"issue_id": "i-1", "taken_by": "guard-1", "action": "  "})).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("duplicate raise", api.command(&api.admin, "raise-issue", raise("i-1", "gate-a")).await, StatusCode::CONFLICT),
        ("a token in the body", api.command(&api.admin, "record-field-note", json!({"author": "guard-1", "text": format!("my token {}", api.admin)})).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("stale expected version", api.command_body(&api.admin, json!({"command": "record-patrol-check", "data": check("gate-a"), "expected_version": 5})).await, StatusCode::CONFLICT),
        ("bad If-Match", api.send_with(Method::POST, "/api/v1/commands", Some(&api.admin), Some(json!({"command": "record-patrol-check", "data": check("gate-a")}).to_string().into_bytes()), &[("if-match", "soon")]).await, StatusCode::BAD_REQUEST),
        ("bad query", api.get("/api/v1/status?as_of=yesterday", &api.admin).await, StatusCode::BAD_REQUEST),
        ("unknown query field", api.get("/api/v1/issues?colour=red", &api.admin).await, StatusCode::BAD_REQUEST),
        ("unknown issue (read)", api.get("/api/v1/issues/i-9", &api.admin).await, StatusCode::NOT_FOUND),
        ("unknown entity (timeline)", api.get("/api/v1/timeline?day=2020-02-20&entity=nobody", &api.admin).await, StatusCode::NOT_FOUND),
        ("report format", api.get("/api/v1/report?day=2020-02-20&format=pdf", &api.admin).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("report lang", api.get("/api/v1/report?day=2020-02-20&lang=fr", &api.admin).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("events limit", api.get("/api/v1/events?limit=0", &api.admin).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("unknown route", api.get("/api/v2/status", &api.admin).await, StatusCode::NOT_FOUND),
        ("wrong method", api.send(Method::DELETE, "/api/v1/status", Some(&api.admin), None).await, StatusCode::METHOD_NOT_ALLOWED),
        ("raw append, bad line", api.send(Method::POST, "/api/v1/streams/notes/events", Some(&api.admin), Some(br#"[{"event_type": "FieldNoteRecorded", "data": {"author": "a"}}]"#.to_vec())).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("raw append, unknown type", api.send(Method::POST, "/api/v1/streams/notes/events", Some(&api.admin), Some(b"{\"event_type\": \"Nope\", \"data\": {}}\n".to_vec())).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("raw append, malformed", api.send(Method::POST, "/api/v1/streams/notes/events", Some(&api.admin), Some(b"[{".to_vec())).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("raw append, bad stream", api.send(Method::POST, "/api/v1/streams/no%20spaces/events", Some(&api.admin), Some(b"[]".to_vec())).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("raw append, empty", api.send(Method::POST, "/api/v1/streams/notes/events", Some(&api.admin), Some(b"[]".to_vec())).await, StatusCode::UNPROCESSABLE_ENTITY),
        ("raw append, bad expected version", api.send(Method::POST, "/api/v1/streams/notes/events?expected_version=soon", Some(&api.admin), Some(br#"[{"event_type": "FieldNoteRecorded", "data": {"author": "a", "text": "t"}}]"#.to_vec())).await, StatusCode::BAD_REQUEST),
        ("raw append, conflict", api.send(Method::POST, "/api/v1/streams/issue:i-1/events?expected_version=none", Some(&api.admin), Some(br#"[{"event_type": "FieldNoteRecorded", "data": {"author": "a", "text": "t"}}]"#.to_vec())).await, StatusCode::CONFLICT),
        ("token request, bad role", api.send(Method::POST, "/api/v1/tokens", Some(&api.admin), Some(br#"{"role": "king"}"#.to_vec())).await, StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (name, answer, expected) in cases {
        assert_eq!(answer.status, expected, "{name}: {}", answer.text);
    }
    assert_eq!(api.head().await, head, "nothing was written");
    assert_eq!(api.get("/api/v1/events", &api.auditor).await.text, before, "the log is unchanged");
}

#[tokio::test]
async fn retries_are_safe_and_expected_versions_are_checked() {
    let api = api().await;
    let event_id = uuid::Uuid::now_v7();
    let body = json!({"command": "raise-issue", "data": raise("i-1", "gate-a"), "event_id": event_id});
    let first = api.command_body(&api.supervisor, body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let head = api.head().await;
    let again = api.command_body(&api.supervisor, body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["deduplicated"], true);
    assert_eq!(again.body["events"], first.body["events"], "the same answer");
    assert_eq!(api.head().await, head, "nothing new written");
    // The same id on a different command is a conflict.
    let other = json!({"command": "raise-issue", "data": raise("i-2", "gate-a"), "event_id": event_id});
    assert_eq!(api.command_body(&api.supervisor, other).await.status, StatusCode::CONFLICT);
    // If-Match: the ETag of the last answer is the stream's version.
    assert_eq!(first.headers["etag"], "\"1\"");
    let ack = json!({"command": "acknowledge-issue", "data": {"issue_id": "i-1", "acknowledged_by": "cadre-1"}})
        .to_string()
        .into_bytes();
    let stale = api
        .send_with(Method::POST, "/api/v1/commands", Some(&api.supervisor), Some(ack.clone()), &[("if-match", "\"0\"")])
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.body["type"], "/problems/wrong-expected-version");
    let current = api
        .send_with(Method::POST, "/api/v1/commands", Some(&api.supervisor), Some(ack), &[("if-match", "\"1\"")])
        .await;
    assert_eq!(current.status, StatusCode::CREATED, "{}", current.text);
    assert_eq!(current.headers["etag"], "\"2\"");
    assert_eq!(api.head().await, head + 1);
    let metrics = api.send(Method::GET, "/metrics", None, None).await.text;
    assert!(metrics.contains("gridwatch_append_conflicts_total 2"), "{metrics}");
    assert!(metrics.contains("gridwatch_appended_events_total{outcome=\"deduplicated\"} 1"), "{metrics}");
}

#[tokio::test]
async fn the_raw_log_round_trips() {
    let api = api().await;
    let head = api.head().await;
    let lines = json!([
        {"event_type": "FieldNoteRecorded", "data": {"author": "guard-1", "text": "rain at the gate"}},
        {"event_type": "FieldNoteRecorded", "data": {"author": "guard-1", "text": "raincoats handed out"}, "actor": "guard-1"},
    ]);
    let uri = "/api/v1/streams/notes:guard-1/events?expected_version=none";
    let answer = api.send(Method::POST, uri, Some(&api.admin), Some(lines.to_string().into_bytes())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let positions: Vec<u64> =
        answer.body["events"].as_array().unwrap().iter().map(|e| e["global_position"].as_u64().unwrap()).collect();
    assert_eq!(positions, [head + 1, head + 2]);
    // NDJSON too, with the next expected version; then the events come back as envelopes.
    let ndjson =
        "{\"event_type\": \"FieldNoteRecorded\", \"data\": {\"author\": \"guard-1\", \"text\": \"dry again\"}}\n";
    let uri = "/api/v1/streams/notes:guard-1/events?expected_version=2";
    let answer = api.send(Method::POST, uri, Some(&api.admin), Some(ndjson.as_bytes().to_vec())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let events = api.get(&format!("/api/v1/events?from={}&limit=10", head + 1), &api.auditor).await;
    let events = events.body.as_array().unwrap().clone();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1]["actor"], "guard-1");
    assert_eq!(events[0]["actor"], "admin-1", "lines without an actor are by the token's actor");
    assert_eq!(events[2]["data"]["text"], "dry again");
    for field in ["global_position", "stream_id", "stream_version", "event_id", "recorded_at", "hash"] {
        assert!(!events[0][field].is_null(), "{field}");
    }
    // An exported line appends again as a retry: same id, original positions.
    let again = api
        .send(
            Method::POST,
            "/api/v1/streams/notes:guard-1/events",
            Some(&api.admin),
            Some(json!([events[0]]).to_string().into_bytes()),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["events"][0]["global_position"], head + 1);
    let ndjson = api
        .send_with(
            Method::GET,
            "/api/v1/events?from=1&limit=2",
            Some(&api.auditor),
            None,
            &[("accept", "application/x-ndjson")],
        )
        .await;
    assert_eq!(ndjson.headers["content-type"], "application/x-ndjson");
    assert_eq!(ndjson.text.lines().count(), 2);
}

/// Reads SSE frames (`id` and `data`) from a live-feed response until `count` events came.
async fn read_live(body: Body, count: usize) -> Vec<(u64, Value)> {
    let mut stream = body.into_data_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("the feed goes on");
        buffer.push_str(std::str::from_utf8(&chunk.unwrap().unwrap()).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let id = frame.lines().find_map(|line| line.strip_prefix("id: ")).map(|id| id.parse().unwrap());
            let data =
                frame.lines().find_map(|line| line.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap());
            if let (Some(id), Some(data)) = (id, data) {
                events.push((id, data));
            }
        }
    }
    events
}

async fn open_live(api: &Api, uri: &str, last_event_id: Option<u64>) -> Body {
    open_live_as(api, &api.auditor, uri, last_event_id).await
}

/// The live feed at `uri`, opened with `token`.
async fn open_live_as(api: &Api, token: &str, uri: &str, last_event_id: Option<u64>) -> Body {
    let mut request = Request::builder().uri(uri).header("authorization", format!("Bearer {token}"));
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last.to_string());
    }
    let response = api.router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    response.into_body()
}

#[tokio::test]
async fn the_live_feed_catches_up_goes_live_and_resumes_without_gaps() {
    let api = api().await;
    let head = api.head().await;
    let body = open_live(&api, "/api/v1/events/live?from=1", None).await;
    let reader = tokio::spawn(read_live(body, head as usize + 3));
    for _ in 0..3 {
        assert_eq!(api.command(&api.field_a, "record-patrol-check", check("gate-a")).await.status, StatusCode::CREATED);
    }
    let seen = reader.await.unwrap();
    let positions: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(positions, (1..=head + 3).collect::<Vec<_>>(), "every event once, in order");
    assert!(seen.iter().all(|(id, data)| data["global_position"] == *id));
    assert_eq!(seen.last().unwrap().1["event_type"], "PatrolCheckRecorded");
    // Resuming after position 4 starts at 5, whatever `from` says.
    let body = open_live(&api, "/api/v1/events/live?from=1", Some(4)).await;
    let resumed = read_live(body, 2).await;
    assert_eq!(resumed.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [5, 6]);
    // Without a position, only what comes next.
    // The feed's starting point is fixed before its response head comes back.
    let body = open_live(&api, "/api/v1/events/live", None).await;
    let reader = tokio::spawn(read_live(body, 1));
    api.command(&api.field_a, "record-patrol-check", check("gate-a")).await;
    assert_eq!(reader.await.unwrap()[0].0, head + 4);
    let metrics = api.send(Method::GET, "/metrics", None, None).await.text;
    assert!(metrics.contains("gridwatch_live_subscribers"), "{metrics}");
}

#[tokio::test]
async fn a_slow_live_client_is_cut_off_without_slowing_writers() {
    let config = ServerConfig {
        live_send_timeout: Duration::from_millis(200),
        live_buffer_events: 16,
        connection_stall_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let api = api_with(config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, api.state.clone(), async move {
        let _ = stopped.await;
    }));
    // A client that asks for the feed and then never reads.
    let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
    let request =
        format!("GET /api/v1/events/live?from=1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n", api.auditor);
    tokio::io::AsyncWriteExt::write_all(&mut client, request.as_bytes()).await.unwrap();
    // Enough events (about 20 MB of JSON) to fill every buffer between the log and the client.
    let stream = events_schema::EntityId::new("notes:bulk").unwrap();
    for batch in 0..40 {
        let events = (0..1_000)
            .map(|index| {
                let note = events_schema::FieldNoteRecorded {
                    author: events_schema::EntityId::new("guard-1").unwrap(),
                    text: "x".repeat(400),
                    site_id: None,
                    weather: None,
                };
                events_schema::samples::new_event(1_000_000 + batch * 1_000 + index, note.into())
            })
            .collect();
        let appended = api.state.service.append_raw(&stream, store::ExpectedVersion::Any, events).await.unwrap();
        assert!(appended.is_ok(), "writers are never held up by the client");
    }
    let mut dropped = false;
    for _ in 0..100 {
        let metrics = api.send(Method::GET, "/metrics", None, None).await.text;
        if metrics.contains("gridwatch_live_subscribers_dropped_total 1") {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "the slow client was cut off");
    // The client still never reads nor closes: the stalled connection is closed by the
    // kernel, so shutdown does not wait for it forever.
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), server).await.expect("shutdown finishes").unwrap().unwrap();
    drop(client);
}

#[tokio::test]
async fn tokens_made_over_http_work_and_are_shown_once() {
    let api = api().await;
    let answer = api
        .send(
            Method::POST,
            "/api/v1/tokens",
            Some(&api.admin),
            Some(br#"{"role": "field", "sites": ["site-b"], "actor": "guard-2"}"#.to_vec()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.headers["cache-control"], "no-store");
    let token = answer.body["token"].as_str().unwrap().to_owned();
    let check_by_guard_2 = |gate: &str| json!({"checkpoint_id": gate, "staff_id": "guard-2", "result": "ok"});
    assert_eq!(
        api.command(&token, "record-patrol-check", check_by_guard_2("gate-b")).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        api.command(&token, "record-patrol-check", check_by_guard_2("gate-a")).await.status,
        StatusCode::NOT_FOUND
    );
    let answer =
        api.send(Method::POST, "/api/v1/tokens", Some(&api.admin), Some(br#"{"role": "field"}"#.to_vec())).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "a field token names its person: {}", answer.text);
    let stored = std::fs::read_to_string(api._dir.path().join(server::auth::TOKEN_FILE_NAME)).unwrap();
    assert!(!stored.contains(&token) && !stored.contains(&api.admin), "only hashes are stored");
    let log = api.get("/api/v1/events?limit=10000", &api.auditor).await.text;
    assert!(!log.contains("gw_"), "no token ever reaches the log");
    // Listing shows who holds what, never a secret or a hash; revoking takes effect at once.
    let listed = api.get("/api/v1/tokens", &api.admin).await;
    assert!(!listed.text.contains("gw_") && !listed.text.contains("hash"), "{}", listed.text);
    let entry = listed.body.as_array().unwrap().iter().find(|t| t["actor"] == "guard-2").unwrap().clone();
    assert_eq!(entry["role"], "field");
    assert_eq!(entry["sites"], json!(["site-b"]));
    let uri = format!("/api/v1/tokens/{}", entry["token_id"].as_str().unwrap());
    assert_eq!(api.send(Method::DELETE, &uri, Some(&api.supervisor), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.send(Method::DELETE, &uri, Some(&api.admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get("/api/v1/status", &token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.send(Method::DELETE, &uri, Some(&api.admin), None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn queries_answer_with_views() {
    let api = api().await;
    api.command(&api.field_a, "raise-issue", raise("i-1", "gate-a")).await;
    let today =
        projections::local_day(events_schema::Timestamp::now(), &jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    let timeline = api.get(&format!("/api/v1/timeline?day={today}&entity=i-1"), &api.auditor).await;
    assert_eq!(timeline.status, StatusCode::OK, "{}", timeline.text);
    assert_eq!(timeline.body.as_array().unwrap().len(), 1);
    assert_eq!(timeline.body[0]["event_type"], "GateIssueRaised");
    let replay = api.get(&format!("/api/v1/replay?day={today}"), &api.auditor).await;
    assert_eq!(replay.body["steps"].as_array().unwrap().len() as u64, api.head().await, "{}", replay.text);
    let report = api.get(&format!("/api/v1/report?day={today}&format=html&lang=en"), &api.auditor).await;
    assert!(report.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(report.text.contains("courier"), "{}", report.text);
    let report = api.get(&format!("/api/v1/report?day={today}&format=json"), &api.auditor).await;
    assert!(report.body.is_object());
    let report = api.get(&format!("/api/v1/report?day={today}&format=text&lang=zh"), &api.auditor).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.headers["content-type"], "text/plain; charset=utf-8");
    assert!(report.text.starts_with(&format!("工作总结 {today}\n")), "{}", report.text);
    assert!(report.text.contains("新增问题 1 个：快递车辆拥堵 1\n"), "{}", report.text);
    let open = api.get("/api/v1/issues?open=true&category=courier_congestion&site=site-a", &api.supervisor).await;
    assert_eq!(open.body.as_array().unwrap().len(), 1);
    let none = api.get("/api/v1/issues?state=resolved", &api.supervisor).await;
    assert!(none.body.as_array().unwrap().is_empty());
    let status = api.get("/api/v1/status?site=site-a", &api.supervisor).await;
    assert_eq!(status.body["checkpoints"][0]["open_issues"], 1);
    // The board is shared between requests, but never across a new event.
    assert!(api.get("/api/v1/status", &api.supervisor).await.body["checkpoints"][0]["last_check"].is_null());
    api.command(&api.field_a, "record-patrol-check", check("gate-a")).await;
    let after = api.get("/api/v1/status", &api.supervisor).await;
    assert_eq!(after.body["checkpoints"][0]["last_check"]["staff_id"], "guard-1", "{}", after.text);
    let before = api.get("/api/v1/status?as_of=2020-01-01T00:00:00Z", &api.supervisor).await;
    assert!(before.body["checkpoints"].as_array().unwrap().is_empty(), "nothing was registered then");
    // known_at: the log as it stood (here: before anything was recorded, and now).
    let unknown = api.get("/api/v1/status?known_at=2020-01-01T00:00:00Z", &api.auditor).await;
    assert_eq!(unknown.status, StatusCode::OK, "{}", unknown.text);
    assert!(unknown.body["checkpoints"].as_array().unwrap().is_empty(), "nothing was recorded then");
    let now = events_schema::Timestamp::now().to_string().replace('+', "%2B");
    let known = api.get(&format!("/api/v1/status?known_at={now}"), &api.auditor).await;
    assert_eq!(known.status, StatusCode::OK, "{}", known.text);
    assert_eq!(known.body["checkpoints"][0]["last_check"]["staff_id"], "guard-1", "{}", known.text);
    assert_eq!(
        api.get("/api/v1/status?known_at=2020-01-01T00:00:00Z", &api.field_a).await.status,
        StatusCode::FORBIDDEN
    );
    // The timeline, the replay and the report take the two times too.
    let today =
        projections::local_day(events_schema::Timestamp::now(), &jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    let timeline = api.get(&format!("/api/v1/timeline?day={today}&known_at={now}"), &api.auditor).await;
    assert_eq!(timeline.status, StatusCode::OK, "{}", timeline.text);
    assert!(!timeline.body.as_array().unwrap().is_empty(), "{}", timeline.text);
    let unknown = api.get(&format!("/api/v1/timeline?day={today}&known_at=2020-01-01T00:00:00Z"), &api.auditor).await;
    assert_eq!(unknown.body.as_array().map(Vec::len), Some(0), "{}", unknown.text);
    let replay = api.get(&format!("/api/v1/replay?day={today}&as_of=2020-01-01T00:00:00Z"), &api.auditor).await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.text);
    assert_eq!(replay.body["steps"].as_array().map(Vec::len), Some(0), "{}", replay.text);
    let report = api.get(&format!("/api/v1/report?day={today}&format=json&known_at={now}"), &api.auditor).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
}

#[tokio::test]
async fn health_metrics_and_the_openapi_document() {
    let api = api().await;
    assert_eq!(api.send(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    let ready = api.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.body["head_position"], api.head().await);
    let metrics = api.send(Method::GET, "/metrics", None, None).await.text;
    for name in [
        "gridwatch_http_requests_total{method=\"POST\",route=\"/api/v1/commands\",status=\"201\"} 9",
        "gridwatch_http_request_duration_seconds_bucket",
        "gridwatch_appended_events_total{outcome=\"written\"} 9",
        "gridwatch_append_conflicts_total 0",
        "gridwatch_live_subscriber_lag_events 0",
        "gridwatch_log_head_position 9",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }
    let document = api.send(Method::GET, "/api/openapi.json", None, None).await.body;
    for (method, uri, _) in routes() {
        let path = uri.split('?').next().unwrap().replace("i-1", "{issue_id}").replace("notes", "{stream_id}");
        let operation = &document["paths"][&path][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is documented");
        assert!(!operation["security"].is_null(), "{method} {path} says it needs a token");
    }
    let schemas = &document["components"]["schemas"];
    assert!(
        schemas["Command"]["oneOf"].as_array().is_some_and(|variants| variants.len() == 32),
        "{}",
        schemas["Command"]
    );
    assert!(schemas["GateIssueRaised"].is_object());
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap();
        let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{target}"));
        assert!(schemas[name].is_object(), "{target} resolves");
    }
    // Shutting down makes the server unready.
    api.state.shutdown.cancel();
    assert_eq!(api.send(Method::GET, "/readyz", None, None).await.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_request_over_its_time_is_answered_503() {
    let api = api_with(ServerConfig { request_timeout: Duration::from_millis(200), ..ServerConfig::default() }).await;
    // Every heavy-read permit is taken, so the report waits past its time.
    let _all = api.state.heavy_reads.clone().acquire_many_owned(1).await.unwrap();
    let answer = api.get("/api/v1/report?day=2020-02-20", &api.auditor).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text);
    assert_eq!(answer.body["type"], "/problems/timeout");
    // Meanwhile the light routes answer.
    assert_eq!(api.get("/api/v1/status", &api.auditor).await.status, StatusCode::OK);
}

#[tokio::test]
async fn field_staff_record_their_own_recent_work_only() {
    let api = api().await;
    let head = api.head().await;
    let as_guard_2 = json!({"checkpoint_id": "gate-a", "staff_id": "guard-2", "result": "ok"});
    let answer = api.command(&api.field_a, "record-patrol-check", as_guard_2.clone()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    let note = json!({"author": "guard-2", "text": "not mine"});
    assert_eq!(api.command(&api.field_a, "record-field-note", note).await.status, StatusCode::FORBIDDEN);
    let old =
        json!({"command": "record-patrol-check", "data": check("gate-a"), "occurred_at": "2020-02-20T08:00:00+08:00"});
    assert_eq!(api.command_body(&api.field_a, old.clone()).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.command(&api.field_a, "record-patrol-check", check("gate-z")).await.status, StatusCode::NOT_FOUND);
    let elsewhere = json!({"household_ref": "hh-1", "site_id": "site-b", "delivered_by": ["guard-1"],
        "masks_worn": true, "temperature_taken": true, "instructions_given": true, "signed": true});
    assert_eq!(api.command(&api.field_a, "deliver-quarantine-notice", elsewhere).await.status, StatusCode::NOT_FOUND);
    let inspection = json!({"inspection_id": "in-1", "site_id": "site-b", "inspector_id": "guard-1",
        "kind": "routine", "result": "passed"});
    assert_eq!(api.command(&api.field_a, "record-inspection", inspection).await.status, StatusCode::NOT_FOUND);
    let now = events_schema::Timestamp::now().as_microsecond();
    let months_ago = events_schema::Timestamp::from_microsecond(now - 90 * 86_400_000_000);
    let tally = json!({"checkpoint_id": "gate-a", "recorded_by": "guard-1", "period_start": months_ago,
        "period_end": events_schema::Timestamp::from_microsecond(now - 89 * 86_400_000_000),
        "people_screened": 10, "vehicles": 1, "fever_flags": 0, "refused_scans": 0, "temporary_passes_issued": 0});
    let answer = api.command(&api.field_a, "record-tally", tally).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "a tally of long ago");
    assert!(answer.body["detail"].as_str().unwrap().contains("after they happened"), "{}", answer.text);
    assert_eq!(api.get("/api/v1/status?as_of=2020-02-20T00:00:00Z", &api.field_a).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.head().await, head, "nothing was written");
    // A supervisor records for others and late paper records.
    assert_eq!(api.command(&api.supervisor, "record-patrol-check", as_guard_2).await.status, StatusCode::CREATED);
    let event_id = uuid::Uuid::now_v7();
    let mut late = old.clone();
    late["event_id"] = json!(event_id);
    assert_eq!(api.command_body(&api.supervisor, late.clone()).await.status, StatusCode::CREATED);
    // A phone's late retry of what is already recorded gets the original answer.
    let retry = api.command_body(&api.field_a, late).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(retry.body["deduplicated"], true);
}

#[tokio::test]
async fn tokens_hidden_in_escapes_and_bad_paths_and_long_reports_are_refused() {
    let api = api().await;
    let head = api.head().await;
    let escaped = format!(
        r#"{{"command": "record-field-note", "data": {{"author": "guard-1", "text": "{}"}}}}"#,
        api.auditor.replacen('_', "\\u005f", 1)
    );
    let answer = api.send(Method::POST, "/api/v1/commands", Some(&api.admin), Some(escaped.into_bytes())).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.text);
    let line = format!(
        r#"[{{"event_type": "FieldNoteRecorded", "data": {{"author": "guard-1", "text": "{}"}}}}]"#,
        api.auditor.replacen('_', "\\u005f", 1)
    );
    let answer =
        api.send(Method::POST, "/api/v1/streams/notes/events", Some(&api.admin), Some(line.into_bytes())).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.text);
    // A sign-in link pasted into a note, and a token without its prefix: secrets too.
    for secret in [format!("https://gw.example/signin/link/{}", "0f".repeat(32)), api.auditor.replacen("gw_", "", 1)] {
        let note = json!({"author": "guard-1", "text": format!("use {secret}")});
        let answer = api.command(&api.admin, "record-field-note", note).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.text);
    }
    assert_eq!(api.head().await, head);
    assert_eq!(api.get("/api/v1/issues/%FF", &api.admin).await.status, StatusCode::BAD_REQUEST);
    let answer = api.send(Method::POST, "/api/v1/streams/%FF/events", Some(&api.admin), Some(b"[]".to_vec())).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = api.get("/api/v1/report?day=0001-01-01&to=9999-12-31", &api.auditor).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.text);
    assert_eq!(api.get("/api/v1/report?day=2020-01-01&to=2020-12-31", &api.auditor).await.status, StatusCode::OK);
}

#[test]
fn the_documented_issue_states_are_every_state() {
    use projections::IssueState::{self, *};
    // A new state fails to compile here until it is added to the list (and the document).
    let listed = |state: IssueState| match state {
        Raised | Acknowledged | Assigned | InProgress | Escalated | Resolved | Verified => state,
    };
    let document = server::openapi_document();
    let parameters = document["paths"]["/api/v1/issues"]["get"]["parameters"].as_array().unwrap();
    let state = parameters.iter().find(|parameter| parameter["name"] == "state").unwrap();
    let pattern = state["schema"]["pattern"].as_str().unwrap();
    for state in [Raised, Acknowledged, Assigned, InProgress, Escalated, Resolved, Verified] {
        let name = serde_json::to_value(listed(state)).unwrap();
        assert!(pattern.contains(name.as_str().unwrap()), "{name} in {pattern}");
    }
    for (name, schema) in [("category", "IssueCategory"), ("severity", "Severity")] {
        let parameter = parameters.iter().find(|parameter| parameter["name"] == name).unwrap();
        assert_eq!(parameter["schema"]["$ref"], format!("#/components/schemas/{schema}"));
        assert!(
            document["components"]["schemas"][schema]["enum"].is_array()
                || document["components"]["schemas"][schema]["oneOf"].is_array()
        );
    }
    assert!(parameters.iter().all(|parameter| parameter["in"] == "query"), "filters are query parameters");
}

#[tokio::test]
async fn a_revoked_token_loses_its_live_feed() {
    let api = api().await;
    let made = api.state.tokens.create(Role::Auditor, vec![], None).unwrap();
    let mut stream = open_live_as(&api, &made.token, "/api/v1/events/live?from=1", None).await.into_data_stream();
    assert!(stream.next().await.is_some(), "the feed is open");
    assert!(api.state.tokens.revoke(&made.record.token_id).unwrap());
    // The feed checks its token again at least every second while it sends.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            api.command(&api.field_a, "record-patrol-check", check("gate-a")).await;
            match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
                Ok(None) => return,
                _ => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the feed ended after the revocation");

    // On a quiet log too: the feed ends within seconds, with no event sent after.
    let made = api.state.tokens.create(Role::Auditor, vec![], None).unwrap();
    let mut stream = open_live_as(&api, &made.token, "/api/v1/events/live", None).await.into_data_stream();
    assert!(api.state.tokens.revoke(&made.record.token_id).unwrap());
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        let mut sent = Vec::new();
        while let Some(chunk) = stream.next().await {
            sent.extend_from_slice(&chunk.unwrap());
        }
        sent
    })
    .await
    .expect("the quiet feed ended after the revocation");
    assert!(!String::from_utf8_lossy(&ended).contains("data:"), "{}", String::from_utf8_lossy(&ended));
}

#[tokio::test]
async fn the_log_is_verified_while_the_server_runs() {
    let api = api().await;
    assert_eq!(api.command(&api.admin, "raise-issue", raise("i-1", "gate-a")).await.status, StatusCode::CREATED);
    let head = api.head().await;
    let answer = api.get("/api/v1/verify", &api.auditor).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["intact"], true, "{}", answer.text);
    assert_eq!(answer.body["events"], head);
    assert_eq!(answer.body["problem"], Value::Null);
    let last = api.state.service.events(head, 1).await.unwrap();
    assert_eq!(answer.body["head_hash"], hex_of(&last[0].hash));
    assert_eq!(api.get("/api/v1/verify", &api.field_a).await.status, StatusCode::FORBIDDEN);
    // One verification at a time: while one runs, another is told so.
    let running = api.state.verify_runs.clone().try_acquire_owned().unwrap();
    let busy = api.get("/api/v1/verify", &api.auditor).await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE, "{}", busy.text);
    assert_eq!(busy.body["type"], "/problems/verify-running");
    drop(running);
    assert_eq!(api.get("/api/v1/verify", &api.auditor).await.status, StatusCode::OK);
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn the_seal_key_is_published_without_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.key");
    let key = Arc::new(service::seal_key::SealKey::create(&path).unwrap());
    let secret = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    let api = api_with(ServerConfig { seal_key: Some(key.clone()), ..ServerConfig::default() }).await;
    for token in [&api.field_a, &api.auditor, &api.admin] {
        let answer = api.get("/api/v1/seal-key", token).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.body["algorithm"], "ed25519");
        assert_eq!(answer.body["key_id"], key.public().key_id);
        assert_eq!(answer.body["public_key"], key.public().public_key);
        assert!(!answer.text.contains(&secret), "the secret is never answered");
    }
    assert_eq!(api.send(Method::GET, "/api/v1/seal-key", None, None).await.status, StatusCode::UNAUTHORIZED);
    // Without a key: a clear 404.
    let without = api_with(ServerConfig::default()).await;
    let answer = without.get("/api/v1/seal-key", &without.auditor).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
    assert!(answer.text.contains("seal-key create"), "{}", answer.text);
}

#[tokio::test]
async fn a_day_is_sealed_on_demand_exported_and_proven_over_http_for_auditors() {
    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(service::seal_key::SealKey::create(&dir.path().join("seal.key")).unwrap());
    let api = api_with(ServerConfig { seal_key: Some(key.clone()), ..ServerConfig::default() }).await;
    // The registrations happened today, local time.
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let today = projections::local_day(events_schema::Timestamp::now(), &zone);
    let seal_uri = format!("/api/v1/days/{today}/seal");
    for token in [&api.field_a, &api.auditor] {
        assert_eq!(api.send(Method::POST, &seal_uri, Some(token.as_str()), None).await.status, StatusCode::FORBIDDEN);
    }
    let sealed = api.send(Method::POST, &seal_uri, Some(api.supervisor.as_str()), None).await;
    assert_eq!(sealed.status, StatusCode::CREATED, "{}", sealed.text);
    assert_eq!(sealed.body["event_type"], "DaySealed");
    assert_eq!(sealed.body["data"]["event_count"], 9);
    let again = api.send(Method::POST, &seal_uri, Some(api.admin.as_str()), None).await;
    assert_eq!((again.status, again.body.clone()), (StatusCode::OK, serde_json::Value::Null), "nothing new to seal");
    let seals = api.get(&format!("/api/v1/days/{today}/seals"), &api.auditor).await;
    assert_eq!(seals.status, StatusCode::OK, "{}", seals.text);
    assert_eq!((seals.body["seals"].as_array().unwrap().len(), seals.body["unsealed_events"].clone()), (1, json!(0)));
    assert_eq!(api.get(&format!("/api/v1/days/{today}/export"), &api.field_a).await.status, StatusCode::FORBIDDEN);
    let export = api.get(&format!("/api/v1/days/{today}/export"), &api.auditor).await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text);
    let report =
        service::day_file::verify_file(&export.text, Some(&key.public()), service::day_file::Leniency::STRICT).unwrap();
    assert_eq!((report.events, report.seals), (9, 1));
    let first_event = export.text.lines().nth(1).unwrap();
    let event_id =
        serde_json::from_str::<serde_json::Value>(first_event).unwrap()["event_id"].as_str().unwrap().to_owned();
    let proof = api.get(&format!("/api/v1/events/{event_id}/proof"), &api.auditor).await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.text);
    assert_eq!(
        service::day_file::verify_file(&proof.text, Some(&key.public()), service::day_file::Leniency::STRICT)
            .unwrap()
            .kind,
        "proof"
    );
    let unknown = api.get(&format!("/api/v1/events/{}/proof", uuid::Uuid::now_v7()), &api.auditor).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/api/v1/days/not-a-day/seals", &api.auditor).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The server's verification checks the seal too.
    let verified = api.get("/api/v1/verify", &api.auditor).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
    assert_eq!((verified.body["seals_checked"].clone(), verified.body["seal_problems"].clone()), (json!(1), json!([])));
    // A day that has not begun cannot be sealed.
    let future = api.send(Method::POST, "/api/v1/days/2999-01-01/seal", Some(api.admin.as_str()), None).await;
    assert_eq!(future.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", future.text);
    // Without a key no seal can be made, and says why.
    let keyless = api_with(ServerConfig::default()).await;
    let refused = keyless.send(Method::POST, &seal_uri, Some(keyless.admin.as_str()), None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
}
