//! Snap Video's FIT (Menapace et al. 2024, "Snap Video", Sec. 3.4 and Fig. 3b; FIT of Chen & Li
//! 2023), composed from vidgen's layers, and its EDM sampler with input scaling `σ_in` (Sec. 3.2)
//! and latent self-conditioning.
//!
//! Data flow of [`SnapFit::forward`]:
//!
//! ```text
//! x [B,C,T,H,W] → PatchEmbed3d (+ 3D sin-cos) → patch tokens [B, t·h·w, d_patch]
//!               → groups: gh×gw windows spanning all t frames → [B·G, t·gh·gw, d_patch]
//! latents = learned [n, d_latent] + 2D sin-cos of the group   → [B, G·n, d_latent]
//!         + self_cond_proj(RMSNorm(previous latents))           (self-conditioning)
//! cond tokens = [σ (from c_noise), fps, height, width, text…]  → [B, 4 + L, d_latent]
//! n_blocks × FitBlock: cond read → group read → latent self-attn → group write (+ FFs)
//! → LayerNorm → Linear → unpatchify → F [B,C,T,H,W];  also returns the final latents
//! ```
//!
//! ```
//! use burn::tensor::{Distribution, Tensor};
//! use vidgen_models::TextConditioning;
//! use vidgen_models::snap_fit::{SnapFitCond, SnapFitConfig};
//! type B = burn::backend::Flex;
//! let device = Default::default();
//! // C = 3, d_patch = d_latent = 32, 4 latents per group, 1 block, 2 heads, d_text = 8.
//! let model = SnapFitConfig::new(3, 32, 32, 4, 1, 2, 8)
//!     .with_group_size([2, 2])
//!     .init::<B>(&device)
//!     .unwrap();
//! let cond = SnapFitCond {
//!     text: TextConditioning::new(Tensor::random([1, 5, 8], Distribution::Normal(0.0, 1.0), &device)),
//!     fps: Tensor::from_floats([8.0], &device),
//!     resolution: Tensor::from_floats([[16.0, 16.0]], &device),
//! };
//! let x = Tensor::<B, 5>::random([1, 3, 4, 8, 8], Distribution::Normal(0.0, 1.0), &device);
//! let c_noise = Tensor::from_floats([0.25], &device);
//! let (f, latents) = model.forward(x.clone(), c_noise.clone(), &cond, None)?;
//! assert_eq!(f.dims(), [1, 3, 4, 8, 8]);
//! // Patch grid 4×4×4 in groups of 2×2 patches → 4 groups × 4 latents.
//! assert_eq!(latents.dims(), [1, 16, 32]);
//! // Self-conditioning on the previous latents for the next call.
//! let (f2, _) = model.forward(x, c_noise, &cond, Some(latents))?;
//! assert_eq!(f2.dims(), f.dims());
//! # Ok::<(), vidgen_models::ModelError>(())
//! ```
//!
//! Divergences from FIT / Snap Video (whose code is not public): the latent tokens are one learned
//! table shared by all groups plus a fixed 2D sin-cos embedding of the group's position, so any
//! resolution whose patch grid the groups divide is accepted (FIT learns one table per group at a
//! fixed resolution); scalar conditions (σ via EDM's `c_noise = ln(σ)/4`, frame rate, original
//! height and width) each become one token through a sinusoidal [`TimestepEmbedder`]; the
//! self-conditioning input is RMS-normalised and projected without bias, so zero latents add
//! exactly nothing (see [`SnapFit::forward`]).

mod block;
mod groups;
mod sample;

pub use block::{FeedForward, FitBlock, LatentLayer};
pub use groups::{group_ids, group_patches, group_read_mask, ungroup_patches};
pub use sample::SnapFitDenoiser;
pub use vidgen_schedulers::EdmSolver;

use crate::denoise::TextConditioning;
use crate::error::{ModelError, divisible, positive, positive_f64, same_size};
use block::BlockDims;
use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};
use vidgen_nn::{
    Kernel, PatchEmbed3d, PatchEmbed3dConfig, TimestepEmbedder, TimestepEmbedderConfig, WithKernel,
    sincos_2d, sincos_3d, unpatchify_3d,
};

/// Number of scalar conditioning tokens before the text tokens: σ, fps, height, width.
pub const N_SCALAR_COND: usize = 4;

