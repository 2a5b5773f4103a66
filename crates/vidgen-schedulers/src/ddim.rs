//! DDIM: denoising diffusion implicit models (Song et al. 2021), with diffusers' numbers
//! (`DDIMScheduler`, 0.42.1) and key names.
//!
//! Same forward process and `ᾱ` table as [DDPM](crate::ddpm). Sampling over the inference
//! timesteps `t_0 > … > t_{n−1}` is Song et al. eq. 12: at step `i`, with `t = t_i` and
//! `t' = t_{i+1}` (after the last step `ᾱ_{t'}` is `final_alpha_cumprod`: 1 with
//! `set_alpha_to_one`, else `ᾱ_0`),
//!
//! 1. `x̂₀` and `ε̂` from the model output — ε: `x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t`; sample:
//!    `ε̂ = (x_t − √ᾱ_t·x̂₀)/√(1−ᾱ_t)`; v: `x̂₀ = √ᾱ_t·x_t − √(1−ᾱ_t)·v̂`,
//!    `ε̂ = √ᾱ_t·v̂ + √(1−ᾱ_t)·x_t` — then dynamic thresholding or clipping of `x̂₀` (ε̂ stays
//!    the unclipped one unless [`Ddim::with_clipped_model_output`] re-derives it from the
//!    clipped `x̂₀`);
//! 2. `σ_t = η·√((1−ᾱ_{t'})/(1−ᾱ_t)·(1 − ᾱ_t/ᾱ_{t'}))` (eq. 16; η = 0 is deterministic DDIM,
//!    η = 1 the DDPM posterior variance);
//! 3. `x_{t'} = √ᾱ_{t'}·x̂₀ + √(1−ᾱ_{t'}−σ_t²)·ε̂ + σ_t·z`, `z ~ N(0, I)` from the caller when
//!    `σ_t > 0`.
//!
//! `eta` is not part of diffusers' config (it is an argument of `DDIMScheduler.step`); here it is
//! an explicit argument of [`DdimConfig::init`], fixed for the whole schedule.
//!
//! The previous timestep `t'` ([`PrevTimestep`], config key `prev_timestep`) is by default the
//! next entry of the timestep table (`timesteps()[i + 1]`; after the last step, none). diffusers
//! computes `t' = t − ⌊N/n⌋` and takes `final_alpha_cumprod` when that is negative
//! ([`PrevTimestep::Diffusers`] reproduces this). The two agree for `leading` spacing (unless
//! `steps_offset ≥ ⌊N/n⌋`, where diffusers' last step goes to `ᾱ_{offset−⌊N/n⌋}` instead of the
//! final `ᾱ`) and for `trailing` when `n` divides `N`. Elsewhere diffusers steps to timesteps that
//! are not in its own table: `trailing` with 9 of 1000 steps goes 555 → 444 and then evaluates the
//! model at 443; `linspace` with 4 steps goes 999 → 749 and evaluates at 666. The sample then
//! carries the noise level of one timestep while the model is told another. The table is the
//! default because it keeps the two equal at every step and ends exactly on the last table entry
//! (then on `final_alpha_cumprod`), as Song et al.'s sub-sequence sampling prescribes; choose
//! `diffusers` to reproduce a diffusers pipeline's numbers (for a 9-step zero-SNR trailing
//! v-prediction schedule the two trajectories differ by up to 4.5e−4 with η = 0, 3.5e−3 with
//! η = 1; with `linspace` they are different samplers).
//!
//! Other divergences from diffusers: its `DDIMScheduler` rejects the `sigmoid` beta schedule;
//! this accepts it (the same betas as DDPM's). Also: explicit step index, f64 schedule math,
//! caller noise, typed errors, and `√(1−ᾱ_{t'}−σ_t²)` taken of `max(·, 0)`.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use vidgen_schedulers::ddim::DdimConfig;
//! use vidgen_schedulers::{NoiseGenerator, Sampler, sample};
//!
//! let device = Default::default();
//! let ddim = DdimConfig::default().init(5, 0.0).unwrap();
//! assert_eq!(ddim.timesteps(), &[800, 600, 400, 200, 0]);
//! assert!((0..5).all(|i| !ddim.needs_noise(i))); // eta = 0: deterministic
//! let mut noise = NoiseGenerator::seed_from_u64(0);
//! let x_t = noise.normal::<Flex, 3>([2, 3, 4], &device);
//! let model = |x: Tensor<Flex, 3>, t: f64| x.tanh() * (t / 1000.0);
//! let x0 = sample(&ddim, model, x_t, &mut noise).unwrap();
//! assert_eq!(x0.dims(), [2, 3, 4]);
//! assert!(x0.to_data().iter::<f32>().all(|v| v.is_finite()));
//! ```

