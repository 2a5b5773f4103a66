//! Uniform quantization exactly as the survey's eqs. 13–15 (sec. 3.1):
//!
//! ```text
//! Q(r) = Int(r / S) − Z                  (13)
//! r̃    = S · (Q(r) + Z)                  (14)
//! S    = (β − α) / (2^b − 1)             (15)
//! ```
//!
//! Choices this module makes (the survey leaves them open):
//!
//! - **`Int` is round-half-to-even** (`f32::round_ties_even` on the host, [`Tensor::round`] on a
//!   backend; both are IEEE ties-to-even, as `torch.round`). Every function here uses it.
//! - **Affine** ([`QuantMode::Affine`]): `α = min r`, `β = max r`, `Z = Int(α / S)` (an integer, so
//!   the grid `S·k` always holds 0 exactly), codes `Q ∈ [0, 2^b − 1]` (unsigned).
//! - **Symmetric** ([`QuantMode::Symmetric`]): `α = −max|r|`, `β = max|r|`, `Z = 0`, codes
//!   `Q ∈ [−2^(b−1), 2^(b−1) − 1]` (signed). Eq. 15 still gives `S = 2·max|r| / (2^b − 1)`; the top
//!   value `β/S = 2^(b−1) − ½` clamps to `2^(b−1) − 1`, an error of exactly `S/2`. (Burn's native
//!   `Q8S` uses the restricted range `S = max|r| / 127` instead; see [`crate::native`].)
//! - Codes are clamped to their range, so `|r − r̃| ≤ S/2` for every `r ∈ [α, β]` (up to f32
//!   rounding of `r / S`), and values outside a calibrated `[α, β]` saturate.
//! - **Granularity** ([`Granularity`]): one `(S, Z)` per tensor, per index of a channel axis, or per
//!   contiguous group of `group_size` elements along an axis (for every index of the other axes).
//!
//! Codes are returned as a backend `Int` tensor ([`quantize`]); [`crate::ptq`] packs them into bytes
//! on the host. Ranges, scales and zero points ([`QuantParams`]) live on the host (one value per
//! group), computed in f64 from the backend's f32 min/max and stored as f32 / i32.
//!
//! [`fake_quantize`] is `r̃` in f32 with a straight-through gradient, for quantization-aware
//! training.

mod ops;
mod reference;

pub use ops::{Ste, dequantize, fake_quantize, fake_quantize_with, quantize, quantize_dequantize};
pub use reference::{dequantize_reference, group_index, quantize_reference};

use crate::error::ConfigError;
use crate::error::{QuantError, positive};
use burn::config::Config;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// Largest `|Z|` accepted. `r / S` is computed in f32; beyond about `2^16` its rounding error
/// (`|r/S|·2^−24`) is no longer small against the `½` rounding step, so a range that is tiny next
/// to its magnitude (e.g. `[1000, 1000.001]`) is rejected instead of silently breaking `|r − r̃| ≤ S/2`.
pub const MAX_ZERO_POINT: i64 = 1 << 16;

/// Where the zero of the real axis sits in the integer code range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuantMode {
    /// `α = min r`, `β = max r`, integer zero point `Z = Int(α/S)`, unsigned codes `[0, 2^b − 1]`.
    Affine,
    /// `α = −max|r|`, `β = max|r|`, `Z = 0`, signed codes `[−2^(b−1), 2^(b−1) − 1]`.
    Symmetric,
}

/// Which elements share one `(S, Z)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Granularity {
    /// One pair for the whole tensor.
    PerTensor,
    /// One pair per index of `axis` (the range is taken over all other axes). For a Burn `Linear`
    /// weight `[d_in, d_out]` the output channels are `axis = 1`; for a conv weight `[C_out, ..]`,
    /// `axis = 0`.
    PerChannel {
        /// The channel axis.
        axis: usize,
    },
    /// One pair per run of `group_size` consecutive elements along `axis`, separately for every
    /// index of the other axes (GPTQ/AWQ-style groups along a Linear's input axis, `axis = 0`).
    PerGroup {
        /// The axis cut into groups.
        axis: usize,
        /// Elements per group; must divide the axis length.
        group_size: usize,
    },
}

/// A uniform quantizer: bit width, mode and granularity.
#[derive(Config, Debug, PartialEq)]
pub struct QuantSpec {
    /// Bits per code `b`: 8 or 4.
    #[config(default = 8)]
    pub bits: u32,
    /// Affine (zero point) or symmetric.
    #[config(default = "QuantMode::Affine")]
    pub mode: QuantMode,
    /// Which elements share a scale.
    #[config(default = "Granularity::PerTensor")]
    pub granularity: Granularity,
}

