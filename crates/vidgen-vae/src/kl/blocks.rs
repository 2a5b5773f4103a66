//! diffusers' `DownEncoderBlock2D`, `UpDecoderBlock2D`, `UNetMidBlock2D` and the VAE `Encoder` /
//! `Decoder` stacks built from them (`models/autoencoders/vae.py`).

use super::attention::MidBlockAttention;
use super::resnet::{Downsample2d, ResnetBlock2d, Upsample2d, conv_same, group_norm};
use burn::module::Module;
use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};

/// `layers` resnets, then an optional [`Downsample2d`] (keys `resnets.{j}`, `downsamplers.0`).
#[derive(Module, Debug)]
pub struct DownEncoderBlock2d<B: Backend> {
    /// Residual blocks; the first maps `c_in → c_out`.
    pub resnets: Vec<ResnetBlock2d<B>>,
    /// Zero or one down-sampler (none on the last level).
    pub downsamplers: Vec<Downsample2d<B>>,
}

impl<B: Backend> DownEncoderBlock2d<B> {
    fn new(
        c_in: usize,
        c_out: usize,
        layers: usize,
        groups: usize,
        down: bool,
        d: &B::Device,
    ) -> Self {
        Self {
            resnets: (0..layers)
                .map(|j| ResnetBlock2d::new(if j == 0 { c_in } else { c_out }, c_out, groups, d))
                .collect(),
            downsamplers: down
                .then(|| Downsample2d::new(c_out, d))
                .into_iter()
                .collect(),
        }
    }

    /// # Shapes
    /// `x`: `[B, c_in, H, W]` → `[B, c_out, H', W']` (`H' = ⌊H/2⌋` with a down-sampler)
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.resnets.iter().fold(x, |x, r| r.forward(x));
        self.downsamplers.iter().fold(x, |x, d| d.forward(x))
    }
}

/// `layers` resnets, then an optional [`Upsample2d`] (keys `resnets.{j}`, `upsamplers.0`).
#[derive(Module, Debug)]
pub struct UpDecoderBlock2d<B: Backend> {
    /// Residual blocks; the first maps `c_in → c_out`.
    pub resnets: Vec<ResnetBlock2d<B>>,
    /// Zero or one up-sampler (none on the last level).
    pub upsamplers: Vec<Upsample2d<B>>,
}

impl<B: Backend> UpDecoderBlock2d<B> {
    fn new(
        c_in: usize,
        c_out: usize,
        layers: usize,
        groups: usize,
        up: bool,
        d: &B::Device,
    ) -> Self {
        Self {
            resnets: (0..layers)
                .map(|j| ResnetBlock2d::new(if j == 0 { c_in } else { c_out }, c_out, groups, d))
                .collect(),
            upsamplers: up.then(|| Upsample2d::new(c_out, d)).into_iter().collect(),
        }
    }

    /// # Shapes
    /// `x`: `[B, c_in, H, W]` → `[B, c_out, H', W']` (`H' = 2H` with an up-sampler)
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.resnets.iter().fold(x, |x, r| r.forward(x));
        self.upsamplers.iter().fold(x, |x, u| u.forward(x))
    }
}

/// `resnet₁(attn(resnet₀(x)))` at constant width (`attn` optional; keys `resnets.{0,1}`,
/// `attentions.0`).
#[derive(Module, Debug)]
pub struct UNetMidBlock2d<B: Backend> {
    /// Zero or one attention block.
    pub attentions: Vec<MidBlockAttention<B>>,
    /// The two residual blocks.
    pub resnets: Vec<ResnetBlock2d<B>>,
}

impl<B: Backend> UNetMidBlock2d<B> {
    fn new(channels: usize, groups: usize, attention: bool, d: &B::Device) -> Self {
        Self {
            attentions: attention
                .then(|| MidBlockAttention::new(channels, groups, d))
                .into_iter()
                .collect(),
            resnets: (0..2)
                .map(|_| ResnetBlock2d::new(channels, channels, groups, d))
                .collect(),
        }
    }

    /// # Shapes
    /// `x`: `[B, C, H, W]` → `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.resnets[0].forward(x);
        let x = self.attentions.iter().fold(x, |x, a| a.forward(x));
        self.resnets[1].forward(x)
    }
}

