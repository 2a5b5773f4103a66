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
//! **Training.** Built from differentiable tensor ops, so it runs under `Autodiff`; the tape
//! keeps each tile's probabilities for the backward pass, so training memory is not bounded by
//! the budget (no recomputation in backward).

use crate::full::expand_key_padding;
use crate::host::{HostOptions, HostShape, flash_attention_host};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{
    Bool, DType, Int, Tensor, TensorData, activation::softmax, backend::Backend, s,
};
use std::ops::Range;

/// Element-wise copies of a score tile alive at once (scores, shifted scores, exponentials).
pub const TILE_COPIES: usize = 3;
/// Smallest query block before the key dimension is blocked too.
pub const MIN_BLOCK_Q: usize = 16;
/// Query rows per block the plan prefers even when tiles outgrow `tile_bytes` (gemm
/// efficiency), as long as the budget allows.
pub const PREFERRED_BLOCK_Q: usize = 64;
/// Default target size of one score tile, near a CPU core's L2 cache.
pub const DEFAULT_TILE_BYTES: usize = 2 << 20;
/// Bytes per score element (scores are computed in f32).
const SCORE_BYTES: usize = 4;

/// Mask forms accepted by [`blocked_attention`] (`true` = masked out).
#[derive(Debug, Clone)]
pub enum AttentionMask<B: Backend> {
    /// `[B|1, H|1, Lq, Lk]` bool mask.
    Full(Tensor<B, 4, Bool>),
    /// `[B, Lk]` key-padding mask (see [`key_padding_mask`](crate::full::key_padding_mask)).
    KeyPadding(Tensor<B, 2, Bool>),
}

/// Memory budget and block-size overrides for [`blocked_attention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Upper bound, in bytes, on the live score tiles (all heads, all threads).
    pub bytes: usize,
    /// Preferred tile size in bytes (cache-sized); the plan uses `min(bytes, tile_bytes)`.
    pub tile_bytes: usize,
    /// Forced query block (`None`: from the rule in the module docs).
    pub block_q: Option<usize>,
    /// Forced key block (`None`: from the rule in the module docs).
    pub block_k: Option<usize>,
    /// Scoped threads over the `B·H` heads: 1 = none, 0 = automatic (the available cores on
    /// Burn's CPU backends `flex` / `ndarray`, whose ops here run on one core; 1 elsewhere).
    pub threads: usize,
}

impl Default for MemoryBudget {
    /// 256 MiB budget, [`DEFAULT_TILE_BYTES`] tiles, automatic blocks and threads.
    fn default() -> Self {
        Self::new(256 << 20)
    }
}

impl MemoryBudget {
    /// A budget of `bytes` with cache-sized tiles, automatic blocks and threads.
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes,
            tile_bytes: DEFAULT_TILE_BYTES,
            block_q: None,
            block_k: None,
            threads: 0,
        }
    }

    /// Forces the query and key block sizes (`None` keeps the rule for that dimension).
    pub fn with_blocks(mut self, block_q: Option<usize>, block_k: Option<usize>) -> Self {
        self.block_q = block_q;
        self.block_k = block_k;
        self
    }

    /// Sets the preferred tile size in bytes.
    pub fn with_tile_bytes(mut self, tile_bytes: usize) -> Self {
        self.tile_bytes = tile_bytes;
        self
    }

    /// Sets the number of threads over heads.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
}

/// Query and key block sizes chosen by [`plan_blocks`]; `block_k == Lk` means one exact
/// softmax per query block (no online recurrence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPlan {
    /// Query rows per block.
    pub block_q: usize,
    /// Keys per block.
    pub block_k: usize,
}

/// Bytes of the full f32 score matrix `[B, H, Lq, Lk]`, the quantity a fused fallback
/// materialises (once; its softmax passes may hold more copies).
pub fn score_bytes(batch_heads: usize, len_q: usize, len_k: usize) -> usize {
    batch_heads
        .saturating_mul(len_q)
        .saturating_mul(len_k)
        .saturating_mul(SCORE_BYTES)
}