impl QuantSpec {
    /// Checks `bits` and the granularity's own fields (not yet against a shape).
    ///
    /// # Errors
    /// [`QuantError::Config`] (`ConfigError::Unsupported`) naming `bits` unless it is 4 or 8; [`QuantError::Config`] (`ConfigError::Zero`) naming
    /// `group_size`.
    pub fn validate(&self) -> Result<(), QuantError> {
        if self.bits != 4 && self.bits != 8 {
            return Err(QuantError::Config(ConfigError::Unsupported {
                field: "bits",
                value: self.bits.to_string(),
                reason: "only 4- and 8-bit codes are implemented",
            }));
        }
        if let Granularity::PerGroup { group_size, .. } = self.granularity {
            positive("group_size", group_size)?;
        }
        Ok(())
    }

    /// The clamp range of the codes `(q_min, q_max)`: `(0, 2^b − 1)` affine,
    /// `(−2^(b−1), 2^(b−1) − 1)` symmetric.
    pub fn code_range(&self) -> (i32, i32) {
        let levels = 1i32 << self.bits;
        match self.mode {
            QuantMode::Affine => (0, levels - 1),
            QuantMode::Symmetric => (-levels / 2, levels / 2 - 1),
        }
    }

    /// The `[P, G, K]` view a tensor of `shape` is reduced in: `P·G` parameter groups of `K`
    /// elements each (see [`Granularity`]).
    ///
    /// # Errors
    /// [`QuantError::Config`] (`ConfigError::Unsupported`) naming `axis` if it is not below the rank;
    /// [`QuantError::Config`] (`ConfigError::NotDivisible`) naming the axis length if `group_size` does not divide it;
    /// the errors of [`validate`](Self::validate).
    pub fn view_dims(&self, shape: &[usize]) -> Result<[usize; 3], QuantError> {
        self.validate()?;
        let n: usize = shape.iter().product();
        positive("numel", n)?;
        let check_axis = |axis: usize| {
            if axis < shape.len() {
                Ok(shape[axis])
            } else {
                Err(QuantError::Config(ConfigError::Unsupported {
                    field: "axis",
                    value: axis.to_string(),
                    reason: "must be below the tensor's rank",
                }))
            }
        };
        match self.granularity {
            Granularity::PerTensor => Ok([1, 1, n]),
            Granularity::PerChannel { axis } => {
                let c = check_axis(axis)?;
                Ok([c, 1, n / c])
            }
            Granularity::PerGroup { axis, group_size } => {
                let len = check_axis(axis)?;
                crate::error::divisible("axis length", len, group_size, Some("group_size"))?;
                Ok([n / len, len / group_size, group_size])
            }
        }
    }
}

/// Per-group ranges, scales and zero points of one tensor (host side, one entry per group in the
/// `[P, G]` order of [`QuantSpec::view_dims`]).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantParams {
    /// The quantizer.
    pub spec: QuantSpec,
    /// Shape of the tensor these parameters belong to.
    pub shape: Vec<usize>,
    /// `[P, G, K]` view (see [`QuantSpec::view_dims`]).
    pub view: [usize; 3],
    /// `α` per group.
    pub alpha: Vec<f32>,
    /// `β` per group.
    pub beta: Vec<f32>,
    /// `S = (β − α)/(2^b − 1)` per group (eq. 15).
    pub scale: Vec<f32>,
    /// `Z` per group: `Int(α/S)` affine, 0 symmetric.
    pub zero_point: Vec<i32>,
}

impl QuantParams {
    /// Scales and zero points from given ranges: `S` by eq. 15 in f64, rounded to f32; then
    /// `Z = Int(α/S)` (affine) or 0 (symmetric). In symmetric mode each range is first widened to
    /// `[−m, m]` with `m = max(|α|, |β|)`.
    ///
    /// # Errors
    /// [`QuantError::ZeroRange`] naming the group if `β − α` is 0 (a constant group);
    /// [`QuantError::Config`] (`ConfigError::OutOfDomain`) naming `alpha`/`beta` if one is not finite or `β < α`, or
    /// `zero_point` if `|Z| > `[`MAX_ZERO_POINT`]; [`QuantError::Config`] (`ConfigError::ShapeMismatch`) if the number of
    /// ranges is not `P·G`; the errors of [`QuantSpec::view_dims`].
    pub fn from_ranges(
        spec: &QuantSpec,
        shape: &[usize],
        alpha: Vec<f32>,
        beta: Vec<f32>,
    ) -> Result<Self, QuantError> {
        let view = spec.view_dims(shape)?;
        crate::error::same_size("number of α values", view[0] * view[1], alpha.len())?;
        crate::error::same_size("number of β values", view[0] * view[1], beta.len())?;
        let (alpha, beta) = match spec.mode {
            QuantMode::Affine => (alpha, beta),
            QuantMode::Symmetric => {
                let m: Vec<f32> = alpha
                    .iter()
                    .zip(&beta)
                    .map(|(a, b)| a.abs().max(b.abs()))
                    .collect();
                (m.iter().map(|m| -m).collect(), m)
            }
        };
        let levels = f64::from((1u32 << spec.bits) - 1);
        let mut scale = Vec::with_capacity(alpha.len());
        let mut zero_point = Vec::with_capacity(alpha.len());
        for (group, (&a, &b)) in alpha.iter().zip(&beta).enumerate() {
            finite("alpha", a)?;
            finite("beta", b)?;
            if b < a {
                return Err(QuantError::Config(ConfigError::OutOfDomain {
                    field: "beta",
                    value: f64::from(b),
                    requirement: ">= alpha",
                }));
            }
            if b == a {
                return Err(QuantError::ZeroRange {
                    group,
                    value: f64::from(a),
                });
            }
            let s = ((f64::from(b) - f64::from(a)) / levels) as f32;
            let z = match spec.mode {
                QuantMode::Affine => (f64::from(a) / f64::from(s)).round_ties_even(),
                QuantMode::Symmetric => 0.0,
            };
            if z.abs() > MAX_ZERO_POINT as f64 {
                return Err(QuantError::Config(ConfigError::OutOfDomain {
                    field: "zero_point",
                    value: z,
                    requirement: "|Int(α/S)| <= 65536 (range too narrow for its magnitude in f32)",
                }));
            }
            scale.push(s);
            zero_point.push(z as i32);
        }
        Ok(Self {
            spec: spec.clone(),
            shape: shape.to_vec(),
            view,
            alpha,
            beta,
            scale,
            zero_point,
        })
    }

