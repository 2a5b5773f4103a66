//! Loading diffusers-format (PyTorch-named) `.safetensors` checkpoints into vidgen-vae modules
//! through burn-store, with typed errors that leave the module untouched.
//!
//! The file's keys are mapped to our module paths with one literal table per model
//! ([`AUTOENCODER_KL_KEY_MAP`]); burn-store's [`PyTorchToBurnAdapter`] then transposes linear
//! weights (`[out, in]` → `[in, out]`) and maps norm `weight`/`bias` to `gamma`/`beta`.
//!
//! Everything is validated from the file header before any tensor is applied: missing keys,
//! unexpected keys, shapes and dtypes. The tensors are then applied to a clone of the module,
//! which replaces the original only on success, so on any `Err` the module is unchanged.

use crate::error::VaeError;
use crate::kl::AutoencoderKl;
use burn::module::Module;
use burn::tensor::DType;
use burn::tensor::backend::Backend;
use burn_store::{
    ApplyError, BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    SafetensorsStore, SafetensorsStoreError, TensorSnapshot,
};
use std::collections::BTreeMap;
use std::path::Path;

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

/// Loads a diffusers `AutoencoderKL` checkpoint (`diffusion_pytorch_model.safetensors`) into
/// `vae`, which must have been built from the matching config. Returns the number of tensors
/// loaded.
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
/// parameter must be present and every file tensor used. Returns the number of tensors loaded.
///
/// # Errors
/// - [`VaeError::Io`] if the file cannot be read;
/// - [`VaeError::Parse`] if it is not valid safetensors, or a tensor's data cannot be read;
/// - [`VaeError::MissingKeys`] listing, in the file's spelling, every parameter the file lacks;
/// - [`VaeError::UnexpectedKeys`] listing every file tensor the module has no place for;
/// - [`VaeError::TensorShapeMismatch`] naming the first key whose shape differs (both shapes in
///   the file's layout);
/// - [`VaeError::DtypeMismatch`] naming the first key whose element type differs.
///
/// On `Err`, `module` is unchanged.
pub fn load_pytorch_safetensors<B: Backend, M: Module<B> + Clone>(
    module: &mut M,
    path: impl AsRef<Path>,
    key_map: &[(&str, &str)],
) -> Result<usize, VaeError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let mut store = SafetensorsStore::from_file(path);
    let file: Vec<TensorSnapshot> = store
        .get_all_snapshots()
        .map_err(|e| store_error(&shown, e))?
        .values()
        .cloned()
        .collect();
    let expected = expected_tensors(module);
    let snapshots = check_header(&shown, file, &expected, key_map)?;

    let mut candidate = module.clone();
    let result = candidate.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), false);
    if let Some(error) = result.errors.first() {
        return Err(apply_error(&shown, error, key_map));
    }
    if !result.missing.is_empty() {
        let keys = result.missing.iter().map(|(k, _)| to_file_key(k, key_map));
        return Err(VaeError::MissingKeys {
            path: shown,
            keys: sorted(keys),
        });
    }
    // `result.unused` is not checked: burn-store lists tensors found under an alternative name
    // (norm `weight` read into `gamma`) as unused. The header check above already proved that
    // every file key has a place in the module.
    *module = candidate;
    Ok(result.applied.len())
}

/// Our key for a file key: every `key_map` row applied in order.
pub fn to_module_key(file_key: &str, key_map: &[(&str, &str)]) -> String {
    key_map
        .iter()
        .fold(file_key.to_string(), |key, (from, to)| {
            key.replace(from, to)
        })
}

/// The canonical file key for one of ours: the first row per right-hand side, reversed.
pub fn to_file_key(module_key: &str, key_map: &[(&str, &str)]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    let mut key = module_key.to_string();
    for (from, to) in key_map {
        if !seen.contains(to) {
            seen.push(to);
            key = key.replace(to, from);
        }
    }
    key
}