use crate::betas::BetaSchedule;
use crate::common::{PredictionType, Sampler};
use crate::config::{ConfigEnum, SchedulerConfig, config_enum};
use crate::ddpm::shared::{self, TableFields, X0Rule};
use crate::ddpm::{DiscreteNoising, TimestepSpacing};
use crate::error::{SchedulerError, non_negative, step_in_range};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

config_enum! {
    /// How [`Ddim`] picks the timestep `t'` a step goes to (see the [module docs](self)).
    pub enum PrevTimestep {
        /// The next entry of the timestep table; after the last step, `final_alpha_cumprod`.
        Table = "table",
        /// diffusers' `t − ⌊num_train_timesteps / num_inference_steps⌋`; `final_alpha_cumprod`
        /// when that is negative.
        Diffusers = "diffusers",
    }
}

/// Configuration of [`Ddim`]: diffusers' `DDIMScheduler` keys and defaults, so a diffusers
/// `scheduler_config.json` loads with [`SchedulerConfig::from_json`], plus `prev_timestep`, which
/// diffusers does not have.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct DdimConfig {
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
    /// Clamp `x̂₀` to `[−clip_sample_range, clip_sample_range]`. Default true.
    pub clip_sample: bool,
    /// `ᾱ` after the last step: 1 if true, else `ᾱ_0`. Default true.
    pub set_alpha_to_one: bool,
    /// Added to every `leading` timestep. Default 0.
    pub steps_offset: usize,
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
    /// Rescale betas to zero terminal SNR (Lin et al. 2023, Algorithm 1). Default false.
    pub rescale_betas_zero_snr: bool,
    /// Where each step goes: the next table entry, or diffusers' `t − ⌊N/n⌋`. Not a diffusers
    /// key (diffusers always does the latter). Default `table`.
    pub prev_timestep: PrevTimestep,
}

impl Default for DdimConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            trained_betas: None,
            clip_sample: true,
            set_alpha_to_one: true,
            steps_offset: 0,
            prediction_type: PredictionType::Epsilon,
            thresholding: false,
            dynamic_thresholding_ratio: 0.995,
            clip_sample_range: 1.0,
            sample_max_value: 1.0,
            timestep_spacing: TimestepSpacing::Leading,
            rescale_betas_zero_snr: false,
            prev_timestep: PrevTimestep::Table,
        }
    }
}

impl SchedulerConfig for DdimConfig {
    const NAME: &'static str = "DDIMScheduler";
    const ENUM_KEYS: &'static [(&'static str, &'static [&'static str])] = &[
        ("beta_schedule", BetaSchedule::NAMES),
        ("prediction_type", PredictionType::NAMES),
        ("timestep_spacing", TimestepSpacing::NAMES),
        ("prev_timestep", PrevTimestep::NAMES),
    ];

    fn validate(&self) -> Result<(), SchedulerError> {
        self.table_fields().validate()?;
        shared::validate_x0_fields(
            self.clip_sample_range,
            self.dynamic_thresholding_ratio,
            self.sample_max_value,
        )
    }
}

impl DdimConfig {
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
    /// (diffusers' `set_timesteps`) with stochasticity `eta` (η of Song et al. eq. 16: 0 is
    /// deterministic, 1 the DDPM posterior variance).
    ///
    /// # Errors
    /// [`SchedulerError::Zero`] for 0 steps, [`SchedulerError::TooManySteps`] for more steps than
    /// `num_train_timesteps`, [`SchedulerError::OutOfDomain`] for a negative or non-finite `eta`
    /// or a `steps_offset` that pushes a timestep past the table, and any error of
    /// [`SchedulerConfig::validate`].
    pub fn init(&self, num_inference_steps: usize, eta: f64) -> Result<Ddim, SchedulerError> {
        self.validate()?;
        non_negative("eta", eta)?;
        let timesteps = shared::inference_timesteps(
            self.timestep_spacing,
            self.num_train_timesteps,
            num_inference_steps,
            self.steps_offset,
        )?;
        let alphas_cumprod = self.table_fields().alphas_cumprod()?;
        let final_alpha_cumprod = if self.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Ok(Ddim {
            config: self.clone(),
            timesteps,
            alphas_cumprod,
            final_alpha_cumprod,
            eta,
            use_clipped_model_output: false,
        })
    }
}

