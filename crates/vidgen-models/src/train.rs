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
use burn::data::dataloader::{DataLoader, DataLoaderBuilder, DataLoaderIterator};
use burn::data::dataset::Dataset;
use burn::data::dataset::transform::PartialDataset;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::module::Module;
use burn::optim::lr_scheduler::LrScheduler;
use burn::optim::lr_scheduler::cosine::{
    CosineAnnealingLrScheduler, CosineAnnealingLrSchedulerConfig,
};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder, RecorderError};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, ElementConversion, Tensor, TensorData, Transaction};
use burn_store::ModuleSnapshot;
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
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use vidgen_nn::checkpoint::{AtomicFileRecorder, write_atomically};
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
    /// Optimiser steps between checkpoints: model, optimiser and learning-rate state are written
    /// (atomically) to `<artifact_dir>/checkpoint/` after every stretch of this many steps, and
    /// [`TrainOptions::resume`] continues from the newest complete one.
    #[config(default = 500)]
    pub checkpoint_every: usize,
    /// Seed of the parameter initialisation: the backend's random generator is seeded with it
    /// before the model is built, so two runs of one configuration start from the same weights
    /// (Burn's generator is global to the process: no other thread may draw from it meanwhile).
    #[config(default = 0)]
    pub seed: u64,
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
            loss_guard: LossGuard::default(),
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
    /// The non-finite loss check of [`train_with`] (off outside a run).
    #[module(skip)]
    pub loss_guard: LossGuard,
}

/// The non-finite loss check of a training run: counts optimiser steps and, on the first NaN/±∞
/// loss, records the step and value, skips that step's update and stops the run through
/// burn-train's interrupter. Inactive by default (outside [`train_with`]).
#[derive(Clone, Default)]
pub struct LossGuard {
    state: Option<Arc<GuardState>>,
}

struct GuardState {
    next_step: AtomicUsize,
    found: Mutex<Option<(usize, f64)>>,
    interrupter: Interrupter,
}

impl std::fmt::Debug for LossGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossGuard")
            .field("active", &self.state.is_some())
            .finish()
    }
}

impl LossGuard {
    fn new(steps_done: usize, interrupter: Interrupter) -> Self {
        Self {
            state: Some(Arc::new(GuardState {
                next_step: AtomicUsize::new(steps_done),
                found: Mutex::new(None),
                interrupter,
            })),
        }
    }

    /// Checks one step's loss: `true` if the step may be applied.
    fn admit(&self, loss: f64) -> bool {
        let Some(state) = &self.state else {
            return true;
        };
        let step = state.next_step.fetch_add(1, Ordering::SeqCst) + 1;
        if loss.is_finite() {
            return true;
        }
        state
            .found
            .lock()
            .expect("loss guard")
            .get_or_insert((step, loss));
        state.interrupter.stop(Some("non-finite training loss"));
        false
    }

