//! [`SnapFit`] as a [`Denoiser`] with latent self-conditioning across network calls (Snap Video
//! Sec. 3.4), sampled by EDM with Snap Video's input scaling (Sec. 3.2) through the generic
//! [`crate::denoise::sample`] loop and an [`EdmSampler`].

use super::{SnapFit, SnapFitCond};
use crate::denoise::{Conditioning, Denoiser, Guidance, TextConditioning, batch_repeats, sample};
use crate::error::{ModelError, component, same_size};
use crate::generate::{GenerateOptions, zero_text};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use std::cell::RefCell;
use vidgen_schedulers::edm::{EdmConfig, snap_video_sigma_in};
use vidgen_schedulers::{EdmSampler, EdmSolver, FiniteCheck, NoiseSource};

/// [`SnapFit`] as a [`Denoiser`]: the network output `F(c_in·x_σ, c_noise)` at per-sample frame
/// rates and resolutions, threading self-conditioning latents through its calls — `None` on the
/// first call, then the latents the call before returned (detached from any autodiff graph;
/// with Heun this includes the correction call of the same step). Built by
/// [`SnapFit::denoiser`]; one denoiser per sampling run.
#[derive(Debug)]
pub struct SnapFitDenoiser<'a, B: Backend> {
    model: &'a SnapFit<B>,
    fps: Tensor<B, 1>,
    resolution: Tensor<B, 2>,
    previous: RefCell<Option<Tensor<B, 3>>>,
}

impl<B: Backend> SnapFit<B> {
    /// This network as a [`Denoiser`] at frame rates `fps` (`[B]`) and original resolutions
    /// `resolution` (`[B, 2]`, height and width), with fresh self-conditioning.
    pub fn denoiser(&self, fps: Tensor<B, 1>, resolution: Tensor<B, 2>) -> SnapFitDenoiser<'_, B> {
        SnapFitDenoiser {
            model: self,
            fps,
            resolution,
            previous: RefCell::new(None),
        }
    }

    /// Generates one video per prompt of `text` (`[N, L, d_text]` with its padding) as Snap
    /// Video samples: EDM Heun steps with the input scaling `σ_in = √T` (Sec. 3.2, no spatial
    /// upsampling), conditioned on `options.fps` and on the generated size `(H, W)` as the
    /// original resolution, from noise seeded with `options.seed`, guided against a zero text
    /// with the prompt's padding unless `options.guidance_scale` is 1. [`SnapFit::sample`] takes
    /// any [`EdmSampler`] and per-sample frame rates and resolutions.
    ///
    /// # Shapes
    /// → `[N, C, T, H, W]` (data scale) with `[C, T, H, W] = options.latent_size`
    ///
    /// # Errors
    /// Those of [`GenerateOptions::validate`] and [`SnapFit::sample`].
    pub fn generate(
        &self,
        text: &TextConditioning<B>,
        options: &GenerateOptions,
    ) -> Result<Tensor<B, 5>, ModelError> {
        options.validate()?;
        let [n, _, t, h, w] = options.latent_shape(text.batch());
        let edm = EdmConfig::snap_video(snap_video_sigma_in(1.0, t))
            .init()
            .map_err(component("edm"))?;
        let sampler =
            EdmSampler::new(edm, EdmSolver::Heun, options.num_steps).map_err(component("edm"))?;
        let device = text.tokens.device();
        let resolution = [h as f32, w as f32].repeat(n);
        let cond = SnapFitCond {
            text: text.clone(),
            fps: Tensor::full([n], options.fps, &device),
            resolution: Tensor::from_data(TensorData::new(resolution, [n, 2]), &device),
        };
        let guidance = options.guidance(|| Ok(zero_text(text)))?;
        let (mut rng, noise) = options.initial_noise(n, &device);
        let check = options.finite_check;
        self.sample_guided(&sampler, noise, &cond, guidance, &mut rng, check)
    }

    /// Generates a batch: the generic [`sample`] loop of `sampler` (EDM Euler or Heun with this
    /// model's `σ_in`) over [`SnapFit::denoiser`], every sample at the same `c_noise`.
    ///
    /// # Shapes
    /// `noise`: `[B, C, T, H, W]` standard normal → sample `[B, C, T, H, W]` (data scale)
    ///
    /// # Errors
    /// The input errors of [`SnapFit::forward`], checked before the first step; those of the
    /// sampler ([`ModelError::NonFinite`] naming the step from `check`).
    pub fn sample<N: NoiseSource<B, 5>>(
        &self,
        sampler: &EdmSampler,
        noise: Tensor<B, 5>,
        cond: &SnapFitCond<B>,
        rng: &mut N,
        check: FiniteCheck,
    ) -> Result<Tensor<B, 5>, ModelError> {
        self.sample_guided(sampler, noise, cond, None, rng, check)
    }

    /// [`sample`](Self::sample) with optional classifier-free guidance.
    fn sample_guided<N: NoiseSource<B, 5>>(
        &self,
        sampler: &EdmSampler,
        noise: Tensor<B, 5>,
        cond: &SnapFitCond<B>,
        guidance: Option<Guidance<B>>,
        rng: &mut N,
        check: FiniteCheck,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let [b, c, t, h, w] = noise.dims();
        same_size("input channels", self.in_channels, c)?;
        self.grid([t, h, w])?;
        self.check_cond(b, cond)?;
        let denoiser = self.denoiser(cond.fps.clone(), cond.resolution.clone());
        let conditioning = Conditioning {
            text: cond.text.clone(),
            guidance,
        };
        sample(sampler, &denoiser, &conditioning, noise, rng, check, |_| {})
    }
}

impl<B: Backend> Denoiser<B> for SnapFitDenoiser<'_, B> {
    fn denoise(
        &self,
        x: Tensor<B, 5>,
        c_noise: Tensor<B, 1>,
        text: &TextConditioning<B>,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let what = "batch (a multiple of the fps length)";
        let k = batch_repeats(what, x.dims()[0], self.fps.dims()[0])?;
        let cond = SnapFitCond {
            text: text.clone(),
            fps: Tensor::cat(vec![self.fps.clone(); k], 0),
            resolution: Tensor::cat(vec![self.resolution.clone(); k], 0),
        };
        let previous = self.previous.borrow_mut().take();
        let (out, latents) = self.model.forward(x, c_noise, &cond, previous)?;
        *self.previous.borrow_mut() = Some(latents.detach());
        Ok(out)
    }
}
