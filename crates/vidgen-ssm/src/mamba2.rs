//! The Mamba2 layer (Dao & Gu 2024, sec. 7; mamba-ssm 2.3.2 `modules/mamba2.py`), with the SSD scan
//! of [`crate::ssd`], an inference cache, prefill and one-token `step`.
//!
//! ```text
//! [z, xBC, dt] = in_proj(u)                     z: d_inner, xBC: d_inner + 2·G·N, dt: H
//! xBC = silu(causal depthwise conv1d(xBC))      kernel d_conv, left padding d_conv − 1
//! [x, B, C] = xBC;  A = −exp(A_log);  dt = clamp(softplus(dt + dt_bias), dt_limit)
//! y = SSD(x·dt, dt·A, B, C) + D·x               per head, chunked (chunk_size)
//! out = out_proj(gated_rmsnorm(y, z))
//! ```
//!
//! Parameter names follow mamba-ssm's checkpoint keys; the only remappings:
//!
//! | mamba-ssm key | field | note |
//! |---|---|---|
//! | `in_proj.weight` `[out, in]` | `in_proj.weight` `[in, out]` | Burn `Linear` layout (transpose) |
//! | `conv1d.weight` `[C, 1, K]`, `conv1d.bias` | `conv1d.weight`, `conv1d.bias` | same layout; Burn pads nothing, we pad the front |
//! | `dt_bias` | `dt_bias` | |
//! | `A_log` | `a_log` | snake case |
//! | `D` | `d` | snake case |
//! | `norm.weight` | `norm.weight` | |
//! | `out_proj.weight` `[out, in]` | `out_proj.weight` `[in, out]` | transpose |
//!
//! [`Mamba2::load_mamba_ssm`] reads these keys (under a prefix such as
//! `backbone.layers.3.mixer.`) from `.safetensors` or `pytorch_model.bin`, in f32, f16 or bf16.
//!
//! Config spellings: `headdim` → `head_dim`, `ngroups` → `n_groups`, `A_init_range` →
//! `a_init_range`, `dt_limit = (lo, hi)` → `dt_limit_min = lo`, `dt_limit_max = Some(hi)` (`None`
//! for `+∞`, which JSON cannot hold). Not supported: `d_ssm` (a gated-MLP share of the width),
//! `D_has_hdim`, `rmsnorm = False`, `conv_init`, tensor parallelism.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::{Distribution, Tensor};
//! use vidgen_ssm::mamba2::Mamba2Config;
//!
//! let device = Default::default();
//! let layer = Mamba2Config::new(8).with_d_state(4).with_head_dim(4).with_chunk_size(3)
//!     .init::<Flex>(&device).unwrap();
//! let u = Tensor::<Flex, 3>::random([1, 5, 8], Distribution::Normal(0.0, 1.0), &device);
//! // prefill 4 tokens through the chunked scan, then one recurrent step
//! let (_, cache) = layer.forward_cached(u.clone().narrow(1, 0, 4), None);
//! let (y5, _) = layer.step(u.clone().narrow(1, 4, 1).squeeze_dim(1), cache);
//! let full = layer.forward(u).narrow(1, 4, 1).squeeze_dim::<2>(1);
//! let err = (y5 - full).abs().max().into_scalar();
//! assert!(err < 1e-4, "{err}");
//! ```
//!
//! Divergence: mamba-ssm's `step` ignores `dt_limit`; here `step` clamps like `forward`, so both
//! paths agree for any `dt_limit` (identical for the default `(0, ∞)`).

mod cache;
mod load;
mod norm;

pub use cache::Mamba2Cache;
pub use load::MAMBA2_KEY_MAP;
pub use norm::GatedRmsNorm;

use crate::error::ConfigError;
use crate::error::{SsmError, divisible, positive, positive_f64, same_size};
use crate::ssd::ssd_chunked;
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Distribution, Int, Tensor, TensorData, backend::Backend};
use vidgen_nn::layout::contiguous;
use vidgen_nn::{Kernel, WithKernel};

