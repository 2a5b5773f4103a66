//! The flash-attention kernel with both products on tensor cores (CubeCL `cmma`), for f16 and
//! bf16 inputs on devices that report 16×16×16 cooperative matrices with f32 accumulation.
//!
//! # Algorithm
//!
//! The same recurrence as [`flash_attention_kernel`](super::kernel) (FlashAttention-2's
//! forward), with the work split by *planes* (CUDA warps of 32 units) instead of units:
//!
//! ```text
//! cube  = `planes` planes; plane p owns query rows 16p .. 16p + 16 of the cube's tile
//! Q     ← q[rows]                                     (shared memory, input dtype, unscaled)
//! per row: m = −∞, l = 0, acc[Dv] = 0                 (registers, f32; lanes 2r and 2r + 1
//!                                                      hold row r, each half of its columns)
//! for each key tile (block_k keys; causal: only tiles some row can see):
//!     K, V ← k[tile], v[tile]                          (shared memory, input dtype)
//!     S    = Q·Kᵀ                                      (per plane: 16 × block_k, cmma
//!                                                      16×16×16 steps, f32 accumulators
//!                                                      stored to the plane's scratch)
//!     s    = S·scale, masked where causal / padding / past Lk     (each lane: half a row)
//!     m'   = max(m, rowmax(s))                         (the two lanes of a row: one shuffle)
//!     P    = exp(s − m'), 0 where masked               (shared memory, input dtype)
//!     l    = e^{m − m'}·l + rowsum(P)                  (f32, before P is rounded)
//!     O    = P·V                                       (per plane: 16 × Dv, cmma, stored to
//!                                                      the scratch)
//!     acc  = e^{m − m'}·acc + O                        (f32 registers)
//! out[rows] = acc / l   (0 where l = 0)
//! ```
//!
//! Differences from the f32-unit kernel that the tests bound: `P` is rounded to the input
//! dtype before `P·V` (as in FlashAttention-2), and `q·kᵀ` is scaled after the product.
//!
//! # Shared memory and synchronisation
//! `Q` (`16·planes × Dk`), `K` (`block_k × Dk`), `V` (`block_k × Dv`) and `P`
//! (`16·planes × block_k`) in the input dtype, plus an f32 scratch of `16 × max(block_k, Dv)`
//! per plane (the `S` and `O` fragments go through it to reach the lanes). Dk and Dv are
//! rounded up to multiples of 16 and zero-filled. The whole cube synchronises twice per key
//! tile (after the K/V load, and before the next load overwrites it); in between each plane
//! synchronises itself only (`sync_plane`) around its scratch and `P`.
//!
//! # Reference twin
//! With `cooperative = false` the two products are computed by the plane's lanes in f32 from
//! the same shared-memory tiles (each lane 8 of a fragment's 256 outputs), the plane barriers
//! become cube barriers and the lane-pair shuffles go through shared memory; everything else
//! is the same code. That variant runs on devices without cooperative matrices or plane
//! operations (wgpu on lavapipe in CI), so the tiling, loads, masks, online softmax and `P`
//! rounding are tested there; only the `cmma` calls and the shuffles wait for a device that
//! has them.

use cubecl::cmma::{self, Matrix, MatrixIdent, MatrixLayout};
use cubecl::prelude::*;

use super::kernel::{key_visible, visible_keys};

/// Scores of masked keys before the row maximum; real scores are far above it.
const MASKED: f32 = -1.0e30;
/// Scores below this are masked (`MASKED` plus room for rounding).
const MASKED_BELOW: f32 = -1.0e29;
/// Side of the cooperative-matrix fragments (16×16×16).
const MMA: usize = 16;
/// Units per plane the kernel is written for (CUDA's warp size).
pub(crate) const PLANE_SIZE: usize = 32;

/// Tile sizes of one launch of the tensor-core kernel (compile-time constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TensorCoreTiles {
    /// Planes per cube; each owns 16 query rows.
    pub planes: usize,
    /// Keys per shared-memory tile; a multiple of 16.
    pub block_k: usize,
    /// Head dimension of q and k rounded up to a multiple of 16.
    pub head_cap: usize,
    /// Head dimension of v rounded up to a multiple of 16.
    pub value_cap: usize,
}

impl TensorCoreTiles {
    /// Largest head dimension the kernel takes.
    pub const MAX_HEAD_DIM: usize = 256;
    /// Planes per cube that [`Self::for_device`] starts from (and never exceeds).
    pub const MAX_PLANES: usize = 4;

