//! Shifted-window region masks and padding masks (host-side), and the per-shape plan that holds
//! them on the device.
//!
//! Region mask: after the cyclic shift by `s` on an axis of padded size `P` and window `M`,
//! Swin (`SwinTransformerBlock`) and Video Swin (`compute_mask`) label the shifted positions by
//! the slices `[0, P−M)`, `[P−M, P−s)`, `[P−s, P)` per axis; two tokens of a window may attend to
//! each other only when every axis label agrees. Padding mask: the zeros appended to reach a
//! window multiple are masked as keys for every real query (Video Swin attends to them; we do
//! not). Padded queries may still see padded keys, so no row is ever fully masked; their outputs
//! are cropped away.

use super::bias::{index_tensor, relative_position_index};
use super::partition::{effective_window, padded_size};
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};
use std::collections::HashMap;

/// Host-side geometry of windowed attention over one input size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowGeometry {
    /// Input size `[T, H, W]` (2D: `T = 1`).
    pub input: [usize; 3],
    /// Window after Video Swin's `get_window_size` (see [`effective_window`]).
    pub window: [usize; 3],
    /// Shift after `get_window_size`.
    pub shift: [usize; 3],
    /// Input padded to a multiple of `window`.
    pub padded: [usize; 3],
}

impl WindowGeometry {
    /// Geometry of `window` / `shift` over `input`.
    ///
    /// # Panics
    /// If an input or window size is 0, or a shift is not below its window.
    pub fn new(input: [usize; 3], window: [usize; 3], shift: [usize; 3]) -> Self {
        for a in 0..3 {
            assert!(input[a] > 0, "input size {input:?} has a zero axis");
            assert!(
                window[a] > 0 && shift[a] < window[a],
                "need 0 <= shift < window on every axis, got window {window:?} shift {shift:?}"
            );
        }
        let (window, shift) = effective_window(input, window, shift);
        let padded = padded_size(input, window);
        Self {
            input,
            window,
            shift,
            padded,
        }
    }

    /// Windows per batch element, `nW`.
    pub fn num_windows(&self) -> usize {
        (0..3).map(|a| self.padded[a] / self.window[a]).product()
    }

    /// Tokens per window, `N`.
    pub fn window_len(&self) -> usize {
        self.window.iter().product()
    }

    /// Whether attention needs a mask (a shift or padding on some axis).
    pub fn needs_mask(&self) -> bool {
        self.shift.iter().any(|&s| s > 0) || self.padded != self.input
    }

    /// Swin's region label of a shifted coordinate `p` on axis `a`: 0, 1, 2 for the three slices
    /// (a single region when the axis is not shifted).
    pub fn region(&self, a: usize, p: usize) -> usize {
        let (n, m, s) = (self.padded[a], self.window[a], self.shift[a]);
        if s == 0 || p < n - m {
            0
        } else if p < n - s {
            1
        } else {
            2
        }
    }

    /// Whether the token at shifted coordinate `p` on axis `a` is padding: the shift moved input
    /// coordinate `(p + s) mod P` there.
    pub fn is_padding(&self, a: usize, p: usize) -> bool {
        (p + self.shift[a]) % self.padded[a] >= self.input[a]
    }

    /// The mask of every window, `true` = masked out, flattened `[nW, N, N]` in window order
    /// (row-major over the window grid; queries × keys). `None` if [`Self::needs_mask`] is false.
    pub fn window_mask(&self) -> Option<Vec<bool>> {
        if !self.needs_mask() {
            return None;
        }
        let grid: [usize; 3] = std::array::from_fn(|a| self.padded[a] / self.window[a]);
        let n = self.window_len();
        let mut out = Vec::with_capacity(self.num_windows() * n * n);
        for gt in 0..grid[0] {
            for gh in 0..grid[1] {
                for gw in 0..grid[2] {
                    let tokens = self.window_tokens([gt, gh, gw]);
                    for (ri, pi) in &tokens {
                        for (rj, pj) in &tokens {
                            out.push(ri != rj || (*pj && !*pi));
                        }
                    }
                }
            }
        }
        Some(out)
    }

    /// (region triple, is padding) of every token of window `g`, row-major.
    fn window_tokens(&self, g: [usize; 3]) -> Vec<([usize; 3], bool)> {
        let [mt, mh, mw] = self.window;
        let mut out = Vec::with_capacity(self.window_len());
        for t in 0..mt {
            for h in 0..mh {
                for w in 0..mw {
                    let p = [g[0] * mt + t, g[1] * mh + h, g[2] * mw + w];
                    let region = std::array::from_fn(|a| self.region(a, p[a]));
                    let pad = (0..3).any(|a| self.is_padding(a, p[a]));
                    out.push((region, pad));
                }
            }
        }
        out
    }
}

/// Device tensors for one geometry: the mask and the bias index, built once and reused.
///
/// Build with [`WindowPlan::new`] or through a [`WindowPlanCache`].
#[derive(Debug, Clone)]
pub struct WindowPlan<B: Backend> {
    /// The host-side geometry.
    pub geometry: WindowGeometry,
    /// `[nW, N, N]`, `true` = masked; `None` when no shift and no padding.
    pub mask: Option<Tensor<B, 3, Bool>>,
    /// `relative_position_index` of the effective window into the configured table, `[N·N]`.
    pub bias_index: Tensor<B, 1, Int>,
}

impl<B: Backend> WindowPlan<B> {
    /// Plan for `input` with the configured `window` / `shift` (the bias table is sized for
    /// `window`).
    ///
    /// # Panics
    /// As [`WindowGeometry::new`].
    pub fn new(
        input: [usize; 3],
        window: [usize; 3],
        shift: [usize; 3],
        device: &B::Device,
    ) -> Self {
        let geometry = WindowGeometry::new(input, window, shift);
        let n = geometry.window_len();
        let mask = geometry
            .window_mask()
            .map(|m| Tensor::from_data(TensorData::new(m, [geometry.num_windows(), n, n]), device));
        let bias_index = index_tensor(&relative_position_index(geometry.window, window), device);
        Self {
            geometry,
            mask,
            bias_index,
        }
    }
}

/// `(input, window, shift)`.
type PlanKey = ([usize; 3], [usize; 3], [usize; 3]);

/// Plans keyed by `(input, window, shift)`.
///
/// Swin builds its shift mask once per block for a fixed resolution and Video Swin once per
/// stage per forward; video generation sees a few sizes repeatedly, so the caller keeps one cache
/// (e.g. per model) and passes it to the `*_cached` forwards. Entries are never evicted: the
/// memory is `nW·N²` booleans plus `N²` indices per distinct size. Plans live on the device of
/// their first request; use one cache per device.
#[derive(Debug, Clone)]
pub struct WindowPlanCache<B: Backend> {
    plans: HashMap<PlanKey, WindowPlan<B>>,
}

impl<B: Backend> Default for WindowPlanCache<B> {
    fn default() -> Self {
        Self {
            plans: HashMap::new(),
        }
    }
}

impl<B: Backend> WindowPlanCache<B> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The plan for this key, built on first use.
    ///
    /// # Panics
    /// As [`WindowGeometry::new`].
    pub fn get(
        &mut self,
        input: [usize; 3],
        window: [usize; 3],
        shift: [usize; 3],
        device: &B::Device,
    ) -> &WindowPlan<B> {
        self.plans
            .entry((input, window, shift))
            .or_insert_with(|| WindowPlan::new(input, window, shift, device))
    }

    /// Number of cached plans.
    pub fn len(&self) -> usize {
        self.plans.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }
}
