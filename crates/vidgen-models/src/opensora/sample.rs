//! Open-Sora 1.2's text-to-video sampling loop on an STDiT3 ([`sample_stdit3`]), and the same from
//! files to a file ([`sample_files`]).
//!
//! The schedule and update are [`OpenSoraRflow`]'s (upstream `RFLOW.sample`); this module builds
//! the guidance batch the way upstream's model call sees it: latents `[z; z]`, captions
//! `[y; y_null]` with `y_null` the checkpoint's `y_embedder.y_embedding` (its first `N` rows for
//! captions of `N` tokens; upstream's T5 pads to all of them), the prompt's caption mask reused
//! for the null caption, `fps` repeated, and the positional-embedding resolution of the first
//! sample.

use super::config::UpstreamConfigReport;
use super::io::{checkpoint_files, read_inputs_file, write_out};
use super::load::load_stdit3_weights;
use crate::error::ModelError;
use crate::stdit::{Stdit, StditConfig, StditInput};
use burn::tensor::{Bool, Tensor, backend::Backend};
use std::path::{Path, PathBuf};
use vidgen_schedulers::{FiniteCheck, OpenSoraRflow, OpenSoraRflowConfig, PixelExtent, Progress};

/// The prompt side of [`sample_stdit3`].
#[derive(Debug, Clone)]
pub struct Stdit3Prompt<B: Backend> {
    /// Caption features `[B, N, d_text]` (T5 encoder outputs).
    pub y: Tensor<B, 3>,
    /// `[B, N]`, `true` = a valid caption token; `None`: all valid.
    pub mask: Option<Tensor<B, 2, Bool>>,
    /// Frame rate per sample `[B]`.
    pub fps: Tensor<B, 1>,
    /// Pixel height, width and frame count per sample (the timestep transform's inputs; the
    /// first sample's height and width also set the positional-embedding scale).
    pub extent: PixelExtent,
}

/// Samples a latent video from the initial noise `z: [B, C, T, H, W]` with Open-Sora's
/// rectified-flow sampler and classifier-free guidance against the model's null caption.
/// `progress` sees each step ([`Progress`]) before its update.
///
/// # Errors
/// [`ModelError::Component`] (part `"scheduler"`) for a schedule the sampler rejects (see
/// [`OpenSoraRflow::timesteps`]) or a batch that disagrees with the extent;
/// [`ModelError::Config`] (`ConfigError::OutOfDomain`) if the captions are longer than the null caption; those of
/// [`Stdit::forward_input`].
pub fn sample_stdit3<B: Backend>(
    model: &Stdit<B>,
    sampler: &OpenSoraRflow,
    z: Tensor<B, 5>,
    prompt: &Stdit3Prompt<B>,
    progress: impl FnMut(Progress<'_, B, 5>),
    check: FiniteCheck,
) -> Result<Tensor<B, 5>, ModelError> {
    let [batch, len, _] = prompt.y.dims();
    let y = Tensor::cat(
        vec![prompt.y.clone(), model.y_embedder.null(batch, len)?],
        0,
    );
    let mask = prompt
        .mask
        .clone()
        .map(|m| Tensor::cat(vec![m.clone(), m], 0));
    let fps = Tensor::cat(vec![prompt.fps.clone(), prompt.fps.clone()], 0);
    let extent = &prompt.extent;
    let resolution = match (extent.height.first(), extent.width.first()) {
        (Some(&h), Some(&w)) => Some([h as f64, w as f64]),
        _ => None,
    };
    sampler.sample(
        z,
        extent,
        |z_in, t| {
            let mut input = StditInput::new(z_in, t, y.clone(), fps.clone());
            input.mask = mask.clone();
            input.resolution = resolution;
            model.forward_input(input)
        },
        progress,
        check,
    )
}

/// What [`sample_files`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSummary {
    /// Config keys the conversion did not use.
    pub config_report: UpstreamConfigReport,
    /// The checkpoint files loaded.
    pub checkpoint_files: Vec<PathBuf>,
    /// The model times of every step, `[step][sample]`.
    pub timesteps: Vec<Vec<f64>>,
}

/// Runs [`sample_stdit3`] from files: the model as in [`forward_files`](super::forward_files),
/// the inputs from the safetensors file `inputs` — `z` `[B, C, T, H, W]` (the initial noise),
/// `y` `[B, 1, N, C_cap]` (or `[B, N, C_cap]`), `mask` `[B, N]` (optional; nonzero = valid),
/// `height`, `width` (pixels), `num_frames` (pixel frames) and `fps`, all `[B]` — and writes the
/// final latent `z` (f32) to the safetensors file `out`. `steps` and `guidance` are upstream's
/// `num_sampling_steps` and `cfg_scale`; the resolution- and length-aware transform is on, as in
/// upstream's inference configs.
///
/// # Errors
/// Those of the config conversion, [`load_stdit3_weights`], reading the inputs (naming the file
/// and key), [`sample_stdit3`]; [`ModelError::Io`] naming `out` if it cannot be written.
#[allow(clippy::too_many_arguments)]
pub fn sample_files<B: Backend>(
    config: impl AsRef<Path>,
    checkpoint: impl AsRef<Path>,
    inputs: impl AsRef<Path>,
    out: impl AsRef<Path>,
    steps: usize,
    guidance: f64,
    progress: impl FnMut(Progress<'_, B, 5>),
    device: &B::Device,
) -> Result<SampleSummary, ModelError> {
    let sampler = OpenSoraRflowConfig {
        num_sampling_steps: steps,
        cfg_scale: guidance,
        ..Default::default()
    }
    .init()?;
    let (model_config, config_report) = StditConfig::from_upstream_config_file(config)?;
    let files = checkpoint_files(checkpoint.as_ref())?;
    let file = read_inputs_file(inputs.as_ref(), "")?;
    let z = file.latent::<B>("z", device)?;
    let batch = z.dims()[0];
    let y = file.captions::<B>("y", batch, device)?;
    let mask = file.caption_mask::<B>("mask", batch, device)?;
    let fps = file.per_sample::<B>("fps", batch, device)?;
    let extent = PixelExtent {
        height: file.counts("height", batch)?,
        width: file.counts("width", batch)?,
        num_frames: file.counts("num_frames", batch)?,
    };
    let timesteps = sampler.timesteps(&extent)?;
    let mut model = model_config.init::<B>(device)?;
    load_stdit3_weights(&mut model, &files)?;
    let prompt = Stdit3Prompt {
        y,
        mask,
        fps,
        extent,
    };
    let z = sample_stdit3(
        &model,
        &sampler,
        z,
        &prompt,
        progress,
        FiniteCheck::EveryStep,
    )?;
    write_out(out.as_ref(), "z", z)?;
    Ok(SampleSummary {
        config_report,
        checkpoint_files: files,
        timesteps,
    })
}
