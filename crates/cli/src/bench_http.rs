//! `gridwatch bench --http`: a bounded loopback load against the real server (a child
//! `gridwatch serve --demo`), next to a minimal axum handler (another child process, same
//! runtime settings) measured in the same run: status queries and durable commands, each
//! with N connections for a fixed time, and how soon the live feed delivers an event after
//! its command was acknowledged.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::Failure;

/// A child server process, killed when dropped.
pub(crate) struct Spawned {
    child: Child,
    pub(crate) url: String,
    pub(crate) token: Option<String>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn spawn_server(args: &[&str]) -> anyhow::Result<Spawned> {
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(args)
        .env("GRIDWATCH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start a server process")?;
    let mut lines = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?).lines();
    let mut token = None;
    loop {
        let line = lines.next().ok_or_else(|| anyhow!("the server exited before listening"))??;
        if line.starts_with("first start: admin token") {
            token = lines.next().transpose()?;
        } else if let Some(url) = line.strip_prefix("listening on ") {
            return Ok(Spawned { child, url: url.to_owned(), token });
        }
    }
}

/// The minimal handler the server's rates are compared with: axum, same runtime settings,
/// a small JSON answer; nothing else.
pub async fn minimal_server(addr: std::net::SocketAddr) -> Result<(), Failure> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/ping",
        get(|| async { axum::Json(json!({"ok": true})) }).post(|body: axum::body::Bytes| async move {
            (axum::http::StatusCode::CREATED, axum::Json(json!({"ok": true, "bytes": body.len()})))
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    use std::io::Write;
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// What one phase measured.
pub(crate) struct Phase {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    seconds: f64,
    /// Microseconds, sorted.
    latencies_us: Vec<u32>,
    /// When each command's answer came back, by event id.
    acknowledged: Vec<(uuid::Uuid, Instant)>,
}

fn percentile(sorted: &[u32], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[index]) / 1000.0
}

impl Phase {
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    pub(crate) fn p99_ms(&self) -> f64 {
        percentile(&self.latencies_us, 0.99)
    }

    pub(crate) fn p50_ms(&self) -> f64 {
        percentile(&self.latencies_us, 0.50)
    }
}

pub(crate) type MakeRequest =
    Arc<dyn Fn(&reqwest::Client, usize, u64) -> (reqwest::RequestBuilder, Option<uuid::Uuid>) + Send + Sync>;

/// `connections` tasks, each sending one request after another for `duration`.
pub(crate) async fn load(client: &reqwest::Client, connections: usize, duration: Duration, make: MakeRequest) -> Phase {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|connection| {
            let client = client.clone();
            let make = make.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed, mut latencies, mut acknowledged) = (0u64, 0u64, Vec::new(), Vec::new());
                let mut sequence = 0;
                while Instant::now() < deadline {
                    let (request, event_id) = make(&client, connection, sequence);
                    sequence += 1;
                    let sent = Instant::now();
                    match request.send().await {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.bytes().await;
                            let answered = Instant::now();
                            latencies.push(u32::try_from((answered - sent).as_micros()).unwrap_or(u32::MAX));
                            if let Some(event_id) = event_id {
                                acknowledged.push((event_id, answered));
                            }
                            ok += 1;
                        }
                        _ => failed += 1,
                    }
                }
                (ok, failed, latencies, acknowledged)
            })
        })
        .collect();
    let mut phase = Phase { ok: 0, failed: 0, seconds: 0.0, latencies_us: Vec::new(), acknowledged: Vec::new() };
    for task in tasks {
        if let Ok((ok, failed, latencies, acknowledged)) = task.await {
            phase.ok += ok;
            phase.failed += failed;
            phase.latencies_us.extend(latencies);
            phase.acknowledged.extend(acknowledged);
        }
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase.latencies_us.sort_unstable();
    phase
}

