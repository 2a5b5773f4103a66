//! RetNet multi-scale retention (Sun et al. 2023, "Retentive Network", sec. 2; FlashVideo sec. 2.2:
//! parallel form for training on frame tokens, recurrent form for token-by-token generation at
//! constant cost), matching torchscale 0.3.0's `MultiScaleRetention` parameter for parameter and
//! form for form.
//!
//! ```text
//! q, k, v, g = x·W_q, x·W_k · key_dim^(−1/2), x·W_v, x·W_g
//! q̃, k̃ = theta_shift(q), theta_shift(k)            rotary, adjacent pairs (torchscale RetNetRelPos)
//! o_n = Σ_{m≤n} γ_h^(n−m) (q̃_n·k̃_m) v_m · c_{n,h}   per head h, γ_h = 1 − 2^(−5−h)
//! y = out_proj(swish(g) ⊙ group_rms_norm(o))
//! ```
//!
//! The three forms — [`MultiScaleRetention::forward_parallel`],
//! [`MultiScaleRetention::forward_recurrent`] / [`MultiScaleRetention::step`] and
//! [`MultiScaleRetention::forward_chunkwise`] — differ only in the positive per-row factor `c`,
//! torchscale's numerical guards (`G(n) = Σ_{k<n} γ^k`, `j` the index inside a chunk):
//! - parallel: `c = 1 / (sqrt(G(n+1)) · max(|Σ_m (Q̃K̃ᵀ ⊙ D̃)_{nm}|, 1))` ([`parallel_retention`]);
//! - recurrent: `c = 1 / sqrt(G(n+1))` ([`recurrent_retention`]);
//! - chunkwise: `c = 1 / (sqrt(G(j+1)) · max(inner, cross scale))` ([`chunkwise_retention`]).
//!
//! The group RMS norm removes it exactly when its
//! `eps` is 0 and up to `eps / c²` otherwise; torchscale uses `layernorm_eps` = 1e-6, and with its
//! small initial weights `o` has a mean square near 1e-6, so the forms then differ visibly
//! (torchscale issue #40). [`MultiScaleRetention::forward_reference`] is the unnormalised
//! recurrence (`c = 1`), the readable twin of all three.

mod forms;
mod rel_pos;

pub use forms::{
    RetentionState, chunkwise_retention, parallel_retention, recurrent_retention,
    retention_reference,
};
pub use rel_pos::{ChunkTables, RetentionRelPos, theta_shift};

use crate::error::ConfigError;
use crate::error::{AttentionError, divisible, positive};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{gelu, silu};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// The activation of the output gate `g` (torchscale `gate_fn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionGate {
    /// `x·sigmoid(x)` (torchscale `"swish"`, the RetNet default).
    Swish,
    /// Exact (erf) GELU (torchscale `"gelu"`).
    Gelu,
}

/// Configuration of [`MultiScaleRetention`]; the torchscale names are `embed_dim`, `num_heads`,
/// `value_dim`, `args.layernorm_eps` and `gate_fn`.
#[derive(Config, Debug)]
pub struct MultiScaleRetentionConfig {
    /// Model width; `d_model / n_heads` (the key width) must be even for the rotary shift.
    pub d_model: usize,
    /// Number of retention heads (head `h` decays with `γ_h = 1 − 2^(−5−h)`).
    pub n_heads: usize,
    /// Width of values and gate; `None` means `2·d_model` (RetNet's value factor 2). Must be
    /// divisible by `n_heads`.
    #[config(default = "None")]
    pub value_dim: Option<usize>,
    /// Epsilon of the group RMS norm (torchscale `layernorm_eps`, default 1e-6). 0 makes the norm
    /// exactly scale invariant, so that the three forms agree (torchscale issue #40); then an
    /// all-zero head output divides by zero.
    #[config(default = 1e-6)]
    pub eps: f64,
    /// Gate activation.
    #[config(default = "RetentionGate::Swish")]
    pub gate_fn: RetentionGate,
}

