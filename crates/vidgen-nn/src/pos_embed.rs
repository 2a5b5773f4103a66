//! Absolute positional embeddings: fixed sin-cos tables in 1D/2D/3D (MAE/DiT, diffusers'
//! `get_*d_sincos_pos_embed`) and factorized learnable per-axis tables (NaViT, LinGen).
//!
//! 1D, for positions `p` and `k = 0..D/2`: `ω_k = 10000^(−k/(D/2))`,
//! `emb(p) = [sin(p·ω), cos(p·ω)]`. The 2D table gives the first half of the channels to the `w`
//! coordinate and the second half to `h` (DiT's convention, inherited from MAE's
//! `meshgrid(w, h)`); the 3D table gives the first quarter to `t` and the rest to the 2D table.
//! Tables are computed in f64 on the host and rounded once.

use crate::error::ConfigError;
use crate::error::{NnError, divisible, positive, positive_f64};
use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::{Tensor, TensorData, backend::Backend};

/// Host-side 1D sin-cos rows, `positions.len() × dim`, row-major.
fn sincos_rows(dim: usize, positions: &[f64]) -> Vec<f64> {
    let half = dim / 2;
    let omega: Vec<f64> = (0..half)
        .map(|k| 1.0 / 10000f64.powf(k as f64 / half as f64))
        .collect();
    let mut out = Vec::with_capacity(positions.len() * dim);
    for &p in positions {
        out.extend(omega.iter().map(|w| (p * w).sin()));
        out.extend(omega.iter().map(|w| (p * w).cos()));
    }
    out
}

fn to_tensor<B: Backend>(
    values: Vec<f64>,
    rows: usize,
    cols: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

/// 1D sin-cos table for arbitrary (possibly fractional) positions.
///
/// # Shapes
/// → `[positions.len(), dim]`
///
/// # Errors
/// [`NnError`] if `dim` is zero or odd.
pub fn sincos_1d<B: Backend>(
    dim: usize,
    positions: &[f64],
    device: &B::Device,
) -> Result<Tensor<B, 2>, NnError> {
    positive("dim", dim)?;
    divisible("dim", dim, 2, None)?;
    Ok(to_tensor(
        sincos_rows(dim, positions),
        positions.len(),
        dim,
        device,
    ))
}

/// Host rows of the 2D table for a `(h, w)` grid with per-axis position values.
fn sincos_2d_rows(dim: usize, pos_h: &[f64], pos_w: &[f64]) -> Vec<f64> {
    let half = dim / 2;
    let emb_w = sincos_rows(half, pos_w);
    let emb_h = sincos_rows(half, pos_h);
    let mut out = Vec::with_capacity(pos_h.len() * pos_w.len() * dim);
    for i in 0..pos_h.len() {
        for j in 0..pos_w.len() {
            out.extend_from_slice(&emb_w[j * half..(j + 1) * half]);
            out.extend_from_slice(&emb_h[i * half..(i + 1) * half]);
        }
    }
    out
}

/// DiT's 2D sin-cos table (diffusers' `get_2d_sincos_pos_embed`).
///
/// Positions along an axis of size `n` are `i / (n / base_size) / interpolation_scale`; with
/// `base_size = n` and scale 1 they are the integers `0..n`.
///
/// # Shapes
/// `grid = [h, w]` → `[h·w, dim]`, tokens in `(h, w)` raster order
///
/// # Errors
/// [`NnError`] if `dim` is not a positive multiple of 4, a grid size is zero, or a scale is not
/// positive.
pub fn sincos_2d<B: Backend>(
    dim: usize,
    grid: [usize; 2],
    base_size: f64,
    interpolation_scale: f64,
    device: &B::Device,
) -> Result<Tensor<B, 2>, NnError> {
    positive("dim", dim)?;
    divisible("dim", dim, 4, None)?;
    positive("grid", grid[0])?;
    positive("grid", grid[1])?;
    positive_f64("base_size", base_size)?;
    positive_f64("interpolation_scale", interpolation_scale)?;
    let axis = |n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| i as f64 / (n as f64 / base_size) / interpolation_scale)
            .collect()
    };
    let rows = sincos_2d_rows(dim, &axis(grid[0]), &axis(grid[1]));
    Ok(to_tensor(rows, grid[0] * grid[1], dim, device))
}

