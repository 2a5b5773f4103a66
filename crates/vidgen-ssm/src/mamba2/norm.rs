//! Gated RMSNorm of Mamba2 (mamba-ssm's `RMSNormGated`, reference `rms_norm_ref` in
//! `ops/triton/layernorm_gated.py`), normalising each of `n_groups` equal channel groups.

use burn::module::{Module, Param};
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};

/// `y = rmsnorm_g(x ⊙ silu(z)) ⊙ w` (`norm_before_gate = false`, Mamba2's default) or
/// `y = rmsnorm_g(x) ⊙ w ⊙ silu(z)` (`true`), where `rmsnorm_g` divides each group of
/// `group_size` channels by `sqrt(mean(x²) + eps)`. Key `weight` as in mamba-ssm (no bias).
#[derive(Module, Debug)]
pub struct GatedRmsNorm<B: Backend> {
    /// Scale `w`, `[d]`, initialised to ones.
    pub weight: Param<Tensor<B, 1>>,
    /// Channels per normalised group (`d / n_groups`).
    pub group_size: usize,
    /// Added to the mean square.
    pub eps: f64,
    /// Whether the gate multiplies after the norm.
    pub norm_before_gate: bool,
}

impl<B: Backend> GatedRmsNorm<B> {
    /// A norm of width `d` with unit weight.
    ///
    /// # Panics
    /// If `group_size` is zero or does not divide `d` (checked by [`super::Mamba2Config::init`]).
    pub fn new(
        d: usize,
        group_size: usize,
        eps: f64,
        norm_before_gate: bool,
        device: &B::Device,
    ) -> Self {
        assert!(
            group_size > 0 && d.is_multiple_of(group_size),
            "GatedRmsNorm: group_size = {group_size} must divide d = {d}"
        );
        Self {
            weight: Param::from_tensor(Tensor::ones([d], device)),
            group_size,
            eps,
            norm_before_gate,
        }
    }

    /// Applies the gated norm over the last axis.
    ///
    /// # Shapes
    /// `x`, `z`: `[.., d]` → `[.., d]`
    ///
    /// # Panics
    /// If the last axis of `x` is not `d` or `z`'s shape differs from `x`'s.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>, z: Tensor<B, D>) -> Tensor<B, D> {
        let shape = x.dims();
        assert_eq!(shape, z.dims(), "GatedRmsNorm: x and z shapes differ");
        let d = shape[D - 1];
        assert_eq!(
            d,
            self.weight.dims()[0],
            "GatedRmsNorm: last axis {d} != weight width"
        );
        let gate = silu(z);
        let x = if self.norm_before_gate {
            x
        } else {
            x * gate.clone()
        };
        let groups = d / self.group_size;
        let rows = shape[..D - 1].iter().product::<usize>();
        let grouped = x.reshape([rows, groups, self.group_size]);
        let rstd = (grouped.clone().square().mean_dim(2) + self.eps)
            .sqrt()
            .recip();
        let w = self.weight.val().unsqueeze::<D>();
        let out = (grouped * rstd).reshape(shape) * w;
        if self.norm_before_gate {
            out * gate
        } else {
            out
        }
    }
}
