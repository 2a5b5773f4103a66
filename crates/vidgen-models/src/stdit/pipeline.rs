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
use crate::denoise::{
    CfgMode, Conditioning, Denoiser, Guidance, TextConditioning, batch_repeats, sample,
};
use crate::error::ConfigError;
use crate::error::{ModelError, same_size};
use crate::generate::GenerateOptions;
use crate::text::{TextEmbedder, WordTokenizer};
use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};
use vidgen_schedulers::{
    ClassifierFreeGuidance, FiniteCheck, FrameMask, NoiseGenerator, RectifiedFlow,
};

/// What a sampling run is conditioned on.
#[derive(Debug, Clone)]
pub struct StditConditioning<B: Backend> {
    /// The prompt `[B, L, d_text]` and its padding.
    pub text: TextConditioning<B>,
    /// The unconditional text `[B, L, d_text]` (upstream: the model's null caption,
    /// [`CaptionEmbedder::null`](super::CaptionEmbedder::null), with the prompt's padding).
    pub uncond: TextConditioning<B>,
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

/// [`Stdit`] as a [`Denoiser`]: the velocity at a frame rate, with optional clean conditioning
/// frames (put back into `x` before every evaluation and flagged for timestep 0) and a pixel
/// resolution for the positional scale. Built by [`Stdit::denoiser`].
#[derive(Debug, Clone)]
pub struct StditDenoiser<'a, B: Backend> {
    model: &'a Stdit<B>,
    fps: f64,
    frames: Option<(Tensor<B, 2, Bool>, Tensor<B, 5>)>,
    resolution: Option<[f64; 2]>,
}

impl<B: Backend> Stdit<B> {
    /// This model as a [`Denoiser`] conditioned on frame rate `fps`.
    pub fn denoiser(&self, fps: f64) -> StditDenoiser<'_, B> {
        StditDenoiser {
            model: self,
            fps,
            frames: None,
            resolution: None,
        }
    }
}

impl<B: Backend> StditDenoiser<'_, B> {
    /// Keeps the frames flagged in `mask` (`[B, T]`, `true` = conditioning frame) equal to those
    /// of the clean latent `clean` (`[B, C, T, H, W]`).
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if the mask is not `[B, T]` of `clean`.
    pub fn with_frames(
        mut self,
        mask: Tensor<B, 2, Bool>,
        clean: Tensor<B, 5>,
    ) -> Result<Self, ModelError> {
        let [b, _, t, _, _] = clean.dims();
        let [mb, mt] = mask.dims();
        same_size("frame mask batch", b, mb)?;
        same_size("frame mask frames", t, mt)?;
        self.frames = Some((mask, clean));
        Ok(self)
    }

    /// Scales the spatial positions for a video of `[height, width]` pixels.
    pub fn with_resolution(mut self, resolution: Option<[f64; 2]>) -> Self {
        self.resolution = resolution;
        self
    }

    /// Puts the clean frames back into `x` (any multiple of the clean batch); also returns the
    /// frame mask repeated to `x`'s batch.
    #[allow(clippy::type_complexity)]
    fn reinsert(
        &self,
        x: Tensor<B, 5>,
    ) -> Result<(Tensor<B, 5>, Option<Tensor<B, 2, Bool>>), ModelError> {
        let Some((mask, clean)) = &self.frames else {
            return Ok((x, None));
        };
        let dims = x.dims();
        let what = "batch (a multiple of the clean latent's)";
        let k = batch_repeats(what, dims[0], clean.dims()[0])?;
        for (axis, (e, g)) in clean.dims().iter().zip(dims).enumerate().skip(1) {
            if *e != g {
                return Err(ModelError::Config(ConfigError::ShapeMismatch {
                    what: ["clean B", "clean C", "clean T", "clean H", "clean W"][axis],
                    expected: *e,
                    got: g,
                }));
            }
        }
        let mask = Tensor::cat(vec![mask.clone(); k], 0);
        let clean = Tensor::cat(vec![clean.clone(); k], 0);
        let [n, t] = mask.dims();
        let select = mask.clone().reshape([n, 1, t, 1, 1]).expand(dims);
        Ok((x.mask_where(select, clean), Some(mask)))
    }
}

