//! The tiny text-to-video model of the moving-shapes data: its configuration
//! ([`TinyTrainConfig`], also the file format of a trained model), the trained pair
//! ([`TextVideoModel`]) with its rectified-flow loss, loading a trained model for inference
//! ([`load_text_to_video`]) and the motion check of its videos ([`check_motion`]). Training it
//! through burn-train is in `train` (feature `train`). A configuration with
//! [`base_checkpoint`](TinyTrainConfig::base_checkpoint) and [`lora`](TinyTrainConfig::lora)
//! fine-tunes a trained model with LoRA adapters, new colour words getting embedding rows of
//! their own; [`load_lora_text_to_video`] loads base + adapter file.
//!
//! Loss (rectified flow, Liu et al. 2022; Open-Sora 1.2 report sec. 4.2): for a clean video `x₀`,
//! noise `ε` and a time `t` ([`TinyTrainConfig::time_sampling`], logit-normal by default),
//! `x_t = (1 − t)·x₀ + t·ε` and `L = mean ‖v_θ(x_t, 1000·t, text) − (ε − x₀)‖²`
//! ([`RectifiedFlow::training_batch`](vidgen_schedulers::RectifiedFlow::training_batch)). The text
//! is replaced by the model's learnt null caption with probability `cfg_dropout`, so the model
//! also learns the unconditional velocity that classifier-free guidance needs. All randomness
//! (noise, times, dropout) comes from the items' seeds: a step is a pure function of its batch.

use crate::data::{
    Colour, Direction, Motion, MovingShapesConfig, Shape, VideoBatch, label, measure_motion,
    new_words, tokenizer, tokenizer_for,
};
use crate::denoise::TextConditioning;
use crate::error::ConfigError;
use crate::error::{ModelError, component};
use crate::generate::GenerateOptions;
use crate::stdit::{Stdit, StditConfig, TextToVideo};
use crate::text::{TextEmbedder, TextEmbedderConfig, WordTokenizer};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use vidgen_nn::{LoraConfig, WithLora};
use vidgen_schedulers::{FlowTrainingConfig, NoiseGenerator, RectifiedFlowConfig, TimeSampling};

/// Settings of a training run (`train::train`, feature `train`): model, data and optimisation.
/// It is also the configuration file of a trained model ([`load_text_to_video`]).
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
    /// a resumed run continues from the newest complete one.
    #[config(default = 500)]
    pub checkpoint_every: usize,
    /// Seed of the parameter initialisation: the backend's random generator is seeded with it
    /// before the model is built, so two runs of one configuration start from the same weights
    /// (Burn's generator is global to the process: no other thread may draw from it meanwhile).
    #[config(default = 0)]
    pub seed: u64,
    /// Trained weights to start from (a checkpoint of the same model without adapters and new
    /// words, e.g. `assets/tiny_stdit.safetensors`); `None` trains from scratch. A path
    /// relative to the working directory of the training run.
    pub base_checkpoint: Option<String>,
    /// Fine-tune with LoRA adapters only ([`TinyTrainConfig::init_from_base`]): the base
    /// weights are frozen, adapters are attached to the denoiser's targeted linears, and the
    /// embedding rows of new words ([`new_words`] of `data.colours`) are trained with them.
    /// Needs [`base_checkpoint`](Self::base_checkpoint).
    pub lora: Option<LoraConfig>,
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

    /// Builds the untrained model with every part the configuration names: the denoiser, the
    /// text embedding of the base vocabulary ([`tokenizer`]) with rows for the new words of
    /// `data.colours` ([`TextEmbedder::with_new_tokens`]), and LoRA adapters if
    /// [`lora`](Self::lora) is set — the structure of the checkpoints a run of this
    /// configuration saves.
    ///
    /// # Errors
    /// Those of [`StditConfig::init`] and [`TextEmbedderConfig::init`];
    /// [`ModelError::Component`] for an invalid [`LoraConfig`].
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<TextVideoModel<B>, ModelError> {
        self.adapt(self.init_base(device)?)
    }

    /// The trained base model this configuration fine-tunes, ready to train: the model of the
    /// base vocabulary without adapters, loaded from [`base_checkpoint`](Self::base_checkpoint);
    /// then, with [`lora`](Self::lora), every loaded parameter frozen and the adapters attached;
    /// and new-word rows added (trainable).
    ///
    /// # Errors
    /// [`ModelError::Config`] (`ConfigError::Unsupported`) naming `base_checkpoint` if it is
    /// not set; those of [`load_checkpoint`](crate::load_checkpoint) and [`init`](Self::init).
    pub fn init_from_base<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<TextVideoModel<B>, ModelError> {
        let Some(path) = &self.base_checkpoint else {
            return Err(ConfigError::Unsupported {
                field: "base_checkpoint",
                value: "None".into(),
                reason: "fine-tuning starts from a trained checkpoint",
            }
            .into());
        };
        self.load_base_and_adapt(path, device)
    }

    /// [`init_from_base`](Self::init_from_base) from the checkpoint at `path`.
    fn load_base_and_adapt<B: Backend>(
        &self,
        path: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<TextVideoModel<B>, ModelError> {
        let mut base = self.init_base(device)?;
        crate::load_checkpoint(&mut base, path)?;
        if self.lora.is_some() {
            base = base.no_grad();
        }
        self.adapt(base)
    }

    /// The tokenizer of this configuration's labels ([`tokenizer_for`] of `data.colours`).
    pub fn tokenizer(&self) -> WordTokenizer {
        tokenizer_for(self.data.colours())
    }

    /// The model of the base vocabulary without adapters.
    fn init_base<B: Backend>(&self, device: &B::Device) -> Result<TextVideoModel<B>, ModelError> {
        Ok(TextVideoModel {
            model: self.model.init(device)?,
            text_embedder: TextEmbedderConfig::new(tokenizer().vocab_size(), self.model.d_text)
                .init(device)?,
            cfg_dropout: self.cfg_dropout,
            fps: self.fps,
            flow: self.training_flow(),
            loss_guard: LossGuard::default(),
            loss_scale: 1.0,
        })
    }

    /// Adds what the configuration puts on top of the base model: adapters and new-word rows.
    fn adapt<B: Backend>(&self, mut m: TextVideoModel<B>) -> Result<TextVideoModel<B>, ModelError> {
        if let Some(lora) = &self.lora {
            m.model = m.model.with_lora(lora).map_err(component("LoRA"))?;
        }
        m.text_embedder = m
            .text_embedder
            .with_new_tokens(new_words(self.data.colours()).len());
        Ok(m)
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
    /// The non-finite loss check of a training run (off outside one).
    #[module(skip)]
    pub loss_guard: LossGuard,
    /// Factor on the training loss before backward: `1/N` on `N` data-parallel devices, so the
    /// sum burn-train forms of the devices' gradients is their average (1 outside such a run).
    #[module(skip)]
    pub loss_scale: f64,
}

/// The non-finite loss check of a training run: counts optimiser steps and, on the first NaN/±∞
/// loss, records the step and value and calls its stop callback; the training step then skips
/// its update. Inactive by default (training sets it up).
#[derive(Clone, Default)]
pub struct LossGuard {
    state: Option<Arc<GuardState>>,
}

struct GuardState {
    /// Losses checked so far (`replicas` per optimiser step).
    next_check: AtomicUsize,
    replicas: usize,
    found: Mutex<Option<(usize, f64)>>,
    stop: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for LossGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossGuard")
            .field("active", &self.state.is_some())
            .finish()
    }
}

