//! DDPM: denoising diffusion probabilistic models (Ho et al. 2020), with diffusers' numbers
//! (`DDPMScheduler`, 0.42.1) and key names.
//!
//! The forward process (Ho et al. eq. 4) noises a clean sample in one shot,
//! `x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε` with `ᾱ_t = ∏_{s≤t}(1−β_s)`. Sampling runs the learned reverse
//! process over the inference timesteps `t_0 > t_1 > … > t_{n−1}` (Ho et al. Algorithm 2, on a
//! sub-sequence of the training steps): at step `i`, with `t = t_i`, `t' = t_{i+1}` (`ᾱ_{t'} = 1`
//! after the last step), `α = ᾱ_t/ᾱ_{t'}` and `β = 1 − α`,
//!
//! 1. `x̂₀` from the model output: ε: `(x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t`; sample: the output;
//!    v: `√ᾱ_t·x_t − √(1−ᾱ_t)·v̂`; then dynamic thresholding or clipping to `clip_sample_range`;
//! 2. the posterior mean (Ho et al. eq. 7),
//!    `μ = √ᾱ_{t'}·β/(1−ᾱ_t)·x̂₀ + √α·(1−ᾱ_{t'})/(1−ᾱ_t)·x_t`;
//! 3. `x_{t'} = μ + σ·z` with `z ~ N(0, I)` from the caller whenever `t > 0` — the variance
//!    `σ²` by `variance_type`: `fixed_small` `β̃ = max((1−ᾱ_{t'})/(1−ᾱ_t)·β, 1e−20)` (eq. 7),
//!    `fixed_large` `β`, `learned` the model's second half `v` (`σ = √v`), `learned_range`
//!    `log σ² = f·log β + (1−f)·log β̃` with `f = (v+1)/2` (Nichol & Dhariwal 2021, eq. 15).
//!    `fixed_small_log` equals `fixed_small` (diffusers takes `exp(½·log β̃)`).
//!    `fixed_large_log` is rejected at init: diffusers takes `√(log β)`, which is NaN.
//!
//! With `learned` / `learned_range` the model output carries `2C` channels on dim 1: the first
//! `C` are the prediction, the last `C` the variance (diffusers' `torch.split`).
//!
//! Divergences from diffusers: an explicit step index `i` (the previous timestep is
//! `timesteps()[i + 1]`, no float-equality lookup), schedule math in f64, noise only from the
//! caller, typed errors for 0 steps / too many steps / a `steps_offset` past the table, and
//! exactly `n` trailing timesteps where numpy's `arange` overshoots (see [`TimestepSpacing`]).
//! diffusers' `laplace` beta schedule is not supported (an unknown variant of `beta_schedule`).
//!
//! Training uses the same object: [`Ddpm::training_batch`] returns the noisy input, the
//! timesteps as model time and the target of the prediction type (ε, x₀ or
//! `v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀`), with loss weight 1 (Ho et al.'s simplified objective, eq. 14).
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use vidgen_schedulers::ddpm::DdpmConfig;
//! use vidgen_schedulers::{NoiseGenerator, Sampler, sample};
//!
//! let device = Default::default();
//! let ddpm = DdpmConfig::default().init(10).unwrap();
//! assert_eq!(ddpm.timesteps()[..3], [900, 800, 700]);
//! let mut noise = NoiseGenerator::seed_from_u64(0);
//! let x_t = noise.normal::<Flex, 3>([2, 3, 4], &device);
//! // A stand-in ε-model.
//! let model = |x: Tensor<Flex, 3>, t: f64| x.tanh() * (t / 1000.0);
//! let x0 = sample(&ddpm, model, x_t, &mut noise).unwrap();
//! assert_eq!(x0.dims(), [2, 3, 4]);
//! assert!(x0.to_data().iter::<f32>().all(|v| v.is_finite()));
//! ```

pub(crate) mod shared;

use crate::betas::BetaSchedule;
pub use crate::common::TimestepSpacing;
use crate::common::{PredictionType, Sampler, TrainingBatch};
use crate::config::{ConfigEnum, SchedulerConfig, config_enum};
use crate::error::{SchedulerError, step_in_range};
use crate::noise::NoiseGenerator;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};
use shared::{TableFields, X0Rule};

