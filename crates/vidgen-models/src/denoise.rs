//! One way to sample every model: the [`Denoiser`] trait the networks implement, the one text
//! conditioning ([`TextConditioning`]), classifier-free guidance on the model side ([`Guidance`],
//! [`guided`]), and [`sample`], which runs any [`SamplingLoop`] of vidgen-schedulers (DDPM, DDIM,
//! Euler, rectified flow, EDM Euler/Heun) over any denoiser.
//!
//! ```text
//! sample(loop, denoiser, cond, noise):
//!     loop.run(|x, t| guided(denoiser, x, [t; B], cond.text, cond.guidance), noise)
//! guided (batched):  out = denoiser([x; x], [t; t], [uncond; text])  (diffusers' order)
//!                    cfg.combine(out[B..], out[..B])
//! ```
//!
//! The scheduler crate keeps only the schedule and the combine/rescale math
//! ([`ClassifierFreeGuidance`]); building the guidance batch — which needs the text — happens
//! here, next to the model, as diffusers' pipelines own CFG.

use crate::error::ConfigError;
use crate::error::{ModelError, same_size};
use burn::tensor::{Bool, Int, Tensor, backend::Backend};
use vidgen_attention::key_padding_mask;
use vidgen_schedulers::{ClassifierFreeGuidance, FiniteCheck, NoiseSource, Progress, SamplingLoop};

/// Text tokens and their key-padding mask: what every model of this crate is conditioned on.
#[derive(Debug, Clone)]
pub struct TextConditioning<B: Backend> {
    /// Token features `[B, L, d_text]`.
    pub tokens: Tensor<B, 3>,
    /// `[B, L]`, `true` = padding (masked out of cross-attention); `None` = all tokens valid.
    pub padding: Option<Tensor<B, 2, Bool>>,
}

impl<B: Backend> TextConditioning<B> {
    /// Tokens without padding.
    pub fn new(tokens: Tensor<B, 3>) -> Self {
        Self {
            tokens,
            padding: None,
        }
    }

    /// Tokens with a key-padding mask (`true` = padded).
    pub fn with_padding(tokens: Tensor<B, 3>, padding: Tensor<B, 2, Bool>) -> Self {
        Self {
            tokens,
            padding: Some(padding),
        }
    }

    /// Tokens whose first `lens[b]` entries are valid in sample `b`.
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if `lens` does not have one entry per sample or an entry
    /// exceeds the token count.
    pub fn from_lens(tokens: Tensor<B, 3>, lens: &[usize]) -> Result<Self, ModelError> {
        let [b, l, _] = tokens.dims();
        same_size("text_lens length", b, lens.len())?;
        if let Some(&too_long) = lens.iter().find(|&&n| n > l) {
            return Err(ModelError::Config(ConfigError::ShapeMismatch {
                what: "text_lens entry (at most the text length)",
                expected: l,
                got: too_long,
            }));
        }
        let padding = key_padding_mask::<B>(lens, l, &tokens.device());
        Ok(Self::with_padding(tokens, padding))
    }

    /// Batch size `B`.
    pub fn batch(&self) -> usize {
        self.tokens.dims()[0]
    }

    /// Token count `L`.
    pub fn len(&self) -> usize {
        self.tokens.dims()[1]
    }

    /// Whether there are no tokens (`L = 0`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the batch size and that the mask matches the tokens.
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) naming `what` and the mismatching size.
    pub fn check(&self, what: &'static str, batch: usize) -> Result<(), ModelError> {
        same_size(what, batch, self.batch())?;
        if let Some(mask) = &self.padding {
            let [mb, ml] = mask.dims();
            same_size("text padding batch", batch, mb)?;
            same_size("text padding length", self.len(), ml)?;
        }
        Ok(())
    }

    /// The mask, all-valid (`false`) where there is none.
    fn padding_or_valid(&self) -> Tensor<B, 2, Bool> {
        let [b, l, _] = self.tokens.dims();
        self.padding.clone().unwrap_or_else(|| {
            Tensor::<B, 2, Int>::zeros([b, l], &self.tokens.device()).equal_elem(1)
        })
    }

    /// `first` then `second` along the batch axis (a mask if either has one).
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if the token counts or widths differ.
    pub fn cat(first: &Self, second: &Self) -> Result<Self, ModelError> {
        same_size("text length", first.len(), second.len())?;
        same_size(
            "text width",
            first.tokens.dims()[2],
            second.tokens.dims()[2],
        )?;
        let padding = (first.padding.is_some() || second.padding.is_some())
            .then(|| Tensor::cat(vec![first.padding_or_valid(), second.padding_or_valid()], 0));
        Ok(Self {
            tokens: Tensor::cat(vec![first.tokens.clone(), second.tokens.clone()], 0),
            padding,
        })
    }
}

