//! The demo data set: it loads (twice, writing nothing the second time), it tells the
//! courier-congestion story, and the reports of two of its days match their golden files.

// Test code: an unwrap that fails is a failed test.
#![allow(clippy::unwrap_used)]

use jiff::civil::date;
use jiff::tz::TimeZone;
use projections::{Format, Lang, render};
use service::Service;
use store::{EventStore, SledConfig, SledStore};

/// The seal's hash covers `recorded_at`, which is the time of loading: golden files hold a
/// placeholder instead.
fn without_seal_hash(report: &str, hash: &str) -> String {
    assert_eq!(hash.len(), 64, "a seal hash");
    report.replace(hash, "<chain hash>")
}

fn check_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("GRIDWATCH_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{name} missing; run GRIDWATCH_BLESS=1 cargo test -p service"));
    assert!(
        expected == actual,
        "{name} differs from its golden file; if the change is intended, run GRIDWATCH_BLESS=1 cargo test -p service\n{actual}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_month_loads_once_and_reports_the_courier_story() {
    let dir = tempfile::tempdir().unwrap();
    let zone = TimeZone::get(projections::DEFAULT_TIME_ZONE).unwrap();
    let service = Service::open(SledStore::open(SledConfig::new(dir.path())).unwrap(), zone.clone()).await.unwrap();
    let events = service.load_demo().await.unwrap();
    // 27 days, 8 gates, about five checks and two tallies each a day, and the story.
    assert!(events > 1_400, "a month of routine: {events} events");
    assert_eq!(service.load_demo().await.unwrap(), events, "a second load writes nothing");
    assert_eq!(service.demo_commands_len(), events as usize);

    let twentieth = service.summary(date(2020, 2, 20), date(2020, 2, 20), None).await.unwrap();
    let courier = twentieth.issues.iter().find(|i| i.issue_id.as_str() == "courier-0220").unwrap();
    assert_eq!(courier.actions.len(), 3);
    assert_eq!(courier.escalated_to, [events_schema::EscalationTarget::Subdistrict]);
    assert_eq!(courier.state, projections::IssueState::Escalated);
    let twenty_first = service.summary(date(2020, 2, 21), date(2020, 2, 21), None).await.unwrap();
    let courier = twenty_first.issues.iter().find(|i| i.issue_id.as_str() == "courier-0220").unwrap();
    assert_eq!(courier.state, projections::IssueState::Verified);
    assert!(courier.minutes_to_resolution.is_some());

    for (day, summary) in [("2020-02-20", &twentieth), ("2020-02-21", &twenty_first)] {
        for (format, extension) in [(Format::Markdown, "md"), (Format::Json, "json")] {
            let report = render(summary, format, Lang::Zh);
            check_golden(&format!("report-{day}.zh.{extension}"), &without_seal_hash(&report, &summary.seal_hash));
        }
        let english = render(summary, Format::Markdown, Lang::En);
        check_golden(&format!("report-{day}.en.md"), &without_seal_hash(&english, &summary.seal_hash));
    }
    // The seal names a position that verify will find with that very hash.
    let sealed = service.store().read_all(twentieth.seal_position, 1).await.unwrap();
    let hash: String = sealed[0].hash.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hash, twentieth.seal_hash);
}
