//! Video generation models composed from vidgen's components, generic over `B: Backend`:
//!
//! | module | what |
//! |---|---|
//! | [`stdit`] | Open-Sora 1.2's STDiT: spatial/temporal blocks, cross-attention to text, adaLN-single, conditioning-frame masks, rectified flow with CFG |
//! | [`lingen`] | LinGen-style linear DiT: bidirectional Mamba2 with Rotary-Major Scan + TESA, cost linear in tokens |
//! | [`snap_fit`] | Snap Video's FIT: patch groups, latent tokens, read/write cross-attention, EDM with input scaling |
//! | [`flashvideo`] | FlashVideo: a RetNet over VQ tokens, recurrent generation, key frames + redundancy-free interpolation |
//! | [`opensora`] | Open-Sora 1.2's published STDiT3 checkpoints: upstream config and key names, sharded/half-precision files, a forward over safetensors files |
//! | [`denoise`] | one way to sample: the [`Denoiser`] trait every network implements, [`TextConditioning`], guidance on the model side, [`sample`] over any scheduler loop |
//! | [`text`] | a small word tokenizer + embedding for synthetic prompts; precomputed text embeddings from safetensors |
//! | [`tiny`] | the tiny text-to-video model of the moving-shapes data: config, loss, loading for inference, motion check |
//! | `train` | training it through burn-train: checkpoints, bit-exact resumption, non-finite loss guard (feature `train`) |
//! | `video_io` | animated GIF output (feature `gif`) |
//! | [`checkpoint`] | safetensors checkpoints through burn-store with typed errors |
//!
//! Features: `train` (burn-train, png) and `gif` (the gif encoder) are off by default, so that
//! depending on the models pulls in neither; the `vidgen` facade turns both on.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod data;
pub mod denoise;
pub mod error;
pub mod flashvideo;
pub mod generate;
pub mod lingen;
pub mod opensora;
pub mod snap_fit;
pub mod stdit;
pub mod text;
pub mod tiny;
#[cfg(feature = "train")]
pub mod train;
#[cfg(feature = "gif")]
pub mod video_io;

pub use checkpoint::{load_checkpoint, save_checkpoint};
pub use data::{MovingShapes, MovingShapesBatcher, MovingShapesConfig, VideoBatch};
pub use denoise::{CfgMode, Conditioning, Denoiser, Guidance, TextConditioning, guided, sample};
pub use error::{ComponentError, ConfigError, ModelError};
pub use flashvideo::{
    Decoder, FlashVideo, FlashVideoConfig, FlashVideoState, GenerationStats, InterpolationPlan,
    RetNetBlock, Sampling, TokenClass, Video, classify_tokens, decode_video, generate_key_frames,
    generate_video, interpolate,
};
pub use generate::GenerateOptions;
pub use lingen::{LinGenConfig, LinGenDit, LinGenFlops, MateBlock};
pub use snap_fit::{EdmSolver, SnapFit, SnapFitCond, SnapFitConfig, SnapFitDenoiser};
pub use stdit::{
    Stdit, StditConditioning, StditConfig, StditDenoiser, StditInput, TextToVideo, sample_stdit,
};
pub use text::{TextEmbedder, TextEmbedderConfig, WordTokenizer, load_text_embeddings};
pub use tiny::{
    TextVideoModel, TinyTrainConfig, check_motion, load_lora_text_to_video, load_text_to_video,
};
#[cfg(feature = "train")]
pub use train::{TrainOptions, check_resume, train, train_with, write_loss_curve_png};
#[cfg(feature = "gif")]
pub use video_io::write_gif;
pub use vidgen_nn::checkpoint::CheckpointError;
pub use vidgen_nn::{Kernel, LoraConfig, WithKernel, WithLora, load_lora, save_lora};
