//! Vector quantization (VQ-VAE, van den Oord et al. 2017, sec. 3.1, eqs. 1–3) with exponential
//! moving-average codebook updates (VQ-VAE-2, Razavi et al. 2019, appendix; the form of lucidrains'
//! `EuclideanCodebook`: no zero-debiasing, Laplace smoothing of the cluster sizes).
//!
//! Key names follow taming-transformers' `VectorQuantizer` (`embedding` = `quantize.embedding.weight`,
//! `[n_codes, code_dim]`) and lucidrains' EMA buffers (`cluster_size`, `embed_avg`).

use super::{flatten_channels, flatten_indices, index_shape, non_negative, straight_through};
use crate::error::ConfigError;
use crate::error::{VaeError, positive, positive_f64};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Distribution, Int, Tensor, backend::Backend};

/// EMA settings of a [`VectorQuantizer`] (VQ-VAE-2 appendix).
#[derive(Config, Debug)]
pub struct VqEmaConfig {
    /// Decay `γ` of the moving averages, in `(0, 1)`.
    #[config(default = 0.99)]
    pub decay: f64,
    /// Laplace smoothing `ε` of the cluster sizes, `> 0`.
    #[config(default = 1e-5)]
    pub eps: f64,
}

/// Configuration of [`VectorQuantizer`].
#[derive(Config, Debug)]
pub struct VectorQuantizerConfig {
    /// Codebook size `K`.
    pub n_codes: usize,
    /// Code width `C` (the input's last axis).
    pub code_dim: usize,
    /// Commitment weight `β` (paper: 0.25).
    #[config(default = 0.25)]
    pub beta: f64,
    /// EMA codebook updates instead of the codebook loss; `None` trains the codebook by gradients.
    #[config(default = "None")]
    pub ema: Option<VqEmaConfig>,
}