    /// Tiles for head dimensions `head_dim` (q, k) and `value_dim` (v) on a device with
    /// `shared_bytes` of shared memory per cube and at most `max_units` units per cube, for an
    /// input dtype of 2 bytes: 4 planes (64 query rows) and 64 keys per tile, `block_k` halved
    /// (down to 16) and then the planes (down to 1) until [`Self::shared_bytes`] and the units
    /// fit. `None` if a head dimension is 0 or above [`Self::MAX_HEAD_DIM`], or nothing fits.
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
        let mut tiles = TensorCoreTiles {
            planes: Self::MAX_PLANES,
            block_k: 64,
            head_cap: head_dim.next_multiple_of(MMA),
            value_cap: value_dim.next_multiple_of(MMA),
        };
        while tiles.shared_bytes() > shared_bytes || tiles.units() > max_units {
            if tiles.block_k > MMA {
                tiles.block_k /= 2;
            } else if tiles.planes > 1 {
                tiles.planes /= 2;
            } else {
                return None;
            }
        }
        Some(tiles)
    }

    /// Query rows per cube.
    pub fn block_q(&self) -> usize {
        self.planes * MMA
    }

    /// Bytes of shared memory one cube uses (2-byte inputs).
    pub fn shared_bytes(&self) -> usize {
        let halves = self.block_q() * self.head_cap
            + self.block_k * self.head_cap
            + self.block_k * self.value_cap
            + self.block_q() * self.block_k;
        halves * 2 + self.planes * MMA * self.scratch_cols() * 4
    }

    /// Units per cube.
    pub fn units(&self) -> usize {
        self.planes * PLANE_SIZE
    }

    /// Columns of a plane's f32 scratch (`S` and `O` fragments).
    fn scratch_cols(&self) -> usize {
        self.block_k.max(self.value_cap)
    }
}

