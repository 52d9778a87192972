//! Prometheus metrics (text exposition at `GET /metrics`).
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Label: why a job failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Short reason code.
    pub reason: String,
}

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    /// The matched route pattern.
    pub route: String,
    /// The status code.
    pub status: String,
}

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    /// Jobs a worker claimed.
    pub jobs_started: Counter,
    /// Jobs done.
    pub jobs_succeeded: Counter,
    /// Jobs failed, by reason.
    pub jobs_failed: Family<Reason, Counter>,
    /// Claim to done/failed, seconds.
    pub job_duration: Histogram,
    /// One key signature (KMS Sign, HSM C_Sign, local), seconds.
    pub sign_duration: Histogram,
    /// Messages (or claimable jobs, when polling the table) at the last receive.
    pub queue_depth: Gauge,
    /// Jobs being worked on by this process.
    pub in_flight: Gauge,
    /// HTTP requests by route and status.
    pub http_requests: Family<Route, Counter>,
    /// Age of a queue message when a worker received it, seconds.
    pub queue_age: Histogram,
    /// Key calls answered "throttled" (KMS ThrottlingException).
    pub key_throttles: Counter,
    /// Time a key call waited for the client-side rate limit, seconds.
    pub key_rate_wait: Histogram,
    /// The client-side rate limit's current rate, calls per second (0: no limit).
    pub key_rate: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Messages moved to the dead-letter queue.
    pub dead_letters: Counter,
    /// Requests refused with 429 by a per-caller limit, by limit.
    pub caller_limited: Family<Limit, Counter>,
}

/// Label: which per-caller limit refused a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Limit {
    /// `in_flight` or `bytes_per_day`.
    pub limit: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("codeseal");
        let jobs_started = Counter::default();
        let jobs_succeeded = Counter::default();
        let jobs_failed = Family::<Reason, Counter>::default();
        let job_duration = Histogram::new([
            0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        ]);
        let sign_duration =
            Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]);
        let queue_depth = Gauge::default();
        let in_flight = Gauge::default();
        let http_requests = Family::<Route, Counter>::default();
        let queue_age = Histogram::new([
            0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
        ]);
        let key_throttles = Counter::default();
        let key_rate_wait = Histogram::new([0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]);
        let key_rate = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let dead_letters = Counter::default();
        let caller_limited = Family::<Limit, Counter>::default();
        registry.register(
            "queue_age_seconds",
            "Age of a queue message when a worker received it",
            queue_age.clone(),
        );
        registry.register(
            "key_throttles",
            "Key calls answered with throttling (KMS ThrottlingException)",
            key_throttles.clone(),
        );
        registry.register(
            "key_rate_wait_seconds",
            "Time a key call waited for the client-side rate limit",
            key_rate_wait.clone(),
        );
        registry.register(
            "key_rate",
            "Current client-side rate limit of key calls per second (0: none)",
            key_rate.clone(),
        );
        registry.register(
            "dead_letters",
            "Queue messages moved to the dead-letter queue",
            dead_letters.clone(),
        );
        registry.register(
            "caller_limited",
            "Requests refused with 429 by a per-caller limit",
            caller_limited.clone(),
        );
        registry.register(
            "jobs_started",
            "Jobs claimed by a worker",
            jobs_started.clone(),
        );
        registry.register(
            "jobs_succeeded",
            "Jobs signed, verified and stored",
            jobs_succeeded.clone(),
        );
        registry.register("jobs_failed", "Jobs failed, by reason", jobs_failed.clone());
        registry.register(
            "job_duration_seconds",
            "Time from claim to done or failed",
            job_duration.clone(),
        );
        registry.register(
            "sign_duration_seconds",
            "Duration of one key signature call (KMS Sign, PKCS#11 C_Sign, local)",
            sign_duration.clone(),
        );
        registry.register(
            "queue_depth",
            "Messages (or claimable jobs) got by the last receive",
            queue_depth.clone(),
        );
        registry.register(
            "jobs_in_flight",
            "Jobs this process is working on",
            in_flight.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        Self {
            registry,
            jobs_started,
            jobs_succeeded,
            jobs_failed,
            job_duration,
            sign_duration,
            queue_depth,
            in_flight,
            http_requests,
            queue_age,
            key_throttles,
            key_rate_wait,
            key_rate,
            dead_letters,
            caller_limited,
        }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a failed job.
    pub fn failed(&self, reason: crate::job::FailureReason) {
        self.jobs_failed
            .get_or_create(&Reason {
                reason: reason.as_str().to_string(),
            })
            .inc();
    }
}