/// Block sizes from the shapes and the budget, by the rule in the module docs.
///
/// # Panics
/// If `len_q`, `len_k` or `batch_heads` is zero, or a forced block size is zero.
pub fn plan_blocks(
    batch_heads: usize,
    len_q: usize,
    len_k: usize,
    budget: &MemoryBudget,
) -> BlockPlan {
    assert!(
        batch_heads > 0 && len_q > 0 && len_k > 0,
        "plan_blocks: empty attention (B·H = {batch_heads}, Lq = {len_q}, Lk = {len_k})"
    );
    let per_elem = batch_heads * SCORE_BYTES * TILE_COPIES;
    let row = per_elem * len_k;
    let fit_q = (budget.tile_bytes / row)
        .max(PREFERRED_BLOCK_Q)
        .min(budget.bytes / row)
        .clamp(1, len_q);
    let (mut block_q, mut block_k) = if fit_q >= MIN_BLOCK_Q.min(len_q) {
        (fit_q, len_k)
    } else {
        let bq = len_q.min(MIN_BLOCK_Q);
        (bq, (budget.bytes / (per_elem * bq)).clamp(1, len_k))
    };
    if let Some(bq) = budget.block_q {
        assert!(bq > 0, "plan_blocks: forced block_q is 0");
        block_q = bq.min(len_q);
    }
    if let Some(bk) = budget.block_k {
        assert!(bk > 0, "plan_blocks: forced block_k is 0");
        block_k = bk.min(len_k);
    }
    BlockPlan { block_q, block_k }
}

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
    if threads == 1 {
        return attend_heads(q, k, v, &inputs, plan);
    }
    attend_threaded(q, k, v, &inputs, plan, threads)
}

/// Which implementation [`memory_safe_attention`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionPath {
    /// Burn's fused [`module::attention`](burn::tensor::module::attention).
    Fused,
    /// [`blocked_attention`].
    Blocked,
    /// [`flash_attention_host`] on the tensors' host data:
    /// CPU backends outside `Autodiff`, f32, masks that are causal and/or key padding.
    Host,
}

/// What an attention call masks, as [`choose_path`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// No mask, bias or softcap.
    None,
    /// Causal and/or key-padding masking only.
    Structured,
    /// A full `[B, H, Lq, Lk]` mask, an additive bias or a softcap.
    Dense,
}

/// Score-matrix size (`Lq·Lk` per head) above which Burn's `flex` backend leaves its two-gemm
/// path for a single-threaded flash loop.
pub const CPU_FUSED_MAX_SCORES: usize = 256 * 1024;

/// Picks the path for f32 attention of score shape `[B, H, Lq, Lk]`:
///
/// 1. [`AttentionPath::Host`] on `flex` / `ndarray` (not under `Autodiff`, whose backend name
///    differs) unless the mask is [`MaskKind::Dense`]: the fused host kernel is memory-bounded
///    and the fastest CPU path at every size measured (`docs/PERFORMANCE.md`);
/// 2. [`AttentionPath::Blocked`] if the fused op's score matrix (`TILE_COPIES` f32 copies, as
///    in Burn's unfused fallback) would exceed `budget.bytes`, or, unmasked, on a
///    multi-threaded CPU backend (see [`MemoryBudget::threads`]) when
///    `Lq·Lk > CPU_FUSED_MAX_SCORES`;
/// 3. [`AttentionPath::Fused`] otherwise.
///
/// On CubeCL backends Burn's flash kernels (with `autotune`) do not materialise the scores,
/// but without `autotune` and under `Autodiff` the fallback does, so the estimate is kept for
/// every backend.
pub fn choose_path<B: Backend>(
    [b, h, len_q, len_k]: [usize; 4],
    mask: MaskKind,
    budget: &MemoryBudget,
    device: &B::Device,
) -> AttentionPath {
    if is_host_backend::<B>(device) && mask != MaskKind::Dense {
        return AttentionPath::Host;
    }
    let fused_bytes = score_bytes(b * h, len_q, len_k).saturating_mul(TILE_COPIES);
    let cpu_faster = mask == MaskKind::None
        && len_q * len_k > CPU_FUSED_MAX_SCORES
        && resolve_threads::<B>(budget.threads, device) > 1;
    if fused_bytes > budget.bytes || cpu_faster {
        AttentionPath::Blocked
    } else {
        AttentionPath::Fused
    }
}

/// The path [`memory_safe_attention`] takes for these arguments: [`choose_path`] with the mask
/// kind they imply, leaving [`AttentionPath::Host`] for inputs that are not f32.
pub fn memory_safe_path<B: Backend>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    mask: Option<&AttentionMask<B>>,
    has_bias: bool,
    options: &AttentionModuleOptions,
    budget: &MemoryBudget,
) -> AttentionPath {
    let [b, h, len_q, _] = q.dims();
    let shape = [b, h, len_q, k.dims()[2]];
    let kind =
        if matches!(mask, Some(AttentionMask::Full(_))) || has_bias || options.softcap.is_some() {
            MaskKind::Dense
        } else if mask.is_some() || options.is_causal {
            MaskKind::Structured
        } else {
            MaskKind::None
        };
    let device = q.device();
    let path = choose_path::<B>(shape, kind, budget, &device);
    if path == AttentionPath::Host && q.dtype() != DType::F32 {
        choose_path::<B>(shape, MaskKind::Dense, budget, &device)
    } else {
        path
    }
}