/// Configuration of [`Mamba2`]; defaults are mamba-ssm's `Mamba2.__init__` (LinGen uses
/// `d_state = 128`, `head_dim = 64`, supplement sec. E.2).
#[derive(Config, Debug)]
pub struct Mamba2Config {
    /// Model width `d`.
    pub d_model: usize,
    /// SSM state size `N`.
    #[config(default = 128)]
    pub d_state: usize,
    /// Causal depthwise convolution width `K`.
    #[config(default = 4)]
    pub d_conv: usize,
    /// Expansion `E`: `d_inner = E·d_model`.
    #[config(default = 2)]
    pub expand: usize,
    /// Head dimension `P` (mamba-ssm `headdim`); `n_heads = d_inner / P`.
    #[config(default = 64)]
    pub head_dim: usize,
    /// Groups `G` sharing `B`, `C` (mamba-ssm `ngroups`); must divide `n_heads`.
    #[config(default = 1)]
    pub n_groups: usize,
    /// Chunk length of the SSD scan (any length works; it trades memory for parallelism).
    #[config(default = 256)]
    pub chunk_size: usize,
    /// Lower end of the log-uniform `dt` draw for the `dt_bias` init.
    #[config(default = 0.001)]
    pub dt_min: f64,
    /// Upper end of the log-uniform `dt` draw.
    #[config(default = 0.1)]
    pub dt_max: f64,
    /// Floor on the drawn `dt` before inverting the softplus.
    #[config(default = 1e-4)]
    pub dt_init_floor: f64,
    /// Lower clamp of `dt` after the softplus (mamba-ssm `dt_limit[0]`).
    #[config(default = 0.0)]
    pub dt_limit_min: f64,
    /// Upper clamp of `dt` (mamba-ssm `dt_limit[1]`), `None` = `+∞`.
    #[config(default = "None")]
    pub dt_limit_max: Option<f64>,
    /// `A = −exp(A_log)` is initialised uniform in this range (mamba-ssm `A_init_range`).
    #[config(default = "(1.0, 16.0)")]
    pub a_init_range: (f64, f64),
    /// Gate after the norm (`true`) or before it (`false`, Mamba2's default).
    #[config(default = false)]
    pub norm_before_gate: bool,
    /// Bias on `in_proj` and `out_proj`.
    #[config(default = false)]
    pub bias: bool,
    /// Bias on `conv1d`.
    #[config(default = true)]
    pub conv_bias: bool,
    /// Epsilon of the gated RMSNorm.
    #[config(default = 1e-5)]
    pub eps: f64,
}

/// Checks `value ≥ 0` (NaN rejected).
fn non_negative(field: &'static str, value: f64) -> Result<(), SsmError> {
    if value >= 0.0 {
        Ok(())
    } else {
        Err(SsmError::Config(ConfigError::OutOfDomain {
            field,
            value,
            requirement: ">= 0",
        }))
    }
}

/// Checks `value ≥ lower` (NaN rejected).
fn at_least(
    field: &'static str,
    value: f64,
    lower: f64,
    requirement: &'static str,
) -> Result<(), SsmError> {
    if value >= lower {
        Ok(())
    } else {
        Err(SsmError::Config(ConfigError::OutOfDomain {
            field,
            value,
            requirement,
        }))
    }
}

impl Mamba2Config {
    /// `d_inner = expand·d_model`.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }

    /// `n_heads = d_inner / head_dim`.
    pub fn n_heads(&self) -> usize {
        self.d_inner() / self.head_dim.max(1)
    }

    /// Channels of the convolution: `d_inner + 2·n_groups·d_state` (x, B, C).
    pub fn conv_channels(&self) -> usize {
        self.d_inner() + 2 * self.n_groups * self.d_state
    }

