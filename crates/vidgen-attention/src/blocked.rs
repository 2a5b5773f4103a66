//! Memory-bounded attention: `softmax(q·kᵀ·scale + mask + bias)·v` without materialising the
//! `[B, H, Lq, Lk]` score matrix, for every backend (plain tensor ops only).
//!
//! Queries are processed in blocks of `block_q` rows. When a block's whole key row fits the
//! byte budget (`block_k = Lk`), each block is one exact softmax. Otherwise keys are processed
//! in blocks of `block_k` too, with the online-softmax recurrence of FlashAttention (Dao et al.
//! 2022, Algorithm 1; Milakov & Gimelshein 2018), per query row:
//!
//! ```text
//! m' = max(m, rowmax(S_j))           S_j = q·k_jᵀ·scale (+ mask, + bias)
//! P  = exp(S_j − m')
//! l' = e^{m − m'}·l + rowsum(P)
//! a' = e^{m − m'}·a + P·v_j
//! out = a / l                         after the last key block
//! ```
//!
//! **Block-size rule** ([`plan_blocks`]). One score tile `[B, H, bq, bk]` costs
//! `B·H·bq·bk·4` bytes (f32) and the element-wise passes keep up to [`TILE_COPIES`] of them alive
//! at once (scores, shifted scores, their exponentials). With `row = B·H·Lk·4·TILE_COPIES`, the
//! plan is `bq = clamp(min(max(tile_bytes / row, PREFERRED_BLOCK_Q), budget / row), 1, Lq)`
//! and `bk = Lk` if that gives at
//! least [`MIN_BLOCK_Q`] rows (or all of `Lq`); otherwise `bq = min(Lq, MIN_BLOCK_Q)` and
//! `bk = budget / (B·H·bq·4·TILE_COPIES)` (at least 1): the key dimension is blocked as well.
//! `tile_bytes` (default [`DEFAULT_TILE_BYTES`]) keeps tiles near the L2 cache size on CPU; the
//! budget bounds memory. Explicit `block_q` / `block_k` in [`MemoryBudget`] override the rule
//! (tests use them to force sizes that do not divide the lengths).
//!
//! **Masks** follow Burn's convention (`true` = masked out): a full `[B, H, Lq, Lk]` bool mask
//! (sliced per tile; broadcast dims of size 1 allowed) or a `[B, Lk]` key-padding mask that is
//! only broadcast per tile, never expanded to `[B, H, Lq, Lk]`. `causal` masks
//! `j > i + (Lk − Lq)` (bottom-right aligned, as Burn's `is_causal`); key blocks entirely in
//! the future of a query block are skipped. Masking is applied before the additive bias, as in
//! Burn's fused op. A row whose keys are all masked yields a zero context vector, like
//! [`attention_reference`](crate::full::attention_reference).
//!
//! **Threads.** `MemoryBudget::threads > 1` splits the `B·H` heads over that many scoped threads
//! (CPU backends whose ops run single-threaded); the per-thread tiles together stay within the
//! same budget because the plan is computed for all heads.
//!
//! **Training.** Under Burn's `Autodiff` (for the backends this crate is built with: cargo
//! features `flex`, `ndarray`, `cuda`, `wgpu`) the whole call is one autodiff operation: its
//! forward saves the output and one log-sum-exp per query row, and its backward recomputes the
//! score tiles block by block (FlashAttention-2's backward, Dao 2023), so training memory grows
//! linearly with the sequence, like inference. Calls with an additive bias or a softcap, and
//! other backends, differentiate the tensor-op kernel instead, whose tape keeps every tile.

mod dispatch;
mod grad;
mod kernel;
mod plan;
mod tracked;

pub use crate::mask::AttentionMask;
pub use dispatch::*;
pub use kernel::*;
pub use plan::*;