impl VectorQuantizerConfig {
    /// Builds the quantizer with the codebook drawn from `U(−1/K, 1/K)` (taming-transformers).
    ///
    /// With EMA no tensor requires gradients, `embed_avg` starts at the codebook and
    /// `cluster_size` at **one** per code, so that `embed_avg / cluster_size` is the codebook from
    /// the start (as lucidrains' `Codebook` without k-means init). Load other statistics by
    /// replacing the fields.
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::Zero`) naming `n_codes` or `code_dim`; [`VaeError::Config`] (`ConfigError::OutOfDomain`) naming `beta`
    /// (`< 0`), `ema.decay` (outside `(0, 1)`) or `ema.eps` (`<= 0`).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<VectorQuantizer<B>, VaeError> {
        positive("n_codes", self.n_codes)?;
        positive("code_dim", self.code_dim)?;
        non_negative("beta", self.beta)?;
        if let Some(ema) = &self.ema {
            if !(ema.decay > 0.0 && ema.decay < 1.0) {
                return Err(VaeError::Config(ConfigError::OutOfDomain {
                    field: "ema.decay",
                    value: ema.decay,
                    requirement: "in (0, 1)",
                }));
            }
            positive_f64("ema.eps", ema.eps)?;
        }
        let bound = 1.0 / self.n_codes as f64;
        let codebook = Tensor::<B, 2>::random(
            [self.n_codes, self.code_dim],
            Distribution::Uniform(-bound, bound),
            device,
        );
        let trained = self.ema.is_none();
        Ok(VectorQuantizer {
            embedding: Param::from_tensor(codebook.clone()).set_require_grad(trained),
            cluster_size: self.ema.as_ref().map(|_| {
                Param::from_tensor(Tensor::ones([self.n_codes], device)).set_require_grad(false)
            }),
            embed_avg: self
                .ema
                .as_ref()
                .map(|_| Param::from_tensor(codebook).set_require_grad(false)),
            beta: self.beta,
            ema: self.ema.clone(),
        })
    }
}

/// What [`VectorQuantizer::forward`] returns.
#[derive(Debug, Clone)]
pub struct VqOutput<B: Backend, const D: usize> {
    /// `z + (z_q − z).detach()`: the codes' values with the identity gradient to `z`. `[.., C]`.
    pub quantized: Tensor<B, D>,
    /// Index of the nearest code. `[.., 1]`.
    pub indices: Tensor<B, D, Int>,
    /// `mean((z_q − sg[z])²)`, eq. 3's second term; its gradient reaches only the codebook (none
    /// with EMA, where it is a metric). `[1]`.
    pub codebook_loss: Tensor<B, 1>,
    /// `β·mean((z − sg[z_q])²)`, eq. 3's third term; its gradient reaches only `z`. `[1]`.
    pub commitment_loss: Tensor<B, 1>,
}

/// VQ-VAE vector quantizer: `z_q = e_k`, `k = argmin_j ‖z − e_j‖²` per vector of the last axis.
///
/// With EMA ([`VectorQuantizerConfig::ema`]) the codebook is **not** trained by gradients: it is
/// read detached in [`forward`](Self::forward) and replaced by [`ema_update`](Self::ema_update).
#[derive(Module, Debug)]
pub struct VectorQuantizer<B: Backend> {
    /// Codebook `e`. `[n_codes, code_dim]`.
    pub embedding: Param<Tensor<B, 2>>,
    /// EMA cluster sizes `N_k` (EMA only). `[n_codes]`.
    pub cluster_size: Option<Param<Tensor<B, 1>>>,
    /// EMA code sums `m_k` (EMA only). `[n_codes, code_dim]`.
    pub embed_avg: Option<Param<Tensor<B, 2>>>,
    /// Commitment weight `β`.
    #[module(skip)]
    pub beta: f64,
    /// EMA settings, if the codebook is updated by EMA.
    #[module(skip)]
    pub ema: Option<VqEmaConfig>,
}

impl<B: Backend> VectorQuantizer<B> {
    /// `(n_codes, code_dim)`.
    pub fn dims(&self) -> (usize, usize) {
        let [k, c] = self.embedding.val().dims();
        (k, c)
    }

    /// The codebook as used by the forward pass (detached under EMA).
    fn codebook(&self) -> Tensor<B, 2> {
        let e = self.embedding.val();
        if self.ema.is_some() { e.detach() } else { e }
    }

    /// Quantizes `z` to its nearest codes (eqs. 1–2) and returns the losses of eq. 3.
    ///
    /// The search uses [`nearest_code_indices`] on detached values.
    ///
    /// # Shapes
    /// `z`: `[.., code_dim]` → quantized `[.., code_dim]`, indices `[.., 1]`.
    ///
    /// # Panics
    /// If the last axis of `z` is not `code_dim`.
    pub fn forward<const D: usize>(&self, z: Tensor<B, D>) -> VqOutput<B, D> {
        let dims = z.dims();
        let (_, c) = self.dims();
        let flat = flatten_channels(z.clone(), c, "VectorQuantizer::forward");
        let codebook = self.codebook();
        let idx = nearest_code_indices(flat.detach(), codebook.clone().detach());
        let zq: Tensor<B, D> = codebook.select(0, idx.clone()).reshape(dims);
        let codebook_loss = (zq.clone() - z.clone().detach()).square().mean();
        let commitment_loss = (z.clone() - zq.clone().detach()).square().mean() * self.beta;
        VqOutput {
            quantized: straight_through(z, zq),
            indices: idx.reshape(index_shape(dims)),
            codebook_loss,
            commitment_loss,
        }
    }

    /// The codes of `indices`.
    ///
    /// # Shapes
    /// `indices`: `[.., 1]` → `[.., code_dim]`.
    ///
    /// # Panics
    /// If the last axis of `indices` is not 1.
    pub fn decode_indices<const D: usize>(&self, indices: Tensor<B, D, Int>) -> Tensor<B, D> {
        let (_, c) = self.dims();
        let (flat, dims) = flatten_indices(indices, c, "VectorQuantizer::decode_indices");
        self.codebook().select(0, flat).reshape(dims)
    }

    /// One EMA step on the batch `z` with its assignments `indices` (from [`forward`](Self::forward)):
    ///
    /// `N_k ← γN_k + (1−γ)n_k`, `m_k ← γm_k + (1−γ)Σ_{i: k_i = k} z_i`, then with `n = Σ_k N_k`
    /// the Laplace-smoothed `Ñ_k = (N_k + ε)/(n + Kε)·n` and `e_k = m_k / Ñ_k`.
    ///
    /// Pure tensor math on detached values: no gradient flows through the update. A code left
    /// unused for `t` steps keeps `m_k/N_k` but its `N_k = γ^t N_k(0)` falls below `ε`, after which
    /// the smoothing pulls it towards zero (the usual cue for dead-code restarts).
    ///
    /// # Shapes
    /// `z`: `[.., code_dim]`, `indices`: `[.., 1]` with the same leading axes.
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::Unsupported`) naming `ema` if the quantizer was built without EMA.
    ///
    /// # Panics
    /// If the shapes disagree or an index is out of range.
    pub fn ema_update<const D: usize>(
        &mut self,
        z: Tensor<B, D>,
        indices: Tensor<B, D, Int>,
    ) -> Result<(), VaeError> {
        let (Some(ema), Some(cluster_size), Some(embed_avg)) = (
            self.ema.clone(),
            self.cluster_size.clone(),
            self.embed_avg.clone(),
        ) else {
            return Err(VaeError::Config(ConfigError::Unsupported {
                field: "ema",
                value: "None".into(),
                reason: "ema_update needs a quantizer built with EMA",
            }));
        };
        let (k, c) = self.dims();
        let flat = flatten_channels(z, c, "VectorQuantizer::ema_update").detach();
        let (idx, _) = flatten_indices(indices, c, "VectorQuantizer::ema_update");
        assert_eq!(
            idx.dims()[0],
            flat.dims()[0],
            "ema_update: {} indices for {} vectors",
            idx.dims()[0],
            flat.dims()[0]
        );
        let onehot: Tensor<B, 2> = idx.one_hot::<2>(k).float();
        let counts: Tensor<B, 1> = onehot.clone().sum_dim(0).reshape([k]);
        let sums = onehot.transpose().matmul(flat);
        let (g, eps) = (ema.decay, ema.eps);
        let new_size = cluster_size.val().detach() * g + counts * (1.0 - g);
        let new_avg = embed_avg.val().detach() * g + sums * (1.0 - g);
        let n = new_size.clone().sum();
        let smoothed = (new_size.clone() + eps) / (n.clone() + k as f64 * eps) * n;
        let new_embedding = new_avg.clone() / smoothed.reshape([k, 1]);
        self.cluster_size = Some(cluster_size.map(|_| new_size));
        self.embed_avg = Some(embed_avg.map(|_| new_avg));
        let embedding = self.embedding.clone();
        self.embedding = embedding.map(|_| new_embedding);
        Ok(())
    }
}

