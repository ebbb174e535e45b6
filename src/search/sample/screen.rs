//! What a sample-based search checks before it trains a proposed function: its identity (the
//! canonical formula and the numeric fingerprint, so the same function is never trained
//! twice) and whether it is worth training at all. Constant functions, functions that are not
//! finite in float32 on ordinary inputs, and functions whose derivative is zero almost
//! everywhere are rejected with a reason and reward 0.

use crate::expr::Formula;

/// The points a candidate is checked on: ordinary pre-activation values after batch norm.
const GRID: usize = 201;
const LO: f64 = -5.0;
const HI: f64 = 5.0;

/// A candidate's identity, or why it is not trained.
#[derive(Clone, Debug, PartialEq)]
pub enum Screen {
    /// Worth training; its fingerprint (`Formula::fingerprint`) identifies the function.
    Train { fingerprint: u64 },
    /// Not trained, with the reason (and a fingerprint where the function has one).
    Reject { reason: String, fingerprint: Option<u64> },
}

/// A function's identity as text: its fingerprint in hex, or its formula for a function without
/// one. Two proposals with one identity are one function (repeats, the surrogate's keys, the
/// Fisher features' cache).
pub fn identity(fingerprint: Option<u64>, formula: &str) -> String {
    fingerprint.map_or_else(|| formula.to_string(), |f| format!("{f:016x}"))
}

/// Checks `formula` with its parameters at `init`.
pub fn screen(formula: &Formula, init: &[f64]) -> Screen {
    let fingerprint = formula.fingerprint();
    let reject = |reason: String| Screen::Reject { reason, fingerprint };
    let params32: Vec<f32> = init.iter().map(|&v| v as f32).collect();
    let mut dparams = vec![0.0f32; init.len()];
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut moving = 0;
    for i in 0..GRID {
        let x = LO + (HI - LO) * i as f64 / (GRID - 1) as f64;
        let (v, d) = formula.eval_grad(x as f32, &params32, &mut dparams);
        if !v.is_finite() || !d.is_finite() {
            let what = if v.is_finite() { "its derivative is" } else { "it is" };
            return reject(format!("{what} not finite in float32 at x = {x:.2}"));
        }
        lo = lo.min(v as f64);
        hi = hi.max(v as f64);
        if d.abs() > 1e-6 {
            moving += 1;
        }
    }
    if hi - lo <= 1e-6 * (1.0 + lo.abs().max(hi.abs())) {
        return reject(format!("it is constant ({}) on [-5, 5]", crate::expr::print::format_number(lo)));
    }
    if moving * 10 < GRID {
        return reject(format!(
            "its derivative is zero almost everywhere on [-5, 5] (non-zero at {moving} of {GRID} points)"
        ));
    }
    match fingerprint {
        Some(fingerprint) => Screen::Train { fingerprint },
        None => reject("it is not finite at some x in [-5, 5]".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Screen {
        let f = Formula::parse(text).unwrap().canonical();
        let ones = vec![1.0; f.num_params()];
        screen(&f, &ones)
    }

    fn reason(text: &str) -> String {
        match check(text) {
            Screen::Reject { reason, .. } => reason,
            Screen::Train { .. } => panic!("{text} was not rejected"),
        }
    }

    #[test]
    fn equivalent_spellings_share_a_fingerprint() {
        let (Screen::Train { fingerprint: a }, Screen::Train { fingerprint: b }) = (check("x + x"), check("2*x"))
        else {
            panic!("both are trainable")
        };
        assert_eq!(a, b);
        let Screen::Train { fingerprint: c } = check("x*sigmoid(x)") else { panic!() };
        assert_ne!(a, c);
    }

    #[test]
    fn useless_functions_are_rejected_with_a_reason() {
        assert!(reason("sin(x) - sin(x)").contains("constant (0)"), "{}", reason("sin(x) - sin(x)"));
        assert!(reason("b").contains("constant (1)"));
        assert!(reason("exp(exp(x))").contains("not finite in float32"));
        // Flat except near 0: sigmoid(100 x) saturates almost everywhere.
        assert!(reason("sigmoid(1000*x)").contains("zero almost everywhere"));
        assert!(matches!(check("max(x, 0)"), Screen::Train { .. }));
        assert!(matches!(check("min(x, 0)"), Screen::Train { .. }));
    }
}
