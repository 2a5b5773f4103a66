//! Rectified flow (Liu et al. 2022; flow matching, Lipman et al. 2023) as trained and sampled by
//! Open-Sora 1.2 (report sec. 4.2: "transition to rectified flow", "logit-norm sampling and
//! resolution-aware timestep sampling"), with the sampling schedule of diffusers'
//! `FlowMatchEulerDiscreteScheduler` (0.42.1), number for number.
//!
//! # Convention
//! Time `t = σ ∈ [0, 1]` runs from data (`σ = 0`) to noise (`σ = 1`):
//!
//! `x_σ = (1 − σ)·x₀ + σ·ε`,  velocity target `v = dx_σ/dσ = ε − x₀`,
//!
//! as in diffusers and SD3 (Esser et al. 2024). The model is conditioned on `σ·num_train_timesteps`
//! (diffusers' `timestep`). Open-Sora's code uses the same `x_t` but the opposite velocity,
//! `v_os = x₀ − ε` (its `training_losses` regresses `x_start − noise`), and so steps with
//! `x ← x + (σ_i − σ_{i+1})·v_os`; the two are the same sampler with the sign folded into `v`.
//!
//! # Sampling schedule (diffusers' `set_timesteps`)
//! 1. `σ_max, σ_min` from the training grid `(N, N−1, …, 1)/N`, shifted statically when
//!    `use_dynamic_shifting` is off (so a static shift is applied twice to `σ_min`, as in diffusers);
//! 2. `σ_i = linspace(σ_max, σ_min, n)`;
//! 3. shift: static `σ ← s·σ / (1 + (s − 1)·σ)`, or dynamic (resolution-dependent)
//!    `σ ← e^μ / (e^μ + (1/σ − 1))` (`exponential`) or `μ / (μ + (1/σ − 1))` (`linear`), with `μ`
//!    given or from the image sequence length `L`:
//!    `μ = base_shift + (L − base_image_seq_len)·(max_shift − base_shift)/(max_image_seq_len − base_image_seq_len)`
//!    (diffusers' `calculate_shift`);
//! 4. optionally stretch so the last sigma is `shift_terminal`: `σ ← 1 − (1 − σ)·(1 − s_T)/(1 − σ_{n−1})`;
//! 5. optionally re-space as Karras (`ρ = 7`) or exponential sigmas between the ends;
//! 6. `timesteps = σ·N`; append `σ_n = 0` (or with `invert_sigmas`: `σ ← 1 − σ`, append `1`).
//!
//! # Sampling step (Euler)
//! `x_{i+1} = x_i + (σ_{i+1} − σ_i)·v(x_i, σ_i·N)`; with `stochastic_sampling`:
//! `x₀ = x_i − σ_i·v`, `x_{i+1} = (1 − σ_{i+1})·x₀ + σ_{i+1}·ε` (ε from the caller).
//!
//! # Training
//! See [`FlowTrainingConfig`]: `t` uniform or logit-normal, then Open-Sora 1.2's
//! resolution- and length-aware transform `t ← r·t / (1 + (r − 1)·t)` (its frame term
//! `⌊F / 17⌋·5` by default, or the pixel frame count, [`TransformFrames`]); per-frame conditioning masks
//! ([`FrameMask`]) keep conditioning frames at `t = 0`.
//!
//! Divergences from diffusers: explicit step index (no `_step_index`, no timestep lookup), schedule
//! math in f64, caller-supplied noise, typed errors where diffusers returns NaN (`shift_terminal`
//! with one step) or raises.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use vidgen_schedulers::noise::NoiseGenerator;
//! use vidgen_schedulers::rectified_flow::RectifiedFlowConfig;
//! use vidgen_schedulers::sample;
//!
//! let device = Default::default();
//! let flow = RectifiedFlowConfig { shift: 3.0, ..Default::default() }.init(8, None).unwrap();
//! // The exact velocity field of data concentrated at x₀ = 0.5: v(x, σ) = (x − x₀)/σ.
//! let x0 = 0.5;
//! let model = |x: Tensor<Flex, 3>, t: f64| (x - x0) / (t / 1000.0);
//! let mut rng = NoiseGenerator::seed_from_u64(0);
//! let noise = rng.normal::<Flex, 3>([1, 2, 3], &device);
//! let out = sample(&flow, model, noise, &mut rng).unwrap();
//! let expected = Tensor::<Flex, 3>::full([1, 2, 3], x0, &device);
//! vidgen_testing::assert_close(out, expected, vidgen_testing::Tolerance::BLOCK);
//! ```

