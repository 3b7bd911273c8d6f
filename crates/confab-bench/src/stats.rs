//! Latency samples and their percentiles.
//!
//! A sorted `Vec` is enough here: a bench run records at most a few million
//! samples, and sorting them once at the end costs less than a histogram
//! dependency.

use serde::Serialize;

/// Latency samples in microseconds, gathered per task and merged at the end
/// so the hot path never shares a lock.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u32>);

impl Samples {
    /// Records one latency.
    pub fn record(&mut self, micros: u64) {
        self.0.push(u32::try_from(micros).unwrap_or(u32::MAX));
    }

    /// Adds another task's samples.
    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// p50/p90/p99/max in milliseconds (zeros when empty).
    pub fn summary(mut self) -> Percentiles {
        self.0.sort_unstable();
        let at = |q: f64| -> f64 {
            if self.0.is_empty() {
                return 0.0;
            }
            let last = self.0.len() - 1;
            // Nearest rank; q in [0, 1].
            let index = ((q * last as f64).round() as usize).min(last);
            f64::from(self.0[index]) / 1000.0
        };
        Percentiles {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// Latency percentiles as reported, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_hundred() {
        let mut samples = Samples::default();
        for ms in 1..=100u64 {
            samples.record(ms * 1000);
        }
        let p = samples.summary();
        assert_eq!(p.p50_ms, 51.0);
        assert_eq!(p.p99_ms, 99.0);
        assert_eq!(p.max_ms, 100.0);
    }
}
