//! Lookup-free quantization (MAGVIT-v2, Yu et al. 2023, sec. 3.1, eqs. 3–5), in the form of
//! lucidrains' `LFQ` (one codebook, no projections, training mode): every channel is quantized to
//! `±codebook_scale` by its sign, the index is the binary code with channel 0 as the most
//! significant bit, and an entropy penalty drives confident per-token assignments and uniform
//! codebook use.

use super::{flatten_channels, flatten_indices, index_shape, non_negative, straight_through};
use crate::error::ConfigError;
use crate::error::{VaeError, positive, positive_f64};
use burn::config::Config;
use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// Widest code: indices must fit a 32-bit integer on every backend.
const MAX_CODE_DIM: usize = 30;
/// Probabilities are clamped to this before the `log` of the entropies (lucidrains).
const ENTROPY_EPS: f64 = 1e-5;

/// Configuration of [`Lfq`]. Defaults are lucidrains' `LFQ` defaults, except `commitment_weight`
/// (vector-quantize-pytorch 1.32 defaults it to 0).
#[derive(Config, Debug)]
pub struct LfqConfig {
    /// Channels `d`; the implicit codebook has `2^d` codes. At most 30.
    pub code_dim: usize,
    /// Weight of the entropy penalty.
    #[config(default = 0.1)]
    pub entropy_weight: f64,
    /// Weight of the commitment loss.
    #[config(default = 0.25)]
    pub commitment_weight: f64,
    /// Weight `γ` of the codebook (batch) entropy inside the entropy penalty.
    #[config(default = 1.0)]
    pub diversity_gamma: f64,
    /// Inverse temperature `τ⁻¹` of the soft assignment `softmax(2τ⁻¹ x·c)`.
    #[config(default = 100.0)]
    pub inv_temperature: f64,
    /// Code values `±codebook_scale`.
    #[config(default = 1.0)]
    pub codebook_scale: f64,
}

