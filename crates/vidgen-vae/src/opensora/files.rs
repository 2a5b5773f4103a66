//! File to file: config JSON + checkpoint + input video (`x`) → latent `z` and reconstruction
//! `x_rec`, as `.safetensors`.

use super::{OpenSoraVae, OpenSoraVaeConfig, load_open_sora_vae};
use crate::error::ConfigError;
use crate::error::VaeError;
use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use burn_store::{ModuleStore, SafetensorsStore, SafetensorsStoreError};
use std::path::Path;

/// What [`run_files`] computed (and wrote).
#[derive(Debug, Clone)]
pub struct OpenSoraVaeOutput<B: Backend> {
    /// Normalised latent `[B, E, T', h, w]` (posterior mean, or a sample with `--sample`).
    pub z: Tensor<B, 5>,
    /// `decode(z, T)`: `[B, 3, T, H, W]`.
    pub x_rec: Tensor<B, 5>,
}

/// Builds the VAE from `config` (JSON), loads `checkpoint`, reads `x` `[B, 3, T, H, W]` from
/// `inputs`, encodes it (posterior mean, or sampled with [`OpenSoraVae::encode_seeded`]`(seed)`
/// when `sample` is `Some(seed)`), decodes to `T` frames, and writes `z` and `x_rec` to `out`.
///
/// # Errors
/// Those of [`OpenSoraVaeConfig::from_json_file`], [`OpenSoraVaeConfig::init`],
/// [`load_open_sora_vae`], [`read_video_input`], [`OpenSoraVae::encode_seeded`] and
/// [`write_f32_safetensors`]; each names the file and, where there is one, the key.
pub fn run_files<B: Backend>(
    config: impl AsRef<Path>,
    checkpoint: impl AsRef<Path>,
    inputs: impl AsRef<Path>,
    out: impl AsRef<Path>,
    sample: Option<u64>,
    device: &B::Device,
) -> Result<OpenSoraVaeOutput<B>, VaeError> {
    let cfg = OpenSoraVaeConfig::from_json_file(config)?;
    let mut vae: OpenSoraVae<B> = cfg.init(device)?;
    load_open_sora_vae(&mut vae, checkpoint)?;
    let x = read_video_input::<B>(inputs, "x", cfg.vae_2d.in_channels, device)?;
    let t = x.dims()[2];
    let z = match sample {
        Some(seed) => vae.encode_seeded(x, seed)?,
        None => {
            let [_, _, _, h, w] = x.dims();
            let f = vae.spatial_factor();
            crate::error::divisible("input height", h, f, Some("spatial factor"))?;
            crate::error::divisible("input width", w, f, Some("spatial factor"))?;
            vae.encode(x)
        }
    };
    let x_rec = vae.decode(z.clone(), t);
    let output = OpenSoraVaeOutput { z, x_rec };
    write_f32_safetensors(
        out,
        &[("z", output.z.to_data()), ("x_rec", output.x_rec.to_data())],
    )?;
    Ok(output)
}

/// Reads the float tensor `key` `[B, channels, T, H, W]` (f16, bf16, f32 or f64) from a
/// `.safetensors` file, as the backend's float type.
///
/// # Errors
/// [`VaeError::Io`] / [`VaeError::Parse`] if the file cannot be read or parsed;
/// [`VaeError::MissingKeys`] if it has no `key`; [`VaeError::DtypeMismatch`] for a non-float
/// tensor; [`VaeError::TensorShapeMismatch`] if it is not rank 5 with `channels` channels and at
/// least one frame and pixel (the expected shape shows `0` for free sizes).
pub fn read_video_input<B: Backend>(
    path: impl AsRef<Path>,
    key: &str,
    channels: usize,
    device: &B::Device,
) -> Result<Tensor<B, 5>, VaeError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let mut store = SafetensorsStore::from_file(path);
    let snapshot = store
        .get_all_snapshots()
        .map_err(|e| store_error(&shown, e))?
        .get(key)
        .cloned()
        .ok_or_else(|| VaeError::MissingKeys {
            path: shown.clone(),
            keys: vec![key.to_string()],
        })?;
    if !matches!(
        snapshot.dtype,
        DType::F16 | DType::BF16 | DType::F32 | DType::F64
    ) {
        return Err(VaeError::DtypeMismatch {
            key: key.into(),
            expected: DType::F32,
            found: snapshot.dtype,
        });
    }
    let shape = snapshot.shape.to_vec();
    if shape.len() != 5 || shape[1] != channels || shape.contains(&0) {
        return Err(VaeError::TensorShapeMismatch {
            key: key.into(),
            expected: vec![0, channels, 0, 0, 0],
            found: shape,
        });
    }
    let data = snapshot.to_data().map_err(|e| VaeError::Parse {
        path: shown,
        key: Some(key.into()),
        message: format!("{e:?}"),
    })?;
    Ok(Tensor::from_data(data.convert_dtype(DType::F32), device))
}

/// Writes named tensors to a `.safetensors` file as f32 (replacing an existing file), in the
/// order given.
///
/// # Errors
/// [`VaeError::Io`] naming `path` if it cannot be written; [`VaeError::Config`] (`ConfigError::Unsupported`) naming
/// `tensor name` for a repeated or empty name.
pub fn write_f32_safetensors(
    path: impl AsRef<Path>,
    tensors: &[(&str, TensorData)],
) -> Result<(), VaeError> {
    let path = path.as_ref();
    let mut header = serde_json::Map::new();
    let mut bytes: Vec<u8> = Vec::new();
    for (name, data) in tensors {
        if name.is_empty() || header.contains_key(*name) || *name == "__metadata__" {
            return Err(VaeError::Config(ConfigError::Unsupported {
                field: "tensor name",
                value: format!("{name:?}"),
                reason: "must be non-empty, unique and not `__metadata__`",
            }));
        }
        let values = data.clone().convert_dtype(DType::F32);
        let start = bytes.len();
        for v in values.iter::<f32>() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.to_string(),
            serde_json::json!({
                "dtype": "F32",
                "shape": data.shape.to_vec(),
                "data_offsets": [start, bytes.len()],
            }),
        );
    }
    let mut head = serde_json::Value::Object(header).to_string().into_bytes();
    // Pad the header with spaces so the data starts 8-byte aligned (as safetensors writes it).
    while !(head.len() + 8).is_multiple_of(8) {
        head.push(b' ');
    }
    let mut file = Vec::with_capacity(8 + head.len() + bytes.len());
    file.extend_from_slice(&(head.len() as u64).to_le_bytes());
    file.extend_from_slice(&head);
    file.extend_from_slice(&bytes);
    std::fs::write(path, file).map_err(|e| VaeError::Io {
        path: path.display().to_string(),
        kind: e.kind(),
        message: e.to_string(),
    })
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
