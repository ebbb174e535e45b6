//! Statistics of a comparison between two activations, each trained over several seeds: the
//! difference of their mean final accuracies with a 95% confidence interval and a two-sided
//! p-value, a verdict in words, and the number of seeds a difference of that size would need.
//!
//! - Paired by seed (Student's t on the per-seed differences, n - 1 degrees of freedom) when
//!   both ran exactly the same seeds, at least two: the seed fixes the initialization and the
//!   data order of both runs, so pairing removes that shared noise.
//! - Welch's t (unequal variances, Welch-Satterthwaite degrees of freedom) otherwise.
//! - One seed on either side: no interval, no p-value, and the verdict says that it is none.
//! - No spread at all (the same difference in every seed, or, unpaired, the same accuracy in
//!   every seed on each side): no t-test is possible, so there is no interval, no p-value and
//!   no better/worse verdict. A few test images give quantized accuracies, and a constant
//!   difference from a handful of them is not evidence; the verdict says so and what would
//!   give one (more seeds, or a larger test set).
//!
//! [`spearman`]: the rank correlation of two paired samples, with its interval and p-value.
//!
//! The t quantiles come from `statrs`. "Seeds needed" is the usual normal-approximation power
//! calculation (two-sided 5% level, 80% power): n = ((z(0.975) + z(0.8)) * sd / |diff|)^2 for
//! paired seeds, twice that per activation for independent ones.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Which test a [`Comparison`] used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    Paired,
    Welch,
    /// Too few seeds for any test.
    None,
}

/// What a comparison says, in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Better,
    Worse,
    /// The interval contains 0; `seeds` is the smaller number of seeds of the two sides.
    NoDetectableDifference {
        seeds: usize,
    },
    /// One side has a single seed: no verdict can be given.
    NotAVerdict,
    /// No spread to estimate an interval from: the paired differences are all equal
    /// (`identical` when they are all 0), or, unpaired, each side has one value in every seed.
    NoSpread {
        seeds: usize,
        identical: bool,
        paired: bool,
    },
}

impl Verdict {
    pub fn words(self) -> String {
        match self {
            Verdict::Better => "better".to_string(),
            Verdict::Worse => "worse".to_string(),
            Verdict::NoDetectableDifference { seeds } => format!("no detectable difference with {seeds} seeds"),
            Verdict::NotAVerdict => "not a verdict: one seed gives no uncertainty (run --seeds 0,1,2)".to_string(),
            Verdict::NoSpread { seeds, identical, paired } => {
                let what = match (identical, paired) {
                    (true, true) => "identical in every seed",
                    (false, true) => "the same difference in every seed",
                    (_, false) => "the same accuracy in every seed on each side",
                };
                format!(
                    "{what}: no interval from {seeds} seeds, so not a verdict (more seeds or a larger test set would give one)"
                )
            }
        }
    }
}

/// Mean, sample standard deviation and count of one side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Summary {
    pub fn of(values: &[f64]) -> Summary {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        let var = if n < 2 { 0.0 } else { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 };
        Summary { mean: if n == 0 { f64::NAN } else { mean }, std: var.sqrt(), n }
    }

    /// The 95% confidence interval of the mean (Student's t, n - 1 degrees of freedom); none
    /// for fewer than two values.
    pub fn ci95(&self) -> Option<(f64, f64)> {
        (self.n >= 2).then(|| {
            let t = StudentsT::new(0.0, 1.0, (self.n - 1) as f64).expect("positive degrees of freedom");
            let half = t.inverse_cdf(0.975) * self.std / (self.n as f64).sqrt();
            (self.mean - half, self.mean + half)
        })
    }
}

/// Beyond this many seeds the number is not worth stating: the difference is practically 0.
pub const MANY_SEEDS: usize = 1000;

/// [`Comparison::seeds_needed`] for a table cell: the number, "more than 1000", or nothing.
pub fn seeds_needed_text(n: Option<usize>) -> String {
    match n {
        Some(n) if n > MANY_SEEDS => format!("more than {MANY_SEEDS}"),
        Some(n) => n.to_string(),
        None => String::new(),
    }
}

impl Test {
    /// How the interval was computed, for tables and JSON: "paired by seed", "Welch", "none".
    pub fn words(self) -> &'static str {
        match self {
            Test::Paired => "paired by seed",
            Test::Welch => "Welch",
            Test::None => "none",
        }
    }
}

