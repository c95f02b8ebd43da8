//! The NATS backend against the conformance suite, on the three-node test cluster that
//! `./test.sh` starts (`tests/nats/cluster.sh`), whose client URLs it passes in
//! `GRIDWATCH_TEST_NATS_URLS`. Each harness has a stream of its own, R3; each open of it a new
//! mirror, so that "after a restart" means a node that reads the whole stream again.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use store::conformance::Harness;
use store_nats::{NatsConfig, NatsStore};

struct NatsHarness {
    dir: tempfile::TempDir,
    name: String,
    opens: AtomicU32,
}

impl NatsHarness {
    fn new() -> NatsHarness {
        NatsHarness {
            dir: tempfile::tempdir().unwrap(),
            name: format!("T{}", uuid::Uuid::now_v7().simple()),
            opens: AtomicU32::new(0),
        }
    }
}

fn cluster_urls() -> Vec<String> {
    let urls = std::env::var("GRIDWATCH_TEST_NATS_URLS").unwrap_or_else(|_| {
        panic!(
            "GRIDWATCH_TEST_NATS_URLS is not set: run the tests with ./test.sh, which starts the \
             three-node test cluster (or start it yourself: tests/nats/cluster.sh start DIR, and \
             set the variable to the URLs it prints)"
        )
    });
    urls.split(',').map(str::to_owned).collect()
}

impl Harness for NatsHarness {
    type Store = NatsStore;
    async fn open(&self) -> NatsStore {
        let open = self.opens.fetch_add(1, Ordering::Relaxed);
        let config = NatsConfig::new(cluster_urls(), &self.name, self.dir.path().join(format!("mirror-{open}")));
        NatsStore::open(config).await.unwrap()
    }
}

store::conformance_tests!(NatsHarness::new());

/// A stream that exists with a limit set (which would delete acknowledged events as surely
/// as a delete), a dedupe window too short for appends to rely on, fewer replicas than asked
/// for, message TTLs or acknowledgements before the disk write, is refused, not used.
#[test]
fn a_stream_whose_limits_would_delete_events_is_refused() {
    store::conformance::runtime().block_on(async {
        use std::time::Duration;
        let addresses: Vec<async_nats::ServerAddr> = cluster_urls().iter().map(|url| url.parse().unwrap()).collect();
        let context = async_nats::jetstream::new(async_nats::connect(addresses).await.unwrap());
        use async_nats::jetstream::stream::Config;
        // (The async persist mode JetStream takes only on a stream of one replica without
        // atomic batches, which the store refuses for those.)
        type Setting = fn(&mut Config);
        let unsafe_settings: [(&str, Setting); 4] = [
            ("max_age", |config| config.max_age = Duration::from_secs(86_400)),
            ("a 10 s dedupe window", |config| config.duplicate_window = Duration::from_secs(10)),
            ("one replica", |config| config.num_replicas = 1),
            ("message TTLs", |config| config.allow_message_ttl = true),
        ];
        for (what, unsafe_setting) in unsafe_settings {
            let name = format!("L{}", uuid::Uuid::now_v7().simple());
            let mut config = Config {
                name: name.clone(),
                subjects: vec![format!("{name}.>")],
                num_replicas: 3,
                deny_delete: true,
                deny_purge: true,
                allow_atomic_publish: true,
                ..Default::default()
            };
            unsafe_setting(&mut config);
            context.create_stream(config).await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let refused = NatsStore::open(NatsConfig::new(cluster_urls(), &name, dir.path().join("mirror"))).await;
            let error = refused.expect_err(what).to_string();
            assert!(error.contains("settings that protect the log"), "{what}: {error}");
        }
    });
}

/// Credentials in a URL would show in process listings and logs: refused before connecting.
#[test]
fn a_url_with_credentials_in_it_is_refused() {
    store::conformance::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let urls = vec!["nats://user:secret@127.0.0.1:1".to_owned()];
        let error =
            NatsStore::open(NatsConfig::new(urls, "X", dir.path().join("mirror"))).await.err().unwrap().to_string();
        assert!(error.contains("GRIDWATCH_NATS_CREDS") && !error.contains("secret"), "{error}");
    });
}

/// Two nodes appending the same event at the same moment (two sealers of one day; a client
/// retrying on another node) both get its one position back: JetStream answers the second
/// "duplicate message id is in process" (10158) while the first is in flight, and that is an
/// append whose outcome is looked for, never an error.
#[test]
fn the_same_event_appended_on_two_nodes_at_once_is_stored_once_and_both_get_its_position() {
    store::conformance::runtime().block_on(async {
        use store::{EntityId, EventStore, ExpectedVersion};
        let harness = NatsHarness::new();
        let (a, b) = (harness.open().await, harness.open().await);
        let rounds = 40;
        for round in 0..rounds {
            let stream = EntityId::new(format!("s-{round}")).unwrap();
            let event = store::conformance::note("twice");
            let (from_a, from_b) = tokio::join!(
                a.append(&stream, ExpectedVersion::NoStream, vec![event.clone()]),
                b.append(&stream, ExpectedVersion::NoStream, vec![event.clone()]),
            );
            let (from_a, from_b) = (from_a.unwrap().unwrap(), from_b.unwrap().unwrap());
            assert_eq!(from_a.events, from_b.events, "round {round}: both name the one stored event");
            assert!(from_a.deduplicated != from_b.deduplicated, "round {round}: one of them stored it");
        }
        let head = a.head_position().await.unwrap();
        assert_eq!(head, rounds, "each event once");
        let all = a.read_all(1, 1000).await.unwrap();
        let mut ids: Vec<_> = all.iter().map(|event| event.event_id).collect();
        ids.dedup();
        assert_eq!(ids.len() as u64, rounds);
    });
}

