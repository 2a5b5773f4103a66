//! Post-training quantization (PTQ) of a Burn module's weights with the survey's uniform quantizer
//! (eqs. 13–15, see [`crate::uniform`]).
//!
//! [`PtqConfig::quantize`] walks the module with a [`ModuleVisitor`], tracking each parameter's
//! path (`fc1.weight`) and the type of the struct that owns it (`Struct:Linear`). Selected weights
//! are quantized to int8, or int4 packed two per byte, with one `(S, Z)` per output channel (or per
//! tensor / per group); biases, norm parameters and SSM-sensitive parameters stay f32. The result is
//! a [`QuantizedStore`] (packed bytes + scales + zero points per weight) and a [`PtqReport`] (per
//! layer: error vs f32, bytes before/after). [`QuantizedStore::dequantize_into`] writes `r̃` back
//! into a module (a [`ModuleMapper`]), for running or evaluating the quantized model in f32.
//!
//! Which parameters are quantized ([`PtqTarget`]):
//!
//! | owner | field | axis of a channel | axis cut into groups |
//! |---|---|---|---|
//! | `Linear` (`[d_in, d_out]`) | `weight` | 1 (outputs) | 0 (inputs) |
//! | `Conv1d/2d/3d` (`[C_out, C_in/g, k..]`) | `weight` | 0 | 1 |
//! | `ConvTranspose1d/2d/3d` (`[C_in, C_out/g, k..]`) | `weight` | 1 | 0 |
//! | anything else ([`PtqTarget::AllFloat`] only) | not `bias`/`beta`, not in a `*Norm*` | per tensor | per tensor |
//!
//! A parameter whose field name matches [`PtqConfig::keep_f32`] (case-insensitive) is never
//! quantized: by default Mamba2's `A_log`/`a_log`, `dt_bias` and `D`/`d`, and retention decays
//! (`decay`, `gammas`). A weight with a constant channel/group ([`QuantError::ZeroRange`], e.g. a
//! zero-initialised AdaLN projection) is kept in f32 and reported as such.

mod pack;

pub use pack::{pack_codes, unpack_codes};

use crate::error::QuantError;
use crate::uniform::{Granularity, QuantMode, QuantParams, QuantSpec, dequantize, quantize};
use burn::config::Config;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Which float parameters PTQ considers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PtqTarget {
    /// `weight` of `Linear`, `Conv*` and `ConvTranspose*` only.
    LinearConv,
    /// Also every other float parameter except biases (`bias`, `beta`) and parameters of `*Norm*`
    /// modules; those are quantized per tensor.
    AllFloat,
}

/// How many `(S, Z)` a Linear/Conv weight gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PtqGranularity {
    /// One pair per weight tensor.
    PerTensor,
    /// One pair per output channel.
    PerChannel,
    /// One pair per `group_size` consecutive input channels of each output channel.
    PerGroup {
        /// Inputs per group.
        group_size: usize,
    },
}

/// The field names kept in f32 by default: Mamba2's `a_log`, `dt_bias`, `d` and retention decays.
pub fn default_keep_f32() -> Vec<String> {
    ["a_log", "dt_bias", "d", "decay", "decays", "gammas"]
        .map(String::from)
        .to_vec()
}

/// Configuration of post-training weight quantization.
#[derive(Config, Debug)]
pub struct PtqConfig {
    /// Bits per code: 8 or 4 (4-bit codes are packed two per byte).
    #[config(default = 8)]
    pub bits: u32,
    /// Symmetric (no zero point stored) or affine.
    #[config(default = "QuantMode::Symmetric")]
    pub mode: QuantMode,
    /// Scales per weight.
    #[config(default = "PtqGranularity::PerChannel")]
    pub granularity: PtqGranularity,
    /// Which parameters are candidates.
    #[config(default = "PtqTarget::LinearConv")]
    pub target: PtqTarget,
    /// Field names (last path segment, case-insensitive) never quantized.
    #[config(default = "default_keep_f32()")]
    pub keep_f32: Vec<String>,
}

