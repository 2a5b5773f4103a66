//! The retention core on rotated queries/keys and values, per head, in RetNet's three forms
//! (Sun et al. 2023, sec. 2.1, eqs. 5–7; FlashVideo sec. 2.2), with torchscale 0.3.0's
//! normalisations, and the unnormalised recurrent loop as their readable reference.
//!
//! All forms compute, for token `n` of head `h`, `c_{n,h} · Σ_{m≤n} γ_h^(n−m) (q_n·k_m) v_m` with a
//! positive per-row factor `c` that differs between forms (torchscale's numerical guards):
//! - parallel: `c = 1 / (sqrt(G(n+1)) · max(|Σ_m D̃ ⊙ QKᵀ|, 1))`;
//! - recurrent: `c = 1 / sqrt(G(n+1))`;
//! - chunkwise: `c = 1 / (sqrt(G(j+1)) · max(inner, cross scale))`, `j` the index inside the chunk;
//!
//! where `G(n) = Σ_{k<n} γ^k`. The group RMS norm that follows cancels `c` exactly only when its
//! eps is 0; with eps > 0 the forms differ by `eps / c²` inside the norm (torchscale issue #40).

use super::rel_pos::{ChunkTables, RetentionRelPos};
use burn::tensor::{Tensor, TensorData, backend::Backend};

/// The recurrent state of one retention layer after `position` tokens, in torchscale's
/// normalisation: `kv = S_n / sqrt(scale)` with `S_n = Σ_{m<n} γ^(n−1−m) k_mᵀ v_m` (RetNet eq. 6)
/// and `scale = G(n) = Σ_{k<n} γ^k` per head. Its size does not grow with `position`, so token by
/// token generation costs the same at every step.
///
/// torchscale keeps `kv` as `prev_key_value` of shape `[B, H, head_dim, key_dim]`, the transpose
/// of ours.
#[derive(Clone, Debug)]
pub struct RetentionState<B: Backend> {
    /// Normalised state `S_n / sqrt(scale)`. `[B, H, key_dim, head_dim]`
    pub kv: Tensor<B, 4>,
    /// `G_h(n)` per head (0 before the first token).
    pub scale: Vec<f64>,
    /// Tokens consumed so far: the position of the next token.
    pub position: usize,
}

impl<B: Backend> RetentionState<B> {
    /// The state before the first token: zeros, scale 0, position 0.
    pub fn empty(
        batch: usize,
        n_heads: usize,
        key_dim: usize,
        head_dim: usize,
        device: &B::Device,
    ) -> Self {
        Self {
            kv: Tensor::zeros([batch, n_heads, key_dim, head_dim], device),
            scale: vec![0.0; n_heads],
            position: 0,
        }
    }

    /// The unnormalised state `S_n = kv · sqrt(scale)`. `[B, H, key_dim, head_dim]`
    pub fn unnormalized(&self) -> Tensor<B, 4> {
        let factor: Vec<f64> = self.scale.iter().map(|s| s.sqrt()).collect();
        self.kv.clone() * per_head(&factor, &self.kv.device())
    }
}

/// A per-head factor as a `[1, H, 1, 1]` tensor.
pub(crate) fn per_head<B: Backend>(values: &[f64], device: &B::Device) -> Tensor<B, 4> {
    let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(data, [1, values.len(), 1, 1]), device)
}

/// A `[H, c]` table as `[1, H, c, 1]`, to scale the rows of `[B, H, c, d]`.
fn per_row<B: Backend>(table: Tensor<B, 2>) -> Tensor<B, 4> {
    table.unsqueeze::<3>().unsqueeze_dim(3)
}

fn check_inputs<B: Backend>(qr: &Tensor<B, 4>, kr: &Tensor<B, 4>, v: &Tensor<B, 4>) {
    let [b, h, l, _] = qr.dims();
    assert_eq!(
        qr.dims(),
        kr.dims(),
        "retention: q {:?} and k {:?} differ",
        qr.dims(),
        kr.dims()
    );
    assert_eq!(
        &v.dims()[..3],
        &[b, h, l],
        "retention: v {:?} vs q {:?}",
        v.dims(),
        qr.dims()
    );
    assert!(l > 0, "retention: the sequence is empty");
}

