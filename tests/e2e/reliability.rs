//! `gridwatch serve` under stress, over real HTTP: many clients writing one entity and the
//! streams shared by design, without a refusal.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::http::Server;

/// Clients writing at the same time.
const CLIENTS: usize = 64;

pub(crate) async fn command(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    command: &str,
    data: Value,
) -> (u16, Value) {
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
    let response = http.get(format!("{url}/api/v1/events?from=1&limit=10000")).bearer_auth(token).send().await.unwrap();
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
    let checks = all_at_once(
        &http,
        &url,
        &admin,
        "record-patrol-check",
        |_| json!({"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "ok"}),
    )
    .await;
    // One author's notes: one stream.
    let notes = all_at_once(
        &http,
        &url,
        &admin,
        "record-field-note",
        |k| json!({"author": "guard-1", "text": format!("note {k}: queue orderly"), "site_id": "longwu"}),
    )
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
    let retractions = all_at_once(
        &http,
        &url,
        &admin,
        "retract-event",
        |k| json!({"retracted_event_id": note_ids[k], "retracted_by": "guard-1", "reason": "written twice"}),
    )
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
    let response = http.post(format!("{url}/api/v1/commands")).bearer_auth(&admin).json(&stale).send().await.unwrap();
    assert_eq!(response.status(), 409);
    drop(server);
    let verified = crate::run(&data, &["verify"], "");
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert!(verified.stdout.contains(&format!("ok: {} events", log.len() + 1)), "{}", verified.stdout);
}

/// A size-limited tmpfs mounted for one test (the test command runs as root), unmounted when
/// dropped.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(mib: u64) -> SmallFilesystem {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700"), "gridwatch-test"])
            .arg(dir.path())
            .output()
            .expect("`mount` runs");
        assert!(
            mounted.status.success(),
            "the full-disk tests mount a {mib} MiB tmpfs and must run as root (CI does): {}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        SmallFilesystem { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// `count` field notes of about 2 KiB each, as raw event lines.
fn notes(count: usize, round: usize) -> Value {
    let text = "queue orderly; tricycles kept outside the line. ".repeat(40);
    Value::Array(
        (0..count)
            .map(|k| {
                json!({"event_type": "FieldNoteRecorded", "actor": "guard-1",
                       "data": {"author": "guard-1", "text": format!("{round}/{k}: {text}"), "site_id": "longwu"}})
            })
            .collect(),
    )
}

/// One raw append of `body` to the notes stream: the status, its `Retry-After`, the body.
async fn append(http: &reqwest::Client, url: &str, admin: &str, body: &Value) -> (u16, Option<String>, Value) {
    let response = http
        .post(format!("{url}/api/v1/streams/notes:guard-1/events"))
        .bearer_auth(admin)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

/// What the full-disk tests check, with the disk reserve given to the server: fill the disk
/// until appends are refused, check the refusal and that reads go on, free the space, check
/// that writes resume without a restart, then that every acknowledged event is in the log.
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers(reserve_mib: &str, refusal: u16) {
    let filesystem = SmallFilesystem::mount(32);
    let data = filesystem.path().join("data");
    // Space taken by something else on the same disk, freed later by the operator.
    let filler = filesystem.path().join("filler");
    // The server's log is kept off the small disk (and after the test, for a failure's cause).
    let log = std::env::temp_dir().join(format!("gridwatch-full-disk-{reserve_mib}.server.log"));
    let _ = std::fs::remove_file(&log);
    let server = Server::start_logging(&data, &log, &["--disk-reserve-mib", reserve_mib, "--cache-mib", "8"]);
    let admin = server.admin.clone().unwrap();
    let http = reqwest::Client::new();
    let url = server.url.clone();
    register_gate(&http, &url, &admin).await;
    // The live feed from the start, read throughout: it must see every event once, in order,
    // across the full disk and the recovery.
    let live = http.get(format!("{url}/api/v1/events/live?from=1")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let (seen_sender, mut seen) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let reader = tokio::spawn(async move {
        let mut body = live.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = futures::StreamExt::next(&mut body).await {
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if let Some(data) = frame.lines().find_map(|line| line.strip_prefix("data: ")) {
                    let event: Value = serde_json::from_str(data).unwrap();
                    let _ = seen_sender.send(event["global_position"].as_u64().unwrap());
                }
            }
        }
    });
    std::fs::write(&filler, vec![7u8; 12 * 1024 * 1024]).unwrap();

    let mut acknowledged = 0;
    let mut round = 0;
    let (status, retry_after, problem) = loop {
        round += 1;
        assert!(round < 500, "the disk never filled up");
        let (status, retry_after, body) = append(&http, &url, &admin, &notes(100, round)).await;
        if status != 201 {
            break (status, retry_after, body);
        }
        acknowledged += body["events"].as_array().unwrap().len();
    };
    assert_eq!(status, refusal, "{problem}");
    assert!(retry_after.is_some_and(|seconds| seconds.parse::<u32>().unwrap() > 0), "a refusal says when to retry");
    if refusal == 507 {
        assert_eq!(problem["type"], "/problems/disk-full");
        assert!(problem["detail"].as_str().unwrap().contains("full"), "{problem}");
    }
    assert!(acknowledged > 0);

    // Reads go on from what is durable: the board and the issues from the views; a report
    // and the raw log from the store (which, stopped by a failed write, may answer 503 with
    // `Retry-After` until it is reopened).
    let today = std::process::Command::new("date").arg("+%F").env("TZ", "Asia/Shanghai").output().unwrap();
    let today = String::from_utf8(today.stdout).unwrap().trim().to_owned();
    for (path, from_views) in [
        ("/api/v1/status".to_owned(), true),
        ("/api/v1/issues".to_owned(), true),
        (format!("/api/v1/report?day={today}"), false),
        ("/api/v1/events?from=1&limit=10".to_owned(), false),
    ] {
        let response = http.get(format!("{url}{path}")).bearer_auth(&admin).send().await.unwrap();
        let status = response.status().as_u16();
        if from_views || refusal == 507 {
            assert_eq!(status, 200, "{path} while the disk is full");
        } else {
            assert!(
                status == 200 || (status == 503 && response.headers().contains_key("retry-after")),
                "{path} while the store is stopped: {status}"
            );
        }
    }

    // The operator frees space: writes resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        round += 1;
        let (status, _, body) = append(&http, &url, &admin, &notes(10, round)).await;
        if status == 201 {
            acknowledged += body["events"].as_array().unwrap().len();
            break;
        }
        assert!(std::time::Instant::now() < deadline, "writes did not resume once space was freed: {status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, _, body) = append(&http, &url, &admin, &notes(10, round + 1)).await;
    assert_eq!(status, 201, "{body}");
    acknowledged += 10;
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // The live feed saw every event of the log once, in order, with no gap.
    let head: u64 = {
        let response = http.get(format!("{url}/readyz")).send().await.unwrap();
        response.json::<Value>().await.unwrap()["head_position"].as_u64().unwrap()
    };
    let mut positions = Vec::new();
    while positions.last() != Some(&head) {
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), seen.recv()).await;
        positions.push(next.expect("the live feed goes on after the recovery").unwrap());
    }
    assert_eq!(positions, (1..=head).collect::<Vec<_>>());
    reader.abort();

    // Nothing acknowledged was lost: after a restart the log verifies and holds every note.
    drop(server);
    let verified = crate::run(&data, &["verify"], "");
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let stored = crate::events(&data, &["--stream", "notes:guard-1", "--limit", "10000"]);
    assert_eq!(stored.len(), acknowledged, "every acknowledged note, and only those");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_refused_with_507_before_anything_is_written() {
    a_full_disk_refuses_writes_keeps_reads_and_recovers("8", 507).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_meets_a_full_disk_stops_the_store_which_reopens_itself() {
    // No reserve: sled itself meets the full disk in the middle of a write.
    a_full_disk_refuses_writes_keeps_reads_and_recovers("0", 503).await;
}

/// `gridwatch ARGS` on `data` with `GRIDWATCH_TOKEN` set.
fn run_with_token(data: &std::path::Path, args: &[&str], token: &str) -> crate::Output {
    let output = crate::gridwatch(data).args(args).env("GRIDWATCH_TOKEN", token).output().unwrap();
    crate::Output {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writers_restores_the_identical_chain_which_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let key = root.path().join("seal.key");
    let key_arg = key.to_str().unwrap();
    let made = crate::run(&data, &["--seal-key", key_arg, "seal-key", "create"], "");
    assert_eq!(made.code, 0, "{}", made.stderr);
    let server = Server::start_with(&data, &["--seal-key", key_arg]);
    let admin = server.admin.clone().unwrap();
    let http = reqwest::Client::new();
    let url = server.url.clone();
    register_gate(&http, &url, &admin).await;
    let today = std::process::Command::new("date").arg("+%F").env("TZ", "Asia/Shanghai").output().unwrap();
    let today = String::from_utf8(today.stdout).unwrap().trim().to_owned();
    let sealed = http.post(format!("{url}/api/v1/days/{today}/seal")).bearer_auth(&admin).send().await.unwrap();
    assert!(sealed.status().is_success(), "{}", sealed.text().await.unwrap());

    // Writers go on throughout the backups.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, admin, stop) = (http.clone(), url.clone(), admin.clone(), stop.clone());
            tokio::spawn(async move {
                let mut written = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, body) = command(
                        &http,
                        &url,
                        &admin,
                        "record-patrol-check",
                        json!({"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "ok"}),
                    )
                    .await;
                    assert_eq!(status, 201, "{body}");
                    written += 1;
                }
                written
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let by_cli = root.path().join("backup.ndjson");
    let (data_for_cli, dest, token) = (data.clone(), by_cli.clone(), admin.clone());
    let backed_up =
        tokio::task::spawn_blocking(move || run_with_token(&data_for_cli, &["backup", dest.to_str().unwrap()], &token))
            .await
            .unwrap();
    assert_eq!(backed_up.code, 0, "{}", backed_up.stderr);
    let over_http = http.post(format!("{url}/api/v1/backup")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(over_http.status(), 200);
    let by_http = root.path().join("backup-http.ndjson");
    std::fs::write(&by_http, over_http.bytes().await.unwrap()).unwrap();
    // A field token may not take one.
    let field = crate::http::token(&data, &["--role", "field", "--site", "longwu", "--actor", "guard-1"]);
    let refused = http.post(format!("{url}/api/v1/backup")).bearer_auth(&field).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for writer in writers {
        written += writer.await.unwrap();
    }
    assert!(written > 0);
    drop(server);
    let original = crate::events(&data, &["--limit", "10000"]);

    for backup in [&by_cli, &by_http] {
        let header: Value =
            serde_json::from_str(std::fs::read_to_string(backup).unwrap().lines().next().unwrap()).unwrap();
        let head = header["head_position"].as_u64().unwrap() as usize;
        assert!(head > 7 && head < original.len(), "taken while writers went on: {head} of {}", original.len());
        let restored = root.path().join(format!("restored-{head}"));
        let done = crate::run(&restored, &["--seal-key", key_arg, "restore", backup.to_str().unwrap()], "");
        assert_eq!(done.code, 0, "{}{}", done.stdout, done.stderr);
        assert!(
            done.stdout.contains("chain intact") && done.stdout.contains("1 day seals hold (signatures checked)"),
            "{}",
            done.stdout
        );
        // The identical chain: every event, hash and seal, as the original held them.
        let copy = crate::events(&restored, &["--limit", "10000"]);
        assert_eq!(copy, original[..head]);
        assert_eq!(header["head_hash"], original[head - 1]["hash"]);

        // The restored store goes on: a server on it takes new events on the same chain.
        let server = Server::start_with(&restored, &["--seal-key", key_arg]);
        let admin = server.admin.clone().expect("a restored store's first start makes an admin token");
        let (status, body) = command(
            &http,
            &server.url,
            &admin,
            "record-patrol-check",
            json!({"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "ok"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["events"][0]["global_position"], head as u64 + 1);
        drop(server);
        let verified = crate::run(&restored, &["--seal-key", key_arg, "verify"], "");
        assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
        assert!(verified.stdout.contains(&format!("ok: {} events", head + 1)), "{}", verified.stdout);
    }

    // A changed byte in a backup is refused, naming its line, and leaves no store behind.
    let text = std::fs::read_to_string(&by_cli).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut line: Value = serde_json::from_str(&lines[5]).unwrap();
    let record = line["record"].as_str().unwrap().to_owned();
    let flipped = if record.as_bytes()[10] == b'A' { 'B' } else { 'A' };
    line["record"] = Value::String(format!("{}{flipped}{}", &record[..10], &record[11..]));
    lines[5] = line.to_string();
    let tampered = root.path().join("tampered.ndjson");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let target = root.path().join("from-tampered");
    let refused = crate::run(&target, &["restore", tampered.to_str().unwrap()], "");
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("position 5"), "{}", refused.stderr);
    assert!(!target.exists(), "a refused restore leaves nothing behind");
}