/// One quantized weight: packed codes plus what dequantization needs.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedWeight {
    /// Ranges, scales, zero points, shape and spec.
    pub params: QuantParams,
    /// Codes packed by [`pack_codes`] (row-major in `params.shape`).
    pub packed: Vec<u8>,
}

impl QuantizedWeight {
    /// Unpacked integer codes, row-major.
    pub fn codes(&self) -> Vec<i32> {
        let n = self.params.shape.iter().product();
        unpack_codes(
            &self.packed,
            n,
            self.params.spec.bits,
            self.params.spec.mode,
        )
    }

    /// Bytes of the scales (f32) and, in affine mode, zero points (stored as i32).
    pub fn param_bytes(&self) -> usize {
        let per_group = match self.params.spec.mode {
            QuantMode::Affine => 8,
            QuantMode::Symmetric => 4,
        };
        self.params.n_groups() * per_group
    }

    /// `r̃ = S·(Q + Z)` as a tensor on `device`.
    ///
    /// # Panics
    /// If `D` is not the stored rank.
    pub fn dequantize<B: Backend, const D: usize>(&self, device: &B::Device) -> Tensor<B, D> {
        let shape: [usize; D] = self.params.shape.clone().try_into().unwrap_or_else(|s| {
            panic!("stored weight has shape {s:?}, asked for rank {D}");
        });
        let codes = Tensor::<B, D, Int>::from_data(TensorData::new(self.codes(), shape), device);
        dequantize(codes, &self.params)
    }
}

/// Quantized weights by parameter path (`fc1.weight`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantizedStore {
    /// Path → weight.
    pub weights: BTreeMap<String, QuantizedWeight>,
}

impl QuantizedStore {
    /// Replaces every stored weight of `module` by its dequantized value `r̃` (same parameter ids);
    /// other parameters are untouched.
    ///
    /// # Panics
    /// If a stored path names a parameter of another shape (the store is from another module).
    pub fn dequantize_into<B: Backend, M: Module<B>>(&self, module: M) -> M {
        module.map(&mut Dequantizer {
            store: self,
            path: Vec::new(),
        })
    }
}

/// One row of the [`PtqReport`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerReport {
    /// Parameter path.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Code width; `None` when kept in f32.
    pub bits: Option<u32>,
    /// Why it stayed f32 (`None` when quantized).
    pub kept: Option<String>,
    /// `max |r − r̃|` (0 when kept).
    pub max_abs_err: f32,
    /// `mean |r − r̃|` (0 when kept).
    pub mean_abs_err: f32,
    /// f32 bytes `4·numel`.
    pub bytes_f32: usize,
    /// Packed code bytes (`bytes_f32` when kept).
    pub bytes_codes: usize,
    /// Scale and zero-point bytes (0 when kept).
    pub bytes_params: usize,
}

impl LayerReport {
    /// Bytes after quantization: codes + scales/zero points.
    pub fn bytes_after(&self) -> usize {
        self.bytes_codes + self.bytes_params
    }

    /// `bytes_f32 − bytes_after` (may be negative only for absurdly tiny groups).
    pub fn bytes_saved(&self) -> isize {
        self.bytes_f32 as isize - self.bytes_after() as isize
    }
}

/// Per-parameter report of a PTQ run (every float parameter visited, quantized or kept).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PtqReport {
    /// Rows in visiting order.
    pub layers: Vec<LayerReport>,
}

impl PtqReport {
    /// The rows of quantized parameters.
    pub fn quantized(&self) -> impl Iterator<Item = &LayerReport> {
        self.layers.iter().filter(|l| l.bits.is_some())
    }