/// Index of the nearest codebook row per input row, with squared distances expanded as
/// `‖z‖² − 2 z·e + ‖e‖²` (one matmul; taming-transformers). Ties go to the lowest index where the
/// backend's `argmin` does.
///
/// # Shapes
/// `z`: `[N, C]`, `codebook`: `[K, C]` → `[N]`.
pub fn nearest_code_indices<B: Backend>(
    z: Tensor<B, 2>,
    codebook: Tensor<B, 2>,
) -> Tensor<B, 1, Int> {
    let n = z.dims()[0];
    let z2 = z.clone().square().sum_dim(1);
    let e2 = codebook.clone().square().sum_dim(1).transpose();
    let dist = z2 - z.matmul(codebook.transpose()) * 2.0 + e2;
    dist.argmin(1).reshape([n])
}

/// Reference twin of [`nearest_code_indices`]: materialises every difference `z_i − e_j`
/// (`[N, K, C]`) and sums its squares.
///
/// # Shapes
/// `z`: `[N, C]`, `codebook`: `[K, C]` → `[N]`.
pub fn nearest_code_indices_reference<B: Backend>(
    z: Tensor<B, 2>,
    codebook: Tensor<B, 2>,
) -> Tensor<B, 1, Int> {
    let (n, k) = (z.dims()[0], codebook.dims()[0]);
    let diff = z.unsqueeze_dim::<3>(1) - codebook.unsqueeze_dim::<3>(0);
    let dist: Tensor<B, 2> = diff.square().sum_dim(2).reshape([n, k]);
    dist.argmin(1).reshape([n])
}
