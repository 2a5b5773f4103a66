//! The training side of [`RectifiedFlow`]: time sampling, Open-Sora 1.2's resolution- and
//! length-aware timestep transform, training batches and per-frame conditioning masks.

use super::{RectifiedFlow, shift_sigma};
use crate::common::{TrainingBatch, per_sample, vector};
use crate::config::{ConfigEnum, SchedulerConfig, config_enum};
use crate::error::{SchedulerError, non_negative, positive, positive_f64};
use crate::noise::NoiseGenerator;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

config_enum! {
    /// How training times `t ∈ [0, 1]` are drawn (diffusers' `weighting_scheme` names).
    pub enum TimeSampling {
        /// `t ~ U[0, 1)`.
        Uniform = "uniform",
        /// `t = sigmoid(n)`, `n ~ N(logit_mean, logit_std²)` (SD3; Open-Sora 1.2's
        /// "logit-norm sampling").
        LogitNormal = "logit_normal",
    }
}

config_enum! {
    /// The frame term `F_r` in the timestep transform's ratio (see [`FlowTrainingConfig`]), from
    /// the pixel frame count `F`.
    pub enum TransformFrames {
        /// Open-Sora 1.2's `timestep_transform`: `F_r = 1` for a single frame, else
        /// `F_r = ⌊F / 17⌋·5` (its VAE's latent length for whole 17-frame chunks). As upstream,
        /// `F_r = 0` for 2 to 16 frames, which makes the ratio 0.
        OpenSora = "open_sora",
        /// `F_r = F`, the pixel frame count itself: a length term for any VAE and frame count.
        /// Not Open-Sora's; with `base_frames = 1` it gives larger ratios than Open-Sora's term.
        PixelFrames = "pixel_frames",
    }
}

impl TransformFrames {
    /// The frame term `F_r` for `num_frames` pixel frames.
    pub fn term(self, num_frames: usize) -> usize {
        match self {
            Self::OpenSora if num_frames == 1 => 1,
            Self::OpenSora => num_frames / 17 * 5,
            Self::PixelFrames => num_frames,
        }
    }
}

/// Training settings of [`RectifiedFlow`]: time sampling and Open-Sora 1.2's timestep transform.
///
/// With `use_timestep_transform`, a sampled `t` becomes `t' = r·t / (1 + (r − 1)·t)` with
///
/// `r = sqrt(H·W / base_resolution) · sqrt(F_r / base_frames) · transform_scale`,
///
/// where `H, W` are the pixel height and width and `F_r` the frame term
/// ([`TransformFrames::term`]) of the pixel frame count `F`. By default `F_r` is Open-Sora 1.2's
/// (`timestep_transform` in `opensora/schedulers/rf/rectified_flow.py`): 1 for an image,
/// `⌊F / 17⌋·5` otherwise; [`TransformFrames::PixelFrames`] uses `F` itself. Larger or longer inputs
/// get `r > 1`, i.e. noisier training times.
///
/// From a latent of shape `[B, C, T, H, W]` ([`FlowTrainingConfig::transform_ratio`]), the pixel
/// extent follows from the VAE factors: `H = h·vae_spatial_factor`, `W = w·vae_spatial_factor`,
/// and `F = 1 + (T − 1)·vae_temporal_factor` when the VAE keeps the first frame uncompressed
/// (`vae_causal_first_frame`), else `F = T·vae_temporal_factor`; an image latent `[B, C, H, W]`
/// has `F = 1`. [`FlowTrainingConfig::transform_ratio_pixels`] takes the pixel extent directly, as
/// Open-Sora's sampler passes it.
///
/// With Open-Sora's term, 2 to 16 frames give `r = 0` (so `t' = 0`, and NaN at `t = 1`); the ratio
/// functions return that as upstream does, and [`RectifiedFlow::sample_training_times`] rejects it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct FlowTrainingConfig {
    /// Distribution of `t`. Default `logit_normal`.
    pub time_sampling: TimeSampling,
    /// Mean of the normal behind the logit-normal. Default 0.
    pub logit_mean: f64,
    /// Standard deviation of the normal behind the logit-normal. Default 1.
    pub logit_std: f64,
    /// Apply the resolution- and length-aware transform. Default true.
    pub use_timestep_transform: bool,
    /// Pixel area where `r`'s spatial factor is 1. Default `512·512`.
    pub base_resolution: f64,
    /// Frame term `F_r` where `r`'s temporal factor is 1. Default 1.
    pub base_frames: f64,
    /// Extra factor on `r`. Default 1.
    pub transform_scale: f64,
    /// How the frame count enters `r`. Default `open_sora`.
    pub transform_frames: TransformFrames,
    /// Pixels per latent row/column. Default 8.
    pub vae_spatial_factor: usize,
    /// Pixel frames per latent frame. Default 4.
    pub vae_temporal_factor: usize,
    /// The VAE encodes the first frame alone (`T = 1 + (F − 1)/factor`). Default true.
    pub vae_causal_first_frame: bool,
}

