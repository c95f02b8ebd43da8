//! The backend conformance suite: every rule of the [`EventStore`] contract as a test any
//! backend runs, plus a model-based test that applies random sequences of appends,
//! conflicts, retries, reads and restarts to the store and to a plain in-memory model.
//!
//! A backend implements [`Harness`] and invokes [`conformance_tests!`](crate::conformance_tests)
//! in one of its test files, which expands to one `#[test]` per rule.

// Test code: an unwrap that fails is a failed test, which is the point.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;

use events_schema::{EntityId, Event, FieldNoteRecorded, NewEvent, RecordedEvent, Timestamp, encode_record};
use futures::StreamExt;
use uuid::Uuid;

use crate::{
    AppendedEvent, Committed, EVENT_SIZE_BYTES_MAX, EventStore, ExpectedVersion, Rejection, StoredRecord, chain_hash,
};

/// Storage for one test: opening it again after the previous store was dropped must show
/// everything that was acknowledged.
pub trait Harness: Send + Sync + 'static {
    type Store: EventStore + Clone;
    fn open(&self) -> impl Future<Output = Self::Store> + Send;
}

/// Expands to one test per conformance rule for the harness that `$make` builds.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            positions_and_versions_have_no_holes,
            expected_version_is_enforced_and_a_conflict_writes_nothing,
            a_multi_event_append_is_all_or_nothing,
            a_retry_returns_the_original_positions_and_writes_nothing,
            an_event_id_reused_by_a_different_append_is_rejected,
            reads_page_by_position_and_by_stream_version,
            an_event_is_found_by_its_id,
            subscribe_catches_up_then_goes_live_without_gap_or_duplicate,
            a_subscription_neither_outlives_nor_holds_open_its_store,
            concurrent_writers_on_one_stream_never_lose_or_fork_a_version,
            concurrent_appends_each_get_their_own_positions,
            acknowledged_appends_survive_a_restart,
            every_record_is_chained_to_the_one_before,
            events_are_read_by_when_they_happened,
            a_restore_copies_records_byte_for_byte_and_the_log_goes_on,
        );
        #[test]
        fn model_based_random_operations() {
            $crate::conformance::model_based(|| $make);
        }
    };
    (@each $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::runtime().block_on($crate::conformance::$name(&$make));
            }
        )+
    };
}

/// The runtime each conformance test runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a test runtime")
}

fn id(text: &str) -> EntityId {
    EntityId::new(text).expect("test ids are valid")
}

/// A small valid event.
pub fn note(text: &str) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        occurred_at: Timestamp::now(),
        actor: id("conformance"),
        correlation_id: None,
        causation_id: None,
        event: Event::FieldNoteRecorded(FieldNoteRecorded {
            author: id("staff-1"),
            text: text.to_owned(),
            site_id: None,
            weather: None,
        }),
    }
}

fn notes(count: usize, label: &str) -> Vec<NewEvent> {
    (0..count).map(|i| note(&format!("{label} {i}"))).collect()
}

