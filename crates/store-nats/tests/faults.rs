//! The NATS backend while the cluster loses a node: a three-node cluster of its own
//! (tests/nats/cluster.sh on other ports), two API nodes (two stores, two mirrors) appending
//! at once, the stream leader killed with SIGKILL mid-write, then (separately) a follower,
//! then the leader paused with SIGSTOP and resumed (it must catch up), then the leader cut off
//! the network (each node in a network namespace of its own) and healed; and a follower of the
//! shared key-value bucket (the API tokens) whose server is paused.
//! Clients retry a failed append with the same event ids, as the API's clients do. Every
//! acknowledged event must be in the log afterwards, once, in one order, with the chain
//! intact on both API nodes, and appends must go on after a new leader is elected.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use store::conformance::note;
use store::{EntityId, EventStore, ExpectedVersion};
use store_nats::{NatsConfig, NatsStore, SharedBucket};

/// A cluster of three nodes on ports from `base`, stopped when dropped.
struct Cluster {
    dir: PathBuf,
    urls: Vec<String>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/nats/cluster.sh")
}

impl Cluster {
    /// With `settings` for cluster.sh (NATS_MAX_FILE_STORE, NATS_NETNS).
    fn start(dir: &Path, base: u16, settings: &[(&str, &str)]) -> Cluster {
        let mut command = std::process::Command::new(script());
        command.args(["start", dir.to_str().unwrap()]).env("NATS_PORT_BASE", base.to_string());
        command.envs(settings.iter().copied());
        let output = command.output().unwrap();
        // Made first, so that a start that failed half way is stopped too (when it drops).
        let mut cluster = Cluster { dir: dir.to_owned(), urls: Vec::new() };
        assert!(output.status.success(), "cluster.sh start: {}", String::from_utf8_lossy(&output.stderr));
        cluster.urls = String::from_utf8(output.stdout).unwrap().trim().split(',').map(str::to_owned).collect();
        cluster
    }

    fn kill(&self, node: &str) {
        self.signal(node, "-KILL");
    }

    fn signal(&self, node: &str, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.join(format!("{node}.pid"))).unwrap();
        let sent = std::process::Command::new("kill").args([signal, pid.trim()]).status().unwrap();
        assert!(sent.success(), "kill {signal} {node}");
    }

    /// Cuts `node` off the network (`heal: false`) or joins it again (a NATS_NETNS cluster).
    fn network(&self, node: &str, heal: bool) {
        let action = if heal { "heal" } else { "cut" };
        let index = node.trim_start_matches('n');
        let done = std::process::Command::new(script()).args([action, self.dir.to_str().unwrap(), index]).status();
        assert!(done.unwrap().success(), "cluster.sh {action} {node}");
    }

    /// The stream's last sequence as `node`'s own replica holds it (its monitoring port).
    fn replica_last_sequence(&self, node: &str, stream: &str) -> Option<u64> {
        let monitor = std::fs::read_to_string(self.dir.join(format!("{node}.monitor"))).unwrap();
        let url = format!("{}/jsz?accounts=true&streams=true", monitor.trim());
        let output = std::process::Command::new("curl").args(["-sf", "-m", "2", &url]).output().unwrap();
        let jsz: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        jsz["account_details"].as_array()?.iter().find_map(|account| {
            account["stream_detail"].as_array()?.iter().find(|detail| detail["name"] == stream)?["state"]["last_seq"]
                .as_u64()
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script()).args(["stop", self.dir.to_str().unwrap()]).status();
    }
}

/// The server name of the stream's leader.
async fn leader(urls: &[String], stream: &str) -> String {
    let addresses: Vec<async_nats::ServerAddr> = urls.iter().map(|url| url.parse().unwrap()).collect();
    let client = async_nats::connect(addresses).await.unwrap();
    let context = async_nats::jetstream::new(client);
    let mut stream = context.get_stream(stream).await.unwrap();
    stream.info().await.unwrap().cluster.as_ref().and_then(|cluster| cluster.leader.clone()).unwrap()
}

