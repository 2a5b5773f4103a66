//! Open-Sora 1.2's `VideoAutoencoderPipeline`: 2D VAE per frame, temporal autoencoder, and the
//! per-channel normalisation `(z − shift)/scale`.

use super::{SpatialAutoencoder, TemporalAutoencoder, TemporalAutoencoderConfig};
use crate::error::{VaeError, positive, positive_f64, same_size};
use burn::config::Config;
use burn::tensor::{Tensor, TensorData, backend::Backend};

/// Configuration of [`VideoAutoencoder`]; defaults are `OpenSoraVAE_V1_2`.
#[derive(Config, Debug)]
pub struct VideoAutoencoderConfig {
    /// The temporal autoencoder.
    #[config(default = "TemporalAutoencoderConfig::new()")]
    pub temporal: TemporalAutoencoderConfig,
    /// Per-channel latent shift (one per `embed_dim` channel).
    #[config(default = "vec![-0.10, 0.34, 0.27, 0.98]")]
    pub shift: Vec<f64>,
    /// Per-channel latent scale, all `> 0`.
    #[config(default = "vec![3.85, 2.32, 2.33, 3.06]")]
    pub scale: Vec<f64>,
    /// The 2D VAE's latent scaling (`VideoAutoencoderKL` multiplies by 0.18215 after encoding).
    #[config(default = 0.18215)]
    pub spatial_scaling_factor: f64,
    /// Frames per 2D VAE call (`micro_batch_size`; `None` = all frames at once). Exact: the 2D VAE
    /// is per frame.
    #[config(default = "Some(4)")]
    pub micro_batch_size: Option<usize>,
}

impl VideoAutoencoderConfig {
    /// Builds the video VAE around `spatial`.
    ///
    /// # Errors
    /// Those of [`TemporalAutoencoderConfig::init`]; [`VaeError::ShapeMismatch`] if `shift` or
    /// `scale` do not have `embed_dim` entries or the spatial latent channels differ from
    /// `temporal.in_out_channels`; [`VaeError::OutOfDomain`] for a `scale` entry or
    /// `spatial_scaling_factor` `<= 0`; [`VaeError::Zero`] for `micro_batch_size = Some(0)`.
    pub fn init<B: Backend, S: SpatialAutoencoder<B>>(
        &self,
        spatial: S,
        device: &B::Device,
    ) -> Result<VideoAutoencoder<B, S>, VaeError> {
        let e = self.temporal.embed_dim;
        same_size("`shift` length (temporal.embed_dim)", e, self.shift.len())?;
        same_size("`scale` length (temporal.embed_dim)", e, self.scale.len())?;
        for &s in &self.scale {
            positive_f64("scale", s)?;
        }
        positive_f64("spatial_scaling_factor", self.spatial_scaling_factor)?;
        if let Some(m) = self.micro_batch_size {
            positive("micro_batch_size", m)?;
        }
        same_size(
            "spatial latent channels (temporal.in_out_channels)",
            self.temporal.in_out_channels,
            spatial.latent_channels(),
        )?;
        let channel = |v: &[f64]| {
            let data = TensorData::new(v.iter().map(|&x| x as f32).collect(), [1, e, 1, 1, 1]);
            Tensor::<B, 5>::from_data(data, device)
        };
        Ok(VideoAutoencoder {
            temporal: self.temporal.init(device)?,
            spatial,
            shift: channel(&self.shift),
            scale: channel(&self.scale),
            spatial_scaling_factor: self.spatial_scaling_factor,
            micro_batch_size: self.micro_batch_size,
        })
    }
}

/// The video VAE (Open-Sora 1.2 report sec. 3.1). Not a Burn module itself: load weights into
/// `spatial` and `temporal` separately (Open-Sora keys `spatial_vae.module.*`, `temporal_vae.*`).
#[derive(Debug, Clone)]
pub struct VideoAutoencoder<B: Backend, S> {
    /// Per-frame 2D autoencoder.
    pub spatial: S,
    /// Causal temporal autoencoder.
    pub temporal: TemporalAutoencoder<B>,
    /// `[1, E, 1, 1, 1]`.
    pub shift: Tensor<B, 5>,
    /// `[1, E, 1, 1, 1]`.
    pub scale: Tensor<B, 5>,
    /// 2D latent scaling.
    pub spatial_scaling_factor: f64,
    /// Frames per 2D VAE call.
    pub micro_batch_size: Option<usize>,
}

/// `[B, C, T, H, W] ↔ [B·T, C, H, W]`.
fn to_frames<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 4> {
    let [b, c, t, h, w] = x.dims();
    x.swap_dims(1, 2).reshape([b * t, c, h, w])
}

fn from_frames<B: Backend>(x: Tensor<B, 4>, b: usize) -> Tensor<B, 5> {
    let [bt, c, h, w] = x.dims();
    x.reshape([b, bt / b, c, h, w]).swap_dims(1, 2)
}

