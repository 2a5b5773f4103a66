//! Open-Sora STDiT spatial and temporal attention (Open-Sora report, sec. 3.2; Latte): spatial
//! self-attention over the `S = H·W` tokens of each frame, temporal self-attention over the `T`
//! frames at each spatial position with 1D temporal RoPE, both with QK-norm.
//!
//! Token layout. A video latent of `T` frames with `S` tokens each is `[B, T·S, C]`, frame-major
//! (token `t·S + s`), as Open-Sora's `rearrange(x, "B (T S) C -> ...")` assumes. The attention
//! axes are moved into the sequence position by pure layout changes:
//! - spatial: [`to_spatial_batch`] `[B, T·S, C] → [B·T, S, C]` (a reshape; row `b·T + t`),
//!   [`from_spatial_batch`] back;
//! - temporal: [`to_temporal_batch`] `[B, T·S, C] → [B·S, T, C]` (reshape to `[B, T, S, C]`,
//!   swap `T` and `S`; row `b·S + s`), [`from_temporal_batch`] back.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::{Int, Tensor};
//! use vidgen_attention::spatial_temporal::{from_temporal_batch, to_temporal_batch};
//!
//! let device = Default::default();
//! // B = 1, T = 2 frames, S = 3 tokens per frame, C = 1: token t·S + s holds t·S + s.
//! let x = Tensor::<Flex, 1, Int>::arange(0..6, &device).float().reshape([1, 6, 1]);
//! let per_position = to_temporal_batch(x.clone(), 2, 3)?; // [B·S, T, C] = [3, 2, 1]
//! let v: Vec<f32> = per_position.clone().into_data().to_vec().unwrap();
//! assert_eq!(v, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
//! let back = from_temporal_batch(per_position, 3);
//! assert_eq!(back.into_data(), x.into_data());
//! # Ok::<(), vidgen_attention::AttentionError>(())
//! ```
//!
//! Temporal RoPE rotates interleaved pairs by the frame index `0..T` (`rotary_embedding_torch`'s
//! `rotate_queries_or_keys`, Burn's `RotaryEncoding` via [`Rope1d`]).

use crate::error::ConfigError;
use crate::error::{AttentionError, positive, positive_f64, same_size};
use crate::full::{AttentionArgs, MultiHeadAttention, MultiHeadAttentionConfig, RopeRef};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use vidgen_nn::lora::{LoraConfig, WithLora};
use vidgen_nn::{Kernel, Rope1d, Rope1dConfig, WithKernel};

/// Checks `frames, spatial > 0` and `N == frames·spatial` for `x: [B, N, C]`.
fn check_grid<B: Backend>(
    x: &Tensor<B, 3>,
    frames: usize,
    spatial: usize,
) -> Result<[usize; 3], AttentionError> {
    positive("frames", frames)?;
    positive("spatial", spatial)?;
    let dims = x.dims();
    same_size("token count N = frames·spatial", frames * spatial, dims[1])?;
    Ok(dims)
}

/// `[B, T·S, C]` → `[B·T, S, C]`: each frame becomes one sequence of its `S` tokens.
///
/// # Errors
/// [`AttentionError::Config`] (`ConfigError::Zero`) naming `frames` or `spatial`; [`AttentionError::Config`] (`ConfigError::ShapeMismatch`) if
/// the token count is not `frames·spatial`.
pub fn to_spatial_batch<B: Backend>(
    x: Tensor<B, 3>,
    frames: usize,
    spatial: usize,
) -> Result<Tensor<B, 3>, AttentionError> {
    let [b, _, c] = check_grid(&x, frames, spatial)?;
    Ok(x.reshape([b * frames, spatial, c]))
}

/// `[B·T, S, C]` → `[B, T·S, C]`, the inverse of [`to_spatial_batch`].
///
/// # Panics
/// If the leading size is not a multiple of `frames` (or `frames == 0`).
pub fn from_spatial_batch<B: Backend>(x: Tensor<B, 3>, frames: usize) -> Tensor<B, 3> {
    let [bt, s, c] = x.dims();
    assert!(
        frames > 0 && bt.is_multiple_of(frames),
        "from_spatial_batch: leading size {bt} is not a multiple of frames = {frames}"
    );
    x.reshape([bt / frames, frames * s, c])
}

