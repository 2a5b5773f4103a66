//! [`GenerateOptions`]: the settings every pipeline's `generate` takes — steps, guidance, seed,
//! latent size (frames included), frame rate and the non-finite guard.
//!
//! | pipeline | call | schedule | unconditional text |
//! |---|---|---|---|
//! | STDiT | [`TextToVideo::generate`](crate::stdit::TextToVideo::generate) | rectified flow ([`GenerateOptions::flow`]) | the learnt null caption |
//! | LinGen | [`LinGenDit::generate`](crate::lingen::LinGenDit::generate) | rectified flow ([`GenerateOptions::flow`]) | zeros |
//! | Snap FIT | [`SnapFit::generate`](crate::snap_fit::SnapFit::generate) | EDM, Heun, `σ_in = √T` (Snap Video Sec. 3.2) | zeros |
//!
//! Each pipeline runs the generic [`sample`](crate::denoise::sample) loop; for a schedule or
//! unconditional text of your own, call that loop directly.
//!
//! ```
//! use vidgen_models::GenerateOptions;
//!
//! let options = GenerateOptions {
//!     latent_size: [4, 8, 16, 16],
//!     num_steps: 10,
//!     seed: 7,
//!     ..GenerateOptions::default()
//! };
//! assert!(options.validate().is_ok());
//! assert_eq!(options.latent_shape(2), [2, 4, 8, 16, 16]);
//! let zero_steps = GenerateOptions { num_steps: 0, ..options };
//! assert!(zero_steps.validate().unwrap_err().to_string().contains("num_steps"));
//! ```

use crate::denoise::{CfgMode, Guidance, TextConditioning};
use crate::error::{ModelError, component, positive, positive_f64};
use burn::tensor::{Tensor, backend::Backend};
use vidgen_schedulers::{
    ClassifierFreeGuidance, FiniteCheck, NoiseGenerator, RectifiedFlow, RectifiedFlowConfig,
};

/// Settings of a pipeline's `generate`, shared by every pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Latent size `[C, T, H, W]` per sample (`T` frames).
    pub latent_size: [usize; 4],
    /// Sampler steps (Open-Sora 1.2 samples videos with 30 Euler steps).
    pub num_steps: usize,
    /// Classifier-free guidance weight `w` (`v = v_u + w·(v_c − v_u)`; Open-Sora 1.2: 7). `1`
    /// runs the prompt alone, without the unconditional pass.
    pub guidance_scale: f64,
    /// Guidance rescale `φ` (0 = plain CFG).
    pub guidance_rescale: f64,
    /// Frame rate the model is conditioned on.
    pub fps: f64,
    /// Flow schedule of the rectified-flow pipelines (STDiT, LinGen); Snap FIT's EDM schedule
    /// follows its paper and ignores it.
    pub flow: RectifiedFlowConfig,
    /// Seed of the noise (initial and, for stochastic samplers, per step).
    pub seed: u64,
    /// The non-finite guard of the sampling loop (on by default; see [`FiniteCheck`]).
    pub finite_check: FiniteCheck,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            latent_size: [4, 4, 8, 8],
            num_steps: 30,
            guidance_scale: 7.0,
            guidance_rescale: 0.0,
            fps: 24.0,
            flow: RectifiedFlowConfig::default(),
            seed: 0,
            finite_check: FiniteCheck::EveryStep,
        }
    }
}

impl GenerateOptions {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`ModelError::Config`] naming `latent_size`, `num_steps` or `fps` if zero or not
    /// positive and finite; [`ModelError::Component`] naming `guidance` for a scale or rescale
    /// that is not finite or a rescale outside `[0, 1]`.
    pub fn validate(&self) -> Result<(), ModelError> {
        for size in self.latent_size {
            positive("latent_size", size)?;
        }
        positive("num_steps", self.num_steps)?;
        positive_f64("fps", self.fps)?;
        ClassifierFreeGuidance::new(self.guidance_scale, self.guidance_rescale)
            .map_err(component("guidance"))?;
        Ok(())
    }

    /// `[batch, C, T, H, W]`.
    pub fn latent_shape(&self, batch: usize) -> [usize; 5] {
        let [c, t, h, w] = self.latent_size;
        [batch, c, t, h, w]
    }

    /// The noise source of this run, seeded with [`seed`](Self::seed), and the initial noise
    /// `[batch, C, T, H, W]` drawn from it first.
    pub fn initial_noise<B: Backend>(
        &self,
        batch: usize,
        device: &B::Device,
    ) -> (NoiseGenerator, Tensor<B, 5>) {
        let mut rng = NoiseGenerator::seed_from_u64(self.seed);
        let noise = rng.normal(self.latent_shape(batch), device);
        (rng, noise)
    }

    /// The rectified-flow schedule of [`flow`](Self::flow) over [`num_steps`](Self::num_steps).
    ///
    /// # Errors
    /// [`ModelError::Component`] naming `flow` for an invalid schedule.
    pub fn rectified_flow(&self) -> Result<RectifiedFlow, ModelError> {
        self.flow
            .init(self.num_steps, None)
            .map_err(component("flow"))
    }

    /// Classifier-free guidance against `uncond`, or `None` when
    /// [`guidance_scale`](Self::guidance_scale) is 1: the guided output is then the conditional
    /// one (rescaling it to its own deviation changes nothing), so the prompt runs alone and
    /// `uncond` is never built.
    ///
    /// # Errors
    /// [`ModelError::Component`] naming `guidance` as in [`validate`](Self::validate).
    pub fn guidance<B: Backend>(
        &self,
        uncond: impl FnOnce() -> Result<TextConditioning<B>, ModelError>,
    ) -> Result<Option<Guidance<B>>, ModelError> {
        if self.guidance_scale == 1.0 {
            return Ok(None);
        }
        let cfg = ClassifierFreeGuidance::new(self.guidance_scale, self.guidance_rescale)
            .map_err(component("guidance"))?;
        Ok(Some(Guidance {
            cfg,
            uncond: uncond()?,
            mode: CfgMode::Batched,
        }))
    }
}

/// Zeros shaped like `text` with its padding: the unconditional text of the pipelines without a
/// learnt null caption.
pub(crate) fn zero_text<B: Backend>(text: &TextConditioning<B>) -> TextConditioning<B> {
    TextConditioning {
        tokens: Tensor::zeros(text.tokens.dims(), &text.tokens.device()),
        padding: text.padding.clone(),
    }
}
