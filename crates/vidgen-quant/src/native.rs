//! Burn's native quantized tensors ([`QuantScheme`]): symmetric int8/int4 storage that a backend
//! keeps quantized and dequantizes (or computes on) itself.
//!
//! Burn 0.21's `QuantMode` has only `Symmetric`: `q = clamp(round(r/S), −q_max, q_max)` with
//! `S = 2·max|r| / (q_max − q_min)` over the value type's range (`Q8S`: `[−127, 127]`, so
//! `S = max|r|/127`; `Q4S`: `[−7, 7]`). This is the restricted-range variant of the survey's
//! symmetric eq. 15 (which [`crate::uniform`] implements with `2^b − 1` levels and an optional zero
//! point). Block scales ([`QuantLevel::Block`]) cover `block_size` consecutive elements of the
//! last axis.
//!
//! Backend support (checked in Burn 0.21's sources): the `flex` CPU backend implements
//! `quantize_dynamic`/`dequantize` (values unpacked to one `i8` per element) and its matmul
//! dequantizes quantized operands, so a module quantized here runs on flex; it is tested there.
//! The CubeCL backends (`cuda`, `wgpu`) store codes packed into `u32` and run the same API.

use crate::error::ConfigError;
use crate::error::{QuantError, positive};
use crate::ptq::{PtqConfig, PtqTarget};
use burn::config::Config;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::quantization::{
    BlockSize, QuantLevel, QuantMode, QuantParam, QuantScheme, QuantStore, QuantValue,
};
use burn::tensor::{Tensor, backend::Backend};

/// Configuration of Burn-native symmetric weight quantization.
#[derive(Config, Debug)]
pub struct NativeQuantConfig {
    /// Bits per code: 8 (`Q8S`) or 4 (`Q4S`).
    #[config(default = 8)]
    pub bits: u32,
    /// `None`: one scale per tensor; `Some(n)`: one per `n` consecutive elements of the last axis
    /// (`1..=255`, must divide it).
    #[config(default = "None")]
    pub block_size: Option<usize>,
    /// Field names never quantized (as [`PtqConfig::keep_f32`]).
    #[config(default = "crate::ptq::default_keep_f32()")]
    pub keep_f32: Vec<String>,
}

impl NativeQuantConfig {
    /// The Burn scheme: symmetric, f32 scales, value `Q8S`/`Q4S`, per tensor or per block.
    ///
    /// # Errors
    /// [`QuantError::Config`] (`ConfigError::Unsupported`) naming `bits` unless 4 or 8, or `block_size` above 255 (Burn
    /// stores block sizes as `u8`); [`QuantError::Config`] (`ConfigError::Zero`) naming `block_size`.
    pub fn scheme(&self) -> Result<QuantScheme, QuantError> {
        let value = match self.bits {
            8 => QuantValue::Q8S,
            4 => QuantValue::Q4S,
            b => {
                return Err(QuantError::Config(ConfigError::Unsupported {
                    field: "bits",
                    value: b.to_string(),
                    reason: "Burn's native schemes used here are Q8S and Q4S",
                }));
            }
        };
        let level = match self.block_size {
            None => QuantLevel::Tensor,
            Some(n) => {
                positive("block_size", n)?;
                let n = u8::try_from(n).map_err(|_| {
                    QuantError::Config(ConfigError::Unsupported {
                        field: "block_size",
                        value: n.to_string(),
                        reason: "Burn block sizes are u8 (at most 255)",
                    })
                })?;
                QuantLevel::Block(BlockSize::new([n]))
            }
        };
        Ok(QuantScheme::default()
            .with_value(value)
            .with_mode(QuantMode::Symmetric)
            .with_param(QuantParam::F32)
            .with_store(QuantStore::Native)
            .with_level(level))
    }

    /// Quantizes one tensor with Burn's scheme (`Tensor::quantize_dynamic`, min-max calibration).
    ///
    /// # Shapes
    /// `x`: any shape; with a block size, its last axis must be a multiple of it.
    ///
    /// # Errors
    /// As [`scheme`](Self::scheme); [`QuantError::Config`] (`ConfigError::NotDivisible`) naming the last axis.
    pub fn quantize_tensor<B: Backend, const D: usize>(
        &self,
        x: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, QuantError> {
        let scheme = self.scheme()?;
        if let Some(n) = self.block_size {
            crate::error::divisible("last axis", x.dims()[D - 1], n, Some("block_size"))?;
        }
        Ok(x.quantize_dynamic(&scheme))
    }

    /// Quantizes every Linear/Conv weight of `module` in place (Burn quantized tensors; biases,
    /// norms and `keep_f32` names stay f32). The module then runs with quantized weights on a
    /// backend that supports them.
    ///
    /// # Errors
    /// As [`scheme`](Self::scheme); [`QuantError::Config`] (`ConfigError::NotDivisible`) if a weight's last axis is not
    /// a multiple of `block_size` (checked before anything is quantized).
    pub fn quantize_module<B: Backend, M: Module<B>>(&self, module: M) -> Result<M, QuantError> {
        let scheme = self.scheme()?;
        let select = PtqConfig::new()
            .with_target(PtqTarget::LinearConv)
            .with_keep_f32(self.keep_f32.clone());
        let mut mapper = NativeMapper {
            scheme,
            block_size: self.block_size,
            select,
            path: Vec::new(),
            error: None,
            dry_run: true,
        };
        let module = module.map(&mut mapper);
        if let Some(e) = mapper.error {
            return Err(e);
        }
        mapper.dry_run = false;
        Ok(module.map(&mut mapper))
    }
}

/// The mapper behind [`NativeQuantConfig::quantize_module`]: a dry run checks every selected
/// weight's shape, the second run quantizes.
struct NativeMapper {
    scheme: QuantScheme,
    block_size: Option<usize>,
    select: PtqConfig,
    path: Vec<(String, String)>,
    error: Option<QuantError>,
    dry_run: bool,
}

impl<B: Backend> ModuleMapper<B> for NativeMapper {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (field, owner) = self.path.last().cloned().unwrap_or_default();
        if self.select.decide(&owner, &field).is_err() {
            return param;
        }
        if self.dry_run {
            if let (Some(n), None) = (self.block_size, &self.error) {
                let last = param.val().dims()[D - 1];
                self.error = crate::error::divisible("last axis", last, n, Some("block_size"))
                    .err()
                    .map(Into::into);
            }
            return param;
        }
        let (id, x, mapper) = param.consume();
        Param::from_mapped_value(id, x.quantize_dynamic(&self.scheme), mapper)
    }
}
