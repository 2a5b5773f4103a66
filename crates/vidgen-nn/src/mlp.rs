//! Transformer feed-forward layers: the GELU(tanh) MLP of DiT / Open-Sora (timm's `Mlp`) and
//! SwiGLU (Shazeer 2020; LLaMA, LinGen).

use crate::error::{NnError, positive};
use crate::lora::{LoraAdapter, LoraConfig, WithLora, forward_with_lora, merge_lora};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, SwiGlu, SwiGluConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Tensor, backend::Backend};

/// Configuration of [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Input width.
    pub d_model: usize,
    /// Hidden width (DiT: `4·d_model`).
    pub hidden_dim: usize,
    /// Output width; `None` means `d_model`.
    #[config(default = "None")]
    pub d_out: Option<usize>,
    /// Biases on both projections.
    #[config(default = true)]
    pub bias: bool,
}

impl MlpConfig {
    /// Builds the MLP.
    ///
    /// # Errors
    /// [`NnError::Config`] (`ConfigError::Zero`) naming `d_model`, `hidden_dim` or `d_out`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Mlp<B>, NnError> {
        positive("d_model", self.d_model)?;
        positive("hidden_dim", self.hidden_dim)?;
        let d_out = self.d_out.unwrap_or(self.d_model);
        positive("d_out", d_out)?;
        Ok(Mlp {
            fc1: LinearConfig::new(self.d_model, self.hidden_dim)
                .with_bias(self.bias)
                .init(device),
            fc2: LinearConfig::new(self.hidden_dim, d_out)
                .with_bias(self.bias)
                .init(device),
            fc1_lora: None,
            fc2_lora: None,
        })
    }
}

/// `fc2(GELU_tanh(fc1(x)))`. Keys as timm's `Mlp` (`fc1`, `fc2`); optional LoRA adapters
/// `fc1_lora`, `fc2_lora` ([`WithLora`]).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `d_model → hidden_dim`.
    pub fc1: Linear<B>,
    /// `hidden_dim → d_out`.
    pub fc2: Linear<B>,
    /// LoRA adapter of `fc1` ([`WithLora`]; none unless attached).
    pub fc1_lora: Option<LoraAdapter<B>>,
    /// LoRA adapter of `fc2`.
    pub fc2_lora: Option<LoraAdapter<B>>,
}

impl<B: Backend> Mlp<B> {
    /// # Shapes
    /// `x`: `[.., d_model]` → `[.., d_out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let h = gelu_tanh(forward_with_lora(&self.fc1, self.fc1_lora.as_ref(), x));
        forward_with_lora(&self.fc2, self.fc2_lora.as_ref(), h)
    }
}

impl<B: Backend> WithLora for Mlp<B> {
    /// Adapters on `fc1` / `fc2` where targeted.
    fn attach_lora(mut self, config: &LoraConfig) -> Self {
        self.fc1_lora = config.adapt("fc1", &self.fc1, self.fc1_lora.take());
        self.fc2_lora = config.adapt("fc2", &self.fc2, self.fc2_lora.take());
        self
    }

    fn merge_lora(mut self) -> Self {
        self.fc1 = merge_lora(self.fc1, self.fc1_lora.take());
        self.fc2 = merge_lora(self.fc2, self.fc2_lora.take());
        self
    }
}

/// Configuration of [`SwiGluMlp`].
#[derive(Config, Debug)]
pub struct SwiGluMlpConfig {
    /// Input width.
    pub d_model: usize,
    /// Hidden width (LLaMA: `⌈(2/3)·4·d_model⌉` rounded to a multiple of 256).
    pub hidden_dim: usize,
    /// Output width; `None` means `d_model`.
    #[config(default = "None")]
    pub d_out: Option<usize>,
    /// Biases on the three projections (LLaMA: none).
    #[config(default = false)]
    pub bias: bool,
}

impl SwiGluMlpConfig {
    /// Builds the SwiGLU feed-forward.
    ///
    /// # Errors
    /// [`NnError::Config`] (`ConfigError::Zero`) naming `d_model`, `hidden_dim` or `d_out`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<SwiGluMlp<B>, NnError> {
        positive("d_model", self.d_model)?;
        positive("hidden_dim", self.hidden_dim)?;
        let d_out = self.d_out.unwrap_or(self.d_model);
        positive("d_out", d_out)?;
        Ok(SwiGluMlp {
            swiglu: SwiGluConfig::new(self.d_model, self.hidden_dim)
                .with_bias(self.bias)
                .init(device),
            linear_down: LinearConfig::new(self.hidden_dim, d_out)
                .with_bias(self.bias)
                .init(device),
        })
    }
}

/// `w2(SiLU(w1·x) ⊙ w3·x)`, built on Burn's [`SwiGlu`] (which computes `SiLU(w1·x) ⊙ w3·x`).
///
/// LLaMA checkpoint keys map as `w1 → swiglu.linear_inner`, `w3 → swiglu.linear_outer`,
/// `w2 → linear_down`.
#[derive(Module, Debug)]
pub struct SwiGluMlp<B: Backend> {
    /// The gated pair `SiLU(w1·x) ⊙ w3·x`.
    pub swiglu: SwiGlu<B>,
    /// `w2`: `hidden_dim → d_out`.
    pub linear_down: Linear<B>,
}

impl<B: Backend> SwiGluMlp<B> {
    /// # Shapes
    /// `x`: `[.., d_model]` → `[.., d_out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.linear_down.forward(self.swiglu.forward(x))
    }
}

/// `GELU_tanh(x) = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, computed as the equal
/// `x·sigmoid(2·√(2/π)·x·(1 + 0.044715·x²))`: multiplications and one sigmoid, no `powf` or
/// `tanh`, which are scalar library calls on CPU backends (the same value as
/// [`gelu_approximate`](burn::tensor::activation::gelu_approximate) to float rounding).
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    const TWO_SQRT_2_OVER_PI: f64 =
        2.0 * core::f64::consts::FRAC_2_SQRT_PI * core::f64::consts::FRAC_1_SQRT_2;
    let inner =
        (x.clone() * x.clone() * (0.044715 * TWO_SQRT_2_OVER_PI) + TWO_SQRT_2_OVER_PI) * x.clone();
    x * sigmoid(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::gelu_approximate;
    use vidgen_testing::Flex;

    #[test]
    fn gelu_tanh_equals_the_tanh_form() {
        let device = Default::default();
        let values: Vec<f32> = (0..801).map(|i| (i as f32 - 400.0) / 40.0).collect();
        let x = Tensor::<Flex, 1>::from_floats(values.as_slice(), &device);
        let ours: Vec<f32> = gelu_tanh(x.clone()).into_data().iter::<f32>().collect();
        let burn: Vec<f32> = gelu_approximate(x).into_data().iter::<f32>().collect();
        for ((v, a), b) in values.iter().zip(&ours).zip(&burn) {
            assert!(
                (a - b).abs() <= 1e-6 + 1e-6 * b.abs(),
                "x = {v}: {a} vs {b}"
            );
        }
    }
}
