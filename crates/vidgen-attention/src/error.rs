//! The error type of vidgen-attention: invalid configurations and inputs, each naming the field and value.

use thiserror::Error;
pub use vidgen_nn::ConfigError;

/// Why a vidgen-attention configuration or input was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum AttentionError {
    /// An invalid configuration value or input size ([`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

pub(crate) use vidgen_nn::error::{divisible, positive, positive_f64, same_size};
