//! Knowledge-distillation losses, survey sec. 3.2 (after DeiT, Touvron et al. 2021):
//!
//! ```text
//! L_global     = (1 − λ)·L_CE(ψ(Z_s), y) + λ·τ²·KL(ψ(Z_t/τ) ‖ ψ(Z_s/τ))      (16)
//! L_hardDistill = ½·L_CE(ψ(Z_s), y) + ½·L_CE(ψ(Z_s), y_t),  y_t = argmax Z_t   (17)
//! ```
//!
//! `ψ` is the softmax over classes, `Z_s`/`Z_t` student/teacher logits. **KL direction**: the
//! survey (like the DeiT paper) writes `KL(ψ(Z_s/τ), ψ(Z_t/τ))`, but DeiT's code
//! (`F.kl_div(log_softmax(s/τ), log_softmax(t/τ), log_target=True)`) and Hinton et al. compute
//! `KL(p_t ‖ p_s) = Σ_c p_t·(log p_t − log p_s)`, the teacher being the target distribution; we
//! follow the code. The teacher is detached (no gradient flows into it).
//!
//! Reductions: cross-entropy is the batch mean; the KL term is summed over classes and averaged
//! over the batch ([`KlReduction::BatchMean`], PyTorch's `reduction="batchmean"`) or, as DeiT's
//! code does, summed and divided by the number of logits `B·C` ([`KlReduction::ElementMean`]).

use crate::error::ConfigError;
use crate::error::{QuantError, positive_f64};
use burn::config::Config;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// How the KL term of eq. 16 is averaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KlReduction {
    /// `Σ_{b,c} / B` (PyTorch `batchmean`, the mathematical KL per sample).
    BatchMean,
    /// `Σ_{b,c} / (B·C)` (DeiT's `DistillationLoss`).
    ElementMean,
}

/// Configuration of the distillation losses.
#[derive(Config, Debug)]
pub struct DistillConfig {
    /// Temperature `τ > 0` softening both distributions (DeiT default 3.0).
    #[config(default = 3.0)]
    pub temperature: f64,
    /// Weight `λ ∈ [0, 1]` of the KL term in eq. 16 (DeiT default 0.5).
    #[config(default = 0.5)]
    pub lambda: f64,
    /// Averaging of the KL term.
    #[config(default = "KlReduction::BatchMean")]
    pub reduction: KlReduction,
}

/// Validated distillation losses (see the module docs for the equations).
#[derive(Clone, Debug, PartialEq)]
pub struct Distill {
    temperature: f64,
    lambda: f64,
    reduction: KlReduction,
}

impl DistillConfig {
    /// Validates and builds the losses.
    ///
    /// # Errors
    /// [`QuantError::Config`] (`ConfigError::OutOfDomain`) naming `temperature` unless `> 0`, or `lambda` unless in
    /// `[0, 1]`.
    pub fn init(&self) -> Result<Distill, QuantError> {
        positive_f64("temperature", self.temperature)?;
        if !(0.0..=1.0).contains(&self.lambda) {
            return Err(QuantError::Config(ConfigError::OutOfDomain {
                field: "lambda",
                value: self.lambda,
                requirement: "in [0, 1]",
            }));
        }
        Ok(Distill {
            temperature: self.temperature,
            lambda: self.lambda,
            reduction: self.reduction,
        })
    }
}

/// Mean cross-entropy `−(1/B)·Σ_b log ψ(Z)_{b, y_b}`.
///
/// # Shapes
/// `logits`: `[B, C]`, `labels`: `[B]` with values in `0..C` → `[1]`.
///
/// # Panics
/// If the batch sizes differ.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [b, _] = logits.dims();
    assert_eq!(
        labels.dims()[0],
        b,
        "labels {:?} for logits [{b}, C]",
        labels.dims()
    );
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([b, 1]));
    picked.mean().neg()
}

impl Distill {
    /// `τ`.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// `λ`.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Soft term `τ²·KL(ψ(Z_t/τ) ‖ ψ(Z_s/τ))`, reduced per [`KlReduction`]; the teacher is
    /// detached.
    ///
    /// # Shapes
    /// `student`, `teacher`: `[B, C]` → `[1]`.
    ///
    /// # Panics
    /// If the shapes differ.
    pub fn soft_loss<B: Backend>(
        &self,
        student: Tensor<B, 2>,
        teacher: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        assert_eq!(student.dims(), teacher.dims(), "student vs teacher logits");
        let [b, c] = student.dims();
        let tau = self.temperature;
        let log_ps = log_softmax(student / tau, 1);
        let log_pt = log_softmax(teacher.detach() / tau, 1);
        let kl = (log_pt.clone().exp() * (log_pt - log_ps)).sum();
        let denom = match self.reduction {
            KlReduction::BatchMean => b,
            KlReduction::ElementMean => b * c,
        };
        kl * (tau * tau / denom as f64)
    }

    /// Eq. 16: `(1 − λ)·CE(Z_s, y) + λ·soft_loss(Z_s, Z_t)`.
    ///
    /// # Shapes
    /// `student`, `teacher`: `[B, C]`, `labels`: `[B]` → `[1]`.
    ///
    /// # Panics
    /// If the shapes disagree.
    pub fn global_loss<B: Backend>(
        &self,
        student: Tensor<B, 2>,
        teacher: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> Tensor<B, 1> {
        let ce = cross_entropy(student.clone(), labels);
        ce * (1.0 - self.lambda) + self.soft_loss(student, teacher) * self.lambda
    }

    /// Eq. 17: `½·CE(Z_s, y) + ½·CE(Z_s, argmax Z_t)` (no temperature, no `λ`).
    ///
    /// # Shapes
    /// `student`, `teacher`: `[B, C]`, `labels`: `[B]` → `[1]`.
    ///
    /// # Panics
    /// If the shapes disagree.
    pub fn hard_loss<B: Backend>(
        &self,
        student: Tensor<B, 2>,
        teacher: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> Tensor<B, 1> {
        let [b, _] = teacher.dims();
        let y_t = teacher.detach().argmax(1).reshape([b]);
        (cross_entropy(student.clone(), labels) + cross_entropy(student, y_t)) * 0.5
    }
}
