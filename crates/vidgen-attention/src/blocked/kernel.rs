//! The blocked kernel in tensor ops: query blocks, key tiles with the online-softmax
//! recurrence, masks and causal skipping per tile, heads split over threads.

use super::{dispatch::*, plan::*, tracked};
use crate::mask::AttentionMask;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, Tensor, activation::softmax, backend::Backend, s};
use std::ops::Range;

/// Memory-bounded attention `softmax(q·kᵀ·scale + mask + bias)·v` in query (and key) blocks
/// with the online softmax; see the module docs for the recurrence and the block-size rule.
/// `options.scale = None` means `1/√Dh`; `options.softcap` applies `c·tanh(s/c)` before
/// masking; `options.is_causal` masks `j > i + (Lk − Lq)`.
///
/// # Shapes
/// `q`: `[B, H, Lq, Dh]`, `k`: `[B, H, Lk, Dh]`, `v`: `[B, H, Lk, Dv]`, mask: `[B|1, H|1, Lq, Lk]`
/// or `[B, Lk]`, `bias`: `[B|1, H|1, Lq, Lk]` → `[B, H, Lq, Dv]`
///
/// # Panics
/// If the shapes disagree (values in the message), a length is zero, or a forced block size
/// is zero.
pub fn blocked_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Option<AttentionMask<B>>,
    bias: Option<Tensor<B, 4>>,
    options: AttentionModuleOptions,
    budget: &MemoryBudget,
) -> Tensor<B, 4> {
    let [b, h, len_q, len_k, head_dim, _] = check_qkv("blocked_attention", &q, &k, &v);
    let plan = plan_blocks(b * h, len_q, len_k, budget);
    let scale = options.scale.unwrap_or(1.0 / (head_dim as f64).sqrt());
    let inputs = Inputs {
        mask: mask.map(|m| check_mask(m, [b, h, len_q, len_k])),
        bias: bias.inspect(|t| check_broadcast("bias", t.dims(), [b, h, len_q, len_k])),
        softcap: options.softcap,
        causal_offset: options.is_causal.then_some(len_k as i64 - len_q as i64),
    };
    // Fold the scale into q once (an Lq·Dh pass instead of an Lq·Lk one).
    let q = q * scale;
    let threads = resolve_threads::<B>(budget.threads, &q.device()).clamp(1, b * h);
    // Under a known `Autodiff` backend: the same forward as one operation whose backward
    // recomputes the tiles (`tracked`), so the tape holds no score tile.
    let (q, k, v, inputs) = match tracked::try_tracked(q, k, v, inputs, plan, threads) {
        Ok(out) => return out,
        Err(call) => call,
    };
    if threads == 1 {
        return attend_heads(q, k, v, &inputs, plan);
    }
    attend_threaded(q, k, v, &inputs, plan, threads)
}

/// Mask, bias and flags shared by every tile.
#[derive(Debug, Clone)]
pub(super) struct Inputs<B: Backend> {
    pub mask: Option<AttentionMask<B>>,
    pub bias: Option<Tensor<B, 4>>,
    pub softcap: Option<f64>,
    /// `Lk − Lq` when causal: key `j` is masked for query `i` if `j > i + offset`.
    pub causal_offset: Option<i64>,
}

pub(super) fn check_broadcast(what: &str, dims: [usize; 4], target: [usize; 4]) {
    let ok = (0..4).all(|i| dims[i] == target[i] || (i < 2 && dims[i] == 1));
    assert!(
        ok,
        "blocked_attention: {what} {dims:?} does not broadcast to {target:?}"
    );
}

pub(super) fn check_mask<B: Backend>(
    mask: AttentionMask<B>,
    target: [usize; 4],
) -> AttentionMask<B> {
    match &mask {
        AttentionMask::Full(m) => check_broadcast("mask", m.dims(), target),
        AttentionMask::KeyPadding(m) => assert_eq!(
            m.dims(),
            [target[0], target[3]],
            "blocked_attention: key-padding mask {:?} is not [B, Lk]",
            m.dims()
        ),
    }
    mask
}

/// Splits heads `[B, H]` into `threads` contiguous groups (flattened `B·H`) and runs
/// [`attend_heads`] on each in a scoped thread.
pub(super) fn attend_threaded<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    inputs: &Inputs<B>,
    plan: BlockPlan,
    threads: usize,
) -> Tensor<B, 4> {
    let [out] = over_head_groups([q, k, v], inputs, threads, |[q, k, v], group| {
        [attend_heads(q, k, v, &group, plan)]
    });
    out
}

