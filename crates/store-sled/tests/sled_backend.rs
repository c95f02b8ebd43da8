//! The sled backend against the conformance suite, plus what only the sled backend has:
//! index repair on open, tamper detection, and detection of a log that sled's recovery cut
//! short.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use store::conformance::{Harness, note};
use store::{EventStore, ExpectedVersion, StoreError, chain_hash};
use store_sled::raw::{open_raw_sled, sled_data_file};
use store_sled::{SledConfig, SledStore, verify_dir};

struct SledHarness {
    dir: tempfile::TempDir,
}

impl SledHarness {
    fn new() -> SledHarness {
        SledHarness { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn config(&self) -> SledConfig {
        let mut config = SledConfig::new(self.dir.path());
        config.cache_capacity_bytes = 8 * 1024 * 1024;
        config
    }
}

impl Harness for SledHarness {
    type Store = SledStore;
    async fn open(&self) -> SledStore {
        SledStore::open(self.config()).expect("open")
    }
}

store::conformance_tests!(SledHarness::new());

/// Every acknowledged append is named by the chain-head file by the time it is answered (the
/// file is written and synced with the group, not later in the background), with appenders
/// sharing group commits.
#[test]
fn the_chain_head_file_names_every_append_before_it_is_answered() {
    let harness = SledHarness::new();
    let store = SledStore::open(harness.config()).unwrap();
    let dir = harness.dir.path().to_owned();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(async {
        let appenders: Vec<_> = (0..16)
            .map(|k| {
                let (store, dir) = (store.clone(), dir.clone());
                tokio::spawn(async move {
                    let stream = store::EntityId::new(format!("s{k}")).unwrap();
                    for i in 0..50 {
                        let committed = store
                            .append(&stream, ExpectedVersion::Any, vec![note(&format!("{k}/{i}"))])
                            .await
                            .unwrap()
                            .unwrap();
                        let named = store_sled::raw::read_chain_head(&dir).unwrap().unwrap().global_position;
                        let position = committed.events[0].global_position;
                        assert!(named >= position, "answered position {position}, but the head file names {named}");
                    }
                })
            })
            .collect();
        for appender in appenders {
            appender.await.unwrap();
        }
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Appends `count` single-event appends, round-robin over three streams, texts "event N".
fn fill(harness: &SledHarness, count: usize) {
    let store = SledStore::open(harness.config()).unwrap();
    runtime().block_on(async {
        for i in 1..=count {
            let stream = store::EntityId::new(format!("s{}", i % 3)).unwrap();
            store.append(&stream, ExpectedVersion::Any, vec![note(&format!("event {i}"))]).await.unwrap().unwrap();
        }
    });
}

/// Every event of the store in `harness` (opened for the read, closed after it).
fn stored_events(harness: &SledHarness) -> Vec<events_schema::RecordedEvent> {
    let store = SledStore::open(harness.config()).unwrap();
    runtime().block_on(store.read_all(1, 1_000)).unwrap()
}

/// Runs `change` on the raw sled trees of a closed store.
fn with_raw_sled(harness: &SledHarness, change: impl FnOnce(&sled::Tree, &sled::Tree)) {
    let db = open_raw_sled(harness.dir.path()).unwrap();
    change(&db.open_tree("log").unwrap(), &db.open_tree("index").unwrap());
    db.flush().unwrap();
}

fn problem_position(harness: &SledHarness) -> Option<u64> {
    verify_dir(harness.config()).unwrap().problem.map(|problem| problem.global_position)
}

#[test]
fn a_lost_or_stale_index_is_rebuilt_from_the_log_on_open() {
    let harness = SledHarness::new();
    fill(&harness, 30);
    // As after a crash between the log batch and the index batch: no index at all.
    with_raw_sled(&harness, |_, index| index.clear().unwrap());
    assert_eq!(problem_position(&harness), None);
    // An index that claims more than the log holds is thrown away and rebuilt.
    with_raw_sled(&harness, |_, index| {
        index.insert(b"m:indexed_through", &1_000u64.to_be_bytes()).unwrap();
    });
    let store = SledStore::open(harness.config()).unwrap();
    runtime().block_on(async {
        let stream = store::EntityId::new("s1").unwrap();
        assert_eq!(store.read_stream(&stream, 1, 100).await.unwrap().len(), 10);
        let next =
            store.append(&stream, ExpectedVersion::Exact(10), vec![note("after repair")]).await.unwrap().unwrap();
        assert_eq!(next.events[0].global_position, 31);
    });
    assert_eq!(store.verify_blocking().unwrap().problem, None);
}

#[test]
fn a_changed_payload_byte_is_named_by_verify() {
    let harness = SledHarness::new();
    fill(&harness, 10);
    assert_eq!(problem_position(&harness), None);
    with_raw_sled(&harness, |log, _| {
        let key = 7u64.to_be_bytes();
        let mut value = log.get(key).unwrap().unwrap().to_vec();
        let at = value.windows(7).position(|w| w == b"event 7").unwrap();
        value[at + 6] = b'9';
        log.insert(key, value).unwrap();
    });
    let report = verify_dir(harness.config()).unwrap();
    let problem = report.problem.expect("the change is found");
    assert_eq!(problem.global_position, 7, "{}", problem.reason);
    assert_eq!(report.events, 6);
}

#[test]
fn a_changed_record_with_a_recomputed_hash_breaks_the_next_link() {
    let harness = SledHarness::new();
    fill(&harness, 10);
    with_raw_sled(&harness, |log, _| {
        // Each single-event append is a log entry of one frame: [length][record][hash].
        let mut value = log.get(4u64.to_be_bytes()).unwrap().unwrap().to_vec();
        let before = log.get(3u64.to_be_bytes()).unwrap().unwrap();
        let previous: [u8; 32] = before[before.len() - 32..].try_into().unwrap();
        let record_end = value.len() - 32;
        let at = value.windows(7).position(|w| w == b"event 4").unwrap();
        value[at + 6] = b'5';
        let hash = chain_hash(&previous, 4, &value[4..record_end]);
        value[record_end..].copy_from_slice(&hash);
        log.insert(4u64.to_be_bytes(), value).unwrap();
    });
    assert_eq!(problem_position(&harness), Some(5), "the rehashed record's successor no longer links");
}

#[test]
fn a_log_cut_short_is_reported_never_presented_as_whole() {
    let harness = SledHarness::new();
    fill(&harness, 12);
    // What sled's recovery does when a byte of the data file is damaged: drop the tail.
    with_raw_sled(&harness, |log, _| {
        for position in 9..=12u64 {
            log.remove(position.to_be_bytes()).unwrap();
        }
    });
    assert_eq!(problem_position(&harness), Some(9));
    match SledStore::open(harness.config()) {
        Err(StoreError::Truncated { head_position: 12, log_end: 8 }) => {}
        other => panic!("opened a shortened log: {other:?}"),
    }
}

#[test]
fn a_damaged_byte_in_sleds_data_file_is_detected() {
    let harness = SledHarness::new();
    fill(&harness, 300);
    let path = sled_data_file(harness.dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"event 150";
    let mut damaged = 0;
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        bytes[at + found + 2] ^= 0x20;
        damaged += 1;
        at += found + needle.len();
    }
    assert!(damaged > 0, "the record is not in the data file");
    std::fs::write(&path, &bytes).unwrap();
    match verify_dir(harness.config()) {
        Ok(report) => {
            let problem = report.problem.expect("damage went unnoticed");
            eprintln!("verify: position {}: {}", problem.global_position, problem.reason);
            assert!(problem.global_position <= 150, "named {} after the damaged record", problem.global_position);
        }
        Err(error) => eprintln!("verify refused to open the damaged store: {error}"),
    }
}

#[test]
fn large_appends_span_several_log_entries_and_read_back_from_anywhere() {
    let harness = SledHarness::new();
    let text = "x".repeat(300);
    let events: Vec<_> = (0..1_000).map(|i| note(&format!("{i:04} {text}"))).collect();
    let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    {
        let store = SledStore::open(harness.config()).unwrap();
        runtime().block_on(async {
            store
                .append(&store::EntityId::new("before").unwrap(), ExpectedVersion::Any, vec![note("first")])
                .await
                .unwrap()
                .unwrap();
            let big = store
                .append(&store::EntityId::new("big").unwrap(), ExpectedVersion::Any, events)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(big.events.last().unwrap().global_position, 1_001);
            store
                .append(&store::EntityId::new("after").unwrap(), ExpectedVersion::Any, vec![note("last")])
                .await
                .unwrap()
                .unwrap();
        });
    }
    with_raw_sled(&harness, |log, index| {
        assert!(log.len() >= 10, "1,000 events of 300 bytes should span several entries, found {}", log.len());
        index.clear().unwrap();
    });
    let store = SledStore::open(harness.config()).unwrap();
    assert_eq!(store.verify_blocking().unwrap().problem, None);
    runtime().block_on(async {
        for from in [1u64, 2, 250, 777, 1_001, 1_002] {
            let page = store.read_all(from, 7).await.unwrap();
            let expected: Vec<u64> = (from..(from + 7).min(1_003)).collect();
            assert_eq!(page.iter().map(|e| e.global_position).collect::<Vec<_>>(), expected);
        }
        let big = store::EntityId::new("big").unwrap();
        let page = store.read_stream(&big, 500, 600).await.unwrap();
        assert_eq!(page.len(), 501);
        assert_eq!(page.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids[499..]);
        // A retry of one event from the middle of the big append is recognised.
        let retry = vec![store::conformance::note("ignored")].into_iter().map(|mut e| {
            e.event_id = ids[600];
            e
        });
        let retried = store.append(&big, ExpectedVersion::Any, retry.collect()).await.unwrap().unwrap();
        assert!(retried.deduplicated);
        assert_eq!(retried.events[0].global_position, 602);
    });
}

#[test]
fn index_entries_moved_from_memory_to_sled_stay_visible_throughout() {
    // More events than the in-memory index overlay holds, so its entries move to sled's
    // tree while appends and reads go on.
    let harness = SledHarness::new();
    let store = SledStore::open(harness.config()).unwrap();
    let first_ids = runtime().block_on(async {
        let mut first_ids = Vec::new();
        for round in 0..12u64 {
            for stream in ["a", "b"] {
                let events: Vec<_> = (0..500).map(|i| note(&format!("{stream} {round} {i}"))).collect();
                first_ids.push(events[0].event_id);
                let stream = store::EntityId::new(stream).unwrap();
                let committed =
                    store.append(&stream, ExpectedVersion::Exact(round * 500), events).await.unwrap().unwrap();
                assert_eq!(committed.events[0].stream_version, round * 500 + 1);
            }
            let a = store.read_stream(&store::EntityId::new("a").unwrap(), 1, 100_000).await.unwrap();
            assert_eq!(a.len() as u64, (round + 1) * 500, "round {round}");
            assert!(a.windows(2).all(|w| w[1].stream_version == w[0].stream_version + 1));
        }
        first_ids
    });
    assert_eq!(store.verify_blocking().unwrap().problem, None);
    runtime().block_on(async {
        let b = store::EntityId::new("b").unwrap();
        let page = store.read_stream(&b, 4_999, 3).await.unwrap();
        assert_eq!(page.iter().map(|e| e.stream_version).collect::<Vec<_>>(), [4_999, 5_000, 5_001]);
        let mut retry = note("retry");
        retry.event_id = first_ids[1];
        let retried = store.append(&b, ExpectedVersion::Any, vec![retry]).await.unwrap().unwrap();
        assert!(retried.deduplicated);
        assert_eq!(retried.events[0].global_position, 501);
    });
    drop(store);
    let store = SledStore::open(harness.config()).unwrap();
    assert_eq!(store.verify_blocking().unwrap().problem, None);
}

#[test]
fn verify_on_a_live_store_reports_no_false_problem() {
    let harness = SledHarness::new();
    let store = SledStore::open(harness.config()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = store.clone();
            runtime.spawn(async move {
                let stream = store::EntityId::new(format!("w{writer}")).unwrap();
                for i in 0..150 {
                    let events = (0..1 + i % 3).map(|_| note("live")).collect();
                    store.append(&stream, ExpectedVersion::Any, events).await.unwrap().unwrap();
                }
            })
        })
        .collect();
    let mut checks = 0;
    while !writers.iter().all(|writer| writer.is_finished()) {
        let report = store.verify_blocking().unwrap();
        assert_eq!(report.problem, None, "after {} events", report.events);
        checks += 1;
    }
    runtime.block_on(async {
        for writer in writers {
            writer.await.unwrap();
        }
    });
    assert!(checks > 0);
    assert_eq!(store.verify_blocking().unwrap().events, 8 * (50 + 50 * 2 + 50 * 3));
}

#[test]
fn the_largest_events_never_make_sled_write_unsynced_blob_files() {
    // sled writes pages above a quarter segment to blob files that it never fsyncs; the
    // store's page sizes must stay below that, even with the largest events allowed.
    let harness = SledHarness::new();
    let store = SledStore::open(harness.config()).unwrap();
    let big = "x".repeat(store::EVENT_SIZE_BYTES_MAX - 400);
    runtime().block_on(async {
        let stream = store::EntityId::new("big").unwrap();
        for round in 0..40 {
            let events = (0..8).map(|i| note(&format!("{round} {i} {big}"))).collect();
            store.append(&stream, ExpectedVersion::Any, events).await.unwrap().unwrap();
        }
    });
    drop(store);
    let blobs: Vec<_> = std::fs::read_dir(harness.dir.path().join("sled").join("blobs")).unwrap().collect();
    assert!(blobs.is_empty(), "sled wrote {} blob files", blobs.len());
    assert_eq!(verify_dir(harness.config()).unwrap().problem, None);
}

#[test]
fn a_millisecond_with_thousands_of_event_ids_spreads_over_several_buckets() {
    let harness = SledHarness::new();
    // 2,500 ids of one UUIDv7 millisecond: more than one index bucket holds.
    let id_of = |n: u128| uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n);
    let stream = store::EntityId::new("same-millisecond").unwrap();
    {
        let store = SledStore::open(harness.config()).unwrap();
        runtime().block_on(async {
            for batch in 0..3u128 {
                let events = (0..1000u128.min(2500 - batch * 1000))
                    .map(|i| {
                        let mut event = note("bucketed");
                        event.event_id = id_of(batch * 1000 + i + 1);
                        event
                    })
                    .collect();
                store.append(&stream, ExpectedVersion::Any, events).await.unwrap().unwrap();
            }
        });
    }
    with_raw_sled(&harness, |_, index| {
        let buckets = index.scan_prefix(b"e").count();
        assert!(buckets >= 3, "2,500 ids in {buckets} buckets");
        assert!(index.scan_prefix(b"e").all(|entry| entry.unwrap().1.len() <= 16 * 1024));
    });
    let store = SledStore::open(harness.config()).unwrap();
    assert_eq!(store.verify_blocking().unwrap().problem, None);
    runtime().block_on(async {
        for n in [1u128, 910, 911, 1_999, 2_500] {
            let mut retry = note("retry");
            retry.event_id = id_of(n);
            let retried = store.append(&stream, ExpectedVersion::Any, vec![retry]).await.unwrap().unwrap();
            assert!(retried.deduplicated, "id {n}");
            assert_eq!(retried.events[0].global_position, n as u64);
        }
    });
}

/// Appends one event for each of `ids`, in appends of up to 1,000, and closes the store (so
/// that its index entries move into sled).
fn append_with_ids(harness: &SledHarness, stream: &str, ids: &[uuid::Uuid]) {
    let store = SledStore::open(harness.config()).unwrap();
    let stream = store::EntityId::new(stream).unwrap();
    runtime().block_on(async {
        for chunk in ids.chunks(1_000) {
            let events = chunk
                .iter()
                .map(|id| {
                    let mut event = note("identified");
                    event.event_id = *id;
                    event
                })
                .collect();
            store.append(&stream, ExpectedVersion::Any, events).await.unwrap().unwrap();
        }
    });
}

/// The event-id buckets of a closed store: (least id, the ids it holds), in key order. Each
/// holds at most 16 KB.
fn event_id_buckets(harness: &SledHarness) -> Vec<(uuid::Uuid, Vec<uuid::Uuid>)> {
    let mut buckets = Vec::new();
    with_raw_sled(harness, |_, index| {
        for entry in index.scan_prefix(b"e") {
            let (key, bucket) = entry.unwrap();
            assert_eq!(key.len(), 17, "an event-id bucket key is `e` and an id");
            assert!(bucket.len() <= 16 * 1024 && bucket.len() % 24 == 0, "bucket of {} bytes", bucket.len());
            let ids = bucket.chunks(24).map(|entry| uuid::Uuid::from_slice(&entry[..16]).unwrap()).collect();
            buckets.push((uuid::Uuid::from_slice(&key[1..]).unwrap(), ids));
        }
    });
    buckets
}

/// Retries each of `ids` and asserts that it comes back as the event at its position.
fn assert_retries_are_deduplicated(harness: &SledHarness, stream: &str, ids: &[(uuid::Uuid, u64)]) {
    let store = SledStore::open(harness.config()).unwrap();
    let stream = store::EntityId::new(stream).unwrap();
    runtime().block_on(async {
        for (id, position) in ids {
            let mut retry = note("retry");
            retry.event_id = *id;
            let retried = store.append(&stream, ExpectedVersion::Any, vec![retry]).await.unwrap().unwrap();
            assert!(retried.deduplicated, "id {id}");
            assert_eq!(retried.events[0].global_position, *position, "id {id}");
        }
    });
    assert_eq!(store.verify_blocking().unwrap().problem, None);
}

/// A real log's ids are spread over its time (one a millisecond at most): they share
/// buckets all the same, a few hundred to one, so the index's sled entries do not grow one
/// for one with the log.
#[test]
fn event_ids_a_millisecond_apart_share_index_buckets() {
    let harness = SledHarness::new();
    let ids: Vec<uuid::Uuid> = (0..5_000u64)
        .map(|n| {
            let millis = 1_700_000_000_000 + n * 29_000;
            uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                millis / 1_000,
                (millis % 1_000) as u32 * 1_000_000,
            ))
        })
        .collect();
    append_with_ids(&harness, "spread", &ids);
    let buckets = event_id_buckets(&harness);
    assert!(buckets.len() <= 8, "5,000 ids in {} buckets", buckets.len());
    assert_eq!(buckets.iter().map(|(_, ids)| ids.len()).sum::<usize>(), 5_000);
    let sample: Vec<_> = [0usize, 681, 682, 2_500, 4_999].iter().map(|&n| (ids[n], n as u64 + 1)).collect();
    assert_retries_are_deduplicated(&harness, "spread", &sample);
}

/// Ids that arrive after later ones (a phone that was offline) land in the bucket that
/// covers them, splitting it when it is full; every id stays in the bucket with the greatest
/// key at or below it, and each is found at its position.
#[test]
fn event_ids_that_arrive_out_of_order_split_full_buckets_and_are_all_found() {
    let harness = SledHarness::new();
    let id = |n: u128| uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | (n << 20));
    // The even ids first (in two closes of the store), then the odd ones among them.
    let evens: Vec<_> = (0..1_500u128).map(|n| id(2 * n)).collect();
    let odds: Vec<_> = (0..1_500u128).map(|n| id(2 * n + 1)).collect();
    append_with_ids(&harness, "late", &evens[..700]);
    append_with_ids(&harness, "late", &evens[700..]);
    let before = event_id_buckets(&harness).len();
    append_with_ids(&harness, "late", &odds);
    let buckets = event_id_buckets(&harness);
    assert!(buckets.len() > before, "the odd ids split the full buckets ({before} -> {})", buckets.len());
    for (k, (least, ids)) in buckets.iter().enumerate() {
        let next = buckets.get(k + 1).map(|(next, _)| *next);
        assert!(ids.contains(least), "bucket {least} holds its own key");
        assert!(
            ids.iter().all(|id| id >= least && next.is_none_or(|next| *id < next)),
            "bucket {least} holds ids of another"
        );
    }
    assert_eq!(buckets.iter().map(|(_, ids)| ids.len()).sum::<usize>(), 3_000);
    let positions: Vec<_> = evens
        .iter()
        .enumerate()
        .map(|(n, id)| (*id, n as u64 + 1))
        .chain(odds.iter().enumerate().map(|(n, id)| (*id, 1_501 + n as u64)))
        .collect();
    assert_retries_are_deduplicated(&harness, "late", &positions);
}

