//! Layers shared by vidgen's video diffusion models, each a `Config`/`Module` pair generic over
//! `B: Backend`:
//!
//! | module | what |
//! |---|---|
//! | [`timestep`] | sinusoidal timestep features (diffusers' `get_timestep_embedding`) and the DiT MLP embedder |
//! | [`adaln`] | adaLN-Zero (DiT) and adaLN-single (PixArt / Open-Sora `scale_shift_table`) modulation |
//! | [`mlp`] | GELU(tanh) MLP and SwiGLU feed-forward |
//! | [`patch`] | 2D/3D patch embedding and the inverse unpatchify |
//! | [`pos_embed`] | 1D/2D/3D sin-cos tables and factorized learnable per-axis embeddings |
//! | [`rope`] | RoPE 1D (Burn's `RotaryEncoding`) and 3D-axial |
//! | [`qk_norm`] | RMSNorm over each head of q and k |
//! | [`kernel`] | [`Kernel`]: fast path or reference twin, chosen when a module is built |
//! | [`lora`] | LoRA adapters on linears: attach ([`WithLora`]), merge, save/load in peft's layout |
//! | [`materialize`](mod@materialize) | forcing lazily initialised parameters, so that clones share weights |
//! | [`checkpoint`] | loading PyTorch-named `.safetensors` checkpoints (f32/f16/bf16, sharded) |
//!
//! Invalid configurations fail in `init` with an [`NnError`] naming the field and its value.
//! Every layer is checked against PyTorch (diffusers' functions where they exist) by golden tests.

#![warn(missing_docs)]

pub mod adaln;
pub mod checkpoint;
pub mod error;
pub mod kernel;
pub mod layout;
pub mod lora;
pub mod materialize;
pub mod mlp;
pub mod patch;
pub mod pos_embed;
pub mod qk_norm;
pub mod rope;
pub mod timestep;

pub use adaln::{
    AdaLnModulation, AdaLnModulationConfig, ScaleShiftTable, ScaleShiftTableConfig, gate, modulate,
};
pub use error::{ConfigError, NnError};
pub use kernel::{Kernel, WithKernel};
pub use lora::{LoraAdapter, LoraConfig, WithLora, load_lora, save_lora};
pub use materialize::materialize;
pub use mlp::{Mlp, MlpConfig, SwiGluMlp, SwiGluMlpConfig, gelu_tanh};
pub use patch::{
    PatchEmbed2d, PatchEmbed2dConfig, PatchEmbed3d, PatchEmbed3dConfig, patchify_3d, unpatchify_2d,
    unpatchify_3d,
};
pub use pos_embed::{
    FactorizedPosEmbed, FactorizedPosEmbedConfig, sincos_1d, sincos_2d, sincos_3d,
};
pub use qk_norm::{QkNorm, QkNormConfig};
pub use rope::{Rope1d, Rope1dConfig, Rope3d, Rope3dConfig, RopeLayout, RopeTables};
pub use timestep::{
    SinusoidalEmbedding, SinusoidalEmbeddingConfig, TimestepEmbedder, TimestepEmbedderConfig,
};
