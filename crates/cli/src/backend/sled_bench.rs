//! `gridwatch bench`: the store's figures next to baselines measured in the same run on the
//! same disk (raw sled insert + flush + fdatasync, singly and in batches of 100; a raw
//! fdatasync loop; a raw sled scan), because these machines are too noisy for absolute
//! numbers to mean much. Run it from a release build: `cargo run --release -- bench`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use events_schema::samples::one_of_each;
use events_schema::{EntityId, NewEvent, Timestamp, encode_record};
use store::{EventStore, ExpectedVersion};
use store_sled::raw::sled;
use store_sled::{SledConfig, SledStore};
use uuid::Uuid;

use crate::Failure;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Seconds each timed phase runs.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Events in the log that the scan phases read.
    #[arg(long, default_value_t = 300_000)]
    scan_events: u64,
    /// Run only the scan phases (fill, read_all, raw scan, disk), e.g. under a profiler.
    #[arg(long)]
    scan_only: bool,
    /// Measure the projections instead of the store: fold 1M and 5M generated events.
    #[arg(long)]
    projections: bool,
    /// Measure what one day costs as the log grows: replay, report, status as_of and
    /// known_at of a day, and verify, over logs of `--sizes` events.
    #[arg(long)]
    days: bool,
    /// With `--days`: fill the logs as a server takes appends (one event each, on its gate's
    /// stream, from `--served-appenders` concurrent appenders; with 16, about 15,000
    /// events/s, so 10M take minutes) instead of in appends of 1,000 events.
    #[arg(long)]
    served: bool,
    /// With `--served`: how many appenders fill the logs at once. 1 writes a log entry per
    /// event, as a server at a district's rate does (about 1,300 events/s here).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    served_appenders: u64,
    /// The log sizes of `--days`, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    sizes: Vec<u64>,
    /// Measure the HTTP API instead: status queries and durable commands under load, and
    /// the live feed's delivery delay, next to a minimal axum handler.
    #[arg(long)]
    http: bool,
    /// Concurrent connections of the HTTP load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measure the NATS backend on the cluster of `--nats-url` (`./bench-cluster.sh` starts
    /// a three-node one on loopback) beside sled on this disk: durable appends with 1, 16
    /// and 64 appenders, and durable commands over HTTP at `--connections`.
    #[arg(long)]
    cluster: bool,
    /// Where to put the benchmark's stores (a fresh folder inside it, removed afterwards).
    /// Must be on the disk you want to measure.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// With `--days`: keep the filled logs in this folder and use them again on the next
    /// run (filling 10M events takes minutes); a log whose fill did not finish is filled anew.
    #[arg(long)]
    keep: Option<PathBuf>,
}

/// Realistic events: the catalogue's samples, round-robin, each with a fresh id.
struct EventSource {
    samples: Vec<events_schema::Event>,
    next: usize,
}

impl EventSource {
    fn new() -> EventSource {
        EventSource { samples: one_of_each(), next: 0 }
    }

    fn next_event(&mut self) -> NewEvent {
        let event = self.samples[self.next % self.samples.len()].clone();
        self.next += 1;
        NewEvent {
            event_id: Uuid::now_v7(),
            occurred_at: Timestamp::now(),
            actor: EntityId::new("bench").expect("valid"),
            correlation_id: None,
            causation_id: None,
            event,
        }
    }

    /// The stored bytes of the next event, as the store would write them (plus a hash's room).
    fn next_record(&mut self) -> Vec<u8> {
        let event = self.next_event();
        let mut bytes = Vec::with_capacity(320);
        encode_record(
            &EntityId::new("bench-stream").expect("valid"),
            self.next as u64,
            Timestamp::now(),
            &event,
            &mut bytes,
        );
        bytes.extend_from_slice(&[0u8; 32]);
        bytes
    }
}

struct RawSled {
    db: sled::Db,
    tree: sled::Tree,
    data_file: File,
    next_key: u64,
}

