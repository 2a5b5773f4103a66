//! [`CheckpointError`]: why a checkpoint could not be loaded, naming the file and the key.

use burn::tensor::DType;
use thiserror::Error;

/// Why a checkpoint could not be loaded into a module. Every variant names the file (for errors
/// about the whole set of files of a sharded checkpoint, all of them, joined by `, `); keys are
/// spelled as in the file.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading a file failed.
    #[error("{path}: I/O error ({kind:?}): {message}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error kind.
        kind: std::io::ErrorKind,
        /// The I/O error, rendered.
        message: String,
    },
    /// A file is not valid (bad header, truncated data, unreadable tensor, malformed index).
    #[error("{path}: cannot parse checkpoint{}: {message}", key.as_ref().map(|k| format!(" at `{k}`")).unwrap_or_default())]
    Parse {
        /// The file.
        path: String,
        /// The tensor concerned, if the problem is local to one.
        key: Option<String>,
        /// The parser's error, rendered.
        message: String,
    },
    /// The checkpoint lacks tensors the module needs (keys as the file would spell them).
    #[error("{path}: {} missing key(s): {}", keys.len(), keys.join(", "))]
    MissingKeys {
        /// The checkpoint file(s).
        path: String,
        /// The missing keys, sorted.
        keys: Vec<String>,
    },
    /// The checkpoint holds tensors the module has no place for.
    #[error("{path}: {} unexpected key(s): {}", keys.len(), keys.join(", "))]
    UnexpectedKeys {
        /// The checkpoint file(s).
        path: String,
        /// The extra keys, sorted.
        keys: Vec<String>,
    },
    /// A tensor's shape differs from the module parameter's (both in the file's layout, e.g.
    /// PyTorch's `[out, in]` for linear weights).
    #[error(
        "{path}: `{key}` has shape {found:?} in the checkpoint, the module expects {expected:?}"
    )]
    TensorShapeMismatch {
        /// The file holding the tensor.
        path: String,
        /// The checkpoint key.
        key: String,
        /// Shape the module needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor's element type cannot be converted to the module parameter's: only float tensors
    /// (F64, F32, F16, BF16) load into float parameters (cast to the parameter's dtype); integer
    /// and bool parameters need exactly their own dtype.
    #[error(
        "{path}: `{key}` has dtype {found:?} in the checkpoint, which cannot load into the module's {expected:?} parameter"
    )]
    UnsupportedDtype {
        /// The file holding the tensor.
        path: String,
        /// The checkpoint key.
        key: String,
        /// The module parameter's dtype.
        expected: DType,
        /// The file's dtype.
        found: DType,
    },
    /// Two files of a sharded checkpoint hold the same key.
    #[error("`{key}` is in both {path} and {other_path}")]
    DuplicateKey {
        /// The first file holding the key.
        path: String,
        /// The second file holding it.
        other_path: String,
        /// The checkpoint key.
        key: String,
    },
    /// A shard named by a `model.safetensors.index.json` does not exist.
    #[error("{path}: shard file {shard} does not exist")]
    MissingShard {
        /// The index file.
        path: String,
        /// The missing shard file (resolved next to the index).
        shard: String,
    },
}