pub(crate) fn report(name: &str, phase: &Phase, baseline: Option<(&str, &Phase)>) {
    let mut line = format!(
        "{name}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({} answered, {} failed)",
        phase.rate(),
        phase.p50_ms(),
        phase.p99_ms(),
        phase.ok,
        phase.failed
    );
    if let Some((baseline_name, baseline)) = baseline {
        line.push_str(&format!("; {:.2}x of {baseline_name} {:.0}/s", phase.rate() / baseline.rate(), baseline.rate()));
    }
    println!("{line}");
}

/// Reads the live feed, noting when each event id arrived, until `stop` is cancelled.
async fn watch_live(response: reqwest::Response, stop: CancellationToken) -> HashMap<uuid::Uuid, Instant> {
    let mut arrived = HashMap::new();
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    loop {
        let chunk = tokio::select! {
            () = stop.cancelled() => return arrived,
            chunk = body.next() => chunk,
        };
        let Some(Ok(chunk)) = chunk else { return arrived };
        let now = Instant::now();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|window| window == b"\n\n") {
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            let frame = String::from_utf8_lossy(&frame);
            if let Some(data) = frame.lines().find_map(|line| line.strip_prefix("data: ")) {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(data) {
                    if let Some(id) = event["event_id"].as_str().and_then(|id| id.parse().ok()) {
                        arrived.insert(id, now);
                    }
                }
            }
        }
    }
}

