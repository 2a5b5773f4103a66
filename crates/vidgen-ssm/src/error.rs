//! The error type of vidgen-ssm: invalid configurations and inputs, each naming the field and value.

use thiserror::Error;
pub use vidgen_nn::ConfigError;
use vidgen_nn::checkpoint::CheckpointError;

/// Why a vidgen-ssm configuration or input was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum SsmError {
    /// An invalid configuration value or input size ([`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Loading a checkpoint failed (file, key and reason in the inner error).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

pub(crate) use vidgen_nn::error::{divisible, positive, positive_f64, same_size};
