//! A LinGen-style linear-complexity DiT (Wang et al., "LinGen: Towards High-Resolution
//! Minute-Length Text-to-Video Generation with Linear Computational Complexity", CVPR 2025,
//! arXiv 2412.09856), composed from vidgen's components.
//!
//! ```text
//! latent [B, C, T, H, W] ─ PatchEmbed3d (1×2×2) ─ + factorized pos. embedding (pos_t + pos_h + pos_w)
//!   → depth × MATE block k (see [`block`]):
//!       adaLN(t) · RMSNorm → [ MA: RMS order k → BiMamba2 (+ review tokens) → restore
//!                            + TE: TESA window attention, shifted on odd k ]  → gate
//!       → cross-attention to text → adaLN(t) · RMSNorm → SwiGLU → gate
//!   → RMSNorm · adaLN(t) → Linear → unpatchify → velocity [B, C, T, H, W]
//! ```
//!
//! Supplement sec. E.1 fixes the backbone ingredients: factorized learnable positional embedding,
//! RMSNorm, SwiGLU, adaLN on the timestep, 2×2×1 patches; sec. E.2 the bidirectional Mamba2 with
//! `d_state = 128`, head dim 64 (our default `d_state` is 16 so that tiny test models stay
//! tiny; set 128 for LinGen's). Every token mixer costs `O(N)` in the number of tokens `N`:
//! Mamba2 is a scan, TESA attends inside fixed windows, cross-attention to a fixed-length text;
//! [`LinGenConfig::flops`] counts it (supplement eqs. 1–3 via [`vidgen_ssm::flops`]).
//!
//! Not in our sources, chosen and documented here and in [`block`]: the parallel sum of the two
//! branches, the review tokens (pooled summaries, [`vidgen_ssm::ReviewTokens`]) prepended to
//! both scan directions, the TESA window (`[8, 4, 4]` tokens) and the cross-attention placement
//! (PixArt's: after the token mixer, ungated).
//!
//! Sampling: [`LinGenDit`] is a [`Denoiser`](crate::Denoiser); [`crate::sample`] runs it (rectified flow with
//! classifier-free guidance, as Open-Sora 1.2).

pub mod block;
pub mod cost;
pub mod sampling;

pub use block::{BlockContext, MateBlock};
pub use cost::LinGenFlops;

use crate::denoise::TextConditioning;
use crate::error::ConfigError;
use crate::error::{ModelError, divisible, positive, positive_f64, same_size};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Tensor, backend::Backend};
use vidgen_attention::{MultiHeadAttentionConfig, TesaConfig, WindowPlanCache};
use vidgen_nn::{
    AdaLnModulation, AdaLnModulationConfig, FactorizedPosEmbed, FactorizedPosEmbedConfig, Kernel,
    PatchEmbed3d, PatchEmbed3dConfig, SwiGluMlpConfig, TimestepEmbedder, TimestepEmbedderConfig,
    WithKernel, modulate, unpatchify_3d,
};
use vidgen_ssm::{
    BiMamba2Config, BiMerge, Mamba2Config, ReviewTokensConfig, RotaryMajorScan, ScanOrder,
};

