//! Open-Sora's `CausalConv3d` and `ResBlock` (`opensora/models/vae/vae_temporal.py`).
//!
//! A causal conv pads time only at the front with `time_pad = (k_t − 1) + (1 − stride)` zero
//! frames (Open-Sora's `pad_mode="constant"`), pads space symmetrically with zeros
//! (`k_h/2`, `k_w/2`), then convolves without padding. Burn's `PaddingConfig3d::Explicit` is
//! symmetric, so the spatial padding goes to the conv and the front time padding is ours.

use crate::error::ConfigError;
use crate::error::{VaeError, positive};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig3d};
use burn::tensor::activation::{relu, silu};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// Which frames a `GroupNorm` of the temporal autoencoder takes its statistics over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TemporalNorm {
    /// Open-Sora 1.2 (`nn.GroupNorm` on `[B, C, T, H, W]`): mean and variance over
    /// `C/G × T × H × W`, i.e. over the whole clip. Matches the released checkpoint, but a frame's
    /// output depends on later frames, so the model is not strictly causal and cannot stream.
    #[default]
    Clip,
    /// Statistics over `C/G × H × W` of each frame separately: strictly causal, streamable.
    /// Not what the Open-Sora checkpoint was trained with.
    PerFrame,
}

/// Activation of the temporal autoencoder (Open-Sora's `activation_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Activation {
    /// `"swish"`: `x·σ(x)`.
    #[default]
    Swish,
    /// `"relu"`.
    Relu,
}

impl Activation {
    /// Applies the activation element-wise.
    pub fn apply<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::Swish => silu(x),
            Activation::Relu => relu(x),
        }
    }
}

/// `GroupNorm` on `[B, C, T, H, W]` with statistics per clip or per frame.
///
/// # Shapes
/// `x`: `[B, C, T, H, W]` → same.
pub fn group_norm_5d<B: Backend>(
    norm: &GroupNorm<B>,
    mode: TemporalNorm,
    x: Tensor<B, 5>,
) -> Tensor<B, 5> {
    match mode {
        TemporalNorm::Clip => norm.forward(x),
        TemporalNorm::PerFrame => {
            let [b, c, t, h, w] = x.dims();
            let frames = x.permute([0, 2, 1, 3, 4]).reshape([b * t, c, h, w]);
            norm.forward(frames)
                .reshape([b, t, c, h, w])
                .permute([0, 2, 1, 3, 4])
        }
    }
}

/// Configuration of [`CausalConv3d`]; the checkpoint key of the inner conv is `conv`.
#[derive(Config, Debug)]
pub struct CausalConv3dConfig {
    /// Input channels (`chan_in`).
    pub chan_in: usize,
    /// Output channels (`chan_out`).
    pub chan_out: usize,
    /// `[k_t, k_h, k_w]`; `k_h`, `k_w` odd.
    pub kernel_size: [usize; 3],
    /// Temporal stride (space is never strided), at most `k_t`.
    #[config(default = 1)]
    pub stride: usize,
    /// Bias on the conv (PyTorch default `true`).
    #[config(default = true)]
    pub bias: bool,
}

