//! Prometheus metrics, kept in atomics so recording one costs a few relaxed adds.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds, cumulative on export.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Latency bounds in seconds, 50 µs to 10 s.
pub const LATENCY_BOUNDS_S: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// Batch-size bounds, 1 to 4096 commands.
pub const BATCH_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records `value`; sums are kept in millionths so they stay integers.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines; `labels` is `k="v",` or empty.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {total}");
        let bare = labels.trim_end_matches(',');
        let braced = if bare.is_empty() {
            String::new()
        } else {
            format!("{{{bare}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum());
        let _ = writeln!(out, "{name}_count{braced} {total}");
    }
}

/// What the store writer reports about itself.
pub struct WriterMetrics {
    pub commit_seconds: Histogram,
    pub batch_commands: Histogram,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        Self {
            commit_seconds: Histogram::new(LATENCY_BOUNDS_S),
            batch_commands: Histogram::new(BATCH_BOUNDS),
        }
    }
}

impl WriterMetrics {
    pub fn render(&self, out: &mut String) {
        out.push_str("# TYPE marketd_store_commit_seconds histogram\n");
        self.commit_seconds
            .render(out, "marketd_store_commit_seconds", "");
        out.push_str("# TYPE marketd_store_batch_commands histogram\n");
        self.batch_commands
            .render(out, "marketd_store_batch_commands", "");
    }
}

/// Requests and their latency, per route (indexed as `http::endpoint::ROUTES`).
pub struct HttpMetrics {
    routes: Vec<RouteMetrics>,
    /// Requests that matched no route (404/405 before dispatch).
    unmatched: AtomicU64,
    pub orders_placed: AtomicU64,
}

struct RouteMetrics {
    label: &'static str,
    /// Answers by status class: 1xx..5xx.
    by_class: [AtomicU64; 5],
    seconds: Histogram,
}

impl HttpMetrics {
    pub fn new(labels: impl Iterator<Item = &'static str>) -> Self {
        Self {
            routes: labels
                .map(|label| RouteMetrics {
                    label,
                    by_class: Default::default(),
                    seconds: Histogram::new(LATENCY_BOUNDS_S),
                })
                .collect(),
            unmatched: AtomicU64::new(0),
            orders_placed: AtomicU64::new(0),
        }
    }

    pub fn record(&self, route: Option<usize>, status: u16, seconds: f64) {
        let Some(r) = route.and_then(|i| self.routes.get(i)) else {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let class = (status / 100).clamp(1, 5) as usize - 1;
        r.by_class[class].fetch_add(1, Ordering::Relaxed);
        r.seconds.observe(seconds);
    }

    pub fn render(&self, out: &mut String) {
        out.push_str("# TYPE marketd_http_requests_total counter\n");
        for r in &self.routes {
            for (i, n) in r.by_class.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "marketd_http_requests_total{{route=\"{}\",status=\"{}xx\"}} {n}",
                        r.label,
                        i + 1
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "marketd_http_requests_total{{route=\"unmatched\",status=\"4xx\"}} {}",
            self.unmatched.load(Ordering::Relaxed)
        );
        out.push_str("# TYPE marketd_http_request_seconds histogram\n");
        for r in self.routes.iter().filter(|r| r.seconds.count() > 0) {
            r.seconds.render(
                out,
                "marketd_http_request_seconds",
                &format!("route=\"{}\",", r.label),
            );
        }
        out.push_str("# TYPE marketd_orders_placed_total counter\n");
        let _ = writeln!(
            out,
            "marketd_orders_placed_total {}",
            self.orders_placed.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = Histogram::new(&[1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.5);
        h.observe(9.0);
        let mut out = String::new();
        h.render(&mut out, "x", "route=\"a\",");
        assert!(out.contains("x_bucket{route=\"a\",le=\"1\"} 1\n"));
        assert!(out.contains("x_bucket{route=\"a\",le=\"2\"} 2\n"));
        assert!(out.contains("x_bucket{route=\"a\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count{route=\"a\"} 3\n"));
        assert!(out.contains("x_sum{route=\"a\"} 11\n"));
    }
}
