//! FlashVideo inference (paper secs. 3.1–3.3, Figure 3): recurrent decoding with a constant-size
//! state, key-frame generation, redundancy-free interpolation and the whole-clip pipeline.
//!
//! A [`Decoder`] keeps the sequence of ids, the part of it already absorbed into the recurrent
//! state, and counters. Known ids (prompt, serial numbers, key frames, inherited codes) are only
//! queued ([`Decoder::push_known`]); the next time logits are needed, everything queued is absorbed
//! in **one model call** — the chunkwise form when more than one id is queued, the recurrent
//! [`FlashVideo::step`] otherwise. Inherited tokens therefore still enter the state (later tokens
//! must see them) but cost neither a sequential step nor a sample of their own, so an interpolated
//! frame costs `h·w − #inheritable` model calls.

use super::interp::{InterpolationPlan, classify_tokens};
use super::{FlashVideo, FlashVideoState};
use crate::error::{ModelError, same_size};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use vidgen_vae::VectorQuantizer;

/// SplitMix64 (Steele et al. 2014): a tiny, seedable generator so that sampling and the choice of
/// inheritable tokens are reproducible on every backend.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_f64() * n as f64) as usize).min(n - 1)
    }
}

/// How the next visual code is chosen from the logits (paper sec. 3.1: a random draw from the
/// softmax distribution).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// The most likely code (the first one on ties).
    Greedy,
    /// A draw from `softmax(logits / temperature)` with a SplitMix64 stream seeded by `seed`.
    Seeded {
        /// The caller's seed.
        seed: u64,
        /// Softmax temperature, `> 0`.
        temperature: f64,
    },
}

impl Sampling {
    /// The same rule with a seed derived from `seed` and `stream` (for independent streams, e.g.
    /// one per key-frame pair); `Greedy` stays `Greedy`.
    pub fn derive(self, stream: u64) -> Self {
        match self {
            Self::Greedy => Self::Greedy,
            Self::Seeded { seed, temperature } => Self::Seeded {
                seed: SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64(),
                temperature,
            },
        }
    }

    /// Picks a code from host logits.
    fn pick(&self, logits: &[f32], rng: &mut SplitMix64) -> usize {
        let argmax =
            |v: &[f32]| (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best });
        match *self {
            Self::Greedy => argmax(logits),
            Self::Seeded { temperature, .. } => {
                assert!(temperature > 0.0, "temperature {temperature} must be > 0");
                let max = logits[argmax(logits)] as f64;
                let weights: Vec<f64> = logits
                    .iter()
                    .map(|&l| ((l as f64 - max) / temperature).exp())
                    .collect();
                let mut u = rng.next_f64() * weights.iter().sum::<f64>();
                for (i, w) in weights.iter().enumerate() {
                    if u < *w {
                        return i;
                    }
                    u -= w;
                }
                logits.len() - 1
            }
        }
    }
}

/// Counters of one generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenerationStats {
    /// Forward calls of the model (each absorbs the queued known ids and yields one set of logits).
    pub model_calls: usize,
    /// Ids absorbed into the recurrent state by those calls.
    pub absorbed_tokens: usize,
    /// Visual codes sampled from logits.
    pub sampled_tokens: usize,
    /// Visual codes copied from key frames (inheritable tokens), never sampled.
    pub inherited_tokens: usize,
}

impl std::ops::AddAssign for GenerationStats {
    fn add_assign(&mut self, o: Self) {
        self.model_calls += o.model_calls;
        self.absorbed_tokens += o.absorbed_tokens;
        self.sampled_tokens += o.sampled_tokens;
        self.inherited_tokens += o.inherited_tokens;
    }
}

/// Recurrent decoding of one sequence (batch 1) with a [`FlashVideo`]; see the module docs.
pub struct Decoder<'a, B: Backend> {
    model: &'a FlashVideo<B>,
    device: B::Device,
    state: Option<FlashVideoState<B>>,
    ids: Vec<usize>,
    absorbed: usize,
    sampling: Sampling,
    rng: SplitMix64,
    trace: Option<Vec<(usize, Tensor<B, 1>)>>,
    /// Counters so far.
    pub stats: GenerationStats,
}

