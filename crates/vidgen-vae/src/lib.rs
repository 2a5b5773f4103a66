//! Video autoencoders and tokenizers, generic over `B: Backend`:
//!
//! | module | what |
//! |---|---|
//! | [`kl`] | 2D KL autoencoder with diffusers' `AutoencoderKL` architecture and key names, diagonal Gaussian posterior |
//! | [`load`] | loading diffusers-format safetensors through burn-store, with typed errors that leave the module untouched |
//! | [`causal3d`] | Open-Sora 1.2's video VAE: the 2D VAE per frame stacked with a causal temporal autoencoder (4× in time) |
//! | [`opensora`] | Open-Sora 1.2's published video VAE as one module: pipeline config JSON, checkpoint loading, file-to-file runner |
//! | [`streaming`] | chunk-by-chunk encode/decode with an explicit causal-conv cache, and spatially tiled decode with blending |
//! | [`tokenizer`] | discrete tokenizers: VQ (straight-through, codebook/commitment losses, EMA), FSQ, LFQ |

#![warn(missing_docs)]

pub mod causal3d;
pub mod error;
pub mod kl;
pub mod load;
pub mod opensora;
pub mod streaming;
pub mod tokenizer;

pub use causal3d::{
    PixelShuffleAutoencoder, PixelShuffleAutoencoderConfig, SpatialAutoencoder,
    TemporalAutoencoder, TemporalAutoencoderConfig, TemporalNorm, VideoAutoencoder,
    VideoAutoencoderConfig,
};
pub use error::{ConfigError, VaeError};
pub use kl::{AutoencoderKl, AutoencoderKlConfig, DiagonalGaussian};
pub use load::{AUTOENCODER_KL_KEY_MAP, load_autoencoder_kl, load_pytorch_safetensors};
pub use opensora::{OpenSoraVae, OpenSoraVaeConfig, load_open_sora_vae};
pub use streaming::{CausalCache, TiledDecode, TiledDecodeConfig};
pub use tokenizer::{
    Fsq, FsqConfig, Lfq, LfqConfig, LfqOutput, VectorQuantizer, VectorQuantizerConfig, VqEmaConfig,
    VqOutput,
};
