//! Loading Open-Sora 1.2 STDiT3 checkpoints (hub `model.safetensors`, shards with
//! `model.safetensors.index.json`, f32/f16/bf16) into [`Stdit`] by their upstream names.

use super::config::UpstreamConfigReport;
use crate::error::ConfigError;
use crate::error::ModelError;
use crate::stdit::{
    CaptionEmbedder, FinalLayer, SpatialStditBlock, Stdit, StditConfig, TemporalStditBlock,
};
use burn::module::{Module, Param};
use burn::tensor::{Tensor, backend::Backend};
use std::path::{Path, PathBuf};
use vidgen_nn::checkpoint::{
    CheckpointError, load_pytorch_safetensors_files, read_safetensors_index,
};
use vidgen_nn::{AdaLnModulation, PatchEmbed3d, TimestepEmbedder};

/// Upstream STDiT3 checkpoint key fragments and ours, `(upstream, ours)`, applied in order to
/// every key. The only renames between an Open-Sora state dict and [`Stdit`]'s parameter paths:
///
/// | upstream | ours |
/// |---|---|
/// | `t_embedder.mlp.0`, `.mlp.2` (also `fps_embedder`) | `t_embedder.linear_1`, `.linear_2` |
/// | `t_block.1` (`Sequential(SiLU, Linear)`) | `t_block.linear` |
/// | `{spatial,temporal}_blocks.N.attn.{qkv,proj}` | `….attn.attn.{qkv,proj}` |
/// | `….attn.{q,k}_norm.weight` (LlamaRMSNorm) | `….attn.attn.{q,k}_norm.gamma` |
/// | `….scale_shift_table`, `final_layer.scale_shift_table` | `….scale_shift_table.scale_shift_table` |
///
/// Everything else has the same name and layout: `x_embedder.proj` (Conv3d), `y_embedder.y_proj.
/// fc1/fc2`, `y_embedder.y_embedding`, the fused `attn.qkv` (`[3·D, D]`, rows `[3, H, Dh]`) and
/// `cross_attn.kv_linear` (`[2·D, D]`, rows `[2, H, Dh]`), `cross_attn.q_linear/proj`,
/// `mlp.fc1/fc2`, `final_layer.linear` (rows `(pt, ph, pw, C_out)`). Linear weights are
/// transposed on load. The model-level `rope.freqs` (rotary-embedding-torch's fixed frequencies)
/// is read and checked against the temporal RoPE's own frequencies.
pub const STDIT3_KEY_MAP: &[(&str, &str)] = &[
    ("embedder.mlp.0.", "embedder.linear_1."),
    ("embedder.mlp.2.", "embedder.linear_2."),
    ("t_block.1.", "t_block.linear."),
    (".attn.qkv.", ".attn.attn.qkv."),
    (".attn.q_norm.weight", ".attn.attn.q_norm.gamma"),
    (".attn.k_norm.weight", ".attn.attn.k_norm.gamma"),
    (".attn.proj.", ".attn.attn.proj."),
    ("scale_shift_table", "scale_shift_table.scale_shift_table"),
];

/// Relative tolerance of the `rope.freqs` check (bf16 files round them to 2⁻⁸).
const ROPE_FREQS_RTOL: f32 = 1e-2;

/// rotary-embedding-torch's frequency parameter (`rope.freqs`, `[head_dim / 2]`).
#[derive(Module, Debug)]
struct RopeFreqs<B: Backend> {
    freqs: Param<Tensor<B, 1>>,
}

/// [`Stdit`]'s parameters in the checkpoint's top-level layout (plus `rope`).
#[derive(Module, Debug)]
struct Stdit3Layout<B: Backend> {
    x_embedder: PatchEmbed3d<B>,
    t_embedder: TimestepEmbedder<B>,
    fps_embedder: TimestepEmbedder<B>,
    t_block: AdaLnModulation<B>,
    y_embedder: CaptionEmbedder<B>,
    spatial_blocks: Vec<SpatialStditBlock<B>>,
    temporal_blocks: Vec<TemporalStditBlock<B>>,
    final_layer: FinalLayer<B>,
    rope: RopeFreqs<B>,
}

/// The checkpoint-layout modules of `model` (a clone), plus the rest to put them back into.
fn to_layout<B: Backend>(model: &Stdit<B>) -> (Stdit3Layout<B>, Stdit<B>) {
    let rest = model.clone();
    let freqs = model.temporal_blocks[0]
        .attn
        .rope
        .as_ref()
        .map(|r| r.rotary.theta.clone())
        .unwrap_or_else(|| {
            let d = model.spatial_blocks[0].attn.attn.proj.weight.dims()[0];
            let heads = model.spatial_blocks[0].attn.attn.n_heads;
            Tensor::zeros([d / heads / 2], &model.t_block.linear.weight.device())
        });
    let layout = Stdit3Layout {
        x_embedder: rest.x_embedder.clone(),
        t_embedder: rest.t_embedder.clone(),
        fps_embedder: rest.fps_embedder.clone(),
        t_block: rest.t_block.clone(),
        y_embedder: rest.y_embedder.clone(),
        spatial_blocks: rest.spatial_blocks.clone(),
        temporal_blocks: rest.temporal_blocks.clone(),
        final_layer: rest.final_layer.clone(),
        rope: RopeFreqs {
            freqs: Param::from_tensor(freqs),
        },
    };
    (layout, rest)
}

