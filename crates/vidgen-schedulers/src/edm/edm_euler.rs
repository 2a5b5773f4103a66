//! diffusers' `EDMEulerScheduler` behind the [`Sampler`] trait.

use super::model::{EDM_PREDICTIONS, check_edm_prediction};
use super::{edm_preconditioning, exponential_sigmas, karras_ramp};
use crate::common::{PredictionType, Sampler};
use crate::config::{SchedulerConfig, config_enum};
use crate::error::{SchedulerError, increasing, positive_f64, step_in_range};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

config_enum! {
    /// How the sampling noise levels are laid out (diffusers' `sigma_schedule`).
    pub enum SigmaSchedule {
        /// Karras et al.'s ρ-schedule ([`karras_sigmas`](super::karras_sigmas)).
        Karras = "karras",
        /// Evenly spaced in `ln σ` ([`exponential_sigmas`](super::exponential_sigmas)).
        Exponential = "exponential",
    }
}

config_enum! {
    /// The noise level appended after the last sampling step (diffusers' `final_sigmas_type`).
    pub enum FinalSigmas {
        /// End at σ = 0 (the last step returns the denoised estimate).
        Zero = "zero",
        /// Repeat the last sampling σ (`EulerDiscrete`: the σ of training timestep 0).
        SigmaMin = "sigma_min",
    }
}

/// Configuration of [`EdmEulerScheduler`]; keys and defaults are diffusers' `EDMEulerScheduler`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct EdmEulerConfig {
    /// Smallest noise level (0.002).
    pub sigma_min: f64,
    /// Largest noise level (80).
    pub sigma_max: f64,
    /// Standard deviation of the data (0.5).
    pub sigma_data: f64,
    /// Layout of the noise levels (`karras`).
    pub sigma_schedule: SigmaSchedule,
    /// Training timesteps (1000; unused by sampling, kept for the config file).
    pub num_train_timesteps: usize,
    /// `epsilon` (Karras' `F`, `c_out > 0`) or `v_prediction` (`c_out < 0`).
    pub prediction_type: PredictionType,
    /// Karras schedule exponent ρ (7).
    pub rho: f64,
    /// Last noise level (`zero`).
    pub final_sigmas_type: FinalSigmas,
}

impl Default for EdmEulerConfig {
    fn default() -> Self {
        Self {
            sigma_min: 0.002,
            sigma_max: 80.0,
            sigma_data: 0.5,
            sigma_schedule: SigmaSchedule::Karras,
            num_train_timesteps: 1000,
            prediction_type: PredictionType::Epsilon,
            rho: 7.0,
            final_sigmas_type: FinalSigmas::Zero,
        }
    }
}

impl SchedulerConfig for EdmEulerConfig {
    const NAME: &'static str = "EDMEulerScheduler";
    const ENUM_KEYS: &'static [(&'static str, &'static [&'static str])] = &[
        (
            "sigma_schedule",
            <SigmaSchedule as crate::config::ConfigEnum>::NAMES,
        ),
        ("prediction_type", EDM_PREDICTIONS),
        (
            "final_sigmas_type",
            <FinalSigmas as crate::config::ConfigEnum>::NAMES,
        ),
    ];

    fn validate(&self) -> Result<(), SchedulerError> {
        positive_f64("sigma_min", self.sigma_min)?;
        positive_f64("sigma_max", self.sigma_max)?;
        increasing("sigma_min", self.sigma_min, "sigma_max", self.sigma_max)?;
        positive_f64("sigma_data", self.sigma_data)?;
        positive_f64("rho", self.rho)?;
        crate::error::train_timesteps(self.num_train_timesteps)?;
        check_edm_prediction(self.prediction_type)
    }
}

impl EdmEulerConfig {
    /// Builds the schedule for `num_inference_steps` steps (diffusers' `set_timesteps`).
    ///
    /// # Errors
    /// The first invalid field, or [`SchedulerError::Zero`] for 0 steps.
    pub fn init(&self, num_inference_steps: usize) -> Result<EdmEulerScheduler, SchedulerError> {
        self.validate()?;
        let n = num_inference_steps;
        let mut sigmas = match self.sigma_schedule {
            SigmaSchedule::Karras => karras_ramp(n, self.sigma_min, self.sigma_max, self.rho)?,
            SigmaSchedule::Exponential => exponential_sigmas(n, self.sigma_min, self.sigma_max)?,
        };
        sigmas.push(match self.final_sigmas_type {
            FinalSigmas::Zero => 0.0,
            FinalSigmas::SigmaMin => sigmas[n - 1],
        });
        Ok(EdmEulerScheduler {
            config: self.clone(),
            sigmas,
        })
    }
}