    /// Validates every field.
    ///
    /// # Errors
    /// [`SsmError`] naming the first invalid field: a zero size, `d_inner % head_dim`,
    /// `n_heads % n_groups`, `dt_min ≤ 0`, `dt_max < dt_min`, `dt_init_floor < 0`,
    /// `dt_limit_min < 0`, `dt_limit_max ≤ dt_limit_min`, `a_init_range` not `0 < lo ≤ hi`, `eps ≤ 0`.
    pub fn validate(&self) -> Result<(), SsmError> {
        for (field, value) in [
            ("d_model", self.d_model),
            ("d_state", self.d_state),
            ("d_conv", self.d_conv),
            ("expand", self.expand),
            ("head_dim", self.head_dim),
            ("n_groups", self.n_groups),
            ("chunk_size", self.chunk_size),
        ] {
            positive(field, value)?;
        }
        divisible("d_inner", self.d_inner(), self.head_dim, Some("head_dim"))?;
        divisible("n_heads", self.n_heads(), self.n_groups, Some("n_groups"))?;
        positive_f64("dt_min", self.dt_min)?;
        at_least("dt_max", self.dt_max, self.dt_min, ">= dt_min")?;
        non_negative("dt_init_floor", self.dt_init_floor)?;
        non_negative("dt_limit_min", self.dt_limit_min)?;
        if let Some(hi) = self.dt_limit_max
            && hi.partial_cmp(&self.dt_limit_min) != Some(std::cmp::Ordering::Greater)
        {
            return Err(SsmError::Config(ConfigError::OutOfDomain {
                field: "dt_limit_max",
                value: hi,
                requirement: "> dt_limit_min",
            }));
        }
        let (lo, hi) = self.a_init_range;
        positive_f64("a_init_range.0", lo)?;
        at_least("a_init_range.1", hi, lo, ">= a_init_range.0")?;
        Ok(positive_f64("eps", self.eps)?)
    }

    /// Builds the layer with mamba-ssm's initialisation: `dt_bias = softplus⁻¹(dt)` for
    /// `dt = max(exp(U(ln dt_min, ln dt_max)), dt_init_floor)`, `A_log = ln U(a_init_range)`,
    /// `D = 1`, norm weight 1; linear and conv weights use Burn's default initialisers.
    ///
    /// # Errors
    /// As [`Mamba2Config::validate`].
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Mamba2<B>, SsmError> {
        self.validate()?;
        let (d_inner, h, conv) = (self.d_inner(), self.n_heads(), self.conv_channels());
        let d_in_proj = 2 * d_inner + 2 * self.n_groups * self.d_state + h;
        let conv1d = Conv1dConfig::new(conv, conv, self.d_conv)
            .with_groups(conv)
            .with_bias(self.conv_bias)
            .init(device);
        Ok(Mamba2 {
            in_proj: LinearConfig::new(self.d_model, d_in_proj)
                .with_bias(self.bias)
                .init(device),
            conv1d,
            dt_bias: Param::from_tensor(self.init_dt_bias(h, device)),
            a_log: Param::from_tensor(self.init_a_log(h, device)),
            d: Param::from_tensor(Tensor::ones([h], device)),
            norm: GatedRmsNorm::new(
                d_inner,
                d_inner / self.n_groups,
                self.eps,
                self.norm_before_gate,
                device,
            ),
            out_proj: LinearConfig::new(d_inner, self.d_model)
                .with_bias(self.bias)
                .init(device),
            kernel: Kernel::Fast,
            d_state: self.d_state,
            d_conv: self.d_conv,
            head_dim: self.head_dim,
            n_groups: self.n_groups,
            chunk_size: self.chunk_size,
            dt_limit: (
                self.dt_limit_min,
                self.dt_limit_max.unwrap_or(f64::INFINITY),
            ),
        })
    }

