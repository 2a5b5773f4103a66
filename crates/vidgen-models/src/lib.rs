//! Video generation models composed from vidgen's components, generic over `B: Backend`:
//!
//! | module | what |
//! |---|---|
//! | [`stdit`] | Open-Sora 1.2's STDiT: spatial/temporal blocks, cross-attention to text, adaLN-single, conditioning-frame masks, rectified flow with CFG |
//! | [`lingen`] | LinGen-style linear DiT: bidirectional Mamba2 with Rotary-Major Scan + TESA, cost linear in tokens |
//! | [`snap_fit`] | Snap Video's FIT: patch groups, latent tokens, read/write cross-attention, EDM with input scaling |
//! | [`flashvideo`] | FlashVideo: a RetNet over VQ tokens, recurrent generation, key frames + redundancy-free interpolation |
//! | [`text`] | a small word tokenizer + embedding for synthetic prompts; precomputed text embeddings from safetensors |
//! | [`video_io`] | animated GIF output |
//! | [`checkpoint`] | safetensors checkpoints through burn-store with typed errors |

#![warn(missing_docs)]

pub mod checkpoint;
pub mod error;
pub mod flashvideo;
pub mod lingen;
pub mod snap_fit;
pub mod stdit;
pub mod text;
pub mod video_io;

pub use error::ModelError;
pub use text::{TextEmbedder, TextEmbedderConfig, WordTokenizer, load_text_embeddings};
pub use video_io::write_gif;
