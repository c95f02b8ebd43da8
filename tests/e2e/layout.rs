//! The crate graph keeps the agreed shape: only the CLI (where the configured backend is
//! opened) depends on a concrete backend; everything above the store boundary (the service,
//! the HTTP server) and below it (domain, projections, the catalogue, the store boundary
//! itself) builds without one, and the conformance suite's test-only dependencies stay out
//! of production builds. Checked on the graph Cargo resolves for a normal build of each
//! crate (`cargo tree -e normal`, features as a build would unify them); a crate's own
//! tests may still open a backend.

use std::collections::BTreeSet;

/// The packages a normal build of `crate_name` compiles (itself included).
fn normal_build_of(crate_name: &str) -> BTreeSet<String> {
    graph_of(crate_name, "normal")
}

/// The packages reached from `crate_name` over the dependency `kinds` (`normal`, `dev`...).
fn graph_of(crate_name: &str, kinds: &str) -> BTreeSet<String> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "-e", kinds, "--prefix", "none", "--format", "{p}", "-p", crate_name])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"))
        .output()
        .expect("cargo tree runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn only_the_cli_depends_on_a_backend() {
    for crate_name in ["server", "service", "store", "domain", "projections", "events-schema"] {
        let build = normal_build_of(crate_name);
        assert!(build.contains(crate_name), "{crate_name} is not in its own build: {build:?}");
        for backend in ["store-sled", "sled"] {
            assert!(!build.contains(backend), "{crate_name} depends on {backend}: {build:?}");
        }
    }
    // The server's own tests run without a storage engine too (on the in-memory backend).
    let server_tests = graph_of("server", "normal,dev");
    assert!(!server_tests.contains("sled") && !server_tests.contains("store-sled"), "{server_tests:?}");
    let cli = normal_build_of("cli");
    assert!(cli.contains("store-sled") && cli.contains("server"), "the CLI opens the backend: {cli:?}");
}

#[test]
fn the_conformance_suite_stays_out_of_production_builds() {
    for crate_name in ["cli", "server", "service", "store", "store-sled"] {
        let build = normal_build_of(crate_name);
        assert!(build.contains("store"), "{crate_name}'s build has no store: {build:?}");
        assert!(!build.contains("proptest"), "{crate_name} pulls the test-only proptest into production");
    }
}

/// The features of the `store` crate that a normal build of `crate_name` turns on.
fn store_features_in_build_of(crate_name: &str) -> BTreeSet<String> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "-e", "normal,features", "--prefix", "none", "-p", crate_name])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"))
        .output()
        .expect("cargo tree runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|line| line.strip_prefix("store feature \""))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_in_memory_backend_and_the_suite_are_never_in_the_binary() {
    let features = store_features_in_build_of("cli");
    assert!(features.contains("default"), "the feature listing was read: {features:?}");
    for test_only in ["memory", "conformance"] {
        assert!(!features.contains(test_only), "the binary's store has the test-only feature {test_only}");
    }
}
