//! Prometheus metrics: requests and their latencies by route, appends, conflicts, and the
//! live feed's subscribers and how far behind the log they are.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route's pattern (`/api/v1/issues/{issue_id}`), never the raw path: bounded.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppendLabels {
    /// `written` or `deduplicated` (a retry answered with the original positions).
    pub outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// Every metric of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub appended_events: Family<AppendLabels, Counter>,
    pub conflicts: Counter,
    pub live_subscribers: Gauge,
    pub live_dropped: Counter,
    live_lag_events: Gauge,
    log_head_position: Gauge,
    /// The last position each live subscriber was sent (a std `Mutex`: held for a push or
    /// a scan, never across an await).
    live_positions: Mutex<Vec<Arc<AtomicU64>>>,
}

/// A live subscriber's entry; removed when dropped.
#[derive(Debug)]
pub struct LiveSubscriber {
    metrics: Arc<Metrics>,
    position: Arc<AtomicU64>,
}

impl LiveSubscriber {
    /// Records that the subscriber was sent the event at `global_position`.
    pub fn sent(&self, global_position: u64) {
        self.position.store(global_position, Ordering::Relaxed);
    }
}

impl Drop for LiveSubscriber {
    fn drop(&mut self) {
        self.metrics.live_subscribers.dec();
        let mut positions = self.metrics.live_positions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        positions.retain(|position| !Arc::ptr_eq(position, &self.position));
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gridwatch");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        let request_seconds = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (to the response head, for the live feed)",
            request_seconds.clone(),
        );
        let appended_events = Family::<AppendLabels, Counter>::default();
        registry.register("appended_events", "Events appended through the API", appended_events.clone());
        let conflicts = Counter::default();
        registry.register(
            "append_conflicts",
            "Commands and appends refused for a wrong expected version or a reused event id",
            conflicts.clone(),
        );
        let live_subscribers = Gauge::default();
        registry.register("live_subscribers", "Clients connected to the live feed", live_subscribers.clone());
        let live_dropped = Counter::default();
        registry.register(
            "live_subscribers_dropped",
            "Live-feed clients cut off for reading too slowly",
            live_dropped.clone(),
        );
        let live_lag_events = Gauge::default();
        registry.register(
            "live_subscriber_lag_events",
            "Events the furthest-behind live subscriber has yet to be sent",
            live_lag_events.clone(),
        );
        let log_head_position = Gauge::default();
        registry.register("log_head_position", "Global position of the last durable event", log_head_position.clone());
        Metrics {
            registry,
            requests,
            request_seconds,
            appended_events,
            conflicts,
            live_subscribers,
            live_dropped,
            live_lag_events,
            log_head_position,
            live_positions: Mutex::new(Vec::new()),
        }
    }

    /// Registers a live subscriber that starts after `global_position`.
    pub fn live_subscriber(self: &Arc<Metrics>, global_position: u64) -> LiveSubscriber {
        let position = Arc::new(AtomicU64::new(global_position));
        self.live_positions.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(position.clone());
        self.live_subscribers.inc();
        LiveSubscriber { metrics: self.clone(), position }
    }

    pub fn record_appended(&self, events: usize, deduplicated: bool) {
        let outcome = if deduplicated { "deduplicated" } else { "written" };
        self.appended_events.get_or_create(&AppendLabels { outcome }).inc_by(events as u64);
    }

    /// The metrics in Prometheus text format, with the gauges that depend on the log's
    /// head brought up to date.
    pub fn render(&self, head_position: u64) -> String {
        let furthest_behind = {
            let positions = self.live_positions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            positions.iter().map(|position| position.load(Ordering::Relaxed)).min()
        };
        let lag = furthest_behind.map_or(0, |sent| head_position.saturating_sub(sent));
        self.live_lag_events.set(i64::try_from(lag).unwrap_or(i64::MAX));
        self.log_head_position.set(i64::try_from(head_position).unwrap_or(i64::MAX));
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode the metrics");
        }
        text
    }
}
