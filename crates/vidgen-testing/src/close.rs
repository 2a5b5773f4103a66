//! Element-wise comparison of whole tensors with named tolerances.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use std::fmt;

/// An absolute and a relative tolerance, with a name that appears in failure messages.
///
/// An element passes when `|actual − expected| ≤ abs + rel·|expected|` (numpy's `allclose`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Name shown on failure, e.g. `"SINGLE_OP"`.
    pub name: &'static str,
    /// Absolute tolerance.
    pub abs: f64,
    /// Relative tolerance, scaled by `|expected|`.
    pub rel: f64,
}

impl Tolerance {
    /// Bit-exact equality.
    pub const EXACT: Self = Self::new("EXACT", 0.0, 0.0);
    /// One f32 op against a reference computing the same op in f32 (matmul, norm, activation).
    pub const SINGLE_OP: Self = Self::new("SINGLE_OP", 1e-5, 1e-4);
    /// A block of a few ops in f32 (an MLP, an attention block, a modulation).
    pub const BLOCK: Self = Self::new("BLOCK", 1e-4, 1e-3);
    /// A multi-step loop or a whole tiny model in f32, where rounding accumulates.
    pub const LOOP: Self = Self::new("LOOP", 1e-3, 1e-2);

    /// A tolerance with a name; define it as a `const` next to the test with a comment saying why.
    pub const fn new(name: &'static str, abs: f64, rel: f64) -> Self {
        Self { name, abs, rel }
    }
}

/// The outcome of comparing two tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct CloseReport {
    /// Number of elements compared.
    pub len: usize,
    /// Number of elements outside the tolerance.
    pub n_bad: usize,
    /// Largest `|actual − expected|`.
    pub max_abs: f64,
    /// Largest `|actual − expected| / |expected|` over elements with a finite `expected ≠ 0`.
    pub max_rel: f64,
    /// Largest share of its allowance an element uses, `|actual − expected| / (abs + rel·|expected|)`
    /// (over 1 for a failing element; infinite for a non-finite mismatch or a non-zero error under
    /// a zero allowance). Far below 1 means the tolerance is much looser than the error.
    pub max_used: f64,
    /// Multi-dimensional index of the element that exceeds its allowance the most (or of the
    /// largest absolute error when all pass).
    pub worst_index: Vec<usize>,
    /// `actual` at `worst_index`.
    pub worst_actual: f64,
    /// `expected` at `worst_index`.
    pub worst_expected: f64,
}

impl CloseReport {
    /// Whether every element is within tolerance.
    pub fn passed(&self) -> bool {
        self.n_bad == 0
    }
}

impl fmt::Display for CloseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} elements out of tolerance; worst at {:?}: actual {:e}, expected {:e}; \
             max abs err {:e}, max rel err {:e}",
            self.n_bad,
            self.len,
            self.worst_index,
            self.worst_actual,
            self.worst_expected,
            self.max_abs,
            self.max_rel
        )
    }
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (axis, &dim) in shape.iter().enumerate().rev() {
        if dim > 0 {
            index[axis] = flat % dim;
            flat /= dim;
        }
    }
    index
}

fn same_special(a: f64, e: f64) -> bool {
    (a.is_nan() && e.is_nan()) || (a.is_infinite() && a == e)
}

/// `(|actual − expected|, excess over the allowance)` of one element; the element fails when the
/// excess is positive.
///
/// A non-finite expected value (±∞ or NaN) admits only the same value: any other actual value has
/// an infinite error and excess, whatever the tolerance (the allowance `abs + rel·|∞|` would be
/// infinite too, and `∞ − ∞` is NaN, which compares false). A finite expected value against a
/// NaN or infinite actual value also fails with an infinite excess.
fn element_error(actual: f64, expected: f64, tol: Tolerance) -> (f64, f64) {
    if !expected.is_finite() || !actual.is_finite() {
        return if same_special(actual, expected) {
            (0.0, f64::NEG_INFINITY)
        } else {
            (f64::INFINITY, f64::INFINITY)
        };
    }
    let err = (actual - expected).abs();
    (err, err - (tol.abs + tol.rel * expected.abs()))
}

