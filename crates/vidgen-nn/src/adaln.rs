//! Adaptive layer-norm modulation: adaLN-Zero (DiT, Peebles & Xie 2023) and adaLN-single
//! (PixArt-α; Open-Sora's `t_block` + per-block `scale_shift_table` + `t2i_modulate`).
//!
//! - **adaLN-Zero**: every block owns an [`AdaLnModulation`] (`SiLU → Linear(d_cond, n·d_model)`,
//!   zero-initialised) whose output is split into `n` vectors (shift, scale, gate, …).
//! - **adaLN-single**: one [`AdaLnModulation`] shared by the whole network produces a packed
//!   `[B, n·d_model]` vector ([`AdaLnModulation::forward_packed`]); each block adds its own learnt
//!   [`ScaleShiftTable`] to it before splitting.
//!
//! Both are applied with [`modulate`] (`x·(1 + scale) + shift`) and [`gate`] (`gate·y`).

use crate::error::{NnError, positive};
use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};

/// `x·(1 + scale) + shift` with per-sample vectors broadcast over tokens (DiT's `modulate`,
/// Open-Sora's `t2i_modulate`).
///
/// # Shapes
/// `x`: `[B, L, D]`, `shift`, `scale`: `[B, D]` → `[B, L, D]`
pub fn modulate<B: Backend>(
    x: Tensor<B, 3>,
    shift: Tensor<B, 2>,
    scale: Tensor<B, 2>,
) -> Tensor<B, 3> {
    let len = x.dims()[1];
    x * per_token(scale + 1.0, len) + per_token(shift, len)
}

/// `[B, D]` → `[B, L, D]`, each sample's vector repeated over its `L` tokens. A materialised
/// repeat rather than a broadcast view: elementwise ops on two contiguous operands take the
/// vectorised path on CPU backends, whereas a `[B, 1, D]` broadcast against `[B, L, D]` falls
/// back to strided iteration there.
fn per_token<B: Backend>(v: Tensor<B, 2>, len: usize) -> Tensor<B, 3> {
    v.unsqueeze_dim::<3>(1).repeat_dim(1, len)
}

/// `gate·y`, the per-sample gate of a residual branch: `x + gate(y, g)`.
///
/// # Shapes
/// `y`: `[B, L, D]`, `gate`: `[B, D]` → `[B, L, D]`
pub fn gate<B: Backend>(y: Tensor<B, 3>, gate: Tensor<B, 2>) -> Tensor<B, 3> {
    let len = y.dims()[1];
    y * per_token(gate, len)
}

/// Configuration of [`AdaLnModulation`].
#[derive(Config, Debug)]
pub struct AdaLnModulationConfig {
    /// Width of the conditioning vector (DiT: `d_model`).
    pub d_cond: usize,
    /// Width of each produced vector.
    pub d_model: usize,
    /// Number of vectors produced (DiT block: 6 = shift/scale/gate for attention and MLP; final
    /// layer: 2).
    #[config(default = 6)]
    pub n_chunks: usize,
    /// Zero-initialise the projection so every block starts as the identity (adaLN-Zero). PixArt's
    /// shared `t_block` uses `false` (normal, std 0.02).
    #[config(default = true)]
    pub zero_init: bool,
}

impl AdaLnModulationConfig {
    /// Builds the modulation layer.
    ///
    /// # Errors
    /// [`NnError::Config`] (`ConfigError::Zero`) naming `d_cond`, `d_model` or `n_chunks`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<AdaLnModulation<B>, NnError> {
        positive("d_cond", self.d_cond)?;
        positive("d_model", self.d_model)?;
        positive("n_chunks", self.n_chunks)?;
        let initializer = if self.zero_init {
            Initializer::Zeros
        } else {
            Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
        };
        let linear = LinearConfig::new(self.d_cond, self.n_chunks * self.d_model)
            .with_initializer(initializer)
            .init(device);
        Ok(AdaLnModulation {
            linear,
            n_chunks: self.n_chunks,
        })
    }
}

/// `Linear(SiLU(c))`, split into `n_chunks` modulation vectors.
#[derive(Module, Debug)]
pub struct AdaLnModulation<B: Backend> {
    /// `d_cond → n_chunks·d_model` (DiT key `adaLN_modulation.1`, PixArt key `t_block.1`).
    pub linear: Linear<B>,
    /// Number of vectors produced.
    pub n_chunks: usize,
}

impl<B: Backend> AdaLnModulation<B> {
    /// The packed output, before splitting (adaLN-single passes it to every block).
    ///
    /// # Shapes
    /// `cond`: `[B, d_cond]` → `[B, n_chunks·d_model]`
    pub fn forward_packed(&self, cond: Tensor<B, 2>) -> Tensor<B, 2> {
        self.linear.forward(silu(cond))
    }

    /// The `n_chunks` modulation vectors, in order (DiT: shift_msa, scale_msa, gate_msa,
    /// shift_mlp, scale_mlp, gate_mlp).
    ///
    /// # Shapes
    /// `cond`: `[B, d_cond]` → `n_chunks × [B, d_model]`
    pub fn forward(&self, cond: Tensor<B, 2>) -> Vec<Tensor<B, 2>> {
        self.forward_packed(cond).chunk(self.n_chunks, 1)
    }
}

/// Configuration of [`ScaleShiftTable`].
#[derive(Config, Debug)]
pub struct ScaleShiftTableConfig {
    /// Width of each vector.
    pub d_model: usize,
    /// Number of vectors (6 in a PixArt/Open-Sora block, 2 in the final layer).
    #[config(default = 6)]
    pub n_chunks: usize,
}

impl ScaleShiftTableConfig {
    /// Builds the table, initialised as PixArt's `randn(n, d) / sqrt(d)`.
    ///
    /// # Errors
    /// [`NnError::Config`] (`ConfigError::Zero`) naming `d_model` or `n_chunks`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<ScaleShiftTable<B>, NnError> {
        positive("d_model", self.d_model)?;
        positive("n_chunks", self.n_chunks)?;
        let std = 1.0 / (self.d_model as f64).sqrt();
        let table =
            Initializer::Normal { mean: 0.0, std }.init([self.n_chunks, self.d_model], device);
        Ok(ScaleShiftTable {
            scale_shift_table: table,
        })
    }
}

/// Per-block learnt offsets of adaLN-single: `table + t.reshape(B, n, d)`, split into `n` vectors.
#[derive(Module, Debug)]
pub struct ScaleShiftTable<B: Backend> {
    /// `[n_chunks, d_model]` (key `scale_shift_table`).
    pub scale_shift_table: Param<Tensor<B, 2>>,
}

impl<B: Backend> ScaleShiftTable<B> {
    /// Splits the shared packed timestep vector into this block's modulation vectors.
    ///
    /// # Shapes
    /// `packed`: `[B, n_chunks·d_model]` → `n_chunks × [B, d_model]`
    ///
    /// # Panics
    /// If `packed`'s width is not `n_chunks·d_model`.
    pub fn forward(&self, packed: Tensor<B, 2>) -> Vec<Tensor<B, 2>> {
        let [n, d] = self.scale_shift_table.dims();
        let [batch, width] = packed.dims();
        assert_eq!(
            width,
            n * d,
            "packed modulation width {width} != n_chunks {n} × d_model {d}"
        );
        let table = self.scale_shift_table.val().unsqueeze_dim::<3>(0);
        (packed.reshape([batch, n, d]) + table)
            .chunk(n, 1)
            .into_iter()
            .map(|c| c.squeeze_dim::<2>(1))
            .collect()
    }
}
