//! Sampling with [`Stdit`]: rectified-flow Euler (Open-Sora report sec. 4.2; [`RectifiedFlow`])
//! with classifier-free guidance ([`ClassifierFreeGuidance`]) and optional clean conditioning
//! frames ([`FrameMask`], report sec. 3.3), plus [`TextToVideo`], which pairs the model with the
//! bundled word tokenizer and text embedding.
//!
//! One step `i` at flow time `σ_i`: conditioning frames are put back clean, the model is run on
//! `[uncond; cond]` text as one batch of `2B` (or as two passes), conditioning frames flagged for
//! timestep 0, `v = u + w·(c − u)`, `x ← x + (σ_{i+1} − σ_i)·v`. The unconditional text is the
//! model's learnt null caption ([`CaptionEmbedder::null`](super::CaptionEmbedder::null)) with the
//! same key-padding lengths as the prompt, as upstream.

use super::Stdit;
use super::block::component;
use crate::error::{ModelError, same_size};
use crate::text::{TextEmbedder, WordTokenizer};
use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};
use vidgen_schedulers::{
    ClassifierFreeGuidance, FiniteCheck, FrameMask, NoiseGenerator, RectifiedFlow,
    RectifiedFlowConfig, try_sample,
};

/// How classifier-free guidance evaluates the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CfgMode {
    /// One forward pass over `2B` samples ([`ClassifierFreeGuidance::guide`]).
    #[default]
    Batched,
    /// Two forward passes of `B` samples, then [`ClassifierFreeGuidance::combine`].
    TwoPass,
}

/// What a sampling run is conditioned on.
#[derive(Debug, Clone)]
pub struct StditConditioning<B: Backend> {
    /// Prompt features `[B, L, d_text]`.
    pub text: Tensor<B, 3>,
    /// Unconditional features `[B, L, d_text]` (e.g. the model's null caption,
    /// [`CaptionEmbedder::null`](super::CaptionEmbedder::null)).
    pub uncond_text: Tensor<B, 3>,
    /// Valid lengths of the `B` prompts (used for both branches).
    pub text_lens: Vec<usize>,
    /// Frame rate the model is conditioned on.
    pub fps: f64,
    /// Conditioning frames: which frames, and a clean latent `[B, C, T, H, W]` holding them.
    pub frames: Option<(FrameMask, Tensor<B, 5>)>,
    /// `(height, width)` of the decoded video in pixels, which scales the spatial positions as
    /// upstream does ([`StditInput::resolution`](super::StditInput::resolution)); `None`: the
    /// model's fixed [`pos_interpolation_scale`](super::StditConfig::pos_interpolation_scale).
    pub resolution: Option<[f64; 2]>,
}

/// The `[B, T]` bool tensor of a [`FrameMask`] (`true` = conditioning frame).
///
/// # Errors
/// [`ModelError::Component`] if the mask is not `B × T`.
pub fn frame_mask_tensor<B: Backend>(
    mask: &FrameMask,
    [batch, frames]: [usize; 2],
    device: &B::Device,
) -> Result<Tensor<B, 2, Bool>, ModelError> {
    mask.check(&[batch, 1, frames, 1, 1])
        .map_err(component("frame mask"))?;
    let flags: Vec<bool> = (0..batch * frames)
        .map(|i| mask.is_conditioning(i / frames, i % frames))
        .collect();
    Ok(Tensor::from_bool(
        TensorData::new(flags, [batch, frames]),
        device,
    ))
}

/// Everything one guided model evaluation needs, precomputed once per run.
struct Guided<'a, B: Backend> {
    model: &'a Stdit<B>,
    guidance: &'a ClassifierFreeGuidance,
    cond: &'a StditConditioning<B>,
    mask: Option<Tensor<B, 2, Bool>>,
    mode: CfgMode,
}

