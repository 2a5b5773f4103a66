//! Multi-head self- and cross-attention as PixArt-α and Open-Sora 1.2 (STDiT3) write it
//! (Open-Sora report, sec. 3.2): QK-norm (RMSNorm per head, SD3 / Dehghani et al. 2023), optional
//! RoPE on q and k, key-padding and causal masks, computed through Burn's fused
//! [`module::attention`](burn::tensor::module::attention).
//!
//! `y = proj( concat_h softmax(q_h·k_hᵀ/√Dh + mask)·v_h )`, with, per head,
//! `q_h = rope(q_norm(x·W_q)_h)`, `k_h = rope(k_norm(c·W_k)_h)`, `v_h = (c·W_v)_h`, where the
//! context `c = x` for self-attention.
//!
//! Parameter names follow Open-Sora's `opensora/models/layers/blocks.py` checkpoint keys:
//! - self-attention (`Attention`): `qkv` (`D → 3D`, output laid out `[3, H, Dh]`), `q_norm`,
//!   `k_norm`, `proj`;
//! - cross-attention (`MultiHeadCrossAttention`): `q_linear` (`D → D`), `kv_linear`
//!   (`Dc → 2D`, output laid out `[2, H, Dh]`), optional `q_norm`/`k_norm`, `proj`.
//!
//! Order of operations as in Open-Sora's non-legacy path: QK-norm first, then RoPE.
//!
//! Masks use Burn's convention: a `Bool` tensor where **`true` = masked out**. PyTorch's SDPA
//! takes bool masks the other way round (`True` = attend), so a PyTorch mask is
//! `mask.bool_not()` here. Build them with [`key_padding_mask`] (per-sample valid lengths, the
//! padded-batch form of Open-Sora's xformers `BlockDiagonalMask.from_seqlens`) and
//! [`causal_mask`]; [`expand_key_padding`] broadcasts a `[B, Lk]` mask to `[B, H, Lq, Lk]`.
//!
//! **Fully masked rows.** A query row whose keys are all masked (a sample with zero valid
//! context tokens, or a causal row with `Lq > Lk`) gets all-zero attention weights and a zero
//! context vector on both paths — Burn's fallback and its CPU kernels use a NaN-safe softmax, and
//! [`attention_weights_reference`] zeroes such rows explicitly — so [`MultiHeadAttention`]
//! returns `proj.bias` there. PyTorch's SDPA returns NaN for those rows instead.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use vidgen_attention::full::{AttentionArgs, MultiHeadAttentionConfig, key_padding_mask};
//!
//! let device = Default::default();
//! // Cross-attention from 6 text tokens of width 12; the second sample has 3 valid tokens.
//! let attn = MultiHeadAttentionConfig::new(16, 2)
//!     .with_d_context(Some(12))
//!     .init::<Flex>(&device)?;
//! let x = Tensor::<Flex, 3>::ones([2, 5, 16], &device);
//! let text = Tensor::<Flex, 3>::ones([2, 6, 12], &device);
//! let pad = key_padding_mask::<Flex>(&[6, 3], 6, &device);
//! let args = AttentionArgs::default().with_key_padding(pad);
//! let y = attn.forward_with(x.clone(), Some(text.clone()), args.clone());
//! assert_eq!(y.dims(), [2, 5, 16]);
//! let r = attn.forward_reference(x, Some(text), args);
//! assert!((y - r).abs().max().into_scalar() < 1e-5);
//! # Ok::<(), vidgen_attention::AttentionError>(())
//! ```
//!
//! **Training.** Under `Autodiff`, Burn's fused attention always takes its unfused fallback (the
//! full `[B, H, Lq, Lk]` score matrix is materialised; there is no flash backward).

mod sdpa;

pub use crate::mask::{causal_mask, expand_key_padding, key_padding_mask};
pub use sdpa::{attention_reference, attention_weights_reference, scaled_dot_product_attention};

use crate::error::{AttentionError, divisible, positive, positive_f64};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Bool, Tensor, backend::Backend};
use vidgen_nn::lora::{LoraAdapter, LoraConfig, WithLora, forward_with_lora, merge_lora};
use vidgen_nn::{Kernel, Rope1d, RopeTables, WithKernel};

