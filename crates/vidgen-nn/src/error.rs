//! The error types of vidgen-nn: [`ConfigError`], the configuration and input-size errors every
//! vidgen crate shares (each crate's error wraps it with `#[from]`), with its checkers
//! ([`positive`], [`divisible`], [`positive_f64`], [`same_size`]); and [`NnError`], this crate's
//! own.

use thiserror::Error;

/// An invalid configuration value or input size, naming the field (or measured quantity) and
/// the value: the variants every vidgen crate shares.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ConfigError {
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
}

/// Why a vidgen-nn configuration or input was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum NnError {
    /// An invalid configuration value or input size ([`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
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
///
/// # Errors
/// [`ConfigError::Zero`] naming `field`.
pub fn positive(field: &'static str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        Err(ConfigError::Zero { field })
    } else {
        Ok(())
    }
}

/// The most layers or blocks a configuration may repeat. Layer counts allocate their modules
/// when a model is built, before any weight is read; a count above this (a corrupted or
/// mistyped config) is rejected instead of exhausting memory. Published video models use
/// fewer than 100.
pub const MAX_LAYERS: usize = 1024;

/// `Err` unless `1 ≤ value ≤` [`MAX_LAYERS`].
///
/// # Errors
/// [`ConfigError::Zero`] for 0, [`ConfigError::OutOfDomain`] naming `field` above the maximum.
pub fn layer_count(field: &'static str, value: usize) -> Result<(), ConfigError> {
    positive(field, value)?;
    if value > MAX_LAYERS {
        return Err(ConfigError::OutOfDomain {
            field,
            value: value as f64,
            requirement: "<= 1024 (MAX_LAYERS)",
        });
    }
    Ok(())
}

/// The widest channel count a configuration may ask for. Weight shapes multiply channel counts
/// (`c_out·c_in·k³`), so a corrupted config could overflow them before any weight exists; no
/// published video model comes near 2^20 channels.
pub const MAX_WIDTH: usize = 1 << 20;

/// `Err` unless `1 ≤ value ≤` [`MAX_WIDTH`].
///
/// # Errors
/// [`ConfigError::Zero`] for 0, [`ConfigError::OutOfDomain`] naming `field` above the maximum.
pub fn width(field: &'static str, value: usize) -> Result<(), ConfigError> {
    positive(field, value)?;
    if value > MAX_WIDTH {
        return Err(ConfigError::OutOfDomain {
            field,
            value: value as f64,
            requirement: "<= 2^20 (MAX_WIDTH)",
        });
    }
    Ok(())
}

/// `Err(NotDivisible)` unless `by` divides `value` (`by = 0` divides nothing).
///
/// # Errors
/// [`ConfigError::NotDivisible`] naming `field`, its value and the divisor.
pub fn divisible(
    field: &'static str,
    value: usize,
    by: usize,
    by_field: Option<&'static str>,
) -> Result<(), ConfigError> {
    if by == 0 || !value.is_multiple_of(by) {
        Err(ConfigError::NotDivisible {
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
///
/// # Errors
/// [`ConfigError::OutOfDomain`] naming `field` and its value.
pub fn positive_f64(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if value > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::OutOfDomain {
            field,
            value,
            requirement: "> 0",
        })
    }
}

/// `Err(ShapeMismatch)` unless `got == expected`.
///
/// # Errors
/// [`ConfigError::ShapeMismatch`] naming `what`.
pub fn same_size(what: &'static str, expected: usize, got: usize) -> Result<(), ConfigError> {
    if expected == got {
        Ok(())
    } else {
        Err(ConfigError::ShapeMismatch {
            what,
            expected,
            got,
        })
    }
}