async fn append_ok<S: EventStore>(
    store: &S,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Committed {
    store
        .append(&id(stream), expected, events)
        .await
        .expect("no I/O error")
        .unwrap_or_else(|rejection| panic!("append to {stream} rejected: {rejection}"))
}

async fn append_rejected<S: EventStore>(
    store: &S,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Rejection {
    match store.append(&id(stream), expected, events).await.expect("no I/O error") {
        Ok(committed) => panic!("append to {stream} was accepted: {committed:?}"),
        Err(rejection) => rejection,
    }
}

async fn all_events<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    loop {
        let page = store.read_all(events.len() as u64 + 1, 1_000).await.expect("read_all");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

fn positions(committed: &Committed) -> Vec<(u64, u64)> {
    committed.events.iter().map(|e| (e.global_position, e.stream_version)).collect()
}

pub async fn positions_and_versions_have_no_holes<H: Harness>(harness: &H) {
    let store = harness.open().await;
    assert_eq!(store.head_position().await.unwrap(), 0);
    let a1 = append_ok(&store, "a", ExpectedVersion::Any, notes(3, "a")).await;
    let b1 = append_ok(&store, "b", ExpectedVersion::Any, notes(2, "b")).await;
    let a2 = append_ok(&store, "a", ExpectedVersion::Any, notes(1, "a")).await;
    assert_eq!(positions(&a1), [(1, 1), (2, 2), (3, 3)]);
    assert_eq!(positions(&b1), [(4, 1), (5, 2)]);
    assert_eq!(positions(&a2), [(6, 4)]);
    assert!(!a1.deduplicated);
    assert_eq!(store.head_position().await.unwrap(), 6);
    let all = all_events(&store).await;
    assert_eq!(all.iter().map(|e| e.global_position).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    let stream_a = store.read_stream(&id("a"), 1, 100).await.unwrap();
    assert_eq!(
        stream_a.iter().map(|e| (e.global_position, e.stream_version)).collect::<Vec<_>>(),
        [(1, 1), (2, 2), (3, 3), (6, 4)]
    );
    assert!(store.read_stream(&id("nothing-here"), 1, 100).await.unwrap().is_empty());
}

pub async fn expected_version_is_enforced_and_a_conflict_writes_nothing<H: Harness>(harness: &H) {
    let store = harness.open().await;
    append_ok(&store, "s", ExpectedVersion::NoStream, notes(1, "first")).await;
    let rejection = append_rejected(&store, "s", ExpectedVersion::NoStream, notes(1, "x")).await;
    assert_eq!(
        rejection,
        Rejection::WrongExpectedVersion { stream_id: id("s"), expected: ExpectedVersion::NoStream, actual: 1 }
    );
    assert!(rejection.is_conflict());
    append_ok(&store, "s", ExpectedVersion::Exact(1), notes(2, "second")).await;
    let rejection = append_rejected(&store, "s", ExpectedVersion::Exact(1), notes(2, "stale")).await;
    assert_eq!(
        rejection,
        Rejection::WrongExpectedVersion { stream_id: id("s"), expected: ExpectedVersion::Exact(1), actual: 3 }
    );
    let rejection = append_rejected(&store, "t", ExpectedVersion::Exact(2), notes(1, "x")).await;
    assert_eq!(
        rejection,
        Rejection::WrongExpectedVersion { stream_id: id("t"), expected: ExpectedVersion::Exact(2), actual: 0 }
    );
    append_ok(&store, "t", ExpectedVersion::Exact(0), notes(1, "t")).await;
    append_ok(&store, "t", ExpectedVersion::Any, notes(1, "t")).await;
    let all = all_events(&store).await;
    assert_eq!(all.len(), 5, "conflicting appends wrote something");
    assert!(all.iter().all(
        |e| !matches!(&e.event, Event::FieldNoteRecorded(n) if n.text.starts_with('x') || n.text.starts_with("stale"))
    ));
}

pub async fn a_multi_event_append_is_all_or_nothing<H: Harness>(harness: &H) {
    let store = harness.open().await;
    append_ok(&store, "s", ExpectedVersion::Any, notes(1, "before")).await;
    let mut events = notes(3, "batch");
    events[1] = note(&"x".repeat(EVENT_SIZE_BYTES_MAX + 1));
    assert!(matches!(append_rejected(&store, "s", ExpectedVersion::Any, events).await, Rejection::Invalid(_)));
    let mut events = notes(3, "dup");
    events[2].event_id = events[0].event_id;
    assert!(matches!(append_rejected(&store, "s", ExpectedVersion::Any, events).await, Rejection::Invalid(_)));
    let mut events = notes(2, "v4");
    events[1].event_id = Uuid::from_u128(0x4a3b_0000_0000_4000_8000_0000_0000_0001);
    assert!(matches!(append_rejected(&store, "s", ExpectedVersion::Any, events).await, Rejection::Invalid(_)));
    assert!(matches!(append_rejected(&store, "s", ExpectedVersion::Any, Vec::new()).await, Rejection::Invalid(_)));
    assert!(append_rejected(&store, "s", ExpectedVersion::Exact(7), notes(4, "conflict")).await.is_conflict());
    assert_eq!(store.head_position().await.unwrap(), 1);
    assert_eq!(all_events(&store).await.len(), 1);
    assert_eq!(store.read_stream(&id("s"), 1, 100).await.unwrap().len(), 1);
    let after = append_ok(&store, "s", ExpectedVersion::Exact(1), notes(2, "after")).await;
    assert_eq!(positions(&after), [(2, 2), (3, 3)], "a rejected append left a hole");
}

pub async fn a_retry_returns_the_original_positions_and_writes_nothing<H: Harness>(harness: &H) {
    let events = notes(2, "retry");
    let first = {
        let store = harness.open().await;
        append_ok(&store, "other", ExpectedVersion::Any, notes(1, "other")).await;
        let first = append_ok(&store, "s", ExpectedVersion::NoStream, events.clone()).await;
        // The same append again, even with an expectation that no longer holds.
        let again = append_ok(&store, "s", ExpectedVersion::NoStream, events.clone()).await;
        assert!(again.deduplicated);
        assert_eq!(again.events, first.events);
        assert_eq!(store.head_position().await.unwrap(), 3);
        first
    };
    let store = harness.open().await;
    let after_restart = append_ok(&store, "s", ExpectedVersion::Any, events).await;
    assert!(after_restart.deduplicated);
    assert_eq!(after_restart.events, first.events);
    assert_eq!(all_events(&store).await.len(), 3);
}

pub async fn an_event_id_reused_by_a_different_append_is_rejected<H: Harness>(harness: &H) {
    let store = harness.open().await;
    let first = note("first");
    let committed = append_ok(&store, "s", ExpectedVersion::Any, vec![first.clone()]).await;
    let expected =
        Rejection::EventIdInUse { event_id: first.event_id, global_position: committed.events[0].global_position };
    assert_eq!(append_rejected(&store, "s", ExpectedVersion::Any, vec![first.clone(), note("new")]).await, expected);
    assert_eq!(append_rejected(&store, "elsewhere", ExpectedVersion::Any, vec![first]).await, expected);
    assert_eq!(all_events(&store).await.len(), 1);
}

pub async fn reads_page_by_position_and_by_stream_version<H: Harness>(harness: &H) {
    let store = harness.open().await;
    for round in 0..5 {
        append_ok(&store, "even", ExpectedVersion::Any, notes(3, &format!("even {round}"))).await;
        append_ok(&store, "odd", ExpectedVersion::Any, notes(2, &format!("odd {round}"))).await;
    }
    let page = store.read_all(10, 5).await.unwrap();
    assert_eq!(page.iter().map(|e| e.global_position).collect::<Vec<_>>(), [10, 11, 12, 13, 14]);
    assert!(store.read_all(26, 10).await.unwrap().is_empty());
    assert_eq!(store.read_all(0, 1).await.unwrap()[0].global_position, 1);
    let page = store.read_stream(&id("odd"), 3, 4).await.unwrap();
    assert_eq!(page.iter().map(|e| e.stream_version).collect::<Vec<_>>(), [3, 4, 5, 6]);
    assert!(page.iter().all(|e| e.stream_id == id("odd")));
    assert!(store.read_stream(&id("odd"), 11, 4).await.unwrap().is_empty());
}

pub async fn an_event_is_found_by_its_id<H: Harness>(harness: &H) {
    let store = harness.open().await;
    let events = notes(3, "by id");
    let committed = append_ok(&store, "s", ExpectedVersion::Any, events.clone()).await;
    let found = store.read_event(events[1].event_id).await.unwrap().expect("found");
    assert_eq!((found.global_position, found.event_id), (committed.events[1].global_position, events[1].event_id));
    assert!(store.read_event(Uuid::now_v7()).await.unwrap().is_none());
}

pub async fn subscribe_catches_up_then_goes_live_without_gap_or_duplicate<H: Harness>(harness: &H) {
    let store = harness.open().await;
    for _ in 0..10 {
        append_ok(&store, "s", ExpectedVersion::Any, notes(5, "before")).await;
    }
    let mut subscription = store.subscribe(20);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..50 {
                append_ok(&store, if round % 2 == 0 { "s" } else { "t" }, ExpectedVersion::Any, notes(2, "live")).await;
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 131 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), subscription.next())
            .await
            .expect("the subscription delivers within 30 s")
            .expect("the subscription stays open")
            .expect("no error");
        seen.push(event.global_position);
    }
    writer.await.unwrap();
    assert_eq!(seen, (20..=150).collect::<Vec<_>>());
    let extra = tokio::time::timeout(std::time::Duration::from_millis(200), subscription.next()).await;
    assert!(extra.is_err(), "delivered an event past the log's end: {extra:?}");
}

pub async fn a_subscription_neither_outlives_nor_holds_open_its_store<H: Harness>(harness: &H) {
    let mut subscription = {
        let store = harness.open().await;
        append_ok(&store, "s", ExpectedVersion::Any, notes(2, "before close")).await;
        let mut subscription = store.subscribe(1);
        for expected in 1..=2 {
            let event = subscription.next().await.expect("open").expect("no error");
            assert_eq!(event.global_position, expected);
        }
        subscription
    };
    // The store was dropped with the subscription waiting for more: it ends.
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next()).await;
    assert!(matches!(end, Ok(None)), "the subscription outlived its store: {end:?}");
    // And the storage can be opened again at once.
    let store = harness.open().await;
    assert_eq!(store.head_position().await.unwrap(), 2);
}

pub async fn concurrent_writers_on_one_stream_never_lose_or_fork_a_version<H: Harness>(harness: &H) {
    let store = harness.open().await;
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for round in 0..10 {
                loop {
                    let current = store.read_stream(&id("contended"), 1, 10_000).await.unwrap().len() as u64;
                    let event = note(&format!("writer {writer} round {round}"));
                    match store.append(&id("contended"), ExpectedVersion::Exact(current), vec![event]).await.unwrap() {
                        Ok(_) => break,
                        Err(Rejection::WrongExpectedVersion { .. }) => conflicts += 1,
                        Err(other) => panic!("unexpected rejection {other}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stream = store.read_stream(&id("contended"), 1, 10_000).await.unwrap();
    assert_eq!(stream.iter().map(|e| e.stream_version).collect::<Vec<_>>(), (1..=80).collect::<Vec<_>>());
}

pub async fn concurrent_appends_each_get_their_own_positions<H: Harness>(harness: &H) {
    let store = harness.open().await;
    let mut tasks = Vec::new();
    for writer in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            for _ in 0..10 {
                let events = notes(1 + writer % 3, &format!("writer {writer}"));
                let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                let result = append_ok(&store, &format!("w{writer}"), ExpectedVersion::Any, events).await;
                assert_eq!(result.events.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids);
                committed.extend(result.events);
            }
            committed
        }));
    }
    let mut acknowledged: Vec<AppendedEvent> = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    let all = all_events(&store).await;
    assert_eq!(all.len(), acknowledged.len());
    let by_position: HashMap<u64, Uuid> = all.iter().map(|e| (e.global_position, e.event_id)).collect();
    for appended in &acknowledged {
        assert_eq!(by_position.get(&appended.global_position), Some(&appended.event_id));
    }
    // Within one append, positions are consecutive.
    for window in all.windows(2) {
        if window[0].stream_id == window[1].stream_id && window[1].stream_version != 1 {
            assert!(window[1].stream_version > window[0].stream_version);
        }
    }
}

pub async fn acknowledged_appends_survive_a_restart<H: Harness>(harness: &H) {
    let before = {
        let store = harness.open().await;
        for round in 0..20 {
            append_ok(&store, &format!("s{}", round % 3), ExpectedVersion::Any, notes(1 + round % 4, "durable")).await;
        }
        all_events(&store).await
    };
    assert_eq!(before.len(), (0..20).map(|r| 1 + r % 4).sum::<usize>());
    let store = harness.open().await;
    assert_eq!(all_events(&store).await, before);
    assert_eq!(store.head_position().await.unwrap(), before.len() as u64);
    let next = append_ok(&store, "s0", ExpectedVersion::Any, notes(1, "after")).await;
    let s0_before = before.iter().filter(|e| e.stream_id == id("s0")).count() as u64;
    assert_eq!(positions(&next), [(before.len() as u64 + 1, s0_before + 1)]);
}

pub async fn every_record_is_chained_to_the_one_before<H: Harness>(harness: &H) {
    let store = harness.open().await;
    for round in 0..5 {
        append_ok(&store, "s", ExpectedVersion::Any, notes(3, &format!("chained {round}"))).await;
    }
    let mut previous = [0u8; 32];
    for event in all_events(&store).await {
        let new = event.to_new_event();
        let mut bytes = Vec::new();
        encode_record(&event.stream_id, event.stream_version, event.recorded_at, &new, &mut bytes);
        assert_eq!(
            event.hash,
            chain_hash(&previous, event.global_position, &bytes),
            "position {}",
            event.global_position
        );
        previous = event.hash;
    }
}

/// `count` records of another log: notes on streams `r0`..`r2`, chained from the start,
/// recorded a second apart in 2020.
fn foreign_records(count: u64) -> Vec<StoredRecord> {
    let mut previous = [0u8; 32];
    let mut versions: HashMap<String, u64> = HashMap::new();
    (1..=count)
        .map(|position| {
            let stream = format!("r{}", position % 3);
            let version = versions.entry(stream.clone()).or_insert(0);
            *version += 1;
            let recorded_at =
                Timestamp::from_microsecond(1_582_156_800_000_000 + position as i64 * 1_000_000).expect("a valid time");
            let mut bytes = Vec::new();
            encode_record(&id(&stream), *version, recorded_at, &note(&format!("restored {position}")), &mut bytes);
            let hash = chain_hash(&previous, position, &bytes);
            previous = hash;
            StoredRecord { global_position: position, bytes, hash }
        })
        .collect()
}

/// Rule: `restore_records` writes records of another log byte for byte (same chain, same
/// positions, versions, ids and times), all or nothing, only where they continue the log;
/// the restored log survives a restart and new appends continue its chain.
pub async fn a_restore_copies_records_byte_for_byte_and_the_log_goes_on<H: Harness>(harness: &H) {
    let records = foreign_records(25);
    let store = harness.open().await;
    // A gap, a broken link, or a record that does not start where the log ends: refused,
    // nothing written.
    let mut gap = records[..3].to_vec();
    gap.remove(1);
    let mut broken = records[..3].to_vec();
    broken[2].bytes[5] ^= 1;
    for bad in [gap, broken, records[1..3].to_vec(), Vec::new()] {
        let refused = store.restore_records(bad).await.unwrap();
        assert!(matches!(refused, Err(Rejection::Invalid(_))), "{refused:?}");
        assert_eq!(store.head_position().await.unwrap(), 0, "a refused restore writes nothing");
    }
    let committed = store.restore_records(records[..10].to_vec()).await.unwrap().unwrap();
    assert_eq!(committed.events.len(), 10);
    store.restore_records(records[10..].to_vec()).await.unwrap().unwrap();
    // Again: the records are in the log now, so they no longer continue it.
    assert!(store.restore_records(records[10..].to_vec()).await.unwrap().is_err());
    drop(store);
    let store = harness.open().await;
    assert_eq!(store.read_records(1, 100).await.unwrap(), records, "byte for byte, after a restart");
    let events = store.read_all(1, 100).await.unwrap();
    assert_eq!(events.len(), 25);
    assert_eq!(events[24].hash, records[24].hash);
    assert_eq!(events[24].stream_version, 9, "r1 holds positions 1, 4, ..., 25");
    assert_eq!(store.read_stream(&id("r1"), 1, 100).await.unwrap().len(), 9);
    // The log goes on from the restored one: its streams and its chain.
    let appended = append_ok(&store, "r1", ExpectedVersion::Exact(9), notes(2, "after the restore")).await;
    assert_eq!(appended.events[0].global_position, 26);
    let report = store.verify().await.unwrap();
    assert_eq!((report.events, report.problem), (27, None));
    let next = store.read_records(26, 1).await.unwrap();
    assert_eq!(next[0].hash, chain_hash(&records[24].hash, 26, &next[0].bytes));
}

/// A note that happened `minutes` after 2020-02-20T00:00:00Z.
fn note_at(text: &str, minutes: i64) -> NewEvent {
    let base = Timestamp::from_microsecond(1_582_156_800_000_000).expect("a valid time");
    NewEvent {
        occurred_at: Timestamp::from_microsecond(base.as_microsecond() + minutes * 60_000_000).expect("a valid time"),
        ..note(text)
    }
}

fn minutes_after_base(minutes: i64) -> Timestamp {
    note_at("", minutes).occurred_at
}

/// Every page of `read_occurred(from..until)`, `page` events at a time.
async fn all_occurred<S: EventStore>(store: &S, from: i64, until: i64, page: usize) -> Vec<RecordedEvent> {
    let (from, until) = (minutes_after_base(from), minutes_after_base(until));
    let mut events: Vec<RecordedEvent> = Vec::new();
    loop {
        let after = events.last().map(|last| (last.occurred_at, last.global_position));
        let next = store.read_occurred(from, until, after, page).await.expect("read_occurred");
        if next.is_empty() {
            return events;
        }
        events.extend(next);
    }
}

fn texts(events: &[RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| match &event.event {
            Event::FieldNoteRecorded(note) => note.text.clone(),
            other => panic!("not a note: {other:?}"),
        })
        .collect()
}

pub async fn events_are_read_by_when_they_happened<H: Harness>(harness: &H) {
    let store = harness.open().await;
    // Recorded out of the order they happened: a late arrival, and one the day before.
    append_ok(&store, "a", ExpectedVersion::Any, vec![note_at("a 02:00", 120), note_at("a 01:00 (late)", 60)]).await;
    append_ok(&store, "b", ExpectedVersion::Any, vec![note_at("b 01:30", 90), note_at("b the day before", -60)]).await;
    append_ok(&store, "a", ExpectedVersion::Any, vec![note_at("a 03:00", 180), note_at("a also 01:00", 60)]).await;
    let wanted = ["a 01:00 (late)", "a also 01:00", "b 01:30", "a 02:00"];
    // Ordered by when it happened, then by position; `until` is not included.
    assert_eq!(texts(&all_occurred(&store, 0, 180, 100).await), wanted);
    assert_eq!(texts(&all_occurred(&store, 0, 180, 1).await), wanted, "paged one at a time");
    assert_eq!(texts(&all_occurred(&store, -24 * 60, 0, 10).await), ["b the day before"]);
    assert!(all_occurred(&store, 181, 24 * 60, 10).await.is_empty());
    // A cursor at or past the end leaves nothing, whatever the backend.
    let (from, until) = (minutes_after_base(0), minutes_after_base(180));
    for after in [(until, 0), (until, 99), (minutes_after_base(500), 1)] {
        assert!(store.read_occurred(from, until, Some(after), 10).await.unwrap().is_empty(), "{after:?}");
    }
    // A thousand and a half events in one hour, then a restart: still all there, in order.
    for batch in 0..3 {
        let events = (0..500).map(|i| note_at(&format!("busy {:04}", batch * 500 + i), 600 + (i % 50))).collect();
        append_ok(&store, "busy", ExpectedVersion::Any, events).await;
    }
    drop(store);
    let store = harness.open().await;
    assert_eq!(texts(&all_occurred(&store, 0, 180, 3).await), wanted, "after a restart");
    let busy = all_occurred(&store, 600, 660, 700).await;
    assert_eq!(busy.len(), 1_500);
    assert!(
        busy.windows(2).all(|w| (w[0].occurred_at, w[0].global_position) < (w[1].occurred_at, w[1].global_position))
    );
    // Every event is found by when it happened, exactly once.
    let everything = all_occurred(&store, -24 * 60, 24 * 60, 1_000).await;
    assert_eq!(everything.len() as u64, store.head_position().await.unwrap());
}

/// One step of the model-based test.
#[derive(Clone, Debug)]
enum Operation {
    Append {
        stream: u8,
        count: u8,
        expected: Expectation,
    },
    /// Sends the n-th earlier append again, unchanged.
    Retry {
        nth: u8,
    },
    ReadStream {
        stream: u8,
        from_version: u8,
        limit: u8,
    },
    ReadAll {
        from_position: u8,
        limit: u8,
    },
    Restart,
}

#[derive(Clone, Copy, Debug)]
enum Expectation {
    Any,
    NoStream,
    Right,
    /// Off by the given amount (never right).
    Wrong(u8),
}

fn operation_strategy() -> impl proptest::strategy::Strategy<Value = Operation> {
    use proptest::prelude::*;
    let expectation = prop_oneof![
        Just(Expectation::Any),
        Just(Expectation::NoStream),
        Just(Expectation::Right),
        (1u8..3).prop_map(Expectation::Wrong),
    ];
    prop_oneof![
        5 => (0u8..3, 1u8..4, expectation).prop_map(|(stream, count, expected)| Operation::Append { stream, count, expected }),
        2 => any::<u8>().prop_map(|nth| Operation::Retry { nth }),
        2 => (0u8..3, 0u8..8, 1u8..6).prop_map(|(stream, from_version, limit)| Operation::ReadStream { stream, from_version, limit }),
        2 => (0u8..30, 1u8..8).prop_map(|(from_position, limit)| Operation::ReadAll { from_position, limit }),
        1 => Just(Operation::Restart),
    ]
}

/// The reference: the log as a plain vector.
#[derive(Default)]
struct Model {
    /// (stream, event id) at global position index + 1.
    log: Vec<(EntityId, Uuid)>,
    /// Every append sent, with what the model answered.
    sent: Vec<(EntityId, ExpectedVersion, Vec<NewEvent>)>,
}

impl Model {
    fn stream_version(&self, stream: &EntityId) -> u64 {
        self.log.iter().filter(|(s, _)| s == stream).count() as u64
    }

    fn append(
        &mut self,
        stream: &EntityId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Committed, Rejection> {
        let earlier: Vec<(usize, &(EntityId, Uuid))> =
            events.iter().filter_map(|e| self.log.iter().enumerate().find(|(_, (_, id))| *id == e.event_id)).collect();
        if let Some((index, _)) = earlier.first() {
            if earlier.len() == events.len() && earlier.iter().all(|(_, (s, _))| s == stream) {
                let events = earlier
                    .iter()
                    .map(|(index, (s, id))| AppendedEvent {
                        event_id: *id,
                        global_position: *index as u64 + 1,
                        stream_version: self.log[..=*index].iter().filter(|(x, _)| x == s).count() as u64,
                    })
                    .collect();
                return Ok(Committed { events, deduplicated: true });
            }
            return Err(Rejection::EventIdInUse { event_id: self.log[*index].1, global_position: *index as u64 + 1 });
        }
        let current = self.stream_version(stream);
        if !expected.admits(current) {
            return Err(Rejection::WrongExpectedVersion { stream_id: stream.clone(), expected, actual: current });
        }
        let mut appended = Vec::new();
        for (offset, event) in events.iter().enumerate() {
            self.log.push((stream.clone(), event.event_id));
            appended.push(AppendedEvent {
                event_id: event.event_id,
                global_position: self.log.len() as u64,
                stream_version: current + 1 + offset as u64,
            });
        }
        Ok(Committed { events: appended, deduplicated: false })
    }
}

/// Runs random operation sequences against a fresh harness each and the model; any
/// difference fails with the (shrunk) sequence printed, which replays it.
pub fn model_based<H: Harness>(make_harness: impl Fn() -> H) {
    use proptest::test_runner::{Config, TestRunner};
    let config = Config { cases: 24, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(operation_strategy(), 1..40);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let result = runner.run(&strategy, |operations| {
        let harness = make_harness();
        runtime.block_on(run_operations(&harness, &operations));
        Ok(())
    });
    if let Err(error) = result {
        panic!("model-based test failed: {error}");
    }
}

async fn run_operations<H: Harness>(harness: &H, operations: &[Operation]) {
    let mut model = Model::default();
    let mut store = Some(harness.open().await);
    for (step, operation) in operations.iter().enumerate() {
        let context = format!("step {step}: {operation:?}");
        let current = store.as_ref().expect("open");
        match *operation {
            Operation::Append { stream, count, expected } => {
                let stream = id(&format!("stream-{stream}"));
                let version = model.stream_version(&stream);
                let expected = match expected {
                    Expectation::Any => ExpectedVersion::Any,
                    Expectation::NoStream => ExpectedVersion::NoStream,
                    Expectation::Right => ExpectedVersion::Exact(version),
                    Expectation::Wrong(by) => ExpectedVersion::Exact(version + u64::from(by)),
                };
                let events = notes(count as usize, "model");
                let wanted = model.append(&stream, expected, &events);
                let got = current.append(&stream, expected, events.clone()).await.expect("no I/O error");
                assert_eq!(got, wanted, "{context}");
                model.sent.push((stream, expected, events));
            }
            Operation::Retry { nth } => {
                if model.sent.is_empty() {
                    continue;
                }
                let (stream, expected, events) = model.sent[nth as usize % model.sent.len()].clone();
                let wanted = model.append(&stream, expected, &events);
                let got = current.append(&stream, expected, events).await.expect("no I/O error");
                assert_eq!(got, wanted, "{context}");
            }
            Operation::ReadStream { stream, from_version, limit } => {
                let stream = id(&format!("stream-{stream}"));
                let got: Vec<(u64, Uuid)> = current
                    .read_stream(&stream, u64::from(from_version), usize::from(limit))
                    .await
                    .expect("read_stream")
                    .iter()
                    .map(|e| (e.stream_version, e.event_id))
                    .collect();
                let wanted: Vec<(u64, Uuid)> = model
                    .log
                    .iter()
                    .filter(|(s, _)| *s == stream)
                    .enumerate()
                    .map(|(index, (_, id))| (index as u64 + 1, *id))
                    .filter(|(version, _)| *version >= u64::from(from_version))
                    .take(usize::from(limit))
                    .collect();
                assert_eq!(got, wanted, "{context}");
            }
            Operation::ReadAll { from_position, limit } => {
                let got: Vec<(u64, Uuid)> = current
                    .read_all(u64::from(from_position), usize::from(limit))
                    .await
                    .expect("read_all")
                    .iter()
                    .map(|e| (e.global_position, e.event_id))
                    .collect();
                let wanted: Vec<(u64, Uuid)> = model
                    .log
                    .iter()
                    .enumerate()
                    .map(|(index, (_, id))| (index as u64 + 1, *id))
                    .filter(|(position, _)| *position >= u64::from(from_position))
                    .take(usize::from(limit))
                    .collect();
                assert_eq!(got, wanted, "{context}");
            }
            Operation::Restart => {
                drop(store.take());
                store = Some(harness.open().await);
            }
        }
        let head = store.as_ref().expect("open").head_position().await.expect("head");
        assert_eq!(head, model.log.len() as u64, "{context}");
    }
}