/// A denoising network: one evaluation at noisy `x` and model time `time` under a text
/// conditioning, returning the raw output its sampler expects (a flow velocity, ε, or EDM's
/// `F(c_in·x, c_noise)`). Every error is a [`ModelError`], never a panic.
///
/// A denoiser set up for a batch of `B` (per-sample frame rates, conditioning frames, …) must also
/// accept `k·B` samples stacked along the batch axis — the guidance batch — by repeating those
/// per-sample values `k` times.
pub trait Denoiser<B: Backend> {
    /// One network evaluation.
    ///
    /// # Shapes
    /// `x`: `[N, C, T, H, W]`, `time`: `[N]`, `text.tokens`: `[N, L, d_text]` → `[N, C, T, H, W]`
    ///
    /// # Errors
    /// The network's input errors ([`ModelError::Config`] (`ConfigError::ShapeMismatch`) naming the input, …).
    fn denoise(
        &self,
        x: Tensor<B, 5>,
        time: Tensor<B, 1>,
        text: &TextConditioning<B>,
    ) -> Result<Tensor<B, 5>, ModelError>;
}

impl<B: Backend, D: Denoiser<B> + ?Sized> Denoiser<B> for &D {
    fn denoise(
        &self,
        x: Tensor<B, 5>,
        time: Tensor<B, 1>,
        text: &TextConditioning<B>,
    ) -> Result<Tensor<B, 5>, ModelError> {
        (**self).denoise(x, time, text)
    }
}

/// `n / b`: how many times a denoiser set up for `b` samples repeats its per-sample values for a
/// batch of `n` (the guidance batch).
///
/// # Errors
/// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) naming `what` if `n` is not a multiple
/// of `b` (or `b` is 0).
pub(crate) fn batch_repeats(what: &'static str, n: usize, b: usize) -> Result<usize, ModelError> {
    if b == 0 || !n.is_multiple_of(b) {
        return Err(ModelError::Config(ConfigError::ShapeMismatch {
            what,
            expected: b,
            got: n,
        }));
    }
    Ok(n / b)
}

/// How classifier-free guidance evaluates the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CfgMode {
    /// One forward pass over `2B` samples, `[uncond; cond]`.
    #[default]
    Batched,
    /// Two forward passes of `B` samples, then [`ClassifierFreeGuidance::combine`].
    TwoPass,
}

/// Classifier-free guidance against an unconditional text.
#[derive(Debug, Clone)]
pub struct Guidance<B: Backend> {
    /// Weight and rescale.
    pub cfg: ClassifierFreeGuidance,
    /// The unconditional text (a model's null caption, an empty prompt), same shape as the prompt.
    pub uncond: TextConditioning<B>,
    /// One batched pass or two passes.
    pub mode: CfgMode,
}

impl<B: Backend> Guidance<B> {
    /// Batched guidance with weight `scale` and rescale `rescale` against `uncond`.
    ///
    /// # Errors
    /// Those of [`ClassifierFreeGuidance::new`].
    pub fn new(scale: f64, rescale: f64, uncond: TextConditioning<B>) -> Result<Self, ModelError> {
        Ok(Self {
            cfg: ClassifierFreeGuidance::new(scale, rescale)?,
            uncond,
            mode: CfgMode::Batched,
        })
    }

    /// The same guidance evaluated in `mode`.
    pub fn with_mode(mut self, mode: CfgMode) -> Self {
        self.mode = mode;
        self
    }
}

/// What a sampling run is conditioned on: the prompt and, optionally, guidance.
#[derive(Debug, Clone)]
pub struct Conditioning<B: Backend> {
    /// The prompt.
    pub text: TextConditioning<B>,
    /// Classifier-free guidance; `None` = the conditional prediction alone.
    pub guidance: Option<Guidance<B>>,
}

impl<B: Backend> Conditioning<B> {
    /// The prompt without guidance.
    pub fn text(text: TextConditioning<B>) -> Self {
        Self {
            text,
            guidance: None,
        }
    }

    /// The prompt with guidance.
    pub fn guided(text: TextConditioning<B>, guidance: Guidance<B>) -> Self {
        Self {
            text,
            guidance: Some(guidance),
        }
    }

    /// Checks both texts against a batch of `batch` samples and each other.
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) naming the mismatching size.
    pub fn check(&self, batch: usize) -> Result<(), ModelError> {
        self.text.check("text batch", batch)?;
        if let Some(g) = &self.guidance {
            g.uncond.check("unconditional text batch", batch)?;
            same_size("unconditional text length", self.text.len(), g.uncond.len())?;
        }
        Ok(())
    }
}