impl Default for FlowTrainingConfig {
    fn default() -> Self {
        Self {
            time_sampling: TimeSampling::LogitNormal,
            logit_mean: 0.0,
            logit_std: 1.0,
            use_timestep_transform: true,
            base_resolution: 512.0 * 512.0,
            base_frames: 1.0,
            transform_scale: 1.0,
            transform_frames: TransformFrames::OpenSora,
            vae_spatial_factor: 8,
            vae_temporal_factor: 4,
            vae_causal_first_frame: true,
        }
    }
}

impl SchedulerConfig for FlowTrainingConfig {
    const NAME: &'static str = "FlowTrainingConfig";
    const ENUM_KEYS: &'static [(&'static str, &'static [&'static str])] = &[
        ("time_sampling", TimeSampling::NAMES),
        ("transform_frames", TransformFrames::NAMES),
    ];

    fn validate(&self) -> Result<(), SchedulerError> {
        if !self.logit_mean.is_finite() {
            return Err(SchedulerError::OutOfDomain {
                field: "logit_mean",
                value: self.logit_mean,
                requirement: "finite",
            });
        }
        non_negative("logit_std", self.logit_std)?;
        positive_f64("base_resolution", self.base_resolution)?;
        positive_f64("base_frames", self.base_frames)?;
        positive_f64("transform_scale", self.transform_scale)?;
        positive("vae_spatial_factor", self.vae_spatial_factor)?;
        positive("vae_temporal_factor", self.vae_temporal_factor)
    }
}

impl FlowTrainingConfig {
    /// The training time for one standard draw: `u` itself for uniform sampling (`u ∈ [0, 1)`),
    /// `sigmoid(logit_mean + logit_std·z)` for logit-normal (`z ~ N(0, 1)`).
    pub fn time_from_draw(&self, draw: f64) -> f64 {
        match self.time_sampling {
            TimeSampling::Uniform => draw,
            TimeSampling::LogitNormal => {
                1.0 / (1.0 + (-(self.logit_mean + self.logit_std * draw)).exp())
            }
        }
    }