impl<'a, B: Backend> Decoder<'a, B> {
    /// An empty sequence.
    pub fn new(model: &'a FlashVideo<B>, sampling: Sampling, device: &B::Device) -> Self {
        let seed = match sampling {
            Sampling::Greedy => 0,
            Sampling::Seeded { seed, .. } => seed,
        };
        Self {
            model,
            device: device.clone(),
            state: Some(model.empty_state(1, device)),
            ids: Vec::new(),
            absorbed: 0,
            sampling,
            rng: SplitMix64::new(seed),
            trace: None,
            stats: GenerationStats::default(),
        }
    }

    /// Also records every set of logits with the position of the id it predicts ([`Self::trace`]).
    pub fn with_trace(mut self) -> Self {
        self.trace = Some(Vec::new());
        self
    }

    /// The whole sequence so far (absorbed and queued ids).
    pub fn ids(&self) -> &[usize] {
        &self.ids
    }

    /// The recurrent state (covering the absorbed ids).
    pub fn state(&self) -> &FlashVideoState<B> {
        self.state
            .as_ref()
            .expect("the state is only taken inside a model call")
    }

    /// Recorded `(position of the predicted id, logits [V])`, if tracing.
    pub fn trace(&self) -> &[(usize, Tensor<B, 1>)] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// Queues known ids; no model call.
    pub fn push_known(&mut self, ids: &[usize]) {
        self.ids.extend_from_slice(ids);
    }

    /// Absorbs the queued ids in one call and returns the logits `[V]` for the next id.
    ///
    /// # Panics
    /// If nothing is queued.
    pub fn next_logits(&mut self) -> Tensor<B, 1> {
        let pending = &self.ids[self.absorbed..];
        assert!(!pending.is_empty(), "next_logits: no queued ids to absorb");
        let n = pending.len();
        let state = self
            .state
            .take()
            .expect("decoder state present between calls");
        let logits = if n == 1 {
            let token = Tensor::<B, 1, Int>::from_data(
                TensorData::new(vec![pending[0] as i64], [1]),
                &self.device,
            );
            let (logits, state) = self.model.step(token, state);
            self.state = Some(state);
            logits.reshape([-1])
        } else {
            let tokens = FlashVideo::<B>::ids_tensor(pending, &self.device);
            let (logits, state) = self.model.forward_chunkwise(tokens, state);
            self.state = Some(state);
            logits.narrow(1, n - 1, 1).reshape([-1])
        };
        self.absorbed = self.ids.len();
        self.stats.model_calls += 1;
        self.stats.absorbed_tokens += n;
        if let Some(trace) = &mut self.trace {
            trace.push((self.ids.len(), logits.clone()));
        }
        logits
    }

    /// One model call, then a code chosen by the sampling rule and queued; returns the code.
    /// The logits are on the host already, so every one is checked: a NaN or ±∞ logit (a
    /// corrupt weight) is an error instead of an arbitrary code.
    ///
    /// # Errors
    /// [`ModelError::NonFinite`] naming `"logits"`, with the index of the sampled token as `step`
    /// and the sequence position it is sampled for as `time`.
    ///
    /// # Panics
    /// If nothing is queued, or a [`Sampling::Seeded`] temperature is not `> 0`.
    pub fn sample_next(&mut self) -> Result<usize, ModelError> {
        let logits = self.next_logits();
        let host = logits
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 logits");
        if host.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite {
                step: self.stats.sampled_tokens,
                time: self.ids.len() as f64,
                tensor: "logits",
            });
        }
        let code = self.sampling.pick(&host, &mut self.rng);
        self.push_known(&[self.model.visual_id(code)]);
        self.stats.sampled_tokens += 1;
        Ok(code)
    }
}