config_enum! {
    /// The reverse-process variance of DDPM (diffusers' `variance_type`).
    pub enum VarianceType {
        /// Posterior variance `β̃_t` (clamped at 1e−20).
        FixedSmall = "fixed_small",
        /// `β̃_t` via its log; the same numbers as `fixed_small`.
        FixedSmallLog = "fixed_small_log",
        /// `β_t`.
        FixedLarge = "fixed_large",
        /// Not supported: diffusers computes `√(log β_t)`, which is NaN. Rejected at init.
        FixedLargeLog = "fixed_large_log",
        /// The model's second half of channels is the variance itself.
        Learned = "learned",
        /// The model's second half `v ∈ [−1, 1]` interpolates `log β̃_t … log β_t`.
        LearnedRange = "learned_range",
    }
}

/// The variance types [`Ddpm`] implements.
const SUPPORTED_VARIANCE: &[&str] = &[
    "fixed_small",
    "fixed_small_log",
    "fixed_large",
    "learned",
    "learned_range",
];

/// Configuration of [`Ddpm`]: diffusers' `DDPMScheduler` keys and defaults, so a diffusers
/// `scheduler_config.json` loads with [`SchedulerConfig::from_json`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct DdpmConfig {
    /// Training timesteps `N`. Default 1000.
    pub num_train_timesteps: usize,
    /// First beta. Default 0.0001.
    pub beta_start: f64,
    /// Last beta. Default 0.02.
    pub beta_end: f64,
    /// Beta layout. Default `linear`.
    pub beta_schedule: BetaSchedule,
    /// Explicit betas (`N` values); used whenever given, whatever `beta_schedule` says.
    pub trained_betas: Option<Vec<f64>>,
    /// Reverse-process variance. Default `fixed_small`.
    pub variance_type: VarianceType,
    /// Clamp `x̂₀` to `[−clip_sample_range, clip_sample_range]`. Default true.
    pub clip_sample: bool,
    /// What the model predicts. Default `epsilon`.
    pub prediction_type: PredictionType,
    /// Dynamic thresholding of `x̂₀` (takes precedence over `clip_sample`). Default false.
    pub thresholding: bool,
    /// Quantile of `|x̂₀|` for dynamic thresholding, in `[0, 1]`. Default 0.995.
    pub dynamic_thresholding_ratio: f64,
    /// Clipping range, > 0. Default 1.0.
    pub clip_sample_range: f64,
    /// Upper bound of the dynamic threshold, > 0. Default 1.0.
    pub sample_max_value: f64,
    /// Inference timestep layout. Default `leading`.
    pub timestep_spacing: TimestepSpacing,
    /// Added to every `leading` timestep. Default 0.
    pub steps_offset: usize,
    /// Rescale betas to zero terminal SNR (Lin et al. 2023, Algorithm 1). Default false.
    pub rescale_betas_zero_snr: bool,
}

impl Default for DdpmConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            trained_betas: None,
            variance_type: VarianceType::FixedSmall,
            clip_sample: true,
            prediction_type: PredictionType::Epsilon,
            thresholding: false,
            dynamic_thresholding_ratio: 0.995,
            clip_sample_range: 1.0,
            sample_max_value: 1.0,
            timestep_spacing: TimestepSpacing::Leading,
            steps_offset: 0,
            rescale_betas_zero_snr: false,
        }
    }
}

impl SchedulerConfig for DdpmConfig {
    const NAME: &'static str = "DDPMScheduler";
    const ENUM_KEYS: &'static [(&'static str, &'static [&'static str])] = &[
        ("beta_schedule", BetaSchedule::NAMES),
        ("variance_type", VarianceType::NAMES),
        ("prediction_type", PredictionType::NAMES),
        ("timestep_spacing", TimestepSpacing::NAMES),
    ];

    fn validate(&self) -> Result<(), SchedulerError> {
        self.table_fields().validate()?;
        shared::validate_x0_fields(
            self.clip_sample_range,
            self.dynamic_thresholding_ratio,
            self.sample_max_value,
        )?;
        if self.variance_type == VarianceType::FixedLargeLog {
            return Err(SchedulerError::Unsupported {
                field: "variance_type",
                value: self.variance_type.name().to_owned(),
                supported: SUPPORTED_VARIANCE,
            });
        }
        Ok(())
    }
}