impl MultiScaleRetentionConfig {
    /// Builds the layer with Burn's default initialisation (load weights for torchscale's
    /// xavier-uniform ones).
    ///
    /// # Errors
    /// [`AttentionError`] naming `d_model` or `n_heads` if either is zero, `d_model` if it is not
    /// divisible by `n_heads` or its key width `d_model / n_heads` is odd, `value_dim` if it is
    /// zero or not divisible by `n_heads`, and `eps` if it is negative or not finite.
    pub fn init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<MultiScaleRetention<B>, AttentionError> {
        positive("d_model", self.d_model)?;
        positive("n_heads", self.n_heads)?;
        divisible("d_model", self.d_model, self.n_heads, Some("n_heads"))?;
        let key_dim = self.d_model / self.n_heads;
        if !key_dim.is_multiple_of(2) {
            return Err(AttentionError::Config(ConfigError::Unsupported {
                field: "d_model",
                value: self.d_model.to_string(),
                reason: "the key width d_model / n_heads must be even for the rotary shift",
            }));
        }
        let value_dim = self.value_dim.unwrap_or(2 * self.d_model);
        positive("value_dim", value_dim)?;
        divisible("value_dim", value_dim, self.n_heads, Some("n_heads"))?;
        if !(self.eps >= 0.0 && self.eps.is_finite()) {
            return Err(AttentionError::Config(ConfigError::OutOfDomain {
                field: "eps",
                value: self.eps,
                requirement: ">= 0 and finite",
            }));
        }
        let linear = |d_in, d_out| LinearConfig::new(d_in, d_out).with_bias(false).init(device);
        Ok(MultiScaleRetention {
            q_proj: linear(self.d_model, self.d_model),
            k_proj: linear(self.d_model, self.d_model),
            v_proj: linear(self.d_model, value_dim),
            g_proj: linear(self.d_model, value_dim),
            out_proj: linear(value_dim, self.d_model),
            group_norm: GroupRmsNorm { eps: self.eps },
            rel_pos: RetentionRelPos::new(key_dim, self.n_heads),
            gate_fn: self.gate_fn,
        })
    }
}

/// RMS norm over each head's values without affine parameters (torchscale `group_norm`,
/// `RMSNorm(head_dim, elementwise_affine=False)`): `x / sqrt(mean(x²) + eps)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupRmsNorm {
    /// Added to the mean square.
    pub eps: f64,
}

impl GroupRmsNorm {
    /// Normalises over the last dimension.
    ///
    /// # Shapes
    /// `x`: `[.., head_dim]` → same
    pub fn forward<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mean_square = x.clone().square().mean_dim(D - 1);
        x * (mean_square + self.eps).sqrt().recip()
    }
}

/// Multi-scale retention. Parameter names follow torchscale (`q_proj`, `k_proj`, `v_proj`,
/// `g_proj`, `out_proj`, all without bias; `group_norm` has no parameters).
///
/// Prefill a prompt with the chunkwise form, then generate token by token at constant cost:
///
/// ```
/// use burn::tensor::{Distribution, Tensor};
/// use vidgen_attention::retention::MultiScaleRetentionConfig;
/// type B = burn::backend::Flex;
///
/// let device = Default::default();
/// let layer = MultiScaleRetentionConfig::new(16, 2).init::<B>(&device).unwrap();
/// let prompt = Tensor::<B, 3>::random([1, 10, 16], Distribution::Normal(0.0, 1.0), &device);
/// let (y, mut state) = layer.forward_chunkwise(prompt, 4, layer.empty_state(1, &device));
/// assert_eq!(y.dims(), [1, 10, 16]);
/// let mut token = y.narrow(1, 9, 1).squeeze_dim::<2>(1);
/// for _ in 0..3 {
///     (token, state) = layer.step(token, state);
/// }
/// assert_eq!(state.position, 13);
/// assert_eq!(state.kv.dims(), [1, 2, 8, 16]); // [B, H, key_dim, head_dim]: independent of position
/// ```
#[derive(Module, Debug)]
pub struct MultiScaleRetention<B: Backend> {
    /// `d_model → d_model`.
    pub q_proj: Linear<B>,
    /// `d_model → d_model`.
    pub k_proj: Linear<B>,
    /// `d_model → value_dim`.
    pub v_proj: Linear<B>,
    /// `d_model → value_dim`, the gate.
    pub g_proj: Linear<B>,
    /// `value_dim → d_model`.
    pub out_proj: Linear<B>,
    /// Group RMS norm over each head.
    #[module(skip)]
    pub group_norm: GroupRmsNorm,
    /// Decays and rotary frequencies.
    #[module(skip)]
    pub rel_pos: RetentionRelPos,
    /// Gate activation.
    #[module(skip)]
    pub gate_fn: RetentionGate,
}

