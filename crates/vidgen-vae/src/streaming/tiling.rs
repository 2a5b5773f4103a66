//! Spatially tiled decoding: overlapping latent tiles decoded one at a time and blended in pixel
//! space with linear ramps over the overlap (the idea of diffusers' `AutoencoderKL.tiled_decode`,
//! `blend_v`, `blend_h`). Peak activation memory scales with the tile area instead of the frame
//! area (see `docs/vae.md` for a measurement).

use crate::error::ConfigError;
use crate::error::{VaeError, positive};
use burn::config::Config;
use burn::tensor::{Tensor, backend::Backend};

/// Configuration of [`TiledDecode`] (sizes in latent pixels; diffusers' default tile of 512 px
/// with a 0.25 overlap is 64 latents with 16 of overlap).
#[derive(Config, Debug)]
pub struct TiledDecodeConfig {
    /// Tile side in latent pixels.
    #[config(default = 32)]
    pub tile_latent_size: usize,
    /// Overlap of neighbouring tiles in latent pixels, `< tile_latent_size`.
    #[config(default = 8)]
    pub overlap_latent: usize,
}

impl TiledDecodeConfig {
    /// Validates the sizes.
    ///
    /// # Errors
    /// [`VaeError::Config`] (`ConfigError::Zero`) for `tile_latent_size = 0`; [`VaeError::Config`] (`ConfigError::OutOfDomain`) naming
    /// `overlap_latent` if it is not below `tile_latent_size`.
    pub fn init(&self) -> Result<TiledDecode, VaeError> {
        positive("tile_latent_size", self.tile_latent_size)?;
        if self.overlap_latent >= self.tile_latent_size {
            return Err(VaeError::Config(ConfigError::OutOfDomain {
                field: "overlap_latent",
                value: self.overlap_latent as f64,
                requirement: "< tile_latent_size",
            }));
        }
        Ok(TiledDecode {
            tile: self.tile_latent_size,
            overlap: self.overlap_latent,
        })
    }
}

/// Validated tiling; see [`TiledDecode::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TiledDecode {
    /// Tile side (latent pixels).
    pub tile: usize,
    /// Overlap (latent pixels).
    pub overlap: usize,
}

/// Tile starts along one axis: `0, s, 2s, …` with `s = tile − overlap`, until a tile reaches `len`.
fn starts(len: usize, tile: usize, overlap: usize) -> Vec<usize> {
    let mut v = vec![0];
    while v[v.len() - 1] + tile < len {
        let last = v[v.len() - 1];
        v.push(last + tile - overlap);
    }
    v
}

/// Linear ramp `y/e`, `y = 0..e`, shaped to broadcast along `dim` of a 4D tensor.
fn ramp<B: Backend>(e: usize, dim: usize, device: &B::Device) -> Tensor<B, 4> {
    let r = Tensor::<B, 1, burn::tensor::Int>::arange(0..e as i64, device).float() / e as f64;
    let mut shape = [1, 1, 1, 1];
    shape[dim] = e;
    r.reshape(shape)
}

fn blend<B: Backend>(a: &Tensor<B, 4>, b: Tensor<B, 4>, extent: usize, dim: usize) -> Tensor<B, 4> {
    let e = extent.min(a.dims()[dim]).min(b.dims()[dim]);
    if e == 0 {
        return b;
    }
    let la = a.dims()[dim];
    let r = ramp::<B>(e, dim, &b.device());
    let head = b.clone().narrow(dim, 0, e);
    let tail_a = a.clone().narrow(dim, la - e, e);
    let mixed = tail_a * (r.clone().neg() + 1.0) + head * r;
    let lb = b.dims()[dim];
    if lb == e {
        mixed
    } else {
        Tensor::cat(vec![mixed, b.narrow(dim, e, lb - e)], dim)
    }
}

/// Vertical blend: the first `extent` rows of `b` become `a_end·(1 − y/e) + b·(y/e)`, where
/// `a_end` are the last rows of the tile `a` above (diffusers' `blend_v`).
///
/// # Shapes
/// `a`: `[N, C, Ha, W]`, `b`: `[N, C, Hb, W]` → like `b`
pub fn blend_v<B: Backend>(a: &Tensor<B, 4>, b: Tensor<B, 4>, extent: usize) -> Tensor<B, 4> {
    blend(a, b, extent, 2)
}

/// Horizontal blend with the tile `a` on the left (diffusers' `blend_h`).
///
/// # Shapes
/// `a`: `[N, C, H, Wa]`, `b`: `[N, C, H, Wb]` → like `b`
pub fn blend_h<B: Backend>(a: &Tensor<B, 4>, b: Tensor<B, 4>, extent: usize) -> Tensor<B, 4> {
    blend(a, b, extent, 3)
}

impl TiledDecode {
    /// Decodes `z` tile by tile with `decode` (a map scaling space by `factor`), blends each tile
    /// with its upper and left neighbours over `overlap·factor` pixels, keeps the first
    /// `(tile − overlap)·factor` rows/columns of each tile (all of the last one), and stitches.
    /// Equals `decode(z)` when `decode` is pixel-local; otherwise differs near tile seams by how
    /// much a tile border changes the decoder's output (bounded in `tests/streaming.rs`).
    ///
    /// # Shapes
    /// `z`: `[N, C, h, w]` → `[N, C_out, h·factor, w·factor]`
    pub fn decode<B: Backend>(
        &self,
        z: Tensor<B, 4>,
        factor: usize,
        decode: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let [_, _, h, w] = z.dims();
        let (rows, cols) = (
            starts(h, self.tile, self.overlap),
            starts(w, self.tile, self.overlap),
        );
        let extent = self.overlap * factor;
        let keep = (self.tile - self.overlap) * factor;
        let mut above: Vec<Tensor<B, 4>> = Vec::new();
        let mut stripes = Vec::with_capacity(rows.len());
        for (i, &r) in rows.iter().enumerate() {
            let mut row: Vec<Tensor<B, 4>> = Vec::with_capacity(cols.len());
            for (j, &c) in cols.iter().enumerate() {
                let tile =
                    z.clone()
                        .narrow(2, r, self.tile.min(h - r))
                        .narrow(3, c, self.tile.min(w - c));
                let mut d = decode(tile);
                if i > 0 {
                    d = blend_v(&above[j], d, extent);
                }
                if j > 0 {
                    d = blend_h(&row[j - 1], d, extent);
                }
                row.push(d);
            }
            let last_row = i + 1 == rows.len();
            let cropped = row
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let t = if j + 1 == cols.len() {
                        t.clone()
                    } else {
                        t.clone().narrow(3, 0, keep)
                    };
                    if last_row { t } else { t.narrow(2, 0, keep) }
                })
                .collect();
            stripes.push(Tensor::cat(cropped, 3));
            above = row;
        }
        Tensor::cat(stripes, 2)
    }
}
