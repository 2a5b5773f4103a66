//! QK-norm (Dehghani et al. 2023; Open-Sora 1.2, sec. 3.2): RMSNorm over each head of the queries
//! and keys before attention, which keeps attention logits bounded and training stable.

use crate::error::{NnError, divisible, positive, positive_f64};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{RmsNorm, RmsNormConfig};
use burn::tensor::{Tensor, backend::Backend};

/// Configuration of [`QkNorm`].
#[derive(Config, Debug)]
pub struct QkNormConfig {
    /// Model width; must be divisible by `n_heads`.
    pub d_model: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// RMSNorm epsilon (Open-Sora: 1e-6).
    #[config(default = 1e-6)]
    pub eps: f64,
}

impl QkNormConfig {
    /// Builds one learnable RMSNorm of width `head_dim = d_model / n_heads` for q and one for k.
    ///
    /// # Errors
    /// [`NnError`] naming `d_model` or `n_heads` if either is zero or `d_model % n_heads != 0`, or
    /// `eps` if it is not positive.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<QkNorm<B>, NnError> {
        positive("d_model", self.d_model)?;
        positive("n_heads", self.n_heads)?;
        divisible("d_model", self.d_model, self.n_heads, Some("n_heads"))?;
        positive_f64("eps", self.eps)?;
        let norm = RmsNormConfig::new(self.d_model / self.n_heads).with_epsilon(self.eps);
        Ok(QkNorm {
            q_norm: norm.init(device),
            k_norm: norm.init(device),
        })
    }
}

/// RMSNorm of q and k per head (keys `q_norm`, `k_norm` as in Open-Sora / diffusers).
#[derive(Module, Debug)]
pub struct QkNorm<B: Backend> {
    /// Norm over each query head.
    pub q_norm: RmsNorm<B>,
    /// Norm over each key head.
    pub k_norm: RmsNorm<B>,
}

impl<B: Backend> QkNorm<B> {
    /// Normalises queries and keys over their last (head) dimension.
    ///
    /// # Shapes
    /// `q`: `[B, H, Lq, head_dim]`, `k`: `[B, H, Lk, head_dim]` → same
    pub fn forward(&self, q: Tensor<B, 4>, k: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        (self.q_norm.forward(q), self.k_norm.forward(k))
    }
}