impl<B: Backend> Guided<'_, B> {
    /// The guided velocity at model time `t` (`σ·N`).
    fn velocity(&self, x: Tensor<B, 5>, t: f64) -> Result<Tensor<B, 5>, ModelError> {
        let batch = x.dims()[0];
        let device = x.device();
        let run = |x: Tensor<B, 5>, text: Tensor<B, 3>, reps: usize| {
            let n = batch * reps;
            let lens: Vec<usize> = (0..reps)
                .flat_map(|_| self.cond.text_lens.clone())
                .collect();
            let mask = self.mask.clone().map(|m| Tensor::cat(vec![m; reps], 0));
            let times = [
                Tensor::full([n], t, &device),
                Tensor::full([n], self.cond.fps, &device),
            ];
            let resolution = self.cond.resolution;
            self.model
                .velocity(x, times, (text, Some(&lens)), mask, resolution, false)
        };
        let (text, uncond) = (self.cond.text.clone(), self.cond.uncond_text.clone());
        match self.mode {
            CfgMode::TwoPass => {
                let c = run(x.clone(), text, 1)?;
                let u = run(x, uncond, 1)?;
                Ok(self.guidance.combine(c, u))
            }
            CfgMode::Batched => {
                let mut error = None;
                let v = self.guidance.guide(x, text, uncond, |x2, text2| {
                    let zeros = x2.zeros_like();
                    run(x2, text2, 2).unwrap_or_else(|e| {
                        error = Some(e);
                        zeros
                    })
                });
                error.map_or(Ok(v), Err)
            }
        }
    }
}

/// Samples a latent video: rectified-flow Euler steps of `flow` with classifier-free guidance,
/// from initial noise drawn from `noise` (then per-step noise if `flow` is stochastic). Frames of
/// `cond.frames` are kept equal to their clean values throughout and conditioned at timestep 0.
/// With [`FiniteCheck::EveryStep`] a NaN/±∞ velocity or sample stops the loop at that step.
///
/// # Shapes
/// `latent_shape = [B, C, T, H, W]`; `cond.text`, `cond.uncond_text`: `[B, L, d_text]` →
/// `[B, C, T, H, W]`
///
/// # Errors
/// [`ModelError::ShapeMismatch`] if the text batch, lengths or the clean latent disagree with
/// `latent_shape`; [`ModelError::Component`] for a frame mask of the wrong size or a scheduler
/// error; [`ModelError::NonFinite`] naming the step from the check; any error of
/// [`Stdit::try_forward`].
#[allow(clippy::too_many_arguments)]
pub fn sample_stdit<B: Backend>(
    model: &Stdit<B>,
    flow: &RectifiedFlow,
    guidance: &ClassifierFreeGuidance,
    cond: &StditConditioning<B>,
    latent_shape: [usize; 5],
    noise: &mut NoiseGenerator,
    mode: CfgMode,
    check: FiniteCheck,
) -> Result<Tensor<B, 5>, ModelError> {
    let device = cond.text.device();
    let [b, _, t, _, _] = latent_shape;
    same_size("text batch", b, cond.text.dims()[0])?;
    same_size("uncond_text batch", b, cond.uncond_text.dims()[0])?;
    same_size("text_lens length", b, cond.text_lens.len())?;
    let mask = match &cond.frames {
        Some((m, clean)) => {
            for (axis, (e, g)) in latent_shape.iter().zip(clean.dims()).enumerate() {
                if *e != g {
                    return Err(ModelError::ShapeMismatch {
                        what: ["clean B", "clean C", "clean T", "clean H", "clean W"][axis],
                        expected: *e,
                        got: g,
                    });
                }
            }
            Some(frame_mask_tensor::<B>(m, [b, t], &device)?)
        }
        None => None,
    };
    let reinsert = |x: Tensor<B, 5>| match &cond.frames {
        Some((m, clean)) => m
            .reinsert(x, clean.clone())
            .expect("frame mask checked against the latent shape"),
        None => x,
    };
    let guided = Guided {
        model,
        guidance,
        cond,
        mask,
        mode,
    };
    let initial = reinsert(noise.normal::<B, 5>(latent_shape, &device));
    // Putting the clean frames back before each evaluation and once at the end gives the same
    // result as after every step: the generated frames never read the drifted ones.
    let model_fn = |x: Tensor<B, 5>, t: f64| guided.velocity(reinsert(x), t);
    let out = try_sample(flow, model_fn, initial, noise, check)?;
    Ok(reinsert(out))
}

/// Settings of [`TextToVideo::generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Latent size `[C, T, H, W]` per sample.
    pub latent_size: [usize; 4],
    /// Euler steps (Open-Sora 1.2 samples videos with 30).
    pub num_steps: usize,
    /// Guidance weight (Open-Sora 1.2: 7).
    pub guidance_scale: f64,
    /// Guidance rescale `φ` (0 = plain CFG).
    pub guidance_rescale: f64,
    /// Frame rate the model is conditioned on.
    pub fps: f64,
    /// The flow schedule.
    pub flow: RectifiedFlowConfig,
    /// Seed of the noise.
    pub seed: u64,
    /// The non-finite guard of the sampling loop (on by default; see [`FiniteCheck`]).
    pub finite_check: FiniteCheck,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            latent_size: [4, 4, 8, 8],
            num_steps: 30,
            guidance_scale: 7.0,
            guidance_rescale: 0.0,
            fps: 24.0,
            flow: RectifiedFlowConfig::default(),
            seed: 0,
            finite_check: FiniteCheck::EveryStep,
        }
    }
}