/// Configuration of [`LinGenDit`]. LinGen-4B: `d_model = 2560`, `n_heads = 20`, `depth = 32`,
/// `d_state = 128`, `mamba_head_dim = 64` (supplement sec. E.1–E.2).
#[derive(Config, Debug)]
pub struct LinGenConfig {
    /// Latent channels `C` (input and output).
    pub in_channels: usize,
    /// Token width `d`.
    pub d_model: usize,
    /// Number of MATE blocks.
    pub depth: usize,
    /// Heads of TESA and of the cross-attention; must divide `d_model`.
    pub n_heads: usize,
    /// Width of the text tokens.
    pub d_text: usize,
    /// Patch `[pt, ph, pw]` (LinGen: 2×2 spatial, 1 temporal).
    #[config(default = "[1, 2, 2]")]
    pub patch_size: [usize; 3],
    /// Largest token grid `[t, h, w]` the factorized positional tables cover.
    #[config(default = "[16, 64, 64]")]
    pub max_grid: [usize; 3],
    /// SwiGLU hidden width; `None` = `⌈8·d_model/3⌉` rounded up to a multiple of 8 (the
    /// parameter count of a 4× GELU MLP).
    #[config(default = "None")]
    pub mlp_hidden_dim: Option<usize>,
    /// Mamba2 state size (LinGen: 128; small by default for tiny models).
    #[config(default = 16)]
    pub d_state: usize,
    /// Mamba2 convolution width.
    #[config(default = 4)]
    pub d_conv: usize,
    /// Mamba2 expansion `E`.
    #[config(default = 2)]
    pub expand: usize,
    /// Mamba2 head dimension; must divide `expand·d_model`.
    #[config(default = 64)]
    pub mamba_head_dim: usize,
    /// SSD chunk length (any value works; memory/parallelism trade-off).
    #[config(default = 64)]
    pub chunk_size: usize,
    /// Merge of the two scan directions.
    #[config(default = "BiMerge::Sum")]
    pub bi_merge: BiMerge,
    /// TESA window `[Wt, Wh, Ww]` in tokens (see [`vidgen_attention::window::tesa`]).
    #[config(default = "[8, 4, 4]")]
    pub tesa_window: [usize; 3],
    /// Review-token pooling window `[pool_t, pool_h, pool_w]`; `None` turns review tokens off.
    #[config(default = "Some([4, 8, 8])")]
    pub review_pool: Option<[usize; 3]>,
    /// Epsilon of every RMSNorm.
    #[config(default = 1e-6)]
    pub norm_eps: f64,
    /// Zero-initialise the adaLN projections (adaLN-Zero: every block starts as the identity).
    #[config(default = true)]
    pub adaln_zero_init: bool,
}

