//! Open-Sora 1.2's `VideoAutoencoderPipeline`: 2D VAE per frame, temporal autoencoder in
//! `micro_frame_size` pieces, and the per-channel normalisation `(z − shift)/scale`.

use super::{SpatialAutoencoder, TemporalAutoencoder, TemporalAutoencoderConfig};
use crate::error::{VaeError, positive, positive_f64, same_size};
use burn::config::Config;
use burn::module::{Module, Param};
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
    /// Pixel frames per temporal-VAE call (`micro_frame_size`; `None` = the whole clip). Not
    /// exact: each piece is padded in front and encoded on its own.
    #[config(default = "Some(17)")]
    pub micro_frame_size: Option<usize>,
}

impl VideoAutoencoderConfig {
    /// Builds the video VAE around `spatial`.
    ///
    /// # Errors
    /// Those of [`TemporalAutoencoderConfig::init`]; [`VaeError::Config`] (`ConfigError::ShapeMismatch`) if `shift` or
    /// `scale` do not have `embed_dim` entries or the spatial latent channels differ from
    /// `temporal.in_out_channels`; [`VaeError::Config`] (`ConfigError::OutOfDomain`) for a `scale` entry or
    /// `spatial_scaling_factor` `<= 0`; [`VaeError::Config`] (`ConfigError::Zero`) for `micro_batch_size` or
    /// `micro_frame_size` `= Some(0)`.
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
        if let Some(m) = self.micro_frame_size {
            positive("micro_frame_size", m)?;
        }
        same_size(
            "spatial latent channels (temporal.in_out_channels)",
            self.temporal.in_out_channels,
            spatial.latent_channels(),
        )?;
        let channel = |v: &[f64]| {
            let data = TensorData::new(v.iter().map(|&x| x as f32).collect(), [1, e, 1, 1, 1]);
            Param::from_tensor(Tensor::<B, 5>::from_data(data, device)).set_require_grad(false)
        };
        Ok(VideoAutoencoder {
            temporal: self.temporal.init(device)?,
            spatial,
            shift: channel(&self.shift),
            scale: channel(&self.scale),
            spatial_scaling_factor: self.spatial_scaling_factor,
            micro_batch_size: self.micro_batch_size,
            micro_frame_size: self.micro_frame_size,
        })
    }
}

/// The video VAE (Open-Sora 1.2 report sec. 3.1), a Burn module whose tree mirrors Open-Sora's
/// `VideoAutoencoderPipeline` (`spatial` = `spatial_vae.module`, `temporal` = `temporal_vae`,
/// buffers `shift`, `scale`); [`crate::opensora::load_open_sora_vae`] loads the published file.
///
/// With `micro_frame_size = Some(m)` the temporal VAE sees the 2D latents in pieces of `m`
/// frames (the last one shorter), each padded in front and encoded on its own, so `T` frames
/// give `⌊T/m⌋·⌈m/f⌉ + ⌈(T mod m)/f⌉` latent frames; decoding takes the latent in pieces of
/// `⌈m/f⌉` frames, piece `i` decoding to `min(m, T − i·m)` frames.
#[derive(Module, Debug)]
pub struct VideoAutoencoder<B: Backend, Spatial: Module<B>> {
    /// Per-frame 2D autoencoder.
    pub spatial: Spatial,
    /// Causal temporal autoencoder.
    pub temporal: TemporalAutoencoder<B>,
    /// `[1, E, 1, 1, 1]` (a buffer in Open-Sora; loaded, not trained).
    pub shift: Param<Tensor<B, 5>>,
    /// `[1, E, 1, 1, 1]`.
    pub scale: Param<Tensor<B, 5>>,
    /// 2D latent scaling.
    pub spatial_scaling_factor: f64,
    /// Frames per 2D VAE call.
    pub micro_batch_size: Option<usize>,
    /// Pixel frames per temporal-VAE call (`None` = whole clip).
    pub micro_frame_size: Option<usize>,
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

    /// Latent frames for `num_frames` video frames: `⌈T/f⌉`, or with `micro_frame_size = m`,
    /// `⌊T/m⌋·⌈m/f⌉ + ⌈(T mod m)/f⌉` (Open-Sora's `get_latent_size`).
    pub fn latent_frames(&self, num_frames: usize) -> usize {
        self.frame_pieces(num_frames)
            .iter()
            .map(|&(_, n)| self.temporal.latent_frames(n))
            .sum()
    }

