//! EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models")
//! and Snap Video's input-scaled variant (Menapace et al. 2024, Sec. 3.2 and Table 1).
//!
//! Written the k-diffusion way: schedules and preconditioning are pure f64 functions, and a
//! sampler is one short function over `(denoiser, x, sigmas)`:
//!
//! - [`karras_sigmas`] — `σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`, then 0
//!   (Karras et al. eq. 5; k-diffusion's `get_sigmas_karras`);
//! - [`edm_preconditioning`], [`loss_weight`], [`training_sigmas`] — Table 1 of Karras et al.;
//! - [`sample_euler`], [`sample_heun`] — Algorithm 2 with Euler or Heun steps and churn
//!   (k-diffusion's `sample_euler` / `sample_heun`, step for step);
//! - [`Edm`] / [`EdmConfig`] — one object for training batches and sampling, with Snap Video's
//!   input scaling `σ_in` (see [`snap_video_sigma_in`]);
//! - [`EdmEulerScheduler`] / [`EulerDiscreteScheduler`] — diffusers' `EDMEulerScheduler` and
//!   `EulerDiscreteScheduler` behind the crate's [`Sampler`](crate::Sampler) trait, configs loading
//!   diffusers' `scheduler_config.json`.
//!
//! Divergences from the references: no hidden step index, schedule math in f64 (diffusers computes
//! its `EulerDiscrete` betas in f32), churn noise only from the caller.
//!
//! ```
//! use burn::tensor::Tensor;
//! use vidgen_schedulers::edm::{Churn, EdmConfig, EdmSolver};
//! use vidgen_schedulers::{FiniteCheck, NoiseGenerator, SchedulerError};
//! type B = burn::backend::Flex;
//!
//! // Data is a single point x* = 0.3: the ideal network output recovers it exactly.
//! let edm = EdmConfig { sigma_in: 4.0, ..EdmConfig::default() }.init().unwrap();
//! let sigmas = edm.sigmas(18).unwrap();
//! let target = 0.3;
//! let model = |x_in: Tensor<B, 2>, c_noise: f64| {
//!     let p = edm.precond((4.0 * c_noise).exp());
//!     // F = (x* − c_skip·x_σ)/c_out with x_σ = x_in / c_in
//!     Ok::<_, SchedulerError>((x_in * (-p.c_skip / p.c_in) + target) / p.c_out)
//! };
//! let mut rng = NoiseGenerator::seed_from_u64(0);
//! let noise = rng.normal::<B, 2>([2, 3], &Default::default());
//! let check = FiniteCheck::EveryStep; // stop with an error naming the step on NaN/±inf
//! let mut steps = 0;
//! let progress = |_: vidgen_schedulers::Progress<'_, B, 2>| steps += 1;
//! let x = edm
//!     .sample(EdmSolver::Heun, model, noise, &sigmas, Churn::NONE, &mut rng, check, progress)
//!     .unwrap();
//! assert_eq!(steps, 18);
//! let err = (x - target).abs().max().into_scalar();
//! assert!(err < 1e-4, "{err}");
//! ```

mod edm_euler;
mod euler_discrete;
mod model;

pub use edm_euler::{EdmEulerConfig, EdmEulerScheduler, FinalSigmas, SigmaSchedule};
pub use euler_discrete::{
    EulerDiscreteConfig, EulerDiscreteScheduler, InterpolationType, TimestepType,
};
pub use model::{Edm, EdmConfig, EdmSampler, EdmSolver, snap_video_sigma_in};

use crate::common::Progress;
use crate::error::{SchedulerError, increasing, positive, positive_f64};
use crate::finite::FiniteCheck;
use crate::noise::{NoiseGenerator, NoiseSource};
use burn::tensor::{Tensor, backend::Backend};

