//! A tiny spatial autoencoder for tests, benches and examples: space-to-depth by `f` and a 1×1
//! conv to the latent on the way in; a `k×k` conv back to `3·f²` channels and depth-to-space on
//! the way out. Its decoder's receptive field is `k` latent pixels, so tiled decoding with an
//! overlap of at least `k − 1` latent pixels is exact up to the blending.

use super::SpatialAutoencoder;
use crate::error::ConfigError;
use crate::error::{VaeError, positive};
use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Tensor, backend::Backend};

/// Configuration of [`PixelShuffleAutoencoder`].
#[derive(Config, Debug)]
pub struct PixelShuffleAutoencoderConfig {
    /// Spatial factor `f`.
    #[config(default = 8)]
    pub spatial_factor: usize,
    /// Latent channels.
    #[config(default = 4)]
    pub latent_channels: usize,
    /// Odd kernel size `k` of the decoder conv (1 = purely pixel-local).
    #[config(default = 3)]
    pub decoder_kernel: usize,
}

impl PixelShuffleAutoencoderConfig {
    /// Builds it with random weights.
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::Zero`) for a zero field; [`VaeError::Config`] (`ConfigError::Unsupported`) for an even `decoder_kernel`.
    pub fn init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<PixelShuffleAutoencoder<B>, VaeError> {
        positive("spatial_factor", self.spatial_factor)?;
        vidgen_nn::error::width("latent_channels", self.latent_channels)?;
        positive("decoder_kernel", self.decoder_kernel)?;
        if self.decoder_kernel.is_multiple_of(2) {
            return Err(VaeError::Config(ConfigError::Unsupported {
                field: "decoder_kernel",
                value: self.decoder_kernel.to_string(),
                reason: "must be odd (same padding)",
            }));
        }
        let (f, c, k) = (
            self.spatial_factor,
            self.latent_channels,
            self.decoder_kernel,
        );
        Ok(PixelShuffleAutoencoder {
            encoder: Conv2dConfig::new([3 * f * f, c], [1, 1]).init(device),
            decoder: Conv2dConfig::new([c, 3 * f * f], [k, k])
                .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
                .init(device),
            factor: f,
            latent_channels: c,
        })
    }
}

/// See the module docs: `decode(z) = depth_to_space(conv_k(z))`, `encode(x) = conv_1(space_to_depth(x))`.
#[derive(Module, Debug)]
pub struct PixelShuffleAutoencoder<B: Backend> {
    /// `3f² → C`, 1×1.
    pub encoder: Conv2d<B>,
    /// `C → 3f²`, `k×k`.
    pub decoder: Conv2d<B>,
    /// `f`.
    pub factor: usize,
    /// `C`.
    pub latent_channels: usize,
}

impl<B: Backend> SpatialAutoencoder<B> for PixelShuffleAutoencoder<B> {
    fn encode_mean(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let f = self.factor;
        let (hl, wl) = (h / f, w / f);
        let x = x
            .reshape([n * c, hl, f, wl, f])
            .permute([0, 2, 4, 1, 3])
            .reshape([n, c * f * f, hl, wl]);
        self.encoder.forward(x)
    }

    /// The posterior is a point mass plus `0.1·noise` (a fixed small std).
    fn encode_sample(&self, x: Tensor<B, 4>, noise: Tensor<B, 4>) -> Tensor<B, 4> {
        self.encode_mean(x) + noise * 0.1
    }

    fn decode(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, _, h, w] = z.dims();
        let f = self.factor;
        self.decoder
            .forward(z)
            .reshape([n * 3, f, f, h, w])
            .permute([0, 3, 1, 4, 2])
            .reshape([n, 3, h * f, w * f])
    }

    fn spatial_factor(&self) -> usize {
        self.factor
    }

    fn latent_channels(&self) -> usize {
        self.latent_channels
    }
}
