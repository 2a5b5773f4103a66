//! What all schedulers share: the prediction type, the sampling interface with an explicit step
//! index, the training batch, and the generic sampling loop.

use crate::config::config_enum;
use crate::error::SchedulerError;
use crate::finite::FiniteCheck;
use crate::noise::NoiseSource;
use burn::tensor::{Tensor, backend::Backend};

config_enum! {
    /// What the model predicts (diffusers' `prediction_type`).
    pub enum PredictionType {
        /// The added noise ε.
        Epsilon = "epsilon",
        /// The clean sample x₀.
        Sample = "sample",
        /// The velocity `v = α·ε − σ·x₀` (Salimans & Ho 2022).
        VPrediction = "v_prediction",
    }
}

config_enum! {
    /// How the inference timesteps are spread over the training steps (diffusers'
    /// `timestep_spacing`; Lin et al. 2023, Table 2), for `N` training and `n` inference steps,
    /// descending: `linspace`: `linspace(0, N−1, n)` (rounded by DDPM/DDIM, fractional for Euler);
    /// `leading`: `k·⌊N/n⌋ + steps_offset`; `trailing`: `round(N − k·N/n) − 1`, `k = 0..n`
    /// (rounding half to even, as numpy).
    pub enum TimestepSpacing {
        /// Evenly spaced from 0 to `N − 1`, both ends included.
        Linspace = "linspace",
        /// Multiples of `⌊N/n⌋` from 0, plus `steps_offset`.
        Leading = "leading",
        /// Evenly spaced from `N − 1` down, ending above 0.
        Trailing = "trailing",
    }
}

/// One sampling schedule, stepped with an explicit index `i = 0..num_steps()` — there is no hidden
/// step counter, and stochastic steps take their noise from the caller.
///
/// A loop over it (what [`sample`] does):
/// `x = noise·init_noise_sigma(); for i { out = model(scale_model_input(i, x), model_time(i));
/// x = step(i, out, x, noise_i) }`.
pub trait Sampler {
    /// Number of sampling steps.
    fn num_steps(&self) -> usize;

    /// The value the model is conditioned on at step `i` (a DDPM timestep, EDM's `c_noise(σ)`, a
    /// flow time scaled to the training range, …), f64.
    fn model_time(&self, i: usize) -> f64;

    /// Standard deviation of the initial noise.
    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    /// Scales the sample before it enters the model at step `i` (EDM's `c_in`); identity by
    /// default.
    fn scale_model_input<B: Backend, const D: usize>(
        &self,
        i: usize,
        sample: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let _ = i;
        sample
    }

    /// Whether [`Sampler::step`] at `i` consumes noise.
    fn needs_noise(&self, i: usize) -> bool;

    /// Advances `sample` from step `i` to step `i + 1` given the model's output at step `i`.
    ///
    /// # Shapes
    /// `model_output`, `sample`, `noise`: any rank, all the same shape
    ///
    /// # Errors
    /// [`SchedulerError::StepOutOfRange`], or [`SchedulerError::MissingNoise`] when the step is
    /// stochastic and `noise` is `None`.
    fn step<B: Backend, const D: usize>(
        &self,
        i: usize,
        model_output: Tensor<B, D>,
        sample: Tensor<B, D>,
        noise: Option<Tensor<B, D>>,
    ) -> Result<Tensor<B, D>, SchedulerError>;
}

/// What a sampling loop reports after each step's model evaluation, to the `callback` of
/// [`try_sample`] and of EDM's samplers (k-diffusion's `callback` dictionary).
#[derive(Debug)]
pub struct Progress<'a, B: Backend, const D: usize> {
    /// Step index `i`.
    pub step: usize,
    /// Number of steps of the run.
    pub num_steps: usize,
    /// The step's model time ([`Sampler::model_time`]), or EDM's churned `σ̂`.
    pub time: f64,
    /// The sample the model was evaluated at (before [`Sampler::scale_model_input`]; EDM's `x̂`).
    pub sample: &'a Tensor<B, D>,
    /// The model output (velocity, ε, …), or EDM's denoised estimate `D(x̂, σ̂)`.
    pub model_output: &'a Tensor<B, D>,
}

/// Runs a full sampling loop with an infallible model and the non-finite guard on: [`try_sample`]
/// with [`FiniteCheck::EveryStep`] and no progress callback.
///
/// # Errors
/// Any error of [`Sampler::step`]; [`SchedulerError::NonFinite`] naming the step and tensor.
pub fn sample<S, B, const D: usize, M, N>(
    scheduler: &S,
    mut model: M,
    initial_noise: Tensor<B, D>,
    noise: &mut N,
) -> Result<Tensor<B, D>, SchedulerError>
where
    S: Sampler,
    B: Backend,
    M: FnMut(Tensor<B, D>, f64) -> Tensor<B, D>,
    N: NoiseSource<B, D>,
{
    try_sample(
        scheduler,
        |x, t| Ok(model(x, t)),
        initial_noise,
        noise,
        FiniteCheck::EveryStep,
        |_| {},
    )
}

