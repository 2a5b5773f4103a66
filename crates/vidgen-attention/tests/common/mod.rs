//! Helpers shared by this crate's test files.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use vidgen_attention::full::attention_reference;
use vidgen_testing::{Tolerance, assert_close};

/// Checks sampled rows of `out`, causal attention over `[B = 1, H, L, D]` inputs whose keys
/// from `valid` on are padding: 16 rows from the first, 16 around the padding edge and the last
/// 16 each equal the reference computed for those rows alone, with the causal and padding masks
/// of those rows as one explicit mask (row `i` sees keys `j ≤ i` with `j < valid`).
#[cfg_attr(not(any(feature = "cuda", feature = "wgpu")), allow(dead_code))]
pub fn assert_causal_padded_rows<B: Backend>(
    (q, k, v): (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>),
    out: Tensor<B, 4>,
    valid: usize,
    tol: Tolerance,
) {
    let [b, h, l, d] = q.dims();
    let dev = q.device();
    for start in [0, valid - 8, l - 16] {
        let rows = start..start + 16;
        let masked: Vec<bool> = rows
            .clone()
            .flat_map(|i| (0..l).map(move |j| j > i || j >= valid))
            .collect();
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(masked, [16, l]), &dev)
            .reshape([1, 1, 16, l])
            .expand([b, h, 16, l]);
        let expected = attention_reference(
            q.clone().slice([0..b, 0..h, rows.clone(), 0..d]),
            k.clone(),
            v.clone(),
            Some(mask),
            false,
            None,
        );
        let got = out.clone().slice([0..b, 0..h, rows, 0..out.dims()[3]]);
        assert_close(got, expected, tol);
    }
}
