//! diffusers' `EulerDiscreteScheduler` behind the [`Sampler`] trait: a discrete-time (DDPM-beta)
//! model sampled with Karras et al.'s Euler steps in σ = √((1 − ᾱ)/ᾱ).

use super::{FinalSigmas, karras_unchecked};
use crate::betas::{BetaSchedule, alphas_cumprod, betas, linspace, rescale_zero_snr};
use crate::common::{PredictionType, Sampler, TimestepSpacing};
use crate::config::{ConfigEnum, SchedulerConfig, config_enum};
use crate::error::{SchedulerError, increasing, positive, positive_f64, step_in_range};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

config_enum! {
    /// How σ is interpolated at fractional timesteps (diffusers' `interpolation_type`).
    pub enum InterpolationType {
        /// Linear in σ (`np.interp`); implemented.
        Linear = "linear",
        /// Log-linear; not implemented (rejected by `validate`).
        LogLinear = "log_linear",
    }
}

config_enum! {
    /// What the model is conditioned on (diffusers' `timestep_type`).
    pub enum TimestepType {
        /// The (fractional) training timestep.
        Discrete = "discrete",
        /// `ln(σ)/4`, used only with `v_prediction` (as in diffusers).
        Continuous = "continuous",
    }
}

/// Configuration of [`EulerDiscreteScheduler`]; keys and defaults are diffusers'
/// `EulerDiscreteScheduler`. Not implemented, and rejected by `validate`:
/// `use_exponential_sigmas`, `use_beta_sigmas`, `interpolation_type = "log_linear"`. Beyond
/// diffusers, `beta_schedule = "sigmoid"` is accepted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct EulerDiscreteConfig {
    /// Training timesteps `N` (1000).
    pub num_train_timesteps: usize,
    /// First beta (0.0001).
    pub beta_start: f64,
    /// Last beta (0.02).
    pub beta_end: f64,
    /// Beta layout (`linear`).
    pub beta_schedule: BetaSchedule,
    /// Explicit betas; used whenever present, as in diffusers.
    pub trained_betas: Option<Vec<f64>>,
    /// What the model predicts (`epsilon`).
    pub prediction_type: PredictionType,
    /// σ interpolation (`linear`; only `linear` is implemented).
    pub interpolation_type: InterpolationType,
    /// Resample σ on Karras et al.'s ρ = 7 schedule.
    pub use_karras_sigmas: bool,
    /// Not implemented: must be `false`.
    pub use_exponential_sigmas: bool,
    /// Not implemented: must be `false`.
    pub use_beta_sigmas: bool,
    /// Lower end of the Karras schedule (default: σ of the last inference timestep).
    pub sigma_min: Option<f64>,
    /// Upper end of the Karras schedule (default: σ of the first inference timestep).
    pub sigma_max: Option<f64>,
    /// Timestep spacing (`linspace`).
    pub timestep_spacing: TimestepSpacing,
    /// Model conditioning (`discrete`).
    pub timestep_type: TimestepType,
    /// Offset added to `leading` timesteps (0).
    pub steps_offset: usize,
    /// Rescale betas to zero terminal SNR (the last ᾱ is then set to 2⁻²⁴, as diffusers does).
    pub rescale_betas_zero_snr: bool,
    /// Final σ (`zero`, or `sigma_min` = σ of training timestep 0).
    pub final_sigmas_type: FinalSigmas,
}

impl Default for EulerDiscreteConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            trained_betas: None,
            prediction_type: PredictionType::Epsilon,
            interpolation_type: InterpolationType::Linear,
            use_karras_sigmas: false,
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
            sigma_min: None,
            sigma_max: None,
            timestep_spacing: TimestepSpacing::Linspace,
            timestep_type: TimestepType::Discrete,
            steps_offset: 0,
            rescale_betas_zero_snr: false,
            final_sigmas_type: FinalSigmas::Zero,
        }
    }
}

fn unsupported(
    field: &'static str,
    value: &str,
    supported: &'static [&'static str],
) -> SchedulerError {
    SchedulerError::Unsupported {
        field,
        value: value.into(),
        supported,
    }
}

