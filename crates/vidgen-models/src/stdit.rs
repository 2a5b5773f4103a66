//! Open-Sora 1.2's STDiT (Spatial-Temporal Diffusion Transformer; Open-Sora report sec. 3.2–3.3,
//! upstream `opensora/models/stdit/stdit3.py`), composed from vidgen's layers.
//!
//! Data flow for a latent `x: [B, C, T, H, W]` at flow time `t: [B]` with text `[B, L, d_text]`:
//!
//! 1. `x_embedder` ([`PatchEmbed3d`]) → tokens `[B, T·S, D]` (frame-major, `S = h·w`), plus the
//!    2D sin-cos table ([`sincos_2d`](vidgen_nn::sincos_2d), `base_size = round(√S)`) added to
//!    every frame, and with [`StditConfig::temporal_pos_embed`] a 1D sin-cos table over frames
//!    ([`sincos_1d`](vidgen_nn::sincos_1d));
//! 2. `c = t_embedder(t) + fps_embedder(fps)` ([`TimestepEmbedder`] twice: Open-Sora's
//!    `TimestepEmbedder` and `SizeEmbedder`), `t_mlp = t_block(c)` — adaLN-single
//!    ([`AdaLnModulation`], PixArt init, shared by all blocks, 6 chunks);
//! 3. text `y_embedder.y_proj` ([`Mlp`](vidgen_nn::Mlp), `d_text → D`), key-padding mask from
//!    the valid lengths;
//! 4. `depth` pairs of blocks, spatial then temporal ([`StditBlock`]): each is
//!    `x += gate_msa·attn(t2i_modulate(LN(x), shift_msa, scale_msa))`,
//!    `x += cross_attn(x, text)`, `x += gate_mlp·mlp(t2i_modulate(LN(x), shift_mlp, scale_mlp))`,
//!    the six vectors being `scale_shift_table + t_mlp`
//!    ([`ScaleShiftTable`](vidgen_nn::ScaleShiftTable)); spatial attention runs within each frame,
//!    temporal attention across frames with temporal RoPE, both with QK-norm ([`SpatialAttention`](vidgen_attention::SpatialAttention),
//!    [`TemporalAttention`](vidgen_attention::TemporalAttention));
//! 5. `final_layer` (2-chunk table + `c`, LN, modulate, linear) and
//!    [`unpatchify_3d`](vidgen_nn::unpatchify_3d).
//!
//! **Conditioning frames** (report sec. 3.3, Open-Sora's `x_mask` / `t0`): frames flagged in
//! `frame_mask` (`true` = conditioning frame, the negation of Open-Sora's `x_mask`) are modulated
//! with the timestep-0 vectors `t_block(t_embedder(0) + fps_embedder(fps))` instead of `t`'s. Both
//! modulations are computed and selected per frame, as upstream does.
//!
//! **Zero init** (report sec. 3.2): with `zero_init_temporal` the temporal blocks' `attn.proj`,
//! `cross_attn.proj` and `mlp.fc2` weights start at zero (upstream `initialize_weights`).
//!
//! **Upstream semantics** ([`Stdit::forward_input`], arguments named after `STDiT3.forward`):
//! inputs are zero-padded up to the patch grid and the output cropped back; the spatial
//! sin-cos scale is computed per call from the pixel resolution,
//! `√(height·width) / input_sq_size` ([`StditConfig::input_sq_size`]), with
//! `base_size = round(√(h·w))` in patches; `fps` is embedded and added to `t`; the caption mask
//! selects each sample's valid tokens; with [`StditConfig::pred_sigma`] the output has `2·C`
//! channels (the sampler uses the first `C`); the final layer's timestep-0 branch normalises the
//! already-modulated tokens, as upstream does ([`StditConfig::final_t0_norm_modulated`]).
//! [`crate::opensora`] loads the published checkpoints by their upstream names.
//!
//! Divergences from upstream: text is padded `[B, L, ·]` with a key-padding mask instead of
//! packed tokens (same result); a call without a resolution uses the fixed
//! [`StditConfig::pos_interpolation_scale`]; the temporal RoPE table has a maximum length
//! ([`StditConfig::max_frames`]); the options marked as such below ([`StditConfig::pooled_text`],
//! [`StditConfig::cross_qk_norm`], [`StditConfig::temporal_pos_embed`],
//! `final_t0_norm_modulated = false`) are not upstream's.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use vidgen_models::TextConditioning;
//! use vidgen_models::stdit::{StditConfig, StditInput};
//!
//! let device = Default::default();
//! let model = StditConfig::new(16, 2, 1, 8).init::<Flex>(&device)?;
//! let x = Tensor::<Flex, 5>::zeros([1, 4, 2, 4, 4], &device);
//! let t = Tensor::<Flex, 1>::from_floats([500.0], &device);
//! let fps = Tensor::<Flex, 1>::from_floats([8.0], &device);
//! let text = Tensor::<Flex, 3>::ones([1, 3, 8], &device);
//! let prompt = TextConditioning::from_lens(text.clone(), &[2])?; // 2 valid tokens
//! let v = model.forward(x.clone(), t.clone(), &prompt, fps.clone(), None)?;
//! assert_eq!(v.dims(), [1, 4, 2, 4, 4]); // the velocity: the first C channels
//! // Upstream's arguments; pred_sigma = true gives 2·C channels, odd sizes are padded and cropped.
//! let x = Tensor::<Flex, 5>::zeros([1, 4, 2, 3, 5], &device);
//! let input = StditInput::new(x, t, text, fps).with_resolution(24.0, 40.0);
//! assert_eq!(model.forward_input(input)?.dims(), [1, 8, 2, 3, 5]);
//! # Ok::<(), vidgen_models::ModelError>(())
//! ```

