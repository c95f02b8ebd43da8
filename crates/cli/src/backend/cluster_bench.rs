//! `gridwatch bench --cluster`: the NATS backend on a real cluster (`--nats-url`;
//! `./bench-cluster.sh` starts three nodes on loopback with `sync_interval: always`) next to
//! the sled backend on this machine's disk, measured in the same run and printed as ratios,
//! because absolute figures on these machines mean little: durable appends with 1, 16 and 64
//! concurrent appenders (a stream each, one event per append), then durable commands over
//! HTTP at `connections` connections (a `serve` process on each backend, a gate per
//! connection).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::json;
use store::DynStore;
use store_nats::{NatsConfig, NatsStore};
use store_sled::{SledConfig, SledStore};

use super::sled_bench::appenders;
use crate::Failure;
use crate::bench_http::{self, Phase};

/// About the size of a stored patrol check, for the bare publishes.
const RECORD_BYTES: usize = 300;

/// A stream of its own for each measurement, so that each starts from an empty log.
fn fresh_stream(config: &NatsConfig, what: &str) -> NatsConfig {
    let name = format!("BENCH{}{what}", uuid::Uuid::now_v7().simple()).to_uppercase();
    let mut config = config.clone();
    config.stream.clone_from(&name);
    config.subject_prefix = name;
    config
}

/// Events per second of `concurrency` appenders on `store` for `duration`.
async fn append_rate(store: &DynStore, concurrency: usize, duration: Duration) -> Result<f64, Failure> {
    let started = Instant::now();
    let count = appenders(store, concurrency, 1, duration).await?;
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Registers what the commands need (a community, a grid, the site `longwu`, `guard-1`) and
/// a gate per connection on the server at `url`.
async fn prepare(client: &reqwest::Client, url: &str, token: &str, gates: usize) -> Result<(), Failure> {
    for (name, data) in [
        ("register-community", json!({"community_id": "minxin", "name": "Minxin community"})),
        ("register-grid", json!({"grid_id": "grid-3", "community_id": "minxin", "name": "Grid 3"})),
        (
            "register-site",
            json!({"site_id": "longwu", "grid_id": "grid-3", "name": "Longwu compound", "kind": "residential_compound"}),
        ),
        ("register-staff", json!({"staff_id": "guard-1", "display_name": "Guard Wu", "role": "guard"})),
    ] {
        bench_http::command(client, url, token, name, data).await?;
    }
    bench_http::register_gates(client, url, token, gates).await
}

/// Durable patrol checks over HTTP against a `serve` process started with `args`.
async fn commands(args: &[&str], connections: usize, duration: Duration) -> Result<Phase, Failure> {
    let served = bench_http::spawn_server(args).map_err(Failure::Operating)?;
    let admin = served.token.clone().ok_or_else(|| Failure::Operating(anyhow!("the server printed no admin token")))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .map_err(|error| Failure::Operating(error.into()))?;
    prepare(&client, &served.url, &admin, connections).await?;
    Ok(bench_http::load(&client, connections, duration, bench_http::patrol_checks(&served.url, &admin)).await)
}

struct Row {
    measure: String,
    nats: f64,
    sled: f64,
    /// Bare JetStream publishes on the same cluster, same run (appends only).
    bare: Option<f64>,
    target: &'static str,
}

pub async fn run(root: &Path, config: NatsConfig, seconds: f64, connections: usize) -> Result<(), Failure> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; run it from `cargo build --release` for real figures");
    }
    let duration = Duration::from_secs_f64(seconds);
    println!(
        "gridwatch bench --cluster: NATS at {} ({} replicas), sled in {}; {seconds} s per phase",
        config.urls.join(","),
        config.replicas,
        root.display()
    );
    let mut rows = Vec::new();
    for concurrency in [1usize, 16, 64] {
        let sled = DynStore::new("sled", SledStore::open(SledConfig::new(root.join(format!("sled-{concurrency}"))))?);
        let sled_rate = append_rate(&sled, concurrency, duration).await?;
        drop(sled);
        let nats_config = fresh_stream(&config, &format!("A{concurrency}"));
        let mirror = root.join(format!("mirror-{concurrency}"));
        let nats =
            DynStore::new("nats", NatsStore::open(NatsConfig { mirror_dir: mirror, ..nats_config.clone() }).await?);
        let nats_rate = append_rate(&nats, concurrency, duration).await?;
        drop(nats);
        store_nats::baseline::remove(&nats_config, &[]).await?;
        let bare = fresh_stream(&config, &format!("RAW{concurrency}"));
        let bare_rate = store_nats::baseline::publish_rate(&bare, concurrency, 1, RECORD_BYTES, duration).await?;
        store_nats::baseline::remove(&bare, &[]).await?;
        if concurrency == 64 {
            // What the cluster takes when the same messages come in atomic batches of 64.
            let batched = fresh_stream(&config, "RAWBATCH");
            let rate = store_nats::baseline::publish_rate(&batched, 1, 64, RECORD_BYTES, duration).await?;
            store_nats::baseline::remove(&batched, &[]).await?;
            println!("  bare JetStream, 1 publisher of atomic batches of 64: {rate:.0} messages/s");
        }
        rows.push(Row {
            measure: format!("durable appends/s, {concurrency} appender{}", if concurrency == 1 { "" } else { "s" }),
            nats: nats_rate,
            sled: sled_rate,
            bare: Some(bare_rate),
            target: if concurrency == 64 { "ratio >= 0.25" } else { "-" },
        });
        println!("  {} done", rows.last().map_or("", |row| row.measure.as_str()));
    }

    let sled_data = root.join("serve-sled");
    let sled_data = sled_data.to_string_lossy();
    let sled_phase = commands(&["--data", &sled_data, "serve", "--addr", "127.0.0.1:0"], connections, duration).await?;
    let nats_data = root.join("serve-nats");
    let nats_data = nats_data.to_string_lossy();
    let urls = config.urls.join(",");
    let http_stream = fresh_stream(&config, "HTTP");
    let stream = http_stream.stream.clone();
    let replicas = config.replicas.to_string();
    let nats_args = [
        "--data",
        &nats_data,
        "--store",
        "nats",
        "--nats-url",
        &urls,
        "--nats-stream",
        &stream,
        "--nats-replicas",
        &replicas,
        "serve",
        "--addr",
        "127.0.0.1:0",
    ];
    let nats_phase = commands(&nats_args, connections, duration).await?;
    store_nats::baseline::remove(&http_stream, &[super::TOKEN_BUCKET]).await?;
    rows.push(Row {
        measure: format!("HTTP durable commands/s, {connections} connections"),
        nats: nats_phase.rate(),
        sled: sled_phase.rate(),
        bare: None,
        target: "-",
    });

    println!();
    println!(
        "| measure | NATS cluster | sled, same run | ratio | bare JetStream publishes, same run | ratio | target |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        let bare = row.bare.map_or_else(|| "- | -".to_owned(), |bare| format!("{bare:.0} | {:.2}", row.nats / bare));
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {bare} | {} |",
            row.measure,
            row.nats,
            row.sled,
            row.nats / row.sled,
            row.target
        );
    }
    println!();
    for (name, phase) in [("sled", &sled_phase), ("NATS", &nats_phase)] {
        println!(
            "HTTP commands on {name}: p50 {:.2} ms, p99 {:.2} ms, {} answered, {} failed",
            phase.p50_ms(),
            phase.p99_ms(),
            phase.ok,
            phase.failed
        );
    }
    Ok(())
}