/// Karras et al.'s noise levels for `n` sampling steps, with a final 0 appended (k-diffusion's
/// `get_sigmas_karras`): `σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ` for
/// `i = 0..n`, then `σ_n = 0` (eq. 5). `n + 1` values, decreasing.
///
/// # Errors
/// [`SchedulerError::Zero`] for `n == 0`; [`SchedulerError::OutOfDomain`] for a non-positive
/// `sigma_min` or `rho`; [`SchedulerError::NotIncreasing`] for `sigma_min >= sigma_max`.
pub fn karras_sigmas(
    n: usize,
    sigma_min: f64,
    sigma_max: f64,
    rho: f64,
) -> Result<Vec<f64>, SchedulerError> {
    let mut s = karras_ramp(n, sigma_min, sigma_max, rho)?;
    s.push(0.0);
    Ok(s)
}

/// The `n` Karras noise levels without the final 0.
pub(crate) fn karras_ramp(
    n: usize,
    sigma_min: f64,
    sigma_max: f64,
    rho: f64,
) -> Result<Vec<f64>, SchedulerError> {
    check_range(n, sigma_min, sigma_max)?;
    positive_f64("rho", rho)?;
    Ok(karras_unchecked(n, sigma_min, sigma_max, rho))
}

/// [`karras_ramp`] without argument checks (diffusers' `_convert_to_karras`).
pub(crate) fn karras_unchecked(n: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Vec<f64> {
    let (lo, hi) = (sigma_min.powf(1.0 / rho), sigma_max.powf(1.0 / rho));
    crate::betas::linspace(0.0, 1.0, n)
        .into_iter()
        .map(|r| (hi + r * (lo - hi)).powf(rho))
        .collect()
}

/// `n` noise levels evenly spaced in `ln σ` from `sigma_max` down to `sigma_min` (no final 0;
/// diffusers' "exponential" schedule, k-diffusion's `get_sigmas_exponential` without the 0).
///
/// # Errors
/// As [`karras_sigmas`].
pub fn exponential_sigmas(
    n: usize,
    sigma_min: f64,
    sigma_max: f64,
) -> Result<Vec<f64>, SchedulerError> {
    check_range(n, sigma_min, sigma_max)?;
    Ok(crate::betas::linspace(sigma_max.ln(), sigma_min.ln(), n)
        .into_iter()
        .map(f64::exp)
        .collect())
}

fn check_range(n: usize, sigma_min: f64, sigma_max: f64) -> Result<(), SchedulerError> {
    positive("num_inference_steps", n)?;
    positive_f64("sigma_min", sigma_min)?;
    positive_f64("sigma_max", sigma_max)?;
    increasing("sigma_min", sigma_min, "sigma_max", sigma_max)
}

/// The scalings of a preconditioned denoiser `D(x_σ) = c_skip·x_σ + c_out·F(c_in·x_σ, c_noise)`,
/// and the target normalisation `c_norm` of Snap Video (Table 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preconditioning {
    /// Skip scaling `c_skip(σ)`.
    pub c_skip: f64,
    /// Output scaling `c_out(σ)`.
    pub c_out: f64,
    /// Input scaling `c_in(σ)`.
    pub c_in: f64,
    /// Noise conditioning `c_noise(σ) = ln(σ)/4`.
    pub c_noise: f64,
    /// Target normalisation `c_norm(σ) = 1/(σ_data·√(σ² + σ_data²))`: the network target is
    /// `c_norm·(σ·x − σ_data²·ε)` (EDM's `(x − c_skip·x_σ)/c_out`).
    pub c_norm: f64,
}

/// EDM's preconditioning (Karras et al. Table 1): `c_skip = σ_d²/(σ² + σ_d²)`,
/// `c_out = σ·σ_d/√(σ² + σ_d²)`, `c_in = 1/√(σ² + σ_d²)`, `c_noise = ln(σ)/4`.
pub fn edm_preconditioning(sigma: f64, sigma_data: f64) -> Preconditioning {
    let (s2, d2) = (sigma * sigma, sigma_data * sigma_data);
    Preconditioning {
        c_skip: d2 / (s2 + d2),
        c_out: sigma * sigma_data / (s2 + d2).sqrt(),
        c_in: 1.0 / (s2 + d2).sqrt(),
        c_noise: sigma.ln() / 4.0,
        c_norm: 1.0 / (sigma_data * (s2 + d2).sqrt()),
    }
}