impl CausalConv3dConfig {
    /// Builds the conv.
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::Zero`) for a zero channel count, kernel size or stride;
    /// [`VaeError::Config`] (`ConfigError::Unsupported`) for an even spatial kernel or `stride > k_t`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<CausalConv3d<B>, VaeError> {
        positive("chan_in", self.chan_in)?;
        positive("chan_out", self.chan_out)?;
        positive("stride", self.stride)?;
        let [kt, kh, kw] = self.kernel_size;
        for k in self.kernel_size {
            positive("kernel_size", k)?;
        }
        if kh.is_multiple_of(2) || kw.is_multiple_of(2) {
            return Err(VaeError::Config(ConfigError::Unsupported {
                field: "kernel_size",
                value: format!("{:?}", self.kernel_size),
                reason: "spatial kernel sizes must be odd (same padding)",
            }));
        }
        if self.stride > kt {
            return Err(VaeError::Config(ConfigError::Unsupported {
                field: "stride",
                value: self.stride.to_string(),
                reason: "a temporal stride above k_t gives a negative causal padding",
            }));
        }
        let conv = Conv3dConfig::new([self.chan_in, self.chan_out], self.kernel_size)
            .with_stride([self.stride, 1, 1])
            .with_padding(PaddingConfig3d::Explicit(0, kh / 2, kw / 2))
            .with_bias(self.bias)
            .init(device);
        Ok(CausalConv3d {
            conv,
            time_kernel: kt,
            time_stride: self.stride,
            time_pad: kt - self.stride,
        })
    }
}

/// Per-conv streaming state: the input frames not yet consumed by an output, plus whether the
/// stream has started (before that, the conv's `time_pad` zero frames are implied).
#[derive(Debug, Clone)]
pub struct ConvSlot<B: Backend> {
    /// Whether this conv has seen input (the zero front padding is then already inside `pending`).
    pub started: bool,
    /// Input frames carried to the next chunk: `[B, C_in, n, H, W]` with `n < k_t` (the last
    /// `k_t − stride` frames for chunks aligned to the stride), or `None` for none.
    pub pending: Option<Tensor<B, 5>>,
}

impl<B: Backend> Default for ConvSlot<B> {
    fn default() -> Self {
        Self {
            started: false,
            pending: None,
        }
    }
}

/// Causal 3D convolution: `y = conv_valid(pad_front_t(pad_hw(x)))`, output frame `t` sees input
/// frames `[s·t + s − k_t, s·t + s − 1]` (zeros before frame 0).
#[derive(Module, Debug)]
pub struct CausalConv3d<B: Backend> {
    /// The convolution (`conv.weight`, `conv.bias`), temporal padding 0, spatial same padding.
    pub conv: Conv3d<B>,
    /// `k_t`.
    pub time_kernel: usize,
    /// Temporal stride `s`.
    pub time_stride: usize,
    /// Zero frames padded in front, `k_t − s`.
    pub time_pad: usize,
}

impl<B: Backend> CausalConv3d<B> {
    /// Whole-clip forward (the reference twin of [`Self::forward_cached`]).
    ///
    /// # Shapes
    /// `x`: `[B, C_in, T, H, W]` → `[B, C_out, ⌊(T + time_pad − k_t)/s⌋ + 1, H, W]`
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = if self.time_pad > 0 {
            let [b, c, _, h, w] = x.dims();
            let zeros = Tensor::zeros([b, c, self.time_pad, h, w], &x.device());
            Tensor::cat(vec![zeros, x], 2)
        } else {
            x
        };
        self.conv.forward(x)
    }

    /// Streaming forward: prepends the carried frames of `slot`, emits every output whose window
    /// is complete, and carries the rest. Feeding a clip in chunks of any sizes gives the frames
    /// of [`Self::forward`] on the whole clip, in order.
    ///
    /// # Shapes
    /// `x`: `[B, C_in, n, H, W]` → `Some([B, C_out, n_out, H, W])`, or `None` when no output
    /// window is complete yet.
    pub fn forward_cached(&self, x: Tensor<B, 5>, slot: &mut ConvSlot<B>) -> Option<Tensor<B, 5>> {
        let [b, c, _, h, w] = x.dims();
        let mut parts = Vec::with_capacity(2);
        if !slot.started {
            slot.started = true;
            if self.time_pad > 0 {
                parts.push(Tensor::zeros([b, c, self.time_pad, h, w], &x.device()));
            }
        }
        if let Some(p) = slot.pending.take() {
            parts.push(p);
        }
        parts.push(x);
        let buf = Tensor::cat(parts, 2);
        let len = buf.dims()[2];
        let (k, s) = (self.time_kernel, self.time_stride);
        if len < k {
            slot.pending = Some(buf);
            return None;
        }
        let n_out = (len - k) / s + 1;
        let consumed = n_out * s;
        slot.pending = (consumed < len).then(|| buf.clone().narrow(2, consumed, len - consumed));
        Some(self.conv.forward(buf.narrow(2, 0, (n_out - 1) * s + k)))
    }
}

/// Open-Sora's `ResBlock`: `x' = conv2(act(norm2(conv1(act(norm1(x)))))) + shortcut(x)`, convs
/// 3×3×3 causal without bias, shortcut a 1×1×1 conv (`conv3`) when the width changes.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    /// `GroupNorm(num_groups, in_channels)`.
    pub norm1: GroupNorm<B>,
    /// `in → filters`, 3×3×3.
    pub conv1: CausalConv3d<B>,
    /// `GroupNorm(num_groups, filters)`.
    pub norm2: GroupNorm<B>,
    /// `filters → filters`, 3×3×3.
    pub conv2: CausalConv3d<B>,
    /// `in → filters`, 1×1×1, present when the widths differ.
    pub conv3: Option<CausalConv3d<B>>,
    /// Statistics of the norms.
    #[module(skip)]
    pub temporal_norm: TemporalNorm,
    /// Activation.
    #[module(skip)]
    pub activation: Activation,
}

