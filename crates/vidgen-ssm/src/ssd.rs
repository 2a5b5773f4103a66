//! Mamba2's SSD scan (Dao & Gu 2024, "Transformers are SSMs", sec. 6 / Listing 1): the chunked
//! algorithm for any sequence length, and its per-timestep recurrence twin.
//!
//! Both take the discretised inputs of mamba-ssm's `ssd_minimal_discrete`: `x` already scaled by
//! `dt` and `a = dt·A` (log-decay per step, `≤ 0` in a Mamba2 layer). The state of head `h` evolves as
//!
//! ```text
//! h_t = exp(a_t)·h_{t−1} + x_t ⊗ B_t        (h_t: [P, N])
//! y_t = h_t · C_t                            (y_t: [P])
//! ```
//!
//! with `B_t`, `C_t` shared by the `H/G` consecutive heads of a group (mamba-ssm's `ngroups`).
//!
//! Divergences from `ssd_minimal_discrete`: any length (the last chunk is padded with `a = 0`,
//! `x = 0`, which leaves the state unchanged, and the padded outputs are dropped); `B`, `C` per group
//! instead of per head; the inter-chunk recurrence is a sequential loop over chunks (linear in the
//! number of chunks, as mamba-ssm's Triton `state_passing`) instead of the quadratic `segsum` matrix;
//! the within-chunk decays `exp(segsum(a))` are formed as differences of cumulative sums (as
//! mamba-ssm's chunk-scan kernels do), in contiguous tensor ops only (`causal_decay`).

use burn::tensor::{Bool, Int, Tensor, backend::Backend};
use vidgen_nn::layout::{contiguous, permute_contiguous};

/// Output of an SSD scan.
#[derive(Debug, Clone)]
pub struct SsdOutput<B: Backend> {
    /// `y`: `[B, L, H, P]`.
    pub y: Tensor<B, 4>,
    /// State after the last step, `[B, H, P, N]`.
    pub final_state: Tensor<B, 4>,
}

/// Checked sizes of one scan call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    len: usize,
    heads: usize,
    head_dim: usize,
    groups: usize,
    d_state: usize,
}

/// Validates the shapes of `x`, `a`, `b`, `c` and the initial state against each other.
fn dims<B: Backend>(
    x: &Tensor<B, 4>,
    a: &Tensor<B, 3>,
    b: &Tensor<B, 4>,
    c: &Tensor<B, 4>,
    init: Option<&Tensor<B, 4>>,
) -> Dims {
    let [batch, len, heads, head_dim] = x.dims();
    let [gb, gl, groups, d_state] = b.dims();
    assert_eq!(
        a.dims(),
        [batch, len, heads],
        "ssd: a must be [B, L, H] = {:?}",
        [batch, len, heads]
    );
    assert_eq!(
        [gb, gl],
        [batch, len],
        "ssd: b {:?} must be [B={batch}, L={len}, G, N]",
        b.dims()
    );
    assert_eq!(
        c.dims(),
        b.dims(),
        "ssd: c {:?} must have b's shape {:?}",
        c.dims(),
        b.dims()
    );
    assert!(
        groups > 0 && heads.is_multiple_of(groups),
        "ssd: n_heads = {heads} must be a multiple of n_groups = {groups}"
    );
    if let Some(s) = init {
        let want = [batch, heads, head_dim, d_state];
        assert_eq!(
            s.dims(),
            want,
            "ssd: initial state must be [B, H, P, N] = {want:?}"
        );
    }
    Dims {
        batch,
        len,
        heads,
        head_dim,
        groups,
        d_state,
    }
}

