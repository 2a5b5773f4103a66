//! RetNet's relative position (torchscale 0.3.0 `RetNetRelPos`): the per-head decay `γ_h`, the
//! rotary "theta" shift `x·cos + rotate_every_two(x)·sin` (xPos without its length scaling, as
//! torchscale's RetNet uses it), and the decay tables of the parallel and chunkwise forms with
//! torchscale's normalisations.

use burn::tensor::{Tensor, TensorData, backend::Backend};

/// Base of the rotary frequencies (torchscale hard-codes 10000).
const ROTARY_BASE: f64 = 10_000.0;

/// Decays and rotary frequencies of a multi-scale retention layer.
///
/// - decay of head `h`: `γ_h = 1 − 2^(−5−h)` (RetNet sec. 2.2, "multi-scale");
/// - rotary frequency `i < key_dim/2`: `θ_i = 10000^(−i/(key_dim/2 − 1))` — torchscale spaces the
///   exponents with `linspace(0, 1, key_dim/2)`, so the last frequency is exactly `1/10000` (and a
///   single frequency is `1`); each frequency drives one adjacent pair `(2i, 2i+1)` (interleaved).
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionRelPos {
    angles: Vec<f64>,
    gammas: Vec<f64>,
}

impl RetentionRelPos {
    /// Decays for `n_heads` heads and frequencies for heads of width `key_dim`.
    ///
    /// # Panics
    /// If `key_dim` is zero or odd, or `n_heads` is zero (configs check this first).
    pub fn new(key_dim: usize, n_heads: usize) -> Self {
        assert!(
            key_dim > 0 && key_dim.is_multiple_of(2) && n_heads > 0,
            "retention rel-pos needs an even key_dim > 0 and n_heads > 0, got key_dim = {key_dim}, n_heads = {n_heads}"
        );
        let pairs = key_dim / 2;
        let angles = (0..pairs)
            .map(|i| {
                let exponent = if pairs == 1 {
                    0.0
                } else {
                    i as f64 / (pairs - 1) as f64
                };
                ROTARY_BASE.powf(-exponent)
            })
            .collect();
        let gammas = (0..n_heads)
            .map(|h| 1.0 - 2f64.powi(-5 - h as i32))
            .collect();
        Self { angles, gammas }
    }

    /// Per-head decays `γ_h`.
    pub fn gammas(&self) -> &[f64] {
        &self.gammas
    }

    /// Rotary frequencies `θ_i`, one per adjacent channel pair.
    pub fn angles(&self) -> &[f64] {
        &self.angles
    }

    /// Width of the rotated query/key heads.
    pub fn key_dim(&self) -> usize {
        2 * self.angles.len()
    }

    /// Number of heads.
    pub fn n_heads(&self) -> usize {
        self.gammas.len()
    }

    /// `G_h(n) = Σ_{c<n} γ_h^c`: the row sum of the decay mask of the `n`-th token (1-based), and
    /// torchscale's recurrent `scale` after `n` tokens.
    pub fn decay_sum(&self, head: usize, n: usize) -> f64 {
        let gamma = self.gammas[head];
        (1.0 - gamma.powi(n as i32)) / (1.0 - gamma)
    }