    /// Pixel `(height, width, frames)` of a latent of shape `[B, C, T, H, W]` (or `[B, C, H, W]`,
    /// one frame), from the VAE factors.
    ///
    /// # Errors
    /// [`SchedulerError::LengthMismatch`] for a shape of rank other than 4 or 5;
    /// [`SchedulerError::Zero`] for a zero latent extent; [`SchedulerError::OutOfDomain`] naming
    /// the VAE factor when the pixel extent would overflow.
    pub fn pixel_extent(
        &self,
        latent_dims: &[usize],
    ) -> Result<(usize, usize, usize), SchedulerError> {
        let (t, h, w) = match *latent_dims {
            [_, _, t, h, w] => (t, h, w),
            [_, _, h, w] => (1, h, w),
            _ => {
                return Err(SchedulerError::LengthMismatch {
                    field: "latent shape [B, C, T, H, W]",
                    got: latent_dims.len(),
                    expected: 5,
                });
            }
        };
        positive("latent frames", t)?;
        positive("latent height", h)?;
        positive("latent width", w)?;
        let overflow = |field: &'static str, value: usize| SchedulerError::OutOfDomain {
            field,
            value: value as f64,
            requirement: "small enough that the pixel extent fits in usize",
        };
        let frames = if self.vae_causal_first_frame {
            (t - 1)
                .checked_mul(self.vae_temporal_factor)
                .and_then(|f| f.checked_add(1))
        } else {
            t.checked_mul(self.vae_temporal_factor)
        }
        .ok_or_else(|| overflow("vae_temporal_factor", self.vae_temporal_factor))?;
        let s = self.vae_spatial_factor;
        let (height, width) = h
            .checked_mul(s)
            .zip(w.checked_mul(s))
            .ok_or_else(|| overflow("vae_spatial_factor", s))?;
        Ok((height, width, frames))
    }

    /// The transform's ratio `r` for a latent shape: [`FlowTrainingConfig::transform_ratio_pixels`]
    /// of its [`FlowTrainingConfig::pixel_extent`].
    ///
    /// # Errors
    /// Those of [`FlowTrainingConfig::pixel_extent`].
    pub fn transform_ratio(&self, latent_dims: &[usize]) -> Result<f64, SchedulerError> {
        let (height, width, num_frames) = self.pixel_extent(latent_dims)?;
        self.transform_ratio_pixels(height, width, num_frames)
    }

    /// The transform's ratio for a pixel extent (what Open-Sora's `timestep_transform` reads from
    /// `height`, `width`, `num_frames`):
    /// `r = sqrt(height·width / base_resolution)·sqrt(F_r / base_frames)·transform_scale` with
    /// `F_r = transform_frames.term(num_frames)`. May be 0 (see [`TransformFrames::OpenSora`]).
    ///
    /// # Errors
    /// [`SchedulerError::Zero`] for a zero height, width or frame count.
    pub fn transform_ratio_pixels(
        &self,
        height: usize,
        width: usize,
        num_frames: usize,
    ) -> Result<f64, SchedulerError> {
        positive("height", height)?;
        positive("width", width)?;
        positive("num_frames", num_frames)?;
        let frames = self.transform_frames.term(num_frames) as f64;
        Ok((height as f64 * width as f64 / self.base_resolution).sqrt()
            * (frames / self.base_frames).sqrt()
            * self.transform_scale)
    }
}

impl RectifiedFlow {
    /// Draws `B = latent_dims[0]` training times in `[0, 1]`: uniform or logit-normal, then (with
    /// `use_timestep_transform`) `t ← r·t / (1 + (r − 1)·t)` with `r` from the latent shape
    /// ([`FlowTrainingConfig::transform_ratio`]).
    ///
    /// # Errors
    /// Those of [`FlowTrainingConfig::transform_ratio`] when the transform is on, and
    /// [`SchedulerError::OutOfDomain`] when its ratio is 0 (Open-Sora's frame term for 2 to 16
    /// frames), which would put every time at 0; [`SchedulerError::LengthMismatch`] for an empty
    /// shape.
    pub fn sample_training_times(
        &self,
        latent_dims: &[usize],
        rng: &mut NoiseGenerator,
    ) -> Result<Vec<f64>, SchedulerError> {
        let tc = &self.training;
        let batch = *latent_dims.first().ok_or(SchedulerError::LengthMismatch {
            field: "latent shape",
            got: 0,
            expected: 5,
        })?;
        let ratio = if tc.use_timestep_transform {
            let r = tc.transform_ratio(latent_dims)?;
            positive_f64("timestep transform ratio", r)?;
            Some(r)
        } else {
            None
        };
        let draws = match tc.time_sampling {
            TimeSampling::Uniform => rng.uniform_f64(batch),
            TimeSampling::LogitNormal => rng.normal_f64(batch),
        };
        Ok(draws
            .into_iter()
            .map(|d| {
                let t = tc.time_from_draw(d);
                ratio.map_or(t, |r| shift_sigma(t, r))
            })
            .collect())
    }

    /// A training batch at times `t_b ∈ [0, 1]`: `model_input = (1 − t)·x₀ + t·ε`,
    /// `model_time = t·num_train_timesteps`, `target = ε − x₀`, `loss_weight = 1`.
    ///
    /// # Shapes
    /// `x0`, `noise`: `[B, ...]`; `times`: `B` values
    ///
    /// # Errors
    /// [`SchedulerError::LengthMismatch`] if `times.len() != B`; [`SchedulerError::OutOfDomain`]
    /// for a time outside `[0, 1]`.
    ///
    /// # Panics
    /// If `x0` and `noise` differ in shape.
    pub fn training_batch<B: Backend, const D: usize>(
        &self,
        x0: Tensor<B, D>,
        noise: Tensor<B, D>,
        times: &[f64],
    ) -> Result<TrainingBatch<B, D>, SchedulerError> {
        assert_eq!(x0.dims(), noise.dims(), "x0 and noise shapes differ");
        check_times(times, x0.dims()[0])?;
        let t = per_sample(times, &x0);
        let device = x0.device();
        let big_n = self.config.num_train_timesteps as f64;
        let model_time: Vec<f64> = times.iter().map(|t| t * big_n).collect();
        Ok(TrainingBatch {
            model_input: x0.clone() * (t.clone().neg() + 1.0) + noise.clone() * t,
            model_time: vector(&model_time, &device),
            target: noise - x0,
            loss_weight: vector(&vec![1.0; times.len()], &device),
        })
    }