mod block;
mod forward;
mod input;
mod pipeline;

pub use crate::denoise::CfgMode;
pub use block::{
    CaptionEmbedder, FinalLayer, FrameAttention, SpatialStditBlock, StditBlock, TemporalStditBlock,
};
pub use input::StditInput;
pub use pipeline::{
    StditConditioning, StditDenoiser, TextToVideo, frame_mask_tensor, sample_stdit,
};

use crate::denoise::TextConditioning;
use crate::error::ConfigError;
use crate::error::{ModelError, divisible, positive, positive_f64, same_size};
use block::component;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Bool, Tensor, backend::Backend};
use forward::Prepared;
use vidgen_attention::SpatialTemporalConfig;
use vidgen_nn::{
    AdaLnModulation, AdaLnModulationConfig, Kernel, LoraConfig, PatchEmbed3d, PatchEmbed3dConfig,
    TimestepEmbedder, TimestepEmbedderConfig, WithKernel, WithLora,
};

/// Configuration of [`Stdit`]. Defaults are Open-Sora 1.2 STDiT3's where they are not sizes.
#[derive(Config, Debug)]
pub struct StditConfig {
    /// Model width `D` (`hidden_size`; Open-Sora 1.2: 1152). Multiple of 4 and of `n_heads`.
    pub d_model: usize,
    /// Attention heads (Open-Sora 1.2: 16); `d_model / n_heads` must be even (temporal RoPE).
    pub n_heads: usize,
    /// Number of spatial/temporal block pairs (Open-Sora 1.2: 28).
    pub depth: usize,
    /// Width of the text features (`caption_channels`; T5-XXL: 4096).
    pub d_text: usize,
    /// Latent channels `C` (Open-Sora 1.2's VAE: 4); the output has the same.
    #[config(default = 4)]
    pub in_channels: usize,
    /// `(pt, ph, pw)`.
    #[config(default = "[1, 2, 2]")]
    pub patch_size: [usize; 3],
    /// MLP hidden width `round(d_model·mlp_ratio)`.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Longest token-frame count `T / pt` the temporal RoPE table covers.
    #[config(default = 64)]
    pub max_frames: usize,
    /// Rows of the learnt null caption `y_embedding` (upstream `model_max_length` = 300): the
    /// longest text the unconditional branch of classifier-free guidance can use.
    #[config(default = 300)]
    pub text_max_len: usize,
    /// QK-norm in the self-attentions (report sec. 3.2).
    #[config(default = true)]
    pub qk_norm: bool,
    /// QK-norm epsilon (upstream `LlamaRMSNorm`: 1e-6).
    #[config(default = 1e-6)]
    pub qk_norm_eps: f64,
    /// Temporal RoPE base.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// Width of the sinusoidal timestep / fps features.
    #[config(default = 256)]
    pub frequency_dim: usize,
    /// Spatial sin-cos positions are divided by this (upstream:
    /// `√(height·width) / input_sq_size` in pixels; 1 for the native resolution).
    #[config(default = 1.0)]
    pub pos_interpolation_scale: f64,
    /// Zero-initialise the temporal blocks' output projections (report sec. 3.2).
    #[config(default = true)]
    pub zero_init_temporal: bool,
    /// Also add a 1D sin-cos table over token frames (Open-Sora 1.0/1.1 STDiT's
    /// `pos_embed_temporal`) to every token. STDiT3 (1.2) has only the temporal RoPE, which is
    /// relative: a model then learns absolute frame order only from boundary effects.
    #[config(default = false)]
    pub temporal_pos_embed: bool,
    /// Also add a pooled caption to the conditioning: `c += pooled_proj(mean of the valid
    /// projected text tokens)`, as SD3 and Flux add a pooled text vector to the timestep
    /// embedding. Every block's adaLN then sees the whole caption, not only through
    /// cross-attention, whose softmax over a few tokens can settle on one word. `pooled_proj`
    /// starts at zero.
    #[config(default = false)]
    pub pooled_text: bool,
    /// QK-norm in the cross-attention to the text as well (per-head RMSNorm of queries and
    /// keys, eps `qk_norm_eps`). Upstream STDiT3 normalises only the self-attentions; with a
    /// few caption tokens, unnormalised logits can settle the softmax on one token. The tiny
    /// text-to-video model learns its direction word only with this on (docs/tiny_training.md).
    #[config(default = false)]
    pub cross_qk_norm: bool,
    /// Predict a variance as well (upstream `pred_sigma`): the final layer has `2·C` output
    /// channels, the velocity being the first `C` ([`Stdit::forward`] returns only those,
    /// [`Stdit::forward_input`] all of them).
    #[config(default = true)]
    pub pred_sigma: bool,
    /// Pixel side of the square resolution at which the spatial sin-cos positions are unscaled
    /// (upstream `input_sq_size`): a call at `height × width` pixels divides them by
    /// `√(height·width) / input_sq_size`.
    #[config(default = 512.0)]
    pub input_sq_size: f64,
    /// The final layer's timestep-0 branch as upstream (`T2IFinalLayer`): the conditioning
    /// frames' tokens are `modulate(LN(modulate(LN(x), c_t)), c_0)`, normalising the tokens
    /// already modulated at `t` (so they still depend on `t`). `false`: `modulate(LN(x), c_0)`,
    /// which makes conditioning frames independent of `t` (the tiny shipped model's setting).
    #[config(default = true)]
    pub final_t0_norm_modulated: bool,
}