impl RawSled {
    fn open(dir: &Path, cache_bytes: u64) -> Result<RawSled, Failure> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(store::StoreError::backend)?;
        let tree = db.open_tree("log").map_err(store::StoreError::backend)?;
        let data_file = File::open(dir.join("db"))?;
        Ok(RawSled { db, tree, data_file, next_key: 1 })
    }

    fn durable_batch(&mut self, records: Vec<Vec<u8>>) -> Result<(), Failure> {
        let mut batch = sled::Batch::default();
        for record in records {
            batch.insert(&self.next_key.to_be_bytes(), record);
            self.next_key += 1;
        }
        self.tree.apply_batch(batch).map_err(store::StoreError::backend)?;
        self.db.flush().map_err(store::StoreError::backend)?;
        self.data_file.sync_data()?;
        Ok(())
    }
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

struct Row {
    measure: String,
    ours: f64,
    baseline_name: String,
    baseline: f64,
    target: String,
}

fn store_config(dir: &Path) -> SledConfig {
    SledConfig::new(dir)
}

/// `concurrency` tasks appending `events_per_append` events at a time to a stream each,
/// for `duration`; returns the events appended. Any backend (`gridwatch bench --cluster`
/// runs it on NATS beside sled).
pub(super) async fn appenders(
    store: &store::DynStore,
    concurrency: usize,
    events_per_append: usize,
    duration: Duration,
) -> Result<u64, Failure> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut source = EventSource::new();
            let stream = EntityId::new(format!("bench-{task}")).expect("valid");
            let mut appended = 0u64;
            while Instant::now() < deadline {
                let events: Vec<NewEvent> = (0..events_per_append).map(|_| source.next_event()).collect();
                match store.append(&stream, ExpectedVersion::Any, events).await {
                    Ok(Ok(committed)) => appended += committed.events.len() as u64,
                    other => return Err(format!("append failed: {other:?}")),
                }
            }
            Ok(appended)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task
            .await
            .map_err(|e| Failure::Operating(e.into()))?
            .map_err(|e| Failure::Operating(anyhow::anyhow!(e)))?;
    }
    Ok(total)
}

/// A raw fdatasync loop: write 256 bytes, fdatasync; per second.
fn raw_fsync_rate(dir: &Path, duration: Duration) -> Result<f64, Failure> {
    let mut file = OpenOptions::new().create(true).append(true).open(dir.join("fsync-loop"))?;
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        file.write_all(&[7u8; 256])?;
        file.sync_data()?;
        count += 1;
    }
    Ok(rate(count, started.elapsed()))
}

/// Raw sled: batches of `events_per_batch` records, each batch inserted, flushed and
/// fdatasynced. Returns events per second and disk bytes per event.
fn raw_sled_rate(dir: &Path, events_per_batch: usize, duration: Duration) -> Result<(f64, f64), Failure> {
    let mut source = EventSource::new();
    let mut raw = RawSled::open(dir, SledConfig::new(".").cache_capacity_bytes)?;
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        raw.durable_batch((0..events_per_batch).map(|_| source.next_record()).collect())?;
        count += events_per_batch as u64;
    }
    let elapsed = started.elapsed();
    drop(raw);
    Ok((rate(count, elapsed), dir_bytes(dir) as f64 / count as f64))
}

/// The store with `concurrency` appenders of `events_per_append` events each. Returns
/// events per second and disk bytes per event.
async fn store_rate(
    dir: &Path,
    concurrency: usize,
    events_per_append: usize,
    duration: Duration,
) -> Result<(f64, f64), Failure> {
    let store = store::DynStore::new("sled", SledStore::open(store_config(dir))?);
    let started = Instant::now();
    let count = appenders(&store, concurrency, events_per_append, duration).await?;
    let elapsed = started.elapsed();
    drop(store);
    Ok((rate(count, elapsed), dir_bytes(dir) as f64 / count.max(1) as f64))
}