/// Configuration of [`MultiHeadAttention`].
#[derive(Config, Debug)]
pub struct MultiHeadAttentionConfig {
    /// Model width `D`; must be divisible by `n_heads`.
    pub d_model: usize,
    /// Number of heads `H` (`head_dim = D / H`).
    pub n_heads: usize,
    /// `None`: self-attention with a fused `qkv` projection. `Some(Dc)`: cross-attention from
    /// context tokens of width `Dc` (e.g. T5 text features; Open-Sora projects them to `D` first
    /// and uses `Some(D)`), with `q_linear` and `kv_linear`.
    #[config(default = "None")]
    pub d_context: Option<usize>,
    /// RMSNorm over each head of q and k (Open-Sora 1.2: on for self-attention).
    #[config(default = false)]
    pub qk_norm: bool,
    /// QK-norm epsilon (Open-Sora's `LlamaRMSNorm`: 1e-6).
    #[config(default = 1e-6)]
    pub qk_norm_eps: f64,
    /// Bias in the input projections `qkv` / `q_linear` + `kv_linear` (Open-Sora STDiT3: `true`).
    #[config(default = true)]
    pub bias: bool,
    /// Bias in the output projection `proj` (Open-Sora / PixArt: always `true`).
    #[config(default = true)]
    pub out_bias: bool,
    /// Zero-initialise `proj` so the block starts as a no-op on the residual stream (Open-Sora's
    /// temporal attention, report sec. 3.2).
    #[config(default = false)]
    pub zero_init_out: bool,
}

impl MultiHeadAttentionConfig {
    /// Width of one head, `d_model / n_heads` (unchecked; see [`init`](Self::init)).
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads.max(1)
    }

    /// Checks every field without building anything.
    ///
    /// # Errors
    /// [`AttentionError`] naming `d_model` or `n_heads` (zero, or `d_model % n_heads != 0`),
    /// `d_context` (`Some(0)`) or `qk_norm_eps` (not > 0).
    pub fn validate(&self) -> Result<(), AttentionError> {
        positive("d_model", self.d_model)?;
        positive("n_heads", self.n_heads)?;
        divisible("d_model", self.d_model, self.n_heads, Some("n_heads"))?;
        if let Some(d_context) = self.d_context {
            positive("d_context", d_context)?;
        }
        Ok(positive_f64("qk_norm_eps", self.qk_norm_eps)?)
    }

    /// Builds the layer (PyTorch-style uniform init for the input projections).
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<MultiHeadAttention<B>, AttentionError> {
        self.validate()?;
        let d = self.d_model;
        let linear = |d_in: usize, d_out: usize| {
            LinearConfig::new(d_in, d_out)
                .with_bias(self.bias)
                .init(device)
        };
        let (qkv, q_linear, kv_linear) = match self.d_context {
            None => (Some(linear(d, 3 * d)), None, None),
            Some(dc) => (None, Some(linear(d, d)), Some(linear(dc, 2 * d))),
        };
        let norm = || {
            self.qk_norm.then(|| {
                RmsNormConfig::new(self.head_dim())
                    .with_epsilon(self.qk_norm_eps)
                    .init(device)
            })
        };
        let mut proj = LinearConfig::new(d, d).with_bias(self.out_bias);
        if self.zero_init_out {
            proj = proj.with_initializer(Initializer::Zeros);
        }
        Ok(MultiHeadAttention {
            qkv,
            q_linear,
            kv_linear,
            q_norm: norm(),
            k_norm: norm(),
            proj: proj.init(device),
            qkv_lora: None,
            q_linear_lora: None,
            kv_linear_lora: None,
            proj_lora: None,
            n_heads: self.n_heads,
            kernel: Kernel::Fast,
        })
    }
}