/// diffusers' `EDMEulerScheduler` (Karras et al. Algorithm 2, Euler steps, no churn) with an
/// explicit step index. At step `i` (σ = `sigmas[i]`): model input `c_in(σ)·x`, model time
/// `c_noise(σ) = ln(σ)/4`, denoised `D = c_skip·x + c_out·F` (`c_out` negated for
/// `v_prediction`), `x ← x + (σ_{i+1} − σ)·(x − D)/σ`. `init_noise_sigma = √(σ_max² + 1)`, as in
/// diffusers.
///
/// ```
/// use burn::tensor::Tensor;
/// use vidgen_schedulers::edm::{EdmEulerConfig, edm_preconditioning};
/// use vidgen_schedulers::{NoiseGenerator, Sampler, sample};
/// type B = burn::backend::Flex;
///
/// let scheduler = EdmEulerConfig::default().init(20).unwrap();
/// assert_eq!((scheduler.num_steps(), scheduler.sigmas()[20]), (20, 0.0));
/// let mut rng = NoiseGenerator::seed_from_u64(0);
/// let noise = rng.normal::<B, 2>([2, 4], &Default::default());
/// // The ideal network for data ≡ −0.2: F = (x* − c_skip·x)/c_out with x = input/c_in.
/// let model = |input: Tensor<B, 2>, c_noise: f64| {
///     let p = edm_preconditioning((4.0 * c_noise).exp(), 0.5);
///     (input * (-p.c_skip / p.c_in) - 0.2) / p.c_out
/// };
/// let x = sample(&scheduler, model, noise, &mut rng).unwrap();
/// assert!((x + 0.2).abs().max().into_scalar() < 1e-4);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EdmEulerScheduler {
    config: EdmEulerConfig,
    sigmas: Vec<f64>,
}

impl EdmEulerScheduler {
    /// The configuration.
    pub fn config(&self) -> &EdmEulerConfig {
        &self.config
    }

    /// The `num_steps() + 1` noise levels, the last one final (0 or the last sampling σ).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// The model times `ln(σ_i)/4` of every step (diffusers' `timesteps`).
    pub fn timesteps(&self) -> Vec<f64> {
        (0..self.num_steps()).map(|i| self.model_time(i)).collect()
    }
}

impl Sampler for EdmEulerScheduler {
    fn num_steps(&self) -> usize {
        self.sigmas.len() - 1
    }

    fn model_time(&self, i: usize) -> f64 {
        self.sigmas[i].ln() / 4.0
    }

    fn init_noise_sigma(&self) -> f64 {
        (self.config.sigma_max.powi(2) + 1.0).sqrt()
    }

    fn scale_model_input<B: Backend, const D: usize>(
        &self,
        i: usize,
        sample: Tensor<B, D>,
    ) -> Tensor<B, D> {
        sample * edm_preconditioning(self.sigmas[i], self.config.sigma_data).c_in
    }

    fn needs_noise(&self, _i: usize) -> bool {
        false
    }

    fn step<B: Backend, const D: usize>(
        &self,
        i: usize,
        model_output: Tensor<B, D>,
        sample: Tensor<B, D>,
        _noise: Option<Tensor<B, D>>,
    ) -> Result<Tensor<B, D>, SchedulerError> {
        step_in_range(i, self.num_steps())?;
        let sigma = self.sigmas[i];
        let p = edm_preconditioning(sigma, self.config.sigma_data);
        let c_out = match self.config.prediction_type {
            PredictionType::VPrediction => -p.c_out,
            _ => p.c_out,
        };
        let denoised = sample.clone() * p.c_skip + model_output * c_out;
        let d = (sample.clone() - denoised) / sigma;
        Ok(sample + d * (self.sigmas[i + 1] - sigma))
    }
}
