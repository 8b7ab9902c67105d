//! A token bucket per workspace, so one runaway agent cannot starve the
//! others.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use uuid::Uuid;

/// Refill rate and burst of every workspace's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Calls per second, sustained; 0 disables the limit.
    pub per_second: f64,
    /// Calls a workspace may make at once after being idle.
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 50.0,
            burst: 200.0,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The buckets of every workspace seen.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `workspace`; `Err(seconds)` says how long until
    /// the next one when the bucket is empty.
    pub fn take(&self, workspace: Uuid) -> Result<(), f64> {
        if self.limit.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // Forget idle workspaces now and then: a full bucket holds no state.
        if buckets.len() > 100_000 {
            let full_after = self.limit.burst / self.limit.per_second;
            buckets.retain(|_, b| now.duration_since(b.last).as_secs_f64() < full_after);
        }
        let bucket = buckets.entry(workspace).or_insert(Bucket {
            tokens: self.limit.burst,
            last: now,
        });
        let refill = now.duration_since(bucket.last).as_secs_f64() * self.limit.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.limit.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - bucket.tokens) / self.limit.per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_served_then_refused_and_other_workspaces_are_untouched() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 0.001,
            burst: 3.0,
        });
        let a = Uuid::new_v4();
        for _ in 0..3 {
            assert!(limiter.take(a).is_ok());
        }
        assert!(limiter.take(a).is_err());
        assert!(limiter.take(Uuid::new_v4()).is_ok());
    }

    #[test]
    fn zero_rate_disables_the_limit() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 0.0,
            burst: 0.0,
        });
        let a = Uuid::new_v4();
        for _ in 0..1000 {
            assert!(limiter.take(a).is_ok());
        }
    }
}