/// The kernel. Arguments as [`flash_attention_kernel`](super::kernel); `F` must be f16 or bf16.
/// Cube `(x, y)` is tile `y·CUBE_COUNT_X + x` = `(b·H + h)·q_tiles + query tile`; unit
/// `(x, y)` is lane `x` of plane `y`.
#[allow(clippy::too_many_arguments)]
#[cube(launch)]
pub(crate) fn flash_attention_tc_kernel<F: Float, M: Numeric>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    key_padding: &Tensor<M>,
    out: &mut Tensor<F>,
    scale: f32,
    heads: u32,
    q_tiles: u32,
    #[comptime] tiles: TensorCoreTiles,
    #[comptime] cooperative: bool,
    #[comptime] causal: bool,
    #[comptime] padded: bool,
    #[define(F, M)] _dtypes: [StorageType; 2],
) {
    let block_q = comptime!(tiles.planes * MMA);
    let block_k = tiles.block_k;
    let dk = tiles.head_cap;
    let dv = tiles.value_cap;
    let scratch_cols = comptime!(tiles.scratch_cols());
    let half_k = comptime!(tiles.block_k / 2);
    let half_v = comptime!(tiles.value_cap / 2);
    let k_steps = comptime!(tiles.block_k / MMA);
    let dk_steps = comptime!(tiles.head_cap / MMA);
    let dv_steps = comptime!(tiles.value_cap / MMA);

    let batch = q.shape(0);
    let heads = heads as usize;
    let q_tiles = q_tiles as usize;
    let len_q = q.shape(2);
    let len_k = k.shape(2);
    let dim = q.shape(3);
    let dim_v = v.shape(3);

    let tile = (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) as usize;
    if tile >= batch * heads * q_tiles {
        terminate!();
    }
    let bh = tile / q_tiles;
    let first_row = (tile % q_tiles) * block_q;
    let b = bh / heads;
    let h = bh % heads;

    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let unit = plane * PLANE_SIZE + lane;
    let units = comptime!(tiles.planes * PLANE_SIZE);
    // Lanes 2r and 2r + 1 share row r of the plane's 16; `side` picks the half of the columns.
    let r = lane / 2;
    let side = lane % 2;
    let tile_row = plane * MMA + r;
    let row = first_row + tile_row;

    let q_base = b * q.stride(0) + h * q.stride(1);
    let k_base = b * k.stride(0) + h * k.stride(1);
    let v_base = b * v.stride(0) + h * v.stride(1);

    let mut q_tile = SharedMemory::<F>::new_aligned(comptime!(block_q * tiles.head_cap), 128usize);
    let mut k_tile =
        SharedMemory::<F>::new_aligned(comptime!(tiles.block_k * tiles.head_cap), 128usize);
    let mut v_tile =
        SharedMemory::<F>::new_aligned(comptime!(tiles.block_k * tiles.value_cap), 128usize);
    let mut p_tile = SharedMemory::<F>::new_aligned(comptime!(block_q * tiles.block_k), 128usize);
    let mut scratch =
        SharedMemory::<f32>::new_aligned(comptime!(tiles.planes * MMA * scratch_cols), 128usize);
    let plane_scratch = plane * MMA * scratch_cols;
    // The twin's stand-in for the lane-pair shuffles (unused with cooperative matrices).
    let mut exchange = SharedMemory::<f32>::new(comptime!(if cooperative { 1 } else { units }));

    load_half_tile::<F>(
        q,
        q_base,
        first_row,
        len_q,
        block_q,
        dim,
        &mut q_tile,
        dk,
        unit,
        units,
    );

    let k_tiles = visible_keys(first_row, block_q, len_q, len_k, causal).div_ceil(block_k);

    let mut acc = Array::<f32>::new(half_v);
    #[unroll]
    for c in 0..half_v {
        acc[c] = 0.0f32;
    }
    let mut scores = Array::<f32>::new(half_k);
    let mut m = f32::new(MASKED);
    let mut l = 0.0f32;
    sync_cube();

    for t in 0..k_tiles {
        let k0 = t * block_k;
        load_half_tile::<F>(
            k,
            k_base,
            k0,
            len_k,
            block_k,
            dim,
            &mut k_tile,
            dk,
            unit,
            units,
        );
        load_half_tile::<F>(
            v,
            v_base,
            k0,
            len_k,
            block_k,
            dim_v,
            &mut v_tile,
            dv,
            unit,
            units,
        );
        sync_cube();

        // S = Q·Kᵀ for this plane's 16 rows, one 16-key fragment at a time; Kᵀ as B
        // (d × key): k_tile[key·Dk + d] is column-major with stride Dk.
        #[unroll]
        for kb in 0..k_steps {
            tile_product::<F>(
                &q_tile,
                plane * MMA * dk,
                MMA,
                comptime!(tiles.head_cap),
                &k_tile,
                kb * MMA * dk,
                MMA,
                comptime!(tiles.head_cap),
                true,
                dk_steps,
                &mut scratch,
                plane_scratch + kb * MMA,
                scratch_cols,
                cooperative,
                lane,
            );
        }
        sync_rows(cooperative);

        // Row r's scores, half of the keys per lane; masked ones get MASKED.
        let mut lane_max = f32::new(MASKED);
        #[unroll]
        for s in 0..half_k {
            let j = side * half_k + s;
            let visible =
                key_visible::<M>(key_padding, b, row, k0 + j, len_q, len_k, causal, padded);
            let score = select(
                visible,
                scratch[plane_scratch + r * scratch_cols + j] * scale,
                f32::new(MASKED),
            );
            lane_max = f32::max(lane_max, score);
            scores[s] = score;
        }
        let m_new = f32::max(
            m,
            f32::max(
                lane_max,
                pair_value(lane_max, &mut exchange, unit, cooperative),
            ),
        );
        let mut lane_sum = 0.0f32;
        #[unroll]
        for s in 0..half_k {
            let score = scores[s];
            let p = select(score > MASKED_BELOW, f32::exp(score - m_new), 0.0f32);
            lane_sum += p;
            p_tile[tile_row * block_k + side * half_k + s] = F::cast_from(p);
        }
        let alpha = f32::exp(m - m_new);
        l = l * alpha + lane_sum + pair_value(lane_sum, &mut exchange, unit, cooperative);
        m = m_new;
        sync_rows(cooperative);

        // O = P·V for this plane's rows, one 16-column fragment at a time.
        #[unroll]
        for vb in 0..dv_steps {
            tile_product::<F>(
                &p_tile,
                plane * MMA * block_k,
                MMA,
                comptime!(tiles.block_k),
                &v_tile,
                vb * MMA,
                MMA * dv,
                comptime!(tiles.value_cap),
                false,
                k_steps,
                &mut scratch,
                plane_scratch + vb * MMA,
                scratch_cols,
                cooperative,
                lane,
            );
        }
        sync_rows(cooperative);

        #[unroll]
        for c in 0..half_v {
            acc[c] = acc[c] * alpha + scratch[plane_scratch + r * scratch_cols + side * half_v + c];
        }
        sync_cube();
    }

    if row < len_q {
        let inv = select(l > 0.0f32, 1.0f32 / l, 0.0f32);
        let out_base = b * out.stride(0) + h * out.stride(1) + row * out.stride(2);
        #[unroll]
        for c in 0..half_v {
            let col = side * half_v + c;
            if col < dim_v {
                out[out_base + col * out.stride(3)] = F::cast_from(acc[c] * inv);
            }
        }
    }
}

