//! The single-head spatial self-attention of diffusers' `UNetMidBlock2D` in the VAE (`Attention`
//! with `group_norm`, `residual_connection=True`, `rescale_output_factor=1`, one head of width `C`;
//! the "deprecated attention block" of the original LDM `AttnBlock`).

use super::resnet::group_norm;
use burn::module::Module;
use burn::nn::{GroupNorm, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Tensor, backend::Backend};

/// `y = x + to_out(softmax(q kᵀ/√C) v)` with `q, k, v = to_q/to_k/to_v(GN(x))` over the `H·W`
/// pixels as tokens of width `C` (Vaswani et al. 2017, eq. 1; Rombach et al. 2022 LDM VAE).
///
/// Keys: `group_norm`, `to_q`, `to_k`, `to_v`, `to_out` (diffusers `to_out.0`; remapped on load).
#[derive(Module, Debug)]
pub struct MidBlockAttention<B: Backend> {
    /// GroupNorm over channels before the projections.
    pub group_norm: GroupNorm<B>,
    /// Query projection `C → C`.
    pub to_q: Linear<B>,
    /// Key projection `C → C`.
    pub to_k: Linear<B>,
    /// Value projection `C → C`.
    pub to_v: Linear<B>,
    /// Output projection `C → C`.
    pub to_out: Linear<B>,
}

impl<B: Backend> MidBlockAttention<B> {
    /// Builds the block; `groups` divides `channels` (validated by the caller's config).
    pub(crate) fn new(channels: usize, groups: usize, device: &B::Device) -> Self {
        let linear = || LinearConfig::new(channels, channels).init(device);
        Self {
            group_norm: group_norm(groups, channels, device),
            to_q: linear(),
            to_k: linear(),
            to_v: linear(),
            to_out: linear(),
        }
    }

    /// Fused path through `burn::tensor::module::attention`.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` → `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.run(x, |q, k, v| {
            attention(q, k, v, None, None, AttentionModuleOptions::default())
        })
    }

    /// Reference twin of [`Self::forward`]: the score matrix and softmax written out.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` → `[B, C, H, W]`
    pub fn forward_reference(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.run(x, |q, k, v| {
            let [.., head_dim] = q.dims();
            let scores = q.matmul(k.transpose()) / (head_dim as f64).sqrt();
            softmax(scores, 3).matmul(v)
        })
    }

    /// Shared body; `attend` maps `q, k, v: [B, 1, L, C]` to `[B, 1, L, C]`.
    fn run(
        &self,
        x: Tensor<B, 4>,
        attend: impl Fn(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) -> Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let tokens = self.group_norm.forward(x.clone().reshape([b, c, h * w]));
        let tokens = tokens.swap_dims(1, 2); // [B, L, C]
        let q = self.to_q.forward(tokens.clone()).unsqueeze_dim::<4>(1);
        let k = self.to_k.forward(tokens.clone()).unsqueeze_dim::<4>(1);
        let v = self.to_v.forward(tokens).unsqueeze_dim::<4>(1);
        let out = self.to_out.forward(attend(q, k, v).squeeze_dim::<3>(1)); // [B, L, C]
        x + out.swap_dims(1, 2).reshape([b, c, h, w])
    }
}
