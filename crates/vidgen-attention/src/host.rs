//! A fused flash-attention kernel on host `f32` slices, for CPU backends.
//!
//! [`memory_safe_attention`](crate::memory_safe_attention) runs it on `flex` / `ndarray` for
//! inference-time inputs without a full mask or bias; [`blocked_attention`](crate::blocked_attention)
//! is its backend-generic twin (same recurrence in tensor ops) and
//! [`attention_reference`](crate::attention_reference) the naive one.
//!
//! Work is split into tasks of one head × one block of `block_q` query rows, spread over scoped
//! threads. A task keeps its running state in three small buffers — the score tile
//! `[block_q, block_k]`, the output accumulator `[block_q, Dv]` and the row statistics — and walks
//! the keys in blocks of `block_k` with the online softmax of FlashAttention (Dao et al. 2022,
//! Algorithm 1):
//!
//! ```text
//! S  = scale·q_blk·k_jᵀ                     (gemm into the tile, masked entries set to −∞)
//! m' = max(m, rowmax(S));  P = exp(S − m')  (in place, vectorised exp)
//! l' = e^{m − m'}·l + rowsum(P)
//! a' = e^{m − m'}·a + P·v_j                 (gemm accumulating into a)
//! out = a / l                                after the last key block (0 if every key is masked)
//! ```
//!
//! With the defaults (`block_q` 64, `block_k` 256, `Dh = Dv = 64`) a task touches 64 KiB of
//! scores plus 16 KiB + 2·64 KiB of q/k/v: everything stays in a core's L2 cache, and memory
//! beyond the inputs and output is `threads·(block_q·(block_k + Dv))` floats whatever the length.
//! Key blocks entirely masked by causality are skipped.
//!
//! [`flash_attention_host_strided`] reads the operands where they lie ([`HostLayout`]: any
//! non-negative strides with a contiguous last axis, e.g. a `[B, L, H, D]` projection with its
//! heads moved forward) and writes the output in either axis order; on `flex`,
//! `memory_safe_attention` passes the tensors' own storage, so the call copies nothing.

use std::ops::Range;

/// Query rows per task.
pub const HOST_BLOCK_Q: usize = 64;
/// Keys per score tile.
pub const HOST_BLOCK_K: usize = 256;

/// Shapes of [`flash_attention_host`]'s operands: `q` is `[BH, Lq, Dh]`, `k` `[BH, Lk, Dh]`,
/// `v` `[BH, Lk, Dv]`, the output `[BH, Lq, Dv]` (row-major, `BH` = batch × heads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostShape {
    /// Batch × heads.
    pub batch_heads: usize,
    /// Query length.
    pub len_q: usize,
    /// Key length.
    pub len_k: usize,
    /// Query/key width.
    pub head_dim: usize,
    /// Value width.
    pub value_dim: usize,
}

/// Masking and blocking of [`flash_attention_host`].
#[derive(Debug, Clone, Copy)]
pub struct HostOptions<'a> {
    /// Multiplies `q·kᵀ`.
    pub scale: f32,
    /// `Some(Lk − Lq)` for bottom-right aligned causal masking (key `j` masked for query `i`
    /// when `j > i + offset`).
    pub causal_offset: Option<i64>,
    /// `[B, Lk]` (`true` = masked out) with `BH = B·heads`: head `g` reads row `g / heads`.
    pub key_padding: Option<(&'a [bool], usize)>,
    /// Query rows per task.
    pub block_q: usize,
    /// Keys per score tile.
    pub block_k: usize,
    /// Worker threads (at least 1).
    pub threads: usize,
}

impl Default for HostOptions<'_> {
    fn default() -> Self {
        Self {
            scale: 1.0,
            causal_offset: None,
            key_padding: None,
            block_q: HOST_BLOCK_Q,
            block_k: HOST_BLOCK_K,
            threads: 1,
        }
    }
}