/// Runs `f` on `threads` contiguous groups of the flattened `B·H` heads, each in a scoped
/// thread: the `[B, H, L, D]` tensors, the mask and the bias are viewed per head
/// (`[B·H, 1, ..]`, broadcast dimensions expanded) and sliced on dim 0 for each group; each
/// output of `f` (`[group, 1, L, D]`) is concatenated over the groups and shaped back to
/// `[B, H, L, D]`.
pub(super) fn over_head_groups<B: Backend, const N: usize, const M: usize>(
    tensors: [Tensor<B, 4>; N],
    inputs: &Inputs<B>,
    threads: usize,
    f: impl Fn([Tensor<B, 4>; N], Inputs<B>) -> [Tensor<B, 4>; M] + Sync,
) -> [Tensor<B, 4>; M] {
    let [b, h, _, _] = tensors[0].dims();
    let heads = b * h;
    // Per-head views of the broadcastable inputs so every group can be sliced on dim 0.
    let flat = |t: Tensor<B, 4>| {
        let [_, _, l, d] = t.dims();
        t.expand([b, h, l, d]).reshape([heads, 1, l, d])
    };
    let mask = inputs.mask.clone().map(|m| match m {
        AttentionMask::Full(m) => {
            let [_, _, lq, lk] = m.dims();
            AttentionMask::Full(m.expand([b, h, lq, lk]).reshape([heads, 1, lq, lk]))
        }
        AttentionMask::KeyPadding(m) => {
            let len_k = m.dims()[1];
            AttentionMask::KeyPadding(
                m.reshape([b, 1, len_k])
                    .expand([b, h, len_k])
                    .reshape([heads, len_k]),
            )
        }
    });
    let bias = inputs.bias.clone().map(flat);
    let tensors = tensors.map(flat);
    let per = heads.div_ceil(threads.max(1));
    let f = &f;
    let groups: Vec<[Tensor<B, 4>; M]> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..heads)
            .step_by(per)
            .map(|start| {
                let r = start..(start + per).min(heads);
                let group = Inputs {
                    mask: mask.clone().map(|m| match m {
                        AttentionMask::Full(m) => AttentionMask::Full(m.slice(s![r.clone()])),
                        AttentionMask::KeyPadding(m) => {
                            AttentionMask::KeyPadding(m.slice(s![r.clone()]))
                        }
                    }),
                    bias: bias.clone().map(|t| t.slice(s![r.clone()])),
                    ..inputs.clone()
                };
                let parts = tensors.clone().map(|t| t.slice(s![r.clone()]));
                scope.spawn(move || f(parts, group))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("blocked_attention worker panicked"))
            .collect()
    });
    let mut columns: [Vec<Tensor<B, 4>>; M] = std::array::from_fn(|_| Vec::new());
    for group in groups {
        for (column, t) in columns.iter_mut().zip(group) {
            column.push(t);
        }
    }
    columns.map(|parts| {
        let [_, _, l, d] = parts[0].dims();
        Tensor::cat(parts, 0).reshape([b, h, l, d])
    })
}

/// All query blocks of (a group of) heads; `q` already scaled.
pub(super) fn attend_heads<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    inputs: &Inputs<B>,
    plan: BlockPlan,
) -> Tensor<B, 4> {
    let len_q = q.dims()[2];
    let k_t = k.swap_dims(2, 3);
    let blocks: Vec<Tensor<B, 4>> = (0..len_q)
        .step_by(plan.block_q)
        .map(|q0| {
            let rows = q0..(q0 + plan.block_q).min(len_q);
            let q_blk = q.clone().slice(s![.., .., rows.clone()]);
            query_block(q_blk, &k_t, &v, inputs, rows, plan.block_k)
        })
        .collect();
    if blocks.len() == 1 {
        return blocks.into_iter().next().unwrap();
    }
    Tensor::cat(blocks, 2)
}

/// One query block `rows` against all keys, in key blocks of `block_k` with the online
/// softmax (a single exact block when `block_k ≥ Lk`).
pub(super) fn query_block<B: Backend>(
    q_blk: Tensor<B, 4>,
    k_t: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    inputs: &Inputs<B>,
    rows: Range<usize>,
    block_k: usize,
) -> Tensor<B, 4> {
    let [b, h, bq, _] = q_blk.dims();
    let [_, _, len_k, dv] = v.dims();
    let device = q_blk.device();
    let unmasked = inputs.mask.is_none() && inputs.bias.is_none() && inputs.causal_offset.is_none();
    if unmasked && block_k >= len_k {
        // One exact block, nothing masked: the backend's (fused on flex) softmax, no NaN rows.
        let scores = tile_scores(&q_blk, k_t, inputs, rows, 0..len_k).expect("no causal mask");
        return softmax(scores, 3).matmul(v.clone());
    }
    match online_softmax(&q_blk, k_t, v, inputs, rows, block_k) {
        // l = 0 only for fully masked rows, whose accumulator is 0: the quotient is 0 there.
        Some(OnlineState { l, acc, .. }) => acc / l.clamp_min(f32::MIN_POSITIVE),
        None => Tensor::zeros([b, h, bq, dv], &device),
    }
}

/// Running statistics of the online softmax over the visited key blocks of one query block:
/// row max `m` (clamped to `f32::MIN`), row sum `l` of `exp(s − m)` and the unnormalised
/// accumulator `acc = Σ exp(s − m)·v`.
#[derive(Debug, Clone)]
pub(super) struct OnlineState<B: Backend> {
    /// `[B, H, bq, 1]`
    pub m: Tensor<B, 4>,
    /// `[B, H, bq, 1]`
    pub l: Tensor<B, 4>,
    /// `[B, H, bq, Dv]`
    pub acc: Tensor<B, 4>,
}

