//! Quantization and compression for vidgen models, generic over `B: Backend`:
//!
//! | module | what |
//! |---|---|
//! | [`uniform`] | uniform quantization as the survey's eqs. 13–15: affine and symmetric, 8/4 bits, per tensor / channel / group, fake-quant with a straight-through gradient |
//! | [`ptq`] | post-training quantization of a module's Linear/Conv weights (int8, int4 packed), SSM-sensitive parameters kept in f32, per-layer report |
//! | [`native`] | Burn's native quantized tensors (`QuantScheme`) where a backend runs them |
//! | [`distill`] | knowledge-distillation losses (survey eqs. 16–17) |

#![warn(missing_docs)]

pub mod distill;
pub mod error;
pub mod native;
pub mod ptq;
pub mod uniform;

pub use distill::{Distill, DistillConfig, KlReduction, cross_entropy};
pub use error::{ConfigError, QuantError};
pub use native::NativeQuantConfig;
pub use ptq::{
    LayerReport, PtqConfig, PtqGranularity, PtqReport, PtqTarget, QuantizedStore, QuantizedWeight,
};
pub use uniform::{
    Granularity, QuantMode, QuantParams, QuantSpec, Ste, dequantize, fake_quantize,
    fake_quantize_with, quantize, quantize_dequantize,
};
