//! Open-Sora 1.2's STDiT (Spatial-Temporal Diffusion Transformer; Open-Sora report sec. 3.2–3.3,
//! upstream `opensora/models/stdit/stdit3.py`), composed from vidgen's layers.
//!
//! Data flow for a latent `x: [B, C, T, H, W]` at flow time `t: [B]` with text `[B, L, d_text]`:
//!
//! 1. `x_embedder` ([`PatchEmbed3d`]) → tokens `[B, T·S, D]` (frame-major, `S = h·w`), plus the
//!    2D sin-cos table ([`sincos_2d`], `base_size = round(√S)`) added to every frame, and with
//!    [`StditConfig::temporal_pos_embed`] a 1D sin-cos table over frames ([`sincos_1d`]);
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
//! 5. `final_layer` (2-chunk table + `c`, LN, modulate, linear) and [`unpatchify_3d`].
//!
//! **Conditioning frames** (report sec. 3.3, Open-Sora's `x_mask` / `t0`): frames flagged in
//! `frame_mask` (`true` = conditioning frame, the negation of Open-Sora's `x_mask`) are modulated
//! with the timestep-0 vectors `t_block(t_embedder(0) + fps_embedder(fps))` instead of `t`'s. Both
//! modulations are computed and selected per frame, as upstream does.
//!
//! **Zero init** (report sec. 3.2): with `zero_init_temporal` the temporal blocks' `attn.proj`,
//! `cross_attn.proj` and `mlp.fc2` weights start at zero (upstream `initialize_weights`).
//!
//! Divergences from upstream: the patch embedding requires `T, H, W` divisible by the patch size
//! (upstream pads); text is padded `[B, L, ·]` with a key-padding mask instead of packed tokens
//! (same result); the final layer's timestep-0 branch normalises the *unmodulated* tokens
//! (upstream applies `norm_final` to the already-modulated tensor there, which makes
//! conditioning frames depend on `t`); only `pred_sigma = false` (`out_channels = in_channels`).
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use vidgen_models::stdit::StditConfig;
//!
//! let device = Default::default();
//! let model = StditConfig::new(16, 2, 1, 8).init::<Flex>(&device)?;
//! let x = Tensor::<Flex, 5>::zeros([1, 4, 2, 4, 4], &device);
//! let t = Tensor::<Flex, 1>::from_floats([500.0], &device);
//! let fps = Tensor::<Flex, 1>::from_floats([8.0], &device);
//! let text = Tensor::<Flex, 3>::ones([1, 3, 8], &device);
//! let v = model.forward(x, t, text, Some(&[2]), fps, None);
//! assert_eq!(v.dims(), [1, 4, 2, 4, 4]);
//! # Ok::<(), vidgen_models::ModelError>(())
//! ```

mod block;
mod pipeline;

pub use block::{CaptionEmbedder, FinalLayer, StditBlock, TemporalStditBlock};
pub use pipeline::{
    CfgMode, GenerateOptions, StditConditioning, TextToVideo, frame_mask_tensor, sample_stdit,
};

use crate::error::{ModelError, divisible, positive, positive_f64, same_size};
use block::{BlockInputs, component};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};
use vidgen_attention::{SpatialTemporalConfig, key_padding_mask};
use vidgen_nn::{
    AdaLnModulation, AdaLnModulationConfig, PatchEmbed3d, PatchEmbed3dConfig, TimestepEmbedder,
    TimestepEmbedderConfig, sincos_1d, sincos_2d, unpatchify_3d,
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
}

/// LayerNorm epsilon of every norm (upstream `eps=1e-6`, no affine parameters).
pub(crate) const NORM_EPS: f64 = 1e-6;

