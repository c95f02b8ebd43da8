//! `gridwatch serve` under stress, over real HTTP: many clients writing one entity and the
//! streams shared by design, without a refusal.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::http::Server;

/// Clients writing at the same time.
const CLIENTS: usize = 64;

async fn command(http: &reqwest::Client, url: &str, token: &str, command: &str, data: Value) -> (u16, Value) {
    let body = json!({"command": command, "data": data});
    let response = http.post(format!("{url}/api/v1/commands")).bearer_auth(token).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// Registers a compound with one gate and a guard.
pub(crate) async fn register_gate(http: &reqwest::Client, url: &str, admin: &str) {
    for (name, data) in [
        ("register-community", json!({"community_id": "minxin", "name": "Minxin community"})),
        ("register-grid", json!({"grid_id": "grid-3", "community_id": "minxin", "name": "Grid 3"})),
        (
            "register-site",
            json!({"site_id": "longwu", "grid_id": "grid-3", "name": "Longwu compound", "kind": "residential_compound"}),
        ),
        ("register-checkpoint", json!({"checkpoint_id": "longwu-main", "site_id": "longwu", "name": "Main gate"})),
        ("register-staff", json!({"staff_id": "guard-1", "display_name": "Guard Wu", "role": "guard"})),
    ] {
        let (status, body) = command(http, url, admin, name, data).await;
        assert_eq!(status, 201, "{name}: {body}");
    }
}

/// Sends `CLIENTS` copies of a command at once (`data_of(k)` for client k) and asserts that
/// every one landed; returns the global position of each.
async fn all_at_once(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    name: &'static str,
    data_of: impl Fn(usize) -> Value,
) -> Vec<u64> {
    let start = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let (http, url, token, data, start) =
                (http.clone(), url.to_owned(), token.to_owned(), data_of(k), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                command(&http, &url, &token, name, data).await
            })
        })
        .collect();
    let mut positions = Vec::new();
    for client in clients {
        let (status, body) = client.await.unwrap();
        assert_eq!(status, 201, "{name}: every command without an expected version lands: {body}");
        positions.push(body["events"][0]["global_position"].as_u64().unwrap());
    }
    positions
}

/// Every event of the log, read through the server.
async fn log_positions(http: &reqwest::Client, url: &str, token: &str) -> Vec<Value> {
    let response =
        http.get(format!("{url}/api/v1/events?from=1&limit=10000")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn assert_in_log(log: &[Value], positions: &[u64], event_type: &str, stream: &str) {
    let mut sorted = positions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), positions.len(), "every answer names its own position");
    for position in positions {
        let event = log.iter().find(|event| event["global_position"] == *position).expect("answered means in the log");
        assert_eq!(event["event_type"], event_type);
        assert_eq!(event["stream_id"], stream);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_writers_on_one_gate_and_on_shared_streams_are_never_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = Server::start_with(&data, &[]);
    let admin = server.admin.clone().unwrap();
    let http = reqwest::Client::new();
    let url = server.url.clone();
    register_gate(&http, &url, &admin).await;

    // One gate: the same checkpoint stream.
    let checks = all_at_once(&http, &url, &admin, "record-patrol-check", |_| {
        json!({"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "ok"})
    })
    .await;
    // One author's notes: one stream.
    let notes = all_at_once(&http, &url, &admin, "record-field-note", |k| {
        json!({"author": "guard-1", "text": format!("note {k}: queue orderly"), "site_id": "longwu"})
    })
    .await;
    let log = log_positions(&http, &url, &admin).await;
    assert_in_log(&log, &checks, "PatrolCheckRecorded", "checkpoint:longwu-main");
    assert_in_log(&log, &notes, "FieldNoteRecorded", "notes:guard-1");

    // Every retraction goes to the one `corrections` stream.
    let note_ids: Vec<String> = notes
        .iter()
        .map(|position| {
            let event = log.iter().find(|event| event["global_position"] == *position).unwrap();
            event["event_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let retractions = all_at_once(&http, &url, &admin, "retract-event", |k| {
        json!({"retracted_event_id": note_ids[k], "retracted_by": "guard-1", "reason": "written twice"})
    })
    .await;
    let log = log_positions(&http, &url, &admin).await;
    assert_in_log(&log, &retractions, "EventRetracted", "corrections");

    // A command that names the version it expects still hears of a change.
    let (status, body) = command(
        &http,
        &url,
        &admin,
        "record-patrol-check",
        json!({"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "ok"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let stale = json!({"command": "record-patrol-check", "expected_version": 1,
                       "data": {"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "ok"}});
    let response =
        http.post(format!("{url}/api/v1/commands")).bearer_auth(&admin).json(&stale).send().await.unwrap();
    assert_eq!(response.status(), 409);
    drop(server);
    let verified = crate::run(&data, &["verify"], "");
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert!(verified.stdout.contains(&format!("ok: {} events", log.len() + 1)), "{}", verified.stdout);
}
