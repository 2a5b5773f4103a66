//! The error type of vidgen-vae: invalid configurations and inputs, each naming the field and
//! value, and checkpoint loading failures.

use thiserror::Error;
pub use vidgen_nn::ConfigError;
use vidgen_nn::checkpoint::CheckpointError;

/// Why a vidgen-vae configuration or input was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum VaeError {
    /// An invalid configuration value or input size ([`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A checkpoint lacks tensors the module needs (keys as the file would spell them). Loads
    /// through [`vidgen_nn::checkpoint`] report [`VaeError::Checkpoint`] instead.
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
    /// A checkpoint tensor's shape differs from the module parameter's (both in the file's
    /// layout, e.g. PyTorch's `[out, in]` for linear weights).
    #[error("`{key}`: shape {found:?} in the checkpoint, the module expects {expected:?}")]
    TensorShapeMismatch {
        /// The checkpoint key.
        key: String,
        /// Shape the module needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A checkpoint tensor's element type differs from the module parameter's.
    #[error("`{key}`: dtype {found:?} in the checkpoint, the module expects {expected:?}")]
    DtypeMismatch {
        /// The checkpoint key.
        key: String,
        /// The module parameter's dtype.
        expected: burn::tensor::DType,
        /// The file's dtype.
        found: burn::tensor::DType,
    },
    /// Reading a checkpoint file failed.
    #[error("{path}: I/O error ({kind:?}): {message}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error kind.
        kind: std::io::ErrorKind,
        /// The I/O error, rendered.
        message: String,
    },
    /// A checkpoint file is not valid (bad header, truncated data, unreadable tensor).
    #[error("{path}: cannot parse checkpoint{}: {message}", key.as_ref().map(|k| format!(" at `{k}`")).unwrap_or_default())]
    Parse {
        /// The file.
        path: String,
        /// The tensor concerned, if the problem is local to one.
        key: Option<String>,
        /// The parser's error, rendered.
        message: String,
    },
    /// Loading a checkpoint through [`vidgen_nn::checkpoint`] failed (file, key and reason in
    /// the inner error).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

pub(crate) use vidgen_nn::error::{divisible, positive, positive_f64, same_size};
