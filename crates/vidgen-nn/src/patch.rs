//! Patch embedding of images and video latents, and the inverse reshapes.
//!
//! [`PatchEmbed2d`] is DiT's (timm `PatchEmbed`): a `Conv2d` with kernel = stride = `(ph, pw)`.
//! [`PatchEmbed3d`] is Open-Sora's `PatchEmbed3D`: a `Conv3d` with kernel = stride = `(pt, ph, pw)`.
//! Tokens come out in `(t, h, w)` raster order: `[B, t·h·w, d_model]`.
//!
//! [`unpatchify_2d`] / [`unpatchify_3d`] invert the final projection's token layout: each token's
//! vector is read as `(pt, ph, pw, C)` (DiT's `nhwpqc → nchpwq`, Open-Sora's
//! `B (t h w) (pt ph pw C) → B C (t pt) (h ph) (w pw)`). [`patchify_3d`] is their exact inverse.

use crate::error::{NnError, positive};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, Conv3d, Conv3dConfig};
use burn::tensor::{Tensor, backend::Backend};

const AXES: [&str; 3] = ["T", "H", "W"];

fn check_patch(patch_size: &[usize]) -> Result<(), NnError> {
    for &p in patch_size {
        positive("patch_size", p)?;
    }
    Ok(())
}

/// Checks that each input size is divisible by its patch size; `axes` names them.
fn check_divisible(sizes: &[usize], patch: &[usize], axes: &[&'static str]) -> Result<(), NnError> {
    for ((&size, &p), &axis) in sizes.iter().zip(patch).zip(axes) {
        if size % p != 0 {
            return Err(NnError::PatchMismatch {
                axis,
                size,
                patch: p,
            });
        }
    }
    Ok(())
}

fn check_channels(got: usize, expected: usize) -> Result<(), NnError> {
    if got != expected {
        return Err(NnError::InputMismatch {
            what: "channels",
            got,
            field: "in_channels",
            expected,
        });
    }
    Ok(())
}

/// Configuration of [`PatchEmbed2d`].
#[derive(Config, Debug)]
pub struct PatchEmbed2dConfig {
    /// Input channels `C`.
    pub in_channels: usize,
    /// Token width.
    pub d_model: usize,
    /// `(ph, pw)`.
    #[config(default = "[2, 2]")]
    pub patch_size: [usize; 2],
}

impl PatchEmbed2dConfig {
    /// Builds the embedding.
    ///
    /// # Errors
    /// [`NnError::Config`] (`ConfigError::Zero`) naming `in_channels`, `d_model` or `patch_size`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<PatchEmbed2d<B>, NnError> {
        positive("in_channels", self.in_channels)?;
        positive("d_model", self.d_model)?;
        check_patch(&self.patch_size)?;
        let proj = Conv2dConfig::new([self.in_channels, self.d_model], self.patch_size)
            .with_stride(self.patch_size)
            .init(device);
        Ok(PatchEmbed2d {
            proj,
            patch_size: self.patch_size,
        })
    }
}

/// Image patch embedding (`proj` as in timm / DiT).
#[derive(Module, Debug)]
pub struct PatchEmbed2d<B: Backend> {
    /// Conv2d with kernel = stride = patch size.
    pub proj: Conv2d<B>,
    /// `(ph, pw)`.
    pub patch_size: [usize; 2],
}

impl<B: Backend> PatchEmbed2d<B> {
    /// Patchifies, checking the input first.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` → `[B, (H/ph)·(W/pw), d_model]`
    ///
    /// # Errors
    /// [`NnError::PatchMismatch`] if `H` or `W` is not divisible by its patch size;
    /// [`NnError::InputMismatch`] on a wrong channel count.
    pub fn try_forward(&self, x: Tensor<B, 4>) -> Result<Tensor<B, 3>, NnError> {
        let [_, c, h, w] = x.dims();
        check_channels(c, self.proj.weight.dims()[1])?;
        check_divisible(&[h, w], &self.patch_size, &AXES[1..])?;
        Ok(self.proj.forward(x).flatten::<3>(2, 3).swap_dims(1, 2))
    }

    /// As [`PatchEmbed2d::try_forward`].
    ///
    /// # Panics
    /// With the [`NnError`] message on an invalid input.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        self.try_forward(x)
            .unwrap_or_else(|e| panic!("PatchEmbed2d: {e}"))
    }
}

/// Configuration of [`PatchEmbed3d`].
#[derive(Config, Debug)]
pub struct PatchEmbed3dConfig {
    /// Input (latent) channels `C`.
    pub in_channels: usize,
    /// Token width.
    pub d_model: usize,
    /// `(pt, ph, pw)`; Open-Sora 1.2 uses `(1, 2, 2)`.
    #[config(default = "[1, 2, 2]")]
    pub patch_size: [usize; 3],
}

impl PatchEmbed3dConfig {
    /// Builds the embedding.
    ///
    /// # Errors
    /// [`NnError::Config`] (`ConfigError::Zero`) naming `in_channels`, `d_model` or `patch_size`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<PatchEmbed3d<B>, NnError> {
        positive("in_channels", self.in_channels)?;
        positive("d_model", self.d_model)?;
        check_patch(&self.patch_size)?;
        let proj = Conv3dConfig::new([self.in_channels, self.d_model], self.patch_size)
            .with_stride(self.patch_size)
            .init(device);
        Ok(PatchEmbed3d {
            proj,
            patch_size: self.patch_size,
        })
    }
}

