//! Training a tiny text-to-video STDiT on [`MovingShapes`] with rectified flow, through
//! burn-train's supervised `Learner` (single device, or burn-train's multi-device data-parallel
//! strategy when several devices are given — gradients are synchronised by burn-train).
//!
//! Loss (rectified flow, Liu et al. 2022; Open-Sora 1.2 report sec. 4.2): for a clean video `x₀`,
//! noise `ε` and a time `t` ([`TinyTrainConfig::time_sampling`], logit-normal by default), `x_t = (1 − t)·x₀ + t·ε` and
//! `L = mean ‖v_θ(x_t, 1000·t, text) − (ε − x₀)‖²` ([`RectifiedFlow::training_batch`](vidgen_schedulers::RectifiedFlow::training_batch)). The text
//! is replaced by the model's learnt null caption with probability `cfg_dropout`, so the model
//! also learns the unconditional velocity that classifier-free guidance needs. All randomness
//! (noise, times, dropout) comes from the items' seeds: a step is a pure function of its batch.

use crate::data::{
    Colour, Direction, Motion, MovingShapes, MovingShapesBatcher, MovingShapesConfig, Shape,
    VideoBatch, label, measure_motion, tokenizer,
};
use crate::error::ModelError;
use crate::stdit::{GenerateOptions, Stdit, StditConfig, TextToVideo};
use crate::text::{TextEmbedder, TextEmbedderConfig};
use burn::config::Config;
use burn::data::dataloader::DataLoaderBuilder;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::AdamWConfig;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Tensor, TensorData, Transaction};
use burn_train::metric::{Adaptor, LossInput, LossMetric};
use burn_train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use burn_train::{
    ExecutionStrategy, InferenceStep, ItemLazy, Learner, MultiDeviceOptim, SupervisedTraining,
    TrainOutput, TrainStep,
};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use vidgen_schedulers::{FlowTrainingConfig, NoiseGenerator, RectifiedFlowConfig, TimeSampling};

/// Settings of [`train`]: model, data and optimisation.
#[derive(Config, Debug)]
pub struct TinyTrainConfig {
    /// The denoiser (`in_channels = 3`, pixel space).
    pub model: StditConfig,
    /// The training videos (`len` is overridden by `steps · batch_size`).
    pub data: MovingShapesConfig,
    /// Optimiser steps.
    #[config(default = 200)]
    pub steps: usize,
    /// Videos per step.
    #[config(default = 8)]
    pub batch_size: usize,
    /// AdamW learning rate at the first step.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    /// Learning rate at the last step: the rate follows a cosine from `learning_rate` down to
    /// this (equal to `learning_rate` for a constant rate).
    #[config(default = 1e-4)]
    pub min_learning_rate: f64,
    /// Probability of training a sample on the null caption.
    #[config(default = 0.1)]
    pub cfg_dropout: f64,
    /// Frame rate the model is conditioned on.
    #[config(default = 8.0)]
    pub fps: f64,
    /// Distribution of the training times (SD3 / Open-Sora 1.2's logit-normal by default;
    /// with uniform times, 2000–3000 steps of the tiny model gave blurred, nearly static shapes).
    #[config(default = "TimeSampling::LogitNormal")]
    pub time_sampling: TimeSampling,
    /// Mean of the normal behind logit-normal times (positive values favour high noise). The
    /// direction word only lowers the loss at high noise (below that, `x_t` already shows where
    /// the shape is in every frame), so the tiny model learns it only with enough high-noise
    /// times: with `N(0, 1)` a 3000-step run ignored the word; with `N(1.5, 1.5)`
    /// (`t > 0.88` for 37 % of the samples) every label of the motion check follows it.
    #[config(default = 1.5)]
    pub logit_mean: f64,
    /// Standard deviation of the normal behind logit-normal times.
    #[config(default = 1.5)]
    pub logit_std: f64,
}

