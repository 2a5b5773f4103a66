//! The error type of vidgen-quant: invalid configurations and inputs, each naming the field and value.

use thiserror::Error;
pub use vidgen_nn::ConfigError;

/// Why a vidgen-quant configuration or input was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum QuantError {
    /// An invalid configuration value or input size ([`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A quantization group whose values are all equal: `β − α = 0`, so eq. 15 gives `S = 0`.
    #[error(
        "quantization group {group} has zero range (every value = {value}): S = (β − α)/(2^b − 1) would be 0"
    )]
    ZeroRange {
        /// Index of the group in `[P, G]` order.
        group: usize,
        /// The constant value.
        value: f64,
    },
}

pub(crate) use vidgen_nn::error::{divisible, positive, positive_f64, same_size};