impl LinGenConfig {
    /// SwiGLU hidden width (see [`Self::mlp_hidden_dim`]).
    pub fn mlp_hidden(&self) -> usize {
        self.mlp_hidden_dim
            .unwrap_or_else(|| (8 * self.d_model).div_ceil(3).div_ceil(8) * 8)
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::Zero`) naming a zero size (`in_channels`, `d_model`, `depth`, `n_heads`,
    /// `d_text`, `patch_size`, `max_grid`, `mlp_hidden_dim`, `d_state`, `d_conv`, `expand`,
    /// `mamba_head_dim`, `chunk_size`, `tesa_window`, `review_pool`);
    /// [`ModelError::Config`] (`ConfigError::NotDivisible`) for `d_model % n_heads` or `d_inner % mamba_head_dim`;
    /// [`ModelError::Config`] (`ConfigError::OutOfDomain`) for `norm_eps <= 0`.
    pub fn validate(&self) -> Result<(), ModelError> {
        vidgen_nn::error::layer_count("depth", self.depth)?;
        for (field, value) in [
            ("in_channels", self.in_channels),
            ("d_model", self.d_model),
            ("depth", self.depth),
            ("n_heads", self.n_heads),
            ("d_text", self.d_text),
            ("mlp_hidden_dim", self.mlp_hidden()),
            ("d_state", self.d_state),
            ("d_conv", self.d_conv),
            ("expand", self.expand),
            ("mamba_head_dim", self.mamba_head_dim),
            ("chunk_size", self.chunk_size),
        ] {
            positive(field, value)?;
        }
        for (field, values) in [
            ("patch_size", self.patch_size),
            ("max_grid", self.max_grid),
            ("tesa_window", self.tesa_window),
            ("review_pool", self.review_pool.unwrap_or([1; 3])),
        ] {
            values.iter().try_for_each(|&v| positive(field, v))?;
        }
        divisible("d_model", self.d_model, self.n_heads, Some("n_heads"))?;
        let d_inner = self.expand * self.d_model;
        divisible(
            "d_inner",
            d_inner,
            self.mamba_head_dim,
            Some("mamba_head_dim"),
        )?;
        Ok(positive_f64("norm_eps", self.norm_eps)?)
    }

    /// The Mamba2 configuration shared by both directions of every block.
    pub fn mamba_config(&self) -> Mamba2Config {
        Mamba2Config::new(self.d_model)
            .with_d_state(self.d_state)
            .with_d_conv(self.d_conv)
            .with_expand(self.expand)
            .with_head_dim(self.mamba_head_dim)
            .with_chunk_size(self.chunk_size)
    }

    /// The TESA configuration (shift alternating per layer, [`TesaConfig::shift_size`]).
    pub fn tesa_config(&self) -> TesaConfig {
        TesaConfig::new(self.d_model, self.n_heads).with_window_size(self.tesa_window)
    }

    /// Builds the model.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<LinGenDit<B>, ModelError> {
        self.validate()?;
        let d = self.d_model;
        let adaln = |n_chunks| {
            AdaLnModulationConfig::new(d, d)
                .with_n_chunks(n_chunks)
                .with_zero_init(self.adaln_zero_init)
                .init(device)
                .map_err(component("adaln"))
        };
        let blocks = (0..self.depth)
            .map(|k| self.init_block(k, device))
            .collect::<Result<_, _>>()?;
        Ok(LinGenDit {
            x_embedder: PatchEmbed3dConfig::new(self.in_channels, d)
                .with_patch_size(self.patch_size)
                .init(device)
                .map_err(component("patch_size"))?,
            pos_embed: FactorizedPosEmbedConfig::new(d, self.max_grid)
                .init(device)
                .map_err(component("max_grid"))?,
            t_embedder: TimestepEmbedderConfig::new(d)
                .init(device)
                .map_err(component("d_model"))?,
            blocks,
            final_norm: RmsNormConfig::new(d)
                .with_epsilon(self.norm_eps)
                .init(device),
            final_adaln: adaln(2)?,
            final_linear: LinearConfig::new(
                d,
                self.patch_size.iter().product::<usize>() * self.in_channels,
            )
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            })
            .init(device),
            patch_size: self.patch_size,
            in_channels: self.in_channels,
            d_text: self.d_text,
        })
    }

    fn init_block<B: Backend>(
        &self,
        k: usize,
        device: &B::Device,
    ) -> Result<MateBlock<B>, ModelError> {
        let d = self.d_model;
        let norm = RmsNormConfig::new(d).with_epsilon(self.norm_eps);
        let review = self
            .review_pool
            .map(|[t, h, w]| {
                ReviewTokensConfig::new()
                    .with_pool_t(t)
                    .with_pool_h(h)
                    .with_pool_w(w)
                    .init()
            })
            .transpose()
            .map_err(component("review_pool"))?;
        Ok(MateBlock {
            norm1: norm.init(device),
            bimamba: BiMamba2Config::new(self.mamba_config())
                .with_merge(self.bi_merge)
                .init(device)
                .map_err(component("mamba"))?,
            tesa: self
                .tesa_config()
                .init_layer(k, device)
                .map_err(component("tesa_window"))?,
            cross_attn: MultiHeadAttentionConfig::new(d, self.n_heads)
                .with_d_context(Some(self.d_text))
                .init(device)
                .map_err(component("n_heads"))?,
            norm2: norm.init(device),
            mlp: SwiGluMlpConfig::new(d, self.mlp_hidden())
                .init(device)
                .map_err(component("mlp_hidden_dim"))?,
            adaln: AdaLnModulationConfig::new(d, d)
                .with_zero_init(self.adaln_zero_init)
                .init(device)
                .map_err(component("adaln"))?,
            scan_order: RotaryMajorScan::for_layer(k),
            review,
            kernel: Kernel::Fast,
        })
    }
}

/// Maps a component's validation error (unreachable after [`LinGenConfig::validate`]) to
/// [`ModelError::Config`] (`ConfigError::Unsupported`) naming the field that configures the component.
fn component<E: std::fmt::Display>(field: &'static str) -> impl Fn(E) -> ModelError {
    move |e| {
        ModelError::Config(ConfigError::Unsupported {
            field,
            value: e.to_string(),
            reason: "rejected by the component's own validation",
        })
    }
}

/// The LinGen-style DiT (see the module docs). Field names are ours, following DiT / Open-Sora
/// (`x_embedder`, `t_embedder`, `blocks`, `final_*`).
#[derive(Module, Debug)]
pub struct LinGenDit<B: Backend> {
    /// 3D patch embedding.
    pub x_embedder: PatchEmbed3d<B>,
    /// Factorized learnable positional embedding.
    pub pos_embed: FactorizedPosEmbed<B>,
    /// Timestep embedding (conditions every adaLN).
    pub t_embedder: TimestepEmbedder<B>,
    /// The MATE blocks; block `k` scans in [`RotaryMajorScan::for_layer`]`(k)`.
    pub blocks: Vec<MateBlock<B>>,
    /// Final RMSNorm.
    pub final_norm: RmsNorm<B>,
    /// Final adaLN (shift, scale).
    pub final_adaln: AdaLnModulation<B>,
    /// `d_model → pt·ph·pw·C`.
    pub final_linear: Linear<B>,
    /// Patch size.
    #[module(skip)]
    pub patch_size: [usize; 3],
    /// Latent channels.
    #[module(skip)]
    pub in_channels: usize,
    /// Text width.
    #[module(skip)]
    pub d_text: usize,
}

impl<B: Backend> WithKernel for LinGenDit<B> {
    /// This model computing with `kernel` in every block: [`Kernel::Reference`] runs
    /// the reference twin of [`MateBlock::forward`] (host-side permutations, recurrent Mamba2,
    /// dense TESA, unfused cross-attention) instead of the fast path.
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.blocks = self.blocks.with_kernel(kernel);
        self
    }
}

impl<B: Backend> LinGenDit<B> {
    /// The token grid of a latent of size `[T, H, W]`.
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::NotDivisible`) naming `T`, `H` or `W`; [`ModelError::Config`] (`ConfigError::Unsupported`) naming
    /// `max_grid` if the grid exceeds the positional tables.
    pub fn grid(&self, size: [usize; 3]) -> Result<[usize; 3], ModelError> {
        for (a, name) in ["T", "H", "W"].into_iter().enumerate() {
            positive(name, size[a])?;
            divisible(name, size[a], self.patch_size[a], Some("patch_size"))?;
        }
        let grid = [0, 1, 2].map(|a| size[a] / self.patch_size[a]);
        let max = [
            &self.pos_embed.pos_t,
            &self.pos_embed.pos_h,
            &self.pos_embed.pos_w,
        ]
        .map(|p| p.dims()[0]);
        if (0..3).any(|a| grid[a] > max[a]) {
            return Err(ModelError::Config(ConfigError::Unsupported {
                field: "max_grid",
                value: format!("{max:?} < token grid {grid:?}"),
                reason: "the token grid exceeds the positional tables",
            }));
        }
        Ok(grid)
    }