/// An index whose event-id buckets are in the layout of format 2 (by millisecond) is
/// rebuilt from the log on open, in this layout.
#[test]
fn an_index_of_millisecond_buckets_is_rebuilt_in_least_id_buckets() {
    let harness = SledHarness::new();
    let ids: Vec<_> = (0..40).map(|_| uuid::Uuid::now_v7()).collect();
    append_with_ids(&harness, "upgraded", &ids);
    let events = stored_events(&harness);
    with_raw_sled(&harness, |_, index| {
        let buckets: Vec<_> = index.scan_prefix(b"e").keys().map(|key| key.unwrap()).collect();
        for key in buckets {
            index.remove(key).unwrap();
        }
        // What format 2 wrote: `e`, the id's millisecond, a bucket number -> the rest of
        // each id and its position.
        for event in &events {
            let bytes = event.event_id.as_bytes();
            let mut key = vec![b'e'];
            key.extend_from_slice(&bytes[..6]);
            key.extend_from_slice(&(event.global_position as u16).to_be_bytes());
            let mut value = bytes[6..].to_vec();
            value.extend_from_slice(&event.global_position.to_be_bytes());
            index.insert(key, value).unwrap();
        }
        index.insert(b"m:index_format", &2u64.to_be_bytes()).unwrap();
    });
    drop(SledStore::open(harness.config()).unwrap());
    let buckets = event_id_buckets(&harness);
    assert_eq!(buckets.len(), 1, "40 ids in one bucket");
    let ids: Vec<_> = events.iter().map(|event| (event.event_id, event.global_position)).collect();
    assert_retries_are_deduplicated(&harness, "upgraded", &ids);
}