impl LossGuard {
    /// An active guard that counts steps from `steps_done` and calls `stop` on the first
    /// non-finite loss.
    pub fn new(steps_done: usize, stop: impl Fn() + Send + Sync + 'static) -> Self {
        Self::data_parallel(steps_done, 1, stop)
    }

    /// [`LossGuard::new`] for a run on `replicas` data-parallel devices, whose every optimiser
    /// step checks `replicas` losses (one per device): the step it reports is the optimiser
    /// step. `replicas` = 0 counts as 1.
    pub fn data_parallel(
        steps_done: usize,
        replicas: usize,
        stop: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let replicas = replicas.max(1);
        Self {
            state: Some(Arc::new(GuardState {
                next_check: AtomicUsize::new(steps_done * replicas),
                replicas,
                found: Mutex::new(None),
                stop: Box::new(stop),
            })),
        }
    }

    /// Whether the guard checks losses.
    pub fn is_active(&self) -> bool {
        self.state.is_some()
    }

    /// Checks one step's loss: `true` if the step may be applied (always, when inactive).
    pub fn admit(&self, loss: f64) -> bool {
        let Some(state) = &self.state else {
            return true;
        };
        let step = state.next_check.fetch_add(1, Ordering::SeqCst) / state.replicas + 1;
        if loss.is_finite() {
            return true;
        }
        state
            .found
            .lock()
            .expect("loss guard")
            .get_or_insert((step, loss));
        (state.stop)();
        false
    }

