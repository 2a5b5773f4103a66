//! Attention masks (Burn's convention: `true` = masked out): key padding from valid lengths,
//! bottom-right-aligned causal masks, the broadcast of a key-padding mask to the score shape,
//! and the two mask forms the attention kernels take ([`AttentionMask`]). Window attention's
//! shifted-window region masks live with it ([`crate::window`]).

use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};

/// Mask forms accepted by [`blocked_attention`](crate::blocked::blocked_attention) and
/// [`memory_safe_attention`](crate::blocked::memory_safe_attention) (`true` = masked out).
#[derive(Debug, Clone)]
pub enum AttentionMask<B: Backend> {
    /// `[B|1, H|1, Lq, Lk]` bool mask.
    Full(Tensor<B, 4, Bool>),
    /// `[B, Lk]` key-padding mask (see [`key_padding_mask`]).
    KeyPadding(Tensor<B, 2, Bool>),
}

/// Key-padding mask from per-sample valid lengths: `mask[b, j] = j >= lengths[b]` (`true` =
/// padding, masked out). This is the padded-batch form of Open-Sora / PixArt's
/// `BlockDiagonalMask.from_seqlens([N] * B, lengths)` over packed text tokens.
///
/// # Shapes
/// → `[lengths.len(), len_k]`
///
/// # Panics
/// If some `lengths[b] > len_k`.
pub fn key_padding_mask<B: Backend>(
    lengths: &[usize],
    len_k: usize,
    device: &B::Device,
) -> Tensor<B, 2, Bool> {
    let mut data = Vec::with_capacity(lengths.len() * len_k);
    for (b, &len) in lengths.iter().enumerate() {
        assert!(
            len <= len_k,
            "key_padding_mask: lengths[{b}] = {len} exceeds the key length {len_k}"
        );
        data.extend((0..len_k).map(|j| j >= len));
    }
    Tensor::from_bool(TensorData::new(data, [lengths.len(), len_k]), device)
}

/// Causal mask aligned at the bottom-right corner, as Burn's `is_causal` option builds it:
/// `mask[i, j] = j > i + (len_k − len_q)` (`true` = future key, masked out). For
/// `len_q == len_k` this is the usual strict upper triangle and equals PyTorch's
/// `is_causal=True`; for `len_q ≠ len_k` PyTorch aligns at the top-left instead.
///
/// # Shapes
/// → `[len_q, len_k]`
pub fn causal_mask<B: Backend>(
    len_q: usize,
    len_k: usize,
    device: &B::Device,
) -> Tensor<B, 2, Bool> {
    let offset = len_k as i64 - len_q as i64;
    let data: Vec<bool> = (0..len_q as i64)
        .flat_map(|i| (0..len_k as i64).map(move |j| j > i + offset))
        .collect();
    Tensor::from_bool(TensorData::new(data, [len_q, len_k]), device)
}

/// Broadcasts a `[B, Lk]` key-padding mask to the `[B, H, Lq, Lk]` shape the attention ops take.
///
/// # Panics
/// If the mask's batch differs from `batch` or its length from `len_k`.
pub fn expand_key_padding<B: Backend>(
    mask: Tensor<B, 2, Bool>,
    [batch, heads, len_q, len_k]: [usize; 4],
) -> Tensor<B, 4, Bool> {
    assert_eq!(
        mask.dims(),
        [batch, len_k],
        "key-padding mask {:?} does not match [B, Lk] = [{batch}, {len_k}]",
        mask.dims()
    );
    mask.reshape([batch, 1, 1, len_k])
        .expand([batch, heads, len_q, len_k])
}
