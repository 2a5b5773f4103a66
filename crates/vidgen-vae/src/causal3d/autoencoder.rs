//! `VAE_Temporal`: encoder → `quant_conv` → diagonal Gaussian; `post_quant_conv` → decoder.

use super::conv::{CausalConv3d, ConvRun, TemporalNorm};
use super::temporal::{TemporalDecoder, TemporalEncoder};
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

/// Open-Sora's `DiagonalGaussianDistribution` over the temporal latent: `moments` split in
/// channels into `mean` and `logvar`, `logvar` clamped to `[−30, 20]`.
#[derive(Debug, Clone)]
pub struct TemporalPosterior<B: Backend> {
    /// `[B, embed_dim, T', H, W]`.
    pub mean: Tensor<B, 5>,
    /// Clamped log-variance, same shape.
    pub logvar: Tensor<B, 5>,
}

impl<B: Backend> TemporalPosterior<B> {
    /// Splits `moments` `[B, 2E, T', H, W]` into mean and clamped log-variance.
    pub fn from_moments(moments: Tensor<B, 5>) -> Self {
        let [mean, logvar] = moments
            .chunk(2, 1)
            .try_into()
            .unwrap_or_else(|v: Vec<_>| panic!("moments split into {} parts, not 2", v.len()));
        Self {
            mean,
            logvar: logvar.clamp(-30.0, 20.0),
        }
    }

    /// The mode (= mean).
    pub fn mode(&self) -> Tensor<B, 5> {
        self.mean.clone()
    }

    /// `mean + exp(logvar/2)·noise` with caller-drawn standard-normal `noise` of the mean's shape.
    pub fn sample(&self, noise: Tensor<B, 5>) -> Tensor<B, 5> {
        self.mean.clone() + (self.logvar.clone() * 0.5).exp() * noise
    }
}

/// Open-Sora 1.2's temporal autoencoder (`VAE_Temporal`, report sec. 3.1). Keys as the checkpoint:
/// `encoder.*`, `quant_conv.conv.*`, `post_quant_conv.conv.*`, `decoder.*`.
///
/// Time: a clip of `T` frames is padded in front with `p = (f − T mod f) mod f` zero frames
/// (`f` = [`Self::temporal_factor`]), encoded to `T' = (T + p)/f = ⌈T/f⌉` latent frames, decoded to
/// `f·T'` frames of which the first `p` are dropped. For `T ≡ 1 (mod f)` (17 frames → 5),
/// `p = f − 1` and the first latent frame encodes frame 0 alone: an image is a 1-frame video.
#[derive(Module, Debug)]
pub struct TemporalAutoencoder<B: Backend> {
    /// Encoder.
    pub encoder: TemporalEncoder<B>,
    /// `2·latent_embed_dim → 2·embed_dim`, 1×1×1.
    pub quant_conv: CausalConv3d<B>,
    /// `embed_dim → latent_embed_dim`, 1×1×1.
    pub post_quant_conv: CausalConv3d<B>,
    /// Decoder.
    pub decoder: TemporalDecoder<B>,
    /// `f = 2^(number of temporal downsamplings)`.
    pub temporal_factor: usize,
    /// Norm statistics (decides whether streaming is possible).
    #[module(skip)]
    pub temporal_norm: TemporalNorm,
}

impl<B: Backend> TemporalAutoencoder<B> {
    /// Temporal compression `f` (4 for Open-Sora 1.2).
    pub fn temporal_factor(&self) -> usize {
        self.temporal_factor
    }

    /// Front padding `(f − T mod f) mod f` for a clip of `num_frames`.
    pub fn time_padding(&self, num_frames: usize) -> usize {
        (self.temporal_factor - num_frames % self.temporal_factor) % self.temporal_factor
    }

    /// Latent frames `⌈T/f⌉` for a clip of `num_frames`.
    pub fn latent_frames(&self, num_frames: usize) -> usize {
        num_frames.div_ceil(self.temporal_factor)
    }

    /// Encodes a whole clip (Open-Sora's `VAE_Temporal.encode`).
    ///
    /// # Shapes
    /// `x`: `[B, in_out_channels, T, H, W]` → posterior over `[B, embed_dim, ⌈T/f⌉, H, W]`
    pub fn encode(&self, x: Tensor<B, 5>) -> TemporalPosterior<B> {
        let [b, c, t, h, w] = x.dims();
        let pad = self.time_padding(t);
        let x = if pad > 0 {
            Tensor::cat(vec![Tensor::zeros([b, c, pad, h, w], &x.device()), x], 2)
        } else {
            x
        };
        let moments = self.encoder.run(x, &mut ConvRun::Full).expect("whole clip");
        TemporalPosterior::from_moments(self.quant_conv.forward(moments))
    }

    /// Decodes a whole latent clip (Open-Sora's `VAE_Temporal.decode(z, num_frames)`).
    ///
    /// # Shapes
    /// `z`: `[B, embed_dim, T', H, W]` → `[B, in_out_channels, num_frames, H, W]`
    ///
    /// # Panics
    /// If `T' ≠ ⌈num_frames/f⌉`.
    pub fn decode(&self, z: Tensor<B, 5>, num_frames: usize) -> Tensor<B, 5> {
        let t_lat = z.dims()[2];
        assert_eq!(
            t_lat,
            self.latent_frames(num_frames),
            "{t_lat} latent frames cannot decode to {num_frames} frames (factor {})",
            self.temporal_factor
        );
        let z = self.post_quant_conv.forward(z);
        let x = self.decoder.run(z, &mut ConvRun::Full).expect("whole clip");
        let pad = self.time_padding(num_frames);
        x.narrow(2, pad, num_frames)
    }

    /// Encode then decode with the posterior mode.
    ///
    /// # Shapes
    /// `x`: `[B, in_out_channels, T, H, W]` → same
    pub fn reconstruct(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let t = x.dims()[2];
        self.decode(self.encode(x).mode(), t)
    }
}