/// An index cleared in batches (a format upgrade of a large log) by a process that stopped
/// midway claims more than any log holds: the next open clears the rest, more keys than one
/// batch takes, and rebuilds it whole.
#[test]
fn an_index_whose_clearing_was_cut_short_is_cleared_and_rebuilt_on_open() {
    let harness = SledHarness::new();
    let ids: Vec<_> = (0..60).map(|_| uuid::Uuid::now_v7()).collect();
    append_with_ids(&harness, "cleared", &ids);
    let events = stored_events(&harness);
    let index_keys = |harness: &SledHarness| {
        let mut keys = Vec::new();
        with_raw_sled(harness, |_, index| keys = index.iter().keys().map(|key| key.unwrap().to_vec()).collect());
        keys
    };
    let whole = index_keys(&harness);
    with_raw_sled(&harness, |_, index| {
        // What is left of an old layout's keys (one per event, as format 2 had) when the
        // clear stopped: 25,000, and the claim that the clear is under way.
        for k in 0..25_000u64 {
            let mut key = b"e".to_vec();
            key.extend_from_slice(&k.to_be_bytes());
            index.insert(key, &k.to_be_bytes()).unwrap();
        }
        index.insert(b"m:indexed_through", &u64::MAX.to_be_bytes()).unwrap();
    });
    drop(SledStore::open(harness.config()).unwrap());
    assert_eq!(index_keys(&harness), whole, "the index is as it was built, nothing of the old keys left");
    let ids: Vec<_> = events.iter().map(|event| (event.event_id, event.global_position)).collect();
    assert_retries_are_deduplicated(&harness, "cleared", &ids);
}

