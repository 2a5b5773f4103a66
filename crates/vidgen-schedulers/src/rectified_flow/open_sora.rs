//! Open-Sora 1.2's rectified-flow sampler (`RFLOW.sample`, `opensora/schedulers/rf/__init__.py`,
//! tag v1.2.0), step for step, for a caller-supplied model.
//!
//! For `n` steps and `N = num_timesteps` (1000):
//! 1. times `t_i = (1 − i/n)·N`, `i = 0 … n − 1`, one per sample;
//! 2. with `use_timestep_transform`, per sample `b`: `t ← N·r_b·τ / (1 + (r_b − 1)·τ)` with
//!    `τ = t/N` and `r_b` = [`FlowTrainingConfig::transform_ratio_pixels`] of that sample's *pixel*
//!    `height`, `width` and `num_frames` (a single frame when sample 0 has one frame, as upstream
//!    tests only `num_frames[0]`);
//! 3. each step runs the model once on the guidance batch `[z; z]` at times `[t; t]` (the model
//!    side puts the prompt's text first and the null caption second), keeps the first `C` output
//!    channels of a `pred_sigma` model (`C` = the latent's channels), and combines
//!    `v = v_u + g·(v_c − v_u)`;
//! 4. `z ← z + v·Δt/N` with `Δt = t_i − t_{i+1}`, and `Δt = t_{n−1}` for the last step (down to 0).
//!
//! Open-Sora's velocity points from noise to data (`v = x₀ − ε`), so `z` moves from `t = N` to 0
//! with a positive `Δt`. Without a frame mask the run is deterministic given the initial noise.
//! Conditioning frames (`mask`) are not part of this sampler; see
//! [`FrameMask`](super::FrameMask) for training.
//!
//! Deliberate difference from upstream: a transform ratio of 0 (Open-Sora's frame term for 2 to 16
//! frames) makes every time 0 and returns the noise unchanged upstream; here it is a typed error.

use super::FlowTrainingConfig;
use crate::common::Progress;
use crate::error::{SchedulerError, positive};
use crate::finite::FiniteCheck;
use burn::tensor::{Tensor, TensorData, backend::Backend};

/// Settings of [`OpenSoraRflow`] (upstream `RFLOW.__init__` and its inference config).
#[derive(Clone, Debug, PartialEq)]
pub struct OpenSoraRflowConfig {
    /// Sampling steps `n` (upstream `num_sampling_steps`; inference config: 30).
    pub num_sampling_steps: usize,
    /// Training timesteps `N` (upstream `num_timesteps`: 1000).
    pub num_timesteps: usize,
    /// Guidance scale `g` (upstream `cfg_scale`; inference config: 7.0).
    pub cfg_scale: f64,
    /// Round the times to integers before the transform (upstream `use_discrete_timesteps`).
    pub use_discrete_timesteps: bool,
    /// Apply the resolution- and length-aware transform (upstream inference configs: on).
    pub use_timestep_transform: bool,
    /// Bases, scale and frame term of the transform (the defaults are upstream's:
    /// `base_resolution` 512², `base_frames` 1, scale 1, Open-Sora's frame term).
    pub transform: FlowTrainingConfig,
}

impl Default for OpenSoraRflowConfig {
    /// Upstream's Open-Sora 1.2 inference settings: 30 steps, guidance 7, transform on.
    fn default() -> Self {
        Self {
            num_sampling_steps: 30,
            num_timesteps: 1000,
            cfg_scale: 7.0,
            use_discrete_timesteps: false,
            use_timestep_transform: true,
            transform: FlowTrainingConfig::default(),
        }
    }
}

/// The pixel extent of each sample, as Open-Sora's sampler receives it (`height`, `width`,
/// `num_frames` model arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct PixelExtent {
    /// Pixel height per sample.
    pub height: Vec<usize>,
    /// Pixel width per sample.
    pub width: Vec<usize>,
    /// Pixel frames per sample.
    pub num_frames: Vec<usize>,
}

