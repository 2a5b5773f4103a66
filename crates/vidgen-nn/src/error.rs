//! The error type of vidgen-nn: invalid configurations and inputs, each naming the field and value.

use thiserror::Error;

/// Why a vidgen-nn configuration or input was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum NnError {
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
    /// Per-axis sizes do not add up to the total they split.
    #[error("`{field}` = {parts:?} sums to {sum}, but must sum to `{total_field}` = {total}")]
    SplitMismatch {
        /// Config field holding the parts.
        field: &'static str,
        /// The parts.
        parts: Vec<usize>,
        /// Their sum.
        sum: usize,
        /// The field they must sum to.
        total_field: &'static str,
        /// Its value.
        total: usize,
    },
    /// An input axis is not a multiple of the patch size along it.
    #[error("input {axis} = {size} is not divisible by `patch_size` {patch} along that axis")]
    PatchMismatch {
        /// Axis name (`"T"`, `"H"`, `"W"`).
        axis: &'static str,
        /// Input size along the axis.
        size: usize,
        /// Patch size along the axis.
        patch: usize,
    },
    /// An input has a different size than the layer was configured for.
    #[error("input {what} = {got}, but the layer was configured with `{field}` = {expected}")]
    InputMismatch {
        /// What was measured on the input.
        what: &'static str,
        /// Measured value.
        got: usize,
        /// Config field.
        field: &'static str,
        /// Configured value.
        expected: usize,
    },
    /// A position grid exceeds the table the layer holds.
    #[error("grid {axis} = {size} exceeds `{field}` = {max}")]
    GridTooLarge {
        /// Axis name.
        axis: &'static str,
        /// Requested size.
        size: usize,
        /// Config field bounding it.
        field: &'static str,
        /// Its value.
        max: usize,
    },
}

/// `Err(Zero)` if `value == 0`.
pub(crate) fn positive(field: &'static str, value: usize) -> Result<(), NnError> {
    if value == 0 {
        Err(NnError::Zero { field })
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
) -> Result<(), NnError> {
    if by == 0 || !value.is_multiple_of(by) {
        Err(NnError::NotDivisible {
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
pub(crate) fn positive_f64(field: &'static str, value: f64) -> Result<(), NnError> {
    if value > 0.0 {
        Ok(())
    } else {
        Err(NnError::OutOfDomain {
            field,
            value,
            requirement: "> 0",
        })
    }
}
