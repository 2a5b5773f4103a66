//! The error type of vidgen-ssm: invalid configurations and inputs, each naming the field and value.

use thiserror::Error;
use vidgen_nn::checkpoint::CheckpointError;

/// Why a vidgen-ssm configuration or input was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum SsmError {
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
    /// Loading a checkpoint failed (file, key and reason in the inner error).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// `Err(Zero)` if `value == 0`.
pub(crate) fn positive(field: &'static str, value: usize) -> Result<(), SsmError> {
    if value == 0 {
        Err(SsmError::Zero { field })
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
) -> Result<(), SsmError> {
    if by == 0 || !value.is_multiple_of(by) {
        Err(SsmError::NotDivisible {
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
pub(crate) fn positive_f64(field: &'static str, value: f64) -> Result<(), SsmError> {
    if value > 0.0 {
        Ok(())
    } else {
        Err(SsmError::OutOfDomain {
            field,
            value,
            requirement: "> 0",
        })
    }
}

/// `Err(ShapeMismatch)` unless `got == expected`.
pub(crate) fn same_size(what: &'static str, expected: usize, got: usize) -> Result<(), SsmError> {
    if expected == got {
        Ok(())
    } else {
        Err(SsmError::ShapeMismatch {
            what,
            expected,
            got,
        })
    }
}
