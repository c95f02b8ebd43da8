//! End-to-end tests: each starts the real `gridwatch` binary.
//!
//! - `browser`: the dashboard in Debian's Chromium, driven by Playwright (`tests/browser`);
//! - `cli`: the `append` / `events` / `verify` contract (output, exit codes, nothing
//!   written on bad input or conflict, export and import);
//! - `crash`: SIGKILL during concurrent appends, then every acknowledged event is there;
//! - `http`: `gridwatch serve` over HTTP: a gate issue's lifecycle, the live feed, a
//!   restart, SIGTERM with appends in flight;
//! - `layout`: only the CLI depends on a concrete backend; test-only crates stay out of builds;
//! - `record`: a gate issue's lifecycle through the domain rules, and the status board;
//! - `reliability`: many writers on one entity and on shared streams, none refused;
//! - `tamper`: a changed byte is named by `verify`.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

mod browser;
mod cli;
mod cluster;
mod crash;
mod http;
mod layout;
mod record;
mod reliability;
mod tamper;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// What a finished run of the binary left.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn gridwatch(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gridwatch"));
    command.arg("--data").arg(data).env("GRIDWATCH_LOG", "warn");
    command
}

/// Runs `gridwatch --data DATA ARGS` with `stdin` as its input.
pub fn run(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = gridwatch(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the gridwatch binary starts");
    // A command that fails on its arguments exits without reading its input: a closed pipe
    // here is its answer, not the test's failure.
    match child.stdin.take().expect("stdin").write_all(stdin.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {error}"),
        _ => {}
    }
    let output = child.wait_with_output().expect("gridwatch finishes");
    Output {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// All events of the log at `data`, as parsed JSON lines.
pub fn events(data: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all_args = vec!["events"];
    all_args.extend_from_slice(args);
    let output = run(data, &all_args, "");
    assert_eq!(output.code, 0, "events failed: {}", output.stderr);
    output.stdout.lines().map(|line| serde_json::from_str(line).expect("events prints JSON lines")).collect()
}
