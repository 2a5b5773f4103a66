//! Open-Sora 1.2's temporal autoencoder `VAE_Temporal` (`opensora/models/vae/vae_temporal.py`;
//! report sec. 3.1): causal 3D convs compress the 2D-VAE latents 4× in time.

use super::autoencoder::TemporalAutoencoder;
use super::conv::{
    Activation, CausalConv3d, CausalConv3dConfig, ConvRun, ResBlock, TemporalNorm, group_norm_5d,
    res_block,
};
use crate::error::{VaeError, divisible, positive, positive_f64, same_size};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::{Tensor, backend::Backend};

/// Configuration of [`TemporalAutoencoder`]. Field names and defaults are Open-Sora's
/// `VAE_Temporal_SD` (`filters=128`, `channel_multipliers=(1, 2, 2, 4)`,
/// `temporal_downsample=(False, True, True)`: 4× in time).
#[derive(Config, Debug)]
pub struct TemporalAutoencoderConfig {
    /// Channels of the video the autoencoder sees (the 2D VAE's latent channels).
    #[config(default = 4)]
    pub in_out_channels: usize,
    /// Channels at the encoder output / decoder input (`latent_embed_dim`).
    #[config(default = 4)]
    pub latent_embed_dim: usize,
    /// Channels of the latent after `quant_conv` (`embed_dim`).
    #[config(default = 4)]
    pub embed_dim: usize,
    /// Base width.
    #[config(default = 128)]
    pub filters: usize,
    /// Residual blocks per level.
    #[config(default = 4)]
    pub num_res_blocks: usize,
    /// Width multiplier per level.
    #[config(default = "vec![1, 2, 2, 4]")]
    pub channel_multipliers: Vec<usize>,
    /// Whether the transition after level `i` halves time; length `len(channel_multipliers) − 1`.
    #[config(default = "vec![false, true, true]")]
    pub temporal_downsample: Vec<bool>,
    /// Groups of every `GroupNorm`.
    #[config(default = 32)]
    pub num_groups: usize,
    /// `GroupNorm` epsilon (PyTorch default).
    #[config(default = 1e-5)]
    pub norm_eps: f64,
    /// Clip-wide (Open-Sora) or per-frame (causal, streamable) norm statistics.
    #[config(default = "TemporalNorm::Clip")]
    pub temporal_norm: TemporalNorm,
    /// Activation (`"swish"`).
    #[config(default = "Activation::Swish")]
    pub activation_fn: Activation,
}

/// Validated sizes shared by the encoder and decoder builders.
struct Plan<'a> {
    cfg: &'a TemporalAutoencoderConfig,
}

impl Plan<'_> {
    fn width(&self, level: usize) -> usize {
        self.cfg.filters * self.cfg.channel_multipliers[level]
    }
    fn res<B: Backend>(&self, i: usize, o: usize, d: &B::Device) -> Result<ResBlock<B>, VaeError> {
        let c = self.cfg;
        res_block(
            i,
            o,
            c.num_groups,
            c.norm_eps,
            c.temporal_norm,
            c.activation_fn,
            d,
        )
    }
    fn norm<B: Backend>(&self, c: usize, d: &B::Device) -> GroupNorm<B> {
        GroupNormConfig::new(self.cfg.num_groups, c)
            .with_epsilon(self.cfg.norm_eps)
            .init(d)
    }
}

impl TemporalAutoencoderConfig {
    /// `2^(number of true entries in temporal_downsample)`.
    pub fn temporal_factor(&self) -> usize {
        1 << self.temporal_downsample.iter().filter(|d| **d).count()
    }

    fn validate(&self) -> Result<(), VaeError> {
        vidgen_nn::error::width("in_out_channels", self.in_out_channels)?;
        vidgen_nn::error::width("latent_embed_dim", self.latent_embed_dim)?;
        vidgen_nn::error::width("embed_dim", self.embed_dim)?;
        vidgen_nn::error::width("filters", self.filters)?;
        vidgen_nn::error::layer_count("num_res_blocks", self.num_res_blocks)?;
        positive("channel_multipliers", self.channel_multipliers.len())?;
        positive("num_groups", self.num_groups)?;
        positive_f64("norm_eps", self.norm_eps)?;
        same_size(
            "`temporal_downsample` length (len(channel_multipliers) - 1)",
            self.channel_multipliers.len() - 1,
            self.temporal_downsample.len(),
        )?;
        for &m in &self.channel_multipliers {
            positive("channel_multipliers", m)?;
            let level = self.filters.saturating_mul(m);
            vidgen_nn::error::width("filters * channel_multipliers[i]", level)?;
            divisible(
                "filters * channel_multipliers[i]",
                level,
                self.num_groups,
                Some("num_groups"),
            )?;
        }
        Ok(())
    }