    /// The first non-finite loss seen, as `(step, loss)`.
    pub fn found(&self) -> Option<(usize, f64)> {
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
    /// Any error of [`Stdit::forward`]; [`ModelError::Component`] from the scheduler.
    pub fn flow_loss(&self, batch: &VideoBatch<B>) -> Result<Tensor<B, 1>, ModelError> {
        let dims = batch.videos.dims();
        let device = batch.videos.device();
        let flow = RectifiedFlowConfig::default()
            .init(1, None)
            .and_then(|f| f.with_training(self.flow.clone()))
            .map_err(component("rectified flow"))?;
        // Noise, time and caption dropout of every item come from that item's seed alone, so a
        // batch split over devices draws what the whole batch draws on one device.
        let item_dims = [1, dims[1], dims[2], dims[3], dims[4]];
        let (mut noise, mut times, mut drop) = (Vec::new(), Vec::new(), Vec::new());
        for &seed in &batch.seeds {
            let mut rng = NoiseGenerator::seed_from_u64(
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x51_7CC1_B727_220A,
            );
            noise.push(rng.normal::<B, 5>(item_dims, &device));
            times.extend(
                flow.sample_training_times(&item_dims, &mut rng)
                    .map_err(component("training times"))?,
            );
            drop.extend(rng.uniform_f64(1).into_iter().map(|u| u < self.cfg_dropout));
        }
        let noise = Tensor::cat(noise, 0);
        let tb = flow
            .training_batch(batch.videos.clone(), noise, &times)
            .map_err(component("training batch"))?;
        let text = self.text_embedder.forward(batch.ids.clone());
        let [n, len, d] = text.dims();
        let null = self.model.y_embedder.null(n, len)?;
        let drop = Tensor::<B, 3, Bool>::from_bool(TensorData::new(drop, [n, 1, 1]), &device);
        let text = text.mask_where(drop.expand([n, len, d]), null);
        let text = TextConditioning::from_lens(text, &batch.lens)?;
        let out = self.model.forward(
            tb.model_input.clone(),
            tb.model_time.clone(),
            &text,
            Tensor::full([n], self.fps, &device),
            None,
        )?;
        Ok(tb.loss(out))
    }
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

/// Generates one video for every label of the dataset (every combination of
/// `config.data.colours`: 24 labels for the base colours; batched, noise from `seed`) and measures
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
    let combos = config.data.init()?.combinations();
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

impl TinyTrainConfig {
    /// The inference pipeline of a model of this configuration: adapters merged into the base
    /// weights ([`WithLora::merge_lora`]), new-word rows into the embedding table
    /// ([`TextEmbedder::merge_new_tokens`]), paired with [`tokenizer`](Self::tokenizer).
    ///
    /// # Errors
    /// Those of [`TextToVideo::new`].
    pub fn pipeline<B: Backend>(
        &self,
        model: TextVideoModel<B>,
    ) -> Result<TextToVideo<B>, ModelError> {
        TextToVideo::new(
            model.model.merge_lora(),
            self.tokenizer(),
            model.text_embedder.merge_new_tokens(),
        )
    }
}

/// Reads a [`TinyTrainConfig`] JSON.
fn read_config(path: &Path) -> Result<TinyTrainConfig, ModelError> {
    TinyTrainConfig::load(path).map_err(|e| ModelError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Loads a [`TinyTrainConfig`] JSON and the checkpoint a training run's caller saved with
/// [`save_checkpoint`](crate::save_checkpoint) (the whole model: adapters and new-word rows
/// included when the configuration has them), and pairs the parts into a [`TextToVideo`]
/// pipeline ([`TinyTrainConfig::pipeline`]).
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
    let config = read_config(config_path.as_ref())?;
    let mut model = config.init::<B>(device)?;
    crate::load_checkpoint(&mut model, checkpoint_path)?;
    Ok((config.pipeline(model)?, config))
}

/// Loads a fine-tuned model from its parts: the [`TinyTrainConfig`] JSON of the fine-tuning
/// run (with [`lora`](TinyTrainConfig::lora)), the base checkpoint it started from and the
/// adapter file ([`save_lora`](vidgen_nn::save_lora): LoRA `A`/`B` and new-word rows), merged
/// into one [`TextToVideo`] pipeline.
///
/// # Errors
/// As [`load_text_to_video`] for the config and the base checkpoint;
/// [`ModelError::Checkpoint`] from [`load_lora`](vidgen_nn::load_lora) for the adapter file
/// (a missing, unexpected or mis-shaped adapter tensor).
pub fn load_lora_text_to_video<B: Backend>(
    config_path: impl AsRef<Path>,
    base_checkpoint: impl AsRef<Path>,
    adapter_path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<(TextToVideo<B>, TinyTrainConfig), ModelError> {
    let config = read_config(config_path.as_ref())?;
    let mut model = config.load_base_and_adapt::<B>(base_checkpoint, device)?;
    vidgen_nn::load_lora(&mut model, adapter_path)?;
    Ok((config.pipeline(model)?, config))
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
    fn loss_guard_records_the_first_bad_step_and_stops() {
        let stopped = Arc::new(AtomicUsize::new(0));
        let s = stopped.clone();
        let guard = LossGuard::new(10, move || {
            s.fetch_add(1, Ordering::SeqCst);
        });
        assert!(guard.admit(0.5));
        assert!(!guard.admit(f64::NAN));
        assert!(!guard.admit(f64::INFINITY));
        let (step, loss) = guard.found().unwrap();
        assert_eq!(step, 12);
        assert!(loss.is_nan());
        assert_eq!(stopped.load(Ordering::SeqCst), 2);
        let off = LossGuard::default();
        assert!(off.admit(f64::NAN) && off.found().is_none() && !off.is_active());
    }
}
