//! FLOPs of a [`LinGenDit`](super::LinGenDit) forward, per component, counted as LinGen counts
//! them (supplement sec. E.2; one multiply-add = 2 FLOPs; element-wise ops, norms and the
//! per-sample adaLN/timestep MLPs omitted). With `N` video tokens, `R` review tokens, `d` =
//! `d_model`, text of `L` tokens of width `d_c`, SwiGLU width `F`, per block:
//!
//! ```text
//! MA    2·mamba2_flops(N + R)  (+ 4·N·d² for a ConcatLinear merge)     two independent directions
//! TE    8·N_p·d² + 4·N_p·N_w·d                                          N_p padded tokens, N_w per window
//! cross 4·N·d² + 4·L·d_c·d + 4·N·L·d
//! MLP   6·N·d·F
//! ```
//!
//! plus the patch embedding and the final linear, `2·2·N·(pt·ph·pw·C)·d`. Every term is affine in
//! `N` (for grids whose sides are multiples of the TESA window and review pool), which is the
//! linear complexity LinGen claims; a full-attention DiT adds `4·N²·d` per block
//! ([`vidgen_ssm::attention_flops`]).

use super::LinGenConfig;
use vidgen_attention::WindowGeometry;
use vidgen_ssm::{BiMerge, mamba2_flops};

/// FLOPs of one forward pass, summed over the blocks, per component.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinGenFlops {
    /// MA-branches (both Mamba2 directions, review tokens included, merge).
    pub mamba: f64,
    /// TE-branches (TESA: projections and in-window attention over the padded grid).
    pub tesa: f64,
    /// Cross-attention to the text.
    pub cross_attention: f64,
    /// SwiGLU feed-forwards.
    pub mlp: f64,
    /// Patch embedding and final linear.
    pub embed: f64,
}

impl LinGenFlops {
    /// Sum of all components.
    pub fn total(&self) -> f64 {
        self.mamba + self.tesa + self.cross_attention + self.mlp + self.embed
    }
}

impl LinGenConfig {
    /// FLOPs of one forward over a token grid `[t, h, w]` with `text_len` text tokens, batch 1
    /// (see the [module docs](self) for the formulas).
    ///
    /// ```
    /// use vidgen_models::lingen::LinGenConfig;
    /// use vidgen_ssm::attention_flops;
    /// let cfg = LinGenConfig::new(16, 2560, 32, 20, 4096).with_d_state(128);
    /// let grid = [64, 64, 64]; // 262144 tokens, a long high-resolution video
    /// let n = grid.iter().product::<usize>();
    /// let lin = cfg.flops(grid, 128);
    /// // A DiT of the same size spends attention_flops(n, d) per block on self-attention:
    /// // over 10× the MA + TE branches here (LinGen reports up to 15× fewer FLOPs overall).
    /// let dit_mixers = 32.0 * attention_flops(n, 2560);
    /// assert!(dit_mixers > 10.0 * (lin.mamba + lin.tesa));
    /// ```
    pub fn flops(&self, grid: [usize; 3], text_len: usize) -> LinGenFlops {
        let n = grid.iter().product::<usize>();
        let (nf, d, lt) = (n as f64, self.d_model as f64, text_len as f64);
        let r = self.review_pool.map_or(0, |p| {
            (0..3).map(|a| grid[a].div_ceil(p[a])).product::<usize>()
        });
        let depth = self.depth as f64;
        let bi = 2.0
            * mamba2_flops(
                n + r,
                self.d_model,
                self.expand,
                self.d_state,
                self.mamba_head_dim,
                self.d_conv,
            );
        let merge = if self.bi_merge == BiMerge::ConcatLinear {
            2.0 * nf * 2.0 * d * d
        } else {
            0.0
        };
        let tesa: f64 = (0..self.depth)
            .map(|k| {
                let cfg = self.tesa_config();
                let g = WindowGeometry::new(grid, cfg.window_size, cfg.shift_size(k));
                let np = g.padded.iter().product::<usize>() as f64;
                8.0 * np * d * d + 4.0 * np * g.window_len() as f64 * d
            })
            .sum();
        let cross = 4.0 * nf * d * d + 4.0 * lt * self.d_text as f64 * d + 4.0 * nf * lt * d;
        let patch = (self.patch_size.iter().product::<usize>() * self.in_channels) as f64;
        LinGenFlops {
            mamba: depth * (bi + merge),
            tesa,
            cross_attention: depth * cross,
            mlp: depth * 6.0 * nf * d * self.mlp_hidden() as f64,
            embed: 4.0 * nf * patch * d,
        }
    }
}