/// `[B, T·S, C]` → `[B·S, T, C]`: each spatial position becomes one sequence of its `T` frames.
///
/// # Errors
/// As [`to_spatial_batch`].
pub fn to_temporal_batch<B: Backend>(
    x: Tensor<B, 3>,
    frames: usize,
    spatial: usize,
) -> Result<Tensor<B, 3>, AttentionError> {
    let [b, _, c] = check_grid(&x, frames, spatial)?;
    Ok(x.reshape([b, frames, spatial, c])
        .swap_dims(1, 2)
        .reshape([b * spatial, frames, c]))
}

/// `[B·S, T, C]` → `[B, T·S, C]`, the inverse of [`to_temporal_batch`].
///
/// # Panics
/// If the leading size is not a multiple of `spatial` (or `spatial == 0`).
pub fn from_temporal_batch<B: Backend>(x: Tensor<B, 3>, spatial: usize) -> Tensor<B, 3> {
    let [bs, t, c] = x.dims();
    assert!(
        spatial > 0 && bs.is_multiple_of(spatial),
        "from_temporal_batch: leading size {bs} is not a multiple of spatial = {spatial}"
    );
    let b = bs / spatial;
    x.reshape([b, spatial, t, c])
        .swap_dims(1, 2)
        .reshape([b, t * spatial, c])
}

/// Configuration of the STDiT attention pair: [`SpatialAttention`], [`TemporalAttention`] and
/// their residual composition [`SpatialTemporalAttention`]. Defaults are Open-Sora 1.2 STDiT3's.
#[derive(Config, Debug)]
pub struct SpatialTemporalConfig {
    /// Model width `C`; must be divisible by `n_heads`.
    pub d_model: usize,
    /// Number of heads.
    pub n_heads: usize,
    /// QK-norm in both attentions (Open-Sora 1.2: on).
    #[config(default = true)]
    pub qk_norm: bool,
    /// QK-norm epsilon.
    #[config(default = 1e-6)]
    pub qk_norm_eps: f64,
    /// Bias in the `qkv` projections (STDiT3: `qkv_bias=True`).
    #[config(default = true)]
    pub bias: bool,
    /// Temporal RoPE over the frame index (Open-Sora 1.2: on).
    #[config(default = true)]
    pub temporal_rope: bool,
    /// RoPE base `θ`.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// Longest frame count the temporal RoPE table covers.
    #[config(default = 512)]
    pub max_frames: usize,
    /// Zero-initialise the temporal `proj` (report sec. 3.2: the model starts as the image model).
    #[config(default = true)]
    pub zero_init_temporal: bool,
}

impl SpatialTemporalConfig {
    fn attention(&self, zero_init_out: bool) -> MultiHeadAttentionConfig {
        MultiHeadAttentionConfig::new(self.d_model, self.n_heads)
            .with_qk_norm(self.qk_norm)
            .with_qk_norm_eps(self.qk_norm_eps)
            .with_bias(self.bias)
            .with_zero_init_out(zero_init_out)
    }

    /// Builds the spatial attention.
    ///
    /// # Errors
    /// [`AttentionError`] naming `d_model`, `n_heads` or `qk_norm_eps`.
    pub fn init_spatial<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<SpatialAttention<B>, AttentionError> {
        Ok(SpatialAttention {
            attn: self.attention(false).init(device)?,
        })
    }

    /// Builds the temporal attention.
    ///
    /// # Errors
    /// As [`init_spatial`](Self::init_spatial), plus `max_frames` (zero) and `rope_theta`
    /// (not > 0) when `temporal_rope` is on, and `d_model` if the head width is odd.
    pub fn init_temporal<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<TemporalAttention<B>, AttentionError> {
        let attn = self.attention(self.zero_init_temporal).init(device)?;
        let rope = if self.temporal_rope {
            positive("max_frames", self.max_frames)?;
            positive_f64("rope_theta", self.rope_theta)?;
            let head_dim = self.d_model / self.n_heads;
            if !head_dim.is_multiple_of(2) {
                return Err(AttentionError::Config(ConfigError::Unsupported {
                    field: "d_model",
                    value: format!("{} (head_dim = {head_dim})", self.d_model),
                    reason: "temporal RoPE needs an even head_dim = d_model / n_heads",
                }));
            }
            let rope = Rope1dConfig::new(head_dim, self.max_frames).with_theta(self.rope_theta);
            Some(rope.init(device).expect("RoPE fields validated above"))
        } else {
            None
        };
        Ok(TemporalAttention { attn, rope })
    }