/// `out = softmax(scale·q·kᵀ + mask)·v` per head, fused (see the module docs), on row-major
/// `[BH, L, D]` slices.
///
/// # Panics
/// If a slice length disagrees with `shape`, a length or block size is zero, or the key-padding
/// mask is not `[BH / heads, Lk]` with `heads` dividing `BH`.
pub fn flash_attention_host(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    shape: HostShape,
    options: &HostOptions<'_>,
) {
    assert_eq!(
        q.len(),
        shape.batch_heads * shape.len_q * shape.head_dim,
        "q is not [BH, Lq, Dh]"
    );
    assert_eq!(
        k.len(),
        shape.batch_heads * shape.len_k * shape.head_dim,
        "k is not [BH, Lk, Dh]"
    );
    assert_eq!(
        v.len(),
        shape.batch_heads * shape.len_k * shape.value_dim,
        "v is not [BH, Lk, Dv]"
    );
    let layout = HostLayout::contiguous(shape);
    flash_attention_host_strided(q, k, v, out, shape, &layout, options);
}

/// Where [`flash_attention_host_strided`] reads its operands and writes its output: `BH` split
/// as `B × heads` (index `g = b·heads + h`), element strides `[batch, head, row]` of `q`, `k`
/// and `v` viewed as `[B, heads, L, D]` with a contiguous last axis (any other strides: a
/// permuted or sliced tensor is read in place), and the order of the dense output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLayout {
    /// Heads per batch item (`BH` must be a multiple).
    pub heads: usize,
    /// `q`'s strides `[batch, head, row]`.
    pub q: [usize; 3],
    /// `k`'s strides `[batch, head, row]`.
    pub k: [usize; 3],
    /// `v`'s strides `[batch, head, row]`.
    pub v: [usize; 3],
    /// The output is `[B, Lq, heads, Dv]` in memory (as `q` usually is, before its heads are
    /// moved forward) rather than `[B, heads, Lq, Dv]`.
    pub out_rows_first: bool,
}

impl HostLayout {
    /// Row-major `[BH, L, D]` operands and output (one "head" per batch item).
    pub fn contiguous(shape: HostShape) -> Self {
        let dense = |len: usize, width: usize| [len * width, 0, width];
        Self {
            heads: 1,
            q: dense(shape.len_q, shape.head_dim),
            k: dense(shape.len_k, shape.head_dim),
            v: dense(shape.len_k, shape.value_dim),
            out_rows_first: false,
        }
    }

    /// The output's strides `[batch, head, row]`.
    pub fn out_strides(&self, shape: HostShape) -> [usize; 3] {
        let (h, lq, dv) = (self.heads, shape.len_q, shape.value_dim);
        if self.out_rows_first {
            [lq * h * dv, dv, h * dv]
        } else {
            [h * lq * dv, lq * dv, dv]
        }
    }
}

/// First element of row `row` of head `g` (`g = b·heads + h`) under `strides`.
fn offset(strides: [usize; 3], heads: usize, g: usize, row: usize) -> usize {
    (g / heads) * strides[0] + (g % heads) * strides[1] + row * strides[2]
}