    /// Calibrates on `x` itself (min/max per group on the backend, then
    /// [`from_ranges`](Self::from_ranges) on the host).
    ///
    /// # Errors
    /// As [`from_ranges`](Self::from_ranges).
    pub fn calibrate<B: Backend, const D: usize>(
        spec: &QuantSpec,
        x: &Tensor<B, D>,
    ) -> Result<Self, QuantError> {
        let shape = x.dims().to_vec();
        spec.view_dims(&shape)?;
        let v = ops::to_view(x.clone(), spec)?;
        let (alpha, beta) = match spec.mode {
            QuantMode::Affine => (host(v.clone().min_dim(2)), host(v.max_dim(2))),
            QuantMode::Symmetric => {
                let m = host(v.abs().max_dim(2));
                (m.iter().map(|m| -m).collect(), m)
            }
        };
        Self::from_ranges(spec, &shape, alpha, beta)
    }

    /// Number of parameter groups `P·G`.
    pub fn n_groups(&self) -> usize {
        self.scale.len()
    }
}

fn host<B: Backend>(t: Tensor<B, 3>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 data")
}

fn finite(field: &'static str, v: f32) -> Result<(), QuantError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(QuantError::Config(ConfigError::OutOfDomain {
            field,
            value: f64::from(v),
            requirement: "finite",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_and_zero_point_follow_eq_15() {
        let spec = QuantSpec::new();
        let p = QuantParams::from_ranges(&spec, &[4], vec![-1.0], vec![3.0]).unwrap();
        assert_eq!(p.scale, vec![4.0 / 255.0]);
        // α/S = −63.75 → −64.
        assert_eq!(p.zero_point, vec![-64]);
        let sym = QuantSpec::new()
            .with_mode(QuantMode::Symmetric)
            .with_bits(4);
        let p = QuantParams::from_ranges(&sym, &[4], vec![-2.0], vec![2.0]).unwrap();
        assert_eq!(p.scale, vec![4.0 / 15.0]);
        assert_eq!(p.zero_point, vec![0]);
        assert_eq!(sym.code_range(), (-8, 7));
        assert_eq!(spec.code_range(), (0, 255));
    }

    #[test]
    fn errors_name_the_field() {
        let bad_bits = QuantSpec::new().with_bits(3).validate().unwrap_err();
        assert!(bad_bits.to_string().contains("`bits` = 3"), "{bad_bits}");
        let group = QuantSpec::new().with_granularity(Granularity::PerGroup {
            axis: 1,
            group_size: 3,
        });
        let err = group.view_dims(&[2, 8]).unwrap_err();
        assert!(err.to_string().contains("`axis length` = 8"), "{err}");
        assert!(err.to_string().contains("`group_size`"), "{err}");
        let axis = QuantSpec::new().with_granularity(Granularity::PerChannel { axis: 2 });
        let err = axis.view_dims(&[2, 8]).unwrap_err();
        assert!(err.to_string().contains("`axis` = 2"), "{err}");
        let zero = QuantParams::from_ranges(&QuantSpec::new(), &[3], vec![0.5], vec![0.5]);
        assert_eq!(
            zero.unwrap_err(),
            QuantError::ZeroRange {
                group: 0,
                value: 0.5
            }
        );
        let narrow =
            QuantParams::from_ranges(&QuantSpec::new(), &[3], vec![1000.0], vec![1000.001]);
        let err = narrow.unwrap_err();
        assert!(err.to_string().contains("`zero_point`"), "{err}");
        let nan = QuantParams::from_ranges(&QuantSpec::new(), &[3], vec![f32::NAN], vec![1.0]);
        assert!(nan.unwrap_err().to_string().contains("`alpha`"));
    }
}
