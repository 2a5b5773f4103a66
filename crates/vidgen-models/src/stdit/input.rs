//! [`StditInput`]: the arguments of upstream `STDiT3.forward`, by name, for
//! [`Stdit::forward_input`](super::Stdit::forward_input).

use burn::tensor::{Bool, Tensor, backend::Backend};

/// The inputs of one [`Stdit::forward_input`](super::Stdit::forward_input) call, named after
/// upstream `STDiT3.forward(x, timestep, y, mask, x_mask, fps, height, width)`.
///
/// Masks keep upstream's meaning (`true` = keep), the opposite of Burn's attention masks.
#[derive(Debug, Clone)]
pub struct StditInput<B: Backend> {
    /// Latent `[B, C, T, H, W]`; sizes need not be multiples of the patch size.
    pub x: Tensor<B, 5>,
    /// Flow time `[B]` (`σ·1000`).
    pub timestep: Tensor<B, 1>,
    /// Caption features `[B, N, d_text]` (upstream's `[B, 1, N, d_text]` without the 1).
    pub y: Tensor<B, 3>,
    /// `[B, N]` (or `[1, N]` for every sample), `true` = a valid caption token (upstream
    /// `mask != 0`); `None`: all valid.
    pub mask: Option<Tensor<B, 2, Bool>>,
    /// `[B, T]`, `true` = a frame modulated at `timestep`, `false` = a conditioning frame
    /// modulated at timestep 0 (upstream `x_mask`); `None`: every frame at `timestep`.
    pub x_mask: Option<Tensor<B, 2, Bool>>,
    /// Frame rate `[B]`, or `[1]` for every sample.
    pub fps: Tensor<B, 1>,
    /// `(height, width)` of the video in pixels (upstream passes the first sample's): the
    /// spatial positions are divided by `√(height·width) / input_sq_size`. `None`: the fixed
    /// [`StditConfig::pos_interpolation_scale`](super::StditConfig::pos_interpolation_scale).
    pub resolution: Option<[f64; 2]>,
}

impl<B: Backend> StditInput<B> {
    /// The required inputs; no masks, no resolution.
    pub fn new(
        x: Tensor<B, 5>,
        timestep: Tensor<B, 1>,
        y: Tensor<B, 3>,
        fps: Tensor<B, 1>,
    ) -> Self {
        Self {
            x,
            timestep,
            y,
            mask: None,
            x_mask: None,
            fps,
            resolution: None,
        }
    }

    /// Sets the caption mask (`[B, N]`, `true` = valid token).
    pub fn with_mask(mut self, mask: Tensor<B, 2, Bool>) -> Self {
        self.mask = Some(mask);
        self
    }

    /// Sets the frame mask (`[B, T]`, `false` = conditioning frame at timestep 0).
    pub fn with_x_mask(mut self, x_mask: Tensor<B, 2, Bool>) -> Self {
        self.x_mask = Some(x_mask);
        self
    }

    /// Sets the pixel resolution that scales the spatial positions.
    pub fn with_resolution(mut self, height: f64, width: f64) -> Self {
        self.resolution = Some([height, width]);
        self
    }
}
