//! Backend tensor ops of eqs. 13–14 and fake quantization with a straight-through estimator.

use super::{Granularity, QuantParams, QuantSpec};
use crate::error::QuantError;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// The `[P, G, K]` view of `x` (see [`QuantSpec::view_dims`]).
pub(crate) fn to_view<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    spec: &QuantSpec,
) -> Result<Tensor<B, 3>, QuantError> {
    let view = spec.view_dims(&x.dims())?;
    Ok(match spec.granularity {
        Granularity::PerTensor => x.reshape(view),
        Granularity::PerChannel { axis } => x.swap_dims(0, axis).reshape(view),
        Granularity::PerGroup { axis, .. } => x.swap_dims(axis, D - 1).reshape(view),
    })
}

/// Inverse of [`to_view`]: back to `shape`.
fn from_view<B: Backend, const D: usize>(
    v: Tensor<B, 3>,
    spec: &QuantSpec,
    shape: [usize; D],
) -> Tensor<B, D> {
    let swapped = |a: usize, b: usize| {
        let mut s = shape;
        s.swap(a, b);
        s
    };
    match spec.granularity {
        Granularity::PerTensor => v.reshape(shape),
        Granularity::PerChannel { axis } => v.reshape(swapped(0, axis)).swap_dims(0, axis),
        Granularity::PerGroup { axis, .. } => {
            v.reshape(swapped(axis, D - 1)).swap_dims(axis, D - 1)
        }
    }
}

/// `(S, Z)` as `[P, G, 1]` f32 tensors.
fn param_tensors<B: Backend>(p: &QuantParams, device: &B::Device) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let dims = [p.view[0], p.view[1], 1];
    let s = Tensor::from_data(TensorData::new(p.scale.clone(), dims), device);
    let z: Vec<f32> = p.zero_point.iter().map(|&z| z as f32).collect();
    (s, Tensor::from_data(TensorData::new(z, dims), device))
}

fn check_shape(p: &QuantParams, shape: &[usize]) {
    assert_eq!(
        p.shape, shape,
        "quantization parameters are for shape {:?}, the tensor has shape {shape:?}",
        p.shape
    );
}

/// Codes in the `[P, G, K]` view as float: `clamp(Int(r/S) − Z, q_min, q_max)`.
fn codes_view<B: Backend>(v: Tensor<B, 3>, p: &QuantParams) -> Tensor<B, 3> {
    let (s, z) = param_tensors::<B>(p, &v.device());
    let (lo, hi) = p.spec.code_range();
    (v / s).round().sub(z).clamp(lo, hi)
}

/// Eq. 13: integer codes `Q(r) = clamp(Int(r/S) − Z, q_min, q_max)`, `Int` = round half to even.
///
/// # Shapes
/// `x`: any shape, equal to `params.shape` → codes of the same shape.
///
/// # Panics
/// If `x`'s shape differs from `params.shape`.
pub fn quantize<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    params: &QuantParams,
) -> Tensor<B, D, Int> {
    let shape = x.dims();
    check_shape(params, &shape);
    let v = to_view(x, &params.spec).expect("params were validated for this shape");
    from_view(codes_view(v, params), &params.spec, shape).int()
}

/// Eq. 14: `r̃ = S·(Q + Z)`.
///
/// # Shapes
/// `codes`: `params.shape` → same shape, f32.
///
/// # Panics
/// If `codes`' shape differs from `params.shape`.
pub fn dequantize<B: Backend, const D: usize>(
    codes: Tensor<B, D, Int>,
    params: &QuantParams,
) -> Tensor<B, D> {
    let shape = codes.dims();
    check_shape(params, &shape);
    let v = to_view(codes.float(), &params.spec).expect("params were validated for this shape");
    let (s, z) = param_tensors::<B>(params, &v.device());
    from_view((v + z) * s, &params.spec, shape)
}

/// `r̃ = S·(Q(r) + Z)` without leaving f32 (eqs. 13–14 fused; no integer tensor).
///
/// # Shapes
/// `x`: `params.shape` → same shape.
///
/// # Panics
/// If `x`'s shape differs from `params.shape`.
pub fn quantize_dequantize<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    params: &QuantParams,
) -> Tensor<B, D> {
    let shape = x.dims();
    check_shape(params, &shape);
    let v = to_view(x, &params.spec).expect("params were validated for this shape");
    let (s, z) = param_tensors::<B>(params, &v.device());
    let q = codes_view(v, params);
    from_view((q + z) * s, &params.spec, shape)
}

/// The gradient a fake-quantized tensor passes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ste {
    /// `∂r̃/∂r = 1` everywhere (the plain straight-through estimator).
    Identity,
    /// `∂r̃/∂r = 1` inside the group's calibrated `[α, β]`, `0` outside (where the code saturates).
    Clipped,
}

/// Fake quantization for QAT: the value is `r̃ = S·(Q(r) + Z)` with `(S, Z)` calibrated on `x`
/// itself (detached), the gradient passes straight through (identity; every element lies inside its
/// own range). Written `x + (r̃ − x).detach()`.
///
/// # Shapes
/// `x`: any shape → same shape.
///
/// # Errors
/// As [`QuantParams::calibrate`] (bad bits/axis/groups, a constant group).
pub fn fake_quantize<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    spec: &QuantSpec,
) -> Result<Tensor<B, D>, QuantError> {
    let params = QuantParams::calibrate(spec, &x.clone().detach())?;
    Ok(fake_quantize_with(x, &params, Ste::Identity))
}

/// Fake quantization with given (e.g. calibrated on other data) parameters.
///
/// [`Ste::Identity`]: `x + (r̃ − x).detach()`. [`Ste::Clipped`]: `r̃.detach() + (x − x.detach())·m`
/// with `m = 1[α ≤ x ≤ β]` per group; the value is `r̃` in both.
///
/// # Shapes
/// `x`: `params.shape` → same shape.
///
/// # Panics
/// If `x`'s shape differs from `params.shape`.
pub fn fake_quantize_with<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    params: &QuantParams,
    ste: Ste,
) -> Tensor<B, D> {
    let fq = quantize_dequantize(x.clone().detach(), params);
    match ste {
        Ste::Identity => x.clone() + (fq - x).detach(),
        Ste::Clipped => {
            let shape = x.dims();
            let device = x.device();
            let dims = [params.view[0], params.view[1], 1];
            let a = Tensor::<B, 3>::from_data(TensorData::new(params.alpha.clone(), dims), &device);
            let b = Tensor::<B, 3>::from_data(TensorData::new(params.beta.clone(), dims), &device);
            let v = to_view(x.clone().detach(), &params.spec).expect("validated shape");
            let full = v.dims();
            let inside = (v.clone().greater_equal(a.expand(full)))
                .bool_and(v.lower_equal(b.expand(full)))
                .float();
            let mask = from_view(inside, &params.spec, shape);
            fq + (x.clone() - x.detach()) * mask
        }
    }
}
