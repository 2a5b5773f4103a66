//! The error type of vidgen-schedulers.

use thiserror::Error;

/// Why a scheduler configuration, input or config file was rejected. Each variant names the field
/// and the value.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// A count that must be positive is zero (e.g. `num_inference_steps`).
    #[error("`{field}` must be greater than 0, got 0")]
    Zero {
        /// Field name.
        field: &'static str,
    },
    /// More sampling steps than training timesteps.
    #[error(
        "`num_inference_steps` = {num_inference_steps} exceeds `num_train_timesteps` = {num_train_timesteps}"
    )]
    TooManySteps {
        /// Requested sampling steps.
        num_inference_steps: usize,
        /// Training timesteps.
        num_train_timesteps: usize,
    },
    /// A real-valued parameter is outside its domain (e.g. `shift <= 0`).
    #[error("`{field}` = {value} is invalid: must be {requirement}")]
    OutOfDomain {
        /// Field name.
        field: &'static str,
        /// Its value.
        value: f64,
        /// What it must satisfy, e.g. `"> 0"`.
        requirement: &'static str,
    },
    /// Two parameters that must be strictly ordered are not (e.g. `sigma_min >= sigma_max`).
    #[error("`{low_field}` = {low} must be less than `{high_field}` = {high}")]
    NotIncreasing {
        /// Field that must be smaller.
        low_field: &'static str,
        /// Its value.
        low: f64,
        /// Field that must be larger.
        high_field: &'static str,
        /// Its value.
        high: f64,
    },
    /// A string value is not one of the known names of an enum (in a config file or string).
    #[error("`{field}` = {value:?} is not one of {expected:?}")]
    UnknownVariant {
        /// Field name.
        field: String,
        /// The value found.
        value: String,
        /// The accepted names.
        expected: &'static [&'static str],
    },
    /// A setting the reference accepts but this scheduler does not implement: rejected rather than
    /// silently ignored.
    #[error("`{field}` = {value} is not supported (supported: {supported:?})")]
    Unsupported {
        /// Field name.
        field: &'static str,
        /// The value found.
        value: String,
        /// The values that are implemented.
        supported: &'static [&'static str],
    },
    /// A config file holds keys this scheduler does not know (returned by `strict` loading).
    #[error("{scheduler} config has unknown keys {keys:?}")]
    UnknownKeys {
        /// Scheduler config type.
        scheduler: &'static str,
        /// The unknown keys.
        keys: Vec<String>,
    },
    /// A config file is not valid JSON, or a value has the wrong JSON type.
    #[error("invalid {scheduler} config JSON: {source}")]
    Json {
        /// Scheduler config type.
        scheduler: &'static str,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A list has the wrong length (e.g. `trained_betas` vs `num_train_timesteps`).
    #[error("`{field}` has {got} entries, expected {expected}")]
    LengthMismatch {
        /// Field name.
        field: &'static str,
        /// Entries found.
        got: usize,
        /// Entries expected.
        expected: usize,
    },
    /// A required field is absent (e.g. `trained_betas` with `beta_schedule = "trained"`).
    #[error("`{field}` is required when {when}")]
    Missing {
        /// Field name.
        field: &'static str,
        /// The condition that requires it.
        when: &'static str,
    },
    /// A step index past the end of the schedule.
    #[error("step index {index} is out of range for a schedule of {len} steps")]
    StepOutOfRange {
        /// Requested index.
        index: usize,
        /// Number of steps.
        len: usize,
    },
    /// A sampling loop's tensor holds NaN or ±∞ after a step (see [`crate::finite`]).
    #[error(
        "the {tensor} became non-finite (NaN or ±inf) at sampling step {step} (model time {time})"
    )]
    NonFinite {
        /// Step index (0-based).
        step: usize,
        /// The value the model was conditioned on at that step (timestep, `c_noise(σ)` or σ).
        time: f64,
        /// Which tensor: `"model output"` or `"sample"`.
        tensor: &'static str,
    },
    /// The step needs caller-supplied noise (stochastic variance, `eta > 0`, churn) and none was given.
    #[error("step {index} is stochastic and needs noise from the caller, but none was given")]
    MissingNoise {
        /// Step index.
        index: usize,
    },
}

/// The most training timesteps a schedule may have: tables are built with one entry per
/// timestep, so a larger count (from a malformed config file) is rejected before allocating.
pub const MAX_TRAIN_TIMESTEPS: usize = 1 << 20;

/// `num_train_timesteps` in `1..=MAX_TRAIN_TIMESTEPS`.
pub(crate) fn train_timesteps(value: usize) -> Result<(), SchedulerError> {
    positive("num_train_timesteps", value)?;
    if value > MAX_TRAIN_TIMESTEPS {
        return Err(SchedulerError::OutOfDomain {
            field: "num_train_timesteps",
            value: value as f64,
            requirement: "at most 2^20 (one table entry per timestep)",
        });
    }
    Ok(())
}

pub(crate) fn positive(field: &'static str, value: usize) -> Result<(), SchedulerError> {
    if value == 0 {
        Err(SchedulerError::Zero { field })
    } else {
        Ok(())
    }
}

pub(crate) fn positive_f64(field: &'static str, value: f64) -> Result<(), SchedulerError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(SchedulerError::OutOfDomain {
            field,
            value,
            requirement: "> 0 and finite",
        })
    }
}

pub(crate) fn non_negative(field: &'static str, value: f64) -> Result<(), SchedulerError> {
    if value >= 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(SchedulerError::OutOfDomain {
            field,
            value,
            requirement: ">= 0 and finite",
        })
    }
}

pub(crate) fn increasing(
    low_field: &'static str,
    low: f64,
    high_field: &'static str,
    high: f64,
) -> Result<(), SchedulerError> {
    if low < high {
        Ok(())
    } else {
        Err(SchedulerError::NotIncreasing {
            low_field,
            low,
            high_field,
            high,
        })
    }
}

pub(crate) fn step_in_range(index: usize, len: usize) -> Result<(), SchedulerError> {
    if index < len {
        Ok(())
    } else {
        Err(SchedulerError::StepOutOfRange { index, len })
    }
}
