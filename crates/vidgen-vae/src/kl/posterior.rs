//! The diagonal Gaussian posterior `q(z|x) = N(μ, diag σ²)` of the KL-VAE (Kingma & Welling 2014,
//! sec. 2.4 and appendix B), as diffusers' `DiagonalGaussianDistribution`.

use burn::tensor::{Tensor, backend::Backend};

/// Lower clamp of `log σ²` (diffusers).
pub const LOGVAR_MIN: f64 = -30.0;
/// Upper clamp of `log σ²` (diffusers).
pub const LOGVAR_MAX: f64 = 20.0;

/// `N(μ, diag σ²)` per latent element, with `log σ²` clamped to `[−30, 20]`.
#[derive(Debug, Clone)]
pub struct DiagonalGaussian<B: Backend> {
    /// `μ`, `[B, C, h, w]`.
    pub mean: Tensor<B, 4>,
    /// Clamped `log σ²`, `[B, C, h, w]`.
    pub logvar: Tensor<B, 4>,
    /// `σ = exp(½ log σ²)`, `[B, C, h, w]`.
    pub std: Tensor<B, 4>,
}

impl<B: Backend> DiagonalGaussian<B> {
    /// Splits the encoder's moments along channels into `μ` (first half) and `log σ²` (second
    /// half), clamping `log σ²` to `[LOGVAR_MIN, LOGVAR_MAX]`.
    ///
    /// # Shapes
    /// `moments`: `[B, 2C, h, w]`
    ///
    /// # Panics
    /// If the channel count is odd.
    pub fn from_moments(moments: Tensor<B, 4>) -> Self {
        let [_, c2, _, _] = moments.dims();
        assert!(
            c2.is_multiple_of(2),
            "posterior moments need an even channel count, got {c2}"
        );
        let mut halves = moments.chunk(2, 1).into_iter();
        let mean = halves.next().expect("two halves");
        let logvar = halves
            .next()
            .expect("two halves")
            .clamp(LOGVAR_MIN, LOGVAR_MAX);
        let std = (logvar.clone() * 0.5).exp();
        Self { mean, logvar, std }
    }

    /// `σ² = exp(log σ²)`.
    ///
    /// # Shapes
    /// `[B, C, h, w]`
    pub fn var(&self) -> Tensor<B, 4> {
        self.logvar.clone().exp()
    }

    /// Reparameterised draw `z = μ + σ ⊙ ε` with caller-supplied `ε ~ N(0, I)` (Kingma & Welling
    /// 2014, eq. 10).
    ///
    /// # Shapes
    /// `noise`: `[B, C, h, w]` (as `mean`) → `[B, C, h, w]`
    ///
    /// # Panics
    /// If `noise`'s shape differs from `mean`'s.
    pub fn sample(&self, noise: Tensor<B, 4>) -> Tensor<B, 4> {
        assert_eq!(
            noise.dims(),
            self.mean.dims(),
            "noise shape {:?} must match the posterior's {:?}",
            noise.dims(),
            self.mean.dims()
        );
        self.mean.clone() + self.std.clone() * noise
    }

    /// The mode `μ` (diffusers' `mode()`).
    ///
    /// # Shapes
    /// `[B, C, h, w]`
    pub fn mode(&self) -> Tensor<B, 4> {
        self.mean.clone()
    }

    /// `KL(q ‖ N(0, I)) = ½ Σ_{c,h,w} (μ² + σ² − 1 − log σ²)` per sample (Kingma & Welling 2014,
    /// appendix B), summed over `C, H, W` as diffusers.
    ///
    /// # Shapes
    /// `[B]`
    pub fn kl(&self) -> Tensor<B, 1> {
        let [b, ..] = self.mean.dims();
        let terms = self.mean.clone().powi_scalar(2) + self.var() - 1.0 - self.logvar.clone();
        terms.reshape([b as i32, -1]).sum_dim(1).squeeze_dim::<1>(1) * 0.5
    }
}