/// Fills a store and a raw sled tree with the same events (appends of 1,000), reads both
/// whole, and returns the rows for the scan and the disk use.
async fn scan_rows(root: &Path, scan_events: u64) -> Result<Vec<Row>, Failure> {
    let scan_dir = root.join("store-scan");
    let raw_scan_dir = root.join("raw-scan");
    let cache_bytes = SledConfig::new(".").cache_capacity_bytes;
    let mut encoded_bytes = 0u64;
    {
        let store = SledStore::open(store_config(&scan_dir))?;
        let mut raw = RawSled::open(&raw_scan_dir, cache_bytes)?;
        let mut source = EventSource::new();
        let mut filled = 0;
        let stream = EntityId::new("scan").expect("valid");
        while filled < scan_events {
            let count = (scan_events - filled).min(1_000) as usize;
            let events: Vec<NewEvent> = (0..count).map(|_| source.next_event()).collect();
            let mut records = Vec::with_capacity(count);
            for event in &events {
                let mut bytes = Vec::new();
                encode_record(&stream, filled + 1, Timestamp::now(), event, &mut bytes);
                encoded_bytes += bytes.len() as u64;
                bytes.extend_from_slice(&[0u8; 32]);
                records.push(bytes);
            }
            if let Err(rejection) = store.append(&stream, ExpectedVersion::Any, events).await? {
                return Err(Failure::Operating(rejection.into()));
            }
            raw.durable_batch(records)?;
            filled += count as u64;
        }
    }
    let store = SledStore::open(store_config(&scan_dir))?;
    let started = Instant::now();
    let mut scanned = 0u64;
    let mut checksum = 0u64;
    loop {
        let page = store.read_all(scanned + 1, store::READ_PAGE_EVENTS_MAX).await?;
        if page.is_empty() {
            break;
        }
        scanned += page.len() as u64;
        checksum = checksum.wrapping_add(page.iter().map(|e| e.stream_version).sum::<u64>());
    }
    let scan_rate = rate(scanned, started.elapsed());
    // The same events read by when they happened (the occurred-at index, in time order).
    let (from, until) = (
        Timestamp::from_microsecond(0),
        Timestamp::from_microsecond(Timestamp::now().as_microsecond() + 3_600_000_000),
    );
    let (Some(from), Some(until)) = (from, until) else {
        return Err(Failure::Operating(anyhow::anyhow!("time range")));
    };
    let started = Instant::now();
    let mut by_time = 0u64;
    let mut after = None;
    loop {
        let page = store.read_occurred(from, until, after, store::READ_PAGE_EVENTS_MAX).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.occurred_at, last.global_position));
        by_time += page.len() as u64;
        checksum = checksum.wrapping_add(page.iter().map(|e| e.stream_version).sum::<u64>());
    }
    let by_time_rate = rate(by_time, started.elapsed());
    drop(store);
    let raw = RawSled::open(&raw_scan_dir, cache_bytes)?;
    let started = Instant::now();
    let mut raw_scanned = 0u64;
    for entry in raw.tree.iter() {
        let (key, value) = entry.map_err(store::StoreError::backend)?;
        checksum = checksum.wrapping_add(u64::from(key[7]) + value.len() as u64);
        raw_scanned += 1;
    }
    let raw_scan_rate = rate(raw_scanned, started.elapsed());
    drop(raw);
    // Printed so that neither loop can be optimised away.
    println!("(scan checksum {checksum})");
    let encoded_per_event = encoded_bytes as f64 / scanned.max(1) as f64;
    Ok(vec![
        Row {
            measure: format!("read_all scan with decoding, events/s ({scanned} events)"),
            ours: scan_rate,
            baseline_name: "raw sled scan events/s".into(),
            baseline: raw_scan_rate,
            target: "ratio >= 0.70".into(),
        },
        Row {
            measure: format!("read_occurred (by when it happened), events/s ({by_time} events)"),
            ours: by_time_rate,
            baseline_name: "raw sled scan events/s".into(),
            baseline: raw_scan_rate,
            target: "-".into(),
        },
        Row {
            measure: "disk bytes per event (appends of 1,000)".into(),
            ours: dir_bytes(&scan_dir) as f64 / scanned.max(1) as f64,
            baseline_name: "encoded event bytes per event".into(),
            baseline: encoded_per_event,
            target: format!(
                "ratio <= 3.0 (raw sled: {:.2})",
                dir_bytes(&raw_scan_dir) as f64 / raw_scanned.max(1) as f64 / encoded_per_event
            ),
        },
    ])
}