/// The online-softmax recurrence of one query block over key blocks of `block_k` (module
/// docs); `None` if causal masking hides every key block.
pub(super) fn online_softmax<B: Backend>(
    q_blk: &Tensor<B, 4>,
    k_t: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    inputs: &Inputs<B>,
    rows: Range<usize>,
    block_k: usize,
) -> Option<OnlineState<B>> {
    let len_k = v.dims()[2];
    // Running max m clamped to f32::MIN so fully masked rows never produce −∞ − −∞ = NaN.
    let mut state: Option<OnlineState<B>> = None;
    for k0 in (0..len_k).step_by(block_k) {
        let cols = k0..(k0 + block_k).min(len_k);
        let Some(scores) = tile_scores(q_blk, k_t, inputs, rows.clone(), cols.clone()) else {
            continue; // causal: every key of this block is in the future of every row
        };
        let tile_max = scores.clone().max_dim(3).clamp_min(f32::MIN);
        let m_new = match &state {
            Some(s) => s.m.clone().max_pair(tile_max),
            None => tile_max,
        };
        let p = (scores - m_new.clone()).exp();
        let v_blk = v.clone().slice(s![.., .., cols]);
        let (l_tile, acc_tile) = (p.clone().sum_dim(3), p.matmul(v_blk));
        state = Some(match state {
            None => OnlineState {
                m: m_new,
                l: l_tile,
                acc: acc_tile,
            },
            Some(OnlineState { m, l, acc }) => {
                let correction = (m - m_new.clone()).exp();
                OnlineState {
                    l: l * correction.clone() + l_tile,
                    acc: acc * correction + acc_tile,
                    m: m_new,
                }
            }
        });
    }
    state
}

/// Scores of one tile `q[rows]·k[cols]ᵀ` (q pre-scaled) with softcap, masks and bias applied;
/// `None` if causal masking hides the whole tile.
pub(super) fn tile_scores<B: Backend>(
    q_blk: &Tensor<B, 4>,
    k_t: &Tensor<B, 4>,
    inputs: &Inputs<B>,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Option<Tensor<B, 4>> {
    let [b, h, bq, _] = q_blk.dims();
    let shape = [b, h, bq, cols.len()];
    let causal = match inputs.causal_offset {
        // Tile entirely in the future (min j > max i + offset): nothing to attend to.
        Some(off) if cols.start as i64 > rows.end as i64 - 1 + off => return None,
        // Tile entirely in the past (max j ≤ min i + offset): no causal mask needed.
        Some(off) if cols.end as i64 - 1 <= rows.start as i64 + off => None,
        Some(off) => Some(causal_tile::<B>(&rows, &cols, off, &q_blk.device()).expand(shape)),
        None => None,
    };
    let k_blk = k_t.clone().slice(s![.., .., .., cols.clone()]);
    let mut scores = q_blk.clone().matmul(k_blk);
    if let Some(cap) = inputs.softcap {
        scores = (scores / cap).tanh() * cap;
    }
    let mask = match &inputs.mask {
        Some(AttentionMask::Full(m)) => Some(
            m.clone()
                .slice(s![.., .., rows.clone(), cols.clone()])
                .expand(shape),
        ),
        // Reshaped before slicing: on wgpu, reshaping the column slice of a `[B, Lk]` bool
        // tensor (a strided view) read the wrong keys whenever `cols` did not start at 0.
        Some(AttentionMask::KeyPadding(m)) => {
            let len_k = m.dims()[1];
            Some(
                m.clone()
                    .reshape([b, 1, 1, len_k])
                    .slice(s![.., .., .., cols.clone()])
                    .expand(shape),
            )
        }
        None => None,
    };
    let mask = match (mask, causal) {
        (Some(a), Some(c)) => Some(a.bool_or(c)),
        (a, c) => a.or(c),
    };
    if let Some(mask) = mask {
        scores = scores.mask_fill(mask, f32::NEG_INFINITY);
    }
    if let Some(bias) = &inputs.bias {
        scores = scores + bias.clone().slice(s![.., .., rows, cols]);
    }
    Some(scores)
}

/// Causal mask of one tile, `mask[i, j] = cols.start + j > rows.start + i + offset`.
///
/// # Shapes
/// → `[1, 1, |rows|, |cols|]`
pub(super) fn causal_tile<B: Backend>(
    rows: &Range<usize>,
    cols: &Range<usize>,
    offset: i64,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let (bq, bk) = (rows.len(), cols.len());
    let i = Tensor::<B, 1, Int>::arange(rows.start as i64..rows.end as i64, device)
        .reshape([bq, 1])
        .expand([bq, bk])
        + offset;
    let j = Tensor::<B, 1, Int>::arange(cols.start as i64..cols.end as i64, device)
        .reshape([1, bk])
        .expand([bq, bk]);
    j.greater(i).reshape([1, 1, bq, bk])
}