    /// `softplus⁻¹(dt) = dt + ln(−expm1(−dt))`, computed on the host in f64.
    fn init_dt_bias<B: Backend>(&self, h: usize, device: &B::Device) -> Tensor<B, 1> {
        let u = uniform_host::<B>(h, device);
        let (lo, hi) = (self.dt_min.ln(), self.dt_max.ln());
        let values: Vec<f32> = u
            .iter()
            .map(|u| {
                let dt = (u * (hi - lo) + lo).exp().max(self.dt_init_floor);
                (dt + (-(-dt).exp_m1()).ln()) as f32
            })
            .collect();
        Tensor::from_data(TensorData::new(values, [h]), device)
    }

    /// `A_log = ln U(a_init_range)`.
    fn init_a_log<B: Backend>(&self, h: usize, device: &B::Device) -> Tensor<B, 1> {
        let (lo, hi) = self.a_init_range;
        let values: Vec<f32> = uniform_host::<B>(h, device)
            .iter()
            .map(|u| (lo + u * (hi - lo)).ln() as f32)
            .collect();
        Tensor::from_data(TensorData::new(values, [h]), device)
    }
}

/// `n` draws of `U(0, 1)` from the backend's generator, on the host.
fn uniform_host<B: Backend>(n: usize, device: &B::Device) -> Vec<f64> {
    let u = Tensor::<B, 1>::random([n], Distribution::Uniform(0.0, 1.0), device);
    u.into_data().iter::<f64>().collect()
}

/// Numerically safe `softplus(x) = max(x, 0) + ln(1 + exp(−|x|))`.
pub(crate) fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clone().clamp_min(0.0) + x.abs().neg().exp().log1p()
}

/// The Mamba2 layer. Fields mirror mamba-ssm's state dict (see the module table).
#[derive(Module, Debug)]
pub struct Mamba2<B: Backend> {
    /// `d_model → [z, x, B, C, dt]`.
    pub in_proj: Linear<B>,
    /// Depthwise causal convolution over the `x, B, C` channels (weight `[C, 1, d_conv]`).
    pub conv1d: Conv1d<B>,
    /// Per-head bias added to `dt` before the softplus, `[H]`.
    pub dt_bias: Param<Tensor<B, 1>>,
    /// `A_log`, `[H]`: `A = −exp(A_log)`.
    pub a_log: Param<Tensor<B, 1>>,
    /// `D`, `[H]`: skip connection `D·x`.
    pub d: Param<Tensor<B, 1>>,
    /// Gated RMSNorm over `d_inner`, grouped by `n_groups`.
    pub norm: GatedRmsNorm<B>,
    /// `d_inner → d_model`.
    pub out_proj: Linear<B>,
    /// State size `N`.
    pub d_state: usize,
    /// Convolution width `K`.
    pub d_conv: usize,
    /// Head dimension `P`.
    pub head_dim: usize,
    /// Groups `G`.
    pub n_groups: usize,
    /// SSD chunk length.
    pub chunk_size: usize,
    /// Clamp range of `dt` after the softplus.
    pub dt_limit: (f64, f64),
    /// The scan [`forward`](Self::forward) runs: the chunked SSD or the token-by-token
    /// reference twin ([`with_kernel`](Self::with_kernel)).
    #[module(skip)]
    pub kernel: Kernel,
}

/// The per-token projections after `in_proj` and the convolution, before the scan.
struct Projected<B: Backend> {
    z: Tensor<B, 3>,
    x: Tensor<B, 4>,
    b: Tensor<B, 4>,
    c: Tensor<B, 4>,
    dt: Tensor<B, 3>,
}

impl<B: Backend> WithKernel for Mamba2<B> {
    /// This layer scanning with `kernel`: [`Kernel::Reference`] makes
    /// [`forward`](Self::forward) run [`forward_reference`](Self::forward_reference).
    fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        self
    }
}

impl<B: Backend> Mamba2<B> {
    /// `d_inner = n_heads · head_dim`.
    pub fn d_inner(&self) -> usize {
        self.norm.weight.dims()[0]
    }

