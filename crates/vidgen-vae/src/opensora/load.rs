//! Loading the published `VideoAutoencoderPipeline` state dict into [`OpenSoraVae`].

use super::OpenSoraVae;
use crate::error::VaeError;
use crate::load::load_pytorch_safetensors;
use burn::tensor::backend::Backend;
use std::path::Path;

/// Literal key-fragment renames `(file spelling, our spelling)` for the Open-Sora VAE file, applied
/// in order: the two sub-VAE prefixes, then diffusers' attention names as in
/// [`crate::load::AUTOENCODER_KL_KEY_MAP`]. `scale` and `shift` keep their names; the temporal
/// VAE's keys are ours unchanged (norm `weight`/`bias` are read into `gamma`/`beta`).
pub const OPEN_SORA_VAE_KEY_MAP: &[(&str, &str)] = &[
    ("spatial_vae.module.", "spatial."),
    ("temporal_vae.", "temporal."),
    (".to_out.0.", ".to_out."),
    (".query.", ".to_q."),
    (".key.", ".to_k."),
    (".value.", ".to_v."),
    (".proj_attn.", ".to_out."),
];

/// Loads an Open-Sora VAE checkpoint (`scale`, `shift` `[1, E, 1, 1, 1]`, `spatial_vae.module.*`,
/// `temporal_vae.*`) into `vae`, built from the matching [`super::OpenSoraVaeConfig`]. Returns
/// the number of tensors loaded; `scale` and `shift` replace the config's values.
///
/// # Errors
/// As [`load_pytorch_safetensors`] (missing or unexpected keys named in the file's spelling,
/// shape and dtype mismatches, I/O and parse errors); on `Err`, `vae` is unchanged. A file
/// written from a config with scalar `shift`/`scale` stores them with shape `[]` and is rejected
/// with [`VaeError::TensorShapeMismatch`].
pub fn load_open_sora_vae<B: Backend>(
    vae: &mut OpenSoraVae<B>,
    path: impl AsRef<Path>,
) -> Result<usize, VaeError> {
    load_pytorch_safetensors(vae, path, OPEN_SORA_VAE_KEY_MAP)
}
