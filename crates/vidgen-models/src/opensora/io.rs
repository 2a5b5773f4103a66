//! Upstream STDiT3 forward arguments from a safetensors file, and a whole forward pass from
//! files to a file ([`forward_files`]).

use super::config::UpstreamConfigReport;
use super::load::{from_checkpoint, load_stdit3_weights, stdit3_checkpoint_files};
use crate::error::ConfigError;
use crate::error::ModelError;
use crate::stdit::{StditConfig, StditInput};
use burn::tensor::{Bool, DType, Tensor, TensorData, backend::Backend, bf16, f16};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use vidgen_nn::checkpoint::read_safetensors_index;

/// One tensor of the inputs file as `f64` values and its shape.
struct Values {
    data: Vec<f64>,
    shape: Vec<usize>,
}

/// Reads the tensors of one inputs file, naming the file and key in every error.
pub(super) struct InputsFile {
    /// The whole file, checked to be valid safetensors by [`read_inputs_file`].
    bytes: Vec<u8>,
    path: String,
    prefix: String,
}

/// Reads `path` and checks that it is a safetensors file; tensors are looked up under
/// `prefix + name`.
pub(super) fn read_inputs_file(path: &Path, prefix: &str) -> Result<InputsFile, ModelError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Parse {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    Ok(InputsFile {
        bytes,
        path: shown,
        prefix: prefix.to_string(),
    })
}

