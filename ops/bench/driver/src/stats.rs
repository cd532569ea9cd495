//! Percentiles of a set of delays, and the `RESULT` line format.

/// Delays in milliseconds, sorted once for every percentile.
#[derive(Debug, Default)]
pub struct Delays {
    ms: Vec<f64>,
}

impl Delays {
    pub fn new(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        Self { ms }
    }

    pub fn count(&self) -> usize {
        self.ms.len()
    }

    /// The nearest-rank percentile (`q` in 0..=100); `None` without samples.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        if self.ms.is_empty() {
            return None;
        }
        let rank = ((q / 100.0) * self.ms.len() as f64).ceil() as usize;
        Some(self.ms[rank.clamp(1, self.ms.len()) - 1])
    }

    pub fn max(&self) -> Option<f64> {
        self.ms.last().copied()
    }
}

/// A figure for a `RESULT` line: two decimals, or `-` when there is none.
pub fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Delays::new((1..=100).rev().map(f64::from).collect());
        assert_eq!(d.count(), 100);
        assert_eq!(d.percentile(50.0), Some(50.0));
        assert_eq!(d.percentile(99.0), Some(99.0));
        assert_eq!(d.percentile(100.0), Some(100.0));
        assert_eq!(d.percentile(0.0), Some(1.0));
        assert_eq!(d.max(), Some(100.0));
        let one = Delays::new(vec![7.0]);
        assert_eq!(one.percentile(50.0), Some(7.0));
        assert_eq!(one.percentile(99.0), Some(7.0));
    }

    #[test]
    fn no_samples_no_figure() {
        let d = Delays::new(vec![]);
        assert_eq!(d.percentile(50.0), None);
        assert_eq!(fmt(d.percentile(99.0)), "-");
        assert_eq!(fmt(Some(1.234)), "1.23");
    }
}
