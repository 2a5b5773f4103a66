//! The forward pass shared by [`Stdit`]'s entry points: input checks, padding to the patch grid,
//! positional tables, the blocks and the cropped output.

use super::block::{BlockInputs, component};
use super::{Stdit, StditInput};
use crate::error::ConfigError;
use crate::error::{ModelError, positive, same_size};
use burn::tensor::{Bool, Tensor, backend::Backend};
use vidgen_nn::{sincos_1d, sincos_2d, unpatchify_3d};

impl<B: Backend> Stdit<B> {
    /// Checks a prepared call; returns the (padded) token grid.
    pub(super) fn check(&self, p: &Prepared<B>) -> Result<[usize; 3], ModelError> {
        let [b, c, t, h, w] = p.x.dims();
        same_size("input channels", self.in_channels(), c)?;
        for (field, n) in [("x frames (T)", t), ("x height (H)", h), ("x width (W)", w)] {
            positive(field, n)?;
        }
        let patch = self.x_embedder.patch_size;
        let grid = [0, 1, 2].map(|i| [t, h, w][i].div_ceil(patch[i]));
        same_size("timesteps batch", b, p.t.dims()[0])?;
        same_size("fps batch", b, p.fps.dims()[0])?;
        same_size("text batch", b, p.text.dims()[0])?;
        same_size("text width (d_text)", self.d_text, p.text.dims()[2])?;
        if let Some(pad) = &p.text_pad {
            same_size("text mask batch", b, pad.dims()[0])?;
            same_size("text mask length", p.text.dims()[1], pad.dims()[1])?;
        }
        if let Some(mask) = &p.cond_frames {
            same_size("frame mask batch", b, mask.dims()[0])?;
            same_size("frame mask frames", t, mask.dims()[1])?;
            same_size("temporal patch size with a frame mask", 1, patch[0])?;
        }
        let max_frames = self.temporal_blocks[0]
            .attn
            .rope
            .as_ref()
            .map_or(usize::MAX, |r| r.rotary.freq_complex.dims()[0]);
        if grid[0] > max_frames {
            return Err(ModelError::Config(ConfigError::OutOfDomain {
                field: "frames (T / pt)",
                value: grid[0] as f64,
                requirement: "<= max_frames",
            }));
        }
        if !(p.pos_scale.is_finite() && p.pos_scale > 0.0) {
            return Err(ModelError::Config(ConfigError::OutOfDomain {
                field: "positional-embedding scale (√(height·width) / input_sq_size)",
                value: p.pos_scale,
                requirement: "finite and > 0",
            }));
        }
        Ok(grid)
    }

    /// `√(height·width) / input_sq_size`, or the fixed scale without a resolution.
    pub(super) fn pos_scale(&self, resolution: Option<[f64; 2]>) -> f64 {
        match resolution {
            Some([height, width]) => (height * width).sqrt() / self.input_sq_size,
            None => self.pos_interpolation_scale,
        }
    }

    /// [`StditInput`] → [`Prepared`]: masks inverted to "masked out", `fps` and a one-row
    /// caption mask repeated over the batch (as upstream), the positional scale computed.
    pub(super) fn prepare(&self, input: StditInput<B>) -> Prepared<B> {
        let b = input.x.dims()[0];
        let fps = match input.fps.dims()[0] {
            1 if b > 1 => input.fps.expand([b]),
            _ => input.fps,
        };
        let mask = input.mask.map(|m| match m.dims() {
            [1, n] if b > 1 => m.expand([b, n]),
            _ => m,
        });
        let pos_scale = self.pos_scale(input.resolution);
        Prepared {
            x: input.x,
            t: input.timestep,
            fps,
            text: input.y,
            text_pad: mask.map(|m| m.bool_not()),
            cond_frames: input.x_mask.map(|m| m.bool_not()),
            pos_scale,
        }
    }

    /// `pooled_proj(mean of the valid projected text tokens)` (`[B, D]`).
    pub(super) fn pooled(
        &self,
        text: &Tensor<B, 3>,
        pad: Option<&Tensor<B, 2, Bool>>,
    ) -> Option<Tensor<B, 2>> {
        let proj = self.pooled_proj.as_ref()?;
        let [b, len, d] = text.dims();
        let valid = match pad {
            Some(pad) => pad.clone().bool_not().float(),
            None => Tensor::ones([b, len], &text.device()),
        };
        let count = valid.clone().sum_dim(1).clamp_min(1.0);
        let weights = (valid / count).reshape([b, len, 1]);
        Some(proj.forward((text.clone() * weights).sum_dim(1).reshape([b, d])))
    }