mod open_sora;
mod training;

pub use open_sora::{OpenSoraRflow, OpenSoraRflowConfig, PixelExtent};
pub use training::{
    FlowTrainingConfig, FrameMask, MaskedTrainingBatch, TimeSampling, TransformFrames,
};

use crate::common::Sampler;
use crate::config::{ConfigEnum, SchedulerConfig, config_enum};
use crate::error::{SchedulerError, positive, positive_f64, step_in_range};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

config_enum! {
    /// How dynamic shifting maps `μ` onto the sigmas (diffusers' `time_shift_type`).
    pub enum TimeShiftType {
        /// `σ' = e^μ / (e^μ + (1/σ − 1))`.
        Exponential = "exponential",
        /// `σ' = μ / (μ + (1/σ − 1))`.
        Linear = "linear",
    }
}

/// Configuration for [`RectifiedFlow`]. Keys and defaults are those of diffusers'
/// `FlowMatchEulerDiscreteScheduler`, so its `scheduler_config.json` loads directly (see
/// [`SchedulerConfig::from_json`]).
///
/// Beta sigmas (`use_beta_sigmas`) are not implemented and rejected by
/// [`SchedulerConfig::validate`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct RectifiedFlowConfig {
    /// Training timesteps `N`; the model is conditioned on `σ·N`. Default 1000.
    pub num_train_timesteps: usize,
    /// Static shift `s` in `σ' = s·σ / (1 + (s − 1)·σ)` (used when `use_dynamic_shifting` is off).
    /// Default 1.
    pub shift: f64,
    /// Shift by `μ` per call of [`RectifiedFlowConfig::init`] (resolution-dependent). Default false.
    pub use_dynamic_shifting: bool,
    /// `μ` at `base_image_seq_len` for [`RectifiedFlowConfig::calculate_shift`]. Default 0.5.
    pub base_shift: Option<f64>,
    /// `μ` at `max_image_seq_len` for [`RectifiedFlowConfig::calculate_shift`]. Default 1.15.
    pub max_shift: Option<f64>,
    /// Sequence length where `μ = base_shift`. Default 256.
    pub base_image_seq_len: usize,
    /// Sequence length where `μ = max_shift`. Default 4096.
    pub max_image_seq_len: usize,
    /// Use `1 − σ` (Mochi). Default false.
    pub invert_sigmas: bool,
    /// Stretch the schedule so its last sigma is this value, in `(0, 1)`; `None` or `0` = off
    /// (diffusers tests it for truthiness). Default `None`.
    pub shift_terminal: Option<f64>,
    /// Re-space the sigmas as Karras et al. (2022) with `ρ = 7`. Default false.
    pub use_karras_sigmas: bool,
    /// Re-space the sigmas log-linearly. Default false.
    pub use_exponential_sigmas: bool,
    /// Beta-distributed sigmas (Lee et al. 2024). Not implemented: `true` is an error.
    pub use_beta_sigmas: bool,
    /// Map of `μ` for dynamic shifting. Default `exponential`.
    pub time_shift_type: TimeShiftType,
    /// Re-noise at each step instead of an Euler step (needs caller noise). Default false.
    pub stochastic_sampling: bool,
}

impl Default for RectifiedFlowConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            shift: 1.0,
            use_dynamic_shifting: false,
            base_shift: Some(0.5),
            max_shift: Some(1.15),
            base_image_seq_len: 256,
            max_image_seq_len: 4096,
            invert_sigmas: false,
            shift_terminal: None,
            use_karras_sigmas: false,
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
            time_shift_type: TimeShiftType::Exponential,
            stochastic_sampling: false,
        }
    }
}