/// A node's mirror read from one stream is refused for another (named in its folder), and
/// one that holds more than its stream (deleted and made again) too, each with what to do;
/// nothing is appended through either.
#[test]
fn a_mirror_of_another_stream_or_another_log_is_refused() {
    store::conformance::runtime().block_on(async {
        use store::{EntityId, EventStore, ExpectedVersion};
        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("mirror");
        let (first, second) =
            (format!("M{}", uuid::Uuid::now_v7().simple()), format!("N{}", uuid::Uuid::now_v7().simple()));
        let store = NatsStore::open(NatsConfig::new(cluster_urls(), &first, &mirror)).await.unwrap();
        let stream = EntityId::new("gate-1").unwrap();
        for _ in 0..3 {
            store.append(&stream, ExpectedVersion::Any, vec![store::conformance::note("x")]).await.unwrap().unwrap();
        }
        drop(store);
        let other = NatsStore::open(NatsConfig::new(cluster_urls(), &second, &mirror)).await.err().unwrap().to_string();
        assert!(other.contains(&format!("read from the stream {first}, not {second}")), "{other}");
        let addresses: Vec<async_nats::ServerAddr> = cluster_urls().iter().map(|url| url.parse().unwrap()).collect();
        let context = async_nats::jetstream::new(async_nats::connect(addresses).await.unwrap());
        assert!(context.get_stream(&second).await.is_err(), "refused before anything was made in the cluster");

        // The first stream deleted (an operator's doing) and made again, empty.
        context.delete_stream(&first).await.unwrap();
        let again = NatsStore::open(NatsConfig::new(cluster_urls(), &first, &mirror)).await.err().unwrap().to_string();
        assert!(again.contains("holds 3 events") && again.contains("only 0"), "{again}");
    });
}

