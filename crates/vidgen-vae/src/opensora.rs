//! Open-Sora 1.2's published video VAE (`hpcai-tech/OpenSora-VAE-v1.2`,
//! `VideoAutoencoderPipeline`) as one module: config JSON, checkpoint loading, seeded sampling
//! and a file-to-file runner.
//!
//! ```text
//! x [B,3,T,H,W] ─2D VAE per frame (mean, ×0.18215)─▶ [B,4,T,H/8,W/8]
//!   ─temporal VAE per 17-frame piece (each front-padded to a multiple of 4; mean)─▶ [B,4,T',H/8,W/8]
//!   ─(z − shift)/scale─▶ z
//! z ─z·scale + shift─▶ temporal decode per 5-latent-frame piece (min(17, frames left) frames)
//!   ─2D decode per frame (÷0.18215)─▶ x_rec [B,3,T,H,W]
//! ```
//!
//! `T' = ⌊T/17⌋·5 + ⌈(T mod 17)/4⌉`. Upstream samples both posteriors when encoding;
//! [`OpenSoraVae::encode`] takes the posterior means, [`OpenSoraVae::encode_with_noise`] and
//! [`OpenSoraVae::encode_seeded`] sample. The module is [`VideoAutoencoder`] over the crate's
//! [`AutoencoderKl`]; its tree mirrors the checkpoint's (`spatial` = `spatial_vae.module`,
//! `temporal` = `temporal_vae`, `scale`, `shift`), see [`OPEN_SORA_VAE_KEY_MAP`].
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::{Distribution, Tensor};
//! use vidgen_vae::kl::AutoencoderKlConfig;
//! use vidgen_vae::opensora::OpenSoraVaeConfig;
//! use vidgen_vae::causal3d::TemporalAutoencoderConfig;
//!
//! let device = Default::default();
//! let vae = OpenSoraVaeConfig::new()
//!     .with_vae_2d(
//!         AutoencoderKlConfig::new()
//!             .with_down_block_types(vec!["DownEncoderBlock2D".into(); 2])
//!             .with_up_block_types(vec!["UpDecoderBlock2D".into(); 2])
//!             .with_block_out_channels(vec![4, 8])
//!             .with_norm_num_groups(2),
//!     )
//!     .with_vae_temporal(
//!         TemporalAutoencoderConfig::new()
//!             .with_filters(4)
//!             .with_num_res_blocks(1)
//!             .with_num_groups(2),
//!     )
//!     .init::<Flex>(&device)?;
//! let x = Tensor::<Flex, 5>::random([1, 3, 20, 4, 4], Distribution::Uniform(-1.0, 1.0), &device);
//! let z = vae.encode(x); // pieces of 17 + 3 frames → 5 + 1 latent frames
//! assert_eq!(z.dims(), [1, 4, 6, 2, 2]);
//! assert_eq!(vae.decode(z, 20).dims(), [1, 3, 20, 4, 4]);
//! # Ok::<(), vidgen_vae::VaeError>(())
//! ```

mod config;
mod files;
mod load;
mod noise;

pub use config::{
    OPEN_SORA_SPATIAL_SCALING, OpenSoraVaeConfig, SDXL_VAE_REPOS, sdxl_vae_config,
    vae_temporal_config, vae_temporal_sd_config,
};
pub use files::{OpenSoraVaeOutput, read_video_input, run_files, write_f32_safetensors};
pub use load::{OPEN_SORA_VAE_KEY_MAP, load_open_sora_vae};
pub use noise::normal_noise;

use crate::causal3d::{SpatialAutoencoder, VideoAutoencoder};
use crate::error::{VaeError, divisible};
use crate::kl::AutoencoderKl;
use burn::tensor::{Tensor, backend::Backend};

/// Open-Sora 1.2's video VAE: the video VAE over diffusers' `AutoencoderKL`.
pub type OpenSoraVae<B> = VideoAutoencoder<B, AutoencoderKl<B>>;

impl<B: Backend, S: SpatialAutoencoder<B>> VideoAutoencoder<B, S> {
    /// Sampling encode with noise drawn from `seed` by [`normal_noise`] (vidgen's own generator,
    /// independent of the backend; not torch's): first the 2D posteriors' noise
    /// `[B, C, T, H/f, W/f]`, then the temporal posteriors' `[B, E, T', H/f, W/f]`.
    ///
    /// # Shapes
    /// `x`: `[B, 3, T, H, W]` → `[B, E, T', H/f, W/f]`
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::NotDivisible`) if `H` or `W` is not a multiple of the spatial factor `f`.
    pub fn encode_seeded(&self, x: Tensor<B, 5>, seed: u64) -> Result<Tensor<B, 5>, VaeError> {
        let [b, _, t, h, w] = x.dims();
        let f = self.spatial_factor();
        divisible("input height", h, f, Some("spatial factor"))?;
        divisible("input width", w, f, Some("spatial factor"))?;
        let (c, e) = (self.spatial.latent_channels(), self.shift.dims()[1]);
        let device = x.device();
        let sizes = [b * c * t, b * e * self.latent_frames(t)].map(|n| n * (h / f) * (w / f));
        let mut values = normal_noise(seed, sizes[0] + sizes[1]);
        let temporal = values.split_off(sizes[0]);
        let tensor = |v: Vec<f32>, shape: [usize; 5]| {
            Tensor::<B, 5>::from_data(burn::tensor::TensorData::new(v, shape), &device)
        };
        let spatial_noise = tensor(values, [b, c, t, h / f, w / f]);
        let temporal_noise = tensor(temporal, [b, e, self.latent_frames(t), h / f, w / f]);
        Ok(self.encode_with_noise(x, spatial_noise, temporal_noise))
    }
}
