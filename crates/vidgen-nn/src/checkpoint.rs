//! Loading PyTorch-named checkpoints (`.safetensors`, single or sharded) into any Burn module
//! through burn-store, with typed errors that leave the module untouched.
//!
//! A file key is mapped to our module path by literal renames (one `key_map` table per model,
//! `(file fragment, our fragment)` rows applied in order); burn-store's [`PyTorchToBurnAdapter`]
//! then transposes linear weights (`[out, in]` → `[in, out]`) and reads norm `weight`/`bias`
//! into `gamma`/`beta`.
//!
//! Everything is validated from the headers before any tensor is read: missing keys, unexpected
//! keys, shapes and dtypes. Float tensors (F64, F32, F16, BF16) load into float parameters of any
//! of these types: each tensor is cast to its parameter's dtype as it is read, one at a time, so
//! loading a half-precision file costs one tensor's worth of extra memory, not a second copy of
//! the model. Integer and bool parameters need their exact dtype. The tensors are applied to a
//! clone of the module, which replaces the original only on success, so on any `Err` the module
//! is unchanged.
//!
//! | entry point | reads |
//! |---|---|
//! | [`load_pytorch_safetensors`] | one `.safetensors` file |
//! | [`load_pytorch_safetensors_files`] | the union of several shards |
//! | [`read_safetensors_index`] | a hub `model.safetensors.index.json` → its shard paths |
//! | [`load_pytorch_snapshots`] | tensors from any burn-store source, optionally under a key prefix |

pub mod atomic;
mod error;
mod shards;

pub use atomic::{AtomicFileRecorder, write_atomically};
pub use error::CheckpointError;
pub use shards::{load_pytorch_safetensors_files, read_safetensors_index};

use burn::module::Module;
use burn::tensor::DType;
use burn::tensor::backend::Backend;
use burn_store::{
    ApplyError, BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    SafetensorsStore, SafetensorsStoreError, TensorSnapshot,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

/// Loads a PyTorch-named `.safetensors` file into any module whose paths equal the file's keys
/// after the literal renames `key_map` (`(file fragment, our fragment)`, applied in order), with
/// linear weights transposed and norm `weight`/`bias` read into `gamma`/`beta`. Every module
/// parameter must be present and every file tensor used; float tensors are cast to their
/// parameter's dtype. Returns the number of tensors loaded.
///
/// # Errors
/// - [`CheckpointError::Io`] if the file cannot be read;
/// - [`CheckpointError::Parse`] if it is not valid safetensors, or a tensor's data cannot be read;
/// - [`CheckpointError::MissingKeys`] listing, in the file's spelling, every parameter the file
///   lacks;
/// - [`CheckpointError::UnexpectedKeys`] listing every file tensor the module has no place for;
/// - [`CheckpointError::TensorShapeMismatch`] naming the first key whose shape differs (both
///   shapes in the file's layout);
/// - [`CheckpointError::UnsupportedDtype`] naming the first key whose element type cannot be
///   converted (e.g. an integer tensor for a float parameter).
///
/// On `Err`, `module` is unchanged.
pub fn load_pytorch_safetensors<B: Backend, M: Module<B> + Clone>(
    module: &mut M,
    path: impl AsRef<Path>,
    key_map: &[(&str, &str)],
) -> Result<usize, CheckpointError> {
    load_pytorch_safetensors_files(module, &[path.as_ref()], key_map)
}

/// Reads a `.safetensors` file's header: one lazy snapshot per tensor, keyed by the file's key
/// (`full_path()`); no tensor data is read until a snapshot's `to_data` is called (the file is
/// memory-mapped).
///
/// # Errors
/// [`CheckpointError::Io`] if the file cannot be opened, [`CheckpointError::Parse`] if its header
/// is invalid.
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Vec<TensorSnapshot>, CheckpointError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
    let snapshots = store
        .get_all_snapshots()
        .map_err(|e| safetensors_error(&shown, e))?;
    Ok(snapshots.values().cloned().collect())
}

/// Loads tensors from any source (their `full_path()` is the file key) into `module`, as
/// [`load_pytorch_safetensors`] does, but only the tensors whose key starts with `prefix`
/// (`"backbone.layers.3.mixer."`; a `.` is appended if missing; `""` takes all). The prefix is
/// stripped before `key_map` is applied; tensors outside it are ignored, every tensor under it
/// must have a place in the module. Keys in errors are full file keys (prefix included); `path`
/// names the source in errors.
///
/// # Errors
/// As [`load_pytorch_safetensors`]; on `Err`, `module` is unchanged.
pub fn load_pytorch_snapshots<B: Backend, M: Module<B> + Clone>(
    module: &mut M,
    path: &str,
    snapshots: impl IntoIterator<Item = TensorSnapshot>,
    key_map: &[(&str, &str)],
    prefix: &str,
) -> Result<usize, CheckpointError> {
    let prefix = match prefix {
        "" => String::new(),
        p if p.ends_with('.') => p.to_string(),
        p => format!("{p}."),
    };
    let tensors = snapshots
        .into_iter()
        .filter_map(|s| {
            let key = s.full_path();
            key.strip_prefix(&prefix)
                .map(|inner| (0, inner.to_string(), s))
        })
        .collect();
    let source = Source {
        files: vec![path.to_string()],
        prefix: &prefix,
        key_map,
        subset: None,
    };
    source.load(module, tensors)
}

