//! Safetensors checkpoints of our own modules through burn-store, with typed errors.
//!
//! [`save_checkpoint`] writes every parameter in PyTorch layout and naming (burn-store's
//! `BurnToPyTorchAdapter`: linear weights `[out, in]`, norm `gamma`/`beta` as `weight`/`bias`),
//! keyed by the module path (`spatial_blocks.0.attn.attn.qkv.weight`), so the files read like
//! PyTorch state dicts. [`load_checkpoint`] reads them back (also as f16 or bf16, cast on load)
//! with [`vidgen_nn::checkpoint::load_pytorch_safetensors`], which validates the whole header
//! against the module first (missing keys, unexpected keys, shapes, dtypes) and applies the
//! tensors to a clone that replaces the module only on success: on any `Err` the module is
//! unchanged.
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
use vidgen_nn::checkpoint::{CheckpointError, load_pytorch_safetensors, write_atomically};

/// Writes all of `module`'s parameters to a safetensors file, in PyTorch layout. The write is
/// atomic ([`write_atomically`]): the tensors go to `<path>.partial`, which replaces `path` only
/// once complete and synced, so a crash mid-write leaves the previous file intact.
///
/// # Errors
/// [`ModelError::Io`] if the file cannot be written or the tensors cannot be serialised.
pub fn save_checkpoint<B: Backend, M: Module<B>>(
    module: &M,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    let path = path.as_ref();
    write_atomically(path, |partial| {
        let mut store = SafetensorsStore::from_file(partial)
            .overwrite(true)
            .with_to_adapter(BurnToPyTorchAdapter);
        module
            .save_into(&mut store)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
    .map_err(|e| ModelError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Loads a checkpoint written by [`save_checkpoint`] (or the same tensors stored as f16 or bf16)
/// into `module`, which must have been built from the same configuration. Float tensors are cast
/// to the module's parameter dtype as they are read.
///
/// # Errors
/// [`ModelError::Checkpoint`] with the path and: `Io` if the file cannot be read; `Parse` if it
/// is not valid safetensors; `MissingKeys` listing every parameter the file lacks;
/// `UnexpectedKeys` listing every file tensor the module has no place for;
/// `TensorShapeMismatch` naming the first key whose shape differs, with both shapes (PyTorch
/// layout); `UnsupportedDtype` naming the first key whose element type cannot be converted (an
/// integer tensor for a float parameter).
///
/// On `Err`, `module` is unchanged.
pub fn load_checkpoint<B: Backend, M: Module<B> + Clone>(
    module: &mut M,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    load_pytorch_safetensors(module, path, &[])
        .map(|_| ())
        .map_err(checkpoint_error)
}

/// A [`CheckpointError`] (from [`vidgen_nn::checkpoint`]'s loaders) as a [`ModelError`]: kept
/// whole, with its path and key, as [`ModelError::Checkpoint`].
pub fn checkpoint_error(error: CheckpointError) -> ModelError {
    ModelError::Checkpoint(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stdit::StditConfig;
    use burn::tensor::{DType, TensorData};
    use vidgen_testing::Flex;

    /// Rewrites a safetensors file with every f32 tensor stored as `dtype` (F16 or BF16).
    fn half_copy(src: &Path, dst: &Path, dtype: DType) {
        let bytes = std::fs::read(src).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let st_dtype = match dtype {
            DType::F16 => safetensors::Dtype::F16,
            _ => safetensors::Dtype::BF16,
        };
        let mut out = Vec::new();
        for (name, view) in file.tensors() {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let data = TensorData::new(values, view.shape().to_vec()).convert_dtype(dtype);
            out.push((name, view.shape().to_vec(), data.as_bytes().to_vec()));
        }
        let views = out.iter().map(|(name, shape, data)| {
            let view = safetensors::tensor::TensorView::new(st_dtype, shape.clone(), data);
            (name.clone(), view.unwrap())
        });
        safetensors::serialize_to_file(views, None, dst).unwrap();
    }

    fn values(module: &impl Module<Flex>) -> Vec<(String, Vec<f32>)> {
        module
            .collect(None, None, false)
            .into_iter()
            .map(|s| (s.full_path(), s.to_data().unwrap().to_vec().unwrap()))
            .collect()
    }

    /// f16 and bf16 copies of a checkpoint load into an f32 model, every parameter within its
    /// rounding: relative `2^-11` (f16, 11 significant bits) or `2^-8` (bf16, 8 bits) of the value,
    /// plus f16's subnormal spacing `2^-24` for values near 0.
    #[test]
    fn half_precision_copies_load() {
        let device = Default::default();
        let config = StditConfig::new(16, 2, 1, 8);
        let model = config.init::<Flex>(&device).unwrap();
        let tag = format!("{}_{:?}", std::process::id(), std::thread::current().id());
        let tag = tag.replace(['(', ')'], "");
        let f32_path = std::env::temp_dir().join(format!("vidgen_ckpt_half_{tag}.safetensors"));
        save_checkpoint(&model, &f32_path).unwrap();
        for (dtype, rel) in [(DType::F16, 2f32.powi(-11)), (DType::BF16, 2f32.powi(-8))] {
            let path = f32_path.with_extension(format!("{dtype:?}.safetensors"));
            half_copy(&f32_path, &path, dtype);
            let mut loaded = config.init::<Flex>(&device).unwrap();
            let result = load_checkpoint(&mut loaded, &path);
            std::fs::remove_file(&path).ok();
            result.unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
            for ((key, got), (_, want)) in values(&loaded).into_iter().zip(values(&model)) {
                for (g, w) in got.iter().zip(&want) {
                    let bound = rel * w.abs() + 2f32.powi(-24);
                    assert!((g - w).abs() <= bound, "{dtype:?} {key}: {g} vs {w}");
                }
            }
        }
        std::fs::remove_file(&f32_path).ok();
    }
}