/// Compares two tensors' data element by element.
///
/// # Panics
/// If the shapes differ.
pub fn compare(actual: &TensorData, expected: &TensorData, tol: Tolerance) -> CloseReport {
    assert_eq!(
        actual.shape, expected.shape,
        "shape mismatch: actual {:?}, expected {:?}",
        actual.shape, expected.shape
    );
    let a: Vec<f64> = actual.iter::<f64>().collect();
    let e: Vec<f64> = expected.iter::<f64>().collect();
    let (mut max_abs, mut max_rel, mut max_used, mut n_bad) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    let (mut worst, mut worst_excess) = (0usize, f64::NEG_INFINITY);
    for (i, (&ai, &ei)) in a.iter().zip(&e).enumerate() {
        let (err, excess) = element_error(ai, ei, tol);
        max_abs = max_abs.max(err);
        if ei != 0.0 && ei.is_finite() {
            max_rel = max_rel.max(err / ei.abs());
        }
        if err > 0.0 {
            let allowance = tol.abs + tol.rel * ei.abs();
            let used = if err.is_finite() && allowance > 0.0 {
                err / allowance
            } else {
                f64::INFINITY
            };
            max_used = max_used.max(used);
        }
        if excess > 0.0 {
            n_bad += 1;
        }
        if excess > worst_excess {
            worst_excess = excess;
            worst = i;
        }
    }
    CloseReport {
        len: a.len(),
        n_bad,
        max_abs,
        max_rel,
        max_used,
        worst_index: unravel(worst, &actual.shape),
        worst_actual: a.get(worst).copied().unwrap_or(f64::NAN),
        worst_expected: e.get(worst).copied().unwrap_or(f64::NAN),
    }
}

/// Set this environment variable to print every comparison's max abs/rel error to stderr (run the
/// tests with `--nocapture`), e.g. to quote measured errors against a reference.
pub const REPORT_ENV: &str = "VIDGEN_CLOSE_REPORT";

/// Asserts that two tensors' data agree within `tol`.
///
/// # Panics
/// On a shape mismatch or any element out of tolerance, printing the worst index, both values
/// and the max abs/rel error.
#[track_caller]
pub fn assert_close_data(actual: &TensorData, expected: &TensorData, tol: Tolerance) {
    let report = compare(actual, expected, tol);
    if std::env::var_os(REPORT_ENV).is_some() {
        let at = std::panic::Location::caller();
        eprintln!(
            "[{REPORT_ENV}] {}:{} under {} (abs {:e}, rel {:e}): max abs {:e}, max rel {:e}, \
             {:.3} of the allowance used, over {} elements",
            at.file(),
            at.line(),
            tol.name,
            tol.abs,
            tol.rel,
            report.max_abs,
            report.max_rel,
            report.max_used,
            report.len
        );
    }
    assert!(
        report.passed(),
        "not close under {} (abs {:e}, rel {:e}): {report}",
        tol.name,
        tol.abs,
        tol.rel
    );
}