    /// `sin(p·θ)` and `cos(p·θ)` for positions `p = offset .. offset + len`, each frequency
    /// repeated for its channel pair.
    ///
    /// # Shapes
    /// → (`[len, key_dim]`, `[len, key_dim]`)
    pub fn sin_cos<B: Backend>(
        &self,
        offset: usize,
        len: usize,
        device: &B::Device,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let key_dim = self.key_dim();
        let mut sin = Vec::with_capacity(len * key_dim);
        let mut cos = Vec::with_capacity(len * key_dim);
        for p in offset..offset + len {
            for &theta in &self.angles {
                let (s, c) = (p as f64 * theta).sin_cos();
                sin.extend([s as f32; 2]);
                cos.extend([c as f32; 2]);
            }
        }
        let table = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [len, key_dim]), device);
        (table(sin), table(cos))
    }

    /// torchscale's parallel decay mask `D̃[h, n, m] = γ_h^(n−m) / sqrt(G_h(n+1))` for `m ≤ n`,
    /// zero above the diagonal: the causal decay matrix `D` of RetNet eq. 5 with each row divided
    /// by the square root of its sum.
    ///
    /// # Shapes
    /// → `[n_heads, len, len]`
    pub fn decay_mask<B: Backend>(&self, len: usize, device: &B::Device) -> Tensor<B, 3> {
        let mut mask = vec![0f32; self.n_heads() * len * len];
        for (h, &gamma) in self.gammas.iter().enumerate() {
            let powers: Vec<f64> = (0..len).map(|k| gamma.powi(k as i32)).collect();
            for n in 0..len {
                let norm = self.decay_sum(h, n + 1).sqrt();
                let row = &mut mask[(h * len + n) * len..][..=n];
                for (m, entry) in row.iter_mut().enumerate() {
                    *entry = (powers[n - m] / norm) as f32;
                }
            }
        }
        Tensor::from_data(TensorData::new(mask, [self.n_heads(), len, len]), device)
    }

    /// The tables of one chunk of `chunk_len ≤ chunk_size` tokens in torchscale's chunkwise form
    /// (its `RetNetRelPos(.., chunkwise_recurrent=True)`, generalised to a shorter last chunk).
    ///
    /// # Panics
    /// If `chunk_len` is zero or larger than `chunk_size`.
    pub fn chunk_tables<B: Backend>(
        &self,
        chunk_size: usize,
        chunk_len: usize,
        device: &B::Device,
    ) -> ChunkTables<B> {
        assert!(
            chunk_len > 0 && chunk_len <= chunk_size,
            "chunk_len = {chunk_len} must be in 1..={chunk_size} (chunk_size)"
        );
        let (heads, c) = (self.n_heads(), chunk_len);
        let mut inner = vec![0f32; heads * c * c];
        let mut query = vec![0f32; heads * c];
        let mut value = vec![0f32; heads * c];
        let mut cross = Vec::with_capacity(heads);
        for (h, &gamma) in self.gammas.iter().enumerate() {
            let chunk_sum = self.decay_sum(h, chunk_size);
            for j in 0..c {
                let norm = self.decay_sum(h, j + 1).sqrt();
                for i in 0..=j {
                    inner[(h * c + j) * c + i] = (gamma.powi((j - i) as i32) / norm) as f32;
                }
                query[h * c + j] = (gamma.powi(j as i32 + 1) * chunk_sum / norm) as f32;
                value[h * c + j] = (gamma.powi((c - 1 - j) as i32) / chunk_sum) as f32;
            }
            cross.push(gamma.powi(c as i32));
        }
        ChunkTables {
            inner_mask: Tensor::from_data(TensorData::new(inner, [heads, c, c]), device),
            query_decay: Tensor::from_data(TensorData::new(query, [heads, c]), device),
            value_decay: Tensor::from_data(TensorData::new(value, [heads, c]), device),
            cross_decay: cross,
        }
    }
}

/// Decay tables of one chunk of `c` tokens (chunk size `C`), as torchscale's chunkwise
/// `RetNetRelPos` builds them; `G_h(n) = Σ_{k<n} γ_h^k`.
#[derive(Clone, Debug)]
pub struct ChunkTables<B: Backend> {
    /// `γ_h^(j−i) / sqrt(G_h(j+1))` for `i ≤ j` (torchscale `inner_mask`). `[H, c, c]`
    pub inner_mask: Tensor<B, 3>,
    /// `γ_h^(j+1) · G_h(C) / sqrt(G_h(j+1))` (torchscale `query_inner_decay`). `[H, c]`
    pub query_decay: Tensor<B, 2>,
    /// `γ_h^(c−1−i) / G_h(C)` (torchscale `value_inner_decay`). `[H, c]`
    pub value_decay: Tensor<B, 2>,
    /// `γ_h^c`, the decay of the running state across the chunk (torchscale `cross_decay`).
    pub cross_decay: Vec<f64>,
}

/// The rotary "theta" shift `x·cos + rotate_every_two(x)·sin`, where `rotate_every_two` maps each
/// adjacent pair `(x_{2i}, x_{2i+1})` to `(−x_{2i+1}, x_{2i})` (torchscale `theta_shift`).
///
/// # Shapes
/// `x`: `[B, H, L, key_dim]`, `sin`, `cos`: `[L, key_dim]` → `[B, H, L, key_dim]`
///
/// # Panics
/// If `key_dim` is odd or the tables do not match `x`.
pub fn theta_shift<B: Backend>(
    x: Tensor<B, 4>,
    sin: Tensor<B, 2>,
    cos: Tensor<B, 2>,
) -> Tensor<B, 4> {
    let [b, h, l, d] = x.dims();
    assert!(
        d.is_multiple_of(2),
        "theta_shift needs an even key_dim, got {d}"
    );
    assert_eq!(
        sin.dims(),
        [l, d],
        "sin table [L, key_dim] vs x {:?}",
        x.dims()
    );
    assert_eq!(
        cos.dims(),
        [l, d],
        "cos table [L, key_dim] vs x {:?}",
        x.dims()
    );
    let pairs = x.clone().reshape([b, h, l, d / 2, 2]);
    let even = pairs.clone().narrow(4, 0, 1);
    let odd = pairs.narrow(4, 1, 1);
    let rotated = Tensor::cat(vec![odd.neg(), even], 4).reshape([b, h, l, d]);
    x * cos.unsqueeze::<4>() + rotated * sin.unsqueeze::<4>()
}
