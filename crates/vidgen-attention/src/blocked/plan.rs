//! The block-size plan: the byte budget, the score-tile cost and the rule that turns them into
//! query and key block sizes (see the [module docs](super)).

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
pub(super) const SCORE_BYTES: usize = 4;

/// Memory budget and block-size overrides for [`blocked_attention`](crate::blocked::blocked_attention).
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
