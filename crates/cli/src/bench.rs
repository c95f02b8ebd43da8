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
use store::{EventStore, ExpectedVersion, SledConfig, SledStore};
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
    /// Where to put the benchmark's stores (a fresh folder inside it, removed afterwards).
    /// Must be on the disk you want to measure.
    #[arg(long)]
    dir: Option<PathBuf>,
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
        encode_record(&EntityId::new("bench-stream").expect("valid"), self.next as u64, Timestamp::now(), &event, &mut bytes);
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
        let db = sled::Config::new().path(dir).cache_capacity(cache_bytes).flush_every_ms(None).open().map_err(store::StoreError::from)?;
        let tree = db.open_tree("log").map_err(store::StoreError::from)?;
        let data_file = File::open(dir.join("db"))?;
        Ok(RawSled { db, tree, data_file, next_key: 1 })
    }

    fn durable_batch(&mut self, records: Vec<Vec<u8>>) -> Result<(), Failure> {
        let mut batch = sled::Batch::default();
        for record in records {
            batch.insert(&self.next_key.to_be_bytes(), record);
            self.next_key += 1;
        }
        self.tree.apply_batch(batch).map_err(store::StoreError::from)?;
        self.db.flush().map_err(store::StoreError::from)?;
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

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
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

async fn appenders(store: &SledStore, concurrency: usize, events_per_append: usize, duration: Duration) -> Result<u64, Failure> {
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
        total += task.await.map_err(|e| Failure::Operating(e.into()))?.map_err(|e| Failure::Operating(anyhow::anyhow!(e)))?;
    }
    Ok(total)
}