impl PixelExtent {
    /// The same extent for `batch` samples.
    pub fn uniform(batch: usize, height: usize, width: usize, num_frames: usize) -> Self {
        Self {
            height: vec![height; batch],
            width: vec![width; batch],
            num_frames: vec![num_frames; batch],
        }
    }

    fn batch(&self) -> Result<usize, SchedulerError> {
        let b = self.height.len();
        for (field, len) in [
            ("width", self.width.len()),
            ("num_frames", self.num_frames.len()),
        ] {
            if len != b {
                return Err(SchedulerError::LengthMismatch {
                    field,
                    got: len,
                    expected: b,
                });
            }
        }
        Ok(b)
    }
}

/// Open-Sora 1.2's rectified-flow sampler (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct OpenSoraRflow {
    config: OpenSoraRflowConfig,
}

impl OpenSoraRflowConfig {
    /// Checks the settings and builds the sampler.
    ///
    /// # Errors
    /// [`SchedulerError::Zero`] for zero steps or timesteps; [`SchedulerError::OutOfDomain`] for a
    /// non-finite guidance scale; those of the transform's validation.
    pub fn init(self) -> Result<OpenSoraRflow, SchedulerError> {
        positive("num_sampling_steps", self.num_sampling_steps)?;
        positive("num_timesteps", self.num_timesteps)?;
        if !self.cfg_scale.is_finite() {
            return Err(SchedulerError::OutOfDomain {
                field: "cfg_scale",
                value: self.cfg_scale,
                requirement: "finite",
            });
        }
        crate::config::SchedulerConfig::validate(&self.transform)?;
        Ok(OpenSoraRflow { config: self })
    }
}

impl OpenSoraRflow {
    /// The settings.
    pub fn config(&self) -> &OpenSoraRflowConfig {
        &self.config
    }