    /// Builds both.
    ///
    /// # Errors
    /// As [`init_temporal`](Self::init_temporal).
    pub fn init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<SpatialTemporalAttention<B>, AttentionError> {
        Ok(SpatialTemporalAttention {
            spatial: self.init_spatial(device)?,
            temporal: self.init_temporal(device)?,
        })
    }
}

/// Self-attention within each frame (STDiT3 spatial block's `attn`).
#[derive(Module, Debug)]
pub struct SpatialAttention<B: Backend> {
    /// The attention (`qkv`, `q_norm`, `k_norm`, `proj`).
    pub attn: MultiHeadAttention<B>,
}

impl<B: Backend> WithKernel for SpatialAttention<B> {
    /// This attention computing with `kernel` (kept by its [`MultiHeadAttention`]).
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.attn = self.attn.with_kernel(kernel);
        self
    }
}

impl<B: Backend> WithLora for SpatialAttention<B> {
    /// Adapters on its attention's linears (see [`MultiHeadAttention`]'s `WithLora`).
    fn attach_lora(mut self, config: &LoraConfig) -> Self {
        self.attn = self.attn.attach_lora(config);
        self
    }

    fn merge_lora(mut self) -> Self {
        self.attn = self.attn.merge_lora();
        self
    }
}

impl<B: Backend> SpatialAttention<B> {
    /// `from_spatial_batch(attn(to_spatial_batch(x)))`.
    ///
    /// # Shapes
    /// `x`: `[B, T·S, C]` → `[B, T·S, C]`
    ///
    /// # Errors
    /// As [`to_spatial_batch`].
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        frames: usize,
        spatial: usize,
    ) -> Result<Tensor<B, 3>, AttentionError> {
        let y = self.attn.forward(to_spatial_batch(x, frames, spatial)?);
        Ok(from_spatial_batch(y, frames))
    }

    /// Reference twin: the same layout, attention by the naive reference whatever the
    /// [`Kernel`].
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn forward_reference(
        &self,
        x: Tensor<B, 3>,
        frames: usize,
        spatial: usize,
    ) -> Result<Tensor<B, 3>, AttentionError> {
        let x = to_spatial_batch(x, frames, spatial)?;
        let y = self
            .attn
            .forward_reference(x, None, AttentionArgs::default());
        Ok(from_spatial_batch(y, frames))
    }
}

/// Self-attention across frames at each spatial position, with temporal RoPE (STDiT3 temporal
/// block's `attn` with `rope=RotaryEmbedding(head_dim).rotate_queries_or_keys`).
#[derive(Module, Debug)]
pub struct TemporalAttention<B: Backend> {
    /// The attention (`qkv`, `q_norm`, `k_norm`, `proj`).
    pub attn: MultiHeadAttention<B>,
    /// Interleaved RoPE over the frame index, if enabled.
    pub rope: Option<Rope1d<B>>,
}

impl<B: Backend> WithKernel for TemporalAttention<B> {
    /// This attention computing with `kernel` (kept by its [`MultiHeadAttention`]).
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.attn = self.attn.with_kernel(kernel);
        self
    }
}

impl<B: Backend> WithLora for TemporalAttention<B> {
    /// Adapters on its attention's linears (see [`MultiHeadAttention`]'s `WithLora`).
    fn attach_lora(mut self, config: &LoraConfig) -> Self {
        self.attn = self.attn.attach_lora(config);
        self
    }

    fn merge_lora(mut self) -> Self {
        self.attn = self.attn.merge_lora();
        self
    }
}

