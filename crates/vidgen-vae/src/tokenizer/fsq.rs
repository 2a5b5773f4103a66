//! Finite Scalar Quantization (Mentzer et al. 2023, sec. 3 and appendix A.1), in the form of
//! lucidrains' `FSQ`: each channel `i` is bounded to `L_i` levels by a shifted `tanh`, rounded with
//! a straight-through gradient and rescaled to `[−1, 1]`; the implicit codebook has `∏ L_i` codes
//! indexed in mixed radix (channel 0 least significant).

use super::{flatten_channels, flatten_indices, index_shape};
use crate::error::ConfigError;
use crate::error::{VaeError, positive_f64};
use burn::config::Config;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// Largest codebook: indices must fit a 32-bit integer on every backend.
const MAX_CODEBOOK: usize = i32::MAX as usize;

/// Configuration of [`Fsq`].
#[derive(Config, Debug)]
pub struct FsqConfig {
    /// Levels `L_i` per channel, each `>= 2` (paper's recommendations: `[8, 5, 5, 5]` for 2^10
    /// codes, `[8, 8, 8, 5, 5, 5]` for 64 000).
    pub levels: Vec<usize>,
    /// Margin `ε` of the bound `half_l = (L − 1)(1 + ε)/2`.
    #[config(default = 1e-3)]
    pub eps: f64,
}

impl FsqConfig {
    /// Builds the quantizer.
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::Zero`) naming `levels` if it is empty; [`VaeError::Config`] (`ConfigError::OutOfDomain`) naming
    /// `levels` with the first level below 2, or `eps` (`<= 0`); [`VaeError::Config`] (`ConfigError::Unsupported`) naming
    /// `levels` if `∏ L_i` exceeds `i32::MAX`.
    pub fn init(&self) -> Result<Fsq, VaeError> {
        if self.levels.is_empty() {
            return Err(VaeError::Config(ConfigError::Zero { field: "levels" }));
        }
        if let Some(&bad) = self.levels.iter().find(|&&l| l < 2) {
            return Err(VaeError::Config(ConfigError::OutOfDomain {
                field: "levels",
                value: bad as f64,
                requirement: ">= 2 for every channel",
            }));
        }
        positive_f64("eps", self.eps)?;
        let mut basis = Vec::with_capacity(self.levels.len());
        let mut size = 1usize;
        for &l in &self.levels {
            basis.push(size);
            size = size
                .checked_mul(l)
                .filter(|&s| s <= MAX_CODEBOOK)
                .ok_or_else(|| {
                    VaeError::Config(ConfigError::Unsupported {
                        field: "levels",
                        value: format!("{:?}", self.levels),
                        reason: "the codebook size ∏ L_i must not exceed i32::MAX",
                    })
                })?;
        }
        Ok(Fsq {
            levels: self.levels.clone(),
            basis,
            codebook_size: size,
            eps: self.eps,
        })
    }
}

/// Finite scalar quantizer. Holds no parameters.
///
/// ```
/// use burn::tensor::{Int, Tensor};
/// use vidgen_vae::tokenizer::FsqConfig;
/// type B = burn::backend::Flex;
///
/// let fsq = FsqConfig::new(vec![3, 4]).init().unwrap();
/// assert_eq!(fsq.codebook_size(), 12);
/// let device = Default::default();
/// let idx = Tensor::<B, 1, Int>::arange(0..12, &device).reshape([12, 1]);
/// let codes = fsq.indices_to_codes(idx.clone());
/// let back = fsq.codes_to_indices(codes);
/// assert_eq!(back.into_data().convert::<i64>(), idx.into_data().convert::<i64>());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Fsq {
    levels: Vec<usize>,
    basis: Vec<usize>,
    codebook_size: usize,
    eps: f64,
}

impl Fsq {
    /// Levels `L_i`.
    pub fn levels(&self) -> &[usize] {
        &self.levels
    }

    /// Number of channels `C = len(levels)`.
    pub fn code_dim(&self) -> usize {
        self.levels.len()
    }

    /// Codebook size `∏ L_i`.
    pub fn codebook_size(&self) -> usize {
        self.codebook_size
    }

    /// Mixed-radix basis `[1, L_0, L_0·L_1, ..]`.
    pub fn basis(&self) -> &[usize] {
        &self.basis
    }

    /// A per-channel constant `f(L_i)` shaped to broadcast against `[.., C]`.
    fn per_channel<B: Backend, const D: usize>(
        &self,
        f: impl Fn(usize) -> f64,
        device: &B::Device,
    ) -> Tensor<B, D> {
        let values: Vec<f32> = self.levels.iter().map(|&l| f(l) as f32).collect();
        let mut shape = [1usize; D];
        shape[D - 1] = self.levels.len();
        Tensor::<B, 1>::from_data(TensorData::new(values, [self.levels.len()]), device)
            .reshape(shape)
    }