/// Loads `snapshots` (file keys) into the parameters of `module` whose path satisfies `subset`
/// (LoRA adapters), leaving the others as they are; validation and errors as
/// [`load_pytorch_snapshots`] over that subset. On `Err`, `module` is unchanged.
pub(crate) fn load_lora_snapshots<B: Backend, M: Module<B> + Clone>(
    module: &mut M,
    path: &str,
    snapshots: Vec<TensorSnapshot>,
    key_map: &[(&str, &str)],
    subset: fn(&str) -> bool,
) -> Result<usize, CheckpointError> {
    let tensors = snapshots
        .into_iter()
        .map(|s| (0, s.full_path(), s))
        .collect();
    let source = Source {
        files: vec![path.to_string()],
        prefix: "",
        key_map,
        subset: Some(subset),
    };
    source.load(module, tensors)
}

/// Our key for a file key: every `key_map` row applied in order, as a literal replacement on the
/// key with a `.` added at each end (and removed after), so rows spelled with dots match whole
/// dot-separated components at the start and end of a key too (`(".D.", ".d.")` renames the key
/// `D` but not `dt_bias`).
pub fn to_module_key(file_key: &str, key_map: &[(&str, &str)]) -> String {
    let padded = key_map
        .iter()
        .fold(format!(".{file_key}."), |key, (from, to)| {
            key.replace(from, to)
        });
    unpad(padded)
}

/// The canonical file key for one of ours: the first row per right-hand side, reversed (on the
/// key padded with dots, as [`to_module_key`] does).
pub fn to_file_key(module_key: &str, key_map: &[(&str, &str)]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    let mut key = format!(".{module_key}.");
    for (from, to) in key_map {
        if !seen.contains(to) {
            seen.push(to);
            key = key.replace(to, from);
        }
    }
    unpad(key)
}

/// `key` without the one `.` added at each end.
fn unpad(key: String) -> String {
    let inner = key.strip_prefix('.').unwrap_or(&key);
    inner.strip_suffix('.').unwrap_or(inner).to_string()
}

/// One file tensor: index into [`Source::files`], key (prefix stripped), lazy data.
type FileTensor = (usize, String, TensorSnapshot);

/// Where a set of tensors came from, and how their keys map to ours.
struct Source<'a> {
    files: Vec<String>,
    prefix: &'a str,
    key_map: &'a [(&'a str, &'a str)],
    /// Only the module parameters whose path satisfies this are loaded (all when `None`).
    subset: Option<fn(&str) -> bool>,
}

