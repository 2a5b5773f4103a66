//! The fused attention kernel in CubeCL: one launch computes `softmax(q·kᵀ·scale + mask)·v`
//! for every head, with one pass over the keys and no score matrix in global memory.
//!
//! # Algorithm (FlashAttention-2's forward, Dao 2023, Algorithm 1)
//!
//! A *cube* (CUDA block / wgpu workgroup) owns `block_q` query rows of one `(batch, head)`.
//! It has `threads_per_row × block_q` units; unit `(tx, r)` works on query row `r` of the tile
//! together with the other `threads_per_row` units of that row.
//!
//! ```text
//! Q̃ ← q[rows]·scale                                  (shared memory, f32)
//! per row: m = −∞, l = 0, acc[Dv] = 0                  (registers, f32; a unit holds the
//!                                                       columns c ≡ tx mod threads_per_row)
//! for each key tile j (block_k keys; with a causal mask only tiles some row can see):
//!     K̃, Ṽ ← k[j], v[j]                                (shared memory, f32)
//!     s   = Q̃·K̃ᵀ                                       (each unit: block_k / threads_per_row
//!                                                       keys of its row, kept in registers)
//!     s   = masked where causal (key > row + Lk − Lq), padding, or past Lk
//!     m'  = max(m, rowmax(s))                           (unit partial maxima via shared memory)
//!     P   = exp(s − m'), 0 where masked                 (shared memory)
//!     l   = e^{m − m'}·l + rowsum(P)
//!     acc = e^{m − m'}·acc + P·Ṽ
//!     m   = m'
//! out[rows] = acc / l   (0 where l = 0: a row with every key masked gets a zero context)
//! ```
//!
//! Inputs may be f32, f16 or bf16 (whatever the device supports); every product, sum and
//! exponential is computed in f32 and only the output is cast back. `q`, `k`, `v` are read at
//! their strides, so permuted or sliced views need no copy.
//!
//! # Tiling
//!
//! Shared memory holds `Q̃` (`block_q × (D+1)`), `K̃` (`block_k × (D+1)`), `Ṽ` (`block_k × Dv`),
//! `P` (`block_q × block_k`) and the partial row maxima; the extra column of `Q̃` and `K̃` moves
//! consecutive rows to different memory banks (units of one row read different keys at the
//! same `d`). [`FlashTiles::for_device`] halves `block_k`, then `block_q`, until this fits the
//! device's shared memory. Four barriers per key tile: after the load, after the partial
//! maxima, after `P`, and before the next load overwrites the tiles.
//!
//! The readable twin is [`attention_reference`](crate::full::attention_reference), and
//! [`blocked_attention`](crate::blocked::blocked_attention) the same recurrence in tensor ops.

use cubecl::prelude::*;

/// Scores of masked keys before the row maximum; real scores are far above it.
const MASKED: f32 = -1.0e30;
/// Scores below this are masked (`MASKED` plus room for rounding).
const MASKED_BELOW: f32 = -1.0e29;

/// Tile sizes of one launch (all compile-time constants of the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlashTiles {
    /// Query rows per cube.
    pub block_q: usize,
    /// Keys per shared-memory tile; a multiple of `threads_per_row`.
    pub block_k: usize,
    /// Units sharing one query row; divides `value_cap`.
    pub threads_per_row: usize,
    /// Head dimension of q and k rounded up to a power of two (≥ 16): shared-memory row length.
    pub head_cap: usize,
    /// Head dimension of v rounded up likewise: accumulator columns per row.
    pub value_cap: usize,
}

impl FlashTiles {
    /// Largest head dimension the kernel takes.
    pub const MAX_HEAD_DIM: usize = 256;
    /// Units per query row.
    const THREADS_PER_ROW: usize = 8;

    /// Tiles for head dimensions `head_dim` (q, k) and `value_dim` (v) on a device with
    /// `shared_bytes` of shared memory per cube and at most `max_units` units per cube:
    /// `block_q = 16`, `block_k = 32`; `block_q` halved until the units fit, then `block_k`
    /// (down to `threads_per_row`) and then `block_q` (down to 2) until [`Self::shared_bytes`]
    /// fits. `None` if a head dimension is 0
    /// or above [`Self::MAX_HEAD_DIM`], or nothing fits.
    pub fn for_device(
        head_dim: usize,
        value_dim: usize,
        shared_bytes: usize,
        max_units: usize,
    ) -> Option<Self> {
        let valid = |d: usize| (1..=Self::MAX_HEAD_DIM).contains(&d);
        if !valid(head_dim) || !valid(value_dim) {
            return None;
        }
        let mut tiles = FlashTiles {
            block_q: 16,
            block_k: 32,
            threads_per_row: Self::THREADS_PER_ROW,
            head_cap: head_dim.next_power_of_two().max(16),
            value_cap: value_dim.next_power_of_two().max(16),
        };
        while tiles.units() > max_units && tiles.block_q > 1 {
            tiles.block_q /= 2;
        }
        while tiles.shared_bytes() > shared_bytes || tiles.units() > max_units {
            if tiles.block_k > tiles.threads_per_row {
                tiles.block_k /= 2;
            } else if tiles.block_q > 2 {
                tiles.block_q /= 2;
            } else {
                return None;
            }
        }
        Some(tiles)
    }