/// Asserts that two tensors agree within `tol`, element by element.
///
/// # Panics
/// As [`assert_close_data`].
#[track_caller]
pub fn assert_close<B: Backend, const D: usize>(
    actual: Tensor<B, D>,
    expected: Tensor<B, D>,
    tol: Tolerance,
) {
    assert_close_data(&actual.into_data(), &expected.into_data(), tol);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_worst_index_and_values() {
        let e = TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
        let a = TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.5, 6.0], [2, 3]);
        let r = compare(&a, &e, Tolerance::SINGLE_OP);
        assert_eq!(r.n_bad, 1);
        assert_eq!(r.worst_index, vec![1, 1]);
        assert_eq!((r.worst_actual, r.worst_expected), (5.5, 5.0));
        assert!((r.max_abs - 0.5).abs() < 1e-12);
        assert!((r.max_rel - 0.1).abs() < 1e-12);
        // 0.5 against an allowance of 1e-5 + 1e-4·5.
        assert!((r.max_used - 0.5 / 5.1e-4).abs() < 1e-9);
    }

    #[test]
    fn nan_fails_unless_both_nan() {
        let e = TensorData::new(vec![1.0f32, f32::NAN], [2]);
        let a = TensorData::new(vec![f32::NAN, f32::NAN], [2]);
        let r = compare(&a, &e, Tolerance::LOOP);
        assert_eq!(r.n_bad, 1);
        assert_eq!(r.worst_index, vec![0]);
    }

    /// Every tolerance kind, from exact to one with huge absolute and relative parts.
    const ALL_KINDS: [Tolerance; 6] = [
        Tolerance::EXACT,
        Tolerance::SINGLE_OP,
        Tolerance::BLOCK,
        Tolerance::LOOP,
        Tolerance::new("REL_ONLY", 0.0, 0.5),
        Tolerance::new("HUGE", 1e30, 1e30),
    ];

    fn passes(actual: f32, expected: f32, tol: Tolerance) -> bool {
        let e = TensorData::new(vec![expected], [1]);
        let a = TensorData::new(vec![actual], [1]);
        compare(&a, &e, tol).passed()
    }

    #[test]
    fn infinite_expected_admits_only_the_same_infinity() {
        for tol in ALL_KINDS {
            for inf in [f32::INFINITY, f32::NEG_INFINITY] {
                assert!(passes(inf, inf, tol), "{} rejects {inf} == {inf}", tol.name);
                for wrong in [0.0, 1.0, -1.0, f32::MAX, f32::MIN, f32::NAN, -inf] {
                    assert!(
                        !passes(wrong, inf, tol),
                        "{} accepts {wrong} for expected {inf}",
                        tol.name
                    );
                }
            }
        }
    }

    #[test]
    fn non_finite_actual_fails_against_finite_expected() {
        for tol in ALL_KINDS {
            for expected in [0.0f32, 1.0, -3.5, f32::MAX] {
                for wrong in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    assert!(
                        !passes(wrong, expected, tol),
                        "{} accepts {wrong} for expected {expected}",
                        tol.name
                    );
                }
            }
        }
    }

    #[test]
    fn nan_expected_admits_only_nan() {
        for tol in ALL_KINDS {
            assert!(passes(f32::NAN, f32::NAN, tol));
            for wrong in [0.0f32, 1.0, f32::INFINITY, f32::NEG_INFINITY] {
                assert!(
                    !passes(wrong, f32::NAN, tol),
                    "{} accepts {wrong}",
                    tol.name
                );
            }
        }
    }

    #[test]
    fn infinite_mismatch_is_reported_as_the_worst_element() {
        let e = TensorData::new(vec![1.0f32, f32::NEG_INFINITY, 2.0], [3]);
        let a = TensorData::new(vec![1.5f32, -1e30, 2.0], [3]);
        let r = compare(&a, &e, Tolerance::LOOP);
        assert_eq!(r.n_bad, 2);
        assert_eq!(r.worst_index, vec![1]);
        assert_eq!(r.max_abs, f64::INFINITY);
        assert!((r.max_rel - 0.5).abs() < 1e-12);
    }

    #[test]
    fn relative_part_scales_with_expected() {
        let e = TensorData::new(vec![1000.0f32], [1]);
        let a = TensorData::new(vec![1000.5f32], [1]);
        assert!(compare(&a, &e, Tolerance::LOOP).passed());
        assert!(!compare(&a, &e, Tolerance::SINGLE_OP).passed());
    }

    #[test]
    #[should_panic(expected = "worst at [2]")]
    fn assert_close_panics_with_location() {
        let e = TensorData::new(vec![0.0f32, 0.0, 0.0], [3]);
        let a = TensorData::new(vec![0.0f32, 0.0, 1.0], [3]);
        assert_close_data(&a, &e, Tolerance::BLOCK);
    }

    #[test]
    #[should_panic(expected = "shape mismatch")]
    fn shape_mismatch_panics() {
        let e = TensorData::new(vec![0.0f32; 4], [2, 2]);
        let a = TensorData::new(vec![0.0f32; 4], [4]);
        assert_close_data(&a, &e, Tolerance::BLOCK);
    }
}
