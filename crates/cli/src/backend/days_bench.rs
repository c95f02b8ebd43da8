//! `gridwatch bench --days`: what one day costs as the log grows. For logs of several sizes
//! shaped like a district (200 gates checked through the day, tallies, issues, notes: about
//! 3,000 events a local day), each query of one day runs as a `gridwatch` process of its own
//! over the same store, so that its time and its peak memory are its own: the replay and the
//! report of a day, the status as of a moment of it (field time) and as known at it (log
//! time), the export of the day, sealing a day, and `verify` of the whole log, by the CLI
//! and by `GET /api/v1/verify` (for its events per second). The figures print next
//! to the smallest log's, whose ratio is what the targets are about (a day's cost must not
//! grow with the log).

use std::path::Path;
use std::time::Instant;

use events_schema::{EntityId, NewEvent, Timestamp};
use jiff::civil::Date;
use store::{EventStore, ExpectedVersion};
use store_sled::{SledConfig, SledStore};

use crate::Failure;

/// Seconds of field time between two generated events: about 2,980 events a local day.
const EVENT_SPACING_MICROS: i64 = 29_000_000;
/// The first generated event's field time (local midnight of 2020-02-12 in Asia/Shanghai).
const START: &str = "2020-02-12T00:00:00+08:00";

/// One measured query.
struct Measured {
    seconds: f64,
    peak_mib: f64,
}

fn operating(error: impl std::fmt::Display) -> Failure {
    Failure::Operating(anyhow::anyhow!("{error}"))
}

/// The `k`-th generated event as it is appended: its field time, and an id made then (a
/// UUIDv7 of that moment, as a phone makes it when the check is done: a real log's ids are
/// spread over its time, one in a millisecond, not packed into the seconds a fill takes).
fn new_event(k: u64, start: Timestamp) -> NewEvent {
    let event = crate::bench_projections::generated_event(k, start);
    let occurred_at =
        Timestamp::from_microsecond(start.as_microsecond() + k as i64 * EVENT_SPACING_MICROS).expect("in range");
    let micros = occurred_at.as_microsecond().unsigned_abs();
    let made_at = uuid::Timestamp::from_unix(
        uuid::NoContext,
        micros / 1_000_000,
        u32::try_from(micros % 1_000_000 * 1_000).expect("under a second"),
    );
    NewEvent {
        event_id: uuid::Uuid::new_v7(made_at),
        occurred_at,
        actor: event.actor,
        correlation_id: None,
        causation_id: None,
        event: event.event,
    }
}

/// Appends generated events `from..until` in appends of 1,000 on one stream.
async fn append_in_bulk(store: &SledStore, from: u64, until: u64, start: Timestamp) -> Result<(), Failure> {
    let stream = EntityId::new("district").expect("valid");
    let mut n = from;
    while n < until {
        let batch: Vec<NewEvent> = (n..(n + 1_000).min(until)).map(|k| new_event(k, start)).collect();
        n += batch.len() as u64;
        if let Err(rejection) = store.append(&stream, ExpectedVersion::Any, batch).await? {
            return Err(Failure::Operating(rejection.into()));
        }
    }
    Ok(())
}

/// Fills a store in `dir` with `events` generated events, then saves the views' snapshot and
/// the day checkpoints, as a server would have left them. In bulk: appends of 1,000 events.
/// `served` (`Some(appenders)`): as a server takes them: the places and staff first, then one
/// event per append, on its gate's stream, from that many concurrent appenders (so the log's
/// entries hold what a commit group of such appends holds: about ten events with 16, one with
/// 1; not 16 KB each).
async fn fill(dir: &Path, events: u64, served: Option<u64>) -> Result<(), Failure> {
    let start: Timestamp = START.parse().map_err(operating)?;
    let store = SledStore::open(SledConfig::new(dir))?;
    if let Some(count) = served {
        let setup = crate::bench_projections::SETUP_EVENTS.min(events);
        append_in_bulk(&store, 0, setup, start).await?;
        let appenders: Vec<_> = (0..count)
            .map(|appender| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut k = setup + appender;
                    while k < events {
                        let gate = k % crate::bench_projections::CHECKPOINTS;
                        let stream = EntityId::new(format!("gate-{gate}")).expect("valid");
                        if let Err(rejection) =
                            store.append(&stream, ExpectedVersion::Any, vec![new_event(k, start)]).await?
                        {
                            return Err(Failure::Operating(rejection.into()));
                        }
                        k += count;
                    }
                    Ok(())
                })
            })
            .collect();
        for appender in appenders {
            appender.await.map_err(operating)??;
        }
    } else {
        append_in_bulk(&store, 0, events, start).await?;
    }
    drop(store);
    let service = open_service(dir).await?;
    service.save_snapshot().await?;
    // A server brings the day checkpoints forward as days end; here all at once.
    service.checkpoint_days().await?;
    Ok(())
}