/// Runs `gridwatch bench-fold --events N` as a child process; returns (events/s, peak MiB).
fn fold_in_child(events: u64) -> Result<(f64, f64), Failure> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["bench-fold", "--events", &events.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split_whitespace().map(|field| field.parse::<f64>().unwrap_or(f64::NAN));
    match (output.status.success(), fields.next(), fields.next()) {
        (true, Some(rate), Some(memory)) => Ok((rate, memory)),
        _ => Err(Failure::Operating(anyhow::anyhow!(
            "the fold benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))),
    }
}

async fn projections_bench(root: &Path) -> Result<(), Failure> {
    let (rate_1m, memory_1m) = fold_in_child(1_000_000)?;
    let (rate_5m, memory_5m) = fold_in_child(5_000_000)?;
    // A day of 100,000 events, replayed through the service from a real store.
    let zone = jiff::tz::TimeZone::get(projections::DEFAULT_TIME_ZONE).map_err(|e| Failure::Operating(e.into()))?;
    let store = SledStore::open(store_config(&root.join("replay")))?;
    let start: Timestamp =
        "2020-02-20T00:00:00+08:00".parse().map_err(|e: jiff::Error| Failure::Operating(e.into()))?;
    let day_events = 100_000u64;
    let mut n = 0;
    while n < day_events {
        let events: Vec<NewEvent> = (n..(n + 1_000).min(day_events))
            .map(|k| {
                // 100,000 events in 24 hours: less than a second apart.
                let mut event = crate::bench_projections::generated_event(k, start);
                event.occurred_at =
                    Timestamp::from_microsecond(start.as_microsecond() + k as i64 * 860_000).expect("in range");
                NewEvent {
                    event_id: Uuid::now_v7(),
                    occurred_at: event.occurred_at,
                    actor: event.actor,
                    correlation_id: None,
                    causation_id: None,
                    event: event.event,
                }
            })
            .collect();
        n += events.len() as u64;
        if let Err(rejection) =
            store.append(&EntityId::new("replay").expect("valid"), ExpectedVersion::Any, events).await?
        {
            return Err(Failure::Operating(rejection.into()));
        }
    }
    let service = service::Service::open(store, zone).await?;
    // Three runs: this machine is noisy, and sled may still be writing in the background.
    let mut seconds = Vec::new();
    let mut steps = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let replay = service.replay(jiff::civil::date(2020, 2, 20), None, service::Times::NOW).await?;
        seconds.push(started.elapsed().as_secs_f64());
        steps = replay.steps.len();
    }
    let runs: Vec<String> = seconds.iter().map(|s| format!("{s:.3}")).collect();
    let replay_seconds = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    println!();
    println!("fold through all views, 1M events: {rate_1m:.0} events/s (target >= 500,000 on one core)");
    println!("fold through all views, 5M events: {rate_5m:.0} events/s");
    println!(
        "peak memory: {memory_1m:.1} MiB at 1M events, {memory_5m:.1} MiB at 5M ({:.2}x for 5x the events; the entities are the same)",
        memory_5m / memory_1m
    );
    println!(
        "replay of a {steps}-event day: best {replay_seconds:.3} s of runs {} s (target < 0.5 s)",
        runs.join(", ")
    );
    Ok(())
}

pub async fn run(args: &BenchArgs, cli: &crate::Cli) -> Result<(), Failure> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; run `cargo run --release -- bench` for real figures");
    }
    // A fresh folder inside `--dir` (created when missing), removed afterwards.
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)?;
    let root = tempfile::Builder::new().prefix("gridwatch-bench-").tempdir_in(&parent)?;
    if args.http {
        return crate::bench_http::run(root.path(), args.seconds, args.connections).await;
    }
    if args.projections {
        return projections_bench(root.path()).await;
    }
    if args.days {
        let root = args.keep.as_deref().unwrap_or(root.path());
        return super::days_bench::run(
            root,
            &args.sizes,
            args.keep.is_some(),
            args.served.then_some(args.served_appenders),
        )
        .await;
    }
    if args.cluster {
        let config = super::nats_config(cli)?;
        return super::cluster_bench::run(root.path(), config, args.seconds, args.connections).await;
    }
    let root = root.path();
    let duration = Duration::from_secs_f64(args.seconds);
    println!(
        "gridwatch bench: {} s per phase, scan of {} events, in {}",
        args.seconds,
        args.scan_events,
        root.display()
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if !args.scan_only {
        notes.push(format!("raw fdatasync loop (256-byte writes): {:.1}/s", raw_fsync_rate(root, duration)?));
        let (raw_single, raw_single_disk) = raw_sled_rate(&root.join("raw-single"), 1, duration)?;
        let (raw_batch, _) = raw_sled_rate(&root.join("raw-batch"), 100, duration)?;
        let (single, single_disk) = store_rate(&root.join("store-1"), 1, 1, duration).await?;
        rows.push(Row {
            measure: "durable appends/s, 1 appender".into(),
            ours: single,
            baseline_name: "raw sled insert+flush+fdatasync /s".into(),
            baseline: raw_single,
            target: "cost <= 1.5x raw: ratio >= 0.67".into(),
        });
        for concurrency in [16usize, 64] {
            let (ours, _) = store_rate(&root.join(format!("store-{concurrency}")), concurrency, 1, duration).await?;
            let target = if concurrency == 64 { "ratio >= 0.50 and >= 5x 1 appender, " } else { "" };
            rows.push(Row {
                measure: format!("durable appends/s, {concurrency} appenders"),
                ours,
                baseline_name: "raw sled batch-100 events/s".into(),
                baseline: raw_batch,
                target: format!("{target}now {:.1}x 1 appender", ours / single),
            });
        }
        let (batched, _) = store_rate(&root.join("store-batch"), 1, 100, duration).await?;
        rows.push(Row {
            measure: "events/s, appends of 100 events".into(),
            ours: batched,
            baseline_name: "raw sled batch-100 events/s".into(),
            baseline: raw_batch,
            target: "-".into(),
        });
        rows.push(Row {
            measure: "disk bytes per event (1 appender)".into(),
            ours: single_disk,
            baseline_name: "raw sled, one insert+flush per event".into(),
            baseline: raw_single_disk,
            target: "-".into(),
        });
    }
    rows.extend(scan_rows(root, args.scan_events).await?);

    println!();
    println!(
        "{:<52} {:>12}  {:<36} {:>12}  {:>6}  target",
        "measure", "gridwatch", "baseline (same run)", "baseline", "ratio"
    );
    for row in &rows {
        println!(
            "{:<52} {:>12.1}  {:<36} {:>12.1}  {:>6.2}  {}",
            row.measure,
            row.ours,
            row.baseline_name,
            row.baseline,
            row.ours / row.baseline,
            row.target
        );
    }
    println!();
    for note in notes {
        println!("{note}");
    }
    println!(
        "peak memory (VmHWM, whole process): {:.1} MiB; sled cache per store: {} MiB",
        crate::bench_projections::peak_rss_mib(),
        SledConfig::new(".").cache_capacity_bytes / 1024 / 1024
    );
    Ok(())
}
