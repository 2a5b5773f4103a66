//! Sharded checkpoints: the union of several `.safetensors` files, and the hub index
//! (`model.safetensors.index.json`) that lists them.

use super::{CheckpointError, FileTensor, Source, io_error, read_safetensors};
use burn::module::Module;
use burn::tensor::backend::Backend;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Loads the union of the tensors of several `.safetensors` files (the shards of one checkpoint)
/// into `module`, as [`load_pytorch_safetensors`](super::load_pytorch_safetensors) does for one
/// file. Returns the number of tensors loaded.
///
/// # Errors
/// As [`load_pytorch_safetensors`](super::load_pytorch_safetensors) (errors about one tensor name
/// the file holding it; missing and unexpected keys name all files), and
/// [`CheckpointError::DuplicateKey`] if two files hold the same key. On `Err`, `module` is
/// unchanged.
pub fn load_pytorch_safetensors_files<B: Backend, M: Module<B> + Clone, P: AsRef<Path>>(
    module: &mut M,
    paths: &[P],
    key_map: &[(&str, &str)],
) -> Result<usize, CheckpointError> {
    let files: Vec<String> = paths
        .iter()
        .map(|p| p.as_ref().display().to_string())
        .collect();
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    let mut tensors: Vec<FileTensor> = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        for snapshot in read_safetensors(path)? {
            let key = snapshot.full_path();
            if let Some(&first) = owner.get(&key) {
                return Err(CheckpointError::DuplicateKey {
                    path: files[first].clone(),
                    other_path: files[index].clone(),
                    key,
                });
            }
            owner.insert(key.clone(), index);
            tensors.push((index, key, snapshot));
        }
    }
    let source = Source {
        files,
        prefix: "",
        key_map,
        subset: None,
    };
    source.load(module, tensors)
}

/// Reads a hub `model.safetensors.index.json` (`{"metadata": {..}, "weight_map": {key: file}}`)
/// and returns the distinct shard files it names, resolved next to the index, in sorted order
/// (ready for [`load_pytorch_safetensors_files`]).
///
/// # Errors
/// - [`CheckpointError::Io`] if the index cannot be read;
/// - [`CheckpointError::Parse`] if it is not JSON with a `weight_map` object of strings, or a
///   shard name is not a plain relative file name;
/// - [`CheckpointError::MissingShard`] naming the index and the first shard file that does not
///   exist.
pub fn read_safetensors_index(path: impl AsRef<Path>) -> Result<Vec<PathBuf>, CheckpointError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| io_error(&shown, &e))?;
    let parse = |message: String| CheckpointError::Parse {
        path: shown.clone(),
        key: None,
        message,
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| parse("no `weight_map` object".into()))?;
    let mut names: Vec<&str> = Vec::with_capacity(map.len());
    for (key, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| parse(format!("`weight_map.{key}` is not a string")))?;
        let plain = Path::new(file)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain || file.is_empty() {
            return Err(parse(format!(
                "`weight_map.{key}` = {file:?} is not a relative file name"
            )));
        }
        names.push(file);
    }
    names.sort_unstable();
    names.dedup();
    let dir = path.parent().unwrap_or(Path::new(""));
    let shards: Vec<PathBuf> = names.into_iter().map(|n| dir.join(n)).collect();
    if let Some(missing) = shards.iter().find(|s| !s.is_file()) {
        return Err(CheckpointError::MissingShard {
            path: shown,
            shard: missing.display().to_string(),
        });
    }
    Ok(shards)
}