impl DdpmConfig {
    fn table_fields(&self) -> TableFields<'_> {
        TableFields {
            num_train_timesteps: self.num_train_timesteps,
            beta_start: self.beta_start,
            beta_end: self.beta_end,
            beta_schedule: self.beta_schedule,
            trained_betas: self.trained_betas.as_deref(),
            rescale_betas_zero_snr: self.rescale_betas_zero_snr,
        }
    }

    /// Builds the sampler for `num_inference_steps` steps laid out by `timestep_spacing`
    /// (diffusers' `DDPMScheduler(**config).set_timesteps(num_inference_steps)`).
    ///
    /// # Errors
    /// [`SchedulerError::Zero`] for 0 steps, [`SchedulerError::TooManySteps`] for more steps than
    /// `num_train_timesteps`, [`SchedulerError::OutOfDomain`] when `steps_offset` pushes a
    /// timestep past the table, and any error of [`SchedulerConfig::validate`] (e.g.
    /// [`SchedulerError::UnknownVariant`] for `variance_type = "fixed_large_log"`).
    pub fn init(&self, num_inference_steps: usize) -> Result<Ddpm, SchedulerError> {
        self.validate()?;
        let timesteps = shared::inference_timesteps(
            self.timestep_spacing,
            self.num_train_timesteps,
            num_inference_steps,
            self.steps_offset,
        )?;
        self.build(timesteps)
    }

    /// Builds the sampler for explicit timesteps (diffusers' `set_timesteps(timesteps=…)`).
    ///
    /// # Errors
    /// [`SchedulerError::Zero`] for an empty list, [`SchedulerError::OutOfDomain`] unless they
    /// are strictly decreasing and below `num_train_timesteps`, and any error of
    /// [`SchedulerConfig::validate`].
    pub fn init_with_timesteps(&self, timesteps: &[usize]) -> Result<Ddpm, SchedulerError> {
        self.validate()?;
        shared::check_custom_timesteps(self.num_train_timesteps, timesteps)?;
        self.build(timesteps.to_vec())
    }

    fn build(&self, timesteps: Vec<usize>) -> Result<Ddpm, SchedulerError> {
        Ok(Ddpm {
            alphas_cumprod: self.table_fields().alphas_cumprod()?,
            timesteps,
            config: self.clone(),
        })
    }
}

/// The DDPM sampler and trainer (see the [module docs](self) for the formulas).
#[derive(Clone, Debug)]
pub struct Ddpm {
    config: DdpmConfig,
    timesteps: Vec<usize>,
    alphas_cumprod: Vec<f64>,
}

impl Ddpm {
    /// The config this was built from.
    pub fn config(&self) -> &DdpmConfig {
        &self.config
    }

    /// The inference timesteps, descending.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The timestep after step `i` (`None` after the last step, where `ᾱ = 1`).
    pub fn prev_timestep(&self, i: usize) -> Option<usize> {
        self.timesteps.get(i + 1).copied()
    }

    fn x0_rule(&self) -> X0Rule {
        let c = &self.config;
        X0Rule {
            prediction_type: c.prediction_type,
            clip: c.clip_sample.then_some(c.clip_sample_range),
            threshold: c
                .thresholding
                .then_some((c.dynamic_thresholding_ratio, c.sample_max_value)),
        }
    }

    /// `(ᾱ_t, ᾱ_{t'})` at step `i`.
    fn alphas(&self, i: usize) -> (f64, f64) {
        let a_t = self.alphas_cumprod[self.timesteps[i]];
        let a_prev = self
            .prev_timestep(i)
            .map_or(1.0, |p| self.alphas_cumprod[p]);
        (a_t, a_prev)
    }