/// A chain-head file that lags the log (its writer died between the log's sync and the head
/// file's) is brought forward on open, once the tail's links are checked; the head file of a
/// store at rest is left as it is (an open that reads writes nothing of its own).
#[test]
fn a_lagging_chain_head_is_brought_forward_on_open_and_one_at_rest_is_left_alone() {
    let harness = SledHarness::new();
    fill(&harness, 10);
    let events = stored_events(&harness);
    let at =
        |position: usize| store_sled::ChainHead { global_position: position as u64, hash: events[position - 1].hash };
    let head_path = harness.dir.path().join("chain-head");
    store_sled::raw::write_chain_head(harness.dir.path(), at(6)).unwrap();

    drop(SledStore::open(harness.config()).unwrap());
    assert_eq!(store_sled::raw::read_chain_head(harness.dir.path()).unwrap(), Some(at(10)));
    let at_rest = std::fs::read(&head_path).unwrap();
    drop(SledStore::open(harness.config()).unwrap());
    assert_eq!(std::fs::read(&head_path).unwrap(), at_rest, "an open at rest rewrote the head file");
    // Appends still move it.
    fill(&harness, 1);
    assert_eq!(store_sled::raw::read_chain_head(harness.dir.path()).unwrap().unwrap().global_position, 11);
}