/// Stable segment sum of the last axis (mamba-ssm's `segsum`): `out[.., i, j] = Σ_{k=j+1..=i} x[.., k]`
/// for `i ≥ j` (0 on the diagonal) and `−∞` above it, built by a masked cumulative sum instead of
/// differences of cumulative sums.
///
/// # Shapes
/// `x`: `[B, H, C, T]` → `[B, H, C, T, T]`
pub fn segsum<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 5> {
    let [b, h, c, t] = x.dims();
    let device = x.device();
    let rep = x.unsqueeze_dim::<5>(4).expand([b, h, c, t, t]);
    // keep x[i] at (i, j) only where i > j, then sum down the rows: Σ_{j<k≤i} x[k]
    let strictly_lower: Tensor<B, 5, Bool> = Tensor::<B, 2, Bool>::tril_mask([t, t], -1, &device)
        .unsqueeze::<5>()
        .expand([b, h, c, t, t]);
    let sums = rep.mask_fill(strictly_lower, 0.0).cumsum(3);
    let lower: Tensor<B, 5, Bool> = Tensor::<B, 2, Bool>::tril_mask([t, t], 0, &device)
        .unsqueeze::<5>()
        .expand([b, h, c, t, t]);
    sums.mask_fill(lower, f32::NEG_INFINITY)
}

/// Chunked SSD scan (Listing 1 of the Mamba2 paper): intra-chunk outputs from the masked decay
/// matrix `exp(segsum(a))`, per-chunk states, the inter-chunk recurrence of those states, and their
/// contribution to each chunk's outputs. Any `L ≥ 1` and `chunk_size ≥ 1`.
///
/// # Shapes
/// - `x`: `[B, L, H, P]` (already multiplied by `dt`), `a`: `[B, L, H]` (`dt·A`)
/// - `b`, `c`: `[B, L, G, N]`, `H % G == 0`; head `h` uses group `h / (H/G)`
/// - `initial_state`: `[B, H, P, N]` (zeros if `None`)
/// - output `y`: `[B, L, H, P]`, `final_state`: `[B, H, P, N]`
///
/// # Panics
/// On inconsistent shapes, `L == 0` or `chunk_size == 0`, naming the sizes.
pub fn ssd_chunked<B: Backend>(
    x: Tensor<B, 4>,
    a: Tensor<B, 3>,
    b: Tensor<B, 4>,
    c: Tensor<B, 4>,
    chunk_size: usize,
    initial_state: Option<Tensor<B, 4>>,
) -> SsdOutput<B> {
    let d = dims(&x, &a, &b, &c, initial_state.as_ref());
    assert!(
        chunk_size > 0 && d.len > 0,
        "ssd_chunked: chunk_size = {chunk_size}, L = {}",
        d.len
    );
    let q = chunk_size.min(d.len);
    let n_chunks = d.len.div_ceil(q);
    let pad = n_chunks * q - d.len;
    let (bs, h, p, g, n) = (d.batch, d.heads, d.head_dim, d.groups, d.d_state);
    // The chunked operands are copied to contiguous tensors once (`permute_contiguous`: row
    // copies on flex, also of the gradients under `Autodiff<Flex>`; a plain view elsewhere)
    // rather than by every product that reads them.
    let x = permute_contiguous(
        pad_time(x, pad).reshape([bs, n_chunks, q, h, p]),
        [0, 1, 3, 2, 4],
    ); // [b,c,h,q,p]
    let a = pad_time(a.unsqueeze_dim::<4>(3), pad)
        .reshape([bs, n_chunks, q, h])
        .permute([0, 3, 1, 2]); // [b,h,c,q]
    let b = permute_contiguous(
        pad_time(b, pad).reshape([bs, n_chunks, q, g, n]),
        [0, 1, 3, 2, 4],
    ); // [b,c,g,q,n]
    let c = permute_contiguous(
        pad_time(c, pad).reshape([bs, n_chunks, q, g, n]),
        [0, 1, 3, 2, 4],
    ); // [b,c,g,q,n]
    let a_cumsum = a.cumsum(3); // [b,h,c,q]

    let y_diag = intra_chunk(&d, x.clone(), a_cumsum.clone(), b.clone(), c.clone());
    let states = chunk_states(&d, x, a_cumsum.clone(), b);
    let chunk_decay = a_cumsum
        .clone()
        .narrow(3, q - 1, 1)
        .squeeze_dim::<3>(3)
        .exp(); // [b,h,c]
    let init = initial_state.unwrap_or_else(|| Tensor::zeros([bs, h, p, n], &states.device()));
    let (states_in, final_state) = pass_states(states, chunk_decay, init);
    let y_off = state_to_output(&d, states_in, a_cumsum, c);

    let y = permute_contiguous(y_diag + y_off, [0, 1, 3, 2, 4]) // [b,c,q,h,p]
        .reshape([bs, n_chunks * q, h, p]);
    let y = if pad == 0 {
        y
    } else {
        contiguous(y.narrow(1, 0, d.len))
    };
    SsdOutput { y, final_state }
}