/// One 16×16 block of a product, by the whole plane: `Σ_i A_i·B_i` over `steps` 16×16×16
/// blocks with f32 accumulation, stored row-major into `out` at `out_start` (row stride
/// `out_stride`). `A_i` is the row-major block of `a` at `a_start + i·a_step` (row stride
/// `a_stride`); `B_i` the block of `b` at `b_start + i·b_step` (stride `b_stride`, column-major
/// when `b_col_major`, else row-major).
///
/// `cooperative`: cooperative-matrix products (`cmma`, what the kernel is for). Otherwise each
/// of the plane's 32 lanes computes 8 of the 256 outputs with f32 arithmetic from the same
/// shared-memory blocks: the reference twin that runs the rest of the kernel on devices without
/// cooperative matrices.
#[allow(clippy::too_many_arguments)]
#[cube]
fn tile_product<F: Float>(
    a: &SharedMemory<F>,
    a_start: usize,
    a_step: usize,
    #[comptime] a_stride: usize,
    b: &SharedMemory<F>,
    b_start: usize,
    b_step: usize,
    #[comptime] b_stride: usize,
    #[comptime] b_col_major: bool,
    #[comptime] steps: usize,
    out: &mut SharedMemory<f32>,
    out_start: usize,
    #[comptime] out_stride: usize,
    #[comptime] cooperative: bool,
    lane: usize,
) {
    if cooperative {
        let acc = Matrix::<f32>::from_value(
            MatrixIdent::Accumulator,
            MMA,
            MMA,
            MMA,
            MatrixLayout::Undefined,
            0.0f32,
        );
        #[unroll]
        for i in 0..steps {
            let a_frag = Matrix::<F>::from_slice(
                MatrixIdent::A,
                MMA,
                MMA,
                MMA,
                MatrixLayout::RowMajor,
                &a.slice(a_start + i * a_step, a.len()),
                a_stride as u32,
            );
            let b_frag = Matrix::<F>::from_slice(
                MatrixIdent::B,
                MMA,
                MMA,
                MMA,
                comptime!(if b_col_major {
                    MatrixLayout::ColMajor
                } else {
                    MatrixLayout::RowMajor
                }),
                &b.slice(b_start + i * b_step, b.len()),
                b_stride as u32,
            );
            cmma::execute::<F, F, f32, f32>(&a_frag, &b_frag, &acc, &acc);
        }
        let mut dst = out.slice_mut(out_start, out.len());
        cmma::store(&mut dst, &acc, out_stride as u32, MatrixLayout::RowMajor);
    } else {
        let per_lane = comptime!(MMA * MMA / PLANE_SIZE);
        for e in 0..per_lane {
            let idx = lane * per_lane + e;
            let row = idx / MMA;
            let col = idx % MMA;
            let mut sum = 0.0f32;
            for i in 0..steps {
                let a_row = a_start + i * a_step + row * a_stride;
                let b_first = b_start + i * b_step;
                for d in 0..MMA {
                    let b_at = if b_col_major {
                        b_first + col * b_stride + d
                    } else {
                        b_first + d * b_stride + col
                    };
                    sum += f32::cast_from(a[a_row + d]) * f32::cast_from(b[b_at]);
                }
            }
            out[out_start + row * out_stride + col] = sum;
        }
    }
}

/// The value `x` of the other lane of this lane's pair (lanes `2r` and `2r + 1`, which share
/// row `r`): a plane shuffle with cooperative matrices; in the twin, through `exchange` between
/// cube barriers (devices without plane operations, such as wgpu on lavapipe, run it).
#[cube]
fn pair_value(
    x: f32,
    exchange: &mut SharedMemory<f32>,
    unit: usize,
    #[comptime] cooperative: bool,
) -> f32 {
    if cooperative {
        plane_shuffle_xor(x, 1u32)
    } else {
        sync_cube();
        exchange[unit] = x;
        sync_cube();
        exchange[unit ^ 1]
    }
}

/// The barrier around a plane's scratch and `P`: the plane's own (`sync_plane`) with
/// cooperative matrices; the cube's in the reference twin, whose 32-lane "planes" may span
/// several hardware planes (lavapipe's have 8 lanes).
#[cube]
fn sync_rows(#[comptime] cooperative: bool) {
    if cooperative {
        sync_plane();
    } else {
        sync_cube();
    }
}

/// `tile[i·tile_stride + d] = src[base + (first + i)·stride(2) + d·stride(3)]` for `i < rows`,
/// `d < tile_stride`, in the input dtype; zero for rows at or past `len` and for `d ≥ width`
/// (the fragments read whole multiples of 16). The cube's `units` units share the elements.
#[allow(clippy::too_many_arguments)]
#[cube]
fn load_half_tile<F: Float>(
    src: &Tensor<F>,
    base: usize,
    first: usize,
    len: usize,
    rows: usize,
    width: usize,
    tile: &mut SharedMemory<F>,
    tile_stride: usize,
    unit: usize,
    units: usize,
) {
    let mut e = unit;
    while e < rows * tile_stride {
        let i = e / tile_stride;
        let d = e % tile_stride;
        let row = first + i;
        let mut x = F::cast_from(0.0f32);
        if row < len && d < width {
            x = src[base + row * src.stride(2) + d * src.stride(3)];
        }
        tile[e] = x;
        e += units;
    }
}