#[test]
fn recorded_at_never_goes_backwards_and_verify_names_a_record_that_does() {
    let harness = SledHarness::new();
    fill(&harness, 10);
    let events = stored_events(&harness);
    assert!(events.windows(2).all(|pair| pair[0].recorded_at < pair[1].recorded_at), "recorded_at strictly increases");
    // Forge a consistent tail whose position 6 was recorded before position 5: every link
    // and the chain-head file agree, so only the order of recorded_at can tell.
    with_raw_sled(&harness, |log, _| {
        let mut previous = events[4].hash;
        for event in &events[5..] {
            let recorded_at = if event.global_position == 6 {
                events_schema::Timestamp::from_microsecond(events[4].recorded_at.as_microsecond() - 1_000).unwrap()
            } else {
                event.recorded_at
            };
            let new = event.to_new_event();
            let mut record = Vec::new();
            events_schema::encode_record(&event.stream_id, event.stream_version, recorded_at, &new, &mut record);
            let hash = chain_hash(&previous, event.global_position, &record);
            let mut value = (record.len() as u32).to_be_bytes().to_vec();
            value.extend_from_slice(&record);
            value.extend_from_slice(&hash);
            log.insert(event.global_position.to_be_bytes(), value).unwrap();
            previous = hash;
        }
        store_sled::raw::write_chain_head(
            harness.dir.path(),
            store_sled::ChainHead { global_position: 10, hash: previous },
        )
        .unwrap();
    });
    let report = verify_dir(harness.config()).unwrap();
    let problem = report.problem.expect("a backwards recorded_at is a problem");
    assert_eq!(problem.global_position, 6, "{}", problem.reason);
    assert!(problem.reason.contains("recorded_at"), "{}", problem.reason);
}

