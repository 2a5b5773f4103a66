//! The non-finite guard of the sampling loops: after every step the new sample is reduced to one
//! number that is NaN exactly when some element is NaN or ±∞ (`Σ 0·x`), and read back. When it
//! is, the step's model output is examined the same way, so the error names the tensor that went
//! bad first — the model's output (a NaN weight, an overflowing activation) or the sample (the
//! scheduler's own arithmetic).
//!
//! Cost: one reduction and one scalar read-back per step (a device synchronisation on GPU
//! backends). [`FiniteCheck::Off`] skips it for callers that check elsewhere.

use crate::error::SchedulerError;
use burn::tensor::{ElementConversion, Tensor, backend::Backend};

/// Whether a sampling loop checks for NaN/±∞ after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FiniteCheck {
    /// Check the sample after every step; on failure return [`SchedulerError::NonFinite`].
    #[default]
    EveryStep,
    /// No check (no per-step synchronisation); a NaN propagates to the result.
    Off,
}

/// Whether every element of `tensor` is finite, by one reduction: `Σ 0·x` is 0 for finite
/// elements and NaN as soon as one element is NaN or ±∞.
pub fn all_finite<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> bool {
    let probe: f64 = (tensor.clone() * 0.0).sum().into_scalar().elem();
    probe.is_finite()
}

impl FiniteCheck {
    /// Checks one step's result: `Ok` if checking is off or `sample` is finite; otherwise
    /// [`SchedulerError::NonFinite`] naming `"model output"` when `model_output` is non-finite,
    /// `"sample"` when only the sample is.
    ///
    /// # Errors
    /// [`SchedulerError::NonFinite`] as above, with `step` and `time`.
    pub fn check_step<B: Backend, const D: usize, const E: usize>(
        self,
        step: usize,
        time: f64,
        model_output: &Tensor<B, E>,
        sample: &Tensor<B, D>,
    ) -> Result<(), SchedulerError> {
        if self == Self::Off || all_finite(sample) {
            return Ok(());
        }
        let tensor = if all_finite(model_output) {
            "sample"
        } else {
            "model output"
        };
        Err(SchedulerError::NonFinite { step, time, tensor })
    }

    /// Checks one tensor (for loops whose step has no separate model output).
    ///
    /// # Errors
    /// [`SchedulerError::NonFinite`] naming `tensor`, with `step` and `time`.
    pub fn check<B: Backend, const D: usize>(
        self,
        step: usize,
        time: f64,
        tensor: &'static str,
        value: &Tensor<B, D>,
    ) -> Result<(), SchedulerError> {
        if self == Self::Off || all_finite(value) {
            Ok(())
        } else {
            Err(SchedulerError::NonFinite { step, time, tensor })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    type B = burn::backend::Flex;

    fn t(values: &[f32]) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::from(values), &Default::default())
    }

    #[test]
    fn all_finite_sees_every_kind_of_non_finite_value() {
        assert!(all_finite(&t(&[
            0.0,
            -1.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE
        ])));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert!(!all_finite(&t(&[1.0, bad, 2.0])), "{bad}");
        }
        // Large finite values whose sum overflows are still finite.
        assert!(all_finite(&t(&[f32::MAX, f32::MAX])));
    }

    #[test]
    fn check_step_names_the_culprit() {
        let ok = t(&[1.0]);
        let bad = t(&[f32::NAN]);
        let c = FiniteCheck::EveryStep;
        assert!(c.check_step(3, 0.5, &ok, &ok).is_ok());
        let e = c.check_step(3, 0.5, &bad, &bad).unwrap_err();
        assert!(matches!(
            e,
            SchedulerError::NonFinite {
                step: 3,
                tensor: "model output",
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "the model output became non-finite (NaN or ±inf) at sampling step 3 (model time 0.5)"
        );
        let e = c.check_step(4, 0.25, &ok, &bad).unwrap_err();
        assert!(matches!(
            e,
            SchedulerError::NonFinite {
                tensor: "sample",
                ..
            }
        ));
        assert!(FiniteCheck::Off.check_step(3, 0.5, &bad, &bad).is_ok());
        assert!(c.check(1, 0.0, "logits", &bad).is_err());
    }
}
