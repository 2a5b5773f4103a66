//! Sinusoidal timestep embeddings (DDPM; diffusers' `get_timestep_embedding`) and the DiT MLP
//! embedder (diffusers' `Timesteps` + `TimestepEmbedding`).
//!
//! For `half = dim / 2` and `k = 0..half`:
//! `f_k = exp(−ln(max_period)·k / (half − downscale_freq_shift))`,
//! `emb(t) = [sin(scale·t·f), cos(scale·t·f)]` (or `[cos, sin]` with `flip_sin_to_cos`), padded with
//! one zero when `dim` is odd. DiT and Open-Sora use `flip_sin_to_cos = true`,
//! `downscale_freq_shift = 0`; the DDPM UNet uses `false`, `1`.
//!
//! Frequencies are computed in f64 on the host and rounded once to the tensor dtype.

use crate::error::ConfigError;
use crate::error::{NnError, positive, positive_f64};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};

/// Configuration of [`SinusoidalEmbedding`]. Field names follow diffusers' `Timesteps`.
#[derive(Config, Debug, PartialEq)]
pub struct SinusoidalEmbeddingConfig {
    /// Output width (`num_channels` / `embedding_dim` in diffusers).
    pub dim: usize,
    /// Put the cosine half first.
    #[config(default = false)]
    pub flip_sin_to_cos: bool,
    /// Shift `s` in the exponent's denominator `half − s` (diffusers default 1).
    #[config(default = 1.0)]
    pub downscale_freq_shift: f64,
    /// Multiplier applied to `t·f` before sin/cos.
    #[config(default = 1.0)]
    pub scale: f64,
    /// Longest period of the embedding.
    #[config(default = 10000.0)]
    pub max_period: f64,
}

impl SinusoidalEmbeddingConfig {
    /// Validates the configuration and precomputes the frequencies.
    ///
    /// # Errors
    /// [`NnError`] naming the field: `dim < 2`, `max_period <= 0`, or `dim / 2 == downscale_freq_shift`
    /// (a zero denominator).
    pub fn init(&self) -> Result<SinusoidalEmbedding, NnError> {
        if self.dim < 2 {
            return Err(NnError::Config(ConfigError::OutOfDomain {
                field: "dim",
                value: self.dim as f64,
                requirement: ">= 2",
            }));
        }
        positive_f64("max_period", self.max_period)?;
        let half = self.dim / 2;
        let denom = half as f64 - self.downscale_freq_shift;
        if denom == 0.0 || !denom.is_finite() {
            return Err(NnError::Config(ConfigError::OutOfDomain {
                field: "downscale_freq_shift",
                value: self.downscale_freq_shift,
                requirement: "different from dim / 2",
            }));
        }
        let freqs = (0..half)
            .map(|k| (-(self.max_period.ln()) * k as f64 / denom).exp() * self.scale)
            .collect();
        Ok(SinusoidalEmbedding {
            config: self.clone(),
            freqs,
        })
    }
}

/// Fixed sinusoidal embedding of scalar timesteps. Holds no parameters.
#[derive(Debug, Clone)]
pub struct SinusoidalEmbedding {
    config: SinusoidalEmbeddingConfig,
    /// `scale·f_k`, f64.
    freqs: Vec<f64>,
}

impl SinusoidalEmbedding {
    /// The configuration it was built from.
    pub fn config(&self) -> &SinusoidalEmbeddingConfig {
        &self.config
    }

    /// Embeds timesteps (may be fractional).
    ///
    /// # Shapes
    /// `timesteps`: `[N]` → `[N, dim]`
    pub fn forward<B: Backend>(&self, timesteps: Tensor<B, 1>) -> Tensor<B, 2> {
        let [n] = timesteps.dims();
        let device = timesteps.device();
        let half = self.freqs.len();
        let freqs = Tensor::<B, 1>::from_floats(self.freqs.as_slice(), &device);
        let args = timesteps.reshape([n, 1]) * freqs.reshape([1, half]);
        let (sin, cos) = (args.clone().sin(), args.cos());
        let mut parts = if self.config.flip_sin_to_cos {
            vec![cos, sin]
        } else {
            vec![sin, cos]
        };
        if self.config.dim % 2 == 1 {
            parts.push(Tensor::zeros([n, 1], &device));
        }
        Tensor::cat(parts, 1)
    }
}

/// Configuration of [`TimestepEmbedder`]: sinusoidal features followed by
/// `Linear → SiLU → Linear` (DiT's `TimestepEmbedder`, diffusers' `TimestepEmbedding`).
#[derive(Config, Debug)]
pub struct TimestepEmbedderConfig {
    /// Width of the sinusoidal features (DiT: 256).
    #[config(default = 256)]
    pub frequency_dim: usize,
    /// Output width.
    pub d_model: usize,
    /// See [`SinusoidalEmbeddingConfig::flip_sin_to_cos`]; DiT uses `true`.
    #[config(default = true)]
    pub flip_sin_to_cos: bool,
    /// See [`SinusoidalEmbeddingConfig::downscale_freq_shift`]; DiT uses 0.
    #[config(default = 0.0)]
    pub downscale_freq_shift: f64,
    /// See [`SinusoidalEmbeddingConfig::max_period`].
    #[config(default = 10000.0)]
    pub max_period: f64,
}

impl TimestepEmbedderConfig {
    /// Builds the embedder with PyTorch-default Linear initialisation.
    ///
    /// # Errors
    /// [`NnError`] if `d_model == 0` or the sinusoidal part is invalid.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<TimestepEmbedder<B>, NnError> {
        positive("d_model", self.d_model)?;
        let sinusoid = SinusoidalEmbeddingConfig::new(self.frequency_dim)
            .with_flip_sin_to_cos(self.flip_sin_to_cos)
            .with_downscale_freq_shift(self.downscale_freq_shift)
            .with_max_period(self.max_period)
            .init()
            .map_err(|e| match e {
                NnError::Config(ConfigError::OutOfDomain {
                    field: "dim",
                    value,
                    requirement,
                }) => NnError::Config(ConfigError::OutOfDomain {
                    field: "frequency_dim",
                    value,
                    requirement,
                }),
                other => other,
            })?;
        Ok(TimestepEmbedder {
            sinusoid,
            linear_1: LinearConfig::new(self.frequency_dim, self.d_model).init(device),
            linear_2: LinearConfig::new(self.d_model, self.d_model).init(device),
        })
    }
}

/// Timestep embedder: `linear_2(silu(linear_1(sinusoid(t))))`. Parameter names follow diffusers'
/// `TimestepEmbedding` (`linear_1`, `linear_2`).
#[derive(Module, Debug)]
pub struct TimestepEmbedder<B: Backend> {
    /// The fixed sinusoidal features.
    #[module(skip)]
    pub sinusoid: SinusoidalEmbedding,
    /// `frequency_dim → d_model`.
    pub linear_1: Linear<B>,
    /// `d_model → d_model`.
    pub linear_2: Linear<B>,
}

impl<B: Backend> TimestepEmbedder<B> {
    /// Embeds timesteps.
    ///
    /// # Shapes
    /// `timesteps`: `[N]` → `[N, d_model]`
    pub fn forward(&self, timesteps: Tensor<B, 1>) -> Tensor<B, 2> {
        let features = self.sinusoid.forward(timesteps);
        self.linear_2.forward(silu(self.linear_1.forward(features)))
    }
}
