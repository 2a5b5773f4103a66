//! Rotary position embeddings (Su et al. 2021): 1D over a sequence, and 3D-axial over a
//! `(t, h, w)` token grid.
//!
//! For a head vector split into `D/2` rotation pairs with frequencies `f_k = θ^(−2k/D)`, position `p`
//! rotates pair `k` by the angle `p·f_k`. Two pair layouts exist in the wild:
//! - [`RopeLayout::Interleaved`]: pairs are `(x_{2k}, x_{2k+1})` — GPT-J, `rotary_embedding_torch`
//!   (Open-Sora's temporal RoPE), diffusers' `apply_rotary_emb(use_real_unbind_dim=-1)` (CogVideoX),
//!   and Burn's [`RotaryEncoding`];
//! - [`RopeLayout::HalfSplit`]: pairs are `(x_k, x_{k+D/2})` — GPT-NeoX, LLaMA in HF,
//!   diffusers' `use_real_unbind_dim=-2`.
//!
//! [`Rope1d`] rotates with Burn's [`RotaryEncoding`] table (interleaved, positions `0..L` from an
//! offset) in contiguous tensor ops; Burn's own rotation is its reference twin.
//! [`Rope3d`] gives each axis its own slice of the head (`axes_dims = [d_t, d_h, d_w]`, by default
//! CogVideoX's `[D/4, 3D/8, 3D/8]`) rotated by that axis' integer coordinate — Burn's encoding
//! rotates by sequence index only, so the 3D tables are built here ([`RopeTables`]), in f64 on
//! the host.

use crate::error::{NnError, divisible, positive, positive_f64};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{RotaryEncoding, RotaryEncodingConfig};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// Which channels form a rotation pair.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// `(x_{2k}, x_{2k+1})`.
    Interleaved,
    /// `(x_k, x_{k+D/2})`.
    HalfSplit,
}

/// Configuration of [`Rope1d`].
#[derive(Config, Debug)]
pub struct Rope1dConfig {
    /// Rotated width (usually the head dimension); must be even.
    pub head_dim: usize,
    /// Longest sequence the cached table covers.
    pub max_seq_len: usize,
    /// Base `θ`.
    #[config(default = 10000.0)]
    pub theta: f64,
}

impl Rope1dConfig {
    /// Builds the encoding.
    ///
    /// # Errors
    /// [`NnError`] naming `head_dim` (zero or odd), `max_seq_len` (zero) or `theta` (not > 0).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Rope1d<B>, NnError> {
        positive("head_dim", self.head_dim)?;
        divisible("head_dim", self.head_dim, 2, None)?;
        positive("max_seq_len", self.max_seq_len)?;
        positive_f64("theta", self.theta)?;
        let rotary = RotaryEncodingConfig::new(self.max_seq_len, self.head_dim)
            .with_theta(self.theta as f32)
            .init(device);
        Ok(Rope1d { rotary })
    }
}

/// 1D interleaved RoPE over positions `start..start + L` (Burn's [`RotaryEncoding`]).
#[derive(Module, Debug)]
pub struct Rope1d<B: Backend> {
    /// Burn's cached rotation table.
    pub rotary: RotaryEncoding<B>,
}

