//! What DDPM and DDIM share: the ᾱ table, the inference timesteps of each spacing, the x₀ / ε
//! predictions with clipping and dynamic thresholding, and the training-side ops.

use super::TimestepSpacing;
use crate::betas::{self, BetaSchedule};
use crate::common::{PredictionType, TrainingBatch, per_sample, vector};
use crate::error::{SchedulerError, non_negative, positive, positive_f64};
use crate::noise::NoiseGenerator;
use burn::tensor::{Tensor, backend::Backend};

/// The config fields that decide the ᾱ table and are validated the same way in both configs.
pub(crate) struct TableFields<'a> {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    pub trained_betas: Option<&'a [f64]>,
    pub rescale_betas_zero_snr: bool,
}

impl TableFields<'_> {
    /// `ᾱ_t` for `t = 0..N`, f64: betas, optional zero-SNR rescale, cumulative product.
    pub fn alphas_cumprod(&self) -> Result<Vec<f64>, SchedulerError> {
        let mut b = betas::betas(
            self.beta_schedule,
            self.num_train_timesteps,
            self.beta_start,
            self.beta_end,
            self.trained_betas,
        )?;
        if self.rescale_betas_zero_snr {
            b = betas::rescale_zero_snr(&b);
        }
        Ok(betas::alphas_cumprod(&b))
    }

    /// Checks the fields without building the table.
    pub fn validate(&self) -> Result<(), SchedulerError> {
        crate::error::train_timesteps(self.num_train_timesteps)?;
        non_negative("beta_start", self.beta_start)?;
        non_negative("beta_end", self.beta_end)?;
        if self.beta_schedule == BetaSchedule::Trained && self.trained_betas.is_none() {
            return Err(SchedulerError::Missing {
                field: "trained_betas",
                when: "beta_schedule is \"trained\"",
            });
        }
        if let Some(t) = self.trained_betas
            && t.len() != self.num_train_timesteps
        {
            return Err(SchedulerError::LengthMismatch {
                field: "trained_betas",
                got: t.len(),
                expected: self.num_train_timesteps,
            });
        }
        Ok(())
    }
}

/// Checks `num_inference_steps` against the training steps.
fn check_steps(num_train_timesteps: usize, steps: usize) -> Result<(), SchedulerError> {
    positive("num_inference_steps", steps)?;
    if steps > num_train_timesteps {
        return Err(SchedulerError::TooManySteps {
            num_inference_steps: steps,
            num_train_timesteps,
        });
    }
    Ok(())
}

/// diffusers' `set_timesteps(num_inference_steps)`, descending, replicating numpy's float steps
/// (`linspace` then round-half-to-even for `linspace`; `arange` with a float step for `trailing`).
///
/// One divergence: for some step counts (61, 103, … of 1000) numpy's `arange(N, 0, −N/n)` yields
/// `n + 1` values and diffusers appends a timestep `−1`; this returns exactly `n`.
pub(crate) fn inference_timesteps(
    spacing: TimestepSpacing,
    num_train_timesteps: usize,
    steps: usize,
    steps_offset: usize,
) -> Result<Vec<usize>, SchedulerError> {
    check_steps(num_train_timesteps, steps)?;
    let n = num_train_timesteps;
    let ts: Vec<usize> = match spacing {
        TimestepSpacing::Linspace => {
            let last = (n - 1) as f64;
            let step = if steps > 1 {
                last / (steps - 1) as f64
            } else {
                0.0
            };
            (0..steps)
                .rev()
                .map(|i| {
                    if i + 1 == steps && steps > 1 {
                        last
                    } else {
                        i as f64 * step
                    }
                })
                .map(|v| v.round_ties_even() as usize)
                .collect()
        }
        TimestepSpacing::Leading => {
            let ratio = n / steps;
            (0..steps).rev().map(|i| i * ratio + steps_offset).collect()
        }
        TimestepSpacing::Trailing => {
            // numpy's arange fills `start + i·delta` with `delta = (start − ratio) − start`.
            let start = n as f64;
            let delta = (start - n as f64 / steps as f64) - start;
            (0..steps)
                .map(|i| (start + i as f64 * delta).round_ties_even() as usize - 1)
                .collect()
        }
    };
    if let Some(&max) = ts.iter().max()
        && max >= n
    {
        return Err(SchedulerError::OutOfDomain {
            field: "steps_offset",
            value: steps_offset as f64,
            requirement: "small enough that every timestep is < num_train_timesteps",
        });
    }
    Ok(ts)
}

/// Checks user-given timesteps: non-empty, strictly decreasing, all `< num_train_timesteps`.
pub(crate) fn check_custom_timesteps(
    num_train_timesteps: usize,
    ts: &[usize],
) -> Result<(), SchedulerError> {
    positive("timesteps", ts.len())?;
    if ts[0] >= num_train_timesteps {
        return Err(SchedulerError::OutOfDomain {
            field: "timesteps",
            value: ts[0] as f64,
            requirement: "< num_train_timesteps",
        });
    }
    if let Some(w) = ts.windows(2).find(|w| w[1] >= w[0]) {
        return Err(SchedulerError::OutOfDomain {
            field: "timesteps",
            value: w[1] as f64,
            requirement: "strictly decreasing",
        });
    }
    Ok(())
}

