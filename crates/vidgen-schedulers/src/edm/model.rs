//! [`Edm`]: EDM training and sampling in one object, with Snap Video's input scaling `σ_in`.

use super::{Churn, Preconditioning, karras_sigmas, loss_weight, sample_edm, training_sigmas};
use crate::common::{PredictionType, Progress, SamplingLoop, TrainingBatch, per_sample, vector};
use crate::config::{ConfigEnum, SchedulerConfig};
use crate::error::{SchedulerError, increasing, positive_f64};
use crate::finite::FiniteCheck;
use crate::noise::{NoiseGenerator, NoiseSource};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// Snap Video's input scaling `σ_in = s·√T` for a spatial upsampling factor `s` and `T` frames
/// (Sec. 3.2: averaging a `T × s × s` block divides the noise std by `s·√T`). The paper uses
/// `σ_in = 4` for 16 frames at 64 px (`s = 1`) and 32 for the 8× upsampled 288×512 stage.
pub fn snap_video_sigma_in(spatial_upsampling: f64, frames: usize) -> f64 {
    spatial_upsampling * (frames as f64).sqrt()
}

/// Configuration of [`Edm`] (Karras et al. 2022 Table 1; Snap Video Table 1 with `sigma_in`).
///
/// `prediction_type` fixes the sign of the network output, as diffusers' `EDMEulerScheduler` does:
/// `epsilon` is Karras et al.'s `F` (`c_out > 0`); `v_prediction` is `−F` (`c_out < 0`), the sign
/// of Snap Video's Table 1, whose target at `σ_data = 1` is the v-prediction target. `sample` is
/// rejected.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct EdmConfig {
    /// Smallest sampling noise level (0.002).
    pub sigma_min: f64,
    /// Largest sampling noise level (80).
    pub sigma_max: f64,
    /// Standard deviation of the data (0.5).
    pub sigma_data: f64,
    /// Karras schedule exponent ρ (7).
    pub rho: f64,
    /// Mean of `ln σ` during training (−1.2).
    pub p_mean: f64,
    /// Standard deviation of `ln σ` during training (1.2).
    pub p_std: f64,
    /// Snap Video's input scaling `σ_in` (1 = plain EDM); see [`snap_video_sigma_in`].
    pub sigma_in: f64,
    /// Sign convention of the network output (`epsilon` = Karras' `F`, `v_prediction` = `−F`).
    pub prediction_type: PredictionType,
}

impl Default for EdmConfig {
    fn default() -> Self {
        Self {
            sigma_min: 0.002,
            sigma_max: 80.0,
            sigma_data: 0.5,
            rho: 7.0,
            p_mean: -1.2,
            p_std: 1.2,
            sigma_in: 1.0,
            prediction_type: PredictionType::Epsilon,
        }
    }
}

/// The prediction types EDM's preconditioning supports.
pub(crate) const EDM_PREDICTIONS: &[&str] = &["epsilon", "v_prediction"];

/// [`SchedulerError::UnknownVariant`] for `prediction_type = sample`.
pub(crate) fn check_edm_prediction(p: PredictionType) -> Result<(), SchedulerError> {
    if p == PredictionType::Sample {
        return Err(SchedulerError::UnknownVariant {
            field: "prediction_type".into(),
            value: p.name().into(),
            expected: EDM_PREDICTIONS,
        });
    }
    Ok(())
}

impl SchedulerConfig for EdmConfig {
    const NAME: &'static str = "Edm";
    const ENUM_KEYS: &'static [(&'static str, &'static [&'static str])] =
        &[("prediction_type", EDM_PREDICTIONS)];

    fn validate(&self) -> Result<(), SchedulerError> {
        positive_f64("sigma_min", self.sigma_min)?;
        positive_f64("sigma_max", self.sigma_max)?;
        increasing("sigma_min", self.sigma_min, "sigma_max", self.sigma_max)?;
        positive_f64("sigma_data", self.sigma_data)?;
        positive_f64("rho", self.rho)?;
        positive_f64("p_std", self.p_std)?;
        positive_f64("sigma_in", self.sigma_in)?;
        if !self.p_mean.is_finite() {
            return Err(SchedulerError::OutOfDomain {
                field: "p_mean",
                value: self.p_mean,
                requirement: "finite",
            });
        }
        check_edm_prediction(self.prediction_type)
    }
}

impl EdmConfig {
    /// Snap Video's setting: `σ_in` as given, `v_prediction` sign (Table 1's negative `c_out`),
    /// `σ_data = 1`, the other values EDM's defaults.
    pub fn snap_video(sigma_in: f64) -> Self {
        Self {
            sigma_in,
            sigma_data: 1.0,
            prediction_type: PredictionType::VPrediction,
            ..Self::default()
        }
    }