/// `ModelError` for a checkpoint failure: [`ModelError::Checkpoint`], path and key kept.
pub(super) fn from_checkpoint(error: CheckpointError) -> ModelError {
    ModelError::Checkpoint(error)
}

/// Loads an Open-Sora STDiT3 checkpoint — one `.safetensors` file or the shards of one — into
/// `model` (built from the matching config, e.g. by
/// [`StditConfig::from_upstream_config`]). Float tensors of any precision (F32, F16, BF16, F64)
/// are cast to the model's. Keys are mapped by [`STDIT3_KEY_MAP`]; every model parameter must be
/// present and every file tensor used. Returns the number of tensors loaded (`rope.freqs`
/// included).
///
/// # Errors
/// [`ModelError::Checkpoint`] naming the file: unreadable or malformed, missing or unexpected
/// keys (listed in upstream spelling), a shape or dtype mismatch (naming the key);
/// [`ModelError::Config`] (`ConfigError::Unsupported`) naming `rope.freqs` if the file's RoPE frequencies are not
/// `θ^(−2k/d)` with the model's `θ`. On `Err`, `model` is unchanged.
pub fn load_stdit3_weights<B: Backend, P: AsRef<Path>>(
    model: &mut Stdit<B>,
    paths: &[P],
) -> Result<usize, ModelError> {
    let (mut layout, rest) = to_layout(model);
    let expected = host_f32(layout.rope.freqs.val());
    let count = load_pytorch_safetensors_files(&mut layout, paths, STDIT3_KEY_MAP)
        .map_err(from_checkpoint)?;
    let found = host_f32(layout.rope.freqs.val());
    let off = found
        .iter()
        .zip(&expected)
        .any(|(f, e)| (f - e).abs().is_nan() || (f - e).abs() > ROPE_FREQS_RTOL * e.abs());
    if off || found.len() != expected.len() {
        return Err(ModelError::Config(ConfigError::Unsupported {
            field: "rope.freqs",
            value: format!("{found:?}"),
            reason: "the temporal RoPE uses fixed frequencies θ^(−2k/d) (rope_theta)",
        }));
    }
    *model = Stdit {
        x_embedder: layout.x_embedder,
        t_embedder: layout.t_embedder,
        fps_embedder: layout.fps_embedder,
        t_block: layout.t_block,
        y_embedder: layout.y_embedder,
        spatial_blocks: layout.spatial_blocks,
        temporal_blocks: layout.temporal_blocks,
        final_layer: layout.final_layer,
        ..rest
    };
    Ok(count)
}

/// A 1D tensor's values as f32 on the host.
fn host_f32<B: Backend>(tensor: Tensor<B, 1>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap_or_default()
}

/// The checkpoint files of a hub model directory: `model.safetensors` if present, else the
/// shards listed by `model.safetensors.index.json`.
///
/// # Errors
/// [`ModelError::Io`] naming the directory if it has neither; errors of the index file.
pub fn stdit3_checkpoint_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, ModelError> {
    let dir = dir.as_ref();
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        return read_safetensors_index(&index).map_err(from_checkpoint);
    }
    Err(ModelError::Io {
        path: dir.display().to_string(),
        message: "has neither model.safetensors nor model.safetensors.index.json".into(),
    })
}

/// Builds the model of an Open-Sora STDiT3 hub directory (`config.json` with `STDiT3Config`
/// keys, and `model.safetensors` or shards with `model.safetensors.index.json`): the config by
/// [`StditConfig::from_upstream_config_file`], the weights by [`load_stdit3_weights`]. Returns the
/// model and what the config conversion did not use.
///
/// # Errors
/// Those of [`StditConfig::from_upstream_config_file`], [`StditConfig::init`],
/// [`stdit3_checkpoint_files`] and [`load_stdit3_weights`].
pub fn load_stdit3_dir<B: Backend>(
    dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<(Stdit<B>, UpstreamConfigReport), ModelError> {
    let dir = dir.as_ref();
    let (config, report) = StditConfig::from_upstream_config_file(dir.join("config.json"))?;
    let files = stdit3_checkpoint_files(dir)?;
    let mut model = config.init::<B>(device)?;
    load_stdit3_weights(&mut model, &files)?;
    Ok((model, report))
}
