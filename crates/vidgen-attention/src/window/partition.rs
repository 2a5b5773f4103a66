//! Window partition / reverse, zero padding to a window multiple, cropping and the cyclic shift,
//! for 2D `[B, H, W, C]` and 3D `[B, T, H, W, C]` channel-last tensors with non-square windows.
//!
//! Window order follows Swin's `window_partition` (Liu et al. 2021, `swin_transformer.py`) and
//! Video Swin's (Liu et al. 2022, `SwinTransformer3D`): batch-major, then window index along
//! `T`, `H`, `W` (row-major); tokens inside a window are row-major over `(t, h, w)`.

use burn::tensor::{Tensor, backend::Backend};
use vidgen_nn::layout::permute_contiguous;

/// Video Swin's `get_window_size`: on every axis whose input size is at most the window, the
/// window shrinks to the input size and the shift drops to 0 (the whole axis is one window).
///
/// Swin 2D applies the same rule with `min(H, W)` to both axes of its square window; we apply it
/// per axis in 2D too (identical for square windows on square inputs).
pub fn effective_window<const R: usize>(
    input: [usize; R],
    window: [usize; R],
    shift: [usize; R],
) -> ([usize; R], [usize; R]) {
    let mut w = window;
    let mut s = shift;
    for a in 0..R {
        if input[a] <= window[a] {
            w[a] = input[a];
            s[a] = 0;
        }
    }
    (w, s)
}

/// The smallest multiple of `window` on each axis that holds `input` (`⌈n / M⌉·M`).
///
/// # Panics
/// If a window size is 0.
pub fn padded_size<const R: usize>(input: [usize; R], window: [usize; R]) -> [usize; R] {
    let mut out = input;
    for a in 0..R {
        assert!(window[a] > 0, "window size on axis {a} is 0");
        out[a] = input[a].div_ceil(window[a]) * window[a];
    }
    out
}

/// Appends zeros at the end of axis `dim` until it has `size` entries (Video Swin's `F.pad`).
///
/// # Panics
/// If the axis is already longer than `size`.
pub fn pad_axis<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dim: usize,
    size: usize,
) -> Tensor<B, D> {
    let dims = x.dims();
    assert!(
        dims[dim] <= size,
        "cannot pad axis {dim} of size {} down to {size}",
        dims[dim]
    );
    if dims[dim] == size {
        return x;
    }
    let mut zeros_shape = dims;
    zeros_shape[dim] = size - dims[dim];
    let zeros = Tensor::zeros(zeros_shape, &x.device());
    Tensor::cat(vec![x, zeros], dim)
}

/// Cyclic shift towards the origin: `out[p] = x[(p + shift) mod n]` on axis `dim`, i.e.
/// `torch.roll(x, -shift, dim)`, the shift Swin applies before partitioning.
/// [`roll_right`] undoes it.
pub fn roll_left<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dim: usize,
    shift: usize,
) -> Tensor<B, D> {
    let n = x.dims()[dim];
    let shift = if n == 0 { 0 } else { shift % n };
    if shift == 0 {
        return x;
    }
    Tensor::cat(
        vec![
            x.clone().narrow(dim, shift, n - shift),
            x.narrow(dim, 0, shift),
        ],
        dim,
    )
}

/// Cyclic shift away from the origin: `out[p] = x[(p − shift) mod n]`, i.e.
/// `torch.roll(x, shift, dim)`; the inverse of [`roll_left`].
pub fn roll_right<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dim: usize,
    shift: usize,
) -> Tensor<B, D> {
    let n = x.dims()[dim];
    if n == 0 {
        return x;
    }
    roll_left(x, dim, (n - shift % n) % n)
}

/// Splits a 3D tensor into non-overlapping windows (Video Swin's `window_partition`).
///
/// # Shapes
/// `x`: `[B, T, H, W, C]` → `[B·nW, Wt·Wh·Ww, C]` with `nW = (T/Wt)(H/Wh)(W/Ww)`.
///
/// # Panics
/// If a window size is 0 or does not divide its axis (pad with [`pad_axis`] first).
pub fn window_partition_3d<B: Backend>(x: Tensor<B, 5>, window: [usize; 3]) -> Tensor<B, 3> {
    let [b, t, h, w, c] = x.dims();
    check_divides([t, h, w], window);
    let [wt, wh, ww] = window;
    // The permuted view is copied row by row where the backend allows (`permute_contiguous`).
    permute_contiguous(
        x.reshape([b, t / wt, wt, h / wh, wh, w / ww, ww, c]),
        [0, 1, 3, 5, 2, 4, 6, 7],
    )
    .reshape([b * (t / wt) * (h / wh) * (w / ww), wt * wh * ww, c])
}

/// Reassembles windows into a 3D tensor; the inverse of [`window_partition_3d`].
///
/// # Shapes
/// `windows`: `[B·nW, Wt·Wh·Ww, C]`, `size = [T, H, W]` → `[B, T, H, W, C]`.
///
/// # Panics
/// If the window does not divide `size` or the window count does not match.
pub fn window_reverse_3d<B: Backend>(
    windows: Tensor<B, 3>,
    window: [usize; 3],
    size: [usize; 3],
) -> Tensor<B, 5> {
    check_divides(size, window);
    let [bn, n, c] = windows.dims();
    let [wt, wh, ww] = window;
    let [t, h, w] = size;
    let n_windows = (t / wt) * (h / wh) * (w / ww);
    assert!(
        n == wt * wh * ww && bn.is_multiple_of(n_windows),
        "windows {:?} do not tile {size:?} with window {window:?}",
        windows.dims()
    );
    permute_contiguous(
        windows.reshape([bn / n_windows, t / wt, h / wh, w / ww, wt, wh, ww, c]),
        [0, 1, 4, 2, 5, 3, 6, 7],
    )
    .reshape([bn / n_windows, t, h, w, c])
}

/// Swin's `window_partition` for images, with a non-square window `[Wh, Ww]`.
///
/// # Shapes
/// `x`: `[B, H, W, C]` → `[B·nW, Wh·Ww, C]`.
///
/// # Panics
/// As [`window_partition_3d`].
pub fn window_partition_2d<B: Backend>(x: Tensor<B, 4>, window: [usize; 2]) -> Tensor<B, 3> {
    window_partition_3d(x.unsqueeze_dim(1), [1, window[0], window[1]])
}

/// Swin's `window_reverse`; the inverse of [`window_partition_2d`].
///
/// # Shapes
/// `windows`: `[B·nW, Wh·Ww, C]`, `size = [H, W]` → `[B, H, W, C]`.
///
/// # Panics
/// As [`window_reverse_3d`].
pub fn window_reverse_2d<B: Backend>(
    windows: Tensor<B, 3>,
    window: [usize; 2],
    size: [usize; 2],
) -> Tensor<B, 4> {
    window_reverse_3d(windows, [1, window[0], window[1]], [1, size[0], size[1]]).squeeze_dim(1)
}

fn check_divides(size: [usize; 3], window: [usize; 3]) {
    for a in 0..3 {
        assert!(
            window[a] > 0 && size[a].is_multiple_of(window[a]),
            "window {window:?} does not tile size {size:?} (axis {a}); pad first"
        );
    }
}