/// Key-frame generation (paper sec. 3.2, Figure 3 top): `[text][serial k][key frame k codes]` for
/// `k = 1..=n_key`, every code sampled token by token. Continues `dec`'s sequence, which should be
/// empty.
///
/// Returns `n_key` frames of `h·w` codes.
///
/// # Errors
/// Those of [`Decoder::sample_next`].
pub fn generate_key_frames<B: Backend>(
    dec: &mut Decoder<'_, B>,
    text: &[usize],
    n_key: usize,
) -> Result<Vec<Vec<usize>>, ModelError> {
    let model = dec.model;
    (0..n_key)
        .map(|k| {
            dec.push_known(&model.frame_prefix(text, k + 1, k == 0));
            (0..model.tokens_per_frame())
                .map(|_| dec.sample_next())
                .collect::<Result<Vec<_>, _>>()
        })
        .collect()
}

/// Redundancy-free interpolation of `n_insert` frames between key frames `key_a` and `key_b`
/// (paper secs. 3.2–3.3): the sequence `[text][serial 1][A][text][serial n+2][B]` is queued, then
/// frame `i = 1..=n` as `[text][serial i+1]` and its codes: positions that `plan` marks
/// inheritable copy `A`'s code (queued, not sampled), all others are sampled. Returns the
/// interpolated frames in display order (`A, I_1, …, I_n, B` once the caller places them).
///
/// # Errors
/// Those of [`Decoder::sample_next`].
///
/// # Panics
/// If `dec` is not empty, a key frame does not have `h·w` codes, `plan` does not cover `h·w`
/// positions or `n_insert + 2 > n_frames` (no serial number for the second key frame).
pub fn interpolate<B: Backend>(
    dec: &mut Decoder<'_, B>,
    text: &[usize],
    key_a: &[usize],
    key_b: &[usize],
    n_insert: usize,
    plan: &InterpolationPlan,
) -> Result<Vec<Vec<usize>>, ModelError> {
    let model = dec.model;
    let tpf = model.tokens_per_frame();
    assert!(dec.ids().is_empty(), "interpolate needs a fresh decoder");
    assert!(
        key_a.len() == tpf && key_b.len() == tpf && plan.classes.len() == tpf,
        "key frames ({}, {}) and plan ({}) must cover {tpf} positions",
        key_a.len(),
        key_b.len(),
        plan.classes.len()
    );
    let visual = |codes: &[usize]| {
        codes
            .iter()
            .map(|&c| model.visual_id(c))
            .collect::<Vec<_>>()
    };
    dec.push_known(&model.frame_prefix(text, 1, true));
    dec.push_known(&visual(key_a));
    dec.push_known(&model.frame_prefix(text, n_insert + 2, false));
    dec.push_known(&visual(key_b));
    let mut frames = Vec::with_capacity(n_insert);
    for i in 0..n_insert {
        dec.push_known(&model.frame_prefix(text, i + 2, false));
        let mut frame = Vec::with_capacity(tpf);
        for (j, &code_a) in key_a.iter().enumerate() {
            if plan.inherits(j) {
                dec.push_known(&[model.visual_id(code_a)]);
                dec.stats.inherited_tokens += 1;
                frame.push(code_a);
            } else {
                frame.push(dec.sample_next()?);
            }
        }
        frames.push(frame);
    }
    Ok(frames)
}

/// A generated clip.
#[derive(Clone, Debug)]
pub struct Video {
    /// `n_frames` frames of `h·w` visual codes, in display order.
    pub frames: Vec<Vec<usize>>,
    /// Counters of key-frame generation.
    pub key_frame_stats: GenerationStats,
    /// Counters of all interpolations together.
    pub interpolation_stats: GenerationStats,
    /// The plan of each key-frame pair.
    pub plans: Vec<InterpolationPlan>,
}

