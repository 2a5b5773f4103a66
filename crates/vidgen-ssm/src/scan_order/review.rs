//! Review tokens (LinGen main paper, MA-branch; ablated in the supplement, Fig. 6): a short
//! prefix that summarises the whole video, so that a causal scan sees global context before the
//! first video token instead of only after it has travelled the whole sequence.
//!
//! The paper's exact construction is not in our sources. What we implement, and why:
//! - the prefix is the token grid **average-pooled** over non-overlapping `pool_t × pool_h ×
//!   pool_w` windows (windows at the far edge may be partial and average what they hold), in
//!   raster order of the pooled grid `⌈T/pool_t⌉ × ⌈H/pool_h⌉ × ⌈W/pool_w⌉`. Pooling (rather
//!   than a strided subsample) lets every token contribute to the summary, costs no parameters,
//!   and keeps the prefix short: the defaults `4 × 8 × 8` give 128 review tokens for a
//!   32 × 32 × 32 grid (0.4 % extra length);
//! - it is prepended before the (scan-ordered) video tokens and the first `R` outputs are dropped
//!   after the SSM, so the block's output has the original length;
//! - it is computed from the raster-order input, independent of the layer's scan order.
//!
//! In a bidirectional block that reverses the whole sequence, the reversed scan meets the review
//! tokens last; prepend to each direction separately if both should see them first.

use super::ScanOrder;
use super::grid_len;
use crate::error::{SsmError, positive};
use burn::config::Config;
use burn::tensor::{Tensor, TensorData, backend::Backend};

/// Configuration of [`ReviewTokens`]: pooling window per axis.
#[derive(Config, Debug)]
pub struct ReviewTokensConfig {
    /// Frames averaged into one review token.
    #[config(default = 4)]
    pub pool_t: usize,
    /// Rows averaged into one review token.
    #[config(default = 8)]
    pub pool_h: usize,
    /// Columns averaged into one review token.
    #[config(default = 8)]
    pub pool_w: usize,
}

impl ReviewTokensConfig {
    /// Builds the review-token builder.
    ///
    /// # Errors
    /// [`SsmError::Config`] (`ConfigError::Zero`) naming `pool_t`, `pool_h` or `pool_w`.
    pub fn init(&self) -> Result<ReviewTokens, SsmError> {
        positive("pool_t", self.pool_t)?;
        positive("pool_h", self.pool_h)?;
        positive("pool_w", self.pool_w)?;
        Ok(ReviewTokens {
            pool: [self.pool_t, self.pool_h, self.pool_w],
        })
    }
}

/// Builds, prepends and strips the review-token prefix (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReviewTokens {
    pool: [usize; 3],
}

impl ReviewTokens {
    /// Pooling window `[pool_t, pool_h, pool_w]`.
    pub fn pool(&self) -> [usize; 3] {
        self.pool
    }

    /// The pooled grid `[⌈T/pool_t⌉, ⌈H/pool_h⌉, ⌈W/pool_w⌉]`.
    pub fn pooled_grid(&self, grid: [usize; 3]) -> [usize; 3] {
        [0, 1, 2].map(|a| grid[a].div_ceil(self.pool[a]))
    }

    /// Number of review tokens `R` for `grid`.
    pub fn count(&self, grid: [usize; 3]) -> usize {
        grid_len(self.pooled_grid(grid))
    }

    /// The review tokens: window means of the raster-order tokens, axis by axis (the mean over
    /// a box is the mean of per-axis means, also for partial boxes).
    ///
    /// # Shapes
    /// `x`: `[B, T·H·W, C]` in raster order → `[B, R, C]`
    ///
    /// # Panics
    /// If `x.dims()[1] != T·H·W`.
    pub fn summarize<B: Backend>(&self, x: Tensor<B, 3>, grid: [usize; 3]) -> Tensor<B, 3> {
        let [b, l, c] = x.dims();
        check_len(l, grid);
        let mut v = x.reshape([b, grid[0], grid[1], grid[2], c]);
        for axis in 0..3 {
            v = mean_windows(v, axis + 1, self.pool[axis]);
        }
        v.reshape([b, self.count(grid), c])
    }