/// Pads axis 1 (time) at the end with `pad` zeros.
fn pad_time<B: Backend, const D: usize>(t: Tensor<B, D>, pad: usize) -> Tensor<B, D> {
    if pad == 0 {
        return t;
    }
    let mut shape = t.dims();
    shape[1] = pad;
    let zeros = Tensor::zeros(shape, &t.device());
    Tensor::cat(vec![t, zeros], 1)
}

/// Step 1, diagonal blocks: `Y_diag[l] = Σ_{s≤l} (C_l·B_s)·exp(Σ_{s<k≤l} a_k)·x_s` within a chunk.
/// `x`: `[b,c,h,q,p]`, `a_cumsum`: `[b,h,c,q]`, `b`/`c`: `[b,c,g,q,n]` → `[b,c,h,q,p]`.
fn intra_chunk<B: Backend>(
    d: &Dims,
    x: Tensor<B, 5>,
    a_cumsum: Tensor<B, 4>,
    b: Tensor<B, 5>,
    c: Tensor<B, 5>,
) -> Tensor<B, 5> {
    let [bs, nc, _, q, _] = x.dims();
    let r = d.heads / d.groups;
    let cb = c.matmul(b.swap_dims(3, 4)); // [b,c,g,q,q]
    let cb = if r == 1 {
        cb
    } else {
        cb.unsqueeze_dim::<6>(3)
            .repeat_dim(3, r)
            .reshape([bs, nc, d.heads, q, q])
    };
    let decay = causal_decay(a_cumsum); // [b,c,h,q,q]
    (cb * decay).matmul(x)
}

/// `exp(segsum)` of a chunk from the cumulative sums `s` of its `a`: `exp(s_i − s_j)` for `i ≥ j`
/// (`= exp(Σ_{j<k≤i} a_k)`), 0 above the diagonal, as mamba-ssm's chunk-scan kernels compute it.
/// The differences come from one batched `[q, 2]·[2, q]` product (`[s_i, 1]·[1, −s_j]ᵀ`) and the
/// causal mask from adding one `[q·q]` row of 0 / −∞ to every chunk, so every step runs on
/// contiguous tensors. `exp(`[`segsum`]`)` is the readable twin (masked cumulative sums; here the
/// difference of two sums of up to `q` terms loses `|s|·ε`): the unit test compares them.
///
/// # Shapes
/// `s`: `[b, h, c, q]` → `[b, c, h, q, q]`
fn causal_decay<B: Backend>(s: Tensor<B, 4>) -> Tensor<B, 5> {
    let [b, h, c, q] = s.dims();
    let device = s.device();
    let ones = Tensor::<B, 4>::ones([b, h, c, q], &device);
    // Stacked, then permuted to [b,c,h,..] (unit axes are added before any permutation, for
    // Burn 0.21's wgpu backend: docs/wgpu.md).
    let lhs = Tensor::stack::<5>(vec![s.clone(), ones.clone()], 4) // [b,h,c,q,2]: (s_i, 1)
        .permute([0, 2, 1, 3, 4]);
    let rhs = Tensor::stack::<5>(vec![ones, s.neg()], 3) // [b,h,c,2,q]: (1, −s_j)
        .permute([0, 2, 1, 3, 4]);
    // 0 on and below the diagonal, −∞ above (`tril_mask` is true above it, as in `segsum`).
    let mask = Tensor::<B, 2>::zeros([q, q], &device)
        .mask_fill(
            Tensor::<B, 2, Bool>::tril_mask([q, q], 0, &device),
            f32::NEG_INFINITY,
        )
        .reshape([1, q * q]);
    (lhs.matmul(rhs).reshape([b * c * h, q * q]) + mask)
        .exp()
        .reshape([b, c, h, q, q])
}