/// How the predicted x₀ is post-processed before the update.
#[derive(Clone, Copy, Debug)]
pub(crate) struct X0Rule {
    pub prediction_type: PredictionType,
    /// `Some(range)` clamps x₀ to `[−range, range]` (ignored when thresholding).
    pub clip: Option<f64>,
    /// `Some((ratio, sample_max_value))` applies dynamic thresholding.
    pub threshold: Option<(f64, f64)>,
}

/// Checks the x₀ post-processing fields.
pub(crate) fn validate_x0_fields(
    clip_sample_range: f64,
    dynamic_thresholding_ratio: f64,
    sample_max_value: f64,
) -> Result<(), SchedulerError> {
    positive_f64("clip_sample_range", clip_sample_range)?;
    positive_f64("sample_max_value", sample_max_value)?;
    if !(0.0..=1.0).contains(&dynamic_thresholding_ratio) {
        return Err(SchedulerError::OutOfDomain {
            field: "dynamic_thresholding_ratio",
            value: dynamic_thresholding_ratio,
            requirement: "in [0, 1]",
        });
    }
    Ok(())
}

impl X0Rule {
    /// The model's x₀ prediction at `ᾱ_t` (before clipping):
    /// ε: `(x − √(1−ᾱ)·ε̂)/√ᾱ`; sample: `x̂₀`; v: `√ᾱ·x − √(1−ᾱ)·v̂`.
    pub fn x0<B: Backend, const D: usize>(
        &self,
        a_t: f64,
        out: Tensor<B, D>,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let (sa, sb) = (a_t.sqrt(), (1.0 - a_t).sqrt());
        match self.prediction_type {
            PredictionType::Epsilon => (x - out * sb) / sa,
            PredictionType::Sample => out,
            PredictionType::VPrediction => x * sa - out * sb,
        }
    }

    /// The model's ε prediction at `ᾱ_t` (from the unclipped x₀, as diffusers' DDIM):
    /// ε: `ε̂`; sample: `(x − √ᾱ·x̂₀)/√(1−ᾱ)`; v: `√ᾱ·v̂ + √(1−ᾱ)·x`.
    pub fn eps<B: Backend, const D: usize>(
        &self,
        a_t: f64,
        out: Tensor<B, D>,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let (sa, sb) = (a_t.sqrt(), (1.0 - a_t).sqrt());
        match self.prediction_type {
            PredictionType::Epsilon => out,
            PredictionType::Sample => (x - out * sa) / sb,
            PredictionType::VPrediction => out * sa + x * sb,
        }
    }

    /// Thresholding if enabled, else clipping if enabled, else `x0` unchanged.
    pub fn post_process<B: Backend, const D: usize>(&self, x0: Tensor<B, D>) -> Tensor<B, D> {
        match (self.threshold, self.clip) {
            (Some((ratio, max)), _) => threshold_sample(x0, ratio, max),
            (None, Some(range)) => x0.clamp(-range, range),
            (None, None) => x0,
        }
    }
}

/// Dynamic thresholding (Saharia et al. 2022, sec. 2.3; diffusers' `_threshold_sample`): per
/// sample, `s = clamp(quantile(|x₀|, ratio), 1, sample_max_value)` over all non-batch elements
/// (linear interpolation between order statistics, as `torch.quantile`), then
/// `x₀ ← clamp(x₀, −s, s)/s`.
///
/// # Shapes
/// `x0`: `[B, ...]`
pub(crate) fn threshold_sample<B: Backend, const D: usize>(
    x0: Tensor<B, D>,
    ratio: f64,
    sample_max_value: f64,
) -> Tensor<B, D> {
    let dims = x0.dims();
    let batch = dims[0];
    let flat: Tensor<B, 2> = x0.reshape([batch as i32, -1]);
    let m = flat.dims()[1];
    let sorted = flat.clone().abs().sort(1);
    let pos = ratio * (m - 1) as f64;
    let below = pos.floor() as usize;
    let above = pos.ceil().min((m - 1) as f64) as usize;
    let weight = pos - below as f64;
    let lo = sorted.clone().narrow(1, below, 1);
    let hi = sorted.narrow(1, above, 1);
    // torch.lerp(lo, hi, w)
    let s = (lo.clone() + (hi - lo) * weight)
        .clamp_min(1.0)
        .clamp_max(sample_max_value);
    let s = s.expand([batch, m]);
    let clamped = flat.max_pair(s.clone().neg()).min_pair(s.clone()) / s;
    clamped.reshape(dims)
}