impl SchedulerConfig for EulerDiscreteConfig {
    const NAME: &'static str = "EulerDiscreteScheduler";
    const ENUM_KEYS: &'static [(&'static str, &'static [&'static str])] = &[
        ("beta_schedule", BetaSchedule::NAMES),
        ("prediction_type", PredictionType::NAMES),
        ("interpolation_type", InterpolationType::NAMES),
        ("timestep_spacing", TimestepSpacing::NAMES),
        ("timestep_type", TimestepType::NAMES),
        ("final_sigmas_type", FinalSigmas::NAMES),
    ];

    fn validate(&self) -> Result<(), SchedulerError> {
        crate::error::train_timesteps(self.num_train_timesteps)?;
        if self.use_exponential_sigmas {
            return Err(unsupported("use_exponential_sigmas", "true", &["false"]));
        }
        if self.use_beta_sigmas {
            return Err(unsupported("use_beta_sigmas", "true", &["false"]));
        }
        if self.interpolation_type != InterpolationType::Linear {
            return Err(unsupported(
                "interpolation_type",
                self.interpolation_type.name(),
                &["linear"],
            ));
        }
        if let Some(s) = self.sigma_min {
            positive_f64("sigma_min", s)?;
        }
        if let Some(s) = self.sigma_max {
            positive_f64("sigma_max", s)?;
        }
        if let (Some(lo), Some(hi)) = (self.sigma_min, self.sigma_max) {
            increasing("sigma_min", lo, "sigma_max", hi)?;
        }
        self.alphas_cumprod().map(|_| ())
    }
}

impl EulerDiscreteConfig {
    /// `ᾱ` over the training timesteps, in f64 (diffusers computes it in f32).
    ///
    /// # Errors
    /// As [`betas`].
    pub fn alphas_cumprod(&self) -> Result<Vec<f64>, SchedulerError> {
        let b = betas(
            self.beta_schedule,
            self.num_train_timesteps,
            self.beta_start,
            self.beta_end,
            self.trained_betas.as_deref(),
        )?;
        if !self.rescale_betas_zero_snr {
            return Ok(alphas_cumprod(&b));
        }
        let mut ac = alphas_cumprod(&rescale_zero_snr(&b));
        if let Some(last) = ac.last_mut() {
            *last = 2f64.powi(-24);
        }
        Ok(ac)
    }

    fn timesteps(&self, n: usize) -> Vec<f64> {
        let big_n = self.num_train_timesteps;
        match self.timestep_spacing {
            TimestepSpacing::Linspace => linspace(0.0, (big_n - 1) as f64, n)
                .into_iter()
                .rev()
                .collect(),
            TimestepSpacing::Leading => (0..n)
                .rev()
                .map(|k| (k * (big_n / n) + self.steps_offset) as f64)
                .collect(),
            TimestepSpacing::Trailing => {
                let ratio = big_n as f64 / n as f64;
                (0..n)
                    .map(|k| (big_n as f64 - k as f64 * ratio).round_ties_even() - 1.0)
                    .collect()
            }
        }
    }

    /// Builds the schedule for `num_inference_steps` steps (diffusers' `set_timesteps`).
    ///
    /// # Errors
    /// The first invalid field, [`SchedulerError::Zero`] for 0 steps, or
    /// [`SchedulerError::TooManySteps`] for more steps than `num_train_timesteps`.
    pub fn init(
        &self,
        num_inference_steps: usize,
    ) -> Result<EulerDiscreteScheduler, SchedulerError> {
        self.validate()?;
        let n = num_inference_steps;
        positive("num_inference_steps", n)?;
        if n > self.num_train_timesteps {
            return Err(SchedulerError::TooManySteps {
                num_inference_steps: n,
                num_train_timesteps: self.num_train_timesteps,
            });
        }
        let table: Vec<f64> = self
            .alphas_cumprod()?
            .iter()
            .map(|a| ((1.0 - a) / a).sqrt())
            .collect();
        let log_table: Vec<f64> = table.iter().map(|s| s.ln()).collect();
        let mut timesteps = self.timesteps(n);
        let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| interp(t, &table)).collect();
        if self.use_karras_sigmas {
            let lo = self.sigma_min.unwrap_or(sigmas[n - 1]);
            let hi = self.sigma_max.unwrap_or(sigmas[0]);
            sigmas = karras_unchecked(n, lo, hi, 7.0);
            timesteps = sigmas.iter().map(|&s| sigma_to_t(s, &log_table)).collect();
        }
        sigmas.push(match self.final_sigmas_type {
            FinalSigmas::Zero => 0.0,
            FinalSigmas::SigmaMin => table[0],
        });
        if self.timestep_type == TimestepType::Continuous
            && self.prediction_type == PredictionType::VPrediction
        {
            timesteps = sigmas[..n].iter().map(|s| s.ln() / 4.0).collect();
        }
        Ok(EulerDiscreteScheduler {
            config: self.clone(),
            timesteps,
            sigmas,
        })
    }
}

/// σ at a fractional timestep, linear between table entries, clamped at the ends (`np.interp`).
fn interp(t: f64, table: &[f64]) -> f64 {
    let last = table.len() - 1;
    if t <= 0.0 {
        return table[0];
    }
    if t >= last as f64 {
        return table[last];
    }
    let lo = t.floor() as usize;
    let w = t - lo as f64;
    table[lo] + w * (table[lo + 1] - table[lo])
}