/// Attention through the path [`choose_path`] picks (f32 inputs; other float types skip the
/// host kernel): the fused host kernel on CPU backends, Burn's fused op when its score matrix
/// fits the budget (and it is the faster one), [`blocked_attention`] otherwise. Same semantics
/// on every path, including zero context for fully masked rows.
///
/// # Shapes
/// As [`blocked_attention`].
///
/// # Panics
/// As [`blocked_attention`] / Burn's fused op.
pub fn memory_safe_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Option<AttentionMask<B>>,
    bias: Option<Tensor<B, 4>>,
    options: AttentionModuleOptions,
    budget: &MemoryBudget,
) -> Tensor<B, 4> {
    let path = memory_safe_path(&q, &k, mask.as_ref(), bias.is_some(), &options, budget);
    let [b, h, len_q, _] = q.dims();
    let shape = [b, h, len_q, k.dims()[2]];
    let device = q.device();
    match path {
        AttentionPath::Host => {
            let padding = match mask {
                Some(AttentionMask::KeyPadding(m)) => Some(m),
                _ => None,
            };
            let threads = resolve_threads::<B>(budget.threads, &device);
            host_attention(q, k, v, padding, options, threads)
        }
        AttentionPath::Blocked => blocked_attention(q, k, v, mask, bias, options, budget),
        AttentionPath::Fused => {
            let mask = mask.map(|m| match m {
                AttentionMask::Full(m) => m.expand(shape),
                AttentionMask::KeyPadding(m) => expand_key_padding(m, shape),
            });
            let bias = bias.map(|t| t.expand(shape));
            burn::tensor::module::attention(q, k, v, mask, bias, options)
        }
    }
}

/// `[B, H, Lq, Lk, Dh, Dv]` of `q: [B, H, Lq, Dh]`, `k: [B, H, Lk, Dh]`, `v: [B, H, Lk, Dv]`.
///
/// # Panics
/// If the shapes disagree (values in the message, which names `caller`).
fn check_qkv<B: Backend>(
    caller: &str,
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
) -> [usize; 6] {
    let [b, h, len_q, head_dim] = q.dims();
    let [kb, kh, len_k, k_dim] = k.dims();
    let [vb, vh, v_len, value_dim] = v.dims();
    assert!(
        [kb, kh, k_dim] == [b, h, head_dim] && [vb, vh, v_len] == [b, h, len_k],
        "{caller}: q {:?}, k {:?}, v {:?} disagree",
        q.dims(),
        k.dims(),
        v.dims()
    );
    [b, h, len_q, len_k, head_dim, value_dim]
}

/// Whether tensors of `B` live in host memory with synchronous reads (`flex`, `ndarray`).
fn is_host_backend<B: Backend>(device: &B::Device) -> bool {
    matches!(B::name(device).as_str(), "flex" | "ndarray")
}

/// [`flash_attention_host`] on the host data of f32 tensors.
fn host_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    key_padding: Option<Tensor<B, 2, Bool>>,
    options: AttentionModuleOptions,
    threads: usize,
) -> Tensor<B, 4> {
    let [b, h, len_q, len_k, head_dim, value_dim] = check_qkv("memory_safe_attention", &q, &k, &v);
    let device = q.device();
    let host = |t: Tensor<B, 4>| -> Vec<f32> {
        t.into_data()
            .into_vec::<f32>()
            .expect("f32 tensor data (checked by the caller)")
    };
    let padding: Option<Vec<bool>> = key_padding.map(|m| {
        assert_eq!(
            m.dims(),
            [b, len_k],
            "memory_safe_attention: key-padding mask {:?} is not [B, Lk]",
            m.dims()
        );
        m.into_data().iter::<bool>().collect()
    });
    let (q, k, v) = (host(q), host(k), host(v));
    let mut out = vec![0.0f32; b * h * len_q * value_dim];
    let host_options = HostOptions {
        scale: options.scale.unwrap_or(1.0 / (head_dim as f64).sqrt()) as f32,
        causal_offset: options.is_causal.then_some(len_k as i64 - len_q as i64),
        key_padding: padding.as_deref().map(|m| (m, h)),
        threads,
        ..HostOptions::default()
    };
    let shape = HostShape {
        batch_heads: b * h,
        len_q,
        len_k,
        head_dim,
        value_dim,
    };
    flash_attention_host(&q, &k, &v, &mut out, shape, &host_options);
    Tensor::from_data(TensorData::new(out, [b, h, len_q, value_dim]), &device)
}