impl TinyTrainConfig {
    /// The default tiny setup (the configuration of the shipped checkpoint): STDiT with
    /// `d_model` 64, 4 heads, depth 2, `d_text` 32, patch `(1, 2, 2)`, over 8 frames of 16×16
    /// RGB, and three settings without which the model ignores the direction word (measured
    /// in docs/tiny_training.md):
    /// - [`StditConfig::temporal_pos_embed`]: each token knows its frame, so the model can
    ///   place the shape per frame from the prompt alone (STDiT3's temporal RoPE is relative);
    /// - [`StditConfig::cross_qk_norm`];
    /// - logit-normal times `N(1.5, 1.5)` ([`logit_mean`](Self::logit_mean)); and shapes moving
    ///   1.5 px per frame, so they cross the frame edge to edge (10.5 px over 8 frames) and the
    ///   direction decides where the shape is in each frame.
    ///
    /// It predicts the velocity only (`pred_sigma` off) and keeps the final layer's t = 0 branch
    /// on the unmodulated tokens (`final_t0_norm_modulated` off), as the shipped model was trained.
    pub fn tiny(steps: usize) -> Self {
        let model = StditConfig::new(64, 4, 2, 32)
            .with_in_channels(3)
            .with_max_frames(8)
            .with_text_max_len(4)
            .with_frequency_dim(64)
            .with_temporal_pos_embed(true)
            .with_cross_qk_norm(true)
            .with_pred_sigma(false)
            .with_final_t0_norm_modulated(false);
        let data = MovingShapesConfig::new(1).with_speed(1.5);
        Self::new(model, data).with_steps(steps)
    }

    /// Builds the untrained model.
    ///
    /// # Errors
    /// Those of [`StditConfig::init`] and [`TextEmbedderConfig::init`].
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<TextVideoModel<B>, ModelError> {
        Ok(TextVideoModel {
            model: self.model.init(device)?,
            text_embedder: TextEmbedderConfig::new(tokenizer().vocab_size(), self.model.d_text)
                .init(device)?,
            cfg_dropout: self.cfg_dropout,
            fps: self.fps,
            flow: self.training_flow(),
        })
    }
}

/// The trained pair: denoiser and text embedding (checkpoint keys `model.*`, `text_embedder.*`).
#[derive(Module, Debug)]
pub struct TextVideoModel<B: Backend> {
    /// The denoiser.
    pub model: Stdit<B>,
    /// Label token ids → text features.
    pub text_embedder: TextEmbedder<B>,
    /// See [`TinyTrainConfig::cfg_dropout`].
    pub cfg_dropout: f64,
    /// See [`TinyTrainConfig::fps`].
    pub fps: f64,
    /// Training-time sampling ([`TinyTrainConfig::training_flow`]).
    #[module(skip)]
    pub flow: FlowTrainingConfig,
}

impl TinyTrainConfig {
    /// Rectified-flow training settings: `time_sampling`, `logit_mean`, `logit_std`, no
    /// resolution transform (pixel space).
    pub fn training_flow(&self) -> FlowTrainingConfig {
        FlowTrainingConfig {
            time_sampling: self.time_sampling,
            logit_mean: self.logit_mean,
            logit_std: self.logit_std,
            use_timestep_transform: false,
            ..FlowTrainingConfig::default()
        }
    }
}