impl InputsFile {
    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("checked by read_inputs_file")
    }

    /// A required `[B, C, T, H, W]` float tensor.
    pub(super) fn latent<B: Backend>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Result<Tensor<B, 5>, ModelError> {
        let v = self.required(name)?;
        self.check(name, &v, 5, "[B, C, T, H, W]")?;
        Ok(float(v, device))
    }

    /// Required caption features `[B, 1, N, C_cap]` or `[B, N, C_cap]`, as `[B, N, C_cap]`.
    pub(super) fn captions<B: Backend>(
        &self,
        name: &str,
        batch: usize,
        device: &B::Device,
    ) -> Result<Tensor<B, 3>, ModelError> {
        let mut y = self.required(name)?;
        match y.shape.len() {
            4 if y.shape[1] == 1 => {
                y.shape.remove(1);
            }
            3 => {}
            _ => {
                return Err(self.malformed(
                    name,
                    format!(
                        "expected [B, 1, N, C_cap] or [B, N, C_cap], got shape {:?}",
                        y.shape
                    ),
                ));
            }
        }
        self.check(name, &y, 3, "[B, N, C_cap]")?;
        self.check_batch(name, &y, batch, false)?;
        Ok(float(y, device))
    }

    /// An optional caption mask `[B, N]` or `[1, N]` (nonzero = valid token).
    pub(super) fn caption_mask<B: Backend>(
        &self,
        name: &str,
        batch: usize,
        device: &B::Device,
    ) -> Result<Option<Tensor<B, 2, Bool>>, ModelError> {
        let Some(mask) = self.optional(name)? else {
            return Ok(None);
        };
        self.check(name, &mask, 2, "[B, N]")?;
        self.check_batch(name, &mask, batch, true)?;
        let rows = mask.shape[0];
        let mask = flags::<B>(mask, device);
        Ok(Some(if rows == batch {
            mask
        } else {
            mask.repeat_dim(0, batch)
        }))
    }

    /// A required per-sample float `[B]` (or `[1]`, repeated).
    pub(super) fn per_sample<B: Backend>(
        &self,
        name: &str,
        batch: usize,
        device: &B::Device,
    ) -> Result<Tensor<B, 1>, ModelError> {
        let v = self.required(name)?;
        self.check(name, &v, 1, "[B]")?;
        self.check_batch(name, &v, batch, true)?;
        let rows = v.shape[0];
        let t: Tensor<B, 1> = float(v, device);
        Ok(if rows == batch {
            t
        } else {
            t.repeat_dim(0, batch)
        })
    }

    /// A required per-sample count `[B]`: positive whole numbers (any numeric dtype).
    pub(super) fn counts(&self, name: &str, batch: usize) -> Result<Vec<usize>, ModelError> {
        let v = self.required(name)?;
        self.check(name, &v, 1, "[B]")?;
        self.check_batch(name, &v, batch, false)?;
        v.data
            .iter()
            .map(|&x| {
                if x >= 1.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX) {
                    Ok(x as usize)
                } else {
                    Err(self.malformed(name, format!("{x} is not a positive whole number")))
                }
            })
            .collect()
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn malformed(&self, name: &str, message: String) -> ModelError {
        ModelError::Parse {
            path: self.path.clone(),
            message: format!("`{}`: {message}", self.key(name)),
        }
    }

    /// The tensor `name` converted to f64, `None` if absent.
    fn optional(&self, name: &str) -> Result<Option<Values>, ModelError> {
        let key = self.key(name);
        let st = self.st();
        let Ok(view) = st.tensor(&key) else {
            return Ok(None);
        };
        let bytes = view.data();
        let data: Vec<f64> = match view.dtype() {
            Dtype::F64 => chunks::<8>(bytes).map(f64::from_le_bytes).collect(),
            Dtype::F32 => chunks::<4>(bytes)
                .map(|b| f32::from_le_bytes(b).into())
                .collect(),
            Dtype::F16 => chunks::<2>(bytes)
                .map(|b| f16::from_le_bytes(b).to_f64())
                .collect(),
            Dtype::BF16 => chunks::<2>(bytes)
                .map(|b| bf16::from_le_bytes(b).to_f64())
                .collect(),
            Dtype::I64 => chunks::<8>(bytes)
                .map(|b| i64::from_le_bytes(b) as f64)
                .collect(),
            Dtype::I32 => chunks::<4>(bytes)
                .map(|b| i32::from_le_bytes(b).into())
                .collect(),
            Dtype::U8 | Dtype::BOOL => bytes.iter().map(|&b| f64::from(b)).collect(),
            other => {
                return Err(ModelError::DtypeMismatch {
                    path: self.path.clone(),
                    name: key,
                    found: format!("{other:?}"),
                    expected: "a float, integer or bool dtype",
                });
            }
        };
        Ok(Some(Values {
            data,
            shape: view.shape().to_vec(),
        }))
    }

    fn required(&self, name: &str) -> Result<Values, ModelError> {
        self.optional(name)?
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.path.clone(),
                name: self.key(name),
            })
    }

    /// Checks the rank (and that no value is NaN or infinite).
    fn check(&self, name: &str, v: &Values, rank: usize, layout: &str) -> Result<(), ModelError> {
        if v.shape.len() != rank || v.shape.contains(&0) {
            return Err(self.malformed(
                name,
                format!("expected a non-empty {layout}, got shape {:?}", v.shape),
            ));
        }
        if let Some(bad) = v.data.iter().find(|x| !x.is_finite()) {
            return Err(self.malformed(name, format!("holds the non-finite value {bad}")));
        }
        Ok(())
    }

    /// `v`'s first axis must be `batch` (or 1 where upstream repeats it: `broadcast`).
    fn check_batch(
        &self,
        name: &str,
        v: &Values,
        batch: usize,
        broadcast: bool,
    ) -> Result<(), ModelError> {
        let b = v.shape[0];
        if b == batch || (broadcast && b == 1) {
            Ok(())
        } else {
            Err(self.malformed(name, format!("batch {b}, but `x` has batch {batch}")))
        }
    }
}

/// Little-endian `N`-byte chunks.
fn chunks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes
        .chunks_exact(N)
        .map(|c| c.try_into().expect("chunks_exact yields N bytes"))
}

fn float<B: Backend, const D: usize>(v: Values, device: &B::Device) -> Tensor<B, D> {
    let data: Vec<f32> = v.data.into_iter().map(|x| x as f32).collect();
    Tensor::from_data(TensorData::new(data, v.shape), device)
}

/// Nonzero = `true`.
fn flags<B: Backend>(v: Values, device: &B::Device) -> Tensor<B, 2, Bool> {
    let flags: Vec<bool> = v.data.iter().map(|&x| x != 0.0).collect();
    Tensor::from_bool(TensorData::new(flags, v.shape), device)
}