/// Step 2, each chunk's end state from its own inputs: `S = Σ_l exp(a_cum[end] − a_cum[l])·x_l ⊗ B_l`.
/// `x`: `[b,c,h,q,p]`, `a_cumsum`: `[b,h,c,q]`, `b`: `[b,c,g,q,n]` → `[b,c,h,p,n]`.
fn chunk_states<B: Backend>(
    d: &Dims,
    x: Tensor<B, 5>,
    a_cumsum: Tensor<B, 4>,
    b: Tensor<B, 5>,
) -> Tensor<B, 5> {
    let [bs, nc, h, q, p] = x.dims();
    let last = a_cumsum.clone().narrow(3, q - 1, 1);
    // Unsqueezed before permuting (as in `state_to_output`, for Burn 0.21's wgpu backend), then
    // reshaped to a contiguous [b,c,h,q,1] (a small copy): the product with `x` then runs on
    // contiguous operands.
    let decay = (last - a_cumsum)
        .exp()
        .unsqueeze_dim::<5>(4)
        .permute([0, 2, 1, 3, 4])
        .reshape([bs, nc, h, q, 1]);
    // Heads split into (group, head in group), so one `B` per group broadcasts over its heads;
    // the transposed `xd` is read in place by the product (no copy on backends whose matmul
    // takes strides, as flex's does).
    let r = h / d.groups;
    let xd = (x * decay)
        .reshape([bs, nc, d.groups, r, q, p])
        .swap_dims(4, 5); // [b,c,g,r,p,q]
    xd.matmul(b.unsqueeze_dim::<6>(3)) // [b,c,g,r,p,n]
        .reshape([bs, nc, h, p, d.d_state])
}

/// Step 3, inter-chunk recurrence `S_in[k+1] = exp(Σ a over chunk k)·S_in[k] + S[k]`, starting from
/// `init`. Returns the state entering each chunk `[b,c,h,p,n]` and the final state `[b,h,p,n]`.
fn pass_states<B: Backend>(
    states: Tensor<B, 5>,
    chunk_decay: Tensor<B, 3>,
    init: Tensor<B, 4>,
) -> (Tensor<B, 5>, Tensor<B, 4>) {
    let [_, nc, _, _, _] = states.dims();
    let device = states.device();
    let mut state = init;
    let mut entering = Vec::with_capacity(nc);
    for k in 0..nc {
        entering.push(state.clone());
        // `select` copies the chunk's decays: Burn 0.21's wgpu backend reads a one-wide
        // `narrow` reshaped to extra unit axes from the wrong offset (docs/wgpu.md).
        let index = Tensor::<B, 1, Int>::from_ints([k as i32], &device);
        let decay = chunk_decay.clone().select(2, index).unsqueeze_dim::<4>(3); // [b,h,1,1]
        let own = states.clone().narrow(1, k, 1).squeeze_dim::<4>(1);
        state = state * decay + own;
    }
    (Tensor::stack(entering, 1), state)
}

/// Step 4, off-diagonal blocks: `Y_off[l] = exp(a_cum[l])·(S_in · C_l)`.
/// `states_in`: `[b,c,h,p,n]`, `a_cumsum`: `[b,h,c,q]`, `c`: `[b,c,g,q,n]` → `[b,c,h,q,p]`.
fn state_to_output<B: Backend>(
    d: &Dims,
    states_in: Tensor<B, 5>,
    a_cumsum: Tensor<B, 4>,
    c: Tensor<B, 5>,
) -> Tensor<B, 5> {
    let [bs, nc, h, p, n] = states_in.dims();
    let q = c.dims()[3];
    let r = h / d.groups;
    // `C` of a group broadcast over its heads, the states read transposed in place.
    let s = states_in
        .reshape([bs, nc, d.groups, r, p, n])
        .swap_dims(4, 5); // [b,c,g,r,n,p]
    let y = c
        .unsqueeze_dim::<6>(3) // [b,c,g,1,q,n]
        .matmul(s) // [b,c,g,r,q,p]
        .reshape([bs, nc, h, q, p]);
    // Unsqueeze before permuting: Burn 0.21's wgpu backend reads a permuted tensor reshaped
    // to extra unit axes with wrong strides when an axis is 1 (here q = 1; docs/wgpu.md).
    // Then made contiguous [b,c,h,q,1] (a small copy): `y` is contiguous, and the product of
    // two contiguous operands is the backends' fast path.
    let decay = a_cumsum
        .exp()
        .unsqueeze_dim::<5>(4)
        .permute([0, 2, 1, 3, 4])
        .reshape([bs, nc, h, q, 1]);
    y * decay
}