/// EDM's loss weight `λ(σ) = (σ² + σ_d²)/(σ·σ_d)²` (Karras et al. Table 1), which makes the
/// effective weight `λ·c_out²` on the network's output equal to 1.
pub fn loss_weight(sigma: f64, sigma_data: f64) -> f64 {
    (sigma * sigma + sigma_data * sigma_data) / (sigma * sigma_data).powi(2)
}

/// `n` training noise levels with `ln σ ~ N(p_mean, p_std²)` (Karras et al. Table 1, defaults
/// −1.2 and 1.2), drawn from the caller's generator.
pub fn training_sigmas(
    generator: &mut NoiseGenerator,
    n: usize,
    p_mean: f64,
    p_std: f64,
) -> Vec<f64> {
    generator
        .normal_f64(n)
        .into_iter()
        .map(|z| (p_mean + p_std * z).exp())
        .collect()
}

/// Stochastic churn of Karras et al. Algorithm 2: at steps with `s_tmin <= σ_i <= s_tmax` the
/// noise level is raised to `σ̂ = σ_i·(1 + γ)`, `γ = min(s_churn/n, √2 − 1)` (`n` sampling steps),
/// by adding `s_noise·√(σ̂² − σ_i²)·ε`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Churn {
    /// Total churn `S_churn`.
    pub s_churn: f64,
    /// Lowest noise level that gets churn, `S_tmin`.
    pub s_tmin: f64,
    /// Highest noise level that gets churn, `S_tmax`.
    pub s_tmax: f64,
    /// Noise inflation `S_noise`.
    pub s_noise: f64,
}

impl Churn {
    /// No churn: a deterministic sampler (k-diffusion's defaults).
    pub const NONE: Self = Self {
        s_churn: 0.0,
        s_tmin: 0.0,
        s_tmax: f64::INFINITY,
        s_noise: 1.0,
    };

    /// `γ_i` at noise level `sigma` for a schedule of `steps` steps.
    pub fn gamma(&self, sigma: f64, steps: usize) -> f64 {
        if self.s_tmin <= sigma && sigma <= self.s_tmax {
            (self.s_churn / steps as f64).min(std::f64::consts::SQRT_2 - 1.0)
        } else {
            0.0
        }
    }
}

impl Default for Churn {
    fn default() -> Self {
        Self::NONE
    }
}

/// The Karras ODE derivative `d = (x − D)/σ` (k-diffusion's `to_d`).
pub fn to_d<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    sigma: f64,
    denoised: Tensor<B, D>,
) -> Tensor<B, D> {
    (x - denoised) / sigma
}

/// Applies churn at step `i`: returns `(x̂, σ̂)`, taking noise from `noise` only when `γ_i > 0`.
fn churn_step<B: Backend, const D: usize, N: NoiseSource<B, D>>(
    x: Tensor<B, D>,
    sigmas: &[f64],
    i: usize,
    churn: &Churn,
    noise: &mut N,
) -> (Tensor<B, D>, f64) {
    let sigma = sigmas[i];
    let gamma = churn.gamma(sigma, sigmas.len() - 1);
    let sigma_hat = sigma * (gamma + 1.0);
    if gamma > 0.0 {
        let eps = noise.noise(i, &x) * churn.s_noise;
        let x = x + eps * (sigma_hat * sigma_hat - sigma * sigma).sqrt();
        (x, sigma_hat)
    } else {
        (x, sigma_hat)
    }
}

fn check_sigmas(sigmas: &[f64]) -> Result<(), SchedulerError> {
    if sigmas.len() < 2 {
        return Err(SchedulerError::LengthMismatch {
            field: "sigmas",
            got: sigmas.len(),
            expected: 2,
        });
    }
    Ok(())
}