#[test]
fn the_occurred_at_index_is_rebuilt_after_a_crash_and_its_damage_is_named_by_verify() {
    let harness = SledHarness::new();
    fill(&harness, 30);
    let all_by_time = |store: &SledStore| {
        runtime().block_on(async {
            let from = events_schema::Timestamp::from_microsecond(0).unwrap();
            let until = events_schema::Timestamp::now();
            let later = events_schema::Timestamp::from_microsecond(until.as_microsecond() + 3_600_000_000).unwrap();
            store.read_occurred(from, later, None, 1_000).await.unwrap().len()
        })
    };
    // A crash that left only part of the index: the last entries (and the marker) are
    // behind the log; opening re-indexes the tail, by time too.
    with_raw_sled(&harness, |_, index| {
        index.insert(b"m:indexed_through", &10u64.to_be_bytes()).unwrap();
        let hours: Vec<_> = index.scan_prefix(b"o").keys().map(|key| key.unwrap()).collect();
        for key in hours {
            index.remove(key).unwrap();
        }
    });
    let store = SledStore::open(harness.config()).unwrap();
    // Positions 11..=30 were re-indexed; 1..=10 lost their time entries with the damage.
    assert_eq!(all_by_time(&store), 20);
    let report = store.verify_blocking().unwrap();
    let problem = report.problem.expect("events missing from the occurred-at index are named");
    assert_eq!(problem.global_position, 1, "{}", problem.reason);
    assert!(problem.reason.contains("when it happened"), "{}", problem.reason);
    drop(store);
    // Without any index at all (a crash before the first index batch), all of it comes back.
    with_raw_sled(&harness, |_, index| index.clear().unwrap());
    let store = SledStore::open(harness.config()).unwrap();
    assert_eq!(all_by_time(&store), 30);
    assert_eq!(store.verify_blocking().unwrap().problem, None);
}

#[test]
fn a_store_indexed_before_the_occurred_at_index_existed_is_reindexed_on_open() {
    let harness = SledHarness::new();
    fill(&harness, 25);
    // What an older gridwatch left: streams and event ids indexed, no occurred-at buckets,
    // no format key.
    with_raw_sled(&harness, |_, index| {
        index.remove(b"m:index_format").unwrap();
        let hours: Vec<_> = index.scan_prefix(b"o").keys().map(|key| key.unwrap()).collect();
        assert!(!hours.is_empty(), "this store had occurred-at buckets to remove");
        for key in hours {
            index.remove(key).unwrap();
        }
    });
    let store = SledStore::open(harness.config()).unwrap();
    let found = runtime().block_on(async {
        let from = events_schema::Timestamp::from_microsecond(0).unwrap();
        let later = events_schema::Timestamp::from_microsecond(
            events_schema::Timestamp::now().as_microsecond() + 3_600_000_000,
        )
        .unwrap();
        store.read_occurred(from, later, None, 1_000).await.unwrap().len()
    });
    assert_eq!(found, 25, "every event is found by when it happened after the upgrade");
    assert_eq!(store.verify_blocking().unwrap().problem, None);
}

/// `stream_end` names each stream's last version and its position, and (0, 0) for a stream
/// with no events, also after a reopen (from the index in sled, not the writer's memory).
#[test]
fn a_streams_end_is_its_last_version_at_its_position() {
    let harness = SledHarness::new();
    fill(&harness, 7);
    let store = SledStore::open(harness.config()).unwrap();
    let end = |id: &str| store.stream_end(&store::EntityId::new(id).unwrap()).unwrap();
    // Events 1..=7 round-robin over s1, s2, s0: s1 holds 1, 4, 7; s2 holds 2, 5; s0 3, 6.
    assert_eq!(end("s1"), (3, 7));
    assert_eq!(end("s2"), (2, 5));
    assert_eq!(end("s0"), (2, 6));
    assert_eq!(end("none"), (0, 0));
    runtime().block_on(async {
        let s2 = store::EntityId::new("s2").unwrap();
        let committed = store.append(&s2, ExpectedVersion::Exact(2), vec![note("more")]).await.unwrap().unwrap();
        assert_eq!(committed.events[0].global_position, 8);
    });
    assert_eq!(end("s2"), (3, 8));
}