    /// Builds the autoencoder.
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::Zero`) for a zero size; [`VaeError::Config`] (`ConfigError::ShapeMismatch`) if `temporal_downsample`
    /// does not have `len(channel_multipliers) − 1` entries; [`VaeError::Config`] (`ConfigError::NotDivisible`) if a level
    /// width is not a multiple of `num_groups`; [`VaeError::Config`] (`ConfigError::OutOfDomain`) for `norm_eps <= 0`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<TemporalAutoencoder<B>, VaeError> {
        self.validate()?;
        let plan = Plan { cfg: self };
        let conv1x1 = |i, o| CausalConv3dConfig::new(i, o, [1, 1, 1]).init(device);
        Ok(TemporalAutoencoder {
            encoder: self.encoder(&plan, device)?,
            quant_conv: conv1x1(2 * self.latent_embed_dim, 2 * self.embed_dim)?,
            post_quant_conv: conv1x1(self.embed_dim, self.latent_embed_dim)?,
            decoder: self.decoder(&plan, device)?,
            temporal_factor: self.temporal_factor(),
            temporal_norm: self.temporal_norm,
        })
    }

    fn encoder<B: Backend>(&self, p: &Plan, d: &B::Device) -> Result<TemporalEncoder<B>, VaeError> {
        let n = self.channel_multipliers.len();
        let conv_in = CausalConv3dConfig::new(self.in_out_channels, self.filters, [3, 3, 3])
            .with_bias(false)
            .init(d)?;
        let (mut prev, mut block_res_blocks, mut conv_blocks) = (self.filters, vec![], vec![]);
        for i in 0..n {
            let width = p.width(i);
            let mut items = vec![];
            for _ in 0..self.num_res_blocks {
                items.push(p.res(prev, width, d)?);
                prev = width;
            }
            block_res_blocks.push(items);
            if i + 1 < n {
                conv_blocks.push(if self.temporal_downsample[i] {
                    Some(
                        CausalConv3dConfig::new(prev, width, [3, 3, 3])
                            .with_stride(2)
                            .init(d)?,
                    )
                } else {
                    None
                });
            }
        }
        let width = p.width(n - 1);
        let res_blocks = (0..self.num_res_blocks)
            .map(|_| p.res(width, width, d))
            .collect::<Result<_, _>>()?;
        Ok(TemporalEncoder {
            conv_in,
            block_res_blocks,
            conv_blocks,
            res_blocks,
            norm1: p.norm(width, d),
            conv2: CausalConv3dConfig::new(width, 2 * self.latent_embed_dim, [1, 1, 1]).init(d)?,
            temporal_norm: self.temporal_norm,
            activation: self.activation_fn,
        })
    }

    fn decoder<B: Backend>(&self, p: &Plan, d: &B::Device) -> Result<TemporalDecoder<B>, VaeError> {
        let n = self.channel_multipliers.len();
        let top = p.width(n - 1);
        let conv1 = CausalConv3dConfig::new(self.latent_embed_dim, top, [3, 3, 3]).init(d)?;
        let res_blocks = (0..self.num_res_blocks)
            .map(|_| p.res(top, top, d))
            .collect::<Result<_, _>>()?;
        let mut block_res_blocks = Vec::with_capacity(n);
        let mut conv_blocks = Vec::with_capacity(n - 1);
        let mut prev = top;
        for i in (0..n).rev() {
            let width = p.width(i);
            let mut items = vec![];
            for _ in 0..self.num_res_blocks {
                items.push(p.res(prev, width, d)?);
                prev = width;
            }
            block_res_blocks.insert(0, items);
            if i > 0 {
                conv_blocks.insert(
                    0,
                    if self.temporal_downsample[i - 1] {
                        Some(CausalConv3dConfig::new(prev, 2 * prev, [3, 3, 3]).init(d)?)
                    } else {
                        None
                    },
                );
            }
        }
        Ok(TemporalDecoder {
            conv1,
            res_blocks,
            block_res_blocks,
            conv_blocks,
            norm1: p.norm(prev, d),
            conv_out: CausalConv3dConfig::new(prev, self.in_out_channels, [3, 3, 3]).init(d)?,
            temporal_norm: self.temporal_norm,
            activation: self.activation_fn,
        })
    }
}

/// Runs a list of residual blocks in a mode.
fn run_blocks<B: Backend>(
    blocks: &[ResBlock<B>],
    mut x: Tensor<B, 5>,
    run: &mut ConvRun<'_, B>,
) -> Option<Tensor<B, 5>> {
    for b in blocks {
        x = b.run(x, run)?;
    }
    Some(x)
}

/// Open-Sora's temporal `Encoder`; keys as the checkpoint (`encoder.conv_in.conv.weight`, …).
#[derive(Module, Debug)]
pub struct TemporalEncoder<B: Backend> {
    /// `in_out_channels → filters`, 3×3×3, no bias.
    pub conv_in: CausalConv3d<B>,
    /// `num_res_blocks` blocks per level.
    pub block_res_blocks: Vec<Vec<ResBlock<B>>>,
    /// Per transition: a stride-2 (time) 3×3×3 conv, or `None` (Open-Sora's `nn.Identity`).
    pub conv_blocks: Vec<Option<CausalConv3d<B>>>,
    /// Blocks after the last level.
    pub res_blocks: Vec<ResBlock<B>>,
    /// Final norm.
    pub norm1: GroupNorm<B>,
    /// `→ 2·latent_embed_dim`, 1×1×1.
    pub conv2: CausalConv3d<B>,
    /// Norm statistics.
    #[module(skip)]
    pub temporal_norm: TemporalNorm,
    /// Activation.
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> TemporalEncoder<B> {
    /// Number of causal convs, i.e. cache slots.
    pub fn n_convs(&self) -> usize {
        let blocks: usize = self
            .block_res_blocks
            .iter()
            .flatten()
            .map(|b| b.n_convs())
            .sum();
        let tail: usize = self.res_blocks.iter().map(|b| b.n_convs()).sum();
        2 + blocks + tail + self.conv_blocks.iter().flatten().count()
    }

    pub(crate) fn run(&self, x: Tensor<B, 5>, run: &mut ConvRun<'_, B>) -> Option<Tensor<B, 5>> {
        let mut x = run.conv(&self.conv_in, x)?;
        for (i, blocks) in self.block_res_blocks.iter().enumerate() {
            x = run_blocks(blocks, x, run)?;
            if let Some(Some(conv)) = self.conv_blocks.get(i) {
                x = run.conv(conv, x)?;
            }
        }
        x = run_blocks(&self.res_blocks, x, run)?;
        let x = self
            .activation
            .apply(group_norm_5d(&self.norm1, self.temporal_norm, x));
        run.conv(&self.conv2, x)
    }
}

/// Open-Sora's temporal `Decoder`; upsampling is a causal conv to `2·C` channels followed by
/// depth-to-space in time (`B (C ts) T H W -> B C (T ts) H W`).
#[derive(Module, Debug)]
pub struct TemporalDecoder<B: Backend> {
    /// `latent_embed_dim → filters·mult[-1]`, 3×3×3.
    pub conv1: CausalConv3d<B>,
    /// Blocks at the top level.
    pub res_blocks: Vec<ResBlock<B>>,
    /// Blocks per level (index = level, run from the top down).
    pub block_res_blocks: Vec<Vec<ResBlock<B>>>,
    /// Per transition below level `i`: `C → 2C` 3×3×3 conv, or `None`.
    pub conv_blocks: Vec<Option<CausalConv3d<B>>>,
    /// Final norm.
    pub norm1: GroupNorm<B>,
    /// `→ in_out_channels`, 3×3×3.
    pub conv_out: CausalConv3d<B>,
    /// Norm statistics.
    #[module(skip)]
    pub temporal_norm: TemporalNorm,
    /// Activation.
    #[module(skip)]
    pub activation: Activation,
}

/// `[B, C·2, T, H, W] → [B, C, 2T, H, W]` with channel `c·2 + j` going to frame `2t + j`.
pub fn depth_to_time<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 5> {
    let [b, c2, t, h, w] = x.dims();
    let c = c2 / 2;
    x.reshape([b, c, 2, t, h * w])
        .swap_dims(2, 3)
        .reshape([b, c, 2 * t, h, w])
}

impl<B: Backend> TemporalDecoder<B> {
    /// Number of causal convs, i.e. cache slots.
    pub fn n_convs(&self) -> usize {
        let top: usize = self.res_blocks.iter().map(|b| b.n_convs()).sum();
        let blocks: usize = self
            .block_res_blocks
            .iter()
            .flatten()
            .map(|b| b.n_convs())
            .sum();
        2 + top + blocks + self.conv_blocks.iter().flatten().count()
    }

    pub(crate) fn run(&self, z: Tensor<B, 5>, run: &mut ConvRun<'_, B>) -> Option<Tensor<B, 5>> {
        let mut x = run.conv(&self.conv1, z)?;
        x = run_blocks(&self.res_blocks, x, run)?;
        for i in (0..self.block_res_blocks.len()).rev() {
            x = run_blocks(&self.block_res_blocks[i], x, run)?;
            if i > 0
                && let Some(conv) = &self.conv_blocks[i - 1]
            {
                x = depth_to_time(run.conv(conv, x)?);
            }
        }
        let x = self
            .activation
            .apply(group_norm_5d(&self.norm1, self.temporal_norm, x));
        run.conv(&self.conv_out, x)
    }
}
