//! A client-side token bucket for key calls, sized to the KMS Sign quota (AWS: 300-500 Sign
//! requests per second per account and Region by key type, shared by every caller). Adaptive:
//! a throttling answer lowers the rate (by 30 %, at most once per second, down to a tenth of
//! the configured rate) and the rate grows back with time (25 % of the configured rate per
//! second), so several workers sharing one quota settle around it instead of hammering it.
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
    last_decrease: Option<Instant>,
}

/// The rate never drops below this share of the configured rate.
const MIN_SHARE: f64 = 0.1;
/// A throttling answer multiplies the rate by this.
const DECREASE: f64 = 0.7;
/// The rate grows back by this share of the configured rate per second.
const RECOVER_PER_SEC: f64 = 0.25;
/// Throttled answers within this time of a decrease do not decrease the rate again (calls in
/// flight at the same moment are throttled together: one signal, not several).
const DECREASE_WINDOW: Duration = Duration::from_secs(1);
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
                last_decrease: None,
            }),
        }
    }

    /// Takes a token; returns how long to wait before using it (zero when one was there).
    pub fn reserve(&self) -> Duration {
        let Ok(mut g) = self.inner.lock() else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        g.refill(now);
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
        self.throttled_at(Instant::now());
    }

    fn throttled_at(&self, now: Instant) {
        if let Ok(mut g) = self.inner.lock() {
            g.refill(now);
            if g.last_decrease
                .is_some_and(|t| now.saturating_duration_since(t) < DECREASE_WINDOW)
            {
                return;
            }
            g.last_decrease = Some(now);
            g.rate = (g.rate * DECREASE).max(g.max_rate * MIN_SHARE);
            // Nothing saved up survives a throttle.
            g.tokens = g.tokens.min(0.0);
        }
    }

    /// The current rate, calls per second.
    pub fn rate(&self) -> f64 {
        self.inner
            .lock()
            .map(|mut g| {
                g.refill(Instant::now());
                g.rate
            })
            .unwrap_or(0.0)
    }
}

impl Inner {
    /// Tokens and rate as of `now`.
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.rate = (self.rate + self.max_rate * RECOVER_PER_SEC * dt).min(self.max_rate);
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
    fn throttles_lower_the_rate_once_per_window_and_time_restores_it() {
        let b = TokenBucket::new(100.0, 1);
        let t0 = Instant::now();
        b.throttled_at(t0);
        // Throttles together with the first: one decrease.
        b.throttled_at(t0 + Duration::from_millis(10));
        let r = b.inner.lock().unwrap().rate;
        assert!((69.0..71.0).contains(&r), "{r}");
        // A throttle every second: the cut meets a second's regrowth, (r + 25) * 0.7 = r.
        for i in 1..40 {
            b.throttled_at(t0 + DECREASE_WINDOW * i);
        }
        let r = b.inner.lock().unwrap().rate;
        assert!((56.0..61.0).contains(&r), "settled at {r}");
        // Then back up with time: 25 % of the configured rate per second.
        b.inner.lock().unwrap().refill(t0 + DECREASE_WINDOW * 40);
        let r = b.inner.lock().unwrap().rate;
        assert!((81.0..86.0).contains(&r), "{r}");
        b.inner
            .lock()
            .unwrap()
            .refill(t0 + Duration::from_secs(100));
        assert_eq!(b.inner.lock().unwrap().rate, 100.0);
        assert!(TokenBucket::new(f64::NAN, 0).rate() > 0.0);
    }
}
