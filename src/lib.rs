//! # vidgen
//!
//! Backend-generic model components for video generation, built on [Burn](https://burn.dev).
//! This facade re-exports each vidgen crate as a module and owns the runnable examples, the
//! cross-crate tests and the benches.
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`nn`] | `vidgen-nn` | timestep embeddings, adaLN, MLPs, patchify, positional embeddings, RoPE, QK-norm |
//! | [`schedulers`] | `vidgen-schedulers` | DDPM/DDIM, EDM (+ Snap Video input scaling), rectified flow, guidance |
//! | [`attention`] | `vidgen-attention` | full, spatial-temporal, Swin/TESA window and retention attention |
//! | [`ssm`] | `vidgen-ssm` | Mamba2 (chunked SSD, recurrent step), bidirectional scans, video scan orders |
//! | [`vae`] | `vidgen-vae` | diffusers-compatible 2D KL-VAE, causal 3D video VAE (streaming, tiling), VQ/FSQ/LFQ |
//! | [`quant`] | `vidgen-quant` | uniform quantization, fake-quant, post-training int8/int4, distillation losses |
//! | [`models`] | `vidgen-models` | STDiT, LinGen-style DiT, Snap Video FIT, FlashVideo RetNet; GIF output, checkpoints |
//!
//! Pick a backend with a cargo feature: `flex` (default CPU), `ndarray`, `cuda`, `wgpu`, and
//! `autodiff` for training.
//!
//! ```
//! use vidgen::nn::{PatchEmbed3dConfig, unpatchify_3d};
//! use burn::tensor::Tensor;
//!
//! type B = burn::backend::Flex;
//! let device = Default::default();
//! let embed = PatchEmbed3dConfig::new(4, 32).init::<B>(&device)?;
//! let latent = Tensor::<B, 5>::zeros([1, 4, 2, 8, 8], &device);
//! let tokens = embed.forward(latent);
//! assert_eq!(tokens.dims(), [1, 2 * 4 * 4, 32]);
//! # Ok::<(), vidgen::nn::NnError>(())
//! ```

#![warn(missing_docs)]

pub use burn;
pub use vidgen_attention as attention;
pub use vidgen_models as models;
pub use vidgen_nn as nn;
pub use vidgen_quant as quant;
pub use vidgen_schedulers as schedulers;
pub use vidgen_ssm as ssm;
pub use vidgen_vae as vae;