/// Sizes shared by [`Encoder`] and [`Decoder`] construction (validated by the VAE config).
pub(crate) struct StackSizes<'a> {
    pub block_out_channels: &'a [usize],
    pub layers_per_block: usize,
    pub groups: usize,
    pub attention: bool,
}

/// `conv_out(SiLU(GN(mid(down_blocks(conv_in(x))))))`, producing `2·latent_channels` moments.
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// 3×3 conv `in_channels → block_out_channels[0]`.
    pub conv_in: Conv2d<B>,
    /// One [`DownEncoderBlock2d`] per level.
    pub down_blocks: Vec<DownEncoderBlock2d<B>>,
    /// Mid block at `block_out_channels[-1]`.
    pub mid_block: UNetMidBlock2d<B>,
    /// Final GroupNorm.
    pub conv_norm_out: GroupNorm<B>,
    /// 3×3 conv `block_out_channels[-1] → 2·latent_channels`.
    pub conv_out: Conv2d<B>,
}

impl<B: Backend> Encoder<B> {
    pub(crate) fn new(s: &StackSizes, c_in: usize, c_out: usize, d: &B::Device) -> Self {
        let ch = s.block_out_channels;
        let last = ch[ch.len() - 1];
        let down_blocks = (0..ch.len())
            .map(|i| {
                let prev = ch[i.saturating_sub(1)];
                let down = i + 1 < ch.len();
                DownEncoderBlock2d::new(prev, ch[i], s.layers_per_block, s.groups, down, d)
            })
            .collect();
        Self {
            conv_in: conv_same(c_in, ch[0], 3, d),
            down_blocks,
            mid_block: UNetMidBlock2d::new(last, s.groups, s.attention, d),
            conv_norm_out: group_norm(s.groups, last, d),
            conv_out: conv_same(last, c_out, 3, d),
        }
    }

    /// # Shapes
    /// `x`: `[B, in_channels, H, W]` → `[B, 2·latent_channels, H/f, W/f]`, `f = 2^(levels−1)`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.conv_in.forward(x);
        let x = self.down_blocks.iter().fold(x, |x, b| b.forward(x));
        let x = self.mid_block.forward(x);
        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }
}

/// `conv_out(SiLU(GN(up_blocks(mid(conv_in(z))))))`; up blocks have `layers_per_block + 1`
/// resnets and walk `block_out_channels` in reverse.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// 3×3 conv `latent_channels → block_out_channels[-1]`.
    pub conv_in: Conv2d<B>,
    /// Mid block at `block_out_channels[-1]`.
    pub mid_block: UNetMidBlock2d<B>,
    /// One [`UpDecoderBlock2d`] per level.
    pub up_blocks: Vec<UpDecoderBlock2d<B>>,
    /// Final GroupNorm.
    pub conv_norm_out: GroupNorm<B>,
    /// 3×3 conv `block_out_channels[0] → out_channels`.
    pub conv_out: Conv2d<B>,
}

impl<B: Backend> Decoder<B> {
    pub(crate) fn new(s: &StackSizes, c_in: usize, c_out: usize, d: &B::Device) -> Self {
        let rev: Vec<usize> = s.block_out_channels.iter().rev().copied().collect();
        let up_blocks = (0..rev.len())
            .map(|i| {
                let prev = rev[i.saturating_sub(1)];
                let up = i + 1 < rev.len();
                UpDecoderBlock2d::new(prev, rev[i], s.layers_per_block + 1, s.groups, up, d)
            })
            .collect();
        Self {
            conv_in: conv_same(c_in, rev[0], 3, d),
            mid_block: UNetMidBlock2d::new(rev[0], s.groups, s.attention, d),
            up_blocks,
            conv_norm_out: group_norm(s.groups, rev[rev.len() - 1], d),
            conv_out: conv_same(rev[rev.len() - 1], c_out, 3, d),
        }
    }

    /// # Shapes
    /// `z`: `[B, latent_channels, h, w]` → `[B, out_channels, h·f, w·f]`, `f = 2^(levels−1)`
    pub fn forward(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.mid_block.forward(self.conv_in.forward(z));
        let x = self.up_blocks.iter().fold(x, |x, b| b.forward(x));
        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }
}