/// Rotary embedding applied to q and k (after QK-norm).
#[derive(Debug, Clone, Copy)]
pub enum RopeRef<'a, B: Backend> {
    /// Interleaved 1D RoPE over positions `0..L` (Burn's `RotaryEncoding`; Open-Sora's temporal
    /// RoPE from `rotary_embedding_torch`).
    OneD(&'a Rope1d<B>),
    /// Precomputed tables of exactly `L` rows (3D-axial or arbitrary 1D positions, either layout).
    Tables(&'a RopeTables<B>),
}

impl<B: Backend> RopeRef<'_, B> {
    /// Rotates `[B, H, L, Dh]` head vectors.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Self::OneD(rope) => rope.forward(x),
            Self::Tables(tables) => tables.apply(x),
        }
    }
}

/// Optional inputs of [`MultiHeadAttention::forward_with`]; `Default` is plain attention.
#[derive(Debug, Clone)]
pub struct AttentionArgs<'a, B: Backend> {
    /// RoPE for q and k. For cross-attention q and k have different lengths, so a
    /// [`RopeRef::Tables`] must match both (use it with self-attention only).
    pub rope: Option<RopeRef<'a, B>>,
    /// `[B, Lk]` key-padding mask, `true` = padded key (see [`key_padding_mask`]).
    pub key_padding: Option<Tensor<B, 2, Bool>>,
    /// Causal masking (Burn's bottom-right alignment, see [`causal_mask`]).
    pub causal: bool,
}

impl<B: Backend> Default for AttentionArgs<'_, B> {
    fn default() -> Self {
        Self {
            rope: None,
            key_padding: None,
            causal: false,
        }
    }
}

impl<'a, B: Backend> AttentionArgs<'a, B> {
    /// Adds RoPE.
    pub fn with_rope(mut self, rope: RopeRef<'a, B>) -> Self {
        self.rope = Some(rope);
        self
    }

    /// Adds a `[B, Lk]` key-padding mask (`true` = padded).
    pub fn with_key_padding(mut self, mask: Tensor<B, 2, Bool>) -> Self {
        self.key_padding = Some(mask);
        self
    }

    /// Turns causal masking on or off.
    pub fn with_causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }
}

/// Multi-head self/cross attention with Open-Sora / PixArt parameter names.
#[derive(Module, Debug)]
pub struct MultiHeadAttention<B: Backend> {
    /// Self-attention input projection `D → 3D` (`[3, H, Dh]` output order).
    pub qkv: Option<Linear<B>>,
    /// Cross-attention query projection `D → D`.
    pub q_linear: Option<Linear<B>>,
    /// Cross-attention key/value projection `Dc → 2D` (`[2, H, Dh]` output order).
    pub kv_linear: Option<Linear<B>>,
    /// RMSNorm over each query head (`weight` ↔ `gamma`).
    pub q_norm: Option<RmsNorm<B>>,
    /// RMSNorm over each key head.
    pub k_norm: Option<RmsNorm<B>>,
    /// Output projection `D → D`.
    pub proj: Linear<B>,
    /// LoRA adapter of `qkv` ([`WithLora`]; none unless attached).
    pub qkv_lora: Option<LoraAdapter<B>>,
    /// LoRA adapter of `q_linear`.
    pub q_linear_lora: Option<LoraAdapter<B>>,
    /// LoRA adapter of `kv_linear`.
    pub kv_linear_lora: Option<LoraAdapter<B>>,
    /// LoRA adapter of `proj`.
    pub proj_lora: Option<LoraAdapter<B>>,
    /// Number of heads.
    pub n_heads: usize,
    /// The attention [`forward_with`](Self::forward_with) runs: the fused op or its reference
    /// twin ([`with_kernel`](Self::with_kernel)).
    #[module(skip)]
    pub kernel: Kernel,
}

/// Projected heads `q`, `k`, `v`, each `[B, H, L, Dh]`.
type Heads<B> = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>);

/// `[B, L, n·D]` → `n` tensors `[B, H, L, Dh]` (channel order `[n, H, Dh]`).
fn split_heads<B: Backend>(x: Tensor<B, 3>, n: usize, heads: usize) -> Vec<Tensor<B, 4>> {
    let [b, l, width] = x.dims();
    let head_dim = width / (n * heads);
    vidgen_nn::layout::permute_contiguous(x.reshape([b, l, n, heads, head_dim]), [2, 0, 3, 1, 4])
        .chunk(n, 0)
        .into_iter()
        .map(|t| t.squeeze_dim::<4>(0))
        .collect()
}