pub async fn run(args: &BenchArgs) -> Result<(), Failure> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; run `cargo run --release -- bench` for real figures");
    }
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new().prefix("gridwatch-bench-").tempdir_in(&parent)?;
    let duration = Duration::from_secs_f64(args.seconds);
    let cache_bytes = SledConfig::new(".").cache_capacity_bytes;
    println!("gridwatch bench: {} s per phase, scan of {} events, in {}", args.seconds, args.scan_events, root.path().display());
    let mut rows = Vec::new();

    let mut raw_fsync_rate = f64::NAN;
    if !args.scan_only {
    // Baseline: a raw fdatasync loop (write 256 bytes, fdatasync).
    raw_fsync_rate = {
        let mut file = OpenOptions::new().create(true).append(true).open(root.path().join("fsync-loop"))?;
        let started = Instant::now();
        let mut count = 0u64;
        while started.elapsed() < duration {
            file.write_all(&[7u8; 256])?;
            file.sync_data()?;
            count += 1;
        }
        rate(count, started.elapsed())
    };

    // Baseline: raw sled, one record per insert + flush + fdatasync.
    let mut source = EventSource::new();
    let mut raw_single_disk_per_event = f64::NAN;
    let raw_single_rate = {
        let raw_dir = root.path().join("raw-single");
        let mut raw = RawSled::open(&raw_dir, cache_bytes)?;
        let started = Instant::now();
        let mut count = 0u64;
        while started.elapsed() < duration {
            raw.durable_batch(vec![source.next_record()])?;
            count += 1;
        }
        let elapsed = started.elapsed();
        drop(raw);
        raw_single_disk_per_event = dir_bytes(&raw_dir) as f64 / count as f64;
        rate(count, elapsed)
    };

    // Baseline: raw sled, batches of 100 + flush + fdatasync.
    let raw_batch_rate = {
        let mut raw = RawSled::open(&root.path().join("raw-batch"), cache_bytes)?;
        let started = Instant::now();
        let mut count = 0u64;
        while started.elapsed() < duration {
            raw.durable_batch((0..100).map(|_| source.next_record()).collect())?;
            count += 100;
        }
        rate(count, started.elapsed())
    };

    // The store: 1, 16 and 64 concurrent single-event appenders, then appends of 100.
    let mut single_rate = 0.0;
    for concurrency in [1usize, 16, 64] {
        let dir = root.path().join(format!("store-{concurrency}"));
        let store = SledStore::open(store_config(&dir))?;
        let started = Instant::now();
        let count = appenders(&store, concurrency, 1, duration).await?;
        let ours = rate(count, started.elapsed());
        if concurrency == 1 {
            single_rate = ours;
            rows.push(Row {
                measure: "durable appends/s, 1 appender".into(),
                ours,
                baseline_name: "raw sled insert+flush+fdatasync /s".into(),
                baseline: raw_single_rate,
                target: "cost <= 1.5x raw: ratio >= 0.67".into(),
            });
        } else {
            rows.push(Row {
                measure: format!("durable appends/s, {concurrency} appenders"),
                ours,
                baseline_name: "raw sled batch-100 events/s".into(),
                baseline: raw_batch_rate,
                target: if concurrency == 64 {
                    format!("ratio >= 0.50 and >= 5x 1 appender (now {:.1}x)", ours / single_rate)
                } else {
                    format!("{:.1}x 1 appender", ours / single_rate)
                },
            });
        }
    }
    {
        let dir = root.path().join("store-batch");
        let store = SledStore::open(store_config(&dir))?;
        let started = Instant::now();
        let count = appenders(&store, 1, 100, duration).await?;
        rows.push(Row {
            measure: "events/s, appends of 100 events".into(),
            ours: rate(count, started.elapsed()),
            baseline_name: "raw sled batch-100 events/s".into(),
            baseline: raw_batch_rate,
            target: "-".into(),
        });
    }

    }

    // Scans: fill a store and a raw sled tree with the same events, then read both whole.
    let scan_dir = root.path().join("store-scan");
    let raw_scan_dir = root.path().join("raw-scan");
    let encoded_bytes = {
        let store = SledStore::open(store_config(&scan_dir))?;
        let mut raw = RawSled::open(&raw_scan_dir, cache_bytes)?;
        let mut source = EventSource::new();
        let mut encoded_bytes = 0u64;
        let mut filled = 0;
        let stream = EntityId::new("scan").expect("valid");
        while filled < args.scan_events {
            let count = (args.scan_events - filled).min(1_000) as usize;
            let events: Vec<NewEvent> = (0..count).map(|_| source.next_event()).collect();
            let mut records = Vec::with_capacity(count);
            for event in &events {
                let mut bytes = Vec::new();
                encode_record(&stream, filled + 1, Timestamp::now(), event, &mut bytes);
                encoded_bytes += bytes.len() as u64;
                bytes.extend_from_slice(&[0u8; 32]);
                records.push(bytes);
            }
            match store.append(&stream, ExpectedVersion::Any, events).await? {
                Ok(_) => {}
                Err(rejection) => return Err(Failure::Operating(rejection.into())),
            }
            raw.durable_batch(records)?;
            filled += count as u64;
        }
        encoded_bytes
    };
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
    drop(store);
    let raw = RawSled::open(&raw_scan_dir, cache_bytes)?;
    let started = Instant::now();
    let mut raw_scanned = 0u64;
    for entry in raw.tree.iter() {
        let (key, value) = entry.map_err(store::StoreError::from)?;
        checksum = checksum.wrapping_add(u64::from(key[7]) + value.len() as u64);
        raw_scanned += 1;
    }
    let raw_scan_rate = rate(raw_scanned, started.elapsed());
    drop(raw);
    rows.push(Row {
        measure: format!("read_all scan with decoding, events/s ({scanned} events)"),
        ours: scan_rate,
        baseline_name: "raw sled scan events/s".into(),
        baseline: raw_scan_rate,
        target: "ratio >= 0.70".into(),
    });
    let disk = dir_bytes(&scan_dir);
    let raw_disk = dir_bytes(&raw_scan_dir);
    rows.push(Row {
        measure: "disk bytes per event (store, bulk-filled)".into(),
        ours: disk as f64 / scanned as f64,
        baseline_name: "encoded event bytes per event".into(),
        baseline: encoded_bytes as f64 / scanned as f64,
        target: "ratio <= 3.0".into(),
    });
    if !args.scan_only {
        let small_appends_dir = root.path().join("store-1");
        let small_appends_events = SledStore::open(store_config(&small_appends_dir))?.head_position().await?;
        rows.push(Row {
            measure: "disk bytes per event (store, 1 appender)".into(),
            ours: dir_bytes(&small_appends_dir) as f64 / small_appends_events.max(1) as f64,
            baseline_name: "raw sled, one insert+flush per event".into(),
            baseline: raw_single_disk_per_event,
            target: format!("{:.2}x encoded bytes", dir_bytes(&small_appends_dir) as f64 / small_appends_events.max(1) as f64 / (encoded_bytes as f64 / scanned as f64)),
        });
    }

    println!();
    println!("{:<52} {:>12}  {:<36} {:>12}  {:>6}  target", "measure", "gridwatch", "baseline (same run)", "baseline", "ratio");
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
    println!("raw fdatasync loop (256-byte writes): {raw_fsync_rate:.1}/s");
    println!("raw sled per-event disk: {:.1} bytes (same events, batches of 1000)", raw_disk as f64 / raw_scanned.max(1) as f64);
    println!("peak memory (VmHWM, whole process): {:.1} MiB; sled cache per store: {} MiB", peak_rss_mib(), cache_bytes / 1024 / 1024);
    println!("(checksum {checksum})");
    Ok(())
}