impl<B: Backend, S: SpatialAutoencoder<B>> VideoAutoencoder<B, S> {
    /// Temporal compression (4): `T' = ⌈T/4⌉`.
    pub fn temporal_factor(&self) -> usize {
        self.temporal.temporal_factor()
    }

    /// Spatial compression of the 2D VAE (8).
    pub fn spatial_factor(&self) -> usize {
        self.spatial.spatial_factor()
    }

    /// Always `true`: for `T ≡ 1 (mod f)` the first latent frame encodes frame 0 alone, so
    /// `T = 1 + f·(T' − 1)` and an image is a 1-frame video.
    pub fn first_frame_kept(&self) -> bool {
        true
    }

    /// Latent frames for `num_frames` video frames, `⌈T/f⌉`.
    pub fn latent_frames(&self, num_frames: usize) -> usize {
        self.temporal.latent_frames(num_frames)
    }

    /// Applies `f` to micro-batches of frames and concatenates.
    fn per_frame(&self, x: Tensor<B, 4>, f: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>) -> Tensor<B, 4> {
        let n = x.dims()[0];
        let step = self.micro_batch_size.unwrap_or(n).min(n);
        if step == n {
            return f(x);
        }
        let parts = (0..n)
            .step_by(step)
            .map(|i| f(x.clone().narrow(0, i, step.min(n - i))))
            .collect();
        Tensor::cat(parts, 0)
    }

    /// 2D encode of every frame (posterior mean), times `spatial_scaling_factor`.
    ///
    /// # Shapes
    /// `x`: `[B, 3, T, H, W]` → `[B, C, T, H/f, W/f]`
    pub fn spatial_encode(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let b = x.dims()[0];
        let z = self.per_frame(to_frames(x), |f| self.spatial.encode_mean(f));
        from_frames(z, b) * self.spatial_scaling_factor
    }

    /// 2D decode of every frame after dividing by `spatial_scaling_factor`.
    ///
    /// # Shapes
    /// `z`: `[B, C, T, h, w]` → `[B, 3, T, h·f, w·f]`
    pub fn spatial_decode(&self, z: Tensor<B, 5>) -> Tensor<B, 5> {
        let b = z.dims()[0];
        let z = to_frames(z) / self.spatial_scaling_factor;
        from_frames(self.per_frame(z, |f| self.spatial.decode(f)), b)
    }

    /// `(z − shift)/scale`.
    pub fn normalize(&self, z: Tensor<B, 5>) -> Tensor<B, 5> {
        (z - self.shift.clone()) / self.scale.clone()
    }

    /// `z·scale + shift`.
    pub fn denormalize(&self, z: Tensor<B, 5>) -> Tensor<B, 5> {
        z * self.scale.clone() + self.shift.clone()
    }

    /// Deterministic encode (posterior means of both stages), normalised.
    ///
    /// # Shapes
    /// `x`: `[B, 3, T, H, W]` → `[B, E, ⌈T/4⌉, H/f, W/f]`
    pub fn encode(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.normalize(self.temporal.encode(self.spatial_encode(x)).mode())
    }

    /// Sampling encode as Open-Sora (`latent_dist.sample()` in both stages), with caller noise.
    ///
    /// # Shapes
    /// `x`: `[B, 3, T, H, W]`; `spatial_noise`: `[B, C, T, H/f, W/f]`;
    /// `temporal_noise`: `[B, E, ⌈T/4⌉, H/f, W/f]` → like `temporal_noise`
    pub fn encode_with_noise(
        &self,
        x: Tensor<B, 5>,
        spatial_noise: Tensor<B, 5>,
        temporal_noise: Tensor<B, 5>,
    ) -> Tensor<B, 5> {
        let b = x.dims()[0];
        let (frames, noise) = (to_frames(x), to_frames(spatial_noise));
        let n = frames.dims()[0];
        let step = self.micro_batch_size.unwrap_or(n).min(n);
        let parts = (0..n)
            .step_by(step)
            .map(|i| {
                let len = step.min(n - i);
                self.spatial.encode_sample(
                    frames.clone().narrow(0, i, len),
                    noise.clone().narrow(0, i, len),
                )
            })
            .collect();
        let z = from_frames(Tensor::cat(parts, 0), b) * self.spatial_scaling_factor;
        self.normalize(self.temporal.encode(z).sample(temporal_noise))
    }

    /// Decodes a normalised latent to `num_frames` frames.
    ///
    /// # Shapes
    /// `z`: `[B, E, T', h, w]` → `[B, 3, num_frames, h·f, w·f]`
    ///
    /// # Panics
    /// If `T' ≠ ⌈num_frames/4⌉`.
    pub fn decode(&self, z: Tensor<B, 5>, num_frames: usize) -> Tensor<B, 5> {
        let x_z = self.temporal.decode(self.denormalize(z), num_frames);
        self.spatial_decode(x_z)
    }
}