/// [`flash_attention_host`] on strided operands ([`HostLayout`]): reads `q`, `k`, `v` where they
/// lie and writes the dense `out` in the layout's order.
///
/// # Panics
/// As [`flash_attention_host`]; also if `heads` is zero or does not divide `BH`, if an operand's
/// last element under its strides lies outside its slice, or if `out` is not `BH·Lq·Dv` long.
pub fn flash_attention_host_strided(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    shape: HostShape,
    layout: &HostLayout,
    options: &HostOptions<'_>,
) {
    let HostShape {
        batch_heads,
        len_q,
        len_k,
        head_dim,
        value_dim,
    } = shape;
    assert!(
        batch_heads > 0 && len_q > 0 && len_k > 0 && head_dim > 0 && value_dim > 0,
        "flash_attention_host: empty shape {shape:?}"
    );
    assert!(
        options.block_q > 0 && options.block_k > 0,
        "flash_attention_host: zero block size"
    );
    let heads = layout.heads;
    assert!(
        heads > 0 && batch_heads % heads == 0,
        "flash_attention_host: {heads} heads do not divide BH = {batch_heads}"
    );
    for (name, data, strides, len, width) in [
        ("q", q, layout.q, len_q, head_dim),
        ("k", k, layout.k, len_k, head_dim),
        ("v", v, layout.v, len_k, value_dim),
    ] {
        // Strides are non-negative: the last row of the last head ends furthest.
        let end = offset(strides, heads, batch_heads - 1, len - 1) + width;
        assert!(
            end <= data.len(),
            "{name}: strides {strides:?} reach element {end} of {}",
            data.len()
        );
    }
    assert_eq!(
        out.len(),
        batch_heads * len_q * value_dim,
        "out is not [BH, Lq, Dv]"
    );
    if let Some((mask, heads)) = options.key_padding {
        assert!(
            heads > 0 && batch_heads % heads == 0 && mask.len() == batch_heads / heads * len_k,
            "key-padding mask of {} values is not [BH / {heads}, {len_k}]",
            mask.len()
        );
    }
    let bq = options.block_q;
    // Tasks (head g, first query row): their output rows are disjoint.
    let tasks: Vec<(usize, usize)> = (0..batch_heads)
        .flat_map(|g| (0..len_q).step_by(bq).map(move |q0| (g, q0)))
        .collect();
    let threads = options.threads.clamp(1, tasks.len());
    let out = OutRows {
        ptr: out.as_mut_ptr(),
        strides: layout.out_strides(shape),
        heads,
        width: value_dim,
        _out: std::marker::PhantomData,
    };
    let run = |tasks: Vec<(usize, usize)>| {
        let mut scratch = Scratch::new(bq, options.block_k, value_dim);
        for (g, q0) in tasks {
            let rows = q0..(q0 + bq).min(len_q);
            attend_block(q, k, v, &out, shape, layout, options, g, rows, &mut scratch);
        }
    };
    if threads == 1 {
        return run(tasks);
    }
    // Round-robin so causal tasks (cheap early blocks, costly late ones) are spread evenly.
    let mut groups: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, task) in tasks.into_iter().enumerate() {
        groups[i % threads].push(task);
    }
    std::thread::scope(|scope| {
        for group in groups {
            scope.spawn(|| run(group));
        }
    });
}

/// The output buffer, shared by the tasks: each writes only the rows of its own head and query
/// block.
struct OutRows<'a> {
    ptr: *mut f32,
    strides: [usize; 3],
    heads: usize,
    width: usize,
    _out: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: `OutRows` hands out row slices only through `row`, whose callers write disjoint rows.
unsafe impl Send for OutRows<'_> {}
// SAFETY: as above.
unsafe impl Sync for OutRows<'_> {}

impl OutRows<'_> {
    /// Output row `row` of head `g`.
    ///
    /// # Safety
    /// No other live slice may cover the same `(g, row)`: rows of distinct `(g, row)` are
    /// disjoint because the output is dense in either order ([`HostLayout::out_strides`]), and
    /// `flash_attention_host_strided` checked its length against `BH·Lq·Dv`.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, g: usize, row: usize) -> &mut [f32] {
        let start = offset(self.strides, self.heads, g, row);
        // SAFETY: in bounds (the caller's contract) and not aliased (disjoint rows).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), self.width) }
    }
}

/// Per-thread buffers.
struct Scratch {
    scores: Vec<f32>,
    acc: Vec<f32>,
    max: Vec<f32>,
    sum: Vec<f32>,
}

impl Scratch {
    fn new(block_q: usize, block_k: usize, value_dim: usize) -> Self {
        Self {
            scores: vec![0.0; block_q * block_k],
            acc: vec![0.0; block_q * value_dim],
            max: vec![f32::NEG_INFINITY; block_q],
            sum: vec![0.0; block_q],
        }
    }
}

