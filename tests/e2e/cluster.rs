//! Several `gridwatch serve --store nats` nodes on one JetStream stream of the three-node test
//! cluster (`./test.sh` starts it and passes its URLs in GRIDWATCH_TEST_NATS_URLS): each folds
//! the shared stream, commands on one entity from both nodes all land, and both answer the
//! same log and the same board.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::Server;

fn cluster_urls() -> String {
    std::env::var("GRIDWATCH_TEST_NATS_URLS").unwrap_or_else(|_| {
        panic!("GRIDWATCH_TEST_NATS_URLS is not set: run the tests with ./test.sh, which starts the test cluster")
    })
}

fn node(root: &std::path::Path, name: &str, stream: &str) -> Server {
    let urls = cluster_urls();
    Server::start_with(&root.join(name), &["--store", "nats", "--nats-url", &urls, "--nats-stream", stream])
}

/// Waits until `token` gets `status` from `path` on the node at `url`.
async fn until_status(http: &reqwest::Client, url: &str, token: &str, path: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = http.get(format!("{url}{path}")).bearer_auth(token).send().await.unwrap();
        if response.status() == status {
            return;
        }
        assert!(Instant::now() < deadline, "{url}{path} still answers {} (waited for {status})", response.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two nodes on a new stream of the test cluster; the admin token of the cluster's first
/// start (A's: B, started second, finds it in the shared bucket and prints none).
fn two_nodes(root: &std::path::Path) -> (String, Server, Server, String) {
    let stream = format!("E2E{}", uuid::Uuid::now_v7().simple()).to_uppercase();
    let a = node(root, "a", &stream);
    let b = node(root, "b", &stream);
    assert!(b.admin.is_none(), "only the cluster's first start prints an admin token");
    let admin = a.admin.clone().unwrap();
    (stream, a, b, admin)
}

async fn get(http: &reqwest::Client, url: &str, token: &str, path: &str) -> Value {
    let response = http.get(format!("{url}{path}")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_stream_take_commands_on_one_gate_and_answer_the_same_log() {
    let root = tempfile::tempdir().unwrap();
    // One first start for the cluster: A's admin token works on B.
    let (_stream, a, b, admin_a) = two_nodes(root.path());
    let admin_b = admin_a.clone();
    let http = reqwest::Client::new();
    crate::reliability::register_gate(&http, &a.url, &admin_a).await;
    // Everything registered through A (the gate, and the staff member registered last)
    // reaches B's views: then B can take checks at it.
    let head_of = |url: String| {
        let http = http.clone();
        async move {
            let ready: Value = http.get(format!("{url}/readyz")).send().await.unwrap().json().await.unwrap();
            ready["head_position"].as_u64().unwrap()
        }
    };
    let registered = head_of(a.url.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while head_of(b.url.clone()).await < registered {
        assert!(Instant::now() < deadline, "B never saw the registrations made on A (through {registered})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = get(&http, &b.url, &admin_b, "/api/v1/status").await;
    assert!(status.to_string().contains("longwu-main"), "B's board has the gate registered on A: {status}");

    // 16 clients on each node, all at once, on the same gate, without an expected version.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    let clients: Vec<_> = (0..32)
        .map(|k| {
            let (url, token) =
                if k % 2 == 0 { (a.url.clone(), admin_a.clone()) } else { (b.url.clone(), admin_b.clone()) };
            let (http, start) = (http.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let data = json!({"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "ok"});
                crate::reliability::command(&http, &url, &token, "record-patrol-check", data).await
            })
        })
        .collect();
    let mut positions = Vec::new();
    for client in clients {
        let (status, body) = client.await.unwrap();
        assert_eq!(status, 201, "a conflict with the other node is retried, never returned: {body}");
        positions.push(body["events"][0]["global_position"].as_u64().unwrap());
    }
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), 32, "every answer names its own position");

    // Both nodes end with the same log, record for record (hashes included), and the same board.
    let head = *positions.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (log_a, log_b) = loop {
        let log_a = get(&http, &a.url, &admin_a, "/api/v1/events?from=1&limit=10000").await;
        let log_b = get(&http, &b.url, &admin_b, "/api/v1/events?from=1&limit=10000").await;
        let len = |log: &Value| log.as_array().unwrap().len() as u64;
        if len(&log_a) >= head && len(&log_b) >= head {
            break (log_a, log_b);
        }
        assert!(Instant::now() < deadline, "the nodes did not both reach position {head}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(log_a, log_b, "the two nodes computed different logs");
    for position in &positions {
        let event = &log_a[(*position - 1) as usize];
        assert_eq!(event["event_type"], "PatrolCheckRecorded");
        assert_eq!(event["stream_id"], "checkpoint:longwu-main");
    }
    let versions: Vec<u64> = log_a
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["stream_id"] == "checkpoint:longwu-main")
        .map(|event| event["stream_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "the gate's versions are dense");
    let mut board_a = get(&http, &a.url, &admin_a, "/api/v1/status").await;
    let mut board_b = get(&http, &b.url, &admin_b, "/api/v1/status").await;
    // The moment each board was asked for is its own.
    board_a.as_object_mut().unwrap().remove("as_of");
    board_b.as_object_mut().unwrap().remove("as_of");
    assert!(board_a.to_string().contains("longwu-main"), "{board_a}");
    assert_eq!(board_a, board_b, "the two nodes' boards differ");
    // Each node checks its mirror and reads the stream again against it: the same chain.
    let verified_a = get(&http, &a.url, &admin_a, "/api/v1/verify").await;
    let verified_b = get(&http, &b.url, &admin_b, "/api/v1/verify").await;
    for verified in [&verified_a, &verified_b] {
        assert_eq!(verified["intact"], true, "{verified}");
        assert_eq!(verified["events"], head, "{verified}");
    }
    assert_eq!(verified_a["head_hash"], verified_b["head_hash"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shared_by_the_nodes_as_hashes_and_revoked_everywhere() {
    let root = tempfile::tempdir().unwrap();
    let (stream, a, b, admin) = two_nodes(root.path());
    let http = reqwest::Client::new();
    get(&http, &b.url, &admin, "/api/v1/status").await;

    // A token made on A works on B, and B lists it.
    let response = http
        .post(format!("{}/api/v1/tokens", a.url))
        .bearer_auth(&admin)
        .json(&json!({"role": "auditor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let made: Value = response.json().await.unwrap();
    let auditor = made["token"].as_str().unwrap().to_owned();
    until_status(&http, &b.url, &auditor, "/api/v1/verify", 200).await;
    let listed = get(&http, &b.url, &admin, "/api/v1/tokens").await;
    assert!(listed.to_string().contains(made["token_id"].as_str().unwrap()), "{listed}");

    // One made by `gridwatch token create` against the cluster works on both nodes.
    let urls = cluster_urls();
    let cluster_flags = ["--store", "nats", "--nats-url", &urls, "--nats-stream", &stream];
    let mut args = cluster_flags.to_vec();
    args.extend(["token", "create", "--role", "supervisor"]);
    let created = crate::run(&root.path().join("tool"), &args, "");
    assert_eq!(created.code, 0, "{}", created.stderr);
    let supervisor = created.stdout.lines().last().unwrap().trim().to_owned();
    assert!(supervisor.starts_with("gw_"), "{}", created.stdout);
    until_status(&http, &a.url, &supervisor, "/api/v1/status", 200).await;
    until_status(&http, &b.url, &supervisor, "/api/v1/status", 200).await;

    // Revoked on B: refused on A too, within a moment, and by the tool's listing.
    let token_id = made["token_id"].as_str().unwrap();
    let response = http.delete(format!("{}/api/v1/tokens/{token_id}", b.url)).bearer_auth(&admin).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    until_status(&http, &a.url, &auditor, "/api/v1/status", 401).await;
    until_status(&http, &b.url, &auditor, "/api/v1/status", 401).await;
    let mut args = cluster_flags.to_vec();
    args.extend(["token", "list"]);
    let listing = crate::run(&root.path().join("tool"), &args, "");
    assert_eq!(listing.code, 0, "{}", listing.stderr);
    assert!(!listing.stdout.contains(token_id), "{}", listing.stdout);
    assert!(listing.stdout.contains("supervisor"), "{}", listing.stdout);

    // Made and revoked at once on one node: refused there from the revocation's answer on
    // (the node applies its own changes in the bucket's order, not before it).
    for _ in 0..5 {
        let response = http
            .post(format!("{}/api/v1/tokens", a.url))
            .bearer_auth(&admin)
            .json(&json!({"role": "auditor"}))
            .send()
            .await
            .unwrap();
        let brief: Value = response.json().await.unwrap();
        let id = brief["token_id"].as_str().unwrap();
        let revoked = http.delete(format!("{}/api/v1/tokens/{id}", a.url)).bearer_auth(&admin).send().await.unwrap();
        assert!(revoked.status().is_success(), "{}", revoked.status());
        for _ in 0..20 {
            let response = http
                .get(format!("{}/api/v1/status", a.url))
                .bearer_auth(brief["token"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "a revoked token worked again on the node that revoked it");
        }
    }

    // The bucket holds the hashes, never a token's text; the revoked tokens' records are gone.
    let config = store_nats::NatsConfig::new(urls.split(',').map(str::to_owned).collect(), &stream, root.path());
    let bucket = store_nats::SharedBucket::open(&config, "TOKENS").await.unwrap();
    let entries = bucket.entries().await.unwrap();
    let records: Vec<&(String, Vec<u8>)> = entries.iter().filter(|(key, _)| key.starts_with("token.")).collect();
    assert_eq!(records.len(), 2, "the admin and the supervisor tokens: {entries:?}");
    for (key, value) in &entries {
        let text = String::from_utf8_lossy(value);
        for secret in [&admin, &auditor, &supervisor] {
            assert!(!text.contains(secret.as_str()), "{key} holds a token's text");
        }
        assert!(!key.contains(token_id), "the revoked token's record is still there: {key}");
    }
    for (_, value) in records {
        let record: Value = serde_json::from_slice(value).unwrap();
        assert_eq!(record["token_hash"].as_str().unwrap().len(), 64, "{record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sealing_the_same_day_at_once_make_one_seal() {
    let root = tempfile::tempdir().unwrap();
    let stream = format!("E2E{}", uuid::Uuid::now_v7().simple()).to_uppercase();
    let key = root.path().join("seal.key");
    let key_arg = key.to_str().unwrap();
    let made = crate::run(&root.path().join("tool"), &["--seal-key", key_arg, "seal-key", "create"], "");
    assert_eq!(made.code, 0, "{}", made.stderr);
    let urls = cluster_urls();
    let flags = ["--store", "nats", "--nats-url", &urls, "--nats-stream", &stream, "--seal-key", key_arg];
    let a = Server::start_with(&root.path().join("a"), &flags);
    let b = Server::start_with(&root.path().join("b"), &flags);
    let admin = a.admin.clone().unwrap();
    let http = reqwest::Client::new();
    crate::reliability::register_gate(&http, &a.url, &admin).await;
    for _ in 0..3 {
        let data = json!({"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "ok"});
        let (status, body) = crate::reliability::command(&http, &a.url, &admin, "record-patrol-check", data).await;
        assert_eq!(status, 201, "{body}");
    }
    let day = crate::http::today().to_string();
    // Both nodes hold the day's events before they seal.
    let head = get(&http, &a.url, &admin, "/api/v1/events?from=1&limit=100").await.as_array().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&http, &b.url, &admin, "/api/v1/events?from=1&limit=100").await.as_array().unwrap().len() < head {
        assert!(Instant::now() < deadline, "B never read A's events");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Eight sealers on each node, all at once.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let sealers: Vec<_> = (0..16)
        .map(|k| {
            let url = if k % 2 == 0 { a.url.clone() } else { b.url.clone() };
            let (http, start, admin, day) = (http.clone(), start.clone(), admin.clone(), day.clone());
            tokio::spawn(async move {
                start.wait().await;
                let response =
                    http.post(format!("{url}/api/v1/days/{day}/seal")).bearer_auth(&admin).send().await.unwrap();
                (response.status().as_u16(), response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut seal_ids = Vec::new();
    for sealer in sealers {
        let (status, body) = sealer.await.unwrap();
        match status {
            201 => seal_ids.push(body["event_id"].as_str().unwrap().to_owned()),
            200 => assert_eq!(body, Value::Null),
            other => panic!("sealing answered {other}: {body}"),
        }
    }
    seal_ids.sort();
    seal_ids.dedup();
    assert_eq!(seal_ids.len(), 1, "every sealer that made a seal names the same one: {seal_ids:?}");

    // One seal of the day, sequence 1, covering all of its events, on both nodes.
    for node in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let seals = loop {
            let seals = get(&http, &node.url, &admin, &format!("/api/v1/days/{day}/seals")).await;
            if !seals["seals"].as_array().unwrap().is_empty() {
                break seals;
            }
            assert!(Instant::now() < deadline, "{} never read the seal", node.url);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let listed = seals["seals"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{seals}");
        assert_eq!(listed[0]["event_id"].as_str().unwrap(), seal_ids[0]);
        assert_eq!(seals["unsealed_events"], 0, "{seals}");
        let log = get(&http, &node.url, &admin, "/api/v1/events?from=1&limit=100").await;
        let sealed = log.as_array().unwrap().iter().filter(|event| event["event_type"] == "DaySealed").count();
        assert_eq!(sealed, 1, "one seal in the log: {log}");
        let verified = get(&http, &node.url, &admin, "/api/v1/verify").await;
        assert_eq!(verified["intact"], true, "{verified}");
    }

    // The day's export from the node that may not have made the seal, checked offline with
    // the key the cluster publishes: as on sled.
    let export = http.get(format!("{}/api/v1/days/{day}/export", b.url)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(export.status(), 200);
    let file = root.path().join("day.ndjson");
    std::fs::write(&file, export.text().await.unwrap()).unwrap();
    let public = root.path().join("public.json");
    std::fs::write(&public, get(&http, &a.url, &admin, "/api/v1/seal-key").await.to_string()).unwrap();
    let nowhere = root.path().join("no-data-here");
    let checked = crate::run(
        &nowhere,
        &["verify", "--file", file.to_str().unwrap(), "--public-key", public.to_str().unwrap()],
        "",
    );
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    assert!(
        checked.stdout.contains("8 event(s), 1 seal(s)") && checked.stdout.contains("(the key given)"),
        "{}",
        checked.stdout
    );
    // And a changed byte fails, naming the line.
    let text = std::fs::read_to_string(&file).unwrap().replacen("guard-1", "guard-2", 1);
    std::fs::write(&file, text).unwrap();
    let tampered = crate::run(
        &nowhere,
        &["verify", "--file", file.to_str().unwrap(), "--public-key", public.to_str().unwrap()],
        "",
    );
    assert_eq!(tampered.code, 4, "{}", tampered.stdout);
    assert!(tampered.stderr.contains("line"), "{}", tampered.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_backup_restores_into_a_new_stream_with_the_identical_chain() {
    let root = tempfile::tempdir().unwrap();
    let stream = format!("E2E{}", uuid::Uuid::now_v7().simple()).to_uppercase();
    let a = node(root.path(), "a", &stream);
    let admin = a.admin.clone().unwrap();
    let http = reqwest::Client::new();
    crate::reliability::register_gate(&http, &a.url, &admin).await;
    for _ in 0..20 {
        let data = json!({"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "ok"});
        let (status, body) = crate::reliability::command(&http, &a.url, &admin, "record-patrol-check", data).await;
        assert_eq!(status, 201, "{body}");
    }
    let response = http.post(format!("{}/api/v1/backup", a.url)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let backup = root.path().join("backup.ndjson");
    std::fs::write(&backup, response.bytes().await.unwrap()).unwrap();
    let original = get(&http, &a.url, &admin, "/api/v1/events?from=1&limit=10000").await;
    let head = original.as_array().unwrap().len() as u64;

    // Restored into another stream of the cluster, from a node of its own.
    let copy = format!("{stream}COPY");
    let urls = cluster_urls();
    let restored = crate::run(
        &root.path().join("b"),
        &["--store", "nats", "--nats-url", &urls, "--nats-stream", &copy, "restore", backup.to_str().unwrap()],
        "",
    );
    assert_eq!(restored.code, 0, "{}{}", restored.stdout, restored.stderr);
    assert!(restored.stdout.contains("chain intact"), "{}", restored.stdout);
    // Into a stream that holds events already: refused, nothing written.
    let again = crate::run(
        &root.path().join("c"),
        &["--store", "nats", "--nats-url", &urls, "--nats-stream", &copy, "restore", backup.to_str().unwrap()],
        "",
    );
    assert_ne!(again.code, 0, "{}", again.stdout);
    assert!(again.stderr.contains("already holds events"), "{}", again.stderr);

    // A node on the copy answers the same log, hash for hash, and goes on from its end.
    let b = node(root.path(), "b", &copy);
    let admin_b = b.admin.clone().expect("the copy's first start makes its own admin token");
    let log = get(&http, &b.url, &admin_b, "/api/v1/events?from=1&limit=10000").await;
    assert_eq!(log, original, "the restored stream holds another log");
    let data = json!({"checkpoint_id": "longwu-main", "staff_id": "guard-1", "result": "ok"});
    let (status, body) = crate::reliability::command(&http, &b.url, &admin_b, "record-patrol-check", data).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["events"][0]["global_position"], head + 1);
    let verified = get(&http, &b.url, &admin_b, "/api/v1/verify").await;
    assert_eq!(verified["intact"], true, "{verified}");
    assert_eq!(verified["events"], head + 1, "{verified}");
}