    /// Validates and builds the [`Edm`].
    ///
    /// # Errors
    /// The first invalid field ([`SchedulerConfig::validate`]).
    pub fn init(&self) -> Result<Edm, SchedulerError> {
        self.validate()?;
        Ok(Edm {
            config: self.clone(),
        })
    }
}

/// EDM with Snap Video's input scaling (with `σ_in = 1` exactly EDM). Forward process
/// `x_σ = x/σ_in + σ·ε`; denoiser `D(x_σ) = c_skip·x_σ + c_out·F(c_in·x_σ, c_noise)` estimating
/// the unscaled `x`, with (`σ_d` = `sigma_data`, `s = ±1` from `prediction_type`)
///
/// - `c_in = 1/√(σ² + σ_d²/σ_in²)`, `c_skip = σ_d²/(σ² + σ_d²/σ_in)`,
/// - `c_out = s·σ·σ_d·√(σ² + σ_d²)/(σ² + σ_d²/σ_in)`, `c_noise = ln(σ)/4`,
/// - `c_norm = 1/(σ_d·√(σ² + σ_d²))`, network target `s·c_norm·(σ·x − σ_d²·ε)`,
/// - loss weight `λ = (σ² + σ_d²)/(σ·σ_d)²`, effective weight on the network output
///   `w = λ·c_out² = (σ² + σ_d²)²/(σ² + σ_d²/σ_in)²`.
///
/// Sampling integrates `dx_σ/dσ = (x_σ − D/σ_in)/σ` and multiplies the result by `σ_in`.
#[derive(Clone, Debug, PartialEq)]
pub struct Edm {
    config: EdmConfig,
}

impl Edm {
    /// The configuration.
    pub fn config(&self) -> &EdmConfig {
        &self.config
    }

    /// The scalings at noise level `sigma` (see [`Edm`]; with `σ_in = 1` and `epsilon` they are
    /// [`edm_preconditioning`](super::edm_preconditioning)).
    pub fn precond(&self, sigma: f64) -> Preconditioning {
        let (d2, s_in) = (self.config.sigma_data.powi(2), self.config.sigma_in);
        let s2 = sigma * sigma;
        let sign = self.sign();
        Preconditioning {
            c_skip: d2 / (s2 + d2 / s_in),
            c_out: sign * sigma * self.config.sigma_data * (s2 + d2).sqrt() / (s2 + d2 / s_in),
            c_in: 1.0 / (s2 + d2 / (s_in * s_in)).sqrt(),
            c_noise: sigma.ln() / 4.0,
            c_norm: 1.0 / (self.config.sigma_data * (s2 + d2).sqrt()),
        }
    }

    fn sign(&self) -> f64 {
        if self.config.prediction_type == PredictionType::VPrediction {
            -1.0
        } else {
            1.0
        }
    }

    /// EDM's loss weight `λ(σ)` (unchanged by `σ_in`).
    pub fn loss_weight(&self, sigma: f64) -> f64 {
        loss_weight(sigma, self.config.sigma_data)
    }

    /// The weight on the network-space error, `w(σ) = λ(σ)·c_out(σ)²` (1 for `σ_in = 1`).
    pub fn effective_weight(&self, sigma: f64) -> f64 {
        self.loss_weight(sigma) * self.precond(sigma).c_out.powi(2)
    }

    /// The sampling schedule: [`karras_sigmas`] from the config (ending in 0).
    ///
    /// # Errors
    /// [`SchedulerError::Zero`] for `n == 0`.
    pub fn sigmas(&self, n: usize) -> Result<Vec<f64>, SchedulerError> {
        karras_sigmas(
            n,
            self.config.sigma_min,
            self.config.sigma_max,
            self.config.rho,
        )
    }

    /// `n` training noise levels, `ln σ ~ N(p_mean, p_std²)`.
    pub fn training_sigmas(&self, generator: &mut NoiseGenerator, n: usize) -> Vec<f64> {
        training_sigmas(generator, n, self.config.p_mean, self.config.p_std)
    }

