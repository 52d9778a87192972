//! A client-side token bucket for key calls, sized to the KMS Sign quota (AWS: 300-500 Sign
//! requests per second per account and Region by key type, shared by every caller). Adaptive:
//! a throttling answer lowers the rate (multiplicatively, down to a tenth of the configured
//! rate) and each success raises it again (additively, up to the configured rate), so several
//! workers sharing one quota settle just under it instead of hammering it.
use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// The bucket of one key.
#[derive(Debug)]
pub struct TokenBucket {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_rate: f64,
    rate: f64,
    burst: f64,
    /// May go below zero: a negative balance is the queue of callers already waiting.
    tokens: f64,
    last: Instant,
}

/// The rate never drops below this share of the configured rate.
const MIN_SHARE: f64 = 0.1;
/// A throttling answer multiplies the rate by this.
const DECREASE: f64 = 0.7;
/// A success adds this share of the configured rate.
const INCREASE: f64 = 0.02;
/// Longest single wait handed out (callers queued behind a throttled key wait longer in turn).
const MAX_WAIT: Duration = Duration::from_secs(60);

impl TokenBucket {
    /// `rate` calls per second on average, `burst` at once (at least 1).
    pub fn new(rate: f64, burst: u32) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let burst = f64::from(burst.max(1));
        Self {
            inner: Mutex::new(Inner {
                max_rate: rate,
                rate,
                burst,
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    /// Takes a token; returns how long to wait before using it (zero when one was there).
    pub fn reserve(&self) -> Duration {
        let Ok(mut g) = self.inner.lock() else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let dt = now.saturating_duration_since(g.last).as_secs_f64();
        g.last = now;
        g.tokens = (g.tokens + dt * g.rate).min(g.burst);
        g.tokens -= 1.0;
        if g.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((-g.tokens / g.rate).min(MAX_WAIT.as_secs_f64()))
        }
    }

    /// Waits for a token on this thread (for blocking callers); returns the wait.
    pub fn acquire_blocking(&self) -> Duration {
        let d = self.reserve();
        if !d.is_zero() {
            std::thread::sleep(d);
        }
        d
    }

    /// The key answered "throttled": slow down.
    pub fn throttled(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.rate = (g.rate * DECREASE).max(g.max_rate * MIN_SHARE);
            // Nothing saved up survives a throttle.
            g.tokens = g.tokens.min(0.0);
        }
    }

    /// The key answered: speed up again, towards the configured rate.
    pub fn succeeded(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.rate = (g.rate + g.max_rate * INCREASE).min(g.max_rate);
        }
    }

    /// The current rate, calls per second.
    pub fn rate(&self) -> f64 {
        self.inner.lock().map(|g| g.rate).unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_to_the_rate_after_the_burst() {
        let b = TokenBucket::new(50.0, 5);
        let t = Instant::now();
        for _ in 0..30 {
            b.acquire_blocking();
        }
        // 5 at once, then 25 at 50/s: about 0.5 s.
        let e = t.elapsed().as_secs_f64();
        assert!((0.4..1.5).contains(&e), "{e}");
    }

    #[test]
    fn throttles_lower_the_rate_and_successes_restore_it() {
        let b = TokenBucket::new(100.0, 1);
        for _ in 0..50 {
            b.throttled();
        }
        assert!((b.rate() - 10.0).abs() < 1e-9, "floor: {}", b.rate());
        for _ in 0..10 {
            b.succeeded();
        }
        assert!((b.rate() - 30.0).abs() < 1e-9, "{}", b.rate());
        for _ in 0..1000 {
            b.succeeded();
        }
        assert_eq!(b.rate(), 100.0);
        assert!(TokenBucket::new(f64::NAN, 0).rate() > 0.0);
    }
}