impl<B: Backend> WithKernel for MultiHeadAttention<B> {
    /// This layer computing with `kernel`: [`Kernel::Reference`] makes every forward run
    /// [`forward_reference`](Self::forward_reference).
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        self
    }
}

impl<B: Backend> WithLora for MultiHeadAttention<B> {
    /// Adapters on `qkv`, `q_linear`, `kv_linear`, `proj` where targeted (and present).
    fn attach_lora(mut self, config: &LoraConfig) -> Self {
        let adapt = |name, linear: &Option<Linear<B>>, current| match linear {
            Some(linear) => config.adapt(name, linear, current),
            None => current,
        };
        self.qkv_lora = adapt("qkv", &self.qkv, self.qkv_lora.take());
        self.q_linear_lora = adapt("q_linear", &self.q_linear, self.q_linear_lora.take());
        self.kv_linear_lora = adapt("kv_linear", &self.kv_linear, self.kv_linear_lora.take());
        self.proj_lora = config.adapt("proj", &self.proj, self.proj_lora.take());
        self
    }

    fn merge_lora(mut self) -> Self {
        let merge = |linear: Option<Linear<B>>, adapter| linear.map(|l| merge_lora(l, adapter));
        self.qkv = merge(self.qkv, self.qkv_lora.take());
        self.q_linear = merge(self.q_linear, self.q_linear_lora.take());
        self.kv_linear = merge(self.kv_linear, self.kv_linear_lora.take());
        self.proj = merge_lora(self.proj, self.proj_lora.take());
        self
    }
}

impl<B: Backend> MultiHeadAttention<B> {
    /// Whether this layer was built for cross-attention (`d_context = Some(..)`).
    pub fn is_cross(&self) -> bool {
        self.q_linear.is_some()
    }

    /// Projects to heads and applies QK-norm and RoPE: everything before the attention op.
    ///
    /// # Shapes
    /// `x`: `[B, Lq, D]`, `context`: `[B, Lk, Dc]` (cross only) → q `[B, H, Lq, Dh]`,
    /// k, v `[B, H, Lk, Dh]`
    ///
    /// # Panics
    /// If a context is given to a self-attention layer or missing for a cross-attention one, or
    /// on width mismatches (Burn's matmul message).
    pub fn project(
        &self,
        x: Tensor<B, 3>,
        context: Option<Tensor<B, 3>>,
        rope: Option<RopeRef<'_, B>>,
    ) -> Heads<B> {
        let h = self.n_heads;
        let (q, k, v) = match (&self.qkv, &self.q_linear, &self.kv_linear, context) {
            (Some(qkv), _, _, None) => {
                let qkv = forward_with_lora(qkv, self.qkv_lora.as_ref(), x);
                let mut parts = split_heads(qkv, 3, h).into_iter();
                let (q, k) = (parts.next().unwrap(), parts.next().unwrap());
                (q, k, parts.next().unwrap())
            }
            (None, Some(q_linear), Some(kv_linear), Some(c)) => {
                let q = forward_with_lora(q_linear, self.q_linear_lora.as_ref(), x);
                let kv = forward_with_lora(kv_linear, self.kv_linear_lora.as_ref(), c);
                let q = split_heads(q, 1, h).remove(0);
                let mut kv = split_heads(kv, 2, h).into_iter();
                (q, kv.next().unwrap(), kv.next().unwrap())
            }
            (Some(_), ..) => panic!("self-attention layer (d_context = None) given a context"),
            _ => panic!("cross-attention layer (d_context = Some) called without a context"),
        };
        let q = match &self.q_norm {
            Some(norm) => norm.forward(q),
            None => q,
        };
        let k = match &self.k_norm {
            Some(norm) => norm.forward(k),
            None => k,
        };
        match rope {
            Some(r) => (r.apply(q), r.apply(k), v),
            None => (q, k, v),
        }
    }