    /// The row of `name`, if visited.
    pub fn layer(&self, name: &str) -> Option<&LayerReport> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Over quantized parameters: `(f32 bytes, code bytes, scale/zero-point bytes)`.
    pub fn quantized_bytes(&self) -> (usize, usize, usize) {
        self.quantized().fold((0, 0, 0), |(a, b, c), l| {
            (a + l.bytes_f32, b + l.bytes_codes, c + l.bytes_params)
        })
    }
}

impl fmt::Display for PtqReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<32} {:>16} {:>5} {:>10} {:>10} {:>9} {:>9} {:>7}",
            "name", "shape", "bits", "max_err", "mean_err", "bytes_f32", "bytes_q", "saved"
        )?;
        for l in &self.layers {
            let bits = l.bits.map_or_else(|| "f32".to_string(), |b| b.to_string());
            writeln!(
                f,
                "{:<32} {:>16} {:>5} {:>10.3e} {:>10.3e} {:>9} {:>9} {:>7}{}",
                l.name,
                format!("{:?}", l.shape),
                bits,
                l.max_abs_err,
                l.mean_abs_err,
                l.bytes_f32,
                l.bytes_after(),
                l.bytes_saved(),
                l.kept
                    .as_ref()
                    .map_or(String::new(), |k| format!("  (kept: {k})")),
            )?;
        }
        Ok(())
    }
}

impl PtqConfig {
    /// Checks `bits`, `group_size`.
    ///
    /// # Errors
    /// [`QuantError::Config`] (`ConfigError::Unsupported`) naming `bits` unless 4 or 8; [`QuantError::Config`] (`ConfigError::Zero`) naming
    /// `group_size`.
    pub fn validate(&self) -> Result<(), QuantError> {
        let group_size = match self.granularity {
            PtqGranularity::PerGroup { group_size } => group_size,
            _ => 1,
        };
        QuantSpec::new()
            .with_bits(self.bits)
            .with_granularity(Granularity::PerGroup {
                axis: 0,
                group_size,
            })
            .validate()
    }

    /// Quantizes the selected weights of `module` (which is left unchanged).
    ///
    /// # Errors
    /// [`validate`](Self::validate)'s errors; [`QuantError::Config`] (`ConfigError::NotDivisible`) if `group_size` does not
    /// divide a weight's input axis; [`QuantError::Config`] (`ConfigError::OutOfDomain`) for non-finite weights. Constant
    /// channels are not errors (the weight is kept in f32 and reported).
    pub fn quantize<B: Backend, M: Module<B>>(
        &self,
        module: &M,
    ) -> Result<(QuantizedStore, PtqReport), QuantError> {
        self.validate()?;
        let mut v = Collector {
            config: self,
            path: Vec::new(),
            store: QuantizedStore::default(),
            report: PtqReport::default(),
            error: None,
        };
        module.visit(&mut v);
        match v.error {
            Some(e) => Err(e),
            None => Ok((v.store, v.report)),
        }
    }

    /// Why a parameter stays f32, or the spec to quantize it with.
    pub(crate) fn decide(&self, owner: &str, field: &str) -> Result<QuantSpec, String> {
        if self.keep_f32.iter().any(|k| k.eq_ignore_ascii_case(field)) {
            return Err(format!("name filter matched `{field}`"));
        }
        let kind = owner.strip_prefix("Struct:").unwrap_or(owner);
        // (channel axis, input axis) of the weight layouts in the module table.
        let axes = if field != "weight" {
            None
        } else if kind == "Linear" || kind.starts_with("ConvTranspose") {
            Some((1, 0))
        } else if kind.starts_with("Conv") {
            Some((0, 1))
        } else {
            None
        };
        let spec = QuantSpec::new().with_bits(self.bits).with_mode(self.mode);
        if let Some((channel, input)) = axes {
            let granularity = match self.granularity {
                PtqGranularity::PerTensor => Granularity::PerTensor,
                PtqGranularity::PerChannel => Granularity::PerChannel { axis: channel },
                PtqGranularity::PerGroup { group_size } => Granularity::PerGroup {
                    axis: input,
                    group_size,
                },
            };
            return Ok(spec.with_granularity(granularity));
        }
        let bias = matches!(field, "bias" | "beta");
        if self.target == PtqTarget::AllFloat && !bias && !kind.contains("Norm") {
            Ok(spec)
        } else {
            Err(format!("not a Linear/Conv weight (`{kind}.{field}`)"))
        }
    }
}

