//! Attention blocks for video transformers, generic over `B: Backend`, each fast path with a
//! readable reference twin:
//!
//! | module | what |
//! |---|---|
//! | [`blocked`] | memory-bounded attention: query/key blocks with an online softmax, and the dispatch between it and Burn's fused op |
//! | [`mask`] | key-padding and causal masks, their broadcast to the score shape, the mask forms the kernels take |
//! | `gpu` | (features `cuda`, `wgpu`) the fused flash-attention kernel in CubeCL that `memory_safe_attention` runs on those backends |
//! | [`full`] | multi-head self/cross attention: QK-norm, RoPE, key-padding and causal masks, through Burn's fused `attention` op |
//! | [`spatial_temporal`] | Open-Sora STDiT spatial attention per frame and temporal attention per position |
//! | [`window`] | Swin / Video Swin window attention in 2D and 3D, shifted windows, relative position bias, LinGen's TESA |
//! | [`retention`] | RetNet multi-scale retention: parallel, recurrent and chunkwise forms |

#![warn(missing_docs)]

pub mod blocked;
pub mod error;
pub mod full;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub mod gpu;
pub mod host;
pub mod mask;
pub mod retention;
pub mod spatial_temporal;
pub mod window;

pub use blocked::{
    AttentionMask, AttentionPath, BlockPlan, MaskKind, MemoryBudget, blocked_attention,
    choose_path, memory_safe_attention, memory_safe_path, plan_blocks, score_bytes,
};
pub use error::{AttentionError, ConfigError};
pub use full::{
    AttentionArgs, MultiHeadAttention, MultiHeadAttentionConfig, RopeRef, attention_reference,
    attention_weights_reference, causal_mask, expand_key_padding, key_padding_mask,
    scaled_dot_product_attention,
};
pub use retention::{
    MultiScaleRetention, MultiScaleRetentionConfig, RetentionGate, RetentionState,
};
pub use spatial_temporal::{
    SpatialAttention, SpatialTemporalAttention, SpatialTemporalConfig, TemporalAttention,
    from_spatial_batch, from_temporal_batch, to_spatial_batch, to_temporal_batch,
};
pub use vidgen_nn::{Kernel, LoraConfig, WithKernel, WithLora};
pub use window::{
    TesaConfig, WindowAttention, WindowAttentionConfig, WindowGeometry, WindowPlan, WindowPlanCache,
};