/// Sends one command; an answer that is not a success fails.
pub(crate) async fn command(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    name: &str,
    data: serde_json::Value,
) -> Result<(), Failure> {
    let body = json!({"command": name, "data": data});
    let response = client
        .post(format!("{url}/api/v1/commands"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|error| Failure::Operating(error.into()))?;
    if !response.status().is_success() {
        return Err(Failure::Operating(anyhow!("{name}: {}", response.status())));
    }
    Ok(())
}

/// One gate per connection (`bench-gate-N` at the site `longwu`), as in the field (a guard
/// per gate): commands on different entities never conflict.
pub(crate) async fn register_gates(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    gates: usize,
) -> Result<(), Failure> {
    for gate in 0..gates {
        let data = json!({"checkpoint_id": format!("bench-gate-{gate}"), "site_id": "longwu",
                          "name": format!("Bench gate {gate}")});
        command(client, url, token, "register-checkpoint", data).await?;
    }
    Ok(())
}

/// A patrol check at `bench-gate-{gate}` by `guard-1`.
fn patrol_check(gate: usize) -> serde_json::Value {
    json!({"checkpoint_id": format!("bench-gate-{gate}"), "staff_id": "guard-1", "result": "ok",
           "staff_present": true, "protective_gear_worn": true, "thermometer_working": true,
           "health_code_scan_enforced": true, "note": "bench"})
}

/// Durable patrol checks, each connection at its own gate, each with a new event id.
pub(crate) fn patrol_checks(url: &str, token: &str) -> MakeRequest {
    let (url, token) = (url.to_owned(), token.to_owned());
    Arc::new(move |client, gate, _| {
        let event_id = uuid::Uuid::now_v7();
        let body = json!({"command": "record-patrol-check", "data": patrol_check(gate), "event_id": event_id});
        (client.post(format!("{url}/api/v1/commands")).bearer_auth(&token).json(&body), Some(event_id))
    })
}

pub async fn run(root: &Path, seconds: f64, connections: usize) -> Result<(), Failure> {
    let duration = Duration::from_secs_f64(seconds);
    let data = root.join("data");
    let data_arg = data.to_string_lossy().into_owned();
    println!(
        "gridwatch bench --http: {connections} connections, {seconds} s per phase, loopback, in {}",
        root.display()
    );
    let minimal = spawn_server(&["bench-minimal-server", "--addr", "127.0.0.1:0"]).map_err(Failure::Operating)?;
    let served =
        spawn_server(&["--data", &data_arg, "serve", "--addr", "127.0.0.1:0", "--demo"]).map_err(Failure::Operating)?;
    let admin = served.token.clone().ok_or_else(|| Failure::Operating(anyhow!("the server printed no admin token")))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .map_err(|error| Failure::Operating(error.into()))?;

    let url = minimal.url.clone();
    let ping: MakeRequest = Arc::new(move |client, _, _| (client.get(format!("{url}/ping")), None));
    let minimal_get = load(&client, connections, duration, ping).await;
    report("minimal axum handler, GET", &minimal_get, None);
    let (url, token) = (served.url.clone(), admin.clone());
    let status: MakeRequest =
        Arc::new(move |client, _, _| (client.get(format!("{url}/api/v1/status")).bearer_auth(&token), None));
    let status_phase = load(&client, connections, duration, status).await;
    report("GET /api/v1/status (demo board)", &status_phase, Some(("the minimal GET", &minimal_get)));
    println!("  target: at least 0.50x of the minimal handler");

    register_gates(&client, &served.url, &admin, connections).await?;

    let (url, token) = (served.url.clone(), admin.clone());
    let status: MakeRequest =
        Arc::new(move |client, _, _| (client.get(format!("{url}/api/v1/status")).bearer_auth(&token), None));
    let big_board = load(&client, connections, duration, status).await;
    let gates = 8 + connections;
    report(&format!("GET /api/v1/status ({gates} gates)"), &big_board, Some(("the minimal GET", &minimal_get)));
    let url = minimal.url.clone();
    let minimal_post: MakeRequest = Arc::new(move |client, gate, _| {
        let body =
            json!({"command": "record-patrol-check", "data": patrol_check(gate), "event_id": uuid::Uuid::now_v7()});
        (client.post(format!("{url}/ping")).json(&body), None)
    });
    let minimal_post = load(&client, connections, duration, minimal_post).await;
    report("minimal axum handler, POST", &minimal_post, None);

    let live = client
        .get(format!("{}/api/v1/events/live", served.url))
        .bearer_auth(&admin)
        .send()
        .await
        .map_err(|error| Failure::Operating(error.into()))?;
    let stop = CancellationToken::new();
    let watcher = tokio::spawn(watch_live(live, stop.clone()));
    let commands = load(&client, connections, duration, patrol_checks(&served.url, &admin)).await;
    report("POST /api/v1/commands (durable patrol checks)", &commands, Some(("the minimal POST", &minimal_post)));
    println!("  target: p99 under 20 ms");

    // Every connection on one gate: the commands of one stream take their turn, so none is
    // refused, and each waits for its own durable append.
    let (url, token) = (served.url.clone(), admin.clone());
    let one_gate: MakeRequest = Arc::new(move |client, _, _| {
        let body = json!({"command": "record-patrol-check", "data": patrol_check(0), "event_id": uuid::Uuid::now_v7()});
        (client.post(format!("{url}/api/v1/commands")).bearer_auth(&token).json(&body), None)
    });
    let one_entity = load(&client, connections, duration, one_gate).await;
    report(
        &format!("POST /api/v1/commands, {connections} connections on one gate"),
        &one_entity,
        Some(("the commands on a gate each", &commands)),
    );
    println!("  target: 0 failed (no command refused because others write the same gate)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let arrived = watcher.await.map_err(|error| Failure::Operating(error.into()))?;
    let mut delays_us: Vec<u32> = commands
        .acknowledged
        .iter()
        .filter_map(|(event_id, acknowledged)| {
            let arrived = arrived.get(event_id)?;
            // An event may reach the feed before its command's answer reaches the client.
            Some(u32::try_from(arrived.saturating_duration_since(*acknowledged).as_micros()).unwrap_or(u32::MAX))
        })
        .collect();
    delays_us.sort_unstable();
    println!(
        "live feed: {} of {} acknowledged events delivered; after the acknowledgement: p50 {:.2} ms, p99 {:.2} ms (target p99 < 50 ms)",
        delays_us.len(),
        commands.acknowledged.len(),
        percentile(&delays_us, 0.5),
        percentile(&delays_us, 0.99)
    );
    Ok(())
}
