//! `gridwatch serve` over real HTTP on a free loopback port: a gate issue's whole
//! lifecycle with tokens made by `gridwatch token create` while the server runs, the live
//! feed seeing each event, a restart keeping everything, and SIGTERM answering every
//! append in flight before exit 0.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::{gridwatch, run};

/// A running `gridwatch serve`.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) url: String,
    /// The admin token printed on the first start, if this start printed one.
    pub(crate) admin: Option<String>,
}

impl Server {
    fn start(data: &Path) -> Server {
        Server::start_with(data, &[])
    }

    /// `gridwatch serve --addr 127.0.0.1:0 EXTRA...` on `data`, its log beside `data`.
    pub(crate) fn start_with(data: &Path, extra: &[&str]) -> Server {
        Server::start_logging(data, &data.with_extension("server.log"), extra)
    }

    /// `gridwatch serve --addr 127.0.0.1:0 EXTRA...` on `data`, its log appended to `log`.
    pub(crate) fn start_logging(data: &Path, log: &Path, extra: &[&str]) -> Server {
        // Appended to, so that the log of every start is kept.
        let log_path = log.to_owned();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut child = gridwatch(data)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .env("GRIDWATCH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("gridwatch serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut admin = None;
        let url = loop {
            let Some(line) = lines.next() else {
                let status = child.wait().unwrap();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
                panic!("serve ended ({status}) without printing its address; its log ends:\n{}", tail.join("\n"));
            };
            let line = line.unwrap();
            if line.starts_with("first start: admin token") {
                admin = Some(lines.next().unwrap().unwrap());
            } else if let Some(url) = line.strip_prefix("listening on ") {
                break url.to_owned();
            }
        };
        Server { child: Some(child), url, admin }
    }

    /// SIGTERM, then the exit code.
    fn stop(mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().expect("exited, not killed by a signal");
            }
            assert!(Instant::now() < deadline, "the server did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `gridwatch token create ...`: the token alone on the last line of stdout.
pub(crate) fn token(data: &Path, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let output = run(data, &all, "");
    assert_eq!(output.code, 0, "{}", output.stderr);
    let token = output.stdout.lines().last().unwrap().to_owned();
    assert!(token.starts_with("gw_") && !token.contains(' '), "{token}");
    token
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn command(&self, token: &str, command: &str, data: Value) -> (u16, Value) {
        let body = json!({"command": command, "data": data, "event_id": uuid::Uuid::now_v7()});
        let response = self
            .http
            .post(format!("{}/api/v1/commands", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        let response = self.http.get(format!("{}{path}", self.url)).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }
}

fn data_dir(root: &Path) -> PathBuf {
    root.join("data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_issue_lifecycle_over_http_survives_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let server = Server::start(&data);
    let admin = server.admin.clone().expect("the first start prints an admin token");
    // Tokens made by the CLI while the server runs.
    let field = token(&data, &["--role", "field", "--site", "longwu", "--actor", "guard-1"]);
    let supervisor = token(&data, &["--role", "supervisor", "--actor", "cadre-1"]);
    let auditor = token(&data, &["--role", "auditor"]);
    let client = Client { http: reqwest::Client::new(), url: server.url.clone() };

    // The live feed from the start of the log, read in the background.
    let live = client
        .http
        .get(format!("{}/api/v1/events/live?from=1", server.url))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let (seen_sender, mut seen) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        let mut body = live.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if let Some(data) = frame.lines().find_map(|line| line.strip_prefix("data: ")) {
                    let _ = seen_sender.send(serde_json::from_str(data).unwrap());
                }
            }
        }
    });

    let mut written = Vec::new();
    let mut expect_created = |(status, body): (u16, Value)| {
        assert_eq!(status, 201, "{body}");
        written.push(body["events"][0]["event_id"].as_str().unwrap().to_owned());
    };
    for (command, data) in [
        ("register-community", json!({"community_id": "minxin", "name": "Minxin community"})),
        ("register-grid", json!({"grid_id": "grid-3", "community_id": "minxin", "name": "Grid 3"})),
        (
            "register-site",
            json!({"site_id": "longwu", "grid_id": "grid-3", "name": "Longwu compound", "kind": "residential_compound"}),
        ),
        ("register-checkpoint", json!({"checkpoint_id": "longwu-main", "site_id": "longwu", "name": "Main gate"})),
        ("register-staff", json!({"staff_id": "guard-1", "display_name": "Guard Wu", "role": "guard"})),
        ("register-staff", json!({"staff_id": "cadre-1", "display_name": "Cadre Zhou", "role": "deployed_cadre"})),
    ] {
        expect_created(client.command(&admin, command, data).await);
    }
    let issue = "courier-0220";
    expect_created(client.command(&field, "record-patrol-check", json!({"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "issue_found", "queue_orderly": false})).await);
    expect_created(client.command(&field, "raise-issue", json!({"issue_id": issue, "checkpoint_id": "longwu-main", "raised_by": "guard-1", "category": "courier_congestion", "severity": "high", "summary": "courier tricycles crowd the gate"})).await);
    expect_created(
        client.command(&field, "acknowledge-issue", json!({"issue_id": issue, "acknowledged_by": "guard-1"})).await,
    );
    expect_created(client.command(&field, "act-on-issue", json!({"issue_id": issue, "taken_by": "guard-1", "action": "property office told to keep tricycles in order"})).await);
    expect_created(
        client
            .command(
                &field,
                "act-on-issue",
                json!({"issue_id": issue, "taken_by": "guard-1", "action": "cordon tape splits people and vehicles"}),
            )
            .await,
    );
    // Escalation and verification are the supervisor's.
    let (status, _) = client
        .command(
            &field,
            "escalate-issue",
            json!({"issue_id": issue, "escalated_by": "guard-1", "escalated_to": "subdistrict"}),
        )
        .await;
    assert_eq!(status, 403);
    expect_created(client.command(&supervisor, "escalate-issue", json!({"issue_id": issue, "escalated_by": "cadre-1", "escalated_to": "subdistrict", "note": "enforcement and police persuade the stations to move out"})).await);
    expect_created(client.command(&field, "resolve-issue", json!({"issue_id": issue, "resolved_by": "guard-1", "resolution": "the stations moved outside the compound"})).await);
    expect_created(
        client
            .command(
                &supervisor,
                "verify-resolution",
                json!({"issue_id": issue, "verified_by": "cadre-1", "note": "gate orderly on the follow-up check"}),
            )
            .await,
    );
    let (status, _) = client
        .command(&field, "act-on-issue", json!({"issue_id": issue, "taken_by": "guard-1", "action": "late"}))
        .await;
    assert_eq!(status, 409, "no action on a verified issue");

    let record = client.get(&auditor, &format!("/api/v1/issues/{issue}")).await;
    assert_eq!(record["state"], "verified");
    assert_eq!(record["actions"].as_array().unwrap().len(), 2);
    assert_eq!(record["escalated_to"], json!(["subdistrict"]));
    let status = client.get(&field, "/api/v1/status").await;
    assert_eq!(status["checkpoints"][0]["open_issues"], 0);
    assert_eq!(status["checkpoints"][0]["last_check"]["staff_id"], "guard-1");

    // The live feed saw each event, in order, once.
    let mut live_ids = Vec::new();
    while live_ids.len() < written.len() {
        let event =
            tokio::time::timeout(Duration::from_secs(10), seen.recv()).await.expect("the feed delivers").unwrap();
        live_ids.push(event["event_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(live_ids, written);
    let log_before = client.get(&auditor, "/api/v1/events?limit=10000").await;
    assert_eq!(server.stop(), 0, "SIGTERM is a clean exit");
    reader.await.unwrap();

    // A restart keeps everything; tokens still work; no second admin token.
    let server = Server::start(&data);
    assert!(server.admin.is_none(), "the admin token is printed on the first start only");
    let client = Client { http: reqwest::Client::new(), url: server.url.clone() };
    assert_eq!(client.get(&auditor, "/api/v1/events?limit=10000").await, log_before);
    assert_eq!(client.get(&supervisor, &format!("/api/v1/issues/{issue}")).await, record);
    // Revoked from the CLI while the server runs: refused from the next request on.
    let listed = run(&data, &["token", "list"], "");
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.stdout.lines().count(), 4, "{}", listed.stdout);
    assert!(!listed.stdout.contains("gw_"), "a listing shows no secret");
    let field_id = field.split('_').nth(1).unwrap();
    let revoked = run(&data, &["token", "revoke", field_id], "");
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    let refused = client.http.get(format!("{}/api/v1/status", client.url)).bearer_auth(&field).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    // A whole token pasted by mistake names its id, and is not repeated.
    let again = run(&data, &["token", "revoke", &field], "");
    assert_eq!(again.code, 2, "already revoked");
    assert!(!again.stderr.contains(&field) && again.stderr.contains(field_id), "{}", again.stderr);
    let timeline = client.get(&auditor, &format!("/api/v1/timeline?day={}&entity={issue}", today())).await;
    let steps: Vec<&str> =
        timeline.as_array().unwrap().iter().map(|entry| entry["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "GateIssueRaised",
            "GateIssueAcknowledged",
            "GateIssueActionTaken",
            "GateIssueActionTaken",
            "GateIssueEscalated",
            "GateIssueResolved",
            "GateIssueResolutionVerified"
        ]
    );
    // While the server holds the store, `gridwatch verify` says so and how to verify
    // instead (exit 5); the server verifies it without stopping.
    let held = run(&data, &["verify"], "");
    assert_eq!(held.code, 5, "{}", held.stderr);
    assert!(held.stderr.contains("GET /api/v1/verify"), "{}", held.stderr);
    assert_eq!(held.stderr.lines().count(), 1, "one clear line: {}", held.stderr);
    // The other commands that open the store say that the server holds it and where it
    // answers, in one line too (exit 1, an operating error).
    let report = run(&data, &["report", "--day", &today().to_string()], "");
    assert_eq!(report.code, 1, "{}", report.stderr);
    assert!(report.stderr.contains("held by a running gridwatch server at http://"), "{}", report.stderr);
    assert!(report.stderr.contains(client.url.trim_end_matches('/')), "{} ({})", report.stderr, client.url);
    assert_eq!(report.stderr.lines().count(), 1, "one clear line: {}", report.stderr);
    assert!(!report.stderr.contains("Os {"), "no debug output: {}", report.stderr);
    let verified = client.get(&auditor, "/api/v1/verify").await;
    assert_eq!(verified["intact"], true, "{verified}");
    assert!(verified["events"].as_u64().unwrap() > 10, "{verified}");
    assert_eq!(server.stop(), 0);
    // Structured logs name each request by its id, and never hold a token.
    let log = std::fs::read_to_string(data.with_extension("server.log")).unwrap();
    assert!(log.contains("request_id=") && log.contains("status=201"), "{log}");
    for secret in [&admin, &field, &supervisor, &auditor] {
        assert!(!log.contains(secret.as_str()), "a token in the log");
    }
    assert!(!log.contains("gw_"), "nothing token-like in the log");
    let verify = run(&data, &["verify"], "");
    assert_eq!(verify.code, 0, "{}", verify.stderr);
}

pub(crate) fn today() -> jiff::civil::Date {
    projections::local_day(events_schema::Timestamp::now(), &jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_append_in_flight_then_exits_0() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let server = Server::start(&data);
    let admin = server.admin.clone().unwrap();
    let client = std::sync::Arc::new(Client { http: reqwest::Client::new(), url: server.url.clone() });
    // One author per writer: each writes its own notes stream, so the writers never
    // conflict with one another and all of them are still writing when SIGTERM comes.
    for writer in 0..32 {
        let guard =
            json!({"staff_id": format!("guard-{writer}"), "display_name": format!("Guard {writer}"), "role": "guard"});
        let (status, body) = client.command(&admin, "register-staff", guard).await;
        assert_eq!(status, 201, "{body}");
    }
    // 32 writers append as fast as they can; SIGTERM lands among them.
    let writers: Vec<_> = (0..32)
        .map(|writer| {
            let client = client.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
                for note in 0.. {
                    let event_id = uuid::Uuid::now_v7();
                    let body = json!({"command": "record-field-note", "event_id": event_id,
                                      "data": {"author": format!("guard-{writer}"), "text": format!("note {note}")}});
                    let sent = client
                        .http
                        .post(format!("{}/api/v1/commands", client.url))
                        .bearer_auth(&admin)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 201 => acknowledged.push(event_id.to_string()),
                        Ok(response) => {
                            refused.push(response.status().as_u16());
                            break;
                        }
                        // The connection closed for the shutdown: not acknowledged.
                        Err(_) => break,
                    }
                }
                (acknowledged, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let code = tokio::task::spawn_blocking(move || server.stop()).await.unwrap();
    assert_eq!(code, 0);
    let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
    for writer in writers {
        let (writer_acknowledged, writer_refused) = writer.await.unwrap();
        acknowledged.extend(writer_acknowledged);
        refused.extend(writer_refused);
    }
    assert!(refused.is_empty(), "no append is refused, before or during the shutdown: {refused:?}");
    assert!(acknowledged.len() > 32, "appends were in flight: {}", acknowledged.len());
    let stored: std::collections::HashSet<String> =
        crate::events(&data, &[]).into_iter().map(|event| event["event_id"].as_str().unwrap().to_owned()).collect();
    let missing: Vec<_> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "acknowledged but not in the log: {missing:?}");
    // Requests in flight when SIGTERM came were answered (durably) after it, not cut off.
    let log = std::fs::read_to_string(data.with_extension("server.log")).unwrap();
    let after_signal = log.split("shutting down").nth(1).expect("the shutdown is logged");
    assert!(after_signal.contains("status=201"), "no append was finished after SIGTERM:\n{after_signal}");
}
