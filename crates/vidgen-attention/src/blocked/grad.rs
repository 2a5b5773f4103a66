//! The FlashAttention-2 backward pass in tensor ops (Dao 2023, Algorithm 2), with the forward
//! that saves what it needs: the output `O` and the log-sum-exp `L` of every score row.
//!
//! With `q` already scaled, `S = q·kᵀ (+ masks)`, `P = exp(S − L)` (row-normalised, `L` from
//! the forward) and `O = P·v`, the gradients for an upstream `dO` are
//!
//! ```text
//! D  = rowsum(dO ∘ O)                    (= rowsum(P ∘ dP), one number per query row)
//! dv = Pᵀ·dO
//! dP = dO·vᵀ
//! dS = P ∘ (dP − D)
//! dq = dS·k        dk = dSᵀ·q
//! ```
//!
//! computed tile by tile: for each query block, for each key block, `S` and `P` are recomputed
//! from `q`, `k` and `L` (the same tiles as the forward, [`tile_scores`]), `dq` of the query block
//! is accumulated over key blocks and `dk`, `dv` of each key block over query blocks. Live memory
//! is one tile and its derivatives plus `O(L·D)` accumulators; nothing of size `Lq·Lk` is kept.
//! Masked scores are `−∞`, so their `P` and `dS` are 0; rows whose keys are all masked have
//! `L = f32::MIN` (finite) and zero gradients, matching their zero output.

use super::kernel::{Inputs, OnlineState, online_softmax, tile_scores};
use super::plan::BlockPlan;
use burn::tensor::{Tensor, backend::Backend, s};

/// Output and log-sum-exp rows of attention with pre-scaled `q`, query block by query block.
///
/// # Shapes
/// `q`: `[B, H, Lq, Dh]`, `k`: `[B, H, Lk, Dh]`, `v`: `[B, H, Lk, Dv]` → (`[B, H, Lq, Dv]`,
/// `[B, H, Lq, 1]`)
pub(super) fn forward_with_lse<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    inputs: &Inputs<B>,
    plan: BlockPlan,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let [b, h, len_q, _] = q.dims();
    let dv = v.dims()[3];
    let device = q.device();
    let k_t = k.swap_dims(2, 3);
    let (outs, lses): (Vec<_>, Vec<_>) = (0..len_q)
        .step_by(plan.block_q)
        .map(|q0| {
            let rows = q0..(q0 + plan.block_q).min(len_q);
            let bq = rows.len();
            let q_blk = q.clone().slice(s![.., .., rows.clone()]);
            match online_softmax(&q_blk, &k_t, &v, inputs, rows, plan.block_k) {
                Some(OnlineState { m, l, acc }) => {
                    let l = l.clamp_min(f32::MIN_POSITIVE);
                    (acc / l.clone(), m + l.log())
                }
                // Every key hidden by the causal mask: zero output, and no tile ever reads L.
                None => (
                    Tensor::zeros([b, h, bq, dv], &device),
                    Tensor::zeros([b, h, bq, 1], &device),
                ),
            }
        })
        .unzip();
    (Tensor::cat(outs, 2), Tensor::cat(lses, 2))
}

/// Gradients `(dq, dk, dv)` of attention with pre-scaled `q` (module docs), from the forward's
/// `out` and `lse` and the upstream gradient `d_out`, in the forward's blocks.
///
/// # Shapes
/// As [`forward_with_lse`]; `d_out` like `out` → shapes of `q`, `k`, `v`.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    out: Tensor<B, 4>,
    lse: Tensor<B, 4>,
    d_out: Tensor<B, 4>,
    inputs: &Inputs<B>,
    plan: BlockPlan,
) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
    let [b, h, len_q, head_dim] = q.dims();
    let [_, _, len_k, value_dim] = v.dims();
    let device = q.device();
    let delta = (d_out.clone() * out).sum_dim(3);
    let k_t = k.clone().swap_dims(2, 3);
    let v_t = v.swap_dims(2, 3);
    let key_blocks: Vec<_> = (0..len_k)
        .step_by(plan.block_k)
        .map(|k0| k0..(k0 + plan.block_k).min(len_k))
        .collect();
    let mut dk_blocks: Vec<Option<Tensor<B, 4>>> = vec![None; key_blocks.len()];
    let mut dv_blocks: Vec<Option<Tensor<B, 4>>> = vec![None; key_blocks.len()];
    let add = |acc: &mut Option<Tensor<B, 4>>, t: Tensor<B, 4>| {
        *acc = Some(match acc.take() {
            Some(a) => a + t,
            None => t,
        });
    };
    let mut dq_blocks = Vec::new();
    for q0 in (0..len_q).step_by(plan.block_q) {
        let rows = q0..(q0 + plan.block_q).min(len_q);
        let q_blk = q.clone().slice(s![.., .., rows.clone()]);
        let do_blk = d_out.clone().slice(s![.., .., rows.clone()]);
        let lse_blk = lse.clone().slice(s![.., .., rows.clone()]);
        let delta_blk = delta.clone().slice(s![.., .., rows.clone()]);
        let mut dq_blk = None;
        for (j, cols) in key_blocks.iter().enumerate() {
            let Some(scores) = tile_scores(&q_blk, &k_t, inputs, rows.clone(), cols.clone()) else {
                continue; // causal: the forward skipped this tile, so its gradients are 0
            };
            let p = (scores - lse_blk.clone()).exp();
            add(
                &mut dv_blocks[j],
                p.clone().swap_dims(2, 3).matmul(do_blk.clone()),
            );
            let dp = do_blk
                .clone()
                .matmul(v_t.clone().slice(s![.., .., .., cols.clone()]));
            let ds = p * (dp - delta_blk.clone());
            add(
                &mut dq_blk,
                ds.clone().matmul(
                    k_t.clone()
                        .slice(s![.., .., .., cols.clone()])
                        .swap_dims(2, 3),
                ),
            );
            add(&mut dk_blocks[j], ds.swap_dims(2, 3).matmul(q_blk.clone()));
        }
        dq_blocks
            .push(dq_blk.unwrap_or_else(|| Tensor::zeros([b, h, rows.len(), head_dim], &device)));
    }
    let gather = |blocks: Vec<Option<Tensor<B, 4>>>, dim: usize| {
        let blocks: Vec<_> = blocks
            .into_iter()
            .zip(&key_blocks)
            .map(|(t, cols)| t.unwrap_or_else(|| Tensor::zeros([b, h, cols.len(), dim], &device)))
            .collect();
        Tensor::cat(blocks, 2)
    };
    (
        Tensor::cat(dq_blocks, 2),
        gather(dk_blocks, head_dim),
        gather(dv_blocks, value_dim),
    )
}