/// One guided evaluation: `denoiser` under `text`, combined with its evaluation under
/// `guidance.uncond` as [`ClassifierFreeGuidance::combine`] (`u + w·(c − u)`, rescaled), batched
/// as `[uncond; cond]` or in two passes; without guidance the conditional output alone.
///
/// # Shapes
/// `x`: `[B, C, T, H, W]`, `time`: `[B]`, texts `[B, L, d]` → `[B, C, T, H, W]`
///
/// # Errors
/// The denoiser's errors; [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if the two texts differ in length.
pub fn guided<B: Backend, D: Denoiser<B> + ?Sized>(
    denoiser: &D,
    x: Tensor<B, 5>,
    time: Tensor<B, 1>,
    text: &TextConditioning<B>,
    guidance: Option<&Guidance<B>>,
) -> Result<Tensor<B, 5>, ModelError> {
    let both = batched_text(text, guidance)?;
    guided_with(denoiser, x, time, text, guidance, both.as_ref())
}

/// `[uncond; text]` for [`CfgMode::Batched`] guidance, built once per run.
fn batched_text<B: Backend>(
    text: &TextConditioning<B>,
    guidance: Option<&Guidance<B>>,
) -> Result<Option<TextConditioning<B>>, ModelError> {
    match guidance {
        Some(g) if g.mode == CfgMode::Batched => Ok(Some(TextConditioning::cat(&g.uncond, text)?)),
        _ => Ok(None),
    }
}

/// [`guided`] with the batched text of [`batched_text`] already built.
fn guided_with<B: Backend, D: Denoiser<B> + ?Sized>(
    denoiser: &D,
    x: Tensor<B, 5>,
    time: Tensor<B, 1>,
    text: &TextConditioning<B>,
    guidance: Option<&Guidance<B>>,
    both: Option<&TextConditioning<B>>,
) -> Result<Tensor<B, 5>, ModelError> {
    let Some(g) = guidance else {
        return denoiser.denoise(x, time, text);
    };
    match (g.mode, both) {
        (CfgMode::Batched, Some(both)) => {
            let batch = x.dims()[0];
            let out = denoiser.denoise(
                Tensor::cat(vec![x.clone(), x], 0),
                Tensor::cat(vec![time.clone(), time], 0),
                both,
            )?;
            let uncond = out.clone().narrow(0, 0, batch);
            Ok(g.cfg.combine(out.narrow(0, batch, batch), uncond))
        }
        _ => {
            let cond = denoiser.denoise(x.clone(), time.clone(), text)?;
            let uncond = denoiser.denoise(x, time, &g.uncond)?;
            Ok(g.cfg.combine(cond, uncond))
        }
    }
}