/// Largest parameter count [`StditConfig::validate`] accepts (2^34 elements, 64 GiB in f32;
/// Open-Sora 1.2's XL/2 has 1.2·10⁹).
pub const MAX_PARAMETERS: usize = 1 << 34;

/// LayerNorm epsilon of every norm (upstream `eps=1e-6`, no affine parameters).
pub(crate) const NORM_EPS: f64 = 1e-6;

impl StditConfig {
    /// Output channels: `2·in_channels` with [`pred_sigma`](Self::pred_sigma), else `in_channels`.
    pub fn out_channels(&self) -> usize {
        if self.pred_sigma {
            self.in_channels.saturating_mul(2)
        } else {
            self.in_channels
        }
    }

    /// MLP hidden width `round(d_model·mlp_ratio)`.
    pub fn mlp_hidden(&self) -> usize {
        (self.d_model as f64 * self.mlp_ratio).round() as usize
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`ModelError`] naming the field: zero sizes (`d_model`, `n_heads`, `depth`, `d_text`,
    /// `in_channels`, `patch_size`, `max_frames`, `text_max_len`, `frequency_dim`), `d_model`
    /// not divisible by 4 or `n_heads`, an odd head width (`d_model`), `mlp_ratio`,
    /// `qk_norm_eps`, `rope_theta`, `pos_interpolation_scale` or `input_sq_size` not > 0,
    /// `frequency_dim < 2`, sizes whose parameter count exceeds [`MAX_PARAMETERS`].
    pub fn validate(&self) -> Result<(), ModelError> {
        vidgen_nn::error::layer_count("depth", self.depth)?;
        for (field, value) in [
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("depth", self.depth),
            ("d_text", self.d_text),
            ("in_channels", self.in_channels),
            ("max_frames", self.max_frames),
            ("text_max_len", self.text_max_len),
            ("frequency_dim", self.frequency_dim),
        ] {
            positive(field, value)?;
        }
        for p in self.patch_size {
            positive("patch_size", p)?;
        }
        divisible("d_model", self.d_model, self.n_heads, Some("n_heads"))?;
        divisible("d_model", self.d_model, 4, None)?;
        divisible(
            "d_model",
            self.d_model,
            self.n_heads.saturating_mul(2),
            Some("2·n_heads (even head_dim)"),
        )?;
        positive_f64("mlp_ratio", self.mlp_ratio)?;
        positive("mlp_ratio (d_model·mlp_ratio rounded)", self.mlp_hidden())?;
        positive_f64("qk_norm_eps", self.qk_norm_eps)?;
        positive_f64("rope_theta", self.rope_theta)?;
        positive_f64("pos_interpolation_scale", self.pos_interpolation_scale)?;
        positive_f64("input_sq_size", self.input_sq_size)?;
        self.check_sizes()?;
        if self.frequency_dim < 2 {
            return Err(ModelError::Config(ConfigError::OutOfDomain {
                field: "frequency_dim",
                value: self.frequency_dim as f64,
                requirement: ">= 2",
            }));
        }
        Ok(())
    }

    /// The number of parameters (elements) of the model [`init`](Self::init) builds, computed
    /// from the sizes alone; `None` if it overflows `usize`.
    ///
    /// Per block (spatial and temporal alike): self-attention `qkv` + `proj` (and per-head
    /// `q_norm`/`k_norm` with [`qk_norm`](Self::qk_norm)), cross-attention `q_linear` +
    /// `kv_linear` + `proj` (norms with [`cross_qk_norm`](Self::cross_qk_norm)), the MLP, the
    /// `6×D` scale-shift table; around them the patch embedding, the time and frame-rate
    /// embedders, `t_block`, the caption embedder (null caption and `y_proj`), the final layer
    /// and, with [`pooled_text`](Self::pooled_text), `pooled_proj`.
    pub fn parameter_count(&self) -> Option<usize> {
        let d = self.d_model;
        let head = d / self.n_heads.max(1);
        // A linear layer `n_in → n_out` with bias.
        let linear = |n_in: usize, n_out: usize| n_in.checked_mul(n_out)?.checked_add(n_out);
        let sum =
            |parts: &[Option<usize>]| parts.iter().try_fold(0usize, |a, p| a.checked_add((*p)?));
        let norms = |on: bool| if on { head.checked_mul(2) } else { Some(0) };
        let hidden = self.mlp_hidden();
        let block = sum(&[
            linear(d, d.checked_mul(3)?),
            linear(d, d),
            norms(self.qk_norm),
            linear(d, d),
            linear(d, d.checked_mul(2)?),
            linear(d, d),
            norms(self.cross_qk_norm),
            linear(d, hidden),
            linear(hidden, d),
            d.checked_mul(6),
        ])?;
        let volume = self
            .patch_size
            .iter()
            .try_fold(1usize, |a, &p| a.checked_mul(p))?;
        let embedder = sum(&[linear(self.frequency_dim, d), linear(d, d)])?;
        sum(&[
            block.checked_mul(2)?.checked_mul(self.depth),
            linear(volume.checked_mul(self.in_channels)?, d),
            embedder.checked_mul(2),
            linear(d, d.checked_mul(6)?),
            self.text_max_len.checked_mul(self.d_text),
            linear(self.d_text, d),
            linear(d, d),
            linear(d, volume.checked_mul(self.out_channels())?),
            d.checked_mul(2),
            if self.pooled_text {
                linear(d, d)
            } else {
                Some(0)
            },
        ])
    }

    /// Rejects sizes whose parameter count ([`parameter_count`](Self::parameter_count))
    /// overflows or exceeds [`MAX_PARAMETERS`] elements, before anything is allocated.
    fn check_sizes(&self) -> Result<(), ModelError> {
        let total = self.parameter_count();
        match total {
            Some(n) if n <= MAX_PARAMETERS => Ok(()),
            _ => Err(ModelError::Config(ConfigError::OutOfDomain {
                field: "sizes (d_model, depth, d_text, text_max_len, ...)",
                value: total.map_or(f64::INFINITY, |n| n as f64),
                requirement: "a parameter count <= 2^34 (MAX_PARAMETERS)",
            })),
        }
    }

    /// The attention configuration shared by the spatial and temporal blocks.
    pub fn attention(&self) -> SpatialTemporalConfig {
        SpatialTemporalConfig::new(self.d_model, self.n_heads)
            .with_qk_norm(self.qk_norm)
            .with_qk_norm_eps(self.qk_norm_eps)
            .with_rope_theta(self.rope_theta)
            .with_max_frames(self.max_frames)
            .with_zero_init_temporal(self.zero_init_temporal)
    }

    /// Builds the model with random weights (upstream initialisation where it matters: PixArt
    /// `t_block`, `randn/√D` scale-shift tables, zero-init temporal projections).
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Stdit<B>, ModelError> {
        self.validate()?;
        let d = self.d_model;
        let embedder = TimestepEmbedderConfig::new(d).with_frequency_dim(self.frequency_dim);
        let x_embedder = PatchEmbed3dConfig::new(self.in_channels, d)
            .with_patch_size(self.patch_size)
            .init(device)
            .map_err(component("x_embedder"))?;
        let t_block = AdaLnModulationConfig::new(d, d)
            .with_n_chunks(6)
            .with_zero_init(false)
            .init(device)
            .map_err(component("t_block"))?;
        let (mut spatial_blocks, mut temporal_blocks) = (Vec::new(), Vec::new());
        for _ in 0..self.depth {
            spatial_blocks.push(SpatialStditBlock::new(self, device)?);
            temporal_blocks.push(TemporalStditBlock::new(self, device)?);
        }
        let out_width = self.patch_size.iter().product::<usize>() * self.out_channels();
        Ok(Stdit {
            x_embedder,
            t_embedder: embedder.init(device).map_err(component("t_embedder"))?,
            fps_embedder: embedder.init(device).map_err(component("fps_embedder"))?,
            t_block,
            y_embedder: CaptionEmbedder::new(self, device)?,
            spatial_blocks,
            temporal_blocks,
            final_layer: FinalLayer::new(d, out_width, self.final_t0_norm_modulated, device)?,
            d_text: self.d_text,
            pos_interpolation_scale: self.pos_interpolation_scale,
            input_sq_size: self.input_sq_size,
            temporal_pos_embed: self.temporal_pos_embed,
            pooled_proj: self.pooled_text.then(|| {
                LinearConfig::new(d, d)
                    .with_initializer(Initializer::Zeros)
                    .init(device)
            }),
        })
    }
}

/// The STDiT3 network. Field names follow upstream checkpoint keys.
#[derive(Module, Debug)]
pub struct Stdit<B: Backend> {
    /// Latent patch embedding (`x_embedder.proj`).
    pub x_embedder: PatchEmbed3d<B>,
    /// Diffusion-time embedder.
    pub t_embedder: TimestepEmbedder<B>,
    /// Frame-rate embedder (upstream `SizeEmbedder`, the same MLP over sinusoidal features).
    pub fps_embedder: TimestepEmbedder<B>,
    /// Shared adaLN-single projection `SiLU → Linear(D, 6D)`.
    pub t_block: AdaLnModulation<B>,
    /// Text projection and null caption.
    pub y_embedder: CaptionEmbedder<B>,
    /// Attention within frames, one per depth.
    pub spatial_blocks: Vec<SpatialStditBlock<B>>,
    /// Attention across frames, one per depth.
    pub temporal_blocks: Vec<TemporalStditBlock<B>>,
    /// Final modulation and projection to patch vectors.
    pub final_layer: FinalLayer<B>,
    /// Text feature width.
    pub d_text: usize,
    /// See [`StditConfig::pos_interpolation_scale`].
    pub pos_interpolation_scale: f64,
    /// See [`StditConfig::input_sq_size`].
    pub input_sq_size: f64,
    /// See [`StditConfig::temporal_pos_embed`].
    pub temporal_pos_embed: bool,
    /// Pooled-caption projection `D → D` ([`StditConfig::pooled_text`]).
    pub pooled_proj: Option<Linear<B>>,
}

impl<B: Backend> WithKernel for Stdit<B> {
    /// This model computing every attention with `kernel`: [`Kernel::Reference`] runs the naive
    /// reference (matmul → softmax → matmul) instead of Burn's fused op, in every block.
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.spatial_blocks = self.spatial_blocks.with_kernel(kernel);
        self.temporal_blocks = self.temporal_blocks.with_kernel(kernel);
        self
    }
}

