//! The dashboard in a real browser: `gridwatch serve --demo` on a free loopback port, and
//! `tests/browser/dashboard.mjs` driving Debian's Chromium with Playwright against it (sign
//! in, the board, a change seen live, both languages, phone and desk sizes, axe-core,
//! screenshots under `target/browser-screenshots`). `./test.sh` installs what it needs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::http::{Server, token};

/// The repository's root (this file is `tests/e2e/browser.rs`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// What the browser test needs, or a message saying how to get it (never a skip).
fn prerequisites(root: &Path) -> (PathBuf, PathBuf) {
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let node = PathBuf::from("node");
    let missing: Vec<String> = [
        (!chromium.exists()).then(|| format!("Chromium at {}", chromium.display())),
        Command::new(&node).arg("--version").output().is_err().then(|| "node".to_string()),
        (!root.join("tests/browser/node_modules/playwright-core").exists())
            .then(|| "tests/browser/node_modules (npm ci --prefix tests/browser)".to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        missing.is_empty(),
        "the browser test needs {}: run ./test.sh, which installs them (Debian's chromium, Node.js, the npm packages)",
        missing.join(", ")
    );
    (chromium, node)
}

#[test]
fn the_dashboard_works_in_chromium_at_phone_and_desk_sizes() {
    let root = root();
    let (chromium, node) = prerequisites(&root);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // With a seal key (outside the data directory), so that days can be sealed and shown so.
    let key = dir.path().join("seal.key");
    let key_arg = key.to_str().unwrap();
    let made = crate::run(&data, &["--seal-key", key_arg, "seal-key", "create"], "");
    assert_eq!(made.code, 0, "{}", made.stderr);
    let server = Server::start_with(&data, &["--demo", "--seal-key", key_arg]);
    let admin = server.admin.clone().expect("a first start prints an admin token");
    // Gate staff of Longwu, made while the server runs (as an admin would).
    let field = token(&data, &["--role", "field", "--site", "longwu", "--actor", "grid-2"]);
    // A one-time sign-in link for that token, as an admin would send it to a phone.
    let token_id = field.split('_').nth(1).unwrap();
    let link = crate::run(&data, &["token", "link", token_id, "--base-url", &server.url, "--link-minutes", "10"], "");
    assert_eq!(link.code, 0, "{}", link.stderr);
    let link = link.stdout.lines().last().unwrap().to_owned();
    assert!(link.starts_with(&format!("{}/signin/link/", server.url)) && !link.contains(&field), "{link}");
    let shots = root.join("target/browser-screenshots");
    let output = Command::new(node)
        .arg(root.join("tests/browser/dashboard.mjs"))
        .env("GRIDWATCH_URL", &server.url)
        .env("GRIDWATCH_TOKEN", &admin)
        .env("GRIDWATCH_FIELD_TOKEN", &field)
        .env("GRIDWATCH_FIELD_LINK", &link)
        .env("GRIDWATCH_SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the browser checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all browser checks passed"), "{stdout}");
    // A screenshot of every page at both sizes.
    for name in [
        "signin-phone",
        "signin-desk",
        "board-phone",
        "board-desk",
        "board-zh-phone",
        "board-zh-desk",
        "check-phone",
        "check-desk",
        "raise-phone",
        "raise-desk",
        "issue-phone",
        "issue-desk",
        "issues-phone",
        "issues-desk",
        "poster-phone",
        "poster-desk",
        "replay-phone",
        "replay-desk",
        "report-phone",
        "report-desk",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "screenshot {name}");
    }
}