/// One step of the recurrence: `h ← exp(a)·h + x ⊗ B`, `y = h · C`.
///
/// # Shapes
/// `state`: `[B, H, P, N]`, `x`: `[B, H, P]` (already times `dt`), `a`: `[B, H]` (`dt·A`),
/// `b`, `c`: `[B, G, N]` → (`y`: `[B, H, P]`, new state `[B, H, P, N]`)
///
/// # Panics
/// If `H` is not a multiple of `G` or the shapes disagree.
pub fn ssd_step<B: Backend>(
    state: Tensor<B, 4>,
    x: Tensor<B, 3>,
    a: Tensor<B, 2>,
    b: Tensor<B, 3>,
    c: Tensor<B, 3>,
) -> (Tensor<B, 3>, Tensor<B, 4>) {
    let [bs, h, _, n] = state.dims();
    let g = b.dims()[1];
    assert!(
        g > 0 && h.is_multiple_of(g),
        "ssd_step: n_heads = {h}, n_groups = {g}"
    );
    let per_head = |t: Tensor<B, 3>| {
        t.unsqueeze_dim::<4>(2)
            .expand([bs, g, h / g, n])
            .reshape([bs, h, n])
    };
    let (b, c) = (per_head(b), per_head(c));
    let decay = a.exp().unsqueeze_dims::<4>(&[2, 3]);
    let state = state * decay + x.unsqueeze_dim::<4>(3) * b.unsqueeze_dim::<4>(2);
    let y = state
        .clone()
        .matmul(c.unsqueeze_dim::<4>(3))
        .squeeze_dim::<3>(3);
    (y, state)
}

/// Per-timestep recurrence reference for [`ssd_chunked`] (same arguments except `chunk_size`):
/// a loop of [`ssd_step`] over `L`.
///
/// # Shapes
/// As [`ssd_chunked`].
///
/// # Panics
/// On inconsistent shapes, naming the sizes.
pub fn ssd_reference<B: Backend>(
    x: Tensor<B, 4>,
    a: Tensor<B, 3>,
    b: Tensor<B, 4>,
    c: Tensor<B, 4>,
    initial_state: Option<Tensor<B, 4>>,
) -> SsdOutput<B> {
    let d = dims(&x, &a, &b, &c, initial_state.as_ref());
    let shape = [d.batch, d.heads, d.head_dim, d.d_state];
    let mut state = initial_state.unwrap_or_else(|| Tensor::zeros(shape, &x.device()));
    let mut ys = Vec::with_capacity(d.len);
    for t in 0..d.len {
        let x_t = x.clone().narrow(1, t, 1).squeeze_dim::<3>(1);
        let a_t = a.clone().narrow(1, t, 1).squeeze_dim::<2>(1);
        let b_t = b.clone().narrow(1, t, 1).squeeze_dim::<3>(1);
        let c_t = c.clone().narrow(1, t, 1).squeeze_dim::<3>(1);
        let (y, next) = ssd_step(state, x_t, a_t, b_t, c_t);
        ys.push(y);
        state = next;
    }
    SsdOutput {
        y: Tensor::stack(ys, 1),
        final_state: state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};
    use vidgen_testing::Flex;

    /// The contiguous difference form of the chunk decays equals `exp(segsum)`, its readable
    /// twin, zero above the diagonal included.
    #[test]
    fn causal_decay_matches_exp_segsum() {
        let device = Default::default();
        let a = Tensor::<Flex, 4>::random([2, 3, 4, 37], Distribution::Uniform(-0.5, 0.0), &device);
        let fast = causal_decay(a.clone().cumsum(3)); // [b,c,h,q,q]
        let twin = segsum(a).exp().swap_dims(1, 2); // [b,h,c,q,q] → [b,c,h,q,q]
        fast.into_data()
            .assert_approx_eq::<f32>(&twin.into_data(), Tolerance::absolute(1e-6));
    }
}
