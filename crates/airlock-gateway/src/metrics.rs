//! Prometheus counters, rendered in the text exposition format on the admin listener.
//! Atomics rather than a metrics crate: a handful of counters and one histogram do not justify a
//! registry, and the hot path pays one relaxed increment each.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS_US: [u64; 10] = [10, 25, 50, 100, 250, 500, 1_000, 5_000, 25_000, 100_000];

/// Gateway counters.
#[derive(Debug, Default)]
pub struct Metrics {
    allowed: AtomicU64,
    denied: AtomicU64,
    needs_approval: AtomicU64,
    upstream_errors: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    decision_buckets: [AtomicU64; 10],
    decision_count: AtomicU64,
    decision_sum_us: AtomicU64,
}

impl Metrics {
    /// Counts one decision and its latency.
    pub fn decision(&self, outcome: airlock_core::Outcome, micros: u64) {
        let c = match outcome {
            airlock_core::Outcome::Allow => &self.allowed,
            airlock_core::Outcome::Deny => &self.denied,
            airlock_core::Outcome::NeedsApproval => &self.needs_approval,
        };
        c.fetch_add(1, Ordering::Relaxed);
        for (b, limit) in self.decision_buckets.iter().zip(BUCKETS_US) {
            if micros <= limit {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.decision_count.fetch_add(1, Ordering::Relaxed);
        self.decision_sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a reload attempt.
    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloads.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reload_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text exposition, with the current policy engine's decision cache counters.
    pub fn render_with(&self, cache: airlock_policy::CacheStats) -> String {
        let mut s = self.render();
        let _ = writeln!(
            s,
            "# HELP airlock_decision_cache_total Policy decisions answered from the cache (hit) or evaluated (miss), since the last reload."
        );
        let _ = writeln!(s, "# TYPE airlock_decision_cache_total counter");
        let _ = writeln!(
            s,
            "airlock_decision_cache_total{{result=\"hit\"}} {}",
            cache.hits
        );
        let _ = writeln!(
            s,
            "airlock_decision_cache_total{{result=\"miss\"}} {}",
            cache.misses
        );
        let _ = writeln!(
            s,
            "# HELP airlock_decision_cache_enabled 0 when a policy reads context.now, so nothing is cached."
        );
        let _ = writeln!(s, "# TYPE airlock_decision_cache_enabled gauge");
        let _ = writeln!(
            s,
            "airlock_decision_cache_enabled {}",
            u8::from(cache.enabled)
        );
        s
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP airlock_decisions_total Gateway decisions by outcome."
        );
        let _ = writeln!(s, "# TYPE airlock_decisions_total counter");
        let _ = writeln!(
            s,
            "airlock_decisions_total{{decision=\"allow\"}} {}",
            g(&self.allowed)
        );
        let _ = writeln!(
            s,
            "airlock_decisions_total{{decision=\"deny\"}} {}",
            g(&self.denied)
        );
        let _ = writeln!(
            s,
            "airlock_decisions_total{{decision=\"needs_approval\"}} {}",
            g(&self.needs_approval)
        );
        let _ = writeln!(
            s,
            "# HELP airlock_upstream_errors_total Requests that failed at the upstream."
        );
        let _ = writeln!(s, "# TYPE airlock_upstream_errors_total counter");
        let _ = writeln!(
            s,
            "airlock_upstream_errors_total {}",
            g(&self.upstream_errors)
        );
        let _ = writeln!(
            s,
            "# HELP airlock_reloads_total Configuration reloads by result."
        );
        let _ = writeln!(s, "# TYPE airlock_reloads_total counter");
        let _ = writeln!(
            s,
            "airlock_reloads_total{{result=\"ok\"}} {}",
            g(&self.reloads)
        );
        let _ = writeln!(
            s,
            "airlock_reloads_total{{result=\"rejected\"}} {}",
            g(&self.reload_failures)
        );
        let _ = writeln!(
            s,
            "# HELP airlock_decision_seconds Time to authenticate, decide and audit a request."
        );
        let _ = writeln!(s, "# TYPE airlock_decision_seconds histogram");
        for (b, limit) in self.decision_buckets.iter().zip(BUCKETS_US) {
            let _ = writeln!(
                s,
                "airlock_decision_seconds_bucket{{le=\"{}\"}} {}",
                limit as f64 / 1e6,
                g(b)
            );
        }
        let _ = writeln!(
            s,
            "airlock_decision_seconds_bucket{{le=\"+Inf\"}} {}",
            g(&self.decision_count)
        );
        let _ = writeln!(
            s,
            "airlock_decision_seconds_sum {}",
            g(&self.decision_sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "airlock_decision_seconds_count {}",
            g(&self.decision_count)
        );
        s
    }
}