impl SchedulerConfig for RectifiedFlowConfig {
    const NAME: &'static str = "FlowMatchEulerDiscreteScheduler";
    const ENUM_KEYS: &'static [(&'static str, &'static [&'static str])] =
        &[("time_shift_type", TimeShiftType::NAMES)];

    fn validate(&self) -> Result<(), SchedulerError> {
        crate::error::train_timesteps(self.num_train_timesteps)?;
        positive_f64("shift", self.shift)?;
        if let Some(t) = self.shift_terminal
            && !(0.0..1.0).contains(&t)
        {
            return Err(SchedulerError::OutOfDomain {
                field: "shift_terminal",
                value: t,
                requirement: "in [0, 1) (0 = off)",
            });
        }
        if self.use_beta_sigmas {
            return Err(SchedulerError::Unsupported {
                field: "use_beta_sigmas",
                value: "true".to_owned(),
                supported: &["false"],
            });
        }
        if self.use_karras_sigmas && self.use_exponential_sigmas {
            return Err(SchedulerError::OutOfDomain {
                field: "use_exponential_sigmas",
                value: 1.0,
                requirement: "false when use_karras_sigmas is true (at most one re-spacing)",
            });
        }
        Ok(())
    }
}

/// `n` evenly spaced values from `a` to `b`, the last exactly `b` (numpy's `linspace`).
fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    let mut v = crate::betas::linspace(a, b, n);
    if n > 1 {
        v[n - 1] = b;
    }
    v
}

