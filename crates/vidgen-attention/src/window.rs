//! Window attention: Swin (Liu et al. 2021) in 2D, Video Swin (Liu et al. 2022) in 3D, shifted
//! windows, relative position bias, and LinGen's TEmporal Swin Attention ([`tesa`]).
//!
//! One module serves both ranks: a 2D input `[B, H, W, C]` runs as a 3D input `[B, 1, H, W, C]`
//! with window `[1, Wh, Ww]` and shift `[0, sh, sw]` (partition, masks and the bias index reduce
//! exactly to Swin's). The forward (W-MSA / SW-MSA, Swin eq. 4):
//!
//! 1. pad the input with zeros at the end of each axis to a window multiple;
//! 2. cyclic shift `x ← roll(x, −s)` (Swin sec. 3.2, "efficient batch computation");
//! 3. partition into windows of `N = Wt·Wh·Ww` tokens;
//! 4. per window and head, `softmax(Q·Kᵀ/√d + Bias + Mask)·V`, with `Bias` from the relative
//!    position table and `Mask` hiding tokens of other shifted regions and padded keys;
//! 5. `proj`, reverse the partition, shift back, crop the padding.
//!
//! Divergences from the references, all deliberate: padded tokens are masked as keys (Video Swin
//! lets real queries attend to them, since after `qkv` their keys are the bias, not 0); masks are
//! boolean (`−∞`) instead of the additive `−100`, which differs by under `e^−100` relative; when
//! `get_window_size` shrinks a window to a small input the bias index is rebuilt for the smaller
//! window instead of Video Swin's `index[:N, :N]` slice (see [`relative_position_index`]).
//!
//! Masks and bias indices are host-built per input size; [`WindowPlanCache`] keeps them.
//!
//! ```
//! use burn::tensor::{Distribution, Tensor};
//! use vidgen_attention::window::{WindowAttentionConfig, WindowPlanCache};
//! type B = burn::backend::Flex;
//! let device = Default::default();
//! // Swin SW-MSA: window 4×4 shifted by 2, on a 6×10 map (padded to 8×12, padding masked).
//! let attn = WindowAttentionConfig::new_2d(8, 2, [4, 4])
//!     .with_shift_2d([2, 2])
//!     .init::<B>(&device)
//!     .unwrap();
//! let x = Tensor::<B, 4>::random([1, 6, 10, 8], Distribution::Normal(0.0, 1.0), &device);
//! let mut cache = WindowPlanCache::new();
//! let y = attn.forward_2d_cached(x.clone(), &mut cache);
//! assert_eq!(y.dims(), [1, 6, 10, 8]);
//! let (reference, _) = attn.forward_reference(x.unsqueeze_dim(1));
//! let err = (y - reference.squeeze_dim(1)).abs().max().into_scalar();
//! assert!(err < 1e-4);
//! ```

mod bias;
mod mask;
mod partition;
pub mod tesa;

pub use bias::{bias_table_len, gather_bias, inflate_bias_table_2d_to_3d, relative_position_index};
pub use mask::{WindowGeometry, WindowPlan, WindowPlanCache};
pub use partition::{
    effective_window, pad_axis, padded_size, roll_left, roll_right, window_partition_2d,
    window_partition_3d, window_reverse_2d, window_reverse_3d,
};
pub use tesa::TesaConfig;

use crate::blocked::{MemoryBudget, memory_safe_attention};
use crate::error::ConfigError;
use crate::error::{AttentionError, divisible, positive};
use bias::{index_tensor, window_coords};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};
use vidgen_nn::layout::{contiguous, permute_contiguous};