/// `threads`, with 0 resolved to the available cores on `flex` / `ndarray` and 1 elsewhere.
fn resolve_threads<B: Backend>(threads: usize, device: &B::Device) -> usize {
    if threads > 0 {
        return threads;
    }
    if is_host_backend::<B>(device) {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
}

/// Mask, bias and flags shared by every tile.
#[derive(Debug, Clone)]
struct Inputs<B: Backend> {
    mask: Option<AttentionMask<B>>,
    bias: Option<Tensor<B, 4>>,
    softcap: Option<f64>,
    /// `Lk − Lq` when causal: key `j` is masked for query `i` if `j > i + offset`.
    causal_offset: Option<i64>,
}

fn check_broadcast(what: &str, dims: [usize; 4], target: [usize; 4]) {
    let ok = (0..4).all(|i| dims[i] == target[i] || (i < 2 && dims[i] == 1));
    assert!(
        ok,
        "blocked_attention: {what} {dims:?} does not broadcast to {target:?}"
    );
}

fn check_mask<B: Backend>(mask: AttentionMask<B>, target: [usize; 4]) -> AttentionMask<B> {
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
fn attend_threaded<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    inputs: &Inputs<B>,
    plan: BlockPlan,
    threads: usize,
) -> Tensor<B, 4> {
    let [b, h, len_q, _] = q.dims();
    let len_k = k.dims()[2];
    // Per-head views of the broadcastable inputs so every group can be sliced on dim 0.
    let flat = |t: Tensor<B, 4>| {
        let [_, _, l, d] = t.dims();
        t.reshape([b * h, 1, l, d])
    };
    let full = |t: Tensor<B, 4, Bool>| {
        t.expand([b, h, len_q, len_k])
            .reshape([b * h, 1, len_q, len_k])
    };
    let mask = inputs.mask.clone().map(|m| match m {
        AttentionMask::Full(m) => AttentionMask::Full(full(m)),
        AttentionMask::KeyPadding(m) => AttentionMask::KeyPadding(
            m.reshape([b, 1, len_k])
                .expand([b, h, len_k])
                .reshape([b * h, len_k]),
        ),
    });
    let bias = inputs.bias.clone().map(|t| {
        t.expand([b, h, len_q, len_k])
            .reshape([b * h, 1, len_q, len_k])
    });
    let (q, k, v) = (flat(q), flat(k), flat(v));
    let per = (b * h).div_ceil(threads);
    let outs: Vec<Tensor<B, 4>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..b * h)
            .step_by(per)
            .map(|start| {
                let r = start..(start + per).min(b * h);
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
                let (q, k, v) = (
                    q.clone().slice(s![r.clone()]),
                    k.clone().slice(s![r.clone()]),
                    v.clone().slice(s![r]),
                );
                scope.spawn(move || attend_heads(q, k, v, &group, plan))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("blocked_attention worker panicked"))
            .collect()
    });
    let dv = outs[0].dims()[3];
    Tensor::cat(outs, 0).reshape([b, h, len_q, dv])
}

/// All query blocks of (a group of) heads; `q` already scaled.
fn attend_heads<B: Backend>(
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
fn query_block<B: Backend>(
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
    // Running max m (clamped to f32::MIN so fully masked rows never produce −∞ − −∞ = NaN),
    // running sum l and unnormalised accumulator a; `None` until the first visited key block.
    let mut state: Option<(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>)> = None;
    for k0 in (0..len_k).step_by(block_k) {
        let cols = k0..(k0 + block_k).min(len_k);
        let Some(scores) = tile_scores(&q_blk, k_t, inputs, rows.clone(), cols.clone()) else {
            continue; // causal: every key of this block is in the future of every row
        };
        let tile_max = scores.clone().max_dim(3).clamp_min(f32::MIN);
        let m_new = match &state {
            Some((m, _, _)) => m.clone().max_pair(tile_max),
            None => tile_max,
        };
        let p = (scores - m_new.clone()).exp();
        let v_blk = v.clone().slice(s![.., .., cols]);
        let (l_tile, acc_tile) = (p.clone().sum_dim(3), p.matmul(v_blk));
        state = Some(match state {
            None => (m_new, l_tile, acc_tile),
            Some((m, l, acc)) => {
                let correction = (m - m_new.clone()).exp();
                let l = l * correction.clone() + l_tile;
                (m_new, l, acc * correction + acc_tile)
            }
        });
    }
    match state {
        // l = 0 only for fully masked rows, whose accumulator is 0: the quotient is 0 there.
        Some((_, l, acc)) => acc / l.clamp_min(f32::MIN_POSITIVE),
        None => Tensor::zeros([b, h, bq, dv], &device),
    }
}

/// Scores of one tile `q[rows]·k[cols]ᵀ` (q pre-scaled) with softcap, masks and bias applied;
/// `None` if causal masking hides the whole tile.
fn tile_scores<B: Backend>(
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
        Some(AttentionMask::KeyPadding(m)) => Some(
            m.clone()
                .slice(s![.., cols.clone()])
                .reshape([b, 1, 1, cols.len()])
                .expand(shape),
        ),
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
fn causal_tile<B: Backend>(
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