impl StditConfig {
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
    /// `qk_norm_eps`, `rope_theta` or `pos_interpolation_scale` not > 0, `frequency_dim < 2`.
    pub fn validate(&self) -> Result<(), ModelError> {
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
            2 * self.n_heads,
            Some("2·n_heads (even head_dim)"),
        )?;
        positive_f64("mlp_ratio", self.mlp_ratio)?;
        positive("mlp_ratio (d_model·mlp_ratio rounded)", self.mlp_hidden())?;
        positive_f64("qk_norm_eps", self.qk_norm_eps)?;
        positive_f64("rope_theta", self.rope_theta)?;
        positive_f64("pos_interpolation_scale", self.pos_interpolation_scale)?;
        if self.frequency_dim < 2 {
            return Err(ModelError::OutOfDomain {
                field: "frequency_dim",
                value: self.frequency_dim as f64,
                requirement: ">= 2",
            });
        }
        Ok(())
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
            spatial_blocks.push(StditBlock::new(self, device)?);
            temporal_blocks.push(TemporalStditBlock::new(self, device)?);
        }
        let out_width = self.patch_size.iter().product::<usize>() * self.in_channels;
        Ok(Stdit {
            x_embedder,
            t_embedder: embedder.init(device).map_err(component("t_embedder"))?,
            fps_embedder: embedder.init(device).map_err(component("fps_embedder"))?,
            t_block,
            y_embedder: CaptionEmbedder::new(self, device)?,
            spatial_blocks,
            temporal_blocks,
            final_layer: FinalLayer::new(d, out_width, device)?,
            d_text: self.d_text,
            pos_interpolation_scale: self.pos_interpolation_scale,
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
    pub spatial_blocks: Vec<StditBlock<B>>,
    /// Attention across frames, one per depth.
    pub temporal_blocks: Vec<TemporalStditBlock<B>>,
    /// Final modulation and projection to patch vectors.
    pub final_layer: FinalLayer<B>,
    /// Text feature width.
    pub d_text: usize,
    /// See [`StditConfig::pos_interpolation_scale`].
    pub pos_interpolation_scale: f64,
    /// See [`StditConfig::temporal_pos_embed`].
    pub temporal_pos_embed: bool,
    /// Pooled-caption projection `D → D` ([`StditConfig::pooled_text`]).
    pub pooled_proj: Option<Linear<B>>,
}

impl<B: Backend> Stdit<B> {
    /// Checks the inputs of [`try_forward`](Self::try_forward); returns the token grid.
    fn check_inputs(
        &self,
        x: &Tensor<B, 5>,
        [t_len, text_dims, fps_len]: [usize; 3],
        text: &Tensor<B, 3>,
        text_lens: Option<&[usize]>,
        frame_mask: Option<&Tensor<B, 2, Bool>>,
    ) -> Result<[usize; 3], ModelError> {
        let [b, c, t, h, w] = x.dims();
        same_size("input channels", self.x_embedder.proj.weight.dims()[1], c)?;
        let grid = self
            .x_embedder
            .grid([t, h, w])
            .map_err(component("x (latent size vs patch_size)"))?;
        same_size("timesteps batch", b, t_len)?;
        same_size("fps batch", b, fps_len)?;
        same_size("text batch", b, text.dims()[0])?;
        same_size("text width (d_text)", self.d_text, text_dims)?;
        if let Some(lens) = text_lens {
            same_size("text_lens length", b, lens.len())?;
            if let Some(&too_long) = lens.iter().find(|&&l| l > text.dims()[1]) {
                return Err(ModelError::ShapeMismatch {
                    what: "text_lens entry (at most the text length)",
                    expected: text.dims()[1],
                    got: too_long,
                });
            }
        }
        if let Some(mask) = frame_mask {
            same_size("frame_mask batch", b, mask.dims()[0])?;
            same_size("frame_mask frames", t, mask.dims()[1])?;
            same_size(
                "temporal patch size with a frame_mask",
                1,
                self.x_embedder.patch_size[0],
            )?;
        }
        let max_frames = self.temporal_blocks[0]
            .attn
            .rope
            .as_ref()
            .map_or(usize::MAX, |r| r.rotary.freq_complex.dims()[0]);
        if grid[0] > max_frames {
            return Err(ModelError::OutOfDomain {
                field: "frames (T / pt)",
                value: grid[0] as f64,
                requirement: "<= max_frames",
            });
        }
        Ok(grid)
    }

    /// Predicts the flow velocity.
    ///
    /// # Shapes
    /// `x`: `[B, C, T, H, W]`, `t`: `[B]` (flow time `σ·1000`), `text`: `[B, L, d_text]`,
    /// `text_lens`: `B` valid lengths (`None`: all `L` valid), `fps`: `[B]`,
    /// `frame_mask`: `[B, T]`, `true` = conditioning frame (modulated at `t = 0`)
    /// → `[B, C, T, H, W]`
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] naming the mismatching input; [`ModelError::Component`] if
    /// `T, H, W` are not divisible by the patch size; [`ModelError::OutOfDomain`] if `T / pt`
    /// exceeds `max_frames`. A `frame_mask` needs `pt = 1`.
    pub fn try_forward(
        &self,
        x: Tensor<B, 5>,
        t: Tensor<B, 1>,
        text: Tensor<B, 3>,
        text_lens: Option<&[usize]>,
        fps: Tensor<B, 1>,
        frame_mask: Option<Tensor<B, 2, Bool>>,
    ) -> Result<Tensor<B, 5>, ModelError> {
        self.forward_impl(x, [t, fps], text, text_lens, frame_mask, false)
    }

    /// As [`try_forward`](Self::try_forward).
    ///
    /// # Panics
    /// With the [`ModelError`] message on invalid inputs.
    pub fn forward(
        &self,
        x: Tensor<B, 5>,
        t: Tensor<B, 1>,
        text: Tensor<B, 3>,
        text_lens: Option<&[usize]>,
        fps: Tensor<B, 1>,
        frame_mask: Option<Tensor<B, 2, Bool>>,
    ) -> Tensor<B, 5> {
        self.try_forward(x, t, text, text_lens, fps, frame_mask)
            .unwrap_or_else(|e| panic!("Stdit: {e}"))
    }

    /// Reference twin of [`try_forward`](Self::try_forward): every attention by the naive
    /// reference (matmul → softmax → matmul) instead of Burn's fused op.
    ///
    /// # Errors
    /// As [`try_forward`](Self::try_forward).
    pub fn forward_reference(
        &self,
        x: Tensor<B, 5>,
        t: Tensor<B, 1>,
        text: Tensor<B, 3>,
        text_lens: Option<&[usize]>,
        fps: Tensor<B, 1>,
        frame_mask: Option<Tensor<B, 2, Bool>>,
    ) -> Result<Tensor<B, 5>, ModelError> {
        self.forward_impl(x, [t, fps], text, text_lens, frame_mask, true)
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

    fn forward_impl(
        &self,
        x: Tensor<B, 5>,
        [t, fps]: [Tensor<B, 1>; 2],
        text: Tensor<B, 3>,
        text_lens: Option<&[usize]>,
        frame_mask: Option<Tensor<B, 2, Bool>>,
        reference: bool,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let dims = [t.dims()[0], text.dims()[2], fps.dims()[0]];
        let grid = self.check_inputs(&x, dims, &text, text_lens, frame_mask.as_ref())?;
        let [b, _, _, _, _] = x.dims();
        let device = x.device();
        let (frames, spatial) = (grid[0], grid[1] * grid[2]);
        let d = self.t_block.linear.weight.dims()[1] / 6;

        let text = self.y_embedder.forward(text);
        let pooled = self.pooled_proj.as_ref().map(|proj| {
            let [_, len, _] = text.dims();
            let weights: Vec<f32> = (0..b)
                .flat_map(|i| {
                    let valid = text_lens.map_or(len, |lens| lens[i]);
                    (0..len).map(move |j| {
                        if j < valid {
                            1.0 / valid.max(1) as f32
                        } else {
                            0.0
                        }
                    })
                })
                .collect();
            let weights = Tensor::<B, 3>::from_data(TensorData::new(weights, [b, len, 1]), &device);
            proj.forward((text.clone() * weights).sum_dim(1).reshape([b, d]))
        });
        let (c, t_mlp) = self.condition_with(t, fps.clone(), pooled.clone());
        let zero = frame_mask.as_ref().map(|_| {
            let (c0, t0_mlp) = self.condition_with(Tensor::zeros([b], &device), fps, pooled);
            (c0, t0_mlp)
        });
        let token_mask = frame_mask.map(|m| token_mask(m, spatial, d));
        let text_pad = text_lens.map(|lens| key_padding_mask::<B>(lens, text.dims()[1], &device));

        let tokens = self.x_embedder.forward(x);
        let base = ((spatial as f64).sqrt()).round().max(1.0);
        let pos = sincos_2d::<B>(
            d,
            [grid[1], grid[2]],
            base,
            self.pos_interpolation_scale,
            &device,
        )
        .map_err(component("spatial sin-cos positions"))?;
        let mut h = tokens.reshape([b, frames, spatial, d]) + pos.reshape([1, 1, spatial, d]);
        if self.temporal_pos_embed {
            let positions: Vec<f64> = (0..frames).map(|f| f as f64).collect();
            let table = sincos_1d::<B>(d, &positions, &device)
                .map_err(component("temporal sin-cos positions"))?;
            h = h + table.reshape([1, frames, 1, d]);
        }
        let mut h = h.reshape([b, frames * spatial, d]);

        let inputs = BlockInputs {
            t_mlp,
            t0_mlp: zero.as_ref().map(|(_, t0)| t0.clone()),
            token_mask: token_mask.clone(),
            text,
            text_pad,
            frames,
            spatial,
            reference,
        };
        for (sb, tb) in self.spatial_blocks.iter().zip(&self.temporal_blocks) {
            h = sb.forward(h, &inputs)?;
            h = tb.forward(h, &inputs)?;
        }
        let out = self
            .final_layer
            .forward(h, c, zero.map(|(c0, _)| c0), token_mask);
        Ok(unpatchify_3d(out, grid, self.x_embedder.patch_size))
    }
}

/// `[B, T]` frame flags → `[B, T·S, D]` token flags (frame-major tokens).
fn token_mask<B: Backend>(
    mask: Tensor<B, 2, Bool>,
    spatial: usize,
    d: usize,
) -> Tensor<B, 3, Bool> {
    let [b, t] = mask.dims();
    mask.reshape([b, t, 1, 1])
        .expand([b, t, spatial, d])
        .reshape([b, t * spatial, d])
}
