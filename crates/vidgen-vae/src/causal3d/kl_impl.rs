//! [`SpatialAutoencoder`] for the crate's 2D KL-VAE. Latents are returned unscaled; the video
//! VAE applies Open-Sora's `scaling_factor` (0.18215) itself.

use super::SpatialAutoencoder;
use crate::kl::AutoencoderKl;
use burn::tensor::{Tensor, backend::Backend};

impl<B: Backend> SpatialAutoencoder<B> for AutoencoderKl<B> {
    fn encode_mean(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.encode(x).mean
    }

    fn encode_sample(&self, x: Tensor<B, 4>, noise: Tensor<B, 4>) -> Tensor<B, 4> {
        self.encode(x).sample(noise)
    }

    fn decode(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        AutoencoderKl::decode(self, z)
    }

    fn spatial_factor(&self) -> usize {
        1 << self.encoder.down_blocks.len().saturating_sub(1)
    }

    fn latent_channels(&self) -> usize {
        self.latent_channels
    }
}