/// Parallel form (RetNet eq. 5) as torchscale computes it:
/// `O = (QKᵀ ⊙ D̃) / max(|Σ_m (QKᵀ ⊙ D̃)_{nm}|, 1) · V`, the denominator detached from the graph.
///
/// # Shapes
/// `qr`, `kr`: `[B, H, L, key_dim]`, `v`: `[B, H, L, head_dim]`, `mask` (from
/// [`RetentionRelPos::decay_mask`]): `[H, L, L]` → `[B, H, L, head_dim]`
pub fn parallel_retention<B: Backend>(
    qr: Tensor<B, 4>,
    kr: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Tensor<B, 3>,
) -> Tensor<B, 4> {
    check_inputs(&qr, &kr, &v);
    let scores = qr.matmul(kr.transpose()) * mask.unsqueeze::<4>();
    let denom = scores.clone().detach().sum_dim(3).abs().clamp_min(1.0);
    (scores / denom).matmul(v)
}

/// Recurrent form (RetNet eq. 6) as torchscale's `recurrent_forward`, one token at a time:
/// `scale' = γ·scale + 1`, `kv' = kv·sqrt(scale)·γ/sqrt(scale') + k_nᵀ v_n / sqrt(scale')`,
/// `o_n = q_n · kv'`.
///
/// # Shapes
/// `qr`, `kr`: `[B, H, L, key_dim]`, `v`: `[B, H, L, head_dim]`, `state.kv`:
/// `[B, H, key_dim, head_dim]` → (`[B, H, L, head_dim]`, state after the `L` tokens)
pub fn recurrent_retention<B: Backend>(
    qr: Tensor<B, 4>,
    kr: Tensor<B, 4>,
    v: Tensor<B, 4>,
    gammas: &[f64],
    state: RetentionState<B>,
) -> (Tensor<B, 4>, RetentionState<B>) {
    check_inputs(&qr, &kr, &v);
    let device = qr.device();
    let RetentionState {
        mut kv,
        mut scale,
        position,
    } = state;
    let len = qr.dims()[2];
    let mut outputs = Vec::with_capacity(len);
    for n in 0..len {
        let next: Vec<f64> = scale.iter().zip(gammas).map(|(s, g)| s * g + 1.0).collect();
        let keep: Vec<f64> = (0..gammas.len())
            .map(|h| scale[h].sqrt() * gammas[h] / next[h].sqrt())
            .collect();
        let add: Vec<f64> = next.iter().map(|s| 1.0 / s.sqrt()).collect();
        let update = kr
            .clone()
            .narrow(2, n, 1)
            .transpose()
            .matmul(v.clone().narrow(2, n, 1));
        kv = kv * per_head(&keep, &device) + update * per_head(&add, &device);
        outputs.push(qr.clone().narrow(2, n, 1).matmul(kv.clone()));
        scale = next;
    }
    let out = Tensor::cat(outputs, 2);
    (
        out,
        RetentionState {
            kv,
            scale,
            position: position + len,
        },
    )
}