impl<B: Backend> WithLora for Stdit<B> {
    /// Adapters on the targeted linears of every block (`qkv`, `proj` of self-attention;
    /// `q_linear`, `kv_linear`, `proj` of cross-attention; `fc1`, `fc2` of the MLPs). Embedders
    /// and the final layer are not adapted.
    fn attach_lora(mut self, config: &LoraConfig) -> Self {
        self.spatial_blocks = self.spatial_blocks.attach_lora(config);
        self.temporal_blocks = self.temporal_blocks.attach_lora(config);
        self
    }

    fn merge_lora(mut self) -> Self {
        self.spatial_blocks = self.spatial_blocks.merge_lora();
        self.temporal_blocks = self.temporal_blocks.merge_lora();
        self
    }
}

impl<B: Backend> Stdit<B> {
    /// Latent channels `C` the model takes.
    pub fn in_channels(&self) -> usize {
        self.x_embedder.proj.weight.dims()[1]
    }

    /// Output channels (`2·C` with `pred_sigma`).
    pub fn out_channels(&self) -> usize {
        let volume: usize = self.x_embedder.patch_size.iter().product();
        self.final_layer.linear.weight.dims()[1] / volume
    }

    /// Runs the network with upstream `STDiT3.forward`'s arguments ([`StditInput`]) and returns
    /// every output channel.
    ///
    /// # Shapes
    /// `x`: `[B, C, T, H, W]` (any sizes: padded to the patch grid, the output cropped),
    /// `timestep`: `[B]`, `y`: `[B, N, d_text]`, `mask`: `[B, N]` or `[1, N]`, `x_mask`: `[B, T]`,
    /// `fps`: `[B]` or `[1]` → `[B, C_out, T, H, W]` (`C_out = 2·C` with `pred_sigma`)
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) naming the mismatching input; [`ModelError::Config`] (`ConfigError::OutOfDomain`) if
    /// `T / pt` exceeds `max_frames` or the resolution is not positive; a frame mask needs
    /// `pt = 1`.
    pub fn forward_input(&self, input: StditInput<B>) -> Result<Tensor<B, 5>, ModelError> {
        self.forward_prepared(self.prepare(input))
    }

    /// Predicts the flow velocity: the first `C` output channels, at the fixed positional scale
    /// [`StditConfig::pos_interpolation_scale`]. [`forward_input`](Self::forward_input) takes
    /// upstream's arguments and returns every channel.
    ///
    /// # Shapes
    /// `x`: `[B, C, T, H, W]`, `t`: `[B]` (flow time `σ·1000`), `text.tokens`: `[B, L, d_text]`
    /// (`text.padding`: `[B, L]`, `true` = padding), `fps`: `[B]`, `frame_mask`: `[B, T]`,
    /// `true` = conditioning frame (modulated at `t = 0`) → `[B, C, T, H, W]`
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) naming the mismatching input; [`ModelError::Config`] (`ConfigError::OutOfDomain`) if
    /// `T / pt` exceeds `max_frames`. A `frame_mask` needs `pt = 1`.
    pub fn forward(
        &self,
        x: Tensor<B, 5>,
        t: Tensor<B, 1>,
        text: &TextConditioning<B>,
        fps: Tensor<B, 1>,
        frame_mask: Option<Tensor<B, 2, Bool>>,
    ) -> Result<Tensor<B, 5>, ModelError> {
        self.velocity(x, [t, fps], text, frame_mask, None)
    }

    /// The velocity (first `C` channels) under a text with its key-padding mask and a
    /// conditioning-frame mask; `resolution` (pixels) sets the positional scale as in
    /// [`StditInput::resolution`].
    pub(crate) fn velocity(
        &self,
        x: Tensor<B, 5>,
        [t, fps]: [Tensor<B, 1>; 2],
        text: &TextConditioning<B>,
        frame_mask: Option<Tensor<B, 2, Bool>>,
        resolution: Option<[f64; 2]>,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let [b, c, ..] = x.dims();
        same_size("input channels", self.in_channels(), c)?;
        text.check("text batch", b)?;
        let text_pad = text.padding.clone();
        let text = text.tokens.clone();
        let prepared = Prepared {
            x,
            t,
            fps,
            text,
            text_pad,
            cond_frames: frame_mask,
            pos_scale: self.pos_scale(resolution),
        };
        Ok(self.forward_prepared(prepared)?.narrow(1, 0, c))
    }

    /// The shared conditioning `c = t_embedder(t) + fps_embedder(fps)` and its adaLN-single
    /// projection `t_block(c)`.
    ///
    /// # Shapes
    /// `t`, `fps`: `[B]` → (`[B, D]`, `[B, 6D]`)
    pub fn condition(&self, t: Tensor<B, 1>, fps: Tensor<B, 1>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        self.condition_with(t, fps, None)
    }

    /// [`condition`](Self::condition) with `extra` (`[B, D]`) added to `c`.
    fn condition_with(
        &self,
        t: Tensor<B, 1>,
        fps: Tensor<B, 1>,
        extra: Option<Tensor<B, 2>>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let mut c = self.t_embedder.forward(t) + self.fps_embedder.forward(fps);
        if let Some(extra) = extra {
            c = c + extra;
        }
        let packed = self.t_block.forward_packed(c.clone());
        (c, packed)
    }
}