/// Configuration of [`WindowAttention`]. Names follow Swin's `WindowAttention(dim, window_size,
/// num_heads, qkv_bias, qk_scale)` under this workspace's spellings.
#[derive(Config, Debug)]
pub struct WindowAttentionConfig {
    /// Channels `C` (Swin: `dim`).
    pub d_model: usize,
    /// Heads (Swin: `num_heads`); must divide `d_model`.
    pub n_heads: usize,
    /// Window `[Wt, Wh, Ww]`; 2D Swin uses `[1, Wh, Ww]` (see [`Self::new_2d`]).
    pub window_size: [usize; 3],
    /// Cyclic shift per axis, `0 ≤ shift < window` (Swin SW-MSA: half the window; W-MSA: 0).
    #[config(default = "[0, 0, 0]")]
    pub shift_size: [usize; 3],
    /// Bias on the `qkv` projection (Swin default: true).
    #[config(default = true)]
    pub qkv_bias: bool,
    /// Score scale; `None` means `head_dim^−1/2` (Swin's `qk_scale`).
    #[config(default = "None")]
    pub qk_scale: Option<f64>,
}

impl WindowAttentionConfig {
    /// A 2D Swin configuration: window `[1, Wh, Ww]`, no shift.
    pub fn new_2d(d_model: usize, n_heads: usize, window_size: [usize; 2]) -> Self {
        Self::new(d_model, n_heads, [1, window_size[0], window_size[1]])
    }

    /// Sets a 2D shift `[sh, sw]` (temporal shift 0).
    pub fn with_shift_2d(self, shift_size: [usize; 2]) -> Self {
        self.with_shift_size([0, shift_size[0], shift_size[1]])
    }

    /// Builds the layer; the bias table is drawn from `N(0, 0.02²)` (Swin: truncated normal,
    /// std 0.02), the linears with Burn's defaults.
    ///
    /// # Errors
    /// [`AttentionError::Config`] (`ConfigError::Zero`) naming `d_model`, `n_heads` or `window_size`;
    /// [`AttentionError::Config`] (`ConfigError::NotDivisible`) if `n_heads` does not divide `d_model`;
    /// [`AttentionError::Config`] (`ConfigError::OutOfDomain`) naming `shift_size` if a shift is not below its window,
    /// or `qk_scale` if it is not positive.
    pub fn init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<WindowAttention<B>, AttentionError> {
        positive("d_model", self.d_model)?;
        positive("n_heads", self.n_heads)?;
        divisible("d_model", self.d_model, self.n_heads, Some("n_heads"))?;
        for (a, (&w, &s)) in self.window_size.iter().zip(&self.shift_size).enumerate() {
            positive("window_size", w)?;
            if s >= w {
                return Err(AttentionError::Config(ConfigError::OutOfDomain {
                    field: "shift_size",
                    value: s as f64,
                    requirement: ["< window_size[0]", "< window_size[1]", "< window_size[2]"][a],
                }));
            }
        }
        if let Some(scale) = self.qk_scale {
            crate::error::positive_f64("qk_scale", scale)?;
        }
        let head_dim = self.d_model / self.n_heads;
        let rows = bias_table_len(self.window_size);
        let n = self.window_size.iter().product::<usize>();
        let index = relative_position_index(self.window_size, self.window_size);
        Ok(WindowAttention {
            qkv: LinearConfig::new(self.d_model, 3 * self.d_model)
                .with_bias(self.qkv_bias)
                .init(device),
            proj: LinearConfig::new(self.d_model, self.d_model).init(device),
            relative_position_bias_table: Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([rows, self.n_heads], device),
            relative_position_index: Tensor::from_data(TensorData::new(index, [n, n]), device),
            n_heads: self.n_heads,
            window_size: self.window_size,
            shift_size: self.shift_size,
            scale: self.qk_scale.unwrap_or(1.0 / (head_dim as f64).sqrt()),
        })
    }
}