/// Runs a full sampling loop. `model(x, t)` returns the model output for the (scaled) input `x`
/// at conditioning value `t`, or an error that ends the loop unchanged; `initial_noise` is
/// standard normal and is scaled by [`Sampler::init_noise_sigma`]; per-step noise comes from
/// `noise`. With [`FiniteCheck::EveryStep`] each step's new sample is checked for NaN/±∞
/// ([`crate::finite`]). `callback` sees every step's [`Progress`] (index, model time, the sample
/// and the model output) before the step is taken.
///
/// # Errors
/// The model's errors; any error of [`Sampler::step`] and [`SchedulerError::NonFinite`] (naming
/// the step, its model time and `"model output"` or `"sample"`), converted into `E`.
pub fn try_sample<S, B, const D: usize, M, N, E, C>(
    scheduler: &S,
    mut model: M,
    initial_noise: Tensor<B, D>,
    noise: &mut N,
    check: FiniteCheck,
    mut callback: C,
) -> Result<Tensor<B, D>, E>
where
    S: Sampler,
    B: Backend,
    M: FnMut(Tensor<B, D>, f64) -> Result<Tensor<B, D>, E>,
    N: NoiseSource<B, D>,
    E: From<SchedulerError>,
    C: FnMut(Progress<'_, B, D>),
{
    let mut x = initial_noise * scheduler.init_noise_sigma();
    let num_steps = scheduler.num_steps();
    for i in 0..num_steps {
        let time = scheduler.model_time(i);
        let out = model(scheduler.scale_model_input(i, x.clone()), time)?;
        callback(Progress {
            step: i,
            num_steps,
            time,
            sample: &x,
            model_output: &out,
        });
        let n = scheduler.needs_noise(i).then(|| noise.noise(i, &x));
        let probe = (check == FiniteCheck::EveryStep).then(|| out.clone());
        x = scheduler.step(i, out, x, n)?;
        if let Some(out) = probe {
            check.check_step(i, time, &out, &x)?;
        }
    }
    Ok(x)
}

/// A whole sampling loop over a fallible model, the one interface the pipelines sample through:
/// every [`Sampler`] (DDPM, DDIM, Euler, rectified flow: [`try_sample`]) and EDM's Euler/Heun
/// solvers ([`EdmSampler`](crate::edm::EdmSampler)) run the same way.
pub trait SamplingLoop {
    /// Runs the loop from standard-normal `initial_noise`. `model(x, t)` returns the model's raw
    /// output for the (scaled) input `x` at model time `t` — a flow velocity, ε, or EDM's network
    /// output `F(c_in·x, c_noise)` — or an error that ends the loop unchanged. Stochastic steps
    /// draw from `noise`; `check` is the non-finite guard ([`crate::finite`]); `callback` sees
    /// every step's [`Progress`].
    ///
    /// # Errors
    /// The model's errors; the loop's own [`SchedulerError`]s (a rejected step, a non-finite
    /// output naming the step), converted into `E`.
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
        C: FnMut(Progress<'_, B, D>);

    /// Number of steps the loop reports through its callback.
    fn steps(&self) -> usize;
}

impl<S: Sampler> SamplingLoop for S {
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
        try_sample(self, model, initial_noise, noise, check, callback)
    }

    fn steps(&self) -> usize {
        self.num_steps()
    }
}

/// Everything a training step needs for one batch, built by a scheduler's `training_batch`.
#[derive(Debug, Clone)]
pub struct TrainingBatch<B: Backend, const D: usize> {
    /// The noisy input to feed the model (already scaled by `c_in` where the scheduler has one).
    pub model_input: Tensor<B, D>,
    /// The per-sample conditioning values for the model, `[B]`.
    pub model_time: Tensor<B, 1>,
    /// The regression target for the model's raw output.
    pub target: Tensor<B, D>,
    /// The per-sample loss weight, `[B]`.
    pub loss_weight: Tensor<B, 1>,
}

impl<B: Backend, const D: usize> TrainingBatch<B, D> {
    /// The weighted mean-squared error `mean_b(w_b · mean(‖output_b − target_b‖²))`.
    ///
    /// # Shapes
    /// `model_output`: like `target` → scalar `[1]`
    pub fn loss(&self, model_output: Tensor<B, D>) -> Tensor<B, 1> {
        let batch = self.target.dims()[0];
        let per_sample = (model_output - self.target.clone())
            .powi_scalar(2)
            .reshape([batch as i32, -1])
            .mean_dim(1)
            .reshape([batch]);
        (per_sample * self.loss_weight.clone()).mean()
    }
}

/// Broadcasts a per-sample vector `[B]` against a tensor `[B, ...]`.
pub(crate) fn per_sample<B: Backend, const D: usize>(
    values: &[f64],
    like: &Tensor<B, D>,
) -> Tensor<B, D> {
    let mut shape = [1usize; D];
    shape[0] = values.len();
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::<B, 1>::from_floats(v.as_slice(), &like.device()).reshape(shape)
}

/// A `[B]` tensor from host values.
pub(crate) fn vector<B: Backend>(values: &[f64], device: &B::Device) -> Tensor<B, 1> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::from_floats(v.as_slice(), device)
}