/// Video-latent patch embedding (`proj` as in Open-Sora's `PatchEmbed3D`).
#[derive(Module, Debug)]
pub struct PatchEmbed3d<B: Backend> {
    /// Conv3d with kernel = stride = patch size.
    pub proj: Conv3d<B>,
    /// `(pt, ph, pw)`.
    pub patch_size: [usize; 3],
}

impl<B: Backend> PatchEmbed3d<B> {
    /// The token grid `(t, h, w)` for an input of size `(T, H, W)`.
    ///
    /// # Errors
    /// [`NnError::PatchMismatch`] naming the axis that is not divisible.
    pub fn grid(&self, size: [usize; 3]) -> Result<[usize; 3], NnError> {
        check_divisible(&size, &self.patch_size, &AXES)?;
        Ok([0, 1, 2].map(|i| size[i] / self.patch_size[i]))
    }

    /// Patchifies, checking the input first.
    ///
    /// # Shapes
    /// `x`: `[B, C, T, H, W]` → `[B, t·h·w, d_model]` with `(t, h, w) = (T/pt, H/ph, W/pw)`
    ///
    /// # Errors
    /// [`NnError::PatchMismatch`] / [`NnError::InputMismatch`] as [`PatchEmbed2d::try_forward`].
    pub fn try_forward(&self, x: Tensor<B, 5>) -> Result<Tensor<B, 3>, NnError> {
        let [_, c, t, h, w] = x.dims();
        check_channels(c, self.proj.weight.dims()[1])?;
        self.grid([t, h, w])?;
        Ok(self.proj.forward(x).flatten::<3>(2, 4).swap_dims(1, 2))
    }

    /// As [`PatchEmbed3d::try_forward`].
    ///
    /// # Panics
    /// With the [`NnError`] message on an invalid input.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 3> {
        self.try_forward(x)
            .unwrap_or_else(|e| panic!("PatchEmbed3d: {e}"))
    }
}

/// Folds per-token patch vectors back into an image.
///
/// # Shapes
/// `x`: `[B, h·w, ph·pw·C]` (vector order `(ph, pw, C)`) → `[B, C, h·ph, w·pw]`
///
/// # Panics
/// If the token count or width does not match `grid` and `patch_size`.
pub fn unpatchify_2d<B: Backend>(
    x: Tensor<B, 3>,
    grid: [usize; 2],
    patch_size: [usize; 2],
) -> Tensor<B, 4> {
    let [b, l, width] = x.dims();
    let ([h, w], [ph, pw]) = (grid, patch_size);
    assert_eq!(l, h * w, "unpatchify_2d: {l} tokens for grid {grid:?}");
    assert_eq!(
        width % (ph * pw),
        0,
        "unpatchify_2d: width {width} vs patch {patch_size:?}"
    );
    let c = width / (ph * pw);
    x.reshape([b, h, w, ph, pw, c])
        .permute([0, 5, 1, 3, 2, 4])
        .reshape([b, c, h * ph, w * pw])
}

/// Folds per-token patch vectors back into a video latent.
///
/// # Shapes
/// `x`: `[B, t·h·w, pt·ph·pw·C]` (vector order `(pt, ph, pw, C)`) → `[B, C, t·pt, h·ph, w·pw]`
///
/// # Panics
/// If the token count or width does not match `grid` and `patch_size`.
pub fn unpatchify_3d<B: Backend>(
    x: Tensor<B, 3>,
    grid: [usize; 3],
    patch_size: [usize; 3],
) -> Tensor<B, 5> {
    let [b, l, width] = x.dims();
    let ([t, h, w], [pt, ph, pw]) = (grid, patch_size);
    assert_eq!(l, t * h * w, "unpatchify_3d: {l} tokens for grid {grid:?}");
    let volume = pt * ph * pw;
    assert_eq!(
        width % volume,
        0,
        "unpatchify_3d: width {width} vs patch {patch_size:?}"
    );
    let c = width / volume;
    x.reshape([b, t, h, w, pt, ph, pw, c])
        .permute([0, 7, 1, 4, 2, 5, 3, 6])
        .reshape([b, c, t * pt, h * ph, w * pw])
}

/// Cuts a video latent into per-token patch vectors, the exact inverse of [`unpatchify_3d`]
/// (used to build per-token training targets).
///
/// # Shapes
/// `x`: `[B, C, T, H, W]` → `[B, t·h·w, pt·ph·pw·C]`
///
/// # Errors
/// [`NnError::PatchMismatch`] if an axis is not divisible by its patch size.
pub fn patchify_3d<B: Backend>(
    x: Tensor<B, 5>,
    patch_size: [usize; 3],
) -> Result<Tensor<B, 3>, NnError> {
    let [b, c, tt, hh, ww] = x.dims();
    check_patch(&patch_size)?;
    check_divisible(&[tt, hh, ww], &patch_size, &AXES)?;
    let [pt, ph, pw] = patch_size;
    let (t, h, w) = (tt / pt, hh / ph, ww / pw);
    Ok(x.reshape([b, c, t, pt, h, ph, w, pw])
        .permute([0, 2, 4, 6, 3, 5, 7, 1])
        .reshape([b, t * h * w, pt * ph * pw * c]))
}