    /// Splits a `2C`-channel output into prediction and variance for the learned types.
    fn split_output<B: Backend, const D: usize>(
        &self,
        model_output: Tensor<B, D>,
        sample: &Tensor<B, D>,
    ) -> Result<(Tensor<B, D>, Option<Tensor<B, D>>), SchedulerError> {
        if !matches!(
            self.config.variance_type,
            VarianceType::Learned | VarianceType::LearnedRange
        ) {
            return Ok((model_output, None));
        }
        let c = sample.dims().get(1).copied().unwrap_or(0);
        let got = model_output.dims().get(1).copied().unwrap_or(0);
        if D < 2 || got != 2 * c {
            return Err(SchedulerError::LengthMismatch {
                field: "model_output channels (dim 1) with a learned variance_type",
                got,
                expected: 2 * c,
            });
        }
        let variance = model_output.clone().narrow(1, c, c);
        Ok((model_output.narrow(1, 0, c), Some(variance)))
    }

    /// `σ·z` of step 3 in the module docs.
    fn noise_term<B: Backend, const D: usize>(
        &self,
        i: usize,
        noise: Tensor<B, D>,
        predicted_variance: Option<Tensor<B, D>>,
    ) -> Tensor<B, D> {
        let (a_t, a_prev) = self.alphas(i);
        let beta = 1.0 - a_t / a_prev;
        let small = ((1.0 - a_prev) / (1.0 - a_t) * beta).max(1e-20);
        match (self.config.variance_type, predicted_variance) {
            (VarianceType::Learned, Some(v)) => v.sqrt() * noise,
            (VarianceType::LearnedRange, Some(v)) => {
                let (min_log, max_log) = (small.ln(), beta.ln());
                let frac = (v + 1.0) / 2.0;
                let log_var = frac * (max_log - min_log) + min_log;
                (log_var * 0.5).exp() * noise
            }
            (VarianceType::FixedLarge, _) => noise * beta.sqrt(),
            _ => noise * small.sqrt(),
        }
    }
}

/// The forward (noising) process of a discrete-time schedule with `ᾱ_t` for
/// `t = 0..num_train_timesteps`, shared by [`Ddpm`] and [`crate::ddim::Ddim`]: adding noise, the
/// velocity, and training batches. Implementors supply the table and the prediction type.
pub trait DiscreteNoising {
    /// `ᾱ_t` for `t = 0..num_train_timesteps`, f64.
    fn alphas_cumprod(&self) -> &[f64];

    /// What the model predicts.
    fn prediction_type(&self) -> PredictionType;

    /// `x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε` per sample (Ho et al. eq. 4; diffusers' `add_noise`).
    ///
    /// # Shapes
    /// `x0`, `noise`: `[B, ...]`; `timesteps`: `B` values
    ///
    /// # Errors
    /// [`SchedulerError::LengthMismatch`] if `timesteps.len() != B`,
    /// [`SchedulerError::StepOutOfRange`] for a timestep `>= num_train_timesteps`.
    fn add_noise<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
        timesteps: &[usize],
    ) -> Result<Tensor<B, D>, SchedulerError> {
        shared::add_noise(self.alphas_cumprod(), x0, noise, timesteps)
    }

    /// The velocity `v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀` per sample (Salimans & Ho 2022; diffusers'
    /// `get_velocity`).
    ///
    /// # Shapes
    /// `x0`, `noise`: `[B, ...]`; `timesteps`: `B` values
    ///
    /// # Errors
    /// As [`DiscreteNoising::add_noise`].
    fn get_velocity<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
        timesteps: &[usize],
    ) -> Result<Tensor<B, D>, SchedulerError> {
        shared::velocity(self.alphas_cumprod(), x0, noise, timesteps)
    }

    /// `batch` training timesteps, uniform in `[0, num_train_timesteps)` (Ho et al. Algorithm 1).
    fn sample_training_timesteps(&self, batch: usize, rng: &mut NoiseGenerator) -> Vec<usize> {
        shared::sample_timesteps(self.alphas_cumprod().len(), batch, rng)
    }

    /// One training batch: `model_input = add_noise(x0, noise, timesteps)`, `model_time` the
    /// timesteps as f64, `target` ε / x₀ / v by the prediction type, `loss_weight` 1 for every
    /// sample (the simplified objective, Ho et al. eq. 14; DDIM trains with the same objective,
    /// Song et al. sec. 3).
    ///
    /// # Shapes
    /// `x0`, `noise`: `[B, ...]`; `timesteps`: `B` values
    ///
    /// # Errors
    /// As [`DiscreteNoising::add_noise`].
    fn training_batch<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
        timesteps: &[usize],
    ) -> Result<TrainingBatch<B, D>, SchedulerError> {
        shared::training_batch(
            self.alphas_cumprod(),
            self.prediction_type(),
            x0,
            noise,
            timesteps,
        )
    }
}