    /// `[B, H, Lq, Dh]` → merge heads → `proj`.
    fn merge(&self, y: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, h, l, dh] = y.dims();
        let y = vidgen_nn::layout::permute_contiguous(y, [0, 2, 1, 3]).reshape([b, l, h * dh]);
        forward_with_lora(&self.proj, self.proj_lora.as_ref(), y)
    }

    /// Plain self-attention (no RoPE, no mask).
    ///
    /// # Shapes
    /// `x`: `[B, L, D]` → `[B, L, D]`
    ///
    /// # Panics
    /// On a cross-attention layer.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_with(x, None, AttentionArgs::default())
    }

    /// Plain cross-attention from `context` (Open-Sora's `MultiHeadCrossAttention` without mask).
    ///
    /// # Shapes
    /// `x`: `[B, Lq, D]`, `context`: `[B, Lk, Dc]` → `[B, Lq, D]`
    ///
    /// # Panics
    /// On a self-attention layer.
    pub fn forward_cross(&self, x: Tensor<B, 3>, context: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_with(x, Some(context), AttentionArgs::default())
    }

    /// Attention with optional context, RoPE, key-padding and causal masks, through Burn's fused
    /// op ([`scaled_dot_product_attention`]), or through [`attention_reference`] when built with
    /// [`Kernel::Reference`].
    ///
    /// # Shapes
    /// `x`: `[B, Lq, D]`, `context`: `[B, Lk, Dc]` (cross only), `args.key_padding`: `[B, Lk]`
    /// → `[B, Lq, D]`
    ///
    /// # Panics
    /// As [`project`](Self::project); if the key-padding mask is not `[B, Lk]`; if RoPE tables
    /// do not match the sequence length.
    pub fn forward_with(
        &self,
        x: Tensor<B, 3>,
        context: Option<Tensor<B, 3>>,
        args: AttentionArgs<'_, B>,
    ) -> Tensor<B, 3> {
        if self.kernel.is_reference() {
            return self.forward_reference(x, context, args);
        }
        let (q, k, v) = self.project(x, context, args.rope);
        let mask = args
            .key_padding
            .map(|m| expand_key_padding(m, score_shape(&q, &k)));
        self.merge(scaled_dot_product_attention(
            q,
            k,
            v,
            mask,
            args.causal,
            None,
        ))
    }

    /// Reference twin of [`forward_with`](Self::forward_with): the same projections, attention
    /// by [`attention_reference`] (matmul → softmax → matmul, explicit causal mask), whatever
    /// the layer's [`Kernel`].
    ///
    /// # Shapes
    /// As [`forward_with`](Self::forward_with).
    pub fn forward_reference(
        &self,
        x: Tensor<B, 3>,
        context: Option<Tensor<B, 3>>,
        args: AttentionArgs<'_, B>,
    ) -> Tensor<B, 3> {
        let (q, k, v) = self.project(x, context, args.rope);
        let mask = args
            .key_padding
            .map(|m| expand_key_padding(m, score_shape(&q, &k)));
        self.merge(attention_reference(q, k, v, mask, args.causal, None))
    }
}

/// `[B, H, Lq, Lk]` from q `[B, H, Lq, Dh]` and k `[B, H, Lk, Dh]`.
fn score_shape<B: Backend>(q: &Tensor<B, 4>, k: &Tensor<B, 4>) -> [usize; 4] {
    let [b, h, lq, _] = q.dims();
    [b, h, lq, k.dims()[2]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Int;
    use vidgen_testing::Flex;

    #[test]
    fn split_heads_orders_channels_as_n_heads_dim() {
        let device = Default::default();
        // [1, 1, 2·2·3]: channel c = ((n·H) + h)·Dh + d.
        let x = Tensor::<Flex, 1, Int>::arange(0..12, &device)
            .float()
            .reshape([1, 1, 12]);
        let parts = split_heads(x, 2, 2);
        let k: Vec<f32> = parts[1].clone().into_data().to_vec().unwrap();
        assert_eq!(parts[1].dims(), [1, 2, 1, 3]);
        assert_eq!(k, vec![6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    }
}