impl Comparison {
    /// For a difference too small to detect, how many seeds it would take, in words ("a
    /// difference of this size would need about 44 seeds per activation"); none otherwise.
    pub fn seeds_needed_clause(&self) -> Option<String> {
        match (self.verdict, self.seeds_needed) {
            (Verdict::NoDetectableDifference { .. }, Some(n)) if n > MANY_SEEDS => Some(format!(
                "a difference this small would need more than {MANY_SEEDS} seeds per activation to detect"
            )),
            (Verdict::NoDetectableDifference { .. }, Some(n)) => {
                Some(format!("a difference of this size would need about {n} seeds per activation"))
            }
            _ => None,
        }
    }

    /// The comparison as JSON (accuracies and differences in percentage points), as
    /// `summary.json` files hold it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "difference": self.diff,
            "ci95": self.ci.map(|(lo, hi)| [lo, hi]),
            "p_value": self.p,
            "test": self.test.words(),
            "verdict": self.verdict.words(),
            "seeds_needed": self.seeds_needed,
        })
    }
}

/// A candidate against a baseline (accuracies in percent).
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub candidate: Summary,
    pub baseline: Summary,
    pub test: Test,
    /// candidate mean - baseline mean.
    pub diff: f64,
    /// The 95% confidence interval of `diff` (none with a single seed).
    pub ci: Option<(f64, f64)>,
    /// Two-sided p-value of "no difference".
    pub p: Option<f64>,
    pub verdict: Verdict,
    /// Seeds (per activation) that would detect a difference of this size with 80% power at
    /// the 5% level; none when the observed difference is 0 or there is no spread estimate.
    pub seeds_needed: Option<usize>,
}

impl Comparison {
    /// The difference as a table cell, to `places` decimals: "+0.0520 [+0.0411, +0.0629],
    /// paired by seed", or why it has no interval.
    pub fn difference_text(&self, places: usize) -> String {
        let test = match self.test {
            Test::Paired => ", paired by seed",
            Test::Welch => ", Welch",
            Test::None => "",
        };
        let diff = self.diff;
        match self.ci {
            Some((lo, hi)) => format!("{diff:+.places$} [{lo:+.places$}, {hi:+.places$}]{test}"),
            None if self.test == Test::None => format!("{diff:+.places$} (no interval from one seed)"),
            None => format!("{diff:+.places$} (no interval: no spread){test}"),
        }
    }

    /// The p-value as a table cell: three decimals, or nothing without one.
    pub fn p_text(&self) -> String {
        self.p.map_or(String::new(), |p| format!("{p:.3}"))
    }
}

/// Compares `candidate` with `baseline`, each given as (seed, final accuracy) pairs.
pub fn compare(candidate: &[(u64, f64)], baseline: &[(u64, f64)]) -> Comparison {
    let values = |side: &[(u64, f64)]| side.iter().map(|&(_, v)| v).collect::<Vec<f64>>();
    let (c, b) = (Summary::of(&values(candidate)), Summary::of(&values(baseline)));
    let diff = c.mean - b.mean;
    let none = Comparison {
        candidate: c,
        baseline: b,
        test: Test::None,
        diff,
        ci: None,
        p: None,
        verdict: Verdict::NotAVerdict,
        seeds_needed: None,
    };
    if c.n < 2 || b.n < 2 {
        return none;
    }
    let (test, se, df, sd_for_power, per_side) = match paired_differences(candidate, baseline) {
        Some(d) => {
            let s = Summary::of(&d);
            (Test::Paired, s.std / (s.n as f64).sqrt(), (s.n - 1) as f64, s.std, 1.0)
        }
        None => {
            let (vc, vb) = (c.std.powi(2) / c.n as f64, b.std.powi(2) / b.n as f64);
            let df = (vc + vb).powi(2) / (vc.powi(2) / (c.n - 1) as f64 + vb.powi(2) / (b.n - 1) as f64);
            let pooled = ((c.std.powi(2) + b.std.powi(2)) / 2.0).sqrt();
            (Test::Welch, (vc + vb).sqrt(), df, pooled, 2.0)
        }
    };
    if !(se > 0.0 && df.is_finite()) {
        let seeds = c.n.min(b.n);
        return Comparison {
            test,
            verdict: Verdict::NoSpread { seeds, identical: diff == 0.0, paired: test == Test::Paired },
            ..none
        };
    }
    let t = StudentsT::new(0.0, 1.0, df).expect("positive degrees of freedom");
    let half = t.inverse_cdf(0.975) * se;
    let (ci, p) = ((diff - half, diff + half), 2.0 * (1.0 - t.cdf((diff / se).abs())));
    let verdict = if ci.0 > 0.0 {
        Verdict::Better
    } else if ci.1 < 0.0 {
        Verdict::Worse
    } else {
        Verdict::NoDetectableDifference { seeds: c.n.min(b.n) }
    };
    let seeds_needed = (diff != 0.0 && sd_for_power > 0.0).then(|| {
        let z = Normal::standard();
        let k = z.inverse_cdf(0.975) + z.inverse_cdf(0.8);
        (per_side * (k * sd_for_power / diff.abs()).powi(2)).ceil().max(2.0) as usize
    });
    Comparison { test, ci: Some(ci), p: Some(p), verdict, seeds_needed, ..none }
}