    /// Number of heads `H`.
    pub fn n_heads(&self) -> usize {
        self.a_log.dims()[0]
    }

    /// Convolution channels `d_inner + 2·G·N`.
    pub fn conv_channels(&self) -> usize {
        self.d_inner() + 2 * self.n_groups * self.d_state
    }

    /// Full-sequence forward from zero states: the chunked SSD, or the token-by-token reference
    /// twin when built with [`Kernel::Reference`].
    ///
    /// # Shapes
    /// `u`: `[B, L, d_model]` → `[B, L, d_model]`
    ///
    /// # Panics
    /// If the last axis of `u` is not `d_model` or `L == 0`.
    pub fn forward(&self, u: Tensor<B, 3>) -> Tensor<B, 3> {
        match self.kernel {
            Kernel::Fast => self.forward_cached(u, None).0,
            Kernel::Reference => self.forward_reference(u),
        }
    }

    /// Splits `in_proj(u)` into `z`, `xBC` and `dt` (mamba-ssm's packing `[z, x, B, C, dt]`).
    fn split_in_proj(&self, zxbcdt: Tensor<B, 3>) -> [Tensor<B, 3>; 3] {
        let (d_inner, conv) = (self.d_inner(), self.conv_channels());
        let mut parts = zxbcdt.split_with_sizes(vec![d_inner, conv, self.n_heads()], 2);
        let dt = contiguous(parts.pop().expect("dt"));
        let xbc = parts.pop().expect("xBC");
        let z = contiguous(parts.pop().expect("z"));
        [z, xbc, dt]
    }

    /// `silu(xBC)` split into heads/groups, and `dt = clamp(softplus(dt + dt_bias))`.
    fn project(&self, z: Tensor<B, 3>, xbc: Tensor<B, 3>, dt: Tensor<B, 3>) -> Projected<B> {
        let [bs, len, _] = xbc.dims();
        let (d_inner, gn) = (self.d_inner(), self.n_groups * self.d_state);
        let mut parts = silu(xbc).split_with_sizes(vec![d_inner, gn, gn], 2);
        let c = parts
            .pop()
            .expect("C")
            .reshape([bs, len, self.n_groups, self.d_state]);
        let b = parts
            .pop()
            .expect("B")
            .reshape([bs, len, self.n_groups, self.d_state]);
        // Copied out of the joint `xBC` rows: `x` meets broadcast operands (`dt`, `D`), which
        // flex would otherwise walk element by element.
        let x =
            contiguous(parts.pop().expect("x")).reshape([bs, len, self.n_heads(), self.head_dim]);
        let dt = softplus(dt + self.dt_bias.val().unsqueeze::<3>());
        // softplus > 0, so the default limit (0, ∞) is a no-op, skipped as mamba-ssm does
        let dt = match self.dt_limit {
            (lo, hi) if lo <= 0.0 && hi == f64::INFINITY => dt,
            (lo, hi) => dt.clamp(lo, hi.min(f64::from(f32::MAX))),
        };
        Projected { z, x, b, c, dt }
    }

    /// `A = −exp(A_log)`, `[H]`.
    fn a(&self) -> Tensor<B, 1> {
        self.a_log.val().exp().neg()
    }

    /// `y + D·x`, then the gated norm with `z` and `out_proj`.
    fn finish(&self, y: Tensor<B, 4>, x: Tensor<B, 4>, z: Tensor<B, 3>) -> Tensor<B, 3> {
        let [bs, len, _, _] = y.dims();
        let [_, _, h, p] = x.dims();
        // `D` spread over each head's channels once, `[1, 1, H·P]`: the product with `x` is then
        // one row shared by every token, the broadcast element-wise kernels handle fastest.
        let d = Tensor::<B, 3>::ones([1, h, p], &x.device()) * self.d.val().reshape([1, h, 1]);
        let x = x.reshape([bs, len, h * p]) * d.reshape([1, 1, h * p]);
        let y = y.reshape([bs, len, h * p]) + x;
        self.out_proj.forward(self.norm.forward(y, z))
    }