/// Projected inputs: rotated queries and keys `[B, H, L, key_dim]`, values `[B, H, L, head_dim]`,
/// gate `[B, L, value_dim]`.
struct Projected<B: Backend> {
    qr: Tensor<B, 4>,
    kr: Tensor<B, 4>,
    v: Tensor<B, 4>,
    g: Tensor<B, 3>,
}

impl<B: Backend> MultiScaleRetention<B> {
    /// Number of heads.
    pub fn n_heads(&self) -> usize {
        self.rel_pos.n_heads()
    }

    /// Query/key width per head, `d_model / n_heads`.
    pub fn key_dim(&self) -> usize {
        self.rel_pos.key_dim()
    }

    /// Value width per head, `value_dim / n_heads`.
    pub fn head_dim(&self) -> usize {
        self.v_proj.weight.dims()[1] / self.n_heads()
    }

    /// The state before the first token, for [`Self::forward_recurrent`],
    /// [`Self::step`] and [`Self::forward_chunkwise`].
    pub fn empty_state(&self, batch: usize, device: &B::Device) -> RetentionState<B> {
        let (h, dk, dv) = (self.n_heads(), self.key_dim(), self.head_dim());
        RetentionState::empty(batch, h, dk, dv, device)
    }

    /// Projections, head split, key scaling and the rotary shift at positions `offset..`.
    fn project(&self, x: Tensor<B, 3>, offset: usize) -> Projected<B> {
        let [b, l, _] = x.dims();
        let (h, dk, dv) = (self.n_heads(), self.key_dim(), self.head_dim());
        let heads = |t: Tensor<B, 3>, d: usize| t.reshape([b, l, h, d]).swap_dims(1, 2);
        let q = heads(self.q_proj.forward(x.clone()), dk);
        let k = heads(self.k_proj.forward(x.clone()) * (dk as f64).powf(-0.5), dk);
        let v = heads(self.v_proj.forward(x.clone()), dv);
        let (sin, cos) = self.rel_pos.sin_cos::<B>(offset, l, &x.device());
        Projected {
            qr: theta_shift(q, sin.clone(), cos.clone()),
            kr: theta_shift(k, sin, cos),
            v,
            g: self.g_proj.forward(x),
        }
    }