impl DiscreteNoising for Ddpm {
    fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    fn prediction_type(&self) -> PredictionType {
        self.config.prediction_type
    }
}

impl Sampler for Ddpm {
    fn num_steps(&self) -> usize {
        self.timesteps.len()
    }

    /// The timestep `t_i` as f64.
    fn model_time(&self, i: usize) -> f64 {
        self.timesteps[i] as f64
    }

    /// True whenever `t_i > 0` (diffusers adds noise for every `t > 0`).
    fn needs_noise(&self, i: usize) -> bool {
        self.timesteps.get(i).is_some_and(|&t| t > 0)
    }

    /// One reverse step (Ho et al. Algorithm 2, line 4; steps 1–3 of the module docs).
    ///
    /// # Shapes
    /// `sample`, `noise`: `[B, C, ...]`; `model_output`: like `sample`, or `[B, 2C, ...]` with
    /// a `learned` / `learned_range` variance
    ///
    /// # Errors
    /// [`SchedulerError::StepOutOfRange`], [`SchedulerError::MissingNoise`] when `t_i > 0` and
    /// `noise` is `None`, [`SchedulerError::LengthMismatch`] when a learned variance type gets an
    /// output without `2C` channels.
    fn step<B: Backend, const D: usize>(
        &self,
        i: usize,
        model_output: Tensor<B, D>,
        sample: Tensor<B, D>,
        noise: Option<Tensor<B, D>>,
    ) -> Result<Tensor<B, D>, SchedulerError> {
        step_in_range(i, self.timesteps.len())?;
        let noise = match (self.needs_noise(i), noise) {
            (true, None) => return Err(SchedulerError::MissingNoise { index: i }),
            (true, n) => n,
            (false, _) => None,
        };
        let (output, predicted_variance) = self.split_output(model_output, &sample)?;
        let (a_t, a_prev) = self.alphas(i);
        let rule = self.x0_rule();
        let x0 = rule.post_process(rule.x0(a_t, output, sample.clone()));
        let alpha = a_t / a_prev;
        let coef_x0 = a_prev.sqrt() * (1.0 - alpha) / (1.0 - a_t);
        let coef_xt = alpha.sqrt() * (1.0 - a_prev) / (1.0 - a_t);
        let mean = x0 * coef_x0 + sample * coef_xt;
        Ok(match noise {
            Some(z) => mean + self.noise_term(i, z, predicted_variance),
            None => mean,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_default_and_offset() {
        let d = DdpmConfig::default().init(4).unwrap();
        assert_eq!(d.timesteps(), &[750, 500, 250, 0]);
        let c = DdpmConfig {
            steps_offset: 1,
            ..Default::default()
        };
        assert_eq!(c.init(4).unwrap().timesteps(), &[751, 501, 251, 1]);
        assert!(matches!(
            c.init(1000).unwrap_err(),
            SchedulerError::OutOfDomain {
                field: "steps_offset",
                ..
            }
        ));
    }

    #[test]
    fn needs_noise_only_above_zero() {
        let d = DdpmConfig::default().init(4).unwrap();
        assert!((0..3).all(|i| d.needs_noise(i)));
        assert!(!d.needs_noise(3));
    }
}
