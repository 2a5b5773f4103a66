//! diffusers' `ResnetBlock2D` (without time embedding), `Downsample2D` (asymmetric pad then
//! stride-2 conv) and `Upsample2D` (nearest 2× then conv), as used by the KL-VAE.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions, PadMode};
use burn::tensor::{Tensor, backend::Backend};

/// GroupNorm ε used everywhere in diffusers' VAE (`resnet_eps = 1e-6`).
pub const VAE_NORM_EPS: f64 = 1e-6;

/// `GroupNorm(groups, channels, ε = 1e-6, affine)`.
pub(crate) fn group_norm<B: Backend>(
    groups: usize,
    channels: usize,
    device: &B::Device,
) -> GroupNorm<B> {
    GroupNormConfig::new(groups, channels)
        .with_epsilon(VAE_NORM_EPS)
        .init(device)
}

/// `Conv2d(c_in, c_out, k×k, stride 1, padding k/2)` with bias.
pub(crate) fn conv_same<B: Backend>(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    device: &B::Device,
) -> Conv2d<B> {
    let pad = kernel / 2;
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .init(device)
}

/// Pre-norm residual block: `y = shortcut(x) + conv2(SiLU(GN2(conv1(SiLU(GN1(x))))))`, where
/// `shortcut` is a 1×1 conv when the channel count changes and the identity otherwise
/// (diffusers `ResnetBlock2D` with `temb_channels = None`, `output_scale_factor = 1`, dropout 0).
///
/// Keys: `norm1`, `conv1`, `norm2`, `conv2`, `conv_shortcut`.
#[derive(Module, Debug)]
pub struct ResnetBlock2d<B: Backend> {
    /// GroupNorm over the input channels.
    pub norm1: GroupNorm<B>,
    /// 3×3 conv `c_in → c_out`.
    pub conv1: Conv2d<B>,
    /// GroupNorm over the output channels.
    pub norm2: GroupNorm<B>,
    /// 3×3 conv `c_out → c_out`.
    pub conv2: Conv2d<B>,
    /// 1×1 conv `c_in → c_out`, present iff `c_in != c_out`.
    pub conv_shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> ResnetBlock2d<B> {
    /// Builds the block; sizes are validated by the caller's config (`groups` divides both).
    pub(crate) fn new(c_in: usize, c_out: usize, groups: usize, device: &B::Device) -> Self {
        Self {
            norm1: group_norm(groups, c_in, device),
            conv1: conv_same(c_in, c_out, 3, device),
            norm2: group_norm(groups, c_out, device),
            conv2: conv_same(c_out, c_out, 3, device),
            conv_shortcut: (c_in != c_out).then(|| conv_same(c_in, c_out, 1, device)),
        }
    }

    /// # Shapes
    /// `x`: `[B, c_in, H, W]` → `[B, c_out, H, W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        let skip = match &self.conv_shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        skip + h
    }
}

/// `conv(pad(x, right 1, bottom 1))` with a 3×3 stride-2 conv and no conv padding: diffusers'
/// `Downsample2D(use_conv=True, padding=0)` as built by `DownEncoderBlock2D`.
///
/// Keys: `conv`.
#[derive(Module, Debug)]
pub struct Downsample2d<B: Backend> {
    /// 3×3 stride-2 conv, `channels → channels`.
    pub conv: Conv2d<B>,
}

impl<B: Backend> Downsample2d<B> {
    /// Builds the down-sampler.
    pub(crate) fn new(channels: usize, device: &B::Device) -> Self {
        Self {
            conv: Conv2dConfig::new([channels, channels], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Valid)
                .init(device),
        }
    }

    /// # Shapes
    /// `x`: `[B, C, H, W]` → `[B, C, ⌊H/2⌋, ⌊W/2⌋]` (`⌊(H + 1 − 3)/2⌋ + 1`; 8 → 4, 7 → 3)
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        // (left, right, top, bottom) = (0, 1, 0, 1), as torch's F.pad(x, (0, 1, 0, 1)).
        self.conv
            .forward(x.pad((0, 1, 0, 1), PadMode::Constant(0.0)))
    }
}

/// `conv(nearest_2×(x))` with a 3×3 conv: diffusers' `Upsample2D(use_conv=True)` without
/// `output_size`.
///
/// Keys: `conv`.
#[derive(Module, Debug)]
pub struct Upsample2d<B: Backend> {
    /// 3×3 conv, `channels → channels`.
    pub conv: Conv2d<B>,
}

impl<B: Backend> Upsample2d<B> {
    /// Builds the up-sampler.
    pub(crate) fn new(channels: usize, device: &B::Device) -> Self {
        Self {
            conv: conv_same(channels, channels, 3, device),
        }
    }

    /// # Shapes
    /// `x`: `[B, C, H, W]` → `[B, C, 2H, 2W]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.conv.forward(upsample_nearest2x(x))
    }
}

/// Nearest-neighbour 2× up-sampling, `y[.., i, j] = x[.., ⌊i/2⌋, ⌊j/2⌋]` (torch's
/// `F.interpolate(x, scale_factor=2, mode="nearest")`), as a broadcast and reshape.
///
/// # Shapes
/// `x`: `[B, C, H, W]` → `[B, C, 2H, 2W]`
pub fn upsample_nearest2x<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}

/// Reference twin of [`upsample_nearest2x`] through Burn's `interpolate` (nearest mode).
///
/// # Shapes
/// `x`: `[B, C, H, W]` → `[B, C, 2H, 2W]`
pub fn upsample_nearest2x_reference<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        [2 * h, 2 * w],
        InterpolateOptions::new(InterpolateMode::Nearest),
    )
}