impl<B: Backend> TextVideoModel<B> {
    /// The rectified-flow velocity loss of one batch (see the module docs).
    ///
    /// # Shapes
    /// `batch.videos`: `[N, C, T, H, W]` → `[1]`
    ///
    /// # Errors
    /// Any error of [`Stdit::try_forward`]; [`ModelError::Component`] from the scheduler.
    pub fn flow_loss(&self, batch: &VideoBatch<B>) -> Result<Tensor<B, 1>, ModelError> {
        let dims = batch.videos.dims();
        let device = batch.videos.device();
        let seed = batch.seeds.iter().fold(0x51_7CC1_B727_220Au64, |acc, s| {
            acc.rotate_left(7) ^ s.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        });
        let mut rng = NoiseGenerator::seed_from_u64(seed);
        let flow = RectifiedFlowConfig::default()
            .init(1, None)
            .and_then(|f| f.with_training(self.flow.clone()))
            .map_err(|e| ModelError::Component {
                part: "rectified flow",
                message: e.to_string(),
            })?;
        let noise = rng.normal::<B, 5>(dims, &device);
        let times =
            flow.sample_training_times(&dims, &mut rng)
                .map_err(|e| ModelError::Component {
                    part: "training times",
                    message: e.to_string(),
                })?;
        let drop: Vec<bool> = rng
            .uniform_f64(dims[0])
            .into_iter()
            .map(|u| u < self.cfg_dropout)
            .collect();
        let tb = flow
            .training_batch(batch.videos.clone(), noise, &times)
            .map_err(|e| ModelError::Component {
                part: "training batch",
                message: e.to_string(),
            })?;
        let text = self.text_embedder.forward(batch.ids.clone());
        let [n, len, d] = text.dims();
        let null = self.model.y_embedder.null(n, len)?;
        let drop = Tensor::<B, 3, Bool>::from_bool(TensorData::new(drop, [n, 1, 1]), &device);
        let text = text.mask_where(drop.expand([n, len, d]), null);
        let out = self.model.try_forward(
            tb.model_input.clone(),
            tb.model_time.clone(),
            text,
            Some(&batch.lens),
            Tensor::full([n], self.fps, &device),
            None,
        )?;
        Ok(tb.loss(out))
    }
}

/// The loss of one step, as burn-train's metrics see it.
#[derive(Debug)]
pub struct FlowOutput<B: Backend> {
    /// `[1]`.
    pub loss: Tensor<B, 1>,
}

impl<B: Backend> Adaptor<LossInput<B>> for FlowOutput<B> {
    fn adapt(&self) -> LossInput<B> {
        LossInput::new(self.loss.clone())
    }
}

impl<B: Backend> ItemLazy for FlowOutput<B> {
    type ItemSync = FlowOutput<burn::backend::Flex>;

    fn sync(self) -> Self::ItemSync {
        let [loss] = Transaction::default()
            .register(self.loss)
            .execute()
            .try_into()
            .expect("one tensor");
        FlowOutput {
            loss: Tensor::from_data(loss, &Default::default()),
        }
    }
}

impl<B: AutodiffBackend> TrainStep for TextVideoModel<B> {
    type Input = VideoBatch<B>;
    type Output = FlowOutput<B>;

    fn step(&self, batch: VideoBatch<B>) -> TrainOutput<FlowOutput<B>> {
        let loss = self
            .flow_loss(&batch)
            .unwrap_or_else(|e| panic!("train step: {e}"));
        let grads = loss.backward();
        TrainOutput::new(self, grads, FlowOutput { loss })
    }
}

impl<B: Backend> InferenceStep for TextVideoModel<B> {
    type Input = VideoBatch<B>;
    type Output = FlowOutput<B>;

    fn step(&self, batch: VideoBatch<B>) -> FlowOutput<B> {
        let loss = self
            .flow_loss(&batch)
            .unwrap_or_else(|e| panic!("valid step: {e}"));
        FlowOutput { loss }
    }
}

/// A one-line progress bar on stderr that also records every training loss.
#[derive(Debug, Clone, Default)]
pub struct ProgressRenderer {
    losses: Arc<Mutex<Vec<f64>>>,
    last: f64,
}

impl ProgressRenderer {
    /// The training losses recorded so far, one per step.
    pub fn losses(&self) -> Vec<f64> {
        self.losses.lock().expect("loss log").clone()
    }
}

impl MetricsRendererTraining for ProgressRenderer {
    fn update_train(&mut self, state: MetricState) {
        if let MetricState::Numeric(_, value) = state {
            self.last = value.current();
            self.losses.lock().expect("loss log").push(self.last);
        }
    }

    fn update_valid(&mut self, _state: MetricState) {}