    /// The first non-finite loss seen, as `(step, loss)`.
    fn found(&self) -> Option<(usize, f64)> {
        self.state
            .as_ref()
            .and_then(|s| *s.found.lock().expect("loss guard"))
    }
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
        if self.loss_guard.state.is_some() {
            let value: f64 = loss.clone().into_scalar().elem();
            if !self.loss_guard.admit(value) {
                // No gradients: the optimiser leaves every parameter as it is.
                return TrainOutput {
                    grads: GradientsParams::new(),
                    item: FlowOutput { loss },
                };
            }
        }
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

/// burn-train's handle for stopping a run from another thread ([`TrainOptions::interrupter`]).
pub use burn_train::Interrupter;

/// How [`train_with`] runs.
#[derive(Clone, Default)]
pub struct TrainOptions {
    /// Continue the run in `artifact_dir` from its newest complete checkpoint (model, optimiser
    /// and learning-rate state of the same stretch) instead of starting afresh. The result is
    /// bit-identical to an uninterrupted run on the same backend: the data of every stretch is
    /// fixed by the configuration, and all randomness comes from the items' seeds.
    pub resume: bool,
    /// burn-train's interrupter: [`Interrupter::stop`] ends the run after the current step, and
    /// the unfinished stretch is not checkpointed.
    pub interrupter: Option<Interrupter>,
    /// Skip the per-step non-finite loss check (one scalar read-back per step).
    pub skip_loss_check: bool,
}

/// Trains [`TextVideoModel`] from scratch: [`train_with`] with default options.
///
/// # Errors
/// Those of [`train_with`].
pub fn train<B: AutodiffBackend>(
    config: &TinyTrainConfig,
    devices: &[B::Device],
    artifact_dir: impl AsRef<Path>,
) -> Result<(TextVideoModel<B::InnerBackend>, Vec<f64>), ModelError> {
    train_with::<B>(config, devices, artifact_dir, &TrainOptions::default())
}

/// Trains [`TextVideoModel`] with AdamW through burn-train's `Learner` on `devices` (one device:
/// single-device strategy; several: burn-train's multi-device data parallelism), writing
/// burn-train's logs under `artifact_dir` and, every [`TinyTrainConfig::checkpoint_every`]
/// steps, a checkpoint of model, optimiser and learning-rate schedule to
/// `artifact_dir/checkpoint/` (burn-train's checkpointer, each file written atomically by
/// [`AtomicFileRecorder`]; the two newest are kept). The configuration is stored as
/// `artifact_dir/train_config.json`.
///
/// Each stretch between checkpoints is one burn-train epoch over its own slice of the dataset,
/// so a resumed run sees exactly the data the uninterrupted run would have.
///
/// Returns the trained model and the loss of every step run by this call.
///
/// # Errors
/// - those of [`TinyTrainConfig::init`] and [`MovingShapesConfig::init`];
/// - [`ModelError::Zero`] naming `devices`, `steps`, `batch_size` or `checkpoint_every`;
/// - [`ModelError::Io`] if `artifact_dir` cannot be written, or, when resuming, holds no complete
///   checkpoint or an unreadable one;
/// - [`ModelError::ResumeMismatch`] when resuming with another configuration than the run's;
/// - [`ModelError::NonFiniteLoss`] with the step and value if the loss becomes NaN or ±∞ (the
///   update of that step is not applied and the run stops; the last checkpoint is the previous
///   good one).
pub fn train_with<B: AutodiffBackend>(
    config: &TinyTrainConfig,
    devices: &[B::Device],
    artifact_dir: impl AsRef<Path>,
    options: &TrainOptions,
) -> Result<(TextVideoModel<B::InnerBackend>, Vec<f64>), ModelError> {
    crate::error::positive("devices", devices.len())?;
    crate::error::positive("steps", config.steps)?;
    crate::error::positive("batch_size", config.batch_size)?;
    crate::error::positive("checkpoint_every", config.checkpoint_every)?;
    let artifact_dir = artifact_dir.as_ref();
    let device = &devices[0];
    B::seed(device, config.seed);
    let mut model = config.init::<B>(device)?;
    let data = MovingShapesConfig {
        len: config.steps * config.batch_size,
        ..config.data.clone()
    };
    let train_data = Arc::new(data.init()?);
    let valid_data = MovingShapesConfig {
        len: config.batch_size,
        seed: data.seed ^ 0xA5A5,
        ..data.clone()
    }
    .init()?;
    let stretch = config.checkpoint_every * config.batch_size;
    let epochs = config.steps.div_ceil(config.checkpoint_every);
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
    let recorder = checkpoint_recorder();
    let done = if options.resume {
        let epoch = resume_point(artifact_dir, config)?;
        let checkpoint_dir = artifact_dir.join("checkpoint");
        validate_checkpoint::<B>(&checkpoint_dir, epoch, &model, &optim, &schedule, device)?;
        epoch
    } else {
        store_config(artifact_dir, config)?;
        0
    };
    let interrupter = options.interrupter.clone().unwrap_or_default();
    if !options.skip_loss_check {
        model.loss_guard = LossGuard::new(done * config.checkpoint_every, interrupter.clone());
    }
    let guard = model.loss_guard.clone();
    let chunks = (0..epochs)
        .map(|e| {
            let end = ((e + 1) * stretch).min(train_data.len());
            DataLoaderBuilder::new(MovingShapesBatcher::default())
                .batch_size(config.batch_size)
                .set_device(device.clone())
                .build(PartialDataset::new(train_data.clone(), e * stretch, end))
        })
        .collect();
    let train_loader: Arc<dyn DataLoader<B, VideoBatch<B>>> = Arc::new(Stretches {
        chunks,
        next: Mutex::new(done),
    });
    let valid_loader = DataLoaderBuilder::new(MovingShapesBatcher::default())
        .batch_size(config.batch_size)
        .set_device(device.clone())
        .build(valid_data);
    let renderer = ProgressRenderer::default();
    let strategy = if devices.len() > 1 {
        ExecutionStrategy::MultiDevice(devices.to_vec(), MultiDeviceOptim::OptimMainDevice)
    } else {
        ExecutionStrategy::SingleDevice(device.clone())
    };
    let mut training = SupervisedTraining::new(artifact_dir, train_loader, valid_loader)
        .metric_train_numeric(LossMetric::new())
        .renderer(renderer.clone())
        .with_application_logger(None)
        .with_training_strategy(strategy.into())
        .with_file_checkpointer(recorder)
        .with_interrupter(interrupter)
        .num_epochs(epochs);
    if done > 0 {
        training = training.checkpoint(done);
    }
    let result = training.launch(Learner::new(model, optim, schedule));
    eprintln!();
    if let Some((step, loss)) = guard.found() {
        return Err(ModelError::NonFiniteLoss { step, loss });
    }
    let mut model = result.model;
    model.loss_guard = LossGuard::default();
    Ok((model, renderer.losses()))
}

/// Checks that the run in `artifact_dir` can be resumed with `config` — what
/// [`train_with`] with [`TrainOptions::resume`] does before training: the stored configuration
/// equals `config`, and the newest stretch with all three checkpoint files (model, optimiser,
/// learning-rate schedule) reads back, with the model's parameter names and shapes. Returns
/// that stretch's number (the run continues after `number · checkpoint_every` steps).
///
/// # Errors
/// As the resume errors of [`train_with`]: [`ModelError::Io`] naming the file or directory,
/// [`ModelError::Parse`], [`ModelError::ResumeMismatch`]; those of [`TinyTrainConfig::init`].
pub fn check_resume<B: AutodiffBackend>(
    config: &TinyTrainConfig,
    artifact_dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<usize, ModelError> {
    let artifact_dir = artifact_dir.as_ref();
    let epoch = resume_point(artifact_dir, config)?;
    let model = config.init::<B>(device)?;
    let optim = AdamWConfig::new().init::<B, TextVideoModel<B>>();
    let schedule = CosineAnnealingLrSchedulerConfig::new(config.learning_rate, config.steps.max(1))
        .init()
        .map_err(|message| ModelError::Component {
            part: "learning-rate schedule",
            message,
        })?;
    let dir = artifact_dir.join("checkpoint");
    validate_checkpoint::<B>(&dir, epoch, &model, &optim, &schedule, device)?;
    Ok(epoch)
}

/// The recorder of the training checkpoints: burn's named MessagePack at full precision (the
/// optimiser moments and weights round-trip bit for bit), written atomically.
type CheckpointRecorder = AtomicFileRecorder<NamedMpkFileRecorder<FullPrecisionSettings>>;

fn checkpoint_recorder() -> CheckpointRecorder {
    AtomicFileRecorder::new(NamedMpkFileRecorder::new())
}

const CONFIG_FILE: &str = "train_config.json";

/// The configuration a run in `artifact_dir` was started with (what [`train_with`] stored), for
/// resuming it.
///
/// # Errors
/// [`ModelError::Io`] naming the file if it cannot be read; [`ModelError::Parse`] if it is not a
/// valid [`TinyTrainConfig`].
pub fn stored_config(artifact_dir: impl AsRef<Path>) -> Result<TinyTrainConfig, ModelError> {
    let path = artifact_dir.as_ref().join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, &e))?;
    TinyTrainConfig::load_binary(text.as_bytes()).map_err(|e| ModelError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Writes the run's configuration next to its checkpoints (atomically).
fn store_config(artifact_dir: &Path, config: &TinyTrainConfig) -> Result<(), ModelError> {
    let path = artifact_dir.join(CONFIG_FILE);
    std::fs::create_dir_all(artifact_dir)
        .and_then(|()| write_atomically(&path, |p| std::fs::write(p, config.to_string())))
        .map_err(|e| io_error(&path, &e))
}

/// The newest stretch with all three checkpoint files, after checking that the stored
/// configuration is `config`.
fn resume_point(artifact_dir: &Path, config: &TinyTrainConfig) -> Result<usize, ModelError> {
    let path = artifact_dir.join(CONFIG_FILE);
    let stored = std::fs::read_to_string(&path).map_err(|e| io_error(&path, &e))?;
    let parse = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text).map_err(|e| ModelError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let (stored, current) = (parse(&stored)?, parse(&config.to_string())?);
    if stored != current {
        let keys = |v: &serde_json::Value| {
            v.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let mut fields: Vec<String> = keys(&stored)
            .into_iter()
            .chain(keys(&current))
            .filter(|k| stored.get(k) != current.get(k))
            .collect();
        fields.sort();
        fields.dedup();
        return Err(ModelError::ResumeMismatch {
            path: path.display().to_string(),
            fields,
        });
    }
    let dir = artifact_dir.join("checkpoint");
    let complete = |e: usize| {
        ["model", "optim", "scheduler"]
            .iter()
            .all(|part| dir.join(format!("{part}-{e}.mpk")).is_file())
    };
    let newest = std::fs::read_dir(&dir)
        .map_err(|e| io_error(&dir, &e))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("model-")?
                .strip_suffix(".mpk")?
                .parse::<usize>()
                .ok()
        })
        .filter(|&e| e > 0 && complete(e))
        .max();
    newest.ok_or_else(|| ModelError::Io {
        path: dir.display().to_string(),
        message: "no complete checkpoint (model-N, optim-N and scheduler-N .mpk) to resume from"
            .into(),
    })
}

/// Reads the three records of stretch `epoch` before burn-train does (which would panic on an
/// unreadable file), and checks the model record against the model.
fn validate_checkpoint<B: AutodiffBackend>(
    dir: &Path,
    epoch: usize,
    model: &TextVideoModel<B>,
    optim: &impl Optimizer<TextVideoModel<B>, B>,
    schedule: &CosineAnnealingLrScheduler,
    device: &B::Device,
) -> Result<(), ModelError> {
    // Burn turns some malformed records into panics after decoding them (an invalid parameter
    // id in `ParamId::deserialize`): those become an error naming the directory too.
    let read = || -> Result<(), ModelError> {
        let recorder = checkpoint_recorder();
        let path = |part: &str| dir.join(format!("{part}-{epoch}"));
        let unreadable = |part: &str, e: RecorderError| ModelError::Io {
            path: format!("{}.mpk", path(part).display()),
            message: e.to_string(),
        };
        let inner = model.clone().valid();
        let loaded = inner
            .clone()
            .load_file(path("model"), &recorder, device)
            .map_err(|e| unreadable("model", e))?;
        let shapes = |m: &TextVideoModel<B::InnerBackend>| {
            m.clone()
                .collect(None, None, false)
                .into_iter()
                .map(|t| (t.full_path(), t.shape.clone()))
                .collect::<Vec<_>>()
        };
        if shapes(&loaded) != shapes(&inner) {
            return Err(ModelError::Io {
                path: format!("{}.mpk", path("model").display()),
                message: "the stored parameters do not match the model's names and shapes".into(),
            });
        }
        let record = Recorder::<B>::load(&recorder, path("optim"), device)
            .map_err(|e| unreadable("optim", e))?;
        let _ = optim.clone().load_record(record);
        let record = Recorder::<B>::load(&recorder, path("scheduler"), device)
            .map_err(|e| unreadable("scheduler", e))?;
        let _ = LrScheduler::load_record::<B>(*schedule, record);
        Ok(())
    };
    std::panic::catch_unwind(AssertUnwindSafe(read)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(ModelError::Io {
            path: format!("{}/*-{epoch}.mpk", dir.display()),
            message: format!("malformed checkpoint record: {message}"),
        })
    })
}