    /// Group norm, gate and output projection of the retention output `o` `[B, H, L, head_dim]`.
    fn finish(&self, o: Tensor<B, 4>, g: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, h, l, dv] = o.dims();
        let o = self
            .group_norm
            .forward(o)
            .swap_dims(1, 2)
            .reshape([b, l, h * dv]);
        let gate = match self.gate_fn {
            RetentionGate::Swish => silu(g),
            RetentionGate::Gelu => gelu(g),
        };
        self.out_proj.forward(gate * o)
    }

    /// Parallel form (RetNet eq. 5, torchscale `parallel_forward`) over a whole sequence starting
    /// at position 0: `O = (Q̃K̃ᵀ ⊙ D̃) / max(|row sum|, 1) · V` — see [`parallel_retention`].
    /// Costs `O(L²)` time and memory.
    ///
    /// # Shapes
    /// `x`: `[B, L, d_model]` → `[B, L, d_model]`
    ///
    /// # Panics
    /// If `x`'s last dimension is not `d_model` or `L` is 0.
    pub fn forward_parallel(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let p = self.project(x, 0);
        let mask = self.rel_pos.decay_mask::<B>(p.qr.dims()[2], &p.qr.device());
        self.finish(parallel_retention(p.qr, p.kr, p.v, mask), p.g)
    }

    /// Recurrent form (RetNet eq. 6, torchscale `recurrent_forward` with `incremental_state`),
    /// one token after another from `state` (see [`recurrent_retention`]); `O(L)` time and a state
    /// of constant size.
    ///
    /// # Shapes
    /// `x`: `[B, L, d_model]` → (`[B, L, d_model]`, state after the `L` tokens)
    ///
    /// # Panics
    /// If `x`'s last dimension is not `d_model`, `L` is 0 or the state's batch differs.
    pub fn forward_recurrent(
        &self,
        x: Tensor<B, 3>,
        state: RetentionState<B>,
    ) -> (Tensor<B, 3>, RetentionState<B>) {
        let p = self.project(x, state.position);
        let (o, state) = recurrent_retention(p.qr, p.kr, p.v, self.rel_pos.gammas(), state);
        (self.finish(o, p.g), state)
    }

    /// One token of the recurrent form: the same cost at every position.
    ///
    /// # Shapes
    /// `x`: `[B, d_model]` → (`[B, d_model]`, next state)
    ///
    /// # Panics
    /// As [`Self::forward_recurrent`].
    pub fn step(
        &self,
        x: Tensor<B, 2>,
        state: RetentionState<B>,
    ) -> (Tensor<B, 2>, RetentionState<B>) {
        let (y, state) = self.forward_recurrent(x.unsqueeze_dim(1), state);
        (y.squeeze_dim(1), state)
    }

    /// Chunkwise form (RetNet eq. 7, torchscale `chunk_recurrent_forward`): parallel within
    /// chunks of `chunk_size` tokens, recurrent across them, from `state` (see
    /// [`chunkwise_retention`]). Any `chunk_size ≥ 1`, whether or not it divides `L`.
    ///
    /// # Shapes
    /// `x`: `[B, L, d_model]` → (`[B, L, d_model]`, state after the `L` tokens)
    ///
    /// # Panics
    /// If `chunk_size` is 0, `x`'s last dimension is not `d_model`, `L` is 0 or the state's batch
    /// differs.
    pub fn forward_chunkwise(
        &self,
        x: Tensor<B, 3>,
        chunk_size: usize,
        state: RetentionState<B>,
    ) -> (Tensor<B, 3>, RetentionState<B>) {
        let p = self.project(x, state.position);
        let (o, state) = chunkwise_retention(p.qr, p.kr, p.v, &self.rel_pos, chunk_size, state);
        (self.finish(o, p.g), state)
    }

    /// Reference twin of all forms: the unnormalised recurrence `S_n = γ·S_{n−1} + k̃_nᵀ v_n`,
    /// `o_n = q̃_n · S_n` from position 0 (see [`retention_reference`]), then the same group norm,
    /// gate and projection. Equal to the three forms when `eps` = 0.
    ///
    /// # Shapes
    /// `x`: `[B, L, d_model]` → `[B, L, d_model]`
    ///
    /// # Panics
    /// As [`Self::forward_parallel`].
    pub fn forward_reference(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let p = self.project(x, 0);
        let o = retention_reference(p.qr, p.kr, p.v, self.rel_pos.gammas());
        self.finish(o, p.g)
    }
}
