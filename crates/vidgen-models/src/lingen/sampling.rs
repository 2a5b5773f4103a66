//! Text-to-video sampling for [`LinGenDit`]: rectified flow (Euler) with classifier-free
//! guidance, as Open-Sora 1.2 samples (report sec. 4.2; `RFlow.sample`: the conditional and the
//! null-text passes run as one batch, `v = v_u + w·(v_c − v_u)`), on vidgen's
//! [`RectifiedFlow`] schedule (diffusers' convention `v = ε − x₀`, model time `σ·1000`).

use super::LinGenDit;
use crate::error::{ModelError, same_size};
use burn::tensor::{Bool, Int, Tensor, backend::Backend};
use vidgen_schedulers::{ClassifierFreeGuidance, FiniteCheck, NoiseSource, RectifiedFlow, Sampler};

/// Text tokens and their key-padding mask.
#[derive(Debug, Clone)]
pub struct TextCondition<B: Backend> {
    /// `[B, L, d_text]`.
    pub tokens: Tensor<B, 3>,
    /// `[B, L]`, `true` = padded token; `None` = all tokens valid.
    pub mask: Option<Tensor<B, 2, Bool>>,
}

impl<B: Backend> TextCondition<B> {
    /// Tokens without padding.
    pub fn new(tokens: Tensor<B, 3>) -> Self {
        Self { tokens, mask: None }
    }

    /// Tokens with a key-padding mask (`true` = padded).
    pub fn with_mask(tokens: Tensor<B, 3>, mask: Tensor<B, 2, Bool>) -> Self {
        Self {
            tokens,
            mask: Some(mask),
        }
    }

    fn mask_or_valid(&self) -> Tensor<B, 2, Bool> {
        let [b, l, _] = self.tokens.dims();
        self.mask.clone().unwrap_or_else(|| {
            Tensor::<B, 2, Int>::zeros([b, l], &self.tokens.device()).equal_elem(1)
        })
    }
}

/// Samples a latent video from `noise` (Open-Sora 1.2's RFlow sampler, Euler steps):
///
/// ```text
/// for i in 0..n:  v = v_u + w·(v_c − v_u)   (v_c only without `uncond`)
///                 x ← flow.step(i, v, x)    x_{i+1} = x_i + (σ_{i+1} − σ_i)·v
/// ```
///
/// `uncond` is the null-text condition (Open-Sora: the learnt null caption; here any text of
/// the same length), `None` for no guidance. Stochastic flows draw their noise from `rng`.
///
/// # Shapes
/// `noise`: `[B, C, T, H, W]`, `cond.tokens`, `uncond.tokens`: `[B, L, d_text]` →
/// `[B, C, T, H, W]`
///
/// # Errors
/// Those of [`LinGenDit::forward`]; [`ModelError::ShapeMismatch`] if `uncond` has another
/// length or batch than `cond`; [`ModelError::NonFinite`] naming the step when `check` is on and
/// the velocity or sample goes NaN/±∞; [`ModelError::Unsupported`] naming `flow` if a scheduler step
/// fails.
#[allow(clippy::too_many_arguments)]
pub fn sample<B: Backend, N: NoiseSource<B, 5>>(
    model: &LinGenDit<B>,
    flow: &RectifiedFlow,
    noise: Tensor<B, 5>,
    cond: &TextCondition<B>,
    uncond: Option<&TextCondition<B>>,
    guidance: ClassifierFreeGuidance,
    rng: &mut N,
    check: FiniteCheck,
) -> Result<Tensor<B, 5>, ModelError> {
    let batch = noise.dims()[0];
    let device = noise.device();
    let text = match uncond {
        Some(u) => {
            same_size(
                "unconditional text batch",
                cond.tokens.dims()[0],
                u.tokens.dims()[0],
            )?;
            same_size(
                "unconditional text length",
                cond.tokens.dims()[1],
                u.tokens.dims()[1],
            )?;
            let mask = (cond.mask.is_some() || u.mask.is_some())
                .then(|| Tensor::cat(vec![u.mask_or_valid(), cond.mask_or_valid()], 0));
            TextCondition {
                tokens: Tensor::cat(vec![u.tokens.clone(), cond.tokens.clone()], 0),
                mask,
            }
        }
        None => cond.clone(),
    };
    let mut x = noise * flow.init_noise_sigma();
    for i in 0..flow.num_steps() {
        let copies = if uncond.is_some() { 2 } else { 1 };
        let t = Tensor::<B, 1>::full([copies * batch], flow.model_time(i), &device);
        let input = Tensor::cat(vec![x.clone(); copies], 0);
        let v = model.forward(input, t, text.tokens.clone(), text.mask.clone())?;
        let v = if uncond.is_some() {
            let v_u = v.clone().narrow(0, 0, batch);
            guidance.combine(v.narrow(0, batch, batch), v_u)
        } else {
            v
        };
        let step_noise = flow.needs_noise(i).then(|| rng.noise(i, &x));
        let probe = (check == FiniteCheck::EveryStep).then(|| v.clone());
        x = flow
            .step(i, v, x, step_noise)
            .map_err(|e| ModelError::Unsupported {
                field: "flow",
                value: e.to_string(),
                reason: "the scheduler step failed",
            })?;
        if let Some(v) = probe {
            check.check_step(i, flow.model_time(i), &v, &x)?;
        }
    }
    Ok(x)
}