impl<B: Backend> Denoiser<B> for StditDenoiser<'_, B> {
    fn denoise(
        &self,
        x: Tensor<B, 5>,
        time: Tensor<B, 1>,
        text: &TextConditioning<B>,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let (x, frame_mask) = self.reinsert(x)?;
        let n = x.dims()[0];
        let fps = Tensor::full([n], self.fps, &x.device());
        self.model
            .velocity(x, [time, fps], text, frame_mask, self.resolution)
    }
}

/// Samples a latent video: rectified-flow Euler steps of `flow` with classifier-free guidance,
/// from initial noise drawn from `noise` (then per-step noise if `flow` is stochastic) — the
/// generic [`sample`] loop over [`Stdit::denoiser`]. Frames of `cond.frames` are kept equal to
/// their clean values throughout and conditioned at timestep 0. With [`FiniteCheck::EveryStep`]
/// a NaN/±∞ velocity or sample stops the loop at that step.
///
/// # Shapes
/// `latent_shape = [B, C, T, H, W]`; `cond.text`, `cond.uncond`: `[B, L, d_text]` →
/// `[B, C, T, H, W]`
///
/// # Errors
/// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if the texts or the clean latent disagree with `latent_shape`;
/// [`ModelError::Component`] for a frame mask of the wrong size; [`ModelError::NonFinite`] naming
/// the step from the check; any error of [`Stdit::forward`].
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
    let device = cond.text.tokens.device();
    let [b, _, t, _, _] = latent_shape;
    let mut denoiser = model.denoiser(cond.fps).with_resolution(cond.resolution);
    if let Some((m, clean)) = &cond.frames {
        // The mask is built for `[B, T]`; `with_frames` checks the clean latent against it and
        // `reinsert` (on the initial noise below) checks its other axes.
        let mask = frame_mask_tensor::<B>(m, [b, t], &device)?;
        denoiser = denoiser.with_frames(mask, clean.clone())?;
    }
    let guidance = Guidance {
        cfg: *guidance,
        uncond: cond.uncond.clone(),
        mode,
    };
    let conditioning = Conditioning::guided(cond.text.clone(), guidance);
    conditioning.check(b)?;
    let initial = noise.normal::<B, 5>(latent_shape, &device);
    let (initial, _) = denoiser.reinsert(initial)?;
    let out = sample(
        flow,
        &denoiser,
        &conditioning,
        initial,
        noise,
        check,
        |_| {},
    )?;
    Ok(denoiser.reinsert(out)?.0)
}

/// A text-to-video pipeline: [`WordTokenizer`] → [`TextEmbedder`] → [`Stdit`] sampled by the
/// generic [`sample`] loop with [`GenerateOptions`], the model's null caption as the
/// unconditional text (with the prompt's padding, as upstream).
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
    /// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if the embedding width is not the model's `d_text`, or the
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
    /// Those of [`GenerateOptions::validate`]; [`ModelError::Config`]
    /// (`ConfigError::OutOfDomain`) if `L` exceeds the null caption; any error of [`sample`].
    pub fn generate_from_embeddings(
        &self,
        text: Tensor<B, 3>,
        text_lens: Vec<usize>,
        options: &GenerateOptions,
    ) -> Result<Tensor<B, 5>, ModelError> {
        options.validate()?;
        let [n, len, _] = text.dims();
        let flow = options.rectified_flow()?;
        let text = TextConditioning::from_lens(text, &text_lens)?;
        let null = || {
            Ok(TextConditioning {
                tokens: self.model.y_embedder.null(n, len)?,
                padding: text.padding.clone(),
            })
        };
        let cond = Conditioning {
            guidance: options.guidance(null)?,
            text: text.clone(),
        };
        let (mut rng, initial) = options.initial_noise(n, &text.tokens.device());
        let denoiser = self.model.denoiser(options.fps);
        let check = options.finite_check;
        sample(&flow, &denoiser, &cond, initial, &mut rng, check, |_| {})
    }
}