impl<B: Backend> TemporalAttention<B> {
    /// `Err(OutOfDomain)` if `frames` exceeds the RoPE table.
    fn check_frames(&self, frames: usize) -> Result<(), AttentionError> {
        match &self.rope {
            Some(rope) if frames > rope.rotary.freq_complex.dims()[0] => {
                Err(AttentionError::Config(ConfigError::OutOfDomain {
                    field: "frames",
                    value: frames as f64,
                    requirement: "<= the temporal RoPE table's max_frames",
                }))
            }
            _ => Ok(()),
        }
    }

    fn args(&self) -> AttentionArgs<'_, B> {
        let args = AttentionArgs::default();
        match &self.rope {
            Some(rope) => args.with_rope(RopeRef::OneD(rope)),
            None => args,
        }
    }

    /// `from_temporal_batch(attn(to_temporal_batch(x)))`, RoPE on q and k over `0..T`.
    ///
    /// # Shapes
    /// `x`: `[B, T·S, C]` → `[B, T·S, C]`
    ///
    /// # Errors
    /// As [`to_temporal_batch`]; [`AttentionError::Config`] (`ConfigError::OutOfDomain`) naming `frames` if it exceeds
    /// the RoPE table's `max_frames`.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        frames: usize,
        spatial: usize,
    ) -> Result<Tensor<B, 3>, AttentionError> {
        self.check_frames(frames)?;
        let x = to_temporal_batch(x, frames, spatial)?;
        let y = self.attn.forward_with(x, None, self.args());
        Ok(from_temporal_batch(y, spatial))
    }

    /// Reference twin: the same layout and RoPE, attention by the naive reference whatever the
    /// [`Kernel`].
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn forward_reference(
        &self,
        x: Tensor<B, 3>,
        frames: usize,
        spatial: usize,
    ) -> Result<Tensor<B, 3>, AttentionError> {
        self.check_frames(frames)?;
        let x = to_temporal_batch(x, frames, spatial)?;
        let y = self.attn.forward_reference(x, None, self.args());
        Ok(from_temporal_batch(y, spatial))
    }
}

/// Spatial then temporal attention with residuals, `y = x + spatial(x)`, `z = y + temporal(y)` —
/// the attention skeleton of an STDiT block pair, without the norms, adaLN modulation,
/// cross-attention and MLP the full blocks add (those live with the models).
#[derive(Module, Debug)]
pub struct SpatialTemporalAttention<B: Backend> {
    /// Attention within frames.
    pub spatial: SpatialAttention<B>,
    /// Attention across frames.
    pub temporal: TemporalAttention<B>,
}

impl<B: Backend> WithKernel for SpatialTemporalAttention<B> {
    /// Both attentions computing with `kernel`.
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.spatial = self.spatial.with_kernel(kernel);
        self.temporal = self.temporal.with_kernel(kernel);
        self
    }
}

impl<B: Backend> WithLora for SpatialTemporalAttention<B> {
    /// Adapters on both attentions' linears.
    fn attach_lora(mut self, config: &LoraConfig) -> Self {
        self.spatial = self.spatial.attach_lora(config);
        self.temporal = self.temporal.attach_lora(config);
        self
    }

    fn merge_lora(mut self) -> Self {
        self.spatial = self.spatial.merge_lora();
        self.temporal = self.temporal.merge_lora();
        self
    }
}

impl<B: Backend> SpatialTemporalAttention<B> {
    /// `y = x + spatial(x)`, then `y + temporal(y)`.
    ///
    /// # Shapes
    /// `x`: `[B, T·S, C]` → `[B, T·S, C]`
    ///
    /// # Errors
    /// As [`to_spatial_batch`].
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        frames: usize,
        spatial: usize,
    ) -> Result<Tensor<B, 3>, AttentionError> {
        let y = x.clone() + self.spatial.forward(x, frames, spatial)?;
        Ok(y.clone() + self.temporal.forward(y, frames, spatial)?)
    }

    /// Reference twin of [`forward`](Self::forward).
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn forward_reference(
        &self,
        x: Tensor<B, 3>,
        frames: usize,
        spatial: usize,
    ) -> Result<Tensor<B, 3>, AttentionError> {
        let y = x.clone() + self.spatial.forward_reference(x, frames, spatial)?;
        Ok(y.clone() + self.temporal.forward_reference(y, frames, spatial)?)
    }
}