    /// Bytes of shared memory one cube uses.
    pub fn shared_bytes(&self) -> usize {
        let floats = self.block_q * (self.head_cap + 1)
            + self.block_k * (self.head_cap + 1)
            + self.block_k * self.value_cap
            + self.block_q * self.block_k
            + self.block_q * self.threads_per_row;
        floats * 4
    }

    /// Units per cube.
    pub fn units(&self) -> usize {
        self.block_q * self.threads_per_row
    }
}

/// The kernel. `q: [B, H, Lq, D]`, `k: [B, H, Lk, D]`, `v: [B, H, Lk, Dv]` at any strides,
/// `key_padding: [B, Lk]` (non-zero = masked; read only when `padded`), `out: [B, H, Lq, Dv]`.
/// Cube `(x, y)` is tile `y·CUBE_COUNT_X + x` = `(b·H + h)·q_tiles + query tile`; unit `(x, y)`
/// is thread `x` of query row `y` of the tile.
#[allow(clippy::too_many_arguments)]
#[cube(launch)]
pub(crate) fn flash_attention_kernel<F: Float, M: Numeric>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    key_padding: &Tensor<M>,
    out: &mut Tensor<F>,
    scale: f32,
    heads: u32,
    q_tiles: u32,
    #[comptime] tiles: FlashTiles,
    #[comptime] causal: bool,
    #[comptime] padded: bool,
    #[define(F, M)] _dtypes: [StorageType; 2],
) {
    let block_q = tiles.block_q;
    let block_k = tiles.block_k;
    let threads = tiles.threads_per_row;
    let q_stride = tiles.head_cap + 1;
    let v_stride = tiles.value_cap;
    let keys_per_unit = comptime!(tiles.block_k / tiles.threads_per_row);
    let cols_per_unit = comptime!(tiles.value_cap / tiles.threads_per_row);

    let batch = q.shape(0);
    let heads = heads as usize;
    let q_tiles = q_tiles as usize;
    let len_q = q.shape(2);
    let len_k = k.shape(2);
    let dim = q.shape(3);
    let dim_v = v.shape(3);

    // Which tile; cubes past the last one (the grid is rounded up to a rectangle) leave
    // before any barrier, as a whole.
    let tile = (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) as usize;
    if tile >= batch * heads * q_tiles {
        terminate!();
    }
    let bh = tile / q_tiles;
    let first_row = (tile % q_tiles) * block_q;
    let b = bh / heads;
    let h = bh % heads;

    let tx = UNIT_POS_X as usize;
    let r = UNIT_POS_Y as usize;
    let unit = r * threads + tx;
    let units = block_q * threads;
    let row = first_row + r;

    let q_base = b * q.stride(0) + h * q.stride(1);
    let k_base = b * k.stride(0) + h * k.stride(1);
    let v_base = b * v.stride(0) + h * v.stride(1);

    let mut q_tile = SharedMemory::<f32>::new(tiles.block_q * (tiles.head_cap + 1));
    let mut k_tile = SharedMemory::<f32>::new(tiles.block_k * (tiles.head_cap + 1));
    let mut v_tile = SharedMemory::<f32>::new(tiles.block_k * tiles.value_cap);
    let mut p_tile = SharedMemory::<f32>::new(tiles.block_q * tiles.block_k);
    let mut partial_max = SharedMemory::<f32>::new(tiles.block_q * tiles.threads_per_row);

    // Q̃ = q·scale for the tile's rows (zeros past Lq).
    load_tile::<F>(
        q,
        q_base,
        first_row,
        len_q,
        block_q,
        dim,
        scale,
        &mut q_tile,
        q_stride,
        unit,
        units,
    );

    let k_tiles = visible_keys(first_row, block_q, len_q, len_k, causal).div_ceil(block_k);

    let mut acc = Array::<f32>::new(cols_per_unit);
    #[unroll]
    for c in 0..cols_per_unit {
        acc[c] = 0.0f32;
    }
    let mut scores = Array::<f32>::new(keys_per_unit);
    let mut m = f32::new(MASKED);
    let mut l = 0.0f32;
    sync_cube();

    for t in 0..k_tiles {
        let k0 = t * block_k;

        // K̃, Ṽ for keys k0 .. k0 + block_k (zeros past Lk).
        load_tile::<F>(
            k,
            k_base,
            k0,
            len_k,
            block_k,
            dim,
            1.0f32,
            &mut k_tile,
            q_stride,
            unit,
            units,
        );
        load_tile::<F>(
            v,
            v_base,
            k0,
            len_k,
            block_k,
            dim_v,
            1.0f32,
            &mut v_tile,
            v_stride,
            unit,
            units,
        );
        sync_cube();

        // This unit's scores: keys tx, tx + threads, … of the tile, for its row.
        let mut unit_max = f32::new(MASKED);
        #[unroll]
        for s in 0..keys_per_unit {
            let j = tx + s * threads;
            let visible =
                key_visible::<M>(key_padding, b, row, k0 + j, len_q, len_k, causal, padded);
            let mut score = f32::new(MASKED);
            if visible {
                let mut dot = 0.0f32;
                for d in 0..dim {
                    dot += q_tile[r * q_stride + d] * k_tile[j * q_stride + d];
                }
                score = dot;
                unit_max = f32::max(unit_max, dot);
            }
            scores[s] = score;
        }
        partial_max[r * threads + tx] = unit_max;
        sync_cube();

        // m' = max(m, rowmax(s)); P = exp(s − m'), 0 where masked.
        let mut m_new = m;
        for u in 0..threads {
            m_new = f32::max(m_new, partial_max[r * threads + u]);
        }
        #[unroll]
        for s in 0..keys_per_unit {
            let score = scores[s];
            let p = select(score > MASKED_BELOW, f32::exp(score - m_new), 0.0f32);
            p_tile[r * block_k + tx + s * threads] = p;
        }
        sync_cube();

        // l, acc rescaled to the new maximum, plus this tile's P·Ṽ.
        let alpha = f32::exp(m - m_new);
        l *= alpha;
        #[unroll]
        for c in 0..cols_per_unit {
            acc[c] *= alpha;
        }
        for j in 0..block_k {
            let p = p_tile[r * block_k + j];
            l += p;
            #[unroll]
            for c in 0..cols_per_unit {
                acc[c] += p * v_tile[j * v_stride + tx + c * threads];
            }
        }
        m = m_new;
        sync_cube();
    }

    if row < len_q {
        let inv = select(l > 0.0f32, 1.0f32 / l, 0.0f32);
        let out_base = b * out.stride(0) + h * out.stride(1) + row * out.stride(2);
        #[unroll]
        for c in 0..cols_per_unit {
            let col = tx + c * threads;
            if col < dim_v {
                out[out_base + col * out.stride(3)] = F::cast_from(acc[c] * inv);
            }
        }
    }
}