/// Configuration of [`SnapFit`].
#[derive(Config, Debug)]
pub struct SnapFitConfig {
    /// Input (and output) channels `C`.
    pub in_channels: usize,
    /// Patch size `(pt, ph, pw)`; Snap Video uses `pt = 1` (patches in space only, Sec. 3.4).
    #[config(default = "[1, 2, 2]")]
    pub patch_size: [usize; 3],
    /// Width of the patch tokens; a multiple of 16 (3D sin-cos table) and of `n_heads`.
    pub d_patch: usize,
    /// Width of the latent and conditioning tokens; a multiple of 4 (2D sin-cos table of the
    /// group position) and of `n_heads`.
    pub d_latent: usize,
    /// Latent tokens **per group** (`n`); a sample has `G·n` latents.
    pub n_latents: usize,
    /// Spatial extent `(gh, gw)` of a group in patches; every group spans all `t` frames, so it
    /// holds `t·gh·gw` patches (Sec. 3.4: groups covering all frames model time best).
    #[config(default = "[4, 4]")]
    pub group_size: [usize; 2],
    /// Number of FIT blocks.
    pub n_blocks: usize,
    /// Latent self-attention layers per block. 0 is allowed (groups then never exchange
    /// information), which the tests use to show that latents are the only path between groups.
    #[config(default = 2)]
    pub n_latent_layers: usize,
    /// Attention heads of every attention layer.
    pub n_heads: usize,
    /// Width of the text tokens (e.g. T5 features; Snap Video uses T5-11B).
    pub d_text: usize,
    /// Hidden width of every feed-forward as a multiple of its input width.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Width of the sinusoidal features of σ, fps and resolution (even).
    #[config(default = 256)]
    pub frequency_dim: usize,
    /// Zero-initialise `self_cond_proj`, so training starts without self-conditioning (RIN's
    /// zero-initialised self-conditioning LayerNorm, Jabri et al. 2022).
    #[config(default = true)]
    pub self_cond_zero_init: bool,
    /// Epsilon of every LayerNorm / RMSNorm.
    #[config(default = 1e-6)]
    pub norm_eps: f64,
}