impl Source<'_> {
    /// All files, for errors about the set as a whole.
    fn all(&self) -> String {
        match self.files.len() {
            0 => "(no files)".into(),
            _ => self.files.join(", "),
        }
    }

    /// The full file key for one of our keys.
    fn file_key(&self, module_key: &str) -> String {
        format!("{}{}", self.prefix, to_file_key(module_key, self.key_map))
    }

    /// Validates `tensors` against the module, then applies them to a clone that replaces
    /// `module` on success.
    fn load<B: Backend, M: Module<B> + Clone>(
        &self,
        module: &mut M,
        tensors: Vec<FileTensor>,
    ) -> Result<usize, CheckpointError> {
        // Shapes and dtypes are read from a throwaway clone: reading them initialises a lazily
        // built module's parameters, which would otherwise stay alive next to the loaded copy
        // (a clone of an uninitialised parameter is uninitialised, so `module` stays lazy).
        let mut expected = expected_tensors(&module.clone());
        if let Some(subset) = self.subset {
            expected.retain(|key, _| subset(key));
        }
        let snapshots = self.check(tensors, &expected)?;
        let mut candidate = module.clone();
        let result = candidate.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), false);
        if let Some(error) = result.errors.first() {
            return Err(self.apply_error(error));
        }
        let missing: Vec<_> = result
            .missing
            .iter()
            .filter(|(k, _)| self.subset.is_none_or(|subset| subset(k)))
            .collect();
        if !missing.is_empty() {
            let keys = missing.iter().map(|(k, _)| self.file_key(k));
            return Err(CheckpointError::MissingKeys {
                path: self.all(),
                keys: sorted(keys),
            });
        }
        // `result.unused` is not checked: burn-store lists tensors found under an alternative
        // name (norm `weight` read into `gamma`) as unused. The header check already proved that
        // every file key has a place in the module.
        *module = candidate;
        Ok(result.applied.len())
    }

    /// Validates the headers against `expected`; returns the snapshots renamed to our paths and
    /// cast (lazily) to their parameters' dtypes, ready for [`ModuleSnapshot::apply`].
    fn check(
        &self,
        tensors: Vec<FileTensor>,
        expected: &BTreeMap<String, (DType, Vec<usize>)>,
    ) -> Result<Vec<TensorSnapshot>, CheckpointError> {
        let mut renamed: BTreeMap<String, FileTensor> = BTreeMap::new();
        for (file, key, mut snapshot) in tensors {
            let ours = to_module_key(&key, self.key_map);
            snapshot.path_stack = Some(ours.split('.').map(str::to_string).collect());
            renamed.insert(ours, (file, format!("{}{key}", self.prefix), snapshot));
        }
        let missing = expected.keys().filter(|k| !renamed.contains_key(*k));
        let missing = sorted(missing.map(|k| self.file_key(k)));
        if !missing.is_empty() {
            return Err(CheckpointError::MissingKeys {
                path: self.all(),
                keys: missing,
            });
        }
        let unexpected = renamed.iter().filter(|(k, _)| !expected.contains_key(*k));
        let unexpected = sorted(unexpected.map(|(_, (_, key, _))| key.clone()));
        if !unexpected.is_empty() {
            return Err(CheckpointError::UnexpectedKeys {
                path: self.all(),
                keys: unexpected,
            });
        }
        let mut out = Vec::with_capacity(renamed.len());
        for (ours, (file, key, snapshot)) in renamed {
            let (dtype, shape) = &expected[&ours];
            let path = || self.files[file].clone();
            if snapshot.shape.to_vec() != *shape {
                return Err(CheckpointError::TensorShapeMismatch {
                    path: path(),
                    key,
                    expected: shape.clone(),
                    found: snapshot.shape.to_vec(),
                });
            }
            if snapshot.dtype == *dtype {
                out.push(snapshot);
            } else if is_float(snapshot.dtype) && is_float(*dtype) {
                out.push(cast_lazily(snapshot, *dtype));
            } else {
                return Err(CheckpointError::UnsupportedDtype {
                    path: path(),
                    key,
                    expected: *dtype,
                    found: snapshot.dtype,
                });
            }
        }
        Ok(out)
    }

    /// An error burn-store reports while applying (reachable when a tensor's data cannot be
    /// read, or disagrees with its header).
    fn apply_error(&self, error: &ApplyError) -> CheckpointError {
        let all = self.all();
        match error {
            ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } => CheckpointError::TensorShapeMismatch {
                path: all,
                key: self.file_key(key),
                expected: expected.to_vec(),
                found: found.to_vec(),
            },
            ApplyError::DTypeMismatch {
                path: key,
                expected,
                found,
            } => CheckpointError::UnsupportedDtype {
                path: all,
                key: self.file_key(key),
                expected: *expected,
                found: *found,
            },
            ApplyError::AdapterError { path: key, message }
            | ApplyError::LoadError { path: key, message } => CheckpointError::Parse {
                path: all,
                key: Some(self.file_key(key)),
                message: message.clone(),
            },
        }
    }
}

/// Whether `dtype` is a float type a checkpoint tensor may be cast from or to.
fn is_float(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::F64 | DType::F32 | DType::Flex32 | DType::F16 | DType::BF16
    )
}

/// `snapshot` with its data converted to `dtype` when it is read (the source tensor is read, cast
/// and dropped one tensor at a time).
fn cast_lazily(snapshot: TensorSnapshot, dtype: DType) -> TensorSnapshot {
    let data = snapshot.clone_data_fn();
    TensorSnapshot::from_closure(
        Rc::new(move || data().map(|d| d.convert_dtype(dtype))),
        dtype,
        snapshot.shape.clone(),
        snapshot.path_stack.clone().unwrap_or_default(),
        snapshot.container_stack.clone().unwrap_or_default(),
        snapshot.tensor_id.unwrap_or_default(),
    )
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

fn sorted(keys: impl Iterator<Item = String>) -> Vec<String> {
    let mut keys: Vec<String> = keys.collect();
    keys.sort();
    keys
}

/// A burn-store safetensors error in our terms.
fn safetensors_error(path: &str, error: SafetensorsStoreError) -> CheckpointError {
    match error {
        SafetensorsStoreError::Io(e) => io_error(path, &e),
        other => CheckpointError::Parse {
            path: path.into(),
            key: None,
            message: other.to_string(),
        },
    }
}

/// An I/O error on `path`.
fn io_error(path: &str, error: &std::io::Error) -> CheckpointError {
    CheckpointError::Io {
        path: path.into(),
        kind: error.kind(),
        message: error.to_string(),
    }
}
