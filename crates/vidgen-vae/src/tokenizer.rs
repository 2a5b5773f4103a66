//! Discrete tokenizers for latent video tokens (FlashVideo-style discrete-token models):
//!
//! | type | paper | codebook |
//! |---|---|---|
//! | [`VectorQuantizer`] | VQ-VAE (van den Oord et al. 2017), EMA updates of VQ-VAE-2 (Razavi et al. 2019) | learned `[n_codes, code_dim]` |
//! | [`Fsq`] | Finite Scalar Quantization (Mentzer et al. 2023) | implicit, `∏ L_i` codes |
//! | [`Lfq`] | Lookup-free quantization, MAGVIT-v2 (Yu et al. 2023) | implicit, `2^code_dim` codes |
//!
//! **Layout:** every tokenizer works on the **last** axis: inputs are `[.., C]` (channels last).
//! A `[B, C, T, H, W]` latent is permuted to `[B, T, H, W, C]` first (`x.permute([0, 2, 3, 4, 1])`).
//! Indices keep the channel axis with size 1, as Burn's `argmin` does: `[.., 1]`.
//!
//! All three pass gradients to their input straight through the non-differentiable step
//! (`z + (q(z) − z).detach()`), so the forward value is the quantized one and the backward pass
//! treats quantization as the identity (for FSQ: the rounding only; the `tanh` bound is
//! differentiated).

mod fsq;
mod lfq;
mod vq;

pub use fsq::{Fsq, FsqConfig};
pub use lfq::{Lfq, LfqConfig, LfqOutput};
pub use vq::{
    VectorQuantizer, VectorQuantizerConfig, VqEmaConfig, VqOutput, nearest_code_indices,
    nearest_code_indices_reference,
};

use crate::error::ConfigError;
use crate::error::VaeError;
use burn::tensor::{Int, Tensor, backend::Backend};

/// `x + (q − x).detach()`: the value of `q` with the gradient of `x` (straight-through estimator,
/// van den Oord et al. 2017, sec. 3.1).
pub fn straight_through<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    q: Tensor<B, D>,
) -> Tensor<B, D> {
    x.clone() + (q - x).detach()
}

/// Flattens `[.., C]` to `[N, C]`.
///
/// # Panics
/// If the last axis is not `channels` long.
pub(crate) fn flatten_channels<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    channels: usize,
    what: &str,
) -> Tensor<B, 2> {
    let dims = x.dims();
    assert!(
        D >= 1 && dims[D - 1] == channels,
        "{what}: expected the last axis to have {channels} channels, got shape {dims:?}"
    );
    let n = dims.iter().product::<usize>() / channels.max(1);
    x.reshape([n, channels])
}

/// The shape `[.., 1]` of indices for inputs shaped `dims = [.., C]`.
pub(crate) fn index_shape<const D: usize>(dims: [usize; D]) -> [usize; D] {
    let mut out = dims;
    out[D - 1] = 1;
    out
}

/// Reshapes `[.., 1]` indices to `[N]`, returning the leading dims with the last replaced by `c`.
pub(crate) fn flatten_indices<B: Backend, const D: usize>(
    indices: Tensor<B, D, Int>,
    c: usize,
    what: &str,
) -> (Tensor<B, 1, Int>, [usize; D]) {
    let mut dims = indices.dims();
    assert!(
        dims[D - 1] == 1,
        "{what}: indices must have a last axis of size 1, got shape {dims:?}"
    );
    let n = dims.iter().product::<usize>();
    dims[D - 1] = c;
    (indices.reshape([n]), dims)
}

/// `Err(OutOfDomain)` unless `value >= 0` (NaN is rejected).
pub(crate) fn non_negative(field: &'static str, value: f64) -> Result<(), VaeError> {
    if value >= 0.0 {
        Ok(())
    } else {
        Err(VaeError::Config(ConfigError::OutOfDomain {
            field,
            value,
            requirement: ">= 0",
        }))
    }
}
