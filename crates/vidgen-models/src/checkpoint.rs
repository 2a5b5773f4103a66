//! Safetensors checkpoints of our own modules through burn-store, with typed errors.
//!
//! [`save_checkpoint`] writes every parameter in PyTorch layout and naming (burn-store's
//! `BurnToPyTorchAdapter`: linear weights `[out, in]`, norm `gamma`/`beta` as `weight`/`bias`),
//! keyed by the module path (`spatial_blocks.0.attn.attn.qkv.weight`), so the files read like
//! PyTorch state dicts. [`load_checkpoint`] reads them back with vidgen-vae's
//! [`load_pytorch_safetensors`], which validates the whole header against the module first
//! (missing keys, unexpected keys, shapes, dtypes) and applies the tensors to a clone that
//! replaces the module only on success: on any `Err` the module is unchanged.
//!
//! ```
//! use burn::backend::Flex;
//! use vidgen_models::checkpoint::{load_checkpoint, save_checkpoint};
//! use vidgen_models::stdit::StditConfig;
//!
//! let device = Default::default();
//! let config = StditConfig::new(16, 2, 1, 8);
//! let path = std::env::temp_dir().join("vidgen_checkpoint_doc.safetensors");
//! save_checkpoint(&config.init::<Flex>(&device)?, &path)?;
//! let mut model = config.init::<Flex>(&device)?;
//! load_checkpoint(&mut model, &path)?;
//! let mut other = StditConfig::new(16, 2, 2, 8).init::<Flex>(&device)?; // depth 2
//! assert!(load_checkpoint(&mut other, &path).is_err());
//! # Ok::<(), vidgen_models::ModelError>(())
//! ```

use crate::error::ModelError;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use std::path::Path;
use vidgen_vae::{VaeError, load_pytorch_safetensors};

/// Writes all of `module`'s parameters to a safetensors file (overwriting it), in PyTorch layout.
///
/// # Errors
/// [`ModelError::Io`] if the file cannot be written or the tensors cannot be serialised.
pub fn save_checkpoint<B: Backend, M: Module<B>>(
    module: &M,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    let path = path.as_ref();
    let mut store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .with_to_adapter(BurnToPyTorchAdapter);
    module.save_into(&mut store).map_err(|e| ModelError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Loads a checkpoint written by [`save_checkpoint`] into `module`, which must have been built
/// from the same configuration.
///
/// # Errors
/// - [`ModelError::Io`] if the file cannot be read;
/// - [`ModelError::Parse`] if it is not valid safetensors;
/// - [`ModelError::MissingKeys`] listing every parameter the file lacks;
/// - [`ModelError::UnexpectedKeys`] listing every file tensor the module has no place for;
/// - [`ModelError::TensorShapeMismatch`] naming the first key whose shape differs, with both
///   shapes (PyTorch layout);
/// - [`ModelError::DtypeMismatch`] naming the first key whose element type differs.
///
/// On `Err`, `module` is unchanged.
pub fn load_checkpoint<B: Backend, M: Module<B> + Clone>(
    module: &mut M,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    load_pytorch_safetensors(module, path, &[])
        .map(|_| ())
        .map_err(from_vae)
}

/// The same failure in this crate's terms.
fn from_vae(error: VaeError) -> ModelError {
    match error {
        VaeError::MissingKeys { path, keys } => ModelError::MissingKeys { path, keys },
        VaeError::UnexpectedKeys { path, keys } => ModelError::UnexpectedKeys { path, keys },
        VaeError::TensorShapeMismatch {
            key,
            expected,
            found,
        } => ModelError::TensorShapeMismatch {
            key,
            expected,
            found,
        },
        VaeError::DtypeMismatch {
            key,
            expected,
            found,
        } => ModelError::DtypeMismatch {
            path: String::new(),
            name: key,
            found: format!("{found:?}"),
            expected: dtype_name(expected),
        },
        VaeError::Io { path, message, .. } => ModelError::Io { path, message },
        VaeError::Parse { path, key, message } => ModelError::Parse {
            path,
            message: match key {
                Some(key) => format!("`{key}`: {message}"),
                None => message,
            },
        },
        other => ModelError::Parse {
            path: String::new(),
            message: other.to_string(),
        },
    }
}

/// A static name for the dtypes our modules use.
fn dtype_name(dtype: burn::tensor::DType) -> &'static str {
    use burn::tensor::DType;
    match dtype {
        DType::F64 => "F64",
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::I64 => "I64",
        DType::I32 => "I32",
        DType::Bool(_) => "Bool",
        _ => "the module's dtype",
    }
}