    /// The spatial sin-cos table (plus the temporal one if enabled) for a token grid.
    pub(super) fn positions(
        &self,
        grid: [usize; 3],
        d: usize,
        scale: f64,
        device: &B::Device,
    ) -> Result<Tensor<B, 4>, ModelError> {
        let [frames, gh, gw] = grid;
        let spatial = gh * gw;
        let base = ((spatial as f64).sqrt()).round().max(1.0);
        let pos = sincos_2d::<B>(d, [gh, gw], base, scale, device)
            .map_err(component("spatial sin-cos positions"))?
            .reshape([1, 1, spatial, d]);
        if !self.temporal_pos_embed {
            return Ok(pos);
        }
        let positions: Vec<f64> = (0..frames).map(|f| f as f64).collect();
        let table = sincos_1d::<B>(d, &positions, device)
            .map_err(component("temporal sin-cos positions"))?;
        Ok(pos + table.reshape([1, frames, 1, d]))
    }

    pub(super) fn forward_prepared(&self, p: Prepared<B>) -> Result<Tensor<B, 5>, ModelError> {
        let grid = self.check(&p)?;
        let [b, _, t_in, h_in, w_in] = p.x.dims();
        let device = p.x.device();
        let (frames, spatial) = (grid[0], grid[1] * grid[2]);
        let d = self.t_block.linear.weight.dims()[1] / 6;

        let text = self.y_embedder.forward(p.text);
        let pooled = self.pooled(&text, p.text_pad.as_ref());
        let (c, t_mlp) = self.condition_with(p.t, p.fps.clone(), pooled.clone());
        let zero = p
            .cond_frames
            .as_ref()
            .map(|_| self.condition_with(Tensor::zeros([b], &device), p.fps, pooled));
        let token_mask = p.cond_frames.map(|m| token_mask(m, spatial, d));

        let x = pad_to_patch(p.x, self.x_embedder.patch_size);
        let tokens = self.x_embedder.forward(x).reshape([b, frames, spatial, d]);
        let pos = self.positions(grid, d, p.pos_scale, &device)?;
        let mut h = (tokens + pos).reshape([b, frames * spatial, d]);

        let inputs = BlockInputs {
            t_mlp,
            t0_mlp: zero.as_ref().map(|(_, t0)| t0.clone()),
            token_mask: token_mask.clone(),
            text,
            text_pad: p.text_pad,
            frames,
            spatial,
        };
        for (sb, tb) in self.spatial_blocks.iter().zip(&self.temporal_blocks) {
            h = sb.forward(h, &inputs)?;
            h = tb.forward(h, &inputs)?;
        }
        let out = self
            .final_layer
            .forward(h, c, zero.map(|(c0, _)| c0), token_mask);
        let out = unpatchify_3d(out, grid, self.x_embedder.patch_size);
        let c_out = out.dims()[1];
        Ok(out.slice([0..b, 0..c_out, 0..t_in, 0..h_in, 0..w_in]))
    }
}

/// Inputs after the API-specific conversions, in one form for the shared forward pass.
pub(super) struct Prepared<B: Backend> {
    pub(super) x: Tensor<B, 5>,
    pub(super) t: Tensor<B, 1>,
    pub(super) fps: Tensor<B, 1>,
    pub(super) text: Tensor<B, 3>,
    /// `[B, L]`, `true` = padded caption token.
    pub(super) text_pad: Option<Tensor<B, 2, Bool>>,
    /// `[B, T]`, `true` = conditioning frame (modulated at timestep 0).
    pub(super) cond_frames: Option<Tensor<B, 2, Bool>>,
    /// Divisor of the spatial sin-cos positions.
    pub(super) pos_scale: f64,
}

/// Zero-pads `T, H, W` at the end up to multiples of the patch size (upstream `PatchEmbed3D`).
fn pad_to_patch<B: Backend>(mut x: Tensor<B, 5>, patch: [usize; 3]) -> Tensor<B, 5> {
    for (axis, p) in [2, 3, 4].into_iter().zip(patch) {
        let mut dims = x.dims();
        let rest = dims[axis] % p;
        if rest != 0 {
            dims[axis] = p - rest;
            let zeros = Tensor::zeros(dims, &x.device());
            x = Tensor::cat(vec![x, zeros], axis);
        }
    }
    x
}

/// `[B, T]` frame flags → `[B, T·S, D]` token flags (frame-major tokens).
fn token_mask<B: Backend>(
    mask: Tensor<B, 2, Bool>,
    spatial: usize,
    d: usize,
) -> Tensor<B, 3, Bool> {
    let [b, t] = mask.dims();
    mask.reshape([b, t, 1, 1])
        .expand([b, t, spatial, d])
        .reshape([b, t * spatial, d])
}