/// [`compare`] for a metric in its own direction: with `higher_is_better` false (a loss), a
/// significantly lower candidate is `Better`. The difference and its interval stay
/// candidate - baseline.
pub fn compare_directed(candidate: &[(u64, f64)], baseline: &[(u64, f64)], higher_is_better: bool) -> Comparison {
    let c = compare(candidate, baseline);
    let verdict = match (c.verdict, higher_is_better) {
        (Verdict::Better, false) => Verdict::Worse,
        (Verdict::Worse, false) => Verdict::Better,
        (v, _) => v,
    };
    Comparison { verdict, ..c }
}

/// The per-seed differences when both sides ran exactly the same seeds (each once).
fn paired_differences(candidate: &[(u64, f64)], baseline: &[(u64, f64)]) -> Option<Vec<f64>> {
    let mut c = candidate.to_vec();
    let mut b = baseline.to_vec();
    c.sort_by_key(|&(s, _)| s);
    b.sort_by_key(|&(s, _)| s);
    let same =
        c.len() == b.len() && c.iter().zip(&b).all(|(x, y)| x.0 == y.0) && c.windows(2).all(|w| w[0].0 != w[1].0);
    same.then(|| c.iter().zip(&b).map(|(x, y)| x.1 - y.1).collect())
}

#[cfg(test)]
mod tests {

