//! Loading diffusers-format (PyTorch-named) `.safetensors` checkpoints into vidgen-vae modules.
//!
//! The generic loader lives in [`vidgen_nn::checkpoint`] (re-exported here): the file's keys are
//! mapped to our module paths with one literal table per model ([`AUTOENCODER_KL_KEY_MAP`]);
//! burn-store's `PyTorchToBurnAdapter` then transposes linear weights (`[out, in]` → `[in, out]`)
//! and maps norm `weight`/`bias` to `gamma`/`beta`. F32, F16 and BF16 files load into a module of
//! any float element type (each tensor cast to its parameter's dtype as it is read).
//!
//! Everything is validated from the file header before any tensor is applied: missing keys,
//! unexpected keys, shapes and dtypes. The tensors are then applied to a clone of the module,
//! which replaces the original only on success, so on any `Err` the module is unchanged.

use crate::error::VaeError;
use crate::kl::AutoencoderKl;
use burn::module::Module;
use burn::tensor::backend::Backend;
use std::path::Path;
use vidgen_nn::checkpoint;

pub use vidgen_nn::checkpoint::{
    CheckpointError, load_pytorch_safetensors_files, load_pytorch_snapshots, read_safetensors,
    read_safetensors_index, to_file_key, to_module_key,
};

/// Literal key-fragment renames `(file spelling, our spelling)` for diffusers' `AutoencoderKL`.
///
/// Our attention output projection is a plain `Linear` (`to_out`) where diffusers has
/// `ModuleList([Linear, Dropout])` (`to_out.0`). The last four rows accept checkpoints saved with
/// diffusers' deprecated attention names (`query`, `key`, `value`, `proj_attn`). The first row
/// for a given right-hand side is the canonical spelling used to name missing keys.
pub const AUTOENCODER_KL_KEY_MAP: &[(&str, &str)] = &[
    (".to_out.0.", ".to_out."),
    (".query.", ".to_q."),
    (".key.", ".to_k."),
    (".value.", ".to_v."),
    (".proj_attn.", ".to_out."),
];

/// Loads a diffusers `AutoencoderKL` checkpoint (`diffusion_pytorch_model.safetensors`, f32, f16
/// or bf16) into `vae`, which must have been built from the matching config. Returns the number
/// of tensors loaded.
///
/// # Errors
/// As [`load_pytorch_safetensors`]; on `Err`, `vae` is unchanged.
pub fn load_autoencoder_kl<B: Backend>(
    vae: &mut AutoencoderKl<B>,
    path: impl AsRef<Path>,
) -> Result<usize, VaeError> {
    load_pytorch_safetensors(vae, path, AUTOENCODER_KL_KEY_MAP)
}

/// Loads a PyTorch-named `.safetensors` file into any module whose paths equal the file's keys
/// after the literal renames `key_map` (`(file fragment, our fragment)`, applied in order), with
/// linear weights transposed and norm `weight`/`bias` read into `gamma`/`beta`. Every module
/// parameter must be present and every file tensor used; float tensors are cast to their
/// parameter's dtype. Returns the number of tensors loaded.
///
/// # Errors
/// [`VaeError::Checkpoint`] with the reason, as
/// [`vidgen_nn::checkpoint::load_pytorch_safetensors`] documents. On `Err`, `module` is unchanged.
pub fn load_pytorch_safetensors<B: Backend, M: Module<B> + Clone>(
    module: &mut M,
    path: impl AsRef<Path>,
    key_map: &[(&str, &str)],
) -> Result<usize, VaeError> {
    Ok(checkpoint::load_pytorch_safetensors(module, path, key_map)?)
}