/// The DDIM sampler and trainer (see the [module docs](self) for the formulas).
#[derive(Clone, Debug)]
pub struct Ddim {
    config: DdimConfig,
    timesteps: Vec<usize>,
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    eta: f64,
    use_clipped_model_output: bool,
}

impl Ddim {
    /// Re-derive `ε̂` from the clipped / thresholded `x̂₀` (diffusers' `use_clipped_model_output`
    /// argument of `step`). Off by default.
    pub fn with_clipped_model_output(mut self, on: bool) -> Self {
        self.use_clipped_model_output = on;
        self
    }

    /// The config this was built from.
    pub fn config(&self) -> &DdimConfig {
        &self.config
    }

    /// η of Song et al. eq. 16.
    pub fn eta(&self) -> f64 {
        self.eta
    }

    /// The inference timesteps, descending.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// `ᾱ` after the last step: 1 with `set_alpha_to_one`, else `ᾱ_0`.
    pub fn final_alpha_cumprod(&self) -> f64 {
        self.final_alpha_cumprod
    }

    /// The timestep step `i` goes to, by the config's [`PrevTimestep`]; `None` where the step
    /// goes to `final_alpha_cumprod` (after the last step, or where diffusers' `t − ⌊N/n⌋` is
    /// negative).
    pub fn prev_timestep(&self, i: usize) -> Option<usize> {
        match self.config.prev_timestep {
            PrevTimestep::Table => self.timesteps.get(i + 1).copied(),
            PrevTimestep::Diffusers => {
                let ratio = self.config.num_train_timesteps / self.timesteps.len();
                self.timesteps.get(i)?.checked_sub(ratio)
            }
        }
    }

    /// `(ᾱ_t, ᾱ_{t'})` at step `i`.
    fn alphas(&self, i: usize) -> (f64, f64) {
        let a_t = self.alphas_cumprod[self.timesteps[i]];
        let a_prev = self
            .prev_timestep(i)
            .map_or(self.final_alpha_cumprod, |p| self.alphas_cumprod[p]);
        (a_t, a_prev)
    }

    /// `σ_t` of step 2 in the module docs, at step `i`.
    pub fn std_dev(&self, i: usize) -> f64 {
        let (a_t, a_prev) = self.alphas(i);
        let variance = (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev);
        self.eta * variance.sqrt()
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
}

impl DiscreteNoising for Ddim {
    fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    fn prediction_type(&self) -> PredictionType {
        self.config.prediction_type
    }
}

impl Sampler for Ddim {
    fn num_steps(&self) -> usize {
        self.timesteps.len()
    }

    /// The timestep `t_i` as f64.
    fn model_time(&self, i: usize) -> f64 {
        self.timesteps[i] as f64
    }

    /// True iff `σ_t > 0` at step `i` (needs `eta > 0`).
    fn needs_noise(&self, i: usize) -> bool {
        i < self.timesteps.len() && self.std_dev(i) > 0.0
    }

