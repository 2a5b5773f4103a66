//! The error type of vidgen-vae: invalid configurations and inputs, each naming the field and
//! value, and checkpoint loading failures.

use thiserror::Error;
use vidgen_nn::checkpoint::CheckpointError;

/// Why a vidgen-vae configuration or input was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum VaeError {
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

/// `Err(Zero)` if `value == 0`.
pub(crate) fn positive(field: &'static str, value: usize) -> Result<(), VaeError> {
    if value == 0 {
        Err(VaeError::Zero { field })
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
) -> Result<(), VaeError> {
    if by == 0 || !value.is_multiple_of(by) {
        Err(VaeError::NotDivisible {
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
pub(crate) fn positive_f64(field: &'static str, value: f64) -> Result<(), VaeError> {
    if value > 0.0 {
        Ok(())
    } else {
        Err(VaeError::OutOfDomain {
            field,
            value,
            requirement: "> 0",
        })
    }
}

/// `Err(ShapeMismatch)` unless `got == expected`.
pub(crate) fn same_size(what: &'static str, expected: usize, got: usize) -> Result<(), VaeError> {
    if expected == got {
        Ok(())
    } else {
        Err(VaeError::ShapeMismatch {
            what,
            expected,
            got,
        })
    }
}