fn io_error(path: &Path, e: &std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// burn-train's training data loader for [`train_with`]: one loader per checkpoint stretch, each
/// over its own slice of the dataset. burn-train asks for an iterator once per epoch; each
/// request yields the next stretch (a resumed run starts at the first unfinished one).
struct Stretches<B: Backend> {
    chunks: Vec<Arc<dyn DataLoader<B, VideoBatch<B>>>>,
    next: Mutex<usize>,
}

impl<B: Backend> Stretches<B> {
    fn map(
        &self,
        f: impl Fn(&Arc<dyn DataLoader<B, VideoBatch<B>>>) -> Arc<dyn DataLoader<B, VideoBatch<B>>>,
    ) -> Arc<dyn DataLoader<B, VideoBatch<B>>> {
        Arc::new(Self {
            chunks: self.chunks.iter().map(f).collect(),
            next: Mutex::new(*self.next.lock().expect("stretch counter")),
        })
    }

    fn current(&self) -> &Arc<dyn DataLoader<B, VideoBatch<B>>> {
        let next = *self.next.lock().expect("stretch counter");
        &self.chunks[next.min(self.chunks.len() - 1)]
    }
}

impl<B: Backend> DataLoader<B, VideoBatch<B>> for Stretches<B> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<VideoBatch<B>> + 'a> {
        let mut next = self.next.lock().expect("stretch counter");
        let chunk = &self.chunks[*next % self.chunks.len()];
        *next += 1;
        chunk.iter()
    }

    fn num_items(&self) -> usize {
        self.current().num_items()
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, VideoBatch<B>>> {
        self.map(|c| c.to_device(device))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, VideoBatch<B>>> {
        self.map(|c| {
            let n = c.num_items();
            c.slice(start.min(n), end.min(n))
        })
    }
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
