//! Scaled dot-product attention on `[B, H, L, Dh]` heads: the fused path through Burn's
//! `module::attention`, its naive reference twin, and the mask builders both use. Mask convention
//! and fully-masked-row behaviour are documented on the parent module.

use crate::blocked::{MemoryBudget, memory_safe_attention};
use crate::mask::{AttentionMask, causal_mask};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor, activation::softmax, backend::Backend};

/// Scaled dot-product attention `softmax(q·kᵀ·scale + mask)·v`; `scale = None` means `1/√Dh`.
/// `causal` uses Burn's `is_causal` option (bottom-right aligned, see [`causal_mask`]).
///
/// Memory-safe dispatch ([`memory_safe_attention`] with the default [`MemoryBudget`], 256 MiB):
/// Burn's fused [`module::attention`](burn::tensor::module::attention) when its score matrix
/// fits the budget, the [`blocked_attention`](crate::blocked::blocked_attention) path (query /
/// key blocks with an online softmax, memory linear in tokens) when it does not, and on
/// multi-core CPU backends for long sequences where the threaded blocked path is faster.
///
/// On CubeCL backends with the `autotune` feature the fused op may run a flash kernel;
/// otherwise, and **always under `Autodiff`**, Burn runs its unfused fallback, which
/// materialises the `[B, H, Lq, Lk]` score matrix (its tape keeps it for the backward). Above
/// the budget the blocked path runs instead, and under `Autodiff` its backward recomputes the
/// score tiles (FlashAttention-2), so training memory stays linear in the sequence length.
///
/// # Shapes
/// `q`: `[B, H, Lq, Dh]`, `k`: `[B, H, Lk, Dh]`, `v`: `[B, H, Lk, Dv]`,
/// `mask`: `[B, H, Lq, Lk]` (`true` = masked out) → `[B, H, Lq, Dv]`
pub fn scaled_dot_product_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Option<Tensor<B, 4, Bool>>,
    causal: bool,
    scale: Option<f64>,
) -> Tensor<B, 4> {
    let options = AttentionModuleOptions {
        scale,
        softcap: None,
        is_causal: causal,
    };
    let mask = mask.map(AttentionMask::Full);
    memory_safe_attention(q, k, v, mask, None, options, &MemoryBudget::default())
}

/// Reference attention weights, written out step by step: scores `q·kᵀ·scale`, masked keys set
/// to `−∞`, row softmax, and rows with every key masked set to zero (instead of softmax's NaN).
///
/// # Shapes
/// `q`: `[B, H, Lq, Dh]`, `k`: `[B, H, Lk, Dh]`, `mask`: `[B, H, Lq, Lk]` → `[B, H, Lq, Lk]`
pub fn attention_weights_reference<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    mask: Option<Tensor<B, 4, Bool>>,
    causal: bool,
    scale: Option<f64>,
) -> Tensor<B, 4> {
    let [b, h, len_q, head_dim] = q.dims();
    let len_k = k.dims()[2];
    let scale = scale.unwrap_or(1.0 / (head_dim as f64).sqrt());
    let scores = q.matmul(k.swap_dims(2, 3)) * scale;
    let mut masked: Option<Tensor<B, 4, Bool>> = mask;
    if causal {
        let c = causal_mask::<B>(len_q, len_k, &scores.device())
            .reshape([1, 1, len_q, len_k])
            .expand([b, h, len_q, len_k]);
        masked = Some(match masked {
            Some(m) => m.bool_or(c),
            None => c,
        });
    }
    let Some(masked) = masked else {
        return softmax(scores, 3);
    };
    let weights = softmax(scores.mask_fill(masked.clone(), f32::NEG_INFINITY), 3);
    // A fully masked row is NaN after softmax (0/0); replace the whole row by zeros.
    let empty_rows = masked.all_dim(3).expand([b, h, len_q, len_k]);
    weights.mask_fill(empty_rows, 0.0)
}

/// Reference twin of [`scaled_dot_product_attention`]: [`attention_weights_reference`]`·v`,
/// plain matmul → softmax → matmul in the input precision.
///
/// # Shapes
/// As [`scaled_dot_product_attention`].
pub fn attention_reference<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Option<Tensor<B, 4, Bool>>,
    causal: bool,
    scale: Option<f64>,
) -> Tensor<B, 4> {
    attention_weights_reference(q, k, mask, causal, scale).matmul(v)
}