/// Karras et al. Algorithm 2 with Euler steps (k-diffusion's `sample_euler`): for each `i`, churn
/// to `σ̂` (see [`Churn`]), then `x ← x̂ + (σ_{i+1} − σ̂)·(x̂ − D(x̂, σ̂))/σ̂`.
///
/// `denoiser(x, σ)` returns the denoised estimate `D(x, σ)` or an error that ends the loop;
/// `callback` sees each step's [`Progress`]: the churned input `x̂` as `sample`, `σ̂` as `time`
/// and the denoised estimate as `model_output` (k-diffusion's callback `x`, `sigma_hat`,
/// `denoised`). `x` starts at
/// noise level `sigmas[0]` (scale standard noise by it). With [`FiniteCheck::EveryStep`] each
/// step's result is checked for NaN/±∞ (the error's time is the step's `σ̂`).
///
/// # Shapes
/// `x`: any rank; the denoiser keeps it.
///
/// # Errors
/// The denoiser's errors; [`SchedulerError::LengthMismatch`] if `sigmas` has fewer than 2 values
/// and [`SchedulerError::NonFinite`] from the check, converted into `E`.
pub fn sample_euler<B, const D: usize, M, N, C, E>(
    denoiser: M,
    x: Tensor<B, D>,
    sigmas: &[f64],
    churn: Churn,
    noise: &mut N,
    check: FiniteCheck,
    callback: C,
) -> Result<Tensor<B, D>, E>
where
    B: Backend,
    M: FnMut(Tensor<B, D>, f64) -> Result<Tensor<B, D>, E>,
    N: NoiseSource<B, D>,
    C: FnMut(Progress<'_, B, D>),
    E: From<SchedulerError>,
{
    sample_edm(
        EdmSolver::Euler,
        denoiser,
        x,
        sigmas,
        churn,
        noise,
        check,
        callback,
    )
}

/// Karras et al. Algorithm 2 with Heun steps (k-diffusion's `sample_heun`): churn to `σ̂`, take
/// an Euler step to `σ_{i+1}`, and — unless `σ_{i+1} = 0`, where the step stays Euler — correct
/// it with the average of the slopes at both ends: `x ← x̂ + (σ_{i+1} − σ̂)·(d + d')/2`.
///
/// Arguments and callback as [`sample_euler`]; the denoiser is called twice per step except the
/// last (`2n − 1` calls when the schedule ends at 0).
///
/// # Errors
/// The denoiser's errors; [`SchedulerError::LengthMismatch`] if `sigmas` has fewer than 2 values
/// and [`SchedulerError::NonFinite`] from the check, converted into `E`.
pub fn sample_heun<B, const D: usize, M, N, C, E>(
    denoiser: M,
    x: Tensor<B, D>,
    sigmas: &[f64],
    churn: Churn,
    noise: &mut N,
    check: FiniteCheck,
    callback: C,
) -> Result<Tensor<B, D>, E>
where
    B: Backend,
    M: FnMut(Tensor<B, D>, f64) -> Result<Tensor<B, D>, E>,
    N: NoiseSource<B, D>,
    C: FnMut(Progress<'_, B, D>),
    E: From<SchedulerError>,
{
    sample_edm(
        EdmSolver::Heun,
        denoiser,
        x,
        sigmas,
        churn,
        noise,
        check,
        callback,
    )
}

/// The loop of [`sample_euler`] and [`sample_heun`]: Euler steps, with Heun's correction for
/// [`EdmSolver::Heun`] except on a step to `σ = 0`.
#[allow(clippy::too_many_arguments)]
fn sample_edm<B, const D: usize, M, N, C, E>(
    solver: EdmSolver,
    mut denoiser: M,
    mut x: Tensor<B, D>,
    sigmas: &[f64],
    churn: Churn,
    noise: &mut N,
    check: FiniteCheck,
    mut callback: C,
) -> Result<Tensor<B, D>, E>
where
    B: Backend,
    M: FnMut(Tensor<B, D>, f64) -> Result<Tensor<B, D>, E>,
    N: NoiseSource<B, D>,
    C: FnMut(Progress<'_, B, D>),
    E: From<SchedulerError>,
{
    check_sigmas(sigmas)?;
    let num_steps = sigmas.len() - 1;
    for i in 0..num_steps {
        let (x_hat, sigma_hat) = churn_step(x, sigmas, i, &churn, noise);
        let denoised = denoiser(x_hat.clone(), sigma_hat)?;
        callback(Progress {
            step: i,
            num_steps,
            time: sigma_hat,
            sample: &x_hat,
            model_output: &denoised,
        });
        let probe = (check == FiniteCheck::EveryStep).then(|| denoised.clone());
        let d = to_d(x_hat.clone(), sigma_hat, denoised);
        let (next, dt) = (sigmas[i + 1], sigmas[i + 1] - sigma_hat);
        x = if solver == EdmSolver::Euler || next == 0.0 {
            x_hat + d * dt
        } else {
            let x_2 = x_hat.clone() + d.clone() * dt;
            let d_2 = to_d(x_2.clone(), next, denoiser(x_2, next)?);
            x_hat + (d + d_2) / 2.0 * dt
        };
        if let Some(denoised) = probe {
            check.check_step(i, sigma_hat, &denoised, &x)?;
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn karras_endpoints_and_errors() {
        let s = karras_sigmas(5, 0.002, 80.0, 7.0).unwrap();
        assert_eq!(s.len(), 6);
        assert!((s[0] - 80.0).abs() < 1e-12 && (s[4] - 0.002).abs() < 1e-15 && s[5] == 0.0);
        assert!(matches!(
            karras_sigmas(0, 0.1, 1.0, 7.0),
            Err(SchedulerError::Zero {
                field: "num_inference_steps"
            })
        ));
        assert!(matches!(
            karras_sigmas(3, 2.0, 1.0, 7.0),
            Err(SchedulerError::NotIncreasing { .. })
        ));
        assert!(matches!(
            karras_sigmas(3, 0.1, 1.0, 0.0),
            Err(SchedulerError::OutOfDomain { field: "rho", .. })
        ));
        assert!(matches!(
            karras_sigmas(3, 0.0, 1.0, 7.0),
            Err(SchedulerError::OutOfDomain {
                field: "sigma_min",
                ..
            })
        ));
    }

    #[test]
    fn exponential_is_geometric() {
        let s = exponential_sigmas(3, 0.1, 10.0).unwrap();
        assert!(
            (s[0] - 10.0).abs() < 1e-12 && (s[1] - 1.0).abs() < 1e-12 && (s[2] - 0.1).abs() < 1e-12
        );
    }

    #[test]
    fn effective_weight_is_one() {
        for sigma in [0.01, 0.5, 3.0, 80.0] {
            let p = edm_preconditioning(sigma, 0.5);
            assert!((loss_weight(sigma, 0.5) * p.c_out * p.c_out - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn churn_gamma_is_capped_and_windowed() {
        let c = Churn {
            s_churn: 100.0,
            s_tmin: 1.0,
            s_tmax: 5.0,
            s_noise: 1.0,
        };
        assert_eq!(c.gamma(2.0, 10), std::f64::consts::SQRT_2 - 1.0);
        assert_eq!(c.gamma(0.5, 10), 0.0);
        assert_eq!(Churn::NONE.gamma(2.0, 10), 0.0);
    }

    #[test]
    fn training_sigmas_are_log_normal() {
        let mut g = NoiseGenerator::seed_from_u64(3);
        let s = training_sigmas(&mut g, 20_000, -1.2, 1.2);
        let logs: Vec<f64> = s.iter().map(|x| x.ln()).collect();
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        let var = logs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / logs.len() as f64;
        assert!(
            (mean + 1.2).abs() < 0.03 && (var.sqrt() - 1.2).abs() < 0.03,
            "{mean} {var}"
        );
    }
}