/// A stream that loses acknowledged events under a running node (an operator deletes it and
/// makes it again; a restore from an older copy) is refused by the node's mirror, which says
/// why, rather than followed: the node would chain new events onto ones that are gone. One
/// made again with as many events as the mirror holds, but other ones, is refused at open.
#[test]
fn a_stream_that_lost_acknowledged_events_is_refused_not_followed() {
    store::conformance::runtime().block_on(async {
        use store::{EntityId, EventStore, ExpectedVersion};
        let dir = tempfile::tempdir().unwrap();
        let name = format!("L{}", uuid::Uuid::now_v7().simple());
        let config = |mirror: &str| NatsConfig::new(cluster_urls(), &name, dir.path().join(mirror));
        let store = NatsStore::open(config("mirror")).await.unwrap();
        let stream = EntityId::new("gate-1").unwrap();
        for _ in 0..3 {
            store.append(&stream, ExpectedVersion::Any, vec![store::conformance::note("x")]).await.unwrap().unwrap();
        }
        // A node that only reads: its mirror finds out on its own, while the stream is quiet.
        let watcher = NatsStore::open(config("watcher-mirror")).await.unwrap();
        while watcher.head_position().await.unwrap() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let addresses: Vec<async_nats::ServerAddr> = cluster_urls().iter().map(|url| url.parse().unwrap()).collect();
        let context = async_nats::jetstream::new(async_nats::connect(addresses).await.unwrap());
        context.delete_stream(&name).await.unwrap();
        // Made again by another node, which appends one event: shorter than the mirror.
        let other = NatsStore::open(config("other-mirror")).await.unwrap();
        other.append(&stream, ExpectedVersion::Any, vec![store::conformance::note("y")]).await.unwrap().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let refusal = loop {
            match store.append(&stream, ExpectedVersion::Any, vec![store::conformance::note("z")]).await {
                Err(error) => break error.to_string(),
                Ok(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Ok(outcome) => panic!("still appending to a stream that lost events: {outcome:?}"),
            }
        };
        assert!(refusal.contains("refuses the stream") && refusal.contains("lost acknowledged"), "{refusal}");
        drop(store);
        // Asked until it refuses, with an expected version no stream has: refused by the
        // rules until then, so nothing is published and only the mirror's own check (once
        // the stream has been quiet for 2 s) can stop it.
        let own = EntityId::new("watcher").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let noticed = loop {
            let asked = watcher.append(&own, ExpectedVersion::Exact(1_000_000), vec![store::conformance::note("w")]);
            match asked.await {
                Err(error) => break error.to_string(),
                Ok(refused) => {
                    assert!(refused.is_err(), "an impossible expected version was taken: {refused:?}");
                    assert!(std::time::Instant::now() < deadline, "the watcher still follows the stream");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        };
        assert!(noticed.contains("refuses the stream") && noticed.contains("before this node's mirror"), "{noticed}");
        // Now as long as the mirror, with other events at its positions: refused at open.
        // (The refused node's own attempt may have landed: an error to its caller, in the
        // stream all the same.)
        let last = || async { context.get_stream(&name).await.unwrap().info().await.unwrap().state.last_sequence };
        while last().await < 3 {
            other.append(&stream, ExpectedVersion::Any, vec![store::conformance::note("y")]).await.unwrap().unwrap();
        }
        assert_eq!(last().await, 3);
        let reopened = NatsStore::open(config("mirror")).await.err().unwrap().to_string();
        assert!(
            reopened.contains("is not of the stream") && reopened.contains("where this node's mirror holds"),
            "{reopened}"
        );
    });
}

/// A multi-event append is one atomic batch in the stream, and the other nodes see it whole
/// too: their mirrors hold a batch's messages back until its last one is there, so a reader
/// never sees part of an append (here: appends of three events, and a reader on another
/// node that only ever finds a log of a multiple of three).
#[test]
fn another_node_never_sees_part_of_an_append() {
    store::conformance::runtime().block_on(async {
        use store::{EntityId, EventStore, ExpectedVersion};
        let harness = NatsHarness::new();
        let (writer, reader) = (harness.open().await, harness.open().await);
        let appends = 60;
        let target = 3 * appends;
        let watching = tokio::spawn(async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let mut seen = std::collections::BTreeSet::new();
            loop {
                let head = reader.head_position().await.unwrap();
                seen.insert(head);
                if head == target || std::time::Instant::now() > deadline {
                    break seen;
                }
                tokio::task::yield_now().await;
            }
        });
        for round in 0..appends {
            let stream = EntityId::new(format!("gate-{}", round % 4)).unwrap();
            let events = (0..3).map(|k| store::conformance::note(&format!("{round}.{k}"))).collect();
            writer.append(&stream, ExpectedVersion::Any, events).await.unwrap().unwrap();
        }
        let seen = watching.await.unwrap();
        assert_eq!(seen.last(), Some(&target), "the reader caught up");
        let partial: Vec<u64> = seen.iter().copied().filter(|head| head % 3 != 0).collect();
        assert!(partial.is_empty(), "the reader saw part of an append at {partial:?} (of {} heads seen)", seen.len());
    });
}

/// A follower of the shared bucket proves that it holds every change by reading back a
/// heartbeat it wrote; one that is held up (its applying of changes blocked here, with the
/// connection healthy: the heartbeat is taken by the cluster but not read back) cannot prove
/// it, and the age of its last proof grows until it has caught up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_follower_that_has_not_applied_every_change_cannot_prove_it_is_current() {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let name = format!("B{}", uuid::Uuid::now_v7().simple());
    let config = NatsConfig::new(cluster_urls(), &name, dir.path().join("unused"));
    let writer = store_nats::SharedBucket::open(&config, "TOKENS").await.unwrap();
    writer.put("token.a", b"a".to_vec()).await.unwrap();
    let follower = store_nats::SharedBucket::open(&config, "TOKENS").await.unwrap();
    let held_up = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<HashMap<String, Option<Vec<u8>>>>> = Arc::default();
    let (applied, gate) = (seen.clone(), held_up.clone());
    follower
        .follow(move |key, value| {
            // Held up off the runtime's workers (a worker blocked in a task can leave the
            // runtime's timers and sockets undriven).
            tokio::task::block_in_place(|| {
                while gate.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
            applied.lock().unwrap().insert(key.to_owned(), value.map(<[u8]>::to_vec));
        })
        .await
        .unwrap();
    let holds = |key: &str| seen.lock().unwrap().get(key).cloned().flatten().is_some();
    assert!(holds("token.a"));
    assert!(follower.unconfirmed_for().unwrap() < Duration::from_secs(3), "proven when it starts following");

    held_up.store(true, Ordering::SeqCst);
    writer.put("token.b", b"b".to_vec()).await.unwrap();
    // Held up, it never proves itself current again: the age of its last proof only grows
    // (a proof that passed would bring it back under a few seconds, and this would time out).
    let held_since = Instant::now();
    while follower.unconfirmed_for().unwrap() < Duration::from_secs(8) {
        assert!(!holds("token.b"));
        let unconfirmed = follower.unconfirmed_for().unwrap();
        assert!(
            held_since.elapsed() < Duration::from_secs(30),
            "proven current without the change ({unconfirmed:?} ago)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!holds("token.b"));

    held_up.store(false, Ordering::SeqCst);
    let released = Instant::now();
    while !holds("token.b") || follower.unconfirmed_for().unwrap() > Duration::from_secs(3) {
        assert!(released.elapsed() < Duration::from_secs(15), "not proven again after catching up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A removal through the writer is read back by it before it returns, and reaches the
    // follower.
    writer.delete("token.a").await.unwrap();
    let removed = Instant::now();
    while holds("token.a") {
        assert!(removed.elapsed() < Duration::from_secs(10), "the removal did not reach the follower");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