impl<B: Backend> Rope1d<B> {
    /// Rotates positions `0..L`.
    ///
    /// # Shapes
    /// `x`: `[.., L, head_dim]` → same
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.apply(x, 0)
    }

    /// Rotates positions `start..start + L` (token-by-token decoding):
    /// `out = x·cos + rot(x)·sin` per pair, with `rot(x)_{2k} = −x_{2k+1}`,
    /// `rot(x)_{2k+1} = x_{2k}` taken as one `[.., D]·[D, D]` product with a signed pair swap,
    /// and the `cos`/`sin` rows of Burn's table applied as one `[L·D]` row over every leading
    /// index (contiguous operands throughout). [`apply_reference`](Self::apply_reference) is
    /// Burn's own rotation, the readable twin.
    ///
    /// # Panics
    /// If `start + L` exceeds `max_seq_len`.
    pub fn apply<const D: usize>(&self, x: Tensor<B, D>, start: usize) -> Tensor<B, D> {
        let shape = x.shape();
        let dims = x.dims();
        let (len, dim) = (dims[D - 2], dims[D - 1]);
        let rows = shape.num_elements() / (len * dim);
        let device = x.device();
        let [max_len, table_dim, _] = self.rotary.freq_complex.dims();
        assert!(
            start + len <= max_len && table_dim == dim,
            "Rope1d: positions {start}..{} of a table of {max_len}, head width {dim} vs {table_dim}",
            start + len
        );
        let table = self.rotary.freq_complex.clone().narrow(0, start, len);
        // `select` copies the cos / sin column: Burn 0.21's wgpu backend reads a one-wide
        // `narrow` given new axes from the wrong offset (docs/wgpu.md).
        let row = |part: i32| {
            let index = Tensor::<B, 1, Int>::from_ints([part], &device);
            table.clone().select(2, index).reshape([1, len * dim])
        };
        let (cos, sin) = (row(0), row(1));
        // swap[2k+1][2k] = −1, swap[2k][2k+1] = 1: (x·swap)_{2k} = −x_{2k+1}, _{2k+1} = x_{2k}.
        let mut swap = vec![0.0f32; dim * dim];
        for k in 0..dim / 2 {
            swap[(2 * k + 1) * dim + 2 * k] = -1.0;
            swap[2 * k * dim + 2 * k + 1] = 1.0;
        }
        let swap = Tensor::<B, 2>::from_data(TensorData::new(swap, [dim, dim]), &device);
        let flat = x.reshape([rows * len, dim]);
        let rotated = flat.clone().matmul(swap).reshape([rows, len * dim]);
        (flat.reshape([rows, len * dim]) * cos + rotated * sin).reshape(shape)
    }

    /// Burn's [`RotaryEncoding::apply`]: the reference twin of [`apply`](Self::apply).
    ///
    /// # Panics
    /// As [`apply`](Self::apply).
    pub fn apply_reference<const D: usize>(&self, x: Tensor<B, D>, start: usize) -> Tensor<B, D> {
        self.rotary.apply(x, start)
    }
}

/// Frequencies `θ^(−2k/d)` for `k = 0..d/2`.
fn frequencies(dim: usize, theta: f64) -> Vec<f64> {
    (0..dim / 2)
        .map(|k| theta.powf(-((2 * k) as f64) / dim as f64))
        .collect()
}

/// Precomputed `cos`/`sin` rows for a set of token positions, applied to q or k.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    /// `[L, head_dim]`, each angle repeated over its pair's two channels.
    pub cos: Tensor<B, 2>,
    /// `[L, head_dim]`.
    pub sin: Tensor<B, 2>,
    /// Pair layout the tables are laid out for.
    pub layout: RopeLayout,
}

impl<B: Backend> RopeTables<B> {
    /// Builds tables from per-token angles `[L, head_dim/2]` (row-major, host f64).
    fn from_angles(angles: &[f64], len: usize, layout: RopeLayout, device: &B::Device) -> Self {
        let half = angles.len() / len.max(1);
        let dim = 2 * half;
        let (mut cos, mut sin) = (vec![0f32; len * dim], vec![0f32; len * dim]);
        for l in 0..len {
            for k in 0..half {
                let a = angles[l * half + k];
                let (s, c) = (a.sin() as f32, a.cos() as f32);
                let (i, j) = match layout {
                    RopeLayout::Interleaved => (2 * k, 2 * k + 1),
                    RopeLayout::HalfSplit => (k, k + half),
                };
                for idx in [i, j] {
                    cos[l * dim + idx] = c;
                    sin[l * dim + idx] = s;
                }
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [len, dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [len, dim]), device),
            layout,
        }
    }

    /// 1D tables for arbitrary positions, in either layout.
    ///
    /// # Errors
    /// [`NnError`] naming `head_dim` (zero or odd) or `theta`.
    pub fn new_1d(
        positions: &[f64],
        head_dim: usize,
        theta: f64,
        layout: RopeLayout,
        device: &B::Device,
    ) -> Result<Self, NnError> {
        positive("head_dim", head_dim)?;
        divisible("head_dim", head_dim, 2, None)?;
        positive_f64("theta", theta)?;
        let freqs = frequencies(head_dim, theta);
        let angles: Vec<f64> = positions
            .iter()
            .flat_map(|p| freqs.iter().map(move |f| p * f))
            .collect();
        Ok(Self::from_angles(&angles, positions.len(), layout, device))
    }