    /// scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) gives rho 0.8207826816681233
    /// and p 0.0885870053135438 (tied values share their mean rank).
    #[test]
    fn spearman_matches_scipy_with_ties() {
        let c = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
        assert!((c.rho - 0.8207826816681233).abs() < 1e-12, "{c:?}");
        assert!((c.p.unwrap() - 0.0885870053135438).abs() < 1e-9, "{c:?}");
        let (lo, hi) = c.ci95.unwrap();
        assert!(lo < c.rho && c.rho < hi && hi <= 1.0 && lo >= -1.0, "{c:?}");
        // A monotone transform is a perfect correlation; reversed, a perfect negative one.
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let cubes: Vec<f64> = x.iter().map(|v| v.powi(3)).collect();
        assert_eq!(spearman(&x, &cubes).unwrap().rho, 1.0);
        let reversed: Vec<f64> = x.iter().map(|v| -v).collect();
        assert_eq!(spearman(&x, &reversed).unwrap().rho, -1.0);
        // Nothing to rank: too few pairs, or one side constant.
        assert_eq!(spearman(&[1.0], &[2.0]), None);
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]), None);
    }
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Paired: differences 1, 2, 3 -> mean 2, sd 1, se 1/sqrt(3), t = 3.4641 with 2 df;
    /// t(0.975, 2) = 4.302653, so the interval is 2 +- 2.484138; p = 0.07418 (scipy's
    /// ttest_rel on the same numbers).
    #[test]
    fn paired_by_seed_matches_hand_computed_values() {
        let c = [(0, 51.0), (1, 53.0), (2, 55.0)];
        let b = [(2, 52.0), (0, 50.0), (1, 51.0)];
        let r = compare(&c, &b);
        assert_eq!(r.test, Test::Paired);
        assert!(close(r.diff, 2.0, 1e-12));
        let (lo, hi) = r.ci.unwrap();
        assert!(close(lo, 2.0 - 2.484138, 1e-5) && close(hi, 2.0 + 2.484138, 1e-5), "{lo} {hi}");
        assert!(close(r.p.unwrap(), 0.074180, 1e-5), "{:?}", r.p);
        assert_eq!(r.verdict, Verdict::NoDetectableDifference { seeds: 3 });
        assert_eq!(r.verdict.words(), "no detectable difference with 3 seeds");
        // (1.959964 + 0.841621)^2 * 1^2 / 2^2 = 1.96 -> 2 seeds.
        assert_eq!(r.seeds_needed, Some(2));
    }

    /// Welch: a = 51.30 +- 0.97, b = 51.47 +- 1.19 over 3 seeds each, as different seeds.
    /// se = sqrt(0.97^2/3 + 1.19^2/3) = 0.886378; df = 3.843761 (Welch-Satterthwaite);
    /// t(0.975, 3.8438) = 2.821524; p = 0.857608 (scipy 1.x: ttest_ind(equal_var=False), t.ppf).
    #[test]
    fn welch_when_the_seeds_differ_matches_hand_computed_values() {
        // Values with exactly those means and standard deviations: m - s, m, m + s.
        let side = |seeds: [u64; 3], m: f64, s: f64| [(seeds[0], m - s), (seeds[1], m), (seeds[2], m + s)];
        let r = compare(&side([0, 1, 2], 51.30, 0.97), &side([3, 4, 5], 51.47, 1.19));
        assert_eq!(r.test, Test::Welch);
        assert!(close(r.candidate.std, 0.97, 1e-12) && close(r.baseline.std, 1.19, 1e-12));
        let se = (0.97f64.powi(2) / 3.0 + 1.19f64.powi(2) / 3.0).sqrt();
        assert!(close(se, 0.886378, 1e-6));
        let (lo, hi) = r.ci.unwrap();
        assert!(close((hi - lo) / 2.0 / se, 2.821524, 1e-5), "{}", (hi - lo) / 2.0 / se);
        assert!(close(r.p.unwrap(), 0.857608, 1e-5), "{:?}", r.p);
        // 2 * ((z(0.975) + z(0.8)) * sqrt((0.97^2 + 1.19^2) / 2) / 0.17)^2 = 640.13.
        assert_eq!(r.seeds_needed, Some(641));
        assert_eq!(r.verdict, Verdict::NoDetectableDifference { seeds: 3 });
    }

    #[test]
    fn clear_differences_are_better_or_worse() {
        let c = [(0, 60.0), (1, 61.0), (2, 60.5)];
        let b = [(0, 50.0), (1, 51.5), (2, 50.2)];
        assert_eq!(compare(&c, &b).verdict, Verdict::Better);
        assert_eq!(compare(&b, &c).verdict, Verdict::Worse);
        // A loss: the higher candidate is worse, the lower one better, with the same numbers.
        assert_eq!(compare_directed(&c, &b, false).verdict, Verdict::Worse);
        assert_eq!(compare_directed(&b, &c, false).verdict, Verdict::Better);
        assert_eq!(compare_directed(&c, &b, false).diff, compare(&c, &b).diff);
        assert!(compare(&c, &b).p.unwrap() < 0.01);
        // Identical runs: no spread, so no interval and no p-value.
        let same = compare(&c, &c);
        assert_eq!((same.ci, same.p, same.seeds_needed), (None, None, None));
    }

    /// mean 92, sd 2, n 3: 92 +- 4.302653 * 2 / sqrt(3) = 92 +- 4.968275 (scipy's t.interval).
    #[test]
    fn interval_of_a_mean() {
        let s = Summary::of(&[90.0, 92.0, 94.0]);
        let (lo, hi) = s.ci95().unwrap();
        assert!(close(lo, 92.0 - 4.968275, 1e-5) && close(hi, 92.0 + 4.968275, 1e-5), "{lo} {hi}");
        assert_eq!(Summary::of(&[91.0]).ci95(), None);
    }

    #[test]
    fn huge_seed_counts_are_not_stated() {
        assert_eq!(seeds_needed_text(Some(641)), "641");
        assert_eq!(seeds_needed_text(Some(21375)), "more than 1000");
        assert_eq!(seeds_needed_text(None), "");
    }

    /// 20/24 vs 22/26 correct over 2 seeds: a constant difference from quantized accuracies
    /// is no evidence, and identical runs are said to be identical; neither is better.
    #[test]
    fn no_spread_gives_no_interval_and_no_verdict() {
        let c = [(0, 100.0 * 20.0 / 24.0), (1, 100.0 * 22.0 / 26.0)];
        let b: Vec<(u64, f64)> = c.iter().map(|&(s, v)| (s, v - 2.0)).collect();
        let r = compare(&c, &b);
        assert_eq!((r.test, r.ci, r.p, r.seeds_needed), (Test::Paired, None, None, None));
        assert_eq!(r.verdict, Verdict::NoSpread { seeds: 2, identical: false, paired: true });
        assert!(r.verdict.words().starts_with("the same difference in every seed: no interval from 2 seeds"));
        let same = compare(&c, &c);
        assert!(same.verdict.words().starts_with("identical in every seed"), "{}", same.verdict.words());
        assert_eq!(same.ci, None);
        // Different seeds, each side constant: Welch has no spread either.
        let r = compare(&[(0, 50.0), (1, 50.0)], &[(2, 40.0), (3, 40.0)]);
        assert_eq!((r.test, r.ci, r.p), (Test::Welch, None, None));
        assert!(r.verdict.words().contains("more seeds or a larger test set"));
        // A spread on either side is a t-test again.
        assert_eq!(compare(&[(0, 50.0), (1, 51.0)], &[(2, 40.0), (3, 40.0)]).test, Test::Welch);
    }

    #[test]
    fn a_single_seed_is_not_a_verdict() {
        let r = compare(&[(0, 60.0)], &[(0, 50.0), (1, 51.0)]);
        assert_eq!((r.test, r.ci, r.p, r.verdict), (Test::None, None, None, Verdict::NotAVerdict));
        assert!(r.verdict.words().starts_with("not a verdict"));
        assert!(close(r.diff, 9.5, 1e-12));
    }
}

