//! Beta schedules of discrete-time diffusion (diffusers' `beta_schedule`), computed in f64.
//!
//! - `linear`: `β_i` evenly spaced from `beta_start` to `beta_end` (Ho et al. 2020);
//! - `scaled_linear`: `√β_i` evenly spaced (Stable Diffusion);
//! - `squaredcos_cap_v2`: `β_i = min(1 − ᾱ((i+1)/N)/ᾱ(i/N), 0.999)` with
//!   `ᾱ(t) = cos²((t + 0.008)/1.008 · π/2)` (Nichol & Dhariwal 2021) — real division throughout, so
//!   no zero betas;
//! - `sigmoid`: `σ(linspace(−6, 6, N))·(beta_end − beta_start) + beta_start` (GeoDiff);
//! - `trained`: given explicitly.
//!
//! [`rescale_zero_snr`] rescales betas so the last step has zero SNR (Lin et al. 2023, Algorithm 1).

use crate::config::config_enum;
use crate::error::SchedulerError;

config_enum! {
    /// How betas are laid out over the training timesteps.
    pub enum BetaSchedule {
        /// Evenly spaced betas.
        Linear = "linear",
        /// Evenly spaced square roots of betas.
        ScaledLinear = "scaled_linear",
        /// Cosine ᾱ schedule, betas capped at 0.999.
        SquaredCosCapV2 = "squaredcos_cap_v2",
        /// Sigmoid-shaped betas.
        Sigmoid = "sigmoid",
        /// Betas given in `trained_betas`.
        Trained = "trained",
    }
}

/// `n` evenly spaced values from `a` to `b` inclusive (torch's `linspace`).
pub fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![a],
        _ => {
            let step = (b - a) / (n - 1) as f64;
            (0..n).map(|i| a + step * i as f64).collect()
        }
    }
}

/// The cosine `ᾱ(t)` of Nichol & Dhariwal.
fn cosine_alpha_bar(t: f64) -> f64 {
    ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
        .cos()
        .powi(2)
}

/// The betas of a schedule.
///
/// # Errors
/// [`SchedulerError::Zero`] for `num_train_timesteps == 0`; [`SchedulerError::Missing`] /
/// [`SchedulerError::LengthMismatch`] for a missing or wrongly sized `trained_betas`.
pub fn betas(
    schedule: BetaSchedule,
    num_train_timesteps: usize,
    beta_start: f64,
    beta_end: f64,
    trained_betas: Option<&[f64]>,
) -> Result<Vec<f64>, SchedulerError> {
    crate::error::train_timesteps(num_train_timesteps)?;
    let n = num_train_timesteps;
    if let Some(trained) = trained_betas {
        if trained.len() != n {
            return Err(SchedulerError::LengthMismatch {
                field: "trained_betas",
                got: trained.len(),
                expected: n,
            });
        }
        return Ok(trained.to_vec());
    }
    Ok(match schedule {
        BetaSchedule::Linear => linspace(beta_start, beta_end, n),
        BetaSchedule::ScaledLinear => linspace(beta_start.sqrt(), beta_end.sqrt(), n)
            .into_iter()
            .map(|b| b * b)
            .collect(),
        BetaSchedule::SquaredCosCapV2 => (0..n)
            .map(|i| {
                let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                (1.0 - cosine_alpha_bar(t2) / cosine_alpha_bar(t1)).min(0.999)
            })
            .collect(),
        BetaSchedule::Sigmoid => linspace(-6.0, 6.0, n)
            .into_iter()
            .map(|x| 1.0 / (1.0 + (-x).exp()) * (beta_end - beta_start) + beta_start)
            .collect(),
        BetaSchedule::Trained => {
            return Err(SchedulerError::Missing {
                field: "trained_betas",
                when: "beta_schedule is \"trained\"",
            });
        }
    })
}

/// Rescales betas to zero terminal SNR (Lin et al. 2023, Algorithm 1): shift and scale `√ᾱ` so
/// that its last value is 0 and its first is unchanged, then recover the betas.
pub fn rescale_zero_snr(betas: &[f64]) -> Vec<f64> {
    let sqrt_ab: Vec<f64> = alphas_cumprod(betas).iter().map(|a| a.sqrt()).collect();
    let (first, last) = (sqrt_ab[0], sqrt_ab[sqrt_ab.len() - 1]);
    let ab: Vec<f64> = sqrt_ab
        .iter()
        .map(|s| ((s - last) * first / (first - last)).powi(2))
        .collect();
    let mut out = Vec::with_capacity(ab.len());
    out.push(1.0 - ab[0]);
    out.extend(ab.windows(2).map(|w| 1.0 - w[1] / w[0]));
    out
}

/// `ᾱ_i = ∏_{j≤i} (1 − β_j)`.
pub fn alphas_cumprod(betas: &[f64]) -> Vec<f64> {
    betas
        .iter()
        .scan(1.0, |acc, b| {
            *acc *= 1.0 - b;
            Some(*acc)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squaredcos_has_no_zero_betas() {
        // candle's integer division gave 999 zero betas here.
        let b = betas(BetaSchedule::SquaredCosCapV2, 1000, 0.0001, 0.02, None).unwrap();
        assert!(b.iter().all(|&x| x > 0.0), "zero beta in {:?}", &b[..5]);
        assert_eq!(b[999], 0.999);
    }

    #[test]
    fn zero_snr_ends_at_zero_and_keeps_the_start() {
        let b = betas(BetaSchedule::ScaledLinear, 1000, 0.00085, 0.012, None).unwrap();
        let r = rescale_zero_snr(&b);
        let (ab, rb) = (alphas_cumprod(&b), alphas_cumprod(&r));
        assert!(rb[999].abs() < 1e-20, "terminal ᾱ {}", rb[999]);
        assert!((rb[0] - ab[0]).abs() < 1e-15);
    }

    #[test]
    fn trained_betas_length_is_checked() {
        let e = betas(BetaSchedule::Trained, 3, 0.0, 0.0, Some(&[0.1, 0.2])).unwrap_err();
        assert!(matches!(
            e,
            SchedulerError::LengthMismatch {
                got: 2,
                expected: 3,
                ..
            }
        ));
        let e = betas(BetaSchedule::Trained, 3, 0.0, 0.0, None).unwrap_err();
        assert!(e.to_string().contains("`trained_betas` is required"));
    }
}
