//! Crash safety: kill the real binary with SIGKILL at random moments while it appends from
//! several tasks, reopen, and check that every acknowledged append is there whole, no append
//! is half there, positions have no holes, and `verify` passes.
//!
//! The kill moments come from a seed printed at the start; set GRIDWATCH_CRASH_SEED to
//! replay a failing run.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::{events, gridwatch, run};

const KILLS: usize = 24;

/// xorshift64*: enough to spread kill moments, and replayable from the printed seed.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let seed = std::env::var("GRIDWATCH_CRASH_SEED").ok().and_then(|text| text.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("crash test seed: GRIDWATCH_CRASH_SEED={seed}");
    let mut random = seed;
    let dir = tempfile::tempdir().unwrap();
    // event id -> global position, for every acknowledged event so far.
    let mut acknowledged: HashMap<String, u64> = HashMap::new();
    for kill in 0..KILLS {
        let mut child = gridwatch(dir.path())
            .args(["stress-append", "--concurrency", "8"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gridwatch");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return lines,
                    // A line cut by the kill has no newline: it proves nothing either way.
                    Ok(_) if line.ends_with('\n') => lines.push(line),
                    Ok(_) => return lines,
                }
            }
        });
        // The moment of the kill is the point of the test, not a wait for a condition.
        std::thread::sleep(Duration::from_millis(30 + next_random(&mut random) % 400));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        for line in &lines {
            let ack: serde_json::Value = serde_json::from_str(line).unwrap();
            for event in ack["events"].as_array().unwrap() {
                acknowledged
                    .insert(event["event_id"].as_str().unwrap().to_owned(), event["global_position"].as_u64().unwrap());
            }
        }

        // Killed before it even created the store (a slow start on a busy machine): nothing
        // can have been acknowledged, and there is nothing to check yet.
        if !dir.path().join("chain-head").exists() {
            assert!(acknowledged.is_empty(), "kill {kill}: acknowledged appends but no store");
            continue;
        }
        let stored = events(dir.path(), &[]);
        for (index, event) in stored.iter().enumerate() {
            assert_eq!(event["global_position"].as_u64().unwrap(), index as u64 + 1, "kill {kill}: hole in positions");
        }
        let by_id: HashMap<&str, u64> =
            stored.iter().map(|e| (e["event_id"].as_str().unwrap(), e["global_position"].as_u64().unwrap())).collect();
        for (event_id, position) in &acknowledged {
            assert_eq!(
                by_id.get(event_id.as_str()),
                Some(position),
                "kill {kill}: acknowledged event {event_id} lost or moved"
            );
        }
        // No append is half there: every correlation group holds all of its parts.
        let mut groups: HashMap<&str, (usize, usize)> = HashMap::new();
        for event in &stored {
            let text = event["data"]["text"].as_str().unwrap();
            let size: usize = text.rsplit(' ').next().unwrap().parse().unwrap();
            let group = groups.entry(event["correlation_id"].as_str().unwrap()).or_insert((0, size));
            group.0 += 1;
        }
        for (correlation_id, (present, size)) in &groups {
            assert_eq!(present, size, "kill {kill}: append {correlation_id} is partly there");
        }
        let verified = run(dir.path(), &["verify"], "");
        assert_eq!(verified.code, 0, "kill {kill}: verify failed: {}", verified.stderr);
        eprintln!("kill {kill}: {} events stored, {} acknowledged", stored.len(), acknowledged.len());
    }
    assert!(acknowledged.len() > KILLS, "the binary barely appended anything; the test proves little");
}

/// A server that is killed, not stopped, has saved the views' snapshot once they moved
/// `--snapshot-every-events` past the last one: its next start folds on from there, not from
/// the log's start.
#[test]
fn a_killed_server_starts_again_from_its_periodic_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let snapshot = data.join("views.snapshot");
    let server = crate::http::Server::start_logging(&data, &log, &["--demo", "--snapshot-every-events", "1000"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !snapshot.exists() {
        assert!(std::time::Instant::now() < deadline, "no snapshot within 60 s of the demo's load");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Drop kills the process (SIGKILL): no clean stop, no snapshot of the stop.
    drop(server);
    let head = events(&data, &["--from", "1", "--limit", "10000000"]).len() as u64;
    assert!(head > 1_000, "the demo loaded {head} events");
    let again = crate::http::Server::start_logging(&data, &log, &[]);
    drop(again);
    let text = std::fs::read_to_string(&log).unwrap();
    let starts: Vec<u64> = text
        .lines()
        .filter_map(|line| line.split("the views start from position ").nth(1))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(starts, [0, head], "the first start folded from 0, the second from the snapshot at the head");
}
