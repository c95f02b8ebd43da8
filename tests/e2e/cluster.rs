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

async fn get(http: &reqwest::Client, url: &str, token: &str, path: &str) -> Value {
    let response = http.get(format!("{url}{path}")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_stream_take_commands_on_one_gate_and_answer_the_same_log() {
    let root = tempfile::tempdir().unwrap();
    let stream = format!("E2E{}", uuid::Uuid::now_v7().simple()).to_uppercase();
    let a = node(root.path(), "a", &stream);
    let b = node(root.path(), "b", &stream);
    let (admin_a, admin_b) = (a.admin.clone().unwrap(), b.admin.clone().unwrap());
    let http = reqwest::Client::new();
    crate::reliability::register_gate(&http, &a.url, &admin_a).await;
    // The gate registered through A reaches B's views: then B can take checks at it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = get(&http, &b.url, &admin_b, "/api/v1/status").await;
        if status.to_string().contains("longwu-main") {
            break;
        }
        assert!(Instant::now() < deadline, "B never saw the gate registered on A: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

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
