//! The error type of vidgen-models: invalid configurations and inputs, each naming the field and value.

use thiserror::Error;
pub use vidgen_nn::ConfigError;

/// Why a vidgen-models configuration or input was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A sampling loop produced NaN or ±∞ (a NaN weight in the checkpoint, an overflowing
    /// activation, a diverging schedule): stopped at the first bad step instead of returning
    /// garbage.
    #[error(
        "the {tensor} became non-finite (NaN or ±inf) at sampling step {step} (model time {time}); the model weights or inputs are likely corrupt"
    )]
    NonFinite {
        /// Step index (0-based).
        step: usize,
        /// The value the model was conditioned on at that step.
        time: f64,
        /// Which tensor: `"model output"` or `"sample"`.
        tensor: &'static str,
    },
    /// The training loss became NaN or ±∞: training stopped before applying that step's update,
    /// and no checkpoint was written for the interrupted stretch.
    #[error("the training loss became non-finite ({loss}) at step {step}; training stopped")]
    NonFiniteLoss {
        /// Optimiser step (1-based, counted from the start of the run, resumed steps included).
        step: usize,
        /// The loss value.
        loss: f64,
    },
    /// A training run was resumed with another configuration than the one it started with.
    #[error(
        "cannot resume the run in {path}: it was started with another configuration (fields {fields:?} differ)"
    )]
    ResumeMismatch {
        /// The stored configuration file.
        path: String,
        /// The top-level configuration fields that differ.
        fields: Vec<String>,
    },
    /// An invalid configuration value or input size ([`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A prompt holds words outside the tokenizer's vocabulary.
    #[error(
        "{} word(s) outside the vocabulary: {}; known words: {}",
        words.len(),
        words.iter().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", "),
        vocab.join(", ")
    )]
    UnknownWords {
        /// The unknown words, lower-cased, in prompt order, each once.
        words: Vec<String>,
        /// The vocabulary, in id order.
        vocab: Vec<String>,
    },
    /// A file could not be read or written.
    #[error("cannot access {path}: {message}")]
    Io {
        /// File path.
        path: String,
        /// The system's message.
        message: String,
    },
    /// A file is not valid safetensors.
    #[error("cannot parse {path}: {message}")]
    Parse {
        /// File path.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A tensor file lacks a tensor.
    #[error("{path} has no tensor `{name}`")]
    MissingTensor {
        /// File path.
        path: String,
        /// Tensor name.
        name: String,
    },
    /// A tensor has another dtype than required.
    #[error("tensor `{name}` in {path} has dtype {found}, expected {expected}")]
    DtypeMismatch {
        /// File path.
        path: String,
        /// Tensor name.
        name: String,
        /// The dtype found.
        found: String,
        /// The dtype required.
        expected: &'static str,
    },
    /// A component from another vidgen crate rejected its configuration or input.
    #[error("{part}: {source}")]
    Component {
        /// Which part of the model (e.g. `"x_embedder"`, `"temporal attn"`).
        part: &'static str,
        /// The component's own typed error.
        source: Box<ComponentError>,
    },
    /// Loading a safetensors checkpoint failed: the file path and the key or reason (missing
    /// or unexpected keys, a shape or dtype mismatch, a truncated or corrupted file).
    #[error(transparent)]
    Checkpoint(#[from] vidgen_nn::checkpoint::CheckpointError),
}

pub(crate) use vidgen_nn::error::{divisible, positive, positive_f64, same_size};

/// A scheduler's error: [`ModelError::NonFinite`] for the sampling loops' non-finite guard, the
/// rendered error under the part name `"scheduler"` otherwise.
impl From<vidgen_schedulers::SchedulerError> for ModelError {
    fn from(e: vidgen_schedulers::SchedulerError) -> Self {
        match e {
            vidgen_schedulers::SchedulerError::NonFinite { step, time, tensor } => {
                Self::NonFinite { step, time, tensor }
            }
            e => Self::Component {
                part: "scheduler",
                source: Box::new(e.into()),
            },
        }
    }
}

/// The typed error of a component crate inside [`ModelError::Component`].
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum ComponentError {
    /// A shared layer (vidgen-nn).
    #[error(transparent)]
    Nn(#[from] vidgen_nn::NnError),
    /// An attention block (vidgen-attention).
    #[error(transparent)]
    Attention(#[from] vidgen_attention::AttentionError),
    /// A state-space layer (vidgen-ssm).
    #[error(transparent)]
    Ssm(#[from] vidgen_ssm::SsmError),
    /// A VAE or tokenizer (vidgen-vae).
    #[error(transparent)]
    Vae(#[from] vidgen_vae::VaeError),
    /// A scheduler (vidgen-schedulers); shared because its JSON errors cannot be cloned.
    #[error(transparent)]
    Scheduler(std::sync::Arc<vidgen_schedulers::SchedulerError>),
    /// A configuration value or input size.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An error a dependency outside vidgen reports only as text (burn-train's schedulers).
    #[error("{0}")]
    Message(String),
}

impl From<vidgen_schedulers::SchedulerError> for ComponentError {
    fn from(e: vidgen_schedulers::SchedulerError) -> Self {
        Self::Scheduler(std::sync::Arc::new(e))
    }
}

/// Equal when of the same kind with equal contents (scheduler errors compare by their message).
impl PartialEq for ComponentError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Nn(a), Self::Nn(b)) => a == b,
            (Self::Attention(a), Self::Attention(b)) => a == b,
            (Self::Ssm(a), Self::Ssm(b)) => a == b,
            (Self::Vae(a), Self::Vae(b)) => a == b,
            (Self::Scheduler(a), Self::Scheduler(b)) => a.to_string() == b.to_string(),
            (Self::Config(a), Self::Config(b)) => a == b,
            (Self::Message(a), Self::Message(b)) => a == b,
            _ => false,
        }
    }
}

/// Maps a component crate's error to [`ModelError::Component`] naming the part.
pub(crate) fn component<E: Into<ComponentError>>(part: &'static str) -> impl Fn(E) -> ModelError {
    move |e| ModelError::Component {
        part,
        source: Box::new(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn component_errors_keep_their_typed_source() {
        let scheduler = vidgen_schedulers::SchedulerError::Zero { field: "num_steps" };
        let e = component("flow")(scheduler);
        let ModelError::Component { part, source } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*part, "flow");
        assert!(
            matches!(**source, ComponentError::Scheduler(_)),
            "{source:?}"
        );
        assert!(e.to_string().starts_with("flow: "), "{e}");
        assert!(e.source().is_some());
        let attention =
            vidgen_attention::AttentionError::Config(ConfigError::Zero { field: "n_heads" });
        let e = component("spatial attn")(attention.clone());
        assert_eq!(
            e,
            ModelError::Component {
                part: "spatial attn",
                source: Box::new(ComponentError::Attention(attention)),
            }
        );
    }
}
