//! EDM sampling with Snap Video's input scaling (Sec. 3.2) and latent self-conditioning across
//! network calls (Sec. 3.4), on top of [`Edm::sample_euler`] / [`Edm::sample_heun`].

use super::{SnapFit, SnapFitCond};
use crate::error::{ModelError, same_size};
use burn::tensor::{Tensor, backend::Backend};
use vidgen_schedulers::edm::{Churn, Edm};
use vidgen_schedulers::{FiniteCheck, NoiseSource, SchedulerError};

/// The ODE solver of Karras et al. Algorithm 2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EdmSolver {
    /// One network call per step.
    Euler,
    /// Heun's 2nd-order correction: two calls per step except the last (Karras et al.'s choice).
    #[default]
    Heun,
}

/// Samples with [`Edm`] while threading self-conditioning latents through the network calls.
///
/// `network(x_in, c_noise, prev_latents)` returns `(F, latents)`; it receives `None` on its
/// first call and, on every later call, the latents it returned on the call before (detached
/// from any autodiff graph) — with Heun this includes the correction call of the same step.
/// The [`Edm`] object does the rest: `x_in = c_in·x_σ`, `D = c_skip·x_σ + c_out·F`, the ODE
/// `dx_σ/dσ = (x_σ − D/σ_in)/σ` from `x = σ_0·noise`, and the final sample multiplied by `σ_in`
/// (Snap Video Sec. 3.2).
///
/// # Shapes
/// `noise`: any shape the network takes (standard normal); the result has the same shape.
///
/// # Errors
/// [`ModelError::ShapeMismatch`] if `sigmas` has fewer than 2 values; any other rejection by the
/// sampler as [`ModelError::Component`].
#[allow(clippy::too_many_arguments)]
pub fn sample_edm_self_conditioned<B, const D: usize, M, N>(
    edm: &Edm,
    solver: EdmSolver,
    mut network: M,
    noise: Tensor<B, D>,
    sigmas: &[f64],
    churn: Churn,
    noise_source: &mut N,
    check: FiniteCheck,
) -> Result<Tensor<B, D>, ModelError>
where
    B: Backend,
    M: FnMut(Tensor<B, D>, f64, Option<Tensor<B, 3>>) -> (Tensor<B, D>, Tensor<B, 3>),
    N: NoiseSource<B, D>,
{
    if sigmas.len() < 2 {
        return Err(ModelError::ShapeMismatch {
            what: "number of sigmas (at least)",
            expected: 2,
            got: sigmas.len(),
        });
    }
    let mut prev: Option<Tensor<B, 3>> = None;
    let model = |x_in: Tensor<B, D>, c_noise: f64| {
        let (out, latents) = network(x_in, c_noise, prev.take());
        prev = Some(latents.detach());
        out
    };
    let result = match solver {
        EdmSolver::Euler => edm.sample_euler(model, noise, sigmas, churn, noise_source, check),
        EdmSolver::Heun => edm.sample_heun(model, noise, sigmas, churn, noise_source, check),
    };
    result.map_err(|e| match e {
        e @ SchedulerError::NonFinite { .. } => e.into(),
        e => ModelError::Component {
            part: "EDM sampler",
            message: e.to_string(),
        },
    })
}

impl<B: Backend> SnapFit<B> {
    /// Generates a batch: [`sample_edm_self_conditioned`] with this network, every sample at the
    /// same `c_noise`.
    ///
    /// # Shapes
    /// `noise`: `[B, C, T, H, W]` standard normal → sample `[B, C, T, H, W]` (data scale)
    ///
    /// # Errors
    /// The input errors of [`SnapFit::try_forward`], checked before the first step; the errors
    /// of [`sample_edm_self_conditioned`].
    #[allow(clippy::too_many_arguments)]
    pub fn sample<N: NoiseSource<B, 5>>(
        &self,
        edm: &Edm,
        solver: EdmSolver,
        noise: Tensor<B, 5>,
        cond: &SnapFitCond<B>,
        sigmas: &[f64],
        churn: Churn,
        noise_source: &mut N,
        check: FiniteCheck,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let [b, c, t, h, w] = noise.dims();
        let device = noise.device();
        same_size("input channels", self.in_channels, c)?;
        self.grid([t, h, w])?;
        self.check_cond(b, cond)?;
        let network = |x: Tensor<B, 5>, c_noise: f64, prev: Option<Tensor<B, 3>>| {
            self.forward(x, Tensor::full([b], c_noise, &device), cond, prev)
        };
        sample_edm_self_conditioned(
            edm,
            solver,
            network,
            noise,
            sigmas,
            churn,
            noise_source,
            check,
        )
    }
}