    /// The same for integers.
    fn per_channel_int<B: Backend, const D: usize>(
        &self,
        values: &[usize],
        device: &B::Device,
    ) -> Tensor<B, D, Int> {
        let values: Vec<i64> = values.iter().map(|&v| v as i64).collect();
        let mut shape = [1usize; D];
        shape[D - 1] = values.len();
        Tensor::<B, 1, Int>::from_data(TensorData::new(values, [self.levels.len()]), device)
            .reshape(shape)
    }

    /// `tanh(z + s)·h − o` with `h = (L − 1)(1 + ε)/2`, `o = 0.5` for even `L` (else 0) and
    /// `s = atanh(o / h)` (appendix A.1; `atanh` centres the even case so that `bound(0) = 0`).
    /// Rounds to `L` integers in `[−⌊L/2⌋, ⌈L/2⌉ − 1]`.
    ///
    /// # Shapes
    /// `z`: `[.., C]` → `[.., C]`.
    ///
    /// # Panics
    /// If the last axis is not `C`.
    pub fn bound<B: Backend, const D: usize>(&self, z: Tensor<B, D>) -> Tensor<B, D> {
        let dims = z.dims();
        assert_eq!(
            dims[D - 1],
            self.code_dim(),
            "Fsq::bound: last axis of {dims:?}"
        );
        let device = z.device();
        let eps = self.eps;
        let half_l = move |l: usize| (l - 1) as f64 * (1.0 + eps) / 2.0;
        let offset = |l: usize| if l.is_multiple_of(2) { 0.5 } else { 0.0 };
        let shift = self.per_channel::<B, D>(|l| (offset(l) / half_l(l)).atanh(), &device);
        let half_l = self.per_channel::<B, D>(half_l, &device);
        let offset = self.per_channel::<B, D>(offset, &device);
        (z + shift).tanh() * half_l - offset
    }

    /// `round_ste(bound(z)) / ⌊L/2⌋`: codes on the grid of `L` values in `[−1, 1]`, with the
    /// gradient of `bound(z) / ⌊L/2⌋` (rounding is straight-through).
    ///
    /// # Shapes
    /// `z`: `[.., C]` → `[.., C]`.
    ///
    /// # Panics
    /// If the last axis is not `C`.
    pub fn quantize<B: Backend, const D: usize>(&self, z: Tensor<B, D>) -> Tensor<B, D> {
        let device = z.device();
        let bounded = self.bound(z);
        let rounded = super::straight_through(bounded.clone(), bounded.round());
        rounded / self.per_channel::<B, D>(|l| (l / 2) as f64, &device)
    }

    /// `(quantize(z), codes_to_indices(quantize(z)))`, as lucidrains' `FSQ.forward`.
    ///
    /// # Shapes
    /// `z`: `[.., C]` → `[.., C]` and `[.., 1]`.
    pub fn forward<B: Backend, const D: usize>(
        &self,
        z: Tensor<B, D>,
    ) -> (Tensor<B, D>, Tensor<B, D, Int>) {
        let codes = self.quantize(z);
        let indices = self.codes_to_indices(codes.clone());
        (codes, indices)
    }

    /// `Σ_i (code_i·⌊L_i/2⌋ + ⌊L_i/2⌋)·basis_i`, with each digit rounded to an integer before the
    /// integer sum (exact for every codebook size).
    ///
    /// # Shapes
    /// `codes`: `[.., C]` → `[.., 1]`.
    ///
    /// # Panics
    /// If the last axis is not `C`.
    pub fn codes_to_indices<B: Backend, const D: usize>(
        &self,
        codes: Tensor<B, D>,
    ) -> Tensor<B, D, Int> {
        let dims = codes.dims();
        let c = self.code_dim();
        let flat = flatten_channels(codes, c, "Fsq::codes_to_indices");
        let device = flat.device();
        let half = self.per_channel::<B, 2>(|l| (l / 2) as f64, &device);
        let digits = (flat * half.clone() + half).round().int();
        let basis = self.per_channel_int::<B, 2>(&self.basis, &device);
        (digits * basis).sum_dim(1).reshape(index_shape(dims))
    }

    /// Inverse of [`codes_to_indices`](Self::codes_to_indices): digit
    /// `d_i = ⌊index / basis_i⌋ mod L_i`, code `(d_i − ⌊L_i/2⌋)/⌊L_i/2⌋`.
    ///
    /// # Shapes
    /// `indices`: `[.., 1]` → `[.., C]`.
    ///
    /// # Panics
    /// If the last axis of `indices` is not 1.
    pub fn indices_to_codes<B: Backend, const D: usize>(
        &self,
        indices: Tensor<B, D, Int>,
    ) -> Tensor<B, D> {
        let c = self.code_dim();
        let (flat, dims) = flatten_indices(indices, c, "Fsq::indices_to_codes");
        let n = flat.dims()[0];
        let device = flat.device();
        let basis = self.per_channel_int::<B, 2>(&self.basis, &device);
        let levels = self.per_channel_int::<B, 2>(&self.levels, &device);
        let digits = (flat.reshape([n, 1]) / basis).remainder(levels).float();
        let half = self.per_channel::<B, 2>(|l| (l / 2) as f64, &device);
        ((digits - half.clone()) / half).reshape(dims)
    }
}