/// The service over the store in `dir`, its views from the snapshot kept there (as the
/// CLI and a server open it).
async fn open_service(dir: &Path) -> Result<service::Service<store::DynStore>, Failure> {
    let store = SledStore::open(SledConfig::new(dir))?;
    let zone = jiff::tz::TimeZone::get(projections::DEFAULT_TIME_ZONE).map_err(operating)?;
    Ok(service::Service::open_with_snapshot(store::DynStore::new("sled", store), zone, dir.join("views.snapshot"))
        .await?)
}

/// Runs `gridwatch --data DIR --seal-key KEY ARGS` and measures it; its peak memory is what
/// it reports.
fn measure(dir: &Path, key: &Path, args: &[&str]) -> Result<Measured, Failure> {
    let started = Instant::now();
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--data")
        .arg(dir)
        .arg("--seal-key")
        .arg(key)
        .args(args)
        .env("GRIDWATCH_REPORT_PEAK_MEMORY", "1")
        .env("GRIDWATCH_LOG", "error")
        .output()?;
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(operating(format!("gridwatch {} failed: {stderr}", args.join(" "))));
    }
    let peak_mib = stderr
        .lines()
        .find_map(|line| line.strip_prefix("peak_rss_mib "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(f64::NAN);
    Ok(Measured { seconds, peak_mib })
}

/// Each query of `day` asked of a service already open in this process (the query alone,
/// without a process's start and the store's opening, which is sled's recovery of its page
/// table and grows with the store): the best of three.
async fn in_process(
    dir: &Path,
    day: Date,
    noon: Timestamp,
    now: Timestamp,
) -> Result<Vec<(&'static str, f64)>, Failure> {
    let service = open_service(dir).await?;
    let until = Some(jiff::civil::time(12, 0, 0, 0));
    // The seconds `$query` takes.
    macro_rules! timed {
        ($query:expr) => {{
            let started = Instant::now();
            $query;
            started.elapsed().as_secs_f64()
        }};
    }
    let mut best = [f64::INFINITY; 5];
    for _ in 0..3 {
        let timed = [
            timed!(service.replay(day, until, service::Times::NOW).await?),
            timed!({
                let summary = service.summary(day, day, None, service::Times::NOW).await?;
                projections::render(&summary, projections::Format::Json, projections::Lang::Zh).map_err(operating)?
            }),
            timed!(service.status_at_times(service::Times { as_of: Some(noon), known_at: None }, None).await?),
            timed!(service.status_at_times(service::Times { as_of: None, known_at: Some(now) }, None).await?),
            timed!(service.export_days(day, day, None).await?),
        ];
        for (best, seconds) in best.iter_mut().zip(timed) {
            *best = best.min(seconds);
        }
    }
    let names = [
        "replay of one day, in process",
        "report of one day, in process",
        "status as_of noon, in process",
        "status known_at now, in process",
        "export of one day, in process",
    ];
    Ok(names.into_iter().zip(best).collect())
}

/// Serves the store in `dir` in this process and times one `GET /api/v1/verify` (the chain
/// and every seal, with the seal key's signature).
async fn verify_over_http(dir: &Path, key: &Path) -> Result<f64, Failure> {
    let service = open_service(dir).await?;
    let tokens_dir = tempfile::tempdir()?;
    let tokens = std::sync::Arc::new(server::TokenFile::new(tokens_dir.path()));
    let token = tokens.create(server::Role::Auditor, Vec::new(), None)?.token;
    let key = service::seal_key::SealKey::load(key).map_err(operating)?;
    let config = server::ServerConfig { seal_key: Some(std::sync::Arc::new(key)), ..server::ServerConfig::default() };
    let state = server::AppState::new(std::sync::Arc::new(service), tokens, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let served = tokio::spawn(server::serve(listener, state, async move { stopped.cancelled().await }));
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .get(format!("http://{address}/api/v1/verify"))
        .bearer_auth(&token)
        .timeout(std::time::Duration::from_secs(3_600))
        .send()
        .await
        .map_err(operating)?;
    let seconds = started.elapsed().as_secs_f64();
    let body: serde_json::Value = answer.json().await.map_err(operating)?;
    stop.cancel();
    served.await.map_err(operating)??;
    if body["intact"] != true || body["seal_problems"] != serde_json::json!([]) {
        return Err(operating(format!("GET /api/v1/verify did not find the log intact: {body}")));
    }
    Ok(seconds)
}

/// The local day in the middle of a log of `events` events.
fn middle_day(events: u64) -> Result<Date, Failure> {
    let start: Timestamp = START.parse().map_err(operating)?;
    let middle = Timestamp::from_microsecond(start.as_microsecond() + (events / 2) as i64 * EVENT_SPACING_MICROS)
        .ok_or_else(|| operating("time out of range"))?;
    let zone = jiff::tz::TimeZone::get(projections::DEFAULT_TIME_ZONE).map_err(operating)?;
    Ok(projections::local_day(middle, &zone))
}

/// The file `fill` writes last: a log without it was not filled to the end.
const FILLED_MARKER: &str = "filled";

pub async fn run(root: &Path, sizes: &[u64], keep: bool, served: Option<u64>) -> Result<(), Failure> {
    // The smallest log first: the others' figures are compared with its.
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable();
    println!(
        "gridwatch bench --days: logs of {} events (about 2,980 events a local day), filled {}, in {}",
        sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
        match served {
            Some(appenders) => format!("as a server takes them (one event per append, {appenders} appenders)"),
            None => "in appends of 1,000 events".to_owned(),
        },
        root.display()
    );
    let mut rows: Vec<(u64, &'static str, Measured)> = Vec::new();
    for &size in &sizes {
        let dir = root.join(match served {
            None => format!("log-{size}"),
            Some(16) => format!("log-{size}-served"),
            Some(appenders) => format!("log-{size}-served-{appenders}"),
        });
        if keep && dir.join(FILLED_MARKER).exists() {
            println!("using the {size}-event log kept in {}", dir.display());
        } else {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            let started = Instant::now();
            fill(&dir, size, served).await?;
            std::fs::write(dir.join(FILLED_MARKER), b"")?;
            println!("filled {size} events in {:.1} s", started.elapsed().as_secs_f64());
        }
        let day = middle_day(size)?.to_string();
        let noon = format!("{day}T12:00:00+08:00");
        // Every generated event is recorded now, so only "now" is a log time with any events
        // before it: the whole log, as known at this moment.
        let now = Timestamp::now().to_string();
        let key = root.join(format!("seal-{size}.key"));
        if !(keep && key.exists()) {
            service::seal_key::SealKey::create(&key).map_err(operating)?;
        }
        // Each run seals two days that no earlier run sealed (a kept log's seals stay).
        let runs_file = dir.join("seal-runs");
        let runs: i64 = std::fs::read_to_string(&runs_file).ok().and_then(|text| text.trim().parse().ok()).unwrap_or(0);
        std::fs::write(&runs_file, (runs + 1).to_string())?;
        let sealed_day = middle_day(size)?.checked_add(jiff::Span::new().days(2 * runs)).map_err(operating)?;
        let next_day = sealed_day.tomorrow().map_err(operating)?.to_string();
        let sealed_day = sealed_day.to_string();
        let queries: [(&'static str, Vec<&str>); 7] = [
            // The baseline: a process that opens the store and reads one event.
            ("baseline: open, read one event", vec!["events", "--limit", "1"]),
            ("replay of one day (until 12:00)", vec!["replay", "--day", &day, "--until", "12:00"]),
            ("report of one day (JSON)", vec!["report", "--day", &day, "--format", "json"]),
            ("status as_of noon of that day", vec!["status", "--as-of", &noon]),
            ("status known_at now (whole log)", vec!["status", "--known-at", &now]),
            ("export of one day (NDJSON)", vec!["export", "--day", &day, "--output", "/dev/null"]),
            ("verify the whole log", vec!["verify"]),
        ];
        for (name, args) in queries {
            // The first run warms the page cache; the figure is the better of two.
            let first = measure(&dir, &key, &args)?;
            let second = measure(&dir, &key, &args)?;
            let best = if second.seconds < first.seconds { second } else { first };
            rows.push((size, name, best));
        }
        // Sealing changes the log: two days sealed, one each, the better of the two.
        let first = measure(&dir, &key, &["seal", "--day", &sealed_day])?;
        let second = measure(&dir, &key, &["seal", "--day", &next_day])?;
        rows.push((size, "seal one day", if second.seconds < first.seconds { second } else { first }));
        let in_process_times =
            in_process(&dir, middle_day(size)?, noon.parse().map_err(operating)?, now.parse().map_err(operating)?)
                .await?;
        for (name, seconds) in in_process_times {
            rows.push((size, name, Measured { seconds, peak_mib: f64::NAN }));
        }
        let seconds = verify_over_http(&dir, &key).await?;
        rows.push((size, "GET /api/v1/verify", Measured { seconds, peak_mib: f64::NAN }));
        if !keep {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    println!();
    println!(
        "{:<36} {:>11} {:>10} {:>9} {:>10} {:>9}",
        "query", "log events", "seconds", "x small", "peak MiB", "x small"
    );
    for (size, name, measured) in &rows {
        let first = rows.iter().find(|(_, other, _)| other == name).map(|(_, _, m)| m).expect("the smallest log's row");
        let events_per_second = if name.contains("verify") {
            format!("  ({:.0} events/s)", *size as f64 / measured.seconds)
        } else {
            String::new()
        };
        println!(
            "{name:<36} {size:>11} {:>10.3} {:>9.2} {:>10.1} {:>9.2}{events_per_second}",
            measured.seconds,
            measured.seconds / first.seconds,
            measured.peak_mib,
            measured.peak_mib / first.peak_mib,
        );
    }
    println!();
    println!(
        "targets (issue 9): from the smallest to the largest log a day's figures grow by at most 1.5x; \
         the report and the replay of a 3,000-event day under 50 ms"
    );
    Ok(())
}
