//! FLOPs of (bidirectional) Mamba2 and of full self-attention per layer, as counted by LinGen
//! (supplement sec. E.2, eqs. 1–3). One multiply-add counts as 2 FLOPs. Results are `f64`:
//! the formulas contain the fraction `2/d_h`, and `f64` holds integer counts exactly up to
//! 2⁵³ ≈ 9·10¹⁵ (relative error 1e-16 beyond).
//!
//! Symbols: `N` tokens, `d` = `d_model`, `E` = `expand`, `d_s` = `d_state`, `d_h` = `head_dim`
//! (Mamba2's default 64), `K` = `d_conv` (1D convolution kernel size).
//!
//! The supplement:
//!
//! ```text
//! C_bimamba = (6 + 2/d_h)·E·N·d² + 4·N·d_s·d + O(N·d)      (1)
//! C_conv    = 2·E·K·(N + K − 1)·d                           (2)
//! C_SSM     = 4·E·N·d_s·d + 2·E·N·d                         (3)
//! "O(Nd) includes the FLOPs cost of 1D convolution and the SSM block [...]. The above FLOPs
//!  should be doubled when the module is bidirectional."
//! ```
//!
//! The first two terms of (1) are exactly Mamba2's projections with one group: `in_proj`
//! `d → 2Ed + 2d_s + Ed/d_h` (z, x, B, C, dt) costs `2Nd(2Ed + 2d_s + Ed/d_h)` and `out_proj`
//! `Ed → d` costs `2NEd²`. The sentence after (3) is ambiguous, since (1) is already named
//! "bimamba". Our reading ([`bimamba2_flops`]): the bidirectional module shares its projections
//! (counted once, as in (1)) and runs the convolution and the SSM once per direction, so
//! `O(N·d) = 2·(C_conv + C_SSM)` — the Vision-Mamba style bidirectional block. A block made of
//! two independent Mamba2 layers (this crate's `bidirectional` module) costs
//! `2 ·` [`mamba2_flops`] plus its merge.
//!
//! Full attention ([`attention_flops`]) is not in the supplement; we use the standard count of
//! the main paper's comparison: Q, K, V and output projections `8·N·d²`, scores `Q·Kᵀ` and
//! `P·V` `4·N²·d` (softmax and scaling, `O(N²·heads)`, omitted).

/// Mamba2 projections, the explicit terms of eq. (1): `(6 + 2/d_h)·E·N·d² + 4·N·d_s·d`.
///
/// # Panics
/// If `head_dim == 0`.
pub fn mamba2_projection_flops(
    n_tokens: usize,
    d_model: usize,
    expand: usize,
    d_state: usize,
    head_dim: usize,
) -> f64 {
    assert!(head_dim > 0, "head_dim must be positive, got 0");
    let (n, d, e, ds) = (
        n_tokens as f64,
        d_model as f64,
        expand as f64,
        d_state as f64,
    );
    (6.0 + 2.0 / head_dim as f64) * e * n * d * d + 4.0 * n * ds * d
}

/// Depthwise causal 1D convolution, eq. (2): `2·E·K·(N + K − 1)·d`.
pub fn mamba2_conv_flops(n_tokens: usize, d_model: usize, expand: usize, d_conv: usize) -> f64 {
    let (n, d, e, k) = (
        n_tokens as f64,
        d_model as f64,
        expand as f64,
        d_conv as f64,
    );
    2.0 * e * k * (n + k - 1.0) * d
}

/// SSM (SSD) block, eq. (3): `4·E·N·d_s·d + 2·E·N·d`.
pub fn mamba2_ssm_flops(n_tokens: usize, d_model: usize, expand: usize, d_state: usize) -> f64 {
    let (n, d, e, ds) = (
        n_tokens as f64,
        d_model as f64,
        expand as f64,
        d_state as f64,
    );
    4.0 * e * n * ds * d + 2.0 * e * n * d
}

/// One (unidirectional) Mamba2 layer: eqs. (1) + (2) + (3) with `O(N·d) = C_conv + C_SSM`.
///
/// # Panics
/// If `head_dim == 0`.
pub fn mamba2_flops(
    n_tokens: usize,
    d_model: usize,
    expand: usize,
    d_state: usize,
    head_dim: usize,
    d_conv: usize,
) -> f64 {
    mamba2_projection_flops(n_tokens, d_model, expand, d_state, head_dim)
        + mamba2_conv_flops(n_tokens, d_model, expand, d_conv)
        + mamba2_ssm_flops(n_tokens, d_model, expand, d_state)
}

/// LinGen's bidirectional Mamba2 module, eq. (1) with `O(N·d) = 2·(C_conv + C_SSM)`: shared
/// projections, convolution and SSM run once per direction (see the module docs for why).
///
/// # Panics
/// If `head_dim == 0`.
pub fn bimamba2_flops(
    n_tokens: usize,
    d_model: usize,
    expand: usize,
    d_state: usize,
    head_dim: usize,
    d_conv: usize,
) -> f64 {
    mamba2_projection_flops(n_tokens, d_model, expand, d_state, head_dim)
        + 2.0
            * (mamba2_conv_flops(n_tokens, d_model, expand, d_conv)
                + mamba2_ssm_flops(n_tokens, d_model, expand, d_state))
}

/// Full multi-head self-attention over `N` tokens: `8·N·d² + 4·N²·d`.
///
/// ```
/// use vidgen_ssm::flops::{attention_flops, bimamba2_flops};
/// // LinGen-4B widths on a 32×32×32 token grid: attention costs ~4.5× the bidirectional Mamba2.
/// let n = 32 * 32 * 32;
/// let ratio = attention_flops(n, 2560) / bimamba2_flops(n, 2560, 2, 128, 64, 4);
/// assert!((ratio - 4.53).abs() < 0.01);
/// ```
pub fn attention_flops(n_tokens: usize, d_model: usize) -> f64 {
    let (n, d) = (n_tokens as f64, d_model as f64);
    8.0 * n * d * d + 4.0 * n * n * d
}
