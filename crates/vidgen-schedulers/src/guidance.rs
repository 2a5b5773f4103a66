//! Classifier-free guidance (Ho & Salimans 2022) with guidance rescale (Lin et al. 2023, "Common
//! Diffusion Noise Schedules and Sample Steps are Flawed", sec. 3.4).
//!
//! `g = u + w·(c − u)`; with rescale `φ`: `g ← φ·g·std(c)/std(g) + (1 − φ)·g`, the standard
//! deviations taken per sample over all non-batch elements (unbiased, as diffusers'
//! `rescale_noise_cfg`).

use crate::error::SchedulerError;
use burn::tensor::{Tensor, backend::Backend};

/// Classifier-free guidance settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassifierFreeGuidance {
    /// Guidance weight `w` (1 = conditional prediction only, 0 = unconditional only).
    pub guidance_scale: f64,
    /// Rescale factor `φ ∈ [0, 1]` (0 = plain CFG; Lin et al. suggest 0.7).
    pub guidance_rescale: f64,
}

impl ClassifierFreeGuidance {
    /// Validated guidance settings.
    ///
    /// # Errors
    /// [`SchedulerError::OutOfDomain`] if `guidance_scale` is not finite or `guidance_rescale` is
    /// outside `[0, 1]`.
    pub fn new(guidance_scale: f64, guidance_rescale: f64) -> Result<Self, SchedulerError> {
        if !guidance_scale.is_finite() {
            return Err(SchedulerError::OutOfDomain {
                field: "guidance_scale",
                value: guidance_scale,
                requirement: "finite",
            });
        }
        if !(0.0..=1.0).contains(&guidance_rescale) {
            return Err(SchedulerError::OutOfDomain {
                field: "guidance_rescale",
                value: guidance_rescale,
                requirement: "in [0, 1]",
            });
        }
        Ok(Self {
            guidance_scale,
            guidance_rescale,
        })
    }

    /// Combines conditional and unconditional predictions.
    ///
    /// # Shapes
    /// `cond`, `uncond`: `[B, ...]` → `[B, ...]`
    pub fn combine<B: Backend, const D: usize>(
        &self,
        cond: Tensor<B, D>,
        uncond: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let guided = uncond.clone() + (cond.clone() - uncond) * self.guidance_scale;
        if self.guidance_rescale == 0.0 {
            return guided;
        }
        let std = |t: Tensor<B, D>| -> Tensor<B, D> {
            let dims = t.dims();
            let mut shape = [1usize; D];
            shape[0] = dims[0];
            t.reshape([dims[0] as i32, -1]).var(1).sqrt().reshape(shape)
        };
        let rescaled = guided.clone() * std(cond) / std(guided.clone());
        rescaled * self.guidance_rescale + guided * (1.0 - self.guidance_rescale)
    }

    /// Runs the unconditional and conditional passes as one batch of `2B` and combines them.
    ///
    /// `model(x, c)` receives `x` repeated twice and the conditioning `[uncond; cond]`
    /// concatenated along the batch axis (diffusers' order).
    ///
    /// # Shapes
    /// `x`: `[B, ...]`; `cond`, `uncond`: `[B, ...]` (e.g. text tokens `[B, L, C]`) → `[B, ...]`
    pub fn guide<B, const D: usize, const K: usize, M>(
        &self,
        x: Tensor<B, D>,
        cond: Tensor<B, K>,
        uncond: Tensor<B, K>,
        model: M,
    ) -> Tensor<B, D>
    where
        B: Backend,
        M: FnOnce(Tensor<B, D>, Tensor<B, K>) -> Tensor<B, D>,
    {
        let batch = x.dims()[0];
        let out = model(
            Tensor::cat(vec![x.clone(), x], 0),
            Tensor::cat(vec![uncond, cond], 0),
        );
        let uncond_out = out.clone().narrow(0, 0, batch);
        let cond_out = out.narrow(0, batch, batch);
        self.combine(cond_out, uncond_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidgen_testing::{Flex, Tolerance, assert_close};

    #[test]
    fn rejects_bad_settings() {
        assert!(matches!(
            ClassifierFreeGuidance::new(7.5, 1.5),
            Err(SchedulerError::OutOfDomain {
                field: "guidance_rescale",
                ..
            })
        ));
        assert!(ClassifierFreeGuidance::new(f64::NAN, 0.0).is_err());
    }

    #[test]
    fn batched_equals_two_passes() {
        let device = Default::default();
        let cfg = ClassifierFreeGuidance::new(4.0, 0.7).unwrap();
        let x = Tensor::<Flex, 3>::from_floats([[[1.0, -2.0, 0.5]], [[0.3, 0.1, -1.0]]], &device);
        let cond = Tensor::<Flex, 2>::from_floats([[1.0], [2.0]], &device);
        let uncond = Tensor::<Flex, 2>::zeros([2, 1], &device);
        // A toy model: x·(1 + c) + c.
        let model = |x: Tensor<Flex, 3>, c: Tensor<Flex, 2>| {
            let c = c.unsqueeze_dim::<3>(2);
            x * (c.clone() + 1.0) + c
        };
        let batched = cfg.guide(x.clone(), cond.clone(), uncond.clone(), model);
        let two = cfg.combine(model(x.clone(), cond), model(x, uncond));
        assert_close(batched, two, Tolerance::SINGLE_OP);
    }
}