/// Multi-head self-attention inside (shifted) windows with a relative position bias.
///
/// Keys as Swin's / Video Swin's `WindowAttention(3D)`: `qkv`, `proj`,
/// `relative_position_bias_table` (`[(2Wt−1)(2Wh−1)(2Ww−1), n_heads]`, 2D: `Wt = 1`) and the
/// non-persistent `relative_position_index` (`[N, N]`, not saved in records).
#[derive(Module, Debug)]
pub struct WindowAttention<B: Backend> {
    /// `d_model → 3·d_model`, output laid out `[3, n_heads, head_dim]` as in Swin.
    pub qkv: Linear<B>,
    /// `d_model → d_model`.
    pub proj: Linear<B>,
    /// Learnable bias per relative offset and head.
    pub relative_position_bias_table: Param<Tensor<B, 2>>,
    /// Row of the table for each token pair of a full window (non-persistent).
    pub relative_position_index: Tensor<B, 2, Int>,
    /// Heads.
    pub n_heads: usize,
    /// Configured window `[Wt, Wh, Ww]`.
    pub window_size: [usize; 3],
    /// Configured shift `[st, sh, sw]`.
    pub shift_size: [usize; 3],
    /// Score scale.
    pub scale: f64,
}

impl<B: Backend> WindowAttention<B> {
    /// The plan (masks, bias index) for an input of size `[T, H, W]`.
    pub fn plan(&self, input: [usize; 3], device: &B::Device) -> WindowPlan<B> {
        WindowPlan::new(input, self.window_size, self.shift_size, device)
    }

    /// Shifted-window attention over a video, building the plan for this size.
    ///
    /// # Shapes
    /// `x`: `[B, T, H, W, d_model]` → same.
    ///
    /// # Panics
    /// If the channel count is not `d_model` or an axis is 0.
    pub fn forward_3d(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [_, t, h, w, _] = x.dims();
        let plan = self.plan([t, h, w], &x.device());
        self.forward_planned(x, &plan)
    }

    /// [`Self::forward_3d`] with the plan taken from (or added to) `cache`.
    pub fn forward_3d_cached(
        &self,
        x: Tensor<B, 5>,
        cache: &mut WindowPlanCache<B>,
    ) -> Tensor<B, 5> {
        let [_, t, h, w, _] = x.dims();
        let plan = cache.get([t, h, w], self.window_size, self.shift_size, &x.device());
        self.forward_planned(x, plan)
    }

    /// Shifted-window attention over an image (`T = 1`).
    ///
    /// # Shapes
    /// `x`: `[B, H, W, d_model]` → same.
    pub fn forward_2d(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_3d(x.unsqueeze_dim(1)).squeeze_dim(1)
    }

    /// [`Self::forward_2d`] with a plan cache.
    pub fn forward_2d_cached(
        &self,
        x: Tensor<B, 4>,
        cache: &mut WindowPlanCache<B>,
    ) -> Tensor<B, 4> {
        self.forward_3d_cached(x.unsqueeze_dim(1), cache)
            .squeeze_dim(1)
    }

    /// Attention over a token sequence flattened row-major from a `[T, H, W]` grid.
    ///
    /// # Shapes
    /// `x`: `[B, T·H·W, d_model]` → same.
    ///
    /// # Panics
    /// If the sequence length is not `T·H·W`.
    pub fn forward_sequence(
        &self,
        x: Tensor<B, 3>,
        grid: [usize; 3],
        cache: &mut WindowPlanCache<B>,
    ) -> Tensor<B, 3> {
        let [b, l, c] = x.dims();
        assert_eq!(
            l,
            grid.iter().product::<usize>(),
            "sequence length {l} != grid {grid:?}"
        );
        let y = self.forward_3d_cached(x.reshape([b, grid[0], grid[1], grid[2], c]), cache);
        y.reshape([b, l, c])
    }

