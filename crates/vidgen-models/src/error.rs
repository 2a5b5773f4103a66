//! The error type of vidgen-models: invalid configurations and inputs, each naming the field and value.

use thiserror::Error;

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
    /// A size that must be positive is zero.
    #[error("`{field}` must be greater than 0, got 0")]
    Zero {
        /// Config field.
        field: &'static str,
    },
    /// A size must be a multiple of another.
    #[error("`{field}` = {value} must be divisible by {by}{}", by_field.map(|f| format!(" (`{f}`)")).unwrap_or_default())]
    NotDivisible {
        /// Config field.
        field: &'static str,
        /// Its value.
        value: usize,
        /// The required divisor.
        by: usize,
        /// The field the divisor comes from, if any.
        by_field: Option<&'static str>,
    },
    /// A real-valued parameter is out of its domain.
    #[error("`{field}` = {value} is invalid: must be {requirement}")]
    OutOfDomain {
        /// Config field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// What the value must satisfy, e.g. `"> 0"`.
        requirement: &'static str,
    },
    /// An input's size differs from what the layer or another input requires.
    #[error("{what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// What was measured (e.g. `"input channels"`, `"mask length"`).
        what: &'static str,
        /// Required size.
        expected: usize,
        /// Measured size.
        got: usize,
    },
    /// A combination of settings that is not supported.
    #[error("`{field}` = {value} is not supported: {reason}")]
    Unsupported {
        /// Config field.
        field: &'static str,
        /// Its value, rendered.
        value: String,
        /// Why.
        reason: &'static str,
    },
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
    #[error("{part}: {message}")]
    Component {
        /// Which part of the model (e.g. `"x_embedder"`, `"temporal attn"`).
        part: &'static str,
        /// The component's error, rendered.
        message: String,
    },
    /// A checkpoint lacks tensors the module needs.
    #[error("{path}: {} missing key(s): {}", keys.len(), keys.join(", "))]
    MissingKeys {
        /// The checkpoint file.
        path: String,
        /// The missing keys, sorted.
        keys: Vec<String>,
    },
    /// A checkpoint holds tensors the module has no place for.
    #[error("{path}: {} unexpected key(s): {}", keys.len(), keys.join(", "))]
    UnexpectedKeys {
        /// The checkpoint file.
        path: String,
        /// The extra keys, sorted.
        keys: Vec<String>,
    },
    /// A checkpoint tensor's shape differs from the module parameter's.
    #[error("`{key}`: shape {found:?} in the checkpoint, the module expects {expected:?}")]
    TensorShapeMismatch {
        /// The checkpoint key.
        key: String,
        /// Shape the module needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
}

/// `Err(Zero)` if `value == 0`.
pub(crate) fn positive(field: &'static str, value: usize) -> Result<(), ModelError> {
    if value == 0 {
        Err(ModelError::Zero { field })
    } else {
        Ok(())
    }
}

/// `Err(NotDivisible)` unless `by` divides `value`.
pub(crate) fn divisible(
    field: &'static str,
    value: usize,
    by: usize,
    by_field: Option<&'static str>,
) -> Result<(), ModelError> {
    if by == 0 || !value.is_multiple_of(by) {
        Err(ModelError::NotDivisible {
            field,
            value,
            by,
            by_field,
        })
    } else {
        Ok(())
    }
}

/// `Err(OutOfDomain)` unless `value > 0` (NaN is rejected).
pub(crate) fn positive_f64(field: &'static str, value: f64) -> Result<(), ModelError> {
    if value > 0.0 {
        Ok(())
    } else {
        Err(ModelError::OutOfDomain {
            field,
            value,
            requirement: "> 0",
        })
    }
}

/// `Err(ShapeMismatch)` unless `got == expected`.
pub(crate) fn same_size(what: &'static str, expected: usize, got: usize) -> Result<(), ModelError> {
    if expected == got {
        Ok(())
    } else {
        Err(ModelError::ShapeMismatch {
            what,
            expected,
            got,
        })
    }
}

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
                message: e.to_string(),
            },
        }
    }
}
