//! Circuit breaker: stops calling a plugin that keeps failing.
//!
//! It counts calls, not attempts: a call holds one [`Permit`] across all its
//! retries and records how the call ended, so a call whose every attempt got
//! a 503 counts as one failure.
//!
//! Closed: calls flow; consecutive failed calls (ended in a transport error,
//! a timeout or a 5xx) are counted and any call that ends below 500 resets
//! the count, since it shows the plugin is alive. At the threshold the
//! breaker opens: calls fail fast for `open_for`. Then it is half-open:
//! exactly one call (the probe, with its retries) goes through while others
//! still fail fast; the probe's success closes the breaker, its failure
//! opens it again. Time comes from an injectable
//! [`Clock`] so tests can step over the open period.

use crate::config::BreakerPolicy;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A source of the current time for the circuit breaker.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to, for tests of time-based behaviour.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at the current instant.
    pub fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        *offset += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let offset = *self.offset.lock().unwrap_or_else(|p| p.into_inner());
        self.start + offset
    }
}

/// The breaker's state, as [`crate::Client::breaker_state`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; `failures` consecutive failed calls so far.
    Closed {
        /// Failed calls counted since the last success.
        failures: u32,
    },
    /// Calls fail fast for this much longer.
    Open {
        /// Time left before the next probe may go.
        remaining: Duration,
    },
    /// One probe may go (or is going) through.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

/// What a finished call tells the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The plugin answered below 500.
    Alive,
    /// Transport error, timeout or 5xx.
    Failed,
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    policy: BreakerPolicy,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

/// Leave to make one call (all its attempts). Dropping it unrecorded (the
/// caller gave up) frees the probe slot so the breaker cannot stay stuck
/// half-open.
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    recorded: bool,
}

impl CircuitBreaker {
    pub(crate) fn new(policy: BreakerPolicy, clock: Arc<dyn Clock>) -> Self {
        CircuitBreaker {
            policy,
            clock,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves a valid state; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit to send, or `None` when the call must fail fast.
    pub(crate) fn admit(&self) -> Option<Permit<'_>> {
        if self.policy.failure_threshold == 0 {
            return Some(self.permit(false));
        }
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Some(self.permit(false)),
            State::Open { until } => {
                if self.clock.now() >= until {
                    *state = State::HalfOpen {
                        probe_in_flight: true,
                    };
                    Some(self.permit(true))
                } else {
                    None
                }
            }
            State::HalfOpen { probe_in_flight } => {
                if probe_in_flight {
                    None
                } else {
                    *state = State::HalfOpen {
                        probe_in_flight: true,
                    };
                    Some(self.permit(true))
                }
            }
        }
    }

    fn permit(&self, probe: bool) -> Permit<'_> {
        Permit {
            breaker: self,
            probe,
            recorded: false,
        }
    }

    fn record(&self, probe: bool, outcome: Outcome) {
        if self.policy.failure_threshold == 0 {
            return;
        }
        let mut state = self.lock();
        let now = self.clock.now();
        let next = match (&*state, outcome) {
            (_, Outcome::Alive) => {
                // A late answer from before the breaker opened must not close
                // it; only the probe (or a closed breaker) resets.
                if matches!(*state, State::Closed { .. }) || probe {
                    State::Closed { failures: 0 }
                } else {
                    return;
                }
            }
            (State::Closed { failures }, Outcome::Failed) => {
                let failures = failures + 1;
                if failures >= self.policy.failure_threshold {
                    State::Open {
                        until: now + self.policy.open_for,
                    }
                } else {
                    State::Closed { failures }
                }
            }
            (State::HalfOpen { .. }, Outcome::Failed) if probe => State::Open {
                until: now + self.policy.open_for,
            },
            // Failures of requests sent before the breaker opened change nothing.
            (_, Outcome::Failed) => return,
        };
        *state = next;
    }

    fn release_probe(&self) {
        let mut state = self.lock();
        if let State::HalfOpen { probe_in_flight } = &mut *state {
            *probe_in_flight = false;
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        let state = self.lock();
        match *state {
            State::Closed { failures } => BreakerState::Closed { failures },
            State::Open { until } => {
                let now = self.clock.now();
                if now >= until {
                    BreakerState::HalfOpen
                } else {
                    BreakerState::Open {
                        remaining: until - now,
                    }
                }
            }
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

impl Permit<'_> {
    /// Reports how the call ended.
    pub(crate) fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breaker.record(self.probe, outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> (CircuitBreaker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        (
            CircuitBreaker::new(BreakerPolicy::default(), clock.clone()),
            clock,
        )
    }

    fn fail(b: &CircuitBreaker) {
        b.admit().expect("admitted").record(Outcome::Failed);
    }

    #[test]
    fn opens_after_three_consecutive_failures_and_probes_after_open_period() {
        let (b, clock) = breaker();
        fail(&b);
        fail(&b);
        assert!(b.admit().is_some());
        fail(&b);
        assert!(b.admit().is_none(), "open after 3 failures");
        clock.advance(Duration::from_secs(59));
        assert!(b.admit().is_none(), "still open at 59 s");
        clock.advance(Duration::from_secs(1));
        let probe = b.admit().expect("probe after 60 s");
        assert!(b.admit().is_none(), "only one probe at a time");
        probe.record(Outcome::Alive);
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn failed_probe_reopens_and_dropped_probe_frees_the_slot() {
        let (b, clock) = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        clock.advance(Duration::from_secs(60));
        drop(b.admit().expect("probe"));
        let probe = b.admit().expect("slot freed by the dropped probe");
        probe.record(Outcome::Failed);
        assert!(b.admit().is_none(), "reopened");
        clock.advance(Duration::from_secs(60));
        assert!(b.admit().is_some());
    }

    #[test]
    fn an_answer_below_500_resets_the_count() {
        let (b, _clock) = breaker();
        fail(&b);
        fail(&b);
        b.admit().expect("admitted").record(Outcome::Alive);
        fail(&b);
        fail(&b);
        assert!(b.admit().is_some());
    }
}