/// Dtype and shape of every module parameter, keyed by our path in PyTorch spelling
/// (`weight`/`bias` for norms) with PyTorch layouts (`[out, in]` linear weights).
fn expected_tensors<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, (DType, Vec<usize>)> {
    module
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), false)
        .into_iter()
        .map(|s| (s.full_path(), (s.dtype, s.shape.to_vec())))
        .collect()
}

/// Validates the file's header against `expected`; returns the file's snapshots renamed to our
/// paths, ready for [`ModuleSnapshot::apply`].
fn check_header(
    path: &str,
    file: Vec<TensorSnapshot>,
    expected: &BTreeMap<String, (DType, Vec<usize>)>,
    key_map: &[(&str, &str)],
) -> Result<Vec<TensorSnapshot>, VaeError> {
    let mut renamed: BTreeMap<String, (String, TensorSnapshot)> = BTreeMap::new();
    for mut snapshot in file {
        let file_key = snapshot.full_path();
        let ours = to_module_key(&file_key, key_map);
        snapshot.path_stack = Some(ours.split('.').map(str::to_string).collect());
        renamed.insert(ours, (file_key, snapshot));
    }
    let missing = expected.keys().filter(|k| !renamed.contains_key(*k));
    let missing = sorted(missing.map(|k| to_file_key(k, key_map)));
    if !missing.is_empty() {
        return Err(VaeError::MissingKeys {
            path: path.into(),
            keys: missing,
        });
    }
    let unexpected = renamed.iter().filter(|(k, _)| !expected.contains_key(*k));
    let unexpected = sorted(unexpected.map(|(_, (file_key, _))| file_key.clone()));
    if !unexpected.is_empty() {
        return Err(VaeError::UnexpectedKeys {
            path: path.into(),
            keys: unexpected,
        });
    }
    for (ours, (file_key, snapshot)) in &renamed {
        let (dtype, shape) = &expected[ours];
        if snapshot.shape.to_vec() != *shape {
            return Err(VaeError::TensorShapeMismatch {
                key: file_key.clone(),
                expected: shape.clone(),
                found: snapshot.shape.to_vec(),
            });
        }
        if snapshot.dtype != *dtype {
            return Err(VaeError::DtypeMismatch {
                key: file_key.clone(),
                expected: *dtype,
                found: snapshot.dtype,
            });
        }
    }
    Ok(renamed.into_values().map(|(_, s)| s).collect())
}

fn sorted(keys: impl Iterator<Item = String>) -> Vec<String> {
    let mut keys: Vec<String> = keys.collect();
    keys.sort();
    keys
}

fn store_error(path: &str, error: SafetensorsStoreError) -> VaeError {
    match error {
        SafetensorsStoreError::Io(e) => VaeError::Io {
            path: path.into(),
            kind: e.kind(),
            message: e.to_string(),
        },
        other => VaeError::Parse {
            path: path.into(),
            key: None,
            message: other.to_string(),
        },
    }
}

/// An error burn-store reports while applying (only reachable if the data disagrees with the
/// header, which safetensors' own checks make unlikely).
fn apply_error(path: &str, error: &ApplyError, key_map: &[(&str, &str)]) -> VaeError {
    match error {
        ApplyError::ShapeMismatch {
            path: key,
            expected,
            found,
        } => VaeError::TensorShapeMismatch {
            key: to_file_key(key, key_map),
            expected: expected.to_vec(),
            found: found.to_vec(),
        },
        ApplyError::DTypeMismatch {
            path: key,
            expected,
            found,
        } => VaeError::DtypeMismatch {
            key: to_file_key(key, key_map),
            expected: *expected,
            found: *found,
        },
        ApplyError::AdapterError { path: key, message }
        | ApplyError::LoadError { path: key, message } => VaeError::Parse {
            path: path.into(),
            key: Some(to_file_key(key, key_map)),
            message: message.clone(),
        },
    }
}
