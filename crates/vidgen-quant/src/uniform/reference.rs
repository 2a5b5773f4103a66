//! Readable host twins of [`quantize`](super::quantize) / [`dequantize`](super::dequantize): one
//! scalar loop over row-major elements, group index computed from the multi-index.

use super::{Granularity, QuantParams};

/// The parameter group of the element at row-major `flat` index in `params.shape`: the element's
/// position in the `[P, G, K]` view divided by `K`.
///
/// # Panics
/// If `flat` is out of bounds.
pub fn group_index(params: &QuantParams, flat: usize) -> usize {
    let shape = &params.shape;
    let d = shape.len();
    // The view first swaps two axes (none for per-tensor), then flattens row-major.
    let (a, b) = match params.spec.granularity {
        Granularity::PerTensor => (0, 0),
        Granularity::PerChannel { axis } => (0, axis),
        Granularity::PerGroup { axis, .. } => (axis, d - 1),
    };
    let mut idx = vec![0usize; d];
    let mut rem = flat;
    for k in (0..d).rev() {
        idx[k] = rem % shape[k];
        rem /= shape[k];
    }
    let (mut sw_shape, mut sw_idx) = (shape.clone(), idx);
    sw_shape.swap(a, b);
    sw_idx.swap(a, b);
    let sw_flat = sw_idx
        .iter()
        .zip(&sw_shape)
        .fold(0, |acc, (&i, &n)| acc * n + i);
    sw_flat / params.view[2]
}

/// Eq. 13 on host values (row-major, `params.shape`): `clamp(round_ties_even(r/S) − Z)`, with
/// `r/S` divided in f32 as the backend does.
///
/// # Panics
/// If `values.len()` is not the element count of `params.shape`.
pub fn quantize_reference(values: &[f32], params: &QuantParams) -> Vec<i32> {
    let n: usize = params.shape.iter().product();
    assert_eq!(
        values.len(),
        n,
        "{} values for shape {:?}",
        values.len(),
        params.shape
    );
    let (lo, hi) = params.spec.code_range();
    values
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            let g = group_index(params, i);
            let q = (r / params.scale[g]).round_ties_even() - params.zero_point[g] as f32;
            (q as i32).clamp(lo, hi)
        })
        .collect()
}

/// Eq. 14 on host codes: `S·(Q + Z)` in f32.
///
/// # Panics
/// If `codes.len()` is not the element count of `params.shape`.
pub fn dequantize_reference(codes: &[i32], params: &QuantParams) -> Vec<f32> {
    let n: usize = params.shape.iter().product();
    assert_eq!(
        codes.len(),
        n,
        "{} codes for shape {:?}",
        codes.len(),
        params.shape
    );
    codes
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let g = group_index(params, i);
            params.scale[g] * (q as f32 + params.zero_point[g] as f32)
        })
        .collect()
}
