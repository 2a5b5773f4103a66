//! Caller-controlled randomness. Schedulers never draw noise themselves: stochastic steps take noise
//! as an argument, and sampling loops read it from a [`NoiseSource`] — a seeded [`NoiseGenerator`]
//! (host-side, so the same seed gives the same numbers on every backend) or noise fixed in advance
//! ([`FixedNoise`], e.g. from a golden fixture).

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal, StandardUniform};

/// Supplies the noise a sampling loop needs at a step.
pub trait NoiseSource<B: Backend, const D: usize> {
    /// Standard-normal noise shaped like `like`, for step `step`.
    fn noise(&mut self, step: usize, like: &Tensor<B, D>) -> Tensor<B, D>;
}

/// A seeded host-side generator of standard-normal and uniform draws.
#[derive(Debug)]
pub struct NoiseGenerator {
    rng: StdRng,
}

impl NoiseGenerator {
    /// A generator whose draws are fixed by `seed`, identical on every backend.
    pub fn seed_from_u64(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// `n` standard-normal draws.
    pub fn normal_f64(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect()
    }

    /// `n` uniform draws in `[0, 1)`.
    pub fn uniform_f64(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| StandardUniform.sample(&mut self.rng))
            .collect()
    }

    /// A standard-normal tensor.
    pub fn normal<B: Backend, const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Tensor<B, D> {
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

impl<B: Backend, const D: usize> NoiseSource<B, D> for NoiseGenerator {
    fn noise(&mut self, _step: usize, like: &Tensor<B, D>) -> Tensor<B, D> {
        self.normal(like.dims(), &like.device())
    }
}

/// Noise fixed in advance, one tensor per step.
#[derive(Debug, Clone)]
pub struct FixedNoise<B: Backend, const D: usize> {
    /// `per_step[i]` is returned at step `i`.
    pub per_step: Vec<Tensor<B, D>>,
}

impl<B: Backend, const D: usize> NoiseSource<B, D> for FixedNoise<B, D> {
    /// # Panics
    /// If there is no tensor for `step`, or its shape differs from `like`'s.
    fn noise(&mut self, step: usize, like: &Tensor<B, D>) -> Tensor<B, D> {
        let n = self
            .per_step
            .get(step)
            .unwrap_or_else(|| {
                panic!(
                    "FixedNoise has {} tensors, step {step} asked",
                    self.per_step.len()
                )
            })
            .clone();
        assert_eq!(n.dims(), like.dims(), "FixedNoise shape at step {step}");
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws() {
        let mut a = NoiseGenerator::seed_from_u64(7);
        let mut b = NoiseGenerator::seed_from_u64(7);
        assert_eq!(a.normal_f64(5), b.normal_f64(5));
        assert_ne!(
            a.uniform_f64(3),
            NoiseGenerator::seed_from_u64(8).uniform_f64(3)
        );
    }

    #[test]
    fn normal_draws_have_unit_variance() {
        let mut g = NoiseGenerator::seed_from_u64(1);
        let x = g.normal_f64(20_000);
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "mean {mean}, var {var}"
        );
    }
}