/// The shift map `σ' = s·σ / (1 + (s − 1)·σ)`: diffusers' static shift, SD3's timestep shift and
/// Open-Sora 1.2's timestep transform (with `s = r`). Maps `[0, 1]` onto itself; `s > 1` moves
/// times towards noise.
pub fn shift_sigma(sigma: f64, shift: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

impl RectifiedFlowConfig {
    /// diffusers' `calculate_shift`: `μ` linear in the image sequence length `L` (latent tokens),
    /// `μ = base_shift + (L − base_image_seq_len)·(max_shift − base_shift)/(max_image_seq_len − base_image_seq_len)`.
    ///
    /// # Errors
    /// [`SchedulerError::Missing`] if `base_shift` or `max_shift` is `None`;
    /// [`SchedulerError::NotIncreasing`] if `base_image_seq_len >= max_image_seq_len`.
    pub fn calculate_shift(&self, image_seq_len: usize) -> Result<f64, SchedulerError> {
        let when = "computing mu from a sequence length";
        let base = self.base_shift.ok_or(SchedulerError::Missing {
            field: "base_shift",
            when,
        })?;
        let max = self.max_shift.ok_or(SchedulerError::Missing {
            field: "max_shift",
            when,
        })?;
        let (l0, l1) = (
            self.base_image_seq_len as f64,
            self.max_image_seq_len as f64,
        );
        crate::error::increasing("base_image_seq_len", l0, "max_image_seq_len", l1)?;
        let m = (max - base) / (l1 - l0);
        Ok(image_seq_len as f64 * m + (base - m * l0))
    }

    /// Builds the sampling schedule for `num_inference_steps` (diffusers' `set_timesteps`). `mu`
    /// is required with `use_dynamic_shifting` and ignored without it (as in diffusers).
    ///
    /// # Errors
    /// [`SchedulerError::Zero`] for 0 steps; [`SchedulerError::TooManySteps`];
    /// [`SchedulerError::Missing`] for dynamic shifting without `mu`;
    /// [`SchedulerError::OutOfDomain`] for a non-finite `mu`, `mu <= 0` with the linear map, or
    /// `shift_terminal` with a single step (diffusers returns NaN there); any error of
    /// [`SchedulerConfig::validate`].
    pub fn init(
        &self,
        num_inference_steps: usize,
        mu: Option<f64>,
    ) -> Result<RectifiedFlow, SchedulerError> {
        self.validate()?;
        positive("num_inference_steps", num_inference_steps)?;
        if num_inference_steps > self.num_train_timesteps {
            return Err(SchedulerError::TooManySteps {
                num_inference_steps,
                num_train_timesteps: self.num_train_timesteps,
            });
        }
        let mu = if self.use_dynamic_shifting {
            Some(self.check_mu(mu)?)
        } else {
            None
        };
        if self.shift_terminal.is_some_and(|t| t > 0.0) && num_inference_steps == 1 {
            return Err(SchedulerError::OutOfDomain {
                field: "num_inference_steps",
                value: 1.0,
                requirement: ">= 2 when shift_terminal is set",
            });
        }
        let (sigmas, timesteps) = self.schedule(num_inference_steps, mu);
        Ok(RectifiedFlow {
            config: self.clone(),
            training: FlowTrainingConfig::default(),
            mu,
            sigmas,
            timesteps,
        })
    }

    /// [`RectifiedFlowConfig::init`] with `μ` from [`RectifiedFlowConfig::calculate_shift`].
    ///
    /// # Errors
    /// Those of both.
    pub fn init_for_seq_len(
        &self,
        num_inference_steps: usize,
        image_seq_len: usize,
    ) -> Result<RectifiedFlow, SchedulerError> {
        self.init(
            num_inference_steps,
            Some(self.calculate_shift(image_seq_len)?),
        )
    }

    fn check_mu(&self, mu: Option<f64>) -> Result<f64, SchedulerError> {
        let mu = mu.ok_or(SchedulerError::Missing {
            field: "mu",
            when: "use_dynamic_shifting is true",
        })?;
        let linear = self.time_shift_type == TimeShiftType::Linear;
        if !mu.is_finite() || (linear && mu <= 0.0) {
            return Err(SchedulerError::OutOfDomain {
                field: "mu",
                value: mu,
                requirement: if linear {
                    "> 0 and finite (linear time shift)"
                } else {
                    "finite"
                },
            });
        }
        Ok(mu)
    }

    /// Steps 1–6 of the module docs: `(sigmas [n + 1], timesteps [n])`.
    fn schedule(&self, n: usize, mu: Option<f64>) -> (Vec<f64>, Vec<f64>) {
        let big_n = self.num_train_timesteps as f64;
        // 1. ends of diffusers' training grid, statically shifted in its `__init__`
        let (mut sigma_max, mut sigma_min) = (1.0, 1.0 / big_n);
        if !self.use_dynamic_shifting {
            sigma_max = shift_sigma(sigma_max, self.shift);
            sigma_min = shift_sigma(sigma_min, self.shift);
        }
        // 2. linear in timestep units, then back to sigmas
        let mut sigmas: Vec<f64> = linspace(sigma_max * big_n, sigma_min * big_n, n)
            .into_iter()
            .map(|t| t / big_n)
            .collect();
        // 3. shift
        for s in &mut sigmas {
            *s = match mu {
                Some(mu) => {
                    let m = match self.time_shift_type {
                        TimeShiftType::Exponential => mu.exp(),
                        TimeShiftType::Linear => mu,
                    };
                    m / (m + (1.0 / *s - 1.0))
                }
                None => shift_sigma(*s, self.shift),
            };
        }
        // 4. stretch to the terminal value
        if let Some(terminal) = self.shift_terminal.filter(|&t| t > 0.0) {
            let scale = (1.0 - sigmas[n - 1]) / (1.0 - terminal);
            sigmas
                .iter_mut()
                .for_each(|s| *s = 1.0 - (1.0 - *s) / scale);
        }
        // 5. re-spacing between the ends
        let (hi, lo) = (sigmas[0], sigmas[n - 1]);
        if self.use_karras_sigmas {
            let rho = 7.0;
            let (a, b) = (hi.powf(1.0 / rho), lo.powf(1.0 / rho));
            sigmas = linspace(0.0, 1.0, n)
                .into_iter()
                .map(|r| (a + r * (b - a)).powf(rho))
                .collect();
        } else if self.use_exponential_sigmas {
            sigmas = linspace(hi.ln(), lo.ln(), n)
                .into_iter()
                .map(f64::exp)
                .collect();
        }
        // 6. timesteps and the terminal sigma
        let end = if self.invert_sigmas {
            sigmas.iter_mut().for_each(|s| *s = 1.0 - *s);
            1.0
        } else {
            0.0
        };
        let timesteps = sigmas.iter().map(|s| s * big_n).collect();
        sigmas.push(end);
        (sigmas, timesteps)
    }
}

/// A rectified-flow sampling schedule (and the training side, see [`FlowTrainingConfig`]), built
/// by [`RectifiedFlowConfig::init`].
#[derive(Debug, Clone, PartialEq)]
pub struct RectifiedFlow {
    config: RectifiedFlowConfig,
    training: FlowTrainingConfig,
    mu: Option<f64>,
    sigmas: Vec<f64>,
    timesteps: Vec<f64>,
}

impl RectifiedFlow {
    /// Replaces the training settings (default: [`FlowTrainingConfig::default`]).
    ///
    /// # Errors
    /// Those of [`FlowTrainingConfig`]'s [`SchedulerConfig::validate`].
    pub fn with_training(mut self, training: FlowTrainingConfig) -> Result<Self, SchedulerError> {
        training.validate()?;
        self.training = training;
        Ok(self)
    }

    /// The sampling config.
    pub fn config(&self) -> &RectifiedFlowConfig {
        &self.config
    }

    /// The training settings.
    pub fn training_config(&self) -> &FlowTrainingConfig {
        &self.training
    }

    /// The `μ` used for dynamic shifting, if any.
    pub fn mu(&self) -> Option<f64> {
        self.mu
    }

    /// `σ_0 … σ_n`, with the appended terminal value (diffusers' `sigmas`).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// `σ_i·N` for `i < n` (diffusers' `timesteps`).
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// The sample at step `i` of the forward process, `σ_i·ε + (1 − σ_i)·x₀` (diffusers'
    /// `scale_noise`, e.g. to start image-to-image sampling at step `i`).
    ///
    /// # Shapes
    /// `x0`, `noise`: any shape, the same
    ///
    /// # Errors
    /// [`SchedulerError::StepOutOfRange`] if `i > n`.
    pub fn scale_noise<B: Backend, const D: usize>(
        &self,
        i: usize,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, SchedulerError> {
        step_in_range(i, self.sigmas.len())?;
        let s = self.sigmas[i];
        Ok(noise * s + x0 * (1.0 - s))
    }
}

impl Sampler for RectifiedFlow {
    fn num_steps(&self) -> usize {
        self.timesteps.len()
    }

    /// `σ_i·num_train_timesteps`.
    ///
    /// # Panics
    /// If `i >= num_steps()`.
    fn model_time(&self, i: usize) -> f64 {
        self.timesteps[i]
    }

    fn needs_noise(&self, _i: usize) -> bool {
        self.config.stochastic_sampling
    }

    /// Euler: `x_{i+1} = x_i + (σ_{i+1} − σ_i)·v`; stochastic: `x₀ = x_i − σ_i·v`,
    /// `x_{i+1} = (1 − σ_{i+1})·x₀ + σ_{i+1}·ε`.
    fn step<B: Backend, const D: usize>(
        &self,
        i: usize,
        model_output: Tensor<B, D>,
        sample: Tensor<B, D>,
        noise: Option<Tensor<B, D>>,
    ) -> Result<Tensor<B, D>, SchedulerError> {
        step_in_range(i, self.num_steps())?;
        let (sigma, next) = (self.sigmas[i], self.sigmas[i + 1]);
        if self.config.stochastic_sampling {
            let noise = noise.ok_or(SchedulerError::MissingNoise { index: i })?;
            let x0 = sample - model_output * sigma;
            Ok(x0 * (1.0 - next) + noise * next)
        } else {
            Ok(sample + model_output * (next - sigma))
        }
    }
}

#[cfg(test)]
mod tests;
