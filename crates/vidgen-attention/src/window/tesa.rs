//! LinGen's TEmporal Swin Attention (TESA): the TE-branch of the MATE block (LinGen, Wang et al.,
//! CVPR 2025, arXiv 2412.09856).
//!
//! What the sources say. The supplement (sec. A) introduces TESA together with the Rotary-Major
//! Scan as the fix for Mamba2's *adjacency preservation* problem, measured as the average minimum
//! scan distance `d_k` between tokens adjacent in a `2×2×2` cube, and sec. D / Fig. 6 ablate it.
//! The main paper's abstract (our `notes/lingen.md`) gives its role: correlations "between
//! spatially adjacent tokens and temporally medium-range tokens". It is a Swin attention over
//! 3D windows; neither source in our hands states the window sizes.
//!
//! Our reading, kept configurable:
//! - a window spans many latent frames of a small spatial neighbourhood; default
//!   `[Wt, Wh, Ww] = [8, 4, 4]` (`N = 128` tokens per window). With LinGen's TAE (8× temporal,
//!   8×8 spatial) and 2×2×1 patches (supplement sec. E.1), 8 latent frames cover 64 raw frames
//!   (≈ 4 s at 16 fps: "medium range" against 17–68 s videos) and a 4×4 token patch covers
//!   64×64 pixels (a small neighbourhood of a 512p frame, 32×32 tokens). The cost per token is
//!   `N = 128` key dot products, the same order as Mamba2's `d_state = 128` (sec. E.2), so the
//!   branch stays linear in the number of tokens.
//! - shifted by `⌊W/2⌋` on every axis on odd layers (Swin's alternation, sec. 3.2): two tokens
//!   adjacent along one axis (the pairs behind the supplement's `d_k`) are split by a window
//!   border only when `c + 1 ≡ 0 (mod W)` unshifted and only when `c + 1 ≡ ⌊W/2⌋` shifted, so
//!   for `W ≥ 2` every such pair shares a window in one of any two consecutive layers;
//! - Swin's relative position bias over the 3D window, padding masked, `qkv` with bias.

use super::{WindowAttention, WindowAttentionConfig};
use crate::error::AttentionError;
use burn::config::Config;
use burn::tensor::backend::Backend;

/// Configuration of the TESA attention of every layer of a LinGen-style backbone.
#[derive(Config, Debug)]
pub struct TesaConfig {
    /// Channels (LinGen-4B: 2560).
    pub d_model: usize,
    /// Heads (LinGen-4B: 20).
    pub n_heads: usize,
    /// Window `[Wt, Wh, Ww]` in latent tokens; our default (see the module docs), not the paper's.
    #[config(default = "[8, 4, 4]")]
    pub window_size: [usize; 3],
    /// Bias on the `qkv` projection.
    #[config(default = true)]
    pub qkv_bias: bool,
}

impl TesaConfig {
    /// Shift of layer `layer`: none on even layers, `⌊W/2⌋` per axis on odd layers.
    pub fn shift_size(&self, layer: usize) -> [usize; 3] {
        if layer % 2 == 1 {
            self.window_size.map(|w| w / 2)
        } else {
            [0; 3]
        }
    }

    /// The window-attention configuration of layer `layer`.
    pub fn layer_config(&self, layer: usize) -> WindowAttentionConfig {
        WindowAttentionConfig::new(self.d_model, self.n_heads, self.window_size)
            .with_shift_size(self.shift_size(layer))
            .with_qkv_bias(self.qkv_bias)
    }

    /// Builds the TESA attention of layer `layer`.
    ///
    /// # Errors
    /// As [`WindowAttentionConfig::init`].
    pub fn init_layer<B: Backend>(
        &self,
        layer: usize,
        device: &B::Device,
    ) -> Result<WindowAttention<B>, AttentionError> {
        self.layer_config(layer).init(device)
    }
}