/// Appends from `writers` tasks on `stores` (round-robin) until `stop`; each append is
/// retried with the same event id until it is acknowledged. Returns event id -> position.
async fn write_until(
    stores: &[NatsStore],
    writers: usize,
    stop: Arc<AtomicBool>,
) -> (HashMap<uuid::Uuid, u64>, Duration) {
    let tasks: Vec<_> = (0..writers)
        .map(|k| {
            let (store, stop) = (stores[k % stores.len()].clone(), stop.clone());
            tokio::spawn(async move {
                let stream = EntityId::new(format!("gate-{}", k % 3)).unwrap();
                let mut acked = HashMap::new();
                let mut longest_gap = Duration::ZERO;
                let mut last_ack = Instant::now();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let event = note(&format!("writer {k} event {i}"));
                    loop {
                        match store.append(&stream, ExpectedVersion::Any, vec![event.clone()]).await {
                            Ok(Ok(committed)) => {
                                acked.insert(event.event_id, committed.events[0].global_position);
                                longest_gap = longest_gap.max(last_ack.elapsed());
                                last_ack = Instant::now();
                                break;
                            }
                            Ok(Err(rejection)) => {
                                panic!("an append without an expected version was refused: {rejection}")
                            }
                            Err(error) => {
                                assert!(
                                    last_ack.elapsed() < Duration::from_secs(60),
                                    "no append acknowledged for 60 s: {error}"
                                );
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    i += 1;
                }
                (acked, longest_gap)
            })
        })
        .collect();
    let mut acked = HashMap::new();
    let mut gap = Duration::ZERO;
    for task in tasks {
        let (one, longest) = task.await.unwrap();
        acked.extend(one);
        gap = gap.max(longest);
    }
    (acked, gap)
}

/// Every acknowledged event at its position, once; both mirrors equal and verified.
async fn check(stores: &[NatsStore], acked: &HashMap<uuid::Uuid, u64>) {
    let head = *acked.values().max().unwrap();
    for store in stores {
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.head_position().await.unwrap() < head {
            assert!(Instant::now() < deadline, "a node's mirror did not reach {head}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut all = Vec::new();
        loop {
            let page = store.read_all(all.len() as u64 + 1, 10_000).await.unwrap();
            if page.is_empty() {
                break;
            }
            all.extend(page);
        }
        let mut seen = HashMap::new();
        for event in &all {
            assert!(seen.insert(event.event_id, event.global_position).is_none(), "event {} twice", event.event_id);
        }
        for (id, position) in acked {
            assert_eq!(seen.get(id), Some(position), "acknowledged event {id} not at its position");
        }
        let report = store.verify().await.unwrap();
        assert_eq!(report.problem, None);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    while (a.len() as u64) < head {
        a.extend(stores[0].read_records(a.len() as u64 + 1, 10_000).await.unwrap());
        b.extend(stores[1].read_records(b.len() as u64 + 1, 10_000).await.unwrap());
    }
    assert_eq!(a, b, "the two API nodes computed different records or chains");
}

/// A cluster of its own on ports from `base`, a stream on it, two API nodes (stores) and 8
/// writers appending through them until `stop`.
struct Writing {
    cluster: Cluster,
    name: String,
    stores: Vec<NatsStore>,
    stop: Arc<AtomicBool>,
    writing: Option<tokio::task::JoinHandle<(HashMap<uuid::Uuid, u64>, Duration)>>,
    /// Last: fields drop in order, and the cluster's stop reads its pid files from here.
    _root: tempfile::TempDir,
}

impl Writing {
    async fn start(base: u16, settings: &[(&str, &str)]) -> Writing {
        let root = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(&root.path().join("cluster"), base, settings);
        let name = format!("F{}", uuid::Uuid::now_v7().simple());
        let open = |k: usize| {
            NatsStore::open(NatsConfig::new(cluster.urls.clone(), &name, root.path().join(format!("mirror-{k}"))))
        };
        let stores = vec![open(0).await.unwrap(), open(1).await.unwrap()];
        let stop = Arc::new(AtomicBool::new(false));
        let writing = tokio::spawn({
            let (stores, stop) = (stores.clone(), stop.clone());
            async move { write_until(&stores, 8, stop).await }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        Writing { cluster, name, stores, stop, writing: Some(writing), _root: root }
    }

    /// Waits until `node`'s own replica of the stream holds `head` (30 s at most).
    async fn catches_up(&self, node: &str, head: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let replica = self.cluster.replica_last_sequence(node, &self.name);
            if replica.is_some_and(|last| last >= head) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{node} did not catch up: its replica is at {replica:?}, the log at {head}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until 100 appends have landed past `held_at` (60 s at most; an election takes
    /// 6-7 s on a quiet machine, up to 16 s on a loaded one) and returns the head then.
    async fn goes_on_past(&self, held_at: u64) -> u64 {
        let since = Instant::now();
        let deadline = since + Duration::from_secs(60);
        loop {
            let head = self.stores[0].head_position().await.unwrap();
            if head > held_at + 100 || Instant::now() >= deadline {
                eprintln!("{} appends landed in {:?}", head - held_at, since.elapsed());
                return head;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the writers and checks what they had acknowledged (returned).
    async fn finish(&mut self) -> HashMap<uuid::Uuid, u64> {
        self.stop.store(true, Ordering::Relaxed);
        let (acked, gap) = self.writing.take().unwrap().await.unwrap();
        eprintln!("{} appends acknowledged; longest pause between acknowledgements {gap:?}", acked.len());
        assert!(!acked.is_empty());
        check(&self.stores, &acked).await;
        acked
    }
}

async fn kill_mid_write(base: u16, pick: impl Fn(&str) -> String) {
    let mut writing = Writing::start(base, &[]).await;
    let leader = leader(&writing.cluster.urls, &writing.name).await;
    let victim = pick(&leader);
    writing.cluster.kill(&victim);
    eprintln!("killed {victim} (the leader was {leader})");
    let held_at = writing.stores[0].head_position().await.unwrap();
    // Writes go on once the remaining two agree on a leader: measured 6-7 s on a quiet
    // machine, up to 16 s on a loaded one, so wait for it (60 s at most) rather than a
    // fixed time.
    writing.goes_on_past(held_at).await;
    let acked = writing.finish().await;
    assert!(
        acked.values().any(|position| *position > held_at + 100),
        "appends did not go on after {victim} was killed (at position {held_at})"
    );
    // And appends go on now.
    let more =
        writing.stores[0].append(&EntityId::new("gate-0").unwrap(), ExpectedVersion::Any, vec![note("after")]).await;
    assert!(matches!(more, Ok(Ok(_))), "{more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_mid_write_loses_no_acknowledged_event() {
    kill_mid_write(15222, |leader| leader.to_owned()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_follower_mid_write_loses_no_acknowledged_event() {
    kill_mid_write(15522, |leader| ["n0", "n1", "n2"].into_iter().find(|node| *node != leader).unwrap().to_owned())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_replaced_and_catches_up_when_resumed() {
    let base = 15822;
    let mut writing = Writing::start(base, &[]).await;
    let paused = leader(&writing.cluster.urls, &writing.name).await;
    writing.cluster.signal(&paused, "-STOP");
    let held_at = writing.stores[0].head_position().await.unwrap();
    eprintln!("paused {paused} at position {held_at}");
    // The other two elect a leader and take writes without the paused node.
    let during = writing.goes_on_past(held_at).await;
    assert!(during > held_at + 100, "no append landed while {paused} was paused ({held_at} -> {during})");
    writing.cluster.signal(&paused, "-CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acked = writing.finish().await;
    writing.catches_up(&paused, *acked.values().max().unwrap()).await;
    let more =
        writing.stores[1].append(&EntityId::new("gate-1").unwrap(), ExpectedVersion::Any, vec![note("after")]).await;
    assert!(matches!(more, Ok(Ok(_))), "{more:?}");
}

/// The stream leader cut off the network (its namespace's link down: the other nodes and the
/// API nodes' connections to it see nothing more) until the others have taken 100 appends,
/// then joined again. The two others elect a leader and take the writes; the cut node, a
/// minority of one, acknowledges nothing the others do not hold (every acknowledged event is
/// there afterwards, once, at its position); healed, it catches up, and appends go on
/// through every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_the_network_is_replaced_and_catches_up_when_healed() {
    let mut writing = Writing::start(16422, &[("NATS_NETNS", "1")]).await;
    let cut = leader(&writing.cluster.urls, &writing.name).await;
    writing.cluster.network(&cut, false);
    let held_at = writing.stores[0].head_position().await.unwrap();
    eprintln!("cut {cut} off at position {held_at}");
    let during = writing.goes_on_past(held_at).await;
    assert!(during > held_at + 100, "appends did not go on while {cut} was cut off ({held_at} -> {during})");
    assert_eq!(writing.cluster.replica_last_sequence(&cut, &writing.name), None, "{cut} is reachable while cut off");
    writing.cluster.network(&cut, true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acked = writing.finish().await;
    writing.catches_up(&cut, *acked.values().max().unwrap()).await;
    // Every node leads or follows again: appends through each of their client ports.
    for url in &writing.cluster.urls {
        let dir = tempfile::tempdir().unwrap();
        let config = NatsConfig::new(vec![url.clone()], &writing.name, dir.path().join("mirror"));
        let store = NatsStore::open(config).await.unwrap();
        let more = store.append(&EntityId::new("gate-2").unwrap(), ExpectedVersion::Any, vec![note("healed")]).await;
        assert!(matches!(more, Ok(Ok(_))), "through {url}: {more:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_refuses_appends_clearly_and_takes_them_again_once_it_has_room() {
    let base = 16122;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cluster");
    let cluster = Cluster::start(&dir, base, &[("NATS_MAX_FILE_STORE", "200000")]);
    let name = format!("D{}", uuid::Uuid::now_v7().simple());
    let store =
        NatsStore::open(NatsConfig::new(cluster.urls.clone(), &name, root.path().join("mirror"))).await.unwrap();
    let gate = EntityId::new("gate-0").unwrap();
    let mut acked = 0u64;
    let refusal = loop {
        match store.append(&gate, ExpectedVersion::Any, vec![note(&"x".repeat(400))]).await {
            Ok(Ok(_)) => acked += 1,
            Ok(Err(rejection)) => panic!("refused: {rejection}"),
            Err(error) => break error,
        }
        assert!(acked < 10_000, "200 kB took 10,000 appends");
    };
    eprintln!("full after {acked} appends: {refusal}");
    assert!(matches!(refusal, store::StoreError::StorageFull(_)), "{refusal:?}");
    // Nothing of the refused append was written; the log is intact and readable.
    assert_eq!(store.head_position().await.unwrap(), acked);
    assert_eq!(store.verify().await.unwrap().problem, None);
    // More room (the limit raised, the configuration reloaded): appends go on, no restart.
    for node in ["n0", "n1", "n2"] {
        let config = dir.join(format!("{node}.conf"));
        let text =
            std::fs::read_to_string(&config).unwrap().replace("max_file_store: 200000", "max_file_store: 100000000");
        std::fs::write(&config, text).unwrap();
        cluster.signal(node, "-HUP");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.append(&gate, ExpectedVersion::Any, vec![note("after")]).await {
            Ok(Ok(committed)) => {
                assert_eq!(committed.events[0].global_position, acked + 1);
                break;
            }
            other => assert!(Instant::now() < deadline, "appends did not resume: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A node follows the shared bucket (the API tokens) through one NATS server, which is then
/// paused (SIGSTOP: its connections stay open and say nothing). A key is removed through
/// another server meanwhile. At every moment after, either the follower has applied the
/// removal, or its last proof of holding every change began before the removal was taken
/// (the server trusts its tokens only for a bounded time after that proof): a proof that
/// began after the removal and ended must have brought it. (The client may reconnect to
/// another server while its own is paused, and then the removal arrives.) Resumed, the
/// follower holds the removal and proves it is current again. (That a follower which has not
/// applied a change cannot prove it is current whatever its connection does is tested on the
/// shared cluster: nats_backend.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_follower_whose_server_is_paused_never_claims_to_be_current_without_a_removal() {
    let root = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&root.path().join("cluster"), 16722, &[]);
    let name = format!("B{}", uuid::Uuid::now_v7().simple());
    let config = |url: &str| NatsConfig::new(vec![url.to_owned()], &name, root.path().join("unused"));
    let writer = SharedBucket::open(&config(&cluster.urls[0]), "TOKENS").await.unwrap();
    writer.put("token.a", b"record a".to_vec()).await.unwrap();
    let follower = SharedBucket::open(&config(&cluster.urls[2]), "TOKENS").await.unwrap();
    assert_eq!(follower.unconfirmed_for(), None, "not following yet");
    let seen: Arc<std::sync::Mutex<HashMap<String, Option<Vec<u8>>>>> = Arc::default();
    let applied = seen.clone();
    follower
        .follow(move |key, value| {
            applied.lock().unwrap().insert(key.to_owned(), value.map(<[u8]>::to_vec));
        })
        .await
        .unwrap();
    let held = || seen.lock().unwrap().get("token.a").cloned().flatten().is_some();
    assert!(held());
    assert!(follower.unconfirmed_for().unwrap() < Duration::from_secs(3), "proven when it starts following");

    cluster.signal("n2", "-STOP");
    let paused = Instant::now();
    // Through n0 (during an election if n2 led the bucket's stream: retried).
    loop {
        match writer.delete("token.a").await {
            Ok(()) => break,
            Err(error) => {
                assert!(paused.elapsed() < Duration::from_secs(40), "the removal was not taken: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let removed = Instant::now();
    let mut proven_since = false;
    while removed.elapsed() < Duration::from_secs(10) {
        // The proof's start first, then what the follower holds.
        let proof_began = Instant::now() - follower.unconfirmed_for().unwrap();
        let after_removal = proof_began > removed;
        assert!(!(after_removal && held()), "a proof that began after the removal ended without it");
        proven_since |= after_removal;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "while paused: the removal {}, a proof {}",
        if held() { "not applied" } else { "applied (the client reached another server)" },
        if proven_since { "ended since" } else { "not ended since" }
    );

    cluster.signal("n2", "-CONT");
    let resumed = Instant::now();
    while held() || follower.unconfirmed_for().unwrap() > Duration::from_secs(3) {
        assert!(
            resumed.elapsed() < Duration::from_secs(45),
            "not current {:?} after resuming: removal applied {}, last proof {:?} ago",
            resumed.elapsed(),
            !held(),
            follower.unconfirmed_for()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("current again {:?} after resuming", resumed.elapsed());
}