/// Checks training timesteps against the batch and the table.
fn check_training_timesteps(ac: &[f64], batch: usize, ts: &[usize]) -> Result<(), SchedulerError> {
    if ts.len() != batch {
        return Err(SchedulerError::LengthMismatch {
            field: "timesteps",
            got: ts.len(),
            expected: batch,
        });
    }
    match ts.iter().find(|&&t| t >= ac.len()) {
        Some(&t) => Err(SchedulerError::StepOutOfRange {
            index: t,
            len: ac.len(),
        }),
        None => Ok(()),
    }
}

/// Per-sample `(√ᾱ_t, √(1−ᾱ_t))` broadcast against `like`.
fn coefficients<B: Backend, const D: usize>(
    ac: &[f64],
    ts: &[usize],
    like: &Tensor<B, D>,
) -> Result<(Tensor<B, D>, Tensor<B, D>), SchedulerError> {
    check_training_timesteps(ac, like.dims()[0], ts)?;
    let sa: Vec<f64> = ts.iter().map(|&t| ac[t].sqrt()).collect();
    let sb: Vec<f64> = ts.iter().map(|&t| (1.0 - ac[t]).sqrt()).collect();
    Ok((per_sample(&sa, like), per_sample(&sb, like)))
}

/// `x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε` per sample.
pub(crate) fn add_noise<B: Backend, const D: usize>(
    ac: &[f64],
    x0: Tensor<B, D>,
    noise: Tensor<B, D>,
    ts: &[usize],
) -> Result<Tensor<B, D>, SchedulerError> {
    let (sa, sb) = coefficients(ac, ts, &x0)?;
    Ok(x0 * sa + noise * sb)
}

/// `v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀` per sample.
pub(crate) fn velocity<B: Backend, const D: usize>(
    ac: &[f64],
    x0: Tensor<B, D>,
    noise: Tensor<B, D>,
    ts: &[usize],
) -> Result<Tensor<B, D>, SchedulerError> {
    let (sa, sb) = coefficients(ac, ts, &x0)?;
    Ok(noise * sa - x0 * sb)
}

/// `batch` timesteps uniform in `[0, n)`.
pub(crate) fn sample_timesteps(n: usize, batch: usize, rng: &mut NoiseGenerator) -> Vec<usize> {
    rng.uniform_f64(batch)
        .into_iter()
        .map(|u| ((u * n as f64) as usize).min(n - 1))
        .collect()
}

/// The noisy input, the timesteps as model time, the target of `prediction_type`, weight 1.
pub(crate) fn training_batch<B: Backend, const D: usize>(
    ac: &[f64],
    prediction_type: PredictionType,
    x0: Tensor<B, D>,
    noise: Tensor<B, D>,
    ts: &[usize],
) -> Result<TrainingBatch<B, D>, SchedulerError> {
    let model_input = add_noise(ac, x0.clone(), noise.clone(), ts)?;
    let target = match prediction_type {
        PredictionType::Epsilon => noise,
        PredictionType::Sample => x0,
        PredictionType::VPrediction => velocity(ac, x0, noise, ts)?,
    };
    let device = model_input.device();
    let times: Vec<f64> = ts.iter().map(|&t| t as f64).collect();
    Ok(TrainingBatch {
        model_input,
        model_time: vector(&times, &device),
        target,
        loss_weight: vector(&vec![1.0; ts.len()], &device),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn trailing_matches_numpy_half_to_even() {
        // np.round(np.arange(1000, 0, -62.5)) - 1 rounds 937.5 -> 938 and 812.5 -> 812.
        let ts = inference_timesteps(TimestepSpacing::Trailing, 1000, 16, 0).unwrap();
        assert_eq!(&ts[..4], &[999, 937, 874, 811]);
        assert_eq!(ts.len(), 16);
        let ts = inference_timesteps(TimestepSpacing::Trailing, 1000, 61, 0).unwrap();
        assert_eq!(ts.len(), 61);
    }

    #[test]
    fn threshold_quantile_interpolates() {
        let device = Default::default();
        // |x| sorted per sample: [0, 1, 2, 3, 4]; quantile 0.9 -> 3.6; second sample max 0.5 -> s = 1.
        let x = Tensor::<Flex, 2>::from_floats(
            [[0.0, -4.0, 1.0, 3.0, -2.0], [0.1, 0.2, -0.5, 0.3, 0.4]],
            &device,
        );
        let y = threshold_sample(x, 0.9, 10.0);
        let expected = [
            [0.0, -1.0, 1.0 / 3.6, 3.0 / 3.6, -2.0 / 3.6],
            [0.1, 0.2, -0.5, 0.3, 0.4],
        ];
        let got: Vec<f32> = y.into_data().to_vec().unwrap();
        for (g, e) in got.iter().zip(expected.iter().flatten()) {
            assert!((*g as f64 - e).abs() < 1e-6, "{got:?}");
        }
    }
}