    /// The full pipeline for a prepared plan (pad, shift, partition, attend, reverse, crop).
    ///
    /// # Panics
    /// If `x`'s size is not the plan's input.
    pub fn forward_planned(&self, x: Tensor<B, 5>, plan: &WindowPlan<B>) -> Tensor<B, 5> {
        let g = &plan.geometry;
        let [b, t, h, w, c] = x.dims();
        assert_eq!([t, h, w], g.input, "input size does not match the plan");
        let mut x = x;
        for a in 0..3 {
            x = roll_left(pad_axis(x, a + 1, g.padded[a]), a + 1, g.shift[a]);
        }
        let windows = window_partition_3d(x, g.window);
        let out = self.forward_windows(windows, plan.bias_index.clone(), plan.mask.clone());
        let mut y = window_reverse_3d(out, g.window, g.padded);
        for a in 0..3 {
            y = roll_right(y, a + 1, g.shift[a]).narrow(a + 1, 0, g.input[a]);
        }
        // Cropped views are copied once here rather than by every consumer.
        let y = if g.padded == g.input {
            y
        } else {
            contiguous(y)
        };
        debug_assert_eq!(y.dims(), [b, t, h, w, c]);
        y
    }

    /// Swin's `WindowAttention.forward` on partitioned windows, through Burn's fused attention
    /// with the bias and the mask as one additive `attn_bias` (`−∞` where masked: Swin's
    /// `attn + mask` with `−∞` for its `−100`; no row is fully masked, since every token sees
    /// itself).
    ///
    /// # Shapes
    /// `windows`: `[B·nW, N, d_model]`, `bias_index`: `[N·N]`, `mask`: `[nW, N, N]`
    /// (`true` = masked) → `[B·nW, N, d_model]`.
    ///
    /// # Panics
    /// If `nW` does not divide the window batch.
    pub fn forward_windows(
        &self,
        windows: Tensor<B, 3>,
        bias_index: Tensor<B, 1, Int>,
        mask: Option<Tensor<B, 3, Bool>>,
    ) -> Tensor<B, 3> {
        let [bw, n, c] = windows.dims();
        let windows_device = windows.device();
        let [q, k, v] = self.split_heads(self.qkv.forward(windows));
        let nh = self.n_heads;
        let bias =
            gather_bias(self.relative_position_bias_table.val(), bias_index).unsqueeze::<4>(); // [1, nh, N, N]
        // One additive tensor per window, laid out for the whole window batch (`contiguous`:
        // row copies on flex, so the fused kernel reads it in place).
        let bias = match mask {
            Some(m) => {
                let nw = m.dims()[0];
                assert!(
                    bw.is_multiple_of(nw),
                    "{nw} mask windows do not divide {bw} windows"
                );
                let blocked = Tensor::<B, 3>::zeros([nw, n, n], &windows_device)
                    .mask_fill(m, f32::NEG_INFINITY)
                    .unsqueeze_dim::<4>(1); // [nW, 1, N, N]
                contiguous(
                    (bias + blocked)
                        .unsqueeze::<5>()
                        .expand([bw / nw, nw, nh, n, n]),
                )
                .reshape([bw, nh, n, n])
            }
            None => contiguous(bias.expand([bw, nh, n, n])),
        };
        let options = AttentionModuleOptions {
            scale: Some(self.scale),
            ..Default::default()
        };
        let out =
            memory_safe_attention(q, k, v, None, Some(bias), options, &MemoryBudget::default());
        self.proj
            .forward(permute_contiguous(out, [0, 2, 1, 3]).reshape([bw, n, c]))
    }

    /// `[.., L, 3C]` → `q, k, v` each `[.., n_heads, L, head_dim]` (Swin's
    /// `reshape(B_, N, 3, nH, C/nH).permute(2, 0, 3, 1, 4)`).
    fn split_heads(&self, qkv: Tensor<B, 3>) -> [Tensor<B, 4>; 3] {
        let [b, l, c3] = qkv.dims();
        let hd = c3 / 3 / self.n_heads;
        let qkv = qkv.reshape([b, l, 3, self.n_heads, hd]);
        std::array::from_fn(|i| {
            permute_contiguous(
                qkv.clone()
                    .narrow(2, i, 1)
                    .reshape([b, l, self.n_heads, hd]),
                [0, 2, 1, 3],
            )
        })
    }