/// The sizes of the log tree's entries of a closed store, in log order.
fn log_entry_sizes(harness: &SledHarness) -> Vec<usize> {
    let mut sizes = Vec::new();
    with_raw_sled(harness, |log, _| sizes = log.iter().values().map(|value| value.unwrap().len()).collect());
    sizes
}

/// The log's entries are full (16 KiB or more), but for those at its end that the writer has
/// not merged yet: fewer than two full entries' worth. Returns how many entries there are.
fn entries_are_merged(harness: &SledHarness) -> usize {
    const FULL: usize = 16 * 1024;
    let sizes = log_entry_sizes(harness);
    let tail = sizes.iter().rev().take_while(|size| **size < FULL).count();
    let (merged, unmerged) = sizes.split_at(sizes.len() - tail);
    assert!(merged.iter().all(|size| *size >= FULL), "a small entry before a full one: {sizes:?}");
    let unmerged_bytes: usize = unmerged.iter().sum();
    assert!(unmerged_bytes < 2 * FULL, "{} small entries at the end, {unmerged_bytes} bytes", unmerged.len());
    sizes.len()
}

/// Appends of one event each (a commit group each, as a server takes them at a district's
/// rate) end up in full log entries, not one entry apiece: the writer merges the small ones
/// once they are durable, and an open goes on with what the last process left (a script
/// appending one event per process). Every event reads back in order, and the log verifies.
#[test]
fn single_event_appends_are_merged_into_full_log_entries() {
    let harness = SledHarness::new();
    let text = |i: usize| format!("patrol check {i}: the gate is clear, no tricycles queueing at the entrance");
    let store = SledStore::open(harness.config()).unwrap();
    runtime().block_on(async {
        for i in 1..=600 {
            let stream = store::EntityId::new(format!("gate-{}", i % 7)).unwrap();
            store.append(&stream, ExpectedVersion::Any, vec![note(&text(i))]).await.unwrap().unwrap();
        }
    });
    drop(store);
    let entries = entries_are_merged(&harness);
    assert!(entries < 60, "600 single-event appends left {entries} log entries");
    // One process per append: 100 of them hold more than a full entry.
    for i in 601..=700 {
        let store = SledStore::open(harness.config()).unwrap();
        let stream = store::EntityId::new(format!("gate-{}", i % 7)).unwrap();
        runtime().block_on(store.append(&stream, ExpectedVersion::Any, vec![note(&text(i))])).unwrap().unwrap();
    }
    let entries_after = entries_are_merged(&harness);
    assert!(
        entries_after < entries + 50,
        "100 appends in processes of their own: {entries} -> {entries_after} entries"
    );

    let store = SledStore::open(harness.config()).unwrap();
    runtime().block_on(async {
        let events = store.read_all(1, 1_000).await.unwrap();
        assert_eq!(events.len(), 700);
        for (k, event) in events.iter().enumerate() {
            assert_eq!(event.global_position, k as u64 + 1);
            let events_schema::Event::FieldNoteRecorded(recorded) = &event.event else { panic!("{event:?}") };
            assert_eq!(recorded.text, text(k + 1));
        }
        // From anywhere, and by stream.
        for from in [1, 2, 37, 83, 84, 85, 299, 599, 640, 700] {
            let read = store.read_all(from, 50).await.unwrap();
            assert_eq!(read.first().unwrap().global_position, from);
            assert!(read.windows(2).all(|pair| pair[1].global_position == pair[0].global_position + 1));
        }
        let gate = store.read_stream(&store::EntityId::new("gate-3").unwrap(), 1, 1_000).await.unwrap();
        assert_eq!(gate.len(), 100);
        assert_eq!(store.verify().await.unwrap().problem, None);
    });
}

