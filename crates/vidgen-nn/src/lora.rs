//! Low-rank adaptation (LoRA, Hu et al. 2021) of linear layers: `y = W·x + b + (α/r)·B·A·x`
//! with `A: r × in` (random) and `B: out × r` (zero at start, so an adapted model starts as the
//! base model), the base weights frozen, only `A` and `B` trained.
//!
//! - [`LoraConfig`]: rank `r`, `alpha` and the names of the linears to adapt (peft's `r`,
//!   `lora_alpha`, `target_modules`).
//! - [`LoraAdapter`]: one adapter; [`forward_with_lora`] runs a linear with its optional adapter;
//!   [`LoraAdapter::merge_into`] folds it into the linear's weight (`W += (α/r)·B·A`) for inference.
//! - [`WithLora`]: attaching adapters to every targeted linear of a model (modules keep an
//!   `Option<LoraAdapter>` next to each adaptable linear, named `<linear>_lora`), and merging them.
//! - [`save_lora`] / [`load_lora`]: the adapters alone as a `.safetensors` file in peft's layout
//!   (`<path>.<linear>.lora_A.weight` `[r, in]`, `<path>.<linear>.lora_B.weight` `[out, r]`), so
//!   adapter files move between vidgen and peft/diffusers models with the same module paths.
//!
//! Fine-tuning with adapters only: `model.no_grad().with_lora(&config)?` — `no_grad`
//! freezes every existing parameter, and the adapters attached after it are trainable, so the
//! optimiser's gradients hold the adapters alone.

use crate::checkpoint::{CheckpointError, load_lora_snapshots, read_safetensors, write_atomically};
use crate::error::{ConfigError, NnError};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
use std::path::Path;

/// Which linears get adapters, and their rank and scale.
#[derive(Config, Debug, PartialEq)]
pub struct LoraConfig {
    /// Rank `r` of each adapter.
    pub rank: usize,
    /// `α`: the adapter's output is scaled by `α / r` (peft's `lora_alpha`).
    pub alpha: f64,
    /// Names of the linears to adapt, as the modules name them (`qkv`, `q_linear`,
    /// `kv_linear`, `proj` in attention; `fc1`, `fc2` in MLPs).
    pub target_modules: Vec<String>,
}

impl LoraConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`NnError::Config`] naming `rank` (0), `alpha` (not finite and > 0) or `target_modules`
    /// (empty).
    pub fn validate(&self) -> Result<(), NnError> {
        crate::error::positive("rank", self.rank)?;
        crate::error::positive("target_modules", self.target_modules.len())?;
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(ConfigError::OutOfDomain {
                field: "alpha",
                value: self.alpha,
                requirement: "finite and > 0",
            }
            .into());
        }
        Ok(())
    }

    /// `α / r`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Whether the linear called `name` is adapted.
    pub fn targets(&self, name: &str) -> bool {
        self.target_modules.iter().any(|t| t == name)
    }

    /// A new adapter for `linear` if its `name` is targeted and it has none yet (`current`);
    /// otherwise `current`.
    pub fn adapt<B: Backend>(
        &self,
        name: &str,
        linear: &Linear<B>,
        current: Option<LoraAdapter<B>>,
    ) -> Option<LoraAdapter<B>> {
        if current.is_some() || !self.targets(name) {
            return current;
        }
        let [d_in, d_out] = linear.weight.shape().dims();
        Some(self.adapter(d_in, d_out, &linear.weight.device()))
    }

    /// A fresh adapter `d_in → d_out`: `A` uniform in `±1/√d_in` (peft's Kaiming-uniform with
    /// `a = √5`), `B` zero.
    ///
    /// # Panics
    /// If the configuration is invalid (see [`validate`](Self::validate));
    /// [`WithLora::with_lora`] validates before attaching.
    pub fn adapter<B: Backend>(
        &self,
        d_in: usize,
        d_out: usize,
        device: &B::Device,
    ) -> LoraAdapter<B> {
        self.validate()
            .unwrap_or_else(|e| panic!("LoraConfig: {e}"));
        let bound = 1.0 / (d_in as f64).sqrt();
        LoraAdapter {
            lora_a: LinearConfig::new(d_in, self.rank)
                .with_bias(false)
                .with_initializer(Initializer::Uniform {
                    min: -bound,
                    max: bound,
                })
                .init(device),
            lora_b: LinearConfig::new(self.rank, d_out)
                .with_bias(false)
                .with_initializer(Initializer::Zeros)
                .init(device),
            scale: self.scale(),
        }
    }
}

/// One adapter: `x ↦ (α/r)·B·A·x`. Its two projections are bias-free linears, so checkpoints
/// see them as `lora_a.weight` / `lora_b.weight` (PyTorch layout in files: `[r, in]`, `[out, r]`).
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// `A`: `in → r`.
    pub lora_a: Linear<B>,
    /// `B`: `r → out`.
    pub lora_b: Linear<B>,
    /// `α / r`.
    #[module(skip)]
    pub scale: f64,
}

impl<B: Backend> LoraAdapter<B> {
    /// # Shapes
    /// `x`: `[.., in]` → `[.., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.lora_b.forward(self.lora_a.forward(x)) * self.scale
    }

    /// `linear` with this adapter folded into its weight (`W += (α/r)·B·A`); the output equals
    /// `linear` plus this adapter up to rounding. The merged weight is not trainable.
    pub fn merge_into(&self, mut linear: Linear<B>) -> Linear<B> {
        let delta = self.lora_a.weight.val().matmul(self.lora_b.weight.val()) * self.scale;
        linear.weight = Param::from_tensor(linear.weight.val() + delta).set_require_grad(false);
        linear
    }
}