    fn render_train(&mut self, item: TrainingProgress, _indicators: Vec<ProgressType>) {
        let p = item.progress.unwrap_or(item.global_progress);
        let total = p.items_total.max(1);
        let filled = 30 * p.items_processed.min(total) / total;
        eprint!(
            "\r[{}{}] {}/{} videos, loss {:.4}  ",
            "#".repeat(filled),
            ".".repeat(30 - filled),
            p.items_processed,
            total,
            self.last
        );
        let _ = std::io::stderr().flush();
    }

    fn render_valid(&mut self, _item: TrainingProgress, _indicators: Vec<ProgressType>) {}
}

impl MetricsRendererEvaluation for ProgressRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
    fn render_test(&mut self, _item: EvaluationProgress, _indicators: Vec<ProgressType>) {}
}

impl MetricsRenderer for ProgressRenderer {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _definition: burn_train::metric::MetricDefinition) {}
}

impl TinyTrainConfig {
    /// The sampling settings of the examples and the motion check: one video of the dataset's
    /// size, 16 Euler steps, guidance 4, the training frame rate.
    pub fn generate_options(&self, seed: u64) -> GenerateOptions {
        let (frames, size) = (self.data.frames, self.data.size);
        GenerateOptions {
            latent_size: [3, frames, size, size],
            num_steps: 16,
            guidance_scale: 4.0,
            fps: self.fps,
            seed,
            ..GenerateOptions::default()
        }
    }
}

/// One prompt of [`check_motion`] and how its video moved.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionCheck {
    /// The prompt.
    pub label: String,
    /// Its colour.
    pub colour: Colour,
    /// Its shape.
    pub shape: Shape,
    /// Its direction.
    pub direction: Direction,
    /// The measured motion of the colour's pixels.
    pub motion: Motion,
    /// Whether [`Motion::follows`] holds for the dataset's travel and at least 3 pixels per frame.
    pub follows: bool,
}

/// Generates one video for every label of the dataset (batched, noise from `seed`) and measures
/// whether each shows its prompted motion ([`measure_motion`]).
///
/// # Errors
/// Those of [`TextToVideo::generate`].
pub fn check_motion<B: Backend>(
    pipeline: &TextToVideo<B>,
    config: &TinyTrainConfig,
    seed: u64,
    device: &B::Device,
) -> Result<Vec<MotionCheck>, ModelError> {
    check_motion_with(pipeline, config, &config.generate_options(seed), device)
}

/// [`check_motion`] with explicit sampling settings (`options.latent_size` must be the
/// dataset's `[3, T, H, W]`).
///
/// # Errors
/// Those of [`TextToVideo::generate`].
pub fn check_motion_with<B: Backend>(
    pipeline: &TextToVideo<B>,
    config: &TinyTrainConfig,
    options: &GenerateOptions,
    device: &B::Device,
) -> Result<Vec<MotionCheck>, ModelError> {
    let combos: Vec<_> = (0..24).map(MovingShapes::combination).collect();
    let labels: Vec<String> = combos.iter().map(|&(c, s, d)| label(c, s, d)).collect();
    let prompts: Vec<&str> = labels.iter().map(String::as_str).collect();
    let video = pipeline.generate(&prompts, options, device)?;
    let values: Vec<f32> = video.into_data().iter::<f32>().collect();
    let [_, t, h, w] = options.latent_size;
    let per = 3 * t * h * w;
    let travel = config.data.travel();
    Ok(combos
        .into_iter()
        .zip(labels)
        .enumerate()
        .map(|(i, ((colour, shape, direction), label))| {
            let motion = measure_motion(
                &values[i * per..(i + 1) * per],
                [t, h, w],
                colour,
                direction,
            );
            MotionCheck {
                follows: motion.follows(travel, 3),
                label,
                colour,
                shape,
                direction,
                motion,
            }
        })
        .collect())
}

