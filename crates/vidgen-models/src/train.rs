//! Training the tiny text-to-video model ([`TextVideoModel`], see [`crate::tiny`]) on
//! [`MovingShapes`](crate::data::MovingShapes) with rectified flow, through burn-train's
//! supervised `Learner` (single device, or burn-train's multi-device data-parallel strategy when
//! several devices are given — gradients are synchronised by burn-train): checkpoints every
//! [`TinyTrainConfig::checkpoint_every`] steps, bit-exact resumption, a non-finite loss guard, and
//! a PNG loss curve. Feature `train` (burn-train and png).

use crate::data::{MovingShapesBatcher, MovingShapesConfig, VideoBatch};
use crate::error::{ComponentError, ConfigError, ModelError};
use crate::tiny::{LossGuard, TextVideoModel, TinyTrainConfig};
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
use burn::tensor::{ElementConversion, Tensor, Transaction};
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
use std::sync::{Arc, Mutex};
use vidgen_nn::checkpoint::{AtomicFileRecorder, write_atomically};

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
        if self.loss_guard.is_active() {
            let value: f64 = loss.clone().into_scalar().elem();
            if !self.loss_guard.admit(value) {
                // No gradients: the optimiser leaves every parameter as it is.
                return TrainOutput {
                    grads: GradientsParams::new(),
                    item: FlowOutput { loss },
                };
            }
        }
        let grads = if self.loss_scale == 1.0 {
            loss.clone().backward()
        } else {
            (loss.clone() * self.loss_scale).backward()
        };
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

/// Trains [`TextVideoModel`] — from scratch, or from
/// [`base_checkpoint`](TinyTrainConfig::base_checkpoint) (with [`lora`](TinyTrainConfig::lora):
/// adapters and new-word rows only, [`TinyTrainConfig::init_from_base`]) — with AdamW through
/// burn-train's `Learner` on `devices` (one device:
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
/// - [`ModelError::Config`] (`ConfigError::Zero`) naming `devices`, `steps`, `batch_size` or `checkpoint_every`;
/// - [`ModelError::Config`] (`ConfigError::Unsupported`) naming `lora` when it is set without
///   `base_checkpoint`; those of [`TinyTrainConfig::init_from_base`];
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
    let replicas = devices.len();
    if !config.batch_size.is_multiple_of(replicas) {
        return Err(ConfigError::NotDivisible {
            field: "batch_size",
            value: config.batch_size,
            by: replicas,
            by_field: Some("devices"),
        }
        .into());
    }
    let artifact_dir = artifact_dir.as_ref();
    let device = &devices[0];
    B::seed(device, config.seed);
    let mut model = match (&config.base_checkpoint, &config.lora) {
        (Some(_), _) => config.init_from_base::<B>(device)?,
        (None, None) => config.init::<B>(device)?,
        (None, Some(lora)) => {
            return Err(ConfigError::Unsupported {
                field: "lora",
                value: format!("rank {}", lora.rank),
                reason: "LoRA fine-tunes a trained model: set `base_checkpoint`",
            }
            .into());
        }
    };
    model.loss_scale = 1.0 / replicas as f64;
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
    let batcher = MovingShapesBatcher {
        tokenizer: config.tokenizer(),
    };
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
            source: Box::new(ComponentError::Message(message)),
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
        let stop = interrupter.clone();
        model.loss_guard =
            LossGuard::data_parallel(done * config.checkpoint_every, replicas, move || {
                stop.stop(Some("non-finite training loss"))
            });
    }
    let guard = model.loss_guard.clone();
    let chunks = (0..epochs)
        .map(|e| {
            let end = ((e + 1) * stretch).min(train_data.len());
            DataLoaderBuilder::new(batcher.clone())
                .batch_size(config.batch_size / replicas)
                .set_device(device.clone())
                .build(PartialDataset::new(train_data.clone(), e * stretch, end))
        })
        .collect();
    let train_loader: Arc<dyn DataLoader<B, VideoBatch<B>>> = Arc::new(Stretches {
        chunks,
        next: Mutex::new(done),
    });
    let valid_loader = DataLoaderBuilder::new(batcher.clone())
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
    model.loss_scale = 1.0;
    // burn-train reports one loss per device and step, the devices of a step one after another:
    // their mean is the loss of the step's whole batch.
    let losses = renderer
        .losses()
        .chunks(replicas)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    Ok((model, losses))
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
            source: Box::new(ComponentError::Message(message)),
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
/// [`ModelError::Io`] if the file cannot be written; [`ModelError::Config`] (`ConfigError::Zero`) for no losses or a
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

#[cfg(test)]
mod tests {
    use super::*;

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
            Err(ModelError::Config(crate::ConfigError::Zero {
                field: "losses"
            }))
        ));
    }
}