/// 3D sin-cos table (diffusers' `get_3d_sincos_pos_embed`, used by CogVideoX and Open-Sora-style
/// DiTs): channels `[0, dim/4)` encode `t / temporal_interpolation_scale`, channels
/// `[dim/4, dim)` hold the 2D table of `(h, w) / spatial_interpolation_scale`.
///
/// diffusers takes `spatial_size = (w, h)`; here the grid is `[t, h, w]`.
///
/// # Shapes
/// `grid = [t, h, w]` → `[t·h·w, dim]`, tokens in `(t, h, w)` raster order
///
/// # Errors
/// [`NnError`] if `dim` is not a positive multiple of 16, a grid size is zero or a scale is not
/// positive.
pub fn sincos_3d<B: Backend>(
    dim: usize,
    grid: [usize; 3],
    spatial_interpolation_scale: f64,
    temporal_interpolation_scale: f64,
    device: &B::Device,
) -> Result<Tensor<B, 2>, NnError> {
    positive("dim", dim)?;
    divisible("dim", dim, 16, None)?;
    for g in grid {
        positive("grid", g)?;
    }
    positive_f64("spatial_interpolation_scale", spatial_interpolation_scale)?;
    positive_f64("temporal_interpolation_scale", temporal_interpolation_scale)?;
    let [t, h, w] = grid;
    let (dim_t, dim_s) = (dim / 4, 3 * dim / 4);
    let scaled = |n: usize, s: f64| -> Vec<f64> { (0..n).map(|i| i as f64 / s).collect() };
    let spatial = sincos_2d_rows(
        dim_s,
        &scaled(h, spatial_interpolation_scale),
        &scaled(w, spatial_interpolation_scale),
    );
    let temporal = sincos_rows(dim_t, &scaled(t, temporal_interpolation_scale));
    let mut out = Vec::with_capacity(t * h * w * dim);
    for ti in 0..t {
        for s in 0..h * w {
            out.extend_from_slice(&temporal[ti * dim_t..(ti + 1) * dim_t]);
            out.extend_from_slice(&spatial[s * dim_s..(s + 1) * dim_s]);
        }
    }
    Ok(to_tensor(out, t * h * w, dim, device))
}

/// Configuration of [`FactorizedPosEmbed`].
#[derive(Config, Debug)]
pub struct FactorizedPosEmbedConfig {
    /// Token width.
    pub d_model: usize,
    /// Largest grid `[t, h, w]` the tables cover.
    pub max_grid: [usize; 3],
    /// Standard deviation of the normal initialisation.
    #[config(default = 0.02)]
    pub init_std: f64,
}

impl FactorizedPosEmbedConfig {
    /// Builds the three tables.
    ///
    /// # Errors
    /// [`NnError::Config`] (`ConfigError::Zero`) naming `d_model` or `max_grid`; [`NnError::Config`] (`ConfigError::OutOfDomain`) for a negative
    /// `init_std`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<FactorizedPosEmbed<B>, NnError> {
        positive("d_model", self.d_model)?;
        for g in self.max_grid {
            positive("max_grid", g)?;
        }
        if self.init_std.is_nan() || self.init_std < 0.0 {
            return Err(NnError::Config(ConfigError::OutOfDomain {
                field: "init_std",
                value: self.init_std,
                requirement: ">= 0",
            }));
        }
        let init = Initializer::Normal {
            mean: 0.0,
            std: self.init_std,
        };
        let [t, h, w] = self.max_grid;
        Ok(FactorizedPosEmbed {
            pos_t: init.init([t, self.d_model], device),
            pos_h: init.init([h, self.d_model], device),
            pos_w: init.init([w, self.d_model], device),
        })
    }
}

/// Learnable per-axis tables summed per token: `e(t, h, w) = pos_t[t] + pos_h[h] + pos_w[w]`
/// (NaViT's factorized embedding; LinGen's positional embedding). Any grid up to the maximum works,
/// so one model serves several resolutions and durations.
#[derive(Module, Debug)]
pub struct FactorizedPosEmbed<B: Backend> {
    /// `[max_t, d_model]`.
    pub pos_t: Param<Tensor<B, 2>>,
    /// `[max_h, d_model]`.
    pub pos_h: Param<Tensor<B, 2>>,
    /// `[max_w, d_model]`.
    pub pos_w: Param<Tensor<B, 2>>,
}

impl<B: Backend> FactorizedPosEmbed<B> {
    /// The embedding of every token of a `[t, h, w]` grid.
    ///
    /// # Shapes
    /// → `[t·h·w, d_model]`, tokens in `(t, h, w)` raster order
    ///
    /// # Errors
    /// [`NnError::GridTooLarge`] naming the axis that exceeds its table; [`NnError::Config`] (`ConfigError::Zero`) for an
    /// empty axis.
    pub fn try_forward(&self, grid: [usize; 3]) -> Result<Tensor<B, 2>, NnError> {
        let tables = [&self.pos_t, &self.pos_h, &self.pos_w];
        for ((size, table), axis) in grid.iter().zip(tables).zip(["t", "h", "w"]) {
            positive("grid", *size)?;
            let max = table.dims()[0];
            if *size > max {
                return Err(NnError::GridTooLarge {
                    axis,
                    size: *size,
                    field: "max_grid",
                    max,
                });
            }
        }
        let [t, h, w] = grid;
        let d = self.pos_t.dims()[1];
        // Each table spread over the grid (`contiguous`: row copies on flex, a no-op elsewhere),
        // then added as contiguous operands.
        let spread = |table: Tensor<B, 2>, shape: [usize; 4]| {
            crate::layout::contiguous(table.reshape(shape).expand([t, h, w, d]))
        };
        let pt = spread(self.pos_t.val().narrow(0, 0, t), [t, 1, 1, d]);
        let ph = spread(self.pos_h.val().narrow(0, 0, h), [1, h, 1, d]);
        let pw = spread(self.pos_w.val().narrow(0, 0, w), [1, 1, w, d]);
        Ok((pt + ph + pw).reshape([t * h * w, d]))
    }

    /// As [`FactorizedPosEmbed::try_forward`].
    ///
    /// # Panics
    /// With the [`NnError`] message on an invalid grid.
    pub fn forward(&self, grid: [usize; 3]) -> Tensor<B, 2> {
        self.try_forward(grid)
            .unwrap_or_else(|e| panic!("FactorizedPosEmbed: {e}"))
    }
}