    /// `(start, length)` of each pixel-frame piece the temporal VAE sees.
    pub fn frame_pieces(&self, num_frames: usize) -> Vec<(usize, usize)> {
        let m = self.micro_frame_size.unwrap_or(num_frames).max(1);
        (0..num_frames)
            .step_by(m)
            .map(|i| (i, m.min(num_frames - i)))
            .collect()
    }

    /// Checks that a latent of `latent_frames` frames decodes to `num_frames` frames.
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::ShapeMismatch`) naming the latent frames `num_frames` needs.
    pub fn check_decode(&self, latent_frames: usize, num_frames: usize) -> Result<(), VaeError> {
        Ok(same_size(
            "latent frames for num_frames",
            self.latent_frames(num_frames),
            latent_frames,
        )?)
    }

    /// Temporal encode piece by piece ([`Self::frame_pieces`]); `each` turns a piece's posterior
    /// into latent frames (given the piece's offset in the latent).
    fn temporal_encode_pieces(
        &self,
        x_z: Tensor<B, 5>,
        each: impl Fn(super::TemporalPosterior<B>, usize) -> Tensor<B, 5>,
    ) -> Tensor<B, 5> {
        let mut offset = 0;
        let parts = self
            .frame_pieces(x_z.dims()[2])
            .into_iter()
            .map(|(start, len)| {
                let post = self.temporal.encode(x_z.clone().narrow(2, start, len));
                let z = each(post, offset);
                offset += z.dims()[2];
                z
            })
            .collect();
        Tensor::cat(parts, 2)
    }

    /// Temporal decode of a denormalised latent, piece by piece: latent pieces of `⌈m/f⌉`
    /// frames, piece `i` decoding to `min(m, num_frames − i·m)` frames.
    ///
    /// # Shapes
    /// `z`: `[B, E, T', h, w]` → `[B, C, num_frames, h, w]`
    ///
    /// # Panics
    /// If `T'` differs from [`Self::latent_frames`]`(num_frames)`.
    pub fn temporal_decode(&self, z: Tensor<B, 5>, num_frames: usize) -> Tensor<B, 5> {
        if let Err(e) = self.check_decode(z.dims()[2], num_frames) {
            panic!("{e} (num_frames = {num_frames})");
        }
        let mut offset = 0;
        let parts = self
            .frame_pieces(num_frames)
            .into_iter()
            .map(|(_, len)| {
                let tl = self.temporal.latent_frames(len);
                let x = self.temporal.decode(z.clone().narrow(2, offset, tl), len);
                offset += tl;
                x
            })
            .collect();
        Tensor::cat(parts, 2)
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
        (z - self.shift.val()) / self.scale.val()
    }

    /// `z·scale + shift`.
    pub fn denormalize(&self, z: Tensor<B, 5>) -> Tensor<B, 5> {
        z * self.scale.val() + self.shift.val()
    }

    /// Deterministic encode (posterior means of both stages), normalised.
    ///
    /// # Shapes
    /// `x`: `[B, 3, T, H, W]` → `[B, E, T', H/f, W/f]`, `T'` = [`Self::latent_frames`]`(T)`
    pub fn encode(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let z = self.temporal_encode_pieces(self.spatial_encode(x), |post, _| post.mode());
        self.normalize(z)
    }

    /// Sampling encode as Open-Sora (`latent_dist.sample()` in both stages), with caller noise.
    ///
    /// # Shapes
    /// `x`: `[B, 3, T, H, W]`; `spatial_noise`: `[B, C, T, H/f, W/f]`;
    /// `temporal_noise`: `[B, E, T', H/f, W/f]`, `T'` = [`Self::latent_frames`]`(T)` → like
    /// `temporal_noise`
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
        let z = self.temporal_encode_pieces(z, |post, offset| {
            let tl = post.mean.dims()[2];
            post.sample(temporal_noise.clone().narrow(2, offset, tl))
        });
        self.normalize(z)
    }

    /// Decodes a normalised latent to `num_frames` frames.
    ///
    /// # Shapes
    /// `z`: `[B, E, T', h, w]` → `[B, 3, num_frames, h·f, w·f]`
    ///
    /// # Panics
    /// If `T'` differs from [`Self::latent_frames`]`(num_frames)` (check first with
    /// [`Self::check_decode`]).
    pub fn decode(&self, z: Tensor<B, 5>, num_frames: usize) -> Tensor<B, 5> {
        let x_z = self.temporal_decode(self.denormalize(z), num_frames);
        self.spatial_decode(x_z)
    }
}