    /// The model times `[step][sample]` for samples of the given pixel extent: step 2 of the
    /// module docs applied to step 1's times.
    ///
    /// # Errors
    /// [`SchedulerError::LengthMismatch`] if the extent's vectors differ in length;
    /// [`SchedulerError::Zero`] for an empty batch or a zero extent;
    /// [`SchedulerError::OutOfDomain`] for a transform ratio of 0 (2 to 16 frames with Open-Sora's
    /// frame term).
    pub fn timesteps(&self, extent: &PixelExtent) -> Result<Vec<Vec<f64>>, SchedulerError> {
        let c = &self.config;
        let batch = extent.batch()?;
        positive("batch", batch)?;
        let n_t = c.num_timesteps as f64;
        let ratios = if c.use_timestep_transform {
            let single_frame = extent.num_frames[0] == 1;
            (0..batch)
                .map(|b| {
                    let frames = if single_frame {
                        1
                    } else {
                        extent.num_frames[b]
                    };
                    let r = c.transform.transform_ratio_pixels(
                        extent.height[b],
                        extent.width[b],
                        frames,
                    )?;
                    if r > 0.0 {
                        Ok(Some(r))
                    } else {
                        Err(SchedulerError::OutOfDomain {
                            field: "timestep transform ratio",
                            value: r,
                            requirement: "> 0 (Open-Sora's frame term is 0 for 2 to 16 frames)",
                        })
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![None; batch]
        };
        let steps = c.num_sampling_steps;
        Ok((0..steps)
            .map(|i| {
                let mut t = (1.0 - i as f64 / steps as f64) * n_t;
                if c.use_discrete_timesteps {
                    t = t.round();
                }
                ratios
                    .iter()
                    .map(|r| match r {
                        Some(r) => {
                            let tau = t / n_t;
                            r * tau / (1.0 + (r - 1.0) * tau) * n_t
                        }
                        None => t,
                    })
                    .collect()
            })
            .collect())
    }

    /// Samples from the initial noise `z: [B, C, T, H, W]`.
    ///
    /// `model(z_in, t)` gets the guidance batch `z_in = [z; z]` (`[2B, C, T, H, W]`) and its times
    /// `t = [t; t]` (`[2B]`, in `[0, N]`), and returns the velocity for the prompt's text on the
    /// first `B` rows and for the null caption on the last `B` (`[2B, C_out, T, H, W]`, `C_out ≥ C`:
    /// the first `C` channels are used). `progress` sees each step's [`Progress`] (the guided
    /// velocity as `model_output`, the first sample's timestep as `time`) before the update. With
    /// [`FiniteCheck::EveryStep`] each step's guided velocity and new sample are checked for
    /// NaN/±∞ (the error's time is the first sample's timestep).
    ///
    /// # Errors
    /// Those of [`OpenSoraRflow::timesteps`]; [`SchedulerError::LengthMismatch`] if the extent's
    /// batch is not `B` or the model's output shape is wrong; [`SchedulerError::NonFinite`] from
    /// the check; the model's errors, unchanged.
    pub fn sample<B, E, M, P>(
        &self,
        z: Tensor<B, 5>,
        extent: &PixelExtent,
        mut model: M,
        mut progress: P,
        check: FiniteCheck,
    ) -> Result<Tensor<B, 5>, E>
    where
        B: Backend,
        E: From<SchedulerError>,
        M: FnMut(Tensor<B, 5>, Tensor<B, 1>) -> Result<Tensor<B, 5>, E>,
        P: FnMut(Progress<'_, B, 5>),
    {
        let [batch, channels, frames, height, width] = z.dims();
        let timesteps = self.timesteps(extent)?;
        if extent.height.len() != batch {
            return Err(SchedulerError::LengthMismatch {
                field: "pixel extent batch",
                got: extent.height.len(),
                expected: batch,
            }
            .into());
        }
        let device = z.device();
        let n_t = self.config.num_timesteps as f64;
        let g = self.config.cfg_scale;
        let steps = timesteps.len();
        let mut z = z;
        for (i, t) in timesteps.iter().enumerate() {
            let doubled: Vec<f64> = t.iter().chain(t).copied().collect();
            let t_in = Tensor::<B, 1>::from_data(TensorData::new(doubled, [2 * batch]), &device);
            let out = model(Tensor::cat(vec![z.clone(), z.clone()], 0), t_in)?;
            let [ob, oc, of, oh, ow] = out.dims();
            if [ob, of, oh, ow] != [2 * batch, frames, height, width] || oc < channels {
                return Err(SchedulerError::LengthMismatch {
                    field: "model output [2B, C_out ≥ C, T, H, W] elements",
                    got: ob * oc * of * oh * ow,
                    expected: 2 * batch * channels * frames * height * width,
                }
                .into());
            }
            let v = out.narrow(1, 0, channels);
            let v_cond = v.clone().narrow(0, 0, batch);
            let v_uncond = v.narrow(0, batch, batch);
            let v = v_uncond.clone() + (v_cond - v_uncond) * g;
            let dt: Vec<f64> = match timesteps.get(i + 1) {
                Some(next) => t.iter().zip(next).map(|(a, b)| (a - b) / n_t).collect(),
                None => t.iter().map(|a| a / n_t).collect(),
            };
            let dt = Tensor::<B, 5>::from_data(TensorData::new(dt, [batch, 1, 1, 1, 1]), &device);
            let time = t.first().copied().unwrap_or(0.0);
            progress(Progress {
                step: i,
                num_steps: steps,
                time,
                sample: &z,
                model_output: &v,
            });
            let probe = (check == FiniteCheck::EveryStep).then(|| v.clone());
            z = z + v * dt;
            if let Some(v) = probe {
                check.check_step(i, time, &v, &z)?;
            }
        }
        Ok(z)
    }
}