/// Builds a [`ResBlock`]; the caller has validated the sizes.
pub(crate) fn res_block<B: Backend>(
    c_in: usize,
    c_out: usize,
    groups: usize,
    eps: f64,
    temporal_norm: TemporalNorm,
    activation: Activation,
    device: &B::Device,
) -> Result<ResBlock<B>, VaeError> {
    let conv = |i, o, k| {
        CausalConv3dConfig::new(i, o, [k, k, k])
            .with_bias(false)
            .init(device)
    };
    Ok(ResBlock {
        norm1: GroupNormConfig::new(groups, c_in)
            .with_epsilon(eps)
            .init(device),
        conv1: conv(c_in, c_out, 3)?,
        norm2: GroupNormConfig::new(groups, c_out)
            .with_epsilon(eps)
            .init(device),
        conv2: conv(c_out, c_out, 3)?,
        conv3: if c_in != c_out {
            Some(conv(c_in, c_out, 1)?)
        } else {
            None
        },
        temporal_norm,
        activation,
    })
}

/// Runs one causal conv either on the whole clip or through a streaming slot.
pub(crate) enum ConvRun<'a, B: Backend> {
    /// Whole clip, zero front padding.
    Full,
    /// Streaming: the next slot of the cache is taken by each conv in traversal order.
    Stream(&'a mut [ConvSlot<B>], usize),
}

impl<B: Backend> ConvRun<'_, B> {
    /// Applies `conv` to `x` in this mode.
    pub(crate) fn conv(&mut self, conv: &CausalConv3d<B>, x: Tensor<B, 5>) -> Option<Tensor<B, 5>> {
        match self {
            ConvRun::Full => Some(conv.forward(x)),
            ConvRun::Stream(slots, next) => {
                let n = slots.len();
                let slot = slots.get_mut(*next).unwrap_or_else(|| {
                    panic!("causal cache has {n} slots, conv #{next} needs one more")
                });
                *next += 1;
                conv.forward_cached(x, slot)
            }
        }
    }
}

impl<B: Backend> ResBlock<B> {
    /// Number of causal convs (cache slots) in this block.
    pub(crate) fn n_convs(&self) -> usize {
        2 + usize::from(self.conv3.is_some())
    }

    /// Whole-clip forward.
    ///
    /// # Shapes
    /// `x`: `[B, C_in, T, H, W]` → `[B, filters, T, H, W]`
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.run(x, &mut ConvRun::Full)
            .expect("stride-1 convs emit every frame")
    }

    /// Forward in a given mode. Every conv has stride 1, so with a started cache each input
    /// frame yields one output frame; the first chunk is never short of frames.
    pub(crate) fn run(&self, x: Tensor<B, 5>, run: &mut ConvRun<'_, B>) -> Option<Tensor<B, 5>> {
        let act = |t| self.activation.apply(t);
        let h = act(group_norm_5d(&self.norm1, self.temporal_norm, x.clone()));
        let h = run.conv(&self.conv1, h)?;
        let h = act(group_norm_5d(&self.norm2, self.temporal_norm, h));
        let h = run.conv(&self.conv2, h)?;
        let residual = match &self.conv3 {
            Some(c) => run.conv(c, x)?,
            None => x,
        };
        Some(h + residual)
    }
}