    /// Reference twin of [`summarize`](Self::summarize): explicit loops over windows on the
    /// host, accumulating in f64.
    ///
    /// # Shapes
    /// `x`: `[B, T·H·W, C]` → `[B, R, C]`
    ///
    /// # Panics
    /// If `x.dims()[1] != T·H·W`.
    pub fn summarize_reference<B: Backend>(
        &self,
        x: Tensor<B, 3>,
        grid: [usize; 3],
    ) -> Tensor<B, 3> {
        let [b, l, c] = x.dims();
        check_len(l, grid);
        let device = x.device();
        let values = x.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        let pooled = self.pooled_grid(grid);
        let mut out = Vec::with_capacity(b * self.count(grid) * c);
        for batch in 0..b {
            for pt in 0..pooled[0] {
                for ph in 0..pooled[1] {
                    for pw in 0..pooled[2] {
                        let start = [pt, ph, pw];
                        let range = |a: usize| {
                            let lo = start[a] * self.pool[a];
                            lo..(lo + self.pool[a]).min(grid[a])
                        };
                        let mut acc = vec![0.0f64; c];
                        let mut n = 0usize;
                        for t in range(0) {
                            for h in range(1) {
                                for w in range(2) {
                                    let token = (t * grid[1] + h) * grid[2] + w;
                                    let base = (batch * l + token) * c;
                                    acc.iter_mut()
                                        .zip(&values[base..base + c])
                                        .for_each(|(s, &v)| *s += v as f64);
                                    n += 1;
                                }
                            }
                        }
                        out.extend(acc.iter().map(|s| (s / n as f64) as f32));
                    }
                }
            }
        }
        Tensor::from_data(TensorData::new(out, [b, self.count(grid), c]), &device)
    }

    /// Concatenates `review` before `tokens` along the sequence.
    ///
    /// # Shapes
    /// `tokens`: `[B, L, C]`, `review`: `[B, R, C]` → `[B, R + L, C]`
    pub fn prepend<B: Backend>(review: Tensor<B, 3>, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        Tensor::cat(vec![review, tokens], 1)
    }

    /// Drops the first `self.count(grid)` positions (the review outputs).
    ///
    /// # Shapes
    /// `y`: `[B, R + T·H·W, C]` → `[B, T·H·W, C]`
    ///
    /// # Panics
    /// If `y.dims()[1] != R + T·H·W`.
    pub fn strip<B: Backend>(&self, y: Tensor<B, 3>, grid: [usize; 3]) -> Tensor<B, 3> {
        let r = self.count(grid);
        let l = y.dims()[1];
        assert_eq!(
            l,
            r + grid_len(grid),
            "review strip: sequence length {l} is not {r} review + {} video tokens (grid {grid:?})",
            grid_len(grid)
        );
        y.narrow(1, r, l - r)
    }

    /// One layer's input: review tokens of `x`, then `x` in `order`.
    ///
    /// # Shapes
    /// `x`: `[B, T·H·W, C]` in raster order → `[B, R + T·H·W, C]`
    ///
    /// # Panics
    /// If `x.dims()[1] != T·H·W`.
    pub fn scan_with_review<B: Backend>(
        &self,
        x: Tensor<B, 3>,
        grid: [usize; 3],
        order: ScanOrder,
    ) -> Tensor<B, 3> {
        let review = self.summarize(x.clone(), grid);
        Self::prepend(review, order.apply(x, grid))
    }

    /// Inverse of [`scan_with_review`](Self::scan_with_review) on a layer's output: strips the
    /// review outputs and restores raster order.
    ///
    /// # Shapes
    /// `y`: `[B, R + T·H·W, C]` in scan order → `[B, T·H·W, C]` in raster order
    ///
    /// # Panics
    /// If `y.dims()[1] != R + T·H·W`.
    pub fn unscan<B: Backend>(
        &self,
        y: Tensor<B, 3>,
        grid: [usize; 3],
        order: ScanOrder,
    ) -> Tensor<B, 3> {
        order.restore(self.strip(y, grid), grid)
    }
}

fn check_len(l: usize, grid: [usize; 3]) {
    assert_eq!(
        l,
        grid_len(grid),
        "review tokens: sequence length {l} differs from the grid {grid:?}'s {} tokens",
        grid_len(grid)
    );
}

/// Means over consecutive windows of `p` along `dim`, the last window partial if `p` does not
/// divide the size.
fn mean_windows<B: Backend>(x: Tensor<B, 5>, dim: usize, p: usize) -> Tensor<B, 5> {
    let dims = x.dims();
    let n = dims[dim];
    if p == 1 {
        return x;
    }
    let (full, rem) = (n / p, n % p);
    let mut parts = Vec::with_capacity(2);
    if full > 0 {
        let mut split = [0usize; 6];
        for (i, s) in split.iter_mut().enumerate() {
            *s = match i.cmp(&dim) {
                std::cmp::Ordering::Less => dims[i],
                std::cmp::Ordering::Equal => full,
                std::cmp::Ordering::Greater if i == dim + 1 => p,
                std::cmp::Ordering::Greater => dims[i - 1],
            };
        }
        let mut pooled = dims;
        pooled[dim] = full;
        let body = x.clone().narrow(dim, 0, full * p).reshape(split);
        parts.push(body.mean_dim(dim + 1).reshape(pooled));
    }
    if rem > 0 {
        parts.push(x.narrow(dim, full * p, rem).mean_dim(dim));
    }
    Tensor::cat(parts, dim)
}