    /// [`RectifiedFlow::training_batch`] with per-frame conditioning (Open-Sora 1.2 sec. 3.3):
    /// conditioning frames stay at `t = 0` (`model_input = x₀` there) and are left out of the loss
    /// ([`MaskedTrainingBatch::loss`]). The model should also see `t = 0` on those frames (e.g. via
    /// [`FrameMask::generated`]).
    ///
    /// # Shapes
    /// `x0`, `noise`: `[B, C, T, H, W]`; `mask`: `B × T`
    ///
    /// # Errors
    /// Those of [`RectifiedFlow::training_batch`] and [`FrameMask::check`].
    pub fn training_batch_masked<B: Backend>(
        &self,
        x0: Tensor<B, 5>,
        noise: Tensor<B, 5>,
        times: &[f64],
        mask: &FrameMask,
    ) -> Result<MaskedTrainingBatch<B>, SchedulerError> {
        mask.check(&x0.dims())?;
        let mut batch = self.training_batch(x0.clone(), noise, times)?;
        batch.model_input = mask.reinsert(batch.model_input, x0)?;
        let generated = mask.generated(&batch.target.device());
        Ok(MaskedTrainingBatch { batch, generated })
    }
}

fn check_times(times: &[f64], batch: usize) -> Result<(), SchedulerError> {
    if times.len() != batch {
        return Err(SchedulerError::LengthMismatch {
            field: "times",
            got: times.len(),
            expected: batch,
        });
    }
    match times.iter().find(|t| !(0.0..=1.0).contains(*t)) {
        Some(&value) => Err(SchedulerError::OutOfDomain {
            field: "times",
            value,
            requirement: "in [0, 1]",
        }),
        None => Ok(()),
    }
}

/// Which frames of each sample are conditioning frames (given, kept clean at `t = 0`) in a
/// `[B, C, T, H, W]` video — Open-Sora's image/video conditioning mask, with `true` = conditioning
/// (Open-Sora's `mask` is the complement: `true` = frame to generate).
///
/// Image-to-video sampling, re-inserting the given first frame after every step:
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use vidgen_schedulers::Sampler;
/// use vidgen_schedulers::noise::NoiseGenerator;
/// use vidgen_schedulers::rectified_flow::{FrameMask, RectifiedFlowConfig};
///
/// let device = Default::default();
/// let flow = RectifiedFlowConfig::default().init(4, None).unwrap();
/// let mut rng = NoiseGenerator::seed_from_u64(1);
/// let image = rng.normal::<Flex, 5>([1, 4, 3, 2, 2], &device); // frame 0 is the condition
/// let mask = FrameMask::first_frames(1, 3, 1);
/// let mut x = mask.reinsert(rng.normal([1, 4, 3, 2, 2], &device), image.clone()).unwrap();
/// for i in 0..flow.num_steps() {
///     let v = x.clone() * 0.1; // a stand-in model
///     x = mask.reinsert(flow.step(i, v, x, None).unwrap(), image.clone()).unwrap();
/// }
/// let first = x.narrow(2, 0, 1);
/// vidgen_testing::assert_close(first, image.narrow(2, 0, 1), vidgen_testing::Tolerance::EXACT);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameMask {
    batch: usize,
    frames: usize,
    conditioning: Vec<bool>,
}

impl FrameMask {
    /// A mask from `B × T` flags in row-major order (`conditioning[b·T + t]`).
    ///
    /// # Errors
    /// [`SchedulerError::LengthMismatch`] if `conditioning.len() != batch·frames`.
    pub fn new(
        batch: usize,
        frames: usize,
        conditioning: Vec<bool>,
    ) -> Result<Self, SchedulerError> {
        if conditioning.len() != batch * frames {
            return Err(SchedulerError::LengthMismatch {
                field: "conditioning",
                got: conditioning.len(),
                expected: batch * frames,
            });
        }
        Ok(Self {
            batch,
            frames,
            conditioning,
        })
    }