impl LfqConfig {
    /// Builds the quantizer.
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::Zero`) naming `code_dim`; [`VaeError::Config`] (`ConfigError::Unsupported`) naming `code_dim` above 30
    /// (indices are 32-bit); [`VaeError::Config`] (`ConfigError::OutOfDomain`) naming `entropy_weight`,
    /// `commitment_weight` or `diversity_gamma` (`< 0`), `inv_temperature` or `codebook_scale`
    /// (`<= 0`).
    pub fn init(&self) -> Result<Lfq, VaeError> {
        positive("code_dim", self.code_dim)?;
        if self.code_dim > MAX_CODE_DIM {
            return Err(VaeError::Config(ConfigError::Unsupported {
                field: "code_dim",
                value: self.code_dim.to_string(),
                reason: "indices are 32-bit integers: at most 30 channels",
            }));
        }
        non_negative("entropy_weight", self.entropy_weight)?;
        non_negative("commitment_weight", self.commitment_weight)?;
        non_negative("diversity_gamma", self.diversity_gamma)?;
        positive_f64("inv_temperature", self.inv_temperature)?;
        positive_f64("codebook_scale", self.codebook_scale)?;
        Ok(Lfq {
            config: self.clone(),
        })
    }
}

/// What [`Lfq::forward`] returns.
#[derive(Debug, Clone)]
pub struct LfqOutput<B: Backend, const D: usize> {
    /// `x + (q − x).detach()` with `q = ±codebook_scale`. `[.., d]`.
    pub quantized: Tensor<B, D>,
    /// Binary code of `q > 0`, channel 0 most significant. `[.., 1]`.
    pub indices: Tensor<B, D, Int>,
    /// `entropy_weight·(per_sample_entropy − γ·codebook_entropy)`. `[1]`.
    pub entropy_loss: Tensor<B, 1>,
    /// `commitment_weight·mean((x − sg[q])²)`. `[1]`.
    pub commitment_loss: Tensor<B, 1>,
    /// `mean_n H(p_n)` (unweighted). `[1]`.
    pub per_sample_entropy: Tensor<B, 1>,
    /// `H(mean_n p_n)` (unweighted). `[1]`.
    pub codebook_entropy: Tensor<B, 1>,
}

impl<B: Backend, const D: usize> LfqOutput<B, D> {
    /// `entropy_loss + commitment_loss` (lucidrains' `aux_loss`).
    pub fn aux_loss(&self) -> Tensor<B, 1> {
        self.entropy_loss.clone() + self.commitment_loss.clone()
    }
}

/// Lookup-free quantizer. Holds no parameters.
#[derive(Debug, Clone)]
pub struct Lfq {
    config: LfqConfig,
}

impl Lfq {
    /// The validated configuration.
    pub fn config(&self) -> &LfqConfig {
        &self.config
    }

    /// Codebook size `2^code_dim`.
    pub fn codebook_size(&self) -> usize {
        1 << self.config.code_dim
    }

    /// Bit weights `[2^(d−1), .., 2, 1]` shaped `[1, d]`.
    fn bit_weights<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2, Int> {
        let d = self.config.code_dim;
        let w: Vec<i64> = (0..d).map(|i| 1i64 << (d - 1 - i)).collect();
        Tensor::from_data(TensorData::new(w, [1, d]), device)
    }

    /// Every code `c_k` in index order. `[2^d, d]`.
    pub fn codebook<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        let idx = Tensor::<B, 1, Int>::arange(0..self.codebook_size() as i64, device);
        self.indices_to_codes(idx.reshape([self.codebook_size(), 1]))
    }

    /// Quantizes `x` by sign (eq. 3) and computes the losses.
    ///
    /// With `p_n = softmax_k(2τ⁻¹ x_n·c_k)` over all `2^d` codes (the squared distance up to a
    /// constant) and `H(p) = −Σ_k p_k log max(p_k, 1e-5)`: entropy penalty
    /// `mean_n H(p_n) − γ·H(mean_n p_n)` (eq. 5), commitment `mean((x − sg[q])²)`.
    /// Memory: `[N, 2^d]` probabilities.
    ///
    /// # Shapes
    /// `x`: `[.., d]` → quantized `[.., d]`, indices `[.., 1]`.
    ///
    /// # Panics
    /// If the last axis is not `code_dim`.
    pub fn forward<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> LfqOutput<B, D> {
        let dims = x.dims();
        let cfg = &self.config;
        let scale = cfg.codebook_scale;
        let flat = flatten_channels(x.clone(), cfg.code_dim, "Lfq::forward");
        let n = flat.dims()[0];
        let device = flat.device();
        let positive = flat.clone().greater_elem(0.0);
        let q = Tensor::<B, 2>::full([n, cfg.code_dim], -scale, &device)
            .mask_fill(positive.clone(), scale);
        let indices = (positive.int() * self.bit_weights::<B>(&device))
            .sum_dim(1)
            .reshape(index_shape(dims));
        let logits = flat.clone().matmul(self.codebook::<B>(&device).transpose())
            * (2.0 * cfg.inv_temperature);
        let prob = softmax(logits, 1);
        let per_sample_entropy = entropy(prob.clone()).mean();
        let codebook_entropy = entropy(prob.mean_dim(0)).reshape([1]);
        let entropy_loss = (per_sample_entropy.clone()
            - codebook_entropy.clone() * cfg.diversity_gamma)
            * cfg.entropy_weight;
        let commitment_loss = (flat - q.clone().detach()).square().mean() * cfg.commitment_weight;
        LfqOutput {
            quantized: straight_through(x, q.reshape(dims)),
            indices,
            entropy_loss,
            commitment_loss,
            per_sample_entropy,
            codebook_entropy,
        }
    }

    /// Codes of `indices`: bit `i` (channel 0 most significant) `b ∈ {0, 1}` gives
    /// `(2b − 1)·codebook_scale`.
    ///
    /// # Shapes
    /// `indices`: `[.., 1]` → `[.., d]`.
    ///
    /// # Panics
    /// If the last axis of `indices` is not 1.
    pub fn indices_to_codes<B: Backend, const D: usize>(
        &self,
        indices: Tensor<B, D, Int>,
    ) -> Tensor<B, D> {
        let d = self.config.code_dim;
        let scale = self.config.codebook_scale;
        let (flat, dims) = flatten_indices(indices, d, "Lfq::indices_to_codes");
        let n = flat.dims()[0];
        let device = flat.device();
        let bits = (flat.reshape([n, 1]) / self.bit_weights::<B>(&device)).remainder_scalar(2);
        (bits.float() * (2.0 * scale) - scale).reshape(dims)
    }
}

/// `H(p) = −Σ p·log max(p, 1e-5)` over the last axis of `[R, K]` → `[R]`.
fn entropy<B: Backend>(prob: Tensor<B, 2>) -> Tensor<B, 1> {
    let r = prob.dims()[0];
    let logp = prob.clone().clamp_min(ENTROPY_EPS).log();
    (prob * logp).sum_dim(1).neg().reshape([r])
}
