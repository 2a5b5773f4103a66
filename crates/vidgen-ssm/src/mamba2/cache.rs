//! Inference cache and one-token step of [`Mamba2`] (mamba-ssm's `allocate_inference_cache` and
//! `Mamba2.step`, whose pure-torch branch this follows, for any `n_groups`).

use super::Mamba2;
use crate::ssd::ssd_step;
use burn::tensor::{Tensor, backend::Backend};

/// Recurrent state of one [`Mamba2`] layer between tokens.
#[derive(Debug, Clone)]
pub struct Mamba2Cache<B: Backend> {
    /// The last `d_conv` inputs of the convolution (oldest first), `[B, conv_channels, d_conv]`.
    pub conv_state: Tensor<B, 3>,
    /// SSM state, `[B, H, P, N]`.
    pub ssm_state: Tensor<B, 4>,
}

impl<B: Backend> Mamba2<B> {
    /// A zero cache for `batch` sequences (mamba-ssm `allocate_inference_cache`).
    ///
    /// # Shapes
    /// `conv_state`: `[batch, d_inner + 2·G·N, d_conv]`, `ssm_state`: `[batch, H, P, N]`
    pub fn allocate_cache(&self, batch: usize, device: &B::Device) -> Mamba2Cache<B> {
        Mamba2Cache {
            conv_state: Tensor::zeros([batch, self.conv_channels(), self.d_conv], device),
            ssm_state: Tensor::zeros([batch, self.n_heads(), self.head_dim, self.d_state], device),
        }
    }

    /// One token: shifts the conv window, `xBC = silu(Σ_k conv_state[.., k]·w[.., k] + bias)`, then
    /// `h ← exp(dt·A)·h + dt·x ⊗ B`, `y = h·C + D·x`, gated norm, `out_proj`.
    ///
    /// # Shapes
    /// `u`: `[B, d_model]` → (`[B, d_model]`, updated cache)
    ///
    /// # Panics
    /// If `u` or the cache do not match the layer's sizes.
    pub fn step(&self, u: Tensor<B, 2>, cache: Mamba2Cache<B>) -> (Tensor<B, 2>, Mamba2Cache<B>) {
        let [bs, _] = u.dims();
        let [z, xbc, dt] = self.split_in_proj(self.in_proj.forward(u).unsqueeze_dim::<3>(1));
        let k = self.d_conv;
        let window = Tensor::cat(
            vec![cache.conv_state.narrow(2, 1, k - 1), xbc.swap_dims(1, 2)],
            2,
        ); // [B, C, k]
        let w = self
            .conv1d
            .weight
            .val()
            .squeeze_dim::<2>(1)
            .unsqueeze::<3>(); // [1, C, k]
        let mut conv = (window.clone() * w).sum_dim(2).swap_dims(1, 2); // [B, 1, C]
        if let Some(bias) = &self.conv1d.bias {
            conv = conv + bias.val().unsqueeze::<3>();
        }
        let p = self.project(z, conv, dt);
        let squeeze4 = |t: Tensor<B, 4>| t.squeeze_dim::<3>(1);
        let dt = p.dt.squeeze_dim::<2>(1); // [B, H]
        let x = squeeze4(p.x.clone()); // [B, H, P]
        let a = dt.clone() * self.a().unsqueeze::<2>();
        let xdt = x * dt.unsqueeze_dim::<3>(2);
        let (y, ssm_state) = ssd_step(cache.ssm_state, xdt, a, squeeze4(p.b), squeeze4(p.c));
        let out = self
            .finish(y.unsqueeze_dim::<4>(1), p.x, p.z)
            .reshape([bs, self.out_proj.weight.dims()[1]]);
        (
            out,
            Mamba2Cache {
                conv_state: window,
                ssm_state,
            },
        )
    }

    /// Reference twin of [`Mamba2::forward`]: [`Mamba2::step`] over every token from a zero cache.
    ///
    /// # Shapes
    /// `u`: `[B, L, d_model]` → `[B, L, d_model]`
    ///
    /// # Panics
    /// As [`Mamba2::step`].
    pub fn forward_reference(&self, u: Tensor<B, 3>) -> Tensor<B, 3> {
        let [bs, len, _] = u.dims();
        let mut cache = self.allocate_cache(bs, &u.device());
        let mut outs = Vec::with_capacity(len);
        for t in 0..len {
            let (y, next) = self.step(u.clone().narrow(1, t, 1).squeeze_dim::<2>(1), cache);
            outs.push(y);
            cache = next;
        }
        Tensor::stack(outs, 1)
    }
}