impl SnapFitConfig {
    /// Checks every field without building anything.
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::Zero`) naming a zero size (`in_channels`, `patch_size`, `d_patch`,
    /// `d_latent`, `n_latents`, `group_size`, `n_blocks`, `n_heads`, `d_text`, `frequency_dim`);
    /// [`ModelError::Config`] (`ConfigError::NotDivisible`) if `d_patch` is not a multiple of `n_heads` and 16, `d_latent`
    /// of `n_heads` and 4, or `frequency_dim` is odd; [`ModelError::Config`] (`ConfigError::OutOfDomain`) for
    /// `mlp_ratio` or `norm_eps` not > 0.
    pub fn validate(&self) -> Result<(), ModelError> {
        positive("in_channels", self.in_channels)?;
        for p in self.patch_size {
            positive("patch_size", p)?;
        }
        positive("d_patch", self.d_patch)?;
        positive("d_latent", self.d_latent)?;
        positive("n_latents", self.n_latents)?;
        for g in self.group_size {
            positive("group_size", g)?;
        }
        vidgen_nn::error::layer_count("n_blocks", self.n_blocks)?;
        // Zero latent layers is valid (groups then interact only through read and write).
        if self.n_latent_layers > 0 {
            vidgen_nn::error::layer_count("n_latent_layers", self.n_latent_layers)?;
        }
        positive("n_heads", self.n_heads)?;
        positive("d_text", self.d_text)?;
        positive("frequency_dim", self.frequency_dim)?;
        divisible("d_patch", self.d_patch, self.n_heads, Some("n_heads"))?;
        divisible("d_latent", self.d_latent, self.n_heads, Some("n_heads"))?;
        divisible("d_patch", self.d_patch, 16, None)?;
        divisible("d_latent", self.d_latent, 4, None)?;
        divisible("frequency_dim", self.frequency_dim, 2, None)?;
        positive_f64("mlp_ratio", self.mlp_ratio)?;
        Ok(positive_f64("norm_eps", self.norm_eps)?)
    }

    /// Builds the model with random weights (PyTorch-style defaults; latents `N(0, 0.02²)`).
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<SnapFit<B>, ModelError> {
        self.validate()?;
        let (dp, dl) = (self.d_patch, self.d_latent);
        let dims = BlockDims {
            d_patch: dp,
            d_latent: dl,
            n_heads: self.n_heads,
            n_latent_layers: self.n_latent_layers,
            mlp_ratio: self.mlp_ratio,
            norm_eps: self.norm_eps,
        };
        let scalar = || {
            TimestepEmbedderConfig::new(dl)
                .with_frequency_dim(self.frequency_dim)
                .init(device)
                .expect("frequency_dim and d_latent validated")
        };
        let mut self_cond_proj = LinearConfig::new(dl, dl).with_bias(false);
        if self.self_cond_zero_init {
            self_cond_proj = self_cond_proj.with_initializer(Initializer::Zeros);
        }
        let [pt, ph, pw] = self.patch_size;
        Ok(SnapFit {
            patch_embed: PatchEmbed3dConfig::new(self.in_channels, dp)
                .with_patch_size(self.patch_size)
                .init(device)
                .expect("patch sizes validated"),
            latents: Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([self.n_latents, dl], device),
            sigma_embed: scalar(),
            fps_embed: scalar(),
            resolution_embed: scalar(),
            text_proj: LinearConfig::new(self.d_text, dl).init(device),
            cond_norm: LayerNormConfig::new(dl)
                .with_epsilon(self.norm_eps)
                .init(device),
            self_cond_norm: RmsNormConfig::new(dl)
                .with_epsilon(self.norm_eps)
                .init(device),
            self_cond_proj: self_cond_proj.init(device),
            blocks: (0..self.n_blocks).map(|_| dims.init(device)).collect(),
            final_norm: LayerNormConfig::new(dp)
                .with_epsilon(self.norm_eps)
                .init(device),
            final_proj: LinearConfig::new(dp, pt * ph * pw * self.in_channels).init(device),
            patch_size: self.patch_size,
            group_size: self.group_size,
            in_channels: self.in_channels,
            d_text: self.d_text,
            kernel: Kernel::Fast,
        })
    }
}

/// Conditioning of one batch: text tokens and the frame rate and original resolution of each
/// sample (Sec. 3.4; images are treated as videos with a very high frame rate, Sec. 3.3).
#[derive(Clone, Debug)]
pub struct SnapFitCond<B: Backend> {
    /// Text tokens `[B, L, d_text]` (e.g. [`TextEmbedder`](crate::TextEmbedder) output) and
    /// their key-padding mask.
    pub text: TextConditioning<B>,
    /// Frame rate `ν` per sample, `[B]`.
    pub fps: Tensor<B, 1>,
    /// Original `(height, width)` per sample, `[B, 2]`.
    pub resolution: Tensor<B, 2>,
}

/// Snap Video's FIT denoiser network `F(c_in·x_σ, c_noise)`. Parameter names are ours (no public
/// checkpoint exists); see [`SnapFitConfig`] and the [module docs](self).
#[derive(Module, Debug)]
pub struct SnapFit<B: Backend> {
    /// Patch embedding `C → d_patch`.
    pub patch_embed: PatchEmbed3d<B>,
    /// Learned latent tokens of one group, `[n_latents, d_latent]`.
    pub latents: Param<Tensor<B, 2>>,
    /// Embedder of `c_noise` (the σ token).
    pub sigma_embed: TimestepEmbedder<B>,
    /// Embedder of the frame rate.
    pub fps_embed: TimestepEmbedder<B>,
    /// Embedder of the original height and width (one token each).
    pub resolution_embed: TimestepEmbedder<B>,
    /// Text tokens `d_text → d_latent`.
    pub text_proj: Linear<B>,
    /// LayerNorm of all conditioning tokens.
    pub cond_norm: LayerNorm<B>,
    /// RMSNorm of the previous latents (self-conditioning).
    pub self_cond_norm: RmsNorm<B>,
    /// Bias-free projection of the normalised previous latents, added to the initial latents.
    pub self_cond_proj: Linear<B>,
    /// The FIT blocks.
    pub blocks: Vec<FitBlock<B>>,
    /// LayerNorm before the output projection.
    pub final_norm: LayerNorm<B>,
    /// `d_patch → pt·ph·pw·C` (vector order `(pt, ph, pw, C)`, see [`unpatchify_3d`]).
    pub final_proj: Linear<B>,
    /// `(pt, ph, pw)`.
    pub patch_size: [usize; 3],
    /// `(gh, gw)`.
    pub group_size: [usize; 2],
    /// `C`.
    pub in_channels: usize,
    /// Width of the text tokens.
    pub d_text: usize,
    /// How [`forward`](Self::forward) computes ([`with_kernel`](Self::with_kernel)).
    #[module(skip)]
    pub kernel: Kernel,
}

/// Everything both forward paths share, computed once.
struct Prepared<B: Backend> {
    patches: Tensor<B, 3>,
    latents: Tensor<B, 3>,
    cond: Tensor<B, 3>,
    cond_padding: Option<Tensor<B, 2, Bool>>,
    grid: [usize; 3],
}

impl<B: Backend> WithKernel for SnapFit<B> {
    /// This model computing with `kernel`: [`Kernel::Reference`] makes
    /// [`forward`](Self::forward) run its reference twin (raster-order patches, group-wise read
    /// and write as masked full attention, every attention by the naive reference).
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        self.blocks = self.blocks.with_kernel(kernel);
        self
    }
}

impl<B: Backend> SnapFit<B> {
    /// The patch grid `(t, h, w)` and the number of groups `G` for an input of size `(T, H, W)`.
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::NotDivisible`) naming the axis (`T`, `H`, `W`) not divisible by its patch
    /// size, or the patch-grid axis (`h`, `w`) not divisible by `group_size`.
    pub fn grid(&self, size: [usize; 3]) -> Result<([usize; 3], usize), ModelError> {
        for (i, axis) in ["T", "H", "W"].into_iter().enumerate() {
            divisible(axis, size[i], self.patch_size[i], Some("patch_size"))?;
        }
        let grid = [0, 1, 2].map(|i| size[i] / self.patch_size[i]);
        divisible("h", grid[1], self.group_size[0], Some("group_size"))?;
        divisible("w", grid[2], self.group_size[1], Some("group_size"))?;
        let groups = (grid[1] / self.group_size[0]) * (grid[2] / self.group_size[1]);
        Ok((grid, groups))
    }

    /// Latent tokens per group.
    pub fn n_latents(&self) -> usize {
        self.latents.dims()[0]
    }

    /// Checks the inputs and builds patch tokens, initial latents and conditioning tokens.
    fn prepare(
        &self,
        x: Tensor<B, 5>,
        c_noise: Tensor<B, 1>,
        cond: &SnapFitCond<B>,
        prev_latents: Option<Tensor<B, 3>>,
    ) -> Result<Prepared<B>, ModelError> {
        let [b, c, t, h, w] = x.dims();
        let device = x.device();
        same_size("input channels", self.in_channels, c)?;
        let (grid, groups) = self.grid([t, h, w])?;
        let cond_tokens = self.conditioning(b, c_noise, cond)?;
        let dp = self.final_norm.gamma.dims()[0];
        let pos = sincos_3d::<B>(dp, grid, 1.0, 1.0, &device).expect("d_patch validated");
        let patches = self.patch_embed.forward(x) + pos.unsqueeze_dim(0);
        let [n, dl] = self.latents.dims();
        let group_grid = [grid[1] / self.group_size[0], grid[2] / self.group_size[1]];
        // Group positions: rows 0..Gh; columns scaled to the same span (DiT's `base_size`).
        let group_pos = sincos_2d::<B>(dl, group_grid, group_grid[0] as f64, 1.0, &device)
            .expect("d_latent validated");
        let latents = (self.latents.val().unsqueeze_dim::<3>(0) + group_pos.unsqueeze_dim(1))
            .reshape([1, groups * n, dl])
            .expand([b, groups * n, dl]);
        let latents = match prev_latents {
            Some(prev) => {
                let [pb, pl, pd] = prev.dims();
                same_size("prev_latents batch", b, pb)?;
                same_size("prev_latents count (G·n_latents)", groups * n, pl)?;
                same_size("prev_latents width (d_latent)", dl, pd)?;
                latents
                    + self
                        .self_cond_proj
                        .forward(self.self_cond_norm.forward(prev))
            }
            None => latents,
        };
        Ok(Prepared {
            patches,
            latents,
            cond: cond_tokens.0,
            cond_padding: cond_tokens.1,
            grid,
        })
    }

    /// Checks the shapes of a batch's conditioning.
    fn check_cond(&self, b: usize, cond: &SnapFitCond<B>) -> Result<(), ModelError> {
        let [_, _, dt] = cond.text.tokens.dims();
        same_size("fps length", b, cond.fps.dims()[0])?;
        same_size("resolution rows", b, cond.resolution.dims()[0])?;
        same_size(
            "resolution columns (height, width)",
            2,
            cond.resolution.dims()[1],
        )?;
        same_size("text width (d_text)", self.d_text, dt)?;
        cond.text.check("text batch", b)
    }

    /// Conditioning tokens `[B, 4 + L, d_latent]` (σ, fps, height, width, text) and their
    /// key-padding mask (`None` when the text has none).
    #[allow(clippy::type_complexity)]
    fn conditioning(
        &self,
        b: usize,
        c_noise: Tensor<B, 1>,
        cond: &SnapFitCond<B>,
    ) -> Result<(Tensor<B, 3>, Option<Tensor<B, 2, Bool>>), ModelError> {
        same_size("c_noise length", b, c_noise.dims()[0])?;
        self.check_cond(b, cond)?;
        let dl = self.latents.dims()[1];
        let sigma = self.sigma_embed.forward(c_noise).reshape([b, 1, dl]);
        let fps = self.fps_embed.forward(cond.fps.clone()).reshape([b, 1, dl]);
        let res = self
            .resolution_embed
            .forward(cond.resolution.clone().reshape([2 * b]))
            .reshape([b, 2, dl]);
        let text = self.text_proj.forward(cond.text.tokens.clone());
        let tokens = self
            .cond_norm
            .forward(Tensor::cat(vec![sigma, fps, res, text], 1));
        let padding = cond.text.padding.clone().map(|m| {
            let never = TensorData::new(vec![false; b * N_SCALAR_COND], [b, N_SCALAR_COND]);
            let scalars = Tensor::<B, 2, Bool>::from_data(never, &m.device());
            Tensor::cat(vec![scalars, m], 1)
        });
        Ok((tokens, padding))
    }

    /// Output projection and unpatchify.
    fn finish(&self, patches: Tensor<B, 3>, grid: [usize; 3]) -> Tensor<B, 5> {
        let y = self.final_proj.forward(self.final_norm.forward(patches));
        unpatchify_3d(y, grid, self.patch_size)
    }

    /// The network output `F` and the final latents, checking the inputs first.
    ///
    /// Self-conditioning (Sec. 3.4; RIN's latent self-conditioning): the initial latents are
    /// `z₀ = z_learned + pos(group) + W_sc·RMSNorm(prev_latents)`; `W_sc` has no bias and
    /// `RMSNorm(0) = 0`, so `prev_latents = Some(zeros)` gives exactly the output of `None`.
    ///
    /// # Shapes
    /// `x`: `[B, C, T, H, W]` (the preconditioned `c_in·x_σ`), `c_noise`: `[B]`,
    /// `prev_latents`: `[B, G·n_latents, d_latent]` → (`F`: `[B, C, T, H, W]`, latents
    /// `[B, G·n_latents, d_latent]`, group-major)
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::NotDivisible`) (see [`grid`](Self::grid)); [`ModelError::Config`] (`ConfigError::ShapeMismatch`) for
    /// channels, batch sizes, text width, padding or `prev_latents` shape.
    pub fn forward(
        &self,
        x: Tensor<B, 5>,
        c_noise: Tensor<B, 1>,
        cond: &SnapFitCond<B>,
        prev_latents: Option<Tensor<B, 3>>,
    ) -> Result<(Tensor<B, 5>, Tensor<B, 3>), ModelError> {
        if self.kernel.is_reference() {
            return self.forward_masked(x, c_noise, cond, prev_latents);
        }
        let b = x.dims()[0];
        let p = self.prepare(x, c_noise, cond, prev_latents)?;
        let mut patches = group_patches(p.patches, p.grid, self.group_size);
        let mut latents = p.latents;
        for block in &self.blocks {
            (patches, latents) =
                block.forward(patches, latents, p.cond.clone(), p.cond_padding.clone());
        }
        let patches = ungroup_patches(patches, b, p.grid, self.group_size);
        Ok((self.finish(patches, p.grid), latents))
    }

    /// Reference twin of [`forward`](Self::forward), run by a model built with
    /// [`Kernel::Reference`]: no grouping reshapes; the group-wise read and write are full
    /// cross-attentions with a block-diagonal group mask ([`group_read_mask`]) through the naive
    /// [`attention_reference`](vidgen_attention::attention_reference).
    fn forward_masked(
        &self,
        x: Tensor<B, 5>,
        c_noise: Tensor<B, 1>,
        cond: &SnapFitCond<B>,
        prev_latents: Option<Tensor<B, 3>>,
    ) -> Result<(Tensor<B, 5>, Tensor<B, 3>), ModelError> {
        let device = x.device();
        let p = self.prepare(x, c_noise, cond, prev_latents)?;
        let mask = group_read_mask::<B>(p.grid, self.group_size, self.n_latents(), &device);
        let (mut patches, mut latents) = (p.patches, p.latents);
        for block in &self.blocks {
            (patches, latents) = block.forward_masked(
                patches,
                latents,
                p.cond.clone(),
                p.cond_padding.clone(),
                mask.clone(),
            );
        }
        Ok((self.finish(patches, p.grid), latents))
    }
}