    /// One DDIM step (Song et al. eq. 12; steps 1–3 of the module docs).
    ///
    /// # Shapes
    /// `model_output`, `sample`, `noise`: `[B, ...]`, all the same shape
    ///
    /// # Errors
    /// [`SchedulerError::StepOutOfRange`], or [`SchedulerError::MissingNoise`] when `σ_t > 0` and
    /// `noise` is `None`.
    fn step<B: Backend, const D: usize>(
        &self,
        i: usize,
        model_output: Tensor<B, D>,
        sample: Tensor<B, D>,
        noise: Option<Tensor<B, D>>,
    ) -> Result<Tensor<B, D>, SchedulerError> {
        step_in_range(i, self.timesteps.len())?;
        let std = self.std_dev(i);
        if std > 0.0 && noise.is_none() {
            return Err(SchedulerError::MissingNoise { index: i });
        }
        let (a_t, a_prev) = self.alphas(i);
        let rule = self.x0_rule();
        let x0 = rule.x0(a_t, model_output.clone(), sample.clone());
        let mut eps = rule.eps(a_t, model_output, sample.clone());
        let x0 = rule.post_process(x0);
        if self.use_clipped_model_output {
            eps = (sample - x0.clone() * a_t.sqrt()) / (1.0 - a_t).sqrt();
        }
        let direction = (1.0 - a_prev - std * std).max(0.0).sqrt();
        let prev = x0 * a_prev.sqrt() + eps * direction;
        Ok(match noise {
            Some(z) if std > 0.0 => prev + z * std,
            _ => prev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_zero_needs_no_noise_and_eta_one_does() {
        let c = DdimConfig::default();
        let d0 = c.init(4, 0.0).unwrap();
        assert!((0..4).all(|i| !d0.needs_noise(i)));
        let d1 = c.init(4, 1.0).unwrap();
        // The last step lands on ᾱ = 1 (set_alpha_to_one): σ = 0.
        assert_eq!(
            (0..4).map(|i| d1.needs_noise(i)).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert!(matches!(
            c.init(4, -0.5).unwrap_err(),
            SchedulerError::OutOfDomain { field: "eta", .. }
        ));
    }

    #[test]
    fn prev_timestep_table_vs_diffusers() {
        let table = DdimConfig {
            timestep_spacing: TimestepSpacing::Trailing,
            ..Default::default()
        };
        let diffusers = DdimConfig {
            prev_timestep: PrevTimestep::Diffusers,
            ..table.clone()
        };
        let prevs = |c: &DdimConfig, n: usize| {
            let d = c.init(n, 0.0).unwrap();
            (0..n).map(|i| d.prev_timestep(i)).collect::<Vec<_>>()
        };
        // Trailing 9 of 1000: [999, 888, 777, 666, 555, 443, 332, 221, 110]; ⌊1000/9⌋ = 111.
        let (t, d) = (prevs(&table, 9), prevs(&diffusers, 9));
        assert_eq!(t[4], Some(443));
        assert_eq!(d[4], Some(444));
        assert_eq!((t[8], d[8]), (None, None)); // 110 − 111 < 0: final_alpha_cumprod
        assert!((0..9).filter(|&i| i != 4).all(|i| t[i] == d[i]));
        // n divides N: identical.
        assert_eq!(prevs(&table, 8), prevs(&diffusers, 8));
        // Leading with steps_offset ≥ ⌊N/n⌋: diffusers' last step goes to timestep 0.
        let offset = DdimConfig {
            steps_offset: 111,
            prev_timestep: PrevTimestep::Diffusers,
            ..Default::default()
        };
        assert_eq!(prevs(&offset, 9)[8], Some(0));
        assert_eq!(offset.init(9, 0.0).unwrap().prev_timestep(9), None);
    }

    #[test]
    fn prev_timestep_config_key() {
        // Absent (a diffusers file): the table.
        let loaded = DdimConfig::from_json(r#"{"_class_name": "DDIMScheduler"}"#).unwrap();
        assert_eq!(loaded.config.prev_timestep, PrevTimestep::Table);
        assert!(loaded.unknown_keys.is_empty());
        let c = DdimConfig {
            prev_timestep: PrevTimestep::Diffusers,
            ..Default::default()
        };
        let json = c.to_json();
        assert!(json.contains(r#""prev_timestep": "diffusers""#), "{json}");
        assert_eq!(DdimConfig::from_json(&json).unwrap().strict().unwrap(), c);
        let err = DdimConfig::from_json(r#"{"prev_timestep": "next"}"#).unwrap_err();
        assert!(
            matches!(
                &err,
                SchedulerError::UnknownVariant { field, value, expected }
                    if field == "prev_timestep" && value == "next" && *expected == ["table", "diffusers"]
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("next"), "{err}");
        assert_eq!(
            "diffusers".parse::<PrevTimestep>().unwrap(),
            PrevTimestep::Diffusers
        );
        assert_eq!(PrevTimestep::Table.name(), "table");
    }
}