/// The whole pipeline (paper Figure 3): `n_key_frames` key frames with `key_model`, then
/// `key_frame_stride − 1` frames between each pair with `interp_model` (which may be the same
/// model), its token classes drawn with `selection_seed` (stream `p` for pair `p`) and its
/// sampling seeds derived from `sampling` ([`Sampling::derive`], stream 0 for key frames,
/// `p + 1` for pair `p`). Sizes come from `key_model`.
///
/// # Errors
/// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if the two models have different frame
/// grids or vocabularies; those of [`Decoder::sample_next`] (non-finite logits).
pub fn generate_video<B: Backend>(
    key_model: &FlashVideo<B>,
    interp_model: &FlashVideo<B>,
    text: &[usize],
    sampling: Sampling,
    selection_seed: u64,
    device: &B::Device,
) -> Result<Video, ModelError> {
    for (what, key, interp) in [
        (
            "interpolation model frame rows",
            key_model.frame_grid[0],
            interp_model.frame_grid[0],
        ),
        (
            "interpolation model frame columns",
            key_model.frame_grid[1],
            interp_model.frame_grid[1],
        ),
        (
            "interpolation model vocabulary",
            key_model.vocab_size,
            interp_model.vocab_size,
        ),
    ] {
        same_size(what, key, interp)?;
    }
    let stride = key_model.key_frame_stride;
    let n_key = (key_model.n_frames - 1) / stride + 1;
    let mut dec = Decoder::new(key_model, sampling.derive(0), device);
    let keys = generate_key_frames(&mut dec, text, n_key)?;
    let key_frame_stats = dec.stats;
    let (mut frames, mut plans) = (vec![keys[0].clone()], Vec::new());
    let mut interpolation_stats = GenerationStats::default();
    for (p, pair) in keys.windows(2).enumerate() {
        let plan = classify_tokens(
            &pair[0],
            &pair[1],
            interp_model.frame_grid,
            interp_model.unstable_radius,
            interp_model.inheritable_ratio,
            SplitMix64::new(selection_seed ^ p as u64).next_u64(),
        );
        let mut dec = Decoder::new(interp_model, sampling.derive(p as u64 + 1), device);
        frames.extend(interpolate(
            &mut dec,
            text,
            &pair[0],
            &pair[1],
            stride - 1,
            &plan,
        )?);
        frames.push(pair[1].clone());
        interpolation_stats += dec.stats;
        plans.push(plan);
    }
    Ok(Video {
        frames,
        key_frame_stats,
        interpolation_stats,
        plans,
    })
}

/// Decodes visual codes to RGB with a VQ codebook whose codes are `3·p·p` patches, laid out as
/// `(channel, row, column)` inside a code: `[T][h·w]` codes → video `[3, T, h·p, w·p]`, clamped to
/// `[−1, 1]`.
///
/// # Errors
/// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if `code_dim ≠ 3·p·p` or a frame does not have `h·w` codes.
pub fn decode_video<B: Backend>(
    vq: &VectorQuantizer<B>,
    frames: &[Vec<usize>],
    grid: [usize; 2],
    patch: usize,
    device: &B::Device,
) -> Result<Tensor<B, 4>, ModelError> {
    let [h, w] = grid;
    let (_, code_dim) = vq.dims();
    same_size("code_dim (3·patch²)", 3 * patch * patch, code_dim)?;
    let mut data = Vec::with_capacity(frames.len() * h * w);
    for frame in frames {
        same_size("codes per frame", h * w, frame.len())?;
        data.extend(frame.iter().map(|&c| c as i64));
    }
    let t = frames.len();
    let indices = Tensor::<B, 4, Int>::from_data(TensorData::new(data, [t, h, w, 1]), device);
    let codes = vq.decode_indices(indices); // [T, h, w, 3·p·p]
    let video = codes
        .reshape([t, h, w, 3, patch, patch])
        .permute([3, 0, 1, 4, 2, 5])
        .reshape([3, t, h * patch, w * patch]);
    Ok(video.clamp(-1.0, 1.0))
}