/// Samples a latent video: `sampler`'s loop over `denoiser` under `cond` (with guidance where it
/// has one), from standard-normal `initial_noise`. Every step's model time goes to the model as a
/// `[B]` tensor; stochastic steps draw from `rng`; `check` stops the run with
/// [`ModelError::NonFinite`] naming the step when the output or sample goes NaN/±∞; `progress`
/// sees each step ([`Progress`]: index, time, sample, guided model output).
///
/// # Shapes
/// `initial_noise`: `[B, C, T, H, W]`, texts `[B, L, d_text]` → `[B, C, T, H, W]`
///
/// # Errors
/// [`ModelError::Config`] (`ConfigError::ShapeMismatch`) if a text disagrees with the batch; the denoiser's errors;
/// scheduler errors ([`ModelError::NonFinite`] from the guard).
pub fn sample<B, S, D, N>(
    sampler: &S,
    denoiser: &D,
    cond: &Conditioning<B>,
    initial_noise: Tensor<B, 5>,
    rng: &mut N,
    check: FiniteCheck,
    progress: impl FnMut(Progress<'_, B, 5>),
) -> Result<Tensor<B, 5>, ModelError>
where
    B: Backend,
    S: SamplingLoop + ?Sized,
    D: Denoiser<B> + ?Sized,
    N: NoiseSource<B, 5>,
{
    let batch = initial_noise.dims()[0];
    cond.check(batch)?;
    let device = initial_noise.device();
    let guidance = cond.guidance.as_ref();
    let both = batched_text(&cond.text, guidance)?;
    let model = |x: Tensor<B, 5>, t: f64| {
        let time = Tensor::full([batch], t, &device);
        guided_with(denoiser, x, time, &cond.text, guidance, both.as_ref())
    };
    sampler.run::<B, 5, _, _, ModelError, _>(model, initial_noise, rng, check, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidgen_schedulers::{NoiseGenerator, RectifiedFlowConfig};
    use vidgen_testing::{Flex, Tolerance, assert_close};

    /// A toy denoiser: `x·(1 + mean text) + time/1000`, per sample.
    struct Toy;

    impl Denoiser<Flex> for Toy {
        fn denoise(
            &self,
            x: Tensor<Flex, 5>,
            time: Tensor<Flex, 1>,
            text: &TextConditioning<Flex>,
        ) -> Result<Tensor<Flex, 5>, ModelError> {
            let n = x.dims()[0];
            same_size("toy batch", n, text.batch())?;
            let t: Tensor<Flex, 5> = (time / 1000.0).reshape([n, 1, 1, 1, 1]);
            let c: Tensor<Flex, 5> = text
                .tokens
                .clone()
                .mean_dim(1)
                .mean_dim(2)
                .reshape([n, 1, 1, 1, 1]);
            Ok(x * (c + 1.0) + t)
        }
    }

    #[test]
    fn batched_and_two_pass_guidance_agree() {
        let device = Default::default();
        let mut rng = NoiseGenerator::seed_from_u64(3);
        let x = rng.normal::<Flex, 5>([2, 1, 2, 2, 2], &device);
        let text = TextConditioning::new(rng.normal::<Flex, 3>([2, 3, 4], &device));
        let uncond = TextConditioning::new(Tensor::zeros([2, 3, 4], &device));
        let g = Guidance::new(5.0, 0.7, uncond).unwrap();
        let time = Tensor::from_floats([500.0, 250.0], &device);
        let batched = guided(&Toy, x.clone(), time.clone(), &text, Some(&g)).unwrap();
        let g2 = g.clone().with_mode(CfgMode::TwoPass);
        let two = guided(&Toy, x.clone(), time.clone(), &text, Some(&g2)).unwrap();
        assert_close(batched.clone(), two, Tolerance::SINGLE_OP);
        let manual = g.cfg.combine(
            Toy.denoise(x.clone(), time.clone(), &text).unwrap(),
            Toy.denoise(x, time, &g.uncond).unwrap(),
        );
        assert_close(batched, manual, Tolerance::SINGLE_OP);
    }

    #[test]
    fn sample_reports_every_step_and_rejects_bad_text() {
        let device = Default::default();
        let flow = RectifiedFlowConfig::default().init(6, None).unwrap();
        let mut rng = NoiseGenerator::seed_from_u64(4);
        let noise = rng.normal::<Flex, 5>([2, 1, 1, 2, 2], &device);
        let text = TextConditioning::new(rng.normal::<Flex, 3>([2, 3, 4], &device));
        let cond = Conditioning::text(text.clone());
        let mut steps = Vec::new();
        let out = sample(
            &flow,
            &Toy,
            &cond,
            noise.clone(),
            &mut rng,
            FiniteCheck::EveryStep,
            |p| steps.push(p.step),
        )
        .unwrap();
        assert_eq!(steps, (0..6).collect::<Vec<_>>());
        assert_eq!(out.dims(), [2, 1, 1, 2, 2]);
        // A prompt for another batch size is an error naming it, before any step.
        let bad = Conditioning::text(TextConditioning::new(Tensor::zeros([3, 3, 4], &device)));
        let err = sample(
            &flow,
            &Toy,
            &bad,
            noise,
            &mut rng,
            FiniteCheck::EveryStep,
            |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::Config(ConfigError::ShapeMismatch {
                    what: "text batch",
                    expected: 2,
                    got: 3
                })
            ),
            "{err}"
        );
    }

    #[test]
    fn text_from_lens_and_cat() {
        let device = Default::default();
        let tokens = Tensor::<Flex, 3>::zeros([2, 4, 1], &device);
        let t = TextConditioning::from_lens(tokens.clone(), &[4, 2]).unwrap();
        let mask = t
            .padding
            .clone()
            .unwrap()
            .into_data()
            .to_vec::<bool>()
            .unwrap();
        assert_eq!(mask, [false, false, false, false, false, false, true, true]);
        assert!(TextConditioning::from_lens(tokens.clone(), &[5, 1]).is_err());
        assert!(TextConditioning::from_lens(tokens.clone(), &[1]).is_err());
        let both = TextConditioning::cat(&TextConditioning::new(tokens), &t).unwrap();
        assert_eq!(both.batch(), 4);
        let mask = both.padding.unwrap().into_data().to_vec::<bool>().unwrap();
        assert_eq!(&mask[..8], &[false; 8]);
        assert_eq!(&mask[12..], &[false, false, true, true]);
    }
}