/// Readers, a subscription and `verify` running while the writer merges entries under them
/// never see a gap, a duplicate or a false problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_subscriptions_and_verify_never_see_a_gap_while_entries_are_merged() {
    use futures::StreamExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let harness = SledHarness::new();
    let store = SledStore::open(harness.config()).unwrap();
    const EVENTS: u64 = 3_000;
    let writing = tokio::spawn({
        let store = store.clone();
        async move {
            // Four appenders: groups of one to four events, entries far under the target.
            let tasks: Vec<_> = (0..4u64)
                .map(|appender| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        for i in 0..EVENTS / 4 {
                            let stream = store::EntityId::new(format!("gate-{appender}")).unwrap();
                            let text = format!("check {i} by appender {appender}");
                            store.append(&stream, ExpectedVersion::Any, vec![note(&text)]).await.unwrap().unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
    });
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let subscription = tokio::spawn({
        let stream = store.subscribe(1);
        async move {
            let events: Vec<_> = stream.take(EVENTS as usize).collect().await;
            events.into_iter().map(|event| event.unwrap().global_position).collect::<Vec<_>>()
        }
    });
    let reading = tokio::spawn({
        let (store, done) = (store.clone(), done.clone());
        async move {
            let (mut reads, mut verifies) = (0u64, 0u64);
            let mut from = 1;
            while !done.load(Ordering::Relaxed) {
                let head = store.head_position().await.unwrap();
                if head == 0 {
                    tokio::task::yield_now().await;
                    continue;
                }
                from = from % head + 1;
                let read = store.read_all(from, 200).await.unwrap();
                assert_eq!(read.first().map(|event| event.global_position), Some(from));
                assert!(read.windows(2).all(|pair| pair[1].global_position == pair[0].global_position + 1));
                reads += 1;
                if reads % 10 == 0 {
                    assert_eq!(store.verify().await.unwrap().problem, None);
                    verifies += 1;
                }
                from += 37;
            }
            (reads, verifies)
        }
    });
    writing.await.unwrap();
    done.store(true, Ordering::Relaxed);
    let (reads, verifies) = reading.await.unwrap();
    assert!(reads > 50 && verifies > 5, "{reads} reads, {verifies} verifies");
    let positions = subscription.await.unwrap();
    assert_eq!(positions, (1..=EVENTS).collect::<Vec<_>>());
    drop(store);
    let entries = entries_are_merged(&harness);
    assert!(entries < EVENTS as usize / 10, "{EVENTS} events in small groups left {entries} log entries");
}

/// A full entry between small ones ends a run: the small entries before it that do not
/// fill an entry stay as they are (a merge joins consecutive entries only), and those after
/// it are merged as before. Every event reads back, in order.
#[test]
fn a_full_entry_between_small_ones_ends_a_run_and_the_ones_after_it_are_merged() {
    const FULL: usize = 16 * 1024;
    let harness = SledHarness::new();
    let text = |i: usize| format!("patrol check {i}: two courier tricycles waiting outside the east gate");
    let store = SledStore::open(harness.config()).unwrap();
    let stream = store::EntityId::new("gate-east").unwrap();
    runtime().block_on(async {
        for i in 1..=5 {
            store.append(&stream, ExpectedVersion::Any, vec![note(&text(i))]).await.unwrap().unwrap();
        }
        let bulk = (6..=505).map(|i| note(&text(i))).collect();
        store.append(&stream, ExpectedVersion::Any, bulk).await.unwrap().unwrap();
        for i in 506..=1_105 {
            store.append(&stream, ExpectedVersion::Any, vec![note(&text(i))]).await.unwrap().unwrap();
        }
    });
    drop(store);
    let sizes = log_entry_sizes(&harness);
    assert!(sizes[..5].iter().all(|size| *size < FULL), "the five first entries are small: {sizes:?}");
    let after = &sizes[5..];
    let tail = after.iter().rev().take_while(|size| **size < FULL).count();
    assert!(after[..after.len() - tail].iter().all(|size| *size >= FULL), "{sizes:?}");
    assert!(sizes.len() < 5 + 4 + 40, "1,105 events in {} entries", sizes.len());
    let store = SledStore::open(harness.config()).unwrap();
    runtime().block_on(async {
        let events = store.read_all(1, 2_000).await.unwrap();
        assert_eq!(events.len(), 1_105);
        assert!(events.iter().enumerate().all(|(k, event)| event.global_position == k as u64 + 1));
        assert_eq!(store.verify().await.unwrap().problem, None);
    });
}

/// A log entry lost before the log's end (damage that the open's check of the head does not
/// reach) is not merged over: the small entries around the hole stay apart, so the events
/// acknowledged after the open keep their positions and their chain, `verify` names the
/// hole, and the store still opens.
#[test]
fn a_hole_among_the_small_entries_at_the_end_is_not_merged_over() {
    let harness = SledHarness::new();
    let text = |i: usize| format!("patrol check {i} at the north gate: {}", "tricycles waiting. ".repeat(150));
    let stream = store::EntityId::new("gate-north").unwrap();
    {
        let store = SledStore::open(harness.config()).unwrap();
        runtime().block_on(async {
            for i in 1..=4 {
                store.append(&stream, ExpectedVersion::Any, vec![note(&text(i))]).await.unwrap().unwrap();
            }
        });
    }
    assert_eq!(log_entry_sizes(&harness).len(), 4, "four small entries, none merged yet");
    with_raw_sled(&harness, |log, _| {
        log.remove(2u64.to_be_bytes()).unwrap();
    });
    let store = SledStore::open(harness.config()).unwrap();
    runtime().block_on(async {
        for i in 5..=8 {
            let committed = store.append(&stream, ExpectedVersion::Any, vec![note(&text(i))]).await.unwrap().unwrap();
            assert_eq!(committed.events[0].global_position, i as u64);
        }
        // (A read from 3 would check its link to 2, the hole.)
        let after = store.read_all(4, 10).await.unwrap();
        assert_eq!(after.iter().map(|event| event.global_position).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8]);
        for event in &after {
            let expected = note(&text(event.global_position as usize)).event;
            assert_eq!(event.event, expected, "event {}", event.global_position);
        }
        let problem = store.verify().await.unwrap().problem.expect("the hole is found");
        assert_eq!(problem.global_position, 2, "{problem:?}");
    });
    drop(store);
    assert!(
        log_entry_sizes(&harness).len() < 7,
        "the entries after the hole were merged: {:?}",
        log_entry_sizes(&harness)
    );
    SledStore::open(harness.config()).expect("the store opens with its hole");
    assert_eq!(verify_dir(harness.config()).unwrap().problem.map(|problem| problem.global_position), Some(2));
}