    /// The noisy sample `x_σ = x/σ_in + σ·ε`, one σ per batch element.
    ///
    /// # Shapes
    /// `x0`, `noise`: `[B, ...]`; `sigmas`: `B` values
    pub fn add_noise<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
        sigmas: &[f64],
    ) -> Tensor<B, D> {
        let s = per_sample(sigmas, &noise);
        x0 / self.config.sigma_in + noise * s
    }

    /// A training batch: `model_input = c_in·x_σ`, `model_time = c_noise(σ)`, `target =
    /// s·c_norm·(σ·x − σ_d²·ε)` (equal to `(x − c_skip·x_σ)/c_out`), `loss_weight = w(σ)`, so that
    /// [`TrainingBatch::loss`] is `λ(σ)·‖D − x‖²` per element, averaged.
    ///
    /// # Shapes
    /// `x0`, `noise`: `[B, ...]`; `sigmas`: `B` values
    ///
    /// # Errors
    /// [`SchedulerError::LengthMismatch`] if `sigmas.len() != B`; [`SchedulerError::OutOfDomain`]
    /// for a non-positive σ.
    pub fn training_batch<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
        sigmas: &[f64],
    ) -> Result<TrainingBatch<B, D>, SchedulerError> {
        let batch = x0.dims()[0];
        if sigmas.len() != batch {
            return Err(SchedulerError::LengthMismatch {
                field: "sigmas",
                got: sigmas.len(),
                expected: batch,
            });
        }
        for &s in sigmas {
            positive_f64("sigma", s)?;
        }
        let p: Vec<Preconditioning> = sigmas.iter().map(|&s| self.precond(s)).collect();
        let get = |f: fn(&Preconditioning) -> f64| p.iter().map(f).collect::<Vec<f64>>();
        let d2 = self.config.sigma_data.powi(2);
        let x_sigma = self.add_noise(x0.clone(), noise.clone(), sigmas);
        let a: Vec<f64> = p
            .iter()
            .zip(sigmas)
            .map(|(p, s)| self.sign() * p.c_norm * s)
            .collect();
        let b: Vec<f64> = p.iter().map(|p| -self.sign() * p.c_norm * d2).collect();
        let device = x0.device();
        Ok(TrainingBatch {
            model_input: x_sigma * per_sample(&get(|p| p.c_in), &noise),
            model_time: vector(&get(|p| p.c_noise), &device),
            target: x0 * per_sample(&a, &noise) + noise.clone() * per_sample(&b, &noise),
            loss_weight: vector(
                &sigmas
                    .iter()
                    .map(|&s| self.effective_weight(s))
                    .collect::<Vec<_>>(),
                &device,
            ),
        })
    }

    /// The denoised estimate of the unscaled `x` from a network output `F` at `x_σ`:
    /// `D = c_skip·x_σ + c_out·F`.
    pub fn denoised_from_output<B: Backend, const D: usize>(
        &self,
        x_sigma: Tensor<B, D>,
        output: Tensor<B, D>,
        sigma: f64,
    ) -> Tensor<B, D> {
        let p = self.precond(sigma);
        x_sigma * p.c_skip + output * p.c_out
    }

    /// `D(x_σ, σ) = c_skip·x_σ + c_out·F(c_in·x_σ, c_noise)` for a network `model(input, c_noise)`.
    pub fn denoise<B: Backend, const D: usize, M>(
        &self,
        model: &mut M,
        x_sigma: Tensor<B, D>,
        sigma: f64,
    ) -> Tensor<B, D>
    where
        M: FnMut(Tensor<B, D>, f64) -> Tensor<B, D>,
    {
        let p = self.precond(sigma);
        let out = model(x_sigma.clone() * p.c_in, p.c_noise);
        self.denoised_from_output(x_sigma, out, sigma)
    }

    /// Samples with `solver` ([`sample_euler`](super::sample_euler) or
    /// [`sample_heun`](super::sample_heun), Karras et al. Algorithm 2) from standard `noise`
    /// (scaled by `sigmas[0]`): `model(c_in·x, c_noise)` returns the network output `F` or an
    /// error that ends the loop; the ODE uses `D/σ_in` as denoised estimate, the result is
    /// multiplied by `σ_in`; `check` and `callback` (which sees `D/σ_in`) as in
    /// [`sample_euler`](super::sample_euler).
    ///
    /// # Errors
    /// As [`sample_euler`](super::sample_euler).
    #[allow(clippy::too_many_arguments)]
    pub fn sample<B: Backend, const D: usize, M, N, C, E>(
        &self,
        solver: EdmSolver,
        mut model: M,
        noise: Tensor<B, D>,
        sigmas: &[f64],
        churn: Churn,
        noise_source: &mut N,
        check: FiniteCheck,
        callback: C,
    ) -> Result<Tensor<B, D>, E>
    where
        M: FnMut(Tensor<B, D>, f64) -> Result<Tensor<B, D>, E>,
        N: NoiseSource<B, D>,
        C: FnMut(Progress<'_, B, D>),
        E: From<SchedulerError>,
    {
        let s_in = self.config.sigma_in;
        let den = |x: Tensor<B, D>, s| -> Result<Tensor<B, D>, E> {
            let p = self.precond(s);
            let out = model(x.clone() * p.c_in, p.c_noise)?;
            Ok(self.denoised_from_output(x, out, s) / s_in)
        };
        let x = noise * first(sigmas);
        Ok(sample_edm(solver, den, x, sigmas, churn, noise_source, check, callback)? * s_in)
    }
}

