//! Loading one [`Mamba2`] layer from a mamba_ssm state dict (`.safetensors` or a `torch.save`
//! pickle such as `pytorch_model.bin`), f32, f16 or bf16.

use super::Mamba2;
use crate::error::SsmError;
use burn::tensor::backend::Backend;
use burn_store::{ModuleStore, PytorchStore, PytorchStoreError};
use std::path::Path;
use vidgen_nn::checkpoint::{CheckpointError, load_pytorch_snapshots, read_safetensors};

/// Key renames `(mamba_ssm, ours)` for a `Mamba2` layer, matched as whole key components
/// (see [`vidgen_nn::checkpoint::to_module_key`]); every other key is spelled alike.
pub const MAMBA2_KEY_MAP: &[(&str, &str)] = &[(".A_log.", ".a_log."), (".D.", ".d.")];

impl<B: Backend> Mamba2<B> {
    /// Loads this layer's parameters from a mamba_ssm state dict: the tensors whose keys start
    /// with `prefix` (e.g. `"backbone.layers.3.mixer."` in a full model; `""` for a file holding
    /// just the layer; a missing trailing `.` is added). Tensors outside the prefix are ignored;
    /// every parameter must be found under it, and every tensor under it must be a parameter.
    /// The format follows the extension: `.safetensors` is read lazily (memory-mapped), anything
    /// else as a PyTorch pickle (`torch.save`, zip or legacy format). F32, F16 and BF16 tensors
    /// are cast to the layer's float dtype as they are read. Linear weights are transposed from
    /// PyTorch's `[out, in]`; `A_log` and `D` load into `a_log` and `d`. The layer must have been
    /// built from the checkpoint's config (shapes are checked, not inferred). Returns the number
    /// of tensors loaded.
    ///
    /// # Errors
    /// [`SsmError::Checkpoint`] with a [`CheckpointError`] naming the file: unreadable or invalid
    /// file; missing keys, listed with the prefix; unexpected keys under the prefix; a shape
    /// mismatch (file layout) or a non-float dtype, naming the key. On `Err` the layer is
    /// unchanged.
    pub fn load_mamba_ssm(
        &mut self,
        path: impl AsRef<Path>,
        prefix: &str,
    ) -> Result<usize, SsmError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let is_safetensors = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let snapshots = if is_safetensors {
            read_safetensors(path)?
        } else {
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
            let all = store
                .get_all_snapshots()
                .map_err(|e| pickle_error(&shown, e))?;
            all.values().cloned().collect()
        };
        Ok(load_pytorch_snapshots(
            self,
            &shown,
            snapshots,
            MAMBA2_KEY_MAP,
            prefix,
        )?)
    }
}

/// A burn-store pickle error in our terms.
fn pickle_error(path: &str, error: PytorchStoreError) -> CheckpointError {
    let io = |e: &std::io::Error| CheckpointError::Io {
        path: path.into(),
        kind: e.kind(),
        message: e.to_string(),
    };
    match &error {
        PytorchStoreError::Io(e) => io(e),
        PytorchStoreError::Reader(burn_store::pytorch::PytorchError::Io(e)) => io(e),
        _ => CheckpointError::Parse {
            path: path.into(),
            key: None,
            message: error.to_string(),
        },
    }
}