/// Trains [`TextVideoModel`] with AdamW through burn-train's `Learner` on `devices` (one device:
/// single-device strategy; several: burn-train's multi-device data parallelism), writing
/// burn-train's logs under `artifact_dir`. Returns the trained model and the loss of every step.
///
/// # Errors
/// Those of [`TinyTrainConfig::init`] and [`MovingShapesConfig::init`]; [`ModelError::Zero`]
/// naming `devices`, `steps` or `batch_size`.
pub fn train<B: AutodiffBackend>(
    config: &TinyTrainConfig,
    devices: &[B::Device],
    artifact_dir: impl AsRef<Path>,
) -> Result<(TextVideoModel<B::InnerBackend>, Vec<f64>), ModelError> {
    crate::error::positive("devices", devices.len())?;
    crate::error::positive("steps", config.steps)?;
    crate::error::positive("batch_size", config.batch_size)?;
    let device = &devices[0];
    let model = config.init::<B>(device)?;
    let data = MovingShapesConfig {
        len: config.steps * config.batch_size,
        ..config.data.clone()
    };
    let train_data = data.init()?;
    let valid_data = MovingShapesConfig {
        len: config.batch_size,
        seed: data.seed ^ 0xA5A5,
        ..data.clone()
    }
    .init()?;
    let train_loader = DataLoaderBuilder::new(MovingShapesBatcher::default())
        .batch_size(config.batch_size)
        .set_device(device.clone())
        .build(train_data);
    let valid_loader = DataLoaderBuilder::new(MovingShapesBatcher::default())
        .batch_size(config.batch_size)
        .set_device(device.clone())
        .build(valid_data);
    let optim = AdamWConfig::new()
        .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
        .init::<B, TextVideoModel<B>>();
    let schedule = CosineAnnealingLrSchedulerConfig::new(config.learning_rate, config.steps)
        .with_min_lr(config.min_learning_rate)
        .init()
        .map_err(|message| ModelError::Component {
            part: "learning-rate schedule",
            message,
        })?;
    let renderer = ProgressRenderer::default();
    let strategy = if devices.len() > 1 {
        ExecutionStrategy::MultiDevice(devices.to_vec(), MultiDeviceOptim::OptimMainDevice)
    } else {
        ExecutionStrategy::SingleDevice(device.clone())
    };
    let result = SupervisedTraining::new(artifact_dir, train_loader, valid_loader)
        .metric_train_numeric(LossMetric::new())
        .renderer(renderer.clone())
        .with_application_logger(None)
        .with_training_strategy(strategy.into())
        .num_epochs(1)
        .launch(Learner::new(model, optim, schedule));
    eprintln!();
    Ok((result.model, renderer.losses()))
}

/// Means of the first and the last `fraction` of `losses` (at least one value each).
///
/// # Panics
/// If `losses` is empty.
pub fn first_last_means(losses: &[f64], fraction: f64) -> (f64, f64) {
    assert!(!losses.is_empty(), "no losses");
    let k = ((losses.len() as f64 * fraction).round() as usize).clamp(1, losses.len());
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    (mean(&losses[..k]), mean(&losses[losses.len() - k..]))
}

