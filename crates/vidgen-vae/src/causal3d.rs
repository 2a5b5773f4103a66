//! Open-Sora 1.2's video VAE (report sec. 3.1, "video compression network"): a 2D VAE applied
//! per frame (8×8 in space) stacked with a causal temporal autoencoder (4× in time), then a
//! per-channel latent normalisation `z ← (z − shift)/scale`.
//!
//! ```text
//! video [B,3,T,H,W] ─2D encode per frame (×sf)─▶ [B,4,T,H/8,W/8] ─temporal encode─▶ [B,4,⌈T/4⌉,H/8,W/8] ─(z−shift)/scale─▶ latent
//! latent ─z·scale+shift─▶ temporal decode(T) ─▶ [B,4,T,H/8,W/8] ─2D decode per frame (÷sf)─▶ video
//! ```
//!
//! The video VAE is generic over [`SpatialAutoencoder`], implemented for the crate's
//! [`AutoencoderKl`](crate::kl::AutoencoderKl) and for [`PixelShuffleAutoencoder`], a tiny
//! parameter-light stand-in for tests, benches and examples. Streaming and tiling live in
//! [`crate::streaming`]. See `docs/vae.md`.

mod autoencoder;
mod conv;
mod kl_impl;
mod pixel_shuffle;
mod temporal;
mod video;

pub use autoencoder::{TemporalAutoencoder, TemporalPosterior};
pub use conv::{
    Activation, CausalConv3d, CausalConv3dConfig, ConvSlot, ResBlock, TemporalNorm, group_norm_5d,
};
pub use pixel_shuffle::{PixelShuffleAutoencoder, PixelShuffleAutoencoderConfig};
pub use temporal::{TemporalAutoencoderConfig, TemporalDecoder, TemporalEncoder, depth_to_time};
pub use video::{VideoAutoencoder, VideoAutoencoderConfig};

pub(crate) use conv::ConvRun;

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

/// A per-frame (image) autoencoder the video VAE stacks its temporal autoencoder on (a Burn
/// module, so that the whole video VAE is one).
pub trait SpatialAutoencoder<B: Backend>: Module<B> {
    /// Posterior mean of the image latent.
    ///
    /// # Shapes
    /// `x`: `[N, 3, H, W]` → `[N, latent_channels, H/f, W/f]`
    fn encode_mean(&self, x: Tensor<B, 4>) -> Tensor<B, 4>;

    /// Posterior sample `mean + std·noise`, `noise` standard normal of the latent's shape.
    ///
    /// # Shapes
    /// `x`: `[N, 3, H, W]`, `noise`: `[N, latent_channels, H/f, W/f]` → like `noise`
    fn encode_sample(&self, x: Tensor<B, 4>, noise: Tensor<B, 4>) -> Tensor<B, 4>;

    /// Decodes image latents.
    ///
    /// # Shapes
    /// `z`: `[N, latent_channels, h, w]` → `[N, 3, h·f, w·f]`
    fn decode(&self, z: Tensor<B, 4>) -> Tensor<B, 4>;

    /// Spatial factor `f` (8 for SD/SDXL VAEs).
    fn spatial_factor(&self) -> usize;

    /// Latent channels (4 for SD/SDXL VAEs).
    fn latent_channels(&self) -> usize;
}