    /// Velocity prediction, by the blocks' [`Kernel`] ([`with_kernel`](Self::with_kernel)).
    ///
    /// # Shapes
    /// `x`: `[B, C, T, H, W]`, `t`: `[B]` (flow time × 1000), `text.tokens`: `[B, L, d_text]`,
    /// `text.padding`: `[B, L]` (`true` = padded token) → `[B, C, T, H, W]`
    ///
    /// # Errors
    /// As [`grid`](Self::grid); [`ModelError::Config`] (`ConfigError::ShapeMismatch`) for the
    /// channels, the text width or batch sizes.
    pub fn forward(
        &self,
        x: Tensor<B, 5>,
        t: Tensor<B, 1>,
        text: &TextConditioning<B>,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let text_mask = text.padding.clone();
        let text = text.tokens.clone();
        let [b, c, tt, hh, ww] = x.dims();
        same_size("input channels", self.in_channels, c)?;
        same_size("timestep batch", b, t.dims()[0])?;
        same_size("text batch", b, text.dims()[0])?;
        same_size("text width", self.d_text, text.dims()[2])?;
        if let Some(m) = &text_mask {
            same_size("text mask batch", b, m.dims()[0])?;
            same_size("text mask length", text.dims()[1], m.dims()[1])?;
        }
        let grid = self.grid([tt, hh, ww])?;
        let device = x.device();
        let mut h = self.x_embedder.forward(x) + self.pos_embed.forward(grid).unsqueeze::<3>();
        let cond = self.t_embedder.forward(t);
        let plans = scan_plans(&self.blocks, grid, &device);
        let mut windows = WindowPlanCache::new();
        let mut ctx = BlockContext {
            grid,
            plans: &plans,
            windows: &mut windows,
            text_mask,
        };
        for block in &self.blocks {
            h = block.forward(h, cond.clone(), text.clone(), &mut ctx);
        }
        let m = self.final_adaln.forward(cond);
        let h = modulate(self.final_norm.forward(h), m[0].clone(), m[1].clone());
        Ok(unpatchify_3d(
            self.final_linear.forward(h),
            grid,
            self.patch_size,
        ))
    }
}

/// One [`vidgen_ssm::ScanPlan`] per distinct scan order of `blocks` (at most
/// [`RotaryMajorScan::PERIOD`]), built once per forward.
fn scan_plans<B: Backend>(
    blocks: &[MateBlock<B>],
    grid: [usize; 3],
    device: &B::Device,
) -> Vec<(ScanOrder, vidgen_ssm::ScanPlan<B>)> {
    let mut plans: Vec<(ScanOrder, vidgen_ssm::ScanPlan<B>)> = Vec::new();
    for block in blocks {
        if !plans.iter().any(|(o, _)| *o == block.scan_order) {
            plans.push((block.scan_order, block.scan_order.plan(grid, device)));
        }
    }
    plans
}