/// Reads upstream `STDiT3.forward`'s arguments from a safetensors file, each under
/// `prefix + name`: `x` `[B, C, T, H, W]`, `timestep` `[B]`, `y` `[B, 1, N, C_cap]` (or
/// `[B, N, C_cap]`), optional `mask` `[B, N]` or `[1, N]` (nonzero = valid token), optional
/// `x_mask` `[B, T]` (nonzero / `true` = frame at `timestep`, zero = conditioning frame), `fps`
/// `[B]` or `[1]`, optional `height` and `width` `[B]` (pixels; the first sample's are used, as
/// upstream). Float inputs may be F64/F32/F16/BF16; masks any integer, bool or float dtype.
///
/// # Errors
/// [`ModelError::Io`] / [`ModelError::Parse`] naming the file if it cannot be read or is not
/// safetensors; [`ModelError::MissingTensor`] naming the key of an absent required input;
/// [`ModelError::Parse`] naming the file and key of an input of the wrong rank, batch or with
/// non-finite values, or `height` without `width`; [`ModelError::DtypeMismatch`] for a
/// non-numeric dtype.
pub fn read_forward_inputs<B: Backend>(
    path: impl AsRef<Path>,
    prefix: &str,
    device: &B::Device,
) -> Result<StditInput<B>, ModelError> {
    let file = read_inputs_file(path.as_ref(), prefix)?;
    let x = file.latent::<B>("x", device)?;
    let batch = x.dims()[0];
    let timestep = file.required("timestep")?;
    file.check("timestep", &timestep, 1, "[B]")?;
    file.check_batch("timestep", &timestep, batch, false)?;
    let y = file.captions::<B>("y", batch, device)?;
    let fps = file.required("fps")?;
    file.check("fps", &fps, 1, "[B]")?;
    file.check_batch("fps", &fps, batch, true)?;

    let mut input = StditInput::new(x, float(timestep, device), y, float(fps, device));
    if let Some(mask) = file.optional("mask")? {
        file.check("mask", &mask, 2, "[B, N]")?;
        file.check_batch("mask", &mask, batch, true)?;
        input = input.with_mask(flags(mask, device));
    }
    if let Some(x_mask) = file.optional("x_mask")? {
        file.check("x_mask", &x_mask, 2, "[B, T]")?;
        file.check_batch("x_mask", &x_mask, batch, false)?;
        input = input.with_x_mask(flags(x_mask, device));
    }
    match (file.optional("height")?, file.optional("width")?) {
        (Some(h), Some(w)) => {
            file.check("height", &h, 1, "[B]")?;
            file.check("width", &w, 1, "[B]")?;
            input = input.with_resolution(h.data[0], w.data[0]);
        }
        (None, None) => {}
        (h, _) => {
            let (present, absent) = if h.is_some() {
                ("height", "width")
            } else {
                ("width", "height")
            };
            return Err(file.malformed(present, format!("given without `{}{absent}`", file.prefix)));
        }
    }
    Ok(input)
}

/// Reads precomputed T5 caption embeddings: `y` `[B, 1, N, C_cap]` (or `[B, N, C_cap]`) and an
/// optional `mask` `[B, N]` (nonzero = valid token), as Open-Sora's text encoder returns them.
/// Returns `y` as `[B, N, C_cap]`.
///
/// # Errors
/// [`ModelError::Io`] / [`ModelError::Parse`] naming the file if it cannot be read or is not
/// safetensors; [`ModelError::MissingTensor`] for a missing `y`; [`ModelError::Parse`] naming the
/// file and key for a wrong rank or batch or a non-finite value.
#[allow(clippy::type_complexity)]
pub fn read_captions<B: Backend>(
    path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<(Tensor<B, 3>, Option<Tensor<B, 2, Bool>>), ModelError> {
    let file = read_inputs_file(path.as_ref(), "")?;
    let batch = file
        .optional("y")?
        .map(|v| v.shape.first().copied().unwrap_or(0))
        .unwrap_or(0);
    let y = file.captions::<B>("y", batch, device)?;
    let mask = file.caption_mask::<B>("mask", batch, device)?;
    Ok((y, mask))
}

/// What [`forward_files`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardSummary {
    /// Config keys the conversion did not use.
    pub config_report: UpstreamConfigReport,
    /// The checkpoint files loaded.
    pub checkpoint_files: Vec<PathBuf>,
    /// Shape of `out`, `[B, C_out, T, H, W]`.
    pub out_shape: [usize; 5],
}