/// A rank correlation, with its 95% interval (Fisher's z with Bonett and Wright's standard
/// error, sqrt((1 + rho^2 / 2) / (n - 3))) and its two-sided p-value (Student's t on n - 2
/// degrees of freedom), where the sample allows them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Correlation {
    pub rho: f64,
    pub n: usize,
    /// None below four pairs, or at |rho| = 1.
    pub ci95: Option<(f64, f64)>,
    /// None below three pairs.
    pub p: Option<f64>,
}

/// Spearman's rank correlation of `a` and `b` (paired, tied values share their mean rank):
/// Pearson's correlation of the ranks. None for fewer than two pairs, or where either side
/// has a single value repeated (its ranks do not vary).
pub fn spearman(a: &[f64], b: &[f64]) -> Option<Correlation> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let (ra, rb) = (ranks(&a[..n]), ranks(&b[..n]));
    let (ma, mb) = (ra.iter().sum::<f64>() / n as f64, rb.iter().sum::<f64>() / n as f64);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let (va, vb): (f64, f64) = (ra.iter().map(|x| (x - ma).powi(2)).sum(), rb.iter().map(|y| (y - mb).powi(2)).sum());
    if va == 0.0 || vb == 0.0 {
        return None;
    }
    let rho = (cov / (va * vb).sqrt()).clamp(-1.0, 1.0);
    let ci95 = (n >= 4 && rho.abs() < 1.0).then(|| {
        let z = rho.atanh();
        let half = Normal::standard().inverse_cdf(0.975) * ((1.0 + rho * rho / 2.0) / (n - 3) as f64).sqrt();
        ((z - half).tanh(), (z + half).tanh())
    });
    let p = (n >= 3).then(|| match rho.abs() < 1.0 {
        true => {
            let t = rho * ((n - 2) as f64 / (1.0 - rho * rho)).sqrt();
            let dist = StudentsT::new(0.0, 1.0, (n - 2) as f64).expect("positive degrees of freedom");
            2.0 * (1.0 - dist.cdf(t.abs()))
        }
        false => 0.0,
    });
    Some(Correlation { rho, n, ci95, p })
}

/// The ranks of `values` from 1, ties sharing their mean rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut at = 0;
    while at < order.len() {
        let mut end = at + 1;
        while end < order.len() && values[order[end]] == values[order[at]] {
            end += 1;
        }
        let mean = (at + 1 + end) as f64 / 2.0;
        order[at..end].iter().for_each(|&i| ranks[i] = mean);
        at = end;
    }
    ranks
}