fn first(sigmas: &[f64]) -> f64 {
    sigmas.first().copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edm::edm_preconditioning;

    #[test]
    fn sigma_in_one_is_edm() {
        let edm = EdmConfig::default().init().unwrap();
        for sigma in [0.002, 0.1, 0.5, 2.0, 80.0] {
            let (a, b) = (edm.precond(sigma), edm_preconditioning(sigma, 0.5));
            for (x, y) in [
                (a.c_skip, b.c_skip),
                (a.c_out, b.c_out),
                (a.c_in, b.c_in),
                (a.c_noise, b.c_noise),
                (a.c_norm, b.c_norm),
            ] {
                assert!((x - y).abs() <= 1e-15 * y.abs(), "{a:?} vs {b:?}");
            }
            assert!((edm.effective_weight(sigma) - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn snap_weight_formula() {
        let edm = EdmConfig::snap_video(4.0).init().unwrap();
        for sigma in [0.01, 0.3, 5.0] {
            let s2 = sigma * sigma;
            let w = (s2 + 1.0f64).powi(2) / (s2 + 0.25).powi(2);
            assert!((edm.effective_weight(sigma) - w).abs() < 1e-9 * w);
            assert!(edm.precond(sigma).c_out < 0.0);
        }
        assert_eq!(snap_video_sigma_in(1.0, 16), 4.0);
        assert_eq!(snap_video_sigma_in(8.0, 16), 32.0);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let bad = |c: EdmConfig| c.init().unwrap_err().to_string();
        assert!(
            bad(EdmConfig {
                sigma_min: 90.0,
                ..Default::default()
            })
            .contains("`sigma_min` = 90")
        );
        assert!(
            bad(EdmConfig {
                sigma_in: 0.0,
                ..Default::default()
            })
            .contains("`sigma_in` = 0")
        );
        assert!(
            bad(EdmConfig {
                rho: -1.0,
                ..Default::default()
            })
            .contains("`rho` = -1")
        );
        let e = EdmConfig {
            prediction_type: PredictionType::Sample,
            ..Default::default()
        }
        .init();
        assert!(matches!(e, Err(SchedulerError::UnknownVariant { .. })));
    }
}

/// The ODE solver of Karras et al. Algorithm 2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EdmSolver {
    /// One network call per step.
    Euler,
    /// Heun's 2nd-order correction: two calls per step except the last (Karras et al.'s choice).
    #[default]
    Heun,
}

/// [`Edm`] with a solver, its σ schedule and churn: EDM sampling as a [`SamplingLoop`], so that
/// it runs through the same interface as every [`Sampler`](crate::Sampler).
#[derive(Clone, Debug, PartialEq)]
pub struct EdmSampler {
    /// Preconditioning and σ range.
    pub edm: Edm,
    /// Euler or Heun.
    pub solver: EdmSolver,
    /// The σ schedule, decreasing, ending at 0 ([`Edm::sigmas`]).
    pub sigmas: Vec<f64>,
    /// Stochastic churn ([`Churn::NONE`]: the deterministic ODE).
    pub churn: Churn,
}

impl EdmSampler {
    /// `num_steps` Karras steps of `edm` with `solver`, no churn.
    ///
    /// # Errors
    /// Those of [`Edm::sigmas`].
    pub fn new(edm: Edm, solver: EdmSolver, num_steps: usize) -> Result<Self, SchedulerError> {
        let sigmas = edm.sigmas(num_steps)?;
        Ok(Self {
            edm,
            solver,
            sigmas,
            churn: Churn::NONE,
        })
    }
}

impl SamplingLoop for EdmSampler {
    fn run<B, const D: usize, M, N, E, C>(
        &self,
        model: M,
        initial_noise: Tensor<B, D>,
        noise: &mut N,
        check: FiniteCheck,
        callback: C,
    ) -> Result<Tensor<B, D>, E>
    where
        B: Backend,
        M: FnMut(Tensor<B, D>, f64) -> Result<Tensor<B, D>, E>,
        N: NoiseSource<B, D>,
        E: From<SchedulerError>,
        C: FnMut(Progress<'_, B, D>),
    {
        let (sigmas, churn) = (&self.sigmas, self.churn);
        (self.edm).sample(
            self.solver,
            model,
            initial_noise,
            sigmas,
            churn,
            noise,
            check,
            callback,
        )
    }

    fn steps(&self) -> usize {
        self.sigmas.len().saturating_sub(1)
    }
}