/// Chunkwise form (RetNet eq. 7) as torchscale's `chunk_recurrent_forward`: parallel inside each
/// chunk of `chunk_size` tokens, recurrent across chunks, any length (the last chunk may be
/// shorter; torchscale requires `chunk_size` to divide the length) and any starting state.
///
/// Per chunk: `inner = (Q Kᵀ ⊙ M) / s_in · V` with `s_in = max(Σ_m |(QKᵀ ⊙ M)_{jm}|, 1)`,
/// `cross = (Q ⊙ ξ) · R / s_x` with `s_x = max(max_v Σ_k |R_{kv}|, 1)` over the running state
/// `R = S / G(C)`, output `inner · s_in/s + cross · s_x/s` with `s = max(s_in, s_x)` (scales
/// detached), then `R ← γ^c R + Kᵀ (V ⊙ ζ)`; `M`, `ξ`, `ζ` from
/// [`RetentionRelPos::chunk_tables`].
///
/// # Shapes
/// `qr`, `kr`: `[B, H, L, key_dim]`, `v`: `[B, H, L, head_dim]` → (`[B, H, L, head_dim]`, state)
///
/// # Panics
/// If `chunk_size` is 0.
pub fn chunkwise_retention<B: Backend>(
    qr: Tensor<B, 4>,
    kr: Tensor<B, 4>,
    v: Tensor<B, 4>,
    rel_pos: &RetentionRelPos,
    chunk_size: usize,
    state: RetentionState<B>,
) -> (Tensor<B, 4>, RetentionState<B>) {
    check_inputs(&qr, &kr, &v);
    assert!(chunk_size > 0, "chunk_size must be greater than 0");
    let device = qr.device();
    let len = qr.dims()[2];
    let heads = 0..rel_pos.n_heads();
    let chunk_sum: Vec<f64> = heads
        .clone()
        .map(|h| rel_pos.decay_sum(h, chunk_size))
        .collect();
    let inv_chunk_sum: Vec<f64> = chunk_sum.iter().map(|s| 1.0 / s).collect();
    let mut running = state.unnormalized() * per_head(&inv_chunk_sum, &device);
    let full_tables = rel_pos.chunk_tables(chunk_size, chunk_size.min(len), &device);
    let mut outputs = Vec::with_capacity(len.div_ceil(chunk_size));
    for start in (0..len).step_by(chunk_size) {
        let c = chunk_size.min(len - start);
        let tail_tables;
        let tables = if c == chunk_size.min(len) {
            &full_tables
        } else {
            tail_tables = rel_pos.chunk_tables(chunk_size, c, &device);
            &tail_tables
        };
        let chunk = |x: &Tensor<B, 4>| x.clone().narrow(2, start, c);
        let (out, next) = one_chunk(chunk(&qr), chunk(&kr), chunk(&v), running, tables);
        outputs.push(out);
        running = next;
    }
    let position = state.position + len;
    let scale: Vec<f64> = heads.map(|h| rel_pos.decay_sum(h, position)).collect();
    let to_state: Vec<f64> = (0..scale.len())
        .map(|h| chunk_sum[h] / scale[h].sqrt())
        .collect();
    let kv = running * per_head(&to_state, &device);
    (
        Tensor::cat(outputs, 2),
        RetentionState {
            kv,
            scale,
            position,
        },
    )
}

/// One chunk of [`chunkwise_retention`]: its output and the next running state.
fn one_chunk<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    running: Tensor<B, 4>,
    tables: &ChunkTables<B>,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let [b, h, c, _] = q.dims();
    let device = q.device();
    let scores =
        q.clone().matmul(k.clone().transpose()) * tables.inner_mask.clone().unsqueeze::<4>();
    let inner_scale = scores.clone().detach().abs().sum_dim(3).clamp_min(1.0);
    let inner = (scores / inner_scale.clone()).matmul(v.clone());
    let cross_scale = running
        .clone()
        .detach()
        .abs()
        .sum_dim(2)
        .max_dim(3)
        .clamp_min(1.0);
    let query = q * per_row(tables.query_decay.clone());
    let cross = query.matmul(running.clone() / cross_scale.clone());
    let cross_scale = cross_scale.expand([b, h, c, 1]);
    let all_scale = inner_scale.clone().max_pair(cross_scale.clone());
    let out = inner / (all_scale.clone() / inner_scale) + cross / (all_scale / cross_scale);
    let update = k
        .transpose()
        .matmul(v * per_row(tables.value_decay.clone()));
    let next = running * per_head(&tables.cross_decay, &device) + update;
    (out, next)
}

/// Readable reference of the retention core: RetNet's recurrence without any normalisation,
/// `S_n = γ·S_{n−1} + k_nᵀ v_n`, `o_n = q_n · S_n`, from `S_{−1} = 0`. Equals every form above up
/// to its positive per-row factor (see the module docs), which the group norm removes when its
/// eps is 0.
///
/// # Shapes
/// `qr`, `kr`: `[B, H, L, key_dim]`, `v`: `[B, H, L, head_dim]` → `[B, H, L, head_dim]`
pub fn retention_reference<B: Backend>(
    qr: Tensor<B, 4>,
    kr: Tensor<B, 4>,
    v: Tensor<B, 4>,
    gammas: &[f64],
) -> Tensor<B, 4> {
    check_inputs(&qr, &kr, &v);
    let [b, h, len, key_dim] = qr.dims();
    let decay = per_head::<B>(gammas, &qr.device());
    let mut s = Tensor::<B, 4>::zeros([b, h, key_dim, v.dims()[3]], &qr.device());
    let mut outputs = Vec::with_capacity(len);
    for n in 0..len {
        let (q_n, k_n, v_n) = (
            qr.clone().narrow(2, n, 1),
            kr.clone().narrow(2, n, 1),
            v.clone().narrow(2, n, 1),
        );
        s = s * decay.clone() + k_n.transpose().matmul(v_n);
        outputs.push(q_n.matmul(s.clone()));
    }
    Tensor::cat(outputs, 2)
}