    /// Rotates every head vector: `x·cos + rot(x)·sin`, where `rot` maps each pair `(a, b)` to
    /// `(−b, a)`.
    ///
    /// # Shapes
    /// `x`: `[B, H, L, head_dim]` → same
    ///
    /// # Panics
    /// If `L` or `head_dim` differ from the tables'.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, h, l, d] = x.dims();
        assert_eq!(
            self.cos.dims(),
            [l, d],
            "RoPE tables {:?} do not match input [L, head_dim] = [{l}, {d}]",
            self.cos.dims()
        );
        let rotated = match self.layout {
            RopeLayout::Interleaved => {
                let pairs = x.clone().reshape([b, h, l, d / 2, 2]);
                let even = pairs.clone().narrow(4, 0, 1);
                let odd = pairs.narrow(4, 1, 1);
                Tensor::cat(vec![odd.neg(), even], 4).reshape([b, h, l, d])
            }
            RopeLayout::HalfSplit => {
                let first = x.clone().narrow(3, 0, d / 2);
                let second = x.clone().narrow(3, d / 2, d / 2);
                Tensor::cat(vec![second.neg(), first], 3)
            }
        };
        let cos = self.cos.clone().unsqueeze::<4>();
        let sin = self.sin.clone().unsqueeze::<4>();
        x * cos + rotated * sin
    }
}

/// Configuration of [`Rope3d`].
#[derive(Config, Debug)]
pub struct Rope3dConfig {
    /// Head dimension `D`.
    pub head_dim: usize,
    /// Channels given to `(t, h, w)`; `None` means CogVideoX's `[D/4, 3D/8, 3D/8]`. Each must be even
    /// and they must sum to `head_dim`.
    #[config(default = "None")]
    pub axes_dims: Option<[usize; 3]>,
    /// Base `θ`.
    #[config(default = 10000.0)]
    pub theta: f64,
    /// Pair layout.
    #[config(default = "RopeLayout::Interleaved")]
    pub layout: RopeLayout,
}

impl Rope3dConfig {
    /// Validates the split.
    ///
    /// # Errors
    /// [`NnError`] naming `head_dim`, `axes_dims` (odd part, or parts not summing to `head_dim`) or
    /// `theta`.
    pub fn init(&self) -> Result<Rope3d, NnError> {
        positive("head_dim", self.head_dim)?;
        positive_f64("theta", self.theta)?;
        let axes_dims = match self.axes_dims {
            Some(a) => a,
            None => {
                divisible("head_dim", self.head_dim, 8, None)?;
                let d = self.head_dim;
                [d / 4, d / 8 * 3, d / 8 * 3]
            }
        };
        for a in axes_dims {
            divisible("axes_dims", a, 2, None)?;
        }
        let sum: usize = axes_dims.iter().sum();
        if sum != self.head_dim {
            return Err(NnError::SplitMismatch {
                field: "axes_dims",
                parts: axes_dims.to_vec(),
                sum,
                total_field: "head_dim",
                total: self.head_dim,
            });
        }
        Ok(Rope3d {
            axes_dims,
            theta: self.theta,
            layout: self.layout,
        })
    }
}

/// 3D-axial RoPE. Holds no parameters; build the tables for a grid once per forward and apply them
/// to q and k.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope3d {
    /// Channels for `(t, h, w)`.
    pub axes_dims: [usize; 3],
    /// Base `θ`.
    pub theta: f64,
    /// Pair layout.
    pub layout: RopeLayout,
}

impl Rope3d {
    /// Tables for every token of a `[t, h, w]` grid in raster order, with integer coordinates
    /// starting at `offset` along each axis.
    ///
    /// The `D/2` angles of a token are its `t` angles, then `h`, then `w`; pair `k` (interleaved:
    /// channels `2k, 2k+1`; half-split: `k, k+D/2`) rotates by angle `k`.
    ///
    /// # Shapes
    /// → tables of `[t·h·w, head_dim]`
    pub fn tables<B: Backend>(
        &self,
        grid: [usize; 3],
        offset: [usize; 3],
        device: &B::Device,
    ) -> RopeTables<B> {
        let [t, h, w] = grid;
        let freqs = self.axes_dims.map(|d| frequencies(d, self.theta));
        let len = t * h * w;
        let half = self.axes_dims.iter().sum::<usize>() / 2;
        let mut angles = Vec::with_capacity(len * half);
        for ti in 0..t {
            for hi in 0..h {
                for wi in 0..w {
                    let coords = [ti + offset[0], hi + offset[1], wi + offset[2]];
                    for (axis, f) in freqs.iter().enumerate() {
                        angles.extend(f.iter().map(|f| coords[axis] as f64 * f));
                    }
                }
            }
        }
        RopeTables::from_angles(&angles, len, self.layout, device)
    }
}