/// `linear(x)`, plus `adapter(x)` if there is one.
pub fn forward_with_lora<B: Backend, const D: usize>(
    linear: &Linear<B>,
    adapter: Option<&LoraAdapter<B>>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    match adapter {
        Some(adapter) => linear.forward(x.clone()) + adapter.forward(x),
        None => linear.forward(x),
    }
}

/// `linear` with `adapter` merged into it (unchanged without one).
pub fn merge_lora<B: Backend>(linear: Linear<B>, adapter: Option<LoraAdapter<B>>) -> Linear<B> {
    match adapter {
        Some(adapter) => adapter.merge_into(linear),
        None => linear,
    }
}

/// A module whose linears can carry LoRA adapters.
pub trait WithLora: Sized {
    /// This module with a fresh adapter on every linear `config` targets (sub-modules
    /// included); linears that already have one keep it.
    ///
    /// # Errors
    /// Those of [`LoraConfig::validate`] (nothing is attached then).
    fn with_lora(self, config: &LoraConfig) -> Result<Self, NnError> {
        config.validate()?;
        Ok(self.attach_lora(config))
    }

    /// [`with_lora`](Self::with_lora) for a configuration already validated: what each module
    /// implements, calling it on its sub-modules.
    ///
    /// # Panics
    /// If `config` is invalid.
    fn attach_lora(self, config: &LoraConfig) -> Self;

    /// This module with every adapter merged into its linear and removed.
    fn merge_lora(self) -> Self;
}

/// Every module of a stack (a model's blocks).
impl<M: WithLora> WithLora for Vec<M> {
    fn attach_lora(self, config: &LoraConfig) -> Self {
        self.into_iter().map(|m| m.attach_lora(config)).collect()
    }

    fn merge_lora(self) -> Self {
        self.into_iter().map(WithLora::merge_lora).collect()
    }
}

/// Module-path fragments of adapters (`<linear>_lora.lora_a`) and their file spelling
/// (`<linear>.lora_A`), in [`load_pytorch_safetensors`](crate::checkpoint::load_pytorch_safetensors)'s
/// key-map form.
pub const LORA_KEY_MAP: [(&str, &str); 2] =
    [(".lora_A.", "_lora.lora_a."), (".lora_B.", "_lora.lora_b.")];

/// Whether a module path is an adapter parameter: a LoRA `A` or `B`, or the rows an embedding
/// table gained for new words ([`NEW_TOKENS`]).
pub fn is_lora_key(module_key: &str) -> bool {
    module_key.contains("_lora.lora_a.")
        || module_key.contains("_lora.lora_b.")
        || module_key.rsplit('.').next() == Some(NEW_TOKENS)
}

/// Name of the parameter holding an embedding's rows for new words (vidgen's text embedder):
/// trained with the adapters and saved in their file under `<path>.new_tokens` `[words, dim]`
/// (vidgen's own key: peft keeps a resized embedding whole, in `modules_to_save`).
pub const NEW_TOKENS: &str = "new_tokens";

/// Writes the adapters of `module` (every parameter under a `<linear>_lora`, and new-word rows,
/// [`is_lora_key`]) to `path` as f32
/// safetensors in peft's layout (module docs), atomically. Returns the number of tensors.
///
/// # Errors
/// [`CheckpointError::MissingKeys`] (empty key list) if `module` has no adapter;
/// [`CheckpointError::Parse`] if a tensor cannot be read or serialised;
/// [`CheckpointError::Io`] if the file cannot be written.
pub fn save_lora<B: Backend, M: Module<B>>(
    module: &M,
    path: impl AsRef<Path>,
) -> Result<usize, CheckpointError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for snapshot in module.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false) {
        let ours = snapshot.full_path();
        if !is_lora_key(&ours) {
            continue;
        }
        let key = crate::checkpoint::to_file_key(&ours, &LORA_KEY_MAP);
        let parse = |message: String| CheckpointError::Parse {
            path: shown.clone(),
            key: Some(key.clone()),
            message,
        };
        let data = snapshot
            .to_data()
            .map_err(|e| parse(format!("{e:?}")))?
            .convert::<f32>();
        let values = data.to_vec::<f32>().map_err(|e| parse(format!("{e:?}")))?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((key, snapshot.shape.to_vec(), bytes));
    }
    if tensors.is_empty() {
        return Err(CheckpointError::MissingKeys {
            path: shown,
            keys: Vec::new(),
        });
    }
    let views = tensors
        .iter()
        .map(|(key, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (key.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|views| safetensors::serialize(views, None))
        .map_err(|e| CheckpointError::Parse {
            path: shown.clone(),
            key: None,
            message: e.to_string(),
        })?;
    write_atomically(path, |partial| std::fs::write(partial, &views)).map_err(|e| {
        CheckpointError::Io {
            path: shown,
            kind: e.kind(),
            message: e.to_string(),
        }
    })?;
    Ok(tensors.len())
}

/// Loads an adapter file (peft layout, module docs) into the adapters already attached to
/// `module` (see [`WithLora::with_lora`]); base weights are not touched. Every attached adapter
/// must be in the file and every file tensor must have an adapter. Returns the number of
/// tensors loaded.
///
/// # Errors
/// As [`load_pytorch_safetensors`](crate::checkpoint::load_pytorch_safetensors), over the
/// adapter parameters only (a base weight in the file is an unexpected key); on `Err`, `module`
/// is unchanged.
pub fn load_lora<B: Backend, M: Module<B> + Clone>(
    module: &mut M,
    path: impl AsRef<Path>,
) -> Result<usize, CheckpointError> {
    let path = path.as_ref();
    let snapshots = read_safetensors(path)?;
    load_lora_snapshots(
        module,
        &path.display().to_string(),
        snapshots,
        &LORA_KEY_MAP,
        is_lora_key,
    )
}
