//! Is a change real? Descriptive statistics over repeats and confidence
//! intervals for the change against the baseline.
//!
//! Runs of a lab are few (a handful of repeats of 90 s each), so intervals
//! come from Student's t rather than a bootstrap, which needs more samples
//! to be trusted: Welch's interval for the difference of two means (no
//! equal-variance assumption) and the one-sample interval for a mean. With
//! fewer than two runs on either side there is no interval and the verdict
//! says so, instead of pretending a single pair of numbers is evidence.

use crate::results::{Direction, Stats, Verdict};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Describe a set of values (an empty set gives all zeros and n = 0).
pub fn describe(values: &[f64]) -> Stats {
    let n = values.len();
    if n == 0 {
        return Stats::default();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = values.iter().sum::<f64>() / n as f64;
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let stddev = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Stats {
        n,
        mean,
        median,
        min: sorted[0],
        max: sorted[n - 1],
        stddev,
    }
}

/// The two-sided Student's t quantile for `confidence` with `df` degrees of freedom.
fn t_quantile(confidence: f64, df: f64) -> Option<f64> {
    if !(0.0..1.0).contains(&confidence) || df.is_nan() || df <= 0.0 {
        return None;
    }
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    Some(t.inverse_cdf(1.0 - (1.0 - confidence) / 2.0))
}

/// Confidence interval of the mean of `values` (needs n >= 2).
pub fn mean_ci(values: &[f64], confidence: f64) -> Option<(f64, f64)> {
    let s = describe(values);
    if s.n < 2 {
        return None;
    }
    let q = t_quantile(confidence, (s.n - 1) as f64)?;
    let half = q * s.stddev / (s.n as f64).sqrt();
    Some((s.mean - half, s.mean + half))
}

/// Welch's confidence interval for `mean(x) - mean(base)` (needs n >= 2 on
/// both sides). When both samples have zero variance the interval is the
/// point difference itself.
pub fn diff_ci(base: &[f64], x: &[f64], confidence: f64) -> Option<(f64, f64)> {
    let (b, v) = (describe(base), describe(x));
    if b.n < 2 || v.n < 2 {
        return None;
    }
    let diff = v.mean - b.mean;
    let (vb, vx) = (b.stddev.powi(2) / b.n as f64, v.stddev.powi(2) / v.n as f64);
    let se2 = vb + vx;
    if se2 == 0.0 {
        return Some((diff, diff));
    }
    // Welch–Satterthwaite degrees of freedom.
    let df = se2.powi(2) / (vb.powi(2) / (b.n - 1) as f64 + vx.powi(2) / (v.n - 1) as f64);
    let q = t_quantile(confidence, df)?;
    let half = q * se2.sqrt();
    Some((diff - half, diff + half))
}

/// The verdict from an interval of the change (value - baseline).
pub fn verdict(ci: Option<(f64, f64)>, direction: Direction) -> Verdict {
    let Some((lo, hi)) = ci else {
        return Verdict::NeedsRepeats;
    };
    let up = lo > 0.0;
    let down = hi < 0.0;
    match (up, down, direction) {
        (false, false, _) => Verdict::NoClearChange,
        (true, _, Direction::HigherIsBetter) | (_, true, Direction::LowerIsBetter) => {
            Verdict::Better
        }
        (true, _, Direction::LowerIsBetter) | (_, true, Direction::HigherIsBetter) => {
            Verdict::Worse
        }
        (true, _, Direction::Neutral) => Verdict::Higher,
        (_, true, Direction::Neutral) => Verdict::Lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn describe_matches_hand_computed_values() {
        // mean 5, deviations -3 -1 1 3 -> squares 20 / 3 -> sd 2.5820
        let s = describe(&[2.0, 4.0, 6.0, 8.0]);
        assert_eq!(
            (s.n, s.mean, s.median, s.min, s.max),
            (4, 5.0, 5.0, 2.0, 8.0)
        );
        assert!(close(s.stddev, 2.581_989), "{}", s.stddev);
        let one = describe(&[7.0]);
        assert_eq!((one.mean, one.median, one.stddev), (7.0, 7.0, 0.0));
    }

    #[test]
    fn mean_interval_matches_scipy() {
        // scipy.stats.t.interval(0.95, 3, loc=5, scale=2.581989/2) = (0.8915, 9.1085)
        let (lo, hi) = mean_ci(&[2.0, 4.0, 6.0, 8.0], 0.95).unwrap();
        assert!(close(lo, 0.891_5) && close(hi, 9.108_5), "{lo} {hi}");
        assert!(mean_ci(&[1.0], 0.95).is_none());
    }

    #[test]
    fn welch_interval_matches_scipy() {
        // base = [10, 12, 11, 13], x = [7, 8, 6, 9]: diff = -4,
        // se = sqrt(1.6667/4 + 1.6667/4) = 0.91287, df = 6,
        // t(0.975, 6) = 2.446912 -> half = 2.23371.
        let (lo, hi) = diff_ci(&[10.0, 12.0, 11.0, 13.0], &[7.0, 8.0, 6.0, 9.0], 0.95).unwrap();
        assert!(close(lo, -6.233_7) && close(hi, -1.766_3), "{lo} {hi}");
        assert_eq!(
            verdict(Some((lo, hi)), Direction::LowerIsBetter),
            Verdict::Better
        );
        assert_eq!(
            verdict(Some((lo, hi)), Direction::HigherIsBetter),
            Verdict::Worse
        );
        assert_eq!(verdict(Some((lo, hi)), Direction::Neutral), Verdict::Lower);
    }

    #[test]
    fn an_interval_spanning_zero_is_no_clear_change() {
        let ci = diff_ci(&[10.0, 14.0, 9.0], &[11.0, 8.0, 13.0], 0.95);
        assert_eq!(
            verdict(ci, Direction::LowerIsBetter),
            Verdict::NoClearChange
        );
        assert_eq!(
            verdict(None, Direction::LowerIsBetter),
            Verdict::NeedsRepeats
        );
    }
}