/// The visitor behind [`PtqConfig::quantize`].
struct Collector<'a> {
    config: &'a PtqConfig,
    /// `(field name, owner container type)` from the root down.
    path: Vec<(String, String)>,
    store: QuantizedStore,
    report: PtqReport,
    error: Option<QuantError>,
}

impl<B: Backend> ModuleVisitor<B> for Collector<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.error.is_some() {
            return;
        }
        let name = join(&self.path);
        let (field, owner) = self.path.last().cloned().unwrap_or_default();
        let x = param.val();
        let shape = x.dims().to_vec();
        let numel: usize = shape.iter().product();
        let kept = |reason: String| LayerReport {
            name: name.clone(),
            shape: shape.clone(),
            bits: None,
            kept: Some(reason),
            max_abs_err: 0.0,
            mean_abs_err: 0.0,
            bytes_f32: 4 * numel,
            bytes_codes: 4 * numel,
            bytes_params: 0,
        };
        let spec = match self.config.decide(&owner, &field) {
            Ok(spec) => spec,
            Err(reason) => return self.report.layers.push(kept(reason)),
        };
        match quantize_one(&spec, x) {
            Ok((w, max_abs_err, mean_abs_err)) => {
                self.report.layers.push(LayerReport {
                    bits: Some(spec.bits),
                    kept: None,
                    max_abs_err,
                    mean_abs_err,
                    bytes_codes: w.packed.len(),
                    bytes_params: w.param_bytes(),
                    ..kept(String::new())
                });
                self.store.weights.insert(name, w);
            }
            Err(QuantError::ZeroRange { group, .. }) => self
                .report
                .layers
                .push(kept(format!("group {group} is constant (zero range)"))),
            Err(e) => self.error = Some(e),
        }
    }
}

/// Calibrates, quantizes and packs one tensor; returns it with its max and mean abs error.
fn quantize_one<B: Backend, const D: usize>(
    spec: &QuantSpec,
    x: Tensor<B, D>,
) -> Result<(QuantizedWeight, f32, f32), QuantError> {
    let params = QuantParams::calibrate(spec, &x)?;
    let codes = quantize(x.clone(), &params);
    let err = (dequantize(codes.clone(), &params) - x).abs();
    let max = err.clone().max().into_scalar().elem::<f32>();
    let mean = err.mean().into_scalar().elem::<f32>();
    let codes: Vec<i32> = codes
        .into_data()
        .convert::<i32>()
        .into_vec()
        .expect("i32 codes");
    let packed = pack_codes(&codes, spec.bits);
    Ok((QuantizedWeight { params, packed }, max, mean))
}

fn join(path: &[(String, String)]) -> String {
    path.iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

/// The mapper behind [`QuantizedStore::dequantize_into`].
struct Dequantizer<'a> {
    store: &'a QuantizedStore,
    path: Vec<(String, String)>,
}

impl<B: Backend> ModuleMapper<B> for Dequantizer<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = join(&self.path);
        let Some(w) = self.store.weights.get(&name) else {
            return param;
        };
        let (id, x, mapper) = param.consume();
        assert_eq!(
            x.dims().as_slice(),
            w.params.shape.as_slice(),
            "stored weight `{name}` has shape {:?}, the module's has {:?}",
            w.params.shape,
            x.dims()
        );
        let device = x.device();
        Param::from_mapped_value(id, w.dequantize::<B, D>(&device), mapper)
    }
}