/// Runs an Open-Sora STDiT3 forward pass from files: the model from an upstream `config.json`
/// ([`StditConfig::from_upstream_config_file`]) and a checkpoint (a `.safetensors` file, a
/// `model.safetensors.index.json`, or a hub directory), the arguments from `inputs`
/// ([`read_forward_inputs`], no prefix), and writes `out` (`[B, C_out, T, H, W]`, f32, every
/// channel) to the safetensors file `out`.
///
/// # Errors
/// Those of the config conversion, [`load_stdit3_weights`], [`read_forward_inputs`] and
/// [`Stdit::forward_input`](crate::stdit::Stdit::forward_input); [`ModelError::Io`] naming `out`
/// if it cannot be written.
pub fn forward_files<B: Backend>(
    config: impl AsRef<Path>,
    checkpoint: impl AsRef<Path>,
    inputs: impl AsRef<Path>,
    out: impl AsRef<Path>,
    device: &B::Device,
) -> Result<ForwardSummary, ModelError> {
    let (model_config, config_report) = StditConfig::from_upstream_config_file(config)?;
    let checkpoint = checkpoint.as_ref();
    let files = checkpoint_files(checkpoint)?;
    let input = read_forward_inputs::<B>(inputs, "", device)?;
    let mut model = model_config.init::<B>(device)?;
    load_stdit3_weights(&mut model, &files)?;
    let y = model.forward_input(input)?;
    let out_shape = y.dims();
    write_out(out.as_ref(), "out", y)?;
    Ok(ForwardSummary {
        config_report,
        checkpoint_files: files,
        out_shape,
    })
}

/// A hub directory, an index file or one `.safetensors` file.
pub(super) fn checkpoint_files(path: &Path) -> Result<Vec<PathBuf>, ModelError> {
    if path.is_dir() {
        stdit3_checkpoint_files(path)
    } else if path.extension().is_some_and(|e| e == "json") {
        read_safetensors_index(path).map_err(from_checkpoint)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// Writes `tensor` as a one-tensor f32 safetensors file, under `name`.
pub(super) fn write_out<B: Backend>(
    path: &Path,
    name: &str,
    tensor: Tensor<B, 5>,
) -> Result<(), ModelError> {
    let data = tensor.into_data().convert::<f32>();
    write_safetensors(path, &[(name, data)])
}

/// Writes named tensors to a `.safetensors` file (replacing an existing file), each in its own
/// dtype (F64, F32, F16, BF16, I64, I32, U8 or Bool) — e.g. an inputs file for
/// [`forward_files`] with an `I64` `mask` and a `Bool` `x_mask`.
///
/// # Errors
/// [`ModelError::Config`] (`ConfigError::Unsupported`) naming the tensor for another dtype, an empty or repeated name;
/// [`ModelError::Io`] naming `path` if it cannot be written.
pub fn write_safetensors(
    path: impl AsRef<Path>,
    tensors: &[(&str, TensorData)],
) -> Result<(), ModelError> {
    let path = path.as_ref();
    let io = |message: String| ModelError::Io {
        path: path.display().to_string(),
        message,
    };
    let mut views = Vec::with_capacity(tensors.len());
    for (i, (name, data)) in tensors.iter().enumerate() {
        if name.is_empty() || tensors[..i].iter().any(|(n, _)| n == name) {
            return Err(ModelError::Config(ConfigError::Unsupported {
                field: "tensor name",
                value: format!("{name:?}"),
                reason: "must be non-empty and unique",
            }));
        }
        let dtype = match data.dtype {
            DType::F64 => Dtype::F64,
            DType::F32 => Dtype::F32,
            DType::F16 => Dtype::F16,
            DType::BF16 => Dtype::BF16,
            DType::I64 => Dtype::I64,
            DType::I32 => Dtype::I32,
            DType::U8 => Dtype::U8,
            DType::Bool(_) => Dtype::BOOL,
            other => {
                return Err(ModelError::Config(ConfigError::Unsupported {
                    field: "tensor dtype",
                    value: format!("{name}: {other:?}"),
                    reason: "write F64, F32, F16, BF16, I64, I32, U8 or Bool tensors",
                }));
            }
        };
        let bytes = match data.dtype {
            DType::Bool(_) => data.iter::<bool>().map(u8::from).collect(),
            _ => data.as_bytes().to_vec(),
        };
        views.push((*name, dtype, data.shape.to_vec(), bytes));
    }
    let views = views
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (*name, view))
                .map_err(|e| io(format!("`{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| io(e.to_string()))
}