    /// The first `k` frames of every sample condition (image-to-video for `k = 1`).
    pub fn first_frames(batch: usize, frames: usize, k: usize) -> Self {
        let conditioning = (0..batch * frames).map(|i| i % frames < k).collect();
        Self {
            batch,
            frames,
            conditioning,
        }
    }

    /// Whether frame `t` of sample `b` is a conditioning frame.
    ///
    /// # Panics
    /// If `b` or `t` is out of range.
    pub fn is_conditioning(&self, b: usize, t: usize) -> bool {
        assert!(
            b < self.batch && t < self.frames,
            "frame ({b}, {t}) outside {}×{}",
            self.batch,
            self.frames
        );
        self.conditioning[b * self.frames + t]
    }

    /// Checks that a `[B, C, T, H, W]` shape has this mask's `B` and `T`.
    ///
    /// # Errors
    /// [`SchedulerError::LengthMismatch`] naming the axis.
    pub fn check(&self, dims: &[usize; 5]) -> Result<(), SchedulerError> {
        for (field, got, expected) in [
            ("batch (axis 0)", dims[0], self.batch),
            ("frames (axis 2)", dims[2], self.frames),
        ] {
            if got != expected {
                return Err(SchedulerError::LengthMismatch {
                    field,
                    got,
                    expected,
                });
            }
        }
        Ok(())
    }

    /// `1` on generated frames and `0` on conditioning frames.
    ///
    /// # Shapes
    /// → `[B, 1, T, 1, 1]`
    pub fn generated<B: Backend>(&self, device: &B::Device) -> Tensor<B, 5> {
        let v: Vec<f32> = self
            .conditioning
            .iter()
            .map(|&c| if c { 0.0 } else { 1.0 })
            .collect();
        Tensor::from_data(
            TensorData::new(v, [self.batch, 1, self.frames, 1, 1]),
            device,
        )
    }

    /// Puts the clean conditioning frames back: `clean` on conditioning frames, `sample` elsewhere.
    /// In a sampling loop call it on the initial noise and after every step.
    ///
    /// # Shapes
    /// `sample`, `clean`: `[B, C, T, H, W]`
    ///
    /// # Errors
    /// Those of [`FrameMask::check`].
    pub fn reinsert<B: Backend>(
        &self,
        sample: Tensor<B, 5>,
        clean: Tensor<B, 5>,
    ) -> Result<Tensor<B, 5>, SchedulerError> {
        self.check(&sample.dims())?;
        self.check(&clean.dims())?;
        let bool_mask = self
            .generated::<B>(&sample.device())
            .equal_elem(0.0)
            .expand(sample.dims());
        Ok(sample.mask_where(bool_mask, clean))
    }
}

/// A [`TrainingBatch`] over `[B, C, T, H, W]` whose conditioning frames are left out of the loss.
#[derive(Debug, Clone)]
pub struct MaskedTrainingBatch<B: Backend> {
    /// The batch; `model_input` holds the clean conditioning frames.
    pub batch: TrainingBatch<B, 5>,
    /// `1` on generated frames, `0` on conditioning frames, `[B, 1, T, 1, 1]`.
    pub generated: Tensor<B, 5>,
}

impl<B: Backend> MaskedTrainingBatch<B> {
    /// Open-Sora's masked `mean_flat`, then the weighted batch mean:
    /// `mean_b(w_b · Σ_{c,t,h,w} m_t·(out − target)² / (C·H·W·Σ_t m_t))`, `m_t = 1` on generated
    /// frames; a sample without generated frames contributes 0.
    ///
    /// # Shapes
    /// `model_output`: `[B, C, T, H, W]` → `[1]`
    pub fn loss(&self, model_output: Tensor<B, 5>) -> Tensor<B, 1> {
        let [b, c, _, h, w] = self.batch.target.dims();
        let sq = (model_output - self.batch.target.clone()).powi_scalar(2) * self.generated.clone();
        let sums = sq.reshape([b as i32, -1]).sum_dim(1).reshape([b]);
        let counts = self
            .generated
            .clone()
            .reshape([b as i32, -1])
            .sum_dim(1)
            .reshape([b])
            * (c * h * w) as f64;
        let per_sample = sums / counts.clamp_min(1.0);
        (per_sample * self.batch.loss_weight.clone()).mean()
    }
}
