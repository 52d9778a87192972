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
    /// Claimable jobs seen at the last poll.
    pub queue_depth: Gauge,
    /// Jobs being worked on by this process.
    pub in_flight: Gauge,
    /// HTTP requests by route and status.
    pub http_requests: Family<Route, Counter>,
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
            "Claimable jobs seen at the last poll",
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