/// diffusers' `_sigma_to_t`: the fractional timestep whose `ln σ` interpolates linearly between
/// its neighbours in `log_table` (increasing), clamped to `[0, N − 1]`.
pub(crate) fn sigma_to_t(sigma: f64, log_table: &[f64]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    let below = log_table.iter().take_while(|&&l| l <= log_sigma).count();
    let low = below.saturating_sub(1).min(log_table.len() - 2);
    let (l, h) = (log_table[low], log_table[low + 1]);
    let w = ((l - log_sigma) / (l - h)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}

/// diffusers' `EulerDiscreteScheduler` (no churn) with an explicit step index. At step `i`
/// (σ = `sigmas[i]`): model input `x/√(σ² + 1)`, model time `timesteps[i]`, `x₀` from the
/// prediction (`x − σ·ε`, `−σ/√(σ²+1)·v + x/(σ²+1)`, or the sample), then
/// `x ← x + (σ_{i+1} − σ)·(x − x₀)/σ`.
///
/// ```
/// use burn::tensor::Tensor;
/// use vidgen_schedulers::edm::EulerDiscreteConfig;
/// use vidgen_schedulers::TimestepSpacing;
/// use vidgen_schedulers::{NoiseGenerator, PredictionType, sample};
/// type B = burn::backend::Flex;
///
/// let config = EulerDiscreteConfig {
///     prediction_type: PredictionType::Sample,
///     timestep_spacing: TimestepSpacing::Trailing,
///     ..Default::default()
/// };
/// let scheduler = config.init(10).unwrap();
/// let mut rng = NoiseGenerator::seed_from_u64(0);
/// let noise = rng.normal::<B, 2>([2, 4], &Default::default());
/// // A model that always predicts x₀ = 0.5: the last step (to σ = 0) lands on it.
/// let model = |x: Tensor<B, 2>, _t: f64| x.zeros_like() + 0.5;
/// let x = sample(&scheduler, model, noise, &mut rng).unwrap();
/// assert!((x - 0.5).abs().max().into_scalar() < 1e-5);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EulerDiscreteScheduler {
    config: EulerDiscreteConfig,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
}

impl EulerDiscreteScheduler {
    /// The configuration.
    pub fn config(&self) -> &EulerDiscreteConfig {
        &self.config
    }

    /// The model times of every step (diffusers' `timesteps`).
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// The `num_steps() + 1` noise levels, the last one final.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
}

impl Sampler for EulerDiscreteScheduler {
    fn num_steps(&self) -> usize {
        self.timesteps.len()
    }

    fn model_time(&self, i: usize) -> f64 {
        self.timesteps[i]
    }

    /// `max σ` for `linspace`/`trailing` spacing, `√(max σ² + 1)` for `leading` (diffusers).
    fn init_noise_sigma(&self) -> f64 {
        let max = self.sigmas.iter().copied().fold(0.0, f64::max);
        match self.config.timestep_spacing {
            TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
            _ => max,
        }
    }

    fn scale_model_input<B: Backend, const D: usize>(
        &self,
        i: usize,
        sample: Tensor<B, D>,
    ) -> Tensor<B, D> {
        sample / (self.sigmas[i].powi(2) + 1.0).sqrt()
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
        let x0 = match self.config.prediction_type {
            PredictionType::Epsilon => sample.clone() - model_output * sigma,
            PredictionType::VPrediction => {
                let s2 = sigma * sigma + 1.0;
                model_output * (-sigma / s2.sqrt()) + sample.clone() / s2
            }
            PredictionType::Sample => model_output,
        };
        let d = (sample.clone() - x0) / sigma;
        Ok(sample + d * (self.sigmas[i + 1] - sigma))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigma_to_t_inverts_the_table() {
        let table = [0.1f64, 0.2, 0.4, 0.8];
        let logs: Vec<f64> = table.iter().map(|s| s.ln()).collect();
        assert_eq!(sigma_to_t(0.4, &logs), 2.0);
        assert!((sigma_to_t(0.2f64.sqrt() * 0.4f64.sqrt(), &logs) - 1.5).abs() < 1e-12);
        assert_eq!(sigma_to_t(0.01, &logs), 0.0);
        assert_eq!(sigma_to_t(5.0, &logs), 3.0);
        assert!((interp(1.25, &table) - 0.25).abs() < 1e-15);
        assert_eq!(interp(7.0, &table), 0.8);
    }

    #[test]
    fn spacings() {
        let c = |s, off| EulerDiscreteConfig {
            timestep_spacing: s,
            steps_offset: off,
            ..Default::default()
        };
        assert_eq!(
            c(TimestepSpacing::Leading, 1).timesteps(4),
            vec![751.0, 501.0, 251.0, 1.0]
        );
        assert_eq!(
            c(TimestepSpacing::Trailing, 0).timesteps(3),
            vec![999.0, 666.0, 332.0]
        );
        assert_eq!(
            c(TimestepSpacing::Linspace, 0).timesteps(2),
            vec![999.0, 0.0]
        );
    }
}
