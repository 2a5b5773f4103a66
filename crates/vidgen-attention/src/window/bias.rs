//! Relative position bias (Swin, Liu et al. 2021, sec. 3.2; Video Swin, Liu et al. 2022, sec. 3.2).
//!
//! The learnable `relative_position_bias_table` has one row per relative offset inside a window,
//! `(2Wt−1)(2Wh−1)(2Ww−1)` rows (2D: `(2Wh−1)(2Ww−1)`) and one column per head. The
//! non-persistent `relative_position_index[i, j]` picks the row for tokens `i, j` of a window:
//! with `Δ = pos_i − pos_j + (W − 1)` per axis,
//! `index = Δt·(2Wh−1)(2Ww−1) + Δh·(2Ww−1) + Δw` — exactly the reference's construction
//! (`relative_coords[:, :, 0] *= …; relative_coords.sum(-1)`).

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// Rows of the bias table for a window `[Wt, Wh, Ww]`: `(2Wt−1)(2Wh−1)(2Ww−1)`.
pub fn bias_table_len(window: [usize; 3]) -> usize {
    window.iter().map(|&w| 2 * w - 1).product()
}

/// `relative_position_index` of a window `effective` (row-major tokens) into the bias table of a
/// (larger or equal) window `table_window`, flattened row-major to `[N·N]`.
///
/// When `effective == table_window` this is the reference index. When Video Swin's
/// `get_window_size` shrank the window to a small input, the offsets are still looked up by their
/// true value in the full table (Video Swin instead slices `index[:N, :N]`, which pairs tokens with
/// offsets of the full window; we do not copy that).
///
/// # Panics
/// If an effective window axis exceeds the table's.
pub fn relative_position_index(effective: [usize; 3], table_window: [usize; 3]) -> Vec<i64> {
    for a in 0..3 {
        assert!(
            effective[a] <= table_window[a],
            "window {effective:?} exceeds the bias table's window {table_window:?}"
        );
    }
    let coords = window_coords(effective);
    let [_, mh, mw] = table_window.map(|m| 2 * m as i64 - 1);
    let offset = table_window.map(|m| m as i64 - 1);
    let mut out = Vec::with_capacity(coords.len() * coords.len());
    for ci in &coords {
        for cj in &coords {
            let d: [i64; 3] = std::array::from_fn(|a| ci[a] - cj[a] + offset[a]);
            out.push(d[0] * mh * mw + d[1] * mw + d[2]);
        }
    }
    out
}

/// Row-major `(t, h, w)` coordinates of the tokens of a window.
pub(crate) fn window_coords(window: [usize; 3]) -> Vec<[i64; 3]> {
    let mut out = Vec::with_capacity(window.iter().product());
    for t in 0..window[0] {
        for h in 0..window[1] {
            for w in 0..window[2] {
                out.push([t as i64, h as i64, w as i64]);
            }
        }
    }
    out
}

/// The bias of every head for a window, gathered from `table` with a flattened `index`.
///
/// # Shapes
/// `table`: `[rows, n_heads]`, `index`: `[N·N]` → `[n_heads, N, N]`.
pub fn gather_bias<B: Backend>(table: Tensor<B, 2>, index: Tensor<B, 1, Int>) -> Tensor<B, 3> {
    let n_heads = table.dims()[1];
    let nn = index.dims()[0];
    let n = (nn as f64).sqrt().round() as usize;
    assert_eq!(n * n, nn, "index length {nn} is not a square");
    table
        .select(0, index)
        .reshape([n, n, n_heads])
        .permute([2, 0, 1])
}

/// The index as an integer tensor on `device`.
pub(crate) fn index_tensor<B: Backend>(index: &[i64], device: &B::Device) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(index.to_vec(), [index.len()]), device)
}

/// Inflates a 2D Swin bias table to a 3D (Video Swin) table by repeating it for every temporal
/// offset: `table3d[Δt·(2Wh−1)(2Ww−1) + r] = table2d[r]` for `Δt ∈ 0..2Wt−1`.
///
/// This is Video Swin's rule for initialising from ImageNet-pretrained Swin weights
/// (Liu et al. 2022, sec. 3.3 "the relative position bias … is duplicated 2P−1 times";
/// `inflate_weights` in `SwinTransformer3D` does `table.repeat(2*wd-1, 1)`). With the table
/// laid out `Δt`-major, the duplicated bias ignores the temporal offset at initialisation.
/// Video Swin bicubically resizes the 2D table first when the spatial windows differ; we require
/// them to be equal instead.
///
/// # Shapes
/// `table_2d`: `[(2Wh−1)(2Ww−1), n_heads]` → `[(2Wt−1)(2Wh−1)(2Ww−1), n_heads]`.
///
/// # Panics
/// If `temporal_window` is 0.
pub fn inflate_bias_table_2d_to_3d<B: Backend>(
    table_2d: Tensor<B, 2>,
    temporal_window: usize,
) -> Tensor<B, 2> {
    assert!(temporal_window > 0, "temporal_window must be > 0");
    Tensor::cat(vec![table_2d; 2 * temporal_window - 1], 0)
}