/// A text-to-video pipeline: [`WordTokenizer`] → [`TextEmbedder`] → [`Stdit`] sampled by
/// [`sample_stdit`] with the model's null caption as the unconditional text.
#[derive(Debug)]
pub struct TextToVideo<B: Backend> {
    /// The denoiser.
    pub model: Stdit<B>,
    /// Prompt → ids.
    pub tokenizer: WordTokenizer,
    /// Ids → text features of width `d_text`.
    pub text_embedder: TextEmbedder<B>,
}

impl<B: Backend> TextToVideo<B> {
    /// Pairs the parts.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] if the embedding width is not the model's `d_text`, or the
    /// tokenizer's vocabulary is not the embedding's.
    pub fn new(
        model: Stdit<B>,
        tokenizer: WordTokenizer,
        text_embedder: TextEmbedder<B>,
    ) -> Result<Self, ModelError> {
        let [vocab, width] = text_embedder.embedding.weight.dims();
        same_size("text embedding width (d_text)", model.d_text, width)?;
        same_size("text embedding vocabulary", tokenizer.vocab_size(), vocab)?;
        Ok(Self {
            model,
            tokenizer,
            text_embedder,
        })
    }

    /// Text features `[N, max_len, d_text]` and valid lengths of `prompts`.
    ///
    /// # Errors
    /// [`ModelError::UnknownWords`] listing the words of the first prompt that are outside the
    /// vocabulary, with the vocabulary (a word the model never saw would otherwise be dropped
    /// silently; [`WordTokenizer::encode_lenient`] is the documented lenient path).
    pub fn encode(
        &self,
        prompts: &[&str],
        device: &B::Device,
    ) -> Result<(Tensor<B, 3>, Vec<usize>), ModelError> {
        let (ids, lens) = self.tokenizer.try_encode_batch::<B>(prompts, device)?;
        Ok((self.text_embedder.forward(ids), lens))
    }

    /// Generates one latent video per prompt.
    ///
    /// # Shapes
    /// → `[N, C, T, H, W]` with `[C, T, H, W] = options.latent_size`
    ///
    /// # Errors
    /// Those of [`encode`](Self::encode) (unknown words) and
    /// [`generate_from_embeddings`](Self::generate_from_embeddings).
    pub fn generate(
        &self,
        prompts: &[&str],
        options: &GenerateOptions,
        device: &B::Device,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let (text, lens) = self.encode(prompts, device)?;
        self.generate_from_embeddings(text, lens, options)
    }

    /// Generates from precomputed text features (e.g. T5 outputs read with
    /// [`load_text_embeddings`](crate::text::load_text_embeddings)).
    ///
    /// # Shapes
    /// `text`: `[N, L, d_text]`, `text_lens`: `N` → `[N, C, T, H, W]`
    ///
    /// # Errors
    /// [`ModelError::Component`] for invalid flow or guidance settings; [`ModelError::OutOfDomain`]
    /// if `L` exceeds the null caption; any error of [`sample_stdit`].
    pub fn generate_from_embeddings(
        &self,
        text: Tensor<B, 3>,
        text_lens: Vec<usize>,
        options: &GenerateOptions,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let [n, len, _] = text.dims();
        let flow = options
            .flow
            .init(options.num_steps, None)
            .map_err(component("flow"))?;
        let guidance =
            ClassifierFreeGuidance::new(options.guidance_scale, options.guidance_rescale)
                .map_err(component("guidance"))?;
        let cond = StditConditioning {
            uncond_text: self.model.y_embedder.null(n, len)?,
            text,
            text_lens,
            fps: options.fps,
            frames: None,
            resolution: None,
        };
        let [c, t, h, w] = options.latent_size;
        let mut noise = NoiseGenerator::seed_from_u64(options.seed);
        sample_stdit(
            &self.model,
            &flow,
            &guidance,
            &cond,
            [n, c, t, h, w],
            &mut noise,
            CfgMode::Batched,
            options.finite_check,
        )
    }
}