/// One task: query `rows` of head `g` against every key block.
#[allow(clippy::too_many_arguments)]
fn attend_block(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &OutRows<'_>,
    shape: HostShape,
    layout: &HostLayout,
    options: &HostOptions<'_>,
    g: usize,
    rows: Range<usize>,
    scratch: &mut Scratch,
) {
    let HostShape {
        len_k,
        head_dim: dh,
        value_dim: dv,
        ..
    } = shape;
    let n_rows = rows.len();
    let heads = layout.heads;
    let (q_rs, k_rs, v_rs) = (layout.q[2], layout.k[2], layout.v[2]);
    let q_blk = &q[offset(layout.q, heads, g, rows.start)..];
    let k_head = &k[offset(layout.k, heads, g, 0)..];
    let v_head = &v[offset(layout.v, heads, g, 0)..];
    let padding = options
        .key_padding
        .map(|(mask, heads)| &mask[g / heads * len_k..(g / heads + 1) * len_k]);
    let acc = &mut scratch.acc[..n_rows * dv];
    acc.fill(0.0);
    let (max, sum) = (&mut scratch.max[..n_rows], &mut scratch.sum[..n_rows]);
    max.fill(f32::NEG_INFINITY);
    sum.fill(0.0);
    // Last key any row of the block may see (exclusive).
    let key_end = match options.causal_offset {
        Some(offset) => (rows.end as i64 + offset).clamp(0, len_k as i64) as usize,
        None => len_k,
    };
    let bk = options.block_k;
    for k0 in (0..key_end).step_by(bk) {
        let keys = k0..(k0 + bk).min(key_end);
        let n_keys = keys.len();
        let tile = &mut scratch.scores[..n_rows * n_keys];
        // S = scale · q_blk · k_jᵀ: lhs [n_rows, dh] (row stride q_rs), rhs = k_j viewed as
        // [dh, n_keys] (column stride k_rs).
        gemm_f32(
            tile,
            (n_rows, n_keys, dh),
            q_blk,
            (q_rs, 1),
            &k_head[keys.start * k_rs..],
            (1, k_rs),
            false,
            options.scale,
        );
        for (r, row) in tile.chunks_exact_mut(n_keys).enumerate() {
            if let Some(offset) = options.causal_offset {
                // Keys j > i + offset are masked.
                let first_masked = (rows.start as i64 + r as i64 + offset + 1 - k0 as i64)
                    .clamp(0, n_keys as i64) as usize;
                row[first_masked..].fill(f32::NEG_INFINITY);
            }
            if let Some(padding) = padding {
                for (s, &masked) in row.iter_mut().zip(&padding[keys.clone()]) {
                    if masked {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
            let m_new = max[r].max(row_max(row));
            if m_new == f32::NEG_INFINITY {
                // Every key so far is masked for this row: P is all zero.
                row.fill(0.0);
                continue;
            }
            let correction = (max[r] - m_new).exp();
            sum[r] = sum[r] * correction + exp_shifted_sum(row, m_new);
            if correction != 1.0 {
                for a in &mut acc[r * dv..(r + 1) * dv] {
                    *a *= correction;
                }
            }
            max[r] = m_new;
        }
        // a += P · v_j.
        gemm_f32(
            acc,
            (n_rows, dv, n_keys),
            tile,
            (n_keys, 1),
            &v_head[keys.start * v_rs..],
            (v_rs, 1),
            true,
            1.0,
        );
    }
    for (r, i) in rows.enumerate() {
        // SAFETY: this task alone writes rows `rows` of head `g`.
        let row = unsafe { out.row(g, i) };
        let inv = if sum[r] > 0.0 { 1.0 / sum[r] } else { 0.0 };
        for (o, &a) in row.iter_mut().zip(&acc[r * dv..(r + 1) * dv]) {
            *o = a * inv;
        }
    }
}

/// `dst[m, n] (+)= beta · lhs[m, k] · rhs[k, n]` with row/column strides `(rs, cs)` for the
/// operands and a row-major `dst`; `accumulate` keeps `dst`'s values.
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    dst: &mut [f32],
    (m, n, depth): (usize, usize, usize),
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    accumulate: bool,
    beta: f32,
) {
    assert!(dst.len() >= m * n, "gemm: dst too short");
    let last = |rs: usize, cs: usize, rows: usize, cols: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        lhs.len() > last(lhs_rs, lhs_cs, m, depth),
        "gemm: lhs too short"
    );
    assert!(
        rhs.len() > last(rhs_rs, rhs_cs, depth, n),
        "gemm: rhs too short"
    );
    // SAFETY: the asserts above keep every element gemm reads (lhs[i·rs + p·cs] for i < m,
    // p < depth; rhs likewise) and writes (dst[i·n + j]) inside its slice; `dst` is borrowed
    // mutably and cannot alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            depth,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Lanes of the manual reductions (one AVX-512 register of f32).
const LANES: usize = 16;

/// Largest value of `row` (−∞ for an all-masked row).
fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = if x > *a { x } else { *a };
        }
    }
    tail.iter()
        .chain(&acc)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// Replaces every `s` of `row` by `exp(s − shift)` and returns their sum (`−∞` entries give 0).