    /// Causal depthwise convolution of `xbc` `[B, L, C]`, continuing from `prev` (the last `d_conv`
    /// inputs, `[B, C, d_conv]`; zeros when `None`). Returns the output `[B, L, C]` (before SiLU)
    /// and the new last `d_conv` inputs.
    ///
    /// Computed in the token-major layout, as `bias + Σ_j w_j · x[t + j − (K − 1)]` over the `K`
    /// shifted copies of the sequence: no transposition of the `[B, L, C]` activations, which a
    /// channels-first `Conv1d` needs on both sides. Its reference twin is the per-token window of
    /// [`step`](Self::step).
    fn conv(&self, xbc: Tensor<B, 3>, prev: Option<Tensor<B, 3>>) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let [bs, len, ch] = xbc.dims();
        let k = self.d_conv;
        let device = xbc.device();
        let prev = match prev {
            Some(p) => p.swap_dims(1, 2),
            None => Tensor::zeros([bs, k, ch], &device),
        };
        let full = Tensor::cat(vec![prev, contiguous(xbc)], 1); // [B, k + L, C]
        let state = full.clone().narrow(1, len, k).swap_dims(1, 2); // [B, C, k]
        let weight = self.conv1d.weight.val().reshape([ch, k]);
        let mut out = match &self.conv1d.bias {
            Some(bias) => bias.val().reshape([1, 1, ch]),
            None => Tensor::zeros([1, 1, ch], &device),
        };
        for j in 0..k {
            // `select`, not a one-wide `narrow`: Burn 0.21's wgpu backend (docs/wgpu.md).
            let index = Tensor::<B, 1, Int>::from_ints([j as i32], &device);
            let w = weight.clone().select(1, index).reshape([1, 1, ch]);
            out = contiguous(full.clone().narrow(1, 1 + j, len)) * w + out;
        }
        (out, state)
    }

    /// Forward through the chunked scan, starting from `cache` (zeros when `None`), returning the
    /// output and the cache after the last token (mamba-ssm's prefill with `inference_params`).
    /// `forward_cached(u₂, Some(&forward_cached(u₁, c).1))` equals the forward of `[u₁, u₂]`.
    ///
    /// # Shapes
    /// `u`: `[B, L, d_model]` → (`[B, L, d_model]`, cache with batch `B`)
    ///
    /// # Panics
    /// If the last axis of `u` is not `d_model`, `L == 0`, or the cache's shapes do not match.
    pub fn forward_cached(
        &self,
        u: Tensor<B, 3>,
        cache: Option<&Mamba2Cache<B>>,
    ) -> (Tensor<B, 3>, Mamba2Cache<B>) {
        let d_model = self.out_proj.weight.dims()[1];
        same_size("Mamba2 input width (d_model)", d_model, u.dims()[2])
            .unwrap_or_else(|e| panic!("{e}"));
        let [z, xbc, dt] = self.split_in_proj(self.in_proj.forward(u));
        let (conv_prev, ssm_prev) = match cache {
            Some(c) => (Some(c.conv_state.clone()), Some(c.ssm_state.clone())),
            None => (None, None),
        };
        let (xbc, conv_state) = self.conv(xbc, conv_prev);
        let p = self.project(z, xbc, dt);
        let a = p.dt.clone() * self.a().unsqueeze::<3>();
        let xdt = p.x.clone() * p.dt.unsqueeze_dim::<4>(3);
        let out = ssd_chunked(xdt, a, p.b, p.c, self.chunk_size, ssm_prev);
        let y = self.finish(out.y, p.x, p.z);
        (
            y,
            Mamba2Cache {
                conv_state,
                ssm_state: out.final_state,
            },
        )
    }
}