/// Draws `losses` as a line plot (grey: per step, blue: moving average over 5 % of the steps,
/// y from 0 to the largest loss) into a `width × height` RGB image and writes it as PNG.
///
/// # Errors
/// [`ModelError::Io`] if the file cannot be written; [`ModelError::Zero`] for no losses or a
/// zero-sized image.
pub fn write_loss_curve_png(
    losses: &[f64],
    path: impl AsRef<Path>,
    [width, height]: [usize; 2],
) -> Result<(), ModelError> {
    crate::error::positive("losses", losses.len())?;
    crate::error::positive("width", width)?;
    crate::error::positive("height", height)?;
    let mut rgb = vec![255u8; width * height * 3];
    let max = losses.iter().cloned().fold(f64::MIN_POSITIVE, f64::max);
    let window = (losses.len() / 20).max(1);
    let smooth: Vec<f64> = (0..losses.len())
        .map(|i| {
            let s = &losses[i.saturating_sub(window - 1)..=i];
            s.iter().sum::<f64>() / s.len() as f64
        })
        .collect();
    let point = |i: usize, v: f64| {
        let x = i * (width - 1) / (losses.len() - 1).max(1);
        let y = ((1.0 - v / max) * (height - 1) as f64)
            .round()
            .clamp(0.0, (height - 1) as f64);
        (x, y as usize)
    };
    for (series, colour) in [(losses, [170u8, 170, 170]), (&smooth[..], [20, 60, 200])] {
        for i in 1..series.len().max(2).min(series.len()) {
            let ((x0, y0), (x1, y1)) = (point(i - 1, series[i - 1]), point(i, series[i]));
            let steps = x1.abs_diff(x0).max(y1.abs_diff(y0)).max(1);
            for s in 0..=steps {
                let x = x0 as f64 + (x1 as f64 - x0 as f64) * s as f64 / steps as f64;
                let y = y0 as f64 + (y1 as f64 - y0 as f64) * s as f64 / steps as f64;
                let p = (y.round() as usize * width + x.round() as usize) * 3;
                rgb[p..p + 3].copy_from_slice(&colour);
            }
        }
    }
    let path = path.as_ref();
    let io = |e: &dyn std::fmt::Display| ModelError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let file = std::fs::File::create(path).map_err(|e| io(&e))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| io(&e))?;
    writer.write_image_data(&rgb).map_err(|e| io(&e))
}

/// Loads a [`TinyTrainConfig`] JSON and the checkpoint [`train`]'s caller saved with
/// [`save_checkpoint`](crate::save_checkpoint), and pairs the parts into a [`TextToVideo`]
/// pipeline with the labels' [`tokenizer`].
///
/// # Errors
/// [`ModelError::Io`] / [`ModelError::Parse`] for an unreadable config; those of
/// [`TinyTrainConfig::init`], [`load_checkpoint`](crate::load_checkpoint) and
/// [`TextToVideo::new`].
pub fn load_text_to_video<B: Backend>(
    config_path: impl AsRef<Path>,
    checkpoint_path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<(TextToVideo<B>, TinyTrainConfig), ModelError> {
    let config_path = config_path.as_ref();
    let config = TinyTrainConfig::load(config_path).map_err(|e| ModelError::Parse {
        path: config_path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut model = config.init::<B>(device)?;
    crate::load_checkpoint(&mut model, checkpoint_path)?;
    let pipeline = TextToVideo::new(model.model, tokenizer(), model.text_embedder)?;
    Ok((pipeline, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_flow_carries_the_time_distribution() {
        let config = TinyTrainConfig::tiny(10)
            .with_logit_mean(0.25)
            .with_logit_std(2.0);
        let flow = config.training_flow();
        assert_eq!(flow.time_sampling, TimeSampling::LogitNormal);
        assert_eq!((flow.logit_mean, flow.logit_std), (0.25, 2.0));
        assert!(!flow.use_timestep_transform);
        let tiny = TinyTrainConfig::tiny(10);
        assert!(tiny.model.cross_qk_norm && tiny.model.temporal_pos_embed);
        assert_eq!(tiny.data.travel(), 10.5);
    }

    #[test]
    fn first_last_means_and_png() {
        let losses: Vec<f64> = (0..20).map(|i| 1.0 / (1.0 + i as f64)).collect();
        let (first, last) = first_last_means(&losses, 0.1);
        assert_eq!(first, (1.0 + 0.5) / 2.0);
        assert_eq!(last, (1.0 / 19.0 + 1.0 / 20.0) / 2.0);
        let path = std::env::temp_dir().join("vidgen_loss_curve_test.png");
        write_loss_curve_png(&losses, &path, [64, 32]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(matches!(
            write_loss_curve_png(&[], &path, [64, 32]),
            Err(ModelError::Zero { field: "losses" })
        ));
    }
}