fn exp_shifted_sum(row: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above).
            return unsafe { exp_shifted_sum_avx512(row, shift) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked above).
            return unsafe { exp_shifted_sum_avx2(row, shift) };
        }
    }
    exp_shifted_sum_portable(row, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_shifted_sum_avx512(row: &mut [f32], shift: f32) -> f32 {
    exp_shifted_sum_portable(row, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_shifted_sum_avx2(row: &mut [f32], shift: f32) -> f32 {
    exp_shifted_sum_portable(row, shift)
}

/// The loop the `target_feature` wrappers recompile with wider vectors.
#[inline(always)]
fn exp_shifted_sum_portable(row: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (a, x) in acc.iter_mut().zip(chunk.iter_mut()) {
            *x = exp_approx(*x - shift);
            *a += *x;
        }
    }
    let mut total: f32 = 0.0;
    for x in chunks.into_remainder() {
        *x = exp_approx(*x - shift);
        total += *x;
    }
    total + acc.iter().sum::<f32>()
}

/// `eˣ` for `x ≤ 0` to about 2 ulp, branch-free so loops over it vectorise: `x = n·ln2 + r`
/// with `|r| ≤ ln2/2`, `eʳ` by a degree-6 Taylor polynomial, `2ⁿ` through the exponent bits.
/// Inputs below −87 (including −∞) give 0.
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2²³ rounds to the nearest integer n and leaves n in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: u32 = 0x4B40_0000;
    let xc = if x < -87.0 { -87.0 } else { x };
    let shifted = xc * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2ⁿ: biased exponent n + 127 (n ≥ −126 after the clamp), without a float → int cast.
    let scale = f32::from_bits(shifted.to_bits().wrapping_sub(ROUND_BITS).wrapping_add(127) << 23);
    if x < -87.0 { 0.0 } else { p * scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_approx_matches_std() {
        for i in 0..=100_000 {
            let x = -87.0 * i as f32 / 100_000.0;
            let (a, e) = (exp_approx(x), x.exp());
            assert!((a - e).abs() <= 4e-7 * e, "exp({x}): {a} vs {e}");
        }
        assert_eq!(exp_approx(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_approx(-100.0), 0.0);
    }

    #[test]
    fn reductions_handle_tails_and_masked_rows() {
        let mut row: Vec<f32> = (0..37).map(|i| -(i as f32) / 7.0).collect();
        assert_eq!(row_max(&row), 0.0);
        let expected: f32 = row.iter().map(|x| (x - 0.5).exp()).sum();
        let sum = exp_shifted_sum(&mut row, 0.5);
        assert!((sum - expected).abs() < 1e-5, "{sum} vs {expected}");
        assert_eq!(row_max(&[f32::NEG_INFINITY; 20]), f32::NEG_INFINITY);
    }
}