    /// Readable twin of [`Self::forward_3d`]: dense attention over all padded tokens at once (no
    /// partition, no roll), with a host-built `[L, L]` pattern allowing a pair only when both
    /// tokens fall in the same shifted window and region and the key is real (or the query is
    /// padding); the bias comes from the tokens' offsets inside their shifted window.
    ///
    /// Returns the output and the attention weights over the zero-padded grid in its original
    /// (unshifted) row-major order.
    ///
    /// # Shapes
    /// `x`: `[B, T, H, W, C]` → (`[B, T, H, W, C]`, `[B, n_heads, L, L]`) with `L = Tp·Hp·Wp`.
    pub fn forward_reference(&self, x: Tensor<B, 5>) -> (Tensor<B, 5>, Tensor<B, 4>) {
        let [b, t, h, w, c] = x.dims();
        let device = x.device();
        let g = WindowGeometry::new([t, h, w], self.window_size, self.shift_size);
        let mut xp = x;
        for a in 0..3 {
            xp = pad_axis(xp, a + 1, g.padded[a]);
        }
        let l = g.padded.iter().product::<usize>();
        let (allowed, index) = dense_pattern(&g, self.window_size);
        let [q, k, v] = self.split_heads(self.qkv.forward(xp.reshape([b, l, c])));
        let nh = self.n_heads;
        let table = self.relative_position_bias_table.val();
        let bias = gather_bias(table, index_tensor(&index, &device)).unsqueeze::<4>();
        let blocked: Tensor<B, 2, Bool> =
            Tensor::from_data(TensorData::new(allowed, [l, l]), &device).bool_not();
        let scores = q.matmul(k.swap_dims(2, 3)) * self.scale + bias;
        let scores = scores.mask_fill(
            blocked.unsqueeze::<4>().expand([b, nh, l, l]),
            f32::NEG_INFINITY,
        );
        let weights = softmax(scores, 3);
        let out = weights.clone().matmul(v).swap_dims(1, 2).reshape([b, l, c]);
        let [tp, hp, wp] = g.padded;
        let y = self
            .proj
            .forward(out)
            .reshape([b, tp, hp, wp, c])
            .narrow(1, 0, t)
            .narrow(2, 0, h)
            .narrow(3, 0, w);
        (y, weights)
    }
}

/// Host-side `[L, L]` allowed pattern and bias index over the padded grid (row-major, unshifted
/// coordinates) for [`WindowAttention::forward_reference`]. A padded coordinate `c` sits at
/// shifted position `p = (c − s) mod P`; its window is `p / M`, its offset in the window `p mod M`.
fn dense_pattern(g: &WindowGeometry, table_window: [usize; 3]) -> (Vec<bool>, Vec<i64>) {
    let full = window_coords(g.padded);
    let strides = [
        ((2 * table_window[1] - 1) * (2 * table_window[2] - 1)) as i64,
        (2 * table_window[2] - 1) as i64,
        1,
    ];
    let info: Vec<_> = full
        .iter()
        .map(|c| {
            let p: [usize; 3] =
                std::array::from_fn(|a| (c[a] as usize + g.padded[a] - g.shift[a]) % g.padded[a]);
            let win: [usize; 3] = std::array::from_fn(|a| p[a] / g.window[a]);
            let local: [i64; 3] = std::array::from_fn(|a| (p[a] % g.window[a]) as i64);
            let region: [usize; 3] = std::array::from_fn(|a| g.region(a, p[a]));
            let pad = (0..3).any(|a| c[a] as usize >= g.input[a]);
            (win, local, region, pad)
        })
        .collect();
    let mut allowed = Vec::with_capacity(full.len() * full.len());
    let mut index = Vec::with_capacity(full.len() * full.len());
    for (wi, li, ri, pi) in &info {
        for (wj, lj, rj, pj) in &info {
            allowed.push(wi == wj && ri == rj && (!pj || *pi));
            index.push(if wi == wj {
                (0..3)
                    .map(|a| (li[a] - lj[a] + table_window[a] as i64 - 1) * strides[a])
                    .sum()
            } else {
                0
            });
        }
    }
    (allowed, index)
}