/// Keys any row of the query tile `first_row .. first_row + block_q` can see: `len_k`, or
/// with the bottom-right-aligned causal mask (key `j` visible to row `i` iff
/// `j + Lq ≤ i + Lk`) those before `last + Lk − Lq` for the tile's last row.
#[cube]
pub(crate) fn visible_keys(
    first_row: usize,
    block_q: usize,
    len_q: usize,
    len_k: usize,
    #[comptime] causal: bool,
) -> usize {
    let mut kv_end = len_k;
    if causal {
        let mut last = first_row + block_q;
        if last > len_q {
            last = len_q;
        }
        if last + len_k > len_q {
            let end = last + len_k - len_q;
            if end < len_k {
                kv_end = end;
            }
        } else {
            kv_end = 0;
        }
    }
    kv_end
}

/// Whether query `row` of batch `b` sees key `kj`: both in range, not past the causal
/// diagonal (`causal`), and not padded (`padded`: `key_padding[b, kj]` is zero).
#[allow(clippy::too_many_arguments)]
#[cube]
pub(crate) fn key_visible<M: Numeric>(
    key_padding: &Tensor<M>,
    b: usize,
    row: usize,
    kj: usize,
    len_q: usize,
    len_k: usize,
    #[comptime] causal: bool,
    #[comptime] padded: bool,
) -> bool {
    let mut visible = row < len_q && kj < len_k;
    if causal {
        visible = visible && kj + len_q <= row + len_k;
    }
    if padded && visible {
        let flag = key_padding[b * key_padding.stride(0) + kj * key_padding.stride(1)];
        visible = flag == M::from_int(0);
    }
    visible
}

/// `tile[i·tile_stride + d] = scale · src[base + (first + i)·stride(2) + d·stride(3)]` for
/// `i < rows`, `d < width`, as f32, zero for rows at or past `len`; the cube's `units` units
/// share the elements (unit `unit` takes every `units`-th one).
#[allow(clippy::too_many_arguments)]
#[cube]
fn load_tile<F: Float>(
    src: &Tensor<F>,
    base: usize,
    first: usize,
    len: usize,
    rows: usize,
    width: usize,
    scale: f32,
    tile: &mut SharedMemory<f32>,
    tile_stride: usize,
    unit: usize,
    units: usize,
) {
    let mut e = unit;
    while e < rows * width {
        let i = e / width;
        let d = e % width;
        let row = first + i;
        let mut x = 0.0f32;
        if row < len {
            x = f32::cast_from(src[base + row * src.stride(2) + d * src.stride(3)]) * scale;
        }
        tile[i * tile_stride + d] = x;
        e += units;
    }
}
